//! `pods/{name}/exec` and `pods/{name}/portforward` over SPDY/3.1, as a kubelet (behind an API
//! server) serves them to client-go's SPDY executor and port forwarder: kubectl with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, kubectl before 1.31 (or against servers without
//! WebSocket exec), `kubectl port-forward` once its WebSocket tunnel is refused (see
//! [`super::portforward`]), and clients built on `k8s.io/apimachinery/pkg/util/httpstream/spdy`
//! (moby/spdystream).
//!
//! The request is `POST` (or `GET`) `.../pods/NAME/exec?command=…&stdin=…` (or
//! `.../pods/NAME/portforward`) with `Connection: Upgrade`, `Upgrade: SPDY/3.1` and
//! `X-Stream-Protocol-Version` offers. The answer is `101 Switching Protocols` with the first
//! offer it speaks (exec: `v5.channel.k8s.io`, `v4.channel.k8s.io`, `v3.channel.k8s.io`,
//! `v2.channel.k8s.io`, v5 being v4 over SPDY; port forwarding: `portforward.k8s.io`), else `403`
//! with the `X-Accepted-Stream-Protocol-Versions` it speaks, as a kubelet answers. The pod (and
//! exec's query) are checked first, as the API server does (see [`super::exec`] and
//! [`super::portforward`]).
//!
//! Then the connection carries SPDY frames ([`frame`], header blocks in [`headers`]). For exec
//! ([`session`]), the client opens one stream per standard stream with a SYN_STREAM whose
//! `streamtype` header is `error`, `stdin`, `stdout`, `stderr` (without a terminal) or `resize`
//! (with one, v3 and later); each is answered with an empty SYN_REPLY. Once all those the query
//! asks for are open (within 30 s) the command starts: stdin data goes to the process (FIN or
//! RST_STREAM closes its stdin), its output comes back as data frames ended by FIN, and at exit
//! the error stream carries the `Status` (JSON for v4 and v5; for v2 and v3 the message of a
//! failure, nothing on success), then FIN, then the server's GOAWAY. PINGs are echoed. Port
//! forwarding ([`portforward`]) is a pair of streams per forwarded connection, described there.
//!
//! Not implemented: flow control (WINDOW_UPDATE and SETTINGS are read and ignored, and nothing
//! is held back for windows: spdystream, on both sides of real Kubernetes, does the same);
//! server push and server-initiated streams or pings; `channel.k8s.io` (v1, refused); resize
//! messages (read and dropped: there is no terminal); `attach` over SPDY (refused before the
//! upgrade, see [`super::exec`]).

mod dictionary; // the SPDY/3 zlib dictionary
mod frame; // the frame codec
mod headers; // header blocks and their compression
mod portforward; // the port-forwarding session on an upgraded connection
mod session; // the exec session on an upgraded connection, and the frame writer

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::exec::Exec;
use super::portforward::PortForward;
use super::server::ApiRequest;
use super::wire::{self, Body};

pub(super) use session::Protocol;

/// The `Upgrade` token of a SPDY exec or port forward.
pub(super) const UPGRADE: &str = "SPDY/3.1";
/// The request header listing the client's protocols; the answer names the chosen one.
const PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The refusal's list of the protocols this server speaks.
const ACCEPTED_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
/// The only port-forwarding protocol (client-go's `PortForwardProtocolV1Name`).
pub(super) const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// Answers a SPDY exec request whose pod and query are valid: the `101` and the session to run
/// once the connection is upgraded, or the refusal.
pub(super) fn accept(
    exec: Exec,
    request: &mut ApiRequest,
) -> Result<(Response<Body>, impl Future<Output = ()> + Send + 'static), Refusal> {
    let spoken = Protocol::ALL.map(|p| (p.name(), p));
    let (response, on_upgrade, protocol) = upgrade(request, &spoken)?;
    let session = async move {
        if let Ok(upgraded) = on_upgrade.await {
            session::serve(TokioIo::new(upgraded), exec, protocol).await;
        }
    };
    Ok((response, session))
}

/// Answers a SPDY port-forward request for an existing pod: the `101` and the session to run
/// once the connection is upgraded, or the refusal.
pub(super) fn accept_portforward(
    forward: PortForward,
    request: &mut ApiRequest,
) -> Result<(Response<Body>, impl Future<Output = ()> + Send + 'static), Refusal> {
    let (response, on_upgrade, ()) = upgrade(request, &[(PORTFORWARD_PROTOCOL, ())])?;
    let session = async move {
        if let Ok(upgraded) = on_upgrade.await {
            portforward::serve(TokioIo::new(upgraded), forward).await;
        }
    };
    Ok((response, session))
}

