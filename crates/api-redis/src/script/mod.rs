//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
//! LOAD/EXISTS/FLUSH/KILL.
//!
//! Design. A script is one command, so it runs inside the transaction of
//! the [`Ctx`] it was invoked in: every `redis.call` dispatches through
//! [`cmd::dispatch`] on that same context, reads see the script's own
//! writes, and everything commits (or conflicts and is re-run from
//! scratch by the handler, which is allowed because the client has seen
//! nothing yet) together. Inside MULTI the script is one more command of
//! the EXEC transaction.
//!
//! mlua's Lua state is synchronous and the context is borrowed, so the Lua
//! VM runs on a blocking thread ([`tokio::task::spawn_blocking`]) with a
//! fresh state per execution ([`engine`]), and the async task that owns
//! the context serves its `redis.call`s: the Lua thread sends the argv
//! over a channel and waits for the reply ([`host`]). Nothing else runs
//! on the context meanwhile, so the script is atomic with respect to its
//! transaction; other clients are not blocked (their transactions are
//! ordered against the script's by conflict detection, as for any
//! command).
//!
//! Limits: run time is bounded by `script-time-limit` (ms, default
//! 5000; Redis has no such limit: its `busy-reply-threshold` only starts
//! BUSY replies to other clients, and here nobody waits on a script), after
//! which the script is aborted from an instruction-count hook that also
//! serves SCRIPT KILL. Memory is
//! bounded by mlua's allocator limit ([`engine::MEMORY_LIMIT`]).
//!
//! The script cache (sha1 -> body) is per node, like Redis Cluster's
//! per-node caches: SCRIPT LOAD on one node does not make EVALSHA work on
//! another, which answers NOSCRIPT, and clients fall back to EVAL (every
//! Redis client library does this).

pub mod engine;
pub mod libs;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use elastickv_kv::KvError;

use crate::cmd;
use crate::command_table::{self, CmdFlags, DispatchError};
use crate::db::{CmdResult, Ctx, ExecError};
use crate::frame::{Frame, Protocol};

/// Most bytes of script bodies one node caches; beyond it the oldest
/// scripts are forgotten (their EVALSHA answers NOSCRIPT and clients
/// resend them with EVAL).
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Largest script body accepted.
pub const MAX_SCRIPT_BYTES: usize = 16 * 1024 * 1024;

/// Most `redis.call`s one script execution may make.
pub const MAX_CALLS: u64 = 10_000_000;

/// How long each side of a `redis.call` spins for the other's next message
/// before it sleeps. A script that calls in a loop sends its next call a
/// few microseconds after an answer; catching it spinning spares both
/// threads a sleep and a cross-CPU wakeup per call (100 000 GETs from one
/// script: BENCHMARKS.md, 2026-12-08 01:00).
pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Flags of one running script (SCRIPT KILL).
#[derive(Debug, Default)]
pub struct RunFlags {
    /// Set by SCRIPT KILL: the script aborts at its next hook check.
    pub killed: AtomicBool,
    /// The script has buffered writes (SCRIPT KILL refuses then, as Redis
    /// does, because it would break the script's atomicity).
    pub wrote: AtomicBool,
}

#[derive(Debug, Default)]
struct Cache {
    bodies: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

/// One FUNCTION library.
#[derive(Debug, Clone)]
struct Library {
    /// The code as given (shebang line included).
    body: Bytes,
    /// Its functions and their `no-writes` flag.
    functions: Vec<(String, bool)>,
}

/// FUNCTION libraries of this node (like the script cache, per node).
#[derive(Debug, Default)]
struct Libraries {
    libs: std::collections::BTreeMap<String, Library>,
    bytes: usize,
}

/// Most bytes of FUNCTION library code one node keeps.
pub const MAX_LIBRARY_BYTES: usize = 64 * 1024 * 1024;

/// Node-wide scripting state (in [`crate::shared::Shared`]).
#[derive(Debug, Default)]
pub struct Scripts {
    cache: Mutex<Cache>,
    libraries: Mutex<Libraries>,
    running: Mutex<HashMap<u64, Arc<RunFlags>>>,
    next_run: AtomicU64,
}

impl Scripts {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, HashMap<u64, Arc<RunFlags>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Caches `body`; returns its sha1 (lowercase hex).
    pub fn load(&self, body: &Bytes) -> String {
        let sha = sha1_hex(body);
        let mut c = self.cache();
        if c.bodies.contains_key(&sha) {
            return sha;
        }
        c.bytes += body.len();
        c.bodies.insert(sha.clone(), body.clone());
        c.order.push_back(sha.clone());
        while c.bytes > MAX_CACHE_BYTES && c.order.len() > 1 {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(b) = c.bodies.remove(&old) {
                c.bytes -= b.len();
            }
        }
        sha
    }

