//! `elastickv-cli` against a real 3-node cluster: the commands an operator
//! types, checked by their output and exit status.

use anyhow::Result;
use elastickv_chaos::cluster::{find_binary, ClusterSpec, ProcessCluster};
use std::process::Output;

fn cli(addr: &str, args: &[&str]) -> Result<Output> {
    let bin = find_binary("elastickv-cli")?;
    Ok(std::process::Command::new(bin)
        .arg("--address")
        .arg(addr)
        .args(args)
        .output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_round_trip_and_status() -> Result<()> {
    let cluster = ProcessCluster::start(ClusterSpec {
        groups: "1,2".into(),
        shard_ranges: ":m=1,m:=2".into(),
        ..Default::default()
    })
    .await?;
    let a1 = cluster.grpc_addr(1);
    let a2 = cluster.grpc_addr(2);

    let put = cli(&a1, &["put", "apple", "red"])?;
    assert!(
        put.status.success(),
        "put failed: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let put = cli(&a1, &["put", "zebra", "striped"])?;
    assert!(put.status.success());

    let get = cli(&a2, &["get", "apple"])?;
    assert!(get.status.success());
    assert!(stdout(&get).contains("red"), "{}", stdout(&get));

    // A scan across both groups returns both keys in order.
    let scan = cli(&a2, &["scan", "a"])?;
    let out = stdout(&scan);
    let (apple, zebra) = (out.find("apple"), out.find("zebra"));
    assert!(apple.is_some() && zebra.is_some() && apple < zebra, "{out}");

    let del = cli(&a2, &["delete", "apple"])?;
    assert!(del.status.success());
    let missing = cli(&a1, &["get", "apple"])?;
    assert_eq!(
        missing.status.code(),
        Some(3),
        "not found exits 3: {}",
        stdout(&missing)
    );

    let status = cli(&a1, &["status", "--json"])?;
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let text = json.to_string();
    for name in ["n1", "n2", "n3"] {
        assert!(text.contains(name), "status lists {name}: {text}");
    }

    // A dead node: a clear error and a non-zero exit, not a hang.
    let dead = cli("127.0.0.1:1", &["--timeout", "1s", "get", "x"])?;
    assert_eq!(dead.status.code(), Some(1));
    Ok(())
}
