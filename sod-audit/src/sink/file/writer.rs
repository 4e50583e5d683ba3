//! Who writes the log, and when: group commit without a hand-off.
//!
//! An append that must be [`Written`](Durability::Written) before it returns is written by the
//! appending task itself when no one else is writing: it becomes the *leader*, takes every
//! line chained so far (its own and any [`Buffered`](Durability::Buffered) ones before it),
//! writes them with one `write`, and goes on with whatever other tasks chained meanwhile (for a
//! few rounds; then the background thread takes over). Tasks that append while a leader
//! writes leave their lines to it and wait for its acknowledgement: concurrent sessions share
//! one `write` (group commit), and a lone session's statement costs one `write` and no thread
//! hand-off, no wake-up. This is how PostgreSQL backends write their own WAL.
//!
//! The background thread does what must not stall an appending task: `fdatasync` for
//! [`Fsync`](Durability::Fsync) appends (one sync for everything written so far, shared by all
//! who wait), syncing segments retired by rotation, writing buffered lines no `written` append
//! has carried along within [`LINGER`], and the final write and sync on close.
//!
//! A failed write or sync poisons the sink (see [`State::poisoned`]).

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{private, segment_name, sync_dir};
use crate::Durability;
use crate::sink::{AuditError, Chain};

/// How long buffered lines may wait for an appending task to carry them along before the
/// background thread writes them.
pub(super) const LINGER: Duration = Duration::from_millis(20);

/// Groups a leader writes before it hands the rest to the background thread, so one session
/// is not kept writing for everyone else.
const LEADER_ROUNDS: usize = 4;

pub(super) type Ack = oneshot::Sender<Result<(), AuditError>>;

pub(super) struct State {
    pub(super) chain: Chain,
    /// Lines chained and not yet written, in chain order.
    pub(super) pending: String,
    /// The appends among `pending` that wait to be written (or written and synced).
    waiters: Vec<(Durability, Ack)>,
    /// A task or the background thread is writing: the others leave their lines to it.
    writing: bool,
    /// Written appends that wait for a sync.
    unsynced: Vec<Ack>,
    /// Segments left by rotation, to be synced (with the directory) before `unsynced` is
    /// acknowledged.
    retired: Vec<Arc<File>>,
    /// The buffer of the last group written, kept for `pending` to reuse: no allocation per
    /// group once the sink is warm.
    spare: String,
    /// Buffered lines wait in `pending`, and the background thread has been told.
    flush_due: bool,
    /// A leader stopped with lines left: the background thread writes them now.
    takeover: bool,
    pub(super) closing: bool,
    /// Why the sink stopped accepting records: a write, truncation or sync failed, after
    /// which what is on disk can no longer be vouched for (after a failed `fsync`, Linux may
    /// drop the dirty pages and report the next one as a success). Reopen the log to go on.
    pub(super) poisoned: Option<String>,
}

impl State {
    pub(super) fn new(chain: Chain) -> Self {
        State {
            chain,
            pending: String::new(),
            waiters: Vec::new(),
            spare: String::new(),
            writing: false,
            unsynced: Vec::new(),
            retired: Vec::new(),
            flush_due: false,
            takeover: false,
            closing: false,
            poisoned: None,
        }
    }

    fn idle(&self) -> bool {
        self.pending.is_empty() && self.waiters.is_empty()
    }

    /// Records why the sink failed (the first reason stays) and fails everything queued.
    fn poison(&mut self, why: String) -> AuditError {
        tracing::error!(error = %why, "audit log failed; refusing further records until reopened");
        let why = self.poisoned.get_or_insert(why).clone();
        let error = AuditError::Unavailable(why);
        self.pending.clear();
        for (_, tx) in self.waiters.drain(..) {
            let _ = tx.send(Err(error.clone()));
        }
        error
    }
}

