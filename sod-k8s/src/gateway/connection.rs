//! One client connection: the identities its bearer tokens proved, and each request's path —
//! read, understood, decided by the stack, then forwarded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use aws_lc_rs::digest;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sod_core::admission::SessionSlot;
use sod_core::layer::Commit;
use sod_core::{BoxError, Credential, Peer, Refusal, RefusalCode, Request, Session};
use tower::{Layer, Service, ServiceExt};

use super::Shared;
use super::body::ResponseBody;
use super::stream::StreamKind;
use crate::operation::{RequestBody, operation};
use crate::request_info::{RequestInfo, Verb, parse};
use crate::service::{K8sRequest, K8sResponse};
use crate::status::{self, RULE_BODY, RULE_IMPERSONATION, RULE_REQUEST_INFO};

/// How long a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An identity one bearer token proved on this connection.
struct Known {
    /// SHA-256 of the token: the token itself is not kept.
    token: [u8; 32],
    session: Arc<Session>,
    /// Held while the session lives (the per-principal session bound).
    _slot: SessionSlot,
    /// The stack that ran the session's `Connect`: dropping it (with the session) writes the
    /// session's `session_ended` record.
    _stack: Box<dyn Send>,
}

/// One client connection.
pub(super) struct Connection<L> {
    shared: Arc<Shared<L>>,
    peer: SocketAddr,
    known: Mutex<Vec<Known>>,
}

