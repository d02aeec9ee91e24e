//! The leader-side proposer of one group: batches concurrent requests into
//! one log entry, gives them timestamps, and serves read indexes.
//!
//! Timestamps are assigned here, by a single task, in the order requests are
//! handed to openraft — so log order and timestamp order agree. A read index
//! is answered only after the Raft core took in every earlier proposal, and
//! covers the last *appended* index, not just the committed one: a reader at
//! timestamp T waits for every write with a timestamp below T that the
//! leader already accepted, and every write accepted later gets a timestamp
//! above T (the leader observes T first). That is what keeps a snapshot at T
//! stable once read. A read that asks for no particular snapshot
//! (`ReadAt::Latest`) is given the last applied commit timestamp while
//! writes are in flight: every acknowledged write is at or below it, every
//! write in flight above it, so it need not wait for them.

use crate::command::{Op, OpResult, Proposal, Request};
use crate::error::ReplError;
use crate::lease::ReadLease;
use crate::types::{NodeInfo, Raft};
use elastickv_types::hlc;
use elastickv_types::{Hlc, Timestamp};
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests batched into one entry at most.
const MAX_BATCH: usize = 512;
/// Entries proposed but not yet applied, at most. While the window is full,
/// requests queue up and the next entry carries all of them: this is what
/// turns many concurrent writes into few large entries (and few fsyncs).
/// openraft 0.9 sends one AppendEntries at a time per follower and packs
/// every entry appended meanwhile into the next one, so entries still
/// batch into few replication rounds with a wider window; a window of 2
/// held writes back until the round after next (RawPut bench, 64 clients,
/// 2026-12-05: 2 → 8 took ~16.5k to 17-19.5k writes/s, still ~22 writes
/// per entry).
const MAX_IN_FLIGHT: usize = 8;
/// Writes held while the window is full, at most; beyond that the queue
/// below fills up and pushes back on callers.
const MAX_PENDING_WRITES: usize = 4 * MAX_BATCH;
/// Proposer queue bound: back-pressure instead of unbounded memory.
pub const QUEUE_CAPACITY: usize = 8192;

/// Where a linearizable read must be served: after the local state machine
/// applied `index`, at timestamp `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadPoint {
    pub index: u64,
    pub ts: Timestamp,
}

/// Which snapshot a read asks the leader for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadAt {
    /// This timestamp: the leader observes it, and the read waits for every
    /// write the leader accepted before (they may be below it).
    Ts(Timestamp),
    /// A fresh timestamp above every one the leader assigned or handed out,
    /// distinct from all of them (the transaction timestamp oracle).
    Fresh,
    /// Any snapshot that holds every write acknowledged before the read
    /// began. While writes are in flight that is the newest applied one
    /// (the last applied commit timestamp), so the read need not wait for
    /// them; otherwise a fresh timestamp.
    Latest,
}

/// A committed request's result and its log index.
pub type WriteReply = Result<(OpResult, u64), ReplError>;

pub enum Item {
    Write {
        req: Request,
        reply: oneshot::Sender<WriteReply>,
    },
    Read {
        at: ReadAt,
        reply: oneshot::Sender<Result<ReadPoint, ReplError>>,
    },
}

/// Counters of one node's proposers, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct ProposerStats {
    /// Log entries proposed.
    pub proposals: AtomicU64,
    /// Client requests carried by those entries.
    pub requests: AtomicU64,
}

pub struct ProposerCtx {
    pub stats: Arc<ProposerStats>,
    /// The group's own committed ceiling, as applied on this node.
    pub shared: crate::state_machine::SharedApplied,
    pub group: u64,
    pub self_id: u64,
    pub raft: Raft,
    pub hlc: Arc<Hlc>,
    pub last_appended: Arc<AtomicU64>,
    /// While it holds, read indexes are answered without a quorum round.
    pub lease: Arc<ReadLease>,
}

pub fn spawn(span: tracing::Span, ctx: ProposerCtx) -> mpsc::Sender<Item> {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(tracing::Instrument::instrument(run(ctx, rx), span));
    tx
}

fn not_leader(ctx: &ProposerCtx, leader: Option<u64>) -> ReplError {
    ReplError::NotLeader {
        group: ctx.group,
        leader,
    }
}

