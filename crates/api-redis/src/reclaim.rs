//! Background reclamation of Redis data nobody can see any more
//! (see [`crate::layout`]): metadata records of expired keys, expired
//! hash fields (Redis 7.4's active field expiry: a hash whose last field
//! expires is deleted), and the elements of dead collection versions
//! (left behind by DEL, overwrite, expiry and FLUSHDB, which only touch
//! metadata records).
//!
//! Every pass is an ordinary transaction, so deletions replicate through
//! Raft like any write and every replica agrees. A pass never removes
//! anything visible: an expired record is deleted only if it is still the
//! same expired record at commit (a concurrent write to the key makes the
//! commit conflict and the pass simply moves on), and an element is dead
//! only if its version differs from the version of the live metadata
//! record at the pass's snapshot — versions are never reused, so a dead
//! version cannot come back. Readers at older snapshots still see what
//! they saw: deletes are new MVCC versions, and the storage GC keeps old
//! versions until no reader needs them.
//!
//! Each pass is bounded ([`ReclaimLimits`]): it examines at most
//! `scan_per_pass` records and deletes at most `deletes_per_pass`, then
//! commits and remembers where it stopped, so a huge keyspace is walked
//! in small transactions that never hold up foreground commands for long.
//! Only the node leading the group that holds the Redis keyspace runs
//! passes (the others would do the same work twice and conflict).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use elastickv_kv::KvError;
use elastickv_types::hlc::physical_ms;
use tokio::sync::watch;

use crate::db::Pager;
use crate::layout::{self, KeyType, Meta};
use crate::notify::{self, KeyEvent};
use crate::shared::Shared;
use crate::store::{Store, Tx};

/// Bounds of the reclaimer's work.
#[derive(Clone, Debug)]
pub struct ReclaimLimits {
    /// Records (metadata or elements) one pass may examine.
    pub scan_per_pass: usize,
    /// Deletes one pass may buffer (one transaction's writes).
    pub deletes_per_pass: usize,
    /// Pause after a pass that found something to reclaim.
    pub busy_interval: Duration,
    /// Pause after a pass that found nothing, in the middle of a sweep: a
    /// large keyspace with nothing to reclaim is walked at a bounded rate
    /// (`scan_per_pass` per interval) instead of back to back, which cost
    /// a loaded node a tenth of its CPU.
    pub quiet_interval: Duration,
    /// Pause once a whole sweep found nothing to do.
    pub idle_interval: Duration,
}

impl Default for ReclaimLimits {
    fn default() -> Self {
        ReclaimLimits {
            scan_per_pass: 2_048,
            deletes_per_pass: 512,
            busy_interval: Duration::from_millis(20),
            quiet_interval: Duration::from_millis(250),
            idle_interval: Duration::from_secs(1),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Records examined.
    pub scanned: usize,
    /// Expired keys removed.
    pub expired_keys: usize,
    /// Dead element entries removed.
    pub dead_elements: usize,
    /// Expired hash fields removed (Redis 7.4's active field expiry).
    pub expired_fields: usize,
    /// True when the pass reached the end of its space (the next pass
    /// starts over).
    pub wrapped: bool,
}

/// Which space a pass walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Space {
    Meta,
    Elements,
}

/// The reclaimer's position between passes.
pub struct Reclaimer {
    store: Arc<dyn Store>,
    limits: ReclaimLimits,
    space: Space,
    resume: Option<Vec<u8>>,
    /// A hash whose fields a pass did not finish: its metadata key and the
    /// field key to go on from.
    field_resume: Option<(Vec<u8>, Vec<u8>)>,
}

/// What walking one hash's fields did.
struct FieldWalk {
    /// Every field was looked at (from the first one).
    complete: bool,
    /// Some field still carries an expiry.
    ttl_left: bool,
    /// Where to go on from when not complete.
    next: Option<Vec<u8>>,
    /// Fields looked at.
    scanned: usize,
    /// Fields deleted.
    removed: u64,
}

impl Reclaimer {
    /// A reclaimer over `store`, starting at the beginning.
    pub fn new(store: Arc<dyn Store>, limits: ReclaimLimits) -> Reclaimer {
        Reclaimer {
            store,
            limits,
            space: Space::Meta,
            resume: None,
            field_resume: None,
        }
    }

