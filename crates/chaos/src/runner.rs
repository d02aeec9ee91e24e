//! The chaos runner: start a proxied cluster, run workloads while a seeded
//! nemesis schedule injects faults, heal everything, let the cluster
//! settle, do final reads, then write and check every history.
//!
//! Output per workload in `out/<workload>/`: `history.jsonl` and
//! `result.json`; plus `out/nemesis.jsonl` (what the nemesis did, with
//! milliseconds since the workload started) and `out/run.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use elastickv_proto::admin::admin_client::AdminClient;
use elastickv_proto::admin::{
    AddLearnerRequest, PromoteVoterRequest, RemoveNodeRequest, SetClockOffsetRequest,
    TransferLeaderRequest,
};
use elastickv_proto::public::{RawGetRequest, RawPutRequest};
use serde::Serialize;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::bank::{check_bank, BankConfig};
use crate::check::{CheckResult, Validity};
use crate::cluster::{channel, ClusterSpec, ProcessCluster};
use crate::counter::check_counter;
use crate::elle::check_list_append;
use crate::history::{History, Recorder};
use crate::linearizable::{check_register, RegisterConfig};
use crate::schedule::{self, Fault, NemesisKind, ScheduleConfig, Step};
use crate::workload::{self, Shared, WorkloadConfig, WorkloadKind};

/// Everything `elastickv-chaos run` takes.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub workloads: Vec<WorkloadKind>,
    pub nemeses: Vec<NemesisKind>,
    pub time_limit: Duration,
    pub nodes: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub unsafe_local_reads: bool,
    pub workload: WorkloadConfig,
    /// Quiet time after healing, before the final reads.
    pub settle: Duration,
    /// Keep the cluster's data directories (node logs) after the run.
    pub keep_data: bool,
    /// Override the generated schedule's fault timings (tests).
    pub gap_ms: Option<(u64, u64)>,
    pub hold_ms: Option<(u64, u64)>,
    /// Overlapping fault episodes instead of one fault at a time.
    pub overlap: bool,
}

impl RunConfig {
    pub fn new(out: PathBuf) -> Self {
        RunConfig {
            workloads: WorkloadKind::ALL.to_vec(),
            nemeses: NemesisKind::ALL.to_vec(),
            time_limit: Duration::from_secs(60),
            nodes: 3,
            seed: 0,
            out,
            unsafe_local_reads: false,
            workload: WorkloadConfig::default(),
            settle: Duration::from_secs(3),
            keep_data: false,
            gap_ms: None,
            hold_ms: None,
            overlap: false,
        }
    }

    pub fn schedule(&self) -> Vec<Step> {
        let groups = workload::GROUPS.split(',').count() as u64;
        let mut c = ScheduleConfig::new(
            self.seed,
            self.nodes,
            groups,
            self.nemeses.clone(),
            u64::try_from(self.time_limit.as_millis()).unwrap_or(u64::MAX),
        );
        if let Some(g) = self.gap_ms {
            c.gap_ms = g;
        }
        if let Some(h) = self.hold_ms {
            c.hold_ms = h;
        }
        c.overlap = self.overlap;
        schedule::generate(&c)
    }
}

/// One workload's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadOutcome {
    pub workload: WorkloadKind,
    pub events: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub result: CheckResult,
}

/// The whole run's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub seed: u64,
    pub nodes: usize,
    pub time_limit_s: u64,
    pub nemeses: Vec<NemesisKind>,
    pub overlap: bool,
    pub faults_applied: usize,
    /// Faults that took effect, by action (`kill`, `remove-node`, …).
    pub fault_counts: BTreeMap<String, usize>,
    /// Most faults held at the same time.
    pub max_concurrent_faults: usize,
    pub workloads: Vec<WorkloadOutcome>,
}

