//! One client session, as one task: [start-up](startup) (TLS, the start-up packet, the
//! password), the `Connect` operation through the service stack, then two loops side by side
//! until the session ends — the [router](crate::router) (server → client) and the
//! [driver](driver) (client → stack → server).
//!
//! Simple-query batches and extended-protocol `Execute`s are operations; `Parse`, `Bind`,
//! `Describe`, `Close`, `Sync` and `Flush` are bookkeeping the driver handles itself (a
//! statement is analysed at `Parse`, its policy is enforced at `Execute`). Protocol-level
//! statement names are rewritten to names the gateway generates, so what the server prepared
//! under a name is always what the gateway analysed under it.
//!
//! A refusal is answered the way PostgreSQL answers an error: the gateway makes the server fail
//! too (an `Execute` of a portal that cannot exist), and substitutes its own `ErrorResponse` for
//! the server's. The transaction semantics are then exactly PostgreSQL's: an implicit
//! transaction is rolled back, an explicit block becomes failed until the client ends it, and
//! the rest of an extended-protocol pipeline is skipped up to `Sync`.

mod driver;
mod startup;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sod_core::{BoxError, Credential, Request, Session};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::{Layer, Service, ServiceExt as _};

use crate::codec::{self, ErrorBuilder, FrontendFrame, Limits, Severity, TransactionStatus};
use crate::error::stack_error;
use crate::net;
use crate::router::{self, Link};
use crate::service::{PgRequest, PgResponse, PgUpstream, RequestKind};
use crate::shared::{GatewayShared, SessionShared};
use crate::upstream::{self, CancelTarget, Upstream};
use sod_core::admission::{StartupSlot, TooManyConnections};

use self::driver::Driver;
pub(crate) use self::startup::Accepted;
use self::startup::{Conn, Started};

/// A client-facing failure: the session ends with this FATAL error.
pub(super) struct Fatal(Box<ErrorBuilder>);

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        fatal("08006", format!("sod: connection error: {e}"))
    }
}

impl From<codec::ProtocolError> for Fatal {
    fn from(e: codec::ProtocolError) -> Self {
        fatal(e.sqlstate(), format!("sod: {e}"))
    }
}

fn fatal(code: &str, message: impl Into<String>) -> Fatal {
    Fatal(Box::new(ErrorBuilder::fatal(code, message.into())))
}

/// Why a running session stops.
pub(super) enum Stop {
    /// The client sent `Terminate` or closed its connection.
    ClientGone,
    /// The link to the server is down; the router tells the client why.
    LinkDown,
    /// The gateway ends the session with this error.
    Fatal(Fatal),
}

impl From<Fatal> for Stop {
    fn from(f: Fatal) -> Self {
        Stop::Fatal(f)
    }
}

/// What handling one client message leads to: on to the next, or the end of the session.
pub(super) type Step = Result<(), Stop>;

