//! SORT / SORT_RO key [BY pattern] [LIMIT offset count]
//! [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination]
//!
//! Sorts the elements of a list, set or sorted set, numerically (each
//! element, or its BY lookup, parsed as a double) or byte-wise with
//! ALPHA. Patterns substitute the element for the first `*`; `key->field`
//! reads a hash field, `#` in GET is the element itself. A BY pattern
//! without `*` skips sorting. Equal numeric weights are ordered by the
//! elements' bytes so the result is deterministic, as in Redis. The
//! elements are loaded in memory, bounded by `MAX_LOADED`.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::db::{CmdResult, Ctx, ExecError, MAX_LOADED};
use crate::frame::Frame;
use crate::layout::{self, KeyType, TAG_SET, TAG_ZSCORE};
use crate::parse::{parse_i64_strict, CmdError};

use super::list::{load_list, store_list};

/// Parsed options.
struct SortOpts {
    by: Option<Bytes>,
    limit: Option<(i64, i64)>,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn parse(argv: &[Bytes], read_only: bool) -> Result<SortOpts, ExecError> {
    let mut o = SortOpts {
        by: None,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j].to_ascii_uppercase();
        match a.as_slice() {
            b"ASC" => o.desc = false,
            b"DESC" => o.desc = true,
            b"ALPHA" => o.alpha = true,
            b"LIMIT" if left >= 2 => {
                let off = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
                let cnt = parse_i64_strict(&argv[j + 2]).ok_or(CmdError::NotInteger)?;
                o.limit = Some((off, cnt));
                j += 2;
            }
            b"STORE" if left >= 1 && !read_only => {
                o.store = Some(argv[j + 1].clone());
                j += 1;
            }
            b"BY" if left >= 1 => {
                o.by = Some(argv[j + 1].clone());
                j += 1;
            }
            b"GET" if left >= 1 => {
                if o.gets.len() >= 1024 {
                    return Err(ExecError::err("too many GET patterns"));
                }
                o.gets.push(argv[j + 1].clone());
                j += 1;
            }
            _ => return Err(ExecError::syntax()),
        }
        j += 1;
    }
    Ok(o)
}

