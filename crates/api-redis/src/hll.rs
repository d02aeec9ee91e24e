//! HyperLogLog with Redis's exact string encoding (a port of Redis 7.0's
//! `hyperloglog.c`), so values written by PFADD/PFMERGE here are
//! byte-identical to Redis's and can be exchanged with it (DUMP/RESTORE,
//! migration, clients that GET the raw string), and PFCOUNT returns the
//! same numbers.
//!
//! Layout (`struct hllhdr`): `"HYLL"`, encoding byte (0 dense, 1 sparse),
//! three zero bytes, 8-byte little-endian cached cardinality whose top bit
//! flags the cache as stale, then the registers:
//!
//! * dense: 16384 six-bit registers packed LSB-first into 12288 bytes;
//! * sparse: run-length opcodes `ZERO` (`00xxxxxx`, 1..64 zero registers),
//!   `XZERO` (`01xxxxxx yyyyyyyy`, 1..16384 zero registers) and `VAL`
//!   (`1vvvvvxx`, 1..4 registers of value 1..32). A sparse value is
//!   promoted to dense when a register needs a value above 32 or when the
//!   string would grow past `hll-sparse-max-bytes` (3000 by default).
//!
//! Elements are hashed with MurmurHash64A (seed `0xadc83b19`); the low 14
//! bits pick the register and the run of zeros in the rest (plus one) is
//! the candidate register value. Cardinality uses Otmar Ertl's improved
//! estimator (`hllSigma`/`hllTau`) exactly as Redis 7 computes it.
//!
//! All functions work on plain byte strings: the storage layer stores and
//! loads the value like any other string.

use thiserror::Error;

/// Registers index bits.
pub const HLL_P: u32 = 14;
/// Hash bits used for the zero run.
pub const HLL_Q: u32 = 64 - HLL_P;
/// Number of registers (16384).
pub const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_P_MASK: u64 = (HLL_REGISTERS as u64) - 1;
const HLL_BITS: usize = 6;
const HLL_REGISTER_MAX: u8 = (1 << HLL_BITS) - 1;
/// Header size in bytes.
pub const HLL_HDR_SIZE: usize = 16;
/// Size of a dense HLL string (12304 bytes).
pub const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const HLL_DENSE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const HLL_MAX_ENCODING: u8 = 1;
/// Redis's default `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3000;
/// Seed Redis uses for element hashing.
pub const HLL_HASH_SEED: u32 = 0xadc8_3b19;

const SPARSE_XZERO_BIT: u8 = 0x40;
const SPARSE_VAL_BIT: u8 = 0x80;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const HLL_ALPHA_INF: f64 = 0.721_347_520_444_481_7; // 0.5 / ln(2)

/// Errors with the exact texts Redis replies with.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum HllError {
    /// The string is not an HLL (bad magic, encoding or dense size).
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// The sparse opcodes do not describe exactly 16384 registers.
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    Corrupted,
}

