//! Node configuration: the original Elastickv's flags (camelCase, with
//! kebab-case spellings accepted too), an optional TOML config file, and the
//! validation that tells the operator exactly what is wrong.

use anyhow::{bail, Context, Result};
use clap::Args;
use elastickv_kv::{Range, Router};
use elastickv_raft::node::{ELECTION_TIMEOUT_MAX_MS, READ_LEASE_MS};
use elastickv_raft::NodeInfo;
use elastickv_types::{GroupId, DEFAULT_GROUP};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of one node. Every flag may also come from `--config FILE`; a flag
/// on the command line wins over the file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeFlags {
    /// TOML file with any of these settings (keys as the camelCase flag names).
    #[arg(long = "config")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// gRPC address (client APIs and Raft traffic) this node listens on and
    /// advertises.
    #[arg(long = "address", alias = "addr")]
    pub address: Option<String>,

    /// Node name used by Raft (e.g. n1).
    #[arg(long = "raftId", alias = "raft-id")]
    pub raft_id: Option<String>,

    /// Data directory of this node.
    #[arg(long = "raftDataDir", alias = "raft-data-dir")]
    pub raft_data_dir: Option<PathBuf>,

    /// Form the cluster from --raftBootstrapMembers (run on exactly one node).
    #[arg(long = "raftBootstrap", alias = "raft-bootstrap")]
    #[serde(default)]
    pub raft_bootstrap: bool,

    /// Bootstrap members: raftId=host:port,... (same value on every node).
    #[arg(long = "raftBootstrapMembers", alias = "raft-bootstrap-members")]
    pub raft_bootstrap_members: Option<String>,

    /// Raft groups this node hosts: 1,2,3 (the original's groupID=host:port
    /// form is accepted; one port per node carries every group here).
    #[arg(long = "raftGroups", alias = "raft-groups")]
    pub raft_groups: Option<String>,

    /// Static shard ranges: start:end=groupID,... (empty end: unbounded).
    #[arg(long = "shardRanges", alias = "shard-ranges")]
    pub shard_ranges: Option<String>,

    /// Redis protocol address.
    #[arg(long = "redisAddress", alias = "redis-address")]
    pub redis_address: Option<String>,

    /// Password Redis clients must AUTH with (Redis `requirepass`); unset
    /// or empty: no authentication.
    #[arg(long = "redisPassword", alias = "redis-password")]
    pub redis_password: Option<String>,

    /// DynamoDB-compatible HTTP API address.
    #[arg(long = "dynamoAddress", alias = "dynamo-address")]
    pub dynamo_address: Option<String>,

    /// S3-compatible HTTP API address.
    #[arg(long = "s3Address", alias = "s3-address")]
    pub s3_address: Option<String>,

    /// Prometheus metrics address.
    #[arg(long = "metricsAddress", alias = "metrics-address")]
    pub metrics_address: Option<String>,

    /// Bearer token for metrics; required for a non-loopback metrics address.
    #[arg(long = "metricsToken", alias = "metrics-token")]
    pub metrics_token: Option<String>,

    /// Largest value accepted, in bytes.
    #[arg(long = "maxValueBytes", alias = "max-value-bytes")]
    pub max_value_bytes: Option<usize>,

    /// Build a Raft snapshot after this many applied entries.
    #[arg(long = "raftSnapshotLogs", alias = "raft-snapshot-logs")]
    pub raft_snapshot_logs: Option<u64>,

    /// Log entries kept below a snapshot for slightly lagging followers.
    #[arg(long = "raftSnapshotKeepLogs", alias = "raft-snapshot-keep-logs")]
    pub raft_snapshot_keep_logs: Option<u64>,

    /// Peer name=address to dial instead of the advertised address (used by
    /// the chaos harness to route links through proxies).
    #[arg(long = "raftDialOverrides", alias = "raft-dial-overrides")]
    pub raft_dial_overrides: Option<String>,

    /// How long (ms) a leader answers linearizable reads from its lease
    /// after a quorum acknowledged it, without a heartbeat round; 0 makes
    /// every read take a read-index round. Below 1200 (the election
    /// timeout followers wait before voting). Default 600.
    #[arg(long = "raftReadLeaseMs", alias = "raft-read-lease-ms")]
    pub raft_read_lease_ms: Option<u64>,

    /// Threads of the node's async runtime. Default: one per CPU. Nodes
    /// sharing a machine do better with fewer each (three nodes on two
    /// cores: 1), as every extra thread only adds wake-ups and migrations;
    /// 1 runs tokio's current-thread scheduler.
    #[arg(long = "workerThreads", alias = "worker-threads")]
    pub worker_threads: Option<usize>,

    /// UNSAFE debug switch: serve reads from local state without a read
    /// index. Exists only so the chaos harness can prove it catches it.
    #[arg(long = "unsafeLocalReads", alias = "unsafe-local-reads")]
    #[serde(default)]
    pub unsafe_local_reads: bool,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub address: SocketAddr,
    pub advertise: String,
    pub raft_id: String,
    pub data_dir: PathBuf,
    pub bootstrap: bool,
    pub members: Vec<NodeInfo>,
    pub groups: Vec<GroupId>,
    pub router: Router,
    pub redis_address: Option<String>,
    pub redis_password: Option<String>,
    pub dynamo_address: Option<String>,
    pub s3_address: Option<String>,
    pub metrics_address: Option<String>,
    pub metrics_token: Option<String>,
    pub max_value_bytes: usize,
    pub snapshot_logs: u64,
    pub snapshot_keep_logs: u64,
    pub dial_overrides: HashMap<String, String>,
    pub unsafe_local_reads: bool,
    pub read_lease_ms: u64,
    /// `None`: one per CPU.
    pub worker_threads: Option<usize>,
}

