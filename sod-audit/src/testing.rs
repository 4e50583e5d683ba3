//! Test helpers for protocol crates: prove that nothing is forwarded before its audit record
//! is committed, and that a failing sink refuses operations.
//!
//! [`GatedSink`] is a [`MemorySink`] whose acknowledgements can be *held*: an append is chained
//! at once (as the [`AuditSink`] contract requires) but its future does not resolve until the
//! gate is released. A protocol test holds the gate, sends an operation, waits until the
//! commit is held, and then checks the real upstream: nothing of the operation may have
//! arrived. It then releases the gate and sees the operation run. Set to fail, the sink refuses
//! every append, like a full disk.
//!
//! [`Faults`] is a file system for a real [`FileSink`](crate::FileSink) that fails chosen
//! writes, syncs, segment creations or directory syncs with a chosen error (`ENOSPC`, `EIO`),
//! writes short, and is cleared again: the sink's refusals and its recovery under storage
//! faults.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use sod_audit::testing::GatedSink;
//! use sod_audit::{AuditSink, CheckpointKey, Durability, Event};
//!
//! let sink = std::sync::Arc::new(GatedSink::new("gw-1", CheckpointKey::generate("k")));
//! sink.hold();
//! let appending = {
//!     let sink = sink.clone();
//!     tokio::spawn(async move {
//!         sink.append(Event::session_ended("s", "bye"), Durability::Fsync).await
//!     })
//! };
//! assert!(sink.wait_for_held(1, Duration::from_secs(5)).await);
//! assert_eq!(sink.memory().events().len(), 1); // chained, not yet acknowledged
//! sink.release();
//! assert!(appending.await.unwrap().is_ok());
//! # });
//! ```

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

mod faults;

pub use faults::{EIO, ENOSPC, Faults, Op};

use crate::MemorySink;
use crate::{Appended, AuditError, AuditSink, Checkpoint, CheckpointKey, Durability, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    Hold,
    Fail,
}

/// A memory sink with a gate. See the [module docs](self).
pub struct GatedSink {
    memory: MemorySink,
    mode: watch::Sender<Mode>,
    held: watch::Sender<usize>,
    durabilities: Mutex<Vec<Durability>>,
}

impl GatedSink {
    /// An open gate in front of an empty memory log for `stream`.
    pub fn new(stream: &str, key: CheckpointKey) -> Self {
        Self {
            memory: MemorySink::new(stream, key),
            mode: watch::channel(Mode::Open).0,
            held: watch::channel(0).0,
            durabilities: Mutex::new(Vec::new()),
        }
    }

    /// The log behind the gate.
    pub fn memory(&self) -> &MemorySink {
        &self.memory
    }

    /// From now on, appends are chained but not acknowledged until [`release`](Self::release).
    pub fn hold(&self) {
        self.mode.send_replace(Mode::Hold);
    }

    /// Acknowledges held appends and opens the gate.
    pub fn release(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// Makes every append fail (`true`), held ones included, or opens the gate (`false`).
    pub fn fail(&self, failing: bool) {
        self.mode
            .send_replace(if failing { Mode::Fail } else { Mode::Open });
    }

    /// Appends waiting at the gate now.
    pub fn held(&self) -> usize {
        *self.held.borrow()
    }

    /// Waits until at least `n` appends are held, up to `timeout`; whether they are.
    pub async fn wait_for_held(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.held.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|held| *held >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The durability each accepted append asked for, in order (checkpoints excluded).
    pub fn durabilities(&self) -> Vec<Durability> {
        self.durabilities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failed() -> AuditError {
        AuditError::Unavailable("the gated test sink is set to fail".into())
    }
}

impl AuditSink for GatedSink {
    fn append(
        &self,
        event: Event,
        durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>> {
        let mode = *self.mode.borrow();
        if mode == Mode::Fail {
            return Box::pin(async { Err(Self::failed()) });
        }
        let appended = self.memory.append(event, durability);
        self.durabilities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(durability);
        let mut rx = self.mode.subscribe();
        Box::pin(async move {
            let appended = appended.await?;
            if mode == Mode::Hold {
                self.held.send_modify(|n| *n += 1);
                let _held = Held(&self.held);
                let released = rx.wait_for(|m| *m != Mode::Hold).await.map(|m| *m);
                if !matches!(released, Ok(Mode::Open)) {
                    return Err(Self::failed());
                }
            }
            Ok(appended)
        })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
        if *self.mode.borrow() == Mode::Fail {
            return Box::pin(async { Err(Self::failed()) });
        }
        self.memory.checkpoint()
    }
}

/// Counts an append as held for as long as it waits (even if its future is dropped).
struct Held<'a>(&'a watch::Sender<usize>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}
