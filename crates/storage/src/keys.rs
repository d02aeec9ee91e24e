//! Byte layout of every key and value this crate stores in fjall.
//!
//! ```text
//! Partitions (fjall names; charset [A-Za-z0-9_.#$-]):
//!   elastickv_meta          engine metadata (one per node)
//!   g{group}_log            Raft log of a group (no generation: never replaced)
//!   g{group}_data_{gen}     MVCC versions of a group, generation {gen}
//!   g{group}_locks_{gen}    transaction locks of a group
//!   g{group}_meta_{gen}     state-machine metadata of a group
//!   ({group} and {gen} are decimal u64; a generation is never reused)
//!
//! MVCC data partition:
//!   key   = enc(user_key) ++ be64(!commit_ts)
//!   enc(k)= k with every 0x00 replaced by 0x00 0xFF, then the terminator 0x00 0x01
//!   value = tag ++ bytes      tag 0x01 = put (bytes = value), 0x02 = tombstone (no bytes)
//!   enc() is order-preserving and prefix-free, so the partition sorts by
//!   (user_key ascending, commit_ts descending): versions of one key are
//!   contiguous, newest first. The empty key encodes as 0x00 0x01.
//!
//! Locks and state-machine meta partitions:
//!   key   = 'k' (0x6B) ++ user_key     (fjall refuses empty keys)
//!   value = opaque bytes
//!
//! Raft log partition:
//!   entry = 'e' (0x65) ++ be64(index)  -> opaque entry bytes
//!   meta  = 'm' (0x6D) ++ name (UTF-8) -> opaque bytes (vote, committed, purged…)
//!
//! Engine meta partition:
//!   "next_gen"                  -> be64(next generation number to hand out)
//!   "gen/" ++ be64(group)       -> be64(current generation of the group)
//!
//! Limits: fjall keys are at most 65535 bytes, so a user key is storable
//! when its encoded form fits: len + count(0x00) + 10 <= 65535 for MVCC data,
//! len + 1 <= 65535 for locks and meta.
//! ```

use crate::{Result, StorageError};
use elastickv_types::Timestamp;

/// Largest key fjall accepts.
pub(crate) const MAX_ENGINE_KEY: usize = u16::MAX as usize;
/// Length of the commit-timestamp suffix of a data key.
pub(crate) const TS_LEN: usize = 8;
/// Value tag of a put version.
pub(crate) const TAG_PUT: u8 = 0x01;
/// Value tag of a tombstone version.
pub(crate) const TAG_TOMBSTONE: u8 = 0x02;
/// First byte of every key of the locks and meta partitions.
pub(crate) const AUX_PREFIX: u8 = b'k';
/// First byte of a Raft log entry key.
pub(crate) const LOG_ENTRY_PREFIX: u8 = b'e';
/// First byte of a Raft log metadata key.
pub(crate) const LOG_META_PREFIX: u8 = b'm';

const TERMINATOR: [u8; 2] = [0x00, 0x01];
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];

/// Length of `enc(key)`.
pub(crate) fn encoded_len(key: &[u8]) -> usize {
    key.len() + key.iter().filter(|b| **b == 0).count() + TERMINATOR.len()
}

/// Appends `enc(key)` to `buf`.
pub(crate) fn encode_user_key_into(buf: &mut Vec<u8>, key: &[u8]) {
    buf.reserve(key.len() + TERMINATOR.len() + TS_LEN);
    let mut rest = key;
    while let Some(pos) = rest.iter().position(|b| *b == 0) {
        buf.extend_from_slice(&rest[..pos]);
        buf.extend_from_slice(&ESCAPED_ZERO);
        rest = &rest[pos + 1..];
    }
    buf.extend_from_slice(rest);
    buf.extend_from_slice(&TERMINATOR);
}

/// `enc(key)` as a new vector.
pub(crate) fn encode_user_key(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_len(key));
    encode_user_key_into(&mut buf, key);
    buf
}

/// Appends the timestamp suffix of a data key.
pub(crate) fn push_ts(buf: &mut Vec<u8>, ts: Timestamp) {
    buf.extend_from_slice(&(!ts).to_be_bytes());
}

/// Appends the full data key `enc(key) ++ be64(!ts)` to `buf`.
pub(crate) fn encode_version_into(buf: &mut Vec<u8>, key: &[u8], ts: Timestamp) {
    encode_user_key_into(buf, key);
    push_ts(buf, ts);
}

