//! Behaviour of the Redis layer over the in-memory store that golden
//! vectors cannot show: expiry as time passes (the store's clock is moved,
//! nothing sleeps), version isolation of re-created collections, WATCH
//! conflicts between clients, conflict retries, paging over large
//! collections, SCAN completeness, reply limits, and randomized model
//! checks of the list and sorted-set encodings.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use elastickv_api_redis::{Frame, ServerConfig};
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

mod common;
use common::*;

fn strings(f: &Frame) -> Vec<String> {
    match f {
        Frame::Array(v) | Frame::Set(v) => v
            .iter()
            .map(|x| match x {
                Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[tokio::test]
async fn keys_expire_as_time_passes() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("SET k v PX 1500").await, Frame::ok());
    assert_eq!(c.run("HSET h f v").await, int(1));
    assert_eq!(c.run("EXPIRE h 10").await, int(1));
    assert_eq!(c.run("SET keep v").await, Frame::ok());
    assert_eq!(c.run("DBSIZE").await, int(3));
    store.advance_ms(1000);
    assert_eq!(c.run("GET k").await, bulk("v"));
    store.advance_ms(600);
    assert_eq!(c.run("GET k").await, Frame::Null);
    assert_eq!(c.run("EXISTS k").await, int(0));
    assert_eq!(c.run("TTL k").await, int(-2));
    assert_eq!(c.run("DBSIZE").await, int(2));
    let ttl = c.run("TTL h").await;
    assert!(matches!(ttl, Frame::Integer(8..=9)), "{ttl:?}");
    store.advance_ms(10_000);
    assert_eq!(c.run("HGET h f").await, Frame::Null);
    assert_eq!(strings(&c.run("KEYS *").await), vec!["keep"]);
    let scan = c.run("SCAN 0").await;
    assert_eq!(
        scan,
        Frame::Array(vec![bulk("0"), bulks(&["keep"])]),
        "expired keys are not scanned"
    );
    // An expired collection is replaced by a fresh one: no old fields.
    assert_eq!(c.run("HSET h g w").await, int(1));
    assert_eq!(c.run("HGETALL h").await, bulks(&["g", "w"]));
    assert_eq!(c.run("TTL h").await, int(-1));
    // Writes over an expired key start from scratch.
    assert_eq!(c.run("SET n 5 PX 10").await, Frame::ok());
    store.advance_ms(20);
    assert_eq!(c.run("INCR n").await, int(1));
}

/// A cluster may answer a read at the last applied commit's timestamp
/// (every acknowledged write is at or below it), which can lag the clock
/// by seconds when nothing was written meanwhile. Expiry is judged by the
/// clock, not by that snapshot: a key whose TTL ran out is gone.
#[tokio::test]
async fn expiry_follows_the_clock_not_an_older_snapshot() {
    let (store, addr, _stop) = start().await;
    store.snapshot_at_last_commit(true);
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("SET k v PX 1000").await, Frame::ok());
    assert_eq!(c.run("SET h v").await, Frame::ok());
    assert_eq!(c.run("EXPIRE h 3").await, int(1));
    store.advance_ms(2100);
    assert_eq!(c.run("GET k").await, Frame::Null);
    assert_eq!(c.run("EXISTS k").await, int(0));
    assert_eq!(c.run("PTTL k").await, int(-2));
    let ttl = c.run("PTTL h").await;
    assert!(matches!(ttl, Frame::Integer(800..=900)), "{ttl:?}");
    // WATCH of a key that expires before EXEC aborts the transaction.
    assert_eq!(c.run("WATCH h").await, Frame::ok());
    store.advance_ms(1000);
    assert_eq!(c.run("MULTI").await, Frame::ok());
    assert_eq!(c.run("PING").await, Frame::simple("QUEUED"));
    assert_eq!(c.run("EXEC").await, Frame::NullArray);
}

#[tokio::test]
async fn server_commands_answer() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.run("SET k v").await;
    // Every INFO section (this once deadlocked on the CONFIG table).
    let Frame::Bulk(info) = c.run("INFO").await else {
        panic!("INFO")
    };
    let info = String::from_utf8_lossy(&info);
    for field in [
        "redis_version:",
        "connected_clients:",
        "maxmemory_policy:",
        "db0:keys=1",
    ] {
        assert!(info.contains(field), "{field} missing in {info}");
    }
    assert!(matches!(c.run("INFO keyspace").await, Frame::Bulk(_)));
    assert_eq!(
        c.run("CONFIG SET maxmemory-policy allkeys-lru").await,
        Frame::ok()
    );
    assert_eq!(
        c.run("CONFIG GET maxmemory-policy").await,
        bulks(&["maxmemory-policy", "allkeys-lru"])
    );
    assert!(
        matches!(c.run("XADD s * f v").await, Frame::Bulk(_)),
        "streams are built"
    );
}

#[tokio::test]
async fn hash_fields_expire_on_their_own() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("HSET h a 1 b 2").await, int(2));
    assert_eq!(
        c.run("HPEXPIRE h 1000 FIELDS 2 a nosuch").await,
        Frame::Array(vec![int(1), int(-2)])
    );
    assert_eq!(
        c.run("HTTL h FIELDS 2 a b").await,
        Frame::Array(vec![int(1), int(-1)])
    );
    store.advance_ms(1001);
    assert_eq!(c.run("HGET h a").await, Frame::Null);
    assert_eq!(c.run("HGETALL h").await, bulks(&["b", "2"]));
    assert_eq!(c.run("HEXISTS h a").await, int(0));
    assert_eq!(
        c.run("HPERSIST h FIELDS 1 b").await,
        Frame::Array(vec![int(-1)])
    );
    // Setting an expired field again counts as adding it.
    assert_eq!(c.run("HSET h a 3").await, int(1));
    assert_eq!(c.run("HGET h a").await, bulk("3"));
}

#[tokio::test]
async fn recreated_collections_never_see_old_elements() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("HSET h a 1 b 2").await, int(2));
    assert_eq!(c.run("DEL h").await, int(1));
    assert_eq!(c.run("HSET h c 3").await, int(1));
    assert_eq!(c.run("HGETALL h").await, bulks(&["c", "3"]));
    assert_eq!(c.run("RPUSH l a b c").await, int(3));
    assert_eq!(c.run("SET l str").await, Frame::ok());
    assert_eq!(
        c.run("RPUSH l x").await,
        Frame::Error(Bytes::from_static(
            b"WRONGTYPE Operation against a key holding the wrong kind of value"
        ))
    );
    assert_eq!(c.run("DEL l").await, int(1));
    assert_eq!(c.run("RPUSH l x").await, int(1));
    assert_eq!(c.run("LRANGE l 0 -1").await, bulks(&["x"]));
    // Created, deleted and re-created inside one transaction (one
    // snapshot, so the same version): the first incarnation's elements
    // must not leak into the second.
    assert_eq!(c.run("MULTI").await, Frame::simple("QUEUED").clone_ok());
    for line in [
        "SADD s a b",
        "DEL s",
        "SADD s c",
        "ZADD z 1 a",
        "SET z str",
        "DEL z",
        "ZADD z 2 b",
        "RPUSH q 1 2",
        "RENAME q q2",
        "RPUSH q 3",
    ] {
        assert_eq!(c.run(line).await, Frame::simple("QUEUED"));
    }
    let exec = c.run("EXEC").await;
    assert!(
        matches!(&exec, Frame::Array(v) if v.len() == 10),
        "{exec:?}"
    );
    assert_eq!(strings(&c.run("SMEMBERS s").await), ["c"]);
    assert_eq!(c.run("ZRANGE z 0 -1").await, bulks(&["b"]));
    assert_eq!(c.run("LRANGE q 0 -1").await, bulks(&["3"]));
    assert_eq!(c.run("LRANGE q2 0 -1").await, bulks(&["1", "2"]));
}

