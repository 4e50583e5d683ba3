//! The [`Transcript`] of an operation recorded by a [`RecordingLayer`](crate::RecordingLayer):
//! its streams as `terminal_output` events, and a `transcript_summary` when it ends.
//!
//! The protocol awaits [`record`](Transcript::record); the chunk is stamped, copied into a
//! bounded queue (at most [`QUEUE_BYTES`] waiting) and handed to a task of the operation's
//! own, which coalesces, encodes and appends. The task keeps at most [`IN_FLIGHT`] appends
//! waiting for the sink's acknowledgement (at [`Written`](Durability::Written): handed to the
//! operating system, never an `fsync` per chunk); when the sink falls behind, the task waits,
//! the queue fills and `record` waits: memory stays bounded and the protocol slows down to
//! the pace of the log. An append that is not acknowledged within the layer's commit timeout,
//! or fails, fails the transcript: `record` then refuses, and the protocol ends the
//! operation.
//!
//! Coalescing: chunks of one stream join one event while they arrive within [`COALESCE`] of
//! the event's first chunk and it holds less than [`MAX_EVENT_BYTES`]; an event is written when
//! another stream's chunk arrives, at a resize, when it is full, when [`COALESCE`] has passed
//! (a timer: no event waits for the next chunk), and when the operation ends. A character
//! split between two events of a stream is kept whole in the later one.
//!
//! Limit: each stream may add at most the layer's transcript limit to the log (its bytes,
//! plus [`EVENT_OVERHEAD`] per event, so a flood of tiny chunks is bounded too). Beyond it,
//! chunks are counted and hashed but not stored; the summary records, per stream, every byte
//! counted, the bytes stored (always a prefix of the stream) and the SHA-256 of all of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine as _;
use futures_util::future::BoxFuture;
use sod_core::audit::{Transcript, TranscriptChunk};
use sod_core::{Refusal, RefusalCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::layer::SessionLog;
use crate::{Appended, AuditError, Durability, Event, StreamSummary};

/// Bytes that may wait in a transcript's queue (1 MiB).
pub const QUEUE_BYTES: usize = 1024 * 1024;
/// The most bytes of one stream in one `terminal_output` event (64 KiB).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// How long chunks of one stream are coalesced into one event (20 ms).
pub const COALESCE: Duration = Duration::from_millis(20);
/// Appends a transcript keeps waiting for the sink's acknowledgement.
pub const IN_FLIGHT: usize = 4;
/// What each stored event counts against the limit besides its bytes.
pub const EVENT_OVERHEAD: u64 = 128;
/// The default recording limit per stream and operation (64 MiB).
pub const DEFAULT_LIMIT: Option<u64> = Some(64 * 1024 * 1024);

/// The smallest cost of a queued message (so that resizes and tiny chunks count too).
const MIN_COST: usize = 64;

/// The streams, in summary order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Output = 0,
    Error = 1,
    Input = 2,
    Resize = 3,
}

impl Stream {
    const ALL: [Stream; 4] = [Stream::Output, Stream::Error, Stream::Input, Stream::Resize];

    fn code(self) -> &'static str {
        match self {
            Stream::Output => "o",
            Stream::Error => "e",
            Stream::Input => "i",
            Stream::Resize => "r",
        }
    }
}

enum Msg {
    Data {
        stream: Stream,
        at_us: u64,
        data: Vec<u8>,
        _permit: OwnedSemaphorePermit,
    },
    Resize {
        at_us: u64,
        text: String,
        _permit: OwnedSemaphorePermit,
    },
    /// The operation ended: write what is pending, the summary, then this completion.
    Finish(Option<Box<Event>>),
}

/// What the writing task shares with the recorder.
struct Inner {
    log: Arc<SessionLog>,
    session: String,
    op: u64,
    /// The operation's commit: `time_us` counts from here.
    started: Instant,
    limit: Option<u64>,
    permits: Arc<Semaphore>,
    /// Why the transcript failed, once it did.
    failure: OnceLock<String>,
}

impl Inner {
    fn refusal(&self, why: &str) -> Refusal {
        Refusal::new(
            RefusalCode::AuditUnavailable,
            format!("the operation's transcript cannot be recorded: {why}"),
        )
        .with_rule("audit")
    }

    fn fail(&self, why: String) {
        tracing::error!(session = %self.session, operation = self.op, error = %why, "transcript failed; the operation must end");
        let _ = self.failure.set(why);
        self.permits.close();
    }
}

enum Feed {
    /// Nothing recorded yet: no task.
    Idle,
    Running(mpsc::UnboundedSender<Msg>),
    /// The operation ended.
    Closed,
}

