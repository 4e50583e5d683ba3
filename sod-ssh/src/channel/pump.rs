//! An allowed `exec` or `shell` between the client and the target: both directions at once,
//! each with bounded buffers, output masked and everything recorded.
//!
//! The two directions run as two independent loops. One loop that waited on both channels
//! and wrote inside one of its arms could deadlock: waiting for the client's window while the
//! client's session loop waits for this task to take the next message — the message that
//! carries the window adjustment. Each write awaits the peer's window, so a reader that stops
//! reading stops its writer, which stops reading the other side: memory stays bounded by the
//! SSH windows and russh's channel queues, whatever the transfer size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::client::Msg as ClientMsg;
use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sod_core::audit::{Completion, CompletionStatus, Transcript, TranscriptChunk};
use sod_core::masking::{Masker, StreamScrubber};
use tokio::task::JoinHandle;

use super::{ChannelContext, Program, Setup, tell};
use crate::refusal::Refused;
use crate::service::SshResponse;
use crate::upstream::{Upstream, UpstreamError};

/// How long the target may take to say how a command ended after the client closed first.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How a program on the target ended.
#[derive(Clone, Debug, Default)]
pub(super) struct Ended {
    status: Option<u32>,
    signal: Option<String>,
    /// The target refused to start it.
    refused: bool,
    pub(super) bytes_out: u64,
}

/// Runs `program` on the target for an allowed operation and carries data both ways until
/// either side closes; reports the outcome through `response`.
pub(super) async fn run<L>(
    cx: ChannelContext<L>,
    rx: ChannelReadHalf,
    tx: ChannelWriteHalf<Msg>,
    mut setup: Setup,
    mut response: SshResponse,
    connecting: JoinHandle<Result<Arc<Upstream>, UpstreamError>>,
    program: Program,
) {
    let started = Instant::now();
    let fail = |why: String| Refused::unavailable(why);
    let upstream = match connecting.await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => return failed(&tx, &mut response, fail(e.to_string()), started).await,
        Err(e) => return failed(&tx, &mut response, fail(e.to_string()), started).await,
    };
    let channel = match cx.upstream.session(upstream).await {
        Ok((_, c)) => c,
        Err(e) => return failed(&tx, &mut response, fail(e.to_string()), started).await,
    };
    let (target_rx, target_tx) = channel.split();
    if let Err(e) = start(&target_tx, &setup, &program).await {
        return failed(&tx, &mut response, fail(e.to_string()), started).await;
    }
    let transcript = response.transcript().cloned();
    let terminal = setup.terminal.is_some();
    // An operation whose transcript cannot be kept does not go on (invariant I4).
    let mut recorded = true;
    if let (Some(t), Some(term)) = (&transcript, &setup.terminal) {
        recorded &= t
            .record(TranscriptChunk::Resize {
                cols: term.cols,
                rows: term.rows,
            })
            .await
            .is_ok();
    }
    // What the client sent while the operation was decided.
    let mut bytes_in = 0u64;
    for chunk in std::mem::take(&mut setup.input) {
        bytes_in += chunk.len() as u64;
        if let Some(t) = &transcript {
            recorded &= t.record(TranscriptChunk::Input(&chunk)).await.is_ok();
        }
        if recorded {
            let _ = target_tx.data_bytes(chunk).await;
        }
    }
    if !recorded {
        let _ = target_tx.close().await;
        return failed(
            &tx,
            &mut response,
            fail("the audit log cannot keep the transcript".into()),
            started,
        )
        .await;
    }
    if setup.eof {
        let _ = target_tx.eof().await;
    }
    for signal in std::mem::take(&mut setup.signals) {
        let _ = target_tx.signal(signal).await;
    }

    let masker = response.masker().clone();
    let down = downstream(
        target_rx,
        &tx,
        &cx.handle,
        tx.id(),
        &masker,
        transcript.as_deref(),
        terminal.then_some(cx.shared.limits.masked_flush),
    );
    let up = upstream_loop(rx, &target_tx, transcript.as_deref());
    tokio::pin!(down);
    let (ended, more_in) = tokio::select! {
        ended = &mut down => (ended, None),
        sent = up => {
            // The client closed first: the target is told, and has a moment to say how the
            // command ended.
            let _ = target_tx.close().await;
            let ended = tokio::time::timeout(CLOSE_GRACE, &mut down).await.ok();
            (ended.unwrap_or_default(), Some(sent))
        }
    };
    bytes_in += more_in.unwrap_or(0);
    let _ = tx.close().await;
    let _ = target_tx.close().await;
    let status = match (&ended.status, &ended.signal) {
        _ if ended.refused => CompletionStatus::Error,
        (Some(0), _) => CompletionStatus::Ok,
        (Some(_), _) | (None, Some(_)) => CompletionStatus::Error,
        (None, None) => CompletionStatus::Interrupted,
    };
    let error_code = match (&ended.status, &ended.signal) {
        _ if ended.refused => Some("refused by the target".to_owned()),
        (Some(0), _) => None,
        (Some(s), _) => Some(format!("exit {s}")),
        (None, Some(sig)) => Some(format!("signal {sig}")),
        (None, None) => None,
    };
    response.finish(&Completion {
        status,
        rows: None,
        bytes: Some(bytes_in + ended.bytes_out),
        error_code,
        duration: started.elapsed(),
    });
}