#[tokio::test]
async fn replacing_writes_are_blind_unless_they_need_the_old_record() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("HSET h f v").await, int(1));
    assert_eq!(c.run("RPUSH l a b").await, int(2));
    // SET, SETEX, PSETEX and MSET replace whatever a key holds: they read
    // nothing from the snapshot.
    let before = store.snapshot_reads();
    for line in [
        "SET h str",
        "SET k v EX 100",
        "SETEX k2 100 v",
        "PSETEX k3 100000 v",
        "MSET l 1 m 2 l 3",
    ] {
        assert_eq!(c.run(line).await, Frame::ok(), "{line}");
    }
    assert_eq!(
        store.snapshot_reads(),
        before,
        "a replacing write read the key"
    );
    assert_eq!(c.run("GET l").await, bulk("3"));
    assert_eq!(c.run("TYPE h").await, Frame::simple("string"));
    // Options that depend on the old record still read it.
    let before = store.snapshot_reads();
    assert_eq!(c.run("SET h v2 GET").await, bulk("str"));
    assert_eq!(c.run("SET h v3 NX").await, Frame::Null);
    assert_eq!(c.run("SET k v2 KEEPTTL").await, Frame::ok());
    assert!(store.snapshot_reads() > before);
    let ttl = c.run("TTL k").await;
    assert!(matches!(ttl, Frame::Integer(99..=100)), "{ttl:?}");
    // The replaced collections' elements are dead: new ones start empty.
    assert_eq!(c.run("DEL h l").await, int(2));
    assert_eq!(c.run("HSET h g w").await, int(1));
    assert_eq!(c.run("HGETALL h").await, bulks(&["g", "w"]));
    assert_eq!(c.run("RPUSH l x").await, int(1));
    assert_eq!(c.run("LRANGE l 0 -1").await, bulks(&["x"]));
    // A collection created earlier in the same transaction shares its
    // version with any later one there: replacing it must remove its
    // elements, so the replacement reads the buffered record.
    assert_eq!(c.run("MULTI").await, Frame::ok());
    for line in [
        "SADD s a b",
        "SET s str",
        "DEL s",
        "SADD s c",
        "RPUSH q 1 2",
        "MSET q v",
        "DEL q",
        "RPUSH q 3",
        "HSET g f 1",
        "SETEX g 100 v",
        "DEL g",
        "HSET g e 2",
    ] {
        assert_eq!(c.run(line).await, Frame::simple("QUEUED"), "{line}");
    }
    let exec = c.run("EXEC").await;
    assert!(
        matches!(&exec, Frame::Array(v) if v.len() == 12 && !v.iter().any(|f| matches!(f, Frame::Error(_)))),
        "{exec:?}"
    );
    assert_eq!(strings(&c.run("SMEMBERS s").await), ["c"]);
    assert_eq!(c.run("LRANGE q 0 -1").await, bulks(&["3"]));
    assert_eq!(c.run("HGETALL g").await, bulks(&["e", "2"]));
}

trait OkFrame {
    fn clone_ok(&self) -> Frame;
}

impl OkFrame for Frame {
    /// MULTI answers OK (not QUEUED); helper for readability above.
    fn clone_ok(&self) -> Frame {
        Frame::ok()
    }
}

