//! Generic key commands: DEL UNLINK EXISTS TYPE TOUCH RENAME RENAMENX
//! COPY KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL OBJECT, and expiry:
//! EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT) PERSIST TTL PTTL
//! EXPIRETIME PEXPIRETIME.
//!
//! Walks over the keyspace (KEYS, SCAN, DBSIZE, RANDOMKEY, FLUSH*) read
//! metadata records in pages of [`PAGE`]; a glob pattern's literal prefix
//! narrows the range walked.

use bytes::Bytes;

use crate::db::{bulk, int, too_many_writes, CmdResult, Ctx, ExecError, Pager, MAX_REWRITE, PAGE};
use crate::frame::Frame;
use crate::glob;
use crate::layout::{self, KeyType, Meta};
use crate::notify::GENERIC;
use crate::parse::{parse_i64_strict, CmdError};

use super::strings::now_i64;

/// DEL / UNLINK key [key ...]
pub async fn del(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &argv[1..] {
        if let Some(m) = cx.meta(key).await? {
            cx.remove_key(key, &m).await?;
            cx.notify(GENERIC, "del", key);
            n += 1;
        }
    }
    Ok(int(n))
}

/// EXISTS key [key ...] (repeated keys count repeatedly) and TOUCH.
pub async fn exists(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &argv[1..] {
        if cx.meta(key).await?.is_some() {
            n += 1;
        }
    }
    Ok(int(n))
}

/// TYPE key
pub async fn type_(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Simple(Bytes::from_static(
        match cx.meta(&argv[1]).await? {
            Some(m) => m.ty.name(),
            None => "none",
        }
        .as_bytes(),
    )))
}

/// Copies `src`'s value (record `m`) to `dst` as a new incarnation; the
/// caller has removed whatever `dst` held.
/// `src` is in database `src_db`, `dst` in the context's database.
async fn copy_value(
    cx: &mut Ctx<'_>,
    src_db: u8,
    src: &[u8],
    m: &Meta,
    dst: &[u8],
) -> Result<(), ExecError> {
    cx.check_key(dst)?;
    if !m.ty.is_collection() {
        return cx.put_meta(dst, m);
    }
    if m.count as usize > MAX_REWRITE {
        return Err(too_many_writes());
    }
    let mut new = m.clone();
    new.version = cx.start_ts;
    let src_prefix = layout::version_prefix(src_db, src, m.version);
    let dst_prefix = layout::version_prefix(cx.db, dst, new.version);
    let mut pager = Pager::prefix(&src_prefix, false);
    loop {
        let rows = pager.next_page(cx.tx, PAGE).await?;
        for (k, v) in rows {
            let mut nk = dst_prefix.clone();
            nk.extend_from_slice(&k[src_prefix.len()..]);
            if nk.len() > elastickv_types::limits::MAX_KEY_BYTES {
                return Err(ExecError::err(
                    "destination key is too long for this value's fields or members",
                ));
            }
            cx.tx.put(nk, v);
        }
        if pager.is_done() {
            break;
        }
    }
    cx.put_meta(dst, &new)
}

/// RENAME / RENAMENX src dst
pub async fn rename(cx: &mut Ctx<'_>, argv: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&argv[1], &argv[2]);
    let Some(m) = cx.meta(src).await? else {
        return Err(ExecError::err("no such key"));
    };
    if src == dst {
        return Ok(if nx { Frame::Integer(0) } else { Frame::ok() });
    }
    if let Some(old) = cx.raw_meta(dst).await? {
        if nx && !old.is_expired(cx.now_ms) {
            return Ok(Frame::Integer(0));
        }
        cx.check_key(dst)?;
        cx.remove_key(dst, &old).await?;
    }
    copy_value(cx, cx.db, src, &m, dst).await?;
    cx.remove_key(src, &m).await?;
    cx.notify(GENERIC, "rename_from", src);
    cx.notify(GENERIC, "rename_to", dst);
    Ok(if nx { Frame::Integer(1) } else { Frame::ok() })
}