    /// The body cached under `sha` (any case).
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let key = String::from_utf8_lossy(sha).to_ascii_lowercase();
        self.cache().bodies.get(&key).cloned()
    }

    /// How many scripts are cached (INFO number_of_cached_scripts).
    pub fn cached_count(&self) -> usize {
        self.cache().bodies.len()
    }

    /// SCRIPT FLUSH.
    pub fn flush(&self) {
        *self.cache() = Cache::default();
    }

    fn register(&self) -> (u64, Arc<RunFlags>) {
        let id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let flags = Arc::new(RunFlags::default());
        self.running().insert(id, Arc::clone(&flags));
        (id, flags)
    }

    fn unregister(&self, id: u64) {
        self.running().remove(&id);
    }

    /// SCRIPT KILL: kills every running script that has not written.
    pub fn kill(&self) -> Frame {
        let running = self.running();
        if running.is_empty() {
            return Frame::error("-NOTBUSY No scripts in execution right now.");
        }
        let mut killed = 0;
        for f in running.values() {
            if !f.wrote.load(Ordering::Relaxed) {
                f.killed.store(true, Ordering::Relaxed);
                killed += 1;
            }
        }
        if killed == 0 {
            return Frame::error(
                "-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        Frame::ok()
    }
}

/// Unregisters a running script however its execution ends (including
/// the future being dropped when the client goes away).
struct RunGuard<'a> {
    scripts: &'a Scripts,
    id: u64,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.scripts.unregister(self.id);
    }
}

/// sha1 of `body` as 40 lowercase hex digits.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// Script flags (from the shebang, or implied by EVAL_RO).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// `no-writes` (or EVAL_RO): write commands are refused.
    pub no_writes: bool,
}

/// Parses a `#!lua flags=a,b` first line. Returns the flags and the body
/// to compile (the shebang line blanked so line numbers stay right).
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, Vec<u8>), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), body.to_vec()));
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..end]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    if parts.next() != Some("lua") {
        return Err("Unexpected engine in script shebang".into());
    }
    let mut flags = ScriptFlags::default();
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => {
                    return Err(format!("Unexpected flag in script shebang: {other}"));
                }
            }
        }
    }
    Ok((flags, body[end..].to_vec()))
}

/// A message from the Lua thread to the task owning the context.
pub enum ToHost {
    /// `redis.call`/`redis.pcall` of argv with the script's RESP version.
    Call {
        /// The command and its arguments.
        argv: Vec<Bytes>,
        /// The protocol the reply is built in (`redis.setresp`).
        proto: Protocol,
    },
    /// The script finished with this reply.
    Done(Frame),
}

/// The host's answer to a call.
pub enum FromHost {
    /// The command's reply (an error reply for a command error).
    Reply(Frame),
    /// The transaction failed underneath: the script must stop.
    Abort(String),
}

/// Everything the Lua thread needs to run one script.
pub struct Job {
    /// The body as compiled (shebang blanked).
    pub code: Vec<u8>,
    /// sha1 of the original body (names the script in errors).
    pub sha: String,
    /// KEYS.
    pub keys: Vec<Bytes>,
    /// ARGV.
    pub args: Vec<Bytes>,
    /// Abort after this long.
    pub time_limit: std::time::Duration,
    /// SCRIPT KILL flag.
    pub flags: Arc<RunFlags>,
    /// FCALL: `code` is a FUNCTION library and this function of it runs.
    pub function: Option<String>,
}

