//! Pub/sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB
//! CHANNELS/NUMSUB/NUMPAT, and Redis 7's sharded pub/sub (SSUBSCRIBE
//! SUNSUBSCRIBE SPUBLISH PUBSUB SHARDCHANNELS/SHARDNUMSUB: a namespace of
//! its own, delivered as `smessage`; the whole cluster is one shard, so
//! an SPUBLISH reaches every node like a PUBLISH). Each node keeps its own clients' subscriptions
//! ([`Hub`]); a PUBLISH is delivered to this node's subscribers and, through
//! the [`Broadcaster`] the node wires in (gRPC to every other cluster
//! member, in the server crate), to every other node's, and answers the
//! receivers summed over the nodes that answered. PUBSUB queries are
//! answered cluster-wide the same way (channel lists and pattern sets are
//! merged, counts summed). A node that does not answer within the
//! broadcaster's deadline misses the message, as a partitioned node does in
//! Redis Cluster. Each subscriber has a bounded queue (see the server's
//! `PUSH_QUEUE`); a subscriber that does not keep up loses messages instead
//! of growing the node's memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use crate::frame::Frame;
use crate::glob;
use crate::server::ClientState;

type Subscribers = HashMap<u64, Sender<Frame>>;

/// What a PUBSUB query asks each node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionQuery {
    /// PUBSUB CHANNELS: `Some(pattern filter)`.
    pub channels: Option<Option<Bytes>>,
    /// PUBSUB NUMSUB: these channels' subscriber counts.
    pub numsub: Vec<Bytes>,
    /// PUBSUB NUMPAT: the subscribed patterns.
    pub patterns: bool,
    /// `channels` and `numsub` are about shard channels.
    pub shard: bool,
}

/// One node's answer to a [`SubscriptionQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// Active channels (matching the filter).
    pub channels: Vec<Bytes>,
    /// Counts, in the order of the query's `numsub`.
    pub numsub: Vec<i64>,
    /// Subscribed patterns.
    pub patterns: Vec<Bytes>,
}

/// Carries pub/sub traffic to the other nodes of the cluster.
/// Implementations bound how long a node that does not answer may delay
/// the caller, and simply leave it out.
#[async_trait]
pub trait Broadcaster: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `message` to every other node's subscribers of `channel`;
    /// returns how many received it there.
    async fn publish(&self, channel: &Bytes, message: &Bytes) -> i64;

    /// SPUBLISH: delivers `message` to every other node's subscribers of
    /// shard channel `channel`; returns how many received it there.
    async fn publish_shard(&self, channel: &Bytes, message: &Bytes) -> i64;

    /// Delivers several messages, in order, to every other node's
    /// subscribers (keyspace notifications of one transaction).
    async fn publish_many(&self, messages: &[(Bytes, Bytes)]) {
        for (channel, message) in messages {
            self.publish(channel, message).await;
        }
    }

    /// Every other node's answer to `query`.
    async fn query(&self, query: &SubscriptionQuery) -> Vec<SubscriptionInfo>;
}

/// PUBLISH: this node's subscribers and, through `broadcaster`, every
/// other node's; the total number of receivers.
pub async fn publish(
    hub: &Hub,
    broadcaster: Option<&dyn Broadcaster>,
    channel: &Bytes,
    message: &Bytes,
) -> i64 {
    let local = hub.publish(channel, message);
    match broadcaster {
        Some(b) => local.saturating_add(b.publish(channel, message).await),
        None => local,
    }
}

/// SPUBLISH: this node's shard-channel subscribers and every other
/// node's; the total number of receivers.
pub async fn publish_shard(
    hub: &Hub,
    broadcaster: Option<&dyn Broadcaster>,
    channel: &Bytes,
    message: &Bytes,
) -> i64 {
    let local = hub.publish_shard(channel, message);
    match broadcaster {
        Some(b) => local.saturating_add(b.publish_shard(channel, message).await),
        None => local,
    }
}

