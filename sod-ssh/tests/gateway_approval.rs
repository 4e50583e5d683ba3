//! Approvals over SSH: a command that needs approval tells the client the approval id on
//! stderr with exit status 75 after the approval wait, never reaches the target, and runs once
//! when the same command is sent again after someone else approved it.

mod support;

use std::time::Duration;

use sod_approval::{ApprovalId, Status};
use sod_core::{Principal, PrincipalKind};
use sod_ssh::refusal::EXIT_APPROVAL_PENDING;
use support::{Harness, Options, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_for_someone_elses_approval_and_then_runs_once() {
    let h = Harness::with(Options {
        approval_wait: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let planner = h.planner_token();
    let command = "echo approved >> notes.txt";
    let out = h.ssh(&planner, command);
    assert_eq!(
        out.status.code(),
        Some(EXIT_APPROVAL_PENDING as i32),
        "{}",
        stderr(&out)
    );
    let line = stderr(&out);
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.ends_with("run the same command again once it is approved\n"),
        "{line}"
    );
    let id = line
        .split(|c: char| c.is_whitespace() || c == ')' || c == '(')
        .find(|w| w.starts_with("apr-"))
        .map(ApprovalId::new)
        .expect("the line names the approval");
    let notes = || std::fs::read_to_string(h.path("notes.txt")).expect("notes");
    assert!(!notes().contains("approved"), "nothing ran");

    // The approver sees exactly the command; the planner's human cannot approve it.
    let pending = h.broker.get(&id).await.expect("pending");
    assert_eq!(pending.operation.text, command);
    let alice = Principal::new("alice", "idp", PrincipalKind::Human).with_groups(["approvers"]);
    assert!(h.broker.decide(&id, &alice, true, None).await.is_err());
    let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["approvers"]);
    h.broker
        .decide(&id, &bob, true, None)
        .await
        .expect("approved");

    // Another command is not covered; the same one runs, once.
    let other = h.ssh(&planner, "echo approved twice >> notes.txt");
    assert_eq!(other.status.code(), Some(EXIT_APPROVAL_PENDING as i32));
    let out = h.ssh(&planner, command);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(notes().matches("approved").count(), 1);
    assert_eq!(
        h.broker.get(&id).await.expect("known").status(),
        Status::Consumed
    );
    let again = h.ssh(&planner, command);
    assert_eq!(again.status.code(), Some(EXIT_APPROVAL_PENDING as i32));
    assert_eq!(
        notes().matches("approved").count(),
        1,
        "a second run needs a new approval"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_command_runs_when_approved_during_the_wait() {
    let h = Harness::with(Options {
        approval_wait: Duration::from_secs(30),
        ..Options::default()
    })
    .await;
    let planner = h.planner_token();
    let client = h.client("agent", &planner);
    let mut cmd = client.ssh("echo during >> notes.txt; echo ran");
    let waiting = tokio::task::spawn_blocking(move || support::run(&mut cmd));
    // Approve as soon as the request shows up.
    let id = sod_testkit::poll_until_async(Duration::from_secs(20), "the approval request", || {
        let broker = h.broker.clone();
        async move { broker.pending().await.ok()?.first().map(|r| r.id.clone()) }
    })
    .await;
    let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["approvers"]);
    h.broker
        .decide(&id, &bob, true, None)
        .await
        .expect("approved");
    let out = waiting.await.expect("join");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(support::stdout(&out), "ran\n");
    h.stop().await;
}
