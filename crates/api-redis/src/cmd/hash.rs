//! Hash commands: HSET HMSET HSETNX HGET HMGET HDEL HLEN HSTRLEN HEXISTS
//! HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN, and the
//! Redis 7.4 per-field expiry family HEXPIRE HPEXPIRE HEXPIREAT
//! HPEXPIREAT HTTL HPTTL HEXPIRETIME HPEXPIRETIME HPERSIST.
//!
//! Each field is one KV entry (`layout::TAG_HASH`) holding a field record
//! with an optional per-field expiry; expired fields are invisible at the
//! transaction's timestamp. HLEN counts stored fields, which may include
//! fields whose own expiry has passed but that no write has removed yet
//! (Redis 7.4 has the same caveat).

use bytes::Bytes;

use crate::db::{bulk, int, CmdResult, Ctx, ExecError, PAGE};
use crate::float::LongDouble;
use crate::frame::{Frame, Protocol};
use crate::layout::{self, KeyType, Meta, TAG_HASH};
use crate::notify::HASH;
use crate::parse::{parse_i64_strict, CmdError};

use super::keyspace::{cursor_position, parse_cursor, parse_scan_opts, scan_reply};
use super::sample;
use super::strings::now_i64;

/// A live field's value, honouring its own expiry.
async fn field(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    f: &[u8],
) -> Result<Option<(Vec<u8>, u64)>, ExecError> {
    let Some(raw) = cx.get_elem(key, m, TAG_HASH, f).await? else {
        return Ok(None);
    };
    Ok(live_field(&raw, cx.now_ms).map(|(v, e)| (v.to_vec(), e)))
}

/// Decodes a field record, `None` if expired (or corrupt).
fn live_field(raw: &[u8], now_ms: u64) -> Option<(&[u8], u64)> {
    let (v, exp) = layout::dec_field(raw)?;
    if exp != 0 && exp <= now_ms {
        return None;
    }
    Some((v, exp))
}

/// HSET key field value [field value ...] / HMSET
pub async fn hset(cx: &mut Ctx<'_>, argv: &[Bytes], hmset: bool) -> CmdResult {
    if argv.len() % 2 != 0 {
        let name = if hmset { "hmset" } else { "hset" };
        return Err(CmdError::WrongArity(name.into()).into());
    }
    let key = &argv[1];
    let mut m = cx.typed_or_new(key, KeyType::Hash).await?;
    for pair in argv[2..].chunks(2) {
        cx.check_sub(key, &pair[0])?;
    }
    let mut added = 0;
    for pair in argv[2..].chunks(2) {
        let existing = cx.get_elem(key, &m, TAG_HASH, &pair[0]).await?;
        match existing {
            None => {
                m.count += 1;
                added += 1;
            }
            Some(raw) if live_field(&raw, cx.now_ms).is_none() => added += 1,
            Some(_) => {}
        }
        cx.put_elem(key, &m, TAG_HASH, &pair[0], layout::enc_field(&pair[1], 0))?;
    }
    let written: Vec<(&[u8], usize)> = argv[2..]
        .chunks(2)
        .map(|p| (p[0].as_ref(), p[1].len()))
        .collect();
    cx.mark_encoding(&mut m, &written);
    cx.put_meta(key, &m)?;
    cx.notify(HASH, "hset", key);
    Ok(if hmset { Frame::ok() } else { int(added) })
}

/// HSETNX key field value
pub async fn hsetnx(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut m = cx.typed_or_new(key, KeyType::Hash).await?;
    cx.check_sub(key, &argv[2])?;
    let existing = cx.get_elem(key, &m, TAG_HASH, &argv[2]).await?;
    match existing {
        Some(raw) if live_field(&raw, cx.now_ms).is_some() => return Ok(Frame::Integer(0)),
        Some(_) => {}
        None => m.count += 1,
    }
    cx.put_elem(key, &m, TAG_HASH, &argv[2], layout::enc_field(&argv[3], 0))?;
    cx.mark_encoding(&mut m, &[(argv[2].as_ref(), argv[3].len())]);
    cx.put_meta(key, &m)?;
    cx.notify(HASH, "hset", key);
    Ok(Frame::Integer(1))
}

