//! The blocking list and sorted-set commands: BLPOP BRPOP BLMOVE
//! BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP. Each is its non-blocking
//! twin (LPOP, LMOVE, LMPOP, ZPOPMIN, ZMPOP) run over the keys in order;
//! when none of them has anything it asks to wait
//! ([`ExecError::Block`], see `crate::blocking`) or, where it may not
//! wait (MULTI, scripts), answers as a timeout would.

use std::time::Duration;

use bytes::Bytes;

use crate::blocking::parse_timeout;
use crate::cmd::{list, zset};
use crate::db::{Block, CmdResult, Ctx, ExecError};
use crate::frame::Frame;
use crate::layout::KeyType;
use crate::parse::parse_i64_strict;
use list::End;

/// Nothing to serve: wait for `keys`, or answer `inline` where the
/// command may not block.
fn block(
    cx: &Ctx<'_>,
    keys: &[Bytes],
    timeout: Option<Duration>,
    timeout_reply: Frame,
    inline: Frame,
) -> CmdResult {
    if !cx.may_block {
        return Ok(inline);
    }
    Err(ExecError::Block(Box::new(Block {
        keys: keys.to_vec(),
        timeout,
        timeout_reply,
        rerun: None,
    })))
}

fn parse_end(arg: &[u8]) -> Result<End, ExecError> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Ok(End::Right)
    } else {
        Err(ExecError::syntax())
    }
}

/// On a re-run after a wake-up, the keys that do not hold another type
/// than `ty` (Redis serves a blocked client only from keys of the type it
/// waits for: a key turned into a string meanwhile is passed over, not an
/// error). On a first run, all of them.
async fn waitable(cx: &mut Ctx<'_>, keys: &[Bytes], ty: KeyType) -> Result<Vec<Bytes>, ExecError> {
    if !cx.rerun {
        return Ok(keys.to_vec());
    }
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        match cx.meta(k).await? {
            Some(m) if m.ty != ty => {}
            _ => out.push(k.clone()),
        }
    }
    Ok(out)
}

/// `argv` with the `numkeys key...` at `at` replaced by `keys`.
fn with_keys(argv: &[Bytes], at: usize, keys: &[Bytes]) -> Vec<Bytes> {
    let old = numkeys_keys(argv, at).len();
    let mut out = Vec::with_capacity(argv.len());
    out.extend_from_slice(&argv[..at]);
    out.push(Bytes::from(keys.len().to_string()));
    out.extend_from_slice(keys);
    out.extend_from_slice(&argv[at + 1 + old..]);
    out
}

/// The keys of a `numkeys key [key ...]` command whose numkeys is at
/// `argv[at]` (already validated by the non-blocking twin).
fn numkeys_keys(argv: &[Bytes], at: usize) -> &[Bytes] {
    let n = parse_i64_strict(&argv[at])
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let first = at + 1;
    &argv[first..first.saturating_add(n).min(argv.len())]
}

/// BLPOP / BRPOP key [key ...] timeout
pub async fn bpop(cx: &mut Ctx<'_>, argv: &[Bytes], end: End) -> CmdResult {
    let timeout = parse_timeout(&argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    if cx.wait_turn && cx.may_block {
        return block(cx, keys, timeout, Frame::NullArray, Frame::NullArray);
    }
    for key in waitable(cx, keys, KeyType::List).await? {
        let args = [argv[0].clone(), key.clone()];
        match list::lpop(cx, &args, end).await? {
            Frame::Null => continue,
            v => return Ok(Frame::Array(vec![Frame::Bulk(key.clone()), v])),
        }
    }
    block(cx, keys, timeout, Frame::NullArray, Frame::NullArray)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout, and
/// BRPOPLPUSH source destination timeout.
pub async fn blmove(cx: &mut Ctx<'_>, argv: &[Bytes], rpoplpush: bool) -> CmdResult {
    let (from, to, t) = if rpoplpush {
        (End::Right, End::Left, &argv[3])
    } else {
        (parse_end(&argv[3])?, parse_end(&argv[4])?, &argv[5])
    };
    let timeout = parse_timeout(t)?;
    if (cx.wait_turn && cx.may_block) || waitable(cx, &argv[1..2], KeyType::List).await?.is_empty()
    {
        return block(cx, &argv[1..2], timeout, Frame::NullArray, Frame::Null);
    }
    match list::lmove(cx, &argv[1], &argv[2], from, to).await? {
        // Redis answers a null bulk inside MULTI but a null array once a
        // real wait times out.
        Frame::Null => block(
            cx,
            std::slice::from_ref(&argv[1]),
            timeout,
            Frame::NullArray,
            Frame::Null,
        ),
        v => Ok(v),
    }
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub async fn blmpop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    blocking_mpop(cx, argv, KeyType::List).await
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub async fn bzmpop(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    blocking_mpop(cx, argv, KeyType::ZSet).await
}

/// BLMPOP (`ty` List) / BZMPOP (`ty` ZSet): LMPOP / ZMPOP, or wait.
async fn blocking_mpop(cx: &mut Ctx<'_>, argv: &[Bytes], ty: KeyType) -> CmdResult {
    let timeout = parse_timeout(&argv[1])?;
    let mut args = argv.to_vec();
    if cx.wait_turn && cx.may_block {
        let keys = numkeys_keys(argv, 2);
        if !keys.is_empty() {
            return block(cx, keys, timeout, Frame::NullArray, Frame::NullArray);
        }
    }
    if cx.rerun {
        let keys = waitable(cx, numkeys_keys(argv, 2), ty).await?;
        if keys.is_empty() {
            let all = numkeys_keys(argv, 2);
            return block(cx, all, timeout, Frame::NullArray, Frame::NullArray);
        }
        args = with_keys(argv, 2, &keys);
    }
    // LMPOP / ZMPOP read their arguments from index 1: skip the timeout.
    let popped = if ty == KeyType::List {
        list::lmpop(cx, &args[1..]).await?
    } else {
        zset::zmpop(cx, &args[1..]).await?
    };
    match popped {
        Frame::NullArray => block(
            cx,
            numkeys_keys(argv, 2),
            timeout,
            Frame::NullArray,
            Frame::NullArray,
        ),
        v => Ok(v),
    }
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
pub async fn bzpop(cx: &mut Ctx<'_>, argv: &[Bytes], max: bool) -> CmdResult {
    let timeout = parse_timeout(&argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    if cx.wait_turn && cx.may_block {
        return block(cx, keys, timeout, Frame::NullArray, Frame::NullArray);
    }
    for key in waitable(cx, keys, KeyType::ZSet).await? {
        let args = [argv[0].clone(), key.clone()];
        match zset::zpop(cx, &args, max).await? {
            Frame::Array(pair) if pair.len() == 2 => {
                let mut out = Vec::with_capacity(3);
                out.push(Frame::Bulk(key.clone()));
                out.extend(pair);
                return Ok(Frame::Array(out));
            }
            _ => continue,
        }
    }
    block(cx, keys, timeout, Frame::NullArray, Frame::NullArray)
}
