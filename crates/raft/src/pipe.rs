//! Client side of the node-to-node pipe: one long-lived `RaftTransport/Pipe`
//! stream per peer address, carrying the AppendEntries, Vote and Forward
//! messages of every group, each matched with its reply by id.
//!
//! A unary gRPC call costs a new HTTP/2 stream, header encoding and a task
//! hop on each side; on a busy two-core machine that overhead was most of a
//! replication round trip (measured: ~100 µs per unary call against ~60 µs
//! per message on a stream, idle). A broken pipe fails every message still
//! waiting on it; the next message opens a new one.

use elastickv_proto::internal::raft_transport_client::RaftTransportClient;
use elastickv_proto::internal::{RaftFrame, RaftFrameReply, RaftMessage};
use elastickv_types::limits;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

/// Messages queued towards one peer at most; senders wait beyond it.
const QUEUE: usize = 1024;
/// How long opening a pipe may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed open, messages fail at once for this long instead of
/// each waiting for its own connection attempt.
const REOPEN_AFTER: Duration = Duration::from_millis(50);

/// What a pipe message is (`RaftFrame::kind` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Append = 1,
    Vote = 2,
    Forward = 3,
}

impl FrameKind {
    pub fn from_wire(kind: u32) -> Option<FrameKind> {
        match kind {
            1 => Some(FrameKind::Append),
            2 => Some(FrameKind::Vote),
            3 => Some(FrameKind::Forward),
            _ => None,
        }
    }
}

/// Why a message got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipeError {
    /// Nothing was sent: the peer could not be reached.
    #[error("unreachable: {0}")]
    NotSent(String),
    /// Sent, but the pipe broke before the answer came: the peer may have
    /// acted on it.
    #[error("connection lost after sending: {0}")]
    Lost(String),
    /// Sent, and no answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer answered with an error status.
    #[error("{0}")]
    Status(Status),
}

type Waiter = oneshot::Sender<Result<RaftMessage, PipeError>>;

struct Pipe {
    frames: mpsc::Sender<RaftFrame>,
    waiting: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Pipe {
    fn take_waiter(&self, id: u64) -> Option<Waiter> {
        self.waiting.lock().ok().and_then(|mut w| w.remove(&id))
    }

    /// Mark the pipe broken and fail everything still waiting on it.
    fn close(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        let waiters: Vec<Waiter> = match self.waiting.lock() {
            Ok(mut w) => w.drain().map(|(_, tx)| tx).collect(),
            Err(_) => Vec::new(),
        };
        for tx in waiters {
            let _ = tx.send(Err(PipeError::Lost(why.to_string())));
        }
    }
}

#[derive(Default)]
struct Slot {
    pipe: Option<Arc<Pipe>>,
    failed_at: Option<Instant>,
}

/// The pipes of one node, by peer address. Cheap to clone.
#[derive(Clone, Default)]
pub struct Pipes {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
}

impl Pipes {
    /// Send `payload` to the peer at `addr` (over `channel`, its gRPC
    /// channel) and wait up to `timeout` for the answer.
    pub async fn call(
        &self,
        addr: &str,
        channel: impl FnOnce() -> Result<Channel, String>,
        kind: FrameKind,
        group_id: u64,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<RaftMessage, PipeError> {
        let deadline = Instant::now() + timeout;
        // Opening counts against the deadline: an unresponsive peer must
        // not hold a message (or those queued behind its opening) longer.
        let pipe = match tokio::time::timeout(timeout, self.open(addr, channel)).await {
            Ok(pipe) => pipe?,
            Err(_) => return Err(PipeError::NotSent(format!("{addr}: opening timed out"))),
        };
        let id = pipe.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = pipe.waiting.lock() {
            w.insert(id, tx);
        }
        let frame = RaftFrame {
            id,
            kind: kind as u32,
            group_id,
            payload,
        };
        match tokio::time::timeout_at(deadline.into(), pipe.frames.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                pipe.take_waiter(id);
                pipe.close("pipe closed");
                return Err(PipeError::NotSent("pipe closed".into()));
            }
            Err(_) => {
                pipe.take_waiter(id);
                return Err(PipeError::NotSent(format!("{addr}: send queue full")));
            }
        }
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(PipeError::Lost("pipe dropped".into())),
            Err(_) => {
                pipe.take_waiter(id);
                Err(PipeError::Timeout(timeout))
            }
        }
    }

    /// The open pipe to `addr`, opening one if there is none.
    async fn open(
        &self,
        addr: &str,
        channel: impl FnOnce() -> Result<Channel, String>,
    ) -> Result<Arc<Pipe>, PipeError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| PipeError::NotSent("pipe table poisoned".into()))?;
            slots.entry(addr.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(pipe) = &slot.pipe {
            if !pipe.closed.load(Ordering::Acquire) {
                return Ok(pipe.clone());
            }
        }
        if slot.failed_at.is_some_and(|t| t.elapsed() < REOPEN_AFTER) {
            return Err(PipeError::NotSent(format!("{addr}: connecting failed")));
        }
        match open_pipe(channel).await {
            Ok(pipe) => {
                slot.pipe = Some(pipe.clone());
                slot.failed_at = None;
                Ok(pipe)
            }
            Err(e) => {
                slot.pipe = None;
                slot.failed_at = Some(Instant::now());
                Err(PipeError::NotSent(format!("{addr}: {e}")))
            }
        }
    }
}

async fn open_pipe(channel: impl FnOnce() -> Result<Channel, String>) -> Result<Arc<Pipe>, String> {
    let mut client = RaftTransportClient::new(channel()?)
        .max_decoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(limits::MAX_GRPC_MESSAGE_BYTES);
    let (frames, rx) = mpsc::channel(QUEUE);
    let opened = tokio::time::timeout(OPEN_TIMEOUT, client.pipe(ReceiverStream::new(rx)))
        .await
        .map_err(|_| format!("opening the pipe took over {OPEN_TIMEOUT:?}"))?
        .map_err(|s| s.to_string())?;
    let mut replies = opened.into_inner();
    let pipe = Arc::new(Pipe {
        frames,
        waiting: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        closed: AtomicBool::new(false),
    });
    let reader = Arc::downgrade(&pipe);
    tokio::spawn(async move {
        let why = loop {
            let reply = match replies.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break "the peer closed the pipe".to_string(),
                Err(s) => break s.to_string(),
            };
            // The pipe is gone once nobody can send on it any more.
            let Some(pipe) = reader.upgrade() else {
                return;
            };
            if let Some(tx) = pipe.take_waiter(reply.id) {
                let _ = tx.send(answer(reply));
            }
        };
        if let Some(pipe) = reader.upgrade() {
            pipe.close(&why);
        }
    });
    Ok(pipe)
}

fn answer(reply: RaftFrameReply) -> Result<RaftMessage, PipeError> {
    if reply.code == 0 {
        Ok(RaftMessage {
            group_id: 0,
            payload: reply.payload,
        })
    } else {
        Err(PipeError::Status(Status::new(
            tonic::Code::from_i32(reply.code),
            reply.message,
        )))
    }
}
