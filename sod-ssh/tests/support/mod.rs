//! An SSH gateway in front of a real OpenSSH `sshd`, with planner, executor and approver
//! identities, driven by the real OpenSSH clients.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use sod_approval::{ApprovalLayer, Broker, MemoryStore};
use sod_audit::testing::GatedSink;
use sod_audit::{CheckpointKey, Event, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifiers};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind};
use sod_ssh::{Gateway, HostKey, KnownHosts, SshTarget, TargetKey};
use sod_testkit::OidcIssuer;
use sod_testkit::ssh::{Client, Sshd};

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "sod-ssh";
pub const TARGET: &str = "ssh/web";

/// How long one client command may take before the test fails (never a hang).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The demo's shape: planners run reads (masked), never touch keys; writes and everything
/// else need an approver; executors run anything unmasked.
pub const POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"
reason = "sod does not understand this command"

[[rule]]
id = "no-secrets-for-planners"
effect = "deny"
principal_kinds = "planner"
objects = ["*key*", "*.pem", "*.env", "/etc/shadow"]
reason = "planners never read keys or secrets"

[[rule]]
id = "planners-read"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "standard"

[[rule]]
id = "planners-ask"
effect = "require_approval"
principal_kinds = "planner"
kinds = ["write", "exec", "transfer"]
approvers = "approvers"
mask = "standard"

[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "exec", "transfer", "admin"]
mask = "none"
"#;

pub const MASKS: &str = r#"
[[profile]]
name = "standard"
detectors = ["email", "private_key", "payment_card", "national_id", "jwt", "cloud_key"]
detector_strategy = "redact"
"#;

pub struct Options {
    pub policy: String,
    pub masks: String,
    /// How long a command waits for approval.
    pub approval_wait: Duration,
    pub max_channels: Option<usize>,
    /// The gateway's known_hosts text for the target's port (default: the fixture's own
    /// line).
    pub known_hosts: Option<fn(u16) -> String>,
    /// Where the gateway thinks the target is (default: the fixture's port).
    pub target_port: Option<u16>,
    pub handshake_timeout: Option<Duration>,
    /// Bytes of each stream recorded per operation (the rest is counted and hashed).
    pub transcript_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.to_owned(),
            masks: MASKS.to_owned(),
            approval_wait: Duration::from_millis(300),
            max_channels: None,
            known_hosts: None,
            target_port: None,
            handshake_timeout: None,
            transcript_limit: Some(64 * 1024 * 1024),
        }
    }
}

