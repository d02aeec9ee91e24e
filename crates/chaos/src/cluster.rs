//! A cluster of real `elastickv` processes on loopback, for multi-process
//! tests, benchmarks and the chaos harness: start, kill -9, restart, pause
//! and resume nodes, and ask them for their Raft status.

use crate::proxy::Mesh;
use anyhow::{anyhow, bail, Context, Result};
use elastickv_proto::admin::admin_client::AdminClient;
use elastickv_proto::admin::{StatusRequest, StatusResponse};
use elastickv_proto::public::raw_kv_client::RawKvClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// `--raftGroups` value for every node.
    pub groups: String,
    /// `--shardRanges` value for every node (empty: one group owns all).
    pub shard_ranges: String,
    /// Extra flags for every node.
    pub extra_args: Vec<String>,
    /// Keep the data directory after drop (for post-mortems).
    pub keep_data: bool,
    /// Route every node-to-node link through a [`Mesh`] proxy the harness
    /// can cut.
    pub proxied: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            groups: "1".into(),
            shard_ranges: String::new(),
            extra_args: Vec::new(),
            keep_data: false,
            proxied: false,
        }
    }
}

/// One node process.
pub struct NodeProc {
    pub name: String,
    pub grpc_port: u16,
    pub redis_port: u16,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NodeProc {
    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// A running cluster; every process is killed on drop.
pub struct ProcessCluster {
    pub nodes: Vec<NodeProc>,
    pub spec: ClusterSpec,
    /// Link proxies, when the spec asked for them.
    pub mesh: Option<Mesh>,
    bin: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub dir: PathBuf,
}

/// A free loopback TCP port for a node to listen on.
///
/// Chosen below the kernel's ephemeral range, never by binding port 0: a
/// port the kernel picked and we released goes back to the pool outgoing
/// connections draw their local ports from, and under parallel tests some
/// client socket took one before the node could bind it (the node then
/// died with "address in use"). Ports below the range are only ever taken
/// by listeners; each is checked free by binding it, and the per-process
/// cursor starts at a random offset so concurrent test processes rarely
/// probe the same ports.
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let (lo, hi) = listener_port_range();
    let span = u32::from(hi - lo);
    if CURSOR.load(Ordering::Relaxed) == u32::MAX {
        let _ = CURSOR.compare_exchange(
            u32::MAX,
            rand::random::<u32>() % span,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    for _ in 0..span {
        let offset = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
        let port = lo + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port in {lo}..{hi}")
}

/// `[lo, hi)`: ports outside the kernel's ephemeral range (read from
/// `/proc`; Linux's default 32768-60999 when unreadable).
fn listener_port_range() -> (u16, u16) {
    let (eph_lo, eph_hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    const FLOOR: u16 = 10_000;
    const MIN_SPAN: u16 = 2_000;
    if eph_lo >= FLOOR + MIN_SPAN {
        (FLOOR, eph_lo)
    } else if eph_hi <= u16::MAX - MIN_SPAN {
        (eph_hi + 1, u16::MAX)
    } else {
        // The whole space is ephemeral: nothing better than anywhere.
        (FLOOR, u16::MAX)
    }
}

/// The `elastickv` binary: `$ELASTICKV_BIN`, or next to the running
/// executable (target/<profile>/ or its deps/ directory).
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    bail!("cannot find the {name} binary next to {}; build it (cargo build --bin {name}) or set {var}", exe.display())
}

impl ProcessCluster {
    /// Start `spec.nodes` nodes; n1 bootstraps the cluster with all of them.
    /// Returns once every group has a leader.
    pub async fn start(spec: ClusterSpec) -> Result<ProcessCluster> {
        let bin = find_binary("elastickv")?;
        let tmp = tempfile::Builder::new()
            .prefix("elastickv-cluster-")
            .tempdir()?;
        let dir = tmp.path().to_path_buf();
        let (tmp, dir) = if spec.keep_data {
            (None, tmp.keep())
        } else {
            (Some(tmp), dir)
        };
        let mut ports = Vec::new();
        for _ in 0..spec.nodes {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (g, _, _))| format!("n{}=127.0.0.1:{g}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mesh = if spec.proxied {
            let grpc_ports: Vec<u16> = ports.iter().map(|p| p.0).collect();
            Some(Mesh::start(&grpc_ports).await?)
        } else {
            None
        };
        let mut nodes = Vec::new();
        for (i, (grpc, redis, metrics)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let data_dir = dir.join(&name);
            let mut args = vec![
                "--raftId".into(),
                name.clone(),
                "--address".into(),
                format!("127.0.0.1:{grpc}"),
                "--raftDataDir".into(),
                data_dir.display().to_string(),
                "--raftBootstrapMembers".into(),
                members.clone(),
                "--raftGroups".into(),
                spec.groups.clone(),
                "--redisAddress".into(),
                format!("127.0.0.1:{redis}"),
                "--metricsAddress".into(),
                format!("127.0.0.1:{metrics}"),
            ];
            if !spec.shard_ranges.is_empty() {
                args.push("--shardRanges".into());
                args.push(spec.shard_ranges.clone());
            }
            if i == 0 {
                args.push("--raftBootstrap".into());
            }
            if let Some(mesh) = &mesh {
                let overrides = (0..ports.len())
                    .filter(|j| *j != i)
                    .filter_map(|j| mesh.port(i, j).map(|p| format!("n{}=127.0.0.1:{p}", j + 1)))
                    .collect::<Vec<_>>()
                    .join(",");
                args.push("--raftDialOverrides".into());
                args.push(overrides);
            }
            args.extend(spec.extra_args.iter().cloned());
            nodes.push(NodeProc {
                name,
                grpc_port: *grpc,
                redis_port: *redis,
                metrics_port: *metrics,
                data_dir,
                args,
                child: None,
            });
        }
        let mut cluster = ProcessCluster {
            nodes,
            spec,
            mesh,
            bin,
            _dir: tmp,
            dir,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        if let Err(e) = cluster.wait_all_groups_led(Duration::from_secs(30)).await {
            // The error names the directory: keep its logs for the reader.
            if let Some(tmp) = cluster._dir.take() {
                let _ = tmp.keep();
            }
            return Err(e);
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data_dir.join("node.log"))?;
        let child = Command::new(&self.bin)
            .args(&node.args)
            .env(
                "RUST_LOG",
                std::env::var("ELASTICKV_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Restart node `i` with its data (it must be stopped).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.nodes[i].child.is_some() {
            bail!("{} is still running", self.nodes[i].name);
        }
        self.spawn(i)
    }

    /// Replace node `i` by an empty node with the same id and address:
    /// kill it, delete its data (keeping `node.log` for post-mortems) and
    /// start it again without `--raftBootstrap`, for good: the cluster
    /// exists, and an empty node must wait to be added rather than form a
    /// cluster of its own (bootstrapping only skips initialized groups).
    pub fn wipe_and_restart(&mut self, i: usize) -> Result<()> {
        self.kill(i)?;
        let node = &mut self.nodes[i];
        for entry in std::fs::read_dir(&node.data_dir)
            .with_context(|| format!("listing {}", node.data_dir.display()))?
        {
            let entry = entry?;
            if entry.file_name() == "node.log" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("removing {}", path.display()))?;
        }
        node.args.retain(|a| a != "--raftBootstrap");
        self.spawn(i)
    }

    /// Wait until node `i` accepts gRPC connections.
    pub async fn wait_listening(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let port = self.nodes[i].grpc_port;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("{} is not listening after {timeout:?}", self.nodes[i].name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGTERM node `i` and wait for it to exit.
    pub fn terminate(&mut self, i: usize) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.nodes[i].child.take() else {
            bail!("{} is not running", self.nodes[i].name)
        };
        signal(child.id(), libc::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("{} did not exit within 15 s of SIGTERM", self.nodes[i].name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP node `i`.
    pub fn pause(&self, i: usize) -> Result<()> {
        let pid = self.nodes[i].pid().ok_or_else(|| anyhow!("not running"))?;
        signal(pid, libc::SIGSTOP)
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) -> Result<()> {
        let pid = self.nodes[i].pid().ok_or_else(|| anyhow!("not running"))?;
        signal(pid, libc::SIGCONT)
    }

    pub fn grpc_addr(&self, i: usize) -> String {
        self.nodes[i].grpc_addr()
    }

    /// Node `i`'s Prometheus metrics, as text.
    pub async fn metrics_text(&self, i: usize) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s =
            tokio::net::TcpStream::connect(("127.0.0.1", self.nodes[i].metrics_port)).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    /// A metric's value on node `i` (first sample of that name).
    pub async fn metric(&self, i: usize, name: &str) -> Result<f64> {
        let text = self.metrics_text(i).await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (n, v) = l.rsplit_once(' ')?;
                (n == name || n.starts_with(&format!("{name}{{"))).then(|| v.parse().ok())?
            })
            .ok_or_else(|| anyhow!("metric {name} not found on {}", self.nodes[i].name))
    }

    /// A RawKV client for node `i`.
    pub async fn raw_client(&self, i: usize) -> Result<RawKvClient<Channel>> {
        Ok(RawKvClient::new(channel(&self.grpc_addr(i)).await?))
    }

    /// Node `i`'s view of every group.
    pub async fn status(&self, i: usize) -> Result<StatusResponse> {
        let mut admin = AdminClient::new(channel(&self.grpc_addr(i)).await?);
        let resp =
            tokio::time::timeout(Duration::from_secs(2), admin.status(StatusRequest {})).await??;
        Ok(resp.into_inner())
    }

    /// Index of the node that leads `group`, as the running nodes agree.
    pub async fn leader_of(&self, group: u64) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_running() {
                continue;
            }
            let Ok(st) = self.status(i).await else {
                continue;
            };
            if let Some(g) = st.groups.iter().find(|g| g.group_id == group) {
                if g.state == "Leader" {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Wait until every group of every running node sees a leader that is
    /// running.
    pub async fn wait_all_groups_led(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut ok = true;
            for (i, n) in self.nodes.iter().enumerate() {
                if !n.is_running() {
                    continue;
                }
                match self.status(i).await {
                    Ok(st) if !st.groups.is_empty() => {
                        for g in &st.groups {
                            let led_by_running = self
                                .nodes
                                .iter()
                                .any(|m| m.is_running() && m.name == g.leader);
                            if !led_by_running {
                                ok = false;
                            }
                        }
                    }
                    _ => ok = false,
                }
            }
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "cluster did not elect leaders within {timeout:?}; logs in {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until every running node sees every node of the cluster as a
    /// voter of every group (after membership faults were undone).
    pub async fn wait_full_membership(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut missing = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if !n.is_running() {
                    continue;
                }
                match self.status(i).await {
                    Ok(st) => {
                        for g in &st.groups {
                            for m in &self.nodes {
                                let voter =
                                    g.members.iter().any(|x| x.raft_id == m.name && x.voter);
                                if !voter {
                                    missing.push(format!(
                                        "{} sees {} missing from group {}",
                                        n.name, m.name, g.group_id
                                    ));
                                }
                            }
                        }
                    }
                    Err(e) => missing.push(format!("{}: {e:#}", n.name)),
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}", missing.join("; "));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until node `i` has applied at least `index` in `group`.
    pub async fn wait_applied(
        &self,
        i: usize,
        group: u64,
        index: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(st) = self.status(i).await {
                if st
                    .groups
                    .iter()
                    .any(|g| g.group_id == group && g.applied_index >= index)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not apply index {index} of group {group} within {timeout:?}",
                    self.nodes[i].name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = signal(c.id(), libc::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn signal(pid: u32, sig: i32) -> Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        bail!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A lazily connecting gRPC channel to `addr`.
pub async fn channel(addr: &str) -> Result<Channel> {
    Ok(elastickv_proto::channel::lazy_channel(
        addr,
        Duration::from_millis(500),
        Some(Duration::from_secs(15)),
    )?)
}
