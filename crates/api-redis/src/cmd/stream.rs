//! Stream commands: XADD XLEN XRANGE XREVRANGE XREAD XTRIM XDEL XSETID,
//! consumer groups (XGROUP CREATE/SETID/DESTROY/CREATECONSUMER/DELCONSUMER,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM) and XINFO.
//!
//! Layout (see [`crate::layout`]): the metadata record's `count` is the
//! stream length and its tail is the stream [`Header`]; every entry is its
//! own element keyed by its id (`'x'` ++ be64 ms ++ be64 seq), so XADD
//! writes one entry plus the metadata, XRANGE/XREAD are bounded paged walks
//! and XDEL is O(ids). Each consumer group is one `'g'` record (named, with
//! a numeric group id `gid` that is never reused, so a destroyed group's
//! leftovers can never be mistaken for a new group's); its pending entries
//! (`'p'` gid ++ id -> owner, delivery time, delivery count), consumers
//! (`'c'` gid ++ name -> seen time, pending count) and each consumer's own
//! pending index (`'q'` gid ++ be32 len ++ name ++ id) are elements too, so
//! XACK and XCLAIM are O(ids) and XPENDING walks only the range asked for.
//!
//! Redis trims `~` (approximately) by whole radix-tree nodes; to give the
//! same answers each entry records the number of the "node" it was
//! appended to (a new node starts after `stream-node-max-entries` entries
//! or `stream-node-max-bytes` bytes), and approximate trimming removes
//! whole nodes only.
//!
//! Times (XADD `*` ids, delivery and idle times) come from the
//! transaction's timestamp (`Ctx::now_ms`), so every node agrees; `*` ids
//! stay monotonic after the stream's last id whatever the clock says.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::db::{Block, CmdResult, Ctx, ExecError, MAX_REWRITE, PAGE};
use crate::frame::{Frame, Protocol};
use crate::layout::{
    KeyType, Meta, TAG_STREAM_CONSUMER, TAG_STREAM_CPEL, TAG_STREAM_ENTRY, TAG_STREAM_GROUP,
    TAG_STREAM_PEL,
};
use crate::notify::STREAM;
use crate::parse::{parse_i64_strict, CmdError};
use crate::stream_id::{
    parse_id, parse_interval, parse_range, parse_read_id, parse_strict_id, parse_xadd_id,
    resolve_xadd_id, ReadId, StreamId, StreamIdError,
};

impl From<StreamIdError> for ExecError {
    fn from(e: StreamIdError) -> Self {
        ExecError::coded(e.to_string())
    }
}

/// Most fields (and values) one entry may hold.
const MAX_ENTRY_FIELDS: usize = 1 << 20;

/// "No valid entries-read counter" (Redis's `SCG_INVALID_ENTRIES_READ`).
const INVALID_READ: i64 = -1;

/// Stream header, stored after the collection fields of the metadata
/// record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Header {
    /// The last id ever generated (XADD) or set (XSETID).
    last_id: StreamId,
    /// The first live entry's id (0-0 when empty).
    first_id: StreamId,
    /// The greatest id XDEL removed.
    max_deleted: StreamId,
    /// Entries ever added.
    entries_added: u64,
    /// Next group id to hand out.
    next_gid: u64,
    /// Number of consumer groups.
    groups: u64,
    /// Node the last entry was appended to, entries and bytes in it.
    tail_node: u64,
    tail_entries: u64,
    tail_bytes: u64,
}

const HEADER_LEN: usize = 16 * 3 + 8 * 6;

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(&self.last_id.to_be_bytes());
        out.extend_from_slice(&self.first_id.to_be_bytes());
        out.extend_from_slice(&self.max_deleted.to_be_bytes());
        for v in [
            self.entries_added,
            self.next_gid,
            self.groups,
            self.tail_node,
            self.tail_entries,
            self.tail_bytes,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN {
            return None;
        }
        let u = |i: usize| crate::layout::read_be64(&b[48 + 8 * i..]);
        Some(Header {
            last_id: id_at(b)?,
            first_id: id_at(&b[16..])?,
            max_deleted: id_at(&b[32..])?,
            entries_added: u(0)?,
            next_gid: u(1)?,
            groups: u(2)?,
            tail_node: u(3)?,
            tail_entries: u(4)?,
            tail_bytes: u(5)?,
        })
    }
}

/// Reads a 16-byte id from the start of `b`.
fn id_at(b: &[u8]) -> Option<StreamId> {
    let s = b.get(..16)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Some(StreamId::from_be_bytes(a))
}

fn corrupt() -> ExecError {
    ExecError::Kv(elastickv_kv::KvError::Internal(
        "corrupt Redis stream record".into(),
    ))
}

/// A loaded stream: its metadata record and header.
struct Stream {
    m: Meta,
    h: Header,
}

impl Stream {
    fn len(&self) -> u64 {
        self.m.count
    }
}

async fn load(cx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Stream>, ExecError> {
    match cx.typed(key, KeyType::Stream).await? {
        None => Ok(None),
        Some(m) => {
            let h = Header::decode(&m.value).ok_or_else(corrupt)?;
            Ok(Some(Stream { m, h }))
        }
    }
}

fn new_stream(cx: &mut Ctx<'_>, key: &[u8]) -> Result<Stream, ExecError> {
    cx.check_key(key)?;
    Ok(Stream {
        m: Meta::collection(KeyType::Stream, cx.start_ts),
        h: Header::default(),
    })
}

/// Writes the metadata record (streams stay even when empty, as in Redis).
fn save(cx: &mut Ctx<'_>, key: &[u8], s: &mut Stream) -> Result<(), ExecError> {
    s.m.value = s.h.encode();
    cx.put_meta(key, &s.m)
}

// ---------------------------------------------------------------- entries

/// Entry value: be64 node ++ be32 n ++ n × (be32 len ++ bytes).
fn enc_entry(node: u64, fields: &[Bytes]) -> Vec<u8> {
    let size: usize = fields.iter().map(|f| f.len() + 4).sum();
    let mut out = Vec::with_capacity(12 + size);
    out.extend_from_slice(&node.to_be_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn entry_node(v: &[u8]) -> Option<u64> {
    crate::layout::read_be64(v)
}

/// The fields and values of an entry value, in order.
fn entry_fields(v: &[u8]) -> Option<Vec<&[u8]>> {
    let n = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    let mut at = 12;
    for _ in 0..n {
        let len = u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        out.push(v.get(at..at + len)?);
        at += len;
    }
    Some(out)
}

fn dec_fields(v: &[u8]) -> Option<Vec<Frame>> {
    Some(entry_fields(v)?.into_iter().map(Frame::bulk).collect())
}

fn id_frame(id: StreamId) -> Frame {
    Frame::bulk(id.to_string())
}

fn entry_frame(id: StreamId, v: &[u8]) -> Result<Frame, ExecError> {
    let fields = dec_fields(v).ok_or_else(corrupt)?;
    Ok(Frame::Array(vec![id_frame(id), Frame::Array(fields)]))
}

async fn get_entry(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    id: StreamId,
) -> Result<Option<Vec<u8>>, ExecError> {
    cx.get_elem(key, &s.m, TAG_STREAM_ENTRY, &id.to_be_bytes())
        .await
}

/// Entries with ids in `[start, end]`, at most `count`, ascending (or
/// descending with `rev`), as (id, raw value). Charges the reply budget.
async fn entries(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> Result<Vec<(StreamId, Vec<u8>)>, ExecError> {
    let mut out = Vec::new();
    if start > end || count == 0 || s.len() == 0 {
        return Ok(out);
    }
    let to = end.successor().map(|e| e.to_be_bytes());
    let mut pager = cx.elems_between(
        key,
        &s.m,
        TAG_STREAM_ENTRY,
        &start.to_be_bytes(),
        to.as_ref().map(|t| &t[..]),
        rev,
    );
    let off = Ctx::sub_offset(key);
    while out.len() < count && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (count - out.len()).min(PAGE))
            .await?;
        for (k, v) in rows {
            let id = id_at(&k[off..]).ok_or_else(corrupt)?;
            cx.charge(v.len() + 24)?;
            out.push((id, v));
        }
    }
    out.truncate(count);
    Ok(out)
}

fn entries_frame(rows: &[(StreamId, Vec<u8>)]) -> Result<Frame, ExecError> {
    let mut out = Vec::with_capacity(rows.len());
    for (id, v) in rows {
        out.push(entry_frame(*id, v)?);
    }
    Ok(Frame::Array(out))
}

/// The id of the first live entry at or after `from` (None: none left).
async fn first_from(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    from: StreamId,
) -> Result<Option<StreamId>, ExecError> {
    let mut pager = cx.elems_between(
        key,
        &s.m,
        TAG_STREAM_ENTRY,
        &from.to_be_bytes(),
        None,
        false,
    );
    let off = Ctx::sub_offset(key);
    loop {
        let rows = pager.next_page(cx.tx, 1).await?;
        if let Some((k, _)) = rows.first() {
            return Ok(Some(id_at(&k[off..]).ok_or_else(corrupt)?));
        }
        if pager.is_done() {
            return Ok(None);
        }
    }
}

/// The last live entry (id, raw value).
async fn last_entry(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
) -> Result<Option<(StreamId, Vec<u8>)>, ExecError> {
    let mut rows = entries(cx, key, s, StreamId::MIN, StreamId::MAX, 1, true).await?;
    Ok(rows.pop())
}

/// `stream-node-max-entries` / `stream-node-max-bytes` (0: unlimited).
fn node_limits(cx: &Ctx<'_>) -> (u64, u64) {
    let e = cx.shared.config_int("stream-node-max-entries", 100).max(0) as u64;
    let b = cx.shared.config_int("stream-node-max-bytes", 4096).max(0) as u64;
    (e, b)
}

/// Appends an entry with `id` (already validated as above the last id).
fn append(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &mut Stream,
    id: StreamId,
    fields: &[Bytes],
) -> Result<(), ExecError> {
    let (max_entries, max_bytes) = node_limits(cx);
    let size: u64 = fields.iter().map(|f| f.len() as u64 + 2).sum();
    let full = (max_entries != 0 && s.h.tail_entries >= max_entries)
        || (max_bytes != 0 && s.h.tail_entries > 0 && s.h.tail_bytes + size >= max_bytes);
    if full {
        s.h.tail_node += 1;
        s.h.tail_entries = 0;
        s.h.tail_bytes = 0;
    }
    cx.put_elem(
        key,
        &s.m,
        TAG_STREAM_ENTRY,
        &id.to_be_bytes(),
        enc_entry(s.h.tail_node, fields),
    )?;
    s.h.tail_entries += 1;
    s.h.tail_bytes += size;
    if s.len() == 0 {
        s.h.first_id = id;
    }
    s.m.count += 1;
    s.h.last_id = id;
    s.h.entries_added += 1;
    Ok(())
}

// --------------------------------------------------------------- trimming

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Copy, Debug)]
struct Trim {
    strategy: Strategy,
    approx: bool,
    /// Most entries to delete (0: no limit).
    limit: u64,
}

