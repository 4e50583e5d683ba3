//! exec and attach over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), relayed message
//! by message.
//!
//! Each binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
//! Status, 4 terminal resizes, and (v5) 255 closing a channel. The gateway opens its own
//! WebSocket to the API server (with its own credentials), answers the client's upgrade with
//! the protocol the API server chose, then relays: stdin and resizes are recorded as they pass
//! up; stdout and stderr pass down through the masker (for masked principals) and are recorded
//! as the client gets them; the Status's exit code is the operation's outcome.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sod_core::audit::{Completion, CompletionStatus, Transcript, TranscriptChunk};
use sod_core::masking::StreamScrubber;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::{Ended, go_failed, record, resize};
use crate::gateway::Shared;
use crate::gateway::body::ResponseBody;
use crate::service::K8sResponse;
use crate::status;

/// How long masked output waits for the rest of its line before it passes as it is.
const MASKED_FLUSH: Duration = Duration::from_millis(50);

/// Relays a committed exec or attach over WebSocket: the API server first, then the client's
/// upgrade.
pub(super) async fn relay<L>(
    shared: &Shared<L>,
    parts: &Parts,
    path_and_query: &str,
    (on_upgrade, permit): (OnUpgrade, OwnedSemaphorePermit),
    mut go: K8sResponse,
    started: Instant,
) -> http::Response<ResponseBody> {
    let mut fail = |code: StatusCode, reason: &str, message: String| {
        go_failed(&mut go, code, started);
        status::response(code, reason, &message, None)
    };
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
    // Checked before the API server is asked: kubectl falls back to SPDY after a refusal, and
    // port-forward's WebSocket (`SPDY/3.1+portforward.k8s.io`, SPDY inside WebSocket) is not
    // relayed this way.
    if !offered
        .iter()
        .any(|p| p == "v5.channel.k8s.io" || p == "v4.channel.k8s.io")
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "sod: the gateway relays WebSocket streams of v5.channel.k8s.io and v4.channel.k8s.io (offered: {}); other streams go over SPDY",
                offered.join(", ")
            ),
        );
    }
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
        let _permit = permit;
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

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Relays until either side closes. `scrubbers` mask stdout and stderr.
async fn pump(
    mut client: Socket,
    mut upstream: Socket,
    transcript: Option<std::sync::Arc<dyn Transcript>>,
    mut scrubbers: [StreamScrubber; 2],
) -> Ended {
    let mut ended = Ended::new();
    let transcript = transcript.as_deref();
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
                            // Channels this relay does not know do not pass (nothing unrecorded).
                            None | Some(1..=3 | 5..=254) => false,
                            Some(0) => record(transcript, TranscriptChunk::Input(&data[1..])).await,
                            Some(4) => match resize(&data[1..]) {
                                Some((cols, rows)) => record(transcript, TranscriptChunk::Resize { cols, rows }).await,
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
                                ended.status(payload);
                                data.to_vec()
                            }
                            // The v5 close signal; any other channel does not pass.
                            255 => data.to_vec(),
                            _ => break,
                        };
                        if !deliver(&mut client, out, transcript, &mut ended).await {
                            break;
                        }
                    }
                    Message::Close(frame) => {
                        if !drain(&mut client, &mut scrubbers, transcript, &mut ended).await {
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
                if !drain(&mut client, &mut scrubbers, transcript, &mut ended).await {
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
async fn drain(
    client: &mut Socket,
    scrubbers: &mut [StreamScrubber; 2],
    transcript: Option<&dyn Transcript>,
    ended: &mut Ended,
) -> bool {
    for (i, s) in scrubbers.iter_mut().enumerate() {
        if s.held() > 0 {
            let mut out = vec![i as u8 + 1];
            s.flush(&mut out);
            if !deliver(client, out, transcript, ended).await {
                return false;
            }
        }
    }
    true
}

/// Records output as the client gets it, then sends it.
async fn deliver(
    client: &mut Socket,
    out: Vec<u8>,
    transcript: Option<&dyn Transcript>,
    ended: &mut Ended,
) -> bool {
    if out.len() <= 1 && matches!(out.first(), Some(1 | 2)) {
        return true;
    }
    let ok = match out.split_first() {
        Some((1, payload)) => record(transcript, TranscriptChunk::Output(payload)).await,
        Some((2, payload)) => record(transcript, TranscriptChunk::Error(payload)).await,
        _ => true,
    };
    if !ok {
        // Unrecorded output does not pass (invariant I4).
        return false;
    }
    ended.bytes += out.len().saturating_sub(1) as u64;
    client.send(Message::Binary(out.into())).await.is_ok()
}
