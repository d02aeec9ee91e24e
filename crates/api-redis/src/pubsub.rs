//! Pub/sub within one node: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE
//! PUBLISH PUBSUB CHANNELS/NUMSUB/NUMPAT. A message published on a node
//! reaches the subscribers connected to that node only (cross-node
//! delivery is not built yet). Each subscriber has a bounded queue (see
//! the server's `PUSH_QUEUE`); a subscriber that does not keep up loses
//! messages instead of growing the node's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use crate::frame::Frame;
use crate::glob;
use crate::server::ClientState;

type Subscribers = HashMap<u64, Sender<Frame>>;

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
