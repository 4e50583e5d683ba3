//! Answer bodies: [`Observed`] passes the API server's answer and reports how it ended;
//! [`WatchMasked`] masks a watch stream event by event.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use sod_core::BoxError;
use sod_core::audit::{Completion, CompletionStatus};
use sod_core::masking::Masker;

use super::forward::{error_code, outcome};
use crate::masking::{Answering, WatchMasker};
use crate::service::K8sResponse;

/// Every body the gateway answers with.
pub(crate) struct ResponseBody(UnsyncBoxBody<Bytes, BoxError>);

impl ResponseBody {
    pub(super) fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Self(UnsyncBoxBody::new(body))
    }

    pub(super) fn full(bytes: Bytes) -> Self {
        Self::new(Full::new(bytes).map_err(|never| match never {}))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The upstream's body as it comes, counted; the operation's outcome is reported when it ends
/// (interrupted if the client goes first).
pub(super) struct Observed {
    inner: kube::client::Body,
    go: Option<K8sResponse>,
    status: StatusCode,
    bytes: u64,
    started: Instant,
}

impl Observed {
    pub(super) fn new(
        inner: kube::client::Body,
        go: K8sResponse,
        status: StatusCode,
        started: Instant,
    ) -> Self {
        Self {
            inner,
            go: Some(go),
            status,
            bytes: 0,
            started,
        }
    }

    fn finish(&mut self, status: CompletionStatus) {
        if let Some(mut go) = self.go.take() {
            go.finish(&Completion {
                status,
                bytes: Some(self.bytes),
                error_code: error_code(self.status),
                duration: self.started.elapsed(),
                ..Completion::default()
            });
        }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.finish(CompletionStatus::Interrupted);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            None => {
                this.finish(outcome(this.status));
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A watch for a masked principal: each event masked whole before it passes; an event that
/// cannot be masked ends the watch with an `ERROR` event carrying a Status, as the API server
/// ends a watch it cannot continue.
pub(super) struct WatchMasked {
    observed: Observed,
    masker: WatchMasker,
    done: bool,
}

impl WatchMasked {
    pub(super) fn new(
        inner: kube::client::Body,
        go: K8sResponse,
        about: Answering<'_>,
        masker: Masker,
        max_line: usize,
        started: Instant,
    ) -> Self {
        Self {
            observed: Observed::new(inner, go, StatusCode::OK, started),
            masker: WatchMasker::new(about.secrets, max_line).with_masker(masker, about.resource),
            done: false,
        }
    }

    /// The `ERROR` event that ends a watch the gateway cannot mask.
    fn error_event(&mut self, why: &str) -> Bytes {
        self.done = true;
        self.observed.finish(CompletionStatus::Error);
        let status = crate::status::failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "sod: refused by rule `{}`: {why}",
                crate::status::RULE_UNMASKABLE
            ),
            Some(crate::status::RULE_UNMASKABLE),
        );
        let mut event = br#"{"type":"ERROR","object":"#.to_vec();
        event.extend_from_slice(&status);
        event.extend_from_slice(b"}\n");
        Bytes::from(event)
    }
}

impl Body for WatchMasked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let inner = &mut this.observed.inner;
            match ready!(Pin::new(inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    match this.masker.push(data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => {
                            this.observed.bytes += out.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                        Err(e) => {
                            let event = this.error_event(&e.to_string());
                            return Poll::Ready(Some(Ok(Frame::data(event))));
                        }
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    this.observed.finish(CompletionStatus::Interrupted);
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                None => {
                    this.done = true;
                    match this.masker.finish() {
                        Ok(out) => {
                            this.observed.bytes += out.len() as u64;
                            this.observed.finish(CompletionStatus::Ok);
                            if out.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                        Err(e) => {
                            let event = this.error_event(&e.to_string());
                            return Poll::Ready(Some(Ok(Frame::data(event))));
                        }
                    }
                }
            }
        }
    }
}

/// A watch that ends when nothing has come for `idle`: the API server ends its own watches
/// after a while, but one that says nothing for longer than this holds a slot for nothing.
/// kubectl and informers watch again.
pub(super) struct Idle<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Idle<B> {
    pub(super) fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> Body for Idle<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::debug!(idle = ?this.idle, "ending a quiet watch");
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