#[tokio::test]
async fn watch_detects_other_clients_writes() {
    let (_store, addr, _stop) = start().await;
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    assert_eq!(a.run("SET k 1").await, Frame::ok());
    // Conflict: b writes the watched key between WATCH and EXEC.
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    assert_eq!(b.run("SET k 2").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("SET k 3").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    assert_eq!(a.run("GET k").await, bulk("2"));
    // No conflict: the transaction applies.
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    assert_eq!(b.run("SET other x").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("INCR k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![int(3)]));
    // EXEC unwatched: a later write does not affect the next MULTI.
    assert_eq!(b.run("SET k 10").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("INCR k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![int(11)]));
    // Watching a missing key: its creation is a change.
    assert_eq!(a.run("WATCH newkey").await, Frame::ok());
    assert_eq!(b.run("RPUSH newkey x").await, int(1));
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("DEL newkey").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    // UNWATCH forgets.
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    assert_eq!(b.run("SET k 0").await, Frame::ok());
    assert_eq!(a.run("UNWATCH").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("INCR k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![int(1)]));
    // DISCARD unwatches too.
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("DISCARD").await, Frame::ok());
    assert_eq!(b.run("SET k 5").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("GET k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![bulk("5")]));
    // A client's own write to a key it watches aborts its EXEC (Redis).
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    assert_eq!(a.run("SET k 6").await, Frame::ok());
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("GET k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    // WATCH inside MULTI is refused by the protocol layer.
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert!(a.run("WATCH k").await.is_error());
    assert_eq!(a.run("DISCARD").await, Frame::ok());
}

/// EXEC under WATCH decides from its own snapshot whether a watched key
/// changed; only an EXEC that writes commits (with the watched keys
/// asserted unchanged), so an EXEC of reads commits nothing. Run with both
/// kinds of snapshot: a fresh timestamp, and the last commit's timestamp
/// (which equals the WATCH snapshot when nothing was written between).
#[tokio::test]
async fn watch_is_checked_at_the_exec_snapshot() {
    for last_commit in [false, true] {
        let (store, addr, _stop) = start().await;
        store.snapshot_at_last_commit(last_commit);
        let mut a = Client::connect(addr).await;
        let mut b = Client::connect(addr).await;
        assert_eq!(a.run("MSET k1 1 k2 2").await, Frame::ok());

        // Reads only, nothing changed: the replies, and no commit at all.
        assert_eq!(a.run("WATCH k1 k2 missing").await, Frame::ok());
        let commits = store.commits();
        assert_eq!(a.run("MULTI").await, Frame::ok());
        assert_eq!(a.run("GET k1").await, Frame::simple("QUEUED"));
        assert_eq!(a.run("MGET k2 missing").await, Frame::simple("QUEUED"));
        assert_eq!(
            a.run("EXEC").await,
            Frame::Array(vec![bulk("1"), Frame::Array(vec![bulk("2"), Frame::Null])]),
            "last_commit={last_commit}"
        );
        assert_eq!(store.commits(), commits, "a read-only EXEC committed");

        // Reads only, one watched key written meanwhile: aborted.
        assert_eq!(a.run("WATCH k1 k2").await, Frame::ok());
        assert_eq!(b.run("SET k2 20").await, Frame::ok());
        assert_eq!(a.run("MULTI").await, Frame::ok());
        assert_eq!(a.run("GET k1").await, Frame::simple("QUEUED"));
        assert_eq!(a.run("EXEC").await, Frame::NullArray);

        // A deleted watched key is a change too.
        assert_eq!(a.run("WATCH k2").await, Frame::ok());
        assert_eq!(b.run("DEL k2").await, int(1));
        assert_eq!(a.run("MULTI").await, Frame::ok());
        assert_eq!(a.run("GET k1").await, Frame::simple("QUEUED"));
        assert_eq!(a.run("EXEC").await, Frame::NullArray);

        // Writing one key while another watched key changed: aborted, and
        // nothing written.
        assert_eq!(a.run("WATCH k1 k2").await, Frame::ok());
        assert_eq!(b.run("SET k2 22").await, Frame::ok());
        assert_eq!(a.run("MULTI").await, Frame::ok());
        assert_eq!(a.run("SET k1 100").await, Frame::simple("QUEUED"));
        assert_eq!(a.run("EXEC").await, Frame::NullArray);
        assert_eq!(a.run("GET k1").await, bulk("1"));

        // Writing with nothing changed: one commit, applied.
        assert_eq!(a.run("WATCH k1 k2").await, Frame::ok());
        let commits = store.commits();
        assert_eq!(a.run("MULTI").await, Frame::ok());
        assert_eq!(a.run("INCR k1").await, Frame::simple("QUEUED"));
        assert_eq!(a.run("EXEC").await, Frame::Array(vec![int(2)]));
        assert_eq!(store.commits(), commits + 1);
        assert_eq!(b.run("GET k1").await, bulk("2"));
    }
}

/// A WATCH held past the storage GC's retention: the watched key was
/// deleted meanwhile and its tombstone collected, so EXEC finds no version
/// of it at all. It was live at WATCH, so that is a change.
#[tokio::test]
async fn a_watched_key_deleted_and_collected_aborts_exec() {
    let (store, addr, _stop) = start().await;
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    assert_eq!(a.run("SET k v").await, Frame::ok());
    assert_eq!(a.run("WATCH k never").await, Frame::ok());
    assert_eq!(b.run("DEL k").await, int(1));
    store.collect_deleted_keys();
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("GET k").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    // A key missing at WATCH and still without a version is unchanged.
    assert_eq!(a.run("WATCH never").await, Frame::ok());
    store.collect_deleted_keys();
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("GET never").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![Frame::Null]));
    // Missing at WATCH, then created and deleted, both versions collected:
    // no version is left to show it, but the GC safe point has passed the
    // WATCH, so EXEC cannot know and aborts.
    assert_eq!(a.run("WATCH fresh").await, Frame::ok());
    assert_eq!(b.run("SET fresh v").await, Frame::ok());
    assert_eq!(b.run("DEL fresh").await, int(1));
    store.collect_deleted_keys();
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("GET fresh").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
}

#[tokio::test]
async fn watched_key_expiring_aborts_exec() {
    let (store, addr, _stop) = start().await;
    let mut a = Client::connect(addr).await;
    assert_eq!(a.run("SET k v PX 1000").await, Frame::ok());
    assert_eq!(a.run("WATCH k").await, Frame::ok());
    store.advance_ms(1500);
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("SET x y").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    assert_eq!(a.run("GET x").await, Frame::Null);
}

#[tokio::test]
async fn exec_runs_every_command_and_keeps_errors_per_command() {
    let (_store, addr, _stop) = start().await;
    let mut a = Client::connect(addr).await;
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("SET a 1").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("LPUSH a x").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("INCR a").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("PING").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("GET a").await, Frame::simple("QUEUED"));
    let exec = a.run("EXEC").await;
    let Frame::Array(items) = exec else {
        panic!("EXEC reply {exec:?}")
    };
    assert_eq!(items[0], Frame::ok());
    assert!(items[1].is_error());
    assert_eq!(items[2], int(2));
    assert_eq!(items[3], Frame::simple("PONG"));
    assert_eq!(items[4], bulk("2"));
    // Queue-time errors abort the whole transaction.
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("SET b 1").await, Frame::simple("QUEUED"));
    assert!(a.run("NOSUCHCOMMAND").await.is_error());
    assert!(a.run("EXEC").await.is_error());
    assert_eq!(a.run("GET b").await, Frame::Null);
}

#[tokio::test]
async fn conflicts_are_retried_then_reported() {
    let (store, addr, _stop) = start().await;
    let mut a = Client::connect(addr).await;
    store.inject_conflicts(3);
    assert_eq!(a.run("INCR n").await, int(1));
    store.inject_conflicts(1000);
    let r = a.run("INCR n").await;
    assert!(
        matches!(&r, Frame::Error(e) if e.starts_with(b"TRYAGAIN")),
        "{r:?}"
    );
    store.inject_conflicts(0);
    assert_eq!(a.run("GET n").await, bulk("1"));
    // EXEC without WATCH is re-run on conflict; with WATCH it is not.
    store.inject_conflicts(2);
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("INCR n").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::Array(vec![int(2)]));
    assert_eq!(a.run("WATCH n").await, Frame::ok());
    store.inject_conflicts(1);
    assert_eq!(a.run("MULTI").await, Frame::ok());
    assert_eq!(a.run("INCR n").await, Frame::simple("QUEUED"));
    assert_eq!(a.run("EXEC").await, Frame::NullArray);
    assert_eq!(a.run("GET n").await, bulk("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_not_lost() {
    let (_store, addr, _stop) = start().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..50 {
                let r = c.run("INCR n").await;
                assert!(matches!(r, Frame::Integer(_)), "{r:?}");
                let r = c.run("HINCRBY h f 1").await;
                assert!(matches!(r, Frame::Integer(_)), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("GET n").await, bulk("400"));
    assert_eq!(c.run("HGET h f").await, bulk("400"));
}

#[tokio::test]
async fn large_collections_page_and_scan_completely() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let n = 2500;
    let mut args: Vec<String> = vec!["RPUSH".into(), "big".into()];
    args.extend((0..n).map(|i| format!("e{i}")));
    assert_eq!(c.cmd(&args).await, int(n));
    let all = strings(&c.run("LRANGE big 0 -1").await);
    assert_eq!(all.len(), n as usize);
    assert_eq!(all[1234], "e1234");
    assert_eq!(c.run("LINDEX big 2000").await, bulk("e2000"));
    assert_eq!(
        strings(&c.run("LRANGE big -3 -1").await),
        ["e2497", "e2498", "e2499"]
    );
    // Many keys and a big hash/set/zset, scanned with small counts.
    for i in 0..600 {
        assert_eq!(
            c.cmd(&["SET", &format!("key:{i:04}"), "v"]).await,
            Frame::ok()
        );
        c.cmd(&["HSET", "bh", &format!("f{i}"), "v"]).await;
        c.cmd(&["SADD", "bs", &format!("m{i}")]).await;
        c.cmd(&["ZADD", "bz", &i.to_string(), &format!("m{i}")])
            .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let r = c
            .cmd(&["SCAN", &cursor, "MATCH", "key:*", "COUNT", "37"])
            .await;
        let Frame::Array(parts) = r else {
            panic!("scan")
        };
        let Frame::Bulk(next) = &parts[0] else {
            panic!("cursor")
        };
        seen.extend(strings(&parts[1]));
        cursor = String::from_utf8_lossy(next).into_owned();
        rounds += 1;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 600);
    assert!(rounds > 10, "COUNT bounds each call ({rounds} rounds)");
    for (cmd, key, per) in [("HSCAN", "bh", 2), ("SSCAN", "bs", 1), ("ZSCAN", "bz", 2)] {
        let mut cursor = "0".to_string();
        let mut items = 0;
        loop {
            let r = c.cmd(&[cmd, key, &cursor, "COUNT", "50"]).await;
            let Frame::Array(parts) = r else {
                panic!("{cmd}")
            };
            let Frame::Bulk(next) = &parts[0] else {
                panic!("cursor")
            };
            items += strings(&parts[1]).len();
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(items, 600 * per, "{cmd}");
    }
    assert!(c.run("SCAN 12345").await.is_error(), "unknown cursor");
    assert_eq!(c.run("ZRANK bz m321").await, int(321));
    assert_eq!(c.run("ZREVRANK bz m321").await, int(278));
    assert_eq!(c.run("ZCOUNT bz 100 (200").await, int(100));
    assert_eq!(
        strings(&c.run("ZRANGE bz 450 452").await),
        ["m450", "m451", "m452"]
    );
    assert_eq!(c.run("DBSIZE").await, int(604));
    // DEL of a big collection is one metadata delete.
    assert_eq!(c.run("DEL big bh bs bz").await, int(4));
    assert_eq!(c.run("LLEN big").await, int(0));
    assert_eq!(c.run("FLUSHALL").await, Frame::ok());
    assert_eq!(c.run("DBSIZE").await, int(0));
}

#[tokio::test]
async fn replies_are_bounded_by_the_output_limit() {
    let mut config = ServerConfig::default();
    config.limits.max_output_buffer = 64 * 1024;
    let (_store, addr, _stop) = start_with(config).await;
    let mut c = Client::connect(addr).await;
    let value = "x".repeat(1000);
    for _ in 0..100 {
        c.cmd(&["RPUSH", "l", &value]).await;
    }
    let r = c.run("LRANGE l 0 -1").await;
    assert!(
        matches!(&r, Frame::Error(e) if e.starts_with(b"ERR reply exceeds")),
        "{r:?}"
    );
    assert_eq!(strings(&c.run("LRANGE l 0 9").await).len(), 10);
}

#[tokio::test]
async fn list_operations_match_a_model() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model: VecDeque<String> = VecDeque::new();
    for step in 0..600 {
        let v = format!("v{}", rng.gen_range(0..8));
        let len = model.len() as i64;
        match rng.gen_range(0..10) {
            0 | 1 => {
                c.cmd(&["RPUSH", "l", &v]).await;
                model.push_back(v);
            }
            2 => {
                c.cmd(&["LPUSH", "l", &v]).await;
                model.push_front(v);
            }
            3 => {
                let pivot = format!("v{}", rng.gen_range(0..8));
                let after = rng.gen_bool(0.5);
                let r = c
                    .cmd(&[
                        "LINSERT",
                        "l",
                        if after { "AFTER" } else { "BEFORE" },
                        &pivot,
                        &v,
                    ])
                    .await;
                if let Some(i) = model.iter().position(|x| *x == pivot) {
                    model.insert(if after { i + 1 } else { i }, v);
                    assert_eq!(r, int(model.len() as i64), "step {step}");
                }
            }
            4 => {
                let count = rng.gen_range(-2..=2i64);
                c.cmd(&["LREM", "l", &count.to_string(), &v]).await;
                let mut left = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                if count >= 0 {
                    let mut i = 0;
                    while i < model.len() && left > 0 {
                        if model[i] == v {
                            model.remove(i);
                            left -= 1;
                        } else {
                            i += 1;
                        }
                    }
                } else {
                    let mut i = model.len();
                    while i > 0 && left > 0 {
                        i -= 1;
                        if model[i] == v {
                            model.remove(i);
                            left -= 1;
                        }
                    }
                }
            }
            5 if len > 0 => {
                let i = rng.gen_range(-len..len);
                c.cmd(&["LSET", "l", &i.to_string(), &v]).await;
                let idx = if i < 0 { len + i } else { i } as usize;
                model[idx] = v;
            }
            6 if len > 4 => {
                let s = rng.gen_range(0..3i64);
                let e = rng.gen_range(-3..-1i64);
                c.cmd(&["LTRIM", "l", &s.to_string(), &e.to_string()]).await;
                let (s, e) = (s as usize, (len + e) as usize);
                model = model.iter().skip(s).take(e + 1 - s).cloned().collect();
            }
            7 => {
                let r = c.run("LPOP l").await;
                assert_eq!(
                    r,
                    model.pop_front().map(|x| bulk(&x)).unwrap_or(Frame::Null)
                );
            }
            8 => {
                let r = c.run("RPOP l").await;
                assert_eq!(r, model.pop_back().map(|x| bulk(&x)).unwrap_or(Frame::Null));
            }
            _ => {
                c.run("LMOVE l l LEFT RIGHT").await;
                if let Some(x) = model.pop_front() {
                    model.push_back(x);
                }
            }
        }
        let got = strings(&c.run("LRANGE l 0 -1").await);
        assert_eq!(
            got,
            model.iter().cloned().collect::<Vec<_>>(),
            "step {step}"
        );
        assert_eq!(c.run("LLEN l").await, int(model.len() as i64));
    }
}

#[tokio::test]
async fn zset_operations_match_a_model() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut model: BTreeMap<String, f64> = BTreeMap::new();
    let scores = [
        -f64::INFINITY,
        -3.5,
        -1.0,
        0.0,
        0.5,
        2.0,
        7.25,
        f64::INFINITY,
    ];
    for step in 0..400 {
        let m = format!("m{}", rng.gen_range(0..20));
        match rng.gen_range(0..4) {
            0 | 1 => {
                let s = scores[rng.gen_range(0..scores.len())];
                let text = elastickv_api_redis::float::format_double_g17(s);
                c.cmd(&["ZADD", "z", &text, &m]).await;
                model.insert(m, s);
            }
            2 => {
                c.cmd(&["ZREM", "z", &m]).await;
                model.remove(&m);
            }
            _ => {
                let r = c.cmd(&["ZINCRBY", "z", "1", &m]).await;
                let e = model.entry(m).or_insert(0.0);
                let sum = *e + 1.0;
                *e = sum;
                assert_eq!(r, bulk(&elastickv_api_redis::float::format_double_g17(sum)));
            }
        }
        let mut want: Vec<(String, f64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let got = strings(&c.run("ZRANGE z 0 -1").await);
        let names: Vec<String> = want.iter().map(|x| x.0.clone()).collect();
        assert_eq!(got, names, "step {step}");
        let rev = strings(&c.run("ZRANGE z +inf -inf BYSCORE REV").await);
        assert_eq!(
            rev,
            names.iter().rev().cloned().collect::<Vec<_>>(),
            "step {step}"
        );
        if let Some((m, _)) = want.get(want.len() / 2) {
            let r = c.cmd(&["ZRANK", "z", m]).await;
            assert_eq!(r, int((want.len() / 2) as i64), "step {step}");
        }
        let between = want.iter().filter(|x| x.1 > -1.0 && x.1 <= 2.0).count();
        assert_eq!(
            c.run("ZCOUNT z (-1 2").await,
            int(between as i64),
            "step {step}"
        );
    }
}

#[tokio::test]
async fn pubsub_within_a_node() {
    let (_store, addr, _stop) = start().await;
    let mut sub = Client::connect(addr).await;
    let mut publ = Client::connect(addr).await;
    let confirm =
        |kind: &str, name: &str, n: i64| Frame::Array(vec![bulk(kind), bulk(name), int(n)]);
    assert_eq!(
        sub.run("SUBSCRIBE ch1 ch2").await,
        confirm("subscribe", "ch1", 1)
    );
    assert_eq!(sub.read().await, confirm("subscribe", "ch2", 2));
    assert_eq!(
        sub.run("PSUBSCRIBE news.*").await,
        confirm("psubscribe", "news.*", 3)
    );
    // RESP2 subscribers may only run pub/sub commands.
    assert!(sub.run("GET k").await.is_error());
    assert_eq!(publ.run("PUBLISH ch1 hello").await, int(1));
    assert_eq!(sub.read().await, bulks(&["message", "ch1", "hello"]));
    assert_eq!(publ.run("PUBLISH news.today x").await, int(1));
    assert_eq!(
        sub.read().await,
        bulks(&["pmessage", "news.*", "news.today", "x"])
    );
    assert_eq!(publ.run("PUBLISH nobody x").await, int(0));
    assert_eq!(
        strings(&publ.run("PUBSUB CHANNELS ch*").await),
        ["ch1", "ch2"]
    );
    assert_eq!(
        publ.run("PUBSUB NUMSUB ch1 zz").await,
        Frame::Array(vec![bulk("ch1"), int(1), bulk("zz"), int(0)])
    );
    assert_eq!(publ.run("PUBSUB NUMPAT").await, int(1));
    assert_eq!(
        sub.run("UNSUBSCRIBE").await,
        confirm("unsubscribe", "ch1", 2)
    );
    assert_eq!(sub.read().await, confirm("unsubscribe", "ch2", 1));
    assert_eq!(
        sub.run("PUNSUBSCRIBE").await,
        confirm("punsubscribe", "news.*", 0)
    );
    assert_eq!(sub.run("GET k").await, Frame::Null, "back to normal");
    assert_eq!(publ.run("PUBLISH ch1 again").await, int(0));
    // A disconnected subscriber is forgotten.
    let mut gone = Client::connect(addr).await;
    assert_eq!(
        gone.run("SUBSCRIBE bye").await,
        confirm("subscribe", "bye", 1)
    );
    drop(gone);
    for _ in 0..50 {
        if publ.run("PUBSUB NUMSUB bye").await == Frame::Array(vec![bulk("bye"), int(0)]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("subscription outlived its connection");
}

#[tokio::test]
async fn databases_are_separate_keyspaces() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("SET k zero").await, Frame::ok());
    assert_eq!(c.run("SELECT 9").await, Frame::ok());
    assert_eq!(c.run("GET k").await, Frame::Null);
    assert_eq!(c.run("RPUSH l a b").await, int(2));
    assert_eq!(c.run("SET k nine").await, Frame::ok());
    assert_eq!(c.run("DBSIZE").await, int(2));
    assert_eq!(strings(&c.run("KEYS *").await), vec!["k", "l"]);
    // MOVE refuses an existing destination key, moves a missing one.
    assert_eq!(c.run("MOVE k 0").await, int(0));
    assert_eq!(c.run("MOVE l 0").await, int(1));
    assert_eq!(c.run("EXISTS l").await, int(0));
    assert_eq!(
        c.run("MOVE l 9").await,
        Frame::error("source and destination objects are the same")
    );
    assert_eq!(
        c.run("MOVE k 16").await,
        Frame::error("DB index is out of range")
    );
    // COPY into another database, collections included.
    assert_eq!(c.run("SELECT 0").await, Frame::ok());
    assert_eq!(strings(&c.run("LRANGE l 0 -1").await), vec!["a", "b"]);
    assert_eq!(c.run("COPY l l DB 3").await, int(1));
    assert_eq!(c.run("SELECT 3").await, Frame::ok());
    assert_eq!(strings(&c.run("LRANGE l 0 -1").await), vec!["a", "b"]);
    // FLUSHDB empties the selected database only; FLUSHALL all of them.
    assert_eq!(c.run("FLUSHDB").await, Frame::ok());
    assert_eq!(c.run("DBSIZE").await, int(0));
    assert_eq!(c.run("SELECT 9").await, Frame::ok());
    assert_eq!(c.run("GET k").await, bulk("nine"));
    // SELECT inside MULTI switches the following commands and the client.
    assert_eq!(c.run("MULTI").await, Frame::ok());
    assert_eq!(c.run("SELECT 0").await, Frame::simple("QUEUED"));
    assert_eq!(c.run("GET k").await, Frame::simple("QUEUED"));
    assert_eq!(
        c.run("EXEC").await,
        Frame::Array(vec![Frame::ok(), bulk("zero")])
    );
    assert_eq!(c.run("GET k").await, bulk("zero"));
    assert_eq!(c.run("FLUSHALL").await, Frame::ok());
    assert_eq!(c.run("SELECT 9").await, Frame::ok());
    assert_eq!(c.run("DBSIZE").await, int(0));
}

#[tokio::test]
async fn pipelined_commands_keep_order_and_isolate_errors() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    // One write: a pipeline mixing data commands, an error in the middle,
    // and connection commands that end a pipelined run.
    let lines = [
        "SET a 1",
        "INCR a",
        "LPUSH a x",
        "INCR a",
        "GET a",
        "SELECT 1",
        "GET a",
        "SET a other",
        "SELECT 0",
        "MULTI",
        "INCR a",
        "EXEC",
        "RPUSH l 1 2 3",
        "LRANGE l 0 -1",
    ];
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    c.conn.write_all(&out).await.expect("write");
    let mut replies = Vec::new();
    for _ in lines {
        replies.push(c.read().await);
    }
    assert_eq!(replies[0], Frame::ok());
    assert_eq!(replies[1], int(2));
    assert!(matches!(&replies[2], Frame::Error(e) if e.starts_with(b"WRONGTYPE")));
    assert_eq!(replies[3], int(3));
    assert_eq!(replies[4], bulk("3"));
    assert_eq!(replies[6], Frame::Null, "db 1 is another keyspace");
    assert_eq!(replies[9], Frame::ok());
    assert_eq!(replies[10], Frame::simple("QUEUED"));
    assert_eq!(replies[11], Frame::Array(vec![int(4)]));
    assert_eq!(replies[12], int(3));
    assert_eq!(strings(&replies[13]), vec!["1", "2", "3"]);
    // A data-plane failure of one pipelined command (an injected
    // conflict storm would be retried; a refused value is not) fails only
    // that command.
    let big = "x".repeat(elastickv_types::limits::DEFAULT_MAX_VALUE_BYTES + 1);
    let mut out = Vec::new();
    for args in [
        vec!["SET", "p1", "v"],
        vec!["SET", "p2", big.as_str()],
        vec!["SET", "p3", "v"],
    ] {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    c.conn.write_all(&out).await.expect("write");
    assert_eq!(c.read().await, Frame::ok());
    assert!(matches!(c.read().await, Frame::Error(_)));
    assert_eq!(c.read().await, Frame::ok());
    assert_eq!(c.run("EXISTS p1 p2 p3").await, int(2));
    let _ = store;
}

#[tokio::test]
async fn randomkey_spreads_over_the_keyspace() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("RANDOMKEY").await, Frame::Null);
    // A small database is picked from uniformly: both keys show up (the
    // chance that one does not in 100 fair draws is 2^-99).
    assert_eq!(c.run("SET foo x").await, Frame::ok());
    assert_eq!(c.run("SET bar y").await, Frame::ok());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        match c.run("RANDOMKEY").await {
            Frame::Bulk(k) => {
                seen.insert(k);
            }
            other => panic!("RANDOMKEY: {other:?}"),
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // A larger one whose keys share a prefix is not stuck on its first key.
    assert_eq!(c.run("FLUSHDB").await, Frame::ok());
    for chunk in 0..20 {
        let mut argv = vec!["MSET".to_string()];
        for i in chunk * 100..(chunk + 1) * 100 {
            argv.push(format!("user:{i}"));
            argv.push("v".into());
        }
        assert_eq!(c.cmd(&argv).await, Frame::ok());
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        match c.run("RANDOMKEY").await {
            Frame::Bulk(k) => {
                assert!(k.starts_with(b"user:"));
                seen.insert(k);
            }
            other => panic!("RANDOMKEY: {other:?}"),
        }
    }
    assert!(
        seen.len() > 100,
        "only {} distinct keys in 200 draws",
        seen.len()
    );
    // Expired keys are never returned.
    assert_eq!(c.run("FLUSHDB").await, Frame::ok());
    assert_eq!(c.run("SET gone v PX 1").await, Frame::ok());
    assert_eq!(c.run("SET kept v").await, Frame::ok());
    store.advance_ms(10);
    for _ in 0..20 {
        assert_eq!(c.run("RANDOMKEY").await, bulk("kept"));
    }
}

#[tokio::test]
async fn pops_refuse_extra_arguments() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.err(
        "LPOP key 1 1",
        "ERR wrong number of arguments for 'lpop' command",
    )
    .await;
    c.err(
        "RPOP key 2 2",
        "ERR wrong number of arguments for 'rpop' command",
    )
    .await;
    assert_eq!(c.run("RPUSH key a b c").await, int(3));
    c.err(
        "LPOP key 1 1",
        "ERR wrong number of arguments for 'lpop' command",
    )
    .await;
    assert_eq!(c.run("LPOP key 2").await, bulks(&["a", "b"]));
    assert_eq!(c.run("RPOP key").await, bulk("c"));
}

#[tokio::test]
async fn info_counts_error_replies() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let count = |info: Frame| -> (u64, u64) {
        let Frame::Bulk(text) = info else {
            panic!("INFO: {info:?}")
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| {
                    v.split(|c: char| !c.is_ascii_digit())
                        .find(|s| !s.is_empty())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            field("total_error_replies:"),
            field("errorstat_WRONGTYPE:count="),
        )
    };
    assert_eq!(c.run("CONFIG RESETSTAT").await, Frame::ok());
    assert_eq!(count(c.run("INFO").await), (0, 0));
    assert_eq!(c.run("SET s v").await, Frame::ok());
    c.err("LPUSH s x", "WRONGTYPE").await;
    c.err("NOSUCHCOMMAND", "ERR unknown command").await;
    assert_eq!(count(c.run("INFO").await), (2, 1));
    assert_eq!(c.run("CONFIG RESETSTAT").await, Frame::ok());
    assert_eq!(count(c.run("INFO").await), (0, 0));
}

/// The next pushed message as (channel, payload), within a second.
async fn next_event(sub: &mut Client) -> (String, String) {
    let f = sub
        .read_within(std::time::Duration::from_secs(3))
        .await
        .expect("an event");
    let parts = strings(&f);
    assert_eq!(parts[0], "pmessage", "{parts:?}");
    (parts[2].clone(), parts[3].clone())
}

fn ev(channel: &str, payload: &str) -> (String, String) {
    (channel.to_string(), payload.to_string())
}

#[tokio::test]
async fn keyspace_notifications_follow_writes_and_flags() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let mut sub = Client::connect(addr).await;
    assert_eq!(
        sub.run("PSUBSCRIBE __key*__:*").await,
        Frame::Array(vec![bulk("psubscribe"), bulk("__key*__:*"), int(1)])
    );
    // Off by default: nothing is published.
    assert_eq!(c.run("SET quiet 1").await, Frame::ok());
    assert_eq!(
        sub.read_within(std::time::Duration::from_millis(100)).await,
        None
    );

    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events KEA").await,
        Frame::ok()
    );
    assert_eq!(
        c.run("CONFIG GET notify-keyspace-events").await,
        bulks(&["notify-keyspace-events", "AKE"])
    );
    assert_eq!(c.run("SET foo bar EX 100").await, Frame::ok());
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:foo", "set"));
    assert_eq!(next_event(&mut sub).await, ev("__keyevent@0__:set", "foo"));
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyspace@0__:foo", "expire")
    );
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyevent@0__:expire", "foo")
    );

    // Only events of enabled classes, only for changes, none for errors.
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events Kls").await,
        Frame::ok()
    );
    assert!(c.run("LPUSH foo x").await.is_error(), "WRONGTYPE");
    assert_eq!(c.run("SADD s a b").await, int(2));
    assert_eq!(c.run("SADD s a").await, int(0));
    assert_eq!(c.run("SET foo other").await, Frame::ok());
    assert_eq!(c.run("SREM s a b").await, int(2));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:s", "sadd"));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:s", "srem"));
    // `del` is generic (`g`), not enabled here.
    assert_eq!(c.run("RPUSH l a b").await, int(2));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:l", "rpush"));

    // A popped-empty list is deleted; LMOVE announces the push, then the pop.
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events Klg").await,
        Frame::ok()
    );
    assert_eq!(c.run("LMOVE l l2 LEFT RIGHT").await, bulk("a"));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:l2", "rpush"));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:l", "lpop"));
    assert_eq!(c.run("RPOP l").await, bulk("b"));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:l", "rpop"));
    assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:l", "del"));
    assert_eq!(c.run("RENAME l2 l3").await, Frame::ok());
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyspace@0__:l2", "rename_from")
    );
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyspace@0__:l3", "rename_to")
    );

    // `new`: a key that did not exist, also after a DEL in the same EXEC.
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events En").await,
        Frame::ok()
    );
    assert_eq!(c.run("SET n1 a").await, Frame::ok());
    assert_eq!(c.run("SET n1 b").await, Frame::ok());
    assert_eq!(c.run("MULTI").await, Frame::ok());
    assert_eq!(c.run("DEL n1").await, Frame::Simple("QUEUED".into()));
    assert_eq!(c.run("SET n1 c").await, Frame::Simple("QUEUED".into()));
    assert_eq!(c.run("HSET n2 f v").await, Frame::Simple("QUEUED".into()));
    assert_eq!(c.run("HSET n2 g v").await, Frame::Simple("QUEUED".into()));
    assert!(matches!(c.run("EXEC").await, Frame::Array(_)));
    assert_eq!(next_event(&mut sub).await, ev("__keyevent@0__:new", "n1"));
    assert_eq!(next_event(&mut sub).await, ev("__keyevent@0__:new", "n1"));
    assert_eq!(next_event(&mut sub).await, ev("__keyevent@0__:new", "n2"));

    // `expired`: a write over an expired key, and the background reclaimer.
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events Ex").await,
        Frame::ok()
    );
    assert_eq!(c.run("SET e1 v PX 10").await, Frame::ok());
    assert_eq!(c.run("SET e2 v PX 10").await, Frame::ok());
    store.advance_ms(20);
    assert_eq!(c.run("SET e1 again").await, Frame::ok());
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyevent@0__:expired", "e1")
    );
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyevent@0__:expired", "e2")
    );

    // `keymiss`: lookups of read-only commands that find nothing.
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events Em").await,
        Frame::ok()
    );
    assert_eq!(c.run("SET present v").await, Frame::ok());
    assert_eq!(c.run("LPUSH newlist v").await, int(1));
    assert_eq!(c.run("GET present").await, bulk("v"));
    assert_eq!(c.run("GET absent").await, Frame::Null);
    assert_eq!(
        next_event(&mut sub).await,
        ev("__keyevent@0__:keymiss", "absent")
    );

    // Bad class characters are refused and change nothing.
    let bad = c.run("CONFIG SET notify-keyspace-events KQ").await;
    assert!(bad.is_error(), "{bad:?}");
    assert_eq!(
        c.run("CONFIG GET notify-keyspace-events").await,
        bulks(&["notify-keyspace-events", "Em"])
    );
}

