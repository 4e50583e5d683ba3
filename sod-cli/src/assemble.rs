//! From a [`Config`] to running gateways: verifiers, policy, masks, audit log, approvals, one
//! PostgreSQL gateway per `[[postgres]]` and one SSH gateway per `[[ssh]]`, each wrapped by the
//! same stack:
//!
//! ```text
//! IdentityLayer ─► RecordingLayer ─► PolicyLayer ─► ApprovalLayer ─► MaskingLayer ─► upstream
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sod_approval::{
    ApprovalApi, ApprovalLayer, Broker, FileStore, MemoryStore, Notification, Notifier, Store,
    TracingNotifier, WebhookNotifier,
};
use sod_audit::{AuditSink, Durability, Event, FileSink, FileSinkOptions, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, RevocationFile, Revocations};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifier, Verifiers};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{BoxError, Target};
use sod_postgres::credentials::{
    CredentialSource, CredentialsFuture, EnvCredentials, FileCredentials, StaticCredentials,
};
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener, Plaintext};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{
    Config, ConfigError, KubernetesConfig, PlaintextChoice, PostgresConfig, SshConfig,
};
use crate::keys;

/// Default time a statement waits for approval.
pub const DEFAULT_APPROVAL_WAIT: Duration = Duration::from_secs(30);

/// The capability authority of `[identity.capabilities]`, if configured.
pub fn authority(config: &Config) -> Result<Option<CapabilityAuthority>, ConfigError> {
    let Some(caps) = &config.file.identity.capabilities else {
        return Ok(None);
    };
    let src = &config.source;
    let key = keys::capability_key(&src.path(&caps.key_file), &caps.key_id).map_err(|e| {
        src.error(
            Some(caps.key_file.span()),
            "identity.capabilities.key_file",
            e.to_string(),
        )
    })?;
    let mut authority = CapabilityAuthority::new(caps.issuer.clone(), key);
    if let Some(ttl) = caps.max_ttl {
        authority = authority.max_ttl(ttl);
    }
    if let Some((file, list)) = revocations(config)? {
        tracing::debug!(file = %file.path().display(), "capability revocation list loaded");
        authority = authority.revocations(list);
    }
    Ok(Some(authority))
}

/// How often a running gateway reloads the revocation list.
pub const REVOCATION_RELOAD: Duration = Duration::from_secs(1);

/// The revocation file of `[identity.capabilities]` and the list it holds now, if configured.
pub fn revocations(config: &Config) -> Result<Option<(RevocationFile, Revocations)>, ConfigError> {
    let Some(path) = config
        .file
        .identity
        .capabilities
        .as_ref()
        .and_then(|c| c.revocation_file.as_ref())
    else {
        return Ok(None);
    };
    let src = &config.source;
    let file = RevocationFile::new(src.path(path));
    let list = Revocations::load(file.path()).map_err(|e| {
        src.error(
            Some(path.span()),
            "identity.capabilities.revocation_file",
            e.to_string(),
        )
    })?;
    Ok(Some((file, list)))
}

/// Every configured verifier, capabilities first.
pub fn verifiers(config: &Config) -> Result<Verifiers, ConfigError> {
    Ok(identity(config)?.0)
}

