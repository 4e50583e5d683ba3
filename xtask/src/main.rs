//! Project automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask test`  — check and install prerequisites, then lint and run every test, and
//!   finish with a short fuzz smoke run.
//! - `cargo xtask fuzz [<target>|all] [--seconds N]` — run the cargo-fuzz targets in `fuzz/`.
//! - `cargo xtask demo`  — run `sod demo` (flags are passed on).
//! - `cargo xtask bench <core|sql|pg>` — run a benchmark suite.
//!
//! Standard library only, so it builds in seconds on a fresh machine.

#![allow(clippy::print_stdout)]

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Instant, SystemTime};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-lint] [--no-fuzz] [-- <nextest args>]
        check prerequisites (installing missing Debian packages when run as root),
        then cargo fmt --check, clippy -D warnings, cargo nextest, the doc tests, the
        API docs (rustdoc -D warnings), cargo package of every published crate, and a
        fuzz smoke run: every fuzz target for SOD_FUZZ_SECONDS seconds (default 15;
        0 or --no-fuzz skips it)
  fuzz [<target>|all] [--seconds N]
        run fuzz targets with cargo-fuzz (installed if missing), each for N seconds
        (default 60), starting from fuzz/seeds/<target>; fails naming the target and
        the reproducer under fuzz/artifacts/ if one crashes, hangs or runs out of memory.
        targets: pg_startup_decode pg_frontend_decode pg_backend_decode pg_sql_analyze
                 pg_mask_rows pg_session_driver capability_parse policy_toml
                 audit_log_verify ssh_command sftp_codec
  drivers
        install the driver compatibility suite's drivers (pinned psycopg 3, asyncpg,
        SQLAlchemy in a venv; node-postgres with npm ci) into target/drivers/; `test`
        does this before running the tests
  demo  check prerequisites as `test` does (installing them as root), build sod, and
        run `sod demo` (flags after it go to sod demo)
  bench core|audit|sql|statement|pg|pg-masking|ssh|k8s
        core: criterion benchmarks of sod-core's hot paths; audit: audit log appends
        (1 and 64 writers per durability) and verify; sql: criterion benchmarks
        of SQL analysis; statement: criterion, one statement through the gateway
        alone (null upstream); pg: the sod binary as configured like the demo (every
        layer and the audit log on) against the server directly, socat and
        PgBouncer, alternating, simple/extended/prepared at 1/8/64 clients and
        connection set-up: TPS, ratios, proxy CPU µs per transaction, audit bytes
        per statement, RSS per idle session (1 000 open) and callgrind instructions
        per transaction; pg-masking: the same over a table with masked columns
        (sod-cli/benches/pg-masking/), adding the unmasked executor through sod;
        ssh: 1 GiB into `cat > /dev/null` directly, through an OpenSSH jump host and
        through sod (recording on), `ssh true` latency p50/p99, gateway CPU per GiB;
        k8s: get/list latency p50/p99 with the kube client directly and through sod
        (executor, masked planner; every layer on), watch events/s, exec set-up
  soak noninterference [--seconds N] [--seed S]
        the masking noninterference property test for N seconds (default 600): two
        servers with different sensitive values, generated statements through a gateway
        in front of each; prints statements tried, answered and refused
  soak load [--seconds N] [--sessions N]
        the sod binary configured like the demo, as the masked planner: N sessions
        (default 1 000) at once for 30 s with zero errors and the memory per session,
        then 64 clients for N seconds (default 600) with sod's memory sampled every
        10 s, which must stay flat (the last minute against the second)
  help  this text
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("fuzz") => fuzz_command(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("drivers") => check_prerequisites(&prerequisites(TEST_NEEDS))
            .and_then(|()| install_drivers())
            .map(|dir| println!("drivers installed in {}", dir.display())),
        Some("bench") => bench(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("help" | "-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn step(title: &str) {
    eprintln!("\n==> {title}");
}

/// Runs a command in the workspace root, echoing it; fails with its exit status.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with_env(program, args, &[])
}

/// [`run`] with extra environment variables.
fn run_with_env(program: &str, args: &[&str], env: &[(&str, String)]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    eprintln!("   ({:.1}s)", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Subdirectories of `dir` whose name starts with `prefix`.
fn subdirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn has_c_compiler() -> bool {
    succeeds("cc", &["--version"])
        || succeeds("gcc", &["--version"])
        || succeeds("clang", &["--version"])
}

fn has_cxx_compiler() -> bool {
    succeeds("c++", &["--version"])
        || succeeds("g++", &["--version"])
        || succeeds("clang++", &["--version"])
}

/// Whether `name` is a file clang-sys loads as libclang: `libclang.so`, `libclang.so.N` or
/// `libclang-N.so[.M]` — and not `libclang-cpp.so.N` (the C++ library, which a fresh Debian
/// has through LLVM and which bindgen cannot use).
fn is_libclang(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("libclang") else {
        return false;
    };
    rest == ".so"
        || rest.starts_with(".so.")
        || rest
            .strip_prefix('-')
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && v.contains(".so"))
}

/// Whether `dir` holds a libclang (see [`is_libclang`]).
fn has_libclang_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| is_libclang(&e.file_name().to_string_lossy()))
    })
}

