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
//! who wait), syncing segments retired by rotation, syncing once [`SYNC_BEHIND`] bytes are
//! written and not synced, writing buffered lines no `written` append has carried along within
//! [`LINGER`], and the final write and sync on close.
//!
//! # Storage faults
//!
//! A failed write, segment creation or sync makes the log *unavailable*
//! ([`State::failed`]): the appends waiting at that moment and every append after it fail with
//! [`AuditError::Unavailable`] (the gateways refuse the operation, invariant I4), and records
//! chained but not yet written are dropped (their `written` and `fsync` appends fail; a
//! `buffered` one is lost, as its [durability](Durability::Buffered) says). The chain goes back
//! to the last record written.
//!
//! The segment keeps in memory every byte written since the last successful sync (its
//! *tail*): after a failed `fsync` the kernel may have dropped those pages and will report the
//! next `fsync` as a success (fsyncgate), so they are never synced again as they are. The next
//! append after a failure *recovers* first, as the writer: it removes the segments begun since
//! the last sync, cuts the segment synced last back to where the sync left it, writes the tail
//! into it again, syncs it and the directory, and only then chains its own record. A partial
//! record (a write cut short) is never in the tail, so it is gone; every acknowledged record is
//! before the cut (synced) or in the tail, so none is lost. Records whose append failed after they were written (a failed
//! `fsync`, or one that failed while their group was being written) may be in it too: an
//! attempt recorded without an outcome, as after a crash, never one claimed as forwarded. If
//! the recovery fails, that append fails as well, and so does every append for the next
//! [`RECOVERY_BACKOFF`]; the first after it tries again. Recovery is left to appends (and to
//! `close`) rather than retried on a timer: nothing hammers a failing disk while no one needs
//! the log, and the first append after the fault clears pays for it (one rewrite of at most
//! about [`SYNC_BEHIND`] bytes and one `fsync`).
//!
//! What recovery cannot save: if the process dies after a failed `fsync` and before a recovery
//! succeeded, `written` records of the tail whose pages the kernel dropped are lost with it (a
//! `fsync` failure is as bad as a power loss for what it did not sync); `fsync` records never
//! are, they were not acknowledged.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::segment_name;
use super::storage::{Storage, write_all};
use crate::Durability;
use crate::sink::{AuditError, Chain, Mark};

/// How long buffered lines may wait for an appending task to carry them along before the
/// background thread writes them.
pub(super) const LINGER: Duration = Duration::from_millis(20);

/// The background thread syncs once this many bytes are written and not synced, even if no
/// append waits for it: the tail kept for recovery stays small.
pub(super) const SYNC_BEHIND: usize = 1 << 20;

/// After a failed recovery, appends fail at once for this long before one tries again.
pub(super) const RECOVERY_BACKOFF: Duration = Duration::from_millis(50);

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
    /// A task or the background thread is writing (or recovering): the others leave their
    /// lines to it.
    writing: bool,
    /// Written appends that wait for a sync.
    unsynced: Vec<Ack>,
    /// The background thread should sync although no append waits (a segment was retired,
    /// or [`SYNC_BEHIND`] bytes wait).
    sync_due: bool,
    /// The buffer of the last group written, kept for `pending` to reuse: no allocation per
    /// group once the sink is warm.
    spare: String,
    /// Buffered lines wait in `pending`, and the background thread has been told.
    flush_due: bool,
    /// A leader stopped with lines left: the background thread writes them now.
    takeover: bool,
    pub(super) closing: bool,
    /// The chain after the last record written: where it goes on after a failure.
    written: Mark,
    /// Why the log is unavailable: a write, segment creation or sync failed, and no append
    /// has recovered since (see the module docs).
    pub(super) failed: Option<String>,
    /// No recovery before then: the last one failed.
    retry_at: Option<Instant>,
}

impl State {
    pub(super) fn new(chain: Chain) -> Self {
        State {
            written: chain.mark(),
            chain,
            pending: String::new(),
            waiters: Vec::new(),
            spare: String::new(),
            writing: false,
            unsynced: Vec::new(),
            sync_due: false,
            flush_due: false,
            takeover: false,
            closing: false,
            failed: None,
            retry_at: None,
        }
    }

    fn idle(&self) -> bool {
        self.pending.is_empty() && self.waiters.is_empty()
    }

