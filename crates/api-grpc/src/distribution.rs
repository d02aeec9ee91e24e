//! `Distribution`: the original Elastickv's route-catalog API (`GetRoute`,
//! `GetTimestamp`, `ListRoutes`, `SplitRange`), served over the data plane.
//!
//! - `GetRoute` answers from this node's current routing table (no Raft
//!   round trip), as the node itself would route the key right now. An
//!   unbounded end is an empty `end`.
//! - `GetTimestamp` is a timestamp from the transaction timestamp oracle
//!   (the default group's leader), so a client that starts a transaction at
//!   it sees everything committed before the call.
//! - `ListRoutes` reads the catalog linearizably: the version and every
//!   route in key order.
//! - `SplitRange` replaces one route by two active children in the same
//!   group, atomically with the version check. Its errors: the catalog is
//!   not at `expected_catalog_version` → `FAILED_PRECONDITION`; no such
//!   route → `NOT_FOUND`; the split key is not strictly inside the route
//!   → `INVALID_ARGUMENT`; the route is not active → `FAILED_PRECONDITION`.
//!
//! Before the bootstrap node has written the first catalog version (a
//! moment after the cluster forms) `ListRoutes` and `SplitRange` answer
//! `UNAVAILABLE`, which clients retry.

use std::future::Future;

use elastickv_kv::{
    Catalog, Kv, KvError, Range, RouteDescriptor, RouteState, SplitError, SplitOutcome,
};
use elastickv_proto::public::{
    distribution_server::Distribution, GetRouteRequest, GetRouteResponse, GetTimestampRequest,
    GetTimestampResponse, ListRoutesRequest, ListRoutesResponse, RouteDescriptor as WireRoute,
    RouteState as WireState, SplitRangeRequest, SplitRangeResponse,
};
use elastickv_types::limits::MAX_KEY_BYTES;
use elastickv_types::Timestamp;
use tonic::{Request, Response, Status};

use crate::errors::{status_from_kv, RequestError};

/// The route-catalog operations the service needs (implemented by [`Kv`];
/// a trait so that the mapping is tested against a fake).
pub trait RouteCatalog: Send + Sync + 'static {
    /// The range holding `key` in this node's current table.
    fn route_of(&self, key: &[u8]) -> Range;

    /// See [`Kv::oracle_timestamp`].
    fn timestamp(&self) -> impl Future<Output = Result<Timestamp, KvError>> + Send;

    /// See [`Kv::read_catalog`].
    fn list_routes(&self) -> impl Future<Output = Result<Option<Catalog>, KvError>> + Send;

    /// See [`Kv::split_range`].
    fn split_range(
        &self,
        expected_version: u64,
        route_id: u64,
        split_key: Vec<u8>,
    ) -> impl Future<Output = Result<SplitOutcome, SplitError>> + Send;
}

impl RouteCatalog for Kv {
    fn route_of(&self, key: &[u8]) -> Range {
        self.router().route(key).clone()
    }

    fn timestamp(&self) -> impl Future<Output = Result<Timestamp, KvError>> + Send {
        Kv::oracle_timestamp(self)
    }

    fn list_routes(&self) -> impl Future<Output = Result<Option<Catalog>, KvError>> + Send {
        Kv::read_catalog(self)
    }

    fn split_range(
        &self,
        expected_version: u64,
        route_id: u64,
        split_key: Vec<u8>,
    ) -> impl Future<Output = Result<SplitOutcome, SplitError>> + Send {
        Kv::split_range(self, expected_version, route_id, split_key)
    }
}

/// The `Distribution` service over a catalog (the node's [`Kv`] in
/// production).
#[derive(Clone)]
pub struct DistributionService<K = Kv> {
    kv: K,
}

impl<K: RouteCatalog> DistributionService<K> {
    /// Serve `Distribution` over `kv`.
    pub fn new(kv: K) -> Self {
        Self { kv }
    }
}

fn wire_state(s: RouteState) -> WireState {
    match s {
        RouteState::Active => WireState::Active,
        RouteState::WriteFenced => WireState::WriteFenced,
        RouteState::MigratingSource => WireState::MigratingSource,
        RouteState::MigratingTarget => WireState::MigratingTarget,
    }
}

/// Wire form of a route; an unbounded end is empty, as the proto says.
pub fn wire_route(r: RouteDescriptor) -> WireRoute {
    WireRoute {
        route_id: r.route_id,
        start: r.start,
        end: r.end.unwrap_or_default(),
        raft_group_id: r.group.0,
        state: wire_state(r.state) as i32,
        parent_route_id: r.parent_route_id,
    }
}

/// The status a failed split answers with.
pub fn split_status(err: SplitError) -> Status {
    match err {
        SplitError::VersionMismatch { .. } | SplitError::RouteNotActive { .. } => {
            Status::failed_precondition(err.to_string())
        }
        SplitError::UnknownRoute(_) => Status::not_found(err.to_string()),
        SplitError::InvalidSplitKey(_) => Status::invalid_argument(err.to_string()),
        SplitError::NotInitialized => Status::unavailable(err.to_string()),
        SplitError::Kv(e) => status_from_kv(e),
    }
}

fn not_initialized() -> Status {
    Status::unavailable("the route catalog has not been initialised yet; retry shortly")
}

#[tonic::async_trait]
impl<K: RouteCatalog> Distribution for DistributionService<K> {
    async fn get_route(
        &self,
        request: Request<GetRouteRequest>,
    ) -> Result<Response<GetRouteResponse>, Status> {
        let key = request.into_inner().key;
        if key.len() > MAX_KEY_BYTES {
            return Err(RequestError::KeyTooLong {
                field: "key",
                len: key.len(),
                max: MAX_KEY_BYTES,
            }
            .into());
        }
        let range = self.kv.route_of(&key);
        Ok(Response::new(GetRouteResponse {
            start: range.start,
            end: range.end.unwrap_or_default(),
            raft_group_id: range.group.0,
        }))
    }

