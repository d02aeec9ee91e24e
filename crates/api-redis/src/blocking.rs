//! Blocking commands' waiting (BLPOP, BZPOPMIN, BLMOVE, XREAD BLOCK, ...):
//! the per-node registry of blocked clients ([`Waiters`]), Redis's timeout
//! argument ([`parse_timeout`]) and the keys a write command touched
//! ([`written_keys`], from the command table's key specs), which are the
//! keys whose waiters are woken after it commits.
//!
//! How a blocked command proceeds (see `handler.rs`): it ran (its first
//! run on a snapshot taken when it arrived), found nothing
//! and returned [`crate::db::ExecError::Block`] with no writes buffered; the
//! handler registers it here on every key it waits for and sleeps. A write
//! committed through this node calls [`Waiters::notify`] for the keys it
//! wrote, which hands a *baton* to the first waiter queued on each key: that
//! waiter alone re-runs its command. If it is served (or fails, or leaves),
//! the baton passes to the next waiter in line, so clients are served in
//! the order they blocked, as in Redis; if it finds nothing again, the
//! baton stops there (nobody behind it would find anything either), unless
//! the command does not consume what it waits for (XREAD: every reader
//! must look). A write that arrives while the baton holder is re-running
//! marks the key so the holder looks once more: its snapshot may predate
//! the write.
//!
//! Writes made through other nodes cannot reach this registry; the head
//! waiter of each key therefore also re-checks every [`POLL_INTERVAL`]
//! (only heads poll, so a queue of a thousand waiters costs one read per
//! interval, not a thousand).
//!
//! The writer waits (at most [`WAKE_WAIT`]) for the waiters it woke to
//! finish their re-run before replying: after `LPUSH` returns, the blocked
//! client has been served, as Redis guarantees (tests and clients rely on
//! it, e.g. WATCH seeing the BRPOPLPUSH destination change).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::command_table::{CommandSpec, Val};
use crate::db::ExecError;
use crate::float::LongDouble;
use crate::server::ServerStats;

/// How often the first waiter on a key re-checks on its own, for writes
/// made through other nodes (which do not notify this node).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Longest a writer waits for the blocked clients it woke to be served
/// before it replies.
pub const WAKE_WAIT: Duration = Duration::from_secs(1);

/// Commands from different connections that queue within this interval
/// of each other have no meaningful arrival order (connection tasks run
/// on several threads, the most recently woken first): ties are broken
/// by connection age, older first.
pub const TIE_WINDOW: Duration = Duration::from_millis(2);

/// Most keys one blocked command may wait on (beyond it the command still
/// works but only the first keys wake it; the others are polled).
pub const MAX_WAIT_KEYS: usize = 10_000;

