//! Bitmap commands over strings: SETBIT GETBIT BITCOUNT BITPOS BITOP
//! BITFIELD BITFIELD_RO. Bit 0 is the most significant bit of byte 0, as
//! in Redis. Strings live inline in the metadata record, so every command
//! is one read and at most one write per key; growth is bounded by the
//! store's value limit.

use bytes::Bytes;

use crate::cmd::strings::{get_string, store_raw_string};
use crate::db::{CmdResult, Ctx, ExecError};
use crate::frame::Frame;
use crate::notify::{GENERIC, STRING};
use crate::parse::{parse_i64_strict, CmdError};

fn offset_error() -> ExecError {
    ExecError::err("bit offset is not an integer or out of range")
}

/// Largest bit offset Redis accepts (512 MiB strings); ours are further
/// bounded by the value limit when the string has to grow.
const MAX_BIT_OFFSET: u64 = 512 * 1024 * 1024 * 8 - 1;

/// Parses a bit offset; with `hash`, `#n` means `n * bits`.
fn parse_offset(arg: &[u8], hash: bool, bits: u64) -> Result<u64, ExecError> {
    let (num, mult) = match arg.strip_prefix(b"#") {
        Some(rest) if hash => (rest, bits),
        _ => (arg, 1),
    };
    let n = parse_i64_strict(num).ok_or_else(offset_error)?;
    let n = u64::try_from(n).map_err(|_| offset_error())?;
    let off = n.checked_mul(mult).ok_or_else(offset_error)?;
    if off > MAX_BIT_OFFSET {
        return Err(offset_error());
    }
    Ok(off)
}

fn get_bit(v: &[u8], bit: u64) -> u8 {
    let byte = (bit >> 3) as usize;
    match v.get(byte) {
        Some(b) => (b >> (7 - (bit & 7))) & 1,
        None => 0,
    }
}

/// Grows `v` so `bit` is addressable, checking the value limit first.
fn ensure_bits(cx: &Ctx<'_>, v: &mut Vec<u8>, last_bit: u64) -> Result<(), ExecError> {
    let need = usize::try_from((last_bit >> 3) + 1).map_err(|_| offset_error())?;
    if need > v.len() {
        cx.check_value_len(need)?;
        v.resize(need, 0);
    }
    Ok(())
}

fn set_bit(v: &mut [u8], bit: u64, on: bool) {
    let byte = (bit >> 3) as usize;
    let mask = 1u8 << (7 - (bit & 7));
    if on {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
}

/// SETBIT key offset value
pub async fn setbit(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let bit = parse_offset(&argv[2], false, 1)?;
    let on = match argv[3].as_ref() {
        b"0" => false,
        b"1" => true,
        _ => return Err(ExecError::err("bit is not an integer or out of range")),
    };
    let old = get_string(cx, key).await?;
    cx.check_key(key)?;
    let mut v = old.as_ref().map(|m| m.value.clone()).unwrap_or_default();
    let previous = get_bit(&v, bit);
    ensure_bits(cx, &mut v, bit)?;
    set_bit(&mut v, bit, on);
    let expire = old.as_ref().map(|m| m.expire_at).unwrap_or(0);
    store_raw_string(cx, key, old.as_ref(), v, expire).await?;
    cx.notify(STRING, "setbit", key);
    Ok(Frame::Integer(i64::from(previous)))
}

/// GETBIT key offset
pub async fn getbit(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let bit = parse_offset(&argv[2], false, 1)?;
    let v = get_string(cx, &argv[1]).await?;
    let b = v.map(|m| get_bit(&m.value, bit)).unwrap_or(0);
    Ok(Frame::Integer(i64::from(b)))
}

/// Resolves Redis's inclusive, possibly negative `[start, end]` over
/// `len` units; `None` when empty.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let fix = |x: i64| if x < 0 { (len + x).max(0) } else { x };
    let (s, mut e) = (fix(start), fix(end));
    if e >= len {
        e = len - 1;
    }
    if s > e || len == 0 {
        None
    } else {
        Some((s, e))
    }
}

