//! [`RecordingLayer`]: an audit record for every operation, refused ones included.
//!
//! The layer sits below the identity layer and above the deciders (policy, approval), as
//! ARCHITECTURE.md (the path of one command) orders it. For each request it opens a record and
//! attaches it; the protocol's upstream service commits it through
//! [`Request::commit`](sod_core::Request::commit) before anything goes upstream, writing the
//! `operation_attempted` event at the durability the operation's kind requires. Then:
//!
//! - a request refused below the layer (by policy, approval, capability scope) is recorded as
//!   attempted with the refusal's rule, code and reason, and completed as `refused`, before the
//!   refusal goes back to the client;
//! - a forwarded request gets its `operation_completed` event when the response ends (through
//!   [`Observe`]); a response dropped before its end is recorded as `interrupted`;
//! - a response that comes back *without* its attempt having been committed is a protocol bug:
//!   it is recorded, counted ([`RecordingLayer::uncommitted`]) and turned into an error, so its
//!   data never reaches the client.
//!
//! A successful `Connect` also writes `session_started`; dropping the session's stack (a
//! gateway builds one per session) writes `session_ended`.
//!
//! Once committed, each record also offers the operation's [`Transcript`]
//! ([`Request::transcript`]): what a protocol records through it becomes `terminal_output`
//! events, and a `transcript_summary` precedes the `operation_completed` event (see
//! [`crate::transcript`] for buffering, coalescing and the
//! [recording limit](RecordingLayer::transcript_limit)).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sod_core::audit::{Attempt, AuditRecord, Completion, CompletionStatus, Observe, Transcript};
use sod_core::{BoxError, Operation, OperationKind, Refusal, RefusalCode, Request, Session};
use tower::{Layer, Service};

use crate::transcript::TranscriptRecorder;
use crate::{AuditError, AuditSink, Decision, Durability, DurabilityPolicy, Event, Outcome};

/// Records every operation that passes through it. See the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use sod_audit::{CheckpointKey, MemorySink, RecordingLayer};
/// use sod_core::layer::PolicyLayer;
/// use sod_core::policy::Policy;
///
/// let sink = Arc::new(MemorySink::new("gw-1", CheckpointKey::generate("k")));
/// let stack = tower::ServiceBuilder::new()
///     // .layer(IdentityLayer::new(verifier))
///     .layer(RecordingLayer::new(sink))
///     .layer(PolicyLayer::new(Policy::deny_all()));
/// # let _ = stack;
/// ```
#[derive(Clone)]
pub struct RecordingLayer {
    recorder: Arc<Recorder>,
}

impl Recorder {
    /// Appends and waits for the acknowledgement, at most `commit_timeout`: every awaited
    /// append of the layer goes through here, so a hung sink refuses instead of hanging.
    async fn append(&self, event: Event, durability: Durability) -> Result<(), AuditError> {
        match tokio::time::timeout(self.commit_timeout, self.sink.append(event, durability)).await {
            Ok(appended) => appended.map(drop),
            Err(_) => Err(AuditError::Unavailable(format!(
                "the audit sink did not commit within {:?}",
                self.commit_timeout
            ))),
        }
    }
}

pub(crate) struct Recorder {
    pub(crate) sink: Arc<dyn AuditSink>,
    durability: DurabilityPolicy,
    /// Longest wait for an attempt's commit (or a transcript record's write) before the
    /// operation is refused.
    pub(crate) commit_timeout: Duration,
    /// How much of each stream of an operation's transcript is stored.
    transcript_limit: Option<u64>,
    uncommitted: AtomicU64,
}

