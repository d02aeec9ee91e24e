//! Client workloads: concurrent workers that talk to real nodes over gRPC
//! and record every operation in a [`Recorder`] history.
//!
//! * `register`: per-key read (RawGet), write (RawPut of a unique integer)
//!   and compare-and-set on a few keys spread over the groups (single-key
//!   linearizable). A cas is an interactive transaction: Begin, Read the
//!   key at start_ts, compare, Commit a Put. The commit is one-phase (one
//!   key, one group) and its conflict check refuses it if any version of
//!   the key — raw or transactional — was committed after start_ts, so a
//!   cas that commits replaced exactly the value it compared.
//! * `list-append`: transactions of 1–4 `append` / `r` micro-ops on keys in
//!   every group; lists are stored as comma-separated integers. Keys a
//!   transaction only reads are committed as `ASSERT_UNCHANGED`, so the
//!   transaction is serializable, not merely snapshot-isolated (otherwise
//!   write skew would be a legitimate G2 that Elle reports).
//! * `bank`: transfers between accounts in different groups and snapshot
//!   reads of all balances.
//! * `counter`: read-modify-write increments and reads of one key.
//!
//! Outcome rules, as in Jepsen: an op that cannot have taken effect
//! (a read, anything before a commit, a commit answered `conflict`) is
//! `fail`; a write or commit whose answer was lost (timeout, connection
//! error, server error) is `info` — it may or may not have happened.
//!
//! Every worker opens one lazy channel per node up front and reuses it for
//! every request (a channel per request makes tonic spin reconnecting to a
//! dead node).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{RawGetRequest, RawPutRequest};
use elastickv_proto::txn::txn_client::TxnClient;
use elastickv_proto::txn::{BeginRequest, CommitRequest, Mutation, MutationOp, ReadRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;
use tonic::transport::Channel;

use crate::history::{ProcessHandle, RecordError, Recorder};

/// The workloads, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    ListAppend,
    Bank,
    Counter,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Register,
        WorkloadKind::ListAppend,
        WorkloadKind::Bank,
        WorkloadKind::Counter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::Bank => "bank",
            WorkloadKind::Counter => "counter",
        }
    }
}

/// Shard layout every workload's keys are spread over: keys starting
/// `a`..`f` live in group 1, `g`..`m` in group 2, `n`.. in group 3.
pub const GROUPS: &str = "1,2,3";
pub const SHARD_RANGES: &str = ":g=1,g:n=2,n:=3";

pub const REGISTER_KEYS: [&str; 4] = ["a-reg", "h-reg", "p-reg", "q-reg"];
pub const LIST_KEYS: [&str; 6] = ["b-la", "c-la", "i-la", "j-la", "r-la", "s-la"];
pub const BANK_ACCOUNTS: [&str; 6] = ["d-bank", "e-bank", "k-bank", "l-bank", "t-bank", "u-bank"];
pub const BANK_INITIAL: i64 = 100;
pub const COUNTER_KEY: &str = "f-counter";

/// The bank's constant total.
pub fn bank_total() -> i64 {
    BANK_INITIAL * BANK_ACCOUNTS.len() as i64
}

/// How hard the clients push.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub workers: usize,
    /// Operations per second per worker (bounded: workers sleep between
    /// ops).
    pub rate_hz: f64,
    /// Total operations across the workload's workers.
    pub max_ops: u64,
    /// Deadline of every RPC; past it the op is `info` (or `fail` for a
    /// read).
    pub op_timeout: Duration,
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            workers: 3,
            rate_hz: 5.0,
            max_ops: 100_000,
            op_timeout: Duration::from_secs(3),
            seed: 0,
        }
    }
}

#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error("recording: {0}")]
    Record(#[from] RecordError),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: anyhow::Error },
    #[error("setup: {0}")]
    Setup(String),
}

/// One node's clients, over one channel.
#[derive(Clone)]
pub struct Conn {
    pub raw: RawKvClient<Channel>,
    pub txn: TxnClient<Channel>,
}

/// One lazy channel per node.
pub async fn connect_all(addrs: &[String]) -> Result<Vec<Conn>, WorkloadError> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let ch = crate::cluster::channel(addr)
            .await
            .map_err(|source| WorkloadError::Connect {
                addr: addr.clone(),
                source,
            })?;
        out.push(Conn {
            raw: RawKvClient::new(ch.clone()),
            txn: TxnClient::new(ch),
        });
    }
    Ok(out)
}

