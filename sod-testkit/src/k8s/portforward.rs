//! `pods/{name}/portforward`: the checks an API server makes before it proxies to the kubelet,
//! then port forwarding over SPDY/3.1 as a kubelet serves it (the session is in
//! [`super::spdy`]).
//!
//! There is no pod network: **a pod's container port N is the loopback port N of this
//! machine**. Each connection the client forwards is connected to `127.0.0.1:N`, so a test can
//! run a real server on a local port and reach it through `kubectl port-forward pod/NAME L:N`.
//!
//! `kubectl port-forward` (1.31 and later) first asks for a WebSocket (`GET` with
//! `Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`, SPDY tunnelled in WebSocket messages),
//! which a real 1.32 API server would accept. This server refuses it with a 400 `Status`, and
//! kubectl, on that failed upgrade, falls back to plain SPDY (`POST`, `Upgrade: SPDY/3.1`,
//! `X-Stream-Protocol-Version: portforward.k8s.io`), as it does against older servers. The
//! WebSocket port forwarding of the kubelet itself (`v4.channel.k8s.io` with a `ports` query)
//! is refused the same way.

use std::sync::Arc;

use http::{Method, Response, header};

use super::exec::spawn_session;
use super::server::{ApiRequest, Shared};
use super::spdy;
use super::status::ApiError;
use super::wire::Body;

/// One port-forwarding connection, as requested: the pod's names, for the kubelet's error
/// messages.
pub(super) struct PortForward {
    pub(super) namespace: String,
    pub(super) pod: String,
    pub(super) uid: String,
}

/// Answers `pods/{name}/portforward`: the SPDY upgrade, then the session in the background.
pub(super) fn respond(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    mut request: ApiRequest,
) -> Response<Body> {
    match accept(shared, namespace, name, &mut request) {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

fn accept(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    request: &mut ApiRequest,
) -> Result<Response<Body>, ApiError> {
    match request.method {
        // kubectl asks for its WebSocket tunnel with GET and for SPDY with POST; the API server
        // takes both (the subresource's verbs are `create` and `get`).
        Method::GET | Method::POST => {}
        ref other => return Err(ApiError::method_not_allowed(other.as_str())),
    }
    let pod = shared
        .store
        .get("pods", Some(namespace), name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let upgrade = request.header(header::UPGRADE).unwrap_or_default();
    if upgrade.eq_ignore_ascii_case(spdy::UPGRADE) {
        let forward = PortForward {
            namespace: namespace.to_owned(),
            pod: name.to_owned(),
            uid: pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        return Ok(match spdy::accept_portforward(forward, request) {
            Ok((response, session)) => {
                spawn_session(shared, session);
                response
            }
            Err(refusal) => refusal.response(),
        });
    }
    if upgrade.eq_ignore_ascii_case("websocket") {
        let offered: Vec<&str> = request
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        return Err(ApiError::bad_request(format!(
            "the test server forwards ports only over {} ({}), not over WebSocket; offered: [{}]",
            spdy::UPGRADE,
            spdy::PORTFORWARD_PROTOCOL,
            offered.join(", ")
        )));
    }
    Err(ApiError::bad_request("Upgrade request required"))
}
