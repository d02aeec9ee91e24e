//! List commands (non-blocking): LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP
//! LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE RPOPLPUSH LMPOP.
//!
//! A list is a run of sequence numbers `[head, tail)` (metadata record),
//! each element one KV entry keyed by its sequence number, so pushes and
//! pops at either end, LINDEX and LSET are O(1) KV operations and LRANGE
//! reads only the requested span, in pages. LINSERT and LREM must close
//! or open a gap: they shift whichever side of the gap is shorter
//! (O(min(left, right)) element rewrites, bounded by `MAX_REWRITE`).
//! LTRIM and counted pops only move `head`/`tail`; the elements cut off
//! are deleted too (up to `MAX_EAGER_DELETES` of them nearest to the kept span —
//! anything further is left as invisible garbage outside `[head, tail)`,
//! overwritten by later pushes or reclaimed with the key's version).

use bytes::Bytes;

use crate::db::{
    bulk, int, too_many, too_many_writes, CmdResult, Ctx, ExecError, MAX_EAGER_DELETES, MAX_LOADED,
    MAX_REWRITE, PAGE,
};
use crate::frame::Frame;
use crate::layout::{seq_sub, KeyType, Meta, TAG_LIST};
use crate::notify::LIST;
use crate::parse::{parse_i64_strict, CmdError};

/// Which end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Head (LEFT).
    Left,
    /// Tail (RIGHT).
    Right,
}

fn parse_end(arg: &[u8]) -> Result<End, ExecError> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Ok(End::Right)
    } else {
        Err(ExecError::syntax())
    }
}

fn len(m: &Meta) -> i64 {
    i64::try_from(m.tail.wrapping_sub(m.head)).unwrap_or(i64::MAX)
}

/// The sequence number of index `i` (0 <= i < len).
fn seq(m: &Meta, i: i64) -> u64 {
    m.head.wrapping_add(i as u64)
}

/// Pushes `values` at `end` of the (possibly new) list `m`.
fn push(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &mut Meta,
    end: End,
    values: &[Bytes],
) -> Result<(), ExecError> {
    for v in values {
        let s = match end {
            End::Left => {
                m.head = m.head.wrapping_sub(1);
                m.head
            }
            End::Right => {
                let s = m.tail;
                m.tail = m.tail.wrapping_add(1);
                s
            }
        };
        cx.put_elem(key, m, TAG_LIST, &seq_sub(s), v.to_vec())?;
        m.count += 1;
    }
    Ok(())
}

/// Replaces `dst` with a list of `values` (or deletes it when empty).
pub async fn store_list(cx: &mut Ctx<'_>, dst: &[u8], values: &[Bytes]) -> Result<(), ExecError> {
    cx.check_key(dst)?;
    if values.len() > crate::db::MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    if let Some(old) = cx.raw_meta(dst).await? {
        cx.remove_key(dst, &old).await?;
    }
    if values.is_empty() {
        return Ok(());
    }
    let mut m = Meta::collection(KeyType::List, cx.start_ts);
    push(cx, dst, &mut m, End::Right, values)?;
    cx.put_meta(dst, &m)
}

/// The live elements of list `m`, in order (bounded by `MAX_LOADED`).
pub async fn load_list(cx: &mut Ctx<'_>, key: &[u8], m: &Meta) -> Result<Vec<Vec<u8>>, ExecError> {
    if m.count as usize > crate::db::MAX_LOADED {
        return Err(crate::db::too_many());
    }
    let mut pager = cx.elems_between(
        key,
        m,
        TAG_LIST,
        &seq_sub(m.head),
        Some(&seq_sub(m.tail)),
        false,
    );
    let mut out = Vec::with_capacity(m.count.min(4096) as usize);
    while !pager.is_done() {
        for (_, v) in pager.next_page(cx.tx, PAGE).await? {
            out.push(v);
        }
    }
    Ok(out)
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]
pub async fn lpush(cx: &mut Ctx<'_>, argv: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let key = &argv[1];
    let mut m = if only_existing {
        match cx.typed(key, KeyType::List).await? {
            Some(m) => m,
            None => return Ok(Frame::Integer(0)),
        }
    } else {
        cx.typed_or_new(key, KeyType::List).await?
    };
    push(cx, key, &mut m, end, &argv[2..])?;
    cx.put_meta(key, &m)?;
    cx.notify(LIST, push_event(end), key);
    Ok(Frame::Integer(len(&m)))
}

