//! A store journaled to one file, so pending, decided and consumed requests survive a
//! restart of a single gateway.
//!
//! Every change appends the request's new state as one JSON line and `fdatasync`s before it is
//! acknowledged; on open the journal is replayed (the last state of each request wins), a torn
//! last line (a crash mid-write) is cut off, and the journal is rewritten compactly (temporary
//! file, `fsync`, rename, directory `fsync`). The file is locked against a second process.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use sod_core::Fingerprint;

use super::{Store, StoreError};
use crate::{ApprovalId, ApprovalRequest, Status};

/// Keeps requests in a journal file. See the [module docs](self).
pub struct FileStore {
    inner: Arc<Mutex<Journal>>,
}

struct Journal {
    path: PathBuf,
    file: File,
    requests: BTreeMap<ApprovalId, ApprovalRequest>,
    /// Lines in the journal, to know when rewriting it is worth it.
    lines: usize,
    /// After a failed write the journal may hold a partial line: refuse until reopened.
    poisoned: Option<String>,
    /// The lock file, locked for as long as the store is open.
    _lock: File,
}

fn invalid(path: &Path, line: usize, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} line {line}: {e}", path.display()),
    )
}

impl FileStore {
    /// Opens (or creates) the journal at `path`, replays it and rewrites it compactly.
    ///
    /// Fails if another process has it open, or if a complete line is not a request (damage,
    /// not a crash: fix or move the file rather than lose requests).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        std::fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is in use by another approval store", path.display()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut requests = BTreeMap::new();
        let mut offset = 0;
        let mut line_no = 0;
        while let Some(len) = bytes[offset..].iter().position(|&b| b == b'\n') {
            line_no += 1;
            let r: ApprovalRequest = serde_json::from_slice(&bytes[offset..offset + len])
                .map_err(|e| invalid(&path, line_no, e))?;
            requests.insert(r.id.clone(), r);
            offset += len + 1;
        }
        if offset < bytes.len() {
            tracing::warn!(journal = %path.display(), bytes = bytes.len() - offset, "approval journal: cut off a torn last line");
        }
        let file = rewrite(&path, &requests)?;
        let lines = requests.len();
        let journal = Journal {
            path,
            file,
            requests,
            lines,
            poisoned: None,
            _lock: lock,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(journal)),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Journal) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&mut lock(&inner)))
                .await
                .map_err(|e| StoreError::Unavailable(format!("journal task failed: {e}")))?
        })
    }
}

fn lock(inner: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rewrites the journal at `path` with one line per request (temporary file, `fsync`, rename,
/// directory `fsync`) and opens it for appending.
fn rewrite(path: &Path, requests: &BTreeMap<ApprovalId, ApprovalRequest>) -> io::Result<File> {
    let tmp = path.with_extension("tmp");
    {
        // Only the gateway reads its approvals: owner read/write, whatever the umask.
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        for r in requests.values() {
            out.write_all(&line(r)?)?;
        }
        out.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    OpenOptions::new().append(true).open(path)
}

fn line(r: &ApprovalRequest) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

impl Journal {
    /// Appends `r`'s new state durably, then applies it.
    fn write(&mut self, r: ApprovalRequest) -> Result<(), StoreError> {
        if let Some(why) = &self.poisoned {
            return Err(StoreError::Unavailable(why.clone()));
        }
        let bytes = line(&r).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let why = format!(
                "writing the approval journal {} failed: {e}",
                self.path.display()
            );
            tracing::error!(error = %why, "approval store failed; refusing until reopened");
            self.poisoned = Some(why.clone());
            return Err(StoreError::Unavailable(why));
        }
        self.lines += 1;
        self.requests.insert(r.id.clone(), r);
        if self.lines > 2 * self.requests.len() + 1024 {
            // Superseded states dominate: rewrite. The file at `path` always holds every
            // state (old journal or new one), but after a failure this handle may point at the
            // replaced file: refuse until reopened rather than write where nobody reads.
            match rewrite(&self.path, &self.requests) {
                Ok(file) => {
                    self.file = file;
                    self.lines = self.requests.len();
                }
                Err(e) => {
                    let why = format!("compacting the approval journal failed: {e}");
                    tracing::error!(error = %why, "approval store failed; refusing until reopened");
                    self.poisoned = Some(why);
                }
            }
        }
        Ok(())
    }

    fn select(&self, keep: impl Fn(&ApprovalRequest) -> bool) -> Vec<ApprovalRequest> {
        let mut found: Vec<ApprovalRequest> = self
            .requests
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        found
    }
}

impl Store for FileStore {
    fn insert(&self, request: ApprovalRequest) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |j| {
            if j.requests.contains_key(&request.id) {
                return Err(StoreError::Exists(request.id));
            }
            j.write(request)
        })
    }

    fn get(&self, id: &ApprovalId) -> BoxFuture<'_, Result<Option<ApprovalRequest>, StoreError>> {
        let found = lock(&self.inner).requests.get(id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn swap(&self, new: ApprovalRequest) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.run(move |j| match j.requests.get(&new.id) {
            Some(old) if old.version.checked_add(1) == Some(new.version) => {
                j.write(new).map(|()| true)
            }
            _ => Ok(false),
        })
    }

    fn by_fingerprint(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = lock(&self.inner).select(|r| r.operation.fingerprint == fingerprint);
        Box::pin(async move { Ok(found) })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = lock(&self.inner).select(|r| r.status == Status::Pending);
        Box::pin(async move { Ok(found) })
    }

    fn plans_and_grants(
        &self,
        requester: &str,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = lock(&self.inner).select(|r| super::is_plan_or_grant_of(r, requester));
        Box::pin(async move { Ok(found) })
    }
}
