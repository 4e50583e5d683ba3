//! `direct-tcpip`: a tunnel from the target to a host and port, as `ssh -L` and `ssh -W` ask.
//! A `forward` operation, denied unless policy allows it; never for masked principals (masking
//! cannot follow a byte stream of unknown protocol).

use std::time::Instant;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use sod_core::audit::{Completion, CompletionStatus};
use sod_core::masking::Masker;
use sod_core::{BoxError, Operation, OperationKind, Request};
use tower::{Layer, Service, ServiceExt};

use super::ChannelContext;
use super::pump::{downstream, upstream_loop};
use crate::refusal::Refused;
use crate::service::{SshRequest, SshResponse, SshUpstream};

/// Where a client asked a tunnel to go.
pub(crate) struct Tunnel {
    pub(crate) host: String,
    pub(crate) port: u32,
    pub(crate) origin: String,
    pub(crate) origin_port: u32,
}

/// Decides a `direct-tcpip` channel, answers its open, and carries its bytes.
pub(crate) async fn forward<L>(
    cx: ChannelContext<L>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    tunnel: Tunnel,
) where
    L: Layer<SshUpstream>,
    L::Service: Service<Request<SshRequest>, Response = SshResponse, Error = BoxError>,
{
    let to = format!("{}:{}", tunnel.host, tunnel.port);
    let op = Operation::builder(
        cx.target.name.clone(),
        OperationKind::Forward,
        format!("direct-tcpip {to}"),
    )
    .object(to.clone())
    .build();
    let service = cx.shared.layer.layer(sod_core::layer::Commit);
    let mut response = match service.oneshot(cx.request(op, SshRequest::Forward)).await {
        Ok(r) => r,
        Err(e) => {
            reply.reject(prohibited(&Refused::from_error(&e))).await;
            return;
        }
    };
    let started = Instant::now();
    let end = |response: &mut SshResponse, status, bytes, why: Option<String>| {
        response.finish(&Completion {
            status,
            rows: None,
            bytes: Some(bytes),
            error_code: why,
            duration: started.elapsed(),
        });
    };
    if !response.masker().is_noop() {
        let why = "a masked session cannot open tunnels: masking cannot follow their bytes";
        reply.reject(prohibited(&Refused::unavailable(why))).await;
        end(&mut response, CompletionStatus::Error, 0, Some(why.into()));
        return;
    }
    let opened = cx
        .upstream
        .direct_tcpip(
            &tunnel.host,
            tunnel.port,
            &tunnel.origin,
            tunnel.origin_port,
        )
        .await
        .map_err(|e| e.to_string());
    let (_upstream, target) = match opened {
        Ok(pair) => pair,
        Err(why) => {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 2, // SSH_OPEN_CONNECT_FAILED
                    reason: format!("sod: {why}"),
                })
                .await;
            end(&mut response, CompletionStatus::Error, 0, Some(why));
            return;
        }
    };
    reply.accept().await;
    let (rx, tx) = channel.split();
    let (target_rx, target_tx) = target.split();
    let none = Masker::none();
    let down = downstream(target_rx, &tx, &cx.handle, tx.id(), &none, None, None);
    let up = upstream_loop(rx, &target_tx, None);
    let (out, bytes_in) = tokio::join!(
        async {
            let ended = down.await;
            let _ = tx.close().await;
            ended
        },
        async {
            let sent = up.await;
            let _ = target_tx.close().await;
            sent
        }
    );
    end(
        &mut response,
        CompletionStatus::Ok,
        bytes_in + out.bytes_out,
        None,
    );
}

fn prohibited(refused: &Refused) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: 1, // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
        reason: refused.line.trim_end().to_owned(),
    }
}
