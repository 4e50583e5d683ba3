//! `sod.toml`: one file that describes a whole gateway.
//!
//! The file is read with unknown keys refused; every error names the file, the line and
//! column, and the key (`sod.toml:14:8: postgres[0].upstream.port: invalid type: …`).
//! Relative paths in the file are relative to the file's directory. The complete, commented
//! reference is `sod-cli/sod.example.toml` (also in README.md), and a test loads it.
//!
//! ```toml
//! [identity.capabilities]
//! key_file = "keys/capability.key"   # `sod token keygen` writes one
//!
//! [policy]
//! file = "policy.toml"
//!
//! [audit]
//! dir = "audit"
//! key_file = "keys/audit.key"        # `sod audit keygen` writes one
//!
//! [[postgres]]
//! target = "pg/app"
//! listen = "127.0.0.1:6543"
//! [postgres.upstream]
//! host = "127.0.0.1"
//! database = "app"
//! user = "executor"
//! password_file = "/run/secrets/pg"
//! ```
//!
//! Each protocol's gateways have their own sections: `[[postgres]]`, `[[ssh]]`, `[[kubernetes]]`.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// An error in a config file: where, which key, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key (`postgres[0].upstream.port`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A config file's name and text, to turn byte offsets into line and column.
#[derive(Clone, Debug)]
pub struct Source {
    file: PathBuf,
    text: String,
}

impl Source {
    /// The file's directory, against which relative paths resolve.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// An error at `span` (byte offsets into the file) about `key`.
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let key = key.into();
        ConfigError {
            file: self.file.clone(),
            position: span.map(|s| self.position(s.start)),
            key: (!key.is_empty()).then_some(key),
            message: message.into(),
        }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// `path` as written at `key`, resolved against the file's directory.
    pub fn path(&self, path: &Spanned<String>) -> PathBuf {
        let p = Path::new(path.get_ref());
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir().join(p)
        }
    }

    /// Reads the file `path` names; an error names `key` and where the path was written.
    pub fn read(&self, path: &Spanned<String>, key: &str) -> Result<Vec<u8>, ConfigError> {
        let full = self.path(path);
        std::fs::read(&full).map_err(|e| {
            self.error(
                Some(path.span()),
                key,
                format!("cannot read {}: {e}", full.display()),
            )
        })
    }
}

