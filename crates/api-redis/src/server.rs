//! The Redis-protocol server skeleton: accept loop (max-clients semaphore,
//! accept backoff, graceful shutdown), one task per connection running the
//! pipelined read → dispatch → reply loop, and the connection-level
//! commands that need no storage (PING, ECHO, QUIT, RESET, HELLO, AUTH,
//! SELECT, CLIENT ID/SETNAME/GETNAME/LIST/INFO, COMMAND..., TIME, and MULTI
//! queueing). Everything else goes to a [`CommandHandler`], implemented
//! over the data plane.
//!
//! Dispatch order follows Redis 7.0's `processCommand`: unknown command /
//! subcommand, arity, authentication, pub/sub context, MULTI queueing, then
//! execution.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::command_table::{self, CmdFlags, CommandSpec, ListFilter};
use crate::connection::{ConnError, Connection};
use crate::frame::{Frame, Protocol, Reply};
use crate::parse::{parse_i64_strict, Command};
use crate::resp::Limits;

/// Server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Protocol limits applied to every connection.
    pub limits: Limits,
    /// Maximum simultaneous clients (Redis `maxclients`, 10000).
    pub max_clients: usize,
    /// `requirepass` for the default user (`--redisPassword`); `None`
    /// disables authentication.
    pub password: Option<Bytes>,
    /// How long a flush may wait for a client to read.
    pub write_timeout: Duration,
    /// Close clients idle this long (Redis `timeout`); `None` never.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown waits for connections to finish their batch.
    pub shutdown_grace: Duration,
    /// Largest total argument size of the commands queued in one MULTI;
    /// beyond it commands are rejected and the transaction is aborted.
    pub max_multi_bytes: usize,
    /// Version reported by HELLO/INFO. Clients gate features on it, and
    /// the command table mirrors Redis 7.0.
    pub version: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_clients: 10_000,
            password: None,
            write_timeout: Duration::from_secs(60),
            idle_timeout: None,
            shutdown_grace: Duration::from_secs(5),
            max_multi_bytes: 256 * 1024 * 1024,
            version: "7.0.15".to_string(),
        }
    }
}

/// A transaction being queued between MULTI and EXEC.
#[derive(Debug, Default)]
pub struct MultiState {
    /// Commands queued so far.
    pub queue: Vec<Command>,
    /// Sum of the queued commands' argument sizes.
    pub queued_bytes: usize,
    /// A queued command was rejected (unknown, arity, NOAUTH...): EXEC
    /// must fail with EXECABORT.
    pub aborted: bool,
}

/// One watched key, as the data-plane handler recorded it at WATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedKey {
    /// The database the key was watched in.
    pub db: u8,
    /// The key.
    pub key: Bytes,
    /// Snapshot timestamp the key was watched at: any write after it
    /// aborts EXEC.
    pub since: u64,
    /// The key's expiry (Unix ms, 0 = none) when watched, so a key that
    /// expires between WATCH and EXEC aborts it as in Redis.
    pub expire_at_ms: u64,
    /// The key was live when watched. EXEC finding no version of it at all
    /// then means it was deleted and the delete's tombstone was already
    /// garbage-collected (a WATCH held past the GC retention): a change.
    pub live: bool,
}

/// WATCH bookkeeping; the data-plane handler fills it in and checks it at
/// EXEC.
#[derive(Debug, Default)]
pub struct WatchState {
    /// Watched keys.
    pub keys: Vec<WatchedKey>,
}

/// Node-wide connection and command counters (INFO clients/stats).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections currently open.
    pub connected_clients: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
    /// Connections refused because of `max_clients`.
    pub rejected_connections: AtomicU64,
    /// Commands processed since start.
    pub total_commands: AtomicU64,
    /// Clients waiting in a blocking command (INFO blocked_clients).
    pub blocked_clients: AtomicU64,
    /// Their ids (CLIENT LIST flag `b`).
    pub blocked_ids: Mutex<std::collections::HashSet<u64>>,
    /// Per-command counters (INFO commandstats), by full command name.
    pub commands: std::sync::Mutex<std::collections::BTreeMap<&'static str, CommandCounters>>,
    /// Error replies by error code (INFO errorstats).
    pub errors: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Every error reply, whatever its code (INFO total_error_replies;
    /// errorstats stops adding codes at 128, this does not).
    pub total_error_replies: AtomicU64,
    /// Socket traffic of all connections.
    pub io: Arc<crate::connection::IoCounters>,
    /// Recent samples of the counters, for INFO's instantaneous rates.
    pub samples: Mutex<std::collections::VecDeque<RateSample>>,
}

/// Aborts a background task when the owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The counters at one moment (see [`ServerStats::sample`]).
#[derive(Clone, Copy, Debug)]
pub struct RateSample {
    at: Instant,
    commands: u64,
    input: u64,
    output: u64,
}

/// Samples kept: rates average over the last 1.6 s, as Redis's 16
/// samples taken every 100 ms do.
const RATE_SAMPLES: usize = 16;

/// How often [`ServerStats::sample`] should run.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

impl ServerStats {
    /// Records the counters now (call every [`SAMPLE_INTERVAL`]).
    pub fn sample(&self) {
        let s = RateSample {
            at: Instant::now(),
            commands: self.total_commands.load(Ordering::Relaxed),
            input: self.io.net_input_bytes.load(Ordering::Relaxed),
            output: self.io.net_output_bytes.load(Ordering::Relaxed),
        };
        if let Ok(mut q) = self.samples.lock() {
            q.push_back(s);
            while q.len() > RATE_SAMPLES {
                q.pop_front();
            }
        }
    }

