//! The audit commit point: where a recording layer (sod-audit's `RecordingLayer`) and a
//! protocol's upstream service meet without knowing each other (invariant I4).
//!
//! The recording layer opens an [`AuditRecord`] for each operation and attaches it to the
//! [`Request`](crate::Request). The layers below add their decision to the request. The
//! protocol's upstream service makes one call before it sends a byte upstream,
//! [`Request::commit`](crate::Request::commit): it checks the request
//! (identity, decision, approval evidence) and then writes the attempt — who, what, the
//! decision, the rule, the approvals — at the durability the operation's kind requires. If the
//! record cannot be written, the operation is refused with
//! [`AuditUnavailable`](crate::RefusalCode::AuditUnavailable).
//!
//! A request that reaches `commit` with no record attached is refused
//! ([`Misconfigured`](crate::RefusalCode::Misconfigured)): a stack without a recording layer
//! fails closed. A stack that really means to run unrecorded says so with
//! [`UnauditedLayer`](crate::layer::UnauditedLayer).
//!
//! Responses report how they ended through [`Observe`], so the recording layer can append the
//! outcome.
//!
//! Operations whose data is a stream of bytes (an SSH `exec` or shell, a Kubernetes `exec`)
//! also record what flowed, as it flows, through the record's [`Transcript`]
//! ([`Request::transcript`](crate::Request::transcript)).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::policy::Decision;
use crate::{ApprovalEvidence, Operation, Refusal, Session};

/// What is committed: the operation, in its session, with the decision that allows it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The session.
    pub session: &'a Session,
    /// The operation.
    pub operation: &'a Operation,
    /// The decision that allowed it (allow, or require-approval with evidence).
    pub decision: &'a Decision,
    /// The approval that covered it, if approval was required.
    pub approval: Option<&'a ApprovalEvidence>,
}

/// An open audit record for one operation, attached to its request by a recording layer.
pub trait AuditRecord: Send + Sync + 'static {
    /// Writes the attempt, returning once it is as durable as the operation's kind requires.
    /// An `Err` refuses the operation; the refusal should have the code
    /// [`AuditUnavailable`](crate::RefusalCode::AuditUnavailable).
    fn commit<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Result<(), Refusal>>;

    /// The transcript of the operation's streams, once the attempt is committed. `None` before
    /// the commit, and when the recording layer keeps no transcripts (the default).
    fn transcript(&self) -> Option<Arc<dyn Transcript>> {
        None
    }
}

/// One piece of an operation's streams, as a protocol records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptChunk<'a> {
    /// Bytes the target wrote to the client: stdout, or a terminal's output.
    Output(&'a [u8]),
    /// Bytes the target wrote to stderr (an exec without a terminal).
    Error(&'a [u8]),
    /// Bytes the client sent: stdin, or keystrokes.
    Input(&'a [u8]),
    /// The client's terminal is now `cols` × `rows` (a pty request, a window change).
    Resize {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}

/// The record of an operation's streams — output, stderr, input, terminal size — written as
/// they flow. A recording layer provides it through [`AuditRecord::transcript`]; a protocol
/// gets it with [`Request::transcript`](crate::Request::transcript).
///
/// The protocol's side of the contract:
///
/// - Record only after [`Request::commit`](crate::Request::commit) succeeded (before it,
///   there is no transcript), and only what actually passes: what the client receives, what
///   the target receives.
/// - Output recorded for a masked principal is the **masked** output, exactly the bytes the
///   client gets (invariant I6): the log must not keep what the client may not see. Input is
///   the client's own bytes, recorded as they are.
/// - Await each [`record`](Self::record) before passing the chunk on (or right after): the
///   transcript is bounded, so a sink that falls behind slows the operation down rather than
///   growing the gateway's memory. A call returns at once while the sink keeps up.
/// - An `Err` means the transcript can no longer be kept (the audit sink failed or stalled):
///   end the operation, as an operation must not run unrecorded (invariant I4).
/// - Finish recording before reporting the response's completion
///   ([`Observe`]): the transcript is closed with the operation, and chunks recorded after
///   that are refused.
///
/// The transcript takes the timestamps (from the operation's commit), so a chunk is stamped
/// when `record` is called.
pub trait Transcript: Send + Sync {
    /// Records `chunk`. Waits only while the sink is behind.
    fn record<'a>(&'a self, chunk: TranscriptChunk<'a>) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// How a response ended, as a protocol reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// How it ended.
    pub status: CompletionStatus,
    /// Rows returned or affected, where the protocol counts rows.
    pub rows: Option<u64>,
    /// Bytes transferred, where the protocol counts bytes.
    pub bytes: Option<u64>,
    /// The protocol's error code (a SQLSTATE, an exit status), if it failed.
    pub error_code: Option<String>,
    /// From forwarding to the end of the response.
    pub duration: Duration,
}

/// How a response ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompletionStatus {
    /// The upstream carried it out.
    #[default]
    Ok,
    /// The upstream reported an error.
    Error,
    /// It was forwarded, but the upstream never ran it (it was skipping after an earlier error).
    Skipped,
    /// The response did not end: the session closed first.
    Interrupted,
}

/// Called once with the completion.
pub type CompletionHook = Box<dyn FnOnce(&Completion) + Send>;

/// A response that can report how it ended. Protocols implement it for their response type so
/// a recording layer can append the outcome.
pub trait Observe {
    /// Returns the response with `hook` attached: the protocol calls it exactly once, when the
    /// response is over. A response dropped before its end drops the hook uncalled; recording
    /// layers treat that as [`Interrupted`](CompletionStatus::Interrupted).
    fn on_complete(self, hook: CompletionHook) -> Self;
}

/// The audit state of a request.
#[derive(Clone, Default)]
pub(crate) enum Audit {
    /// No recording layer attached a record: commit refuses.
    #[default]
    Missing,
    /// The stack explicitly runs unrecorded.
    OptedOut,
    /// A record to commit.
    Open(std::sync::Arc<dyn AuditRecord>),
}
