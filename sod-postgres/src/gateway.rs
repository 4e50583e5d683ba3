//! [`Gateway`]: a PostgreSQL listener that wraps every client session in a service stack.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sod_core::{BoxError, Request, Target};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{Layer, Service};

use crate::codec::{ErrorBuilder, Limits};
use crate::credentials::CredentialSource;
use crate::pool::PoolSettings;
use crate::service::{PgRequest, PgResponse, PgUpstream};
use crate::session::{self, Accepted};
use crate::shared::{GatewayShared, Plaintext, Settings};
use crate::sql::{CachedAnalyzer, PgQueryAnalyzer};
use crate::upstream::UpstreamConfig;
use sod_core::admission::{Limits as AdmissionLimits, PeerKey};

/// Where clients connect.
pub enum Listener {
    /// A bound TCP listener.
    Tcp(TcpListener),
    /// A bound Unix-socket listener.
    Unix(UnixListener),
}

/// Builds a [`Gateway`].
///
/// ```no_run
/// use std::sync::Arc;
/// use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
/// use sod_core::capability::{CapabilityAuthority, CapabilityKey};
/// use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
/// use sod_core::{masking::MaskProfiles, policy::Policy, Secret, Target};
/// use sod_postgres::{Gateway, Listener, credentials::StaticCredentials, upstream::UpstreamConfig};
///
/// # async fn run() -> Result<(), sod_core::BoxError> {
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
/// let gateway = Gateway::builder(
///     Target::new("pg/prod"),
///     Listener::Tcp(tokio::net::TcpListener::bind("127.0.0.1:6543").await?),
///     UpstreamConfig::tcp("127.0.0.1", 5432, "app"),
///     StaticCredentials::new("executor", Some(Secret::new("…".into()))),
///     stack,
/// )
/// .max_connections(100)
/// .build();
/// gateway.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
pub struct GatewayBuilder<L> {
    target: Target,
    listener: Listener,
    upstream: UpstreamConfig,
    credentials: Arc<dyn CredentialSource>,
    layer: L,
    tls: Option<Arc<rustls::ServerConfig>>,
    plaintext: Plaintext,
    limits: Limits,
    admission: AdmissionLimits,
    max_statement: usize,
    startup_timeout: Duration,
    idle_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    shutdown_grace: Duration,
    analyzer_cache: usize,
    pool: PoolSettings,
}

impl<L> GatewayBuilder<L> {
    /// Client-side TLS (certificate and key), offered on `SSLRequest`.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Whether clients may connect without TLS (default: from loopback and Unix sockets only).
    pub fn plaintext(mut self, plaintext: Plaintext) -> Self {
        self.plaintext = plaintext;
        self
    }

