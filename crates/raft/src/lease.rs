//! The leader's read lease: while it holds, a leader answers read indexes
//! from its own state, without a round of heartbeats to a quorum.
//!
//! Why it is safe (openraft 0.9's follower rules, our vote fence, one
//! assumption about clocks):
//!
//! * A follower that accepts an AppendEntries from the leader of term T at
//!   time `r` refuses every vote request until `r + leader_lease`, where
//!   openraft's `leader_lease` is `election_timeout_max`.
//! * When a quorum acknowledged a message the leader sent at or after
//!   `t` (a read-index round started at `t`, or an entry proposed at `t` and
//!   then committed), every member of that quorum received it at some
//!   `r >= t`, so none of them votes before `t + election_timeout_max`. Any
//!   new leader needs a vote from one of them: no other leader can exist,
//!   and no write can commit elsewhere, before then.
//! * A quorum member that crashes and restarts forgets when it last heard
//!   from the leader; the node fences votes for `election_timeout_max` after
//!   opening a group that has a stored vote (`service.rs`), which restores
//!   the guarantee.
//! * Monotonic clocks on different machines advance at nearly the same rate.
//!   The lease is only `read_lease` long (default: `election_timeout_min`,
//!   half of `election_timeout_max`), so even a 2x rate difference stays
//!   safe.
//!
//! A lease is valid only for the term it was granted in, and a read under
//! it still waits for the leader's last appended entry to be applied, like a
//! read-index read.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct ReadLease {
    duration: Duration,
    /// The term the lease was confirmed in, and when it runs out.
    state: Mutex<Option<(u64, Instant)>>,
}

impl ReadLease {
    /// `duration` zero disables the lease (every read takes a round).
    pub fn new(duration: Duration) -> Self {
        ReadLease {
            duration,
            state: Mutex::new(None),
        }
    }

    /// A quorum acknowledged this node as leader of `term` in answer to a
    /// message sent at or after `sent_at`.
    pub fn confirm(&self, term: u64, sent_at: Instant) {
        if self.duration.is_zero() {
            return;
        }
        let until = sent_at + self.duration;
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match *state {
            Some((t, u)) if t == term && u >= until => {}
            Some((t, _)) if t > term => {}
            _ => *state = Some((term, until)),
        }
    }

    /// How long the lease still holds for `term` at `now` (None: it does
    /// not).
    pub fn remaining(&self, term: u64, now: Instant) -> Option<Duration> {
        let state = self.state.lock().ok()?;
        match *state {
            Some((t, until)) if t == term && now < until => Some(until - now),
            _ => None,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_in_its_term_and_until_it_runs_out() {
        let lease = ReadLease::new(Duration::from_millis(600));
        let t0 = Instant::now();
        assert_eq!(
            lease.remaining(3, t0),
            None,
            "no lease before a confirmation"
        );
        lease.confirm(3, t0);
        assert_eq!(lease.remaining(3, t0), Some(Duration::from_millis(600)));
        assert_eq!(lease.remaining(4, t0), None, "another term");
        assert_eq!(lease.remaining(3, t0 + Duration::from_millis(600)), None);
        // An older confirmation never shortens it; a newer one extends it.
        lease.confirm(3, t0 + Duration::from_millis(100));
        lease.confirm(3, t0);
        assert_eq!(
            lease.remaining(3, t0 + Duration::from_millis(650)),
            Some(Duration::from_millis(50))
        );
        // A confirmation from an older term is ignored once a newer one
        // exists; a newer term replaces the lease.
        lease.confirm(5, t0);
        lease.confirm(4, t0 + Duration::from_millis(300));
        assert_eq!(lease.remaining(4, t0), None);
        assert!(lease.remaining(5, t0).is_some());
    }

    #[test]
    fn zero_duration_never_holds() {
        let lease = ReadLease::new(Duration::ZERO);
        let t0 = Instant::now();
        lease.confirm(1, t0);
        assert_eq!(lease.remaining(1, t0), None);
    }
}
