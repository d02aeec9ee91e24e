//! The newest version of recently written keys, in memory.
//!
//! A point read is an LSM range seek (a version key ends in the inverted
//! commit timestamp, so the newest version at or below `ts` is the first
//! entry at or after `enc(key) ++ !ts`), which merges every memtable and
//! overlapping segment and cannot use bloom filters. For a key whose newest
//! version is known here, a read at or above that version's timestamp is
//! answered from memory instead (or, for a value not kept here, by one
//! bloom-filtered point lookup of that exact version).
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
//! The table is a fixed array of two-way sets ([`crate::two_way`]: a key
//! may sit in one of two ways chosen by its hash; a new key evicts the older
//! write of the two), so every update costs O(1) and memory never grows or
//! shrinks in bulk. Evicting an entry only costs a later seek. Kept value
//! bytes are capped; past the cap, new entries record the version without
//! its value.

use crate::two_way::{Set, TwoWaySets, Way};
use elastickv_types::Timestamp;
use std::sync::RwLock;

/// Slots per group generation (two per set).
const SLOTS: usize = 128 * 1024;
/// Values up to this size may be kept in memory.
pub(crate) const MAX_CACHED_VALUE: usize = 1024;
/// Keys longer than this are not recorded (bounds the table's key bytes).
const MAX_RECORDED_KEY: usize = 128;
/// Value bytes kept in memory per group generation.
const MAX_VALUE_BYTES: usize = 16 << 20;

/// The recorded newest version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Newest {
    /// Its value (`None`: a tombstone).
    Value(Option<Vec<u8>>),
    /// A value not kept here: read that version from the store.
    Large,
}

impl Newest {
    fn value_bytes(&self) -> usize {
        match self {
            Newest::Value(Some(v)) => v.len(),
            _ => 0,
        }
    }
}

/// A change to apply once a batch has committed.
pub(crate) enum Change {
    Newest(Timestamp, Newest),
    Forget,
}

struct Entry {
    key: Box<[u8]>,
    ts: Timestamp,
    newest: Newest,
}

impl Way for Entry {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn ts(&self) -> Timestamp {
        self.ts
    }
}

struct Table {
    sets: TwoWaySets<Box<Entry>, ()>,
    value_bytes: usize,
}

impl Table {
    /// Empties way `i` of `set`, returning its value bytes to the cap.
    fn clear(set: &mut Set<Box<Entry>, ()>, i: usize, value_bytes: &mut usize) {
        if let Some(e) = set.take(i) {
            *value_bytes -= e.newest.value_bytes();
        }
    }
}

/// The newest versions of one generation of a group's data partition.
pub(crate) struct NewestVersions {
    table: RwLock<Table>,
    max_value_bytes: usize,
}

impl Default for NewestVersions {
    fn default() -> Self {
        NewestVersions::with_limits(SLOTS, MAX_VALUE_BYTES)
    }
}

impl NewestVersions {
    pub(crate) fn with_limits(slots: usize, max_value_bytes: usize) -> NewestVersions {
        assert!(slots >= 2 && slots % 2 == 0);
        NewestVersions {
            table: RwLock::new(Table {
                sets: TwoWaySets::new(slots / 2),
                value_bytes: 0,
            }),
            max_value_bytes,
        }
    }

