//! End-to-end tests of the server skeleton on a loopback port: driven by
//! the real `redis-cli` (from Debian's `redis-tools`; the test fails with
//! instructions if it is missing, since the project's test script installs
//! it) and by raw TCP for pipelining, protocol errors and hostile input.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use elastickv_api_redis::resp::{parse_frame, Limits};
use elastickv_api_redis::{ClientState, Command, CommandHandler, Frame, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A tiny in-memory data plane: GET/SET/DEL/DBSIZE and EXEC.
#[derive(Default)]
struct MemHandler {
    data: Mutex<HashMap<Bytes, Bytes>>,
}

impl MemHandler {
    fn run(&self, cmd: &Command) -> Frame {
        let argv = cmd.argv();
        let Ok(mut data) = self.data.lock() else {
            return Frame::error("poisoned");
        };
        match cmd.name_lower().as_str() {
            "get" => data
                .get(&argv[1])
                .cloned()
                .map(Frame::Bulk)
                .unwrap_or(Frame::Null),
            "set" => {
                data.insert(argv[1].clone(), argv[2].clone());
                Frame::ok()
            }
            "del" => Frame::Integer(
                argv[1..]
                    .iter()
                    .filter(|k| data.remove(*k).is_some())
                    .count() as i64,
            ),
            "dbsize" => Frame::Integer(data.len() as i64),
            "lrange" => {
                // A deliberately large reply for the slow-reader test.
                Frame::Array((0..2000).map(|_| Frame::bulk(vec![b'x'; 1024])).collect())
            }
            other => Frame::error(format!("not implemented in test handler: {other}")),
        }
    }
}

#[async_trait]
impl CommandHandler for MemHandler {
    async fn handle(&self, client: &mut ClientState, cmd: Command) -> Frame {
        if cmd.spec().is_none() {
            return Frame::error("server did not attach the command spec");
        }
        if cmd.is("exec") {
            let queued = client.take_multi().map(|m| m.queue).unwrap_or_default();
            return Frame::Array(queued.iter().map(|c| self.run(c)).collect());
        }
        self.run(&cmd)
    }
}

struct TestServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: ServerConfig) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = watch::channel(false);
    let server = Server::new(config, Arc::new(MemHandler::default()));
    let task = tokio::spawn(async move { server.serve(listener, rx).await });
    TestServer {
        addr,
        shutdown: tx,
        task,
    }
}

impl TestServer {
    async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within the grace period")
            .expect("join")
            .expect("serve ok");
    }
}

fn redis_cli() -> String {
    let found = Process::new("redis-cli").arg("--version").output();
    match found {
        Ok(out) if out.status.success() => "redis-cli".to_string(),
        _ => panic!(
            "redis-cli not found: these tests drive the server with the real Redis client. \
             Install it with `apt-get install -y redis-tools` (the project's test script does)."
        ),
    }
}

/// Runs redis-cli against the server (blocking; call via spawn_blocking).
fn cli(addr: SocketAddr, args: &[&str], stdin: Option<Vec<u8>>) -> String {
    let mut cmd = Process::new(redis_cli());
    cmd.arg("-h")
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string());
    cmd.args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn redis-cli");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(&input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("redis-cli output");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

async fn cli_async(addr: SocketAddr, args: &[&str], stdin: Option<Vec<u8>>) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(addr, &refs, stdin)
    })
    .await
    .expect("join")
}

