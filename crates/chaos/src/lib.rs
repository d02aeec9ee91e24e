//! Elastickv's Jepsen-style fault-injection harness: the history format
//! recorded by clients and the checkers that judge a history.

pub mod bank;
pub mod check;
pub mod counter;
pub mod elle;
pub mod history;
pub mod linearizable;

pub use check::{Anomaly, AnomalyKind, CheckError, CheckResult, Validity};
pub use history::{Event, EventType, History, HistoryBuilder, Op, OpFn, Outcome, Recorder};
