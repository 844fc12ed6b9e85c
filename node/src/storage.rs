//! Durable storage of an actor's `Storage` value.
//!
//! Every `Save` of the core carries the *whole* durable value (the model's notion of "what
//! survives a crash"). The store writes it as an append-only log of checksummed records:
//! a *full* record holds a whole value, a *change* record what changed since the record
//! before it ([`Incremental::delta`]: for a replica, per partition the changed keys, dedup
//! entries and log entries). So a save costs one append of what changed plus one
//! `fdatasync`, not a rewrite of the partition's whole key-value map.
//!
//! ```text
//! file    = "PETRELS4" record*          ("PETRELS" + format version)
//! record  = [u32 BE magic "PTRL"][u32 BE len][u32 BE crc32(len ‖ bytes)][bytes]
//! bytes   = 0x00 postcard(value)  |  0x01 postcard(change)
//! ```
//!
//! Why this and not redb/fjall: a save is one `write` + one `fdatasync` of an append (the
//! cheapest durable operation a disk offers; ~2-3 ms here), there is no read path besides
//! recovery, and no background threads. Measured by `cargo bench -p petrel-node --bench
//! storage` (numbers in node/README.md). A batch of saves (one event loop turn, see
//! `runtime.rs`) costs one fsync: only its last value is written.
//!
//! Recovery (`open`): records are scanned from the start; the value is the last full
//! record with the change records after it applied in order. A record that fails its
//! checksum or is cut short ends the valid prefix:
//! * if no valid record follows it and it is *incomplete* — fewer bytes than its header
//!   announces, a prefix of a header, or zeros (what a filesystem shows for an append that
//!   never reached the disk) — it is a torn tail (a crash during an append, before the
//!   `fdatasync` returned, so nothing was acted on): the file is truncated there, with a
//!   warning, and the value is what the records before it make;
//! * if no valid record follows it but it is *complete* (its whole length is there) and
//!   fails its checksum, or its header is garbage, it is damage to a record that was
//!   fsynced and may have been acted on (a meta server's ballot, a replica's ACK): `open`
//!   refuses to start ([`StorageError::CorruptTail`]) rather than roll back a decision;
//! * if a valid record follows (corruption in the middle, e.g. a flipped bit) and a full
//!   record comes after the corrupt one, that newest chain is used, with a warning, and the
//!   file is compacted at once;
//! * if only change records follow it, they cannot be applied without the lost one, and
//!   going back to the value before it would make the node forget what it acknowledged:
//!   `open` refuses to start ([`StorageError::BrokenChain`]).
//!
//! A record whose checksum is right but whose bytes do not decode (or whose change does not
//! apply) is *not* truncated: that is a format mismatch (e.g. a binary of another version),
//! and `open` fails rather than silently dropping durable state.
//!
//! Compaction: once the change records since the last full one outweigh
//! `max(compact_min_bytes, that full record)`, or the file is past `max(compact_min_bytes,
//! 8 × a full record)`, the value is written as one full record to a new file, fsynced,
//! renamed over the log, and the directory is fsynced (so the rename itself is durable).
//! Recovery thus replays a bounded number of change bytes.
use crate::delta::Incremental;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// "PETRELS" and the format version. 4: format 3 with the core's authorization and
/// identity fields (a follower table's source, lives declared dead); 3: full and change
/// records; 2 was full records of key-value partitions; 1 one register per partition.
/// Another version is refused by name.
const FILE_MAGIC: &[u8; 8] = b"PETRELS4";
const FULL: u8 = 0;
const CHANGE: u8 = 1;
const MAGIC_STEM: &[u8; 7] = b"PETRELS";
const RECORD_MAGIC: [u8; 4] = *b"PTRL";
const RECORD_HEADER: usize = 12;
/// A snapshot larger than this is refused (and a length field beyond it is corruption).
pub const MAX_RECORD: usize = 256 << 20;
const LOG_NAME: &str = "storage.log";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Petrel storage file (bad header)")]
    NotAStore { path: PathBuf },
    #[error("{path} was written in storage format {found} (this petrel reads format {expected}); refusing to start: run the petrel version that wrote it. {KEEP_THE_FILE}")]
    OtherFormat {
        path: PathBuf,
        found: String,
        expected: char,
    },
    #[error("{path}: record at offset {offset} has a valid checksum but does not decode ({reason}); written by an incompatible version? refusing to start")]
    Undecodable {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("cannot encode the storage value: {0}")]
    Encode(String),
    #[error("storage value of {0} bytes exceeds the record limit")]
    TooLarge(usize),
    #[error("{path}: the record at offset {offset} is corrupt and the change records after it depend on it; refusing to start with an older state. {KEEP_THE_FILE}")]
    BrokenChain { path: PathBuf, offset: u64 },
    #[error("{path}: the last record (offset {offset}, {bytes} bytes) is complete but {what}: this is damage to a saved decision, not a torn write; refusing to start rather than roll back to the record before it. {KEEP_THE_FILE}")]
    CorruptTail {
        path: PathBuf,
        offset: u64,
        bytes: u64,
        what: &'static str,
    },
}