    /// One bounded pass; alternates between expired keys and dead
    /// elements each time a space has been walked to its end.
    pub async fn pass(&mut self) -> Result<PassReport, KvError> {
        self.pass_noting(&mut Vec::new()).await
    }

    /// [`Reclaimer::pass`], adding the `expired` event of each expired key
    /// it removed (committed) to `expired`.
    pub async fn pass_noting(
        &mut self,
        expired: &mut Vec<KeyEvent>,
    ) -> Result<PassReport, KvError> {
        let mut tx = self.store.begin().await?;
        let mut removed = Vec::new();
        let (report, next) = match self.space {
            Space::Meta => self.expired_pass(tx.as_mut(), &mut removed).await?,
            Space::Elements => self.elements_pass(tx.as_mut()).await?,
        };
        if tx.write_count() > 0 {
            match tx.commit().await {
                Ok(_) => expired.append(&mut removed),
                // Someone wrote one of these keys meanwhile: nothing is
                // lost, the next sweep looks again.
                Err(KvError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.resume = next;
        if report.wrapped {
            self.space = match self.space {
                Space::Meta => Space::Elements,
                Space::Elements => Space::Meta,
            };
        }
        Ok(report)
    }

    /// Deletes expired metadata records (the elements of an expired
    /// collection become a dead version, reclaimed by the element pass).
    async fn expired_pass(
        &mut self,
        tx: &mut dyn Tx,
        removed: &mut Vec<KeyEvent>,
    ) -> Result<(PassReport, Option<Vec<u8>>), KvError> {
        let now_ms = physical_ms(tx.start_ts());
        let start = self
            .resume
            .clone()
            .unwrap_or_else(|| layout::META_PREFIX.to_vec());
        let mut pager = Pager::new(start, layout::prefix_end(layout::META_PREFIX), false);
        let mut report = PassReport::default();
        let mut last = None;
        let deletes = |r: &PassReport| r.expired_keys + r.expired_fields;
        while report.scanned < self.limits.scan_per_pass
            && deletes(&report) < self.limits.deletes_per_pass
            && !pager.is_done()
        {
            let want = (self.limits.scan_per_pass - report.scanned).min(crate::db::PAGE);
            for (k, v) in pager.next_page(tx, want).await? {
                report.scanned += 1;
                // A record that does not decode is left for an operator
                // to look at rather than deleted.
                let Ok(mut m) = Meta::decode(&v) else {
                    last = Some(k);
                    continue;
                };
                let Some((db, key)) = layout::redis_key_of_meta(&k) else {
                    last = Some(k);
                    continue;
                };
                let event = |class, event| KeyEvent {
                    class,
                    event,
                    db,
                    key: Bytes::copy_from_slice(key),
                };
                if m.is_expired(now_ms) {
                    tx.delete(k.clone());
                    report.expired_keys += 1;
                    removed.push(event(notify::EXPIRED, "expired"));
                } else if m.ty == KeyType::Hash && m.flags & layout::FLAG_FIELD_TTL != 0 {
                    let from = match &self.field_resume {
                        Some((owner, from)) if *owner == k => Some(from.clone()),
                        _ => None,
                    };
                    let walk = expire_fields(
                        tx,
                        (db, key),
                        &m,
                        now_ms,
                        from,
                        self.limits.scan_per_pass.saturating_sub(report.scanned),
                        self.limits
                            .deletes_per_pass
                            .saturating_sub(deletes(&report)),
                    )
                    .await?;
                    report.scanned += walk.scanned;
                    report.expired_fields += walk.removed as usize;
                    m.count = m.count.saturating_sub(walk.removed);
                    if m.count == 0 {
                        // Redis deletes a hash whose last field expired.
                        tx.delete(k.clone());
                        removed.push(event(notify::HASH, "hexpired"));
                        removed.push(event(notify::GENERIC, "del"));
                    } else {
                        let mut changed = walk.removed > 0;
                        if walk.complete && !walk.ttl_left {
                            // Nothing left to expire: stop looking.
                            m.flags &= !layout::FLAG_FIELD_TTL;
                            changed = true;
                        }
                        if changed {
                            tx.put(k.clone(), m.encode());
                        }
                        if walk.removed > 0 {
                            removed.push(event(notify::HASH, "hexpired"));
                        }
                    }
                    if let Some(next) = walk.next {
                        // Unfinished: the next pass starts at this hash.
                        self.field_resume = Some((k.clone(), next));
                        return Ok((report, Some(k)));
                    }
                    self.field_resume = None;
                }
                last = Some(k);
                if deletes(&report) >= self.limits.deletes_per_pass {
                    break;
                }
            }
        }
        Ok(finish(report, pager.is_done(), last))
    }

    /// Deletes element entries whose version is not the live version of
    /// their key's metadata record.
    async fn elements_pass(
        &self,
        tx: &mut dyn Tx,
    ) -> Result<(PassReport, Option<Vec<u8>>), KvError> {
        let now_ms = physical_ms(tx.start_ts());
        let start = self
            .resume
            .clone()
            .unwrap_or_else(|| layout::ELEM_PREFIX.to_vec());
        let mut pager = Pager::new(start, layout::prefix_end(layout::ELEM_PREFIX), false);
        let mut report = PassReport::default();
        let mut last = None;
        // The live version of the key the previous rows belonged to.
        let mut current: Option<(Vec<u8>, Option<u64>)> = None;
        'walk: while report.scanned < self.limits.scan_per_pass && !pager.is_done() {
            let want = (self.limits.scan_per_pass - report.scanned).min(crate::db::PAGE);
            for (k, _) in pager.next_page(tx, want).await? {
                report.scanned += 1;
                let Some((db, key, version)) = layout::parse_elem_key(&k) else {
                    last = Some(k);
                    continue;
                };
                let prefix = layout::key_elems_prefix(db, key);
                let live = match &current {
                    Some((p, live)) if *p == prefix => *live,
                    _ => {
                        let live = match tx.get(&layout::meta_key(db, key)).await? {
                            Some(raw) => match Meta::decode(&raw) {
                                Ok(m) if m.is_expired(now_ms) => None,
                                Ok(m) if m.ty.is_collection() => Some(m.version),
                                Ok(_) => None,
                                // Undecodable: keep the elements.
                                Err(_) => Some(version),
                            },
                            None => None,
                        };
                        current = Some((prefix, live));
                        live
                    }
                };
                if live != Some(version) {
                    tx.delete(k.clone());
                    report.dead_elements += 1;
                }
                last = Some(k);
                if report.dead_elements >= self.limits.deletes_per_pass {
                    break 'walk;
                }
            }
        }
        Ok(finish(report, pager.is_done(), last))
    }
}

/// Deletes the expired fields of hash `(db, key)` (record `m`), starting at
/// field key `from` (or the first field), looking at no more than
/// `scan_budget` fields and deleting no more than `delete_budget`.
async fn expire_fields(
    tx: &mut dyn Tx,
    (db, key): (u8, &[u8]),
    m: &Meta,
    now_ms: u64,
    from: Option<Vec<u8>>,
    scan_budget: usize,
    delete_budget: usize,
) -> Result<FieldWalk, KvError> {
    let prefix = layout::tag_prefix(db, key, m.version, layout::TAG_HASH);
    let resumed = from.is_some();
    let start = from.unwrap_or_else(|| prefix.clone());
    let mut pager = Pager::new(start, layout::prefix_end(&prefix), false);
    let mut walk = FieldWalk {
        complete: false,
        ttl_left: false,
        next: None,
        scanned: 0,
        removed: 0,
    };
    while !pager.is_done() {
        let want = scan_budget
            .saturating_sub(walk.scanned)
            .clamp(1, crate::db::PAGE);
        for (fk, fv) in pager.next_page(tx, want).await? {
            walk.scanned += 1;
            match layout::dec_field(&fv) {
                Some((_, exp)) if exp != 0 && exp <= now_ms => {
                    tx.delete(fk.clone());
                    walk.removed += 1;
                }
                Some((_, exp)) if exp != 0 => walk.ttl_left = true,
                _ => {}
            }
            if walk.scanned >= scan_budget || walk.removed as usize >= delete_budget {
                let mut next = fk;
                next.push(0);
                walk.next = Some(next);
                return Ok(walk);
            }
        }
    }
    walk.complete = !resumed;
    Ok(walk)
}

/// The report and where the next pass resumes (`None`: from the start).
fn finish(
    mut report: PassReport,
    done: bool,
    last: Option<Vec<u8>>,
) -> (PassReport, Option<Vec<u8>>) {
    if done {
        report.wrapped = true;
        return (report, None);
    }
    let next = last.map(|mut k| {
        k.push(0);
        k
    });
    (report, next)
}

/// The pause after a pass, and whether the sweep in progress is still
/// idle (has found nothing): passes that found work follow each other
/// quickly, passes that found nothing are paced (`quiet_interval`), and a
/// whole sweep that found nothing waits `idle_interval` before the next.
fn pause_after(
    limits: &ReclaimLimits,
    report: &PassReport,
    sweep_ended: bool,
    idle_sweep: bool,
) -> (Duration, bool) {
    let found = report.expired_keys + report.dead_elements + report.expired_fields > 0;
    let idle = idle_sweep && !found;
    if sweep_ended {
        let pause = if idle {
            limits.idle_interval
        } else {
            limits.busy_interval
        };
        (pause, true)
    } else if found {
        (limits.busy_interval, idle)
    } else {
        (limits.quiet_interval, idle)
    }
}

/// Runs passes until `shutdown` turns true, on the node leading the
/// Redis keyspace's group only. Counts expired keys into `shared`.
pub async fn run(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    limits: ReclaimLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reclaimer = Reclaimer::new(Arc::clone(&store), limits.clone());
    let mut idle_sweep = true;
    loop {
        let pause = if !store.leads(layout::META_PREFIX) {
            idle_sweep = true;
            limits.idle_interval
        } else {
            let mut expired = Vec::new();
            let result = reclaimer.pass_noting(&mut expired).await;
            notify::publish(&shared, &expired).await;
            match result {
                Ok(report) => {
                    shared
                        .expired_keys
                        .fetch_add(report.expired_keys as u64, Ordering::Relaxed);
                    let sweep_ended = report.wrapped && reclaimer.space == Space::Meta;
                    let (pause, still_idle) =
                        pause_after(&limits, &report, sweep_ended, idle_sweep);
                    idle_sweep = still_idle;
                    pause
                }
                Err(e) => {
                    tracing::debug!(error = %e, "redis reclaim pass failed; retrying later");
                    limits.idle_interval
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{TAG_HASH, TAG_LIST};
    use crate::memstore::MemStore;

    #[test]
    fn passes_that_find_nothing_are_paced() {
        let l = ReclaimLimits::default();
        let nothing = PassReport::default();
        let found = PassReport {
            expired_keys: 1,
            ..PassReport::default()
        };
        // Mid-sweep: work keeps the pace up, nothing slows it down.
        assert_eq!(
            pause_after(&l, &found, false, true),
            (l.busy_interval, false)
        );
        assert_eq!(
            pause_after(&l, &nothing, false, true),
            (l.quiet_interval, true)
        );
        assert_eq!(
            pause_after(&l, &nothing, false, false),
            (l.quiet_interval, false)
        );
        // End of a sweep: an idle one rests, a busy one goes again soon;
        // either way the next sweep starts idle.
        assert_eq!(
            pause_after(&l, &nothing, true, true),
            (l.idle_interval, true)
        );
        assert_eq!(
            pause_after(&l, &nothing, true, false),
            (l.busy_interval, true)
        );
        assert!(l.busy_interval < l.quiet_interval && l.quiet_interval < l.idle_interval);
    }

    fn small() -> ReclaimLimits {
        ReclaimLimits {
            scan_per_pass: 7,
            deletes_per_pass: 3,
            ..ReclaimLimits::default()
        }
    }

    async fn put(store: &MemStore, writes: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut tx = store.begin().await.expect("begin");
        for (k, v) in writes {
            tx.put(k, v);
        }
        tx.commit().await.expect("commit");
    }

    async fn get(store: &MemStore, k: &[u8]) -> Option<Vec<u8>> {
        let mut tx = store.begin().await.expect("begin");
        tx.get(k).await.expect("get")
    }

    async fn sweep(r: &mut Reclaimer) -> PassReport {
        // Both spaces, to their ends.
        let mut total = PassReport::default();
        let mut wraps = 0;
        for _ in 0..1000 {
            let p = r.pass().await.expect("pass");
            total.scanned += p.scanned;
            total.expired_keys += p.expired_keys;
            total.dead_elements += p.dead_elements;
            total.expired_fields += p.expired_fields;
            if p.wrapped {
                wraps += 1;
                if wraps == 2 {
                    return total;
                }
            }
        }
        panic!("sweep did not finish");
    }

    #[tokio::test]
    async fn removes_dead_versions_and_expired_keys_only() {
        let store = MemStore::new();
        let now = physical_ms(store.now());
        // Live hash at version 20 with stale fields of version 10.
        let mut live = Meta::collection(KeyType::Hash, 20);
        live.count = 2;
        let mut writes = vec![(layout::meta_key(0, b"h"), live.encode())];
        for f in [&b"a"[..], b"b"] {
            writes.push((layout::elem_key(0, b"h", 20, TAG_HASH, f), b"v".to_vec()));
        }
        for i in 0..10u8 {
            writes.push((
                layout::elem_key(0, b"h", 10, TAG_HASH, &[i]),
                b"old".to_vec(),
            ));
        }
        // Elements of a deleted list (no metadata record at all).
        for i in 0..4u64 {
            writes.push((
                layout::elem_key(0, b"gone", 5, TAG_LIST, &layout::seq_sub(i)),
                b"x".to_vec(),
            ));
        }
        // The same key name in another database stays live.
        let mut other = Meta::collection(KeyType::List, 5);
        other.count = 1;
        writes.push((layout::meta_key(1, b"gone"), other.encode()));
        writes.push((
            layout::elem_key(1, b"gone", 5, TAG_LIST, &layout::seq_sub(0)),
            b"y".to_vec(),
        ));
        // An expired string, an expired set with members, a live volatile key.
        writes.push((
            layout::meta_key(0, b"s"),
            Meta::string(b"v".to_vec(), 1).encode(),
        ));
        let mut set = Meta::collection(KeyType::Set, 30);
        set.count = 1;
        set.expire_at = now.saturating_sub(1);
        writes.push((layout::meta_key(0, b"set"), set.encode()));
        writes.push((
            layout::elem_key(0, b"set", 30, crate::layout::TAG_SET, b"m"),
            Vec::new(),
        ));
        writes.push((
            layout::meta_key(0, b"later"),
            Meta::string(b"v".to_vec(), now + 3_600_000).encode(),
        ));
        put(&store, writes).await;

        let mut r = Reclaimer::new(Arc::new(store.clone()), small());
        let first = sweep(&mut r).await;
        // Expired keys go in the first sweep; their elements become dead
        // and go in the element pass of the same or the next sweep.
        let second = sweep(&mut r).await;
        assert_eq!(first.expired_keys + second.expired_keys, 2);
        assert_eq!(first.dead_elements + second.dead_elements, 10 + 4 + 1);
        let third = sweep(&mut r).await;
        assert_eq!((third.expired_keys, third.dead_elements), (0, 0));

        assert!(get(&store, &layout::meta_key(0, b"s")).await.is_none());
        assert!(get(&store, &layout::meta_key(0, b"set")).await.is_none());
        assert!(get(&store, &layout::meta_key(0, b"later")).await.is_some());
        assert!(get(&store, &layout::elem_key(0, b"h", 20, TAG_HASH, b"a"))
            .await
            .is_some());
        assert!(get(&store, &layout::elem_key(0, b"h", 10, TAG_HASH, &[3]))
            .await
            .is_none());
        assert!(get(
            &store,
            &layout::elem_key(1, b"gone", 5, TAG_LIST, &layout::seq_sub(0))
        )
        .await
        .is_some());
        assert_eq!(store.live_keys(), 1 + 2 + 2 + 1);
    }

    #[tokio::test]
    async fn passes_are_bounded() {
        let store = MemStore::new();
        let writes = (0..50u64)
            .map(|i| {
                (
                    layout::elem_key(0, b"dead", 1, TAG_LIST, &layout::seq_sub(i)),
                    Vec::new(),
                )
            })
            .collect();
        put(&store, writes).await;
        let mut r = Reclaimer::new(Arc::new(store.clone()), small());
        r.pass().await.expect("meta pass");
        let p = r.pass().await.expect("element pass");
        assert!(p.scanned <= 7 && p.dead_elements <= 3, "{p:?}");
        assert!(!p.wrapped);
    }

    /// A hash of `fields`, each `(name, expire_at)`, at version 7.
    async fn hash_with(store: &MemStore, key: &[u8], fields: &[(Vec<u8>, u64)]) {
        let mut m = Meta::collection(KeyType::Hash, 7);
        m.count = fields.len() as u64;
        m.flags |= layout::FLAG_FIELD_TTL;
        let mut writes = vec![(layout::meta_key(0, key), m.encode())];
        for (f, exp) in fields {
            writes.push((
                layout::elem_key(0, key, 7, TAG_HASH, f),
                layout::enc_field(b"v", *exp),
            ));
        }
        put(store, writes).await;
    }

    async fn hash_meta(store: &MemStore, key: &[u8]) -> Option<Meta> {
        get(store, &layout::meta_key(0, key))
            .await
            .map(|raw| Meta::decode(&raw).expect("meta"))
    }

    #[tokio::test]
    async fn expired_hash_fields_are_removed_actively() {
        let store = MemStore::new();
        let now = physical_ms(store.now());
        let past = now.saturating_sub(10);
        let field = |s: &str| s.as_bytes().to_vec();
        hash_with(
            &store,
            b"mixed",
            &[(field("a"), past), (field("b"), past), (field("c"), 0)],
        )
        .await;
        hash_with(
            &store,
            b"later",
            &[(field("a"), past), (field("b"), now + 3_600_000)],
        )
        .await;
        hash_with(
            &store,
            b"allgone",
            &[(field("a"), past), (field("b"), past)],
        )
        .await;

        let mut r = Reclaimer::new(Arc::new(store.clone()), ReclaimLimits::default());
        let mut events = Vec::new();
        let p = r.pass_noting(&mut events).await.expect("pass");
        assert_eq!(p.expired_fields, 5, "{p:?}");

        // Fields gone, counts follow; no expiry left: the flag is cleared.
        let mixed = hash_meta(&store, b"mixed").await.expect("mixed stays");
        assert_eq!(mixed.count, 1);
        assert_eq!(mixed.flags & layout::FLAG_FIELD_TTL, 0);
        assert_eq!(
            get(&store, &layout::elem_key(0, b"mixed", 7, TAG_HASH, b"a")).await,
            None
        );
        assert!(
            get(&store, &layout::elem_key(0, b"mixed", 7, TAG_HASH, b"c"))
                .await
                .is_some()
        );
        // A field still waiting to expire keeps the flag.
        let later = hash_meta(&store, b"later").await.expect("later stays");
        assert_eq!(
            (later.count, later.flags & layout::FLAG_FIELD_TTL),
            (1, layout::FLAG_FIELD_TTL)
        );
        // The last field expiring deletes the hash, as in Redis.
        assert_eq!(hash_meta(&store, b"allgone").await, None);

        let names: Vec<(String, &str)> = events
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.event))
            .collect();
        let want = |k: &str, e| (k.to_string(), e);
        assert_eq!(
            names,
            vec![
                want("allgone", "hexpired"),
                want("allgone", "del"),
                want("later", "hexpired"),
                want("mixed", "hexpired"),
            ]
        );
    }

    #[tokio::test]
    async fn large_hashes_expire_fields_across_bounded_passes() {
        let store = MemStore::new();
        let now = physical_ms(store.now());
        // 40 fields, every other one expired; passes see 7 records, delete 3.
        let fields: Vec<(Vec<u8>, u64)> = (0..40u8)
            .map(|i| {
                (
                    vec![b'f', i],
                    if i % 2 == 0 {
                        now - 10
                    } else {
                        now + 3_600_000
                    },
                )
            })
            .collect();
        hash_with(&store, b"big", &fields).await;
        let mut r = Reclaimer::new(Arc::new(store.clone()), small());
        let mut removed = 0;
        for _ in 0..60 {
            let p = r.pass().await.expect("pass");
            assert!(p.scanned <= 8 && p.expired_fields <= 3, "{p:?}");
            removed += p.expired_fields;
        }
        assert_eq!(removed, 20);
        let m = hash_meta(&store, b"big").await.expect("big stays");
        assert_eq!(m.count, 20);
        for (f, exp) in &fields {
            let there = get(&store, &layout::elem_key(0, b"big", 7, TAG_HASH, f))
                .await
                .is_some();
            assert_eq!(there, *exp > now, "field {f:?}");
        }
    }
}
