//! Whole-path benchmark: pgbench select-only against the server directly, through PgBouncer, and
//! through the sod gateway (identity + policy on), in one run, alternating, so the three are
//! measured under the same conditions.
//!
//! Run with `cargo xtask bench pg` (or `cargo bench -p sod-postgres --bench pg`). Environment:
//! `SOD_BENCH_SECONDS` (per pgbench run, default 5), `SOD_BENCH_ROUNDS` (default 2),
//! `SOD_BENCH_SCALE` (pgbench scale, default 10), `SOD_BENCH_SCRIPT` (a custom pgbench script
//! instead of `-S`), `SOD_BENCH_MASKS` (a mask profiles file: adds a "sod+masking" column),
//! `SOD_BENCH_MODES` (default `simple,extended,prepared`), `SOD_BENCH_CLIENTS` (default `1,8`),
//! `SOD_BENCH_RT` (`multi`, the default: the gateway on a 2-worker runtime; `current`: on a
//! single-threaded runtime, as PgBouncer runs on one thread), `SOD_BENCH_PIN` (set: PostgreSQL
//! and pgbench on CPU 0, the proxy under test on CPU 1, with `taskset`: the proxy gets a core of
//! its own instead of competing with the load generator and the database), `SOD_BENCH_RATE` (pgbench `-R`:
//! a fixed total rate in transactions per second, so that every proxy carries the same load
//! and the CPU column compares like with like, free of the contention noise of an
//! all-out run).
//!
//! Besides TPS and latency it prints the proxies' CPU time per transaction (user + system, from
//! `/proc`), which is steadier than TPS on a shared machine.
//!
//! The gateway runs in this process (see `SOD_BENCH_RT`); PostgreSQL, PgBouncer and
//! pgbench are separate processes, all on the same machine.

#![allow(clippy::print_stdout, missing_docs)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{KindSet, OperationKind, Secret, Target};
use sod_postgres::credentials::StaticCredentials;
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener};
use sod_testkit::EphemeralPostgres;

const POLICY: &str = r#"
[[rule]]
id = "planners-read"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
"#;

const MASKED_POLICY: &str = r#"
[[rule]]
id = "planners-read"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "bench"
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    tps: f64,
    latency_ms: f64,
    transactions: f64,
}

/// CPU time (user + system) a process has used so far, in microseconds.
fn cpu_micros(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1e6 / 100.0)
}

/// The pid of the process whose command line contains `needle`.
fn pid_of(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.starts_with("pgbouncer") && cmd.contains(needle)).then_some(pid)
    })
}

fn pgbench(
    port: u16,
    password: &str,
    mode: &str,
    clients: u32,
    seconds: u64,
    script: Option<&str>,
) -> Run {
    let mut cmd = if pinned() {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "pgbench"]);
        c
    } else {
        Command::new("pgbench")
    };
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "executor",
        "-n",
    ])
    .args([
        "-M",
        mode,
        "-c",
        &clients.to_string(),
        "-j",
        &clients.min(2).to_string(),
    ])
    .args(["-T", &seconds.to_string()]);
    if let Some(rate) = std::env::var("SOD_BENCH_RATE")
        .ok()
        .filter(|r| !r.is_empty())
    {
        cmd.args(["-R", &rate]);
    }
    match script {
        Some(path) => cmd.args(["-f", path]),
        None => cmd.arg("-S"),
    };
    let out = cmd
        .arg("sod")
        .env("PGPASSWORD", password)
        .env_remove("PGHOST")
        .stdin(Stdio::null())
        .output()
        .expect("pgbench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed on port {port}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in pgbench output:\n{text}"))
    };
    Run {
        tps: number_after("tps = "),
        latency_ms: number_after("latency average = "),
        transactions: number_after("number of transactions actually processed: "),
    }
}