/// Every configured verifier, capabilities first, and the capability authority's revocation
/// list (for [`Revocations::watch`]).
fn identity(config: &Config) -> Result<(Verifiers, Option<Revocations>), ConfigError> {
    let src = &config.source;
    let mut chain = Verifiers::new();
    let mut revoked = None;
    if let Some(authority) = authority(config)? {
        revoked = authority.revocation_list().cloned();
        chain = chain.with(authority);
    }
    for (i, o) in config.file.identity.oidc.iter().enumerate() {
        let key = |k: &str| format!("identity.oidc[{i}].{k}");
        let jwks =
            match (&o.jwks_url, &o.jwks_file) {
                (Some(url), None) => JwksSource::Https {
                    url: url.clone(),
                    tls: match &o.ca_file {
                        Some(ca) => Some(client_tls(&src.path(ca)).map_err(|e| {
                            src.error(Some(ca.span()), key("ca_file"), e.to_string())
                        })?),
                        None => None,
                    },
                },
                (None, Some(file)) => JwksSource::File(src.path(file)),
                _ => {
                    return Err(src.error(
                        None,
                        format!("identity.oidc[{i}]"),
                        "give jwks_url or jwks_file (one of them)",
                    ));
                }
            };
        let Some((first, rest)) = o.audiences.split_first() else {
            return Err(src.error(None, key("audiences"), "name at least one audience"));
        };
        let mut c = OidcConfig::new(o.issuer.clone(), first.clone(), jwks);
        c.audiences.extend(rest.iter().cloned());
        if let Some(v) = &o.subject_claim {
            c.subject_claim = v.clone();
        }
        if let Some(v) = &o.groups_claim {
            c.groups_claim = Some(v.clone());
        }
        if let Some(v) = &o.on_behalf_of_claim {
            c.on_behalf_of_claim = Some(v.clone());
        }
        if let Some(v) = &o.kind_claim {
            c.kind_claim = Some(v.clone());
        }
        c.default_kind = o.default_kind.map(Into::into);
        if let Some(v) = o.leeway {
            c.leeway = v;
        }
        let verifier = OidcVerifier::new(c)
            .map_err(|e| src.error(None, format!("identity.oidc[{i}]"), e.to_string()))?;
        chain = chain.with(verifier);
    }
    Ok((chain, revoked))
}

/// The policy of `[policy].file`.
pub fn policy(config: &Config) -> Result<Policy, ConfigError> {
    let p = &config.file.policy;
    let src = &config.source;
    let path = src.path(&p.file);
    // The policy's own error names its file, line and rule.
    Policy::from_file(&path)
        .map_err(|e| src.error(Some(p.file.span()), "policy.file", e.to_string()))
}

/// The mask profiles of `[policy].masks` (none when not configured); every profile the policy
/// names must exist.
pub fn masks(config: &Config, policy: &Policy) -> Result<MaskProfiles, ConfigError> {
    let p = &config.file.policy;
    let src = &config.source;
    let mut profiles = match &p.masks {
        Some(file) => {
            let text = String::from_utf8(src.read(file, "policy.masks")?).map_err(|_| {
                src.error(Some(file.span()), "policy.masks", "the file is not UTF-8")
            })?;
            let origin = src.path(file).display().to_string();
            MaskProfiles::from_toml(&origin, &text)
                .map_err(|e| src.error(Some(file.span()), "policy.masks", e.to_string()))?
        }
        None => MaskProfiles::new([]),
    };
    if let Some(file) = &p.hash_key_file {
        let key = keys::read_secret(&src.path(file))
            .map_err(|e| src.error(Some(file.span()), "policy.hash_key_file", e.to_string()))?;
        profiles = profiles.with_hash_key(&key);
    }
    if let Some(missing) = policy
        .referenced_masks()
        .into_iter()
        .find(|m| !profiles.contains(m))
    {
        return Err(src.error(
            Some(p.file.span()),
            "policy.file",
            format!(
                "the policy names mask profile `{missing}`, which policy.masks does not define"
            ),
        ));
    }
    Ok(profiles)
}

/// Writes every approval decision (who, yes or no, comment) into the audit log as an
/// [`Event::ApprovalDecided`], so the log names the approver next to the operation whose
/// record names the approval id. sod-approval and sod-audit do not know each other; this is
/// where they meet.
///
/// The broker tells notifiers after the decision is stored, from a task of its own: the
/// record follows the decision within moments, written with [`Durability::Fsync`]. A record
/// that cannot be written is logged as an error (the decision stands in the approval store).
///
/// ```
/// use std::sync::Arc;
/// use sod_approval::{Broker, MemoryStore};
/// use sod_audit::{CheckpointKey, MemorySink};
/// use sod_cli::assemble::AuditNotifier;
///
/// let audit = Arc::new(MemorySink::new("gw-1", CheckpointKey::generate("audit-1")));
/// let broker = Broker::new(Arc::new(MemoryStore::new()))
///     .notifier(Arc::new(AuditNotifier::new(audit)));
/// # let _ = broker;
/// ```
pub struct AuditNotifier {
    sink: Arc<dyn AuditSink>,
}

impl AuditNotifier {
    /// Records decisions into `sink`.
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self { sink }
    }
}

