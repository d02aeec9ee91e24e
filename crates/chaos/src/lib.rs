//! Elastickv's Jepsen-style fault-injection harness: the history format
//! recorded by clients and the checkers that judge a history.
//!
//! * [`history`]: events, JSON-lines I/O, the thread-safe [`Recorder`], and
//!   pairing of invocations with completions ([`History::ops`]).
//! * [`linearizable`]: per-key register linearizability (WGL search).
//! * [`elle`]: list-append transactional anomalies (Elle-style).
//! * [`bank`], [`counter`]: invariant checkers.
//! * [`check`]: the shared, serializable verdict type.

pub mod bank;
pub mod check;
pub mod counter;
pub mod elle;
pub mod history;
pub mod linearizable;

pub use check::{Anomaly, AnomalyKind, CheckError, CheckResult, Validity};
pub use history::{Event, EventType, History, HistoryBuilder, Op, OpFn, Outcome, Recorder};
