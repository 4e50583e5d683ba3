//! A sink writing JSON Lines segment files, with group commit, size-based rotation and
//! recovery of a torn last record.
//!
//! Layout: a directory of `segment-00000001.jsonl`, `segment-00000002.jsonl`, …; the chain
//! runs on across segments. An append that must be written before it returns is written by the
//! appending task itself, together with everything chained before it, unless another task is
//! writing already, which then carries it along (group commit without a thread hand-off); a
//! background thread does the `fdatasync`s, shared by every [`Fsync`](Durability::Fsync) append
//! waiting at the time, and writes buffered records no append has carried along within a few
//! milliseconds (module `writer`).
//!
//! A storage fault (a full disk, an I/O error, a failed `fsync`) makes the log unavailable:
//! the appends waiting and the ones after it fail with [`AuditError::Unavailable`], so the
//! gateways refuse. No acknowledged record is lost and no partial record stays in the chain;
//! the next append after the fault clears puts the log back in order and goes on (module
//! `writer`, "Storage faults").

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::future::BoxFuture;

use super::{Ack, Appended, AuditError, AuditSink, Chain, Queue, queue_append, queue_checkpoint};
use crate::record::{self, Record};
use crate::{Checkpoint, CheckpointKey, Durability, Event};

pub(crate) mod storage;
mod writer;

use writer::{Segment, Shared, State};

/// The file name of segment `n` (from 1).
pub(crate) fn segment_name(n: u64) -> String {
    format!("segment-{n:08}.jsonl")
}

/// The segment files of `dir`, by number.
/// The bytes of segment `path`, which must be a regular file: a segment name that is a
/// symbolic link (to another log, or to anything else) is an error, not something to follow.
pub(crate) fn read_segment(path: &Path) -> io::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    std::fs::read(path)
}

pub(crate) fn segment_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    if !dir.exists() {
        return Ok(found);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("segment-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((n, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// How a [`FileSink`] is set up.
#[derive(Clone, Debug)]
pub struct FileSinkOptions {
    stream: String,
    key: CheckpointKey,
    max_segment_bytes: u64,
    checkpoint_every: u64,
    storage: Arc<dyn storage::Storage>,
}

impl FileSinkOptions {
    /// Segments are rotated once they reach this size, by default (64 MiB).
    pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

    /// Options for the chain `stream`, checkpoints signed with `key`.
    pub fn new(stream: impl Into<String>, key: CheckpointKey) -> Self {
        Self {
            stream: stream.into(),
            key,
            max_segment_bytes: Self::DEFAULT_MAX_SEGMENT_BYTES,
            checkpoint_every: 1000,
            storage: Arc::new(storage::Os),
        }
    }

    /// Starts a new segment once the current one holds `bytes` (checked before each write, so a
    /// segment may exceed it by one group of records).
    #[must_use]
    pub fn max_segment_bytes(mut self, bytes: u64) -> Self {
        self.max_segment_bytes = bytes.max(1);
        self
    }

    /// Writes a signed checkpoint after every `records` records (default 1000).
    #[must_use]
    pub fn checkpoint_every(mut self, records: u64) -> Self {
        self.checkpoint_every = records;
        self
    }

    /// Writes through `faults`, a file system that fails where the test says (the writer's
    /// writes, syncs, segment creations and directory syncs; opening the log does not go
    /// through it). For tests of storage faults only.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn faults(mut self, faults: &crate::testing::Faults) -> Self {
        self.storage = Arc::new(faults.clone());
        self
    }
}

/// What [`FileSink::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Segment files present after opening.
    pub segments: usize,
    /// The sequence number the next record gets.
    pub next_seq: u64,
    /// A torn last record that was cut off.
    pub torn: Option<TornTail>,
}

/// An incomplete last line (a write cut short by a crash or a full disk), removed on open.
/// No acknowledged record is ever torn: `append` returns only after the whole line was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub segment: PathBuf,
    /// Where the torn line started (the segment's new length).
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes: u64,
}

/// Appends records to JSON Lines segment files. See the [module docs](self).
pub struct FileSink {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The directory's lock file, locked exclusively for the sink's lifetime: two writers on
    /// one log would fork its chain. Released by `close`.
    lock: Mutex<Option<File>>,
}

/// Options that create a file readable and writable by its owner only (mode 0600): audit
/// records hold statements with their constants, which may be personal data.
fn private() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// The lock file in a log directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Locks `dir` for one writer.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = private()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} is in use by another audit writer (it holds {})",
                dir.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Reads a segment's complete records; the offset after the last one; and the length of an