/// Pops up to `n` elements from `end`, deleting them; the caller saves
/// the record.
async fn pop_n(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &mut Meta,
    end: End,
    n: usize,
) -> Result<Vec<Vec<u8>>, ExecError> {
    let n = n.min(usize::try_from(len(m)).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(n.min(PAGE));
    let (from, to) = match end {
        End::Left => (m.head, m.head.wrapping_add(n as u64)),
        End::Right => (m.tail.wrapping_sub(n as u64), m.tail),
    };
    let mut pager = cx.elems_between(
        key,
        m,
        TAG_LIST,
        &seq_sub(from),
        Some(&seq_sub(to)),
        end == End::Right,
    );
    while out.len() < n {
        let rows = pager.next_page(cx.tx, (n - out.len()).min(PAGE)).await?;
        for (k, v) in rows {
            cx.charge(v.len())?;
            // Popped elements fall outside [head, tail): deleting them is
            // only space reclamation, bounded per command.
            if out.len() < MAX_EAGER_DELETES {
                cx.tx.delete(k);
            }
            out.push(v);
        }
        if pager.is_done() {
            break;
        }
    }
    match end {
        End::Left => m.head = to,
        End::Right => m.tail = from,
    }
    m.count = m.count.saturating_sub(n as u64);
    Ok(out)
}

/// LPOP / RPOP key [count]
pub async fn lpop(cx: &mut Ctx<'_>, argv: &[Bytes], end: End) -> CmdResult {
    // The table's arity (-2) admits any number; Redis checks the maximum
    // in the command itself.
    if argv.len() > 3 {
        let name = match end {
            End::Left => "lpop",
            End::Right => "rpop",
        };
        return Err(CmdError::WrongArity(name.into()).into());
    }
    let key = &argv[1];
    let count = match argv.get(2) {
        None => None,
        Some(a) => {
            // getPositiveLongFromObjectOrReply with this message uses it
            // for non-integers too.
            let n = parse_i64_strict(a)
                .filter(|n| *n >= 0)
                .ok_or(CmdError::NotPositive)?;
            Some(usize::try_from(n).unwrap_or(usize::MAX))
        }
    };
    let Some(mut m) = cx.typed(key, KeyType::List).await? else {
        return Ok(if count.is_some() {
            Frame::NullArray
        } else {
            Frame::Null
        });
    };
    if count == Some(0) {
        return Ok(Frame::Array(Vec::new()));
    }
    let vals = pop_n(cx, key, &mut m, end, count.unwrap_or(1)).await?;
    cx.save_collection(key, &m).await?;
    cx.notify_collection(LIST, pop_event(end), key, &m);
    Ok(match count {
        None => vals.into_iter().next().map(bulk).unwrap_or(Frame::Null),
        Some(_) => Frame::Array(vals.into_iter().map(bulk).collect()),
    })
}

/// LLEN key
pub async fn llen(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        cx.typed(&argv[1], KeyType::List)
            .await?
            .map(|m| len(&m))
            .unwrap_or(0),
    ))
}

/// Normalises LRANGE/LTRIM-style indexes; `None` when the range is empty.
fn range(start: i64, end: i64, llen: i64) -> Option<(i64, i64)> {
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
    Some((s, e))
}

/// LRANGE key start stop: reads only the span, page by page.
pub async fn lrange(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let start = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let stop = parse_i64_strict(&argv[3]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::List).await? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let Some((s, e)) = range(start, stop, len(&m)) else {
        return Ok(Frame::Array(Vec::new()));
    };
    let mut pager = cx.elems_between(
        key,
        &m,
        TAG_LIST,
        &seq_sub(seq(&m, s)),
        Some(&seq_sub(seq(&m, e + 1))),
        false,
    );
    let mut out = Vec::new();
    loop {
        for (_, v) in pager.next_page(cx.tx, PAGE).await? {
            cx.charge(v.len())?;
            out.push(bulk(v));
        }
        if pager.is_done() {
            return Ok(Frame::Array(out));
        }
    }
}

/// LINDEX key index
pub async fn lindex(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let idx = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::List).await? else {
        return Ok(Frame::Null);
    };
    let n = len(&m);
    let i = if idx < 0 { n + idx } else { idx };
    if i < 0 || i >= n {
        return Ok(Frame::Null);
    }
    Ok(cx
        .get_elem(key, &m, TAG_LIST, &seq_sub(seq(&m, i)))
        .await?
        .map(bulk)
        .unwrap_or(Frame::Null))
}

