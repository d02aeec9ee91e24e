//! How much of one group's Raft log is on this node's disk.
//!
//! openraft 0.9's core waits for the flush callback of every append before
//! it does anything else, so a leader that completed its own appends only
//! after the fsync stalled for the length of every fsync, and its followers
//! received each entry only after the leader's fsync. The Raft dissertation
//! (§10.2.1) lets the leader write its log in parallel with replication, as
//! long as an entry counts as committed only once a majority holds it
//! durably. We get that without changing openraft:
//!
//! - the leader's log store completes its own appends at once, before the
//!   fsync (`log_store.rs`), so openraft counts the leader in the quorum
//!   early and replicates without waiting;
//! - no state machine applies an entry before its own log holds it durably
//!   (`StateMachine::apply` waits here), so nothing reaches a client, a
//!   reader or a snapshot before the leader's copy is on disk — together with
//!   the follower whose durable acknowledgement completed the quorum, that
//!   is a majority;
//! - the commit index a leader sends to its followers is capped at what its
//!   own disk holds (`network.rs`), so a follower never applies an entry that
//!   is durable on a minority only.
//!
//! An entry openraft considered committed can therefore still vanish if the
//! leader's machine crashes before its fsync (a killed process loses
//! nothing: every write reaches the OS at once); nobody has seen it then,
//! and the client's write ends in a timeout and is retried (de-duplicated),
//! exactly as for a write whose leader crashed before the quorum. Such a
//! leader must not lead on in the same term after its restart, or it would
//! re-create entries its followers hold under the same log ids: its log
//! store reports its own leadership as not granted (`LogStore::read_vote`).

use crate::types::{LogId, StorageError};
use openraft::{AnyError, StorageIOError};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Every entry up to this index is on disk (`None`: not even index 0).
    index: Option<u64>,
    /// The entry at `index`, when known (a truncation forgets it until the
    /// next fsync).
    log_id: Option<LogId>,
    /// An fsync failed: nothing further can be trusted to be durable.
    failed: bool,
}

/// Durable point of one group's log, shared by its log store, state
/// machine and network.
#[derive(Debug)]
pub struct Durability {
    state: watch::Sender<State>,
    /// Highest commit index held back from followers since the last kick.
    held_back: AtomicU64,
    /// Highest commit index sent to any follower.
    sent_commit: AtomicU64,
    /// Woken when a commit index is held back.
    held: Notify,
}

impl Durability {
    /// Starting with everything up to `last` on disk (the node syncs the
    /// engine before it opens any group).
    pub fn new(last: Option<LogId>) -> Self {
        let (state, _) = watch::channel(State {
            index: last.map(|l| l.index),
            log_id: last,
            failed: false,
        });
        Durability {
            state,
            held_back: AtomicU64::new(0),
            sent_commit: AtomicU64::new(0),
            held: Notify::new(),
        }
    }

    /// Everything up to `log_id` is on disk (called after an fsync, in
    /// append order).
    pub fn mark(&self, log_id: LogId) {
        self.state.send_if_modified(|s| {
            let index = Some(log_id.index);
            if index > s.index || s.log_id.is_none() && index == s.index {
                s.index = index;
                s.log_id = Some(log_id);
                true
            } else {
                false
            }
        });
    }

    /// An fsync failed.
    pub fn fail(&self) {
        self.state.send_modify(|s| s.failed = true);
    }

    /// Entries from `index` on were removed. Callers first wait for every
    /// earlier fsync, so no mark of a removed entry arrives afterwards.
    pub fn truncated(&self, index: u64) {
        self.state.send_if_modified(|s| {
            if s.index >= Some(index) {
                s.index = index.checked_sub(1);
                s.log_id = None;
                true
            } else {
                false
            }
        });
    }

