//! The Redis commands over the data model ([`crate::layout`]), one module
//! per data type, and [`dispatch`], which runs one command inside the
//! transaction of a [`Ctx`]. Every command validates its arguments and
//! types before buffering any write, so a command that replies with an
//! error leaves the transaction as it found it (this matters inside EXEC,
//! where later commands still run and everything commits together).

pub mod admin;
pub mod hash;
pub mod hyperloglog;
pub mod keyspace;
pub mod list;
pub mod sample;
pub mod set;
pub mod strings;
pub mod zset;

use bytes::Bytes;

use crate::db::{int, CmdResult, Ctx, ExecError};
use hash::Part;
use list::End;
use set::SetOp;
use zset::{RangeCmd, ZOp};

/// Commands that need no transaction (answered from node-local state).
pub fn needs_txn(name: &str) -> bool {
    !matches!(
        name,
        "config|get"
            | "config|set"
            | "config|resetstat"
            | "config|rewrite"
            | "ping"
            | "echo"
            | "time"
            | "select"
            | "unwatch"
    ) && is_supported(name)
}

/// Commands of the command table this front end does not implement yet.
pub fn is_supported(name: &str) -> bool {
    let base = name.split('|').next().unwrap_or(name);
    !(base.starts_with('x')
        || base.starts_with("eval")
        || base == "script"
        || base.starts_with('b')
        || matches!(
            base,
            "subscribe"
                | "unsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "ssubscribe"
                | "sunsubscribe"
                | "publish"
                | "spublish"
                | "pubsub"
        ))
}

