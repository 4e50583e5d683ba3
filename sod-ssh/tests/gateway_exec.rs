//! `exec` through the gateway, with the real OpenSSH client and server: allowed commands run
//! exactly as sent, refusals name the rule on stderr with a documented exit status, and
//! nothing refused reaches the target.

mod support;

use sod_audit::Event;
use sod_ssh::refusal::{EXIT_APPROVAL_PENDING, EXIT_REFUSED};
use support::{Harness, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_and_refusals_name_the_rule() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    // A read runs on the target, in its working directory.
    let out = h.ssh(&planner, "cat notes.txt | wc -l");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "2");

    // A write waits for approval, then says so: nothing ran.
    let out = h.ssh(&planner, "rm notes.txt");
    assert_eq!(
        out.status.code(),
        Some(EXIT_APPROVAL_PENDING as i32),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).starts_with("sod: refused by rule `planners-ask`"),
        "{}",
        stderr(&out)
    );
    assert!(h.path("notes.txt").exists(), "the refused rm did not run");

    // Keys are never read by planners, whatever the spelling.
    for command in [
        "cat deploy_key",
        "cat ./deploy_key",
        "cat < deploy_key",
        "cat notes-key.txt",
        "cat *",
        "head -c 10 .env",
    ] {
        let out = h.ssh(&planner, command);
        assert_eq!(
            out.status.code(),
            Some(EXIT_REFUSED as i32),
            "{command}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("no-secrets-for-planners"),
            "{command}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{command}: {}", stdout(&out));
    }

    // Not understood: refused, saying why.
    let out = h.ssh(&planner, "$CMD notes.txt");
    assert_eq!(
        out.status.code(),
        Some(EXIT_REFUSED as i32),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("`$CMD` is not a literal command name"),
        "{}",
        stderr(&out)
    );

    // The executor runs anything, unmasked.
    let executor = h.executor_token();
    let out = h.ssh(&executor, "cat customers.csv && echo done >> notes.txt");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("alice@example.com"));
    assert!(
        std::fs::read_to_string(h.path("notes.txt"))
            .expect("notes")
            .contains("done")
    );

    // Every attempt is in the log, refused or not.
    let attempted: Vec<String> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::OperationAttempted { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert!(
        attempted.contains(&"cat notes.txt | wc -l".to_owned()),
        "{attempted:?}"
    );
    assert!(
        attempted.contains(&"cat deploy_key".to_owned()),
        "{attempted:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_of_masked_principals_is_masked_and_exit_statuses_pass() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let out = h.ssh(&planner, "cat customers.csv");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("alice@example.com"), "{text}");
    assert!(!text.contains("4539 1488 0343 6467"), "{text}");
    assert!(text.contains("id,email,card"), "{text}");
    // A key under a name no rule knows: the second net, the detectors, still catch it.
    let out = h.ssh(&planner, "cat id_ed25519");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("b3BlbnNzaC1rZXktdjE"),
        "{}",
        stdout(&out)
    );
    // The target's exit status is the client's.
    let out = h.ssh(&planner, "grep -q nothing-like-this notes.txt");
    assert_eq!(out.status.code(), Some(1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_credential_is_refused_at_login() {
    let h = Harness::start().await;
    let out = h.ssh("not-a-token", "true");
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    h.stop().await;
}

/// The commands of one client connection (here OpenSSH's `ControlMaster`) share one
/// connection to the target: each costs a channel there, not a log-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_connection_share_one_target_login() {
    let h = Harness::start().await;
    let control = tempfile::tempdir().expect("dir");
    let client = h
        .client("agent", &h.executor_token())
        .arg("-o")
        .arg(format!("ControlPath={}/%C", control.path().display()));
    let logins = || h.sshd.log().matches("Accepted publickey").count();
    let before = logins();
    let master = support::run(
        client
            .ssh_command_with_options(&[
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=yes",
                "-N",
                "-f",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(master.status.success());
    let client = client.arg("-o").arg("ControlMaster=no");
    for i in 0..3 {
        let out = support::run(&mut client.ssh(&format!("echo run-{i}")));
        assert_eq!(stdout(&out), format!("run-{i}\n"), "{}", stderr(&out));
    }
    let _ = support::run(
        client
            .ssh_command_with_options(&["-O", "exit"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(logins() - before, 1, "{}", h.sshd.log());
    h.stop().await;
}
