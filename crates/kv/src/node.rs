//! `Kv`: the node-local handle on the data plane.

use crate::KvError;
use elastickv_types::{GroupId, Timestamp};

/// Result of a committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Commit timestamp given to the write's version.
    pub commit_ts: Timestamp,
    /// Raft log index of the write in its group.
    pub index: u64,
}

/// Result of a linearizable point read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    pub value: Option<Vec<u8>>,
    /// Timestamp the read was served at.
    pub read_ts: Timestamp,
    /// Applied index the read waited for.
    pub index: u64,
}

/// One member of a group, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub raft_id: String,
    pub address: String,
    pub voter: bool,
}

/// One group's Raft state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: GroupId,
    /// Name of the leader this node knows, if any.
    pub leader: Option<String>,
    pub term: u64,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown".
    pub state: String,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub members: Vec<MemberStatus>,
}

/// This node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub raft_id: String,
    pub address: String,
    pub groups: Vec<GroupStatus>,
    pub hlc_now: Timestamp,
}

/// Handle on the data plane; cheap to clone.
#[derive(Clone)]
pub struct Kv {
    _private: (),
}

#[allow(unused_variables)]
impl Kv {
    /// Durably write `value` under `key` (single-key linearizable).
    pub async fn raw_put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<WriteOutcome, KvError> {
        todo!("engine wiring")
    }

    /// Durably delete `key` (writes a tombstone version).
    pub async fn raw_delete(&self, key: Vec<u8>) -> Result<WriteOutcome, KvError> {
        todo!("engine wiring")
    }

    /// Read `key`, linearizably when `ts` is `None`, else the snapshot at `ts`.
    pub async fn raw_get(&self, key: Vec<u8>, ts: Option<Timestamp>) -> Result<ReadOutcome, KvError> {
        todo!("engine wiring")
    }

    /// Commit timestamp of the newest live version of `key`.
    pub async fn raw_latest_commit_ts(&self, key: Vec<u8>) -> Result<Option<Timestamp>, KvError> {
        todo!("engine wiring")
    }

    /// Rows with `start <= key < end` (end `None`: unbounded), at most `limit`,
    /// at `ts` (`None`: linearizable now), in reverse key order if asked.
    pub async fn raw_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        ts: Option<Timestamp>,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        todo!("engine wiring")
    }

    /// A fresh timestamp from this node's HLC.
    pub fn now(&self) -> Timestamp {
        todo!("engine wiring")
    }

    /// Largest value a write may carry, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        todo!("engine wiring")
    }

    /// This node's view of every group it hosts.
    pub async fn status(&self) -> Result<NodeStatus, KvError> {
        todo!("engine wiring")
    }

    /// Add a node as a learner to `group` (`None`: every group). Returns the
    /// groups changed.
    pub async fn add_learner(
        &self,
        raft_id: String,
        address: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        todo!("engine wiring")
    }

    /// Promote a learner to voter.
    pub async fn promote_voter(&self, raft_id: String, group: Option<GroupId>) -> Result<Vec<GroupId>, KvError> {
        todo!("engine wiring")
    }

    /// Remove a node from the group's membership.
    pub async fn remove_node(&self, raft_id: String, group: Option<GroupId>) -> Result<Vec<GroupId>, KvError> {
        todo!("engine wiring")
    }

    /// Ask `raft_id` to take over leadership of the group(s).
    pub async fn transfer_leader(&self, raft_id: String, group: Option<GroupId>) -> Result<Vec<GroupId>, KvError> {
        todo!("engine wiring")
    }
}