/// Parsed XADD/XTRIM options.
struct AddTrimArgs {
    trim: Option<Trim>,
    nomkstream: bool,
    /// Index of XADD's id argument.
    id_at: usize,
}

/// Parses `[NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]]`
/// from `argv[2..]`; for XADD stops at the first other argument (the id).
fn parse_add_trim(cx: &Ctx<'_>, argv: &[Bytes], xadd: bool) -> Result<AddTrimArgs, ExecError> {
    let mut strategy: Option<Strategy> = None;
    let mut approx = false;
    let mut limit: Option<i64> = None;
    let mut nomkstream = false;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let a = &argv[i];
        if xadd && a.eq_ignore_ascii_case(b"NOMKSTREAM") {
            nomkstream = true;
            i += 1;
        } else if (a.eq_ignore_ascii_case(b"MAXLEN") || a.eq_ignore_ascii_case(b"MINID"))
            && more >= 1
        {
            let is_maxlen = a.eq_ignore_ascii_case(b"MAXLEN");
            if strategy.is_some() && matches!(strategy, Some(Strategy::MaxLen(_))) != is_maxlen {
                return Err(ExecError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let mut j = i + 1;
            let next = &argv[j];
            if more >= 2 && (next.as_ref() == b"~" || next.as_ref() == b"=") {
                approx = next.as_ref() == b"~";
                j += 1;
            }
            let thr = &argv[j];
            strategy = Some(if is_maxlen {
                let n = parse_i64_strict(thr).ok_or(CmdError::NotInteger)?;
                if n < 0 {
                    return Err(ExecError::err("The MAXLEN argument must be >= 0."));
                }
                Strategy::MaxLen(n as u64)
            } else {
                Strategy::MinId(parse_strict_id(thr, 0)?)
            });
            i = j + 1;
        } else if a.eq_ignore_ascii_case(b"LIMIT") && more >= 1 {
            let n = parse_i64_strict(&argv[i + 1]).ok_or(CmdError::NotInteger)?;
            if n < 0 {
                return Err(ExecError::err("The LIMIT argument must be >= 0."));
            }
            limit = Some(n);
            i += 2;
        } else if xadd {
            break;
        } else {
            return Err(ExecError::syntax());
        }
    }
    if limit.is_some() && strategy.is_none() {
        return Err(ExecError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if limit.is_some() && !approx {
        return Err(ExecError::err(
            "syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    if !xadd && strategy.is_none() {
        return Err(ExecError::syntax());
    }
    let trim = strategy.map(|strategy| {
        let (max_entries, _) = node_limits(cx);
        let limit = match limit {
            Some(l) => l as u64,
            None if approx => {
                100u64.saturating_mul(if max_entries == 0 { 100 } else { max_entries })
            }
            None => 0,
        };
        Trim {
            strategy,
            approx,
            limit,
        }
    });
    Ok(AddTrimArgs {
        trim,
        nomkstream,
        id_at: i,
    })
}

/// Does `node`'s removal keep the stream within the trim condition?
fn may_remove(s: &Stream, t: &Trim, node_len: u64, node_last: StreamId, removed: u64) -> bool {
    let within_limit = t.limit == 0 || removed + node_len <= t.limit;
    within_limit
        && match t.strategy {
            Strategy::MaxLen(max) => s.len() - node_len >= max,
            Strategy::MinId(min) => node_last < min,
        }
}

/// Trims the stream; returns how many entries were deleted. Exact trims
/// delete at most [`MAX_REWRITE`] entries per call.
async fn trim(cx: &mut Ctx<'_>, key: &[u8], s: &mut Stream, t: &Trim) -> Result<u64, ExecError> {
    let needed = |s: &Stream, id: StreamId| match t.strategy {
        Strategy::MaxLen(max) => s.len() > max,
        Strategy::MinId(min) => id < min,
    };
    if s.len() == 0 {
        return Ok(0);
    }
    if let Strategy::MaxLen(max) = t.strategy {
        if s.len() <= max {
            return Ok(0);
        }
    }
    let cap = if t.limit == 0 {
        MAX_REWRITE as u64
    } else {
        t.limit.min(MAX_REWRITE as u64)
    };
    let t = Trim { limit: cap, ..*t };
    let off = Ctx::sub_offset(key);
    let mut pager = cx.elems(key, &s.m, TAG_STREAM_ENTRY, false);
    let mut removed = 0u64;
    // Approximate mode: the entries of the node being looked at.
    let mut node: Vec<StreamId> = Vec::new();
    let mut node_no = 0u64;
    let mut next_first: Option<StreamId> = None;
    'walk: loop {
        let rows = pager.next_page(cx.tx, PAGE).await?;
        let done = pager.is_done();
        for (k, v) in rows {
            let id = id_at(&k[off..]).ok_or_else(corrupt)?;
            if !t.approx {
                if !needed(s, id) || removed >= t.limit {
                    next_first = Some(id);
                    break 'walk;
                }
                cx.del_elem(key, &s.m, TAG_STREAM_ENTRY, &id.to_be_bytes());
                s.m.count -= 1;
                removed += 1;
                continue;
            }
            let n = entry_node(&v).ok_or_else(corrupt)?;
            if !node.is_empty() && n != node_no {
                let last = node[node.len() - 1];
                if !may_remove(s, &t, node.len() as u64, last, removed) {
                    next_first = Some(node[0]);
                    break 'walk;
                }
                let k = node.len() as u64;
                for id in node.drain(..) {
                    cx.del_elem(key, &s.m, TAG_STREAM_ENTRY, &id.to_be_bytes());
                }
                s.m.count -= k;
                removed += k;
            }
            node_no = n;
            node.push(id);
            if removed + node.len() as u64 > t.limit {
                // This node can no longer fit the limit: trimming stops
                // at its start (no need to read the rest of it).
                next_first = Some(node[0]);
                break 'walk;
            }
        }
        if done {
            break;
        }
    }
    if t.approx && !node.is_empty() && next_first.is_none() {
        let last = node[node.len() - 1];
        if may_remove(s, &t, node.len() as u64, last, removed) {
            let k = node.len() as u64;
            for id in node.drain(..) {
                cx.del_elem(key, &s.m, TAG_STREAM_ENTRY, &id.to_be_bytes());
            }
            s.m.count -= k;
            removed += k;
        } else {
            next_first = Some(node[0]);
        }
    }
    s.h.first_id = if s.len() == 0 {
        StreamId::MIN
    } else {
        next_first.unwrap_or(s.h.first_id)
    };
    Ok(removed)
}

// ----------------------------------------------------------------- groups

/// A consumer group record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    gid: u64,
    last_id: StreamId,
    entries_read: i64,
    pel: u64,
    consumers: u64,
    /// The greatest id ever added to this group's PEL: a newly delivered
    /// entry above it cannot be pending already, so XREADGROUP `>` skips
    /// the lookup.
    pel_hw: StreamId,
}

impl Group {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.gid.to_be_bytes());
        out.extend_from_slice(&self.last_id.to_be_bytes());
        out.extend_from_slice(&self.entries_read.to_be_bytes());
        out.extend_from_slice(&self.pel.to_be_bytes());
        out.extend_from_slice(&self.consumers.to_be_bytes());
        out.extend_from_slice(&self.pel_hw.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Group> {
        let u = |at: usize| crate::layout::read_be64(b.get(at..)?);
        Some(Group {
            gid: u(0)?,
            last_id: id_at(b.get(8..)?)?,
            entries_read: u(24)? as i64,
            pel: u(32)?,
            consumers: u(40)?,
            pel_hw: id_at(b.get(48..)?)?,
        })
    }
}

async fn get_group(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    name: &[u8],
) -> Result<Option<Group>, ExecError> {
    match cx.get_elem(key, &s.m, TAG_STREAM_GROUP, name).await? {
        None => Ok(None),
        Some(v) => Ok(Some(Group::decode(&v).ok_or_else(corrupt)?)),
    }
}

fn put_group(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    name: &[u8],
    g: &Group,
) -> Result<(), ExecError> {
    cx.put_elem(key, &s.m, TAG_STREAM_GROUP, name, g.encode())
}

/// A pending entry (NACK).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Nack {
    time: u64,
    count: u64,
    consumer: Vec<u8>,
}

impl Nack {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.consumer.len());
        out.extend_from_slice(&self.time.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.consumer);
        out
    }

    fn decode(b: &[u8]) -> Option<Nack> {
        Some(Nack {
            time: crate::layout::read_be64(b)?,
            count: crate::layout::read_be64(b.get(8..)?)?,
            consumer: b.get(16..)?.to_vec(),
        })
    }
}

fn pel_sub(gid: u64, id: StreamId) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&gid.to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn consumer_sub(gid: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&gid.to_be_bytes());
    k.extend_from_slice(name);
    k
}

