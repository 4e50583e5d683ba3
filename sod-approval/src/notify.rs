//! Telling people that an approval is waiting for them: [`Notifier`]s, called by the
//! [`Broker`](crate::Broker) after every successful submit, decision and use.
//!
//! A notifier never blocks or fails the broker: the broker spawns each notification on the
//! tokio runtime and moves on, whatever the notifier does (a notifier that panics is logged).
//! Notifications are therefore best effort; the store stays the source of truth, and an
//! approver who missed a message still finds the request through the
//! [HTTP API](crate::http) or the store.
//!
//! - [`TracingNotifier`] logs each event at `info`.
//! - [`WebhookNotifier`] POSTs the event as JSON to an HTTPS URL, signed with HMAC-SHA256, with
//!   a timeout per attempt and retries with exponential backoff.
//!
//! ```
//! use std::sync::Arc;
//! use sod_approval::{Broker, MemoryStore, TracingNotifier};
//!
//! let broker = Broker::new(Arc::new(MemoryStore::new())).notifier(Arc::new(TracingNotifier));
//! # let _ = broker;
//! ```

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, Limited};
use serde::Serialize;
use sod_core::Secret;
use sod_core::https::{self, HttpsClient, PlainHttp};

use crate::ApprovalRequest;

/// Something that happened to an approval request. Serialized as JSON with an `event` tag:
/// `{"event": "requested", "request": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notification {
    /// A new request is waiting for approvers.
    Requested {
        /// The request as submitted.
        request: ApprovalRequest,
    },
    /// An approver voted; `request.status` says where the request now stands.
    Decided {
        /// The request after the vote.
        request: ApprovalRequest,
        /// The approver's principal id.
        approver: String,
        /// Yes or no.
        approve: bool,
        /// The approver's comment.
        comment: Option<String>,
    },
    /// An approval was used by its requester (`request.uses_left` uses remain).
    Used {
        /// The request after the use.
        request: ApprovalRequest,
    },
}

impl Notification {
    /// The event's name: `requested`, `decided` or `used` (the webhook's `X-Sod-Event`).
    pub fn event(&self) -> &'static str {
        match self {
            Self::Requested { .. } => "requested",
            Self::Decided { .. } => "decided",
            Self::Used { .. } => "used",
        }
    }

    /// The request the event is about.
    pub fn request(&self) -> &ApprovalRequest {
        match self {
            Self::Requested { request }
            | Self::Decided { request, .. }
            | Self::Used { request } => request,
        }
    }
}

/// Receives [`Notification`]s from the [`Broker`](crate::Broker).
///
/// The broker spawns `notify` on the tokio runtime and ignores its outcome, so an
/// implementation may take its time (within reason: bound every wait) but should report its own
/// failures, typically by logging them.
///
/// ```
/// use futures_util::future::BoxFuture;
/// use sod_approval::{Notification, Notifier};
///
/// /// Counts events.
/// #[derive(Default)]
/// struct Counter(std::sync::atomic::AtomicUsize);
///
/// impl Notifier for Counter {
///     fn notify(&self, _event: &Notification) -> BoxFuture<'_, ()> {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         Box::pin(async {})
///     }
/// }
/// ```
pub trait Notifier: Send + Sync + 'static {
    /// Delivers `event`.
    fn notify(&self, event: &Notification) -> BoxFuture<'_, ()>;
}

/// Logs every event at `info` (approval id, requester, target, operation text; the approver
/// and vote for decisions).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingNotifier;

impl Notifier for TracingNotifier {
    fn notify(&self, event: &Notification) -> BoxFuture<'_, ()> {
        let request = event.request();
        let on_behalf_of = request.requester.on_behalf_of.as_deref().unwrap_or("");
        match event {
            Notification::Requested { .. } => tracing::info!(
                approval = %request.id,
                requester = %request.requester.id,
                on_behalf_of,
                target = %request.operation.target,
                text = %request.operation.text,
                approvers = %request.approver_groups.join(","),
                quorum = request.quorum,
                "approval requested"
            ),
            Notification::Decided {
                approver,
                approve,
                comment,
                ..
            } => tracing::info!(
                approval = %request.id,
                requester = %request.requester.id,
                on_behalf_of,
                target = %request.operation.target,
                text = %request.operation.text,
                approver = %approver,
                approve = *approve,
                comment = comment.as_deref().unwrap_or(""),
                status = ?request.status,
                "approval decided"
            ),
            Notification::Used { .. } => tracing::info!(
                approval = %request.id,
                requester = %request.requester.id,
                on_behalf_of,
                target = %request.operation.target,
                text = %request.operation.text,
                uses_left = request.uses_left,
                "approval used"
            ),
        }
        Box::pin(async {})
    }
}

