//! Serving the public services under both of their names.
//!
//! The protos declare no package, so the services' canonical paths are bare
//! (`/RawKV/RawGet`), as the original's clients call them. The original's
//! README, though, shows grpcurl calls to `proto.RawKV/RawGet`. This layer
//! rewrites `/proto.<Service>/<Method>` to `/<Service>/<Method>` for the
//! three public services before tonic routes the request, so both names
//! reach the same handler. Every other path passes through untouched.
//!
//! Install it with `tonic::transport::Server::builder().layer(alias_layer())`:
//! a server-level layer wraps the router, so it sees requests before routing.

use std::task::{Context, Poll};

use http::uri::{PathAndQuery, Uri};
use tower::{Layer, Service};

/// Services reachable under `proto.<name>` as well as `<name>`.
pub const ALIASED_SERVICES: &[&str] = &["RawKV", "TransactionalKV", "Distribution"];

/// The package of the aliased names.
const ALIAS_PREFIX: &str = "/proto.";

/// Canonical path for `path` if it is an aliased name, else `None`.
pub fn canonical_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(ALIAS_PREFIX)?;
    let (service, method) = rest.split_once('/')?;
    // A gRPC path is exactly /Service/Method; anything else is not ours to
    // touch (it will get tonic's usual UNIMPLEMENTED).
    if method.is_empty() || method.contains('/') || !ALIASED_SERVICES.contains(&service) {
        return None;
    }
    Some(format!("/{service}/{method}"))
}

/// Rewrite `req`'s URI in place if its path is an aliased name.
fn rewrite<B>(req: &mut http::Request<B>) {
    let Some(path) = canonical_path(req.uri().path()) else {
        return;
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    // Both conversions only fail on malformed input, which cannot come from a
    // path that already parsed; if they ever did, serving the request under
    // its original name (-> UNIMPLEMENTED) is the safe fallback.
    let Ok(pq) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Layer installing [`AliasService`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AliasLayer;

impl<S> Layer<S> for AliasLayer {
    type Service = AliasService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AliasService { inner }
    }
}

/// Rewrites aliased request paths, then calls the inner service.
#[derive(Debug, Clone)]
pub struct AliasService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for AliasService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        rewrite(&mut req);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[test]
    fn aliased_names_map_to_bare_paths() {
        assert_eq!(
            canonical_path("/proto.RawKV/RawGet").as_deref(),
            Some("/RawKV/RawGet")
        );
        assert_eq!(
            canonical_path("/proto.TransactionalKV/PreWrite").as_deref(),
            Some("/TransactionalKV/PreWrite")
        );
        assert_eq!(
            canonical_path("/proto.Distribution/ListRoutes").as_deref(),
            Some("/Distribution/ListRoutes")
        );
    }

    #[test]
    fn other_paths_are_left_alone() {
        for p in [
            "/RawKV/RawGet",
            "/proto.Admin/Status",
            "/proto.RawKVX/RawGet",
            "/proto.RawKV/",
            "/proto.RawKV",
            "/proto.RawKV/RawGet/extra",
            "/elastickv.admin.Admin/Status",
            "/elastickv.internal.RaftTransport/AppendEntries",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/",
            "",
        ] {
            assert_eq!(canonical_path(p), None, "{p}");
        }
    }

    /// Run one request through the layer and report the URI the inner
    /// service saw.
    async fn seen_uri(uri: &str) -> String {
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            Ok::<_, Infallible>(req.uri().to_string())
        });
        let svc = AliasLayer.layer(inner);
        let req = http::Request::builder()
            .uri(uri)
            .body(())
            .expect("valid request");
        match svc.oneshot(req).await {
            Ok(seen) => seen,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn layer_rewrites_full_uris_keeping_scheme_and_authority() {
        assert_eq!(
            seen_uri("http://127.0.0.1:50051/proto.RawKV/RawPut").await,
            "http://127.0.0.1:50051/RawKV/RawPut"
        );
        assert_eq!(
            seen_uri("/proto.Distribution/GetRoute").await,
            "/Distribution/GetRoute"
        );
        assert_eq!(
            seen_uri("/proto.RawKV/RawGet?x=1").await,
            "/RawKV/RawGet?x=1"
        );
    }

    #[tokio::test]
    async fn layer_passes_other_requests_through() {
        for uri in [
            "http://h:1/RawKV/RawGet",
            "http://h:1/elastickv.admin.Admin/Status",
            "http://h:1/proto.Unknown/Method",
        ] {
            assert_eq!(seen_uri(uri).await, uri);
        }
    }
}
