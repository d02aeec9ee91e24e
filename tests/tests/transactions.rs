//! Transactions across groups on real processes: a bank workload under
//! leader kills, atomicity when the coordinator dies mid-commit, conflicts.

use anyhow::{bail, Context, Result};
use elastickv_chaos::cluster::{channel, ClusterSpec, ProcessCluster};
use elastickv_proto::txn::txn_client::TxnClient;
use elastickv_proto::txn::{
    BeginRequest, CommitRequest, Mutation, MutationOp, ReadRequest, ScanRequest,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

fn three_groups() -> ClusterSpec {
    ClusterSpec {
        groups: "1,2,3".into(),
        shard_ranges: ":g=1,g:n=2,n:=3".into(),
        ..Default::default()
    }
}

async fn client(addr: &str) -> Result<TxnClient<Channel>> {
    Ok(TxnClient::new(channel(addr).await?))
}

async fn begin(c: &mut TxnClient<Channel>) -> Result<u64> {
    Ok(c.begin(BeginRequest {}).await?.into_inner().start_ts)
}

async fn read(
    c: &mut TxnClient<Channel>,
    start_ts: u64,
    keys: &[&str],
) -> Result<Vec<Option<i64>>> {
    let r = c
        .read(ReadRequest {
            start_ts,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        })
        .await?
        .into_inner();
    r.values
        .iter()
        .map(|v| {
            if !v.found {
                return Ok(None);
            }
            Ok(Some(
                String::from_utf8_lossy(&v.value)
                    .parse::<i64>()
                    .context("balance")?,
            ))
        })
        .collect()
}

fn put(key: &str, value: String) -> Mutation {
    Mutation {
        op: MutationOp::Put as i32,
        key: key.as_bytes().to_vec(),
        value: value.into_bytes(),
        since: 0,
    }
}

/// Ok(true) committed, Ok(false) conflict.
async fn commit(
    c: &mut TxnClient<Channel>,
    start_ts: u64,
    mutations: Vec<Mutation>,
) -> Result<bool> {
    let r = c
        .commit(CommitRequest {
            start_ts,
            mutations,
        })
        .await?
        .into_inner();
    Ok(!r.conflict)
}

const ACCOUNTS: [&str; 6] = ["a-acct", "b-acct", "h-acct", "i-acct", "p-acct", "q-acct"];
const INITIAL: i64 = 100;

/// Concurrent transfers between accounts in three groups while group
/// leaders are killed and restarted; every snapshot read of all balances
/// must see the same total, and so must the final read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_total_is_constant_under_leader_kills() -> Result<()> {
    let mut cluster = ProcessCluster::start(three_groups()).await?;
    let addrs: Vec<String> = (0..3).map(|i| cluster.grpc_addr(i)).collect();
    let mut c = client(&addrs[0]).await?;
    let ts = begin(&mut c).await?;
    let init = ACCOUNTS
        .iter()
        .map(|a| put(a, INITIAL.to_string()))
        .collect();
    anyhow::ensure!(
        commit(&mut c, ts, init).await?,
        "initial deposit conflicted"
    );
    let total = INITIAL * ACCOUNTS.len() as i64;

    let stop = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let (addrs, stop, transfers) = (addrs.clone(), stop.clone(), transfers.clone());
        tasks.push(tokio::spawn(async move {
            let mut clients = Vec::new();
            for a in &addrs {
                if let Ok(c) = client(a).await {
                    clients.push(c);
                }
            }
            let mut n = w;
            while !stop.load(Ordering::Relaxed) && clients.len() == 3 {
                n += 1;
                let (from, to) = (ACCOUNTS[n % 6], ACCOUNTS[(n * 7 + 1) % 6]);
                if from == to {
                    continue;
                }
                let c = &mut clients[n % 3];
                let attempt = async {
                    let ts = begin(c).await?;
                    let b = read(c, ts, &[from, to]).await?;
                    let (Some(f), Some(t)) = (b[0], b[1]) else {
                        bail!("missing account")
                    };
                    let amount = (n as i64 % 7) + 1;
                    if f < amount {
                        return Ok(false);
                    }
                    commit(
                        c,
                        ts,
                        vec![
                            put(from, (f - amount).to_string()),
                            put(to, (t + amount).to_string()),
                        ],
                    )
                    .await
                };
                if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(15), attempt).await {
                    transfers.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2usize {
        let (addrs, stop, reads) = (addrs.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            let mut clients = Vec::new();
            for a in &addrs {
                if let Ok(c) = client(a).await {
                    clients.push(c);
                }
            }
            let mut n = r;
            while !stop.load(Ordering::Relaxed) && clients.len() == 3 {
                n += 1;
                let c = &mut clients[n % 3];
                let attempt = async {
                    let ts = begin(c).await?;
                    read(c, ts, &ACCOUNTS).await
                };
                if let Ok(Ok(balances)) =
                    tokio::time::timeout(Duration::from_secs(15), attempt).await
                {
                    reads.fetch_add(1, Ordering::Relaxed);
                    let sum: i64 = balances.iter().map(|b| b.unwrap_or(i64::MIN / 16)).sum();
                    if sum != total || balances.iter().any(|b| b.is_none_or(|v| v < 0)) {
                        bad.push(balances);
                    }
                }
            }
            bad
        }));
    }

    for group in [2u64, 3] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(leader) = cluster.leader_of(group).await {
            cluster.kill(leader)?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.restart(leader)?;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let mut torn = Vec::new();
    for r in readers {
        torn.extend(r.await?);
    }
    let (transfers, reads) = (
        transfers.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
    );
    eprintln!("{transfers} transfers committed, {reads} snapshot reads");
    assert!(torn.is_empty(), "torn reads: {torn:?}");
    assert!(transfers > 10, "too few transfers committed: {transfers}");
    assert!(reads > 10, "too few reads: {reads}");

    cluster.wait_all_groups_led(Duration::from_secs(20)).await?;
    let mut c = client(&addrs[1]).await?;
    let ts = begin(&mut c).await?;
    let final_balances = read(&mut c, ts, &ACCOUNTS).await?;
    let sum: i64 = final_balances.iter().map(|b| b.unwrap_or(0)).sum();
    assert_eq!(sum, total, "final balances {final_balances:?}");
    Ok(())
}

/// Many cross-group transactions in flight through one node, which is
/// killed with SIGKILL: afterwards every transaction is all-or-nothing and
/// reads resolve the locks it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_mid_commit_leaves_no_partial_transaction() -> Result<()> {
    let mut cluster = ProcessCluster::start(three_groups()).await?;
    // Coordinate through a node that leads no group, so killing it tests
    // the coordinator alone.
    let mut coordinator = 0;
    for i in 0..3 {
        let st = cluster.status(i).await?;
        if st.groups.iter().all(|g| g.state != "Leader") {
            coordinator = i;
        }
    }
    let addr = cluster.grpc_addr(coordinator);
    let started = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let (addr, started) = (addr.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = client(&addr).await else {
                return;
            };
            for n in 0.. {
                let id = w * 1_000_000 + n;
                let attempt = async {
                    let ts = begin(&mut c).await?;
                    started.fetch_add(1, Ordering::Relaxed);
                    // One key in each group, same value.
                    let v = id.to_string();
                    let muts = vec![
                        put(&format!("c-{id}"), v.clone()),
                        put(&format!("k-{id}"), v.clone()),
                        put(&format!("x-{id}"), v),
                    ];
                    commit(&mut c, ts, muts).await
                };
                // Stop at the first failure: the coordinator is gone.
                let r = tokio::time::timeout(Duration::from_secs(5), attempt).await;
                if !matches!(r, Ok(Ok(_))) {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    eprintln!(
        "killing coordinator n{} after {} began",
        coordinator + 1,
        started.load(Ordering::Relaxed)
    );
    cluster.kill(coordinator)?;
    eprintln!("killed");
    for t in tasks {
        let _ = t.await;
    }
    let began = started.load(Ordering::Relaxed);
    eprintln!("writers stopped after {began} transactions");
    assert!(began > 10, "too few transactions began: {began}");

    // Read everything through a survivor; reads resolve leftover locks
    // (waiting out their TTL).
    let survivor = (coordinator + 1) % 3;
    let mut c = client(&cluster.grpc_addr(survivor)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let ts = begin(&mut c).await?;
        match c
            .scan(ScanRequest {
                start_ts: ts,
                start_key: vec![],
                end_key: vec![],
                limit: 0,
                reverse: false,
            })
            .await
        {
            Ok(r) => break r.into_inner().rows,
            Err(e) if Instant::now() < deadline => {
                eprintln!("scan retry: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut per_txn: BTreeMap<String, u32> = BTreeMap::new();
    for row in &rows {
        let key = String::from_utf8_lossy(&row.key).into_owned();
        let id = key
            .split_once('-')
            .map(|(_, id)| id.to_string())
            .context("key shape")?;
        assert_eq!(String::from_utf8_lossy(&row.value), id, "value of {key}");
        *per_txn.entry(id).or_default() += 1;
    }
    let partial: Vec<_> = per_txn.iter().filter(|(_, n)| **n != 3).collect();
    eprintln!(
        "{} transactions began, {} visible, {} partial",
        began,
        per_txn.len(),
        partial.len()
    );
    assert!(
        partial.is_empty(),
        "partially visible transactions: {partial:?}"
    );
    assert!(!per_txn.is_empty(), "some transactions must have committed");
    Ok(())
}

/// Two transactions writing the same key: the second to commit gets a
/// conflict, not a lost update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_conflict_instead_of_losing_updates() -> Result<()> {
    let cluster = ProcessCluster::start(three_groups()).await?;
    let mut a = client(&cluster.grpc_addr(0)).await?;
    let mut b = client(&cluster.grpc_addr(1)).await?;
    let t0 = begin(&mut a).await?;
    assert!(
        commit(
            &mut a,
            t0,
            vec![put("counter", "0".into()), put("zz", "0".into())]
        )
        .await?
    );
    let ta = begin(&mut a).await?;
    let tb = begin(&mut b).await?;
    let va = read(&mut a, ta, &["counter"]).await?[0].context("counter")?;
    let vb = read(&mut b, tb, &["counter"]).await?[0].context("counter")?;
    // Cross-group for one of them (two-phase), single group for the other.
    assert!(
        commit(
            &mut a,
            ta,
            vec![put("counter", (va + 1).to_string()), put("zz", "a".into())]
        )
        .await?
    );
    assert!(
        !commit(&mut b, tb, vec![put("counter", (vb + 1).to_string())]).await?,
        "second writer must conflict"
    );
    let t = begin(&mut b).await?;
    assert_eq!(read(&mut b, t, &["counter"]).await?[0], Some(1));
    // A transaction that began after the commit sees it on every node.
    for i in 0..3 {
        let mut c = client(&cluster.grpc_addr(i)).await?;
        let t = begin(&mut c).await?;
        let r = c
            .read(ReadRequest {
                start_ts: t,
                keys: vec![b"zz".to_vec()],
            })
            .await?
            .into_inner();
        assert_eq!(r.values[0].value, b"a", "node {i}");
    }
    Ok(())
}

/// Many clients incrementing one counter at once, through every node, with
/// writes in flight all the time: every committed increment is in the final
/// value. (A read index answered before the Raft core took in a write just
/// proposed let a transaction read past that write and commit over it: the
/// chaos harness's counter workload saw acknowledged increments vanish.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_never_lost() -> Result<()> {
    let cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..12 {
        let mut c = client(&cluster.grpc_addr(w % 3)).await?;
        let (stop, committed) = (stop.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(ts) = begin(&mut c).await else {
                    continue;
                };
                let Ok(v) = read(&mut c, ts, &["n"]).await else {
                    continue;
                };
                let next = v[0].unwrap_or(0) + 1;
                if let Ok(true) = commit(&mut c, ts, vec![put("n", next.to_string())]).await {
                    committed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let mut c = client(&cluster.grpc_addr(0)).await?;
    let ts = begin(&mut c).await?;
    let value = read(&mut c, ts, &["n"]).await?[0].unwrap_or(0);
    let committed = committed.load(Ordering::Relaxed);
    assert!(
        committed > 20,
        "too few increments to mean anything: {committed}"
    );
    assert_eq!(value as u64, committed, "committed increments lost");
    Ok(())
}
