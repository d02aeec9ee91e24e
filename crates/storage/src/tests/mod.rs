//! Behavioural tests of the public API: engine lifecycle and format,
//! MVCC reads, batches, the Raft log, GC and snapshots. The randomized
//! model test lives in `model.rs`.

mod crash;
mod model;

use crate::*;
use std::path::Path;

pub(crate) fn open(dir: &Path) -> Engine {
    Engine::open(
        dir,
        EngineOptions {
            cache_bytes: 8 << 20,
        },
    )
    .unwrap()
}

fn put(g: &GroupStore, key: &[u8], ts: u64, value: &[u8]) {
    let mut b = g.batch();
    b.put(key, ts, value);
    b.commit().unwrap();
}

fn del(g: &GroupStore, key: &[u8], ts: u64) {
    let mut b = g.batch();
    b.delete(key, ts);
    b.commit().unwrap();
}

fn rows(v: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// Names of the partition directories on disk.
fn partition_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("fjall").join("partitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn reopen_keeps_synced_data_and_format_file() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = open(tmp.path());
        let g = e.group(GroupId(1)).unwrap();
        put(&g, b"k", 5, b"v");
        e.raft_log(GroupId(1))
            .unwrap()
            .append(&[(1, b"e1".to_vec())])
            .unwrap();
        e.sync().unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(FORMAT_FILE)).unwrap(),
        format!("elastickv-data-format {DATA_FORMAT_VERSION}\n")
    );
    let e = open(tmp.path());
    assert_eq!(e.dir(), tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    assert_eq!(g.get_at(b"k", 5).unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        e.raft_log(GroupId(1)).unwrap().last().unwrap(),
        Some((1, b"e1".to_vec()))
    );
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let err = Engine::open(tmp.path(), EngineOptions::default())
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(e);
    open(tmp.path());
}

#[test]
fn foreign_or_newer_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("stuff"), b"x").unwrap();
    let err = Engine::open(tmp.path(), EngineOptions::default())
        .err()
        .expect("must refuse");
    assert!(
        matches!(err, StorageError::IncompatibleFormat { .. }),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    std::fs::write(tmp.path().join(FORMAT_FILE), b"elastickv-data-format 2\n").unwrap();
    let err = Engine::open(tmp.path(), EngineOptions::default())
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, StorageError::IncompatibleFormat { .. }));
    assert!(msg.contains("format 2"), "{msg}");
    assert!(msg.contains("move the directory away"), "{msg}");
}

#[test]
fn point_reads_see_newest_version_at_or_below_ts() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(3)).unwrap();
    put(&g, b"a", 10, b"a10");
    put(&g, b"a", 20, b"a20");
    del(&g, b"a", 30);
    put(&g, b"a", 40, b"a40");
    put(&g, b"ab", 15, b"ab15");

    assert_eq!(g.get_at(b"a", 9).unwrap(), None);
    assert_eq!(g.get_at(b"a", 10).unwrap(), Some(b"a10".to_vec()));
    assert_eq!(g.get_at(b"a", 19).unwrap(), Some(b"a10".to_vec()));
    assert_eq!(g.get_at(b"a", 25).unwrap(), Some(b"a20".to_vec()));
    assert_eq!(g.get_at(b"a", 30).unwrap(), None);
    assert_eq!(g.get_at(b"a", 39).unwrap(), None);
    assert_eq!(g.get_at(b"a", u64::MAX).unwrap(), Some(b"a40".to_vec()));
    assert_eq!(
        g.get_version_at(b"a", 35).unwrap(),
        Some(Version {
            commit_ts: 30,
            value: None
        })
    );
    assert_eq!(
        g.latest_version(b"a").unwrap(),
        Some(Version {
            commit_ts: 40,
            value: Some(b"a40".to_vec())
        })
    );
    assert_eq!(g.get_at(b"ab", 14).unwrap(), None);
    assert_eq!(g.get_at(b"ab", 15).unwrap(), Some(b"ab15".to_vec()));
    assert_eq!(g.get_at(b"b", 100).unwrap(), None);
    assert_eq!(g.latest_version(b"b").unwrap(), None);
    assert_eq!(g.latest_version(b"").unwrap(), None);
    // Timestamp extremes.
    put(&g, b"z", 0, b"z0");
    put(&g, b"z", u64::MAX, b"zmax");
    assert_eq!(g.get_at(b"z", 0).unwrap(), Some(b"z0".to_vec()));
    assert_eq!(g.get_at(b"z", u64::MAX - 1).unwrap(), Some(b"z0".to_vec()));
    assert_eq!(g.get_at(b"z", u64::MAX).unwrap(), Some(b"zmax".to_vec()));
    // Groups are isolated.
    let other = e.group(GroupId(4)).unwrap();
    assert_eq!(other.get_at(b"a", u64::MAX).unwrap(), None);
}

