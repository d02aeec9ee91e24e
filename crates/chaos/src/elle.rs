//! Elle-style checker for list-append transactions.
//!
//! Each `txn` op's value is a list of micro-ops: `["append", key, value]` or
//! `["r", key, [values...]]` (`null` in the invocation, filled in on `ok`).
//! Appended values are unique per key, so every element of a read names the
//! transaction that wrote it, and the longest read of a key reveals the
//! order of all the versions it shows (every other read must be a prefix of
//! it). From that the checker infers dependencies between transactions:
//!
//! * `ww` T1 → T2: T2 appended the element right after T1's;
//! * `wr` T1 → T2: T2 read a list whose last element T1 appended;
//! * `rw` T1 → T2: T1 read a list that T2's append (the next element) extends.
//!
//! Appends of committed transactions that no read shows must come after the
//! longest read (lists only grow), so they get a `ww` edge from the writer
//! of its last element and `rw` edges from every read of the whole list.
//! An `info` transaction counts as committed once any of its appends is
//! seen.
//!
//! A cycle in that graph is a serializability violation, classified as in
//! Adya / Elle: G0 (only ww), G1c (ww and wr), G-single (exactly one rw),
//! G2 (two or more rw). Non-cyclic anomalies are checked directly: G1a
//! (aborted read), G1b (intermediate read), lost update, duplicate and
//! garbage elements, incompatible orders and internal inconsistency.
//!
//! `info` transactions may or may not have committed: their appends may show
//! up in reads (and then they take part in the graph), but seeing them is
//! never an aborted read. Real-time and process order are not used, so this
//! checks serializability, not strict serializability.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use serde_json::Value;

use crate::check::{Anomaly, AnomalyKind, CheckError, CheckResult};
use crate::history::{compact, History, Op, OpFn, Outcome};

type Key = u32;
type Elem = u32;
type TxnId = usize;

#[derive(Debug, Clone)]
enum Mop {
    Append {
        k: Key,
        v: Elem,
    },
    /// `None` when the read's result is unknown (invocations, info txns).
    Read {
        k: Key,
        vals: Option<Vec<Elem>>,
    },
}

struct Txn {
    /// Index into the op slice.
    op: usize,
    outcome: Outcome,
    mops: Vec<Mop>,
}

#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    text: Vec<String>,
}

impl Names {
    fn id(&mut self, v: &Value) -> u32 {
        let s = compact(v);
        if let Some(&i) = self.ids.get(&s) {
            return i;
        }
        let i = self.text.len() as u32;
        self.text.push(s.clone());
        self.ids.insert(s, i);
        i
    }

    fn show(&self, i: u32) -> &str {
        self.text.get(i as usize).map(String::as_str).unwrap_or("?")
    }
}

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;

fn edge_name(t: u8) -> &'static str {
    match t {
        WW => "ww",
        WR => "wr",
        _ => "rw",
    }
}

/// Why an edge exists, per dependency type (first reason found).
#[derive(Default, Clone)]
struct EdgeInfo {
    mask: u8,
    why: [Option<String>; 3],
}

struct Checker<'a> {
    ops: &'a [Op],
    txns: Vec<Txn>,
    keys: Names,
    elems: Names,
    /// (key, element) -> (writer txn, is the writer's last append to key).
    writer: HashMap<(Key, Elem), (TxnId, bool)>,
    /// (key, element) -> position among its writer's appends to that key.
    append_seq: HashMap<(Key, Elem), usize>,
    anomalies: Vec<Anomaly>,
    edges: HashMap<(TxnId, TxnId), EdgeInfo>,
}

/// Check a list-append history.
pub fn check_list_append(history: &History) -> Result<CheckResult, CheckError> {
    let ops = history.ops()?;
    check_list_append_ops(&ops)
}

/// Check already-paired ops (see [`History::ops`]).
pub fn check_list_append_ops(ops: &[Op]) -> Result<CheckResult, CheckError> {
    let mut c = Checker {
        ops,
        txns: Vec::new(),
        keys: Names::default(),
        elems: Names::default(),
        writer: HashMap::new(),
        append_seq: HashMap::new(),
        anomalies: Vec::new(),
        edges: HashMap::new(),
    };
    c.parse()?;
    c.check_internal();
    c.check_reads();
    let orders = c.version_orders();
    c.infer_edges(&orders);
    c.find_cycles();
    let n = c.txns.len();
    Ok(CheckResult::from_anomalies(
        "list-append",
        n,
        c.anomalies,
        vec![],
    ))
}

