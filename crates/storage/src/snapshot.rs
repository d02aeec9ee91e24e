//! Group snapshots: the streamed, checksummed export format and its
//! validating import.
//!
//! ```text
//! stream  = header record* trailer
//! header  = magic "EKVSNAP\0" (8) | be32 format version (= 1) | be32 flags (= 0)
//! record  = section u8 | be32 key_len | be32 value_len | key | value | be32 crc32(section..value)
//!           section 1 = data, 2 = locks, 3 = meta; sections appear in that
//!           order, keys strictly ascending inside a section; key and value
//!           are the stored bytes (see keys.rs), so they are validated as such
//! trailer = 0xFF | be64 data count | be64 lock count | be64 meta count
//!         | be64 byte length of header + records | be32 crc32(all bytes before this field)
//! ```
//!
//! Export (driven by `view.rs`) streams each partition of a pinned,
//! point-in-time view in key order, holding a bounded number of records. Import validates every record as it arrives and bulk
//! loads each section into a fresh, empty partition (fjall `ingest`, which
//! writes fsynced segments directly and bypasses the journal); nothing is
//! visible until the caller switches the group's generation pointer.

use crate::engine::{fj, GroupParts};
use crate::keys::{self, MAX_ENGINE_KEY};
use crate::{Result, StorageError};
use fjall::PartitionHandle;
use std::io::{BufReader, BufWriter, Read, Write};

pub(crate) const MAGIC: &[u8; 8] = b"EKVSNAP\0";
pub(crate) const SNAPSHOT_FORMAT_VERSION: u32 = 1;
pub(crate) const SECTION_DATA: u8 = 1;
pub(crate) const SECTION_LOCKS: u8 = 2;
pub(crate) const SECTION_META: u8 = 3;
const SECTION_TRAILER: u8 = 0xFF;
/// Largest value a record may carry (a sanity bound; fjall allows 4 GiB).
const MAX_RECORD_VALUE: usize = 1 << 30;
const IO_BUFFER: usize = 256 * 1024;

/// A writer that counts and checksums everything written through it.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a snapshot stream: header on creation, then records in section
/// and key order, then the trailer on [`SnapshotWriter::finish`].
pub(crate) struct SnapshotWriter<W: Write> {
    out: HashingWriter<BufWriter<W>>,
    counts: [u64; 3],
}

impl<W: Write> SnapshotWriter<W> {
    pub(crate) fn new(w: W) -> Result<Self> {
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(IO_BUFFER, w),
            hasher: crc32fast::Hasher::new(),
            bytes: 0,
        };
        out.write_all(MAGIC)?;
        out.write_all(&SNAPSHOT_FORMAT_VERSION.to_be_bytes())?;
        out.write_all(&0u32.to_be_bytes())?;
        Ok(SnapshotWriter {
            out,
            counts: [0; 3],
        })
    }

    /// Appends one record; the caller keeps sections and keys in order.
    pub(crate) fn record(&mut self, section: u8, key: &[u8], value: &[u8]) -> Result<()> {
        debug_assert!((SECTION_DATA..=SECTION_META).contains(&section));
        write_record(&mut self.out, section, key, value)?;
        self.counts[usize::from(section - 1)] += 1;
        Ok(())
    }

    /// Writes the trailer and flushes; returns the stream's length in bytes.
    pub(crate) fn finish(mut self) -> Result<u64> {
        let body_len = self.out.bytes;
        self.out.write_all(&[SECTION_TRAILER])?;
        for c in self.counts {
            self.out.write_all(&c.to_be_bytes())?;
        }
        self.out.write_all(&body_len.to_be_bytes())?;
        let crc = self.out.hasher.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        self.out.flush()?;
        Ok(self.out.bytes)
    }
}