#[test]
fn binary_keys_round_trip_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let keys: Vec<&[u8]> = vec![
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\x01",
        b"a\x00b",
        b"\xff",
        b"\xff\x00catalog/",
        b"\xff\xff",
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&g, k, 7, format!("v{i}").as_bytes());
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            g.get_at(k, 7).unwrap(),
            Some(format!("v{i}").into_bytes()),
            "{k:?}"
        );
    }
    let all = g.scan_at(b"", None, 7, 100, false).unwrap();
    let got: Vec<Vec<u8>> = all.iter().map(|(k, _)| k.clone()).collect();
    let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    want.sort();
    assert_eq!(got, want);
    let rev = g.scan_at(b"", None, 7, 100, true).unwrap();
    let got_rev: Vec<Vec<u8>> = rev.iter().map(|(k, _)| k.clone()).collect();
    want.reverse();
    assert_eq!(got_rev, want);
    // Bounds between keys that differ only in 0x00 handling.
    assert_eq!(
        g.scan_at(b"\x00", Some(b"\x00\xff"), 7, 100, false)
            .unwrap()
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec![b"\x00".to_vec(), b"\x00\x00".to_vec()]
    );
    // The lock and meta partitions take binary and empty keys too.
    let mut b = g.batch();
    b.put_lock(b"", b"L0");
    b.put_lock(b"\x00", b"L1");
    b.put_meta(b"", b"M0");
    b.commit().unwrap();
    assert_eq!(g.get_lock(b"").unwrap(), Some(b"L0".to_vec()));
    assert_eq!(g.get_meta(b"").unwrap(), Some(b"M0".to_vec()));
    assert_eq!(
        g.scan_locks(b"", None, 10).unwrap(),
        rows(&[(b"", b"L0"), (b"\x00", b"L1")])
    );
}

#[test]
fn scans_honour_bounds_limits_tombstones_and_ts() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    put(&g, b"a", 1, b"a1");
    put(&g, b"b", 1, b"b1");
    put(&g, b"b", 5, b"b5");
    put(&g, b"c", 1, b"c1");
    del(&g, b"c", 3);
    put(&g, b"d", 4, b"d4");
    put(&g, b"e", 9, b"e9");

    let f = |s: &[u8], e: Option<&[u8]>, ts, lim, rev| g.scan_at(s, e, ts, lim, rev).unwrap();
    assert_eq!(
        f(b"", None, 5, 100, false),
        rows(&[(b"a", b"a1"), (b"b", b"b5"), (b"d", b"d4")])
    );
    assert_eq!(
        f(b"", None, 2, 100, false),
        rows(&[(b"a", b"a1"), (b"b", b"b1"), (b"c", b"c1")])
    );
    assert_eq!(
        f(b"", None, 5, 100, true),
        rows(&[(b"d", b"d4"), (b"b", b"b5"), (b"a", b"a1")])
    );
    assert_eq!(
        f(b"", None, 2, 100, true),
        rows(&[(b"c", b"c1"), (b"b", b"b1"), (b"a", b"a1")])
    );
    assert_eq!(f(b"b", Some(b"d"), 9, 100, false), rows(&[(b"b", b"b5")]));
    assert_eq!(f(b"b", Some(b"d"), 9, 100, true), rows(&[(b"b", b"b5")]));
    assert_eq!(
        f(b"b", Some(b"e"), 9, 100, true),
        rows(&[(b"d", b"d4"), (b"b", b"b5")])
    );
    assert_eq!(
        f(b"a", None, 9, 2, false),
        rows(&[(b"a", b"a1"), (b"b", b"b5")])
    );
    assert_eq!(
        f(b"a", None, 9, 2, true),
        rows(&[(b"e", b"e9"), (b"d", b"d4")])
    );
    assert_eq!(f(b"a", None, 9, 0, false), vec![]);
    assert_eq!(f(b"c", Some(b"c"), 9, 10, false), vec![]);
    assert_eq!(f(b"d", Some(b"c"), 9, 10, true), vec![]);
    assert_eq!(f(b"a", Some(b"a\x00"), 9, 10, true), rows(&[(b"a", b"a1")]));
    assert_eq!(f(b"bb", None, 0, 10, false), vec![]);
    assert_eq!(f(b"z", None, 9, 10, true), vec![]);
}

