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
    /// A chunk of an operation's streams — what the target wrote, what the client sent, the
    /// terminal's size — as a protocol recorded it through the operation's
    /// [`Transcript`](sod_core::audit::Transcript). Consecutive chunks of one stream are
    /// coalesced into one event.
    TerminalOutput {
        /// Session id.
        session: String,
        /// The operation's number within the session. Absent in logs written before
        /// transcripts were per operation (their `time_us` counts from the session's start).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operation: Option<u64>,
        /// Microseconds since the operation's commit (since the session's start when there is
        /// no `operation`).
        time_us: u64,
        /// `o` output (stdout, a terminal's output), `e` stderr, `i` input (stdin,
        /// keystrokes), `r` resize (`data` is `COLSxROWS`).
        stream: String,
        /// The chunk: as text when it is UTF-8 and its JSON form is no larger than base64
        /// would be; otherwise base64 (standard alphabet, padded) with `base64` set.
        data: String,
        /// `data` is base64.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        base64: bool,
    },
    /// What passed through an operation's streams, written when it ends: per stream, every
    /// byte counted and hashed, stored or not, so the log commits to all of it even where a
    /// recording limit left chunks out.
    TranscriptSummary {
        /// Session id.
        session: String,
        /// The operation's number within the session.
        operation: u64,
        /// The recording limit per stream in force (bytes), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        /// Each stream that carried anything, in the order `o`, `e`, `i`, `r`.
        streams: Vec<StreamSummary>,
    },
    /// A signed checkpoint of the chain (written by the sink).
    Checkpoint(crate::Checkpoint),
}

/// One stream of a [`TranscriptSummary`](Event::TranscriptSummary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSummary {
    /// `o`, `e`, `i` or `r` (for `r`, the bytes are the `COLSxROWS` texts).
    pub stream: String,
    /// Every byte that passed.
    pub bytes: u64,
    /// The bytes stored in `terminal_output` events: the first `stored` bytes of the stream
    /// (all of them unless the recording limit was reached).
    pub stored: u64,
    /// SHA-256 of all `bytes` bytes, hex.
    pub sha256: String,
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
            | Event::TerminalOutput { session, .. }
            | Event::TranscriptSummary { session, .. } => Some(session),
            Event::ApprovalDecided { .. } | Event::Checkpoint(_) => None,
        }
    }
}
