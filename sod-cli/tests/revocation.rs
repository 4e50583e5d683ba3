//! `sod token revoke` against a running `sod demo`: open sessions of the revoked capability end
//! (PostgreSQL and SSH), new ones and capabilities derived from it are refused, other
//! capabilities keep working, and the audit log says why each session ended.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sod_testkit::poll::poll_until;
use support::{Demo, sod, text};

/// How long a running gateway may take to act on a revocation (it reloads every second).
const ACT_WITHIN: Duration = Duration::from_secs(10);

async fn connect(
    demo: &Demo,
    token: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} dbname={} user=agent password={token} connect_timeout=10",
            demo.port,
            demo.database()
        ),
        tokio_postgres::NoTls,
    )
    .await?;
    Ok((client, tokio::spawn(conn)))
}

/// `sod token revoke --json`: the id it revoked and whether it was new.
fn revoke(config: &Path, capability: &str) -> (String, bool) {
    let out = sod(&[
        "token",
        "revoke",
        "--json",
        "--config",
        config.to_str().unwrap(),
        capability,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["added"].as_bool().unwrap(),
    )
}

/// The id `sod token inspect` shows for `token`.
fn id_of(token: &str) -> String {
    let out = sod(&["token", "inspect", "--json", token]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["claims"]["id"].as_str().unwrap().to_owned()
}

/// Every line of the audit log's segments.
fn audit_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            lines.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    lines
}

/// An `ssh -N` session (no command: it stays open until the gateway ends it).
fn open_ssh(demo: &Demo, who: &str) -> std::process::Child {
    Command::new("sshpass")
        .args(["-p", &demo.token(who), "ssh", "-N", "-F", "/dev/null"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", demo.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ServerAliveInterval=1",
            "-p",
            &demo.ssh_port.to_string(),
            &format!("{who}@127.0.0.1"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_capability_ends_its_sessions_and_is_refused_everywhere() {
    let work = tempfile::tempdir().unwrap();
    let tokens_file = work.path().join("tokens.json");
    let audit_dir = work.path().join("audit");
    let demo = Demo::start(&tokens_file, &["--audit-dir", audit_dir.to_str().unwrap()]);
    let config = PathBuf::from(demo.up["config"].as_str().unwrap());
    let (planner, executor) = (demo.token("planner"), demo.token("executor"));
    let planner_id = id_of(&planner);

    // The demo's config names a revocation list; it starts empty.
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("revocation_file"), "{toml}");

    // A capability the planner derived for a sub-agent before the revocation.
    let child = sod(&["token", "attenuate", &planner, "--kinds", "read"]);
    assert!(child.status.success(), "{}", text(&child.stderr));
    let child = text(&child.stdout).trim().to_owned();

    // Open sessions: the planner's and the executor's over PostgreSQL, the planner's over SSH.
    let (planner_db, planner_conn) = connect(&demo, &planner).await.unwrap();
    planner_db.simple_query("SELECT 1").await.unwrap();
    let (executor_db, executor_conn) = connect(&demo, &executor).await.unwrap();
    executor_db.simple_query("SELECT 1").await.unwrap();
    let mut planner_ssh = open_ssh(&demo, "planner");
    // The SSH session is up once the gateway has recorded its start.
    poll_until(Duration::from_secs(30), "the SSH session to start", || {
        let started = audit_lines(&audit_dir)
            .iter()
            .filter(|l| l.contains("session_started") && l.contains(&planner_id))
            .count();
        (started >= 2).then_some(())
    });
    assert!(
        planner_ssh.try_wait().unwrap().is_none(),
        "ssh -N ended early"
    );

    // Revoke by the capability itself; a second time changes nothing.
    let revoked_at = Instant::now();
    let (id, added) = revoke(&config, &planner);
    assert_eq!((id.as_str(), added), (planner_id.as_str(), true));
    assert_eq!(revoke(&config, &planner_id), (planner_id.clone(), false));

    // The planner's PostgreSQL session is ended with a native FATAL naming the revocation.
    let ended = tokio::time::timeout(ACT_WITHIN, planner_conn)
        .await
        .expect("the revoked session ends")
        .unwrap();
    let err = ended.expect_err("the session ends with an error");
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "28000", "{db:?}");
    assert!(db.message().contains("revoked"), "{}", db.message());
    assert!(revoked_at.elapsed() < ACT_WITHIN);

    // Its SSH connection is cut too.
    let status = poll_until(ACT_WITHIN, "the revoked SSH session to end", || {
        planner_ssh.try_wait().unwrap()
    });
    assert!(!status.success());

    // New sessions of the capability, and of the one derived from it, are refused.
    for token in [&planner, &child] {
        let Err(e) = connect(&demo, token).await else {
            panic!("a revoked capability connected");
        };
        let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
        assert!(db.message().contains("revoked"), "{}", db.message());
    }
    let port = demo.ssh_port.to_string();
    let mut login = Command::new("sshpass");
    login
        .args(["-p", &planner, "ssh", "-F", "/dev/null"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", demo.known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-p", &port])
        .args(["planner@127.0.0.1", "ls"]);
    let out = sod_testkit::ssh::run(&mut login, Duration::from_secs(60)).unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));

    // Other capabilities are untouched.
    executor_db.simple_query("SELECT 1").await.unwrap();
    assert!(!executor_conn.is_finished());

    // `inspect --config` says why it no longer verifies.
    let inspect = sod(&[
        "token",
        "inspect",
        "--config",
        config.to_str().unwrap(),
        &planner,
    ]);
    assert!(!inspect.status.success());
    assert!(
        text(&inspect.stdout).contains("revoked"),
        "{}",
        text(&inspect.stdout)
    );

    // Revoking by id works as well: the executor's session ends.
    let (_, added) = revoke(&config, &id_of(&executor));
    assert!(added);
    tokio::time::timeout(ACT_WITHIN, executor_conn)
        .await
        .expect("the executor's session ends")
        .unwrap()
        .expect_err("with an error");

    // The audit log says why each of them ended.
    let reason = format!("capability {planner_id} revoked");
    poll_until(
        ACT_WITHIN,
        "session_ended records naming the revocation",
        || {
            let ended = audit_lines(&audit_dir)
                .iter()
                .filter(|l| l.contains("session_ended") && l.contains(&reason))
                .count();
            (ended >= 2).then_some(())
        },
    );

    // Bad input: neither a capability nor an id.
    let bad = sod(&[
        "token",
        "revoke",
        "--config",
        config.to_str().unwrap(),
        "not a capability",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("not a capability"));
    let _ = planner_ssh.kill();
}
