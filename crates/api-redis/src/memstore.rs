//! An in-memory multi-version [`Store`] with the data plane's transaction
//! semantics (snapshot reads at the start timestamp, read-your-writes,
//! first-committer-wins write-write conflict detection, `assert_unchanged`),
//! for unit tests of the command layer and for running the Redis front end
//! without a cluster (differential tests against a real redis-server).
//!
//! Timestamps are HLC-shaped (upper 48 bits Unix milliseconds), and the
//! physical clock can be moved forward with [`MemStore::advance_ms`] so
//! expiry can be tested without sleeping.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use elastickv_kv::{KvError, TxnWrite};
use elastickv_types::hlc::compose;
use elastickv_types::Timestamp;

use crate::store::{Page, Store, Tx};

/// Versions of one key, ascending by commit timestamp; `None` is a
/// tombstone.
type Versions = Vec<(Timestamp, Option<Vec<u8>>)>;

#[derive(Default)]
struct Inner {
    data: BTreeMap<Vec<u8>, Versions>,
    last_ts: Timestamp,
    /// Timestamp of the last commit that wrote something.
    last_commit_ts: Timestamp,
    /// Versions below this may have been collected: the newest tombstone
    /// [`MemStore::collect_deleted_keys`] removed.
    gc_safe_point: Timestamp,
}

impl Inner {
    fn read(&self, key: &[u8], ts: Timestamp) -> Option<&Vec<u8>> {
        self.data
            .get(key)?
            .iter()
            .rev()
            .find(|(t, _)| *t <= ts)
            .and_then(|(_, v)| v.as_ref())
    }

    fn version_ts(&self, key: &[u8], ts: Timestamp) -> Option<Timestamp> {
        self.data
            .get(key)?
            .iter()
            .rev()
            .map(|(t, _)| *t)
            .find(|t| *t <= ts)
    }

    fn latest_ts(&self, key: &[u8]) -> Option<Timestamp> {
        self.data.get(key)?.last().map(|(t, _)| *t)
    }
}

/// The in-memory store; cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
    offset_ms: Arc<AtomicU64>,
    /// Commits fail with `Conflict` while this is non-zero (decremented per
    /// commit), to exercise retry paths.
    inject_conflicts: Arc<AtomicU64>,
    /// Commits that wrote something.
    commits: Arc<AtomicU64>,
    /// Point reads that reached the snapshot (not answered from a
    /// transaction's own writes).
    snapshot_reads: Arc<AtomicU64>,
    /// When set, transactions start at the last commit's timestamp instead
    /// of a fresh one, as the data plane's `ReadAt::Latest` reads do while
    /// writes are in flight (see [`MemStore::snapshot_at_last_commit`]).
    last_commit_snapshots: Arc<AtomicBool>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    /// Moves this store's physical clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Makes transactions start at the last commit's timestamp, which may
    /// be far behind the clock: every acknowledged write is visible, but
    /// the snapshot says nothing about the time, as on a cluster whose
    /// leader answers a read below the writes it has in flight.
    pub fn snapshot_at_last_commit(&self, on: bool) {
        self.last_commit_snapshots.store(on, Ordering::SeqCst);
    }

    /// Commits that wrote something so far (tests of batching).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Point reads answered from a snapshot so far (tests of which
    /// commands read before they write).
    pub fn snapshot_reads(&self) -> u64 {
        self.snapshot_reads.load(Ordering::SeqCst)
    }

    /// Drops every key whose newest version is a tombstone, history and
    /// all, as the storage GC does once such a tombstone is older than its
    /// retention.
    pub fn collect_deleted_keys(&self) {
        let mut inner = self.lock();
        let mut collected_up_to = inner.gc_safe_point;
        inner.data.retain(|_, v| match v.last() {
            Some((_, Some(_))) => true,
            Some((ts, None)) => {
                collected_up_to = collected_up_to.max(*ts);
                false
            }
            None => false,
        });
        // The GC removes a tombstone only once the safe point passed it.
        inner.gc_safe_point = collected_up_to;
    }

    /// Makes the next `n` commits fail with a conflict.
    pub fn inject_conflicts(&self, n: u64) {
        self.inject_conflicts.store(n, Ordering::SeqCst);
    }

    /// Number of keys with a live newest version (tests).
    pub fn live_keys(&self) -> usize {
        self.lock()
            .data
            .values()
            .filter(|v| v.last().map(|(_, x)| x.is_some()).unwrap_or(false))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test thread must not wedge the others.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_ts(&self, inner: &mut Inner) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            + self.offset_ms.load(Ordering::SeqCst);
        let ts = compose(ms, 0).max(inner.last_ts + 1);
        inner.last_ts = ts;
        ts
    }
}

