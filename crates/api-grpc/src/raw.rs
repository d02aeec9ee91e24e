//! `RawKV`: the original Elastickv's non-transactional key-value API, served
//! over the data plane.
//!
//! Every request is validated here before it reaches the data plane, so a
//! malformed request costs no Raft round-trip and gets a precise
//! `INVALID_ARGUMENT` message:
//!
//! - keys must be non-empty, at most [`MAX_KEY_BYTES`], and must not start
//!   with 0xFF (the internal region holding the route catalog and adapter
//!   metadata, which clients must neither read nor forge);
//! - values must be at most the data plane's `max_value_bytes()`;
//! - scan `limit`: negative or above [`MAX_SCAN_LIMIT`] is rejected; **0
//!   means "no explicit limit" and returns up to `MAX_SCAN_LIMIT` rows**.
//!   proto3 cannot tell an unset field from 0, and a client that omits the
//!   limit (e.g. `grpcurl -d '{"start_key": ...}'`) wants rows, not nothing;
//! - scan `end_key` empty means unbounded; scans never return internal keys:
//!   the range is clipped at the first internal key (0xFF), and a
//!   `start_key` inside the internal region is rejected;
//! - `ts` 0 means "now": a linearizable read (`ts: None` on the data plane),
//!   otherwise a snapshot read at `ts`.

use elastickv_kv::Kv;
use elastickv_proto::public::{
    raw_kv_server::RawKv, RawDeleteRequest, RawDeleteResponse, RawGetRequest, RawGetResponse,
    RawKvPair, RawLatestCommitTsRequest, RawLatestCommitTsResponse, RawPutRequest, RawPutResponse,
    RawScanAtRequest, RawScanAtResponse,
};
use elastickv_types::keys::{is_internal, INTERNAL_PREFIX};
use elastickv_types::limits::{MAX_GRPC_MESSAGE_BYTES, MAX_KEY_BYTES, MAX_SCAN_LIMIT};
use elastickv_types::Timestamp;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::backend::DataPlane;
use crate::errors::{status_from_kv, RequestError};

/// The `RawKV` service over a data plane (the node's [`Kv`] in production).
#[derive(Clone)]
pub struct RawKvService<K = Kv> {
    kv: K,
}

impl<K: DataPlane> RawKvService<K> {
    /// Serve `RawKV` over `kv`.
    pub fn new(kv: K) -> Self {
        Self { kv }
    }
}

/// Validate a key that names one user row.
pub(crate) fn check_key(field: &'static str, key: &[u8]) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::EmptyKey { field });
    }
    check_bound(field, key)?;
    if is_internal(key) {
        return Err(RequestError::InternalKey { field });
    }
    Ok(())
}

/// Validate a scan bound (may be empty).
fn check_bound(field: &'static str, key: &[u8]) -> Result<(), RequestError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(RequestError::KeyTooLong {
            field,
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

/// `ts` 0 is "now" (linearizable), anything else a snapshot timestamp.
fn read_ts(ts: u64) -> Option<Timestamp> {
    (ts != 0).then_some(ts)
}

/// Turn the wire limit into a row count; see the module docs for 0.
pub(crate) fn scan_limit(limit: i64) -> Result<usize, RequestError> {
    if limit < 0 {
        return Err(RequestError::NegativeLimit(limit));
    }
    if limit == 0 {
        return Ok(MAX_SCAN_LIMIT);
    }
    match usize::try_from(limit) {
        Ok(n) if n <= MAX_SCAN_LIMIT => Ok(n),
        _ => Err(RequestError::LimitTooLarge {
            got: limit,
            max: MAX_SCAN_LIMIT,
        }),
    }
}

/// A validated scan range: `start <= key < end`, never reaching internal keys.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScanRange {
    pub start: Vec<u8>,
    /// Always `Some`: an unbounded user scan stops at the internal region.
    pub end: Option<Vec<u8>>,
}

impl ScanRange {
    /// True when no key can fall in the range, so the data plane need not be
    /// asked.
    fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if *end <= self.start)
    }
}

