//! DUMP key / RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s]
//! [FREQ f]: values in Redis's own serialization ([`crate::rdb`]), so
//! payloads move between Elastickv and redis-server in both directions.
//! Collections are loaded in memory, bounded by `MAX_LOADED` (DUMP) and
//! `MAX_REWRITE` (RESTORE).

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::db::{too_many_writes, CmdResult, Ctx, ExecError, MAX_REWRITE};
use crate::frame::Frame;
use crate::layout::{self, KeyType, Meta, TAG_HASH, TAG_SET, TAG_ZMEMBER};
use crate::parse::{parse_i64_strict, CmdError};
use crate::rdb::{self, Value};

use super::list::{load_list, store_list};
use super::strings::{now_i64, store_string};
use super::zset::store_zset;

/// DUMP key
pub async fn dump(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(m) = cx.meta(key).await? else {
        return Ok(Frame::Null);
    };
    let value = match m.ty {
        KeyType::String => Value::String(m.value.clone()),
        KeyType::List => Value::List(load_list(cx, key, &m).await?),
        KeyType::Set => Value::Set(
            cx.load_all(key, &m, TAG_SET)
                .await?
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        ),
        KeyType::ZSet => {
            let mut items = Vec::new();
            for (member, enc) in cx.load_all(key, &m, TAG_ZMEMBER).await? {
                let score = layout::dec_score(&enc).ok_or_else(corrupt)?;
                items.push((member, score));
            }
            Value::ZSet(items)
        }
        KeyType::Hash => {
            let mut items = Vec::new();
            for (field, raw) in cx.load_all(key, &m, TAG_HASH).await? {
                let (v, exp) = layout::dec_field(&raw).ok_or_else(corrupt)?;
                // Per-field expiry has no place in the 7.0 format: live
                // fields are dumped, expired ones left out.
                if exp == 0 || exp > cx.now_ms {
                    items.push((field, v.to_vec()));
                }
            }
            Value::Hash(items)
        }
        KeyType::Stream => match super::stream::dump_value(cx, key).await? {
            Some(v) => Value::Stream(v),
            None => return Ok(Frame::Null),
        },
    };
    let payload = rdb::encode(&value);
    cx.charge(payload.len())?;
    Ok(Frame::Bulk(Bytes::from(payload)))
}

fn corrupt() -> ExecError {
    ExecError::Kv(elastickv_kv::KvError::Internal(
        "corrupt Redis element record".into(),
    ))
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]
pub async fn restore(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut replace = false;
    let mut absttl = false;
    let (mut idle, mut freq) = (false, false);
    let mut j = 4;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let a = argv[j].to_ascii_uppercase();
        match a.as_slice() {
            b"REPLACE" => replace = true,
            b"ABSTTL" => absttl = true,
            b"IDLETIME" if more > 0 && !freq => {
                let n = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
                if n < 0 {
                    return Err(ExecError::err("Invalid IDLETIME value, must be >= 0"));
                }
                idle = true;
                j += 1;
            }
            b"FREQ" if more > 0 && !idle => {
                let n = parse_i64_strict(&argv[j + 1]).ok_or(CmdError::NotInteger)?;
                if !(0..=255).contains(&n) {
                    return Err(ExecError::err(
                        "Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                freq = true;
                j += 1;
            }
            _ => return Err(ExecError::syntax()),
        }
        j += 1;
    }
    let ttl = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
    if ttl < 0 {
        return Err(ExecError::err("Invalid TTL value, must be >= 0"));
    }
    let old = cx.meta(key).await?;
    if old.is_some() && !replace {
        return Err(ExecError::coded("BUSYKEY Target key name already exists."));
    }
    let value = rdb::decode(&argv[3], cx.shared.max_value_bytes)
        .map_err(|e| ExecError::err(e.to_string()))?;
    let expire_at = match (ttl, absttl) {
        (0, _) => 0,
        (t, true) => t,
        (t, false) => now_i64(cx).saturating_add(t),
    };
    // An absolute time already past: the key is not created (any old one
    // is still removed, as Redis does with REPLACE).
    if expire_at != 0 && expire_at <= now_i64(cx) {
        if let Some(o) = cx.raw_meta(key).await? {
            cx.remove_key(key, &o).await?;
        }
        if old.is_some() {
            cx.notify(crate::notify::GENERIC, "del", key);
        }
        return Ok(Frame::ok());
    }
    cx.check_key(key)?;
    let expire_at = u64::try_from(expire_at).unwrap_or(0);
    match value {
        Value::String(s) => {
            let raw = cx.raw_meta(key).await?;
            store_string(cx, key, raw.as_ref(), s, expire_at).await?;
        }
        Value::List(items) => {
            let items: Vec<Bytes> = items.into_iter().map(Bytes::from).collect();
            store_list(cx, key, &items).await?;
            set_expiry(cx, key, expire_at).await?;
        }
        Value::Set(items) => {
            let members: BTreeSet<Vec<u8>> = items.into_iter().collect();
            super::set::store_set(cx, key, &members).await?;
            set_expiry(cx, key, expire_at).await?;
        }
        Value::ZSet(items) => {
            // Duplicate members: the last score wins, as when loading.
            let mut dedup = std::collections::BTreeMap::new();
            for (m, s) in items {
                cx.check_sub(key, &m)?;
                dedup.insert(m, s);
            }
            store_zset(cx, key, dedup.into_iter().collect()).await?;
            set_expiry(cx, key, expire_at).await?;
        }
        Value::Hash(items) => {
            if items.len() > MAX_REWRITE {
                return Err(too_many_writes());
            }
            if let Some(o) = cx.raw_meta(key).await? {
                cx.remove_key(key, &o).await?;
            }
            let mut m = Meta::collection(KeyType::Hash, cx.start_ts);
            let mut seen = BTreeSet::new();
            for (f, v) in items {
                cx.check_sub(key, &f)?;
                cx.check_value_len(v.len())?;
                if seen.insert(f.clone()) {
                    m.count += 1;
                }
                cx.put_elem(key, &m, TAG_HASH, &f, layout::enc_field(&v, 0))?;
            }
            if m.count > 0 {
                m.expire_at = expire_at;
                cx.put_meta(key, &m)?;
            }
        }
        Value::Stream(v) => super::stream::restore(cx, key, v, expire_at).await?,
    }
    cx.notify(crate::notify::GENERIC, "restore", key);
    Ok(Frame::ok())
}

/// Sets the expiry of the record just written at `key` (if any).
async fn set_expiry(cx: &mut Ctx<'_>, key: &[u8], expire_at: u64) -> Result<(), ExecError> {
    if expire_at == 0 {
        return Ok(());
    }
    if let Some(mut m) = cx.raw_meta(key).await? {
        m.expire_at = expire_at;
        cx.put_meta(key, &m)?;
    }
    Ok(())
}
