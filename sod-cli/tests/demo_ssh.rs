//! `sod demo` over SSH, as the walkthrough says to use it: `sshpass` with a token as the
//! password, the real `ssh`, `scp` and `sftp`, and `sod approvals` for the approver.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{Demo, sod, text};

/// `sshpass -p TOKEN <program> <args>` with the demo's known_hosts (the test leaves the
/// user's own alone) and a deadline.
fn with_password(demo: &Demo, token: &str, program: &str, args: &[&str]) -> Output {
    let mut c = Command::new("sshpass");
    c.args(["-p", token, program])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", demo.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .args(["-F", "/dev/null"])
        .args(args);
    sod_testkit::ssh::run(&mut c, Duration::from_secs(60)).unwrap()
}

fn ssh(demo: &Demo, who: &str, command: &str) -> Output {
    let port = demo.ssh_port.to_string();
    with_password(
        demo,
        &demo.token(who),
        "ssh",
        &["-p", &port, &format!("{who}@127.0.0.1"), command],
    )
}

#[test]
fn the_demo_walkthrough_over_ssh() {
    let work = tempfile::tempdir().unwrap();
    let demo = Demo::start(&work.path().join("tokens.json"), &["--approval-wait", "1"]);
    assert_eq!(demo.up["ssh_target"], "ssh/demo");
    // Every demo token fits OpenSSH's 1 023-byte password (what `sshpass -p` sends).
    for who in ["planner", "executor", "approver"] {
        let size = demo.token(who).len();
        eprintln!("{who} token: {size} bytes");
        assert!(size < 1023, "{who}: {size} bytes");
    }

    // Read-only commands, in any combination, masked.
    let out = ssh(&demo, "planner", "ls -l");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("customers.csv"),
        "{}",
        text(&out.stdout)
    );
    let out = ssh(
        &demo,
        "planner",
        "cat customers.csv | grep -v Carol | wc -l",
    );
    assert_eq!(text(&out.stdout).trim(), "3", "{}", text(&out.stderr));
    let out = ssh(&demo, "planner", "cat customers.csv");
    assert!(
        !text(&out.stdout).contains("alice@example.com"),
        "{}",
        text(&out.stdout)
    );

    // Keys and .env files: never, by any program.
    for command in [
        "tail -c 40 ./deploy.key",
        "cat app.env",
        "grep -r PRIVATE .",
        "find . -name '*.key' -exec cat {} ;",
    ] {
        let out = ssh(&demo, "planner", command);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{command}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("no-secrets"),
            "{command}: {}",
            text(&out.stderr)
        );
    }

    // A write waits for the approver, then runs once.
    let out = ssh(&demo, "planner", "echo checked >> notes.txt");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let line = text(&out.stderr);
    let id = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .find(|w| w.starts_with("apr-"))
        .unwrap()
        .to_owned();
    let api = format!("http://127.0.0.1:{}", demo.api_port);
    let approve = sod(&[
        "approvals",
        "approve",
        &id,
        "--url",
        &api,
        "--token",
        &demo.token("approver"),
    ]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let out = ssh(&demo, "planner", "echo checked >> notes.txt");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // scp (SFTP underneath): a masked read.
    let local = work.path().join("customers.csv");
    let port = demo.ssh_port.to_string();
    let out = with_password(
        &demo,
        &demo.token("planner"),
        "scp",
        &[
            "-P",
            &port,
            "planner@127.0.0.1:customers.csv",
            local.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copied = std::fs::read_to_string(&local).unwrap();
    assert!(
        copied.contains("Alice") && !copied.contains("alice@example.com"),
        "{copied}"
    );

    // The executor sees everything; tunnels are refused for everyone.
    let out = ssh(&demo, "executor", "cat customers.csv");
    assert!(
        text(&out.stdout).contains("alice@example.com"),
        "{}",
        text(&out.stderr)
    );
    let out = with_password(
        &demo,
        &demo.token("executor"),
        "ssh",
        &["-p", &port, "-W", "127.0.0.1:22", "executor@127.0.0.1"],
    );
    assert!(!out.status.success());
}