impl Notifier for AuditNotifier {
    fn notify(&self, event: &Notification) -> futures_util::future::BoxFuture<'_, ()> {
        let Notification::Decided {
            request,
            approver,
            approve,
            comment,
        } = event
        else {
            // Requests and uses are in the operation records already.
            return Box::pin(std::future::ready(()));
        };
        let record = Event::ApprovalDecided {
            approval: request.id.to_string(),
            approver: approver.clone(),
            approved: *approve,
            comment: comment.clone(),
        };
        Box::pin(async move {
            if let Err(e) = self.sink.append(record, Durability::Fsync).await {
                tracing::error!(error = %e, "audit log: cannot record an approval decision");
            }
        })
    }
}

/// What [`start`] has running.
pub struct Running {
    tasks: JoinSet<Result<(), BoxError>>,
    stop: watch::Sender<bool>,
    audit: Arc<FileSink>,
    /// Addresses of the PostgreSQL gateways, in `[[postgres]]` order.
    pub postgres: Vec<(Target, SocketAddr)>,
    /// Addresses of the SSH gateways, in `[[ssh]]` order.
    pub ssh: Vec<SocketAddr>,
    /// Addresses of the Kubernetes gateways, in `[[kubernetes]]` order.
    pub kubernetes: Vec<SocketAddr>,
    /// Address of the approvals API, if configured.
    pub approvals: Option<SocketAddr>,
}

