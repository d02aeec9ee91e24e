//! Set commands: SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP
//! SRANDMEMBER SMOVE SINTER SINTERSTORE SINTERCARD SUNION SUNIONSTORE SDIFF
//! SDIFFSTORE SSCAN.
//!
//! Each member is one KV entry (`layout::TAG_SET`, empty value), so
//! membership tests are point reads and SMEMBERS walks in member order.
//! Set algebra loads its inputs (bounded by `MAX_LOADED` each) and
//! computes in memory; SMEMBERS/SSCAN stream in pages.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::db::{int, too_many, CmdResult, Ctx, ExecError, MAX_LOADED, PAGE};
use crate::frame::Frame;
use crate::layout::{KeyType, Meta, TAG_SET};
use crate::notify::{GENERIC, SET};
use crate::parse::{parse_i64_strict, CmdError};

use super::keyspace::{cursor_position, parse_cursor, parse_scan_opts, scan_reply};
use super::sample;

/// SADD key member [member ...]
pub async fn sadd(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut m = cx.typed_or_new(key, KeyType::Set).await?;
    for mem in &argv[2..] {
        cx.check_sub(key, mem)?;
    }
    let mut added = 0;
    for mem in &argv[2..] {
        if cx.get_elem(key, &m, TAG_SET, mem).await?.is_none() {
            cx.put_elem(key, &m, TAG_SET, mem, Vec::new())?;
            m.count += 1;
            added += 1;
        }
    }
    if added > 0 {
        let written: Vec<(&[u8], usize)> = argv[2..].iter().map(|a| (a.as_ref(), 0)).collect();
        cx.mark_encoding(&mut m, &written);
        cx.put_meta(key, &m)?;
        cx.notify(SET, "sadd", key);
    }
    Ok(int(added))
}

/// SREM key member [member ...]
pub async fn srem(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::Set).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut n = 0;
    for mem in &argv[2..] {
        if cx.get_elem(key, &m, TAG_SET, mem).await?.is_some() {
            cx.del_elem(key, &m, TAG_SET, mem);
            m.count = m.count.saturating_sub(1);
            n += 1;
        }
    }
    if n > 0 {
        cx.save_collection(key, &m).await?;
        cx.notify_collection(SET, "srem", key, &m);
    }
    Ok(int(n))
}

/// SCARD key
pub async fn scard(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        cx.typed(&argv[1], KeyType::Set)
            .await?
            .map(|m| i64::try_from(m.count).unwrap_or(i64::MAX))
            .unwrap_or(0),
    ))
}

/// SISMEMBER key member
pub async fn sismember(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(m) = cx.typed(&argv[1], KeyType::Set).await? else {
        return Ok(Frame::Integer(0));
    };
    Ok(Frame::Integer(i64::from(
        cx.get_elem(&argv[1], &m, TAG_SET, &argv[2])
            .await?
            .is_some(),
    )))
}

/// SMISMEMBER key member [member ...]
pub async fn smismember(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let m = cx.typed(&argv[1], KeyType::Set).await?;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for mem in &argv[2..] {
        let is = match &m {
            Some(m) => cx.get_elem(&argv[1], m, TAG_SET, mem).await?.is_some(),
            None => false,
        };
        out.push(Frame::Integer(i64::from(is)));
    }
    Ok(Frame::Array(out))
}

/// SMEMBERS key: streams the members in pages.
pub async fn smembers(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::Set).await? else {
        return Ok(Frame::Set(Vec::new()));
    };
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems(key, &m, TAG_SET, false);
    let mut out = Vec::new();
    loop {
        for (k, _) in pager.next_page(cx.tx, PAGE).await? {
            cx.charge(k.len() - off)?;
            out.push(Frame::bulk(&k[off..]));
        }
        if pager.is_done() {
            return Ok(Frame::Set(out));
        }
    }
}