#[test]
fn aux_scans() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let mut b = g.batch();
    for k in [&b"l1"[..], b"l2", b"l3", b"m"] {
        b.put_lock(k, k);
        b.put_meta(k, k);
    }
    b.commit().unwrap();
    assert_eq!(
        g.scan_locks(b"l2", Some(b"m"), 10).unwrap(),
        rows(&[(b"l2", b"l2"), (b"l3", b"l3")])
    );
    assert_eq!(
        g.scan_locks(b"l", None, 2).unwrap(),
        rows(&[(b"l1", b"l1"), (b"l2", b"l2")])
    );
    assert_eq!(g.scan_locks(b"m", Some(b"l"), 10).unwrap(), vec![]);
    assert_eq!(g.scan_meta(b"l", 10).unwrap().len(), 3);
    assert_eq!(g.scan_meta(b"l", 1).unwrap(), rows(&[(b"l1", b"l1")]));
    assert_eq!(g.scan_meta(b"", 10).unwrap().len(), 4);
    let mut b = g.batch();
    b.delete_lock(b"l2");
    b.delete_meta(b"l1");
    b.commit().unwrap();
    assert_eq!(g.get_lock(b"l2").unwrap(), None);
    assert_eq!(g.get_meta(b"l1").unwrap(), None);
    assert_eq!(
        g.scan_meta(b"l", 10).unwrap(),
        rows(&[(b"l2", b"l2"), (b"l3", b"l3")])
    );
}

#[test]
fn batches_are_atomic_and_invalid_ones_apply_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let mut b = g.batch();
    assert!(b.is_empty());
    b.put(b"k", 1, b"v");
    b.put_lock(b"k", b"lock");
    b.put_meta(b"applied", b"7");
    assert_eq!(b.len(), 3);
    assert_eq!(g.get_at(b"k", 1).unwrap(), None);
    assert_eq!(g.get_lock(b"k").unwrap(), None);
    b.commit().unwrap();
    assert_eq!(g.get_at(b"k", 1).unwrap(), Some(b"v".to_vec()));
    assert_eq!(g.get_lock(b"k").unwrap(), Some(b"lock".to_vec()));
    assert_eq!(g.get_meta(b"applied").unwrap(), Some(b"7".to_vec()));

    // A key too large for the engine: the commit fails and applies nothing.
    let mut b = g.batch();
    b.put(b"x", 2, b"x");
    b.put(&vec![0u8; 40_000], 2, b"too big once escaped");
    b.put_lock(b"x", b"never");
    let err = b.commit().unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    assert_eq!(g.get_at(b"x", 2).unwrap(), None);
    assert_eq!(g.get_lock(b"x").unwrap(), None);
    // The largest storable key works.
    let big = vec![b'a'; keys::MAX_ENGINE_KEY - 10];
    put(&g, &big, 3, b"big");
    assert_eq!(g.get_at(&big, 3).unwrap(), Some(b"big".to_vec()));

    // An empty batch commits trivially.
    g.batch().commit().unwrap();
}

