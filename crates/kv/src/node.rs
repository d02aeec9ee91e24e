//! `Kv`: the node-local handle on the data plane.

use crate::router::{RouteTable, Routed, Router};
use crate::KvError;
use elastickv_raft::{Mutation, NodeInfo, Op, RaftNode, ReplError};
use elastickv_types::{limits, GroupId, Timestamp};
use std::sync::Arc;
use tokio::sync::watch;

/// Result of a committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Commit timestamp given to the write's version.
    pub commit_ts: Timestamp,
    /// Raft log index of the write in its group.
    pub index: u64,
}

/// Result of a linearizable point read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    pub value: Option<Vec<u8>>,
    /// Timestamp the read was served at.
    pub read_ts: Timestamp,
    /// Applied index the read waited for.
    pub index: u64,
}

/// One member of a group, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub raft_id: String,
    pub address: String,
    pub voter: bool,
}

/// One group's Raft state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: GroupId,
    /// Name of the leader this node knows, if any.
    pub leader: Option<String>,
    pub term: u64,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown".
    pub state: String,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub members: Vec<MemberStatus>,
}

/// This node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub raft_id: String,
    pub address: String,
    pub groups: Vec<GroupStatus>,
    pub hlc_now: Timestamp,
}

/// Tunables of the data plane.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// Largest value a write may carry, in bytes.
    pub max_value_bytes: usize,
    /// The initial routing table (version 0), used until the route catalog
    /// has been read.
    pub router: Router,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_value_bytes: limits::DEFAULT_MAX_VALUE_BYTES,
            router: Router::default(),
        }
    }
}

/// Handle on the data plane; cheap to clone.
#[derive(Clone)]
pub struct Kv {
    raft: RaftNode,
    config: Arc<KvConfig>,
    /// The current routing table. A watch channel is both the atomically
    /// swappable cell (readers clone the `Arc` under a short read lock) and
    /// the notification of new versions for whoever waits on one.
    routes: Arc<watch::Sender<Arc<RouteTable>>>,
}

/// How often a request re-routes after a group reports a stale route.
const MAX_STALE_RETRIES: u32 = 5;
/// How long a stale request waits for the newer routing table each time.
const STALE_ROUTE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) fn map_repl(e: ReplError) -> KvError {
    match e {
        ReplError::StaleRoute { .. } => KvError::Unavailable(e.to_string()),
        ReplError::NotLeader { .. } | ReplError::Unavailable(_) | ReplError::UnknownGroup(_) => {
            KvError::Unavailable(e.to_string())
        }
        ReplError::Timeout(m) => KvError::Timeout(m),
        ReplError::Rejected(m) | ReplError::Invalid(m) => KvError::InvalidArgument(m),
        ReplError::Internal(m) => KvError::Internal(m),
    }
}

pub(crate) fn map_storage(e: elastickv_storage::StorageError) -> KvError {
    KvError::Internal(e.to_string())
}

impl Kv {
    pub fn new(raft: RaftNode, config: KvConfig) -> Self {
        let initial = RouteTable {
            version: 0,
            router: config.router.clone(),
        };
        Kv {
            raft,
            config: Arc::new(config),
            routes: Arc::new(watch::Sender::new(Arc::new(initial))),
        }
    }

    /// The replication runtime under this data plane.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The current routing table (a snapshot: a catalog change installs a
    /// new table and leaves this one untouched). Dereferences to
    /// [`Router`].
    pub fn router(&self) -> Arc<RouteTable> {
        self.routes.borrow().clone()
    }

    /// The group owning `key` under the current table, with the table's
    /// version.
    pub fn route(&self, key: &[u8]) -> Routed {
        let table = self.routes.borrow();
        Routed {
            group: table.route(key).group,
            version: table.version,
        }
    }

    /// True when this node currently leads the group owning `key`.
    pub fn leads(&self, key: &[u8]) -> bool {
        let gid = self.route(key).group;
        self.raft
            .group(gid)
            .is_some_and(|g| g.raft.metrics().borrow().current_leader == Some(self.raft.id()))
    }

    /// Version of the route catalog the current table reflects (0: the
    /// static `--shardRanges` table).
    pub fn catalog_version(&self) -> u64 {
        self.routes.borrow().version
    }

