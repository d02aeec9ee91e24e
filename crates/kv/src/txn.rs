//! Transactions: snapshot isolation over every group, Percolator-style.
//!
//! A [`Txn`] reads at its start timestamp (seeing its own buffered writes),
//! buffers writes, and commits: in one Raft round when every key lives in one
//! group (one-phase commit), otherwise by two-phase commit — prewrite locks in
//! every group (the first key is the primary), then commit the primary, then
//! the secondaries. Write-write conflicts are detected at prewrite (OCC) and
//! reported as [`KvError::Conflict`]; the transaction is never retried here.
//! A reader that meets a lock resolves it through the primary's status.

use crate::{Kv, KvError};
use elastickv_types::Timestamp;
use std::collections::BTreeMap;

/// A buffered write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnWrite {
    Put(Vec<u8>),
    Delete,
    /// Write nothing, but fail the commit if the key changed after `since`
    /// (Redis `WATCH`, reads that must stay valid).
    AssertUnchanged {
        since: Timestamp,
    },
}

/// An open transaction. Dropping it without committing rolls it back (it
/// has written nothing before commit).
pub struct Txn {
    kv: Kv,
    start_ts: Timestamp,
    writes: BTreeMap<Vec<u8>, TxnWrite>,
}

#[allow(unused_variables)]
impl Txn {
    pub(crate) fn new(kv: Kv, start_ts: Timestamp) -> Self {
        Txn {
            kv,
            start_ts,
            writes: BTreeMap::new(),
        }
    }

    /// The snapshot timestamp every read of this transaction uses.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// Value of `key` in this transaction's snapshot plus its own writes.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        todo!("transactions")
    }

    /// Rows of `[start, end)` (`end` `None`: unbounded) in this snapshot plus
    /// the transaction's own writes, at most `limit`, optionally descending.
    pub async fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        todo!("transactions")
    }

    /// Buffer a write of `value` under `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, TxnWrite::Put(value));
    }

    /// Buffer a delete of `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, TxnWrite::Delete);
    }

    /// Fail the commit if `key` was written by anyone after `since`.
    pub fn assert_unchanged(&mut self, key: Vec<u8>, since: Timestamp) {
        self.writes
            .entry(key)
            .or_insert(TxnWrite::AssertUnchanged { since });
    }

    /// Number of buffered writes.
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    /// Commit atomically; returns the commit timestamp (the start timestamp
    /// for a transaction that wrote nothing). `KvError::Conflict` means
    /// another transaction wrote one of the keys after this one started:
    /// nothing was written, and the caller decides whether to retry.
    pub async fn commit(self) -> Result<Timestamp, KvError> {
        todo!("transactions")
    }
}

impl Kv {
    /// Begin a transaction at a fresh, linearizable snapshot timestamp.
    pub async fn begin(&self) -> Result<Txn, KvError> {
        todo!("transactions")
    }

    /// Begin a transaction reading at `start_ts` (must be at or above the GC
    /// safe point).
    pub async fn begin_at(&self, start_ts: Timestamp) -> Result<Txn, KvError> {
        todo!("transactions")
    }
}
