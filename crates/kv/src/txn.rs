//! Transactions: snapshot isolation over every group, Percolator-style.
//!
//! A [`Txn`] reads at its start timestamp (seeing its own buffered writes),
//! buffers writes, and commits: in one Raft round when every key lives in one
//! group (one-phase commit), otherwise by two-phase commit — prewrite locks in
//! every group (the first key is the primary), then commit the primary, then
//! the secondaries. Write-write conflicts are detected at prewrite (OCC) and
//! reported as [`KvError::Conflict`]; the transaction is never retried here.
//! A reader that meets a lock resolves it through the primary's status.

use crate::node::{map_repl, map_storage};
use crate::{Kv, KvError};
use elastickv_raft::txn_apply::decode_lock;
use elastickv_raft::{Lock, Op, OpResult, TxnError, TxnKind, TxnMutation, TxnStatus};
use elastickv_storage::Version;
use elastickv_types::{limits, GroupId, Timestamp, DEFAULT_GROUP};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::time::{Duration, Instant};

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

/// Lock TTL of a transaction's prewrites: after it, a reader may roll back
/// a transaction whose coordinator went silent.
pub const LOCK_TTL_MS: u64 = 3_000;
/// How long a reader waits for a live lock before reporting a conflict.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// An open transaction. Dropping it without committing rolls it back (it
/// has written nothing before commit).
pub struct Txn {
    kv: Kv,
    start_ts: Timestamp,
    writes: BTreeMap<Vec<u8>, TxnWrite>,
    /// Groups whose leader already saw this transaction's start timestamp
    /// and whose local replica caught up with it.
    pinned: HashSet<GroupId>,
    /// Where the start timestamp came from. Only the oracle's are unique
    /// cluster-wide; another group's leader may hand out the same value, so
    /// such a transaction must not take locks (two-phase commit): a lock is
    /// owned by (start timestamp, primary), and two transactions sharing both
    /// would merge.
    oracle_start: bool,
}

fn txn_conflict(e: TxnError) -> KvError {
    match e {
        TxnError::WriteConflict { key, latest_ts } => KvError::Conflict(format!(
            "write conflict on key {:?}: committed at {latest_ts} after the transaction started",
            String::from_utf8_lossy(&key)
        )),
        TxnError::Locked { key, lock } => KvError::Conflict(format!(
            "key {:?} is locked by transaction {}",
            String::from_utf8_lossy(&key),
            lock.start_ts
        )),
        TxnError::Aborted => KvError::Conflict("transaction was rolled back".into()),
        TxnError::AlreadyCommitted { commit_ts } => {
            KvError::Internal(format!("transaction already committed at {commit_ts}"))
        }
        TxnError::Invalid(m) => KvError::InvalidArgument(m),
    }
}

impl Txn {
    pub(crate) fn new(kv: Kv, start_ts: Timestamp) -> Self {
        Txn {
            kv,
            start_ts,
            writes: BTreeMap::new(),
            pinned: HashSet::new(),
            oracle_start: true,
        }
    }

    /// The snapshot timestamp every read of this transaction uses.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// A fresh timestamp from this node's hybrid logical clock. A snapshot
    /// may be older than the moment the transaction runs (a read that asks
    /// for no particular snapshot is given the last applied commit
    /// timestamp while writes are in flight), so whatever depends on the
    /// time itself, such as key expiry, asks the clock, not `start_ts`.
    pub fn clock_now(&self) -> Timestamp {
        self.kv.now().max(self.start_ts)
    }

    /// Make `group` serve this snapshot: its leader observes the start
    /// timestamp (so later commits land above it) and the local replica
    /// applies everything the leader accepted below it.
    async fn pin(&mut self, group: GroupId, force: bool) -> Result<(), KvError> {
        if !force && self.pinned.contains(&group) {
            return Ok(());
        }
        self.kv.check_read_ts(group, Some(self.start_ts))?;
        self.kv
            .raft()
            .read_point(group, Some(self.start_ts))
            .await
            .map_err(map_repl)?;
        self.pinned.insert(group);
        Ok(())
    }

