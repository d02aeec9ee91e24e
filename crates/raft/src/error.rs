//! Errors of the replication layer. They cross the wire in forwarded
//! requests, so they are serialisable.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReplError {
    /// This node does not lead the group; `leader` is the one it knows of.
    #[error("not the leader of group {group}; leader is {leader:?}")]
    NotLeader { group: u64, leader: Option<u64> },
    /// No leader could be reached or the group cannot make progress now.
    #[error("group unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed; a write may or may not have been applied.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The state machine refused the request; nothing was written.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The group does not own a key of the request at its catalog
    /// `version`: the sender routed with a stale table.
    #[error("stale route: group {group} does not own the key at catalog version {version}")]
    StaleRoute { group: u64, version: u64 },
    /// This node hosts no such group.
    #[error("unknown raft group {0}")]
    UnknownGroup(u64),
    /// The request is malformed (bad member, bad argument).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Storage failure or bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReplError {
    /// Whether another attempt (possibly at another node) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ReplError::NotLeader { .. } | ReplError::Unavailable(_)
        )
    }
}