/// Builds everything the config describes, binds every listener and starts serving.
pub async fn start(config: &Config) -> Result<Running, BoxError> {
    let f = &config.file;
    let src = &config.source;
    let (verifiers, revoked) = identity(config)?;
    let verifier: Arc<Verifiers> = Arc::new(verifiers);
    let policy = policy(config)?;
    let masks = masks(config, &policy)?;

    let audit_key =
        keys::checkpoint_key(&src.path(&f.audit.key_file), &f.audit.key_id).map_err(|e| {
            src.error(
                Some(f.audit.key_file.span()),
                "audit.key_file",
                e.to_string(),
            )
        })?;
    let mut options = FileSinkOptions::new(f.audit.stream.clone(), audit_key);
    if let Some(n) = f.audit.checkpoint_every {
        options = options.checkpoint_every(n);
    }
    if let Some(n) = f.audit.max_segment_bytes {
        options = options.max_segment_bytes(n);
    }
    let audit_dir = src.path(&f.audit.dir);
    let (audit, opened) = FileSink::open(&audit_dir, options).map_err(|e| {
        src.error(
            Some(f.audit.dir.span()),
            "audit.dir",
            format!("cannot open the audit log in {}: {e}", audit_dir.display()),
        )
    })?;
    if let Some(torn) = opened.torn {
        tracing::warn!(segment = %torn.segment.display(), "audit log: cut off a torn last record");
    }
    let audit = Arc::new(audit);

    let store: Arc<dyn Store> = match &f.approvals.store {
        Some(path) => Arc::new(
            FileStore::open(src.path(path))
                .map_err(|e| src.error(Some(path.span()), "approvals.store", e.to_string()))?,
        ),
        None => Arc::new(MemoryStore::new()),
    };
    let mut broker = Broker::new(store)
        .notifier(Arc::new(TracingNotifier))
        .notifier(Arc::new(AuditNotifier::new(audit.clone())))
        .require_justification(f.approvals.require_justification)
        .max_pending_per_requester(
            f.approvals
                .max_pending_per_requester
                .unwrap_or(Broker::DEFAULT_MAX_PENDING),
        );
    if let Some(hook) = &f.approvals.webhook {
        let secret = keys::read_secret(&src.path(&hook.secret_file)).map_err(|e| {
            src.error(
                Some(hook.secret_file.span()),
                "approvals.webhook.secret_file",
                e.to_string(),
            )
        })?;
        let notifier = WebhookNotifier::new(hook.url.get_ref(), secret).map_err(|e| {
            src.error(
                Some(hook.url.span()),
                "approvals.webhook.url",
                e.to_string(),
            )
        })?;
        broker = broker.notifier(Arc::new(notifier));
    }
    let wait = f.approvals.wait.unwrap_or(DEFAULT_APPROVAL_WAIT);

    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(verifier.clone()))
        .layer(RecordingLayer::new(audit.clone()))
        .layer(PolicyLayer::new(policy))
        .layer(ApprovalLayer::new(broker.clone(), wait))
        .layer(MaskingLayer::new(masks));

    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if let (Some(list), Some((file, _))) = (revoked, revocations(config)?) {
        // Reloads the list until the gateway stops; revoked capabilities' sessions end.
        let stopped = stopped.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = list.watch(file, REVOCATION_RELOAD) => {}
                () = signalled(stopped) => {}
            }
            Ok(())
        });
    }
    let mut postgres = Vec::new();
    for (i, pg) in f.postgres.iter().enumerate() {
        let at = |k: &str| format!("postgres[{i}].{k}");
        let listener = TcpListener::bind(pg.listen.get_ref()).await.map_err(|e| {
            src.error(
                Some(pg.listen.span()),
                at("listen"),
                format!("cannot listen on {}: {e}", pg.listen.get_ref()),
            )
        })?;
        let target = Target::new(pg.target.get_ref().clone());
        let upstream = upstream(config, i, pg)?;
        let credentials = credentials(config, pg);
        let mut builder = Gateway::builder(
            target.clone(),
            Listener::Tcp(listener),
            upstream,
            credentials,
            stack.clone(),
        )
        .plaintext(match pg.plaintext {
            PlaintextChoice::Never => Plaintext::Never,
            PlaintextChoice::Loopback => Plaintext::LoopbackOnly,
            PlaintextChoice::Always => Plaintext::Always,
        });
        if let (Some(cert), Some(key)) = (&pg.tls_cert, &pg.tls_key) {
            let tls = server_tls(&src.path(cert), &src.path(key))
                .map_err(|e| src.error(Some(cert.span()), at("tls_cert"), e.to_string()))?;
            builder = builder.tls(tls);
        }
        if let Some(n) = pg.max_connections {
            builder = builder.max_connections(n);
        }
        if let Some(n) = pg.max_sessions_per_principal {
            builder = builder.max_sessions_per_principal(n);
        }
        if pg.max_startup.is_some() || pg.max_startup_per_address.is_some() {
            builder = builder.max_startup(
                pg.max_startup.unwrap_or(128),
                pg.max_startup_per_address.unwrap_or(32),
            );
        }
        if let Some(n) = pg.max_statement {
            builder = builder.max_statement(n);
        }
        if let Some(n) = pg.pool_size {
            builder = builder.pool_size(n);
        }
        if let Some(t) = pg.pool_idle_timeout {
            builder = builder.pool_idle_timeout(t);
        }
        if let Some(t) = pg.client_write_timeout {
            builder = builder.client_write_timeout((!t.is_zero()).then_some(t));
        }
        if let Some(t) = pg.idle_timeout {
            builder = builder.idle_timeout((!t.is_zero()).then_some(t));
        }
        if let Some(t) = pg.startup_timeout {
            builder = builder.startup_timeout(t);
        }
        if let Some(t) = pg.shutdown_grace {
            builder = builder.shutdown_grace(t);
        }
        let gateway = builder.build();
        let addr = gateway
            .local_addr()
            .ok_or("a TCP listener has an address")?;
        tracing::info!(target_name = %target, %addr, "PostgreSQL gateway listening");
        postgres.push((target, addr));
        let stopped = stopped.clone();
        tasks.spawn(async move {
            gateway.serve(signalled(stopped)).await?;
            Ok(())
        });
    }

    let mut ssh = Vec::new();
    for (i, section) in f.ssh.iter().enumerate() {
        let gateway = ssh_gateway(config, i, section, stack.clone()).await?;
        let addr = gateway.local_addr()?;
        tracing::info!(%addr, targets = section.target.len(), "SSH gateway listening");
        ssh.push(addr);
        let stopped = stopped.clone();
        tasks.spawn(async move {
            gateway.serve(signalled(stopped)).await?;
            Ok(())
        });
    }

    let mut kubernetes = Vec::new();
    for (i, section) in f.kubernetes.iter().enumerate() {
        let gateway = k8s_gateway(config, i, section, stack.clone()).await?;
        let addr = gateway.local_addr()?;
        tracing::info!(%addr, target_name = %section.target.get_ref(), "Kubernetes gateway listening");
        kubernetes.push(addr);
        let stopped = stopped.clone();
        tasks.spawn(async move {
            gateway.serve(signalled(stopped)).await?;
            Ok(())
        });
    }

    let mut approvals = None;
    if let Some(http) = &f.approvals.http {
        let listener = TcpListener::bind(http.listen.get_ref())
            .await
            .map_err(|e| {
                src.error(
                    Some(http.listen.span()),
                    "approvals.http.listen",
                    format!("cannot listen on {}: {e}", http.listen.get_ref()),
                )
            })?;
        let addr = listener.local_addr()?;
        let tls = match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => {
                Some(server_tls(&src.path(cert), &src.path(key)).map_err(|e| {
                    src.error(Some(cert.span()), "approvals.http.tls_cert", e.to_string())
                })?)
            }
            _ => None,
        };
        if tls.is_none() && !http.allow_plaintext && !sod_core::https::plain_listener_allowed(&addr)
        {
            return Err(src
                .error(
                    Some(http.listen.span()),
                    "approvals.http.listen",
                    "plain HTTP only on a loopback address: set tls_cert and tls_key, or allow_plaintext behind a TLS proxy",
                )
                .into());
        }
        let api = ApprovalApi::new(broker.clone(), verifier.clone() as Arc<dyn Verifier>)
            .allow_plaintext(http.allow_plaintext);
        tracing::info!(%addr, tls = tls.is_some(), "approvals API listening");
        approvals = Some(addr);
        let stopped = stopped.clone();
        tasks.spawn(async move {
            api.serve(listener, tls, signalled(stopped)).await?;
            Ok(())
        });
    }
    Ok(Running {
        tasks,
        stop,
        audit,
        postgres,
        ssh,
        kubernetes,
        approvals,
    })
}

