//! The Redis commands over the data model ([`crate::layout`]), one module
//! per data type, and [`dispatch`], which runs one command inside the
//! transaction of a [`Ctx`]. Every command validates its arguments and
//! types before buffering any write, so a command that replies with an
//! error leaves the transaction as it found it (this matters inside EXEC,
//! where later commands still run and everything commits together).

pub mod admin;
pub mod bitmap;
pub mod blocking;
pub mod dump;
pub mod hash;
pub mod hyperloglog;
pub mod keyspace;
pub mod list;
pub mod sample;
pub mod set;
pub mod sort;
pub mod stream;
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
            | "publish"
            | "spublish"
            | "pubsub|channels"
            | "pubsub|numsub"
            | "pubsub|numpat"
            | "pubsub|shardchannels"
            | "pubsub|shardnumsub"
    )
}

/// Runs one command (`name` is the command table's full name, e.g.
/// `get` or `object|encoding`) in `cx`'s transaction.
///
/// Each command's future is boxed: the match would otherwise be as large
/// as the largest command's state machine, and debug builds copy such
/// futures on the stack.
pub async fn dispatch(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    // Redis reports a key miss only for the lookups of read-only commands.
    let outer = cx.miss_events;
    cx.miss_events = crate::notify::enabled(cx.shared, crate::notify::KEY_MISS)
        && crate::command_table::lookup_full_name(name.as_bytes())
            .is_some_and(|s| s.has(crate::command_table::CmdFlags::READONLY));
    let result = run(cx, name, argv).await;
    cx.miss_events = outer;
    result
}

