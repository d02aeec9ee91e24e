//! Multi-Raft replication on openraft 0.9.
//!
//! Each shard is one Raft group; one process hosts many groups through a
//! [`RaftNode`]. Groups share the node's storage engine (and so its journal:
//! see [`group_commit`]), its HLC, and one gRPC connection per peer.
//!
//! **Architecture invariant:** this crate knows nothing of client protocols.
//! It replicates [`command::Op`]s and answers "where may a linearizable read
//! be served" ([`proposer::ReadPoint`]); the data plane (`elastickv-kv`)
//! decides what to write and what to read.

// openraft's trait signatures fix `StorageError` (over 200 bytes) as the
// error type of every storage call, and tonic's `Status` is as large; boxing
// them in our helpers would only add allocations on the error path.
#![allow(clippy::result_large_err)]

pub mod command;
pub mod dedup;
pub mod durability;
pub mod error;
mod forwarder;
pub mod group_commit;
pub mod lease;
pub mod log_store;
pub mod network;
pub mod node;
mod pipe;
pub mod proposer;
pub mod recent_writes;
pub mod service;
pub mod state_machine;
pub mod txn_apply;
pub mod types;

pub use command::{
    Lock, Mutation, Op, OpResult, Ownership, TxnError, TxnKind, TxnMutation, TxnStatus,
};
pub use error::ReplError;
pub use node::{Group, RaftNode, RaftNodeConfig, Written};
pub use proposer::ReadPoint;
pub use service::RaftTransportService;
pub use types::{NodeInfo, TypeConfig};
