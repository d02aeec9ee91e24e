//! Group commit: one fsync makes the log appends of every group durable.
//!
//! Log stores write entries into the engine without syncing and hand their
//! appends to the [`GroupCommit`] thread. The thread takes every pending
//! append, issues one `Engine::sync`, and only then marks them durable and
//! completes their openraft callbacks, so nothing is acknowledged as durable
//! before it is on disk, while concurrent appends of all groups share each
//! fsync.

use elastickv_storage::Engine;
use openraft::storage::LogFlushed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use crate::durability::Durability;
use crate::types::{LogId, TypeConfig};

/// Upper bound of callbacks completed by one fsync; keeps latency bounded
/// under a flood of appends.
const MAX_CALLBACKS_PER_SYNC: usize = 4096;

enum Waiter {
    /// An append: mark it durable, then complete its callback (a leader's
    /// own appends have none: their callback completed at once, see
    /// `durability.rs`).
    Log {
        durability: Arc<Durability>,
        last: LogId,
        callback: Option<LogFlushed<TypeConfig>>,
    },
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

    /// Once everything written so far is durable, mark the log of
    /// `durability` durable up to `last` and complete `callback`.
    pub fn flushed(
        &self,
        durability: Arc<Durability>,
        last: LogId,
        callback: Option<LogFlushed<TypeConfig>>,
    ) {
        let waiter = Waiter::Log {
            durability,
            last,
            callback,
        };
        if let Err(mpsc::SendError(waiter)) = self.tx.send(waiter) {
            complete(waiter, Err("group commit thread stopped".to_string()), None);
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
            complete(waiter, result.clone(), Some(&stats));
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync failed; Raft will stop the affected groups");
        }
    }
}

fn complete(waiter: Waiter, result: Result<(), String>, stats: Option<&GroupCommitStats>) {
    match waiter {
        Waiter::Log {
            durability,
            last,
            callback,
        } => {
            if let Some(stats) = stats {
                stats.appends_flushed.fetch_add(1, Ordering::Relaxed);
            }
            match &result {
                Ok(()) => durability.mark(last),
                Err(_) => durability.fail(),
            }
            if let Some(cb) = callback {
                cb.log_io_completed(result.map_err(std::io::Error::other));
            }
        }
        Waiter::Notify(tx) => {
            let _ = tx.send(result.map_err(std::io::Error::other));
        }
    }
}
