//! exec and attach over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), relayed
//! message by message and recorded.
//!
//! Each binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
//! Status, 4 terminal resizes, and (v5) 255 closing a channel. The gateway opens its own
//! WebSocket to the API server (with its own credentials), answers the client's upgrade with
//! the protocol the API server chose, then relays: stdin and resizes are recorded as they pass
//! up; stdout and stderr pass down through the masker (for masked principals) and are recorded
//! as the client gets them; the Status's exit code is the operation's outcome.
//!
//! kubectl falls back to SPDY when the WebSocket upgrade is not answered with 101. The
//! gateway refuses SPDY upgrades with a Status saying so, after the same decision (the
//! operation of both is `CONNECT …`, one fingerprint).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sod_core::audit::{Completion, CompletionStatus, Transcript, TranscriptChunk};
use sod_core::masking::StreamScrubber;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::Shared;
use super::body::ResponseBody;
use crate::service::K8sResponse;
use crate::status;

/// How long masked output waits for the rest of its line before it passes as it is.
const MASKED_FLUSH: Duration = Duration::from_millis(50);

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

/// Relays a committed exec or attach: the API server first, then the client's upgrade.
pub(super) async fn relay<L>(
    shared: &Shared<L>,
    parts: &Parts,
    path_and_query: &str,
    on_upgrade: OnUpgrade,
    mut go: K8sResponse,
    started: Instant,
) -> http::Response<ResponseBody> {
    let mut fail = |code: StatusCode, reason: &str, message: String| {
        go_failed(&mut go, code, started);
        status::response(code, reason, &message, None)
    };
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "sod: streams over `{upgrade}` are not relayed; the gateway relays exec and attach over WebSocket (kubectl 1.30 and later)"
            ),
        );
    }
    let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "sod: a WebSocket upgrade without Sec-WebSocket-Key".into(),
        );
    };
    let offered: Vec<String> = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let request = match http::Request::builder()
        .method(http::Method::GET)
        .uri(path_and_query)
        .body(Vec::new())
    {
        Ok(r) => r,
        Err(e) => {
            return fail(StatusCode::BAD_REQUEST, "BadRequest", format!("sod: {e}"));
        }
    };
    let upstream = match shared.upstream.connect(request).await {
        Ok(c) => c,
        Err(kube::Error::Api(e)) => {
            let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_GATEWAY);
            go_failed(&mut go, code, started);
            return status::response(code, &e.reason, &e.message, None);
        }
        Err(e) => {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("sod: the API server did not open the stream: {e}"),
            );
        }
    };
    let protocol = if upstream.supports_stream_close() {
        "v5.channel.k8s.io"
    } else {
        "v4.channel.k8s.io"
    };
    if !offered.iter().any(|p| p == protocol) {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "sod: the gateway relays `{protocol}`, which the client did not offer (offered: {})",
                offered.join(", ")
            ),
        );
    }
    let masker = go.masker().clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "the client did not complete its upgrade");
                return;
            }
        };
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let scrubbers = [masker.stream(), masker.stream()];
        let ended = pump(
            client,
            upstream.into_stream(),
            go.transcript().cloned(),
            scrubbers,
        )
        .await;
        go.finish(&Completion {
            status: ended.status,
            bytes: Some(ended.bytes),
            error_code: ended.exit,
            duration: started.elapsed(),
            ..Completion::default()
        });
    });
    let mut response = http::Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

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

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Relays until either side closes. `scrubbers` mask stdout and stderr.
async fn pump(
    mut client: Socket,
    mut upstream: Socket,
    transcript: Option<std::sync::Arc<dyn Transcript>>,
    mut scrubbers: [StreamScrubber; 2],
) -> Ended {
    let mut ended = Ended {
        status: CompletionStatus::Interrupted,
        exit: None,
        bytes: 0,
    };
    let record = |chunk: TranscriptChunk<'_>| {
        let transcript = transcript.clone();
        let owned = own(chunk);
        async move {
            match &transcript {
                Some(t) => t.record(borrow(&owned)).await.is_ok(),
                None => true,
            }
        }
    };
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let flush = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = client.next() => {
                let Some(Ok(message)) = message else { break };
                match message {
                    Message::Binary(data) => {
                        let ok = match data.first() {
                            Some(0) => record(TranscriptChunk::Input(&data[1..])).await,
                            Some(4) => match resize(&data[1..]) {
                                Some((cols, rows)) => record(TranscriptChunk::Resize { cols, rows }).await,
                                None => true,
                            },
                            _ => true,
                        };
                        // Input that cannot be recorded does not pass (invariant I4).
                        if !ok || upstream.send(Message::Binary(data)).await.is_err() {
                            break;
                        }
                    }
                    Message::Close(frame) => {
                        let _ = upstream.close(Some(frame.unwrap_or_else(normal_close))).await;
                        break;
                    }
                    // Pings are answered by the WebSocket itself; text frames are not part
                    // of the channel protocols the gateway speaks.
                    _ => {}
                }
            }
            message = upstream.next() => {
                let Some(Ok(message)) = message else { break };
                match message {
                    Message::Binary(data) => {
                        let Some((&channel, payload)) = data.split_first() else { continue };
                        let out = match channel {
                            1 | 2 => {
                                let mut out = vec![channel];
                                scrubbers[usize::from(channel - 1)].push(payload, &mut out);
                                if scrubbers.iter().any(|s| s.held() > 0) {
                                    flush_at = Some(tokio::time::Instant::now() + MASKED_FLUSH);
                                }
                                out
                            }
                            3 => {
                                ended.exit = exit_code(payload);
                                ended.status = if ended.exit.is_some() || !succeeded(payload) {
                                    CompletionStatus::Error
                                } else {
                                    CompletionStatus::Ok
                                };
                                data.to_vec()
                            }
                            _ => data.to_vec(),
                        };
                        if !deliver(&mut client, out, &record, &mut ended).await {
                            break;
                        }
                    }
                    Message::Close(frame) => {
                        if !drain(&mut client, &mut scrubbers, &record, &mut ended).await {
                            break;
                        }
                        // A close without a code reads as an error to kubectl: say "normal".
                        let _ = client.close(Some(frame.unwrap_or_else(normal_close))).await;
                        if ended.status == CompletionStatus::Interrupted {
                            ended.status = CompletionStatus::Ok;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            () = flush => {
                flush_at = None;
                if !drain(&mut client, &mut scrubbers, &record, &mut ended).await {
                    break;
                }
            }
        }
    }
    ended
}

fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

/// Passes what the scrubbers hold.
async fn drain<F, Fut>(
    client: &mut Socket,
    scrubbers: &mut [StreamScrubber; 2],
    record: &F,
    ended: &mut Ended,
) -> bool
where
    F: Fn(TranscriptChunk<'_>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for (i, s) in scrubbers.iter_mut().enumerate() {
        if s.held() > 0 {
            let mut out = vec![i as u8 + 1];
            s.flush(&mut out);
            if !deliver(client, out, record, ended).await {
                return false;
            }
        }
    }
    true
}