/// Where clang-sys looks on Debian: `LIBCLANG_PATH`, each `/usr/lib/llvm-N/lib`, the
/// multiarch library directories.
fn has_libclang() -> bool {
    if let Some(p) = env::var_os("LIBCLANG_PATH") {
        return has_libclang_in(Path::new(&p));
    }
    subdirs(Path::new("/usr/lib"), "llvm-")
        .iter()
        .any(|d| has_libclang_in(&d.join("lib")))
        || has_libclang_in(Path::new("/usr/lib/x86_64-linux-gnu"))
        || has_libclang_in(Path::new("/usr/lib/aarch64-linux-gnu"))
}

fn has_pg_server() -> bool {
    if let Some(bin) = env::var_os("SOD_PG_BIN") {
        return Path::new(&bin).join("postgres").is_file();
    }
    subdirs(Path::new("/usr/lib/postgresql"), "")
        .iter()
        .any(|d| d.join("bin/postgres").is_file() && d.join("bin/initdb").is_file())
        || (on_path("postgres") && on_path("initdb"))
}

/// Where `sftp-server` is installed (the places `sod_testkit::ssh` looks at).
fn has_sftp_server() -> bool {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .iter()
    .any(|p| Path::new(p).is_file())
}

/// What a prerequisite is needed for. Every command that compiles or runs sod checks the
/// prerequisites of its own needs from the one list [`PREREQUISITES`], so `demo` can never need
/// something `test` did not install (a unit test below pins it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Compiling the workspace (aws-lc-sys and pg_query's build scripts).
    Build,
    /// Running `sod demo` (an ephemeral PostgreSQL cluster).
    Demo,
    /// The test suite's real peers.
    Test,
    /// Building the cargo-fuzz targets (libFuzzer is C++).
    Fuzz,
    /// The baselines and counters of `cargo xtask bench pg`.
    Bench,
}

struct Prerequisite {
    what: &'static str,
    needed_for: Need,
    present: fn() -> bool,
    /// The Debian package that provides it, if there is one.
    package: Option<&'static str>,
    hint: &'static str,
}

/// Every prerequisite of every command, once.
const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite {
        what: "C compiler (aws-lc-sys, pg_query)",
        needed_for: Need::Build,
        present: has_c_compiler,
        package: Some("gcc"),
        hint: "",
    },
    Prerequisite {
        what: "libclang (bindgen for pg_query)",
        needed_for: Need::Build,
        present: has_libclang,
        package: Some("libclang-dev"),
        hint: "",
    },
    Prerequisite {
        what: "PostgreSQL server binaries (initdb, postgres, pg_ctl)",
        needed_for: Need::Demo,
        present: has_pg_server,
        package: Some("postgresql"),
        hint: "or set SOD_PG_BIN to a directory holding them",
    },
    Prerequisite {
        what: "OpenSSH server (sshd; its package brings ssh-keygen)",
        needed_for: Need::Demo,
        present: || Path::new("/usr/sbin/sshd").is_file() || on_path("sshd"),
        package: Some("openssh-server"),
        hint: "",
    },
    Prerequisite {
        what: "OpenSSH SFTP server (sftp-server)",
        needed_for: Need::Demo,
        present: has_sftp_server,
        package: Some("openssh-sftp-server"),
        hint: "",
    },
    Prerequisite {
        what: "PostgreSQL clients (psql, pgbench)",
        needed_for: Need::Test,
        present: || on_path("psql") && on_path("pgbench"),
        package: Some("postgresql-client"),
        hint: "",
    },
    Prerequisite {
        what: "PgBouncer (the baseline of `cargo xtask bench pg`)",
        needed_for: Need::Test,
        present: || Path::new("/usr/sbin/pgbouncer").is_file() || on_path("pgbouncer"),
        package: Some("pgbouncer"),
        hint: "",
    },
    Prerequisite {
        what: "OpenSSH client (ssh, scp, sftp)",
        needed_for: Need::Test,
        present: || on_path("ssh") && on_path("scp") && on_path("sftp"),
        package: Some("openssh-client"),
        hint: "",
    },
    Prerequisite {
        what: "rsync (run over ssh by the SSH tests)",
        needed_for: Need::Test,
        present: || on_path("rsync"),
        package: Some("rsync"),
        hint: "",
    },
    Prerequisite {
        what: "tmux (the terminal of the SSH PTY tests)",
        needed_for: Need::Test,
        present: || on_path("tmux"),
        package: Some("tmux"),
        hint: "",
    },
    Prerequisite {
        what: "sshpass (the `sod demo` walkthrough's SSH commands, run by its test)",
        needed_for: Need::Test,
        present: || on_path("sshpass"),
        package: Some("sshpass"),
        hint: "",
    },
    Prerequisite {
        what: "PostgreSQL JDBC driver (the driver compatibility suite)",
        needed_for: Need::Test,
        present: || Path::new(JDBC_JAR).is_file(),
        package: Some("libpostgresql-jdbc-java"),
        hint: "",
    },
    Prerequisite {
        what: "a JDK 11+ (runs the suite's JDBC program from source, which needs its compiler)",
        needed_for: Need::Test,
        present: || on_path("java") && on_path("javac"),
        package: Some("default-jdk-headless"),
        hint: "",
    },
    Prerequisite {
        what: "Python 3 with venv (the suite's psycopg 3, asyncpg and SQLAlchemy)",
        needed_for: Need::Test,
        present: || succeeds("python3", &["-c", "import venv, ensurepip"]),
        package: Some("python3-venv"),
        hint: "",
    },
    Prerequisite {
        what: "Node.js and npm (the suite's node-postgres)",
        needed_for: Need::Test,
        present: || on_path("node") && on_path("npm"),
        package: Some("npm"),
        hint: "",
    },
    Prerequisite {
        what: "kubectl",
        needed_for: Need::Test,
        present: || on_path("kubectl"),
        package: None,
        hint: "install it from https://kubernetes.io/docs/tasks/tools/ (Debian bookworm has no package)",
    },
    Prerequisite {
        what: "socat (the bare relay `cargo xtask bench pg` compares with)",
        needed_for: Need::Bench,
        present: || on_path("socat"),
        package: Some("socat"),
        hint: "",
    },
    Prerequisite {
        what: "valgrind (instructions per transaction in `cargo xtask bench pg`)",
        needed_for: Need::Bench,
        present: || on_path("valgrind"),
        package: Some("valgrind"),
        hint: "",
    },
    Prerequisite {
        what: "C++ compiler (libFuzzer, for the fuzz targets)",
        needed_for: Need::Fuzz,
        present: has_cxx_compiler,
        package: Some("g++"),
        hint: "",
    },
];

