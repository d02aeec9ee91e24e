//! Generated gRPC code for every Elastickv service, shared by the server, the
//! CLI and the test tools. **API boundary**: the public messages are
//! wire-compatible with the original Go Elastickv.

#![allow(clippy::all, missing_docs)]

pub mod channel;
pub mod codec;

/// Public services with no package (`RawKV`, `TransactionalKV`, `Distribution`).
pub mod public {
    tonic::include_proto!("_");
}

/// Node-to-node Raft transport, leader forwarding and Redis pub/sub fan-out.
pub mod internal {
    tonic::include_proto!("elastickv.internal");
}

/// Interactive transactions (Elastickv extension).
pub mod txn {
    tonic::include_proto!("elastickv.txn");
}

/// Cluster administration.
pub mod admin {
    tonic::include_proto!("elastickv.admin");
}

/// Descriptor set of every proto as declared, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Descriptor set of the public protos under `package proto;`, for reflection
/// of the `proto.RawKV`-style names.
pub const QUALIFIED_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/qualified_descriptor.bin"));
