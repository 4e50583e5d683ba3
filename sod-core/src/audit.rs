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
