//! Raft transport, client side: one gRPC channel per peer address, shared by
//! every group (HTTP/2 multiplexes them), and openraft's network traits on
//! top. Payloads are bincode-encoded openraft messages tagged with the group.

use crate::durability::Durability;
pub(crate) use crate::pipe::FrameKind;
use crate::pipe::{PipeError, Pipes};
use crate::types::{NodeInfo, TypeConfig};
use elastickv_proto::channel::lazy_channel;
use elastickv_proto::internal::raft_transport_client::RaftTransportClient;
use elastickv_proto::internal::RaftMessage;
use elastickv_types::{limits, GroupId};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RPCTypes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tonic::transport::Channel;

/// Errors of the transport itself (not of the remote Raft).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("bad peer address {0}")]
    BadAddress(String),
    #[error("rpc failed: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("encoding failed: {0}")]
    Codec(#[from] bincode::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The node's connections to its peers. Cheap to clone.
#[derive(Clone, Default)]
pub struct Transport {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// One message stream per peer over those channels (`pipe.rs`).
    pipes: Pipes,
    /// Address to dial instead of a peer's advertised one (name → address).
    /// The chaos harness routes each link through a proxy it controls.
    dial_overrides: Arc<RwLock<HashMap<String, String>>>,
}

impl Transport {
    pub fn new(dial_overrides: HashMap<String, String>) -> Self {
        Transport {
            channels: Arc::default(),
            pipes: Pipes::default(),
            dial_overrides: Arc::new(RwLock::new(dial_overrides)),
        }
    }

    /// Where to dial the peer `node` (named, advertised at `node.addr`).
    fn dial_addr(&self, node: &NodeInfo) -> String {
        self.dial_overrides
            .read()
            .ok()
            .and_then(|m| m.get(&node.name).cloned())
            .unwrap_or_else(|| node.addr.clone())
    }

    /// A client for the peer `node`.
    pub fn client(&self, node: &NodeInfo) -> Result<RaftTransportClient<Channel>, TransportError> {
        self.client_for_addr(&self.dial_addr(node))
    }

    /// Send one message to `node` over its pipe and wait for the answer.
    pub(crate) async fn call(
        &self,
        node: &NodeInfo,
        kind: FrameKind,
        group: GroupId,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<RaftMessage, PipeError> {
        let addr = self.dial_addr(node);
        let channel = || self.channel_for_addr(&addr).map_err(|e| e.to_string());
        self.pipes
            .call(&addr, channel, kind, group.0, payload, timeout)
            .await
    }

    /// A client for a peer address.
    pub fn client_for_addr(
        &self,
        addr: &str,
    ) -> Result<RaftTransportClient<Channel>, TransportError> {
        Ok(RaftTransportClient::new(self.channel_for_addr(addr)?)
            .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES))
    }

    /// The shared channel to a peer address.
    fn channel_for_addr(&self, addr: &str) -> Result<Channel, TransportError> {
        let channel = {
            let mut channels = self
                .channels
                .lock()
                .map_err(|_| TransportError::BadAddress("transport lock poisoned".into()))?;
            match channels.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let channel = lazy_channel(addr, Duration::from_millis(500), None)
                        .map_err(|_| TransportError::BadAddress(addr.to_string()))?;
                    channels.insert(addr.to_string(), channel.clone());
                    channel
                }
            }
        };
        Ok(channel)
    }
}

pub(crate) fn encode<T: Serialize>(
    group: GroupId,
    value: &T,
) -> Result<RaftMessage, bincode::Error> {
    Ok(RaftMessage {
        group_id: group.0,
        payload: bincode::serialize(value)?,
    })
}

pub(crate) fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, bincode::Error> {
    bincode::deserialize(&msg.payload)
}

/// Creates per-peer network handles for one group.
pub struct NetworkFactory {
    pub(crate) group: GroupId,
    pub(crate) self_id: u64,
    pub(crate) transport: Transport,
    /// This node's durable log point, which caps the commit index it sends.
    pub(crate) durability: Arc<Durability>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerNetwork {
            group: self.group,
            self_id: self.self_id,
            target,
            node: node.clone(),
            transport: self.transport.clone(),
            durability: self.durability.clone(),
        }
    }
}

/// Raft RPCs of one group to one peer.
pub struct PeerNetwork {
    group: GroupId,
    self_id: u64,
    target: u64,
    node: NodeInfo,
    transport: Transport,
    durability: Arc<Durability>,
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
}

impl PeerNetwork {
    async fn call<Req, Resp, E>(
        &self,
        kind: Kind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, NodeInfo, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let msg = encode(self.group, req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let ttl = option.hard_ttl();
        let timeout = || {
            RPCError::Timeout(Timeout {
                action: match kind {
                    Kind::Append => RPCTypes::AppendEntries,
                    Kind::Vote => RPCTypes::Vote,
                    Kind::Snapshot => RPCTypes::InstallSnapshot,
                },
                id: self.self_id,
                target: self.target,
                timeout: ttl,
            })
        };
        let frame_kind = match kind {
            Kind::Append => Some(FrameKind::Append),
            Kind::Vote => Some(FrameKind::Vote),
            // Snapshots are large and rare: their own HTTP/2 stream keeps
            // them from holding up the pipe's small messages.
            Kind::Snapshot => None,
        };
        let reply = match frame_kind {
            Some(frame_kind) => match self
                .transport
                .call(&self.node, frame_kind, self.group, msg.payload, ttl)
                .await
            {
                Ok(reply) => reply,
                Err(PipeError::Timeout(_)) => return Err(timeout()),
                Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            },
            None => {
                let mut client = self
                    .transport
                    .client(&self.node)
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                match tokio::time::timeout(ttl, client.install_snapshot(msg)).await {
                    Err(_) => return Err(timeout()),
                    Ok(Err(status)) => {
                        let err = TransportError::Rpc(status);
                        return Err(RPCError::Unreachable(Unreachable::new(&err)));
                    }
                    Ok(Ok(reply)) => reply.into_inner(),
                }
            }
        };
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        // openraft counts the leader's own appends before they are on its
        // disk; followers must not apply what only they hold durably.
        rpc.leader_commit = self.durability.cap_commit(rpc.leader_commit);
        self.call(Kind::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, NodeInfo, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        self.call(Kind::Vote, &rpc, &option).await
    }
}
