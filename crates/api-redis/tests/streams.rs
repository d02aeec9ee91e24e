//! Stream commands over the in-memory store: id generation and errors,
//! trimming (exact and node-granular `~`), ranges, XREAD and its blocking
//! contract, consumer groups (delivery, PEL bookkeeping, claims, lag), XINFO,
//! and the keyspace commands on streams. Idle times are checked by moving
//! the store's clock, never by sleeping.

use std::sync::Arc;

use bytes::Bytes;
use elastickv_api_redis::cmd;
use elastickv_api_redis::db::{Ctx, ExecError};
use elastickv_api_redis::memstore::MemStore;
use elastickv_api_redis::server::ServerStats;
use elastickv_api_redis::Store;
use elastickv_api_redis::{Frame, HandlerConfig, Protocol, RedisHandler};

mod common;
use common::*;

fn arr(items: Vec<Frame>) -> Frame {
    Frame::Array(items)
}

/// `[id, [f1, v1, ...]]`
fn entry(id: &str, fields: &[&str]) -> Frame {
    arr(vec![
        bulk(id),
        arr(fields.iter().map(|f| bulk(f)).collect()),
    ])
}

/// The ids of an entry list reply.
fn ids(f: &Frame) -> Vec<String> {
    let Frame::Array(items) = f else {
        panic!("not an array: {f:?}")
    };
    items
        .iter()
        .map(|e| match e {
            Frame::Array(p) => match &p[0] {
                Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("bad id {other:?}"),
            },
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("bad entry {other:?}"),
        })
        .collect()
}

/// A field of an XINFO reply (flat array of name/value pairs in RESP2).
fn info_field(f: &Frame, name: &str) -> Frame {
    let Frame::Array(items) = f else {
        panic!("not an array: {f:?}")
    };
    for pair in items.chunks(2) {
        if pair[0] == bulk(name) {
            return pair[1].clone();
        }
    }
    panic!("no field {name} in {f:?}")
}

#[tokio::test]
async fn xadd_ids_and_errors() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.run("XADD s 5-1 a 1").await, bulk("5-1"));
    assert_eq!(c.run("XADD s 5-* a 2").await, bulk("5-2"));
    assert_eq!(c.run("XADD s 7-* a 3").await, bulk("7-0"));
    assert_eq!(c.run("XADD s 8 a 4").await, bulk("8-0"));
    c.err(
        "XADD s 8-0 a 5",
        "ERR The ID specified in XADD is equal or smaller",
    )
    .await;
    c.err(
        "XADD s 6-* a 5",
        "ERR The ID specified in XADD is equal or smaller",
    )
    .await;
    c.err(
        "XADD t 0-0 a 1",
        "ERR The ID specified in XADD must be greater than 0-0",
    )
    .await;
    c.err("XADD s * a", "ERR wrong number of arguments for 'xadd'")
        .await;
    c.err(
        "XADD s MAXLEN 1 MINID 1 * a 1",
        "ERR syntax error, MAXLEN and MINID",
    )
    .await;
    c.err(
        "XADD s MAXLEN 1 LIMIT 5 * a 1",
        "ERR syntax error, LIMIT cannot",
    )
    .await;
    c.err(
        "XADD s MAXLEN -1 * a 1",
        "ERR The MAXLEN argument must be >= 0.",
    )
    .await;
    c.err("XADD s x-y a 1", "ERR Invalid stream ID").await;
    assert_eq!(c.run("XLEN s").await, int(4));
    // NOMKSTREAM on a missing key: nil, nothing created.
    assert_eq!(c.run("XADD nope NOMKSTREAM * a 1").await, Frame::Null);
    assert_eq!(c.run("EXISTS nope").await, int(0));
    // `*` after a future explicit id keeps ids monotonic.
    assert_eq!(
        c.run("XADD f 99999999999999-5 a 1").await,
        bulk("99999999999999-5")
    );
    assert_eq!(c.run("XADD f * a 1").await, bulk("99999999999999-6"));
    // `*` on a fresh stream uses the transaction's clock.
    let Frame::Bulk(id) = c.run("XADD g * a 1").await else {
        panic!("no id")
    };
    let ms: u64 = String::from_utf8_lossy(&id)
        .split('-')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("ms");
    assert!(ms > 1_600_000_000_000, "{ms}");
    // Exhausted stream.
    c.run("XADD m 18446744073709551615-18446744073709551615 a 1")
        .await;
    c.err("XADD m * a 1", "ERR The stream has exhausted").await;
    // Wrong type.
    c.run("SET str v").await;
    c.err("XADD str * a 1", "WRONGTYPE").await;
    c.err("XLEN str", "WRONGTYPE").await;
}

