//! The chaos harness end to end on real processes: a short run of every
//! workload under every nemesis must check valid, and the harness must
//! catch a real bug: with `--unsafeLocalReads`, a read from an isolated old
//! leader returns a stale value, which the register checker flags.

use anyhow::Result;
use elastickv_chaos::runner::{run, stale_read_scenario, RunConfig};
use elastickv_chaos::schedule::NemesisKind;
use elastickv_chaos::workload::WorkloadKind;
use elastickv_chaos::{AnomalyKind, Validity};
use std::time::Duration;

/// ~20 s of all four workloads (register with cas) under partitions, kills,
/// pauses, clock skew, leader transfers and membership changes on 3 nodes
/// and 3 groups, in overlapping episodes (e.g. a node removed while its
/// clock is skewed), then heal, settle, final reads and checks. Faults are
/// short and frequent so that most kinds fire within the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_run_of_every_workload_under_combined_nemeses_is_valid() -> Result<()> {
    let out = tempfile::Builder::new().prefix("chaos-run-").tempdir()?;
    let mut cfg = RunConfig::new(out.path().to_path_buf());
    cfg.workloads = WorkloadKind::ALL.to_vec();
    cfg.nemeses = NemesisKind::ALL.to_vec();
    cfg.time_limit = Duration::from_secs(20);
    // This seed's plan holds pause n2 + clock skew n1, clock skew n3 +
    // partition isolating n2, kill n2 + removal of n2; all six kinds, and
    // a removal that re-adds an emptied node.
    cfg.seed = 20_261_129;
    cfg.gap_ms = Some((500, 1_500));
    cfg.hold_ms = Some((1_000, 3_000));
    cfg.overlap = true;
    cfg.workload.workers = 2;
    cfg.workload.rate_hz = 5.0;
    let outcome = run(&cfg).await?;
    assert!(outcome.faults_applied > 0, "the nemesis did nothing");
    assert!(
        outcome.max_concurrent_faults >= 2,
        "no two faults were held at once: {:?}",
        outcome.fault_counts
    );
    assert_eq!(outcome.workloads.len(), 4);
    let bad: Vec<String> = outcome
        .workloads
        .iter()
        .filter(|w| w.result.valid != Validity::Valid || w.result.ops_checked <= 10)
        .map(|w| format!("{}", w.result))
        .collect();
    if !bad.is_empty() {
        // Keep the histories for the post-mortem.
        let kept = out.keep();
        panic!(
            "seed {}: histories in {}\n{}",
            cfg.seed,
            kept.display(),
            bad.join("\n")
        );
    }
    assert_eq!(outcome.validity(), Validity::Valid);
    Ok(())
}

/// Proof the harness finds real bugs: isolate the leader, write through the
/// majority, read the old value from the isolated node. Deterministic: the
/// isolated node holds exactly the first value and cannot learn the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_local_reads_are_caught_as_non_linearizable() -> Result<()> {
    let result = stale_read_scenario(true, None).await?;
    assert_eq!(result.valid, Validity::Invalid, "{result}");
    assert!(result.has(AnomalyKind::NonLinearizable), "{result}");
    Ok(())
}

/// Control for the test above: with safe reads the isolated node cannot
/// serve the read, and the same schedule checks valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_reads_on_an_isolated_leader_stay_linearizable() -> Result<()> {
    let result = stale_read_scenario(false, None).await?;
    assert_eq!(result.valid, Validity::Valid, "{result}");
    Ok(())
}

/// Regression test for the bug the list-append workload found: concurrent
/// Begins batched by a follower's forwarder (or queued on a paused node)
/// all got the leader's single `now`, so two transactions shared a start
/// timestamp and one's prewrite took the other's lock as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_begins_get_distinct_start_timestamps() -> Result<()> {
    use elastickv_chaos::cluster::{channel, ClusterSpec, ProcessCluster};
    use elastickv_proto::txn::txn_client::TxnClient;
    use elastickv_proto::txn::BeginRequest;
    use std::collections::BTreeSet;

    let cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let leader = cluster
        .leader_of(1)
        .await
        .ok_or_else(|| anyhow::anyhow!("no leader"))?;
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    // Through every node: followers forward (batched), the leader serves.
    for node in (0..3).filter(|n| *n != leader).chain([leader]) {
        let client = TxnClient::new(channel(&cluster.grpc_addr(node)).await?);
        let calls = (0..64).map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move { c.begin(BeginRequest {}).await })
        });
        for r in futures_join(calls.collect()).await {
            let ts = r??.into_inner().start_ts;
            total += 1;
            assert!(
                seen.insert(ts),
                "start_ts {ts} handed out twice (node {node})"
            );
        }
    }
    assert_eq!(seen.len(), total);
    Ok(())
}

/// Await spawned tasks in order (no extra dependency for join_all).
async fn futures_join<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}