/// Where Debian's libpostgresql-jdbc-java puts the driver.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Installs the driver compatibility suite's drivers from their registries, at the versions
/// pinned in `sod-cli/tests/drivers/` (`requirements.txt` for PyPI, `package-lock.json` for
/// npm), into `target/drivers/` (`venv/`, `node/node_modules/`). Reinstalls only when a pin
/// file changed. Returns the directory, which the suite finds as `$SOD_DRIVERS`.
fn install_drivers() -> Result<PathBuf, String> {
    let root = workspace_root();
    let pins = root.join("sod-cli/tests/drivers");
    let dir = root.join("target/drivers");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let same =
        |pin: &str, copy: &Path| std::fs::read(pins.join(pin)).ok() == std::fs::read(copy).ok();
    let venv = dir.join("venv");
    let installed_requirements = venv.join("sod-requirements.txt");
    if !same("requirements.txt", &installed_requirements) {
        step("the suite's Python drivers (PyPI, exact pins)");
        let _ = std::fs::remove_dir_all(&venv);
        let venv_s = venv.to_string_lossy().into_owned();
        run("python3", &["-m", "venv", &venv_s])?;
        let pip = venv.join("bin/pip").to_string_lossy().into_owned();
        let req = pins.join("requirements.txt").to_string_lossy().into_owned();
        run(
            &pip,
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                &req,
            ],
        )?;
        std::fs::copy(pins.join("requirements.txt"), &installed_requirements)
            .map_err(|e| format!("cannot record the installed requirements: {e}"))?;
    }
    let node = dir.join("node");
    let installed_lock = node.join("package-lock.json");
    if !same("package-lock.json", &installed_lock) || !node.join("node_modules/pg").is_dir() {
        step("the suite's node-postgres (npm ci, package-lock.json)");
        std::fs::create_dir_all(&node)
            .map_err(|e| format!("cannot create {}: {e}", node.display()))?;
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(pins.join(f), node.join(f))
                .map_err(|e| format!("cannot copy {f}: {e}"))?;
        }
        let node_s = node.to_string_lossy().into_owned();
        run(
            "npm",
            &[
                "ci",
                "--prefix",
                &node_s,
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
            ],
        )?;
    }
    Ok(dir)
}

/// The prerequisites of a command that has the given needs, in [`PREREQUISITES`] order.
fn prerequisites(needs: &[Need]) -> Vec<&'static Prerequisite> {
    PREREQUISITES
        .iter()
        .filter(|p| needs.contains(&p.needed_for))
        .collect()
}

