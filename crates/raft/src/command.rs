//! Commands replicated through a group's Raft log, and their results.
//!
//! One log entry carries a [`Proposal`]: a batch of independent client
//! [`Request`]s gathered by the leader's proposer, so many concurrent writes
//! cost one Raft round. Each request has its own id for de-duplication and
//! its own result.

use elastickv_types::{RequestId, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One write inside an atomic multi-key batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    Put {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    Delete {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
}

impl Mutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// What a transaction does to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnKind {
    Put(#[serde(with = "serde_bytes")] Vec<u8>),
    Delete,
    /// Write nothing; conflict if the key was written after `since`.
    Lock {
        since: Timestamp,
    },
}

/// One key of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMutation {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub kind: TxnKind,
}

/// A Percolator lock, stored in the group's lock table until the
/// transaction commits or rolls back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub start_ts: Timestamp,
    #[serde(with = "serde_bytes")]
    pub primary: Vec<u8>,
    pub ttl_ms: u64,
    /// Physical time (ms) the prewrite was applied at, by the entry's clock.
    pub created_ms: u64,
    /// The commit timestamp must be at least this: above every read this
    /// group served before the prewrite.
    pub min_commit_ts: Timestamp,
    pub kind: TxnKind,
}

/// Why a transactional request could not proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnError {
    /// The key was committed at `latest_ts`, after the transaction started.
    WriteConflict {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        latest_ts: Timestamp,
    },
    /// Another transaction holds a lock on the key.
    Locked {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        lock: Lock,
    },
    /// This transaction was rolled back (by itself or a resolver).
    Aborted,
    /// The transaction already committed: it cannot be rolled back.
    AlreadyCommitted { commit_ts: Timestamp },
    /// Malformed request (commit ts not above start ts, too old…).
    Invalid(String),
}

/// The fate of a transaction, as its primary key's group knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Committed {
        commit_ts: Timestamp,
    },
    RolledBack,
    /// Still locked and its lock has not expired.
    Locked {
        ttl_left_ms: u64,
    },
}

/// The key ranges a group owns, at a catalog version. A write of a key
/// outside them was routed with a stale table and is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub version: u64,
    /// `[start, end)` pairs; `end` `None` is unbounded.
    pub ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Ownership {
    pub fn owns(&self, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(s, e)| key >= s.as_slice() && e.as_deref().is_none_or(|e| key < e))
    }

    /// Whether every key of `[start, end)` (`end` `None`: unbounded) is
    /// owned; adjacent owned ranges (the halves of a split) join up.
    pub fn covers(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        let mut sorted: Vec<&(Vec<u8>, Option<Vec<u8>>)> = self.ranges.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut covered_to: Vec<u8> = start.to_vec();
        for (s, e) in sorted {
            if s.as_slice() > covered_to.as_slice() {
                continue;
            }
            match e {
                None => return true,
                Some(e) if e.as_slice() > covered_to.as_slice() => covered_to = e.clone(),
                Some(_) => {}
            }
            if end.is_some_and(|end| covered_to.as_slice() >= end) {
                return true;
            }
        }
        end.is_some_and(|end| covered_to.as_slice() >= end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_joins_adjacent_ranges() {
        let o = Ownership {
            version: 2,
            ranges: vec![(b"m".to_vec(), None), (b"g".to_vec(), Some(b"m".to_vec()))],
        };
        assert!(o.covers(b"h", Some(b"z")));
        assert!(o.covers(b"g", None));
        assert!(!o.covers(b"a", Some(b"h")));
        assert!(!o.covers(b"f", None));
        let bounded = Ownership {
            version: 1,
            ranges: vec![(Vec::new(), Some(b"m".to_vec()))],
        };
        assert!(bounded.covers(b"", Some(b"m")));
        assert!(!bounded.covers(b"", Some(b"n")));
        assert!(!bounded.covers(b"c", None));
    }

    /// Log entries written before the payload and the ops were shared must
    /// decode the same, and new ones must encode as before.
    #[test]
    fn a_proposal_encodes_as_owned_requests_did() {
        #[derive(Serialize)]
        struct OwnedRequest {
            id: RequestId,
            ts: Timestamp,
            op: Op,
            attempt: u32,
        }
        #[derive(Serialize)]
        struct OwnedProposal {
            requests: Vec<OwnedRequest>,
        }
        let ops = [
            (
                7,
                Op::Write {
                    mutations: vec![Mutation::Put {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                    }],
                },
            ),
            (8, Op::HlcCeiling { ms: 9 }),
        ];
        let old = bincode::serialize(&OwnedProposal {
            requests: ops
                .iter()
                .map(|(id, op)| OwnedRequest {
                    id: RequestId(*id),
                    ts: 40 + *id as u64,
                    op: op.clone(),
                    attempt: 1,
                })
                .collect(),
        })
        .expect("encode");
        let shared = Proposal {
            requests: ops
                .iter()
                .map(|(id, op)| Request {
                    id: RequestId(*id),
                    ts: 40 + *id as u64,
                    op: Arc::new(op.clone()),
                    attempt: 1,
                })
                .collect(),
        };
        assert_eq!(bincode::serialize(&shared).expect("encode"), old);
        let back: Proposal = bincode::deserialize(&old).expect("decode");
        assert_eq!(back, shared);
    }
}

/// An operation on a group's state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Record the ranges this group owns (newer catalog versions only).
    SetOwnership(Ownership),
    /// Apply all mutations atomically at one commit timestamp.
    Write { mutations: Vec<Mutation> },
    /// Record a physical HLC ceiling (ms) committed by the leader.
    HlcCeiling { ms: u64 },
    /// Transaction whose keys all live in this group: check for conflicts
    /// and write at once.
    OnePhase {
        start_ts: Timestamp,
        mutations: Vec<TxnMutation>,
    },
    /// Lock the keys of a transaction (first phase of two).
    Prewrite {
        start_ts: Timestamp,
        #[serde(with = "serde_bytes")]
        primary: Vec<u8>,
        mutations: Vec<TxnMutation>,
        ttl_ms: u64,
    },
    /// Turn the transaction's locks on `keys` into versions at `commit_ts`.
    Commit {
        start_ts: Timestamp,
        commit_ts: Timestamp,
        keys: Vec<Vec<u8>>,
    },
    /// Remove the transaction's locks on `keys` and remember it rolled back.
    /// `primary` identifies the transaction with `start_ts` (`None`: any
    /// lock with that start timestamp, for the client-driven API).
    Rollback {
        start_ts: Timestamp,
        primary: Option<Vec<u8>>,
        keys: Vec<Vec<u8>>,
    },
    /// Report the fate of the transaction whose primary is `primary`,
    /// rolling it back if its lock expired.
    CheckTxnStatus {
        #[serde(with = "serde_bytes")]
        primary: Vec<u8>,
        start_ts: Timestamp,
    },
}