/// An operation's transcript. See the [module docs](self).
pub(crate) struct TranscriptRecorder {
    inner: Arc<Inner>,
    feed: Mutex<Feed>,
}

impl TranscriptRecorder {
    pub(crate) fn new(
        log: Arc<SessionLog>,
        session: String,
        op: u64,
        started: Instant,
        limit: Option<u64>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                session,
                op,
                started,
                limit,
                permits: Arc::new(Semaphore::new(QUEUE_BYTES)),
                failure: OnceLock::new(),
            }),
            feed: Mutex::new(Feed::Idle),
        }
    }

    fn check(&self) -> Result<(), Refusal> {
        match self.inner.failure.get() {
            Some(why) => Err(self.inner.refusal(why)),
            None => Ok(()),
        }
    }

    async fn permit(&self, cost: usize) -> Result<OwnedSemaphorePermit, Refusal> {
        let cost = u32::try_from(cost.clamp(MIN_COST, QUEUE_BYTES)).unwrap_or(u32::MAX);
        self.inner
            .permits
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| {
                let why = self
                    .inner
                    .failure
                    .get()
                    .map_or("it is closed", String::as_str);
                self.inner.refusal(why)
            })
    }

    /// Stamps and queues a message, starting the writing task on the first.
    fn send(&self, make: impl FnOnce(u64) -> Msg) -> Result<(), Refusal> {
        let mut feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        let at_us = u64::try_from(self.inner.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if matches!(*feed, Feed::Idle) {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| self.inner.refusal("no tokio runtime to write it"))?;
            let (tx, rx) = mpsc::unbounded_channel();
            handle.spawn(run(self.inner.clone(), rx));
            *feed = Feed::Running(tx);
        }
        match &*feed {
            Feed::Running(tx) => tx
                .send(make(at_us))
                .map_err(|_| self.inner.refusal("its writer stopped")),
            Feed::Idle | Feed::Closed => Err(self.inner.refusal("the operation has ended")),
        }
    }

    async fn data(&self, stream: Stream, data: &[u8]) -> Result<(), Refusal> {
        for piece in data.chunks(QUEUE_BYTES / 4) {
            self.check()?;
            let permit = self.permit(piece.len()).await?;
            let data = piece.to_vec();
            self.send(|at_us| Msg::Data {
                stream,
                at_us,
                data,
                _permit: permit,
            })?;
        }
        self.check()
    }

    /// Ends the transcript with the operation. Returns `completed` when no task writes it
    /// (nothing was recorded, or the task is gone): the caller appends it.
    pub(crate) fn finish(&self, completed: Option<Event>) -> Option<Event> {
        let mut feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *feed, Feed::Closed) {
            Feed::Running(tx) => match tx.send(Msg::Finish(completed.map(Box::new))) {
                Ok(()) => None,
                Err(mpsc::error::SendError(Msg::Finish(completed))) => completed.map(|e| *e),
                Err(_) => None,
            },
            Feed::Idle | Feed::Closed => completed,
        }
    }
}

impl Transcript for TranscriptRecorder {
    fn record<'a>(&'a self, chunk: TranscriptChunk<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            match chunk {
                TranscriptChunk::Output(d) if !d.is_empty() => self.data(Stream::Output, d).await,
                TranscriptChunk::Error(d) if !d.is_empty() => self.data(Stream::Error, d).await,
                TranscriptChunk::Input(d) if !d.is_empty() => self.data(Stream::Input, d).await,
                TranscriptChunk::Output(_)
                | TranscriptChunk::Error(_)
                | TranscriptChunk::Input(_) => self.check(),
                TranscriptChunk::Resize { cols, rows } => {
                    self.check()?;
                    let permit = self.permit(MIN_COST).await?;
                    let text = format!("{cols}x{rows}");
                    self.send(|at_us| Msg::Resize {
                        at_us,
                        text,
                        _permit: permit,
                    })?;
                    self.check()
                }
            }
        })
    }
}

/// One stream's account.
struct Account {
    bytes: u64,
    stored: u64,
    /// What stored events have counted against the limit.
    used: u64,
    /// The limit was reached: nothing more is stored.
    full: bool,
    hash: digest::Context,
    /// The start of a character split by an event boundary, for the next event.
    carry: Vec<u8>,
}

impl Account {
    fn new() -> Self {
        Self {
            bytes: 0,
            stored: 0,
            used: 0,
            full: false,
            hash: digest::Context::new(&digest::SHA256),
            carry: Vec::new(),
        }
    }
}

/// The event being coalesced.
struct Pending {
    stream: Stream,
    at_us: u64,
    data: Vec<u8>,
}

