//! The Lua side of a script execution: a fresh Lua 5.1 state per run with
//! Redis's API (`redis.*`, KEYS/ARGV, the cjson/cmsgpack/bit/struct
//! libraries), globals protection, the reply conversions both ways, and
//! Redis 7.0's error texts.
//!
//! Everything here runs on a blocking thread; `redis.call` sends its argv
//! to the async task that owns the transaction and blocks until the reply
//! comes back (see the parent module).
//!
//! The API visible to scripts is built by a small Lua prelude over raw
//! Rust functions that never raise: each returns a status and the prelude
//! raises, so errors carry the script's line (`user_script:1: ...`) or
//! Redis's error tables exactly where Redis puts them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::{FromHost, Job, ToHost};
use crate::frame::{Frame, Protocol};

/// Most memory one script's Lua state may allocate.
pub const MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// Deepest nesting converted between Lua tables and replies (Redis stops
/// at its Lua stack limit with the same error).
pub const MAX_DEPTH: usize = 100;

/// 2^63 as a double (the bound of `(long long)` conversions).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Instructions between two time-limit / SCRIPT KILL checks.
const HOOK_EVERY: u32 = 10_000;

/// The chunk name of user code (error positions read `user_script:N:`).
const USER_CHUNK: &str = "@user_script";

/// The chunk name of FUNCTION library code.
const FUNCTION_CHUNK: &str = "@user_function";

/// The chunk name of the prelude (skipped when locating an error's line).
const PRELUDE_CHUNK: &str = "=redis";

/// Checks that `code` compiles (SCRIPT LOAD); `Err` is the full error text.
pub fn check_syntax(code: &[u8]) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
        .map_err(|e| format!("ERR Error creating the Lua state: {e}"))?;
    let _ = lua.set_memory_limit(MEMORY_LIMIT);
    lua.load(code)
        .set_name(USER_CHUNK)
        .into_function()
        .map(|_| ())
        .map_err(compile_error)
}

/// Runs a FUNCTION library's body (FUNCTION LOAD) and returns the
/// functions it registers with their `no-writes` flag; `Err` is the
/// complete error text.
pub fn load_library(code: &[u8]) -> Result<Vec<(String, bool)>, String> {
    let inner = || -> mlua::Result<Result<Vec<(String, bool)>, String>> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let (to_host, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (_tx, from_host) = std::sync::mpsc::channel();
        let state = Rc::new(RunState {
            to_host,
            from_host,
            resp: Cell::new(Protocol::Resp2),
            aborted: RefCell::new(None),
            rand: Cell::new(srand48_state(0)),
        });
        let raw = lua.create_table()?;
        install_raw(&lua, &raw, &state, "")?;
        super::libs::install(&lua, &raw)?;
        let prelude: mlua::Function = lua.load(PRELUDE).set_name(PRELUDE_CHUNK).eval()?;
        let (env, runner, registered): (Table, mlua::Function, Table) = prelude.call(raw)?;
        let f = match lua
            .load(code)
            .set_name(FUNCTION_CHUNK)
            .set_environment(env)
            .into_function()
        {
            Ok(f) => f,
            Err(e) => {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                return Ok(Err(format!("ERR Error compiling function: {msg}")));
            }
        };
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if Instant::now() > deadline {
                    Err(mlua::Error::RuntimeError(
                        "FUNCTION LOAD timeout".to_string(),
                    ))
                } else {
                    Ok(VmState::Continue)
                }
            },
        );
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let out: MultiValue = runner.call(f)?;
        if !matches!(out.front(), Some(Value::Boolean(true))) {
            let err = out.into_iter().nth(1).unwrap_or(Value::Nil);
            let text = match script_error(&err, "") {
                Frame::Error(e) => String::from_utf8_lossy(&e).into_owned(),
                _ => "ERR error loading the library".to_string(),
            };
            return Ok(Err(text));
        }
        let mut funcs = Vec::new();
        for pair in registered.pairs::<String, Table>() {
            let (name, entry) = pair?;
            funcs.push((name, entry.raw_get::<bool>(2).unwrap_or(false)));
        }
        if funcs.is_empty() {
            return Ok(Err("ERR No functions registered".to_string()));
        }
        funcs.sort();
        Ok(Ok(funcs))
    };
    inner().unwrap_or_else(|e| Err(format!("ERR Error loading the library: {e}")))
}