/// EVAL / EVALSHA / EVAL_RO / EVALSHA_RO (`name` is the command name).
pub async fn eval(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    let by_sha = name.starts_with("evalsha");
    let read_only = name.ends_with("_ro");
    let body = if by_sha {
        match cx.shared.scripts.get(&argv[1]) {
            Some(b) => b,
            None => {
                return Err(ExecError::coded(
                    "NOSCRIPT No matching script. Please use EVAL.",
                ))
            }
        }
    } else {
        argv[1].clone()
    };
    let numkeys = parse_numkeys(&argv[2], argv.len() - 3)?;
    if body.len() > MAX_SCRIPT_BYTES {
        return Err(ExecError::err(format!(
            "script is larger than the maximum of {MAX_SCRIPT_BYTES} bytes"
        )));
    }
    let (mut flags, code) = parse_shebang(&body).map_err(ExecError::err)?;
    flags.no_writes |= read_only;
    // EVAL caches the body too, as Redis does (EVALSHA works afterwards).
    let sha = if by_sha {
        String::from_utf8_lossy(&argv[1]).to_ascii_lowercase()
    } else {
        cx.shared.scripts.load(&body)
    };
    let keys = argv[3..3 + numkeys].to_vec();
    let args = argv[3 + numkeys..].to_vec();
    run(cx, flags, code, sha, keys, args, None).await
}

