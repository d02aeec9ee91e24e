//! Group commit: one fsync makes the log appends of every group durable.
//!
//! Log stores write entries into the engine without syncing and hand their
//! openraft callback to the [`GroupCommit`] thread. The thread takes every
//! pending callback, issues one `Engine::sync`, and only then completes them,
//! so nothing is acknowledged before it is on disk, while concurrent appends
//! of all groups share each fsync.

use elastickv_storage::Engine;
use openraft::storage::LogFlushed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use crate::types::TypeConfig;

/// Upper bound of callbacks completed by one fsync; keeps latency bounded
/// under a flood of appends.
const MAX_CALLBACKS_PER_SYNC: usize = 4096;

enum Waiter {
    Log(LogFlushed<TypeConfig>),
    Notify(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

/// Counters exposed for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    pub fsyncs: AtomicU64,
    pub appends_flushed: AtomicU64,
}

/// Handle on the node's group-commit thread. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Waiter>,
    stats: Arc<GroupCommitStats>,
}

impl GroupCommit {
    /// Start the sync thread for `engine`.
    pub fn start(engine: Engine) -> std::io::Result<GroupCommit> {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let stats = Arc::new(GroupCommitStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(engine, rx, thread_stats))?;
        Ok(GroupCommit { tx, stats })
    }

    /// Complete `callback` once everything written so far is durable.
    pub fn flushed(&self, callback: LogFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(Waiter::Log(cb))) = self.tx.send(Waiter::Log(callback)) {
            cb.log_io_completed(Err(std::io::Error::other("group commit thread stopped")));
        }
    }

    /// Wait until everything written so far is durable.
    pub async fn sync(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Waiter::Notify(tx))
            .map_err(|_| std::io::Error::other("group commit thread stopped"))?;
        rx.await
            .map_err(|_| std::io::Error::other("group commit thread stopped"))?
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }
}

fn run(engine: Engine, rx: mpsc::Receiver<Waiter>, stats: Arc<GroupCommitStats>) {
    let mut batch = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_CALLBACKS_PER_SYNC {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let result = engine.sync().map_err(|e| e.to_string());
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        for waiter in batch.drain(..) {
            let res = result.clone().map_err(std::io::Error::other);
            match waiter {
                Waiter::Log(cb) => {
                    stats.appends_flushed.fetch_add(1, Ordering::Relaxed);
                    cb.log_io_completed(res);
                }
                Waiter::Notify(tx) => {
                    let _ = tx.send(res);
                }
            }
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync failed; Raft will stop the affected groups");
        }
    }
}
