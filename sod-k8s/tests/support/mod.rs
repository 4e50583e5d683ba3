//! A Kubernetes gateway in front of sod-testkit's test API server (no real API server can be
//! installed here), with planner, executor and approver identities, driven by the real
//! `kubectl` and the `kube` client.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
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
use sod_k8s::Gateway;
use sod_testkit::k8s::TestApiServer;
use sod_testkit::{OidcIssuer, TestCa};

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "sod-k8s";
pub const TARGET: &str = "k8s/test";

/// How long one kubectl command may take before the test fails (never a hang).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The demo's shape: planners read everything in `default` (masked) and ask for changes;
/// executors read and write in `default` and ask for exec; admin, cluster-scoped writes and
/// forwarding are denied.
pub const POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"

[[rule]]
id = "k8s-no-admin"
effect = "deny"
kinds = ["admin", "schema"]
reason = "RBAC and friends change through reviewed manifests"

[[rule]]
id = "k8s-no-cluster-writes"
effect = "deny"
kinds = ["write", "exec"]
objects = "_cluster/*"

[[rule]]
id = "k8s-no-forwarding"
effect = "deny"
kinds = "forward"
reason = "port-forward carries data past every check"

[[rule]]
id = "connect"
effect = "allow"
kinds = "connect"

[[rule]]
id = "discovery"
effect = "allow"
kinds = "read"
text = '^(GET|HEAD) /(version|openapi/[^?]*|api|api/v1|apis|apis/[^/?]+|apis/[^/?]+/[^/?]+)(\?[^\n]*)?$'

[[rule]]
id = "access-reviews"
effect = "allow"
kinds = "read"
objects = "_cluster/authorization.k8s.io/*"

[[rule]]
id = "planner-reads"
effect = "allow"
principal_kinds = "planner"
kinds = "read"
objects = "default/*"
mask = "standard"

[[rule]]
id = "planner-changes"
effect = "require_approval"
principal_kinds = "planner"
kinds = ["write", "exec"]
objects = "default/*"
approvers = "approvers"
mask = "standard"

[[rule]]
id = "executor"
effect = "allow"
principal_kinds = "executor"
kinds = ["read", "write"]
objects = "default/*"
mask = "none"

[[rule]]
id = "executor-exec"
effect = "require_approval"
principal_kinds = "executor"
kinds = "exec"
objects = "default/*"
approvers = "approvers"
mask = "none"
"#;

pub const MASKS: &str = r#"
[[profile]]
name = "standard"
detectors = ["email", "private_key", "payment_card", "jwt", "cloud_key"]
detector_strategy = "redact"

[[profile.rule]]
column = "k8s.configmaps.data.database_host"
strategy = "redact"
"#;

pub struct Options {
    pub policy: String,
    pub approval_wait: Duration,
    pub watch_idle: Option<Duration>,
    pub max_streams: Option<usize>,
    pub max_connections: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.to_owned(),
            approval_wait: Duration::from_millis(300),
            watch_idle: None,
            max_streams: None,
            max_connections: None,
        }
    }
}