impl NodeFlags {
    /// Merge the config file (if any) under the command-line flags.
    pub fn merged(self) -> Result<NodeFlags> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: NodeFlags = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        Ok(NodeFlags {
            config: self.config.clone(),
            address: self.address.or(file.address),
            raft_id: self.raft_id.or(file.raft_id),
            raft_data_dir: self.raft_data_dir.or(file.raft_data_dir),
            raft_bootstrap: self.raft_bootstrap || file.raft_bootstrap,
            raft_bootstrap_members: self.raft_bootstrap_members.or(file.raft_bootstrap_members),
            raft_groups: self.raft_groups.or(file.raft_groups),
            shard_ranges: self.shard_ranges.or(file.shard_ranges),
            redis_address: self.redis_address.or(file.redis_address),
            redis_password: self.redis_password.or(file.redis_password),
            dynamo_address: self.dynamo_address.or(file.dynamo_address),
            s3_address: self.s3_address.or(file.s3_address),
            metrics_address: self.metrics_address.or(file.metrics_address),
            metrics_token: self.metrics_token.or(file.metrics_token),
            max_value_bytes: self.max_value_bytes.or(file.max_value_bytes),
            raft_snapshot_logs: self.raft_snapshot_logs.or(file.raft_snapshot_logs),
            raft_snapshot_keep_logs: self
                .raft_snapshot_keep_logs
                .or(file.raft_snapshot_keep_logs),
            raft_dial_overrides: self.raft_dial_overrides.or(file.raft_dial_overrides),
            raft_read_lease_ms: self.raft_read_lease_ms.or(file.raft_read_lease_ms),
            worker_threads: self.worker_threads.or(file.worker_threads),
            unsafe_local_reads: self.unsafe_local_reads || file.unsafe_local_reads,
        })
    }

    /// Validate into a [`NodeConfig`].
    pub fn validate(self) -> Result<NodeConfig> {
        let flags = self.merged()?;
        let raft_id = flags.raft_id.unwrap_or_default();
        if raft_id.is_empty() {
            bail!("--raftId is required (a unique node name such as n1)");
        }
        if !raft_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("--raftId {raft_id:?} may only contain letters, digits, '-' and '_'");
        }
        let advertise = flags
            .address
            .unwrap_or_else(|| "127.0.0.1:50051".to_string());
        let address = resolve(&advertise).with_context(|| format!("--address {advertise:?}"))?;
        let data_dir = flags
            .raft_data_dir
            .unwrap_or_else(|| PathBuf::from("data").join(&raft_id));

        let members = match flags.raft_bootstrap_members.as_deref() {
            None | Some("") => vec![NodeInfo {
                name: raft_id.clone(),
                addr: advertise.clone(),
            }],
            Some(list) => parse_members(list)?,
        };
        if flags.raft_bootstrap && !members.iter().any(|m| m.name == raft_id) {
            bail!("--raftBootstrapMembers must include this node ({raft_id}) when --raftBootstrap is set");
        }

        let router = match flags.shard_ranges.as_deref() {
            None | Some("") => Router::default(),
            Some(spec) => parse_ranges(spec)?,
        };
        let mut groups = match flags.raft_groups.as_deref() {
            None | Some("") => router.groups(),
            Some(spec) => parse_groups(spec)?,
        };
        if !groups.contains(&DEFAULT_GROUP) {
            groups.push(DEFAULT_GROUP);
        }
        groups.sort();
        groups.dedup();
        for g in router.groups() {
            if !groups.contains(&g) {
                bail!("--shardRanges routes keys to group {g}, which --raftGroups does not list");
            }
        }

        for (flag, value) in [
            ("--redisAddress", &flags.redis_address),
            ("--dynamoAddress", &flags.dynamo_address),
            ("--s3Address", &flags.s3_address),
            ("--metricsAddress", &flags.metrics_address),
        ] {
            if let Some(v) = value {
                resolve(v).with_context(|| format!("{flag} {v:?}"))?;
            }
        }
        if let Some(m) = &flags.metrics_address {
            let loopback = resolve(m).map(|a| a.ip().is_loopback()).unwrap_or(false);
            if !loopback && flags.metrics_token.as_deref().unwrap_or("").is_empty() {
                bail!("--metricsToken is required when --metricsAddress ({m}) is not a loopback address");
            }
        }
        let max_value_bytes = flags
            .max_value_bytes
            .unwrap_or(elastickv_types::limits::DEFAULT_MAX_VALUE_BYTES);
        if max_value_bytes == 0
            || max_value_bytes > elastickv_types::limits::MAX_GRPC_MESSAGE_BYTES / 2
        {
            bail!(
                "--maxValueBytes must be between 1 and {}",
                elastickv_types::limits::MAX_GRPC_MESSAGE_BYTES / 2
            );
        }
        let dial_overrides = match flags.raft_dial_overrides.as_deref() {
            None | Some("") => HashMap::new(),
            Some(list) => parse_members(list)?
                .into_iter()
                .map(|m| (m.name, m.addr))
                .collect(),
        };
        let snapshot_logs = flags.raft_snapshot_logs.unwrap_or(20_000);
        let snapshot_keep_logs = flags.raft_snapshot_keep_logs.unwrap_or(2_000);
        if snapshot_logs == 0 {
            bail!("--raftSnapshotLogs must be at least 1");
        }
        let read_lease_ms = flags.raft_read_lease_ms.unwrap_or(READ_LEASE_MS);
        if read_lease_ms >= ELECTION_TIMEOUT_MAX_MS {
            bail!(
                "--raftReadLeaseMs {read_lease_ms} must be below {ELECTION_TIMEOUT_MAX_MS} \
                 (the election timeout followers wait before voting; 0 disables the lease)"
            );
        }
        if let Some(n) = flags.worker_threads {
            if !(1..=MAX_WORKER_THREADS).contains(&n) {
                bail!("--workerThreads must be between 1 and {MAX_WORKER_THREADS}");
            }
        }
        Ok(NodeConfig {
            address,
            advertise,
            raft_id,
            data_dir,
            bootstrap: flags.raft_bootstrap,
            members,
            groups,
            router,
            redis_address: flags.redis_address,
            redis_password: flags.redis_password.filter(|p| !p.is_empty()),
            dynamo_address: flags.dynamo_address,
            s3_address: flags.s3_address,
            metrics_address: flags.metrics_address,
            metrics_token: flags.metrics_token,
            max_value_bytes,
            snapshot_logs,
            snapshot_keep_logs,
            dial_overrides,
            unsafe_local_reads: flags.unsafe_local_reads,
            read_lease_ms,
            worker_threads: flags.worker_threads,
        })
    }
}

