//! Reserved regions of the key space.
//!
//! User keys never start with [`INTERNAL_PREFIX`]; front ends reject such keys
//! so that internal metadata (the route catalog, Redis/DynamoDB/S3 metadata
//! written by the data plane) cannot be forged by a client.

/// First byte of every internal key.
pub const INTERNAL_PREFIX: u8 = 0xFF;

/// Prefix of the route catalog's keys, stored in the default group.
pub const CATALOG_PREFIX: &[u8] = b"\xFF\x00catalog/";

/// True if `key` lies in the internal region.
pub fn is_internal(key: &[u8]) -> bool {
    key.first() == Some(&INTERNAL_PREFIX)
}
