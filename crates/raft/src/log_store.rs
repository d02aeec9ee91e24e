//! openraft log storage for one group on the node's engine.
//!
//! Entries are bincode-encoded and written without syncing; durability comes
//! from [`GroupCommit`], which marks them durable and completes openraft's
//! callback after the shared fsync. A leader's own appends are the exception:
//! their callback completes at once and only the durable mark waits for the
//! fsync (why that is safe: `durability.rs`). Votes are synced before
//! `save_vote` returns, as Raft requires.

use crate::durability::Durability;
use crate::group_commit::GroupCommit;
use crate::types::{Entry, LogId, StorageError, TypeConfig};
use elastickv_storage::RaftLogStore;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftLogId, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_PURGED: &str = "purged";

/// Recently appended entries kept decoded in memory. openraft reads each
/// entry back soon after appending it — once per follower to replicate it
/// and once more to apply it — and serving those reads from here saves an
/// engine lookup and a decode each time.
const CACHED_ENTRIES: usize = 4096;

/// A contiguous run of the newest entries.
#[derive(Default)]
struct EntryCache {
    entries: std::collections::VecDeque<Entry>,
}

impl EntryCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.get_log_id().index)
    }

    fn push(&mut self, entry: Entry) {
        let index = entry.get_log_id().index;
        let contiguous = self
            .entries
            .back()
            .is_none_or(|last| last.get_log_id().index + 1 == index);
        if !contiguous {
            self.entries.clear();
        }
        self.entries.push_back(entry);
        while self.entries.len() > CACHED_ENTRIES {
            self.entries.pop_front();
        }
    }

    fn truncate_from(&mut self, index: u64) {
        while self
            .entries
            .back()
            .is_some_and(|e| e.get_log_id().index >= index)
        {
            self.entries.pop_back();
        }
    }

    fn purge_upto(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.get_log_id().index <= index)
        {
            self.entries.pop_front();
        }
    }

    /// Entries `start..end` if the cache holds all of them.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let last = first + self.entries.len() as u64; // exclusive
        if start < first || end > last || start > end {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(self.entries.range(from..to).cloned().collect())
    }
}

/// Log store of one group. Cloned as openraft's log reader.
#[derive(Clone)]
pub struct LogStore {
    log: RaftLogStore,
    group_commit: GroupCommit,
    cache: Arc<std::sync::Mutex<EntryCache>>,
    /// Index of the last entry handed to `append`; read by the proposer's
    /// read-index path (see `proposer.rs`).
    last_appended: Arc<AtomicU64>,
    /// This node's id, to recognise its own appends as leader.
    self_id: u64,
    /// The last vote saved or read.
    vote: Arc<std::sync::Mutex<Option<Vote<u64>>>>,
    durability: Arc<Durability>,
}

impl LogStore {
    /// Open the log of one group for node `self_id`. Everything already in
    /// the log must be on disk (the node syncs its engine before it opens
    /// any group).
    pub fn new(
        log: RaftLogStore,
        group_commit: GroupCommit,
        self_id: u64,
    ) -> Result<Self, StorageError> {
        // An empty log after a purge continues after the purged entry.
        let last = last_entry_id(&log)?.or(read_meta(&log, META_PURGED)?);
        let store = LogStore {
            log,
            group_commit,
            cache: Arc::default(),
            last_appended: Arc::new(AtomicU64::new(last.map_or(0, |l| l.index))),
            self_id,
            vote: Arc::default(),
            durability: Arc::new(Durability::new(last)),
        };
        let vote = store.stored_vote()?;
        store.set_vote(vote);
        Ok(store)
    }

    /// Shared counter of the last appended index.
    pub fn last_appended(&self) -> Arc<AtomicU64> {
        self.last_appended.clone()
    }

    /// The durable point of this log.
    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// The saved vote, except that this node's own leadership is reported
    /// as not granted: a leader's entries reach its followers before its
    /// own fsync (`durability.rs`), so after an OS crash it may lack entries
    /// it replicated, and leading on in the same term (openraft 0.9 resumes
    /// a leader whose committed vote it reads back) would create different
    /// entries under the same log ids. The node campaigns in a new term
    /// instead, like any other.
    fn stored_vote(&self) -> Result<Option<Vote<u64>>, StorageError> {
        let vote: Option<Vote<u64>> = self.get_meta(META_VOTE)?;
        Ok(vote.map(|v| {
            let leader = v.leader_id();
            if v.is_committed() && leader.node_id == self.self_id {
                Vote::new(leader.term, leader.node_id)
            } else {
                v
            }
        }))
    }