/// What `cargo xtask demo` needs: to build sod and start a cluster.
const DEMO_NEEDS: &[Need] = &[Need::Build, Need::Demo];
/// What `cargo xtask test` needs without its fuzz smoke run.
const TEST_NEEDS: &[Need] = &[Need::Build, Need::Demo, Need::Test];
/// What `cargo xtask bench pg` needs.
const BENCH_PG_NEEDS: &[Need] = &[Need::Build, Need::Demo, Need::Test, Need::Bench];
/// What `cargo xtask fuzz` needs.
const FUZZ_NEEDS: &[Need] = &[Need::Build, Need::Fuzz];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    let install = |pkgs: &[&str]| {
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend_from_slice(pkgs);
        eprintln!("$ apt-get {}", args.join(" "));
        Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if install(packages) {
        return Ok(());
    }
    eprintln!("apt-get install failed; refreshing the package lists and trying again");
    run("apt-get", &["update"])?;
    if install(packages) {
        Ok(())
    } else {
        Err(format!("apt-get install {} failed", packages.join(" ")))
    }
}

fn check_prerequisites(wanted: &[&Prerequisite]) -> Result<(), String> {
    step("checking prerequisites");
    let missing: Vec<&Prerequisite> = wanted.iter().copied().filter(|p| !(p.present)()).collect();
    for p in wanted {
        let ok = !missing.iter().any(|m| m.what == p.what);
        eprintln!("  [{}] {}", if ok { "ok" } else { "missing" }, p.what);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().filter_map(|p| p.package).collect();
    packages.dedup();
    let unpackaged: Vec<&&Prerequisite> = missing.iter().filter(|p| p.package.is_none()).collect();
    if !packages.is_empty() {
        if is_root() && on_path("apt-get") {
            step(&format!("installing {}", packages.join(" ")));
            apt_install(&packages)?;
        } else {
            return Err(format!(
                "missing prerequisites; install them with:\n\n    sudo apt-get install -y --no-install-recommends {}\n",
                packages.join(" ")
            ));
        }
    }
    if !unpackaged.is_empty() {
        let list: Vec<String> = unpackaged
            .iter()
            .map(|p| format!("  {}: {}", p.what, p.hint))
            .collect();
        return Err(format!(
            "missing prerequisites without a Debian package:\n{}",
            list.join("\n")
        ));
    }
    let still: Vec<&str> = wanted
        .iter()
        .filter(|p| !(p.present)())
        .map(|p| p.what)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after installing: {}",
            still.join(", ")
        ))
    }
}

fn ensure_nextest() -> Result<(), String> {
    if succeeds("cargo", &["nextest", "--version"]) {
        return Ok(());
    }
    step("installing cargo-nextest");
    run("cargo", &["install", "cargo-nextest", "--locked"])
}

fn test(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let (own, passthrough) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut lint = true;
    let mut fuzz_seconds = match env::var("SOD_FUZZ_SECONDS") {
        Ok(s) if !s.trim().is_empty() => s.trim().parse::<u64>().map_err(|_| {
            format!("SOD_FUZZ_SECONDS must be a whole number of seconds, not `{s}`")
        })?,
        _ => FUZZ_SMOKE_SECONDS,
    };
    for a in own {
        match a.as_str() {
            "--no-lint" => lint = false,
            "--no-fuzz" => fuzz_seconds = 0,
            other => return Err(format!("unknown option `{other}` for `test`\n\n{USAGE}")),
        }
    }
    let mut needs = TEST_NEEDS.to_vec();
    if fuzz_seconds > 0 {
        needs.push(Need::Fuzz);
    }
    check_prerequisites(&prerequisites(&needs))?;
    ensure_nextest()?;
    if fuzz_seconds > 0 {
        ensure_cargo_fuzz()?;
    }
    if lint {
        step("formatting");
        run("cargo", &["fmt", "--all", "--", "--check"])?;
        run(
            "cargo",
            &["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"],
        )?;
        step("clippy");
        run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        )?;
    }
    step("tests (cargo nextest)");
    let profile = if env::var_os("CI").is_some() {
        "ci"
    } else {
        "default"
    };
    let mut nextest = vec![
        "nextest",
        "run",
        "--workspace",
        "--all-features",
        "--locked",
        "--profile",
        profile,
    ];
    nextest.extend(passthrough.iter().map(String::as_str));
    let drivers = install_drivers()?;
    run_with_env(
        "cargo",
        &nextest,
        &[("SOD_DRIVERS", drivers.to_string_lossy().into_owned())],
    )?;
    step("doc tests");
    run(
        "cargo",
        &["test", "--workspace", "--all-features", "--doc", "--locked"],
    )?;
    step("API docs (rustdoc -D warnings: broken and private links fail)");
    run(
        "cargo",
        &[
            "doc",
            "--workspace",
            "--all-features",
            "--no-deps",
            "--locked",
            "--config",
            "build.rustdocflags=[\"-D\", \"warnings\"]",
        ],
    )?;
    step("packaging (cargo package: every published crate builds from what it would upload)");
    package()?;
    if fuzz_seconds > 0 {
        if env::var_os("CI").is_some() {
            // The fuzz targets build in their own target directory; on a CI machine the test
            // build's binaries (gigabytes) would only leave the fuzz build without disk.
            free_build_outputs();
        }
        step(&format!(
            "fuzz smoke run: {} targets, {fuzz_seconds}s each (SOD_FUZZ_SECONDS; --no-fuzz skips)",
            FUZZ_TARGETS.len()
        ));
        fuzz(FUZZ_TARGETS, fuzz_seconds)?;
    } else {
        step("fuzz smoke run skipped");
    }
    eprintln!(
        "\nall checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask soak noninterference [--seconds N] [--seed S]`: the noninterference property
/// test of `sod-postgres/tests/noninterference.rs`, for longer than CI runs it.
fn soak(args: &[String]) -> Result<(), String> {
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        Some("noninterference") => {}
        Some("load") => return soak_load(args),
        _ => {
            return Err(format!(
                "soak needs a suite: noninterference or load\n\n{USAGE}"
            ));
        }
    }
    let mut seconds = "600".to_owned();
    let mut seed = None;
    while let Some(a) = args.next() {
        match a {
            "--seconds" => seconds = args.next().unwrap_or_default().to_owned(),
            "--seed" => seed = args.next().map(str::to_owned),
            other => return Err(format!("unknown option `{other}` for `soak`\n\n{USAGE}")),
        }
    }
    if seconds.parse::<u64>().map_or(true, |s| s == 0) {
        return Err(format!(
            "--seconds needs a positive whole number, not `{seconds}`"
        ));
    }
    check_prerequisites(&prerequisites(TEST_NEEDS))?;
    let mut env = vec![("SOD_NONINTERFERENCE_SECONDS", seconds)];
    if let Some(seed) = seed {
        env.push(("SOD_NONINTERFERENCE_SEED", seed));
    }
    // `cargo test`, not nextest: no slow-test timeout ends a long soak.
    run_with_env(
        "cargo",
        &[
            "test",
            "-p",
            "sod-postgres",
            "--all-features",
            "--test",
            "noninterference",
            "--",
            "--nocapture",
        ],
        &env,
    )
}