#[test]
fn raft_log_append_range_truncate_purge_meta() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = open(tmp.path());
        let log = e.raft_log(GroupId(5)).unwrap();
        assert_eq!(log.last().unwrap(), None);
        let entries: Vec<(u64, Vec<u8>)> = (1..=10)
            .map(|i| (i, format!("e{i}").into_bytes()))
            .collect();
        log.append(&entries).unwrap();
        assert_eq!(log.range(1, 11).unwrap(), entries);
        assert_eq!(log.range(3, 5).unwrap(), entries[2..4].to_vec());
        assert_eq!(log.range(5, 5).unwrap(), vec![]);
        assert_eq!(log.range(9, 100).unwrap(), entries[8..].to_vec());
        assert_eq!(log.last().unwrap(), Some((10, b"e10".to_vec())));

        log.truncate_from(8).unwrap();
        assert_eq!(log.last().unwrap(), Some((7, b"e7".to_vec())));
        log.append(&[(8, b"new8".to_vec())]).unwrap();
        assert_eq!(
            log.range(7, 100).unwrap(),
            vec![(7, b"e7".to_vec()), (8, b"new8".to_vec())]
        );

        log.purge_upto(3).unwrap();
        assert_eq!(log.range(0, 100).unwrap()[0].0, 4);
        assert_eq!(log.range(1, 5).unwrap(), vec![(4, b"e4".to_vec())]);
        log.truncate_from(100).unwrap();
        assert_eq!(log.last().unwrap().unwrap().0, 8);

        log.put_meta("vote", b"term=3").unwrap();
        log.put_meta("committed", b"8").unwrap();
        assert_eq!(log.get_meta("vote").unwrap(), Some(b"term=3".to_vec()));
        assert_eq!(log.get_meta("missing").unwrap(), None);
        // Meta never shows up as entries.
        assert_eq!(log.last().unwrap().unwrap().0, 8);
        // Another handle of the same group shares the state.
        assert_eq!(
            e.raft_log(GroupId(5)).unwrap().last().unwrap().unwrap().0,
            8
        );
        // Other groups are separate.
        assert_eq!(e.raft_log(GroupId(6)).unwrap().last().unwrap(), None);
        e.sync().unwrap();
    }
    let e = open(tmp.path());
    let log = e.raft_log(GroupId(5)).unwrap();
    assert_eq!(log.range(0, 100).unwrap().len(), 5);
    assert_eq!(log.get_meta("committed").unwrap(), Some(b"8".to_vec()));
    // Purge past the end empties the log; appending continues after it.
    log.purge_upto(50).unwrap();
    assert_eq!(log.last().unwrap(), None);
    assert_eq!(
        log.range(1, 5).unwrap(),
        vec![],
        "range entirely below the purge point"
    );
    assert_eq!(log.range(0, u64::MAX).unwrap(), vec![]);
    log.append(&[(51, b"e51".to_vec())]).unwrap();
    assert_eq!(log.range(0, u64::MAX).unwrap(), vec![(51, b"e51".to_vec())]);
    log.truncate_from(0).unwrap();
    assert_eq!(log.last().unwrap(), None);
}

#[test]
fn raft_log_large_purge_spans_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let log = e.raft_log(GroupId(1)).unwrap();
    let n = 10_000u64;
    let entries: Vec<(u64, Vec<u8>)> = (1..=n).map(|i| (i, i.to_be_bytes().to_vec())).collect();
    for chunk in entries.chunks(1000) {
        log.append(chunk).unwrap();
    }
    log.purge_upto(9_000).unwrap();
    assert_eq!(log.range(0, u64::MAX).unwrap().len(), 1_000);
    log.truncate_from(9_500).unwrap();
    assert_eq!(log.range(0, u64::MAX).unwrap().len(), 499);
    assert_eq!(log.last().unwrap().unwrap().0, 9_499);
}

