//! Linearizability checker for read/write/cas registers.
//!
//! The history is split per key (linearizability is compositional, so each
//! key's register is checked alone, as Knossos and Porcupine do) and each
//! key is searched with the Wing–Gong algorithm as improved by Lowe ("WGL"):
//! depth-first over "which pending op takes effect next", with a cache of
//! (set of linearized ops, register state) pairs already explored so that
//! equivalent interleavings are not searched twice.
//!
//! Semantics, as in Jepsen:
//! * `ok` ops took effect exactly once between invocation and completion;
//! * `fail` ops did not take effect and are dropped;
//! * `info` (or never completed) writes and cas ops may take effect at any
//!   time after their invocation, or never: their completion is +infinity;
//!   an info cas whose precondition does not hold when it is applied has no
//!   effect; `info` reads carry no information and are dropped.
//! * the register starts as nil (JSON `null`).
//!
//! When a key is not linearizable the checker also looks for a small
//! witness: the shortest prefix of the key's history that already has no
//! linearization (cut just after the completion of the op that cannot be
//! placed), then the latest start from which that prefix still fails when
//! the register's value at the start is left unknown.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check::{Anomaly, AnomalyKind, CheckError, CheckResult};
use crate::history::{compact, History, Op, OpFn, Outcome};

/// Search limits.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// Cap on the memory the WGL cache may use per key, in 64-bit words of
    /// stored bitsets (default 2^25 words = 256 MiB). Past it the key is
    /// reported as "checker gave up".
    pub max_cache_words: usize,
    /// Look for a minimal failing window when a key fails (costs about
    /// 2*log2(n) extra searches of that key).
    pub find_witness: bool,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            max_cache_words: 1 << 25,
            find_witness: true,
        }
    }
}

/// Interned register value; 0 is nil.
type Val = u32;
const NIL: Val = 0;
/// Register state "anything": used only when checking a window that starts
/// mid-history, where the value at the start is not known.
const UNKNOWN: Val = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Read(Val),
    Write(Val),
    /// Acknowledged cas: the register held `old` and now holds `new`.
    Cas(Val, Val),
    /// Indeterminate cas: applied iff the register holds `old` at that time.
    MaybeCas(Val, Val),
}

/// Apply one op to the register, or `None` if the op cannot happen in
/// `state`. With an `UNKNOWN` state the first constraint pins it down.
fn step(state: Val, kind: Kind) -> Option<Val> {
    match kind {
        Kind::Read(v) if state == v || state == UNKNOWN => Some(v),
        Kind::Read(_) => None,
        Kind::Write(v) => Some(v),
        Kind::Cas(o, n) if state == o || state == UNKNOWN => Some(n),
        Kind::Cas(..) => None,
        // From UNKNOWN, assume the unknown value was `old` (permissive, and
        // only used for witness windows, so witnesses stay real failures).
        Kind::MaybeCas(o, n) if state == o || state == UNKNOWN => Some(n),
        // Not applicable now: it has no effect (the search never places
        // such a no-op; leaving it unplaced means the same thing).
        Kind::MaybeCas(..) => Some(state),
    }
}

/// Does an op placed right now depend on the register holding `state`?
fn observes(kind: Kind, state: Val) -> bool {
    match kind {
        Kind::Read(v) | Kind::Cas(v, _) | Kind::MaybeCas(v, _) => v == state,
        Kind::Write(_) => false,
    }
}

/// One op of a key, ready for the search.
#[derive(Debug, Clone, Copy)]
struct ROp {
    /// Index into the caller's op slice (for reporting).
    src: usize,
    kind: Kind,
    inv: u64,
    /// Completion position; `u64::MAX` for indeterminate ops.
    ret: u64,
}

impl ROp {
    fn is_maybe(&self) -> bool {
        self.ret == u64::MAX
    }

    /// The same op if it had not completed yet: reads vanish, writes and
    /// cas become "may or may not take effect".
    fn as_pending(&self) -> Option<ROp> {
        let kind = match self.kind {
            Kind::Read(_) => return None,
            Kind::Write(v) => Kind::Write(v),
            Kind::Cas(o, n) | Kind::MaybeCas(o, n) => Kind::MaybeCas(o, n),
        };
        Some(ROp {
            kind,
            ret: u64::MAX,
            ..*self
        })
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, Val>,
    values: Vec<Value>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            ids: HashMap::new(),
            values: vec![Value::Null],
        }
    }

    fn intern(&mut self, v: &Value) -> Val {
        if v.is_null() {
            return NIL;
        }
        let s = compact(v);
        if let Some(&id) = self.ids.get(&s) {
            return id;
        }
        let id = self.values.len() as Val;
        self.values.push(v.clone());
        self.ids.insert(s, id);
        id
    }

    fn show(&self, v: Val) -> String {
        match v {
            UNKNOWN => "?".to_string(),
            _ => self
                .values
                .get(v as usize)
                .map(compact)
                .unwrap_or_else(|| format!("#{v}")),
        }
    }
}