impl RecordingLayer {
    /// Records into `sink`, with the default [`DurabilityPolicy`].
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self::with_durability(sink, DurabilityPolicy::default())
    }

    /// Records into `sink`, committing each attempt as `durability` requires for its kind.
    pub fn with_durability(sink: Arc<dyn AuditSink>, durability: DurabilityPolicy) -> Self {
        Self {
            recorder: Arc::new(Recorder {
                sink,
                durability,
                commit_timeout: Self::DEFAULT_COMMIT_TIMEOUT,
                transcript_limit: crate::transcript::DEFAULT_LIMIT,
                uncommitted: AtomicU64::new(0),
            }),
        }
    }

    /// A copy of the recorder with `change` applied (builder methods).
    fn rebuild(self, change: impl FnOnce(&mut Duration, &mut Option<u64>)) -> Self {
        let r = &self.recorder;
        let mut commit_timeout = r.commit_timeout;
        let mut transcript_limit = r.transcript_limit;
        change(&mut commit_timeout, &mut transcript_limit);
        Self {
            recorder: Arc::new(Recorder {
                sink: r.sink.clone(),
                durability: r.durability.clone(),
                commit_timeout,
                transcript_limit,
                uncommitted: AtomicU64::new(r.uncommitted.load(Ordering::SeqCst)),
            }),
        }
    }

    /// How long an attempt's commit may take by default before the operation is refused.
    pub const DEFAULT_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Refuses an operation (`audit_unavailable`) when its attempt is not committed within
    /// `timeout` — a sink that hangs (a database that stopped answering, a stuck `fsync`) must
    /// not hang every operation. The record may still reach the log later; the operation does
    /// not run. Set it before the layer wraps any service.
    ///
    /// The same bound applies to each transcript record's write: a transcript whose record is
    /// not written within it fails, and the protocol ends the operation.
    #[must_use]
    pub fn commit_timeout(self, timeout: Duration) -> Self {
        self.rebuild(|t, _| *t = timeout)
    }

    /// The most each stream (output, stderr, input, resizes) of one operation's transcript
    /// may add to the log, in bytes (each event counts its bytes and
    /// [`EVENT_OVERHEAD`](crate::transcript::EVENT_OVERHEAD)); `None` stores everything.
    /// Beyond it, chunks are counted and hashed, not stored: the operation's
    /// `transcript_summary` still commits to every byte. Default: 64 MiB. Set it before the
    /// layer wraps any service.
    #[must_use]
    pub fn transcript_limit(self, limit: Option<u64>) -> Self {
        self.rebuild(|_, l| *l = limit)
    }

    /// How many responses came back without their attempt having been committed (a protocol
    /// that forwards before [`Request::commit`](sod_core::Request::commit)). Always 0 for a
    /// correct protocol crate; tests assert it.
    pub fn uncommitted(&self) -> u64 {
        self.recorder.uncommitted.load(Ordering::SeqCst)
    }
}

impl<S> Layer<S> for RecordingLayer {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recording {
            inner,
            log: Arc::new(SessionLog {
                recorder: self.recorder.clone(),
                next_op: AtomicU64::new(0),
                started: Mutex::new(None),
            }),
        }
    }
}

/// The service produced by [`RecordingLayer`].
#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    log: Arc<SessionLog>,
}

/// The per-stack (that is, per-session) state: operation numbers, and the session to close.
pub(crate) struct SessionLog {
    pub(crate) recorder: Arc<Recorder>,
    next_op: AtomicU64,
    /// The session whose `session_started` was written.
    started: Mutex<Option<Arc<Session>>>,
}

impl SessionLog {
    /// Appends without waiting: the record is in the chain once `append` is called, and is
    /// written with the next group (nobody waits for an acknowledgement).
    fn append_detached(&self, event: Event) {
        drop(self.recorder.sink.append(event, Durability::Buffered));
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        let started = self.started.get_mut().map(Option::take);
        if let Ok(Some(session)) = started {
            // A gateway that ends the session itself (a revoked capability) says why.
            let reason = session.end_reason().unwrap_or("session closed");
            self.append_detached(Event::session_ended(session.id().to_string(), reason));
        }
    }
}

/// The record of one operation, attached to its request.
struct OpenRecord {
    log: Arc<SessionLog>,
    session: String,
    op: u64,
    /// Set once the attempt is written; concurrent or repeated commits write it once.
    committed: tokio::sync::OnceCell<()>,
    /// When the attempt was written: the transcript's time zero.
    committed_at: OnceLock<Instant>,
    /// The transcript, once a protocol asked for it.
    transcript: OnceLock<Arc<TranscriptRecorder>>,
}

fn principal_fields(session: &Session) -> (String, Option<String>, Option<String>) {
    match session.identity() {
        Some(id) => (
            id.principal.id.clone(),
            id.principal.on_behalf_of.clone(),
            id.credential_id.clone(),
        ),
        None => ("<unauthenticated>".into(), None, None),
    }
}

fn attempted(session: &Session, n: u64, op: &Operation, decision: Decision) -> Event {
    attempted_with(session, n, op, decision, Vec::new())
}