/// Records output as the client gets it, then sends it.
async fn deliver<F, Fut>(client: &mut Socket, out: Vec<u8>, record: &F, ended: &mut Ended) -> bool
where
    F: Fn(TranscriptChunk<'_>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if out.len() <= 1 && matches!(out.first(), Some(1 | 2)) {
        return true;
    }
    let ok = match out.split_first() {
        Some((1, payload)) => record(TranscriptChunk::Output(payload)).await,
        Some((2, payload)) => record(TranscriptChunk::Error(payload)).await,
        _ => true,
    };
    if !ok {
        // Unrecorded output does not pass (invariant I4).
        return false;
    }
    ended.bytes += out.len().saturating_sub(1) as u64;
    client.send(Message::Binary(out.into())).await.is_ok()
}

/// An owned copy of a chunk, so the recording future can outlive the borrow.
enum Owned {
    Output(Vec<u8>),
    Error(Vec<u8>),
    Input(Vec<u8>),
    Resize(u32, u32),
}

fn own(chunk: TranscriptChunk<'_>) -> Owned {
    match chunk {
        TranscriptChunk::Output(b) => Owned::Output(b.to_vec()),
        TranscriptChunk::Error(b) => Owned::Error(b.to_vec()),
        TranscriptChunk::Input(b) => Owned::Input(b.to_vec()),
        TranscriptChunk::Resize { cols, rows } => Owned::Resize(cols, rows),
    }
}

fn borrow(owned: &Owned) -> TranscriptChunk<'_> {
    match owned {
        Owned::Output(b) => TranscriptChunk::Output(b),
        Owned::Error(b) => TranscriptChunk::Error(b),
        Owned::Input(b) => TranscriptChunk::Input(b),
        Owned::Resize(cols, rows) => TranscriptChunk::Resize {
            cols: *cols,
            rows: *rows,
        },
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
    }
}
