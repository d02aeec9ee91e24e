//! String commands: GET SET (NX XX GET EX PX EXAT PXAT KEEPTTL) GETEX
//! GETDEL GETSET SETNX SETEX PSETEX MGET MSET MSETNX INCR DECR INCRBY
//! DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SUBSTR SETRANGE LCS.
//!
//! Strings are stored inline in the key's metadata record, so every
//! command here is one metadata read and at most one write.

use bytes::Bytes;

use crate::db::{bulk, int, CmdResult, Ctx, ExecError};
use crate::float;
use crate::frame::Frame;
use crate::layout::{KeyType, Meta};
use crate::notify::{GENERIC, STRING};
use crate::parse::{parse_i64_strict, ArgCursor, CmdError};

/// Largest LCS table (cells) we build: Redis allocates
/// `(len(a)+1)*(len(b)+1)` integers; we refuse beyond 32 Mi cells
/// (128 MiB) with Redis's own error text.
const MAX_LCS_CELLS: u64 = 32 * 1024 * 1024;

/// Expiry parsed from SET/GETEX options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireOpt {
    /// No expiry option: SET removes any TTL, GETEX leaves it.
    None,
    /// KEEPTTL.
    Keep,
    /// PERSIST (GETEX).
    Persist,
    /// An absolute time in Unix ms (may be in the past).
    At(i64),
}

/// Converts a relative/absolute expiry argument to absolute Unix ms, with
/// Redis's `getExpireMillisecondsOrReply` checks.
pub fn expire_ms(
    cx: &Ctx<'_>,
    arg: &[u8],
    seconds: bool,
    absolute: bool,
    cmd: &str,
) -> Result<i64, ExecError> {
    let n = parse_i64_strict(arg).ok_or(CmdError::NotInteger)?;
    let invalid = || ExecError::err(format!("invalid expire time in '{cmd}' command"));
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid());
    }
    let mut ms = if seconds { n * 1000 } else { n };
    if !absolute {
        ms = ms.checked_add(now_i64(cx)).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms)
}

/// The transaction's "now" as Redis's signed millisecond time.
pub fn now_i64(cx: &Ctx<'_>) -> i64 {
    i64::try_from(cx.now_ms).unwrap_or(i64::MAX)
}

struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    expire: ExpireOpt,
}

/// `parseExtendedStringArgumentsOrReply` for SET (`getex` = false) and
/// GETEX (`getex` = true): the same conflict rules and error texts.
fn parse_set_opts(
    cx: &Ctx<'_>,
    argv: &[Bytes],
    from: usize,
    getex: bool,
) -> Result<SetOpts, ExecError> {
    let cmd = if getex { "getex" } else { "set" };
    let mut o = SetOpts {
        nx: false,
        xx: false,
        get: false,
        expire: ExpireOpt::None,
    };
    // Which expiry keyword was given (they exclude each other, but the
    // same one may repeat, as in Redis).
    let mut kind: Option<&'static str> = None;
    let mut j = from;
    while j < argv.len() {
        let opt = argv[j].to_ascii_uppercase();
        let next = argv.get(j + 1);
        match opt.as_slice() {
            b"NX" if !getex && !o.xx => o.nx = true,
            b"XX" if !getex && !o.nx => o.xx = true,
            b"GET" if !getex => o.get = true,
            b"KEEPTTL" if !getex && kind.is_none_or(|k| k == "KEEPTTL") => {
                kind = Some("KEEPTTL");
                o.expire = ExpireOpt::Keep;
            }
            b"PERSIST" if getex && kind.is_none_or(|k| k == "PERSIST") => {
                kind = Some("PERSIST");
                o.expire = ExpireOpt::Persist;
            }
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if next.is_some() => {
                let k: &'static str = match opt.as_slice() {
                    b"EX" => "EX",
                    b"PX" => "PX",
                    b"EXAT" => "EXAT",
                    _ => "PXAT",
                };
                if kind.is_some_and(|prev| prev != k) {
                    return Err(ExecError::syntax());
                }
                kind = Some(k);
                let seconds = k == "EX" || k == "EXAT";
                let absolute = k == "EXAT" || k == "PXAT";
                let arg = next.ok_or_else(ExecError::syntax)?;
                o.expire = ExpireOpt::At(expire_ms(cx, arg, seconds, absolute, cmd)?);
                j += 1;
            }
            _ => return Err(ExecError::syntax()),
        }
        j += 1;
    }
    Ok(o)
}