/// incomplete last line. A complete line that is not a valid record is an error: that is not a
/// crash, it is damage, and the log must be verified rather than appended to.
fn scan(path: &Path) -> io::Result<(Vec<Record>, u64, u64)> {
    let bytes = read_segment(path)?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    while let Some(len) = bytes[offset..].iter().position(|&b| b == b'\n') {
        let rec = record::decode(&bytes[offset..offset + len]).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} byte {offset}: {e}; run verify before appending",
                    path.display()
                ),
            )
        })?;
        records.push(rec);
        offset += len + 1;
    }
    Ok((records, offset as u64, (bytes.len() - offset) as u64))
}

impl FileSink {
    /// Opens (or creates) the log in `dir`: locks the directory against a second writer, cuts
    /// off a torn last record, resumes the chain after the last record, and starts the writer
    /// thread.
    ///
    /// Fails if another sink (in this or another process) has the directory open
    /// ([`WouldBlock`](io::ErrorKind::WouldBlock)), if a complete record in the last segment is
    /// damaged, or if the records of the last segment belong to another stream.
    pub fn open(dir: impl AsRef<Path>, options: FileSinkOptions) -> io::Result<(Self, OpenReport)> {
        let dir = dir.as_ref().to_owned();
        // A new directory is the owner's alone, like the segments in it.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        let lock = lock_dir(&dir)?;
        let mut segments = segment_files(&dir)?;
        let mut report = OpenReport::default();
        let mut chain = Chain::new(
            &options.stream,
            options.key.clone(),
            options.checkpoint_every,
        );
        // The last record: in the last segment, or the one before if that is empty.
        let mut last: Option<(Record, u64)> = None;
        for (i, (_, path)) in segments.iter().enumerate().rev() {
            let (records, good, torn) = scan(path)?;
            if i + 1 == segments.len() && torn > 0 {
                OpenOptions::new().write(true).open(path)?.set_len(good)?;
                tracing::warn!(segment = %path.display(), offset = good, bytes = torn, "audit log: cut off a torn last record");
                report.torn = Some(TornTail {
                    segment: path.clone(),
                    offset: good,
                    bytes: torn,
                });
            }
            // Records since the last checkpoint; when this segment has none, the count is
            // unknown here: checkpoint at the next append rather than late.
            let since = match records
                .iter()
                .rev()
                .position(|r| matches!(r.event, Event::Checkpoint(_)))
            {
                Some(n) => n as u64,
                None => u64::MAX,
            };
            if let Some(rec) = records.into_iter().last() {
                last = Some((rec, since));
                break;
            }
        }
        if let Some((rec, since)) = last {
            if rec.stream != options.stream {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} holds stream `{}`, not `{}`",
                        dir.display(),
                        rec.stream,
                        options.stream
                    ),
                ));
            }
            if rec.seq == u64::MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the log's last record has the largest sequence number: it cannot go on",
                ));
            }
            chain.resume(rec.seq, rec.hash, since);
        }
        if segments.is_empty() {
            let path = dir.join(segment_name(1));
            private().write(true).create_new(true).open(&path)?;
            sync_dir(&dir)?;
            segments.push((1, path));
        }
        let (segment, path) = segments.last().cloned().unwrap_or_default();
        let file = OpenOptions::new().append(true).open(&path)?;
        // What an earlier writer left may not be on disk yet: it is, before anything is added
        // (recovery after a storage fault starts from here at the earliest).
        file.sync_all()?;
        let size = file.metadata()?.len();
        report.segments = segments.len();
        report.next_seq = chain.head().map_or(0, |(s, _)| s + 1);
        let shared = Arc::new(Shared::new(
            State::new(chain),
            Segment {
                storage: options.storage.clone(),
                dir,
                file: Arc::new(file),
                number: segment,
                size,
                max: options.max_segment_bytes,
                // Synced above.
                base: (segment, size),
                tail: Vec::new(),
                starts: Vec::new(),
                retired: Vec::new(),
                epoch: 0,
                recovering: false,
            },
        ));
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("sod-audit-writer".into())
            .spawn(move || thread_shared.run())?;
        Ok((
            Self {
                shared,
                writer: Mutex::new(Some(handle)),
                lock: Mutex::new(Some(lock)),
            },
            report,
        ))
    }

    /// Writes what is queued, syncs the segment to disk, stops the writer thread, waits for it
    /// and releases the directory. Appends after this fail with [`AuditError::Closed`].
    /// Dropping the sink closes it.
    pub fn close(&self) {
        self.shared.close();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.close();
    }
}

impl Queue for FileSink {
    type Out = String;

    fn enqueue(
        &self,
        durability: Durability,
        make: impl FnOnce(&mut Chain, &mut Self::Out) -> Option<Appended>,
    ) -> Result<(Option<Appended>, Option<Ack>), AuditError> {
        self.shared.enqueue(durability, make)
    }
}

impl AuditSink for FileSink {
    fn append(
        &self,
        event: Event,
        durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>> {
        queue_append(self, event, durability)
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
        queue_checkpoint(self)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
