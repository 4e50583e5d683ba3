//! Tunnels and everything else that could reach back: `direct-tcpip` (`ssh -W`, `ssh -L`) is a
//! `forward` operation, denied unless policy allows it and never for masked principals; agent
//! and X11 forwarding and remote forwards are refused outright.

mod support;

use std::io::Write as _;

use support::{Harness, Options, POLICY, run, stderr, stdout};

/// The test policy, with forwards allowed for executors.
fn policy() -> String {
    format!(
        "{POLICY}\n[[rule]]\nid = \"executors-forward\"\neffect = \"allow\"\nprincipal_kinds = \"executor\"\nkinds = \"forward\"\nmask = \"none\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_are_forward_operations() {
    let h = Harness::with(Options {
        policy: policy(),
        ..Options::default()
    })
    .await;
    // A service on the target's side: says hello and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let _ = s.write_all(b"hello through the tunnel\n");
        }
    });
    let to = format!("127.0.0.1:{port}");
    // The planner may not open tunnels (no rule allows it; masked besides).
    let planner = h.client("agent", &h.planner_token()).arg("-W").arg(&to);
    let out = run(&mut planner.ssh(""));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stdio forwarding failed"),
        "{}",
        stderr(&out)
    );
    let refused = h.events().into_iter().any(|e| {
        matches!(e, sod_audit::Event::OperationAttempted { kind, text, decision, .. }
            if kind == "forward" && text == format!("direct-tcpip {to}") && decision.effect == "deny")
    });
    assert!(refused, "{:?}", h.events());
    // The executor may.
    let executor = h.client("agent", &h.executor_token()).arg("-W").arg(&to);
    let out = run(&mut executor.ssh(""));
    assert_eq!(
        stdout(&out),
        "hello through the tunnel\n",
        "{}",
        stderr(&out)
    );
    // Remote forwards and the agent's own agent never reach the target.
    let remote = h
        .client("agent", &h.executor_token())
        .arg("-o")
        .arg("ExitOnForwardFailure=yes")
        .arg("-R")
        .arg("0:127.0.0.1:9");
    let out = run(&mut remote.ssh("true"));
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("remote port forwarding failed"),
        "{}",
        stderr(&out)
    );
    let agent = h.client("agent", &h.executor_token()).arg("-A");
    let out = run(&mut agent.ssh("echo ${SSH_AUTH_SOCK:-none}"));
    assert_eq!(stdout(&out).trim(), "none", "{}", stderr(&out));
    h.stop().await;
}
