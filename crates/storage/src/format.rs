//! The data directory's `FORMAT` file (on-disk format version) and `LOCK`
//! file (one process per directory).
//!
//! Layout of a data directory:
//!
//! ```text
//! <dir>/FORMAT   "elastickv-data-format 1\n", written (and fsynced) when the directory is created
//! <dir>/LOCK     flock(2)ed exclusively while an Engine has the directory open
//! <dir>/fjall/   the fjall keyspace (journal + partitions)
//! ```

use crate::{Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

/// The on-disk data format this build reads and writes.
pub const DATA_FORMAT_VERSION: u32 = 1;
/// Name of the format file inside the data directory.
pub const FORMAT_FILE: &str = "FORMAT";
pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const FJALL_DIR: &str = "fjall";
const FORMAT_PREFIX: &str = "elastickv-data-format ";

const RESYNC_HINT: &str = "move the directory away and let the node resync from its peers";

/// Checks the format of `dir`, creating the directory and its FORMAT file if
/// the directory does not exist or is empty.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let format_path = dir.join(FORMAT_FILE);
    let content = match fs::read(&format_path) {
        Ok(content) => content,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if fs::read_dir(dir)?.next().is_some() {
                return Err(StorageError::IncompatibleFormat {
                    dir: dir.display().to_string(),
                    found: "none (the directory is not empty but has no FORMAT file)".into(),
                    expected: DATA_FORMAT_VERSION,
                    hint: format!(
                        "this directory was not written by Elastickv or lost its FORMAT file; \
                         point the node at an empty or Elastickv data directory, or {RESYNC_HINT}"
                    ),
                });
            }
            return write_format_file(dir);
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&content);
    let text = text.trim();
    let found = text
        .strip_prefix(FORMAT_PREFIX)
        .and_then(|v| v.trim().parse::<u32>().ok());
    match found {
        Some(v) if v == DATA_FORMAT_VERSION => Ok(()),
        Some(v) => Err(StorageError::IncompatibleFormat {
            dir: dir.display().to_string(),
            found: v.to_string(),
            expected: DATA_FORMAT_VERSION,
            hint: format!(
                "this directory was written by Elastickv data format {v}; run a version that \
                 reads it, or {RESYNC_HINT}"
            ),
        }),
        None => {
            let shown: String = text.chars().take(64).collect();
            Err(StorageError::IncompatibleFormat {
                dir: dir.display().to_string(),
                found: format!("unreadable FORMAT file {shown:?}"),
                expected: DATA_FORMAT_VERSION,
                hint: format!("the FORMAT file is not Elastickv's; {RESYNC_HINT}"),
            })
        }
    }
}

fn write_format_file(dir: &Path) -> Result<()> {
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{FORMAT_PREFIX}{DATA_FORMAT_VERSION}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(FORMAT_FILE))?;
    sync_dir(dir)
}

/// fsyncs a directory so that entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An exclusive advisory lock on `<dir>/LOCK`, released when dropped.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        lock_exclusive(&file).map_err(|e| {
            if e.kind() == ErrorKind::WouldBlock {
                StorageError::Engine(format!(
                    "data directory {} is in use by another Elastickv engine (its LOCK file is \
                     locked); stop that process first",
                    dir.display()
                ))
            } else {
                StorageError::Io(e)
            }
        })?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor number, which `file` keeps open
    // for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_dir_gets_format_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        prepare_dir(&dir).unwrap();
        let text = fs::read_to_string(dir.join(FORMAT_FILE)).unwrap();
        assert_eq!(text, "elastickv-data-format 1\n");
        // Idempotent.
        prepare_dir(&dir).unwrap();
    }

    #[test]
    fn refuses_foreign_or_other_version() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("something"), b"x").unwrap();
        let err = prepare_dir(tmp.path()).unwrap_err();
        assert!(
            matches!(err, StorageError::IncompatibleFormat { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no FORMAT file"), "{err}");

        fs::write(tmp.path().join(FORMAT_FILE), b"elastickv-data-format 7\n").unwrap();
        let err = prepare_dir(tmp.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("written by Elastickv data format 7"), "{msg}");
        assert!(msg.contains("resync from its peers"), "{msg}");
        match err {
            StorageError::IncompatibleFormat {
                found, expected, ..
            } => {
                assert_eq!(found, "7");
                assert_eq!(expected, DATA_FORMAT_VERSION);
            }
            other => panic!("{other}"),
        }

        fs::write(tmp.path().join(FORMAT_FILE), b"garbage").unwrap();
        assert!(matches!(
            prepare_dir(tmp.path()).unwrap_err(),
            StorageError::IncompatibleFormat { .. }
        ));
    }

    #[test]
    fn lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(tmp.path()).unwrap();
        let err = DirLock::acquire(tmp.path())
            .err()
            .expect("second lock must fail");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        DirLock::acquire(tmp.path()).unwrap();
    }
}
