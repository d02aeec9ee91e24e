//! The replicated state machine of one group: applies committed proposals to
//! the MVCC store, de-duplicates retried requests, and builds and installs
//! snapshots as files streamed in chunks.
//!
//! **Invariant:** the applied log id, membership and last commit timestamp
//! are written in the same atomic batch as the data they describe, so after a
//! crash the store is exactly "applied up to X" and openraft re-applies the
//! rest from the (durable) log. Applying is deterministic: the effective
//! commit timestamp of a write is `max(proposed, last_ts + 1)`, so versions
//! follow log order on every replica whatever the clocks did.

use crate::command::{Mutation, Op, OpResult, Ownership, Proposal, ProposalResult, Request};
use crate::dedup::Dedup;
use crate::durability::Durability;
use crate::recent_writes::RecentWrites;
use crate::txn_apply::{Overlay, TxnCtx};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use elastickv_storage::{GroupBatch, GroupStore, GroupView};
use elastickv_types::{hlc, Hlc, Timestamp};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata key of the applied state.
const META_APPLIED: &[u8] = b"applied";

const SNAPSHOT_FILE: &str = "current.snap";

/// What a group's state machine publishes to the rest of its node: the
/// applied ownership (for the read path) and the group's committed HLC
/// ceiling (for the proposer).
#[derive(Clone, Default)]
pub struct SharedApplied(
    Arc<std::sync::RwLock<Option<Ownership>>>,
    Arc<std::sync::atomic::AtomicU64>,
    /// (last applied log index, last applied commit timestamp), published
    /// together once the batch that applied them is in the store.
    Arc<std::sync::Mutex<(u64, Timestamp)>>,
);

impl SharedApplied {
    fn set(&self, o: Option<Ownership>) {
        if let Ok(mut w) = self.0.write() {
            *w = o;
        }
    }

    fn set_ceiling_ms(&self, ms: u64) {
        self.1.fetch_max(ms, std::sync::atomic::Ordering::AcqRel);
    }

    fn set_applied_point(&self, index: u64, ts: Timestamp) {
        if let Ok(mut p) = self.2.lock() {
            *p = (index, ts);
        }
    }

    /// (last applied log index, last applied commit timestamp): every write
    /// with a commit timestamp at or below the second is in the store.
    pub fn applied_point(&self) -> (u64, Timestamp) {
        self.2.lock().map(|p| *p).unwrap_or((0, 0))
    }

    /// The HLC ceiling (ms) committed in this group and applied here.
    pub fn ceiling_ms(&self) -> u64 {
        self.1.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether this replica's group owns `key` (true before ownership is set).
    pub fn owns(&self, key: &[u8]) -> bool {
        match self.0.read() {
            Ok(o) => o.as_ref().is_none_or(|o| {
                o.owns(key) || key.starts_with(elastickv_types::keys::CATALOG_PREFIX)
            }),
            Err(_) => true,
        }
    }

    /// Whether this replica's group owns every key of `[start, end)` (true
    /// before ownership is set).
    pub fn covers(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        match self.0.read() {
            Ok(o) => o.as_ref().is_none_or(|o| o.covers(start, end)),
            Err(_) => true,
        }
    }

    /// The ownership version applied here (0: none yet).
    pub fn version(&self) -> u64 {
        self.0
            .read()
            .ok()
            .and_then(|o| o.as_ref().map(|o| o.version))
            .unwrap_or(0)
    }
}

/// What the state machine has applied, stored with the data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Highest commit timestamp applied in this group.
    pub last_ts: Timestamp,
    /// Highest HLC ceiling committed in this group (ms).
    pub ceiling_ms: u64,
    /// Ranges the group owns; `None` until the catalog first sets them.
    pub ownership: Option<Ownership>,
}

fn io_err(e: impl std::error::Error + 'static) -> AnyError {
    AnyError::new(&e)
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(io_err(e)).into()
}

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(io_err(e)).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, io_err(e)).into()
}

