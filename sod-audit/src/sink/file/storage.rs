//! The file operations the writer uses, behind one seam: the operating system in production,
//! a fault-injecting wrapper in tests (`testing::Faults`, feature `testing`), so a test can make
//! the Nth write, sync, segment creation or directory sync fail like a full or failing disk.
//!
//! One dynamic call per operation; nothing is allocated per record.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

use super::private;

/// What the writer does to segment files and the log directory.
pub(crate) trait Storage: fmt::Debug + Send + Sync + 'static {
    /// One `write(2)` to `file` (opened for appending): may write less than `buf`.
    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize>;
    /// `fdatasync(2)`.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// `fsync(2)`.
    fn sync_all(&self, file: &File) -> io::Result<()>;
    /// Creates a new, empty segment at `path` for appending (mode 0600; fails if it exists).
    fn create(&self, path: &Path) -> io::Result<File>;
    /// Opens the existing segment at `path` for appending.
    fn open(&self, path: &Path) -> io::Result<File>;
    /// Cuts `file` to `len` bytes.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Removes the segment at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Syncs the directory `dir` (segment files created or removed in it).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Writes all of `buf` with [`Storage::write`], as `Write::write_all` does.
pub(crate) fn write_all(storage: &dyn Storage, file: &File, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match storage.write(file, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The operating system's file system.
#[derive(Debug, Default)]
pub(crate) struct Os;

impl Storage for Os {
    fn write(&self, mut file: &File, buf: &[u8]) -> io::Result<usize> {
        file.write(buf)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        private().append(true).create_new(true).open(path)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