pub(crate) fn scan_range(start: Vec<u8>, end: Vec<u8>) -> Result<ScanRange, RequestError> {
    check_bound("start_key", &start)?;
    check_bound("end_key", &end)?;
    if is_internal(&start) {
        return Err(RequestError::InternalKey { field: "start_key" });
    }
    // [0xFF] is the smallest internal key, so clipping the end there keeps
    // every internal key out while leaving every user key in reach. An end
    // at or beyond it (e.g. "\xff" as a poor man's "unbounded") is accepted.
    let internal_start = vec![INTERNAL_PREFIX];
    let end = if end.is_empty() || end > internal_start {
        internal_start
    } else {
        end
    };
    if start > end {
        return Err(RequestError::InvertedRange);
    }
    Ok(ScanRange {
        start,
        end: Some(end),
    })
}

#[tonic::async_trait]
impl<K: DataPlane> RawKv for RawKvService<K> {
    async fn raw_put(
        &self,
        request: Request<RawPutRequest>,
    ) -> Result<Response<RawPutResponse>, Status> {
        let RawPutRequest { key, value } = request.into_inner();
        check_key("key", &key)?;
        let max = self.kv.max_value_bytes();
        if value.len() > max {
            return Err(RequestError::ValueTooLong {
                len: value.len(),
                max,
            }
            .into());
        }
        let out = self.kv.raw_put(key, value).await.map_err(status_from_kv)?;
        Ok(Response::new(RawPutResponse {
            commit_index: out.index,
            success: true,
        }))
    }

    async fn raw_get(
        &self,
        request: Request<RawGetRequest>,
    ) -> Result<Response<RawGetResponse>, Status> {
        let RawGetRequest { key, ts } = request.into_inner();
        check_key("key", &key)?;
        let out = self
            .kv
            .raw_get(key, read_ts(ts))
            .await
            .map_err(status_from_kv)?;
        let (value, exists) = match out.value {
            Some(v) => (v, true),
            None => (Vec::new(), false),
        };
        Ok(Response::new(RawGetResponse {
            read_at_index: out.index,
            value,
            exists,
        }))
    }

    async fn raw_delete(
        &self,
        request: Request<RawDeleteRequest>,
    ) -> Result<Response<RawDeleteResponse>, Status> {
        let RawDeleteRequest { key } = request.into_inner();
        check_key("key", &key)?;
        let out = self.kv.raw_delete(key).await.map_err(status_from_kv)?;
        Ok(Response::new(RawDeleteResponse {
            commit_index: out.index,
            success: true,
        }))
    }

