//! The execution context of one Redis command inside one transaction
//! ([`Ctx`]): typed access to metadata records and elements (see
//! [`crate::layout`]), expiry filtering at the transaction's timestamp,
//! bounded paged scans, the reply-size budget, and the error type every
//! command returns ([`ExecError`]: a Redis error reply, or a data-plane
//! failure that aborts the transaction).

use std::collections::HashMap;

use bytes::Bytes;
use elastickv_kv::KvError;
use elastickv_types::hlc::physical_ms;

use crate::float::FloatError;
use crate::frame::{Frame, Protocol};
use crate::hll::HllError;
use crate::layout::{self, KeyType, Meta};
use crate::notify::{self, KeyEvent};
use crate::parse::CmdError;
use crate::shared::Shared;
use crate::store::{Row, Tx};

/// Rows fetched per scan call. Every walk over a collection or the
/// keyspace goes page by page, so no single read materialises more than
/// this many entries.
pub const PAGE: usize = 512;

/// Most elements a command may load into memory at once for set algebra,
/// random sampling and rewrites (SINTER, ZUNIONSTORE, SORT-like work,
/// RENAME/COPY of a collection, LINSERT/LREM shifting). Beyond it the
/// command fails instead of exhausting memory or building a transaction
/// too large to replicate.
pub const MAX_LOADED: usize = 1_000_000;

/// Most element writes one command may buffer when it must rewrite
/// elements (RENAME/COPY of a collection, LINSERT/LREM shifting, the
/// STORE forms of set algebra): every write of a transaction travels in
/// its commit's Raft proposals, so an unbounded rewrite could not be
/// replicated. Beyond it the command fails with [`too_many_writes`].
pub const MAX_REWRITE: usize = 100_000;

/// Most elements LTRIM / counted pops delete eagerly beyond the live span
/// (the rest are left as invisible garbage, see `cmd::list`).
pub const MAX_EAGER_DELETES: usize = 10_000;

/// `WRONGTYPE` reply text.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Why a command did not produce a normal reply.
#[derive(Debug)]
pub enum ExecError {
    /// A Redis error reply (`-ERR ...`, `-WRONGTYPE ...`). The command
    /// has buffered no writes when it returns this.
    Reply(Frame),
    /// The data plane failed; the whole transaction is abandoned (and
    /// re-run from scratch if the error is a conflict).
    Kv(KvError),
    /// A blocking command (BLPOP, XREAD BLOCK, ...) found nothing to serve
    /// and asks to wait for one of its keys to change. Only returned when
    /// [`Ctx::may_block`] is set, and with no writes buffered.
    Block(Box<Block>),
}

/// What a blocked command waits for (see [`ExecError::Block`]).
#[derive(Debug)]
pub struct Block {
    /// Keys (in the context's database) whose change may let the command
    /// succeed.
    pub keys: Vec<Bytes>,
    /// How long the client asked to wait; `None` waits forever.
    pub timeout: Option<std::time::Duration>,
    /// The reply once the timeout passes.
    pub timeout_reply: Frame,
    /// The arguments to re-run with when they must differ from the
    /// original ones (XREAD's `$` stands for the last id at the time of
    /// the first attempt).
    pub rerun: Option<Vec<Bytes>>,
}

/// What every command returns.
pub type CmdResult = Result<Frame, ExecError>;

impl ExecError {
    /// `-ERR <msg>`.
    pub fn err(msg: impl AsRef<str>) -> ExecError {
        ExecError::Reply(Frame::error(msg))
    }

    /// A complete error text with its code (`WRONGTYPE ...`).
    pub fn coded(text: impl Into<String>) -> ExecError {
        ExecError::Reply(Frame::Error(Bytes::from(text.into())))
    }

    /// The WRONGTYPE error.
    pub fn wrongtype() -> ExecError {
        ExecError::coded(WRONGTYPE)
    }

    /// `ERR syntax error`.
    pub fn syntax() -> ExecError {
        CmdError::Syntax.into()
    }