/// MurmurHash2, 64-bit version, endian-neutral as modified for Redis.
pub fn murmurhash64a(key: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let len = key.len();
    let mut h: u64 = u64::from(seed) ^ (len as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// `hllPatLen`: the register index an element maps to and the length of
/// its `000..1` pattern (1..=51).
pub fn pat_len(element: &[u8]) -> (usize, u8) {
    let mut hash = murmurhash64a(element, HLL_HASH_SEED);
    let index = (hash & HLL_P_MASK) as usize;
    hash >>= HLL_P;
    hash |= 1u64 << HLL_Q; // guarantees termination, count <= Q+1
    let count = hash.trailing_zeros() + 1;
    (index, count as u8)
}

// ---------------------------------------------------------------- header

fn encoding(v: &[u8]) -> u8 {
    v[4]
}

fn invalidate_cache(v: &mut [u8]) {
    v[15] |= 1 << 7;
}

fn cache_valid(v: &[u8]) -> bool {
    v[15] & (1 << 7) == 0
}

fn cached_card(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[8..16]);
    u64::from_le_bytes(b)
}

fn set_cached_card(v: &mut [u8], card: u64) {
    v[8..16].copy_from_slice(&card.to_le_bytes());
}

/// `isHLLObjectOrReply` minus the string type check (done by the caller):
/// header size, magic, known encoding and exact dense size.
pub fn validate(v: &[u8]) -> Result<(), HllError> {
    if v.len() < HLL_HDR_SIZE || &v[..4] != b"HYLL" || encoding(v) > HLL_MAX_ENCODING {
        return Err(HllError::NotHll);
    }
    if encoding(v) == HLL_DENSE && v.len() != HLL_DENSE_SIZE {
        return Err(HllError::NotHll);
    }
    Ok(())
}

/// True if the (valid) value uses the dense encoding.
pub fn is_dense(v: &[u8]) -> bool {
    v.len() > 4 && encoding(v) == HLL_DENSE
}

/// `createHLLObject`: an empty sparse HLL (one XZERO opcode covering all
/// registers, cached cardinality 0 and valid).
pub fn create() -> Vec<u8> {
    let mut v = Vec::with_capacity(HLL_HDR_SIZE + 2);
    v.extend_from_slice(b"HYLL");
    v.push(HLL_SPARSE);
    v.extend_from_slice(&[0u8; 11]);
    let mut aux = HLL_REGISTERS;
    while aux > 0 {
        let xzero = aux.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, xzero);
        aux -= xzero;
    }
    v
}

// ----------------------------------------------------------------- dense

fn dense_get(regs: &[u8], index: usize) -> u8 {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let b0 = u32::from(regs[byte]);
    // Redis reads one byte past the registers for the last one (the sds
    // terminator); it contributes nothing, so model it as 0.
    let b1 = u32::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << fb8)) & u32::from(HLL_REGISTER_MAX)) as u8
}

fn dense_set_register(regs: &mut [u8], index: usize, val: u8) {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let v = u32::from(val);
    let max = u32::from(HLL_REGISTER_MAX);
    regs[byte] = ((u32::from(regs[byte]) & !(max << fb)) | (v << fb)) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        *b1 = ((u32::from(*b1) & !(max >> fb8)) | (v >> fb8)) as u8;
    }
}

/// `hllDenseSet`: raise register `index` to `count`; true if it changed.
fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_set_register(regs, index, count);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------- sparse

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == SPARSE_XZERO_BIT
}
fn is_val(b: u8) -> bool {
    b & SPARSE_VAL_BIT != 0
}
fn zero_len(b: u8) -> usize {
    usize::from(b & 0x3f) + 1
}
fn xzero_len(b0: u8, b1: u8) -> usize {
    ((usize::from(b0 & 0x3f) << 8) | usize::from(b1)) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    usize::from(b & 0x3) + 1
}
fn val_op(val: u8, len: usize) -> u8 {
    (((val - 1) << 2) | ((len as u8) - 1)) | SPARSE_VAL_BIT
}
fn zero_op(len: usize) -> u8 {
    (len - 1) as u8
}
fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(((l >> 8) as u8) | SPARSE_XZERO_BIT);
    out.push((l & 0xff) as u8);
}

/// Byte at `i`, 0 past the end (Redis reads the sds terminator there).
fn at(v: &[u8], i: usize) -> u8 {
    v.get(i).copied().unwrap_or(0)
}

/// Walks the sparse opcodes calling `f(first_register, run_len, value)`
/// for each run; fails unless the runs cover exactly 16384 registers.
fn sparse_for_each(v: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), HllError> {
    let mut p = HLL_HDR_SIZE;
    let mut idx = 0usize;
    while p < v.len() {
        let b = v[p];
        let (runlen, val, oplen) = if is_zero(b) {
            (zero_len(b), 0, 1)
        } else if is_xzero(b) {
            (xzero_len(b, at(v, p + 1)), 0, 2)
        } else {
            (val_len(b), val_value(b), 1)
        };
        if runlen + idx > HLL_REGISTERS {
            return Err(HllError::Corrupted);
        }
        f(idx, runlen, val);
        idx += runlen;
        p += oplen;
    }
    if idx != HLL_REGISTERS {
        return Err(HllError::Corrupted);
    }
    Ok(())
}