#[async_trait]
impl Store for MemStore {
    async fn begin(&self) -> Result<Box<dyn Tx>, KvError> {
        let start_ts = {
            let mut inner = self.lock();
            if self.last_commit_snapshots.load(Ordering::SeqCst) && inner.last_commit_ts > 0 {
                inner.last_commit_ts
            } else {
                self.next_ts(&mut inner)
            }
        };
        Ok(Box::new(MemTx {
            store: self.clone(),
            start_ts,
            writes: BTreeMap::new(),
        }))
    }

    fn now(&self) -> Timestamp {
        let mut inner = self.lock();
        self.next_ts(&mut inner)
    }

    fn max_value_bytes(&self) -> usize {
        elastickv_types::limits::DEFAULT_MAX_VALUE_BYTES
    }

    fn leads(&self, _key: &[u8]) -> bool {
        true
    }
}

struct MemTx {
    store: MemStore,
    start_ts: Timestamp,
    writes: BTreeMap<Vec<u8>, TxnWrite>,
}

#[async_trait]
impl Tx for MemTx {
    fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    fn clock_now(&self) -> Timestamp {
        self.store.now().max(self.start_ts)
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.writes.get(key) {
            Some(TxnWrite::Put(v)) => return Ok(Some(v.clone())),
            Some(TxnWrite::Delete) => return Ok(None),
            _ => {}
        }
        self.store.snapshot_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.store.lock().read(key, self.start_ts).cloned())
    }

    async fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Page, KvError> {
        let inner = self.store.lock();
        let hi = match end {
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        let range = (Bound::Included(start.to_vec()), hi);
        // Two-way merge of the snapshot and the buffered writes, in scan
        // order, stopping after `limit` live rows.
        let snap = inner.data.range::<Vec<u8>, _>(range.clone());
        let own = self.writes.range::<Vec<u8>, _>(range);
        let mut snap: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(snap.rev())
        } else {
            Box::new(snap)
        };
        let mut own: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(own.rev())
        } else {
            Box::new(own)
        };
        let before = |a: &Vec<u8>, b: &Vec<u8>| if reverse { a > b } else { a < b };
        let mut out = Vec::new();
        let mut s_next = snap.next();
        let mut o_next = own.next();
        while out.len() < limit {
            let take_snap = match (&s_next, &o_next) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((sk, _)), Some((ok, _))) => before(sk, ok),
            };
            if take_snap {
                if let Some((k, _)) = s_next.take() {
                    if let Some(v) = inner.read(k, self.start_ts) {
                        out.push((k.clone(), v.clone()));
                    }
                }
                s_next = snap.next();
            } else {
                if let Some((k, w)) = o_next.take() {
                    if let Some((sk, _)) = &s_next {
                        if *sk == k {
                            s_next = snap.next();
                        }
                    }
                    match w {
                        TxnWrite::Put(v) => out.push((k.clone(), v.clone())),
                        TxnWrite::Delete => {}
                        TxnWrite::AssertUnchanged { .. } => {
                            if let Some(v) = inner.read(k, self.start_ts) {
                                out.push((k.clone(), v.clone()));
                            }
                        }
                    }
                }
                o_next = own.next();
            }
        }
        // Both sides ran dry: nothing of the range is left.
        let exhausted = s_next.is_none() && o_next.is_none();
        Ok(Page {
            rows: out,
            exhausted,
        })
    }

    async fn version_ts(&mut self, key: &[u8]) -> Result<Option<Timestamp>, KvError> {
        Ok(self.store.lock().version_ts(key, self.start_ts))
    }

    fn gc_safe_point(&self, _key: &[u8]) -> Timestamp {
        self.store.lock().gc_safe_point
    }

    fn buffers_write(&self, key: &[u8]) -> bool {
        matches!(
            self.writes.get(key),
            Some(TxnWrite::Put(_) | TxnWrite::Delete)
        )
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, TxnWrite::Put(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, TxnWrite::Delete);
    }

    fn assert_unchanged(&mut self, key: Vec<u8>, since: Timestamp) {
        self.writes
            .entry(key)
            .or_insert(TxnWrite::AssertUnchanged { since });
    }

    fn write_count(&self) -> usize {
        self.writes.len()
    }

    async fn commit(self: Box<Self>) -> Result<Timestamp, KvError> {
        if self.writes.is_empty() {
            return Ok(self.start_ts);
        }
        let store = self.store.clone();
        let mut inner = store.lock();
        if store
            .inject_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(KvError::Conflict("injected".into()));
        }
        for (k, w) in &self.writes {
            let since = match w {
                TxnWrite::AssertUnchanged { since } => *since,
                _ => self.start_ts,
            };
            if inner.latest_ts(k).is_some_and(|t| t > since) {
                return Err(KvError::Conflict(format!(
                    "key {:?} changed",
                    String::from_utf8_lossy(k)
                )));
            }
        }
        let ts = store.next_ts(&mut inner);
        for (k, w) in self.writes {
            let v = match w {
                TxnWrite::Put(v) => Some(v),
                TxnWrite::Delete => None,
                TxnWrite::AssertUnchanged { .. } => continue,
            };
            inner.data.entry(k).or_default().push((ts, v));
        }
        inner.last_commit_ts = ts;
        store.commits.fetch_add(1, Ordering::SeqCst);
        Ok(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn snapshot_and_conflicts() {
        let s = MemStore::new();
        let mut a = s.begin().await.expect("begin");
        a.put(b"k".to_vec(), b"1".to_vec());
        a.commit().await.expect("commit");
        let mut r = s.begin().await.expect("begin");
        let mut w = s.begin().await.expect("begin");
        w.put(b"k".to_vec(), b"2".to_vec());
        w.commit().await.expect("commit");
        assert_eq!(r.get(b"k").await.expect("get"), Some(b"1".to_vec()));
        r.put(b"k".to_vec(), b"3".to_vec());
        assert!(matches!(r.commit().await, Err(KvError::Conflict(_))));
    }

    #[tokio::test]
    async fn scan_merges_own_writes() {
        let s = MemStore::new();
        let mut a = s.begin().await.expect("begin");
        for k in ["a", "b", "c", "d"] {
            a.put(k.as_bytes().to_vec(), b"x".to_vec());
        }
        a.commit().await.expect("commit");
        let mut t = s.begin().await.expect("begin");
        t.delete(b"b".to_vec());
        t.put(b"bb".to_vec(), b"y".to_vec());
        let page = t.scan(b"a", None, 3, false).await.expect("scan");
        let keys: Vec<_> = page.rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"bb".to_vec(), b"c".to_vec()]);
        assert!(!page.exhausted, "\"d\" is left");
        let page = t.scan(b"a", Some(b"d"), 10, true).await.expect("scan");
        let keys: Vec<_> = page.rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(keys, vec![b"c".to_vec(), b"bb".to_vec(), b"a".to_vec()]);
        assert!(page.exhausted);
    }
}