    /// A lock this reader must not read past: another transaction's, on a
    /// value, from before our snapshot.
    fn blocking(&self, lock: &Lock) -> bool {
        lock.start_ts < self.start_ts && !matches!(lock.kind, TxnKind::Lock { .. })
    }

    /// Value of `key` in this transaction's snapshot plus its own writes.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.writes.get(key) {
            Some(TxnWrite::Put(v)) => return Ok(Some(v.clone())),
            Some(TxnWrite::Delete) => return Ok(None),
            _ => {}
        }
        Ok(self.snapshot_version(key).await?.and_then(|v| v.value))
    }

    /// Commit timestamp of `key`'s newest version in this snapshot,
    /// tombstones included (`None`: no version at or below it). The
    /// transaction's own buffered writes do not count. Like every read, it
    /// makes the key's group observe the snapshot, so a write committed
    /// there afterwards lands above it: together with `assert_unchanged`
    /// at commit, this decides whether a key was written after a given
    /// timestamp without an extra commit.
    pub async fn version_ts(&mut self, key: &[u8]) -> Result<Option<Timestamp>, KvError> {
        Ok(self.snapshot_version(key).await?.map(|v| v.commit_ts))
    }

    /// The version of `key` this snapshot sees, after resolving any lock a
    /// transaction that started before it left on the key.
    async fn snapshot_version(&mut self, key: &[u8]) -> Result<Option<Version>, KvError> {
        let group = self.kv.router().route(key).group;
        self.pin(group, false).await?;
        // A stale table sent us to a group that does not own the key: the
        // transaction fails retryably rather than read from the wrong place.
        self.kv.check_owned(group, key).map_err(map_repl)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let store = self.kv.group_store(group)?;
            if let Some(bytes) = store.get_lock(key).map_err(map_storage)? {
                let lock = decode_lock(&bytes).map_err(|e| KvError::Internal(e.to_string()))?;
                if self.blocking(&lock) {
                    self.kv.resolve_lock(key, &lock, deadline).await?;
                    self.pin(group, true).await?;
                    continue;
                }
            }
            return store
                .get_version_at(key, self.start_ts)
                .map_err(map_storage);
        }
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
        Ok(self.scan_page(start, end, limit, reverse).await?.0)
    }

    /// [`Txn::scan`], also telling whether the rows returned are all the
    /// range holds (`true`: a scan past the last row would find nothing),
    /// so a pager needs no extra round to prove the range exhausted.
    pub async fn scan_page(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool), KvError> {
        let limit = limit.min(limits::MAX_SCAN_LIMIT);
        let mut pieces = self.kv.router().split(start, end);
        if reverse {
            pieces.reverse();
        }
        let mut out = Vec::new();
        let mut exhausted = true;
        for piece in pieces {
            if out.len() >= limit {
                // Later pieces were not looked at.
                exhausted = false;
                break;
            }
            let (rows, piece_done) = self
                .scan_piece(
                    piece.group,
                    &piece.start,
                    piece.end.as_deref(),
                    limit - out.len(),
                    reverse,
                )
                .await?;
            exhausted &= piece_done;
            if out.is_empty() {
                out = rows;
            } else {
                out.extend(rows);
            }
        }
        Ok((out, exhausted))
    }

    /// One group's part of a scan: its rows and whether they are all the
    /// piece holds.
    async fn scan_piece(
        &mut self,
        group: GroupId,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool), KvError> {
        self.pin(group, false).await?;
        self.kv.check_covered(group, start, end).map_err(map_repl)?;
        let deadline = Instant::now() + LOCK_WAIT;
        // Resolve every blocking lock in the range first.
        loop {
            let store = self.kv.group_store(group)?;
            let locks = store.scan_locks(start, end, 256).map_err(map_storage)?;
            let mut resolved_any = false;
            for (key, bytes) in locks {
                let lock = decode_lock(&bytes).map_err(|e| KvError::Internal(e.to_string()))?;
                if self.blocking(&lock) {
                    self.kv.resolve_lock(&key, &lock, deadline).await?;
                    resolved_any = true;
                }
            }
            if !resolved_any {
                break;
            }
            self.pin(group, true).await?;
        }
        // Our own writes in the range may hide stored rows (deletes) or add
        // rows; fetch enough stored rows to fill the limit either way.
        let own: Vec<(&Vec<u8>, &TxnWrite)> = self
            .writes
            .range::<[u8], _>((
                Bound::Included(start),
                end.map_or(Bound::Unbounded, Bound::Excluded),
            ))
            .filter(|(_, w)| !matches!(w, TxnWrite::AssertUnchanged { .. }))
            .collect();
        let want = limit.saturating_add(own.len()).min(limits::MAX_SCAN_LIMIT);
        let store = self.kv.group_store(group)?;
        let stored = store
            .scan_at(start, end, self.start_ts, want, reverse)
            .map_err(map_storage)?;
        // The store returns fewer rows than asked only at the range's end.
        let store_done = stored.len() < want;
        if own.is_empty() {
            // The common read-only case: the stored rows are the answer.
            return Ok((stored, store_done));
        }
        // If the store returned a full page, rows past its last key are
        // unknown: own writes beyond it must wait for a later page.
        let boundary = (!store_done)
            .then(|| stored.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (k, w) in own {
            let beyond = match &boundary {
                Some(b) if reverse => k < b,
                Some(b) => k > b,
                None => false,
            };
            if beyond {
                continue;
            }
            match w {
                TxnWrite::Put(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                TxnWrite::Delete => {
                    merged.remove(k);
                }
                TxnWrite::AssertUnchanged { .. } => {}
            }
        }
        let done = store_done && merged.len() <= limit;
        let rows: Vec<_> = if reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        };
        Ok((rows, done))
    }

    /// Versions of `key` older than this may already be garbage-collected
    /// (its group's GC safe point; 0 when the group is not hosted here, so
    /// nothing is known to be lost).
    pub fn gc_safe_point(&self, key: &[u8]) -> Timestamp {
        self.kv.gc_safe_point(self.kv.router().route(key).group)
    }

    /// True when a put or delete of `key` is buffered (an assert does not
    /// count).
    pub fn buffers_write(&self, key: &[u8]) -> bool {
        matches!(
            self.writes.get(key),
            Some(TxnWrite::Put(_) | TxnWrite::Delete)
        )
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

    /// The buffered writes as mutations, grouped by Raft group, keys sorted.
    fn mutations_by_group(&self) -> Result<BTreeMap<GroupId, Vec<TxnMutation>>, KvError> {
        let mut by_group: BTreeMap<GroupId, Vec<TxnMutation>> = BTreeMap::new();
        for (key, write) in &self.writes {
            self.kv.check_key(key)?;
            let kind = match write {
                TxnWrite::Put(v) => {
                    if v.len() > self.kv.max_value_bytes() {
                        return Err(KvError::InvalidArgument(format!(
                            "value of {} bytes exceeds the limit of {} bytes",
                            v.len(),
                            self.kv.max_value_bytes()
                        )));
                    }
                    TxnKind::Put(v.clone())
                }
                TxnWrite::Delete => TxnKind::Delete,
                TxnWrite::AssertUnchanged { since } => TxnKind::Lock { since: *since },
            };
            let group = self.kv.router().route(key).group;
            by_group.entry(group).or_default().push(TxnMutation {
                key: key.clone(),
                kind,
            });
        }
        Ok(by_group)
    }

    /// Commit atomically; returns the commit timestamp (the start timestamp
    /// for a transaction that wrote nothing). `KvError::Conflict` means
    /// another transaction wrote one of the keys after this one started:
    /// nothing was written, and the caller decides whether to retry.
    pub async fn commit(self) -> Result<Timestamp, KvError> {
        if self.writes.is_empty() {
            return Ok(self.start_ts);
        }
        let mut by_group = self.mutations_by_group()?;
        if by_group.len() == 1 {
            if let Some((group, mutations)) = by_group.pop_first() {
                return self.commit_one_phase(group, mutations).await;
            }
        }
        if !self.oracle_start {
            // Begun in one group (`Kv::begin_within`) but writing several:
            // the routes changed under it. Run again, it will begin at the
            // oracle.
            return Err(KvError::Conflict(
                "the transaction's keys moved to several groups while it ran".into(),
            ));
        }
        self.commit_two_phase(by_group).await
    }

    async fn commit_one_phase(
        &self,
        group: GroupId,
        mutations: Vec<TxnMutation>,
    ) -> Result<Timestamp, KvError> {
        let deadline = Instant::now() + LOCK_WAIT;
        // A second attempt only after resolving a lock left by another
        // transaction: conflicts are still checked against our start
        // timestamp, so nothing is replayed on data we did not see.
        for attempt in 0..2 {
            let op = Op::OnePhase {
                start_ts: self.start_ts,
                mutations: mutations.clone(),
            };
            match self.kv.raft().propose(group, op).await.map_err(map_repl)? {
                (OpResult::Written { commit_ts }, _) => return Ok(commit_ts),
                (OpResult::Txn(TxnError::Locked { key, lock }), _) if attempt == 0 => {
                    self.kv.resolve_lock(&key, &lock, deadline).await?;
                }
                (OpResult::Txn(e), _) => return Err(txn_conflict(e)),
                (other, _) => {
                    return Err(KvError::Internal(format!("unexpected result {other:?}")))
                }
            }
        }
        Err(KvError::Conflict(
            "keys stayed locked by another transaction".into(),
        ))
    }

    async fn commit_two_phase(
        &self,
        by_group: BTreeMap<GroupId, Vec<TxnMutation>>,
    ) -> Result<Timestamp, KvError> {
        let primary = self
            .writes
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| KvError::Internal("no primary".into()))?;
        let primary_group = self.kv.router().route(&primary).group;
        let keys_of = |g: &GroupId| -> Vec<Vec<u8>> {
            by_group
                .get(g)
                .map(|ms| ms.iter().map(|m| m.key.clone()).collect())
                .unwrap_or_default()
        };

        // Phase one: every group at once. Nothing is decided until the
        // primary commits, so the order of prewrites does not matter.
        let mut min_commit_ts = self.start_ts + 1;
        let prewrites = by_group
            .keys()
            .map(|g| self.prewrite(*g, &primary, &by_group));
        let mut failure = None;
        for r in futures::future::join_all(prewrites).await {
            match r {
                Ok(ts) => min_commit_ts = min_commit_ts.max(ts),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            self.rollback_all(&by_group).await;
            return Err(e);
        }

        // Phase two: the primary decides; secondaries follow.
        let commit_ts = self.kv.tso().await?.max(min_commit_ts);
        let op = Op::Commit {
            start_ts: self.start_ts,
            commit_ts,
            keys: keys_of(&primary_group),
        };
        // Before the client hears of the commit, every other participant's
        // leader and the oracle observe the commit timestamp (the primary's
        // applies it): a transaction that begins afterwards, at any of them,
        // starts above it and sees this one, even before the secondaries
        // are committed. Done alongside the primary's commit, so it costs no
        // extra round.
        let mut observers: std::collections::BTreeSet<GroupId> = by_group.keys().copied().collect();
        observers.insert(DEFAULT_GROUP);
        observers.remove(&primary_group);
        let observed = futures::future::join_all(
            observers
                .iter()
                .map(|g| self.kv.raft().observe_on_leader(*g, commit_ts)),
        );
        let (decided, observed) =
            futures::future::join(self.kv.raft().propose(primary_group, op), observed).await;
        let unpublished = observed.into_iter().find_map(|r| r.err());
        match decided {
            Ok((OpResult::Written { .. }, _)) => {}
            Ok((OpResult::Txn(e), _)) => {
                self.rollback_all(&by_group).await;
                return Err(txn_conflict(e));
            }
            Ok((other, _)) => {
                return Err(KvError::Internal(format!("unexpected result {other:?}")))
            }
            // Unknown outcome: readers will resolve the locks either way.
            Err(e) => return Err(map_repl(e)),
        }
        // The transaction is committed: secondaries are finished in the
        // background. A reader that gets there first resolves the lock
        // through the primary's commit record.
        let secondaries: Vec<(GroupId, Vec<Vec<u8>>)> = by_group
            .keys()
            .filter(|g| **g != primary_group)
            .map(|g| (*g, keys_of(g)))
            .collect();
        let kv = self.kv.clone();
        let start_ts = self.start_ts;
        tokio::spawn(async move {
            let commits = secondaries.into_iter().map(|(g, keys)| {
                let op = Op::Commit {
                    start_ts,
                    commit_ts,
                    keys,
                };
                let kv = kv.clone();
                async move { kv.raft().propose(g, op).await }
            });
            for r in futures::future::join_all(commits).await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "committing a secondary failed; readers will resolve it");
                }
            }
        });
        if let Some(e) = unpublished {
            // Committed, but a later transaction might not see it yet: the
            // caller must not treat it as a plain success.
            return Err(KvError::Timeout(format!(
                "committed at {commit_ts}, but the commit timestamp could not be published: {e}"
            )));
        }
        Ok(commit_ts)
    }

    async fn prewrite(
        &self,
        group: GroupId,
        primary: &[u8],
        by_group: &BTreeMap<GroupId, Vec<TxnMutation>>,
    ) -> Result<Timestamp, KvError> {
        let mutations = by_group.get(&group).cloned().unwrap_or_default();
        let deadline = Instant::now() + LOCK_WAIT;
        for attempt in 0..2 {
            let op = Op::Prewrite {
                start_ts: self.start_ts,
                primary: primary.to_vec(),
                mutations: mutations.clone(),
                ttl_ms: LOCK_TTL_MS,
            };
            match self.kv.raft().propose(group, op).await.map_err(map_repl)? {
                (OpResult::Prewritten { min_commit_ts }, _) => return Ok(min_commit_ts),
                (OpResult::Txn(TxnError::Locked { key, lock }), _) if attempt == 0 => {
                    self.kv.resolve_lock(&key, &lock, deadline).await?;
                }
                (OpResult::Txn(e), _) => return Err(txn_conflict(e)),
                (other, _) => {
                    return Err(KvError::Internal(format!("unexpected result {other:?}")))
                }
            }
        }
        Err(KvError::Conflict(
            "keys stayed locked by another transaction".into(),
        ))
    }

    /// Best-effort rollback of every group's keys; locks left behind expire
    /// and are resolved by readers.
    async fn rollback_all(&self, by_group: &BTreeMap<GroupId, Vec<TxnMutation>>) {
        let primary = self.writes.keys().next().cloned();
        let rollbacks = by_group.iter().map(|(g, ms)| {
            let op = Op::Rollback {
                start_ts: self.start_ts,
                primary: primary.clone(),
                keys: ms.iter().map(|m| m.key.clone()).collect(),
            };
            self.kv.raft().propose(*g, op)
        });
        for r in futures::future::join_all(rollbacks).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "rollback failed; the locks will expire");
            }
        }
    }
}

