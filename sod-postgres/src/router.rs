//! The router: the link between one client session and its upstream connection: every message sent upstream
//! registers a *slot* for its response, in order, and the router hands each backend message to
//! the slot it answers.
//!
//! PostgreSQL answers messages strictly in order, and after an error in the extended protocol it
//! skips everything up to the next `Sync`. The router mirrors that bookkeeping, so it always
//! knows which client message a backend message answers, even with deep pipelines, and so
//! messages the gateway injects (a refusal, an internal `Describe`) can be answered, swallowed or
//! substituted at exactly the right place in the client's stream.
//!
//! A slot's *sink* says what becomes of its messages: passed to the client, processed (masked,
//! counted) by the operation's response, swallowed, or replaced by the gateway's own error.
//! The sink of an operation's slot is installed by the driver once the service stack has
//! returned the response; until then the router buffers that slot's messages (bounded: it stops
//! reading upstream beyond [`MAX_PENDING_BYTES`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::codec::{self, BackendFrame, ErrorBuilder, Limits, TransactionStatus, tag};
use crate::net::{ReadHalf, WriteHalf};

/// The largest backend message the router accepts: the server's own limit on a value is 1 GB,
/// but results this large are the client's business; a message beyond this ends the session.
const MAX_BACKEND_MESSAGE: usize = 256 * 1024 * 1024;

/// The router's loop, until the link closes: reads the server, routes each message to its
/// slot ([`Link::route`]), writes to the client what can be written in order. It stops
/// reading the server while too much waits for sinks not yet installed
/// ([`Link::saturated`]), and when the link broke it tells the client why, as a FATAL error.
/// `rbuf` holds what was read from the server before the session began. A client that
/// accepts nothing for `write_timeout` while there is something for it breaks the link.
/// Returns the read half and what is left unread in `rbuf`, for a session that ends cleanly
/// to hand its connection back ([`Link::release`]).
pub(crate) async fn run(
    link: &Link,
    mut up_read: ReadHalf,
    mut rbuf: BytesMut,
    mut client: WriteHalf,
    limits: Limits,
    write_timeout: Option<Duration>,
) -> (ReadHalf, BytesMut) {
    // Grown on first use and kept: an idle session holds no write buffer.
    let mut out = BytesMut::new();
    let backend_limits = Limits {
        max_message: limits.max_message.max(MAX_BACKEND_MESSAGE),
        ..limits
    };
    loop {
        let wake = link.router_wakeup();
        let mut frames = Vec::new();
        loop {
            match codec::decode_backend(&mut rbuf, &backend_limits) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    link.close(format!("the server broke the protocol: {e}"));
                    break;
                }
            }
        }
        link.route(frames, &mut out);
        if !out.is_empty() {
            let written = match write_timeout {
                Some(limit) => tokio::time::timeout(limit, client.write_all(&out)).await,
                None => Ok(client.write_all(&out).await),
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    link.close("the client went away");
                    break;
                }
                Err(_) => {
                    let secs = write_timeout.map_or(0, |t| t.as_secs());
                    link.close(format!(
                        "the client read nothing of its results for {secs} s (client_write_timeout)"
                    ));
                    // Nothing more is written to a client that does not read (a TLS
                    // close_notify could block like the write did: bounded).
                    let _ = tokio::time::timeout(FAREWELL, client.shutdown()).await;
                    break;
                }
            }
            out.clear();
        }
        if link.closed().is_some() {
            if let Some(why) = link.broken() {
                let mut err = BytesMut::new();
                ErrorBuilder::fatal("08006", format!("sod: {why}")).encode(&mut err);
                // Bounded: the client may not be reading.
                let _ = tokio::time::timeout(FAREWELL, client.write_all(&err)).await;
            }
            let _ = tokio::time::timeout(FAREWELL, client.shutdown()).await;
            break;
        }
        if link.saturated() {
            wake.await;
            continue;
        }
        tokio::select! {
            n = up_read.read_buf(&mut rbuf) => match n {
                Ok(0) | Err(_) => link.upstream_closed(),
                Ok(_) => {}
            },
            _ = wake => {}
        }
    }
    (up_read, rbuf)
}

/// How long the router tries to tell the client why the link broke, and to close its side.
const FAREWELL: Duration = Duration::from_secs(1);

/// Bytes the router buffers for slots whose sink is not installed yet before it stops reading
/// the upstream connection (back-pressure instead of unbounded memory).
pub(crate) const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// What response a message sent upstream will get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Parse,
    Bind,
    DescribeStatement,
    DescribePortal,
    Execute,
    Close,
    Sync,
    /// A simple query: everything up to `ReadyForQuery`.
    Query,
    /// A fastpath function call: everything up to `ReadyForQuery`.
    FunctionCall,
    /// Messages produced by the gateway itself (complete on creation).
    Local,
    /// `CopyDone` or `CopyFail`: answers nothing, but ends copy-in mode, during which the
    /// server ignores `Sync`.
    CopyEnd,
    /// Backend messages that answer nothing (notices, notifications between statements).
    Unsolicited,
}

impl Expect {
    /// Messages the server takes during copy-in mode without leaving it: `CopyDone` and
    /// `CopyFail` (which end it), `Sync` (ignored), and the gateway's own answers, which never
    /// reach the server. (`CopyData` and `Flush` have no slot.)
    fn allowed_in_copy_in(self) -> bool {
        matches!(
            self,
            Expect::CopyEnd | Expect::Sync | Expect::Local | Expect::Unsolicited
        )
    }

    /// Extended-protocol messages: an error in one makes the server skip to `Sync`.
    fn is_extended(self) -> bool {
        matches!(
            self,
            Expect::Parse
                | Expect::Bind
                | Expect::DescribeStatement
                | Expect::DescribePortal
                | Expect::Execute
                | Expect::Close
        )
    }