#[tokio::test]
async fn keyspace_notification_setting_reaches_every_node() {
    // Two front ends over one store stand for two nodes of a cluster.
    let (store, addr_a, _stop_a) = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr_b = listener.local_addr().expect("addr");
    let (_stop_b, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(elastickv_api_redis::serve(
        std::sync::Arc::new(store.clone()),
        listener,
        ServerConfig::default(),
        stop_rx,
    ));
    let mut a = Client::connect(addr_a).await;
    let mut b = Client::connect(addr_b).await;
    assert_eq!(
        a.run("CONFIG SET notify-keyspace-events K$").await,
        Frame::ok()
    );
    let want = bulks(&["notify-keyspace-events", "$K"]);
    for _ in 0..60 {
        if b.run("CONFIG GET notify-keyspace-events").await == want {
            // B publishes its own writes' events now.
            let mut sub = Client::connect(addr_b).await;
            sub.run("PSUBSCRIBE *").await;
            assert_eq!(b.run("SET k v").await, Frame::ok());
            assert_eq!(next_event(&mut sub).await, ev("__keyspace@0__:k", "set"));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the other node never adopted the setting");
}

/// `name:value` of an INFO reply, as a number.
fn info_field(info: &Frame, name: &str) -> f64 {
    let Frame::Bulk(text) = info else {
        panic!("INFO: {info:?}")
    };
    let text = String::from_utf8_lossy(text);
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

#[tokio::test]
async fn info_reports_traffic_rates_memory_and_cpu() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let mut sub = Client::connect(addr).await;
    assert_eq!(c.run("CONFIG RESETSTAT").await, Frame::ok());
    let before = c.run("INFO stats").await;
    // Commands for a little over a second, so that the 100 ms samples
    // span a busy window.
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < std::time::Duration::from_millis(1200) {
        assert_eq!(c.run("SET k v").await, Frame::ok());
        sent += 1;
    }
    sub.run("SUBSCRIBE a b").await;
    sub.read().await;
    sub.run("PSUBSCRIBE p*").await;
    let after = c.run("INFO stats").await;
    let grew = |name: &str| info_field(&after, name) - info_field(&before, name);
    // Each SET is 27 bytes in and 5 out ("+OK\r\n").
    assert!(
        grew("total_net_input_bytes") >= (27 * sent) as f64,
        "{after:?}"
    );
    assert!(grew("total_net_output_bytes") >= (5 * sent) as f64);
    assert!(grew("total_reads_processed") >= sent as f64);
    assert!(grew("total_writes_processed") >= sent as f64);
    assert!(
        info_field(&after, "instantaneous_ops_per_sec") > 0.0,
        "{after:?}"
    );
    assert!(info_field(&after, "instantaneous_input_kbps") > 0.0);
    assert_eq!(info_field(&after, "pubsub_channels"), 2.0);
    assert_eq!(info_field(&after, "pubsub_patterns"), 1.0);
    let mem = c.run("INFO memory").await;
    assert!(info_field(&mem, "used_memory") > 0.0);
    assert!(info_field(&mem, "used_memory_peak") >= info_field(&mem, "used_memory"));
    let cpu = c.run("INFO cpu").await;
    assert!(info_field(&cpu, "used_cpu_user") + info_field(&cpu, "used_cpu_sys") > 0.0);
    // RESETSTAT clears the traffic counters.
    assert_eq!(c.run("CONFIG RESETSTAT").await, Frame::ok());
    let reset = c.run("INFO stats").await;
    assert!(
        info_field(&reset, "total_net_input_bytes") < 200.0,
        "{reset:?}"
    );
}

#[tokio::test]
async fn expired_hash_fields_are_reclaimed_in_the_background() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let mut sub = Client::connect(addr).await;
    assert_eq!(
        c.run("CONFIG SET notify-keyspace-events Kgh").await,
        Frame::ok()
    );
    sub.run("PSUBSCRIBE __keyspace@0__:h*").await;
    assert_eq!(c.run("HSET h1 a 1 b 2").await, int(2));
    assert_eq!(c.run("HSET h2 a 1").await, int(1));
    for key in ["h1", "h2"] {
        assert_eq!(
            c.run(&format!("HPEXPIRE {key} 100 FIELDS 1 a")).await,
            Frame::Array(vec![int(1)])
        );
    }
    for _ in 0..4 {
        next_event(&mut sub).await; // hset, hset, hexpire, hexpire
    }
    store.advance_ms(200);
    // Within a reclaimer sweep (about a second): the field is gone from
    // HLEN, and the hash whose only field expired is gone altogether.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(next_event(&mut sub).await);
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ev("__keyspace@0__:h1", "hexpired"),
            ev("__keyspace@0__:h2", "del"),
            ev("__keyspace@0__:h2", "hexpired"),
        ]
    );
    assert_eq!(c.run("HLEN h1").await, int(1));
    assert_eq!(c.run("EXISTS h2").await, int(0));
    assert_eq!(c.run("HGETALL h1").await, bulks(&["b", "2"]));
}

