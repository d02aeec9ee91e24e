//! `elastickv.admin.Admin`: node status and Raft membership changes, served
//! over the data plane. `group_id` 0 in a request means every group this node
//! hosts; Raft ids and addresses are validated here so an operator's typo
//! fails fast with a clear message instead of inside a membership change.

use elastickv_kv::{Kv, NodeStatus};
use elastickv_proto::admin::{
    admin_server::Admin, AddLearnerRequest, GroupStatus, Member, MembershipResponse,
    PromoteVoterRequest, RemoveNodeRequest, SetClockOffsetRequest, SetClockOffsetResponse,
    StatusRequest, StatusResponse, TransferLeaderRequest,
};
use elastickv_types::GroupId;
use tonic::{Request, Response, Status};

use crate::backend::DataPlane;
use crate::errors::{status_from_kv, RequestError};

/// The admin service over a data plane (the node's [`Kv`] in production).
#[derive(Clone)]
pub struct AdminService<K = Kv> {
    kv: K,
}

impl<K: DataPlane> AdminService<K> {
    /// Serve `Admin` over `kv`.
    pub fn new(kv: K) -> Self {
        Self { kv }
    }
}

/// 0 on the wire is "every group".
fn group(group_id: u64) -> Option<GroupId> {
    (group_id != 0).then_some(GroupId(group_id))
}

fn require(what: &'static str, value: &str) -> Result<(), RequestError> {
    if value.trim().is_empty() {
        return Err(RequestError::MissingField { what });
    }
    Ok(())
}

fn membership_response(action: &str, raft_id: &str, groups: Vec<GroupId>) -> MembershipResponse {
    let list = groups
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    MembershipResponse {
        message: format!("{action} {raft_id} in group(s) [{list}]"),
        groups: groups.into_iter().map(|g| g.0).collect(),
    }
}