fn parse_numkeys(arg: &[u8], available: usize) -> Result<usize, ExecError> {
    let n: i64 = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(ExecError::not_integer)?;
    if n < 0 {
        return Err(ExecError::err("Number of keys can't be negative"));
    }
    if n as u64 > available as u64 {
        return Err(ExecError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// SCRIPT LOAD / EXISTS / FLUSH / KILL.
pub fn script_cmd(cx: &Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    let scripts = &cx.shared.scripts;
    match name {
        "script|load" => {
            if argv[2].len() > MAX_SCRIPT_BYTES {
                return Err(ExecError::err(format!(
                    "script is larger than the maximum of {MAX_SCRIPT_BYTES} bytes"
                )));
            }
            // Redis compiles the script to reject syntax errors.
            let (_, code) = parse_shebang(&argv[2]).map_err(ExecError::err)?;
            engine::check_syntax(&code).map_err(ExecError::coded)?;
            Ok(Frame::bulk(scripts.load(&argv[2])))
        }
        "script|exists" => Ok(Frame::Array(
            argv[2..]
                .iter()
                .map(|sha| Frame::Integer(i64::from(scripts.get(sha).is_some())))
                .collect(),
        )),
        "script|flush" => {
            match argv.get(2).map(|a| a.to_ascii_lowercase()) {
                None => {}
                Some(a) if argv.len() == 3 && (a == b"async" || a == b"sync") => {}
                Some(_) => {
                    return Err(ExecError::err(
                        "SCRIPT FLUSH only support SYNC|ASYNC option",
                    ))
                }
            }
            scripts.flush();
            Ok(Frame::ok())
        }
        "script|kill" => match scripts.kill() {
            f @ Frame::Error(_) => Err(ExecError::Reply(f)),
            f => Ok(f),
        },
        _ => Err(cmd::unsupported(name)),
    }
}

/// The script's run-time limit: `script-time-limit` (ms, ours). Redis's
/// `busy-reply-threshold`/`lua-time-limit` only decides when other
/// clients start getting BUSY, which never happens here (scripts block
/// nobody), so it is accepted and left alone.
fn time_limit(cx: &Ctx<'_>) -> std::time::Duration {
    let ms = cx.shared.config_int("script-time-limit", 5000).max(1);
    std::time::Duration::from_millis(ms as u64)
}

/// Runs a compiled script on a blocking thread, serving its calls on `cx`.
pub async fn run(
    cx: &mut Ctx<'_>,
    flags: ScriptFlags,
    code: Vec<u8>,
    sha: String,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    function: Option<String>,
) -> CmdResult {
    let (run_id, run_flags) = cx.shared.scripts.register();
    let _guard = RunGuard {
        scripts: &cx.shared.scripts,
        id: run_id,
    };
    let (to_host, mut from_lua) = tokio::sync::mpsc::unbounded_channel::<ToHost>();
    let (to_lua, from_host) = std::sync::mpsc::channel::<FromHost>();
    let job = Job {
        code,
        sha,
        keys,
        args,
        time_limit: time_limit(cx),
        flags: Arc::clone(&run_flags),
        function,
    };
    let worker = tokio::task::spawn_blocking(move || engine::run(job, to_host, from_host));
    // The script sees its own database and protocol switches; the caller's
    // are restored afterwards (SELECT in a script does not leak out).
    let saved = (cx.db, cx.proto, cx.may_block);
    cx.may_block = false;
    let mut fatal: Option<KvError> = None;
    let mut calls: u64 = 0;
    let mut outcome = None;
    let mut answered = false;
    loop {
        let next = if answered {
            spin_recv(&mut from_lua)
        } else {
            None
        };
        let msg = match next {
            Some(msg) => msg,
            None => match from_lua.recv().await {
                Some(msg) => msg,
                None => break,
            },
        };
        match msg {
            ToHost::Done(reply) => {
                outcome = Some(reply);
                break;
            }
            ToHost::Call { argv, proto } => {
                calls += 1;
                let answer = if let Some(e) = &fatal {
                    FromHost::Abort(e.to_string())
                } else if calls > MAX_CALLS {
                    FromHost::Abort(format!("script made more than {MAX_CALLS} calls"))
                } else {
                    cx.proto = proto;
                    match call(cx, flags, &run_flags, &argv).await {
                        Ok(f) => FromHost::Reply(f),
                        Err(e) => {
                            let text = e.to_string();
                            fatal = Some(e);
                            FromHost::Abort(text)
                        }
                    }
                };
                // The Lua thread may already be gone (time limit).
                let _ = to_lua.send(answer);
                answered = true;
            }
        }
    }
    (cx.db, cx.proto, cx.may_block) = saved;
    drop(to_lua);
    // A panic in the Lua thread is a bug, but must not take the
    // connection down with it.
    let joined = worker.await;
    if let Some(e) = fatal {
        return Err(ExecError::Kv(e));
    }
    match (outcome, joined) {
        (Some(reply), _) => Ok(reply),
        (None, Err(e)) => Err(ExecError::err(format!("script runner failed: {e}"))),
        (None, Ok(())) => Err(ExecError::err("script runner ended without a reply")),
    }
}

/// The Lua thread's next message if it comes within [`SPIN`]. Blocks the
/// runtime thread for at most that long; the caller falls back to an
/// await (which also ends the spin when the Lua thread is gone).
fn spin_recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ToHost>) -> Option<ToHost> {
    use tokio::sync::mpsc::error::TryRecvError;
    spin(|| match rx.try_recv() {
        Ok(msg) => Some(Some(msg)),
        Err(TryRecvError::Disconnected) => Some(None),
        Err(TryRecvError::Empty) => None,
    })
    .flatten()
}

/// Calls `poll` until it gives an answer or [`SPIN`] has passed (`None`).
pub(crate) fn spin<T>(mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let started = std::time::Instant::now();
    loop {
        if let Some(answer) = poll() {
            return Some(answer);
        }
        if started.elapsed() >= SPIN {
            return None;
        }
        std::hint::spin_loop();
    }
}

/// Boxed so that the recursion dispatch -> eval -> dispatch has a
/// nameable, finite future type.
fn dispatch_boxed<'a, 'b>(
    cx: &'a mut Ctx<'b>,
    name: &'a str,
    argv: &'a [Bytes],
) -> Pin<Box<dyn Future<Output = CmdResult> + Send + 'a>>
where
    'b: 'a,
{
    Box::pin(cmd::dispatch(cx, name, argv))
}

/// One `redis.call` inside the script's transaction. `Err` only for a
/// data-plane failure (the transaction is lost).
async fn call(
    cx: &mut Ctx<'_>,
    flags: ScriptFlags,
    run_flags: &RunFlags,
    argv: &[Bytes],
) -> Result<Frame, KvError> {
    let spec = match command_table::resolve(argv) {
        Ok(s) => s,
        Err(DispatchError::WrongArity { .. }) => {
            return Ok(Frame::error(
                "Wrong number of args calling Redis command from script",
            ))
        }
        Err(_) => return Ok(Frame::error("Unknown Redis command called from script")),
    };
    if spec.has(CmdFlags::NOSCRIPT) || matches!(spec.name, "fcall" | "fcall_ro") {
        return Ok(Frame::error(
            "This Redis command is not allowed from script",
        ));
    }
    let writes = spec.has(CmdFlags::WRITE);
    if writes && flags.no_writes {
        return Ok(Frame::error(
            "Write commands are not allowed from read-only scripts.",
        ));
    }
    if matches!(spec.name, "xread" | "xreadgroup") && stream_read_blocks(argv) {
        // Redis refuses rather than treating the timeout as expired (as
        // it does for BLPOP & co. in scripts), naming the command as called.
        return Ok(Frame::error(format!(
            "{} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(&argv[0])
        )));
    }
    let before = cx.tx.write_count();
    let mark = cx.begin_command();
    let result = dispatch_boxed(cx, spec.name, argv).await;
    if cx.tx.write_count() != before {
        run_flags.wrote.store(true, Ordering::Relaxed);
    }
    match result {
        Ok(f) => Ok(f),
        Err(ExecError::Reply(f)) => {
            cx.drop_events_since(mark);
            Ok(f)
        }
        Err(ExecError::Block(b)) => Ok(b.timeout_reply),
        Err(ExecError::Kv(e)) => Err(e),
    }
}

/// Whether an XREAD / XREADGROUP argv has a BLOCK option among its
/// options (before `STREAMS`; a group or consumer named "block" is not one).
fn stream_read_blocks(argv: &[Bytes]) -> bool {
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        if a.eq_ignore_ascii_case(b"streams") {
            return false;
        }
        if a.eq_ignore_ascii_case(b"block") {
            return true;
        }
        i += if a.eq_ignore_ascii_case(b"group") {
            3
        } else if a.eq_ignore_ascii_case(b"count") {
            2
        } else {
            1
        };
    }
    false
}

impl Scripts {
    fn libraries(&self) -> MutexGuard<'_, Libraries> {
        self.libraries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `#!lua name=<lib>`: the library name of a FUNCTION body.
fn library_name(body: &[u8]) -> Result<String, String> {
    if !body.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..end]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => return Err(format!("Invalid metadata value given: {p}")),
        }
    }
    let name = name.ok_or("Library name was not given")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok(name)
}

