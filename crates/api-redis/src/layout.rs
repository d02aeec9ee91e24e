//! How Redis data is laid out in the ordered, transactional key-value
//! store (Kvrocks-style): one metadata record per Redis key, one KV entry
//! per collection element, element keys carrying the key's *version* so
//! that deleting or overwriting a collection of any size is O(1).
//!
//! ## Keys
//!
//! ```text
//! metadata   FF 'r' 'm' ++ db ++ redis_key                          -> meta record
//! element    FF 'r' 'e' ++ db ++ be32(len(redis_key)) ++ redis_key
//!                       ++ be64(version) ++ tag ++ subkey           -> element value
//!
//!   tag 'f'  hash field          subkey = field               value = field record
//!   tag 'm'  set member          subkey = member              value = empty
//!   tag 'l'  list element        subkey = be64(sequence)      value = element bytes
//!   tag 'z'  zset member         subkey = member              value = enc(score)
//!   tag 's'  zset score index    subkey = enc(score) ++ member  value = empty
//!   tag 'x'  stream entry        subkey = be64 ms ++ be64 seq   value = fields (cmd::stream)
//!   tag 'g'  stream group        subkey = group name            value = group record
//!   tag 'p'  group PEL entry     subkey = be64 gid ++ id        value = owner, time, count
//!   tag 'c'  group consumer      subkey = be64 gid ++ name      value = seen time, pel count
//!   tag 'q'  consumer PEL index  subkey = be64 gid ++ be32 len ++ name ++ id  value = empty
//!
//! config     FF 'r' 'c' 00 ++ name    -> be64 start_ts ++ value  (cluster-wide CONFIG
//!                                        parameters, see `crate::notify`)
//! ```
//!
//! `db` is the database number (SELECT 0..15) as one byte, so each
//! database is one contiguous range of metadata records. `0xFF` starts every
//! internal key (`elastickv_types::keys::INTERNAL_PREFIX`), so Redis data
//! can never collide with raw/gRPC user keys, and Redis keys themselves
//! may be any bytes (the length prefix keeps element keys of `a` and `ab`
//! apart). Metadata records are ordered by Redis key, which is what KEYS,
//! SCAN, RANDOMKEY and DBSIZE walk; elements of one key are contiguous and
//! ordered by field/member/sequence/score, which is what HGETALL, LRANGE,
//! ZRANGE & co. walk in bounded pages.
//!
//! ## Metadata record
//!
//! ```text
//! u8 type (1 string, 2 hash, 3 list, 4 set, 5 zset, 6 stream)
//! u8 flags (bit 0: some hash field may carry its own expiry;
//!           bit 1: the value has left Redis's small encoding, see
//!           `FLAG_BIG_ENCODING`)
//! be64 expire_at_ms (Unix ms; 0 = no expiry)
//! string:      value bytes (the whole string inline)
//! collections: be64 version, be64 count
//! list:        ... then be64 head, be64 tail (live sequence numbers are [head, tail))
//! stream:      ... then the stream header (`cmd::stream`: last id, first id,
//!              max deleted id, entries added, group counter; count = length)
//! ```
//!
//! Strings (including HyperLogLogs, which are strings in Redis's exact
//! byte format) live inline in the metadata record, so GET/SET is one KV
//! read/write. `count` makes HLEN/SCARD/ZCARD/LLEN O(1).
//!
//! ## Versions
//!
//! A collection's elements are only visible under the version in its
//! current metadata record. A new incarnation of a key (first write after
//! the key was missing, expired, deleted or overwritten with another type)
//! takes the creating transaction's start timestamp as its version. Every
//! earlier incarnation was created by a transaction that committed at or
//! before that snapshot, so its version is strictly smaller: old elements
//! can never reappear. DEL / UNLINK / overwrite / expiry therefore only
//! touch the metadata record, whatever the collection's size. The only
//! exception is a key created *and* removed inside one transaction (MULTI
//! or RENAME onto itself): its elements share that transaction's version,
//! so they are deleted one by one — they are all the transaction's own
//! writes, so the cost is bounded by what the client sent.
//!
//! Elements of dead versions are garbage: they are invisible, and each
//! dead version's elements form one contiguous range
//! `[prefix(key) ++ be64(v), prefix(key) ++ be64(v + 1))`, so a background
//! reclaimer can walk the element space in order and delete every range
//! whose version differs from the live metadata record's (or whose key has
//! none). [`crate::reclaim`] does that in bounded background passes.
//!
//! ## Expiry
//!
//! `expire_at_ms` is compared with the physical part (upper 48 bits) of
//! the transaction's start timestamp, never the local wall clock, so every
//! replica and every node agree on whether a key exists at a given
//! snapshot. An expired key is invisible at once; its metadata record is
//! deleted by the next write to the key or by [`crate::reclaim`]'s
//! background pass, whichever comes first.
//!
//! Hash fields reserve room for per-field expiry (Redis 7.4 `HEXPIRE`):
//! a field record is `u8 flags ++ [be64 expire_at_ms if flags & 1] ++
//! value`, and the hash's metadata flag bit 0 says whether any field may
//! carry one.
//!
//! ## Scores
//!
//! `enc(score)` is the IEEE-754 bit pattern made to sort as the number
//! does: positive values (and +0, to which -0 is normalised) get the sign
//! bit set, negative values have all bits flipped. So -inf < negatives <
//! 0 < positives < +inf byte-wise, and the `'s'` index orders members by
//! (score, member bytes), exactly Redis's skiplist order. NaN is never
//! stored (Redis rejects it).