    fn set_vote(&self, vote: Option<Vote<u64>>) {
        if let Ok(mut v) = self.vote.lock() {
            *v = vote;
        }
    }

    /// Whether `entries` are this node's own appends as the leader of the
    /// current term (only the leader of a term creates entries of that
    /// term's leader id, and a node that leads again does so in a new term),
    /// none of them a membership change: openraft moves on to the next step
    /// of a change once the previous one is committed, so those must not be
    /// counted before they are on the leader's disk.
    fn appended_as_leader(&self, entries: &[Entry]) -> bool {
        let Ok(vote) = self.vote.lock() else {
            return false;
        };
        let Some(vote) = vote.as_ref() else {
            return false;
        };
        let leader = vote.leader_id();
        vote.is_committed()
            && leader.node_id == self.self_id
            && entries.iter().all(|e| {
                e.get_log_id().leader_id == *leader
                    && !matches!(e.payload, EntryPayload::Membership(_))
            })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        read_meta(&self.log, name)
    }

    fn put_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value).map_err(write_err)?;
        self.log.put_meta(name, &bytes).map_err(write_err)
    }
}

fn read_meta<T: serde::de::DeserializeOwned>(
    log: &RaftLogStore,
    name: &str,
) -> Result<Option<T>, StorageError> {
    match log.get_meta(name).map_err(read_err)? {
        Some(bytes) => Ok(Some(bincode::deserialize(&bytes).map_err(read_err)?)),
        None => Ok(None),
    }
}