fn cpel_prefix(gid: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(28 + name.len());
    k.extend_from_slice(&gid.to_be_bytes());
    k.extend_from_slice(&(name.len() as u32).to_be_bytes());
    k.extend_from_slice(name);
    k
}

fn cpel_sub(gid: u64, name: &[u8], id: StreamId) -> Vec<u8> {
    let mut k = cpel_prefix(gid, name);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

async fn get_nack(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    gid: u64,
    id: StreamId,
) -> Result<Option<Nack>, ExecError> {
    match cx
        .get_elem(key, &s.m, TAG_STREAM_PEL, &pel_sub(gid, id))
        .await?
    {
        None => Ok(None),
        Some(v) => Ok(Some(Nack::decode(&v).ok_or_else(corrupt)?)),
    }
}

/// A consumer record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Consumer {
    seen: u64,
    pel: u64,
}

impl Consumer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.seen.to_be_bytes());
        out.extend_from_slice(&self.pel.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Consumer> {
        Some(Consumer {
            seen: crate::layout::read_be64(b)?,
            pel: crate::layout::read_be64(b.get(8..)?)?,
        })
    }
}

/// Consumers touched by one command, written back once at the end.
struct Consumers {
    gid: u64,
    map: BTreeMap<Vec<u8>, (Consumer, bool)>,
}

impl Consumers {
    fn new(gid: u64) -> Consumers {
        Consumers {
            gid,
            map: BTreeMap::new(),
        }
    }

    /// The consumer `name` (None if it does not exist).
    async fn get(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &[u8],
        s: &Stream,
        name: &[u8],
    ) -> Result<Option<&mut Consumer>, ExecError> {
        if !self.map.contains_key(name) {
            let v = cx
                .get_elem(
                    key,
                    &s.m,
                    TAG_STREAM_CONSUMER,
                    &consumer_sub(self.gid, name),
                )
                .await?;
            match v {
                None => return Ok(None),
                Some(v) => {
                    let c = Consumer::decode(&v).ok_or_else(corrupt)?;
                    self.map.insert(name.to_vec(), (c, false));
                }
            }
        }
        Ok(self.map.get_mut(name).map(|(c, dirty)| {
            *dirty = true;
            c
        }))
    }

    /// The consumer `name`, created (seen now) if missing; the flag says
    /// whether it was created.
    async fn get_or_create(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &[u8],
        s: &Stream,
        g: &mut Group,
        name: &[u8],
    ) -> Result<(&mut Consumer, bool), ExecError> {
        cx.check_sub(key, &cpel_sub(self.gid, name, StreamId::MIN))?;
        let exists = self.get(cx, key, s, name).await?.is_some();
        if !exists {
            // XGROUP CREATECONSUMER, XREADGROUP, XCLAIM and XAUTOCLAIM
            // all announce a consumer they create.
            cx.notify(STREAM, "xgroup-createconsumer", key);
            g.consumers += 1;
            self.map.insert(
                name.to_vec(),
                (
                    Consumer {
                        seen: cx.now_ms,
                        pel: 0,
                    },
                    true,
                ),
            );
        }
        let (c, dirty) = self
            .map
            .get_mut(name)
            .ok_or_else(|| ExecError::err("consumer vanished"))?;
        *dirty = true;
        Ok((c, !exists))
    }

    fn flush(&self, cx: &mut Ctx<'_>, key: &[u8], s: &Stream) -> Result<(), ExecError> {
        for (name, (c, dirty)) in &self.map {
            if *dirty {
                cx.put_elem(
                    key,
                    &s.m,
                    TAG_STREAM_CONSUMER,
                    &consumer_sub(self.gid, name),
                    c.encode(),
                )?;
            }
        }
        Ok(())
    }
}

/// Removes pending entry `id` (owned per `nack`) from the group PEL and
/// its owner's index; the caller adjusts the counters.
fn drop_nack(cx: &mut Ctx<'_>, key: &[u8], s: &Stream, gid: u64, id: StreamId, nack: &Nack) {
    cx.del_elem(key, &s.m, TAG_STREAM_PEL, &pel_sub(gid, id));
    cx.del_elem(
        key,
        &s.m,
        TAG_STREAM_CPEL,
        &cpel_sub(gid, &nack.consumer, id),
    );
}

fn put_nack(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    gid: u64,
    id: StreamId,
    nack: &Nack,
) -> Result<(), ExecError> {
    cx.put_elem(key, &s.m, TAG_STREAM_PEL, &pel_sub(gid, id), nack.encode())?;
    cx.put_elem(
        key,
        &s.m,
        TAG_STREAM_CPEL,
        &cpel_sub(gid, &nack.consumer, id),
        Vec::new(),
    )
}

/// Gives pending entry `id` to `to` (removing it from its previous owner,
/// if any), with delivery time `time` and count `count`.
#[allow(clippy::too_many_arguments)]
async fn assign(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    g: &mut Group,
    cons: &mut Consumers,
    id: StreamId,
    old: Option<&Nack>,
    to: &[u8],
    time: u64,
    count: u64,
) -> Result<(), ExecError> {
    g.pel_hw = g.pel_hw.max(id);
    match old {
        Some(o) if o.consumer == to => {}
        Some(o) => {
            cx.del_elem(
                key,
                &s.m,
                TAG_STREAM_CPEL,
                &cpel_sub(g.gid, &o.consumer, id),
            );
            if let Some(c) = cons.get(cx, key, s, &o.consumer).await? {
                c.pel = c.pel.saturating_sub(1);
            }
            cons.get_or_create(cx, key, s, g, to).await?.0.pel += 1;
        }
        None => {
            g.pel += 1;
            cons.get_or_create(cx, key, s, g, to).await?.0.pel += 1;
        }
    }
    put_nack(
        cx,
        key,
        s,
        g.gid,
        id,
        &Nack {
            time,
            count,
            consumer: to.to_vec(),
        },
    )
}

/// `streamRangeHasTombstones(s, start, +)`.
fn has_tombstones_from(s: &Stream, start: StreamId) -> bool {
    if s.len() == 0 || s.h.max_deleted == StreamId::MIN {
        return false;
    }
    if s.h.first_id > s.h.max_deleted {
        return false;
    }
    start <= s.h.max_deleted
}

/// The number of entries added up to and including `id`, when it can be
/// known (`INVALID_READ` otherwise).
fn estimate_read(s: &Stream, id: StreamId) -> i64 {
    let added = s.h.entries_added as i64;
    if s.h.entries_added == 0 {
        return 0;
    }
    if s.len() == 0 && id <= s.h.last_id {
        return added;
    }
    if id == s.h.last_id {
        return added;
    }
    if id > s.h.last_id {
        return INVALID_READ;
    }
    if s.h.max_deleted == StreamId::MIN || s.h.max_deleted < s.h.first_id {
        if id < s.h.first_id {
            return added - s.len() as i64;
        }
        if id == s.h.first_id {
            return added - s.len() as i64 + 1;
        }
    }
    INVALID_READ
}

/// The group's lag (None: unknown).
fn lag(s: &Stream, g: &Group) -> Option<i64> {
    if s.h.entries_added == 0 {
        return Some(0);
    }
    let added = s.h.entries_added as i64;
    if g.entries_read != INVALID_READ && !has_tombstones_from(s, g.last_id) {
        return Some(added - g.entries_read);
    }
    let read = estimate_read(s, g.last_id);
    (read != INVALID_READ).then_some(added - read)
}

fn entries_read_frame(g: &Group) -> Frame {
    if g.entries_read == INVALID_READ {
        Frame::Null
    } else {
        Frame::Integer(g.entries_read)
    }
}

