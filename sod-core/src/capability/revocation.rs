//! [`Revocations`]: capability ids that must stop working now, before they expire.
//!
//! A capability names itself by its id (the issuer's random `id` claim, kept by every
//! attenuation), so revoking an id revokes the capability *and everything derived from it*. A
//! [`CapabilityAuthority`](super::CapabilityAuthority) given a list refuses revoked
//! capabilities at verification, and every [`Capability`](super::Capability) it verifies keeps a
//! handle on the list: a session's next operation is refused
//! ([`Session::current_identity`](crate::Session::current_identity)), and gateways end open
//! sessions when [`Session::revoked`](crate::Session::revoked) resolves.
//!
//! The list lives in a text file ([`RevocationFile`]): one capability id per line, `#`
//! comments. [`Revocations::watch`] reloads it while the gateway runs. A list that cannot be
//! read or parsed fails closed: every capability is refused until it can be read again (a
//! missing file is an empty list).
//!
//! ```
//! use sod_core::capability::{CapabilityError, Revocations};
//!
//! let list = Revocations::new();
//! assert!(list.check("4f2a").is_ok());
//! list.replace(["4f2a".to_owned()]);
//! assert_eq!(list.check("4f2a"), Err(CapabilityError::Revoked("4f2a".into())));
//! ```

use std::collections::HashSet;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::CapabilityError;

/// The longest capability id a list accepts (issued ids are 32 hex digits).
const MAX_ID: usize = 128;

/// A shared, reloadable set of revoked capability ids. Cloning shares the list.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    /// Bumped on every change, so waiters look again.
    changed: watch::Sender<u64>,
}

enum State {
    /// These ids are revoked.
    List(HashSet<String>),
    /// The list could not be read: every capability is refused (fail closed).
    Unreadable(String),
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.read() {
            State::List(ids) => f
                .debug_struct("Revocations")
                .field("ids", &ids.len())
                .finish(),
            State::Unreadable(why) => f
                .debug_struct("Revocations")
                .field("unreadable", why)
                .finish(),
        }
    }
}

impl Revocations {
    /// An empty list.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::List(HashSet::new())),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// The list in `path` ([`RevocationFile`] format); a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, RevocationFileError> {
        let list = Self::new();
        list.replace(RevocationFile::new(path).read()?);
        Ok(list)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: State) {
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `Ok` if capability `id` may be used: it is not revoked and the list could be read.
    pub fn check(&self, id: &str) -> Result<(), CapabilityError> {
        match &*self.read() {
            State::List(ids) if ids.contains(id) => Err(CapabilityError::Revoked(id.to_owned())),
            State::List(_) => Ok(()),
            State::Unreadable(why) => Err(CapabilityError::RevocationsUnavailable(why.clone())),
        }
    }

    /// Whether `id` is on the list.
    pub fn contains(&self, id: &str) -> bool {
        matches!(&*self.read(), State::List(ids) if ids.contains(id))
    }

    /// Replaces the list with `ids` (and clears an unreadable state).
    pub fn replace(&self, ids: impl IntoIterator<Item = String>) {
        self.set(State::List(ids.into_iter().collect()));
    }

    /// Marks the list unreadable: every capability is refused, with `why`, until the next
    /// [`replace`](Self::replace).
    pub fn fail(&self, why: impl Into<String>) {
        self.set(State::Unreadable(why.into()));
    }

    /// Resolves once capability `id` is revoked (at once if it already is). An unreadable
    /// list does not resolve it: operations are refused meanwhile, sessions are not ended for
    /// a typo in the file.
    pub async fn revoked(&self, id: &str) {
        let mut changes = self.inner.changed.subscribe();
        loop {
            if self.contains(id) {
                return;
            }
            // The sender lives as long as `self`: `changed` never fails here.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Reloads the list from `file` every `every` until dropped; run it as a task. A change
    /// shows within `every`; a file that cannot be read or parsed fails the list closed (and
    /// is logged) until it can be read again.
    pub async fn watch(self, file: RevocationFile, every: Duration) {
        let mut last: Option<Vec<u8>> = None;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let path = file.path.clone();
            let read = tokio::task::spawn_blocking(move || RevocationFile::read_bytes(&path)).await;
            let bytes = match read {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => {
                    self.fail_loudly(&file, e.to_string());
                    last = None;
                    continue;
                }
                Err(e) => {
                    self.fail_loudly(&file, e.to_string());
                    last = None;
                    continue;
                }
            };
            if last.as_ref() == Some(&bytes) {
                continue;
            }
            match RevocationFile::parse(&bytes) {
                Ok(ids) => {
                    tracing::info!(file = %file.path.display(), revoked = ids.len(), "capability revocation list loaded");
                    self.replace(ids);
                    last = Some(bytes);
                }
                Err(e) => {
                    self.fail_loudly(&file, e.to_string());
                    last = None;
                }
            }
        }
    }

    fn fail_loudly(&self, file: &RevocationFile, why: String) {
        let why = format!(
            "the capability revocation list {} cannot be read: {why}",
            file.path.display()
        );
        if !matches!(&*self.read(), State::Unreadable(w) if *w == why) {
            tracing::error!(%why, "refusing every capability until the revocation list can be read");
            self.fail(why);
        }
    }
}

/// Why a revocation file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A line is not a capability id.
    #[error("line {line}: `{text}` is not a capability id (hex digits)")]
    Syntax {
        /// Line number, from 1.
        line: usize,
        /// The offending text (cut short).
        text: String,
    },
}