/// Runs one command (`name` is the command table's full name, e.g.
/// `get` or `object|encoding`) in `cx`'s transaction.
pub async fn dispatch(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    match name {
        // Strings.
        "get" => strings::get(cx, argv).await,
        "set" => strings::set(cx, argv).await,
        "setnx" => strings::setnx(cx, argv).await,
        "setex" => strings::setex(cx, argv, true).await,
        "psetex" => strings::setex(cx, argv, false).await,
        "getex" => strings::getex(cx, argv).await,
        "getdel" => strings::getdel(cx, argv).await,
        "getset" => strings::getset(cx, argv).await,
        "mget" => strings::mget(cx, argv).await,
        "mset" => strings::mset(cx, argv).await,
        "msetnx" => strings::msetnx(cx, argv).await,
        "incr" => strings::incr_by(cx, &argv[1], 1).await,
        "decr" => strings::incr_by(cx, &argv[1], -1).await,
        "incrby" => strings::incrby(cx, argv).await,
        "decrby" => strings::decrby(cx, argv).await,
        "incrbyfloat" => strings::incrbyfloat(cx, argv).await,
        "append" => strings::append(cx, argv).await,
        "strlen" => strings::strlen(cx, argv).await,
        "getrange" | "substr" => strings::getrange(cx, argv).await,
        "setrange" => strings::setrange(cx, argv).await,
        "lcs" => strings::lcs(cx, argv).await,
        // Keys and expiry.
        "del" | "unlink" => keyspace::del(cx, argv).await,
        "exists" | "touch" => keyspace::exists(cx, argv).await,
        "type" => keyspace::type_(cx, argv).await,
        "rename" => keyspace::rename(cx, argv, false).await,
        "renamenx" => keyspace::rename(cx, argv, true).await,
        "copy" => keyspace::copy(cx, argv).await,
        "keys" => keyspace::keys(cx, argv).await,
        "scan" => keyspace::scan(cx, argv).await,
        "randomkey" => keyspace::randomkey(cx).await,
        "dbsize" => {
            let (keys, _) = keyspace::dbsize(cx).await?;
            Ok(int(keys as usize))
        }
        "flushdb" | "flushall" => {
            keyspace::check_flush_args(argv)?;
            keyspace::flush_some(cx, usize::MAX).await?;
            Ok(crate::frame::Frame::ok())
        }
        "object|encoding" | "object|freq" | "object|idletime" | "object|refcount" => {
            keyspace::object(cx, name, argv).await
        }
        "expire" => keyspace::expire(cx, argv, name, true, false).await,
        "pexpire" => keyspace::expire(cx, argv, name, false, false).await,
        "expireat" => keyspace::expire(cx, argv, name, true, true).await,
        "pexpireat" => keyspace::expire(cx, argv, name, false, true).await,
        "persist" => keyspace::persist(cx, argv).await,
        "ttl" => keyspace::ttl(cx, argv, false, false).await,
        "pttl" => keyspace::ttl(cx, argv, true, false).await,
        "expiretime" => keyspace::ttl(cx, argv, false, true).await,
        "pexpiretime" => keyspace::ttl(cx, argv, true, true).await,
        // Hashes.
        "hset" => hash::hset(cx, argv, false).await,
        "hmset" => hash::hset(cx, argv, true).await,
        "hsetnx" => hash::hsetnx(cx, argv).await,
        "hget" => hash::hget(cx, argv).await,
        "hmget" => hash::hmget(cx, argv).await,
        "hdel" => hash::hdel(cx, argv).await,
        "hlen" => hash::hlen(cx, argv).await,
        "hstrlen" => hash::hstrlen(cx, argv).await,
        "hexists" => hash::hexists(cx, argv).await,
        "hkeys" => hash::hgetall(cx, argv, Part::Keys).await,
        "hvals" => hash::hgetall(cx, argv, Part::Vals).await,
        "hgetall" => hash::hgetall(cx, argv, Part::All).await,
        "hincrby" => hash::hincrby(cx, argv).await,
        "hincrbyfloat" => hash::hincrbyfloat(cx, argv).await,
        "hrandfield" => hash::hrandfield(cx, argv).await,
        "hscan" => hash::hscan(cx, argv).await,
        "hexpire" => hash::hexpire(cx, argv, true, false).await,
        "hpexpire" => hash::hexpire(cx, argv, false, false).await,
        "hexpireat" => hash::hexpire(cx, argv, true, true).await,
        "hpexpireat" => hash::hexpire(cx, argv, false, true).await,
        "httl" => hash::httl(cx, argv, false, false).await,
        "hpttl" => hash::httl(cx, argv, true, false).await,
        "hexpiretime" => hash::httl(cx, argv, false, true).await,
        "hpexpiretime" => hash::httl(cx, argv, true, true).await,
        "hpersist" => hash::hpersist(cx, argv).await,
        // Lists.
        "lpush" => list::lpush(cx, argv, End::Left, false).await,
        "rpush" => list::lpush(cx, argv, End::Right, false).await,
        "lpushx" => list::lpush(cx, argv, End::Left, true).await,
        "rpushx" => list::lpush(cx, argv, End::Right, true).await,
        "lpop" => list::lpop(cx, argv, End::Left).await,
        "rpop" => list::lpop(cx, argv, End::Right).await,
        "llen" => list::llen(cx, argv).await,
        "lrange" => list::lrange(cx, argv).await,
        "lindex" => list::lindex(cx, argv).await,
        "lset" => list::lset(cx, argv).await,
        "lrem" => list::lrem(cx, argv).await,
        "ltrim" => list::ltrim(cx, argv).await,
        "linsert" => list::linsert(cx, argv).await,
        "lpos" => list::lpos(cx, argv).await,
        "lmove" => list::lmove_cmd(cx, argv).await,
        "rpoplpush" => list::lmove(cx, &argv[1], &argv[2], End::Right, End::Left).await,
        "lmpop" => list::lmpop(cx, argv).await,
        // Sets.
        "sadd" => set::sadd(cx, argv).await,
        "srem" => set::srem(cx, argv).await,
        "scard" => set::scard(cx, argv).await,
        "sismember" => set::sismember(cx, argv).await,
        "smismember" => set::smismember(cx, argv).await,
        "smembers" => set::smembers(cx, argv).await,
        "spop" => set::spop(cx, argv).await,
        "srandmember" => set::srandmember(cx, argv).await,
        "smove" => set::smove(cx, argv).await,
        "sinter" => set::sop(cx, argv, SetOp::Inter).await,
        "sunion" => set::sop(cx, argv, SetOp::Union).await,
        "sdiff" => set::sop(cx, argv, SetOp::Diff).await,
        "sinterstore" => set::sop_store(cx, argv, SetOp::Inter).await,
        "sunionstore" => set::sop_store(cx, argv, SetOp::Union).await,
        "sdiffstore" => set::sop_store(cx, argv, SetOp::Diff).await,
        "sintercard" => set::sintercard(cx, argv).await,
        "sscan" => set::sscan(cx, argv).await,
        // Sorted sets.
        "zadd" => zset::zadd(cx, argv).await,
        "zincrby" => zset::zincrby(cx, argv).await,
        "zrem" => zset::zrem(cx, argv).await,
        "zcard" => zset::zcard(cx, argv).await,
        "zscore" => zset::zscore(cx, argv).await,
        "zmscore" => zset::zmscore(cx, argv).await,
        "zcount" => zset::zcount(cx, argv).await,
        "zlexcount" => zset::zlexcount(cx, argv).await,
        "zrank" => zset::zrank(cx, argv, false).await,
        "zrevrank" => zset::zrank(cx, argv, true).await,
        "zrange" => zset::zrange(cx, argv, RangeCmd::Zrange).await,
        "zrangestore" => zset::zrange(cx, argv, RangeCmd::Store).await,
        "zrevrange" => zset::zrange(cx, argv, RangeCmd::RevRank).await,
        "zrangebyscore" => zset::zrange(cx, argv, RangeCmd::ByScore).await,
        "zrevrangebyscore" => zset::zrange(cx, argv, RangeCmd::RevByScore).await,
        "zrangebylex" => zset::zrange(cx, argv, RangeCmd::ByLex).await,
        "zrevrangebylex" => zset::zrange(cx, argv, RangeCmd::RevByLex).await,
        "zremrangebyrank" => zset::zremrange(cx, argv, b'r').await,
        "zremrangebyscore" => zset::zremrange(cx, argv, b's').await,
        "zremrangebylex" => zset::zremrange(cx, argv, b'l').await,
        "zpopmin" => zset::zpop(cx, argv, false).await,
        "zpopmax" => zset::zpop(cx, argv, true).await,
        "zmpop" => zset::zmpop(cx, argv).await,
        "zrandmember" => zset::zrandmember(cx, argv).await,
        "zunion" => zset::zsetop(cx, argv, ZOp::Union, None, false).await,
        "zinter" => zset::zsetop(cx, argv, ZOp::Inter, None, false).await,
        "zdiff" => zset::zsetop(cx, argv, ZOp::Diff, None, false).await,
        "zunionstore" => zset::zsetop(cx, argv, ZOp::Union, Some(&argv[1]), false).await,
        "zinterstore" => zset::zsetop(cx, argv, ZOp::Inter, Some(&argv[1]), false).await,
        "zdiffstore" => zset::zsetop(cx, argv, ZOp::Diff, Some(&argv[1]), false).await,
        "zintercard" => zset::zsetop(cx, argv, ZOp::Inter, None, true).await,
        "zscan" => zset::zscan(cx, argv).await,
        // HyperLogLog.
        "pfadd" => hyperloglog::pfadd(cx, argv).await,
        "pfcount" => hyperloglog::pfcount(cx, argv).await,
        "pfmerge" => hyperloglog::pfmerge(cx, argv).await,
        // Server.
        "info" => admin::info(cx, argv).await,
        "config|get" | "config|set" | "config|resetstat" | "config|rewrite" => {
            admin::config(cx, name, argv)
        }
        "unwatch" => Ok(crate::frame::Frame::ok()),
        "ping" | "echo" | "time" | "select" => admin::connection_cmd(name, argv),
        _ if !is_supported(name) => Err(unsupported(name)),
        _ => admin::connection_cmd(name, argv),
    }
}

/// The reply for table commands not implemented yet.
pub fn unsupported(name: &str) -> ExecError {
    ExecError::err(format!(
        "'{}' is not supported by this Elastickv build yet",
        name.split('|').next().unwrap_or(name)
    ))
}