fn map_raft_err<E: std::fmt::Display>(
    ctx: &ProposerCtx,
    e: RaftError<u64, E>,
    leader: impl Fn(&E) -> Option<Option<u64>>,
) -> ReplError {
    match e {
        RaftError::APIError(api) => match leader(&api) {
            Some(l) => not_leader(ctx, l),
            None => ReplError::Unavailable(api.to_string()),
        },
        RaftError::Fatal(f) => ReplError::Unavailable(format!("raft stopped: {f}")),
    }
}

fn write_err_leader(e: &ClientWriteError<u64, NodeInfo>) -> Option<Option<u64>> {
    match e {
        ClientWriteError::ForwardToLeader(f) => Some(f.leader_id),
        ClientWriteError::ChangeMembershipError(_) => None,
    }
}

/// Make sure this node leads the group and has applied everything earlier
/// leaders committed, then lift the HLC above the committed ceiling. Done
/// once per term.
async fn ensure_ready(ctx: &ProposerCtx, ready_term: &mut u64) -> Result<(), ReplError> {
    let (leader, term) = {
        let m = ctx.raft.metrics();
        let m = m.borrow();
        (m.current_leader, m.current_term)
    };
    if leader != Some(ctx.self_id) {
        return Err(not_leader(ctx, leader));
    }
    if *ready_term == term {
        return Ok(());
    }
    ctx.raft.ensure_linearizable().await.map_err(|e| {
        map_raft_err(ctx, e, |api| match api {
            openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Some(f.leader_id),
            openraft::error::CheckIsLeaderError::QuorumNotEnough(_) => None,
        })
    })?;
    pass_predecessor_ceiling(ctx).await;
    *ready_term = term;
    tracing::info!(group = ctx.group, term, "leader ready");
    Ok(())
}

fn drain(rx: &mut mpsc::Receiver<Item>, items: &mut Vec<Item>) {
    while items.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => items.push(item),
            Err(_) => break,
        }
    }
}

/// Take this node's clock past the ceiling the group's previous leaders
/// committed: nothing they issued or let a reader see reaches it, so every
/// later timestamp of this node is above all of theirs.
///
/// The ceiling runs up to `CEILING_WINDOW_MS` ahead of the wall clock, and
/// jumping the clock there would move the cluster's time forward at once —
/// every Redis TTL would lose that much (a lock taken with `SET NX PX`
/// expiring early) and then stand still until the wall clock caught up.
/// So a leader whose clock is close behind waits for the wall clock to pass
/// the ceiling (at most the window; a leader change already costs an
/// election), and jumps only when its clock is further behind — a skewed
/// clock, where waiting would stall the group for the whole skew.
///
/// The group's own ceiling is enough: its proposer renews that ceiling
/// above every timestamp it issues or observes (`ensure_ceiling`), whereas
/// the node-wide ceiling may belong to a group this node itself leads.
async fn pass_predecessor_ceiling(ctx: &ProposerCtx) {
    let ceiling = ctx.shared.ceiling_ms();
    if ceiling == 0 {
        return;
    }
    let behind = ceiling.saturating_sub(ctx.hlc.physical_now_ms());
    if behind > 0 && behind <= CEILING_WINDOW_MS {
        tokio::time::sleep(std::time::Duration::from_millis(behind + 1)).await;
        tracing::info!(
            group = ctx.group,
            waited_ms = behind + 1,
            "clock passed the predecessor's HLC ceiling"
        );
    } else if behind > 0 {
        tracing::warn!(
            group = ctx.group,
            behind_ms = behind,
            "clock far behind the committed HLC ceiling: jumping to it"
        );
    }
    ctx.hlc.pass_ceiling(ceiling);
}

