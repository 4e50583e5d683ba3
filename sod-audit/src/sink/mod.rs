//! Where records go: the [`AuditSink`] contract and the chain every sink keeps.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use crate::record::{self, Hash};
use crate::{Checkpoint, CheckpointKey, Durability, Event};

pub mod file;
pub mod memory;
pub mod postgres;

/// Resolves when a sink's writer has made an append as durable as it asked.
pub(crate) type Ack = tokio::sync::oneshot::Receiver<Result<(), AuditError>>;

/// Waits for an append's acknowledgement (none for `buffered`).
pub(crate) async fn settle(ack: Option<Ack>) -> Result<(), AuditError> {
    match ack {
        None => Ok(()),
        Some(rx) => rx.await.unwrap_or(Err(AuditError::Closed)),
    }
}

/// Where an appended record landed in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

/// The sink could not record. Callers refuse the operation (invariant I4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Writing failed (disk full, I/O error, the sink was told to fail).
    #[error("audit unavailable: {0}")]
    Unavailable(String),
    /// The sink was shut down.
    #[error("audit unavailable: the audit sink is closed")]
    Closed,
}

/// An append-only, hash-chained audit log.
///
/// The durability contract: `append` returns `Ok` only once the record is at least as durable
/// as `durability` says, and every record whose `append` returned `Ok` with
/// [`Written`](Durability::Written) or [`Fsync`](Durability::Fsync) survives, intact and in
/// order, what that level promises. Records are chained in the order their appends were
/// accepted; concurrent appends may share one write and one `fsync` (group commit).
///
/// A record takes its place in the chain when `append` is *called*; the returned future only
/// waits for the durability asked for. Dropping the future does not withdraw the record, so a
/// caller that cannot wait (a completion hook) may append and drop.
pub trait AuditSink: Send + Sync + 'static {
    /// Appends `event`.
    fn append(
        &self,
        event: Event,
        durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>>;

    /// Writes a signed checkpoint of the current head now (durably, as with
    /// [`Fsync`](Durability::Fsync)) and returns it, for safekeeping outside the log. `Ok(None)`
    /// when the log is empty.
    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>>;
}

/// The chain state of one stream: what the next record links to, and when a checkpoint is due.
#[derive(Clone)]
pub(crate) struct Chain {
    stream: String,
    key: CheckpointKey,
    next_seq: u64,
    head: Hash,
    /// Records (checkpoints included) since the last checkpoint.
    since_checkpoint: u64,
    every: u64,
}

impl Chain {
    pub(crate) fn new(stream: &str, key: CheckpointKey, every: u64) -> Self {
        Self {
            stream: stream.to_owned(),
            key,
            next_seq: 0,
            head: Hash::GENESIS,
            since_checkpoint: 0,
            every: every.max(1),
        }
    }

    /// Continues after record `seq` with hash `head` (reopening a log).
    pub(crate) fn resume(&mut self, seq: u64, head: Hash, since_checkpoint: u64) {
        self.next_seq = seq + 1;
        self.head = head;
        self.since_checkpoint = since_checkpoint;
    }

    /// Where the chain is now, to go back to with [`reset`](Self::reset).
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            next_seq: self.next_seq,
            head: self.head,
            since_checkpoint: self.since_checkpoint,
        }
    }

    /// Goes back to `mark`: the records chained after it are forgotten (they were never
    /// written, and their appends failed).
    pub(crate) fn reset(&mut self, mark: Mark) {
        self.next_seq = mark.next_seq;
        self.head = mark.head;
        self.since_checkpoint = mark.since_checkpoint;
    }

    pub(crate) fn head(&self) -> Option<(u64, Hash)> {
        self.next_seq.checked_sub(1).map(|seq| (seq, self.head))
    }

    /// Encodes `event` as the next record: its line (with newline) and where it landed.
    pub(crate) fn push(&mut self, event: &Event) -> (String, Appended) {
        let ts_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let seq = self.next_seq;
        let (mut line, hash) = record::encode(&self.stream, seq, ts_us, self.head, event);
        line.push('\n');
        self.next_seq += 1;
        self.head = hash;
        self.since_checkpoint = if matches!(event, Event::Checkpoint(_)) {
            0
        } else {
            self.since_checkpoint.saturating_add(1)
        };
        (line, Appended { seq, hash })
    }

    /// A checkpoint of the current head, if the periodic one is due (or `force`).
    pub(crate) fn checkpoint(&self, force: bool) -> Option<Checkpoint> {
        if !force && self.since_checkpoint < self.every {
            return None;
        }
        let (seq, head) = self.head()?;
        Some(self.key.sign(&self.stream, seq, head))
    }

    /// Appends `event` and, when due, a checkpoint record after it.
    pub(crate) fn push_with_checkpoint(&mut self, event: &Event, out: &mut impl Lines) -> Appended {
        let (line, appended) = self.push(event);
        out.push_line(appended.seq, line);
        if let Some(cp) = self.checkpoint(false) {
            let (line, at) = self.push(&Event::Checkpoint(cp));
            out.push_line(at.seq, line);
        }
        appended
    }

    /// Appends a checkpoint of the current head now; `None` when the chain is empty.
    pub(crate) fn push_checkpoint(
        &mut self,
        out: &mut impl Lines,
    ) -> Option<(Checkpoint, Appended)> {
        let cp = self.checkpoint(true)?;
        let (line, appended) = self.push(&Event::Checkpoint(cp.clone()));
        out.push_line(appended.seq, line);
        Some((cp, appended))
    }
}

/// A position in a [`Chain`]: what the record after it links to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    next_seq: u64,
    head: Hash,
    since_checkpoint: u64,
}

/// Where a sink collects the lines (with their newline) of records it is about to write.
pub(crate) trait Lines {
    fn push_line(&mut self, seq: u64, line: String);
}

impl Lines for String {
    fn push_line(&mut self, _seq: u64, line: String) {
        self.push_str(&line);
    }
}

/// A sink whose writer acknowledges appends asynchronously: chains records into its `Out`
/// under its lock and hands back the acknowledgement to wait for.
pub(crate) trait Queue: Sync {
    type Out: Lines;

    fn enqueue(
        &self,
        durability: Durability,
        make: impl FnOnce(&mut Chain, &mut Self::Out) -> Option<Appended>,
    ) -> Result<(Option<Appended>, Option<Ack>), AuditError>;
}

/// [`AuditSink::append`] for a [`Queue`].
pub(crate) fn queue_append<Q: Queue>(
    q: &Q,
    event: Event,
    durability: Durability,
) -> BoxFuture<'_, Result<Appended, AuditError>> {
    let queued = q.enqueue(durability, |chain, out| {
        Some(chain.push_with_checkpoint(&event, out))
    });
    Box::pin(async move {
        let (appended, ack) = queued?;
        settle(ack).await?;
        appended.ok_or(AuditError::Closed)
    })
}

/// [`AuditSink::checkpoint`] for a [`Queue`].
pub(crate) fn queue_checkpoint<Q: Queue>(
    q: &Q,
) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
    let mut taken = None;
    let queued = q.enqueue(Durability::Fsync, |chain, out| {
        let (cp, appended) = chain.push_checkpoint(out)?;
        taken = Some(cp);
        Some(appended)
    });
    Box::pin(async move {
        let (_, ack) = queued?;
        settle(ack).await?;
        Ok(taken)
    })
}
