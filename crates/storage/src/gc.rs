//! MVCC garbage collection: bounded, resumable sweeps of a group's data.
//!
//! For each user key, with V the newest version whose `commit_ts <=
//! safe_point`: every version older than V is removed, and V itself too if it
//! is a tombstone. Versions newer than `safe_point` are never touched, so every
//! read at `ts >= safe_point` answers exactly as before.
//!
//! A sweep reads through a fjall snapshot and writes its deletions in small
//! batches ([`GC_BATCH`] deletions), so foreground writes only ever wait for
//! one small batch. Work per call is bounded by `max_keys` user keys; the
//! returned `resume_from` is the first user key not visited.

use crate::engine::{fj, GroupInner};
use crate::keys;
use crate::mvcc::commit_checked;
use crate::{GcProgress, Result};
use elastickv_types::Timestamp;
use fjall::Slice;
use std::ops::Bound::{self, Included, Unbounded};

/// Deletions per fjall batch.
pub(crate) const GC_BATCH: usize = 256;

pub(crate) fn gc(
    inner: &GroupInner,
    safe_point: Timestamp,
    max_keys: usize,
    resume_from: Option<&[u8]>,
) -> Result<GcProgress> {
    let parts = inner.current();
    let keyspace = &inner.shared.keyspace;
    let snapshot = parts.data.snapshot_at(keyspace.instant());
    let lo = resume_from.map(keys::encode_user_key);
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) =
        (lo.as_deref().map_or(Unbounded, Included), Unbounded);

    let mut progress = GcProgress::default();
    let mut batch = keyspace.batch();
    // A stored key of the current user key, and whether its newest version at
    // or below the safe point has been seen.
    let mut current: Option<Slice> = None;
    let mut floor_seen = false;

    for item in snapshot.range::<&[u8], _>(bounds) {
        let (k, v) = item.map_err(fj)?;
        let (prefix, vts) = keys::split_version_key(&k)?;
        let same = current
            .as_ref()
            .is_some_and(|c| c.len() == k.len() && c[..prefix.len()] == *prefix);
        if !same {
            if progress.keys_visited >= max_keys as u64 {
                progress.resume_from = Some(keys::decode_user_key(prefix)?);
                break;
            }
            progress.keys_visited += 1;
            current = Some(k.clone());
            floor_seen = false;
        }
        if vts > safe_point {
            continue;
        }
        let remove = if floor_seen {
            true
        } else {
            floor_seen = true;
            let tombstone = keys::decode_value(&v)?.is_none();
            if tombstone {
                // It may be the key's recorded newest version (`newest.rs`).
                parts.newest.removed(&keys::decode_user_key(prefix)?, vts);
            }
            tombstone
        };
        if remove {
            batch.remove(&parts.data, k);
            progress.versions_removed += 1;
            if batch.len() >= GC_BATCH {
                let full = std::mem::replace(&mut batch, keyspace.batch());
                commit_checked(inner, parts.gen, full)?;
            }
        }
    }
    commit_checked(inner, parts.gen, batch)?;
    Ok(progress)
}