#[tokio::test]
async fn trimming_exact_and_approximate() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    for i in 1..=10 {
        c.run(&format!("XADD s {i}-0 f v")).await;
    }
    assert_eq!(c.run("XTRIM s MAXLEN 7").await, int(3));
    assert_eq!(ids(&c.run("XRANGE s - + COUNT 1").await), ["4-0"]);
    assert_eq!(c.run("XTRIM s MINID 6").await, int(2));
    assert_eq!(c.run("XLEN s").await, int(5));
    assert_eq!(
        info_field(&c.run("XINFO STREAM s").await, "recorded-first-entry-id"),
        bulk("6-0")
    );
    assert_eq!(c.run("XADD s MAXLEN = 2 11-0 f v").await, bulk("11-0"));
    assert_eq!(ids(&c.run("XRANGE s - +").await), ["10-0", "11-0"]);
    // MAXLEN 0 empties the stream but keeps the key.
    c.run("XADD s MAXLEN 0 12-0 f v").await;
    assert_eq!(c.run("XLEN s").await, int(0));
    assert_eq!(c.run("EXISTS s").await, int(1));
    let info = c.run("XINFO STREAM s").await;
    assert_eq!(info_field(&info, "last-generated-id"), bulk("12-0"));
    assert_eq!(info_field(&info, "entries-added"), int(12));
    assert_eq!(info_field(&info, "first-entry"), Frame::Null);
    c.err("XTRIM s MAXLEN 1 LIMIT 30", "ERR syntax error, LIMIT")
        .await;
    c.err("XTRIM s", "ERR wrong number").await;
    c.err("XTRIM s FOO 1", "ERR syntax error").await;
    assert_eq!(c.run("XTRIM missing MAXLEN 1").await, int(0));

    // `~` trims whole nodes only (10 entries per node here).
    c.run("CONFIG SET stream-node-max-entries 10").await;
    for _ in 0..100 {
        c.run("XADD a * f v").await;
    }
    c.run("XADD a MAXLEN ~ 55 LIMIT 30 * f v").await;
    assert_eq!(c.run("XLEN a").await, int(71));
    c.run("XADD a MAXLEN ~ 55 LIMIT 30 * f v").await;
    assert_eq!(c.run("XLEN a").await, int(62));
    assert_eq!(c.run("XTRIM a MAXLEN ~ 55").await, int(0));
    assert_eq!(c.run("XTRIM a MAXLEN 55").await, int(7));
    // MINID ~ keeps a node holding an id at or above the threshold.
    let first = ids(&c.run("XRANGE a - + COUNT 1").await)[0].clone();
    let _ = first;
    c.run("CONFIG SET stream-node-max-entries 2").await;
    for i in 1..=3 {
        c.run(&format!("XADD b {i}-0 f v")).await;
    }
    assert_eq!(c.run("XTRIM b MAXLEN ~ 0 LIMIT 1").await, int(0));
    assert_eq!(c.run("XTRIM b MAXLEN ~ 0 LIMIT 2").await, int(2));
    assert_eq!(c.run("XTRIM b MINID ~ 3").await, int(0));
    assert_eq!(c.run("XTRIM b MINID 4").await, int(1));
    c.run("CONFIG SET stream-node-max-entries 100").await;
}

#[tokio::test]
async fn ranges_and_paging() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    for i in 1..=1200 {
        c.run(&format!("XADD s {i}-1 n {i}")).await;
    }
    let all = c.run("XRANGE s - +").await;
    assert_eq!(ids(&all).len(), 1200);
    assert_eq!(ids(&all)[1199], "1200-1");
    let rev = c.run("XREVRANGE s + - COUNT 600").await;
    assert_eq!(ids(&rev).len(), 600);
    assert_eq!(ids(&rev)[0], "1200-1");
    assert_eq!(ids(&rev)[599], "601-1");
    assert_eq!(
        c.run("XRANGE s 5 5").await,
        arr(vec![entry("5-1", &["n", "5"])])
    );
    assert_eq!(ids(&c.run("XRANGE s (5-1 7").await), ["6-1", "7-1"]);
    assert_eq!(ids(&c.run("XREVRANGE s (7-1 (4-1").await), ["6-1", "5-1"]);
    assert_eq!(c.run("XRANGE s 7 5").await, arr(vec![]));
    assert_eq!(c.run("XRANGE s - + COUNT 0").await, arr(vec![]));
    assert_eq!(c.run("XRANGE s - + COUNT -3").await, arr(vec![]));
    assert_eq!(c.run("XRANGE missing - +").await, arr(vec![]));
    c.err("XRANGE s - + COUNT x", "ERR value is not an integer")
        .await;
    c.err("XRANGE s - + LIMIT 1", "ERR syntax error").await;
    c.err("XRANGE s (- +", "ERR Invalid stream ID").await;
    c.err("XRANGE s - (0-0", "ERR invalid end ID for the interval")
        .await;
}