/// The live string at `key`; WRONGTYPE for other types.
pub async fn get_string(cx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Meta>, ExecError> {
    cx.typed(key, KeyType::String).await
}

/// Stores a string, replacing whatever `old` (the live record, if any)
/// was.
pub async fn store_string(
    cx: &mut Ctx<'_>,
    key: &[u8],
    old: Option<&Meta>,
    value: Vec<u8>,
    expire_at: u64,
) -> Result<(), ExecError> {
    store_string_as(cx, key, old, Meta::string(value, expire_at)).await
}

/// [`store_string`] for commands that edit a string in place (APPEND on
/// an existing key, SETRANGE, SETBIT, BITFIELD): Redis holds the result
/// in its `raw` encoding whatever it contains.
pub async fn store_raw_string(
    cx: &mut Ctx<'_>,
    key: &[u8],
    old: Option<&Meta>,
    value: Vec<u8>,
    expire_at: u64,
) -> Result<(), ExecError> {
    store_string_as(cx, key, old, Meta::raw_string(value, expire_at)).await
}

async fn store_string_as(
    cx: &mut Ctx<'_>,
    key: &[u8],
    old: Option<&Meta>,
    m: Meta,
) -> Result<(), ExecError> {
    cx.check_value_len(m.value.len())?;
    if let Some(o) = old {
        if o.ty.is_collection() {
            cx.remove_key(key, o).await?;
        }
    }
    cx.put_meta(key, &m)
}

fn expire_to_u64(ms: i64) -> u64 {
    // Positive by construction (`expire_ms` rejects <= 0).
    u64::try_from(ms).unwrap_or(1)
}

/// GET key
pub async fn get(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let found = get_string(cx, &argv[1]).await?;
    let counter = if found.is_some() {
        &cx.shared.keyspace_hits
    } else {
        &cx.shared.keyspace_misses
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(match found {
        Some(m) => bulk(m.value),
        None => Frame::Null,
    })
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]
pub async fn set(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(cx, argv, 3, false)?;
    let key = &argv[1];
    cx.check_key(key)?;
    cx.check_value_len(argv[2].len())?;
    let needs_old = o.nx || o.xx || o.get || matches!(o.expire, ExpireOpt::Keep);
    let old = if needs_old {
        cx.meta(key).await?
    } else {
        cx.meta_to_replace(key).await?
    };
    let old_value = if o.get {
        match &old {
            Some(m) if m.ty != KeyType::String => return Err(ExecError::wrongtype()),
            Some(m) => bulk(m.value.clone()),
            None => Frame::Null,
        }
    } else {
        Frame::ok()
    };
    if (o.nx && old.is_some()) || (o.xx && old.is_none()) {
        return Ok(if o.get { old_value } else { Frame::Null });
    }
    let expire_at = match o.expire {
        ExpireOpt::At(ms) => expire_to_u64(ms),
        ExpireOpt::Keep => old.as_ref().map(|m| m.expire_at).unwrap_or(0),
        ExpireOpt::None | ExpireOpt::Persist => 0,
    };
    store_string(cx, key, old.as_ref(), argv[2].to_vec(), expire_at).await?;
    cx.notify(STRING, "set", key);
    if matches!(o.expire, ExpireOpt::At(_)) {
        cx.notify(GENERIC, "expire", key);
    }
    Ok(old_value)
}

/// SETNX key value
pub async fn setnx(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    cx.check_key(key)?;
    if cx.meta(key).await?.is_some() {
        return Ok(Frame::Integer(0));
    }
    store_string(cx, key, None, argv[2].to_vec(), 0).await?;
    cx.notify(STRING, "set", key);
    Ok(Frame::Integer(1))
}

/// SETEX key seconds value / PSETEX key ms value
pub async fn setex(cx: &mut Ctx<'_>, argv: &[Bytes], seconds: bool) -> CmdResult {
    let cmd = if seconds { "setex" } else { "psetex" };
    let at = expire_ms(cx, &argv[2], seconds, false, cmd)?;
    let key = &argv[1];
    cx.check_key(key)?;
    let old = cx.meta_to_replace(key).await?;
    store_string(cx, key, old.as_ref(), argv[3].to_vec(), expire_to_u64(at)).await?;
    cx.notify(STRING, "set", key);
    cx.notify(GENERIC, "expire", key);
    Ok(Frame::ok())
}

/// GETEX key [EX|PX|EXAT|PXAT|PERSIST]
pub async fn getex(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(cx, argv, 2, true)?;
    let key = &argv[1];
    let Some(mut m) = get_string(cx, key).await? else {
        return Ok(Frame::Null);
    };
    let reply = bulk(m.value.clone());
    match o.expire {
        ExpireOpt::At(ms) if ms <= now_i64(cx) => {
            cx.remove_key(key, &m).await?;
            cx.notify(GENERIC, "del", key);
        }
        ExpireOpt::At(ms) => {
            m.expire_at = expire_to_u64(ms);
            cx.put_meta(key, &m)?;
            cx.notify(GENERIC, "expire", key);
        }
        ExpireOpt::Persist if m.expire_at != 0 => {
            m.expire_at = 0;
            cx.put_meta(key, &m)?;
            cx.notify(GENERIC, "persist", key);
        }
        _ => {}
    }
    Ok(reply)
}

/// GETDEL key
pub async fn getdel(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(m) = get_string(cx, key).await? else {
        return Ok(Frame::Null);
    };
    cx.remove_key(key, &m).await?;
    cx.notify(GENERIC, "del", key);
    Ok(bulk(m.value))
}

/// GETSET key value
pub async fn getset(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    cx.check_key(key)?;
    let old = get_string(cx, key).await?;
    let reply = match &old {
        Some(m) => bulk(m.value.clone()),
        None => Frame::Null,
    };
    store_string(cx, key, old.as_ref(), argv[2].to_vec(), 0).await?;
    cx.notify(STRING, "set", key);
    Ok(reply)
}

/// MGET key [key ...]
pub async fn mget(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(argv.len() - 1);
    for key in &argv[1..] {
        match cx.meta(key).await? {
            Some(m) if m.ty == KeyType::String => {
                cx.charge(m.value.len())?;
                out.push(bulk(m.value));
            }
            _ => out.push(Frame::Null),
        }
    }
    Ok(Frame::Array(out))
}

/// MSET key value [key value ...]
pub async fn mset(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 == 0 {
        return Err(CmdError::WrongArity("mset".into()).into());
    }
    for pair in argv[1..].chunks(2) {
        cx.check_key(&pair[0])?;
        cx.check_value_len(pair[1].len())?;
    }
    for pair in argv[1..].chunks(2) {
        let old = cx.meta_to_replace(&pair[0]).await?;
        store_string(cx, &pair[0], old.as_ref(), pair[1].to_vec(), 0).await?;
        cx.notify(STRING, "set", &pair[0]);
    }
    Ok(Frame::ok())
}

/// MSETNX key value [key value ...]
pub async fn msetnx(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 == 0 {
        return Err(CmdError::WrongArity("msetnx".into()).into());
    }
    for pair in argv[1..].chunks(2) {
        cx.check_key(&pair[0])?;
        cx.check_value_len(pair[1].len())?;
        if cx.meta(&pair[0]).await?.is_some() {
            return Ok(Frame::Integer(0));
        }
    }
    for pair in argv[1..].chunks(2) {
        store_string(cx, &pair[0], None, pair[1].to_vec(), 0).await?;
        cx.notify(STRING, "set", &pair[0]);
    }
    Ok(Frame::Integer(1))
}

/// INCR / DECR / INCRBY / DECRBY: `delta` already parsed (`None` means
/// "negate the argument", for DECRBY's own overflow error).
pub async fn incr_by(cx: &mut Ctx<'_>, key: &Bytes, delta: i64) -> CmdResult {
    cx.check_key(key)?;
    let old = get_string(cx, key).await?;
    let current = match &old {
        Some(m) => parse_i64_strict(&m.value).ok_or(CmdError::NotInteger)?,
        None => 0,
    };
    let new = current
        .checked_add(delta)
        .ok_or_else(|| ExecError::err("increment or decrement would overflow"))?;
    let expire = old.as_ref().map(|m| m.expire_at).unwrap_or(0);
    store_string(cx, key, old.as_ref(), new.to_string().into_bytes(), expire).await?;
    cx.notify(STRING, "incrby", key);
    Ok(Frame::Integer(new))
}

/// INCRBY key increment
pub async fn incrby(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let d = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    incr_by(cx, &argv[1], d).await
}

/// DECRBY key decrement
pub async fn decrby(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let d = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let d = d
        .checked_neg()
        .ok_or_else(|| ExecError::err("decrement would overflow"))?;
    incr_by(cx, &argv[1], d).await
}

/// INCRBYFLOAT key increment
pub async fn incrbyfloat(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    cx.check_key(key)?;
    let old = get_string(cx, key).await?;
    let new = float::incr_by_float(old.as_ref().map(|m| m.value.as_slice()), &argv[2])?;
    let expire = old.as_ref().map(|m| m.expire_at).unwrap_or(0);
    store_string(cx, key, old.as_ref(), new.clone().into_bytes(), expire).await?;
    cx.notify(STRING, "incrbyfloat", key);
    Ok(Frame::bulk(new))
}

/// APPEND key value
pub async fn append(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    cx.check_key(key)?;
    let old = get_string(cx, key).await?;
    let (mut value, expire) = match &old {
        Some(m) => (m.value.clone(), m.expire_at),
        None => (Vec::new(), 0),
    };
    cx.check_value_len(value.len().saturating_add(argv[2].len()))?;
    value.extend_from_slice(&argv[2]);
    let len = value.len();
    if old.is_some() {
        store_raw_string(cx, key, old.as_ref(), value, expire).await?;
    } else {
        store_string(cx, key, None, value, expire).await?;
    }
    cx.notify(STRING, "append", key);
    Ok(int(len))
}

/// STRLEN key
pub async fn strlen(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(int(get_string(cx, &argv[1])
        .await?
        .map(|m| m.value.len())
        .unwrap_or(0)))
}

/// GETRANGE key start end (and SUBSTR)
pub async fn getrange(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut c = ArgCursor::new(argv, 2);
    let mut start = c.next_i64()?;
    let mut end = c.next_i64()?;
    let Some(m) = get_string(cx, &argv[1]).await? else {
        return Ok(Frame::bulk(b""));
    };
    let len = i64::try_from(m.value.len()).unwrap_or(i64::MAX);
    // getrangeCommand's arithmetic, including its special cases.
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::bulk(b""));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Frame::bulk(b""));
    }
    Ok(Frame::bulk(&m.value[start as usize..=end as usize]))
}