/// Removes the workspace's debug build and package builds, reporting the space freed. Only
/// for CI: the next steps build elsewhere, and a clean clone has nothing to keep.
fn free_build_outputs() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    for dir in ["debug", "package"] {
        let path = target.join(dir);
        if path.exists() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => eprintln!("removed {} to free disk for the fuzz build", path.display()),
                Err(e) => eprintln!("could not remove {}: {e}", path.display()),
            }
        }
    }
}

/// Crates of the workspace that are not published.
const UNPUBLISHED: &[&str] = &["xtask", "sod-examples"];

/// `cargo package` of every published crate, verified: each is built from its packaged
/// sources against the others' packages (a file left out of a package, a path dependency
/// without a version, a feature that does not build alone all fail here, not at release).
fn package() -> Result<(), String> {
    forget_packaged_sources();
    let mut args = vec!["package", "--workspace", "--allow-dirty", "--locked"];
    for crate_name in UNPUBLISHED {
        args.extend(["--exclude", crate_name]);
    }
    run("cargo", &args)
}

/// Removes what earlier `cargo package` runs left: `target/package` and cargo's extracted
/// copies of sod's own packages.
///
/// `cargo package --workspace` verifies each crate against the others' packages through a
/// local registry in `target/package/tmp-registry`, extracts them under
/// `$CARGO_HOME/registry/src/-HASH/` and builds them in `target/package/tmp-crate`, all keyed
/// by name and version, as registry crates never change. The version stays 0.1.0 between
/// releases, so a later run with the same target directory built against an earlier run's
/// sources and artifacts (sod-audit against a sod-core without the API it had just gained).
/// They are caches: removing them costs one extraction and one build.
fn forget_packaged_sources() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let _ = std::fs::remove_dir_all(target.join("package"));
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    for registry in registries.flatten() {
        // Local registries have no host name: their directories are named `-HASH`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("sod-") {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

/// `cargo xtask demo [ARGS]`: `sod demo` with the given flags (the dev profile: it shares
/// the build with the tests, and the demo needs no speed).
///
/// Checks the prerequisites first, exactly as `test` does, so a fresh machine gets the missing
/// packages (or the one command that installs them) before anything compiles; and builds
/// without `--quiet`, so a first build shows cargo's progress instead of minutes of silence.
fn demo(args: &[String]) -> Result<(), String> {
    check_prerequisites(&prerequisites(DEMO_NEEDS))?;
    let built = workspace_root().join("target/debug/sod").is_file();
    step(if built {
        "building sod (sod-cli, dev profile)"
    } else {
        "building sod (sod-cli, dev profile) for the first time: a cold build compiles about 210 \
         crates, 3 to 10 minutes on 2 cores; later runs take seconds"
    });
    run("cargo", &["build", "-p", "sod-cli", "--bin", "sod"])?;
    step("sod demo");
    let mut command = vec![
        "run", "--quiet", "-p", "sod-cli", "--bin", "sod", "--", "demo",
    ];
    command.extend(args.iter().map(String::as_str));
    run("cargo", &command)
}

fn bench(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("core") => run("cargo", &["bench", "-p", "sod-core", "--bench", "core"]),
        Some("audit") => run("cargo", &["bench", "-p", "sod-audit", "--bench", "audit"]),
        Some("sql") => run(
            "cargo",
            &[
                "bench",
                "-p",
                "sod-postgres",
                "--all-features",
                "--bench",
                "analyze",
            ],
        ),
        Some("statement") => run(
            "cargo",
            &["bench", "-p", "sod-postgres", "--bench", "statement"],
        ),
        Some("pg") => {
            check_prerequisites(&prerequisites(BENCH_PG_NEEDS))?;
            run("cargo", &["bench", "-p", "sod-cli", "--bench", "pg"])
        }
        Some("pg-masking") => {
            // The pg bench with a custom script over a table with masked columns, and the
            // unmasked executor as a column: the cost of masking, measured against sod
            // without it. Absolute paths: cargo runs the bench in the package's directory.
            check_prerequisites(&prerequisites(BENCH_PG_NEEDS))?;
            let dir = workspace_root().join("sod-cli/benches/pg-masking");
            let path = |f: &str| dir.join(f).display().to_string();
            run_with_env(
                "cargo",
                &["bench", "-p", "sod-cli", "--bench", "pg"],
                &[
                    ("SOD_BENCH_SETUP_SQL", path("setup.sql")),
                    ("SOD_BENCH_SCRIPT", path("select.pgbench")),
                    ("SOD_BENCH_MASKS", path("masks.toml")),
                    ("SOD_BENCH_EXECUTOR", "1".to_owned()),
                    ("SOD_BENCH_SESSIONS", "0".to_owned()),
                    ("SOD_BENCH_INSTRUCTIONS", "0".to_owned()),
                ],
            )
        }
        Some("ssh") => run("cargo", &["bench", "-p", "sod-ssh", "--bench", "ssh"]),
        Some("k8s") => run("cargo", &["bench", "-p", "sod-k8s", "--bench", "k8s"]),
        _ => Err(format!(
            "bench needs a suite: core, audit, sql, statement, pg, pg-masking, ssh or k8s\n\n{USAGE}"
        )),
    }
}