/// Upper bound of `--workerThreads`.
const MAX_WORKER_THREADS: usize = 1024;

fn resolve(addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let with_host = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    with_host
        .to_socket_addrs()
        .with_context(|| "expected host:port".to_string())?
        .next()
        .ok_or_else(|| anyhow::anyhow!("address resolves to nothing"))
}

/// `n1=host:port,n2=host:port`
pub fn parse_members(list: &str) -> Result<Vec<NodeInfo>> {
    let mut out: Vec<NodeInfo> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, addr)) = item.split_once('=') else {
            bail!("member {item:?} must be raftId=host:port");
        };
        let (name, addr) = (name.trim(), addr.trim());
        if name.is_empty() || addr.is_empty() {
            bail!("member {item:?} must be raftId=host:port");
        }
        resolve(addr).with_context(|| format!("member {name} address {addr:?}"))?;
        if out.iter().any(|m| m.name == name) {
            bail!("member {name} is listed twice");
        }
        out.push(NodeInfo {
            name: name.to_string(),
            addr: addr.to_string(),
        });
    }
    if out.is_empty() {
        bail!("member list is empty");
    }
    Ok(out)
}

/// `1,2,3` or the original's `1=host:port,2=host:port`.
pub fn parse_groups(spec: &str) -> Result<Vec<GroupId>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id = item
            .split_once('=')
            .map(|(id, _)| id)
            .unwrap_or(item)
            .trim();
        let id: u64 = id.parse().with_context(|| {
            format!("raft group {item:?} must be a positive number (optionally =host:port)")
        })?;
        if id == 0 {
            bail!("raft group ids start at 1");
        }
        out.push(GroupId(id));
    }
    if out.is_empty() {
        bail!("--raftGroups lists no group");
    }
    Ok(out)
}

