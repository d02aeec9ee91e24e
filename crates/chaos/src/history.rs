//! The history model: what clients did and saw, recorded as JSON lines.
//!
//! A history is a sequence of [`Event`]s, one JSON object per line:
//!
//! ```json
//! {"type":"invoke","process":3,"f":"write","key":"x","value":5,"time_ns":1200,"index":7}
//! {"type":"ok","process":3,"f":"write","key":"x","value":5,"time_ns":1900,"index":9}
//! ```
//!
//! * `type` is `invoke` (a client is about to send a request), `ok` (it
//!   definitely took effect), `fail` (it definitely did not take effect) or
//!   `info` (outcome unknown: timeout, connection lost). As in Jepsen an
//!   `info` operation may take effect at any time after its invocation, or
//!   never, so the checkers treat its completion as being at +infinity.
//! * `process` is a logical client. A process has at most one outstanding
//!   operation; after an `info` it is considered crashed (its request may
//!   still be in flight) and must never be used again: the client continues
//!   under a fresh process id. [`History::ops`] enforces this.
//! * `index` is the event's position in the history (strictly increasing);
//!   real-time order between operations is derived from it, not from
//!   `time_ns`, which is kept for humans and latency plots.
//!
//! Value conventions per workload (what the checkers expect):
//!
//! | workload    | `f`        | invoke `value`        | ok `value`                      |
//! |-------------|------------|-----------------------|---------------------------------|
//! | register    | `read`     | `null`                | value read (`null` = nil)       |
//! | register    | `write`    | value                 | value                           |
//! | register    | `cas`      | `[old, new]`          | `[old, new]`                    |
//! | list-append | `txn`      | micro-ops, reads null | micro-ops with reads filled in  |
//! | bank        | `read`     | `null`                | `{"account": balance, ...}`     |
//! | bank        | `transfer` | `{"from","to","amount"}` | same                         |
//! | counter     | `add`      | delta (integer)       | delta                           |
//! | counter     | `read`     | `null`                | counter value                   |

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// What an event says about an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// The operation's function. Unknown names are kept verbatim so that new
/// workloads can record histories before a checker knows about them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OpFn {
    Read,
    Write,
    Cas,
    Txn,
    Transfer,
    Add,
    Other(String),
}

impl OpFn {
    pub fn as_str(&self) -> &str {
        match self {
            OpFn::Read => "read",
            OpFn::Write => "write",
            OpFn::Cas => "cas",
            OpFn::Txn => "txn",
            OpFn::Transfer => "transfer",
            OpFn::Add => "add",
            OpFn::Other(s) => s,
        }
    }
}

impl From<String> for OpFn {
    fn from(s: String) -> Self {
        match s.as_str() {
            "read" => OpFn::Read,
            "write" => OpFn::Write,
            "cas" => OpFn::Cas,
            "txn" => OpFn::Txn,
            "transfer" => OpFn::Transfer,
            "add" => OpFn::Add,
            _ => OpFn::Other(s),
        }
    }
}

impl From<&str> for OpFn {
    fn from(s: &str) -> Self {
        OpFn::from(s.to_string())
    }
}

impl From<OpFn> for String {
    fn from(f: OpFn) -> String {
        f.as_str().to_string()
    }
}

impl fmt::Display for OpFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub process: u64,
    pub f: OpFn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    #[serde(default)]
    pub value: Value,
    pub time_ns: u64,
    pub index: u64,
    /// Why a `fail`/`info` happened (error text), for humans only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A parse failure, with the 1-based line number of the offending line.