/// What every "refusing to start" error tells the operator. Not "move it away": a node
/// started on an empty directory today comes back as the same member and life, claiming
/// data it no longer has (issue #11, item 2), so the advice is to keep the evidence.
const KEEP_THE_FILE: &str = "Do not delete or move the file: it holds this replica's copy of the data. Keep the directory for inspection and restore it from a copy of this node's data; only if that is impossible, empty the data directory: the node then joins as a new member (a new life that holds nothing and learns everything before it serves)";

/// Why the bytes at the end of the log are not a valid record: `None` if they are an
/// incomplete append (safe to cut: its fdatasync never returned, so nothing was acted on),
/// else what is wrong with a record that was complete.
fn damaged_tail(tail: &[u8]) -> Option<&'static str> {
    // A filesystem that extended the file before the data reached the disk shows zeros;
    // a record always starts with its magic, so zeros are never a complete record.
    if tail.iter().all(|&b| b == 0) {
        return None;
    }
    let magic_len = tail.len().min(RECORD_MAGIC.len());
    if tail[..magic_len] != RECORD_MAGIC[..magic_len] {
        return Some("its header is not a record header");
    }
    if tail.len() < RECORD_HEADER {
        return None; // a prefix of a header
    }
    let len = u32::from_be_bytes([tail[4], tail[5], tail[6], tail[7]]) as usize;
    if len > MAX_RECORD {
        return Some("its length field is beyond the record limit");
    }
    if tail.len() < RECORD_HEADER + len {
        return None; // cut short: the append did not finish
    }
    Some("fails its checksum")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Compact when the change records since the last full one are larger than this and
    /// than that full record, or the file than this and than 8 × a full record.
    pub compact_min_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            compact_min_bytes: 4 << 20,
        }
    }
}

/// What `open` found, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Change records applied after the last full one.
    pub changes: usize,
    /// Bytes of a torn tail cut off.
    pub truncated_bytes: u64,
    /// Corrupt records skipped in the middle of the file.
    pub skipped_corrupt: usize,
}

/// An append-only log of full and change records in one directory.
pub struct Store<T> {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    /// The last saved value: the next change record is taken against it.
    last: Option<T>,
    /// Size of the last full record, and of the change records written since.
    full_len: u64,
    since_full: u64,
    opts: StoreOptions,
    /// Durable saves so far (for metrics and tests).
    pub saves: u64,
}

fn encode_record(bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    if bytes.len() > MAX_RECORD {
        return Err(StorageError::TooLarge(bytes.len()));
    }
    let len = (bytes.len() as u32).to_be_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(bytes);
    let mut rec = Vec::with_capacity(RECORD_HEADER + bytes.len());
    rec.extend_from_slice(&RECORD_MAGIC);
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&h.finalize().to_be_bytes());
    rec.extend_from_slice(bytes);
    Ok(rec)
}

