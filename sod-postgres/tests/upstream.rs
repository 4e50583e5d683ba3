//! Credential sources and the bounded connect timeout.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, PolicyLayer};
use sod_core::policy::Policy;
use sod_core::{KindSet, OperationKind, Target};
use sod_postgres::credentials::{CredentialSource, EnvCredentials, FileCredentials};
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener};

#[tokio::test]
async fn file_credentials_are_read_at_each_connect_and_must_be_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("password");
    std::fs::write(&path, "s3cret\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let source = FileCredentials::new("executor", &path);
    let c = source.credentials().await.expect("readable");
    assert_eq!(c.user, "executor");
    assert_eq!(
        c.password.as_ref().map(|p| p.expose_secret().as_str()),
        Some("s3cret")
    );
    // Rotation: the next connect sees the new password.
    std::fs::write(&path, "rotated").expect("write");
    let c = source.credentials().await.expect("readable");
    assert_eq!(
        c.password.as_ref().map(|p| p.expose_secret().as_str()),
        Some("rotated")
    );
    // Readable by others: refused, and the message says how to fix it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = source.credentials().await.err().expect("refused");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    let missing = FileCredentials::new("executor", dir.path().join("nope"));
    assert!(missing.credentials().await.is_err());
}

#[tokio::test]
async fn environment_credentials() {
    // Variable names unique to this test: the environment is shared by the process.
    let (user, pass) = ("SOD_TEST_ENV_CREDS_USER", "SOD_TEST_ENV_CREDS_PASSWORD");
    let source = EnvCredentials::new(user, pass);
    assert!(
        source.credentials().await.is_err(),
        "unset user is an error"
    );
    // Changing this process's environment needs `unsafe` in edition 2024; run the check in a
    // child process that has the variables instead.
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "environment_credentials_child", "--nocapture"])
        .env(user, "executor")
        .env(pass, "from-env")
        .output()
        .expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("test environment_credentials_child ... ok"),
        "the child check did not run: {stdout}"
    );
}

/// Checks whatever environment it runs in: the variables unset (run on its own) or set (run by
/// `environment_credentials`).
#[tokio::test]
async fn environment_credentials_child() {
    let (user, pass) = ("SOD_TEST_ENV_CREDS_USER", "SOD_TEST_ENV_CREDS_PASSWORD");
    if std::env::var_os(user).is_none() {
        let e = EnvCredentials::new(user, pass)
            .credentials()
            .await
            .err()
            .expect("unset");
        assert!(e.to_string().contains(user), "{e}");
        let e = EnvCredentials::password_of("executor", pass)
            .credentials()
            .await
            .err()
            .expect("a named user's password variable must be set");
        assert!(e.to_string().contains(pass), "{e}");
        return;
    }
    let named = EnvCredentials::password_of("someone", pass)
        .credentials()
        .await
        .expect("set");
    assert_eq!(named.user, "someone");
    assert_eq!(
        named.password.as_ref().map(|p| p.expose_secret().as_str()),
        Some("from-env")
    );
    let c = EnvCredentials::new(user, pass)
        .credentials()
        .await
        .expect("set");
    assert_eq!(c.user, "executor");
    assert_eq!(
        c.password.as_ref().map(|p| p.expose_secret().as_str()),
        Some("from-env")
    );
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    // A "server" that accepts and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("k"),
    ));
    let token = authority
        .issue(
            CapabilitySpec::new("p", Duration::from_secs(60))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Read])),
        )
        .expect("issue")
        .encode();
    let policy = Policy::from_toml(
        "p",
        "[[rule]]\nid = \"r\"\neffect = \"allow\"\nkinds = [\"connect\", \"read\"]\n",
    )
    .expect("policy");
    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(authority))
        .layer(sod_core::layer::UnauditedLayer::new())
        .layer(PolicyLayer::new(policy));
    let mut upstream = UpstreamConfig::tcp("127.0.0.1", silent_port, "sod");
    upstream.connect_timeout = Duration::from_millis(500);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let gw = Gateway::builder(
        Target::new("pg/silent"),
        Listener::Tcp(listener),
        upstream,
        sod_postgres::credentials::StaticCredentials::new("executor", None),
        stack,
    )
    .build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gw.serve(async move {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    let e = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=agent dbname=sod password={token}"),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("the connection fails");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "08001");
    assert!(
        db.message().contains("did not complete the connection"),
        "{}",
        db.message()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = stop.send(());
    let _ = task.await;
    hold.abort();
}
