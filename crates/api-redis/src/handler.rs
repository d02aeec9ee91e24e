//! [`RedisHandler`]: the [`CommandHandler`] over a transactional
//! [`Store`]. Each command runs as one transaction; MULTI/EXEC runs the
//! whole queue as one transaction; WATCH records snapshot timestamps that
//! EXEC checks against its own snapshot and, when it writes, turns into
//! `assert_unchanged` checks at commit (so an EXEC of reads only commits
//! nothing).
//!
//! Conflicts: a command whose commit reports a write-write conflict is
//! re-run from scratch (new snapshot, every read and check repeated) up to
//! [`MAX_ATTEMPTS`] times with jittered backoff — it is the same command
//! arriving a little later. EXEC without WATCH is retried the same way
//! (the client saw none of the data it ran on, exactly as if it had
//! arrived later). EXEC with WATCH is never replayed: a conflict there
//! means the client's view may be stale, so EXEC answers the null array
//! and the client retries its optimistic transaction, as with Redis.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use elastickv_kv::KvError;
use elastickv_types::hlc::physical_ms;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::batch::{Batcher, Call};
use crate::blocking::{self, Woken};
use crate::cmd::{self, keyspace};
use crate::command_table::CmdFlags;
use crate::command_table::CommandSpec;
use crate::db::{Block, Ctx, ExecError};
use crate::frame::{Frame, Protocol};
use crate::layout;
use crate::notify;
use crate::parse::Command;
use crate::pubsub::{self, Broadcaster, Hub};
use crate::server::{ClientState, CommandHandler, Server, ServerConfig, ServerStats, WatchedKey};
use crate::shared::{ConfigTable, Cursors, Shared};
use crate::store::{Store, Tx};

/// How many times a conflicting command is re-run before giving up.
pub const MAX_ATTEMPTS: u32 = 64;

/// Retries stop once a command has spent this long (a read that meets
/// another transaction's live lock may already wait seconds per attempt).
pub const RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Most keys one client may WATCH.
pub const MAX_WATCHED_KEYS: usize = 100_000;

/// Metadata records FLUSHDB/FLUSHALL delete per transaction outside
/// MULTI (a flush of a large keyspace is a series of transactions).
const FLUSH_BATCH: usize = 10_000;

/// Stripes of the per-key write serialisation (see [`RedisHandler`]).
const KEY_STRIPES: usize = 256;

/// Queues of the write batcher (see [`crate::batch`]). Few on purpose:
/// writes to *different* keys share a batch too, so a node's concurrent
/// writers share one begin and one commit per batch. Measured with
/// `bench/redis-compare.py --requests 50000 --tests set,incr,lpush,hset,zadd`
/// (2026-12-04): one node, unpipelined SET 20.7k/s with 256 stripes,
/// 35.7k with 2, 37.1k with 1; INCR 22.2k → 37.6k; LPUSH 37.8k → 51.2k.
/// Since the runner gathers the clients it answered (2026-12-07, 3 nodes,
/// unpipelined, three interleaved rounds), one queue beats two: SET
/// 10.3k → 14.2k/s, INCR 9.8k → 14.5k, LPUSH 15.3k → 16.6k, ZADD 8.3k →
/// 9.6k — every write of the node shares the one commit in flight, as
/// Redis's single thread orders them all.
const BATCH_STRIPES: usize = 1;

/// The Redis command handler over a store.
///
/// Write commands on the same key arriving at the same node are
/// serialised through a striped local lock before their transaction
/// begins: they would otherwise all conflict and retry against each
/// other. Only one stripe is ever held per command (its first key), so
/// the locks cannot deadlock; writers on other nodes are still ordered by
/// the transactions' conflict detection.
pub struct RedisHandler {
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    key_locks: Vec<tokio::sync::Mutex<()>>,
    batcher: Arc<Batcher>,
}

/// Front-end settings the handler needs.
#[derive(Clone, Debug)]
pub struct HandlerConfig {
    /// Redis port (INFO, CONFIG GET port).
    pub port: u16,
    /// Largest reply built for one command.
    pub max_reply_bytes: usize,
    /// `maxclients` reported by CONFIG GET.
    pub max_clients: usize,
    /// Version INFO reports.
    pub version: String,
}

impl RedisHandler {
    /// A handler over `store`, counting into `stats`, with node-local
    /// pub/sub.
    pub fn new(store: Arc<dyn Store>, config: HandlerConfig, stats: Arc<ServerStats>) -> Self {
        Self::with_pubsub(store, config, stats, Arc::default(), None)
    }

