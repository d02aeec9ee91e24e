//! `elastickv demo`: three nodes in one process on the original demo's
//! ports, bootstrapped as one cluster.

use crate::config::{NodeConfig, NodeFlags};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct DemoFlags {
    /// Where the three nodes keep their data (one sub-directory each).
    #[arg(
        long = "raftDataDir",
        alias = "raft-data-dir",
        default_value = "data/demo"
    )]
    pub raft_data_dir: PathBuf,
    /// Bearer token of the metrics endpoints.
    #[arg(
        long = "metricsToken",
        alias = "metrics-token",
        default_value = "demo-metrics-token"
    )]
    pub metrics_token: String,
}

/// The demo's nodes: (name, gRPC, Redis, DynamoDB, S3, metrics).
pub const DEMO_NODES: [(&str, u16, u16, u16, u16, u16); 3] = [
    ("n1", 50051, 63791, 63801, 63901, 9091),
    ("n2", 50052, 63792, 63802, 63902, 9092),
    ("n3", 50053, 63793, 63803, 63903, 9093),
];

pub fn demo_configs(flags: &DemoFlags) -> Result<Vec<NodeConfig>> {
    let members = DEMO_NODES
        .iter()
        .map(|(name, grpc, ..)| format!("{name}=127.0.0.1:{grpc}"))
        .collect::<Vec<_>>()
        .join(",");
    DEMO_NODES
        .iter()
        .enumerate()
        .map(|(i, (name, grpc, redis, _dynamo, _s3, metrics))| {
            NodeFlags {
                address: Some(format!("127.0.0.1:{grpc}")),
                raft_id: Some(name.to_string()),
                raft_data_dir: Some(flags.raft_data_dir.join(name)),
                raft_bootstrap: i == 0,
                raft_bootstrap_members: Some(members.clone()),
                raft_groups: Some("1,2,3".into()),
                shard_ranges: Some(":g=1,g:n=2,n:=3".into()),
                redis_address: Some(format!("127.0.0.1:{redis}")),
                metrics_address: Some(format!("0.0.0.0:{metrics}")),
                metrics_token: Some(flags.metrics_token.clone()),
                ..Default::default()
            }
            .validate()
        })
        .collect()
}

pub async fn run(flags: DemoFlags) -> Result<()> {
    let mut nodes = Vec::new();
    // n3 and n2 first, so they already listen when n1 bootstraps the cluster
    // and asks them for votes.
    for config in demo_configs(&flags)?.into_iter().rev() {
        nodes.push(crate::node::start(config).await?);
    }
    println!(
        "Elastickv demo: 3 nodes, data in {}",
        flags.raft_data_dir.display()
    );
    for (name, grpc, redis, _, _, metrics) in DEMO_NODES {
        println!(
            "  {name}: gRPC 127.0.0.1:{grpc}  Redis 127.0.0.1:{redis}  metrics http://127.0.0.1:{metrics}/metrics"
        );
    }
    println!("Try: elastickv-cli --address 127.0.0.1:50052 put hello world");
    crate::wait_for_signal().await?;
    for node in nodes {
        node.shutdown().await?;
    }
    Ok(())
}