/// The revocation list's file: one capability id (hex) per line; `#` starts a comment, blank
/// lines are ignored.
///
/// ```text
/// # revoked capabilities
/// 9c1b3f0e5a7d4c2b8e6f1a0d3c5b7e9f  # 2026-12-07T21:50:00Z subject=planner-1
/// ```
#[derive(Clone, Debug)]
pub struct RevocationFile {
    path: PathBuf,
}

impl RevocationFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_bytes(path: &Path) -> Result<Vec<u8>, RevocationFileError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(RevocationFileError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The ids in the file (none if it does not exist).
    pub fn read(&self) -> Result<HashSet<String>, RevocationFileError> {
        Self::parse(&Self::read_bytes(&self.path)?)
    }

    /// Parses the file's contents.
    pub fn parse(bytes: &[u8]) -> Result<HashSet<String>, RevocationFileError> {
        let text = String::from_utf8_lossy(bytes);
        let mut ids = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if !is_capability_id(line) {
                return Err(RevocationFileError::Syntax {
                    line: i + 1,
                    text: line.chars().take(40).collect(),
                });
            }
            ids.insert(line.to_ascii_lowercase());
        }
        Ok(ids)
    }

    /// Appends `id` with a comment (one `write` of one line, so concurrent appends do not
    /// interleave), creating the file if needed. `Ok(false)` if it was already listed. The
    /// existing contents must parse: an id is never appended to a file the gateway would
    /// refuse to read.
    pub fn append(&self, id: &str, comment: &str) -> Result<bool, RevocationFileError> {
        let io = |source| RevocationFileError::Io {
            path: self.path.clone(),
            source,
        };
        if !is_capability_id(id) {
            return Err(RevocationFileError::Syntax {
                line: 0,
                text: id.chars().take(40).collect(),
            });
        }
        let bytes = Self::read_bytes(&self.path)?;
        if Self::parse(&bytes)?.contains(&id.to_ascii_lowercase()) {
            return Ok(false);
        }
        let comment: String = comment.chars().filter(|c| !c.is_control()).collect();
        let mut line = String::new();
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            line.push('\n');
        }
        line.push_str(&id.to_ascii_lowercase());
        if !comment.is_empty() {
            line.push_str("  # ");
            line.push_str(&comment);
        }
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(true)
    }
}

/// Whether `s` has the form of a capability id (hex digits, as issued; at most 128).
///
/// ```
/// assert!(sod_core::capability::is_capability_id("9c1b3f0e"));
/// assert!(!sod_core::capability::is_capability_id("sodcap1.x"));
/// ```
pub fn is_capability_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_takes_ids_comments_and_blank_lines() {
        let ids = RevocationFile::parse(b"# header\n\nABCD  # why\n  0123 \n").unwrap();
        assert_eq!(ids, HashSet::from(["abcd".to_owned(), "0123".to_owned()]));
        let e = RevocationFile::parse(b"abcd\nnot-an-id\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: `not-an-id`"), "{e}");
    }

    #[test]
    fn append_adds_once_and_refuses_to_extend_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = RevocationFile::new(dir.path().join("revoked"));
        assert!(
            file.read().unwrap().is_empty(),
            "a missing file is an empty list"
        );
        assert!(file.append("abcd", "first\nsecond").unwrap());
        assert!(!file.append("ABCD", "again").unwrap());
        assert!(file.append("ef01", "").unwrap());
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(text, "abcd  # firstsecond\nef01\n");
        std::fs::write(file.path(), "abcd\nbad line\n").unwrap();
        assert!(file.append("0000", "").is_err());
        assert!(file.append("xyz", "").is_err());
    }

    #[tokio::test]
    async fn revoked_resolves_when_the_id_is_listed_and_not_for_others() {
        let list = Revocations::new();
        let waiting = tokio::spawn({
            let list = list.clone();
            async move { list.revoked("abcd").await }
        });
        list.replace(["0000".to_owned()]);
        list.fail("broken");
        assert_eq!(
            list.check("0000"),
            Err(CapabilityError::RevocationsUnavailable("broken".into()))
        );
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        list.replace(["abcd".to_owned()]);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("revoked() resolves")
            .unwrap();
        assert!(list.check("0000").is_ok());
    }

    #[tokio::test]
    async fn watch_follows_the_file_and_fails_closed_while_it_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let file = RevocationFile::new(dir.path().join("revoked"));
        let list = Revocations::new();
        let task = tokio::spawn(list.clone().watch(file.clone(), Duration::from_millis(100)));
        let settle = |want: fn(&Revocations) -> bool| {
            let list = list.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while std::time::Instant::now() < deadline {
                    if want(&list) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("the list did not reach the state: {list:?}");
            }
        };
        file.append("abcd", "").unwrap();
        settle(|l| l.contains("abcd")).await;
        std::fs::write(file.path(), "abcd\n!!\n").unwrap();
        settle(|l| l.check("0000").is_err()).await;
        std::fs::write(file.path(), "").unwrap();
        settle(|l| l.check("abcd").is_ok()).await;
        task.abort();
    }
}
