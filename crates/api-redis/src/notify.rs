//! Keyspace notifications (`notify-keyspace-events`), as in Redis: a write
//! that changes a key publishes `<event>` on `__keyspace@<db>__:<key>`
//! (class `K`) and `<key>` on `__keyevent@<db>__:<event>` (class `E`),
//! for the event classes the parameter enables.
//!
//! Commands record their events in their [`crate::db::Ctx`] while they
//! run; the events are published only after the transaction commits (a
//! transaction re-run after a conflict starts with none), in command
//! order, before the replies go out — a client that subscribed before
//! writing sees the events of its write before its next command runs.
//! They go through the cluster-wide pub/sub fan-out like a PUBLISH, so a
//! subscriber on any node sees the events of writes made on every node.
//!
//! The parameter is cluster-wide and durable: CONFIG SET writes it to a
//! record in the store ([`CONFIG_KEY`]) in the same transaction that
//! changes it locally, and every node adopts a changed record within
//! [`REFRESH_INTERVAL`] ([`run_refresher`]), also after a restart. The
//! node that performs a write decides with its own copy whether to
//! publish; expired-key events come from the node running the background
//! reclaimer (`crate::reclaim`).
//!
//! `m` (`keymiss`, not part of `A`) is reported by the lookups of
//! read-only commands that find no live key, as in Redis. Not generated:
//! `e` (evicted; nothing is evicted — there is no maxmemory eviction) and
//! `d` (module events; there are no modules); the classes are accepted so
//! that CONFIG SET round-trips exactly as in Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::shared::Shared;
use crate::store::Store;

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key was removed because it expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted (never generated here).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read-only command's lookup found no key.
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (never generated here).
pub const MODULE: u32 = 1 << 12;
/// `n`: a key was created.
pub const NEW: u32 = 1 << 13;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Each class character in the order Redis prints them.
const CLASS_CHARS: [(char, u32); 11] = [
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('n', NEW),
];

/// How long a node may go on with a value of the parameter that another
/// node has changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The store record holding the cluster's `notify-keyspace-events`
/// (outside every database's metadata and element ranges, so FLUSHALL,
/// SCAN and the reclaimer never see it).
pub const CONFIG_KEY: &[u8] = b"\xFFrc\x00notify-keyspace-events";

/// The CONFIG SET error for a bad class character (Redis's text).
pub const BAD_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmd'.";

/// The flags of a `notify-keyspace-events` value; `None` for a character
/// that is not an event class.
pub fn parse_flags(value: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in value {
        flags |= match c {
            b'A' => ALL,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b'm' => KEY_MISS,
            _ => CLASS_CHARS
                .iter()
                .find(|(ch, _)| *ch as u8 == c)
                .map(|(_, f)| *f)?,
        };
    }
    Some(flags)
}

/// The canonical spelling of `flags` (what CONFIG GET answers): `A` when
/// every class of `A` is on, then `n`, `K`, `E`, `m`. (Redis 7.0 drops
/// `n` after `A`; it is kept here so that the value round-trips.)
pub fn flags_to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
        if flags & NEW != 0 {
            s.push('n');
        }
    } else {
        for (ch, f) in CLASS_CHARS {
            if flags & f != 0 {
                s.push(ch);
            }
        }
    }
    for (ch, f) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', KEY_MISS)] {
        if flags & f != 0 {
            s.push(ch);
        }
    }
    s
}

/// True when `flags` publish events of `class` at all.
pub fn wants(flags: u32, class: u32) -> bool {
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

/// One event a command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// The event's class (one of the class constants).
    pub class: u32,
    /// The event name (`set`, `lpush`, `expired`, ...).
    pub event: &'static str,
    /// The database of the key.
    pub db: u8,
    /// The key.
    pub key: Bytes,
}

/// The (channel, message) pairs `events` publish under `flags`, in order.
pub fn messages(flags: u32, events: &[KeyEvent]) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    for ev in events {
        if !wants(flags, ev.class) {
            continue;
        }
        if flags & KEYSPACE != 0 {
            let mut ch = format!("__keyspace@{}__:", ev.db).into_bytes();
            ch.extend_from_slice(&ev.key);
            out.push((Bytes::from(ch), Bytes::from_static(ev.event.as_bytes())));
        }
        if flags & KEYEVENT != 0 {
            let ch = format!("__keyevent@{}__:{}", ev.db, ev.event);
            out.push((Bytes::from(ch), ev.key.clone()));
        }
    }
    out
}

