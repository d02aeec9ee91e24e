//! The newest commit timestamp of every key written recently in a group,
//! kept in memory so that a transaction's write-conflict check ("was `key`
//! written after my start timestamp?") is a hash lookup instead of an LSM
//! range seek.
//!
//! The check is exact, not a cache that may miss: memory answers only when
//! its answer equals the store's, and says [`Newest::Unknown`] otherwise
//! (the caller then reads the store). Either way every replica reaches the
//! same decision, which applying requires, even though each replica hashes
//! keys differently.
//!
//! The table is a fixed array of two-way sets; a key lives in the set its
//! hash picks. Each set has a *floor*: every version of a key of that set
//! with a commit timestamp above the floor is accounted for by the key's
//! entry, whose timestamp is the newest of them. A set starts with the
//! state machine's `last_ts` as its floor (all versions in the store are at
//! or below it). A new key takes a free way or evicts the way holding the
//! older timestamp, and the evicted timestamp raises the floor: the evicted
//! key's versions are all at or below it. A key too long to keep, or a
//! version older than both ways (a two-phase commit applied late), raises
//! the floor to its own timestamp instead. So for `since` at or above the
//! floor the entry (or its absence) is the answer; below the floor it is
//! too, if the entry is above the floor (it is then the key's newest
//! version overall).
//!
//! The table is the storage crate's [`elastickv_storage::two_way`], so
//! every update is O(1) and the table never grows, shrinks or rotates.

use elastickv_storage::two_way::{Set, Tag, TwoWaySets, Way};
use elastickv_types::Timestamp;

/// Sets per group (two keys each).
const SETS: usize = 64 * 1024;
/// Keys longer than this are not kept (they raise their set's floor), which
/// bounds the table's key bytes at `2 * SETS * MAX_KEPT_KEY` (32 MiB).
const MAX_KEPT_KEY: usize = 256;

/// What memory knows about the versions of a key above some timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newest {
    /// The newest commit timestamp above the asked one, or `None` if the key
    /// has no version above it.
    Known(Option<Timestamp>),
    /// The asked timestamp is older than what memory covers: read the store.
    Unknown,
}

struct Kept {
    key: Box<[u8]>,
    ts: Timestamp,
}

impl Way for Kept {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn ts(&self) -> Timestamp {
        self.ts
    }
}

/// A set's ways and its floor: every version of its keys above the floor
/// is accounted for by the key's way.
type FloorSet = Set<Kept, Timestamp>;

fn note(set: &mut FloorSet, tag: Tag, key: Vec<u8>, ts: Timestamp, max_key: usize) {
    if let Some(i) = set.find(&key, tag) {
        if let Some(w) = set.way_mut(i) {
            w.ts = w.ts.max(ts);
        }
        return;
    }
    if ts <= set.extra {
        return;
    }
    let victim = set.victim();
    let victim_ts = set.way(victim).map_or(0, |w| w.ts);
    if key.len() > max_key || victim_ts >= ts {
        // Not kept: accounted for by the floor instead.
        set.extra = ts;
        return;
    }
    set.extra = set.extra.max(victim_ts);
    let kept = Kept {
        key: key.into_boxed_slice(),
        ts,
    };
    set.put(victim, tag, kept);
}

/// Recently written keys of one group with their newest commit timestamps.
pub struct RecentWrites {
    sets: TwoWaySets<Kept, Timestamp>,
    /// The floor of every set before the table exists.
    start: Timestamp,
    max_key: usize,
}

impl RecentWrites {
    /// Start empty over a store whose versions are all `<= last_ts`.
    pub fn new(last_ts: Timestamp) -> RecentWrites {
        RecentWrites::with_limits(last_ts, SETS, MAX_KEPT_KEY)
    }

    fn with_limits(last_ts: Timestamp, set_count: usize, max_key: usize) -> RecentWrites {
        RecentWrites {
            sets: TwoWaySets::new(set_count),
            start: last_ts,
            max_key,
        }
    }

    /// Forget everything: the store was replaced (a snapshot install) and
    /// all its versions are `<= last_ts`.
    pub fn reset(&mut self, last_ts: Timestamp) {
        *self = RecentWrites::with_limits(last_ts, self.sets.set_count(), self.max_key);
    }

    /// The newest version of `key` above `since`, if memory knows it.
    pub fn newest_above(&self, key: &[u8], since: Timestamp) -> Newest {
        let Some((set, tag)) = self.sets.set(key) else {
            // No table yet: nothing was written since `start`.
            return if since >= self.start {
                Newest::Known(None)
            } else {
                Newest::Unknown
            };
        };
        let floor = set.extra;
        let entry = set.find(key, tag).and_then(|i| set.way(i)).map(|w| w.ts);
        if since >= floor {
            return Newest::Known(entry.filter(|ts| *ts > since));
        }
        match entry {
            Some(ts) if ts > floor => Newest::Known(Some(ts)),
            _ => Newest::Unknown,
        }
    }