    async fn raw_latest_commit_ts(
        &self,
        request: Request<RawLatestCommitTsRequest>,
    ) -> Result<Response<RawLatestCommitTsResponse>, Status> {
        let RawLatestCommitTsRequest { key } = request.into_inner();
        check_key("key", &key)?;
        let ts = self
            .kv
            .raw_latest_commit_ts(key)
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(RawLatestCommitTsResponse {
            ts: ts.unwrap_or(0),
            exists: ts.is_some(),
        }))
    }

    async fn raw_scan_at(
        &self,
        request: Request<RawScanAtRequest>,
    ) -> Result<Response<RawScanAtResponse>, Status> {
        let RawScanAtRequest {
            start_key,
            end_key,
            limit,
            ts,
            reverse,
        } = request.into_inner();
        let limit = scan_limit(limit)?;
        let range = scan_range(start_key, end_key)?;
        if range.is_empty() {
            return Ok(Response::new(RawScanAtResponse { kv: Vec::new() }));
        }
        let rows = self
            .kv
            .raw_scan(range.start, range.end, limit, read_ts(ts), reverse)
            .await
            .map_err(status_from_kv)?;
        let resp = RawScanAtResponse {
            kv: rows
                .into_iter()
                .map(|(key, value)| RawKvPair { key, value })
                .collect(),
        };
        // Refuse rather than truncate: a client paging by "fewer rows than
        // the limit means done" would silently miss data if we cut rows.
        let size = resp.encoded_len();
        if size > MAX_GRPC_MESSAGE_BYTES {
            return Err(Status::resource_exhausted(format!(
                "scan result is {size} bytes, over the {MAX_GRPC_MESSAGE_BYTES}-byte message limit; retry with a smaller limit"
            )));
        }
        Ok(Response::new(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use elastickv_kv::KvError;
    use tonic::Code;

    fn svc() -> (RawKvService<FakeKv>, FakeKv) {
        let fake = FakeKv::new();
        (RawKvService::new(fake.clone()), fake)
    }

    fn put(key: &[u8], value: &[u8]) -> Request<RawPutRequest> {
        Request::new(RawPutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
        })
    }

    fn scan(start: &[u8], end: &[u8], limit: i64, reverse: bool) -> Request<RawScanAtRequest> {
        Request::new(RawScanAtRequest {
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            limit,
            ts: 0,
            reverse,
        })
    }

    fn assert_invalid(res: Result<impl std::fmt::Debug, Status>, needle: &str) {
        let err = res.expect_err("request should have been rejected");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(needle),
            "message {:?} should mention {needle:?}",
            err.message()
        );
    }

    #[tokio::test]
    async fn put_rejects_bad_keys_and_values_before_the_data_plane() {
        let (s, fake) = svc();
        assert_invalid(s.raw_put(put(b"", b"v")).await, "key must not be empty");
        let long = vec![b'k'; MAX_KEY_BYTES + 1];
        assert_invalid(
            s.raw_put(put(&long, b"v")).await,
            &format!("{} bytes", MAX_KEY_BYTES + 1),
        );
        assert_invalid(s.raw_put(put(b"\xffcatalog", b"v")).await, "0xFF");
        let big = vec![0u8; fake.max_value + 1];
        assert_invalid(s.raw_put(put(b"k", &big)).await, "value is");
        assert_eq!(
            fake.data_calls(),
            0,
            "validation must not reach the data plane"
        );
    }

    #[tokio::test]
    async fn boundary_sizes_are_accepted() {
        let (s, fake) = svc();
        let key = vec![b'k'; MAX_KEY_BYTES];
        let value = vec![0u8; fake.max_value];
        let resp = s
            .raw_put(put(&key, &value))
            .await
            .expect("put")
            .into_inner();
        assert!(resp.success);
        assert_eq!(resp.commit_index, 1);
    }

    #[tokio::test]
    async fn get_delete_latest_ts_validate_keys() {
        let (s, fake) = svc();
        let bad: &[&[u8]] = &[b"", b"\xff", b"\xff\x00catalog/x"];
        for key in bad {
            assert_invalid(
                s.raw_get(Request::new(RawGetRequest {
                    key: key.to_vec(),
                    ts: 0,
                }))
                .await,
                "key",
            );
            assert_invalid(
                s.raw_delete(Request::new(RawDeleteRequest { key: key.to_vec() }))
                    .await,
                "key",
            );
            assert_invalid(
                s.raw_latest_commit_ts(Request::new(RawLatestCommitTsRequest {
                    key: key.to_vec(),
                }))
                .await,
                "key",
            );
        }
        assert_eq!(fake.data_calls(), 0);
    }

    #[tokio::test]
    async fn scan_rejects_bad_limits_and_ranges() {
        let (s, fake) = svc();
        assert_invalid(s.raw_scan_at(scan(b"a", b"z", -1, false)).await, "negative");
        assert_invalid(
            s.raw_scan_at(scan(b"a", b"z", MAX_SCAN_LIMIT as i64 + 1, false))
                .await,
            "exceeds",
        );
        assert_invalid(
            s.raw_scan_at(scan(b"a", b"z", i64::MAX, false)).await,
            "exceeds",
        );
        assert_invalid(
            s.raw_scan_at(scan(b"\xff", b"", 10, false)).await,
            "start_key",
        );
        assert_invalid(s.raw_scan_at(scan(b"z", b"a", 10, false)).await, "greater");
        let long = vec![b'k'; MAX_KEY_BYTES + 1];
        assert_invalid(s.raw_scan_at(scan(b"a", &long, 10, false)).await, "end_key");
        assert_eq!(fake.data_calls(), 0);
    }

    #[test]
    fn scan_limit_zero_means_the_maximum() {
        assert_eq!(scan_limit(0), Ok(MAX_SCAN_LIMIT));
        assert_eq!(scan_limit(1), Ok(1));
        assert_eq!(scan_limit(MAX_SCAN_LIMIT as i64), Ok(MAX_SCAN_LIMIT));
    }

    #[test]
    fn scan_range_clips_at_the_internal_region() {
        let r = scan_range(b"a".to_vec(), Vec::new()).expect("unbounded");
        assert_eq!(r.end, Some(vec![0xFF]));
        let r = scan_range(b"a".to_vec(), b"\xff\xff".to_vec()).expect("past internal");
        assert_eq!(r.end, Some(vec![0xFF]));
        let r = scan_range(b"a".to_vec(), b"\xff".to_vec()).expect("at internal");
        assert_eq!(r.end, Some(vec![0xFF]));
        let r = scan_range(b"a".to_vec(), b"m".to_vec()).expect("plain");
        assert_eq!(r.end, Some(b"m".to_vec()));
        let r = scan_range(Vec::new(), Vec::new()).expect("everything");
        assert_eq!(r.start, Vec::<u8>::new());
    }

    #[tokio::test]
    async fn empty_range_short_circuits() {
        let (s, fake) = svc();
        let resp = s
            .raw_scan_at(scan(b"m", b"m", 10, false))
            .await
            .expect("empty scan")
            .into_inner();
        assert!(resp.kv.is_empty());
        assert_eq!(fake.data_calls(), 0);
    }

    #[tokio::test]
    async fn put_get_delete_round_trip() {
        let (s, _fake) = svc();
        let resp = s.raw_put(put(b"k", b"v1")).await.expect("put").into_inner();
        assert_eq!((resp.commit_index, resp.success), (1, true));

        let got = s
            .raw_get(Request::new(RawGetRequest {
                key: b"k".to_vec(),
                ts: 0,
            }))
            .await
            .expect("get")
            .into_inner();
        assert_eq!((got.value.as_slice(), got.exists), (&b"v1"[..], true));
        assert_eq!(got.read_at_index, 1);

        let ts = s
            .raw_latest_commit_ts(Request::new(RawLatestCommitTsRequest {
                key: b"k".to_vec(),
            }))
            .await
            .expect("latest ts")
            .into_inner();
        assert!(ts.exists);
        assert_eq!(ts.ts, 100);

        let del = s
            .raw_delete(Request::new(RawDeleteRequest { key: b"k".to_vec() }))
            .await
            .expect("delete")
            .into_inner();
        assert_eq!((del.commit_index, del.success), (2, true));

        let got = s
            .raw_get(Request::new(RawGetRequest {
                key: b"k".to_vec(),
                ts: 0,
            }))
            .await
            .expect("get after delete")
            .into_inner();
        assert!(!got.exists);
        assert!(got.value.is_empty());

        let ts = s
            .raw_latest_commit_ts(Request::new(RawLatestCommitTsRequest {
                key: b"k".to_vec(),
            }))
            .await
            .expect("latest ts after delete")
            .into_inner();
        assert_eq!((ts.ts, ts.exists), (0, false));
    }

    #[tokio::test]
    async fn get_ts_zero_is_linearizable_else_snapshot() {
        let (s, fake) = svc();
        for (ts, want) in [(0, None), (42, Some(42))] {
            s.raw_get(Request::new(RawGetRequest {
                key: b"k".to_vec(),
                ts,
            }))
            .await
            .expect("get");
            assert_eq!(fake.last_read_ts(), Some(want));
        }
    }

    #[tokio::test]
    async fn scan_forwards_range_limit_ts_and_reverse() {
        let (s, fake) = svc();
        for k in [b"a", b"b", b"c", b"d"] {
            s.raw_put(put(k, k)).await.expect("put");
        }
        fake.insert_raw(b"\xff\x00catalog/1", b"secret");

        let keys = |r: RawScanAtResponse| r.kv.into_iter().map(|p| p.key).collect::<Vec<_>>();
        let all = s.raw_scan_at(scan(b"", b"", 0, false)).await.expect("scan");
        assert_eq!(
            keys(all.into_inner()),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );

        let rev = s
            .raw_scan_at(scan(b"b", b"", 2, true))
            .await
            .expect("reverse scan");
        assert_eq!(keys(rev.into_inner()), vec![b"d".to_vec(), b"c".to_vec()]);

        let mut req = scan(b"a", b"c", 10, false);
        req.get_mut().ts = 7;
        let part = s.raw_scan_at(req).await.expect("bounded scan");
        assert_eq!(keys(part.into_inner()), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(fake.last_read_ts(), Some(Some(7)));
    }

    #[tokio::test]
    async fn data_plane_errors_map_to_grpc_codes() {
        let (s, fake) = svc();
        fake.fail_next(KvError::Unavailable("no leader for group 1".into()));
        let err = s.raw_put(put(b"k", b"v")).await.expect_err("should fail");
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.message(), "no leader for group 1");

        fake.fail_next(KvError::Timeout("commit wait".into()));
        let err = s
            .raw_get(Request::new(RawGetRequest {
                key: b"k".to_vec(),
                ts: 0,
            }))
            .await
            .expect_err("should fail");
        assert_eq!(err.code(), Code::DeadlineExceeded);
    }
}
