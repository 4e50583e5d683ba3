//! `sod demo` end to end, as a user runs it: the `sod` binary, psql, and `sod approvals` /
//! `sod audit` against the demo's gateway, approvals API and audit log.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sod_testkit::poll::poll_until;
use support::{Demo, psql, sod, text};

/// The ids of the approval requests waiting, as the approver lists them.
fn pending(api: &str, approver: &str) -> Vec<String> {
    let list = sod(&[
        "approvals",
        "list",
        "--json",
        "--url",
        api,
        "--token",
        approver,
    ]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let pending: Value = serde_json::from_slice(&list.stdout).unwrap();
    pending
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_demo_shows_masking_refusal_approval_and_a_verified_log() {
    let work = tempfile::tempdir().unwrap();
    let tokens_file = work.path().join("tokens.json");
    let audit_dir = work.path().join("audit");
    let demo = Demo::start(
        &tokens_file,
        &[
            "--approval-wait",
            "60",
            "--audit-dir",
            audit_dir.to_str().unwrap(),
        ],
    );
    let (port, api_port, database) = (demo.port, demo.api_port, demo.database());
    let (planner, executor, approver) = (
        demo.token("planner"),
        demo.token("executor"),
        demo.token("approver"),
    );
    assert_eq!(
        demo.up["tokens"]["planner"].as_str(),
        Some(planner.as_str())
    );
    // The audit key is in the demo's own directory, removed when it stops: keep a copy.
    let audit_key = work.path().join("audit.pub");
    std::fs::copy(demo.up["audit_key"].as_str().unwrap(), &audit_key).unwrap();
    let mut demo = demo.process;
    let api = format!("http://127.0.0.1:{api_port}");

    // A masked read: the planner sees no email, phone, SSN or card number.
    let read = psql(
        port,
        &database,
        &planner,
        "SELECT id, name, email, phone, ssn, card_number FROM customers ORDER BY id LIMIT 3",
    )
    .output()
    .unwrap();
    let shown = text(&read.stdout);
    assert!(read.status.success(), "{shown}{}", text(&read.stderr));
    assert!(shown.contains("(3 rows)"), "{shown}");
    assert!(!shown.contains("customer1@example.com"), "{shown}");
    assert!(!shown.contains("4111 1111"), "{shown}");
    assert!(shown.contains("****"), "{shown}");
    // The executor reads the same rows unmasked.
    let real = psql(
        port,
        &database,
        &executor,
        "SELECT email FROM customers WHERE id = 1",
    )
    .output()
    .unwrap();
    assert!(
        text(&real.stdout).contains("customer1@example.com"),
        "{}",
        text(&real.stderr)
    );

    // DROP is refused by the policy rule, named in the error.
    let drop = psql(port, &database, &planner, "DROP TABLE orders")
        .output()
        .unwrap();
    assert!(!drop.status.success());
    let err = text(&drop.stderr);
    assert!(err.contains("no-schema-changes"), "{err}");

    // The UPDATE waits for approval ...
    let update_sql = "UPDATE orders SET status = 'refunded' WHERE id = 42";
    let mut update = psql(port, &database, &planner, update_sql)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = poll_until(
        Duration::from_secs(30),
        "a pending approval request",
        || pending(&api, &approver).into_iter().next(),
    );
    assert_eq!(
        update.try_wait().unwrap(),
        None,
        "the UPDATE is still waiting"
    );
    let show = sod(&[
        "approvals",
        "show",
        &id,
        "--url",
        &api,
        "--token",
        &approver,
    ]);
    assert!(
        text(&show.stdout).contains(update_sql),
        "{}",
        text(&show.stdout)
    );
    // ... the planner cannot approve its own request (I2) ...
    let own = sod(&[
        "approvals",
        "approve",
        &id,
        "--url",
        &api,
        "--token",
        &planner,
    ]);
    assert_eq!(own.status.code(), Some(3), "{}", text(&own.stderr));
    // ... an unknown id is a negative answer ...
    let unknown = sod(&[
        "approvals",
        "show",
        "apr-000000000000000000000000",
        "--url",
        &api,
        "--token",
        &approver,
    ]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown.stderr));
    // ... and the approver's vote lets it run.
    let approve = sod(&[
        "approvals",
        "approve",
        &id,
        "--comment",
        "refund agreed",
        "--url",
        &api,
        "--token",
        &approver,
    ]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let done = poll_until(Duration::from_secs(30), "the UPDATE to finish", || {
        update.try_wait().unwrap()
    });
    let mut out = String::new();
    std::io::Read::read_to_string(update.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(done.success(), "{out}");
    assert!(out.contains("UPDATE 1"), "{out}");
    let status = psql(
        port,
        &database,
        &executor,
        "SELECT status FROM orders WHERE id = 42",
    )
    .output()
    .unwrap();
    assert!(text(&status.stdout).contains("refunded"));

    // A request can be withdrawn: the approver revokes a second waiting UPDATE through the
    // API client, and the statement ends refused, naming the revocation.
    let mut second = psql(
        port,
        &database,
        &planner,
        "UPDATE orders SET status = 'refunded' WHERE id = 43",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let second_id = poll_until(
        Duration::from_secs(30),
        "a second pending approval request",
        || {
            let list = sod(&[
                "approvals",
                "list",
                "--json",
                "--url",
                &api,
                "--token",
                &approver,
            ]);
            let pending: Value = serde_json::from_slice(&list.stdout).unwrap();
            pending
                .as_array()?
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .find(|r| *r != id)
        },
    );
    let revoke = sod(&[
        "approvals",
        "revoke",
        &second_id,
        "--json",
        "--url",
        &api,
        "--token",
        &approver,
    ]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let revoked: Value = serde_json::from_slice(&revoke.stdout).unwrap();
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    let refused = poll_until(Duration::from_secs(30), "the second UPDATE to end", || {
        second.try_wait().unwrap()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!refused.success(), "{err}");
    assert!(err.contains("was revoked"), "{err}");

    // Stop the demo as a user would (SIGTERM): it exits cleanly, closing the log.
    let pid = demo.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = poll_until(Duration::from_secs(30), "the demo to stop", || {
        demo.0.try_wait().unwrap()
    });
    assert!(exit.success(), "{exit:?}");

    // The log verifies, signed, and shows what happened.
    let verify = sod_audit(&audit_dir, &audit_key);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    // A graceful shutdown signs the tail: nothing after the last checkpoint.
    assert!(
        text(&verify.stdout).contains("signed through")
            && text(&verify.stdout).contains(", 0 record(s) after the last checkpoint"),
        "{}",
        text(&verify.stdout)
    );
    let replay = sod(&[
        "audit",
        "replay",
        audit_dir.to_str().unwrap(),
        "--principal",
        "planner",
    ]);
    let timeline = text(&replay.stdout);
    for expected in [
        "no-schema-changes",
        "planner-writes-orders",
        "DROP TABLE orders",
        "ok, 1 row",
    ] {
        assert!(
            timeline.contains(expected),
            "{expected} missing from:\n{timeline}"
        );
    }

    // The approver's decision is in the log, under the approver's name.
    let replay = sod(&[
        "audit",
        "replay",
        audit_dir.to_str().unwrap(),
        "--principal",
        "approver",
    ]);
    assert!(
        text(&replay.stdout).contains("approved by approver"),
        "{}",
        text(&replay.stdout)
    );

    // Tampering is detected: change one byte of a record.
    let segment = first_segment(&audit_dir);
    let log = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, log.replacen("refunded", "refundeD", 1)).unwrap();
    let verify = sod_audit(&audit_dir, &audit_key);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stderr).contains("verification failed"),
        "{}",
        text(&verify.stderr)
    );
}

fn sod_audit(dir: &Path, key: &Path) -> Output {
    sod(&[
        "audit",
        "verify",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
}

fn first_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    segments.sort();
    segments.remove(0)
}
