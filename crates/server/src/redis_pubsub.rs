//! Redis pub/sub across the cluster. The Redis front end keeps each node's
//! subscriptions in its `Hub`; this module connects the hubs:
//!
//! * [`PubSubService`], the `RedisPubSub` gRPC service on the node's port,
//!   delivers a message published elsewhere to this node's subscribers
//!   (and never forwards it further) and answers PUBSUB queries about them;
//! * [`PeerBroadcaster`], the front end's `Broadcaster`, calls that service
//!   on every other member of the Raft groups this node hosts, all at once,
//!   each within [`PEER_DEADLINE`]: a node that is down or partitioned costs
//!   a PUBLISH at most that long and misses the message (Redis Cluster
//!   loses messages to unreachable nodes too). A node that failed is then
//!   skipped for [`PEER_BACKOFF`], so a partition does not slow every
//!   PUBLISH down by the deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use elastickv_api_redis::pubsub::{Broadcaster, Hub, SubscriptionInfo, SubscriptionQuery};
use elastickv_proto::channel::lazy_channel;
use elastickv_proto::internal::redis_pub_sub_client::RedisPubSubClient;
use elastickv_proto::internal::redis_pub_sub_server::{RedisPubSub, RedisPubSubServer};
use elastickv_proto::internal::{
    RedisPublishBatchRequest, RedisPublishReply, RedisPublishRequest, RedisSubscriptionsReply,
    RedisSubscriptionsRequest,
};
use elastickv_raft::RaftNode;
use elastickv_types::limits;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Most bytes of channels and messages in one `PublishBatch` request.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// `messages` cut into consecutive runs of at most [`MAX_BATCH_BYTES`]
/// (a single larger message travels alone).
fn batches(messages: &[(Bytes, Bytes)]) -> Vec<&[(Bytes, Bytes)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (c, m)) in messages.iter().enumerate() {
        let size = c.len() + m.len() + 16;
        if i > start && bytes + size > MAX_BATCH_BYTES {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

/// Longest a PUBLISH waits for one other node.
pub const PEER_DEADLINE: Duration = Duration::from_millis(500);

/// How long a peer that failed or timed out is left out.
pub const PEER_BACKOFF: Duration = Duration::from_secs(2);

/// Connection attempts to a peer give up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Most channel names one PUBSUB NUMSUB may ask a node about (the rest of
/// a longer request is answered 0 by that node).
const MAX_QUERY_NAMES: usize = 100_000;

/// The `RedisPubSub` service: delivery into this node's hub.
#[derive(Debug, Clone)]
pub struct PubSubService {
    hub: Arc<Hub>,
}

impl PubSubService {
    /// The tonic server for `hub`.
    pub fn server(hub: Arc<Hub>) -> RedisPubSubServer<PubSubService> {
        RedisPubSubServer::new(PubSubService { hub })
            .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl RedisPubSub for PubSubService {
    async fn publish(
        &self,
        request: Request<RedisPublishRequest>,
    ) -> Result<Response<RedisPublishReply>, Status> {
        let r = request.into_inner();
        let (channel, message) = (Bytes::from(r.channel), Bytes::from(r.message));
        let receivers = if r.shard {
            self.hub.publish_shard(&channel, &message)
        } else {
            self.hub.publish(&channel, &message)
        };
        Ok(Response::new(RedisPublishReply { receivers }))
    }

    async fn publish_batch(
        &self,
        request: Request<RedisPublishBatchRequest>,
    ) -> Result<Response<RedisPublishReply>, Status> {
        let mut receivers = 0i64;
        for m in request.into_inner().messages {
            let (channel, message) = (Bytes::from(m.channel), Bytes::from(m.message));
            let n = if m.shard {
                self.hub.publish_shard(&channel, &message)
            } else {
                self.hub.publish(&channel, &message)
            };
            receivers = receivers.saturating_add(n);
        }
        Ok(Response::new(RedisPublishReply { receivers }))
    }

    async fn subscriptions(
        &self,
        request: Request<RedisSubscriptionsRequest>,
    ) -> Result<Response<RedisSubscriptionsReply>, Status> {
        let r = request.into_inner();
        let query = SubscriptionQuery {
            channels: r
                .channels
                .then(|| r.has_pattern.then(|| Bytes::from(r.pattern))),
            numsub: r
                .numsub
                .into_iter()
                .take(MAX_QUERY_NAMES)
                .map(Bytes::from)
                .collect(),
            patterns: r.patterns,
            shard: r.shard,
        };
        let info = self.hub.query(&query);
        Ok(Response::new(RedisSubscriptionsReply {
            channels: info.channels.into_iter().map(|c| c.to_vec()).collect(),
            numsub: info.numsub,
            patterns: info.patterns.into_iter().map(|p| p.to_vec()).collect(),
        }))
    }
}

/// Fans PUBLISH and PUBSUB out to the other cluster members.
#[derive(Clone)]
pub struct PeerBroadcaster {
    raft: RaftNode,
    /// Peer name → address to dial instead of the advertised one.
    dial_overrides: HashMap<String, String>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Peers (by address) left out until the instant given.
    down: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for PeerBroadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBroadcaster").finish_non_exhaustive()
    }
}

impl PeerBroadcaster {
    pub fn new(raft: RaftNode, dial_overrides: HashMap<String, String>) -> Self {
        PeerBroadcaster {
            raft,
            dial_overrides,
            channels: Arc::default(),
            down: Arc::default(),
        }
    }

    /// Every other node of every group this node hosts (voters and
    /// learners), by name, with the address to dial. Membership changes
    /// are picked up on the next call.
    fn peers(&self) -> Vec<String> {
        let me = &self.raft.info().name;
        let mut peers: BTreeMap<String, String> = BTreeMap::new();
        for group in self.raft.groups() {
            let m = group.raft.metrics();
            let m = m.borrow();
            for (_, node) in m.membership_config.membership().nodes() {
                if node.name != *me {
                    peers.insert(node.name.clone(), node.addr.clone());
                }
            }
        }
        peers
            .into_iter()
            .map(|(name, addr)| self.dial_overrides.get(&name).cloned().unwrap_or(addr))
            .collect()
    }

    fn client(&self, addr: &str) -> Option<RedisPubSubClient<Channel>> {
        let channel = {
            let mut channels = self.channels.lock().ok()?;
            match channels.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let c = lazy_channel(addr, CONNECT_TIMEOUT, Some(PEER_DEADLINE)).ok()?;
                    channels.insert(addr.to_string(), c.clone());
                    c
                }
            }
        };
        Some(
            RedisPubSubClient::new(channel)
                .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES),
        )
    }

    /// Runs `call` against every peer at once; the answers of those that
    /// replied within [`PEER_DEADLINE`].
    async fn each_peer<T, F, Fut>(&self, call: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(RedisPubSubClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        let now = Instant::now();
        for addr in self.peers() {
            let skip = self
                .down
                .lock()
                .ok()
                .and_then(|d| d.get(&addr).copied())
                .is_some_and(|until| until > now);
            if skip {
                continue;
            }
            let Some(client) = self.client(&addr) else {
                tracing::debug!(%addr, "bad peer address for pub/sub");
                continue;
            };
            let fut = call(client);
            set.spawn(async move {
                let r = match tokio::time::timeout(PEER_DEADLINE, fut).await {
                    Ok(Ok(v)) => Some(v),
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "pub/sub peer failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "pub/sub peer timed out");
                        None
                    }
                };
                (addr, r)
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((addr, r)) = joined else {
                continue;
            };
            match r {
                Some(v) => out.push(v),
                None => {
                    if let Ok(mut d) = self.down.lock() {
                        d.insert(addr, Instant::now() + PEER_BACKOFF);
                    }
                }
            }
        }
        out
    }
}

#[async_trait]
impl Broadcaster for PeerBroadcaster {
    async fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        self.publish_to_peers(channel, message, false).await
    }

    async fn publish_shard(&self, channel: &Bytes, message: &Bytes) -> i64 {
        self.publish_to_peers(channel, message, true).await
    }

    async fn publish_many(&self, messages: &[(Bytes, Bytes)]) {
        // Each batch stays far below the gRPC message limit; batches go
        // one after another, so each peer sees the messages in order.
        for chunk in batches(messages) {
            let req = RedisPublishBatchRequest {
                messages: chunk
                    .iter()
                    .map(|(c, m)| RedisPublishRequest {
                        channel: c.to_vec(),
                        message: m.to_vec(),
                        shard: false,
                    })
                    .collect(),
            };
            self.each_peer(move |mut c| {
                let req = req.clone();
                async move { Ok(c.publish_batch(req).await?.into_inner().receivers) }
            })
            .await;
        }
    }

    async fn query(&self, query: &SubscriptionQuery) -> Vec<SubscriptionInfo> {
        self.query_peers(query).await
    }
}

impl PeerBroadcaster {
    async fn publish_to_peers(&self, channel: &Bytes, message: &Bytes, shard: bool) -> i64 {
        let req = RedisPublishRequest {
            channel: channel.to_vec(),
            message: message.to_vec(),
            shard,
        };
        self.each_peer(move |mut c| {
            let req = req.clone();
            async move { Ok(c.publish(req).await?.into_inner().receivers) }
        })
        .await
        .into_iter()
        .fold(0i64, |a, n| a.saturating_add(n))
    }

    async fn query_peers(&self, query: &SubscriptionQuery) -> Vec<SubscriptionInfo> {
        let req = RedisSubscriptionsRequest {
            channels: query.channels.is_some(),
            has_pattern: matches!(query.channels, Some(Some(_))),
            pattern: match &query.channels {
                Some(Some(p)) => p.to_vec(),
                _ => Vec::new(),
            },
            numsub: query.numsub.iter().map(|c| c.to_vec()).collect(),
            patterns: query.patterns,
            shard: query.shard,
        };
        let want = query.numsub.len();
        self.each_peer(move |mut c| {
            let req = req.clone();
            async move {
                let r = c.subscriptions(req).await?.into_inner();
                let mut numsub = r.numsub;
                // A peer answers one count per name; never trust it to.
                numsub.resize(want, 0);
                Ok(SubscriptionInfo {
                    channels: r.channels.into_iter().map(Bytes::from).collect(),
                    numsub,
                    patterns: r.patterns.into_iter().map(Bytes::from).collect(),
                })
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_order_and_bound_size() {
        let msg = |n: usize| (Bytes::from(vec![b'c'; 10]), Bytes::from(vec![b'm'; n]));
        let messages: Vec<(Bytes, Bytes)> = (0..10).map(|_| msg(300 * 1024)).collect();
        let runs = batches(&messages);
        // 3 messages of ~300 KiB fit under 1 MiB, the fourth does not.
        assert_eq!(
            runs.iter().map(|r| r.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert_eq!(runs.concat(), messages);
        let huge = vec![msg(2 << 20), msg(1)];
        assert_eq!(batches(&huge).len(), 2);
        assert!(batches(&[]).is_empty());
    }
}
