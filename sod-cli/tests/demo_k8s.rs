//! `sod demo` for Kubernetes, as the walkthrough says to use it: the real `kubectl` with the
//! kubeconfigs the demo writes, and `sod approvals` for the approver. The API server behind
//! the gateway is sod-testkit's test server (no real one can be installed here).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{Demo, sod, text};

/// `kubectl ARGS` as `who`, with the demo's kubeconfig for them and a deadline.
fn kubectl(demo: &Demo, who: &str, args: &[&str], home: &std::path::Path) -> Output {
    let mut c = Command::new("kubectl");
    c.args(args)
        .env(
            "KUBECONFIG",
            demo.kubeconfig_dir.join(format!("{who}.kubeconfig")),
        )
        .env("HOME", home)
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS");
    sod_testkit::ssh::run(&mut c, Duration::from_secs(60)).unwrap()
}

/// The approval id in a refusal (`apr-…`).
fn approval_id(stderr: &str) -> String {
    stderr
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';')
        .find(|w| w.starts_with("apr-"))
        .unwrap_or_else(|| panic!("no approval id in {stderr}"))
        .to_owned()
}

fn approve(demo: &Demo, id: &str) {
    let api = format!("http://127.0.0.1:{}", demo.api_port);
    let approve = sod(&[
        "approvals",
        "approve",
        id,
        "--url",
        &api,
        "--token",
        &demo.token("approver"),
    ]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
}

#[test]
fn the_demo_walkthrough_with_kubectl() {
    let work = tempfile::tempdir().unwrap();
    let demo = Demo::start(&work.path().join("tokens.json"), &["--approval-wait", "1"]);
    let home = work.path();
    assert_eq!(demo.up["k8s_target"], "k8s/demo");
    for who in ["planner", "executor", "approver"] {
        assert!(
            demo.kubeconfig_dir
                .join(format!("{who}.kubeconfig"))
                .is_file()
        );
    }

    // The planner reads everything in `default`, Secret values masked.
    let out = kubectl(&demo, "planner", &["get", "pods"], home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pods = text(&out.stdout);
    assert!(pods.contains("web-1") && pods.contains("web-2"), "{pods}");
    let password = [
        "get",
        "secret",
        "db-credentials",
        "-o",
        "jsonpath={.data.password}",
    ];
    let out = kubectl(&demo, "planner", &password, home);
    assert_eq!(text(&out.stdout), "KioqKg==", "{}", text(&out.stderr));
    let out = kubectl(&demo, "planner", &["get", "secrets", "-o", "yaml"], home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("czNjcjN0LXBhNTU="));
    let out = kubectl(
        &demo,
        "planner",
        &["get", "configmap", "app-config", "-o", "yaml"],
        home,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The executor sees them as they are.
    let out = kubectl(&demo, "executor", &password, home);
    assert_eq!(
        text(&out.stdout),
        "czNjcjN0LXBhNTU=",
        "{}",
        text(&out.stderr)
    );

    // Other namespaces, RBAC, cluster-scoped writes and forwarding are refused, by name.
    for (args, rule) in [
        (&["get", "pods", "-n", "kube-system"][..], "default-deny"),
        (
            &[
                "create",
                "clusterrolebinding",
                "x",
                "--clusterrole=admin",
                "--user=me",
            ],
            "k8s-no-admin",
        ),
        (&["create", "namespace", "scratch"], "k8s-no-admin"),
        (
            &["port-forward", "pod/web-1", "18080:80"],
            "k8s-no-forwarding",
        ),
    ] {
        let out = kubectl(&demo, "planner", args, home);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(rule),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // A planner's change waits for the approver, then runs once.
    let out = kubectl(&demo, "planner", &["delete", "pod", "web-2"], home);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("planner-k8s-changes"), "{err}");
    approve(&demo, &approval_id(&err));
    let out = kubectl(&demo, "planner", &["delete", "pod", "web-2"], home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kubectl(&demo, "planner", &["get", "pods"], home);
    assert!(
        !text(&out.stdout).contains("web-2"),
        "{}",
        text(&out.stdout)
    );

    // The executor's exec waits for approval, then runs a real process.
    let exec = ["exec", "web-1", "--", "sh", "-c", "echo hello from web-1"];
    let out = kubectl(&demo, "executor", &exec, home);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("executor-k8s-exec"), "{err}");
    approve(&demo, &approval_id(&err));
    let out = kubectl(&demo, "executor", &exec, home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from web-1\n");

    // Every attempt is in the audit log, which verifies.
    let audit = demo.up["audit_dir"].as_str().unwrap();
    let key = demo.up["audit_key"].as_str().unwrap();
    let verify = sod(&["audit", "verify", audit, "--key", key]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let replay = sod(&["audit", "replay", audit]);
    let log = text(&replay.stdout);
    assert!(
        log.contains("DELETE /api/v1/namespaces/default/pods/web-2"),
        "{log}"
    );
    assert!(
        !log.contains("czNjcjN0LXBhNTU="),
        "no Secret value in the log"
    );
}
