//! The PostgreSQL request and response types of the service stack, and the innermost service
//! that forwards what every layer allowed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use sod_core::audit::{Completion, CompletionHook, Observe};
use sod_core::masking::{Maskable, Masker};
use sod_core::{BoxError, Refusal, RefusalCode, Request};

use crate::response::{ResponseProcessor, ResultShape};
use crate::router::{Access, Expect, Outgoing, Sink, SlotId};
use crate::shared::SessionShared;

pub use crate::response::Outcome;

/// What the gateway will send upstream if every layer allows it. Opaque to layers: they decide
/// on the request's [`Operation`](sod_core::Operation), never on protocol bytes.
pub struct PgRequest {
    pub(crate) kind: RequestKind,
}

pub(crate) enum RequestKind {
    /// Open the upstream session.
    Connect,
    /// Messages to send, the response they expect, what the results will look like, and the
    /// transaction mode they need.
    Forward {
        messages: Vec<(Bytes, Expect)>,
        shape: ResultShape,
        access: Access,
    },
}

impl std::fmt::Debug for PgRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            RequestKind::Connect => f.write_str("PgRequest::Connect"),
            RequestKind::Forward { messages, .. } => {
                write!(f, "PgRequest::Forward({} messages)", messages.len())
            }
        }
    }
}

/// The response to one operation: a stream of backend messages that the gateway delivers to
/// the client as they arrive, through whatever masking the policy decision asked for.
pub struct PgResponse {
    pub(crate) inner: ResponseInner,
}

pub(crate) enum ResponseInner {
    /// The upstream session is open.
    Connected,
    /// Messages of the slot `id` will flow through `processor`.
    Slot {
        id: SlotId,
        processor: Box<ResponseProcessor>,
    },
}

impl std::fmt::Debug for PgResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            ResponseInner::Connected => f.write_str("PgResponse::Connected"),
            ResponseInner::Slot { id, processor } => f
                .debug_struct("PgResponse")
                .field("slot", id)
                .field("masked", &processor.is_masked())
                .finish(),
        }
    }
}

impl PgResponse {
    /// Calls `f` with the outcome when the response is over (after the last message reached
    /// the client, or when the server skipped the operation).
    pub fn on_complete(mut self, f: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        if let ResponseInner::Slot { processor, .. } = &mut self.inner {
            processor.observe(Box::new(f));
        }
        self
    }
}

impl Observe for PgResponse {
    fn on_complete(self, hook: CompletionHook) -> Self {
        match &self.inner {
            ResponseInner::Connected => {
                hook(&Completion::default());
                self
            }
            ResponseInner::Slot { .. } => {
                PgResponse::on_complete(self, move |o: &Outcome| hook(&o.completion()))
            }
        }
    }
}

impl Maskable for PgResponse {
    fn mask(mut self, masker: Masker) -> Self {
        if let ResponseInner::Slot { processor, .. } = &mut self.inner {
            processor.mask_with(masker);
        }
        self
    }
}

/// Kinds a capability may allow and still get a read-only upstream session.
static READ_ONLY_KINDS: std::sync::LazyLock<sod_core::KindSet> = std::sync::LazyLock::new(|| {
    sod_core::KindSet::of(&[
        sod_core::OperationKind::Connect,
        sod_core::OperationKind::Read,
    ])
});

/// The innermost service of a session's stack: [`Request::commit`]s the request (authorize,
/// then write its audit record) and forwards it.
#[derive(Clone)]
pub struct PgUpstream {
    pub(crate) shared: Arc<SessionShared>,
}

impl tower::Service<Request<PgRequest>> for PgUpstream {
    type Response = PgResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<PgResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<PgRequest>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            // One snapshot for the request: the rows check and the masking of its results see
            // the same catalog.
            let snapshot = shared.snapshot();
            if let (Some(masker), RequestKind::Forward { shape, .. }) =
                (req.extensions().get::<Masker>(), &req.body().kind)
                && let Some(analysis) = &shape.analysis
            {
                crate::opacity::check(masker, &snapshot, analysis)?;
            }
            // The commit point: the last check before anything reaches the server (fails
            // closed if a layer is missing), and the audit record, durable before a byte goes
            // upstream (invariant I4).
            req.commit().await?;
            // Every upstream session starts read-only: the server itself then refuses writes
            // hidden where the analyzer cannot see (views, rules, triggers, operators, casts,
            // domains). One whose capability only reads stays so; others switch to read-write
            // for what the stack judged writes (`Access`).
            let pinned = req
                .session()
                .identity()
                .and_then(|i| i.capability.as_ref())
                .is_some_and(|c| c.scope().kinds().is_subset(&READ_ONLY_KINDS));
            let session = req.session().clone();
            match req.into_body().kind {
                RequestKind::Connect => {
                    let principal = session.principal();
                    shared.admit(principal.map_or("", |p| p.id.as_str()))?;
                    shared.open_upstream(pinned, principal).await?;
                    Ok(PgResponse {
                        inner: ResponseInner::Connected,
                    })
                }
                RequestKind::Forward {
                    messages,
                    shape,
                    access,
                } => {
                    let link = shared.link().ok_or_else(|| {
                        Refusal::new(RefusalCode::Misconfigured, "the session is not connected")
                    })?;
                    let last = messages.len().saturating_sub(1);
                    let outgoing = messages
                        .iter()
                        .enumerate()
                        .map(|(i, (bytes, expect))| Outgoing {
                            bytes,
                            expect: *expect,
                            // The operation's own response is the last message; anything before
                            // it (a deferred Bind, an injected Describe) is the gateway's
                            // business, but its errors are the client's.
                            sink: if i == last {
                                Sink::Pending
                            } else {
                                Sink::Quiet
                            },
                            record: if i == last {
                                None
                            } else {
                                shape.describes.clone()
                            },
                        })
                        .collect();
                    if link.switch_waits(access) {
                        // In copy-in mode (`None`) the session is not at a transaction
                        // boundary: no switch, as inside a transaction block.
                        link.quiesce().await?;
                    }
                    let ids = link.send_as(access, outgoing)?;
                    let id = ids.last().copied().ok_or("nothing to send")?;
                    shared.note_registered(id);
                    Ok(PgResponse {
                        inner: ResponseInner::Slot {
                            id,
                            processor: Box::new(ResponseProcessor::new(
                                shape,
                                snapshot,
                                shared.gateway(),
                            )),
                        },
                    })
                }
            }
        })
    }
}