pub struct Harness {
    pub sshd: Sshd,
    /// The target's working directory: what commands see as `.`.
    pub home: tempfile::TempDir,
    pub authority: Arc<CapabilityAuthority>,
    pub idp: OidcIssuer,
    pub broker: Broker,
    pub audit: Arc<GatedSink>,
    pub port: u16,
    pub known_hosts_line: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Harness {
        let home = tempfile::Builder::new()
            .prefix("sod-ssh-home-")
            .tempdir()
            .expect("home");
        seed(home.path());
        let dir = home.path().to_owned();
        let sshd = tokio::task::spawn_blocking(move || {
            Sshd::builder()
                .working_dir(dir)
                .start()
                .expect("sshd starts")
        })
        .await
        .expect("join");
        let authority = Arc::new(CapabilityAuthority::new(
            "sod",
            CapabilityKey::generate("k1"),
        ));
        let idp = OidcIssuer::new(ISS, AUD);
        let oidc = OidcVerifier::new(OidcConfig::new(
            ISS,
            AUD,
            JwksSource::Static(idp.jwks().to_string()),
        ))
        .expect("oidc");
        let audit = Arc::new(GatedSink::new("ssh-test", CheckpointKey::generate("audit")));
        let broker = Broker::new(Arc::new(MemoryStore::new()));
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(
                Verifiers::new().with(oidc).with(authority.clone()),
            ))
            .layer(RecordingLayer::new(audit.clone()).transcript_limit(opts.transcript_limit))
            .layer(PolicyLayer::new(
                Policy::from_toml("policy.toml", &opts.policy).expect("policy"),
            ))
            .layer(ApprovalLayer::new(broker.clone(), opts.approval_wait))
            .layer(MaskingLayer::new(
                MaskProfiles::from_toml("masks.toml", &opts.masks).expect("masks"),
            ));
        let known_hosts = match opts.known_hosts {
            Some(text) => text(sshd.port()),
            None => sshd.known_hosts_line(),
        };
        let target = SshTarget::new(
            TARGET,
            "127.0.0.1",
            opts.target_port.unwrap_or(sshd.port()),
            sshd.user(),
            TargetKey::from_openssh("test key", sshd.client_private_key_openssh()).expect("key"),
            KnownHosts::parse("known_hosts", &known_hosts).expect("known hosts"),
        )
        .working_dir(home.path().display().to_string())
        .home(sshd.home().display().to_string());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let host_key = HostKey::generate().expect("host key");
        let known_hosts_line = host_key.known_hosts_line("127.0.0.1", port);
        let mut builder = Gateway::builder(listener, host_key, vec![target], stack)
            .shutdown_grace(Duration::from_secs(2));
        if let Some(n) = opts.max_channels {
            builder = builder.max_channels(n);
        }
        if let Some(t) = opts.handshake_timeout {
            builder = builder.handshake_timeout(t);
        }
        let gateway = builder.build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        Harness {
            sshd,
            home,
            authority,
            idp,
            broker,
            audit,
            port,
            known_hosts_line,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A capability for a planner allowed `kinds` on the ssh targets.
    pub fn planner(&self, kinds: &[OperationKind]) -> String {
        self.capability("planner-1", PrincipalKind::Agent(AgentRole::Planner), kinds)
    }

    /// The usual planner: connect, read, write, exec (policy decides the rest).
    pub fn planner_token(&self) -> String {
        use OperationKind::*;
        self.planner(&[Connect, Read, Write, Exec, Transfer, Forward])
    }

    pub fn executor_token(&self) -> String {
        use OperationKind::*;
        self.capability(
            "executor-1",
            PrincipalKind::Agent(AgentRole::Executor),
            &[Connect, Read, Write, Exec, Transfer, Admin, Forward],
        )
    }

    pub fn capability(&self, name: &str, kind: PrincipalKind, kinds: &[OperationKind]) -> String {
        self.authority
            .issue(
                CapabilitySpec::new(name, Duration::from_secs(600))
                    .kind(kind)
                    .targets(["ssh/*"])
                    .kinds(KindSet::of(kinds))
                    .on_behalf_of("alice"),
            )
            .expect("issue")
            .encode()
    }

    /// An OIDC token for a human approver.
    pub fn approver_token(&self) -> String {
        self.idp
            .token()
            .subject("bob")
            .kind("human")
            .groups(&["approvers"])
            .expires_in(600)
            .sign()
    }

    /// An OpenSSH client for the gateway, logging in as `user` with `token`.
    pub fn client(&self, user: &str, token: &str) -> Client {
        Client::new(self.port, user)
            .password(token)
            .known_hosts(&self.known_hosts_line)
    }

    /// Runs `command` through the gateway as `token`'s holder.
    pub fn ssh(&self, token: &str, command: &str) -> Output {
        let client = self.client("agent", token);
        run(&mut client.ssh(command))
    }

    /// Runs `command` on the target directly (not through the gateway).
    pub fn direct(&self, command: &str) -> Output {
        let client = self.sshd.client();
        run(&mut client.ssh(command))
    }

    /// A path in the target's working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Every event recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.audit.memory().events()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// The target's working directory: plain files, a fake private key under a name the policy
/// knows (`deploy_key`) and under one it does not (`id_ed25519`: only the detectors catch it),
/// a file with e-mail addresses and a card number, an `.env`.
pub fn seed(dir: &Path) {
    std::fs::write(
        dir.join("notes.txt"),
        "deploy on friday\nrollback plan: none\n",
    )
    .expect("seed");
    std::fs::write(
        dir.join("customers.csv"),
        "id,email,card\n1,alice@example.com,4539 1488 0343 6467\n2,bob@example.org,none\n",
    )
    .expect("seed");
    std::fs::write(dir.join("deploy_key"), FAKE_KEY).expect("seed");
    std::fs::write(dir.join("id_ed25519"), FAKE_KEY).expect("seed");
    std::fs::write(dir.join("notes-key.txt"), "not really a key").expect("seed");
    std::fs::write(
        dir.join(".env"),
        "DATABASE_URL=postgres://app:hunter2@db/app\n",
    )
    .expect("seed");
    std::fs::create_dir_all(dir.join("logs")).expect("seed");
    std::fs::write(dir.join("logs/app.log"), "started\nstopped\n").expect("seed");
}

/// A private key in OpenSSH's PEM armour (not a real key: the detector looks at the shape).
pub const FAKE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2UAAAAAAAAA
-----END OPENSSH PRIVATE KEY-----
";

/// Runs a client command with the test deadline.
pub fn run(command: &mut Command) -> Output {
    sod_testkit::ssh::run(command, DEADLINE).expect("the client runs within the deadline")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