fn nogroup_xgroup(key: &[u8], group: &[u8]) -> ExecError {
    ExecError::coded(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

fn nogroup(key: &[u8], group: &[u8]) -> ExecError {
    ExecError::coded(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// The stream and group for XPENDING/XCLAIM/XAUTOCLAIM/XACK-like
/// commands, or NOGROUP.
async fn stream_and_group(
    cx: &mut Ctx<'_>,
    key: &[u8],
    group: &[u8],
) -> Result<(Stream, Group), ExecError> {
    let Some(s) = load(cx, key).await? else {
        return Err(nogroup(key, group));
    };
    let Some(g) = get_group(cx, key, &s, group).await? else {
        return Err(nogroup(key, group));
    };
    Ok((s, g))
}

fn parse_count_arg(arg: &[u8]) -> Result<i64, ExecError> {
    Ok(parse_i64_strict(arg).ok_or(CmdError::NotInteger)?)
}

// --------------------------------------------------------------- commands

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]]
/// *|id field value [field value ...]
pub async fn xadd(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let a = parse_add_trim(cx, argv, true)?;
    let fields = argv.get(a.id_at + 1..).unwrap_or(&[]);
    if a.id_at >= argv.len() || fields.is_empty() || fields.len() % 2 != 0 {
        return Err(CmdError::WrongArity("xadd".into()).into());
    }
    if fields.len() > MAX_ENTRY_FIELDS * 2 {
        return Err(ExecError::err("too many fields in one stream entry"));
    }
    let requested = parse_xadd_id(&argv[a.id_at])?;
    let mut s = match load(cx, key).await? {
        Some(s) => s,
        None if a.nomkstream => return Ok(Frame::Null),
        None => new_stream(cx, key)?,
    };
    let id = resolve_xadd_id(s.h.last_id, requested, cx.now_ms)?;
    append(cx, key, &mut s, id, fields)?;
    let trimmed = match &a.trim {
        Some(t) => trim(cx, key, &mut s, t).await?,
        None => 0,
    };
    save(cx, key, &mut s)?;
    cx.notify(STREAM, "xadd", key);
    if trimmed > 0 {
        cx.notify(STREAM, "xtrim", key);
    }
    Ok(id_frame(id))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub async fn xtrim(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let a = parse_add_trim(cx, argv, false)?;
    let Some(mut s) = load(cx, key).await? else {
        return Ok(Frame::Integer(0));
    };
    let Some(t) = a.trim else {
        return Err(ExecError::syntax());
    };
    let n = trim(cx, key, &mut s, &t).await?;
    if n > 0 {
        save(cx, key, &mut s)?;
        cx.notify(STREAM, "xtrim", key);
    }
    Ok(Frame::Integer(n as i64))
}

/// XLEN key
pub async fn xlen(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        load(cx, &argv[1]).await?.map_or(0, |s| s.len() as i64),
    ))
}

/// XRANGE key start end [COUNT n] / XREVRANGE key end start [COUNT n]
pub async fn xrange(cx: &mut Ctx<'_>, argv: &[Bytes], rev: bool) -> CmdResult {
    let key = &argv[1];
    let (lo, hi) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let (start, end) = parse_range(lo, hi)?;
    let mut count = usize::MAX;
    let mut j = 4;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"COUNT") && j + 1 < argv.len() {
            let n = parse_count_arg(&argv[j + 1])?;
            count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    let Some(s) = load(cx, key).await? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let rows = entries(cx, key, &s, start, end, count, rev).await?;
    entries_frame(&rows)
}

/// XDEL key id [id ...]
pub async fn xdel(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut ids = Vec::with_capacity(argv.len() - 2);
    for a in &argv[2..] {
        ids.push(parse_strict_id(a, 0)?);
    }
    let Some(mut s) = load(cx, key).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut n = 0;
    let mut first_gone = false;
    for id in ids {
        if get_entry(cx, key, &s, id).await?.is_some() {
            cx.del_elem(key, &s.m, TAG_STREAM_ENTRY, &id.to_be_bytes());
            s.m.count -= 1;
            n += 1;
            if id > s.h.max_deleted {
                s.h.max_deleted = id;
            }
            if id == s.h.first_id {
                first_gone = true;
            }
        }
    }
    if n > 0 {
        if s.len() == 0 {
            s.h.first_id = StreamId::MIN;
        } else if first_gone {
            let from = s.h.first_id;
            s.h.first_id = first_from(cx, key, &s, from)
                .await?
                .unwrap_or(StreamId::MIN);
        }
        save(cx, key, &mut s)?;
        cx.notify(STREAM, "xdel", key);
    }
    Ok(Frame::Integer(n))
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]
pub async fn xsetid(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let id = parse_strict_id(&argv[2], 0)?;
    let mut entries_added: Option<i64> = None;
    let mut max_deleted: Option<StreamId> = None;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if argv[j].eq_ignore_ascii_case(b"ENTRIESADDED") && more >= 1 {
            let n = parse_count_arg(&argv[j + 1])?;
            if n < 0 {
                return Err(ExecError::err("entries_added must be positive"));
            }
            entries_added = Some(n);
            j += 2;
        } else if argv[j].eq_ignore_ascii_case(b"MAXDELETEDID") && more >= 1 {
            let m = parse_strict_id(&argv[j + 1], 0)?;
            if id < m {
                return Err(ExecError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    let Some(mut s) = load(cx, key).await? else {
        return Err(ExecError::err("no such key"));
    };
    if let Some(n) = entries_added {
        if (n as u64) < s.len() {
            return Err(ExecError::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    if s.len() > 0 {
        if let Some((top, _)) = last_entry(cx, key, &s).await? {
            if id < top {
                return Err(ExecError::err(
                    "The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
        }
    }
    s.h.last_id = id;
    if let Some(n) = entries_added {
        s.h.entries_added = n as u64;
    }
    if let Some(m) = max_deleted {
        s.h.max_deleted = m;
    }
    save(cx, key, &mut s)?;
    cx.notify(STREAM, "xsetid", key);
    Ok(Frame::ok())
}

/// Parsed XREAD / XREADGROUP arguments.
struct ReadArgs {
    count: usize,
    block: Option<Option<std::time::Duration>>,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    streams_at: usize,
    n: usize,
}

fn parse_read(argv: &[Bytes], group_cmd: bool) -> Result<ReadArgs, ExecError> {
    let mut a = ReadArgs {
        count: 0,
        block: None,
        group: None,
        noack: false,
        streams_at: 0,
        n: 0,
    };
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i];
        if o.eq_ignore_ascii_case(b"BLOCK") && more >= 1 {
            let ms = parse_i64_strict(&argv[i + 1])
                .ok_or_else(|| ExecError::err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(ExecError::err("timeout is negative"));
            }
            a.block = Some(if ms == 0 {
                None
            } else {
                Some(std::time::Duration::from_millis(ms as u64))
            });
            i += 2;
        } else if o.eq_ignore_ascii_case(b"COUNT") && more >= 1 {
            let n = parse_count_arg(&argv[i + 1])?;
            a.count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            i += 2;
        } else if o.eq_ignore_ascii_case(b"STREAMS") && more >= 1 {
            a.streams_at = i + 1;
            let rest = argv.len() - a.streams_at;
            if rest % 2 != 0 {
                // Redis words it this way for XREADGROUP too.
                return Err(ExecError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            a.n = rest / 2;
            break;
        } else if o.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
            if !group_cmd {
                return Err(ExecError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            a.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 3;
        } else if o.eq_ignore_ascii_case(b"NOACK") && group_cmd {
            a.noack = true;
            i += 1;
        } else {
            return Err(ExecError::syntax());
        }
    }
    if a.streams_at == 0 {
        return Err(ExecError::syntax());
    }
    if group_cmd && a.group.is_none() {
        return Err(CmdError::WrongArity("xreadgroup".into()).into());
    }
    Ok(a)
}

/// The XREAD/XREADGROUP reply from (key, entries) pairs.
fn read_reply(proto: Protocol, items: Vec<(Bytes, Frame)>) -> Frame {
    if items.is_empty() {
        return Frame::NullArray;
    }
    if proto == Protocol::Resp3 {
        Frame::Map(
            items
                .into_iter()
                .map(|(k, v)| (Frame::Bulk(k), v))
                .collect(),
        )
    } else {
        Frame::Array(
            items
                .into_iter()
                .map(|(k, v)| Frame::Array(vec![Frame::Bulk(k), v]))
                .collect(),
        )
    }
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...]
pub async fn xread(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let a = parse_read(argv, false)?;
    let keys = &argv[a.streams_at..a.streams_at + a.n];
    let id_args = &argv[a.streams_at + a.n..];
    // A blocking read treats a key of another type as an empty stream:
    // a blocked XREAD is re-run whenever one of its keys changes, and
    // Redis keeps such a client waiting (not failing) when a key it
    // waits on becomes a list or a string. The first run is treated the
    // same way, because a retype racing with the call (another client's
    // SET landing just before it) must not fail the reader either; inside
    // MULTI that answers the timeout reply instead of WRONGTYPE.
    let lenient = a.block.is_some();
    let mut ids = Vec::with_capacity(a.n);
    for arg in id_args {
        ids.push(parse_read_id(arg, false)?);
    }
    let mut starts = Vec::with_capacity(a.n);
    let mut streams = Vec::with_capacity(a.n);
    let mut dollar = false;
    for (key, rid) in keys.iter().zip(ids) {
        let s = match load(cx, key).await {
            Err(ExecError::Reply(_)) if lenient => None,
            other => other?,
        };
        let after = match rid {
            ReadId::After(id) => id,
            _ => {
                dollar = true;
                s.as_ref().map_or(StreamId::MIN, |s| s.h.last_id)
            }
        };
        starts.push(after);
        streams.push(s);
    }
    let count = if a.count == 0 { usize::MAX } else { a.count };
    let mut items = Vec::new();
    for ((key, after), s) in keys.iter().zip(&starts).zip(streams) {
        let Some(s) = s else {
            continue;
        };
        let Some(from) = after.successor() else {
            continue;
        };
        if s.h.last_id < from {
            continue;
        }
        let rows = entries(cx, key, &s, from, StreamId::MAX, count, false).await?;
        if !rows.is_empty() {
            items.push((key.clone(), entries_frame(&rows)?));
        }
    }
    if items.is_empty() {
        if let Some(timeout) = a.block {
            if cx.may_block {
                let rerun = dollar.then(|| {
                    let mut v = argv.to_vec();
                    for (i, after) in starts.iter().enumerate() {
                        v[a.streams_at + a.n + i] = Bytes::from(after.to_string());
                    }
                    v
                });
                return Err(ExecError::Block(Box::new(Block {
                    keys: keys.to_vec(),
                    timeout,
                    timeout_reply: Frame::NullArray,
                    rerun,
                })));
            }
        }
    }
    Ok(read_reply(cx.proto, items))
}

/// New entries for a group: updates `g` and the PEL; returns entries.
#[allow(clippy::too_many_arguments)]
async fn deliver_new(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    g: &mut Group,
    cons: &mut Consumers,
    consumer: &[u8],
    count: usize,
    noack: bool,
) -> Result<Frame, ExecError> {
    let Some(from) = g.last_id.successor() else {
        return Ok(Frame::Array(Vec::new()));
    };
    let rows = entries(cx, key, s, from, StreamId::MAX, count, false).await?;
    for (id, _) in &rows {
        g.last_id = *id;
        if g.entries_read != INVALID_READ && !has_tombstones_from(s, *id) {
            g.entries_read += 1;
        } else if s.h.entries_added > 0 {
            g.entries_read = estimate_read(s, *id);
        }
        if !noack {
            let old = if *id <= g.pel_hw {
                get_nack(cx, key, s, g.gid, *id).await?
            } else {
                None
            };
            assign(
                cx,
                key,
                s,
                g,
                cons,
                *id,
                old.as_ref(),
                consumer,
                cx.now_ms,
                1,
            )
            .await?;
        }
    }
    entries_frame(&rows)
}

/// A consumer's pending entries after `after` (history read): bumps each
/// live entry's delivery count and time; deleted entries read as nil.
#[allow(clippy::too_many_arguments)]
async fn deliver_history(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    g: &Group,
    consumer: &[u8],
    after: StreamId,
    count: usize,
) -> Result<Frame, ExecError> {
    let mut out = Vec::new();
    let Some(from) = after.successor() else {
        return Ok(Frame::Array(out));
    };
    let prefix = cpel_prefix(g.gid, consumer);
    let mut start = prefix.clone();
    start.extend_from_slice(&from.to_be_bytes());
    let end = crate::layout::prefix_end(&prefix);
    let mut pager = cx.elems_between(key, &s.m, TAG_STREAM_CPEL, &start, end.as_deref(), false);
    let off = Ctx::sub_offset(key) + prefix.len();
    while out.len() < count && !pager.is_done() {
        let rows = pager
            .next_page(cx.tx, (count - out.len()).min(PAGE))
            .await?;
        for (k, _) in rows {
            if out.len() >= count {
                break;
            }
            let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
            match get_entry(cx, key, s, id).await? {
                Some(v) => {
                    if let Some(mut nack) = get_nack(cx, key, s, g.gid, id).await? {
                        nack.time = cx.now_ms;
                        nack.count += 1;
                        cx.put_elem(
                            key,
                            &s.m,
                            TAG_STREAM_PEL,
                            &pel_sub(g.gid, id),
                            nack.encode(),
                        )?;
                    }
                    cx.charge(v.len() + 24)?;
                    out.push(entry_frame(id, &v)?);
                }
                None => {
                    cx.charge(24)?;
                    out.push(Frame::Array(vec![id_frame(id), Frame::NullArray]));
                }
            }
        }
    }
    Ok(Frame::Array(out))
}

/// XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK]
/// STREAMS key [key ...] id [id ...]
pub async fn xreadgroup(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let a = parse_read(argv, true)?;
    let (group, consumer) = a.group.clone().ok_or_else(ExecError::syntax)?;
    let keys = &argv[a.streams_at..a.streams_at + a.n];
    let id_args = &argv[a.streams_at + a.n..];
    // Validate everything, and see whether anything can be served, before
    // writing anything (a blocked call must leave no writes behind).
    let mut plan = Vec::with_capacity(a.n);
    let mut servable = false;
    for (key, arg) in keys.iter().zip(id_args) {
        let s = match load(cx, key).await {
            // A blocked reader whose key became another type is told the
            // stream is gone.
            Err(ExecError::Reply(_)) if cx.rerun => None,
            other => other?,
        };
        let g = match &s {
            Some(s) => get_group(cx, key, s, &group).await?,
            None => None,
        };
        if cx.rerun && s.is_none() {
            return Err(ExecError::coded(
                "UNBLOCKED the stream key no longer exists",
            ));
        }
        if cx.rerun && g.is_none() {
            return Err(ExecError::coded(
                "NOGROUP the consumer group this client was blocked on no longer exists",
            ));
        }
        let (Some(s), Some(g)) = (s, g) else {
            return Err(ExecError::coded(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&group)
            )));
        };
        let rid = parse_read_id(arg, true)?;
        match rid {
            ReadId::NewForGroup => {
                if s.len() > 0 && s.h.last_id > g.last_id {
                    // Cheap check; entries may still all be deleted.
                    if let Some(from) = g.last_id.successor() {
                        if first_from(cx, key, &s, from).await?.is_some() {
                            servable = true;
                        }
                    }
                }
            }
            _ => servable = true,
        }
        plan.push((key.clone(), rid, Some((s, g))));
    }
    if !servable && cx.may_block {
        if let Some(timeout) = a.block {
            return Err(ExecError::Block(Box::new(Block {
                keys: keys.to_vec(),
                timeout,
                timeout_reply: Frame::NullArray,
                rerun: None,
            })));
        }
    }
    let count = if a.count == 0 { usize::MAX } else { a.count };
    let mut items = Vec::new();
    let mut served: Vec<Bytes> = Vec::new();
    for (key, rid, loaded) in plan {
        // What the validation pass read is still current, unless the same
        // key was served earlier in this call (then re-read our writes).
        let (s, mut g) = match loaded {
            Some(sg) if !served.contains(&key) => sg,
            _ => {
                let Some(s) = load(cx, &key).await? else {
                    continue;
                };
                let Some(g) = get_group(cx, &key, &s, &group).await? else {
                    continue;
                };
                (s, g)
            }
        };
        served.push(key.clone());
        let before = g.clone();
        let mut cons = Consumers::new(g.gid);
        let reply = match rid {
            ReadId::NewForGroup => {
                let f =
                    deliver_new(cx, &key, &s, &mut g, &mut cons, &consumer, count, a.noack).await?;
                // Like Redis, a `>` read that got nothing does not create
                // (or refresh) the consumer.
                if matches!(&f, Frame::Array(v) if !v.is_empty()) {
                    Some(f)
                } else {
                    None
                }
            }
            ReadId::After(after) => {
                Some(deliver_history(cx, &key, &s, &g, &consumer, after, count).await?)
            }
            ReadId::Last => None,
        };
        if reply.is_some() {
            cons.get_or_create(cx, &key, &s, &mut g, &consumer)
                .await?
                .0
                .seen = cx.now_ms;
        }
        cons.flush(cx, &key, &s)?;
        if g != before {
            put_group(cx, &key, &s, &group, &g)?;
        }
        if let Some(f) = reply {
            items.push((key, f));
        }
    }
    Ok(read_reply(cx.proto, items))
}

/// XACK key group id [id ...]
pub async fn xack(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[1], &argv[2]);
    let mut ids = Vec::with_capacity(argv.len() - 3);
    for a in &argv[3..] {
        ids.push(parse_strict_id(a, 0)?);
    }
    let Some(s) = load(cx, key).await? else {
        return Ok(Frame::Integer(0));
    };
    let Some(mut g) = get_group(cx, key, &s, group).await? else {
        return Ok(Frame::Integer(0));
    };
    let mut cons = Consumers::new(g.gid);
    let mut n = 0;
    for id in ids {
        if let Some(nack) = get_nack(cx, key, &s, g.gid, id).await? {
            drop_nack(cx, key, &s, g.gid, id, &nack);
            g.pel = g.pel.saturating_sub(1);
            if let Some(c) = cons.get(cx, key, &s, &nack.consumer).await? {
                c.pel = c.pel.saturating_sub(1);
            }
            n += 1;
        }
    }
    if n > 0 {
        cons.flush(cx, key, &s)?;
        put_group(cx, key, &s, group, &g)?;
    }
    Ok(Frame::Integer(n))
}

/// Parses XGROUP CREATE/SETID's id (`$` = the stream's last id).
/// CREATE takes a strict id, SETID also `-`/`+` (as Redis 7.0 does).
fn group_id_arg(arg: &[u8], s: &Stream, create: bool) -> Result<StreamId, ExecError> {
    if arg == b"$" {
        Ok(s.h.last_id)
    } else if create {
        Ok(parse_strict_id(arg, 0)?)
    } else {
        Ok(parse_id(arg, 0)?)
    }
}

/// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]
/// XGROUP SETID key group id|$ [ENTRIESREAD n]
pub async fn xgroup_create_setid(cx: &mut Ctx<'_>, argv: &[Bytes], create: bool) -> CmdResult {
    let (key, group, id_arg) = (&argv[2], &argv[3], &argv[4]);
    let mut mkstream = false;
    let mut entries_read = INVALID_READ;
    let mut j = 5;
    while j < argv.len() {
        if create && argv[j].eq_ignore_ascii_case(b"MKSTREAM") {
            mkstream = true;
            j += 1;
        } else if argv[j].eq_ignore_ascii_case(b"ENTRIESREAD") && j + 1 < argv.len() {
            let n = parse_count_arg(&argv[j + 1])?;
            if n < 0 && n != INVALID_READ {
                return Err(ExecError::err(
                    "value for ENTRIESREAD must be positive or -1",
                ));
            }
            entries_read = n;
            j += 2;
        } else {
            return Err(ExecError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
                String::from_utf8_lossy(&argv[1])
            )));
        }
    }
    if id_arg.as_ref() != b"$" {
        if create {
            parse_strict_id(id_arg, 0)?;
        } else {
            parse_id(id_arg, 0)?;
        }
    }
    let mut s = match load(cx, key).await? {
        Some(s) => s,
        // Written below together with the group.
        None if create && mkstream => new_stream(cx, key)?,
        None => return Err(ExecError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        )),
    };
    let id = group_id_arg(id_arg, &s, create)?;
    let existing = get_group(cx, key, &s, group).await?;
    if create {
        if existing.is_some() {
            return Err(ExecError::coded(
                "BUSYGROUP Consumer Group name already exists",
            ));
        }
        cx.check_sub(key, &cpel_sub(0, group, StreamId::MIN))?;
        let g = Group {
            gid: s.h.next_gid,
            last_id: id,
            entries_read,
            pel: 0,
            consumers: 0,
            pel_hw: StreamId::MIN,
        };
        s.h.next_gid += 1;
        s.h.groups += 1;
        put_group(cx, key, &s, group, &g)?;
        save(cx, key, &mut s)?;
    } else {
        let Some(mut g) = existing else {
            return Err(nogroup_xgroup(key, group));
        };
        g.last_id = id;
        g.entries_read = entries_read;
        put_group(cx, key, &s, group, &g)?;
    }
    cx.notify(
        STREAM,
        if create {
            "xgroup-create"
        } else {
            "xgroup-setid"
        },
        key,
    );
    Ok(Frame::ok())
}

/// Deletes every element with `tag` under `sub_prefix` (bounded by
/// [`MAX_REWRITE`]; anything beyond stays as unreachable garbage: group
/// ids are never reused).
async fn delete_range(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    tag: u8,
    sub_prefix: &[u8],
) -> Result<(), ExecError> {
    let end = crate::layout::prefix_end(sub_prefix);
    let mut pager = cx.elems_between(key, &s.m, tag, sub_prefix, end.as_deref(), false);
    let mut n = 0;
    while !pager.is_done() && n < MAX_REWRITE {
        for (k, _) in pager.next_page(cx.tx, PAGE).await? {
            cx.tx.delete(k);
            n += 1;
        }
    }
    Ok(())
}

/// XGROUP DESTROY key group
pub async fn xgroup_destroy(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[2], &argv[3]);
    let Some(mut s) = load(cx, key).await? else {
        return Err(ExecError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    };
    let Some(g) = get_group(cx, key, &s, group).await? else {
        return Ok(Frame::Integer(0));
    };
    let gp = g.gid.to_be_bytes();
    for tag in [TAG_STREAM_PEL, TAG_STREAM_CONSUMER, TAG_STREAM_CPEL] {
        delete_range(cx, key, &s, tag, &gp).await?;
    }
    cx.del_elem(key, &s.m, TAG_STREAM_GROUP, group);
    s.h.groups = s.h.groups.saturating_sub(1);
    save(cx, key, &mut s)?;
    cx.notify(STREAM, "xgroup-destroy", key);
    Ok(Frame::Integer(1))
}

/// XGROUP CREATECONSUMER key group consumer
pub async fn xgroup_createconsumer(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[2], &argv[3], &argv[4]);
    let (s, mut g) = xgroup_target(cx, key, group).await?;
    let mut cons = Consumers::new(g.gid);
    let created = cons.get_or_create(cx, key, &s, &mut g, consumer).await?.1;
    if created {
        cons.flush(cx, key, &s)?;
        put_group(cx, key, &s, group, &g)?;
    }
    Ok(Frame::Integer(i64::from(created)))
}

async fn xgroup_target(
    cx: &mut Ctx<'_>,
    key: &[u8],
    group: &[u8],
) -> Result<(Stream, Group), ExecError> {
    let Some(s) = load(cx, key).await? else {
        return Err(ExecError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    };
    let Some(g) = get_group(cx, key, &s, group).await? else {
        return Err(nogroup_xgroup(key, group));
    };
    Ok((s, g))
}

/// XGROUP DELCONSUMER key group consumer: the number of pending entries
/// the consumer had (they are dropped from the group's PEL).
pub async fn xgroup_delconsumer(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[2], &argv[3], &argv[4]);
    let (s, mut g) = xgroup_target(cx, key, group).await?;
    let mut cons = Consumers::new(g.gid);
    let Some(c) = cons.get(cx, key, &s, consumer).await? else {
        return Ok(Frame::Integer(0));
    };
    let pending = c.pel;
    if pending as usize > MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    let prefix = cpel_prefix(g.gid, consumer);
    let end = crate::layout::prefix_end(&prefix);
    let mut pager = cx.elems_between(key, &s.m, TAG_STREAM_CPEL, &prefix, end.as_deref(), false);
    let off = Ctx::sub_offset(key) + prefix.len();
    let mut dropped = 0;
    while !pager.is_done() {
        for (k, _) in pager.next_page(cx.tx, PAGE).await? {
            let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
            cx.tx.delete(k);
            cx.del_elem(key, &s.m, TAG_STREAM_PEL, &pel_sub(g.gid, id));
            dropped += 1;
        }
    }
    g.pel = g.pel.saturating_sub(dropped);
    g.consumers = g.consumers.saturating_sub(1);
    cx.del_elem(
        key,
        &s.m,
        TAG_STREAM_CONSUMER,
        &consumer_sub(g.gid, consumer),
    );
    put_group(cx, key, &s, group, &g)?;
    cx.notify(STREAM, "xgroup-delconsumer", key);
    Ok(Frame::Integer(pending as i64))
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub async fn xpending(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[1], &argv[2]);
    let mut min_idle: Option<u64> = None;
    let mut at = 3;
    let extended = argv.len() >= 6;
    if extended && argv[3].eq_ignore_ascii_case(b"IDLE") {
        let n = parse_count_arg(&argv[4])?;
        min_idle = Some(n.max(0) as u64);
        at = 5;
        if argv.len() < 8 || argv.len() > 9 {
            return Err(ExecError::syntax());
        }
    } else if argv.len() != 3 && argv.len() < 6 {
        return Err(ExecError::syntax());
    }
    let mut range = None;
    if extended {
        let (start, end) = parse_range(&argv[at], &argv[at + 1])?;
        let n = parse_count_arg(&argv[at + 2])?;
        let count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        range = Some((start, end, count, argv.get(at + 3).cloned()));
    }
    let (s, g) = stream_and_group(cx, key, group).await?;
    let Some((start, end, count, consumer)) = range else {
        return xpending_summary(cx, key, &s, &g).await;
    };
    let mut out = Vec::new();
    if count == 0 || start > end {
        return Ok(Frame::Array(out));
    }
    let to = end.successor();
    let (tag, prefix) = match &consumer {
        Some(c) => (TAG_STREAM_CPEL, cpel_prefix(g.gid, c)),
        None => (TAG_STREAM_PEL, g.gid.to_be_bytes().to_vec()),
    };
    let mut from = prefix.clone();
    from.extend_from_slice(&start.to_be_bytes());
    let until = match to {
        Some(t) => {
            let mut u = prefix.clone();
            u.extend_from_slice(&t.to_be_bytes());
            Some(u)
        }
        None => crate::layout::prefix_end(&prefix),
    };
    let mut pager = cx.elems_between(key, &s.m, tag, &from, until.as_deref(), false);
    let off = Ctx::sub_offset(key) + prefix.len();
    while out.len() < count && !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            if out.len() >= count {
                break;
            }
            let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
            let nack = if tag == TAG_STREAM_PEL {
                Nack::decode(&v).ok_or_else(corrupt)?
            } else {
                match get_nack(cx, key, &s, g.gid, id).await? {
                    Some(n) => n,
                    None => continue,
                }
            };
            let idle = cx.now_ms.saturating_sub(nack.time);
            if min_idle.is_some_and(|m| idle < m) {
                continue;
            }
            cx.charge(nack.consumer.len() + 48)?;
            out.push(Frame::Array(vec![
                id_frame(id),
                Frame::bulk(&nack.consumer),
                Frame::Integer(idle as i64),
                Frame::Integer(nack.count as i64),
            ]));
        }
    }
    Ok(Frame::Array(out))
}

async fn xpending_summary(cx: &mut Ctx<'_>, key: &[u8], s: &Stream, g: &Group) -> CmdResult {
    if g.pel == 0 {
        return Ok(Frame::Array(vec![
            Frame::Integer(0),
            Frame::Null,
            Frame::Null,
            Frame::NullArray,
        ]));
    }
    let prefix = g.gid.to_be_bytes();
    let off = Ctx::sub_offset(key) + 8;
    let mut ends = Vec::new();
    for rev in [false, true] {
        let mut pager = cx.elems_between(
            key,
            &s.m,
            TAG_STREAM_PEL,
            &prefix,
            crate::layout::prefix_end(&prefix).as_deref(),
            rev,
        );
        let rows = pager.next_page(cx.tx, 1).await?;
        let id = rows
            .first()
            .and_then(|(k, _)| id_at(k.get(off..)?))
            .ok_or_else(corrupt)?;
        ends.push(id_frame(id));
    }
    let mut per = Vec::new();
    let mut pager = cx.elems_between(
        key,
        &s.m,
        TAG_STREAM_CONSUMER,
        &prefix,
        crate::layout::prefix_end(&prefix).as_deref(),
        false,
    );
    while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let c = Consumer::decode(&v).ok_or_else(corrupt)?;
            if c.pel > 0 {
                let name = k.get(off..).unwrap_or(&[]);
                cx.charge(name.len() + 32)?;
                per.push(Frame::Array(vec![
                    Frame::bulk(name),
                    Frame::bulk(c.pel.to_string()),
                ]));
            }
        }
    }
    let max = ends.pop().unwrap_or(Frame::Null);
    let min = ends.pop().unwrap_or(Frame::Null);
    Ok(Frame::Array(vec![
        Frame::Integer(g.pel as i64),
        min,
        max,
        Frame::Array(per),
    ]))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms]
