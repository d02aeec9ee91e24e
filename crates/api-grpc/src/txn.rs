//! Transaction services: the original's `TransactionalKV` (single-operation
//! transactions plus client-driven PreWrite/Commit/Rollback, all real) and
//! Elastickv's interactive `elastickv.txn.Txn` (Begin / Read / Scan / Commit
//! with client-buffered writes), both over the data plane's transactions.

use crate::errors::{key_error, status_from_kv};
use crate::raw::{check_key, scan_range};
use elastickv_kv::{Kv, KvError, TxnWrite};
use elastickv_proto::public::transactional_kv_server::{TransactionalKv, TransactionalKvServer};
use elastickv_proto::public::{
    CommitRequest, CommitResponse, DeleteRequest, DeleteResponse, GetRequest, GetResponse,
    Kv as KvPair, PreCommitResponse, PreWriteRequest, PutRequest, PutResponse, RollbackRequest,
    RollbackResponse, ScanRequest, ScanResponse,
};
use elastickv_proto::txn as pb;
use elastickv_proto::txn::txn_server::{Txn as TxnApi, TxnServer};
use elastickv_types::limits::{MAX_GRPC_MESSAGE_BYTES, MAX_SCAN_LIMIT};
use tonic::{Request, Response, Status};

/// Largest number of keys or mutations in one transactional request.
const MAX_TXN_KEYS: usize = 10_000;

#[allow(clippy::result_large_err)] // validation helpers, off the hot path
fn too_many(n: usize) -> Result<(), Status> {
    if n > MAX_TXN_KEYS {
        return Err(Status::invalid_argument(format!(
            "{n} keys in one request; the limit is {MAX_TXN_KEYS}"
        )));
    }
    Ok(())
}

#[allow(clippy::result_large_err)] // validation helpers, off the hot path
fn check_value(kv: &Kv, value: &[u8]) -> Result<(), Status> {
    if value.len() > kv.max_value_bytes() {
        return Err(Status::invalid_argument(format!(
            "value is {} bytes, larger than the {}-byte limit",
            value.len(),
            kv.max_value_bytes()
        )));
    }
    Ok(())
}

/// The original `TransactionalKV` service.
#[derive(Clone)]
pub struct TransactionalKvService {
    kv: Kv,
}

impl TransactionalKvService {
    pub fn server(kv: Kv) -> TransactionalKvServer<Self> {
        TransactionalKvServer::new(TransactionalKvService { kv })
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }

    async fn single_write(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<u64, Status> {
        let mut txn = self.kv.begin().await.map_err(status_from_kv)?;
        match value {
            Some(v) => txn.put(key, v),
            None => txn.delete(key),
        }
        txn.commit().await.map_err(status_from_kv)
    }
}

#[tonic::async_trait]
impl TransactionalKv for TransactionalKvService {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        check_key("key", &r.key)?;
        check_value(&self.kv, &r.value)?;
        let commit_ts = self.single_write(r.key, Some(r.value)).await?;
        // The original reports a Raft index here; a transaction may span
        // groups, so its commit timestamp is reported instead.
        Ok(Response::new(PutResponse {
            commit_index: commit_ts,
            success: true,
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let r = request.into_inner();
        check_key("key", &r.key)?;
        let mut txn = self.kv.begin().await.map_err(status_from_kv)?;
        let value = txn.get(&r.key).await.map_err(status_from_kv)?;
        Ok(Response::new(GetResponse {
            read_at_index: txn.start_ts(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let r = request.into_inner();
        check_key("key", &r.key)?;
        let commit_ts = self.single_write(r.key, None).await?;
        Ok(Response::new(DeleteResponse {
            commit_index: commit_ts,
            success: true,
        }))
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let r = request.into_inner();
        let range = scan_range(r.start_key, r.end_key)?;
        let limit = match r.limit {
            0 => MAX_SCAN_LIMIT,
            n => usize::try_from(n).unwrap_or(usize::MAX).min(MAX_SCAN_LIMIT),
        };
        let mut txn = self.kv.begin().await.map_err(status_from_kv)?;
        let rows = txn
            .scan(&range.start, range.end.as_deref(), limit, false)
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(ScanResponse {
            kv: rows
                .into_iter()
                .map(|(key, value)| KvPair {
                    error: None,
                    key,
                    value,
                })
                .collect(),
        }))
    }

    async fn pre_write(
        &self,
        request: Request<PreWriteRequest>,
    ) -> Result<Response<PreCommitResponse>, Status> {
        let r = request.into_inner();
        if r.start_ts == 0 {
            return Err(Status::invalid_argument("start_ts is required"));
        }
        too_many(r.mutations.len())?;
        let mut mutations = Vec::with_capacity(r.mutations.len());
        for m in r.mutations {
            check_key("mutations.key", &m.key)?;
            check_value(&self.kv, &m.value)?;
            // The original's Kv carries no operation: a mutation writes its
            // value (an empty value is a value, not a delete).
            mutations.push((m.key, TxnWrite::Put(m.value)));
        }
        let errors = self
            .kv
            .prewrite_client(r.start_ts, mutations, r.lock_ttl)
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(PreCommitResponse {
            errors: errors.iter().map(|e| key_error(&e.error)).collect(),
        }))
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        let r = request.into_inner();
        too_many(r.keys.len())?;
        for k in &r.keys {
            check_key("keys", k)?;
        }
        match self.kv.commit_client(r.start_ts, r.keys).await {
            Ok(commit_ts) => Ok(Response::new(CommitResponse {
                commit_index: commit_ts,
                success: true,
                errors: Vec::new(),
            })),
            Err(e @ KvError::Conflict(_)) | Err(e @ KvError::InvalidArgument(_)) => {
                Ok(Response::new(CommitResponse {
                    commit_index: 0,
                    success: false,
                    errors: vec![key_error(&e)],
                }))
            }
            Err(e) => Err(status_from_kv(e)),
        }
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        let r = request.into_inner();
        if r.start_ts == 0 {
            return Err(Status::invalid_argument("start_ts is required"));
        }
        self.kv
            .rollback_client(r.start_ts)
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(RollbackResponse { success: true }))
    }
}

/// The interactive `elastickv.txn.Txn` service.
#[derive(Clone)]
pub struct TxnService {
    kv: Kv,
}

impl TxnService {
    pub fn server(kv: Kv) -> TxnServer<Self> {
        TxnServer::new(TxnService { kv })
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl TxnApi for TxnService {
    async fn begin(
        &self,
        _request: Request<pb::BeginRequest>,
    ) -> Result<Response<pb::BeginResponse>, Status> {
        let txn = self.kv.begin().await.map_err(status_from_kv)?;
        Ok(Response::new(pb::BeginResponse {
            start_ts: txn.start_ts(),
        }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let r = request.into_inner();
        too_many(r.keys.len())?;
        let mut txn = self.kv.begin_at(r.start_ts).await.map_err(status_from_kv)?;
        let mut values = Vec::with_capacity(r.keys.len());
        for key in r.keys {
            check_key("keys", &key)?;
            let v = txn.get(&key).await.map_err(status_from_kv)?;
            values.push(pb::Value {
                key,
                found: v.is_some(),
                value: v.unwrap_or_default(),
            });
        }
        Ok(Response::new(pb::ReadResponse { values }))
    }

    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let r = request.into_inner();
        let range = scan_range(r.start_key, r.end_key)?;
        let limit = if r.limit == 0 {
            MAX_SCAN_LIMIT
        } else {
            (r.limit as usize).min(MAX_SCAN_LIMIT)
        };
        let mut txn = self.kv.begin_at(r.start_ts).await.map_err(status_from_kv)?;
        let rows = txn
            .scan(&range.start, range.end.as_deref(), limit, r.reverse)
            .await
            .map_err(status_from_kv)?;
        Ok(Response::new(pb::ScanResponse {
            rows: rows
                .into_iter()
                .map(|(key, value)| pb::Value {
                    key,
                    found: true,
                    value,
                })
                .collect(),
        }))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let r = request.into_inner();
        if r.start_ts == 0 {
            return Err(Status::invalid_argument(
                "start_ts is required (call Begin)",
            ));
        }
        too_many(r.mutations.len())?;
        let mut txn = self.kv.begin_at(r.start_ts).await.map_err(status_from_kv)?;
        for m in r.mutations {
            check_key("mutations.key", &m.key)?;
            match pb::MutationOp::try_from(m.op) {
                Ok(pb::MutationOp::Put) => {
                    check_value(&self.kv, &m.value)?;
                    txn.put(m.key, m.value);
                }
                Ok(pb::MutationOp::Delete) => txn.delete(m.key),
                Ok(pb::MutationOp::AssertUnchanged) => {
                    let since = if m.since == 0 { r.start_ts } else { m.since };
                    txn.assert_unchanged(m.key, since);
                }
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "unknown mutation op {}",
                        m.op
                    )))
                }
            }
        }
        match txn.commit().await {
            Ok(commit_ts) => Ok(Response::new(pb::CommitResponse {
                commit_ts,
                conflict: false,
                message: String::new(),
            })),
            Err(KvError::Conflict(m)) => Ok(Response::new(pb::CommitResponse {
                commit_ts: 0,
                conflict: true,
                message: m,
            })),
            Err(e) => Err(status_from_kv(e)),
        }
    }
}
