//! In-memory stand-in for the data plane, for this crate's tests only. It
//! keeps the newest value per key (no MVCC history: snapshot reads see the
//! latest value) and records what the services asked of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use elastickv_kv::catalog::plan_split;
use elastickv_kv::{
    Catalog, GroupStatus, KvError, MemberStatus, NodeStatus, Range, ReadOutcome, Router,
    SplitError, SplitOutcome, WriteOutcome,
};
use elastickv_types::{GroupId, Timestamp};

use crate::backend::{DataPlane, Rows};
use crate::distribution::RouteCatalog;

#[derive(Default)]
struct State {
    rows: BTreeMap<Vec<u8>, (Vec<u8>, Timestamp)>,
    index: u64,
    data_calls: usize,
    last_read_ts: Option<Option<Timestamp>>,
    fail_next: Option<KvError>,
    membership_calls: Vec<String>,
    /// Route catalog; `None` until first used, then `[,m)=1 [m,)=2`.
    catalog: Option<Catalog>,
}

#[derive(Clone)]
pub(crate) struct FakeKv {
    state: Arc<Mutex<State>>,
    pub max_value: usize,
}

impl FakeKv {
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            max_value: 1024,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake state poisoned"))
    }

    /// Count a data-plane call and return the injected failure, if any.
    fn enter(&self) -> Result<(), KvError> {
        self.with(|s| {
            s.data_calls += 1;
            s.fail_next.take().map_or(Ok(()), Err)
        })
    }

    pub fn data_calls(&self) -> usize {
        self.with(|s| s.data_calls)
    }

    pub fn last_read_ts(&self) -> Option<Option<Timestamp>> {
        self.with(|s| s.last_read_ts)
    }

    pub fn fail_next(&self, err: KvError) {
        self.with(|s| s.fail_next = Some(err));
    }

    pub fn membership_calls(&self) -> Vec<String> {
        self.with(|s| s.membership_calls.clone())
    }

    /// Write bypassing the service (e.g. an internal key the data plane owns).
    pub fn insert_raw(&self, key: &[u8], value: &[u8]) {
        self.with(|s| s.rows.insert(key.to_vec(), (value.to_vec(), 1)));
    }

    fn write(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<WriteOutcome, KvError> {
        self.enter()?;
        Ok(self.with(|s| {
            s.index += 1;
            let commit_ts = 100 * s.index;
            match value {
                Some(v) => s.rows.insert(key, (v, commit_ts)),
                None => s.rows.remove(&key),
            };
            WriteOutcome {
                commit_ts,
                index: s.index,
            }
        }))
    }

    fn membership(&self, what: String, group: Option<GroupId>) -> Result<Vec<GroupId>, KvError> {
        self.enter()?;
        self.with(|s| s.membership_calls.push(what));
        Ok(match group {
            Some(g) => vec![g],
            None => vec![GroupId(1), GroupId(2)],
        })
    }
}

impl DataPlane for FakeKv {
    async fn raw_put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<WriteOutcome, KvError> {
        self.write(key, Some(value))
    }

    async fn raw_delete(&self, key: Vec<u8>) -> Result<WriteOutcome, KvError> {
        self.write(key, None)
    }

    async fn raw_get(&self, key: Vec<u8>, ts: Option<Timestamp>) -> Result<ReadOutcome, KvError> {
        self.enter()?;
        Ok(self.with(|s| {
            s.last_read_ts = Some(ts);
            ReadOutcome {
                value: s.rows.get(&key).map(|(v, _)| v.clone()),
                read_ts: ts.unwrap_or(1_000),
                index: s.index,
            }
        }))
    }

    async fn raw_latest_commit_ts(&self, key: Vec<u8>) -> Result<Option<Timestamp>, KvError> {
        self.enter()?;
        Ok(self.with(|s| s.rows.get(&key).map(|(_, ts)| *ts)))
    }

    async fn raw_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        ts: Option<Timestamp>,
        reverse: bool,
    ) -> Result<Rows, KvError> {
        self.enter()?;
        Ok(self.with(|s| {
            s.last_read_ts = Some(ts);
            let in_range = |k: &Vec<u8>| *k >= start && end.as_ref().is_none_or(|e| k < e);
            let rows = s
                .rows
                .iter()
                .filter(|(k, _)| in_range(k))
                .map(|(k, (v, _))| (k.clone(), v.clone()));
            if reverse {
                rows.rev().take(limit).collect()
            } else {
                rows.take(limit).collect()
            }
        }))
    }

    fn max_value_bytes(&self) -> usize {
        self.max_value
    }

    async fn status(&self) -> Result<NodeStatus, KvError> {
        self.enter()?;
        Ok(NodeStatus {
            raft_id: "n1".into(),
            address: "127.0.0.1:50051".into(),
            hlc_now: 7 << 16,
            groups: vec![GroupStatus {
                group: GroupId(1),
                leader: Some("n1".into()),
                term: 3,
                state: "Leader".into(),
                last_log_index: 12,
                commit_index: 11,
                applied_index: 10,
                snapshot_index: 5,
                members: vec![
                    MemberStatus {
                        raft_id: "n1".into(),
                        address: "127.0.0.1:50051".into(),
                        voter: true,
                    },
                    MemberStatus {
                        raft_id: "n2".into(),
                        address: "127.0.0.1:50052".into(),
                        voter: false,
                    },
                ],
            }],
        })
    }

    async fn add_learner(
        &self,
        raft_id: String,
        address: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        self.membership(format!("add_learner {raft_id} {address} {group:?}"), group)
    }

    async fn promote_voter(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        self.membership(format!("promote_voter {raft_id} {group:?}"), group)
    }

    async fn remove_node(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        self.membership(format!("remove_node {raft_id} {group:?}"), group)
    }

    async fn transfer_leader(
        &self,
        raft_id: String,
        group: Option<GroupId>,
    ) -> Result<Vec<GroupId>, KvError> {
        self.membership(format!("transfer_leader {raft_id} {group:?}"), group)
    }
}

/// The catalog a fake starts with: `[, m)` in group 1, `[m, )` in group 2.
fn initial_catalog() -> Catalog {
    let router = Router::new(vec![
        Range {
            start: vec![],
            end: Some(b"m".to_vec()),
            group: GroupId(1),
        },
        Range {
            start: b"m".to_vec(),
            end: None,
            group: GroupId(2),
        },
    ])
    .expect("valid table");
    Catalog::initial(&router)
}

impl FakeKv {
    fn with_catalog<R>(&self, f: impl FnOnce(&mut Catalog) -> R) -> R {
        self.with(|s| f(s.catalog.get_or_insert_with(initial_catalog)))
    }
}

impl RouteCatalog for FakeKv {
    fn route_of(&self, key: &[u8]) -> Range {
        self.with_catalog(|c| c.router().expect("valid catalog").route(key).clone())
    }

    async fn timestamp(&self) -> Result<Timestamp, KvError> {
        self.enter()?;
        Ok(7 << 16)
    }

    async fn list_routes(&self) -> Result<Option<Catalog>, KvError> {
        self.enter()?;
        Ok(Some(self.with_catalog(|c| c.clone())))
    }

    async fn split_range(
        &self,
        expected_version: u64,
        route_id: u64,
        split_key: Vec<u8>,
    ) -> Result<SplitOutcome, SplitError> {
        self.enter()?;
        self.with_catalog(|c| {
            let plan = plan_split(c, expected_version, route_id, &split_key)?;
            *c = plan.after;
            Ok(SplitOutcome {
                version: c.version,
                left: plan.left,
                right: plan.right,
            })
        })
    }
}
