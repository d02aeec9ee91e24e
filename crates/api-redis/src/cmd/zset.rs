//! Sorted-set commands: ZADD (NX XX GT LT CH INCR) ZINCRBY ZREM ZCARD
//! ZSCORE ZMSCORE ZCOUNT ZLEXCOUNT ZRANK ZREVRANK, the unified ZRANGE
//! (BYSCORE BYLEX REV LIMIT WITHSCORES) and its legacy forms, ZRANGESTORE,
//! ZREMRANGEBYRANK/SCORE/LEX, ZPOPMIN ZPOPMAX ZMPOP ZRANDMEMBER, ZUNION
//! ZINTER ZDIFF (and STORE forms) ZINTERCARD ZSCAN.
//!
//! Every member has two entries: `'z' member -> enc(score)` for point
//! lookups and lexicographic ranges, and `'s' enc(score) member` for
//! score order (see `layout`). Rank-based access walks the score index
//! from one end, so ZRANK and ZRANGE by rank cost O(rank) KV rows, read in
//! pages; score and lex ranges seek straight to their start.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::db::{bulk, int, too_many, CmdResult, Ctx, ExecError, Pager, MAX_LOADED, PAGE};
use crate::float::{self, parse_score_bound};
use crate::frame::{Frame, Protocol};
use crate::layout::{self, dec_score, enc_score, KeyType, Meta, TAG_SET, TAG_ZMEMBER, TAG_ZSCORE};
use crate::notify::{GENERIC, ZSET};
use crate::parse::{parse_i64_strict, CmdError};

use super::keyspace::{cursor_position, parse_cursor, parse_scan_opts, scan_reply};
use super::sample;

/// (member, score)
pub type Item = (Vec<u8>, f64);

async fn zscore_of(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    member: &[u8],
) -> Result<Option<f64>, ExecError> {
    Ok(cx
        .get_elem(key, m, TAG_ZMEMBER, member)
        .await?
        .and_then(|v| dec_score(&v)))
}

fn score_sub(score: f64, member: &[u8]) -> Vec<u8> {
    let mut s = enc_score(score).to_vec();
    s.extend_from_slice(member);
    s
}

/// Writes `member` with `new` (replacing the index entry of `old`).
fn zput(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    member: &[u8],
    old: Option<f64>,
    new: f64,
) -> Result<(), ExecError> {
    if let Some(o) = old {
        cx.del_elem(key, m, TAG_ZSCORE, &score_sub(o, member));
    }
    cx.check_sub(key, &score_sub(new, member))?;
    cx.put_elem(key, m, TAG_ZMEMBER, member, enc_score(new).to_vec())?;
    cx.put_elem(key, m, TAG_ZSCORE, &score_sub(new, member), Vec::new())
}

fn zdel(cx: &mut Ctx<'_>, key: &[u8], m: &Meta, member: &[u8], score: f64) {
    cx.del_elem(key, m, TAG_ZMEMBER, member);
    cx.del_elem(key, m, TAG_ZSCORE, &score_sub(score, member));
}

/// Splits a score-index subkey.
fn split_score_sub(sub: &[u8]) -> Option<Item> {
    let score = dec_score(sub)?;
    Some((sub.get(8..)?.to_vec(), score))
}

