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

use crate::command::{Mutation, Op, OpResult, Proposal, ProposalResult, Request};
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
/// Prefix of de-duplication records: `d/` + request id (16 bytes, big endian,
/// creation time in the upper bits, so records sort by age).
const META_DEDUP_PREFIX: &[u8] = b"d/";
/// A request older than this (by its id's time, against the applying
/// entry's timestamp) is refused rather than risk applying it twice after
/// its de-duplication record was pruned. Forwarders retry for seconds.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// De-duplication records pruned per applied entry at most.
const DEDUP_PRUNE_BATCH: usize = 64;

const SNAPSHOT_FILE: &str = "current.snap";

/// What the state machine has applied, stored with the data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Highest commit timestamp applied in this group.
    pub last_ts: Timestamp,
    /// Highest HLC ceiling committed in this group (ms).
    pub ceiling_ms: u64,
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

fn dedup_key(id: elastickv_types::RequestId) -> Vec<u8> {
    let mut k = Vec::with_capacity(META_DEDUP_PREFIX.len() + 16);
    k.extend_from_slice(META_DEDUP_PREFIX);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// State machine of one group.
pub struct StateMachine {
    store: GroupStore,
    hlc: Arc<Hlc>,
    snapshot_dir: PathBuf,
    state: AppliedState,
    /// File of the snapshot being received, renamed to the current snapshot
    /// once installed.
    receiving: Option<PathBuf>,
    /// De-duplication records below this key were pruned by this process.
    /// Scanning from here, not from the prefix start, skips the tombstones
    /// earlier prunes left in the LSM tree. Pruning progress may differ
    /// between replicas: harmless, because a request past the window is
    /// refused whether or not its record still exists.
    prune_from: Vec<u8>,
}

impl StateMachine {
    pub fn open(
        store: GroupStore,
        hlc: Arc<Hlc>,
        snapshot_dir: PathBuf,
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
        hlc.observe(state.last_ts);
        hlc.observe_ceiling(state.ceiling_ms);
        Ok(StateMachine {
            store,
            hlc,
            snapshot_dir,
            state,
            receiving: None,
            prune_from: META_DEDUP_PREFIX.to_vec(),
        })
    }

    fn apply_request(
        &mut self,
        batch: &mut GroupBatch,
        seen: &mut HashMap<elastickv_types::RequestId, OpResult>,
        overlay: &mut Overlay,
        entry_ts: Timestamp,
        req: &Request,
    ) -> Result<OpResult, StorageError> {
        if let Some(prev) = seen.get(&req.id) {
            return Ok(prev.clone());
        }
        let key = dedup_key(req.id);
        if let Some(bytes) = self.store.get_meta(&key).map_err(sm_read_err)? {
            return bincode::deserialize(&bytes).map_err(sm_read_err);
        }
        if req.id.time_ms().saturating_add(DEDUP_WINDOW_MS) < hlc::physical_ms(entry_ts) {
            return Ok(OpResult::Rejected {
                reason: "request expired: older than the de-duplication window".into(),
            });
        }
        let store = self.store.clone();
        let mut txn = TxnCtx {
            store: &store,
            batch: &mut *batch,
            overlay,
        };
        let result = match &req.op {
            Op::Write { mutations } => {
                let ts = req.ts.max(self.state.last_ts + 1);
                for m in mutations {
                    match m {
                        Mutation::Put { key, value } => txn.batch.put(key, ts, value),
                        Mutation::Delete { key } => txn.batch.delete(key, ts),
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
            Op::Rollback { start_ts, keys } => txn.rollback(*start_ts, keys)?,
            Op::CheckTxnStatus { primary, start_ts } => {
                txn.check_status(primary, *start_ts, entry_ts)?
            }
        };
        let encoded = bincode::serialize(&result).map_err(sm_write_err)?;
        batch.put_meta(&key, &encoded);
        seen.insert(req.id, result.clone());
        Ok(result)
    }

    /// Drop de-duplication records older than the window, a bounded number
    /// per apply.
    fn prune_dedup(
        &mut self,
        batch: &mut GroupBatch,
        entry_ts: Timestamp,
    ) -> Result<(), StorageError> {
        let cutoff_ms = hlc::physical_ms(entry_ts).saturating_sub(DEDUP_WINDOW_MS);
        let end = dedup_key(elastickv_types::RequestId(u128::from(cutoff_ms) << 80));
        if self.prune_from >= end {
            return Ok(());
        }
        let old = self
            .store
            .scan_meta_range(&self.prune_from, &end, DEDUP_PRUNE_BATCH)
            .map_err(sm_read_err)?;
        if let Some((last, _)) = old.last() {
            let mut next = last.clone();
            next.push(0);
            self.prune_from = next;
        }
        for (key, _) in old {
            batch.delete_meta(&key);
        }
        Ok(())
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
        let mut batch = self.store.batch();
        let mut seen = HashMap::new();
        let mut overlay = Overlay::default();
        let mut replies = Vec::new();
        let mut prune_at = None;
        for entry in entries {
            let mut reply = ProposalResult::default();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Proposal { requests }) => {
                    let entry_ts = requests.iter().map(|r| r.ts).max().unwrap_or(0);
                    for req in requests {
                        reply.results.push(self.apply_request(
                            &mut batch,
                            &mut seen,
                            &mut overlay,
                            entry_ts,
                            req,
                        )?);
                    }
                    prune_at = prune_at.max(Some(entry_ts));
                }
                EntryPayload::Membership(m) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            self.state.last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        if let Some(ts) = prune_at {
            self.prune_dedup(&mut batch, ts)?;
        }
        let state = bincode::serialize(&self.state).map_err(sm_write_err)?;
        batch.put_meta(META_APPLIED, &state);
        batch.commit().map_err(sm_write_err)?;
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
