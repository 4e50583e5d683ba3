//! The `sftp` subsystem (which `scp` uses too since OpenSSH 9): every request the client sends
//! is judged on its own — an open for reading or writing, a remove, a rename, … — and only
//! what the stack allowed reaches the target's `sftp-server`. A masked principal's reads are
//! served from a masked copy of the file (see [`Judge::serve_masked`]).
//!
//! Packets are whole frames both ways: the gateway's own answers (refusals, masked reads) and
//! the server's never interleave inside a packet, because each direction writes one frame at
//! a time through the same writer.

use std::sync::Mutex;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use russh::client::Msg as ClientMsg;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sod_core::audit::{Completion, CompletionStatus};
use sod_core::{BoxError, Refusal, RefusalCode, Request};
use tokio::sync::Mutex as AsyncMutex;
use tower::{Layer, Service, ServiceExt};

use super::{ChannelContext, tell};
use crate::refusal::Refused;
use crate::service::{SshRequest, SshResponse, SshUpstream};
use crate::sftp::codec::{self, Frame, Limits};
use crate::sftp::{Judge, JudgeLimits, Judgement, Relay, Verdict};

type ClientOut = AsyncMutex<ChannelWriteHalf<Msg>>;
type TargetOut = AsyncMutex<ChannelWriteHalf<ClientMsg>>;

/// Runs the SFTP subsystem for one channel.
pub(super) async fn run<L>(cx: ChannelContext<L>, rx: ChannelReadHalf, tx: ChannelWriteHalf<Msg>)
where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    let channel = match cx.upstream.get().await {
        Ok(up) => match cx.upstream.session(up).await {
            Ok((_, c)) => c,
            Err(e) => return tell(&tx, &Refused::unavailable(e)).await,
        },
        Err(e) => return tell(&tx, &Refused::unavailable(e)).await,
    };
    if let Err(e) = channel.request_subsystem(true, "sftp").await {
        return tell(&tx, &Refused::unavailable(e)).await;
    }
    let (target_rx, target_tx) = channel.split();
    let judge = Mutex::new(Judge::new(JudgeLimits {
        max_masked_file: usize::try_from(cx.shared.limits.masked_file).unwrap_or(usize::MAX),
        ..JudgeLimits::DEFAULT
    }));
    let client_out: ClientOut = AsyncMutex::new(tx);
    let target_out: TargetOut = AsyncMutex::new(target_tx);
    let requests = requests(&cx, rx, &judge, &client_out, &target_out);
    let responses = responses(target_rx, &judge, &client_out, &target_out);
    tokio::select! {
        _ = requests => {
            let _ = target_out.lock().await.close().await;
        }
        _ = responses => {}
    }
    let _ = client_out.lock().await.close().await;
    let _ = target_out.lock().await.close().await;
}

/// Client to target: each request judged, decided, forwarded or answered.
async fn requests<L>(
    cx: &ChannelContext<L>,
    mut rx: ChannelReadHalf,
    judge: &Mutex<Judge>,
    client: &ClientOut,
    target: &TargetOut,
) where
    L: Layer<SshUpstream>,
    L::Service: Service<Request<SshRequest>, Response = SshResponse, Error = BoxError>,
{
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    loop {
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            Some(ChannelMsg::Eof) => {
                let _ = target.lock().await.eof().await;
                continue;
            }
            Some(ChannelMsg::Close) | None => return,
            Some(_) => continue,
        }
        loop {
            let frame = match codec::decode_frame(&mut buf, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    // The stream is out of step: nothing more can be judged.
                    let refused = Refused::unavailable(format!("the SFTP stream is broken: {e}"));
                    tell(&*client.lock().await, &refused).await;
                    return;
                }
            };
            let verdict = lock(judge).request(&frame);
            let to_target = match verdict {
                Verdict::Forward => Some(frame),
                Verdict::Answer { reply, refusal } => {
                    if let Some(why) = refusal {
                        tracing::info!(reason = %why, "sftp request answered by the gateway");
                    }
                    send(client, reply).await;
                    None
                }
                Verdict::Decide(judgement) => decide(cx, judgement, frame, judge, client).await,
                Verdict::Abort(why) => {
                    tell(&*client.lock().await, &Refused::unavailable(why)).await;
                    return;
                }
            };
            if let Some(frame) = to_target
                && target
                    .lock()
                    .await
                    .data_bytes(frame.raw().clone())
                    .await
                    .is_err()
            {
                return;
            }
        }
    }
}

