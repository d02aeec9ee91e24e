//! Hybrid logical clock.
//!
//! A timestamp is 64 bits: the upper 48 are Unix milliseconds, the lower 16 a
//! logical counter. Issuing one is a single CAS loop on an atomic — no
//! consensus round-trip per timestamp.
//!
//! Monotonicity across restarts and leader changes comes from a *physical
//! ceiling*: a group leader commits `now + window` through Raft ahead of
//! time (see `elastickv-raft`'s proposer and node), every replica records
//! the committed ceiling with [`Hlc::observe_ceiling`], and a node that
//! becomes a group's leader first takes its clock past that group's
//! ceiling with [`Hlc::pass_ceiling`] — normally by waiting for the wall
//! clock to get there, since the ceiling leads it by at most a second; a
//! jump only for a clock far behind. A leader issues no timestamp at or
//! above its group's committed ceiling — the proposer renews the ceiling
//! through Raft before a batch whose timestamps would reach it — so a new
//! leader never issues a timestamp at or below one the old leader may have
//! issued, however skewed the clocks. [`Hlc::now_within_ceiling`] is the
//! same check for a single timestamp against the node-wide ceiling.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A hybrid-logical-clock timestamp.
pub type Timestamp = u64;

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// Compose a timestamp from milliseconds and a logical counter.
pub fn compose(physical_ms: u64, logical: u16) -> Timestamp {
    (physical_ms << LOGICAL_BITS) | u64::from(logical)
}

/// Physical milliseconds of a timestamp.
pub fn physical_ms(ts: Timestamp) -> u64 {
    ts >> LOGICAL_BITS
}

/// Logical counter of a timestamp.
pub fn logical(ts: Timestamp) -> u16 {
    (ts & LOGICAL_MASK) as u16
}

/// Where physical time comes from; injectable so tests and the chaos harness
/// can skew or freeze a node's clock.
pub trait ClockSource: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl ClockSource for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The issued timestamp would reach the committed ceiling: the leader must
/// renew its ceiling through Raft before issuing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HLC physical time {physical_ms} ms reached the committed ceiling {ceiling_ms} ms")]
pub struct CeilingExceeded {
    pub physical_ms: u64,
    pub ceiling_ms: u64,
}

