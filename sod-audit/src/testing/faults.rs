//! Storage faults for [`FileSink`](crate::FileSink): a file system that fails the Nth write,
//! sync, segment creation or directory sync with a chosen error, until the test clears it.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sink::file::storage::{Os, Storage};

/// `ENOSPC`: no space left on device.
pub const ENOSPC: i32 = 28;
/// `EIO`: input/output error.
pub const EIO: i32 = 5;

/// A file operation of the audit writer that a fault can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A `write` to a segment.
    Write,
    /// An `fdatasync` or `fsync` of a segment.
    Sync,
    /// Creating a new segment (rotation).
    Create,
    /// Opening an existing segment (recovery).
    Open,
    /// Cutting a segment back (after a failed write, and in recovery).
    Truncate,
    /// Removing a segment (recovery).
    Remove,
    /// Syncing the log directory.
    SyncDir,
}

#[derive(Debug)]
struct Armed {
    op: Op,
    /// Calls of `op` still to let through.
    skip: u64,
    /// The raw OS error.
    errno: i32,
    /// For writes: the first failing call writes this many bytes (fewer than asked) and
    /// reports them written; the calls after it fail.
    short: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    armed: Vec<Armed>,
    calls: Vec<(Op, u64)>,
    injected: u64,
    /// Writes at most this many bytes per call, then pause: a slow disk.
    slow: Option<(usize, Duration)>,
    /// A failed sync drops what was written since the last successful one.
    lose_unsynced: bool,
    /// Per file (inode): its length at its last successful sync, as far as known.
    synced: Vec<(u64, u64)>,
}

/// A fault-injecting file system for a [`FileSink`](crate::FileSink)
/// ([`FileSinkOptions::faults`](crate::FileSinkOptions::faults)). Clones share the schedule,
/// so the test keeps one to arm and clear faults while the sink runs.
///
/// A fault, once armed, lets `after` more calls of its operation through and fails every one
/// after them with the raw OS error given, until [`clear`](Self::clear): a full disk stays
/// full until space is freed.
///
/// ```
/// use sod_audit::testing::{ENOSPC, Faults, Op};
///
/// let faults = Faults::new();
/// faults.fail(Op::Write, 2, ENOSPC); // the third write from now fails, and all after it
/// faults.clear(); // space freed
/// assert_eq!(faults.injected(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<Inner>>);

impl Faults {
    /// No faults armed.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After `after` more calls of `op` succeed, fails every call of `op` with the raw OS
    /// error `errno` until [`clear`](Self::clear).
    pub fn fail(&self, op: Op, after: u64, errno: i32) {
        self.inner().armed.push(Armed {
            op,
            skip: after,
            errno,
            short: None,
        });
    }

    /// After `after` more writes succeed, the next write writes at most `bytes` of its buffer
    /// (always fewer than asked) and reports them written; every write after it fails with
    /// `errno` until [`clear`](Self::clear): a record cut in half by a disk filling up.
    pub fn fail_short(&self, after: u64, bytes: usize, errno: i32) {
        self.inner().armed.push(Armed {
            op: Op::Write,
            skip: after,
            errno,
            short: Some(bytes),
        });
    }

    /// From now on every write writes at most `chunk` bytes (reporting a short write, which
    /// the writer continues) and then takes `pause`: a slow disk, on which a crash (SIGKILL)
    /// is likely to land in the middle of a group of records and leave a torn tail. Not a
    /// fault: [`clear`](Self::clear) leaves it.
    pub fn slow_writes(&self, chunk: usize, pause: Duration) {
        self.inner().slow = Some((chunk.max(1), pause));
    }

    /// From now on a failed sync also loses what was written to the file since its last
    /// successful sync, as Linux may after a writeback error (the dirty pages are dropped and
    /// the file reads back as zeros there; "fsyncgate"): a writer that syncs again and trusts
    /// the file loses acknowledged records. Linux only (the bytes are overwritten through
    /// `/proc/self/fd`). Files are tracked from their creation or first write through this
    /// file system; a file first seen in a write counts as synced up to its length then.
    pub fn lose_unsynced_on_failed_sync(&self) {
        self.inner().lose_unsynced = true;
    }

    /// Disarms every fault: the disk works again.
    pub fn clear(&self) {
        self.inner().armed.clear();
    }

