//! [`ApprovalApi`]: the HTTP (JSON) API for approvers.
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/approvals` | pending requests the caller may see, oldest first |
//! | `GET /v1/approvals/{id}` | one request: operation, rule, requester, votes, status |
//! | `POST /v1/approvals/{id}/approve` | votes yes; optional body `{"comment": "..."}` |
//! | `POST /v1/approvals/{id}/deny` | votes no (final); optional body `{"comment": "..."}` |
//! | `POST /v1/approvals/{id}/revoke` | withdraws a request, plan or grant (its requester's side or an approver) |
//! | `GET /v1/openapi.json` | the [OpenAPI 3.0 document](openapi) (no token needed) |
//!
//! Every other route needs `Authorization: Bearer <token>`, checked by the configured
//! [`Verifier`] (an OIDC verifier for human approvers, typically); the token's principal is the
//! voter, and the [`Broker`] applies every separation-of-duties rule (invariant I2). A caller
//! sees a request if it is one of the request's parties (the requester or the human it acts
//! for) or in one of its approver groups; other requests are not listed and answer 404.
//!
//! Errors are JSON `{"error": "..."}` with the status saying what kind: 400 malformed body,
//! 401 missing or invalid token (with `WWW-Authenticate: Bearer`), 403 not allowed to vote on
//! this request, 404 unknown route or request, 405 wrong method (with `Allow`), 409 not pending
//! or already voted, 413 body over 64 KiB, 503 store or identity provider unavailable.
//!
//! The server speaks HTTP/1.1, over TLS when given a rustls configuration; plain HTTP only on a
//! loopback listener unless [`allow_plaintext`](ApprovalApi::allow_plaintext) (say, behind a
//! TLS-terminating proxy). [`ApprovalsClient`](crate::ApprovalsClient) is its client. Every
//! wait is bounded: the TLS handshake, request headers, the
//! whole request, and the graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use serde::Deserialize;
use serde_json::{Value, json};
use sod_core::identity::{AuthError, Verifier};
use sod_core::{Credential, Principal};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::request::unix_now;
use crate::routes::{NoRoute, Route};
use crate::{ApprovalId, ApprovalRequest, Broker, BrokerError};

/// The largest request body accepted (64 KiB); larger ones get 413.
pub const MAX_BODY: usize = 64 * 1024;

/// Why [`ApprovalApi::serve`] stopped or did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No TLS configuration and the listener is not on a loopback address (and plaintext was
    /// not allowed with [`ApprovalApi::allow_plaintext`]).
    #[error(
        "refusing to serve the approval API without TLS on {0}, which is not a loopback address"
    )]
    Plaintext(SocketAddr),
    /// The listener failed.
    #[error("approval API listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The approvers' HTTP API over a [`Broker`]. See the [module docs](self) for the routes.
///
/// ```no_run
/// # async fn run(verifier: std::sync::Arc<dyn sod_core::identity::Verifier>) -> Result<(), sod_approval::ServeError> {
/// use std::sync::Arc;
/// use sod_approval::{ApprovalApi, Broker, MemoryStore};
///
/// let broker = Broker::new(Arc::new(MemoryStore::new()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let shutdown = async {
///     let _ = tokio::signal::ctrl_c().await;
/// };
/// // Loopback: plain HTTP is allowed. Elsewhere pass `Some(rustls_server_config)`.
/// ApprovalApi::new(broker, verifier).serve(listener, None, shutdown).await
/// # }
/// ```
#[derive(Clone)]
pub struct ApprovalApi {
    broker: Broker,
    verifier: Arc<dyn Verifier>,
    allow_plaintext: bool,
    request_timeout: Duration,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
    max_connections: usize,
}