/// `start:end=group,...`; an empty start is the beginning of the key space
/// and an empty end is unbounded.
pub fn parse_ranges(spec: &str) -> Result<Router> {
    let mut ranges = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((span, group)) = item.rsplit_once('=') else {
            bail!("shard range {item:?} must be start:end=groupID");
        };
        let Some((start, end)) = span.split_once(':') else {
            bail!("shard range {item:?} must be start:end=groupID");
        };
        let group: u64 = group
            .trim()
            .parse()
            .with_context(|| format!("shard range {item:?}: group must be a number"))?;
        ranges.push(Range {
            start: start.as_bytes().to_vec(),
            end: (!end.is_empty()).then(|| end.as_bytes().to_vec()),
            group: GroupId(group),
        });
    }
    Router::new(ranges).map_err(|e| anyhow::anyhow!("--shardRanges: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> NodeFlags {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: NodeFlags,
        }
        let mut argv = vec!["elastickv"];
        argv.extend_from_slice(args);
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("parse")
            .flags
    }

    #[test]
    fn accepts_original_and_kebab_spellings() {
        let a = flags(&[
            "--raftId",
            "n1",
            "--address",
            "127.0.0.1:50051",
            "--raftDataDir",
            "/tmp/x",
        ]);
        let b = flags(&[
            "--raft-id",
            "n1",
            "--address",
            "127.0.0.1:50051",
            "--raft-data-dir",
            "/tmp/x",
        ]);
        assert_eq!(a.raft_id, b.raft_id);
        assert_eq!(a.raft_data_dir, b.raft_data_dir);
    }

    #[test]
    fn validates_members_and_bootstrap() {
        let c = flags(&[
            "--raftId",
            "n1",
            "--raftBootstrap",
            "--raftBootstrapMembers",
            "n1=127.0.0.1:1,n2=127.0.0.1:2",
        ])
        .validate()
        .expect("valid");
        assert_eq!(c.members.len(), 2);
        let err = flags(&[
            "--raftId",
            "n3",
            "--raftBootstrap",
            "--raftBootstrapMembers",
            "n1=127.0.0.1:1",
        ])
        .validate()
        .expect_err("n3 not a member");
        assert!(err.to_string().contains("must include this node"));
        let err = flags(&["--raftId", "n1", "--raftBootstrapMembers", "n1"])
            .validate()
            .expect_err("bad");
        assert!(format!("{err:#}").contains("raftId=host:port"));
    }

    #[test]
    fn parses_groups_and_ranges() {
        let c = flags(&[
            "--raftId",
            "n1",
            "--raftGroups",
            "1,2=127.0.0.1:9,3",
            "--shardRanges",
            ":g=1,g:m=2,m:=3",
        ])
        .validate()
        .expect("valid");
        assert_eq!(c.groups, vec![GroupId(1), GroupId(2), GroupId(3)]);
        assert_eq!(c.router.route(b"h").group, GroupId(2));
        let err = flags(&[
            "--raftId",
            "n1",
            "--raftGroups",
            "1",
            "--shardRanges",
            ":g=1,g:=2",
        ])
        .validate()
        .expect_err("group 2 not hosted");
        assert!(err.to_string().contains("group 2"));
        assert!(flags(&["--raftId", "n1", "--shardRanges", "a:=1"])
            .validate()
            .is_err());
    }

    #[test]
    fn read_lease_must_stay_below_the_election_timeout() {
        let c = flags(&["--raftId", "n1"]).validate().expect("valid");
        assert_eq!(c.read_lease_ms, READ_LEASE_MS);
        let c = flags(&["--raftId", "n1", "--raftReadLeaseMs", "0"])
            .validate()
            .expect("0 disables the lease");
        assert_eq!(c.read_lease_ms, 0);
        let err = flags(&["--raftId", "n1", "--raft-read-lease-ms", "1200"])
            .validate()
            .expect_err("as long as the election timeout");
        assert!(err.to_string().contains("--raftReadLeaseMs 1200"), "{err}");
    }

    #[test]
    fn worker_threads_are_bounded() {
        let c = flags(&["--raftId", "n1"]).validate().expect("valid");
        assert_eq!(c.worker_threads, None);
        let c = flags(&["--raftId", "n1", "--worker-threads", "1"])
            .validate()
            .expect("valid");
        assert_eq!(c.worker_threads, Some(1));
        for bad in ["0", "1025"] {
            let err = flags(&["--raftId", "n1", "--workerThreads", bad])
                .validate()
                .expect_err("out of range");
            assert!(err.to_string().contains("--workerThreads"), "{err}");
        }
    }

    #[test]
    fn metrics_token_required_off_loopback() {
        let err = flags(&["--raftId", "n1", "--metricsAddress", "0.0.0.0:9091"])
            .validate()
            .expect_err("token required");
        assert!(err.to_string().contains("--metricsToken"));
        flags(&[
            "--raftId",
            "n1",
            "--metricsAddress",
            "0.0.0.0:9091",
            "--metricsToken",
            "t",
        ])
        .validate()
        .expect("ok with token");
    }

    #[test]
    fn config_file_merges_under_flags() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "raftId = \"n7\"\naddress = \"127.0.0.1:50099\"\nmaxValueBytes = 1024\n",
        )
        .expect("write");
        let c = flags(&[
            "--config",
            path.to_str().expect("utf8"),
            "--address",
            "127.0.0.1:50100",
        ])
        .validate()
        .expect("valid");
        assert_eq!(c.raft_id, "n7");
        assert_eq!(c.advertise, "127.0.0.1:50100");
        assert_eq!(c.max_value_bytes, 1024);
        std::fs::write(&path, "bogus = 1\n").expect("write");
        assert!(flags(&["--config", path.to_str().expect("utf8")])
            .validate()
            .is_err());
    }
}
