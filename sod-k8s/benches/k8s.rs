//! Whole-path benchmark of the Kubernetes gateway against the same test API server reached
//! directly, in one run (sod-testkit's test API server: no real API server can be installed
//! here, so absolute figures are the test server's; the difference is the gateway's):
//!
//! - `get` and `list` latency, p50 and p99 over `SOD_BENCH_RUNS` requests (default 400), with
//!   the `kube` client: directly, through sod as the executor (unmasked), and as the planner
//!   (Secrets and configured paths masked). Every request through sod passes the whole stack:
//!   identity, recording to a real file audit log at its default durability, policy, the
//!   approval layer (nothing to approve) and masking;
//! - watch events per second: `SOD_BENCH_EVENTS` (default 2 000) ConfigMap changes watched
//!   directly and through sod (masked);
//! - exec set-up: `kube`'s exec of `true` over WebSocket, from the request to the exit status,
//!   directly and through sod (p50 over `SOD_BENCH_EXECS`, default 20).
//!
//! Rounds alternate (`SOD_BENCH_ROUNDS`, default 2) so the paths share the machine's
//! conditions. Run with `cargo xtask bench k8s`.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{AttachParams, WatchEvent, WatchParams};
use sod_approval::{ApprovalLayer, Broker, MemoryStore};
use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind};
use sod_k8s::Gateway;
use sod_testkit::TestCa;
use sod_testkit::k8s::TestApiServer;

const POLICY: &str = r#"
[[rule]]
id = "connect"
effect = "allow"
kinds = "connect"

[[rule]]
id = "planner-reads"
effect = "allow"
principal_kinds = "planner"
kinds = "read"
objects = "default/*"
mask = "standard"

[[rule]]
id = "executor"
effect = "allow"
principal_kinds = "executor"
kinds = ["read", "write", "exec"]
objects = "default/*"
mask = "none"
"#;

const MASKS: &str = r#"
[[profile]]
name = "standard"
detectors = ["email", "private_key", "payment_card", "jwt", "cloud_key"]

[[profile.rule]]
column = "k8s.configmaps.data.database_host"
strategy = "redact"
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn client(kubeconfig: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn kubeconfig(port: u16, ca_pem: &str, token: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sod\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: sod\n    user: u\ncurrent-context: c\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latencies of `runs` calls of `f`, sorted.
async fn latencies<F, Fut>(runs: u64, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut all = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        all.push(started.elapsed());
    }
    all.sort();
    all
}

#[derive(Default)]
struct Row {
    samples: Vec<Duration>,
}

impl Row {
    fn add(&mut self, more: Vec<Duration>) {
        self.samples.extend(more);
        self.samples.sort();
    }
    fn p(&self, p: f64) -> Duration {
        percentile(&self.samples, p)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn watch_rate(api: &TestApiServer, client: kube::Client, events: u64, tag: &str) -> f64 {
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let stream = cms
        .watch(&WatchParams::default().labels(&format!("bench={tag}")), "0")
        .await
        .unwrap();
    let mut stream = stream.boxed();
    let started = Instant::now();
    for i in 0..events {
        api.put(
            "v1",
            "configmaps",
            serde_json::json!({"metadata": {"name": format!("{tag}-{i}"), "namespace": "default",
                "labels": {"bench": tag}}, "data": {"DATABASE_HOST": "db.internal", "n": i.to_string()}}),
        );
    }
    let mut seen = 0;
    while seen < events {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(_) | WatchEvent::Modified(_)))) => seen += 1,
            Ok(Some(Ok(_))) => {}
            other => panic!("watch ended early after {seen} events: {:?}", other.is_ok()),
        }
    }
    events as f64 / started.elapsed().as_secs_f64()
}

