//! Pub/sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB
//! CHANNELS/NUMSUB/NUMPAT. Each node keeps its own clients' subscriptions
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

/// PUBSUB CHANNELS / NUMSUB / NUMPAT (`name` is the full command name),
/// over every node that answers.
pub async fn pubsub_command(
    hub: &Hub,
    broadcaster: Option<&dyn Broadcaster>,
    name: &str,
    argv: &[Bytes],
) -> Frame {
    let query = match name {
        "pubsub|channels" => SubscriptionQuery {
            channels: Some(argv.get(2).cloned()),
            ..Default::default()
        },
        "pubsub|numsub" => SubscriptionQuery {
            numsub: argv[2..].to_vec(),
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
        "pubsub|channels" => {
            let all: BTreeSet<Bytes> = answers.into_iter().flat_map(|a| a.channels).collect();
            Frame::Array(all.into_iter().map(Frame::Bulk).collect())
        }
        "pubsub|numsub" => {
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn count(client: &ClientState) -> i64 {
    i64::try_from(client.subscriptions.count()).unwrap_or(i64::MAX)
}

impl Hub {
    /// SUBSCRIBE / PSUBSCRIBE: one confirmation per name.
    pub fn subscribe(
        &self,
        client: &mut ClientState,
        names: &[Bytes],
        pattern: bool,
    ) -> Vec<Frame> {
        let Some(tx) = client.push.clone() else {
            return vec![Frame::error("pub/sub needs a connection")];
        };
        let kind = if pattern { "psubscribe" } else { "subscribe" };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let table = if pattern {
                &self.patterns
            } else {
                &self.channels
            };
            lock(table)
                .entry(name.clone())
                .or_default()
                .insert(client.id, tx.clone());
            if pattern {
                client.subscriptions.patterns.insert(name.clone());
            } else {
                client.subscriptions.channels.insert(name.clone());
            }
            out.push(Frame::Push(vec![
                Frame::from(kind),
                Frame::Bulk(name.clone()),
                Frame::Integer(count(client)),
            ]));
        }
        out
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE (no names: all of the client's).
    pub fn unsubscribe(
        &self,
        client: &mut ClientState,
        names: &[Bytes],
        pattern: bool,
    ) -> Vec<Frame> {
        let kind = if pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let names: Vec<Bytes> = if names.is_empty() {
            if pattern {
                client.subscriptions.patterns.iter().cloned().collect()
            } else {
                client.subscriptions.channels.iter().cloned().collect()
            }
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return vec![Frame::Push(vec![
                Frame::from(kind),
                Frame::Null,
                Frame::Integer(count(client)),
            ])];
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            self.remove(&name, client.id, pattern);
            if pattern {
                client.subscriptions.patterns.remove(&name);
            } else {
                client.subscriptions.channels.remove(&name);
            }
            out.push(Frame::Push(vec![
                Frame::from(kind),
                Frame::Bulk(name),
                Frame::Integer(count(client)),
            ]));
        }
        out
    }

    fn remove(&self, name: &Bytes, id: u64, pattern: bool) {
        let table = if pattern {
            &self.patterns
        } else {
            &self.channels
        };
        let mut t = lock(table);
        if let Some(subs) = t.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                t.remove(name);
            }
        }
    }

    /// Drops every subscription of a client (RESET, disconnect).
    pub fn forget(&self, client: &ClientState) {
        for c in &client.subscriptions.channels {
            self.remove(c, client.id, false);
        }
        for p in &client.subscriptions.patterns {
            self.remove(p, client.id, true);
        }
    }

    /// PUBLISH: delivers to this node's subscribers; returns how many
    /// received it.
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let mut n = 0;
        if let Some(subs) = lock(&self.channels).get(channel) {
            for tx in subs.values() {
                let msg = Frame::Push(vec![
                    Frame::from("message"),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]);
                if tx.try_send(msg).is_ok() {
                    n += 1;
                }
            }
        }
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

    /// Channels and patterns with at least one subscriber on this node
    /// (INFO `pubsub_channels` / `pubsub_patterns`).
    pub fn counts(&self) -> (usize, usize) {
        (lock(&self.channels).len(), lock(&self.patterns).len())
    }

    /// This node's answer to a PUBSUB query.
    pub fn query(&self, q: &SubscriptionQuery) -> SubscriptionInfo {
        let mut out = SubscriptionInfo::default();
        if let Some(filter) = &q.channels {
            out.channels = lock(&self.channels)
                .keys()
                .filter(|c| filter.as_ref().is_none_or(|p| glob::glob_match(p, c)))
                .cloned()
                .collect();
        }
        if !q.numsub.is_empty() {
            let t = lock(&self.channels);
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
