//! Errors of the data plane, classified so each front end can map them onto
//! its own protocol's codes.

/// What went wrong with a data-plane operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The request itself is wrong (empty key, value too large, bad range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No leader could be reached within the deadline, or the route changed;
    /// the client may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed and the outcome is unknown: the write may or may
    /// not have been applied.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Conflicting concurrent write (transactions); the client may retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A bug or a storage failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl KvError {
    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KvError::Unavailable(_) | KvError::Timeout(_) | KvError::Conflict(_)
        )
    }
}
