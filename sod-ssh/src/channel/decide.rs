//! The decision on a channel's operation, through the stack, while the client keeps talking.

use russh::ChannelReadHalf;
use sod_core::{BoxError, Operation, Request};
use tower::{Layer, Service, ServiceExt};

use super::{ChannelContext, Setup};
use crate::refusal::Refused;
use crate::service::{SshRequest, SshResponse, SshUpstream};

/// How a decision ended.
pub(crate) enum Decided {
    /// Committed: carry it out.
    Go(SshResponse),
    /// Not carried out; the client is told why.
    Refused(Refused),
    /// The client closed the channel first.
    Gone,
}

/// Runs `op` through the stack. Meanwhile the channel is still read — russh's session loop
/// must not stall on a channel whose queue is full, or every other channel and the keepalives
/// stall with it — and what the client sends is held in `setup`, up to the configured bound;
/// past it, the gateway stops reading the client until the decision (a client that sends a
/// megabyte before its command is allowed waits, rather than the gateway's memory growing).
/// Nothing reaches the target before the stack answered.
pub(crate) async fn decide<L>(
    cx: &ChannelContext<L>,
    op: Operation,
    body: SshRequest,
    rx: &mut ChannelReadHalf,
    setup: &mut Setup,
) -> Decided
where
    L: Layer<SshUpstream>,
    L::Service: Service<Request<SshRequest>, Response = SshResponse, Error = BoxError>,
{
    let service = cx.shared.layer.layer(sod_core::layer::Commit);
    let decision = service.oneshot(cx.request(op, body));
    tokio::pin!(decision);
    let limit = cx.shared.limits.pending_input;
    loop {
        tokio::select! {
            r = &mut decision => {
                return match r {
                    Ok(response) => Decided::Go(response),
                    Err(e) => Decided::Refused(Refused::from_error(&e)),
                };
            }
            msg = rx.wait(), if setup.input_len < limit => {
                // Closed: dropping the decision stops any wait for approval.
                if !msg.is_some_and(|m| setup.absorb(&cx.shared, m)) {
                    return Decided::Gone;
                }
            }
        }
    }
}