/// Serves one client connection to the end.
pub(crate) async fn serve<L>(
    gw: Arc<GatewayShared>,
    layer: L,
    accepted: Accepted,
    startup: StartupSlot,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    L: Layer<PgUpstream>,
    L::Service:
        Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<PgRequest>>>::Future: Send,
{
    let Some(started) = startup::handshake(&gw, accepted).await else {
        return;
    };
    let session = Arc::new(Session::new(
        gw.target.clone(),
        started.peer.clone(),
        started.user(),
    ));
    let shared = Arc::new(SessionShared::new(gw.clone(), started.forwarded_params()));
    let mut service = layer.layer(PgUpstream {
        shared: shared.clone(),
    });
    let Started { conn, token, .. } = started;
    // Session start is itself an operation: identity, policy and audit see it, and the
    // innermost service opens the upstream session.
    let connect = Request::connect(
        session.clone(),
        Credential::new(token),
        PgRequest {
            kind: RequestKind::Connect,
        },
    );
    let connected = match service.ready().await {
        Ok(svc) => svc.call(connect).await,
        Err(e) => Err(e),
    };
    // Authenticated (or refused): the start-up slot goes back; an admitted session holds a
    // session slot instead (see `admission`).
    drop(startup);
    if let Err(e) = connected {
        let err = if let Some(up) = e.downcast_ref::<upstream::UpstreamError>() {
            ErrorBuilder::fatal("08001", format!("sod: {up}"))
        } else if let Some(full) = e.downcast_ref::<TooManyConnections>() {
            ErrorBuilder::fatal("53300", full.to_string())
        } else {
            stack_error(&e, Severity::Fatal)
        };
        return conn.fail(err).await;
    }
    let Some(upstream) = shared.take_upstream() else {
        return conn
            .fail(ErrorBuilder::fatal(
                "XX000",
                "sod: the stack accepted the connection but opened no upstream session",
            ))
            .await;
    };
    tracing::info!(session = %session.id(), principal = ?session.principal().map(|p| &p.id), "session started");
    run(gw, shared, session, service, conn, upstream, &mut shutdown).await;
}

/// Runs a session that has an upstream connection: greets the client, then runs the router and
/// the driver until the client leaves, the link breaks or the gateway shuts down.
async fn run<S>(
    gw: Arc<GatewayShared>,
    shared: Arc<SessionShared>,
    session: Arc<Session>,
    service: S,
    conn: Conn,
    upstream: Upstream,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    let link = Arc::new(Link::new(shared.pinned_read_only()));
    shared.attach(link.clone());
    let Conn {
        stream: client,
        buf: mut client_buf,
        limits,
    } = conn;
    let Upstream {
        stream: up_stream,
        read_buf: up_buf,
        parameters,
        key,
        status,
        ..
    } = upstream;

    // The client's greeting: AuthenticationOk, the server's parameters, the gateway's cancel
    // key (never the server's), ReadyForQuery.
    let cancel_id = key.clone().map(|(pid, key)| {
        gw.cancels.insert(CancelTarget {
            config: gw.upstream.clone(),
            pid,
            key,
        })
    });
    let mut hello = BytesMut::new();
    codec::backend::authentication_ok(&mut hello);
    for p in &parameters {
        p.encode_into(&mut hello);
    }
    if let Some((pid, key)) = cancel_id {
        let _ = codec::backend::backend_key_data(&mut hello, pid, &key);
    }
    codec::backend::ready_for_query(&mut hello, status);

    let (mut client_read, mut client_write) = client.split();
    let (up_read, up_write) = up_stream.split();
    if client_write.write_all(&hello).await.is_err() {
        return;
    }

    // One task, two loops: the router (reads the server, routes each message to its slot,
    // writes the client) and the driver (reads the client, runs the service stack, queues
    // upstream). In one task they never wake each other across threads, and a statement
    // waiting in the stack (for an approval) does not hold back the responses of those before
    // it: every wake-up polls both.
    let router = router::run(
        &link,
        up_read,
        up_buf,
        client_write,
        limits,
        gw.write_timeout,
    );
    // A revoked capability ends the session where it waits for the client (a statement in
    // the stack, waiting for an approval, ends first; anything after it is refused).
    let revoked = {
        let session = session.clone();
        async move { session.revoked().await }
    };
    tokio::pin!(revoked);
    let ending = session.clone();
    let pool_key = shared.pool_key();
    let poolable = pool_key.is_some();
    let mut driver = Driver::new(gw.clone(), shared, session, service, link.clone(), up_write);
    let mut client = ClientReader {
        read: &mut client_read,
        buf: &mut client_buf,
        limits,
    };
    let driving = async {
        let stop = loop {
            // Handle every complete message already received; only when none is left, write what
            // they queued upstream (one write for a whole pipeline) and wait for the client.
            let step = match client.buffered() {
                Ok(Some(frame)) => driver.handle(frame).await,
                Ok(None) => match driver.flush().await {
                    Err(()) => Err(Stop::LinkDown),
                    Ok(()) => tokio::select! {
                        r = client.fill(gw.idle_timeout, &link) => r,
                        _ = shutdown.changed() => Err(fatal("57P01", "sod: terminating connection due to administrator command").into()),
                        () = link.wait_closed() => Err(Stop::LinkDown),
                        why = &mut revoked => {
                            let err = fatal("28000", format!("sod: terminating connection: {why}"));
                            tracing::info!(session = %ending.id(), %why, "session ended");
                            ending.end(why);
                            Err(err.into())
                        }
                    },
                },
                Err(stop) => Err(stop),
            };
            if let Err(stop) = step {
                break stop;
            }
            if link.closed().is_some() {
                break Stop::LinkDown;
            }
        };
        // Only a client that left on its own may leave its connection to the next session.
        let reusable = matches!(stop, Stop::ClientGone) && poolable;
        match stop {
            Stop::Fatal(Fatal(err)) => link.local(driver::frame_of(&err)),
            Stop::LinkDown => {
                if let Some(why) = link.closed() {
                    tracing::debug!(session = %driver.session_id(), %why, "link closed");
                }
            }
            Stop::ClientGone => {}
        }
        driver.end(reusable).await
    };
    tokio::pin!(router, driving);
    let mut routed = None;
    let (session_id, kept) = loop {
        tokio::select! {
            r = &mut router, if routed.is_none() => routed = Some(r),
            ended = &mut driving => break ended,
        }
    };
    // The server answers everything sent before Terminate, then closes: let the router deliver
    // those answers (a pipelining client may have sent Terminate right behind its queries).
    // A released link has told the router to stop: it only closes the client's side.
    let routed = match routed {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_secs(5), &mut router).await {
            Ok(r) => r,
            Err(_) => {
                link.finish();
                router.await
            }
        },
    };
    if let Some(id) = cancel_id {
        gw.cancels.remove(id);
    }
    tracing::info!(session = %session_id, "session ended");
    if let (Some(up_write), Some(pool_key)) = (kept, pool_key) {
        let (up_read, read_buf) = routed;
        // Anything the server said that the router did not consume makes the connection
        // unusable: it closes when dropped.
        if read_buf.is_empty()
            && let Some(stream) = net::reunite(up_read, up_write)
        {
            let up = Upstream {
                stream,
                read_buf,
                parameters,
                key,
                status: TransactionStatus::Idle,
            };
            gw.pool.give_back(pool_key, up, &gw.limits).await;
        }
    }
}

