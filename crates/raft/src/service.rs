//! Raft transport, server side: the `RaftTransport` gRPC service that
//! dispatches every group's Raft messages and forwarded requests to the
//! hosted group.

use crate::error::ReplError;
use crate::network::{decode, encode, FrameKind};
use crate::node::{Forwarded, RaftNode};
use crate::proposer::ReadAt;
use crate::types::TypeConfig;
use elastickv_proto::internal::raft_transport_server::{RaftTransport, RaftTransportServer};
use elastickv_proto::internal::{RaftFrame, RaftFrameReply, RaftMessage};
use elastickv_types::{limits, GroupId};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The gRPC service; add it to the node's tonic server.
#[derive(Clone)]
pub struct RaftTransportService {
    node: RaftNode,
}

impl RaftTransportService {
    pub fn server(node: RaftNode) -> RaftTransportServer<RaftTransportService> {
        RaftTransportServer::new(RaftTransportService { node })
            .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
    }

    fn group(&self, msg: &RaftMessage) -> Result<std::sync::Arc<crate::node::Group>, Status> {
        self.node
            .group(GroupId(msg.group_id))
            .ok_or_else(|| Status::not_found(format!("unknown raft group {}", msg.group_id)))
    }
}

fn bad_payload(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft payload: {e}"))
}

fn encode_reply<T: serde::Serialize>(group: u64, value: &T) -> Result<RaftMessage, Status> {
    encode(GroupId(group), value).map_err(|e| Status::internal(e.to_string()))
}

/// Frames of one pipe handled at once at most; further frames wait, which
/// pushes back on the sending node through HTTP/2 flow control.
const PIPE_CONCURRENCY: usize = 1024;
/// Replies queued towards a pipe's sender at most.
const PIPE_REPLY_QUEUE: usize = 1024;

impl RaftTransportService {
    async fn handle_append(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let group = self.group(&msg)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.append_entries(rpc).await;
        encode_reply(msg.group_id, &result)
    }

    async fn handle_vote(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let group = self.group(&msg)?;
        if std::time::Instant::now() < group.votes_from {
            // Like an unreachable voter: the candidate tries again later.
            return Err(Status::unavailable(
                "restarted recently: not voting until a leader's read lease would have run out",
            ));
        }
        let rpc: VoteRequest<u64> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.vote(rpc).await;
        encode_reply(msg.group_id, &result)
    }

    async fn handle_forward(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let result = match self.node.group(GroupId(msg.group_id)) {
            None => Err(ReplError::UnknownGroup(msg.group_id)),
            Some(group) => {
                let fwd: Forwarded = decode(&msg).map_err(bad_payload)?;
                self.node.handle_forwarded(&group, &fwd).await
            }
        };
        encode_reply(msg.group_id, &result)
    }

    async fn handle_frame(&self, frame: RaftFrame) -> RaftFrameReply {
        let msg = RaftMessage {
            group_id: frame.group_id,
            payload: frame.payload,
        };
        let result = match FrameKind::from_wire(frame.kind) {
            Some(FrameKind::Append) => self.handle_append(msg).await,
            Some(FrameKind::Vote) => self.handle_vote(msg).await,
            Some(FrameKind::Forward) => self.handle_forward(msg).await,
            None => Err(Status::invalid_argument(format!(
                "unknown raft frame kind {}",
                frame.kind
            ))),
        };
        match result {
            Ok(m) => RaftFrameReply {
                id: frame.id,
                payload: m.payload,
                code: 0,
                message: String::new(),
            },
            Err(status) => RaftFrameReply {
                id: frame.id,
                payload: Vec::new(),
                code: status.code() as i32,
                message: status.message().to_string(),
            },
        }
    }
}

type PipeReplies = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<RaftFrameReply, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.handle_append(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.handle_vote(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = request.into_inner();
        let group = self.group(&msg)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.install_snapshot(rpc).await;
        encode_reply(msg.group_id, &result).map(Response::new)
    }

    async fn forward(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.handle_forward(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn read_index(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        // Reads are forwarded through `forward` too; this entry point takes a
        // bare optional timestamp for tools.
        let msg = request.into_inner();
        let result = match self.node.group(GroupId(msg.group_id)) {
            None => Err(ReplError::UnknownGroup(msg.group_id)),
            Some(group) => {
                let ts: Option<u64> = decode(&msg).map_err(bad_payload)?;
                self.node
                    .handle_forwarded(
                        &group,
                        &Forwarded::Read(ts.map_or(ReadAt::Latest, ReadAt::Ts)),
                    )
                    .await
            }
        };
        encode_reply(msg.group_id, &result).map(Response::new)
    }

    type PipeStream = PipeReplies;

    /// Each frame is handled in its own task (a slow fsync of one group
    /// must not hold up another group's messages) and answered by id.
    async fn pipe(
        &self,
        request: Request<Streaming<RaftFrame>>,
    ) -> Result<Response<Self::PipeStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(PIPE_REPLY_QUEUE);
        let service = self.clone();
        let slots = Arc::new(Semaphore::new(PIPE_CONCURRENCY));
        tokio::spawn(async move {
            loop {
                let frame = match inbound.message().await {
                    Ok(Some(frame)) => frame,
                    // The sender closed the pipe, or it broke.
                    Ok(None) | Err(_) => return,
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let service = service.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let reply = service.handle_frame(frame).await;
                    let _ = tx.send(Ok(reply)).await;
                    drop(slot);
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
