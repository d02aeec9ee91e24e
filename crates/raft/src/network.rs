//! Raft transport, client side: one gRPC channel per peer address, shared by
//! every group (HTTP/2 multiplexes them), and openraft's network traits on
//! top. Payloads are bincode-encoded openraft messages tagged with the group.

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
    /// Address to dial instead of a peer's advertised one (name → address).
    /// The chaos harness routes each link through a proxy it controls.
    dial_overrides: Arc<RwLock<HashMap<String, String>>>,
}

impl Transport {
    pub fn new(dial_overrides: HashMap<String, String>) -> Self {
        Transport {
            channels: Arc::default(),
            dial_overrides: Arc::new(RwLock::new(dial_overrides)),
        }
    }

    /// A client for the peer `node` (named, advertised at `node.addr`).
    pub fn client(&self, node: &NodeInfo) -> Result<RaftTransportClient<Channel>, TransportError> {
        let addr = self
            .dial_overrides
            .read()
            .ok()
            .and_then(|m| m.get(&node.name).cloned())
            .unwrap_or_else(|| node.addr.clone());
        self.client_for_addr(&addr)
    }

    /// A client for a peer address.
    pub fn client_for_addr(
        &self,
        addr: &str,
    ) -> Result<RaftTransportClient<Channel>, TransportError> {
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
        Ok(RaftTransportClient::new(channel)
            .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES))
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
        let mut client = self
            .transport
            .client(&self.node)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let ttl = option.hard_ttl();
        let fut = async {
            match kind {
                Kind::Append => client.append_entries(msg).await,
                Kind::Vote => client.vote(msg).await,
                Kind::Snapshot => client.install_snapshot(msg).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action: match kind {
                        Kind::Append => RPCTypes::AppendEntries,
                        Kind::Vote => RPCTypes::Vote,
                        Kind::Snapshot => RPCTypes::InstallSnapshot,
                    },
                    id: self.self_id,
                    target: self.target,
                    timeout: ttl,
                }))
            }
            Ok(Err(status)) => {
                let err = TransportError::Rpc(status);
                return Err(RPCError::Unreachable(Unreachable::new(&err)));
            }
            Ok(Ok(reply)) => reply.into_inner(),
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
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
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
