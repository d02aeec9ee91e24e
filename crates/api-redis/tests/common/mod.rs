//! Shared by the loopback tests: a minimal RESP client over TCP and a
//! server over the in-memory store. Each test binary uses a different
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use elastickv_api_redis::memstore::MemStore;
use elastickv_api_redis::resp::{parse_frame, Limits};
use elastickv_api_redis::{serve, Frame, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One connection.
pub struct Client {
    pub conn: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            conn: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// Sends one command (binary-safe arguments) without reading.
    pub async fn send_args<S: AsRef<[u8]>>(&mut self, args: &[S]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.conn.write_all(&out).await.expect("write");
    }

    /// Sends a space-separated command without reading.
    pub async fn send(&mut self, line: &str) {
        let args: Vec<&str> = line.split(' ').collect();
        self.send_args(&args).await;
    }

    /// One command, one reply.
    pub async fn cmd<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Frame {
        self.send_args(args).await;
        self.read().await
    }

    /// Reads one more reply or pushed message.
    pub async fn read(&mut self) -> Frame {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf, &Limits::default()).expect("reply") {
                self.buf.drain(..used);
                return f;
            }
            let mut chunk = vec![0u8; 65536];
            let n = self.conn.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A reply within `d`, or `None`.
    pub async fn read_within(&mut self, d: Duration) -> Option<Frame> {
        tokio::time::timeout(d, self.read()).await.ok()
    }

    /// Splits on spaces (no quoting needed in these tests).
    pub async fn run(&mut self, line: &str) -> Frame {
        self.send(line).await;
        self.read().await
    }

    /// Runs `line` and fails unless the reply is an error starting with
    /// `prefix`.
    pub async fn err(&mut self, line: &str, prefix: &str) {
        match self.run(line).await {
            Frame::Error(e) => assert!(
                e.starts_with(prefix.as_bytes()),
                "{line}: got error {:?}, want {prefix:?}",
                String::from_utf8_lossy(&e)
            ),
            other => panic!("{line}: got {other:?}, want error {prefix:?}"),
        }
    }

    /// EVAL `script` with `keys` and `args`.
    pub async fn eval(&mut self, script: &str, keys: &[&str], args: &[&str]) -> Frame {
        let n = keys.len().to_string();
        let mut argv: Vec<&str> = vec!["EVAL", script, &n];
        argv.extend_from_slice(keys);
        argv.extend_from_slice(args);
        self.cmd(&argv).await
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn bulks(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

pub fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

/// A server over a fresh in-memory store with `config`; dropping the
/// sender stops it.
pub async fn start_with(config: ServerConfig) -> (MemStore, SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = watch::channel(false);
    let store = MemStore::new();
    tokio::spawn(serve(Arc::new(store.clone()), listener, config, stop_rx));
    (store, addr, stop)
}

/// [`start_with`] the default configuration.
pub async fn start() -> (MemStore, SocketAddr, watch::Sender<bool>) {
    start_with(ServerConfig::default()).await
}