fn compile_error(e: mlua::Error) -> String {
    let msg = match e {
        mlua::Error::SyntaxError { message, .. } => message,
        other => other.to_string(),
    };
    format!("ERR Error compiling script (new function): {msg}")
}

/// Per-run state the Rust callbacks share.
struct RunState {
    to_host: tokio::sync::mpsc::UnboundedSender<ToHost>,
    from_host: std::sync::mpsc::Receiver<FromHost>,
    /// `redis.setresp`.
    resp: Cell<Protocol>,
    /// Why the run was aborted (time limit, SCRIPT KILL, lost
    /// transaction); wins over whatever the script returns.
    aborted: RefCell<Option<String>>,
    /// Redis's `redisLrand48` state (48-bit linear congruential).
    rand: Cell<u64>,
}

/// Runs `job` to completion and sends [`ToHost::Done`] with its reply.
pub fn run(
    job: Job,
    to_host: tokio::sync::mpsc::UnboundedSender<ToHost>,
    from_host: std::sync::mpsc::Receiver<FromHost>,
) {
    let done = to_host.clone();
    let reply = match execute(job, to_host, from_host) {
        Ok(f) => f,
        Err(e) => Frame::error(format!("Error running script: {e}")),
    };
    let _ = done.send(ToHost::Done(reply));
}

fn execute(
    job: Job,
    to_host: tokio::sync::mpsc::UnboundedSender<ToHost>,
    from_host: std::sync::mpsc::Receiver<FromHost>,
) -> mlua::Result<Frame> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    )?;
    let seed: u32 = rand::random();
    let state = Rc::new(RunState {
        to_host,
        from_host,
        resp: Cell::new(Protocol::Resp2),
        aborted: RefCell::new(None),
        rand: Cell::new(srand48_state(seed as i32)),
    });
    let raw = lua.create_table()?;
    install_raw(&lua, &raw, &state, &job.sha)?;
    super::libs::install(&lua, &raw)?;
    let prelude: mlua::Function = lua.load(PRELUDE).set_name(PRELUDE_CHUNK).eval()?;
    let globals = lua.globals();
    globals.raw_set("KEYS", string_array(&lua, &job.keys)?)?;
    globals.raw_set("ARGV", string_array(&lua, &job.args)?)?;
    let (env, runner, registered): (Table, mlua::Function, Table) = prelude.call(raw)?;

    let chunk = if job.function.is_some() {
        FUNCTION_CHUNK
    } else {
        USER_CHUNK
    };
    let mut user = match lua
        .load(&job.code[..])
        .set_name(chunk)
        .set_environment(env)
        .into_function()
    {
        Ok(f) => f,
        Err(e) => return Ok(Frame::Error(Bytes::from(compile_error(e)))),
    };
    let mut call_args: Option<(Table, Table)> = None;
    if let Some(name) = &job.function {
        // A FUNCTION library: run its body (which registers the
        // functions), then call the requested one with KEYS and ARGV.
        let out: MultiValue = runner.call(user)?;
        if !matches!(out.front(), Some(Value::Boolean(true))) {
            let err = out.into_iter().nth(1).unwrap_or(Value::Nil);
            return Ok(script_error(&err, name));
        }
        let Ok(Value::Table(entry)) = registered.raw_get::<Value>(name.as_str()) else {
            return Ok(Frame::error("Function not found"));
        };
        let cb: mlua::Function = entry.raw_get(1)?;
        let keys = string_array(&lua, &job.keys)?;
        let args = string_array(&lua, &job.args)?;
        // Called from Lua (the runner), not through a Rust closure, so
        // errors reach the message handler as raised.
        call_args = Some((keys, args));
        user = cb;
    }

    // Time limit and SCRIPT KILL: once tripped, every later check raises
    // again, so a pcall inside the script cannot swallow the abort.
    let deadline = Instant::now() + job.time_limit;
    let limit_ms = job.time_limit.as_millis();
    let hook_state = Rc::clone(&state);
    let flags = std::sync::Arc::clone(&job.flags);
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            let why = if flags.killed.load(Ordering::Relaxed) {
                Some("ERR Script killed by user with SCRIPT KILL...".to_string())
            } else if Instant::now() > deadline {
                Some(format!(
                    "ERR Script exceeded the time limit of {limit_ms} ms (script-time-limit) and was aborted"
                ))
            } else {
                None
            };
            match why {
                Some(w) => {
                    hook_state.aborted.borrow_mut().get_or_insert(w.clone());
                    Err(mlua::Error::RuntimeError(w))
                }
                None => Ok(VmState::Continue),
            }
        },
    );
    lua.set_memory_limit(MEMORY_LIMIT)?;

    let out: MultiValue = match call_args {
        Some((k, a)) => runner.call((user, k, a))?,
        None => runner.call(user)?,
    };
    let mut vals = out.into_iter();
    let ok = matches!(vals.next(), Some(Value::Boolean(true)));
    let value = vals.next().unwrap_or(Value::Nil);
    if let Some(why) = state.aborted.borrow().clone() {
        return Ok(Frame::Error(Bytes::from(why)));
    }
    if ok {
        return Ok(lua_to_frame(&value, state.resp.get(), 0));
    }
    Ok(script_error(&value, &job.sha))
}

