//! The newest commit timestamp of every key written recently in a group,
//! kept in memory so that a transaction's write-conflict check ("was `key`
//! written after my start timestamp?") is a hash lookup instead of an LSM
//! range seek.
//!
//! The check is exact, not a cache that may miss: every version with a
//! commit timestamp above [`RecentWrites::covers_above`] is recorded here, so
//! for `since >= covers_above` the answer from memory equals the answer from
//! the store. Older `since` values (a WATCH held for long, a transaction
//! started before a rotation) fall back to the store. Either way every
//! replica reaches the same decision, which applying requires.
//!
//! Why the bound holds: the state machine's `last_ts` is at least the commit
//! timestamp of every version it has applied. A generation of the map starts
//! empty while `last_ts` is some `t`; from then on every applied version is
//! recorded, so all versions not in it were applied earlier and are `<= t`.
//! Two generations are kept: when the newer one is full it becomes the older
//! one (the previous older one is dropped) and the bound rises to the `t` at
//! which the now-older generation began. Memory is bounded by the per-
//! generation limits; a busier group just gets a shorter window.

use elastickv_types::Timestamp;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Entries per generation before it rotates.
const MAX_KEYS_PER_GENERATION: usize = 128 * 1024;
/// Key bytes per generation before it rotates (keys may be up to the engine's
/// key limit, so the count alone would not bound memory).
const MAX_KEY_BYTES_PER_GENERATION: usize = 32 << 20;

/// What memory knows about the versions of a key above some timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newest {
    /// The newest commit timestamp above the asked one, or `None` if the key
    /// has no version above it.
    Known(Option<Timestamp>),
    /// The asked timestamp is older than what memory covers: read the store.
    Unknown,
}

#[derive(Default)]
struct Generation {
    keys: HashMap<Vec<u8>, Timestamp>,
    key_bytes: usize,
    /// The state machine's `last_ts` when this generation started.
    started_at: Timestamp,
}

impl Generation {
    fn starting_at(started_at: Timestamp) -> Generation {
        Generation {
            started_at,
            ..Generation::default()
        }
    }

    fn full(&self, max_keys: usize, max_key_bytes: usize) -> bool {
        self.keys.len() >= max_keys || self.key_bytes >= max_key_bytes
    }
}

/// Recently written keys of one group with their newest commit timestamps.
pub struct RecentWrites {
    older: Generation,
    newer: Generation,
    max_keys: usize,
    max_key_bytes: usize,
}

impl RecentWrites {
    /// Start empty over a store whose versions are all `<= last_ts`.
    pub fn new(last_ts: Timestamp) -> RecentWrites {
        RecentWrites::with_limits(
            last_ts,
            MAX_KEYS_PER_GENERATION,
            MAX_KEY_BYTES_PER_GENERATION,
        )
    }

    fn with_limits(last_ts: Timestamp, max_keys: usize, max_key_bytes: usize) -> RecentWrites {
        assert!(max_keys > 0 && max_key_bytes > 0);
        RecentWrites {
            older: Generation::starting_at(last_ts),
            newer: Generation::starting_at(last_ts),
            max_keys,
            max_key_bytes,
        }
    }

    /// Forget everything: the store was replaced (a snapshot install) and
    /// all its versions are `<= last_ts`.
    pub fn reset(&mut self, last_ts: Timestamp) {
        *self = RecentWrites::with_limits(last_ts, self.max_keys, self.max_key_bytes);
    }

    /// Every version above this timestamp is recorded here.
    pub fn covers_above(&self) -> Timestamp {
        self.older.started_at
    }

    /// The newest version of `key` above `since`, if memory covers `since`.
    pub fn newest_above(&self, key: &[u8], since: Timestamp) -> Newest {
        if since < self.covers_above() {
            return Newest::Unknown;
        }
        let newest = match (self.newer.keys.get(key), self.older.keys.get(key)) {
            (Some(a), Some(b)) => Some(*a.max(b)),
            (a, b) => a.or(b).copied(),
        };
        Newest::Known(newest.filter(|ts| *ts > since))
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
            match self.newer.keys.entry(key) {
                Entry::Occupied(mut o) => {
                    let newest = o.get_mut();
                    *newest = (*newest).max(ts);
                }
                Entry::Vacant(v) => {
                    self.newer.key_bytes += v.key().len();
                    v.insert(ts);
                }
            }
        }
        if self.newer.full(self.max_keys, self.max_key_bytes) {
            let newer = std::mem::replace(&mut self.newer, Generation::starting_at(last_ts));
            self.older = newer;
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
    fn rotation_raises_the_bound_to_the_start_of_the_kept_generation() {
        let mut r = RecentWrites::with_limits(5, 2, usize::MAX);
        r.record([(b"a".to_vec(), 6), (b"b".to_vec(), 7)], 7);
        // The first generation (started at 5) became the older one.
        assert_eq!(r.covers_above(), 5);
        r.record([(b"c".to_vec(), 8), (b"d".to_vec(), 9)], 9);
        // The generation that started at 7 is now the older one; a and b
        // (6 and 7) are forgotten, which is fine: they are not above 7.
        assert_eq!(r.covers_above(), 7);
        assert_eq!(r.newest_above(b"a", 6), Newest::Unknown);
        assert_eq!(r.newest_above(b"a", 7), Newest::Known(None));
        assert_eq!(r.newest_above(b"c", 7), Newest::Known(Some(8)));
    }

    #[test]
    fn key_bytes_bound_a_generation_too() {
        let mut r = RecentWrites::with_limits(0, usize::MAX, 8);
        r.record([(vec![1; 8], 1)], 1);
        assert_eq!(r.covers_above(), 0);
        r.record([(vec![2; 8], 2)], 2);
        assert_eq!(r.covers_above(), 1);
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
                prop::collection::vec((0u8..12, 0u64..4, any::<bool>()), 0..6), 1..60),
            probes in prop::collection::vec((0u8..12, 0u64..400), 1..40),
            max_keys in 1usize..6,
        ) {
            let mut r = RecentWrites::with_limits(0, max_keys, usize::MAX);
            let mut history: BTreeMap<u8, Timestamp> = BTreeMap::new();
            let mut last_ts: Timestamp = 0;
            for batch in batches {
                let mut written = Vec::new();
                for (key, back, late_commit) in batch {
                    // Mostly new timestamps; sometimes a two-phase commit
                    // below last_ts.
                    let ts = if late_commit { last_ts.saturating_sub(back).max(1) } else { last_ts + 1 + back };
                    last_ts = last_ts.max(ts);
                    let e = history.entry(key).or_insert(0);
                    *e = (*e).max(ts);
                    written.push((vec![key], ts));
                }
                r.record(written, last_ts);
                for (key, since) in &probes {
                    let truth = history.get(key).copied().filter(|t| t > since);
                    match r.newest_above(&[*key], *since) {
                        Newest::Known(got) => prop_assert_eq!(got, truth),
                        Newest::Unknown => prop_assert!(*since < r.covers_above()),
                    }
                }
            }
        }
    }
}