/// SETRANGE key offset value
pub async fn setrange(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    if offset < 0 {
        return Err(ExecError::err("offset is out of range"));
    }
    let value = &argv[3];
    let old = get_string(cx, key).await?;
    let Some(m) = old else {
        if value.is_empty() {
            return Ok(Frame::Integer(0));
        }
        cx.check_key(key)?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        cx.check_value_len(offset.saturating_add(value.len()))?;
        let mut v = vec![0u8; offset];
        v.extend_from_slice(value);
        let len = v.len();
        store_raw_string(cx, key, None, v, 0).await?;
        cx.notify(STRING, "setrange", key);
        return Ok(int(len));
    };
    if value.is_empty() {
        return Ok(int(m.value.len()));
    }
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let needed = offset.saturating_add(value.len());
    cx.check_value_len(needed)?;
    let mut v = m.value.clone();
    if v.len() < needed {
        v.resize(needed, 0);
    }
    v[offset..needed].copy_from_slice(value);
    let len = v.len();
    store_raw_string(cx, key, Some(&m), v, m.expire_at).await?;
    cx.notify(STRING, "setrange", key);
    Ok(int(len))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
pub async fn lcs(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let a = cx.meta(&argv[1]).await?;
    let b = cx.meta(&argv[2]).await?;
    if a.as_ref().is_some_and(|m| m.ty != KeyType::String)
        || b.as_ref().is_some_and(|m| m.ty != KeyType::String)
    {
        return Err(ExecError::err(
            "The specified keys must contain string values",
        ));
    }
    let a = a.map(|m| m.value).unwrap_or_default();
    let b = b.map(|m| m.value).unwrap_or_default();
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let opt = &argv[j];
        let more = argv.len() - 1 - j;
        if opt.eq_ignore_ascii_case(b"IDX") {
            getidx = true;
        } else if opt.eq_ignore_ascii_case(b"LEN") {
            getlen = true;
        } else if opt.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            withmatchlen = true;
        } else if opt.eq_ignore_ascii_case(b"MINMATCHLEN") && more > 0 {
            minmatchlen = parse_i64_strict(&argv[j + 1])
                .ok_or(CmdError::NotInteger)?
                .max(0);
            j += 1;
        } else {
            return Err(ExecError::syntax());
        }
        j += 1;
    }
    if getidx && getlen {
        return Err(ExecError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells > MAX_LCS_CELLS {
        return Err(ExecError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    // lcsCommand's dynamic programme, then its backward walk emitting
    // ranges exactly in Redis's order.
    let w = blen + 1;
    let mut dp = vec![0u32; cells as usize];
    for i in 1..=alen {
        for jj in 1..=blen {
            dp[i * w + jj] = if a[i - 1] == b[jj - 1] {
                dp[(i - 1) * w + jj - 1] + 1
            } else {
                dp[(i - 1) * w + jj].max(dp[i * w + jj - 1])
            };
        }
    }
    let total = dp[alen * w + blen] as usize;
    let mut idx = total;
    let computelcs = getidx || !getlen;
    let mut result = vec![0u8; if computelcs { total } else { 0 }];
    let mut matches = Vec::new();
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) = (alen, 0, 0, 0);
    let (mut i, mut jj) = (alen, blen);
    while computelcs && i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == alen {
                arange_start = i - 1;
                arange_end = i - 1;
                brange_start = jj - 1;
                brange_end = jj - 1;
            } else if arange_start == i && brange_start == jj {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            let lcs1 = dp[(i - 1) * w + jj];
            let lcs2 = dp[i * w + jj - 1];
            if lcs1 > lcs2 {
                i -= 1;
            } else {
                jj -= 1;
            }
            if arange_start != alen {
                emit = true;
            }
        }
        let match_len = arange_end.wrapping_sub(arange_start).wrapping_add(1);
        if emit {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                let mut item = vec![
                    Frame::Array(vec![int(arange_start), int(arange_end)]),
                    Frame::Array(vec![int(brange_start), int(brange_end)]),
                ];
                if withmatchlen {
                    item.push(int(match_len));
                }
                matches.push(Frame::Array(item));
            }
            arange_start = alen;
        }
    }
    if getidx {
        Ok(Frame::Map(vec![
            (Frame::from("matches"), Frame::Array(matches)),
            (Frame::from("len"), int(total)),
        ]))
    } else if getlen {
        Ok(int(total))
    } else {
        Ok(bulk(result))
    }
}