/// The reply for an error that escaped the script: the error table built
/// by the message handler, with the script and line appended as Redis
/// 7.0 does.
fn script_error(err: &Value, sha: &str) -> Frame {
    let text = match err {
        Value::Table(t) => {
            let msg = match t.raw_get::<Value>("err") {
                Ok(Value::String(s)) => s.to_string_lossy(),
                _ => "ERR unknown error".to_string(),
            };
            let source = t.raw_get::<Option<String>>("source").ok().flatten();
            let line = t.raw_get::<Option<i64>>("line").ok().flatten();
            match (source, line) {
                (Some(s), Some(l)) => format!("{msg} script: {sha}, on {s}:{l}."),
                _ => msg,
            }
        }
        Value::String(s) => format!("ERR {}", s.to_string_lossy()),
        other => format!("ERR {other:?}"),
    };
    Frame::Error(Bytes::from(crlf_to_spaces(text.as_bytes())))
}

fn crlf_to_spaces(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

fn string_array(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, a) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(a)?)?;
    }
    Ok(t)
}

/// `srand48`-style seeding of Redis's `redisLrand48`.
fn srand48_state(seed: i32) -> u64 {
    ((u64::from(seed as u32) << 16) | 0x330E) & ((1 << 48) - 1)
}

/// Next 31-bit value of the 48-bit generator (the `lrand48` recurrence).
fn lrand48(state: &Cell<u64>) -> i64 {
    let x = state.get().wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & ((1 << 48) - 1);
    state.set(x);
    (x >> 17) as i64
}

/// A number passed to `redis.call`, as Redis formats it (`%.17g`), so
/// integers up to 2^53 keep every digit.
fn arg_number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e17 {
        format!("{}", n as i64)
    } else {
        crate::float::format_g(n, 17)
    }
}

/// Lua number -> command argument / key text, as Lua's `tostring` would
/// print it (`%.14g`).
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        crate::float::format_g(n, 14)
    }
}