/// A loaded `sod.toml`.
#[derive(Debug)]
pub struct Config {
    /// Where it came from.
    pub source: Source,
    /// What it says.
    pub file: ConfigFile,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(path, text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: impl Into<PathBuf>, text: impl Into<String>) -> Result<Config, ConfigError> {
        let source = Source {
            file: path.into(),
            text: text.into(),
        };
        let de = toml::Deserializer::parse(&source.text)
            .map_err(|e| source.error(e.span(), "", e.message().to_owned()))?;
        let file: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned values show up as an inner field in the path: not the user's key.
            let key = e.path().to_string();
            let key = key
                .split_once(".$__serde_spanned")
                .map_or(key.as_str(), |(k, _)| k)
                .to_owned();
            let inner = e.into_inner();
            source.error(
                inner.span(),
                if key == "." { String::new() } else { key },
                inner.message().to_owned(),
            )
        })?;
        let config = Config { source, file };
        config.check()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules.
    fn check(&self) -> Result<(), ConfigError> {
        let f = &self.file;
        if f.identity.capabilities.is_none() && f.identity.oidc.is_empty() {
            return Err(self.source.error(
                None,
                "identity",
                "no way to verify anyone: configure [identity.capabilities], [[identity.oidc]] or both",
            ));
        }
        let mut targets = std::collections::HashSet::new();
        for (i, pg) in f.postgres.iter().enumerate() {
            if !targets.insert(pg.target.get_ref().as_str()) {
                return Err(self.source.error(
                    Some(pg.target.span()),
                    format!("postgres[{i}].target"),
                    format!("target `{}` is configured twice", pg.target.get_ref()),
                ));
            }
            pg.upstream.check(&self.source, i)?;
            if pg.tls_cert.is_some() != pg.tls_key.is_some() {
                return Err(self.source.error(
                    None,
                    format!("postgres[{i}]"),
                    "tls_cert and tls_key go together",
                ));
            }
        }
        for (i, ssh) in f.ssh.iter().enumerate() {
            if ssh.target.is_empty() {
                return Err(self.source.error(
                    Some(ssh.listen.span()),
                    format!("ssh[{i}].target"),
                    "an SSH gateway needs at least one [[ssh.target]]",
                ));
            }
            for (j, t) in ssh.target.iter().enumerate() {
                if !targets.insert(t.name.get_ref().as_str()) {
                    return Err(self.source.error(
                        Some(t.name.span()),
                        format!("ssh[{i}].target[{j}].name"),
                        format!("target `{}` is configured twice", t.name.get_ref()),
                    ));
                }
            }
        }
        if let Some(http) = &f.approvals.http
            && http.tls_cert.is_some() != http.tls_key.is_some()
        {
            return Err(self.source.error(
                None,
                "approvals.http",
                "tls_cert and tls_key go together",
            ));
        }
        Ok(())
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[identity]`: who may connect.
    pub identity: IdentityConfig,
    /// `[policy]`: what they may do.
    pub policy: PolicyConfig,
    /// `[audit]`: where it is recorded.
    pub audit: AuditConfig,
    /// `[approvals]`: who else must agree.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// `[[postgres]]`: PostgreSQL gateways.
    #[serde(default)]
    pub postgres: Vec<PostgresConfig>,
    /// `[[ssh]]`: SSH gateways.
    #[serde(default)]
    pub ssh: Vec<SshConfig>,
    /// `[[kubernetes]]`: Kubernetes API gateways.
    #[serde(default)]
    pub kubernetes: Vec<KubernetesConfig>,
}

/// `[log]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter (`info`, `sod_postgres=debug`); `RUST_LOG` overrides it.
    pub level: Option<String>,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[identity]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// `[identity.capabilities]`: sod's own capability tokens.
    pub capabilities: Option<CapabilitiesConfig>,
    /// `[[identity.oidc]]`: OIDC issuers.
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
}

/// `[identity.capabilities]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesConfig {
    /// The issuer name written into capabilities (default `sod`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The key file: hex, at least 32 bytes (`sod token keygen`).
    pub key_file: Spanned<String>,
    /// The key's id (default `k1`).
    #[serde(default = "default_key_id")]
    pub key_id: String,
    /// Longest lifetime of a capability issued here (default 24 h).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_ttl: Option<Duration>,
    /// The revocation list: capability ids, one per line (`sod token revoke` appends). A
    /// running gateway reloads it within a second; an unreadable list refuses every capability.
    pub revocation_file: Option<Spanned<String>>,
}

fn default_issuer() -> String {
    "sod".into()
}

fn default_key_id() -> String {
    "k1".into()
}

/// `[[identity.oidc]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// The JWKS endpoint (`https` only).
    pub jwks_url: Option<String>,
    /// A JWKS document in a file (instead of `jwks_url`).
    pub jwks_file: Option<Spanned<String>>,
    /// PEM roots to trust for `jwks_url` (default: the system's).
    pub ca_file: Option<Spanned<String>>,
    /// The claim holding the principal id (default `sub`).
    pub subject_claim: Option<String>,
    /// The claim holding groups (default `groups`).
    pub groups_claim: Option<String>,
    /// The claim naming the human the subject acts for (default `on_behalf_of`).
    pub on_behalf_of_claim: Option<String>,
    /// The claim holding the principal kind (default `sod_kind`).
    pub kind_claim: Option<String>,
    /// The kind of principals whose token names none (default: such tokens are refused).
    pub default_kind: Option<Kind>,
    /// Clock-skew allowance (default 30 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub leeway: Option<Duration>,
}

/// A principal kind as written in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A person.
    Human,
    /// An agent that plans.
    Planner,
    /// An agent that executes.
    Executor,
}

