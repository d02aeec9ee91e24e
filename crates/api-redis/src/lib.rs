//! Redis protocol front end of Elastickv: RESP2/RESP3 framing, buffered
//! connections with limits, argument parsing with Redis-exact errors, the
//! command table, storage-independent building blocks and a server
//! skeleton that hands parsed commands to a [`server::CommandHandler`]
//! implemented over the data plane.
//!
//! Module map (tokio mini-redis layering, with limits everywhere):
//!
//! * [`frame`]: the RESP value ([`Frame`]) and its RESP2/RESP3 encoder;
//! * [`resp`]: [`Limits`], the request decoder ([`RequestDecoder`],
//!   multibulk + inline, Redis's protocol error texts) and a general
//!   RESP3 frame parser with a cheap completeness check;
//! * [`connection`]: pipelined, buffered I/O over any tokio stream with
//!   query/output buffer limits and a write timeout;
//! * [`parse`]: [`Command`] and [`ArgCursor`] with Redis-exact argument
//!   errors;
//! * [`command_table`]: Redis 7.0's command metadata, dispatch errors and
//!   the COMMAND family of replies;
//! * [`server`]: accept loop, per-connection task, built-in connection
//!   commands, AUTH/HELLO, MULTI queueing;
//! * [`glob`], [`hll`], [`stream_id`], [`float`]: storage-independent
//!   helpers reproducing Redis's behaviour byte for byte;
//! * [`layout`]: the data model (how Redis keys, collections, versions
//!   and expiry map onto the ordered transactional KV store);
//! * [`store`]: the transaction API the commands run on (implemented by
//!   `elastickv_kv::Kv`, and by [`memstore`] for tests);
//! * [`db`]: the per-command context (typed metadata/element access,
//!   paging, reply budget, errors);
//! * [`cmd`]: the commands, one module per data type;
//! * [`shared`]: node-wide CONFIG table, SCAN cursors, INFO counters;
//! * [`notify`]: keyspace notifications (`notify-keyspace-events`),
//!   published after each write's commit;
//! * [`pubsub`]: SUBSCRIBE/PUBLISH, delivered cluster-wide through a
//!   [`pubsub::Broadcaster`] the node wires in;
//! * [`blocking`]: blocked clients (BLPOP, BZPOPMIN, ...), their queues
//!   per key and their wake-ups;
//! * [`rdb`]: the DUMP/RESTORE payload (Redis's RDB value encoding);
//! * [`reclaim`]: background removal of expired keys and dead collection
//!   versions;
//! * [`batch`]: per-key batching of write commands into one transaction;
//! * [`script`]: Lua scripting (EVAL/EVALSHA/SCRIPT) over mlua;
//! * [`handler`]: the [`server::CommandHandler`] (retries, MULTI/EXEC,
//!   WATCH) and [`serve`], which starts the whole front end.

pub mod batch;
pub mod blocking;
pub mod cmd;
pub mod command_table;
pub mod connection;
pub mod db;
pub mod float;
pub mod frame;
pub mod glob;
pub mod handler;
pub mod hll;
pub mod layout;
pub mod memstore;
pub mod notify;
pub mod parse;
pub mod procstat;
pub mod pubsub;
pub mod rdb;
pub mod reclaim;
pub mod resp;
pub mod script;
pub mod server;
pub mod shared;
pub mod store;
pub mod stream_id;

pub use frame::{Frame, Protocol, Reply};
pub use handler::{serve, serve_node, HandlerConfig, RedisHandler};
pub use parse::{ArgCursor, CmdError, Command};
pub use resp::{Limits, ProtocolError, RequestDecoder};
pub use server::{
    ClientState, CommandHandler, Server, ServerConfig, ServerStats, WatchState, WatchedKey,
};
pub use store::{Store, Tx};
