//! `DataPlane`: the slice of [`Kv`] the gRPC services use, as a trait.
//!
//! The services are generic over it so that their validation and response
//! mapping can be tested against a fake without a running node; production
//! code uses [`Kv`] (the default type parameter everywhere). The trait also
//! pins down at compile time that every data-plane future is `Send`, which
//! tonic requires of a handler.

use std::future::Future;

use elastickv_kv::{Kv, KvError, NodeStatus, ReadOutcome, WriteOutcome};
use elastickv_types::{GroupId, Timestamp};

/// Rows returned by a scan, in the order served.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Data-plane operations the gRPC front end needs. Method contracts are those
/// of the same-named [`Kv`] methods.
pub trait DataPlane: Send + Sync + 'static {
    /// See [`Kv::raw_put`].
    fn raw_put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<WriteOutcome, KvError>> + Send;

    /// See [`Kv::raw_delete`].
    fn raw_delete(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<WriteOutcome, KvError>> + Send;

    /// See [`Kv::raw_get`].
    fn raw_get(
        &self,
        key: Vec<u8>,
        ts: Option<Timestamp>,
    ) -> impl Future<Output = Result<ReadOutcome, KvError>> + Send;

    /// See [`Kv::raw_latest_commit_ts`].
    fn raw_latest_commit_ts(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Timestamp>, KvError>> + Send;

    /// See [`Kv::raw_scan`].
    fn raw_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        ts: Option<Timestamp>,
        reverse: bool,
    ) -> impl Future<Output = Result<Rows, KvError>> + Send;

    /// See [`Kv::max_value_bytes`].
    fn max_value_bytes(&self) -> usize;

    /// See [`Kv::status`].
    fn status(&self) -> impl Future<Output = Result<NodeStatus, KvError>> + Send;

    /// See [`Kv::add_learner`].
    fn add_learner(
        &self,
        raft_id: String,
        address: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send;

    /// See [`Kv::promote_voter`].
    fn promote_voter(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send;

    /// See [`Kv::remove_node`].
    fn remove_node(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send;

    /// See [`Kv::transfer_leader`].
    fn transfer_leader(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send;

    /// See [`Kv::set_clock_offset`]; returns the offset now in effect.
    fn set_clock_offset(&self, offset_ms: i64) -> i64;
}

impl DataPlane for Kv {
    fn raw_put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<WriteOutcome, KvError>> + Send {
        Kv::raw_put(self, key, value)
    }

    fn raw_delete(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<WriteOutcome, KvError>> + Send {
        Kv::raw_delete(self, key)
    }

    fn raw_get(
        &self,
        key: Vec<u8>,
        ts: Option<Timestamp>,
    ) -> impl Future<Output = Result<ReadOutcome, KvError>> + Send {
        Kv::raw_get(self, key, ts)
    }

    fn raw_latest_commit_ts(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Timestamp>, KvError>> + Send {
        Kv::raw_latest_commit_ts(self, key)
    }

    fn raw_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        ts: Option<Timestamp>,
        reverse: bool,
    ) -> impl Future<Output = Result<Rows, KvError>> + Send {
        Kv::raw_scan(self, start, end, limit, ts, reverse)
    }

    fn max_value_bytes(&self) -> usize {
        Kv::max_value_bytes(self)
    }

    fn status(&self) -> impl Future<Output = Result<NodeStatus, KvError>> + Send {
        Kv::status(self)
    }

    fn add_learner(
        &self,
        raft_id: String,
        address: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send {
        Kv::add_learner(self, raft_id, address, group)
    }

    fn promote_voter(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send {
        Kv::promote_voter(self, raft_id, group)
    }

    fn remove_node(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send {
        Kv::remove_node(self, raft_id, group)
    }

    fn transfer_leader(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> impl Future<Output = Result<Vec<GroupId>, KvError>> + Send {
        Kv::transfer_leader(self, raft_id, group)
    }

    fn set_clock_offset(&self, offset_ms: i64) -> i64 {
        Kv::set_clock_offset(self, offset_ms)
    }
}