/// `soak load`: the pg bench in its load mode (`sod-cli/benches/pg.rs`).
fn soak_load<'a>(mut args: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seconds = "600".to_owned();
    let mut sessions = "1000".to_owned();
    while let Some(a) = args.next() {
        match a {
            "--seconds" => seconds = args.next().unwrap_or_default().to_owned(),
            "--sessions" => sessions = args.next().unwrap_or_default().to_owned(),
            other => {
                return Err(format!(
                    "unknown option `{other}` for `soak load`\n\n{USAGE}"
                ));
            }
        }
    }
    for (flag, value) in [("--seconds", &seconds), ("--sessions", &sessions)] {
        if value.parse::<u64>().map_or(true, |s| s == 0) {
            return Err(format!(
                "{flag} needs a positive whole number, not `{value}`"
            ));
        }
    }
    check_prerequisites(&prerequisites(BENCH_PG_NEEDS))?;
    run_with_env(
        "cargo",
        &["bench", "-p", "sod-cli", "--bench", "pg"],
        &[
            ("SOD_BENCH_LOAD_SECONDS", seconds),
            ("SOD_BENCH_LOAD_SESSIONS", sessions.clone()),
            ("SOD_BENCH_SESSIONS", sessions),
            ("SOD_BENCH_SCALE", "1".to_owned()),
        ],
    )
}

/// The cargo-fuzz targets in `fuzz/` (see `fuzz/Cargo.toml`).
const FUZZ_TARGETS: &[&str] = &[
    "pg_startup_decode",
    "pg_frontend_decode",
    "pg_backend_decode",
    "pg_sql_analyze",
    "pg_mask_rows",
    "pg_session_driver",
    "capability_parse",
    "policy_toml",
    "audit_log_verify",
    "ssh_command",
    "sftp_codec",
    "k8s_request_info",
    "k8s_watch_mask",
    "k8s_spdy_frames",
];

/// Seconds per target of `cargo xtask fuzz`.
const FUZZ_DEFAULT_SECONDS: u64 = 60;
/// Seconds per target of the smoke run in `cargo xtask test` (overridden by `SOD_FUZZ_SECONDS`).
const FUZZ_SMOKE_SECONDS: u64 = 15;
/// libFuzzer's limit on the fuzzing process's resident memory.
const FUZZ_RSS_LIMIT_MB: u32 = 2048;
/// The file names libFuzzer gives the inputs that made a target fail.
const FUZZ_FAILURE_PREFIXES: &[&str] = &["crash-", "oom-", "timeout-", "leak-"];