    /// Whether `tag` is the last message of this response.
    fn completes(self, t: u8) -> bool {
        match self {
            Expect::Parse => t == tag::PARSE_COMPLETE || t == tag::ERROR_RESPONSE,
            Expect::Bind => t == tag::BIND_COMPLETE || t == tag::ERROR_RESPONSE,
            Expect::DescribeStatement | Expect::DescribePortal => {
                t == tag::ROW_DESCRIPTION || t == tag::NO_DATA || t == tag::ERROR_RESPONSE
            }
            Expect::Execute => matches!(
                t,
                tag::COMMAND_COMPLETE
                    | tag::EMPTY_QUERY_RESPONSE
                    | tag::PORTAL_SUSPENDED
                    | tag::ERROR_RESPONSE
            ),
            Expect::Close => t == tag::CLOSE_COMPLETE || t == tag::ERROR_RESPONSE,
            Expect::Sync | Expect::Query | Expect::FunctionCall => t == tag::READY_FOR_QUERY,
            Expect::Local | Expect::Unsolicited | Expect::CopyEnd => true,
        }
    }
}

/// Where `Describe` results are remembered, so masking can find the row description of an
/// `Execute` that has none of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DescKey {
    Statement(String),
    Portal(String),
}

/// Processes the messages of one operation's response (masking, counting, recording).
pub(crate) trait Process: Send {
    /// One backend message of the response; whatever the client should see goes to `out`.
    fn frame(&mut self, frame: BackendFrame, out: &mut BytesMut, descriptions: &Descriptions);
    /// The response is over. `skipped` when the server never executed the message (it was
    /// skipping to `Sync` after an earlier error).
    fn finish(&mut self, skipped: bool);
}

/// Row descriptions learnt from `Describe` responses.
pub(crate) type Descriptions = HashMap<DescKey, BackendFrame>;

pub(crate) enum Sink {
    /// Forward to the client unchanged.
    Client,
    /// Drop (responses to messages the gateway injected).
    Swallow,
    /// Drop, except errors and notices (a message the gateway sent on the client's behalf, whose
    /// success the client already saw, such as a deferred `Bind`).
    Quiet,
    /// A statement's `Describe` answering the client's portal `Describe`: drop the
    /// `ParameterDescription`, give the `RowDescription` the portal's result formats.
    PortalDescription(Vec<i16>),
    /// Forward, but replace any `ErrorResponse` with this one (the gateway's refusal).
    Substitute(Bytes),
    /// Not installed yet: buffer.
    Pending,
    /// The operation's response processor.
    Process(Box<dyn Process>),
}

pub(crate) type SlotId = u64;

struct Slot {
    id: SlotId,
    expect: Expect,
    done: bool,
    /// The server skipped the message (after an earlier error); for a local slot that stands
    /// for an extended-protocol response, its messages are dropped too.
    skipped: bool,
    /// A local slot that answers an extended-protocol message, skipped like one.
    extended_local: bool,
    buffer: VecDeque<BackendFrame>,
    sink: Sink,
    /// Remember the row description this slot returns under this key.
    record: Option<DescKey>,
    /// For a message not written yet: where it ends in `State::out`.
    end: usize,
}

/// How the server runs what an operation sends: statements judged reads run in read-only
/// transactions, so the server itself refuses a write hidden where the analyzer cannot see
/// (a view or rule calling a function that writes, a trigger, a user-defined operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
}

/// The statements that switch the session's default transaction mode.
const SET_READ_ONLY: &str = "SET default_transaction_read_only = on";
const SET_READ_WRITE: &str = "SET default_transaction_read_only = off";

/// What the driver asks the link to send: one message, how it will be answered, and what to do
/// with the answer.
pub(crate) struct Outgoing<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) expect: Expect,
    pub(crate) sink: Sink,
    pub(crate) record: Option<DescKey>,
}

/// Where the link is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Messages flow both ways.
    Open,
    /// The driver sent `Terminate`: the server will close after answering what it was sent,
    /// and its closing the connection is expected.
    Ending,
    /// The session ended: nothing to tell the client.
    Ended,
    /// The link broke (the server went away, broke the protocol, a write failed): the client
    /// is told why.
    Broken(String),
}

impl Phase {
    /// Why the link is down, if it is.
    fn closed(&self) -> Option<String> {
        match self {
            Phase::Open | Phase::Ending => None,
            Phase::Ended => Some("the session ended".into()),
            Phase::Broken(why) => Some(why.clone()),
        }
    }
}

struct State {
    /// Bytes waiting for the upstream writer.
    out: BytesMut,
    slots: VecDeque<Slot>,
    /// The server is skipping to `Sync` after an error, and no `Sync` has been sent since.
    skip_until_sync: bool,
    /// The server is in copy-in mode (it sent `CopyInResponse`) and no `CopyDone`/`CopyFail`
    /// has been sent since: it ignores `Sync` until then.
    copy_in: bool,
    next_id: SlotId,
    pending_bytes: usize,
    descriptions: Descriptions,
    phase: Phase,
    /// The transaction status of the last `ReadyForQuery`.
    status: TransactionStatus,
    /// Counts `ReadyForQuery (idle)`: each one ends whatever transaction came before.
    idle_epoch: u64,
    /// Local answers were queued since the router last heard of them (see
    /// [`Link::deliver_local`]).
    locals_queued: bool,
    /// The client sent `Flush` since the router last heard of local answers.
    flush_requested: bool,
    /// Slots up to this id have had their message written (or answer nothing upstream).
    written_through: SlotId,
    /// The session's default transaction mode upstream, as the link last set it (sessions
    /// start read-only).
    access: Access,
    /// The session stays read-only: its capability allows nothing else.
    pinned: bool,
    /// Extended-protocol messages were sent since the last `Sync` (or simple query): the
    /// server is inside their implicit transaction, which only the client's `Sync` ends.
    unsynced: bool,
    /// `out` holds bytes that answer nothing (`Flush`, `CopyData`, `Terminate`, …): it must be
    /// written (see [`Link::take_outgoing`]).
    unanswered_queued: bool,
}