impl Kv {
    /// A timestamp from the oracle (the default group's leader): above every
    /// timestamp it issued before, so a transaction that begins after another
    /// committed sees it.
    pub(crate) async fn tso(&self) -> Result<Timestamp, KvError> {
        self.raft().timestamp(DEFAULT_GROUP).await.map_err(map_repl)
    }

    /// Begin a transaction at a fresh snapshot timestamp from the oracle.
    pub async fn begin(&self) -> Result<Txn, KvError> {
        let ts = self.tso().await?;
        Ok(Txn::new(self.clone(), ts))
    }

    /// Begin a transaction that expects to touch only keys of
    /// `[start, end)`. When one group owns that whole range, its leader
    /// gives the start timestamp — a snapshot holding every write the group
    /// acknowledged (`ReadAt::Latest`) — and the local replica catches up
    /// with it in the same round, instead of an oracle round followed by a
    /// read-index round on the group. Otherwise the oracle's. Such a transaction may read other
    /// groups, but writes in one group only (see `Txn::commit`).
    pub async fn begin_within(&self, start: &[u8], end: Option<&[u8]>) -> Result<Txn, KvError> {
        let pieces = self.router().split(start, end);
        let group = match pieces.first() {
            Some(first) if pieces.iter().all(|p| p.group == first.group) => first.group,
            _ => return self.begin().await,
        };
        let point = self
            .raft()
            .read_point(group, None)
            .await
            .map_err(map_repl)?;
        let mut txn = Txn::new(self.clone(), point.ts);
        txn.pinned.insert(group);
        txn.oracle_start = false;
        Ok(txn)
    }

