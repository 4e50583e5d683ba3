//! The listener: accepts clients, bounds what they may hold, runs each connection, shuts down
//! gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, SshId};
use sod_core::admission::{Admission, Limits as AdmissionLimits, PeerKey};
use sod_core::{BoxError, Glob, Request, Secret, Session};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tower::{Layer, Service};

use crate::command::Programs;
use crate::server::Connection;
use crate::service::{SshRequest, SshResponse, SshUpstream};
use crate::shared::{DEFAULT_ENV_ALLOW, Limits, Shared};
use crate::target::SshTarget;

/// The gateway's own host key: what clients check in their known_hosts. No `Debug`.
pub struct HostKey(PrivateKey);

/// A host key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostKeyFileError(String);

impl HostKey {
    /// A fresh Ed25519 key (for tests and demos: clients must learn it anew each time).
    pub fn generate() -> Result<Self, HostKeyFileError> {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .map(Self)
            .map_err(|e| HostKeyFileError(format!("cannot generate a host key: {e}")))
    }

    /// Reads an unencrypted OpenSSH private key from a file only its owner may read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HostKeyFileError> {
        let path = path.as_ref();
        let text = Secret::<String>::read_private_file(path)
            .map_err(|e| HostKeyFileError(e.to_string()))?;
        PrivateKey::from_openssh(text.expose_secret())
            .map(Self)
            .map_err(|e| {
                HostKeyFileError(format!(
                    "{}: not an OpenSSH private key: {e}",
                    path.display()
                ))
            })
    }

    /// Writes the key to `path` (mode 0600), for a gateway that should keep its identity.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let text = self
            .0
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(std::io::Error::other)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
    }

    /// The public key, as `ssh-ed25519 AAAA…`.
    pub fn public_openssh(&self) -> String {
        self.0
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| String::from("(unencodable key)"))
    }

    /// The line a client's `known_hosts` needs for this gateway at `host`:`port`.
    pub fn known_hosts_line(&self, host: &str, port: u16) -> String {
        let name = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        format!("{name} {}", self.public_openssh())
    }

    /// The SHA-256 fingerprint (`SHA256:…`), as `ssh` shows it.
    pub fn fingerprint(&self) -> String {
        self.0.public_key().fingerprint(HashAlg::Sha256).to_string()
    }
}

/// Builds a [`Gateway`].
pub struct GatewayBuilder<L> {
    listener: TcpListener,
    host_key: HostKey,
    targets: Vec<SshTarget>,
    layer: L,
    limits: Limits,
    admission: AdmissionLimits,
    handshake_timeout: Duration,
    keepalive: Duration,
    max_auth_attempts: usize,
    env_allow: Vec<Glob>,
    programs: Programs,
    shutdown_grace: Duration,
}