/// An RPC with a deadline; the error is the status or "timeout".
async fn call<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
        Err(_) => Err(format!("timeout after {timeout:?}")),
    }
}

/// How an op ended, before recording.
enum End {
    Ok(Value),
    /// Definitely did not take effect.
    Fail(String),
    /// Unknown.
    Info(String),
}

fn record(p: &mut ProcessHandle, end: End) -> Result<(), RecordError> {
    match end {
        End::Ok(v) => p.ok(v).map(|_| ()),
        End::Fail(e) => p.fail(Value::Null, e).map(|_| ()),
        End::Info(e) => p.info(e).map(|_| ()),
    }
}

async fn begin(c: &mut Conn, t: Duration) -> Result<u64, String> {
    Ok(call(t, c.txn.begin(BeginRequest {})).await?.start_ts)
}

/// Snapshot read of `keys` at `start_ts`: `None` for a missing key.
async fn txn_read(
    c: &mut Conn,
    t: Duration,
    start_ts: u64,
    keys: &[&str],
) -> Result<Vec<Option<String>>, String> {
    let r = call(
        t,
        c.txn.read(ReadRequest {
            start_ts,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }),
    )
    .await?;
    if r.values.len() != keys.len() {
        return Err(format!(
            "read {} keys, got {} values",
            keys.len(),
            r.values.len()
        ));
    }
    Ok(r.values
        .into_iter()
        .map(|v| {
            v.found
                .then(|| String::from_utf8_lossy(&v.value).into_owned())
        })
        .collect())
}

fn put(key: &str, value: String) -> Mutation {
    Mutation {
        op: MutationOp::Put as i32,
        key: key.as_bytes().to_vec(),
        value: value.into_bytes(),
        since: 0,
    }
}

fn assert_unchanged(key: &str) -> Mutation {
    Mutation {
        op: MutationOp::AssertUnchanged as i32,
        key: key.as_bytes().to_vec(),
        value: Vec::new(),
        since: 0,
    }
}

/// Commit: `Ok` committed, `Fail` conflict/refused, `Info` unknown.
async fn commit(
    c: &mut Conn,
    t: Duration,
    start_ts: u64,
    mutations: Vec<Mutation>,
    ok: Value,
) -> End {
    commit_ts(c, t, start_ts, mutations, ok).await.0
}

/// [`commit`], also returning the commit timestamp on success.
async fn commit_ts(
    c: &mut Conn,
    t: Duration,
    start_ts: u64,
    mutations: Vec<Mutation>,
    ok: Value,
) -> (End, Option<u64>) {
    match call(
        t,
        c.txn.commit(CommitRequest {
            start_ts,
            mutations,
        }),
    )
    .await
    {
        Ok(r) if r.conflict => (End::Fail(format!("conflict: {}", r.message)), None),
        Ok(r) => (End::Ok(ok), Some(r.commit_ts)),
        Err(e) => (End::Info(e), None),
    }
}

fn parse_int(s: Option<&String>) -> Result<i64, String> {
    match s {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| format!("not an integer: {s:?}")),
    }
}

fn parse_list(s: Option<&String>) -> Result<Vec<i64>, String> {
    match s {
        None => Ok(Vec::new()),
        Some(s) if s.is_empty() => Ok(Vec::new()),
        Some(s) => s
            .split(',')
            .map(|x| {
                x.parse()
                    .map_err(|_| format!("bad list element {x:?} in {s:?}"))
            })
            .collect(),
    }
}

/// State shared by one workload's workers.
pub struct Shared {
    pub recorder: Arc<Recorder>,
    /// Source of unique written values.
    next_value: AtomicU64,
    /// Operations left in the budget.
    budget: AtomicU64,
    /// Per-transaction diagnostics (node, start/commit timestamps) that the
    /// history format has no room for; written next to the history so an
    /// anomaly can be traced into node logs. One entry per op: bounded by
    /// the op budget.
    trace: std::sync::Mutex<Vec<Value>>,
}

