//! The data plane: the one boundary every front end uses. It turns client
//! operations into Raft commands on the right group, forwards them to the
//! group's leader, serves linearizable reads, and exposes cluster status and
//! membership changes.
//!
//! **API boundary**: front ends (`api-grpc`, `api-redis`, …) depend on this
//! crate and on `elastickv-types` only.

pub mod catalog;
pub mod error;
pub mod node;
pub mod router;
pub mod txn;
pub mod watcher;

pub use catalog::{
    Catalog, CatalogError, InitOutcome, RouteDescriptor, RouteState, SplitError, SplitOutcome,
};
pub use error::KvError;
pub use node::{GroupStatus, Kv, KvConfig, MemberStatus, NodeStatus, ReadOutcome, WriteOutcome};
pub use router::{Range, RouteError, RouteTable, Routed, Router};
pub use txn::{PrewriteError, Txn, TxnWrite};
pub use watcher::{run_catalog_watcher, spawn_catalog_watcher};