impl<'a> Checker<'a> {
    fn parse(&mut self) -> Result<(), CheckError> {
        for (i, op) in self.ops.iter().enumerate() {
            if op.f != OpFn::Txn {
                return Err(CheckError::bad_op(
                    op.invoke_index,
                    format!("list-append workload has no function {}", op.f),
                ));
            }
            // Completed ok txns carry the read results; for the others the
            // invocation is all we know.
            let value = if op.outcome == Outcome::Ok {
                &op.value
            } else {
                &op.invoke_value
            };
            let bad = |why: &str| CheckError::bad_op(op.invoke_index, why.to_string());
            let list = value
                .as_array()
                .ok_or_else(|| bad("txn value must be a list of micro-ops"))?;
            let mut mops = Vec::with_capacity(list.len());
            for m in list {
                let m = m
                    .as_array()
                    .filter(|m| m.len() == 3)
                    .ok_or_else(|| bad("micro-op must be [f, key, value]"))?;
                let k = self.keys.id(&m[1]);
                match m[0].as_str() {
                    Some("append") => mops.push(Mop::Append {
                        k,
                        v: self.elems.id(&m[2]),
                    }),
                    Some("r") => {
                        let vals = match &m[2] {
                            Value::Null => None,
                            Value::Array(vs) => Some(vs.iter().map(|v| self.elems.id(v)).collect()),
                            _ => return Err(bad("read result must be a list or null")),
                        };
                        // A read result only counts when the txn committed.
                        let vals = if op.outcome == Outcome::Ok {
                            vals
                        } else {
                            None
                        };
                        mops.push(Mop::Read { k, vals });
                    }
                    _ => return Err(bad("micro-op f must be \"append\" or \"r\"")),
                }
            }
            let t = self.txns.len();
            // Writers and "final append" flags.
            let mut last_append: HashMap<Key, Elem> = HashMap::new();
            let mut count: HashMap<Key, usize> = HashMap::new();
            for m in &mops {
                if let Mop::Append { k, v } = m {
                    if let Some(&(other, _)) = self.writer.get(&(*k, *v)) {
                        return Err(CheckError::DuplicateAppend {
                            key: self.keys.show(*k).to_string(),
                            value: self.elems.show(*v).to_string(),
                            first: self.ops[self.txns[other].op].invoke_index,
                            second: op.invoke_index,
                        });
                    }
                    self.writer.insert((*k, *v), (t, false));
                    last_append.insert(*k, *v);
                    let c = count.entry(*k).or_insert(0);
                    self.append_seq.insert((*k, *v), *c);
                    *c += 1;
                }
            }
            for (k, v) in last_append {
                self.writer.insert((k, v), (t, true));
            }
            self.txns.push(Txn {
                op: i,
                outcome: op.outcome,
                mops,
            });
        }
        Ok(())
    }

    fn name(&self, t: TxnId) -> String {
        format!("T{}", self.ops[self.txns[t].op].invoke_index)
    }

    /// `T12 = p3 [[r x [1 2]] [append y 5]] ok [12..15]`
    fn describe(&self, t: TxnId) -> String {
        let txn = &self.txns[t];
        let op = &self.ops[txn.op];
        let mops: Vec<String> = txn
            .mops
            .iter()
            .map(|m| match m {
                Mop::Append { k, v } => {
                    format!("[append {} {}]", self.keys.show(*k), self.elems.show(*v))
                }
                Mop::Read { k, vals } => format!(
                    "[r {} {}]",
                    self.keys.show(*k),
                    match vals {
                        Some(vs) => self.show_list(vs),
                        None => "?".to_string(),
                    }
                ),
            })
            .collect();
        let outcome = match txn.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        let end = op
            .complete_index
            .map(|c| c.to_string())
            .unwrap_or_else(|| "…".into());
        format!(
            "{} = p{} [{}] {} [{}..{}]",
            self.name(t),
            op.process,
            mops.join(" "),
            outcome,
            op.invoke_index,
            end
        )
    }

    fn show_list(&self, vs: &[Elem]) -> String {
        let items: Vec<&str> = vs.iter().map(|v| self.elems.show(*v)).collect();
        format!("[{}]", items.join(" "))
    }

    fn idx(&self, t: TxnId) -> u64 {
        self.ops[self.txns[t].op].invoke_index
    }

    /// A txn's reads must agree with its own earlier reads and appends.
    fn check_internal(&mut self) {
        let mut found = Vec::new();
        for (t, txn) in self.txns.iter().enumerate() {
            if txn.outcome != Outcome::Ok {
                continue;
            }
            // key -> (known full state?, expected list or own appends so far)
            let mut seen: HashMap<Key, (bool, Vec<Elem>)> = HashMap::new();
            for m in &txn.mops {
                match m {
                    Mop::Append { k, v } => seen.entry(*k).or_default().1.push(*v),
                    Mop::Read {
                        k,
                        vals: Some(vals),
                    } => {
                        if let Some((known, exp)) = seen.get(k) {
                            let ok = if *known {
                                vals == exp
                            } else {
                                vals.ends_with(exp)
                            };
                            if !ok {
                                let expect = if *known {
                                    format!("exactly {}", self.show_list(exp))
                                } else {
                                    format!(
                                        "a list ending in its own appends {}",
                                        self.show_list(exp)
                                    )
                                };
                                found.push(Anomaly::new(
                                    AnomalyKind::Internal,
                                    format!(
                                        "{} read key {} = {}, but should have seen {}\n  {}",
                                        self.name(t),
                                        self.keys.show(*k),
                                        self.show_list(vals),
                                        expect,
                                        self.describe(t)
                                    ),
                                    vec![self.idx(t)],
                                ));
                            }
                        }
                        seen.insert(*k, (true, vals.clone()));
                    }
                    Mop::Read { .. } => {}
                }
            }
        }
        self.anomalies.extend(found);
    }