#[tokio::test]
async fn xdel_and_xsetid() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    for i in 1..=5 {
        c.run(&format!("XADD s {i}-0 f v")).await;
    }
    c.err("XDEL s 1-0 bad", "ERR Invalid stream ID").await;
    assert_eq!(c.run("XLEN s").await, int(5));
    assert_eq!(c.run("XDEL s 2-0 2-0 9-0").await, int(1));
    let info = c.run("XINFO STREAM s").await;
    assert_eq!(info_field(&info, "max-deleted-entry-id"), bulk("2-0"));
    assert_eq!(info_field(&info, "recorded-first-entry-id"), bulk("1-0"));
    assert_eq!(c.run("XDEL s 1-0").await, int(1));
    let info = c.run("XINFO STREAM s").await;
    assert_eq!(info_field(&info, "max-deleted-entry-id"), bulk("2-0"));
    assert_eq!(info_field(&info, "recorded-first-entry-id"), bulk("3-0"));
    assert_eq!(info_field(&info, "first-entry"), entry("3-0", &["f", "v"]));
    assert_eq!(info_field(&info, "last-entry"), entry("5-0", &["f", "v"]));
    assert_eq!(c.run("XDEL missing 1-0").await, int(0));

    c.err("XSETID s 4-0", "ERR The ID specified in XSETID is smaller")
        .await;
    c.err("XSETID nokey 1-0", "ERR no such key").await;
    c.err(
        "XSETID s 9-0 ENTRIESADDED -1",
        "ERR entries_added must be positive",
    )
    .await;
    c.err(
        "XSETID s 9-0 ENTRIESADDED 2",
        "ERR The entries_added specified",
    )
    .await;
    c.err(
        "XSETID s 9-0 MAXDELETEDID 10-0",
        "ERR The ID specified in XSETID is smaller than the provided max_deleted",
    )
    .await;
    assert_eq!(
        c.run("XSETID s 9-0 ENTRIESADDED 20 MAXDELETEDID 8-0").await,
        Frame::ok()
    );
    let info = c.run("XINFO STREAM s").await;
    assert_eq!(info_field(&info, "last-generated-id"), bulk("9-0"));
    assert_eq!(info_field(&info, "entries-added"), int(20));
    assert_eq!(info_field(&info, "max-deleted-entry-id"), bulk("8-0"));
    assert_eq!(c.run("XADD s 9-* f v").await, bulk("9-1"));
}

#[tokio::test]
async fn xread_forms() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.run("XADD a 1-0 f 1").await;
    c.run("XADD a 2-0 f 2").await;
    c.run("XADD b 3-0 g 3").await;
    assert_eq!(
        c.run("XREAD COUNT 1 STREAMS a b 0 0").await,
        arr(vec![
            arr(vec![bulk("a"), arr(vec![entry("1-0", &["f", "1"])])]),
            arr(vec![bulk("b"), arr(vec![entry("3-0", &["g", "3"])])]),
        ])
    );
    assert_eq!(c.run("XREAD STREAMS a b 2-0 3-0").await, Frame::NullArray);
    assert_eq!(c.run("XREAD STREAMS a $").await, Frame::NullArray);
    assert_eq!(c.run("XREAD STREAMS nokey 0").await, Frame::NullArray);
    // BLOCK outside a blockable context (the handler answers the timeout
    // reply at once until waiting is wired in).
    assert_eq!(c.run("XREAD BLOCK 10 STREAMS a $").await, Frame::NullArray);
    c.err(
        "XREAD STREAMS a b 0",
        "ERR Unbalanced XREAD list of streams",
    )
    .await;
    c.err("XREAD COUNT 1 a 0", "ERR syntax error").await;
    c.err("XREAD STREAMS a >", "ERR The > ID can be specified only")
        .await;
    c.err("XREAD BLOCK -1 STREAMS a 0", "ERR timeout is negative")
        .await;
    c.err(
        "XREAD GROUP g c STREAMS a 0",
        "ERR The GROUP option is only supported",
    )
    .await;
    c.run("SET s v").await;
    c.err("XREAD STREAMS s 0", "WRONGTYPE").await;
    // A blocking read waits on a retyped key instead of failing (here:
    // no blocking context, so the timeout reply).
    assert_eq!(c.run("XREAD BLOCK 10 STREAMS s 0").await, Frame::NullArray);
    // RESP3: a map of key -> entries.
    c.run("HELLO 3").await;
    let r = c.run("XREAD STREAMS a 1-0").await;
    assert_eq!(
        r,
        Frame::Map(vec![(bulk("a"), arr(vec![entry("2-0", &["f", "2"])]))])
    );
}