/// LSET key index element
pub async fn lset(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let idx = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let Some(m) = cx.typed(key, KeyType::List).await? else {
        return Err(ExecError::err("no such key"));
    };
    let n = len(&m);
    let i = if idx < 0 { n + idx } else { idx };
    if i < 0 || i >= n {
        return Err(ExecError::err("index out of range"));
    }
    cx.put_elem(key, &m, TAG_LIST, &seq_sub(seq(&m, i)), argv[3].to_vec())?;
    cx.put_meta(key, &m)?;
    cx.notify(LIST, "lset", key);
    Ok(Frame::ok())
}

/// Deletes sequence numbers `[from, to)` (at most `MAX_EAGER_DELETES` of them,
/// those nearest `near_from` side first), without reading them.
fn delete_span(cx: &mut Ctx<'_>, key: &[u8], m: &Meta, from: u64, to: u64, near_from: bool) {
    let n = to.wrapping_sub(from).min(MAX_EAGER_DELETES as u64);
    for k in 0..n {
        let s = if near_from {
            from.wrapping_add(k)
        } else {
            to.wrapping_sub(1 + k)
        };
        cx.del_elem(key, m, TAG_LIST, &seq_sub(s));
    }
}

/// LTRIM key start stop
pub async fn ltrim(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let start = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let stop = parse_i64_strict(&argv[3]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::List).await? else {
        return Ok(Frame::ok());
    };
    let n = len(&m);
    match range(start, stop, n) {
        None => {
            cx.remove_key(key, &m).await?;
            m.count = 0;
        }
        Some((s, e)) => {
            let (new_head, new_tail) = (seq(&m, s), seq(&m, e + 1));
            delete_span(cx, key, &m, m.head, new_head, false);
            delete_span(cx, key, &m, new_tail, m.tail, true);
            m.head = new_head;
            m.tail = new_tail;
            m.count = (e - s + 1) as u64;
            cx.put_meta(key, &m)?;
        }
    }
    cx.notify_collection(LIST, "ltrim", key, &m);
    Ok(Frame::ok())
}

/// Removes the elements at the given (sorted, distinct) indexes, shifting
/// the shorter side of the list to close the gaps.
async fn remove_indexes(
    cx: &mut Ctx<'_>,
    key: &[u8],
    m: &mut Meta,
    removed: &[i64],
) -> Result<(), ExecError> {
    let (Some(&first), Some(&last)) = (removed.first(), removed.last()) else {
        return Ok(());
    };
    let n = len(m);
    let k = removed.len() as u64;
    if (n - 1 - first).min(last) as usize > MAX_REWRITE {
        return Err(too_many_writes());
    }
    // Shifting the right part left moves the elements after `first`;
    // shifting the left part right moves those before `last`.
    if n - 1 - first <= last {
        let mut pager = cx.elems_between(
            key,
            m,
            TAG_LIST,
            &seq_sub(seq(m, first)),
            Some(&seq_sub(m.tail)),
            false,
        );
        let mut ri = 0;
        let mut shift = 0u64;
        let mut idx = first;
        loop {
            for (_, v) in pager.next_page(cx.tx, PAGE).await? {
                if ri < removed.len() && removed[ri] == idx {
                    ri += 1;
                    shift += 1;
                } else if shift > 0 {
                    let to = seq(m, idx).wrapping_sub(shift);
                    cx.put_elem(key, m, TAG_LIST, &seq_sub(to), v)?;
                }
                idx += 1;
            }
            if pager.is_done() {
                break;
            }
        }
        let new_tail = m.tail.wrapping_sub(k);
        delete_span(cx, key, m, new_tail, m.tail, true);
        m.tail = new_tail;
    } else {
        let mut pager = cx.elems_between(
            key,
            m,
            TAG_LIST,
            &seq_sub(m.head),
            Some(&seq_sub(seq(m, last + 1))),
            true,
        );
        let mut ri = removed.len();
        let mut shift = 0u64;
        let mut idx = last;
        loop {
            for (_, v) in pager.next_page(cx.tx, PAGE).await? {
                if ri > 0 && removed[ri - 1] == idx {
                    ri -= 1;
                    shift += 1;
                } else if shift > 0 {
                    let to = seq(m, idx).wrapping_add(shift);
                    cx.put_elem(key, m, TAG_LIST, &seq_sub(to), v)?;
                }
                idx -= 1;
            }
            if pager.is_done() {
                break;
            }
        }
        let new_head = m.head.wrapping_add(k);
        delete_span(cx, key, m, m.head, new_head, false);
        m.head = new_head;
    }
    m.count = m.count.saturating_sub(k);
    Ok(())
}

