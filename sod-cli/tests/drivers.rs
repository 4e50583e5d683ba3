//! The compatibility suite: the clients agents and their frameworks use, as published, through
//! `sod demo` — psycopg 3, asyncpg, SQLAlchemy 2 (reflection and sample rows), the PostgreSQL
//! JDBC driver, node-postgres, sqlx, `pg_dump --schema-only` and psql's backslash commands —
//! each as the unmasked executor and as the masked planner.
//!
//! Every step either works or is refused with a clear reason (SQLSTATE 42501 and a message
//! naming the rule), never a protocol error or a hang: each driver run is bounded by
//! [`RUN_LIMIT`]. Nothing the planner sees may hold a customer's e-mail, phone, SSN or card
//! number, which the executor reads first (the probe).
//!
//! The drivers are installed by `cargo xtask drivers` (which `cargo xtask test` runs): a
//! Python venv (`requirements.txt`), node-postgres (`package-lock.json`) under
//! `target/drivers/` (or `$SOD_DRIVERS`), Debian's `libpostgresql-jdbc-java` and a JDK.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sod_testkit::poll::poll_until;
use support::{Demo, text};

/// The longest a driver's whole run may take; beyond it the run is a hang, and fails.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The scripts, beside this file.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

/// Where `cargo xtask drivers` installed the Python venv and node-postgres.
fn installed() -> PathBuf {
    std::env::var_os("SOD_DRIVERS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/drivers"),
        PathBuf::from,
    )
}

/// `path`, which must exist; otherwise the test fails naming what installs it.
fn need(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: {what} (run `cargo xtask drivers`, which `cargo xtask test` runs, to install the suite's drivers)",
        path.display()
    );
    path
}

/// One step a driver script reported.
#[derive(Debug)]
struct Step {
    step: String,
    ok: bool,
    line: String,
    sqlstate: String,
    message: String,
}

/// What a step must give for one role.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// It works, and its value shows each of these.
    Ok(&'static [&'static str]),
    /// It is refused with this SQLSTATE and a message holding these words.
    Refused(&'static str, &'static str),
}

use Want::{Ok, Refused};

/// A demo gateway and what the planner must never see.
struct Gateway {
    demo: Demo,
    planted: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let demo = Demo::start(&dir.path().join("tokens.json"), &["--approval-wait", "1"]);
        let probe = support::psql(
            demo.port,
            &demo.database(),
            &demo.token("executor"),
            "COPY (SELECT email, phone, ssn, card_number FROM customers) TO STDOUT",
        )
        .output()
        .unwrap();
        assert!(probe.status.success(), "{}", text(&probe.stderr));
        let planted: Vec<String> = text(&probe.stdout)
            .lines()
            .flat_map(|l| l.split('\t').map(str::to_owned))
            .filter(|v| v.len() >= 6)
            .collect();
        assert!(planted.len() > 100);
        Gateway {
            demo,
            planted,
            _dir: dir,
        }
    }

    /// `cmd` with the gateway's address and `role`'s token in its environment.
    fn env(&self, cmd: &mut Command, role: &str) {
        cmd.env("SOD_PORT", self.demo.port.to_string())
            .env("SOD_DB", self.demo.database())
            .env("SOD_TOKEN", self.demo.token(role))
            .env("PGPASSWORD", self.demo.token(role))
            .env("PGCONNECT_TIMEOUT", "10");
    }

    /// A conninfo string for libpq tools.
    fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={} user=agent",
            self.demo.port,
            self.demo.database()
        )
    }

    /// Fails if `shown` holds any value the planner must not see.
    fn assert_no_leak(&self, what: &str, shown: &str) {
        if let Some(leak) = self.planted.iter().find(|p| shown.contains(p.as_str())) {
            panic!("{what} shows {leak:?} to the masked planner:\n{shown}");
        }
    }
}