impl Running {
    /// Serves until `shutdown` resolves or a server fails; then stops everything gracefully
    /// (sessions get their grace period) and closes the audit log.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BoxError> {
        let mut failure: Option<BoxError> = None;
        tokio::select! {
            () = shutdown => {}
            done = self.tasks.join_next() => {
                failure = Some(match done {
                    Some(Ok(Err(e))) => e,
                    Some(Err(e)) => e.into(),
                    _ => "a server stopped unexpectedly".into(),
                });
            }
        }
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(e.into());
                }
            }
        }
        // Sign the tail: a log closed by a graceful shutdown verifies as signed to its end.
        if let Err(e) = self.audit.checkpoint().await {
            tracing::error!(error = %e, "audit log: cannot write the final checkpoint");
            failure.get_or_insert(e.into());
        }
        self.audit.close();
        failure.map_or(Ok(()), Err)
    }
}

/// The Kubernetes gateway of `[[kubernetes]]` number `i`: TLS, the executor's credentials
/// (read now, so a bad kubeconfig is an error at start), bounds.
async fn k8s_gateway<L>(
    config: &Config,
    i: usize,
    section: &KubernetesConfig,
    stack: L,
) -> Result<sod_k8s::Gateway<L>, BoxError> {
    let src = &config.source;
    let at = |k: &str| format!("kubernetes[{i}].{k}");
    let tls = server_tls(&src.path(&section.tls_cert), &src.path(&section.tls_key))
        .map_err(|e| src.error(Some(section.tls_cert.span()), at("tls_cert"), e.to_string()))?;
    let upstream = match &section.kubeconfig {
        Some(file) => {
            let bad = |e: String| src.error(Some(file.span()), at("kubeconfig"), e);
            let kubeconfig = kube::config::Kubeconfig::read_from(src.path(file))
                .map_err(|e| bad(e.to_string()))?;
            let options = kube::config::KubeConfigOptions {
                context: section.context.clone(),
                ..Default::default()
            };
            let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| bad(e.to_string()))?;
            kube::Client::try_from(client_config).map_err(|e| bad(e.to_string()))?
        }
        None => kube::Client::try_default().await.map_err(|e| {
            src.error(
                Some(section.target.span()),
                at("kubeconfig"),
                format!("no kubeconfig given and no default credentials: {e}"),
            )
        })?,
    };
    let listener = TcpListener::bind(section.listen.get_ref())
        .await
        .map_err(|e| {
            src.error(
                Some(section.listen.span()),
                at("listen"),
                format!("cannot listen on {}: {e}", section.listen.get_ref()),
            )
        })?;
    let mut builder =
        sod_k8s::Gateway::builder(listener, tls, upstream, stack).target(section.target.get_ref());
    if let Some(n) = section.max_body {
        builder = builder.max_body(n);
    }
    if let Some(n) = section.max_masked_answer {
        builder = builder.max_masked_answer(n);
    }
    if let Some(n) = section.max_streams {
        builder = builder.max_streams(n);
    }
    if let Some(n) = section.max_connections {
        builder = builder.max_connections(n);
    }
    if section.max_sessions.is_some() || section.max_sessions_per_principal.is_some() {
        builder = builder.max_sessions(
            section.max_sessions.unwrap_or(100),
            section.max_sessions_per_principal.unwrap_or(50),
        );
    }
    if let Some(t) = section.handshake_timeout {
        builder = builder.handshake_timeout(t);
    }
    if let Some(t) = section.shutdown_grace {
        builder = builder.shutdown_grace(t);
    }
    Ok(builder.build())
}