pub(crate) fn read_applied(
    get: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, elastickv_storage::StorageError>,
) -> Result<AppliedState, StorageError> {
    match get(META_APPLIED).map_err(sm_read_err)? {
        Some(bytes) => bincode::deserialize(&bytes).map_err(sm_read_err),
        None => Ok(AppliedState::default()),
    }
}

/// State machine of one group.
pub struct StateMachine {
    /// The ownership as applied, shared with readers on this node.
    shared_ownership: SharedApplied,
    store: GroupStore,
    hlc: Arc<Hlc>,
    snapshot_dir: PathBuf,
    state: AppliedState,
    /// File of the snapshot being received, renamed to the current snapshot
    /// once installed.
    receiving: Option<PathBuf>,
    /// Results of applied requests, for retries.
    dedup: Dedup,
    /// Newest commit timestamps of recently written keys (conflict checks).
    recent: RecentWrites,
    /// The durable point of this group's log on this node: nothing is
    /// applied before it is on disk here (see `durability.rs`). `None` only
    /// where no log store feeds this state machine (openraft's storage suite).
    durability: Option<Arc<Durability>>,
}

impl StateMachine {
    /// Apply entries only once this node's log holds them on disk.
    pub fn with_durability(mut self, durability: Arc<Durability>) -> Self {
        self.durability = Some(durability);
        self
    }

    pub fn open(
        store: GroupStore,
        hlc: Arc<Hlc>,
        snapshot_dir: PathBuf,
    ) -> Result<Self, StorageError> {
        Self::open_shared(store, hlc, snapshot_dir, SharedApplied::default())
    }