impl<L> Connection<L>
where
    L: Layer<Commit> + Send + Sync + 'static,
    L::Service:
        Service<Request<K8sRequest>, Response = K8sResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<K8sRequest>>>::Future: Send,
{
    pub(super) fn new(shared: Arc<Shared<L>>, peer: SocketAddr) -> Self {
        Self {
            shared,
            peer,
            known: Mutex::new(Vec::new()),
        }
    }

    /// Answers one request. Never fails: every refusal is a Kubernetes `Status`.
    pub(super) async fn handle(
        &self,
        mut req: http::Request<Incoming>,
    ) -> http::Response<ResponseBody> {
        let started = Instant::now();
        // Taken before anything reads the request: the client's side of an upgrade.
        let upgrade = super::stream::requested(&req).then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        if let Some(name) = impersonation(&parts.headers) {
            return status::response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "sod: refused by rule `{RULE_IMPERSONATION}`: the `{name}` header asks to act as someone else; \
                     the gateway acts with its own credentials for the identity your token proves"
                ),
                Some(RULE_IMPERSONATION),
            );
        }
        let Some(token) = bearer(&parts.headers) else {
            return status::response(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "sod: authentication failed: no bearer token (present an OIDC token or a sod capability as the kubeconfig user's token)",
                None,
            );
        };
        let path = parts.uri.path();
        let query = parts.uri.query();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or(path, |pq| pq.as_str())
            .to_owned();
        let info = match parse(parts.method.as_str(), path, query) {
            Ok(info) => info,
            Err(e) => {
                return status::response(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("sod: refused by rule `{RULE_REQUEST_INFO}`: {e}"),
                    Some(RULE_REQUEST_INFO),
                );
            }
        };
        let stream = match (&upgrade, &info) {
            (None, _) => None,
            (Some(_), RequestInfo::Resource(r))
                if r.group.is_empty()
                    && r.resource == "pods"
                    && matches!(r.subresource.as_deref(), Some("exec" | "attach")) =>
            {
                Some(StreamKind::Terminal)
            }
            (Some(_), RequestInfo::Resource(r))
                if r.group.is_empty()
                    && r.resource == "pods"
                    && r.subresource.as_deref() == Some("portforward") =>
            {
                Some(StreamKind::PortForward)
            }
            (Some(_), _) => {
                return status::response(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "sod: the gateway relays upgraded streams of pods/exec, pods/attach and pods/portforward only",
                    None,
                );
            }
        };
        // A stream holds a permit from before its decision (an approval is not spent on a
        // stream that could not open) to its end.
        let permit = match &upgrade {
            Some(_) => match self.shared.streams.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return status::response(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        &format!(
                            "sod: {} exec, attach and port-forward streams are open, the most the gateway allows; try again later",
                            self.shared.limits.streams
                        ),
                        None,
                    );
                }
            },
            None => None,
        };
        // Who asks first: nobody unauthenticated makes the gateway hold a body.
        let session = match self.session(token).await {
            Ok(session) => session,
            Err(e) => return status::from_error(&e),
        };
        let body = match read_body(body, self.shared.limits.body).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let op = operation(
            self.shared.target.clone(),
            parts.method.as_str(),
            &path_and_query,
            &info,
            RequestBody::new(&body, content_type),
        );
        let secrets = op.flags().touches_sensitive;
        let kind = if upgrade.is_some() {
            K8sRequest::Stream
        } else {
            K8sRequest::Api
        };
        let service = self.shared.layer.layer(Commit);
        let go = match service.oneshot(Request::new(session, op, kind)).await {
            Ok(go) => go,
            Err(e) => return status::from_error(&e),
        };
        let answer = match &info {
            RequestInfo::Resource(r) => super::forward::Answer {
                resource: r.resource.clone(),
                secrets,
                watch: r.verb == Verb::Watch,
                text: r.group.is_empty()
                    && r.resource == "pods"
                    && r.subresource.as_deref() == Some("log"),
            },
            RequestInfo::NonResource { .. } => super::forward::Answer {
                resource: "nonresource".into(),
                secrets,
                watch: false,
                text: false,
            },
        };
        match upgrade.zip(permit).zip(stream) {
            Some(((on_upgrade, permit), stream)) => {
                super::stream::relay(
                    &self.shared,
                    &parts,
                    &path_and_query,
                    (on_upgrade, permit, stream),
                    go,
                    started,
                )
                .await
            }
            None => {
                super::forward::forward(
                    &self.shared,
                    parts,
                    &path_and_query,
                    body,
                    go,
                    answer,
                    started,
                )
                .await
            }
        }
    }

    /// The session of `token` on this connection: the one it proved before, or a new one
    /// authenticated through the stack (the `Connect` operation, audited).
    async fn session(&self, token: &str) -> Result<Arc<Session>, BoxError> {
        let hash: [u8; 32] = digest::digest(&digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Refusal::new(RefusalCode::Misconfigured, "SHA-256 is not 32 bytes"))?;
        {
            let mut known = self.known.lock().map_err(|_| poisoned())?;
            let now = SystemTime::now();
            // Expired and revoked identities go: their tokens must authenticate again (and
            // fail); their sessions end.
            known.retain(|k| match k.session.current_identity(now) {
                Ok(_) => true,
                Err(why) => {
                    k.session.end(why.reason());
                    false
                }
            });
            if let Some(k) = known.iter().find(|k| k.token == hash) {
                return Ok(k.session.clone());
            }
        }
        let session = Arc::new(Session::new(
            self.shared.target.clone(),
            Peer::Tcp(self.peer),
            None,
        ));
        let connect =
            Request::connect(session.clone(), Credential::new(token), K8sRequest::Connect);
        let mut stack = self.shared.layer.layer(Commit);
        let mut go = stack.ready().await?.call(connect).await?;
        go.finish(&sod_core::audit::Completion::default());
        let principal = session
            .identity()
            .map(|i| i.principal.id.clone())
            .ok_or_else(|| {
                Refusal::new(RefusalCode::Misconfigured, "the stack authenticated nobody")
            })?;
        let slot = self
            .shared
            .admission
            .session(&principal)
            .map_err(|e| Refusal::new(RefusalCode::Unavailable, e.0))?;
        let mut known = self.known.lock().map_err(|_| poisoned())?;
        if known.len() >= self.shared.limits.tokens_per_connection {
            known.remove(0);
        }
        known.push(Known {
            token: hash,
            session: session.clone(),
            _slot: slot,
            _stack: Box::new(stack),
        });
        Ok(session)
    }
}

fn poisoned() -> Refusal {
    Refusal::new(
        RefusalCode::Unavailable,
        "a connection's state was poisoned",
    )
}

/// The token of `Authorization: Bearer …`, if that is what the request carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The first `Impersonate-*` header, if any (`Impersonate-User`, `-Group`, `-Uid`,
/// `-Extra-*`).
fn impersonation(headers: &HeaderMap) -> Option<&str> {
    headers
        .keys()
        .map(|k| k.as_str())
        .find(|k| k.starts_with("impersonate-"))
}

/// The request body, whole, up to `limit` bytes.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, http::Response<ResponseBody>> {
    let read = http_body_util::Limited::new(body, limit).collect();
    let Ok(read) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return Err(status::response(
            StatusCode::REQUEST_TIMEOUT,
            "Timeout",
            &format!(
                "sod: refused by rule `{RULE_BODY}`: the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
            Some(RULE_BODY),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(status::response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("sod: refused by rule `{RULE_BODY}`: the request body is over {limit} bytes"),
            Some(RULE_BODY),
        )),
        Err(e) => Err(status::response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("sod: refused by rule `{RULE_BODY}`: the request body could not be read: {e}"),
            Some(RULE_BODY),
        )),
    }
}