    /// Element-level anomalies: duplicates, garbage, G1a, G1b.
    fn check_reads(&mut self) {
        let mut found = Vec::new();
        for (t, txn) in self.txns.iter().enumerate() {
            for m in &txn.mops {
                let Mop::Read {
                    k,
                    vals: Some(vals),
                } = m
                else {
                    continue;
                };
                let key = self.keys.show(*k);
                let mut set = HashSet::new();
                let dups: Vec<Elem> = vals.iter().copied().filter(|v| !set.insert(*v)).collect();
                if !dups.is_empty() {
                    found.push(Anomaly::new(
                        AnomalyKind::DuplicateElements,
                        format!(
                            "{} read key {key} = {}, which contains {} more than once\n  {}",
                            self.name(t),
                            self.show_list(vals),
                            self.show_list(&dups),
                            self.describe(t)
                        ),
                        vec![self.idx(t)],
                    ));
                }
                // writer -> (did the read include its final append to k,
                // position in the writer's own sequence of the last one seen)
                let mut writers_seen: HashMap<TxnId, (bool, usize)> = HashMap::new();
                let mut out_of_order: Option<TxnId> = None;
                for v in vals {
                    match self.writer.get(&(*k, *v)) {
                        None => found.push(Anomaly::new(
                            AnomalyKind::GarbageRead,
                            format!(
                                "{} read key {key} = {}, but no transaction ever appended {}\n  {}",
                                self.name(t),
                                self.show_list(vals),
                                self.elems.show(*v),
                                self.describe(t)
                            ),
                            vec![self.idx(t)],
                        )),
                        Some(&(w, _)) if self.txns[w].outcome == Outcome::Fail => {
                            found.push(Anomaly::new(
                                AnomalyKind::G1a,
                                format!(
                                    "aborted read: {} read key {key} = {}, including {} appended by the failed {}\n  {}\n  {}",
                                    self.name(t),
                                    self.show_list(vals),
                                    self.elems.show(*v),
                                    self.name(w),
                                    self.describe(t),
                                    self.describe(w)
                                ),
                                vec![self.idx(t), self.idx(w)],
                            ))
                        }
                        Some(&(w, is_final)) => {
                            let seq = self.append_seq.get(&(*k, *v)).copied().unwrap_or(0);
                            let e = writers_seen.entry(w).or_insert((false, 0));
                            if seq < e.1 {
                                out_of_order.get_or_insert(w);
                            }
                            e.0 |= is_final;
                            e.1 = seq;
                        }
                    }
                }
                if let Some(w) = out_of_order {
                    found.push(Anomaly::new(
                        AnomalyKind::IncompatibleOrder,
                        format!(
                            "{} read key {key} = {}, which shows {}'s appends in a different order than it made them\n  {}\n  {}",
                            self.name(t),
                            self.show_list(vals),
                            self.name(w),
                            self.describe(t),
                            self.describe(w)
                        ),
                        vec![self.idx(t), self.idx(w)],
                    ));
                }
                // G1b: the read shows some but not all of another txn's
                // appends to this key, i.e. one of its intermediate states.
                let mut partial: Vec<TxnId> = writers_seen
                    .iter()
                    .filter(|(w, (final_seen, _))| **w != t && !final_seen)
                    .map(|(w, _)| *w)
                    .collect();
                partial.sort_unstable();
                for w in partial {
                    found.push(Anomaly::new(
                        AnomalyKind::G1b,
                        format!(
                            "intermediate read: {} read key {key} = {}, which shows {}'s appends to {key} only partially\n  {}\n  {}",
                            self.name(t),
                            self.show_list(vals),
                            self.name(w),
                            self.describe(t),
                            self.describe(w)
                        ),
                        vec![self.idx(t), self.idx(w)],
                    ));
                }
            }
        }
        self.anomalies.extend(found);
    }

    /// Per key, the longest read, if every read is a prefix of it (keys
    /// with incompatible reads or duplicates get no order).
    fn version_orders(&mut self) -> BTreeMap<Key, Vec<Elem>> {
        let mut reads: BTreeMap<Key, Vec<(TxnId, &Vec<Elem>)>> = BTreeMap::new();
        for (t, txn) in self.txns.iter().enumerate() {
            for m in &txn.mops {
                if let Mop::Read {
                    k,
                    vals: Some(vals),
                } = m
                {
                    reads.entry(*k).or_default().push((t, vals));
                }
            }
        }
        let mut orders = BTreeMap::new();
        let mut found = Vec::new();
        for (k, rs) in reads {
            let Some(&(lt, longest)) = rs.iter().max_by_key(|(_, v)| v.len()) else {
                continue;
            };
            let mut set = HashSet::new();
            if !longest.iter().all(|v| set.insert(*v)) {
                continue; // reported as duplicate-elements already
            }
            let bad: Vec<(TxnId, &Vec<Elem>)> = rs
                .iter()
                .filter(|(_, v)| !longest.starts_with(v))
                .copied()
                .collect();
            if bad.is_empty() {
                orders.insert(k, longest.clone());
                continue;
            }
            let mut text = format!(
                "key {}: {} read(s) are not a prefix of the longest read, so no single version order explains them\n  longest: {} by {}\n",
                self.keys.show(k),
                bad.len(),
                self.show_list(longest),
                self.describe(lt)
            );
            for (t, v) in bad.iter().take(5) {
                let _ = writeln!(
                    text,
                    "  conflicting: {} by {}",
                    self.show_list(v),
                    self.describe(*t)
                );
            }
            if bad.len() > 5 {
                let _ = writeln!(text, "  … and {} more", bad.len() - 5);
            }
            let mut ids = vec![self.idx(lt)];
            ids.extend(bad.iter().map(|(t, _)| self.idx(*t)));
            found.push(Anomaly::new(AnomalyKind::IncompatibleOrder, text, ids));
        }
        self.anomalies.extend(found);
        orders
    }