    /// Open, publishing the applied ownership through `shared`.
    pub fn open_shared(
        store: GroupStore,
        hlc: Arc<Hlc>,
        snapshot_dir: PathBuf,
        shared: SharedApplied,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&snapshot_dir).map_err(snap_err)?;
        // Leftovers of builds or transfers cut short by a crash.
        for entry in std::fs::read_dir(&snapshot_dir)
            .map_err(snap_err)?
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let state = read_applied(|k| store.get_meta(k))?;
        let store_for_dedup = store.clone();
        hlc.observe(state.last_ts);
        hlc.observe_ceiling(state.ceiling_ms);
        shared.set(state.ownership.clone());
        shared.set_ceiling_ms(state.ceiling_ms);
        shared.set_applied_point(state.last_applied.map_or(0, |l| l.index), state.last_ts);
        Ok(StateMachine {
            recent: RecentWrites::new(state.last_ts),
            shared_ownership: shared,
            store,
            hlc,
            snapshot_dir,
            state,
            receiving: None,
            dedup: Dedup::open(store_for_dedup).map_err(sm_read_err)?,
            durability: None,
        })
    }

    fn apply_request(
        &mut self,
        batch: &mut GroupBatch,
        seen: &mut HashMap<elastickv_types::RequestId, OpResult>,
        overlay: &mut Overlay,
        entry_ts: Timestamp,
        now_ms: u64,
        req: &Request,
    ) -> Result<OpResult, StorageError> {
        if let Some(prev) = seen.get(&req.id) {
            return Ok(prev.clone());
        }
        // First attempts cannot be duplicates: only retries look up.
        if req.attempt > 0 {
            if let Some(prev) = self.dedup.lookup(req.id).map_err(sm_read_err)? {
                return Ok(prev);
            }
        }
        if Dedup::expired(req.id, now_ms) {
            return Ok(OpResult::Rejected {
                reason: "request expired: older than the de-duplication window".into(),
            });
        }
        if let Some(version) = self.stale(&req.op) {
            // Refused before any effect; not recorded for de-duplication, so
            // a retry after the route refresh is judged afresh.
            return Ok(OpResult::StaleRoute { version });
        }
        let store = self.store.clone();
        let mut txn = TxnCtx {
            store: &store,
            recent: &self.recent,
            batch: &mut *batch,
            overlay,
        };
        let result = match &*req.op {
            Op::Write { mutations } => {
                // Above every applied version: each write is its key's newest.
                let ts = req.ts.max(self.state.last_ts + 1);
                for m in mutations {
                    match m {
                        Mutation::Put { key, value } => txn.batch.put_newest(key, ts, value),
                        Mutation::Delete { key } => txn.batch.delete_newest(key, ts),
                    }
                    txn.note_write(m.key(), ts);
                }
                self.state.last_ts = ts;
                OpResult::Written { commit_ts: ts }
            }
            Op::HlcCeiling { ms } => {
                self.state.ceiling_ms = self.state.ceiling_ms.max(*ms);
                OpResult::Ceiling
            }
            Op::SetOwnership(o) => {
                if self
                    .state
                    .ownership
                    .as_ref()
                    .is_none_or(|cur| cur.version < o.version)
                {
                    self.state.ownership = Some(o.clone());
                }
                OpResult::OwnershipSet
            }
            Op::OnePhase {
                start_ts,
                mutations,
            } => {
                let ts = req.ts.max(self.state.last_ts + 1).max(start_ts + 1);
                let r = txn.one_phase(*start_ts, mutations, ts, entry_ts)?;
                if let OpResult::Written { commit_ts } = r {
                    self.state.last_ts = self.state.last_ts.max(commit_ts);
                }
                r
            }
            Op::Prewrite {
                start_ts,
                primary,
                mutations,
                ttl_ms,
            } => txn.prewrite(*start_ts, primary, mutations, *ttl_ms, req.ts, entry_ts)?,
            Op::Commit {
                start_ts,
                commit_ts,
                keys,
            } => {
                let r = txn.commit(*start_ts, *commit_ts, keys)?;
                if let OpResult::Written { commit_ts } = r {
                    self.state.last_ts = self.state.last_ts.max(commit_ts);
                }
                r
            }
            Op::Rollback {
                start_ts,
                primary,
                keys,
            } => txn.rollback(*start_ts, primary.as_deref(), keys)?,
            Op::CheckTxnStatus { primary, start_ts } => {
                txn.check_status(primary, *start_ts, entry_ts)?
            }
        };
        self.dedup.record(req.id, &result);
        seen.insert(req.id, result.clone());
        Ok(result)
    }

    /// If `op` writes a key this group does not own, the ownership version.
    /// Catalog keys always live in the default group, whatever the ranges.
    fn stale(&self, op: &Op) -> Option<u64> {
        let own = self.state.ownership.as_ref()?;
        let foreign =
            |key: &[u8]| !own.owns(key) && !key.starts_with(elastickv_types::keys::CATALOG_PREFIX);
        let stale = match op {
            Op::Write { mutations } => mutations.iter().any(|m| foreign(m.key())),
            Op::OnePhase { mutations, .. } | Op::Prewrite { mutations, .. } => {
                mutations.iter().any(|m| foreign(&m.key))
            }
            _ => false,
        };
        stale.then_some(own.version)
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join(SNAPSHOT_FILE)
    }
}