fn attempted_with(
    session: &Session,
    n: u64,
    op: &Operation,
    decision: Decision,
    approvals: Vec<String>,
) -> Event {
    let (principal, on_behalf_of, capability) = principal_fields(session);
    Event::OperationAttempted {
        session: session.id().to_string(),
        operation: n,
        principal,
        on_behalf_of,
        capability,
        target: op.target().to_string(),
        kind: op.kind().as_str().to_owned(),
        text: recorded_text(op.text()),
        // Collections as `prefix*`, as approvers see them.
        objects: op
            .objects()
            .iter()
            .cloned()
            .chain(op.collections().iter().map(|c| format!("{c}*")))
            .collect(),
        fingerprint: op.fingerprint().to_hex(),
        decision,
        approvals,
    }
}

/// The longest operation text a record holds in full (16 KiB).
pub const MAX_RECORDED_TEXT: usize = 16 * 1024;

/// An operation's text as its record holds it: in full up to [`MAX_RECORDED_TEXT`] bytes;
/// beyond, the beginning and the length and SHA-256 of the whole, so a huge statement neither
/// bloats the log nor goes unidentified (the fingerprint still covers all of it).
pub fn recorded_text(text: &str) -> String {
    if text.len() <= MAX_RECORDED_TEXT {
        return text.to_owned();
    }
    let mut cut = MAX_RECORDED_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    format!(
        "{} … [truncated: {} bytes in all, sha256 {}]",
        &text[..cut],
        text.len(),
        sod_core::hex::encode(digest.as_ref())
    )
}

fn audit_refusal(e: &AuditError) -> Refusal {
    Refusal::new(RefusalCode::AuditUnavailable, e.to_string()).with_rule("audit")
}

impl AuditRecord for OpenRecord {
    fn commit<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            self.committed
                .get_or_try_init(|| self.write_attempt(attempt))
                .await
                .copied()
        })
    }

    fn transcript(&self) -> Option<Arc<dyn Transcript>> {
        let started = *self.committed_at.get()?;
        let t = self.transcript.get_or_init(|| {
            Arc::new(TranscriptRecorder::new(
                self.log.clone(),
                self.session.clone(),
                self.op,
                started,
                self.log.recorder.transcript_limit,
            ))
        });
        Some(t.clone())
    }
}

impl OpenRecord {
    /// Appends the operation's `operation_completed`: after its transcript, if it has one.
    fn complete(&self, event: Event) {
        let event = match self.transcript.get() {
            Some(t) => t.finish(Some(event)),
            None => Some(event),
        };
        if let Some(event) = event {
            self.log.append_detached(event);
        }
    }

    /// Writes the attempt at the durability its kind requires.
    async fn write_attempt(&self, attempt: Attempt<'_>) -> Result<(), Refusal> {
        let d = attempt.decision;
        let decision = Decision {
            effect: d.effect().name().to_owned(),
            code: None,
            rule: Some(d.rule_id().to_owned()),
            reason: d.reason().to_owned(),
        };
        let approvals = attempt
            .approval
            .map(|a| a.approval_ids.clone())
            .unwrap_or_default();
        let event = attempted_with(
            attempt.session,
            self.op,
            attempt.operation,
            decision,
            approvals,
        );
        let durability = self
            .log
            .recorder
            .durability
            .for_kind(attempt.operation.kind());
        self.log
            .recorder
            .append(event, durability)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "audit commit failed; refusing the operation");
                audit_refusal(&e)
            })?;
        let _ = self.committed_at.set(Instant::now());
        Ok(())
    }
}

/// Appends `operation_completed` once: when the response ends, or as `interrupted` when the
/// hook is dropped uncalled.
struct CompletionGuard {
    record: Arc<OpenRecord>,
    done: bool,
}

impl CompletionGuard {
    fn complete(mut self, c: &Completion) {
        self.done = true;
        let outcome = match c.status {
            CompletionStatus::Ok => Outcome::Ok,
            CompletionStatus::Error => Outcome::Error,
            CompletionStatus::Skipped => Outcome::Skipped,
            CompletionStatus::Interrupted => Outcome::Interrupted,
        };
        self.record.complete(Event::OperationCompleted {
            session: self.record.session.clone(),
            operation: self.record.op,
            outcome,
            rows: c.rows,
            bytes: c.bytes,
            duration_us: c.duration.as_micros().try_into().unwrap_or(u64::MAX),
            error_code: c.error_code.clone(),
        });
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if !self.done {
            self.record.complete(Event::OperationCompleted {
                session: self.record.session.clone(),
                operation: self.record.op,
                outcome: Outcome::Interrupted,
                rows: None,
                bytes: None,
                duration_us: 0,
                error_code: None,
            });
        }
    }
}