/// COPY source destination [DB destination-db] [REPLACE]
pub async fn copy(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (src, dst) = (&argv[1], &argv[2]);
    let mut replace = false;
    let mut dst_db = cx.db;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if argv[j].eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
        } else if argv[j].eq_ignore_ascii_case(b"DB") && more > 0 {
            dst_db = parse_db_index(&argv[j + 1])?;
            j += 1;
        } else {
            return Err(ExecError::syntax());
        }
        j += 1;
    }
    if src == dst && dst_db == cx.db {
        return Err(ExecError::err(
            "source and destination objects are the same",
        ));
    }
    let Some(m) = cx.meta(src).await? else {
        return Ok(Frame::Integer(0));
    };
    let src_db = cx.db;
    cx.db = dst_db;
    let copied = copy_into_current_db(cx, src_db, src, &m, dst, replace).await;
    if matches!(copied, Ok(true)) {
        cx.notify(GENERIC, "copy_to", dst);
    }
    cx.db = src_db;
    Ok(Frame::Integer(i64::from(copied?)))
}

/// Copies `src` (database `src_db`, record `m`) to `dst` in the context's
/// database unless a live `dst` exists and `replace` is false. Returns
/// whether it copied.
async fn copy_into_current_db(
    cx: &mut Ctx<'_>,
    src_db: u8,
    src: &[u8],
    m: &Meta,
    dst: &[u8],
    replace: bool,
) -> Result<bool, ExecError> {
    if let Some(old) = cx.raw_meta(dst).await? {
        if !old.is_expired(cx.now_ms) && !replace {
            return Ok(false);
        }
        cx.check_key(dst)?;
        cx.remove_key(dst, &old).await?;
    }
    copy_value(cx, src_db, src, m, dst).await?;
    Ok(true)
}

/// MOVE key db: moves a key to another database unless it exists there.
pub async fn move_(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let dst_db = parse_db_index(&argv[2])?;
    if dst_db == cx.db {
        return Err(ExecError::err(
            "source and destination objects are the same",
        ));
    }
    let Some(m) = cx.meta(key).await? else {
        return Ok(Frame::Integer(0));
    };
    let src_db = cx.db;
    cx.db = dst_db;
    let moved = copy_into_current_db(cx, src_db, key, &m, key, false).await;
    cx.db = src_db;
    if !moved? {
        return Ok(Frame::Integer(0));
    }
    cx.remove_key(key, &m).await?;
    cx.notify(GENERIC, "move_from", key);
    cx.db = dst_db;
    cx.notify(GENERIC, "move_to", key);
    cx.db = src_db;
    Ok(Frame::Integer(1))
}

/// Number of databases (Redis's default `databases 16`).
pub const DATABASES: i64 = 16;

/// Parses a database index argument the way Redis does (integer check,
/// then range check).
pub fn parse_db_index(arg: &[u8]) -> Result<u8, ExecError> {
    let db = parse_i64_strict(arg).ok_or(CmdError::NotInteger)?;
    if i32::try_from(db).is_err() {
        return Err(CmdError::NotInteger.into());
    }
    if !(0..DATABASES).contains(&db) {
        return Err(ExecError::err("DB index is out of range"));
    }
    Ok(db as u8)
}

/// The literal prefix of a glob pattern (what every match starts with).
pub fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' if i + 1 < pattern.len() => {
                out.push(pattern[i + 1]);
                i += 2;
            }
            // A trailing backslash matches itself literally? Stop to be safe.
            b'\\' => break,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// KEYS pattern
pub async fn keys(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let mut prefix = layout::db_meta_prefix(cx.db);
    prefix.extend_from_slice(&literal_prefix(pattern));
    let mut pager = Pager::prefix(&prefix, false);
    let mut out = Vec::new();
    loop {
        let rows = pager.next_page(cx.tx, PAGE).await?;
        for (k, v) in rows {
            let key = &k[layout::META_KEY_OVERHEAD..];
            if !all && !glob::glob_match(pattern, key) {
                continue;
            }
            if Meta::decode(&v)?.is_expired(cx.now_ms) {
                continue;
            }
            cx.charge(key.len())?;
            out.push(Frame::bulk(key));
        }
        if pager.is_done() {
            return Ok(Frame::Array(out));
        }
    }
}

/// Parses a SCAN-family cursor: `ERR invalid cursor` unless an unsigned
/// 64-bit decimal.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, ExecError> {
    let s = std::str::from_utf8(arg).map_err(|_| ExecError::err("invalid cursor"))?;
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ExecError::err("invalid cursor"));
    }
    s.parse::<u64>()
        .map_err(|_| ExecError::err("invalid cursor"))
}