/// A snapshot file: `[u32 BE meta length][bincode SnapshotMeta][group export]`.
fn write_snapshot_file(
    dir: &Path,
    meta: &SnapshotMeta,
    view: &GroupView,
) -> Result<PathBuf, StorageError> {
    let tmp = dir.join(format!("build-{}.tmp", rand::random::<u64>()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(snap_err)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let meta_bytes = bincode::serialize(meta).map_err(snap_err)?;
        w.write_all(&(meta_bytes.len() as u32).to_be_bytes())
            .map_err(snap_err)?;
        w.write_all(&meta_bytes).map_err(snap_err)?;
        view.export(&mut w).map_err(snap_err)?;
        let file = w.into_inner().map_err(|e| snap_err(e.into_error()))?;
        file.sync_all().map_err(snap_err)?;
        let dest = dir.join(SNAPSHOT_FILE);
        std::fs::rename(&tmp, &dest).map_err(snap_err)?;
        sync_dir(dir)?;
        Ok(dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(snap_err)
}

fn read_snapshot_meta(reader: &mut impl Read) -> Result<SnapshotMeta, StorageError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(snap_err)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 * 1024 {
        return Err(snap_err(std::io::Error::other(
            "snapshot meta header too large",
        )));
    }
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf).map_err(snap_err)?;
    bincode::deserialize(&buf).map_err(snap_err)
}

/// Builds a snapshot from a point-in-time view taken when openraft asked.
pub struct SnapshotBuilder {
    view: Option<GroupView>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let view = self
            .view
            .take()
            .ok_or_else(|| snap_err(std::io::Error::other("snapshot builder used twice")))?;
        let dir = self.dir.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || {
            let state = read_applied(|k| view.get_meta(k))?;
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id: format!(
                    "{}-{}-{}",
                    state.last_applied.map(|l| l.leader_id.term).unwrap_or(0),
                    state.last_applied.map(|l| l.index).unwrap_or(0),
                    rand::random::<u32>()
                ),
            };
            let path = write_snapshot_file(&dir, &meta, &view)?;
            Ok::<_, StorageError>((meta, path))
        })
        .await
        .map_err(snap_err)??;
        let file = tokio::fs::File::open(&path).await.map_err(snap_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let (Some(durability), Some(last)) = (&self.durability, entries.last()) {
            durability.wait_for(last.log_id.index).await?;
        }
        let mut batch = self.store.batch();
        let mut seen = HashMap::new();
        let mut overlay = Overlay::default();
        let mut replies = Vec::new();
        // The de-duplication clock: the applied commit timestamps never go
        // back, even if a new leader's entries carry older proposals.
        let mut dedup_now_ms = None;
        for entry in entries {
            let mut reply = ProposalResult::default();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Proposal { requests }) => {
                    let entry_ts = requests.iter().map(|r| r.ts).max().unwrap_or(0);
                    let now_ms = hlc::physical_ms(entry_ts.max(self.state.last_ts));
                    for req in requests.iter() {
                        reply.results.push(self.apply_request(
                            &mut batch,
                            &mut seen,
                            &mut overlay,
                            entry_ts,
                            now_ms,
                            req,
                        )?);
                    }
                    dedup_now_ms = dedup_now_ms.max(Some(now_ms));
                }
                EntryPayload::Membership(m) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            self.state.last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        if let (Some(now_ms), Some(last)) = (dedup_now_ms, self.state.last_applied) {
            self.dedup
                .flush(&mut batch, last.index, now_ms)
                .map_err(sm_write_err)?;
        }
        let state = bincode::serialize(&self.state).map_err(sm_write_err)?;
        batch.put_meta(META_APPLIED, &state);
        batch.commit().map_err(sm_write_err)?;
        self.recent
            .record(overlay.into_written(), self.state.last_ts);
        self.shared_ownership.set(self.state.ownership.clone());
        self.shared_ownership.set_ceiling_ms(self.state.ceiling_ms);
        self.shared_ownership.set_applied_point(
            self.state.last_applied.map_or(0, |l| l.index),
            self.state.last_ts,
        );
        // Later timestamps on this node exceed everything applied here, so a
        // read served after this apply sees these writes.
        self.hlc.observe(self.state.last_ts);
        self.hlc.observe_ceiling(self.state.ceiling_ms);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            view: Some(self.store.read_view()),
            dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self
            .snapshot_dir
            .join(format!("recv-{}.tmp", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(snap_err)?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = tokio::fs::remove_file(old).await;
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let mut file = snapshot.into_std().await;
        let received = self
            .receiving
            .take()
            .ok_or_else(|| snap_err(std::io::Error::other("no snapshot is being received")))?;
        let store = self.store.clone();
        let dir = self.snapshot_dir.clone();
        let expected = meta.clone();
        let state = tokio::task::spawn_blocking(move || {
            use std::io::Seek;
            file.flush().map_err(snap_err)?;
            file.seek(std::io::SeekFrom::Start(0)).map_err(snap_err)?;
            let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
            let header = read_snapshot_meta(&mut reader)?;
            if header.last_log_id != expected.last_log_id {
                return Err(snap_err(std::io::Error::other(format!(
                    "snapshot header {:?} does not match announced {:?}",
                    header.last_log_id, expected.last_log_id
                ))));
            }
            store.install_snapshot(&mut reader).map_err(snap_err)?;
            // The received file becomes our current snapshot. openraft may
            // hand us another file than the one we opened for receiving
            // (its test suite does); then its bytes are copied.
            use std::os::unix::fs::MetadataExt;
            let given = file.metadata().map_err(snap_err)?;
            let ours = std::fs::metadata(&received).map_err(snap_err)?;
            let dest = dir.join(SNAPSHOT_FILE);
            if (given.dev(), given.ino()) == (ours.dev(), ours.ino()) {
                file.sync_all().map_err(snap_err)?;
                std::fs::rename(&received, &dest).map_err(snap_err)?;
            } else {
                file.seek(std::io::SeekFrom::Start(0)).map_err(snap_err)?;
                let mut out = std::fs::File::create(&received).map_err(snap_err)?;
                std::io::copy(&mut file, &mut out).map_err(snap_err)?;
                out.sync_all().map_err(snap_err)?;
                std::fs::rename(&received, &dest).map_err(snap_err)?;
            }
            sync_dir(&dir)?;
            read_applied(|k| store.get_meta(k))
        })
        .await
        .map_err(snap_err)??;
        self.state = state;
        self.recent.reset(self.state.last_ts);
        self.dedup.reset().map_err(sm_read_err)?;
        self.shared_ownership.set(self.state.ownership.clone());
        self.shared_ownership.set_ceiling_ms(self.state.ceiling_ms);
        self.shared_ownership.set_applied_point(
            self.state.last_applied.map_or(0, |l| l.index),
            self.state.last_ts,
        );
        self.hlc.observe(self.state.last_ts);
        self.hlc.observe_ceiling(self.state.ceiling_ms);
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let path = self.snapshot_path();
        let mut std_file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_err(e)),
        };
        let meta = read_snapshot_meta(&mut std_file)?;
        let file = tokio::fs::File::open(&path).await.map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Ownership;
    use elastickv_storage::{Engine, EngineOptions};
    use elastickv_types::{hlc::compose, GroupId, RequestId};
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    const MS: u64 = 1_700_000_000_000;

    fn machine() -> (tempfile::TempDir, StateMachine, GroupStore) {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = Engine::open(&dir.path().join("s"), EngineOptions::default()).expect("engine");
        let store = engine.group(GroupId(1)).expect("group");
        let sm = StateMachine::open(
            store.clone(),
            Arc::new(Hlc::default()),
            dir.path().join("snap"),
        )
        .expect("sm");
        (dir, sm, store)
    }

    fn entry(index: u64, requests: Vec<Request>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal {
                requests: requests.into(),
            }),
        }
    }

    fn put(id: u128, key: &str, ts_ms: u64) -> Request {
        Request {
            id: RequestId((u128::from(MS) << 80) | id),
            ts: compose(MS + ts_ms, 0),
            op: Arc::new(Op::Write {
                mutations: vec![Mutation::Put {
                    key: key.as_bytes().to_vec(),
                    value: b"v".to_vec(),
                }],
            }),
            attempt: 0,
        }
    }

    #[tokio::test]
    async fn a_retried_request_is_applied_once() {
        let (_d, mut sm, store) = machine();
        let first = sm
            .apply(vec![entry(1, vec![put(7, "k", 1)])])
            .await
            .expect("apply");
        // The same request id again, later in the log (a retry after a
        // leader change), with a later proposed timestamp.
        let mut retry = put(7, "k", 5);
        retry.ts = compose(MS + 5, 0);
        retry.attempt = 1;
        let second = sm.apply(vec![entry(2, vec![retry])]).await.expect("apply");
        assert_eq!(
            first[0].results, second[0].results,
            "the recorded result is returned"
        );
        let versions_after = store
            .get_version_at(b"k", compose(MS + 4, 0))
            .expect("read");
        assert!(versions_after.is_some());
        // Only one version exists: nothing at the retry's timestamp.
        let latest = store.latest_version(b"k").expect("read").expect("exists");
        assert_eq!(latest.commit_ts, compose(MS + 1, 0));
    }

    /// Nothing is applied before this node's log holds it on disk: a
    /// leader counts its own append before its fsync (`durability.rs`).
    #[tokio::test]
    async fn entries_wait_for_the_local_durable_point() {
        let (_d, sm, store) = machine();
        let durability = Arc::new(Durability::new(None));
        let mut sm = sm.with_durability(durability.clone());
        durability.mark(LogId::new(CommittedLeaderId::new(1, 1), 1));
        let applying = tokio::spawn(async move {
            let out = sm.apply(vec![entry(2, vec![put(1, "k", 1)])]).await;
            (sm, out)
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            !applying.is_finished(),
            "applied before the entry was durable"
        );
        assert!(store.latest_version(b"k").expect("read").is_none());
        durability.mark(LogId::new(CommittedLeaderId::new(1, 1), 2));
        let (mut sm, out) = applying.await.expect("task");
        assert!(out.is_ok());
        assert!(store.latest_version(b"k").expect("read").is_some());
        // A failed fsync fails the apply instead of hanging it.
        durability.fail();
        assert!(sm
            .apply(vec![entry(3, vec![put(2, "j", 2)])])
            .await
            .is_err());
        assert!(store.latest_version(b"j").expect("read").is_none());
    }

    #[tokio::test]
    async fn commit_timestamps_follow_log_order_whatever_the_clocks() {
        let (_d, mut sm, _store) = machine();
        // The second request was stamped by a lagging clock.
        let out = sm
            .apply(vec![entry(1, vec![put(1, "a", 10), put(2, "b", 3)])])
            .await
            .expect("apply");
        let ts: Vec<_> = out[0]
            .results
            .iter()
            .map(|r| match r {
                OpResult::Written { commit_ts } => *commit_ts,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(ts[1] > ts[0], "{ts:?}");
    }

    #[tokio::test]
    async fn writes_outside_owned_ranges_are_refused_as_stale() {
        let (_d, mut sm, store) = machine();
        let own = Request {
            id: RequestId((u128::from(MS) << 80) | 99),
            ts: compose(MS, 0),
            op: Arc::new(Op::SetOwnership(Ownership {
                version: 3,
                ranges: vec![(b"a".to_vec(), Some(b"m".to_vec()))],
            })),
            attempt: 0,
        };
        sm.apply(vec![entry(1, vec![own])]).await.expect("apply");
        let out = sm
            .apply(vec![entry(2, vec![put(1, "c", 1), put(2, "z", 1)])])
            .await
            .expect("apply");
        assert!(matches!(out[0].results[0], OpResult::Written { .. }));
        assert_eq!(out[0].results[1], OpResult::StaleRoute { version: 3 });
        assert!(store.latest_version(b"z").expect("read").is_none());
        // An older ownership version does not replace the newer one.
        let old = Request {
            id: RequestId((u128::from(MS) << 80) | 100),
            ts: compose(MS, 0),
            op: Arc::new(Op::SetOwnership(Ownership {
                version: 2,
                ranges: vec![(Vec::new(), None)],
            })),
            attempt: 0,
        };
        sm.apply(vec![entry(3, vec![old])]).await.expect("apply");
        let out = sm
            .apply(vec![entry(4, vec![put(3, "z", 2)])])
            .await
            .expect("apply");
        assert_eq!(out[0].results[0], OpResult::StaleRoute { version: 3 });
    }
}