async fn run(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    match name {
        // Strings.
        "get" => Box::pin(strings::get(cx, argv)).await,
        "set" => Box::pin(strings::set(cx, argv)).await,
        "setnx" => Box::pin(strings::setnx(cx, argv)).await,
        "setex" => Box::pin(strings::setex(cx, argv, true)).await,
        "psetex" => Box::pin(strings::setex(cx, argv, false)).await,
        "getex" => Box::pin(strings::getex(cx, argv)).await,
        "getdel" => Box::pin(strings::getdel(cx, argv)).await,
        "getset" => Box::pin(strings::getset(cx, argv)).await,
        "mget" => Box::pin(strings::mget(cx, argv)).await,
        "mset" => Box::pin(strings::mset(cx, argv)).await,
        "msetnx" => Box::pin(strings::msetnx(cx, argv)).await,
        "incr" => Box::pin(strings::incr_by(cx, &argv[1], 1)).await,
        "decr" => Box::pin(strings::incr_by(cx, &argv[1], -1)).await,
        "incrby" => Box::pin(strings::incrby(cx, argv)).await,
        "decrby" => Box::pin(strings::decrby(cx, argv)).await,
        "incrbyfloat" => Box::pin(strings::incrbyfloat(cx, argv)).await,
        "append" => Box::pin(strings::append(cx, argv)).await,
        "strlen" => Box::pin(strings::strlen(cx, argv)).await,
        "getrange" | "substr" => Box::pin(strings::getrange(cx, argv)).await,
        "setrange" => Box::pin(strings::setrange(cx, argv)).await,
        "lcs" => Box::pin(strings::lcs(cx, argv)).await,
        "sort" => Box::pin(sort::sort(cx, argv, false)).await,
        "sort_ro" => Box::pin(sort::sort(cx, argv, true)).await,
        "memory|usage" => Box::pin(keyspace::memory_usage(cx, argv)).await,
        // Bitmaps.
        "setbit" => Box::pin(bitmap::setbit(cx, argv)).await,
        "getbit" => Box::pin(bitmap::getbit(cx, argv)).await,
        "bitcount" => Box::pin(bitmap::bitcount(cx, argv)).await,
        "bitpos" => Box::pin(bitmap::bitpos(cx, argv)).await,
        "bitop" => Box::pin(bitmap::bitop(cx, argv)).await,
        "bitfield" => Box::pin(bitmap::bitfield(cx, argv, false)).await,
        "bitfield_ro" => Box::pin(bitmap::bitfield(cx, argv, true)).await,
        // Keys and expiry.
        "del" | "unlink" => Box::pin(keyspace::del(cx, argv)).await,
        "exists" | "touch" => Box::pin(keyspace::exists(cx, argv)).await,
        "type" => Box::pin(keyspace::type_(cx, argv)).await,
        "rename" => Box::pin(keyspace::rename(cx, argv, false)).await,
        "renamenx" => Box::pin(keyspace::rename(cx, argv, true)).await,
        "copy" => Box::pin(keyspace::copy(cx, argv)).await,
        "move" => Box::pin(keyspace::move_(cx, argv)).await,
        "swapdb" => Box::pin(keyspace::swapdb(cx, argv)).await,
        "dump" => Box::pin(dump::dump(cx, argv)).await,
        "restore" => Box::pin(dump::restore(cx, argv)).await,
        "keys" => Box::pin(keyspace::keys(cx, argv)).await,
        "scan" => Box::pin(keyspace::scan(cx, argv)).await,
        "randomkey" => Box::pin(keyspace::randomkey(cx)).await,
        "dbsize" => {
            let (keys, _) = Box::pin(keyspace::dbsize(cx)).await?;
            Ok(int(keys as usize))
        }
        "flushdb" | "flushall" => {
            keyspace::check_flush_args(argv)?;
            Box::pin(keyspace::flush_some(cx, usize::MAX, name == "flushall")).await?;
            Ok(crate::frame::Frame::ok())
        }
        "object|encoding" | "object|freq" | "object|idletime" | "object|refcount" => {
            Box::pin(keyspace::object(cx, name, argv)).await
        }
        "expire" => Box::pin(keyspace::expire(cx, argv, name, true, false)).await,
        "pexpire" => Box::pin(keyspace::expire(cx, argv, name, false, false)).await,
        "expireat" => Box::pin(keyspace::expire(cx, argv, name, true, true)).await,
        "pexpireat" => Box::pin(keyspace::expire(cx, argv, name, false, true)).await,
        "persist" => Box::pin(keyspace::persist(cx, argv)).await,
        "ttl" => Box::pin(keyspace::ttl(cx, argv, false, false)).await,
        "pttl" => Box::pin(keyspace::ttl(cx, argv, true, false)).await,
        "expiretime" => Box::pin(keyspace::ttl(cx, argv, false, true)).await,
        "pexpiretime" => Box::pin(keyspace::ttl(cx, argv, true, true)).await,
        // Hashes.
        "hset" => Box::pin(hash::hset(cx, argv, false)).await,
        "hmset" => Box::pin(hash::hset(cx, argv, true)).await,
        "hsetnx" => Box::pin(hash::hsetnx(cx, argv)).await,
        "hget" => Box::pin(hash::hget(cx, argv)).await,
        "hmget" => Box::pin(hash::hmget(cx, argv)).await,
        "hdel" => Box::pin(hash::hdel(cx, argv)).await,
        "hlen" => Box::pin(hash::hlen(cx, argv)).await,
        "hstrlen" => Box::pin(hash::hstrlen(cx, argv)).await,
        "hexists" => Box::pin(hash::hexists(cx, argv)).await,
        "hkeys" => Box::pin(hash::hgetall(cx, argv, Part::Keys)).await,
        "hvals" => Box::pin(hash::hgetall(cx, argv, Part::Vals)).await,
        "hgetall" => Box::pin(hash::hgetall(cx, argv, Part::All)).await,
        "hincrby" => Box::pin(hash::hincrby(cx, argv)).await,
        "hincrbyfloat" => Box::pin(hash::hincrbyfloat(cx, argv)).await,
        "hrandfield" => Box::pin(hash::hrandfield(cx, argv)).await,
        "hscan" => Box::pin(hash::hscan(cx, argv)).await,
        "hexpire" => Box::pin(hash::hexpire(cx, argv, true, false)).await,
        "hpexpire" => Box::pin(hash::hexpire(cx, argv, false, false)).await,
        "hexpireat" => Box::pin(hash::hexpire(cx, argv, true, true)).await,
        "hpexpireat" => Box::pin(hash::hexpire(cx, argv, false, true)).await,
        "httl" => Box::pin(hash::httl(cx, argv, false, false)).await,
        "hpttl" => Box::pin(hash::httl(cx, argv, true, false)).await,
        "hexpiretime" => Box::pin(hash::httl(cx, argv, false, true)).await,
        "hpexpiretime" => Box::pin(hash::httl(cx, argv, true, true)).await,
        "hpersist" => Box::pin(hash::hpersist(cx, argv)).await,
        // Lists.
        "lpush" => Box::pin(list::lpush(cx, argv, End::Left, false)).await,
        "rpush" => Box::pin(list::lpush(cx, argv, End::Right, false)).await,
        "lpushx" => Box::pin(list::lpush(cx, argv, End::Left, true)).await,
        "rpushx" => Box::pin(list::lpush(cx, argv, End::Right, true)).await,
        "lpop" => Box::pin(list::lpop(cx, argv, End::Left)).await,
        "rpop" => Box::pin(list::lpop(cx, argv, End::Right)).await,
        "llen" => Box::pin(list::llen(cx, argv)).await,
        "lrange" => Box::pin(list::lrange(cx, argv)).await,
        "lindex" => Box::pin(list::lindex(cx, argv)).await,
        "lset" => Box::pin(list::lset(cx, argv)).await,
        "lrem" => Box::pin(list::lrem(cx, argv)).await,
        "ltrim" => Box::pin(list::ltrim(cx, argv)).await,
        "linsert" => Box::pin(list::linsert(cx, argv)).await,
        "lpos" => Box::pin(list::lpos(cx, argv)).await,
        "lmove" => Box::pin(list::lmove_cmd(cx, argv)).await,
        "rpoplpush" => Box::pin(list::lmove(cx, &argv[1], &argv[2], End::Right, End::Left)).await,
        "lmpop" => Box::pin(list::lmpop(cx, argv)).await,
        "blpop" => Box::pin(blocking::bpop(cx, argv, End::Left)).await,
        "brpop" => Box::pin(blocking::bpop(cx, argv, End::Right)).await,
        "blmove" => Box::pin(blocking::blmove(cx, argv, false)).await,
        "brpoplpush" => Box::pin(blocking::blmove(cx, argv, true)).await,
        "blmpop" => Box::pin(blocking::blmpop(cx, argv)).await,
        "bzpopmin" => Box::pin(blocking::bzpop(cx, argv, false)).await,
        "bzpopmax" => Box::pin(blocking::bzpop(cx, argv, true)).await,
        "bzmpop" => Box::pin(blocking::bzmpop(cx, argv)).await,
        // Sets.
        "sadd" => Box::pin(set::sadd(cx, argv)).await,
        "srem" => Box::pin(set::srem(cx, argv)).await,
        "scard" => Box::pin(set::scard(cx, argv)).await,
        "sismember" => Box::pin(set::sismember(cx, argv)).await,
        "smismember" => Box::pin(set::smismember(cx, argv)).await,
        "smembers" => Box::pin(set::smembers(cx, argv)).await,
        "spop" => Box::pin(set::spop(cx, argv)).await,
        "srandmember" => Box::pin(set::srandmember(cx, argv)).await,
        "smove" => Box::pin(set::smove(cx, argv)).await,
        "sinter" => Box::pin(set::sop(cx, argv, SetOp::Inter)).await,
        "sunion" => Box::pin(set::sop(cx, argv, SetOp::Union)).await,
        "sdiff" => Box::pin(set::sop(cx, argv, SetOp::Diff)).await,
        "sinterstore" => Box::pin(set::sop_store(cx, argv, SetOp::Inter)).await,
        "sunionstore" => Box::pin(set::sop_store(cx, argv, SetOp::Union)).await,
        "sdiffstore" => Box::pin(set::sop_store(cx, argv, SetOp::Diff)).await,
        "sintercard" => Box::pin(set::sintercard(cx, argv)).await,
        "sscan" => Box::pin(set::sscan(cx, argv)).await,
        // Sorted sets.
        "zadd" => Box::pin(zset::zadd(cx, argv)).await,
        "zincrby" => Box::pin(zset::zincrby(cx, argv)).await,
        "zrem" => Box::pin(zset::zrem(cx, argv)).await,
        "zcard" => Box::pin(zset::zcard(cx, argv)).await,
        "zscore" => Box::pin(zset::zscore(cx, argv)).await,
        "zmscore" => Box::pin(zset::zmscore(cx, argv)).await,
        "zcount" => Box::pin(zset::zcount(cx, argv)).await,
        "zlexcount" => Box::pin(zset::zlexcount(cx, argv)).await,
        "zrank" => Box::pin(zset::zrank(cx, argv, false)).await,
        "zrevrank" => Box::pin(zset::zrank(cx, argv, true)).await,
        "zrange" => Box::pin(zset::zrange(cx, argv, RangeCmd::Zrange)).await,
        "zrangestore" => Box::pin(zset::zrange(cx, argv, RangeCmd::Store)).await,
        "zrevrange" => Box::pin(zset::zrange(cx, argv, RangeCmd::RevRank)).await,
        "zrangebyscore" => Box::pin(zset::zrange(cx, argv, RangeCmd::ByScore)).await,
        "zrevrangebyscore" => Box::pin(zset::zrange(cx, argv, RangeCmd::RevByScore)).await,
        "zrangebylex" => Box::pin(zset::zrange(cx, argv, RangeCmd::ByLex)).await,
        "zrevrangebylex" => Box::pin(zset::zrange(cx, argv, RangeCmd::RevByLex)).await,
        "zremrangebyrank" => Box::pin(zset::zremrange(cx, argv, b'r')).await,
        "zremrangebyscore" => Box::pin(zset::zremrange(cx, argv, b's')).await,
        "zremrangebylex" => Box::pin(zset::zremrange(cx, argv, b'l')).await,
        "zpopmin" => Box::pin(zset::zpop(cx, argv, false)).await,
        "zpopmax" => Box::pin(zset::zpop(cx, argv, true)).await,
        "zmpop" => Box::pin(zset::zmpop(cx, argv)).await,
        "zrandmember" => Box::pin(zset::zrandmember(cx, argv)).await,
        "zunion" => Box::pin(zset::zsetop(cx, argv, ZOp::Union, None, false)).await,
        "zinter" => Box::pin(zset::zsetop(cx, argv, ZOp::Inter, None, false)).await,
        "zdiff" => Box::pin(zset::zsetop(cx, argv, ZOp::Diff, None, false)).await,
        "zunionstore" => Box::pin(zset::zsetop(cx, argv, ZOp::Union, Some(&argv[1]), false)).await,
        "zinterstore" => Box::pin(zset::zsetop(cx, argv, ZOp::Inter, Some(&argv[1]), false)).await,
        "zdiffstore" => Box::pin(zset::zsetop(cx, argv, ZOp::Diff, Some(&argv[1]), false)).await,
        "zintercard" => Box::pin(zset::zsetop(cx, argv, ZOp::Inter, None, true)).await,
        "zscan" => Box::pin(zset::zscan(cx, argv)).await,
        // Streams.
        "xadd" => Box::pin(stream::xadd(cx, argv)).await,
        "xtrim" => Box::pin(stream::xtrim(cx, argv)).await,
        "xlen" => Box::pin(stream::xlen(cx, argv)).await,
        "xrange" => Box::pin(stream::xrange(cx, argv, false)).await,
        "xrevrange" => Box::pin(stream::xrange(cx, argv, true)).await,
        "xdel" => Box::pin(stream::xdel(cx, argv)).await,
        "xsetid" => Box::pin(stream::xsetid(cx, argv)).await,
        "xread" => Box::pin(stream::xread(cx, argv)).await,
        "xreadgroup" => Box::pin(stream::xreadgroup(cx, argv)).await,
        "xack" => Box::pin(stream::xack(cx, argv)).await,
        "xpending" => Box::pin(stream::xpending(cx, argv)).await,
        "xclaim" => Box::pin(stream::xclaim(cx, argv)).await,
        "xautoclaim" => Box::pin(stream::xautoclaim(cx, argv)).await,
        "xgroup|create" => Box::pin(stream::xgroup_create_setid(cx, argv, true)).await,
        "xgroup|setid" => Box::pin(stream::xgroup_create_setid(cx, argv, false)).await,
        "xgroup|destroy" => Box::pin(stream::xgroup_destroy(cx, argv)).await,
        "xgroup|createconsumer" => Box::pin(stream::xgroup_createconsumer(cx, argv)).await,
        "xgroup|delconsumer" => Box::pin(stream::xgroup_delconsumer(cx, argv)).await,
        "xinfo|stream" => Box::pin(stream::xinfo_stream(cx, argv)).await,
        "xinfo|groups" => Box::pin(stream::xinfo_groups(cx, argv)).await,
        "xinfo|consumers" => Box::pin(stream::xinfo_consumers(cx, argv)).await,
        // HyperLogLog.
        "pfadd" => Box::pin(hyperloglog::pfadd(cx, argv)).await,
        "pfcount" => Box::pin(hyperloglog::pfcount(cx, argv)).await,
        "pfmerge" => Box::pin(hyperloglog::pfmerge(cx, argv)).await,
        "pfdebug" => Box::pin(hyperloglog::pfdebug(cx, argv)).await,
        "pfselftest" => hyperloglog::pfselftest(),
        // Scripting.
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => {
            Box::pin(crate::script::eval(cx, name, argv)).await
        }
        "script|load" | "script|exists" | "script|flush" | "script|kill" => {
            crate::script::script_cmd(cx, name, argv)
        }
        "fcall" | "fcall_ro" => Box::pin(crate::script::fcall(cx, name, argv)).await,
        _ if name.starts_with("function|") => {
            Box::pin(crate::script::function_cmd(cx.shared, name, argv)).await
        }
        // Server.
        "info" => Box::pin(admin::info(cx, argv)).await,
        "config|get" | "config|set" | "config|resetstat" | "config|rewrite" => {
            admin::config(cx, name, argv)
        }
        "unwatch" => Ok(crate::frame::Frame::ok()),
        "publish" => Ok(crate::frame::Frame::Integer(
            crate::pubsub::publish(
                &cx.shared.hub,
                cx.shared.broadcaster.as_deref(),
                &argv[1],
                &argv[2],
            )
            .await,
        )),
        "spublish" => Ok(crate::frame::Frame::Integer(
            crate::pubsub::publish_shard(
                &cx.shared.hub,
                cx.shared.broadcaster.as_deref(),
                &argv[1],
                &argv[2],
            )
            .await,
        )),
        "pubsub|channels"
        | "pubsub|numsub"
        | "pubsub|numpat"
        | "pubsub|shardchannels"
        | "pubsub|shardnumsub" => Ok(crate::pubsub::pubsub_command(
            &cx.shared.hub,
            cx.shared.broadcaster.as_deref(),
            name,
            argv,
        )
        .await),
        "select" => {
            cx.db = keyspace::parse_db_index(&argv[1])?;
            Ok(crate::frame::Frame::ok())
        }
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