fn write_record(out: &mut impl Write, section: u8, key: &[u8], value: &[u8]) -> Result<()> {
    let klen = u32::try_from(key.len())
        .map_err(|_| StorageError::Corrupt("stored key longer than 4 GiB".into()))?;
    let vlen = u32::try_from(value.len())
        .map_err(|_| StorageError::Corrupt("stored value longer than 4 GiB".into()))?;
    let mut head = [0u8; 9];
    head[0] = section;
    head[1..5].copy_from_slice(&klen.to_be_bytes());
    head[5..9].copy_from_slice(&vlen.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(key);
    h.update(value);
    out.write_all(&head)?;
    out.write_all(key)?;
    out.write_all(value)?;
    out.write_all(&h.finalize().to_be_bytes())?;
    Ok(())
}

fn corrupt(msg: impl Into<String>) -> StorageError {
    StorageError::Corrupt(format!("snapshot stream: {}", msg.into()))
}

struct Record {
    section: u8,
    key: Vec<u8>,
    value: Vec<u8>,
}

struct Trailer {
    counts: [u64; 3],
    body_len: u64,
    crc: u32,
}

enum Item {
    Record(Record),
    Trailer(Trailer),
}

/// Reads and validates a snapshot stream record by record.
struct StreamReader<R: Read> {
    inner: R,
    hasher: crc32fast::Hasher,
    bytes: u64,
    /// The next item, read ahead to find section boundaries.
    pending: Option<Item>,
    last_section: u8,
    last_key: Vec<u8>,
    counts: [u64; 3],
}

impl<R: Read> StreamReader<R> {
    fn new(inner: R) -> Self {
        StreamReader {
            inner,
            hasher: crc32fast::Hasher::new(),
            bytes: 0,
            pending: None,
            last_section: SECTION_DATA,
            last_key: Vec::new(),
            counts: [0; 3],
        }
    }

    /// Reads exactly `buf.len()` bytes into the running checksum.
    fn read_hashed(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                corrupt(format!("truncated at byte {}", self.bytes))
            }
            _ => StorageError::Io(e),
        })?;
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Reads `len` bytes into `out` without trusting `len` for allocation.
    fn read_blob(&mut self, len: usize, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(out)
            .map_err(StorageError::Io)?;
        if got != len {
            return Err(corrupt(format!(
                "truncated at byte {}",
                self.bytes + got as u64
            )));
        }
        self.hasher.update(out);
        self.bytes += len as u64;
        Ok(())
    }

    fn read_header(&mut self) -> Result<()> {
        let mut head = [0u8; 16];
        self.read_hashed(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(corrupt("bad magic (not an Elastickv group snapshot)"));
        }
        let version = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(corrupt(format!(
                "snapshot format version {version}, this build reads version {SNAPSHOT_FORMAT_VERSION}"
            )));
        }
        Ok(())
    }

    fn read_item(&mut self) -> Result<Item> {
        let mut tag = [0u8; 1];
        self.read_hashed(&mut tag)?;
        if tag[0] == SECTION_TRAILER {
            let body_len = self.bytes - 1;
            let mut rest = [0u8; 32];
            self.read_hashed(&mut rest)?;
            let crc = self.hasher.clone().finalize();
            let mut crc_raw = [0u8; 4];
            self.inner
                .read_exact(&mut crc_raw)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => corrupt("truncated trailer"),
                    _ => StorageError::Io(e),
                })?;
            let u = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[i * 8..i * 8 + 8]);
                u64::from_be_bytes(b)
            };
            let trailer = Trailer {
                counts: [u(0), u(1), u(2)],
                body_len: u(3),
                crc: u32::from_be_bytes(crc_raw),
            };
            if trailer.body_len != body_len {
                return Err(corrupt(format!(
                    "trailer says {} bytes, stream had {body_len}",
                    trailer.body_len
                )));
            }
            if trailer.crc != crc {
                return Err(corrupt("stream checksum mismatch"));
            }
            return Ok(Item::Trailer(trailer));
        }

        let section = tag[0];
        if !(SECTION_DATA..=SECTION_META).contains(&section) {
            return Err(corrupt(format!(
                "unknown section {section} at byte {}",
                self.bytes - 1
            )));
        }
        let mut lens = [0u8; 8];
        self.read_hashed(&mut lens)?;
        let klen = u32::from_be_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let vlen = u32::from_be_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
        if klen == 0 || klen > MAX_ENGINE_KEY {
            return Err(corrupt(format!("bad key length {klen}")));
        }
        if vlen > MAX_RECORD_VALUE {
            return Err(corrupt(format!("bad value length {vlen}")));
        }
        let mut rec_hasher = crc32fast::Hasher::new();
        rec_hasher.update(&tag);
        rec_hasher.update(&lens);
        let mut key = Vec::new();
        let mut value = Vec::new();
        self.read_blob(klen, &mut key)?;
        self.read_blob(vlen, &mut value)?;
        rec_hasher.update(&key);
        rec_hasher.update(&value);
        let mut crc = [0u8; 4];
        self.read_hashed(&mut crc)?;
        if u32::from_be_bytes(crc) != rec_hasher.finalize() {
            return Err(corrupt(format!(
                "record checksum mismatch before byte {}",
                self.bytes
            )));
        }

        // Structural checks: section order, key order, stored-form validity.
        if section < self.last_section {
            return Err(corrupt("sections out of order"));
        }
        if section == self.last_section
            && self.counts[usize::from(section - 1)] > 0
            && key <= self.last_key
        {
            return Err(corrupt("keys out of order"));
        }
        match section {
            SECTION_DATA => {
                let (prefix, _) = keys::split_version_key(&key)?;
                keys::validate_encoded_user_key(prefix)?;
                keys::decode_value(&value)?;
            }
            _ => {
                keys::strip_aux(&key)?;
            }
        }
        self.last_section = section;
        self.last_key.clear();
        self.last_key.extend_from_slice(&key);
        self.counts[usize::from(section - 1)] += 1;
        Ok(Item::Record(Record {
            section,
            key,
            value,
        }))
    }

    /// The section of the next item (`SECTION_TRAILER` for the trailer).
    fn peek_section(&mut self) -> Result<u8> {
        if self.pending.is_none() {
            self.pending = Some(self.read_item()?);
        }
        Ok(match &self.pending {
            Some(Item::Record(r)) => r.section,
            _ => SECTION_TRAILER,
        })
    }

    /// The next record if it belongs to `section`.
    fn next_in(&mut self, section: u8) -> Result<Option<Record>> {
        if self.peek_section()? != section {
            return Ok(None);
        }
        match self.pending.take() {
            Some(Item::Record(r)) => Ok(Some(r)),
            other => {
                self.pending = other;
                Ok(None)
            }
        }
    }

    /// Checks the trailer against what was read, and that nothing follows it.
    fn finish(mut self) -> Result<()> {
        if self.peek_section()? != SECTION_TRAILER {
            return Err(corrupt("records after the meta section"));
        }
        let Some(Item::Trailer(t)) = self.pending.take() else {
            return Err(corrupt("missing trailer"));
        };
        if t.counts != self.counts {
            return Err(corrupt(format!(
                "trailer counts {:?} but stream had {:?}",
                t.counts, self.counts
            )));
        }
        let mut extra = [0u8; 1];
        loop {
            match self.inner.read(&mut extra) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(corrupt("bytes after the trailer")),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StorageError::Io(e)),
            }
        }
    }
}