/// Convert a history op to a search op; `Ok(None)` means the op carries no
/// information (failed ops, indeterminate reads).
fn prepare(op: &Op, src: usize, vals: &mut Interner) -> Result<Option<ROp>, CheckError> {
    let ret = match op.outcome {
        Outcome::Fail => return Ok(None),
        Outcome::Ok => op.ret_pos(),
        Outcome::Info => u64::MAX,
    };
    let kind = match &op.f {
        OpFn::Read => {
            if op.outcome != Outcome::Ok {
                return Ok(None);
            }
            Kind::Read(vals.intern(&op.value))
        }
        OpFn::Write => Kind::Write(vals.intern(&op.invoke_value)),
        OpFn::Cas => {
            let pair = op
                .invoke_value
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| {
                    CheckError::bad_op(
                        op.invoke_index,
                        format!(
                            "cas value must be [old, new], got {}",
                            compact(&op.invoke_value)
                        ),
                    )
                })?;
            let (o, n) = (vals.intern(&pair[0]), vals.intern(&pair[1]));
            if op.outcome == Outcome::Ok {
                Kind::Cas(o, n)
            } else {
                Kind::MaybeCas(o, n)
            }
        }
        other => {
            return Err(CheckError::bad_op(
                op.invoke_index,
                format!("register workload has no function {other}"),
            ))
        }
    };
    Ok(Some(ROp {
        src,
        kind,
        inv: op.invoke_index,
        ret,
    }))
}

/// Drop indeterminate writes/cas whose written value nobody could observe
/// afterwards (no read of it, no cas expecting it, completing after the op's
/// invocation). Such an op can always be moved to "never happened" without
/// breaking a linearization, and removing it keeps the search from trying
/// it at every step. Iterated because dropping an info cas can make its
/// `old` value unobserved in turn.
fn prune_unobservable(mut ops: Vec<ROp>) -> Vec<ROp> {
    loop {
        // value -> latest completion among the ops that observe it.
        let mut observed: HashMap<Val, u64> = HashMap::new();
        for o in &ops {
            let v = match o.kind {
                Kind::Read(v) | Kind::Cas(v, _) | Kind::MaybeCas(v, _) => v,
                Kind::Write(_) => continue,
            };
            let e = observed.entry(v).or_insert(0);
            *e = (*e).max(o.ret);
        }
        let before = ops.len();
        ops.retain(|o| {
            if !o.is_maybe() {
                return true;
            }
            let written = match o.kind {
                Kind::Write(v) | Kind::MaybeCas(_, v) => v,
                _ => return true,
            };
            observed.get(&written).is_some_and(|&r| r > o.inv)
        });
        if ops.len() == before {
            return ops;
        }
    }
}

/// Identity-ish hasher: cache keys are already random Zobrist hashes.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// One explored configuration: which ops are placed, the register value,
/// and whether the next op must observe it.
struct Visited {
    state: Val,
    need: bool,
    placed: Box<[u64]>,
}

/// Lowe's cache, keyed by the Zobrist hash of the configuration. (Pruning
/// configurations whose placed maybe ops are a superset of a visited one is
/// also sound, but scanning for subsets cost more than the ~25% of states
/// it saved in experiments.)
type Cache = HashMap<u64, Vec<Visited>, BuildHasherDefault<PassHasher>>;

enum Search {
    Linearizable,
    /// No linearization; `best` is the longest partial linearization found
    /// (op positions in the searched slice, with the state after each),
    /// if it was asked for.
    Fails {
        best: Vec<(usize, Val)>,
    },
    GaveUp {
        states: usize,
    },
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}

/// Cheap pre-check that settles the common "read a value nobody wrote"
/// failure without an exhaustive search: does some acknowledged read or cas
/// need a value that is neither the initial one nor written by an op
/// invoked before it completed?
///
/// From an unknown initial value, such an op is still impossible if some
/// acknowledged write or cas completed before it was invoked (the unknown
/// initial value was overwritten by then).
fn has_impossible_op(ops: &[ROp], init: Val) -> bool {
    let first_definite_write = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Write(_) | Kind::Cas(..)) && !o.is_maybe())
        .map(|o| o.ret)
        .min()
        .unwrap_or(u64::MAX);
    // value -> earliest invocation of an op that can write it.
    let mut first_write: HashMap<Val, u64> = HashMap::new();
    for o in ops {
        if let Kind::Write(v) | Kind::Cas(_, v) | Kind::MaybeCas(_, v) = o.kind {
            let e = first_write.entry(v).or_insert(u64::MAX);
            *e = (*e).min(o.inv);
        }
    }
    ops.iter().any(|o| match o.kind {
        Kind::Read(v) | Kind::Cas(v, _) => {
            let initial_possible = if init == UNKNOWN {
                first_definite_write > o.inv
            } else {
                v == init
            };
            !initial_possible && first_write.get(&v).is_none_or(|&w| w > o.ret)
        }
        _ => false,
    })
}

