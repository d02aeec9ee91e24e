//! Lua scripting over the in-memory store: reply conversions both ways,
//! Redis 7.0's error texts, the libraries (cjson, cmsgpack, bit, struct),
//! globals protection, script flags, SCRIPT subcommands, and atomicity
//! (a script is one transaction: all of its writes or none).

use bytes::Bytes;
use elastickv_api_redis::Frame;

mod common;
use common::*;

fn err_text(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_to_resp_conversions() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.eval("return 'hello'", &[], &[]).await, bulk("hello"));
    assert_eq!(c.eval("return 100.5", &[], &[]).await, int(100));
    assert_eq!(c.eval("return -3.99", &[], &[]).await, int(-3));
    // Out of range converts as x86-64's (long long) cast does.
    assert_eq!(c.eval("return 2^63", &[], &[]).await, int(i64::MIN));
    assert_eq!(
        c.eval("return redis.call('echo', 1/3)", &[], &[]).await,
        bulk("0.33333333333333331")
    );
    assert_eq!(c.eval("return true", &[], &[]).await, int(1));
    assert_eq!(c.eval("return false", &[], &[]).await, Frame::Null);
    assert_eq!(c.eval("return nil", &[], &[]).await, Frame::Null);
    assert_eq!(
        c.eval("return {ok='fine'}", &[], &[]).await,
        Frame::Simple(Bytes::from_static(b"fine"))
    );
    assert_eq!(
        err_text(
            &c.eval("return {err='ERR this is an error'}", &[], &[])
                .await
        ),
        "ERR this is an error"
    );
    assert_eq!(
        c.eval("return {1,2,3,'ciao',{1,2}}", &[], &[]).await,
        Frame::Array(vec![
            int(1),
            int(2),
            int(3),
            bulk("ciao"),
            Frame::Array(vec![int(1), int(2)])
        ])
    );
    // Arrays stop at the first nil.
    assert_eq!(
        c.eval("return {1,2,nil,4}", &[], &[]).await,
        Frame::Array(vec![int(1), int(2)])
    );
    assert_eq!(
        c.eval(
            "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
            &["a", "b"],
            &["c", "d"]
        )
        .await,
        Frame::Array(vec![bulk("a"), bulk("b"), bulk("c"), bulk("d")])
    );
    assert_eq!(c.eval("return _G", &[], &[]).await, Frame::Array(vec![]));
    assert_eq!(
        c.eval(
            "local a = {}; setmetatable(a,{__index=function() foo() end}) return a",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![])
    );
    assert_eq!(
        // RESP2 clients get doubles as bulk strings.
        c.eval("return {double=1.5}", &[], &[]).await,
        bulk("1.5")
    );
    // A self-referencing table ends in Redis's stack-limit error.
    let mut f = c
        .eval("local a = {}; local b = {a}; a[1] = b; return a", &[], &[])
        .await;
    let mut depth = 0;
    while let Frame::Array(mut v) = f {
        assert_eq!(v.len(), 1);
        f = v.remove(0);
        depth += 1;
    }
    assert!(depth > 10);
    assert_eq!(err_text(&f), "ERR reached lua stack limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_to_lua_conversions() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.cmd(&["SET", "x", "5"]).await;
    assert_eq!(
        c.eval("return type(redis.call('incr', KEYS[1]))", &["x"], &[])
            .await,
        bulk("number")
    );
    assert_eq!(
        c.eval("return type(redis.call('get', KEYS[1]))", &["x"], &[])
            .await,
        bulk("string")
    );
    assert_eq!(
        c.eval("return redis.call('get', 'nokey') == false", &[], &[])
            .await,
        int(1)
    );
    assert_eq!(
        c.eval("return redis.call('set', 'k', 'v').ok", &[], &[])
            .await,
        bulk("OK")
    );
    assert_eq!(
        c.eval("return redis.pcall('incr', 'k').err", &[], &[])
            .await,
        bulk("ERR value is not an integer or out of range")
    );
    c.cmd(&["HSET", "h", "f", "v"]).await;
    assert_eq!(
        c.eval("return redis.call('hgetall', 'h')", &[], &[]).await,
        Frame::Array(vec![bulk("f"), bulk("v")])
    );
    // RESP3 inside the script: maps become {map=...}, returned as maps.
    assert_eq!(
        c.eval(
            "redis.setresp(3); local r = redis.call('hgetall', 'h'); return r.map.f",
            &[],
            &[]
        )
        .await,
        bulk("v")
    );
    assert_eq!(
        c.eval(
            "redis.setresp(3); return redis.call('hgetall', 'h')",
            &[],
            &[]
        )
        .await,
        // A map reaches a RESP2 client as a flat array.
        Frame::Array(vec![bulk("f"), bulk("v")])
    );
    assert_eq!(
        c.eval(
            "redis.setresp(3); return redis.call('get', 'nokey') == nil",
            &[],
            &[]
        )
        .await,
        // A RESP3 boolean reaches a RESP2 client as an integer.
        int(1)
    );
    // Integers survive as arguments up to 2^53.
    assert_eq!(
        c.eval(
            "redis.call('set', 'n', 9007199254740991); return redis.call('get', 'n')",
            &[],
            &[]
        )
        .await,
        bulk("9007199254740991")
    );
    // SELECT inside a script stays inside it.
    c.cmd(&["SET", "db", "zero"]).await;
    assert_eq!(
        c.eval(
            "redis.call('select', '1'); redis.call('set', 'db', 'one'); return 1",
            &[],
            &[]
        )
        .await,
        int(1)
    );
    assert_eq!(c.cmd(&["GET", "db"]).await, bulk("zero"));
    c.cmd(&["SELECT", "1"]).await;
    assert_eq!(c.cmd(&["GET", "db"]).await, bulk("one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_texts() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.cmd(&["SET", "s", "a"]).await;
    let sha = |body: &str| elastickv_api_redis::script::sha1_hex(body.as_bytes());
    let body = "return redis.call('incr','s')";
    assert_eq!(
        err_text(&c.eval(body, &[], &[]).await),
        format!(
            "ERR value is not an integer or out of range script: {}, on @user_script:1.",
            sha(body)
        )
    );
    let body = "\nreturn redis.call('nosuch')";
    assert_eq!(
        err_text(&c.eval(body, &[], &[]).await),
        format!(
            "ERR Unknown Redis command called from script script: {}, on @user_script:2.",
            sha(body)
        )
    );
    let body = "return foo";
    assert_eq!(
        err_text(&c.eval(body, &[], &[]).await),
        format!("ERR user_script:1: Script attempted to access nonexistent global variable 'foo' script: {}, on @user_script:1.", sha(body))
    );
    for body in ["return redis.sha1hex()", "return redis.setresp(4)"] {
        let e = err_text(&c.eval(body, &[], &[]).await);
        assert!(
            e.ends_with(&format!("script: {}, on @user_script:1.", sha(body))),
            "{e}"
        );
    }
    let body = "foo=1";
    assert_eq!(
        err_text(&c.eval(body, &[], &[]).await),
        format!(
            "ERR user_script:1: Attempt to modify a readonly table script: {}, on @user_script:1.",
            sha(body)
        )
    );
    let body = "error({err='MY bad'})";
    assert_eq!(
        err_text(&c.eval(body, &[], &[]).await),
        format!("MY bad script: {}, on @user_script:1.", sha(body))
    );
    assert_eq!(
        err_text(&c.eval("return x(", &[], &[]).await),
        "ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'"
    );
    assert!(err_text(
        &c.eval("return redis.call('eval','return 1','0')", &[], &[])
            .await
    )
    .starts_with("ERR This Redis command is not allowed from script script: "));
    assert!(
        err_text(&c.eval("return redis.call('set','a')", &[], &[]).await)
            .starts_with("ERR Wrong number of args calling Redis command from script script: ")
    );
    assert!(err_text(&c.eval("return redis.call()", &[], &[]).await)
        .starts_with("ERR Please specify at least one argument for this redis lib call script: "));
    assert!(
        err_text(&c.eval("return redis.call('get', {})", &[], &[]).await).starts_with(
            "ERR Lua redis lib command arguments must be strings or integers script: "
        )
    );
    assert_eq!(
        err_text(
            &c.eval("return redis.error_reply('My Error')", &[], &[])
                .await
        ),
        "My Error"
    );
    assert_eq!(
        err_text(&c.eval("return redis.error_reply('')", &[], &[]).await),
        "ERR "
    );
    assert!(err_text(
        &c.eval("error(redis.error_reply('X\\r\\n+INJECTED'))", &[], &[])
            .await
    )
    .starts_with("ERR X  +INJECTED script:"));
    // Redis's pcall turns a caught error table into its text.
    assert_eq!(
        c.eval(
            "local ok, e = pcall(function() redis.call('incr','s') end); return {tostring(ok), e}",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![
            bulk("false"),
            bulk("ERR value is not an integer or out of range")
        ])
    );
    for trick in [
        "setmetatable(_G, {})",
        "local g = getmetatable(_G); g.__index = {}",
        "redis = function() return 1 end",
        "redis.call = function() return 1 end",
        "cjson.encode = function() return 1 end",
        "getmetatable('').__index = function() return 1 end",
    ] {
        assert!(
            err_text(&c.eval(trick, &[], &[]).await).contains("Attempt to modify a readonly table"),
            "{trick}"
        );
    }
    for name in ["loadfile", "dofile", "print"] {
        let e = err_text(&c.eval(&format!("{name}('x')"), &[], &[]).await);
        assert!(
            e.contains(&format!("nonexistent global variable '{name}'")),
            "{e}"
        );
    }
    assert!(err_text(
        &c.eval(
            "return loadstring(string.dump(function() return 1 end))()",
            &[],
            &[]
        )
        .await
    )
    .contains("attempt to call a nil value"));
    for range in ["-2, 2147483647", "0, 2147483647", "-2147483648, -2"] {
        let e = err_text(
            &c.eval(&format!("return {{unpack({{1,2,3}}, {range})}}"), &[], &[])
                .await,
        );
        assert!(e.contains("too many results to unpack"), "{e}");
    }
    assert_eq!(
        c.eval(
            "local a = {}; for i=1,7999 do a[i] = 1 end; return redis.call('lpush', 'big', unpack(a))",
            &[],
            &[]
        )
        .await,
        int(7999)
    );
    assert_eq!(
        c.eval("return {unpack({1,2,3}, 2)}", &[], &[]).await,
        Frame::Array(vec![int(2), int(3)])
    );
    assert_eq!(
        err_text(&c.cmd(&["EVAL", "return 1", "-12"]).await),
        "ERR Number of keys can't be negative"
    );
    assert_eq!(
        err_text(&c.cmd(&["EVALSHA", &"f".repeat(40), "0"]).await),
        "NOSCRIPT No matching script. Please use EVAL."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_script_commands() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert!(err_text(
        &c.cmd(&["EVAL_RO", "return redis.call('set','x','1')", "1", "x"])
            .await
    )
    .starts_with("ERR Write commands are not allowed from read-only scripts. script: "));
    assert!(err_text(
        &c.eval(
            "#!lua flags=no-writes\nreturn redis.call('set','x','1')",
            &[],
            &[]
        )
        .await
    )
    .ends_with(", on @user_script:2."));
    assert_eq!(c.eval("#!lua\nreturn 1", &[], &[]).await, int(1));
    assert!(err_text(&c.eval("#!not-lua\nreturn 1", &[], &[]).await)
        .contains("Unexpected engine in script shebang"));
    assert!(
        err_text(&c.eval("#!lua badger=data\nreturn 1", &[], &[]).await)
            .contains("Unknown lua shebang option")
    );
    assert!(
        err_text(&c.eval("#!lua flags=what?\nreturn 1", &[], &[]).await)
            .contains("Unexpected flag in script shebang")
    );

    let body = "return redis.call('get', KEYS[1])";
    let sha = elastickv_api_redis::script::sha1_hex(body.as_bytes());
    assert_eq!(c.cmd(&["SCRIPT", "LOAD", body]).await, bulk(&sha));
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", "k"]).await, bulk("v"));
    assert_eq!(
        c.cmd(&["EVALSHA", &sha.to_uppercase(), "1", "k"]).await,
        bulk("v")
    );
    assert_eq!(c.cmd(&["EVALSHA_RO", &sha, "1", "k"]).await, bulk("v"));
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha, "nope"]).await,
        Frame::Array(vec![int(1), int(0)])
    );
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH", "ASYNC"]).await, Frame::ok());
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha]).await,
        Frame::Array(vec![int(0)])
    );
    assert!(err_text(&c.cmd(&["SCRIPT", "LOAD", "return x("]).await)
        .starts_with("ERR Error compiling script"));
    assert!(err_text(&c.cmd(&["SCRIPT", "KILL"]).await).starts_with("NOTBUSY"));
    // EVAL caches its body.
    c.eval("return 2", &[], &[]).await;
    let sha2 = elastickv_api_redis::script::sha1_hex(b"return 2");
    assert_eq!(c.cmd(&["EVALSHA", &sha2, "0"]).await, int(2));
    // The time limit aborts runaway scripts.
    c.cmd(&["CONFIG", "SET", "script-time-limit", "100"]).await;
    let e = err_text(&c.eval("while true do end", &[], &[]).await);
    assert!(e.contains("time limit"), "{e}");
    let e = err_text(
        &c.eval(
            "while true do pcall(function() while true do end end) end",
            &[],
            &[],
        )
        .await,
    );
    assert!(e.contains("time limit"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.eval(
            "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')",
            &[],
            &[]
        )
        .await,
        bulk("0 -5000 -1 0.0003 1023.2 0")
    );
    assert_eq!(
        c.eval("return cjson.encode({1,2,'a/b',{x=1.5}})", &[], &[])
            .await,
        bulk("[1,2,\"a\\/b\",{\"x\":1.5}]")
    );
    assert_eq!(
        c.eval("return cjson.encode({a=cjson.null})", &[], &[])
            .await,
        bulk("{\"a\":null}")
    );
    assert_eq!(
        c.eval(
            "return cjson.decode('{\"a\":null}').a == cjson.null",
            &[],
            &[]
        )
        .await,
        int(1)
    );
    let e = err_text(&c.eval("return cjson.decode('{')", &[], &[]).await);
    assert!(e.starts_with(
        "ERR user_script:1: Expected object key string but found T_END at character 2 script:"
    ));
    assert_eq!(
        c.eval(
            "local s = cmsgpack.pack({1,2,'a'}); return {s, cmsgpack.unpack(s)[3]}",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(&[0x93, 0x01, 0x02, 0xa1, b'a'])),
            bulk("a")
        ])
    );
    assert_eq!(
        c.eval("return bit.tohex(65535, -2147483648)", &[], &[])
            .await,
        bulk("0000FFFF")
    );
    assert_eq!(
        c.eval(
            "return {bit.band(12, 10), bit.bor(1,2,4), bit.bxor(1,3), bit.lshift(1, 4), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.bnot(0), bit.rol(1, 33), bit.bswap(1)}",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![
            int(8),
            int(7),
            int(2),
            int(16),
            int(15),
            int(-4),
            int(-1),
            int(2),
            int(16777216)
        ])
    );
    assert_eq!(
        c.eval("return struct.pack('HH', 1, 2)", &[], &[]).await,
        Frame::Bulk(Bytes::from_static(&[1, 0, 2, 0]))
    );
    assert_eq!(
        c.eval(
            "local a, b, n = struct.unpack('>hB', struct.pack('>hB', -2, 200)); return {a, b, n, struct.size('>hBi4')}",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![int(-2), int(200), int(4), int(7)])
    );
    assert_eq!(
        c.eval("return redis.sha1hex('Pizza & Mandolino')", &[], &[])
            .await,
        bulk("74822d82031af7493c20eefa13bd07ec4fada82f")
    );
    // math.random is deterministic for a given seed.
    let a = c
        .eval(
            "math.randomseed(10); return tostring(math.random())",
            &[],
            &[],
        )
        .await;
    let b = c
        .eval(
            "math.randomseed(10); return tostring(math.random())",
            &[],
            &[],
        )
        .await;
    let d = c
        .eval(
            "math.randomseed(20); return tostring(math.random())",
            &[],
            &[],
        )
        .await;
    assert_eq!(a, b);
    assert_ne!(a, d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_atomic() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    // An error after a write: the script's writes are still applied as a
    // whole (Redis does not roll back), and a reader sees them all.
    let e = c
        .eval(
            "redis.call('set', KEYS[1], '1'); redis.call('set', KEYS[2], '2'); error('boom')",
            &["a", "b", "c"],
            &[],
        )
        .await;
    assert!(e.is_error());
    assert_eq!(
        c.cmd(&["MGET", "a", "b"]).await,
        Frame::Array(vec![bulk("1"), bulk("2")])
    );
    // Reads inside the script see its own writes.
    assert_eq!(
        c.eval(
            "redis.call('rpush', 'l', 'x', 'y'); redis.call('del', 'a'); return {redis.call('llen', 'l'), redis.call('exists', 'a')}",
            &[],
            &[]
        )
        .await,
        Frame::Array(vec![int(2), int(0)])
    );
    // Concurrent increments through scripts never lose an update (each
    // script is one transaction; conflicts re-run it).
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..25 {
                let r = c
                    .eval(
                        "local v = tonumber(redis.call('get', 'ctr') or '0'); redis.call('set', 'ctr', v + 1); redis.call('set', 'ctr2', v + 1); return v",
                        &[],
                        &[],
                    )
                    .await;
                assert!(matches!(r, Frame::Integer(_)), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(c.cmd(&["GET", "ctr"]).await, bulk("100"));
    assert_eq!(c.cmd(&["GET", "ctr2"]).await, bulk("100"));
    // Inside MULTI the script is one more command of the transaction.
    assert_eq!(c.cmd(&["MULTI"]).await, Frame::ok());
    c.cmd(&["SET", "m", "1"]).await;
    c.eval("return redis.call('incr', 'm')", &[], &[]).await;
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Frame::Array(vec![Frame::ok(), int(2)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let lib = "#!lua name=test\nredis.register_function('test', function(KEYS, ARGV)\n return redis.call('set', KEYS[1], ARGV[1]) \nend)\nredis.register_function{function_name='get', callback=function(KEYS) return redis.call('get', KEYS[1]) end, flags={'no-writes'}}";
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]).await, bulk("test"));
    assert!(err_text(&c.cmd(&["FUNCTION", "LOAD", lib]).await).contains("already exists"));
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", "REPLACE", lib]).await,
        bulk("test")
    );
    assert_eq!(
        c.cmd(&["FCALL", "test", "1", "k", "v"]).await,
        Frame::Simple(Bytes::from_static(b"OK"))
    );
    assert_eq!(c.cmd(&["FCALL_RO", "get", "1", "k"]).await, bulk("v"));
    assert!(err_text(&c.cmd(&["FCALL_RO", "test", "1", "k", "v"]).await).contains("write flag"));
    assert!(err_text(&c.cmd(&["FUNCTION", "LOAD", "return 1"]).await)
        .contains("Missing library metadata"));
    // Errors inside a function read as in EVAL (no Rust traceback).
    let bad = "#!lua name=bad\nredis.register_function('bad', function(KEYS, ARGV)\n local x = redis.sha1hex() return x \nend)";
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", bad]).await, bulk("bad"));
    let e = err_text(&c.cmd(&["FCALL", "bad", "0"]).await);
    assert!(
        e.starts_with("ERR wrong number of arguments script: bad, on @user_function:3."),
        "{e}"
    );
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]).await, Frame::ok());
    assert_eq!(
        err_text(&c.cmd(&["FCALL", "test", "0"]).await),
        "ERR Function not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_may_not_block_on_streams() {
    let (_s, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("XGROUP CREATE s g $ MKSTREAM").await, Frame::ok());
    assert_eq!(
        err_text(
            &c.eval(
                "return redis.pcall('xread','BLOCK',0,'STREAMS','s','$')",
                &["s"],
                &[]
            )
            .await
        ),
        "ERR xread command is not allowed with BLOCK option from scripts"
    );
    assert_eq!(
        err_text(
            &c.eval(
                "return redis.pcall('XREADGROUP','GROUP','g','c','BLOCK',0,'STREAMS','s','>')",
                &["s"],
                &[]
            )
            .await
        ),
        "ERR XREADGROUP command is not allowed with BLOCK option from scripts"
    );
    // Without BLOCK they read as usual (nothing there yet).
    assert_eq!(
        c.eval("return redis.pcall('xread','STREAMS','s','$')", &["s"], &[])
            .await,
        Frame::Null
    );
}

/// Scripts that write one hot key from many clients: each one runs, none
/// gives up with a conflict, and no increment is lost (scripts on the
/// same first key queue on its stripe instead of racing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scripts_on_one_key_all_succeed() {
    let (_store, addr, _stop) = start().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..20 {
                let r = c
                    .cmd(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "hot"])
                    .await;
                assert!(matches!(r, Frame::Integer(_)), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("GET hot").await, bulk("320"));
}
