//! Point-in-time views of a group ([`crate::GroupView`]) for snapshots.
//!
//! Why a worker thread: in fjall 2.11 a `Snapshot` is *not* a stable view by
//! itself. Its reads build fresh iterators over the partition's current
//! memtables and segments, and flush/compaction drops an older version of a
//! key as soon as a newer version exists and the older one is below the
//! snapshot tracker's watermark — even when the newer version is invisible
//! to the open snapshot. (Observed: snapshot at S, key overwritten after S,
//! memtable flushed → the snapshot reads the key as absent.) An *iterator*,
//! on the other hand, pins the memtables and segment files it was created
//! over and stays exact. fjall's iterators are not `Send`, so a view owns a
//! small thread that creates the three iterators at `read_view()` time and
//! later streams them to `export` through a bounded channel.
//!
//! The meta partition (state-machine metadata: applied index, membership…)
//! is read into memory when the view is created, so `GroupView::get_meta`
//! is exact too; it must therefore stay small. Data and locks are streamed,
//! never collected. A view can be exported once.

use crate::engine::{fj, read, GroupInner, GroupParts};
use crate::keys;
use crate::snapshot::{SnapshotWriter, SECTION_DATA, SECTION_LOCKS, SECTION_META};
use crate::{Result, StorageError};
use fjall::Slice;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Records per message from the worker.
const CHUNK_RECORDS: usize = 512;
/// Bytes per message from the worker (soft bound; one record may exceed it).
const CHUNK_BYTES: usize = 1 << 20;
/// Messages in flight between worker and exporter.
const CHANNEL_DEPTH: usize = 2;

type Pair = (Slice, Slice);

enum Msg {
    Records(u8, Vec<Pair>),
    Failed(StorageError),
    Done,
}

/// What the worker hands back once its iterators are pinned.
struct Pinned {
    /// Keeps the viewed partitions (and their files) alive while the view
    /// exists, even if a snapshot install replaces them meanwhile.
    _parts: Arc<GroupParts>,
    meta: Vec<Pair>,
}

pub(crate) struct View {
    state: std::result::Result<Pinned, String>,
    requests: Option<SyncSender<SyncSender<Msg>>>,
    worker: Option<JoinHandle<()>>,
    exported: AtomicBool,
}

impl View {
    pub(crate) fn new(inner: Arc<GroupInner>) -> View {
        let (ready_tx, ready_rx) = sync_channel::<Result<Pinned>>(1);
        let (req_tx, req_rx) = sync_channel::<SyncSender<Msg>>(1);
        let name = format!("ekv-view-g{}", inner.group);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker(inner, ready_tx, req_rx));
        let (state, worker) = match spawned {
            Err(e) => (Err(format!("cannot start the view thread: {e}")), None),
            Ok(handle) => match ready_rx.recv() {
                Ok(Ok(pinned)) => (Ok(pinned), Some(handle)),
                Ok(Err(e)) => (Err(e.to_string()), Some(handle)),
                Err(_) => (
                    Err("the view thread exited early".to_string()),
                    Some(handle),
                ),
            },
        };
        View {
            state,
            requests: Some(req_tx),
            worker,
            exported: AtomicBool::new(false),
        }
    }

    fn pinned(&self) -> Result<&Pinned> {
        self.state
            .as_ref()
            .map_err(|e| StorageError::Engine(format!("group view unavailable: {e}")))
    }

    pub(crate) fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let meta = &self.pinned()?.meta;
        let wanted = keys::aux_key(key);
        Ok(meta
            .binary_search_by(|(k, _)| k.as_ref().cmp(wanted.as_slice()))
            .ok()
            .map(|i| meta[i].1.to_vec()))
    }

    pub(crate) fn export(&self, w: &mut dyn Write) -> Result<u64> {
        let pinned = self.pinned()?;
        if self.exported.swap(true, Ordering::AcqRel) {
            return Err(StorageError::Engine(
                "a group view can be exported only once; take a new view".into(),
            ));
        }
        let (tx, rx) = sync_channel::<Msg>(CHANNEL_DEPTH);
        let sent = self.requests.as_ref().is_some_and(|r| r.send(tx).is_ok());
        if !sent {
            return Err(StorageError::Engine("the view thread is gone".into()));
        }
        let mut out = SnapshotWriter::new(w)?;
        loop {
            match rx.recv() {
                Ok(Msg::Records(section, chunk)) => {
                    for (k, v) in &chunk {
                        out.record(section, k, v)?;
                    }
                }
                Ok(Msg::Failed(e)) => return Err(e),
                Ok(Msg::Done) => break,
                Err(_) => return Err(StorageError::Engine("the view thread exited early".into())),
            }
        }
        for (k, v) in &pinned.meta {
            out.record(SECTION_META, k, v)?;
        }
        out.finish()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // Closing the request channel ends the worker (it also ends if an
        // export was abandoned: its sends fail once the receiver is gone).
        self.requests.take();
        if let Some(handle) = self.worker.take() {
            let _ = handle.join();
        }
    }
}

fn worker(
    inner: Arc<GroupInner>,
    ready: SyncSender<Result<Pinned>>,
    requests: Receiver<SyncSender<Msg>>,
) {
    // Pin the generation and the instant together, then create the iterators
    // immediately: from here on they are immune to flush and compaction.
    let guard = read(&inner.parts);
    let parts = guard.clone();
    let instant = inner.shared.keyspace.instant();
    let data = parts.data.snapshot_at(instant).iter();
    let locks = parts.locks.snapshot_at(instant).iter();
    let meta_iter = parts.meta.snapshot_at(instant).iter();
    drop(guard);
    drop(inner);

    let meta: Result<Vec<Pair>> = meta_iter.map(|r| r.map_err(fj)).collect();
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready
        .send(Ok(Pinned {
            _parts: parts.clone(),
            meta,
        }))
        .is_err()
    {
        return;
    }
    drop(ready);

    let Ok(out) = requests.recv() else { return };
    for (section, iter) in [(SECTION_DATA, data), (SECTION_LOCKS, locks)] {
        let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
        let mut bytes = 0usize;
        for item in iter {
            match item {
                Ok((k, v)) => {
                    bytes += k.len() + v.len();
                    chunk.push((k, v));
                    if chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                        bytes = 0;
                        if out.send(Msg::Records(section, full)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = out.send(Msg::Failed(fj(e)));
                    return;
                }
            }
        }
        if !chunk.is_empty() && out.send(Msg::Records(section, chunk)).is_err() {
            return;
        }
    }
    let _ = out.send(Msg::Done);
    drop(parts);
}