    /// A handler whose pub/sub subscriptions live in `hub` and whose
    /// PUBLISH / PUBSUB also reach the other nodes through `broadcaster`.
    pub fn with_pubsub(
        store: Arc<dyn Store>,
        config: HandlerConfig,
        stats: Arc<ServerStats>,
        hub: Arc<Hub>,
        broadcaster: Option<Arc<dyn Broadcaster>>,
    ) -> Self {
        let run_id: String = {
            let mut rng = rand::thread_rng();
            (0..40)
                .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let shared = Shared {
            config: Mutex::new(ConfigTable::new(config.port, config.max_clients)),
            cursors: Mutex::new(Cursors::default()),
            max_value_bytes: store.max_value_bytes(),
            max_reply_bytes: config.max_reply_bytes,
            stats,
            started: Instant::now(),
            run_id,
            port: config.port,
            version: config.version,
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            hub,
            broadcaster,
            waiters: crate::blocking::Waiters::default(),
            scripts: crate::script::Scripts::default(),
            notify_flags: std::sync::atomic::AtomicU32::new(0),
        };
        let shared = Arc::new(shared);
        RedisHandler {
            batcher: Arc::new(Batcher::new(
                BATCH_STRIPES,
                Arc::clone(&store),
                Arc::clone(&shared),
            )),
            store,
            shared,
            key_locks: (0..KEY_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Node-wide state (tests).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Node-wide state, shared.
    pub fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Runs one command in its own transaction, re-running it on
    /// conflicts (a blocking command answers as if its timeout passed).
    pub async fn run_single(&self, proto: Protocol, db: u8, name: &str, argv: &[Bytes]) -> Frame {
        match self
            .run_txn(proto, db, name, argv, RunMode::default(), None)
            .await
        {
            Ran::Reply { frame, wrote } => {
                if wrote {
                    self.notify_written(db, name, argv, None);
                }
                frame
            }
            Ran::Blocked(b) => b.timeout_reply,
        }
    }

    /// Wakes the clients blocked on the keys a committed write command
    /// wrote (its key specs; see `crate::blocking`).
    fn notify_written(&self, db: u8, name: &str, argv: &[Bytes], by: Option<u64>) -> Woken {
        if self.shared.waiters.is_empty() {
            return Woken::default();
        }
        let Some(spec) = crate::command_table::lookup_full_name(name.as_bytes()) else {
            return Woken::default();
        };
        if !spec.has(CmdFlags::WRITE) {
            return Woken::default();
        }
        if matches!(name, "move" | "copy" | "swapdb") {
            // They may write another database than the client's.
            return self.shared.waiters.notify_all();
        }
        let keys = blocking::written_keys(spec, argv);
        self.shared.waiters.notify(db, &keys, by)
    }

    /// Runs one command in its own transaction, re-running it on
    /// conflicts; `may_block` lets a blocking command ask to wait.
    async fn run_txn(
        &self,
        proto: Protocol,
        db: u8,
        name: &str,
        argv: &[Bytes],
        mode: RunMode,
        mut first_tx: Option<Box<dyn Tx>>,
    ) -> Ran {
        let reply = |frame| Ran::Reply {
            frame,
            wrote: false,
        };
        if name == "flushdb" || name == "flushall" {
            return reply(self.flush(db, name == "flushall", argv).await);
        }
        let mut last_conflict = None;
        let started = Instant::now();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                if started.elapsed() > RETRY_BUDGET {
                    break;
                }
                backoff(attempt).await;
            }
            let began = match first_tx.take() {
                Some(tx) => Ok(tx),
                None => self.store.begin().await,
            };
            let mut tx = match began {
                Ok(tx) => tx,
                Err(e) => return reply(kv_error_frame(e)),
            };
            let (result, events) = {
                let mut cx = Ctx::new(tx.as_mut(), proto, &self.shared, db);
                cx.may_block = mode.may_block;
                cx.rerun = mode.rerun;
                cx.wait_turn = mode.wait_turn;
                let result = cmd::dispatch(&mut cx, name, argv).await;
                (result, cx.take_events())
            };
            match result {
                Ok(frame) => {
                    if tx.write_count() == 0 {
                        // Read-only: only `keymiss` events can be pending.
                        notify::publish(&self.shared, &events).await;
                        return reply(frame);
                    }
                    match tx.commit().await {
                        Ok(_) => {
                            notify::publish(&self.shared, &events).await;
                            return Ran::Reply { frame, wrote: true };
                        }
                        Err(KvError::Conflict(m)) => last_conflict = Some(m),
                        Err(e) => return reply(kv_error_frame(e)),
                    }
                }
                Err(ExecError::Reply(f)) => return reply(f),
                // Nothing buffered: the transaction is simply dropped.
                Err(ExecError::Block(b)) if mode.may_block => return Ran::Blocked(b),
                Err(ExecError::Block(b)) => return reply(b.timeout_reply),
                Err(ExecError::Kv(KvError::Conflict(m))) => last_conflict = Some(m),
                Err(ExecError::Kv(e)) => return reply(kv_error_frame(e)),
            }
        }
        reply(kv_error_frame(KvError::Conflict(
            last_conflict.unwrap_or_default(),
        )))
    }

    /// The per-key write lock of a command (see [`RedisHandler`]).
    async fn stripe_lock(
        &self,
        spec: &CommandSpec,
        argv: &[Bytes],
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let key = if matches!(spec.name, "eval" | "evalsha" | "fcall") {
            // Scripts that may write carry no WRITE flag and no legacy key
            // positions, but their declared keys come first: scripts on
            // one hot key then queue here instead of conflicting with
            // each other until their retries run out.
            script_first_key(argv)
        } else if spec.has(CmdFlags::WRITE) {
            spec.legacy_key_indexes(argv.len())
                .and_then(|idx| idx.first().copied())
                .and_then(|i| argv.get(i))
        } else {
            None
        };
        Some(self.key_locks[stripe_of(key?)].lock().await)
    }

    /// A single command from a client, which may block: runs it; while it
    /// asks to wait, waits (outside the key lock, so the write it waits
    /// for can happen) for a wake-up, its timeout, CLIENT UNBLOCK or the
    /// client hanging up, and runs it again.
    async fn run_blocking(
        &self,
        client: &mut ClientState,
        spec: &CommandSpec,
        name: &str,
        argv: &[Bytes],
    ) -> Frame {
        let proto = client.protocol;
        let db = client_db(client);
        let mut hangup = client.hangup.subscribe();
        let mut args: Vec<Bytes> = argv.to_vec();
        // Queued before the first run, on every key the command names:
        // clients are served in the order their commands arrived, and a
        // write committed during the first run still reaches this one.
        let mut guard = self.shared.waiters.register(
            &self.shared.stats,
            client.id,
            db,
            &blocking::written_keys(spec, argv),
            blocking::is_pass_through(name),
        );
        // The first run reads the keys as they were when the command
        // arrived, as Redis would: the yields below and the key lock let
        // writes that arrived after it (the DEL right behind a blocking
        // XREADGROUP) commit first, and the command would then answer as if
        // it came second. Such a write commits after this snapshot and
        // after the registration above, so it wakes this command, which
        // then sees it (or, if the first run writes, conflicts and retries).
        // Failing to begin here is not an error: the run begins again.
        let mut first_tx = self.store.begin().await.ok();
        // Let connections woken together with this one queue too before
        // anyone runs: the runtime runs the most recently woken task first,
        // which would otherwise invert their order (see
        // `blocking::TIE_WINDOW`).
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
        let mut deadline: Option<Option<tokio::time::Instant>> = None;
        loop {
            let ran = {
                let _serialised = self.stripe_lock(spec, &args).await;
                let first = deadline.is_none();
                // Clients blocked earlier on these keys go first.
                let wait_turn = first && guard.behind_others();
                let mode = RunMode {
                    may_block: true,
                    rerun: !first,
                    wait_turn,
                };
                self.run_txn(proto, db, name, &args, mode, first_tx.take())
                    .await
            };
            let b = match ran {
                Ran::Reply { frame, wrote } => {
                    if wrote {
                        self.notify_written(db, name, &args, Some(guard.id()))
                            .wait(blocking::WAKE_WAIT)
                            .await;
                    }
                    // Leaving the queues passes any baton held on.
                    drop(guard);
                    return frame;
                }
                Ran::Blocked(b) => b,
            };
            let Block {
                keys,
                timeout,
                timeout_reply,
                rerun,
            } = *b;
            let until = *deadline.get_or_insert_with(|| {
                timeout.and_then(|t| tokio::time::Instant::now().checked_add(t))
            });
            if let Some(r) = rerun {
                args = r;
            }
            guard.set_waiting(db, &keys);
            guard.reblocked();
            let g = &mut guard;
            let timed_out = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                wake = g.wait() => match wake {
                    blocking::Wake::Retry => {}
                    blocking::Wake::UnblockTimeout => return timeout_reply,
                    blocking::Wake::UnblockError => {
                        return Frame::error("-UNBLOCKED client unblocked via CLIENT UNBLOCK")
                    }
                },
                () = timed_out => return timeout_reply,
                // Nobody will read the reply.
                _ = hangup.wait_for(|gone| *gone) => return timeout_reply,
            }
        }
    }

    /// FLUSHDB / FLUSHALL outside MULTI: batches of metadata deletes.
    async fn flush(&self, db: u8, all: bool, argv: &[Bytes]) -> Frame {
        if let Err(e) = keyspace::check_flush_args(argv) {
            return reply_of(Err(e));
        }
        let mut attempts = 0;
        loop {
            let mut tx = match self.store.begin().await {
                Ok(tx) => tx,
                Err(e) => return kv_error_frame(e),
            };
            let res = {
                let mut cx = Ctx::new(tx.as_mut(), Protocol::Resp2, &self.shared, db);
                keyspace::flush_some(&mut cx, FLUSH_BATCH, all).await
            };
            let done = match res {
                Ok((_, done)) => done,
                Err(ExecError::Reply(f)) => return f,
                Err(ExecError::Block(b)) => return b.timeout_reply,
                Err(ExecError::Kv(e)) => return kv_error_frame(e),
            };
            match tx.commit().await {
                Ok(_) => {
                    if done {
                        return Frame::ok();
                    }
                }
                Err(KvError::Conflict(_)) if attempts < MAX_ATTEMPTS => {
                    attempts += 1;
                    backoff(attempts).await;
                }
                Err(e) => return kv_error_frame(e),
            }
        }
    }

    /// WATCH key [key ...]: records the snapshot each key was seen at.
    async fn watch(&self, client: &mut ClientState, argv: &[Bytes]) -> Frame {
        if client.watch.keys.len() + argv.len() - 1 > MAX_WATCHED_KEYS {
            return Frame::error(format!("too many watched keys (limit {MAX_WATCHED_KEYS})"));
        }
        let mut tx = match self.store.begin().await {
            Ok(tx) => tx,
            Err(e) => return kv_error_frame(e),
        };
        let db = client_db(client);
        let mut cx = Ctx::new(tx.as_mut(), client.protocol, &self.shared, db);
        let mut added = Vec::with_capacity(argv.len() - 1);
        for key in &argv[1..] {
            if client
                .watch
                .keys
                .iter()
                .any(|w| w.key == *key && w.db == db)
            {
                continue;
            }
            // Reading the record also makes the key's group observe the
            // timestamp: any later write there commits above it.
            // `meta` answers only a live key: one already expired is
            // watched as missing.
            let (live, expire_at_ms) = match cx.meta(key).await {
                Ok(m) => (m.is_some(), m.map(|m| m.expire_at).unwrap_or(0)),
                Err(ExecError::Reply(f)) => return f,
                Err(ExecError::Block(b)) => return b.timeout_reply,
                Err(ExecError::Kv(e)) => return kv_error_frame(e),
            };
            added.push(WatchedKey {
                db,
                key: key.clone(),
                since: cx.start_ts,
                expire_at_ms,
                live,
            });
        }
        client.watch.keys.extend(added);
        Frame::ok()
    }

    /// EXEC: the queued commands as one transaction.
    async fn exec(&self, client: &mut ClientState) -> Frame {
        let Some(multi) = client.take_multi() else {
            return Frame::error("EXEC without MULTI");
        };
        let watched = std::mem::take(&mut client.watch.keys);
        let proto = client.protocol;
        let db = client_db(client);
        let cmds: Vec<(&'static str, Command)> = multi
            .queue
            .into_iter()
            .map(|c| (c.spec().map(|s| s.name).unwrap_or(""), c))
            .collect();
        let started = Instant::now();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                if started.elapsed() > RETRY_BUDGET {
                    break;
                }
                backoff(attempt).await;
            }
            let mut tx = match self.store.begin().await {
                Ok(tx) => tx,
                Err(e) => return kv_error_frame(e),
            };
            let now_ms = physical_ms(tx.clock_now());
            for w in &watched {
                // A key that was live at WATCH and has expired since
                // counts as modified (Redis 7).
                if w.expire_at_ms != 0 && w.expire_at_ms <= now_ms {
                    return Frame::NullArray;
                }
            }
            // WATCH's contract: EXEC fails if a watched key was written
            // after WATCH. Writes up to this snapshot show as a newer
            // version in it (the read also makes the key's group commit
            // every later write above the snapshot); writes after it are
            // caught at commit, below. A transaction that writes nothing
            // then commits nothing: it happened at its snapshot.
            //
            // A WATCH older than the GC safe point (held past the GC
            // retention, 10 minutes by default) may have lost that
            // evidence: a key created and deleted since, both versions
            // collected, leaves none. Such an EXEC aborts, as if the key
            // had been written.
            for w in &watched {
                let key = layout::meta_key(w.db, &w.key);
                if w.since < tx.gc_safe_point(&key) {
                    return Frame::NullArray;
                }
                match tx.version_ts(&key).await {
                    Ok(Some(ts)) if ts > w.since => return Frame::NullArray,
                    Ok(None) if w.live => return Frame::NullArray,
                    Ok(_) => {}
                    Err(e) => return kv_error_frame(e),
                }
            }
            let mut replies = Vec::with_capacity(cmds.len());
            let mut failed: Option<KvError> = None;
            // SELECT inside the transaction switches the database for the
            // commands after it, and for the client once EXEC succeeds.
            let (final_db, events) = {
                let mut cx = Ctx::new(tx.as_mut(), proto, &self.shared, db);
                for (name, c) in &cmds {
                    let mark = cx.begin_command();
                    match cmd::dispatch(&mut cx, name, c.argv()).await {
                        Ok(f) => replies.push(f),
                        Err(ExecError::Reply(f)) => {
                            cx.drop_events_since(mark);
                            replies.push(f)
                        }
                        Err(ExecError::Block(b)) => replies.push(b.timeout_reply),
                        Err(ExecError::Kv(e)) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                let events = cx.take_events();
                (cx.db, events)
            };
            let wrote = tx.write_count() > 0;
            if wrote {
                // Writes after the snapshot: each watched key is asserted
                // unchanged at commit, except a key the transaction writes
                // itself, whose write is conflict-checked from the
                // snapshot on anyway.
                for w in &watched {
                    tx.assert_unchanged(layout::meta_key(w.db, &w.key), w.since);
                }
            }
            let outcome = match failed {
                Some(e) => Err(e),
                None => tx.commit().await.map(|_| ()),
            };
            match outcome {
                Ok(()) => {
                    client.db = u32::from(final_db);
                    notify::publish(&self.shared, &events).await;
                    if wrote {
                        // SELECT inside the transaction may have moved
                        // later commands to another database: wake by
                        // key in every database touched.
                        let mut woken = Vec::new();
                        for (name, c) in &cmds {
                            for d in [db, final_db] {
                                woken.push(self.notify_written(d, name, c.argv(), None));
                            }
                            if db == final_db {
                                woken.pop();
                            }
                        }
                        for w in woken {
                            w.wait(blocking::WAKE_WAIT).await;
                        }
                    }
                    return Frame::Array(replies);
                }
                Err(KvError::Conflict(_)) if !watched.is_empty() => return Frame::NullArray,
                Err(KvError::Conflict(_)) => continue,
                Err(e) => return kv_error_frame(e),
            }
        }
        kv_error_frame(KvError::Conflict("EXEC kept conflicting".into()))
    }
}

/// How a blocking command runs (see the fields of the same names in
/// [`Ctx`]); all false for everything else.
#[derive(Clone, Copy, Debug, Default)]
struct RunMode {
    may_block: bool,
    rerun: bool,
    wait_turn: bool,
}

/// How a command's transaction ended.
enum Ran {
    /// A reply; `wrote` if a write was committed.
    Reply { frame: Frame, wrote: bool },
    /// The command asks to wait (nothing was written).
    Blocked(Box<Block>),
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR]: 1 if that client was
/// blocked (it then answers its timeout reply, or the UNBLOCKED error).
fn client_unblock(waiters: &blocking::Waiters, argv: &[Bytes]) -> Frame {
    if argv.len() > 4 {
        return Frame::error(
            "unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.",
        );
    }
    let Some(id) = crate::parse::parse_i64_strict(&argv[2]) else {
        return Frame::error("value is not an integer or out of range");
    };
    let error = match argv.get(3) {
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"TIMEOUT") => false,
        Some(a) if a.eq_ignore_ascii_case(b"ERROR") => true,
        Some(_) => return Frame::error("CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let hit = u64::try_from(id).is_ok_and(|id| waiters.unblock(id, error));
    Frame::Integer(i64::from(hit))
}

/// The batching stripe of a write command: its first key's hash.
fn write_stripe(spec: &CommandSpec, argv: &[Bytes]) -> Option<usize> {
    spec.legacy_key_indexes(argv.len())
        .and_then(|idx| idx.first().copied())
        .and_then(|i| argv.get(i))
        .map(stripe_of)
}

/// The key stripe (lock and write queue) of `key`.
fn stripe_of(key: &Bytes) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(key, &mut h);
    (std::hash::Hasher::finish(&h) as usize) % KEY_STRIPES
}

/// The first declared key of `EVAL script numkeys key...` (and EVALSHA,
/// FCALL), if it declares any.
fn script_first_key(argv: &[Bytes]) -> Option<&Bytes> {
    let numkeys: usize = std::str::from_utf8(argv.get(2)?).ok()?.parse().ok()?;
    if numkeys == 0 {
        return None;
    }
    argv.get(3)
}

/// Jittered pause before re-running a conflicting transaction.
pub(crate) async fn backoff(attempt: u32) {
    let max_ms = 1u64 << attempt.min(5);
    let ms = rand::thread_rng().gen_range(0..=max_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Before a PUBLISH counts its receivers: subscription changes that
/// reached this node just before it (an UNSUBSCRIBE written to another
/// connection first) apply first, as in Redis's arrival order. Each yield
/// lets the runtime poll its sockets and run the connections that became
/// readable. Only while this node has subscribers: the yields cost a
/// pipelined PUBLISH a quarter more CPU, and with no subscriber there is
/// no unsubscribe to wait for (a SUBSCRIBE racing the first PUBLISH is
/// not waited for).
async fn let_earlier_arrivals_run(hub: &Hub, shard: bool) {
    if !hub.has_subscribers(shard) {
        return;
    }
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}

/// The client's selected database (SELECT keeps it below 16).
fn client_db(client: &ClientState) -> u8 {
    u8::try_from(client.db).unwrap_or(0)
}

/// A command result as a reply.
fn reply_of(r: Result<Frame, ExecError>) -> Frame {
    match r {
        Ok(f) => f,
        Err(ExecError::Reply(f)) => f,
        Err(ExecError::Block(b)) => b.timeout_reply,
        Err(ExecError::Kv(e)) => kv_error_frame(e),
    }
}

/// Data-plane errors as Redis errors. Retryable conditions use
/// `TRYAGAIN` (as Redis Cluster does for operations to retry later);
/// a timeout is reported as such because the outcome is unknown.
pub fn kv_error_frame(e: KvError) -> Frame {
    match e {
        KvError::Conflict(m) => Frame::error(format!(
            "-TRYAGAIN write conflict with concurrent transactions, retry ({m})"
        )),
        KvError::Unavailable(m) => Frame::error(format!("-TRYAGAIN cluster unavailable: {m}")),
        KvError::Timeout(m) => Frame::error(format!(
            "timed out, the command may or may not have been applied: {m}"
        )),
        KvError::InvalidArgument(m) => Frame::error(m),
        KvError::Internal(m) => Frame::error(format!("internal error: {m}")),
    }
}

#[async_trait]
impl CommandHandler for RedisHandler {
    async fn on_reset(&self, client: &mut ClientState) {
        self.shared.hub.forget(client);
        client.subscriptions = Default::default();
    }

    async fn on_disconnect(&self, client: &mut ClientState) {
        self.shared.hub.forget(client);
    }

    fn pipelinable(&self, spec: &CommandSpec) -> bool {
        // Data commands only: nothing that changes connection state,
        // blocks, or runs a script.
        matches!(
            spec.group,
            "string"
                | "bitmap"
                | "hash"
                | "list"
                | "set"
                | "sorted-set"
                | "hyperloglog"
                | "stream"
                | "generic"
        ) && !spec.has(CmdFlags::BLOCKING)
    }

    async fn handle_pipeline(&self, client: &mut ClientState, cmds: Vec<Command>) -> Vec<Frame> {
        let db = client_db(client);
        // Writes all on one key stripe (LPUSH mylist x 16): queue the run
        // on that stripe, so it shares a transaction with the other
        // clients' writes to the key instead of conflicting with them.
        let mut stripes = cmds.iter().filter_map(|c| {
            let spec = c.spec()?;
            if spec.has(CmdFlags::WRITE) {
                Some(write_stripe(spec, c.argv()))
            } else {
                None
            }
        });
        let first = stripes.next();
        let single_stripe = match first {
            Some(Some(s)) if stripes.all(|o| o == Some(s)) => Some(s),
            _ => None,
        };
        let calls: Vec<Call> = cmds
            .into_iter()
            .map(|c| Call {
                proto: client.protocol,
                db,
                name: c.spec().map(|s| s.name).unwrap_or(""),
                argv: c.into_argv(),
            })
            .collect();
        let replies = match single_stripe {
            Some(stripe) => self.batcher.run_calls(stripe, calls.clone()).await,
            None => self.batcher.run_together(&calls).await,
        };
        let mut woken = Woken::default();
        for (call, reply) in calls.iter().zip(&replies) {
            if !matches!(reply, Frame::Error(_)) {
                woken.merge(self.notify_written(db, call.name, &call.argv, None));
            }
        }
        woken.wait(blocking::WAKE_WAIT).await;
        replies
    }

    async fn handle(&self, client: &mut ClientState, cmd: Command) -> Frame {
        let Some(spec) = cmd.spec() else {
            return Frame::error("unknown command");
        };
        match spec.name {
            "exec" => self.exec(client).await,
            "watch" => self.watch(client, cmd.argv()).await,
            "unwatch" => {
                client.watch.keys.clear();
                Frame::ok()
            }
            "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
            | "sunsubscribe" => {
                let kind = pubsub::SubKind::of_command(spec.name);
                let hub = &self.shared.hub;
                let mut replies = if spec.name.ends_with("unsubscribe") {
                    hub.unsubscribe(client, &cmd.argv()[1..], kind)
                } else {
                    hub.subscribe(client, &cmd.argv()[1..], kind)
                };
                // One confirmation per name: all but the last go out first.
                let last = replies.pop().unwrap_or(Frame::NullArray);
                client.extra_replies = replies;
                last
            }
            "client|unblock" => client_unblock(&self.shared.waiters, cmd.argv()),
            "publish" => {
                let_earlier_arrivals_run(&self.shared.hub, false).await;
                let argv = cmd.argv();
                let b = self.shared.broadcaster.as_deref();
                Frame::Integer(pubsub::publish(&self.shared.hub, b, &argv[1], &argv[2]).await)
            }
            "spublish" => {
                let_earlier_arrivals_run(&self.shared.hub, true).await;
                let argv = cmd.argv();
                let b = self.shared.broadcaster.as_deref();
                Frame::Integer(pubsub::publish_shard(&self.shared.hub, b, &argv[1], &argv[2]).await)
            }
            name @ ("pubsub|channels"
            | "pubsub|numsub"
            | "pubsub|numpat"
            | "pubsub|shardchannels"
            | "pubsub|shardnumsub") => {
                let b = self.shared.broadcaster.as_deref();
                pubsub::pubsub_command(&self.shared.hub, b, name, cmd.argv()).await
            }
            "config|set" if sets_notify_config(cmd.argv()) => {
                // Cluster-wide and durable: written in a transaction (see
                // `crate::notify`).
                let db = client_db(client);
                match self
                    .run_txn(
                        client.protocol,
                        db,
                        "config|set",
                        cmd.argv(),
                        RunMode::default(),
                        None,
                    )
                    .await
                {
                    Ran::Reply { frame, .. } => frame,
                    Ran::Blocked(b) => b.timeout_reply,
                }
            }
            name if !cmd::needs_txn(name) => {
                // Node-local commands still use a context for uniformity;
                // they never touch the store.
                reply_of(self.local(client.protocol, name, cmd.argv()))
            }
            name if spec.has(CmdFlags::BLOCKING) => {
                self.run_blocking(client, spec, name, cmd.argv()).await
            }
            name if write_stripe(spec, cmd.argv()).is_some()
                && spec.has(CmdFlags::WRITE)
                && name != "flushdb"
                && name != "flushall" =>
            {
                // Writes are batched per key (see `crate::batch`); a write
                // that did not fail wakes the clients blocked on its keys
                // (if it changed nothing they look and wait again).
                let argv = cmd.argv();
                let db = client_db(client);
                let stripe = write_stripe(spec, argv).unwrap_or(0);
                let frame = self
                    .batcher
                    .run(stripe, client.protocol, db, spec.name, argv)
                    .await;
                if !matches!(frame, Frame::Error(_)) {
                    self.notify_written(db, name, argv, None)
                        .wait(blocking::WAKE_WAIT)
                        .await;
                }
                frame
            }
            name => {
                let argv = cmd.argv();
                let db = client_db(client);
                let ran = {
                    let _serialised = self.stripe_lock(spec, argv).await;
                    self.run_txn(client.protocol, db, name, argv, RunMode::default(), None)
                        .await
                };
                match ran {
                    Ran::Reply { frame, wrote } => {
                        if wrote {
                            // Outside the key lock: the woken clients take it.
                            self.notify_written(db, name, argv, None)
                                .wait(blocking::WAKE_WAIT)
                                .await;
                        }
                        frame
                    }
                    Ran::Blocked(b) => b.timeout_reply,
                }
            }
        }
    }
}

impl RedisHandler {
    fn local(&self, _proto: Protocol, name: &str, argv: &[Bytes]) -> Result<Frame, ExecError> {
        match name {
            "config|get" | "config|set" | "config|resetstat" | "config|rewrite" => {
                let mut tx = NoTx;
                let mut cx = Ctx::new(&mut tx, Protocol::Resp2, &self.shared, 0);
                cmd::admin::config(&mut cx, name, argv)
            }
            _ => cmd::admin::connection_cmd(name, argv),
        }
    }
}

/// True for a CONFIG SET that names `notify-keyspace-events`.
fn sets_notify_config(argv: &[Bytes]) -> bool {
    argv.iter()
        .skip(2)
        .step_by(2)
        .any(|n| n.eq_ignore_ascii_case(b"notify-keyspace-events"))
}

/// A transaction that is never used (node-local commands).
struct NoTx;

#[async_trait]
impl crate::store::Tx for NoTx {
    fn start_ts(&self) -> u64 {
        0
    }
    fn clock_now(&self) -> u64 {
        0
    }
    async fn get(&mut self, _key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Err(KvError::Internal("no transaction".into()))
    }
    async fn scan(
        &mut self,
        _start: &[u8],
        _end: Option<&[u8]>,
        _limit: usize,
        _reverse: bool,
    ) -> Result<crate::store::Page, KvError> {
        Err(KvError::Internal("no transaction".into()))
    }
    async fn version_ts(&mut self, _key: &[u8]) -> Result<Option<u64>, KvError> {
        Err(KvError::Internal("no transaction".into()))
    }
    fn gc_safe_point(&self, _key: &[u8]) -> u64 {
        0
    }
    fn buffers_write(&self, _key: &[u8]) -> bool {
        false
    }
    fn put(&mut self, _key: Vec<u8>, _value: Vec<u8>) {}
    fn delete(&mut self, _key: Vec<u8>) {}
    fn assert_unchanged(&mut self, _key: Vec<u8>, _since: u64) {}
    fn write_count(&self) -> usize {
        0
    }
    async fn commit(self: Box<Self>) -> Result<u64, KvError> {
        Ok(0)
    }
}

/// Serves the Redis protocol for `store` on `listener` until `shutdown`
/// turns true. `config.limits` bound every connection; replies are also
/// bounded by its output-buffer limit.
pub async fn serve(
    store: Arc<dyn Store>,
    listener: TcpListener,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve_node(store, listener, config, shutdown, Arc::default(), None).await
}

/// [`serve`] for a cluster node: pub/sub subscriptions in `hub` (which the
/// node's gRPC service also delivers into), PUBLISH and PUBSUB fanned out
/// through `broadcaster`.
pub async fn serve_node(
    store: Arc<dyn Store>,
    listener: TcpListener,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
    hub: Arc<Hub>,
    broadcaster: Option<Arc<dyn Broadcaster>>,
) -> std::io::Result<()> {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let stats = Arc::new(ServerStats::default());
    let handler = RedisHandler::with_pubsub(
        Arc::clone(&store),
        HandlerConfig {
            port,
            max_reply_bytes: config.limits.max_output_buffer,
            max_clients: config.max_clients,
            version: config.version.clone(),
        },
        Arc::clone(&stats),
        hub,
        broadcaster,
    );
    tokio::spawn(crate::notify::run_refresher(
        Arc::clone(&store),
        handler.shared_arc(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::reclaim::run(
        Arc::clone(&store),
        handler.shared_arc(),
        crate::reclaim::ReclaimLimits::default(),
        shutdown.clone(),
    ));
    let server = Server::with_stats(config, Arc::new(handler), stats);
    server.serve(listener, shutdown).await
}
