//! A fixed table of two-way sets keyed by byte strings, for in-memory
//! records that follow the writes of a group on the apply thread.
//!
//! A key may sit in one of the two ways of the set its hash picks; a new
//! key takes a free way or evicts the one written longer ago. Every
//! operation is O(1) and the table never grows, shrinks or rotates: it is
//! allocated whole on first use. (Generations of hash maps stalled the
//! apply thread for 10–30 ms whenever one was dropped or resized.) Each set
//! carries caller state `X` beside its ways (a floor, say). Used by the
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

/// One set: two ways and the caller's per-set state.
pub struct Set<E, X> {
    pub ways: [Option<E>; 2],
    pub extra: X,
}

impl<E: Way, X> Set<E, X> {
    /// The way holding `key`, if any.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        (0..2).find(|&i| self.ways[i].as_ref().is_some_and(|e| e.key() == key))
    }

    /// The way a new key takes: a free one, else the one written longer ago.
    pub fn victim(&self) -> usize {
        match &self.ways {
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), Some(b)] => usize::from(a.ts() > b.ts()),
        }
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

    fn index(&self, key: &[u8]) -> usize {
        // The modulo keeps the index in range whatever the hash.
        self.hasher.hash_one(key) as usize % self.set_count
    }

    /// `key`'s set, or `None` while nothing was written.
    pub fn set(&self, key: &[u8]) -> Option<&Set<E, X>> {
        self.sets.get(self.index(key))
    }

    /// `key`'s set for writing; on first use every set starts with `init`.
    pub fn set_mut(&mut self, key: &[u8], init: &X) -> &mut Set<E, X> {
        if self.sets.is_empty() {
            self.sets = (0..self.set_count)
                .map(|_| Set {
                    ways: [None, None],
                    extra: init.clone(),
                })
                .collect();
        }
        let i = self.index(key);
        &mut self.sets[i]
    }
}