/// The SSH gateway of `[[ssh]]` number `i`: host key, targets (keys and known_hosts read now,
/// so a bad file is an error at start), program table, bounds.
async fn ssh_gateway<L>(
    config: &Config,
    i: usize,
    section: &SshConfig,
    stack: L,
) -> Result<sod_ssh::Gateway<L>, BoxError> {
    let src = &config.source;
    let at = |k: &str| format!("ssh[{i}].{k}");
    let host_key = sod_ssh::HostKey::from_file(src.path(&section.host_key))
        .map_err(|e| src.error(Some(section.host_key.span()), at("host_key"), e.to_string()))?;
    let mut targets = Vec::new();
    for (j, t) in section.target.iter().enumerate() {
        let at = |k: &str| format!("ssh[{i}].target[{j}].{k}");
        let key = sod_ssh::TargetKey::from_file(src.path(&t.key_file))
            .map_err(|e| src.error(Some(t.key_file.span()), at("key_file"), e.to_string()))?;
        let known_hosts = sod_ssh::KnownHosts::from_file(src.path(&t.known_hosts))
            .map_err(|e| src.error(Some(t.known_hosts.span()), at("known_hosts"), e.to_string()))?;
        let mut target = sod_ssh::SshTarget::new(
            t.name.get_ref(),
            t.host.clone(),
            t.port,
            t.user.clone(),
            key,
            known_hosts,
        );
        if let Some(dir) = &t.working_dir {
            target = target.working_dir(dir.clone());
        }
        if let Some(dir) = &t.home {
            target = target.home(dir.clone());
        }
        if let Some(d) = t.connect_timeout {
            target = target.connect_timeout(d);
        }
        targets.push(target);
    }
    let mut programs = sod_ssh::command::Programs::builtin();
    for p in &section.program {
        programs = programs.with(&p.name, p.effect);
    }
    let listener = TcpListener::bind(section.listen.get_ref())
        .await
        .map_err(|e| {
            src.error(
                Some(section.listen.span()),
                at("listen"),
                format!("cannot listen on {}: {e}", section.listen.get_ref()),
            )
        })?;
    let mut builder =
        sod_ssh::Gateway::builder(listener, host_key, targets, stack).programs(programs);
    if let Some(n) = section.max_sessions {
        builder = builder.max_sessions(n);
    }
    if let Some(n) = section.max_sessions_per_principal {
        builder = builder.max_sessions_per_principal(n);
    }
    if section.max_startup.is_some() || section.max_startup_per_address.is_some() {
        builder = builder.max_startup(
            section.max_startup.unwrap_or(128),
            section.max_startup_per_address.unwrap_or(32),
        );
    }
    if let Some(n) = section.max_channels {
        builder = builder.max_channels(n);
    }
    if let Some(t) = section.handshake_timeout {
        builder = builder.handshake_timeout(t);
    }
    if let Some(t) = section.keepalive {
        builder = builder.keepalive(t);
    }
    if let Some(names) = &section.env_allow {
        builder = builder.env_allow(names);
    }
    if let Some(n) = section.masked_file_limit {
        builder = builder.masked_file_limit(n);
    }
    if let Some(t) = section.shutdown_grace {
        builder = builder.shutdown_grace(t);
    }
    Ok(builder.build())
}