    /// Commands per second, input and output KiB per second over the
    /// sampled window (zeros before two samples exist).
    pub fn rates(&self) -> (u64, f64, f64) {
        let Ok(q) = self.samples.lock() else {
            return (0, 0.0, 0.0);
        };
        let (Some(first), Some(last)) = (q.front(), q.back()) else {
            return (0, 0.0, 0.0);
        };
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if secs <= 0.0 {
            return (0, 0.0, 0.0);
        }
        let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        (
            per_sec(first.commands, last.commands).round() as u64,
            per_sec(first.input, last.input) / 1024.0,
            per_sec(first.output, last.output) / 1024.0,
        )
    }
}

/// One command's counters (INFO commandstats).
#[derive(Clone, Copy, Debug, Default)]
pub struct CommandCounters {
    /// Times it ran.
    pub calls: u64,
    /// Microseconds spent running it.
    pub usec: u64,
    /// Times it was refused before running (arity, auth, MULTI rules...).
    pub rejected_calls: u64,
    /// Times it ran and answered an error.
    pub failed_calls: u64,
}

impl ServerStats {
    fn count_command(&self, name: &'static str, f: impl FnOnce(&mut CommandCounters)) {
        if let Ok(mut m) = self.commands.lock() {
            f(m.entry(name).or_default());
        }
    }

    fn count_error(&self, reply: &Frame) {
        if let Frame::Error(text) = reply {
            self.total_error_replies.fetch_add(1, Ordering::Relaxed);
            let code = text
                .split(|&c| c == b' ')
                .next()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default();
            if let Ok(mut m) = self.errors.lock() {
                // Bounded: error codes are a small fixed vocabulary, but
                // never let a stream of odd codes grow the map forever.
                if m.len() < 128 || m.contains_key(&code) {
                    *m.entry(code).or_default() += 1;
                }
            }
        }
    }
}

/// Pub/sub bookkeeping; maintained by the handler's SUBSCRIBE family.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// SUBSCRIBE channels.
    pub channels: BTreeSet<Bytes>,
    /// PSUBSCRIBE patterns.
    pub patterns: BTreeSet<Bytes>,
    /// SSUBSCRIBE shard channels.
    pub shard_channels: BTreeSet<Bytes>,
}

impl Subscriptions {
    /// Total subscription count.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }
}

/// Per-connection state, shared between the server and the handler.
#[derive(Debug)]
pub struct ClientState {
    /// Unique, increasing client id (CLIENT ID).
    pub id: u64,
    /// CLIENT SETNAME / HELLO SETNAME name.
    pub name: Option<Bytes>,
    /// Negotiated protocol; replies are encoded with it.
    pub protocol: Protocol,
    /// True once AUTH/HELLO AUTH succeeded (or when no password is set).
    pub authenticated: bool,
    /// Selected database (SELECT, 0..16).
    pub db: u32,
    /// Peer address, if known.
    pub peer_addr: Option<SocketAddr>,
    /// Local address, if known.
    pub local_addr: Option<SocketAddr>,
    /// `Some` between MULTI and EXEC/DISCARD.
    pub multi: Option<MultiState>,
    /// WATCH state (placeholder for the data plane).
    pub watch: WatchState,
    /// Pub/sub state (placeholder for the data plane).
    pub subscriptions: Subscriptions,
    /// Close the connection once the current reply is written (QUIT).
    pub close_after_reply: bool,
    /// CLIENT REPLY mode.
    pub reply_mode: ReplyMode,
    /// Connection time.
    pub created: Instant,
    /// Last command time.
    pub last_interaction: Instant,
    /// Full name of the last command run.
    pub last_command: &'static str,
    /// Set when a command that writes runs; the connection loop clears it
    /// before each round of commands (see `connection_loop`).
    pub ran_write: bool,
    /// Out-of-band messages for this client (pub/sub): the connection
    /// writes whatever arrives here between commands.
    pub push: Option<tokio::sync::mpsc::Sender<Frame>>,
    /// Replies the handler produced before its returned one (a SUBSCRIBE
    /// of n channels answers n times); written first, in order.
    pub extra_replies: Vec<Frame>,
    /// Turns true when the peer closes the connection while a blocking
    /// command waits (the server watches the socket only then); the
    /// handler stops waiting on it.
    pub hangup: Arc<watch::Sender<bool>>,
}

impl ClientState {
    /// A fresh client.
    pub fn new(id: u64, authenticated: bool) -> Self {
        let now = Instant::now();
        ClientState {
            id,
            name: None,
            protocol: Protocol::Resp2,
            authenticated,
            db: 0,
            peer_addr: None,
            local_addr: None,
            multi: None,
            watch: WatchState::default(),
            subscriptions: Subscriptions::default(),
            close_after_reply: false,
            reply_mode: ReplyMode::On,
            created: now,
            last_interaction: now,
            last_command: "NULL",
            ran_write: false,
            push: None,
            extra_replies: Vec::new(),
            hangup: Arc::new(watch::channel(false).0),
        }
    }

    /// True while in MULTI.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Takes the queued transaction (for the handler's EXEC).
    pub fn take_multi(&mut self) -> Option<MultiState> {
        self.multi.take()
    }
}

/// CLIENT REPLY ON|OFF|SKIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Every reply is sent.
    On,
    /// No reply is sent (RESP3 push messages still are).
    Off,
    /// The reply of the command after CLIENT REPLY SKIP is not sent.
    SkipNext,
    /// Not sending the current command's reply, then back to `On`.
    Skip,
}

