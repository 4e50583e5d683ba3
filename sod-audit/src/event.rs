//! The event schema: what the log says happened. Version 1.
//!
//! Events are plain data, serialized as JSON with a `type` tag. They never contain secrets:
//! credentials never reach the layers that build events, and response samples, where a protocol
//! records any, are masked data (invariant I6).

use serde::{Deserialize, Serialize};

/// Something that happened, as recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A client session was opened (after its `Connect` operation was allowed).
    SessionStarted {
        /// Session id.
        session: String,
        /// Principal id.
        principal: String,
        /// The human the principal acts for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<String>,
        /// The capability the principal presented, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capability: Option<String>,
        /// The target (`pg/prod`).
        target: String,
        /// The client's address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    /// A client session ended.
    SessionEnded {
        /// Session id.
        session: String,
        /// Why it ended.
        reason: String,
    },
    /// An operation was attempted, with the decision taken on it. Written before the operation
    /// is forwarded.
    OperationAttempted {
        /// Session id.
        session: String,
        /// The operation's number within the session.
        operation: u64,
        /// Principal id.
        principal: String,
        /// The human the principal acts for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<String>,
        /// The capability the principal presented, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capability: Option<String>,
        /// The target.
        target: String,
        /// Operation kind (`read`, `write`, …).
        kind: String,
        /// Normalized operation text.
        text: String,
        /// Objects the operation touches.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        objects: Vec<String>,
        /// The operation's fingerprint, hex.
        fingerprint: String,
        /// The decision.
        decision: Decision,
        /// Approvals that covered the operation.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvals: Vec<String>,
    },
    /// An attempted operation ended.
    OperationCompleted {
        /// Session id.
        session: String,
        /// The operation's number within the session.
        operation: u64,
        /// How it ended.
        outcome: Outcome,
        /// Rows returned or affected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// Bytes transferred.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// Microseconds from forwarding to the end of the response.
        duration_us: u64,
        /// The protocol's error code (a SQLSTATE), if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_code: Option<String>,
    },
    /// An approver decided an approval request.
    ApprovalDecided {
        /// Approval request id.
        approval: String,
        /// Approver principal id.
        approver: String,
        /// Whether it was approved.
        approved: bool,
        /// The approver's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A chunk of an interactive session's terminal stream (asciicast v2 event).
    TerminalOutput {
        /// Session id.
        session: String,
        /// Microseconds since the session started.
        time_us: u64,
        /// `o` (output) or `i` (input).
        stream: String,
        /// The chunk, as UTF-8 (lossy).
        data: String,
    },
    /// A signed checkpoint of the chain (written by the sink).
    Checkpoint(crate::Checkpoint),
}

/// The decision taken on an operation, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `allow` or `require_approval` (the operation was committed and forwarded), `deny` (a
    /// policy rule refused it) or `refused` (refused for another reason: capability scope,
    /// missing approval, audit unavailable, …; see `code`).
    pub effect: String,
    /// The refusal code (`policy_denied`, `approval_required`, …) when the operation was
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The rule that decided, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed.
    Error,
    /// It was refused and never forwarded.
    Refused,
    /// It was forwarded but the upstream never ran it (it was skipping after an earlier error).
    Skipped,
    /// It was forwarded and the session ended before its response did.
    Interrupted,
}

impl Event {
    /// A [`SessionEnded`](Event::SessionEnded) event.
    pub fn session_ended(session: impl Into<String>, reason: impl Into<String>) -> Self {
        Event::SessionEnded {
            session: session.into(),
            reason: reason.into(),
        }
    }

    /// The session the event belongs to, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            Event::SessionStarted { session, .. }
            | Event::SessionEnded { session, .. }
            | Event::OperationAttempted { session, .. }
            | Event::OperationCompleted { session, .. }
            | Event::TerminalOutput { session, .. } => Some(session),
            Event::ApprovalDecided { .. } | Event::Checkpoint(_) => None,
        }
    }
}