/// Why a webhook could not be set up or delivered. Messages never contain the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not usable: not a URL, not `https` (plain `http` is allowed to loopback IP
    /// addresses only), or the TLS roots could not be loaded.
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    /// The event could not be serialized.
    #[error("cannot encode the notification: {0}")]
    Encode(String),
    /// The receiver answered with a status that is not retried (a 4xx or a redirect), or every
    /// attempt answered 5xx.
    #[error("webhook answered HTTP {status} (after {attempts} attempt(s))")]
    Status {
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// Every attempt failed to connect, timed out or broke off.
    #[error("webhook unreachable after {attempts} attempt(s): {message}")]
    Transport {
        /// The last failure.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

type WebhookClient = HttpsClient<Full<Bytes>>;

/// The signature header: `sha256=` and the lowercase hex HMAC-SHA256 of the exact body.
pub const SIGNATURE_HEADER: &str = "x-sod-signature";
/// The event header: [`Notification::event`].
pub const EVENT_HEADER: &str = "x-sod-event";
/// A random id per notification, the same on every retry of it, so receivers can drop
/// duplicates.
pub const DELIVERY_HEADER: &str = "x-sod-delivery";

/// Response bodies read (and discarded) per attempt, at most.
const MAX_RESPONSE: usize = 64 * 1024;

/// POSTs each [`Notification`] as JSON to a URL.
///
/// Every request carries `X-Sod-Event` (`requested`, `decided`, `used`), `X-Sod-Delivery` (a
/// random id, the same across retries) and `X-Sod-Signature: sha256=<hex>`, the HMAC-SHA256 of
/// the exact body under the shared secret; receivers must verify it (in constant time) before
/// trusting the body. Each attempt has a timeout (default 10 s); connection failures, timeouts
/// and 5xx answers are retried with exponential backoff (default 4 attempts, 500 ms doubling,
/// capped at 30 s); 4xx and redirects are not retried.
///
/// The URL must be `https`, except that plain `http` is accepted for loopback IP addresses
/// (`127.0.0.0/8`, `::1`), for receivers on the same host and for tests.
///
/// ```
/// use std::time::Duration;
/// use sod_approval::WebhookNotifier;
/// use sod_core::Secret;
///
/// let hook = WebhookNotifier::new(
///     "http://127.0.0.1:8080/hooks/sod",
///     Secret::new(b"shared secret".to_vec()),
/// )?
/// .attempts(5)
/// .base_delay(Duration::from_secs(1))
/// .attempt_timeout(Duration::from_secs(5));
/// # let _ = hook;
/// # Ok::<(), sod_approval::WebhookError>(())
/// ```
pub struct WebhookNotifier {
    url: http::Uri,
    secret: Secret<Vec<u8>>,
    client: WebhookClient,
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &self.url)
            .field("attempts", &self.attempts)
            .field("base_delay", &self.base_delay)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// A webhook to `url`, signed with `secret`, trusting the system's root certificates.
    pub fn new(url: &str, secret: Secret<Vec<u8>>) -> Result<Self, WebhookError> {
        Self::build(url, secret, None)
    }

    /// A webhook to `url`, signed with `secret`, using `tls` (for a private CA or client
    /// certificates).
    pub fn with_tls(
        url: &str,
        secret: Secret<Vec<u8>>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, WebhookError> {
        Self::build(url, secret, Some(tls))
    }

    fn build(
        url: &str,
        secret: Secret<Vec<u8>>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, WebhookError> {
        let config = WebhookError::Config;
        // The body is signed, not encrypted: over a network only with TLS.
        let uri = https::check_url(url, PlainHttp::LoopbackOnly)
            .map_err(|e| config(format!("webhook URL: {e}")))?;
        if secret.expose_secret().is_empty() {
            return Err(config("the webhook secret is empty".into()));
        }
        let client = https::client(tls, PlainHttp::LoopbackOnly)
            .map_err(|e| config(format!("webhook client: {e}")))?;
        Ok(Self {
            url: uri,
            secret,
            client,
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
        })
    }

    /// Attempts per notification, first one included (at least 1; default 4).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry; it doubles for each further retry (default 500 ms).
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest wait between two attempts (default 30 s).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The timeout of one attempt: connecting, sending, and reading the answer (default 10 s).
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The `X-Sod-Signature` value for `body` under this webhook's secret.
    fn sign(&self, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.expose_secret());
        let tag = hmac::sign(&key, body);
        format!("sha256={}", sod_core::hex::encode(tag.as_ref()))
    }

    /// Delivers `event` now, retrying as configured; returns when it was accepted (any 2xx) or
    /// when it finally failed. The [`Notifier`] implementation calls this and logs failures.
    pub async fn deliver(&self, event: &Notification) -> Result<(), WebhookError> {
        let body = Bytes::from(
            serde_json::to_vec(event).map_err(|e| WebhookError::Encode(e.to_string()))?,
        );
        let signature = self.sign(&body);
        let delivery = sod_core::hex::encode(&sod_core::hex::random::<16>());
        let mut delay = self.base_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::time::timeout(
                self.attempt_timeout,
                self.attempt(event.event(), &delivery, &signature, body.clone()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Retry(format!(
                    "timed out after {:?}",
                    self.attempt_timeout
                )))
            });
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(Failure::Final(status)) => {
                    return Err(WebhookError::Status {
                        status,
                        attempts: attempt,
                    });
                }
                Err(Failure::Retry5xx(status)) => WebhookError::Status {
                    status,
                    attempts: attempt,
                },
                Err(Failure::Retry(message)) => WebhookError::Transport {
                    message,
                    attempts: attempt,
                },
            };
            if attempt >= self.attempts {
                return Err(error);
            }
            tracing::debug!(
                approval = %event.request().id,
                attempt,
                error = %error,
                retry_in = ?delay,
                "webhook delivery failed; retrying"
            );
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2).min(self.max_delay);
        }
    }

    async fn attempt(
        &self,
        event: &'static str,
        delivery: &str,
        signature: &str,
        body: Bytes,
    ) -> Result<(), Failure> {
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("sod-approval/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_HEADER, event)
            .header(DELIVERY_HEADER, delivery)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(body))
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Retry(transport_message(&e)))?;
        let status = response.status();
        // Read (a bounded amount of) the answer so the connection can be reused; its content
        // does not matter.
        let _ = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() {
            Err(Failure::Retry5xx(status.as_u16()))
        } else {
            Err(Failure::Final(status.as_u16()))
        }
    }
}