impl RunOutcome {
    /// Invalid beats unknown beats valid.
    pub fn validity(&self) -> Validity {
        let vs: Vec<Validity> = self.workloads.iter().map(|w| w.result.valid).collect();
        if vs.contains(&Validity::Invalid) {
            Validity::Invalid
        } else if vs.contains(&Validity::Unknown) {
            Validity::Unknown
        } else {
            Validity::Valid
        }
    }
}

/// Applies faults to the cluster and remembers what must be undone.
///
/// Faults are healed one by one (several may be held at once in an
/// overlapping schedule). Undoing a fault can depend on another one being
/// healed first: a clock reset needs the node running and not paused, and
/// re-adding a removed node needs it reachable. Such repairs wait in a
/// pending set and are retried after every heal and in [`Nemesis::heal_all`].
pub struct Nemesis<'a> {
    cluster: &'a mut ProcessCluster,
    admins: Vec<AdminClient<Channel>>,
    killed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    /// Nodes whose clock fault is held.
    skewed: BTreeSet<usize>,
    /// Clock faults healed whose reset could not be sent yet.
    clock_reset_pending: BTreeSet<usize>,
    /// Nodes whose removal fault is held.
    removed: BTreeSet<usize>,
    /// Removal faults healed whose node is not back in the membership yet.
    rejoin_pending: BTreeSet<usize>,
    /// Of those, nodes to replace by an empty node before re-adding.
    wipe_pending: BTreeSet<usize>,
    /// A partition is in effect (at most one at a time).
    partitioned: bool,
    /// Steps applied and not yet healed.
    active: BTreeSet<usize>,
    max_active: usize,
    /// Successfully applied faults by log name.
    counts: BTreeMap<String, usize>,
    log: Vec<Value>,
    start: Instant,
}

/// Deadline of one membership call (the node's own request deadline is
/// 10 s; a blocking add-learner waits for the learner to catch up).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(15);