/// The data plane. Receives every command the server does not answer
/// itself, already resolved and arity-checked, with authentication done.
///
/// `EXEC` arrives with the queued commands in `client.multi` (take them
/// with [`ClientState::take_multi`]; an aborted transaction never reaches
/// the handler). WATCH/UNWATCH, SUBSCRIBE & co. are the handler's; it
/// keeps `client.watch` / `client.subscriptions` current.
#[async_trait]
pub trait CommandHandler: Send + Sync + 'static {
    /// Runs one command and returns its reply.
    /// `cmd.spec()` holds the resolved command-table entry.
    async fn handle(&self, client: &mut ClientState, cmd: Command) -> Reply;

    /// Whether `spec`'s command may be run by [`Self::handle_pipeline`]
    /// together with its pipelined neighbours.
    fn pipelinable(&self, _spec: &CommandSpec) -> bool {
        false
    }

    /// Runs consecutive pipelined commands (all [`Self::pipelinable`],
    /// resolved and checked) and returns their replies in order. The
    /// default runs them one by one.
    async fn handle_pipeline(&self, client: &mut ClientState, cmds: Vec<Command>) -> Vec<Reply> {
        let mut out = Vec::with_capacity(cmds.len());
        for c in cmds {
            out.push(self.handle(client, c).await);
        }
        out
    }

    /// Called on RESET (after the server cleared its own state), so the
    /// handler can drop watches and subscriptions.
    async fn on_reset(&self, _client: &mut ClientState) {}

    /// Called once when the connection ends.
    async fn on_disconnect(&self, _client: &mut ClientState) {}
}

/// What CLIENT LIST shows about each connection.
#[derive(Clone, Debug)]
struct ClientMeta {
    addr: Option<SocketAddr>,
    laddr: Option<SocketAddr>,
    name: Option<Bytes>,
    db: u32,
    created: Instant,
    last_interaction: Instant,
    last_command: &'static str,
    resp: i64,
    multi: i64,
    sub: usize,
    psub: usize,
    ssub: usize,
    qbuf: usize,
    omem: usize,
}

/// Registry of live connections, for CLIENT LIST.
#[derive(Debug, Default)]
struct ClientRegistry {
    clients: Mutex<HashMap<u64, ClientMeta>>,
}

impl ClientRegistry {
    fn update(&self, c: &ClientState, qbuf: usize, omem: usize) {
        let meta = ClientMeta {
            addr: c.peer_addr,
            laddr: c.local_addr,
            name: c.name.clone(),
            db: c.db,
            created: c.created,
            last_interaction: c.last_interaction,
            last_command: c.last_command,
            resp: c.protocol.version(),
            multi: c
                .multi
                .as_ref()
                .map(|m| i64::try_from(m.queue.len()).unwrap_or(i64::MAX))
                .unwrap_or(-1),
            sub: c.subscriptions.channels.len(),
            psub: c.subscriptions.patterns.len(),
            ssub: c.subscriptions.shard_channels.len(),
            qbuf,
            omem,
        };
        if let Ok(mut map) = self.clients.lock() {
            map.insert(c.id, meta);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut map) = self.clients.lock() {
            map.remove(&id);
        }
    }

    fn snapshot(&self) -> Vec<(u64, ClientMeta)> {
        let mut v: Vec<(u64, ClientMeta)> = match self.clients.lock() {
            Ok(map) => map.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

fn fmt_addr(a: Option<SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// One CLIENT LIST line, with Redis 7.0's fields (those we do not track are
/// reported as Redis reports an idle normal client).
fn client_line(id: u64, m: &ClientMeta, blocked: bool) -> String {
    let now = Instant::now();
    let flags = if blocked {
        "b"
    } else if m.multi >= 0 {
        "x"
    } else if m.sub + m.psub + m.ssub > 0 {
        "P"
    } else {
        "N"
    };
    format!(
        "id={id} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={}\n",
        fmt_addr(m.addr),
        fmt_addr(m.laddr),
        m.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
        now.duration_since(m.created).as_secs(),
        now.duration_since(m.last_interaction).as_secs(),
        m.db,
        m.sub,
        m.psub,
        m.ssub,
        m.multi,
        m.qbuf,
        m.omem,
        m.last_command,
        m.resp,
    )
}

/// Redis replies with a verbatim string in RESP3 and a bulk string in
/// RESP2 for CLIENT LIST/INFO; `Frame::Verbatim` does exactly that.
fn verbatim_txt(s: String) -> Frame {
    Frame::Verbatim {
        format: *b"txt",
        data: Bytes::from(s),
    }
}

/// The server.
pub struct Server {
    config: Arc<ServerConfig>,
    handler: Arc<dyn CommandHandler>,
    registry: Arc<ClientRegistry>,
    next_id: Arc<AtomicU64>,
    stats: Arc<ServerStats>,
}

impl Clone for Server {
    fn clone(&self) -> Self {
        Server {
            config: Arc::clone(&self.config),
            handler: Arc::clone(&self.handler),
            registry: Arc::clone(&self.registry),
            next_id: Arc::clone(&self.next_id),
            stats: Arc::clone(&self.stats),
        }
    }
}

/// Flush mid-batch once this much output is queued, so a long pipeline of
/// large replies is streamed rather than accumulated.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Most pipelined commands run together as one transaction.
const MAX_PIPELINE_RUN: usize = 64;

/// Pub/sub messages queued per client before new ones are dropped.
const PUSH_QUEUE: usize = 4096;

/// Upper bound on accept backoff.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

impl Server {
    /// A server handing data commands to `handler`.
    pub fn new(config: ServerConfig, handler: Arc<dyn CommandHandler>) -> Self {
        Server::with_stats(config, handler, Arc::new(ServerStats::default()))
    }

    /// A server that counts connections and commands into `stats` (shared
    /// with the handler, which reports them in INFO).
    pub fn with_stats(
        config: ServerConfig,
        handler: Arc<dyn CommandHandler>,
        stats: Arc<ServerStats>,
    ) -> Self {
        Server {
            config: Arc::new(config),
            handler,
            registry: Arc::new(ClientRegistry::default()),
            next_id: Arc::new(AtomicU64::new(1)),
            stats,
        }
    }

    /// The connection and command counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Accepts connections until `shutdown` becomes true (or its sender is
    /// dropped), then stops accepting, lets connections finish the batch in
    /// progress, and waits up to `shutdown_grace` for them before aborting
    /// the rest.
    pub async fn serve(
        &self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let permits = Arc::new(Semaphore::new(self.config.max_clients));
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(1);
        info!(addr = ?listener.local_addr().ok(), "redis listener started");
        let sampler = {
            let stats = Arc::clone(&self.stats);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    stats.sample();
                }
            })
        };
        let _stop_sampler = AbortOnDrop(sampler);
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Reap finished connection tasks so the set stays small.
            while tasks.try_join_next().is_some() {}
            let accepted = tokio::select! {
                res = listener.accept() => res,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
            };
            let (stream, peer) = match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(1);
                    pair
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                // Like Redis: tell the client why, then close.
                self.stats
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                tasks.spawn(reject_max_clients(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let shutdown = shutdown.clone();
            // Ids follow accept order (connection tasks may start in any
            // order); blocked clients that tie are served by it.
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let local = stream.local_addr().ok();
                server
                    .serve_stream_as(id, stream, Some(peer), local, shutdown)
                    .await;
                drop(permit);
            });
        }
        info!(open = tasks.len(), "redis listener stopping");
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    warn!(remaining = tasks.len(), "shutdown grace expired; aborting connections");
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        Ok(())
    }

