//! [`IdentityLayer`]: authenticate on `Connect`, then refuse anything without a live identity.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tower::{Layer, Service};

use super::refused;
use crate::identity::{BoxFuture, Verifier};
use crate::{BoxError, OperationKind, Refusal, RefusalCode, Request};

/// Authenticates sessions.
///
/// On a `Connect` request it takes the presented credential out of the request (no inner layer
/// ever sees it), verifies it, and sets the session's identity, once. Every later request is
/// refused unless the session has an identity that has not expired, so a stack whose driver
/// forgot to authenticate fails closed.
#[derive(Clone)]
pub struct IdentityLayer {
    verifier: Arc<dyn Verifier>,
}

impl IdentityLayer {
    /// A layer that verifies credentials with `verifier` (often a
    /// [`Verifiers`](crate::identity::Verifiers) chain).
    pub fn new(verifier: impl Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
        }
    }
}

impl<S> Layer<S> for IdentityLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identify {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service produced by [`IdentityLayer`].
#[derive(Clone)]
pub struct Identify<S> {
    inner: S,
    verifier: Arc<dyn Verifier>,
}

impl<S, B> Service<Request<B>> for Identify<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.operation().kind() != OperationKind::Connect {
            if req.has_credential() {
                return Box::pin(refused(Refusal::new(
                    RefusalCode::Misconfigured,
                    "a credential may only be presented when connecting",
                )));
            }
            if let Err(r) = req.session().current_identity(SystemTime::now()) {
                return Box::pin(refused(r));
            }
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let Some(credential) = req.take_credential() else {
            return Box::pin(refused(Refusal::new(
                RefusalCode::Unauthenticated,
                "no credential was presented",
            )));
        };
        if req.session().identity().is_some() {
            return Box::pin(refused(Refusal::new(
                RefusalCode::Unauthenticated,
                "the session is already authenticated",
            )));
        }
        let verifier = self.verifier.clone();
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move {
            let verified = verifier.verify(&credential).await;
            drop(credential);
            let identity = verified.map_err(|e| {
                tracing::info!(session = %req.session().id(), error = %e, "authentication failed");
                Refusal::new(RefusalCode::Unauthenticated, e.to_string())
            })?;
            tracing::debug!(session = %req.session().id(), principal = %identity.principal, "authenticated");
            req.session().authenticate(identity)?;
            inner.call(req).await.map_err(Into::into)
        })
    }
}