    fn add_edge(&mut self, a: TxnId, b: TxnId, t: u8, why: impl FnOnce() -> String) {
        if a == b {
            return;
        }
        let e = self.edges.entry((a, b)).or_default();
        e.mask |= t;
        let slot = &mut e.why[t.trailing_zeros() as usize];
        if slot.is_none() {
            *slot = Some(why());
        }
    }

    /// The committed (or possibly committed) writer of an element.
    fn live_writer(&self, k: Key, v: Elem) -> Option<TxnId> {
        self.writer
            .get(&(k, v))
            .map(|&(w, _)| w)
            .filter(|&w| self.txns[w].outcome != Outcome::Fail)
    }

    fn infer_edges(&mut self, orders: &BTreeMap<Key, Vec<Elem>>) {
        // ww: consecutive versions.
        for (&k, order) in orders {
            for pair in order.windows(2) {
                if let (Some(a), Some(b)) =
                    (self.live_writer(k, pair[0]), self.live_writer(k, pair[1]))
                {
                    let why = format!(
                        "appended {} right after {} on key {}",
                        self.elems.show(pair[1]),
                        self.elems.show(pair[0]),
                        self.keys.show(k)
                    );
                    self.add_edge(a, b, WW, || why);
                }
            }
        }
        // Appends of committed txns that no read shows: the list only grows,
        // so they all come after the longest read. The writer of its last
        // element precedes them (ww), and every read of the whole longest
        // list precedes them (rw; added below).
        // An info txn is known to have committed once any of its appends
        // shows up in a committed read (txns are atomic).
        let mut committed: Vec<bool> = self.txns.iter().map(|t| t.outcome == Outcome::Ok).collect();
        for txn in self.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
            for m in &txn.mops {
                if let Mop::Read {
                    k,
                    vals: Some(vals),
                } = m
                {
                    for v in vals {
                        if let Some(w) = self.live_writer(*k, *v) {
                            committed[w] = true;
                        }
                    }
                }
            }
        }
        let mut unobserved: BTreeMap<Key, Vec<(TxnId, Elem)>> = BTreeMap::new();
        for (&k, order) in orders {
            let observed: HashSet<Elem> = order.iter().copied().collect();
            let mut us: Vec<(TxnId, Elem)> = Vec::new();
            for (t, txn) in self.txns.iter().enumerate() {
                if !committed[t] {
                    continue; // an unseen info append may never have happened
                }
                for m in &txn.mops {
                    if let Mop::Append { k: mk, v } = m {
                        if *mk == k && !observed.contains(v) && !us.iter().any(|(u, _)| *u == t) {
                            us.push((t, *v));
                        }
                    }
                }
            }
            if let Some(w) = order.last().and_then(|&l| self.live_writer(k, l)) {
                for &(u, v) in &us {
                    let why = format!(
                        "appended {} on key {}, which no read shows, so it comes after the last element seen, {}",
                        self.elems.show(v),
                        self.keys.show(k),
                        self.elems.show(order[order.len() - 1])
                    );
                    self.add_edge(w, u, WW, || why);
                }
            }
            unobserved.insert(k, us);
        }
        // wr / rw from each committed txn's first read of each key, minus
        // its own earlier appends; lost updates from the same data.
        let mut lost: BTreeMap<(Key, usize), Vec<TxnId>> = BTreeMap::new();
        for t in 0..self.txns.len() {
            if self.txns[t].outcome != Outcome::Ok {
                continue;
            }
            let mut own: HashMap<Key, Vec<Elem>> = HashMap::new();
            let mut done: HashSet<Key> = HashSet::new();
            let mut read_first: HashMap<Key, usize> = HashMap::new();
            let mops = self.txns[t].mops.clone();
            for m in &mops {
                match m {
                    Mop::Append { k, v } => {
                        own.entry(*k).or_default().push(*v);
                        if let Some(&len) = read_first.get(k) {
                            lost.entry((*k, len)).or_default().push(t);
                            read_first.remove(k);
                        }
                    }
                    Mop::Read {
                        k,
                        vals: Some(vals),
                    } if !done.contains(k) => {
                        done.insert(*k);
                        let Some(order) = orders.get(k) else { continue };
                        let mine = own.get(k).map(Vec::as_slice).unwrap_or(&[]);
                        if !vals.ends_with(mine) {
                            continue; // internal anomaly, reported already
                        }
                        let ext = &vals[..vals.len() - mine.len()];
                        if mine.is_empty() {
                            read_first.insert(*k, ext.len());
                        }
                        let key = self.keys.show(*k).to_string();
                        if let Some(&last) = ext.last() {
                            if let Some(w) = self.live_writer(*k, last) {
                                let why = format!(
                                    "read key {key} = {}, whose last element {} it appended",
                                    self.show_list(ext),
                                    self.elems.show(last)
                                );
                                self.add_edge(w, t, WR, || why);
                            }
                        }
                        if let Some(&nextv) = order.get(ext.len()) {
                            if let Some(w) = self.live_writer(*k, nextv) {
                                let why = format!(
                                    "read key {key} = {}, which misses the next element {} that it appended",
                                    self.show_list(ext),
                                    self.elems.show(nextv)
                                );
                                self.add_edge(t, w, RW, || why);
                            }
                        } else {
                            // Read the longest list: it precedes every
                            // committed append that no read shows.
                            for &(u, v) in unobserved.get(k).map(Vec::as_slice).unwrap_or(&[]) {
                                let why = format!(
                                    "read key {key} = {}, which misses {} that it appended (no read shows it, so it comes later)",
                                    self.show_list(ext),
                                    self.elems.show(v)
                                );
                                self.add_edge(t, u, RW, || why);
                            }
                        }
                    }
                    Mop::Read { .. } => {}
                }
            }
        }
        for ((k, len), ts) in lost {
            if ts.len() < 2 {
                continue;
            }
            let prefix = orders
                .get(&k)
                .map(|o| self.show_list(&o[..len.min(o.len())]))
                .unwrap_or_default();
            let mut text = format!(
                "key {}: {} committed transactions read the same version {} and then appended to it; one update is lost\n",
                self.keys.show(k),
                ts.len(),
                prefix
            );
            for &t in &ts {
                let _ = writeln!(text, "  {}", self.describe(t));
            }
            let ids = ts.iter().map(|&t| self.idx(t)).collect();
            self.anomalies
                .push(Anomaly::new(AnomalyKind::LostUpdate, text, ids));
        }
    }

    fn find_cycles(&mut self) {
        let n = self.txns.len();
        let mut adj: Vec<Vec<(TxnId, u8)>> = vec![Vec::new(); n];
        for (&(a, b), e) in &self.edges {
            adj[a].push((b, e.mask));
        }
        for l in adj.iter_mut() {
            l.sort_unstable();
        }
        let mut found = Vec::new();
        for scc in tarjan_scc(&adj) {
            if scc.len() < 2 {
                continue;
            }
            let mut in_scc = vec![false; n];
            for &v in &scc {
                in_scc[v] = true;
            }
            let mut scc_sorted = scc.clone();
            scc_sorted.sort_unstable();
            let mut kinds_found: Vec<AnomalyKind> = Vec::new();
            // Most severe first; each search only walks the edge types that
            // class allows, starting from an edge of its defining type.
            for (start_type, allowed) in
                [(WW, WW), (WR, WW | WR), (RW, WW | WR), (RW, WW | WR | RW)]
            {
                if allowed == WW | WR | RW && kinds_found.contains(&AnomalyKind::GSingle) {
                    continue;
                }
                if let Some(cycle) = shortest_cycle(&adj, &in_scc, &scc_sorted, start_type, allowed)
                {
                    let kind = classify(&cycle);
                    if !kinds_found.contains(&kind) {
                        kinds_found.push(kind);
                        found.push(self.cycle_anomaly(kind, &cycle, scc.len()));
                    }
                }
            }
        }
        self.anomalies.extend(found);
    }

    fn cycle_anomaly(&self, kind: AnomalyKind, cycle: &[(TxnId, u8)], scc_size: usize) -> Anomaly {
        let mut text = format!(
            "{} cycle of {} transactions (in a strongly connected component of {}):\n",
            kind,
            cycle.len(),
            scc_size
        );
        for (i, &(t, ty)) in cycle.iter().enumerate() {
            let next = cycle[(i + 1) % cycle.len()].0;
            let why = self
                .edges
                .get(&(t, next))
                .and_then(|e| e.why[ty.trailing_zeros() as usize].clone())
                .unwrap_or_default();
            let _ = writeln!(text, "  {}", self.describe(t));
            let (subject, object) = if ty == WW || ty == WR {
                (self.name(next), self.name(t))
            } else {
                (self.name(t), self.name(next))
            };
            let _ = writeln!(
                text,
                "    --{}--> {}: {} {}",
                edge_name(ty),
                self.name(next),
                subject,
                why.replace("it appended", &format!("{object} appended"))
            );
        }
        let ids = cycle.iter().map(|&(t, _)| self.idx(t)).collect();
        Anomaly::new(kind, text, ids)
    }
}

