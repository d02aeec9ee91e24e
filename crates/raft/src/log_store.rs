//! openraft log storage for one group on the node's engine.
//!
//! Entries are bincode-encoded and written without syncing; durability comes
//! from [`GroupCommit`], which completes openraft's callback after the shared
//! fsync. Votes are synced before `save_vote` returns, as Raft requires.

use crate::group_commit::GroupCommit;
use crate::types::{Entry, LogId, StorageError, TypeConfig};
use elastickv_storage::RaftLogStore;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogId, StorageIOError, Vote};
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
}

impl LogStore {
    pub fn new(log: RaftLogStore, group_commit: GroupCommit) -> Result<Self, StorageError> {
        let store = LogStore {
            log,
            group_commit,
            cache: Arc::default(),
            last_appended: Arc::new(AtomicU64::new(0)),
        };
        if let Some(last) = store.last_log_id()? {
            store.last_appended.store(last.index, Ordering::Release);
        }
        Ok(store)
    }

    /// Shared counter of the last appended index.
    pub fn last_appended(&self) -> Arc<AtomicU64> {
        self.last_appended.clone()
    }

    fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last().map_err(read_err)? {
            Some((_, bytes)) => Ok(Some(*decode_entry(&bytes)?.get_log_id())),
            None => Ok(None),
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.log.get_meta(name).map_err(read_err)? {
            Some(bytes) => Ok(Some(bincode::deserialize(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value).map_err(write_err)?;
        self.log.put_meta(name, &bytes).map_err(write_err)
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
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
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
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta(META_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only makes a restarted node re-learn the
        // commit index from the leader.
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
        let last = encoded.last().map(|(i, _)| *i);
        self.log.append(&encoded).map_err(write_err)?;
        if let Ok(mut cache) = self.cache.lock() {
            for e in decoded {
                cache.push(e);
            }
        }
        if let Some(last) = last {
            self.last_appended.store(last, Ordering::Release);
        }
        self.group_commit.flushed(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
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
    use elastickv_storage::{Engine, EngineOptions};
    use elastickv_types::{GroupId, Hlc};
    use openraft::testing::{StoreBuilder, Suite};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().map_err(write_err)?;
            let engine = Engine::open(&dir.path().join("store"), EngineOptions::default())
                .map_err(write_err)?;
            let group_commit = GroupCommit::start(engine.clone()).map_err(write_err)?;
            let log = LogStore::new(
                engine.raft_log(GroupId(1)).map_err(write_err)?,
                group_commit,
            )?;
            let sm = StateMachine::open(
                engine.group(GroupId(1)).map_err(write_err)?,
                Arc::new(Hlc::default()),
                dir.path().join("snapshots"),
            )?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own storage conformance suite against our log store and
    /// state machine on the real engine.
    #[test]
    fn openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder)
    }
}