    /// `ERR value is not an integer or out of range`.
    pub fn not_integer() -> ExecError {
        CmdError::NotInteger.into()
    }
}

impl From<CmdError> for ExecError {
    fn from(e: CmdError) -> Self {
        ExecError::Reply(e.to_frame())
    }
}

impl From<KvError> for ExecError {
    fn from(e: KvError) -> Self {
        ExecError::Kv(e)
    }
}

impl From<FloatError> for ExecError {
    fn from(e: FloatError) -> Self {
        ExecError::coded(e.to_string())
    }
}

impl From<HllError> for ExecError {
    fn from(e: HllError) -> Self {
        ExecError::coded(e.to_string())
    }
}

impl From<layout::CorruptMeta> for ExecError {
    fn from(e: layout::CorruptMeta) -> Self {
        ExecError::Kv(KvError::Internal(e.to_string()))
    }
}

/// A forward or backward walk over `[start, end)`, one page at a time.
#[derive(Clone, Debug)]
pub struct Pager {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    reverse: bool,
    done: bool,
}

impl Pager {
    /// Walks `[start, end)` (`end` `None`: unbounded).
    pub fn new(start: Vec<u8>, end: Option<Vec<u8>>, reverse: bool) -> Pager {
        Pager {
            start,
            end,
            reverse,
            done: false,
        }
    }

    /// Walks every key starting with `prefix`.
    pub fn prefix(prefix: &[u8], reverse: bool) -> Pager {
        Pager::new(prefix.to_vec(), layout::prefix_end(prefix), reverse)
    }

    /// True once the range is exhausted.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next page of at most `n` rows (empty when done).
    pub async fn next_page(&mut self, tx: &mut dyn Tx, n: usize) -> Result<Vec<Row>, KvError> {
        if self.done || n == 0 {
            return Ok(Vec::new());
        }
        if let Some(end) = &self.end {
            if *end <= self.start {
                self.done = true;
                return Ok(Vec::new());
            }
        }
        let page = tx
            .scan(&self.start, self.end.as_deref(), n, self.reverse)
            .await?;
        // The scan contract is "at most n rows": a transaction's own deletes
        // can shorten a page in the middle of a range, so only the scan's
        // own word (or an empty page) ends the walk.
        let rows = page.rows;
        if page.exhausted || rows.is_empty() {
            self.done = true;
        }
        if let Some((last, _)) = rows.last() {
            if self.reverse {
                self.end = Some(last.clone());
            } else {
                let mut next = last.clone();
                next.push(0);
                self.start = next;
            }
        }
        Ok(rows)
    }
}

/// The context a command runs in.
pub struct Ctx<'a> {
    /// The transaction.
    pub tx: &'a mut dyn Tx,
    /// Snapshot timestamp.
    pub start_ts: u64,
    /// Physical milliseconds of the local clock when the context was
    /// made: "now" for expiry. Not the snapshot's: a snapshot may lag the
    /// clock by up to seconds, and a key must vanish when its TTL runs
    /// out, whatever snapshot the reader got.
    pub now_ms: u64,
    /// The client's protocol (reply shapes differ for RESP3).
    pub proto: Protocol,
    /// Node-wide state (config, cursors, stats).
    pub shared: &'a Shared,
    /// The selected database (SELECT); every key the context touches is
    /// in it.
    pub db: u8,
    /// True when a blocking command may answer [`ExecError::Block`]
    /// (a single command from a client); false inside MULTI/EXEC and
    /// scripts, where blocking commands behave as if their timeout had
    /// passed.
    pub may_block: bool,
    /// True when a blocked command runs again after a wake-up: Redis
    /// serves a blocked client only from keys of the type it waits for,
    /// so a key that meanwhile got another type is skipped, not an error.
    pub rerun: bool,
    /// Other clients blocked earlier on this command's keys: a blocking
    /// command that could be served still waits (answers
    /// [`ExecError::Block`]) so that they are served first, as Redis
    /// serves blocked clients in the order they blocked.
    pub wait_turn: bool,
    /// True while a read-only command runs and `keymiss` events (class
    /// `m`) are wanted: a lookup that finds no live key reports one.
    pub miss_events: bool,
    /// Reply bytes still allowed for this command.
    budget: usize,
    /// Keyspace events of the commands run in this context so far, to be
    /// published once the transaction commits (see [`crate::notify`]).
    events: Vec<KeyEvent>,
    /// What each key's first metadata read in this context found, while
    /// `new` or `expired` events are wanted: a write to a key that was
    /// missing is a `new` key, one that had expired an `expired` one.
    seen: HashMap<(u8, Vec<u8>), Seen>,
}

