//! [`PolicyLayer`]: capability scope, then the policy decision.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::TryFutureExt as _;
use futures_util::future::{Either, MapErr, Ready};
use tower::{Layer, Service};

use super::refused;
use crate::policy::{Decide, Effect};
use crate::{BoxError, Request};

/// Decides on every operation.
///
/// First the operation must lie within the session's capability (if it presented one); then the
/// policy decides. A deny becomes a [`Refusal`](crate::Refusal) naming the rule; allow and
/// require-approval decisions are attached to the request for the layers below (approval,
/// masking) and for the audit record.
#[derive(Clone)]
pub struct PolicyLayer<P> {
    policy: Arc<P>,
}

impl<P: Decide> PolicyLayer<P> {
    /// A layer deciding with `policy`.
    pub fn new(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// A layer deciding with a shared `policy`.
    pub fn shared(policy: Arc<P>) -> Self {
        Self { policy }
    }
}

impl<S, P> Layer<S> for PolicyLayer<P> {
    type Service = Decided<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Decided {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service produced by [`PolicyLayer`].
#[derive(Clone)]
pub struct Decided<S, P> {
    inner: S,
    policy: Arc<P>,
}

type DecidedFuture<F, T, E> = Either<Ready<Result<T, BoxError>>, MapErr<F, fn(E) -> BoxError>>;

impl<S, P, B> Service<Request<B>> for Decided<S, P>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    P: Decide,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = DecidedFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let identity = match req.session().current_identity(SystemTime::now()) {
            Ok(i) => i,
            Err(r) => return Either::Left(refused(r)),
        };
        let op = req.operation();
        if let Some(cap) = &identity.capability
            && let Err(r) = cap.scope().check(op)
        {
            tracing::info!(session = %req.session().id(), reason = %r, "outside capability");
            return Either::Left(refused(r));
        }
        let decision = self.policy.decide_all(&identity.principal, op);
        tracing::debug!(
            session = %req.session().id(),
            kind = %op.kind(),
            effect = decision.effect().name(),
            rule = decision.rule_id(),
            "policy decision"
        );
        if *decision.effect() == Effect::Deny {
            return Either::Left(refused(decision.refusal(op)));
        }
        req.set_decision(decision);
        Either::Right(
            self.inner
                .call(req)
                .map_err(Into::into as fn(S::Error) -> BoxError),
        )
    }
}
