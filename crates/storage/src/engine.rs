//! The node-wide fjall keyspace: opening it, naming partitions, handing out
//! group and Raft-log handles, and the generation pointers that make
//! snapshot installs crash-atomic.
//!
//! Every group's state machine lives in three partitions of one
//! *generation* (`g{group}_{data,locks,meta}_{gen}`). The current generation
//! of each group is recorded in the engine meta partition
//! (`"gen/" ++ be64(group)`). A snapshot install imports into a fresh
//! generation, then durably switches the pointer, then drops the old
//! partitions. Generation numbers come from a persisted counter and are never
//! reused, because fjall replays journal records by partition *name*: a
//! recreated partition with an old name could receive stale records.
//! On open, every group partition whose generation is not the current one
//! (a half-finished install, or an old generation whose deletion was cut
//! short) is deleted.

use crate::format::{self, DirLock};
use crate::newest::NewestVersions;
use crate::{GroupStore, RaftLogStore, Result, StorageError};
use elastickv_types::GroupId;
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Name of the engine-level meta partition.
pub(crate) const ENGINE_META_PARTITION: &str = "elastickv_meta";
const NEXT_GEN_KEY: &[u8] = b"next_gen";
const GEN_KEY_PREFIX: &[u8] = b"gen/";

/// Memtable size of a group's data partition (fjall's default is 16 MiB;
/// RocksDB's and TiKV's are 64–128 MiB). Larger memtables mean fewer flushes
/// and fewer L0 segments for every range seek to merge: one node needed
/// 3–23 % less CPU per INCR or SADD than with 16 MiB (BENCHMARKS.md). Applies
/// to partitions created from now on: fjall keeps a partition's options
/// from its creation.
const DATA_MEMTABLE_BYTES: u32 = 64 << 20;

/// All memtables of the keyspace together (fjall's default is 64 MiB).
/// Past 90 % of it fjall stalls writers in 100 ms sleeps, so it must stay
/// well above one data memtable plus the sealed ones being flushed.
const WRITE_BUFFER_BYTES: u64 = 256 << 20;

/// Maps a fjall error into ours.
pub(crate) fn fj(e: impl Into<fjall::Error>) -> StorageError {
    match e.into() {
        fjall::Error::Io(io) => StorageError::Io(io),
        other => StorageError::Engine(other.to_string()),
    }
}