    /// Serves one connection over any stream until the client leaves, a
    /// limit or protocol error closes it, or shutdown is signalled.
    pub async fn serve_stream<S>(
        &self,
        stream: S,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.serve_stream_as(id, stream, peer, local, shutdown)
            .await
    }

    async fn serve_stream_as<S>(
        &self,
        id: u64,
        stream: S,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        self.stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        let mut client = ClientState::new(id, self.config.password.is_none());
        client.peer_addr = peer;
        client.local_addr = local;
        // Bounded: a subscriber that does not read loses messages rather
        // than growing our memory.
        let (push_tx, mut push_rx) = tokio::sync::mpsc::channel(PUSH_QUEUE);
        client.push = Some(push_tx);
        let mut conn = Connection::new(
            stream,
            self.config.limits.clone(),
            self.config.write_timeout,
        );
        conn.set_auth_required(!client.authenticated);
        conn.count_into(Arc::clone(&self.stats.io));
        self.registry.update(&client, 0, 0);
        debug!(id, ?peer, "client connected");
        let result = self
            .connection_loop(&mut conn, &mut client, &mut shutdown, &mut push_rx)
            .await;
        match &result {
            Ok(()) => {}
            Err(ConnError::Protocol(e)) => {
                // Reply with the protocol error, then close (Redis's
                // CLIENT_CLOSE_AFTER_REPLY).
                debug!(id, error = %e, "protocol error");
                if conn.queue_reply(&e.to_frame()).is_ok() {
                    let _ = conn.flush().await;
                }
            }
            Err(e) => debug!(id, error = %e, "closing client"),
        }
        let _ = conn.shutdown().await;
        self.handler.on_disconnect(&mut client).await;
        self.registry.remove(id);
        self.stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
        debug!(id, "client disconnected");
    }