/// Emits (member, score) items: members only, or with scores (flat in
/// RESP2, `[member, score]` pairs in RESP3).
fn emit(cx: &Ctx<'_>, items: Vec<Item>, withscores: bool) -> Frame {
    let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
    for (m, s) in items {
        if !withscores {
            out.push(bulk(m));
        } else if cx.proto == Protocol::Resp3 {
            out.push(Frame::Array(vec![bulk(m), Frame::Double(s)]));
        } else {
            out.push(bulk(m));
            out.push(Frame::Double(s));
        }
    }
    Frame::Array(out)
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub async fn zadd(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < argv.len() {
        match argv[i].to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &argv[i..];
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(ExecError::syntax());
    }
    if nx && xx {
        return Err(ExecError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(ExecError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && pairs.len() > 2 {
        return Err(ExecError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks(2) {
        scores.push(float::parse_double(&p[0]).ok_or(CmdError::NotFloat)?);
    }
    let key = &argv[1];
    let existing = cx.typed(key, KeyType::ZSet).await?;
    if existing.is_none() && xx {
        return Ok(if incr { Frame::Null } else { Frame::Integer(0) });
    }
    cx.check_key(key)?;
    for p in pairs.chunks(2) {
        cx.check_sub(key, &score_sub(0.0, &p[1]))?;
    }
    let mut m = existing.unwrap_or_else(|| Meta::collection(KeyType::ZSet, cx.start_ts));
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut last_score = 0.0;
    for (p, &score) in pairs.chunks(2).zip(&scores) {
        let member = &p[1];
        let cur = zscore_of(cx, key, &m, member).await?;
        match cur {
            Some(cur) => {
                if nx {
                    continue;
                }
                let mut new = score;
                if incr {
                    new = float::add_scores(cur, score)?;
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                last_score = new;
                processed += 1;
                if new != cur {
                    zput(cx, key, &m, member, Some(cur), new)?;
                    updated += 1;
                }
            }
            None if !xx => {
                zput(cx, key, &m, member, None, score)?;
                m.count += 1;
                added += 1;
                processed += 1;
                last_score = score;
            }
            None => {}
        }
    }
    // Like Redis, only a change touches the key (and so WATCH).
    if added + updated > 0 {
        let written: Vec<(&[u8], usize)> = pairs.chunks(2).map(|p| (p[1].as_ref(), 0)).collect();
        cx.mark_encoding(&mut m, &written);
        cx.put_meta(key, &m)?;
        cx.notify(ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    Ok(if incr {
        if processed > 0 {
            Frame::Double(last_score)
        } else {
            Frame::Null
        }
    } else {
        Frame::Integer(if ch { added + updated } else { added })
    })
}

/// ZINCRBY key increment member
pub async fn zincrby(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let argv2 = [
        argv[0].clone(),
        argv[1].clone(),
        Bytes::from_static(b"INCR"),
        argv[2].clone(),
        argv[3].clone(),
    ];
    zadd(cx, &argv2).await
}

/// ZREM key member [member ...]
pub async fn zrem(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut n = 0;
    for member in &argv[2..] {
        if let Some(s) = zscore_of(cx, key, &m, member).await? {
            zdel(cx, key, &m, member, s);
            m.count = m.count.saturating_sub(1);
            n += 1;
        }
    }
    if n > 0 {
        cx.save_collection(key, &m).await?;
        cx.notify_collection(ZSET, "zrem", key, &m);
    }
    Ok(int(n))
}

/// ZCARD key
pub async fn zcard(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        cx.typed(&argv[1], KeyType::ZSet)
            .await?
            .map(|m| i64::try_from(m.count).unwrap_or(i64::MAX))
            .unwrap_or(0),
    ))
}

/// ZSCORE key member
pub async fn zscore(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(m) = cx.typed(&argv[1], KeyType::ZSet).await? else {
        return Ok(Frame::Null);
    };
    Ok(zscore_of(cx, &argv[1], &m, &argv[2])
        .await?
        .map(Frame::Double)
        .unwrap_or(Frame::Null))
}

/// ZMSCORE key member [member ...]
pub async fn zmscore(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let m = cx.typed(&argv[1], KeyType::ZSet).await?;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for member in &argv[2..] {
        let s = match &m {
            Some(m) => zscore_of(cx, &argv[1], m, member).await?,
            None => None,
        };
        out.push(s.map(Frame::Double).unwrap_or(Frame::Null));
    }
    Ok(Frame::Array(out))
}

/// A score range (`zslParseRange`).
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, ExecError> {
        let (min, minex) = parse_score_bound(min)?;
        let (max, maxex) = parse_score_bound(max)?;
        Ok(ScoreRange {
            min,
            minex,
            max,
            maxex,
        })
    }

    fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    fn contains(&self, s: f64) -> bool {
        self.gte_min(s) && self.lte_max(s)
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }

    /// A pager over the score index covering the range (rows still need
    /// the exclusive-bound filter).
    fn pager(&self, cx: &Ctx<'_>, key: &[u8], m: &Meta, reverse: bool) -> Pager {
        let prefix = layout::tag_prefix(cx.db, key, m.version, TAG_ZSCORE);
        let mut start = prefix.clone();
        start.extend_from_slice(&enc_score(self.min));
        let mut hi = prefix;
        hi.extend_from_slice(&enc_score(self.max));
        let _ = cx;
        Pager::new(start, layout::prefix_end(&hi), reverse)
    }
}

/// A lex range bound (`zslParseLexRangeItem`).
#[derive(Clone, Debug)]
enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn parse_lex(b: &[u8]) -> Result<LexBound, ExecError> {
    let bad = || ExecError::err("min or max not valid string range item");
    match b.first() {
        Some(b'+') if b.len() == 1 => Ok(LexBound::PosInf),
        Some(b'-') if b.len() == 1 => Ok(LexBound::NegInf),
        Some(b'[') => Ok(LexBound::Incl(b[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Excl(b[1..].to_vec())),
        _ => Err(bad()),
    }
}

/// A lex range over the member index.
#[derive(Clone, Debug)]
pub struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, ExecError> {
        Ok(LexRange {
            min: parse_lex(min)?,
            max: parse_lex(max)?,
        })
    }

    fn pager(&self, cx: &Ctx<'_>, key: &[u8], m: &Meta, reverse: bool) -> Pager {
        let prefix = layout::tag_prefix(cx.db, key, m.version, TAG_ZMEMBER);
        let with = |v: &[u8], zero: bool| {
            let mut k = prefix.clone();
            k.extend_from_slice(v);
            if zero {
                k.push(0);
            }
            k
        };
        let start = match &self.min {
            LexBound::NegInf => prefix.clone(),
            // Nothing sorts after +inf: an empty range.
            LexBound::PosInf => layout::prefix_end(&prefix).unwrap_or_default(),
            LexBound::Incl(v) => with(v, false),
            LexBound::Excl(v) => with(v, true),
        };
        let end = match &self.max {
            LexBound::PosInf => layout::prefix_end(&prefix),
            LexBound::NegInf => Some(prefix.clone()),
            LexBound::Incl(v) => Some(with(v, true)),
            LexBound::Excl(v) => Some(with(v, false)),
        };
        Pager::new(start, end, reverse)
    }
}

/// How a range is addressed.
enum RangeBy {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Walks the score index from one end, skipping `skip` rows and
/// returning up to `take` items.
async fn walk_rank(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    skip: u64,
    take: u64,
    reverse: bool,
) -> Result<Vec<Item>, ExecError> {
    if take as usize > MAX_LOADED {
        return Err(too_many());
    }
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems(key, m, TAG_ZSCORE, reverse);
    let mut skipped = 0u64;
    let mut out = Vec::with_capacity((take as usize).min(PAGE));
    while (out.len() as u64) < take && !pager.is_done() {
        let want = if skipped < skip {
            (skip - skipped).min(PAGE as u64 * 4) as usize
        } else {
            ((take - out.len() as u64) as usize).min(PAGE)
        };
        let rows = pager.next_page(cx.tx, want).await?;
        for (k, _) in rows {
            if skipped < skip {
                skipped += 1;
                continue;
            }
            if let Some(item) = split_score_sub(&k[off..]) {
                cx.charge(item.0.len() + 8)?;
                out.push(item);
            }
        }
    }
    Ok(out)
}

/// Collects a score range, applying LIMIT (offset < 0: nothing; count <
/// 0: no limit).
async fn walk_score(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    r: &ScoreRange,
    reverse: bool,
    offset: i64,
    count: i64,
) -> Result<Vec<Item>, ExecError> {
    if offset < 0 || r.is_empty() {
        return Ok(Vec::new());
    }
    let off = Ctx::sub_offset(key);
    let mut pager = r.pager(cx, key, m, reverse);
    let mut skipped = 0i64;
    let mut out = Vec::new();
    'walk: while !pager.is_done() {
        for (k, _) in pager.next_page(cx.tx, PAGE).await? {
            let Some(item) = split_score_sub(&k[off..]) else {
                continue;
            };
            if !r.contains(item.1) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            if count >= 0 && out.len() as i64 >= count {
                break 'walk;
            }
            cx.charge(item.0.len() + 8)?;
            out.push(item);
            if out.len() > MAX_LOADED {
                return Err(too_many());
            }
        }
    }
    Ok(out)
}

async fn walk_lex(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    r: &LexRange,
    reverse: bool,
    offset: i64,
    count: i64,
) -> Result<Vec<Item>, ExecError> {
    if offset < 0 {
        return Ok(Vec::new());
    }
    let off = Ctx::sub_offset(key);
    let mut pager = r.pager(cx, key, m, reverse);
    let mut skipped = 0i64;
    let mut out = Vec::new();
    'walk: while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            if skipped < offset {
                skipped += 1;
                continue;
            }
            if count >= 0 && out.len() as i64 >= count {
                break 'walk;
            }
            let member = k[off..].to_vec();
            cx.charge(member.len() + 8)?;
            out.push((member, dec_score(&v).unwrap_or(0.0)));
            if out.len() > MAX_LOADED {
                return Err(too_many());
            }
        }
    }
    Ok(out)
}

/// Resolves a rank range to (skip, take) from the walked end.
fn rank_window(start: i64, end: i64, llen: i64) -> Option<(u64, u64)> {
    let mut s = if start < 0 { llen + start } else { start };
    let mut e = if end < 0 { llen + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= llen {
        return None;
    }
    if e >= llen {
        e = llen - 1;
    }
    Some((s as u64, (e - s + 1) as u64))
}

async fn collect(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &Meta,
    by: &RangeBy,
    reverse: bool,
    offset: i64,
    count: i64,
) -> Result<Vec<Item>, ExecError> {
    match by {
        RangeBy::Rank(s, e) => match rank_window(*s, *e, m.count as i64) {
            None => Ok(Vec::new()),
            Some((skip, take)) => walk_rank(cx, key, m, skip, take, reverse).await,
        },
        RangeBy::Score(r) => walk_score(cx, key, m, r, reverse, offset, count).await,
        RangeBy::Lex(r) => walk_lex(cx, key, m, r, reverse, offset, count).await,
    }
}

/// Which ZRANGE family member is being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RangeCmd {
    /// ZRANGE (all options).
    Zrange,
    /// ZRANGESTORE.
    Store,
    /// ZREVRANGE.
    RevRank,
    /// ZRANGEBYSCORE.
    ByScore,
    /// ZREVRANGEBYSCORE.
    RevByScore,
    /// ZRANGEBYLEX.
    ByLex,
    /// ZREVRANGEBYLEX.
    RevByLex,
}

/// The whole `zrangeGenericCommand`.
pub async fn zrange(cx: &mut Ctx<'_>, argv: &[Bytes], which: RangeCmd) -> CmdResult {
    let argc_start = if which == RangeCmd::Store { 2 } else { 1 };
    let key = &argv[argc_start];
    let (mut minidx, mut maxidx) = (argc_start + 1, argc_start + 2);
    #[derive(PartialEq, Clone, Copy)]
    enum T {
        Auto,
        Rank,
        Score,
        Lex,
    }
    let (mut rangetype, mut reverse_set) = match which {
        RangeCmd::Zrange | RangeCmd::Store => (T::Auto, None),
        RangeCmd::RevRank => (T::Rank, Some(true)),
        RangeCmd::ByScore => (T::Score, Some(false)),
        RangeCmd::RevByScore => (T::Score, Some(true)),
        RangeCmd::ByLex => (T::Lex, Some(false)),
        RangeCmd::RevByLex => (T::Lex, Some(true)),
    };
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = argc_start + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = &argv[j];
        if a.eq_ignore_ascii_case(b"withscores") && which != RangeCmd::Store {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            offset = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
            limit = parse_i64_strict(&argv[j + 2]).ok_or(CmdError::NotInteger)?;
            j += 2;
        } else if reverse_set.is_none() && a.eq_ignore_ascii_case(b"rev") {
            reverse_set = Some(true);
        } else if rangetype == T::Auto && a.eq_ignore_ascii_case(b"bylex") {
            rangetype = T::Lex;
        } else if rangetype == T::Auto && a.eq_ignore_ascii_case(b"byscore") {
            rangetype = T::Score;
        } else {
            return Err(ExecError::syntax());
        }
        j += 1;
    }
    let reverse = reverse_set.unwrap_or(false);
    if rangetype == T::Auto {
        rangetype = T::Rank;
    }
    if limit != -1 && rangetype == T::Rank {
        return Err(ExecError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rangetype == T::Lex {
        return Err(ExecError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if reverse && rangetype != T::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let by = match rangetype {
        T::Score => RangeBy::Score(ScoreRange::parse(&argv[minidx], &argv[maxidx])?),
        T::Lex => RangeBy::Lex(LexRange::parse(&argv[minidx], &argv[maxidx])?),
        _ => RangeBy::Rank(
            parse_i64_strict(&argv[minidx]).ok_or(CmdError::NotInteger)?,
            parse_i64_strict(&argv[maxidx]).ok_or(CmdError::NotInteger)?,
        ),
    };
    let m = cx.typed(key, KeyType::ZSet).await?;
    let items = match &m {
        None => Vec::new(),
        Some(m) => collect(cx, key, m, &by, reverse, offset, limit).await?,
    };
    if which == RangeCmd::Store {
        let n = items.len();
        store_zset_notifying(cx, &argv[1], items, "zrangestore").await?;
        return Ok(int(n));
    }
    Ok(emit(cx, items, withscores))
}

/// [`store_zset`] for a STORE command: `event` on `dst`, or `del` if the
/// result is empty and `dst` existed.
async fn store_zset_notifying(
    cx: &mut Ctx<'_>,
    dst: &[u8],
    items: Vec<Item>,
    event: &'static str,
) -> Result<(), ExecError> {
    let empty = items.is_empty();
    let existed = empty && cx.meta(dst).await?.is_some();
    store_zset(cx, dst, items).await?;
    if !empty {
        cx.notify(ZSET, event, dst);
    } else if existed {
        cx.notify(GENERIC, "del", dst);
    }
    Ok(())
}

/// Replaces `dst` with the given items (deleting it when empty).
pub async fn store_zset(cx: &mut Ctx<'_>, dst: &[u8], items: Vec<Item>) -> Result<(), ExecError> {
    cx.check_key(dst)?;
    if items.len() > crate::db::MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    if let Some(old) = cx.raw_meta(dst).await? {
        cx.remove_key(dst, &old).await?;
    }
    if items.is_empty() {
        return Ok(());
    }
    let mut m = Meta::collection(KeyType::ZSet, cx.start_ts);
    for (member, score) in &items {
        zput(cx, dst, &m, member, None, *score)?;
    }
    m.count = items.len() as u64;
    cx.put_meta(dst, &m)
}

/// ZCOUNT key min max
pub async fn zcount(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let r = ScoreRange::parse(&argv[2], &argv[3])?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Integer(0));
    };
    if r.is_empty() {
        return Ok(Frame::Integer(0));
    }
    let off = Ctx::sub_offset(key);
    let mut pager = r.pager(cx, key, &m, false);
    let mut n = 0;
    while !pager.is_done() {
        for (k, _) in pager.next_page(cx.tx, PAGE * 4).await? {
            if split_score_sub(&k[off..]).is_some_and(|(_, s)| r.contains(s)) {
                n += 1;
            }
        }
    }
    Ok(int(n))
}

/// ZLEXCOUNT key min max
pub async fn zlexcount(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let r = LexRange::parse(&argv[2], &argv[3])?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut pager = r.pager(cx, key, &m, false);
    let mut n = 0;
    while !pager.is_done() {
        n += pager.next_page(cx.tx, PAGE * 4).await?.len();
    }
    Ok(int(n))
}

/// ZRANK / ZREVRANK key member: counts the members before it.
pub async fn zrank(cx: &mut Ctx<'_>, argv: &[Bytes], rev: bool) -> CmdResult {
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Null);
    };
    let Some(score) = zscore_of(cx, key, &m, &argv[2]).await? else {
        return Ok(Frame::Null);
    };
    let prefix = layout::tag_prefix(cx.db, key, m.version, TAG_ZSCORE);
    let mut end = prefix.clone();
    end.extend_from_slice(&score_sub(score, &argv[2]));
    let mut pager = Pager::new(prefix, Some(end), false);
    let mut before = 0u64;
    while !pager.is_done() {
        before += pager.next_page(cx.tx, PAGE * 4).await?.len() as u64;
    }
    let rank = if rev {
        m.count.saturating_sub(1).saturating_sub(before)
    } else {
        before
    };
    Ok(Frame::Integer(i64::try_from(rank).unwrap_or(i64::MAX)))
}

/// Deletes the given items from `key`.
async fn remove_items(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &mut Meta,
    items: &[Item],
) -> Result<(), ExecError> {
    for (member, score) in items {
        zdel(cx, key, m, member, *score);
    }
    m.count = m.count.saturating_sub(items.len() as u64);
    cx.save_collection(key, m).await
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key a b
pub async fn zremrange(cx: &mut Ctx<'_>, argv: &[Bytes], kind: u8) -> CmdResult {
    let by = match kind {
        b'r' => RangeBy::Rank(
            parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?,
            parse_i64_strict(&argv[3]).ok_or(CmdError::NotInteger)?,
        ),
        b's' => RangeBy::Score(ScoreRange::parse(&argv[2], &argv[3])?),
        _ => RangeBy::Lex(LexRange::parse(&argv[2], &argv[3])?),
    };
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Integer(0));
    };
    let items = collect(cx, key, &m, &by, false, 0, -1).await?;
    if items.is_empty() {
        return Ok(Frame::Integer(0));
    }
    remove_items(cx, key, &mut m, &items).await?;
    let event = match kind {
        b'r' => "zremrangebyrank",
        b's' => "zremrangebyscore",
        _ => "zremrangebylex",
    };
    cx.notify_collection(ZSET, event, key, &m);
    Ok(int(items.len()))
}

/// Pops up to `n` items from the low (`max` false) or high end.
async fn pop(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &mut Meta,
    n: u64,
    max: bool,
) -> Result<Vec<Item>, ExecError> {
    let n = n.min(m.count);
    let items = walk_rank(cx, key, m, 0, n, max).await?;
    remove_items(cx, key, m, &items).await?;
    if !items.is_empty() {
        cx.notify_collection(ZSET, if max { "zpopmax" } else { "zpopmin" }, key, m);
    }
    Ok(items)
}

/// ZPOPMIN / ZPOPMAX key [count]
pub async fn zpop(cx: &mut Ctx<'_>, argv: &[Bytes], max: bool) -> CmdResult {
    let count = match argv.get(2) {
        None => None,
        Some(a) => Some(
            parse_i64_strict(a)
                .filter(|n| *n >= 0)
                .ok_or(CmdError::NotPositive)?,
        ),
    };
    if argv.len() > 3 {
        return Err(ExecError::syntax());
    }
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let n = count.unwrap_or(1) as u64;
    if n == 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    let items = pop(cx, key, &mut m, n, max).await?;
    if count.is_none() {
        // The count-less form is a flat [member, score] in both protocols.
        return Ok(Frame::Array(
            items
                .into_iter()
                .flat_map(|(mb, s)| [bulk(mb), Frame::Double(s)])
                .collect(),
        ));
    }
    Ok(emit(cx, items, true))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub async fn zmpop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let numkeys = parse_i64_strict(&argv[1]).unwrap_or(0);
    if numkeys < 1 {
        return Err(ExecError::err("numkeys should be greater than 0"));
    }
    let where_idx = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|w| *w < argv.len())
        .ok_or_else(ExecError::syntax)?;
    let max = if argv[where_idx].eq_ignore_ascii_case(b"MIN") {
        false
    } else if argv[where_idx].eq_ignore_ascii_case(b"MAX") {
        true
    } else {
        return Err(ExecError::syntax());
    };
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count.is_none() && argv[j].eq_ignore_ascii_case(b"COUNT") && more > 0 {
            let n = parse_i64_strict(&argv[j + 1])
                .ok_or_else(|| ExecError::err("count should be greater than 0"))?;
            if n < 1 {
                return Err(ExecError::err("count should be greater than 0"));
            }
            count = Some(n);
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    let n = count.unwrap_or(1) as u64;
    for key in &argv[2..where_idx] {
        let Some(mut m) = cx.typed(key, KeyType::ZSet).await? else {
            continue;
        };
        let items = pop(cx, key, &mut m, n, max).await?;
        let pairs = items
            .into_iter()
            .map(|(mb, s)| Frame::Array(vec![bulk(mb), Frame::Double(s)]))
            .collect();
        return Ok(Frame::Array(vec![
            Frame::Bulk(key.clone()),
            Frame::Array(pairs),
        ]));
    }
    Ok(Frame::NullArray)
}

/// Every (member, score) of a zset, in score order.
async fn all_items(cx: &mut Ctx<'_>, key: &[u8], m: &Meta) -> Result<Vec<Item>, ExecError> {
    Ok(cx
        .load_all(key, m, TAG_ZSCORE)
        .await?
        .iter()
        .filter_map(|(sub, _)| split_score_sub(sub))
        .collect())
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub async fn zrandmember(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() == 2 {
        let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
            return Ok(Frame::Null);
        };
        let all = all_items(cx, key, &m).await?;
        return Ok(sample::pick_one(&all)
            .map(|(mb, _)| Frame::bulk(mb))
            .unwrap_or(Frame::Null));
    }
    let count = sample::parse_count(&argv[2])?;
    let withscores = match argv.len() {
        3 => false,
        4 if argv[3].eq_ignore_ascii_case(b"WITHSCORES") => true,
        _ => return Err(ExecError::syntax()),
    };
    if withscores {
        sample::check_paired(count)?;
    }
    let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let all = all_items(cx, key, &m).await?;
    let picked = sample::pick(all.len(), count)?;
    let mut items = Vec::with_capacity(picked.len());
    for i in picked {
        cx.charge(all[i].0.len() + 8)?;
        items.push(all[i].clone());
    }
    Ok(emit(cx, items, withscores))
}

/// Aggregation of ZUNION/ZINTER.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(a: Aggregate, target: &mut f64, v: f64) {
    match a {
        Aggregate::Sum => {
            *target += v;
            // inf + -inf: Redis stores 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// Which algebra.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ZOp {
    /// ZUNION.
    Union,
    /// ZINTER.
    Inter,
    /// ZDIFF.
    Diff,
}

/// Loads an operand (a zset, or a set with every score 1).
async fn zoperand(cx: &mut Ctx<'_>, key: &[u8], m: &Meta) -> Result<Vec<Item>, ExecError> {
    if m.ty == KeyType::Set {
        Ok(cx
            .load_all(key, m, TAG_SET)
            .await?
            .into_iter()
            .map(|(mb, _)| (mb, 1.0))
            .collect())
    } else {
        all_items(cx, key, m).await
    }
}

/// `zunionInterDiffGenericCommand`: `numkeys_idx` is where numkeys is;
/// `store` the destination for the STORE forms; `card` for ZINTERCARD.
pub async fn zsetop(
    cx: &mut Ctx<'_>,
    argv: &[Bytes],
    op: ZOp,
    store: Option<&Bytes>,
    card: bool,
) -> CmdResult {
    let numkeys_idx = if store.is_some() { 2 } else { 1 };
    let fullname = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let setnum = parse_i64_strict(&argv[numkeys_idx]).ok_or(CmdError::NotInteger)?;
    if setnum < 1 {
        return Err(ExecError::err(format!(
            "at least 1 input key is needed for '{fullname}' command"
        )));
    }
    let setnum = usize::try_from(setnum).unwrap_or(usize::MAX);
    if setnum > argv.len() - (numkeys_idx + 1) {
        return Err(ExecError::syntax());
    }
    let keys = &argv[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    let mut metas = Vec::with_capacity(setnum);
    for k in keys {
        match cx.meta(k).await? {
            Some(m) if m.ty != KeyType::ZSet && m.ty != KeyType::Set => {
                return Err(ExecError::wrongtype())
            }
            other => metas.push(other),
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = numkeys_idx + 1 + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = &argv[j];
        if card {
            if a.eq_ignore_ascii_case(b"LIMIT") && remaining >= 2 {
                // Redis answers the same text for a non-integer.
                let n = parse_i64_strict(&argv[j + 1]).unwrap_or(-1);
                if n < 0 {
                    return Err(ExecError::err("LIMIT can't be negative"));
                }
                limit = usize::try_from(n).unwrap_or(usize::MAX);
                j += 2;
                continue;
            }
            return Err(ExecError::syntax());
        }
        if op != ZOp::Diff && remaining > setnum && a.eq_ignore_ascii_case(b"weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = float::parse_double(&argv[j])
                    .ok_or_else(|| ExecError::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != ZOp::Diff && remaining >= 2 && a.eq_ignore_ascii_case(b"aggregate") {
            let v = &argv[j + 1];
            agg = if v.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                return Err(ExecError::syntax());
            };
            j += 2;
        } else if store.is_none() && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else {
            return Err(ExecError::syntax());
        }
    }
    // Compute.
    let mut result: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    match op {
        ZOp::Union => {
            for (i, m) in metas.iter().enumerate() {
                let Some(m) = m else { continue };
                for (mb, s) in zoperand(cx, &keys[i], m).await? {
                    let v = weighted(s, weights[i]);
                    match result.get_mut(&mb) {
                        Some(t) => aggregate(agg, t, v),
                        None => {
                            result.insert(mb, v);
                            if result.len() > MAX_LOADED {
                                return Err(too_many());
                            }
                        }
                    }
                }
            }
        }
        ZOp::Inter => {
            if metas.iter().all(Option::is_some) {
                // Start from the smallest input.
                let mut order: Vec<usize> = (0..setnum).collect();
                order.sort_by_key(|&i| metas[i].as_ref().map(|m| m.count).unwrap_or(0));
                let first = order[0];
                if let Some(m) = &metas[first] {
                    for (mb, s) in zoperand(cx, &keys[first], m).await? {
                        result.insert(mb, weighted(s, weights[first]));
                    }
                }
                for &i in &order[1..] {
                    if result.is_empty() {
                        break;
                    }
                    let Some(m) = &metas[i] else { continue };
                    let other: HashMap<Vec<u8>, f64> =
                        zoperand(cx, &keys[i], m).await?.into_iter().collect();
                    result.retain(|mb, _| other.contains_key(mb));
                    for (mb, t) in result.iter_mut() {
                        if let Some(s) = other.get(mb) {
                            aggregate(agg, t, weighted(*s, weights[i]));
                        }
                    }
                }
            }
        }
        ZOp::Diff => {
            if let Some(m) = &metas[0] {
                for (mb, s) in zoperand(cx, &keys[0], m).await? {
                    result.insert(mb, s);
                }
                for i in 1..setnum {
                    if result.is_empty() {
                        break;
                    }
                    let Some(m) = &metas[i] else { continue };
                    for (mb, _) in zoperand(cx, &keys[i], m).await? {
                        result.remove(&mb);
                    }
                }
            }
        }
    }
    if card {
        let n = result.len();
        return Ok(int(if limit > 0 { n.min(limit) } else { n }));
    }
    let mut items: Vec<Item> = result.into_iter().collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    if let Some(dst) = store {
        let n = items.len();
        let event = match op {
            ZOp::Union => "zunionstore",
            ZOp::Inter => "zinterstore",
            ZOp::Diff => "zdiffstore",
        };
        store_zset_notifying(cx, dst, items, event).await?;
        return Ok(int(n));
    }
    for (mb, _) in &items {
        cx.charge(mb.len() + 8)?;
    }
    Ok(emit(cx, items, withscores))
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub async fn zscan(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cursor = parse_cursor(&argv[2])?;
    let o = parse_scan_opts(argv, 3, false)?;
    let Some(m) = cx.typed(key, KeyType::ZSet).await? else {
        return Ok(scan_reply(cx, None, Vec::new()));
    };
    let from = cursor_position(cx, cursor)?.unwrap_or_default();
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems_between(key, &m, TAG_ZMEMBER, &from, None, false);
    let budget = if m.count <= 128 { usize::MAX } else { o.count };
    let mut out = Vec::new();
    let mut examined = 0;
    let mut last = None;
    while examined < budget && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (budget - examined).min(PAGE))
            .await?;
        examined += rows.len();
        for (k, v) in rows {
            let mb = k[off..].to_vec();
            if o.pattern
                .as_ref()
                .is_none_or(|p| crate::glob::glob_match(p, &mb))
            {
                let s = dec_score(&v).unwrap_or(0.0);
                cx.charge(mb.len() + 24)?;
                out.push(Frame::bulk(&mb));
                // ZSCAN replies scores as plain strings (d2string).
                out.push(Frame::bulk(float::format_double_g17(s)));
            }
            last = Some(mb);
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