/// A node's hybrid logical clock, shared by all its Raft groups.
pub struct Hlc {
    /// Last timestamp issued or observed; every issued timestamp exceeds it.
    last: AtomicU64,
    /// Highest physical ceiling (ms) committed through Raft that this node has
    /// applied. 0 while none is known.
    ceiling_ms: AtomicU64,
    /// Skew added to the clock source, in ms; the chaos harness moves it.
    offset_ms: AtomicI64,
    clock: Arc<dyn ClockSource>,
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("last", &self.last.load(Ordering::Relaxed))
            .field("ceiling_ms", &self.ceiling_ms.load(Ordering::Relaxed))
            .field("offset_ms", &self.offset_ms.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Hlc {
    fn default() -> Self {
        Hlc::new(Arc::new(SystemClock))
    }
}

impl Hlc {
    pub fn new(clock: Arc<dyn ClockSource>) -> Self {
        Hlc {
            last: AtomicU64::new(0),
            ceiling_ms: AtomicU64::new(0),
            offset_ms: AtomicI64::new(0),
            clock,
        }
    }

    /// Physical time as this node sees it (clock source plus injected skew).
    pub fn physical_now_ms(&self) -> u64 {
        let base = self.clock.now_ms() as i64;
        (base + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Skew this node's clock by `offset_ms` (chaos harness, tests).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Issue a timestamp strictly greater than every one issued or observed.
    pub fn now(&self) -> Timestamp {
        let physical = compose(self.physical_now_ms(), 0);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = physical.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }

    /// Issue a timestamp as a leader: like [`Hlc::now`] but refuses to reach the
    /// committed ceiling, so a successor that lifts itself above the ceiling
    /// can never issue one at or below ours. Without a known ceiling (a fresh
    /// cluster before the first one commits) it behaves like `now`.
    pub fn now_within_ceiling(&self) -> Result<Timestamp, CeilingExceeded> {
        let ceiling_ms = self.ceiling_ms.load(Ordering::Acquire);
        let ts = self.now();
        if ceiling_ms != 0 && physical_ms(ts) >= ceiling_ms {
            return Err(CeilingExceeded {
                physical_ms: physical_ms(ts),
                ceiling_ms,
            });
        }
        Ok(ts)
    }

    /// Make every later timestamp exceed `ts` (a timestamp seen in an applied
    /// write or a message from another node).
    pub fn observe(&self, ts: Timestamp) {
        self.last.fetch_max(ts, Ordering::AcqRel);
    }

    /// Record a physical ceiling committed through Raft.
    pub fn observe_ceiling(&self, ceiling_ms: u64) {
        self.ceiling_ms.fetch_max(ceiling_ms, Ordering::AcqRel);
    }

    /// The highest committed ceiling known, in ms (0 if none).
    pub fn ceiling_ms(&self) -> u64 {
        self.ceiling_ms.load(Ordering::Acquire)
    }

    /// Called when this node becomes a group's leader, after it has applied
    /// the group's log, with the group's committed ceiling: every later
    /// timestamp exceeds anything a predecessor could have issued. The
    /// caller waits for the wall clock to pass a near ceiling first, so
    /// that this lifts the clock only when it runs far behind.
    pub fn pass_ceiling(&self, ceiling_ms: u64) {
        if ceiling_ms != 0 {
            self.observe(compose(ceiling_ms, 0));
        }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves by hand.
    struct ManualClock(AtomicU64);
    impl ClockSource for ManualClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn manual(ms: u64) -> (Arc<ManualClock>, Hlc) {
        let clock = Arc::new(ManualClock(AtomicU64::new(ms)));
        (clock.clone(), Hlc::new(clock))
    }

    #[test]
    fn layout_is_48_plus_16_bits() {
        let ts = compose(1_700_000_000_000, 7);
        assert_eq!(physical_ms(ts), 1_700_000_000_000);
        assert_eq!(logical(ts), 7);
    }

    #[test]
    fn strictly_increasing_even_when_clock_stands_still_or_goes_back() {
        let (clock, hlc) = manual(1000);
        let a = hlc.now();
        let b = hlc.now();
        assert!(b > a);
        clock.0.store(500, Ordering::SeqCst);
        let c = hlc.now();
        assert!(c > b, "clock went back but HLC must not");
        assert_eq!(physical_ms(c), 1000);
    }

    #[test]
    fn observe_pushes_past_remote_timestamps() {
        let (_clock, hlc) = manual(1000);
        hlc.observe(compose(5000, 3));
        assert!(hlc.now() > compose(5000, 3));
    }

    #[test]
    fn skew_moves_physical_time() {
        let (_clock, hlc) = manual(10_000);
        hlc.set_offset_ms(-3_000);
        assert_eq!(hlc.physical_now_ms(), 7_000);
        hlc.set_offset_ms(2_000);
        assert_eq!(physical_ms(hlc.now()), 12_000);
    }

    /// The old leader's clock runs 10 s ahead; the new leader's is right. Once
    /// the new leader lifts above the committed ceiling, none of its
    /// timestamps is at or below any the old leader issued.
    #[test]
    fn new_leader_never_reissues_below_skewed_old_leader() {
        let (_c1, old_leader) = manual(100_000);
        old_leader.set_offset_ms(10_000);
        // The old leader committed a ceiling 3 s ahead of *its* clock.
        let ceiling = old_leader.physical_now_ms() + 3_000;
        old_leader.observe_ceiling(ceiling);
        let mut issued_by_old = Vec::new();
        while let Ok(ts) = old_leader.now_within_ceiling() {
            issued_by_old.push(ts);
            if issued_by_old.len() > 10 {
                break;
            }
        }
        // Simulate the old clock racing up to the ceiling: it must refuse.
        old_leader.observe(compose(ceiling - 1, u16::MAX));
        assert!(old_leader.now_within_ceiling().is_err());

        let (_c2, new_leader) = manual(100_000);
        new_leader.observe_ceiling(ceiling); // applied from the Raft log
        new_leader.pass_ceiling(ceiling);
        let first = new_leader.now();
        let max_old = old_leader.last();
        assert!(first > max_old, "{first} must exceed {max_old}");
    }

    #[test]
    fn concurrent_issue_never_duplicates() {
        let hlc = Arc::new(Hlc::default());
        let mut handles = Vec::new();
        for _ in 0..4 {
            let hlc = hlc.clone();
            handles.push(std::thread::spawn(move || {
                (0..10_000).map(|_| hlc.now()).collect::<Vec<_>>()
            }));
        }
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