#[test]
fn gc_removes_invisible_versions_only() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    // a: 10, 20, 30(tombstone), 40   b: 10, 20(tombstone)   c: 50
    put(&g, b"a", 10, b"a10");
    put(&g, b"a", 20, b"a20");
    del(&g, b"a", 30);
    put(&g, b"a", 40, b"a40");
    put(&g, b"b", 10, b"b10");
    del(&g, b"b", 20);
    put(&g, b"c", 50, b"c50");

    // Safe point 25: a keeps 20, 30, 40 and drops 10; b's newest version at
    // or below 25 is the tombstone at 20, so it and 10 go; c is untouched.
    let p = g.gc(25, 100, None).unwrap();
    assert_eq!(p.versions_removed, 3);
    assert_eq!(p.keys_visited, 3);
    assert_eq!(p.resume_from, None);
    assert_eq!(g.get_at(b"a", 25).unwrap(), Some(b"a20".to_vec()));
    assert_eq!(g.get_at(b"a", 35).unwrap(), None);
    assert_eq!(g.get_at(b"a", 45).unwrap(), Some(b"a40".to_vec()));
    assert_eq!(
        g.get_at(b"a", 15).unwrap(),
        None,
        "version 10 was collected"
    );
    assert_eq!(g.latest_version(b"b").unwrap(), None);
    assert_eq!(g.get_at(b"c", 60).unwrap(), Some(b"c50".to_vec()));

    // Safe point 35: a's tombstone at 30 is the floor -> it and 20 go.
    let p = g.gc(35, 100, None).unwrap();
    assert_eq!(p.versions_removed, 2);
    assert_eq!(g.get_version_at(b"a", 39).unwrap(), None);
    assert_eq!(g.get_at(b"a", 40).unwrap(), Some(b"a40".to_vec()));

    // Bounded, resumable sweeps.
    for i in 0..10u8 {
        put(&g, &[b'k', i], 1, b"old");
        put(&g, &[b'k', i], 2, b"new");
    }
    let mut resume: Option<Vec<u8>> = Some(b"k".to_vec());
    let mut removed = 0;
    let mut calls = 0;
    while let Some(from) = resume.take() {
        let p = g.gc(100, 3, Some(&from)).unwrap();
        assert!(p.keys_visited <= 3);
        removed += p.versions_removed;
        resume = p.resume_from;
        calls += 1;
    }
    assert_eq!(removed, 10);
    assert_eq!(calls, 4);
    for i in 0..10u8 {
        assert_eq!(g.get_at(&[b'k', i], 1).unwrap(), None);
        assert_eq!(g.get_at(&[b'k', i], 2).unwrap(), Some(b"new".to_vec()));
    }
    // max_keys = 0 visits nothing and resumes where it started.
    let p = g.gc(100, 0, Some(b"k")).unwrap();
    assert_eq!((p.keys_visited, p.resume_from), (0, Some(vec![b'k', 0])));
}

#[test]
fn gc_handles_more_deletions_than_one_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let mut b = g.batch();
    for ts in 1..=(gc::GC_BATCH as u64 * 3) {
        b.put(b"hot", ts, &ts.to_be_bytes());
    }
    b.commit().unwrap();
    let p = g.gc(u64::MAX, 10, None).unwrap();
    assert_eq!(p.versions_removed, gc::GC_BATCH as u64 * 3 - 1);
    assert_eq!(g.scan_at(b"", None, u64::MAX, 10, false).unwrap().len(), 1);
}

fn fill_group(g: &GroupStore, n: u32) {
    let mut b = g.batch();
    for i in 0..n {
        let k = format!("key{i:05}");
        b.put(k.as_bytes(), 10, format!("v{i}").as_bytes());
        if i % 3 == 0 {
            b.put(k.as_bytes(), 20, format!("w{i}").as_bytes());
        }
        if i % 7 == 0 {
            b.delete(k.as_bytes(), 30);
        }
        if i % 11 == 0 {
            b.put_lock(k.as_bytes(), b"lock");
        }
    }
    b.put(b"", 5, b"empty key");
    b.put(b"\x00\xff", 5, b"zeros");
    b.put_meta(b"applied_index", b"42");
    b.put_meta(b"", b"empty meta key");
    b.commit().unwrap();
}

/// Everything observable about a group, for comparing two of them.
fn dump(g: &GroupStore) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for ts in [0, 5, 10, 15, 20, 25, 30, u64::MAX] {
        out.push(g.scan_at(b"", None, ts, usize::MAX, false).unwrap());
        out.push(g.scan_at(b"", None, ts, usize::MAX, true).unwrap());
    }
    out.push(g.scan_locks(b"", None, usize::MAX).unwrap());
    out.push(g.scan_meta(b"", usize::MAX).unwrap());
    out
}

fn export_bytes(g: &GroupStore) -> Vec<u8> {
    let mut buf = Vec::new();
    let n = g.read_view().export(&mut buf).unwrap();
    assert_eq!(n, buf.len() as u64);
    buf
}