/// The blocking contract: with `may_block`, XREAD/XREADGROUP with nothing
/// to serve answer `ExecError::Block` (no writes buffered), and XREAD's `$`
/// is replaced by the id it stood for in `rerun`.
#[tokio::test]
async fn blocking_contract() {
    let store = MemStore::new();
    let handler = RedisHandler::new(
        Arc::new(store.clone()),
        HandlerConfig {
            port: 6379,
            max_reply_bytes: 1 << 20,
            max_clients: 10,
            version: "7.0.15".into(),
        },
        Arc::new(ServerStats::default()),
    );
    let shared = handler.shared();
    async fn run(
        store: &MemStore,
        shared: &elastickv_api_redis::shared::Shared,
        may_block: bool,
        line: &str,
    ) -> Result<Frame, ExecError> {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let name = argv[0].to_ascii_lowercase();
        let name = if name == b"xgroup" {
            format!(
                "xgroup|{}",
                String::from_utf8_lossy(&argv[1]).to_lowercase()
            )
        } else {
            String::from_utf8_lossy(&name).into_owned()
        };
        let mut tx = store.begin().await.expect("begin");
        let res = {
            let mut cx = Ctx::new(tx.as_mut(), Protocol::Resp2, shared, 0);
            cx.may_block = may_block;
            cmd::dispatch(&mut cx, &name, &argv).await
        };
        let buffered = tx.write_count();
        match &res {
            Err(ExecError::Block(_)) => assert_eq!(buffered, 0, "{line}: writes before Block"),
            _ => {
                tx.commit().await.expect("commit");
            }
        }
        res
    }
    run(&store, shared, false, "XADD s 5-0 f v")
        .await
        .expect("xadd");
    match run(&store, shared, true, "XREAD BLOCK 100 STREAMS s nokey $ $").await {
        Err(ExecError::Block(b)) => {
            assert_eq!(b.keys, vec![Bytes::from("s"), Bytes::from("nokey")]);
            assert_eq!(b.timeout, Some(std::time::Duration::from_millis(100)));
            assert_eq!(b.timeout_reply, Frame::NullArray);
            let rerun = b.rerun.expect("rerun args");
            assert_eq!(
                rerun,
                ["XREAD", "BLOCK", "100", "STREAMS", "s", "nokey", "5-0", "0-0"]
                    .iter()
                    .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                    .collect::<Vec<_>>()
            );
        }
        other => panic!("expected Block, got {other:?}"),
    }
    match run(&store, shared, true, "XREAD BLOCK 0 STREAMS s 5-0").await {
        Err(ExecError::Block(b)) => {
            assert_eq!(b.timeout, None);
            assert!(b.rerun.is_none());
        }
        other => panic!("expected Block, got {other:?}"),
    }
    // Data available: served at once.
    assert!(matches!(
        run(&store, shared, true, "XREAD BLOCK 0 STREAMS s 0").await,
        Ok(Frame::Array(_))
    ));
    // Not blockable (MULTI, scripts): the timeout reply.
    assert_eq!(
        run(&store, shared, false, "XREAD BLOCK 0 STREAMS s $")
            .await
            .expect("reply"),
        Frame::NullArray
    );
    // XREADGROUP `>` with nothing new blocks without creating the consumer.
    run(&store, shared, false, "XGROUP CREATE s g $")
        .await
        .expect("create");
    match run(
        &store,
        shared,
        true,
        "XREADGROUP GROUP g alice BLOCK 5 STREAMS s >",
    )
    .await
    {
        Err(ExecError::Block(b)) => assert_eq!(b.keys, vec![Bytes::from("s")]),
        other => panic!("expected Block, got {other:?}"),
    }
    // A history read never blocks.
    assert_eq!(
        run(
            &store,
            shared,
            true,
            "XREADGROUP GROUP g alice BLOCK 5 STREAMS s 0"
        )
        .await
        .expect("history"),
        arr(vec![arr(vec![bulk("s"), arr(vec![])])])
    );
}

