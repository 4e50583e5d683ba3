//! The gateway's own SSH connection to a target: the host key checked against known_hosts,
//! logged in with the target key, and nothing the target opens towards the gateway accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Channel;
use russh::ChannelOpenFailure;
use russh::client::{self, Handle, Msg, Session};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use crate::known_hosts::HostKeyError;
use crate::target::SshTarget;

/// Why the gateway could not reach a target.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The host key was refused.
    #[error("{0}")]
    HostKey(#[from] HostKeyError),
    /// The target presented a certificate.
    #[error(
        "{0} presented a host certificate; sod checks plain host keys against known_hosts only"
    )]
    Certificate(String),
    /// The target did not accept the gateway's key.
    #[error("{target} did not accept the gateway's key for user {user}")]
    Login {
        /// The target.
        target: String,
        /// The target user.
        user: String,
    },
    /// Connecting and logging in took too long.
    #[error("{0}: no connection within {1:?}")]
    Timeout(String, Duration),
    /// A network or protocol error.
    #[error("{target}: {source}")]
    Ssh {
        /// The target.
        target: String,
        /// The error.
        source: russh::Error,
    },
}

/// russh's client callbacks: host key check, and refusals of everything the target opens.
struct Guard {
    target: SshTarget,
    refused: Arc<Mutex<Option<UpstreamError>>>,
}

impl client::Handler for Guard {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, russh::Error> {
        let verdict = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self
                .target
                .known_hosts
                .check(&self.target.host, self.target.port, key)
                .map_err(UpstreamError::from),
            PublicKeyOrCertificate::Certificate(_) => {
                Err(UpstreamError::Certificate(self.target.name.to_string()))
            }
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(target = %self.target.name, error = %e, "host key refused");
                if let Ok(mut slot) = self.refused.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }

    // A target never opens channels towards the gateway: no forwarded ports, no agent, no X11.
    async fn server_channel_open_session(
        &mut self,
        _: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        reply: client::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), russh::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }
}

/// A logged-in connection to a target.
pub(crate) struct Upstream {
    handle: Handle<Guard>,
    target: String,
}

/// The connection to a target that the channels of one client connection share: opened on
/// first use (while the first operation is decided), opened again if it has closed, closed
/// when the client's connection and its last channel are gone (russh's client ends its
/// session when the last handle and channel drop). Each command then costs a channel on the
/// target, not a log-in.
#[derive(Clone)]
pub(crate) struct UpstreamPool {
    target: SshTarget,
    current: Arc<tokio::sync::Mutex<Option<Arc<Upstream>>>>,
}

impl UpstreamPool {
    pub(crate) fn new(target: SshTarget) -> Self {
        Self {
            target,
            current: Arc::default(),
        }
    }

    /// The shared connection, logged in.
    pub(crate) async fn get(&self) -> Result<Arc<Upstream>, UpstreamError> {
        let mut current = self.current.lock().await;
        if let Some(up) = current.as_ref().filter(|u| !u.handle.is_closed()) {
            return Ok(up.clone());
        }
        let up = Arc::new(Upstream::connect(&self.target).await?);
        *current = Some(up.clone());
        Ok(up)
    }

    /// A session channel on `up` (from [`get`](Self::get)), or, if that connection has gone,
    /// on a new one.
    pub(crate) async fn session(
        &self,
        up: Arc<Upstream>,
    ) -> Result<(Arc<Upstream>, Channel<Msg>), UpstreamError> {
        if let Ok(channel) = up.session().await {
            return Ok((up, channel));
        }
        self.forget(&up).await;
        let up = self.get().await?;
        let channel = up.session().await?;
        Ok((up, channel))
    }

    /// A `direct-tcpip` channel from the target to `host`:`port`.
    pub(crate) async fn direct_tcpip(
        &self,
        host: &str,
        port: u32,
        origin: &str,
        origin_port: u32,
    ) -> Result<(Arc<Upstream>, Channel<Msg>), UpstreamError> {
        let up = self.get().await?;
        if let Ok(channel) = up.direct_tcpip(host, port, origin, origin_port).await {
            return Ok((up, channel));
        }
        self.forget(&up).await;
        let up = self.get().await?;
        let channel = up.direct_tcpip(host, port, origin, origin_port).await?;
        Ok((up, channel))
    }

    /// Forgets `failed`, so the next [`get`](Self::get) logs in again.
    async fn forget(&self, failed: &Arc<Upstream>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|u| Arc::ptr_eq(u, failed)) {
            *current = None;
        }
    }
}

impl Upstream {
    /// Connects to `target`, checks its host key and logs in.
    pub(crate) async fn connect(target: &SshTarget) -> Result<Self, UpstreamError> {
        let name = target.name.to_string();
        let timeout = target.connect_timeout;
        tokio::time::timeout(timeout, Self::connect_inner(target))
            .await
            .map_err(|_| UpstreamError::Timeout(name, timeout))?
    }

    async fn connect_inner(target: &SshTarget) -> Result<Self, UpstreamError> {
        let name = target.name.to_string();
        let ssh = |source| UpstreamError::Ssh {
            target: name.clone(),
            source,
        };
        let config = Arc::new(client::Config {
            // The agent's session decides how long it lives; keepalives notice a dead target.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..client::Config::default()
        });
        let refused = Arc::new(Mutex::new(None));
        let guard = Guard {
            target: target.clone(),
            refused: refused.clone(),
        };
        let mut handle =
            match client::connect(config, (target.host.as_str(), target.port), guard).await {
                Ok(h) => h,
                Err(e) => {
                    let why = refused.lock().ok().and_then(|mut r| r.take());
                    return Err(why.unwrap_or_else(|| ssh(e)));
                }
            };
        let key = target.key.key();
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(ssh)?
                .flatten()
        } else {
            None
        };
        let auth = handle
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(ssh)?;
        if !auth.success() {
            return Err(UpstreamError::Login {
                target: name,
                user: target.user.clone(),
            });
        }
        Ok(Self {
            handle,
            target: name,
        })
    }

    /// Opens a session channel.
    pub(crate) async fn session(&self) -> Result<Channel<Msg>, UpstreamError> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|source| UpstreamError::Ssh {
                target: self.target.clone(),
                source,
            })
    }

    /// Opens a `direct-tcpip` channel from the target to `host`:`port`.
    pub(crate) async fn direct_tcpip(
        &self,
        host: &str,
        port: u32,
        origin: &str,
        origin_port: u32,
    ) -> Result<Channel<Msg>, UpstreamError> {
        self.handle
            .channel_open_direct_tcpip(host, port, origin, origin_port)
            .await
            .map_err(|source| UpstreamError::Ssh {
                target: self.target.clone(),
                source,
            })
    }
}