/// Test builds abort the process here when `EKV_CRASH_AT` names this point
/// (used by the crash tests, which run the test binary as a child process).
#[cfg(test)]
pub(crate) fn crash_point(name: &str) {
    if std::env::var("EKV_CRASH_AT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

#[cfg(not(test))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// Locks a mutex, ignoring poisoning: every value guarded in this crate is
/// replaced whole, so a panicking holder cannot leave it half-updated.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// What every handle of one engine shares. Dropped (closing the keyspace and
/// then releasing the directory lock) when the last handle goes away.
pub(crate) struct Shared {
    pub(crate) keyspace: Keyspace,
    pub(crate) meta: PartitionHandle,
    /// Serialises generation allocation.
    gen_lock: Mutex<()>,
    next_gen: AtomicU64,
    /// Released last (fields drop in order), after the keyspace is closed.
    _dir_lock: DirLock,
}

impl Shared {
    /// Make the journal durable. fdatasync is enough: the journal is only
    /// appended to, and fdatasync persists a changed file size (the one
    /// piece of metadata needed to read the data back); it skips the
    /// timestamps fsync would also write (measured: group-commit syncs
    /// ~10 % faster under load).
    pub(crate) fn sync(&self) -> Result<()> {
        self.keyspace.persist(PersistMode::SyncData).map_err(fj)
    }

    /// Allocates a never-used generation number; durable before returning.
    pub(crate) fn alloc_gen(&self) -> Result<u64> {
        let _g = lock(&self.gen_lock);
        let gen = self.next_gen.load(Ordering::Acquire);
        let next = gen
            .checked_add(1)
            .ok_or_else(|| StorageError::Engine("generation counter exhausted".into()))?;
        self.meta
            .insert(NEXT_GEN_KEY, next.to_be_bytes())
            .map_err(fj)?;
        self.sync()?;
        self.next_gen.store(next, Ordering::Release);
        Ok(gen)
    }

    /// The current generation of `group`, if the group exists.
    pub(crate) fn current_gen(&self, group: GroupId) -> Result<Option<u64>> {
        match self.meta.get(gen_key(group)).map_err(fj)? {
            None => Ok(None),
            Some(v) => Ok(Some(be_u64(&v, "group generation pointer")?)),
        }
    }

    /// Records (not yet durably) `gen` as the current generation of `group`.
    pub(crate) fn set_current_gen(&self, group: GroupId, gen: u64) -> Result<()> {
        self.meta
            .insert(gen_key(group), gen.to_be_bytes())
            .map_err(fj)
    }

    fn open_group_partition(
        &self,
        group: GroupId,
        kind: Kind,
        gen: u64,
        create: bool,
    ) -> Result<PartitionHandle> {
        let name = part_name(group, kind, gen);
        if !create && !self.keyspace.partition_exists(&name) {
            return Err(StorageError::Corrupt(format!(
                "partition {name} is recorded as current but missing from the keyspace"
            )));
        }
        let opts = match kind {
            Kind::Data => PartitionCreateOptions::default().max_memtable_size(DATA_MEMTABLE_BYTES),
            Kind::Locks | Kind::Meta | Kind::Log => PartitionCreateOptions::default(),
        };
        self.keyspace.open_partition(&name, opts).map_err(fj)
    }

    /// Opens (or creates) the three state-machine partitions of a generation.
    pub(crate) fn open_parts(&self, group: GroupId, gen: u64, create: bool) -> Result<GroupParts> {
        let parts = GroupParts {
            gen,
            data: self.open_group_partition(group, Kind::Data, gen, create)?,
            locks: self.open_group_partition(group, Kind::Locks, gen, create)?,
            meta: self.open_group_partition(group, Kind::Meta, gen, create)?,
            newest: NewestVersions::default(),
        };
        if create {
            // fjall fsyncs a new partition's files but not the `partitions/`
            // directory entry; do it so the pointer never outlives the data.
            if let Some(parent) = parts.data.path().parent() {
                format::sync_dir(parent)?;
            }
        }
        Ok(parts)
    }

    /// Deletes the partitions of a generation (best effort: errors logged).
    pub(crate) fn drop_parts(&self, parts: GroupParts) {
        for p in [parts.data, parts.locks, parts.meta] {
            let name = p.name.to_string();
            if let Err(e) = self.keyspace.delete_partition(p) {
                tracing::warn!(partition = %name, error = %e, "failed to delete partition");
            }
        }
    }
}

/// The partitions of one generation of a group's state machine.
pub(crate) struct GroupParts {
    pub(crate) gen: u64,
    pub(crate) data: PartitionHandle,
    pub(crate) locks: PartitionHandle,
    pub(crate) meta: PartitionHandle,
    /// The newest versions of recently written keys of `data`.
    pub(crate) newest: NewestVersions,
}

/// Shared state behind every clone of one group's [`GroupStore`].
pub(crate) struct GroupInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) group: GroupId,
    pub(crate) parts: RwLock<Arc<GroupParts>>,
    /// Serialises snapshot installs of this group.
    pub(crate) install_lock: Mutex<()>,
}

impl GroupInner {
    /// The current generation's partitions.
    pub(crate) fn current(&self) -> Arc<GroupParts> {
        read(&self.parts).clone()
    }
}

/// Shared state behind every clone of one group's [`RaftLogStore`].
pub(crate) struct RaftLogInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) part: PartitionHandle,
    /// No entry below this index exists (entries below were purged); lets
    /// seeks skip the tombstones purges leave until compaction drops them.
    pub(crate) first_hint: AtomicU64,
}

pub(crate) struct EngineInner {
    pub(crate) shared: Arc<Shared>,
    groups: Mutex<HashMap<GroupId, Arc<GroupInner>>>,
    logs: Mutex<HashMap<GroupId, Arc<RaftLogInner>>>,
    dir: PathBuf,
}

