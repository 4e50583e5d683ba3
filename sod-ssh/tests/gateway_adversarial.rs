//! Trying to break the SSH gateway: a target whose host key is unknown or changed, an audit
//! log that cannot write, a value split across packets, environment variables, too many
//! channels, clients that never authenticate, garbage on the wire, an enormous command line.

mod support;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use sod_ssh::refusal::{EXIT_REFUSED, EXIT_UNAVAILABLE};
use support::{Harness, Options, run, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_changed_target_key_is_refused_never_trusted() {
    fn unknown(_: u16) -> String {
        "# nothing known\n".to_owned()
    }
    fn changed(port: u16) -> String {
        format!(
            "[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMrys+l4OYvKIrArLjsnb67xLrmm1Lht8fWxWs8c0X78\n"
        )
    }
    for (known_hosts, says) in [
        (
            unknown as fn(u16) -> String,
            "is unknown: add it to known_hosts",
        ),
        (changed, "differs from the one in known_hosts line 1"),
    ] {
        let h = Harness::with(Options {
            known_hosts: Some(known_hosts),
            ..Options::default()
        })
        .await;
        let out = h.ssh(&h.executor_token(), "touch should-not-exist");
        assert_eq!(
            out.status.code(),
            Some(EXIT_UNAVAILABLE as i32),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!h.path("should-not-exist").exists());
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_unrecorded() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    h.audit.fail(true);
    let out = h.ssh(&executor, "touch unrecorded");
    assert!(!out.status.success());
    assert!(
        !h.path("unrecorded").exists(),
        "refused before the target saw it"
    );
    h.audit.fail(false);
    let out = h.ssh(&executor, "touch recorded");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(h.path("recorded").exists());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_split_across_packets_is_still_masked() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    // printf and sleep are reads; the address reaches the gateway in two packets.
    let out = h.ssh(
        &planner,
        "printf 'mail alice@exa'; sleep 0.3; printf 'mple.com today\\n'; printf '4539 1488 '; sleep 0.3; printf '0343 6467\\n'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("mail "), "{text}");
    assert!(text.contains(" today"), "{text}");
    assert!(!text.contains("alice@"), "{text}");
    assert!(!text.contains("6467"), "{text}");
    // Errors too.
    let out = h.ssh(
        &planner,
        "printf 'bob@exam' >&2; sleep 0.3; printf 'ple.org\\n' >&2",
    );
    assert!(!stderr(&out).contains("bob@"), "{}", stderr(&out));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_environment_variables_pass() {
    let h = Harness::start().await;
    let client = h
        .client("agent", &h.executor_token())
        .env("LC_SOD_TEST", "yes")
        .env("LD_PRELOAD", "/tmp/evil.so")
        .arg("-o")
        .arg("SendEnv=LC_SOD_TEST LD_PRELOAD");
    let out = run(&mut client.ssh("echo ${LC_SOD_TEST:-unset} ${LD_PRELOAD:-unset}"));
    assert_eq!(stdout(&out).trim(), "yes unset", "{}", stderr(&out));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_authenticate_are_cut_off() {
    let h = Harness::with(Options {
        handshake_timeout: Some(Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    let port = h.port;
    let read = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = Vec::new();
        // Reads the banner, says nothing, and waits: the gateway must close.
        let _ = s.read_to_end(&mut buf);
        buf
    });
    let got = read.await.expect("join");
    assert!(
        got.starts_with(b"SSH-2.0-sod_"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Garbage instead of a version line: closed, and the gateway still serves others.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = s.write_all(&[0xff; 65536]);
    drop(s);
    let out = h.ssh(&h.executor_token(), "echo still here");
    assert_eq!(stdout(&out), "still here\n", "{}", stderr(&out));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enormous_and_binary_command_lines_are_refused_not_crashed() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    let long = format!("echo {}", "a".repeat(100_000));
    let out = h.ssh(&executor, &long);
    assert_eq!(
        out.status.code(),
        Some(EXIT_REFUSED as i32),
        "{}",
        stderr(&out)
    );
    let out = h.ssh(&executor, "echo ok");
    assert_eq!(stdout(&out), "ok\n");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_down_is_an_outage_not_a_verdict() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let h = Harness::with(Options {
        target_port: Some(port),
        ..Options::default()
    })
    .await;
    let out = h.ssh(&h.executor_token(), "true");
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE as i32),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).starts_with("sod: unavailable:"),
        "{}",
        stderr(&out)
    );
    h.stop().await;
}