fn install_raw(lua: &Lua, raw: &Table, state: &Rc<RunState>, sha: &str) -> mlua::Result<()> {
    // redis.call / redis.pcall are Rust (C) functions, not Lua wrappers: a
    // script's `return redis.call(...)` is then not a Lua tail call, so
    // its line stays on the stack for the error report.
    for (name, raise) in [("call", true), ("pcall", false)] {
        let st = Rc::clone(state);
        raw.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let text = match redis_call(&st, lua, args)? {
                    Ok(v) => return Ok(v),
                    Err(text) => text,
                };
                if raise {
                    Err(mlua::Error::external(ScriptRaise::Table(
                        String::from_utf8_lossy(&text).into_owned(),
                    )))
                } else {
                    let t = lua.create_table()?;
                    t.raw_set("err", lua.create_string(&text)?)?;
                    Ok(Value::Table(t))
                }
            })?,
        )?;
    }
    // Re-raises a pending abort (time limit, SCRIPT KILL) after a pcall
    // caught it, so a pcall loop cannot outlive the limit.
    let st = Rc::clone(state);
    raw.raw_set(
        "check_abort",
        lua.create_function(move |_, ()| match st.aborted.borrow().clone() {
            Some(why) => Err(mlua::Error::RuntimeError(why)),
            None => Ok(()),
        })?,
    )?;
    raw.raw_set(
        "errtext",
        lua.create_function(|_, e: Value| {
            Ok(match e {
                Value::Error(e) => raised_text(&e),
                _ => String::new(),
            })
        })?,
    )?;
    // Wraps a raw library function (returning true, results... or false,
    // message) into one that raises at the caller's line.
    // `wrap` raises failures as positioned messages (the C libraries'
    // luaL_error), `wrap_table` as Redis error tables (the redis.* API).
    for (name, table) in [("wrap", false), ("wrap_table", true)] {
        raw.raw_set(
            name,
            lua.create_function(move |lua, (f, fname): (mlua::Function, Option<String>)| {
                lua.create_function(move |lua, args: MultiValue| {
                    let out: MultiValue = f.call(args)?;
                    let mut it = out.into_iter();
                    match it.next() {
                        Some(Value::Boolean(true)) => Ok(MultiValue::from_iter(it)),
                        _ => {
                            let msg = match it.next() {
                                Some(Value::String(s)) => s.to_string_lossy(),
                                _ => "error".to_string(),
                            };
                            if table {
                                Err(mlua::Error::external(ScriptRaise::Table(msg)))
                            } else {
                                Err(raise_here(lua, arg_error_name(msg, fname.as_deref())))
                            }
                        }
                    }
                })
            })?,
        )?;
    }
    let st = Rc::clone(state);
    raw.raw_set(
        "setresp",
        lua.create_function(move |_, n: i64| {
            st.resp.set(if n == 3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            });
            Ok(())
        })?,
    )?;
    raw.raw_set(
        "sha1hex",
        lua.create_function(|lua, s: mlua::String| {
            lua.create_string(super::sha1_hex(&s.as_bytes()))
        })?,
    )?;
    raw.raw_set(
        "log",
        lua.create_function(|_, (level, msg): (i64, mlua::String)| {
            let msg = msg.to_string_lossy();
            match level {
                0 | 1 => tracing::debug!(target: "redis_script", "{msg}"),
                2 => tracing::info!(target: "redis_script", "{msg}"),
                _ => tracing::warn!(target: "redis_script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    let st = Rc::clone(state);
    raw.raw_set(
        "random",
        lua.create_function(move |lua, (m, n): (Option<f64>, Option<f64>)| {
            // Redis's math.random over redisLrand48: deterministic for a
            // given math.randomseed, randomly seeded per run.
            let r = (lrand48(&st.rand) % i64::from(i32::MAX)) as f64 / f64::from(i32::MAX);
            let v = match (m, n) {
                (None, _) => r,
                (Some(m), None) if m >= 1.0 => (r * m.floor()).floor() + 1.0,
                (Some(l), Some(u)) if l <= u => {
                    (r * (u.floor() - l.floor() + 1.0)).floor() + l.floor()
                }
                _ => {
                    return Ok((
                        false,
                        Value::String(lua.create_string("bad argument #1 (interval is empty)")?),
                    ))
                }
            };
            Ok((true, Value::Number(v)))
        })?,
    )?;
    let st = Rc::clone(state);
    raw.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: f64| {
            st.rand.set(srand48_state(seed as i64 as i32));
            Ok(())
        })?,
    )?;
    let sha = sha.to_string();
    raw.raw_set("sha", sha)?;
    raw.raw_set(
        "errhandler",
        lua.create_function(|lua, err: Value| error_table(lua, err))?,
    )?;
    Ok(())
}

/// An error a script API function raises: Redis's error table (its
/// `err` text) or a plain message already carrying its position.
#[derive(Debug)]
enum ScriptRaise {
    Table(String),
    Str(String),
}

impl std::fmt::Display for ScriptRaise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptRaise::Table(m) | ScriptRaise::Str(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ScriptRaise {}

fn find_raise(e: &mlua::Error) -> Option<&ScriptRaise> {
    match e {
        mlua::Error::CallbackError { cause, .. } => find_raise(cause),
        other => other.downcast_ref::<ScriptRaise>(),
    }
}

/// The text a caught error reads as in the script (Redis's pcall).
fn raised_text(e: &mlua::Error) -> String {
    match find_raise(e) {
        Some(r) => r.to_string(),
        None => bare_error_text(e),
    }
}

/// A message raised from a Rust function with the position of the Lua
/// code that called it (`user_script:3: msg`), as Lua's C libraries do.
fn raise_here(lua: &Lua, msg: String) -> mlua::Error {
    let pos = lua.inspect_stack(1).and_then(|d| {
        let src = d.source();
        if src.what == "C" {
            return None;
        }
        let short = src.short_src.map(|s| s.into_owned())?;
        Some(format!("{short}:{}: ", d.curr_line()))
    });
    mlua::Error::external(ScriptRaise::Str(format!(
        "{}{msg}",
        pos.unwrap_or_default()
    )))
}

/// `bad argument #N (why)` from a library function becomes Lua's
/// `bad argument #N to 'name' (why)`.
fn arg_error_name(msg: String, name: Option<&str>) -> String {
    let (Some(name), Some(rest)) = (name, msg.strip_prefix("bad argument #")) else {
        return msg;
    };
    match rest.find(" (") {
        Some(i) => format!("bad argument #{} to '{name}'{}", &rest[..i], &rest[i..]),
        None => msg,
    }
}

/// Redis's error-table text for an error reply text: a `-CODE msg` keeps
/// its code, anything else gets `ERR`; surrounding CR/LF is trimmed.
pub fn error_reply_text(s: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match s.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", s),
    };
    let is_crlf = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = msg.iter().position(|c| !is_crlf(c)).unwrap_or(msg.len());
    let end = msg
        .iter()
        .rposition(|c| !is_crlf(c))
        .map_or(start, |e| e + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&msg[start..end.max(start)]);
    out
}

/// Waits for the host's answer to a `redis.call`, spinning for up to
/// [`super::SPIN`] before sleeping: the host usually answers within a few
/// microseconds, and a futex sleep plus wakeup costs more than that on a
/// VM (tens of microseconds per call, paid twice per `redis.call`).
fn recv_reply(
    rx: &std::sync::mpsc::Receiver<FromHost>,
) -> Result<FromHost, std::sync::mpsc::RecvError> {
    use std::sync::mpsc::{RecvError, TryRecvError};
    super::spin(|| match rx.try_recv() {
        Ok(msg) => Some(Ok(msg)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
        Err(TryRecvError::Empty) => None,
    })
    .unwrap_or_else(|| rx.recv())
}

/// One `redis.call`: `Ok(Err(text))` is the error-table text of a
/// failure (bad arguments or an error reply).
fn redis_call(st: &RunState, lua: &Lua, args: MultiValue) -> mlua::Result<Result<Value, Vec<u8>>> {
    if args.is_empty() {
        return Ok(Err(error_reply_text(
            b"Please specify at least one argument for this redis lib call",
        )));
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(x) => argv.push(Bytes::from(arg_number_text(*x))),
            Value::Integer(x) => argv.push(Bytes::from(x.to_string())),
            _ => {
                return Ok(Err(error_reply_text(
                    b"Lua redis lib command arguments must be strings or integers",
                )))
            }
        }
    }
    let proto = st.resp.get();
    if st.to_host.send(ToHost::Call { argv, proto }).is_err() {
        return Ok(Err(b"ERR the script's transaction is gone".to_vec()));
    }
    match recv_reply(&st.from_host) {
        Ok(FromHost::Reply(Frame::Error(e))) => {
            let mut dashed = b"-".to_vec();
            dashed.extend_from_slice(&e);
            Ok(Err(error_reply_text(&dashed)))
        }
        Ok(FromHost::Reply(f)) => Ok(Ok(frame_to_lua(lua, &f, proto)?)),
        Ok(FromHost::Abort(why)) => {
            let text = format!("ERR script aborted: {why}");
            st.aborted.borrow_mut().get_or_insert(text.clone());
            Ok(Err(text.into_bytes()))
        }
        Err(_) => Ok(Err(b"ERR the script's transaction is gone".to_vec())),
    }
}

/// The message handler of the script's `xpcall`: turns any error into
/// Redis's error table `{err=..., source=..., line=...}`, locating the
/// line in the user's code that raised it.
fn error_table(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let raised = match &err {
        Value::Error(e) => find_raise(e).map(|r| match r {
            ScriptRaise::Table(m) => m.clone(),
            ScriptRaise::Str(m) => format!("ERR {m}"),
        }),
        _ => None,
    };
    let t = match err {
        _ if raised.is_some() => {
            let t = lua.create_table()?;
            t.raw_set("err", raised.unwrap_or_default())?;
            t
        }
        Value::Table(t) if matches!(t.raw_get::<Value>("err"), Ok(Value::String(_))) => t,
        other => {
            let msg = match &other {
                Value::String(s) => s.to_string_lossy(),
                Value::Nil => "nil".to_string(),
                Value::Number(n) => number_text(*n),
                Value::Integer(i) => i.to_string(),
                Value::Boolean(b) => b.to_string(),
                Value::Error(e) => bare_error_text(e),
                Value::UserData(_) => "error object is not a string".to_string(),
                _ => "unknown error".to_string(),
            };
            let t = lua.create_table()?;
            if msg.starts_with("ERR ") {
                t.raw_set("err", msg)?;
            } else {
                t.raw_set("err", format!("ERR {msg}"))?;
            }
            t
        }
    };
    for level in 1..64 {
        let Some(d) = lua.inspect_stack(level) else {
            break;
        };
        let src = d.source();
        if src.what == "C" || src.what == "tail" {
            continue;
        }
        let source = src.source.map(|s| s.into_owned()).unwrap_or_default();
        if source == PRELUDE_CHUNK {
            continue;
        }
        t.raw_set("source", source)?;
        t.raw_set("line", d.curr_line())?;
        break;
    }
    Ok(t)
}

/// The text of an error raised by a Rust callback (hook aborts carry a
/// complete Redis error text).
fn bare_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => bare_error_text(cause),
        mlua::Error::MemoryError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A command reply as a Lua value, in the script's protocol (`proto`):
/// Redis's RESP -> Lua conversion.
pub fn frame_to_lua(lua: &Lua, f: &Frame, proto: Protocol) -> mlua::Result<Value> {
    let resp3 = proto == Protocol::Resp3;
    Ok(match f {
        Frame::Integer(n) => Value::Number(*n as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s)?)?;
            Value::Table(t)
        }
        Frame::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(e)?)?;
            Value::Table(t)
        }
        Frame::Null | Frame::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Frame::Array(items) | Frame::Push(items) => array_to_lua(lua, items, proto)?,
        Frame::Set(items) if !resp3 => array_to_lua(lua, items, proto)?,
        Frame::Set(items) => {
            let inner = lua.create_table()?;
            for it in items {
                inner.raw_set(frame_to_lua(lua, it, proto)?, true)?;
            }
            let t = lua.create_table()?;
            t.raw_set("set", inner)?;
            Value::Table(t)
        }
        Frame::Map(pairs) if !resp3 => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, frame_to_lua(lua, k, proto)?)?;
                t.raw_set(2 * i + 2, frame_to_lua(lua, v, proto)?)?;
            }
            Value::Table(t)
        }
        Frame::Map(pairs) => {
            let inner = lua.create_table()?;
            for (k, v) in pairs {
                inner.raw_set(frame_to_lua(lua, k, proto)?, frame_to_lua(lua, v, proto)?)?;
            }
            let t = lua.create_table()?;
            t.raw_set("map", inner)?;
            Value::Table(t)
        }
        Frame::Double(d) if !resp3 => {
            Value::String(lua.create_string(crate::float::format_double_g17(*d))?)
        }
        Frame::Double(d) => {
            let t = lua.create_table()?;
            t.raw_set("double", *d)?;
            Value::Table(t)
        }
        Frame::Boolean(b) if !resp3 => Value::Number(if *b { 1.0 } else { 0.0 }),
        Frame::Boolean(b) => Value::Boolean(*b),
        Frame::BigNumber(n) if !resp3 => Value::String(lua.create_string(n)?),
        Frame::BigNumber(n) => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(n)?)?;
            Value::Table(t)
        }
        Frame::Verbatim { data, .. } if !resp3 => Value::String(lua.create_string(data)?),
        Frame::Verbatim { format, data } => {
            let inner = lua.create_table()?;
            inner.raw_set("format", lua.create_string(format)?)?;
            inner.raw_set("string", lua.create_string(data)?)?;
            let t = lua.create_table()?;
            t.raw_set("verbatim_string", inner)?;
            Value::Table(t)
        }
    })
}

