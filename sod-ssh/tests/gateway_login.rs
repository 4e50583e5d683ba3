//! Logging in: a capability or an OIDC token as the password, or — longer than the 1 023 bytes
//! OpenSSH sends — in keyboard-interactive parts of 1 000 bytes, with an askpass script as the
//! README gives it.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use sod_core::capability::CapabilitySpec;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind};
use sod_testkit::ssh::Client;
use support::{Harness, run, stderr, stdout};

/// The askpass script of the README: part N of the token for a prompt that says "part N".
const ASKPASS: &str = r#"#!/bin/sh
n=$(printf '%s' "$1" | sed -n 's/.*part \([0-9][0-9]*\).*/\1/p')
[ -n "$n" ] || n=1
printf '%s\n' "$SOD_TOKEN" | cut -c $((1000 * (n - 1) + 1))-$((1000 * n))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_credentials_come_in_parts() {
    let h = Harness::start().await;
    use OperationKind::*;
    let long = h
        .authority
        .issue(
            CapabilitySpec::new("executor-long", Duration::from_secs(600))
                .kind(PrincipalKind::Agent(AgentRole::Executor))
                .groups((0..80).map(|i| format!("a-rather-long-group-name-{i:03}")))
                .targets(["ssh/*"])
                .kinds(KindSet::of(&[Connect, Read, Exec])),
        )
        .expect("issue")
        .encode();
    assert!(long.len() > 2500, "{}", long.len());

    // As a password, OpenSSH cuts it at 1 023 bytes: refused.
    let out = h.ssh(&long, "echo hi");
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));

    // In parts, through keyboard-interactive: in.
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("askpass");
    std::fs::write(&script, ASKPASS).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).expect("mode");
    let client = Client::new(h.port, "agent")
        .known_hosts(&h.known_hosts_line)
        .arg("-o")
        .arg("PreferredAuthentications=keyboard-interactive")
        .arg("-o")
        .arg("NumberOfPasswordPrompts=1")
        .env("SSH_ASKPASS", &script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("SOD_TOKEN", &long);
    let out = run(&mut client.ssh("echo logged in"));
    assert_eq!(stdout(&out), "logged in\n", "{}", stderr(&out));

    // A short one works the same way, in one part.
    let short = h.executor_token();
    let client = Client::new(h.port, "agent")
        .known_hosts(&h.known_hosts_line)
        .arg("-o")
        .arg("PreferredAuthentications=keyboard-interactive")
        .arg("-o")
        .arg("NumberOfPasswordPrompts=1")
        .env("SSH_ASKPASS", &script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("SOD_TOKEN", &short);
    let out = run(&mut client.ssh("echo short"));
    assert_eq!(stdout(&out), "short\n", "{}", stderr(&out));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_pick_targets_and_oidc_tokens_work_as_passwords() {
    let h = Harness::start().await;
    let approver = h.approver_token();
    // A human with an OIDC token: the policy has no rule for humans, so login is refused.
    let out = h.ssh(&approver, "true");
    assert_eq!(out.status.code(), Some(255));
    // An executor may name the target after `+`; a name no target has is refused.
    let executor = h.executor_token();
    let ok = h.client("deploy+web", &executor);
    let out = run(&mut ok.ssh("echo picked"));
    assert_eq!(stdout(&out), "picked\n", "{}", stderr(&out));
    let bad = h.client("deploy+db", &executor);
    let out = run(&mut bad.ssh("echo picked"));
    assert_eq!(out.status.code(), Some(255));
    h.stop().await;
}
