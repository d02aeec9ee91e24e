//! `RaftNode`: the multi-Raft runtime of one process. It hosts many groups,
//! all sharing one engine, one group-commit thread, one HLC and one set of
//! peer connections, and gives the data plane two primitives per group:
//! [`RaftNode::write`] and [`RaftNode::read_point`], each of which works on any
//! node (a follower forwards to the leader) and retries across leader changes
//! within a deadline.

use crate::command::{Op, OpResult, Request};
use crate::durability::Durability;
use crate::error::ReplError;
use crate::forwarder;
use crate::group_commit::GroupCommit;
use crate::lease::ReadLease;
use crate::log_store::LogStore;
use crate::network::{decode, encode, NetworkFactory, Transport};
use crate::proposer::{self, Item, ProposerCtx, ReadAt, ReadPoint};
use crate::state_machine::{SharedApplied, StateMachine};
use crate::types::{NodeInfo, Raft};
use elastickv_storage::{Engine, GroupStore};
use elastickv_types::{node_id_from_name, GroupId, Hlc, RequestId, Timestamp};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Followers wait this long (ms) after hearing from a leader before they
/// vote for anyone else (openraft's leader lease), at most.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1200;
/// Default read lease (ms): half of the time followers refuse votes.
pub const READ_LEASE_MS: u64 = 600;

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// Operator-facing node name (`--raftId`).
    pub name: String,
    /// Address peers and clients reach this node's gRPC port at.
    pub addr: String,
    /// Where snapshots are kept (the engine has its own directory).
    pub snapshot_dir: PathBuf,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_after_logs: u64,
    /// Entries kept below a snapshot, so slightly lagging followers catch up
    /// from the log instead of a snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Deadline of one client request, retries included.
    pub request_timeout: Duration,
    /// Peer name → address to dial instead of the advertised one.
    pub dial_overrides: HashMap<String, String>,
    /// MVCC versions are kept at least this long (ms) before GC may remove
    /// them; snapshot reads older than that are refused.
    pub gc_retention_ms: u64,
    /// **Unsafe, for the chaos harness only**: serve reads from local state
    /// without a read-index round. Breaks linearizability under partitions.
    pub unsafe_local_reads: bool,
    /// How long (ms) a quorum's acknowledgement lets the leader answer read
    /// indexes without another round (`lease.rs`); 0 disables the lease.
    /// Must stay below `election_timeout_max_ms`, the time followers refuse
    /// votes after hearing from the leader.
    pub read_lease_ms: u64,
}

impl RaftNodeConfig {
    pub fn new(name: impl Into<String>, addr: impl Into<String>, snapshot_dir: PathBuf) -> Self {
        RaftNodeConfig {
            name: name.into(),
            addr: addr.into(),
            snapshot_dir,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS,
            snapshot_after_logs: 20_000,
            logs_kept_after_snapshot: 2_000,
            request_timeout: Duration::from_secs(10),
            dial_overrides: HashMap::new(),
            gc_retention_ms: 10 * 60 * 1000,
            unsafe_local_reads: false,
            read_lease_ms: READ_LEASE_MS,
        }
    }
}

/// One hosted group.
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub store: GroupStore,
    proposer: mpsc::Sender<Item>,
    forwarder: mpsc::Sender<forwarder::Job>,
    /// What the state machine applied that the node needs: the ranges the
    /// group owns and its committed HLC ceiling.
    pub applied: SharedApplied,
    /// Reads below this timestamp may miss versions GC removed.
    gc_safe_point: AtomicU64,
    /// Vote requests are refused until then: a member that restarted may
    /// have acknowledged a leader whose read lease still runs (`lease.rs`).
    pub votes_from: Instant,
}

impl Group {
    /// The GC safe point: snapshot reads must be at or above it.
    pub fn gc_safe_point(&self) -> Timestamp {
        self.gc_safe_point.load(Ordering::Acquire)
    }
}