/// WGL search over `ops` starting from register value `init`.
///
/// Besides Lowe's cache, these reductions keep indeterminate (maybe) ops and
/// wide concurrency from multiplying the search space; each only discards
/// linearizations that have an equivalent one still explored:
/// * a maybe op is only placed if the very next op placed observes the
///   value it wrote (a read of it, or a cas expecting it), and never if it
///   leaves the value unchanged. Any linearization can be rewritten that
///   way: an unobserved maybe op is followed by a write (so it can be
///   dropped, i.e. "never happened") or by a no-effect maybe cas (drop that).
/// * identical maybe ops (same kind and arguments) are placed in invocation
///   order: swapping which of two identical ops is used changes nothing.
/// * a read of the current value is placed at once and its alternatives are
///   not tried: it changes nothing and everything that must precede it is
///   already placed, so moving it earlier never hurts.
fn search(ops: &[ROp], init: Val, max_cache_words: usize, want_best: bool) -> Search {
    if !want_best && has_impossible_op(ops, init) {
        return Search::Fails { best: Vec::new() };
    }
    let n = ops.len();
    // Entry nodes: 0 = head sentinel, 1..=2n = call/return entries,
    // 2n+1 = tail sentinel; a doubly linked list sorted by position.
    let head = 0usize;
    let tail = 2 * n + 1;
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.inv, false, i));
        order.push((o.ret, true, i));
    }
    // Positions are unique event indices except the shared +infinity of
    // indeterminate ops, whose relative order does not matter.
    order.sort_unstable();
    let mut next = vec![0usize; 2 * n + 2];
    let mut prev = vec![0usize; 2 * n + 2];
    let mut op_of = vec![0usize; 2 * n + 2];
    let mut is_call = vec![false; 2 * n + 2];
    let mut ret_node = vec![0usize; n];
    for (k, &(_, is_ret, i)) in order.iter().enumerate() {
        let node = k + 1;
        op_of[node] = i;
        is_call[node] = !is_ret;
        if is_ret {
            ret_node[i] = node;
        }
    }
    for node in 0..=2 * n {
        next[node] = node + 1;
        prev[node + 1] = node;
    }
    let lift = |node: usize, next: &mut [usize], prev: &mut [usize], r: usize| {
        next[prev[node]] = next[node];
        prev[next[node]] = prev[node];
        next[prev[r]] = next[r];
        prev[next[r]] = prev[r];
    };
    let unlift = |node: usize, next: &mut [usize], prev: &mut [usize], r: usize| {
        next[prev[r]] = r;
        prev[next[r]] = r;
        next[prev[node]] = node;
        prev[next[node]] = node;
    };

    let mut placed = vec![0u64; n.div_ceil(64).max(1)];
    let entry_words = placed.len() + 2;
    // Zobrist hashing: the hash of the placed set is updated in O(1).
    let mut seed = 0x5EED_u64;
    let zobrist: Vec<u64> = (0..n).map(|_| splitmix(&mut seed)).collect();
    let state_mix = |s: Val, need: bool| {
        (u64::from(s) * 2 + u64::from(need)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    // Previous identical maybe op in invocation order.
    let mut prev_same: Vec<Option<usize>> = vec![None; n];
    {
        let mut by_inv: Vec<usize> = (0..n).filter(|&i| ops[i].is_maybe()).collect();
        by_inv.sort_by_key(|&i| ops[i].inv);
        let mut last: HashMap<Kind, usize> = HashMap::new();
        for i in by_inv {
            prev_same[i] = last.insert(ops[i].kind, i);
        }
    }

    let mut hash = 0u64;
    let mut state = init;
    let mut remaining_definite = ops.iter().filter(|o| !o.is_maybe()).count();
    // True right after placing a maybe op: the next op must observe it.
    let mut need_observer = false;
    // (call node, state before, need_observer before, forced)
    let mut stack: Vec<(usize, Val, bool, bool)> = Vec::new();
    let mut cache: Cache = HashMap::default();
    let mut cache_words = 0usize;
    let mut states = 0usize;
    let mut best: Vec<(usize, Val)> = Vec::new();

    let mut node = next[head];
    loop {
        // Indeterminate ops left over can all be "never happened".
        if remaining_definite == 0 {
            return Search::Linearizable;
        }
        if node == tail {
            // Unreachable while a definite op remains (its return entry is
            // still in the list), but never loop forever on a logic slip.
            return Search::Fails { best };
        }
        let i = op_of[node];
        let mut backtrack = !is_call[node];
        if is_call[node] {
            let o = ops[i];
            let allowed = (!need_observer || observes(o.kind, state))
                && !(o.is_maybe() && prev_same[i].is_some_and(|j| !bit(&placed, j)));
            let next_state = if allowed { step(state, o.kind) } else { None };
            let next_state = next_state.filter(|&ns| !(o.is_maybe() && ns == state));
            let forced = matches!(o.kind, Kind::Read(v) if v == state);
            if let Some(ns) = next_state {
                let need = o.is_maybe();
                let nh = hash ^ zobrist[i];
                flip(&mut placed, i);
                let bucket = cache.entry(nh ^ state_mix(ns, need)).or_default();
                let seen = bucket
                    .iter()
                    .any(|v| v.state == ns && v.need == need && *v.placed == *placed);
                if !seen {
                    bucket.push(Visited {
                        state: ns,
                        need,
                        placed: placed.clone().into_boxed_slice(),
                    });
                    cache_words += entry_words;
                    states += 1;
                    if cache_words > max_cache_words {
                        return Search::GaveUp { states };
                    }
                    stack.push((node, state, need_observer, forced));
                    state = ns;
                    need_observer = need;
                    hash = nh;
                    lift(node, &mut next, &mut prev, ret_node[i]);
                    if !need {
                        remaining_definite -= 1;
                    }
                    if want_best && stack.len() > best.len() {
                        best = stack.iter().map(|&(nd, ..)| (op_of[nd], 0)).collect();
                        // Fill in the state after each op by replaying.
                        let mut s = init;
                        for b in best.iter_mut() {
                            s = step(s, ops[b.0].kind).unwrap_or(s);
                            b.1 = s;
                        }
                    }
                    node = next[head];
                    continue;
                }
                flip(&mut placed, i);
                // Already explored and failed; for a forced read that
                // settles this level too.
                backtrack = forced;
            }
            node = next[node];
        }
        // At the completion of an op that is not placed yet (or after a
        // forced read failed) the current prefix cannot be extended. Undo
        // the last placement and try its next sibling; forced placements
        // have no siblings worth trying, so keep undoing past them.
        while backtrack {
            let Some((call, s, need, forced)) = stack.pop() else {
                return Search::Fails { best };
            };
            let j = op_of[call];
            flip(&mut placed, j);
            hash ^= zobrist[j];
            if !ops[j].is_maybe() {
                remaining_definite += 1;
            }
            need_observer = need;
            state = s;
            unlift(call, &mut next, &mut prev, ret_node[j]);
            node = next[call];
            backtrack = forced;
        }
    }
}

/// Check every key of a register history.
pub fn check_register(history: &History, cfg: &RegisterConfig) -> Result<CheckResult, CheckError> {
    let ops = history.ops()?;
    check_register_ops(&ops, cfg)
}

/// Check already-paired ops (see [`History::ops`]).
pub fn check_register_ops(ops: &[Op], cfg: &RegisterConfig) -> Result<CheckResult, CheckError> {
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key_id()).or_default().push(i);
    }
    let mut anomalies = Vec::new();
    let mut checked = 0usize;
    for (key, idxs) in &by_key {
        let mut vals = Interner::new();
        let mut rops = Vec::with_capacity(idxs.len());
        for &i in idxs {
            if let Some(r) = prepare(&ops[i], i, &mut vals)? {
                rops.push(r);
            }
        }
        checked += rops.len();
        let pruned = prune_unobservable(rops.clone());
        match search(&pruned, NIL, cfg.max_cache_words, false) {
            Search::Linearizable => {}
            Search::GaveUp { states } => anomalies.push(Anomaly::new(
                AnomalyKind::CheckerGaveUp,
                format!(
                    "key {key}: search gave up after {states} states ({} ops); raise max_cache_words",
                    pruned.len()
                ),
                vec![],
            )),
            Search::Fails { .. } => {
                anomalies.push(report_failure(key, &rops, ops, &vals, cfg));
            }
        }
    }
    Ok(CheckResult::from_anomalies(
        "register",
        checked,
        anomalies,
        vec![],
    ))
}