#[tokio::test]
async fn sharded_pubsub_is_its_own_namespace() {
    let (_store, addr, _stop) = start().await;
    let mut sub = Client::connect(addr).await;
    let mut publ = Client::connect(addr).await;
    let confirm =
        |kind: &str, name: &str, n: i64| Frame::Array(vec![bulk(kind), bulk(name), int(n)]);
    assert_eq!(
        sub.run("SSUBSCRIBE chan1").await,
        confirm("ssubscribe", "chan1", 1)
    );
    assert_eq!(
        sub.run("SSUBSCRIBE chan2").await,
        confirm("ssubscribe", "chan2", 2)
    );
    // Shard subscriptions are counted apart from the others.
    assert_eq!(
        sub.run("SUBSCRIBE chan1").await,
        confirm("subscribe", "chan1", 1)
    );
    assert_eq!(publ.run("SPUBLISH chan1 hello").await, int(1));
    assert_eq!(sub.read().await, bulks(&["smessage", "chan1", "hello"]));
    assert_eq!(publ.run("PUBLISH chan1 plain").await, int(1));
    assert_eq!(sub.read().await, bulks(&["message", "chan1", "plain"]));
    assert_eq!(
        strings(&publ.run("PUBSUB SHARDCHANNELS").await),
        ["chan1", "chan2"]
    );
    assert_eq!(
        strings(&publ.run("PUBSUB SHARDCHANNELS *2").await),
        ["chan2"]
    );
    assert_eq!(
        publ.run("PUBSUB SHARDNUMSUB chan1 none").await,
        Frame::Array(vec![bulk("chan1"), int(1), bulk("none"), int(0)])
    );
    let info = publ.run("INFO stats").await;
    assert_eq!(info_field(&info, "pubsubshard_channels"), 2.0);
    assert_eq!(info_field(&info, "pubsub_channels"), 1.0);
    assert_eq!(
        sub.run("SUNSUBSCRIBE chan1").await,
        confirm("sunsubscribe", "chan1", 1)
    );
    assert_eq!(publ.run("SPUBLISH chan1 x").await, int(0));
    assert_eq!(publ.run("SPUBLISH chan2 world").await, int(1));
    assert_eq!(sub.read().await, bulks(&["smessage", "chan2", "world"]));
    // No names: every shard subscription, and only those.
    assert_eq!(
        sub.run("SUNSUBSCRIBE").await,
        confirm("sunsubscribe", "chan2", 0)
    );
    assert_eq!(
        sub.run("SUNSUBSCRIBE").await,
        Frame::Array(vec![bulk("sunsubscribe"), Frame::Null, int(0)])
    );
    assert_eq!(publ.run("PUBLISH chan1 still").await, int(1));
    assert_eq!(sub.read().await, bulks(&["message", "chan1", "still"]));
}

