//! Interactive terminals through the gateway: `ssh -tt` in tmux (a real terminal), window
//! changes passed on, and every keystroke, byte of output and resize recorded, exported as an
//! asciicast v2 recording.

mod support;

use std::time::Duration;

use sod_audit::Event;
use sod_audit::replay::{self, CastOptions};
use support::{Harness, stderr, stdout};

// Generous: under a loaded CI machine a login and a shell prompt can take seconds.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_is_recorded_keystroke_by_keystroke() {
    let h = Harness::start().await;
    let client = h.client("agent", &h.executor_token());
    let term = client.pty("", 100, 30).expect("tmux");
    term.send_line("echo hello-$((6*7))").expect("keys");
    term.wait_for("hello-42", WAIT).expect("output");
    term.resize(120, 40).expect("resize");
    term.send_line("stty size").expect("keys");
    term.wait_for("40 120", WAIT)
        .expect("the target saw the resize");
    term.send_line("exit 3").expect("keys");
    assert_eq!(term.wait_exit(WAIT).expect("exits"), 3);

    // The log: one `shell (terminal)` operation, its transcript replayable.
    let records = sod_testkit::poll_until(WAIT, "the shell's completion", || {
        let records = h.audit.memory().records();
        records
            .iter()
            .any(|r| matches!(&r.event, Event::OperationCompleted { error_code: Some(code), .. } if code == "exit 3"))
            .then_some(records)
    });
    let (session, operation) = records
        .iter()
        .find_map(|r| match &r.event {
            Event::OperationAttempted {
                session,
                operation,
                text,
                ..
            } if text == "shell (terminal)" => Some((session.clone(), *operation)),
            _ => None,
        })
        .expect("the shell was attempted");
    let t = replay::transcript(&records, &session, operation).expect("a transcript");
    assert!(String::from_utf8_lossy(&t.output).contains("hello-42"));
    assert!(String::from_utf8_lossy(&t.input).contains("echo hello-$((6*7))"));
    let sizes: Vec<(u32, u32)> = t.resizes.iter().map(|&(_, c, r)| (c, r)).collect();
    assert_eq!(sizes.first(), Some(&(100, 30)), "{sizes:?}");
    assert!(sizes.contains(&(120, 40)), "{sizes:?}");
    let cast = replay::export(
        &records,
        &CastOptions::session(&session).operation(operation),
    )
    .expect("asciicast");
    let (header, events) = sod_audit::asciicast::parse(&cast).expect("valid asciicast v2");
    assert_eq!((header.width, header.height), (100, 30));
    assert!(events.iter().any(|e| e.data.contains("hello-42")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_terminal_is_masked_too() {
    let h = Harness::start().await;
    let client = h.client("agent", &h.planner_token()).arg("-tt");
    let out = support::run(&mut client.ssh("cat customers.csv"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("id,email,card"), "{text}");
    assert!(!text.contains("alice@example.com"), "{text}");
    h.stop().await;
}
