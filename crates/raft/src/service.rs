//! Raft transport, server side: the `RaftTransport` gRPC service that
//! dispatches every group's Raft messages and forwarded requests to the
//! hosted group.

use crate::error::ReplError;
use crate::network::{decode, encode};
use crate::node::{Forwarded, RaftNode};
use crate::types::TypeConfig;
use elastickv_proto::internal::raft_transport_server::{RaftTransport, RaftTransportServer};
use elastickv_proto::internal::RaftMessage;
use elastickv_types::{limits, GroupId};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

/// The gRPC service; add it to the node's tonic server.
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

fn reply<T: serde::Serialize>(group: u64, value: &T) -> Result<Response<RaftMessage>, Status> {
    encode(GroupId(group), value)
        .map(Response::new)
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = request.into_inner();
        let group = self.group(&msg)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.append_entries(rpc).await;
        reply(msg.group_id, &result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = request.into_inner();
        let group = self.group(&msg)?;
        if std::time::Instant::now() < group.votes_from {
            // Like an unreachable voter: the candidate tries again later.
            return Err(Status::unavailable(
                "restarted recently: not voting until a leader's read lease would have run out",
            ));
        }
        let rpc: VoteRequest<u64> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.vote(rpc).await;
        reply(msg.group_id, &result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = request.into_inner();
        let group = self.group(&msg)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&msg).map_err(bad_payload)?;
        let result = group.raft.install_snapshot(rpc).await;
        reply(msg.group_id, &result)
    }

    async fn forward(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = request.into_inner();
        let result = match self.node.group(GroupId(msg.group_id)) {
            None => Err(ReplError::UnknownGroup(msg.group_id)),
            Some(group) => {
                let fwd: Forwarded = decode(&msg).map_err(bad_payload)?;
                self.node.handle_forwarded(&group, &fwd).await
            }
        };
        reply(msg.group_id, &result)
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
                    .handle_forwarded(&group, &Forwarded::Read(ts))
                    .await
            }
        };
        reply(msg.group_id, &result)
    }
}
