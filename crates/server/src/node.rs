//! Start one Elastickv node: storage, the multi-Raft runtime, the data plane
//! and every front end on its configured address.

use crate::config::NodeConfig;
use anyhow::{Context, Result};
use elastickv_kv::{InitOutcome, Kv, KvConfig, Router};
use elastickv_raft::{RaftNode, RaftNodeConfig, RaftTransportService};
use elastickv_storage::{Engine, EngineOptions};
use elastickv_types::Hlc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running node.
pub struct RunningNode {
    pub raft: RaftNode,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

impl RunningNode {
    /// Stop serving, then stop Raft and make everything durable.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), t).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server task failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "server task panicked"),
                _ => {}
            }
        }
        self.raft.shutdown().await;
        Ok(())
    }
}

/// Write the route catalog's first version from `--shardRanges` unless the
/// cluster has one. Retries until group 1 has a leader and the write
/// commits (or the node shuts down); idempotent, so a restarted bootstrap
/// node only finds the existing catalog.
async fn init_catalog(kv: Kv, initial: Router, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    loop {
        // Shutdown may interrupt an attempt: the write either committed or
        // not, and the next start of this node finds out which.
        let attempt = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            r = kv.init_catalog(&initial) => r,
        };
        match attempt {
            Ok(InitOutcome::Created) => {
                tracing::info!(
                    routes = initial.ranges().len(),
                    "route catalog initialised at version 1 from --shardRanges"
                );
                return Ok(());
            }
            Ok(InitOutcome::Existing(version)) => {
                tracing::info!(version, "route catalog already exists; left as is");
                return Ok(());
            }
            Err(e) => tracing::warn!(error = %e, "initialising the route catalog; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Start a node and serve until [`RunningNode::shutdown`].
pub async fn start(config: NodeConfig) -> Result<RunningNode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let engine = Engine::open(&config.data_dir.join("store"), EngineOptions::default())
        .with_context(|| format!("opening storage in {}", config.data_dir.display()))?;
    let hlc = Arc::new(Hlc::default());
    let mut raft_config = RaftNodeConfig::new(
        config.raft_id.clone(),
        config.advertise.clone(),
        config.data_dir.join("snapshots"),
    );
    raft_config.dial_overrides = config.dial_overrides.clone();
    raft_config.snapshot_after_logs = config.snapshot_logs;
    raft_config.logs_kept_after_snapshot = config.snapshot_keep_logs;
    raft_config.unsafe_local_reads = config.unsafe_local_reads;
    raft_config.read_lease_ms = config.read_lease_ms;
    if config.unsafe_local_reads {
        tracing::warn!("--unsafeLocalReads is on: reads are NOT linearizable");
    }
    let raft = RaftNode::new(raft_config, engine, hlc).context("starting raft runtime")?;
    for group in &config.groups {
        raft.open_group(*group)
            .await
            .with_context(|| format!("starting raft group {group}"))?;
    }
    let kv = Kv::new(
        raft.clone(),
        KvConfig {
            max_value_bytes: config.max_value_bytes,
            router: config.router.clone(),
        },
    );

    // A restarted node routes with the catalog its replica of group 1
    // already holds, before it serves anything.
    if let Err(e) = kv.refresh_routes_from_local() {
        tracing::warn!(error = %e, "cannot read the local route catalog; using --shardRanges until the watcher can");
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn({
        let (kv, shutdown) = (kv.clone(), shutdown_rx.clone());
        async move {
            elastickv_kv::run_catalog_watcher(kv, shutdown).await;
            Ok(())
        }
    }));

    // Redis pub/sub: this node's subscriptions, fed by local PUBLISHes and
    // by other nodes' through the gRPC service.
    let hub: Arc<elastickv_api_redis::pubsub::Hub> = Arc::default();
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("binding gRPC address {}", config.address))?;
    tasks.push(tokio::spawn(crate::grpc::serve(
        listener,
        kv.clone(),
        RaftTransportService::server(raft.clone()),
        config
            .redis_address
            .as_ref()
            .map(|_| crate::redis_pubsub::PubSubService::server(Arc::clone(&hub))),
        shutdown_rx.clone(),
    )));

    if let Some(addr) = &config.redis_address {
        // `:6379` means every interface, as for the other address flags.
        let bind = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.clone()
        };
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("binding Redis address {addr}"))?;
        let redis_config = elastickv_api_redis::ServerConfig {
            password: config.redis_password.clone().map(bytes::Bytes::from),
            ..Default::default()
        };
        let store: Arc<dyn elastickv_api_redis::Store> = Arc::new(kv.clone());
        let stop = shutdown_rx.clone();
        let broadcaster: Arc<dyn elastickv_api_redis::pubsub::Broadcaster> = Arc::new(
            crate::redis_pubsub::PeerBroadcaster::new(raft.clone(), config.dial_overrides.clone()),
        );
        tasks.push(tokio::spawn(async move {
            elastickv_api_redis::serve_node(
                store,
                listener,
                redis_config,
                stop,
                hub,
                Some(broadcaster),
            )
            .await
            .context("Redis front end")
        }));
    }

    if let Some(addr) = &config.metrics_address {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics address {addr}"))?;
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            kv.clone(),
            config.metrics_token.clone(),
            shutdown_rx.clone(),
        )));
    }

    if config.bootstrap {
        raft.bootstrap(&config.members)
            .await
            .context("bootstrapping the cluster")?;
        tasks.push(tokio::spawn(init_catalog(
            kv.clone(),
            config.router.clone(),
            shutdown_rx.clone(),
        )));
    }
    tracing::info!(
        node = %config.raft_id,
        address = %config.advertise,
        groups = ?config.groups.iter().map(|g| g.0).collect::<Vec<_>>(),
        "node started"
    );
    for (flag, addr) in [
        ("--dynamoAddress", &config.dynamo_address),
        ("--s3Address", &config.s3_address),
    ] {
        if let Some(addr) = addr {
            tracing::warn!(
                "{flag} {addr}: this front end is not available in this build yet; not listening"
            );
        }
    }
    Ok(RunningNode {
        raft,
        shutdown,
        tasks,
    })
}