/// The key's ops as they stood just after position `t`: ops invoked later
/// vanish, ops still running become indeterminate.
fn prefix_at(rops: &[ROp], t: u64) -> Vec<ROp> {
    rops.iter()
        .filter(|o| o.inv < t)
        .filter_map(|o| if o.ret <= t { Some(*o) } else { o.as_pending() })
        .collect()
}

/// `prefix` without the ops that completed before position `s`; the
/// register value at `s` is then unknown (unless nothing was dropped).
fn window_from(prefix: &[ROp], s: u64) -> (Vec<ROp>, Val) {
    let w: Vec<ROp> = prefix.iter().filter(|o| o.ret >= s).copied().collect();
    let init = if w.len() == prefix.len() {
        NIL
    } else {
        UNKNOWN
    };
    (w, init)
}

/// Does this (partial) history certainly fail? Witness searches share a
/// deadline (checked between searches): giving up only means that a larger
/// (still failing) window gets reported.
fn fails(ops: &[ROp], init: Val, budget: usize, deadline: Instant) -> bool {
    if Instant::now() > deadline {
        return false;
    }
    matches!(
        search(&prune_unobservable(ops.to_vec()), init, budget, false),
        Search::Fails { .. }
    )
}

/// Total time spent looking for a small witness window for one key.
const WITNESS_TIME: Duration = Duration::from_secs(3);

