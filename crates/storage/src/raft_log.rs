//! The Raft log of one group: entries under `'e' ++ be64(index)`, named
//! metadata under `'m' ++ name`, in one partition (`g{group}_log`).
//!
//! Truncation and purge delete entries by index without reading them: the
//! Raft log is contiguous between its first and last index, so deleting every
//! index of `[from, last]` (or `[first, upto]`) is exact. Large deletions are
//! split into batches, in an order that keeps the log contiguous if a crash
//! cuts them short (purge ascending, truncation descending).

use crate::engine::{fj, RaftLogInner};
use crate::keys::{self, LOG_ENTRY_PREFIX};
use crate::{Result, StorageError};
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::atomic::Ordering;

/// Deletions per fjall batch when purging or truncating.
const DELETE_BATCH: u64 = 4096;

fn entry_bounds(lo: Bound<u64>, hi: Bound<u64>) -> (Bound<[u8; 9]>, Bound<[u8; 9]>) {
    let lo = match lo {
        Included(i) => Included(keys::log_entry_key(i)),
        Excluded(i) => Excluded(keys::log_entry_key(i)),
        Unbounded => Included([LOG_ENTRY_PREFIX, 0, 0, 0, 0, 0, 0, 0, 0]),
    };
    let hi = match hi {
        Included(i) => Included(keys::log_entry_key(i)),
        Excluded(i) => Excluded(keys::log_entry_key(i)),
        Unbounded => Included(keys::log_entry_key(u64::MAX)),
    };
    (lo, hi)
}

pub(crate) fn append(inner: &RaftLogInner, entries: &[(u64, Vec<u8>)]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut batch = inner.shared.keyspace.batch();
    let mut lowest = u64::MAX;
    for (index, bytes) in entries {
        lowest = lowest.min(*index);
        if u32::try_from(bytes.len()).is_err() {
            return Err(StorageError::Engine(format!(
                "Raft entry {index} of {} bytes exceeds the engine limit of 4 GiB",
                bytes.len()
            )));
        }
        batch.insert(&inner.part, keys::log_entry_key(*index), bytes.as_slice());
    }
    // Raft never appends below a purged index; if a caller does, keep the
    // seek hint correct rather than hiding the entry.
    inner.first_hint.fetch_min(lowest, Ordering::AcqRel);
    batch.commit().map_err(fj)
}

pub(crate) fn range(inner: &RaftLogInner, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    if start >= end {
        return Ok(Vec::new());
    }
    let start = start.max(inner.first_hint.load(Ordering::Acquire));
    if start >= end {
        return Ok(Vec::new());
    }
    let mut out =
        Vec::with_capacity(usize::try_from(end.saturating_sub(start)).map_or(64, |n| n.min(1024)));
    for item in inner
        .part
        .range(entry_bounds(Included(start), Excluded(end)))
    {
        let (k, v) = item.map_err(fj)?;
        out.push((keys::parse_log_entry_key(&k)?, v.to_vec()));
    }
    Ok(out)
}

fn first_index(inner: &RaftLogInner) -> Result<Option<u64>> {
    let hint = inner.first_hint.load(Ordering::Acquire);
    match inner
        .part
        .range(entry_bounds(Included(hint), Unbounded))
        .next()
    {
        None => Ok(None),
        Some(item) => {
            let (k, _) = item.map_err(fj)?;
            keys::parse_log_entry_key(&k).map(Some)
        }
    }
}

pub(crate) fn last(inner: &RaftLogInner) -> Result<Option<(u64, Vec<u8>)>> {
    let hint = inner.first_hint.load(Ordering::Acquire);
    match inner
        .part
        .range(entry_bounds(Included(hint), Unbounded))
        .next_back()
    {
        None => Ok(None),
        Some(item) => {
            let (k, v) = item.map_err(fj)?;
            Ok(Some((keys::parse_log_entry_key(&k)?, v.to_vec())))
        }
    }
}

/// Deletes every index in `[lo, hi]`, in batches, ascending or descending.
fn delete_indexes(inner: &RaftLogInner, lo: u64, hi: u64, ascending: bool) -> Result<()> {
    if lo > hi {
        return Ok(());
    }
    let indexes: Box<dyn Iterator<Item = u64>> = if ascending {
        Box::new(lo..=hi)
    } else {
        Box::new((lo..=hi).rev())
    };
    let mut batch = inner.shared.keyspace.batch();
    for i in indexes {
        batch.remove(&inner.part, keys::log_entry_key(i));
        if batch.len() as u64 >= DELETE_BATCH {
            std::mem::replace(&mut batch, inner.shared.keyspace.batch())
                .commit()
                .map_err(fj)?;
        }
    }
    if !batch.is_empty() {
        batch.commit().map_err(fj)?;
    }
    Ok(())
}

fn last_index(inner: &RaftLogInner) -> Result<Option<u64>> {
    let hint = inner.first_hint.load(Ordering::Acquire);
    match inner
        .part
        .range(entry_bounds(Included(hint), Unbounded))
        .next_back()
    {
        None => Ok(None),
        Some(item) => {
            let (k, _) = item.map_err(fj)?;
            keys::parse_log_entry_key(&k).map(Some)
        }
    }
}

pub(crate) fn truncate_from(inner: &RaftLogInner, index: u64) -> Result<()> {
    let Some(last) = last_index(inner)? else {
        return Ok(());
    };
    let lo = index.max(first_index(inner)?.unwrap_or(index));
    delete_indexes(inner, lo, last, false)
}

pub(crate) fn purge_upto(inner: &RaftLogInner, index: u64) -> Result<()> {
    if let Some(first) = first_index(inner)? {
        if let Some(last) = last_index(inner)? {
            delete_indexes(inner, first, index.min(last), true)?;
        }
    }
    inner
        .first_hint
        .fetch_max(index.saturating_add(1), Ordering::AcqRel);
    Ok(())
}

pub(crate) fn put_meta(inner: &RaftLogInner, name: &str, value: &[u8]) -> Result<()> {
    if u32::try_from(value.len()).is_err() {
        return Err(StorageError::Engine(format!(
            "Raft metadata {name:?} of {} bytes exceeds the engine limit of 4 GiB",
            value.len()
        )));
    }
    let key = keys::log_meta_key(name);
    if key.len() > keys::MAX_ENGINE_KEY {
        return Err(keys::key_too_large(
            "Raft metadata name",
            name.len(),
            key.len(),
        ));
    }
    inner.part.insert(key, value).map_err(fj)
}

pub(crate) fn get_meta(inner: &RaftLogInner, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(inner
        .part
        .get(keys::log_meta_key(name))
        .map_err(fj)?
        .map(|v| v.to_vec()))
}