use elastickv_types::limits::MAX_KEY_BYTES;

/// `[start, end)` of every key the Redis front end stores: metadata and
/// elements alike.
pub const KEYSPACE: (&[u8], &[u8]) = (b"\xFFr", b"\xFFs");

/// Prefix of every metadata record.
pub const META_PREFIX: &[u8] = b"\xFFrm";
/// Prefix of every element entry.
pub const ELEM_PREFIX: &[u8] = b"\xFFre";

/// Element tag: hash field.
pub const TAG_HASH: u8 = b'f';
/// Element tag: set member.
pub const TAG_SET: u8 = b'm';
/// Element tag: list element.
pub const TAG_LIST: u8 = b'l';
/// Element tag: zset member -> score.
pub const TAG_ZMEMBER: u8 = b'z';
/// Element tag: zset (score, member) index.
pub const TAG_ZSCORE: u8 = b's';
/// Element tag: stream entry.
pub const TAG_STREAM_ENTRY: u8 = b'x';
/// Element tag: stream consumer group.
pub const TAG_STREAM_GROUP: u8 = b'g';
/// Element tag: a group's pending entry.
pub const TAG_STREAM_PEL: u8 = b'p';
/// Element tag: a group's consumer.
pub const TAG_STREAM_CONSUMER: u8 = b'c';
/// Element tag: a consumer's pending-entry index.
pub const TAG_STREAM_CPEL: u8 = b'q';

/// Bytes an element key adds around the Redis key and the subkey.
pub const ELEM_OVERHEAD: usize = ELEM_PREFIX.len() + 1 + 4 + 8 + 1;

/// Longest Redis key accepted (its metadata key must fit the store's key
/// limit, with room for element subkeys).
pub const MAX_REDIS_KEY: usize = MAX_KEY_BYTES - ELEM_OVERHEAD - 1024;

/// Initial head/tail of a new list: the middle of the sequence space, so
/// pushes on either side never run out.
pub const LIST_INITIAL_SEQ: u64 = 1 << 63;

/// Redis data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Strings (and HyperLogLogs).
    String,
    /// Hashes.
    Hash,
    /// Lists.
    List,
    /// Sets.
    Set,
    /// Sorted sets.
    ZSet,
    /// Streams.
    Stream,
}

impl KeyType {
    /// The name TYPE replies with.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Hash => "hash",
            KeyType::List => "list",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Stream => "stream",
        }
    }

    /// Parses a SCAN ... TYPE argument (case-insensitively, like Redis).
    pub fn from_name(name: &[u8]) -> Option<KeyType> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_slice() {
            b"string" => KeyType::String,
            b"hash" => KeyType::Hash,
            b"list" => KeyType::List,
            b"set" => KeyType::Set,
            b"zset" => KeyType::ZSet,
            b"stream" => KeyType::Stream,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            KeyType::String => 1,
            KeyType::Hash => 2,
            KeyType::List => 3,
            KeyType::Set => 4,
            KeyType::ZSet => 5,
            KeyType::Stream => 6,
        }
    }

    fn from_code(c: u8) -> Option<KeyType> {
        Some(match c {
            1 => KeyType::String,
            2 => KeyType::Hash,
            3 => KeyType::List,
            4 => KeyType::Set,
            5 => KeyType::ZSet,
            6 => KeyType::Stream,
            _ => return None,
        })
    }

    /// True for types whose elements live in their own entries.
    pub fn is_collection(self) -> bool {
        self != KeyType::String
    }
}