    /// Message size limits (default 16 MiB per client message).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Most concurrent sessions (default 100); more are refused with SQLSTATE 53300. A session
    /// counts from the moment its client has authenticated: connections still in start-up
    /// are bounded apart ([`max_startup`](Self::max_startup)).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.admission.sessions = n.max(1);
        self
    }

    /// Most concurrent sessions of one identity (default 50): no principal can take every
    /// session. More are refused with SQLSTATE 53300.
    pub fn max_sessions_per_principal(mut self, n: usize) -> Self {
        self.admission.sessions_per_principal = n.max(1);
        self
    }

    /// Most connections that have not authenticated yet (default 128), and most of them from
    /// one address (default 32): idle sockets hold only these, and only for the
    /// [start-up timeout](Self::startup_timeout), never a session. More are refused at once
    /// with SQLSTATE 53300.
    pub fn max_startup(mut self, total: usize, per_address: usize) -> Self {
        self.admission.startup = total.max(1);
        self.admission.startup_per_peer = per_address.max(1);
        self
    }

    /// The longest statement the gateway analyses, in bytes (default 1 MiB); a longer one is
    /// refused with SQLSTATE 54000, the session going on. Statements over 16 KiB are analysed
    /// off the async workers, as many at once as there are CPUs.
    pub fn max_statement(mut self, bytes: usize) -> Self {
        self.max_statement = bytes.max(1);
        self
    }

    /// Bound on TLS, start-up and authentication (default 10 s).
    pub fn startup_timeout(mut self, t: Duration) -> Self {
        self.startup_timeout = t;
        self
    }

    /// Disconnect clients that send nothing for this long while nothing is in flight
    /// (default 1 hour; `None` disables).
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Disconnect a client that accepts none of the bytes the gateway has for it for this
    /// long — it stopped reading a result — so its upstream session and slot are freed
    /// (default 5 minutes; `None` disables). Memory stays bounded either way: the gateway stops
    /// reading the server while a client does not read.
    pub fn client_write_timeout(mut self, t: Option<Duration>) -> Self {
        self.write_timeout = t;
        self
    }

    /// How long sessions may finish after shutdown starts before they are terminated
    /// (default 10 s).
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }

    /// Entries in the SQL analysis cache, by exact text and by statement shape (default 1024
    /// each; see [`PgQueryAnalyzer::with_shape_cache`]; zero disables both).
    pub fn analyzer_cache(mut self, entries: usize) -> Self {
        self.analyzer_cache = entries;
        self
    }

    /// Upstream sessions kept for reuse, per principal and start-up parameters (default 16;
    /// zero disables pooling). A session whose client leaves cleanly (idle, outside any
    /// transaction, nothing in flight) hands its server connection back, reset with
    /// `DISCARD ALL`, to the next session of the *same principal*: a client that connects per
    /// transaction then costs the server no fork and the gateway no login. Every session still
    /// runs its own `Connect` through the stack (identity, policy, audit).
    pub fn pool_size(mut self, idle_per_principal: usize) -> Self {
        self.pool.max_idle = idle_per_principal;
        self
    }

    /// How long a pooled upstream session may wait for its next client before it is closed
    /// (default 60 s).
    pub fn pool_idle_timeout(mut self, t: Duration) -> Self {
        self.pool.idle_timeout = t;
        self
    }

    /// Finishes the gateway.
    pub fn build(self) -> Gateway<L> {
        let analyzer = Arc::new(CachedAnalyzer::new(
            Box::new(PgQueryAnalyzer::with_shape_cache(self.analyzer_cache))
                as Box<dyn crate::sql::Analyzer>,
            self.analyzer_cache,
        ));
        Gateway {
            shared: Arc::new(GatewayShared::from(Settings {
                target: self.target,
                upstream: self.upstream,
                credentials: self.credentials,
                analyzer,
                limits: self.limits,
                tls: self.tls,
                plaintext: self.plaintext,
                startup_timeout: self.startup_timeout,
                idle_timeout: self.idle_timeout,
                write_timeout: self.write_timeout,
                admission: self.admission,
                max_statement: self.max_statement,
                pool: self.pool,
            })),
            listener: self.listener,
            layer: self.layer,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// The longest statement analysed by default (1 MiB: a megabyte of SQL costs the parser
/// seconds of CPU).
pub const DEFAULT_MAX_STATEMENT: usize = 1024 * 1024;

/// Idle upstream sessions kept per principal and start-up parameters by default.
const DEFAULT_POOL_SIZE: usize = 16;

/// How long the accept loop pauses after a failed `accept` (typically `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A PostgreSQL gateway: accepts clients, runs each session's `Connect` and every statement
/// through the service stack built by its layer, and forwards what is allowed.
pub struct Gateway<L> {
    shared: Arc<GatewayShared>,
    listener: Listener,
    layer: L,
    shutdown_grace: Duration,
}

impl Gateway<()> {
    /// Starts building a gateway for `target`: clients on `listener`, the real server at
    /// `upstream`, logged in with `credentials`, every session wrapped by `layer` (a
    /// `tower::ServiceBuilder` of sod layers and your own).
    pub fn builder<L>(
        target: Target,
        listener: Listener,
        upstream: UpstreamConfig,
        credentials: impl CredentialSource,
        layer: L,
    ) -> GatewayBuilder<L> {
        GatewayBuilder {
            target,
            listener,
            upstream,
            credentials: Arc::new(credentials),
            layer,
            tls: None,
            plaintext: Plaintext::LoopbackOnly,
            limits: Limits::default(),
            admission: AdmissionLimits::default(),
            max_statement: DEFAULT_MAX_STATEMENT,
            startup_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(3600)),
            write_timeout: Some(Duration::from_secs(300)),
            shutdown_grace: Duration::from_secs(10),
            analyzer_cache: 1024,
            pool: PoolSettings {
                max_idle: DEFAULT_POOL_SIZE,
                ..PoolSettings::default()
            },
        }
    }
}

impl<L> Gateway<L>
where
    L: Layer<PgUpstream> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<PgRequest>>>::Future: Send,
{
    /// The local address of a TCP listener.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets sessions finish for the
    /// grace period, terminates the rest (SQLSTATE 57P01) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sessions = JoinSet::new();
        let reaper = tokio::spawn(reap(self.shared.clone()));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = accept(&self.listener) => a,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            };
            let accepted = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or memory) fails every accept until sessions
                    // end: pause rather than spin, but keep watching for shutdown.
                    tracing::warn!(error = %e, "accept failed; pausing 100 ms");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                    continue;
                }
            };
            let peer = match &accepted {
                Accepted::Tcp(_, addr) => PeerKey::Ip(addr.ip()),
                Accepted::Unix(_) => PeerKey::Unix,
            };
            let slot = match self.shared.admission.startup(peer) {
                Ok(slot) => slot,
                Err(why) => {
                    sessions.spawn(too_many(accepted, why));
                    continue;
                }
            };
            let shared = self.shared.clone();
            let layer = self.layer.clone();
            let stop = stop_rx.clone();
            sessions.spawn(session::serve(shared, layer, accepted, slot, stop));
        }
        tracing::info!(
            sessions = sessions.len(),
            "shutting down: no new connections"
        );
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while sessions.join_next().await.is_some() {}
            })
            .await;
            sessions.abort_all();
        }
        // Pooled upstream sessions go last: sessions ending in the grace period hand theirs
        // back.
        reaper.abort();
        let idle = self.shared.pool.drain();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for up in idle {
                up.terminate().await;
            }
        })
        .await;
        Ok(())
    }
}

/// Closes pooled upstream sessions idle for longer than the pool's idle timeout.
async fn reap(gw: Arc<GatewayShared>) {
    if !gw.pool.enabled() {
        return;
    }
    let every = (gw.pool.idle_timeout() / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        for up in gw.pool.expired() {
            up.terminate().await;
        }
    }
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

async fn too_many(accepted: Accepted, why: String) {
    use tokio::io::AsyncWriteExt as _;
    let mut out = bytes::BytesMut::new();
    ErrorBuilder::fatal("53300", why).encode(&mut out);
    match accepted {
        Accepted::Tcp(mut s, _) => {
            let _ = s.write_all(&out).await;
        }
        Accepted::Unix(mut s) => {
            let _ = s.write_all(&out).await;
        }
    }
}

/// A Unix-socket path for a listener, as PostgreSQL names them.
pub fn unix_socket_path(dir: impl Into<PathBuf>, port: u16) -> PathBuf {
    dir.into().join(format!(".s.PGSQL.{port}"))
}
