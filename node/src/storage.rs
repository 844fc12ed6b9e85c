//! Durable storage of an actor's `Storage` value.
//!
//! Every `Save` of the core carries the *whole* durable value (the model's notion of "what
//! survives a crash"), so the store keeps snapshots, not deltas: an append-only log of
//! checksummed records where the last valid record wins.
//!
//! ```text
//! file   = "PETRELS2" record*          ("PETRELS" + format version)
//! record = [u32 BE magic "PTRL"][u32 BE len][u32 BE crc32(len ‖ bytes)][bytes = postcard(value)]
//! ```
//!
//! Why this and not redb/fjall: a save is one `write` + one `fdatasync` of an append (the
//! cheapest durable operation a disk offers; ~2-3 ms here), there is no read path besides
//! recovery, and no background threads. Measured by `cargo bench -p petrel-node --bench
//! storage` (numbers in node/README.md). A batch of saves (one event loop turn, see
//! `runtime.rs`) costs one fsync: only its last snapshot is written.
//!
//! Recovery (`open`): records are scanned from the start. A record that fails its checksum
//! or is cut short ends the valid prefix:
//! * if no valid record follows it, it is a torn tail (a crash during an append): the file
//!   is truncated there, with a warning;
//! * if a valid record follows (corruption in the middle, e.g. a flipped bit), the newest
//!   valid record is used, with a warning, and the file is compacted at once. Going back
//!   to an older snapshot would make the node forget what it acknowledged, so a newer
//!   intact snapshot always wins.
//!
//! A record whose checksum is right but whose bytes do not decode is *not* truncated: that
//! is a format mismatch (e.g. a binary of another version), and `open` fails rather than
//! silently dropping durable state.
//!
//! Compaction: once the file is past `max(compact_min_bytes, 8 × last record)`, the last
//! snapshot is written to a new file, fsynced, renamed over the log, and the directory is
//! fsynced (so the rename itself is durable).
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// "PETRELS" and the format version. 2: key-value partitions (byte keys and values);
/// 1 was one register per partition. A file of another version is refused by name.
const FILE_MAGIC: &[u8; 8] = b"PETRELS2";
const MAGIC_STEM: &[u8; 7] = b"PETRELS";
const RECORD_MAGIC: [u8; 4] = *b"PTRL";
const RECORD_HEADER: usize = 12;
/// A snapshot larger than this is refused (and a length field beyond it is corruption).
pub const MAX_RECORD: usize = 256 << 20;
const LOG_NAME: &str = "storage.log";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a Petrel storage file (bad header)")]
    NotAStore { path: PathBuf },
    #[error("{path} was written in storage format {found} (this petrel reads format {expected}); refusing to start: move the data directory away to start this node empty")]
    OtherFormat { path: PathBuf, found: String, expected: char },
    #[error("{path}: record at offset {offset} has a valid checksum but does not decode ({reason}); written by an incompatible version? refusing to start")]
    Undecodable { path: PathBuf, offset: u64, reason: String },
    #[error("cannot encode the storage value: {0}")]
    Encode(String),
    #[error("storage value of {0} bytes exceeds the record limit")]
    TooLarge(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Compact when the log is larger than this and than 8 × the last record.
    pub compact_min_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { compact_min_bytes: 4 << 20 }
    }
}

/// What `open` found, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes of a torn tail cut off.
    pub truncated_bytes: u64,
    /// Corrupt records skipped in the middle of the file.
    pub skipped_corrupt: usize,
}