/// The data key of `(key, ts)` as a new vector.
#[cfg(test)]
pub(crate) fn encode_version(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_len(key) + TS_LEN);
    encode_version_into(&mut buf, key, ts);
    buf
}

/// Splits a stored data key into `enc(user_key)` and the commit timestamp.
pub(crate) fn split_version_key(key: &[u8]) -> Result<(&[u8], Timestamp)> {
    if key.len() < TERMINATOR.len() + TS_LEN {
        return Err(corrupt_key("data key too short", key));
    }
    let (prefix, ts) = key.split_at(key.len() - TS_LEN);
    if !prefix.ends_with(&TERMINATOR) {
        return Err(corrupt_key("data key without terminator", key));
    }
    let mut raw = [0u8; TS_LEN];
    raw.copy_from_slice(ts);
    Ok((prefix, !u64::from_be_bytes(raw)))
}

/// Inverse of [`encode_user_key_into`]: `enc` must be exactly one encoded key.
pub(crate) fn decode_user_key(enc: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(enc.len().saturating_sub(TERMINATOR.len()));
    let mut rest = enc;
    loop {
        let Some(pos) = rest.iter().position(|b| *b == 0) else {
            return Err(corrupt_key("encoded key without terminator", enc));
        };
        out.extend_from_slice(&rest[..pos]);
        match rest.get(pos + 1) {
            Some(0xFF) => {
                out.push(0);
                rest = &rest[pos + 2..];
            }
            Some(0x01) if pos + 2 == rest.len() => return Ok(out),
            _ => return Err(corrupt_key("bad escape in encoded key", enc)),
        }
    }
}

/// Checks that `enc` is a well-formed encoded user key without allocating.
pub(crate) fn validate_encoded_user_key(enc: &[u8]) -> Result<()> {
    let mut rest = enc;
    loop {
        let Some(pos) = rest.iter().position(|b| *b == 0) else {
            return Err(corrupt_key("encoded key without terminator", enc));
        };
        match rest.get(pos + 1) {
            Some(0xFF) => rest = &rest[pos + 2..],
            Some(0x01) if pos + 2 == rest.len() => return Ok(()),
            _ => return Err(corrupt_key("bad escape in encoded key", enc)),
        }
    }
}

/// Decodes a stored data value: `Some(bytes)` for a put, `None` for a tombstone.
pub(crate) fn decode_value(value: &[u8]) -> Result<Option<&[u8]>> {
    match value.split_first() {
        Some((&TAG_PUT, rest)) => Ok(Some(rest)),
        Some((&TAG_TOMBSTONE, [])) => Ok(None),
        Some((tag, _)) => Err(StorageError::Corrupt(format!(
            "unknown value tag 0x{tag:02x} (value of {} bytes)",
            value.len()
        ))),
        None => Err(StorageError::Corrupt("empty stored value".into())),
    }
}

/// A stored put value: tag byte then the bytes, built in one allocation.
pub(crate) fn put_value(value: &[u8]) -> fjall::Slice {
    // `Slice::fused` is public (doc-hidden) in fjall 2.x / value-log 1.x; it
    // sizes the buffer once instead of collecting into a Vec and copying.
    fjall::Slice::fused(&[TAG_PUT], value)
}

/// A stored tombstone value.
pub(crate) fn tombstone_value() -> fjall::Slice {
    fjall::Slice::from(&[TAG_TOMBSTONE][..])
}

/// Appends `AUX_PREFIX ++ key` to `buf`.
pub(crate) fn aux_key_into(buf: &mut Vec<u8>, key: &[u8]) {
    buf.reserve(key.len() + 1);
    buf.push(AUX_PREFIX);
    buf.extend_from_slice(key);
}

/// `AUX_PREFIX ++ key` as a new vector.
pub(crate) fn aux_key(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(key.len() + 1);
    aux_key_into(&mut buf, key);
    buf
}

/// The user key of a stored lock/meta key.
pub(crate) fn strip_aux(key: &[u8]) -> Result<&[u8]> {
    match key.split_first() {
        Some((&AUX_PREFIX, rest)) => Ok(rest),
        _ => Err(corrupt_key("lock/meta key without prefix", key)),
    }
}

