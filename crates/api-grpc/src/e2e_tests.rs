//! In-process end-to-end tests: a real tonic server on 127.0.0.1:0 built by
//! [`crate::router`] over the fake data plane, exercised with real clients —
//! the reflection clients (v1 and v1alpha) and calls under both service names.

use std::net::SocketAddr;

use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{RawGetRequest, RawGetResponse, RawPutRequest, RawPutResponse};
use http::uri::PathAndQuery;
use prost::Message;
use prost_types::FileDescriptorProto;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::Code;
use tonic_reflection::pb::{v1, v1alpha};

use crate::fake::FakeKv;

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    async fn start(kv: FakeKv) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let router = crate::router_with(kv).expect("router");
        let task = tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
        served.expect("server ran cleanly");
    }
}

/// Unary call on an arbitrary path, to reach aliased and unknown names.
async fn call<Req, Resp>(ch: Channel, path: &'static str, req: Req) -> Result<Resp, tonic::Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let codec = tonic::codec::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

const EXPECTED_SERVICES: &[&str] = &[
    "RawKV",
    "proto.RawKV",
    "TransactionalKV",
    "proto.TransactionalKV",
    "Distribution",
    "proto.Distribution",
    "elastickv.admin.Admin",
];

fn check_listing(listed: &[String]) {
    for want in EXPECTED_SERVICES {
        assert!(
            listed.iter().any(|s| s == want),
            "{want} missing from {listed:?}"
        );
    }
    assert!(
        !listed.iter().any(|s| s.contains("internal")),
        "internal service exposed: {listed:?}"
    );
}

fn check_qualified_raw_kv_file(encoded: &[Vec<u8>]) {
    let file = encoded
        .iter()
        .map(|b| FileDescriptorProto::decode(b.as_slice()).expect("descriptor decodes"))
        .find(|f| f.service.iter().any(|s| s.name() == "RawKV"))
        .expect("a file declaring RawKV");
    assert_eq!(file.package(), "proto");
    assert_eq!(file.name(), "proto/service.proto");
    let raw_kv = file
        .service
        .iter()
        .find(|s| s.name() == "RawKV")
        .expect("RawKV service");
    let get = raw_kv
        .method
        .iter()
        .find(|m| m.name() == "RawGet")
        .expect("RawGet method");
    assert_eq!(get.input_type(), ".proto.RawGetRequest");
}

#[tokio::test]
async fn reflection_v1_lists_both_names_and_resolves_proto_raw_kv() {
    use v1::server_reflection_client::ServerReflectionClient;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    use v1::ServerReflectionRequest;

    let server = TestServer::start(FakeKv::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("proto.RawKV".into()),
        MessageRequest::FileContainingSymbol("proto.RawKV.RawGet".into()),
        MessageRequest::FileContainingSymbol("elastickv.internal.RaftTransport".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();

    let mut answers = Vec::new();
    // tonic-reflection ends the stream with a status (rather than sending an
    // ErrorResponse) when a symbol is unknown, so the fourth answer is that.
    let end = loop {
        match responses.message().await {
            Ok(Some(r)) => answers.push(r.message_response.expect("a response")),
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert_eq!(answers.len(), 3);
    let end = end.expect("lookup of the internal transport must fail");
    assert_eq!(end.code(), Code::NotFound, "{end:?}");
    match &answers[0] {
        MessageResponse::ListServicesResponse(l) => {
            let names: Vec<String> = l.service.iter().map(|s| s.name.clone()).collect();
            check_listing(&names);
        }
        other => panic!("expected a service list, got {other:?}"),
    }
    for answer in &answers[1..3] {
        match answer {
            MessageResponse::FileDescriptorResponse(f) => {
                check_qualified_raw_kv_file(&f.file_descriptor_proto)
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn reflection_v1alpha_lists_both_names_and_resolves_proto_raw_kv() {
    use v1alpha::server_reflection_client::ServerReflectionClient;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    use v1alpha::ServerReflectionRequest;

    let server = TestServer::start(FakeKv::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("proto.RawKV".into()),
        MessageRequest::FileByFilename("proto/service.proto".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();
    let mut answers = Vec::new();
    while let Some(r) = responses.message().await.expect("reflection response") {
        answers.push(r.message_response.expect("a response"));
    }
    assert_eq!(answers.len(), 3);
    match &answers[0] {
        MessageResponse::ListServicesResponse(l) => {
            let names: Vec<String> = l.service.iter().map(|s| s.name.clone()).collect();
            check_listing(&names);
        }
        other => panic!("expected a service list, got {other:?}"),
    }
    for answer in &answers[1..] {
        match answer {
            MessageResponse::FileDescriptorResponse(f) => {
                check_qualified_raw_kv_file(&f.file_descriptor_proto)
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn raw_kv_answers_under_both_names() {
    let server = TestServer::start(FakeKv::new()).await;
    let ch = server.channel().await;

    let put: RawPutResponse = call(
        ch.clone(),
        "/proto.RawKV/RawPut",
        RawPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    )
    .await
    .expect("put via proto.RawKV");
    assert!(put.success);

    let get: RawGetResponse = call(
        ch.clone(),
        "/proto.RawKV/RawGet",
        RawGetRequest {
            key: b"k".to_vec(),
            ts: 0,
        },
    )
    .await
    .expect("get via proto.RawKV");
    assert_eq!((get.value.as_slice(), get.exists), (&b"v"[..], true));

    let get = RawKvClient::new(ch.clone())
        .raw_get(RawGetRequest {
            key: b"k".to_vec(),
            ts: 0,
        })
        .await
        .expect("get via RawKV")
        .into_inner();
    assert!(get.exists);

    // Validation errors travel back with their code under the alias too.
    let err = call::<_, RawGetResponse>(
        ch.clone(),
        "/proto.RawKV/RawGet",
        RawGetRequest {
            key: b"\xffx".to_vec(),
            ts: 0,
        },
    )
    .await
    .expect_err("internal key");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Names outside the alias set, and services not registered here, are
    // UNIMPLEMENTED rather than misrouted.
    for path in [
        "/proto.Admin/Status",
        "/elastickv.internal.RaftTransport/Vote",
    ] {
        let err = call::<_, RawGetResponse>(ch.clone(), path, RawGetRequest::default())
            .await
            .expect_err("unknown path");
        assert_eq!(err.code(), Code::Unimplemented, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn distribution_answers_under_both_names() {
    use elastickv_proto::public::distribution_client::DistributionClient;
    use elastickv_proto::public::{ListRoutesRequest, ListRoutesResponse};

    let server = TestServer::start(FakeKv::new()).await;
    let ch = server.channel().await;
    let aliased: ListRoutesResponse = call(
        ch.clone(),
        "/proto.Distribution/ListRoutes",
        ListRoutesRequest {},
    )
    .await
    .expect("list via proto.Distribution");
    let bare = DistributionClient::new(ch)
        .list_routes(ListRoutesRequest {})
        .await
        .expect("list via Distribution")
        .into_inner();
    assert_eq!(aliased, bare);
    assert_eq!((aliased.catalog_version, aliased.routes.len()), (1, 2));
    server.stop().await;
}