impl<'a> Nemesis<'a> {
    pub async fn new(cluster: &'a mut ProcessCluster, start: Instant) -> Result<Nemesis<'a>> {
        let mut admins = Vec::new();
        for i in 0..cluster.nodes.len() {
            admins.push(AdminClient::new(channel(&cluster.grpc_addr(i)).await?));
        }
        Ok(Nemesis {
            cluster,
            admins,
            killed: BTreeSet::new(),
            paused: BTreeSet::new(),
            skewed: BTreeSet::new(),
            clock_reset_pending: BTreeSet::new(),
            removed: BTreeSet::new(),
            rejoin_pending: BTreeSet::new(),
            wipe_pending: BTreeSet::new(),
            partitioned: false,
            active: BTreeSet::new(),
            max_active: 0,
            counts: BTreeMap::new(),
            log: Vec::new(),
            start,
        })
    }

    fn note(&mut self, what: &str, detail: Value) {
        let ms = self.start.elapsed().as_millis() as u64;
        tracing::info!(ms, what, %detail, "nemesis");
        self.log
            .push(json!({"ms": ms, "what": what, "detail": detail}));
    }

    /// Note a fault that took effect (counted in the run's statistics).
    fn applied(&mut self, what: &str, detail: Value) {
        *self.counts.entry(what.to_string()).or_default() += 1;
        self.note(what, detail);
    }

    /// Nodes out of the membership, or about to be re-added.
    fn out_of_membership(&self, node: usize) -> bool {
        self.removed.contains(&node) || self.rejoin_pending.contains(&node)
    }

    /// Leader of `group` among running, unpaused member nodes (asks each
    /// node's Admin with a short deadline). A removed node may still
    /// believe in an old leadership, so it is not asked.
    async fn leader_of(&mut self, group: u64) -> Option<usize> {
        for i in 0..self.admins.len() {
            if self.killed.contains(&i) || self.paused.contains(&i) || self.out_of_membership(i) {
                continue;
            }
            let st = tokio::time::timeout(
                Duration::from_secs(2),
                self.admins[i].status(elastickv_proto::admin::StatusRequest {}),
            )
            .await;
            if let Ok(Ok(st)) = st {
                let st = st.into_inner();
                if let Some(g) = st.groups.iter().find(|g| g.group_id == group) {
                    if g.state == "Leader" {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// A node to send membership requests to: running, not paused, a
    /// member, and not `except`. It forwards them to each group's leader.
    fn admin_node(&self, except: usize) -> Option<usize> {
        (0..self.admins.len()).find(|&i| {
            i != except
                && !self.killed.contains(&i)
                && !self.paused.contains(&i)
                && !self.out_of_membership(i)
        })
    }

    fn mesh_cut(&mut self, links: &[(usize, usize)]) -> Result<()> {
        let mesh = self
            .cluster
            .mesh
            .as_ref()
            .ok_or_else(|| anyhow!("partition nemesis needs a proxied cluster"))?;
        mesh.cut_links(links);
        self.partitioned = true;
        Ok(())
    }

    /// Apply one fault: `Ok(true)` if it took effect, `Ok(false)` if it
    /// was skipped (a no-op in the current state). Errors are returned for
    /// logging; the run goes on.
    pub async fn apply(&mut self, fault: &Fault) -> Result<bool> {
        let n = self.cluster.nodes.len();
        match fault {
            Fault::IsolateLeader { group } => {
                let leader = self
                    .leader_of(*group)
                    .await
                    .ok_or_else(|| anyhow!("group {group} has no reachable leader"))?;
                self.mesh_cut(&schedule::isolate(leader, n))?;
                self.applied("isolate-leader", json!({"group": group, "leader": leader}));
            }
            Fault::PartitionHalves { .. } | Fault::MajoritiesRing | Fault::Bridge { .. } => {
                let links = schedule::cut_links(fault, n).unwrap_or_default();
                self.mesh_cut(&links)?;
                self.applied("partition", json!(fault));
            }
            Fault::Kill { node } => {
                self.cluster.kill(*node)?;
                self.killed.insert(*node);
                self.paused.remove(node);
                self.applied("kill", json!({"node": node}));
            }
            Fault::Pause { node } => {
                if self.killed.contains(node) {
                    self.note("pause-skipped", json!({"node": node, "why": "killed"}));
                    return Ok(false);
                }
                self.cluster.pause(*node)?;
                self.paused.insert(*node);
                self.applied("pause", json!({"node": node}));
            }
            Fault::Clock { node, offset_ms } => {
                if self.killed.contains(node) || self.paused.contains(node) {
                    // The Admin call could not be answered; the skew
                    // would land (or not) at an unknown later time.
                    self.note(
                        "clock-skipped",
                        json!({"node": node, "why": "killed or paused"}),
                    );
                    return Ok(false);
                }
                self.set_clock(*node, *offset_ms).await?;
                self.skewed.insert(*node);
                self.clock_reset_pending.remove(node);
                self.applied("clock", json!({"node": node, "offset_ms": offset_ms}));
            }
            Fault::TransferLeader { group, to } => {
                // A paused or dead target cannot campaign: the request
                // would only hang until its deadline.
                let why = if self.out_of_membership(*to) {
                    Some("not a member")
                } else if self.killed.contains(to) || self.paused.contains(to) {
                    Some("killed or paused")
                } else {
                    None
                };
                if let Some(why) = why {
                    self.note(
                        "transfer-leader-skipped",
                        json!({"group": group, "to": to, "why": why}),
                    );
                    return Ok(false);
                }
                let leader = self
                    .leader_of(*group)
                    .await
                    .ok_or_else(|| anyhow!("group {group} has no reachable leader"))?;
                if leader == *to {
                    self.note("transfer-leader-noop", json!({"group": group, "to": to}));
                    return Ok(false);
                }
                let raft_id = self.cluster.nodes[*to].name.clone();
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    self.admins[leader].transfer_leader(TransferLeaderRequest {
                        raft_id,
                        group_id: *group,
                    }),
                )
                .await
                .map_err(|_| anyhow!("transfer leader timed out"))??;
                self.applied(
                    "transfer-leader",
                    json!({"group": group, "from": leader, "to": to, "message": r.into_inner().message}),
                );
            }
            Fault::RemoveNode { node, .. } => return self.remove_node(*node).await,
        }
        Ok(true)
    }

    /// Remove `node` from every group. Refused while another node is out
    /// of the membership: with 3 nodes that would leave a single voter.
    async fn remove_node(&mut self, node: usize) -> Result<bool> {
        if !self.removed.is_empty() || !self.rejoin_pending.is_empty() {
            self.settle_pending().await;
        }
        if !self.removed.is_empty() || !self.rejoin_pending.is_empty() {
            self.note(
                "remove-skipped",
                json!({"node": node, "why": "another node is out of the membership",
                       "removed": self.removed, "rejoin_pending": self.rejoin_pending}),
            );
            return Ok(false);
        }
        let via = self
            .admin_node(node)
            .ok_or_else(|| anyhow!("no member node to ask for the removal"))?;
        let raft_id = self.cluster.nodes[node].name.clone();
        // Whatever the answer, some groups may have changed: the heal
        // re-adds the node everywhere (adding a member again is a no-op).
        self.removed.insert(node);
        let r = tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.admins[via].remove_node(RemoveNodeRequest {
                raft_id,
                group_id: 0,
            }),
        )
        .await
        .map_err(|_| anyhow!("remove node timed out"))??;
        self.applied(
            "remove-node",
            json!({"node": node, "via": via, "message": r.into_inner().message}),
        );
        Ok(true)
    }

    /// Add `node` back to every group: learner (catches up from its own
    /// log, or by snapshot), then voter.
    async fn rejoin(&mut self, node: usize) -> Result<()> {
        let via = self
            .admin_node(node)
            .ok_or_else(|| anyhow!("no member node to ask for the re-add"))?;
        let raft_id = self.cluster.nodes[node].name.clone();
        let address = self.cluster.grpc_addr(node);
        tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.admins[via].add_learner(AddLearnerRequest {
                raft_id: raft_id.clone(),
                address,
                group_id: 0,
            }),
        )
        .await
        .map_err(|_| anyhow!("add learner timed out"))??;
        let r = tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.admins[via].promote_voter(PromoteVoterRequest {
                raft_id,
                group_id: 0,
            }),
        )
        .await
        .map_err(|_| anyhow!("promote voter timed out"))??;
        self.note(
            "rejoin",
            json!({"node": node, "via": via, "message": r.into_inner().message}),
        );
        Ok(())
    }

    /// Replace removed `node` by an empty node (same id and address) and
    /// wait until it listens, so that the re-add can catch it up.
    async fn wipe(&mut self, node: usize) -> Result<()> {
        self.cluster.wipe_and_restart(node)?;
        // A fresh process has no clock offset.
        self.skewed.remove(&node);
        self.clock_reset_pending.remove(&node);
        self.note("wipe", json!({"node": node}));
        self.cluster
            .wait_listening(node, Duration::from_secs(20))
            .await
    }

    async fn set_clock(&mut self, node: usize, offset_ms: i64) -> Result<()> {
        tokio::time::timeout(
            Duration::from_secs(3),
            self.admins[node].set_clock_offset(SetClockOffsetRequest { offset_ms }),
        )
        .await
        .map_err(|_| anyhow!("set clock offset timed out"))??;
        Ok(())
    }

    /// Restart a killed node; a fresh process has no clock offset.
    fn restart(&mut self, node: usize) -> Result<()> {
        self.cluster.restart(node)?;
        self.skewed.remove(&node);
        self.clock_reset_pending.remove(&node);
        Ok(())
    }

    /// Undo the one fault `fault` (a no-op for a fault that did not take
    /// effect), then retry repairs that were waiting for it.
    pub async fn heal_one(&mut self, fault: &Fault) -> Result<()> {
        let mut result = Ok(());
        match fault {
            Fault::PartitionHalves { .. }
            | Fault::IsolateLeader { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge { .. } => {
                if self.partitioned {
                    if let Some(mesh) = &self.cluster.mesh {
                        mesh.heal();
                    }
                    self.partitioned = false;
                }
            }
            Fault::Kill { node } => {
                if self.killed.remove(node) {
                    result = self.restart(*node);
                }
            }
            Fault::Pause { node } => {
                if self.paused.remove(node) {
                    result = self.cluster.resume(*node);
                }
            }
            Fault::Clock { node, .. } => {
                if self.skewed.remove(node) {
                    self.clock_reset_pending.insert(*node);
                }
            }
            Fault::TransferLeader { .. } => {}
            Fault::RemoveNode { node, wipe } => {
                if self.removed.remove(node) {
                    self.rejoin_pending.insert(*node);
                    if *wipe {
                        self.wipe_pending.insert(*node);
                    }
                }
            }
        }
        self.note("heal", json!(fault));
        self.settle_pending().await;
        result
    }

    /// Retry clock resets and re-adds whose node can be reached now.
    /// Returns whether nothing is pending any more.
    async fn settle_pending(&mut self) -> bool {
        for node in self.clock_reset_pending.clone() {
            if self.paused.contains(&node) {
                continue;
            }
            if self.killed.contains(&node) {
                // Its restart starts with no offset.
                self.clock_reset_pending.remove(&node);
                continue;
            }
            match self.set_clock(node, 0).await {
                Ok(()) => {
                    self.clock_reset_pending.remove(&node);
                }
                Err(e) => self.note(
                    "clock-reset-error",
                    json!({"node": node, "error": format!("{e:#}")}),
                ),
            }
        }
        for node in self.rejoin_pending.clone() {
            // The leader must reach the node to catch it up.
            if self.killed.contains(&node) || self.paused.contains(&node) || self.partitioned {
                self.note("rejoin-deferred", json!({"node": node}));
                continue;
            }
            if self.wipe_pending.contains(&node) {
                match self.wipe(node).await {
                    Ok(()) => {
                        self.wipe_pending.remove(&node);
                    }
                    Err(e) => {
                        self.note(
                            "wipe-error",
                            json!({"node": node, "error": format!("{e:#}")}),
                        );
                        continue;
                    }
                }
            }
            match self.rejoin(node).await {
                Ok(()) => {
                    self.rejoin_pending.remove(&node);
                }
                Err(e) => self.note(
                    "rejoin-error",
                    json!({"node": node, "error": format!("{e:#}")}),
                ),
            }
        }
        self.clock_reset_pending.is_empty() && self.rejoin_pending.is_empty()
    }

    /// Undo every fault: heal the network, resume paused nodes, restart
    /// killed ones, reset clock offsets, put removed nodes back into the
    /// membership (retried for up to a minute). Returns the first error
    /// after trying everything.
    pub async fn heal_all(&mut self) -> Result<()> {
        let mut first_err = None;
        if let Some(mesh) = &self.cluster.mesh {
            mesh.heal();
        }
        self.partitioned = false;
        for node in std::mem::take(&mut self.paused) {
            if let Err(e) = self.cluster.resume(node) {
                first_err.get_or_insert(e);
            }
        }
        for node in std::mem::take(&mut self.killed) {
            if let Err(e) = self.restart(node) {
                first_err.get_or_insert(e);
            }
        }
        let skewed = std::mem::take(&mut self.skewed);
        self.clock_reset_pending.extend(skewed);
        let removed = std::mem::take(&mut self.removed);
        self.rejoin_pending.extend(removed);
        self.active.clear();
        self.note("heal-all", Value::Null);
        // Bounded: a restarted node needs a moment to answer, a re-add
        // needs a leader; give up after a minute.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.settle_pending().await {
            if Instant::now() > deadline {
                first_err.get_or_insert_with(|| {
                    anyhow!(
                        "could not undo every fault: clock resets pending on {:?}, re-adds pending for {:?}",
                        self.clock_reset_pending,
                        self.rejoin_pending
                    )
                });
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run `steps` until they end (callers bound this with the time limit).
    /// Every step is applied at its start and healed at its end; steps may
    /// overlap. At equal times heals go first.
    pub async fn run_schedule(&mut self, steps: &[Step]) {
        // (time, 0 = heal / 1 = apply, step)
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(steps.len() * 2);
        for (i, s) in steps.iter().enumerate() {
            events.push((s.at_ms, 1, i));
            events.push((s.at_ms.saturating_add(s.hold_ms), 0, i));
        }
        events.sort_unstable();
        for (at, what, i) in events {
            let at = self.start + Duration::from_millis(at);
            tokio::time::sleep_until(at.into()).await;
            let fault = &steps[i].fault;
            if what == 1 {
                match self.apply(fault).await {
                    // A leader transfer is an instant action with nothing
                    // to undo: it is not "held" alongside other faults.
                    Ok(true) if !matches!(fault, Fault::TransferLeader { .. }) => {
                        self.active.insert(i);
                        self.max_active = self.max_active.max(self.active.len());
                    }
                    Ok(true) => {}
                    Ok(false) => {}
                    Err(e) => self.note(
                        "fault-error",
                        json!({"fault": fault, "error": format!("{e:#}")}),
                    ),
                }
            } else {
                self.active.remove(&i);
                if let Err(e) = self.heal_one(fault).await {
                    self.note(
                        "heal-error",
                        json!({"fault": fault, "error": format!("{e:#}")}),
                    );
                }
            }
        }
    }

    pub fn log(&self) -> &[Value] {
        &self.log
    }

    /// Faults that took effect, by kind of action.
    pub fn counts(&self) -> &BTreeMap<String, usize> {
        &self.counts
    }

    /// Most faults held at the same time (leader transfers, which have
    /// nothing to undo, not counted).
    pub fn max_concurrent(&self) -> usize {
        self.max_active
    }
}

fn check(kind: WorkloadKind, history: &History) -> Result<CheckResult> {
    Ok(match kind {
        WorkloadKind::Register => check_register(history, &RegisterConfig::default())?,
        WorkloadKind::ListAppend => check_list_append(history)?,
        WorkloadKind::Bank => check_bank(
            history,
            &BankConfig {
                total: Some(workload::bank_total()),
                accounts: Some(
                    workload::BANK_ACCOUNTS
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                ),
                allow_negative: false,
            },
        )?,
        WorkloadKind::Counter => check_counter(history)?,
    })
}

/// Check an already-recorded history and write `history.jsonl` and
/// `result.json` into `dir`.
pub fn check_and_write(
    kind: WorkloadKind,
    history: &History,
    dir: &std::path::Path,
) -> Result<WorkloadOutcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    history
        .write_to_path(dir.join("history.jsonl"))
        .with_context(|| format!("writing history to {}", dir.display()))?;
    let result = check(kind, history).with_context(|| format!("checking {}", kind.name()))?;
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    let count =
        |t: crate::history::EventType| history.events.iter().filter(|e| e.kind == t).count();
    Ok(WorkloadOutcome {
        workload: kind,
        events: history.events.len(),
        ok: count(crate::history::EventType::Ok),
        fail: count(crate::history::EventType::Fail),
        info: count(crate::history::EventType::Info),
        result,
    })
}

/// The full run. Errors mean the harness itself failed (cluster did not
/// start or heal); database anomalies are in the returned outcome.
pub async fn run(cfg: &RunConfig) -> Result<RunOutcome> {
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let steps = cfg.schedule();
    let mut extra_args = Vec::new();
    if cfg.unsafe_local_reads {
        extra_args.push("--unsafeLocalReads".to_string());
    }
    let mut cluster = ProcessCluster::start(ClusterSpec {
        nodes: cfg.nodes,
        groups: workload::GROUPS.into(),
        shard_ranges: workload::SHARD_RANGES.into(),
        extra_args,
        keep_data: cfg.keep_data,
        proxied: true,
    })
    .await?;
    tracing::info!(dir = %cluster.dir.display(), "cluster started");
    let addrs: Vec<String> = (0..cfg.nodes).map(|i| cluster.grpc_addr(i)).collect();
    for &w in &cfg.workloads {
        workload::setup(w, &addrs, Duration::from_secs(30)).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut shared = Vec::new();
    let mut tasks = Vec::new();
    for (wi, &w) in cfg.workloads.iter().enumerate() {
        let s = Shared::new(cfg.workload.max_ops);
        for id in 0..cfg.workload.workers {
            let mut wc = cfg.workload.clone();
            wc.seed = cfg.seed.wrapping_add((wi as u64) << 32);
            tasks.push(tokio::spawn(workload::worker(
                w,
                id,
                addrs.clone(),
                s.clone(),
                stop.clone(),
                wc,
            )));
        }
        shared.push((w, s));
    }

    let start = Instant::now();
    let mut nemesis = Nemesis::new(&mut cluster, start).await?;
    // The schedule ends before the time limit; cut it short if it does not.
    let _ = tokio::time::timeout(cfg.time_limit, nemesis.run_schedule(&steps)).await;
    tokio::time::sleep_until((start + cfg.time_limit).into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert_with(|| anyhow!("worker: {e}"));
            }
            Err(e) => {
                first_err.get_or_insert_with(|| anyhow!("worker panicked: {e}"));
            }
        }
    }
    let healed = nemesis.heal_all().await;
    let log = nemesis.log().to_vec();
    let fault_counts = nemesis.counts().clone();
    let faults_applied = fault_counts.values().sum();
    let max_concurrent_faults = nemesis.max_concurrent();
    drop(nemesis);
    let mut f = std::fs::File::create(cfg.out.join("nemesis.jsonl"))?;
    for e in &log {
        writeln!(f, "{e}")?;
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    healed.context("healing the cluster")?;
    cluster
        .wait_all_groups_led(Duration::from_secs(60))
        .await
        .context("cluster did not recover after healing")?;
    // A membership fault must leave no trace: every node a voter again.
    cluster
        .wait_full_membership(Duration::from_secs(30))
        .await
        .context("membership not restored after healing")?;
    tokio::time::sleep(cfg.settle).await;
    for (w, s) in &shared {
        workload::final_reads(*w, &addrs, s, Duration::from_secs(60)).await?;
    }

    let mut outcomes = Vec::new();
    for (w, s) in &shared {
        let history = s.recorder.snapshot();
        let dir = cfg.out.join(w.name());
        outcomes.push(check_and_write(*w, &history, &dir)?);
        let trace = s.trace_snapshot();
        if !trace.is_empty() {
            let mut f = std::fs::File::create(dir.join("trace.jsonl"))?;
            for t in &trace {
                writeln!(f, "{t}")?;
            }
        }
    }
    let outcome = RunOutcome {
        seed: cfg.seed,
        nodes: cfg.nodes,
        time_limit_s: cfg.time_limit.as_secs(),
        nemeses: cfg.nemeses.clone(),
        overlap: cfg.overlap,
        faults_applied,
        fault_counts,
        max_concurrent_faults,
        workloads: outcomes,
    };
    std::fs::write(
        cfg.out.join("run.json"),
        serde_json::to_string_pretty(&outcome)?,
    )?;
    Ok(outcome)
}

/// A targeted, deterministic scenario: write `1`, isolate the leader of
/// the single group, write `2` (and more, if a write's outcome is unknown)
/// through the majority, then read from the isolated old leader. With
/// `--unsafeLocalReads` that read returns the stale `1` after `2` was
/// acknowledged, which the register checker must flag; with safe reads the
/// isolated node cannot serve it and the history stays linearizable.
pub async fn stale_read_scenario(
    unsafe_local_reads: bool,
    out: Option<&std::path::Path>,
) -> Result<CheckResult> {
    let mut extra_args = Vec::new();
    if unsafe_local_reads {
        extra_args.push("--unsafeLocalReads".to_string());
    }
    let cluster = ProcessCluster::start(ClusterSpec {
        nodes: 3,
        extra_args,
        proxied: true,
        ..Default::default()
    })
    .await?;
    let rec = Arc::new(Recorder::new());
    let addrs: Vec<String> = (0..3).map(|i| cluster.grpc_addr(i)).collect();
    let mut conns = workload::connect_all(&addrs).await?;
    let key = "x";
    let t = Duration::from_secs(3);
    let mut p = rec.process();

    let leader = cluster
        .leader_of(1)
        .await
        .ok_or_else(|| anyhow!("no leader after start"))?;
    // Write 1 through the leader and wait until every node applied it, so
    // the isolated node holds exactly 1.
    p.invoke("write", Some(json!(key)), json!(1))?;
    let r = tokio::time::timeout(
        t,
        conns[leader].raw.raw_put(RawPutRequest {
            key: key.into(),
            value: b"1".to_vec(),
        }),
    )
    .await
    .context("first write timed out")??
    .into_inner();
    p.ok(json!(1))?;
    for i in 0..3 {
        cluster
            .wait_applied(i, 1, r.commit_index, Duration::from_secs(10))
            .await?;
    }

    let mesh = cluster
        .mesh
        .as_ref()
        .ok_or_else(|| anyhow!("not proxied"))?;
    mesh.cut_links(&schedule::isolate(leader, 3));
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Keep writing through the majority until a write is acknowledged
    // (the first ones may time out while a new leader is elected).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut v = 2i64;
    let mut acked = false;
    while Instant::now() < deadline {
        let node = majority[(v as usize) % majority.len()];
        p.invoke("write", Some(json!(key)), json!(v))?;
        let res = tokio::time::timeout(
            t,
            conns[node].raw.raw_put(RawPutRequest {
                key: key.into(),
                value: v.to_string().into_bytes(),
            }),
        )
        .await;
        match res {
            Ok(Ok(_)) => {
                p.ok(json!(v))?;
                acked = true;
                break;
            }
            Ok(Err(e)) => p.info(e.message().to_string())?,
            Err(_) => p.info("timeout")?,
        };
        v += 1;
    }
    anyhow::ensure!(acked, "the majority never acknowledged a write");

    // Read from the isolated old leader.
    p.invoke("read", Some(json!(key)), Value::Null)?;
    match tokio::time::timeout(
        t,
        conns[leader].raw.raw_get(RawGetRequest {
            key: key.into(),
            ts: 0,
        }),
    )
    .await
    {
        Ok(Ok(r)) => {
            let r = r.into_inner();
            let val = if r.exists {
                String::from_utf8_lossy(&r.value)
                    .parse::<i64>()
                    .map(|n| json!(n))
                    .unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            p.ok(val)?
        }
        Ok(Err(e)) => p.fail(Value::Null, e.message().to_string())?,
        Err(_) => p.fail(Value::Null, "timeout")?,
    };
    mesh.heal();
    let history = rec.snapshot();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        history.write_to_path(dir.join("history.jsonl"))?;
    }
    let result = check_register(&history, &RegisterConfig::default())?;
    if let Some(dir) = out {
        std::fs::write(
            dir.join("result.json"),
            serde_json::to_string_pretty(&result)?,
        )?;
    }
    Ok(result)
}
