//! De-duplication of retried requests (Raft dissertation §6.3): the result
//! of every applied request is recorded, and a request that comes back — a
//! forwarder resending after a leader change or a lost answer — gets the
//! recorded result instead of being applied a second time.
//!
//! Records are grouped by the second their request was created in (the
//! upper bits of its id): one record per apply batch and second,
//! `D/ ++ be64(second) ++ be64(last log index of the batch)` → the batch's
//! `(request id, result)` pairs of that second. A batch of hundreds of
//! writes therefore costs one or two engine writes here instead of one per
//! request, and pruning deletes one record per batch, not one per request.
//! Only retries look records up (first attempts cannot be duplicates); a
//! lookup reads every record of its id's second once and keeps the second
//! decoded in a small cache, so the burst of retries after a leader change
//! costs one scan per second of ids, not one per retry.
//!
//! **Determinism:** every replica writes and prunes the same records in the
//! same apply batches, the cache only mirrors what is stored, and a request
//! older than the window is refused whether or not its record still exists;
//! so every replica answers a retry the same way.
//!
//! Directories written before this layout hold one record per request
//! (`d/ ++ be128(id)`). They are still consulted, and pruned as they age,
//! until none is left.

use crate::command::OpResult;
use elastickv_storage::{GroupBatch, GroupStore, StorageError};
use elastickv_types::RequestId;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A request older than this (by its id's time, against the applying
/// entry's time) is refused rather than risk applying it twice after its
/// record was pruned. Forwarders retry for seconds, not minutes.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Prefix of the per-second records.
const PREFIX: &[u8] = b"D/";
/// Prefix of the per-request records of older directories.
const LEGACY_PREFIX: &[u8] = b"d/";
/// Records deleted per apply batch at most (each prefix).
const PRUNE_BATCH: usize = 64;
/// Seconds kept decoded for retries.
const CACHED_SECONDS: usize = 8;
/// Records read per engine call while loading a second.
const LOAD_PAGE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("corrupt de-duplication record: {0}")]
    Corrupt(#[from] bincode::Error),
}

fn second_of(id: RequestId) -> u64 {
    id.time_ms() / 1000
}