/// How one attempt failed.
enum Failure {
    /// Not retried (4xx, redirects).
    Final(u16),
    /// A 5xx: retried.
    Retry5xx(u16),
    /// Connection failure, timeout, broken response: retried.
    Retry(String),
}

/// The error and its causes, on one line (hyper's top-level message alone is "client error").
fn transport_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl Notifier for WebhookNotifier {
    fn notify(&self, event: &Notification) -> BoxFuture<'_, ()> {
        let event = event.clone();
        Box::pin(async move {
            match self.deliver(&event).await {
                Ok(()) => tracing::debug!(
                    approval = %event.request().id,
                    event = event.event(),
                    "webhook delivered"
                ),
                Err(e) => tracing::warn!(
                    approval = %event.request().id,
                    event = event.event(),
                    error = %e,
                    "webhook notification failed"
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret<Vec<u8>> {
        Secret::new(b"k".to_vec())
    }

    #[tokio::test]
    async fn urls_must_be_https_or_loopback() {
        for ok in [
            "http://127.0.0.1:9/x",
            "http://127.1.2.3/x",
            "http://[::1]:9/x",
        ] {
            assert!(WebhookNotifier::new(ok, secret()).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://localhost/x",
            "ftp://127.0.0.1/x",
            "/just/a/path",
            "not a url",
        ] {
            assert!(
                matches!(
                    WebhookNotifier::new(bad, secret()),
                    Err(WebhookError::Config(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            WebhookNotifier::new("http://127.0.0.1/x", Secret::new(Vec::new())),
            Err(WebhookError::Config(_))
        ));
    }

    #[tokio::test]
    async fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let hook = WebhookNotifier::new("http://127.0.0.1/x", Secret::new(b"Jefe".to_vec()))
            .expect("a loopback URL");
        assert_eq!(
            hook.sign(b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