/// All members of a set record.
async fn members(cx: &mut Ctx<'_>, key: &[u8], m: &Meta) -> Result<Vec<Vec<u8>>, ExecError> {
    Ok(cx
        .load_all(key, m, TAG_SET)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// SPOP key [count]
pub async fn spop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let count = match argv.get(2) {
        None => None,
        Some(a) => {
            // getPositiveLongFromObjectOrReply with this message uses it
            // for non-integers too.
            let n = parse_i64_strict(a)
                .filter(|n| *n >= 0)
                .ok_or(CmdError::NotPositive)?;
            Some(n)
        }
    };
    if argv.len() > 3 {
        return Err(ExecError::syntax());
    }
    let Some(mut m) = cx.typed(key, KeyType::Set).await? else {
        return Ok(if count.is_some() {
            Frame::Set(Vec::new())
        } else {
            Frame::Null
        });
    };
    if count == Some(0) {
        return Ok(Frame::Set(Vec::new()));
    }
    let all = members(cx, key, &m).await?;
    let picked = sample::pick(all.len(), count.unwrap_or(1))?;
    if picked.len() > crate::db::MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    let mut out = Vec::with_capacity(picked.len());
    for i in picked {
        cx.charge(all[i].len())?;
        cx.del_elem(key, &m, TAG_SET, &all[i]);
        m.count = m.count.saturating_sub(1);
        out.push(Frame::bulk(&all[i]));
    }
    cx.save_collection(key, &m).await?;
    cx.notify_collection(SET, "spop", key, &m);
    Ok(match count {
        None => out.into_iter().next().unwrap_or(Frame::Null),
        Some(_) => Frame::Set(out),
    })
}

/// SRANDMEMBER key [count]
pub async fn srandmember(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let count = match argv.get(2) {
        None => None,
        Some(a) => Some(sample::parse_count(a)?),
    };
    if argv.len() > 3 {
        return Err(ExecError::syntax());
    }
    let Some(m) = cx.typed(key, KeyType::Set).await? else {
        return Ok(if count.is_some() {
            Frame::Array(Vec::new())
        } else {
            Frame::Null
        });
    };
    let all = members(cx, key, &m).await?;
    match count {
        None => Ok(sample::pick_one(&all)
            .map(Frame::bulk)
            .unwrap_or(Frame::Null)),
        Some(c) => {
            let picked = sample::pick(all.len(), c)?;
            let mut out = Vec::with_capacity(picked.len());
            for i in picked {
                cx.charge(all[i].len())?;
                out.push(Frame::bulk(&all[i]));
            }
            Ok(Frame::Array(out))
        }
    }
}

/// SMOVE source destination member
pub async fn smove(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (src, dst, mem) = (&argv[1], &argv[2], &argv[3]);
    let sm = cx.meta(src).await?;
    let dm = cx.meta(dst).await?;
    let Some(mut sm) = sm else {
        return Ok(Frame::Integer(0));
    };
    if sm.ty != KeyType::Set || dm.as_ref().is_some_and(|d| d.ty != KeyType::Set) {
        return Err(ExecError::wrongtype());
    }
    if src == dst {
        return Ok(Frame::Integer(i64::from(
            cx.get_elem(src, &sm, TAG_SET, mem).await?.is_some(),
        )));
    }
    if cx.get_elem(src, &sm, TAG_SET, mem).await?.is_none() {
        return Ok(Frame::Integer(0));
    }
    cx.check_key(dst)?;
    cx.check_sub(dst, mem)?;
    cx.del_elem(src, &sm, TAG_SET, mem);
    sm.count = sm.count.saturating_sub(1);
    cx.save_collection(src, &sm).await?;
    cx.notify_collection(SET, "srem", src, &sm);
    let mut dm = match dm {
        Some(d) => d,
        None => Meta::collection(KeyType::Set, cx.start_ts),
    };
    // A member already in `dst` leaves it untouched (a WATCH on it
    // must not fire).
    if cx.get_elem(dst, &dm, TAG_SET, mem).await?.is_none() {
        cx.put_elem(dst, &dm, TAG_SET, mem, Vec::new())?;
        dm.count += 1;
        cx.mark_encoding(&mut dm, &[(mem.as_ref(), 0)]);
        cx.put_meta(dst, &dm)?;
        cx.notify(SET, "sadd", dst);
    }
    Ok(Frame::Integer(1))
}

/// Which algebra.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// SINTER.
    Inter,
    /// SUNION.
    Union,
    /// SDIFF.
    Diff,
}

/// Computes the algebra over `keys` (all type-checked first, as Redis
/// does).
pub async fn compute(
    cx: &mut Ctx<'_>,
    keys: &[Bytes],
    op: SetOp,
) -> Result<BTreeSet<Vec<u8>>, ExecError> {
    // Type-check everything before loading anything big.
    let mut metas = Vec::with_capacity(keys.len());
    for k in keys {
        metas.push(cx.typed(k, KeyType::Set).await?);
    }
    if op == SetOp::Inter && metas.iter().any(Option::is_none) {
        return Ok(BTreeSet::new());
    }
    let mut acc: Option<BTreeSet<Vec<u8>>> = None;
    // Intersection starts from the smallest set.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if op == SetOp::Inter {
        order.sort_by_key(|&i| metas[i].as_ref().map(|m| m.count).unwrap_or(0));
    }
    for i in order {
        let set = match &metas[i] {
            None => BTreeSet::new(),
            Some(m) => members(cx, &keys[i], m).await?.into_iter().collect(),
        };
        acc = Some(match (acc, op) {
            (None, _) => set,
            (Some(a), SetOp::Inter) => a.intersection(&set).cloned().collect(),
            (Some(mut a), SetOp::Union) => {
                a.extend(set);
                if a.len() > MAX_LOADED {
                    return Err(too_many());
                }
                a
            }
            (Some(a), SetOp::Diff) => a.difference(&set).cloned().collect(),
        });
        if op != SetOp::Union && acc.as_ref().is_some_and(BTreeSet::is_empty) {
            break;
        }
    }
    Ok(acc.unwrap_or_default())
}