impl std::fmt::Debug for ApprovalApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalApi")
            .field("allow_plaintext", &self.allow_plaintext)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The optional body of approve and deny.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    #[serde(default)]
    comment: Option<String>,
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A refusal: its status, its message (the JSON `error`) and the header it needs, if any.
struct Refused {
    status: StatusCode,
    message: String,
    header: Option<(header::HeaderName, &'static str)>,
}

impl Refused {
    fn reply(self) -> Reply {
        let mut response = json_reply(self.status, &json!({ "error": self.message }));
        if let Some((name, value)) = self.header {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Refused {
    Refused {
        status,
        message: message.to_string(),
        header: None,
    }
}

fn unauthorized(message: &str, invalid_token: bool) -> Refused {
    let challenge = if invalid_token {
        r#"Bearer realm="sod-approval", error="invalid_token""#
    } else {
        r#"Bearer realm="sod-approval""#
    };
    Refused {
        header: Some((header::WWW_AUTHENTICATE, challenge)),
        ..error(StatusCode::UNAUTHORIZED, message)
    }
}

fn method_not_allowed(allow: &'static str) -> Refused {
    Refused {
        header: Some((header::ALLOW, allow)),
        ..error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; use {allow}"),
        )
    }
}

fn not_found_route() -> Refused {
    error(StatusCode::NOT_FOUND, "no such route")
}

fn unknown_id(id: &str) -> Refused {
    error(StatusCode::NOT_FOUND, format!("no approval request {id}"))
}

/// Matches the method and path: the route, or the answer (404, 405).
fn route(method: &Method, path: &str) -> Result<Route, Refused> {
    Route::parse(method, path).map_err(|no| match no {
        NoRoute::NotFound => not_found_route(),
        NoRoute::UnknownId(id) => unknown_id(&id),
        NoRoute::MethodNotAllowed(allow) => method_not_allowed(allow),
    })
}

/// The bearer token of `headers`: exactly one `Authorization` header, scheme `Bearer`.
fn bearer(headers: &HeaderMap) -> Result<Credential, Refused> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthorized(
            "a bearer token is required (Authorization: Bearer <token>)",
            false,
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && !token.contains(' '));
    match token {
        Some(token) => Ok(Credential::new(token)),
        None => Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
            true,
        )),
    }
}

/// Whether `principal` may see `request`: it is a party to it, or may approve it.
fn visible(request: &ApprovalRequest, principal: &Principal) -> bool {
    request.requester.involves(principal)
        || request
            .approver_groups
            .iter()
            .any(|g| principal.in_group(g))
}

/// A request as the API shows it: its status as of now (expiry applied).
fn view(request: &ApprovalRequest, now: u64) -> Value {
    let mut shown = request.clone();
    shown.status = request.status_at(now);
    serde_json::to_value(&shown).unwrap_or(Value::Null)
}

fn broker_error(e: &BrokerError) -> Refused {
    let status = match e {
        BrokerError::UnknownId(_) => StatusCode::NOT_FOUND,
        BrokerError::NotPending { .. } | BrokerError::AlreadyVoted(_) => StatusCode::CONFLICT,
        BrokerError::SelfApproval(_)
        | BrokerError::NotApprover { .. }
        | BrokerError::NotHuman(_) => StatusCode::FORBIDDEN,
        BrokerError::JustificationRequired => StatusCode::BAD_REQUEST,
        BrokerError::Conflict(_) => StatusCode::CONFLICT,
        BrokerError::TooManyPending { .. } => StatusCode::TOO_MANY_REQUESTS,
        BrokerError::Store(store) => {
            tracing::error!(error = %store, "approval API: the store failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the approval store is unavailable; try again later",
            );
        }
    };
    error(status, e)
}

impl ApprovalApi {
    /// The API over `broker`, authenticating callers with `verifier`.
    pub fn new(broker: Broker, verifier: Arc<dyn Verifier>) -> Self {
        Self {
            broker,
            verifier,
            allow_plaintext: false,
            request_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 256,
        }
    }

