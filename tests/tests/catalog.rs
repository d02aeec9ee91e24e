//! The route catalog across real processes: the catalog a fresh cluster
//! starts with, the original README's `SplitRange` example, split errors,
//! how fast every node's watcher picks up a new version, restarts, and a
//! split under write load that must lose no acknowledged write.

use anyhow::{bail, Context, Result};
use elastickv_chaos::cluster::{channel, ClusterSpec, ProcessCluster};
use elastickv_proto::public::distribution_client::DistributionClient;
use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{
    GetRouteRequest, GetTimestampRequest, ListRoutesRequest, ListRoutesResponse, RawGetRequest,
    RawPutRequest, RouteDescriptor, RouteState, SplitRangeRequest, SplitRangeResponse,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

/// The original README's cluster: route 1 `["", "m")` in group 1, route 2
/// `["m", ∞)` in group 2.
fn readme_spec() -> ClusterSpec {
    ClusterSpec {
        groups: "1,2".into(),
        shard_ranges: ":m=1,m:=2".into(),
        ..Default::default()
    }
}

async fn dist(cluster: &ProcessCluster, i: usize) -> Result<DistributionClient<Channel>> {
    Ok(DistributionClient::new(
        channel(&cluster.grpc_addr(i)).await?,
    ))
}

/// `ListRoutes` on node `i`, waiting (up to 15 s) for the bootstrap node to
/// have written the first catalog version.
async fn list(cluster: &ProcessCluster, i: usize) -> Result<ListRoutesResponse> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut c = dist(cluster, i).await?;
    loop {
        match c.list_routes(ListRoutesRequest {}).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => bail!("ListRoutes on n{}: {s:?}", i + 1),
        }
    }
}

fn route(id: u64, start: &[u8], end: &[u8], group: u64, parent: u64) -> RouteDescriptor {
    RouteDescriptor {
        route_id: id,
        start: start.to_vec(),
        end: end.to_vec(),
        raft_group_id: group,
        state: RouteState::Active as i32,
        parent_route_id: parent,
    }
}

/// `(start, end, group)` node `i` routes `key` with right now.
async fn route_of(
    cluster: &ProcessCluster,
    i: usize,
    key: &[u8],
) -> Result<(Vec<u8>, Vec<u8>, u64)> {
    let r = dist(cluster, i)
        .await?
        .get_route(GetRouteRequest { key: key.to_vec() })
        .await?
        .into_inner();
    Ok((r.start, r.end, r.raft_group_id))
}