/// MATCH / COUNT / (TYPE) options of the SCAN family.
pub struct ScanOpts {
    /// MATCH pattern.
    pub pattern: Option<Bytes>,
    /// COUNT (entries examined per call).
    pub count: usize,
    /// TYPE filter (SCAN only).
    pub ty: Option<Option<KeyType>>,
    /// NOVALUES (HSCAN).
    pub novalues: bool,
}

/// Most entries one SCAN-family call examines, whatever COUNT says.
pub const MAX_SCAN_COUNT: usize = 100_000;

/// Parses SCAN options from `argv[from..]`.
pub fn parse_scan_opts(
    argv: &[Bytes],
    from: usize,
    allow_type: bool,
) -> Result<ScanOpts, ExecError> {
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
        ty: None,
        novalues: false,
    };
    let mut j = from;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
            let n = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
            if n < 1 {
                return Err(ExecError::syntax());
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX).min(MAX_SCAN_COUNT);
            j += 2;
        } else if opt.eq_ignore_ascii_case(b"MATCH") && more > 0 {
            let p = argv[j + 1].clone();
            o.pattern = if p.as_ref() == b"*" { None } else { Some(p) };
            j += 2;
        } else if allow_type && opt.eq_ignore_ascii_case(b"TYPE") && more > 0 {
            // An unknown type matches nothing (Redis 7.0 behaviour).
            o.ty = Some(KeyType::from_name(&argv[j + 1]));
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    Ok(o)
}

/// Looks a non-zero cursor up in the node's cursor table.
pub fn cursor_position(cx: &Ctx<'_>, cursor: u64) -> Result<Option<Vec<u8>>, ExecError> {
    if cursor == 0 {
        return Ok(None);
    }
    match cx.shared.cursors().get(cursor) {
        Some(p) => Ok(Some(p)),
        None => Err(ExecError::err(
            "invalid cursor (unknown or expired on this node)",
        )),
    }
}

/// The `[cursor, [items]]` reply; `resume` is where the next call starts.
pub fn scan_reply(cx: &Ctx<'_>, resume: Option<Vec<u8>>, items: Vec<Frame>) -> Frame {
    let cursor = match resume {
        Some(pos) => cx.shared.cursors().insert(pos),
        None => 0,
    };
    Frame::Array(vec![Frame::bulk(cursor.to_string()), Frame::Array(items)])
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
pub async fn scan(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[1])?;
    let o = parse_scan_opts(argv, 2, true)?;
    let mut prefix = layout::db_meta_prefix(cx.db);
    if let Some(p) = &o.pattern {
        prefix.extend_from_slice(&literal_prefix(p));
    }
    let start = match cursor_position(cx, cursor)? {
        Some(pos) if pos > prefix => pos,
        _ => prefix.clone(),
    };
    let mut pager = Pager::new(start, layout::prefix_end(&prefix), false);
    let mut out = Vec::new();
    let mut examined = 0;
    let mut last: Option<Vec<u8>> = None;
    while examined < o.count && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (o.count - examined).min(PAGE))
            .await?;
        examined += rows.len();
        for (k, v) in rows {
            let key = &k[layout::META_KEY_OVERHEAD..];
            let keep = o.pattern.as_ref().is_none_or(|p| glob::glob_match(p, key));
            if keep {
                let m = Meta::decode(&v)?;
                let type_ok = match o.ty {
                    None => true,
                    Some(t) => Some(m.ty) == t,
                };
                if type_ok && !m.is_expired(cx.now_ms) {
                    cx.charge(key.len())?;
                    out.push(Frame::bulk(key));
                }
            }
            last = Some(k);
        }
    }
    let resume = if pager.is_done() {
        None
    } else {
        last.map(|mut k| {
            k.push(0);
            k
        })
    };
    Ok(scan_reply(cx, resume, out))
}

/// DBSIZE: the number of live keys (a paged walk over every metadata
/// record: O(keys)).
pub async fn dbsize(cx: &mut Ctx<'_>) -> Result<(u64, u64), ExecError> {
    let mut pager = Pager::prefix(&layout::db_meta_prefix(cx.db), false);
    let (mut keys, mut expires) = (0u64, 0u64);
    loop {
        for (_, v) in pager.next_page(cx.tx, PAGE * 4).await? {
            let m = Meta::decode(&v)?;
            if !m.is_expired(cx.now_ms) {
                keys += 1;
                if m.expire_at != 0 {
                    expires += 1;
                }
            }
        }
        if pager.is_done() {
            return Ok((keys, expires));
        }
    }
}

