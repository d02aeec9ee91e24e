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
//! * [`workload`]: the clients (register with compare-and-set, list-append,
//!   bank, counter).
//! * [`schedule`]: the seeded nemesis schedule (pure, replayable): one
//!   fault at a time, or overlapping episodes within a minority budget.
//! * [`runner`]: nemesis execution (each fault healed on its own, including
//!   membership changes) and the whole `run` (cluster, clients, faults,
//!   heal, final reads, checks), plus targeted scenarios.

pub mod bank;
pub mod check;
pub mod cluster;
pub mod counter;
pub mod elle;
pub mod history;
pub mod linearizable;
pub mod proxy;
pub mod runner;
pub mod schedule;
pub mod workload;

pub use check::{Anomaly, AnomalyKind, CheckError, CheckResult, Validity};
pub use history::{Event, EventType, History, HistoryBuilder, Op, OpFn, Outcome, Recorder};