    /// The newest version of `key`, if recorded.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Timestamp, Newest)> {
        let t = crate::engine::read(&self.table);
        let (set, tag) = t.sets.set(key)?;
        let e = set.way(set.find(key, tag)?)?;
        Some((e.ts, e.newest.clone()))
    }

    /// Apply the changes of a committed batch, in batch order.
    pub(crate) fn apply(&self, changes: Vec<(Vec<u8>, Change)>) {
        if changes.is_empty() {
            return;
        }
        let mut guard = crate::engine::write(&self.table);
        let Table { sets, value_bytes } = &mut *guard;
        for (key, change) in changes {
            let (set, tag) = sets.set_mut(&key, &());
            if let Some(i) = set.find(&key, tag) {
                Table::clear(set, i, value_bytes);
            }
            let Change::Newest(ts, mut newest) = change else {
                continue;
            };
            if key.len() > MAX_RECORDED_KEY {
                continue;
            }
            if *value_bytes + newest.value_bytes() > self.max_value_bytes {
                newest = Newest::Large;
            }
            let victim = set.victim();
            Table::clear(set, victim, value_bytes);
            *value_bytes += newest.value_bytes();
            let entry = Box::new(Entry {
                key: key.into_boxed_slice(),
                ts,
                newest,
            });
            set.put(victim, tag, entry);
        }
    }

    /// GC removed the version of `key` at `ts`: forget it if it is the
    /// recorded one.
    pub(crate) fn removed(&self, key: &[u8], ts: Timestamp) {
        let mut guard = crate::engine::write(&self.table);
        let Table { sets, value_bytes } = &mut *guard;
        if sets.set(key).is_none() {
            return;
        }
        let (set, tag) = sets.set_mut(key, &());
        if let Some(i) = set.find(key, tag) {
            if set.way(i).is_some_and(|e| e.ts == ts) {
                Table::clear(set, i, value_bytes);
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

    fn small(ts: Timestamp, v: &[u8]) -> Change {
        Change::Newest(ts, newest_of(Some(v)))
    }

    #[test]
    fn newer_writes_replace_and_forget_removes() {
        let n = NewestVersions::default();
        assert_eq!(n.get(b"a"), None);
        n.apply(vec![(b"a".to_vec(), small(1, b"1"))]);
        n.apply(vec![(b"a".to_vec(), Change::Newest(2, newest_of(None)))]);
        assert_eq!(n.get(b"a"), Some((2, Newest::Value(None))));
        n.apply(vec![(b"a".to_vec(), Change::Forget)]);
        assert_eq!(n.get(b"a"), None);
    }

    #[test]
    fn large_values_and_long_keys_are_not_kept() {
        let n = NewestVersions::default();
        let big = vec![7u8; MAX_CACHED_VALUE + 1];
        n.apply(vec![(
            b"a".to_vec(),
            Change::Newest(3, newest_of(Some(&big))),
        )]);
        assert_eq!(n.get(b"a"), Some((3, Newest::Large)));
        let long = vec![1u8; MAX_RECORDED_KEY + 1];
        n.apply(vec![(long.clone(), small(4, b"v"))]);
        assert_eq!(n.get(&long), None);
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
    fn a_full_set_evicts_its_older_write() {
        // One set of two slots: every key competes for it.
        let n = NewestVersions::with_limits(2, usize::MAX);
        n.apply(vec![(b"a".to_vec(), small(1, b"1"))]);
        n.apply(vec![(b"b".to_vec(), small(2, b"2"))]);
        n.apply(vec![(b"c".to_vec(), small(3, b"3"))]);
        assert_eq!(n.get(b"a"), None);
        assert_eq!(n.get(b"b"), Some((2, Newest::Value(Some(b"2".to_vec())))));
        assert_eq!(n.get(b"c"), Some((3, Newest::Value(Some(b"3".to_vec())))));
        // Rewriting a present key keeps one entry for it.
        n.apply(vec![(b"b".to_vec(), small(4, b"4"))]);
        assert_eq!(n.get(b"b"), Some((4, Newest::Value(Some(b"4".to_vec())))));
        assert_eq!(n.get(b"c"), Some((3, Newest::Value(Some(b"3".to_vec())))));
    }

    #[test]
    fn kept_value_bytes_are_capped() {
        // Enough sets that the three keys never share one.
        let n = NewestVersions::with_limits(1 << 16, 10);
        for (i, k) in [b"a", b"b", b"c"].into_iter().enumerate() {
            n.apply(vec![(k.to_vec(), small(i as u64 + 1, &[0; 4]))]);
        }
        // 4 + 4 bytes fit, the third value does not: its version is still
        // recorded, without the value.
        assert_eq!(n.get(b"c"), Some((3, Newest::Large)));
        assert!(crate::engine::read(&n.table).value_bytes <= 10);
        // Forgetting frees the bytes again.
        n.apply(vec![(b"a".to_vec(), Change::Forget)]);
        n.apply(vec![(b"d".to_vec(), small(5, &[0; 4]))]);
        assert_eq!(n.get(b"d"), Some((5, Newest::Value(Some(vec![0; 4])))));
    }
}
