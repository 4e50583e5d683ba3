//! `sod token`, `sod policy check` and config errors through the binary: outputs and exit codes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const SOD: &str = env!("CARGO_BIN_EXE_sod");

fn sod(args: &[&str]) -> Output {
    Command::new(SOD).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config with the demo's policy and masks and a fresh capability key.
fn config(dir: &Path) -> String {
    std::fs::write(dir.join("policy.toml"), sod_cli::demo::POLICY).unwrap();
    std::fs::write(dir.join("masks.toml"), sod_cli::demo::MASKS).unwrap();
    let key = dir.join("cap.key");
    let out = sod(&["token", "keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = sod(&["token", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(3), "a key is never overwritten");
    let path = dir.join("sod.toml");
    std::fs::write(
        &path,
        r#"
[identity.capabilities]
key_file = "cap.key"

[policy]
file = "policy.toml"
masks = "masks.toml"

[audit]
dir = "audit"
key_file = "audit.key"

[[postgres]]
target = "pg/demo"
listen = "127.0.0.1:0"
[postgres.upstream]
host = "127.0.0.1"
database = "sod"
user = "executor"
"#,
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn policy_check_explains_and_exits_by_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let check = |principal: &str, kind: &str, sql: &str| {
        sod(&[
            "policy",
            "check",
            "--config",
            &cfg,
            "--principal",
            principal,
            "--kind",
            kind,
            "--sql",
            sql,
        ])
    };
    let read = check("planner", "planner", "SELECT email FROM customers");
    assert_eq!(read.status.code(), Some(0), "{}", text(&read.stderr));
    let shown = text(&read.stdout);
    assert!(
        shown.contains("planner-reads-masked") && shown.contains("masked with demo"),
        "{shown}"
    );
    let drop = check("planner", "planner", "DROP TABLE orders");
    assert_eq!(drop.status.code(), Some(1));
    assert!(text(&drop.stdout).contains("no-schema-changes"));
    let update = check(
        "planner",
        "planner",
        "UPDATE orders SET status = 'x' WHERE id = 1",
    );
    assert_eq!(update.status.code(), Some(4));
    let unknown = check("planner", "planner", "SELEC 1");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stdout).contains("not-understood"));
    let json = sod(&[
        "policy",
        "check",
        "--json",
        "--config",
        &cfg,
        "--principal",
        "executor",
        "--kind",
        "executor",
        "--sql",
        "DELETE FROM orders WHERE id = 1",
    ]);
    assert_eq!(json.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["rule"], "executor-reads-writes");
    assert_eq!(v["objects"][0], "public.orders");
}

#[test]
fn tokens_are_issued_attenuated_and_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let issued = sod(&[
        "token",
        "issue",
        "--config",
        &cfg,
        "--subject",
        "agent-7",
        "--kind",
        "planner",
        "--targets",
        "pg/demo",
        "--kinds",
        "connect,read,write",
        "--ttl",
        "10m",
    ]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let token = text(&issued.stdout).trim().to_owned();
    assert!(token.starts_with("sodcap1."), "{token}");

    let narrowed = sod(&[
        "token",
        "attenuate",
        &token,
        "--kinds",
        "connect,read",
        "--row-limit",
        "10",
    ]);
    assert!(narrowed.status.success(), "{}", text(&narrowed.stderr));
    let narrow = text(&narrowed.stdout).trim().to_owned();
    let nothing = sod(&["token", "attenuate", &token]);
    assert_eq!(
        nothing.status.code(),
        Some(2),
        "attenuating with nothing is a usage error"
    );

    let inspect = sod(&["token", "inspect", "--json", &narrow, "--config", &cfg]);
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect.stderr));
    let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["claims"]["subject"], "agent-7");
    assert_eq!(v["verified"], true);
    assert_eq!(v["caveats"].as_array().unwrap().len(), 2);

    // A forged caveat (edited after signing) fails verification: exit 1.
    let (head, rest) = narrow.split_once('.').unwrap();
    let mut forged = format!("{head}.{rest}");
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let bad = sod(&["token", "inspect", &forged, "--config", &cfg]);
    assert_ne!(bad.status.code(), Some(0), "{}", text(&bad.stdout));
    // Unknown kinds are usage errors, naming the value.
    let wrong = sod(&[
        "token",
        "issue",
        "--config",
        &cfg,
        "--subject",
        "a",
        "--targets",
        "pg/demo",
        "--kinds",
        "reed",
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("reed"),
        "{}",
        text(&wrong.stderr)
    );
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sod.toml");
    std::fs::write(
        &cfg,
        "[identity.capabilities]\nkey_file = \"k\"\nkey_fle = 1\n",
    )
    .unwrap();
    let out = sod(&["gateway", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3:1: identity.capabilities.key_fle: unknown field",
            cfg.display()
        )),
        "{err}"
    );
    let missing = sod(&["gateway", "--config", "/nonexistent/sod.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("/nonexistent/sod.toml: cannot read"));
}
