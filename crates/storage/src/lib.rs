//! MVCC storage on fjall: the only crate that names the embedded engine.
//!
//! One fjall keyspace per node holds, for every Raft group, the group's Raft
//! log and the group's state machine (MVCC versions, transaction locks and
//! state-machine metadata). One journal for all of them is what lets a single
//! fsync ([`Engine::sync`]) make the appends of many groups durable at once.
//!
//! Layering: `elastickv-raft` serialises log entries and commands; this crate
//! stores bytes with MVCC semantics and knows nothing of Raft or of protocols.
//!
//! Durability: writes (batches, log appends, metadata) go to the shared fjall
//! journal and are handed to the OS per batch, but are never fsynced on
//! their own; [`Engine::sync`] fsyncs the journal once for every group. A
//! process crash loses nothing written; a power loss loses what was written
//! after the last `sync`.
//!
//! Modules: `keys` (byte layout of every key and value — start there),
//! `engine` (keyspace, partitions, generations), `mvcc` (reads, batches),
//! `raft_log`, `gc`, `snapshot` (export/import format), `view` (pinned
//! point-in-time views; explains a fjall 2.11 snapshot pitfall), `format`
//! (FORMAT and LOCK files).

mod engine;
mod format;
mod gc;
mod keys;
mod mvcc;
mod newest;
mod raft_log;
mod snapshot;
pub mod two_way;
mod view;

#[cfg(test)]
mod tests;

pub use format::{DATA_FORMAT_VERSION, FORMAT_FILE};

use elastickv_types::{GroupId, Timestamp};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory was written by an incompatible version.
    #[error("data directory {dir} has format {found}, this build reads format {expected}: {hint}")]
    IncompatibleFormat {
        dir: String,
        found: String,
        expected: u32,
        hint: String,
    },
    /// A snapshot stream or stored record failed validation.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("engine error: {0}")]
    Engine(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A node's storage engine. Cheap to clone.
///
/// Only one `Engine` may have a directory open at a time (enforced with a
/// lock file); to reopen, drop every handle (including group and log stores,
/// batches and views) first.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<engine::EngineInner>,
}

impl Engine {
    /// Open (creating if needed) the engine in `dir`. Refuses a directory
    /// whose format version is not this build's.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Engine> {
        Ok(Engine {
            inner: Arc::new(engine::EngineInner::open(dir, opts.cache_bytes)?),
        })
    }

    /// The directory this engine was opened on.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// The state-machine store of `group`, created on first use.
    pub fn group(&self, group: GroupId) -> Result<GroupStore> {
        self.inner.group(group)
    }

    /// The Raft log store of `group`, created on first use.
    pub fn raft_log(&self, group: GroupId) -> Result<RaftLogStore> {
        self.inner.raft_log(group)
    }

    /// Make everything written so far durable with one fsync of the journal.
    pub fn sync(&self) -> Result<()> {
        self.inner.shared.sync()
    }
}

/// The Raft log and hard state of one group: entries keyed by index, values
/// opaque; a few named metadata values (vote, committed, last purged).
#[derive(Clone)]
pub struct RaftLogStore {
    pub(crate) inner: Arc<engine::RaftLogInner>,
}

impl RaftLogStore {
    /// Write entries (index, bytes). Not durable until [`Engine::sync`].
    /// The entries are written atomically (one batch).
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        raft_log::append(&self.inner, entries)
    }
    /// Entries with `start <= index < end`, in index order.
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        raft_log::range(&self.inner, start, end)
    }
    /// The entry with the highest index.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        raft_log::last(&self.inner)
    }
    /// Remove every entry with index >= `index`.
    ///
    /// Relies on the log being contiguous (as Raft keeps it): deletes every
    /// index from `index` to the last one without reading them.
    pub fn truncate_from(&self, index: u64) -> Result<()> {
        raft_log::truncate_from(&self.inner, index)
    }
    /// Remove every entry with index <= `index`.
    ///
    /// Relies on the log being contiguous, like [`RaftLogStore::truncate_from`].
    pub fn purge_upto(&self, index: u64) -> Result<()> {
        raft_log::purge_upto(&self.inner, index)
    }
    /// Not durable until [`Engine::sync`].
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        raft_log::put_meta(&self.inner, name, value)
    }
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        raft_log::get_meta(&self.inner, name)
    }
}

/// One stored version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub commit_ts: Timestamp,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Progress of one bounded GC pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcProgress {
    pub versions_removed: u64,
    pub keys_visited: u64,
    /// Where the next pass resumes; `None` when the sweep reached the end.
    pub resume_from: Option<Vec<u8>>,
}

/// The state machine of one group: MVCC data, locks and metadata.
///
/// Every handle of one group (from any number of [`Engine::group`] calls and
/// clones) shares the same state, so all see a snapshot install at once.
#[derive(Clone)]
pub struct GroupStore {
    pub(crate) inner: Arc<engine::GroupInner>,
}

