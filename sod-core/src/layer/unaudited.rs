//! [`UnauditedLayer`]: the explicit opt-out from audit records.

use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::Request;

/// Lets the stack's requests be committed without an audit record.
///
/// [`Request::commit`](crate::Request::commit) refuses a request no recording layer opened a
/// record for, so a stack that forgot its `RecordingLayer` fails closed. This layer is how a
/// stack says "no audit, on purpose": for tests, and for deployments that accept running
/// unrecorded. It never removes a record a recording layer above it attached.
///
/// ```
/// use sod_core::layer::{PolicyLayer, UnauditedLayer};
/// use sod_core::policy::Policy;
///
/// let stack = tower::ServiceBuilder::new()
///     .layer(UnauditedLayer::new())
///     .layer(PolicyLayer::new(Policy::deny_all()));
/// # let _ = stack;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct UnauditedLayer(());

impl UnauditedLayer {
    /// The opt-out layer.
    pub fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for UnauditedLayer {
    type Service = Unaudited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Unaudited { inner }
    }
}

/// The service produced by [`UnauditedLayer`].
#[derive(Clone, Debug)]
pub struct Unaudited<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Unaudited<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.opt_out_of_audit();
        self.inner.call(req)
    }
}