    /// Record the versions one apply batch committed to the store.
    /// `last_ts` is the state machine's `last_ts` after that batch.
    pub fn record(
        &mut self,
        written: impl IntoIterator<Item = (Vec<u8>, Timestamp)>,
        last_ts: Timestamp,
    ) {
        for (key, ts) in written {
            debug_assert!(ts <= last_ts, "a version above the applied last_ts");
            let (set, tag) = self.sets.set_mut(&key, &self.start);
            note(set, tag, key, ts, self.max_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn known_above_the_start_and_unknown_below() {
        let mut r = RecentWrites::new(10);
        assert_eq!(r.newest_above(b"a", 9), Newest::Unknown);
        assert_eq!(r.newest_above(b"a", 10), Newest::Known(None));
        r.record([(b"a".to_vec(), 12)], 12);
        assert_eq!(r.newest_above(b"a", 10), Newest::Known(Some(12)));
        assert_eq!(r.newest_above(b"a", 12), Newest::Known(None));
        assert_eq!(r.newest_above(b"b", 11), Newest::Known(None));
    }

    #[test]
    fn a_lower_commit_timestamp_recorded_later_keeps_the_newest() {
        // Two-phase commits may apply a version below one already applied.
        let mut r = RecentWrites::new(0);
        r.record([(b"a".to_vec(), 20)], 20);
        r.record([(b"a".to_vec(), 15)], 20);
        assert_eq!(r.newest_above(b"a", 16), Newest::Known(Some(20)));
    }

    #[test]
    fn an_eviction_raises_the_floor_of_its_set() {
        let mut r = RecentWrites::with_limits(5, 1, usize::MAX);
        r.record([(b"a".to_vec(), 6), (b"b".to_vec(), 7)], 7);
        // A third key evicts the older way (a at 6): the floor becomes 6.
        r.record([(b"c".to_vec(), 8)], 8);
        assert_eq!(r.newest_above(b"a", 5), Newest::Unknown);
        assert_eq!(r.newest_above(b"a", 6), Newest::Known(None));
        assert_eq!(r.newest_above(b"b", 6), Newest::Known(Some(7)));
        // Below the floor, a kept entry above it is still the newest.
        assert_eq!(r.newest_above(b"c", 1), Newest::Known(Some(8)));
        assert_eq!(r.newest_above(b"b", 1), Newest::Known(Some(7)));
    }

    #[test]
    fn a_version_older_than_both_ways_raises_the_floor_instead() {
        let mut r = RecentWrites::with_limits(0, 1, usize::MAX);
        r.record([(b"a".to_vec(), 10), (b"b".to_vec(), 11)], 11);
        // A two-phase commit applied late, below both kept versions.
        r.record([(b"c".to_vec(), 4)], 11);
        assert_eq!(r.newest_above(b"c", 3), Newest::Unknown);
        assert_eq!(r.newest_above(b"c", 4), Newest::Known(None));
        assert_eq!(r.newest_above(b"a", 4), Newest::Known(Some(10)));
    }

    #[test]
    fn long_keys_are_not_kept_but_accounted_for() {
        let mut r = RecentWrites::with_limits(0, 1, 4);
        r.record([(vec![1; 5], 3), (b"k".to_vec(), 4)], 4);
        assert_eq!(r.newest_above(&[1; 5], 2), Newest::Unknown);
        assert_eq!(r.newest_above(&[1; 5], 3), Newest::Known(None));
        assert_eq!(r.newest_above(b"k", 3), Newest::Known(Some(4)));
    }

    #[test]
    fn recently_written_keys_are_known_from_memory() {
        // Memory saves nothing unless it answers: 1 000 keys in 64 Ki sets
        // rarely share a set three ways.
        let mut r = RecentWrites::new(100);
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        r.record(keys.iter().cloned().zip(101..), 1100);
        let known = keys
            .iter()
            .zip(101..)
            .filter(|(k, ts)| r.newest_above(k, 100) == Newest::Known(Some(*ts)))
            .count();
        assert!(known >= 990, "{known} of 1000 known");
    }

    #[test]
    fn reset_forgets_and_covers_from_the_new_state() {
        let mut r = RecentWrites::new(0);
        r.record([(b"a".to_vec(), 5)], 5);
        r.reset(100);
        assert_eq!(r.newest_above(b"a", 50), Newest::Unknown);
        assert_eq!(r.newest_above(b"a", 100), Newest::Known(None));
    }

    proptest! {
        /// Against a model holding every version ever written: whenever
        /// memory answers, it answers what the full history says.
        #[test]
        fn agrees_with_the_full_history(
            batches in prop::collection::vec(
                prop::collection::vec((0u8..12, 1usize..4, 0u64..4, any::<bool>()), 0..6), 1..60),
            probes in prop::collection::vec((0u8..12, 1usize..4, 0u64..400), 1..40),
            set_count in 1usize..4,
            max_key in 1usize..4,
        ) {
            let mut r = RecentWrites::with_limits(0, set_count, max_key);
            let mut history: BTreeMap<Vec<u8>, Timestamp> = BTreeMap::new();
            let mut last_ts: Timestamp = 0;
            for batch in batches {
                let mut written = Vec::new();
                for (key, len, back, late_commit) in batch {
                    // Mostly new timestamps; sometimes a two-phase commit
                    // below last_ts.
                    let ts = if late_commit { last_ts.saturating_sub(back).max(1) } else { last_ts + 1 + back };
                    last_ts = last_ts.max(ts);
                    let key = vec![key; len];
                    let e = history.entry(key.clone()).or_insert(0);
                    *e = (*e).max(ts);
                    written.push((key, ts));
                }
                r.record(written, last_ts);
                for (key, len, since) in &probes {
                    let key = vec![*key; *len];
                    let truth = history.get(&key).copied().filter(|t| t > since);
                    if let Newest::Known(got) = r.newest_above(&key, *since) {
                        prop_assert_eq!(got, truth);
                    }
                }
            }
        }
    }
}
