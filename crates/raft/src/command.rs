//! Commands replicated through a group's Raft log, and their results.
//!
//! One log entry carries a [`Proposal`]: a batch of independent client
//! [`Request`]s gathered by the leader's proposer, so many concurrent writes
//! cost one Raft round. Each request has its own id for de-duplication and
//! its own result.

use elastickv_types::{RequestId, Timestamp};
use serde::{Deserialize, Serialize};

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

/// An operation on a group's state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Apply all mutations atomically at one commit timestamp.
    Write { mutations: Vec<Mutation> },
    /// Record a physical HLC ceiling (ms) committed by the leader.
    HlcCeiling { ms: u64 },
}

/// A client request: an op, its de-duplication id, and the timestamp the
/// leader's proposer gave it (0 until the leader assigns one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub ts: Timestamp,
    pub op: Op,
}

/// The payload of one Raft log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub requests: Vec<Request>,
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
}

/// Results of one entry's requests, in order. Empty for blank and membership
/// entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResult {
    pub results: Vec<OpResult>,
}
