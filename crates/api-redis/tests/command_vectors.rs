//! Replays `tests/data/command_vectors.txt` — ~700 commands with the raw
//! replies a real redis-server 7.0.15 gave (recorded by
//! `tests/data/gen_command_vectors.py`) — against the Redis front end over
//! the in-memory store, and checks every reply byte for byte (or as a
//! multiset where Redis's hash-table order is arbitrary).

use std::sync::Arc;

use elastickv_api_redis::memstore::MemStore;
use elastickv_api_redis::resp::{parse_frame, Limits};
use elastickv_api_redis::{serve, Frame, Protocol, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Shell-like split, the same rules as the generator.
fn split(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let (mut out, mut cur, mut quoted, mut have) = (Vec::new(), Vec::new(), false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if quoted {
            if c == b'\\' && i + 1 < b.len() {
                if b[i + 1] == b'x' {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
                    cur.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 4;
                    continue;
                }
                cur.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                quoted = false;
            } else {
                cur.push(c);
            }
        } else if c == b'"' {
            quoted = true;
            have = true;
        } else if c == b' ' {
            if !cur.is_empty() || have {
                out.push(std::mem::take(&mut cur));
            }
            have = false;
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() || have {
        out.push(cur);
    }
    out
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (Frame, Vec<u8>) {
    let limits = Limits::default();
    loop {
        if let Some((frame, used)) = parse_frame(buf, &limits).expect("valid reply") {
            let raw = buf[..used].to_vec();
            buf.drain(..used);
            return (frame, raw);
        }
        let mut chunk = vec![0u8; 65536];
        let n = conn.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Top-level elements of an aggregate, each re-encoded, sorted.
fn multiset(f: &Frame, proto: Protocol) -> Vec<Vec<u8>> {
    let items: Vec<Frame> = match f {
        Frame::Array(v) | Frame::Set(v) => v.clone(),
        Frame::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        other => vec![other.clone()],
    };
    let mut out: Vec<Vec<u8>> = items.iter().map(|i| i.to_bytes(proto).to_vec()).collect();
    // SCAN-style replies: sort the inner list.
    if let [Frame::Bulk(_), Frame::Array(inner)] = items.as_slice() {
        let mut v: Vec<Vec<u8>> = inner.iter().map(|i| i.to_bytes(proto).to_vec()).collect();
        v.sort();
        out = vec![items[0].to_bytes(proto).to_vec()];
        out.extend(v);
    }
    out.sort();
    out
}

#[tokio::test]
async fn command_vectors_match_redis() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_stop, stop_rx) = watch::channel(false);
    let store = Arc::new(MemStore::new());
    tokio::spawn(serve(store, listener, ServerConfig::default(), stop_rx));
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    let mut proto = Protocol::Resp2;
    let data = include_str!("data/command_vectors.txt");
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in data.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (mode, cmd, hex) = (
            parts.next().expect("mode"),
            parts.next().expect("cmd"),
            parts.next().expect("reply"),
        );
        let args = split(cmd);
        conn.write_all(&encode(&args)).await.expect("write");
        let (got, raw) = read_reply(&mut conn, &mut buf).await;
        if args[0].eq_ignore_ascii_case(b"HELLO") {
            proto = if args.get(1).map(|v| v.as_slice()) == Some(b"3") {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
        }
        let want_raw = unhex(hex);
        let ok = match mode {
            "i" => true,
            "s" => {
                let (want, _) = parse_frame(&want_raw, &Limits::default())
                    .expect("valid")
                    .expect("complete");
                multiset(&got, proto) == multiset(&want, proto)
            }
            _ => raw == want_raw,
        };
        checked += 1;
        if !ok {
            failures.push(format!(
                "{cmd}\n    want {:?}\n    got  {:?}",
                String::from_utf8_lossy(&want_raw),
                String::from_utf8_lossy(&raw)
            ));
        }
    }
    assert!(checked > 600, "only {checked} vectors");
    assert!(
        failures.is_empty(),
        "{} of {checked} replies differ from Redis:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