/// Parses the `BYTE|BIT` unit argument.
fn parse_unit(arg: Option<&Bytes>) -> Result<bool, ExecError> {
    match arg {
        None => Ok(false),
        Some(a) if a.eq_ignore_ascii_case(b"BYTE") => Ok(false),
        Some(a) if a.eq_ignore_ascii_case(b"BIT") => Ok(true),
        Some(_) => Err(ExecError::syntax()),
    }
}

fn count_bits(v: &[u8], from_bit: u64, to_bit: u64) -> i64 {
    (from_bit..=to_bit).fold(0i64, |n, b| n + i64::from(get_bit(v, b)))
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub async fn bitcount(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let range = match argv.len() {
        2 => None,
        4 | 5 => {
            let s = parse_i64_strict(&argv[2]).ok_or(CmdError::NotInteger)?;
            let e = parse_i64_strict(&argv[3]).ok_or(CmdError::NotInteger)?;
            Some((s, e, parse_unit(argv.get(4))?))
        }
        _ => return Err(ExecError::syntax()),
    };
    let Some(m) = get_string(cx, &argv[1]).await? else {
        return Ok(Frame::Integer(0));
    };
    let v = &m.value;
    let n = match range {
        None => v.iter().map(|b| i64::from(b.count_ones())).sum(),
        Some((s, e, bits)) => {
            let len = v.len() as i64 * if bits { 8 } else { 1 };
            match clamp_range(s, e, len) {
                None => 0,
                Some((s, e)) if bits => count_bits(v, s as u64, e as u64),
                Some((s, e)) => v[s as usize..=e as usize]
                    .iter()
                    .map(|b| i64::from(b.count_ones()))
                    .sum(),
            }
        }
    };
    Ok(Frame::Integer(n))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub async fn bitpos(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let want = match parse_i64_strict(&argv[2]) {
        Some(0) => 0u8,
        Some(1) => 1u8,
        Some(_) => return Err(ExecError::err("The bit argument must be 1 or 0.")),
        None => return Err(CmdError::NotInteger.into()),
    };
    if argv.len() > 6 {
        return Err(ExecError::syntax());
    }
    let start = match argv.get(3) {
        Some(a) => Some(parse_i64_strict(a).ok_or(CmdError::NotInteger)?),
        None => None,
    };
    let end = match argv.get(4) {
        Some(a) => Some(parse_i64_strict(a).ok_or(CmdError::NotInteger)?),
        None => None,
    };
    let bits = parse_unit(argv.get(5))?;
    let Some(m) = get_string(cx, &argv[1]).await? else {
        return Ok(Frame::Integer(if want == 1 { -1 } else { 0 }));
    };
    let v = &m.value;
    let unit = if bits { 1 } else { 8 };
    let len = v.len() as i64 * if bits { 8 } else { 1 };
    let Some((s, e)) = clamp_range(start.unwrap_or(0), end.unwrap_or(-1), len) else {
        return Ok(Frame::Integer(-1));
    };
    let (from, to) = ((s * unit) as u64, ((e + 1) * unit) as u64);
    if let Some(pos) = (from..to).find(|&b| get_bit(v, b) == want) {
        return Ok(Frame::Integer(pos as i64));
    }
    // Looking for a clear bit without an explicit end: the string is
    // considered padded with zeros on the right.
    if want == 0 && end.is_none() {
        return Ok(Frame::Integer(to as i64));
    }
    Ok(Frame::Integer(-1))
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
pub async fn bitop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let op = argv[1].to_ascii_uppercase();
    if !matches!(op.as_slice(), b"AND" | b"OR" | b"XOR" | b"NOT") {
        return Err(ExecError::syntax());
    }
    let sources = &argv[3..];
    if op == b"NOT" && sources.len() != 1 {
        return Err(ExecError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let mut values = Vec::with_capacity(sources.len());
    for k in sources {
        values.push(
            get_string(cx, k)
                .await?
                .map(|m| m.value)
                .unwrap_or_default(),
        );
    }
    let maxlen = values.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0u8; maxlen];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = |v: &Vec<u8>| v.get(i).copied().unwrap_or(0);
        *o = match op.as_slice() {
            b"NOT" => !byte(&values[0]),
            b"AND" => values.iter().fold(0xFF, |acc, v| acc & byte(v)),
            b"OR" => values.iter().fold(0, |acc, v| acc | byte(v)),
            _ => values.iter().fold(0, |acc, v| acc ^ byte(v)),
        };
    }
    let dest = &argv[2];
    let old = cx.raw_meta(dest).await?;
    if out.is_empty() {
        if let Some(o) = old {
            let live = !o.is_expired(cx.now_ms);
            cx.remove_key(dest, &o).await?;
            if live {
                cx.notify(GENERIC, "del", dest);
            }
        }
        return Ok(Frame::Integer(0));
    }
    cx.check_key(dest)?;
    let n = out.len();
    store_raw_string(cx, dest, old.as_ref(), out, 0).await?;
    cx.notify(STRING, "set", dest);
    Ok(Frame::Integer(n as i64))
}

/// One BITFIELD integer type.
#[derive(Clone, Copy, Debug)]
struct FieldType {
    signed: bool,
    bits: u32,
}

fn parse_type(arg: &[u8]) -> Result<FieldType, ExecError> {
    let bad = || {
        ExecError::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let (signed, digits) = match arg.first() {
        Some(b'i' | b'I') => (true, &arg[1..]),
        Some(b'u' | b'U') => (false, &arg[1..]),
        _ => return Err(bad()),
    };
    let bits = parse_i64_strict(digits).ok_or_else(bad)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(bad());
    }
    Ok(FieldType {
        signed,
        bits: bits as u32,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// Reads `bits` bits at `offset` as an unsigned number.
fn read_field(v: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |acc, i| {
        (acc << 1) | u64::from(get_bit(v, offset + i))
    })
}

fn write_field(v: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let bit = (value >> (u64::from(bits) - 1 - i)) & 1;
        set_bit(v, offset + i, bit == 1);
    }
}

fn to_signed(raw: u64, bits: u32) -> i64 {
    if bits == 64 {
        return raw as i64;
    }
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

/// Applies `incr` to `value` under the type's range and overflow policy;
/// `None` means FAIL triggered.
fn apply_overflow(t: FieldType, value: i128, ov: Overflow) -> Option<i128> {
    let (min, max) = if t.signed {
        (-(1i128 << (t.bits - 1)), (1i128 << (t.bits - 1)) - 1)
    } else {
        (0, (1i128 << t.bits) - 1)
    };
    if (min..=max).contains(&value) {
        return Some(value);
    }
    match ov {
        Overflow::Fail => None,
        Overflow::Sat => Some(if value > max { max } else { min }),
        Overflow::Wrap => {
            let m = 1i128 << t.bits;
            let mut w = value.rem_euclid(m);
            if t.signed && w > max {
                w -= m;
            }
            Some(w)
        }
    }
}

/// BITFIELD key [GET type offset] [SET type offset value]
/// [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL] ...
/// (`read_only`: BITFIELD_RO, GET only).
pub async fn bitfield(cx: &mut Ctx<'_>, argv: &[Bytes], read_only: bool) -> CmdResult {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < argv.len() {
        let sub = argv[i].to_ascii_uppercase();
        let left = argv.len() - i - 1;
        match sub.as_slice() {
            b"GET" if left >= 2 => {
                let t = parse_type(&argv[i + 1])?;
                let off = parse_offset(&argv[i + 2], true, u64::from(t.bits))?;
                ops.push((t, off, FieldOp::Get, overflow));
                i += 3;
            }
            b"SET" | b"INCRBY" if left >= 3 => {
                if read_only {
                    return Err(ExecError::err(
                        "BITFIELD_RO only supports the GET subcommand",
                    ));
                }
                let t = parse_type(&argv[i + 1])?;
                let off = parse_offset(&argv[i + 2], true, u64::from(t.bits))?;
                let n = parse_i64_strict(&argv[i + 3]).ok_or(CmdError::NotInteger)?;
                let op = if sub == b"SET" {
                    FieldOp::Set(n)
                } else {
                    FieldOp::IncrBy(n)
                };
                ops.push((t, off, op, overflow));
                i += 4;
            }
            // BITFIELD_RO accepts (and ignores) OVERFLOW, as Redis does.
            b"OVERFLOW" if left >= 1 => {
                overflow = match argv[i + 1].to_ascii_uppercase().as_slice() {
                    b"WRAP" => Overflow::Wrap,
                    b"SAT" => Overflow::Sat,
                    b"FAIL" => Overflow::Fail,
                    _ => return Err(ExecError::err("Invalid OVERFLOW type specified")),
                };
                i += 2;
            }
            _ => return Err(ExecError::syntax()),
        }
    }
    let key = &argv[1];
    let old = get_string(cx, key).await?;
    let mut v = old.as_ref().map(|m| m.value.clone()).unwrap_or_default();
    let mut changed = false;
    let mut replies = Vec::with_capacity(ops.len());
    for (t, off, op, ov) in ops {
        let last = off + u64::from(t.bits) - 1;
        let raw = read_field(&v, off, t.bits);
        let current: i128 = if t.signed {
            i128::from(to_signed(raw, t.bits))
        } else {
            i128::from(raw)
        };
        let target = match op {
            FieldOp::Get => {
                replies.push(Frame::Integer(current as i64));
                continue;
            }
            // SET applies the overflow policy to the new value, as INCRBY
            // does to the sum.
            FieldOp::Set(n) => apply_overflow(t, i128::from(n), ov),
            FieldOp::IncrBy(n) => apply_overflow(t, current + i128::from(n), ov),
        };
        let Some(new) = target else {
            replies.push(Frame::Null);
            continue;
        };
        ensure_bits(cx, &mut v, last)?;
        let bits_mask = if t.bits == 64 {
            u64::MAX
        } else {
            (1u64 << t.bits) - 1
        };
        write_field(&mut v, off, t.bits, (new as u64) & bits_mask);
        changed = true;
        replies.push(Frame::Integer(match op {
            FieldOp::Set(_) => current as i64,
            _ => new as i64,
        }));
    }
    if changed {
        cx.check_key(key)?;
        let expire = old.as_ref().map(|m| m.expire_at).unwrap_or(0);
        store_raw_string(cx, key, old.as_ref(), v, expire).await?;
        cx.notify(STRING, "setbit", key);
    }
    Ok(Frame::Array(replies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut v = vec![0u8; 4];
        write_field(&mut v, 3, 5, 0b10110);
        assert_eq!(read_field(&v, 3, 5), 0b10110);
        assert_eq!(v[0], 0b0001_0110);
        assert_eq!(to_signed(0b10110, 5), -10);
        let t = FieldType {
            signed: true,
            bits: 8,
        };
        assert_eq!(apply_overflow(t, 130, Overflow::Wrap), Some(-126));
        assert_eq!(apply_overflow(t, 130, Overflow::Sat), Some(127));
        assert_eq!(apply_overflow(t, -200, Overflow::Sat), Some(-128));
        assert_eq!(apply_overflow(t, 130, Overflow::Fail), None);
        let u = FieldType {
            signed: false,
            bits: 4,
        };
        assert_eq!(apply_overflow(u, 17, Overflow::Wrap), Some(1));
        assert_eq!(apply_overflow(u, -1, Overflow::Wrap), Some(15));
        assert_eq!(apply_overflow(u, -1, Overflow::Sat), Some(0));
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(clamp_range(3, 1, 5), None);
        assert_eq!(clamp_range(0, -1, 0), None);
    }
}