fn array_to_lua(lua: &Lua, items: &[Frame], proto: Protocol) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, it) in items.iter().enumerate() {
        t.raw_set(i + 1, frame_to_lua(lua, it, proto)?)?;
    }
    Ok(Value::Table(t))
}

/// A script's return value as a reply: Redis's Lua -> RESP conversion
/// (`proto` is the script's `redis.setresp`, which decides how booleans
/// are returned).
pub fn lua_to_frame(v: &Value, proto: Protocol, depth: usize) -> Frame {
    match v {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => match (proto, b) {
            (Protocol::Resp3, b) => Frame::Boolean(*b),
            (Protocol::Resp2, true) => Frame::Integer(1),
            (Protocol::Resp2, false) => Frame::Null,
        },
        // `(long long)` of the number: fractions truncated; out of range
        // (and NaN) gives the x86-64 conversion's INT64_MIN.
        Value::Number(n) => Frame::Integer(if n.is_nan() || *n >= TWO_POW_63 || *n < -TWO_POW_63 {
            i64::MIN
        } else {
            *n as i64
        }),
        Value::Integer(i) => Frame::Integer(*i),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Frame::error("reached lua stack limit");
            }
            table_to_frame(t, proto, depth)
        }
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, proto: Protocol, depth: usize) -> Frame {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(s) = field("err") {
        return Frame::Error(Bytes::from(crlf_to_spaces(&s.as_bytes())));
    }
    if let Value::String(s) = field("ok") {
        return Frame::Simple(Bytes::from(crlf_to_spaces(&s.as_bytes())));
    }
    match field("double") {
        Value::Number(d) => return Frame::Double(d),
        Value::Integer(i) => return Frame::Double(i as f64),
        _ => {}
    }
    if let Value::String(s) = field("big_number") {
        return Frame::BigNumber(Bytes::from(crlf_to_spaces(&s.as_bytes())));
    }
    if let Value::Table(m) = field("map") {
        let mut out = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            out.push((
                lua_to_frame(&k, proto, depth + 1),
                lua_to_frame(&v, proto, depth + 1),
            ));
        }
        return Frame::Map(out);
    }
    if let Value::Table(s) = field("set") {
        let mut out = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            out.push(lua_to_frame(&k, proto, depth + 1));
        }
        return Frame::Set(out);
    }
    if let Value::Table(v) = field("verbatim_string") {
        let fmt = v.raw_get::<Value>("format").unwrap_or(Value::Nil);
        let data = v.raw_get::<Value>("string").unwrap_or(Value::Nil);
        if let (Value::String(f), Value::String(d)) = (fmt, data) {
            let f = f.as_bytes();
            if f.len() == 3 {
                return Frame::Verbatim {
                    format: [f[0], f[1], f[2]],
                    data: Bytes::copy_from_slice(&d.as_bytes()),
                };
            }
        }
    }
    let mut out = Vec::new();
    for i in 1.. {
        let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
        if v.is_nil() {
            break;
        }
        out.push(lua_to_frame(&v, proto, depth + 1));
    }
    Frame::Array(out)
}