    async fn connection_loop<S>(
        &self,
        conn: &mut Connection<S>,
        client: &mut ClientState,
        shutdown: &mut watch::Receiver<bool>,
        push_rx: &mut tokio::sync::mpsc::Receiver<Frame>,
    ) -> Result<(), ConnError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let idle = async {
                match self.config.idle_timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let first = tokio::select! {
                cmd = conn.read_command() => cmd,
                pushed = push_rx.recv() => {
                    if let Some(msg) = pushed {
                        conn.queue_reply(&msg)?;
                        while let Ok(more) = push_rx.try_recv() {
                            conn.queue_reply(&more)?;
                        }
                        conn.flush().await?;
                    }
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
                _ = idle, if client.subscriptions.count() == 0 => return Ok(()),
            };
            let Some(mut cmd) = first? else {
                return Ok(());
            };
            client.ran_write = false;
            // Run this command and every other one already buffered, then
            // flush once: pipelined clients get one write per batch.
            // Consecutive data commands of a pipeline run together (one
            // transaction, see `CommandHandler::handle_pipeline`).
            loop {
                // A command that cannot join a run goes the ordinary way.
                let (single, mut run) = match self.pipelinable(client, cmd) {
                    Err(c) => (Some(c), Vec::new()),
                    Ok(c) => (None, vec![c]),
                };
                let mut next_cmd = None;
                let mut pending_err = None;
                if single.is_none() {
                    while run.len() < MAX_PIPELINE_RUN {
                        match conn.try_next_command() {
                            Ok(Some(next)) => match self.pipelinable(client, next) {
                                Ok(c) => run.push(c),
                                Err(c) => {
                                    next_cmd = Some(c);
                                    break;
                                }
                            },
                            Ok(None) => break,
                            Err(e) => {
                                pending_err = Some(e);
                                break;
                            }
                        }
                    }
                }
                if run.len() > 1 {
                    for frame in self.execute_pipeline(client, run).await {
                        conn.queue_reply(&frame)?;
                    }
                    if let Some(e) = pending_err {
                        conn.flush().await?;
                        return Err(e);
                    }
                    if conn.pending_output() > FLUSH_THRESHOLD {
                        conn.flush().await?;
                    }
                    match next_cmd {
                        Some(n) => {
                            cmd = n;
                            continue;
                        }
                        None => match conn.try_next_command() {
                            Ok(Some(n)) => {
                                cmd = n;
                                continue;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                conn.flush().await?;
                                return Err(e);
                            }
                        },
                    }
                }
                // Zero or one command: the ordinary path.
                let Some(one) = single.or_else(|| run.pop()) else {
                    break;
                };
                cmd = one;
                let later = next_cmd.take();
                if client.reply_mode == ReplyMode::SkipNext {
                    client.reply_mode = ReplyMode::Skip;
                }
                let reply = self.execute(conn, client, cmd).await;
                let silent = match client.reply_mode {
                    ReplyMode::On => false,
                    ReplyMode::Off | ReplyMode::SkipNext => true,
                    ReplyMode::Skip => {
                        client.reply_mode = ReplyMode::On;
                        true
                    }
                };
                for extra in std::mem::take(&mut client.extra_replies) {
                    if !silent || matches!(extra, Frame::Push(_)) {
                        conn.queue_reply(&extra)?;
                    }
                }
                if !silent || matches!(reply, Frame::Push(_)) {
                    conn.queue_reply(&reply)?;
                }
                if client.close_after_reply {
                    conn.flush().await?;
                    return Ok(());
                }
                if conn.pending_output() > FLUSH_THRESHOLD {
                    conn.flush().await?;
                }
                if let Some(e) = pending_err {
                    conn.flush().await?;
                    return Err(e);
                }
                if let Some(n) = later {
                    cmd = n;
                    continue;
                }
                match conn.try_next_command() {
                    Ok(Some(next)) => cmd = next,
                    Ok(None) => break,
                    Err(e) => {
                        // Replies to the commands before the bad one go out
                        // first, in order.
                        conn.flush().await?;
                        return Err(e);
                    }
                }
            }
            self.registry
                .update(client, conn.query_buffer_len(), conn.pending_output());
            if !client.ran_write {
                // Replies to reads are ready at once, one connection at a
                // time. Letting every other ready connection run its
                // command first sends the replies back to back, so the
                // clients' processes are mostly awake when they arrive
                // instead of being woken once per reply; waking a sleeping
                // CPU is the dearest part of a loopback send on a VM
                // (BENCHMARKS.md, 2026-12-07 23:15). Writes skip this:
                // their replies already leave together when their batch
                // commits, and the extra turn only cost them.
                tokio::task::yield_now().await;
            }
            conn.flush().await?;
        }
    }

    /// `Ok` when `cmd` can join a pipelined run: a resolved data command
    /// of an authenticated client in plain mode (not in MULTI, not
    /// subscribed, replies on) that the handler accepts. It comes back
    /// with its command-table entry attached, so the run does not resolve
    /// it again; any other command comes back unchanged as `Err`.
    fn pipelinable(&self, client: &ClientState, cmd: Command) -> Result<Command, Command> {
        let plain = client.authenticated
            && !client.in_multi()
            && client.subscriptions.count() == 0
            && client.reply_mode == ReplyMode::On;
        if !plain {
            return Err(cmd);
        }
        match command_table::resolve(cmd.argv()) {
            Ok(spec) if self.handler.pipelinable(spec) => Ok(cmd.with_spec(spec)),
            _ => Err(cmd),
        }
    }