/// FUNCTION LOAD / DELETE / FLUSH / LIST / KILL / STATS (DUMP and
/// RESTORE are not supported).
pub async fn function_cmd(shared: &crate::shared::Shared, name: &str, argv: &[Bytes]) -> CmdResult {
    let scripts = &shared.scripts;
    match name {
        "function|load" => {
            let (replace, body) = match argv.len() {
                3 => (false, argv[2].clone()),
                4 if argv[2].eq_ignore_ascii_case(b"replace") => (true, argv[3].clone()),
                4 => {
                    return Err(ExecError::err(format!(
                        "Unknown option given: {}",
                        String::from_utf8_lossy(&argv[2])
                    )))
                }
                _ => return Err(ExecError::syntax()),
            };
            if body.len() > MAX_SCRIPT_BYTES {
                return Err(ExecError::err(format!(
                    "library is larger than the maximum of {MAX_SCRIPT_BYTES} bytes"
                )));
            }
            let lib = library_name(&body).map_err(ExecError::err)?;
            if !replace && scripts.libraries().libs.contains_key(&lib) {
                return Err(ExecError::err(format!("Library '{lib}' already exists")));
            }
            let code = {
                // The shebang line is blanked so line numbers stay right.
                let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
                body[end..].to_vec()
            };
            let functions = tokio::task::spawn_blocking(move || engine::load_library(&code))
                .await
                .map_err(|e| ExecError::err(format!("library loader failed: {e}")))?
                .map_err(ExecError::coded)?;
            let mut libs = scripts.libraries();
            for (f, _) in &functions {
                let clash = libs
                    .libs
                    .iter()
                    .any(|(n, l)| *n != lib && l.functions.iter().any(|(g, _)| g == f));
                if clash {
                    return Err(ExecError::err(format!("Function {f} already exists")));
                }
            }
            if !replace && libs.libs.contains_key(&lib) {
                return Err(ExecError::err(format!("Library '{lib}' already exists")));
            }
            let old = libs.libs.get(&lib).map(|l| l.body.len()).unwrap_or(0);
            if libs.bytes - old + body.len() > MAX_LIBRARY_BYTES {
                return Err(ExecError::err(
                    "too much FUNCTION library code on this node",
                ));
            }
            libs.bytes = libs.bytes - old + body.len();
            libs.libs.insert(lib.clone(), Library { body, functions });
            Ok(Frame::bulk(lib))
        }
        "function|delete" => {
            let lib = String::from_utf8_lossy(&argv[2]).into_owned();
            let mut libs = scripts.libraries();
            match libs.libs.remove(&lib) {
                Some(l) => {
                    libs.bytes -= l.body.len();
                    Ok(Frame::ok())
                }
                None => Err(ExecError::err("Library not found")),
            }
        }
        "function|flush" => {
            match argv.get(2).map(|a| a.to_ascii_lowercase()) {
                None => {}
                Some(a) if argv.len() == 3 && (a == b"async" || a == b"sync") => {}
                Some(_) => {
                    return Err(ExecError::err(
                        "FUNCTION FLUSH only supports SYNC|ASYNC option",
                    ))
                }
            }
            *scripts.libraries() = Libraries::default();
            Ok(Frame::ok())
        }
        "function|list" => {
            let with_code = argv[2..]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(b"withcode"));
            let libs = scripts.libraries();
            Ok(Frame::Array(
                libs.libs
                    .iter()
                    .map(|(n, l)| {
                        let mut fields = vec![
                            (Frame::bulk("library_name"), Frame::bulk(n)),
                            (Frame::bulk("engine"), Frame::bulk("LUA")),
                            (
                                Frame::bulk("functions"),
                                Frame::Array(
                                    l.functions
                                        .iter()
                                        .map(|(f, nw)| {
                                            Frame::Map(vec![
                                                (Frame::bulk("name"), Frame::bulk(f)),
                                                (Frame::bulk("description"), Frame::Null),
                                                (
                                                    Frame::bulk("flags"),
                                                    Frame::Set(if *nw {
                                                        vec![Frame::bulk("no-writes")]
                                                    } else {
                                                        vec![]
                                                    }),
                                                ),
                                            ])
                                        })
                                        .collect(),
                                ),
                            ),
                        ];
                        if with_code {
                            fields.push((Frame::bulk("library_code"), Frame::Bulk(l.body.clone())));
                        }
                        Frame::Map(fields)
                    })
                    .collect(),
            ))
        }
        "function|kill" => match scripts.kill() {
            f @ Frame::Error(_) => Err(ExecError::Reply(f)),
            f => Ok(f),
        },
        "function|stats" => {
            let libs = scripts.libraries();
            let nfuncs: usize = libs.libs.values().map(|l| l.functions.len()).sum();
            Ok(Frame::Map(vec![
                (Frame::bulk("running_script"), Frame::Null),
                (
                    Frame::bulk("engines"),
                    Frame::Map(vec![(
                        Frame::bulk("LUA"),
                        Frame::Map(vec![
                            (
                                Frame::bulk("libraries_count"),
                                crate::db::int(libs.libs.len()),
                            ),
                            (Frame::bulk("functions_count"), crate::db::int(nfuncs)),
                        ]),
                    )]),
                ),
            ]))
        }
        _ => Err(ExecError::err(format!(
            "'{}' is not supported by this Elastickv build yet",
            name.replace('|', " ")
        ))),
    }
}