async fn signalled(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

fn upstream(config: &Config, i: usize, pg: &PostgresConfig) -> Result<UpstreamConfig, ConfigError> {
    let src = &config.source;
    let u = &pg.upstream;
    let mut up = if let Some(host) = &u.host {
        UpstreamConfig::tcp(host.clone(), u.port, u.database.clone())
    } else if let Some(dir) = &u.socket_dir {
        UpstreamConfig::unix(src.path(dir), u.port, u.database.clone())
    } else {
        return Err(src.error(
            None,
            format!("postgres[{i}].upstream"),
            "give host or socket_dir",
        ));
    };
    if let Some(ca) = &u.tls_ca_file {
        let key = format!("postgres[{i}].upstream.tls_ca_file");
        let tls = client_tls(&src.path(ca))
            .map_err(|e| src.error(Some(ca.span()), &key, e.to_string()))?;
        let name = u
            .tls_server_name
            .clone()
            .or_else(|| u.host.clone())
            .unwrap_or_default();
        let name = ServerName::try_from(name.clone()).map_err(|_| {
            src.error(
                None,
                format!("postgres[{i}].upstream.tls_server_name"),
                format!("`{name}` is not a valid server name"),
            )
        })?;
        up = up.with_tls(tls, name);
    }
    up.allow_cleartext_password = u.allow_cleartext_password;
    if let Some(t) = u.connect_timeout {
        up.connect_timeout = t;
    }
    Ok(up)
}

/// Where an upstream's password comes from.
enum Credentials {
    File(FileCredentials),
    Env(EnvCredentials),
    NoPassword(StaticCredentials),
}

impl CredentialSource for Credentials {
    fn credentials(&self) -> CredentialsFuture<'_> {
        match self {
            Credentials::File(c) => c.credentials(),
            Credentials::Env(c) => c.credentials(),
            Credentials::NoPassword(c) => c.credentials(),
        }
    }
}

fn credentials(config: &Config, pg: &PostgresConfig) -> Credentials {
    let u = &pg.upstream;
    match (&u.password_file, &u.password_env) {
        (Some(file), _) => Credentials::File(FileCredentials::new(
            u.user.clone(),
            config.source.path(file),
        )),
        (None, Some(var)) => Credentials::Env(EnvCredentials::password_of(u.user.clone(), var)),
        (None, None) => Credentials::NoPassword(StaticCredentials::new(u.user.clone(), None)),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration from PEM files.
pub fn server_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A client configuration trusting the PEM roots in `ca`.
pub fn client_tls(ca: &Path) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("cannot read {}: {e}", ca.display()))?
    {
        roots.add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", ca.display()).into());
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sod_approval::{ApprovalRequest, Requester};
    use sod_audit::{CheckpointKey, MemorySink};
    use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};
    use sod_testkit::poll::poll_until_async;

    use super::*;

    #[tokio::test]
    async fn approval_decisions_are_recorded_in_the_audit_log() {
        let audit = Arc::new(MemorySink::new("t", CheckpointKey::generate("k")));
        let broker = Broker::new(Arc::new(MemoryStore::new()))
            .notifier(Arc::new(AuditNotifier::new(audit.clone())));
        let op =
            Operation::builder(Target::new("pg/t"), OperationKind::Write, "DELETE FROM t").build();
        let id = broker
            .submit(ApprovalRequest::new(
                Requester::new("planner-1"),
                &op,
                vec!["dba".into()],
                1,
                Duration::from_secs(60),
            ))
            .await
            .expect("submitted");
        let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"]);
        broker
            .decide(&id, &bob, false, Some("too broad".into()))
            .await
            .expect("decided");
        let recorded = poll_until_async(Duration::from_secs(5), "the decision record", || {
            let events = audit.events();
            async move {
                events
                    .into_iter()
                    .find(|e| matches!(e, Event::ApprovalDecided { .. }))
            }
        })
        .await;
        assert_eq!(
            recorded,
            Event::ApprovalDecided {
                approval: id.to_string(),
                approver: "bob".into(),
                approved: false,
                comment: Some("too broad".into()),
            }
        );
        // Only decisions: the request itself is not an audit event of its own.
        assert_eq!(audit.events().len(), 1);
    }
}