/// Metadata flag: some hash field may have its own expiry.
pub const FLAG_FIELD_TTL: u8 = 1;

/// Metadata flag: Redis would hold this value in its large encoding
/// (`raw` string, `hashtable` set or hash, `skiplist` zset) whatever its
/// content now — Redis converts small encodings to large ones and never
/// back, and OBJECT ENCODING reports what Redis would.
pub const FLAG_BIG_ENCODING: u8 = 2;

/// A decoded metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Data type.
    pub ty: KeyType,
    /// Flag bits.
    pub flags: u8,
    /// Absolute expiry in Unix ms; 0 = none.
    pub expire_at: u64,
    /// Collection version (0 for strings).
    pub version: u64,
    /// Element count (string: unused).
    pub count: u64,
    /// List: first live sequence number.
    pub head: u64,
    /// List: one past the last live sequence number.
    pub tail: u64,
    /// String value; for streams, the stream header.
    pub value: Vec<u8>,
}

/// The metadata record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt Redis metadata record")]
pub struct CorruptMeta;

impl Meta {
    /// A string record.
    pub fn string(value: Vec<u8>, expire_at: u64) -> Meta {
        Meta {
            ty: KeyType::String,
            flags: 0,
            expire_at,
            version: 0,
            count: 0,
            head: 0,
            tail: 0,
            value,
        }
    }

    /// A string record Redis would hold in its `raw` encoding (written in
    /// place: APPEND, SETRANGE, SETBIT, BITFIELD, BITOP, HyperLogLogs).
    pub fn raw_string(value: Vec<u8>, expire_at: u64) -> Meta {
        let mut m = Meta::string(value, expire_at);
        m.flags |= FLAG_BIG_ENCODING;
        m
    }

    /// An empty collection record at `version`.
    pub fn collection(ty: KeyType, version: u64) -> Meta {
        Meta {
            ty,
            flags: 0,
            expire_at: 0,
            version,
            count: 0,
            head: LIST_INITIAL_SEQ,
            tail: LIST_INITIAL_SEQ,
            value: Vec::new(),
        }
    }

    /// True when `now_ms` is at or past the expiry.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    /// Encoded record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(42 + self.value.len());
        out.push(self.ty.code());
        out.push(self.flags);
        out.extend_from_slice(&self.expire_at.to_be_bytes());
        match self.ty {
            KeyType::String => out.extend_from_slice(&self.value),
            _ => {
                out.extend_from_slice(&self.version.to_be_bytes());
                out.extend_from_slice(&self.count.to_be_bytes());
                if self.ty == KeyType::List {
                    out.extend_from_slice(&self.head.to_be_bytes());
                    out.extend_from_slice(&self.tail.to_be_bytes());
                }
                if self.ty == KeyType::Stream {
                    out.extend_from_slice(&self.value);
                }
            }
        }
        out
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> Result<Meta, CorruptMeta> {
        let ty = KeyType::from_code(*b.first().ok_or(CorruptMeta)?).ok_or(CorruptMeta)?;
        let flags = *b.get(1).ok_or(CorruptMeta)?;
        let expire_at = be64(b, 2)?;
        let mut m = Meta::collection(ty, 0);
        m.flags = flags;
        m.expire_at = expire_at;
        match ty {
            KeyType::String => {
                m.head = 0;
                m.tail = 0;
                m.value = b[10..].to_vec();
            }
            _ => {
                m.version = be64(b, 10)?;
                m.count = be64(b, 18)?;
                if ty == KeyType::List {
                    m.head = be64(b, 26)?;
                    m.tail = be64(b, 34)?;
                }
                if ty == KeyType::Stream {
                    m.value = b.get(26..).ok_or(CorruptMeta)?.to_vec();
                }
            }
        }
        Ok(m)
    }
}

fn be64(b: &[u8], at: usize) -> Result<u64, CorruptMeta> {
    let s = b.get(at..at + 8).ok_or(CorruptMeta)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_be_bytes(a))
}