/// [TIME unix-ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
pub async fn xclaim(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    let min_idle = parse_i64_strict(&argv[4])
        .ok_or_else(|| ExecError::err("Invalid min-idle-time argument for XCLAIM"))?
        .max(0) as u64;
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_strict_id(&argv[j], 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = cx.now_ms as i64;
    let mut delivery: Option<i64> = None;
    let mut retry: Option<u64> = None;
    let (mut force, mut justid) = (false, false);
    let mut lastid: Option<StreamId> = None;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let o = &argv[j];
        if o.eq_ignore_ascii_case(b"FORCE") {
            force = true;
        } else if o.eq_ignore_ascii_case(b"JUSTID") {
            justid = true;
        } else if o.eq_ignore_ascii_case(b"IDLE") && more >= 1 {
            j += 1;
            let ms = parse_i64_strict(&argv[j])
                .ok_or_else(|| ExecError::err("Invalid IDLE option argument for XCLAIM"))?;
            delivery = Some(now.saturating_sub(ms));
        } else if o.eq_ignore_ascii_case(b"TIME") && more >= 1 {
            j += 1;
            delivery = Some(
                parse_i64_strict(&argv[j])
                    .ok_or_else(|| ExecError::err("Invalid TIME option argument for XCLAIM"))?,
            );
        } else if o.eq_ignore_ascii_case(b"RETRYCOUNT") && more >= 1 {
            j += 1;
            let n = parse_i64_strict(&argv[j])
                .ok_or_else(|| ExecError::err("Invalid RETRYCOUNT option argument for XCLAIM"))?;
            // A negative count means "not given" (Redis).
            retry = u64::try_from(n).ok();
        } else if o.eq_ignore_ascii_case(b"LASTID") && more >= 1 {
            j += 1;
            lastid = Some(parse_strict_id(&argv[j], 0)?);
        } else {
            return Err(ExecError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(o)
            )));
        }
        j += 1;
    }
    let time = match delivery {
        Some(t) if t >= 0 && t <= now => t as u64,
        _ => cx.now_ms,
    };
    let (s, mut g) = stream_and_group(cx, key, group).await?;
    let before = g.clone();
    if let Some(l) = lastid {
        if l > g.last_id {
            g.last_id = l;
        }
    }
    let mut cons = Consumers::new(g.gid);
    let mut out = Vec::new();
    let mut seen = false;
    for id in ids {
        let mut nack = get_nack(cx, key, &s, g.gid, id).await?;
        let entry = get_entry(cx, key, &s, id).await?;
        if nack.is_none() && force && entry.is_some() {
            // FORCE creates the pending entry (as if just delivered).
            nack = Some(Nack {
                time: cx.now_ms,
                count: 1,
                consumer: Vec::new(),
            });
        }
        let Some(n) = nack else { continue };
        let old = (!n.consumer.is_empty()).then_some(&n);
        let Some(v) = entry else {
            // The entry is gone: drop its pending record.
            if let Some(o) = old {
                drop_nack(cx, key, &s, g.gid, id, o);
                g.pel = g.pel.saturating_sub(1);
                if let Some(c) = cons.get(cx, key, &s, &o.consumer).await? {
                    c.pel = c.pel.saturating_sub(1);
                }
            }
            continue;
        };
        if old.is_some() && min_idle > 0 && cx.now_ms.saturating_sub(n.time) < min_idle {
            continue;
        }
        let count = match retry {
            Some(r) => r,
            None if justid => n.count,
            None => n.count + 1,
        };
        assign(
            cx, key, &s, &mut g, &mut cons, id, old, consumer, time, count,
        )
        .await?;
        seen = true;
        cx.charge(v.len() + 24)?;
        out.push(if justid {
            id_frame(id)
        } else {
            entry_frame(id, &v)?
        });
    }
    if seen {
        cons.get_or_create(cx, key, &s, &mut g, consumer)
            .await?
            .0
            .seen = cx.now_ms;
    }
    cons.flush(cx, key, &s)?;
    if g != before {
        put_group(cx, key, &s, group, &g)?;
    }
    Ok(Frame::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]