#[tokio::test]
async fn consumer_group_flow() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    c.err(
        "XGROUP CREATE s g $",
        "ERR The XGROUP subcommand requires the key to exist",
    )
    .await;
    assert_eq!(c.run("XGROUP CREATE s g $ MKSTREAM").await, Frame::ok());
    c.err("XGROUP CREATE s g $", "BUSYGROUP").await;
    c.err(
        "XGROUP CREATE s h 0 ENTRIESREAD -5",
        "ERR value for ENTRIESREAD",
    )
    .await;
    for i in 1..=4 {
        c.run(&format!("XADD s {i}-0 f {i}")).await;
    }
    c.err(
        "XREADGROUP GROUP nog a STREAMS s >",
        "NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP",
    )
    .await;
    c.err(
        "XREADGROUP GROUP g a STREAMS s $",
        "ERR The $ ID is meaningless",
    )
    .await;
    let r = c.run("XREADGROUP GROUP g alice COUNT 3 STREAMS s >").await;
    assert_eq!(
        r,
        arr(vec![arr(vec![
            bulk("s"),
            arr(vec![
                entry("1-0", &["f", "1"]),
                entry("2-0", &["f", "2"]),
                entry("3-0", &["f", "3"])
            ])
        ])])
    );
    assert_eq!(
        ids(&c
            .run("XREADGROUP GROUP g bob NOACK STREAMS s >")
            .await
            .clone()
            .pipe_first_entries()),
        ["4-0"]
    );
    // Nothing new.
    assert_eq!(
        c.run("XREADGROUP GROUP g bob STREAMS s >").await,
        Frame::NullArray
    );
    // Summary: bob read with NOACK, so only alice has pending entries.
    assert_eq!(
        c.run("XPENDING s g").await,
        arr(vec![
            int(3),
            bulk("1-0"),
            bulk("3-0"),
            arr(vec![arr(vec![bulk("alice"), bulk("3")])])
        ])
    );
    store.advance_ms(5000);
    let ext = c.run("XPENDING s g - + 10").await;
    let Frame::Array(rows) = &ext else { panic!() };
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        arr(vec![
            bulk("1-0"),
            bulk("alice"),
            rows_idle(&rows[0]),
            int(1)
        ])
    );
    assert!(matches!(rows_idle(&rows[0]), Frame::Integer(n) if n >= 5000));
    assert_eq!(
        ids(&c.run("XPENDING s g IDLE 4000 (1-0 + 10 alice").await),
        ["2-0", "3-0"]
    );
    assert_eq!(c.run("XPENDING s g IDLE 9000 - + 10").await, arr(vec![]));
    assert_eq!(c.run("XPENDING s g - + 10 bob").await, arr(vec![]));
    c.err(
        "XPENDING s nog",
        "NOGROUP No such key 's' or consumer group 'nog'",
    )
    .await;
    c.err("XPENDING s g - +", "ERR syntax error").await;

    // History read bumps the delivery count.
    let h = c.run("XREADGROUP GROUP g alice STREAMS s 1-0").await;
    assert_eq!(
        h,
        arr(vec![arr(vec![
            bulk("s"),
            arr(vec![entry("2-0", &["f", "2"]), entry("3-0", &["f", "3"])])
        ])])
    );
    let ext = c.run("XPENDING s g 2-0 2-0 1").await;
    let Frame::Array(rows) = &ext else { panic!() };
    assert_eq!(
        rows[0],
        arr(vec![
            bulk("2-0"),
            bulk("alice"),
            recent_idle(&rows[0]),
            int(2)
        ])
    );

    // XACK: unknown ids and repeats count once.
    assert_eq!(c.run("XACK s g 1-0 1-0 9-0").await, int(1));
    c.err("XACK s g bad", "ERR Invalid stream ID").await;
    assert_eq!(c.run("XACK s nog 1-0").await, int(0));

    // XCLAIM: too recent, then with min-idle 0; JUSTID keeps the count.
    assert_eq!(c.run("XCLAIM s g carol 3600000 2-0").await, arr(vec![]));
    assert_eq!(
        c.run("XCLAIM s g carol 0 2-0 RETRYCOUNT 7").await,
        arr(vec![entry("2-0", &["f", "2"])])
    );
    assert_eq!(
        c.run("XCLAIM s g carol 0 2-0 JUSTID").await,
        arr(vec![bulk("2-0")])
    );
    let ext = c.run("XPENDING s g 2-0 2-0 1").await;
    let Frame::Array(rows) = &ext else { panic!() };
    assert_eq!(
        rows[0],
        arr(vec![
            bulk("2-0"),
            bulk("carol"),
            recent_idle(&rows[0]),
            int(7)
        ])
    );
    // FORCE creates a pending entry for an existing entry; LASTID moves
    // the group forward.
    assert_eq!(
        c.run("XCLAIM s g dave 0 4-0 FORCE JUSTID LASTID 4-0").await,
        arr(vec![bulk("4-0")])
    );
    c.err(
        "XCLAIM s g dave 0 4-0 BOGUS",
        "ERR Unrecognized XCLAIM option 'BOGUS'",
    )
    .await;
    c.err("XCLAIM s g dave x 4-0", "ERR Invalid min-idle-time")
        .await;
    // A deleted entry is dropped from the PEL instead of being claimed.
    c.run("XDEL s 3-0").await;
    assert_eq!(c.run("XCLAIM s g dave 0 3-0").await, arr(vec![]));
    assert_eq!(
        c.run("XPENDING s g").await,
        arr(vec![
            int(2),
            bulk("2-0"),
            bulk("4-0"),
            arr(vec![
                arr(vec![bulk("carol"), bulk("1")]),
                arr(vec![bulk("dave"), bulk("1")])
            ])
        ])
    );

    // XINFO CONSUMERS / GROUPS.
    store.advance_ms(1000);
    let cons = c.run("XINFO CONSUMERS s g").await;
    let Frame::Array(list) = &cons else { panic!() };
    let names: Vec<Frame> = list.iter().map(|c| info_field(c, "name")).collect();
    assert_eq!(
        names,
        vec![bulk("alice"), bulk("bob"), bulk("carol"), bulk("dave")]
    );
    assert_eq!(info_field(&list[0], "pending"), int(0));
    assert!(matches!(info_field(&list[3], "idle"), Frame::Integer(n) if n >= 1000));
    let groups = c.run("XINFO GROUPS s").await;
    let Frame::Array(gl) = &groups else { panic!() };
    assert_eq!(info_field(&gl[0], "consumers"), int(4));
    assert_eq!(info_field(&gl[0], "pending"), int(2));
    assert_eq!(info_field(&gl[0], "last-delivered-id"), bulk("4-0"));
    assert_eq!(info_field(&gl[0], "entries-read"), int(4));
    assert_eq!(info_field(&gl[0], "lag"), int(0));
    c.err(
        "XINFO CONSUMERS s nog",
        "NOGROUP No such consumer group 'nog' for key name 's'",
    )
    .await;

    // DELCONSUMER returns the pending count and drops its entries.
    assert_eq!(c.run("XGROUP DELCONSUMER s g carol").await, int(1));
    assert_eq!(c.run("XGROUP DELCONSUMER s g carol").await, int(0));
    assert_eq!(c.run("XGROUP CREATECONSUMER s g erin").await, int(1));
    assert_eq!(c.run("XGROUP CREATECONSUMER s g erin").await, int(0));
    c.err("XGROUP CREATECONSUMER s nog x", "NOGROUP").await;
    assert_eq!(
        info_field(&c.run("XINFO GROUPS s").await.first_item(), "pending"),
        int(1)
    );
    // DESTROY and re-create: the new group starts clean.
    assert_eq!(c.run("XGROUP DESTROY s g").await, int(1));
    assert_eq!(c.run("XGROUP DESTROY s g").await, int(0));
    c.run("XGROUP CREATE s g 0").await;
    assert_eq!(
        c.run("XPENDING s g").await,
        arr(vec![int(0), Frame::Null, Frame::Null, Frame::NullArray])
    );
    assert_eq!(c.run("XINFO CONSUMERS s g").await, arr(vec![]));
}