fn classify(cycle: &[(TxnId, u8)]) -> AnomalyKind {
    let rw = cycle.iter().filter(|(_, t)| *t == RW).count();
    let wr = cycle.iter().any(|(_, t)| *t == WR);
    match (rw, wr) {
        (0, false) => AnomalyKind::G0,
        (0, true) => AnomalyKind::G1c,
        (1, _) => AnomalyKind::GSingle,
        _ => AnomalyKind::G2,
    }
}

/// Cap on BFS starts per SCC and class: keeps huge SCCs from going
/// quadratic, at the price of maybe not finding the very shortest cycle.
const MAX_CYCLE_STARTS: usize = 64;

/// Shortest cycle (as [(txn, type of edge to the next txn)]) that starts
/// with an edge of `start_type` and continues over edges in `allowed`,
/// staying inside the SCC. For RW starts, the rest of the cycle avoids RW
/// when `allowed` does (that is what makes it G-single).
fn shortest_cycle(
    adj: &[Vec<(TxnId, u8)>],
    in_scc: &[bool],
    scc: &[TxnId],
    start_type: u8,
    allowed: u8,
) -> Option<Vec<(TxnId, u8)>> {
    let mut best: Option<Vec<(TxnId, u8)>> = None;
    let mut starts = 0;
    for &a in scc {
        for &(b, mask) in &adj[a] {
            if !in_scc[b] || mask & start_type == 0 {
                continue;
            }
            starts += 1;
            if starts > MAX_CYCLE_STARTS {
                return best;
            }
            // BFS b -> a.
            if let Some(path) = bfs(adj, in_scc, b, a, allowed) {
                let mut cycle = vec![(a, start_type)];
                cycle.extend(path);
                if best.as_ref().is_none_or(|c| cycle.len() < c.len()) {
                    best = Some(cycle);
                }
            }
        }
    }
    best
}

