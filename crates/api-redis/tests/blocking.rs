//! Blocking commands over the in-memory store through a real server on a
//! loopback port: wake-ups by writes, the order blocked clients are served
//! in, timeouts, MULTI, WRONGTYPE while blocked, hang-ups, INFO and
//! CLIENT LIST while blocked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elastickv_api_redis::memstore::MemStore;
use elastickv_api_redis::{serve, Frame, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

mod common;
use common::*;

async fn start_detached() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve(
        Arc::new(MemStore::new()),
        listener,
        ServerConfig::default(),
        stop_rx,
    ));
    // Keep the server running for the whole test process.
    std::mem::forget(stop);
    addr
}

async fn info_blocked(c: &mut Client) -> u64 {
    let Frame::Bulk(b) = c.run("INFO clients").await else {
        panic!("INFO is a bulk string");
    };
    let text = String::from_utf8_lossy(&b).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("blocked_clients field")
}

async fn wait_blocked(c: &mut Client, n: u64) {
    for _ in 0..200 {
        if info_blocked(c).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached {n} blocked clients");
}

#[tokio::test]
async fn blpop_is_woken_by_a_push_and_pushers_see_it_served() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    b.send("BLPOP l1 l2 0").await;
    wait_blocked(&mut r, 1).await;
    let Frame::Bulk(list) = r.run("CLIENT LIST").await else {
        panic!("CLIENT LIST is a bulk string");
    };
    assert!(
        String::from_utf8_lossy(&list).contains("flags=b"),
        "blocked client is flagged"
    );
    assert_eq!(r.run("RPUSH l2 a b").await, Frame::Integer(2));
    // Served before the pusher got its reply (as in Redis).
    assert_eq!(r.run("LRANGE l2 0 -1").await, bulks(&["b"]));
    assert_eq!(b.read().await, bulks(&["l2", "a"]));
    assert_eq!(info_blocked(&mut r).await, 0);
}

#[tokio::test]
async fn blocked_clients_are_served_first_come_first_served() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut c = Client::connect(addr).await;
        c.send("BRPOP q 0").await;
        wait_blocked(&mut r, i + 1).await;
        clients.push(c);
    }
    // One element at a time: each goes to the earliest still waiting.
    for (i, c) in clients.iter_mut().enumerate() {
        let v = format!("v{i}");
        r.run(&format!("LPUSH q {v}")).await;
        assert_eq!(c.read().await, bulks(&["q", &v]));
    }
    // Several at once: served in order too.
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    a.send("BLPOP z 0").await;
    wait_blocked(&mut r, 1).await;
    b.send("BLPOP z 0").await;
    wait_blocked(&mut r, 2).await;
    r.run("RPUSH z first second").await;
    assert_eq!(a.read().await, bulks(&["z", "first"]));
    assert_eq!(b.read().await, bulks(&["z", "second"]));
}

#[tokio::test]
async fn timeouts_and_their_replies() {
    let addr = start_detached().await;
    let mut c = Client::connect(addr).await;
    let t = Instant::now();
    assert_eq!(c.run("BZPOPMIN zs 0.2").await, Frame::NullArray);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(c.run("BRPOPLPUSH a b 0.01").await, Frame::NullArray);
    assert_eq!(c.run("BLMPOP 0.01 2 a b LEFT").await, Frame::NullArray);
    assert_eq!(
        c.run("BLPOP a -1").await,
        Frame::error("timeout is negative")
    );
    assert_eq!(
        c.run("BLPOP a x").await,
        Frame::error("timeout is not a float or out of range")
    );
    assert_eq!(
        c.run("BLMOVE a b UP LEFT 0").await,
        Frame::error("syntax error")
    );
    // Inside MULTI nothing blocks.
    assert_eq!(c.run("MULTI").await, Frame::ok());
    for cmd in ["BLPOP a 0", "BRPOPLPUSH a b 0", "BZPOPMAX zs 0"] {
        assert_eq!(c.run(cmd).await, Frame::simple("QUEUED"));
    }
    assert_eq!(
        c.run("EXEC").await,
        Frame::Array(vec![Frame::NullArray, Frame::Null, Frame::NullArray])
    );
    // BZPOPMIN with data answers at once.
    c.run("ZADD zs 2 b 1 a").await;
    assert_eq!(c.run("BZPOPMIN zs 0").await, bulks(&["zs", "a", "1"]));
    c.run("ZADD zs 3 c").await;
    let Frame::Array(r) = c.run("BZMPOP 0 1 zs MAX COUNT 5").await else {
        panic!("BZMPOP answers an array");
    };
    assert_eq!(r[0], bulk("zs"));
}