    /// Serves plain HTTP on any listener, not only loopback ones (default false): for use
    /// behind a TLS-terminating proxy. Bearer tokens travel in the clear otherwise.
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// The longest a request may take, reading its headers and body and answering it
    /// (default 30 s); slower requests get 503.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long open connections may finish their requests after shutdown is asked for
    /// (default 10 s); then they are closed.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Connections served at once (default 256); more wait to be accepted.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Answers one request. [`serve`](Self::serve) calls this; call it directly to mount the
    /// API in another hyper server (it applies the body limit, not the request timeout).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.respond(request).await.unwrap_or_else(Refused::reply)
    }

    async fn respond<B>(&self, request: Request<B>) -> Result<Reply, Refused>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let route = route(request.method(), request.uri().path())?;
        if let Route::OpenApi = route {
            return Ok(json_reply(StatusCode::OK, &openapi()));
        }
        // Authenticated before the body is read: strangers' bodies are never parsed.
        let principal = self.authenticate(request.headers()).await?;
        match route {
            Route::OpenApi => Ok(json_reply(StatusCode::OK, &openapi())),
            Route::List => self.list(&principal).await,
            Route::Show(id) => self.show(&principal, &id).await,
            Route::Decide(id, approve) => {
                let body = read_body(request).await?;
                self.decide(&principal, &id, approve, body.comment).await
            }
            Route::Revoke(id) => {
                read_body(request).await?;
                self.visible_or_404(&principal, &id).await?;
                match self.broker.revoke(&id, &principal).await {
                    Ok(revoked) => Ok(json_reply(StatusCode::OK, &view(&revoked, unix_now()))),
                    Err(e) => Err(broker_error(&e)),
                }
            }
        }
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Refused> {
        let credential = bearer(headers)?;
        match self.verifier.verify(&credential).await {
            Ok(identity) => {
                if identity
                    .expires_at
                    .is_some_and(|at| at <= SystemTime::now())
                {
                    return Err(unauthorized("the token has expired", true));
                }
                // Approvers use their own identity, never a capability: capabilities are what
                // agents hold, and a holder can mint narrower ones.
                if identity.method == sod_core::AuthMethod::Capability {
                    return Err(unauthorized(
                        "approvers authenticate with an identity token, not a capability",
                        true,
                    ));
                }
                Ok(identity.principal)
            }
            Err(AuthError::KeysUnavailable(why)) => {
                tracing::error!(error = %why, "approval API: cannot verify tokens");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tokens cannot be verified right now; try again later",
                ))
            }
            Err(e) => {
                tracing::debug!(error = %e, "approval API: token refused");
                Err(unauthorized(&format!("invalid token: {e}"), true))
            }
        }
    }

    async fn list(&self, principal: &Principal) -> Result<Reply, Refused> {
        let pending = self.broker.pending().await.map_err(|e| broker_error(&e))?;
        let now = unix_now();
        let shown: Vec<Value> = pending
            .iter()
            .filter(|r| visible(r, principal))
            .map(|r| view(r, now))
            .collect();
        Ok(json_reply(StatusCode::OK, &Value::Array(shown)))
    }

    async fn show(&self, principal: &Principal, id: &ApprovalId) -> Result<Reply, Refused> {
        let request = self.broker.get(id).await.map_err(|e| broker_error(&e))?;
        if !visible(&request, principal) {
            // Not the caller's business: as if it did not exist.
            return Err(unknown_id(id.as_str()));
        }
        Ok(json_reply(StatusCode::OK, &view(&request, unix_now())))
    }

    /// Answers 404, as `show` does, for a request the caller may not see, so voting on it
    /// reveals nothing (not its status, not its approver groups).
    async fn visible_or_404(&self, principal: &Principal, id: &ApprovalId) -> Result<(), Refused> {
        let request = self.broker.get(id).await.map_err(|e| broker_error(&e))?;
        if visible(&request, principal) {
            Ok(())
        } else {
            Err(unknown_id(id.as_str()))
        }
    }

    async fn decide(
        &self,
        principal: &Principal,
        id: &ApprovalId,
        approve: bool,
        comment: Option<String>,
    ) -> Result<Reply, Refused> {
        self.visible_or_404(principal, id).await?;
        match self.broker.decide(id, principal, approve, comment).await {
            Ok(request) => Ok(json_reply(StatusCode::OK, &view(&request, unix_now()))),
            Err(e) => {
                tracing::info!(approval = %id, approver = %principal.id, error = %e, "approval API: vote refused");
                Err(broker_error(&e))
            }
        }
    }

    /// Serves the API on `listener` until `shutdown` completes, over TLS when `tls` is given.
    ///
    /// Without TLS the listener must be on a loopback address unless
    /// [`allow_plaintext`](Self::allow_plaintext) is set; otherwise this returns
    /// [`ServeError::Plaintext`] at once. On shutdown it stops accepting, lets open
    /// connections finish their current request (up to the
    /// [grace period](Self::shutdown_grace)), closes them and returns. The TLS configuration's
    /// ALPN protocols are replaced by `http/1.1`, the only protocol served.
    pub async fn serve<F>(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: F,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send,
    {
        let local = listener.local_addr()?;
        if tls.is_none()
            && !self.allow_plaintext
            && !sod_core::https::plain_listener_allowed(&local)
        {
            return Err(ServeError::Plaintext(local));
        }
        // The API speaks HTTP/1.1 only: never let a client negotiate h2.
        let acceptor = tls.map(|config| {
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        });
        let api = Arc::new(self);
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        tracing::info!(address = %local, tls = acceptor.is_some(), "approval API listening");
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept(), if connections.len() < api.max_connections => {
                    let (tcp, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // E.g. out of file descriptors: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "approval API: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let (api, acceptor, watcher) =
                        (Arc::clone(&api), acceptor.clone(), graceful.watcher());
                    connections.spawn(async move {
                        match acceptor {
                            None => serve_connection(api, TokioIo::new(tcp), watcher).await,
                            Some(acceptor) => {
                                let handshake =
                                    tokio::time::timeout(api.handshake_timeout, acceptor.accept(tcp));
                                match handshake.await {
                                    Ok(Ok(tls)) => {
                                        serve_connection(api, TokioIo::new(tls), watcher).await;
                                    }
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "approval API: TLS handshake failed");
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "approval API: TLS handshake timed out");
                                    }
                                }
                            }
                        }
                    });
                }
            }
        }
        drop(listener);
        tracing::info!(address = %local, "approval API shutting down");
        if tokio::time::timeout(api.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "approval API: connections still open after the grace period; closing them"
            );
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// Serves one connection (HTTP/1.1) until it closes or shutdown is signalled.
async fn serve_connection<I>(api: Arc<ApprovalApi>, io: I, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let api = Arc::clone(&api);
        async move {
            let reply = tokio::time::timeout(api.request_timeout, api.handle(request))
                .await
                .unwrap_or_else(|_| {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the request took too long; try again later",
                    )
                    .reply()
                });
            Ok::<_, Infallible>(reply)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(64)
        .keep_alive(true);
    if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
        tracing::debug!(error = %e, "approval API: connection ended with an error");
    }
}