pub(super) struct Shared {
    state: Mutex<State>,
    /// Wakes the background thread (the only one that ever waits on it).
    wake: Condvar,
    /// The segment being appended to. Only the holder of `State::writing` writes through it;
    /// the background thread takes the current file from it to sync.
    segment: Mutex<Segment>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn new(state: State, segment: Segment) -> Self {
        Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            segment: Mutex::new(segment),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Chains a record with `make` and sees it made as durable as `durability` asks: written
    /// here and now when no one else is writing, left to the writer otherwise. The receiver
    /// resolves once it is (at once for `buffered`: `None`).
    pub(super) fn enqueue<T>(
        &self,
        durability: Durability,
        make: impl FnOnce(&mut Chain, &mut String) -> T,
    ) -> Result<(T, Option<crate::sink::Ack>), AuditError> {
        let mut st = self.lock();
        if st.closing {
            return Err(AuditError::Closed);
        }
        if let Some(why) = &st.poisoned {
            return Err(AuditError::Unavailable(why.clone()));
        }
        let st_ref = &mut *st;
        let made = make(&mut st_ref.chain, &mut st_ref.pending);
        if durability == Durability::Buffered {
            if !st.writing && !st.flush_due {
                st.flush_due = true;
                self.wake.notify_one();
            }
            return Ok((made, None));
        }
        let (tx, rx) = oneshot::channel();
        st.waiters.push((durability, tx));
        if !st.writing {
            st.writing = true;
            drop(self.drain(st, LEADER_ROUNDS));
        }
        Ok((made, Some(rx)))
    }

    /// Writes what is pending, group by group, as the one writer (`writing` is set), for at
    /// most `rounds` groups; then hands the rest to the background thread. Returns with
    /// `writing` cleared.
    fn drain<'a>(&'a self, mut st: MutexGuard<'a, State>, rounds: usize) -> MutexGuard<'a, State> {
        for round in 0.. {
            if st.idle() {
                break;
            }
            if let Some(why) = st.poisoned.clone() {
                // Queued before the failure was seen: nothing more is written after a failed
                // write or sync (a later fsync could report pages as durable that the failed
                // one dropped), and nothing more is acknowledged.
                st.poison(why);
                break;
            }
            if round == rounds {
                st.takeover = true;
                self.wake.notify_one();
                break;
            }
            let spare = std::mem::take(&mut st.spare);
            let mut bytes = std::mem::replace(&mut st.pending, spare);
            let waiters = std::mem::take(&mut st.waiters);
            drop(st);
            let written = lock(&self.segment).write(bytes.as_bytes());
            st = self.lock();
            match written {
                Ok(retired) => {
                    st.retired.extend(retired);
                    for (durability, tx) in waiters {
                        if durability == Durability::Fsync {
                            st.unsynced.push(tx);
                        } else {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    if !st.unsynced.is_empty() || !st.retired.is_empty() {
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    // Nothing of this group is in the log (it was cut back, or the sink is
                    // poisoned). Records chained since link to the failed ones, and buffered
                    // appends were acknowledged already: fail everything from here on (the
                    // sink refuses appends until reopened, which resumes from the file).
                    let error = st.poison(format!("writing the audit log failed: {e}"));
                    for (_, tx) in waiters {
                        let _ = tx.send(Err(error.clone()));
                    }
                    break;
                }
            }
            bytes.clear();
            st.spare = bytes;
        }
        st.writing = false;
        if st.closing {
            self.wake.notify_one();
        }
        st
    }

    /// Syncs retired segments (and the directory), then the current one, then acknowledges
    /// every append that waited for it. Called by the background thread without the lock.
    fn sync(&self, retired: Vec<Arc<File>>, dir: &Path) -> Result<(), AuditError> {
        self.sync_files(&retired, dir).map_err(|e| {
            let mut st = self.lock();
            st.poison(format!("syncing the audit log failed: {e}"))
        })
    }

    fn sync_files(&self, retired: &[Arc<File>], dir: &Path) -> io::Result<()> {
        if !retired.is_empty() {
            for file in retired {
                file.sync_all()?;
            }
            sync_dir(dir)?;
        }
        let current = lock(&self.segment).file.clone();
        current.sync_data()
    }

    /// The background thread: see the module docs.
    pub(super) fn run(&self, dir: PathBuf) {
        let mut st = self.lock();
        loop {
            if !st.unsynced.is_empty() || !st.retired.is_empty() {
                let waiters = std::mem::take(&mut st.unsynced);
                let retired = std::mem::take(&mut st.retired);
                drop(st);
                let synced = self.sync(retired, &dir);
                for tx in waiters {
                    let _ = tx.send(synced.clone());
                }
                st = self.lock();
                continue;
            }
            if st.closing {
                if st.writing {
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                if !st.idle() {
                    st.writing = true;
                    st = self.drain(st, usize::MAX);
                    continue;
                }
                // Nothing left: make `buffered` and `written` records durable too.
                if st.poisoned.is_none() {
                    drop(st);
                    if let Err(e) = lock(&self.segment).file.sync_all() {
                        tracing::error!(error = %e, "audit log: the final sync on close failed");
                    }
                }
                return;
            }
            if st.takeover {
                st.takeover = false;
                if !st.writing && !st.idle() {
                    st.writing = true;
                    st = self.drain(st, usize::MAX);
                }
                continue;
            }
            if st.flush_due {
                // Give an appending task the chance to carry the buffered lines along.
                st = self
                    .wake
                    .wait_timeout(st, LINGER)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
                if !st.unsynced.is_empty() || !st.retired.is_empty() || st.closing || st.takeover {
                    continue;
                }
                st.flush_due = false;
                if !st.writing && !st.idle() {
                    st.writing = true;
                    st = self.drain(st, usize::MAX);
                }
                continue;
            }
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops the sink taking appends and wakes the background thread to finish.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }
}

/// The segment file being appended to.
pub(super) struct Segment {
    pub(super) dir: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) number: u64,
    pub(super) size: u64,
    pub(super) max: u64,
}

impl Segment {
    /// Writes a group of whole lines, rotating first if the segment is full; returns the
    /// segment that rotation retired, for the background thread to sync. On failure the
    /// segment is cut back to where it was, so no partial line stays behind.
    fn write(&mut self, bytes: &[u8]) -> io::Result<Option<Arc<File>>> {
        let retired = if self.size >= self.max && self.size > 0 {
            Some(self.rotate()?)
        } else {
            None
        };
        let before = self.size;
        if let Err(e) = (&*self.file).write_all(bytes) {
            if let Err(cut) = self.file.set_len(before) {
                return Err(io::Error::other(format!(
                    "{e}; cutting the partial write back also failed: {cut}"
                )));
            }
            return Err(e);
        }
        self.size += bytes.len() as u64;
        Ok(retired)
    }

    /// Starts the next segment; returns the previous one. Syncing it and the directory is the
    /// background thread's: no `fsync` stalls an appending task, and appends that asked for
    /// [`Fsync`](Durability::Fsync) are acknowledged only after both.
    fn rotate(&mut self) -> io::Result<Arc<File>> {
        let next = self.number + 1;
        let path = self.dir.join(segment_name(next));
        let file = private().append(true).create_new(true).open(&path)?;
        self.number = next;
        self.size = 0;
        Ok(std::mem::replace(&mut self.file, Arc::new(file)))
    }
}
