//! Stream entry IDs (`<ms>-<seq>`) with Redis 7.0's parsing rules
//! (`streamGenericParseIDOrReply`, `streamParseIntervalIDOrReply`,
//! `string2ull`), the special tokens (`-`, `+`, `$`, `>`, `*`, `<ms>-*`,
//! exclusive `(` bounds), successor/predecessor helpers and XADD ID
//! resolution, all with Redis's error texts.

use std::fmt;

use thiserror::Error;

/// A stream entry ID. Ordering is by `ms`, then `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

/// Errors with Redis's exact reply texts.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StreamIdError {
    /// Unparseable ID.
    #[error("ERR Invalid stream ID specified as stream command argument")]
    Invalid,
    /// `(` start bound that has no successor (`(18446744073709551615-18446744073709551615`).
    #[error("ERR invalid start ID for the interval")]
    InvalidStart,
    /// `(` end bound that has no predecessor (`(0-0`).
    #[error("ERR invalid end ID for the interval")]
    InvalidEnd,
    /// XADD with an explicit `0-0`.
    #[error("ERR The ID specified in XADD must be greater than 0-0")]
    XaddZero,
    /// XADD with an ID not above the stream's last ID.
    #[error("ERR The ID specified in XADD is equal or smaller than the target stream top item")]
    XaddTooSmall,
    /// The stream's last ID is already the maximum.
    #[error("ERR The stream has exhausted the last possible ID, unable to add more items")]
    Exhausted,
    /// `$` given to XREADGROUP.
    #[error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")]
    DollarInXreadgroup,
    /// `>` given to XREAD.
    #[error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")]
    GreaterInXread,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// `18446744073709551615-18446744073709551615`.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// A new ID.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// `streamIncrID`: the next ID, `None` for [`StreamId::MAX`].
    pub fn successor(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId {
                    ms: self.ms + 1,
                    seq: 0,
                })
            }
        } else {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq + 1,
            })
        }
    }

    /// `streamDecrID`: the previous ID, `None` for [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId {
                    ms: self.ms - 1,
                    seq: u64::MAX,
                })
            }
        } else {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq - 1,
            })
        }
    }

    /// Big-endian 16-byte encoding whose byte order equals ID order (the
    /// form Redis uses as rax keys; handy as a storage key suffix).
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Inverse of [`StreamId::to_be_bytes`].
    pub fn from_be_bytes(b: [u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Redis's `string2ull`: `string2ll` (non-negative) or, failing that,
/// glibc `strtoull` that must consume the whole non-empty string (so
/// leading blanks, `+`, leading zeros and values above `i64::MAX` pass;
/// `-N` that `string2ll` rejected wraps modulo 2^64, like C).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::parse::parse_i64_strict(s) {
        return u64::try_from(v).ok();
    }
    if s.is_empty() {
        return None;
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// What an ID argument parsed into, before the caller applies its own
/// meaning to a missing sequence.
struct Parsed {
    id: StreamId,
    seq_given: bool,
}

/// `streamGenericParseIDOrReply`.
fn parse_generic(
    s: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_seq_star: bool,
) -> Result<Parsed, StreamIdError> {
    // Redis copies into a 128-byte C buffer.
    if s.len() > 127 {
        return Err(StreamIdError::Invalid);
    }
    // ...and then works on a C string: a NUL ends it.
    let s = &s[..memchr::memchr(0, s).unwrap_or(s.len())];
    if s == b"-" || s == b"+" {
        if strict {
            return Err(StreamIdError::Invalid);
        }
        let id = if s == b"-" {
            StreamId::MIN
        } else {
            StreamId::MAX
        };
        return Ok(Parsed {
            id,
            seq_given: true,
        });
    }
    let (ms_part, seq_part) = match memchr::memchr(b'-', s) {
        Some(dash) => (&s[..dash], Some(&s[dash + 1..])),
        None => (s, None),
    };
    let ms = string2ull(ms_part).ok_or(StreamIdError::Invalid)?;
    let (seq, seq_given) = match seq_part {
        Some(b"*") if allow_seq_star => (0, false),
        Some(seq) => (string2ull(seq).ok_or(StreamIdError::Invalid)?, true),
        None => (missing_seq, true),
    };
    Ok(Parsed {
        id: StreamId { ms, seq },
        seq_given,
    })
}

/// `streamParseIDOrReply`: `-`, `+`, `<ms>` (sequence = `missing_seq`) or
/// `<ms>-<seq>`.
pub fn parse_id(s: &[u8], missing_seq: u64) -> Result<StreamId, StreamIdError> {
    parse_generic(s, missing_seq, false, false).map(|p| p.id)
}

/// `streamParseStrictIDOrReply`: like [`parse_id`] but `-` and `+` are
/// invalid (XREAD IDs, XCLAIM/XACK IDs, XSETID, XADD explicit IDs).
pub fn parse_strict_id(s: &[u8], missing_seq: u64) -> Result<StreamId, StreamIdError> {
    parse_generic(s, missing_seq, true, false).map(|p| p.id)
}

/// The ID argument of XADD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XaddId {
    /// `*`: fully automatic.
    Auto,
    /// `<ms>-*`: explicit time, automatic sequence.
    AutoSeq(u64),
    /// A complete ID (`<ms>` alone means `<ms>-0`).
    Explicit(StreamId),
}

/// Parses XADD's ID argument (`*`, `<ms>-*`, `<ms>[-<seq>]`).
pub fn parse_xadd_id(s: &[u8]) -> Result<XaddId, StreamIdError> {
    if s == b"*" {
        return Ok(XaddId::Auto);
    }
    let p = parse_generic(s, 0, true, true)?;
    if p.seq_given {
        Ok(XaddId::Explicit(p.id))
    } else {
        Ok(XaddId::AutoSeq(p.id.ms))
    }
}

/// `streamNextID`: the automatic ID for a stream whose last ID is `last`
/// at wall-clock time `now_ms`. `None` if the stream is exhausted.
pub fn next_auto_id(last: StreamId, now_ms: u64) -> Option<StreamId> {
    if now_ms > last.ms {
        Some(StreamId { ms: now_ms, seq: 0 })
    } else {
        last.successor()
    }
}

/// The ID XADD will use (the checks of `xaddCommand` and
/// `streamAppendItem`, in Redis's order).
pub fn resolve_xadd_id(
    last: StreamId,
    requested: XaddId,
    now_ms: u64,
) -> Result<StreamId, StreamIdError> {
    if requested == XaddId::Explicit(StreamId::MIN) {
        return Err(StreamIdError::XaddZero);
    }
    if last == StreamId::MAX {
        return Err(StreamIdError::Exhausted);
    }
    let id = match requested {
        XaddId::Auto => next_auto_id(last, now_ms).ok_or(StreamIdError::Exhausted)?,
        XaddId::AutoSeq(ms) => {
            if ms == last.ms {
                if last.seq == u64::MAX {
                    return Err(StreamIdError::XaddTooSmall);
                }
                StreamId {
                    ms,
                    seq: last.seq + 1,
                }
            } else {
                StreamId { ms, seq: 0 }
            }
        }
        XaddId::Explicit(id) => id,
    };
    if id <= last {
        return Err(StreamIdError::XaddTooSmall);
    }
    Ok(id)
}

/// XRANGE/XREVRANGE/XPENDING/XAUTOCLAIM interval bounds: `-`, `+`,
/// incomplete `<ms>` (start gets sequence 0, end gets the maximum) and
/// exclusive `(<id>` (converted to the inclusive neighbour). Returns the
/// inclusive `(start, end)`.
pub fn parse_range(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), StreamIdError> {
    let (start_id, start_ex) = parse_interval(start, 0)?;
    let start_id = if start_ex {
        start_id.successor().ok_or(StreamIdError::InvalidStart)?
    } else {
        start_id
    };
    let (end_id, end_ex) = parse_interval(end, u64::MAX)?;
    let end_id = if end_ex {
        end_id.predecessor().ok_or(StreamIdError::InvalidEnd)?
    } else {
        end_id
    };
    Ok((start_id, end_id))
}

/// `streamParseIntervalIDOrReply`: returns the ID and whether it was
/// exclusive. `(` needs at least one more byte, and an exclusive bound is
/// parsed strictly (so `(-` and `(+` are invalid).
pub fn parse_interval(s: &[u8], missing_seq: u64) -> Result<(StreamId, bool), StreamIdError> {
    if s.len() > 1 && s[0] == b'(' {
        Ok((parse_strict_id(&s[1..], missing_seq)?, true))
    } else {
        Ok((parse_id(s, missing_seq)?, false))
    }
}

/// An ID given to XREAD / XREADGROUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadId {
    /// `$` (XREAD): only entries added after the call.
    Last,
    /// `>` (XREADGROUP): entries never delivered to the group.
    NewForGroup,
    /// Entries with an ID greater than this one.
    After(StreamId),
}

