//! Elastickv's Jepsen-style harness: real `elastickv` processes on loopback
//! ([`cluster`]), clients that record histories, nemeses, and checkers.

pub mod cluster;
pub mod proxy;