/// The client's side of a running session: its read half and what was read of it.
struct ClientReader<'a, R> {
    read: &'a mut R,
    buf: &'a mut BytesMut,
    limits: Limits,
}

impl<R: tokio::io::AsyncRead + Unpin> ClientReader<'_, R> {
    /// A complete message already in the buffer, if any.
    fn buffered(&mut self) -> Result<Option<FrontendFrame>, Stop> {
        codec::decode_frontend(self.buf, &self.limits).map_err(|e| Fatal::from(e).into())
    }

    /// Reads more from the client. An idle client (nothing in flight, nothing received for the
    /// idle timeout) is disconnected.
    async fn fill(&mut self, idle: Option<Duration>, link: &Link) -> Step {
        loop {
            let read = self.read.read_buf(self.buf);
            let n = match idle {
                Some(limit) => match tokio::time::timeout(limit, read).await {
                    Ok(n) => n.map_err(Fatal::from)?,
                    Err(_) if link.busy() => continue,
                    Err(_) => {
                        return Err(fatal(
                            "57P05",
                            "sod: terminating connection due to idle-session timeout",
                        )
                        .into());
                    }
                },
                None => read.await.map_err(Fatal::from)?,
            };
            return if n == 0 {
                Err(Stop::ClientGone)
            } else {
                Ok(())
            };
        }
    }
}