/// HGET key field
pub async fn hget(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(m) = cx.typed(&argv[1], KeyType::Hash).await? else {
        return Ok(Frame::Null);
    };
    Ok(match field(cx, &argv[1], &m, &argv[2]).await? {
        Some((v, _)) => bulk(v),
        None => Frame::Null,
    })
}

/// HMGET key field [field ...]
pub async fn hmget(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let m = cx.typed(&argv[1], KeyType::Hash).await?;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for f in &argv[2..] {
        let v = match &m {
            Some(m) => field(cx, &argv[1], m, f).await?,
            None => None,
        };
        match v {
            Some((v, _)) => {
                cx.charge(v.len())?;
                out.push(bulk(v));
            }
            None => out.push(Frame::Null),
        }
    }
    Ok(Frame::Array(out))
}

/// HDEL key field [field ...]
pub async fn hdel(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut n = 0;
    let mut touched = false;
    for f in &argv[2..] {
        if let Some(raw) = cx.get_elem(key, &m, TAG_HASH, f).await? {
            if live_field(&raw, cx.now_ms).is_some() {
                n += 1;
            }
            cx.del_elem(key, &m, TAG_HASH, f);
            m.count = m.count.saturating_sub(1);
            touched = true;
        }
    }
    if touched {
        cx.save_collection(key, &m).await?;
        cx.notify_collection(HASH, "hdel", key, &m);
    }
    Ok(int(n))
}

/// HLEN key
pub async fn hlen(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        cx.typed(&argv[1], KeyType::Hash)
            .await?
            .map(|m| i64::try_from(m.count).unwrap_or(i64::MAX))
            .unwrap_or(0),
    ))
}

/// HSTRLEN key field
pub async fn hstrlen(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(m) = cx.typed(&argv[1], KeyType::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    Ok(int(field(cx, &argv[1], &m, &argv[2])
        .await?
        .map(|(v, _)| v.len())
        .unwrap_or(0)))
}

/// HEXISTS key field
pub async fn hexists(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(m) = cx.typed(&argv[1], KeyType::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    Ok(Frame::Integer(i64::from(
        field(cx, &argv[1], &m, &argv[2]).await?.is_some(),
    )))
}

/// What HKEYS / HVALS / HGETALL return.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Field names.
    Keys,
    /// Values.
    Vals,
    /// Both (a map in RESP3).
    All,
}

/// HKEYS / HVALS / HGETALL key: walks the fields in pages.
pub async fn hgetall(cx: &mut Ctx<'_>, argv: &[Bytes], part: Part) -> CmdResult {
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(if part == Part::All {
            Frame::Map(Vec::new())
        } else {
            Frame::Array(Vec::new())
        });
    };
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems(key, &m, TAG_HASH, false);
    let mut items = Vec::new();
    let mut pairs = Vec::new();
    loop {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let Some((val, _)) = live_field(&v, cx.now_ms) else {
                continue;
            };
            let f = &k[off..];
            match part {
                Part::Keys => {
                    cx.charge(f.len())?;
                    items.push(Frame::bulk(f));
                }
                Part::Vals => {
                    cx.charge(val.len())?;
                    items.push(Frame::bulk(val));
                }
                Part::All => {
                    cx.charge(f.len() + val.len())?;
                    pairs.push((Frame::bulk(f), Frame::bulk(val)));
                }
            }
        }
        if pager.is_done() {
            break;
        }
    }
    Ok(if part == Part::All {
        Frame::Map(pairs)
    } else {
        Frame::Array(items)
    })
}

