//! Redis protocol front end of Elastickv: RESP2/RESP3 framing, buffered
//! connections with limits, argument parsing with Redis-exact errors, the
//! command table, storage-independent building blocks (glob matching,
//! HyperLogLog with Redis's exact encoding, stream IDs, Redis number
//! formatting) and a server skeleton that hands parsed commands to a
//! [`server::CommandHandler`] implemented over the data plane.

pub mod command_table;
pub mod connection;
pub mod float;
pub mod frame;
pub mod glob;
pub mod hll;
pub mod parse;
pub mod resp;
pub mod server;
pub mod stream_id;

pub use frame::{Frame, Protocol, Reply};
pub use parse::{ArgCursor, CmdError, Command};
pub use resp::{Limits, ProtocolError, RequestDecoder};
pub use server::{ClientState, CommandHandler, Server, ServerConfig};
