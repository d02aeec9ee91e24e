//! The per-node catalog watcher: keeps `Kv`'s routing table at the newest
//! catalog version this node's replica of group 1 has applied.
//!
//! It reads the local replica only (`catalog::read_local`), so it costs no
//! Raft round trip, works the same on leaders and followers, and does not
//! care about leader changes of group 1. It wakes when group 1's applied
//! index moves (openraft publishes it in the group's metrics channel) and,
//! as a fallback, every [`POLL`]; each wake-up costs one local point read
//! of the version key unless the version grew.

use crate::Kv;
use elastickv_types::DEFAULT_GROUP;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Fallback poll period (also the retry delay after an error).
pub const POLL: Duration = Duration::from_millis(100);

/// Start [`run_catalog_watcher`] as a task.
pub fn spawn_catalog_watcher(kv: Kv, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run_catalog_watcher(kv, shutdown))
}

/// Keep `kv`'s routing table current until `shutdown` turns true (or its
/// sender is dropped).
pub async fn run_catalog_watcher(kv: Kv, mut shutdown: watch::Receiver<bool>) {
    let mut last_error: Option<String> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(group) = kv.raft().group(DEFAULT_GROUP) else {
            // Group 1 is opened before the node serves; wait for it.
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            continue;
        };
        let mut metrics = group.raft.metrics();
        let mut seen_applied = None;
        loop {
            let applied = metrics.borrow_and_update().last_applied.map(|l| l.index);
            if applied != seen_applied || seen_applied.is_none() {
                seen_applied = applied;
                match kv.refresh_routes_from_local() {
                    Ok(_) => {
                        last_error = None;
                        kv.sync_ownership().await;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        // Log each distinct problem once, not every 100 ms.
                        if last_error.as_deref() != Some(msg.as_str()) {
                            tracing::warn!(error = %msg, "route catalog watcher cannot read the local catalog");
                        }
                        last_error = Some(msg);
                        seen_applied = None;
                    }
                }
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                changed = metrics.changed() => {
                    if changed.is_err() {
                        // The group shut down; look it up again.
                        break;
                    }
                }
                _ = tokio::time::sleep(POLL) => {
                    // Re-read even without an apply: cheap, and covers a
                    // snapshot install that metrics may report late.
                    seen_applied = None;
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