/// Checks the upgrade headers and negotiates one of `spoken` (name, value), as
/// `httpstream.Handshake` does: the `101`, the connection to come and the chosen value.
fn upgrade<T: Copy>(
    request: &mut ApiRequest,
    spoken: &[(&'static str, T)],
) -> Result<(Response<Body>, OnUpgrade, T), Refusal> {
    let connection_upgrade = request
        .header(header::CONNECTION)
        .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"));
    let on_upgrade = match request.on_upgrade.take() {
        Some(on_upgrade) if connection_upgrade => on_upgrade,
        _ => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: missing upgrade headers in request".to_owned(),
            ));
        }
    };
    let (name, chosen) = negotiate(&request.headers, spoken)?;
    let mut response = Response::new(wire::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE));
    headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(name));
    Ok((response, on_upgrade, chosen))
}

/// The first protocol the client offers (in all its `X-Stream-Protocol-Version` headers, each
/// possibly a comma-separated list) that this server speaks, as `httpstream.Handshake` picks.
fn negotiate<T: Copy>(
    headers: &HeaderMap,
    spoken: &[(&'static str, T)],
) -> Result<(&'static str, T), Refusal> {
    let offered: Vec<&str> = headers
        .get_all(PROTOCOL_VERSION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required".to_owned(),
        ));
    }
    let found = offered
        .iter()
        .find_map(|offer| spoken.iter().find(|(name, _)| name == offer));
    if let Some(&(name, chosen)) = found {
        return Ok((name, chosen));
    }
    let accepted: Vec<&'static str> = spoken.iter().map(|(name, _)| *name).collect();
    Err(Refusal {
        message: format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            accepted.join(" ")
        ),
        accepted,
        ..Refusal::new(StatusCode::FORBIDDEN, String::new())
    })
}

/// A kubelet's refusal of the upgrade: plain text, as Go's `http.Error` writes it.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
    /// The protocols spoken, listed in `X-Accepted-Stream-Protocol-Versions` (when any).
    accepted: Vec<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Refusal {
        Refusal {
            status,
            message,
            accepted: Vec::new(),
        }
    }

    pub(super) fn response(self) -> Response<Body> {
        let mut response = Response::new(wire::full(format!("{}\n", self.message)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        for protocol in self.accepted {
            headers.append(
                ACCEPTED_PROTOCOL_VERSIONS,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(PROTOCOL_VERSION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_first_offer_spoken_wins() {
        let kubectl = offers(&[
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ]);
        let exec = Protocol::ALL.map(|p| (p.name(), p));
        let chosen = |headers: &HeaderMap| negotiate(headers, &exec).ok().map(|(_, p)| p);
        assert_eq!(chosen(&kubectl), Some(Protocol::V5));
        let listed = offers(&["channel.k8s.io, v3.channel.k8s.io", "v4.channel.k8s.io"]);
        assert_eq!(chosen(&listed), Some(Protocol::V3));
        assert_eq!(chosen(&offers(&["v2.channel.k8s.io"])), Some(Protocol::V2));
        let portforward = [(PORTFORWARD_PROTOCOL, ())];
        assert_eq!(
            negotiate(&offers(&["portforward.k8s.io"]), &portforward).ok(),
            Some(("portforward.k8s.io", ()))
        );
    }

    #[test]
    fn no_common_protocol_is_refused_as_a_kubelet_does() {
        let exec = Protocol::ALL.map(|p| (p.name(), p));
        let Err(refusal) = negotiate(&offers(&["channel.k8s.io"]), &exec) else {
            panic!("v1 negotiated");
        };
        let response = refusal.response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let accepted: Vec<_> = response
            .headers()
            .get_all(ACCEPTED_PROTOCOL_VERSIONS)
            .iter()
            .collect();
        assert_eq!(accepted.len(), 4);
        let Err(refusal) = negotiate(&HeaderMap::new(), &exec) else {
            panic!("nothing negotiated");
        };
        assert_eq!(refusal.response().status(), StatusCode::BAD_REQUEST);
        let Err(refusal) = negotiate(
            &offers(&["v4.channel.k8s.io"]),
            &[(PORTFORWARD_PROTOCOL, ())],
        ) else {
            panic!("exec negotiated for a port forward");
        };
        let response = refusal.response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[ACCEPTED_PROTOCOL_VERSIONS],
            PORTFORWARD_PROTOCOL
        );
    }
}
