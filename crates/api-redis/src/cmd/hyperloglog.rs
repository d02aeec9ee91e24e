//! HyperLogLog commands: PFADD PFCOUNT PFMERGE. The value is a plain
//! string in Redis's exact HLL encoding (see `hll.rs`), so GET/SET/DUMP of
//! an HLL key behave as in Redis and the bytes are interchangeable.

use bytes::Bytes;

use crate::db::{CmdResult, Ctx, ExecError};
use crate::frame::Frame;
use crate::hll;
use crate::layout::{KeyType, Meta};
use crate::notify::STRING;

use super::strings::store_raw_string;

/// PFADD key [element ...]
pub async fn pfadd(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let sparse_max = cx.shared.hll_sparse_max_bytes();
    match cx.typed(key, KeyType::String).await? {
        None => {
            cx.check_key(key)?;
            let v = hll::pfadd_new(&argv[2..], sparse_max);
            store_raw_string(cx, key, None, v, 0).await?;
            cx.notify(STRING, "pfadd", key);
            Ok(Frame::Integer(1))
        }
        Some(m) => {
            let mut v = m.value.clone();
            let changed = hll::pfadd(&mut v, &argv[2..], sparse_max)?;
            if changed {
                cx.put_meta(key, &Meta::raw_string(v, m.expire_at))?;
                cx.notify(STRING, "pfadd", key);
            }
            Ok(Frame::Integer(i64::from(changed)))
        }
    }
}

/// PFCOUNT key [key ...]
pub async fn pfcount(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() == 2 {
        let key = &argv[1];
        let Some(m) = cx.typed(key, KeyType::String).await? else {
            return Ok(Frame::Integer(0));
        };
        let mut v = m.value.clone();
        let (card, changed) = hll::pfcount_cached(&mut v)?;
        if changed {
            // Redis writes the refreshed cardinality cache back, so the
            // stored bytes stay identical to Redis's.
            cx.put_meta(key, &Meta::raw_string(v, m.expire_at))?;
        }
        return Ok(Frame::Integer(i64::try_from(card).unwrap_or(i64::MAX)));
    }
    let mut values = Vec::with_capacity(argv.len() - 1);
    for key in &argv[1..] {
        if let Some(m) = cx.typed(key, KeyType::String).await? {
            values.push(m.value);
        }
    }
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let card = hll::pfcount(&refs)?;
    Ok(Frame::Integer(i64::try_from(card).unwrap_or(i64::MAX)))
}

/// PFMERGE destkey [sourcekey ...]
pub async fn pfmerge(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let dst = &argv[1];
    cx.check_key(dst)?;
    let dm = cx.typed(dst, KeyType::String).await?;
    let mut sources = Vec::with_capacity(argv.len() - 2);
    for key in &argv[2..] {
        if let Some(m) = cx.typed(key, KeyType::String).await? {
            sources.push(m.value);
        }
    }
    let refs: Vec<&[u8]> = sources.iter().map(Vec::as_slice).collect();
    let merged = hll::pfmerge(
        dm.as_ref().map(|m| m.value.as_slice()),
        &refs,
        cx.shared.hll_sparse_max_bytes(),
    )
    .map_err(ExecError::from)?;
    let expire = dm.as_ref().map(|m| m.expire_at).unwrap_or(0);
    store_raw_string(cx, dst, dm.as_ref(), merged, expire).await?;
    cx.notify(STRING, "pfadd", dst);
    Ok(Frame::ok())
}

/// PFSELFTEST
pub fn pfselftest() -> CmdResult {
    crate::hll::self_test().map_err(ExecError::coded)?;
    Ok(Frame::ok())
}

/// PFDEBUG GETREG|ENCODING|TODENSE key
pub async fn pfdebug(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    if !matches!(sub.as_slice(), b"getreg" | b"encoding" | b"todense") {
        return Err(ExecError::err(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(&argv[1])
        )));
    }
    let key = &argv[2];
    let Some(m) = cx.typed(key, KeyType::String).await? else {
        return Err(ExecError::err("The specified key does not exist"));
    };
    let mut v = m.value.clone();
    hll::validate(&v)?;
    match sub.as_slice() {
        b"encoding" => Ok(Frame::simple(if hll::is_dense(&v) {
            "dense"
        } else {
            "sparse"
        })),
        b"todense" => {
            let converted = hll::to_dense(&mut v)?;
            if converted {
                cx.put_meta(key, &Meta::raw_string(v, m.expire_at))?;
            }
            Ok(Frame::Integer(i64::from(converted)))
        }
        _ => {
            // GETREG converts to dense first, as Redis does.
            let regs = hll::registers(&v)?;
            if hll::to_dense(&mut v)? {
                cx.put_meta(key, &Meta::raw_string(v, m.expire_at))?;
            }
            Ok(Frame::Array(
                regs.iter().map(|&r| Frame::Integer(i64::from(r))).collect(),
            ))
        }
    }
}
