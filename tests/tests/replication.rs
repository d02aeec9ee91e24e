//! Replication across real processes: forwarding, linearizable reads on
//! every node, leader kill under load, catch-up by log and by snapshot,
//! runtime membership, full-cluster restart, and bad input.

use anyhow::{Context, Result};
use elastickv_chaos::cluster::{channel, ClusterSpec, ProcessCluster};
use elastickv_proto::admin::admin_client::AdminClient;
use elastickv_proto::admin::{AddLearnerRequest, PromoteVoterRequest};
use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{RawGetRequest, RawPutRequest, RawScanAtRequest};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

async fn put(c: &mut RawKvClient<Channel>, k: &str, v: &str) -> Result<u64> {
    let r = c
        .raw_put(RawPutRequest {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    anyhow::ensure!(r.success, "put not successful");
    Ok(r.commit_index)
}

async fn get(c: &mut RawKvClient<Channel>, k: &str) -> Result<Option<String>> {
    let r = c
        .raw_get(RawGetRequest {
            key: k.as_bytes().to_vec(),
            ts: 0,
        })
        .await?
        .into_inner();
    Ok(r.exists
        .then(|| String::from_utf8_lossy(&r.value).into_owned()))
}

async fn follower(cluster: &ProcessCluster) -> Result<usize> {
    let leader = cluster.leader_of(1).await.context("no leader")?;
    Ok((leader + 1) % cluster.nodes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_is_read_on_every_node() -> Result<()> {
    let cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let f = follower(&cluster).await?;
    let mut c = cluster.raw_client(f).await?;
    put(&mut c, "greeting", "hello").await?;
    for i in 0..3 {
        let mut c = cluster.raw_client(i).await?;
        assert_eq!(
            get(&mut c, "greeting").await?.as_deref(),
            Some("hello"),
            "node {i}"
        );
    }
    // Scans see it too, in both directions.
    put(&mut c, "greeting2", "again").await?;
    let mut c = cluster.raw_client((f + 1) % 3).await?;
    let rows = c
        .raw_scan_at(RawScanAtRequest {
            start_key: b"greet".to_vec(),
            end_key: vec![],
            limit: 10,
            ts: 0,
            reverse: true,
        })
        .await?
        .into_inner()
        .kv;
    let keys: Vec<_> = rows
        .iter()
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .collect();
    assert_eq!(keys, vec!["greeting2", "greeting"]);
    Ok(())
}

/// Writers hammer the cluster through every node; the leader is killed with
/// SIGKILL mid-load. Every acknowledged write must survive, and the killed
/// node must catch up after restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_load_loses_no_acknowledged_write() -> Result<()> {
    let mut cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6 {
        let addrs: Vec<String> = (0..3).map(|i| cluster.grpc_addr(i)).collect();
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("w{w}-{n}");
                let addr = &addrs[(n as usize + w) % addrs.len()];
                let Ok(ch) = channel(addr).await else {
                    continue;
                };
                let mut c = RawKvClient::new(ch);
                let req = RawPutRequest {
                    key: key.clone().into_bytes(),
                    value: format!("v{n}").into_bytes(),
                };
                if let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(5), c.raw_put(req)).await
                {
                    if r.into_inner().success {
                        acked.lock().expect("lock").insert(key, format!("v{n}"));
                    }
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.leader_of(1).await.context("no leader")?;
    cluster.kill(leader)?;
    let killed_at = Instant::now();
    let before_kill = acked.lock().expect("lock").len();
    // A new leader must appear among the survivors.
    cluster.wait_all_groups_led(Duration::from_secs(20)).await?;
    let failover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > before_kill,
        "writes continued after the kill ({before_kill} -> {})",
        acked.len()
    );
    eprintln!(
        "acknowledged {} writes; failover took {failover:?}",
        acked.len()
    );

    cluster.restart(leader)?;
    cluster.wait_all_groups_led(Duration::from_secs(20)).await?;
    for i in 0..3 {
        let mut c = cluster.raw_client(i).await?;
        for (k, v) in &acked {
            assert_eq!(
                get(&mut c, k).await?.as_deref(),
                Some(v.as_str()),
                "node {i} key {k}"
            );
        }
    }
    Ok(())
}

/// A follower down while the log is compacted past it catches up by
/// snapshot installation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_by_snapshot() -> Result<()> {
    let spec = ClusterSpec {
        extra_args: vec![
            "--raftSnapshotLogs".into(),
            "50".into(),
            "--raftSnapshotKeepLogs".into(),
            "5".into(),
        ],
        ..Default::default()
    };
    let mut cluster = ProcessCluster::start(spec).await?;
    let lagging = follower(&cluster).await?;
    cluster.kill(lagging)?;
    let writer = (lagging + 1) % 3;
    let mut c = cluster.raw_client(writer).await?;
    let mut last_index = 0;
    for i in 0..400 {
        last_index = put(&mut c, &format!("snap-{i:04}"), &format!("value-{i}")).await?;
    }
    cluster.restart(lagging)?;
    cluster
        .wait_applied(lagging, 1, last_index, Duration::from_secs(30))
        .await?;
    let st = cluster.status(lagging).await?;
    let g = st
        .groups
        .iter()
        .find(|g| g.group_id == 1)
        .context("group 1")?;
    assert!(
        g.snapshot_index > 0,
        "the lagging node must hold a snapshot: {g:?}"
    );
    let log = std::fs::read_to_string(cluster.nodes[lagging].data_dir.join("node.log"))?;
    assert!(
        log.contains("installed snapshot"),
        "the lagging node caught up without a snapshot install"
    );
    let mut c = cluster.raw_client(lagging).await?;
    for i in (0..400).step_by(37) {
        assert_eq!(
            get(&mut c, &format!("snap-{i:04}")).await?,
            Some(format!("value-{i}"))
        );
    }
    Ok(())
}

/// A node started outside the bootstrap list joins as learner, is promoted,
/// catches up and serves reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_added_at_runtime_catches_up_and_serves() -> Result<()> {
    let cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let mut c = cluster.raw_client(0).await?;
    for i in 0..50 {
        put(&mut c, &format!("pre-{i}"), "x").await?;
    }
    // Start n4 without bootstrap: it waits to be added.
    let port = elastickv_chaos::cluster::free_port()?;
    let dir = cluster.dir.join("n4");
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("node.log"))?;
    let bin = elastickv_chaos::cluster::find_binary("elastickv")?;
    let mut n4 = std::process::Command::new(bin)
        .args(["--raftId", "n4", "--address", &format!("127.0.0.1:{port}")])
        .arg("--raftDataDir")
        .arg(&dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let result = async {
        // Wait until n4 listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "n4 never started listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut admin = AdminClient::new(channel(&cluster.grpc_addr(1)).await?);
        admin
            .add_learner(AddLearnerRequest {
                raft_id: "n4".into(),
                address: format!("127.0.0.1:{port}"),
                group_id: 0,
            })
            .await?;
        admin
            .promote_voter(PromoteVoterRequest {
                raft_id: "n4".into(),
                group_id: 0,
            })
            .await?;
        let st = cluster.status(0).await?;
        let g = st
            .groups
            .iter()
            .find(|g| g.group_id == 1)
            .context("group 1")?;
        assert!(
            g.members.iter().any(|m| m.raft_id == "n4" && m.voter),
            "{g:?}"
        );
        let mut c4 = RawKvClient::new(channel(&format!("127.0.0.1:{port}")).await?);
        for i in (0..50).step_by(7) {
            assert_eq!(
                get(&mut c4, &format!("pre-{i}")).await?.as_deref(),
                Some("x")
            );
        }
        put(&mut c4, "from-n4", "y").await?;
        let mut c1 = cluster.raw_client(2).await?;
        assert_eq!(get(&mut c1, "from-n4").await?.as_deref(), Some("y"));
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = n4.kill();
    let _ = n4.wait();
    result
}

/// Every node stopped (SIGTERM) and started again keeps every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_every_write() -> Result<()> {
    let mut cluster = ProcessCluster::start(ClusterSpec::default()).await?;
    let mut c = cluster.raw_client(0).await?;
    for i in 0..100 {
        put(&mut c, &format!("durable-{i}"), &format!("{i}")).await?;
    }
    for i in 0..3 {
        let status = cluster.terminate(i)?;
        assert!(
            status.success(),
            "graceful shutdown of node {i}: {status:?}"
        );
    }
    for i in 0..3 {
        cluster.restart(i)?;
    }
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    let mut c = cluster.raw_client(2).await?;
    for i in 0..100 {
        assert_eq!(
            get(&mut c, &format!("durable-{i}")).await?,
            Some(format!("{i}"))
        );
    }
    Ok(())
}

/// Oversized values, oversized keys, bad limits and undecodable messages get
/// InvalidArgument; the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_invalid_argument() -> Result<()> {
    let spec = ClusterSpec {
        extra_args: vec!["--maxValueBytes".into(), "1024".into()],
        ..Default::default()
    };
    let cluster = ProcessCluster::start(spec).await?;
    let mut c = cluster.raw_client(0).await?;
    let err = c
        .raw_put(RawPutRequest {
            key: b"big".to_vec(),
            value: vec![7u8; 2048],
        })
        .await
        .expect_err("value over the limit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let err = c
        .raw_put(RawPutRequest {
            key: vec![b'k'; 20 * 1024],
            value: b"v".to_vec(),
        })
        .await
        .expect_err("key over the limit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let err = c
        .raw_scan_at(RawScanAtRequest {
            start_key: vec![],
            end_key: vec![],
            limit: -5,
            ts: 0,
            reverse: false,
        })
        .await
        .expect_err("negative limit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // Garbage where a protobuf message should be.
    let mut grpc = tonic::client::Grpc::new(channel(&cluster.grpc_addr(0)).await?);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_static("/RawKV/RawPut");
    let err = grpc
        .unary::<Vec<u8>, Vec<u8>, _>(
            tonic::Request::new(vec![0xff, 0xff, 0xff, 0x0f, 0x01]),
            path,
            RawBytes,
        )
        .await
        .expect_err("garbage must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    put(&mut c, "still", "serving").await?;
    assert_eq!(get(&mut c, "still").await?.as_deref(), Some("serving"));
    Ok(())
}

/// A codec that sends raw bytes, to put malformed protobuf on the wire.
#[derive(Clone, Copy)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