#[derive(Debug, Error)]
pub enum ParseError {
    #[error("reading history: {0}")]
    Io(#[from] io::Error),
    // The JSON error is part of the message (not a `source`) so that the
    // plain Display, which most callers print, says what is wrong.
    #[error("history line {line}: {error}")]
    Json {
        line: usize,
        error: serde_json::Error,
    },
}

/// A history that parses but breaks the rules of the model.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HistoryError {
    #[error("event index {index} (position {position}) is not greater than the previous index {previous}")]
    IndexNotIncreasing {
        position: usize,
        index: u64,
        previous: u64,
    },
    #[error("event index {index}: time_ns {time_ns} goes backwards (previous {previous}); time must be monotonic")]
    TimeWentBackwards {
        index: u64,
        time_ns: u64,
        previous: u64,
    },
    #[error("event index {index}: process {process} invoked {f} while its op invoked at index {outstanding} is still outstanding")]
    ConcurrentInvoke {
        index: u64,
        process: u64,
        f: String,
        outstanding: u64,
    },
    #[error("event index {index}: {kind} for process {process} which has no outstanding op")]
    CompletionWithoutInvoke {
        index: u64,
        process: u64,
        kind: EventType,
    },
    #[error("event index {index}: process {process} completed {got} but invoked {invoked}")]
    MismatchedFunction {
        index: u64,
        process: u64,
        invoked: String,
        got: String,
    },
    #[error("event index {index}: process {process} completed with key {got} but invoked with key {invoked}")]
    MismatchedKey {
        index: u64,
        process: u64,
        invoked: String,
        got: String,
    },
    #[error("event index {index}: process {process} was used after its op at index {crashed_at} ended with info; a crashed process must take a new id")]
    ProcessReusedAfterInfo {
        index: u64,
        process: u64,
        crashed_at: u64,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// Unknown: either an `info` completion or no completion at all.
    Info,
}

/// An invocation paired with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub process: u64,
    pub f: OpFn,
    pub key: Option<Value>,
    /// The value given at invocation.
    pub invoke_value: Value,
    /// The completion's value; the invocation's value when the completion
    /// carried none (`null`) or there was no completion.
    pub value: Value,
    pub outcome: Outcome,
    pub invoke_index: u64,
    /// `None` if the history ended with the op still outstanding.
    pub complete_index: Option<u64>,
    pub invoke_time_ns: u64,
    pub complete_time_ns: Option<u64>,
    pub error: Option<String>,
}

impl Op {
    /// Position of the completion for real-time ordering: `u64::MAX` for an
    /// indeterminate op, which may take effect arbitrarily late.
    pub fn ret_pos(&self) -> u64 {
        match (self.outcome, self.complete_index) {
            (Outcome::Info, _) | (_, None) => u64::MAX,
            (_, Some(i)) => i,
        }
    }

    /// Does `self` complete before `other` is invoked (real-time order)?
    pub fn precedes(&self, other: &Op) -> bool {
        self.ret_pos() < other.invoke_index
    }

    /// The key as a canonical string, for grouping ops by key.
    pub fn key_id(&self) -> String {
        key_id(self.key.as_ref())
    }

    /// `p3 read x [12..15]`: who, what and when, without the value.
    pub fn describe_short(&self) -> String {
        let key = match &self.key {
            Some(k) => format!(" {}", compact(k)),
            None => String::new(),
        };
        let end = match self.complete_index {
            Some(c) => c.to_string(),
            None => "…".to_string(),
        };
        format!(
            "p{} {}{} [{}..{}]",
            self.process, self.f, key, self.invoke_index, end
        )
    }

    /// One-line human description, e.g. `p3 write x 5 -> ok [12..15]`.
    pub fn describe(&self) -> String {
        let key = match &self.key {
            Some(k) => format!(" {}", compact(k)),
            None => String::new(),
        };
        let end = match self.complete_index {
            Some(c) => c.to_string(),
            None => "…".to_string(),
        };
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        format!(
            "p{} {}{} {} -> {} [{}..{}]",
            self.process,
            self.f,
            key,
            compact(&self.value),
            outcome,
            self.invoke_index,
            end
        )
    }
}

/// Canonical string for a (possibly absent) key.
pub fn key_id(key: Option<&Value>) -> String {
    match key {
        Some(k) => compact(k),
        None => "<no key>".to_string(),
    }
}