impl EngineInner {
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<EngineInner> {
        format::prepare_dir(dir)?;
        let dir_lock = DirLock::acquire(dir)?;
        let keyspace = Config::new(dir.join(format::FJALL_DIR))
            .cache_size(cache_bytes)
            .max_write_buffer_size(WRITE_BUFFER_BYTES)
            // Writes are buffered to the OS per batch (survive a process
            // crash) but never fsynced on their own: Engine::sync does that.
            .manual_journal_persist(false)
            .fsync_ms(None)
            .open()
            .map_err(fj)?;
        let meta = keyspace
            .open_partition(ENGINE_META_PARTITION, PartitionCreateOptions::default())
            .map_err(fj)?;
        let stored_next = match meta.get(NEXT_GEN_KEY).map_err(fj)? {
            Some(v) => be_u64(&v, "generation counter")?,
            None => 1,
        };
        let shared = Arc::new(Shared {
            keyspace,
            meta,
            gen_lock: Mutex::new(()),
            next_gen: AtomicU64::new(stored_next),
            _dir_lock: dir_lock,
        });
        cleanup_stale_generations(&shared)?;
        Ok(EngineInner {
            shared,
            groups: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn group(&self, group: GroupId) -> Result<GroupStore> {
        let mut groups = lock(&self.groups);
        if let Some(inner) = groups.get(&group) {
            return Ok(GroupStore {
                inner: inner.clone(),
            });
        }
        let shared = &self.shared;
        let parts = match shared.current_gen(group)? {
            Some(gen) => shared.open_parts(group, gen, false)?,
            None => {
                let gen = shared.alloc_gen()?;
                let parts = shared.open_parts(group, gen, true)?;
                shared.set_current_gen(group, gen)?;
                shared.sync()?;
                parts
            }
        };
        let inner = Arc::new(GroupInner {
            shared: shared.clone(),
            group,
            parts: RwLock::new(Arc::new(parts)),
            install_lock: Mutex::new(()),
        });
        groups.insert(group, inner.clone());
        Ok(GroupStore { inner })
    }

    pub(crate) fn raft_log(&self, group: GroupId) -> Result<RaftLogStore> {
        let mut logs = lock(&self.logs);
        if let Some(inner) = logs.get(&group) {
            return Ok(RaftLogStore {
                inner: inner.clone(),
            });
        }
        let part = self
            .shared
            .keyspace
            .open_partition(&log_name(group), PartitionCreateOptions::default())
            .map_err(fj)?;
        let inner = Arc::new(RaftLogInner {
            shared: self.shared.clone(),
            part,
            first_hint: AtomicU64::new(0),
        });
        logs.insert(group, inner.clone());
        Ok(RaftLogStore { inner })
    }
}

/// Replaces the state of a group with a snapshot stream (see module docs).
pub(crate) fn install_snapshot(inner: &GroupInner, reader: &mut dyn std::io::Read) -> Result<()> {
    let _installing = lock(&inner.install_lock);
    let shared = &inner.shared;
    let importer = crate::snapshot::Importer::start(reader)?;
    let gen = shared.alloc_gen()?;
    let parts = shared.open_parts(inner.group, gen, true)?;
    if let Err(e) = importer.import_into(&parts) {
        shared.drop_parts(parts);
        return Err(e);
    }
    crash_point("install:after_import");
    let mut current = inner.parts.write().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = shared.set_current_gen(inner.group, gen) {
        drop(current);
        shared.drop_parts(parts);
        return Err(e);
    }
    // If this fsync fails the pointer may or may not be on disk: keep both
    // generations (the next open deletes whichever is not current).
    shared.sync()?;
    crash_point("install:after_switch");
    let old = std::mem::replace(&mut *current, Arc::new(parts));
    drop(current);
    tracing::info!(group = %inner.group, gen, old_gen = old.gen, "installed group snapshot");
    // Readers still holding the old generation keep its partitions alive;
    // fjall removes the files when the last handle is dropped.
    shared.drop_parts(GroupParts {
        gen: old.gen,
        data: old.data.clone(),
        locks: old.locks.clone(),
        meta: old.meta.clone(),
        newest: NewestVersions::default(),
    });
    Ok(())
}

/// Deletes group partitions that are not of their group's current generation
/// and makes sure the generation counter is above every generation seen.
fn cleanup_stale_generations(shared: &Shared) -> Result<()> {
    let mut max_gen_seen = 0u64;
    for name in shared.keyspace.list_partitions() {
        let Some((group, _kind, Some(gen))) = parse_part_name(&name) else {
            continue;
        };
        max_gen_seen = max_gen_seen.max(gen);
        if shared.current_gen(group)? == Some(gen) {
            continue;
        }
        tracing::info!(partition = %&*name, "deleting partition of a stale generation");
        let handle = shared
            .keyspace
            .open_partition(&name, PartitionCreateOptions::default())
            .map_err(fj)?;
        shared.keyspace.delete_partition(handle).map_err(fj)?;
    }
    if max_gen_seen >= shared.next_gen.load(Ordering::Acquire) {
        let _g = lock(&shared.gen_lock);
        let next = max_gen_seen.saturating_add(1);
        shared
            .meta
            .insert(NEXT_GEN_KEY, next.to_be_bytes())
            .map_err(fj)?;
        shared.sync()?;
        shared.next_gen.store(next, Ordering::Release);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Data,
    Locks,
    Meta,
    Log,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Locks => "locks",
            Kind::Meta => "meta",
            Kind::Log => "log",
        }
    }
}

pub(crate) fn part_name(group: GroupId, kind: Kind, gen: u64) -> String {
    format!("g{}_{}_{gen}", group.0, kind.as_str())
}

pub(crate) fn log_name(group: GroupId) -> String {
    format!("g{}_{}", group.0, Kind::Log.as_str())
}

/// Parses a partition name of ours: `(group, kind, generation)`.
pub(crate) fn parse_part_name(name: &str) -> Option<(GroupId, Kind, Option<u64>)> {
    let mut it = name.split('_');
    let group = it.next()?.strip_prefix('g')?.parse::<u64>().ok()?;
    let kind = match it.next()? {
        "data" => Kind::Data,
        "locks" => Kind::Locks,
        "meta" => Kind::Meta,
        "log" => Kind::Log,
        _ => return None,
    };
    let gen = match it.next() {
        Some(g) => Some(g.parse::<u64>().ok()?),
        None => None,
    };
    if it.next().is_some() || (kind == Kind::Log) != gen.is_none() {
        return None;
    }
    Some((GroupId(group), kind, gen))
}

fn gen_key(group: GroupId) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(GEN_KEY_PREFIX);
    k[4..].copy_from_slice(&group.0.to_be_bytes());
    k
}

fn be_u64(v: &[u8], what: &str) -> Result<u64> {
    let raw: [u8; 8] = v
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("{what} has {} bytes, expected 8", v.len())))?;
    Ok(u64::from_be_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_valid_and_parse() {
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.#$".contains(c))
        };
        for (g, k, gen) in [
            (0u64, Kind::Data, 1u64),
            (u64::MAX, Kind::Locks, u64::MAX),
            (7, Kind::Meta, 3),
        ] {
            let n = part_name(GroupId(g), k, gen);
            assert!(valid(&n), "{n}");
            assert_eq!(parse_part_name(&n), Some((GroupId(g), k, Some(gen))));
        }
        let n = log_name(GroupId(9));
        assert!(valid(&n));
        assert_eq!(parse_part_name(&n), Some((GroupId(9), Kind::Log, None)));
        assert!(valid(ENGINE_META_PARTITION));
        for bad in [
            ENGINE_META_PARTITION,
            "g1_data",
            "g1_log_2",
            "gx_data_1",
            "g1_foo_1",
            "g1_data_1_2",
        ] {
            assert_eq!(parse_part_name(bad), None, "{bad}");
        }
    }
}