fn ensure_cargo_fuzz() -> Result<(), String> {
    if succeeds("cargo", &["fuzz", "--version"]) {
        return Ok(());
    }
    step("installing cargo-fuzz");
    // Pinned, so every CI run fuzzes with the same tool.
    run(
        "cargo",
        &["install", "cargo-fuzz", "--version", "0.13.2", "--locked"],
    )
}

/// `cargo xtask fuzz [<target>|all] [--seconds N]`.
fn fuzz_command(args: &[String]) -> Result<(), String> {
    let mut which: Option<&str> = None;
    let mut seconds = FUZZ_DEFAULT_SECONDS;
    let mut args = args.iter().map(String::as_str);
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--seconds") {
            Some("") => Some(args.next().unwrap_or_default()),
            Some(v) if v.starts_with('=') => Some(&v[1..]),
            _ => None,
        };
        if let Some(v) = value {
            seconds = v
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--seconds needs a positive whole number, not `{v}`"))?;
        } else if a.starts_with('-') {
            return Err(format!("unknown option `{a}` for `fuzz`\n\n{USAGE}"));
        } else if which.replace(a).is_some() {
            return Err(format!("`fuzz` takes one target or `all`\n\n{USAGE}"));
        }
    }
    let targets: Vec<&str> = match which {
        None | Some("all") => FUZZ_TARGETS.to_vec(),
        Some(t) if FUZZ_TARGETS.contains(&t) => vec![t],
        Some(other) => {
            return Err(format!(
                "unknown fuzz target `{other}`; the targets are: {}",
                FUZZ_TARGETS.join(", ")
            ));
        }
    };
    check_prerequisites(&prerequisites(FUZZ_NEEDS))?;
    ensure_cargo_fuzz()?;
    fuzz(&targets, seconds)
}

/// What libFuzzer reported about one run (`-print_final_stats=1`).
#[derive(Default)]
struct FuzzStats {
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    new_units: Option<u64>,
    peak_rss_mb: Option<u64>,
    /// Where libFuzzer wrote the failing input, from its own output.
    artifacts: Vec<PathBuf>,
}