/// Asks the target for the terminal, environment and program the client asked the gateway for.
async fn start(
    target: &ChannelWriteHalf<ClientMsg>,
    setup: &Setup,
    program: &Program,
) -> Result<(), russh::Error> {
    if let Some(t) = &setup.terminal {
        target
            .request_pty(
                false,
                &t.term,
                t.cols,
                t.rows,
                t.px_width,
                t.px_height,
                &t.modes,
            )
            .await?;
    }
    for (name, value) in &setup.env {
        target.set_env(false, name.as_str(), value.as_str()).await?;
    }
    // Exactly the command that was judged: the target's login shell runs what was approved.
    match program {
        Program::Exec(command) => target.exec(true, command.clone()).await,
        Program::Shell => target.request_shell(true).await,
        Program::Subsystem(name) => target.request_subsystem(true, name.as_str()).await,
    }
}

/// Tells the client the operation could not run after all, and records the failure.
async fn failed(
    tx: &ChannelWriteHalf<Msg>,
    response: &mut SshResponse,
    refused: Refused,
    started: Instant,
) {
    tracing::warn!(reason = %refused.line.trim_end(), "ssh operation failed at the target");
    tell(tx, &refused).await;
    response.finish(&Completion {
        status: CompletionStatus::Error,
        rows: None,
        bytes: Some(0),
        error_code: Some("target unavailable".into()),
        duration: started.elapsed(),
    });
}

/// Output masking for one stream: a no-op for unmasked principals.
struct Scrub(Option<StreamScrubber>, Vec<u8>);

impl Scrub {
    fn new(masker: &Masker) -> Self {
        Self((!masker.is_noop()).then(|| masker.stream()), Vec::new())
    }

    /// What of `data` may go out now.
    fn push(&mut self, data: Bytes) -> Bytes {
        match &mut self.0 {
            None => data,
            Some(s) => {
                self.1.clear();
                s.push(&data, &mut self.1);
                Bytes::copy_from_slice(&self.1)
            }
        }
    }

    /// Everything held.
    fn flush(&mut self) -> Bytes {
        match &mut self.0 {
            None => Bytes::new(),
            Some(s) => {
                self.1.clear();
                s.flush(&mut self.1);
                Bytes::copy_from_slice(&self.1)
            }
        }
    }
}