/// Feeds one section's records to fjall's ingest, parking the first error.
struct SectionIter<'a, R: Read> {
    reader: &'a mut StreamReader<R>,
    section: u8,
    error: &'a mut Option<StorageError>,
}

impl<R: Read> Iterator for SectionIter<'_, R> {
    type Item = (fjall::Slice, fjall::Slice);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() {
            return None;
        }
        match self.reader.next_in(self.section) {
            Ok(Some(r)) => Some((r.key.into(), r.value.into())),
            Ok(None) => None,
            Err(e) => {
                *self.error = Some(e);
                None
            }
        }
    }
}

/// An import in progress: the header and the first item are validated by
/// [`Importer::start`] before any partition is created, so a stream that is
/// not a snapshot at all costs no disk work.
pub(crate) struct Importer<'r> {
    rd: StreamReader<BufReader<&'r mut dyn Read>>,
}

impl<'r> Importer<'r> {
    pub(crate) fn start(reader: &'r mut dyn Read) -> Result<Importer<'r>> {
        let mut rd = StreamReader::new(BufReader::with_capacity(IO_BUFFER, reader));
        rd.read_header()?;
        rd.peek_section()?;
        Ok(Importer { rd })
    }

    /// Imports the rest of the stream into the empty partitions of `parts`.
    /// On error the partitions hold a partial import and must be dropped.
    pub(crate) fn import_into(mut self, parts: &GroupParts) -> Result<()> {
        let targets: [(u8, &PartitionHandle); 3] = [
            (SECTION_DATA, &parts.data),
            (SECTION_LOCKS, &parts.locks),
            (SECTION_META, &parts.meta),
        ];
        for (section, part) in targets {
            if self.rd.peek_section()? != section {
                continue;
            }
            let mut error = None;
            // Keys reach ingest strictly ascending (validated by the reader),
            // as its contract requires; a stream error ends the iterator early.
            part.ingest(SectionIter {
                reader: &mut self.rd,
                section,
                error: &mut error,
            })
            .map_err(fj)?;
            if let Some(e) = error {
                return Err(e);
            }
            crate::engine::crash_point("import:after_section");
        }
        self.rd.finish()
    }
}
