//! The gateway: a hyper server (HTTP/1.1 and HTTP/2 over rustls) in front of an API server.
//!
//! - `connection`: one client connection — its TLS handshake, the identities its bearer
//!   tokens proved, and each request's path through the stack.
//! - `forward`: the request the API server gets (the gateway's own credentials, JSON only,
//!   no client `Authorization`) and the answer the client gets (masked for masked principals).
//! - `body`: answer bodies that report how they ended, and the streaming watch masker.
//! - `stream`: exec and attach over WebSocket, relayed message by message and recorded.

mod body;
mod connection;
mod forward;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use sod_core::admission::{Admission, Limits as AdmissionLimits, PeerKey};
use sod_core::layer::Commit;
use sod_core::{BoxError, Request, Target};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, Service};

use crate::service::{K8sRequest, K8sResponse};
use connection::Connection;

/// Bounds on what one request may hold (see [`GatewayBuilder`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The largest request body (the API server's own limit is 3 MiB).
    pub(crate) body: usize,
    /// The largest answer the gateway reads whole to mask it.
    pub(crate) masked_answer: usize,
    /// The longest watch event a masked watch holds.
    pub(crate) watch_line: usize,
    /// Bearer tokens (identities) one connection keeps authenticated at once.
    pub(crate) tokens_per_connection: usize,
    /// exec, attach and port-forward streams open at once.
    pub(crate) streams: usize,
    /// Concurrent HTTP/2 streams on one connection.
    pub(crate) h2_streams: u32,
    /// The largest header section a request may have.
    pub(crate) header_bytes: usize,
    /// Client connections open at once, authenticated or not.
    pub(crate) connections: usize,
    /// How long a watch may pass nothing before the gateway ends it.
    pub(crate) watch_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body: 3 * 1024 * 1024,
            masked_answer: 64 * 1024 * 1024,
            watch_line: 4 * 1024 * 1024,
            tokens_per_connection: 4,
            streams: 64,
            h2_streams: 100,
            header_bytes: 64 * 1024,
            connections: 1024,
            watch_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// What every connection of a gateway shares.
pub(crate) struct Shared<L> {
    pub(crate) layer: L,
    pub(crate) target: Target,
    pub(crate) upstream: kube::Client,
    pub(crate) admission: Admission,
    pub(crate) limits: Limits,
    /// Permits for open exec, attach and port-forward streams.
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
}

/// Builds a [`Gateway`].
pub struct GatewayBuilder<L> {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    upstream: kube::Client,
    layer: L,
    target: Target,
    limits: Limits,
    admission: AdmissionLimits,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
}

impl<L> GatewayBuilder<L> {
    /// The target operations name (default `k8s`): what policy rules' `targets` match.
    pub fn target(mut self, target: impl AsRef<str>) -> Self {
        self.target = Target::new(target);
        self
    }