// ------------------------------------------------------------ grpcurl JSON

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A route as grpcurl prints it (proto3 JSON: camelCase names, 64-bit
/// integers as strings, bytes in base64, enums by name; every field).
fn route_json(r: &RouteDescriptor) -> String {
    let state = RouteState::try_from(r.state)
        .map(|s| s.as_str_name())
        .unwrap_or("?");
    format!(
        r#"{{"routeId": "{}", "start": "{}", "end": "{}", "raftGroupId": "{}", "state": "{state}", "parentRouteId": "{}"}}"#,
        r.route_id,
        base64(&r.start),
        base64(&r.end),
        r.raft_group_id,
        r.parent_route_id
    )
}

fn split_json(r: &SplitRangeResponse) -> String {
    let none = RouteDescriptor::default();
    format!(
        r#"{{"catalogVersion": "{}", "left": {}, "right": {}}}"#,
        r.catalog_version,
        route_json(r.left.as_ref().unwrap_or(&none)),
        route_json(r.right.as_ref().unwrap_or(&none))
    )
}

// ------------------------------------------------------------------- tests

/// A fresh cluster's catalog is `--shardRanges` at version 1, on every
/// node, under both service names; every node routes with it and exports
/// its version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_cluster_lists_its_shard_ranges() -> Result<()> {
    let cluster = ProcessCluster::start(readme_spec()).await?;
    let want = vec![route(1, b"", b"m", 1, 0), route(2, b"m", b"", 2, 0)];
    for i in 0..3 {
        // The watcher installs the initial catalog shortly after start;
        // a loaded machine may take a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut r = list(&cluster, i).await?;
        while r.catalog_version < 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            r = list(&cluster, i).await?;
        }
        assert_eq!((r.catalog_version, &r.routes), (1, &want), "n{}", i + 1);
        assert_eq!(
            route_of(&cluster, i, b"apple").await?,
            (vec![], b"m".to_vec(), 1)
        );
        assert_eq!(
            route_of(&cluster, i, b"zebra").await?,
            (b"m".to_vec(), vec![], 2)
        );
    }

    // proto.Distribution/ListRoutes through the alias layer, as grpcurl
    // would call it from the original's README.
    let mut grpc = tonic::client::Grpc::new(channel(&cluster.grpc_addr(1)).await?);
    grpc.ready().await?;
    let aliased: ListRoutesResponse = grpc
        .unary(
            tonic::Request::new(ListRoutesRequest {}),
            http::uri::PathAndQuery::from_static("/proto.Distribution/ListRoutes"),
            tonic::codec::ProstCodec::default(),
        )
        .await?
        .into_inner();
    assert_eq!((aliased.catalog_version, aliased.routes), (1, want));

    // Timestamps come from the oracle: strictly increasing across nodes.
    let mut last = 0;
    for i in [0, 1, 2, 0] {
        let t = dist(&cluster, i)
            .await?
            .get_timestamp(GetTimestampRequest {})
            .await?
            .into_inner()
            .timestamp;
        assert!(t > last, "timestamp {t} after {last}");
        last = t;
    }

    // The watcher installed version 1 everywhere (gauge).
    let deadline = Instant::now() + Duration::from_secs(5);
    for i in 0..3 {
        loop {
            let v = cluster.metric(i, "elastickv_catalog_version").await?;
            if v == 1.0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("n{} exports catalog version {v}", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The original README's example, answered exactly as it shows; then the
/// errors, the propagation to every node, concurrent splits, and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_split_example_and_errors() -> Result<()> {
    let mut cluster = ProcessCluster::start(readme_spec()).await?;
    assert_eq!(list(&cluster, 0).await?.catalog_version, 1);
    for i in 0..3 {
        // Every node must already route with the catalog (version 1 = the
        // same ranges) before the split, so the timing below is the
        // watcher's reaction to the split alone.
        assert_eq!(route_of(&cluster, i, b"c").await?.1, b"m".to_vec());
    }

    // grpcurl -plaintext -d '{"expectedCatalogVersion": 1, "routeId": 1,
    //   "splitKey": "Zw=="}' localhost:50051 proto.Distribution/SplitRange
    // — sent to a node that is not necessarily group 1's leader.
    let splitter = (cluster.leader_of(1).await.context("no leader")? + 1) % 3;
    let mut c = dist(&cluster, splitter).await?;
    let r = c
        .split_range(SplitRangeRequest {
            expected_catalog_version: 1,
            route_id: 1,
            split_key: b"g".to_vec(),
        })
        .await?
        .into_inner();
    let committed = Instant::now();
    assert_eq!(
        split_json(&r),
        r#"{"catalogVersion": "2", "left": {"routeId": "3", "start": "", "end": "Zw==", "raftGroupId": "1", "state": "ROUTE_STATE_ACTIVE", "parentRouteId": "1"}, "right": {"routeId": "4", "start": "Zw==", "end": "bQ==", "raftGroupId": "1", "state": "ROUTE_STATE_ACTIVE", "parentRouteId": "1"}}"#
    );

    // Every node routes with version 2 within a second.
    let mut seen = vec![None; 3];
    while seen.iter().any(Option::is_none) {
        for (i, slot) in seen.iter_mut().enumerate() {
            if slot.is_none() && route_of(&cluster, i, b"c").await?.1 == b"g".to_vec() {
                *slot = Some(committed.elapsed());
            }
        }
        if committed.elapsed() > Duration::from_secs(5) {
            bail!("not every node saw version 2 within 5 s: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let slowest = seen.iter().flatten().max().copied().unwrap_or_default();
    eprintln!("catalog version 2 visible on every node after {seen:?} (slowest {slowest:?})");
    assert!(slowest < Duration::from_secs(1), "{seen:?}");

    // The parent is gone; every node lists the same catalog.
    let want = vec![
        route(3, b"", b"g", 1, 1),
        route(4, b"g", b"m", 1, 1),
        route(2, b"m", b"", 2, 0),
    ];
    for i in 0..3 {
        let l = list(&cluster, i).await?;
        assert_eq!((l.catalog_version, &l.routes), (2, &want), "n{}", i + 1);
    }

    // Errors.
    let split = |expected, id, key: &[u8]| {
        let mut c = c.clone();
        let req = SplitRangeRequest {
            expected_catalog_version: expected,
            route_id: id,
            split_key: key.to_vec(),
        };
        async move { c.split_range(req).await }
    };
    for (expected, id, key, code) in [
        (1, 3, &b"c"[..], Code::FailedPrecondition), // stale version
        (2, 1, b"c", Code::NotFound),                // the split parent
        (2, 99, b"c", Code::NotFound),
        (2, 3, b"", Code::InvalidArgument),  // == start
        (2, 3, b"g", Code::InvalidArgument), // == end
        (2, 3, b"x", Code::InvalidArgument), // outside
        (2, 2, b"a", Code::InvalidArgument), // before an unbounded route
    ] {
        let err = split(expected, id, key).await.expect_err("refused");
        assert_eq!(
            err.code(),
            code,
            "v{expected} route {id} key {key:?}: {err:?}"
        );
    }
    assert_eq!(list(&cluster, 0).await?.catalog_version, 2);

    // Two splits racing from different nodes on the same version: exactly
    // one commits, the other is told the version moved.
    let (mut a, mut b) = (dist(&cluster, 0).await?, dist(&cluster, 2).await?);
    let (ra, rb) = tokio::join!(
        a.split_range(SplitRangeRequest {
            expected_catalog_version: 2,
            route_id: 2,
            split_key: b"t".to_vec(),
        }),
        b.split_range(SplitRangeRequest {
            expected_catalog_version: 2,
            route_id: 4,
            split_key: b"j".to_vec(),
        })
    );
    let (won, lost) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.into_inner(), l),
        other => bail!("expected exactly one split to commit: {other:?}"),
    };
    assert_eq!(won.catalog_version, 3);
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    let v3 = list(&cluster, 1).await?;
    assert_eq!((v3.catalog_version, v3.routes.len()), (3, 4));
    assert_eq!(
        (won.left.map(|r| r.route_id), won.right.map(|r| r.route_id)),
        (Some(5), Some(6))
    );

    // Kill group 1's leader: the survivors elect another, a split through
    // one of them reaches every running node's table, and the killed node
    // catches up when it returns.
    let leader = cluster.leader_of(1).await.context("no leader")?;
    cluster.kill(leader)?;
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    let via = (leader + 1) % 3;
    let v4 = dist(&cluster, via)
        .await?
        .split_range(SplitRangeRequest {
            expected_catalog_version: 3,
            route_id: 3,
            split_key: b"c".to_vec(),
        })
        .await?
        .into_inner();
    assert_eq!(v4.catalog_version, 4);
    let committed = Instant::now();
    let other = (leader + 2) % 3;
    while route_of(&cluster, other, b"a").await?.1 != b"c".to_vec() {
        if committed.elapsed() > Duration::from_secs(1) {
            bail!("n{} did not route with version 4 within 1 s", other + 1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "after a leader change, version 4 reached n{} in {:?}",
        other + 1,
        committed.elapsed()
    );
    cluster.restart(leader)?;
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    let v4_list = list(&cluster, via).await?;
    assert_eq!(v4_list.catalog_version, 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    while route_of(&cluster, leader, b"a").await?.1 != b"c".to_vec() {
        if Instant::now() > deadline {
            bail!("restarted n{} never caught up with version 4", leader + 1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // kill -9 and restart the bootstrap node: the catalog is not
    // re-initialised, and the node routes with it as soon as it serves.
    cluster.kill(0)?;
    cluster.restart(0)?;
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    assert_eq!(list(&cluster, 0).await?, v4_list);
    assert_eq!(route_of(&cluster, 0, b"a").await?.1, b"c".to_vec());
    Ok(())
}

/// Writers put through every node while routes are split; every
/// acknowledged write is then read back from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_under_load_loses_no_acknowledged_write() -> Result<()> {
    let cluster = ProcessCluster::start(readme_spec()).await?;
    assert_eq!(list(&cluster, 0).await?.catalog_version, 1);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6usize {
        let addrs: Vec<String> = (0..3).map(|i| cluster.grpc_addr(i)).collect();
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut clients = Vec::new();
            for a in &addrs {
                if let Ok(ch) = channel(a).await {
                    clients.push(RawKvClient::new(ch));
                }
            }
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && !clients.is_empty() {
                // Keys spread over the whole alphabet: both groups and
                // every child of the splits below.
                let letter = char::from(b'a' + ((n * 7 + w * 3) % 26) as u8);
                let key = format!("{letter}{w}-{n}");
                let value = format!("v{n}");
                let idx = (n + w) % clients.len();
                let c = &mut clients[idx];
                let req = RawPutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                };
                if let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(5), c.raw_put(req)).await
                {
                    if r.into_inner().success {
                        acked.lock().expect("lock").insert(key, value);
                    }
                }
                n += 1;
            }
        }));
    }

    // Three splits, each through a different node, while the load runs.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let plan: [(usize, u64, &[u8]); 3] = [(0, 1, b"g"), (1, 2, b"t"), (2, 3, b"c")];
    for (node, route_id, key) in plan {
        let version = list(&cluster, node).await?.catalog_version;
        let r = dist(&cluster, node)
            .await?
            .split_range(SplitRangeRequest {
                expected_catalog_version: version,
                route_id,
                split_key: key.to_vec(),
            })
            .await?
            .into_inner();
        assert_eq!(r.catalog_version, version + 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let acked = acked.lock().expect("lock").clone();
    eprintln!("{} writes acknowledged across 3 splits", acked.len());
    assert!(
        acked.len() > 100,
        "too few writes to mean anything: {}",
        acked.len()
    );

    let final_catalog = list(&cluster, 0).await?;
    assert_eq!(final_catalog.catalog_version, 4);
    let starts: Vec<&[u8]> = final_catalog
        .routes
        .iter()
        .map(|r| r.start.as_slice())
        .collect();
    assert_eq!(starts, vec![&b""[..], b"c", b"g", b"m", b"t"]);
    for i in 0..3 {
        assert_eq!(list(&cluster, i).await?, final_catalog);
        let mut c = cluster.raw_client(i).await?;
        for (k, v) in &acked {
            let r = c
                .raw_get(RawGetRequest {
                    key: k.clone().into_bytes(),
                    ts: 0,
                })
                .await?
                .into_inner();
            assert!(r.exists, "n{} lost {k}", i + 1);
            assert_eq!(r.value, v.as_bytes(), "n{} key {k}", i + 1);
        }
    }
    Ok(())
}

/// Once the catalog exists, every group records the ranges it owns at the
/// catalog's version (so a write routed by a stale table is refused), and
/// that record follows splits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_record_their_ownership_from_the_catalog() -> Result<()> {
    let cluster = ProcessCluster::start(readme_spec()).await?;
    let recorded = |group: u64, version: u64| {
        let needle = format!("group ownership recorded group={group} version={version}");
        cluster.nodes.iter().any(|n| {
            std::fs::read_to_string(n.data_dir.join("node.log"))
                .map(|log| log.contains(&needle))
                .unwrap_or(false)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !(recorded(1, 1) && recorded(2, 1)) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "ownership at version 1 never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut d = dist(&cluster, 0).await?;
    d.split_range(SplitRangeRequest {
        expected_catalog_version: 1,
        route_id: 1,
        split_key: b"g".to_vec(),
    })
    .await?;
    while !recorded(1, 2) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "ownership at version 2 never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Writes on both sides of the split still succeed.
    let mut raw = cluster.raw_client(1).await?;
    for key in ["apple", "kiwi", "zebra"] {
        raw.raw_put(elastickv_proto::public::RawPutRequest {
            key: key.as_bytes().to_vec(),
            value: b"1".to_vec(),
        })
        .await?;
    }
    Ok(())
}