/// The Lua prelude: builds the protected environment scripts run in and
/// returns it with the runner. Takes the table of raw Rust functions.
const PRELUDE: &str = r#"
return function(raw)
local type, error, select, tostring, unpack = type, error, select, tostring, unpack
local setmetatable, getmetatable, rawset, pairs = setmetatable, getmetatable, rawset, pairs
local xpcall, pcall, loadstring, setfenv = xpcall, pcall, loadstring, setfenv
local G = _G

-- Raw functions answer (true, results...) or (false, message); wrap
-- (Rust) raises failures at the caller's line, as Lua's C libraries do.
local wrap = raw.wrap

local function ro_error() error("Attempt to modify a readonly table", 2) end
local protected = setmetatable({}, {__mode = 'k'})
local guard = setmetatable({}, {__newindex = ro_error, __metatable = false})
protected[guard] = true
local function readonly(t)
  local proxy = setmetatable({}, {__index = t, __newindex = ro_error, __metatable = guard})
  protected[proxy] = true
  return proxy
end

-- Redis's error table: "-CODE msg" keeps its code, anything else is ERR.
local function push_error(s)
  local code, msg
  if s:sub(1, 1) == '-' then
    local sp = s:find(' ', 1, true)
    if sp then code, msg = s:sub(2, sp - 1), s:sub(sp + 1) else code, msg = 'ERR', s:sub(2) end
  else
    code, msg = 'ERR', s
  end
  msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end