/// Reads the approve/deny body: empty, or a JSON object with an optional `comment`.
async fn read_body<B>(request: Request<B>) -> Result<DecideBody, Refused>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecideBody::default());
    }
    let malformed = |why: String| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object like {{\"comment\": \"...\"}}: {why}"),
        )
    };
    // Parsed as a value first: serde would also read a struct from an array (`["..."]`).
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("not an object".into()));
    }
    serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
}

/// The OpenAPI 3.0 document of the API, as served at `GET /v1/openapi.json`.
///
/// ```
/// let doc = sod_approval::openapi();
/// assert_eq!(doc["openapi"], "3.0.3");
/// assert!(doc["paths"]["/v1/approvals/{id}/approve"]["post"].is_object());
/// ```
pub fn openapi() -> Value {
    let error_response = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let unauthorized = json!({
        "description": "Missing or invalid bearer token.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    let request_response = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApprovalRequest"}}}
        })
    };
    let id_parameter = json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The approval request id (`apr-` and 24 hex digits).",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}
    });
    let decide = |verb: &str, summary: &str, description: &str| {
        json!({
            "operationId": verb,
            "summary": summary,
            "description": description,
            "tags": ["approvals"],
            "security": [{"bearerAuth": []}],
            "parameters": [id_parameter.clone()],
            "requestBody": {
                "required": false,
                "description": "Optional; an empty body means no comment. At most 64 KiB.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}
            },
            "responses": {
                "200": request_response("The vote was recorded; the request as it now stands."),
                "400": error_response("Malformed body, or unknown fields in it."),
                "401": unauthorized.clone(),
                "403": error_response("The caller may not vote on this request: it is the requester or acts for them, or is not human."),
                "404": error_response("No such approval request, or none the caller may see (outside its approver groups and parties)."),
                "409": error_response("The request is no longer pending, or the caller already voted."),
                "413": error_response("The body is larger than 64 KiB."),
                "503": error_response("The approval store or the identity provider is unavailable.")
            }
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sod approvals",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Approve or deny operations that an agent asked to run. Nobody approves their own request: the approver must differ from the requester and from the human the requester acts for, must be a human in one of the request's approver groups, and votes once; a quorum counts distinct approvers; one deny is final."
        },
        "tags": [{"name": "approvals"}, {"name": "meta"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/v1/approvals": {
                "get": {
                    "operationId": "listApprovals",
                    "summary": "Pending approval requests the caller may see, oldest first.",
                    "tags": ["approvals"],
                    "responses": {
                        "200": {
                            "description": "Pending requests (expired ones left out).",
                            "content": {"application/json": {"schema": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ApprovalRequest"}
                            }}}
                        },
                        "401": unauthorized.clone(),
                        "503": error_response("The approval store or the identity provider is unavailable.")
                    }
                }
            },
            "/v1/approvals/{id}": {
                "get": {
                    "operationId": "getApproval",
                    "summary": "One approval request: operation, rule, requester, votes and status.",
                    "tags": ["approvals"],
                    "parameters": [id_parameter.clone()],
                    "responses": {
                        "200": request_response("The request; `status` has expiry applied."),
                        "401": unauthorized.clone(),
                        "404": error_response("No such approval request (or not visible to the caller)."),
                        "503": error_response("The approval store or the identity provider is unavailable.")
                    }
                }
            },
            "/v1/approvals/{id}/approve": {
                "post": decide("approve", "Vote yes.", "Records the caller's approval; enough distinct approvals approve the request.")
            },
            "/v1/approvals/{id}/deny": {
                "post": decide("deny", "Vote no.", "Records the caller's denial; a denial is final.")
            },
            "/v1/approvals/{id}/revoke": {
                "post": decide("revoke", "Withdraw a request, a plan or a grant.", "The requester's side or a member of an approver group withdraws a pending or approved request; from then on it covers nothing. The body's comment is ignored.")
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "tags": ["meta"],
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}}
                        }
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An OIDC ID or access token of the approver, from the identity provider the gateway trusts."
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string", "description": "What went wrong."}}
                },
                "Decision": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"comment": {"type": "string", "description": "The approver's comment."}}
                },
                "Requester": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "description": "The requesting principal."},
                        "on_behalf_of": {"type": "string", "description": "The human the requester acts for."}
                    }
                },
                "Operation": {
                    "type": "object",
                    "required": ["target", "kind", "text", "objects", "fingerprint"],
                    "properties": {
                        "target": {"type": "string", "example": "pg/prod"},
                        "kind": {"type": "string", "enum": ["connect", "read", "write", "schema", "admin", "exec", "transfer", "forward", "unknown"]},
                        "text": {"type": "string", "description": "The full normalized operation text."},
                        "objects": {"type": "array", "items": {"type": "string"}},
                        "params": {"type": "array", "items": {"type": "string", "nullable": true}, "description": "Bound parameter values ($1, $2, …) as text, each cut at 1 KiB; null is NULL. The approval covers exactly these values."},
                        "fingerprint": {"type": "string", "description": "What the approval is bound to: target, kind, text and bound parameter values."}
                    }
                },
                "Vote": {
                    "type": "object",
                    "required": ["approver", "approve", "at"],
                    "properties": {
                        "approver": {"type": "string"},
                        "approve": {"type": "boolean"},
                        "comment": {"type": "string"},
                        "at": {"type": "integer", "format": "int64", "description": "Seconds since the Unix epoch."}
                    }
                },
                "Status": {
                    "type": "string",
                    "enum": ["pending", "approved", "denied", "consumed", "expired", "revoked"]
                },
                "ApprovalRequest": {
                    "type": "object",
                    "required": ["id", "requester", "operation", "approver_groups", "quorum", "created_at", "expires_at", "uses_left", "votes", "status", "version"],
                    "properties": {
                        "id": {"type": "string", "example": "apr-0123456789abcdef01234567"},
                        "requester": {"$ref": "#/components/schemas/Requester"},
                        "capability": {"type": "string", "description": "The id of the capability the requester presented."},
                        "operation": {"$ref": "#/components/schemas/Operation"},
                        "scope": {
                            "type": "object",
                            "description": "What the approval covers: `{\"type\": \"operation\"}` (exactly `operation`), `{\"type\": \"plan\", \"entries\": [{\"operation\": …, \"used\": false}]}` (each entry once), or `{\"type\": \"grant\", \"kinds\": […], \"targets\": […], \"objects\": […]}` (any operation in that class until `expires_at`).",
                            "required": ["type"],
                            "properties": {"type": {"type": "string", "enum": ["operation", "plan", "grant"]}}
                        },
                        "justification": {"type": "string"},
                        "rule": {"type": "string", "description": "The policy rule that asked for approval."},
                        "approver_groups": {"type": "array", "items": {"type": "string"}},
                        "quorum": {"type": "integer", "format": "int32", "minimum": 1},
                        "created_at": {"type": "integer", "format": "int64"},
                        "expires_at": {"type": "integer", "format": "int64"},
                        "uses_left": {"type": "integer", "format": "int32"},
                        "votes": {"type": "array", "items": {"$ref": "#/components/schemas/Vote"}},
                        "status": {"$ref": "#/components/schemas/Status"},
                        "version": {"type": "integer", "format": "int64"}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_refusals_carry_their_status() {
        let status = |m: &Method, p: &str| route(m, p).err().map(|r| r.status);
        assert_eq!(
            status(&Method::POST, "/v1/approvals"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(status(&Method::GET, "/v2"), Some(StatusCode::NOT_FOUND));
        assert_eq!(
            status(&Method::GET, "/v1/approvals/%2e%2e"),
            Some(StatusCode::NOT_FOUND)
        );
        assert!(route(&Method::GET, "/v1/approvals").is_ok());
    }

    #[test]
    fn bearer_tokens() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(v).expect("header"),
                );
            }
            bearer(&h)
                .map(|c| c.expose_secret().to_owned())
                .map_err(|r| r.status)
        };
        assert_eq!(with(&["Bearer abc"]), Ok("abc".to_owned()));
        assert_eq!(with(&["bearer abc"]), Ok("abc".to_owned()));
        for bad in [
            &[][..],
            &["Basic abc"],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a", "Bearer b"],
        ] {
            assert_eq!(with(bad), Err(StatusCode::UNAUTHORIZED), "{bad:?}");
        }
    }
}