/// FCALL / FCALL_RO.
pub async fn fcall(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    let func = String::from_utf8_lossy(&argv[1]).into_owned();
    let found = {
        let libs = cx.shared.scripts.libraries();
        libs.libs.values().find_map(|l| {
            l.functions
                .iter()
                .find(|(f, _)| *f == func)
                .map(|(_, nw)| (l.body.clone(), *nw))
        })
    };
    let Some((body, no_writes)) = found else {
        return Err(ExecError::err("Function not found"));
    };
    let numkeys = parse_numkeys(&argv[2], argv.len() - 3)?;
    if name == "fcall_ro" && !no_writes {
        return Err(ExecError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let code = body[end..].to_vec();
    let keys = argv[3..3 + numkeys].to_vec();
    let args = argv[3 + numkeys..].to_vec();
    let flags = ScriptFlags { no_writes };
    run(cx, flags, code, func.clone(), keys, args, Some(func)).await
}

#[cfg(test)]
mod stream_block_tests {
    use super::stream_read_blocks;
    use bytes::Bytes;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn block_is_found_among_options_only() {
        assert!(stream_read_blocks(&argv("xread BLOCK 0 STREAMS s $")));
        assert!(stream_read_blocks(&argv(
            "XREAD COUNT 1 block 10 STREAMS s $"
        )));
        assert!(stream_read_blocks(&argv(
            "xreadgroup GROUP g c BLOCK 0 STREAMS s >"
        )));
        assert!(!stream_read_blocks(&argv("xread STREAMS block $")));
        assert!(!stream_read_blocks(&argv("xread COUNT 2 STREAMS s $")));
        assert!(!stream_read_blocks(&argv(
            "xreadgroup GROUP block block STREAMS s >"
        )));
    }
}