/// SINTER / SUNION / SDIFF key [key ...]
pub async fn sop(cx: &mut Ctx<'_>, argv: &[Bytes], op: SetOp) -> CmdResult {
    let res = compute(cx, &argv[1..], op).await?;
    let mut out = Vec::with_capacity(res.len());
    for m in res {
        cx.charge(m.len())?;
        out.push(Frame::Bulk(Bytes::from(m)));
    }
    Ok(Frame::Set(out))
}

/// Replaces `dst` with a set of `members` (or deletes it when empty).
pub async fn store_set(
    cx: &mut Ctx<'_>,
    dst: &[u8],
    members: &BTreeSet<Vec<u8>>,
) -> Result<(), ExecError> {
    cx.check_key(dst)?;
    if members.len() > crate::db::MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    for mem in members {
        cx.check_sub(dst, mem)?;
    }
    if let Some(old) = cx.raw_meta(dst).await? {
        cx.remove_key(dst, &old).await?;
    }
    if members.is_empty() {
        return Ok(());
    }
    let mut m = Meta::collection(KeyType::Set, cx.start_ts);
    for mem in members {
        cx.put_elem(dst, &m, TAG_SET, mem, Vec::new())?;
    }
    m.count = members.len() as u64;
    cx.put_meta(dst, &m)
}

/// SINTERSTORE / SUNIONSTORE / SDIFFSTORE destination key [key ...]
pub async fn sop_store(cx: &mut Ctx<'_>, argv: &[Bytes], op: SetOp) -> CmdResult {
    let res = compute(cx, &argv[2..], op).await?;
    let existed = res.is_empty() && cx.meta(&argv[1]).await?.is_some();
    store_set(cx, &argv[1], &res).await?;
    if !res.is_empty() {
        let event = match op {
            SetOp::Inter => "sinterstore",
            SetOp::Union => "sunionstore",
            SetOp::Diff => "sdiffstore",
        };
        cx.notify(SET, event, &argv[1]);
    } else if existed {
        cx.notify(GENERIC, "del", &argv[1]);
    }
    Ok(int(res.len()))
}

/// Parses `numkeys key... [LIMIT limit]` (SINTERCARD, ZINTERCARD).
pub fn parse_card_args(argv: &[Bytes]) -> Result<(&[Bytes], usize), ExecError> {
    // Redis answers the same text for a non-integer and for < 1.
    let numkeys = parse_i64_strict(&argv[1]).unwrap_or(0);
    if numkeys < 1 {
        return Err(ExecError::err("numkeys should be greater than 0"));
    }
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > argv.len() - 2 {
        return Err(ExecError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let keys = &argv[2..2 + numkeys];
    let mut limit = 0usize;
    let mut j = 2 + numkeys;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if argv[j].eq_ignore_ascii_case(b"LIMIT") && more > 0 {
            // Redis answers the same text for a non-integer.
            let n = parse_i64_strict(&argv[j + 1]).unwrap_or(-1);
            if n < 0 {
                return Err(ExecError::err("LIMIT can't be negative"));
            }
            limit = usize::try_from(n).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    Ok((keys, limit))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub async fn sintercard(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (keys, limit) = parse_card_args(argv)?;
    let n = compute(cx, keys, SetOp::Inter).await?.len();
    Ok(int(if limit > 0 { n.min(limit) } else { n }))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub async fn sscan(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cursor = parse_cursor(&argv[2])?;
    let o = parse_scan_opts(argv, 3, false)?;
    let Some(m) = cx.typed(key, KeyType::Set).await? else {
        return Ok(scan_reply(cx, None, Vec::new()));
    };
    let from = cursor_position(cx, cursor)?.unwrap_or_default();
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems_between(key, &m, TAG_SET, &from, None, false);
    let budget = if m.count <= 128 { usize::MAX } else { o.count };
    let mut out = Vec::new();
    let mut examined = 0;
    let mut last = None;
    while examined < budget && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (budget - examined).min(PAGE))
            .await?;
        examined += rows.len();
        for (k, _) in rows {
            let mem = k[off..].to_vec();
            if o.pattern
                .as_ref()
                .is_none_or(|p| crate::glob::glob_match(p, &mem))
            {
                cx.charge(mem.len())?;
                out.push(Frame::bulk(&mem));
            }
            last = Some(mem);
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