/// Reads frames until `n` replies are parsed (10 s timeout).
async fn read_replies(stream: &mut TcpStream, n: usize) -> Vec<Frame> {
    let limits = Limits::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        while let Some((f, len)) = parse_frame(&buf, &limits).expect("valid reply") {
            out.push(f);
            buf.drain(..len);
            if out.len() == n {
                return out;
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(
            read > 0,
            "connection closed after {} of {n} replies",
            out.len()
        );
        buf.extend_from_slice(&chunk[..read]);
    }
    out
}

/// Reads everything until EOF (10 s timeout), proving the server closed.
async fn read_to_eof(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("server closes the connection")
        .ok();
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_ping_echo_hello_set_get() {
    let _ = redis_cli();
    let srv = start(ServerConfig::default()).await;
    let a = srv.addr;
    assert_eq!(cli_async(a, &["PING"], None).await.trim(), "PONG");
    assert_eq!(
        cli_async(a, &["ECHO", "hello world"], None).await.trim(),
        "hello world"
    );
    assert_eq!(cli_async(a, &["SET", "k", "v"], None).await.trim(), "OK");
    assert_eq!(cli_async(a, &["GET", "k"], None).await.trim(), "v");
    let hello = cli_async(a, &["-3", "HELLO", "3"], None).await;
    for needle in [
        "server",
        "redis",
        "proto",
        "3",
        "mode",
        "standalone",
        "role",
        "master",
    ] {
        assert!(
            hello.contains(needle),
            "HELLO 3 output lacks {needle}: {hello}"
        );
    }
    let hello2 = cli_async(a, &["HELLO", "2"], None).await;
    assert!(hello2.contains("proto") && hello2.contains('2'), "{hello2}");
    let unknown = cli_async(a, &["FOO", "bar"], None).await;
    assert!(
        unknown.contains("ERR unknown command 'FOO', with args beginning with: 'bar'"),
        "{unknown}"
    );
    let arity = cli_async(a, &["GET"], None).await;
    assert!(
        arity.contains("ERR wrong number of arguments for 'get' command"),
        "{arity}"
    );
    let count = cli_async(a, &["COMMAND", "COUNT"], None).await;
    assert!(
        count.trim().parse::<u32>().expect("integer") > 150,
        "{count}"
    );
    let info = cli_async(a, &["COMMAND", "INFO", "get"], None).await;
    assert!(
        info.contains("readonly") && info.contains("@string"),
        "{info}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_pipe_mode() {
    let _ = redis_cli();
    let srv = start(ServerConfig::default()).await;
    let mut input = Vec::new();
    for i in 0..1000 {
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\nkey:{i}\r\n$1\r\nv\r\n",
                4 + i.to_string().len()
            )
            .as_bytes(),
        );
    }
    let out = cli_async(srv.addr, &["--pipe"], Some(input)).await;
    assert!(out.contains("errors: 0, replies: 1000"), "{out}");
    assert_eq!(cli_async(srv.addr, &["DBSIZE"], None).await.trim(), "1000");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pipelining_keeps_order() {
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    let mut req = Vec::new();
    for i in 0..200 {
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{i}\r\n",
                i.to_string().len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
    req.extend_from_slice(b"PING\r\nECHO \"a b\"\r\n");
    s.write_all(&req).await.expect("write");
    let replies = read_replies(&mut s, 402).await;
    for i in 0..200 {
        assert_eq!(replies[2 * i], Frame::ok());
        assert_eq!(replies[2 * i + 1], Frame::bulk(i.to_string()));
    }
    assert_eq!(replies[400], Frame::simple("PONG"));
    assert_eq!(replies[401], Frame::bulk("a b"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_hello_and_reply_forms() {
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"GET missing\r\nHELLO 3\r\nGET missing\r\nCLIENT SETNAME me\r\nCLIENT GETNAME\r\nSELECT 16\r\nSELECT x\r\nSELECT 0\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut s, 8).await;
    assert_eq!(r[0], Frame::Null);
    let Frame::Map(pairs) = &r[1] else {
        panic!("HELLO 3 replies with a map: {:?}", r[1])
    };
    assert!(pairs.contains(&(Frame::from("proto"), Frame::Integer(3))));
    assert!(pairs.contains(&(Frame::from("server"), Frame::from("redis"))));
    assert_eq!(r[2], Frame::Null);
    assert_eq!(r[3], Frame::ok());
    assert_eq!(r[4], Frame::from("me"));
    assert_eq!(r[5], Frame::error("DB index is out of range"));
    assert_eq!(
        r[6],
        Frame::error("value is not an integer or out of range")
    );
    assert_eq!(r[7], Frame::ok());
    // Raw bytes: RESP3 null is `_`.
    s.write_all(b"GET missing\r\n").await.expect("write");
    let mut b = [0u8; 3];
    s.read_exact(&mut b).await.expect("read");
    assert_eq!(&b, b"_\r\n");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_password() {
    let config = ServerConfig {
        password: Some(Bytes::from_static(b"s3cret")),
        ..ServerConfig::default()
    };
    let srv = start(config).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"PING\r\nGET k\r\nAUTH wrong\r\nAUTH default wrong\r\nHELLO 3\r\nAUTH s3cret\r\nPING\r\nHELLO 3 AUTH default s3cret SETNAME x\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut s, 8).await;
    assert_eq!(r[0], Frame::error("-NOAUTH Authentication required."));
    assert_eq!(r[1], Frame::error("-NOAUTH Authentication required."));
    assert_eq!(
        r[2],
        Frame::error("-WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        r[3],
        Frame::error("-WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert!(
        matches!(&r[4], Frame::Error(e) if e.starts_with(b"NOAUTH HELLO must be called")),
        "{:?}",
        r[4]
    );
    assert_eq!(r[5], Frame::ok());
    assert_eq!(r[6], Frame::simple("PONG"));
    assert!(matches!(r[7], Frame::Map(_)));
    // Unauthenticated clients may not send big requests (Redis 7.0 rule).
    let mut s2 = TcpStream::connect(srv.addr).await.expect("connect");
    s2.write_all(b"*11\r\n").await.expect("write");
    let text = read_to_eof(&mut s2).await;
    assert_eq!(
        text,
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    // AUTH without a configured password.
    srv.stop().await;
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"AUTH x\r\nAUTH default anything\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut s, 2).await;
    assert!(
        matches!(&r[0], Frame::Error(e) if e.starts_with(b"ERR AUTH <password> called without any password configured"))
    );
    assert_eq!(r[1], Frame::ok());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_exec_discard() {
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(
        b"EXEC\r\nMULTI\r\nMULTI\r\nSET a 1\r\nGET a\r\nEXEC\r\nMULTI\r\nSET b 2\r\nNOSUCH\r\nEXEC\r\nGET b\r\nMULTI\r\nDISCARD\r\nDISCARD\r\n",
    )
    .await
    .expect("write");
    let r = read_replies(&mut s, 14).await;
    assert_eq!(r[0], Frame::error("EXEC without MULTI"));
    assert_eq!(r[1], Frame::ok());
    assert_eq!(r[2], Frame::error("MULTI calls can not be nested"));
    assert_eq!(r[3], Frame::simple("QUEUED"));
    assert_eq!(r[4], Frame::simple("QUEUED"));
    assert_eq!(r[5], Frame::Array(vec![Frame::ok(), Frame::from("1")]));
    assert_eq!(r[6], Frame::ok());
    assert_eq!(r[7], Frame::simple("QUEUED"));
    assert!(matches!(&r[8], Frame::Error(e) if e.starts_with(b"ERR unknown command 'NOSUCH'")));
    assert_eq!(
        r[9],
        Frame::error("-EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(r[10], Frame::Null, "aborted transaction must not run");
    assert_eq!(r[11], Frame::ok());
    assert_eq!(r[12], Frame::ok());
    assert_eq!(r[13], Frame::error("DISCARD without MULTI"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_queue_is_bounded() {
    let config = ServerConfig {
        max_multi_bytes: 1000,
        ..ServerConfig::default()
    };
    let srv = start(config).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    let mut req = b"MULTI\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(b"SET k 0123456789012345678901234567890123456789\r\n");
    }
    req.extend_from_slice(b"EXEC\r\nGET k\r\nSELECT 99999999999\r\nCLIENT LIST ID 0\r\n");
    s.write_all(&req).await.expect("write");
    let r = read_replies(&mut s, 25).await;
    assert_eq!(r[1], Frame::simple("QUEUED"));
    assert!(
        r[1..21].contains(&Frame::error("transaction too large")),
        "{r:?}"
    );
    assert_eq!(
        r[21],
        Frame::error("-EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(r[22], Frame::Null);
    assert_eq!(
        r[23],
        Frame::error("value is out of range, value must between -2147483648 and 2147483647")
    );
    assert_eq!(r[24], Frame::bulk(""));
    srv.stop().await;
}

/// Every hostile payload gets its protocol error and a closed connection,
/// while a bystander connection keeps being served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_closes_only_the_offender() {
    let srv = start(ServerConfig::default()).await;
    let mut bystander = TcpStream::connect(srv.addr).await.expect("connect");
    let garbage_no_newline: Vec<u8> = std::iter::repeat_n(b'A', 70 * 1024).collect();
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend_from_slice(b"*1\r\n");
    }
    let mut huge_count = b"*".to_vec();
    huge_count.extend(std::iter::repeat_n(b'9', 70 * 1024));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"*1\r\n$999999999999\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*-\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (deep, "-ERR Protocol error: expected '$', got '*'\r\n"),
        (
            garbage_no_newline,
            "-ERR Protocol error: too big inline request\r\n",
        ),
        (
            huge_count,
            "-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            b"SET \"unterminated\r\n".to_vec(),
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"PING\r\n*1\r\nfoo\r\n".to_vec(),
            "+PONG\r\n-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
    ];
    for (payload, expected) in cases {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        // The server may close before we finish writing a long payload.
        let _ = s.write_all(&payload).await;
        let got = read_to_eof(&mut s).await;
        assert_eq!(
            got,
            expected,
            "payload starting {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(24)])
        );
        bystander
            .write_all(b"PING\r\n")
            .await
            .expect("bystander write");
        assert_eq!(
            read_replies(&mut bystander, 1).await,
            vec![Frame::simple("PONG")]
        );
    }
    // Binary junk and random bytes: some error or close, never a hang or
    // a crash, and the server keeps serving.
    for seed in 0u64..20 {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let junk: Vec<u8> = (0..4096)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u8
            })
            .collect();
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        let _ = s.write_all(&junk).await;
        let _ = s.shutdown().await;
        let _ = read_to_eof(&mut s).await;
    }
    bystander
        .write_all(b"PING\r\n")
        .await
        .expect("bystander write");
    assert_eq!(
        read_replies(&mut bystander, 1).await,
        vec![Frame::simple("PONG")]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_disconnected() {
    let config = ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let srv = start(config).await;
    let mut slow = TcpStream::connect(srv.addr).await.expect("connect");
    // ~2 MB of replies per command, never read: socket buffers fill, the
    // flush stalls, and the server drops the client after the timeout.
    let mut req = Vec::new();
    for _ in 0..20 {
        req.extend_from_slice(b"LRANGE l 0 -1\r\n");
    }
    slow.write_all(&req).await.expect("write");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut other = TcpStream::connect(srv.addr).await.expect("connect");
    other.write_all(b"CLIENT LIST\r\n").await.expect("write");
    let r = read_replies(&mut other, 1).await;
    let Frame::Bulk(list) = &r[0] else {
        panic!("{:?}", r[0])
    };
    assert_eq!(
        String::from_utf8_lossy(list).lines().count(),
        1,
        "only the new client remains: {list:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_and_client_list() {
    let config = ServerConfig {
        max_clients: 2,
        ..ServerConfig::default()
    };
    let srv = start(config).await;
    let mut a = TcpStream::connect(srv.addr).await.expect("connect");
    let mut b = TcpStream::connect(srv.addr).await.expect("connect");
    a.write_all(b"CLIENT SETNAME alpha\r\nCLIENT ID\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut a, 2).await;
    assert_eq!(r[0], Frame::ok());
    b.write_all(b"CLIENT LIST\r\nCLIENT INFO\r\nCLIENT SETNAME \"bad name\"\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut b, 3).await;
    let Frame::Bulk(list) = &r[0] else {
        panic!("{:?}", r[0])
    };
    let list = String::from_utf8_lossy(list);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("name=alpha"), "{list}");
    assert!(
        list.lines()
            .all(|l| l.starts_with("id=") && l.contains(" addr=127.0.0.1:")),
        "{list}"
    );
    let Frame::Bulk(info) = &r[1] else {
        panic!("{:?}", r[1])
    };
    assert!(String::from_utf8_lossy(info).contains("cmd=client|info"));
    assert_eq!(
        r[2],
        Frame::error("Client names cannot contain spaces, newlines or special characters.")
    );
    let mut c = TcpStream::connect(srv.addr).await.expect("connect");
    assert_eq!(
        read_to_eof(&mut c).await,
        "-ERR max number of clients reached\r\n"
    );
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = TcpStream::connect(srv.addr).await.expect("connect");
    d.write_all(b"PING\r\n").await.expect("write");
    assert_eq!(read_replies(&mut d, 1).await, vec![Frame::simple("PONG")]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_reset_and_shutdown() {
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"HELLO 3\r\nCLIENT SETNAME n\r\nRESET\r\nCLIENT GETNAME\r\nQUIT\r\nPING\r\n")
        .await
        .expect("write");
    let r = read_replies(&mut s, 5).await;
    assert_eq!(r[2], Frame::simple("RESET"));
    assert_eq!(r[3], Frame::Null);
    assert_eq!(r[4], Frame::ok());
    assert_eq!(read_to_eof(&mut s).await, "", "nothing after QUIT");
    // An idle open connection does not block shutdown.
    let _idle = TcpStream::connect(srv.addr).await.expect("connect");
    srv.stop().await;
}

#[tokio::test]
async fn client_reply_off_on_skip() {
    let srv = start(ServerConfig::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(
        b"CLIENT REPLY SKIP\r\nECHO a\r\nECHO b\r\nCLIENT REPLY OFF\r\nECHO c\r\nCLIENT REPLY SKIP\r\nECHO d\r\nCLIENT REPLY ON\r\nECHO e\r\nCLIENT REPLY MAYBE\r\n",
    )
    .await
    .expect("write");
    let r = read_replies(&mut s, 4).await;
    assert_eq!(r[0], Frame::from("b"));
    assert_eq!(r[1], Frame::ok());
    assert_eq!(r[2], Frame::from("e"));
    assert_eq!(r[3], Frame::error("syntax error"));
}
