//! The transactional store the Redis commands run on, as a small object-safe
//! trait pair ([`Store`], [`Tx`]) so the command layer can be exercised
//! against the in-memory [`crate::memstore::MemStore`] in unit tests and
//! against the real data plane ([`elastickv_kv::Kv`]) in production.
//!
//! The contract is exactly `elastickv_kv::Txn`'s: snapshot isolation at
//! `start_ts`, reads see the transaction's own buffered writes, `commit`
//! is atomic across shards and reports write-write conflicts as
//! [`KvError::Conflict`] (nothing written; the caller may re-run).

use async_trait::async_trait;
use elastickv_kv::{Kv, KvError, Txn};
use elastickv_types::Timestamp;

/// One scanned row.
pub type Row = (Vec<u8>, Vec<u8>);

/// One page of a scan.
#[derive(Debug, Default)]
pub struct Page {
    /// The rows, in scan order.
    pub rows: Vec<Row>,
    /// True when the range holds no row past the returned ones, so the
    /// caller need not ask again. `false` promises nothing.
    pub exhausted: bool,
}

/// Something that can start transactions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Begin a transaction at a fresh, linearizable snapshot timestamp.
    async fn begin(&self) -> Result<Box<dyn Tx>, KvError>;

    /// A fresh timestamp from the local hybrid logical clock.
    fn now(&self) -> Timestamp;

    /// Largest value one KV entry may hold.
    fn max_value_bytes(&self) -> usize;

    /// True when this node leads the replication group holding `key`
    /// (background work runs on one node only).
    fn leads(&self, key: &[u8]) -> bool;
}

/// An open transaction (see the module documentation for the contract).
#[async_trait]
pub trait Tx: Send {
    /// The snapshot timestamp every read uses.
    fn start_ts(&self) -> Timestamp;

    /// The current time of the local hybrid logical clock, never below
    /// `start_ts`: "now" for expiry. The snapshot may be older (see
    /// [`Txn::clock_now`]); a key whose TTL ran out after the snapshot
    /// was taken is gone all the same.
    fn clock_now(&self) -> Timestamp;

    /// Point read.
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Rows of `[start, end)`, at most `limit`, optionally descending.
    async fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Page, KvError>;

    /// Commit timestamp of `key`'s newest version in the snapshot,
    /// tombstones included (`None`: none). Buffered writes do not count.
    async fn version_ts(&mut self, key: &[u8]) -> Result<Option<Timestamp>, KvError>;

    /// Versions of `key` older than this may already be garbage-collected
    /// (a key deleted before it may have left no trace at all).
    fn gc_safe_point(&self, key: &[u8]) -> Timestamp;

    /// True when this transaction has buffered a put or delete of `key`
    /// (an assert does not count).
    fn buffers_write(&self, key: &[u8]) -> bool;

    /// Buffer a put.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);

    /// Buffer a delete.
    fn delete(&mut self, key: Vec<u8>);

    /// Fail the commit if `key` was written after `since`.
    fn assert_unchanged(&mut self, key: Vec<u8>, since: Timestamp);

    /// Number of buffered writes (asserts included).
    fn write_count(&self) -> usize;

    /// Commit atomically; returns the commit timestamp.
    async fn commit(self: Box<Self>) -> Result<Timestamp, KvError>;
}

#[async_trait]
impl Store for Kv {
    async fn begin(&self) -> Result<Box<dyn Tx>, KvError> {
        // Every Redis key lives under one prefix: while one group owns it,
        // that group's leader starts the transaction in one round.
        let (start, end) = crate::layout::KEYSPACE;
        Ok(Box::new(Kv::begin_within(self, start, Some(end)).await?))
    }

    fn now(&self) -> Timestamp {
        Kv::now(self)
    }

    fn max_value_bytes(&self) -> usize {
        Kv::max_value_bytes(self)
    }

    fn leads(&self, key: &[u8]) -> bool {
        Kv::leads(self, key)
    }
}

#[async_trait]
impl Tx for Txn {
    fn start_ts(&self) -> Timestamp {
        Txn::start_ts(self)
    }

    fn clock_now(&self) -> Timestamp {
        Txn::clock_now(self)
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Txn::get(self, key).await
    }

    async fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Page, KvError> {
        let (rows, exhausted) = Txn::scan_page(self, start, end, limit, reverse).await?;
        Ok(Page { rows, exhausted })
    }

    async fn version_ts(&mut self, key: &[u8]) -> Result<Option<Timestamp>, KvError> {
        Txn::version_ts(self, key).await
    }

    fn gc_safe_point(&self, key: &[u8]) -> Timestamp {
        Txn::gc_safe_point(self, key)
    }

    fn buffers_write(&self, key: &[u8]) -> bool {
        Txn::buffers_write(self, key)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        Txn::put(self, key, value)
    }

    fn delete(&mut self, key: Vec<u8>) {
        Txn::delete(self, key)
    }

    fn assert_unchanged(&mut self, key: Vec<u8>, since: Timestamp) {
        Txn::assert_unchanged(self, key, since)
    }

    fn write_count(&self) -> usize {
        Txn::write_count(self)
    }

    async fn commit(self: Box<Self>) -> Result<Timestamp, KvError> {
        Txn::commit(*self).await
    }
}