/// PUBSUB CHANNELS / NUMSUB / NUMPAT (`name` is the full command name),
/// over every node that answers.
pub async fn pubsub_command(
    hub: &Hub,
    broadcaster: Option<&dyn Broadcaster>,
    name: &str,
    argv: &[Bytes],
) -> Frame {
    let shard = name.starts_with("pubsub|shard");
    let query = match name {
        "pubsub|channels" | "pubsub|shardchannels" => SubscriptionQuery {
            channels: Some(argv.get(2).cloned()),
            shard,
            ..Default::default()
        },
        "pubsub|numsub" | "pubsub|shardnumsub" => SubscriptionQuery {
            numsub: argv[2..].to_vec(),
            shard,
            ..Default::default()
        },
        _ => SubscriptionQuery {
            patterns: true,
            ..Default::default()
        },
    };
    let mut answers = vec![hub.query(&query)];
    if let Some(b) = broadcaster {
        answers.extend(b.query(&query).await);
    }
    match name {
        "pubsub|channels" | "pubsub|shardchannels" => {
            let all: BTreeSet<Bytes> = answers.into_iter().flat_map(|a| a.channels).collect();
            Frame::Array(all.into_iter().map(Frame::Bulk).collect())
        }
        "pubsub|numsub" | "pubsub|shardnumsub" => {
            let mut sums = vec![0i64; query.numsub.len()];
            for a in &answers {
                for (s, n) in sums.iter_mut().zip(&a.numsub) {
                    *s = s.saturating_add(*n);
                }
            }
            // A flat array in both protocols, as Redis replies.
            Frame::Array(
                query
                    .numsub
                    .iter()
                    .zip(sums)
                    .flat_map(|(c, n)| [Frame::Bulk(c.clone()), Frame::Integer(n)])
                    .collect(),
            )
        }
        _ => {
            // Redis counts distinct patterns, not subscriptions.
            let all: BTreeSet<Bytes> = answers.into_iter().flat_map(|a| a.patterns).collect();
            Frame::Integer(i64::try_from(all.len()).unwrap_or(i64::MAX))
        }
    }
}

/// Channel and pattern subscriptions of every client of this node.
#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<BTreeMap<Bytes, Subscribers>>,
    patterns: Mutex<BTreeMap<Bytes, Subscribers>>,
    shards: Mutex<BTreeMap<Bytes, Subscribers>>,
}

/// Which kind of subscription a (un)subscribe command is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubKind {
    /// SUBSCRIBE / UNSUBSCRIBE.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE / SUNSUBSCRIBE.
    Shard,
}

