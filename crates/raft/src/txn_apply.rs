//! Applying transactional operations (Percolator) to a group's state.
//!
//! Every check reads the store *and* the writes earlier requests of the same
//! apply batch made (the [`Overlay`]), so two requests in one batch see each
//! other exactly as if they had been applied one by one. All decisions
//! depend only on the log (timestamps in requests), never on local clocks,
//! so every replica reaches the same state.
//!
//! Records kept in the group's metadata, next to the data:
//! - `t/` ++ be64(start_ts) ++ key → [`TxnRecord`]: written for the primary
//!   key when a transaction commits, and for any key a rollback touched (so a
//!   late prewrite of a rolled-back transaction is refused).

use crate::command::{Lock, OpResult, TxnError, TxnKind, TxnMutation, TxnStatus};
use crate::recent_writes::{Newest, RecentWrites};
use crate::types::StorageError;
use elastickv_storage::{GroupBatch, GroupStore};
use elastickv_types::{hlc, Timestamp};
use openraft::{AnyError, StorageIOError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Metadata prefix of transaction records.
pub const TXN_RECORD_PREFIX: &[u8] = b"t/";
/// A transaction whose start timestamp is older than this (against the
/// applying entry's timestamp) may not prewrite or commit in one phase: the
/// versions it read may already be garbage-collected.
pub const MAX_TXN_AGE_MS: u64 = 10 * 60 * 1000;
/// Transaction records are kept this long; a lock must be resolved before.
pub const TXN_RECORD_WINDOW_MS: u64 = 60 * 60 * 1000;

/// The outcome of a transaction, recorded per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnRecord {
    Committed(Timestamp),
    RolledBack,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

pub fn record_key(start_ts: Timestamp, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TXN_RECORD_PREFIX.len() + 8 + key.len());
    k.extend_from_slice(TXN_RECORD_PREFIX);
    k.extend_from_slice(&start_ts.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Read a lock record.
pub fn decode_lock(bytes: &[u8]) -> Result<Lock, bincode::Error> {
    bincode::deserialize(bytes)
}

/// The writes of the current apply batch, readable before it commits.
#[derive(Default)]
pub struct Overlay {
    locks: HashMap<Vec<u8>, Option<Lock>>,
    latest: HashMap<Vec<u8>, Timestamp>,
    records: HashMap<Vec<u8>, TxnRecord>,
}

impl Overlay {
    /// The versions this batch wrote: each key with its newest commit
    /// timestamp.
    pub fn into_written(self) -> impl Iterator<Item = (Vec<u8>, Timestamp)> {
        self.latest.into_iter()
    }
}

/// One apply batch's view of the group: store plus overlay, writing to both.
pub struct TxnCtx<'a> {
    pub store: &'a GroupStore,
    /// Versions committed by earlier batches, for conflict checks without a
    /// store read.
    pub recent: &'a RecentWrites,
    pub batch: &'a mut GroupBatch,
    pub overlay: &'a mut Overlay,
}

impl TxnCtx<'_> {
    fn lock(&self, key: &[u8]) -> Result<Option<Lock>, StorageError> {
        if let Some(l) = self.overlay.locks.get(key) {
            return Ok(l.clone());
        }
        match self.store.get_lock(key).map_err(read_err)? {
            Some(bytes) => Ok(Some(decode_lock(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// The newest commit timestamp of `key` if it is above `since`.
    fn newest_above(
        &self,
        key: &[u8],
        since: Timestamp,
    ) -> Result<Option<Timestamp>, StorageError> {
        let committed = match self.recent.newest_above(key, since) {
            Newest::Known(ts) => ts,
            Newest::Unknown => self
                .store
                .latest_version(key)
                .map_err(read_err)?
                .map(|v| v.commit_ts),
        };
        let newest = match (committed, self.overlay.latest.get(key)) {
            (Some(a), Some(b)) => Some(a.max(*b)),
            (a, b) => a.or(b.copied()),
        };
        Ok(newest.filter(|ts| *ts > since))
    }

    fn record(&self, start_ts: Timestamp, key: &[u8]) -> Result<Option<TxnRecord>, StorageError> {
        let rk = record_key(start_ts, key);
        if let Some(r) = self.overlay.records.get(&rk) {
            return Ok(Some(*r));
        }
        match self.store.get_meta(&rk).map_err(read_err)? {
            Some(bytes) => Ok(Some(bincode::deserialize(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_lock(&mut self, key: &[u8], lock: Lock) -> Result<(), StorageError> {
        let bytes = bincode::serialize(&lock).map_err(write_err)?;
        self.batch.put_lock(key, &bytes);
        self.overlay.locks.insert(key.to_vec(), Some(lock));
        Ok(())
    }

    fn delete_lock(&mut self, key: &[u8]) {
        self.batch.delete_lock(key);
        self.overlay.locks.insert(key.to_vec(), None);
    }

    fn put_record(
        &mut self,
        start_ts: Timestamp,
        key: &[u8],
        record: TxnRecord,
    ) -> Result<(), StorageError> {
        let rk = record_key(start_ts, key);
        let bytes = bincode::serialize(&record).map_err(write_err)?;
        self.batch.put_meta(&rk, &bytes);
        self.overlay.records.insert(rk, record);
        Ok(())
    }

    /// Write the version a mutation describes at `ts`. `newest`: `ts` is
    /// above every version in the group (above the applied `last_ts`), so
    /// the store may record it as the key's newest.
    fn write_version(&mut self, key: &[u8], kind: &TxnKind, ts: Timestamp, newest: bool) {
        match (kind, newest) {
            (TxnKind::Put(v), true) => self.batch.put_newest(key, ts, v),
            (TxnKind::Put(v), false) => self.batch.put(key, ts, v),
            (TxnKind::Delete, true) => self.batch.delete_newest(key, ts),
            (TxnKind::Delete, false) => self.batch.delete(key, ts),
            (TxnKind::Lock { .. }, _) => return,
        }
        self.note_write(key, ts);
    }

    /// Remember a version written by this batch (raw writes call it too).
    pub fn note_write(&mut self, key: &[u8], ts: Timestamp) {
        let e = self.overlay.latest.entry(key.to_vec()).or_insert(ts);
        *e = (*e).max(ts);
    }

    fn too_old(start_ts: Timestamp, entry_ts: Timestamp) -> bool {
        hlc::physical_ms(start_ts).saturating_add(MAX_TXN_AGE_MS) < hlc::physical_ms(entry_ts)
    }

    /// The conflict checks shared by one-phase commit and prewrite. Returns
    /// `Ok(None)` if every key may be written; keys this transaction already
    /// locked are reported in `already_locked`.
    fn check(
        &self,
        start_ts: Timestamp,
        primary: Option<&[u8]>,
        mutations: &[TxnMutation],
        already_locked: &mut Vec<bool>,
    ) -> Result<Option<TxnError>, StorageError> {
        for m in mutations {
            if let Some(lock) = self.lock(&m.key)? {
                // A lock is this transaction's only if both its start
                // timestamp and its primary match: two transactions must
                // never merge, even if they were given the same timestamp.
                if lock.start_ts == start_ts && Some(lock.primary.as_slice()) == primary {
                    already_locked.push(true);
                    continue;
                }
                return Ok(Some(TxnError::Locked {
                    key: m.key.clone(),
                    lock,
                }));
            }
            already_locked.push(false);
            match self.record(start_ts, &m.key)? {
                Some(TxnRecord::RolledBack) => return Ok(Some(TxnError::Aborted)),
                Some(TxnRecord::Committed(commit_ts)) => {
                    return Ok(Some(TxnError::AlreadyCommitted { commit_ts }))
                }
                None => {}
            }
            let since = match m.kind {
                TxnKind::Lock { since } => since,
                _ => start_ts,
            };
            if let Some(latest_ts) = self.newest_above(&m.key, since)? {
                return Ok(Some(TxnError::WriteConflict {
                    key: m.key.clone(),
                    latest_ts,
                }));
            }
        }
        Ok(None)
    }

    /// Check and write a single-group transaction at once. `commit_ts` is
    /// the effective timestamp the caller computed (above start and above
    /// every version already applied in the group, so each write is its
    /// key's newest version).
    pub fn one_phase(
        &mut self,
        start_ts: Timestamp,
        mutations: &[TxnMutation],
        commit_ts: Timestamp,
        entry_ts: Timestamp,
    ) -> Result<OpResult, StorageError> {
        if Self::too_old(start_ts, entry_ts) {
            return Ok(OpResult::Txn(TxnError::Invalid(
                "transaction too old".into(),
            )));
        }
        let mut locked = Vec::new();
        if let Some(e) = self.check(start_ts, None, mutations, &mut locked)? {
            return Ok(OpResult::Txn(e));
        }
        if locked.iter().any(|l| *l) {
            return Ok(OpResult::Txn(TxnError::Invalid(
                "one-phase commit over keys this transaction prewrote".into(),
            )));
        }
        for m in mutations {
            self.write_version(&m.key, &m.kind, commit_ts, true);
        }
        Ok(OpResult::Written { commit_ts })
    }

    pub fn prewrite(
        &mut self,
        start_ts: Timestamp,
        primary: &[u8],
        mutations: &[TxnMutation],
        ttl_ms: u64,
        min_commit_ts: Timestamp,
        entry_ts: Timestamp,
    ) -> Result<OpResult, StorageError> {
        if Self::too_old(start_ts, entry_ts) {
            return Ok(OpResult::Txn(TxnError::Invalid(
                "transaction too old".into(),
            )));
        }
        let mut locked = Vec::new();
        if let Some(e) = self.check(start_ts, Some(primary), mutations, &mut locked)? {
            return Ok(OpResult::Txn(e));
        }
        let min_commit_ts = min_commit_ts.max(start_ts + 1);
        for (m, already) in mutations.iter().zip(locked) {
            if already {
                continue;
            }
            let lock = Lock {
                start_ts,
                primary: primary.to_vec(),
                ttl_ms,
                created_ms: hlc::physical_ms(entry_ts),
                min_commit_ts,
                kind: m.kind.clone(),
            };
            self.put_lock(&m.key, lock)?;
        }
        Ok(OpResult::Prewritten { min_commit_ts })
    }

    pub fn commit(
        &mut self,
        start_ts: Timestamp,
        commit_ts: Timestamp,
        keys: &[Vec<u8>],
    ) -> Result<OpResult, StorageError> {
        if commit_ts <= start_ts {
            return Ok(OpResult::Txn(TxnError::Invalid(
                "commit ts must exceed start ts".into(),
            )));
        }
        // Validate every key first: a commit applies to all keys or none.
        let mut locks = Vec::with_capacity(keys.len());
        for key in keys {
            match self.lock(key)? {
                Some(lock) if lock.start_ts == start_ts => {
                    if commit_ts < lock.min_commit_ts {
                        return Ok(OpResult::Txn(TxnError::Invalid(format!(
                            "commit ts {commit_ts} below the lock's minimum {}",
                            lock.min_commit_ts
                        ))));
                    }
                    locks.push(Some(lock));
                }
                _ => {
                    if self.record(start_ts, key)? == Some(TxnRecord::RolledBack) {
                        return Ok(OpResult::Txn(TxnError::Aborted));
                    }
                    // Committed before (a retry, or a resolver was first).
                    locks.push(None);
                }
            }
        }
        for (key, lock) in keys.iter().zip(locks) {
            let Some(lock) = lock else { continue };
            // The coordinator chose `commit_ts`; newer versions may exist.
            self.write_version(key, &lock.kind, commit_ts, false);
            self.delete_lock(key);
            if key.as_slice() == lock.primary.as_slice() {
                self.put_record(start_ts, key, TxnRecord::Committed(commit_ts))?;
            }
        }
        Ok(OpResult::Written { commit_ts })
    }

    /// Roll back `keys` of the transaction `start_ts` (whose primary is
    /// `primary`, if known: a lock with another primary is left alone).
    pub fn rollback(
        &mut self,
        start_ts: Timestamp,
        primary: Option<&[u8]>,
        keys: &[Vec<u8>],
    ) -> Result<OpResult, StorageError> {
        for key in keys {
            if let Some(TxnRecord::Committed(commit_ts)) = self.record(start_ts, key)? {
                return Ok(OpResult::Txn(TxnError::AlreadyCommitted { commit_ts }));
            }
        }
        for key in keys {
            if let Some(lock) = self.lock(key)? {
                let ours = lock.start_ts == start_ts
                    && primary.is_none_or(|p| p == lock.primary.as_slice());
                if !ours {
                    continue;
                }
                self.delete_lock(key);
            }
            self.put_record(start_ts, key, TxnRecord::RolledBack)?;
        }
        Ok(OpResult::RolledBack)
    }

    pub fn check_status(
        &mut self,
        primary: &[u8],
        start_ts: Timestamp,
        entry_ts: Timestamp,
    ) -> Result<OpResult, StorageError> {
        if let Some(lock) = self.lock(primary)? {
            if lock.start_ts == start_ts {
                let expires_ms = lock.created_ms.saturating_add(lock.ttl_ms);
                let now_ms = hlc::physical_ms(entry_ts);
                if now_ms < expires_ms {
                    return Ok(OpResult::Status(TxnStatus::Locked {
                        ttl_left_ms: expires_ms - now_ms,
                    }));
                }
                // Expired: the coordinator is presumed dead. Rolling back
                // the primary decides the whole transaction.
                self.delete_lock(primary);
                self.put_record(start_ts, primary, TxnRecord::RolledBack)?;
                return Ok(OpResult::Status(TxnStatus::RolledBack));
            }
        }
        match self.record(start_ts, primary)? {
            Some(TxnRecord::Committed(commit_ts)) => {
                Ok(OpResult::Status(TxnStatus::Committed { commit_ts }))
            }
            Some(TxnRecord::RolledBack) => Ok(OpResult::Status(TxnStatus::RolledBack)),
            None => {
                // Never prewritten here (or not yet): make sure it never will be.
                self.put_record(start_ts, primary, TxnRecord::RolledBack)?;
                Ok(OpResult::Status(TxnStatus::RolledBack))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elastickv_storage::{Engine, EngineOptions};
    use elastickv_types::hlc::compose;
    use elastickv_types::GroupId;
    use std::cell::{Cell, RefCell};

    /// A group store with the recent-writes memory the state machine keeps.
    struct Fixture {
        store: GroupStore,
        recent: RefCell<RecentWrites>,
        last_ts: Cell<Timestamp>,
    }

    impl std::ops::Deref for Fixture {
        type Target = GroupStore;
        fn deref(&self) -> &GroupStore {
            &self.store
        }
    }

    /// `memory: false` makes every conflict check read the store.
    fn fixture(memory: bool) -> (tempfile::TempDir, Fixture) {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = Engine::open(&dir.path().join("s"), EngineOptions::default()).expect("engine");
        let store = engine.group(GroupId(1)).expect("group");
        let covers_above = if memory { 0 } else { Timestamp::MAX };
        let f = Fixture {
            store,
            recent: RefCell::new(RecentWrites::new(covers_above)),
            last_ts: Cell::new(0),
        };
        (dir, f)
    }

    fn store() -> (tempfile::TempDir, Fixture) {
        fixture(true)
    }

    /// Apply `f` as one batch.
    fn apply<T>(fx: &Fixture, f: impl FnOnce(&mut TxnCtx<'_>) -> T) -> T {
        let mut batch = fx.store.batch();
        let mut overlay = Overlay::default();
        let out = {
            let recent = fx.recent.borrow();
            let mut ctx = TxnCtx {
                store: &fx.store,
                recent: &recent,
                batch: &mut batch,
                overlay: &mut overlay,
            };
            f(&mut ctx)
        };
        batch.commit().expect("commit");
        let written: Vec<_> = overlay.into_written().collect();
        let last_ts = written
            .iter()
            .map(|(_, ts)| *ts)
            .fold(fx.last_ts.get(), Timestamp::max);
        fx.last_ts.set(last_ts);
        fx.recent.borrow_mut().record(written, last_ts);
        out
    }

    fn put(key: &str, v: &str) -> TxnMutation {
        TxnMutation {
            key: key.as_bytes().to_vec(),
            kind: TxnKind::Put(v.as_bytes().to_vec()),
        }
    }

    const MS: u64 = 1_700_000_000_000;
    fn ts(ms_offset: u64, logical: u16) -> Timestamp {
        compose(MS + ms_offset, logical)
    }

    #[test]
    fn prewrite_then_commit_makes_a_version_and_records_the_primary() {
        let (_d, s) = store();
        let r = apply(&s, |c| {
            c.prewrite(
                ts(0, 1),
                b"a",
                &[put("a", "1"), put("b", "2")],
                3000,
                ts(0, 5),
                ts(0, 5),
            )
        });
        assert_eq!(
            r.expect("ok"),
            OpResult::Prewritten {
                min_commit_ts: ts(0, 5)
            }
        );
        assert!(s.get_lock(b"a").expect("read").is_some());
        assert_eq!(
            s.get_at(b"a", ts(1, 0)).expect("read"),
            None,
            "locked, not yet visible"
        );
        let r = apply(&s, |c| {
            c.commit(ts(0, 1), ts(0, 9), &[b"a".to_vec(), b"b".to_vec()])
        })
        .expect("ok");
        assert_eq!(
            r,
            OpResult::Written {
                commit_ts: ts(0, 9)
            }
        );
        assert_eq!(s.get_at(b"b", ts(0, 9)).expect("read"), Some(b"2".to_vec()));
        assert_eq!(s.get_at(b"b", ts(0, 8)).expect("read"), None);
        assert!(s.get_lock(b"a").expect("read").is_none());
        // The primary's record answers status queries.
        let st = apply(&s, |c| c.check_status(b"a", ts(0, 1), ts(5, 0))).expect("ok");
        assert_eq!(
            st,
            OpResult::Status(TxnStatus::Committed {
                commit_ts: ts(0, 9)
            })
        );
        // Committing again is idempotent.
        let again = apply(&s, |c| c.commit(ts(0, 1), ts(0, 9), &[b"b".to_vec()])).expect("ok");
        assert_eq!(
            again,
            OpResult::Written {
                commit_ts: ts(0, 9)
            }
        );
    }

    #[test]
    fn write_write_conflicts_and_locks_are_detected() {
        for memory in [true, false] {
            write_write_conflicts_and_locks(memory);
        }
    }

    fn write_write_conflicts_and_locks(memory: bool) {
        let (_d, s) = fixture(memory);
        apply(&s, |c| {
            c.one_phase(ts(0, 1), &[put("k", "x")], ts(0, 10), ts(0, 10))
        })
        .expect("ok");
        // Started before the committed write: conflict.
        let r = apply(&s, |c| {
            c.prewrite(ts(0, 5), b"k", &[put("k", "y")], 3000, ts(0, 11), ts(0, 11))
        })
        .expect("ok");
        assert!(
            matches!(r, OpResult::Txn(TxnError::WriteConflict { latest_ts, .. }) if latest_ts == ts(0, 10))
        );
        // Started after: fine, and it locks k.
        let r = apply(&s, |c| {
            c.prewrite(
                ts(0, 20),
                b"k",
                &[put("k", "y")],
                3000,
                ts(0, 21),
                ts(0, 21),
            )
        })
        .expect("ok");
        assert!(matches!(r, OpResult::Prewritten { .. }));
        // A third transaction meets the lock, in prewrite and in one-phase.
        let r = apply(&s, |c| {
            c.one_phase(ts(0, 30), &[put("k", "z")], ts(0, 31), ts(0, 31))
        })
        .expect("ok");
        assert!(matches!(r, OpResult::Txn(TxnError::Locked { .. })));
        // Same apply batch: the second prewrite sees the first one's lock.
        let (r1, r2) = apply(&s, |c| {
            let r1 = c.prewrite(
                ts(0, 40),
                b"m",
                &[put("m", "1")],
                3000,
                ts(0, 41),
                ts(0, 41),
            );
            let r2 = c.prewrite(
                ts(0, 42),
                b"m",
                &[put("m", "2")],
                3000,
                ts(0, 43),
                ts(0, 43),
            );
            (r1, r2)
        });
        assert!(matches!(r1.expect("ok"), OpResult::Prewritten { .. }));
        assert!(matches!(
            r2.expect("ok"),
            OpResult::Txn(TxnError::Locked { .. })
        ));
    }

    #[test]
    fn transactions_sharing_a_start_timestamp_never_merge() {
        let (_d, s) = store();
        let r = apply(&s, |c| {
            c.prewrite(ts(0, 1), b"a", &[put("k", "1")], 3000, ts(0, 2), ts(0, 2))
        })
        .expect("ok");
        assert!(matches!(r, OpResult::Prewritten { .. }));
        // Another transaction with the same start timestamp (another primary).
        let r = apply(&s, |c| {
            c.prewrite(ts(0, 1), b"z", &[put("k", "2")], 3000, ts(0, 3), ts(0, 3))
        })
        .expect("ok");
        assert!(matches!(r, OpResult::Txn(TxnError::Locked { .. })), "{r:?}");
        // Its rollback leaves the first one's lock in place.
        apply(&s, |c| c.rollback(ts(0, 1), Some(b"z"), &[b"k".to_vec()])).expect("ok");
        assert!(s.get_lock(b"k").expect("read").is_some());
    }

    #[test]
    fn expired_primary_is_rolled_back_and_late_prewrite_refused() {
        let (_d, s) = store();
        apply(&s, |c| {
            c.prewrite(ts(0, 1), b"p", &[put("p", "1")], 1000, ts(0, 2), ts(0, 2))
        })
        .expect("ok");
        let live = apply(&s, |c| c.check_status(b"p", ts(0, 1), ts(500, 0))).expect("ok");
        assert!(matches!(
            live,
            OpResult::Status(TxnStatus::Locked { ttl_left_ms: 500 })
        ));
        let dead = apply(&s, |c| c.check_status(b"p", ts(0, 1), ts(1500, 0))).expect("ok");
        assert_eq!(dead, OpResult::Status(TxnStatus::RolledBack));
        assert!(s.get_lock(b"p").expect("read").is_none());
        // The coordinator wakes up and tries to commit: refused.
        let late = apply(&s, |c| c.commit(ts(0, 1), ts(0, 9), &[b"p".to_vec()])).expect("ok");
        assert_eq!(late, OpResult::Txn(TxnError::Aborted));
        // A status check of a transaction never seen prevents its prewrite.
        apply(&s, |c| c.check_status(b"q", ts(0, 7), ts(1, 0))).expect("ok");
        let r = apply(&s, |c| {
            c.prewrite(ts(0, 7), b"q", &[put("q", "1")], 1000, ts(2, 0), ts(2, 0))
        })
        .expect("ok");
        assert_eq!(r, OpResult::Txn(TxnError::Aborted));
    }

    #[test]
    fn rollback_after_commit_is_refused_and_commit_respects_min_commit_ts() {
        let (_d, s) = store();
        apply(&s, |c| {
            c.prewrite(ts(0, 1), b"a", &[put("a", "1")], 3000, ts(0, 50), ts(0, 50))
        })
        .expect("ok");
        let low = apply(&s, |c| c.commit(ts(0, 1), ts(0, 49), &[b"a".to_vec()])).expect("ok");
        assert!(matches!(low, OpResult::Txn(TxnError::Invalid(_))));
        apply(&s, |c| c.commit(ts(0, 1), ts(0, 60), &[b"a".to_vec()])).expect("ok");
        let rb = apply(&s, |c| c.rollback(ts(0, 1), Some(b"a"), &[b"a".to_vec()])).expect("ok");
        assert_eq!(
            rb,
            OpResult::Txn(TxnError::AlreadyCommitted {
                commit_ts: ts(0, 60)
            })
        );
    }

    #[test]
    fn lock_only_mutations_check_since_and_write_nothing() {
        for memory in [true, false] {
            lock_only_mutations(memory);
        }
    }

    fn lock_only_mutations(memory: bool) {
        let (_d, s) = fixture(memory);
        apply(&s, |c| {
            c.one_phase(ts(0, 1), &[put("w", "1")], ts(0, 10), ts(0, 10))
        })
        .expect("ok");
        let watch = |since| TxnMutation {
            key: b"w".to_vec(),
            kind: TxnKind::Lock { since },
        };
        let stale = apply(&s, |c| {
            c.one_phase(
                ts(0, 20),
                &[watch(ts(0, 5)), put("x", "1")],
                ts(0, 21),
                ts(0, 21),
            )
        })
        .expect("ok");
        assert!(matches!(
            stale,
            OpResult::Txn(TxnError::WriteConflict { .. })
        ));
        let fresh = apply(&s, |c| {
            c.one_phase(
                ts(0, 20),
                &[watch(ts(0, 10)), put("x", "1")],
                ts(0, 21),
                ts(0, 21),
            )
        })
        .expect("ok");
        assert_eq!(
            fresh,
            OpResult::Written {
                commit_ts: ts(0, 21)
            }
        );
        assert_eq!(
            s.latest_version(b"w").expect("read").map(|v| v.commit_ts),
            Some(ts(0, 10))
        );
    }
}