pub async fn xautoclaim(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    let min_idle = parse_i64_strict(&argv[4])
        .ok_or_else(|| ExecError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0) as u64;
    let (start, _) = parse_interval(&argv[5], 0)?;
    let mut count: u64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if argv[j].eq_ignore_ascii_case(b"JUSTID") {
            justid = true;
            j += 1;
        } else if argv[j].eq_ignore_ascii_case(b"COUNT") && more >= 1 {
            let n = parse_i64_strict(&argv[j + 1]).unwrap_or(0);
            if !(1..=i64::MAX / 10).contains(&n) {
                return Err(ExecError::err("COUNT must be > 0"));
            }
            count = n as u64;
            j += 2;
        } else {
            return Err(ExecError::syntax());
        }
    }
    let (s, mut g) = stream_and_group(cx, key, group).await?;
    let before = g.clone();
    let mut cons = Consumers::new(g.gid);
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let prefix = g.gid.to_be_bytes();
    let mut from = prefix.to_vec();
    from.extend_from_slice(&start.to_be_bytes());
    let end = crate::layout::prefix_end(&prefix);
    let mut pager = cx.elems_between(key, &s.m, TAG_STREAM_PEL, &from, end.as_deref(), false);
    let off = Ctx::sub_offset(key) + 8;
    let mut next = StreamId::MIN;
    let mut writes = 0usize;
    'walk: while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
            // Deleted entries count against COUNT like claimed ones.
            let done = (claimed.len() + deleted.len()) as u64;
            if attempts == 0 || done >= count || writes >= MAX_REWRITE {
                next = id;
                break 'walk;
            }
            attempts -= 1;
            let n = Nack::decode(&v).ok_or_else(corrupt)?;
            let Some(entry) = get_entry(cx, key, &s, id).await? else {
                drop_nack(cx, key, &s, g.gid, id, &n);
                g.pel = g.pel.saturating_sub(1);
                if let Some(c) = cons.get(cx, key, &s, &n.consumer).await? {
                    c.pel = c.pel.saturating_sub(1);
                }
                cx.charge(24)?;
                deleted.push(id_frame(id));
                writes += 1;
                continue;
            };
            if min_idle > 0 && cx.now_ms.saturating_sub(n.time) < min_idle {
                continue;
            }
            let c = if justid { n.count } else { n.count + 1 };
            assign(
                cx,
                key,
                &s,
                &mut g,
                &mut cons,
                id,
                Some(&n),
                consumer,
                cx.now_ms,
                c,
            )
            .await?;
            writes += 1;
            cx.charge(entry.len() + 24)?;
            claimed.push(if justid {
                id_frame(id)
            } else {
                entry_frame(id, &entry)?
            });
        }
    }
    if !claimed.is_empty() {
        cons.get_or_create(cx, key, &s, &mut g, consumer)
            .await?
            .0
            .seen = cx.now_ms;
    }
    cons.flush(cx, key, &s)?;
    if g != before {
        put_group(cx, key, &s, group, &g)?;
    }
    Ok(Frame::Array(vec![
        id_frame(next),
        Frame::Array(claimed),
        Frame::Array(deleted),
    ]))
}