impl<L> GatewayBuilder<L> {
    /// At most `n` sessions at once (default 100).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.admission.sessions = n.max(1);
        self
    }

    /// At most `n` sessions of one identity at once (default 50).
    pub fn max_sessions_per_principal(mut self, n: usize) -> Self {
        self.admission.sessions_per_principal = n.max(1);
        self
    }

    /// At most `total` connections that have not authenticated yet, and `per_address` from
    /// one address (defaults 128 and 32).
    pub fn max_startup(mut self, total: usize, per_address: usize) -> Self {
        self.admission.startup = total.max(1);
        self.admission.startup_per_peer = per_address.max(1);
        self
    }

    /// At most `n` channels open at once on one connection (default 16).
    pub fn max_channels(mut self, n: usize) -> Self {
        self.limits.channels = n.max(1);
        self
    }

    /// How long a client has from connecting to being authenticated (default 30 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// How often the gateway checks that a quiet client is still there (default 30 s; three
    /// missed answers end the connection). There is no inactivity timeout besides: a command
    /// may wait minutes for approval.
    pub fn keepalive(mut self, t: Duration) -> Self {
        self.keepalive = t;
        self
    }

    /// Authentication attempts per connection (default 6).
    pub fn max_auth_attempts(mut self, n: usize) -> Self {
        self.max_auth_attempts = n.max(1);
        self
    }

    /// The environment variables clients may set, as globs (default `LANG`, `LC_*`, `TERM`).
    pub fn env_allow<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.env_allow = names.into_iter().map(|n| Glob::new(n.as_ref())).collect();
        self
    }

    /// The program table commands are judged by (default [`Programs::builtin`]).
    pub fn programs(mut self, programs: Programs) -> Self {
        self.programs = programs;
        self
    }

    /// Bytes of input a channel holds while its command waits for a decision (default 1 MiB).
    pub fn pending_input(mut self, bytes: usize) -> Self {
        self.limits.pending_input = bytes.max(1);
        self
    }

    /// The largest file a masked principal may read over SFTP (default 16 MiB): the gateway
    /// reads and masks such files whole.
    pub fn masked_file_limit(mut self, bytes: u64) -> Self {
        self.limits.masked_file = bytes;
        self
    }

    /// How long sessions may take to finish on shutdown before they are cut (default 10 s).
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }

    /// The gateway.
    pub fn build(self) -> Gateway<L> {
        let config = Config {
            server_id: SshId::Standard(format!("SSH-2.0-sod_{}", env!("CARGO_PKG_VERSION")).into()),
            methods: MethodSet::from(&[MethodKind::Password, MethodKind::KeyboardInteractive][..]),
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![self.host_key.0],
            max_auth_attempts: self.max_auth_attempts,
            // No inactivity timeout: a command may wait for approval for minutes. Keepalives
            // find dead clients instead.
            inactivity_timeout: None,
            keepalive_interval: Some(self.keepalive),
            keepalive_max: 3,
            nodelay: true,
            ..Config::default()
        };
        Gateway {
            shared: Arc::new(Shared {
                layer: self.layer,
                targets: self.targets,
                admission: Admission::new(self.admission),
                limits: self.limits,
                env_allow: self.env_allow,
                programs: Arc::new(self.programs),
            }),
            config: Arc::new(config),
            listener: self.listener,
            handshake_timeout: self.handshake_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// An SSH gateway: accepts clients, authenticates each with a sod credential (the `Connect`
/// operation), and runs every `exec`, `shell`, SFTP request and tunnel through the service
/// stack built by its layer before anything reaches the target.
///
/// ```no_run
/// use std::sync::Arc;
/// use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
/// use sod_core::capability::{CapabilityAuthority, CapabilityKey};
/// use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
/// use sod_core::{masking::MaskProfiles, policy::Policy};
/// use sod_ssh::{Gateway, HostKey, KnownHosts, SshTarget, TargetKey};
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
/// // The target: its user, a key that never leaves the gateway, its host key pinned.
/// let web = SshTarget::new(
///     "ssh/web-1",
///     "10.0.0.5",
///     22,
///     "deploy",
///     TargetKey::from_file("keys/web-1.key")?,
///     KnownHosts::from_file("known_hosts")?,
/// )
/// .working_dir("/home/deploy")
/// .home("/home/deploy");
/// let gateway = Gateway::builder(
///     tokio::net::TcpListener::bind("0.0.0.0:2222").await?,
///     HostKey::from_file("keys/ssh_host_ed25519_key")?,
///     vec![web],
///     stack,
/// )
/// .max_channels(16)
/// .build();
/// // Clients: `sshpass -p "$TOKEN" ssh -p 2222 agent@gateway 'ls -l'`.
/// gateway.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
pub struct Gateway<L> {
    shared: Arc<Shared<L>>,
    config: Arc<Config>,
    listener: TcpListener,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
}

impl Gateway<()> {
    /// Starts building a gateway: clients on `listener`, presenting `host_key`, in front of
    /// `targets`, every operation wrapped by `layer` (a `tower::ServiceBuilder` of sod layers
    /// and your own).
    pub fn builder<L>(
        listener: TcpListener,
        host_key: HostKey,
        targets: Vec<SshTarget>,
        layer: L,
    ) -> GatewayBuilder<L> {
        GatewayBuilder {
            listener,
            host_key,
            targets,
            layer,
            limits: Limits::default(),
            admission: AdmissionLimits::default(),
            handshake_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            max_auth_attempts: 6,
            env_allow: DEFAULT_ENV_ALLOW.iter().map(|n| Glob::new(n)).collect(),
            programs: Programs::builtin(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl<L> Gateway<L>
where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves; then stops accepting, lets sessions finish
    /// for the shutdown grace, and disconnects the rest.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop, stopping) = watch::channel(false);
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
                    let slot = match self.shared.admission.startup(PeerKey::Ip(peer.ip())) {
                        Ok(slot) => slot,
                        Err(why) => {
                            tracing::warn!(%peer, reason = %why, "connection refused");
                            continue;
                        }
                    };
                    let (authed, authenticated) = oneshot::channel();
                    let handler = Connection::new(self.shared.clone(), peer, slot, authed);
                    connections.spawn(connection(
                        self.config.clone(),
                        socket,
                        handler,
                        authenticated,
                        self.handshake_timeout,
                        stopping.clone(),
                        self.shutdown_grace,
                    ));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// One connection's life: the handshake and authentication within `handshake`, then the
/// session until it ends or the gateway stops (after `grace`).
async fn connection<L>(
    config: Arc<Config>,
    socket: tokio::net::TcpStream,
    handler: Connection<L>,
    authenticated: oneshot::Receiver<Arc<Session>>,
    handshake: Duration,
    mut stopping: watch::Receiver<bool>,
    grace: Duration,
) where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    let deadline = tokio::time::Instant::now() + handshake;
    let running =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ssh handshake failed");
                return;
            }
            Err(_) => return,
        };
    let handle = running.handle();
    tokio::pin!(running);
    let cut = |why: String| {
        let handle = handle.clone();
        async move {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, why, "en".into())
                .await;
        }
    };
    // Until authenticated: the handshake deadline.
    let session = tokio::select! {
        _ = &mut running => return,
        authed = tokio::time::timeout_at(deadline, authenticated) => match authed {
            Ok(Ok(session)) => session,
            _ => {
                cut("sod: not authenticated in time".into()).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
                return;
            }
        }
    };
    // `Ok(stopped)` when the gateway stops (or its stop signal is gone), `Err(why)` when the
    // session's capability is revoked.
    let ended = tokio::select! {
        _ = &mut running => return,
        r = stopping.wait_for(|s| *s) => Ok(r.is_ok()),
        why = session.revoked() => Err(why),
    };
    let stopped = match ended {
        Ok(stopped) => stopped,
        Err(why) => {
            tracing::info!(session = %session.id(), %why, "ssh session ended");
            session.end(why.clone());
            cut(format!("sod: {why}")).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
            return;
        }
    };
    if stopped && tokio::time::timeout(grace, &mut running).await.is_err() {
        cut("sod: the gateway is shutting down".into()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
    }
}
