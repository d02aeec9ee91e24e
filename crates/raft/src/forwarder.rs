//! Follower-side batching of requests forwarded to a group's leader.
//!
//! Many clients writing through a follower would otherwise cost one RPC per
//! write. The forwarder gathers what is queued (up to a bound), sends it as
//! one `Forwarded::Batch`, and keeps a few batches in flight, so forwarding
//! costs roughly one RPC per leader entry instead of one per request. A read
//! joins only a batch sent after the read arrived, so every read index is
//! still obtained after its read began.

use crate::command::{OpResult, Request};
use crate::error::ReplError;
use crate::network::{decode, encode, FrameKind, Transport};
use crate::node::{ForwardReply, Forwarded};
use crate::pipe::PipeError;
use crate::proposer::{ReadAt, ReadPoint};
use crate::types::NodeInfo;
use elastickv_types::GroupId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

const MAX_BATCH: usize = 1024;
const MAX_IN_FLIGHT: usize = 4;
pub const QUEUE_CAPACITY: usize = 8192;

pub(crate) enum Pending {
    Write(Request, oneshot::Sender<Result<(OpResult, u64), ReplError>>),
    Read(ReadAt, oneshot::Sender<Result<ReadPoint, ReplError>>),
}

pub(crate) struct Job {
    pub target: NodeInfo,
    pub pending: Pending,
}

pub(crate) fn spawn(
    group: GroupId,
    transport: Transport,
    rpc_timeout: Duration,
    span: tracing::Span,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(tracing::Instrument::instrument(
        run(group, transport, rpc_timeout, rx),
        span,
    ));
    tx
}

fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

async fn run(
    group: GroupId,
    transport: Transport,
    rpc_timeout: Duration,
    mut rx: mpsc::Receiver<Job>,
) {
    let window = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        let Ok(permit) = window.clone().acquire_owned().await else {
            return;
        };
        drain(&mut rx, &mut jobs);
        let mut by_target: HashMap<String, (NodeInfo, Vec<Pending>)> = HashMap::new();
        for job in jobs.drain(..) {
            by_target
                .entry(job.target.addr.clone())
                .or_insert_with(|| (job.target.clone(), Vec::new()))
                .1
                .push(job.pending);
        }
        let permit = Arc::new(permit);
        for (_, (target, pendings)) in by_target {
            let transport = transport.clone();
            let permit = permit.clone();
            tokio::spawn(async move {
                send(group, &transport, &target, pendings, rpc_timeout).await;
                drop(permit);
            });
        }
    }
}

async fn send(
    group: GroupId,
    transport: &Transport,
    target: &NodeInfo,
    pendings: Vec<Pending>,
    rpc_timeout: Duration,
) {
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut write_tx = Vec::new();
    let mut read_tx = Vec::new();
    for p in pendings {
        match p {
            Pending::Write(req, tx) => {
                writes.push(req);
                write_tx.push(tx);
            }
            Pending::Read(at, tx) => {
                reads.push(at);
                read_tx.push(tx);
            }
        }
    }
    // Reads and writes travel separately: the leader answers a batch when
    // all of it is done, and a read index is ready long before a commit.
    let send_writes = async {
        if writes.is_empty() {
            return;
        }
        let msg = Forwarded::Batch {
            writes,
            reads: Vec::new(),
        };
        match call(group, transport, target, msg, rpc_timeout).await {
            Ok(ForwardReply::Batch { writes: w, .. }) if w.len() == write_tx.len() => {
                for (tx, res) in write_tx.into_iter().zip(w) {
                    let _ = tx.send(res);
                }
            }
            Ok(_) => fail_all(
                write_tx,
                ReplError::Internal("unexpected forward reply".into()),
            ),
            Err(e) => fail_all(write_tx, e),
        }
    };
    let send_reads = async {
        if reads.is_empty() {
            return;
        }
        let msg = Forwarded::Batch {
            writes: Vec::new(),
            reads,
        };
        match call(group, transport, target, msg, rpc_timeout).await {
            Ok(ForwardReply::Batch {
                reads: Ok(points), ..
            }) if points.len() == read_tx.len() => {
                for (tx, p) in read_tx.into_iter().zip(points) {
                    let _ = tx.send(Ok(p));
                }
            }
            Ok(ForwardReply::Batch { reads: Err(e), .. }) => fail_all(read_tx, e),
            Ok(_) => fail_all(
                read_tx,
                ReplError::Internal("unexpected forward reply".into()),
            ),
            Err(e) => fail_all(read_tx, e),
        }
    };
    futures::future::join(send_writes, send_reads).await;
}

fn fail_all<T>(txs: Vec<oneshot::Sender<Result<T, ReplError>>>, e: ReplError) {
    for tx in txs {
        let _ = tx.send(Err(e.clone()));
    }
}

/// One forward RPC. Transport failures are classified: a refused connection
/// is `Unavailable` (nothing was sent), anything after sending is `Timeout`
/// (the leader may have applied writes; retries are de-duplicated).
pub(crate) async fn call(
    group: GroupId,
    transport: &Transport,
    target: &NodeInfo,
    msg: Forwarded,
    rpc_timeout: Duration,
) -> Result<ForwardReply, ReplError> {
    let req = encode(group, &msg).map_err(|e| ReplError::Internal(e.to_string()))?;
    let reply = match transport
        .call(target, FrameKind::Forward, group, req.payload, rpc_timeout)
        .await
    {
        Ok(r) => r,
        Err(PipeError::NotSent(e)) => return Err(ReplError::Unavailable(format!("{target}: {e}"))),
        Err(PipeError::Status(s)) if s.code() == tonic::Code::Unavailable => {
            return Err(ReplError::Unavailable(format!("{target}: {}", s.message())))
        }
        Err(PipeError::Timeout(_)) => {
            return Err(ReplError::Timeout(format!("forward to {target}")))
        }
        Err(e) => return Err(ReplError::Timeout(format!("{target}: {e}"))),
    };
    decode::<Result<ForwardReply, ReplError>>(&reply)
        .map_err(|e| ReplError::Internal(e.to_string()))?
}