#[test]
fn snapshot_round_trip_into_another_engine() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = open(src_dir.path());
    let sg = src.group(GroupId(9)).unwrap();
    fill_group(&sg, 2_000);
    let bytes = export_bytes(&sg);

    let dst = open(dst_dir.path());
    let dg = dst.group(GroupId(9)).unwrap();
    let clone = dg.clone();
    // Old state of the destination, which the install must replace whole.
    put(&dg, b"stale", 1, b"x");
    let mut b = dg.batch();
    b.put_lock(b"stale", b"x");
    b.put_meta(b"stale", b"x");
    b.commit().unwrap();
    let pending = {
        let mut b = dg.batch();
        b.put(b"late", 1, b"x");
        b
    };

    dg.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(dump(&dg), dump(&sg));
    assert_eq!(dump(&clone), dump(&sg), "clones see the install");
    assert_eq!(dump(&dst.group(GroupId(9)).unwrap()), dump(&sg));
    assert_eq!(dg.get_at(b"stale", 1).unwrap(), None);
    assert_eq!(dg.get_meta(b"stale").unwrap(), None);
    assert_eq!(dg.get_meta(b"applied_index").unwrap(), Some(b"42".to_vec()));
    // A batch started before the install does not write into the new state.
    assert!(pending.commit().is_err());
    assert_eq!(dg.get_at(b"late", 1).unwrap(), None);
    // Writes continue on the new state.
    put(&dg, b"after", 50, b"y");
    assert_eq!(dg.get_at(b"after", 50).unwrap(), Some(b"y".to_vec()));

    // Re-exporting the installed state gives the same bytes.
    let src_after: Vec<u8> = export_bytes(&sg);
    assert_eq!(bytes, src_after);

    // Survives a restart; only the current generation's partitions remain.
    let expected = dump(&dg);
    drop((dg, clone, dst));
    let dst = open(dst_dir.path());
    assert_eq!(dump(&dst.group(GroupId(9)).unwrap()), expected);
    let dirs = partition_dirs(dst_dir.path());
    assert_eq!(
        dirs.iter().filter(|n| n.starts_with("g9_")).count(),
        3,
        "{dirs:?}"
    );
}

#[test]
fn empty_group_snapshot_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let a = e.group(GroupId(1)).unwrap();
    let b = e.group(GroupId(2)).unwrap();
    put(&b, b"k", 1, b"v");
    let bytes = export_bytes(&a);
    b.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(b.get_at(b"k", 1).unwrap(), None);
    assert_eq!(dump(&b), dump(&a));
}

#[test]
fn view_is_a_consistent_point_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    fill_group(&g, 100);
    let before = dump(&g);
    let view = g.read_view();
    // Changes after the view is taken are not in it.
    let mut b = g.batch();
    b.put(b"key00001", 99, b"changed");
    b.put_meta(b"applied_index", b"43");
    b.put_lock(b"new", b"lock");
    b.commit().unwrap();
    g.gc(u64::MAX, 1000, None).unwrap();
    assert_eq!(
        view.get_meta(b"applied_index").unwrap(),
        Some(b"42".to_vec())
    );
    let mut bytes = Vec::new();
    view.export(&mut bytes).unwrap();
    drop(view);
    let other = e.group(GroupId(2)).unwrap();
    other.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(dump(&other), before);
}

/// Regression test for fjall 2.11 snapshots losing versions that a newer
/// write shadows once the memtable is flushed (see view.rs): the view must
/// still answer and export the state as of its creation.
#[test]
fn view_survives_overwrites_flush_and_compaction() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupView>();

    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    // Conditions for the fjall bug: more than 100 sequence numbers and a
    // pause without open snapshots (fjall's monitor then raises its GC
    // watermark), and later 50+ snapshot closes (its tracker then raises the
    // watermark to just below the oldest open snapshot).
    fill_group(&g, 300);
    for i in 0..150u32 {
        put(&g, format!("seq{i:03}").as_bytes(), 1, b"x");
    }
    let mut b = g.batch();
    b.put_lock(b"txn-lock", b"held");
    b.commit().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    put(&g, b"filler", 1, b"x");
    let before = dump(&g);
    let view = g.read_view();

    let mut b = g.batch();
    b.put_meta(b"applied_index", b"43");
    b.delete_lock(b"txn-lock");
    b.commit().unwrap();
    g.gc(u64::MAX, 10_000, None).unwrap();
    for _ in 0..120 {
        g.scan_at(b"", Some(b"a"), 1, 1, false).unwrap();
    }
    let parts = g.inner.current();
    for p in [&parts.data, &parts.locks, &parts.meta] {
        p.rotate_memtable_and_wait().unwrap();
        p.major_compact().unwrap();
    }
    assert_eq!(g.get_meta(b"applied_index").unwrap(), Some(b"43".to_vec()));

    assert_eq!(
        view.get_meta(b"applied_index").unwrap(),
        Some(b"42".to_vec())
    );
    let mut bytes = Vec::new();
    view.export(&mut bytes).unwrap();
    let err = view.export(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("only once"), "{err}");
    drop(view);
    let other = e.group(GroupId(2)).unwrap();
    other.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(other.get_lock(b"txn-lock").unwrap(), Some(b"held".to_vec()));
    assert_eq!(dump(&other), before);
}

