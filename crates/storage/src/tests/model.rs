//! Randomized model test: a `GroupStore` and an in-memory BTreeMap model
//! receive the same random operations and must give identical answers.
//!
//! After a GC at safe point P the store only promises reads at `ts >= P`, so
//! reads are drawn at or above the highest safe point so far, and writes
//! above it (a write at or below a past safe point would violate the GC
//! contract anyway).

use super::open;
use crate::{Engine, GroupId, GroupStore, Version};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, u64, Vec<u8>),
    Delete(Vec<u8>, u64),
    /// Several writes in one batch.
    Batch(Vec<(Vec<u8>, u64, Option<Vec<u8>>)>),
    Get(Vec<u8>, u64),
    Latest(Vec<u8>),
    Scan {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        ts: u64,
        limit: usize,
        reverse: bool,
    },
    Gc {
        safe_point: u64,
        max_keys: usize,
    },
}

/// Keys from a tiny alphabet with the bytes the encoding treats specially,
/// so that keys collide, nest and share prefixes often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, b'a', 0xFF]), 0..4)
}

/// Mostly small values; a few above what the record of newest versions
/// keeps in memory.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let large = crate::newest::MAX_CACHED_VALUE + 1;
    prop_oneof![
        9 => prop::collection::vec(any::<u8>(), 0..6),
        1 => prop::collection::vec(any::<u8>(), large..large + 3),
    ]
}

/// Offsets are added to the current floor (highest safe point) at run time.
fn ts() -> impl Strategy<Value = u64> {
    0u64..40
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), ts(), value()).prop_map(|(k, t, v)| Op::Put(k, t, v)),
        2 => (key(), ts()).prop_map(|(k, t)| Op::Delete(k, t)),
        1 => prop::collection::vec((key(), ts(), prop::option::of(value())), 1..5).prop_map(Op::Batch),
        4 => (key(), ts()).prop_map(|(k, t)| Op::Get(k, t)),
        1 => key().prop_map(Op::Latest),
        4 => (key(), prop::option::of(key()), ts(), 0usize..6, any::<bool>()).prop_map(
            |(start, end, ts, limit, reverse)| Op::Scan { start, end, ts, limit, reverse }
        ),
        1 => (ts(), 0usize..8).prop_map(|(safe_point, max_keys)| Op::Gc { safe_point, max_keys }),
    ]
}

#[derive(Default)]
struct Model {
    /// key -> commit_ts -> value (None = tombstone)
    rows: BTreeMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>>,
}

impl Model {
    fn write(&mut self, key: &[u8], ts: u64, value: Option<Vec<u8>>) {
        self.rows.entry(key.to_vec()).or_default().insert(ts, value);
    }

    fn version_at(&self, key: &[u8], ts: u64) -> Option<Version> {
        let versions = self.rows.get(key)?;
        let (cts, v) = versions.range(..=ts).next_back()?;
        Some(Version {
            commit_ts: *cts,
            value: v.clone(),
        })
    }

    fn latest(&self, key: &[u8]) -> Option<Version> {
        let (cts, v) = self.rows.get(key)?.iter().next_back()?;
        Some(Version {
            commit_ts: *cts,
            value: v.clone(),
        })
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        ts: u64,
        limit: usize,
        reverse: bool,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        if end.is_some_and(|e| e <= start) {
            return Vec::new();
        }
        let hi = end.map_or(Unbounded, |e| Excluded(e.to_vec()));
        let range = self.rows.range((Included(start.to_vec()), hi));
        let visible = |(k, versions): (&Vec<u8>, &BTreeMap<u64, Option<Vec<u8>>>)| {
            let (_, v) = versions.range(..=ts).next_back()?;
            v.as_ref().map(|v| (k.clone(), v.clone()))
        };
        if reverse {
            range.rev().filter_map(visible).take(limit).collect()
        } else {
            range.filter_map(visible).take(limit).collect()
        }
    }

    /// Applies the GC rule to every key; returns the number of versions removed.
    fn gc(&mut self, safe_point: u64) -> u64 {
        let mut removed = 0;
        for versions in self.rows.values_mut() {
            let Some((&floor, floor_v)) = versions.range(..=safe_point).next_back() else {
                continue;
            };
            let drop_floor = floor_v.is_none();
            let doomed: Vec<u64> = versions
                .range(..=floor)
                .map(|(t, _)| *t)
                .filter(|t| *t < floor || drop_floor)
                .collect();
            for t in doomed {
                versions.remove(&t);
                removed += 1;
            }
        }
        self.rows.retain(|_, v| !v.is_empty());
        removed
    }
}