/// Parses an XREAD (`group == false`) or XREADGROUP ID argument.
pub fn parse_read_id(s: &[u8], group: bool) -> Result<ReadId, StreamIdError> {
    match s {
        b"$" if group => Err(StreamIdError::DollarInXreadgroup),
        b"$" => Ok(ReadId::Last),
        b">" if !group => Err(StreamIdError::GreaterInXread),
        b">" => Ok(ReadId::NewForGroup),
        _ => Ok(ReadId::After(parse_strict_id(s, 0)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn parse_forms() {
        assert_eq!(parse_id(b"1-2", 0), Ok(id(1, 2)));
        assert_eq!(parse_id(b"5", 0), Ok(id(5, 0)));
        assert_eq!(parse_id(b"5", u64::MAX), Ok(id(5, u64::MAX)));
        assert_eq!(parse_id(b"-", 0), Ok(StreamId::MIN));
        assert_eq!(parse_id(b"+", 0), Ok(StreamId::MAX));
        assert_eq!(
            parse_id(b"18446744073709551615-18446744073709551615", 0),
            Ok(StreamId::MAX)
        );
        // string2ull falls back to strtoull: leading zeros, '+' and blanks pass.
        assert_eq!(parse_id(b"007-+3", 0), Ok(id(7, 3)));
        assert_eq!(parse_id(b" 1-2", 0), Ok(id(1, 2)));
        for bad in [
            &b""[..],
            b"abc",
            b"1-",
            b"-1",
            b"1-2-3",
            b"1-x",
            b"18446744073709551616",
            b"1--1",
            b"1.5",
        ] {
            assert_eq!(
                parse_id(bad, 0),
                Err(StreamIdError::Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_id(&[b'1'; 200], 0), Err(StreamIdError::Invalid));
        assert_eq!(parse_strict_id(b"-", 0), Err(StreamIdError::Invalid));
        assert_eq!(parse_strict_id(b"+", 0), Err(StreamIdError::Invalid));
        assert_eq!(
            StreamIdError::Invalid.to_string(),
            "ERR Invalid stream ID specified as stream command argument"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"-", b"+"), Ok((StreamId::MIN, StreamId::MAX)));
        assert_eq!(parse_range(b"5", b"5"), Ok((id(5, 0), id(5, u64::MAX))));
        assert_eq!(
            parse_range(b"(5-1", b"(7-0"),
            Ok((id(5, 2), id(6, u64::MAX)))
        );
        assert_eq!(
            parse_range(b"(5", b"(7"),
            Ok((id(5, 1), id(7, u64::MAX - 1)))
        );
        assert_eq!(parse_range(b"(+", b"+"), Err(StreamIdError::Invalid));
        assert_eq!(
            parse_range(b"(18446744073709551615-18446744073709551615", b"+"),
            Err(StreamIdError::InvalidStart)
        );
        assert_eq!(parse_range(b"-", b"(0-0"), Err(StreamIdError::InvalidEnd));
        // A lone "(" is not an exclusive prefix; it is just an invalid ID.
        assert_eq!(parse_range(b"(", b"+"), Err(StreamIdError::Invalid));
    }

    #[test]
    fn xadd_ids() {
        assert_eq!(parse_xadd_id(b"*"), Ok(XaddId::Auto));
        assert_eq!(parse_xadd_id(b"5-*"), Ok(XaddId::AutoSeq(5)));
        assert_eq!(parse_xadd_id(b"5"), Ok(XaddId::Explicit(id(5, 0))));
        assert_eq!(parse_xadd_id(b"+"), Err(StreamIdError::Invalid));
        assert_eq!(parse_xadd_id(b"*-1"), Err(StreamIdError::Invalid));
        let last = id(10, 3);
        assert_eq!(resolve_xadd_id(last, XaddId::Auto, 5), Ok(id(10, 4)));
        assert_eq!(resolve_xadd_id(last, XaddId::Auto, 20), Ok(id(20, 0)));
        assert_eq!(resolve_xadd_id(last, XaddId::AutoSeq(10), 0), Ok(id(10, 4)));
        assert_eq!(resolve_xadd_id(last, XaddId::AutoSeq(11), 0), Ok(id(11, 0)));
        assert_eq!(
            resolve_xadd_id(last, XaddId::AutoSeq(9), 0),
            Err(StreamIdError::XaddTooSmall)
        );
        assert_eq!(
            resolve_xadd_id(last, XaddId::Explicit(id(10, 3)), 0),
            Err(StreamIdError::XaddTooSmall)
        );
        assert_eq!(
            resolve_xadd_id(StreamId::MIN, XaddId::Explicit(StreamId::MIN), 0),
            Err(StreamIdError::XaddZero)
        );
        assert_eq!(
            resolve_xadd_id(StreamId::MAX, XaddId::Auto, 0),
            Err(StreamIdError::Exhausted)
        );
        assert_eq!(
            resolve_xadd_id(id(7, u64::MAX), XaddId::AutoSeq(7), 0),
            Err(StreamIdError::XaddTooSmall)
        );
    }

    #[test]
    fn read_ids() {
        assert_eq!(parse_read_id(b"$", false), Ok(ReadId::Last));
        assert_eq!(parse_read_id(b">", true), Ok(ReadId::NewForGroup));
        assert_eq!(parse_read_id(b"0", false), Ok(ReadId::After(StreamId::MIN)));
        assert_eq!(
            parse_read_id(b"$", true),
            Err(StreamIdError::DollarInXreadgroup)
        );
        assert_eq!(
            parse_read_id(b">", false),
            Err(StreamIdError::GreaterInXread)
        );
        assert_eq!(parse_read_id(b"-", false), Err(StreamIdError::Invalid));
    }

    #[test]
    fn neighbours_and_encoding() {
        assert_eq!(id(1, u64::MAX).successor(), Some(id(2, 0)));
        assert_eq!(StreamId::MAX.successor(), None);
        assert_eq!(id(2, 0).predecessor(), Some(id(1, u64::MAX)));
        assert_eq!(StreamId::MIN.predecessor(), None);
        assert_eq!(id(1526919030474, 55).to_string(), "1526919030474-55");
        let a = id(1, u64::MAX).to_be_bytes();
        let b = id(2, 0).to_be_bytes();
        assert!(a < b);
        assert_eq!(StreamId::from_be_bytes(b), id(2, 0));
    }
}