    /// Makes the log unavailable for `why` (the first reason stays until recovery) and fails
    /// everything queued: lines not yet written are dropped.
    fn fail(&mut self, why: String) -> AuditError {
        tracing::error!(error = %why, "audit log unavailable; refusing records until it recovers");
        let why = self.failed.get_or_insert(why).clone();
        let error = AuditError::Unavailable(why);
        self.pending.clear();
        self.sync_due = false;
        for (_, tx) in self.waiters.drain(..) {
            let _ = tx.send(Err(error.clone()));
        }
        for tx in self.unsynced.drain(..) {
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
    /// the background thread takes what to sync from it.
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
    /// resolves once it is (at once for `buffered`: `None`). After a storage fault, recovers
    /// the log first (see the module docs).
    pub(super) fn enqueue<T>(
        &self,
        durability: Durability,
        make: impl FnOnce(&mut Chain, &mut String) -> T,
    ) -> Result<(T, Option<crate::sink::Ack>), AuditError> {
        let mut st = self.lock();
        if st.closing {
            return Err(AuditError::Closed);
        }
        if st.failed.is_some() {
            st = self.recover(st, false)?;
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

    /// Recovers the failed log as the writer (see the module docs); fails if someone else is
    /// writing or the recovery fails.
    ///
    /// After a recovery failed, the next is not tried before [`RECOVERY_BACKOFF`] has passed
    /// (unless `now`, on close): a disk that keeps failing is not made to rewrite the tail
    /// for every refused statement.
    fn recover<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        now: bool,
    ) -> Result<MutexGuard<'a, State>, AuditError> {
        let Some(why) = st.failed.clone() else {
            return Ok(st);
        };
        let backing_off = !now && st.retry_at.is_some_and(|at| Instant::now() < at);
        if st.writing || backing_off {
            return Err(AuditError::Unavailable(why));
        }
        st.writing = true;
        drop(st);
        let recovered = lock(&self.segment).recover();
        let mut st = self.lock();
        st.writing = false;
        if st.closing {
            self.wake.notify_one();
        }
        match recovered {
            Ok(()) => {
                let written = st.written;
                st.chain.reset(written);
                st.failed = None;
                st.retry_at = None;
                tracing::info!(after = %why, "audit log recovered: the records written before the failure are synced, and the chain goes on");
                if st.closing {
                    return Err(AuditError::Closed);
                }
                Ok(st)
            }
            Err(e) => {
                tracing::error!(error = %e, after = %why, "audit log: recovery failed");
                st.retry_at = Some(Instant::now() + RECOVERY_BACKOFF);
                Err(AuditError::Unavailable(format!(
                    "{why}; recovering the log failed too: {e}"
                )))
            }
        }
    }

    /// Writes what is pending, group by group, as the one writer (`writing` is set), for at
    /// most `rounds` groups; then hands the rest to the background thread. Returns with
    /// `writing` cleared.
    fn drain<'a>(&'a self, mut st: MutexGuard<'a, State>, rounds: usize) -> MutexGuard<'a, State> {
        for round in 0.. {
            if st.idle() {
                break;
            }
            if let Some(why) = st.failed.clone() {
                // Queued before the failure was seen: nothing more is written until an append
                // recovers the log.
                st.fail(why);
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
            let mark = st.chain.mark();
            drop(st);
            let written = lock(&self.segment).write(bytes.as_bytes());
            st = self.lock();
            match written {
                Ok(due) => {
                    // In the file (and in the tail, for recovery): the chain goes on after it
                    // whatever happens next.
                    st.written = mark;
                    if let Some(why) = st.failed.clone() {
                        // A sync failed meanwhile: nothing is acknowledged until recovery.
                        let error = st.fail(why);
                        for (_, tx) in waiters {
                            let _ = tx.send(Err(error.clone()));
                        }
                        break;
                    }
                    for (durability, tx) in waiters {
                        if durability == Durability::Fsync {
                            st.unsynced.push(tx);
                        } else {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    st.sync_due |= due;
                    if !st.unsynced.is_empty() || st.sync_due {
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    // Nothing of this group is in the log (the segment is cut back now or by
                    // the recovery). Records chained since link to the failed ones, and are
                    // dropped with them.
                    let error = st.fail(format!("writing the audit log failed: {e}"));
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

    /// Syncs the segments retired since the last sync (and the directory), then the current
    /// one, and moves the durable boundary past what they held. Called by the background thread
    /// without the state lock. `Ok(false)`: a recovery began before the sync ended, which may
    /// have removed what it synced; the recovery vouches for the records, not this sync.
    fn sync(&self) -> io::Result<bool> {
        let (storage, dir, retired, current, written, epoch) = {
            let seg = lock(&self.segment);
            if seg.recovering {
                return Ok(false);
            }
            (
                seg.storage.clone(),
                seg.dir.clone(),
                seg.retired.clone(),
                seg.file.clone(),
                seg.tail.len(),
                seg.epoch,
            )
        };
        if !retired.is_empty() {
            for file in &retired {
                storage.sync_all(file)?;
            }
            storage.sync_dir(&dir)?;
        }
        storage.sync_data(&current)?;
        let mut seg = lock(&self.segment);
        if seg.epoch != epoch {
            return Ok(false);
        }
        seg.synced(written, retired.len());
        Ok(true)
    }

    /// The background thread: see the module docs.
    pub(super) fn run(&self) {
        let mut st = self.lock();
        let mut recovery_tried = false;
        loop {
            if st.failed.is_none() && (!st.unsynced.is_empty() || st.sync_due) {
                let waiters = std::mem::take(&mut st.unsynced);
                st.sync_due = false;
                drop(st);
                let synced = self.sync();
                st = self.lock();
                let synced = match synced {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(AuditError::Unavailable(
                        "the audit log was recovering from a storage fault".into(),
                    )),
                    Err(e) => Err(st.fail(format!("syncing the audit log failed: {e}"))),
                };
                for tx in waiters {
                    let _ = tx.send(synced.clone());
                }
                continue;
            }
            if st.closing {
                if st.writing {
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                if st.failed.is_some() {
                    // One last try to save what was written before the failure.
                    if recovery_tried {
                        return;
                    }
                    recovery_tried = true;
                    st = match self.recover(st, true) {
                        Ok(st) => st,
                        Err(_) => self.lock(),
                    };
                    continue;
                }
                if !st.idle() {
                    st.writing = true;
                    st = self.drain(st, usize::MAX);
                    continue;
                }
                // Nothing left: make `buffered` and `written` records durable too.
                drop(st);
                if let Err(e) = self.sync() {
                    tracing::error!(error = %e, "audit log: the final sync on close failed");
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
                if !st.unsynced.is_empty() || st.sync_due || st.closing || st.takeover {
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

/// The segment file being appended to, and what was written since the last sync.
pub(super) struct Segment {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) dir: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) number: u64,
    pub(super) size: u64,
    pub(super) max: u64,
    /// Where the last successful sync left the log: segment number and length. Everything
    /// before it is durable.
    pub(super) base: (u64, u64),
    /// The bytes written after `base`, in order (across rotations): what recovery writes again.
    pub(super) tail: Vec<u8>,
    /// Where in `tail` each segment begun since `base` starts.
    pub(super) starts: Vec<(usize, u64)>,
    /// Segments retired by rotation since the last sync, to be synced (with the directory)
    /// before anything written after them is acknowledged as synced.
    pub(super) retired: Vec<Arc<File>>,
    /// Counts recovery attempts: a sync begun before one does not move `base`.
    pub(super) epoch: u64,
    /// A recovery began and has not succeeded: the files may not match `base` (segments
    /// after it may be removed), so no sync moves it.
    pub(super) recovering: bool,
}

impl Segment {
    /// Writes a group of whole lines, rotating first if the segment is full; whether the
    /// background thread should sync without waiting for an append to ask (a segment was
    /// retired, or the tail is long). On failure the segment is cut back to where it was if
    /// possible (recovery cuts it back in any case), so no partial line stays behind.
    fn write(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let rotated = self.size >= self.max && self.size > 0;
        if rotated {
            self.rotate()?;
        }
        let before = self.size;
        if let Err(e) = write_all(&*self.storage, &self.file, bytes) {
            if let Err(cut) = self.storage.set_len(&self.file, before) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{e}; cutting the partial write back also failed: {cut}"),
                ));
            }
            return Err(e);
        }
        self.size += bytes.len() as u64;
        self.tail.extend_from_slice(bytes);
        Ok(rotated || self.tail.len() >= SYNC_BEHIND)
    }

    /// Starts the next segment and retires the current one. Syncing it and the directory is
    /// the background thread's: no `fsync` stalls an appending task, and appends that asked
    /// for [`Fsync`](Durability::Fsync) are acknowledged only after both.
    fn rotate(&mut self) -> io::Result<()> {
        let next = self.number + 1;
        let file = self.storage.create(&self.dir.join(segment_name(next)))?;
        self.number = next;
        self.size = 0;
        self.starts.push((self.tail.len(), next));
        let retired = std::mem::replace(&mut self.file, Arc::new(file));
        self.retired.push(retired);
        Ok(())
    }

    /// A sync made the first `written` bytes of the tail durable, and the first `retired`
    /// retired segments: the boundary moves past them.
    fn synced(&mut self, written: usize, retired: usize) {
        self.retired.drain(..retired);
        match self.starts.iter().rposition(|&(at, _)| at <= written) {
            Some(i) => {
                let (at, number) = self.starts[i];
                self.base = (number, (written - at) as u64);
                self.starts.drain(..=i);
            }
            None => self.base.1 += written as u64,
        }
        for (at, _) in &mut self.starts {
            *at -= written;
        }
        self.tail.drain(..written);
    }

    /// Puts the log back to the last sync plus the tail, durably: removes the segments begun
    /// since, cuts the segment of `base` back to it, writes the tail again and syncs. Changes
    /// nothing in memory unless it succeeds, so it can be tried again.
    fn recover(&mut self) -> io::Result<()> {
        let (number, offset) = self.base;
        self.epoch += 1;
        self.recovering = true;
        for later in (number + 1..=self.number).rev() {
            match self.storage.remove(&self.dir.join(segment_name(later))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let file = self.storage.open(&self.dir.join(segment_name(number)))?;
        self.storage.set_len(&file, offset)?;
        write_all(&*self.storage, &file, &self.tail)?;
        self.storage.sync_all(&file)?;
        self.storage.sync_dir(&self.dir)?;
        self.number = number;
        self.size = offset + self.tail.len() as u64;
        self.file = Arc::new(file);
        self.base = (number, self.size);
        self.tail.clear();
        self.starts.clear();
        self.retired.clear();
        self.recovering = false;
        Ok(())
    }
}
