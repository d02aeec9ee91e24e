//! `elastickv-bench`: durable replicated RawPut / RawGet throughput and
//! latency against a 3-node cluster of real processes on loopback, and the
//! number of fsyncs per committed write.
//!
//! Run it on a release build: `cargo build --release --bins &&
//! target/release/elastickv-bench raw` (see BENCHMARKS.md).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use elastickv_chaos::cluster::{channel, ClusterSpec, ProcessCluster};
use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{RawGetRequest, RawPutRequest};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "elastickv-bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// RawPut then RawGet with concurrent clients.
    Raw(RawArgs),
    /// Read-modify-write transactions of two keys: within one group,
    /// across groups, and under contention.
    Txn(TxnArgs),
}

#[derive(clap::Args, Clone)]
struct TxnArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct keys per group in the uncontended phases.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Distinct keys in the contended phase.
    #[arg(long, default_value_t = 8)]
    hot_keys: u64,
}

#[derive(clap::Args, Clone)]
struct RawArgs {
    /// Nodes in the cluster started for the run.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent clients (each one request at a time).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Send every request to the leader instead of spreading them over all
    /// nodes (followers forward writes and ask the leader for read indexes).
    #[arg(long)]
    leader_only: bool,
    /// gRPC connections shared by the clients, per node.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Runtime threads of each node (`--workerThreads`); 0: the node's
    /// default, one per CPU. Three nodes and this load generator share the
    /// machine, so one each avoids oversubscribing its cores.
    #[arg(long, default_value_t = 1)]
    node_threads: usize,
    /// Raft groups the keys are split over (equal key ranges; each group
    /// replicates, commits and applies independently).
    #[arg(long, default_value_t = 1)]
    groups: u64,
    /// An extra flag for every node (repeatable), e.g.
    /// `--node-arg=--raftReadLeaseMs=0` for an A/B run.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    node_args: Vec<String>,
}

struct PhaseResult {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl PhaseResult {
    fn print(&self, name: &str) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{name:>8}: {:>9.0} ops/s  ({} ops, {} errors in {:.1} s)  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            self.ops as f64 / secs,
            self.ops,
            self.errors,
            secs,
            self.hist.value_at_quantile(0.50) as f64 / 1000.0,
            self.hist.value_at_quantile(0.99) as f64 / 1000.0,
            self.hist.value_at_quantile(0.999) as f64 / 1000.0,
            self.hist.max() as f64 / 1000.0,
        );
    }
}

/// Where each request of the raw bench goes.
struct Route {
    /// Leader node of each group (index `group - 1`) when every request goes
    /// to its key's leader; `None`: clients spread over all nodes.
    leaders: Option<Vec<usize>>,
    /// Each node's connections (empty for nodes no request goes to).
    targets: Vec<Vec<RawKvClient<tonic::transport::Channel>>>,
}

impl Route {
    /// The connection client `c` uses for keys of group index `group`
    /// (0-based).
    fn client(&self, c: usize, group: usize) -> RawKvClient<tonic::transport::Channel> {
        let node = match &self.leaders {
            Some(leaders) => leaders[group % leaders.len()],
            None => {
                let used: Vec<usize> = (0..self.targets.len())
                    .filter(|&i| !self.targets[i].is_empty())
                    .collect();
                used[c % used.len()]
            }
        };
        let conns = &self.targets[node];
        conns[c % conns.len()].clone()
    }
}