/// Write in one batch, as the newest version whenever it is (so reads are
/// served from the record of newest versions), as a plain version otherwise
/// (which must make the store forget the recorded one).
fn write_batch(
    store: &GroupStore,
    model: &mut Model,
    writes: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>,
) {
    let mut b = store.batch();
    let mut newest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (k, ts, v) in &writes {
        let stored = model.latest(k).map(|v| v.commit_ts);
        let above = stored
            .max(newest.get(k).copied())
            .is_none_or(|max| *ts > max);
        match (v, above) {
            (Some(v), true) => b.put_newest(k, *ts, v),
            (Some(v), false) => b.put(k, *ts, v),
            (None, true) => b.delete_newest(k, *ts),
            (None, false) => b.delete(k, *ts),
        }
        let e = newest.entry(k.clone()).or_insert(*ts);
        *e = (*e).max(*ts);
    }
    b.commit().unwrap();
    for (k, ts, v) in writes {
        model.write(&k, ts, v);
    }
}

fn run(engine: &Engine, group: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store: GroupStore = engine.group(GroupId(group)).unwrap();
    let mut model = Model::default();
    // Highest safe point GC'd so far: reads at or above it, writes above it.
    let mut floor = 0u64;
    for op in ops {
        match op {
            Op::Put(k, t, v) => {
                write_batch(&store, &mut model, vec![(k, floor + 1 + t, Some(v))]);
            }
            Op::Delete(k, t) => {
                write_batch(&store, &mut model, vec![(k, floor + 1 + t, None)]);
            }
            Op::Batch(writes) => {
                let writes = writes
                    .into_iter()
                    .map(|(k, t, v)| (k, floor + 1 + t, v))
                    .collect();
                write_batch(&store, &mut model, writes);
            }
            Op::Get(k, t) => {
                let ts = floor + t;
                let want = model.version_at(&k, ts);
                prop_assert_eq!(
                    store.get_version_at(&k, ts).unwrap(),
                    want.clone(),
                    "get_version_at {:?} @{}",
                    k,
                    ts
                );
                prop_assert_eq!(store.get_at(&k, ts).unwrap(), want.and_then(|v| v.value));
            }
            Op::Latest(k) => {
                prop_assert_eq!(
                    store.latest_version(&k).unwrap(),
                    model.latest(&k),
                    "latest {:?}",
                    k
                );
            }
            Op::Scan {
                start,
                end,
                ts,
                limit,
                reverse,
            } => {
                let ts = floor + ts;
                let got = store
                    .scan_at(&start, end.as_deref(), ts, limit, reverse)
                    .unwrap();
                let want = model.scan(&start, end.as_deref(), ts, limit, reverse);
                prop_assert_eq!(
                    got,
                    want,
                    "scan {:?}..{:?} @{} limit {} rev {}",
                    start,
                    end,
                    ts,
                    limit,
                    reverse
                );
            }
            Op::Gc {
                safe_point,
                max_keys,
            } => {
                let safe_point = floor + safe_point;
                let mut removed = 0;
                let mut resume: Option<Vec<u8>> = None;
                let mut first = true;
                // Sweep to the end in bounded steps (max_keys 0 would never progress).
                let step = max_keys.max(1);
                while first || resume.is_some() {
                    first = false;
                    let p = store.gc(safe_point, step, resume.as_deref()).unwrap();
                    prop_assert!(p.keys_visited <= step as u64);
                    removed += p.versions_removed;
                    resume = p.resume_from;
                }
                prop_assert_eq!(
                    removed,
                    model.gc(safe_point),
                    "versions removed by gc @{}",
                    safe_point
                );
                floor = safe_point;
            }
        }
    }
    // Final full comparison, both directions, of the store and (every third
    // case: installs are fsync-heavy) of a copy made through a snapshot.
    let copy = if group % 3 == 0 {
        let mut bytes = Vec::new();
        store.read_view().export(&mut bytes).unwrap();
        let copy = engine.group(GroupId(group + 1_000_000)).unwrap();
        copy.install_snapshot(&mut bytes.as_slice()).unwrap();
        Some(copy)
    } else {
        None
    };
    for ts in [floor, floor + 20, u64::MAX] {
        for reverse in [false, true] {
            let want = model.scan(b"", None, ts, usize::MAX, reverse);
            let got = store.scan_at(b"", None, ts, usize::MAX, reverse).unwrap();
            prop_assert_eq!(&got, &want);
            if let Some(copy) = &copy {
                let got = copy.scan_at(b"", None, ts, usize::MAX, reverse).unwrap();
                prop_assert_eq!(&got, &want, "copy");
            }
        }
    }
    Ok(())
}

/// One engine for all cases (closing a fjall keyspace takes ~0.25 s); each
/// case gets fresh groups.
#[test]
fn store_matches_model() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open(tmp.path());
    let next_group = AtomicU64::new(1);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 50..300), |ops| {
        run(&engine, next_group.fetch_add(1, Ordering::Relaxed), ops)
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}