/// Target to client: output and errors (masked, recorded), how the program ended.
pub(super) async fn downstream(
    mut target: ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    handle: &Handle,
    id: ChannelId,
    masker: &Masker,
    transcript: Option<&dyn Transcript>,
    flush_after: Option<Duration>,
) -> Ended {
    let mut ended = Ended::default();
    let (mut out, mut err) = (Scrub::new(masker), Scrub::new(masker));
    let masked = !masker.is_noop();
    // A masked terminal: output held for the rest of its line goes out after a short quiet
    // spell (a prompt has no newline).
    let mut idle: Option<Duration> = None;
    loop {
        let msg = match idle {
            Some(d) => match tokio::time::timeout(d, target.wait()).await {
                Ok(m) => m,
                Err(_) => {
                    idle = None;
                    send(tx, None, out.flush(), transcript, &mut ended).await;
                    send(tx, Some(1), err.flush(), transcript, &mut ended).await;
                    continue;
                }
            },
            None => target.wait().await,
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                let data = out.push(data);
                if !send(tx, None, data, transcript, &mut ended).await {
                    break;
                }
                idle = flush_after.filter(|_| masked);
            }
            Some(ChannelMsg::ExtendedData { data, ext }) => {
                let data = if ext == 1 { err.push(data) } else { data };
                if !send(tx, Some(ext), data, transcript, &mut ended).await {
                    break;
                }
                idle = flush_after.filter(|_| masked);
            }
            Some(ChannelMsg::Eof) => {
                send(tx, None, out.flush(), transcript, &mut ended).await;
                send(tx, Some(1), err.flush(), transcript, &mut ended).await;
                let _ = tx.eof().await;
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                ended.status = Some(exit_status);
                let _ = tx.exit_status(exit_status).await;
            }
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            }) => {
                ended.signal = Some(format!("{signal_name:?}"));
                let _ = handle
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
            }
            Some(ChannelMsg::Failure) => {
                // The target said no to the exec, shell or subsystem request itself.
                ended.refused = true;
                let refused = Refused::unavailable("the target refused to start it");
                let _ = tx
                    .extended_data_bytes(1, Bytes::copy_from_slice(refused.line.as_bytes()))
                    .await;
                let _ = tx.exit_status(refused.status).await;
                break;
            }
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    send(tx, None, out.flush(), transcript, &mut ended).await;
    send(tx, Some(1), err.flush(), transcript, &mut ended).await;
    ended
}

/// Sends (and records) one chunk to the client; `false` once the client's channel is gone.
async fn send(
    tx: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
    data: Bytes,
    transcript: Option<&dyn Transcript>,
    ended: &mut Ended,
) -> bool {
    if data.is_empty() {
        return true;
    }
    ended.bytes_out += data.len() as u64;
    if let Some(t) = transcript {
        let entry = match ext {
            None => TranscriptChunk::Output(&data),
            Some(_) => TranscriptChunk::Error(&data),
        };
        if let Err(e) = t.record(entry).await {
            // Unrecorded output does not pass (invariant I4): the operation ends here.
            tracing::warn!(error = %e, "transcript failed: ending the operation");
            return false;
        }
    }
    match ext {
        None => tx.data_bytes(data).await.is_ok(),
        Some(ext) => tx.extended_data_bytes(ext, data).await.is_ok(),
    }
}

/// Client to target: input (recorded), end of input, window changes, signals. Returns the
/// bytes sent, once the client closes the channel.
pub(super) async fn upstream_loop(
    mut rx: ChannelReadHalf,
    target: &ChannelWriteHalf<ClientMsg>,
    transcript: Option<&dyn Transcript>,
) -> u64 {
    let mut bytes = 0u64;
    // Once the target's side is gone, what the client still sends is read and dropped until
    // it closes (the other loop ends the channel).
    let mut gone = false;
    loop {
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) if !gone => {
                bytes += data.len() as u64;
                if let Some(t) = transcript
                    && t.record(TranscriptChunk::Input(&data)).await.is_err()
                {
                    // Unrecorded input does not pass (invariant I4).
                    let _ = target.close().await;
                    gone = true;
                    continue;
                }
                gone = target.data_bytes(data).await.is_err();
            }
            Some(ChannelMsg::Eof) => {
                let _ = target.eof().await;
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            }) => {
                if let Some(t) = transcript {
                    // A lost resize event only spoils the replay's layout; the channel goes on.
                    let _ = t
                        .record(TranscriptChunk::Resize {
                            cols: col_width,
                            rows: row_height,
                        })
                        .await;
                }
                let _ = target
                    .window_change(col_width, row_height, pix_width, pix_height)
                    .await;
            }
            Some(ChannelMsg::Signal { signal }) => {
                let _ = target.signal(signal).await;
            }
            Some(ChannelMsg::Close) | None => return bytes,
            Some(_) => {}
        }
    }
}