/// Shared by the driver (which queues messages and writes them upstream) and the router task.
pub(crate) struct Link {
    state: Mutex<State>,
    /// Wakes the router: a sink was installed or the link closed.
    router: Notify,
    /// Wakes whoever waits for every response to be delivered.
    idle: Notify,
    /// Wakes whoever waits for the link to close.
    shut: Notify,
}

/// The link is down.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the upstream connection is closed: {0}")]
pub(crate) struct Closed(pub(crate) String);

impl Link {
    /// A link for a session whose upstream connection starts read-only; `pinned`: it stays
    /// so (its capability only reads).
    pub(crate) fn new(pinned: bool) -> Self {
        Self {
            state: Mutex::new(State {
                // Grown on first use (an idle session holds none).
                out: BytesMut::new(),
                slots: VecDeque::new(),
                skip_until_sync: false,
                copy_in: false,
                next_id: 1,
                pending_bytes: 0,
                descriptions: HashMap::new(),
                phase: Phase::Open,
                status: TransactionStatus::Idle,
                idle_epoch: 0,
                locals_queued: false,
                flush_requested: false,
                written_through: 0,
                access: Access::ReadOnly,
                pinned,
                unsynced: false,
                unanswered_queued: false,
            }),
            router: Notify::new(),
            idle: Notify::new(),
            shut: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving rather than cascade.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues messages for upstream, registering one slot per message, atomically and in
    /// order. Returns the slot ids.
    pub(crate) fn send(&self, messages: Vec<Outgoing<'_>>) -> Result<Vec<SlotId>, Closed> {
        let mut st = self.lock();
        if let Some(why) = st.phase.closed() {
            return Err(Closed(why));
        }
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            st.out.extend_from_slice(m.bytes);
            let id = st.next_id;
            st.next_id += 1;
            ids.push(id);
            // During copy-in the server ignores Sync: it will not answer this one.
            let ignored = st.copy_in && m.expect == Expect::Sync;
            // Any other message it would answer is a protocol violation there: the server
            // reads it without running it and ends the copy with an error, the COPY's own
            // answer. This message gets none.
            let violates_copy = st.copy_in && !Expect::allowed_in_copy_in(m.expect);
            if m.expect == Expect::CopyEnd || violates_copy {
                st.copy_in = false;
            }
            if m.expect == Expect::Sync && !ignored {
                st.skip_until_sync = false;
            }
            match m.expect {
                Expect::Sync | Expect::Query | Expect::FunctionCall => st.unsynced = false,
                Expect::Parse
                | Expect::Bind
                | Expect::DescribeStatement
                | Expect::DescribePortal
                | Expect::Execute => st.unsynced = true,
                // Closing runs nothing a query of the gateway's could commit early (the
                // gateway closes a rebound portal before the client's next `Execute`).
                Expect::Close | Expect::Local | Expect::CopyEnd | Expect::Unsolicited => {}
            }
            let skipped =
                ignored || violates_copy || (st.skip_until_sync && m.expect != Expect::Sync);
            let end = st.out.len();
            st.slots.push_back(Slot {
                id,
                expect: m.expect,
                done: skipped || m.expect == Expect::CopyEnd,
                skipped,
                extended_local: false,
                buffer: VecDeque::new(),
                sink: m.sink,
                record: m.record,
                end,
            });
        }
        Ok(ids)
    }

    /// [`send`](Self::send)s an operation's messages to run with `access`: when the session's
    /// default transaction mode is the other one, and the messages will start a new
    /// transaction (everything written so far is answered, the server is idle, nothing queued
    /// before them ends a transaction), a `SET default_transaction_read_only` goes first, its
    /// answer swallowed. Elsewhere — inside a transaction block, or pipelined behind another
    /// transaction — the mode cannot change (PostgreSQL fixes it when a transaction starts), so
    /// a write then runs in a read-only transaction and the server refuses it (fail closed).
    pub(crate) fn send_as(
        &self,
        access: Access,
        messages: Vec<Outgoing<'_>>,
    ) -> Result<Vec<SlotId>, Closed> {
        {
            let mut st = self.lock();
            if st.phase.closed().is_none() {
                st.switch_to(access);
            }
        }
        self.send(messages)
    }

    /// Whether sending with `access` needs a switch of the session's default transaction mode
    /// that must wait for responses still outstanding: until they arrive, the session cannot
    /// be known to be at a transaction boundary. Drivers pipeline a statement behind one whose
    /// error they have seen but whose `ReadyForQuery` is still on its way (tokio-postgres
    /// does): waiting for it ([`Link::quiesce`]) lets the switch happen instead of running a
    /// write read-only. Only when the server will answer everything outstanding by itself —
    /// the last message sent ends with `ReadyForQuery` — never behind an `Execute` that waits
    /// for the client's `Sync` (waiting there would wait for ever; the write then runs
    /// read-only and is refused, fail closed).
    pub(crate) fn switch_waits(&self, access: Access) -> bool {
        let st = self.lock();
        let outstanding = st.slots.iter().filter(|s| !s.done);
        let answered_by_itself = st
            .slots
            .iter()
            .rev()
            .find(|s| s.expect != Expect::Local)
            .is_some_and(|s| {
                matches!(
                    s.expect,
                    Expect::Sync | Expect::Query | Expect::FunctionCall
                )
            });
        st.phase.closed().is_none()
            && !st.pinned
            && st.access != access
            && !st.copy_in
            && !st.skip_until_sync
            && outstanding.count() > 0
            && answered_by_itself
    }

    /// Sends bytes that expect no response (`Flush`, `CopyData`, `CopyDone`, `CopyFail`).
    pub(crate) fn send_unanswered(&self, bytes: &[u8]) -> Result<(), Closed> {
        let mut st = self.lock();
        if let Some(why) = st.phase.closed() {
            return Err(Closed(why));
        }
        st.out.extend_from_slice(bytes);
        st.unanswered_queued = true;
        Ok(())
    }

    /// Queues messages for the client that answer nothing upstream, after everything before.
    pub(crate) fn local(&self, frames: Vec<BackendFrame>) {
        self.push_local(frames, false);
    }

    /// Queues the gateway's own answer to an extended-protocol message (`BindComplete` for a
    /// deferred `Bind`): like the server's answer, it is dropped if the server is skipping to
    /// `Sync` after an earlier error.
    pub(crate) fn local_extended(&self, frames: Vec<BackendFrame>) {
        self.push_local(frames, true);
    }

    fn push_local(&self, frames: Vec<BackendFrame>, extended: bool) {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let skipped = extended && st.skip_until_sync;
        let end = st.out.len();
        st.slots.push_back(Slot {
            id,
            expect: Expect::Local,
            done: true,
            skipped,
            extended_local: extended,
            buffer: frames.into(),
            sink: Sink::Client,
            record: None,
            end,
        });
        // The router hears of it in `deliver_local`, so that the answer to a deferred `Bind`
        // reaches the client in the same write as the response that follows it.
        st.locals_queued = true;
    }

    /// Wakes the router for local answers queued since the last call, unless a response the
    /// server still owes comes first: then the router delivers them when it routes that
    /// response, in one write with it. The driver calls this before it waits for the client.
    pub(crate) fn deliver_local(&self) {
        let mut st = self.lock();
        let flush = std::mem::take(&mut st.flush_requested);
        if !std::mem::take(&mut st.locals_queued) || (!flush && st.slots.iter().any(|s| !s.done)) {
            return;
        }
        drop(st);
        self.router.notify_one();
    }

    /// The client sent `Flush`: it expects every answer so far, the gateway's own included,
    /// even if the server still owes one that comes later.
    pub(crate) fn request_flush(&self) {
        self.lock().flush_requested = true;
    }

    /// Drops everything queued for upstream and not written yet, and the slots that wait for
    /// its answers (the stack failed after the innermost service queued an operation, so it
    /// must not reach the server).
    pub(crate) fn discard_unwritten(&self) {
        let mut st = self.lock();
        st.out.clear();
        let through = st.written_through;
        for slot in st.slots.iter_mut().filter(|s| s.id > through && !s.done) {
            slot.done = true;
            slot.skipped = true;
        }
    }

    /// Installs the sink of an operation's slot. Gives the sink back if the slot is gone: the
    /// server skipped the message (an earlier error in the same pipeline), so there will be
    /// no response.
    pub(crate) fn install(&self, id: SlotId, sink: Sink) -> Option<Sink> {
        let mut st = self.lock();
        let Some(slot) = st.slots.iter_mut().find(|s| s.id == id) else {
            return Some(sink);
        };
        slot.sink = sink;
        // Usually the sink is installed before the message is even written; the router only
        // needs waking if part of the response is already buffered.
        let arrived = slot.done || !slot.buffer.is_empty();
        drop(st);
        if arrived {
            self.router.notify_one();
        }
        None
    }

    /// How many times the server has reported being idle (outside a transaction).
    pub(crate) fn idle_epoch(&self) -> u64 {
        self.lock().idle_epoch
    }

    /// Whether the session is between two exchanges, where the gateway may run a query of
    /// its own without the client noticing: every response is in (see [`Link::quiesce`]),
    /// the last one ended with `ReadyForQuery`, no implicit transaction of the extended
    /// protocol waits for a `Sync`, no copy is under way, and the transaction (if any) has
    /// not failed. The transaction status when it is.
    pub(crate) fn at_boundary(&self) -> Option<TransactionStatus> {
        let st = self.lock();
        (st.phase.closed().is_none()
            && st.slots.iter().all(|s| s.done)
            && st.out.is_empty()
            && !st.unsynced
            && !st.copy_in
            && !st.skip_until_sync
            && st.status != TransactionStatus::Failed)
            .then_some(st.status)
    }

    /// Whether extended-protocol messages were sent that only a `Sync` will complete.
    pub(crate) fn unsynced(&self) -> bool {
        self.lock().unsynced
    }

    /// Whether any response is still outstanding.
    pub(crate) fn busy(&self) -> bool {
        !self.lock().slots.is_empty()
    }

    /// Waits until every response has been delivered (or the link closed), then returns the
    /// idle epoch (see [`Link::idle_epoch`]). `None` when the server is in copy-in mode: it
    /// answers nothing more until the client's `CopyDone` or `CopyFail`, which the driver
    /// cannot read while it waits here (waiting would wedge the session).
    pub(crate) async fn quiesce(&self) -> Result<Option<u64>, Closed> {
        self.deliver_local();
        loop {
            let notified = self.idle.notified();
            {
                let st = self.lock();
                if let Some(why) = st.phase.closed() {
                    return Err(Closed(why));
                }
                if st.slots.is_empty() {
                    return Ok(Some(st.idle_epoch));
                }
                if st.copy_in {
                    return Ok(None);
                }
                if st.slots.iter().any(|s| s.done) {
                    // Answered or skipped messages leave only when the router drains them, the
                    // next time it wakes; messages the server skips bring it nothing to wake
                    // for, so wake it now.
                    self.router.notify_one();
                }
            }
            notified.await;
        }
    }

    /// Marks the link broken: both tasks stop, sends fail, and the client is told why.
    pub(crate) fn close(&self, why: impl Into<String>) {
        self.shut(Phase::Broken(why.into()));
    }

    /// Ends the session keeping the upstream connection, if it is clean: every answer
    /// delivered, nothing queued or held back, and the server idle — outside any transaction,
    /// copy or unsynced extended-protocol exchange. The router then stops as for
    /// [`finish`](Self::finish), handing back its half of the connection (see `pool`).
    /// Returns whether it did; if not, nothing changed.
    pub(crate) fn release(&self) -> bool {
        let st = self.lock();
        let clean = st.phase == Phase::Open
            && st.slots.is_empty()
            && st.out.is_empty()
            && st.pending_bytes == 0
            && st.status == TransactionStatus::Idle
            && !st.copy_in
            && !st.skip_until_sync
            && !st.unsynced
            && !st.unanswered_queued;
        drop(st);
        if clean {
            self.finish();
        }
        clean
    }

    /// The driver sent `Terminate`: the server's closing the connection is expected.
    pub(crate) fn ending(&self) {
        let mut st = self.lock();
        if st.phase == Phase::Open {
            st.phase = Phase::Ending;
        }
    }

    /// The server closed the connection: expected when the session is ending, a failure to
    /// report otherwise.
    pub(crate) fn upstream_closed(&self) {
        let ending = self.lock().phase == Phase::Ending;
        if ending {
            self.finish();
        } else {
            self.close("the server closed the connection");
        }
    }

    /// Marks the link closed because the session is ending (nothing to tell the client).
    pub(crate) fn finish(&self) {
        self.shut(Phase::Ended);
    }

    /// Moves to a closed phase, unless the link is closed already (the first reason stands).
    fn shut(&self, to: Phase) {
        let mut st = self.lock();
        if st.phase.closed().is_none() {
            st.phase = to;
        }
        drop(st);
        self.router.notify_one();
        self.idle.notify_waiters();
        self.shut.notify_waiters();
    }

    /// Resolves once the link is closed (for the driver, which may be waiting for the client
    /// when the server or the client's reading side goes away).
    pub(crate) async fn wait_closed(&self) {
        loop {
            let notified = self.shut.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Why the link is closed, if it is.
    pub(crate) fn closed(&self) -> Option<String> {
        self.lock().phase.closed()
    }

    /// Why the link broke, if it broke (as opposed to the session ending).
    pub(crate) fn broken(&self) -> Option<String> {
        match &self.lock().phase {
            Phase::Broken(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Takes the bytes queued for upstream. The driver writes them after it has handled the
    /// client messages it has (one write for a whole pipeline) and before it waits on anything,
    /// so every slot's sink is installed before its response can arrive.
    pub(crate) fn take_outgoing(&self) -> Option<BytesMut> {
        let mut st = self.lock();
        // Held back: a tail of `Parse`, `Bind`, `Describe` and `Close` only. The server answers
        // them at the client's next `Sync` or `Flush` and not before, so holding them changes
        // nothing the client can see — and keeps the session at a transaction boundary while
        // the statement they prepare has not arrived: when its `Execute` needs the other
        // transaction mode, the switch can still go in front of them (pgjdbc with autocommit
        // off sends `Parse BEGIN` in one write and its `Execute` with the writes in the next).
        let through = st.written_through;
        let bookkeeping_only = !st.unanswered_queued
            && st.slots.iter().filter(|s| s.id > through).all(|s| {
                matches!(
                    s.expect,
                    Expect::Parse
                        | Expect::Bind
                        | Expect::DescribeStatement
                        | Expect::DescribePortal
                        | Expect::Close
                        | Expect::Local
                )
            });
        if bookkeeping_only && st.phase == Phase::Open {
            return None;
        }
        st.written_through = st.next_id - 1;
        st.unanswered_queued = false;
        (!st.out.is_empty()).then(|| st.out.split())
    }

    /// For the router: a future that resolves when there may be new work (installed sinks,
    /// local messages, closing).
    pub(crate) fn router_wakeup(&self) -> tokio::sync::futures::Notified<'_> {
        self.router.notified()
    }

    /// Whether the router should stop reading upstream for now (too much buffered for a slot
    /// whose sink is not installed).
    pub(crate) fn saturated(&self) -> bool {
        self.lock().pending_bytes > MAX_PENDING_BYTES
    }

    /// Routes backend messages to their slots, then writes to `out` everything that can be
    /// written in order.
    pub(crate) fn route(&self, frames: impl IntoIterator<Item = BackendFrame>, out: &mut BytesMut) {
        let mut st = self.lock();
        for frame in frames {
            st.assign(frame);
        }
        st.drain(out);
        // Copy-in mode also ends a wait for idleness (see `quiesce`).
        let idle = st.slots.is_empty() || st.copy_in;
        drop(st);
        if idle {
            self.idle.notify_waiters();
        }
    }
}

impl State {
    /// Queues a switch of the default transaction mode to `access` ahead of everything not yet
    /// written, if the session may switch and is at a transaction boundary (see
    /// [`Link::send_as`]).
    fn switch_to(&mut self, access: Access) {
        if self.pinned || self.access == access {
            return;
        }
        let through = self.written_through;
        let written_answered = self.slots.iter().all(|s| s.id > through || s.done);
        if !written_answered
            || self.status != TransactionStatus::Idle
            || self.copy_in
            || self.skip_until_sync
        {
            return;
        }
        // The switch goes first among what is not written yet — or, when that holds complete
        // transactions already (up to a queued `Sync`), right after them, provided they run
        // no statement (only `Parse`, `Bind`, `Describe`, `Close`: bookkeeping whose
        // transaction has no mode to speak of).
        let first = self
            .slots
            .iter()
            .position(|s| s.id > through)
            .unwrap_or(self.slots.len());
        let queued = || self.slots.iter().enumerate().skip(first);
        let last_boundary = queued()
            .filter(|(_, s)| {
                matches!(
                    s.expect,
                    Expect::Sync | Expect::Query | Expect::FunctionCall
                )
            })
            .map(|(i, _)| i)
            .last();
        let at = match last_boundary {
            None => (first, 0),
            Some(k) => {
                let runs_statement = queued().take_while(|(i, _)| *i <= k).any(|(_, s)| {
                    matches!(
                        s.expect,
                        Expect::Query | Expect::FunctionCall | Expect::Execute
                    )
                });
                if runs_statement {
                    return;
                }
                (k + 1, self.slots[k].end)
            }
        };
        let (index, offset) = at;
        let sql = match access {
            Access::ReadOnly => SET_READ_ONLY,
            Access::ReadWrite => SET_READ_WRITE,
        };
        let mut set = BytesMut::new();
        if codec::frontend::query(&mut set, sql).is_err() {
            return;
        }
        let len = set.len();
        let tail = self.out.split_off(offset.min(self.out.len()));
        self.out.extend_from_slice(&set);
        self.out.extend_from_slice(&tail);
        for s in self.slots.iter_mut().skip(index) {
            s.end += len;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.slots.insert(
            index,
            Slot {
                id,
                expect: Expect::Query,
                done: false,
                skipped: false,
                extended_local: false,
                buffer: VecDeque::new(),
                sink: Sink::Swallow,
                record: None,
                end: offset + len,
            },
        );
        self.access = access;
    }

    fn assign(&mut self, frame: BackendFrame) {
        let t = frame.tag();
        if t == tag::READY_FOR_QUERY
            && let Some(status) = frame
                .body()
                .first()
                .and_then(|b| TransactionStatus::from_byte(*b))
        {
            self.status = status;
            if status == TransactionStatus::Idle {
                self.idle_epoch += 1;
            }
        }
        self.pending_bytes += frame.len();
        let Some(idx) = self.slots.iter().position(|s| !s.done) else {
            // Nothing is waiting for it: a notice or notification between statements.
            let id = self.next_id;
            self.next_id += 1;
            self.slots.push_back(Slot {
                id,
                expect: Expect::Unsolicited,
                done: true,
                skipped: false,
                extended_local: false,
                buffer: VecDeque::from([frame]),
                sink: Sink::Client,
                record: None,
                end: 0,
            });
            return;
        };
        if t == tag::COPY_IN_RESPONSE || t == tag::COPY_BOTH_RESPONSE {
            // Copy-in mode: Syncs sent after this statement and before CopyDone/CopyFail are
            // ignored by the server.
            let mut ended = false;
            for later in self.slots.iter_mut().skip(idx + 1) {
                match later.expect {
                    Expect::CopyEnd => {
                        ended = true;
                        break;
                    }
                    Expect::Sync => {
                        later.done = true;
                        later.skipped = true;
                    }
                    e if Expect::allowed_in_copy_in(e) => {}
                    _ => {
                        // A message sent behind the COPY that is not part of it: the server
                        // reads it as a protocol violation, without running or answering
                        // it, and ends the copy with an error (see `Link::send`).
                        later.done = true;
                        later.skipped = true;
                        ended = true;
                        break;
                    }
                }
            }
            self.copy_in = !ended;
        }
        let slot = &mut self.slots[idx];
        slot.buffer.push_back(frame);
        let asynchronous = matches!(
            t,
            tag::NOTICE_RESPONSE | tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS
        );
        if asynchronous || !slot.expect.completes(t) {
            return;
        }
        slot.done = true;
        if t == tag::ERROR_RESPONSE && slot.expect.is_extended() {
            // The server now skips everything up to the next Sync.
            let mut saw_sync = false;
            for later in self.slots.iter_mut().skip(idx + 1) {
                if later.expect == Expect::Sync {
                    if later.skipped {
                        // Sent during copy-in, ignored by the server: it ends no skipping.
                        continue;
                    }
                    saw_sync = true;
                    break;
                }
                if later.expect == Expect::Local && !later.extended_local {
                    continue;
                }
                later.done = true;
                later.skipped = true;
            }
            if !saw_sync {
                self.skip_until_sync = true;
            }
        }
    }

    fn drain(&mut self, out: &mut BytesMut) {
        while let Some(front) = self.slots.front_mut() {
            if matches!(front.sink, Sink::Pending) && !front.skipped {
                break;
            }
            if front.skipped {
                front.buffer.clear();
            }
            while let Some(frame) = front.buffer.pop_front() {
                self.pending_bytes = self.pending_bytes.saturating_sub(frame.len());
                if let (Some(key), tag::ROW_DESCRIPTION | tag::NO_DATA) =
                    (&front.record, frame.tag())
                {
                    self.descriptions.insert(key.clone(), frame.clone());
                }
                match &mut front.sink {
                    Sink::Client => frame.encode_into(out),
                    Sink::Swallow | Sink::Pending => {}
                    Sink::Quiet => {
                        if matches!(frame.tag(), tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE) {
                            frame.encode_into(out);
                        }
                    }
                    Sink::PortalDescription(formats) => match frame.tag() {
                        tag::PARAMETER_DESCRIPTION => {}
                        tag::ROW_DESCRIPTION => with_formats(&frame, formats, out),
                        _ => frame.encode_into(out),
                    },
                    Sink::Substitute(err) => {
                        if frame.tag() == tag::ERROR_RESPONSE {
                            out.extend_from_slice(err);
                        } else {
                            frame.encode_into(out);
                        }
                    }
                    Sink::Process(p) => p.frame(frame, out, &self.descriptions),
                }
            }
            if !front.done {
                break;
            }
            if let Some(mut slot) = self.slots.pop_front()
                && let Sink::Process(p) = &mut slot.sink
            {
                p.finish(slot.skipped);
            }
        }
    }
}

/// Writes `frame` (a `RowDescription`) with each column's format set as a `Bind`'s result
/// formats say (none: text; one: all; otherwise one per column).
fn with_formats(frame: &BackendFrame, formats: &[i16], out: &mut BytesMut) {
    use crate::codec::BackendMessage;
    let Ok(BackendMessage::RowDescription(rd)) = frame.parse() else {
        frame.encode_into(out);
        return;
    };
    let fields: Vec<_> = rd
        .fields()
        .enumerate()
        .map(|(i, mut f)| {
            f.format = match formats {
                [] => 0,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(0),
            };
            f
        })
        .collect();
    if crate::codec::backend::row_description(out, &fields).is_err() {
        frame.encode_into(out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A simple query that puts the server in copy-in mode is answered only after the client's
    /// `CopyDone` or `CopyFail`, which the driver cannot read while it waits for the link to be
    /// idle: the wait must end when the copy starts. (Found by the `pg_session_driver` fuzz
    /// target: `COPY … FROM STDIN` then, in the same write, a read — the access-mode switch
    /// waited for ever, and the session outlived its client.)
    #[tokio::test]
    async fn quiesce_ends_when_the_server_starts_copy_in() {
        let link = Link::new(false);
        let mut query = BytesMut::new();
        codec::frontend::query(&mut query, "COPY t FROM STDIN").expect("encodes");
        link.send(vec![Outgoing {
            bytes: &query,
            expect: Expect::Query,
            sink: Sink::Client,
            record: None,
        }])
        .expect("open link");
        let _ = link.take_outgoing();
        let mut answer = BytesMut::new();
        codec::backend::copy_in_response(&mut answer, 0, &[0]).expect("encodes");
        let frame = codec::decode_backend(&mut answer, &Limits::default())
            .expect("decodes")
            .expect("a whole frame");
        let mut out = BytesMut::new();
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(link.quiesce(), async {
                tokio::task::yield_now().await;
                link.route([frame], &mut out);
            })
            .0
        })
        .await;
        assert!(
            matches!(waited, Ok(Ok(None))),
            "quiesce must return (None: copy-in) once the server is in copy-in mode"
        );
        assert!(!out.is_empty(), "the CopyInResponse reaches the client");
        // Already in copy-in mode: returns at once.
        assert!(matches!(link.quiesce().await, Ok(None)));
    }

    fn query(sql: &str) -> BytesMut {
        let mut q = BytesMut::new();
        codec::frontend::query(&mut q, sql).expect("encodes");
        q
    }

    fn frames(encode: impl FnOnce(&mut BytesMut)) -> Vec<BackendFrame> {
        let mut bytes = BytesMut::new();
        encode(&mut bytes);
        let mut out = Vec::new();
        while let Some(f) = codec::decode_backend(&mut bytes, &Limits::default()).expect("decodes")
        {
            out.push(f);
        }
        out
    }

    fn copy_in_then_error() -> Vec<BackendFrame> {
        frames(|o| {
            codec::backend::copy_in_response(o, 0, &[0]).expect("encodes");
            codec::backend::error_response(
                o,
                &ErrorBuilder::error(
                    "08P01",
                    "unexpected message type 0x51 during COPY from stdin",
                ),
            );
            codec::backend::ready_for_query(o, TransactionStatus::Idle);
        })
    }

    fn query_slot(q: &[u8]) -> Outgoing<'_> {
        Outgoing {
            bytes: q,
            expect: Expect::Query,
            sink: Sink::Client,
            record: None,
        }
    }

    /// A query pipelined behind `COPY … FROM STDIN` is read by the server as a protocol
    /// violation that ends the copy: it is never run nor answered, and the COPY's error and
    /// `ReadyForQuery` are all the server sends for both. The link must not wait for a second
    /// answer (found by the `pg_session_driver` fuzz target: every later answer went to the
    /// statement before it, and the session wedged).
    #[tokio::test]
    async fn a_query_sent_behind_a_copy_in_is_consumed_by_it() {
        let link = Link::new(false);
        let (copy, select) = (query("COPY t FROM STDIN"), query("SELECT 1"));
        link.send(vec![query_slot(&copy), query_slot(&select)])
            .expect("open link");
        let _ = link.take_outgoing();
        let mut out = BytesMut::new();
        link.route(copy_in_then_error(), &mut out);
        assert!(
            !link.busy(),
            "nothing is owed once the copy's error has come"
        );
        assert!(matches!(link.quiesce().await, Ok(Some(_))));
    }

    /// The same when the query is sent after the server entered copy-in mode.
    #[tokio::test]
    async fn a_query_sent_during_copy_in_is_consumed_by_it() {
        let link = Link::new(false);
        let (copy, select) = (query("COPY t FROM STDIN"), query("SELECT 1"));
        link.send(vec![query_slot(&copy)]).expect("open link");
        let _ = link.take_outgoing();
        let mut answers = copy_in_then_error();
        let rest = answers.split_off(1);
        let mut out = BytesMut::new();
        link.route(answers, &mut out);
        link.send(vec![query_slot(&select)]).expect("open link");
        let _ = link.take_outgoing();
        link.route(rest, &mut out);
        assert!(
            !link.busy(),
            "nothing is owed once the copy's error has come"
        );
    }

    /// A `Sync` sent while the server is in copy-in mode is ignored by it, so it does not end
    /// the skipping that an error in the extended-protocol COPY starts: the next `Sync` does.
    /// (Found by the `pg_session_driver` fuzz target: a query between the two took the second
    /// `Sync`'s `ReadyForQuery`, and the session wedged.)
    #[tokio::test]
    async fn a_sync_ignored_during_copy_in_ends_no_skipping() {
        let link = Link::new(false);
        let mut execute = BytesMut::new();
        codec::frontend::execute(&mut execute, "p", 0).expect("encodes");
        let mut sync = BytesMut::new();
        codec::frontend::sync(&mut sync);
        let mut fail = BytesMut::new();
        codec::frontend::copy_fail(&mut fail, "no").expect("encodes");
        let select = query("SELECT 1");
        let slot = |bytes, expect| Outgoing {
            bytes,
            expect,
            sink: Sink::Client,
            record: None,
        };
        link.send(vec![
            slot(&execute[..], Expect::Execute),
            slot(&sync[..], Expect::Sync),
            slot(&fail[..], Expect::CopyEnd),
            query_slot(&select),
            slot(&sync[..], Expect::Sync),
        ])
        .expect("open link");
        let _ = link.take_outgoing();
        let mut out = BytesMut::new();
        // Copy-in, the CopyFail's error, then the second Sync's ReadyForQuery: the first Sync
        // was ignored, the query skipped.
        link.route(copy_in_then_error(), &mut out);
        assert!(!link.busy(), "nothing is owed: {out:?}");
        assert!(matches!(link.quiesce().await, Ok(Some(_))));
    }

    /// Messages sent while the server skips to `Sync` after an error are done as they are
    /// queued, and nothing comes from the server to make the router drain them: waiting for
    /// the link to be idle must still end. (Found by the `pg_session_driver` fuzz target: a
    /// `Close` after a failed `Describe`, then a `Parse` that wanted the search path, hung.)
    #[tokio::test]
    async fn quiesce_ends_when_only_skipped_messages_are_outstanding() {
        let link = Link::new(false);
        let (gateway_up, _server) = tokio::net::UnixStream::pair().expect("socket pair");
        let (gateway_client, _client) = tokio::net::UnixStream::pair().expect("socket pair");
        let (up_read, _up_write) = gateway_up.into_split();
        let (_client_read, client_write) = gateway_client.into_split();
        let mut describe = BytesMut::new();
        codec::frontend::describe(&mut describe, codec::Target::Portal, "c1").expect("encodes");
        let mut close = BytesMut::new();
        codec::frontend::close(&mut close, codec::Target::Statement, "s").expect("encodes");
        let slot = |bytes, expect| Outgoing {
            bytes,
            expect,
            sink: Sink::Client,
            record: None,
        };
        link.send(vec![slot(&describe[..], Expect::DescribePortal)])
            .expect("open link");
        let _ = link.take_outgoing();
        let mut out = BytesMut::new();
        link.route(
            frames(|o| {
                codec::backend::error_response(o, &ErrorBuilder::error("34000", "no portal"))
            }),
            &mut out,
        );
        let router = run(
            &link,
            ReadHalf::Unix(up_read),
            BytesMut::new(),
            WriteHalf::Unix(client_write),
            Limits::default(),
            None,
        );
        tokio::pin!(router);
        // The router drains what it has, then waits for the server.
        tokio::select! {
            biased;
            _ = &mut router => panic!("the router stopped"),
            () = tokio::task::yield_now() => {}
        }
        link.send(vec![slot(&close[..], Expect::Close)])
            .expect("open link");
        let _ = link.take_outgoing();
        tokio::select! {
            _ = router => panic!("the router stopped"),
            waited = tokio::time::timeout(Duration::from_secs(5), link.quiesce()) => {
                assert!(matches!(waited, Ok(Ok(Some(_)))), "quiesce must return: {waited:?}");
            }
        }
    }

    fn message(f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut out).expect("encodes");
        out.to_vec()
    }

    fn outgoing(bytes: &[u8], expect: Expect) -> Outgoing<'_> {
        Outgoing {
            bytes,
            expect,
            sink: Sink::Client,
            record: None,
        }
    }

    /// pgjdbc with autocommit off: `Parse BEGIN` in one write, its `Bind`/`Execute` and the
    /// writes in the next. The `Parse` is held back (the server would not answer it before a
    /// `Sync` or `Flush` anyway), so the switch to read-write still goes in front of it.
    #[test]
    fn a_bookkeeping_tail_is_held_so_the_mode_switch_goes_in_front_of_it() {
        let link = Link::new(false);
        let parse = message(|o| codec::frontend::parse(o, "", "BEGIN", &[]));
        link.send(vec![outgoing(&parse, Expect::Parse)])
            .expect("open");
        assert!(link.take_outgoing().is_none(), "a lone Parse is held");

        let bind = message(|o| codec::frontend::bind(o, "", "", &[], &[], &[]));
        let execute = message(|o| codec::frontend::execute(o, "", 0));
        link.send_as(
            Access::ReadWrite,
            vec![
                outgoing(&bind, Expect::Bind),
                outgoing(&execute, Expect::Execute),
            ],
        )
        .expect("open");
        let written = link.take_outgoing().expect("an Execute is written");
        let set = message(|o| codec::frontend::query(o, SET_READ_WRITE));
        assert!(written.starts_with(&set), "the switch goes first");
        assert_eq!(&written[set.len()..set.len() + parse.len()], &parse[..]);
    }

    /// Bytes that answer nothing (`Flush`, `CopyData`) are never held, nor is anything once
    /// the session is ending.
    #[test]
    fn flush_and_ending_write_what_is_held() {
        let link = Link::new(false);
        let parse = message(|o| codec::frontend::parse(o, "s", "SELECT 1", &[]));
        link.send(vec![outgoing(&parse, Expect::Parse)])
            .expect("open");
        assert!(link.take_outgoing().is_none());
        let mut flush = BytesMut::new();
        codec::frontend::flush(&mut flush);
        link.send_unanswered(&flush).expect("open");
        let written = link.take_outgoing().expect("a Flush is written");
        assert_eq!(written.len(), parse.len() + flush.len());

        link.send(vec![outgoing(&parse, Expect::Parse)])
            .expect("open");
        link.ending();
        assert!(
            link.take_outgoing().is_some(),
            "an ending session writes everything"
        );
    }
}
