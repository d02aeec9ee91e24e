//! The node's one gRPC port: client services (`RawKV`, also as
//! `proto.RawKV`), admin, reflection, the internal Raft transport and the
//! Redis pub/sub fan-out (`RedisPubSub`, when the Redis front end runs).

use anyhow::Result;
use elastickv_kv::Kv;
use elastickv_proto::internal::raft_transport_server::RaftTransportServer;
use elastickv_proto::internal::redis_pub_sub_server::RedisPubSubServer;
use elastickv_raft::RaftTransportService;

use crate::redis_pubsub::PubSubService;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(
    listener: TcpListener,
    kv: Kv,
    raft: RaftTransportServer<RaftTransportService>,
    pubsub: Option<RedisPubSubServer<PubSubService>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // Without TCP_NODELAY, small responses wait on Nagle's algorithm and the
    // peer's delayed ACK: a 40 ms tail on every request.
    let incoming = tonic::transport::server::TcpIncoming::from_listener(listener, true, None)
        .map_err(|e| anyhow::anyhow!("gRPC listener: {e}"))?;
    elastickv_api_grpc::router(kv)?
        .add_service(raft)
        .add_optional_service(pubsub)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}