    /// Begin a transaction reading at `start_ts` (must be at or above the GC
    /// safe point).
    pub async fn begin_at(&self, start_ts: Timestamp) -> Result<Txn, KvError> {
        Ok(Txn::new(self.clone(), start_ts))
    }

    /// Settle another transaction's lock on `key`: ask its primary's group
    /// for the transaction's fate (rolling it back if the lock expired),
    /// then commit or roll back this key accordingly. Waits while the lock
    /// is alive, until `deadline`.
    pub(crate) async fn resolve_lock(
        &self,
        key: &[u8],
        lock: &Lock,
        deadline: Instant,
    ) -> Result<(), KvError> {
        let primary_group = self.router().route(&lock.primary).group;
        let key_group = self.router().route(key).group;
        let mut backoff = Duration::from_millis(5);
        loop {
            let op = Op::CheckTxnStatus {
                primary: lock.primary.clone(),
                start_ts: lock.start_ts,
            };
            let (status, _) = self
                .raft()
                .propose(primary_group, op)
                .await
                .map_err(map_repl)?;
            let op = match status {
                OpResult::Status(TxnStatus::Committed { commit_ts }) => Op::Commit {
                    start_ts: lock.start_ts,
                    commit_ts,
                    keys: vec![key.to_vec()],
                },
                OpResult::Status(TxnStatus::RolledBack) => Op::Rollback {
                    start_ts: lock.start_ts,
                    primary: Some(lock.primary.clone()),
                    keys: vec![key.to_vec()],
                },
                OpResult::Status(TxnStatus::Locked { ttl_left_ms }) => {
                    if Instant::now() + backoff > deadline {
                        return Err(KvError::Conflict(format!(
                            "key {:?} is locked by live transaction {}",
                            String::from_utf8_lossy(key),
                            lock.start_ts
                        )));
                    }
                    tokio::time::sleep(backoff.min(Duration::from_millis(ttl_left_ms.max(1))))
                        .await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                    continue;
                }
                other => return Err(KvError::Internal(format!("unexpected status {other:?}"))),
            };
            // The key's own lock may already be gone (another resolver): the
            // state machine answers idempotently.
            self.raft().propose(key_group, op).await.map_err(map_repl)?;
            return Ok(());
        }
    }
}