/// The writing task's state. `sink` outlives the appends in flight.
struct Writer<'a> {
    inner: &'a Inner,
    sink: &'a dyn crate::AuditSink,
    timeout: Duration,
    accounts: [Account; 4],
    pending: Option<Pending>,
    in_flight: VecDeque<BoxFuture<'a, Result<Appended, AuditError>>>,
}

async fn run(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let sink = inner.log.recorder.sink.clone();
    let mut w = Writer {
        inner: &inner,
        sink: &*sink,
        timeout: inner.log.recorder.commit_timeout,
        accounts: [
            Account::new(),
            Account::new(),
            Account::new(),
            Account::new(),
        ],
        pending: None,
        in_flight: VecDeque::new(),
    };
    loop {
        let deadline = w.pending.as_ref().map(|p| {
            tokio::time::Instant::from_std(
                inner.started + Duration::from_micros(p.at_us).saturating_add(COALESCE),
            )
        });
        let msg = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => {
                    w.flush(true).await;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match msg {
            Some(Msg::Data {
                stream,
                at_us,
                data,
                ..
            }) => w.data(stream, at_us, &data).await,
            Some(Msg::Resize { at_us, text, .. }) => w.resize(at_us, text).await,
            Some(Msg::Finish(completed)) => {
                w.finish(completed.map(|e| *e));
                return;
            }
            // The recorder was dropped without the operation's end being reported.
            None => {
                w.finish(None);
                return;
            }
        }
    }
}

impl<'a> Writer<'a> {
    fn failed(&self) -> bool {
        self.inner.failure.get().is_some()
    }

    /// Counts `cost` against `stream`'s limit, if it fits.
    fn charge(&mut self, stream: Stream, cost: u64) -> bool {
        let a = &mut self.accounts[stream as usize];
        let fits = self
            .inner
            .limit
            .is_none_or(|limit| a.used.saturating_add(cost) <= limit);
        if fits {
            a.used += cost;
        } else {
            a.full = true;
        }
        fits
    }

    /// What `stream` may still store.
    fn room(&self, stream: Stream) -> u64 {
        let a = &self.accounts[stream as usize];
        match self.inner.limit {
            Some(limit) => limit.saturating_sub(a.used),
            None => u64::MAX,
        }
    }

    async fn data(&mut self, stream: Stream, at_us: u64, data: &[u8]) {
        let a = &mut self.accounts[stream as usize];
        a.bytes += data.len() as u64;
        a.hash.update(data);
        if self.failed() {
            return;
        }
        let mut rest = data;
        while !rest.is_empty() && !self.accounts[stream as usize].full {
            let joins = self.pending.as_ref().is_some_and(|p| {
                p.stream == stream
                    && p.data.len() < MAX_EVENT_BYTES
                    && Duration::from_micros(at_us.saturating_sub(p.at_us)) < COALESCE
            });
            if !joins {
                self.flush(true).await;
                if !self.charge(stream, EVENT_OVERHEAD) {
                    break;
                }
                let carry = std::mem::take(&mut self.accounts[stream as usize].carry);
                self.pending = Some(Pending {
                    stream,
                    at_us,
                    data: carry,
                });
            }
            let space = self
                .pending
                .as_ref()
                .map_or(0, |p| MAX_EVENT_BYTES.saturating_sub(p.data.len()));
            let want = rest.len().min(space);
            let room = usize::try_from(self.room(stream)).unwrap_or(usize::MAX);
            let n = want.min(room);
            if let Some(p) = self.pending.as_mut() {
                p.data.extend_from_slice(&rest[..n]);
            }
            let a = &mut self.accounts[stream as usize];
            a.stored += n as u64;
            a.used += n as u64;
            rest = &rest[n..];
            if n < want {
                // The limit cuts the stream here: the rest is only counted.
                a.full = true;
            }
        }
    }

    async fn resize(&mut self, at_us: u64, text: String) {
        let a = &mut self.accounts[Stream::Resize as usize];
        a.bytes += text.len() as u64;
        a.hash.update(text.as_bytes());
        if a.full || self.failed() {
            return;
        }
        self.flush(true).await;
        if !self.charge(Stream::Resize, EVENT_OVERHEAD + text.len() as u64) {
            return;
        }
        self.accounts[Stream::Resize as usize].stored += text.len() as u64;
        let event = self.event(Stream::Resize, at_us, text, false);
        self.append(event).await;
    }

    /// Writes the pending event; with `carry`, the start of a character split at its end is
    /// kept for the stream's next event.
    async fn flush(&mut self, carry: bool) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        if carry {
            let tail = incomplete_tail(&p.data);
            if tail > 0 && tail < p.data.len() {
                let at = p.data.len() - tail;
                self.accounts[p.stream as usize].carry = p.data.split_off(at);
            }
        }
        if p.data.is_empty() {
            return;
        }
        let (data, base64) = encode(&p.data);
        let event = self.event(p.stream, p.at_us, data, base64);
        self.append(event).await;
    }

    fn event(&self, stream: Stream, at_us: u64, data: String, base64: bool) -> Event {
        Event::TerminalOutput {
            session: self.inner.session.clone(),
            operation: Some(self.inner.op),
            time_us: at_us,
            stream: stream.code().to_owned(),
            data,
            base64,
        }
    }

    /// Appends, keeping at most [`IN_FLIGHT`] unacknowledged.
    async fn append(&mut self, event: Event) {
        if self.failed() {
            return;
        }
        self.in_flight
            .push_back(self.sink.append(event, Durability::Written));
        while self.in_flight.len() > IN_FLIGHT {
            let Some(oldest) = self.in_flight.pop_front() else {
                break;
            };
            let why = match tokio::time::timeout(self.timeout, oldest).await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "the audit sink did not write a transcript record within {:?}",
                    self.timeout
                ),
            };
            self.inner.fail(why);
            self.in_flight.clear();
        }
    }

    /// Writes what is pending and the summary, then `completed`. Nothing is awaited: each
    /// record is in the chain once appended.
    fn finish(mut self, completed: Option<Event>) {
        let mut last = Vec::new();
        if let Some(p) = self.pending.take() {
            last.push(p);
        }
        for s in Stream::ALL {
            let carry = std::mem::take(&mut self.accounts[s as usize].carry);
            if carry.is_empty() {
                continue;
            }
            match last.iter_mut().find(|p| p.stream == s) {
                Some(p) => p.data.extend_from_slice(&carry),
                None => last.push(Pending {
                    stream: s,
                    at_us: self.now_us(),
                    data: carry,
                }),
            }
        }
        if !self.failed() {
            for p in last {
                let (data, base64) = encode(&p.data);
                let event = self.event(p.stream, p.at_us, data, base64);
                drop(self.sink.append(event, Durability::Written));
            }
        }
        let streams: Vec<StreamSummary> = Stream::ALL
            .into_iter()
            .zip(self.accounts)
            .filter(|(_, a)| a.bytes > 0)
            .map(|(s, a)| StreamSummary {
                stream: s.code().to_owned(),
                bytes: a.bytes,
                stored: a.stored,
                sha256: sod_core::hex::encode(a.hash.finish().as_ref()),
            })
            .collect();
        if !streams.is_empty() {
            drop(self.sink.append(
                Event::TranscriptSummary {
                    session: self.inner.session.clone(),
                    operation: self.inner.op,
                    limit: self.inner.limit,
                    streams,
                },
                Durability::Buffered,
            ));
        }
        if let Some(completed) = completed {
            drop(self.sink.append(completed, Durability::Buffered));
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// The event's `data`: the bytes as text when they are UTF-8 and JSON escapes them into no
/// more than base64 would take; otherwise base64.
fn encode(bytes: &[u8]) -> (String, bool) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let escapes: usize = bytes
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum();
        if bytes.len() + escapes <= bytes.len().div_ceil(3) * 4 {
            return (text.to_owned(), false);
        }
    }
    (
        base64::engine::general_purpose::STANDARD.encode(bytes),
        true,
    )
}