impl SubKind {
    /// The kind a (un)subscribe command name is about.
    pub fn of_command(name: &str) -> SubKind {
        match name.as_bytes().first() {
            Some(b'p') => SubKind::Pattern,
            Some(b's') if name != "subscribe" => SubKind::Shard,
            _ => SubKind::Channel,
        }
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            SubKind::Channel => ("subscribe", "unsubscribe"),
            SubKind::Pattern => ("psubscribe", "punsubscribe"),
            SubKind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pushes `[kind, channel, message]` to the subscribers of `channel` in
/// `table`; returns how many took it.
fn deliver(
    table: &Mutex<BTreeMap<Bytes, Subscribers>>,
    kind: &'static str,
    channel: &Bytes,
    message: &Bytes,
) -> i64 {
    let mut n = 0;
    if let Some(subs) = lock(table).get(channel) {
        for tx in subs.values() {
            let msg = Frame::Push(vec![
                Frame::from(kind),
                Frame::Bulk(channel.clone()),
                Frame::Bulk(message.clone()),
            ]);
            if tx.try_send(msg).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// The client's own set of subscriptions of `kind`.
fn client_set(client: &mut ClientState, kind: SubKind) -> &mut BTreeSet<Bytes> {
    let s = &mut client.subscriptions;
    match kind {
        SubKind::Channel => &mut s.channels,
        SubKind::Pattern => &mut s.patterns,
        SubKind::Shard => &mut s.shard_channels,
    }
}

/// The count a (un)subscribe confirmation carries: shard subscriptions
/// for the shard commands, channels and patterns for the others (as
/// Redis 7 counts them).
fn count(client: &ClientState, kind: SubKind) -> i64 {
    let s = &client.subscriptions;
    let n = match kind {
        SubKind::Shard => s.shard_channels.len(),
        _ => s.channels.len() + s.patterns.len(),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Hub {
    fn table(&self, kind: SubKind) -> &Mutex<BTreeMap<Bytes, Subscribers>> {
        match kind {
            SubKind::Channel => &self.channels,
            SubKind::Pattern => &self.patterns,
            SubKind::Shard => &self.shards,
        }
    }

    /// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE: one confirmation per name.
    pub fn subscribe(
        &self,
        client: &mut ClientState,
        names: &[Bytes],
        kind: SubKind,
    ) -> Vec<Frame> {
        let Some(tx) = client.push.clone() else {
            return vec![Frame::error("pub/sub needs a connection")];
        };
        let (verb, _) = kind.names();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            lock(self.table(kind))
                .entry(name.clone())
                .or_default()
                .insert(client.id, tx.clone());
            client_set(client, kind).insert(name.clone());
            out.push(Frame::Push(vec![
                Frame::from(verb),
                Frame::Bulk(name.clone()),
                Frame::Integer(count(client, kind)),
            ]));
        }
        out
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE (no names: all of the
    /// client's of that kind).
    pub fn unsubscribe(
        &self,
        client: &mut ClientState,
        names: &[Bytes],
        kind: SubKind,
    ) -> Vec<Frame> {
        let (_, verb) = kind.names();
        let names: Vec<Bytes> = if names.is_empty() {
            client_set(client, kind).iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return vec![Frame::Push(vec![
                Frame::from(verb),
                Frame::Null,
                Frame::Integer(count(client, kind)),
            ])];
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            self.remove(&name, client.id, kind);
            client_set(client, kind).remove(&name);
            out.push(Frame::Push(vec![
                Frame::from(verb),
                Frame::Bulk(name),
                Frame::Integer(count(client, kind)),
            ]));
        }
        out
    }

    fn remove(&self, name: &Bytes, id: u64, kind: SubKind) {
        let mut t = lock(self.table(kind));
        if let Some(subs) = t.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                t.remove(name);
            }
        }
    }

    /// Drops every subscription of a client (RESET, disconnect).
    pub fn forget(&self, client: &ClientState) {
        let s = &client.subscriptions;
        for (set, kind) in [
            (&s.channels, SubKind::Channel),
            (&s.patterns, SubKind::Pattern),
            (&s.shard_channels, SubKind::Shard),
        ] {
            for name in set {
                self.remove(name, client.id, kind);
            }
        }
    }

    /// SPUBLISH: delivers to this node's subscribers of shard channel
    /// `channel`; returns how many received it.
    pub fn publish_shard(&self, channel: &Bytes, message: &Bytes) -> i64 {
        deliver(&self.shards, "smessage", channel, message)
    }

    /// PUBLISH: delivers to this node's subscribers; returns how many
    /// received it.
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let mut n = deliver(&self.channels, "message", channel, message);
        for (pattern, subs) in lock(&self.patterns).iter() {
            if !glob::glob_match(pattern, channel) {
                continue;
            }
            for tx in subs.values() {
                let msg = Frame::Push(vec![
                    Frame::from("pmessage"),
                    Frame::Bulk(pattern.clone()),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]);
                if tx.try_send(msg).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether any client of this node is subscribed to a channel or a
    /// pattern (`shard`: to a shard channel).
    pub fn has_subscribers(&self, shard: bool) -> bool {
        if shard {
            !lock(&self.shards).is_empty()
        } else {
            !lock(&self.channels).is_empty() || !lock(&self.patterns).is_empty()
        }
    }

    /// Channels, patterns and shard channels with at least one
    /// subscriber on this node (INFO `pubsub_channels`, `pubsub_patterns`,
    /// `pubsubshard_channels`).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            lock(&self.channels).len(),
            lock(&self.patterns).len(),
            lock(&self.shards).len(),
        )
    }

    /// This node's answer to a PUBSUB query.
    pub fn query(&self, q: &SubscriptionQuery) -> SubscriptionInfo {
        let mut out = SubscriptionInfo::default();
        let channels = if q.shard {
            &self.shards
        } else {
            &self.channels
        };
        if let Some(filter) = &q.channels {
            out.channels = lock(channels)
                .keys()
                .filter(|c| filter.as_ref().is_none_or(|p| glob::glob_match(p, c)))
                .cloned()
                .collect();
        }
        if !q.numsub.is_empty() {
            let t = lock(channels);
            out.numsub = q
                .numsub
                .iter()
                .map(|c| {
                    let n = t.get(c).map(|s| s.len()).unwrap_or(0);
                    i64::try_from(n).unwrap_or(i64::MAX)
                })
                .collect();
        }
        if q.patterns {
            out.patterns = lock(&self.patterns).keys().cloned().collect();
        }
        out
    }

    /// PUBSUB CHANNELS [pattern]
    pub fn channels(&self, pattern: Option<&Bytes>) -> Frame {
        Frame::Array(
            lock(&self.channels)
                .keys()
                .filter(|c| pattern.is_none_or(|p| glob::glob_match(p, c)))
                .map(|c| Frame::Bulk(c.clone()))
                .collect(),
        )
    }

    /// PUBSUB NUMSUB [channel ...]
    pub fn numsub(&self, channels: &[Bytes]) -> Frame {
        let t = lock(&self.channels);
        // A flat array in both protocols, as Redis replies.
        Frame::Array(
            channels
                .iter()
                .flat_map(|c| {
                    let n = t.get(c).map(|s| s.len()).unwrap_or(0);
                    [
                        Frame::Bulk(c.clone()),
                        Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
                    ]
                })
                .collect(),
        )
    }

    /// PUBSUB NUMPAT
    pub fn numpat(&self) -> Frame {
        Frame::Integer(i64::try_from(lock(&self.patterns).len()).unwrap_or(i64::MAX))
    }
}
