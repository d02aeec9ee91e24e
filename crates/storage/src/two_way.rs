//! A fixed table of two-way sets keyed by byte strings, for in-memory
//! records that follow the writes of a group on the apply thread.
//!
//! A key may sit in one of the two ways of the set its hash picks; a new
//! key takes a free way or evicts the one written longer ago. Every
//! operation is O(1) and the table never grows, shrinks or rotates: it is
//! allocated whole on first use. (Generations of hash maps stalled the
//! apply thread for 10–30 ms whenever one was dropped or resized.) Each set
//! carries caller state `X` beside its ways (a floor, say), and a few bits
//! of each way's key hash: a probe compares a key only with a way whose
//! tag matches, so a miss (and the other way of a hit) costs no load of a
//! key stored on the heap. Used by the
//! record of newest versions here and by the raft crate's write-conflict
//! memory.

use elastickv_types::Timestamp;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// What a way holds: a key and the timestamp that decides eviction.
pub trait Way {
    fn key(&self) -> &[u8];
    fn ts(&self) -> Timestamp;
}

impl<T: Way> Way for Box<T> {
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn ts(&self) -> Timestamp {
        (**self).ts()
    }
}

/// A few bits of a key's hash kept beside each way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(u32);

/// One set: two ways, their tags and the caller's per-set state.
pub struct Set<E, X> {
    ways: [Option<E>; 2],
    /// `tags[i]` is the tag of `ways[i]`'s key (meaningless while empty).
    tags: [Tag; 2],
    pub extra: X,
}

impl<E: Way, X> Set<E, X> {
    /// The way holding `key` (whose tag is `tag`), if any.
    pub fn find(&self, key: &[u8], tag: Tag) -> Option<usize> {
        (0..2)
            .find(|&i| self.tags[i] == tag && self.ways[i].as_ref().is_some_and(|e| e.key() == key))
    }

    /// The way a new key takes: a free one, else the one written longer ago.
    pub fn victim(&self) -> usize {
        match &self.ways {
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), Some(b)] => usize::from(a.ts() > b.ts()),
        }
    }

    /// What way `i` holds.
    pub fn way(&self, i: usize) -> Option<&E> {
        self.ways[i].as_ref()
    }

    /// What way `i` holds, to update in place (its key must not change).
    pub fn way_mut(&mut self, i: usize) -> Option<&mut E> {
        self.ways[i].as_mut()
    }

    /// Empties way `i`.
    pub fn take(&mut self, i: usize) -> Option<E> {
        self.ways[i].take()
    }

    /// Puts `entry` (whose key's tag is `tag`) into way `i`, returning
    /// what the way held.
    pub fn put(&mut self, i: usize, tag: Tag, entry: E) -> Option<E> {
        debug_assert!(self.find(entry.key(), tag).is_none_or(|j| j == i));
        self.tags[i] = tag;
        self.ways[i].replace(entry)
    }
}

/// The sets; empty until the first write (an idle group costs nothing).
pub struct TwoWaySets<E, X> {
    sets: Vec<Set<E, X>>,
    set_count: usize,
    hasher: RandomState,
}

impl<E: Way, X: Clone> TwoWaySets<E, X> {
    pub fn new(set_count: usize) -> Self {
        assert!(set_count > 0);
        TwoWaySets {
            sets: Vec::new(),
            set_count,
            hasher: RandomState::new(),
        }
    }

    pub fn set_count(&self) -> usize {
        self.set_count
    }

    /// `key`'s set index and tag, from one hash: the index from its low
    /// bits (by modulo, so in range whatever the hash), the tag from its
    /// high bits.
    fn probe(&self, key: &[u8]) -> (usize, Tag) {
        let h = self.hasher.hash_one(key);
        ((h % self.set_count as u64) as usize, Tag((h >> 32) as u32))
    }

    /// `key`'s set and tag, or `None` while nothing was written.
    pub fn set(&self, key: &[u8]) -> Option<(&Set<E, X>, Tag)> {
        let (i, tag) = self.probe(key);
        Some((self.sets.get(i)?, tag))
    }

    /// `key`'s set for writing, and its tag; on first use every set starts
    /// with `init`.
    pub fn set_mut(&mut self, key: &[u8], init: &X) -> (&mut Set<E, X>, Tag) {
        if self.sets.is_empty() {
            self.sets = (0..self.set_count)
                .map(|_| Set {
                    ways: [None, None],
                    tags: [Tag(0), Tag(0)],
                    extra: init.clone(),
                })
                .collect();
        }
        let (i, tag) = self.probe(key);
        (&mut self.sets[i], tag)
    }
}