/// A key error of a client-driven prewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrewriteError {
    pub key: Vec<u8>,
    pub error: KvError,
}

impl Kv {
    /// Client-driven first phase (the original `TransactionalKV.PreWrite`):
    /// lock `mutations` for the transaction `start_ts`; the first key is the
    /// primary. Returns the per-key errors (empty on success).
    pub async fn prewrite_client(
        &self,
        start_ts: Timestamp,
        mutations: Vec<(Vec<u8>, TxnWrite)>,
        ttl_ms: u64,
    ) -> Result<Vec<PrewriteError>, KvError> {
        let Some(primary) = mutations.first().map(|(k, _)| k.clone()) else {
            return Ok(Vec::new());
        };
        let mut txn = Txn::new(self.clone(), start_ts);
        for (k, w) in mutations {
            txn.writes.insert(k, w);
        }
        let by_group = txn.mutations_by_group()?;
        let ttl_ms = if ttl_ms == 0 {
            LOCK_TTL_MS
        } else {
            ttl_ms.min(60_000)
        };
        let mut errors = Vec::new();
        for (group, muts) in by_group {
            let op = Op::Prewrite {
                start_ts,
                primary: primary.clone(),
                mutations: muts,
                ttl_ms,
            };
            match self.raft().propose(group, op).await.map_err(map_repl)? {
                (OpResult::Prewritten { .. }, _) => {}
                (OpResult::Txn(e), _) => {
                    let key = match &e {
                        TxnError::WriteConflict { key, .. } | TxnError::Locked { key, .. } => {
                            key.clone()
                        }
                        _ => primary.clone(),
                    };
                    errors.push(PrewriteError {
                        key,
                        error: txn_conflict(e),
                    });
                }
                (other, _) => {
                    return Err(KvError::Internal(format!("unexpected result {other:?}")))
                }
            }
        }
        Ok(errors)
    }