fn field(name: &'static str, v: Frame) -> (Frame, Frame) {
    (Frame::bulk(name), v)
}

fn opt_entry(e: Option<(StreamId, Vec<u8>)>) -> Result<Frame, ExecError> {
    match e {
        Some((id, v)) => entry_frame(id, &v),
        None => Ok(Frame::Null),
    }
}

/// Rough radix-tree figures (Redis internals; reported for shape only).
fn radix_keys(s: &Stream) -> i64 {
    if s.len() == 0 {
        0
    } else {
        let first_node = 0u64;
        (s.h.tail_node.saturating_sub(first_node) + 1).min(s.len()) as i64
    }
}

/// XINFO STREAM key [FULL [COUNT n]]
pub async fn xinfo_stream(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let mut full = false;
    let mut count = 10usize;
    let mut j = 3;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"FULL") {
            full = true;
            j += 1;
        } else if full && argv[j].eq_ignore_ascii_case(b"COUNT") && j + 1 < argv.len() {
            let n = parse_count_arg(&argv[j + 1])?;
            count = if n <= 0 {
                usize::MAX
            } else {
                usize::try_from(n).unwrap_or(usize::MAX)
            };
            j += 2;
        } else {
            return Err(ExecError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
                String::from_utf8_lossy(&argv[1])
            )));
        }
    }
    let Some(s) = load(cx, key).await? else {
        return Err(ExecError::err("no such key"));
    };
    let rk = radix_keys(&s);
    let mut out = vec![
        field("length", Frame::Integer(s.len() as i64)),
        field("radix-tree-keys", Frame::Integer(rk)),
        field("radix-tree-nodes", Frame::Integer(rk + 1)),
        field("last-generated-id", id_frame(s.h.last_id)),
        field("max-deleted-entry-id", id_frame(s.h.max_deleted)),
        field("entries-added", Frame::Integer(s.h.entries_added as i64)),
        field("recorded-first-entry-id", id_frame(s.h.first_id)),
    ];
    if !full {
        out.push(field("groups", Frame::Integer(s.h.groups as i64)));
        let first = entries(cx, key, &s, StreamId::MIN, StreamId::MAX, 1, false)
            .await?
            .pop();
        out.push(field("first-entry", opt_entry(first)?));
        let last = last_entry(cx, key, &s).await?;
        out.push(field("last-entry", opt_entry(last)?));
        return Ok(Frame::Map(out));
    }
    let rows = entries(cx, key, &s, StreamId::MIN, StreamId::MAX, count, false).await?;
    out.push(field("entries", entries_frame(&rows)?));
    let mut groups = Vec::new();
    for (name, g) in all_groups(cx, key, &s).await? {
        let pel: Vec<Frame> = group_pel(cx, key, &s, g.gid, count)
            .await?
            .into_iter()
            .map(|(id, n)| {
                Frame::Array(vec![
                    id_frame(id),
                    Frame::bulk(&n.consumer),
                    Frame::Integer(n.time as i64),
                    Frame::Integer(n.count as i64),
                ])
            })
            .collect();
        let mut consumers = Vec::new();
        for (cname, c) in all_consumers(cx, key, &s, g.gid).await? {
            let mut cpel = Vec::new();
            let prefix = cpel_prefix(g.gid, &cname);
            let end = crate::layout::prefix_end(&prefix);
            let mut pager =
                cx.elems_between(key, &s.m, TAG_STREAM_CPEL, &prefix, end.as_deref(), false);
            let off = Ctx::sub_offset(key) + prefix.len();
            while cpel.len() < count && !pager.is_done() {
                for (k, _) in pager.next_page(cx.tx, PAGE.min(count - cpel.len())).await? {
                    let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
                    let Some(n) = get_nack(cx, key, &s, g.gid, id).await? else {
                        continue;
                    };
                    cx.charge(48)?;
                    cpel.push(Frame::Array(vec![
                        id_frame(id),
                        Frame::Integer(n.time as i64),
                        Frame::Integer(n.count as i64),
                    ]));
                }
            }
            consumers.push(Frame::Map(vec![
                field("name", Frame::bulk(&cname)),
                field("seen-time", Frame::Integer(c.seen as i64)),
                field("pel-count", Frame::Integer(c.pel as i64)),
                field("pending", Frame::Array(cpel)),
            ]));
        }
        groups.push(Frame::Map(vec![
            field("name", Frame::bulk(&name)),
            field("last-delivered-id", id_frame(g.last_id)),
            field("entries-read", entries_read_frame(&g)),
            field("lag", lag(&s, &g).map_or(Frame::Null, Frame::Integer)),
            field("pel-count", Frame::Integer(g.pel as i64)),
            field("pending", Frame::Array(pel)),
            field("consumers", Frame::Array(consumers)),
        ]));
    }
    out.push(field("groups", Frame::Array(groups)));
    Ok(Frame::Map(out))
}

