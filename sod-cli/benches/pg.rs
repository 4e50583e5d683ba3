//! `cargo xtask bench pg`: the PostgreSQL data path as users run it, against what they run
//! today, in one run.
//!
//! Targets, measured alternately under the same conditions on the same machine:
//!
//! - `direct`: the server itself;
//! - `socat`: a bare byte relay (`socat … fork`), the floor cost of one extra hop;
//! - `pgbouncer`: PgBouncer in session mode;
//! - `sod`: the `sod` binary (`sod gateway --config sod.toml`) with a configuration like the
//!   demo's — capabilities for identity, the demo's policy and mask profile, the approval
//!   layer, and the file audit log at the default durability — connected as the demo's masked
//!   planner. Nothing of the product is left out.
//!
//! For pgbench `-S` in each protocol mode (`simple`, `extended`, `prepared`) at 1, 8 and 64
//! clients, and for connection set-up (`-C`: a connection per transaction, which for sod means
//! verifying the capability and writing the `Connect` record), it prints TPS, latency, the
//! ratios sod/PgBouncer and sod/socat, and each proxy's CPU time per transaction (user +
//! system from `/proc`, children included), which is steadier than TPS on a shared machine.
//! Then instructions per transaction of PgBouncer and sod, counted by callgrind on a fixed
//! workload (they do not move with the machine's noise; `SOD_BENCH_INSTRUCTIONS=0` skips
//! them), the audit log's bytes per statement, and the resident memory per idle session with
//! 1 000 sessions open through PgBouncer and through sod (`SOD_BENCH_SESSIONS`, `0` skips).
//!
//! Environment: `SOD_BENCH_SECONDS` (per pgbench run, default 8), `SOD_BENCH_ROUNDS` (default
//! 2), `SOD_BENCH_SCALE` (default 10), `SOD_BENCH_MODES` (default `simple,extended,prepared`),
//! `SOD_BENCH_CLIENTS` (default `1,8,64`), `SOD_BENCH_SCRIPT` (a pgbench script instead of
//! `-S`), `SOD_BENCH_SETUP_SQL` (run as the executor before), `SOD_BENCH_MASKS` (a mask
//! profile file for the planner instead of the demo's), `SOD_BENCH_EXECUTOR` (set: add the
//! unmasked executor through sod as a column, to show what masking costs),
//! `SOD_BENCH_INSTRUCTION_TXNS` (default 2000), `SOD_BENCH_SOD` (another `sod` binary to
//! measure, to compare two builds).
//!
//! Every process shares the machine's CPUs: pgbench, PostgreSQL, and the proxy under test.
//!
//! Load mode (`cargo xtask soak load`, `SOD_BENCH_LOAD_SECONDS` > 0): only sod, as the masked
//! planner: `SOD_BENCH_LOAD_SESSIONS` (default 1 000) concurrent pgbench clients for 30 s
//! (zero errors required; resident memory per session), then 64 clients for
//! `SOD_BENCH_LOAD_SECONDS` with sod's resident memory sampled every 10 s (flat: the last
//! minute's peak within 10 % + 4 MiB of the second minute's, after a minute of warm-up).

#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sod_testkit::EphemeralPostgres;