/// PgBouncer in session mode in front of the server, as the `postgres` OS user when root.
struct Bouncer {
    child: std::process::Child,
    port: u16,
    /// The pgbouncer process itself (under `runuser` when root), for its CPU time.
    pid: Option<u32>,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `SOD_BENCH_PIN` asks for the proxy to get a CPU of its own.
fn pinned() -> bool {
    std::env::var("SOD_BENCH_PIN").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Sets the CPU affinity of every thread of `pid`.
fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset could not pin {pid} to CPU {cpus}");
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

fn start_pgbouncer(pg: &EphemeralPostgres) -> Bouncer {
    let dir = tempfile::Builder::new()
        .prefix("sod-bench-bouncer")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let port = free_port();
    let ini = dir.path().join("pgbouncer.ini");
    let mut f = std::fs::File::create(&ini).expect("ini");
    writeln!(
        f,
        "[databases]\nsod = host=127.0.0.1 port={} dbname=sod user=executor password={}\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = any\npool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 50\n\
         logfile = {}\npidfile =\nadmin_users =\n",
        pg.port(),
        pg.executor_password(),
        dir.path().join("pgbouncer.log").display(),
    )
    .expect("write ini");
    drop(f);
    let mut cmd = if is_root() {
        let _ = Command::new("chown")
            .args(["-R", "postgres", &dir.path().display().to_string()])
            .status();
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "pgbouncer"]);
        c
    } else {
        Command::new("pgbouncer")
    };
    let child = cmd
        .arg(&ini)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbouncer starts");
    sod_testkit::poll_until(Duration::from_secs(10), "pgbouncer to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let pid = pid_of(&ini.display().to_string());
    Bouncer {
        child,
        port,
        pid,
        _dir: dir,
    }
}

struct SodGateway {
    port: u16,
    token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start_sod(
    rt: &tokio::runtime::Runtime,
    pg: &EphemeralPostgres,
    masks: Option<&str>,
) -> SodGateway {
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("bench"),
    ));
    let token = authority
        .issue(
            CapabilitySpec::new("bench-planner", Duration::from_secs(3600))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Read])),
        )
        .expect("issue")
        .encode();
    let (policy, profiles) = match masks {
        Some(m) => (
            MASKED_POLICY,
            MaskProfiles::from_toml("masks", m).expect("mask profiles"),
        ),
        None => (POLICY, MaskProfiles::new([])),
    };
    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(authority))
        .layer(sod_core::layer::UnauditedLayer::new())
        .layer(PolicyLayer::new(
            Policy::from_toml("bench", policy).expect("policy"),
        ))
        .layer(MaskingLayer::new(profiles));
    let (pg_port, password) = (pg.port(), pg.executor_password().to_owned());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let port = std_listener.local_addr().expect("addr").port();
    let serve = async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
        let gw = Gateway::builder(
            Target::new("pg/bench"),
            Listener::Tcp(listener),
            UpstreamConfig::tcp("127.0.0.1", pg_port, "sod"),
            StaticCredentials::new("executor", Some(Secret::new(password))),
            stack,
        )
        .max_connections(200)
        .build();
        gw.serve(async move {
            let _ = stopped.await;
        })
        .await
    };
    if std::env::var("SOD_BENCH_RT").as_deref() == Ok("current") {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(serve)
        });
    } else {
        rt.spawn(serve);
    }
    SodGateway {
        port,
        token,
        _stop: stop,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let seconds = env_u64("SOD_BENCH_SECONDS", 5);
    let rounds = env_u64("SOD_BENCH_ROUNDS", 2);
    let scale = env_u64("SOD_BENCH_SCALE", 10);
    let script = std::env::var("SOD_BENCH_SCRIPT").ok();
    let masks = std::env::var("SOD_BENCH_MASKS")
        .ok()
        .map(|p| std::fs::read_to_string(p).expect("mask profiles file"));

    eprintln!("starting PostgreSQL and initialising pgbench (scale {scale})…");
    let pg = EphemeralPostgres::builder()
        .setting("max_connections", "200")
        .start()
        .expect("postgres");
    let init = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "executor",
            "-i",
            "-q",
            "-s",
            &scale.to_string(),
            "sod",
        ])
        .env("PGPASSWORD", pg.executor_password())
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    if let Ok(setup) = std::env::var("SOD_BENCH_SETUP_SQL") {
        pg.psql_as(
            "executor",
            &std::fs::read_to_string(setup).expect("setup sql"),
        )
        .expect("setup");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bouncer = start_pgbouncer(&pg);
    let sod = start_sod(&rt, &pg, None);
    let sod_masked = masks.as_deref().map(|m| start_sod(&rt, &pg, Some(m)));
    if pinned() {
        // PostgreSQL (the postmaster, its processes, and the backends it forks later) and
        // pgbench on CPU 0; the proxy under test (PgBouncer, or this process, which runs sod)
        // on CPU 1.
        let postmaster = std::fs::read_to_string(pg.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .expect("the postmaster's pid");
        pin(postmaster, "0");
        for child in children_of(postmaster) {
            pin(child, "0");
        }
        if let Some(pid) = bouncer.pid {
            pin(pid, "1");
        }
        pin(std::process::id(), "1");
        eprintln!("pinned: PostgreSQL and pgbench on CPU 0, the proxies on CPU 1");
    }

    // Name, port, password, and the process whose CPU time is the proxy's.
    let me = Some(std::process::id());
    let mut targets: Vec<(&str, u16, String, Option<u32>)> = vec![
        ("direct", pg.port(), pg.executor_password().to_owned(), None),
        ("pgbouncer", bouncer.port, String::new(), bouncer.pid),
        ("sod", sod.port, sod.token.clone(), me),
    ];
    if let Some(m) = &sod_masked {
        targets.push(("sod+masking", m.port, m.token.clone(), me));
    }
    let names: Vec<&str> = targets.iter().map(|t| t.0).collect();
    eprintln!(
        "pgbench {} for {seconds} s per run, {rounds} rounds, alternating {}",
        script
            .as_deref()
            .map_or("-S (select-only)".to_owned(), |s| format!("-f {s}")),
        names.join(" / ")
    );

    let mut table = Vec::new();
    let modes = std::env::var("SOD_BENCH_MODES").unwrap_or("simple,extended,prepared".into());
    let client_counts = std::env::var("SOD_BENCH_CLIENTS").unwrap_or("1,8".into());
    for mode in modes.split(',').map(str::trim) {
        for clients in client_counts
            .split(',')
            .filter_map(|c| c.trim().parse::<u32>().ok())
        {
            let mut sums = vec![(0.0, 0.0); targets.len()];
            let mut cpu = vec![(0.0, 0.0); targets.len()];
            for round in 0..rounds {
                // Alternate the order between rounds so no target always runs first.
                let order: Vec<usize> = if round % 2 == 0 {
                    (0..targets.len()).collect()
                } else {
                    (0..targets.len()).rev().collect()
                };
                for i in order {
                    let (name, port, pw, proxy) = &targets[i];
                    let before = proxy.and_then(cpu_micros);
                    let r = pgbench(*port, pw, mode, clients, seconds, script.as_deref());
                    if let (Some(b), Some(a)) = (before, proxy.and_then(cpu_micros)) {
                        cpu[i].0 += a - b;
                        cpu[i].1 += r.transactions;
                    }
                    eprintln!(
                        "  {mode:8} c={clients} round {round}: {name:12} {:>9.0} tps {:>7.3} ms",
                        r.tps, r.latency_ms
                    );
                    sums[i].0 += r.tps;
                    sums[i].1 += r.latency_ms;
                }
            }
            let avg: Vec<(f64, f64)> = sums
                .iter()
                .map(|(t, l)| (t / rounds as f64, l / rounds as f64))
                .collect();
            let per_txn: Vec<Option<f64>> = cpu
                .iter()
                .map(|(micros, txns)| (*txns > 0.0).then(|| micros / txns))
                .collect();
            table.push((mode, clients, avg, per_txn));
        }
    }

    println!();
    let mut header = "| mode | clients |".to_owned();
    for n in &names {
        header += &format!(" {n} TPS (ms) |");
    }
    header += " sod/direct | sod/pgbouncer |";
    if sod_masked.is_some() {
        header += " masking cost |";
    }
    header += " proxy CPU µs/txn pgbouncer / sod |";
    println!("{header}");
    println!("|{}", "---|".repeat(header.matches('|').count() - 1));
    for (mode, clients, avg, per_txn) in &table {
        let mut row = format!("| {mode} | {clients} |");
        for (tps, lat) in avg {
            row += &format!(" {tps:.0} ({lat:.3}) |");
        }
        row += &format!(" {:.2} | {:.2} |", avg[2].0 / avg[0].0, avg[2].0 / avg[1].0);
        if sod_masked.is_some() {
            row += &format!(" {:.1}% |", (1.0 - avg[3].0 / avg[2].0) * 100.0);
        }
        let show = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0}"));
        row += &format!(" {} / {} |", show(per_txn[1]), show(per_txn[2]));
        println!("{row}");
    }
    drop(bouncer);
}