    async fn get_timestamp(
        &self,
        _request: Request<GetTimestampRequest>,
    ) -> Result<Response<GetTimestampResponse>, Status> {
        let timestamp = self.kv.timestamp().await.map_err(status_from_kv)?;
        Ok(Response::new(GetTimestampResponse { timestamp }))
    }

    async fn list_routes(
        &self,
        _request: Request<ListRoutesRequest>,
    ) -> Result<Response<ListRoutesResponse>, Status> {
        let catalog = self
            .kv
            .list_routes()
            .await
            .map_err(status_from_kv)?
            .ok_or_else(not_initialized)?;
        Ok(Response::new(ListRoutesResponse {
            catalog_version: catalog.version,
            routes: catalog.routes.into_iter().map(wire_route).collect(),
        }))
    }

    async fn split_range(
        &self,
        request: Request<SplitRangeRequest>,
    ) -> Result<Response<SplitRangeResponse>, Status> {
        let SplitRangeRequest {
            expected_catalog_version,
            route_id,
            split_key,
        } = request.into_inner();
        let done = self
            .kv
            .split_range(expected_catalog_version, route_id, split_key)
            .await
            .map_err(split_status)?;
        Ok(Response::new(SplitRangeResponse {
            catalog_version: done.version,
            left: Some(wire_route(done.left)),
            right: Some(wire_route(done.right)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use tonic::Code;

    fn svc() -> (DistributionService<FakeKv>, FakeKv) {
        let fake = FakeKv::new();
        (DistributionService::new(fake.clone()), fake)
    }

    async fn list(s: &DistributionService<FakeKv>) -> ListRoutesResponse {
        s.list_routes(Request::new(ListRoutesRequest {}))
            .await
            .expect("list")
            .into_inner()
    }

    #[tokio::test]
    async fn readme_split_example() {
        let (s, _) = svc();
        let before = list(&s).await;
        assert_eq!(before.catalog_version, 1);
        assert_eq!(before.routes.len(), 2);
        let r = s
            .split_range(Request::new(SplitRangeRequest {
                expected_catalog_version: 1,
                route_id: 1,
                split_key: b"g".to_vec(),
            }))
            .await
            .expect("split")
            .into_inner();
        assert_eq!(r.catalog_version, 2);
        let want = |id, start: &[u8], end: &[u8]| WireRoute {
            route_id: id,
            start: start.to_vec(),
            end: end.to_vec(),
            raft_group_id: 1,
            state: WireState::Active as i32,
            parent_route_id: 1,
        };
        assert_eq!(r.left, Some(want(3, b"", b"g")));
        assert_eq!(r.right, Some(want(4, b"g", b"m")));
        let after = list(&s).await;
        let ids: Vec<u64> = after.routes.iter().map(|r| r.route_id).collect();
        assert_eq!((after.catalog_version, ids), (2, vec![3, 4, 2]));
        // The unbounded route's end is empty on the wire.
        assert!(after.routes[2].end.is_empty());
    }

    #[tokio::test]
    async fn split_errors_have_their_codes() {
        let (s, _) = svc();
        for (version, route, key, code) in [
            (7, 1, &b"g"[..], Code::FailedPrecondition),
            (1, 9, b"g", Code::NotFound),
            (1, 1, b"", Code::InvalidArgument),
            (1, 1, b"m", Code::InvalidArgument),
            (1, 2, b"a", Code::InvalidArgument),
        ] {
            let err = s
                .split_range(Request::new(SplitRangeRequest {
                    expected_catalog_version: version,
                    route_id: route,
                    split_key: key.to_vec(),
                }))
                .await
                .expect_err("refused");
            assert_eq!(err.code(), code, "{version} {route} {key:?}: {err:?}");
        }
        assert_eq!(list(&s).await.catalog_version, 1);
        assert_eq!(
            split_status(SplitError::Kv(KvError::Timeout("slow".into()))).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(
            split_status(SplitError::NotInitialized).code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn get_route_and_timestamp() {
        let (s, _) = svc();
        let r = s
            .get_route(Request::new(GetRouteRequest { key: b"x".to_vec() }))
            .await
            .expect("route")
            .into_inner();
        assert_eq!(
            (r.start.as_slice(), r.end.as_slice(), r.raft_group_id),
            (&b"m"[..], &b""[..], 2)
        );
        let r = s
            .get_route(Request::new(GetRouteRequest { key: vec![] }))
            .await
            .expect("route")
            .into_inner();
        assert_eq!((r.end.as_slice(), r.raft_group_id), (&b"m"[..], 1));
        let err = s
            .get_route(Request::new(GetRouteRequest {
                key: vec![b'k'; MAX_KEY_BYTES + 1],
            }))
            .await
            .expect_err("too long");
        assert_eq!(err.code(), Code::InvalidArgument);
        let t = s
            .get_timestamp(Request::new(GetTimestampRequest {}))
            .await
            .expect("ts")
            .into_inner();
        assert_eq!(t.timestamp, 7 << 16);
    }

    #[tokio::test]
    async fn data_plane_errors_keep_their_code() {
        let (s, fake) = svc();
        fake.fail_next(KvError::Unavailable("no leader for group 1".into()));
        let err = s
            .list_routes(Request::new(ListRoutesRequest {}))
            .await
            .expect_err("unavailable");
        assert_eq!(err.code(), Code::Unavailable);
    }
}