/// Redis's timeout argument of the blocking list and zset commands, in
/// seconds with a fractional part: `None` waits forever (0), errors as
/// Redis words them. Values are rounded up to the millisecond.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, ExecError> {
    let v = LongDouble::parse(arg)
        .ok_or_else(|| ExecError::err("timeout is not a float or out of range"))?;
    // Redis converts with a C cast: infinities and values beyond the
    // 64-bit millisecond range become negative there.
    if !v.is_finite() {
        return Err(ExecError::err("timeout is negative"));
    }
    let secs: f64 = v
        .to_human_string()
        .parse()
        .map_err(|_| ExecError::err("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if !(0.0..9.223_372_036_854_775e18).contains(&ms) {
        return Err(ExecError::err("timeout is negative"));
    }
    // `-0.0001` rounds up to zero: block forever, like Redis.
    if ms == 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

/// Milliseconds variant (XREAD BLOCK, WAIT): a non-negative integer, 0
/// waits forever.
pub fn parse_timeout_ms(arg: &[u8]) -> Result<Option<Duration>, ExecError> {
    let ms = crate::parse::parse_i64_strict(arg)
        .ok_or_else(|| ExecError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(ExecError::err("timeout is negative"));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

fn field<'v>(map: &'v Val, name: &str) -> Option<&'v Val> {
    match map {
        Val::M(pairs) => pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn int_field(map: &Val, name: &str) -> Option<i64> {
    match field(map, name)? {
        Val::I(n) => Some(*n),
        _ => None,
    }
}

fn str_field<'v>(map: &'v Val, name: &str) -> Option<&'v str> {
    match field(map, name)? {
        Val::B(s) | Val::S(s) => Some(s),
        _ => None,
    }
}

/// The keys of `argv` according to `spec`'s key specs (the Redis 7 key
/// specification: where the search begins, then a range or a key count).
/// Specs this front end cannot interpret (`unknown`) contribute nothing;
/// waiters on such keys are found by polling. Used after a write command
/// commits, to wake the clients blocked on what it wrote.
pub fn written_keys(spec: &CommandSpec, argv: &[Bytes]) -> Vec<Bytes> {
    let specs: &[Val] = match &spec.key_specs {
        Val::T(s) | Val::A(s) => s,
        _ => return Vec::new(),
    };
    let argc = argv.len() as i64;
    let mut out: Vec<Bytes> = Vec::new();
    for ks in specs {
        let (Some(bs), Some(fk)) = (field(ks, "begin_search"), field(ks, "find_keys")) else {
            continue;
        };
        let (Some(bs_type), Some(bs_spec)) = (str_field(bs, "type"), field(bs, "spec")) else {
            continue;
        };
        let begin = match bs_type {
            "index" => match int_field(bs_spec, "index") {
                Some(i) => i,
                None => continue,
            },
            "keyword" => {
                let (Some(kw), Some(from)) = (
                    str_field(bs_spec, "keyword"),
                    int_field(bs_spec, "startfrom"),
                ) else {
                    continue;
                };
                let found = if from >= 0 {
                    (from.max(1)..argc)
                        .find(|&i| argv[i as usize].eq_ignore_ascii_case(kw.as_bytes()))
                } else {
                    (1..=(argc + from).max(0))
                        .rev()
                        .find(|&i| argv[i as usize].eq_ignore_ascii_case(kw.as_bytes()))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
            _ => continue,
        };
        let (Some(fk_type), Some(fk_spec)) = (str_field(fk, "type"), field(fk, "spec")) else {
            continue;
        };
        let (first, last, step) = match fk_type {
            "range" => {
                let (Some(lastkey), Some(step), Some(limit)) = (
                    int_field(fk_spec, "lastkey"),
                    int_field(fk_spec, "keystep"),
                    int_field(fk_spec, "limit"),
                ) else {
                    continue;
                };
                let last = if lastkey >= 0 {
                    begin + lastkey
                } else if limit > 0 {
                    // Redis: the keys are the first 1/limit of the rest.
                    begin + ((argc - begin) / limit + lastkey)
                } else {
                    argc + lastkey
                };
                (begin, last, step)
            }
            "keynum" => {
                let (Some(numidx), Some(firstkey), Some(step)) = (
                    int_field(fk_spec, "keynumidx"),
                    int_field(fk_spec, "firstkey"),
                    int_field(fk_spec, "keystep"),
                ) else {
                    continue;
                };
                let Some(n) = argv
                    .get((begin + numidx) as usize)
                    .and_then(|a| crate::parse::parse_i64_strict(a))
                    .filter(|n| *n > 0)
                else {
                    continue;
                };
                let first = begin + firstkey;
                (first, first + (n - 1).saturating_mul(step.max(1)), step)
            }
            _ => continue,
        };
        let step = step.max(1);
        let mut i = first;
        while i <= last && i < argc && i >= 1 && out.len() < MAX_WAIT_KEYS {
            out.push(argv[i as usize].clone());
            i += step;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Signals, once, that a woken waiter finished its re-run.
type Done = watch::Sender<bool>;

#[derive(Debug, Default)]
struct KeyQueue {
    /// Waiter ids in the order they blocked.
    order: VecDeque<u64>,
    /// The waiter re-running because of a write to this key, and the
    /// signal its waking writer waits on.
    active: Option<(u64, Arc<Done>)>,
    /// A write arrived while `active` was re-running.
    pending: bool,
}

#[derive(Debug)]
struct Entry {
    client: u64,
    keys: Vec<(u8, Bytes)>,
    notify: Arc<Notify>,
    /// Re-checking without being served passes the baton on (readers that
    /// do not consume, XREAD).
    pass_through: bool,
    /// CLIENT UNBLOCK: `Some(true)` answer the error, `Some(false)` as if
    /// timed out.
    unblock: watch::Sender<Option<bool>>,
    /// The command is running (not waiting): a baton handed over now may
    /// postdate its snapshot, so it must look once more.
    running: bool,
    /// When it queued.
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    queues: HashMap<(u8, Bytes), KeyQueue>,
    waiters: HashMap<u64, Entry>,
}

/// The blocked clients of one node, queued per (database, key).
#[derive(Debug, Default)]
pub struct Waiters {
    inner: Mutex<Inner>,
}

/// What a writer may wait on: the re-runs of the waiters it woke.
#[derive(Debug, Default)]
pub struct Woken(Vec<watch::Receiver<bool>>);

impl Woken {
    /// True if nobody was woken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the waiters `other` woke.
    pub fn merge(&mut self, other: Woken) {
        self.0.extend(other.0);
    }

    /// Waits until every woken waiter finished its re-run, at most
    /// `limit` in all.
    pub async fn wait(self, limit: Duration) {
        let all = async {
            for mut rx in self.0 {
                let _ = rx.wait_for(|done| *done).await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// Hands `q`'s baton (and the signal its writer waits on) to `id`.
fn hand_to(q: &mut KeyQueue, waiters: &HashMap<u64, Entry>, id: u64, done: Arc<Done>) {
    q.active = Some((id, done));
    q.pending = false;
    if let Some(e) = waiters.get(&id) {
        q.pending = e.running;
        e.notify.notify_one();
    }
}

fn wake(q: &mut KeyQueue, waiters: &HashMap<u64, Entry>, id: u64) -> Arc<Done> {
    let done = Arc::new(watch::channel(false).0);
    hand_to(q, waiters, id, Arc::clone(&done));
    done
}

/// Takes waiter `id` out of `q`; a baton it held goes to the next in
/// line. A new head is poked even without one: it may have been waiting
/// only for its turn (see `behind_others`).
fn remove_from(q: &mut KeyQueue, waiters: &HashMap<u64, Entry>, id: u64) {
    let was_head = q.order.front() == Some(&id);
    q.order.retain(|w| *w != id);
    match q.active.clone() {
        Some((active, done)) if active == id => match q.order.front().copied() {
            Some(next) => hand_to(q, waiters, next, done),
            None => {
                q.active = None;
                q.pending = false;
                let _ = done.send(true);
            }
        },
        None if was_head => {
            if let Some(next) = q.order.front().copied() {
                hand_to(q, waiters, next, Arc::new(watch::channel(false).0));
            }
        }
        _ => {}
    }
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No invariant spans a panic point: recover from poisoning.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues client `client`'s command on `keys` of database `db`, in
    /// arrival order, before it first runs (a write during that run then
    /// reaches it); it counts as blocked only from
    /// [`WaitGuard::set_waiting`]. The returned guard leaves every queue
    /// when dropped (served, timed out, disconnected), so no waiter
    /// outlives its command.
    pub fn register<'a>(
        &'a self,
        stats: &'a ServerStats,
        client: u64,
        db: u8,
        keys: &[Bytes],
        pass_through: bool,
    ) -> WaitGuard<'a> {
        let mut keys: Vec<(u8, Bytes)> = keys
            .iter()
            .take(MAX_WAIT_KEYS)
            .map(|k| (db, k.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        let notify = Arc::new(Notify::new());
        let (unblock_tx, unblock_rx) = watch::channel(None);
        let now = Instant::now();
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        for k in &keys {
            let q = queues.entry(k.clone()).or_default();
            let mut at = q.order.len();
            while at > 0 {
                let ahead = q.order[at - 1];
                let tie = waiters
                    .get(&ahead)
                    .is_some_and(|e| e.client > client && now.duration_since(e.since) < TIE_WINDOW);
                if !tie || q.active.as_ref().is_some_and(|(a, _)| *a == ahead) {
                    break;
                }
                at -= 1;
            }
            q.order.insert(at, id);
        }
        inner.waiters.insert(
            id,
            Entry {
                client,
                keys,
                notify: Arc::clone(&notify),
                pass_through,
                unblock: unblock_tx,
                running: true,
                since: now,
            },
        );
        drop(inner);
        WaitGuard {
            waiters: self,
            stats,
            id,
            client,
            notify,
            unblock: unblock_rx,
            counted: false,
        }
    }

    /// A write committed on `keys` of `db`: hands the baton of each key
    /// with waiters to its first waiter (or, if a waiter is re-running
    /// already, makes it look again). `by` is the waiter doing the write,
    /// if a blocked command is writing (it is not waited on by itself).
    pub fn notify(&self, db: u8, keys: &[Bytes], by: Option<u64>) -> Woken {
        let mut inner = self.lock();
        if inner.queues.is_empty() {
            return Woken::default();
        }
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        let mut woken = Vec::new();
        for key in keys {
            let Some(q) = queues.get_mut(&(db, key.clone())) else {
                continue;
            };
            match &q.active {
                Some((_, done)) => {
                    q.pending = true;
                    // A client writer also waits for the re-run in
                    // progress (which will look again). A blocked command
                    // writing does not: the holder may be waiting for it
                    // (BRPOPLPUSH a b / BRPOPLPUSH b a).
                    if by.is_none() {
                        woken.push(done.subscribe());
                    }
                }
                None => {
                    let Some(&head) = q.order.front() else {
                        continue;
                    };
                    let done = wake(q, waiters, head);
                    if Some(head) != by {
                        woken.push(done.subscribe());
                    }
                }
            }
        }
        Woken(woken)
    }

    /// Wakes the first waiter of every key (writes whose keys are not
    /// known: FLUSHALL, SWAPDB, MOVE to another database).
    pub fn notify_all(&self) -> Woken {
        let keys: Vec<(u8, Bytes)> = self.lock().queues.keys().cloned().collect();
        let mut all = Woken::default();
        for (db, k) in keys {
            all.0.extend(self.notify(db, &[k], None).0);
        }
        all
    }

    /// Waiter `id` re-ran and found nothing again.
    fn reblocked(&self, id: u64) {
        let mut inner = self.lock();
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        let Some(entry) = waiters.get(&id) else {
            return;
        };
        let pass_through = entry.pass_through;
        for k in entry.keys.clone() {
            let Some(q) = queues.get_mut(&k) else {
                continue;
            };
            let Some((active, done)) = q.active.clone() else {
                continue;
            };
            if active != id {
                continue;
            }
            if q.pending {
                // A write raced with the re-run: look again, same baton.
                q.pending = false;
                if let Some(e) = waiters.get(&id) {
                    e.notify.notify_one();
                }
                continue;
            }
            let next = if pass_through {
                q.order
                    .iter()
                    .position(|w| *w == id)
                    .and_then(|p| q.order.get(p + 1))
                    .copied()
            } else {
                None
            };
            match next {
                Some(n) => hand_to(q, waiters, n, done),
                None => {
                    q.active = None;
                    let _ = done.send(true);
                }
            }
        }
    }

    /// Waiter `id` leaves every queue; batons it held pass to the next
    /// waiter in line (the write that woke it may serve them too).
    fn leave(&self, id: u64) {
        let mut inner = self.lock();
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        let Some(entry) = waiters.remove(&id) else {
            return;
        };
        for k in &entry.keys {
            let Some(q) = queues.get_mut(k) else {
                continue;
            };
            remove_from(q, waiters, id);
            if q.order.is_empty() && q.active.is_none() {
                queues.remove(k);
            }
        }
    }

    /// Waiter `id` now waits on `keys` of `db` (the command said which
    /// keys it waits for after queueing on all the keys it names): it
    /// keeps its place where it stays, leaves the other queues and joins
    /// new ones at the back.
    fn rekey(&self, id: u64, db: u8, keys: &[Bytes]) {
        let mut new: Vec<(u8, Bytes)> = keys
            .iter()
            .take(MAX_WAIT_KEYS)
            .map(|k| (db, k.clone()))
            .collect();
        new.sort();
        new.dedup();
        let mut inner = self.lock();
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        let Some(old) = waiters.get(&id).map(|e| e.keys.clone()) else {
            return;
        };
        if old == new {
            return;
        }
        for k in old.iter().filter(|k| !new.contains(k)) {
            if let Some(q) = queues.get_mut(k) {
                remove_from(q, waiters, id);
                if q.order.is_empty() && q.active.is_none() {
                    queues.remove(k);
                }
            }
        }
        for k in new.iter().filter(|k| !old.contains(k)) {
            queues.entry(k.clone()).or_default().order.push_back(id);
        }
        if let Some(e) = waiters.get_mut(&id) {
            e.keys = new;
        }
    }

    /// True if another (consuming) waiter is queued ahead of `id` on one
    /// of its keys.
    fn behind_others(&self, id: u64) -> bool {
        let inner = self.lock();
        let Some(entry) = inner.waiters.get(&id) else {
            return false;
        };
        if entry.pass_through {
            return false;
        }
        entry.keys.iter().any(|k| {
            inner.queues.get(k).is_some_and(|q| {
                q.order
                    .iter()
                    .take_while(|w| **w != id)
                    .any(|w| inner.waiters.get(w).is_some_and(|e| !e.pass_through))
            })
        })
    }

    fn set_running(&self, id: u64, running: bool) {
        if let Some(e) = self.lock().waiters.get_mut(&id) {
            e.running = running;
        }
    }

    /// Takes the baton of every key where `id` is first in line and
    /// nobody holds it (the periodic re-check); true if it took any.
    fn poll_head(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let Inner {
            queues, waiters, ..
        } = &mut *inner;
        let Some(entry) = waiters.get(&id) else {
            return false;
        };
        let mut took = false;
        for k in &entry.keys {
            if let Some(q) = queues.get_mut(k) {
                if q.active.is_none() && q.order.front() == Some(&id) {
                    q.active = Some((id, Arc::new(watch::channel(false).0)));
                    took = true;
                }
            }
        }
        took
    }

    /// CLIENT UNBLOCK: releases `client` if it is blocked; `error`
    /// chooses the UNBLOCKED error over the timeout reply.
    pub fn unblock(&self, client: u64, error: bool) -> bool {
        let inner = self.lock();
        match inner.waiters.values().find(|e| e.client == client) {
            Some(e) => {
                let _ = e.unblock.send(Some(error));
                true
            }
            None => false,
        }
    }

    /// Waiters queued on `key` of `db` (tests).
    pub fn queued(&self, db: u8, key: &[u8]) -> Vec<u64> {
        self.lock()
            .queues
            .get(&(db, Bytes::copy_from_slice(key)))
            .map(|q| q.order.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Number of blocked commands (tests).
    pub fn len(&self) -> usize {
        self.lock().waiters.len()
    }

    /// True when nobody is blocked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a blocked command stopped waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Re-run the command.
    Retry,
    /// CLIENT UNBLOCK ... TIMEOUT.
    UnblockTimeout,
    /// CLIENT UNBLOCK ... ERROR.
    UnblockError,
}

/// One blocked command's place in the queues; dropping it leaves them.
#[derive(Debug)]
pub struct WaitGuard<'a> {
    waiters: &'a Waiters,
    stats: &'a ServerStats,
    id: u64,
    client: u64,
    notify: Arc<Notify>,
    unblock: watch::Receiver<Option<bool>>,
    /// Counted in INFO blocked_clients / CLIENT LIST.
    counted: bool,
}

impl WaitGuard<'_> {
    /// The command found nothing and will wait on `keys` of `db`: it
    /// counts as blocked from now on.
    pub fn set_waiting(&mut self, db: u8, keys: &[Bytes]) {
        self.waiters.rekey(self.id, db, keys);
        if !self.counted {
            self.counted = true;
            self.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut ids) = self.stats.blocked_ids.lock() {
                ids.insert(self.client);
            }
        }
    }

    /// The waiter id (passed to [`Waiters::notify`] as `by`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True if a client blocked earlier on one of this command's keys
    /// (it is served first).
    pub fn behind_others(&self) -> bool {
        self.waiters.behind_others(self.id)
    }

    /// The run found nothing: stay in line (and look again if a write
    /// raced with the run).
    pub fn reblocked(&self) {
        self.waiters.set_running(self.id, false);
        self.waiters.reblocked(self.id);
    }

    /// Waits until this waiter should re-run (woken, or first in line at
    /// a poll tick) or is unblocked by CLIENT UNBLOCK.
    pub async fn wait(&mut self) -> Wake {
        // The sender lives in the registry as long as this guard; should
        // it close anyway, only stop listening to it.
        let mut open = true;
        loop {
            tokio::select! {
                _ = self.notify.notified() => {
                    self.waiters.set_running(self.id, true);
                    return Wake::Retry;
                }
                changed = self.unblock.changed(), if open => {
                    let how = *self.unblock.borrow();
                    match (changed, how) {
                        (Ok(()), Some(true)) => return Wake::UnblockError,
                        (Ok(()), Some(false)) => return Wake::UnblockTimeout,
                        (Err(_), _) => open = false,
                        _ => {}
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {
                    if self.waiters.poll_head(self.id) {
                        self.waiters.set_running(self.id, true);
                        return Wake::Retry;
                    }
                }
            }
        }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.waiters.leave(self.id);
        if self.counted {
            self.stats.blocked_clients.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut ids) = self.stats.blocked_ids.lock() {
                ids.remove(&self.client);
            }
        }
    }
}

/// Commands whose waiters do not consume what they wait for (see the
/// module documentation).
pub fn is_pass_through(name: &str) -> bool {
    name.starts_with('x')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::lookup;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(b).collect()
    }

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0").ok(), Some(None));
        assert_eq!(parse_timeout(b"-0.0001").ok(), Some(None));
        assert_eq!(
            parse_timeout(b"0.0001").ok(),
            Some(Some(Duration::from_millis(1)))
        );
        assert_eq!(
            parse_timeout(b"1.5").ok(),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_timeout(b"0x10").ok(),
            Some(Some(Duration::from_secs(16)))
        );
        let err = |s: &[u8]| match parse_timeout(s) {
            Err(ExecError::Reply(crate::frame::Frame::Error(e))) => {
                String::from_utf8_lossy(&e).into_owned()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(err(b"abc"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b""), "ERR timeout is not a float or out of range");
        assert_eq!(err(b" 1"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"nan"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"-1"), "ERR timeout is negative");
        assert_eq!(err(b"inf"), "ERR timeout is negative");
        assert_eq!(err(b"1e16"), "ERR timeout is negative");
        assert_eq!(
            parse_timeout_ms(b"100").ok(),
            Some(Some(Duration::from_millis(100)))
        );
        assert_eq!(parse_timeout_ms(b"0").ok(), Some(None));
        assert!(parse_timeout_ms(b"-1").is_err());
        assert!(parse_timeout_ms(b"1.5").is_err());
    }

    #[test]
    fn written_keys_follow_key_specs() {
        let keys = |cmd: &str| {
            let a = argv(cmd);
            let spec = crate::command_table::resolve(&a).expect("known command");
            written_keys(spec, &a)
        };
        assert_eq!(keys("LPUSH l a b"), vec![b("l")]);
        assert_eq!(keys("LMOVE s d LEFT RIGHT"), vec![b("d"), b("s")]);
        assert_eq!(keys("MSET a 1 b 2"), vec![b("a"), b("b")]);
        assert_eq!(keys("BLPOP x y 0"), vec![b("x"), b("y")]);
        assert_eq!(keys("LMPOP 2 p q LEFT"), vec![b("p"), b("q")]);
        assert_eq!(keys("BLMPOP 0 2 p q LEFT"), vec![b("p"), b("q")]);
        assert_eq!(
            keys("ZUNIONSTORE dst 2 a b WEIGHTS 1 2"),
            vec![b("a"), b("b"), b("dst")]
        );
        assert_eq!(keys("RENAME a b"), vec![b("a"), b("b")]);
        assert!(keys("PING").is_empty());
        assert!(lookup(b"xread").is_some());
        assert_eq!(
            keys("XREAD COUNT 1 STREAMS s1 s2 0 0"),
            vec![b("s1"), b("s2")]
        );
    }

    fn registry() -> (Waiters, ServerStats) {
        (Waiters::default(), ServerStats::default())
    }

    /// A command that queued, ran, found nothing and now waits.
    fn blocked<'a>(
        w: &'a Waiters,
        stats: &'a ServerStats,
        client: u64,
        db: u8,
        keys: &[Bytes],
        pass: bool,
    ) -> WaitGuard<'a> {
        let mut g = w.register(stats, client, db, keys, pass);
        g.set_waiting(db, keys);
        g.reblocked();
        g
    }

    fn fired(n: &Notify) -> bool {
        use std::future::Future;
        let f = n.notified();
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn first_blocked_is_woken_first_and_baton_passes_on_leave() {
        let (w, stats) = registry();
        let a = blocked(&w, &stats, 1, 0, &[b("k")], false);
        let bb = blocked(&w, &stats, 2, 0, &[b("k"), b("other")], false);
        let c = blocked(&w, &stats, 3, 0, &[b("k")], false);
        assert_eq!(stats.blocked_clients.load(Ordering::Relaxed), 3);
        assert_eq!(w.queued(0, b"k"), vec![a.id(), bb.id(), c.id()]);
        let woken = w.notify(0, &[b("k")], None);
        assert_eq!(woken.0.len(), 1);
        assert!(fired(&a.notify), "the earliest waiter gets the baton");
        assert!(!fired(&bb.notify) && !fired(&c.notify));
        // A second write while A re-runs does not wake anyone else (its
        // writer waits for A's run too)...
        let second = w.notify(0, &[b("k")], None);
        assert_eq!(second.0.len(), 1);
        assert!(w.notify(0, &[b("k")], Some(a.id())).is_empty());
        assert!(!fired(&bb.notify));
        // ...but makes A look again when it finds nothing.
        a.reblocked();
        assert!(fired(&a.notify));
        assert!(!fired(&bb.notify));
        // A is served and leaves: B is next.
        drop(a);
        assert!(fired(&bb.notify));
        assert!(!fired(&c.notify));
        // B finds nothing: the baton stops (C would find nothing either).
        bb.reblocked();
        assert!(!fired(&c.notify));
        assert!(
            woken.0.iter().all(|rx| *rx.borrow()),
            "the writer is released"
        );
        drop(bb);
        assert!(fired(&c.notify), "the new head is poked");
        assert_eq!(w.queued(0, b"k"), vec![c.id()]);
        assert!(w.queued(0, b"other").is_empty());
        drop(c);
        assert!(w.is_empty());
        assert_eq!(stats.blocked_clients.load(Ordering::Relaxed), 0);
        assert!(w.lock().queues.is_empty(), "no queue is leaked");
    }

    #[test]
    fn arrival_order_counts_and_a_write_during_the_first_run_is_seen() {
        let (w, stats) = registry();
        // A queues, then B; a write arrives while A is still running.
        let mut a = w.register(&stats, 1, 0, &[b("src"), b("dst")], false);
        let mut bb = w.register(&stats, 2, 0, &[b("src")], false);
        assert_eq!(stats.blocked_clients.load(Ordering::Relaxed), 0);
        let woken = w.notify(0, &[b("src")], None);
        assert_eq!(woken.0.len(), 1);
        bb.set_waiting(0, &[b("src")]);
        bb.reblocked();
        assert!(!fired(&bb.notify), "B is behind A");
        // A's first run predates the write: it must look again.
        a.set_waiting(0, &[b("src")]);
        assert_eq!(w.queued(0, b"dst"), Vec::<u64>::new(), "rekeyed");
        assert_eq!(w.queued(0, b"src"), vec![a.id(), bb.id()]);
        a.reblocked();
        assert!(fired(&a.notify));
        assert_eq!(stats.blocked_clients.load(Ordering::Relaxed), 2);
        drop(a);
        assert!(fired(&bb.notify), "the baton passes on in arrival order");
        drop(bb);
        assert_eq!(stats.blocked_clients.load(Ordering::Relaxed), 0);
        assert!(w.lock().queues.is_empty());
    }

    #[test]
    fn near_simultaneous_commands_queue_by_connection_age() {
        let (w, stats) = registry();
        let newer = w.register(&stats, 9, 0, &[b("k")], false);
        let older = w.register(&stats, 3, 0, &[b("k")], false);
        assert_eq!(w.queued(0, b"k"), vec![older.id(), newer.id()]);
        assert!(newer.behind_others());
        assert!(!older.behind_others());
        std::thread::sleep(TIE_WINDOW * 2);
        let oldest_but_late = w.register(&stats, 1, 0, &[b("k")], false);
        assert_eq!(
            w.queued(0, b"k"),
            vec![older.id(), newer.id(), oldest_but_late.id()],
            "beyond the window arrival order stands"
        );
    }

    #[test]
    fn keys_are_per_database_and_deduplicated() {
        let (w, stats) = registry();
        let a = blocked(&w, &stats, 1, 0, &[b("k"), b("k")], false);
        let other_db = blocked(&w, &stats, 2, 1, &[b("k")], false);
        assert_eq!(w.queued(0, b"k"), vec![a.id()]);
        w.notify(1, &[b("k")], None);
        assert!(!fired(&a.notify));
        assert!(fired(&other_db.notify));
    }

    #[test]
    fn pass_through_waiters_all_look() {
        let (w, stats) = registry();
        let a = blocked(&w, &stats, 1, 0, &[b("s")], true);
        let bb = blocked(&w, &stats, 2, 0, &[b("s")], true);
        w.notify(0, &[b("s")], None);
        assert!(fired(&a.notify));
        a.reblocked();
        assert!(fired(&bb.notify), "a reader that finds nothing passes on");
    }

    #[test]
    fn writer_is_not_told_to_wait_for_itself() {
        let (w, stats) = registry();
        let a = blocked(&w, &stats, 1, 0, &[b("k")], false);
        assert!(w.notify(0, &[b("k")], Some(a.id())).is_empty());
        assert!(fired(&a.notify));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_head_polls_and_unblock_releases() {
        let (w, stats) = registry();
        let mut a = blocked(&w, &stats, 1, 0, &[b("k")], false);
        let mut bb = blocked(&w, &stats, 2, 0, &[b("k")], false);
        assert_eq!(a.wait().await, Wake::Retry, "head re-checks on a tick");
        let bw = tokio::time::timeout(POLL_INTERVAL * 3, bb.wait()).await;
        assert!(bw.is_err(), "a waiter behind the head does not poll");
        assert!(w.unblock(2, true));
        assert_eq!(bb.wait().await, Wake::UnblockError);
        assert!(!w.unblock(99, false));
        a.reblocked();
        drop(a);
        drop(bb);
        assert!(stats
            .blocked_ids
            .lock()
            .map(|s| s.is_empty())
            .unwrap_or(false));
    }
}
