//! Elastickv's Jepsen-style fault-injection harness: real `elastickv`
//! processes on loopback, the history format recorded by clients, nemeses,
//! and the checkers that judge a history.
//!
//! * [`cluster`]: start, kill, pause and restart node processes.
//! * [`proxy`]: cuttable per-link TCP proxies (real partitions).
//! * [`history`]: events, JSON-lines I/O, the thread-safe [`Recorder`], and
//!   pairing of invocations with completions ([`History::ops`]).
//! * [`linearizable`]: per-key register linearizability (WGL search).
//! * [`elle`]: list-append transactional anomalies (Elle-style).
//! * [`bank`], [`counter`]: invariant checkers.
//! * [`check`]: the shared, serializable verdict type.

pub mod bank;
pub mod check;
pub mod cluster;
pub mod counter;
pub mod elle;
pub mod history;
pub mod linearizable;
pub mod proxy;

pub use check::{Anomaly, AnomalyKind, CheckError, CheckResult, Validity};
pub use history::{Event, EventType, History, HistoryBuilder, Op, OpFn, Outcome, Recorder};
