//! Whole-path benchmark of the SSH gateway, against OpenSSH on the same machine, in one run:
//!
//! - throughput: `N` bytes (default 1 GiB) piped into `cat > /dev/null` on the target, directly
//!   (`ssh` to `sshd`), through an OpenSSH jump host (the same mechanism as `ProxyJump`: a
//!   second `ssh -W` as the proxy command, through the target's own `sshd`), and through sod
//!   with recording on (a real file audit log, transcripts at their default limit);
//! - latency: `ssh host true`, directly and through sod: p50 and p99 over `SOD_BENCH_RUNS`
//!   runs (default 40), each a new connection (log-in included), and each a new channel on a
//!   connection already open (OpenSSH's `ControlMaster`): what the gateway adds per command
//!   (the operation through the stack, its audit record, a channel on the target);
//! - the gateway's CPU time per GiB (user + system of this process, where the gateway runs).
//!
//! Rounds alternate (`SOD_BENCH_ROUNDS`, default 2), so the paths share the machine's
//! conditions; ratios are against the direct path measured in the same run.
//!
//! Run with `cargo xtask bench ssh` (or `cargo bench -p sod-ssh --bench ssh`). Environment:
//! `SOD_BENCH_BYTES`, `SOD_BENCH_ROUNDS`, `SOD_BENCH_RUNS`.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind};
use sod_ssh::{Gateway, HostKey, KnownHosts, SshTarget, TargetKey};
use sod_testkit::ssh::{Client, Sshd};

