//! Identifiers for nodes, Raft groups and client requests.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Raft node id. Derived from the operator-facing `--raftId` name (e.g. `n1`)
/// by [`node_id_from_name`], so every node computes the same id for a peer from
/// the bootstrap member list without a registry.
pub type NodeId = u64;

/// A Raft group (shard) id. Group 0 is the default group, which also holds
/// the route catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u64);

/// The default group: hosts the route catalog and, without `--shardRanges`,
/// the whole key space.
pub const DEFAULT_GROUP: GroupId = GroupId(1);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identity of one client write, used by the state machine to apply a write
/// retried after a leader change at most once (Raft dissertation §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u128);

impl RequestId {
    /// A fresh id created at `now_ms` (Unix ms): the time in the upper 48 bits
    /// lets the state machine expire and prune its de-duplication table in
    /// time order; 80 random bits make collisions negligible.
    pub fn new(now_ms: u64) -> Self {
        let random = random_u128() & ((1u128 << 80) - 1);
        RequestId((u128::from(now_ms & ((1 << 48) - 1)) << 80) | random)
    }

    /// Creation time in Unix ms.
    pub fn time_ms(&self) -> u64 {
        (self.0 >> 80) as u64
    }
}

fn random_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per process and per-thread; mixing
    // in a counter and the time keeps ids unique without pulling `rand` here.
    let mut out = 0u128;
    for half in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u8(half);
        out = (out << 64) | u128::from(h.finish());
    }
    out
}

/// Stable 64-bit id for a node name (FNV-1a). Never 0, which openraft
/// tolerates but operators find confusing in logs.
pub fn node_id_from_name(name: &str) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash == 0 {
        1
    } else {
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id_from_name("n1"), node_id_from_name("n1"));
        assert_ne!(node_id_from_name("n1"), node_id_from_name("n2"));
        assert_ne!(node_id_from_name(""), 0);
    }

    #[test]
    fn request_ids_differ() {
        let a = RequestId::new(1_700_000_000_000);
        let b = RequestId::new(1_700_000_000_000);
        assert_ne!(a, b);
        assert_eq!(a.time_ms(), 1_700_000_000_000);
    }
}