/// Publishes `events` (of a committed transaction) to this node's
/// subscribers and every other node's.
pub async fn publish(shared: &Shared, events: &[KeyEvent]) {
    if events.is_empty() {
        return;
    }
    let msgs = messages(shared.notify_flags(), events);
    if msgs.is_empty() {
        return;
    }
    for (channel, message) in &msgs {
        shared.hub.publish(channel, message);
    }
    if let Some(b) = shared.broadcaster.as_deref() {
        b.publish_many(&msgs).await;
    }
}

/// The store record for `value`: the writing transaction's start
/// timestamp (so that two writes of one value still differ) and the value.
pub fn encode_record(start_ts: u64, value: &str) -> Vec<u8> {
    let mut v = start_ts.to_be_bytes().to_vec();
    v.extend_from_slice(value.as_bytes());
    v
}

/// The value in a store record; `None` if the record is malformed or
/// names an unknown class (then the node keeps what it has).
pub fn decode_record(record: &[u8]) -> Option<u32> {
    let value = record.get(8..)?;
    parse_flags(value)
}

/// Adopts the cluster's value of the parameter whenever its record
/// changes, every [`REFRESH_INTERVAL`], until `shutdown` turns true.
pub async fn run_refresher(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen: Option<Vec<u8>> = None;
    loop {
        match read_record(store.as_ref()).await {
            Ok(record) if record != seen => {
                if let Some(flags) = record.as_deref().map_or(Some(0), decode_record) {
                    shared.adopt_notify_flags(flags);
                }
                seen = record;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reading notify-keyspace-events failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn read_record(store: &dyn Store) -> Result<Option<Vec<u8>>, elastickv_kv::KvError> {
    let mut tx = store.begin().await?;
    tx.get(CONFIG_KEY).await
}

/// True when this node should record events of `class` now.
pub fn enabled(shared: &Shared, class: u32) -> bool {
    wants(shared.notify_flags.load(Ordering::Relaxed), class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_in_redis() {
        let norm = |s: &str| flags_to_string(parse_flags(s.as_bytes()).expect("valid"));
        // The cases of Redis's "test CONFIG GET/SET of event flags".
        assert_eq!(norm("gKE"), "gKE");
        assert_eq!(norm("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(norm("KA"), "AK");
        assert_eq!(norm("EA"), "AE");
        assert_eq!(norm(""), "");
        assert_eq!(norm("g$lshzxetdKE"), "AKE");
        assert_eq!(norm("AnKEm"), "AnKEm");
        assert_eq!(parse_flags(b"Kq"), None);
        assert_eq!(parse_flags(b"a"), None);
    }

    #[test]
    fn messages_follow_the_flags() {
        let ev = |class, event| KeyEvent {
            class,
            event,
            db: 0,
            key: Bytes::from_static(b"foo"),
        };
        let events = [ev(STRING, "set"), ev(LIST, "lpush"), ev(NEW, "new")];
        let pairs = |flags| -> Vec<(String, String)> {
            messages(flags, &events)
                .into_iter()
                .map(|(c, m)| {
                    (
                        String::from_utf8_lossy(&c).into_owned(),
                        String::from_utf8_lossy(&m).into_owned(),
                    )
                })
                .collect()
        };
        let p = |c: &str, m: &str| (c.to_string(), m.to_string());
        assert_eq!(
            pairs(parse_flags(b"KEl").unwrap_or(0)),
            vec![
                p("__keyspace@0__:foo", "lpush"),
                p("__keyevent@0__:lpush", "foo")
            ]
        );
        // `A` does not include `n`.
        assert_eq!(
            pairs(parse_flags(b"EA").unwrap_or(0)),
            vec![
                p("__keyevent@0__:set", "foo"),
                p("__keyevent@0__:lpush", "foo")
            ]
        );
        assert_eq!(
            pairs(parse_flags(b"En").unwrap_or(0)),
            vec![p("__keyevent@0__:new", "foo")]
        );
        // Classes without K or E publish nothing.
        assert!(pairs(ALL | NEW).is_empty());
    }

    #[test]
    fn records_carry_the_value() {
        let r = encode_record(42, "KEA");
        assert_eq!(decode_record(&r), parse_flags(b"KEA"));
        assert_eq!(decode_record(b"short"), None);
        assert_eq!(decode_record(&encode_record(1, "K?")), None);
        assert_ne!(encode_record(1, "K"), encode_record(2, "K"));
    }
}
