//! Random sampling for HRANDFIELD, SRANDMEMBER, SPOP and ZRANDMEMBER:
//! Redis's count semantics (positive: distinct elements, at most the
//! collection's size; negative: `|count|` draws with repetition).

use rand::seq::index;
use rand::Rng;

use crate::db::{too_many, ExecError, MAX_LOADED};
use crate::parse::parse_i64_strict;

/// Parses a sampling count like `getRangeLongFromObjectOrReply(...,
/// -LONG_MAX, LONG_MAX, ...)`.
pub fn parse_count(arg: &[u8]) -> Result<i64, ExecError> {
    match parse_i64_strict(arg) {
        None => Err(ExecError::not_integer()),
        Some(i64::MIN) => Err(ExecError::err(format!(
            "value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        ))),
        Some(n) => Ok(n),
    }
}

/// With WITHVALUES/WITHSCORES a negative count returns twice as many
/// items; Redis refuses counts whose double would overflow.
pub fn check_paired(count: i64) -> Result<(), ExecError> {
    if count < -i64::MAX / 2 {
        return Err(ExecError::err("value is out of range"));
    }
    Ok(())
}

/// One random element.
pub fn pick_one<T>(items: &[T]) -> Option<&T> {
    if items.is_empty() {
        return None;
    }
    items.get(rand::thread_rng().gen_range(0..items.len()))
}

/// Indexes into a collection of `len` elements for a sampling `count`.
/// Positive counts give distinct indexes (all of them, in order, when
/// `count >= len`); negative counts give `|count|` independent draws,
/// refused beyond `MAX_LOADED`.
pub fn pick(len: usize, count: i64) -> Result<Vec<usize>, ExecError> {
    if len == 0 || count == 0 {
        return Ok(Vec::new());
    }
    let mut rng = rand::thread_rng();
    if count > 0 {
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        if n >= len {
            return Ok((0..len).collect());
        }
        return Ok(index::sample(&mut rng, len, n).into_vec());
    }
    let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    if n > MAX_LOADED {
        return Err(too_many());
    }
    Ok((0..n).map(|_| rng.gen_range(0..len)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(pick(5, 10).expect("ok"), vec![0, 1, 2, 3, 4]);
        let mut d = pick(100, 10).expect("ok");
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 10);
        assert_eq!(pick(3, -7).expect("ok").len(), 7);
        assert!(pick(0, -7).expect("ok").is_empty());
        assert!(parse_count(b"-9223372036854775808").is_err());
    }
}