/// Something forwarded to another node.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    Writes(Vec<Request>),
    /// What a follower's forwarder gathered: writes and reads, answered
    /// one by one.
    Batch {
        writes: Vec<Request>,
        reads: Vec<ReadAt>,
    },
    Read(ReadAt),
    AddLearner(NodeInfo),
    Promote(String),
    Remove(String),
    Campaign,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ForwardReply {
    Writes(Vec<Result<(OpResult, u64), ReplError>>),
    Batch {
        writes: Vec<Result<(OpResult, u64), ReplError>>,
        reads: Result<Vec<ReadPoint>, ReplError>,
    },
    Read(ReadPoint),
    Done,
}

struct Inner {
    /// Every log line of this node's tasks carries the node's name.
    span: tracing::Span,
    config: RaftNodeConfig,
    id: u64,
    info: NodeInfo,
    engine: Engine,
    hlc: Arc<Hlc>,
    transport: Transport,
    group_commit: GroupCommit,
    proposer_stats: Arc<proposer::ProposerStats>,
    groups: RwLock<BTreeMap<GroupId, Arc<Group>>>,
}

/// The multi-Raft runtime. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

/// Result of a committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub commit_ts: Timestamp,
    pub index: u64,
}

impl RaftNode {
    pub fn new(config: RaftNodeConfig, engine: Engine, hlc: Arc<Hlc>) -> Result<Self, ReplError> {
        // Log entries written before a crash of the process may still sit in
        // the OS cache only; the log stores take what they find as durable.
        engine
            .sync()
            .map_err(|e| ReplError::Internal(format!("syncing the engine at start: {e}")))?;
        let group_commit =
            GroupCommit::start(engine.clone()).map_err(|e| ReplError::Internal(e.to_string()))?;
        let transport = Transport::new(config.dial_overrides.clone());
        let info = NodeInfo {
            name: config.name.clone(),
            addr: config.addr.clone(),
        };
        Ok(RaftNode {
            inner: Arc::new(Inner {
                span: tracing::info_span!("node", node = %config.name),
                id: node_id_from_name(&config.name),
                info,
                config,
                engine,
                hlc,
                transport,
                group_commit,
                proposer_stats: Arc::default(),
                groups: RwLock::new(BTreeMap::new()),
            }),
        })
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    pub fn hlc(&self) -> &Arc<Hlc> {
        &self.inner.hlc
    }

    pub fn group_commit(&self) -> &GroupCommit {
        &self.inner.group_commit
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Start hosting `group` (idempotent).
    pub async fn open_group(&self, gid: GroupId) -> Result<Arc<Group>, ReplError> {
        if let Some(g) = self.group(gid) {
            return Ok(g);
        }
        let internal = |e: &dyn std::fmt::Display| ReplError::Internal(format!("group {gid}: {e}"));
        let engine = &self.inner.engine;
        let log = engine.raft_log(gid).map_err(|e| internal(&e))?;
        let store = engine.group(gid).map_err(|e| internal(&e))?;
        let log_store = LogStore::new(log, self.inner.group_commit.clone(), self.inner.id)
            .map_err(|e| internal(&e))?;
        let last_appended = log_store.last_appended();
        let durability = log_store.durability();
        let c = &self.inner.config;
        if c.read_lease_ms >= c.election_timeout_max_ms {
            return Err(internal(&format!(
                "read lease {} ms must be shorter than the election timeout {} ms",
                c.read_lease_ms, c.election_timeout_max_ms
            )));
        }
        // A group with a stored vote may have acknowledged a leader just
        // before this process stopped.
        let had_vote = {
            use openraft::storage::RaftLogStorage;
            let mut reader = log_store.clone();
            reader
                .read_vote()
                .await
                .map_err(|e| internal(&e))?
                .is_some()
        };
        let votes_from = if had_vote {
            Instant::now() + Duration::from_millis(c.election_timeout_max_ms)
        } else {
            Instant::now()
        };
        let snapshot_dir = self.inner.config.snapshot_dir.join(format!("g{}", gid.0));
        let ownership = SharedApplied::default();
        let sm = StateMachine::open_shared(
            store.clone(),
            self.inner.hlc.clone(),
            snapshot_dir,
            ownership.clone(),
        )
        .map_err(|e| internal(&e))?
        .with_durability(durability.clone());
        let raft_config = openraft::Config {
            cluster_name: format!("elastickv-g{}", gid.0),
            heartbeat_interval: c.heartbeat_interval_ms,
            election_timeout_min: c.election_timeout_min_ms,
            election_timeout_max: c.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_after_logs),
            max_in_snapshot_log_to_keep: c.logs_kept_after_snapshot,
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| internal(&e))?;
        let network = NetworkFactory {
            group: gid,
            self_id: self.inner.id,
            transport: self.inner.transport.clone(),
            durability: durability.clone(),
        };
        let raft = Raft::new(self.inner.id, Arc::new(raft_config), network, log_store, sm)
            .await
            .map_err(|e| internal(&e))?;
        let group_span = tracing::info_span!(parent: &self.inner.span, "group", group = gid.0);
        let proposer = proposer::spawn(
            group_span,
            ProposerCtx {
                stats: self.inner.proposer_stats.clone(),
                shared: ownership.clone(),
                group: gid.0,
                self_id: self.inner.id,
                raft: raft.clone(),
                hlc: self.inner.hlc.clone(),
                last_appended,
                lease: Arc::new(ReadLease::new(Duration::from_millis(c.read_lease_ms))),
            },
        );
        let forwarder = forwarder::spawn(
            gid,
            self.inner.transport.clone(),
            self.inner.config.request_timeout,
            tracing::info_span!(parent: &self.inner.span, "forward", group = gid.0),
        );
        let group = Arc::new(Group {
            id: gid,
            raft,
            store,
            proposer,
            forwarder,
            applied: ownership,
            gc_safe_point: AtomicU64::new(0),
            votes_from,
        });
        {
            let mut groups = self
                .inner
                .groups
                .write()
                .map_err(|_| ReplError::Internal("group table poisoned".into()))?;
            groups.insert(gid, group.clone());
        }
        self.spawn_ceiling_renewal(group.clone());
        self.spawn_gc(group.clone());
        self.spawn_commit_kick(group.clone(), durability);
        tracing::info!(group = gid.0, node = %self.inner.info, "group started");
        Ok(group)
    }

    /// The hosted group `gid`.
    pub fn group(&self, gid: GroupId) -> Option<Arc<Group>> {
        self.inner
            .groups
            .read()
            .ok()
            .and_then(|g| g.get(&gid).cloned())
    }

    /// All hosted groups.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.inner
            .groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    fn require_group(&self, gid: GroupId) -> Result<Arc<Group>, ReplError> {
        self.group(gid).ok_or(ReplError::UnknownGroup(gid.0))
    }

    /// Form every hosted group with `members` as voters. A group that is
    /// already initialized is left alone, so restarting a bootstrap node
    /// is harmless.
    pub async fn bootstrap(&self, members: &[NodeInfo]) -> Result<(), ReplError> {
        let members: BTreeMap<u64, NodeInfo> = members
            .iter()
            .map(|m| (node_id_from_name(&m.name), m.clone()))
            .collect();
        for group in self.groups() {
            let initialized = group
                .raft
                .is_initialized()
                .await
                .map_err(|e| ReplError::Internal(e.to_string()))?;
            if initialized {
                continue;
            }
            match group.raft.initialize(members.clone()).await {
                Ok(()) => tracing::info!(group = group.id.0, "bootstrapped"),
                Err(openraft::error::RaftError::APIError(
                    openraft::error::InitializeError::NotAllowed(_),
                )) => {}
                Err(e) => {
                    return Err(ReplError::Internal(format!(
                        "bootstrap group {}: {e}",
                        group.id
                    )))
                }
            }
        }
        Ok(())
    }

    /// The leader of `gid` this node knows, and its address.
    fn leader_of(&self, group: &Group) -> Option<(u64, NodeInfo)> {
        let m = group.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Send `msg` to the group's leader, or handle it here if we lead.
    /// Retries on leader changes until the node deadline.
    async fn to_leader(
        &self,
        group: &Arc<Group>,
        msg: Forwarded,
        deadline: Instant,
    ) -> Result<ForwardReply, ReplError> {
        let mut backoff = Duration::from_millis(5);
        let mut last_err = ReplError::Unavailable(format!("no leader for group {}", group.id));
        let mut maybe_applied = false;
        let mut msg = msg;
        let mut tries: u32 = 0;
        loop {
            if tries > 0 {
                if let Forwarded::Writes(reqs) = &mut msg {
                    for r in reqs.iter_mut() {
                        r.attempt = tries;
                    }
                }
            }
            tries = tries.saturating_add(1);
            let attempt = match self.leader_of(group) {
                Some((leader, _)) if leader == self.inner.id => {
                    self.handle_forwarded(group, &msg).await
                }
                Some((_, node)) => {
                    maybe_applied |= matches!(msg, Forwarded::Writes(_));
                    self.forward_batched(group, node, &msg, deadline).await
                }
                None => Err(last_err.clone()),
            };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(e) if e.is_retryable() || matches!(e, ReplError::Timeout(_)) => {
                    if matches!(e, ReplError::Timeout(_)) {
                        maybe_applied = true;
                    }
                    last_err = e;
                }
                Err(e) => return Err(e),
            }
            if Instant::now() + backoff >= deadline {
                return Err(if maybe_applied {
                    ReplError::Timeout(format!("group {}: {last_err}", group.id))
                } else {
                    ReplError::Unavailable(format!("group {}: {last_err}", group.id))
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Forward through the group's forwarder when the message is one write
    /// or one read (the common case, batched with others); directly otherwise.
    async fn forward_batched(
        &self,
        group: &Arc<Group>,
        target: NodeInfo,
        msg: &Forwarded,
        deadline: Instant,
    ) -> Result<ForwardReply, ReplError> {
        let stopped = || ReplError::Unavailable("forwarder stopped".into());
        match msg {
            Forwarded::Writes(reqs) if reqs.len() == 1 => {
                let (tx, rx) = oneshot::channel();
                let pending = forwarder::Pending::Write(reqs[0].clone(), tx);
                group
                    .forwarder
                    .send(forwarder::Job { target, pending })
                    .await
                    .map_err(|_| stopped())?;
                let result = rx.await.map_err(|_| stopped())?;
                if let Err(e) = &result {
                    if e.is_retryable() || matches!(e, ReplError::Timeout(_)) {
                        return Err(e.clone());
                    }
                }
                Ok(ForwardReply::Writes(vec![result]))
            }
            Forwarded::Read(ts) => {
                let (tx, rx) = oneshot::channel();
                let pending = forwarder::Pending::Read(*ts, tx);
                group
                    .forwarder
                    .send(forwarder::Job { target, pending })
                    .await
                    .map_err(|_| stopped())?;
                Ok(ForwardReply::Read(rx.await.map_err(|_| stopped())??))
            }
            _ => self.forward_to(&target, group.id, msg, deadline).await,
        }
    }

    async fn forward_to(
        &self,
        node: &NodeInfo,
        gid: GroupId,
        msg: &Forwarded,
        deadline: Instant,
    ) -> Result<ForwardReply, ReplError> {
        let req = encode(gid, msg).map_err(|e| ReplError::Internal(e.to_string()))?;
        let mut client = self
            .inner
            .transport
            .client(node)
            .map_err(|e| ReplError::Unavailable(e.to_string()))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let reply = match tokio::time::timeout(remaining, client.forward(req)).await {
            Err(_) => return Err(ReplError::Timeout(format!("forward to {node}"))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(ReplError::Unavailable(format!(
                    "{node}: {}",
                    status.message()
                )))
            }
            Ok(Err(status)) => return Err(ReplError::Timeout(format!("{node}: {status}"))),
            Ok(Ok(r)) => r.into_inner(),
        };
        decode::<Result<ForwardReply, ReplError>>(&reply)
            .map_err(|e| ReplError::Internal(e.to_string()))?
    }

    /// Handle a forwarded message as (supposed) leader, or as the campaign
    /// target.
    pub(crate) async fn handle_forwarded(
        &self,
        group: &Arc<Group>,
        msg: &Forwarded,
    ) -> Result<ForwardReply, ReplError> {
        match msg {
            Forwarded::Writes(reqs) => {
                let mut waits = Vec::with_capacity(reqs.len());
                for req in reqs {
                    let (tx, rx) = oneshot::channel();
                    group
                        .proposer
                        .send(Item::Write {
                            req: req.clone(),
                            reply: tx,
                        })
                        .await
                        .map_err(|_| ReplError::Unavailable("proposer stopped".into()))?;
                    waits.push(rx);
                }
                let mut out = Vec::with_capacity(waits.len());
                for rx in waits {
                    out.push(rx.await.unwrap_or_else(|_| {
                        Err(ReplError::Unavailable("proposer dropped request".into()))
                    }));
                }
                // A batch where every request failed the same retryable way
                // is retried as a whole by the caller.
                if let Some(Err(e)) = out.first() {
                    if e.is_retryable() && out.iter().all(|r| r.is_err()) {
                        return Err(e.clone());
                    }
                }
                Ok(ForwardReply::Writes(out))
            }
            Forwarded::Batch { writes, reads } => {
                let mut write_waits = Vec::with_capacity(writes.len());
                let proposer_gone = || ReplError::Unavailable("proposer stopped".into());
                for req in writes {
                    let (tx, rx) = oneshot::channel();
                    group
                        .proposer
                        .send(Item::Write {
                            req: req.clone(),
                            reply: tx,
                        })
                        .await
                        .map_err(|_| proposer_gone())?;
                    write_waits.push(rx);
                }
                let mut read_waits = Vec::with_capacity(reads.len());
                for ts in reads {
                    let (tx, rx) = oneshot::channel();
                    group
                        .proposer
                        .send(Item::Read { at: *ts, reply: tx })
                        .await
                        .map_err(|_| proposer_gone())?;
                    read_waits.push(rx);
                }
                let mut write_results = Vec::with_capacity(write_waits.len());
                for rx in write_waits {
                    write_results.push(rx.await.unwrap_or_else(|_| Err(proposer_gone())));
                }
                let mut points = Vec::with_capacity(read_waits.len());
                let mut read_err = None;
                for rx in read_waits {
                    match rx.await.unwrap_or_else(|_| Err(proposer_gone())) {
                        Ok(p) => points.push(p),
                        Err(e) => read_err = Some(e),
                    }
                }
                Ok(ForwardReply::Batch {
                    writes: write_results,
                    reads: match read_err {
                        Some(e) => Err(e),
                        None => Ok(points),
                    },
                })
            }
            Forwarded::Read(ts) => {
                let (tx, rx) = oneshot::channel();
                group
                    .proposer
                    .send(Item::Read { at: *ts, reply: tx })
                    .await
                    .map_err(|_| ReplError::Unavailable("proposer stopped".into()))?;
                let point = rx.await.unwrap_or_else(|_| {
                    Err(ReplError::Unavailable("proposer dropped request".into()))
                })?;
                Ok(ForwardReply::Read(point))
            }
            Forwarded::AddLearner(node) => {
                let id = node_id_from_name(&node.name);
                group
                    .raft
                    .add_learner(id, node.clone(), true)
                    .await
                    .map_err(|e| self.membership_err(group, e))?;
                Ok(ForwardReply::Done)
            }
            Forwarded::Promote(name) => {
                let id = node_id_from_name(name);
                let ids: BTreeSet<u64> = [id].into();
                group
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(ids), false)
                    .await
                    .map_err(|e| self.membership_err(group, e))?;
                Ok(ForwardReply::Done)
            }
            Forwarded::Remove(name) => {
                let id = node_id_from_name(name);
                let ids: BTreeSet<u64> = [id].into();
                let is_voter = {
                    let m = group.raft.metrics();
                    let m = m.borrow();
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == id)
                };
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(ids)
                } else {
                    ChangeMembers::RemoveNodes(ids)
                };
                group
                    .raft
                    .change_membership(change, false)
                    .await
                    .map_err(|e| self.membership_err(group, e))?;
                Ok(ForwardReply::Done)
            }
            Forwarded::Campaign => {
                group
                    .raft
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| ReplError::Unavailable(e.to_string()))?;
                Ok(ForwardReply::Done)
            }
        }
    }

    fn membership_err(
        &self,
        group: &Group,
        e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, NodeInfo>>,
    ) -> ReplError {
        use openraft::error::{ClientWriteError, RaftError};
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ReplError::NotLeader {
                group: group.id.0,
                leader: f.leader_id,
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                ReplError::Invalid(c.to_string())
            }
            RaftError::Fatal(f) => ReplError::Unavailable(f.to_string()),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.config.request_timeout
    }

    /// Replicate `op` on group `gid`, wait for it to be applied, and return
    /// the state machine's answer and the entry's log index.
    pub async fn propose(&self, gid: GroupId, op: Op) -> Result<(OpResult, u64), ReplError> {
        let group = self.require_group(gid)?;
        let req = Request {
            id: RequestId::new(self.inner.hlc.physical_now_ms()),
            ts: 0,
            op: Arc::new(op),
            attempt: 0,
        };
        // The same request (same id) is resent on every retry, so the state
        // machine applies it at most once.
        let reply = self
            .to_leader(&group, Forwarded::Writes(vec![req]), self.deadline())
            .await?;
        let ForwardReply::Writes(mut results) = reply else {
            return Err(ReplError::Internal("unexpected forward reply".into()));
        };
        match results.pop() {
            Some(Ok((OpResult::Rejected { reason }, _))) => Err(ReplError::Rejected(reason)),
            Some(Ok((OpResult::StaleRoute { version }, _))) => Err(ReplError::StaleRoute {
                group: gid.0,
                version,
            }),
            Some(r) => r,
            None => Err(ReplError::Internal("empty forward reply".into())),
        }
    }

    /// Replicate a plain write on group `gid` and wait for it to be applied.
    pub async fn write(&self, gid: GroupId, op: Op) -> Result<Written, ReplError> {
        match self.propose(gid, op).await? {
            (OpResult::Written { commit_ts }, index) => Ok(Written { commit_ts, index }),
            (OpResult::Ceiling, index) => Ok(Written {
                commit_ts: 0,
                index,
            }),
            (other, _) => Err(ReplError::Internal(format!("unexpected result {other:?}"))),
        }
    }

    /// A timestamp from the leader of `gid`, above every timestamp that
    /// leader assigned or served before (the timestamp oracle of
    /// transactions, on the default group).
    pub async fn timestamp(&self, gid: GroupId) -> Result<Timestamp, ReplError> {
        let group = self.require_group(gid)?;
        let reply = self
            .to_leader(&group, Forwarded::Read(ReadAt::Fresh), self.deadline())
            .await?;
        let ForwardReply::Read(point) = reply else {
            return Err(ReplError::Internal("unexpected forward reply".into()));
        };
        self.inner.hlc.observe(point.ts);
        Ok(point.ts)
    }

    /// Make the leader of `gid` observe `ts`: every timestamp it hands out
    /// or assigns afterwards is above it (the committed ceiling is renewed
    /// first if `ts` runs ahead of it).
    pub async fn observe_on_leader(&self, gid: GroupId, ts: Timestamp) -> Result<(), ReplError> {
        let group = self.require_group(gid)?;
        self.to_leader(&group, Forwarded::Read(ReadAt::Ts(ts)), self.deadline())
            .await
            .map(|_| ())
    }

    /// Where a linearizable read of group `gid` may be served on this node:
    /// waits until the local state machine applied the leader's read index.
    /// `ts` pins the snapshot timestamp (None: the leader picks "now").
    pub async fn read_point(
        &self,
        gid: GroupId,
        ts: Option<Timestamp>,
    ) -> Result<ReadPoint, ReplError> {
        let group = self.require_group(gid)?;
        if self.inner.config.unsafe_local_reads {
            let applied = group
                .raft
                .metrics()
                .borrow()
                .last_applied
                .map(|l| l.index)
                .unwrap_or(0);
            return Ok(ReadPoint {
                index: applied,
                ts: ts.unwrap_or_else(|| self.inner.hlc.now()),
            });
        }
        let deadline = self.deadline();
        let reply = self
            .to_leader(
                &group,
                Forwarded::Read(ts.map_or(ReadAt::Latest, ReadAt::Ts)),
                deadline,
            )
            .await?;
        let ForwardReply::Read(point) = reply else {
            return Err(ReplError::Internal("unexpected forward reply".into()));
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        group
            .raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(point.index), "read index")
            .await
            .map_err(|e| ReplError::Unavailable(format!("waiting for apply: {e}")))?;
        self.inner.hlc.observe(point.ts);
        Ok(point)
    }

    /// Add a node as learner (on the leader, wherever it is).
    pub async fn add_learner(&self, gid: GroupId, node: NodeInfo) -> Result<(), ReplError> {
        let group = self.require_group(gid)?;
        self.to_leader(&group, Forwarded::AddLearner(node), self.deadline())
            .await
            .map(|_| ())
    }

    /// Promote a learner to voter.
    pub async fn promote(&self, gid: GroupId, name: String) -> Result<(), ReplError> {
        let group = self.require_group(gid)?;
        self.to_leader(&group, Forwarded::Promote(name), self.deadline())
            .await
            .map(|_| ())
    }

    /// Remove a node from the group.
    pub async fn remove(&self, gid: GroupId, name: String) -> Result<(), ReplError> {
        let group = self.require_group(gid)?;
        self.to_leader(&group, Forwarded::Remove(name), self.deadline())
            .await
            .map(|_| ())
    }

    /// Ask the member named `name` to campaign for leadership of `gid`.
    pub async fn transfer_leader(&self, gid: GroupId, name: &str) -> Result<(), ReplError> {
        let group = self.require_group(gid)?;
        if name == self.inner.info.name {
            return self
                .handle_forwarded(&group, &Forwarded::Campaign)
                .await
                .map(|_| ());
        }
        let target = {
            let m = group.raft.metrics();
            let m = m.borrow();
            m.membership_config
                .membership()
                .get_node(&node_id_from_name(name))
                .cloned()
        }
        .ok_or_else(|| ReplError::Invalid(format!("{name} is not a member of group {gid}")))?;
        self.forward_to(&target, gid, &Forwarded::Campaign, self.deadline())
            .await
            .map(|_| ())
    }

    /// When a commit index this node held back from its followers (it was
    /// ahead of the node's own fsync, see `durability.rs`) becomes durable
    /// and no AppendEntries carried it meanwhile, send a heartbeat: an idle
    /// group's followers would otherwise learn it only at the next regular
    /// heartbeat.
    fn spawn_commit_kick(&self, group: Arc<Group>, durability: Arc<Durability>) {
        const GRACE: Duration = Duration::from_millis(3);
        const CHECK_STOPPED: Duration = Duration::from_secs(1);
        let raft = group.raft.clone();
        let span = tracing::info_span!(parent: &self.inner.span, "commit-kick", group = group.id.0);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    tokio::select! {
                        overdue = durability.next_overdue_commit(GRACE) => {
                            if overdue.is_err() || raft.trigger().heartbeat().await.is_err() {
                                return;
                            }
                        }
                        _ = tokio::time::sleep(CHECK_STOPPED) => {
                            if raft.metrics().borrow().running_state.is_err() {
                                return;
                            }
                        }
                    }
                }
            },
            span,
        ));
    }

    /// Keep an HLC ceiling 0.6–1 s ahead of the leader's clock committed in
    /// every group this node leads (see `elastickv_types::hlc`): far enough
    /// that batches do not wait for a renewal, near enough that a successor
    /// waits at most that long for its clock to pass it.
    fn spawn_ceiling_renewal(&self, group: Arc<Group>) {
        use proposer::{CEILING_RENEW_BELOW_MS, CEILING_RENEW_TICK, CEILING_WINDOW_MS};
        let node = self.clone();
        let span = tracing::info_span!(parent: &self.inner.span, "hlc", group = group.id.0);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(CEILING_RENEW_TICK);
                loop {
                    tick.tick().await;
                    let (is_leader, stopped) = {
                        let m = group.raft.metrics();
                        let m = m.borrow();
                        (m.state == ServerState::Leader, m.running_state.is_err())
                    };
                    if stopped {
                        return;
                    }
                    if !is_leader {
                        continue;
                    }
                    let hlc = &node.inner.hlc;
                    // The horizon includes timestamps observed from other
                    // nodes, which may run ahead of this clock.
                    let now = hlc
                        .physical_now_ms()
                        .max(elastickv_types::hlc::physical_ms(hlc.last()));
                    if group.applied.ceiling_ms() > now + CEILING_RENEW_BELOW_MS {
                        continue;
                    }
                    let op = Op::HlcCeiling {
                        ms: now + CEILING_WINDOW_MS,
                    };
                    if let Err(e) = node.write(group.id, op).await {
                        tracing::debug!(group = group.id.0, error = %e, "HLC ceiling renewal failed");
                    }
                }
            },
            span,
        ));
    }

    /// Background MVCC garbage collection of one group on this replica.
    /// Each pass visits a bounded number of keys in a blocking task, so
    /// foreground writes only ever wait for one small deletion batch; passes
    /// are spaced out, and a sweep of the whole key space starts only once
    /// the safe point moved by a tenth of the retention — sweeping more
    /// often would scan every key again to find next to nothing.
    fn spawn_gc(&self, group: Arc<Group>) {
        const KEYS_PER_PASS: usize = 1_000;
        const PAUSE_BETWEEN_PASSES: Duration = Duration::from_millis(5);
        let retention_ms = self.inner.config.gc_retention_ms;
        let sweep_every = Duration::from_millis(retention_ms / 10).max(Duration::from_secs(5));
        let hlc = self.inner.hlc.clone();
        let span = tracing::info_span!(parent: &self.inner.span, "gc", group = group.id.0);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut resume: Option<Vec<u8>> = None;
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                let mut last_sweep: Option<Instant> = None;
                loop {
                    tick.tick().await;
                    if group.raft.metrics().borrow().running_state.is_err() {
                        return;
                    }
                    let safe_ms = hlc.physical_now_ms().saturating_sub(retention_ms);
                    let safe_point = elastickv_types::hlc::compose(safe_ms, 0);
                    // Publish first: a read that starts now must not go below it.
                    group.gc_safe_point.fetch_max(safe_point, Ordering::AcqRel);
                    if last_sweep.is_some_and(|t| t.elapsed() < sweep_every) {
                        continue;
                    }
                    last_sweep = Some(Instant::now());
                    // Sweep the whole key space in bounded passes.
                    loop {
                        let store = group.store.clone();
                        let from = resume.take();
                        let pass = tokio::task::spawn_blocking(move || {
                            store.gc(safe_point, KEYS_PER_PASS, from.as_deref())
                        })
                        .await;
                        match pass {
                            Ok(Ok(progress)) => {
                                if progress.versions_removed > 0 {
                                    tracing::debug!(
                                        group = group.id.0,
                                        removed = progress.versions_removed,
                                        "gc pass"
                                    );
                                }
                                resume = progress.resume_from;
                                if resume.is_none() {
                                    break;
                                }
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(group = group.id.0, error = %e, "gc pass failed");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(group = group.id.0, error = %e, "gc task failed");
                                break;
                            }
                        }
                        tokio::time::sleep(PAUSE_BETWEEN_PASSES).await;
                    }
                }
            },
            span,
        ));
    }

    /// Stop every group.
    pub async fn shutdown(&self) {
        for group in self.groups() {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(group = group.id.0, error = %e, "raft shutdown");
            }
        }
        if let Err(e) = self.inner.group_commit.sync().await {
            tracing::warn!(error = %e, "final sync failed");
        }
    }

    /// (entries proposed, requests they carried) by this node as leader.
    pub fn proposer_stats(&self) -> (u64, u64) {
        let s = &self.inner.proposer_stats;
        (
            s.proposals.load(Ordering::Relaxed),
            s.requests.load(Ordering::Relaxed),
        )
    }

    /// Counter of fsyncs and flushed appends, for benchmarks.
    pub fn fsync_stats(&self) -> (u64, u64) {
        let s = self.inner.group_commit.stats();
        (
            s.fsyncs.load(Ordering::Relaxed),
            s.appends_flushed.load(Ordering::Relaxed),
        )
    }
}