fn record_key(second: u64, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 16);
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&second.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn legacy_key(id: RequestId) -> Vec<u8> {
    let mut k = Vec::with_capacity(LEGACY_PREFIX.len() + 16);
    k.extend_from_slice(LEGACY_PREFIX);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The de-duplication table of one group's state machine.
pub struct Dedup {
    store: GroupStore,
    /// Results recorded in the apply batch being built, by second.
    pending: BTreeMap<u64, Vec<(u128, OpResult)>>,
    /// Seconds read back for retries, oldest first.
    cache: VecDeque<(u64, HashMap<u128, OpResult>)>,
    /// Records below this key were pruned by this process: scanning from
    /// here skips the tombstones earlier prunes left in the LSM tree.
    prune_from: Vec<u8>,
    /// Per-request records of an older directory may still exist.
    legacy: bool,
    legacy_prune_from: Vec<u8>,
}

impl Dedup {
    pub fn open(store: GroupStore) -> Result<Self, DedupError> {
        let legacy = !store.scan_meta(LEGACY_PREFIX, 1)?.is_empty();
        Ok(Dedup {
            store,
            pending: BTreeMap::new(),
            cache: VecDeque::new(),
            prune_from: PREFIX.to_vec(),
            legacy,
            legacy_prune_from: LEGACY_PREFIX.to_vec(),
        })
    }

    /// Forget everything derived from the store (after a snapshot replaced
    /// the group's state).
    pub fn reset(&mut self) -> Result<(), DedupError> {
        *self = Dedup::open(self.store.clone())?;
        Ok(())
    }

    /// Whether `id` was created so long before `now_ms` that it must be
    /// refused: its record may already be pruned.
    pub fn expired(id: RequestId, now_ms: u64) -> bool {
        id.time_ms().saturating_add(DEDUP_WINDOW_MS) < now_ms
    }

    /// The recorded result of `id`, if it was applied in an earlier apply
    /// batch (the caller knows the current batch's).
    pub fn lookup(&mut self, id: RequestId) -> Result<Option<OpResult>, DedupError> {
        let second = second_of(id);
        if !self.cache.iter().any(|(s, _)| *s == second) {
            let loaded = self.load(second)?;
            if self.cache.len() >= CACHED_SECONDS {
                self.cache.pop_front();
            }
            self.cache.push_back((second, loaded));
        }
        let found = self
            .cache
            .iter()
            .find(|(s, _)| *s == second)
            .and_then(|(_, m)| m.get(&id.0).cloned());
        if found.is_some() || !self.legacy {
            return Ok(found);
        }
        match self.store.get_meta(&legacy_key(id))? {
            Some(bytes) => Ok(Some(bincode::deserialize(&bytes)?)),
            None => Ok(None),
        }
    }

    fn load(&self, second: u64) -> Result<HashMap<u128, OpResult>, DedupError> {
        let end = record_key(second.saturating_add(1), 0);
        let mut from = record_key(second, 0);
        let mut out = HashMap::new();
        loop {
            let page = self.store.scan_meta_range(&from, &end, LOAD_PAGE)?;
            for (_, bytes) in &page {
                let records: Vec<(u128, OpResult)> = bincode::deserialize(bytes)?;
                out.extend(records);
            }
            match page.last() {
                Some((last, _)) if page.len() == LOAD_PAGE => {
                    from = last.clone();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Record `result` as the outcome of `id` (written by [`Dedup::flush`]).
    pub fn record(&mut self, id: RequestId, result: &OpResult) {
        self.pending
            .entry(second_of(id))
            .or_default()
            .push((id.0, result.clone()));
    }

    /// Write the batch's records into `batch` (keyed by `last_index`, the
    /// batch's last log index, unique per batch) and prune records that
    /// fell out of the window as of `now_ms`.
    pub fn flush(
        &mut self,
        batch: &mut GroupBatch,
        last_index: u64,
        now_ms: u64,
    ) -> Result<(), DedupError> {
        for (second, records) in std::mem::take(&mut self.pending) {
            batch.put_meta(
                &record_key(second, last_index),
                &bincode::serialize(&records)?,
            );
            if let Some((_, cached)) = self.cache.iter_mut().find(|(s, _)| *s == second) {
                cached.extend(records);
            }
        }
        self.prune(batch, now_ms)
    }

    /// Drop records whose every request is past the window, a bounded
    /// number per apply batch.
    fn prune(&mut self, batch: &mut GroupBatch, now_ms: u64) -> Result<(), DedupError> {
        let cutoff_ms = now_ms.saturating_sub(DEDUP_WINDOW_MS);
        // Requests of second s expire once s*1000 + 999 + window < now.
        let cutoff_second = cutoff_ms / 1000;
        self.cache.retain(|(s, _)| *s >= cutoff_second);
        let end = record_key(cutoff_second, 0);
        if self.prune_from < end {
            let old = self
                .store
                .scan_meta_range(&self.prune_from, &end, PRUNE_BATCH)?;
            match old.last() {
                Some((last, _)) => {
                    self.prune_from = last.clone();
                    self.prune_from.push(0);
                }
                None => self.prune_from = end,
            }
            for (key, _) in old {
                batch.delete_meta(&key);
            }
        }
        if self.legacy {
            let end = legacy_key(RequestId(u128::from(cutoff_ms) << 80));
            let old = self
                .store
                .scan_meta_range(&self.legacy_prune_from, &end, PRUNE_BATCH)?;
            if let Some((last, _)) = old.last() {
                self.legacy_prune_from = last.clone();
                self.legacy_prune_from.push(0);
            } else if self.store.scan_meta(LEGACY_PREFIX, 1)?.is_empty() {
                self.legacy = false;
            }
            for (key, _) in old {
                batch.delete_meta(&key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elastickv_storage::{Engine, EngineOptions};
    use elastickv_types::GroupId;

    const MS: u64 = 1_700_000_000_000;

    fn store() -> (tempfile::TempDir, GroupStore) {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = Engine::open(&dir.path().join("s"), EngineOptions::default()).expect("engine");
        let store = engine.group(GroupId(1)).expect("group");
        (dir, store)
    }

    fn id(ms: u64, n: u128) -> RequestId {
        RequestId((u128::from(ms) << 80) | n)
    }

    fn written(ts: u64) -> OpResult {
        OpResult::Written { commit_ts: ts }
    }

    fn flush(d: &mut Dedup, store: &GroupStore, index: u64, now_ms: u64) {
        let mut batch = store.batch();
        d.flush(&mut batch, index, now_ms).expect("flush");
        batch.commit().expect("commit");
    }

    #[test]
    fn records_are_found_across_batches_and_restarts() {
        let (_d, store) = store();
        let mut d = Dedup::open(store.clone()).expect("open");
        d.record(id(MS, 1), &written(10));
        d.record(id(MS + 1500, 2), &written(11));
        flush(&mut d, &store, 1, MS + 2000);
        // A lookup caches the second; a later batch of the same second
        // must show up in the cache too.
        assert_eq!(d.lookup(id(MS, 1)).expect("lookup"), Some(written(10)));
        d.record(id(MS + 10, 3), &written(12));
        flush(&mut d, &store, 2, MS + 2000);
        assert_eq!(d.lookup(id(MS + 10, 3)).expect("lookup"), Some(written(12)));
        assert_eq!(d.lookup(id(MS, 4)).expect("lookup"), None);
        // A fresh table (a restarted replica) reads the same answers.
        let mut again = Dedup::open(store.clone()).expect("open");
        for (i, want) in [
            (id(MS, 1), Some(written(10))),
            (id(MS + 1500, 2), Some(written(11))),
        ] {
            assert_eq!(again.lookup(i).expect("lookup"), want);
        }
        assert_eq!(
            again.lookup(id(MS + 10, 3)).expect("lookup"),
            Some(written(12))
        );
    }

    #[test]
    fn records_past_the_window_are_pruned_and_requests_refused() {
        let (_d, store) = store();
        let mut d = Dedup::open(store.clone()).expect("open");
        d.record(id(MS, 1), &written(10));
        d.record(id(MS + 5_000, 2), &written(11));
        flush(&mut d, &store, 1, MS + 5_000);
        let later = MS + 2_000 + DEDUP_WINDOW_MS;
        assert!(Dedup::expired(id(MS, 1), later));
        assert!(!Dedup::expired(id(MS + 5_000, 2), later));
        flush(&mut d, &store, 2, later);
        let left = store.scan_meta(PREFIX, 10).expect("scan");
        assert_eq!(
            left.len(),
            1,
            "only the record of the unexpired second is kept"
        );
        assert_eq!(
            Dedup::open(store.clone())
                .expect("open")
                .lookup(id(MS + 5_000, 2))
                .expect("lookup"),
            Some(written(11))
        );
    }

    #[test]
    fn per_request_records_of_older_directories_are_read_and_pruned() {
        let (_d, store) = store();
        let mut batch = store.batch();
        let old = id(MS, 9);
        batch.put_meta(
            &legacy_key(old),
            &bincode::serialize(&written(7)).expect("encode"),
        );
        batch.commit().expect("commit");
        let mut d = Dedup::open(store.clone()).expect("open");
        assert_eq!(d.lookup(old).expect("lookup"), Some(written(7)));
        flush(&mut d, &store, 1, MS + 1);
        assert!(d.legacy, "not yet past the window");
        flush(&mut d, &store, 2, MS + 1_000 + DEDUP_WINDOW_MS);
        assert!(store.scan_meta(LEGACY_PREFIX, 1).expect("scan").is_empty());
        flush(&mut d, &store, 3, MS + 2_000 + DEDUP_WINDOW_MS);
        assert!(!d.legacy, "no legacy record left");
    }

    #[test]
    fn the_cache_is_bounded() {
        let (_d, store) = store();
        let mut d = Dedup::open(store.clone()).expect("open");
        for s in 0..(CACHED_SECONDS as u64 * 2) {
            d.record(id(MS + s * 1000, 1), &written(s));
        }
        flush(&mut d, &store, 1, MS);
        for s in 0..(CACHED_SECONDS as u64 * 2) {
            assert_eq!(
                d.lookup(id(MS + s * 1000, 1)).expect("lookup"),
                Some(written(s))
            );
        }
        assert_eq!(d.cache.len(), CACHED_SECONDS);
    }
}