/// How many bytes at the end of `bytes` start a character that is not complete.
fn incomplete_tail(bytes: &[u8]) -> usize {
    let from = bytes.len().saturating_sub(3);
    for i in (from..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        let have = bytes.len() - i;
        let prefix = std::str::from_utf8(&bytes[i..])
            .err()
            .is_some_and(|e| e.valid_up_to() == 0 && e.error_len().is_none());
        return if have < need && prefix { have } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_or_base64() {
        assert_eq!(encode(b"ls -la\r\n"), ("ls -la\r\n".to_owned(), false));
        // Escape sequences cost 6 bytes each in JSON: text while they are few.
        let colored = "\u{1b}[1mbold\u{1b}[0m and plain text follows here";
        assert!(!encode(colored.as_bytes()).1);
        assert!(encode("é\u{1b}[0m".as_bytes()).1);
        assert!(encode(&[0u8; 30]).1, "zeros are 6 bytes each in JSON");
        assert!(encode(&[0xff, b'a']).1);
        assert!(!encode(b"").1);
    }

    #[test]
    fn split_characters() {
        assert_eq!(incomplete_tail(b"caf\xc3"), 1);
        assert_eq!(incomplete_tail(b"\xe2\x82"), 2);
        assert_eq!(incomplete_tail(b"\xe2\x82\xac"), 0);
        assert_eq!(incomplete_tail(b"ab\xff"), 0);
        assert_eq!(incomplete_tail(b"abc"), 0);
    }
}