impl Shared {
    pub fn new(max_ops: u64) -> Arc<Shared> {
        Arc::new(Shared {
            recorder: Arc::new(Recorder::new()),
            next_value: AtomicU64::new(1),
            budget: AtomicU64::new(max_ops),
            trace: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn trace(&self, v: Value) {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).push(v);
    }

    /// The diagnostics recorded so far.
    pub fn trace_snapshot(&self) -> Vec<Value> {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn unique(&self) -> i64 {
        self.next_value.fetch_add(1, Ordering::Relaxed) as i64
    }

    fn take_budget(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    }
}

/// Write the initial state a workload needs (bank deposits), retrying for
/// up to `deadline`.
pub async fn setup(
    kind: WorkloadKind,
    addrs: &[String],
    deadline: Duration,
) -> Result<(), WorkloadError> {
    if kind != WorkloadKind::Bank {
        return Ok(());
    }
    let mut conns = connect_all(addrs).await?;
    let t = Duration::from_secs(3);
    let start = std::time::Instant::now();
    let mut last = String::new();
    // Bounded by the deadline; each attempt is bounded by its timeouts.
    let mut attempt = 0usize;
    while start.elapsed() < deadline {
        attempt += 1;
        let c = &mut conns[attempt % addrs.len()];
        let ts = match begin(c, t).await {
            Ok(ts) => ts,
            Err(e) => {
                last = e;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let muts = BANK_ACCOUNTS
            .iter()
            .map(|a| put(a, BANK_INITIAL.to_string()))
            .collect();
        match commit(c, t, ts, muts, Value::Null).await {
            End::Ok(_) => return Ok(()),
            // An unknown outcome is fine to retry: the deposit is
            // idempotent (same balances) and nothing else runs yet.
            End::Fail(e) | End::Info(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(WorkloadError::Setup(format!(
        "bank deposit did not commit: {last}"
    )))
}

/// One worker: ops until `stop` or the budget runs out.
pub async fn worker(
    kind: WorkloadKind,
    id: usize,
    addrs: Vec<String>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    cfg: WorkloadConfig,
) -> Result<u64, WorkloadError> {
    let mut conns = connect_all(&addrs).await?;
    let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_mul(31).wrapping_add(id as u64));
    let mut p = shared.recorder.process();
    let interval = Duration::from_secs_f64(1.0 / cfg.rate_hz.max(0.01));
    let mut done = 0u64;
    // Register only: the last value this worker saw per key, used as the
    // expected value of its next cas so that a fair share of them succeed
    // (unique values make a random guess almost always wrong).
    let mut seen: HashMap<&'static str, Value> = HashMap::new();
    while !stop.load(Ordering::Relaxed) && shared.take_budget() {
        let node = rng.gen_range(0..conns.len());
        let c = &mut conns[node];
        match kind {
            WorkloadKind::Register => {
                register_op(c, &mut p, &shared, &mut seen, &mut rng, cfg.op_timeout).await?
            }
            WorkloadKind::ListAppend => {
                list_append_op(c, node, &mut p, &shared, &mut rng, cfg.op_timeout).await?
            }
            WorkloadKind::Bank => bank_op(c, &mut p, &mut rng, cfg.op_timeout).await?,
            WorkloadKind::Counter => counter_op(c, &mut p, &mut rng, cfg.op_timeout).await?,
        }
        done += 1;
        // Jitter so workers do not move in lockstep.
        let jitter = rng.gen_range(0.5..1.5);
        tokio::time::sleep(interval.mul_f64(jitter)).await;
    }
    Ok(done)
}

/// Read `key`; returns the value read, `None` if the read failed.
async fn register_read(
    c: &mut Conn,
    p: &mut ProcessHandle,
    key: &str,
    t: Duration,
) -> Result<Option<Value>, RecordError> {
    p.invoke("read", Some(json!(key)), Value::Null)?;
    let end = match call(
        t,
        c.raw.raw_get(RawGetRequest {
            key: key.as_bytes().to_vec(),
            ts: 0,
        }),
    )
    .await
    {
        Ok(r) if !r.exists => End::Ok(Value::Null),
        // A non-integer is recorded verbatim: a garbage value is the
        // checker's business, not something to hide.
        Ok(r) => End::Ok(register_value(&r.value)),
        // A read has no effect, so a failed read is a definite fail.
        Err(e) => End::Fail(e),
    };
    let read = match &end {
        End::Ok(v) => Some(v.clone()),
        _ => None,
    };
    record(p, end)?;
    Ok(read)
}

/// A register value as stored (decimal text) to its JSON form.
fn register_value(bytes: &[u8]) -> Value {
    let s = String::from_utf8_lossy(bytes);
    match s.parse::<i64>() {
        Ok(v) => json!(v),
        Err(_) => json!(s),
    }
}

/// Compare-and-set `key` from `expected` (JSON `null`: absent) to `new`
/// in one transaction. Returns the outcome and, when the comparison
/// failed, the value actually found (for the caller's next guess).
async fn cas_txn(
    c: &mut Conn,
    key: &'static str,
    expected: &Value,
    new: i64,
    t: Duration,
) -> (End, Option<Value>) {
    let ts = match begin(c, t).await {
        Ok(ts) => ts,
        Err(e) => return (End::Fail(format!("begin: {e}")), None),
    };
    let found = match call(
        t,
        c.txn.read(ReadRequest {
            start_ts: ts,
            keys: vec![key.as_bytes().to_vec()],
        }),
    )
    .await
    {
        Ok(r) => match r.values.first() {
            Some(v) if v.found => register_value(&v.value),
            Some(_) => Value::Null,
            None => return (End::Fail("read answered no value".into()), None),
        },
        Err(e) => return (End::Fail(format!("read: {e}")), None),
    };
    if &found != expected {
        // Nothing was written: a definite failure.
        return (
            End::Fail(format!("cas mismatch: found {found}")),
            Some(found),
        );
    }
    let end = commit(
        c,
        t,
        ts,
        vec![put(key, new.to_string())],
        json!([expected, new]),
    )
    .await;
    (end, None)
}

async fn register_op(
    c: &mut Conn,
    p: &mut ProcessHandle,
    shared: &Shared,
    seen: &mut HashMap<&'static str, Value>,
    rng: &mut StdRng,
    t: Duration,
) -> Result<(), RecordError> {
    let key = REGISTER_KEYS[rng.gen_range(0..REGISTER_KEYS.len())];
    let dice = rng.gen_range(0..10);
    if dice < 4 {
        if let Some(v) = register_read(c, p, key, t).await? {
            seen.insert(key, v);
        }
        return Ok(());
    }
    if dice < 7 {
        let expected = seen.get(key).cloned().unwrap_or(Value::Null);
        let new = shared.unique();
        p.invoke("cas", Some(json!(key)), json!([expected, new]))?;
        let (end, found) = cas_txn(c, key, &expected, new, t).await;
        match (&end, found) {
            (End::Ok(_), _) => {
                seen.insert(key, json!(new));
            }
            (_, Some(found)) => {
                seen.insert(key, found);
            }
            _ => {}
        }
        return record(p, end);
    }
    let v = shared.unique();
    p.invoke("write", Some(json!(key)), json!(v))?;
    let end = match call(
        t,
        c.raw.raw_put(RawPutRequest {
            key: key.as_bytes().to_vec(),
            value: v.to_string().into_bytes(),
        }),
    )
    .await
    {
        Ok(r) if r.success => {
            seen.insert(key, json!(v));
            End::Ok(json!(v))
        }
        Ok(_) => End::Info("put answered success=false".into()),
        Err(e) => End::Info(e),
    };
    record(p, end)
}

/// Run one list-append transaction given its micro-ops (reads `null`).
/// Also returns the start and commit timestamps, for the trace.
async fn list_append_txn(
    c: &mut Conn,
    mops: &[(bool, &'static str, i64)],
    t: Duration,
) -> (End, Option<u64>, Option<u64>) {
    let keys: Vec<&str> = mops
        .iter()
        .map(|m| m.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ts = match begin(c, t).await {
        Ok(ts) => ts,
        Err(e) => return (End::Fail(format!("begin: {e}")), None, None),
    };
    let vals = match txn_read(c, t, ts, &keys).await {
        Ok(v) => v,
        Err(e) => return (End::Fail(format!("read: {e}")), Some(ts), None),
    };
    let mut state: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (k, v) in keys.iter().zip(vals.iter()) {
        match parse_list(v.as_ref()) {
            Ok(l) => {
                state.insert(k, l);
            }
            // Nothing was written yet; report the garbage loudly.
            Err(e) => {
                return (
                    End::Fail(format!("unparseable list under {k}: {e}")),
                    Some(ts),
                    None,
                )
            }
        }
    }
    let mut written = BTreeSet::new();
    let mut out = Vec::with_capacity(mops.len());
    for &(is_append, k, v) in mops {
        let list = state.entry(k).or_default();
        if is_append {
            list.push(v);
            written.insert(k);
            out.push(json!(["append", k, v]));
        } else {
            out.push(json!(["r", k, list.clone()]));
        }
    }
    if written.is_empty() {
        // Read-only: a snapshot read is serializable at start_ts.
        return (End::Ok(Value::Array(out)), Some(ts), None);
    }
    let mutations = keys
        .iter()
        .map(|k| {
            if written.contains(k) {
                let list = state.get(k).map(Vec::as_slice).unwrap_or_default();
                let s = list
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                put(k, s)
            } else {
                assert_unchanged(k)
            }
        })
        .collect();
    let (end, cts) = commit_ts(c, t, ts, mutations, Value::Array(out)).await;
    (end, Some(ts), cts)
}

fn mops_value(mops: &[(bool, &'static str, i64)]) -> Value {
    Value::Array(
        mops.iter()
            .map(|&(a, k, v)| {
                if a {
                    json!(["append", k, v])
                } else {
                    json!(["r", k, null])
                }
            })
            .collect(),
    )
}

async fn list_append_op(
    c: &mut Conn,
    node: usize,
    p: &mut ProcessHandle,
    shared: &Shared,
    rng: &mut StdRng,
    t: Duration,
) -> Result<(), RecordError> {
    let n = rng.gen_range(1..=4);
    let mops: Vec<(bool, &'static str, i64)> = (0..n)
        .map(|_| {
            let k = LIST_KEYS[rng.gen_range(0..LIST_KEYS.len())];
            if rng.gen_bool(0.5) {
                (true, k, shared.unique())
            } else {
                (false, k, 0)
            }
        })
        .collect();
    let index = p.invoke("txn", None, mops_value(&mops))?;
    let (end, start_ts, commit_ts) = list_append_txn(c, &mops, t).await;
    shared.trace(json!({
        "invoke_index": index,
        "node": node,
        "start_ts": start_ts,
        "commit_ts": commit_ts,
        "outcome": match &end { End::Ok(_) => "ok", End::Fail(_) => "fail", End::Info(_) => "info" },
    }));
    record(p, end)
}

async fn bank_read(c: &mut Conn, t: Duration) -> End {
    let ts = match begin(c, t).await {
        Ok(ts) => ts,
        Err(e) => return End::Fail(format!("begin: {e}")),
    };
    match txn_read(c, t, ts, &BANK_ACCOUNTS).await {
        Ok(vals) => {
            let mut m = serde_json::Map::new();
            for (a, v) in BANK_ACCOUNTS.iter().zip(vals) {
                let b = match v {
                    None => Value::Null,
                    Some(s) => match s.parse::<i64>() {
                        Ok(n) => json!(n),
                        Err(_) => json!(s),
                    },
                };
                m.insert((*a).to_string(), b);
            }
            End::Ok(Value::Object(m))
        }
        Err(e) => End::Fail(format!("read: {e}")),
    }
}

async fn bank_op(
    c: &mut Conn,
    p: &mut ProcessHandle,
    rng: &mut StdRng,
    t: Duration,
) -> Result<(), RecordError> {
    if rng.gen_bool(0.4) {
        p.invoke("read", None, Value::Null)?;
        let end = bank_read(c, t).await;
        return record(p, end);
    }
    let from = rng.gen_range(0..BANK_ACCOUNTS.len());
    let to = (from + rng.gen_range(1..BANK_ACCOUNTS.len())) % BANK_ACCOUNTS.len();
    let (from, to) = (BANK_ACCOUNTS[from], BANK_ACCOUNTS[to]);
    let amount = rng.gen_range(1..=5i64);
    let v = json!({"from": from, "to": to, "amount": amount});
    p.invoke("transfer", None, v.clone())?;
    let end = async {
        let ts = match begin(c, t).await {
            Ok(ts) => ts,
            Err(e) => return End::Fail(format!("begin: {e}")),
        };
        let vals = match txn_read(c, t, ts, &[from, to]).await {
            Ok(v) => v,
            Err(e) => return End::Fail(format!("read: {e}")),
        };
        let (f, tb) = match (parse_int(vals[0].as_ref()), parse_int(vals[1].as_ref())) {
            (Ok(f), Ok(tb)) => (f, tb),
            (Err(e), _) | (_, Err(e)) => return End::Fail(e),
        };
        if f < amount {
            return End::Fail(format!("insufficient funds: {from} has {f}"));
        }
        commit(
            c,
            t,
            ts,
            vec![
                put(from, (f - amount).to_string()),
                put(to, (tb + amount).to_string()),
            ],
            v,
        )
        .await
    }
    .await;
    record(p, end)
}

async fn counter_read(c: &mut Conn, t: Duration) -> End {
    let ts = match begin(c, t).await {
        Ok(ts) => ts,
        Err(e) => return End::Fail(format!("begin: {e}")),
    };
    match txn_read(c, t, ts, &[COUNTER_KEY]).await {
        Ok(v) => match parse_int(v[0].as_ref()) {
            Ok(n) => End::Ok(json!(n)),
            Err(e) => End::Ok(json!(e)),
        },
        Err(e) => End::Fail(format!("read: {e}")),
    }
}

async fn counter_op(
    c: &mut Conn,
    p: &mut ProcessHandle,
    rng: &mut StdRng,
    t: Duration,
) -> Result<(), RecordError> {
    if rng.gen_bool(0.3) {
        p.invoke("read", None, Value::Null)?;
        let end = counter_read(c, t).await;
        return record(p, end);
    }
    let delta = rng.gen_range(1..=3i64);
    p.invoke("add", None, json!(delta))?;
    let end = async {
        let ts = match begin(c, t).await {
            Ok(ts) => ts,
            Err(e) => return End::Fail(format!("begin: {e}")),
        };
        let cur = match txn_read(c, t, ts, &[COUNTER_KEY]).await {
            Ok(v) => match parse_int(v[0].as_ref()) {
                Ok(n) => n,
                Err(e) => return End::Fail(e),
            },
            Err(e) => return End::Fail(format!("read: {e}")),
        };
        commit(
            c,
            t,
            ts,
            vec![put(COUNTER_KEY, (cur + delta).to_string())],
            json!(delta),
        )
        .await
    }
    .await;
    record(p, end)
}

/// Final reads after the cluster healed: every key of the workload is read
/// (retrying on other nodes) so the checkers see the end state.
pub async fn final_reads(
    kind: WorkloadKind,
    addrs: &[String],
    shared: &Shared,
    timeout: Duration,
) -> Result<(), WorkloadError> {
    let mut conns = connect_all(addrs).await?;
    let mut p = shared.recorder.process();
    let t = Duration::from_secs(5);
    let start = std::time::Instant::now();
    let mut targets: Vec<&str> = match kind {
        WorkloadKind::Register => REGISTER_KEYS.to_vec(),
        _ => vec![""],
    };
    let mut attempt = 0usize;
    // Bounded by `timeout`; each attempt by its RPC deadlines.
    while let Some(&key) = targets.first() {
        if start.elapsed() > timeout {
            return Err(WorkloadError::Setup(format!(
                "{}: final reads did not succeed within {timeout:?}",
                kind.name()
            )));
        }
        attempt += 1;
        let c = &mut conns[attempt % addrs.len()];
        let ok = match kind {
            WorkloadKind::Register => register_read(c, &mut p, key, t).await?.is_some(),
            WorkloadKind::ListAppend => {
                let mops: Vec<(bool, &'static str, i64)> =
                    LIST_KEYS.iter().map(|k| (false, *k, 0)).collect();
                p.invoke("txn", None, mops_value(&mops))?;
                let (end, _, _) = list_append_txn(c, &mops, t).await;
                let ok = matches!(end, End::Ok(_));
                record(&mut p, end)?;
                ok
            }
            WorkloadKind::Bank => {
                p.invoke("read", None, Value::Null)?;
                let end = bank_read(c, t).await;
                let ok = matches!(end, End::Ok(_));
                record(&mut p, end)?;
                ok
            }
            WorkloadKind::Counter => {
                p.invoke("read", None, Value::Null)?;
                let end = counter_read(c, t).await;
                let ok = matches!(end, End::Ok(_));
                record(&mut p, end)?;
                ok
            }
        };
        if ok {
            targets.remove(0);
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}