impl From<Kind> for sod_core::PrincipalKind {
    fn from(k: Kind) -> Self {
        use sod_core::{AgentRole, PrincipalKind};
        match k {
            Kind::Human => PrincipalKind::Human,
            Kind::Planner => PrincipalKind::Agent(AgentRole::Planner),
            Kind::Executor => PrincipalKind::Agent(AgentRole::Executor),
        }
    }
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy file (rules; deny by default).
    pub file: Spanned<String>,
    /// The mask profiles file (optional: without it no rule may name a profile).
    pub masks: Option<Spanned<String>>,
    /// Key for the `hash` mask strategy, hex (default: random per process, so hashes are
    /// stable only until a restart).
    pub hash_key_file: Option<Spanned<String>>,
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The log directory (created if missing).
    pub dir: Spanned<String>,
    /// This gateway's stream name (default `sod`).
    #[serde(default = "default_issuer")]
    pub stream: String,
    /// The checkpoint signing key: a hex ed25519 seed (`sod audit keygen`).
    pub key_file: Spanned<String>,
    /// The key's id (default `audit-1`).
    #[serde(default = "default_audit_key_id")]
    pub key_id: String,
    /// Records between signed checkpoints (default 1000).
    pub checkpoint_every: Option<u64>,
    /// Segment size before rotation, bytes (default 64 MiB).
    pub max_segment_bytes: Option<u64>,
}

fn default_audit_key_id() -> String {
    "audit-1".into()
}

/// `[approvals]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// The journal file; without it approvals live in memory and die with the process.
    pub store: Option<Spanned<String>>,
    /// How long a statement waits for approval before the client gets the error naming the
    /// approval id (default 30 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub wait: Option<Duration>,
    /// Whether approval requests must carry a justification (default false).
    #[serde(default)]
    pub require_justification: bool,
    /// How many of one requester's requests may wait for a decision at once (default 16).
    pub max_pending_per_requester: Option<usize>,
    /// `[approvals.http]`: the approvers' API.
    pub http: Option<ApprovalsHttpConfig>,
    /// `[approvals.webhook]`: notifications.
    pub webhook: Option<WebhookConfig>,
}

/// `[approvals.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsHttpConfig {
    /// Address to listen on.
    pub listen: Spanned<SocketAddr>,
    /// PEM certificate chain (with `tls_key`: HTTPS).
    pub tls_cert: Option<Spanned<String>>,
    /// PEM private key.
    pub tls_key: Option<Spanned<String>>,
    /// Plain HTTP on a non-loopback address (behind a TLS proxy only).
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// `[approvals.webhook]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: Spanned<String>,
    /// The HMAC secret (signs `X-Sod-Signature`), a file holding it.
    pub secret_file: Spanned<String>,
}

/// `[[postgres]]`: one PostgreSQL gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The target name policies and capabilities refer to (`pg/prod`).
    pub target: Spanned<String>,
    /// Address clients connect to.
    pub listen: Spanned<SocketAddr>,
    /// PEM certificate chain offered on `SSLRequest`.
    pub tls_cert: Option<Spanned<String>>,
    /// PEM private key.
    pub tls_key: Option<Spanned<String>>,
    /// When plaintext clients are accepted: `never`, `loopback` (default) or `always`.
    #[serde(default)]
    pub plaintext: PlaintextChoice,
    /// Most concurrent sessions, counted from authentication (default 100).
    pub max_connections: Option<usize>,
    /// Most concurrent sessions of one identity (default 50).
    pub max_sessions_per_principal: Option<usize>,
    /// Most connections still in start-up (default 128).
    pub max_startup: Option<usize>,
    /// Most connections still in start-up from one address (default 32).
    pub max_startup_per_address: Option<usize>,
    /// The longest statement analysed, in bytes (default 1 MiB).
    pub max_statement: Option<usize>,
    /// Close sessions idle this long (default 1 h; `"0s"` never).
    #[serde(default, deserialize_with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// Close sessions whose client reads none of its results for this long (default 5 min;
    /// `"0s"` never).
    #[serde(default, deserialize_with = "opt_duration")]
    pub client_write_timeout: Option<Duration>,
    /// Bound on a client's start-up and authentication (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub startup_timeout: Option<Duration>,
    /// How long sessions may finish on shutdown (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub shutdown_grace: Option<Duration>,
    /// Idle upstream sessions kept for reuse per principal (default 16; 0 disables pooling).
    pub pool_size: Option<usize>,
    /// How long a pooled upstream session waits for its next client (default 60 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub pool_idle_timeout: Option<Duration>,
    /// The real server.
    pub upstream: UpstreamSection,
}