async fn exec_once(client: kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut attached = pods
        .exec(
            "web-1",
            vec!["true"],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .unwrap();
    let status = attached.take_status().unwrap();
    let _ = status.await;
    let _ = attached.join().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = env_u64("SOD_BENCH_RUNS", 400);
    let rounds = env_u64("SOD_BENCH_ROUNDS", 2);
    let events = env_u64("SOD_BENCH_EVENTS", 2000);
    let execs = env_u64("SOD_BENCH_EXECS", 20);

    let api = TestApiServer::start().await.unwrap();
    let direct = client(&api.kubeconfig_yaml()).await;
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("k1"),
    ));
    let audit_dir = tempfile::tempdir().unwrap();
    let (sink, _) = FileSink::open(
        audit_dir.path(),
        FileSinkOptions::new("bench", CheckpointKey::generate("audit")),
    )
    .unwrap();
    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(authority.clone()))
        .layer(RecordingLayer::new(Arc::new(sink)))
        .layer(PolicyLayer::new(
            Policy::from_toml("policy.toml", POLICY).unwrap(),
        ))
        .layer(ApprovalLayer::new(
            Broker::new(Arc::new(MemoryStore::new())),
            Duration::from_secs(1),
        ))
        .layer(MaskingLayer::new(
            MaskProfiles::from_toml("masks.toml", MASKS).unwrap(),
        ));
    let ca = TestCa::new("bench CA");
    let leaf = ca.issue(&["localhost"], &["127.0.0.1".parse().unwrap()]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let gateway = Gateway::builder(listener, leaf.server_config(), direct.clone(), stack)
        .target("k8s/bench")
        .build();
    tokio::spawn(gateway.serve(std::future::pending()));
    let token = |name: &str, role: AgentRole| {
        use OperationKind::*;
        authority
            .issue(
                CapabilitySpec::new(name, Duration::from_secs(3600))
                    .kind(PrincipalKind::Agent(role))
                    .targets(["k8s/*"])
                    .kinds(KindSet::of(&[Connect, Read, Write, Exec])),
            )
            .unwrap()
            .encode()
    };
    let executor = client(&kubeconfig(
        port,
        ca.cert_pem(),
        &token("executor", AgentRole::Executor),
    ))
    .await;
    let planner = client(&kubeconfig(
        port,
        ca.cert_pem(),
        &token("planner", AgentRole::Planner),
    ))
    .await;

    println!(
        "sod-k8s bench: {runs} requests per path and round, {rounds} rounds, {events} watch events, {execs} execs"
    );
    println!(
        "layers through sod: identity, recording (file audit log, default durability), policy, approval (nothing to approve), masking"
    );
    let paths: [(&str, &kube::Client); 3] = [
        ("direct", &direct),
        ("sod executor", &executor),
        ("sod planner (masked)", &planner),
    ];
    let mut gets: Vec<Row> = (0..3).map(|_| Row::default()).collect();
    let mut lists: Vec<Row> = (0..3).map(|_| Row::default()).collect();
    let mut secret_gets: Vec<Row> = (0..3).map(|_| Row::default()).collect();
    for _ in 0..rounds {
        for (i, (_, c)) in paths.iter().enumerate() {
            let pods: Api<Pod> = Api::namespaced((*c).clone(), "default");
            let secrets: Api<Secret> = Api::namespaced((*c).clone(), "default");
            // Warm the connection and the session.
            pods.get("web-1").await.unwrap();
            gets[i].add(
                latencies(runs, || {
                    let p = pods.clone();
                    async move {
                        p.get("web-1").await.unwrap();
                    }
                })
                .await,
            );
            lists[i].add(
                latencies(runs, || {
                    let p = pods.clone();
                    async move {
                        p.list(&Default::default()).await.unwrap();
                    }
                })
                .await,
            );
            secret_gets[i].add(
                latencies(runs, || {
                    let s = secrets.clone();
                    async move {
                        s.get("db-credentials").await.unwrap();
                    }
                })
                .await,
            );
        }
    }
    println!("\n| request | path | p50 ms | p99 ms | p50 overhead ms |");
    println!("|---|---|---|---|---|");
    for (label, rows) in [
        ("get pod", &gets),
        ("list pods", &lists),
        ("get secret", &secret_gets),
    ] {
        for (i, (name, _)) in paths.iter().enumerate() {
            let overhead =
                rows[i].p(0.5).as_secs_f64() * 1000.0 - rows[0].p(0.5).as_secs_f64() * 1000.0;
            println!(
                "| {label} | {name} | {} | {} | {} |",
                ms(rows[i].p(0.5)),
                ms(rows[i].p(0.99)),
                if i == 0 {
                    "—".to_owned()
                } else {
                    format!("{overhead:+.3}")
                }
            );
        }
    }
    let direct_rate = watch_rate(&api, direct.clone(), events, "direct").await;
    let sod_rate = watch_rate(&api, planner.clone(), events, "sod").await;
    println!(
        "\nwatch events/s: direct {direct_rate:.0}, sod planner (masked) {sod_rate:.0} ({:.2}x)",
        sod_rate / direct_rate
    );
    let mut exec_direct = Vec::new();
    let mut exec_sod = Vec::new();
    for _ in 0..execs {
        let started = Instant::now();
        exec_once(direct.clone()).await;
        exec_direct.push(started.elapsed());
        let started = Instant::now();
        exec_once(executor.clone()).await;
        exec_sod.push(started.elapsed());
    }
    exec_direct.sort();
    exec_sod.sort();
    println!(
        "exec `true` set-up to exit, p50: direct {} ms, sod {} ms",
        ms(percentile(&exec_direct, 0.5)),
        ms(percentile(&exec_sod, 0.5))
    );
    println!("audit log: {} bytes", dir_size(audit_dir.path()));
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