#[tokio::test]
async fn object_encoding_never_returns_to_the_small_encoding() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let enc = |s: &str| bulk(s);
    assert_eq!(c.run("SET n 1234").await, Frame::ok());
    assert_eq!(c.run("OBJECT ENCODING n").await, enc("int"));
    assert_eq!(c.run("SETRANGE n 0 2").await, int(4));
    assert_eq!(c.run("OBJECT ENCODING n").await, enc("raw"));
    assert_eq!(c.run("SETRANGE n 0 ").await, int(4), "nothing set");
    assert_eq!(c.run("SET n 1234").await, Frame::ok());
    assert_eq!(c.run("SETRANGE n 0 ").await, int(4));
    assert_eq!(c.run("OBJECT ENCODING n").await, enc("int"), "unchanged");
    assert_eq!(c.run("APPEND n 5").await, int(5));
    assert_eq!(c.run("OBJECT ENCODING n").await, enc("raw"));
    assert_eq!(c.run("INCR n").await, int(12346));
    assert_eq!(c.run("OBJECT ENCODING n").await, enc("int"), "a new value");
    assert_eq!(c.run("PFADD hll a").await, int(1));
    assert_eq!(c.run("OBJECT ENCODING hll").await, enc("raw"));

    assert_eq!(c.run("SADD s1 1 2 3").await, int(3));
    assert_eq!(c.run("SADD s2 1 2 3 a").await, int(4));
    assert_eq!(c.run("SREM s2 a").await, int(1));
    assert_eq!(c.run("OBJECT ENCODING s1").await, enc("intset"));
    assert_eq!(c.run("OBJECT ENCODING s2").await, enc("hashtable"));
    assert_eq!(strings(&c.run("SINTER s1 s2").await).len(), 3);

    let long = "x".repeat(65);
    assert_eq!(c.run(&format!("HSET h f {long}")).await, int(1));
    assert_eq!(c.run("OBJECT ENCODING h").await, enc("hashtable"));
    assert_eq!(c.run("HSET h f short").await, int(0));
    assert_eq!(c.run("OBJECT ENCODING h").await, enc("hashtable"));
    assert_eq!(c.run("HSET small f short").await, int(1));
    assert_eq!(c.run("OBJECT ENCODING small").await, enc("listpack"));
    assert_eq!(c.run(&format!("ZADD z 1 {long}")).await, int(1));
    assert_eq!(c.run(&format!("ZREM z {long}")).await, int(1));
    assert_eq!(c.run("ZADD z 1 a 2 b").await, int(2));
    assert_eq!(
        c.run("OBJECT ENCODING z").await,
        enc("listpack"),
        "deleted when emptied"
    );
    assert_eq!(c.run(&format!("ZADD z 3 {long}")).await, int(1));
    assert_eq!(c.run(&format!("ZREM z {long}")).await, int(1));
    assert_eq!(c.run("OBJECT ENCODING z").await, enc("skiplist"));
}
