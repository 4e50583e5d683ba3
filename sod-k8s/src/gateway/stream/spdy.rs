//! exec, attach and port-forward over SPDY/3.1, relayed frame by frame.
//!
//! The gateway sends the same upgrade to the API server (with its own credentials and the
//! client's `X-Stream-Protocol-Version` offers), answers the client's upgrade with the
//! protocol the API server chose, and relays whole frames unchanged both ways. It reads the
//! client's `SYN_STREAM` headers to learn each stream's type, then records the data of
//! `stdin` and `resize` as it goes up and of `stdout` and `stderr` as it comes down, each frame
//! before it is passed on; the `error` stream's Status is the operation's outcome.
//!
//! Port-forward's `data` streams are recorded too: what the client sends as input, what comes
//! back as output.
//!
//! Frames pass unchanged, so output cannot be masked: a masked principal is refused SPDY
//! (kubectl 1.30 and later use WebSocket, which the gateway masks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sod_core::audit::{Completion, CompletionStatus, Transcript, TranscriptChunk};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::OwnedSemaphorePermit;

use super::{Ended, go_failed, record, resize};
use crate::gateway::Shared;
use crate::gateway::body::ResponseBody;
use crate::service::K8sResponse;
use crate::spdy::{FrameReader, HeaderReader, SYN_STREAM};
use crate::status::{self, RULE_UNMASKABLE};

/// The header carrying the stream protocol offers and the choice.
const PROTOCOL: HeaderName = HeaderName::from_static("x-stream-protocol-version");
/// The longest decompressed header block the gateway reads.
const MAX_HEADERS: usize = 64 * 1024;
/// The most the `error` stream's Status may take.
const MAX_STATUS: usize = 64 * 1024;

/// What a stream carries, from its `streamtype` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Stdin,
    Stdout,
    Stderr,
    Resize,
    Error,
    /// A forwarded port's bytes (`port-forward`).
    Data,
    /// Anything else: relayed, not recorded.
    Other,
}

impl Kind {
    fn of(name: &str) -> Self {
        match name {
            "stdin" => Self::Stdin,
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            "resize" => Self::Resize,
            "error" => Self::Error,
            "data" => Self::Data,
            _ => Self::Other,
        }
    }
}