trait FrameExt {
    fn pipe_first_entries(self) -> Frame;
    fn first_item(self) -> Frame;
}

impl FrameExt for Frame {
    /// The entries of the first stream of an XREAD-style reply.
    fn pipe_first_entries(self) -> Frame {
        match self {
            Frame::Array(mut v) => match v.remove(0) {
                Frame::Array(mut kv) => kv.remove(1),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn first_item(self) -> Frame {
        match self {
            Frame::Array(mut v) => v.remove(0),
            other => panic!("{other:?}"),
        }
    }
}

/// The idle time of an XPENDING row, checked to be recent (the delivery
/// was just now; only a little real time may have passed).
fn recent_idle(row: &Frame) -> Frame {
    let idle = rows_idle(row);
    assert!(
        matches!(idle, Frame::Integer(n) if (0..1000).contains(&n)),
        "{idle:?}"
    );
    idle
}

/// The idle time of an XPENDING row.
fn rows_idle(row: &Frame) -> Frame {
    match row {
        Frame::Array(v) => v[2].clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn autoclaim_and_lag() {
    let (store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    for i in 1..=3 {
        c.run(&format!("XADD x {i}-0 f v")).await;
    }
    c.run("XGROUP CREATE x grp 0").await;
    let g = c.run("XINFO GROUPS x").await.first_item();
    assert_eq!(info_field(&g, "entries-read"), Frame::Null);
    assert_eq!(info_field(&g, "lag"), int(3));
    c.run("XREADGROUP GROUP grp Alice STREAMS x >").await;
    c.run("XDEL x 1-0").await;
    c.run("XDEL x 2-0").await;
    // Deleted entries count against COUNT and are reported separately.
    assert_eq!(
        c.run("XAUTOCLAIM x grp Bob 0 0-0 COUNT 1").await,
        arr(vec![bulk("2-0"), arr(vec![]), arr(vec![bulk("1-0")])])
    );
    assert_eq!(
        c.run("XAUTOCLAIM x grp Bob 0 2-0 COUNT 1").await,
        arr(vec![bulk("3-0"), arr(vec![]), arr(vec![bulk("2-0")])])
    );
    store.advance_ms(100);
    assert_eq!(
        c.run("XAUTOCLAIM x grp Bob 50 3-0 COUNT 1 JUSTID").await,
        arr(vec![bulk("0-0"), arr(vec![bulk("3-0")]), arr(vec![])])
    );
    assert_eq!(c.run("XPENDING x grp - + 10 Alice").await, arr(vec![]));
    c.err("XAUTOCLAIM x grp Bob 0 0 COUNT 0", "ERR COUNT must be > 0")
        .await;
    c.err("XAUTOCLAIM x nog Bob 0 0", "NOGROUP").await;

    // Lag with tombstones in the unread range is unknown.
    c.run("XADD y 1-0 f v").await;
    c.run("XADD y 2-0 f v").await;
    c.run("XADD y 3-0 f v").await;
    c.run("XGROUP CREATE y g 0").await;
    c.run("XDEL y 2-0").await;
    let g = c.run("XINFO GROUPS y").await.first_item();
    assert_eq!(info_field(&g, "lag"), Frame::Null);
    c.run("XREADGROUP GROUP g c COUNT 1 STREAMS y >").await;
    let g = c.run("XINFO GROUPS y").await.first_item();
    // Still a tombstone ahead of the group: the counter stays unknown.
    assert_eq!(info_field(&g, "entries-read"), Frame::Null);
    assert_eq!(info_field(&g, "lag"), Frame::Null);
    c.run("XREADGROUP GROUP g c STREAMS y >").await;
    let g = c.run("XINFO GROUPS y").await.first_item();
    assert_eq!(info_field(&g, "entries-read"), int(3));
    assert_eq!(info_field(&g, "lag"), int(0));
    // SETID back with ENTRIESREAD, then reading re-delivers (reassigning
    // pending entries to the new reader).
    c.run("XGROUP SETID y g 0 ENTRIESREAD 0").await;
    c.run("XREADGROUP GROUP g d STREAMS y >").await;
    assert_eq!(
        c.run("XPENDING y g").await,
        arr(vec![
            int(2),
            bulk("1-0"),
            bulk("3-0"),
            arr(vec![arr(vec![bulk("d"), bulk("2")])])
        ])
    );
    c.err(
        "XGROUP SETID y nog 0",
        "NOGROUP No such consumer group 'nog'",
    )
    .await;
}

#[tokio::test]
async fn xinfo_full_and_keyspace() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    for i in 1..=3 {
        c.run(&format!("XADD s {i}-0 f {i}")).await;
    }
    c.run("XGROUP CREATE s g 0").await;
    c.run("XREADGROUP GROUP g alice COUNT 2 STREAMS s >").await;
    let full = c.run("XINFO STREAM s FULL COUNT 1").await;
    assert_eq!(info_field(&full, "length"), int(3));
    assert_eq!(
        info_field(&full, "entries"),
        arr(vec![entry("1-0", &["f", "1"])])
    );
    let groups = info_field(&full, "groups");
    let g = groups.first_item();
    assert_eq!(info_field(&g, "pel-count"), int(2));
    let Frame::Array(pel) = info_field(&g, "pending") else {
        panic!()
    };
    assert_eq!(pel.len(), 1);
    let cons = info_field(&g, "consumers").first_item();
    assert_eq!(info_field(&cons, "name"), bulk("alice"));
    assert_eq!(info_field(&cons, "pel-count"), int(2));
    c.err("XINFO STREAM nokey", "ERR no such key").await;
    c.err(
        "XINFO STREAM s COUNT 1",
        "ERR unknown subcommand or wrong number of arguments for 'STREAM'",
    )
    .await;

    // Keyspace commands.
    assert_eq!(c.run("TYPE s").await, Frame::Simple(Bytes::from("stream")));
    assert_eq!(c.run("OBJECT ENCODING s").await, bulk("stream"));
    assert_eq!(
        c.run("SCAN 0 TYPE stream").await,
        arr(vec![bulk("0"), arr(vec![bulk("s")])])
    );
    assert_eq!(c.run("COPY s s2").await, int(1));
    assert_eq!(c.run("RENAME s s3").await, Frame::ok());
    for k in ["s2", "s3"] {
        assert_eq!(c.run(&format!("XLEN {k}")).await, int(3));
        assert_eq!(
            c.run(&format!("XPENDING {k} g")).await,
            arr(vec![
                int(2),
                bulk("1-0"),
                bulk("2-0"),
                arr(vec![arr(vec![bulk("alice"), bulk("2")])])
            ])
        );
    }
    // The copy is independent of the original.
    c.run("XACK s2 g 1-0").await;
    assert_eq!(
        info_field(&c.run("XINFO GROUPS s3").await.first_item(), "pending"),
        int(2)
    );
    assert_eq!(c.run("EXPIRE s3 100").await, int(1));
    assert_eq!(c.run("DEL s3").await, int(1));
    assert_eq!(c.run("XLEN s3").await, int(0));
    // A re-created stream does not see the old groups.
    c.run("XADD s3 1-0 f v").await;
    assert_eq!(c.run("XINFO GROUPS s3").await, arr(vec![]));
    // An empty stream stays (Redis keeps empty streams).
    c.run("XDEL s3 1-0").await;
    assert_eq!(c.run("EXISTS s3").await, int(1));
    // Inside MULTI, a stream's errors leave the transaction intact.
    assert_eq!(c.run("MULTI").await, Frame::ok());
    c.run("XADD m 1-0 f v").await;
    c.run("XADD m 1-0 f v").await;
    c.run("XADD m 2-0 f v").await;
    let r = c.run("EXEC").await;
    let Frame::Array(r) = r else { panic!() };
    assert_eq!(r[0], bulk("1-0"));
    assert!(matches!(r[1], Frame::Error(_)));
    assert_eq!(r[2], bulk("2-0"));
}

/// A stream DUMPed by redis-server 7.0.15 (RDB 10, type 19): XADD s 1-1..7-1
/// (fields f, n) and 9-0 (field other), XDEL s 3-1, groups g1 (from 0) and
/// g2 (from 5-1), XREADGROUP GROUP g1 alice COUNT 3, XREADGROUP GROUP g1 bob
/// COUNT 2, XACK s g1 2-1, XGROUP CREATECONSUMER s g2 carol.
const STREAM_7_DUMP: &str = concat!(
    "13011000000000000000010000000000000001c34081409012900000003700070101010201816602",
    "816e02002009000020010682763103010105200d0001600d02320302200d0003200f401b02330303",
    "200d0002200f400d02340304600d0004600d02350305600d0005600d02360306200902020106600d",
    "02370307200d0500010801dfff205910856f7468657206857368617065060601ff07090001010301",
    "0802026731060181ffffffffffffffff040000000000000001000000000000000161cb3151a20100",
    "00010000000000000004000000000000000161cb3151a20100000100000000000000050000000000",
    "00000162cb3151a2010000010000000000000006000000000000000162cb3151a201000001020561",
    "6c69636561cb3151a201000002000000000000000100000000000000010000000000000004000000",
    "000000000103626f6262cb3151a20100000200000000000000050000000000000001000000000000",
    "00060000000000000001026732050181ffffffffffffffff0001056361726f6c62cb3151a2010000",
    "000a00091d379fdf2466f9",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `payload` with its CRC-64 footer recomputed after an edit.
fn refooter(mut payload: Vec<u8>) -> Vec<u8> {
    let n = payload.len() - 8;
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&payload[..n]);
    payload[n..].copy_from_slice(&crc.to_le_bytes());
    payload
}

fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in payload");
    let mut out = hay[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&hay[at + from.len()..]);
    out
}

#[tokio::test]
async fn restore_of_a_redis_stream_and_broken_group_records() {
    let (_store, addr, _stop) = start().await;
    let mut c = Client::connect(addr).await;
    let payload = unhex(STREAM_7_DUMP);
    assert_eq!(
        c.cmd(&[&b"RESTORE"[..], b"s", b"0", &payload]).await,
        Frame::Simple("OK".into())
    );
    assert_eq!(c.run("XLEN s").await, int(7));
    let pending = c.run("XPENDING s g1").await;
    assert_eq!(
        pending,
        arr(vec![
            int(4),
            bulk("1-1"),
            bulk("6-1"),
            arr(vec![
                arr(vec![bulk("alice"), bulk("2")]),
                arr(vec![bulk("bob"), bulk("2")])
            ])
        ])
    );
    let info = c.run("XINFO STREAM s").await;
    assert_eq!(info_field(&info, "entries-added"), int(8));
    assert_eq!(info_field(&info, "max-deleted-entry-id"), bulk("3-1"));
    assert_eq!(info_field(&info, "groups"), int(2));
    // The group carries on: XACK and XREADGROUP see the restored state.
    assert_eq!(c.run("XACK s g1 1-1 4-1").await, int(2));
    let read = c.run("XREADGROUP GROUP g1 bob COUNT 5 STREAMS s >").await;
    let Frame::Array(streams) = read else {
        panic!("not an array: {read:?}")
    };
    let Frame::Array(stream) = &streams[0] else {
        panic!("not a stream reply: {streams:?}")
    };
    assert_eq!(ids(&stream[1]), vec!["7-1", "9-0"]);

    // Broken group records are refused, and nothing is written.
    let one_one = [0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    let one_two = [0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
    let broken = [
        // alice owns 1-2, which is not pending in g1 (and 1-1 has no owner).
        {
            let at = payload
                .windows(5)
                .position(|w| w == b"alice")
                .expect("alice");
            let mut p = payload[..at].to_vec();
            p.extend_from_slice(&replace_once(&payload[at..], &one_one, &one_two));
            p
        },
        // Two groups named g1.
        replace_once(&payload, b"\x02g2", b"\x02g1"),
        // Two consumers of g1 named alice.
        replace_once(&payload, b"\x03bob", b"\x05alice"),
    ];
    for p in broken {
        let reply = c.cmd(&[&b"RESTORE"[..], b"t", b"0", &refooter(p)]).await;
        assert_eq!(reply, Frame::Error("ERR Bad data format".into()));
        assert_eq!(c.run("EXISTS t").await, int(0));
    }
}
