//! What the stack sees of SSH: [`SshRequest`], [`SshResponse`], and [`SshUpstream`], the
//! innermost service, which commits each request before anything reaches the target.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sod_core::audit::{Completion, CompletionHook, Observe, Transcript};
use sod_core::masking::{Maskable, Masker};
use sod_core::{BoxError, Request};

/// What an operation asks of the SSH target. Layers never look inside: they decide on the
/// request's [`Operation`](sod_core::Operation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SshRequest {
    /// Opening the session (authentication).
    Connect,
    /// Running a command line (`exec`).
    Exec,
    /// An interactive shell, with or without a terminal.
    Shell,
    /// One SFTP request.
    Sftp,
    /// A tunnel (`direct-tcpip`) or another forward.
    Forward,
    /// A subsystem other than SFTP.
    Subsystem,
}

/// The go-ahead for one committed operation: the gateway carries it out and reports through it
/// how it ended.
///
/// It carries what the stack decided for the operation's output — the [`Masker`] (from a
/// masking layer) and the operation's [`Transcript`] (from a recording layer) — and the hook a
/// recording layer attached to learn the outcome. Dropped without [`finish`](Self::finish),
/// the outcome is recorded as interrupted.
pub struct SshResponse {
    masker: Masker,
    transcript: Option<Arc<dyn Transcript>>,
    hook: Option<CompletionHook>,
}

impl std::fmt::Debug for SshResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshResponse")
            .field("masked", &!self.masker.is_noop())
            .field("recorded", &self.transcript.is_some())
            .finish()
    }
}

impl SshResponse {
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

impl Observe for SshResponse {
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

impl Maskable for SshResponse {
    fn mask(mut self, masker: Masker) -> Self {
        self.masker = masker;
        self
    }
}

/// The innermost service of the SSH stack: [`Request::commit`]s the request — the last check
/// that every layer did its part, then the durable audit record — and answers with the
/// go-ahead. The gateway forwards nothing to the target before this service answered `Ok`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SshUpstream;

impl tower::Service<Request<SshRequest>> for SshUpstream {
    type Response = SshResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<SshResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<SshRequest>) -> Self::Future {
        Box::pin(async move {
            req.commit().await?;
            Ok(SshResponse {
                masker: Masker::none(),
                transcript: req.transcript(),
                hook: None,
            })
        })
    }
}
