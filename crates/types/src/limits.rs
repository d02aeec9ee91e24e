//! Default limits. Every request size is capped (TigerBeetle style); the
//! operator may change the configurable ones with flags.

/// Largest key accepted by any front end, in bytes. Even with every byte
/// escaped by the storage encoding it stays under the engine's 64 KiB key cap.
pub const MAX_KEY_BYTES: usize = 16 * 1024;
/// Default largest value accepted, in bytes (`--maxValueBytes`).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Largest gRPC message the server decodes, in bytes.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest number of rows one scan returns.
pub const MAX_SCAN_LIMIT: usize = 100_000;
/// Size of one chunk of a streamed Raft snapshot, in bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;