    /// Wait until the log is on disk up to `index`.
    pub async fn wait_for(&self, index: u64) -> Result<(), StorageError> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| s.failed || s.index >= Some(index))
            .await
            .map_err(|e| write_err(&e))?;
        if state.failed {
            return Err(write_err(&std::io::Error::other(
                "an fsync of the Raft log failed",
            )));
        }
        Ok(())
    }

    /// The durable point: its index, and its log id when known (not just
    /// after a truncation).
    pub fn durable(&self) -> (Option<u64>, Option<LogId>) {
        let state = self.state.borrow();
        (state.index, state.log_id)
    }

    /// The commit index a leader may tell its followers: `commit`, capped at
    /// its own durable point.
    pub fn cap_commit(&self, commit: Option<LogId>) -> Option<LogId> {
        let c = commit?;
        let durable = self.state.borrow().log_id;
        let sent = match durable {
            Some(d) if d.index >= c.index => Some(c),
            _ => {
                self.held_back.fetch_max(c.index, Ordering::AcqRel);
                self.held.notify_one();
                durable
            }
        };
        if let Some(s) = sent {
            self.sent_commit.fetch_max(s.index, Ordering::AcqRel);
        }
        sent
    }

    /// A commit index held back from followers that no later message has
    /// carried yet, once the log is durable up to it; waits for one.
    /// The caller then sends a heartbeat so idle followers catch up.
    pub async fn next_overdue_commit(
        &self,
        grace: std::time::Duration,
    ) -> Result<u64, StorageError> {
        loop {
            self.held.notified().await;
            let wanted = self.held_back.load(Ordering::Acquire);
            self.wait_for(wanted).await?;
            // Under load the next AppendEntries carries it anyway.
            tokio::time::sleep(grace).await;
            if self.sent_commit.load(Ordering::Acquire) < wanted {
                return Ok(wanted);
            }
        }
    }
}

fn write_err(e: &(impl std::error::Error + 'static)) -> StorageError {
    StorageIOError::write_logs(AnyError::new(e)).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;
    use std::sync::Arc;
    use std::time::Duration;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn wait_in_task(
        d: &Arc<Durability>,
        index: u64,
    ) -> tokio::task::JoinHandle<Result<(), StorageError>> {
        let d = d.clone();
        tokio::spawn(async move { d.wait_for(index).await })
    }

    #[test]
    fn commit_is_capped_at_the_durable_point() {
        let d = Durability::new(Some(id(1, 5)));
        assert_eq!(d.cap_commit(Some(id(1, 4))), Some(id(1, 4)));
        assert_eq!(d.cap_commit(Some(id(1, 9))), Some(id(1, 5)));
        d.mark(id(1, 9));
        assert_eq!(d.cap_commit(Some(id(1, 9))), Some(id(1, 9)));
        assert_eq!(d.cap_commit(None), None);
    }

    #[test]
    fn truncation_forgets_removed_entries() {
        let d = Durability::new(Some(id(1, 9)));
        d.truncated(7);
        assert_eq!(d.durable().0, Some(6));
        // The entry at 6 is not known: nothing is sent until the next mark.
        assert_eq!(d.cap_commit(Some(id(1, 6))), None);
        d.mark(id(2, 6));
        assert_eq!(d.cap_commit(Some(id(1, 6))), Some(id(1, 6)));
        d.truncated(20);
        assert_eq!(d.durable().0, Some(6));
    }

    #[test]
    fn marks_never_move_back() {
        let d = Durability::new(None);
        d.mark(id(1, 8));
        d.mark(id(1, 3));
        assert_eq!(d.durable().0, Some(8));
    }

    #[tokio::test]
    async fn index_zero_waits_for_its_mark() {
        let d = Arc::new(Durability::new(None));
        let waiter = wait_in_task(&d, 0);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.mark(id(0, 0));
        assert!(waiter.await.is_ok_and(|r| r.is_ok()));
    }

    #[tokio::test]
    async fn waiters_wake_on_marks_and_fail_on_fsync_errors() {
        let d = Arc::new(Durability::new(None));
        let waiter = wait_in_task(&d, 3);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.mark(id(1, 2));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.mark(id(1, 3));
        assert!(waiter.await.is_ok_and(|r| r.is_ok()));

        let failing = wait_in_task(&d, 10);
        tokio::task::yield_now().await;
        d.fail();
        assert!(failing.await.is_ok_and(|r| r.is_err()));
    }

    #[tokio::test]
    async fn a_held_back_commit_becomes_overdue_once_durable() {
        let d = Arc::new(Durability::new(Some(id(1, 1))));
        assert_eq!(d.cap_commit(Some(id(1, 4))), Some(id(1, 1)));
        let overdue = tokio::spawn({
            let d = d.clone();
            async move { d.next_overdue_commit(Duration::from_millis(1)).await }
        });
        d.mark(id(1, 4));
        let wanted = tokio::time::timeout(Duration::from_secs(5), overdue).await;
        assert!(matches!(wanted, Ok(Ok(Ok(4)))), "{wanted:?}");
    }
}