    /// Client-driven second phase (`TransactionalKV.Commit`): commit the
    /// transaction `start_ts` on `keys`. The commit timestamp is chosen here,
    /// above every lock's minimum; the primary (named in the locks) commits
    /// first and decides the transaction.
    pub async fn commit_client(
        &self,
        start_ts: Timestamp,
        keys: Vec<Vec<u8>>,
    ) -> Result<Timestamp, KvError> {
        let mut locks = Vec::new();
        for key in &keys {
            let group = self.router().route(key).group;
            self.raft()
                .read_point(group, None)
                .await
                .map_err(map_repl)?;
            if let Some(bytes) = self
                .group_store(group)?
                .get_lock(key)
                .map_err(map_storage)?
            {
                let lock = decode_lock(&bytes).map_err(|e| KvError::Internal(e.to_string()))?;
                if lock.start_ts == start_ts {
                    locks.push((key.clone(), lock));
                }
            }
        }
        let Some(primary) = locks.first().map(|(_, l)| l.primary.clone()) else {
            return Err(KvError::InvalidArgument(format!(
                "no prewritten key of transaction {start_ts} among the keys given"
            )));
        };
        let min_commit_ts = locks
            .iter()
            .map(|(_, l)| l.min_commit_ts)
            .max()
            .unwrap_or(start_ts + 1);
        let commit_ts = self.tso().await?.max(min_commit_ts);
        let mut by_group: BTreeMap<GroupId, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, _) in &locks {
            by_group
                .entry(self.router().route(k).group)
                .or_default()
                .push(k.clone());
        }
        let primary_group = self.router().route(&primary).group;
        let primary_keys = by_group.remove(&primary_group).unwrap_or_default();
        let mut first = primary_keys;
        if !first.contains(&primary) {
            first.push(primary.clone());
        }
        let op = Op::Commit {
            start_ts,
            commit_ts,
            keys: first,
        };
        match self
            .raft()
            .propose(primary_group, op)
            .await
            .map_err(map_repl)?
        {
            (OpResult::Written { .. }, _) => {}
            (OpResult::Txn(e), _) => return Err(txn_conflict(e)),
            (other, _) => return Err(KvError::Internal(format!("unexpected result {other:?}"))),
        }
        for (group, keys) in by_group {
            let op = Op::Commit {
                start_ts,
                commit_ts,
                keys,
            };
            if let Err(e) = self.raft().propose(group, op).await {
                tracing::debug!(error = %e, "committing a secondary failed; readers will resolve it");
            }
        }
        Ok(commit_ts)
    }

    /// Client-driven rollback (`TransactionalKV.Rollback`): the original API
    /// names only the start timestamp, so every group's lock table is
    /// searched (bounded) for the transaction's locks.
    pub async fn rollback_client(&self, start_ts: Timestamp) -> Result<usize, KvError> {
        const MAX_LOCKS_SCANNED: usize = 100_000;
        let mut rolled_back = 0;
        for group in self.raft().groups() {
            self.raft()
                .read_point(group.id, None)
                .await
                .map_err(map_repl)?;
            let keys: Vec<Vec<u8>> = group
                .store
                .scan_locks(&[], None, MAX_LOCKS_SCANNED)
                .map_err(map_storage)?
                .into_iter()
                .filter_map(|(k, v)| {
                    decode_lock(&v)
                        .ok()
                        .filter(|l| l.start_ts == start_ts)
                        .map(|_| k)
                })
                .collect();
            if keys.is_empty() {
                continue;
            }
            rolled_back += keys.len();
            match self
                .raft()
                .propose(
                    group.id,
                    Op::Rollback {
                        start_ts,
                        primary: None,
                        keys,
                    },
                )
                .await
                .map_err(map_repl)?
            {
                (OpResult::RolledBack, _) => {}
                (OpResult::Txn(e), _) => return Err(txn_conflict(e)),
                (other, _) => {
                    return Err(KvError::Internal(format!("unexpected result {other:?}")))
                }
            }
        }
        Ok(rolled_back)
    }
}