/// `[[ssh]]`: one SSH gateway in front of one or more targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// Address clients connect to.
    pub listen: Spanned<SocketAddr>,
    /// The gateway's host key (an unencrypted OpenSSH private key, mode 0600); clients pin
    /// it in their known_hosts.
    pub host_key: Spanned<String>,
    /// Most concurrent sessions, counted from authentication (default 100).
    pub max_sessions: Option<usize>,
    /// Most concurrent sessions of one identity (default 50).
    pub max_sessions_per_principal: Option<usize>,
    /// Most connections not authenticated yet (default 128).
    pub max_startup: Option<usize>,
    /// Most connections not authenticated yet from one address (default 32).
    pub max_startup_per_address: Option<usize>,
    /// Most channels open at once on one connection (default 16).
    pub max_channels: Option<usize>,
    /// Bound on a client's handshake and authentication (default 30 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub handshake_timeout: Option<Duration>,
    /// How often a quiet client is checked (default 30 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub keepalive: Option<Duration>,
    /// Environment variables clients may set, as globs (default `LANG`, `LC_*`, `TERM`).
    pub env_allow: Option<Vec<String>>,
    /// The largest file a masked principal reads over SFTP, in bytes (default 16 MiB).
    pub masked_file_limit: Option<u64>,
    /// How long sessions may finish on shutdown (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub shutdown_grace: Option<Duration>,
    /// `[[ssh.program]]`: programs added to the table commands are judged by.
    #[serde(default)]
    pub program: Vec<ProgramConfig>,
    /// `[[ssh.target]]`: the systems behind this gateway.
    pub target: Vec<SshTargetConfig>,
}

/// `[[kubernetes]]`: one Kubernetes API gateway in front of one API server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The target name policies and capabilities refer to (`k8s/prod`).
    pub target: Spanned<String>,
    /// Address clients connect to (HTTPS).
    pub listen: Spanned<SocketAddr>,
    /// The gateway's certificate chain (PEM); clients trust it as the cluster's CA data.
    pub tls_cert: Spanned<String>,
    /// The gateway's private key (PEM).
    pub tls_key: Spanned<String>,
    /// The kubeconfig with the executor's credentials the gateway forwards with; absent: the
    /// in-cluster service account, or `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<Spanned<String>>,
    /// The context of `kubeconfig` to use (default: its current context).
    pub context: Option<String>,
    /// The largest request body, in bytes (default 3 MiB).
    pub max_body: Option<usize>,
    /// The largest answer a masked principal gets, in bytes (default 64 MiB).
    pub max_masked_answer: Option<usize>,
    /// Most exec, attach and port-forward streams open at once (default 64).
    pub max_streams: Option<usize>,
    /// Most client connections open at once, authenticated or not (default 1024).
    pub max_connections: Option<usize>,
    /// Most concurrent sessions (distinct tokens on open connections) (default 100).
    pub max_sessions: Option<usize>,
    /// Most concurrent sessions of one identity (default 50).
    pub max_sessions_per_principal: Option<usize>,
    /// Bound on a client's TLS handshake (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub handshake_timeout: Option<Duration>,
    /// How long requests may finish on shutdown (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub shutdown_grace: Option<Duration>,
}

/// `[[ssh.program]]`: a program sod-ssh does not know, and what it does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// The program's name, as a command line gives it.
    pub name: String,
    /// `read`, `write`, `exec` or `admin`.
    pub effect: sod_ssh::command::Effect,
}

/// `[[ssh.target]]`: one system behind an SSH gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshTargetConfig {
    /// The target name policies and capabilities refer to (`ssh/web-1`); clients pick it with
    /// the user name `anything+web-1`.
    pub name: Spanned<String>,
    /// Host name or address.
    pub host: String,
    /// Port (default 22).
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// The user the gateway logs in as.
    pub user: String,
    /// The gateway's private key for the target (mode 0600); it never leaves the gateway.
    pub key_file: Spanned<String>,
    /// The known_hosts file the target's host key must be in.
    pub known_hosts: Spanned<String>,
    /// The directory commands start in, for paths in policy objects (default `~`).
    pub working_dir: Option<String>,
    /// The target user's home directory, for `~` (default: unknown).
    pub home: Option<String>,
    /// Bound on connecting and logging in (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
}

