//! Shared vocabulary of Elastickv: identifiers, timestamps, the hybrid logical
//! clock, limits and reserved key prefixes. Every other crate may depend on this
//! one; it depends on nothing of ours.

pub mod hlc;
pub mod ids;
pub mod keys;
pub mod limits;

pub use hlc::{ClockSource, Hlc, SystemClock, Timestamp};
pub use ids::{node_id_from_name, GroupId, NodeId, RequestId, DEFAULT_GROUP};