/// The `sod` binary under test: this build's, or `SOD_BENCH_SOD` (to compare two builds).
fn sod_bin() -> String {
    std::env::var("SOD_BENCH_SOD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sod").to_owned())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_listening(port: u16, what: &str) {
    sod_testkit::poll_until(Duration::from_secs(60), what, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The fields of `/proc/PID/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system, of the process and its reaped children) so far, in µs.
fn cpu_micros(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    let ticks: f64 = [11, 12, 13, 14]
        .iter()
        .map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum::<Option<f64>>()?;
    Some(ticks * 1e6 / 100.0)
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let ppid: u32 = stat_fields(child)?.get(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The pid of a process whose command line starts with `program` and contains `needle`.
fn pid_of(program: &str, needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.starts_with(program) && cmd.contains(needle)).then_some(pid)
    })
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// One thing pgbench connects to.
struct Target {
    name: String,
    port: u16,
    user: String,
    password: String,
    /// The proxy's process, for its CPU time and memory.
    pid: Option<u32>,
}

/// One target's figures in one row: mean TPS, mean latency (ms), CPU µs per transaction.
type Cell = (f64, f64, Option<f64>);

#[derive(Default, Clone, Copy)]
struct Run {
    tps: f64,
    latency_ms: f64,
    transactions: f64,
}

struct Pgbench<'a> {
    mode: &'a str,
    clients: u32,
    seconds: Option<u64>,
    transactions: Option<u64>,
    connect_each: bool,
    script: Option<&'a str>,
}

fn pgbench(t: &Target, b: &Pgbench<'_>) -> Run {
    let mut cmd = Command::new("pgbench");
    cmd.args(["-h", "127.0.0.1", "-p", &t.port.to_string(), "-U", &t.user])
        .args(["-n", "-M", b.mode, "-c", &b.clients.to_string()])
        .args(["-j", &b.clients.min(2).to_string()]);
    if let Some(s) = b.seconds {
        cmd.args(["-T", &s.to_string()]);
    }
    if let Some(n) = b.transactions {
        cmd.args(["-t", &n.to_string()]);
    }
    if b.connect_each {
        cmd.arg("-C");
    }
    match b.script {
        Some(path) => cmd.args(["-f", path]),
        None => cmd.arg("-S"),
    };
    let out = cmd
        .arg("sod")
        .env("PGPASSWORD", &t.password)
        .env_remove("PGHOST")
        .stdin(Stdio::null())
        .output()
        .expect("pgbench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench against {} failed: {}\n{text}",
        t.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            // With `-t`, pgbench writes `done/asked` ("2000/2000").
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in pgbench output:\n{text}"))
    };
    Run {
        tps: number_after("tps = "),
        latency_ms: number_after("latency average = "),
        transactions: number_after("number of transactions actually processed: "),
    }
}

/// A command line run as the `postgres` OS user when we are root (PgBouncer refuses root),
/// with a raised open-file limit (a thousand sessions need two thousand sockets).
fn as_service_user(program: &str, args: &[String]) -> Command {
    let line = std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!("ulimit -n 8192 && exec {line}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    }
}

fn start_pgbouncer(
    pg: &EphemeralPostgres,
    dir: &Path,
    valgrind: Option<&Path>,
) -> (Process, Target) {
    let port = free_port();
    let ini = dir.join(format!("pgbouncer-{port}.ini"));
    let mut f = std::fs::File::create(&ini).expect("ini");
    writeln!(
        f,
        "[databases]\nsod = host=127.0.0.1 port={} dbname=sod user=executor password={}\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = any\npool_mode = session\nmax_client_conn = 2000\ndefault_pool_size = 1100\n\
         max_db_connections = 0\nlogfile = {}\npidfile =\nadmin_users =\n",
        pg.port(),
        pg.executor_password(),
        dir.join(format!("pgbouncer-{port}.log")).display(),
    )
    .expect("write ini");
    drop(f);
    let mut args = vec![ini.display().to_string()];
    let program = match valgrind {
        Some(out) => {
            let mut under = callgrind_args(out, "pgbouncer");
            under.push("pgbouncer".to_owned());
            args.splice(0..0, under);
            "valgrind".to_owned()
        }
        None => "pgbouncer".to_owned(),
    };
    let child = as_service_user(&program, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbouncer starts");
    wait_listening(port, "pgbouncer to listen");
    let needle = ini.display().to_string();
    let pid = pid_of("pgbouncer", &needle).or_else(|| pid_of("valgrind", &needle));
    (
        Process(child),
        Target {
            name: "pgbouncer".into(),
            port,
            user: "executor".into(),
            password: String::new(),
            pid,
        },
    )
}

fn start_socat(pg: &EphemeralPostgres) -> (Process, Target) {
    let port = free_port();
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
        .arg(format!("TCP:127.0.0.1:{}", pg.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat starts (apt-get install socat)");
    wait_listening(port, "socat to listen");
    let pid = child.id();
    (
        Process(child),
        Target {
            name: "socat".into(),
            port,
            user: "executor".into(),
            password: pg.executor_password().to_owned(),
            pid: Some(pid),
        },
    )
}

/// A directory with a `sod.toml` like the demo's, for the PostgreSQL gateway alone.
struct SodConfig {
    dir: PathBuf,
    port: u16,
}

fn sod(args: &[&str]) -> String {
    let out = Command::new(sod_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sod runs");
    assert!(
        out.status.success(),
        "sod {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write_sod_config(pg: &EphemeralPostgres, dir: &Path, masks: Option<&str>) -> SodConfig {
    let d = dir.join("sod");
    std::fs::create_dir_all(&d).expect("sod dir");
    std::fs::write(d.join("policy.toml"), sod_cli::demo::POLICY).expect("policy");
    std::fs::write(d.join("masks.toml"), masks.unwrap_or(sod_cli::demo::MASKS)).expect("masks");
    sod_cli::keys::generate(&d.join("capability.key")).expect("capability key");
    sod_cli::keys::generate_checkpoint_key(&d.join("audit.key"), "bench-audit").expect("audit key");
    sod_cli::keys::write_private(&d.join("upstream-password"), pg.executor_password(), false)
        .expect("password file");
    let port = free_port();
    let approvals = free_port();
    let toml = format!(
        r#"# Written by `cargo xtask bench pg`: the demo's PostgreSQL gateway, every layer on.

[log]
format = "human"
level = "warn"

[identity.capabilities]
issuer = "sod-bench"
key_file = "capability.key"

[policy]
file = "policy.toml"
masks = "masks.toml"

[audit]
dir = "audit"
stream = "bench"
key_file = "audit.key"
key_id = "bench-audit"

[approvals]
wait = "5s"

[approvals.http]
listen = "127.0.0.1:{approvals}"

[[postgres]]
target = "pg/bench"
listen = "127.0.0.1:{port}"
max_connections = 1100
max_sessions_per_principal = 1100
max_startup_per_address = 128

[postgres.upstream]
host = "127.0.0.1"
port = {pg_port}
database = "sod"
user = "executor"
password_file = "upstream-password"
"#,
        pg_port = pg.port(),
    );
    std::fs::write(d.join("sod.toml"), toml).expect("sod.toml");
    SodConfig { dir: d, port }
}

fn token(config: &SodConfig, subject: &str, kind: &str) -> String {
    let path = config.dir.join("sod.toml").display().to_string();
    sod(&[
        "token",
        "issue",
        "--config",
        &path,
        "--subject",
        subject,
        "--kind",
        kind,
        "--ttl",
        "12h",
        "--targets",
        "pg/bench",
        "--kinds",
        "connect,read",
    ])
}

fn start_sod(config: &SodConfig, valgrind: Option<&Path>) -> Process {
    let path = config.dir.join("sod.toml").display().to_string();
    let mut cmd = match valgrind {
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.args(callgrind_args(out, "sod")).arg(sod_bin());
            c
        }
        None => Command::new(sod_bin()),
    };
    let child = cmd
        .args(["gateway", "--config", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sod gateway starts");
    wait_listening(config.port, "sod to listen");
    Process(child)
}

fn callgrind_args(dir: &Path, name: &str) -> Vec<String> {
    vec![
        "--tool=callgrind".into(),
        "--trace-children=no".into(),
        format!("--callgrind-out-file={}/callgrind.{name}.%p", dir.display()),
    ]
}

/// Bytes in the audit log's segments.
fn audit_bytes(config: &SodConfig) -> u64 {
    std::fs::read_dir(config.dir.join("audit"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let seconds = env_u64("SOD_BENCH_SECONDS", 8);
    let rounds = env_u64("SOD_BENCH_ROUNDS", 2).max(1);
    let scale = env_u64("SOD_BENCH_SCALE", 10);
    let modes = env_list("SOD_BENCH_MODES", "simple,extended,prepared");
    let client_counts: Vec<u32> = env_list("SOD_BENCH_CLIENTS", "1,8,64")
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    let script = std::env::var("SOD_BENCH_SCRIPT").ok();
    let masks = std::env::var("SOD_BENCH_MASKS")
        .ok()
        .map(|p| std::fs::read_to_string(p).expect("mask profiles file"));
    let sessions = env_u64("SOD_BENCH_SESSIONS", 1000);
    let instruction_txns = env_u64("SOD_BENCH_INSTRUCTION_TXNS", 2000);
    let instructions = std::env::var("SOD_BENCH_INSTRUCTIONS").map_or(true, |v| v != "0");

    eprintln!("starting PostgreSQL and initialising pgbench (scale {scale})…");
    let pg = EphemeralPostgres::builder()
        .setting("max_connections", &(2 * sessions + 200).to_string())
        .start()
        .expect("postgres");
    let init = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &pg.port().to_string()])
        .args([
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
    let dir = tempfile::Builder::new()
        .prefix("sod-bench-pg")
        .tempdir_in("/tmp")
        .expect("temp dir");
    if is_root() {
        let _ = Command::new("chown")
            .args(["postgres", &dir.path().display().to_string()])
            .status();
    }

    let load_seconds = env_u64("SOD_BENCH_LOAD_SECONDS", 0);
    if load_seconds > 0 {
        let config = write_sod_config(&pg, dir.path(), masks.as_deref());
        let sod_process = start_sod(&config, None);
        let planner = Target {
            name: "sod".into(),
            port: config.port,
            user: "planner".into(),
            password: token(&config, "planner", "planner"),
            pid: Some(sod_process.0.id()),
        };
        let sessions = env_u64("SOD_BENCH_LOAD_SESSIONS", 1000) as u32;
        load(&planner, sod_process.0.id(), sessions, load_seconds);
        return;
    }
    let (_bouncer, bouncer) = start_pgbouncer(&pg, dir.path(), None);
    let (_socat, socat) = start_socat(&pg);
    let config = write_sod_config(&pg, dir.path(), masks.as_deref());
    let sod_process = start_sod(&config, None);
    let sod_pid = Some(sod_process.0.id());
    let planner = Target {
        name: "sod".into(),
        port: config.port,
        user: "planner".into(),
        password: token(&config, "planner", "planner"),
        pid: sod_pid,
    };
    let mut targets = vec![
        Target {
            name: "direct".into(),
            port: pg.port(),
            user: "executor".into(),
            password: pg.executor_password().to_owned(),
            pid: None,
        },
        socat,
        bouncer,
        planner,
    ];
    if std::env::var_os("SOD_BENCH_EXECUTOR").is_some() {
        targets.push(Target {
            name: "sod executor".into(),
            port: config.port,
            user: "executor".into(),
            password: token(&config, "executor", "executor"),
            pid: sod_pid,
        });
    }
    let index = |name: &str| targets.iter().position(|t| t.name == name);
    let (i_socat, i_bouncer, i_sod) = (
        index("socat").unwrap_or(1),
        index("pgbouncer").unwrap_or(2),
        index("sod").unwrap_or(3),
    );
    eprintln!(
        "pgbench {} for {seconds} s per run, {rounds} rounds, alternating {}",
        script
            .as_deref()
            .map_or("-S (select-only)".to_owned(), |s| format!("-f {s}")),
        targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    );

    let mut table: Vec<(String, Vec<Cell>)> = Vec::new();
    let mut statements = 0.0;
    let audit_before = audit_bytes(&config);
    let mut rows: Vec<(String, &str, u32, bool)> = Vec::new();
    for mode in &modes {
        for &clients in &client_counts {
            rows.push((format!("{mode} c={clients}"), mode.as_str(), clients, false));
        }
    }
    rows.push(("connect (-C) c=8".into(), "simple", 8, true));
    for (label, mode, clients, connect_each) in &rows {
        let mut sums = vec![(0.0, 0.0, 0.0, 0.0); targets.len()];
        for round in 0..rounds {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..targets.len()).collect()
            } else {
                (0..targets.len()).rev().collect()
            };
            for i in order {
                let t = &targets[i];
                let before = t.pid.and_then(cpu_micros);
                let r = pgbench(
                    t,
                    &Pgbench {
                        mode,
                        clients: *clients,
                        seconds: Some(seconds),
                        transactions: None,
                        connect_each: *connect_each,
                        script: script.as_deref(),
                    },
                );
                if let Some(pid) = t.pid {
                    // socat's per-connection children count once their parent reaps them.
                    sod_testkit::poll_until(
                        Duration::from_secs(10),
                        "the proxy's children to exit",
                        || children_of(pid).is_empty().then_some(()),
                    );
                }
                let cpu = match (before, t.pid.and_then(cpu_micros)) {
                    (Some(b), Some(a)) => a - b,
                    _ => f64::NAN,
                };
                if t.user == "planner" || t.name.starts_with("sod") {
                    statements += r.transactions;
                }
                eprintln!(
                    "  {label:18} round {round}: {:12} {:>9.0} tps {:>8.3} ms",
                    t.name, r.tps, r.latency_ms
                );
                let s = &mut sums[i];
                s.0 += r.tps;
                s.1 += r.latency_ms;
                s.2 += cpu;
                s.3 += r.transactions;
            }
        }
        let n = rounds as f64;
        let cells = sums
            .iter()
            .map(|&(tps, lat, cpu, txns)| {
                (
                    tps / n,
                    lat / n,
                    (cpu.is_finite() && txns > 0.0).then(|| cpu / txns),
                )
            })
            .collect();
        table.push((label.clone(), cells));
    }
    let audit_per_statement = (audit_bytes(&config) - audit_before) as f64 / statements.max(1.0);

    println!();
    let mut header = "| run |".to_owned();
    for t in &targets {
        header += &format!(" {} TPS (ms) |", t.name);
    }
    header += " sod/pgbouncer | sod/socat | CPU µs/txn socat / pgbouncer / sod |";
    println!("{header}");
    println!("|{}", "---|".repeat(header.matches('|').count() - 1));
    for (label, cells) in &table {
        let mut row = format!("| {label} |");
        for (tps, lat, _) in cells {
            row += &format!(" {tps:.0} ({lat:.3}) |");
        }
        let show = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        row += &format!(
            " {:.2} | {:.2} | {} / {} / {} |",
            cells[i_sod].0 / cells[i_bouncer].0,
            cells[i_sod].0 / cells[i_socat].0,
            show(cells[i_socat].2),
            show(cells[i_bouncer].2),
            show(cells[i_sod].2),
        );
        println!("{row}");
    }
    println!(
        "\naudit log: {audit_per_statement:.0} bytes per statement ({statements:.0} statements through sod)"
    );

    if sessions > 0 {
        println!("\nresident memory per idle session, {sessions} sessions open:");
        // sod first: PgBouncer keeps its server connections after its clients leave.
        for (name, t) in [("sod", &targets[i_sod]), ("pgbouncer", &targets[i_bouncer])] {
            match t.pid {
                Some(pid) => {
                    let per = idle_sessions(t, pid, sessions as usize);
                    println!("| {name} | {per:.1} KiB |");
                }
                None => println!("| {name} | (no pid) |"),
            }
        }
    }
    drop(sod_process);

    if instructions && instruction_txns > 1 {
        println!(
            "\ninstructions per transaction (callgrind, 1 client, {instruction_txns} transactions):"
        );
        match count_instructions(&pg, dir.path(), &config, &modes, instruction_txns) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => println!("(not measured: {e})"),
        }
    }
}

/// Opens `n` sessions through `t` and keeps them idle; the growth of the proxy's resident
/// memory per session, in KiB.
fn idle_sessions(t: &Target, pid: u32, n: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(t.port)
        .user(&t.user)
        .password(&t.password)
        .dbname("sod");
    rt.block_on(async {
        let connect = || async {
            let (client, conn) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("session opens");
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.expect("SELECT 1");
            client
        };
        // One session first, so start-up costs are not counted per session.
        let first = connect().await;
        let before = rss_kib(pid).unwrap_or(0);
        let started = Instant::now();
        let mut clients = Vec::with_capacity(n);
        let mut pending = futures_util::stream::FuturesUnordered::new();
        let mut opened = 0;
        use futures_util::StreamExt as _;
        while opened < n || !pending.is_empty() {
            while opened < n && pending.len() < 16 {
                pending.push(connect());
                opened += 1;
            }
            if let Some(c) = pending.next().await {
                clients.push(c);
            }
        }
        let after = rss_kib(pid).unwrap_or(0);
        eprintln!(
            "  {}: {n} sessions opened in {:.1} s, RSS {before} → {after} KiB",
            t.name,
            started.elapsed().as_secs_f64()
        );
        drop(clients);
        drop(first);
        (after.saturating_sub(before)) as f64 / n as f64
    })
}

/// Total instructions in a callgrind output file (its `summary:` or `totals:` line).
fn callgrind_total(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Instructions per transaction of PgBouncer and sod: each proxy is started under callgrind
/// once per mode and run with 1 and with `txns` transactions; the difference over `txns - 1`
/// leaves start-up and connection costs out.
fn count_instructions(
    pg: &EphemeralPostgres,
    dir: &Path,
    config: &SodConfig,
    modes: &[String],
    txns: u64,
) -> Result<Vec<String>, String> {
    if !Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Err("valgrind is not installed".into());
    }
    let out = dir.join("callgrind");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    if is_root() {
        let _ = Command::new("chown")
            .args(["postgres", &out.display().to_string()])
            .status();
    }
    let mut lines = vec![
        "| mode | pgbouncer | sod | sod/pgbouncer |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for mode in modes {
        let mut per = Vec::new();
        for proxy in ["pgbouncer", "sod"] {
            let mut totals = Vec::new();
            for n in [1, txns] {
                let run_dir = out.join(format!("{proxy}-{mode}-{n}"));
                std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
                if is_root() {
                    let _ = Command::new("chown")
                        .args(["postgres", &run_dir.display().to_string()])
                        .status();
                }
                let (process, target) = if proxy == "pgbouncer" {
                    let (p, t) = start_pgbouncer(pg, dir, Some(&run_dir));
                    (p, t)
                } else {
                    let p = start_sod(config, Some(&run_dir));
                    let t = Target {
                        name: "sod".into(),
                        port: config.port,
                        user: "planner".into(),
                        password: token(config, "planner", "planner"),
                        pid: Some(p.0.id()),
                    };
                    (p, t)
                };
                pgbench(
                    &target,
                    &Pgbench {
                        mode,
                        clients: 1,
                        seconds: None,
                        transactions: Some(n),
                        connect_each: false,
                        script: None,
                    },
                );
                // SIGTERM: both exit cleanly, and callgrind writes its file at exit.
                drop(process);
                let file = sod_testkit::poll_until(
                    Duration::from_secs(120),
                    "callgrind to write its output",
                    || {
                        std::fs::read_dir(&run_dir)
                            .ok()?
                            .flatten()
                            .map(|e| e.path())
                            .find(|p| callgrind_total(p).is_some())
                    },
                );
                totals.push(callgrind_total(&file).unwrap_or(0));
            }
            per.push(totals[1].saturating_sub(totals[0]) as f64 / (txns - 1) as f64);
        }
        lines.push(format!(
            "| {mode} | {:.0} | {:.0} | {:.2} |",
            per[0],
            per[1],
            per[1] / per[0]
        ));
    }
    Ok(lines)
}

/// Samples `pid`'s resident memory (KiB) every `every` until `stop` is set: (seconds, KiB).
fn sample_rss(
    pid: u32,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(f64, u64)>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(kib) = rss_kib(pid) {
                samples.push((started.elapsed().as_secs_f64(), kib));
            }
            let until = Instant::now() + every;
            while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        samples
    })
}

/// pgbench through `t` with `clients` for `seconds` while sampling the proxy's memory.
fn loaded(
    t: &Target,
    pid: u32,
    clients: u32,
    seconds: u64,
    every: Duration,
) -> (Run, Vec<(f64, u64)>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_rss(pid, every, stop.clone());
    let run = pgbench(
        t,
        &Pgbench {
            mode: "prepared",
            clients,
            seconds: Some(seconds),
            transactions: None,
            connect_each: false,
            script: None,
        },
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    (run, sampler.join().expect("sampler"))
}

/// The load and soak runs (see the module docs).
fn load(t: &Target, pid: u32, sessions: u32, soak_seconds: u64) {
    let idle = rss_kib(pid).unwrap_or(0);
    eprintln!("load: {sessions} concurrent sessions through sod for 30 s…");
    let (run, samples) = loaded(t, pid, sessions, 30, Duration::from_secs(1));
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(idle);
    println!(
        "\n{sessions} concurrent sessions (pgbench -S -M prepared, 30 s): {:.0} TPS, {:.0} transactions, 0 errors (pgbench exits non-zero on any)",
        run.tps, run.transactions
    );
    println!(
        "sod resident memory: {idle} KiB idle, {peak} KiB peak: {:.1} KiB per session",
        peak.saturating_sub(idle) as f64 / f64::from(sessions.max(1))
    );

    eprintln!("soak: 64 clients through sod for {soak_seconds} s, memory sampled every 10 s…");
    let (run, samples) = loaded(t, pid, 64, soak_seconds, Duration::from_secs(10));
    println!(
        "\nsoak, 64 clients, {soak_seconds} s: {:.0} TPS, {:.0} transactions, 0 errors",
        run.tps, run.transactions
    );
    println!("| seconds | sod RSS KiB |\n|---|---|");
    for (at, kib) in &samples {
        println!("| {at:.0} | {kib} |");
    }
    let window = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|s| s.1)
            .max()
    };
    // The first minute warms up (caches, allocator arenas, what the 1 000 sessions left);
    // the second is the baseline the last minute is held to.
    let end = samples.last().map_or(0.0, |s| s.0);
    match (window(60.0, 120.0), window(120.0_f64.max(end - 60.0), end)) {
        (Some(second), Some(last)) if end >= 180.0 => {
            let flat = last as f64 <= second as f64 * 1.10 + 4096.0;
            println!(
                "second minute's peak {second} KiB, last minute's {last} KiB: {}",
                if flat { "flat" } else { "GROWING" }
            );
            assert!(flat, "sod's memory grew during the soak");
        }
        _ => println!("(a soak under 3 minutes is too short to judge flatness)"),
    }
}