/// Relays a committed stream over SPDY.
pub(super) async fn relay<L>(
    shared: &Shared<L>,
    parts: &Parts,
    path_and_query: &str,
    (on_upgrade, permit): (OnUpgrade, OwnedSemaphorePermit),
    mut go: K8sResponse,
    started: Instant,
) -> http::Response<ResponseBody> {
    let masked = !go.masker().is_noop();
    let mut fail = |code: StatusCode, reason: &str, message: String, rule: Option<&str>| {
        go_failed(&mut go, code, started);
        status::response(code, reason, &message, rule)
    };
    if masked {
        return fail(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "sod: refused by rule `{RULE_UNMASKABLE}`: SPDY streams pass unchanged, so their output cannot be masked; kubectl 1.30 and later use WebSocket, whose output the gateway masks"
            ),
            Some(RULE_UNMASKABLE),
        );
    }
    let offered: Vec<HeaderValue> = parts.headers.get_all(&PROTOCOL).iter().cloned().collect();
    if offered.is_empty() {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "sod: a SPDY upgrade without X-Stream-Protocol-Version".into(),
            None,
        );
    }
    let mut request = match http::Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query)
        .body(kube::client::Body::empty())
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("sod: {e}"),
                None,
            );
        }
    };
    let headers = request.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    for v in offered {
        headers.append(PROTOCOL, v);
    }
    let response = match shared.upstream.send(request).await {
        Ok(r) => r,
        Err(e) => {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("sod: the API server did not open the stream: {e}"),
                None,
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The API server's own refusal (a Status), passed as it is.
        let code = response.status();
        go_failed(&mut go, code, started);
        let body = match http_body_util::Limited::new(response.into_body(), MAX_STATUS)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => bytes::Bytes::new(),
        };
        let mut answer = http::Response::new(ResponseBody::full(body));
        *answer.status_mut() = code;
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return answer;
    }
    let chosen = response.headers().get(&PROTOCOL).cloned();
    tokio::spawn(async move {
        let _permit = permit;
        let (client, upstream) = match (on_upgrade.await, hyper::upgrade::on(response).await) {
            (Ok(c), Ok(u)) => (c, u),
            _ => {
                tracing::debug!("a SPDY upgrade did not complete");
                return;
            }
        };
        let ended = pump(client, upstream, go.transcript().cloned()).await;
        go.finish(&Completion {
            status: ended.status,
            bytes: Some(ended.bytes),
            error_code: ended.exit,
            duration: started.elapsed(),
            ..Completion::default()
        });
    });
    let mut answer = http::Response::new(ResponseBody::full(bytes::Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Some(chosen) = chosen {
        headers.insert(PROTOCOL, chosen);
    }
    answer
}

type Streams = Arc<Mutex<HashMap<u32, Kind>>>;

/// Relays both ways until both sides are done; how the stream ended.
async fn pump(
    client: Upgraded,
    upstream: Upgraded,
    transcript: Option<Arc<dyn Transcript>>,
) -> Ended {
    let (client_read, client_write) = tokio::io::split(TokioIo::new(client));
    let (upstream_read, upstream_write) = tokio::io::split(TokioIo::new(upstream));
    let streams: Streams = Arc::default();
    let transcript = transcript.as_deref();
    let mut ended = Ended::new();
    let (up_ok, down) = tokio::join!(
        up(client_read, upstream_write, &streams, transcript),
        down(upstream_read, client_write, &streams, transcript),
    );
    let (down_ok, bytes, status) = down;
    ended.bytes = bytes;
    match status {
        Some(status) => ended.status(&status),
        None if up_ok && down_ok => ended.status = CompletionStatus::Ok,
        None => {}
    }
    ended
}

/// Client to API server: learns each stream's type, records stdin and resizes.
async fn up(
    mut from: ReadHalf<TokioIo<Upgraded>>,
    mut to: WriteHalf<TokioIo<Upgraded>>,
    streams: &Streams,
    transcript: Option<&dyn Transcript>,
) -> bool {
    let mut frames = FrameReader::new();
    let mut headers = HeaderReader::new(MAX_HEADERS);
    let mut buf = vec![0u8; 32 * 1024];
    let ok = 'relay: loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break true,
            Ok(n) => n,
            Err(_) => break false,
        };
        frames.push(&buf[..n]);
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "ending a SPDY stream");
                    break 'relay false;
                }
            };
            if let Some(block) = frame.header_block() {
                // Every block of this direction, in order: they share one zlib context.
                let pairs = match headers.read(block) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::info!(error = %e, "ending a SPDY stream");
                        break 'relay false;
                    }
                };
                if frame.control_type() == Some(SYN_STREAM)
                    && let (Some(id), Some((_, kind))) = (
                        frame.stream_id(),
                        pairs.iter().find(|(n, _)| n == "streamtype"),
                    )
                    && let Ok(mut streams) = streams.lock()
                {
                    streams.insert(id, Kind::of(kind));
                }
            } else if !frame.is_control() {
                let kind = kind_of(streams, frame.stream_id());
                let recorded = match kind {
                    Kind::Stdin | Kind::Data if !frame.data().is_empty() => {
                        record(transcript, TranscriptChunk::Input(frame.data())).await
                    }
                    Kind::Resize => match resize(frame.data()) {
                        Some((cols, rows)) => {
                            record(transcript, TranscriptChunk::Resize { cols, rows }).await
                        }
                        None => true,
                    },
                    _ => true,
                };
                if !recorded {
                    break 'relay false;
                }
            }
            if to.write_all(frame.raw()).await.is_err() {
                break 'relay false;
            }
        }
    };
    let _ = to.shutdown().await;
    ok
}

/// API server to client: records stdout and stderr, keeps the error stream's Status. Returns
/// whether it ended cleanly, the bytes of output passed, and the Status.
async fn down(
    mut from: ReadHalf<TokioIo<Upgraded>>,
    mut to: WriteHalf<TokioIo<Upgraded>>,
    streams: &Streams,
    transcript: Option<&dyn Transcript>,
) -> (bool, u64, Option<Vec<u8>>) {
    let mut frames = FrameReader::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut bytes = 0u64;
    let mut status: Option<Vec<u8>> = None;
    let ok = 'relay: loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break true,
            Ok(n) => n,
            Err(_) => break false,
        };
        frames.push(&buf[..n]);
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "ending a SPDY stream");
                    break 'relay false;
                }
            };
            if !frame.is_control() {
                let data = frame.data();
                let recorded = match kind_of(streams, frame.stream_id()) {
                    Kind::Stdout | Kind::Data if !data.is_empty() => {
                        bytes += data.len() as u64;
                        record(transcript, TranscriptChunk::Output(data)).await
                    }
                    Kind::Stderr if !data.is_empty() => {
                        bytes += data.len() as u64;
                        record(transcript, TranscriptChunk::Error(data)).await
                    }
                    Kind::Error => {
                        let held = status.get_or_insert_with(Vec::new);
                        if held.len() + data.len() <= MAX_STATUS {
                            held.extend_from_slice(data);
                        }
                        true
                    }
                    _ => true,
                };
                if !recorded {
                    break 'relay false;
                }
            }
            if to.write_all(frame.raw()).await.is_err() {
                break 'relay false;
            }
        }
    };
    let _ = to.shutdown().await;
    (ok, bytes, status.filter(|s| !s.is_empty()))
}

fn kind_of(streams: &Streams, id: Option<u32>) -> Kind {
    id.and_then(|id| streams.lock().ok()?.get(&id).copied())
        .unwrap_or(Kind::Other)
}
