//! MVCC storage on fjall: the only crate that names the embedded engine.
//!
//! One fjall keyspace per node holds, for every Raft group, the group's Raft
//! log and the group's state machine (MVCC versions, transaction locks and
//! state-machine metadata). One journal for all of them is what lets a single
//! fsync ([`Engine::sync`]) make the appends of many groups durable at once.
//!
//! Layering: `elastickv-raft` serialises log entries and commands; this crate
//! stores bytes with MVCC semantics and knows nothing of Raft or of protocols.

// API contract. Bodies are filled in by the storage implementation.
#![allow(unused_variables, dead_code)]

use elastickv_types::{GroupId, Timestamp};
use std::io::{Read, Write};
use std::path::Path;

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
#[derive(Clone)]
pub struct Engine {}

impl Engine {
    /// Open (creating if needed) the engine in `dir`. Refuses a directory
    /// whose format version is not this build's.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Engine> {
        todo!()
    }

    /// The state-machine store of `group`, created on first use.
    pub fn group(&self, group: GroupId) -> Result<GroupStore> {
        todo!()
    }

    /// The Raft log store of `group`, created on first use.
    pub fn raft_log(&self, group: GroupId) -> Result<RaftLogStore> {
        todo!()
    }

    /// Make everything written so far durable with one fsync of the journal.
    pub fn sync(&self) -> Result<()> {
        todo!()
    }
}

/// The Raft log and hard state of one group: entries keyed by index, values
/// opaque; a few named metadata values (vote, committed, last purged).
#[derive(Clone)]
pub struct RaftLogStore {}

impl RaftLogStore {
    /// Write entries (index, bytes). Not durable until [`Engine::sync`].
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        todo!()
    }
    /// Entries with `start <= index < end`, in index order.
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        todo!()
    }
    /// The entry with the highest index.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        todo!()
    }
    /// Remove every entry with index >= `index`.
    pub fn truncate_from(&self, index: u64) -> Result<()> {
        todo!()
    }
    /// Remove every entry with index <= `index`.
    pub fn purge_upto(&self, index: u64) -> Result<()> {
        todo!()
    }
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        todo!()
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
#[derive(Clone)]
pub struct GroupStore {}

impl GroupStore {
    /// Newest version of `key` with `commit_ts <= ts`, tombstones included.
    pub fn get_version_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Version>> {
        todo!()
    }
    /// Value of `key` visible at `ts` (`None` if absent or deleted).
    pub fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        todo!()
    }
    /// Newest version of `key` at any timestamp, tombstones included.
    pub fn latest_version(&self, key: &[u8]) -> Result<Option<Version>> {
        todo!()
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
        todo!()
    }
    /// Lock record of `key`, if any.
    pub fn get_lock(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        todo!()
    }
    /// Lock records with `start <= key < end`, at most `limit`.
    pub fn scan_locks(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        todo!()
    }
    /// State-machine metadata value.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        todo!()
    }
    /// Metadata entries whose key starts with `prefix`, at most `limit`.
    pub fn scan_meta(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        todo!()
    }
    /// A write batch; applied atomically by [`GroupBatch::commit`].
    pub fn batch(&self) -> GroupBatch {
        todo!()
    }
    /// A consistent point-in-time view for snapshots.
    pub fn read_view(&self) -> GroupView {
        todo!()
    }
    /// Remove versions no reader at or above `safe_point` can see, visiting
    /// at most `max_keys` keys from `resume_from`.
    pub fn gc(
        &self,
        safe_point: Timestamp,
        max_keys: usize,
        resume_from: Option<&[u8]>,
    ) -> Result<GcProgress> {
        todo!()
    }
    /// Replace the whole group state with a stream written by
    /// [`GroupView::export`]. Atomic with respect to crashes: afterwards the
    /// store holds either the old state or the new one, never a mix.
    pub fn install_snapshot(&self, reader: &mut dyn Read) -> Result<()> {
        todo!()
    }
}

/// An atomic batch of writes to one group.
pub struct GroupBatch {}

impl GroupBatch {
    pub fn put(&mut self, key: &[u8], commit_ts: Timestamp, value: &[u8]) {}
    /// A tombstone version.
    pub fn delete(&mut self, key: &[u8], commit_ts: Timestamp) {}
    pub fn put_lock(&mut self, key: &[u8], lock: &[u8]) {}
    pub fn delete_lock(&mut self, key: &[u8]) {}
    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) {}
    pub fn delete_meta(&mut self, key: &[u8]) {}
    /// Apply atomically. Not durable until [`Engine::sync`].
    pub fn commit(self) -> Result<()> {
        todo!()
    }
}

/// A point-in-time view of a group.
pub struct GroupView {}

impl GroupView {
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        todo!()
    }
    /// Stream the whole group state (data, locks, metadata) to `w` in a
    /// checksummed format, in bounded memory. Returns bytes written.
    pub fn export(&self, w: &mut dyn Write) -> Result<u64> {
        todo!()
    }
}