/// Reads a big-endian u64 from the start of `b` (element subkeys/values).
pub fn read_be64(b: &[u8]) -> Option<u64> {
    let s = b.get(..8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// Metadata key of `key` in database `db`.
pub fn meta_key(db: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(META_PREFIX.len() + 1 + key.len());
    k.extend_from_slice(META_PREFIX);
    k.push(db);
    k.extend_from_slice(key);
    k
}

/// Prefix of every metadata key of database `db` (what KEYS, SCAN,
/// DBSIZE and FLUSHDB walk).
pub fn db_meta_prefix(db: u8) -> Vec<u8> {
    let mut k = META_PREFIX.to_vec();
    k.push(db);
    k
}

/// Length of the part of a metadata key before the Redis key.
pub const META_KEY_OVERHEAD: usize = META_PREFIX.len() + 1;

/// The database and Redis key of a metadata key.
pub fn redis_key_of_meta(meta_key: &[u8]) -> Option<(u8, &[u8])> {
    let rest = meta_key.strip_prefix(META_PREFIX)?;
    let (&db, key) = rest.split_first()?;
    Some((db, key))
}

/// Prefix of every element of every version of `key` in `db`.
pub fn key_elems_prefix(db: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(ELEM_PREFIX.len() + 5 + key.len() + 9);
    k.extend_from_slice(ELEM_PREFIX);
    k.push(db);
    // Redis keys are far below 4 GiB (MAX_REDIS_KEY), so this fits.
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Prefix of the elements of `key` at `version`: one contiguous range.
pub fn version_prefix(db: u8, key: &[u8], version: u64) -> Vec<u8> {
    let mut k = key_elems_prefix(db, key);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Prefix of the elements with `tag` of `key` at `version`.
pub fn tag_prefix(db: u8, key: &[u8], version: u64, tag: u8) -> Vec<u8> {
    let mut k = version_prefix(db, key, version);
    k.push(tag);
    k
}

/// Full element key.
pub fn elem_key(db: u8, key: &[u8], version: u64, tag: u8, sub: &[u8]) -> Vec<u8> {
    let mut k = tag_prefix(db, key, version, tag);
    k.extend_from_slice(sub);
    k
}

/// The database, Redis key and version of an element key.
pub fn parse_elem_key(k: &[u8]) -> Option<(u8, &[u8], u64)> {
    let rest = k.strip_prefix(ELEM_PREFIX)?;
    let (&db, rest) = rest.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + len)?;
    let version = read_be64(rest.get(4 + len..)?)?;
    Some((db, key, version))
}

/// Smallest byte string greater than every string starting with `prefix`
/// (`None`: no such bound, the prefix is all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Order-preserving encoding of a score (see the module documentation).
pub fn enc_score(score: f64) -> [u8; 8] {
    // -0.0 and 0.0 are the same score in Redis.
    let s = if score == 0.0 { 0.0 } else { score };
    let bits = s.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// Inverse of [`enc_score`].
pub fn dec_score(b: &[u8]) -> Option<f64> {
    let ordered = read_be64(b)?;
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    Some(f64::from_bits(bits))
}

/// A list sequence number as a subkey.
pub fn seq_sub(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Encodes a hash field record.
pub fn enc_field(value: &[u8], expire_at: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    if expire_at == 0 {
        out.push(0);
    } else {
        out.push(1);
        out.extend_from_slice(&expire_at.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// Decodes a hash field record into (value, expire_at_ms).
pub fn dec_field(b: &[u8]) -> Option<(&[u8], u64)> {
    match b.first()? {
        0 => Some((&b[1..], 0)),
        1 => Some((b.get(9..)?, read_be64(b.get(1..)?)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redis_key_is_inside_the_keyspace() {
        let (start, end) = KEYSPACE;
        for prefix in [META_PREFIX, ELEM_PREFIX] {
            assert!(prefix >= start && prefix < end, "{prefix:?}");
            let mut last = prefix.to_vec();
            last.extend_from_slice(&[0xFF; 64]);
            assert!(last.as_slice() < end);
        }
    }

    #[test]
    fn score_encoding_orders_like_numbers() {
        let scores = [
            f64::NEG_INFINITY,
            -1e308,
            -2.5,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1.0,
            1.5,
            2.0,
            1e308,
            f64::INFINITY,
        ];
        for w in scores.windows(2) {
            assert!(
                enc_score(w[0]) < enc_score(w[1]),
                "{} must sort before {}",
                w[0],
                w[1]
            );
        }
        for s in scores {
            assert_eq!(dec_score(&enc_score(s)), Some(s));
        }
        assert_eq!(enc_score(-0.0), enc_score(0.0));
        assert_eq!(dec_score(&enc_score(-0.0)).map(f64::to_bits), Some(0));
    }

    #[test]
    fn meta_round_trip() {
        let mut m = Meta::collection(KeyType::List, 42);
        m.count = 3;
        m.head = LIST_INITIAL_SEQ - 1;
        m.tail = LIST_INITIAL_SEQ + 2;
        m.expire_at = 1234;
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
        let s = Meta::string(b"hello".to_vec(), 0);
        assert_eq!(Meta::decode(&s.encode()), Ok(s));
        let mut h = Meta::collection(KeyType::Hash, 7);
        h.flags = FLAG_FIELD_TTL;
        assert_eq!(Meta::decode(&h.encode()), Ok(h));
        assert_eq!(Meta::decode(b""), Err(CorruptMeta));
        assert_eq!(Meta::decode(b"\x09\x00"), Err(CorruptMeta));
        assert_eq!(Meta::decode(b"\x02\x00\x00"), Err(CorruptMeta));
    }

    #[test]
    fn versions_are_contiguous_and_isolated() {
        // Every element of version v sorts inside [prefix(v), prefix(v+1)),
        // and no element of "a" falls inside "ab"'s ranges or another db's.
        let v1_end = version_prefix(0, b"a", 8);
        for sub in [&b""[..], b"\xff\xff\xff", b"zzzz"] {
            for tag in [TAG_HASH, TAG_LIST, TAG_SET, TAG_ZMEMBER, TAG_ZSCORE] {
                let k = elem_key(0, b"a", 7, tag, sub);
                assert!(k >= version_prefix(0, b"a", 7) && k < v1_end);
                let other = elem_key(0, b"ab", 7, tag, sub);
                assert!(!other.starts_with(&key_elems_prefix(0, b"a")));
                let other_db = elem_key(1, b"a", 7, tag, sub);
                assert!(!other_db.starts_with(&key_elems_prefix(0, b"a")));
            }
        }
        let all = key_elems_prefix(0, b"a");
        let end = prefix_end(&all).expect("bounded");
        assert!(elem_key(0, b"a", u64::MAX, TAG_ZSCORE, b"\xff") < end);
        assert!(!elem_key(0, b"a\x00", 0, TAG_HASH, b"").starts_with(&all));
    }

    #[test]
    fn element_keys_parse_back() {
        let k = elem_key(7, b"k\x00y", 42, TAG_HASH, b"field");
        assert_eq!(parse_elem_key(&k), Some((7, &b"k\x00y"[..], 42)));
        assert_eq!(
            parse_elem_key(&k[..k.len() - 6]),
            Some((7, &b"k\x00y"[..], 42))
        );
        assert_eq!(parse_elem_key(&k[..10]), None);
        assert_eq!(parse_elem_key(&meta_key(7, b"k")), None);
    }

    #[test]
    fn meta_keys_sort_by_db_then_redis_key() {
        assert!(meta_key(0, b"a") < meta_key(0, b"ab"));
        assert!(meta_key(0, b"ab") < meta_key(0, b"b"));
        assert!(meta_key(0, b"\xff\xff") < meta_key(1, b""));
        assert_eq!(
            redis_key_of_meta(&meta_key(3, b"k1")),
            Some((3, &b"k1"[..]))
        );
        assert!(meta_key(9, b"k").starts_with(&db_meta_prefix(9)));
        assert!(!meta_key(9, b"k").starts_with(&db_meta_prefix(0)));
        assert!(meta_key(255, b"\xff\xff") < prefix_end(META_PREFIX).expect("bounded"));
    }

    #[test]
    fn field_records() {
        assert_eq!(dec_field(&enc_field(b"v", 0)), Some((&b"v"[..], 0)));
        assert_eq!(dec_field(&enc_field(b"v", 99)), Some((&b"v"[..], 99)));
        assert_eq!(dec_field(b""), None);
        assert_eq!(dec_field(b"\x01\x00"), None);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
