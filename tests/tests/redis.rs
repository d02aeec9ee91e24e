//! The Redis front end of a real 3-node cluster, driven by `redis-cli`
//! (installed by `scripts/test.sh`): every data type, expiry, MULTI/EXEC,
//! WATCH conflicts between clients on different nodes, concurrent writers,
//! AUTH, and writes on one node read on another.

use anyhow::{bail, Context, Result};
use elastickv_chaos::cluster::{ClusterSpec, ProcessCluster};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "s3cret";

fn redis_cli_available() -> Result<()> {
    match Command::new("redis-cli").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("redis-cli not found: install redis-tools (scripts/test.sh does)"),
    }
}

/// One `redis-cli` invocation; stdout with the trailing newline removed.
fn cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "-a", PASSWORD, "--no-auth-warning"])
        .args(args)
        .output()
        .context("running redis-cli")?;
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    while s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// An interactive `redis-cli` session (one connection): commands go to
/// its stdin, one reply line per command read back.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn open(port: u16) -> Result<Session> {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "-a", PASSWORD, "--no-auth-warning"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning redis-cli")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Session {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one command whose reply is a single line.
    fn send(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let mut reply = String::new();
        self.stdout.read_line(&mut reply)?;
        Ok(reply.trim_end_matches('\n').to_string())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn cluster() -> Result<ProcessCluster> {
    redis_cli_available()?;
    ProcessCluster::start(ClusterSpec {
        groups: "1,2".into(),
        // KEEP_DATA=1 keeps the nodes' data and logs, as in the e2e tests.
        keep_data: std::env::var("KEEP_DATA").is_ok(),
        shard_ranges: ":m=1,m:=2".into(),
        extra_args: vec!["--redisPassword".into(), PASSWORD.into()],
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_types_across_nodes() -> Result<()> {
    let cluster = cluster().await?;
    let p: Vec<u16> = cluster.nodes.iter().map(|n| n.redis_port).collect();

    // Authentication is enforced.
    let out = Command::new("redis-cli")
        .args(["-p", &p[0].to_string(), "GET", "x"])
        .output()?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NOAUTH"),
        "{out:?}"
    );
    assert_eq!(cli(p[0], &["PING"])?, "PONG");

    // Strings: written on one node, read on the others.
    assert_eq!(cli(p[0], &["SET", "greeting", "hello"])?, "OK");
    assert_eq!(cli(p[1], &["GET", "greeting"])?, "hello");
    assert_eq!(cli(p[2], &["APPEND", "greeting", " world"])?, "11");
    assert_eq!(cli(p[0], &["GET", "greeting"])?, "hello world");
    assert_eq!(cli(p[1], &["INCRBY", "counter", "5"])?, "5");
    assert_eq!(cli(p[2], &["INCRBYFLOAT", "counter", "0.5"])?, "5.5");
    assert_eq!(cli(p[0], &["MSET", "a", "1", "b", "2"])?, "OK");
    assert_eq!(
        lines(&cli(p[2], &["MGET", "a", "nosuch", "b"])?),
        ["1", "", "2"]
    );
    assert_eq!(cli(p[1], &["SET", "a", "x", "NX"])?, "");
    assert_eq!(cli(p[1], &["GETDEL", "b"])?, "2");
    assert_eq!(cli(p[0], &["EXISTS", "b"])?, "0");

    // Hashes.
    assert_eq!(
        cli(p[0], &["HSET", "user:1", "name", "ann", "age", "40"])?,
        "2"
    );
    assert_eq!(cli(p[1], &["HGET", "user:1", "name"])?, "ann");
    assert_eq!(cli(p[2], &["HINCRBY", "user:1", "age", "1"])?, "41");
    assert_eq!(
        lines(&cli(p[0], &["HGETALL", "user:1"])?),
        ["age", "41", "name", "ann"]
    );
    assert_eq!(cli(p[1], &["HDEL", "user:1", "age"])?, "1");
    assert_eq!(cli(p[2], &["HLEN", "user:1"])?, "1");

    // Lists.
    assert_eq!(cli(p[0], &["RPUSH", "q", "a", "b", "c"])?, "3");
    assert_eq!(cli(p[1], &["LPUSH", "q", "z"])?, "4");
    assert_eq!(
        lines(&cli(p[2], &["LRANGE", "q", "0", "-1"])?),
        ["z", "a", "b", "c"]
    );
    assert_eq!(cli(p[0], &["LINSERT", "q", "BEFORE", "b", "x"])?, "5");
    assert_eq!(cli(p[1], &["LPOP", "q"])?, "z");
    assert_eq!(cli(p[2], &["RPOP", "q"])?, "c");
    assert_eq!(
        lines(&cli(p[0], &["LRANGE", "q", "0", "-1"])?),
        ["a", "x", "b"]
    );
    assert_eq!(cli(p[1], &["LMOVE", "q", "q2", "LEFT", "RIGHT"])?, "a");
    assert_eq!(cli(p[2], &["LLEN", "q2"])?, "1");

    // Sets.
    assert_eq!(cli(p[0], &["SADD", "s1", "a", "b", "c"])?, "3");
    assert_eq!(cli(p[1], &["SADD", "s2", "b", "c", "d"])?, "3");
    let mut inter = lines(&cli(p[2], &["SINTER", "s1", "s2"])?)
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    inter.sort();
    assert_eq!(inter, ["b", "c"]);
    assert_eq!(cli(p[0], &["SUNIONSTORE", "s3", "s1", "s2"])?, "4");
    assert_eq!(cli(p[1], &["SCARD", "s3"])?, "4");
    assert_eq!(cli(p[2], &["SISMEMBER", "s3", "d"])?, "1");

    // Sorted sets.
    assert_eq!(
        cli(
            p[0],
            &["ZADD", "board", "10", "ann", "20", "bob", "15", "cy"]
        )?,
        "3"
    );
    assert_eq!(cli(p[1], &["ZINCRBY", "board", "10", "ann"])?, "20");
    assert_eq!(
        lines(&cli(p[2], &["ZRANGE", "board", "0", "-1", "WITHSCORES"])?),
        ["cy", "15", "ann", "20", "bob", "20"]
    );
    assert_eq!(
        lines(&cli(
            p[0],
            &["ZRANGE", "board", "+inf", "16", "BYSCORE", "REV"]
        )?),
        ["bob", "ann"]
    );
    assert_eq!(cli(p[1], &["ZRANK", "board", "bob"])?, "2");
    assert_eq!(lines(&cli(p[2], &["ZPOPMIN", "board"])?), ["cy", "15"]);
    assert_eq!(cli(p[0], &["ZCARD", "board"])?, "2");

    // HyperLogLog: Redis's bytes, readable as a string.
    assert_eq!(cli(p[0], &["PFADD", "visitors", "a", "b", "c", "a"])?, "1");
    assert_eq!(cli(p[1], &["PFCOUNT", "visitors"])?, "3");
    assert!(cli(p[2], &["GET", "visitors"])?.starts_with("HYLL"));

    // Keyspace.
    assert_eq!(cli(p[2], &["TYPE", "board"])?, "zset");
    assert_eq!(cli(p[0], &["RENAME", "s3", "s4"])?, "OK");
    assert_eq!(cli(p[1], &["SCARD", "s4"])?, "4");
    let mut keys = lines(&cli(p[2], &["KEYS", "s*"])?)
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    keys.sort();
    assert_eq!(keys, ["s1", "s2", "s4"]);
    let dbsize: u64 = cli(p[0], &["DBSIZE"])?.parse()?;
    assert!(dbsize >= 10, "DBSIZE {dbsize}");
    assert!(cli(p[1], &["INFO", "server"])?.contains("redis_version:"));
    assert!(cli(p[1], &["INFO", "keyspace"])?.contains("db0:keys="));
    // Type errors have Redis's text.
    assert!(cli(p[2], &["LPUSH", "greeting", "x"])?.starts_with("WRONGTYPE"));

    // SCAN walks the whole keyspace on the node that issued the cursor.
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let out = cli(p[1], &["SCAN", &cursor, "COUNT", "3"])?;
        let mut it = out.lines();
        cursor = it.next().unwrap_or("0").to_string();
        seen.extend(it.map(String::from));
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len() as u64, dbsize);

    // Collections larger than one scan page (512 rows) read whole, also
    // inside a script whose own deletes and inserts straddle page ends.
    let mut hset = vec!["HSET".to_string(), "big".to_string()];
    for i in 0..1100 {
        hset.push(format!("f{i:04}"));
        hset.push(i.to_string());
    }
    let hset: Vec<&str> = hset.iter().map(String::as_str).collect();
    assert_eq!(cli(p[0], &hset)?, "1100");
    assert_eq!(lines(&cli(p[1], &["HGETALL", "big"])?).len(), 2200);
    let rewrite = "for i = 0, 599 do redis.call('HDEL', KEYS[1], string.format('f%04d', i)) end \
                   for i = 0, 49 do redis.call('HSET', KEYS[1], 'g' .. i, i) end \
                   return #redis.call('HGETALL', KEYS[1])";
    assert_eq!(cli(p[2], &["EVAL", rewrite, "1", "big"])?, "1100");
    assert_eq!(cli(p[0], &["HLEN", "big"])?, "550");
    assert_eq!(cli(p[1], &["DEL", "big"])?, "1");

    // FLUSHALL empties it for every node.
    assert_eq!(cli(p[0], &["FLUSHALL"])?, "OK");
    assert_eq!(cli(p[2], &["DBSIZE"])?, "0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_expiry_transactions_and_concurrency() -> Result<()> {
    let cluster = cluster().await?;
    let p: Vec<u16> = cluster.nodes.iter().map(|n| n.redis_port).collect();

    // Expiry is decided at each transaction's timestamp: every node agrees.
    assert_eq!(cli(p[0], &["SET", "temp", "v", "PX", "1500"])?, "OK");
    let ttl: i64 = cli(p[1], &["PTTL", "temp"])?.parse()?;
    assert!((1..=1500).contains(&ttl), "PTTL {ttl}");
    assert_eq!(cli(p[2], &["RPUSH", "tl", "a"])?, "1");
    assert_eq!(cli(p[2], &["PEXPIRE", "tl", "1500"])?, "1");
    assert_eq!(cli(p[0], &["SET", "keep", "v", "EX", "100"])?, "OK");
    assert_eq!(cli(p[1], &["PERSIST", "keep"])?, "1");
    // Expiry follows the cluster's hybrid logical clock: wait for the TTL
    // to run out, then every node must agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while cli(p[0], &["EXISTS", "temp", "tl"])? != "0" {
        assert!(std::time::Instant::now() < deadline, "keys did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for port in &p {
        assert_eq!(cli(*port, &["GET", "temp"])?, "");
        assert_eq!(cli(*port, &["EXISTS", "tl"])?, "0");
        assert_eq!(cli(*port, &["TTL", "keep"])?, "-1");
    }
    assert_eq!(cli(p[0], &["RPUSH", "tl", "b"])?, "1");
    assert_eq!(lines(&cli(p[1], &["LRANGE", "tl", "0", "-1"])?), ["b"]);

    // MULTI/EXEC: all queued commands in one transaction.
    let mut a = Session::open(p[0])?;
    assert_eq!(a.send("MULTI")?, "OK");
    assert_eq!(a.send("SET acct:1 100")?, "QUEUED");
    assert_eq!(a.send("SET acct:2 0")?, "QUEUED");
    assert_eq!(a.send("DECRBY acct:1 30")?, "QUEUED");
    assert_eq!(a.send("INCRBY acct:2 30")?, "QUEUED");
    writeln!(a.stdin, "EXEC")?;
    a.stdin.flush()?;
    let mut exec = Vec::new();
    for _ in 0..4 {
        let mut l = String::new();
        a.stdout.read_line(&mut l)?;
        exec.push(l.trim_end().to_string());
    }
    assert_eq!(exec, ["OK", "OK", "70", "30"]);
    assert_eq!(cli(p[2], &["GET", "acct:1"])?, "70");

    // WATCH: a write from another client on another node aborts EXEC.
    assert_eq!(a.send("WATCH acct:1")?, "OK");
    assert_eq!(cli(p[1], &["INCRBY", "acct:1", "5"])?, "75");
    assert_eq!(a.send("MULTI")?, "OK");
    assert_eq!(a.send("SET acct:1 0")?, "QUEUED");
    assert_eq!(a.send("EXEC")?, "", "EXEC must answer the null array");
    assert_eq!(cli(p[2], &["GET", "acct:1"])?, "75");
    // ...and without interference it goes through.
    assert_eq!(a.send("WATCH acct:1")?, "OK");
    assert_eq!(a.send("GET acct:1")?, "75");
    assert_eq!(a.send("MULTI")?, "OK");
    assert_eq!(a.send("SET acct:1 80")?, "QUEUED");
    assert_eq!(a.send("EXEC")?, "OK");
    assert_eq!(cli(p[1], &["GET", "acct:1"])?, "80");
    // An EXEC of reads is checked at its own snapshot: it answers when
    // the watched keys are unchanged, and a delete on another node since
    // WATCH (a tombstone version) aborts it.
    assert_eq!(a.send("WATCH acct:1 acct:2")?, "OK");
    assert_eq!(a.send("MULTI")?, "OK");
    assert_eq!(a.send("GET acct:1")?, "QUEUED");
    assert_eq!(a.send("EXEC")?, "80");
    assert_eq!(a.send("WATCH acct:1 acct:2")?, "OK");
    assert_eq!(cli(p[1], &["DEL", "acct:2"])?, "1");
    assert_eq!(a.send("MULTI")?, "OK");
    assert_eq!(a.send("GET acct:1")?, "QUEUED");
    assert_eq!(a.send("EXEC")?, "", "EXEC must answer the null array");
    drop(a);

    // Concurrent writers on all three nodes: conflicts are retried, no
    // increment is lost.
    let per_client = 25;
    let mut children = Vec::new();
    for port in &p {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "-a", PASSWORD, "--no-auth-warning"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        for _ in 0..per_client {
            writeln!(stdin, "INCR hits")?;
            writeln!(stdin, "HINCRBY stats hits 1")?;
            writeln!(stdin, "RPUSH log x")?;
        }
        drop(stdin);
        children.push(child);
    }
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("ERR"), "{text}");
    }
    let total = (per_client * p.len()).to_string();
    assert_eq!(cli(p[0], &["GET", "hits"])?, total);
    assert_eq!(cli(p[1], &["HGET", "stats", "hits"])?, total);
    assert_eq!(cli(p[2], &["LLEN", "log"])?, total);
    Ok(())
}

/// `kill -9` of the leader of the Redis keyspace's group while clients on
/// the other nodes INCR a counter and RPUSH to a list: a new leader takes
/// over, no acknowledged write is lost or applied twice, and the killed
/// node restarts and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_leader_killed_mid_load() -> Result<()> {
    let mut cluster = cluster().await?;
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    // Redis keys live under 0xFF: the last range, group 2.
    let leader = cluster.leader_of(2).await.context("group 2 has a leader")?;
    let ports: Vec<u16> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n.redis_port)
        .collect();
    assert_eq!(cli(ports[0], &["SET", "ctr", "0"])?, "OK");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, port) in ports.iter().copied().enumerate() {
        let stop = std::sync::Arc::clone(&stop);
        workers.push(std::thread::spawn(
            move || -> Result<(u64, u64, Vec<String>)> {
                let mut s = Session::open(port)?;
                let (mut acked, mut attempted) = (0u64, 0u64);
                let mut pushed = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    attempted += 1;
                    // An integer reply is an acknowledged increment; an error
                    // (TRYAGAIN, timeout) may or may not have been applied.
                    if s.send("INCR ctr")?.parse::<i64>().is_ok() {
                        acked += 1;
                    }
                    let item = format!("w{w}-{n}");
                    n += 1;
                    if s.send(&format!("RPUSH log {item}"))?.parse::<i64>().is_ok() {
                        pushed.push(item);
                    }
                }
                Ok((acked, attempted, pushed))
            },
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.kill(leader)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.restart(leader)?;
    cluster
        .wait_listening(leader, Duration::from_secs(30))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acked, mut attempted) = (0, 0);
    let mut pushed = Vec::new();
    for w in workers {
        let (a, t, p) = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        acked += a;
        attempted += t;
        pushed.extend(p);
    }
    assert!(acked > 10, "the load made progress ({acked} acknowledged)");
    let new_leader = cluster.leader_of(2).await.context("a new leader")?;
    // Every acknowledged increment counted once; unknown outcomes at most once.
    let final_ctr: u64 = cli(ports[0], &["GET", "ctr"])?.parse()?;
    assert!(
        (acked..=attempted).contains(&final_ctr),
        "counter {final_ctr}, acknowledged {acked}, attempted {attempted}"
    );
    // Every acknowledged push is in the list, exactly once.
    let log = cli(ports[1], &["LRANGE", "log", "0", "-1"])?;
    let items = lines(&log);
    for p in &pushed {
        assert_eq!(
            items.iter().filter(|i| **i == p.as_str()).count(),
            1,
            "{p} acknowledged, must appear once"
        );
    }
    // The restarted node catches up and serves the same value.
    let restarted = cluster.nodes[leader].redis_port;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if cli(restarted, &["GET", "ctr"])? == final_ctr.to_string() {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("restarted node never caught up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "leader n{} killed, new leader n{}: {acked} acknowledged INCRs of {attempted}, counter {final_ctr}, {} pushes",
        leader + 1,
        new_leader + 1,
        pushed.len()
    );
    Ok(())
}

/// A leader change must not move the cluster's clock. The new leader's
/// clock has to pass the HLC ceiling its predecessor committed; if it
/// jumped there, every TTL would lose up to the ceiling's lead at once
/// (a `SET lock v NX PX ...` lock expiring early) and then stand still.
/// Each round moves both groups' leadership to another node, then asks
/// that node (whose clock is the one lifted) for the TTL of a key set
/// just before: it must have run down by the wall time elapsed, no more,
/// and keep running down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_keeps_wall_clock_pace_across_leader_changes() -> Result<()> {
    // Long enough for leader transfers that need a few campaigns.
    const TTL_MS: i64 = 30_000;
    // Slack for redis-cli start-up and scheduling on a busy machine.
    const SLACK_MS: i64 = 400;

    let cluster = cluster().await?;
    cluster.wait_all_groups_led(Duration::from_secs(30)).await?;
    let p: Vec<u16> = cluster.nodes.iter().map(|n| n.redis_port).collect();
    // Let the ceiling renewal of the fresh cluster run ahead first, as it
    // does in a cluster that has been up for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..3 {
        let key = format!("lease:{round}");
        let set_at = std::time::Instant::now();
        assert_eq!(
            cli(p[0], &["SET", &key, "v", "PX", &TTL_MS.to_string()])?,
            "OK"
        );
        let first = cluster
            .leader_of(1)
            .await
            .context("group 1 without a leader")?;
        let to = (first + 1) % cluster.nodes.len();
        for group in [1u64, 2] {
            move_leader(&cluster, group, to).await?;
        }
        // A write through the new leader: its commit timestamp is the
        // clock every replica now follows.
        assert_eq!(cli(p[to], &["SET", &format!("{key}:probe"), "x"])?, "OK");
        let pttl: i64 = cli(p[to], &["PTTL", &key])?.parse()?;
        let elapsed = set_at.elapsed().as_millis() as i64;
        assert!(
            pttl >= TTL_MS - elapsed - SLACK_MS,
            "round {round}: {elapsed} ms after SET PX {TTL_MS} and a leader change to n{}, PTTL is {pttl}",
            to + 1
        );
        eprintln!(
            "round {round}: leader change to n{}, PTTL {pttl} {elapsed} ms after SET PX {TTL_MS}",
            to + 1
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let later: i64 = cli(p[to], &["PTTL", &key])?.parse()?;
        assert!(
            later > 0 && later <= pttl - 500,
            "round {round}: the clock stood still: PTTL {pttl}, then {later} 700 ms later"
        );
    }
    Ok(())
}

/// Make node `to` lead `group`. A transfer asks `to` to campaign; its vote
/// can be refused while the others still honour the old leader's lease, and
/// the election that follows may pick another node, so ask again until it
/// holds.
async fn move_leader(cluster: &ProcessCluster, group: u64, to: usize) -> Result<()> {
    use elastickv_proto::admin::admin_client::AdminClient;
    use elastickv_proto::admin::TransferLeaderRequest;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let leader = cluster.leader_of(group).await;
        if leader == Some(to) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("group {group} did not move to n{}", to + 1);
        }
        let Some(leader) = leader else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut admin =
            AdminClient::new(elastickv_chaos::cluster::channel(&cluster.grpc_addr(leader)).await?);
        admin
            .transfer_leader(TransferLeaderRequest {
                raft_id: cluster.nodes[to].name.clone(),
                group_id: group,
            })
            .await?;
        let settle = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < settle && cluster.leader_of(group).await != Some(to) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
