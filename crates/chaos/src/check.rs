//! Common verdict type shared by all checkers, serializable so that runs can
//! be recorded next to their histories.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::history::HistoryError;

/// Overall verdict. `Unknown` means a checker gave up (search budget
/// exhausted) without finding an anomaly: not a proof of correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

/// Every kind of anomaly any checker can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    // register
    NonLinearizable,
    // list-append (Elle)
    G0,
    G1a,
    G1b,
    G1c,
    #[serde(rename = "G-single")]
    GSingle,
    G2,
    LostUpdate,
    IncompatibleOrder,
    DuplicateElements,
    GarbageRead,
    Internal,
    // bank
    WrongTotal,
    NegativeBalance,
    MissingAccount,
    UnexpectedAccount,
    // counter
    CounterOutOfBounds,
    // any checker that hit its search budget
    CheckerGaveUp,
}

impl AnomalyKind {
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::NonLinearizable => "non-linearizable",
            AnomalyKind::G0 => "G0",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::G2 => "G2",
            AnomalyKind::LostUpdate => "lost-update",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::DuplicateElements => "duplicate-elements",
            AnomalyKind::GarbageRead => "garbage-read",
            AnomalyKind::Internal => "internal",
            AnomalyKind::WrongTotal => "wrong-total",
            AnomalyKind::NegativeBalance => "negative-balance",
            AnomalyKind::MissingAccount => "missing-account",
            AnomalyKind::UnexpectedAccount => "unexpected-account",
            AnomalyKind::CounterOutOfBounds => "counter-out-of-bounds",
            AnomalyKind::CheckerGaveUp => "checker-gave-up",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found, with a human explanation and the history indices
/// (invocation event indices) of the operations involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<u64>,
}

impl Anomaly {
    pub fn new(kind: AnomalyKind, text: impl Into<String>, ops: Vec<u64>) -> Self {
        Anomaly {
            kind,
            text: text.into(),
            ops,
        }
    }
}

/// A checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub workload: String,
    pub valid: Validity,
    /// Operations the checker actually examined (after dropping, e.g.,
    /// failed reads that carry no information).
    pub ops_checked: usize,
    pub anomalies: Vec<Anomaly>,
    /// Context that is not an anomaly (inferred parameters, skipped keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CheckResult {
    /// Build a result whose validity follows from its anomalies: any real
    /// anomaly makes it invalid; only "gave up" entries make it unknown.
    pub fn from_anomalies(
        workload: &str,
        ops_checked: usize,
        anomalies: Vec<Anomaly>,
        notes: Vec<String>,
    ) -> Self {
        let valid = if anomalies
            .iter()
            .any(|a| a.kind != AnomalyKind::CheckerGaveUp)
        {
            Validity::Invalid
        } else if anomalies.is_empty() {
            Validity::Valid
        } else {
            Validity::Unknown
        };
        CheckResult {
            workload: workload.to_string(),
            valid,
            ops_checked,
            anomalies,
            notes,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.valid == Validity::Valid
    }

    /// Does the result contain at least one anomaly of `kind`?
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind == kind)
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.valid {
            Validity::Valid => "VALID",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "UNKNOWN (checker gave up)",
        };
        writeln!(
            f,
            "{} workload: {} ({} ops checked, {} anomalies)",
            self.workload,
            verdict,
            self.ops_checked,
            self.anomalies.len()
        )?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for (i, a) in self.anomalies.iter().enumerate() {
            writeln!(f, "\n[{}] {}", i + 1, a.kind)?;
            for line in a.text.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Why a checker could not run at all (as opposed to finding anomalies).
#[derive(Debug, Error)]
pub enum CheckError {
    #[error("invalid history: {0}")]
    History(#[from] HistoryError),
    #[error("op invoked at index {index}: {reason}")]
    BadOp { index: u64, reason: String },
    #[error("value {value} was appended to key {key} more than once (ops at indices {first} and {second}); list-append requires unique values per key")]
    DuplicateAppend {
        key: String,
        value: String,
        first: u64,
        second: u64,
    },
}

impl CheckError {
    pub fn bad_op(index: u64, reason: impl Into<String>) -> Self {
        CheckError::BadOp {
            index,
            reason: reason.into(),
        }
    }
}