/// Runs one request that needs a decision through the stack; returns the frame to forward if
/// it was allowed, after answering the client itself if it was not.
async fn decide<L>(
    cx: &ChannelContext<L>,
    judgement: Judgement,
    frame: Frame,
    judge: &Mutex<Judge>,
    client: &ClientOut,
) -> Option<Frame>
where
    L: Layer<SshUpstream>,
    L::Service: Service<Request<SshRequest>, Response = SshResponse, Error = BoxError>,
{
    let started = Instant::now();
    let op = judgement.operation(cx.target.name.clone());
    let service = cx.shared.layer.layer(sod_core::layer::Commit);
    let refusal = match service.oneshot(cx.request(op, SshRequest::Sftp)).await {
        Ok(mut response) => {
            let masker = response.masker().clone();
            let masked = !masker.is_noop();
            let served = if masked && judgement.reads_file() {
                lock(judge)
                    .serve_masked(judgement.id(), move |bytes| masker.scrub_bytes(bytes))
                    .map_err(|e| e.to_string())
            } else {
                Ok(())
            };
            // The request is forwarded now; its own answer comes back through the judge.
            let completion = |status, why: Option<String>| Completion {
                status,
                rows: None,
                bytes: None,
                error_code: why,
                duration: started.elapsed(),
            };
            match served {
                Ok(()) => {
                    response.finish(&completion(CompletionStatus::Ok, None));
                    return Some(frame);
                }
                Err(why) => {
                    response.finish(&completion(CompletionStatus::Error, Some(why.clone())));
                    Refusal::new(RefusalCode::PolicyDenied, why).with_rule("sod-masked-sftp")
                }
            }
        }
        Err(e) => Refusal::find(&*e)
            .cloned()
            .unwrap_or_else(|| Refusal::new(RefusalCode::Unavailable, e.to_string())),
    };
    tracing::info!(request = judgement.text(), refusal = %refusal, "sftp request refused");
    let reply = lock(judge).refuse(judgement.id(), &refusal);
    // OpenSSH's sftp shows its own words for a status code ("Permission denied"), not the
    // message; it does show the subsystem's stderr, so the rule and any approval id go there.
    let line = Refused::from_refusal(&refusal).line;
    let out = client.lock().await;
    let _ = out
        .extended_data_bytes(1, Bytes::copy_from_slice(line.as_bytes()))
        .await;
    let _ = out.data_bytes(reply).await;
    None
}

/// Target to client: each response through the judge (which learns handles and the working
/// directory, and serves masked reads), then on.
async fn responses(
    mut rx: ChannelReadHalf,
    judge: &Mutex<Judge>,
    client: &ClientOut,
    target: &TargetOut,
) {
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    loop {
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext }) => {
                let _ = client.lock().await.extended_data_bytes(ext, data).await;
                continue;
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                let _ = client.lock().await.exit_status(exit_status).await;
                continue;
            }
            Some(ChannelMsg::Eof) => {
                let _ = client.lock().await.eof().await;
                continue;
            }
            Some(ChannelMsg::Failure) => {
                let refused = Refused::unavailable("the target has no sftp subsystem");
                tell(&*client.lock().await, &refused).await;
                return;
            }
            Some(ChannelMsg::Close) | None => return,
            Some(_) => continue,
        }
        loop {
            let frame = match codec::decode_frame(&mut buf, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let refused =
                        Refused::unavailable(format!("the target's SFTP stream is broken: {e}"));
                    tell(&*client.lock().await, &refused).await;
                    return;
                }
            };
            let relay = lock(judge).response(&frame);
            match relay {
                Relay::Forward => {
                    if !send(client, frame.raw().clone()).await {
                        return;
                    }
                }
                Relay::Withhold {
                    to_server,
                    to_client,
                } => {
                    if let Some(bytes) = to_server
                        && target.lock().await.data_bytes(bytes).await.is_err()
                    {
                        return;
                    }
                    if let Some(bytes) = to_client
                        && !send(client, bytes).await
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends one whole packet to the client; `false` once its channel is gone.
async fn send(client: &ClientOut, packet: Bytes) -> bool {
    client.lock().await.data_bytes(packet).await.is_ok()
}

fn lock(judge: &Mutex<Judge>) -> std::sync::MutexGuard<'_, Judge> {
    judge.lock().unwrap_or_else(|p| p.into_inner())
}