/// An append-only snapshot log in one directory.
pub struct Store<T> {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    last_record: u64,
    opts: StoreOptions,
    /// Durable saves so far (for metrics and tests).
    pub saves: u64,
    _t: PhantomData<fn() -> T>,
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
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl<T: Serialize + DeserializeOwned> Store<T> {
    /// Open (or create) the store in `dir` and return the last saved value, if any.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store<T>, Option<T>, Recovery), StorageError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOG_NAME);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io(&path))?;
        let mut rec = Recovery::default();
        if buf.len() < FILE_MAGIC.len() {
            if !FILE_MAGIC.starts_with(&buf) {
                return Err(StorageError::NotAStore { path });
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
            let store = Store { dir: dir.to_path_buf(), path, file, len: FILE_MAGIC.len() as u64, last_record: 0, opts, saves: 0, _t: PhantomData };
            return Ok((store, None, rec));
        }
        if &buf[..FILE_MAGIC.len()] != FILE_MAGIC {
            if buf.starts_with(MAGIC_STEM) {
                let found = String::from_utf8_lossy(&buf[MAGIC_STEM.len()..FILE_MAGIC.len()]).into_owned();
                return Err(StorageError::OtherFormat { path, found, expected: char::from(FILE_MAGIC[MAGIC_STEM.len()]) });
            }
            return Err(StorageError::NotAStore { path });
        }
        let mut off = FILE_MAGIC.len();
        let mut last: Option<(usize, &[u8])> = None;
        let mut end = off;
        loop {
            if off == buf.len() {
                break;
            }
            match record_at(&buf, off) {
                Some((payload, next)) => {
                    rec.records += 1;
                    last = Some((off, payload));
                    off = next;
                    end = next;
                }
                None => match resync(&buf, off + 1) {
                    Some(next) => {
                        tracing::warn!(path = %path.display(), offset = off, next, "corrupt storage record in the middle of the log skipped; a newer intact snapshot follows");
                        rec.skipped_corrupt += 1;
                        off = next;
                    }
                    None => {
                        rec.truncated_bytes = (buf.len() - off) as u64;
                        tracing::warn!(path = %path.display(), offset = off, bytes = rec.truncated_bytes, "torn or corrupt tail of the storage log truncated");
                        break;
                    }
                },
            }
        }
        let value = match last {
            Some((at, payload)) => Some(postcard::from_bytes::<T>(payload).map_err(|e| StorageError::Undecodable {
                path: path.clone(),
                offset: at as u64,
                reason: e.to_string(),
            })?),
            None => None,
        };
        let last_record = last.map_or(0, |(_, p)| (p.len() + RECORD_HEADER) as u64);
        if rec.truncated_bytes > 0 {
            file.set_len(end as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        file.seek(SeekFrom::Start(end as u64)).map_err(io(&path))?;
        let mut store = Store { dir: dir.to_path_buf(), path, file, len: end as u64, last_record, opts, saves: 0, _t: PhantomData };
        if rec.skipped_corrupt > 0 {
            if let Some((_, payload)) = last {
                store.compact(payload)?;
            }
        }
        Ok((store, value, rec))
    }

    /// Make `value` the durable snapshot: append it and fdatasync before returning.
    pub fn save(&mut self, value: &T) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| StorageError::Encode(e.to_string()))?;
        let rec = encode_record(&bytes)?;
        let bound = self.opts.compact_min_bytes.max(8 * rec.len() as u64);
        if self.len + rec.len() as u64 > bound && self.len > FILE_MAGIC.len() as u64 {
            self.compact(&bytes)?;
        } else {
            self.file.write_all(&rec).map_err(io(&self.path))?;
            // fdatasync also persists the new file length (needed to read the data back).
            self.file.sync_data().map_err(io(&self.path))?;
            self.len += rec.len() as u64;
        }
        self.last_record = rec.len() as u64;
        self.saves += 1;
        Ok(())
    }

    /// Replace the log by one holding only `payload`: write, fsync, rename, fsync dir.
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
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path).map_err(io(&self.path))?;
        self.len = (FILE_MAGIC.len() + rec.len()) as u64;
        file.seek(SeekFrom::Start(self.len)).map_err(io(&self.path))?;
        self.file = file;
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
            s.save(&value(n)).expect("save");
        }
        drop(s);
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(5)));
        assert_eq!(rec, Recovery { records: 5, ..Default::default() });
    }

    #[test]
    fn empty_and_torn_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(LOG_NAME), b"").expect("write");
        let (mut s, v, _) = open(dir.path());
        assert_eq!(v, None);
        s.save(&value(1)).expect("save");
        drop(s);
        assert_eq!(open(dir.path()).1, Some(value(1)));
        fs::write(dir.path().join(LOG_NAME), b"PETR").expect("write");
        assert_eq!(open(dir.path()).1, None);
        fs::write(dir.path().join(LOG_NAME), b"NOTPETRELAT ALL").expect("write");
        assert!(matches!(Store::<V>::open(dir.path(), StoreOptions::default()), Err(StorageError::NotAStore { .. })));
    }

    #[test]
    fn a_file_of_another_format_version_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_NAME);
        let mut bytes = b"PETRELS1".to_vec();
        bytes.extend(encode_record(&postcard::to_stdvec(&value(1)).expect("enc")).expect("rec"));
        fs::write(&path, &bytes).expect("write");
        let err = Store::<V>::open(dir.path(), StoreOptions::default()).err().expect("refused");
        assert!(matches!(err, StorageError::OtherFormat { .. }), "{err}");
        assert!(err.to_string().contains("storage format 1 (this petrel reads format 2)"), "{err}");
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(&value(2)).expect("save");
        s.save(&value(3)).expect("save");
        let full = s.file_len();
        drop(s);
        let path = dir.path().join(LOG_NAME);
        // Cut the last record at every possible point: the previous one wins.
        let bytes = fs::read(&path).expect("read");
        let last_len = encode_record(&postcard::to_stdvec(&value(3)).expect("enc")).expect("rec").len();
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
        s.save(&value(9)).expect("save");
        drop(s);
        assert_eq!(open(dir.path()).1, Some(value(9)));
    }

    #[test]
    fn flipped_byte_in_last_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(&value(2)).expect("save");
        s.save(&value(3)).expect("save");
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let mut bytes = fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[n - 3] ^= 0x10;
        fs::write(&path, &bytes).expect("write");
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(2)));
        assert!(rec.truncated_bytes > 0);
    }

    #[test]
    fn flipped_byte_in_the_middle_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = open(dir.path());
        s.save(&value(2)).expect("save");
        s.save(&value(3)).expect("save");
        s.save(&value(4)).expect("save");
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let mut bytes = fs::read(&path).expect("read");
        // A byte inside the first record's payload.
        bytes[FILE_MAGIC.len() + RECORD_HEADER + 2] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(4)));
        assert_eq!(rec.skipped_corrupt, 1);
        // The file was compacted to the newest snapshot.
        let (_, v, rec) = open(dir.path());
        assert_eq!(v, Some(value(4)));
        assert_eq!(rec, Recovery { records: 1, ..Default::default() });
    }

    #[test]
    fn undecodable_record_is_an_error_not_a_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_NAME);
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend(encode_record(&[0xff, 0xff, 0xff]).expect("rec"));
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(Store::<V>::open(dir.path(), StoreOptions::default()), Err(StorageError::Undecodable { .. })));
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
    }

    #[test]
    fn compaction_bounds_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StoreOptions { compact_min_bytes: 4096 };
        let (mut s, _, _) = Store::<V>::open(dir.path(), opts.clone()).expect("open");
        for n in 0..200 {
            s.save(&value(n % 20)).expect("save");
            assert!(s.file_len() <= 4096 + 1024, "len {}", s.file_len());
        }
        s.save(&value(7)).expect("save");
        drop(s);
        let (_, v, _) = Store::<V>::open(dir.path(), opts).expect("open");
        assert_eq!(v, Some(value(7)));
        assert!(!dir.path().join(format!("{LOG_NAME}.compact")).exists());
    }
}