/// Path from `from` to `to` as [(node, type of edge to the next node)],
/// ending with the edge into `to` (so `to` itself is not listed). Prefers
/// ww, then wr, then rw on multi-typed edges to keep rw counts low.
fn bfs(
    adj: &[Vec<(TxnId, u8)>],
    in_scc: &[bool],
    from: TxnId,
    to: TxnId,
    allowed: u8,
) -> Option<Vec<(TxnId, u8)>> {
    let pick =
        |mask: u8| -> Option<u8> { [WW, WR, RW].into_iter().find(|t| mask & allowed & t != 0) };
    let mut prev: HashMap<TxnId, (TxnId, u8)> = HashMap::new();
    let mut q = VecDeque::from([from]);
    let mut seen = HashSet::from([from]);
    while let Some(x) = q.pop_front() {
        for &(y, mask) in &adj[x] {
            let Some(t) = pick(mask) else { continue };
            if !in_scc[y] || !seen.insert(y) {
                continue;
            }
            prev.insert(y, (x, t));
            if y == to {
                let mut path = Vec::new();
                let mut cur = to;
                while cur != from {
                    let (p, t) = *prev.get(&cur)?;
                    path.push((p, t));
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            q.push_back(y);
        }
    }
    None
}

/// Iterative Tarjan: strongly connected components (no recursion, so deep
/// graphs cannot overflow the stack).
fn tarjan_scc(adj: &[Vec<(TxnId, u8)>]) -> Vec<Vec<TxnId>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut sccs = Vec::new();
    let mut next_index = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next neighbour position)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if *pos < adj[v].len() {
                let w = adj[v][*pos].0;
                *pos += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    sccs.push(comp);
                }
            }
        }
    }
    sccs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Validity;
    use crate::history::{EventType, HistoryBuilder};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// Record one txn: invocation with reads nulled, then its completion.
    fn txn(b: &mut HistoryBuilder, p: u64, outcome: &str, mops: Value) {
        let invoke: Vec<Value> = mops
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect();
        b.invoke(p, "txn", None, Value::Array(invoke));
        match outcome {
            "ok" => b.ok(p, mops),
            "fail" => b.fail(p, Value::Null),
            _ => b.info(p),
        };
    }

    fn run(txns: &[(&str, Value)]) -> CheckResult {
        let mut b = HistoryBuilder::new();
        for (i, (outcome, mops)) in txns.iter().enumerate() {
            txn(&mut b, i as u64, outcome, mops.clone());
        }
        check_list_append(&b.build()).expect("well-formed")
    }

    fn assert_flags(r: &CheckResult, kind: AnomalyKind) {
        assert_eq!(r.valid, Validity::Invalid, "{r}");
        assert!(r.has(kind), "expected {kind}:\n{r}");
    }

    #[test]
    fn serial_history_is_valid() {
        let r = run(&[
            ("ok", json!([["append", "x", 1]])),
            (
                "ok",
                json!([["r", "x", [1]], ["append", "x", 2], ["r", "x", [1, 2]]]),
            ),
            ("ok", json!([["r", "x", [1, 2]], ["r", "y", []]])),
        ]);
        assert_eq!(r.valid, Validity::Valid, "{r}");
        assert_eq!(r.ops_checked, 3);
    }

    #[test]
    fn g0_write_cycle() {
        let r = run(&[
            ("ok", json!([["append", "x", 1], ["append", "y", 1]])),
            ("ok", json!([["append", "x", 2], ["append", "y", 2]])),
            ("ok", json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]])),
        ]);
        assert_flags(&r, AnomalyKind::G0);
        let a = r
            .anomalies
            .iter()
            .find(|a| a.kind == AnomalyKind::G0)
            .unwrap();
        assert!(a.text.contains("--ww-->"), "{}", a.text);
        assert_eq!(a.ops.len(), 2);
    }

    #[test]
    fn g1a_aborted_read() {
        let r = run(&[
            ("fail", json!([["append", "x", 1]])),
            ("ok", json!([["r", "x", [1]]])),
        ]);
        assert_flags(&r, AnomalyKind::G1a);
    }

    #[test]
    fn info_appends_may_be_read() {
        let r = run(&[
            ("info", json!([["append", "x", 1]])),
            ("info", json!([["append", "x", 3]])),
            ("ok", json!([["r", "x", [1]]])),
            ("ok", json!([["append", "x", 2]])),
            ("ok", json!([["r", "x", [1, 2]]])),
        ]);
        assert_eq!(r.valid, Validity::Valid, "{r}");
    }

    #[test]
    fn g1b_intermediate_read() {
        let r = run(&[
            ("ok", json!([["append", "x", 1], ["append", "x", 2]])),
            ("ok", json!([["r", "x", [1]]])),
        ]);
        assert_flags(&r, AnomalyKind::G1b);
    }

    #[test]
    fn g1c_circular_information_flow() {
        let r = run(&[
            ("ok", json!([["append", "x", 1], ["r", "y", [1]]])),
            ("ok", json!([["append", "y", 1], ["r", "x", [1]]])),
        ]);
        assert_flags(&r, AnomalyKind::G1c);
        assert!(!r.has(AnomalyKind::G0));
    }

    #[test]
    fn g_single_read_skew() {
        let r = run(&[
            ("ok", json!([["r", "x", []], ["r", "y", [1]]])),
            ("ok", json!([["append", "x", 1], ["append", "y", 1]])),
            ("ok", json!([["r", "x", [1]]])),
        ]);
        assert_flags(&r, AnomalyKind::GSingle);
        let a = r
            .anomalies
            .iter()
            .find(|a| a.kind == AnomalyKind::GSingle)
            .unwrap();
        assert!(
            a.text.contains("--rw-->") && a.text.contains("--wr-->"),
            "{}",
            a.text
        );
        assert!(!r.has(AnomalyKind::G2));
    }

    #[test]
    fn g2_write_skew() {
        let r = run(&[
            ("ok", json!([["r", "x", []], ["append", "y", 1]])),
            ("ok", json!([["r", "y", []], ["append", "x", 1]])),
            ("ok", json!([["r", "x", [1]], ["r", "y", [1]]])),
        ]);
        assert_flags(&r, AnomalyKind::G2);
        assert!(!r.has(AnomalyKind::GSingle), "{r}");
        assert!(!r.has(AnomalyKind::LostUpdate));
    }

    #[test]
    fn lost_update() {
        let r = run(&[
            ("ok", json!([["r", "x", []], ["append", "x", 1]])),
            ("ok", json!([["r", "x", []], ["append", "x", 2]])),
            ("ok", json!([["r", "x", [1, 2]]])),
        ]);
        assert_flags(&r, AnomalyKind::LostUpdate);
    }

    #[test]
    fn incompatible_orders() {
        let r = run(&[
            ("ok", json!([["append", "x", 1]])),
            ("ok", json!([["append", "x", 2]])),
            ("ok", json!([["r", "x", [1, 2]]])),
            ("ok", json!([["r", "x", [2, 1, 3]]])),
            ("ok", json!([["append", "x", 3]])),
        ]);
        assert_flags(&r, AnomalyKind::IncompatibleOrder);
    }

    #[test]
    fn duplicate_and_garbage_elements() {
        let r = run(&[
            ("ok", json!([["append", "x", 1]])),
            ("ok", json!([["r", "x", [1, 1]]])),
        ]);
        assert_flags(&r, AnomalyKind::DuplicateElements);
        let r = run(&[
            ("ok", json!([["append", "x", 1]])),
            ("ok", json!([["r", "x", [1, 9]]])),
        ]);
        assert_flags(&r, AnomalyKind::GarbageRead);
    }

    #[test]
    fn internal_inconsistency() {
        let r = run(&[("ok", json!([["append", "x", 1], ["r", "x", []]]))]);
        assert_flags(&r, AnomalyKind::Internal);
        let r = run(&[
            ("ok", json!([["append", "x", 5]])),
            (
                "ok",
                json!([["r", "x", [5]], ["append", "x", 6], ["r", "x", [5]]]),
            ),
        ]);
        assert_flags(&r, AnomalyKind::Internal);
    }

    #[test]
    fn duplicate_appends_are_a_history_error() {
        let mut b = HistoryBuilder::new();
        txn(&mut b, 0, "ok", json!([["append", "x", 1]]));
        txn(&mut b, 1, "ok", json!([["append", "x", 1]]));
        assert!(matches!(
            check_list_append(&b.build()),
            Err(CheckError::DuplicateAppend { .. })
        ));
    }

    /// Serial execution of random txns; fails have no effect, infos take
    /// effect or not at random. Some reads are then mutated.
    fn serial(seed: u64, n: usize, keys: u64) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut next = 0u64;
        let mut b = HistoryBuilder::new();
        let mut p = 0u64;
        for _ in 0..n {
            let outcome = match rng.gen_range(0..20) {
                0 => "fail",
                1 => "info",
                _ => "ok",
            };
            let applies = match outcome {
                "ok" => true,
                "fail" => false,
                _ => rng.gen_bool(0.5),
            };
            let mut scratch = state.clone();
            let mut mops = Vec::new();
            for _ in 0..rng.gen_range(1..5) {
                let k = rng.gen_range(0..keys);
                if rng.gen_bool(0.5) {
                    next += 1;
                    scratch.entry(k).or_default().push(next);
                    mops.push(json!(["append", k, next]));
                } else {
                    mops.push(json!([
                        "r",
                        k,
                        scratch.get(&k).cloned().unwrap_or_default()
                    ]));
                }
            }
            if applies {
                state = scratch;
            }
            txn(&mut b, p, outcome, Value::Array(mops));
            if outcome == "info" {
                p += 1;
            }
        }
        b.build()
    }

    #[test]
    fn random_serial_histories_pass_and_reordered_reads_fail() {
        for seed in 0..30 {
            let h = serial(seed, 300, 4);
            let r = check_list_append(&h).unwrap();
            assert_eq!(r.valid, Validity::Valid, "seed {seed}:\n{r}");

            // Swap the last two elements of the first committed read with
            // two or more (later, longer reads then disagree with it).
            let mut bad = h.clone();
            let target = bad.events.iter_mut().find_map(|e| {
                if e.kind != EventType::Ok {
                    return None;
                }
                e.value
                    .as_array_mut()?
                    .iter_mut()
                    .find(|m| m[0] == "r" && m[2].as_array().is_some_and(|l| l.len() >= 2))
            });
            let Some(m) = target else { continue };
            let l = m[2].as_array_mut().unwrap();
            let n = l.len();
            l.swap(n - 1, n - 2);
            let r = check_list_append(&bad).unwrap();
            assert_eq!(r.valid, Validity::Invalid, "seed {seed} mutated");
        }
    }

    #[test]
    fn larger_history_checks_valid() {
        // 5000 txns over 50 keys: lists grow to ~125 elements. (How long
        // it takes is printed, not asserted: speed belongs in benchmarks.)
        let h = serial(99, 5000, 50);
        let t = std::time::Instant::now();
        let r = check_list_append(&h).unwrap();
        assert_eq!(r.valid, Validity::Valid, "{r}");
        eprintln!("5000-txn list-append history checked in {:?}", t.elapsed());
    }

    /// Reference: is there a serial order of all ok txns plus any subset of
    /// info txns (fails excluded) in which every ok read sees exactly the
    /// state at that point? Exponential; for a handful of txns only.
    fn serializable(txns: &[(&str, Vec<Value>)]) -> bool {
        fn go(
            txns: &[(&str, Vec<Value>)],
            used: &mut Vec<bool>,
            state: &HashMap<String, Vec<Value>>,
        ) -> bool {
            if txns
                .iter()
                .zip(used.iter())
                .all(|((o, _), u)| *u || *o != "ok")
            {
                return true;
            }
            for i in 0..txns.len() {
                let (outcome, mops) = &txns[i];
                if used[i] || *outcome == "fail" {
                    continue;
                }
                let mut st = state.clone();
                let mut ok = true;
                for m in mops {
                    let k = m[1].to_string();
                    if m[0] == "append" {
                        st.entry(k).or_default().push(m[2].clone());
                    } else if *outcome == "ok" {
                        let cur = Value::Array(st.get(&k).cloned().unwrap_or_default());
                        if cur != m[2] {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    used[i] = true;
                    let r = go(txns, used, &st);
                    used[i] = false;
                    if r {
                        return true;
                    }
                }
            }
            false
        }
        go(txns, &mut vec![false; txns.len()], &HashMap::new())
    }

    /// Random small histories from a deliberately weak store: reads see a
    /// random (possibly stale) prefix of each key's list. Every anomaly the
    /// checker reports must be a real serializability violation (soundness).
    #[test]
    fn anomalies_are_sound_against_brute_force() {
        let mut rng = StdRng::seed_from_u64(7);
        let (mut flagged, mut missed, mut valid) = (0, 0, 0);
        for case in 0..3000 {
            let mut lists: HashMap<u64, Vec<u64>> = HashMap::new();
            let mut next = 0u64;
            let mut txns: Vec<(&str, Vec<Value>)> = Vec::new();
            for _ in 0..rng.gen_range(2..=6) {
                let outcome = match rng.gen_range(0..10) {
                    0 => "fail",
                    1 => "info",
                    _ => "ok",
                };
                let applies = outcome == "ok" || (outcome == "info" && rng.gen_bool(0.5));
                let mut mops = Vec::new();
                let mut own: HashMap<u64, Vec<u64>> = HashMap::new();
                for _ in 0..rng.gen_range(1..=3) {
                    let k = rng.gen_range(0..2u64);
                    if rng.gen_bool(0.5) {
                        next += 1;
                        own.entry(k).or_default().push(next);
                        mops.push(json!(["append", k, next]));
                    } else {
                        let l = lists.get(&k).cloned().unwrap_or_default();
                        let mut seen = l[..rng.gen_range(0..=l.len())].to_vec();
                        seen.extend(own.get(&k).cloned().unwrap_or_default());
                        mops.push(json!(["r", k, seen]));
                    }
                }
                if applies {
                    for (k, vs) in own {
                        lists.entry(k).or_default().extend(vs);
                    }
                }
                txns.push((outcome, mops));
            }
            let mut b = HistoryBuilder::new();
            for (i, (outcome, mops)) in txns.iter().enumerate() {
                txn(&mut b, i as u64, outcome, Value::Array(mops.clone()));
            }
            let h = b.build();
            let r = check_list_append(&h).unwrap();
            let ser = serializable(&txns);
            if r.valid == Validity::Invalid {
                assert!(
                    !ser,
                    "case {case}: flagged a serializable history\n{r}\n{}",
                    h.to_jsonl_string()
                );
                flagged += 1;
            } else if !ser {
                missed += 1;
            } else {
                valid += 1;
            }
        }
        eprintln!("elle vs brute force: {flagged} flagged, {valid} valid, {missed} non-serializable but not flagged");
        assert!(
            flagged > 100 && valid > 100,
            "{flagged} flagged, {valid} valid"
        );
        // Not guaranteed in general (Elle-style inference is incomplete),
        // but true for this generator today; a regression would show here.
        assert_eq!(missed, 0, "non-serializable histories not flagged");
    }
}