/// The id of the last entry in the log, if any.
fn last_entry_id(log: &RaftLogStore) -> Result<Option<LogId>, StorageError> {
    match log.last().map_err(read_err)? {
        Some((_, bytes)) => Ok(Some(*decode_entry(&bytes)?.get_log_id())),
        None => Ok(None),
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
    bincode::deserialize(bytes).map_err(read_err)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(start, end)) {
            return Ok(hit);
        }
        self.log
            .range(start, end)
            .map_err(read_err)?
            .iter()
            .map(|(_, bytes)| decode_entry(bytes))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(META_PURGED)?;
        let last_log_id = last_entry_id(&self.log)?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.put_meta(META_VOTE, vote)?;
        self.group_commit
            .sync()
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        self.set_vote(Some(*vote));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.stored_vote()
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only makes a restarted node re-learn the
        // commit index from the leader. Capped at the durable point, so a
        // restart never finds a commit index beyond its log.
        let committed = match (committed, self.durability.durable()) {
            (Some(c), (index, durable)) if Some(c.index) > index => match durable {
                Some(d) => Some(d),
                None => return Ok(()),
            },
            (other, _) => other,
        };
        self.put_meta(META_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut decoded = Vec::new();
        for entry in entries {
            let bytes = bincode::serialize(&entry).map_err(write_err)?;
            encoded.push((entry.get_log_id().index, bytes));
            decoded.push(entry);
        }
        let Some(last) = decoded.last().map(|e| *e.get_log_id()) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let as_leader = self.appended_as_leader(&decoded);
        self.log.append(&encoded).map_err(write_err)?;
        if let Ok(mut cache) = self.cache.lock() {
            for e in decoded {
                cache.push(e);
            }
        }
        self.last_appended.store(last.index, Ordering::Release);
        if as_leader {
            callback.log_io_completed(Ok(()));
            self.group_commit
                .flushed(self.durability.clone(), last, None);
        } else {
            self.group_commit
                .flushed(self.durability.clone(), last, Some(callback));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Let every fsync of entries being removed mark them first, so the
        // durable point can be moved below them for good.
        self.group_commit.sync().await.map_err(write_err)?;
        self.durability.truncated(log_id.index);
        if let Ok(mut cache) = self.cache.lock() {
            cache.truncate_from(log_id.index);
        }
        self.log.truncate_from(log_id.index).map_err(write_err)?;
        self.last_appended
            .store(log_id.index.saturating_sub(1), Ordering::Release);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra
        // entries below it, which are harmless; the reverse would not be.
        self.put_meta(META_PURGED, &log_id)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.purge_upto(log_id.index);
        }
        self.log.purge_upto(log_id.index).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::StateMachine;
    use crate::types::NodeInfo;
    use elastickv_storage::{Engine, EngineOptions};
    use elastickv_types::{GroupId, Hlc};
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{StoreBuilder, Suite};

    fn engine() -> Result<(tempfile::TempDir, Engine), StorageError> {
        let dir = tempfile::tempdir().map_err(write_err)?;
        let engine =
            Engine::open(&dir.path().join("store"), EngineOptions::default()).map_err(write_err)?;
        Ok((dir, engine))
    }

    /// The log of group 1 on `engine`, for node `self_id`.
    fn log_store(engine: &Engine, self_id: u64) -> Result<LogStore, StorageError> {
        let group_commit = GroupCommit::start(engine.clone()).map_err(write_err)?;
        LogStore::new(
            engine.raft_log(GroupId(1)).map_err(write_err)?,
            group_commit,
            self_id,
        )
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let (dir, engine) = engine()?;
            let log = log_store(&engine, 1)?;
            let sm = StateMachine::open(
                engine.group(GroupId(1)).map_err(write_err)?,
                Arc::new(Hlc::default()),
                dir.path().join("snapshots"),
            )?;
            Ok((dir, log, sm))
        }
    }

    fn entry(term: u64, leader: u64, index: u64, membership: bool) -> Entry {
        use openraft::{CommittedLeaderId, Membership};
        let payload = if membership {
            let nodes = std::collections::BTreeMap::from([(leader, NodeInfo::default())]);
            EntryPayload::Membership(Membership::new(vec![[leader].into()], nodes))
        } else {
            EntryPayload::Blank
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, leader), index),
            payload,
        }
    }

    /// Only this node's own appends as the established leader of the
    /// current term skip the fsync wait, and never membership changes.
    #[tokio::test]
    async fn only_own_leader_appends_complete_before_the_fsync() -> Result<(), StorageError> {
        let (_dir, engine) = engine()?;
        let mut store = log_store(&engine, 7)?;
        let own = [entry(3, 7, 10, false), entry(3, 7, 11, false)];
        // No vote yet, then a vote not yet granted by a quorum.
        assert!(!store.appended_as_leader(&own));
        store.save_vote(&Vote::new(3, 7)).await?;
        assert!(!store.appended_as_leader(&own));
        store.save_vote(&Vote::new_committed(3, 7)).await?;
        assert!(store.appended_as_leader(&own));
        // Another leader's entries, an older term's, a membership change.
        assert!(!store.appended_as_leader(&[entry(3, 8, 10, false)]));
        assert!(!store.appended_as_leader(&[entry(2, 7, 10, false)]));
        assert!(!store.appended_as_leader(&[entry(3, 7, 10, false), entry(3, 7, 11, true)]));
        // Following another leader in a later term.
        store.save_vote(&Vote::new_committed(4, 8)).await?;
        assert!(!store.appended_as_leader(&own));
        assert!(!store.appended_as_leader(&[entry(4, 8, 12, false)]));
        Ok(())
    }

    /// A node that led before a restart does not resume leading in the
    /// same term: it may have lost entries its followers hold.
    #[tokio::test]
    async fn own_leadership_is_not_resumed_after_a_restart() -> Result<(), StorageError> {
        let (_dir, engine) = engine()?;
        log_store(&engine, 7)?
            .save_vote(&Vote::new_committed(3, 7))
            .await?;
        let mut reopened = log_store(&engine, 7)?;
        assert_eq!(reopened.read_vote().await?, Some(Vote::new(3, 7)));
        assert!(!reopened.appended_as_leader(&[entry(3, 7, 10, false)]));
        // Another node's granted leadership is kept as it is.
        assert_eq!(
            log_store(&engine, 8)?.read_vote().await?,
            Some(Vote::new_committed(3, 7))
        );
        Ok(())
    }

    /// Appends become durable in order, and a truncation waits for pending
    /// fsyncs before it moves the durable point below the removed entries.
    #[tokio::test]
    async fn durable_point_follows_appends_and_truncation() -> Result<(), StorageError> {
        let (_dir, engine) = engine()?;
        let mut store = log_store(&engine, 7)?;
        let durability = store.durability();
        assert_eq!(durability.durable(), (None, None));
        store.save_vote(&Vote::new_committed(3, 7)).await?;
        store
            .blocking_append((0..3).map(|i| entry(3, 7, i, false)))
            .await?;
        durability.wait_for(2).await?;
        assert_eq!(durability.durable().1, Some(entry(3, 7, 2, false).log_id));
        store.truncate(entry(3, 7, 1, false).log_id).await?;
        assert_eq!(durability.durable(), (Some(0), None));
        Ok(())
    }

    /// openraft's own storage conformance suite against our log store and
    /// state machine on the real engine.
    #[test]
    fn openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder)
    }
}