    /// The largest request body (default 3 MiB, the API server's own limit); larger bodies
    /// are refused with 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.limits.body = bytes.max(1);
        self
    }

    /// The largest answer a masked principal may get (default 64 MiB): the gateway reads such
    /// answers whole to mask them; larger ones are refused.
    pub fn max_masked_answer(mut self, bytes: usize) -> Self {
        self.limits.masked_answer = bytes.max(1);
        self
    }

    /// The longest watch event a masked principal may get (default 4 MiB).
    pub fn max_watch_event(mut self, bytes: usize) -> Self {
        self.limits.watch_line = bytes.max(1);
        self
    }

    /// At most `n` identities (the sessions of distinct bearer tokens) one connection keeps
    /// (default 4); a connection presenting more authenticates again.
    pub fn max_tokens_per_connection(mut self, n: usize) -> Self {
        self.limits.tokens_per_connection = n.max(1);
        self
    }

    /// How long a watch may pass nothing before the gateway ends it (default 30 min; clients
    /// watch again).
    pub fn watch_idle(mut self, t: Duration) -> Self {
        self.limits.watch_idle = t;
        self
    }

    /// At most `n` client connections open at once (default 1 024), authenticated or not;
    /// beyond it new connections are closed at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.connections = n.max(1);
        self
    }

    /// At most `n` exec, attach and port-forward streams open at once (default 64); beyond it
    /// a stream is refused with 429 before it is decided.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.limits.streams = n.max(1);
        self
    }

    /// At most `n` concurrent HTTP/2 streams on one connection (default 100), and header
    /// sections of at most `bytes` (default 64 KiB; HTTP/1.1 requests are bounded by the same
    /// read buffer).
    pub fn max_http(mut self, n: u32, bytes: usize) -> Self {
        self.limits.h2_streams = n.max(1);
        self.limits.header_bytes = bytes.max(8 * 1024);
        self
    }

    /// At most `n` sessions at once (default 100), and `per_principal` of one identity (50).
    pub fn max_sessions(mut self, n: usize, per_principal: usize) -> Self {
        self.admission.sessions = n.max(1);
        self.admission.sessions_per_principal = per_principal.max(1);
        self
    }

    /// At most `total` connections in their TLS handshake, and `per_address` from one
    /// address (defaults 128 and 32).
    pub fn max_startup(mut self, total: usize, per_address: usize) -> Self {
        self.admission.startup = total.max(1);
        self.admission.startup_per_peer = per_address.max(1);
        self
    }

    /// How long a client has to finish its TLS handshake (default 10 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// How long requests may take to finish on shutdown before they are cut (default 10 s).
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }

    /// The gateway.
    pub fn build(self) -> Gateway<L> {
        let mut tls = (*self.tls).clone();
        if tls.alpn_protocols.is_empty() {
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Gateway {
            listener: self.listener,
            tls: TlsAcceptor::from(Arc::new(tls)),
            shared: Arc::new(Shared {
                layer: self.layer,
                target: self.target,
                upstream: self.upstream,
                admission: Admission::new(self.admission),
                limits: self.limits,
                streams: Arc::new(tokio::sync::Semaphore::new(self.limits.streams)),
            }),
            handshake_timeout: self.handshake_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// A Kubernetes API gateway: every request is an operation, authenticated by its bearer token
/// (an OIDC token or a sod capability), judged by the stack its layer builds, and forwarded
/// with the gateway's own credentials only after the stack's go-ahead.
///
/// ```no_run
/// use std::sync::Arc;
/// use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
/// use sod_core::capability::{CapabilityAuthority, CapabilityKey};
/// use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
/// use sod_core::{masking::MaskProfiles, policy::Policy};
/// use sod_k8s::Gateway;
///
/// # async fn run(tls: Arc<rustls::ServerConfig>) -> Result<(), sod_core::BoxError> {
/// let authority = CapabilityAuthority::new("sod", CapabilityKey::generate("k1"));
/// let (audit, _) = FileSink::open(
///     "/var/lib/sod/audit",
///     FileSinkOptions::new("gw-1", CheckpointKey::generate("audit-2026")),
/// )?;
/// let stack = tower::ServiceBuilder::new()
///     .layer(IdentityLayer::new(authority))
///     .layer(RecordingLayer::new(Arc::new(audit)))
///     .layer(PolicyLayer::new(Policy::from_file("policy.toml")?))
///     .layer(MaskingLayer::new(MaskProfiles::new([])));
/// // The executor's credentials: a kubeconfig, or the pod's service account in a cluster.
/// let upstream = kube::Client::try_default().await?;
/// let gateway = Gateway::builder(
///     tokio::net::TcpListener::bind("0.0.0.0:6443").await?,
///     tls,
///     upstream,
///     stack,
/// )
/// .target("k8s/prod")
/// .build();
/// // Clients: a kubeconfig with `server: https://gateway:6443` and `token: <capability>`.
/// gateway.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
pub struct Gateway<L> {
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Arc<Shared<L>>,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
}

impl Gateway<()> {
    /// Starts building a gateway: clients on `listener` over TLS with `tls` (ALPN `h2` and
    /// `http/1.1` are offered if it sets none), requests forwarded through `upstream` (a
    /// `kube` client with the executor's credentials), every operation wrapped by `layer`.
    pub fn builder<L>(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        upstream: kube::Client,
        layer: L,
    ) -> GatewayBuilder<L> {
        GatewayBuilder {
            listener,
            tls,
            upstream,
            layer,
            target: Target::new("k8s"),
            limits: Limits::default(),
            admission: AdmissionLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl<L> Gateway<L>
where
    L: Layer<Commit> + Send + Sync + 'static,
    L::Service:
        Service<Request<K8sRequest>, Response = K8sResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<K8sRequest>>>::Future: Send,
{
    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves; then stops accepting, lets requests finish
    /// for the shutdown grace (watches and exec streams are cut), and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let open = Arc::new(tokio::sync::Semaphore::new(self.shared.limits.connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: wait a little, go on.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(held) = open.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, limit = self.shared.limits.connections, "connection refused: too many open");
                        continue;
                    };
                    let slot = match self.shared.admission.startup(PeerKey::Ip(peer.ip())) {
                        Ok(slot) => slot,
                        Err(why) => {
                            tracing::warn!(%peer, reason = %why, "connection refused");
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let tls = self.tls.clone();
                    let handshake = self.handshake_timeout;
                    let shared = self.shared.clone();
                    let shared_limits = self.shared.limits;
                    let watcher = graceful.watcher();
                    connections.spawn(async move {
                        let _held = held;
                        let stream = match tokio::time::timeout(handshake, tls.accept(socket)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        drop(slot);
                        let connection = Arc::new(Connection::new(shared, peer));
                        let service = hyper::service::service_fn(move |req| {
                            let connection = connection.clone();
                            async move { Ok::<_, std::convert::Infallible>(connection.handle(req).await) }
                        });
                        let limits = shared_limits;
                        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        builder
                            .http1()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(30))
                            .max_buf_size(limits.header_bytes.max(8192))
                            .http2()
                            .timer(TokioTimer::new())
                            .keep_alive_interval(Some(Duration::from_secs(30)))
                            .max_concurrent_streams(limits.h2_streams)
                            .max_header_list_size(u32::try_from(limits.header_bytes).unwrap_or(u32::MAX));
                        let serving = builder.serve_connection_with_upgrades(
                            hyper_util::rt::TokioIo::new(stream),
                            service,
                        );
                        if let Err(e) = watcher.watch(serving.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        if tokio::time::timeout(self.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("shutdown grace over: cutting the remaining requests");
        }
        connections.shutdown().await;
        Ok(())
    }
}