/// A client request: an op, its de-duplication id, and the timestamp the
/// leader's proposer gave it (0 until the leader assigns one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub ts: Timestamp,
    /// Shared: a request is cloned on its way to the proposer (kept for a
    /// retry after a leader change) and into forwarded batches, and a clone
    /// must not copy its keys and values. Encoded as the `Op` itself.
    #[serde(with = "shared_op")]
    pub op: Arc<Op>,
    /// 0 for the first time this request is sent, then 1, 2… A first
    /// attempt is proposed at most once, so only a resend can be a
    /// duplicate: the state machine looks up its de-duplication record
    /// only for `attempt > 0` (it records every request either way).
    pub attempt: u32,
}

/// The payload of one Raft log entry.
///
/// Shared, not owned: the log store keeps appended entries in its cache
/// and hands out clones for every AppendEntries to every follower and for
/// the apply, so a clone must not copy the requests' keys and values. It
/// encodes as a plain sequence, exactly as a `Vec<Request>` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    #[serde(with = "shared_requests")]
    pub requests: Arc<[Request]>,
}

impl Default for Proposal {
    fn default() -> Self {
        Proposal {
            requests: Arc::from(Vec::new()),
        }
    }
}

/// Serde for `Arc<Op>` as the `Op` itself.
mod shared_op {
    use super::Op;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(op: &Arc<Op>, s: S) -> Result<S::Ok, S::Error> {
        Op::serialize(op, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Op>, D::Error> {
        Op::deserialize(d).map(Arc::new)
    }
}

/// Serde for `Arc<[Request]>` as a sequence (serde's own impl needs its
/// `rc` feature, which would rebuild every crate that uses serde).
mod shared_requests {
    use super::Request;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(requests: &Arc<[Request]>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(requests.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[Request]>, D::Error> {
        Vec::<Request>::deserialize(d).map(Arc::from)
    }
}

/// The outcome of applying one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// Written at `commit_ts` (also returned for a de-duplicated retry).
    Written { commit_ts: Timestamp },
    /// A ceiling was recorded.
    Ceiling,
    /// Refused by the state machine; nothing was written.
    Rejected { reason: String },
    /// A prewrite succeeded.
    Prewritten { min_commit_ts: Timestamp },
    /// A transactional request failed; nothing was written.
    Txn(TxnError),
    /// Answer to `CheckTxnStatus`.
    Status(TxnStatus),
    /// A rollback was applied.
    RolledBack,
    /// A key is not owned by this group at its catalog version `version`:
    /// the sender's routing table is stale.
    StaleRoute { version: u64 },
    /// Ownership recorded (or already newer).
    OwnershipSet,
}

/// Results of one entry's requests, in order. Empty for blank and membership
/// entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResult {
    pub results: Vec<OpResult>,
}
