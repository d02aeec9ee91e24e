//! MVCC reads (point reads, forward and reverse scans), lock and metadata
//! reads, and the write batch of a group.
//!
//! Point reads seek straight to `enc(key) ++ be64(!ts)` and take the first
//! entry: the newest version at or below `ts`. They read the partition's
//! latest state without a fjall snapshot (one key is never torn).
//! Scans run on a fjall snapshot taken at the keyspace's visible sequence
//! number, so a scan never observes half of a concurrently committing batch.

use crate::engine::{fj, read, GroupInner, GroupParts};
use crate::keys::{self, MAX_ENGINE_KEY, TS_LEN};
use crate::newest::{self, Change, Newest};
use crate::{Result, StorageError, Version};
use elastickv_types::Timestamp;
use fjall::{Batch, PartitionHandle, Slice};
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::Arc;

/// A `(key, value)` row returned by scans.
pub(crate) type Row = (Vec<u8>, Vec<u8>);

fn version_from(key: &[u8], value: &[u8]) -> Result<Version> {
    let (_, commit_ts) = keys::split_version_key(key)?;
    Ok(Version {
        commit_ts,
        value: keys::decode_value(value)?.map(<[u8]>::to_vec),
    })
}

/// The recorded newest version of `key`, if there is one at or below `ts`.
fn recorded_newest(parts: &GroupParts, key: &[u8], ts: Timestamp) -> Result<Option<Version>> {
    match parts.newest.get(key) {
        Some((commit_ts, Newest::Value(value))) if commit_ts <= ts => {
            Ok(Some(Version { commit_ts, value }))
        }
        Some((commit_ts, Newest::Large)) if commit_ts <= ts => {
            // A bloom-filtered point lookup of the exact version.
            let mut k = Vec::with_capacity(keys::encoded_len(key) + TS_LEN);
            keys::encode_version_into(&mut k, key, commit_ts);
            match parts.data.get(&k).map_err(fj)? {
                Some(v) => version_from(&k, &v).map(Some),
                // Only GC removes a recorded version, and then forgets it.
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// Newest version of `key` with `commit_ts <= ts`.
pub(crate) fn get_version_at(
    parts: &GroupParts,
    key: &[u8],
    ts: Timestamp,
) -> Result<Option<Version>> {
    if let Some(v) = recorded_newest(parts, key, ts)? {
        return Ok(Some(v));
    }
    // One buffer holds both bounds: [enc(key) ++ !ts | enc(key) ++ FF*8].
    let n = keys::encoded_len(key) + TS_LEN;
    let mut buf = Vec::with_capacity(2 * n);
    keys::encode_version_into(&mut buf, key, ts);
    buf.extend_from_within(..n - TS_LEN);
    buf.extend_from_slice(&[0xFF; TS_LEN]);
    let (lo, hi) = buf.split_at(n);
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Included(lo), Included(hi));
    match parts.data.range::<&[u8], _>(bounds).next() {
        None => Ok(None),
        Some(item) => {
            let (k, v) = item.map_err(fj)?;
            version_from(&k, &v).map(Some)
        }
    }
}

/// Newest version of `key`, at any timestamp.
pub(crate) fn latest_version(parts: &GroupParts, key: &[u8]) -> Result<Option<Version>> {
    if let Some(v) = recorded_newest(parts, key, Timestamp::MAX)? {
        return Ok(Some(v));
    }
    let prefix = keys::encode_user_key(key);
    match parts.data.prefix(&prefix).next() {
        None => Ok(None),
        Some(item) => {
            let (k, v) = item.map_err(fj)?;
            version_from(&k, &v).map(Some)
        }
    }
}

/// Live rows of `[start, end)` visible at `ts`.
pub(crate) fn scan_at(
    inner: &GroupInner,
    start: &[u8],
    end: Option<&[u8]>,
    ts: Timestamp,
    limit: usize,
    reverse: bool,
) -> Result<Vec<Row>> {
    if limit == 0 || end.is_some_and(|e| e <= start) {
        return Ok(Vec::new());
    }
    let parts = inner.current();
    let lo = keys::encode_user_key(start);
    let hi = end.map(keys::encode_user_key);
    let snapshot = parts.data.snapshot_at(inner.shared.keyspace.instant());
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) =
        (Included(&lo), hi.as_deref().map_or(Unbounded, Excluded));
    let iter = snapshot.range::<&[u8], _>(bounds);
    let mut out = Vec::with_capacity(limit.min(256));
    if reverse {
        scan_reverse(iter.rev(), ts, limit, &mut out)?;
    } else {
        scan_forward(iter, ts, limit, &mut out)?;
    }
    Ok(out)
}

fn scan_forward<E: Into<fjall::Error>>(
    iter: impl Iterator<Item = std::result::Result<(Slice, Slice), E>>,
    ts: Timestamp,
    limit: usize,
    out: &mut Vec<Row>,
) -> Result<()> {
    // The stored key whose user key is already decided (visible version
    // found): its remaining, older versions are skipped.
    let mut decided: Option<Slice> = None;
    for item in iter {
        let (k, v) = item.map_err(fj)?;
        let (prefix, vts) = keys::split_version_key(&k)?;
        if let Some(d) = &decided {
            if d.len() == k.len() && d[..prefix.len()] == *prefix {
                continue;
            }
        }
        if vts > ts {
            continue;
        }
        if let Some(value) = keys::decode_value(&v)? {
            out.push((keys::decode_user_key(prefix)?, value.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        decided = Some(k);
    }
    Ok(())
}

fn scan_reverse<E: Into<fjall::Error>>(
    iter: impl Iterator<Item = std::result::Result<(Slice, Slice), E>>,
    ts: Timestamp,
    limit: usize,
    out: &mut Vec<Row>,
) -> Result<()> {
    // Versions of one key arrive oldest first; the last one at or below `ts`
    // wins. `group` is any stored key of the current user key, `candidate`
    // the best version so far (cheap refcounted slices, no copies).
    let mut group: Option<Slice> = None;
    let mut candidate: Option<Slice> = None;
    for item in iter {
        let (k, v) = item.map_err(fj)?;
        let (prefix, vts) = keys::split_version_key(&k)?;
        let same = group
            .as_ref()
            .is_some_and(|g| g.len() == k.len() && g[..prefix.len()] == *prefix);
        if !same {
            if let Some(g) = group.take() {
                emit_candidate(&g, candidate.take(), out)?;
                if out.len() >= limit {
                    return Ok(());
                }
            }
            group = Some(k.clone());
            candidate = None;
        }
        if vts <= ts {
            candidate = Some(v);
        }
    }
    if let Some(g) = group {
        emit_candidate(&g, candidate, out)?;
    }
    Ok(())
}

fn emit_candidate(stored_key: &[u8], candidate: Option<Slice>, out: &mut Vec<Row>) -> Result<()> {
    let Some(v) = candidate else { return Ok(()) };
    if let Some(value) = keys::decode_value(&v)? {
        let (prefix, _) = keys::split_version_key(stored_key)?;
        out.push((keys::decode_user_key(prefix)?, value.to_vec()));
    }
    Ok(())
}

/// Value of an aux (lock or meta) key in `part`.
pub(crate) fn get_aux(part: &PartitionHandle, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(part
        .get(keys::aux_key(key))
        .map_err(fj)?
        .map(|v| v.to_vec()))
}

/// Aux rows with `start <= key < end`, at most `limit`.
pub(crate) fn scan_aux(
    part: &PartitionHandle,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Row>> {
    if limit == 0 || end.is_some_and(|e| e <= start) {
        return Ok(Vec::new());
    }
    let lo = keys::aux_key(start);
    let hi = match end {
        Some(e) => keys::aux_key(e),
        None => vec![keys::AUX_PREFIX + 1],
    };
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Included(&lo), Excluded(&hi));
    collect_aux(part.range::<&[u8], _>(bounds), limit)
}

/// Aux rows whose key starts with `prefix`, at most `limit`.
pub(crate) fn scan_aux_prefix(
    part: &PartitionHandle,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<Row>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    collect_aux(part.prefix(keys::aux_key(prefix)), limit)
}

fn collect_aux(
    iter: impl Iterator<Item = fjall::Result<(Slice, Slice)>>,
    limit: usize,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for item in iter.take(limit) {
        let (k, v) = item.map_err(fj)?;
        out.push((keys::strip_aux(&k)?.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// The state of a [`crate::GroupBatch`]: a fjall batch over the partitions of
/// the generation current when the batch was started.
pub(crate) struct BatchState {
    inner: Arc<GroupInner>,
    parts: Arc<GroupParts>,
    batch: Batch,
    /// Reused buffer for encoding keys (fjall copies keys into its own slices).
    scratch: Vec<u8>,
    /// What the batch changes in the record of newest versions.
    newest: Vec<(Vec<u8>, Change)>,
    /// First invalid operation; reported by `commit`.
    error: Option<StorageError>,
}

impl BatchState {
    pub(crate) fn new(inner: Arc<GroupInner>) -> BatchState {
        let parts = inner.current();
        let batch = inner.shared.keyspace.batch();
        BatchState {
            inner,
            parts,
            batch,
            scratch: Vec::new(),
            newest: Vec::new(),
            error: None,
        }
    }

    fn check_value(&mut self, len: usize) -> bool {
        if u32::try_from(len.saturating_add(1)).is_err() {
            self.error = Some(StorageError::Engine(format!(
                "value of {len} bytes exceeds the engine limit of 4 GiB"
            )));
            return false;
        }
        true
    }

    fn encode_data_key(&mut self, key: &[u8], ts: Timestamp) -> bool {
        self.scratch.clear();
        keys::encode_version_into(&mut self.scratch, key, ts);
        if self.scratch.len() > MAX_ENGINE_KEY {
            self.error = Some(keys::key_too_large("key", key.len(), self.scratch.len()));
            return false;
        }
        true
    }

    fn encode_aux_key(&mut self, key: &[u8]) -> bool {
        self.scratch.clear();
        keys::aux_key_into(&mut self.scratch, key);
        if self.scratch.len() > MAX_ENGINE_KEY {
            self.error = Some(keys::key_too_large("key", key.len(), self.scratch.len()));
            return false;
        }
        true
    }

    /// A version of `key`; `newest`: the caller promises no version of
    /// `key` above `ts` exists, so it can be recorded as the newest.
    pub(crate) fn put(&mut self, key: &[u8], ts: Timestamp, value: &[u8], newest: bool) {
        if self.error.is_none() && self.check_value(value.len()) && self.encode_data_key(key, ts) {
            self.batch.insert(
                &self.parts.data,
                self.scratch.as_slice(),
                keys::put_value(value),
            );
            self.note(key, ts, Some(value), newest);
        }
    }

    /// A tombstone version; `newest` as for [`BatchState::put`].
    pub(crate) fn delete(&mut self, key: &[u8], ts: Timestamp, newest: bool) {
        if self.error.is_none() && self.encode_data_key(key, ts) {
            self.batch.insert(
                &self.parts.data,
                self.scratch.as_slice(),
                keys::tombstone_value(),
            );
            self.note(key, ts, None, newest);
        }
    }

    fn note(&mut self, key: &[u8], ts: Timestamp, value: Option<&[u8]>, newest: bool) {
        let change = if newest {
            Change::Newest(ts, newest::newest_of(value))
        } else {
            Change::Forget
        };
        self.newest.push((key.to_vec(), change));
    }

    pub(crate) fn put_lock(&mut self, key: &[u8], lock: &[u8]) {
        if self.error.is_none() && self.check_value(lock.len()) && self.encode_aux_key(key) {
            self.batch
                .insert(&self.parts.locks, self.scratch.as_slice(), lock);
        }
    }

    pub(crate) fn delete_lock(&mut self, key: &[u8]) {
        if self.error.is_none() && self.encode_aux_key(key) {
            self.batch
                .remove(&self.parts.locks, self.scratch.as_slice());
        }
    }

    pub(crate) fn put_meta(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_none() && self.check_value(value.len()) && self.encode_aux_key(key) {
            self.batch
                .insert(&self.parts.meta, self.scratch.as_slice(), value);
        }
    }

    pub(crate) fn delete_meta(&mut self, key: &[u8]) {
        if self.error.is_none() && self.encode_aux_key(key) {
            self.batch.remove(&self.parts.meta, self.scratch.as_slice());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.batch.len()
    }

    pub(crate) fn commit(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        commit_checked(&self.inner, self.parts.gen, self.batch)?;
        self.parts.newest.apply(self.newest);
        Ok(())
    }
}

/// Commits `batch`, written against generation `gen`, unless a snapshot
/// install replaced that generation meanwhile (fjall would silently drop
/// writes to deleted partitions). Holds the generation read lock during the
/// commit, so an install cannot switch generations half-way.
pub(crate) fn commit_checked(inner: &GroupInner, gen: u64, batch: Batch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let current = read(&inner.parts);
    if current.gen != gen {
        return Err(StorageError::Engine(format!(
            "group {} was replaced by a snapshot install while this batch was built; \
             the batch was not applied",
            inner.group
        )));
    }
    batch.commit().map_err(fj)
}