/// What a key's first metadata read in a context found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Expired,
    Live,
    /// Written since (its `new` / `expired` events, if any, are recorded).
    Written,
}

impl<'a> Ctx<'a> {
    /// A context over `tx`.
    pub fn new(tx: &'a mut dyn Tx, proto: Protocol, shared: &'a Shared, db: u8) -> Ctx<'a> {
        let start_ts = tx.start_ts();
        let now_ms = physical_ms(tx.clock_now().max(start_ts));
        Ctx {
            tx,
            start_ts,
            now_ms,
            proto,
            shared,
            db,
            may_block: false,
            rerun: false,
            wait_turn: false,
            miss_events: false,
            budget: shared.max_reply_bytes,
            events: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Records keyspace event `event` of `class` on `key` (in the
    /// context's database) if this node publishes such events.
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if notify::enabled(self.shared, class) {
            self.events.push(KeyEvent {
                class,
                event,
                db: self.db,
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Records `event` of `class` on `key`, then `del` if the command
    /// left the collection `meta` empty (Redis deletes empty collections
    /// and says so).
    pub fn notify_collection(&mut self, class: u32, event: &'static str, key: &[u8], meta: &Meta) {
        self.notify(class, event, key);
        if meta.count == 0 {
            self.notify(notify::GENERIC, "del", key);
        }
    }

    /// Starts the next command in this context (EXEC and scripts run
    /// several): returns where its events start (see
    /// [`Ctx::drop_events_since`]), and forgets which keys earlier
    /// commands found missing or wrote — a key deleted by one command and
    /// set by the next is a `new` key again.
    pub fn begin_command(&mut self) -> usize {
        self.seen.clear();
        self.events.len()
    }

    /// Forgets the events recorded since `mark` (a command that ended in
    /// an error reply changed nothing).
    pub fn drop_events_since(&mut self, mark: usize) {
        self.events.truncate(mark);
    }

    /// The recorded events, to publish after the commit.
    pub fn take_events(&mut self) -> Vec<KeyEvent> {
        std::mem::take(&mut self.events)
    }

    /// True when first reads and writes of keys must be tracked for `new`
    /// and `expired` events.
    fn tracks_keys(&self) -> bool {
        notify::enabled(self.shared, notify::NEW | notify::EXPIRED)
    }

    /// Notes what the first metadata read of `key` found.
    fn saw(&mut self, key: &[u8], found: Option<&Meta>) {
        if !self.tracks_keys() {
            return;
        }
        let id = (self.db, key.to_vec());
        if self.seen.contains_key(&id) {
            return;
        }
        let state = match found {
            None => Seen::Missing,
            Some(m) if m.is_expired(self.now_ms) => Seen::Expired,
            Some(_) => Seen::Live,
        };
        self.seen.insert(id, state);
    }

    /// Records the `expired` / `new` events a write of `key` implies:
    /// writing over an expired record removes the expired key first, and
    /// writing a key that did not exist (`creates`) creates it.
    fn wrote(&mut self, key: &[u8], creates: bool) {
        if !self.tracks_keys() {
            return;
        }
        let Some(state) = self.seen.get_mut(&(self.db, key.to_vec())) else {
            return;
        };
        let before = *state;
        if before == Seen::Written {
            return;
        }
        *state = Seen::Written;
        if before == Seen::Expired {
            self.notify(notify::EXPIRED, "expired", key);
        }
        if creates && matches!(before, Seen::Missing | Seen::Expired) {
            self.notify(notify::NEW, "new", key);
        }
    }

    /// Accounts `bytes` of reply; fails once the reply would exceed the
    /// client output buffer limit (the connection would be closed for it
    /// anyway, so stop building it).
    pub fn charge(&mut self, bytes: usize) -> Result<(), ExecError> {
        let cost = bytes.saturating_add(16);
        if cost > self.budget {
            return Err(ExecError::err(
                "reply exceeds the client output buffer limit",
            ));
        }
        self.budget -= cost;
        Ok(())
    }

    /// Fails unless `key` can be stored.
    pub fn check_key(&self, key: &[u8]) -> Result<(), ExecError> {
        if key.len() > layout::MAX_REDIS_KEY {
            return Err(ExecError::err(format!(
                "key is longer than the maximum of {} bytes",
                layout::MAX_REDIS_KEY
            )));
        }
        Ok(())
    }

    /// Fails unless an element subkey can be stored under `key`.
    pub fn check_sub(&self, key: &[u8], sub: &[u8]) -> Result<(), ExecError> {
        if key.len() + sub.len() + layout::ELEM_OVERHEAD + 8
            > elastickv_types::limits::MAX_KEY_BYTES
        {
            return Err(ExecError::err(format!(
                "key plus field or member is longer than the maximum of {} bytes",
                elastickv_types::limits::MAX_KEY_BYTES - layout::ELEM_OVERHEAD - 8
            )));
        }
        Ok(())
    }

    /// Fails unless a value of `len` bytes can be stored.
    pub fn check_value_len(&self, len: usize) -> Result<(), ExecError> {
        // The metadata header of a string takes 10 bytes.
        if len.saturating_add(64) > self.shared.max_value_bytes {
            return Err(ExecError::err(
                "string exceeds maximum allowed size (proto-max-bulk-len)",
            ));
        }
        Ok(())
    }

    /// The metadata record of `key`, expired or not.
    pub async fn raw_meta(&mut self, key: &[u8]) -> Result<Option<Meta>, ExecError> {
        if key.len() > layout::MAX_REDIS_KEY {
            return Ok(None);
        }
        let meta = match self.tx.get(&layout::meta_key(self.db, key)).await? {
            None => None,
            Some(b) => Some(Meta::decode(&b)?),
        };
        self.saw(key, meta.as_ref());
        Ok(meta)
    }

    /// The live (existing, unexpired) metadata record of `key`.
    pub async fn meta(&mut self, key: &[u8]) -> Result<Option<Meta>, ExecError> {
        let live = self
            .raw_meta(key)
            .await?
            .filter(|m| !m.is_expired(self.now_ms));
        if live.is_none() && self.miss_events {
            self.notify(notify::KEY_MISS, "keymiss", key);
        }
        Ok(live)
    }

    /// The live record a command that replaces `key` whatever it holds
    /// (SET, SETEX, MSET) must know about, or `None` when the replacement
    /// can be written blind. Replacing needs no read of the snapshot: the
    /// new record supersedes the old one, and the elements of a replaced
    /// collection are dead because their version no longer matches (the
    /// reclaimer removes them). The old record matters only when this
    /// transaction wrote it itself (a collection it created shares the
    /// transaction's version, see [`Ctx::remove_key`]; that read is
    /// answered from the buffered write) or when keyspace events need to
    /// know whether the key was new or expired. A blind write also skips
    /// the read point a read would take on a follower.
    pub async fn meta_to_replace(&mut self, key: &[u8]) -> Result<Option<Meta>, ExecError> {
        if self.tracks_keys() || self.tx.buffers_write(&layout::meta_key(self.db, key)) {
            self.meta(key).await
        } else {
            Ok(None)
        }
    }

    /// The live record of `key` if it has type `ty`; WRONGTYPE if it has
    /// another.
    pub async fn typed(&mut self, key: &[u8], ty: KeyType) -> Result<Option<Meta>, ExecError> {
        match self.meta(key).await? {
            Some(m) if m.ty != ty => Err(ExecError::wrongtype()),
            other => Ok(other),
        }
    }

    /// The live collection `key` of type `ty`, or a new empty one (not yet
    /// written) with a fresh version.
    pub async fn typed_or_new(&mut self, key: &[u8], ty: KeyType) -> Result<Meta, ExecError> {
        self.check_key(key)?;
        match self.typed(key, ty).await? {
            Some(m) => Ok(m),
            None => Ok(Meta::collection(ty, self.start_ts)),
        }
    }

    /// Sets [`layout::FLAG_BIG_ENCODING`] on collection `m` when Redis
    /// would now hold it in its large encoding: after `written` (subkeys
    /// with their value lengths) went in, or by its size. Never clears it.
    pub fn mark_encoding(&self, m: &mut Meta, written: &[(&[u8], usize)]) {
        if m.flags & layout::FLAG_BIG_ENCODING != 0 {
            return;
        }
        let sh = self.shared;
        let big = match m.ty {
            KeyType::Set => {
                m.count as i64 > sh.config_int("set-max-intset-entries", 512)
                    || written
                        .iter()
                        .any(|(sub, _)| crate::parse::parse_i64_strict(sub).is_none())
            }
            KeyType::Hash | KeyType::ZSet => {
                let (entries, value) = if m.ty == KeyType::Hash {
                    ("hash-max-listpack-entries", "hash-max-listpack-value")
                } else {
                    ("zset-max-listpack-entries", "zset-max-listpack-value")
                };
                let value = sh.config_int(value, 64);
                m.count as i64 > sh.config_int(entries, 128)
                    || written
                        .iter()
                        .any(|(sub, len)| sub.len() as i64 > value || *len as i64 > value)
            }
            _ => false,
        };
        if big {
            m.flags |= layout::FLAG_BIG_ENCODING;
        }
    }

    /// Writes `key`'s metadata record.
    pub fn put_meta(&mut self, key: &[u8], meta: &Meta) -> Result<(), ExecError> {
        self.check_key(key)?;
        if meta.ty == KeyType::String {
            self.check_value_len(meta.value.len())?;
        }
        self.tx.put(layout::meta_key(self.db, key), meta.encode());
        self.wrote(key, true);
        Ok(())
    }

    /// Writes a collection's record, or removes the key once it is empty
    /// (Redis deletes empty collections).
    pub async fn save_collection(&mut self, key: &[u8], meta: &Meta) -> Result<(), ExecError> {
        if meta.count == 0 {
            self.remove_key(key, meta).await
        } else {
            self.put_meta(key, meta)
        }
    }

    /// Deletes `key` (its metadata record; see the layout's notes on
    /// versions for why elements stay).
    pub async fn remove_key(&mut self, key: &[u8], meta: &Meta) -> Result<(), ExecError> {
        if meta.ty.is_collection() && meta.version == self.start_ts {
            // Created by this very transaction: a later incarnation in
            // this transaction would reuse the version, so its elements
            // (all written by us, hence bounded by the request) go now.
            let mut pager =
                Pager::prefix(&layout::version_prefix(self.db, key, meta.version), false);
            loop {
                let rows = pager.next_page(self.tx, PAGE).await?;
                for (k, _) in rows {
                    self.tx.delete(k);
                }
                if pager.is_done() {
                    break;
                }
            }
        }
        self.tx.delete(layout::meta_key(self.db, key));
        self.wrote(key, false);
        Ok(())
    }

    /// Deletes whatever live or expired record `key` has; true if a live
    /// key was removed.
    pub async fn delete_any(&mut self, key: &[u8]) -> Result<bool, ExecError> {
        match self.raw_meta(key).await? {
            None => Ok(false),
            Some(m) => {
                let live = !m.is_expired(self.now_ms);
                self.remove_key(key, &m).await?;
                Ok(live)
            }
        }
    }

    /// Element read.
    pub async fn get_elem(
        &mut self,
        key: &[u8],
        meta: &Meta,
        tag: u8,
        sub: &[u8],
    ) -> Result<Option<Vec<u8>>, ExecError> {
        if key.len() + sub.len() + layout::ELEM_OVERHEAD > elastickv_types::limits::MAX_KEY_BYTES {
            // Could never have been stored.
            return Ok(None);
        }
        Ok(self
            .tx
            .get(&layout::elem_key(self.db, key, meta.version, tag, sub))
            .await?)
    }

    /// Element write.
    pub fn put_elem(
        &mut self,
        key: &[u8],
        meta: &Meta,
        tag: u8,
        sub: &[u8],
        value: Vec<u8>,
    ) -> Result<(), ExecError> {
        self.check_sub(key, sub)?;
        if value.len().saturating_add(key.len() + sub.len() + 64) > self.shared.max_value_bytes {
            return Err(ExecError::err(
                "element exceeds maximum allowed size (proto-max-bulk-len)",
            ));
        }
        self.tx.put(
            layout::elem_key(self.db, key, meta.version, tag, sub),
            value,
        );
        Ok(())
    }

    /// Element delete.
    pub fn del_elem(&mut self, key: &[u8], meta: &Meta, tag: u8, sub: &[u8]) {
        self.tx
            .delete(layout::elem_key(self.db, key, meta.version, tag, sub));
    }

    /// A pager over the elements with `tag`, yielding full element keys.
    pub fn elems(&self, key: &[u8], meta: &Meta, tag: u8, reverse: bool) -> Pager {
        Pager::prefix(
            &layout::tag_prefix(self.db, key, meta.version, tag),
            reverse,
        )
    }

    /// A pager over `[from, to)` of subkeys with `tag` (`to` `None`: to
    /// the end of the tag).
    pub fn elems_between(
        &self,
        key: &[u8],
        meta: &Meta,
        tag: u8,
        from: &[u8],
        to: Option<&[u8]>,
        reverse: bool,
    ) -> Pager {
        let prefix = layout::tag_prefix(self.db, key, meta.version, tag);
        let mut start = prefix.clone();
        start.extend_from_slice(from);
        let end = match to {
            Some(t) => {
                let mut e = prefix;
                e.extend_from_slice(t);
                Some(e)
            }
            None => layout::prefix_end(&prefix),
        };
        Pager::new(start, end, reverse)
    }

    /// Length of the element key prefix for `tag` (to cut subkeys out of
    /// scanned keys).
    pub fn sub_offset(key: &[u8]) -> usize {
        layout::ELEM_OVERHEAD + key.len()
    }

    /// Loads every element with `tag` as (subkey, value), failing beyond
    /// [`MAX_LOADED`].
    pub async fn load_all(
        &mut self,
        key: &[u8],
        meta: &Meta,
        tag: u8,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ExecError> {
        if meta.count as usize > MAX_LOADED {
            return Err(too_many());
        }
        let off = Ctx::sub_offset(key);
        let mut pager = self.elems(key, meta, tag, false);
        let mut out = Vec::with_capacity(meta.count.min(PAGE as u64 * 4) as usize);
        loop {
            let rows = pager.next_page(self.tx, PAGE).await?;
            for (k, v) in rows {
                out.push((k[off..].to_vec(), v));
            }
            if out.len() > MAX_LOADED {
                return Err(too_many());
            }
            if pager.is_done() {
                return Ok(out);
            }
        }
    }
}

/// The error for commands that would load more than [`MAX_LOADED`]
/// elements.
pub fn too_many() -> ExecError {
    ExecError::err(format!(
        "operation would load more than {MAX_LOADED} elements at once"
    ))
}

/// The error for commands that would rewrite more than [`MAX_REWRITE`]
/// elements in one transaction.
pub fn too_many_writes() -> ExecError {
    ExecError::err(format!(
        "operation would rewrite more than {MAX_REWRITE} elements in one transaction"
    ))
}

/// A bulk string frame from owned bytes.
pub fn bulk(v: Vec<u8>) -> Frame {
    Frame::Bulk(Bytes::from(v))
}

/// An integer frame from a count.
pub fn int(n: usize) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}