/// RANDOMKEY: a live key picked uniformly from a window of the keyspace.
/// A database of at most [`PAGE`] keys is the window itself, so every key
/// is equally likely (as in Redis). A larger one is not counted: the window
/// is the page of keys at or after a random probe drawn between its first
/// and last key (wrapping around once), which spreads picks over the whole
/// keyspace however its keys are named — a probe of random bytes would
/// land before or after keys sharing a prefix (`user:…`) nearly always and
/// return the first key.
pub async fn randomkey(cx: &mut Ctx<'_>) -> CmdResult {
    let prefix = layout::db_meta_prefix(cx.db);
    let end = layout::prefix_end(&prefix);
    let mut head = Pager::new(prefix.clone(), end.clone(), false);
    let first_page = head.next_page(cx.tx, PAGE).await?;
    let (Some((first, _)), Some(_)) = (first_page.first(), first_page.last()) else {
        return Ok(Frame::Null);
    };
    if head.is_done() {
        return pick_live(cx, &first_page);
    }
    let first = first.clone();
    let last = match Pager::new(prefix.clone(), end.clone(), true)
        .next_page(cx.tx, 1)
        .await?
        .into_iter()
        .next()
    {
        Some((k, _)) => k,
        None => return Ok(Frame::Null),
    };
    let probe = probe_between(&first, &last, &mut rand::thread_rng());
    for (from, to) in [(probe.clone(), end), (prefix, Some(probe))] {
        let mut pager = Pager::new(from, to, false);
        // Skip pages of expired keys, but only a bounded number: a
        // keyspace of nothing but expired keys answers nil.
        for _ in 0..16 {
            let page = pager.next_page(cx.tx, PAGE).await?;
            if let Frame::Bulk(k) = pick_live(cx, &page)? {
                return Ok(Frame::Bulk(k));
            }
            if pager.is_done() {
                break;
            }
        }
    }
    Ok(Frame::Null)
}

/// One live key of `rows` (metadata records), uniformly; nil if none.
fn pick_live(cx: &Ctx<'_>, rows: &[(Vec<u8>, Vec<u8>)]) -> CmdResult {
    let mut live = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        if !Meta::decode(v)?.is_expired(cx.now_ms) {
            live.push(k);
        }
    }
    if live.is_empty() {
        return Ok(Frame::Null);
    }
    let k = live[rand::Rng::gen_range(&mut rand::thread_rng(), 0..live.len())];
    Ok(Frame::bulk(&k[layout::META_KEY_OVERHEAD..]))
}

/// A random key between `lo` and `hi` (`lo < hi`) by byte order: their
/// common prefix, a byte drawn between theirs at the first difference
/// (`lo` shorter than that counts as 0), then four random bytes. It may
/// fall slightly outside `[lo, hi]`; the caller wraps around.
fn probe_between(lo: &[u8], hi: &[u8], rng: &mut impl rand::Rng) -> Vec<u8> {
    let common = lo.iter().zip(hi).take_while(|(a, b)| a == b).count();
    let mut probe = lo[..common].to_vec();
    let lo_b = lo.get(common).copied().unwrap_or(0);
    let hi_b = hi.get(common).copied().unwrap_or(u8::MAX).max(lo_b);
    probe.push(rng.gen_range(lo_b..=hi_b));
    let tail: [u8; 4] = rng.gen();
    probe.extend_from_slice(&tail);
    probe
}

/// FLUSHDB / FLUSHALL [ASYNC|SYNC] inside a transaction: deletes every
/// metadata record (pages of [`PAGE`]); elements become unreachable
/// garbage, as after DEL. Returns how many records were deleted, and
/// whether the walk finished (false: `max` records were deleted and more
/// remain — the caller commits and continues in a new transaction).
///
/// `all` (FLUSHALL) walks every database, otherwise only the context's.
pub async fn flush_some(
    cx: &mut Ctx<'_>,
    max: usize,
    all: bool,
) -> Result<(usize, bool), ExecError> {
    let prefix = if all {
        layout::META_PREFIX.to_vec()
    } else {
        layout::db_meta_prefix(cx.db)
    };
    let mut pager = Pager::prefix(&prefix, false);
    let mut n = 0;
    loop {
        let rows = pager.next_page(cx.tx, PAGE.min(max - n).max(1)).await?;
        for (k, _) in rows {
            cx.tx.delete(k);
            n += 1;
        }
        if pager.is_done() {
            return Ok((n, true));
        }
        if n >= max {
            return Ok((n, false));
        }
    }
}

