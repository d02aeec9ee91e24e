//! Error mapping for the gRPC front end: data-plane errors to gRPC statuses,
//! request-validation failures, and the transactional API's `KeyError`.

use elastickv_kv::KvError;
use elastickv_proto::public::KeyError;
use tonic::{Code, Status};

/// gRPC code for each data-plane error class. Exhaustive on purpose: a new
/// `KvError` variant must be classified here before the crate compiles.
pub fn code_for(err: &KvError) -> Code {
    match err {
        KvError::InvalidArgument(_) => Code::InvalidArgument,
        KvError::Unavailable(_) => Code::Unavailable,
        // The outcome is unknown, which is exactly DEADLINE_EXCEEDED's meaning.
        KvError::Timeout(_) => Code::DeadlineExceeded,
        // ABORTED is gRPC's "concurrency conflict, retry the whole sequence".
        KvError::Conflict(_) => Code::Aborted,
        KvError::Internal(_) => Code::Internal,
    }
}

/// The data plane's own message, without the class prefix that `Display`
/// adds (the gRPC code already carries the class).
pub fn message_of(err: &KvError) -> &str {
    match err {
        KvError::InvalidArgument(m)
        | KvError::Unavailable(m)
        | KvError::Timeout(m)
        | KvError::Conflict(m)
        | KvError::Internal(m) => m,
    }
}

/// Convert a data-plane error into the status returned to the client.
pub fn status_from_kv(err: KvError) -> Status {
    if let KvError::Internal(m) = &err {
        // Internal errors are bugs or storage failures: make them visible in
        // the server log, not only to whichever client happened to hit them.
        tracing::error!(error = %m, "internal data-plane error returned to a gRPC client");
    }
    Status::new(code_for(&err), message_of(&err).to_owned())
}

/// Per-key error of the transactional API (`PreWrite`/`Commit` responses).
pub fn key_error(err: &KvError) -> KeyError {
    KeyError {
        message: err.to_string(),
        retryable: err.is_retryable(),
    }
}

/// A request rejected by the front end before it reaches the data plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field} must not be empty")]
    EmptyKey { field: &'static str },
    #[error("{field} is {len} bytes, larger than the {max}-byte limit")]
    KeyTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} starts with byte 0xFF, which is reserved for internal keys")]
    InternalKey { field: &'static str },
    #[error("value is {len} bytes, larger than the {max}-byte limit")]
    ValueTooLong { len: usize, max: usize },
    #[error("limit must not be negative (got {0})")]
    NegativeLimit(i64),
    #[error("limit {got} exceeds the maximum of {max} rows per scan")]
    LimitTooLarge { got: i64, max: usize },
    #[error("start_key must not be greater than end_key")]
    InvertedRange,
    #[error("{what} must not be empty")]
    MissingField { what: &'static str },
}

impl From<RequestError> for Status {
    fn from(err: RequestError) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_variants() -> Vec<(KvError, Code, bool)> {
        vec![
            (
                KvError::InvalidArgument("bad".into()),
                Code::InvalidArgument,
                false,
            ),
            (
                KvError::Unavailable("no leader".into()),
                Code::Unavailable,
                true,
            ),
            (
                KvError::Timeout("slow".into()),
                Code::DeadlineExceeded,
                true,
            ),
            (
                KvError::Conflict("write conflict".into()),
                Code::Aborted,
                true,
            ),
            (
                KvError::Internal("disk on fire".into()),
                Code::Internal,
                false,
            ),
        ]
    }

    #[test]
    fn every_kv_error_maps_to_its_code_with_message_preserved() {
        for (err, code, _) in all_variants() {
            let msg = message_of(&err).to_owned();
            let status = status_from_kv(err);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), msg);
        }
    }

    #[test]
    fn key_error_carries_message_and_retryability() {
        for (err, _, retryable) in all_variants() {
            let ke = key_error(&err);
            assert_eq!(ke.retryable, retryable, "{err:?}");
            assert_eq!(ke.message, err.to_string());
        }
    }

    #[test]
    fn request_errors_are_invalid_argument_with_clear_text() {
        let s: Status = RequestError::KeyTooLong {
            field: "key",
            len: 70000,
            max: 65536,
        }
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "key is 70000 bytes, larger than the 65536-byte limit"
        );
        let s: Status = RequestError::InternalKey { field: "start_key" }.into();
        assert!(s.message().contains("0xFF"));
    }
}