/// Wire form of the node's status.
pub(crate) fn status_response(s: NodeStatus) -> StatusResponse {
    StatusResponse {
        raft_id: s.raft_id,
        address: s.address,
        hlc_now: s.hlc_now,
        groups: s
            .groups
            .into_iter()
            .map(|g| GroupStatus {
                group_id: g.group.0,
                leader: g.leader.unwrap_or_default(),
                term: g.term,
                state: g.state,
                last_log_index: g.last_log_index,
                commit_index: g.commit_index,
                applied_index: g.applied_index,
                snapshot_index: g.snapshot_index,
                members: g
                    .members
                    .into_iter()
                    .map(|m| Member {
                        raft_id: m.raft_id,
                        address: m.address,
                        voter: m.voter,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl<K: DataPlane> Admin for AdminService<K> {
    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let s = self.kv.status().await.map_err(status_from_kv)?;
        Ok(Response::new(status_response(s)))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let AddLearnerRequest {
            raft_id,
            address,
            group_id,
        } = request.into_inner();
        require("raft_id", &raft_id)?;
        require("address", &address)?;
        let groups = self
            .kv
            .add_learner(raft_id.clone(), address, group(group_id))
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(membership_response(
            "added learner",
            &raft_id,
            groups,
        )))
    }

    async fn promote_voter(
        &self,
        request: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let PromoteVoterRequest { raft_id, group_id } = request.into_inner();
        require("raft_id", &raft_id)?;
        let groups = self
            .kv
            .promote_voter(raft_id.clone(), group(group_id))
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(membership_response(
            "promoted", &raft_id, groups,
        )))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let RemoveNodeRequest { raft_id, group_id } = request.into_inner();
        require("raft_id", &raft_id)?;
        let groups = self
            .kv
            .remove_node(raft_id.clone(), group(group_id))
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(membership_response(
            "removed", &raft_id, groups,
        )))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let TransferLeaderRequest { raft_id, group_id } = request.into_inner();
        require("raft_id", &raft_id)?;
        let groups = self
            .kv
            .transfer_leader(raft_id.clone(), group(group_id))
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(membership_response(
            "leadership transfer requested to",
            &raft_id,
            groups,
        )))
    }

    async fn set_clock_offset(
        &self,
        request: Request<SetClockOffsetRequest>,
    ) -> Result<Response<SetClockOffsetResponse>, Status> {
        let SetClockOffsetRequest { offset_ms } = request.into_inner();
        let offset_ms = self.kv.set_clock_offset(offset_ms);
        Ok(Response::new(SetClockOffsetResponse { offset_ms }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use elastickv_kv::KvError;
    use tonic::Code;

    fn svc() -> (AdminService<FakeKv>, FakeKv) {
        let fake = FakeKv::new();
        (AdminService::new(fake.clone()), fake)
    }

    #[tokio::test]
    async fn status_maps_every_field() {
        let (s, _) = svc();
        let r = s
            .status(Request::new(StatusRequest {}))
            .await
            .expect("status")
            .into_inner();
        assert_eq!(r.raft_id, "n1");
        assert_eq!(r.hlc_now, 7 << 16);
        let g = &r.groups[0];
        assert_eq!(
            (g.group_id, g.leader.as_str(), g.term, g.state.as_str()),
            (1, "n1", 3, "Leader")
        );
        assert_eq!(
            (
                g.last_log_index,
                g.commit_index,
                g.applied_index,
                g.snapshot_index
            ),
            (12, 11, 10, 5)
        );
        assert_eq!(g.members.len(), 2);
        assert!(g.members[0].voter && !g.members[1].voter);
    }

    #[tokio::test]
    async fn group_zero_means_every_group() {
        let (s, fake) = svc();
        let r = s
            .promote_voter(Request::new(PromoteVoterRequest {
                raft_id: "n2".into(),
                group_id: 0,
            }))
            .await
            .expect("promote")
            .into_inner();
        assert_eq!(r.groups, vec![1, 2]);
        assert_eq!(r.message, "promoted n2 in group(s) [1, 2]");
        s.remove_node(Request::new(RemoveNodeRequest {
            raft_id: "n3".into(),
            group_id: 4,
        }))
        .await
        .expect("remove");
        assert_eq!(
            fake.membership_calls(),
            vec![
                "promote_voter n2 None".to_string(),
                "remove_node n3 Some(GroupId(4))".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn missing_ids_are_rejected_before_the_data_plane() {
        let (s, fake) = svc();
        let err = s
            .add_learner(Request::new(AddLearnerRequest {
                raft_id: "n4".into(),
                address: " ".into(),
                group_id: 0,
            }))
            .await
            .expect_err("no address");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "address must not be empty");
        let err = s
            .transfer_leader(Request::new(TransferLeaderRequest {
                raft_id: String::new(),
                group_id: 1,
            }))
            .await
            .expect_err("no raft id");
        assert_eq!(err.message(), "raft_id must not be empty");
        assert_eq!(fake.data_calls(), 0);
    }

    #[tokio::test]
    async fn membership_errors_keep_their_code() {
        let (s, fake) = svc();
        fake.fail_next(KvError::Unavailable("not the leader of group 1".into()));
        let err = s
            .add_learner(Request::new(AddLearnerRequest {
                raft_id: "n4".into(),
                address: "127.0.0.1:50054".into(),
                group_id: 1,
            }))
            .await
            .expect_err("unavailable");
        assert_eq!(err.code(), Code::Unavailable);
    }

    #[tokio::test]
    async fn set_clock_offset_reaches_the_data_plane() {
        let (s, fake) = svc();
        let r = s
            .set_clock_offset(Request::new(SetClockOffsetRequest { offset_ms: -1500 }))
            .await
            .expect("set clock offset")
            .into_inner();
        assert_eq!(r.offset_ms, -1500);
        assert_eq!(
            fake.membership_calls(),
            vec!["set_clock_offset -1500".to_string()]
        );
    }
}
