//! The real `kubectl` through the gateway: reads (Secrets masked for the planner, whole for
//! the executor), refusals that name their rule, approvals, writes, watches and exec.

mod support;

use std::io::Read as _;
use std::process::Stdio;
use std::time::Duration;

use sod_testkit::poll::poll_until;
use support::*;

/// base64("s3cr3t-pa55"), the seeded password of `db-credentials`.
const PASSWORD_B64: &str = "czNjcjN0LXBhNTU=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_reads_default_with_secret_values_masked_in_every_form() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let out = ok(&h.kubectl(&planner, &["get", "pods"]));
    assert!(out.contains("web-1") && out.contains("web-2"), "{out}");
    let out = ok(&h.kubectl(
        &planner,
        &[
            "get",
            "secret",
            "db-credentials",
            "-o",
            "jsonpath={.data.password}",
        ],
    ));
    assert_eq!(out, sod_k8s::masking::MASKED_DATA);
    for args in [
        &["get", "secrets", "-o", "yaml"][..],
        &["get", "secrets", "-o", "json"],
        &["get", "secret", "db-credentials", "-o", "yaml"],
        &["get", "secrets", "--sort-by=.metadata.name", "-o", "wide"],
        &["get", "secrets", "-o", "jsonpath={.items[*].data}"],
        &["get", "secrets", "--show-labels"],
        &[
            "get",
            "secrets",
            "-o",
            "custom-columns=NAME:.metadata.name,PW:.data.password",
        ],
    ] {
        let out = ok(&h.kubectl(&planner, args));
        assert!(!out.contains(PASSWORD_B64), "{args:?}: {out}");
        assert!(!out.contains("s3cr3t"), "{args:?}: {out}");
    }
    let sorted = ok(&h.kubectl(&planner, &["get", "secrets", "--sort-by=.metadata.name"]));
    let (a, d) = (sorted.find("api-token"), sorted.find("db-credentials"));
    assert!(a.is_some() && a < d, "{sorted}");
    // A configured path masks a ConfigMap value; the others pass.
    let out = ok(&h.kubectl(&planner, &["get", "configmap", "app-config", "-o", "json"]));
    assert!(!out.contains("db.internal"), "{out}");
    assert!(out.contains("\"LOG_LEVEL\": \"info\""), "{out}");
    // The executor sees the values as they are.
    let executor = h.executor_token();
    let out = ok(&h.kubectl(
        &executor,
        &[
            "get",
            "secret",
            "db-credentials",
            "-o",
            "jsonpath={.data.password}",
        ],
    ));
    assert_eq!(out, PASSWORD_B64);
    // The API server saw the gateway's credentials, never the client's.
    for seen in h.api.requests() {
        let auth = seen
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            auth,
            format!("Bearer {}", h.api.token()),
            "{}",
            seen.path_and_query
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_rule_in_kubectl_errors() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let o = h.kubectl(&planner, &["get", "pods", "-n", "kube-system"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("Forbidden") && err.contains("default-deny"),
        "{err}"
    );
    let o = h.kubectl(&planner, &["get", "clusterroles"]);
    assert!(stderr(&o).contains("default-deny"), "{}", stderr(&o));
    let o = h.kubectl(
        &planner,
        &[
            "create",
            "clusterrolebinding",
            "x",
            "--clusterrole=admin",
            "--user=me",
        ],
    );
    assert!(stderr(&o).contains("k8s-no-admin"), "{}", stderr(&o));
    let o = h.kubectl(&planner, &["get", "pods", "--as=system:admin"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("k8s-no-impersonation"),
        "{}",
        stderr(&o)
    );
    let o = h.kubectl(&planner, &["port-forward", "pod/web-1", "18080:80"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("k8s-no-forwarding"), "{}", stderr(&o));
    // A bad token: 401, as kubectl knows it.
    let o = h.kubectl("not-a-token", &["get", "pods"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("You must be logged in") && err.contains("authentication failed"),
        "{err}"
    );
    // `auth can-i` is a question, answered.
    let out = ok(&h.kubectl(&planner, &["auth", "can-i", "get", "pods"]));
    assert_eq!(out.trim(), "yes");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_changes_wait_for_someone_else_and_run_once() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let o = h.kubectl(&planner, &["delete", "pod", "web-2"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("planner-changes") && err.contains("approval"),
        "{err}"
    );
    assert!(err.contains("run the same request again"), "{err}");
    assert!(
        h.api.object("pods", Some("default"), "web-2").is_some(),
        "nothing ran"
    );
    let approved = h.approve_all().await;
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert!(
        approved[0].starts_with("DELETE /api/v1/namespaces/default/pods/web-2"),
        "{approved:?}"
    );
    ok(&h.kubectl(&planner, &["delete", "pod", "web-2"]));
    assert!(h.api.object("pods", Some("default"), "web-2").is_none());
    // Approved once: the same request again waits again.
    h.api.put(
        "v1",
        "pods",
        serde_json::json!({"metadata": {"name": "web-2", "namespace": "default"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}),
    );
    let o = h.kubectl(&planner, &["delete", "pod", "web-2"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_applies_and_deletes_and_the_audit_log_keeps_bodies_without_secrets() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    let manifest = h.dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\n  namespace: default\ndata:\n  beta: \"on\"\n",
    )
    .expect("manifest");
    let path = manifest.display().to_string();
    let out = ok(&h.kubectl(&executor, &["apply", "--validate=false", "-f", &path]));
    assert!(out.contains("created"), "{out}");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\n  namespace: default\ndata:\n  beta: \"off\"\n",
    )
    .expect("manifest");
    let out = ok(&h.kubectl(&executor, &["apply", "--validate=false", "-f", &path]));
    assert!(out.contains("configured"), "{out}");
    let cm = h
        .api
        .object("configmaps", Some("default"), "feature-flags")
        .expect("created");
    assert_eq!(cm["data"]["beta"], "off");
    // A Secret written: its value reaches the API server, never the audit log.
    let secret = h.dir.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: new-secret\n  namespace: default\nstringData:\n  token: hunter2-very-secret\n",
    )
    .expect("manifest");
    ok(&h.kubectl(
        &executor,
        &[
            "apply",
            "--validate=false",
            "-f",
            &secret.display().to_string(),
        ],
    ));
    let stored = h
        .api
        .object("secrets", Some("default"), "new-secret")
        .expect("created");
    assert!(
        stored.to_string().contains("hunter2-very-secret") || stored["data"]["token"].is_string()
    );
    let events = h.events();
    let log = serde_json::to_string(&events).expect("json");
    assert!(
        !log.contains("hunter2-very-secret"),
        "the audit log holds a Secret value"
    );
    assert!(log.contains("new-secret"), "the write is recorded");
    ok(&h.kubectl(&executor, &["delete", "configmap", "feature-flags"]));
    assert!(
        h.api
            .object("configmaps", Some("default"), "feature-flags")
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_passes_events_masked_one_by_one() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let mut child = h
        .kubectl_command(&planner, &["get", "secrets", "-w", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl -w");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let drain = |seen: &mut Vec<u8>| {
        while let Ok(chunk) = rx.try_recv() {
            seen.extend_from_slice(&chunk);
        }
    };
    poll_until(Duration::from_secs(30), "the listed Secrets", || {
        drain(&mut seen);
        String::from_utf8_lossy(&seen)
            .contains("db-credentials")
            .then_some(())
    });
    h.api.put(
        "v1",
        "secrets",
        serde_json::json!({"metadata": {"name": "late", "namespace": "default"},
            "type": "Opaque", "data": {"key": "bGF0ZS12YWx1ZS0xMjM="}}),
    );
    poll_until(Duration::from_secs(30), "the new Secret's event", || {
        drain(&mut seen);
        String::from_utf8_lossy(&seen)
            .contains("\"late\"")
            .then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("bGF0ZS12YWx1ZS0xMjM="), "{text}");
    assert!(!text.contains(PASSWORD_B64), "{text}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket_waits_for_approval_then_runs_recorded() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    let args = [
        "exec",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ];
    let o = h.kubectl(&executor, &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("executor-exec"), "{}", stderr(&o));
    let approved = h.approve_all().await;
    assert_eq!(
        approved.len(),
        1,
        "one decision covers WebSocket and SPDY: {approved:?}"
    );
    assert!(
        approved[0].starts_with("CONNECT /api/v1/namespaces/default/pods/web-1/exec?"),
        "{approved:?}"
    );
    let o = h.kubectl(&executor, &args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"), "{}", stderr(&o));
    // Recorded: output, stderr and the exit status as the outcome.
    h.wait_for_outcome("3");
    assert!(h.recorded("o", "out"), "stdout recorded");
    assert!(h.recorded("e", "err"), "stderr recorded");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_decision_covers_websocket_and_spdy_and_spdy_is_relayed_recorded() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    let args = [
        "exec",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ];
    // Refused over WebSocket: kubectl falls back to SPDY, refused by the same decision.
    let o = h.kubectl(&executor, &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("executor-exec"), "{}", stderr(&o));
    let approved = h.approve_all().await;
    assert_eq!(approved.len(), 1, "{approved:?}");
    // Approved once, run over SPDY.
    let mut command = h.kubectl_command(&executor, &args);
    command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let o = run(&mut command);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"), "{}", stderr(&o));
    h.wait_for_outcome("3");
    assert!(h.recorded("o", "out") && h.recorded("e", "err"));
    // stdin passes, recorded.
    let mut command = h.kubectl_command(&executor, &["exec", "-i", "web-1", "--", "cat"]);
    command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let o = run(&mut command);
    assert!(!o.status.success(), "a new command needs its own approval");
    h.approve_all().await;
    let o =
        sod_testkit::ssh::run_with_input(&mut command, b"typed in\n", DEADLINE).expect("kubectl");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "typed in\n");
    assert!(h.recorded("i", "typed in"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_principal_gets_exec_output_masked_over_websocket_and_no_spdy_stream() {
    let h = Harness::start().await;
    let planner = h.planner_token();
    let args = [
        "exec",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo mail alice@example.com",
    ];
    assert!(!h.kubectl(&planner, &args).status.success());
    h.approve_all().await;
    // Over WebSocket: output masked, and recorded masked.
    let o = h.kubectl(&planner, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("mail "), "{}", stdout(&o));
    assert!(!stdout(&o).contains("alice@example.com"), "{}", stdout(&o));
    // Over SPDY frames would pass unchanged: refused, even approved.
    let mut command = h.kubectl_command(&planner, &args);
    command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    assert!(!run(&mut command).status.success());
    h.approve_all().await;
    let o = run(&mut command);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("k8s-unmaskable-answer"), "{err}");
    let log = serde_json::to_string(&h.events()).expect("json");
    assert!(
        !log.contains("alice@example.com"),
        "the log keeps only what the client saw"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_before_they_are_decided() {
    let h = Harness::with(Options {
        max_streams: Some(1),
        ..Options::default()
    })
    .await;
    let executor = h.executor_token();
    let hold = ["exec", "-i", "web-1", "--", "cat"];
    assert!(!h.kubectl(&executor, &hold).status.success());
    h.approve_all().await;
    let mut held = h
        .kubectl_command(&executor, &hold)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl exec -i");
    poll_until(Duration::from_secs(30), "the held stream to open", || {
        h.events()
            .iter()
            .any(|e| {
                matches!(e, sod_audit::Event::OperationAttempted { text, decision, .. }
                    if text.contains("command=cat") && decision.code.is_none())
            })
            .then_some(())
    });
    let o = h.kubectl(&executor, &["exec", "web-1", "--", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("streams are open"), "{}", stderr(&o));
    // Nothing was asked of the approvers for the refused stream.
    assert!(h.broker.pending().await.expect("pending").is_empty());
    drop(held.stdin.take());
    let _ = held.wait();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_where_policy_allows_it_is_relayed_over_spdy_and_recorded() {
    use std::io::{BufRead as _, Write as _};
    // This policy lets the executor forward ports (the demo's denies it).
    let policy = POLICY.replace(
        "id = \"k8s-no-forwarding\"\neffect = \"deny\"",
        "id = \"executor-forwards\"\neffect = \"allow\"\nprincipal_kinds = \"executor\"\nmask = \"none\"",
    );
    assert_ne!(policy, POLICY);
    let h = Harness::with(Options {
        policy,
        ..Options::default()
    })
    .await;
    // A real local server: the test API server forwards a pod's port N to 127.0.0.1:N.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = echo.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in echo.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().expect("clone");
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    let mut child = h
        .kubectl_command(
            &h.executor_token(),
            &["port-forward", "pod/web-1", &format!(":{port}")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let local: u16 = poll_until(DEADLINE, "kubectl to listen", || {
        rx.try_recv().ok().and_then(|line| {
            line.strip_prefix("Forwarding from 127.0.0.1:")?
                .split_once(' ')?
                .0
                .parse()
                .ok()
        })
    });
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect");
    conn.write_all(b"through the gateway\n").expect("write");
    let mut line = String::new();
    std::io::BufReader::new(conn.try_clone().expect("clone"))
        .read_line(&mut line)
        .expect("echo");
    assert_eq!(line, "through the gateway\n");
    drop(conn);
    let _ = child.kill();
    let _ = child.wait();
    // The forwarded bytes are in the transcript, both ways.
    poll_until(DEADLINE, "the forwarded bytes recorded", || {
        (h.recorded("i", "through the gateway") && h.recorded("o", "through the gateway"))
            .then_some(())
    });
    h.stop().await;
}