/// Moves group g's leadership to node (g - 1) mod nodes and returns each
/// group's leader.
async fn place_leaders(cluster: &ProcessCluster, groups: u64) -> Result<Vec<usize>> {
    use elastickv_proto::admin::admin_client::AdminClient;
    use elastickv_proto::admin::TransferLeaderRequest;
    let nodes = cluster.nodes.len();
    let mut leaders = Vec::new();
    for g in 1..=groups {
        let want = ((g - 1) as usize) % nodes;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cluster.leader_of(g).await {
                Some(l) if l == want || groups == 1 => {
                    leaders.push(l);
                    break;
                }
                Some(l) => {
                    let mut admin = AdminClient::new(channel(&cluster.grpc_addr(l)).await?);
                    // A refused or lost request is retried by the loop.
                    let _ = admin
                        .transfer_leader(TransferLeaderRequest {
                            raft_id: cluster.nodes[want].name.clone(),
                            group_id: g,
                        })
                        .await;
                }
                None => {}
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "group {g} has no leader on node {want}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(leaders)
}

async fn phase(args: &RawArgs, route: &Route, write: bool) -> Result<PhaseResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        // This client's connection for each group, chosen per request below.
        let mut clients: Vec<_> = (0..args.groups as usize)
            .map(|g| route.client(c, g))
            .collect();
        let stop = stop.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut ops = 0u64;
            let mut errors = 0u64;
            let value = vec![b'x'; args.value_size];
            let mut n = c as u64;
            while !stop.load(Ordering::Relaxed) {
                let k = (n.wrapping_mul(2_654_435_761)) % args.keys;
                let key = format!("bench-{k:08}").into_bytes();
                let client = &mut clients[group_of(k, args.groups, args.keys)];
                n += args.clients as u64;
                let t = Instant::now();
                let ok = if write {
                    client
                        .raw_put(RawPutRequest {
                            key,
                            value: value.clone(),
                        })
                        .await
                        .is_ok()
                } else {
                    client.raw_get(RawGetRequest { key, ts: 0 }).await.is_ok()
                };
                let micros = t.elapsed().as_micros() as u64;
                if ok {
                    ops += 1;
                    hist.saturating_record(micros.max(1));
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((ops, errors, hist))
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = PhaseResult {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let (ops, errors, hist) = t.await??;
        total.ops += ops;
        total.errors += errors;
        total.hist.add(hist)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

async fn sum_metric(cluster: &ProcessCluster, name: &str) -> Result<f64> {
    let mut sum = 0.0;
    for i in 0..cluster.nodes.len() {
        sum += cluster.metric(i, name).await?;
    }
    Ok(sum)
}

async fn fsyncs(cluster: &ProcessCluster) -> Result<f64> {
    sum_metric(cluster, "elastickv_raft_fsyncs").await
}

/// Key number where group index `i` (0-based) of `groups` starts.
fn split_point(i: u64, groups: u64, keys: u64) -> u64 {
    keys * i / groups
}

/// Group index (0-based) of key number `k`, as `shard_ranges` splits them.
fn group_of(k: u64, groups: u64, keys: u64) -> usize {
    (1..groups)
        .take_while(|&i| k >= split_point(i, groups, keys))
        .count()
}

/// `--shardRanges` giving each of `groups` groups an equal share of the
/// bench's keys (`bench-{n:08}`, which sort as their numbers do); empty for
/// one group.
fn shard_ranges(groups: u64, keys: u64) -> String {
    if groups <= 1 {
        return String::new();
    }
    let split = |i: u64| format!("bench-{:08}", split_point(i, groups, keys));
    (1..=groups)
        .map(|g| {
            let start = if g == 1 { String::new() } else { split(g - 1) };
            let end = if g == groups { String::new() } else { split(g) };
            format!("{start}:{end}={g}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn raw(args: RawArgs) -> Result<()> {
    let mut extra_args = match args.node_threads {
        0 => Vec::new(),
        n => vec!["--workerThreads".to_string(), n.to_string()],
    };
    extra_args.extend(args.node_args.iter().cloned());
    anyhow::ensure!(
        (1..=64).contains(&args.groups) && args.keys >= args.groups && args.keys < 100_000_000,
        "--groups must be 1 to 64 and at most --keys; --keys below 100000000"
    );
    let cluster = ProcessCluster::start(ClusterSpec {
        nodes: args.nodes,
        extra_args,
        groups: (1..=args.groups)
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(","),
        shard_ranges: shard_ranges(args.groups, args.keys),
        ..Default::default()
    })
    .await
    .context("starting the cluster")?;
    // Leaders spread round-robin over the nodes (group g on node g-1 mod
    // nodes), as a balanced deployment has them.
    let leaders = place_leaders(&cluster, args.groups).await?;
    let node_indexes: Vec<usize> = if args.leader_only {
        let mut l = leaders.clone();
        l.sort_unstable();
        l.dedup();
        l
    } else {
        (0..args.nodes).collect()
    };
    // targets[node] = that node's connections (empty for unused nodes).
    let mut targets = vec![Vec::new(); args.nodes];
    for i in node_indexes {
        for _ in 0..args.connections {
            targets[i].push(RawKvClient::new(channel(&cluster.grpc_addr(i)).await?));
        }
    }
    let route = Route {
        leaders: if args.leader_only {
            Some(leaders)
        } else {
            None
        },
        targets,
    };
    println!(
        "elastickv-bench raw: {} nodes ({} runtime threads each), {} group(s), {} clients, {} B values, {} keys, {} s per phase, {}",
        args.nodes,
        match args.node_threads {
            0 => "default".to_string(),
            n => n.to_string(),
        },
        args.groups,
        args.clients,
        args.value_size,
        args.keys,
        args.seconds,
        if args.leader_only && args.groups > 1 {
            "every request to its group's leader"
        } else if args.leader_only {
            "leader only"
        } else {
            "requests spread over all nodes"
        }
    );
    let fsyncs_before = fsyncs(&cluster).await?;
    let proposals_before = sum_metric(&cluster, "elastickv_raft_proposals").await?;
    let puts = phase(&args, &route, true).await?;
    let fsyncs_after = fsyncs(&cluster).await?;
    let proposals = sum_metric(&cluster, "elastickv_raft_proposals").await? - proposals_before;
    puts.print("RawPut");
    println!(
        "  fsyncs: {} across {} nodes = {:.3} per committed write (cluster-wide), {:.3} per write per node",
        fsyncs_after - fsyncs_before,
        args.nodes,
        (fsyncs_after - fsyncs_before) / puts.ops.max(1) as f64,
        (fsyncs_after - fsyncs_before) / puts.ops.max(1) as f64 / args.nodes as f64
    );
    println!(
        "  log entries: {proposals} ({:.1} writes per entry)",
        puts.ops as f64 / proposals.max(1.0)
    );
    let gets = phase(&args, &route, false).await?;
    gets.print("RawGet");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_route_to_the_group_whose_range_holds_them() {
        for (groups, keys) in [(1, 10), (2, 100_000), (3, 100_000), (7, 1_000), (5, 5)] {
            let ranges = shard_ranges(groups, keys);
            for k in 0..keys.min(5_000) {
                let key = format!("bench-{k:08}");
                let g = group_of(k, groups, keys);
                assert!(g < groups as usize);
                if groups == 1 {
                    continue;
                }
                // The range `start:end=g+1` of `ranges` holds the key.
                let (start, end) = ranges
                    .split(',')
                    .nth(g)
                    .and_then(|r| {
                        let (bounds, _) = r.split_once('=')?;
                        bounds.split_once(':')
                    })
                    .expect("range");
                assert!(start.is_empty() || key.as_str() >= start, "{key} {ranges}");
                assert!(end.is_empty() || key.as_str() < end, "{key} {ranges}");
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxnShape {
    SingleGroup,
    CrossGroup,
    Contended,
}

struct TxnPhase {
    committed: u64,
    conflicts: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

/// The two keys of transaction `n`: group 1 holds keys below "g", group 2
/// those from "g" (the cluster is started with `:g=1,g:=2`).
fn txn_keys(shape: TxnShape, n: u64, args: &TxnArgs) -> (String, String) {
    let a = n.wrapping_mul(2_654_435_761);
    let b = a.rotate_left(17);
    match shape {
        TxnShape::SingleGroup => (
            format!("a{:06}", a % args.keys),
            format!("b{:06}", b % args.keys),
        ),
        TxnShape::CrossGroup => (
            format!("a{:06}", a % args.keys),
            format!("x{:06}", b % args.keys),
        ),
        TxnShape::Contended => {
            let i = a % args.hot_keys;
            let j = (i + 1 + b % (args.hot_keys - 1).max(1)) % args.hot_keys;
            (
                format!("hot{i}"),
                format!("{}hot{j}", if j % 2 == 0 { "a" } else { "x" }),
            )
        }
    }
}

async fn txn_phase(args: &TxnArgs, addrs: &[String], shape: TxnShape) -> Result<TxnPhase> {
    use elastickv_proto::txn::txn_client::TxnClient;
    use elastickv_proto::txn::{BeginRequest, CommitRequest, Mutation, MutationOp, ReadRequest};
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut client = TxnClient::new(channel(&addrs[c % addrs.len()]).await?);
        let stop = stop.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut committed, mut conflicts, mut errors) = (0u64, 0u64, 0u64);
            let mut n = c as u64;
            while !stop.load(Ordering::Relaxed) {
                n += args.clients as u64;
                let (k1, k2) = txn_keys(shape, n, &args);
                let t = Instant::now();
                let attempt = async {
                    let ts = client.begin(BeginRequest {}).await?.into_inner().start_ts;
                    let read = client
                        .read(ReadRequest {
                            start_ts: ts,
                            keys: vec![k1.clone().into_bytes(), k2.clone().into_bytes()],
                        })
                        .await?
                        .into_inner();
                    let bump = |i: usize| -> Vec<u8> {
                        let v = read
                            .values
                            .get(i)
                            .and_then(|v| String::from_utf8_lossy(&v.value).parse::<u64>().ok())
                            .unwrap_or(0);
                        (v + 1).to_string().into_bytes()
                    };
                    let mutations = vec![
                        Mutation {
                            op: MutationOp::Put as i32,
                            key: k1.into_bytes(),
                            value: bump(0),
                            since: 0,
                        },
                        Mutation {
                            op: MutationOp::Put as i32,
                            key: k2.into_bytes(),
                            value: bump(1),
                            since: 0,
                        },
                    ];
                    let r = client
                        .commit(CommitRequest {
                            start_ts: ts,
                            mutations,
                        })
                        .await?
                        .into_inner();
                    Ok::<bool, anyhow::Error>(!r.conflict)
                };
                match attempt.await {
                    Ok(true) => {
                        committed += 1;
                        hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
                    }
                    Ok(false) => conflicts += 1,
                    Err(_) => errors += 1,
                }
            }
            Ok::<_, anyhow::Error>((committed, conflicts, errors, hist))
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = TxnPhase {
        committed: 0,
        conflicts: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let (c, x, e, h) = t.await??;
        total.committed += c;
        total.conflicts += x;
        total.errors += e;
        total.hist.add(h)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

async fn txn(args: TxnArgs) -> Result<()> {
    let cluster = ProcessCluster::start(ClusterSpec {
        groups: "1,2".into(),
        shard_ranges: ":g=1,g:=2".into(),
        ..Default::default()
    })
    .await
    .context("starting the cluster")?;
    let addrs: Vec<String> = (0..cluster.nodes.len())
        .map(|i| cluster.grpc_addr(i))
        .collect();
    println!(
        "elastickv-bench txn: 3 nodes, 2 groups, {} clients, read-modify-write of 2 keys, {} s per phase",
        args.clients, args.seconds
    );
    for (name, shape) in [
        ("1 group", TxnShape::SingleGroup),
        ("2 groups", TxnShape::CrossGroup),
        ("hot keys", TxnShape::Contended),
    ] {
        let p = txn_phase(&args, &addrs, shape).await?;
        let attempts = (p.committed + p.conflicts).max(1);
        println!(
            "{name:>9}: {:>7.0} commits/s  p50 {:.2} ms  p99 {:.2} ms  conflict aborts {:.1}% ({} of {})  errors {}",
            p.committed as f64 / p.elapsed.as_secs_f64(),
            p.hist.value_at_quantile(0.50) as f64 / 1000.0,
            p.hist.value_at_quantile(0.99) as f64 / 1000.0,
            100.0 * p.conflicts as f64 / attempts as f64,
            p.conflicts,
            attempts,
            p.errors,
        );
    }
    Ok(())
}

// One thread, like redis-benchmark: the load generator should cost the
// machine (which the nodes share) as little as it can. On the
// multi-thread scheduler each request went out in its own write (its task
// woke the connection task through the LIFO slot): 17k writev/s for 17k
// requests/s, against ~2k/s on this one.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Raw(args) => raw(args).await,
        Cmd::Txn(args) => txn(args).await,
    }
}