/// How far ahead of every timestamp a batch may issue or observe the
/// committed ceiling must be before the batch proceeds.
const CEILING_MARGIN_MS: u64 = 250;
/// How long a batch waits for a synchronous ceiling renewal to commit.
const CEILING_RENEW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How far a renewal pushes the ceiling past the leader's horizon. Also the
/// longest a new leader waits for its clock to pass its predecessor's
/// ceiling (`pass_predecessor_ceiling`), so it is kept short; the
/// background renewal (`RaftNode::spawn_ceiling_renewal`) keeps the lead
/// between `CEILING_RENEW_BELOW_MS` and this.
pub(crate) const CEILING_WINDOW_MS: u64 = 1_000;
/// The background renewal renews once the ceiling leads the horizon by
/// less than this. Well above `CEILING_MARGIN_MS`, so batches do not wait
/// for a synchronous renewal while the background one is on time.
pub(crate) const CEILING_RENEW_BELOW_MS: u64 = 600;
/// How often the background renewal looks at the ceiling.
pub(crate) const CEILING_RENEW_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Make sure the committed HLC ceiling lies above every timestamp this
/// batch may issue or observe (`observed`: the largest timestamp a reader
/// asked for). Normally the background renewal keeps it ahead; after a
/// clock jump, a pause, or a reader bringing a timestamp from a node whose
/// clock runs ahead, the ceiling is renewed here, through Raft, before
/// anything is answered — so a successor that lifts itself above the
/// ceiling never issues a timestamp at or below one this leader issued or
/// let a reader see.
async fn ensure_ceiling(ctx: &ProposerCtx, observed: Timestamp) -> Result<(), ReplError> {
    let ceiling = ctx.shared.ceiling_ms();
    if ceiling == 0 {
        // A new cluster before its first ceiling: nothing issued yet can
        // be above a ceiling a successor would lift to.
        return Ok(());
    }
    let horizon_ms = ctx
        .hlc
        .physical_now_ms()
        .max(hlc::physical_ms(ctx.hlc.last()))
        .max(hlc::physical_ms(observed));
    if horizon_ms + CEILING_MARGIN_MS < ceiling {
        return Ok(());
    }
    let req = Request {
        id: elastickv_types::RequestId::new(ctx.hlc.physical_now_ms()),
        ts: ctx.hlc.last(),
        op: Arc::new(Op::HlcCeiling {
            ms: horizon_ms + CEILING_WINDOW_MS,
        }),
        attempt: 0,
    };
    // Bounded: a leader cut off from its quorum must not stall its proposer
    // (and every request queued behind it) until the partition heals.
    let write = ctx.raft.client_write(Proposal {
        requests: Arc::from([req]),
    });
    tokio::time::timeout(CEILING_RENEW_TIMEOUT, write)
        .await
        .map_err(|_| ReplError::Unavailable("renewing the HLC ceiling timed out".into()))?
        .map_err(|e| match e {
            RaftError::APIError(api) => match write_err_leader(&api) {
                Some(l) => not_leader(ctx, l),
                None => ReplError::Unavailable(api.to_string()),
            },
            RaftError::Fatal(f) => ReplError::Unavailable(format!("raft stopped: {f}")),
        })?;
    // Applying the entry recorded the new ceiling in this node's HLC.
    Ok(())
}

type PendingWrite = (Request, oneshot::Sender<WriteReply>);

