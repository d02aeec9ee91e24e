//! The newest version of recently written keys, in memory.
//!
//! A point read is an LSM range seek (a version key ends in the inverted
//! commit timestamp, so the newest version at or below `ts` is the first
//! entry at or after `enc(key) ++ !ts`), which merges every memtable and
//! overlapping segment and cannot use bloom filters. For a key whose newest
//! version is known here, a read at or above that version's timestamp is
//! answered from memory instead (or, for a large value, by one bloom-
//! filtered point lookup of that exact version).
//!
//! What is recorded must be the key's newest version, so only writes whose
//! caller promises that no newer version exists ([`crate::GroupBatch::
//! put_newest`]) insert; any other write of the key removes its entry, and
//! so does GC when it removes the recorded version (a tombstone below the
//! safe point). Entries are updated right after the batch that wrote them
//! commits; a reader that could see the batch's versions (its timestamp is
//! at or above theirs) only reads once the batch is applied, so it never
//! finds the entry the batch replaced.
//!
//! Memory is bounded: two generations, each closed when it holds
//! [`MAX_ENTRIES`] keys or [`MAX_BYTES`] of keys and values; closing the
//! newer one drops the older one. A dropped entry only costs a seek.

use elastickv_types::Timestamp;
use std::collections::HashMap;
use std::sync::RwLock;

/// Values up to this size are kept in memory; larger ones are read by a
/// point lookup of the recorded version.
pub(crate) const MAX_CACHED_VALUE: usize = 1024;
/// Keys per generation.
const MAX_ENTRIES: usize = 64 * 1024;
/// Key and value bytes per generation.
const MAX_BYTES: usize = 16 << 20;

/// The recorded newest version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Newest {
    /// Its value (`None`: a tombstone).
    Value(Option<Vec<u8>>),
    /// A value too large to keep here.
    Large,
}

/// A change to apply once a batch has committed.
pub(crate) enum Change {
    Newest(Timestamp, Newest),
    Forget,
}

#[derive(Default)]
struct Generation {
    entries: HashMap<Vec<u8>, (Timestamp, Newest)>,
    bytes: usize,
}

impl Generation {
    fn remove(&mut self, key: &[u8]) {
        if let Some((_, n)) = self.entries.remove(key) {
            self.bytes -= entry_bytes(key, &n);
        }
    }
}

fn entry_bytes(key: &[u8], n: &Newest) -> usize {
    let value = match n {
        Newest::Value(Some(v)) => v.len(),
        _ => 0,
    };
    key.len() + value
}

#[derive(Default)]
struct Generations {
    newer: Generation,
    older: Generation,
}

/// The newest versions of one generation of a group's data partition.
pub(crate) struct NewestVersions {
    gens: RwLock<Generations>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for NewestVersions {
    fn default() -> Self {
        NewestVersions::with_limits(MAX_ENTRIES, MAX_BYTES)
    }
}

impl NewestVersions {
    pub(crate) fn with_limits(max_entries: usize, max_bytes: usize) -> NewestVersions {
        assert!(max_entries > 0 && max_bytes > 0);
        NewestVersions {
            gens: RwLock::new(Generations::default()),
            max_entries,
            max_bytes,
        }
    }

    /// The newest version of `key`, if recorded.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Timestamp, Newest)> {
        let g = crate::engine::read(&self.gens);
        g.newer
            .entries
            .get(key)
            .or_else(|| g.older.entries.get(key))
            .cloned()
    }

    /// Apply the changes of a committed batch, in batch order.
    pub(crate) fn apply(&self, changes: Vec<(Vec<u8>, Change)>) {
        if changes.is_empty() {
            return;
        }
        let mut g = crate::engine::write(&self.gens);
        for (key, change) in changes {
            g.older.remove(&key);
            g.newer.remove(&key);
            if let Change::Newest(ts, newest) = change {
                g.newer.bytes += entry_bytes(&key, &newest);
                g.newer.entries.insert(key, (ts, newest));
            }
        }
        if g.newer.entries.len() >= self.max_entries || g.newer.bytes >= self.max_bytes {
            g.older = std::mem::take(&mut g.newer);
        }
    }

    /// GC removed the version of `key` at `ts`: forget it if it is the
    /// recorded one.
    pub(crate) fn removed(&self, key: &[u8], ts: Timestamp) {
        let mut guard = crate::engine::write(&self.gens);
        let g = &mut *guard;
        for gen in [&mut g.newer, &mut g.older] {
            if gen.entries.get(key).is_some_and(|(t, _)| *t == ts) {
                gen.remove(key);
            }
        }
    }
}

/// What to record for a value written as the newest version.
pub(crate) fn newest_of(value: Option<&[u8]>) -> Newest {
    match value {
        Some(v) if v.len() > MAX_CACHED_VALUE => Newest::Large,
        v => Newest::Value(v.map(<[u8]>::to_vec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(v: &[u8]) -> Change {
        Change::Newest(1, newest_of(Some(v)))
    }

    #[test]
    fn newer_writes_replace_and_forget_removes() {
        let n = NewestVersions::default();
        n.apply(vec![(b"a".to_vec(), small(b"1"))]);
        n.apply(vec![(b"a".to_vec(), Change::Newest(2, newest_of(None)))]);
        assert_eq!(n.get(b"a"), Some((2, Newest::Value(None))));
        n.apply(vec![(b"a".to_vec(), Change::Forget)]);
        assert_eq!(n.get(b"a"), None);
    }

    #[test]
    fn large_values_are_not_kept() {
        let n = NewestVersions::default();
        let big = vec![7u8; MAX_CACHED_VALUE + 1];
        n.apply(vec![(
            b"a".to_vec(),
            Change::Newest(3, newest_of(Some(&big))),
        )]);
        assert_eq!(n.get(b"a"), Some((3, Newest::Large)));
    }

    #[test]
    fn gc_forgets_only_the_version_it_removed() {
        let n = NewestVersions::default();
        n.apply(vec![(b"a".to_vec(), Change::Newest(5, newest_of(None)))]);
        n.removed(b"a", 4);
        assert!(n.get(b"a").is_some());
        n.removed(b"a", 5);
        assert_eq!(n.get(b"a"), None);
    }

    #[test]
    fn memory_is_bounded_by_two_generations() {
        let n = NewestVersions::with_limits(4, usize::MAX);
        for i in 0..100u32 {
            n.apply(vec![(i.to_be_bytes().to_vec(), small(b"v"))]);
        }
        let g = crate::engine::read(&n.gens);
        assert!(g.newer.entries.len() + g.older.entries.len() <= 8);
        drop(g);
        // The most recent writes are still known, the first ones are not.
        assert!(n.get(&99u32.to_be_bytes()).is_some());
        assert_eq!(n.get(&0u32.to_be_bytes()), None);
        // A key rewritten while in the older generation is found once.
        let n = NewestVersions::with_limits(2, usize::MAX);
        n.apply(vec![
            (b"x".to_vec(), small(b"1")),
            (b"y".to_vec(), small(b"1")),
        ]);
        n.apply(vec![(
            b"x".to_vec(),
            Change::Newest(2, newest_of(Some(b"2"))),
        )]);
        assert_eq!(n.get(b"x"), Some((2, Newest::Value(Some(b"2".to_vec())))));
        let n2 = NewestVersions::with_limits(usize::MAX, 10);
        n2.apply(vec![(b"k".to_vec(), small(&[0; 12]))]);
        assert_eq!(crate::engine::read(&n2.gens).older.entries.len(), 1);
    }
}
