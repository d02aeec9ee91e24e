//! Prometheus metrics on `--metricsAddress`, behind a bearer token when one
//! is configured. Values are read from the Raft runtime at scrape time, so
//! the hot path pays nothing for them.

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use elastickv_kv::Kv;
use elastickv_raft::RaftNode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

struct Metrics {
    raft: RaftNode,
    kv: Kv,
    token: Option<String>,
    catalog_version: Gauge,
    fsyncs: Gauge,
    appends_flushed: Gauge,
    proposals: Gauge,
    proposed_requests: Gauge,
    term: Family<GroupLabel, Gauge>,
    is_leader: Family<GroupLabel, Gauge>,
    last_log_index: Family<GroupLabel, Gauge>,
    applied_index: Family<GroupLabel, Gauge>,
    snapshot_index: Family<GroupLabel, Gauge>,
    members: Family<GroupLabel, Gauge>,
    registry: Registry,
}

impl Metrics {
    fn new(kv: Kv, token: Option<String>) -> Self {
        let raft = kv.raft().clone();
        let mut registry = Registry::with_prefix("elastickv");
        let catalog_version = Gauge::default();
        registry.register(
            "catalog_version",
            "route catalog version this node routes with (0: static --shardRanges)",
            catalog_version.clone(),
        );
        let fsyncs = Gauge::default();
        let appends_flushed = Gauge::default();
        let proposals = Gauge::default();
        let proposed_requests = Gauge::default();
        registry.register(
            "raft_proposals",
            "log entries proposed as leader since start",
            proposals.clone(),
        );
        registry.register(
            "raft_proposed_requests",
            "client requests carried by proposed entries since start",
            proposed_requests.clone(),
        );
        let term = Family::<GroupLabel, Gauge>::default();
        let is_leader = Family::<GroupLabel, Gauge>::default();
        let last_log_index = Family::<GroupLabel, Gauge>::default();
        let applied_index = Family::<GroupLabel, Gauge>::default();
        let snapshot_index = Family::<GroupLabel, Gauge>::default();
        let members = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "raft_fsyncs",
            "fsyncs issued by group commit since start",
            fsyncs.clone(),
        );
        registry.register(
            "raft_log_appends_flushed",
            "log appends made durable by group commit since start",
            appends_flushed.clone(),
        );
        registry.register("raft_term", "current Raft term", term.clone());
        registry.register(
            "raft_is_leader",
            "1 if this node leads the group",
            is_leader.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "last log index",
            last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "last applied index",
            applied_index.clone(),
        );
        registry.register(
            "raft_snapshot_index",
            "index of the current snapshot",
            snapshot_index.clone(),
        );
        registry.register("raft_members", "members of the group", members.clone());
        Metrics {
            raft,
            kv,
            token,
            catalog_version,
            fsyncs,
            appends_flushed,
            proposals,
            proposed_requests,
            term,
            is_leader,
            last_log_index,
            applied_index,
            snapshot_index,
            members,
            registry,
        }
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        self.catalog_version
            .set(i64::try_from(self.kv.catalog_version()).unwrap_or(i64::MAX));
        let (fsyncs, flushed) = self.raft.fsync_stats();
        self.fsyncs.set(fsyncs as i64);
        self.appends_flushed.set(flushed as i64);
        let (proposals, requests) = self.raft.proposer_stats();
        self.proposals.set(proposals as i64);
        self.proposed_requests.set(requests as i64);
        for group in self.raft.groups() {
            let m = group.raft.metrics().borrow().clone();
            let l = GroupLabel {
                group: group.id.0.to_string(),
            };
            self.term.get_or_create(&l).set(m.current_term as i64);
            self.is_leader
                .get_or_create(&l)
                .set(i64::from(m.current_leader == Some(self.raft.id())));
            self.last_log_index
                .get_or_create(&l)
                .set(m.last_log_index.unwrap_or(0) as i64);
            self.applied_index
                .get_or_create(&l)
                .set(m.last_applied.map(|x| x.index).unwrap_or(0) as i64);
            self.snapshot_index
                .get_or_create(&l)
                .set(m.snapshot.map(|x| x.index).unwrap_or(0) as i64);
            self.members
                .get_or_create(&l)
                .set(m.membership_config.membership().nodes().count() as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    if let Some(token) = &metrics.token {
        let expected = format!("Bearer {token}");
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    match metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

/// Serve `/metrics` on `listener` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    kv: Kv,
    token: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let token = token.filter(|t| !t.is_empty());
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(Metrics::new(kv, token)));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .context("metrics server")
}