async fn run(ctx: ProposerCtx, mut rx: mpsc::Receiver<Item>) {
    let ctx = Arc::new(ctx);
    let window = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let refreshing = Arc::new(AtomicBool::new(false));
    let mut ready_term = 0u64;
    let mut items = Vec::with_capacity(MAX_BATCH);
    // Writes waiting for a slot in the window, in arrival order. They have
    // no timestamp yet: one is given right before they are handed to Raft.
    let mut writes: Vec<PendingWrite> = Vec::new();
    let mut permit: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // Whether an entry was handed to Raft since the Raft core last caught
    // up with this task (see the read path below).
    let mut unsynced = false;
    loop {
        // Wait for a request, or — while writes wait — for a window slot.
        // Reads never wait for the window: a read index covers what was
        // handed to Raft, and waiting writes get timestamps above the read's.
        if writes.is_empty() {
            match rx.recv().await {
                Some(item) => items.push(item),
                None => return,
            }
        } else if permit.is_none() {
            let accept_more = writes.len() < MAX_PENDING_WRITES;
            tokio::select! {
                biased;
                p = window.clone().acquire_owned() => match p {
                    Ok(p) => permit = Some(p),
                    Err(_) => return,
                },
                item = rx.recv(), if accept_more => match item {
                    Some(item) => items.push(item),
                    None => return,
                },
            }
        }
        if writes.len() < MAX_PENDING_WRITES {
            drain(&mut rx, &mut items);
        }
        let mut reads = Vec::new();
        for item in items.drain(..) {
            match item {
                Item::Write { req, reply } => writes.push((req, reply)),
                Item::Read { at, reply } => reads.push((at, reply)),
            }
        }
        if permit.is_none() && !writes.is_empty() && window.available_permits() > 0 {
            permit = window.clone().try_acquire_owned().ok();
        }
        let proposing = permit.is_some() && !writes.is_empty();
        if reads.is_empty() && !proposing {
            continue;
        }
        let observed = reads
            .iter()
            .filter_map(|(at, _)| match at {
                ReadAt::Ts(ts) => Some(*ts),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let ready = match ensure_ready(&ctx, &mut ready_term).await {
            Ok(()) => ensure_ceiling(&ctx, observed).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ready {
            for (_, reply) in writes.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
            for (_, reply) in reads {
                let _ = reply.send(Err(e.clone()));
            }
            permit = None;
            continue;
        }
        if proposing {
            let take = writes.len().min(MAX_BATCH);
            let batch: Vec<PendingWrite> = writes.drain(..take).collect();
            propose(&ctx, batch, permit.take()).await;
            unsynced = true;
        }
        if !reads.is_empty() && unsynced {
            // openraft takes a proposal through its own queue: the entry
            // is in the log (and in `last_appended`) only once the Raft
            // core handled it. A request queued behind the proposals
            // returns after that, so the read index below covers them.
            // Without it a read could be answered from the lease without
            // waiting for a write that got a lower timestamp — and that
            // write, applied later, would change the snapshot the read saw
            // (found by the chaos harness: a lost counter increment).
            if let Err(e) = ctx.raft.with_raft_state(|_| ()).await {
                let e = ReplError::Unavailable(format!("raft stopped: {e}"));
                for (_, reply) in reads.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            unsynced = false;
        }
        if !reads.is_empty() {
            // Issued after every write handed over above got its timestamp:
            // above all of them. Every read without a pinned timestamp gets
            // its own: these serve the timestamp oracle
            // (`RaftNode::timestamp`), and transactions are identified by
            // their start timestamp, so two Begins batched together must
            // never share one (found by the chaos harness: two transactions
            // with one start_ts took each other's locks as their own and an
            // append was lost).
            let reads: Vec<_> = reads
                .into_iter()
                .map(|(at, reply)| match at {
                    ReadAt::Ts(ts) => {
                        ctx.hlc.observe(ts);
                        (Want::At(ts), reply)
                    }
                    ReadAt::Fresh => (Want::At(ctx.hlc.now()), reply),
                    ReadAt::Latest => (Want::Latest, reply),
                })
                .collect();
            answer_reads(&ctx, &refreshing, reads);
        }
    }
}

/// Give `batch` timestamps and hand it to Raft as one entry; its requests
/// are answered when the entry is applied, and `permit` (its window slot)
/// is released then.
async fn propose(
    ctx: &Arc<ProposerCtx>,
    batch: Vec<PendingWrite>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let mut requests = Vec::with_capacity(batch.len());
    let mut write_replies = Vec::with_capacity(batch.len());
    for (mut req, reply) in batch {
        req.ts = match &*req.op {
            // A ceiling carries no version; it must be proposable even when
            // the clock ran into the old ceiling.
            Op::HlcCeiling { .. } => ctx.hlc.last(),
            // Below the group's ceiling: `ensure_ceiling` checked the
            // horizon before this batch.
            _ => ctx.hlc.now(),
        };
        requests.push(req);
        write_replies.push(reply);
    }
    ctx.stats.proposals.fetch_add(1, Ordering::Relaxed);
    ctx.stats
        .requests
        .fetch_add(requests.len() as u64, Ordering::Relaxed);
    let proposed_at = std::time::Instant::now();
    match ctx
        .raft
        .client_write_ff(Proposal {
            requests: Arc::from(requests),
        })
        .await
    {
        Ok(pending) => {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let outcome = pending.await;
                drop(permit);
                let outcome = match outcome {
                    Ok(Ok(resp)) => {
                        // Committed: a quorum accepted an append sent after
                        // `proposed_at`.
                        ctx.lease.confirm(resp.log_id.leader_id.term, proposed_at);
                        Ok((resp.log_id.index, resp.data.results))
                    }
                    Ok(Err(e)) => Err(match write_err_leader(&e) {
                        Some(l) => not_leader(&ctx, l),
                        None => ReplError::Unavailable(e.to_string()),
                    }),
                    Err(_) => Err(ReplError::Unavailable("raft dropped the proposal".into())),
                };
                match outcome {
                    Ok((index, results)) => {
                        for (reply, result) in write_replies.into_iter().zip(results) {
                            let _ = reply.send(Ok((result, index)));
                        }
                    }
                    Err(e) => {
                        for reply in write_replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            });
        }
        Err(fatal) => {
            let e = ReplError::Unavailable(format!("raft stopped: {fatal}"));
            for reply in write_replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// A read as the proposer answers it.
enum Want {
    At(Timestamp),
    Latest,
}

type PendingRead = (Want, oneshot::Sender<Result<ReadPoint, ReplError>>);

/// A `ReadAt::Latest` read reads at the last applied commit timestamp only
/// if that is this recent (ms); an older one may be below the GC safe
/// point, so such a read waits for the writes in flight instead.
const LATEST_MAX_AGE_MS: u64 = 5_000;

/// Answer `reads` once `index` covers every write the leader accepted so
/// far. The `Latest` point is taken once for the whole batch.
fn send_points(ctx: &ProposerCtx, reads: Vec<PendingRead>, index: u64) {
    let mut latest = None;
    for (want, reply) in reads {
        let point = match want {
            Want::At(ts) => ReadPoint { index, ts },
            Want::Latest => *latest.get_or_insert_with(|| latest_point(ctx, index)),
        };
        let _ = reply.send(Ok(point));
    }
}

/// The point of a `ReadAt::Latest` read when `index` covers every write
/// the leader accepted so far.
fn latest_point(ctx: &ProposerCtx, index: u64) -> ReadPoint {
    let (applied_index, applied_ts) = ctx.shared.applied_point();
    let recent =
        hlc::physical_ms(applied_ts).saturating_add(LATEST_MAX_AGE_MS) >= ctx.hlc.physical_now_ms();
    if index > applied_index && recent {
        // Writes are in flight, all above the applied timestamp
        // (timestamps follow the log): read below them, at once.
        // Every acknowledged write was applied before its answer.
        ReadPoint {
            index: applied_index,
            ts: applied_ts,
        }
    } else {
        ReadPoint {
            index,
            ts: ctx.hlc.now(),
        }
    }
}

/// Answer read indexes: at once while the leader's lease holds (and renew it
/// in the background when half of it is gone), otherwise after a round of
/// heartbeats confirms leadership.
fn answer_reads(ctx: &Arc<ProposerCtx>, refreshing: &Arc<AtomicBool>, reads: Vec<PendingRead>) {
    let (leading, term, last_log) = {
        let m = ctx.raft.metrics();
        let m = m.borrow();
        (
            m.state == openraft::ServerState::Leader && m.current_leader == Some(ctx.self_id),
            m.current_term,
            m.last_log_index.unwrap_or(0),
        )
    };
    let now = std::time::Instant::now();
    let remaining = if leading {
        ctx.lease.remaining(term, now)
    } else {
        None
    };
    if let Some(remaining) = remaining {
        // Everything committed so far is in this leader's log.
        let index = last_log.max(ctx.last_appended.load(Ordering::Acquire));
        send_points(ctx, reads, index);
        if remaining < ctx.lease.duration() / 2 && !refreshing.swap(true, Ordering::AcqRel) {
            let ctx = ctx.clone();
            let refreshing = refreshing.clone();
            tokio::spawn(async move {
                let _ = read_round(&ctx, term).await;
                refreshing.store(false, Ordering::Release);
            });
        }
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        match read_round(&ctx, term).await {
            Ok(index) => send_points(&ctx, reads, index),
            Err(e) => {
                for (_, reply) in reads {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    });
}

/// One read-index round (heartbeats to a quorum); renews the lease of
/// `term` on success and returns the index reads must wait for.
async fn read_round(ctx: &ProposerCtx, term: u64) -> Result<u64, ReplError> {
    let sent_at = std::time::Instant::now();
    let (read_log_id, _) = ctx.raft.get_read_log_id().await.map_err(|e| {
        map_raft_err(ctx, e, |api| match api {
            openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Some(f.leader_id),
            openraft::error::CheckIsLeaderError::QuorumNotEnough(_) => None,
        })
    })?;
    // Leadership was confirmed in the term current when openraft handled
    // the round: `term` if the node is still leading in `term` now (terms
    // only grow).
    let still = {
        let m = ctx.raft.metrics();
        let m = m.borrow();
        m.state == openraft::ServerState::Leader && m.current_term == term
    };
    if still {
        ctx.lease.confirm(term, sent_at);
    }
    Ok(read_log_id
        .map(|l| l.index)
        .unwrap_or(0)
        .max(ctx.last_appended.load(Ordering::Acquire)))
}