#[tokio::test]
async fn a_key_of_another_type_does_not_serve_a_blocked_client() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    assert_eq!(r.run("SET s x").await, Frame::ok());
    assert!(b.run("BLPOP s 0").await.is_error(), "WRONGTYPE at once");
    r.run("DEL s").await;
    b.send("BLPOP s 0").await;
    wait_blocked(&mut r, 1).await;
    r.run("SET s x").await;
    assert_eq!(b.read_within(Duration::from_millis(300)).await, None);
    r.run("DEL s").await;
    r.run("LPUSH s v").await;
    assert_eq!(b.read().await, bulks(&["s", "v"]));
    // A wrong-type destination is an error once something arrives.
    r.run("SET dst x").await;
    b.send("BLMOVE src dst LEFT LEFT 0").await;
    wait_blocked(&mut r, 1).await;
    r.run("RPUSH src e").await;
    assert!(b.read().await.is_error());
    assert_eq!(r.run("LRANGE src 0 -1").await, bulks(&["e"]));
}

#[tokio::test]
async fn chained_moves_and_exec_wake_waiters() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    a.send("BLMOVE l1 l2 LEFT LEFT 0").await;
    wait_blocked(&mut r, 1).await;
    b.send("BLMOVE l2 l3 LEFT LEFT 0").await;
    wait_blocked(&mut r, 2).await;
    assert_eq!(r.run("MULTI").await, Frame::ok());
    r.run("RPUSH l1 x").await;
    assert_eq!(r.run("EXEC").await, Frame::Array(vec![Frame::Integer(1)]));
    assert_eq!(a.read().await, bulk("x"));
    assert_eq!(b.read().await, bulk("x"));
    assert_eq!(r.run("LRANGE l3 0 -1").await, bulks(&["x"]));
    assert_eq!(r.run("EXISTS l1 l2").await, Frame::Integer(0));
}

#[tokio::test]
async fn a_client_that_hangs_up_stops_waiting() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    b.send("BLPOP gone 0").await;
    wait_blocked(&mut r, 1).await;
    drop(b);
    wait_blocked(&mut r, 0).await;
    // Nobody pops what is pushed afterwards.
    r.run("RPUSH gone v").await;
    assert_eq!(r.run("LLEN gone").await, Frame::Integer(1));
}

#[tokio::test]
async fn client_unblock_releases_a_blocked_client() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    let Frame::Integer(id) = b.run("CLIENT ID").await else {
        panic!("CLIENT ID is an integer");
    };
    assert_eq!(
        r.run(&format!("CLIENT UNBLOCK {id}")).await,
        Frame::Integer(0),
        "not blocked yet"
    );
    b.send("BLPOP u 0").await;
    wait_blocked(&mut r, 1).await;
    assert_eq!(
        r.run(&format!("CLIENT UNBLOCK {id} FOO")).await,
        Frame::error("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    );
    assert_eq!(
        r.run(&format!("CLIENT UNBLOCK {id}")).await,
        Frame::Integer(1)
    );
    assert_eq!(b.read().await, Frame::NullArray);
    b.send("BZPOPMIN u2 0").await;
    wait_blocked(&mut r, 1).await;
    assert_eq!(
        r.run(&format!("CLIENT UNBLOCK {id} ERROR")).await,
        Frame::Integer(1)
    );
    assert_eq!(
        b.read().await,
        Frame::error("-UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    assert_eq!(info_blocked(&mut r).await, 0);
}

/// A DEL written right behind a blocking XREADGROUP, on another
/// connection, comes second, as in Redis: the reader blocks on the stream
/// as it was when it arrived and is then told the key is gone, rather
/// than answering as if the DEL had come first ("NOGROUP No such key").
/// The handler's yields before a blocking command's first run let the DEL
/// commit first; the first run's snapshot is taken before them.
#[tokio::test]
async fn a_del_right_behind_a_blocking_xreadgroup_unblocks_it() {
    let addr = start_detached().await;
    let mut r = Client::connect(addr).await;
    for round in 0..20 {
        r.run("DEL s").await;
        r.run("XADD s 1-1 f v").await;
        r.run("XGROUP CREATE s g $").await;
        let mut b = Client::connect(addr).await;
        b.send("XREADGROUP GROUP g alice BLOCK 0 STREAMS s >").await;
        assert_eq!(r.run("DEL s").await, Frame::Integer(1));
        let reply = b
            .read_within(Duration::from_secs(5))
            .await
            .expect("the blocked reader is answered");
        match reply {
            Frame::Error(e) => {
                let e = String::from_utf8_lossy(&e);
                assert!(
                    e.contains("no longer exists"),
                    "round {round}: expected the UNBLOCKED error, got {e}"
                );
            }
            other => panic!("round {round}: expected an error, got {other:?}"),
        }
    }
}