/// `hllSparseToDense`: converts in place; the header (magic and cached
/// cardinality) is carried over, only the encoding byte changes.
fn sparse_to_dense(v: &mut Vec<u8>) -> Result<(), HllError> {
    if encoding(v) == HLL_DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; HLL_DENSE_SIZE];
    dense[..HLL_HDR_SIZE].copy_from_slice(&v[..HLL_HDR_SIZE]);
    dense[4] = HLL_DENSE;
    {
        let regs = &mut dense[HLL_HDR_SIZE..];
        sparse_for_each(v, |first, len, val| {
            if val != 0 {
                for i in first..first + len {
                    dense_set_register(regs, i, val);
                }
            }
        })?;
    }
    *v = dense;
    Ok(())
}

/// `hllSparseSet`: raise register `index` to `count` in a sparse value,
/// promoting to dense when needed. Ok(true) if the value changed.
fn sparse_set(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: usize,
) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let mut p = HLL_HDR_SIZE;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < v.len() {
        let b = v[p];
        let mut oplen = 1;
        span = if is_zero(b) {
            zero_len(b)
        } else if is_val(b) {
            val_len(b)
        } else {
            oplen = 2;
            xzero_len(b, at(v, p + 1))
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(HllError::Corrupted);
    }
    let b = v[p];
    let (op_is_zero, op_is_xzero) = (is_zero(b), is_xzero(b));
    let runlen = if op_is_zero {
        zero_len(b)
    } else if op_is_xzero {
        xzero_len(b, at(v, p + 1))
    } else {
        val_len(b)
    };

    // Step 2: the trivial cases.
    let mut rewritten = false;
    if !op_is_zero && !op_is_xzero {
        let oldcount = val_value(b);
        if oldcount >= count {
            return Ok(false);
        }
        if runlen == 1 {
            v[p] = val_op(count, 1);
            rewritten = true;
        }
    }
    if !rewritten && op_is_zero && runlen == 1 {
        v[p] = val_op(count, 1);
        rewritten = true;
    }

    // Step 3: split the run into up to three opcodes.
    if !rewritten {
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let last = first + span - 1;
        if op_is_zero || op_is_xzero {
            if index != first {
                let len = index - first;
                if len > SPARSE_ZERO_MAX_LEN {
                    push_xzero(&mut seq, len);
                } else {
                    seq.push(zero_op(len));
                }
            }
            seq.push(val_op(count, 1));
            if index != last {
                let len = last - index;
                if len > SPARSE_ZERO_MAX_LEN {
                    push_xzero(&mut seq, len);
                } else {
                    seq.push(zero_op(len));
                }
            }
        } else {
            let curval = val_value(b);
            if index != first {
                seq.push(val_op(curval, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(curval, last - index));
            }
        }
        let oldlen = if op_is_xzero { 2 } else { 1 };
        if seq.len() > oldlen && v.len() + (seq.len() - oldlen) > sparse_max_bytes {
            return promote(v, index, count);
        }
        let end = (p + oldlen).min(v.len());
        v.splice(p..end, seq);
    }

    // Step 4: merge adjacent VAL opcodes with equal values, scanning up to
    // five opcodes from the one before the change.
    let mut p = prev.unwrap_or(HLL_HDR_SIZE);
    let mut scanlen = 5;
    while p < v.len() && scanlen > 0 {
        scanlen -= 1;
        let b = v[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < v.len() && is_val(v[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(v[p + 1]));
            if v1 == v2 {
                let len = val_len(b) + val_len(v[p + 1]);
                if len <= SPARSE_VAL_MAX_LEN {
                    v[p + 1] = val_op(v1, len);
                    v.remove(p);
                    // Stay on `p`: the merged opcode may merge again.
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(v);
    Ok(true)
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    sparse_to_dense(v)?;
    // The register could only hold <= 32 or less than `count` while
    // sparse, so the dense set always changes it.
    Ok(dense_set(&mut v[HLL_HDR_SIZE..], index, count))
}

/// `hllAdd` of one element; Ok(true) if a register changed.
fn add_element(v: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pat_len(element);
    match encoding(v) {
        HLL_DENSE => Ok(dense_set(&mut v[HLL_HDR_SIZE..], index, count)),
        HLL_SPARSE => sparse_set(v, index, count, sparse_max_bytes),
        _ => Err(HllError::Corrupted),
    }
}

// ------------------------------------------------------------- estimator

fn hll_sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

fn hll_tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        // `powf` (libm `pow`, as in Redis) rather than `x * x`, so results
        // agree with Redis on the same libm to the last bit.
        z -= (1.0 - x).powf(2.0) * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

/// `hllCount` from a register histogram.
fn count_from_histogram(reghisto: &[u32; 64]) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut z = m * hll_tau((m - f64::from(reghisto[(HLL_Q + 1) as usize])) / m);
    for j in (1..=HLL_Q as usize).rev() {
        z += f64::from(reghisto[j]);
        z *= 0.5;
    }
    z += m * hll_sigma(f64::from(reghisto[0]) / m);
    // llroundl: round half away from zero.
    (HLL_ALPHA_INF * m * m / z).round() as u64
}

fn histogram(v: &[u8]) -> Result<[u32; 64], HllError> {
    let mut h = [0u32; 64];
    match encoding(v) {
        HLL_DENSE => {
            let regs = &v[HLL_HDR_SIZE..];
            for i in 0..HLL_REGISTERS {
                h[usize::from(dense_get(regs, i))] += 1;
            }
        }
        HLL_SPARSE => {
            sparse_for_each(v, |_, len, val| h[usize::from(val)] += len as u32)?;
        }
        _ => return Err(HllError::Corrupted),
    }
    Ok(h)
}

/// `hllMerge`: `max[i] = max(max[i], register i of v)`.
fn merge_into(max: &mut [u8; HLL_REGISTERS], v: &[u8]) -> Result<(), HllError> {
    if encoding(v) == HLL_DENSE {
        let regs = &v[HLL_HDR_SIZE..];
        for (i, m) in max.iter_mut().enumerate() {
            let r = dense_get(regs, i);
            if r > *m {
                *m = r;
            }
        }
        Ok(())
    } else {
        sparse_for_each(v, |first, len, val| {
            if val != 0 {
                for m in &mut max[first..first + len] {
                    if val > *m {
                        *m = val;
                    }
                }
            }
        })
    }
}

/// The 16384 register values of a valid HLL (for debugging and tests).
pub fn registers(v: &[u8]) -> Result<Box<[u8; HLL_REGISTERS]>, HllError> {
    validate(v)?;
    let mut max = Box::new([0u8; HLL_REGISTERS]);
    merge_into(&mut max, v)?;
    Ok(max)
}

/// PFDEBUG TODENSE: converts a valid sparse HLL to dense in place;
/// false when it already was dense.
pub fn to_dense(v: &mut Vec<u8>) -> Result<bool, HllError> {
    validate(v)?;
    if is_dense(v) {
        return Ok(false);
    }
    sparse_to_dense(v)?;
    Ok(true)
}

/// PFSELFTEST: checks that the sparse and dense representations agree
/// register by register as elements are added, and that the estimate of
/// `n` distinct elements stays within a few standard errors of `n`.
pub fn self_test() -> Result<(), String> {
    let mut sparse = create();
    let mut dense = create();
    sparse_to_dense(&mut dense).map_err(|e| e.to_string())?;
    for n in 1..=20_000u64 {
        let e = n.to_le_bytes();
        pfadd(&mut sparse, &[e], usize::MAX).map_err(|e| e.to_string())?;
        pfadd(&mut dense, &[e], usize::MAX).map_err(|e| e.to_string())?;
        if n % 1000 == 0 {
            let (a, b) = (
                registers(&sparse).map_err(|e| e.to_string())?,
                registers(&dense).map_err(|e| e.to_string())?,
            );
            if a != b {
                return Err(format!(
                    "TESTFAILED sparse and dense differ after {n} elements"
                ));
            }
            let count = pfcount(&[&dense[..]]).map_err(|e| e.to_string())?;
            // Standard error 0.81%; allow five of them.
            let err = (count as f64 - n as f64).abs() / n as f64;
            if err > 5.0 * 0.0081 {
                return Err(format!("TESTFAILED too big error. card:{n} est:{count}"));
            }
        }
    }
    Ok(())
}

// -------------------------------------------------------------- commands

/// PFADD on an existing value: validates it, adds the elements (promoting
/// sparse to dense as Redis does) and invalidates the cached cardinality
/// if anything changed. Returns whether the value changed (the `:1`/`:0`
/// reply). On error the value may be partially updated; do not store it.
pub fn pfadd<E: AsRef<[u8]>>(
    value: &mut Vec<u8>,
    elements: &[E],
    sparse_max_bytes: usize,
) -> Result<bool, HllError> {
    validate(value)?;
    let mut updated = false;
    for e in elements {
        updated |= add_element(value, e.as_ref(), sparse_max_bytes)?;
    }
    if updated {
        invalidate_cache(value);
    }
    Ok(updated)
}

/// PFADD on a missing key: the value to store (the reply is always `:1`).
pub fn pfadd_new<E: AsRef<[u8]>>(elements: &[E], sparse_max_bytes: usize) -> Vec<u8> {
    let mut v = create();
    for e in elements {
        // A freshly created value is well formed, so adding cannot fail;
        // should it ever, the element is skipped rather than panicking.
        let _ = add_element(&mut v, e.as_ref(), sparse_max_bytes);
    }
    // Creation itself counts as an update in Redis, which invalidates the
    // cache even with no elements.
    invalidate_cache(&mut v);
    v
}

/// PFCOUNT over the given existing values (missing keys are simply left
/// out). One value: its cached cardinality if valid, else computed. Several:
/// the cardinality of their union, never cached. Does not modify anything;
/// see [`pfcount_cached`] for the single-key form that refreshes the cache.
pub fn pfcount(values: &[&[u8]]) -> Result<u64, HllError> {
    match values {
        [] => Ok(0),
        [one] => {
            validate(one)?;
            if cache_valid(one) {
                return Ok(cached_card(one));
            }
            Ok(count_from_histogram(&histogram(one)?))
        }
        many => {
            let mut max = Box::new([0u8; HLL_REGISTERS]);
            for v in many {
                validate(v)?;
                merge_into(&mut max, v)?;
            }
            let mut h = [0u32; 64];
            for &r in max.iter() {
                h[usize::from(r)] += 1;
            }
            Ok(count_from_histogram(&h))
        }
    }
}

/// Single-key PFCOUNT exactly as Redis does it: if the cached cardinality
/// is stale it is recomputed and written into the header. Returns the count
/// and whether `value` changed (Redis then marks the key modified and
/// propagates it, so the caller should store it back).
pub fn pfcount_cached(value: &mut [u8]) -> Result<(u64, bool), HllError> {
    validate(value)?;
    if cache_valid(value) {
        return Ok((cached_card(value), false));
    }
    let card = count_from_histogram(&histogram(value)?);
    set_cached_card(value, card);
    Ok((card, true))
}

/// PFMERGE: `dest` is the destination's current value if the key exists
/// (Redis also merges it, as it is `argv[1]`), `sources` the values of the
/// existing source keys. Returns the value to store at the destination.
/// The result is dense if any input was dense, otherwise sparse as long as
/// it fits `sparse_max_bytes`.
pub fn pfmerge(
    dest: Option<&[u8]>,
    sources: &[&[u8]],
    sparse_max_bytes: usize,
) -> Result<Vec<u8>, HllError> {
    let mut max = Box::new([0u8; HLL_REGISTERS]);
    let mut use_dense = false;
    for v in dest.iter().chain(sources.iter()) {
        validate(v)?;
        if encoding(v) == HLL_DENSE {
            use_dense = true;
        }
        merge_into(&mut max, v)?;
    }
    let mut out = match dest {
        Some(d) => d.to_vec(),
        None => create(),
    };
    if use_dense {
        sparse_to_dense(&mut out)?;
    }
    for (j, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        match encoding(&out) {
            HLL_DENSE => {
                dense_set(&mut out[HLL_HDR_SIZE..], j, m);
            }
            _ => {
                // Redis ignores errors here: the destination was validated
                // and merged above, so it cannot be corrupt at this point.
                let _ = sparse_set(&mut out, j, m, sparse_max_bytes);
            }
        }
    }
    invalidate_cache(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hll_layout() {
        let v = create();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[..5], b"HYLL\x01");
        // One XZERO of 16384: 01 111111 11111111
        assert_eq!(&v[16..], &[0x7f, 0xff]);
        assert_eq!(pfcount(&[&v]), Ok(0));
    }

    #[test]
    fn validation_errors() {
        assert_eq!(validate(b"HYLL"), Err(HllError::NotHll));
        assert_eq!(validate(b"not an hll at all"), Err(HllError::NotHll));
        let mut v = create();
        v[4] = 2;
        assert_eq!(validate(&v), Err(HllError::NotHll));
        let mut v = create();
        v[4] = 0; // dense with the wrong size
        assert_eq!(validate(&v), Err(HllError::NotHll));
        assert_eq!(
            HllError::NotHll.to_string(),
            "WRONGTYPE Key is not a valid HyperLogLog string value."
        );
        assert_eq!(
            HllError::Corrupted.to_string(),
            "INVALIDOBJ Corrupted HLL object detected"
        );
    }

    #[test]
    fn corrupted_sparse_detected() {
        let mut v = create();
        v[16] = 0x7e; // XZERO of 16129: does not cover all registers
        v[15] |= 0x80; // stale cache, so PFCOUNT walks the opcodes
        assert_eq!(pfcount(&[&v]), Err(HllError::Corrupted));
        assert_eq!(pfcount(&[&v, &create()]), Err(HllError::Corrupted));
        assert_eq!(
            pfmerge(None, &[&v], DEFAULT_SPARSE_MAX_BYTES),
            Err(HllError::Corrupted)
        );
        let mut w = v.clone();
        assert_eq!(pfcount_cached(&mut w), Err(HllError::Corrupted));
        // A register past the covered range cannot be located for update.
        let mut w = create();
        w.truncate(16);
        w.push(0x00); // ZERO of 1 register only
        assert_eq!(
            sparse_set(&mut w, 100, 3, DEFAULT_SPARSE_MAX_BYTES),
            Err(HllError::Corrupted)
        );
    }

    #[test]
    fn sparse_promotes_to_dense() {
        let mut v = create();
        let elems: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
        pfadd(&mut v, &elems, DEFAULT_SPARSE_MAX_BYTES).expect("valid");
        assert!(is_dense(&v));
        assert_eq!(v.len(), HLL_DENSE_SIZE);
        let n = pfcount(&[&v]).expect("valid");
        assert!((4800..5200).contains(&n), "{n}");
    }

    #[test]
    fn cache_roundtrip() {
        let mut v = pfadd_new(&[b"a", b"b", b"c"], DEFAULT_SPARSE_MAX_BYTES);
        assert!(!cache_valid(&v));
        let (n, changed) = pfcount_cached(&mut v).expect("valid");
        assert_eq!((n, changed), (3, true));
        assert!(cache_valid(&v));
        assert_eq!(pfcount_cached(&mut v), Ok((3, false)));
        assert_eq!(pfadd(&mut v, &[b"a"], DEFAULT_SPARSE_MAX_BYTES), Ok(false));
        assert!(cache_valid(&v));
        assert_eq!(pfadd(&mut v, &[b"d"], DEFAULT_SPARSE_MAX_BYTES), Ok(true));
        assert!(!cache_valid(&v));
    }

    #[test]
    fn merge_union() {
        let a = pfadd_new(
            &(0..100).map(|i| format!("a{i}")).collect::<Vec<_>>(),
            DEFAULT_SPARSE_MAX_BYTES,
        );
        let b = pfadd_new(
            &(0..100).map(|i| format!("b{i}")).collect::<Vec<_>>(),
            DEFAULT_SPARSE_MAX_BYTES,
        );
        let m = pfmerge(None, &[&a, &b], DEFAULT_SPARSE_MAX_BYTES).expect("valid");
        assert!(!is_dense(&m));
        let n = pfcount(&[&m]).expect("valid");
        assert_eq!(n, pfcount(&[&a, &b]).expect("valid"));
        assert!((190..210).contains(&n), "{n}");
    }
}