/// HINCRBY key field increment
pub async fn hincrby(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let incr = parse_i64_strict(&argv[3]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let mut m = cx.typed_or_new(key, KeyType::Hash).await?;
    cx.check_sub(key, &argv[2])?;
    let raw = cx.get_elem(key, &m, TAG_HASH, &argv[2]).await?;
    let cur = raw.as_deref().and_then(|r| live_field(r, cx.now_ms));
    let (value, exp) = match cur {
        Some((v, e)) => (
            parse_i64_strict(v).ok_or_else(|| ExecError::err("hash value is not an integer"))?,
            e,
        ),
        None => (0, 0),
    };
    let new = value
        .checked_add(incr)
        .ok_or_else(|| ExecError::err("increment or decrement would overflow"))?;
    if raw.is_none() {
        m.count += 1;
    }
    cx.put_elem(
        key,
        &m,
        TAG_HASH,
        &argv[2],
        layout::enc_field(new.to_string().as_bytes(), exp),
    )?;
    cx.mark_encoding(&mut m, &[(argv[2].as_ref(), 20)]);
    cx.put_meta(key, &m)?;
    cx.notify(HASH, "hincrby", key);
    Ok(Frame::Integer(new))
}

/// HINCRBYFLOAT key field increment
pub async fn hincrbyfloat(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let incr = LongDouble::parse(&argv[3]).ok_or(CmdError::NotFloat)?;
    if !incr.is_finite() {
        return Err(ExecError::err("value is NaN or Infinity"));
    }
    let key = &argv[1];
    let mut m = cx.typed_or_new(key, KeyType::Hash).await?;
    cx.check_sub(key, &argv[2])?;
    let raw = cx.get_elem(key, &m, TAG_HASH, &argv[2]).await?;
    let cur = raw.as_deref().and_then(|r| live_field(r, cx.now_ms));
    let (value, exp) = match cur {
        Some((v, e)) => (
            LongDouble::parse(v).ok_or_else(|| ExecError::err("hash value is not a float"))?,
            e,
        ),
        None => (LongDouble::from_i64(0), 0),
    };
    let sum = value + incr;
    if !sum.is_finite() {
        return Err(ExecError::err("increment would produce NaN or Infinity"));
    }
    let text = sum.to_human_string();
    if raw.is_none() {
        m.count += 1;
    }
    cx.put_elem(
        key,
        &m,
        TAG_HASH,
        &argv[2],
        layout::enc_field(text.as_bytes(), exp),
    )?;
    cx.mark_encoding(&mut m, &[(argv[2].as_ref(), text.len())]);
    cx.put_meta(key, &m)?;
    cx.notify(HASH, "hincrbyfloat", key);
    Ok(Frame::bulk(text))
}

/// HRANDFIELD key [count [WITHVALUES]]
pub async fn hrandfield(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() == 2 {
        let Some(m) = cx.typed(key, KeyType::Hash).await? else {
            return Ok(Frame::Null);
        };
        let all = live_fields(cx, key, &m).await?;
        return Ok(match sample::pick_one(&all) {
            Some((f, _)) => Frame::bulk(f),
            None => Frame::Null,
        });
    }
    let count = sample::parse_count(&argv[2])?;
    let withvalues = match argv.len() {
        3 => false,
        4 if argv[3].eq_ignore_ascii_case(b"WITHVALUES") => true,
        _ => return Err(ExecError::syntax()),
    };
    if withvalues {
        sample::check_paired(count)?;
    }
    let Some(m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(Frame::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    let all = live_fields(cx, key, &m).await?;
    let picked = sample::pick(all.len(), count)?;
    let mut out = Vec::with_capacity(picked.len());
    for (f, v) in picked.into_iter().map(|i| &all[i]) {
        cx.charge(f.len() + if withvalues { v.len() } else { 0 })?;
        if !withvalues {
            out.push(Frame::bulk(f));
        } else if cx.proto == Protocol::Resp3 {
            out.push(Frame::Array(vec![Frame::bulk(f), Frame::bulk(v)]));
        } else {
            out.push(Frame::bulk(f));
            out.push(Frame::bulk(v));
        }
    }
    Ok(Frame::Array(out))
}

/// Every live (field, value), bounded by `MAX_LOADED`.
async fn live_fields(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ExecError> {
    let now = cx.now_ms;
    Ok(cx
        .load_all(key, m, TAG_HASH)
        .await?
        .into_iter()
        .filter_map(|(f, raw)| live_field(&raw, now).map(|(v, _)| (f, v.to_vec())))
        .collect())
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]
pub async fn hscan(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cursor = parse_cursor(&argv[2])?;
    let mut rest: Vec<Bytes> = argv.to_vec();
    // NOVALUES (Redis 7.4) is accepted anywhere among the options.
    let novalues = rest
        .iter()
        .skip(3)
        .any(|a| a.eq_ignore_ascii_case(b"NOVALUES"));
    rest.retain(|a| !a.eq_ignore_ascii_case(b"NOVALUES"));
    let o = parse_scan_opts(&rest, 3, false)?;
    let Some(m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(scan_reply(cx, None, Vec::new()));
    };
    let from = cursor_position(cx, cursor)?.unwrap_or_default();
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems_between(key, &m, TAG_HASH, &from, None, false);
    let mut out = Vec::new();
    // Small hashes come back whole, as Redis does for listpack encoding.
    let budget = if m.count <= 128 { usize::MAX } else { o.count };
    let mut examined = 0;
    let mut last = None;
    while examined < budget && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (budget - examined).min(PAGE))
            .await?;
        examined += rows.len();
        for (k, v) in rows {
            let f = k[off..].to_vec();
            if let Some((val, _)) = live_field(&v, cx.now_ms) {
                if o.pattern
                    .as_ref()
                    .is_none_or(|p| crate::glob::glob_match(p, &f))
                {
                    cx.charge(f.len() + val.len())?;
                    out.push(Frame::bulk(&f));
                    if !novalues {
                        out.push(Frame::bulk(val));
                    }
                }
            }
            last = Some(f);
        }
    }
    let resume = if pager.is_done() {
        None
    } else {
        last.map(|mut f| {
            f.push(0);
            f
        })
    };
    Ok(scan_reply(cx, resume, out))
}

/// The per-field expiry commands' shared shape:
/// `CMD key [args...] FIELDS numfields field [field ...]`.
fn parse_fields(argv: &[Bytes], fields_at: usize) -> Result<&[Bytes], ExecError> {
    if fields_at >= argv.len() || !argv[fields_at].eq_ignore_ascii_case(b"FIELDS") {
        return Err(ExecError::err(
            "Mandatory argument FIELDS is missing or not at the right position",
        ));
    }
    let n = argv
        .get(fields_at + 1)
        .and_then(|a| parse_i64_strict(a))
        .filter(|n| *n > 0)
        .ok_or_else(|| ExecError::err("Number of fields must be a positive integer"))?;
    let fields = &argv[fields_at + 2..];
    if usize::try_from(n).ok() != Some(fields.len()) {
        return Err(ExecError::err(
            "The `numfields` parameter must match the number of arguments",
        ));
    }
    Ok(fields)
}

/// HEXPIRE / HPEXPIRE / HEXPIREAT / HPEXPIREAT key time [NX|XX|GT|LT]
/// FIELDS numfields field ...
pub async fn hexpire(cx: &mut Ctx<'_>, argv: &[Bytes], seconds: bool, absolute: bool) -> CmdResult {
    let t = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let mut at = 3;
    let cond = match argv.get(3).map(|a| a.to_ascii_uppercase()) {
        Some(c) if matches!(c.as_slice(), b"NX" | b"XX" | b"GT" | b"LT") => {
            at = 4;
            Some(c)
        }
        _ => None,
    };
    let fields = parse_fields(argv, at)?;
    if t < 0 {
        return Err(ExecError::err("invalid expire time, must be >= 0"));
    }
    let mut when = if seconds {
        t.checked_mul(1000)
            .ok_or_else(|| ExecError::err("invalid expire time in 'hexpire' command"))?
    } else {
        t
    };
    if !absolute {
        when = when
            .checked_add(now_i64(cx))
            .ok_or_else(|| ExecError::err("invalid expire time"))?;
    }
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(Frame::Array(
            fields.iter().map(|_| Frame::Integer(-2)).collect(),
        ));
    };
    let mut out = Vec::with_capacity(fields.len());
    let mut changed = false;
    let (mut updated, mut removed) = (false, false);
    for f in fields {
        let Some((v, cur)) = field(cx, key, &m, f).await? else {
            out.push(Frame::Integer(-2));
            continue;
        };
        let cur_i = if cur == 0 { -1 } else { cur as i64 };
        let skip = match cond.as_deref() {
            Some(b"NX") => cur != 0,
            Some(b"XX") => cur == 0,
            Some(b"GT") => cur == 0 || when <= cur_i,
            Some(b"LT") => cur != 0 && when >= cur_i,
            _ => false,
        };
        if skip {
            out.push(Frame::Integer(0));
            continue;
        }
        changed = true;
        if when <= now_i64(cx) {
            cx.del_elem(key, &m, TAG_HASH, f);
            m.count = m.count.saturating_sub(1);
            removed = true;
            out.push(Frame::Integer(2));
        } else {
            m.flags |= layout::FLAG_FIELD_TTL;
            cx.put_elem(key, &m, TAG_HASH, f, layout::enc_field(&v, when as u64))?;
            updated = true;
            out.push(Frame::Integer(1));
        }
    }
    if changed {
        cx.save_collection(key, &m).await?;
        if updated {
            cx.notify(HASH, "hexpire", key);
        }
        if removed {
            cx.notify_collection(HASH, "hexpired", key, &m);
        }
    }
    Ok(Frame::Array(out))
}

/// HTTL / HPTTL / HEXPIRETIME / HPEXPIRETIME key FIELDS numfields field ...
pub async fn httl(cx: &mut Ctx<'_>, argv: &[Bytes], ms: bool, absolute: bool) -> CmdResult {
    let fields = parse_fields(argv, 2)?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(Frame::Array(
            fields.iter().map(|_| Frame::Integer(-2)).collect(),
        ));
    };
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        out.push(match field(cx, key, &m, f).await? {
            None => Frame::Integer(-2),
            Some((_, 0)) => Frame::Integer(-1),
            Some((_, at)) => {
                let at = at as i64;
                let t = if absolute {
                    at
                } else {
                    (at - now_i64(cx)).max(0)
                };
                Frame::Integer(if ms { t } else { (t + 500) / 1000 })
            }
        });
    }
    Ok(Frame::Array(out))
}

/// HPERSIST key FIELDS numfields field ...
pub async fn hpersist(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let fields = parse_fields(argv, 2)?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::Hash).await? else {
        return Ok(Frame::Array(
            fields.iter().map(|_| Frame::Integer(-2)).collect(),
        ));
    };
    let mut out = Vec::with_capacity(fields.len());
    let mut changed = false;
    for f in fields {
        out.push(match field(cx, key, &m, f).await? {
            None => Frame::Integer(-2),
            Some((_, 0)) => Frame::Integer(-1),
            Some((v, _)) => {
                cx.put_elem(key, &m, TAG_HASH, f, layout::enc_field(&v, 0))?;
                changed = true;
                Frame::Integer(1)
            }
        });
    }
    if changed {
        cx.put_meta(key, &m)?;
        cx.notify(HASH, "hpersist", key);
    }
    Ok(Frame::Array(out))
}