    /// Runs a pipelined run of commands (see [`Self::pipelinable`]).
    async fn execute_pipeline(&self, client: &mut ClientState, run: Vec<Command>) -> Vec<Frame> {
        let started = Instant::now();
        let n = run.len() as u64;
        let mut cmds = Vec::with_capacity(run.len());
        let mut names = Vec::with_capacity(run.len());
        for c in run {
            // `pipelinable` attached the entry.
            if let Some(spec) = c.spec() {
                names.push(spec.name);
                client.ran_write |= spec.flags.contains(CmdFlags::WRITE);
                cmds.push(c);
            }
        }
        client.last_interaction = Instant::now();
        if let Some(last) = names.last() {
            client.last_command = last;
        }
        self.stats.total_commands.fetch_add(n, Ordering::Relaxed);
        let replies = self.handler.handle_pipeline(client, cmds).await;
        let usec = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX) / n.max(1);
        for (name, reply) in names.iter().zip(&replies) {
            self.stats.count_error(reply);
            let failed = matches!(reply, Frame::Error(_));
            self.stats.count_command(name, |c| {
                c.calls += 1;
                c.usec = c.usec.saturating_add(usec);
                c.failed_calls += u64::from(failed);
            });
        }
        replies
    }

    /// Dispatches one command: checks, built-ins, MULTI queueing, handler.
    async fn execute<S>(
        &self,
        conn: &mut Connection<S>,
        client: &mut ClientState,
        cmd: Command,
    ) -> Frame
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        client.last_interaction = Instant::now();
        self.stats.total_commands.fetch_add(1, Ordering::Relaxed);
        let spec = match command_table::resolve(cmd.argv()) {
            Ok(spec) => spec,
            Err(e) => {
                let reply = self.reject(client, e.to_frame());
                self.stats.count_error(&reply);
                return reply;
            }
        };
        client.last_command = spec.name;
        client.ran_write |= spec.flags.contains(CmdFlags::WRITE);
        let cmd = cmd.with_spec(spec);
        let started = Instant::now();
        let (reply, ran) = self.execute_resolved(conn, client, cmd, spec).await;
        self.stats.count_error(&reply);
        let name = spec.name;
        let usec = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let failed = matches!(reply, Frame::Error(_));
        self.stats.count_command(name, |c| {
            if ran {
                c.calls += 1;
                c.usec = c.usec.saturating_add(usec);
                c.failed_calls += u64::from(failed);
            } else {
                c.rejected_calls += 1;
            }
        });
        reply
    }

    /// [`Self::execute`] once the command is resolved; also says whether
    /// the command ran (false: refused before running).
    async fn execute_resolved<S>(
        &self,
        conn: &mut Connection<S>,
        client: &mut ClientState,
        cmd: Command,
        spec: &'static CommandSpec,
    ) -> (Frame, bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if !client.authenticated && !spec.has(CmdFlags::NO_AUTH) {
            return (
                self.reject(client, Frame::error("-NOAUTH Authentication required.")),
                false,
            );
        }
        // RESP2 clients in subscribed state may only run the pub/sub
        // commands (RESP3 has push messages and no such restriction).
        if client.protocol == Protocol::Resp2
            && client.subscriptions.count() > 0
            && !allowed_in_subscribed_context(spec)
        {
            return (
                self.reject(
                    client,
                    Frame::error(format!(
                        "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                        spec.name
                    )),
                ),
                false,
            );
        }
        if client.in_multi() && spec.has(CmdFlags::NO_MULTI) {
            return (
                self.reject(
                    client,
                    Frame::error("Command not allowed inside a transaction"),
                ),
                false,
            );
        }
        let base = spec.name.split('|').next().unwrap_or(spec.name);
        if let Some(multi) = client.multi.as_mut() {
            if !matches!(
                base,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            ) {
                // Bound what a transaction may hold in memory (Redis has no
                // such limit; the error text is ours).
                let size: usize = cmd.argv().iter().map(|a| a.len() + 16).sum();
                let total = multi.queued_bytes.saturating_add(size);
                if total > self.config.max_multi_bytes {
                    multi.aborted = true;
                    return (Frame::error("transaction too large"), false);
                }
                multi.queued_bytes = total;
                multi.queue.push(cmd);
                return (Frame::simple("QUEUED"), true);
            }
        }
        let reply = match base {
            "ping" => Some(self.ping(client, &cmd)),
            "echo" => Some(Frame::Bulk(cmd.argv()[1].clone())),
            "quit" => {
                client.close_after_reply = true;
                Some(Frame::ok())
            }
            "select" => Some(select(client, &cmd)),
            "auth" => Some(self.auth(client, &cmd)),
            "hello" => Some(self.hello(client, &cmd)),
            "reset" => {
                self.reset(client).await;
                Some(Frame::simple("RESET"))
            }
            "client" => self.client_command(client, spec, &cmd),
            "command" => Some(command_command(spec, &cmd)),
            "help" => Some(command_table::container_help(cmd.argv())),
            "time" => Some(time_reply()),
            "multi" => Some(if client.in_multi() {
                Frame::error("MULTI calls can not be nested")
            } else {
                client.multi = Some(MultiState::default());
                Frame::ok()
            }),
            "discard" => Some(match client.multi.take() {
                None => Frame::error("DISCARD without MULTI"),
                Some(_) => {
                    // DISCARD also unwatches; the handler drops its
                    // watch bookkeeping on the same flag.
                    client.watch = WatchState::default();
                    Frame::ok()
                }
            }),
            "exec" => match &client.multi {
                None => Some(Frame::error("EXEC without MULTI")),
                Some(m) if m.aborted => {
                    client.multi = None;
                    client.watch = WatchState::default();
                    Some(Frame::error(
                        "-EXECABORT Transaction discarded because of previous errors.",
                    ))
                }
                Some(_) => None,
            },
            "watch" if client.in_multi() => Some(Frame::error("WATCH inside MULTI is not allowed")),
            _ => None,
        };
        let reply = match reply {
            Some(r) => r,
            None if spec.has(CmdFlags::BLOCKING) => {
                // A blocking command may wait indefinitely: watch the
                // socket meanwhile so a client that hangs up stops waiting
                // (input that arrives is kept for after the reply).
                let hangup = Arc::clone(&client.hangup);
                let run = self.handler.handle(client, cmd);
                tokio::pin!(run);
                let mut watching = true;
                loop {
                    tokio::select! {
                        r = &mut run => break r,
                        () = conn.wait_closed(), if watching => {
                            watching = false;
                            hangup.send_replace(true);
                        }
                    }
                }
            }
            None => {
                let r = self.handler.handle(client, cmd).await;
                if base == "exec" {
                    // EXEC always ends the transaction and unwatches,
                    // whatever the handler did with the queue.
                    client.multi = None;
                    client.watch = WatchState::default();
                }
                r
            }
        };
        // HELLO and RESET may have changed these.
        conn.set_protocol(client.protocol);
        conn.set_auth_required(!client.authenticated);
        (reply, true)
    }

    /// A command rejected before execution: inside MULTI this also dooms
    /// the transaction (Redis's `flagTransaction`).
    fn reject(&self, client: &mut ClientState, err: Frame) -> Frame {
        if let Some(m) = client.multi.as_mut() {
            m.aborted = true;
        }
        err
    }

    fn ping(&self, client: &ClientState, cmd: &Command) -> Frame {
        if cmd.argc() > 2 {
            return Frame::error("wrong number of arguments for 'ping' command");
        }
        let msg = cmd.argv().get(1).cloned();
        if client.protocol == Protocol::Resp2 && client.subscriptions.count() > 0 {
            return Frame::Array(vec![
                Frame::from("pong"),
                Frame::Bulk(msg.unwrap_or_default()),
            ]);
        }
        match msg {
            Some(m) => Frame::Bulk(m),
            None => Frame::simple("PONG"),
        }
    }

    /// Checks a username/password pair for the default user
    /// (`requirepass` semantics: only `default` exists; with no password
    /// set, any password authenticates it).
    fn check_credentials(&self, user: &[u8], pass: &[u8]) -> bool {
        if user != b"default" {
            return false;
        }
        match &self.config.password {
            None => true,
            Some(expected) => constant_time_eq(expected, pass),
        }
    }

    fn auth(&self, client: &mut ClientState, cmd: &Command) -> Frame {
        let argv = cmd.argv();
        let (user, pass): (&[u8], &[u8]) = match argv.len() {
            2 => {
                if self.config.password.is_none() {
                    return Frame::error(
                        "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                    );
                }
                (b"default", &argv[1])
            }
            3 => (&argv[1], &argv[2]),
            _ => return Frame::error("syntax error"),
        };
        if self.check_credentials(user, pass) {
            client.authenticated = true;
            Frame::ok()
        } else {
            Frame::error("-WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    fn hello(&self, client: &mut ClientState, cmd: &Command) -> Frame {
        let argv = cmd.argv();
        let mut ver = None;
        let mut j = 1;
        if argv.len() >= 2 {
            match parse_i64_strict(&argv[1]) {
                None => return Frame::error("Protocol version is not an integer or out of range"),
                Some(v) if !(2..=3).contains(&v) => {
                    return Frame::error("-NOPROTO unsupported protocol version")
                }
                Some(v) => ver = Some(v),
            }
            j = 2;
        }
        while j < argv.len() {
            let more = argv.len() - 1 - j;
            let opt = &argv[j];
            if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                if !self.check_credentials(&argv[j + 1], &argv[j + 2]) {
                    return Frame::error(
                        "-WRONGPASS invalid username-password pair or user is disabled.",
                    );
                }
                client.authenticated = true;
                j += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                if let Err(e) = set_name(client, &argv[j + 1]) {
                    return e;
                }
                j += 2;
            } else {
                return Frame::Error(Bytes::from(
                    [
                        &b"ERR Syntax error in HELLO option '"[..],
                        truncate_c(opt),
                        b"'",
                    ]
                    .concat(),
                ));
            }
        }
        if !client.authenticated {
            return Frame::error(
                "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(v) = ver {
            client.protocol = if v == 3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
        }
        Frame::Map(vec![
            (Frame::from("server"), Frame::from("redis")),
            (
                Frame::from("version"),
                Frame::bulk(self.config.version.as_bytes()),
            ),
            (
                Frame::from("proto"),
                Frame::Integer(client.protocol.version()),
            ),
            (
                Frame::from("id"),
                Frame::Integer(i64::try_from(client.id).unwrap_or(i64::MAX)),
            ),
            (Frame::from("mode"), Frame::from("standalone")),
            (Frame::from("role"), Frame::from("master")),
            (Frame::from("modules"), Frame::Array(Vec::new())),
        ])
    }

    /// RESET: back to a fresh connection's state (`clearClientConnectionState`).
    async fn reset(&self, client: &mut ClientState) {
        client.multi = None;
        client.watch = WatchState::default();
        client.protocol = Protocol::Resp2;
        client.name = None;
        client.db = 0;
        client.reply_mode = ReplyMode::On;
        client.authenticated = self.config.password.is_none();
        self.handler.on_reset(client).await;
        // The handler unsubscribes; make sure nothing is left behind.
        client.subscriptions = Subscriptions::default();
    }

    fn client_command(
        &self,
        client: &mut ClientState,
        spec: &CommandSpec,
        cmd: &Command,
    ) -> Option<Frame> {
        let argv = cmd.argv();
        Some(match spec.name {
            "client|id" => Frame::Integer(i64::try_from(client.id).unwrap_or(i64::MAX)),
            "client|getname" => client.name.clone().map(Frame::Bulk).unwrap_or(Frame::Null),
            "client|setname" => match set_name(client, &argv[2]) {
                Ok(()) => Frame::ok(),
                Err(e) => e,
            },
            "client|info" => {
                self.registry.update(client, 0, 0);
                let line = self
                    .registry
                    .snapshot()
                    .into_iter()
                    .find(|(id, _)| *id == client.id)
                    .map(|(id, m)| client_line(id, &m, false))
                    .unwrap_or_default();
                verbatim_txt(line)
            }
            "client|reply" => {
                let mode = argv[2].to_ascii_lowercase();
                match mode.as_slice() {
                    b"on" => {
                        client.reply_mode = ReplyMode::On;
                        Frame::ok()
                    }
                    b"off" => {
                        client.reply_mode = ReplyMode::Off;
                        Frame::ok()
                    }
                    b"skip" => {
                        if client.reply_mode != ReplyMode::Off {
                            client.reply_mode = ReplyMode::SkipNext;
                        }
                        Frame::ok()
                    }
                    _ => Frame::error("syntax error"),
                }
            }
            "client|list" => {
                self.registry.update(client, 0, 0);
                match parse_client_list_filter(&argv[2..]) {
                    Err(e) => e,
                    Ok(filter) => {
                        let mut out = String::new();
                        let blocked = self
                            .stats
                            .blocked_ids
                            .lock()
                            .map(|s| s.clone())
                            .unwrap_or_default();
                        for (id, m) in self.registry.snapshot() {
                            if filter.matches(id, &m) {
                                out.push_str(&client_line(id, &m, blocked.contains(&id)));
                            }
                        }
                        verbatim_txt(out)
                    }
                }
            }
            // Other CLIENT subcommands (none are in the table yet) go to
            // the handler.
            _ => return None,
        })
    }
}

/// C `%s` of user text: stops at NUL.
fn truncate_c(s: &[u8]) -> &[u8] {
    &s[..memchr::memchr(0, s).unwrap_or(s.len())]
}

/// `clientSetNameOrReply`: an empty name clears it; names may only contain
/// printable non-space ASCII.
fn set_name(client: &mut ClientState, name: &Bytes) -> Result<(), Frame> {
    if name.is_empty() {
        client.name = None;
        return Ok(());
    }
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Frame::error(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    client.name = Some(name.clone());
    Ok(())
}

fn select(client: &mut ClientState, cmd: &Command) -> Frame {
    // getIntFromObjectOrReply: string2ll, then the int range check with
    // Redis's (sic) wording; only database 0 exists.
    match parse_i64_strict(&cmd.argv()[1]) {
        None => Frame::error("value is not an integer or out of range"),
        Some(n) if i32::try_from(n).is_err() => Frame::error(format!(
            "value is out of range, value must between {} and {}",
            i32::MIN,
            i32::MAX
        )),
        Some(n) if (0..crate::cmd::keyspace::DATABASES).contains(&n) => {
            client.db = n as u32;
            Frame::ok()
        }
        Some(_) => Frame::error("DB index is out of range"),
    }
}

fn allowed_in_subscribed_context(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...].
struct ClientListFilter {
    kind: Option<Vec<u8>>,
    ids: Option<Vec<u64>>,
}

impl ClientListFilter {
    fn matches(&self, id: u64, m: &ClientMeta) -> bool {
        if let Some(ids) = &self.ids {
            if !ids.contains(&id) {
                return false;
            }
        }
        match self.kind.as_deref() {
            None => true,
            Some(b"normal") => m.sub + m.psub + m.ssub == 0,
            Some(b"pubsub") => m.sub + m.psub + m.ssub > 0,
            Some(_) => false,
        }
    }
}

fn parse_client_list_filter(args: &[Bytes]) -> Result<ClientListFilter, Frame> {
    let mut filter = ClientListFilter {
        kind: None,
        ids: None,
    };
    match args {
        [] => {}
        [t, kind] if t.eq_ignore_ascii_case(b"TYPE") => {
            let k = kind.to_ascii_lowercase();
            let k = if k == b"slave" {
                b"replica".to_vec()
            } else {
                k
            };
            if !matches!(k.as_slice(), b"normal" | b"master" | b"replica" | b"pubsub") {
                return Err(Frame::Error(Bytes::from(
                    [&b"ERR Unknown client type '"[..], truncate_c(kind), b"'"].concat(),
                )));
            }
            filter.kind = Some(k);
        }
        [t, ids @ ..] if t.eq_ignore_ascii_case(b"ID") && !ids.is_empty() => {
            let mut v = Vec::with_capacity(ids.len().min(1024));
            for id in ids {
                // Any integer is accepted; ids that do not exist (zero,
                // negative) simply match nothing, as in Redis.
                match parse_i64_strict(id) {
                    Some(n) => v.push(u64::try_from(n).unwrap_or(0)),
                    None => return Err(Frame::error("Invalid client ID")),
                }
            }
            filter.ids = Some(v);
        }
        _ => return Err(Frame::error("syntax error")),
    }
    Ok(filter)
}

fn command_command(spec: &CommandSpec, cmd: &Command) -> Frame {
    let argv = cmd.argv();
    match spec.name {
        "command" => command_table::command_all_info(),
        "command|count" => command_table::command_count(),
        "command|info" => command_table::command_info(&argv[2..]),
        "command|docs" => command_table::command_docs(&argv[2..]),
        "command|list" => match &argv[2..] {
            [] => command_table::command_list(&ListFilter::All),
            [f, kind, value] if f.eq_ignore_ascii_case(b"FILTERBY") => {
                if kind.eq_ignore_ascii_case(b"MODULE") {
                    command_table::command_list(&ListFilter::Module)
                } else if kind.eq_ignore_ascii_case(b"ACLCAT") {
                    command_table::command_list(&ListFilter::AclCat(value.clone()))
                } else if kind.eq_ignore_ascii_case(b"PATTERN") {
                    command_table::command_list(&ListFilter::Pattern(value.clone()))
                } else {
                    Frame::error("syntax error")
                }
            }
            _ => Frame::error("syntax error"),
        },
        _ => Frame::error("syntax error"),
    }
}

fn time_reply() -> Frame {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Frame::Array(vec![
        Frame::bulk(now.as_secs().to_string()),
        Frame::bulk(now.subsec_micros().to_string()),
    ])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (Redis compares SHA-256 digests); the contents
    // are compared without early exit.
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn reject_max_clients(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(b"-ERR max number of clients reached\r\n"),
    )
    .await;
    let _ = stream.shutdown().await;
}