#[test]
fn corrupt_or_truncated_snapshots_are_refused_and_leave_state_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let src = e.group(GroupId(1)).unwrap();
    fill_group(&src, 30);
    let good = export_bytes(&src);

    let dst = e.group(GroupId(2)).unwrap();
    put(&dst, b"mine", 1, b"original");
    let mut b = dst.batch();
    b.put_meta(b"applied_index", b"7");
    b.commit().unwrap();
    let before = dump(&dst);

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // Truncations: empty, inside the header, inside records, inside the trailer.
    for cut in [
        0,
        1,
        8,
        15,
        16,
        17,
        30,
        good.len() / 2,
        good.len() - 37,
        good.len() - 5,
        good.len() - 1,
    ] {
        cases.push((format!("truncated to {cut}"), good[..cut].to_vec()));
    }
    // Single-bit flips across the stream.
    let step = (good.len() / 24).max(1);
    let mut pos = 0;
    while pos < good.len() {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        cases.push((format!("bit flip at {pos}"), bad));
        pos += step;
    }
    for pos in (good.len() - 40..good.len()).step_by(4) {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        cases.push((format!("bit flip at {pos}"), bad));
    }
    let mut extra = good.clone();
    extra.push(0);
    cases.push(("trailing byte".into(), extra));

    for (what, bytes) in &cases {
        let err = dst
            .install_snapshot(&mut bytes.as_slice())
            .err()
            .unwrap_or_else(|| panic!("{what}: install must fail"));
        assert!(matches!(err, StorageError::Corrupt(_)), "{what}: {err}");
        assert_eq!(dump(&dst), before, "{what}: state changed");
    }
    // Nothing of the failed installs is left once handles are dropped.
    drop((src, dst, e));
    let e = open(tmp.path());
    let dirs = partition_dirs(tmp.path());
    assert_eq!(
        dirs.iter().filter(|n| n.starts_with("g2_")).count(),
        3,
        "{dirs:?}"
    );
    assert_eq!(dump(&e.group(GroupId(2)).unwrap()), before);
}

#[test]
fn snapshot_of_a_different_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let mut bytes = export_bytes(&g);
    bytes[11] = 2; // be32 version
    let err = g.install_snapshot(&mut bytes.as_slice()).unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
}

/// Records that are well formed and checksummed but break the structural
/// rules (order, stored-key shape) are refused before reaching fjall.
#[test]
fn structurally_invalid_snapshots_are_refused() {
    fn stream(records: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(snapshot::MAGIC);
        body.extend_from_slice(&snapshot::SNAPSHOT_FORMAT_VERSION.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        let mut counts = [0u64; 3];
        for (section, k, v) in records {
            let mut rec = vec![*section];
            rec.extend_from_slice(&(k.len() as u32).to_be_bytes());
            rec.extend_from_slice(&(v.len() as u32).to_be_bytes());
            rec.extend_from_slice(k);
            rec.extend_from_slice(v);
            let crc = crc32fast::hash(&rec);
            body.extend_from_slice(&rec);
            body.extend_from_slice(&crc.to_be_bytes());
            if (1..=3).contains(section) {
                counts[usize::from(*section - 1)] += 1;
            }
        }
        let body_len = body.len() as u64;
        body.push(0xFF);
        for c in counts {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&body_len.to_be_bytes());
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        body
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    put(&g, b"keep", 1, b"me");
    let k1 = keys::encode_version(b"a", 1);
    let k2 = keys::encode_version(b"b", 1);
    let put_v = [keys::TAG_PUT, b'x'];
    // Sanity: the hand-built stream format is accepted.
    let ok = stream(&[
        (1, &k1, &put_v),
        (1, &k2, &put_v),
        (2, b"kx", b"l"),
        (3, b"kapplied", b"1"),
    ]);
    g.install_snapshot(&mut ok.as_slice()).unwrap();
    assert_eq!(g.get_at(b"b", 1).unwrap(), Some(b"x".to_vec()));
    assert_eq!(g.get_lock(b"x").unwrap(), Some(b"l".to_vec()));
    put(&g, b"keep", 1, b"me");
    let before = dump(&g);

    let bad_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "keys out of order",
            stream(&[(1, &k2, &put_v), (1, &k1, &put_v)]),
        ),
        (
            "duplicate key",
            stream(&[(1, &k1, &put_v), (1, &k1, &put_v)]),
        ),
        (
            "sections out of order",
            stream(&[(2, b"kx", b"l"), (1, &k1, &put_v)]),
        ),
        (
            "bad data key",
            stream(&[(1, b"not-an-encoded-key", &put_v)]),
        ),
        ("bad value tag", stream(&[(1, &k1, b"\x07x")])),
        ("bad aux key", stream(&[(2, b"xlock", b"l")])),
        ("unknown section", stream(&[(4, b"kx", b"l")])),
    ];
    for (what, bytes) in bad_cases {
        let err = g.install_snapshot(&mut bytes.as_slice()).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{what}: {err}");
        assert_eq!(dump(&g), before, "{what}");
    }
}