/// Up to `limit` pending entries of group `gid`, in id order.
async fn group_pel(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    gid: u64,
    limit: usize,
) -> Result<Vec<(StreamId, Nack)>, ExecError> {
    let mut out = Vec::new();
    let prefix = gid.to_be_bytes();
    let end = crate::layout::prefix_end(&prefix);
    let mut pager = cx.elems_between(key, &s.m, TAG_STREAM_PEL, &prefix, end.as_deref(), false);
    let off = Ctx::sub_offset(key) + 8;
    while out.len() < limit && !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE.min(limit - out.len())).await? {
            let id = id_at(k.get(off..).unwrap_or(&[])).ok_or_else(corrupt)?;
            let n = Nack::decode(&v).ok_or_else(corrupt)?;
            cx.charge(n.consumer.len() + 48)?;
            out.push((id, n));
        }
    }
    Ok(out)
}

async fn all_groups(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
) -> Result<Vec<(Vec<u8>, Group)>, ExecError> {
    let mut out = Vec::new();
    let mut pager = cx.elems(key, &s.m, TAG_STREAM_GROUP, false);
    let off = Ctx::sub_offset(key);
    while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let g = Group::decode(&v).ok_or_else(corrupt)?;
            cx.charge(k.len() + 64)?;
            out.push((k[off..].to_vec(), g));
        }
    }
    Ok(out)
}

async fn all_consumers(
    cx: &mut Ctx<'_>,
    key: &[u8],
    s: &Stream,
    gid: u64,
) -> Result<Vec<(Vec<u8>, Consumer)>, ExecError> {
    let mut out = Vec::new();
    let prefix = gid.to_be_bytes();
    let end = crate::layout::prefix_end(&prefix);
    let mut pager = cx.elems_between(
        key,
        &s.m,
        TAG_STREAM_CONSUMER,
        &prefix,
        end.as_deref(),
        false,
    );
    let off = Ctx::sub_offset(key) + 8;
    while !pager.is_done() {
        for (k, v) in pager.next_page(cx.tx, PAGE).await? {
            let c = Consumer::decode(&v).ok_or_else(corrupt)?;
            cx.charge(k.len() + 48)?;
            out.push((k.get(off..).unwrap_or(&[]).to_vec(), c));
        }
    }
    Ok(out)
}

/// XINFO GROUPS key
pub async fn xinfo_groups(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let Some(s) = load(cx, key).await? else {
        return Err(ExecError::err("no such key"));
    };
    let mut out = Vec::new();
    for (name, g) in all_groups(cx, key, &s).await? {
        out.push(Frame::Map(vec![
            field("name", Frame::bulk(&name)),
            field("consumers", Frame::Integer(g.consumers as i64)),
            field("pending", Frame::Integer(g.pel as i64)),
            field("last-delivered-id", id_frame(g.last_id)),
            field("entries-read", entries_read_frame(&g)),
            field("lag", lag(&s, &g).map_or(Frame::Null, Frame::Integer)),
        ]));
    }
    Ok(Frame::Array(out))
}

/// XINFO CONSUMERS key group
pub async fn xinfo_consumers(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[2], &argv[3]);
    let Some(s) = load(cx, key).await? else {
        return Err(ExecError::err("no such key"));
    };
    let Some(g) = get_group(cx, key, &s, group).await? else {
        return Err(nogroup_xgroup(key, group));
    };
    let mut out = Vec::new();
    for (name, c) in all_consumers(cx, key, &s, g.gid).await? {
        out.push(Frame::Map(vec![
            field("name", Frame::bulk(&name)),
            field("pending", Frame::Integer(c.pel as i64)),
            field(
                "idle",
                Frame::Integer(cx.now_ms.saturating_sub(c.seen) as i64),
            ),
        ]));
    }
    Ok(Frame::Array(out))
}

// ---------------------------------------------------------------- RESTORE

/// Writes a stream read from a DUMP payload at `key` (any old value is
/// removed first). Payloads of Redis 5–6.2 carry no first id, deleted-id
/// mark, added count or groups' read counters: they are derived as Redis
/// derives them when it loads such a payload. A pending entry must belong
/// to exactly one consumer, a consumer's entries must be pending in its
/// group, and group and consumer names must be unique; anything else is
/// refused as bad data.
pub async fn restore(
    cx: &mut Ctx<'_>,
    key: &[u8],
    v: crate::rdb::StreamValue,
    expire_at: u64,
) -> Result<(), ExecError> {
    let bad = || ExecError::err("Bad data format");
    let writes = v.entries.len()
        + v.groups
            .iter()
            .map(|g| 1 + 2 * g.pending.len() + g.consumers.len())
            .sum::<usize>();
    if writes > MAX_REWRITE {
        return Err(crate::db::too_many_writes());
    }
    if let Some(old) = cx.raw_meta(key).await? {
        cx.remove_key(key, &old).await?;
    }
    let mut s = new_stream(cx, key)?;
    for (entry_id, pairs) in v.entries {
        let mut fields = Vec::with_capacity(pairs.len() * 2);
        for (f, val) in pairs {
            fields.push(Bytes::from(f));
            fields.push(Bytes::from(val));
        }
        cx.check_value_len(fields.iter().map(|f| f.len() + 2).sum())?;
        append(cx, key, &mut s, entry_id, &fields)?;
    }
    s.h.last_id = v.last_id;
    match v.counters {
        Some((first, max_deleted, added)) => {
            if s.len() > 0 && first != s.h.first_id {
                return Err(bad());
            }
            s.h.max_deleted = max_deleted;
            s.h.entries_added = added;
        }
        None => {
            s.h.max_deleted = StreamId::MIN;
            s.h.entries_added = s.len();
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for g in v.groups {
        if !names.insert(g.name.clone()) {
            return Err(bad());
        }
        cx.check_sub(key, &g.name)?;
        let last_id = g.last_id;
        let gid = s.h.next_gid;
        s.h.next_gid += 1;
        s.h.groups += 1;
        let mut pending: BTreeMap<StreamId, (u64, u64, Option<Vec<u8>>)> = BTreeMap::new();
        for (pid, time, count) in g.pending {
            if pending.insert(pid, (time, count, None)).is_some() {
                return Err(bad());
            }
        }
        let mut consumers = 0;
        let mut consumer_names = std::collections::BTreeSet::new();
        for c in g.consumers {
            if !consumer_names.insert(c.name.clone()) {
                return Err(bad());
            }
            cx.check_sub(key, &cpel_sub(gid, &c.name, StreamId::MIN))?;
            for pid in &c.pending {
                match pending.get_mut(pid) {
                    Some((_, _, owner @ None)) => *owner = Some(c.name.clone()),
                    _ => return Err(bad()),
                }
            }
            let record = Consumer {
                seen: c.seen_ms,
                pel: c.pending.len() as u64,
            };
            cx.put_elem(
                key,
                &s.m,
                TAG_STREAM_CONSUMER,
                &consumer_sub(gid, &c.name),
                record.encode(),
            )?;
            consumers += 1;
        }
        let mut pel_hw = StreamId::MIN;
        for (pid, (time, count, owner)) in &pending {
            let consumer = owner.clone().ok_or_else(bad)?;
            put_nack(
                cx,
                key,
                &s,
                gid,
                *pid,
                &Nack {
                    time: *time,
                    count: *count,
                    consumer,
                },
            )?;
            pel_hw = *pid;
        }
        let entries_read = match g.entries_read {
            Some(n) => n,
            None => estimate_read(&s, last_id),
        };
        let group = Group {
            gid,
            last_id,
            entries_read,
            pel: pending.len() as u64,
            consumers,
            pel_hw,
        };
        put_group(cx, key, &s, &g.name, &group)?;
    }
    s.m.expire_at = expire_at;
    save(cx, key, &mut s)
}

// ------------------------------------------------------------------- DUMP

/// The field/value pairs of an entry value.
fn entry_pairs(v: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let fields = entry_fields(v)?;
    Some(
        fields
            .chunks_exact(2)
            .map(|p| (p[0].to_vec(), p[1].to_vec()))
            .collect(),
    )
}

/// Everything a DUMP of the stream at `key` carries: entries, counters,
/// groups with their pending entries and consumers. The reply budget
/// (`Ctx::charge`) bounds what is loaded.
pub async fn dump_value(
    cx: &mut Ctx<'_>,
    key: &[u8],
) -> Result<Option<crate::rdb::StreamValue>, ExecError> {
    let Some(s) = load(cx, key).await? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(s.len().min(1 << 16) as usize);
    for (id, v) in entries(cx, key, &s, StreamId::MIN, StreamId::MAX, usize::MAX, false).await? {
        rows.push((id, entry_pairs(&v).ok_or_else(corrupt)?));
    }
    let mut groups = Vec::new();
    for (name, g) in all_groups(cx, key, &s).await? {
        let mut pending = Vec::new();
        let mut owners: BTreeMap<Vec<u8>, Vec<StreamId>> = BTreeMap::new();
        for (id, n) in group_pel(cx, key, &s, g.gid, usize::MAX).await? {
            pending.push((id, n.time, n.count));
            owners.entry(n.consumer).or_default().push(id);
        }
        let mut consumers = Vec::new();
        for (cname, c) in all_consumers(cx, key, &s, g.gid).await? {
            let pending = owners.remove(&cname).unwrap_or_default();
            consumers.push(crate::rdb::StreamConsumer {
                name: cname,
                seen_ms: c.seen,
                pending,
            });
        }
        if !owners.is_empty() {
            // A pending entry whose consumer record is missing.
            return Err(corrupt());
        }
        groups.push(crate::rdb::StreamGroup {
            name,
            last_id: g.last_id,
            entries_read: Some(g.entries_read),
            pending,
            consumers,
        });
    }
    Ok(Some(crate::rdb::StreamValue {
        entries: rows,
        last_id: s.h.last_id,
        counters: Some((s.h.first_id, s.h.max_deleted, s.h.entries_added)),
        groups,
    }))
}