fn default_ssh_port() -> u16 {
    22
}

/// When plaintext clients are accepted.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlaintextChoice {
    /// Never: TLS only.
    Never,
    /// From loopback addresses only.
    #[default]
    Loopback,
    /// From anywhere (behind another encrypted transport only).
    Always,
}

/// `[postgres.upstream]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Host name or address (or `socket_dir`).
    pub host: Option<String>,
    /// Directory of the server's Unix socket (instead of `host`).
    pub socket_dir: Option<Spanned<String>>,
    /// Port (default 5432).
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Database name.
    pub database: String,
    /// The executor's login.
    pub user: String,
    /// A file holding the password (read at each connect).
    pub password_file: Option<Spanned<String>>,
    /// An environment variable holding the password (read at each connect).
    pub password_env: Option<String>,
    /// PEM roots: turns on TLS with certificate verification (verify-full).
    pub tls_ca_file: Option<Spanned<String>>,
    /// The name the server's certificate must carry (default `host`).
    pub tls_server_name: Option<String>,
    /// Bound on connecting and logging in (default 10 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    /// Answer a server that asks for the password in cleartext over plain TCP (default
    /// `false`: such a login is refused).
    #[serde(default)]
    pub allow_cleartext_password: bool,
}

fn default_pg_port() -> u16 {
    5432
}

impl UpstreamSection {
    fn check(&self, source: &Source, i: usize) -> Result<(), ConfigError> {
        let key = format!("postgres[{i}].upstream");
        match (&self.host, &self.socket_dir) {
            (Some(_), Some(_)) => {
                return Err(source.error(None, key, "give host or socket_dir, not both"));
            }
            (None, None) => return Err(source.error(None, key, "give host or socket_dir")),
            _ => {}
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err(source.error(None, key, "give password_file or password_env, not both"));
        }
        if self.socket_dir.is_some() && self.tls_ca_file.is_some() {
            return Err(source.error(None, key, "TLS does not apply to a Unix socket"));
        }
        Ok(())
    }
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    sod_core::parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../sod.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse("/etc/sod/sod.toml", text)
    }

    const MINIMAL: &str = r#"
[identity.capabilities]
key_file = "cap.key"

[policy]
file = "policy.toml"