/// The value a pattern points at for `elem` (`None`: missing, wrong
/// type, or a pattern without `*`).
async fn lookup(
    cx: &mut Ctx<'_>,
    pattern: &[u8],
    elem: &[u8],
) -> Result<Option<Vec<u8>>, ExecError> {
    if pattern == b"#" {
        return Ok(Some(elem.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Ok(None);
    };
    // `->` after the `*` separates a hash field (unless it ends the
    // pattern).
    let arrow = pattern[star..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|p| p + star)
        .filter(|&p| p + 2 < pattern.len());
    let key_pat = match arrow {
        Some(p) => &pattern[..p],
        None => pattern,
    };
    let mut key = Vec::with_capacity(key_pat.len() + elem.len());
    key.extend_from_slice(&key_pat[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&key_pat[star + 1..]);
    if key.len() > layout::MAX_REDIS_KEY {
        return Ok(None);
    }
    let Some(m) = cx.meta(&key).await? else {
        return Ok(None);
    };
    match arrow {
        None if m.ty == KeyType::String => Ok(Some(m.value)),
        Some(p) if m.ty == KeyType::Hash => {
            let field = &pattern[p + 2..];
            if key.len() + field.len() + layout::ELEM_OVERHEAD
                > elastickv_types::limits::MAX_KEY_BYTES
            {
                return Ok(None);
            }
            let raw = cx.get_elem(&key, &m, layout::TAG_HASH, field).await?;
            Ok(raw.and_then(|r| {
                let (v, exp) = layout::dec_field(&r)?;
                (exp == 0 || exp > cx.now_ms).then(|| v.to_vec())
            }))
        }
        _ => Ok(None),
    }
}

fn parse_weight(v: &[u8]) -> Result<f64, ExecError> {
    let bad = || ExecError::err("One or more scores can't be converted into double");
    let x = crate::float::parse_double(v).ok_or_else(bad)?;
    if x.is_nan() {
        return Err(bad());
    }
    Ok(x)
}

/// SORT / SORT_RO.
pub async fn sort(cx: &mut Ctx<'_>, argv: &[Bytes], read_only: bool) -> CmdResult {
    let o = parse(argv, read_only)?;
    let key = &argv[1];
    let dont_sort = o.by.as_ref().is_some_and(|p| !p.contains(&b'*'));
    let meta = cx.meta(key).await?;
    let (mut elems, ty) = match &meta {
        None => (Vec::new(), None),
        Some(m) if m.count as usize > MAX_LOADED => return Err(crate::db::too_many()),
        Some(m) => match m.ty {
            KeyType::List => (load_list(cx, key, m).await?, Some(m.ty)),
            KeyType::Set => {
                let rows = cx.load_all(key, m, TAG_SET).await?;
                (rows.into_iter().map(|(k, _)| k).collect(), Some(m.ty))
            }
            KeyType::ZSet => {
                // Score order: (score, member) index.
                let rows = cx.load_all(key, m, TAG_ZSCORE).await?;
                (
                    rows.into_iter()
                        .map(|(k, _)| k.get(8..).unwrap_or_default().to_vec())
                        .collect(),
                    Some(m.ty),
                )
            }
            _ => return Err(ExecError::wrongtype()),
        },
    };
    // A set has no order of its own: without sorting, STORE would depend
    // on hash order in Redis; here it is byte order either way.
    let sort_anyway = dont_sort && ty == Some(KeyType::Set);
    if !dont_sort || sort_anyway {
        let mut keyed: Vec<(Vec<u8>, Option<Vec<u8>>, f64)> = Vec::with_capacity(elems.len());
        for e in elems {
            let by = match (&o.by, sort_anyway) {
                (Some(p), false) => lookup(cx, p, &e).await?,
                _ => None,
            };
            let weight = if o.alpha || sort_anyway {
                0.0
            } else {
                match (&o.by, &by) {
                    (Some(_), None) => 0.0,
                    (Some(_), Some(v)) => parse_weight(v)?,
                    (None, _) => parse_weight(&e)?,
                }
            };
            keyed.push((e, by, weight));
        }
        let alpha = o.alpha || sort_anyway;
        let by_pattern = o.by.is_some() && !sort_anyway;
        keyed.sort_by(|a, b| {
            let c = if !alpha {
                a.2.partial_cmp(&b.2)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by_pattern {
                // Missing lookups sort first.
                match (&a.1, &b.1) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.0.cmp(&b.0)
            };
            if o.desc {
                c.reverse()
            } else {
                c
            }
        });
        elems = keyed.into_iter().map(|(e, _, _)| e).collect();
    } else if o.desc && ty != Some(KeyType::Set) {
        // Redis walks lists/zsets backwards for DESC without sorting.
        elems.reverse();
    }
    // LIMIT: Redis clamps a negative offset to 0 and a negative count to
    // "everything".
    if let Some((off, cnt)) = o.limit {
        let len = elems.len() as i64;
        let start = off.clamp(0, len);
        let end = if cnt < 0 {
            len
        } else {
            start.saturating_add(cnt).min(len)
        };
        elems = elems[start as usize..end as usize].to_vec();
    }
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    if o.gets.is_empty() {
        out.extend(elems.into_iter().map(Some));
    } else {
        for e in &elems {
            for g in &o.gets {
                out.push(lookup(cx, g, e).await?);
            }
        }
    }
    for v in out.iter().flatten() {
        cx.charge(v.len())?;
    }
    if let Some(dst) = &o.store {
        let n = out.len();
        let values: Vec<Bytes> = out
            .into_iter()
            .map(|v| Bytes::from(v.unwrap_or_default()))
            .collect();
        let existed = n == 0 && cx.meta(dst).await?.is_some();
        store_list(cx, dst, &values).await?;
        if n > 0 {
            cx.notify(crate::notify::LIST, "sortstore", dst);
        } else if existed {
            cx.notify(crate::notify::GENERIC, "del", dst);
        }
        return Ok(Frame::Integer(n as i64));
    }
    Ok(Frame::Array(
        out.into_iter()
            .map(|v| match v {
                Some(v) => Frame::Bulk(Bytes::from(v)),
                None => Frame::Null,
            })
            .collect(),
    ))
}