impl<S, B> Service<Request<B>> for Recording<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Observe + Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let log = self.log.clone();
        let n = log.next_op.fetch_add(1, Ordering::Relaxed);
        let record = Arc::new(OpenRecord {
            log: log.clone(),
            session: req.session().id().to_string(),
            op: n,
            committed: tokio::sync::OnceCell::new(),
            committed_at: OnceLock::new(),
            transcript: OnceLock::new(),
        });
        req.attach_audit(record.clone());
        let session = req.session().clone();
        // Kept for the refusal record: the request itself goes down the stack.
        let operation = req.operation().clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await.map_err(Into::into);
            let committed = record.committed.initialized();
            let recorder = &log.recorder;
            match result {
                Ok(response) if committed => {
                    if operation.kind() == OperationKind::Connect {
                        let (principal, on_behalf_of, capability) = principal_fields(&session);
                        let event = Event::SessionStarted {
                            session: session.id().to_string(),
                            principal,
                            on_behalf_of,
                            capability,
                            target: session.target().to_string(),
                            peer: Some(session.peer().to_string()),
                        };
                        recorder
                            .append(event, Durability::Written)
                            .await
                            .map_err(|e| Box::new(audit_refusal(&e)) as BoxError)?;
                        *log.started.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(session.clone());
                    }
                    let guard = CompletionGuard {
                        record: record.clone(),
                        done: false,
                    };
                    Ok(response.on_complete(Box::new(move |c| guard.complete(c))))
                }
                Ok(_uncommitted) => {
                    log.recorder.uncommitted.fetch_add(1, Ordering::SeqCst);
                    let why = "the protocol answered without committing the audit record first";
                    tracing::error!(session = %session.id(), "{why}; the response is withheld");
                    let decision = Decision {
                        effect: "refused".into(),
                        code: Some(RefusalCode::Misconfigured.as_str().into()),
                        rule: Some("audit".into()),
                        reason: why.into(),
                    };
                    let _ = recorder
                        .append(
                            attempted(&session, n, &operation, decision),
                            Durability::Fsync,
                        )
                        .await;
                    Err(Refusal::new(RefusalCode::Misconfigured, why)
                        .with_rule("audit")
                        .into())
                }
                Err(err) => {
                    let refusal = Refusal::find(&*err);
                    let error_code = refusal.map(|r| r.code().as_str().to_owned());
                    if !committed {
                        // Refused before anything was forwarded: record the attempt with the
                        // refusal as its decision. When the sink is what failed, this fails
                        // too; the refusal goes back to the client either way.
                        let decision = match refusal {
                            Some(r) => Decision {
                                effect: if r.code() == RefusalCode::PolicyDenied {
                                    "deny".into()
                                } else {
                                    "refused".into()
                                },
                                code: Some(r.code().as_str().into()),
                                rule: r.rule().map(str::to_owned),
                                reason: r.reason().to_owned(),
                            },
                            None => Decision {
                                effect: "refused".into(),
                                code: None,
                                rule: None,
                                reason: err.to_string(),
                            },
                        };
                        let event = attempted(&session, n, &operation, decision);
                        if let Err(e) = recorder.append(event, Durability::Written).await {
                            tracing::error!(error = %e, "could not record a refusal");
                        }
                    }
                    let event = Event::OperationCompleted {
                        session: session.id().to_string(),
                        operation: n,
                        outcome: if committed {
                            Outcome::Error
                        } else {
                            Outcome::Refused
                        },
                        rows: None,
                        bytes: None,
                        duration_us: started.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
                        error_code,
                    };
                    record.complete(event);
                    Err(err)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_texts_are_recorded_by_beginning_length_and_hash() {
        assert_eq!(recorded_text("SELECT 1"), "SELECT 1");
        let huge = format!("SELECT '{}'", "é".repeat(20_000));
        let r = recorded_text(&huge);
        assert!(r.len() < MAX_RECORDED_TEXT + 200, "{}", r.len());
        assert!(r.starts_with("SELECT 'éé"));
        assert!(r.contains(&format!("{} bytes in all, sha256 ", huge.len())));
        assert_ne!(r, recorded_text(&format!("{huge}x")));
    }
}