[audit]
dir = "audit"
key_file = "audit.key"
"#;

    #[test]
    fn the_example_sets_every_key() {
        let c = parse(EXAMPLE).expect("the example loads");
        let f = &c.file;
        assert_eq!(f.log.format, LogFormat::Human);
        assert_eq!(f.log.level.as_deref(), Some("info"));
        let caps = f.identity.capabilities.as_ref().expect("capabilities");
        assert_eq!((caps.issuer.as_str(), caps.key_id.as_str()), ("sod", "k1"));
        assert_eq!(caps.max_ttl, Some(Duration::from_secs(24 * 3600)));
        assert_eq!(
            c.source.path(&caps.key_file),
            Path::new("/etc/sod/keys/capability.key")
        );
        let o = &f.identity.oidc[0];
        assert_eq!(o.audiences, ["sod"]);
        assert!(o.jwks_url.is_some() && o.jwks_file.is_none() && o.ca_file.is_some());
        assert_eq!(o.default_kind, Some(Kind::Human));
        assert_eq!(o.leeway, Some(Duration::from_secs(30)));
        for claim in [
            &o.subject_claim,
            &o.groups_claim,
            &o.on_behalf_of_claim,
            &o.kind_claim,
        ] {
            assert!(claim.is_some());
        }
        assert!(f.policy.masks.is_some() && f.policy.hash_key_file.is_some());
        assert_eq!(f.audit.stream, "gw-1");
        assert_eq!(f.audit.checkpoint_every, Some(1000));
        assert_eq!(f.audit.max_segment_bytes, Some(64 << 20));
        assert_eq!(f.approvals.wait, Some(Duration::from_secs(30)));
        assert!(f.approvals.store.is_some() && !f.approvals.require_justification);
        assert_eq!(f.approvals.max_pending_per_requester, Some(16));
        let http = f.approvals.http.as_ref().expect("http");
        assert_eq!(http.listen.get_ref().port(), 6544);
        assert!(http.tls_cert.is_some() && http.tls_key.is_some() && !http.allow_plaintext);
        assert!(f.approvals.webhook.is_some());
        let pg = &f.postgres[0];
        assert_eq!(pg.target.get_ref(), "pg/prod");
        assert_eq!(pg.plaintext, PlaintextChoice::Loopback);
        assert_eq!(pg.max_connections, Some(100));
        assert_eq!(pg.max_sessions_per_principal, Some(50));
        assert_eq!(
            (pg.max_startup, pg.max_startup_per_address),
            (Some(128), Some(32))
        );
        assert_eq!(pg.max_statement, Some(1 << 20));
        assert_eq!(pg.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(pg.startup_timeout, Some(Duration::from_secs(10)));
        assert_eq!(pg.shutdown_grace, Some(Duration::from_secs(10)));
        let u = &pg.upstream;
        assert_eq!(
            (
                u.host.as_deref(),
                u.port,
                u.database.as_str(),
                u.user.as_str()
            ),
            (Some("db.internal"), 5432, "app", "executor")
        );
        assert!(u.password_file.is_some() && u.tls_ca_file.is_some());
        assert_eq!(u.tls_server_name.as_deref(), Some("db.internal"));
        assert_eq!(u.connect_timeout, Some(Duration::from_secs(10)));
        let ssh = &f.ssh[0];
        assert_eq!(ssh.listen.get_ref().port(), 2222);
        assert_eq!(
            (
                ssh.max_sessions,
                ssh.max_sessions_per_principal,
                ssh.max_channels
            ),
            (Some(100), Some(50), Some(16))
        );
        assert_eq!(
            (ssh.max_startup, ssh.max_startup_per_address),
            (Some(128), Some(32))
        );
        assert_eq!(ssh.handshake_timeout, Some(Duration::from_secs(30)));
        assert_eq!(ssh.keepalive, Some(Duration::from_secs(30)));
        assert_eq!(ssh.shutdown_grace, Some(Duration::from_secs(10)));
        assert_eq!(ssh.masked_file_limit, Some(16 << 20));
        assert_eq!(ssh.env_allow.as_deref().map(<[String]>::len), Some(3));
        assert_eq!(ssh.program[0].effect, sod_ssh::command::Effect::Read);
        let t = &ssh.target[0];
        assert_eq!(
            (t.name.get_ref().as_str(), t.port, t.user.as_str()),
            ("ssh/web-1", 22, "deploy")
        );
        assert_eq!(t.working_dir.as_deref(), Some("/home/deploy"));
        assert_eq!(t.home.as_deref(), Some("/home/deploy"));
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(10)));
        let k = &f.kubernetes[0];
        assert_eq!(k.target.get_ref(), "k8s/prod");
        assert_eq!(k.listen.get_ref().port(), 6443);
        assert!(k.kubeconfig.is_some() && k.context.as_deref() == Some("prod"));
        assert_eq!(
            (k.max_body, k.max_masked_answer),
            (Some(3 << 20), Some(64 << 20))
        );
        assert_eq!(
            (k.max_sessions, k.max_sessions_per_principal),
            (Some(100), Some(50))
        );
        assert_eq!(k.max_streams, Some(64));
        assert_eq!(k.max_connections, Some(1024));
        assert_eq!(k.handshake_timeout, Some(Duration::from_secs(10)));
        assert_eq!(k.shutdown_grace, Some(Duration::from_secs(10)));
    }

    #[test]
    fn defaults_apply_to_a_minimal_file() {
        let c = parse(MINIMAL).expect("loads");
        assert_eq!(c.file.log.format, LogFormat::Human);
        assert_eq!(c.file.audit.stream, "sod");
        assert!(c.file.postgres.is_empty() && c.file.approvals.http.is_none());
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let text = format!(
            "{MINIMAL}\n[[postgres]]\ntarget = \"pg/a\"\nlisten = \"127.0.0.1:1\"\nlisten_adress = 1\n[postgres.upstream]\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\n"
        );
        let e = parse(&text).expect_err("unknown key");
        let shown = e.to_string();
        assert!(shown.starts_with("/etc/sod/sod.toml:"), "{shown}");
        assert!(shown.contains("unknown field `listen_adress`"), "{shown}");
        assert_eq!(
            e.key.as_deref(),
            Some("postgres[0].listen_adress"),
            "{shown}"
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("listen_adress"))
            .expect("line")
            + 1;
        assert_eq!(e.position.map(|p| p.0), Some(line), "{shown}");
    }

    #[test]
    fn bad_types_and_values_name_the_key() {
        let bad_port = MINIMAL.to_owned()
            + "[[postgres]]\ntarget = \"pg/a\"\nlisten = \"127.0.0.1:1\"\n[postgres.upstream]\nhost = \"h\"\nport = \"five\"\ndatabase = \"d\"\nuser = \"u\"\n";
        let e = parse(&bad_port).expect_err("bad port");
        assert_eq!(e.key.as_deref(), Some("postgres[0].upstream.port"), "{e}");
        assert!(e.position.is_some(), "{e}");

        let bad_duration = MINIMAL.to_owned() + "[approvals]\nwait = \"soon\"\n";
        let e = parse(&bad_duration).expect_err("bad duration");
        assert_eq!(e.key.as_deref(), Some("approvals.wait"), "{e}");
        assert!(e.message.contains("soon"), "{e}");

        let bad_addr = MINIMAL.to_owned() + "[approvals.http]\nlisten = \"localhost\"\n";
        let e = parse(&bad_addr).expect_err("bad address");
        assert_eq!(e.key.as_deref(), Some("approvals.http.listen"), "{e}");

        let bad_enum = "[log]\nformat = \"xml\"\n".to_owned() + MINIMAL;
        let e = parse(&bad_enum).expect_err("bad format");
        assert_eq!(e.key.as_deref(), Some("log.format"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");

        let e = parse("[policy\nfile = 1").expect_err("not TOML");
        assert!(e.position.is_some(), "{e}");
    }

    #[test]
    fn missing_sections_and_cross_field_rules() {
        let e = parse("[policy]\nfile = \"p\"\n").expect_err("no identity");
        assert!(e.message.contains("identity"), "{e}");
        let no_verifier = MINIMAL.replace(
            "[identity.capabilities]\nkey_file = \"cap.key\"",
            "[identity]",
        );
        let e = parse(&no_verifier).expect_err("no verifier");
        assert!(e.message.contains("no way to verify"), "{e}");
        let both = MINIMAL.to_owned()
            + "[[postgres]]\ntarget = \"pg/a\"\nlisten = \"127.0.0.1:1\"\n[postgres.upstream]\nhost = \"h\"\nsocket_dir = \"/run\"\ndatabase = \"d\"\nuser = \"u\"\n";
        let e = parse(&both).expect_err("host and socket_dir");
        assert_eq!(e.key.as_deref(), Some("postgres[0].upstream"), "{e}");
        let twice = MINIMAL.to_owned()
            + &"[[postgres]]\ntarget = \"pg/a\"\nlisten = \"127.0.0.1:1\"\n[postgres.upstream]\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\n".repeat(2);
        let e = parse(&twice).expect_err("same target twice");
        assert_eq!(e.key.as_deref(), Some("postgres[1].target"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let e = Config::load("/nonexistent/sod.toml").expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/sod.toml: cannot read"),
            "{e}"
        );
        let c = parse(MINIMAL).expect("loads");
        let e = crate::assemble::policy(&c).expect_err("no policy file");
        let shown = e.to_string();
        assert!(
            shown.contains("/etc/sod/sod.toml:6:8: policy.file:"),
            "{shown}"
        );
        assert!(shown.contains("/etc/sod/policy.toml"), "{shown}");
        let Err(e) = crate::assemble::authority(&c) else {
            panic!("a missing key file must be an error");
        };
        assert!(
            e.to_string().contains("identity.capabilities.key_file"),
            "{e}"
        );
    }
}