fn report_failure(
    key: &str,
    rops: &[ROp],
    ops: &[Op],
    vals: &Interner,
    cfg: &RegisterConfig,
) -> Anomaly {
    if !cfg.find_witness {
        return Anomaly::new(
            AnomalyKind::NonLinearizable,
            format!(
                "key {key}: no linearization of its {} ops exists",
                rops.len()
            ),
            rops.iter().map(|o| o.inv).collect(),
        );
    }
    let deadline = Instant::now() + WITNESS_TIME;
    // Prefixes start from the known nil value and are about as hard as the
    // full search, so they get its budget; windows from an unknown value
    // can blow up, and are only a refinement, so they get less.
    let window_budget = cfg.max_cache_words / 16;
    // Shortest failing prefix: failure is monotone in the cut point.
    let mut cuts: Vec<u64> = rops
        .iter()
        .filter(|o| !o.is_maybe())
        .map(|o| o.ret)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let (mut lo, mut hi) = (0usize, cuts.len().saturating_sub(1));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(
            &prefix_at(rops, cuts[mid]),
            NIL,
            cfg.max_cache_words,
            deadline,
        ) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = cuts.get(hi).copied().unwrap_or(u64::MAX);
    let prefix = prefix_at(rops, t);
    // Latest start that still fails with an unknown starting value.
    // Failure is not strictly monotone in the start, so this is a heuristic:
    // gallop back from the end (small windows are cheap to search), then
    // bisect; every window it settles on has been seen to fail.
    let mut starts: Vec<u64> = prefix.iter().map(|o| o.inv).collect();
    starts.sort_unstable();
    starts.dedup();
    let len = starts.len();
    let (mut lo, mut hi) = (0usize, len);
    let mut back = 1usize;
    while back < len {
        let k = len - back;
        let (w, init) = window_from(&prefix, starts[k]);
        if fails(&w, init, window_budget, deadline) {
            lo = k;
            break;
        }
        hi = k;
        back *= 2;
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let (w, init) = window_from(&prefix, starts[mid]);
        if fails(&w, init, window_budget, deadline) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let s = starts.get(lo).copied().unwrap_or(0);
    let (mut window, init) = window_from(&prefix, s);
    window.sort_by_key(|o| o.inv);
    // Only for the explanation, so it gets the window budget as well.
    let best = match search(
        &prune_unobservable(window.clone()),
        init,
        window_budget,
        true,
    ) {
        Search::Fails { best } => Some(best),
        _ => None,
    };
    let culprit = rops.iter().find(|o| o.ret == t);

    let mut text = String::new();
    text.push_str(&format!(
        "key {key}: not linearizable ({} ops on this key).\n",
        rops.len()
    ));
    if let Some(c) = culprit {
        text.push_str(&format!(
            "The key's history is linearizable up to, but not including, the completion of\n  {}\n",
            ops[c.src].describe()
        ));
    }
    text.push_str(&format!(
        "Smallest failing window found: {} ops, history indices {}..={}, starting from {}:\n",
        window.len(),
        s,
        t,
        if init == NIL {
            "the initial nil register"
        } else {
            "an unknown register value"
        }
    ));
    text.push_str(&list_ops(&window, ops, t, culprit.map(|c| c.src)));
    if let Some(best) = best {
        // The same slice the search saw: pruning keeps the window's order.
        let pruned = prune_unobservable(window.clone());
        if best.is_empty() {
            text.push_str("Not even the first op of the window can be linearized.\n");
        } else {
            text.push_str(&format!(
                "Longest linearization found in that window (register value after each op):\n    start: {}\n",
                vals.show(init)
            ));
            for (k, s) in &best {
                if let Some(o) = pruned.get(*k) {
                    text.push_str(&format!(
                        "    p{} {}  => {}\n",
                        ops[o.src].process,
                        short_kind(o, vals),
                        vals.show(*s)
                    ));
                }
            }
            let placed: Vec<usize> = best
                .iter()
                .filter_map(|(k, _)| pruned.get(*k).map(|o| o.src))
                .collect();
            let stuck: Vec<String> = pruned
                .iter()
                .filter(|o| !o.is_maybe() && !placed.contains(&o.src))
                .map(|o| format!("  {}", ops[o.src].describe()))
                .collect();
            if !stuck.is_empty() {
                text.push_str("after which none of these could be placed:\n");
                text.push_str(&stuck.join("\n"));
                text.push('\n');
            }
        }
    }
    let idx: Vec<u64> = window.iter().map(|o| o.inv).collect();
    Anomaly::new(AnomalyKind::NonLinearizable, text, idx)
}

fn short_kind(o: &ROp, vals: &Interner) -> String {
    let s = match o.kind {
        Kind::Read(v) => format!("read {}", vals.show(v)),
        Kind::Write(v) => format!("write {}", vals.show(v)),
        Kind::Cas(o, n) => format!("cas {} {}", vals.show(o), vals.show(n)),
        Kind::MaybeCas(o, n) => format!("cas {} {}", vals.show(o), vals.show(n)),
    };
    if o.is_maybe() {
        format!("{s} (indeterminate)")
    } else {
        s
    }
}

const MAX_LISTED: usize = 80;

fn list_ops(window: &[ROp], ops: &[Op], t: u64, culprit: Option<usize>) -> String {
    let mut lines: Vec<String> = window
        .iter()
        .map(|o| {
            let op = &ops[o.src];
            let mut l = format!("  {}", op.describe());
            if Some(o.src) == culprit {
                l.push_str("   <== cannot be linearized");
            } else if o.is_maybe() && op.outcome == Outcome::Ok && op.ret_pos() > t {
                l.push_str("   (still running at the cut)");
            } else if o.is_maybe() {
                l.push_str("   (may or may not have taken effect)");
            }
            l
        })
        .collect();
    if lines.len() > MAX_LISTED {
        let tail = lines.split_off(lines.len() - MAX_LISTED / 2);
        let skipped = lines.len() - MAX_LISTED / 2;
        lines.truncate(MAX_LISTED / 2);
        lines.push(format!("  … {skipped} ops omitted …"));
        lines.extend(tail);
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Validity;
    use crate::history::{EventType, HistoryBuilder};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// Events on key "x": (type, process, f, value).
    fn hist(events: &[(&str, u64, &str, Value)]) -> History {
        hist_keyed(
            &events
                .iter()
                .map(|(t, p, f, v)| (*t, *p, *f, "x", v.clone()))
                .collect::<Vec<_>>(),
        )
    }

    fn hist_keyed(events: &[(&str, u64, &str, &str, Value)]) -> History {
        let mut b = HistoryBuilder::new();
        for (t, p, f, k, v) in events {
            let kind = match *t {
                "invoke" => EventType::Invoke,
                "ok" => EventType::Ok,
                "fail" => EventType::Fail,
                _ => EventType::Info,
            };
            b.event(kind, *p, *f, Some(json!(k)), v.clone());
        }
        b.build()
    }

    fn check(h: &History) -> CheckResult {
        check_register(h, &RegisterConfig::default()).expect("well-formed history")
    }

    fn assert_valid(h: &History) {
        let r = check(h);
        assert_eq!(r.valid, Validity::Valid, "expected valid:\n{r}");
    }

    fn assert_invalid(h: &History) -> CheckResult {
        let r = check(h);
        assert_eq!(r.valid, Validity::Invalid, "expected invalid:\n{r}");
        assert!(r.has(AnomalyKind::NonLinearizable));
        r
    }

    const N: Value = Value::Null;

    #[test]
    fn sequential_history_is_linearizable() {
        assert_valid(&hist(&[
            ("invoke", 0, "read", N),
            ("ok", 0, "read", N),
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(1)),
        ]));
    }

    #[test]
    fn stale_read_is_flagged() {
        let r = assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 0, "write", json!(2)),
            ("ok", 0, "write", json!(2)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(1)),
        ]));
        let text = &r.anomalies[0].text;
        assert!(
            text.contains("p1 read \"x\" 1 -> ok [4..5]   <== cannot be linearized"),
            "{text}"
        );
    }

    #[test]
    fn nil_read_after_acknowledged_write_is_flagged() {
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", N),
        ]));
    }

    #[test]
    fn read_of_never_written_value_is_flagged() {
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(7)),
            ("ok", 0, "write", json!(1)),
        ]));
    }

    #[test]
    fn concurrent_read_may_see_old_or_new_value() {
        for seen in [json!(1), json!(2)] {
            assert_valid(&hist(&[
                ("invoke", 0, "write", json!(1)),
                ("ok", 0, "write", json!(1)),
                ("invoke", 0, "write", json!(2)),
                ("invoke", 1, "read", N),
                ("ok", 1, "read", seen.clone()),
                ("ok", 0, "write", json!(2)),
            ]));
        }
    }

    #[test]
    fn reads_cannot_flip_back_during_a_write() {
        // Two sequential reads during one write: once 2 is seen, 1 is gone.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 0, "write", json!(2)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(2)),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(1)),
            ("ok", 0, "write", json!(2)),
        ]));
    }

    #[test]
    fn cas_semantics() {
        // Successful cas then read of the new value.
        assert_valid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("ok", 1, "cas", json!([1, 2])),
            ("invoke", 2, "cas", json!([1, 3])),
            ("fail", 2, "cas", json!([1, 3])),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(2)),
        ]));
        // An acknowledged cas whose expected value was not there.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(3)),
            ("ok", 0, "write", json!(3)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("ok", 1, "cas", json!([1, 2])),
        ]));
        // Two acknowledged cas from the same old value: only one can win.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("invoke", 2, "cas", json!([1, 3])),
            ("ok", 1, "cas", json!([1, 2])),
            ("ok", 2, "cas", json!([1, 3])),
        ]));
        // A failed cas did not happen, so its new value cannot be read.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("fail", 1, "cas", json!([1, 2])),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(2)),
        ]));
    }

    #[test]
    fn cas_chain_from_nil_with_concurrent_reads_is_linearizable() {
        // cas nil->1, then two concurrent cas from 1 (one wins, the loser
        // fails cleanly), reads overlapping the winner see either value.
        assert_valid(&hist(&[
            ("invoke", 0, "cas", json!([null, 1])),
            ("ok", 0, "cas", json!([null, 1])),
            ("invoke", 1, "cas", json!([1, 2])),
            ("invoke", 2, "cas", json!([1, 3])),
            ("invoke", 3, "read", N),
            ("ok", 3, "read", json!(1)),
            ("invoke", 3, "read", N),
            ("ok", 2, "cas", json!([1, 3])),
            ("fail", 1, "cas", json!([1, 2])),
            ("ok", 3, "read", json!(3)),
            ("invoke", 0, "write", json!(4)),
            ("ok", 0, "write", json!(4)),
            ("invoke", 1, "cas", json!([4, 5])),
            ("ok", 1, "cas", json!([4, 5])),
            ("invoke", 3, "read", N),
            ("ok", 3, "read", json!(5)),
        ]));
    }

    #[test]
    fn read_contradicting_a_completed_cas_is_flagged() {
        // cas 1->2 was acknowledged before the read began: reading 1 again
        // means the cas was lost or the read is stale.
        let r = assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("ok", 1, "cas", json!([1, 2])),
            ("invoke", 2, "read", N),
            ("ok", 2, "read", json!(1)),
        ]));
        assert!(r.has(AnomalyKind::NonLinearizable), "{r}");
        // The same read overlapping the cas is fine.
        assert_valid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("invoke", 2, "read", N),
            ("ok", 2, "read", json!(1)),
            ("ok", 1, "cas", json!([1, 2])),
        ]));
    }

    #[test]
    fn cas_after_an_overwrite_is_flagged() {
        // write 1, write 9 (both acknowledged), then a cas from 1 succeeds:
        // it compared against a value that was already gone.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 0, "write", json!(9)),
            ("ok", 0, "write", json!(9)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("ok", 1, "cas", json!([1, 2])),
        ]));
        // An indeterminate cas from the same stale value explains nothing:
        // a later read of its new value is impossible.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 0, "write", json!(9)),
            ("ok", 0, "write", json!(9)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("info", 1, "cas", N),
            ("invoke", 2, "read", N),
            ("ok", 2, "read", json!(2)),
        ]));
    }

    #[test]
    fn info_write_may_take_effect_late() {
        // The write timed out; its effect shows up long after.
        assert_valid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("info", 0, "write", N),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", N),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", N),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(1)),
        ]));
    }

    #[test]
    fn info_write_may_never_take_effect() {
        assert_valid(&hist(&[
            ("invoke", 2, "write", json!(0)),
            ("ok", 2, "write", json!(0)),
            ("invoke", 0, "write", json!(1)),
            ("info", 0, "write", N),
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(0)),
        ]));
    }

    #[test]
    fn info_write_takes_effect_at_most_once() {
        // 2 appeared, then 1 came back: the info write cannot explain it.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "write", json!(2)),
            ("info", 1, "write", N),
            ("invoke", 2, "read", N),
            ("ok", 2, "read", json!(2)),
            ("invoke", 2, "read", N),
            ("ok", 2, "read", json!(1)),
        ]));
    }

    #[test]
    fn info_write_cannot_take_effect_before_invocation() {
        assert_invalid(&hist(&[
            ("invoke", 1, "read", N),
            ("ok", 1, "read", json!(5)),
            ("invoke", 0, "write", json!(5)),
            ("info", 0, "write", N),
        ]));
    }

    #[test]
    fn info_cas_may_or_may_not_apply() {
        // Applied late.
        assert_valid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("info", 1, "cas", N),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(1)),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(2)),
        ]));
        // Cannot apply: the register held 3 from before its invocation on.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 0, "write", json!(3)),
            ("ok", 0, "write", json!(3)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("info", 1, "cas", N),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(2)),
        ]));
        // Applied, then a read shows the old value again: impossible.
        assert_invalid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "cas", json!([1, 2])),
            ("info", 1, "cas", N),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(2)),
            ("invoke", 0, "read", N),
            ("ok", 0, "read", json!(1)),
        ]));
    }

    #[test]
    fn info_and_failed_reads_are_ignored() {
        assert_valid(&hist(&[
            ("invoke", 0, "write", json!(1)),
            ("ok", 0, "write", json!(1)),
            ("invoke", 1, "read", N),
            ("fail", 1, "read", json!(9)),
            ("invoke", 2, "read", N),
            ("info", 2, "read", N),
        ]));
    }

    #[test]
    fn keys_are_checked_independently_and_bad_key_reported() {
        let h = hist_keyed(&[
            ("invoke", 0, "write", "a", json!(1)),
            ("ok", 0, "write", "a", json!(1)),
            ("invoke", 1, "write", "b", json!(1)),
            ("ok", 1, "write", "b", json!(1)),
            ("invoke", 0, "read", "a", N),
            ("ok", 0, "read", "a", json!(1)),
            // b was never written 2.
            ("invoke", 1, "read", "b", N),
            ("ok", 1, "read", "b", json!(2)),
        ]);
        let r = check(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies.len(), 1);
        assert!(r.anomalies[0].text.starts_with("key \"b\""), "{r}");
    }

    #[test]
    fn malformed_cas_is_an_error() {
        let h = hist(&[("invoke", 0, "cas", json!(1)), ("ok", 0, "cas", N)]);
        assert!(matches!(
            check_register(&h, &RegisterConfig::default()),
            Err(CheckError::BadOp { index: 0, .. })
        ));
    }

    #[test]
    fn witness_window_is_small() {
        // 200 sequential writes/reads, then a stale read at the end.
        let mut ev = Vec::new();
        for i in 0..100u64 {
            ev.push(("invoke", 0, "write", json!(i)));
            ev.push(("ok", 0, "write", json!(i)));
            ev.push(("invoke", 1, "read", N));
            ev.push(("ok", 1, "read", json!(i)));
        }
        ev.push(("invoke", 1, "read", N));
        ev.push(("ok", 1, "read", json!(42)));
        let r = assert_invalid(&hist(&ev));
        let a = &r.anomalies[0];
        assert!(a.ops.len() <= 3, "window too big: {:?}\n{}", a.ops, a.text);
        assert!(a.text.contains("read \"x\" 42"), "{}", a.text);
        assert!(a.text.contains("<== cannot be linearized"), "{}", a.text);
    }

    /// A simulated linearizable register: every op takes effect at a random
    /// instant between its invocation and completion (or, for crashed ops,
    /// at a random later time or never).
    fn simulate(seed: u64, procs: usize, n_ops: usize, crash_prob: f64) -> History {
        #[derive(Clone)]
        enum St {
            Idle,
            Invoked { f: &'static str, arg: Value },
            Applied { result: Value, ok: bool },
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let rec = std::sync::Arc::new(crate::history::Recorder::new());
        let mut handles: Vec<_> = (0..procs).map(|_| rec.process()).collect();
        let mut st = vec![St::Idle; procs];
        let mut reg = Value::Null;
        // Crashed ops that may still take effect: (f, arg).
        let mut ghosts: Vec<(&'static str, Value)> = Vec::new();
        let apply = |reg: &mut Value, f: &str, arg: &Value| -> (Value, bool) {
            match f {
                "read" => (reg.clone(), true),
                "write" => {
                    *reg = arg.clone();
                    (arg.clone(), true)
                }
                _ => {
                    if *reg == arg[0] {
                        *reg = arg[1].clone();
                        (arg.clone(), true)
                    } else {
                        (arg.clone(), false)
                    }
                }
            }
        };
        let mut invoked = 0;
        loop {
            if invoked >= n_ops && st.iter().all(|s| matches!(s, St::Idle)) {
                break;
            }
            if !ghosts.is_empty() && rng.gen_bool(0.05) {
                let g = ghosts.swap_remove(rng.gen_range(0..ghosts.len()));
                if rng.gen_bool(0.5) {
                    apply(&mut reg, g.0, &g.1);
                }
            }
            let p = rng.gen_range(0..procs);
            let h = &mut handles[p];
            st[p] = match st[p].clone() {
                St::Idle if invoked < n_ops => {
                    invoked += 1;
                    let (f, arg) = match rng.gen_range(0..10) {
                        0..=3 => ("read", Value::Null),
                        4..=7 => ("write", json!(rng.gen_range(0..5))),
                        _ => ("cas", json!([rng.gen_range(0..5), rng.gen_range(0..5)])),
                    };
                    h.invoke(f, Some(json!("x")), arg.clone()).unwrap();
                    St::Invoked { f, arg }
                }
                St::Idle => St::Idle,
                St::Invoked { f, arg } => {
                    if rng.gen_bool(crash_prob) {
                        h.info("timeout").unwrap();
                        ghosts.push((f, arg));
                        St::Idle
                    } else {
                        let (result, ok) = apply(&mut reg, f, &arg);
                        St::Applied { result, ok }
                    }
                }
                St::Applied { result, ok } => {
                    if rng.gen_bool(crash_prob) {
                        h.info("lost reply").unwrap();
                    } else if ok {
                        h.ok(result).unwrap();
                    } else {
                        h.fail(result, "cas mismatch").unwrap();
                    }
                    St::Idle
                }
            };
        }
        rec.snapshot()
    }

    #[test]
    fn random_linearizable_histories_pass_and_mutations_fail() {
        for seed in 0..40u64 {
            let procs = 2 + (seed as usize % 5);
            let crash = if seed % 3 == 0 { 0.0 } else { 0.05 };
            let h = simulate(seed, procs, 150, crash);
            let r = check(&h);
            assert_eq!(r.valid, Validity::Valid, "seed {seed}:\n{r}");

            // Mutate one ok read to a value nobody ever wrote.
            let mut bad = h.clone();
            let reads: Vec<usize> = bad
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == EventType::Ok && e.f == OpFn::Read)
                .map(|(i, _)| i)
                .collect();
            let victim = reads[reads.len() / 2];
            bad.events[victim].value = json!(999);
            let r = check(&bad);
            assert_eq!(r.valid, Validity::Invalid, "seed {seed} mutated");
        }
    }

    #[test]
    fn witness_stays_small_in_a_long_concurrent_history() {
        // No info ops: a changed read is usually a real violation, and the
        // reported window must be local to it, not the whole history.
        let h = simulate(5, 6, 2000, 0.0);
        let reads: Vec<usize> = h
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EventType::Ok && e.f == OpFn::Read)
            .map(|(i, _)| i)
            .collect();
        let mut bad = h.clone();
        bad.events[reads[reads.len() / 2]].value = json!(777);
        let r = assert_invalid(&bad);
        let a = &r.anomalies[0];
        assert!(
            a.ops.len() <= 30,
            "window of {} ops:\n{}",
            a.ops.len(),
            a.text
        );
    }

    #[test]
    fn thousands_of_ops_per_key_are_fast() {
        let h = simulate(7, 8, 3000, 0.01);
        let t = std::time::Instant::now();
        let r = check(&h);
        let took = t.elapsed();
        assert_eq!(r.valid, Validity::Valid, "{r}");
        assert!(r.ops_checked > 2000, "{}", r.ops_checked);
        // Generous bound for loaded CI machines; typically far less.
        assert!(took.as_secs_f64() < 5.0, "took {took:?}");
        eprintln!("3000-op register history checked in {took:?}");
    }

    /// Exhaustive reference: try every order (and, for indeterminate ops,
    /// "never") that respects real time. Only for a handful of ops.
    fn brute_force(ops: &[ROp], placed: &mut Vec<bool>, state: Val) -> bool {
        let pending: Vec<usize> = (0..ops.len()).filter(|&i| !placed[i]).collect();
        if pending.iter().all(|&i| ops[i].is_maybe()) {
            return true;
        }
        for &x in &pending {
            // x may go next unless some other unplaced op finished before x
            // was invoked.
            if pending.iter().any(|&y| y != x && ops[y].ret < ops[x].inv) {
                continue;
            }
            let next = match ops[x].kind {
                Kind::MaybeCas(o, n) => Some(if state == o { n } else { state }),
                k => step(state, k),
            };
            if let Some(ns) = next {
                placed[x] = true;
                let ok = brute_force(ops, placed, ns);
                placed[x] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = StdRng::seed_from_u64(42);
        let (mut valid, mut invalid) = (0, 0);
        for case in 0..3000 {
            let mut b = HistoryBuilder::new();
            let mut next_proc = 3u64;
            let mut procs: Vec<(u64, Option<&str>)> = (0..3).map(|p| (p, None)).collect();
            let n_ops = rng.gen_range(2..=8);
            let mut invoked = 0;
            while invoked < n_ops || procs.iter().any(|p| p.1.is_some()) {
                let slot = rng.gen_range(0..procs.len());
                let (p, pending) = procs[slot];
                match pending {
                    None if invoked < n_ops => {
                        invoked += 1;
                        let (f, v) = match rng.gen_range(0..3) {
                            0 => ("read", Value::Null),
                            1 => ("write", json!(rng.gen_range(0..3))),
                            _ => ("cas", json!([rng.gen_range(0..3), rng.gen_range(0..3)])),
                        };
                        b.invoke(p, f, Some(json!("x")), v);
                        procs[slot].1 = Some(f);
                    }
                    None => {}
                    Some(f) => {
                        match rng.gen_range(0..10) {
                            0 => {
                                b.info(p);
                                procs[slot].0 = next_proc;
                                next_proc += 1;
                            }
                            1 if f == "cas" => {
                                b.fail(p, Value::Null);
                            }
                            _ => {
                                let v = if f == "read" {
                                    match rng.gen_range(0..4) {
                                        3 => Value::Null,
                                        v => json!(v),
                                    }
                                } else {
                                    Value::Null
                                };
                                b.ok(p, v);
                            }
                        }
                        procs[slot].1 = None;
                    }
                }
            }
            let h = b.build();
            let ops = h.ops().unwrap();
            let mut vals = Interner::new();
            let rops: Vec<ROp> = ops
                .iter()
                .enumerate()
                .filter_map(|(i, o)| prepare(o, i, &mut vals).unwrap())
                .collect();
            let expected = brute_force(&rops, &mut vec![false; rops.len()], NIL);
            let got = check(&h);
            assert_eq!(
                got.valid == Validity::Valid,
                expected,
                "case {case}: checker says {:?}, brute force says {expected}\n{}",
                got.valid,
                h.to_jsonl_string()
            );
            if expected {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        // Make sure both verdicts were exercised.
        assert!(
            valid > 100 && invalid > 100,
            "{valid} valid, {invalid} invalid"
        );
    }
}
