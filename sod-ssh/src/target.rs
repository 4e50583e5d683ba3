//! The systems behind the gateway: where each is, who the gateway logs in as, with which key,
//! and which host keys it accepts — and how a client picks one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use sod_core::{Secret, Target};

use crate::known_hosts::KnownHosts;

/// The gateway's key for a target: the credential that never leaves the gateway. No `Debug`,
/// no `Display`; the key material is zeroized when the last copy is dropped.
#[derive(Clone)]
pub struct TargetKey(Arc<PrivateKey>);

/// A target key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetKeyError {
    /// The file cannot be read, or others can read it.
    #[error("{0}")]
    File(String),
    /// Not an unencrypted OpenSSH private key.
    #[error("{path}: not an unencrypted OpenSSH private key: {why}")]
    Format {
        /// The file (or other origin).
        path: String,
        /// Why.
        why: String,
    },
}

impl TargetKey {
    /// Reads an unencrypted OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`) from a
    /// file only its owner may read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TargetKeyError> {
        let path = path.as_ref();
        let text = Secret::<String>::read_private_file(path)
            .map_err(|e| TargetKeyError::File(e.to_string()))?;
        Self::from_openssh(&path.display().to_string(), text.expose_secret())
    }

    /// Parses an unencrypted OpenSSH private key; `origin` names it in errors.
    pub fn from_openssh(origin: &str, text: &str) -> Result<Self, TargetKeyError> {
        let key = PrivateKey::from_openssh(text).map_err(|e| TargetKeyError::Format {
            path: origin.to_owned(),
            why: e.to_string(),
        })?;
        if key.is_encrypted() {
            return Err(TargetKeyError::Format {
                path: origin.to_owned(),
                why: "the key is encrypted (the gateway has no one to ask for a passphrase)".into(),
            });
        }
        Ok(Self(Arc::new(key)))
    }

    pub(crate) fn key(&self) -> Arc<PrivateKey> {
        self.0.clone()
    }

    /// The public half, as an `authorized_keys` line.
    pub fn public_openssh(&self) -> String {
        self.0
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| String::from("(unencodable key)"))
    }
}

/// One system the gateway fronts.
///
/// ```no_run
/// use sod_ssh::{KnownHosts, SshTarget, TargetKey};
///
/// let target = SshTarget::new(
///     "ssh/web-1",
///     "10.0.0.5",
///     22,
///     "deploy",
///     TargetKey::from_file("/etc/sod/web-1.key")?,
///     KnownHosts::from_file("/etc/sod/known_hosts")?,
/// )
/// .working_dir("/home/deploy");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SshTarget {
    pub(crate) name: Target,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) key: TargetKey,
    pub(crate) known_hosts: Arc<KnownHosts>,
    pub(crate) working_dir: String,
    pub(crate) home: String,
    pub(crate) connect_timeout: Duration,
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("working_dir", &self.working_dir)
            .finish_non_exhaustive()
    }
}

impl SshTarget {
    /// The target `name` (such as `ssh/web-1`) at `host`:`port`, logged in to as `user` with
    /// `key`, whose host key must be in `known_hosts`.
    pub fn new(
        name: impl AsRef<str>,
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        key: TargetKey,
        known_hosts: KnownHosts,
    ) -> Self {
        Self {
            name: Target::new(name),
            host: host.into(),
            port,
            user: user.into(),
            key,
            known_hosts: Arc::new(known_hosts),
            working_dir: "~".into(),
            home: "~".into(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The directory commands run in on the target, for resolving relative paths in policy
    /// objects (default `~`: relative paths become `~/…`).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// The target user's home directory, for `~` (default: unknown, `~` stays `~`).
    pub fn home(mut self, dir: impl Into<String>) -> Self {
        self.home = dir.into();
        self
    }

    /// How long connecting and logging in to the target may take (default 10 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// The target's name.
    pub fn name(&self) -> &Target {
        &self.name
    }

    /// The short name clients use after `+` in their user name: the name after its last `/`
    /// (`web-1` for `ssh/web-1`).
    pub fn short_name(&self) -> &str {
        let name = self.name.as_str();
        name.rsplit('/').next().unwrap_or(name)
    }
}

/// Picks the target for a client's SSH user name: `anything+NAME` picks the target named
/// `NAME` (its full or [short](SshTarget::short_name) name); a name without `+` picks the only
/// target, if there is only one. The part before `+` is the client's to choose and is
/// recorded; who the client is comes from its credential, never from the user name.
pub(crate) fn pick<'a>(targets: &'a [SshTarget], user: &str) -> Result<&'a SshTarget, String> {
    match user.rsplit_once('+') {
        Some((_, name)) => targets
            .iter()
            .find(|t| t.name.as_str() == name || t.short_name() == name)
            .ok_or_else(|| {
                format!(
                    "no target `{name}` (targets: {})",
                    targets
                        .iter()
                        .map(SshTarget::short_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        None => match targets {
            [only] => Ok(only),
            _ => Err(format!(
                "several targets: log in as `{user}+NAME` (NAME one of {})",
                targets
                    .iter()
                    .map(SshTarget::short_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
    }
}