    /// Install `table` if it is newer than the current one; tables never go
    /// back in version (two sources — the watcher and a local split — may
    /// race to install). Returns whether it was installed.
    pub fn install_routes(&self, table: RouteTable) -> bool {
        let table = Arc::new(table);
        self.routes.send_if_modified(|current| {
            if table.version > current.version {
                *current = table;
                true
            } else {
                false
            }
        })
    }

    /// Notified whenever a newer table is installed.
    pub fn subscribe_routes(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.routes.subscribe()
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), KvError> {
        if key.len() > limits::MAX_KEY_BYTES {
            return Err(KvError::InvalidArgument(format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                limits::MAX_KEY_BYTES
            )));
        }
        Ok(())
    }

    /// Refuse snapshot reads older than the GC safe point: the versions
    /// they need may already be gone.
    pub(crate) fn check_read_ts(
        &self,
        group: GroupId,
        ts: Option<Timestamp>,
    ) -> Result<(), KvError> {
        let Some(ts) = ts else {
            return Ok(());
        };
        let safe_point = self.gc_safe_point(group);
        if ts < safe_point {
            return Err(KvError::InvalidArgument(format!(
                "read timestamp {ts} is below the GC safe point {safe_point}"
            )));
        }
        Ok(())
    }

    /// Versions older than this may already be garbage-collected in
    /// `group` (0 when the group is not hosted here: nothing is known to
    /// be lost).
    pub(crate) fn gc_safe_point(&self, group: GroupId) -> Timestamp {
        self.raft.group(group).map_or(0, |g| g.gc_safe_point())
    }

    pub(crate) fn group_store(
        &self,
        group: GroupId,
    ) -> Result<elastickv_storage::GroupStore, KvError> {
        self.raft
            .group(group)
            .map(|g| g.store.clone())
            .ok_or_else(|| {
                KvError::Unavailable(format!("raft group {group} is not hosted on this node"))
            })
    }

    async fn write(&self, key: &[u8], mutation: Mutation) -> Result<WriteOutcome, KvError> {
        let mut attempts = 0;
        loop {
            let routed = self.route(key);
            let op = Op::Write {
                mutations: vec![mutation.clone()],
            };
            match self.raft.write(routed.group, op).await {
                Ok(written) => {
                    return Ok(WriteOutcome {
                        commit_ts: written.commit_ts,
                        index: written.index,
                    })
                }
                // The group refused the key before any effect: our table is
                // older than its ownership. Wait for the newer table, re-route.
                Err(ReplError::StaleRoute { version, .. }) if attempts < MAX_STALE_RETRIES => {
                    attempts += 1;
                    self.await_routes_at_least(version).await;
                }
                Err(e) => return Err(map_repl(e)),
            }
        }
    }

    /// For every group this node leads whose recorded ownership is older than
    /// the routing table, propose the table's ranges for it. Every node's
    /// watcher calls this; the version check in the state machine makes
    /// duplicates harmless, and a crash between a catalog change and this
    /// step heals on the next call.
    pub async fn sync_ownership(&self) {
        let table = self.router();
        if table.version == 0 {
            return; // Static ranges only: no catalog to enforce yet.
        }
        for group in self.raft.groups() {
            if group.applied.version() >= table.version {
                continue;
            }
            let leads = {
                let m = group.raft.metrics();
                let m = m.borrow();
                m.current_leader == Some(self.raft.id())
            };
            if !leads {
                continue;
            }
            let ranges = table
                .ranges()
                .iter()
                .filter(|r| r.group == group.id)
                .map(|r| (r.start.clone(), r.end.clone()))
                .collect();
            let op = Op::SetOwnership(elastickv_raft::Ownership {
                version: table.version,
                ranges,
            });
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.raft.propose(group.id, op),
            )
            .await
            {
                Ok(Ok(_)) => tracing::info!(
                    group = group.id.0,
                    version = table.version,
                    "group ownership recorded"
                ),
                Ok(Err(e)) => {
                    tracing::debug!(group = group.id.0, error = %e, "recording group ownership failed")
                }
                Err(_) => {
                    tracing::debug!(group = group.id.0, "recording group ownership timed out")
                }
            }
        }
    }

    /// Wait (bounded) until the routing table reaches catalog `version`.
    pub(crate) async fn await_routes_at_least(&self, version: u64) {
        let mut rx = self.subscribe_routes();
        let _ = tokio::time::timeout(STALE_ROUTE_WAIT, rx.wait_for(|t| t.version >= version)).await;
    }

    /// After a read point on `group`, make sure this replica still owns
    /// `key` (a stale table may have sent us to the wrong group).
    pub(crate) fn check_owned(&self, group: GroupId, key: &[u8]) -> Result<(), ReplError> {
        match self.raft.group(group) {
            Some(g) if !g.applied.owns(key) => Err(ReplError::StaleRoute {
                group: group.0,
                version: g.applied.version(),
            }),
            _ => Ok(()),
        }
    }

    /// Like [`Kv::check_owned`] for a scan piece `[start, end)`.
    pub(crate) fn check_covered(
        &self,
        group: GroupId,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<(), ReplError> {
        if start.starts_with(elastickv_types::keys::CATALOG_PREFIX) {
            return Ok(()); // The catalog always lives in group 1.
        }
        match self.raft.group(group) {
            Some(g) if !g.applied.covers(start, end) => Err(ReplError::StaleRoute {
                group: group.0,
                version: g.applied.version(),
            }),
            _ => Ok(()),
        }
    }

    /// Durably write `value` under `key` (single-key linearizable).
    pub async fn raw_put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<WriteOutcome, KvError> {
        self.check_key(&key)?;
        if value.len() > self.config.max_value_bytes {
            return Err(KvError::InvalidArgument(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                value.len(),
                self.config.max_value_bytes
            )));
        }
        let k = key.clone();
        self.write(&k, Mutation::Put { key, value }).await
    }

    /// Durably delete `key` (writes a tombstone version).
    pub async fn raw_delete(&self, key: Vec<u8>) -> Result<WriteOutcome, KvError> {
        self.check_key(&key)?;
        let k = key.clone();
        self.write(&k, Mutation::Delete { key }).await
    }

    /// Read `key`, linearizably when `ts` is `None`, else the snapshot at `ts`.
    pub async fn raw_get(
        &self,
        key: Vec<u8>,
        ts: Option<Timestamp>,
    ) -> Result<ReadOutcome, KvError> {
        self.check_key(&key)?;
        let mut attempts = 0;
        loop {
            let group = self.route(&key).group;
            self.check_read_ts(group, ts)?;
            let point = self.raft.read_point(group, ts).await.map_err(map_repl)?;
            match self.check_owned(group, &key) {
                Ok(()) => {}
                Err(ReplError::StaleRoute { version, .. }) if attempts < MAX_STALE_RETRIES => {
                    attempts += 1;
                    self.await_routes_at_least(version).await;
                    continue;
                }
                Err(e) => return Err(map_repl(e)),
            }
            let value = self
                .group_store(group)?
                .get_at(&key, point.ts)
                .map_err(map_storage)?;
            return Ok(ReadOutcome {
                value,
                read_ts: point.ts,
                index: point.index,
            });
        }
    }

    /// Commit timestamp of the newest live version of `key`.
    pub async fn raw_latest_commit_ts(&self, key: Vec<u8>) -> Result<Option<Timestamp>, KvError> {
        self.check_key(&key)?;
        let group = self.route(&key).group;
        self.raft.read_point(group, None).await.map_err(map_repl)?;
        let latest = self
            .group_store(group)?
            .latest_version(&key)
            .map_err(map_storage)?;
        Ok(latest.filter(|v| v.value.is_some()).map(|v| v.commit_ts))
    }

    /// Rows with `start <= key < end` (end `None`: unbounded), at most `limit`,
    /// at `ts` (`None`: linearizable now), in reverse key order if asked.
    /// A scan across groups reads every group at one timestamp.
    pub async fn raw_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        ts: Option<Timestamp>,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        let limit = limit.min(limits::MAX_SCAN_LIMIT);
        let mut pieces = self.router().split(&start, end.as_deref());
        if reverse {
            pieces.reverse();
        }
        let pinned = ts;
        let mut attempts = 0;
        'scan: loop {
            let mut out = Vec::new();
            let mut ts = pinned;
            for piece in &pieces {
                if out.len() >= limit {
                    break;
                }
                // The first group picks the timestamp; the others are pinned to it.
                self.check_read_ts(piece.group, ts)?;
                let point = self
                    .raft
                    .read_point(piece.group, ts)
                    .await
                    .map_err(map_repl)?;
                ts = Some(point.ts);
                match self.check_covered(piece.group, &piece.start, piece.end.as_deref()) {
                    Ok(()) => {}
                    // A stale table split the range wrongly: refresh, start over.
                    Err(ReplError::StaleRoute { version, .. }) if attempts < MAX_STALE_RETRIES => {
                        attempts += 1;
                        self.await_routes_at_least(version).await;
                        pieces = self.router().split(&start, end.as_deref());
                        if reverse {
                            pieces.reverse();
                        }
                        continue 'scan;
                    }
                    Err(e) => return Err(map_repl(e)),
                }
                let rows = self
                    .group_store(piece.group)?
                    .scan_at(
                        &piece.start,
                        piece.end.as_deref(),
                        point.ts,
                        limit - out.len(),
                        reverse,
                    )
                    .map_err(map_storage)?;
                out.extend(rows);
            }
            return Ok(out);
        }
    }

    /// A fresh timestamp from this node's HLC.
    pub fn now(&self) -> Timestamp {
        self.raft.hlc().now()
    }

    /// Largest value a write may carry, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.config.max_value_bytes
    }

    /// This node's view of every group it hosts.
    pub async fn status(&self) -> Result<NodeStatus, KvError> {
        let mut groups = Vec::new();
        for group in self.raft.groups() {
            let m = group.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
            let members = membership
                .nodes()
                .map(|(id, node)| MemberStatus {
                    raft_id: node.name.clone(),
                    address: node.addr.clone(),
                    voter: voters.contains(id),
                })
                .collect();
            let leader = m
                .current_leader
                .and_then(|l| membership.get_node(&l).map(|n| n.name.clone()));
            let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
            groups.push(GroupStatus {
                group: group.id,
                leader,
                term: m.current_term,
                state: format!("{:?}", m.state),
                last_log_index: m.last_log_index.unwrap_or(0),
                // openraft 0.9 does not publish the commit index; the applied
                // index is a lower bound that every node reports the same way.
                commit_index: applied,
                applied_index: applied,
                snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
                members,
            });
        }
        Ok(NodeStatus {
            raft_id: self.raft.info().name.clone(),
            address: self.raft.info().addr.clone(),
            groups,
            hlc_now: self.now(),
        })
    }

    fn target_groups(&self, group: Option<GroupId>) -> Vec<GroupId> {
        match group {
            Some(g) => vec![g],
            None => self.raft.groups().iter().map(|g| g.id).collect(),
        }
    }

    /// Add a node as a learner to `group` (`None`: every group). Returns the
    /// groups changed.
    pub async fn add_learner(
        &self,
        raft_id: String,
        address: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        if raft_id.is_empty() || address.is_empty() {
            return Err(KvError::InvalidArgument(
                "raft id and address are required".into(),
            ));
        }
        let groups = self.target_groups(group);
        for g in &groups {
            let node = NodeInfo {
                name: raft_id.clone(),
                addr: address.clone(),
            };
            self.raft.add_learner(*g, node).await.map_err(map_repl)?;
        }
        Ok(groups)
    }

    /// Promote a learner to voter.
    pub async fn promote_voter(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        let groups = self.target_groups(group);
        for g in &groups {
            self.raft
                .promote(*g, raft_id.clone())
                .await
                .map_err(map_repl)?;
        }
        Ok(groups)
    }

    /// Remove a node from the group's membership.
    pub async fn remove_node(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        let groups = self.target_groups(group);
        for g in &groups {
            self.raft
                .remove(*g, raft_id.clone())
                .await
                .map_err(map_repl)?;
        }
        Ok(groups)
    }

    /// Ask `raft_id` to take over leadership of the group(s).
    pub async fn transfer_leader(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        let groups = self.target_groups(group);
        for g in &groups {
            self.raft
                .transfer_leader(*g, &raft_id)
                .await
                .map_err(map_repl)?;
        }
        Ok(groups)
    }

    /// Skew this node's hybrid logical clock by `offset_ms` (the chaos
    /// harness's clock nemesis); returns the offset now in effect.
    pub fn set_clock_offset(&self, offset_ms: i64) -> i64 {
        let hlc = self.raft.hlc();
        hlc.set_offset_ms(offset_ms);
        hlc.offset_ms()
    }
}