/// The record at `off`, if it is complete and its checksum holds: (payload, end offset).
fn record_at(buf: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let header = buf.get(off..off.checked_add(RECORD_HEADER)?)?;
    if header[..4] != RECORD_MAGIC {
        return None;
    }
    let len_bytes: [u8; 4] = header[4..8].try_into().ok()?;
    let crc: [u8; 4] = header[8..12].try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let start = off + RECORD_HEADER;
    let payload = buf.get(start..start.checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    (h.finalize() == u32::from_be_bytes(crc)).then_some((payload, start + len))
}

/// The next offset after `from` where a valid record starts.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(RECORD_HEADER - 1))
        .filter(|&i| buf[i..].starts_with(&RECORD_MAGIC))
        .find(|&i| record_at(buf, i).is_some())
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    // On Unix a directory can be opened and fsynced so that renames and creations in it
    // are durable. Elsewhere this is best effort.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn tagged(tag: u8, value: &impl serde::Serialize) -> Result<Vec<u8>, StorageError> {
    let mut bytes = vec![tag];
    postcard::to_io(value, &mut bytes).map_err(|e| StorageError::Encode(e.to_string()))?;
    Ok(bytes)
}

impl<T: Incremental> Store<T> {
    /// Open (or create) the store in `dir` and return the last saved value, if any.
    pub fn open(
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<(Store<T>, Option<T>, Recovery), StorageError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOG_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io(&path))?;
        let mut rec = Recovery::default();
        let empty = |file, len| Store {
            dir: dir.to_path_buf(),
            path: path.clone(),
            file,
            len,
            last: None,
            full_len: 0,
            since_full: 0,
            opts: opts.clone(),
            saves: 0,
        };
        if buf.len() < FILE_MAGIC.len() {
            if !FILE_MAGIC.starts_with(&buf) {
                return Err(StorageError::NotAStore { path: path.clone() });
            }
            // New, or a crash while the header was written.
            if !buf.is_empty() {
                tracing::warn!(path = %path.display(), bytes = buf.len(), "storage file has a torn header; starting empty");
            }
            file.set_len(0).map_err(io(&path))?;
            file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
            file.write_all(FILE_MAGIC).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            sync_dir(dir)?;
            return Ok((empty(file, FILE_MAGIC.len() as u64), None, rec));
        }
        if &buf[..FILE_MAGIC.len()] != FILE_MAGIC {
            if buf.starts_with(MAGIC_STEM) {
                let found =
                    String::from_utf8_lossy(&buf[MAGIC_STEM.len()..FILE_MAGIC.len()]).into_owned();
                return Err(StorageError::OtherFormat {
                    path: path.clone(),
                    found,
                    expected: char::from(FILE_MAGIC[MAGIC_STEM.len()]),
                });
            }
            return Err(StorageError::NotAStore { path: path.clone() });
        }
        // Valid records (offset, bytes) in file order, and where corrupt ones were skipped.
        let mut records: Vec<(usize, &[u8])> = Vec::new();
        let mut corrupt: Vec<usize> = Vec::new();
        let mut off = FILE_MAGIC.len();
        let mut end = off;
        while off < buf.len() {
            match record_at(&buf, off) {
                Some((payload, next)) => {
                    records.push((off, payload));
                    off = next;
                    end = next;
                }
                None => match resync(&buf, off + 1) {
                    Some(next) => {
                        corrupt.push(off);
                        off = next;
                    }
                    None => {
                        if let Some(what) = damaged_tail(&buf[off..]) {
                            return Err(StorageError::CorruptTail {
                                path: path.clone(),
                                offset: off as u64,
                                bytes: (buf.len() - off) as u64,
                                what,
                            });
                        }
                        rec.truncated_bytes = (buf.len() - off) as u64;
                        tracing::warn!(path = %path.display(), offset = off, bytes = rec.truncated_bytes, "incomplete final record (a torn append) of the storage log truncated");
                        break;
                    }
                },
            }
        }
        rec.records = records.len();
        let undecodable = |at: usize, reason: String| StorageError::Undecodable {
            path: path.clone(),
            offset: at as u64,
            reason,
        };
        // The newest chain: the last full record and the change records after it.
        let start = records.iter().rposition(|(_, b)| b.first() == Some(&FULL));
        let chain_start = start.map_or(0, |i| records[i].0);
        if let Some(&bad) = corrupt.iter().find(|&&c| c > chain_start) {
            return Err(StorageError::BrokenChain {
                path: path.clone(),
                offset: bad as u64,
            });
        }
        if let (None, Some(&(at, _))) = (start, records.first()) {
            return Err(undecodable(
                at,
                "change records without a full record before them".into(),
            ));
        }
        for c in &corrupt {
            tracing::warn!(path = %path.display(), offset = c, "corrupt storage record in the middle of the log skipped; a newer full record follows");
        }
        rec.skipped_corrupt = corrupt.len();
        let (mut value, mut full_len, mut since_full) = (None, 0, 0);
        if let Some(i) = start {
            let (at, bytes) = records[i];
            let mut v: T =
                postcard::from_bytes(&bytes[1..]).map_err(|e| undecodable(at, e.to_string()))?;
            full_len = (bytes.len() + RECORD_HEADER) as u64;
            for &(at, bytes) in &records[i + 1..] {
                if bytes.first() != Some(&CHANGE) {
                    return Err(undecodable(
                        at,
                        format!("unknown record kind {:?}", bytes.first()),
                    ));
                }
                let d: T::Delta = postcard::from_bytes(&bytes[1..])
                    .map_err(|e| undecodable(at, e.to_string()))?;
                v.apply(d).map_err(|e| undecodable(at, e))?;
                since_full += (bytes.len() + RECORD_HEADER) as u64;
                rec.changes += 1;
            }
            value = Some(v);
        }
        if rec.truncated_bytes > 0 {
            file.set_len(end as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        file.seek(SeekFrom::Start(end as u64)).map_err(io(&path))?;
        let mut store = empty(file, end as u64);
        store.full_len = full_len;
        store.since_full = since_full;
        store.last = value.clone();
        if rec.skipped_corrupt > 0 {
            if let Some(v) = &value {
                store.compact(&tagged(FULL, v)?)?;
            }
        }
        Ok((store, value, rec))
    }

    /// Make `value` the durable value: append what changed since the last save (or the
    /// whole value) and fdatasync before returning.
    /// Takes the value (it becomes the base of the next change: no copy of a big map).
    pub fn save(&mut self, value: T) -> Result<(), StorageError> {
        let change = match self.last.as_ref().and_then(|old| T::delta(old, &value)) {
            Some(d) => Some(encode_record(&tagged(CHANGE, &d)?)?),
            None => None,
        };
        match change {
            Some(rec)
                if self.since_full + rec.len() as u64
                    <= self.opts.compact_min_bytes.max(self.full_len) =>
            {
                self.append(&rec)?;
                self.since_full += rec.len() as u64;
            }
            // The chain is long enough: start a new file with the whole value.
            Some(_) => self.compact(&tagged(FULL, &value)?)?,
            None => {
                let bytes = tagged(FULL, &value)?;
                let rec = encode_record(&bytes)?;
                let bound = self.opts.compact_min_bytes.max(8 * rec.len() as u64);
                if self.len + rec.len() as u64 > bound && self.len > FILE_MAGIC.len() as u64 {
                    self.compact(&bytes)?;
                } else {
                    self.append(&rec)?;
                    self.full_len = rec.len() as u64;
                    self.since_full = 0;
                }
            }
        }
        self.last = Some(value);
        self.saves += 1;
        Ok(())
    }

    fn append(&mut self, rec: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(rec).map_err(io(&self.path))?;
        // fdatasync also persists the new file length (needed to read the data back).
        self.file.sync_data().map_err(io(&self.path))?;
        self.len += rec.len() as u64;
        Ok(())
    }

    /// Replace the log by one holding only the full record `payload`: write, fsync,
    /// rename, fsync dir.
    fn compact(&mut self, payload: &[u8]) -> Result<(), StorageError> {
        let tmp = self.dir.join(format!("{LOG_NAME}.compact"));
        let rec = encode_record(payload)?;
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(FILE_MAGIC).map_err(io(&tmp))?;
            f.write_all(&rec).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        sync_dir(&self.dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.len = (FILE_MAGIC.len() + rec.len()) as u64;
        file.seek(SeekFrom::Start(self.len))
            .map_err(io(&self.path))?;
        self.file = file;
        self.full_len = rec.len() as u64;
        self.since_full = 0;
        tracing::debug!(path = %self.path.display(), bytes = self.len, "storage log compacted");
        Ok(())
    }

    /// Current size of the log file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type V = BTreeMap<u32, String>;

    /// Test rule: a value that shrinks is saved whole (so full records also appear in
    /// the middle of a file); otherwise the change of the map.
    impl Incremental for V {
        type Delta = crate::delta::MapDelta<u32, String>;
        fn delta(old: &V, new: &V) -> Option<Self::Delta> {
            (new.len() >= old.len()).then(|| crate::delta::MapDelta::between(old, new))
        }
        fn apply(&mut self, d: Self::Delta) -> Result<(), String> {
            d.apply_to(self);
            Ok(())
        }
    }

    fn value(n: u32) -> V {
        (0..n).map(|i| (i, format!("entry {i}"))).collect()
    }

    fn open(dir: &Path) -> (Store<V>, Option<V>, Recovery) {
        Store::<V>::open(dir, StoreOptions::default()).expect("open")
    }

    #[test]
    fn restart_returns_last_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, v, _) = open(dir.path());
        assert_eq!(v, None);
        for n in 1..=5 {
            s.save(value(n)).expect("save");
        }
        drop(s);
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(5)));
        // One full record, then only what changed.
        assert_eq!(
            rec,
            Recovery {
                records: 5,
                changes: 4,
                ..Default::default()
            }
        );
    }

    #[test]
    fn empty_and_torn_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(LOG_NAME), b"").expect("write");
        let (mut s, v, _) = open(dir.path());
        assert_eq!(v, None);
        s.save(value(1)).expect("save");
        drop(s);
        assert_eq!(open(dir.path()).1, Some(value(1)));
        fs::write(dir.path().join(LOG_NAME), b"PETR").expect("write");
        assert_eq!(open(dir.path()).1, None);
        fs::write(dir.path().join(LOG_NAME), b"NOTPETRELAT ALL").expect("write");
        assert!(matches!(
            Store::<V>::open(dir.path(), StoreOptions::default()),
            Err(StorageError::NotAStore { .. })
        ));
    }

    #[test]
    fn a_file_of_another_format_version_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_NAME);
        let mut bytes = b"PETRELS1".to_vec();
        bytes.extend(encode_record(&postcard::to_stdvec(&value(1)).expect("enc")).expect("rec"));
        fs::write(&path, &bytes).expect("write");
        let err = Store::<V>::open(dir.path(), StoreOptions::default())
            .err()
            .expect("refused");
        assert!(matches!(err, StorageError::OtherFormat { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("storage format 1 (this petrel reads format 4)"),
            "{err}"
        );
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(value(2)).expect("save");
        let before = s.file_len();
        s.save(value(3)).expect("save");
        let full = s.file_len();
        drop(s);
        let path = dir.path().join(LOG_NAME);
        // Cut the last (change) record at every possible point: the value before it wins.
        let bytes = fs::read(&path).expect("read");
        let last_len = (full - before) as usize;
        for cut in 1..last_len {
            fs::write(&path, &bytes[..full as usize - cut]).expect("write");
            let (s, v, rec) = open(dir.path());
            assert_eq!(v, Some(value(2)), "cut {cut}");
            assert_eq!(rec.truncated_bytes as usize, last_len - cut);
            assert_eq!(s.file_len() as usize, full as usize - last_len);
            assert_eq!(fs::metadata(&path).expect("meta").len(), s.file_len());
        }
        // After truncation, saving again works and wins.
        let (mut s, _, _) = open(dir.path());
        s.save(value(9)).expect("save");
        drop(s);
        assert_eq!(open(dir.path()).1, Some(value(9)));
    }

    #[test]
    fn a_complete_final_record_that_fails_its_checksum_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(value(2)).expect("save");
        let last = s.file_len();
        s.save(value(3)).expect("save");
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let good = fs::read(&path).expect("read");
        let n = good.len();
        // A flipped bit in the payload, in the checksum, and in the magic of the last
        // record: each is damage to a saved decision, never a torn tail.
        for (at, what) in [
            (n - 3, "fails its checksum"),
            (last as usize + 9, "fails its checksum"),
            (last as usize, "not a record header"),
        ] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x10;
            fs::write(&path, &bytes).expect("write");
            let err = Store::<V>::open(dir.path(), StoreOptions::default())
                .err()
                .expect("refused");
            assert!(
                matches!(err, StorageError::CorruptTail { offset, .. } if offset == last),
                "{err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(what)
                    && msg.contains(&format!("offset {last}"))
                    && msg.contains("storage.log"),
                "{msg}"
            );
            assert!(msg.contains("Do not delete or move the file"), "{msg}");
            assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
        }
        // An append the filesystem extended with zeros (never written): cut, as torn.
        let mut bytes = good.clone();
        bytes.extend([0u8; 40]);
        fs::write(&path, &bytes).expect("write");
        let (_, v, rec) = open(dir.path());
        assert_eq!((v, rec.truncated_bytes), (Some(value(3)), 40));
    }

    #[test]
    fn flipped_byte_in_the_middle_keeps_the_newest_full_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(value(2)).expect("save");
        s.save(value(3)).expect("save");
        s.save(value(1)).expect("save"); // a shrink: a full record
        s.save(value(4)).expect("save");
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let mut bytes = fs::read(&path).expect("read");
        // A byte inside the first record's payload: the chain from the later full record
        // does not need it.
        bytes[FILE_MAGIC.len() + RECORD_HEADER + 2] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(4)));
        assert_eq!((rec.skipped_corrupt, rec.changes), (1, 1));
        // The file was compacted to one full record of the newest value.
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(4)));
        assert_eq!(
            rec,
            Recovery {
                records: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_corrupt_record_that_later_changes_depend_on_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        for n in [2, 3, 4, 5] {
            s.save(value(n)).expect("save");
        }
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let mut bytes = fs::read(&path).expect("read");
        // Inside the second record (the first change): value(3) would be lost, and with it
        // value(4) and value(5); value(2) would be a step back.
        let first = record_at(&bytes, FILE_MAGIC.len()).expect("first record").1;
        bytes[first + RECORD_HEADER + 1] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let err = Store::<V>::open(dir.path(), StoreOptions::default())
            .err()
            .expect("refused");
        assert!(
            matches!(err, StorageError::BrokenChain { offset, .. } if offset == first as u64),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("refusing to start with an older state"),
            "{err}"
        );
        assert!(!err.to_string().contains("move it away"), "{err}");
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
    }

    #[test]
    fn a_corrupt_first_full_record_with_changes_after_it_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(value(2)).expect("save");
        s.save(value(3)).expect("save");
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let mut bytes = fs::read(&path).expect("read");
        bytes[FILE_MAGIC.len() + RECORD_HEADER + 2] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let err = Store::<V>::open(dir.path(), StoreOptions::default())
            .err()
            .expect("refused");
        assert!(
            matches!(err, StorageError::BrokenChain { offset: 8, .. }),
            "{err}"
        );
    }

    #[test]
    fn many_changes_recover_the_last_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        let mut v = V::new();
        for i in 0..500u32 {
            v.insert(i % 97, format!("value {i}"));
            s.save(v.clone()).expect("save");
        }
        // 500 saves of a ~97-entry map, written as changes: far smaller than 500 maps.
        let whole = postcard::to_stdvec(&v).expect("enc").len() as u64;
        assert!(
            s.file_len() < 500 * whole / 10,
            "{} bytes for 500 saves of {whole}",
            s.file_len()
        );
        drop(s);
        let (_, got, rec) = open(dir.path());
        assert_eq!(got, Some(v));
        assert_eq!(rec.changes, 499);
    }

    #[test]
    fn undecodable_record_is_an_error_not_a_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_NAME);
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend(encode_record(&[0xff, 0xff, 0xff]).expect("rec"));
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            Store::<V>::open(dir.path(), StoreOptions::default()),
            Err(StorageError::Undecodable { .. })
        ));
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
        // A full record that does not decode.
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend(encode_record(&[FULL, 0xff, 0xff, 0xff]).expect("rec"));
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            Store::<V>::open(dir.path(), StoreOptions::default()),
            Err(StorageError::Undecodable { .. })
        ));
    }

    #[test]
    fn compaction_bounds_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StoreOptions {
            compact_min_bytes: 4096,
        };
        let (mut s, _, _) = Store::<V>::open(dir.path(), opts.clone()).expect("open");
        for n in 0..200 {
            s.save(value(n % 20)).expect("save");
            assert!(s.file_len() <= 4096 + 1024, "len {}", s.file_len());
        }
        s.save(value(7)).expect("save");
        drop(s);
        let (_, v, _) = Store::<V>::open(dir.path(), opts).expect("open");
        assert_eq!(v, Some(value(7)));
        assert!(!dir.path().join(format!("{LOG_NAME}.compact")).exists());
    }
}