impl GroupStore {
    /// Newest version of `key` with `commit_ts <= ts`, tombstones included.
    pub fn get_version_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Version>> {
        mvcc::get_version_at(&self.inner.current(), key, ts)
    }
    /// Value of `key` visible at `ts` (`None` if absent or deleted).
    pub fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        Ok(self.get_version_at(key, ts)?.and_then(|v| v.value))
    }
    /// Newest version of `key` at any timestamp, tombstones included.
    pub fn latest_version(&self, key: &[u8]) -> Result<Option<Version>> {
        mvcc::latest_version(&self.inner.current(), key)
    }
    /// Live rows with `start <= key < end` (`end` `None`: unbounded) visible
    /// at `ts`, at most `limit`, ascending or (if `reverse`) descending.
    pub fn scan_at(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        ts: Timestamp,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        mvcc::scan_at(&self.inner, start, end, ts, limit, reverse)
    }
    /// Lock record of `key`, if any.
    pub fn get_lock(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        mvcc::get_aux(&self.inner.current().locks, key)
    }
    /// Lock records with `start <= key < end`, at most `limit`.
    pub fn scan_locks(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        mvcc::scan_aux(&self.inner.current().locks, start, end, limit)
    }
    /// State-machine metadata value.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        mvcc::get_aux(&self.inner.current().meta, key)
    }
    /// Metadata entries whose key starts with `prefix`, at most `limit`.
    pub fn scan_meta(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        mvcc::scan_aux_prefix(&self.inner.current().meta, prefix, limit)
    }
    /// Metadata entries with `start <= key < end`, at most `limit`.
    pub fn scan_meta_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        mvcc::scan_aux(&self.inner.current().meta, start, Some(end), limit)
    }
    /// A write batch; applied atomically by [`GroupBatch::commit`].
    ///
    /// Invalid operations (a key too large for the engine) are reported by
    /// `commit`, which then applies nothing.
    pub fn batch(&self) -> GroupBatch {
        GroupBatch {
            state: mvcc::BatchState::new(self.inner.clone()),
        }
    }
    /// A consistent point-in-time view for snapshots.
    ///
    /// One instant across the data, locks and meta partitions (never half of
    /// a committing batch). The view pins the memtables and segment files it
    /// reads (they stay on disk and in memory until it is dropped), holds the
    /// meta partition in memory, and uses one helper thread: drop it when
    /// done. See `view.rs` for why.
    pub fn read_view(&self) -> GroupView {
        GroupView {
            view: view::View::new(self.inner.clone()),
        }
    }
    /// Remove versions no reader at or above `safe_point` can see, visiting
    /// at most `max_keys` keys from `resume_from`.
    pub fn gc(
        &self,
        safe_point: Timestamp,
        max_keys: usize,
        resume_from: Option<&[u8]>,
    ) -> Result<GcProgress> {
        gc::gc(&self.inner, safe_point, max_keys, resume_from)
    }
    /// Replace the whole group state with a stream written by
    /// [`GroupView::export`]. Atomic with respect to crashes: afterwards the
    /// store holds either the old state or the new one, never a mix.
    ///
    /// The stream is validated while it is imported into a new generation of
    /// partitions; on [`StorageError::Corrupt`] (or any error) the old state
    /// is untouched. Batches started before the install fail to commit.
    pub fn install_snapshot(&self, reader: &mut dyn Read) -> Result<()> {
        engine::install_snapshot(&self.inner, reader)
    }

    /// The group this store belongs to.
    pub fn group_id(&self) -> GroupId {
        self.inner.group
    }
}

/// An atomic batch of writes to one group.
///
/// Each operation copies its key (encoded) and value once into the batch;
/// nothing else is allocated per operation.
pub struct GroupBatch {
    state: mvcc::BatchState,
}

impl GroupBatch {
    /// A version of `key` (possibly below versions already stored).
    pub fn put(&mut self, key: &[u8], commit_ts: Timestamp, value: &[u8]) {
        self.state.put(key, commit_ts, value, false)
    }
    /// A tombstone version.
    pub fn delete(&mut self, key: &[u8], commit_ts: Timestamp) {
        self.state.delete(key, commit_ts, false)
    }
    /// A version of `key` that the caller guarantees is its newest: no
    /// version of `key` above `commit_ts` exists. Reads of the key at or
    /// above `commit_ts` are then answered from memory while it stays
    /// recorded; a broken guarantee makes such reads miss the newer version.
    pub fn put_newest(&mut self, key: &[u8], commit_ts: Timestamp, value: &[u8]) {
        self.state.put(key, commit_ts, value, true)
    }
    /// A tombstone version that is the newest, as for [`GroupBatch::put_newest`].
    pub fn delete_newest(&mut self, key: &[u8], commit_ts: Timestamp) {
        self.state.delete(key, commit_ts, true)
    }
    pub fn put_lock(&mut self, key: &[u8], lock: &[u8]) {
        self.state.put_lock(key, lock)
    }
    pub fn delete_lock(&mut self, key: &[u8]) {
        self.state.delete_lock(key)
    }
    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) {
        self.state.put_meta(key, value)
    }
    pub fn delete_meta(&mut self, key: &[u8]) {
        self.state.delete_meta(key)
    }
    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.state.len()
    }
    /// True if the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Apply atomically. Not durable until [`Engine::sync`].
    pub fn commit(self) -> Result<()> {
        self.state.commit()
    }
}

/// A point-in-time view of a group.
pub struct GroupView {
    view: view::View,
}

impl GroupView {
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.view.get_meta(key)
    }
    /// Stream the whole group state (data, locks, metadata) to `w` in a
    /// checksummed format, in bounded memory. Returns bytes written.
    ///
    /// A view can be exported once; a second call returns an error.
    pub fn export(&self, w: &mut dyn Write) -> Result<u64> {
        self.view.export(w)
    }
}