#[test]
fn half_finished_install_is_cleaned_up_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = open(tmp.path());
        let g = e.group(GroupId(1)).unwrap();
        put(&g, b"k", 1, b"v");
        // Simulate a crash after the new generation's partitions were created
        // and partly filled, before the pointer switch.
        let shared = &g.inner.shared;
        let gen = shared.alloc_gen().unwrap();
        let parts = shared.open_parts(GroupId(1), gen, true).unwrap();
        parts
            .data
            .insert(keys::encode_version(b"k", 1), keys::put_value(b"ghost"))
            .unwrap();
        e.sync().unwrap();
        assert_eq!(
            partition_dirs(tmp.path())
                .iter()
                .filter(|n| n.starts_with("g1_"))
                .count(),
            6
        );
    }
    let e = open(tmp.path());
    let dirs = partition_dirs(tmp.path());
    assert_eq!(
        dirs.iter().filter(|n| n.starts_with("g1_")).count(),
        3,
        "{dirs:?}"
    );
    let g = e.group(GroupId(1)).unwrap();
    assert_eq!(g.get_at(b"k", 1).unwrap(), Some(b"v".to_vec()));
    // New generations never reuse the abandoned number.
    let next = g.inner.shared.alloc_gen().unwrap();
    assert!(next > g.inner.current().gen + 1);
}

#[test]
fn many_groups_share_one_sync() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = open(tmp.path());
        for i in 0..20 {
            let g = e.group(GroupId(i)).unwrap();
            put(&g, b"k", 1, &i.to_be_bytes());
            e.raft_log(GroupId(i))
                .unwrap()
                .append(&[(1, vec![i as u8])])
                .unwrap();
        }
        e.sync().unwrap();
    }
    let e = open(tmp.path());
    for i in 0..20u64 {
        assert_eq!(
            e.group(GroupId(i)).unwrap().get_at(b"k", 1).unwrap(),
            Some(i.to_be_bytes().to_vec())
        );
        assert_eq!(
            e.raft_log(GroupId(i)).unwrap().last().unwrap(),
            Some((1, vec![i as u8]))
        );
    }
}

#[test]
fn concurrent_writers_readers_and_install() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open(tmp.path());
    let src = e.group(GroupId(1)).unwrap();
    fill_group(&src, 200);
    let bytes = export_bytes(&src);
    let g = e.group(GroupId(2)).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut failures = 0;
            for i in 0..2000u64 {
                let mut b = g.batch();
                b.put(format!("w{}", i % 50).as_bytes(), i, b"v");
                if b.commit().is_err() {
                    failures += 1;
                }
            }
            failures
        });
        let reader = s.spawn(|| {
            for _ in 0..200 {
                g.scan_at(b"", None, u64::MAX, 100, true).unwrap();
                g.get_at(b"key00001", 15).unwrap();
            }
        });
        for _ in 0..3 {
            g.install_snapshot(&mut bytes.as_slice()).unwrap();
        }
        reader.join().unwrap();
        // Only batches racing an install may fail.
        assert!(writer.join().unwrap() <= 3);
    });
    assert_eq!(g.get_meta(b"applied_index").unwrap(), Some(b"42".to_vec()));
}