/// LREM key count element
pub async fn lrem(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let count = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    let key = &argv[1];
    let elem = &argv[3];
    let Some(mut m) = cx.typed(key, KeyType::List).await? else {
        return Ok(Frame::Integer(0));
    };
    let reverse = count < 0;
    let want = if count == 0 {
        u64::MAX
    } else {
        count.unsigned_abs()
    };
    let mut pager = cx.elems(key, &m, TAG_LIST, reverse);
    let mut removed = Vec::new();
    let mut idx: i64 = if reverse { len(&m) - 1 } else { 0 };
    'walk: loop {
        for (_, v) in pager.next_page(cx.tx, PAGE).await? {
            if v == elem.as_ref() {
                removed.push(idx);
                if removed.len() > MAX_LOADED {
                    return Err(too_many());
                }
                if removed.len() as u64 >= want {
                    break 'walk;
                }
            }
            idx += if reverse { -1 } else { 1 };
        }
        if pager.is_done() {
            break;
        }
    }
    if removed.is_empty() {
        return Ok(Frame::Integer(0));
    }
    removed.sort_unstable();
    let n = removed.len();
    remove_indexes(cx, key, &mut m, &removed).await?;
    cx.save_collection(key, &m).await?;
    cx.notify_collection(LIST, "lrem", key, &m);
    Ok(int(n))
}