/// Runs `cmd` to its end within [`RUN_LIMIT`]; its exit status, stdout and stderr.
fn run_bounded(mut cmd: Command, what: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = poll_until(RUN_LIMIT + Duration::from_secs(1), what, || {
        child.try_wait().unwrap()
    });
    (
        status.success(),
        reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

/// The steps a script printed, one JSON line each.
fn steps(stdout: &str) -> Vec<Step> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            Step {
                step: s("step"),
                ok: v["ok"].as_bool().unwrap_or(false),
                line: l.to_owned(),
                sqlstate: s("sqlstate"),
                message: s("message"),
            }
        })
        .collect()
}

/// Runs a driver's script as `role` and checks every step against `wants` (step, executor,
/// planner).
fn check(gw: &Gateway, driver: &str, role: &str, mut cmd: Command, wants: &[(&str, Want, Want)]) {
    gw.env(&mut cmd, role);
    let what = format!("{driver} as {role}");
    let (ok, stdout, stderr) = run_bounded(cmd, &what);
    assert!(ok, "{what} failed:\n{stdout}\n{stderr}");
    let got = steps(&stdout);
    let mut problems = Vec::new();
    for (step, executor, planner) in wants {
        let want = if role == "planner" { planner } else { executor };
        let Some(s) = got.iter().find(|s| s.step == *step) else {
            problems.push(format!("{step}: not reported"));
            continue;
        };
        match want {
            Ok(words) => {
                if !s.ok {
                    problems.push(format!("{step}: expected to work, got {}", s.line));
                }
                for w in *words {
                    if !s.line.contains(w) {
                        problems.push(format!("{step}: expected {w:?} in {}", s.line));
                    }
                }
            }
            Refused(code, words) => {
                if s.ok || s.sqlstate != *code || !s.message.contains(words) {
                    problems.push(format!(
                        "{step}: expected refusal {code} with {words:?}, got {}",
                        s.line
                    ));
                }
            }
        }
    }
    if role == "planner" {
        gw.assert_no_leak(&what, &stdout);
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

fn python(script: &str, role: &str) -> Command {
    let venv = need(
        installed().join("venv/bin/python"),
        "the suite's Python venv (psycopg 3, asyncpg, SQLAlchemy)",
    );
    let mut c = Command::new(venv);
    c.arg(scripts().join(script))
        .arg(role)
        .current_dir(scripts());
    c
}

/// A masked COPY of a sensitive column: refused, naming the column.
const COPY_MASKED: Want = Refused("42501", "COPY TO STDOUT is refused in this masked session");
/// A write by the planner: it needs an approval, which nobody gives within the demo's wait.
const NEEDS_APPROVAL: Want = Refused("42501", "approv");

#[test]
fn psycopg_3() {
    let gw = Gateway::start();
    let wants = [
        (
            "parameters",
            Ok(&["customer7@example.com"]),
            Ok(&["Lovelace"]),
        ),
        ("binary", Ok(&["customer7@example.com"]), Ok(&["Lovelace"])),
        ("prepared", Ok(&["customer3@example.com"]), Ok(&[])),
        (
            "named-cursor",
            Ok(&["Lovelace", "\"name\""]),
            Ok(&["Lovelace"]),
        ),
        (
            "named-cursor-sensitive",
            Ok(&["customer1@example.com"]),
            Ok(&["\"email\""]),
        ),
        ("pipeline", Ok(&["+1-555-1003"]), Ok(&[])),
        ("copy-out", Ok(&["paid"]), Ok(&["paid"])),
        ("copy-out-table-columns", Ok(&["shipped"]), Ok(&["shipped"])),
        (
            "copy-out-sensitive",
            Ok(&["customer1@example.com"]),
            COPY_MASKED,
        ),
        ("copy-in", Ok(&["[[2]]"]), NEEDS_APPROVAL),
        (
            "show-search-path",
            Ok(&["$user\\\", public"]),
            Ok(&["$user\\\", public"]),
        ),
        ("search-path", Ok(&["[[600]]"]), Ok(&["[[600]]"])),
    ];
    for role in ["executor", "planner"] {
        check(
            &gw,
            "psycopg 3",
            role,
            python("psycopg_suite.py", role),
            &wants,
        );
    }
}

#[test]
fn asyncpg() {
    let gw = Gateway::start();
    let wants = [
        ("connect", Ok(&[]), Ok(&[])),
        (
            "parameters",
            Ok(&["customer7@example.com"]),
            Ok(&["Lovelace"]),
        ),
        (
            "prepared-introspection",
            Ok(&["card_number"]),
            Ok(&["card_number"]),
        ),
        ("cursor", Ok(&["Lovelace"]), Ok(&["Lovelace"])),
        ("cursor-sensitive", Ok(&[]), Ok(&[])),
        ("copy-out", Ok(&["paid"]), Ok(&["paid"])),
        ("copy-out-sensitive", Ok(&["4111 1111"]), COPY_MASKED),
        ("copy-in", Ok(&["1"]), NEEDS_APPROVAL),
    ];
    for role in ["executor", "planner"] {
        check(
            &gw,
            "asyncpg",
            role,
            python("asyncpg_suite.py", role),
            &wants,
        );
    }
}

#[test]
fn sqlalchemy_reflection_and_sample_rows() {
    let gw = Gateway::start();
    let wants = [
        (
            "table-names",
            Ok(&["customers", "orders"]),
            Ok(&["customers", "orders"]),
        ),
        ("columns", Ok(&["card_number"]), Ok(&["card_number"])),
        ("primary-key", Ok(&["id"]), Ok(&["id"])),
        (
            "foreign-keys",
            Ok(&["customer_id", "customers"]),
            Ok(&["customer_id", "customers"]),
        ),
        ("sample-rows", Ok(&["@example.com"]), Ok(&["Lovelace"])),
    ];
    for role in ["executor", "planner"] {
        check(
            &gw,
            "SQLAlchemy",
            role,
            python("sqlalchemy_suite.py", role),
            &wants,
        );
    }
}

#[test]
fn jdbc() {
    let gw = Gateway::start();
    let jar = need(
        PathBuf::from("/usr/share/java/postgresql.jar"),
        "the PostgreSQL JDBC driver (apt-get install libpostgresql-jdbc-java)",
    );
    let wants = [
        (
            "prepare-threshold",
            Ok(&["customer7@example.com"]),
            Ok(&["Lovelace"]),
        ),
        ("fetch-size", Ok(&["200 [1, "]), Ok(&["200 [1, "])),
        (
            "metadata",
            Ok(&[
                "customers",
                "email:text",
                "pk:id",
                "fk:customer_id->customers",
            ]),
            Ok(&[
                "customers",
                "email:text",
                "pk:id",
                "fk:customer_id->customers",
            ]),
        ),
        // With autocommit off pgjdbc pipelines `BEGIN` with the batch, without a `Sync`, often
        // in two writes (`Parse BEGIN`, then the rest): the gateway holds the `Parse` back
        // until the `Execute` shows the transaction mode it needs (regression: it used to
        // run the writes in a read-only transaction, 25006, about one run in two).
        ("batch", Ok(&["[1, 1, 1]"]), NEEDS_APPROVAL),
    ];
    for role in ["executor", "planner"] {
        let mut cmd = Command::new("java");
        cmd.arg("-cp")
            .arg(&jar)
            .arg(scripts().join("Jdbc.java"))
            .arg(role);
        check(&gw, "JDBC", role, cmd, &wants);
    }
}

#[test]
fn node_postgres() {
    let gw = Gateway::start();
    let modules = need(
        installed().join("node/node_modules"),
        "node-postgres (npm ci, from package-lock.json)",
    );
    let wants = [
        (
            "parameters",
            Ok(&["customer7@example.com"]),
            Ok(&["Lovelace"]),
        ),
        ("named-prepared", Ok(&["+1-555-1003"]), Ok(&[])),
        ("multi-statement", Ok(&["600"]), Ok(&["600"])),
    ];
    for role in ["executor", "planner"] {
        let mut cmd = Command::new("node");
        cmd.arg(scripts().join("node_pg.js"))
            .arg(role)
            .env("NODE_PATH", &modules);
        check(&gw, "node-postgres", role, cmd, &wants);
    }
}

/// `pg_dump --schema-only`: the whole schema as the executor. The masked planner is refused,
/// naming the rule: pg_dump reads catalogs masking cannot trace (foreign servers and their
/// options, which may hold connection secrets), and a masked session never lets through what
/// it cannot place. Nothing it printed before the refusal holds a planted value.
#[test]
fn pg_dump_schema_only() {
    let gw = Gateway::start();
    for role in ["executor", "planner"] {
        let mut cmd = Command::new("pg_dump");
        cmd.args(["--schema-only", "--no-owner", "-d"])
            .arg(gw.conninfo());
        gw.env(&mut cmd, role);
        let what = format!("pg_dump --schema-only as {role}");
        let (ok, stdout, stderr) = run_bounded(cmd, &what);
        if role == "planner" {
            assert!(!ok, "{what} worked:\n{stdout}");
            assert!(
                stderr.contains("sod: refused by rule `sod-masked-columns`")
                    && stderr.contains("masking cannot trace"),
                "{what}: not refused with the masking rule:\n{stderr}"
            );
            gw.assert_no_leak(&what, &stdout);
            gw.assert_no_leak(&what, &stderr);
            continue;
        }
        assert!(ok, "{what}:\n{stderr}");
        for w in [
            "CREATE TABLE public.customers",
            "card_number text NOT NULL",
            "ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id)",
        ] {
            assert!(stdout.contains(w), "{what}: no {w:?} in\n{stdout}");
        }
    }
}

#[test]
fn psql_backslash_commands() {
    let gw = Gateway::start();
    for role in ["executor", "planner"] {
        for (command, shows) in [
            ("\\d", "customers"),
            ("\\dt", "orders"),
            ("\\d+ customers", "card_number"),
            ("\\l", "Encoding"),
            ("\\dn", "public"),
            ("\\df pg_catalog.lower", "lower"),
            (
                "\\x\nSELECT id, name, email FROM customers WHERE id = 1",
                "id    | 1",
            ),
        ] {
            let mut cmd = Command::new("psql");
            cmd.arg(gw.conninfo())
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .stdin(Stdio::piped());
            gw.env(&mut cmd, role);
            let what = format!("psql {command:?} as {role}");
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            {
                use std::io::Write as _;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(command.as_bytes()).unwrap();
                stdin.write_all(b"\n").unwrap();
            }
            let status = poll_until(RUN_LIMIT, &what, || child.try_wait().unwrap());
            let mut stdout = String::new();
            let mut stderr = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(status.success(), "{what}:\n{stdout}\n{stderr}");
            assert!(stdout.contains(shows), "{what}: no {shows:?} in\n{stdout}");
            if role == "planner" {
                gw.assert_no_leak(&what, &stdout);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx() {
    use sqlx::Row as _;
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions as _, Executor as _};

    let gw = tokio::task::spawn_blocking(Gateway::start).await.unwrap();
    for role in ["executor", "planner"] {
        let opts = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(gw.demo.port)
            .database(&gw.demo.database())
            .username("agent")
            .password(&gw.demo.token(role));
        let run = async {
            let mut c = opts.connect().await.unwrap();
            // Prepared (sqlx prepares and caches every query), with a parameter.
            let mut seen = String::new();
            for id in [7_i32, 7, 8] {
                let row = sqlx::query("SELECT id, name, email FROM customers WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                let (id, name, email): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
                seen.push_str(&format!("{id} {name} {email}\n"));
            }
            // Several statements, unprepared (the simple protocol).
            let n = c
                .fetch_all("SELECT count(*) FROM orders; SELECT 1")
                .await
                .unwrap()
                .len();
            assert_eq!(n, 2);
            let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(orders, 600);
            seen
        };
        let seen = tokio::time::timeout(RUN_LIMIT, run)
            .await
            .unwrap_or_else(|_| panic!("sqlx as {role} hung"));
        assert!(seen.contains("Lovelace"), "{seen}");
        if role == "planner" {
            gw.assert_no_leak("sqlx as planner", &seen);
        } else {
            assert!(seen.contains("customer7@example.com"), "{seen}");
        }
    }
}