/// Key of Raft log entry `index`.
pub(crate) fn log_entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LOG_ENTRY_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Index of a stored Raft log entry key.
pub(crate) fn parse_log_entry_key(key: &[u8]) -> Result<u64> {
    match key.split_first() {
        Some((&LOG_ENTRY_PREFIX, rest)) if rest.len() == 8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(rest);
            Ok(u64::from_be_bytes(raw))
        }
        _ => Err(corrupt_key("bad Raft log entry key", key)),
    }
}

/// Key of Raft log metadata value `name`.
pub(crate) fn log_meta_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(LOG_META_PREFIX);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Error for a key that does not fit fjall's key size limit.
pub(crate) fn key_too_large(what: &str, user_len: usize, stored_len: usize) -> StorageError {
    StorageError::Engine(format!(
        "{what} of {user_len} bytes is too large: its stored form takes {stored_len} bytes, \
         the engine limit is {MAX_ENGINE_KEY}"
    ))
}

fn corrupt_key(what: &str, key: &[u8]) -> StorageError {
    let shown = &key[..key.len().min(32)];
    StorageError::Corrupt(format!(
        "{what}: {} bytes, starting {shown:02x?}",
        key.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_special_bytes_round_trip() {
        for key in [
            &b""[..],
            b"\x00",
            b"\x00\x00",
            b"\xFF",
            b"\x00\xFF",
            b"a\x00b",
            b"\x01",
            b"\xFF\x00catalog/",
        ] {
            let enc = encode_user_key(key);
            assert_eq!(enc.len(), encoded_len(key));
            assert_eq!(decode_user_key(&enc).unwrap(), key);
            validate_encoded_user_key(&enc).unwrap();
            let v = encode_version(key, 42);
            let (p, ts) = split_version_key(&v).unwrap();
            assert_eq!(p, &enc[..]);
            assert_eq!(ts, 42);
        }
        assert_eq!(encode_user_key(b""), vec![0, 1]);
        assert_eq!(encode_user_key(b"a\x00"), vec![b'a', 0, 0xFF, 0, 1]);
    }

    #[test]
    fn malformed_keys_are_corrupt() {
        for bad in [
            &b""[..],
            b"a",
            b"a\x00",
            b"a\x00\x02",
            b"\x00\x01x",
            b"\x00\xFF",
            b"a\x00\x01b\x00\x01",
            b"a\x00\x00\x01",
        ] {
            assert!(decode_user_key(bad).is_err(), "{bad:?}");
            assert!(validate_encoded_user_key(bad).is_err(), "{bad:?}");
        }
        assert!(split_version_key(b"short").is_err());
        assert!(split_version_key(b"abcdefghij").is_err());
    }

    #[test]
    fn values() {
        assert_eq!(decode_value(&put_value(b"xy")).unwrap(), Some(&b"xy"[..]));
        assert_eq!(decode_value(&put_value(b"")).unwrap(), Some(&b""[..]));
        assert_eq!(decode_value(&tombstone_value()).unwrap(), None);
        assert!(decode_value(b"").is_err());
        assert!(decode_value(b"\x09").is_err());
        assert!(decode_value(b"\x02x").is_err());
    }

    #[test]
    fn log_keys() {
        assert_eq!(parse_log_entry_key(&log_entry_key(7)).unwrap(), 7);
        assert!(log_entry_key(1) < log_entry_key(256));
        assert!(parse_log_entry_key(b"m1234567").is_err());
        assert!(log_entry_key(u64::MAX).as_slice() < log_meta_key("").as_slice());
    }

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()],
            0..6,
        )
    }

    proptest! {
        #[test]
        fn encoded_order_is_key_asc_ts_desc(
            a in key_strategy(), ta in any::<u64>(),
            b in key_strategy(), tb in any::<u64>(),
        ) {
            let ea = encode_version(&a, ta);
            let eb = encode_version(&b, tb);
            let expected = a.cmp(&b).then(tb.cmp(&ta));
            prop_assert_eq!(ea.cmp(&eb), expected);
            // Bare encodings order like the keys and are prefix-free.
            let (pa, pb) = (encode_user_key(&a), encode_user_key(&b));
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            if a != b {
                prop_assert!(!pb.starts_with(&pa));
            }
            prop_assert_eq!(decode_user_key(&pa).unwrap(), a);
        }
    }
}