    /// How many calls failed (or were cut short) by a fault so far.
    pub fn injected(&self) -> u64 {
        self.inner().injected
    }

    /// How many calls of `op` were made so far (failed ones included).
    pub fn calls(&self, op: Op) -> u64 {
        self.inner()
            .calls
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, n)| *n)
    }

    /// Counts a call of `op`; what a fault makes of it: `None` (go ahead), `Some(None)` (fail
    /// with the error), or `Some(Some(n))` (write `n` bytes and report them written).
    fn hit(&self, op: Op) -> Result<Option<usize>, io::Error> {
        let mut inner = self.inner();
        match inner.calls.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => inner.calls.push((op, 1)),
        }
        let mut outcome = Ok(None);
        for armed in inner.armed.iter_mut().filter(|a| a.op == op) {
            if armed.skip > 0 {
                armed.skip -= 1;
                continue;
            }
            outcome = match armed.short.take() {
                Some(bytes) => Ok(Some(bytes)),
                None => Err(io::Error::from_raw_os_error(armed.errno)),
            };
            break;
        }
        if !matches!(outcome, Ok(None)) {
            inner.injected += 1;
        }
        outcome
    }

    fn check(&self, op: Op) -> io::Result<()> {
        self.hit(op).map(|_| ())
    }

    /// Notes `file`'s length as synced (`force`) or, if the file is new to us, as it is now.
    #[cfg(unix)]
    fn note_synced(&self, file: &File, force: bool) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = file.metadata()?;
        let mut inner = self.inner();
        match inner.synced.iter_mut().find(|(ino, _)| *ino == meta.ino()) {
            Some((_, len)) if force => *len = meta.len(),
            Some(_) => {}
            None => inner.synced.push((meta.ino(), meta.len())),
        }
        Ok(())
    }

    /// A sync of `file`: fails as armed (losing the unsynced bytes if asked to), or syncs.
    fn sync(&self, file: &File, sync: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
        if let Err(e) = self.check(Op::Sync) {
            if self.inner().lose_unsynced {
                self.lose_unsynced(file)?;
            }
            return Err(e);
        }
        sync(file)?;
        self.note_synced(file, true)
    }

    #[cfg(not(unix))]
    fn note_synced(&self, _file: &File, _force: bool) -> io::Result<()> {
        Ok(())
    }

    #[cfg(not(unix))]
    fn lose_unsynced(&self, _file: &File) -> io::Result<()> {
        Ok(())
    }

    /// Overwrites what was written to `file` since its last successful sync with zeros.
    #[cfg(unix)]
    fn lose_unsynced(&self, file: &File) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::{FileExt as _, MetadataExt as _};
        let meta = file.metadata()?;
        let Some(from) = self
            .inner()
            .synced
            .iter()
            .find(|(ino, _)| *ino == meta.ino())
            .map(|(_, len)| *len)
        else {
            return Ok(());
        };
        if meta.len() > from {
            // A description of its own: `file` appends, whatever the offset asked.
            let raw = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
            raw.write_all_at(&vec![0; (meta.len() - from) as usize], from)?;
        }
        Ok(())
    }
}

impl Storage for Faults {
    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize> {
        self.note_synced(file, false)?;
        let slow = self.inner().slow;
        match self.hit(Op::Write)? {
            Some(bytes) if !buf.is_empty() => Os.write(file, &buf[..bytes.min(buf.len() - 1)]),
            _ => match slow {
                Some((chunk, pause)) => {
                    let written = Os.write(file, &buf[..chunk.min(buf.len())]);
                    std::thread::sleep(pause);
                    written
                }
                None => Os.write(file, buf),
            },
        }
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.sync(file, |f| Os.sync_data(f))
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.sync(file, |f| Os.sync_all(f))
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        self.check(Op::Create)?;
        let file = Os.create(path)?;
        self.note_synced(&file, true)?;
        Ok(file)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        self.check(Op::Open)?;
        Os.open(path)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check(Op::Truncate)?;
        self.note_synced(file, false)?;
        Os.set_len(file, len)?;
        // What was synced beyond `len` is gone; what is written there next is not synced.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let ino = file.metadata()?.ino();
            if let Some((_, synced)) = self.inner().synced.iter_mut().find(|(i, _)| *i == ino) {
                *synced = (*synced).min(len);
            }
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        Os.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        Os.sync_dir(dir)
    }
}
