//! Connections, authentication, request recording and routing to discovery, the REST verbs and
//! exec.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::status::ApiError;
use super::store::Store;
use super::wire::{self, Body, Query};
use super::{SeenRequest, api, discovery};

/// The largest request body read (kubectl applies of big manifests stay far below).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the connections share.
pub(super) struct Shared {
    pub(super) addr: SocketAddr,
    pub(super) token: String,
    pub(super) store: Store,
    pub(super) requests: Mutex<Vec<SeenRequest>>,
    /// Exec sessions, which outlive the request that started them; aborted with the server.
    pub(super) sessions: Mutex<JoinSet<()>>,
    /// The working directory of exec'd commands.
    pub(super) workdir: TempDir,
}

impl Shared {
    pub(super) fn sessions(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn requests(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request on its way to a resource handler.
pub(super) struct ApiRequest {
    pub(super) method: Method,
    pub(super) headers: HeaderMap,
    pub(super) query: Query,
    pub(super) body: Bytes,
    /// Present when the request asked to upgrade the connection (exec over WebSocket).
    pub(super) on_upgrade: Option<OnUpgrade>,
}

impl ApiRequest {
    pub(super) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(super) async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // E.g. out of file descriptors: give other tasks a chance and retry.
                    tokio::task::yield_now().await;
                    continue;
                };
                connections.spawn(serve_connection(tcp, tls.clone(), Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves plain HTTP/1.1 or, when the client starts a TLS handshake, HTTPS on the same port:
/// plain for a gateway's upstream, TLS for kubectl used directly (client-go sends a kubeconfig's
/// credentials only to `https://` servers).
async fn serve_connection(tcp: TcpStream, tls: TlsAcceptor, shared: Arc<Shared>) {
    let mut first = [0u8; 1];
    // A TLS connection starts with a handshake record, content type 22.
    let is_tls = matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == 0x16);
    if is_tls {
        if let Ok(stream) = tls.accept(tcp).await {
            serve_http(TokioIo::new(stream), shared).await;
        }
    } else {
        serve_http(TokioIo::new(tcp), shared).await;
    }
}

async fn serve_http<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    // Connection errors (client went away, bad request) only end this connection.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

fn is_authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // The scheme is case-insensitive, as the API server's bearer authenticator has it.
    value.split_once(' ').is_some_and(|(scheme, presented)| {
        scheme.eq_ignore_ascii_case("bearer") && presented.trim() == token
    })
}

async fn handle(shared: &Arc<Shared>, mut request: Request<Incoming>) -> Response<Body> {
    let on_upgrade = request
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    shared.requests().push(SeenRequest {
        method: parts.method.to_string(),
        path_and_query,
        headers: parts.headers.clone(),
        body: body.as_ref().map(Bytes::clone).unwrap_or_default(),
    });
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("the request body could not be read: {error}"),
            )
            .response();
        }
    };
    if !is_authorized(&parts.headers, &shared.token) {
        return ApiError::unauthorized().response();
    }
    let request = ApiRequest {
        method: parts.method,
        headers: parts.headers,
        query: Query::parse(parts.uri.query()),
        body,
        on_upgrade,
    };
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    route(shared, &segments, request)
}

fn route(shared: &Arc<Shared>, segments: &[&str], request: ApiRequest) -> Response<Body> {
    let discovery = match segments {
        ["api", "v1", rest @ ..] if !rest.is_empty() => {
            return api::serve(shared, "", "v1", rest, request);
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            return api::serve(shared, group, version, rest, request);
        }
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::api_versions(shared.addr)),
        ["apis"] => Some(discovery::api_group_list()),
        ["api", "v1"] => discovery::resource_list("", "v1"),
        ["apis", group] => discovery::api_group(group),
        ["apis", group, version] => discovery::resource_list(group, version),
        ["healthz" | "livez" | "readyz"] => {
            return if request.method == Method::GET {
                wire::text(StatusCode::OK, "ok")
            } else {
                ApiError::method_not_allowed(request.method.as_str()).response()
            };
        }
        _ => None,
    };
    match discovery {
        Some(_) if request.method != Method::GET => {
            ApiError::method_not_allowed(request.method.as_str()).response()
        }
        Some(document) => wire::json(StatusCode::OK, &document),
        None => ApiError::no_route().response(),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_exact() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert!(is_authorized(&headers("Bearer t0k"), "t0k"));
        assert!(is_authorized(&headers("bearer t0k"), "t0k"));
        assert!(!is_authorized(&headers("Bearer t0"), "t0k"));
        assert!(!is_authorized(&headers("Basic t0k"), "t0k"));
        assert!(!is_authorized(&HeaderMap::new(), "t0k"));
    }
}
