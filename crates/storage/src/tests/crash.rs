//! Crash tests: the test binary re-runs itself as a child process (test
//! `tests::crash::child`) that works on a data directory and aborts at a
//! named crash point; the parent then reopens the directory and checks what
//! survived. This exercises fjall's journal recovery and our generation
//! switch after a real process death (not a power loss: the OS page cache
//! survives, so unsynced writes handed to the OS survive too).

use super::{dump, open, partition_dirs, put};
use crate::{GroupId, GroupStore};
use std::path::Path;
use std::process::Command;

const DIR_ENV: &str = "EKV_CRASH_CHILD_DIR";
const SCENARIO_ENV: &str = "EKV_CRASH_SCENARIO";

fn old_state(g: &GroupStore) {
    put(g, b"old-key", 1, b"old");
    let mut b = g.batch();
    b.put_lock(b"old-key", b"old-lock");
    b.put_meta(b"applied_index", b"1");
    b.commit().unwrap();
}

fn new_state(g: &GroupStore) {
    let mut b = g.batch();
    for i in 0..500u32 {
        b.put(format!("new{i:04}").as_bytes(), 2, b"new");
    }
    b.put_lock(b"new-key", b"new-lock");
    b.put_meta(b"applied_index", b"2");
    b.commit().unwrap();
}

/// The child side; a no-op when the test suite runs normally.
#[test]
fn child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let e = open(Path::new(&dir));
    match std::env::var(SCENARIO_ENV).as_deref() {
        Ok("install") => {
            let target = e.group(GroupId(1)).unwrap();
            old_state(&target);
            let source = e.group(GroupId(2)).unwrap();
            new_state(&source);
            e.sync().unwrap();
            let mut bytes = Vec::new();
            source.read_view().export(&mut bytes).unwrap();
            target.install_snapshot(&mut bytes.as_slice()).unwrap();
        }
        Ok("durability") => {
            let g = e.group(GroupId(1)).unwrap();
            let log = e.raft_log(GroupId(1)).unwrap();
            put(&g, b"synced", 1, b"yes");
            log.append(&[(1, b"entry1".to_vec())]).unwrap();
            log.put_meta("vote", b"v1").unwrap();
            e.sync().unwrap();
            put(&g, b"unsynced", 1, b"handed to the OS");
            log.append(&[(2, b"entry2".to_vec())]).unwrap();
            std::process::abort();
        }
        other => panic!("unknown scenario {other:?}"),
    }
    // Reaching this line means the crash point was never hit.
    std::process::exit(3);
}

/// Runs the child and checks that it died by abort (not by finishing).
fn run_child(dir: &Path, scenario: &str, crash_at: Option<&str>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "tests::crash::child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(DIR_ENV, dir)
    .env(SCENARIO_ENV, scenario);
    if let Some(p) = crash_at {
        cmd.env("EKV_CRASH_AT", p);
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success() && out.status.code() != Some(3),
        "child should have crashed at {crash_at:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // A test failure (exit code 101) is not a crash either.
    assert_ne!(
        out.status.code(),
        Some(101),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn crash_during_install_leaves_old_or_new_state() {
    // Expected state per crash point: before the pointer switch is durable
    // the old state must survive, after it the new one.
    for (point, expect_new) in [
        ("import:after_section", false),
        ("install:after_import", false),
        ("install:after_switch", true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        run_child(tmp.path(), "install", Some(point));

        // Reference states, built the same way in a scratch engine.
        let ref_dir = tempfile::tempdir().unwrap();
        let r = open(ref_dir.path());
        let (ro, rn) = (r.group(GroupId(1)).unwrap(), r.group(GroupId(2)).unwrap());
        old_state(&ro);
        new_state(&rn);
        let expected = if expect_new { dump(&rn) } else { dump(&ro) };

        let e = open(tmp.path());
        let g = e.group(GroupId(1)).unwrap();
        assert_eq!(dump(&g), expected, "crash at {point}");
        let dirs = partition_dirs(tmp.path());
        assert_eq!(
            dirs.iter().filter(|n| n.starts_with("g1_")).count(),
            3,
            "crash at {point}: stale partitions left: {dirs:?}"
        );
        // The group keeps working after recovery.
        put(&g, b"after", 3, b"x");
        assert_eq!(g.get_at(b"after", 3).unwrap(), Some(b"x".to_vec()));
    }
}

#[test]
fn synced_writes_survive_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    run_child(tmp.path(), "durability", None);
    let e = open(tmp.path());
    let g = e.group(GroupId(1)).unwrap();
    let log = e.raft_log(GroupId(1)).unwrap();
    assert_eq!(g.get_at(b"synced", 1).unwrap(), Some(b"yes".to_vec()));
    assert_eq!(log.get_meta("vote").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(log.range(1, 2).unwrap(), vec![(1, b"entry1".to_vec())]);
    // Written after the last sync: survives a process crash because each
    // batch is handed to the OS (not a guarantee under power loss).
    assert_eq!(
        g.get_at(b"unsynced", 1).unwrap(),
        Some(b"handed to the OS".to_vec())
    );
    assert_eq!(log.last().unwrap(), Some((2, b"entry2".to_vec())));
}