/// Validates FLUSHDB/FLUSHALL's optional argument.
pub fn check_flush_args(argv: &[Bytes]) -> Result<(), ExecError> {
    match argv.len() {
        1 => Ok(()),
        2 if argv[1].eq_ignore_ascii_case(b"ASYNC") || argv[1].eq_ignore_ascii_case(b"SYNC") => {
            Ok(())
        }
        _ => Err(ExecError::syntax()),
    }
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key
pub async fn object(cx: &mut Ctx<'_>, sub: &str, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let Some(m) = cx.meta(key).await? else {
        return Ok(Frame::Null);
    };
    match sub {
        "object|encoding" => Ok(Frame::bulk(encoding(cx, key, &m).await?)),
        "object|refcount" => Ok(Frame::Integer(1)),
        "object|idletime" => Ok(Frame::Integer(0)),
        "object|freq" => Err(ExecError::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        _ => Err(ExecError::syntax()),
    }
}

/// The encoding Redis 7.0 would report for this value, judged by the same
/// size thresholds (CONFIG `*-max-listpack-*`, `set-max-intset-entries`).
async fn encoding(cx: &mut Ctx<'_>, key: &[u8], m: &Meta) -> Result<&'static str, ExecError> {
    let sh = cx.shared;
    if m.flags & layout::FLAG_BIG_ENCODING != 0 {
        return Ok(match m.ty {
            KeyType::String => "raw",
            KeyType::ZSet => "skiplist",
            KeyType::List => "quicklist",
            KeyType::Stream => "stream",
            KeyType::Hash | KeyType::Set => "hashtable",
        });
    }
    Ok(match m.ty {
        KeyType::String => {
            if m.value.len() <= 20 && parse_i64_strict(&m.value).is_some() {
                "int"
            } else if m.value.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        KeyType::List => "quicklist",
        KeyType::Stream => "stream",
        KeyType::Hash | KeyType::ZSet | KeyType::Set => {
            let (entries, value, tag, small, big) = match m.ty {
                KeyType::Hash => (
                    sh.config_int("hash-max-listpack-entries", 128),
                    sh.config_int("hash-max-listpack-value", 64),
                    layout::TAG_HASH,
                    "listpack",
                    "hashtable",
                ),
                KeyType::ZSet => (
                    sh.config_int("zset-max-listpack-entries", 128),
                    sh.config_int("zset-max-listpack-value", 64),
                    layout::TAG_ZMEMBER,
                    "listpack",
                    "skiplist",
                ),
                _ => (
                    sh.config_int("set-max-intset-entries", 512),
                    i64::MAX,
                    layout::TAG_SET,
                    "intset",
                    "hashtable",
                ),
            };
            if m.count as i64 > entries {
                return Ok(big);
            }
            let rows = cx.load_all(key, m, tag).await?;
            let fits = rows.iter().all(|(sub, v)| {
                if m.ty == KeyType::Set {
                    parse_i64_strict(sub).is_some()
                } else {
                    let vlen = if m.ty == KeyType::Hash {
                        layout::dec_field(v).map(|(x, _)| x.len()).unwrap_or(0)
                    } else {
                        0
                    };
                    (sub.len() as i64) <= value && (vlen as i64) <= value
                }
            });
            if fits {
                small
            } else {
                big
            }
        }
    })
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT]
pub async fn expire(
    cx: &mut Ctx<'_>,
    argv: &[Bytes],
    name: &str,
    seconds: bool,
    absolute: bool,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &argv[3..] {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(ExecError::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(ExecError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(ExecError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let invalid = || ExecError::err(format!("invalid expire time in '{name}' command"));
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Err(invalid());
        }
        when *= 1000;
    }
    let base = if absolute { 0 } else { now_i64(cx) };
    if when > i64::MAX - base {
        return Err(invalid());
    }
    when += base;
    let key = &argv[1];
    let Some(mut m) = cx.meta(key).await? else {
        return Ok(Frame::Integer(0));
    };
    let current: i64 = if m.expire_at == 0 {
        -1
    } else {
        i64::try_from(m.expire_at).unwrap_or(i64::MAX)
    };
    if (nx && current != -1)
        || (xx && current == -1)
        || (gt && (when <= current || current == -1))
        || (lt && current != -1 && when >= current)
    {
        return Ok(Frame::Integer(0));
    }
    if when <= now_i64(cx) {
        cx.remove_key(key, &m).await?;
        cx.notify(GENERIC, "del", key);
    } else {
        m.expire_at = u64::try_from(when).unwrap_or(u64::MAX);
        cx.put_meta(key, &m)?;
        cx.notify(GENERIC, "expire", key);
    }
    Ok(Frame::Integer(1))
}

/// PERSIST key
pub async fn persist(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    match cx.meta(key).await? {
        Some(mut m) if m.expire_at != 0 => {
            m.expire_at = 0;
            cx.put_meta(key, &m)?;
            cx.notify(GENERIC, "persist", key);
            Ok(Frame::Integer(1))
        }
        _ => Ok(Frame::Integer(0)),
    }
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
pub async fn ttl(cx: &mut Ctx<'_>, argv: &[Bytes], ms: bool, absolute: bool) -> CmdResult {
    let Some(m) = cx.meta(&argv[1]).await? else {
        return Ok(Frame::Integer(-2));
    };
    if m.expire_at == 0 {
        return Ok(Frame::Integer(-1));
    }
    let at = i64::try_from(m.expire_at).unwrap_or(i64::MAX);
    let t = if absolute { at } else { at - now_i64(cx) }.max(0);
    Ok(Frame::Integer(if ms { t } else { (t + 500) / 1000 }))
}

/// A key name as a bulk reply (helper for other modules).
pub fn key_frame(key: &[u8]) -> Frame {
    bulk(key.to_vec())
}

/// MEMORY USAGE key [SAMPLES count]: an estimate of the bytes the key
/// occupies in the store (metadata record plus elements; for collections
/// the average size of the first `count` entries times the number of
/// entries, `SAMPLES 0` reads them all, bounded by [`MAX_LOADED`]).
pub async fn memory_usage(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let mut samples: usize = 5;
    let mut j = 3;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"SAMPLES") && j + 1 < argv.len() {
            let n = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
            if n < 0 {
                return Err(ExecError::syntax());
            }
            samples = if n == 0 {
                crate::db::MAX_LOADED
            } else {
                n as usize
            };
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    let Some(m) = cx.meta(key).await? else {
        return Ok(Frame::Null);
    };
    let meta_bytes = layout::META_KEY_OVERHEAD + key.len() + m.encode().len();
    if !m.ty.is_collection() || m.count == 0 {
        return Ok(Frame::Integer(meta_bytes as i64));
    }
    let mut pager = Pager::prefix(&layout::version_prefix(cx.db, key, m.version), false);
    let (mut seen, mut bytes) = (0usize, 0usize);
    while seen < samples && !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, (samples - seen).min(PAGE)).await? {
            seen += 1;
            bytes += k.len() + v.len();
        }
    }
    // Sorted sets keep two entries per member (by member and by score).
    let per_member = if m.ty == KeyType::ZSet { 2 } else { 1 };
    let entries = (m.count as usize).saturating_mul(per_member);
    let estimate = bytes.saturating_mul(entries).checked_div(seen).unwrap_or(0);
    Ok(Frame::Integer(meta_bytes.saturating_add(estimate) as i64))
}

/// One key's record and elements, loaded for SWAPDB.
struct LoadedKey {
    key: Vec<u8>,
    meta: Meta,
    /// Element subkeys (after the version) and values.
    elems: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Every live key of the context's database with its elements, bounded
/// by `budget` entries (decremented).
async fn load_db(cx: &mut Ctx<'_>, budget: &mut usize) -> Result<Vec<LoadedKey>, ExecError> {
    let mut pager = Pager::prefix(&layout::db_meta_prefix(cx.db), false);
    let mut metas = Vec::new();
    while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let m = Meta::decode(&v)?;
            // Expired keys stay where they are, invisible (swapping them
            // would count as touching a watched key, which Redis avoids).
            if m.is_expired(cx.now_ms) {
                continue;
            }
            *budget = budget.checked_sub(1).ok_or_else(too_many_writes)?;
            metas.push((k[layout::META_KEY_OVERHEAD..].to_vec(), m));
        }
    }
    let mut out = Vec::with_capacity(metas.len());
    for (key, meta) in metas {
        let mut elems = Vec::new();
        if meta.ty.is_collection() {
            let prefix = layout::version_prefix(cx.db, &key, meta.version);
            let mut pager = Pager::prefix(&prefix, false);
            while !pager.is_done() {
                for (k, v) in pager.next_page(cx.tx, PAGE).await? {
                    *budget = budget.checked_sub(1).ok_or_else(too_many_writes)?;
                    elems.push((k[prefix.len()..].to_vec(), v));
                }
            }
        }
        out.push(LoadedKey { key, meta, elems });
    }
    Ok(out)
}

/// Writes `keys` into the context's database under fresh versions.
fn store_db(cx: &mut Ctx<'_>, keys: Vec<LoadedKey>) -> Result<(), ExecError> {
    for LoadedKey {
        key,
        mut meta,
        elems,
    } in keys
    {
        if meta.ty.is_collection() {
            meta.version = cx.start_ts;
            let prefix = layout::version_prefix(cx.db, &key, meta.version);
            for (sub, v) in elems {
                let mut k = prefix.clone();
                k.extend_from_slice(&sub);
                cx.tx.put(k, v);
            }
        }
        cx.put_meta(&key, &meta)?;
    }
    Ok(())
}

/// SWAPDB index1 index2: exchanges two databases' contents. Databases
/// are key ranges here, not pointers, so this rewrites both (one
/// transaction, at most [`MAX_REWRITE`] records and elements in all).
pub async fn swapdb(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let index = |arg: &[u8], which: &str| -> Result<u8, ExecError> {
        let n = parse_i64_strict(arg)
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| ExecError::err(format!("invalid {which} DB index")))?;
        if !(0..DATABASES).contains(&n) {
            return Err(ExecError::err("DB index is out of range"));
        }
        Ok(n as u8)
    };
    let a = index(&argv[1], "first")?;
    let b = index(&argv[2], "second")?;
    if a == b {
        return Ok(Frame::ok());
    }
    let selected = cx.db;
    let swapped = swap(cx, a, b).await;
    cx.db = selected;
    swapped?;
    Ok(Frame::ok())
}

async fn swap(cx: &mut Ctx<'_>, a: u8, b: u8) -> Result<(), ExecError> {
    let mut budget = MAX_REWRITE;
    cx.db = a;
    let in_a = load_db(cx, &mut budget).await?;
    cx.db = b;
    let in_b = load_db(cx, &mut budget).await?;
    // Remove everything first (remove_key also deletes the elements of
    // keys this transaction created, whose version the new copies reuse).
    for (db, keys) in [(a, &in_a), (b, &in_b)] {
        cx.db = db;
        for k in keys {
            cx.remove_key(&k.key, &k.meta).await?;
        }
    }
    cx.db = a;
    store_db(cx, in_b)?;
    cx.db = b;
    store_db(cx, in_a)
}

#[cfg(test)]
mod tests {
    use super::probe_between;
    use rand::SeedableRng;

    #[test]
    fn probes_share_the_common_prefix_and_split_at_the_first_difference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cases: [(&[u8], &[u8]); 4] = [
            (b"user:0", b"user:999"),
            (b"a", b"b"),
            (b"key", b"key\x00\x01"),
            (b"", b"\xff\xff"),
        ];
        for (lo, hi) in cases {
            let common = lo.iter().zip(hi).take_while(|(a, b)| a == b).count();
            let lo_b = lo.get(common).copied().unwrap_or(0);
            let hi_b = hi.get(common).copied().unwrap_or(u8::MAX);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..500 {
                let p = probe_between(lo, hi, &mut rng);
                assert_eq!(&p[..common], &lo[..common]);
                assert_eq!(p.len(), common + 5);
                assert!((lo_b..=hi_b).contains(&p[common]), "{p:?}");
                seen.insert(p[common]);
            }
            // Every byte of a narrow span is drawn.
            if hi_b - lo_b < 16 {
                assert_eq!(seen.len(), usize::from(hi_b - lo_b) + 1);
            }
        }
    }
}
