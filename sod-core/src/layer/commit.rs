//! [`Commit`]: the innermost service of stacks whose gateway forwards only after the stack said
//! yes, and the [`GoAhead`] it answers with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::audit::{Completion, CompletionHook, Observe, Transcript};
use crate::masking::{Maskable, Masker};
use crate::{BoxError, Request};

/// The go-ahead for one committed operation: the gateway carries it out and reports through it
/// how it ended.
///
/// It carries what the stack decided for the operation's output — the [`Masker`] (from a
/// masking layer) and the operation's [`Transcript`] (from a recording layer) — and the hook a
/// recording layer attached to learn the outcome. Dropped without [`finish`](Self::finish),
/// the outcome is recorded as interrupted.
pub struct GoAhead {
    masker: Masker,
    transcript: Option<Arc<dyn Transcript>>,
    hook: Option<CompletionHook>,
}

impl std::fmt::Debug for GoAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoAhead")
            .field("masked", &!self.masker.is_noop())
            .field("recorded", &self.transcript.is_some())
            .finish()
    }
}

impl GoAhead {
    /// The masker the operation's output goes through (a no-op for unmasked principals).
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The operation's transcript, where a recording layer keeps one.
    pub fn transcript(&self) -> Option<&Arc<dyn Transcript>> {
        self.transcript.as_ref()
    }

    /// Reports how the operation ended (once; later calls do nothing).
    pub fn finish(&mut self, completion: &Completion) {
        if let Some(hook) = self.hook.take() {
            hook(completion);
        }
    }
}

impl Observe for GoAhead {
    fn on_complete(mut self, hook: CompletionHook) -> Self {
        // Layers compose: an earlier hook still hears of the outcome.
        self.hook = Some(match self.hook.take() {
            None => hook,
            Some(first) => Box::new(move |c: &Completion| {
                first(c);
                hook(c);
            }),
        });
        self
    }
}

impl Maskable for GoAhead {
    fn mask(mut self, masker: Masker) -> Self {
        self.masker = masker;
        self
    }
}

/// The innermost service of a stack whose gateway forwards only after the stack said yes (SSH,
/// Kubernetes): [`Request::commit`]s the request — the last check that every layer did its
/// part, then the durable audit record — and answers with the [`GoAhead`]. The gateway
/// forwards nothing before this service answered `Ok`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Commit;

impl<B: Send + Sync + 'static> tower::Service<Request<B>> for Commit {
    type Response = GoAhead;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<GoAhead, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(async move {
            req.commit().await?;
            Ok(GoAhead {
                masker: Masker::none(),
                transcript: req.transcript(),
                hook: None,
            })
        })
    }
}
