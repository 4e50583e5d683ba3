//! Project automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask test`  — check and install prerequisites, then lint and run every test.
//! - `cargo xtask demo`  — run the demo (once sod-cli exists).
//! - `cargo xtask bench <core>` — run a benchmark suite.
//!
//! Standard library only, so it builds in seconds on a fresh machine.

#![allow(clippy::print_stdout)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-lint] [-- <nextest args>]
        check prerequisites (installing missing Debian packages when run as root),
        then cargo fmt --check, clippy -D warnings, cargo nextest and the doc tests
  demo  run the sod demo (needs sod-cli)
  bench core
        criterion benchmarks of sod-core's hot paths
  help  this text
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
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
    eprintln!("$ {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
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

/// Files in `dir` whose name starts with `prefix`.
fn any_file(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    })
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

fn has_libclang() -> bool {
    if env::var_os("LIBCLANG_PATH").is_some_and(|p| any_file(Path::new(&p), "libclang")) {
        return true;
    }
    subdirs(Path::new("/usr/lib"), "llvm-")
        .iter()
        .any(|d| any_file(&d.join("lib"), "libclang"))
        || any_file(Path::new("/usr/lib/x86_64-linux-gnu"), "libclang-")
        || any_file(Path::new("/usr/lib/aarch64-linux-gnu"), "libclang-")
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

struct Prerequisite {
    what: &'static str,
    present: fn() -> bool,
    /// The Debian package that provides it, if there is one.
    package: Option<&'static str>,
    hint: &'static str,
}

const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite {
        what: "C compiler (aws-lc-sys, pg_query)",
        present: has_c_compiler,
        package: Some("gcc"),
        hint: "",
    },
    Prerequisite {
        what: "libclang (bindgen for pg_query)",
        present: has_libclang,
        package: Some("libclang-dev"),
        hint: "",
    },
    Prerequisite {
        what: "PostgreSQL server binaries (initdb, postgres, pg_ctl)",
        present: has_pg_server,
        package: Some("postgresql"),
        hint: "or set SOD_PG_BIN to a directory holding them",
    },
    Prerequisite {
        what: "PostgreSQL clients (psql, pgbench)",
        present: || on_path("psql") && on_path("pgbench"),
        package: Some("postgresql-client"),
        hint: "",
    },
    Prerequisite {
        what: "OpenSSH server (sshd)",
        present: || Path::new("/usr/sbin/sshd").is_file() || on_path("sshd"),
        package: Some("openssh-server"),
        hint: "",
    },
    Prerequisite {
        what: "OpenSSH client (ssh)",
        present: || on_path("ssh"),
        package: Some("openssh-client"),
        hint: "",
    },
    Prerequisite {
        what: "kubectl",
        present: || on_path("kubectl"),
        package: None,
        hint: "install it from https://kubernetes.io/docs/tasks/tools/ (Debian bookworm has no package)",
    },
];

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

fn check_prerequisites() -> Result<(), String> {
    step("checking prerequisites");
    let missing: Vec<&Prerequisite> = PREREQUISITES.iter().filter(|p| !(p.present)()).collect();
    for p in PREREQUISITES {
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
    let still: Vec<&str> = PREREQUISITES
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
    for a in own {
        match a.as_str() {
            "--no-lint" => lint = false,
            other => return Err(format!("unknown option `{other}` for `test`\n\n{USAGE}")),
        }
    }
    check_prerequisites()?;
    ensure_nextest()?;
    if lint {
        step("formatting");
        run("cargo", &["fmt", "--all", "--", "--check"])?;
        step("clippy");
        run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
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
        "--locked",
        "--profile",
        profile,
    ];
    nextest.extend(passthrough.iter().map(String::as_str));
    run("cargo", &nextest)?;
    step("doc tests");
    run("cargo", &["test", "--workspace", "--doc", "--locked"])?;
    eprintln!(
        "\nall checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo() -> Result<(), String> {
    if workspace_root().join("crates/sod-cli").is_dir() {
        run(
            "cargo",
            &["run", "--release", "-p", "sod-cli", "--", "demo"],
        )
    } else {
        Err(
            "the demo needs the sod binary (crate sod-cli), which does not exist yet; \
             see the open issues for when it lands"
                .into(),
        )
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("core") => run("cargo", &["bench", "-p", "sod-core", "--bench", "core"]),
        _ => Err(format!("bench needs a suite: core\n\n{USAGE}")),
    }
}
