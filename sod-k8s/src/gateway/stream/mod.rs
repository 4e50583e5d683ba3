//! exec, attach and port-forward streams: after the decision the gateway opens its own stream
//! to the API server and relays the client's, recording what passes.
//!
//! - `websocket`: `v5.channel.k8s.io` and `v4.channel.k8s.io` (kubectl 1.30 and later), relayed
//!   message by message, stdout and stderr masked for masked principals.
//! - `spdy`: SPDY/3.1 (older kubectl, and kubectl's fallback after a refused WebSocket upgrade),
//!   relayed frame by frame, unchanged: so for unmasked principals only.
//!
//! Both record stdin and resizes as they pass up, stdout and stderr as they pass down, and end
//! the operation with the exit code of the final Status. The operation of both is
//! `CONNECT …` (see [`operation`](crate::operation::operation)), so one decision covers a
//! client that falls back from one to the other.

mod spdy;
mod websocket;

use std::time::Instant;

use http::request::Parts;
use http::{StatusCode, header};
use hyper::upgrade::OnUpgrade;
use sod_core::audit::{Completion, CompletionStatus, Transcript, TranscriptChunk};
use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::body::ResponseBody;
use crate::service::K8sResponse;
use crate::status;

/// What a stream is for: what its channels or streams may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StreamKind {
    /// exec or attach: stdin, stdout, stderr, resize, error.
    Terminal,
    /// port-forward: data and error streams per port (over SPDY only).
    PortForward,
}

/// Whether the request asks to upgrade the connection.
pub(super) fn requested<B>(req: &http::Request<B>) -> bool {
    req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Relays a committed stream over the protocol the client asked for.
pub(super) async fn relay<L>(
    shared: &Shared<L>,
    parts: &Parts,
    path_and_query: &str,
    (on_upgrade, permit, stream): (OnUpgrade, OwnedSemaphorePermit, StreamKind),
    mut go: K8sResponse,
    started: Instant,
) -> http::Response<ResponseBody> {
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if upgrade.eq_ignore_ascii_case("websocket") {
        websocket::relay(
            shared,
            parts,
            path_and_query,
            (on_upgrade, permit),
            go,
            started,
        )
        .await
    } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        spdy::relay(
            shared,
            parts,
            path_and_query,
            (on_upgrade, permit),
            go,
            started,
        )
        .await
    } else {
        go_failed(&mut go, StatusCode::BAD_REQUEST, started);
        status::response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "sod: an upgrade to `{upgrade}` for {stream:?}: the gateway relays exec and attach over WebSocket or SPDY/3.1, and port-forward over SPDY/3.1 (kubectl falls back to it)"
            ),
            None,
        )
    }
}

/// Reports a stream that never started.
fn go_failed(go: &mut K8sResponse, code: StatusCode, started: Instant) {
    go.finish(&Completion {
        status: CompletionStatus::Error,
        error_code: Some(code.as_u16().to_string()),
        duration: started.elapsed(),
        ..Completion::default()
    });
}

/// How a stream ended.
struct Ended {
    status: CompletionStatus,
    exit: Option<String>,
    bytes: u64,
}

impl Ended {
    fn new() -> Self {
        Self {
            status: CompletionStatus::Interrupted,
            exit: None,
            bytes: 0,
        }
    }

    /// The final Status (or, before protocol v4, an error message) arrived.
    fn status(&mut self, payload: &[u8]) {
        self.exit = exit_code(payload);
        self.status = if self.exit.is_some() || !succeeded(payload) {
            CompletionStatus::Error
        } else {
            CompletionStatus::Ok
        };
    }
}

/// Records `chunk`; `false` if the transcript can no longer be kept (the stream must end:
/// nothing passes unrecorded).
async fn record(transcript: Option<&dyn Transcript>, chunk: TranscriptChunk<'_>) -> bool {
    match transcript {
        Some(t) => t.record(chunk).await.is_ok(),
        None => true,
    }
}

/// `{"Width":80,"Height":24}`, as kubectl sends a terminal size.
fn resize(payload: &[u8]) -> Option<(u32, u32)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u32::try_from(n).ok());
    Some((dim("Width")?, dim("Height")?))
}

/// Whether the final Status says `Success`.
fn succeeded(payload: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(payload)
        .is_ok_and(|v| v.get("status").and_then(|s| s.as_str()) == Some("Success"))
}

/// The exit code of a `NonZeroExitCode` Status.
fn exit_code(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("details")?
        .get("causes")?
        .as_array()?
        .iter()
        .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
        .get("message")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_sizes_are_read_from_kubelet_messages() {
        let failure = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(failure).as_deref(), Some("3"));
        assert!(!succeeded(failure));
        assert!(succeeded(br#"{"metadata":{},"status":"Success"}"#));
        assert_eq!(exit_code(br#"{"metadata":{},"status":"Success"}"#), None);
        assert_eq!(resize(br#"{"Width":120,"Height":40}"#), Some((120, 40)));
        assert_eq!(resize(b"not json"), None);
        let mut ended = Ended::new();
        ended.status(failure);
        assert_eq!(
            (ended.status, ended.exit.as_deref()),
            (CompletionStatus::Error, Some("3"))
        );
    }
}