/// LINSERT key BEFORE|AFTER pivot element
pub async fn linsert(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let after = if argv[2].eq_ignore_ascii_case(b"AFTER") {
        true
    } else if argv[2].eq_ignore_ascii_case(b"BEFORE") {
        false
    } else {
        return Err(ExecError::syntax());
    };
    let key = &argv[1];
    let Some(mut m) = cx.typed(key, KeyType::List).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut pager = cx.elems(key, &m, TAG_LIST, false);
    let mut found = None;
    let mut idx = 0i64;
    'walk: loop {
        for (_, v) in pager.next_page(cx.tx, PAGE).await? {
            if v == argv[3].as_ref() {
                found = Some(idx);
                break 'walk;
            }
            idx += 1;
        }
        if pager.is_done() {
            break;
        }
    }
    let Some(pivot) = found else {
        return Ok(Frame::Integer(-1));
    };
    // The new element's index.
    let p = if after { pivot + 1 } else { pivot };
    let n = len(&m);
    if p <= n - p {
        // Shift [0, p) one to the left.
        if p as usize > MAX_REWRITE {
            return Err(too_many_writes());
        }
        let mut pager = cx.elems_between(
            key,
            &m,
            TAG_LIST,
            &seq_sub(m.head),
            Some(&seq_sub(seq(&m, p))),
            false,
        );
        loop {
            let rows = pager.next_page(cx.tx, PAGE).await?;
            for (k, v) in rows {
                let s = crate::layout::read_be64(&k[Ctx::sub_offset(key)..]).unwrap_or(0);
                cx.put_elem(key, &m, TAG_LIST, &seq_sub(s.wrapping_sub(1)), v)?;
            }
            if pager.is_done() {
                break;
            }
        }
        m.head = m.head.wrapping_sub(1);
        cx.put_elem(key, &m, TAG_LIST, &seq_sub(seq(&m, p)), argv[4].to_vec())?;
    } else {
        // Shift [p, n) one to the right.
        if (n - p) as usize > MAX_REWRITE {
            return Err(too_many_writes());
        }
        let mut pager = cx.elems_between(
            key,
            &m,
            TAG_LIST,
            &seq_sub(seq(&m, p)),
            Some(&seq_sub(m.tail)),
            true,
        );
        loop {
            let rows = pager.next_page(cx.tx, PAGE).await?;
            for (k, v) in rows {
                let s = crate::layout::read_be64(&k[Ctx::sub_offset(key)..]).unwrap_or(0);
                cx.put_elem(key, &m, TAG_LIST, &seq_sub(s.wrapping_add(1)), v)?;
            }
            if pager.is_done() {
                break;
            }
        }
        cx.put_elem(key, &m, TAG_LIST, &seq_sub(seq(&m, p)), argv[4].to_vec())?;
        m.tail = m.tail.wrapping_add(1);
    }
    m.count += 1;
    cx.put_meta(key, &m)?;
    cx.notify(LIST, "linsert", key);
    Ok(Frame::Integer(len(&m)))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub async fn lpos(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if opt.eq_ignore_ascii_case(b"RANK") && more > 0 {
            j += 1;
            rank = parse_i64_strict(&argv[j]).ok_or(CmdError::NotInteger)?;
            if rank == i64::MIN {
                return Err(ExecError::err(format!(
                    "value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                )));
            }
            if rank == 0 {
                return Err(ExecError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
            j += 1;
            count = parse_i64_strict(&argv[j]).ok_or(CmdError::NotInteger)?;
            if count < 0 {
                return Err(ExecError::err("COUNT can't be negative"));
            }
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") && more > 0 {
            j += 1;
            maxlen = parse_i64_strict(&argv[j]).ok_or(CmdError::NotInteger)?;
            if maxlen < 0 {
                return Err(ExecError::err("MAXLEN can't be negative"));
            }
        } else {
            return Err(ExecError::syntax());
        }
        j += 1;
    }
    let key = &argv[1];
    let array = count != -1;
    let Some(m) = cx.typed(key, KeyType::List).await? else {
        return Ok(if array {
            Frame::Array(Vec::new())
        } else {
            Frame::Null
        });
    };
    let reverse = rank < 0;
    let rank = rank.unsigned_abs();
    let llen = len(&m);
    let mut pager = cx.elems(key, &m, TAG_LIST, reverse);
    let (mut index, mut matches) = (0i64, 0u64);
    let mut out = Vec::new();
    let mut single = None;
    'walk: loop {
        for (_, v) in pager.next_page(cx.tx, PAGE).await? {
            if maxlen != 0 && index >= maxlen {
                break 'walk;
            }
            if v == argv[2].as_ref() {
                matches += 1;
                let at = if reverse { llen - index - 1 } else { index };
                if matches >= rank {
                    if array {
                        cx.charge(8)?;
                        out.push(Frame::Integer(at));
                        if count != 0 && matches - rank + 1 >= count as u64 {
                            break 'walk;
                        }
                    } else {
                        single = Some(at);
                        break 'walk;
                    }
                }
            }
            index += 1;
        }
        if pager.is_done() {
            break;
        }
    }
    Ok(if array {
        Frame::Array(out)
    } else {
        single.map(Frame::Integer).unwrap_or(Frame::Null)
    })
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, and RPOPLPUSH.
pub async fn lmove(cx: &mut Ctx<'_>, src: &Bytes, dst: &Bytes, from: End, to: End) -> CmdResult {
    let Some(mut sm) = cx.typed(src, KeyType::List).await? else {
        return Ok(Frame::Null);
    };
    if src == dst {
        let vals = pop_n(cx, src, &mut sm, from, 1).await?;
        let Some(v) = vals.into_iter().next() else {
            return Ok(Frame::Null);
        };
        push(cx, src, &mut sm, to, &[Bytes::from(v.clone())])?;
        cx.put_meta(src, &sm)?;
        cx.notify(LIST, push_event(to), src);
        cx.notify(LIST, pop_event(from), src);
        return Ok(bulk(v));
    }
    let mut dm = cx.typed_or_new(dst, KeyType::List).await?;
    let vals = pop_n(cx, src, &mut sm, from, 1).await?;
    let Some(v) = vals.into_iter().next() else {
        return Ok(Frame::Null);
    };
    cx.save_collection(src, &sm).await?;
    push(cx, dst, &mut dm, to, &[Bytes::from(v.clone())])?;
    cx.put_meta(dst, &dm)?;
    // Redis's order: the push, then the pop (and the source's deletion).
    cx.notify(LIST, push_event(to), dst);
    cx.notify_collection(LIST, pop_event(from), src, &sm);
    Ok(bulk(v))
}

/// The keyspace event of a push at `end`.
fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// The keyspace event of a pop at `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// LMOVE argument parsing.
pub async fn lmove_cmd(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let from = parse_end(&argv[3])?;
    let to = parse_end(&argv[4])?;
    lmove(cx, &argv[1], &argv[2], from, to).await
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub async fn lmpop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Redis answers the same text for a non-integer and for < 1.
    let numkeys = parse_i64_strict(&argv[1]).unwrap_or(0);
    if numkeys < 1 {
        return Err(ExecError::err("numkeys should be greater than 0"));
    }
    let where_idx = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|w| *w < argv.len())
        .ok_or_else(ExecError::syntax)?;
    let end = parse_end(&argv[where_idx])?;
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
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    for key in &argv[2..where_idx] {
        let Some(mut m) = cx.typed(key, KeyType::List).await? else {
            continue;
        };
        let vals = pop_n(cx, key, &mut m, end, count).await?;
        cx.save_collection(key, &m).await?;
        cx.notify_collection(LIST, pop_event(end), key, &m);
        return Ok(Frame::Array(vec![
            Frame::Bulk(key.clone()),
            Frame::Array(vals.into_iter().map(bulk).collect()),
        ]));
    }
    Ok(Frame::NullArray)
}