local redis = {}
redis.call = raw.call
redis.pcall = raw.pcall
redis.error_reply = function(s)
  if type(s) ~= 'string' then return push_error('wrong number or type of arguments') end
  if s:sub(1, 1) ~= '-' then s = '-' .. s end
  return push_error(s)
end
redis.status_reply = function(s)
  if type(s) ~= 'string' then return push_error('wrong number or type of arguments') end
  return {ok = s}
end
local sha1hex = raw.sha1hex
-- Functions that raise Redis error tables are wrapped by Rust, so a
-- script's `return redis.x(...)` keeps its line in the error report.
local wrap_table = raw.wrap_table
local function fails(msg) return false, push_error(msg).err end
redis.sha1hex = wrap_table(function(...)
  local s = ...
  if select('#', ...) ~= 1 or (type(s) ~= 'string' and type(s) ~= 'number') then
    return fails('wrong number of arguments')
  end
  return true, sha1hex(tostring(s))
end)
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
local log = raw.log
redis.log = wrap_table(function(...)
  local n = select('#', ...)
  if n < 2 then return fails('redis.log() requires two arguments or more.') end
  local level = ...
  if type(level) ~= 'number' then return fails('First argument must be a number (log level).') end
  if level < 0 or level > 3 then return fails('Invalid debug level.') end
  local parts = {}
  for i = 2, n do parts[#parts + 1] = tostring((select(i, ...))) end
  log(level, table.concat(parts, ' '))
  return true
end)
local setresp = raw.setresp
redis.setresp = wrap_table(function(...)
  if select('#', ...) ~= 1 then return fails('redis.setresp() requires one argument.') end
  local v = ...
  if v ~= 2 and v ~= 3 then return fails('RESP version must be 2 or 3.') end
  setresp(v)
  return true
end)
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = wrap_table(function(...)
  if select('#', ...) ~= 1 then return fails('redis.set_repl() requires one argument.') end
  local v = ...
  if type(v) ~= 'number' or v < 0 or v > 3 or v % 1 ~= 0 then
    return fails('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
  return true
end)
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION = '7.0.15'
redis.REDIS_VERSION_NUM = 0x07000f

-- FUNCTION libraries register their functions here.
local registered = {}
redis.register_function = function(a, b)
  local name, cb, flags
  if type(a) == 'table' then
    name, cb, flags = a.function_name, a.callback, a.flags
  else
    name, cb = a, b
  end
  if type(name) ~= 'string' or name == '' then
    error(push_error('wrong arguments given to redis.register_function'))
  end
  if type(cb) ~= 'function' then
    error(push_error('wrong arguments given to redis.register_function'))
  end
  if registered[name] then error(push_error('Function ' .. name .. ' already exists')) end
  local no_writes = false
  if type(flags) == 'table' then
    for _, f in pairs(flags) do if f == 'no-writes' then no_writes = true end end
  end
  registered[name] = {cb, no_writes}
end

G.redis = readonly(redis)

local function lib(name, funcs, extra)
  local t = {}
  for k, f in pairs(funcs) do t[k] = wrap(f, k) end
  if extra then for k, v in pairs(extra) do t[k] = v end end
  G[name] = readonly(t)
end
lib('bit', raw.bit)
lib('cjson', raw.cjson, {null = raw.cjson_null})
lib('cmsgpack', raw.cmsgpack)
lib('struct', raw.struct)

math.random = wrap(raw.random, 'random')
math.randomseed = raw.randomseed

-- Redis replaces pcall so that a caught error table reads as its text.
local errtext, check_abort = raw.errtext, raw.check_abort
local function fix(ok, ...)
  check_abort()
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'table' and e.err then return false, e.err end
  if type(e) == 'userdata' then return false, errtext(e) end
  return false, e
end
G.pcall = function(f, ...) return fix(pcall(f, ...)) end
local function xfix(...) check_abort() return ... end
G.xpcall = function(f, h) return xfix(xpcall(f, h)) end

local env = {}
G.setmetatable = function(t, mt)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return setmetatable(t, mt)
end
G.rawset = function(t, k, v)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return rawset(t, k, v)
end
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then return nil, 'binary chunks are not allowed' end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
G.load = nil
-- Lua 5.1.5's unpack computes its result count in a signed int that can
-- overflow (an index range near 2^31 then writes past the C stack), so
-- ranges are checked here, in doubles, before the real unpack runs.
local raw_unpack = unpack
G.unpack = function(...)
  local t, i, j = ...
  local first = i or 1
  local last = j
  if last == nil and type(t) == 'table' then last = #t end
  if type(first) == 'number' and type(last) == 'number' and last - first >= 7999 then
    error("too many results to unpack", 2)
  end
  -- Same arguments as given: unpack's stack budget counts them.
  return raw_unpack(...)
end
for _, name in pairs({'loadfile', 'dofile', 'print', 'setfenv', 'getfenv', 'newproxy',
                      'module', 'require', 'gcinfo'}) do
  G[name] = nil
end
getmetatable('').__metatable = guard

setmetatable(env, {
  __index = function(_, k)
    local v = G[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = ro_error,
  __metatable = guard,
})
protected[env] = true
G._G = env

local handler = raw.errhandler
-- FCALL passes the callback with KEYS and ARGV; EVAL just the chunk.
local function runner(f, k, a)
  if k == nil then return xpcall(f, handler) end
  return xpcall(function() return (f(k, a)) end, handler)
end
return env, runner, registered
end
"#;