/// Compact JSON text of a value, for messages and canonical ids (serde_json
/// maps keep keys sorted, so equal values print identically).
pub fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// A recorded history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn new(events: Vec<Event>) -> Self {
        History { events }
    }

    /// Parse JSON lines; blank lines are skipped but still counted so that
    /// reported line numbers match an editor's.
    pub fn parse_jsonl<R: BufRead>(reader: R) -> Result<Self, ParseError> {
        let mut events = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let ev: Event = serde_json::from_str(&line)
                .map_err(|error| ParseError::Json { line: i + 1, error })?;
            events.push(ev);
        }
        Ok(History { events })
    }

    pub fn parse_str(s: &str) -> Result<Self, ParseError> {
        Self::parse_jsonl(s.as_bytes())
    }

    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ParseError> {
        let f = std::fs::File::open(path)?;
        Self::parse_jsonl(io::BufReader::new(f))
    }

    pub fn write_jsonl<W: Write>(&self, w: W) -> io::Result<()> {
        let mut w = BufWriter::new(w);
        for ev in &self.events {
            serde_json::to_writer(&mut w, ev)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    pub fn to_jsonl_string(&self) -> String {
        let mut buf = Vec::new();
        // Writing to a Vec cannot fail, and serializing our own types cannot
        // either (no non-string map keys).
        let _ = self.write_jsonl(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn write_to_path(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.write_jsonl(std::fs::File::create(path)?)
    }

    /// Validate the history and pair every invocation with its completion.
    /// Ops are returned in invocation order; ops still outstanding at the end
    /// of the history are treated as `info`.
    pub fn ops(&self) -> Result<Vec<Op>, HistoryError> {
        let mut ops: Vec<Op> = Vec::new();
        // process -> index into `ops` of its outstanding op.
        let mut outstanding: HashMap<u64, usize> = HashMap::new();
        // process -> index of the info event that crashed it.
        let mut crashed: HashMap<u64, u64> = HashMap::new();
        let mut prev: Option<(u64, u64)> = None;
        for (position, ev) in self.events.iter().enumerate() {
            if let Some((pi, pt)) = prev {
                if ev.index <= pi {
                    return Err(HistoryError::IndexNotIncreasing {
                        position,
                        index: ev.index,
                        previous: pi,
                    });
                }
                if ev.time_ns < pt {
                    return Err(HistoryError::TimeWentBackwards {
                        index: ev.index,
                        time_ns: ev.time_ns,
                        previous: pt,
                    });
                }
            }
            prev = Some((ev.index, ev.time_ns));
            if let Some(&crashed_at) = crashed.get(&ev.process) {
                return Err(HistoryError::ProcessReusedAfterInfo {
                    index: ev.index,
                    process: ev.process,
                    crashed_at,
                });
            }
            match ev.kind {
                EventType::Invoke => {
                    if let Some(&o) = outstanding.get(&ev.process) {
                        return Err(HistoryError::ConcurrentInvoke {
                            index: ev.index,
                            process: ev.process,
                            f: ev.f.to_string(),
                            outstanding: ops[o].invoke_index,
                        });
                    }
                    outstanding.insert(ev.process, ops.len());
                    ops.push(Op {
                        process: ev.process,
                        f: ev.f.clone(),
                        key: ev.key.clone(),
                        invoke_value: ev.value.clone(),
                        value: ev.value.clone(),
                        outcome: Outcome::Info,
                        invoke_index: ev.index,
                        complete_index: None,
                        invoke_time_ns: ev.time_ns,
                        complete_time_ns: None,
                        error: None,
                    });
                }
                EventType::Ok | EventType::Fail | EventType::Info => {
                    let Some(o) = outstanding.remove(&ev.process) else {
                        return Err(HistoryError::CompletionWithoutInvoke {
                            index: ev.index,
                            process: ev.process,
                            kind: ev.kind,
                        });
                    };
                    let op = &mut ops[o];
                    if op.f != ev.f {
                        return Err(HistoryError::MismatchedFunction {
                            index: ev.index,
                            process: ev.process,
                            invoked: op.f.to_string(),
                            got: ev.f.to_string(),
                        });
                    }
                    if let Some(k) = &ev.key {
                        if op.key.as_ref() != Some(k) {
                            return Err(HistoryError::MismatchedKey {
                                index: ev.index,
                                process: ev.process,
                                invoked: key_id(op.key.as_ref()),
                                got: compact(k),
                            });
                        }
                    }
                    op.outcome = match ev.kind {
                        EventType::Ok => Outcome::Ok,
                        EventType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    if !ev.value.is_null() {
                        op.value = ev.value.clone();
                    }
                    op.complete_index = Some(ev.index);
                    op.complete_time_ns = Some(ev.time_ns);
                    op.error = ev.error.clone();
                    if ev.kind == EventType::Info {
                        crashed.insert(ev.process, ev.index);
                    }
                }
            }
        }
        Ok(ops)
    }
}

/// Misuse of a [`ProcessHandle`]: a client bug, not a database bug.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("process {process} invoked a new op while one is outstanding")]
    AlreadyOutstanding { process: u64 },
    #[error("process {process} completed an op but none is outstanding")]
    NothingOutstanding { process: u64 },
}

/// Thread-safe, append-only history recorder shared by all clients.
///
/// Appending takes a short mutex: the index and timestamp are assigned under
/// the same lock as the push, so index order, time order and vector order
/// always agree (which is what makes real-time ordering sound).
#[derive(Debug)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    start: Instant,
    next_process: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            events: Mutex::new(Vec::new()),
            start: Instant::now(),
            next_process: AtomicU64::new(0),
        }
    }

    /// A process id never handed out before by this recorder.
    pub fn fresh_process_id(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Append a raw event and return its index. Prefer [`ProcessHandle`],
    /// which enforces the one-outstanding-op and crash rules.
    pub fn record(
        &self,
        kind: EventType,
        process: u64,
        f: OpFn,
        key: Option<Value>,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        // A poisoned lock only means another client panicked mid-push; the
        // Vec itself is still consistent, so keep recording.
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let index = events.len() as u64;
        let time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Instant is monotonic, but guard against equal-or-earlier readings
        // across threads anyway: we are under the lock.
        let time_ns = match events.last() {
            Some(last) if last.time_ns > time_ns => last.time_ns,
            _ => time_ns,
        };
        events.push(Event {
            kind,
            process,
            f,
            key,
            value,
            time_ns,
            index,
            error,
        });
        index
    }

    /// A client handle with a fresh process id.
    pub fn process(self: &Arc<Self>) -> ProcessHandle {
        ProcessHandle {
            recorder: Arc::clone(self),
            process: self.fresh_process_id(),
            pending: None,
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> History {
        History::new(
            self.events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    pub fn write_to_path(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.snapshot().write_to_path(path)
    }
}

/// One logical client. After [`ProcessHandle::info`] it switches to a new
/// process id, because the crashed op may still take effect later.
#[derive(Debug)]
pub struct ProcessHandle {
    recorder: Arc<Recorder>,
    process: u64,
    pending: Option<(OpFn, Option<Value>)>,
}

impl ProcessHandle {
    pub fn id(&self) -> u64 {
        self.process
    }

    pub fn invoke(
        &mut self,
        f: impl Into<OpFn>,
        key: Option<Value>,
        value: Value,
    ) -> Result<u64, RecordError> {
        if self.pending.is_some() {
            return Err(RecordError::AlreadyOutstanding {
                process: self.process,
            });
        }
        let f = f.into();
        self.pending = Some((f.clone(), key.clone()));
        Ok(self
            .recorder
            .record(EventType::Invoke, self.process, f, key, value, None))
    }

    fn complete(
        &mut self,
        kind: EventType,
        value: Value,
        error: Option<String>,
    ) -> Result<u64, RecordError> {
        let Some((f, key)) = self.pending.take() else {
            return Err(RecordError::NothingOutstanding {
                process: self.process,
            });
        };
        let idx = self
            .recorder
            .record(kind, self.process, f, key, value, error);
        if kind == EventType::Info {
            self.process = self.recorder.fresh_process_id();
        }
        Ok(idx)
    }

    pub fn ok(&mut self, value: Value) -> Result<u64, RecordError> {
        self.complete(EventType::Ok, value, None)
    }

    pub fn fail(&mut self, value: Value, error: impl Into<String>) -> Result<u64, RecordError> {
        self.complete(EventType::Fail, value, Some(error.into()))
    }

    /// Outcome unknown; the handle continues under a fresh process id.
    pub fn info(&mut self, error: impl Into<String>) -> Result<u64, RecordError> {
        self.complete(EventType::Info, Value::Null, Some(error.into()))
    }
}

/// Builds histories by hand (tests, examples) with explicit process ids and
/// consecutive indices; time_ns equals the index.
#[derive(Debug, Default, Clone)]
pub struct HistoryBuilder {
    events: Vec<Event>,
}

impl HistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn event(
        &mut self,
        kind: EventType,
        process: u64,
        f: impl Into<OpFn>,
        key: Option<Value>,
        value: Value,
    ) -> &mut Self {
        let index = self.events.len() as u64;
        self.events.push(Event {
            kind,
            process,
            f: f.into(),
            key,
            value,
            time_ns: index,
            index,
            error: None,
        });
        self
    }

    pub fn invoke(&mut self, p: u64, f: &str, key: Option<Value>, value: Value) -> &mut Self {
        self.event(EventType::Invoke, p, f, key, value)
    }

    /// Complete the outstanding op of `p` (same f and key as its invocation).
    pub fn complete(&mut self, kind: EventType, p: u64, value: Value) -> &mut Self {
        let (f, key) = self
            .events
            .iter()
            .rev()
            .find(|e| e.process == p && e.kind == EventType::Invoke)
            .map(|e| (e.f.clone(), e.key.clone()))
            .unwrap_or((OpFn::Other("?".into()), None));
        self.event(kind, p, f, key, value)
    }

    pub fn ok(&mut self, p: u64, value: Value) -> &mut Self {
        self.complete(EventType::Ok, p, value)
    }

    pub fn fail(&mut self, p: u64, value: Value) -> &mut Self {
        self.complete(EventType::Fail, p, value)
    }

    pub fn info(&mut self, p: u64) -> &mut Self {
        self.complete(EventType::Info, p, Value::Null)
    }

    pub fn build(&self) -> History {
        History::new(self.events.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roundtrip_jsonl() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "write", Some(json!("x")), json!(1))
            .ok(0, json!(1))
            .invoke(1, "read", Some(json!("x")), Value::Null)
            .info(1);
        let h = b.build();
        let text = h.to_jsonl_string();
        assert!(text.starts_with(
            r#"{"type":"invoke","process":0,"f":"write","key":"x","value":1,"time_ns":0,"index":0}"#
        ));
        let back = History::parse_str(&text).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn parse_error_reports_line() {
        let text = "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"time_ns\":0,\"index\":0}\n\n{\"type\":\"bogus\"}\n";
        match History::parse_str(text) {
            Err(ParseError::Json { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected json error, got {other:?}"),
        }
    }

    #[test]
    fn pairs_ops_and_treats_missing_completion_as_info() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "write", Some(json!("x")), json!(1))
            .invoke(1, "read", Some(json!("x")), Value::Null)
            .ok(1, json!(1))
            .ok(0, Value::Null)
            .invoke(2, "cas", Some(json!("x")), json!([1, 2]));
        let ops = b.build().ops().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!(ops[0].value, json!(1), "null completion keeps invoke value");
        assert_eq!(ops[0].complete_index, Some(3));
        assert_eq!(ops[1].value, json!(1));
        assert!(ops[1].precedes(&ops[2]));
        assert!(!ops[0].precedes(&ops[1]));
        assert_eq!(ops[2].outcome, Outcome::Info);
        assert_eq!(ops[2].ret_pos(), u64::MAX);
    }

    #[test]
    fn rejects_rule_breaking_histories() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "read", None, Value::Null)
            .invoke(0, "read", None, Value::Null);
        assert!(matches!(
            b.build().ops(),
            Err(HistoryError::ConcurrentInvoke { process: 0, .. })
        ));

        let mut b = HistoryBuilder::new();
        b.event(EventType::Ok, 4, "read", None, Value::Null);
        assert!(matches!(
            b.build().ops(),
            Err(HistoryError::CompletionWithoutInvoke { process: 4, .. })
        ));

        let mut b = HistoryBuilder::new();
        b.invoke(0, "read", None, Value::Null)
            .info(0)
            .invoke(0, "read", None, Value::Null);
        assert!(matches!(
            b.build().ops(),
            Err(HistoryError::ProcessReusedAfterInfo {
                process: 0,
                crashed_at: 1,
                ..
            })
        ));

        let mut b = HistoryBuilder::new();
        b.invoke(0, "read", None, Value::Null)
            .event(EventType::Ok, 0, "write", None, Value::Null);
        assert!(matches!(
            b.build().ops(),
            Err(HistoryError::MismatchedFunction { .. })
        ));

        let mut h = HistoryBuilder::new()
            .invoke(0, "read", None, Value::Null)
            .ok(0, Value::Null)
            .build();
        h.events[1].index = 0;
        assert!(matches!(
            h.ops(),
            Err(HistoryError::IndexNotIncreasing { .. })
        ));
    }

    #[test]
    fn recorder_rotates_process_after_info_and_is_thread_safe() {
        let rec = Arc::new(Recorder::new());
        let mut handles = Vec::new();
        for t in 0..4 {
            let rec = Arc::clone(&rec);
            handles.push(std::thread::spawn(move || {
                let mut p = rec.process();
                for i in 0..50 {
                    p.invoke("write", Some(json!("x")), json!(t * 100 + i))
                        .unwrap();
                    if i % 10 == 9 {
                        p.info("timeout").unwrap();
                    } else {
                        p.ok(Value::Null).unwrap();
                    }
                }
                assert!(p.ok(Value::Null).is_err());
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        let h = rec.snapshot();
        assert_eq!(h.events.len(), 400);
        let ops = h.ops().expect("recorder output must validate");
        assert_eq!(ops.len(), 200);
        assert_eq!(
            ops.iter().filter(|o| o.outcome == Outcome::Info).count(),
            20
        );
        let back = History::parse_str(&h.to_jsonl_string()).unwrap();
        assert_eq!(back, h);
    }
}