impl FuzzStats {
    fn take_line(&mut self, line: &str) {
        let stat = |name: &str| {
            line.strip_prefix(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(v) = stat("stat::number_of_executed_units:") {
            self.runs = Some(v);
        } else if let Some(v) = stat("stat::average_exec_per_sec:") {
            self.execs_per_sec = Some(v);
        } else if let Some(v) = stat("stat::new_units_added:") {
            self.new_units = Some(v);
        } else if let Some(v) = stat("stat::peak_rss_mb:") {
            self.peak_rss_mb = Some(v);
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifacts.push(PathBuf::from(path.trim()));
        }
    }

    fn summary(&self) -> String {
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!(
            "{} runs, {} exec/s, {} new inputs, peak RSS {} MB",
            n(self.runs),
            n(self.execs_per_sec),
            n(self.new_units),
            n(self.peak_rss_mb)
        )
    }
}

/// Files in `dir` whose name starts with one of `prefixes`, written since `since`.
fn new_files(dir: &Path, prefixes: &[&str], since: SystemTime) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    prefixes.iter().any(|p| name.starts_with(p))
                })
                .filter(|e| {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= since)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs `cargo fuzz run` for one target, echoing libFuzzer's output (without its line per new
/// input) and collecting its final statistics.
fn run_fuzz_target(
    target: &str,
    seconds: u64,
    corpus: &Path,
    seeds: &Path,
) -> Result<(ExitStatus, FuzzStats), String> {
    let max_time = format!("-max_total_time={seconds}");
    let rss = format!("-rss_limit_mb={FUZZ_RSS_LIMIT_MB}");
    let mut args: Vec<String> = ["fuzz", "run", "-s", "none", target]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(corpus.display().to_string());
    if seeds.is_dir() {
        args.push(seeds.display().to_string());
    }
    // A single input that takes 10 s is a hang: report it now, not after libFuzzer's default
    // of 20 minutes.
    args.extend([
        "--".into(),
        max_time,
        rss,
        "-timeout=10".into(),
        "-print_final_stats=1".into(),
    ]);
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(&args)
        .current_dir(workspace_root())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut stats = FuzzStats::default();
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut out = std::io::stderr().lock();
        let mut line = Vec::new();
        let mut in_dictionary = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            stats.take_line(text.trim_end());
            if text.starts_with("###### Recommended dictionary") {
                in_dictionary = true;
            }
            // One line per input added to the corpus (`#1234 NEW cov: …`, `REDUCE`, `NEW_FUNC`)
            // and libFuzzer's suggested dictionary: noise in a log.
            let quiet = in_dictionary
                || (text.starts_with('#')
                    && (text.contains("\tNEW ") || text.contains("\tREDUCE ")))
                || text.starts_with("\tNEW_FUNC");
            if text.starts_with("###### End of recommended dictionary") {
                in_dictionary = false;
            }
            if !quiet {
                let _ = out.write_all(&line);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for cargo fuzz: {e}"))?;
    Ok((status, stats))
}

/// Builds the fuzz targets, then runs each of `targets` for `seconds`; fails if any target
/// crashed, hung or ran out of memory, naming each one with its reproducer.
fn fuzz(targets: &[&str], seconds: u64) -> Result<(), String> {
    let started = Instant::now();
    let fuzz_dir = workspace_root().join("fuzz");
    step("building the fuzz targets (cargo fuzz build -s none)");
    let mut build = vec!["fuzz", "build", "-s", "none"];
    if let [one] = targets {
        build.push(one);
    }
    run("cargo", &build)?;

    let mut failures = Vec::new();
    let mut summaries = Vec::new();
    for (i, &target) in targets.iter().enumerate() {
        step(&format!(
            "fuzzing {target} for {seconds}s ({}/{})",
            i + 1,
            targets.len()
        ));
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = fuzz_dir.join("seeds").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        let since = SystemTime::now() - std::time::Duration::from_secs(1);
        let run_started = Instant::now();
        let (status, stats) = run_fuzz_target(target, seconds, &corpus, &seeds)?;
        let took = run_started.elapsed().as_secs_f64();
        let mut found = new_files(&artifacts, FUZZ_FAILURE_PREFIXES, since);
        for a in &stats.artifacts {
            let a = if a.is_absolute() {
                a.clone()
            } else {
                workspace_root().join(a)
            };
            if !found.iter().any(|f| same_file(f, &a)) {
                found.push(a);
            }
        }
        let slow = new_files(&artifacts, &["slow-unit-"], since);
        if !slow.is_empty() {
            eprintln!(
                "note: {target}: slow inputs (over 10 s each) saved as {}",
                list_paths(&slow)
            );
        }
        if status.success() && found.is_empty() {
            let line = format!("{target}: ok in {took:.0}s: {}", stats.summary());
            eprintln!("   {line}");
            summaries.push(line);
            continue;
        }
        let failure = match found.first() {
            None => format!(
                "fuzz target `{target}` failed ({status}) without saving an input; \
                 see its output above"
            ),
            Some(first) => format!(
                "fuzz target `{target}` found a failing input ({status}): {}\n    \
                 reproduce with: cargo fuzz run -s none {target} {}",
                list_paths(&found),
                relative(first).display()
            ),
        };
        eprintln!("\nxtask: {failure}");
        summaries.push(format!("{target}: FAILED: {}", stats.summary()));
        failures.push(failure);
    }

    step(&format!(
        "fuzzing done in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    for s in &summaries {
        eprintln!("  {s}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix(workspace_root()).unwrap_or(path)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The paths, relative to the workspace root where they are inside it.
fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| relative(p).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo path needs nothing `cargo xtask test` (what CI runs) does not check and install.
    #[test]
    fn demo_needs_nothing_test_does_not_install() {
        let test: Vec<&str> = prerequisites(TEST_NEEDS).iter().map(|p| p.what).collect();
        let demo = prerequisites(DEMO_NEEDS);
        assert!(!demo.is_empty());
        for p in demo {
            assert!(
                test.contains(&p.what),
                "`demo` needs {} that `test` does not",
                p.what
            );
        }
        // Both compile the workspace, so both need what compiling needs.
        for p in prerequisites(&[Need::Build]) {
            assert!(test.contains(&p.what));
        }
    }

    #[test]
    fn libclang_is_the_c_library_only() {
        for yes in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so.1",
            "libclang-16.so",
        ] {
            assert!(is_libclang(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclang-cpp.so",
            "libclangBasic.a",
            "libclang.a",
        ] {
            assert!(!is_libclang(no), "{no}");
        }
    }

    /// What the SSH fixture (`sod_testkit::ssh`) runs: the demo's target server, the tests'
    /// clients; one package is installed once.
    #[test]
    fn ssh_fixture_programs_are_installed() {
        let packages = |needs: &[Need]| -> Vec<&str> {
            prerequisites(needs)
                .iter()
                .filter_map(|p| p.package)
                .collect()
        };
        let demo = packages(DEMO_NEEDS);
        let test = packages(TEST_NEEDS);
        for package in ["openssh-server", "openssh-sftp-server"] {
            assert!(demo.contains(&package), "`demo` does not install {package}");
        }
        for package in ["openssh-client", "rsync", "tmux", "sshpass"] {
            assert!(test.contains(&package), "`test` does not install {package}");
        }
        let mut unique = packages(&[Need::Build, Need::Demo, Need::Test, Need::Fuzz]);
        let all = unique.len();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all, "a package is listed twice");
    }

    #[test]
    fn every_prerequisite_belongs_to_a_command() {
        let all = [Need::Build, Need::Demo, Need::Test, Need::Fuzz, Need::Bench];
        assert_eq!(prerequisites(&all).len(), PREREQUISITES.len());
        let named: Vec<&str> = PREREQUISITES.iter().map(|p| p.what).collect();
        let mut unique = named.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), named.len(), "a prerequisite is listed twice");
    }
}