pub struct Harness {
    pub api: TestApiServer,
    pub authority: Arc<CapabilityAuthority>,
    pub idp: OidcIssuer,
    pub broker: Broker,
    pub audit: Arc<GatedSink>,
    pub port: u16,
    pub ca: TestCa,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A `kube` client from kubeconfig text.
pub async fn kube_client(kubeconfig: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Harness {
        let api = TestApiServer::start().await.expect("test API server");
        let upstream = kube_client(&api.kubeconfig_yaml()).await;
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
        let audit = Arc::new(GatedSink::new("k8s-test", CheckpointKey::generate("audit")));
        let broker = Broker::new(Arc::new(MemoryStore::new()));
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(
                Verifiers::new().with(oidc).with(authority.clone()),
            ))
            .layer(RecordingLayer::new(audit.clone()))
            .layer(PolicyLayer::new(
                Policy::from_toml("policy.toml", &opts.policy).expect("policy"),
            ))
            .layer(ApprovalLayer::new(broker.clone(), opts.approval_wait))
            .layer(MaskingLayer::new(
                MaskProfiles::from_toml("masks.toml", MASKS).expect("masks"),
            ));
        let ca = TestCa::new("sod-k8s test CA");
        let leaf = ca.issue(&["localhost"], &["127.0.0.1".parse().expect("ip")]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut builder = Gateway::builder(listener, leaf.server_config(), upstream, stack)
            .target(TARGET)
            .shutdown_grace(Duration::from_secs(2));
        if let Some(t) = opts.watch_idle {
            builder = builder.watch_idle(t);
        }
        if let Some(n) = opts.max_streams {
            builder = builder.max_streams(n);
        }
        if let Some(n) = opts.max_connections {
            builder = builder.max_connections(n);
        }
        let gateway = builder.build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        let dir = tempfile::Builder::new()
            .prefix("sod-k8s-test-")
            .tempdir()
            .expect("dir");
        Harness {
            api,
            authority,
            idp,
            broker,
            audit,
            port,
            ca,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn planner_token(&self) -> String {
        use OperationKind::*;
        self.capability(
            "planner-1",
            PrincipalKind::Agent(AgentRole::Planner),
            &[Connect, Read, Write, Exec, Admin, Schema, Forward],
        )
    }

    pub fn executor_token(&self) -> String {
        use OperationKind::*;
        self.capability(
            "executor-1",
            PrincipalKind::Agent(AgentRole::Executor),
            &[Connect, Read, Write, Exec, Admin, Schema, Forward],
        )
    }

    pub fn capability(&self, name: &str, kind: PrincipalKind, kinds: &[OperationKind]) -> String {
        self.authority
            .issue(
                CapabilitySpec::new(name, Duration::from_secs(600))
                    .kind(kind)
                    .targets(["k8s/*"])
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

    /// A kubeconfig for the gateway with `token`.
    pub fn kubeconfig(&self, token: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.cert_pem());
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: sod
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: agent
  user:
    token: {token}
contexts:
- name: agent@sod
  context:
    cluster: sod
    user: agent
    namespace: default
current-context: agent@sod
",
            port = self.port
        )
    }

    /// The kubeconfig written to a file.
    pub fn kubeconfig_file(&self, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!(
            "{}.kubeconfig",
            &sod_core::hex::encode(&sod_core::hex::random::<8>())
        ));
        std::fs::write(&path, self.kubeconfig(token)).expect("kubeconfig");
        path
    }

    /// `kubectl ARGS` with `token`, through the gateway.
    pub fn kubectl_command(&self, token: &str, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig_file(token))
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS");
        command
    }

    /// Runs `kubectl ARGS` with `token`, through the gateway, with the test deadline.
    pub fn kubectl(&self, token: &str, args: &[&str]) -> Output {
        run(&mut self.kubectl_command(token, args))
    }

    /// A `kube` client for the gateway with `token`.
    pub async fn kube(&self, token: &str) -> kube::Client {
        kube_client(&self.kubeconfig(token)).await
    }

    /// Every event recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.audit.memory().events()
    }

    /// Whether the transcript of some operation has `text` on `stream` (`o`, `e`, `i`, `r`).
    pub fn recorded(&self, stream: &str, text: &str) -> bool {
        self.events().iter().any(|e| {
            matches!(e, Event::TerminalOutput { stream: s, data, .. } if s == stream && data.contains(text))
        })
    }

    /// Waits until an operation's outcome with error code `code` is in the audit log.
    pub fn wait_for_outcome(&self, code: &str) {
        sod_testkit::poll::poll_until(DEADLINE, "the operation's outcome", || {
            self.events()
                .iter()
                .any(|e| matches!(e, Event::OperationCompleted { error_code: Some(c), .. } if c == code))
                .then_some(())
        });
    }

    /// Approves every pending request as the approver; returns their texts.
    pub async fn approve_all(&self) -> Vec<String> {
        let bob =
            sod_core::Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["approvers"]);
        let pending = self.broker.pending().await.expect("pending");
        let mut texts = Vec::new();
        for request in &pending {
            self.broker
                .decide(&request.id, &bob, true, None)
                .await
                .expect("approve");
            texts.push(request.operation.text.clone());
        }
        texts
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

/// Runs a command with the test deadline.
pub fn run(command: &mut Command) -> Output {
    sod_testkit::ssh::run(command, DEADLINE).expect("kubectl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing stderr otherwise.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stderr(o), stdout(o));
    stdout(o)
}
