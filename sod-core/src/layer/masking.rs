//! [`MaskingLayer`]: applies the decision's mask profiles to the response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::{Either, Ready};
use tower::{Layer, Service};

use super::refused;
use crate::masking::{MaskProfiles, Maskable, Masker};
use crate::{BoxError, Refusal, RefusalCode, Request};

/// Masks responses with the profiles the policy decision names.
///
/// It needs a decision: a request that reaches it without one (no policy layer above) is
/// refused, and so is a decision naming a profile that does not exist (fail closed).
///
/// The [`Masker`] is also put in the request's
/// [extensions](crate::Request::extensions) (unless it masks nothing), so the protocol's
/// innermost service can refuse what masking could not hide — a query that filters on a
/// sensitive column shows its values through *which* rows come back.
#[derive(Clone)]
pub struct MaskingLayer {
    profiles: Arc<MaskProfiles>,
}

impl MaskingLayer {
    /// A layer masking with `profiles`.
    pub fn new(profiles: MaskProfiles) -> Self {
        Self {
            profiles: Arc::new(profiles),
        }
    }

    /// A layer masking with shared `profiles`.
    pub fn shared(profiles: Arc<MaskProfiles>) -> Self {
        Self { profiles }
    }
}

impl<S> Layer<S> for MaskingLayer {
    type Service = Mask<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Mask {
            inner,
            profiles: self.profiles.clone(),
        }
    }
}

/// The service produced by [`MaskingLayer`].
#[derive(Clone)]
pub struct Mask<S> {
    inner: S,
    profiles: Arc<MaskProfiles>,
}

impl<S, B> Service<Request<B>> for Mask<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Response: Maskable,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Either<Ready<Result<S::Response, BoxError>>, MaskFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(decision) = req.decision() else {
            return Either::Left(refused(Refusal::new(
                RefusalCode::Misconfigured,
                "no policy decision reached the masking layer (is a PolicyLayer above it?)",
            )));
        };
        let masker = match self.profiles.masker(decision.masks()) {
            Ok(m) => m,
            Err(r) => return Either::Left(refused(r)),
        };
        if !masker.is_noop() {
            req.extensions_mut().insert(masker.clone());
        }
        req.extensions_mut().insert(MaskingInStack);
        Either::Right(MaskFuture {
            inner: self.inner.call(req),
            masker: Some(masker),
        })
    }
}

/// Left on a request by a [`MaskingLayer`], so that [`Commit`](super::Commit) can tell a
/// decision that masks from a stack that would not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaskingInStack;

pin_project_lite::pin_project! {
    /// Response future of [`Mask`]: masks the response when it arrives.
    pub struct MaskFuture<F> {
        #[pin]
        inner: F,
        masker: Option<Masker>,
    }
}

impl<F, R, E> Future for MaskFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    R: Maskable,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx)).map_err(Into::into)?;
        Poll::Ready(Ok(match this.masker.take() {
            Some(m) if !m.is_noop() => resp.mask(m),
            _ => resp,
        }))
    }
}