const POLICY: &str = r#"
[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "exec"]
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Pipes `bytes` zeros into `ssh … 'cat > /dev/null'`; the elapsed time.
fn push(mut ssh: Command, bytes: u64) -> Duration {
    let started = Instant::now();
    let mut child = ssh
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stdin.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Runs `ssh … true` `runs` times; latencies in milliseconds, sorted.
fn latencies(client: &Client, runs: u64) -> Vec<f64> {
    let mut all: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = client.ssh("true").output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

/// `client` with its connection shared through a control socket in `dir`: the master is
/// started here (logged in, in the background), later commands open channels on it.
fn multiplexed(client: Client, dir: &std::path::Path) -> Client {
    let client = client
        .arg("-o")
        .arg(format!("ControlPath={}/%C", dir.display()));
    let master = client
        .ssh_command_with_options(&[
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=yes",
            "-N",
            "-f",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(master.success(), "the control master starts");
    client.arg("-o").arg("ControlMaster=no")
}

/// Stops the master of a [`multiplexed`] client.
fn stop_master(client: &Client) {
    let _ = client
        .ssh_command_with_options(&["-O", "exit"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let bytes = env_u64("SOD_BENCH_BYTES", 1 << 30);
    let rounds = env_u64("SOD_BENCH_ROUNDS", 2);
    let runs = env_u64("SOD_BENCH_RUNS", 40);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sshd = Sshd::start().expect("sshd starts");
    let audit_dir = tempfile::tempdir().unwrap();
    let (gateway_port, token, known_hosts, _guard) = runtime.block_on(async {
        let authority = Arc::new(CapabilityAuthority::new(
            "sod",
            CapabilityKey::generate("k1"),
        ));
        let (sink, _) = FileSink::open(
            audit_dir.path(),
            FileSinkOptions::new("bench", CheckpointKey::generate("audit")),
        )
        .unwrap();
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(authority.clone()))
            .layer(RecordingLayer::new(Arc::new(sink)))
            .layer(PolicyLayer::new(
                Policy::from_toml("bench", POLICY).unwrap(),
            ))
            .layer(MaskingLayer::new(MaskProfiles::from_toml("m", "").unwrap()));
        let target = SshTarget::new(
            "ssh/bench",
            "127.0.0.1",
            sshd.port(),
            sshd.user(),
            TargetKey::from_openssh("key", sshd.client_private_key_openssh()).unwrap(),
            KnownHosts::parse("kh", &sshd.known_hosts_line()).unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host_key = HostKey::generate().unwrap();
        let line = host_key.known_hosts_line("127.0.0.1", port);
        let gateway = Gateway::builder(listener, host_key, vec![target], stack).build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        let token = authority
            .issue(
                CapabilitySpec::new("bench", Duration::from_secs(3600))
                    .kind(PrincipalKind::Agent(AgentRole::Executor))
                    .targets(["ssh/*"])
                    .kinds(KindSet::of(&[
                        OperationKind::Connect,
                        OperationKind::Read,
                        OperationKind::Write,
                    ])),
            )
            .unwrap()
            .encode();
        (port, token, line, stop)
    });

    let direct = sshd.client();
    // The ProxyJump path: a second ssh as the proxy command, through the target's own sshd
    // (which allows forwarding), with the same options as the first.
    let inner: Vec<String> = direct
        .options()
        .iter()
        .map(|o| o.to_string_lossy().into_owned())
        .collect();
    let proxy_command = format!(
        "ssh {} -W %h:%p {}",
        inner
            .iter()
            .map(|o| format!("'{o}'"))
            .collect::<Vec<_>>()
            .join(" "),
        direct.destination()
    );
    let jump = sshd
        .client()
        .arg("-o")
        .arg(format!("ProxyCommand={proxy_command}"));
    let sod = Client::new(gateway_port, "bench")
        .password(&token)
        .known_hosts(&known_hosts);

    println!(
        "sod-ssh bench: {} MiB into `cat > /dev/null`, {rounds} round(s); `ssh true` × {runs}",
        bytes >> 20
    );
    let (mut t_direct, mut t_jump, mut t_sod, mut cpu_sod) = (0.0, 0.0, 0.0, 0.0);
    for round in 1..=rounds {
        let d = push(direct.ssh("cat > /dev/null"), bytes).as_secs_f64();
        let j = push(jump.ssh("cat > /dev/null"), bytes).as_secs_f64();
        let cpu = cpu_seconds();
        let s = push(sod.ssh("cat > /dev/null"), bytes).as_secs_f64();
        let c = cpu_seconds() - cpu;
        println!(
            "  round {round}: direct {:.0} MB/s, jump host {:.0} MB/s, sod {:.0} MB/s",
            bytes as f64 / d / 1e6,
            bytes as f64 / j / 1e6,
            bytes as f64 / s / 1e6
        );
        t_direct += d;
        t_jump += j;
        t_sod += s;
        cpu_sod += c;
    }
    let gib = bytes as f64 * rounds as f64 / (1u64 << 30) as f64;
    let mbps = |t: f64| bytes as f64 * rounds as f64 / t / 1e6;
    println!();
    println!("throughput           MB/s   vs direct");
    println!("  direct         {:>9.0}       1.00×", mbps(t_direct));
    println!(
        "  OpenSSH jump   {:>9.0}       {:.2}×",
        mbps(t_jump),
        t_direct / t_jump
    );
    println!(
        "  sod (recorded) {:>9.0}       {:.2}×",
        mbps(t_sod),
        t_direct / t_sod
    );
    println!("  sod gateway CPU: {:.2} s per GiB", cpu_sod / gib);

    let l_direct = latencies(&direct, runs);
    let l_sod = latencies(&sod, runs);
    println!();
    println!("`ssh true` latency     p50 ms   p99 ms");
    println!(
        "  direct           {:>8.1} {:>8.1}",
        percentile(&l_direct, 0.5),
        percentile(&l_direct, 0.99)
    );
    println!(
        "  sod              {:>8.1} {:>8.1}",
        percentile(&l_sod, 0.5),
        percentile(&l_sod, 0.99)
    );
    println!(
        "  added by sod     {:>8.1} {:>8.1}",
        percentile(&l_sod, 0.5) - percentile(&l_direct, 0.5),
        percentile(&l_sod, 0.99) - percentile(&l_direct, 0.99)
    );

    // Per command, on a connection already open.
    let control = tempfile::tempdir().unwrap();
    let direct_mux = multiplexed(sshd.client(), control.path());
    let sod_mux = multiplexed(
        Client::new(gateway_port, "bench")
            .password(&token)
            .known_hosts(&known_hosts),
        control.path(),
    );
    let m_direct = latencies(&direct_mux, runs);
    let m_sod = latencies(&sod_mux, runs);
    stop_master(&direct_mux);
    stop_master(&sod_mux);
    println!();
    println!("`ssh true` on an open connection (ControlMaster): per command");
    println!("                       p50 ms   p99 ms");
    println!(
        "  direct           {:>8.1} {:>8.1}",
        percentile(&m_direct, 0.5),
        percentile(&m_direct, 0.99)
    );
    println!(
        "  sod              {:>8.1} {:>8.1}",
        percentile(&m_sod, 0.5),
        percentile(&m_sod, 0.99)
    );
    println!(
        "  added by sod     {:>8.1} {:>8.1}",
        percentile(&m_sod, 0.5) - percentile(&m_direct, 0.5),
        percentile(&m_sod, 0.99) - percentile(&m_direct, 0.99)
    );
}
