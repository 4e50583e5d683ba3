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

/// A gateway in front of `upstream`, for one capability that connects and reads. No audit
/// log (`UnauditedLayer`, said so): these tests are about connecting upstream, which fails
/// before any operation is recorded or forwarded.
struct Gw {
    port: u16,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gw {
    async fn start(upstream: UpstreamConfig) -> Gw {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let gw = Gateway::builder(
            Target::new("pg/hostile"),
            Listener::Tcp(listener),
            upstream,
            sod_postgres::credentials::StaticCredentials::new(
                "executor",
                Some(sod_core::Secret::new("the-password".to_owned())),
            ),
            stack,
        )
        .build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gw.serve(async move {
            let _ = stopped.await;
        }));
        Gw {
            port,
            token,
            stop,
            task,
        }
    }

    /// Connects through the gateway, which must refuse: the error's SQLSTATE and message.
    async fn refused(&self) -> (String, String) {
        let e = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_postgres::connect(
                &format!(
                    "host=127.0.0.1 port={} user=agent dbname=sod password={}",
                    self.port, self.token
                ),
                tokio_postgres::NoTls,
            ),
        )
        .await
        .expect("the gateway answers")
        .err()
        .expect("the connection fails");
        let db = e.as_db_error().expect("a server error");
        (db.code().code().to_owned(), db.message().to_owned())
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A hostile "server": accepts one connection at a time and runs `script` on it; returns its
/// port and what the scripts report.
async fn hostile<F, Fut>(script: F) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>)
where
    F: Fn(tokio::net::TcpStream, tokio::sync::mpsc::UnboundedSender<String>) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(script(s, tx.clone()));
        }
    });
    (port, rx)
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    // A "server" that accepts and then says nothing.
    let (silent_port, _) = hostile(|s, _| async move {
        let _held = s;
        std::future::pending::<()>().await;
    })
    .await;
    let mut upstream = UpstreamConfig::tcp("127.0.0.1", silent_port, "sod");
    upstream.connect_timeout = Duration::from_millis(500);
    let gw = Gw::start(upstream).await;
    let started = Instant::now();
    let (code, message) = gw.refused().await;
    assert_eq!(code, "08001");
    assert!(
        message.contains("did not complete the connection"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    gw.stop().await;
}

/// What the gateway sends first: the 8-byte SSLRequest, or a start-up packet.
async fn read_request(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).await.is_err() {
        return Vec::new();
    }
    let n = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; n.saturating_sub(4)];
    let _ = s.read_exact(&mut body).await;
    body
}

const SSL_REQUEST_CODE: [u8; 4] = 80_877_103u32.to_be_bytes();

fn tls_upstream(port: u16, ca: &sod_testkit::TestCa) -> UpstreamConfig {
    UpstreamConfig::tcp("127.0.0.1", port, "sod").with_tls(
        ca.client_config(),
        rustls::pki_types::ServerName::try_from("localhost").expect("name"),
    )
}

/// An upstream that declines TLS (`N`), or accepts (`S`) and then sends plaintext bytes the
/// gateway must never take as the server's (CVE-2021-23222), is refused; so is one whose
/// certificate is signed by a CA the gateway does not trust.
#[tokio::test]
async fn an_upstream_that_declines_or_subverts_tls_is_refused() {
    use tokio::io::AsyncWriteExt as _;
    let trusted = sod_testkit::TestCa::new("trusted");

    let (declines, _) = hostile(|mut s, _| async move {
        assert_eq!(read_request(&mut s).await, SSL_REQUEST_CODE);
        let _ = s.write_all(b"N").await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let gw = Gw::start(tls_upstream(declines, &trusted)).await;
    let (code, message) = gw.refused().await;
    assert_eq!(code, "08001");
    assert!(message.contains("does not accept TLS"), "{message}");
    gw.stop().await;

    // `S` with a forged AuthenticationOk and ReadyForQuery right behind it, in plaintext.
    let (injects, _) = hostile(|mut s, _| async move {
        assert_eq!(read_request(&mut s).await, SSL_REQUEST_CODE);
        let _ = s.write_all(b"SR\0\0\0\x08\0\0\0\0Z\0\0\0\x05I").await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let gw = Gw::start(tls_upstream(injects, &trusted)).await;
    let (code, message) = gw.refused().await;
    assert_eq!(code, "08001");
    assert!(message.contains("TLS"), "{message}");
    gw.stop().await;

    // A real TLS handshake, with a certificate from another CA.
    let other = sod_testkit::TestCa::new("other");
    let leaf = other.issue(&["localhost"], &[]);
    let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config());
    let (impostor, mut told) = hostile(move |mut s, tx| {
        let acceptor = acceptor.clone();
        async move {
            assert_eq!(read_request(&mut s).await, SSL_REQUEST_CODE);
            let _ = s.write_all(b"S").await;
            let r = acceptor.accept(s).await;
            let _ = tx.send(format!("handshake: {}", r.is_ok()));
        }
    })
    .await;
    let gw = Gw::start(tls_upstream(impostor, &trusted)).await;
    let (code, message) = gw.refused().await;
    assert_eq!(code, "08001");
    assert!(message.contains("TLS"), "{message}");
    assert_eq!(told.recv().await.as_deref(), Some("handshake: false"));
    gw.stop().await;
}

/// A server that asks for the password in cleartext over plain TCP never gets it (unless
/// the config allows it).
#[tokio::test]
async fn a_cleartext_password_request_over_plain_tcp_is_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (port, mut told) = hostile(|mut s, tx| async move {
        let startup = read_request(&mut s).await;
        assert!(!startup.is_empty(), "a start-up packet");
        // AuthenticationCleartextPassword.
        let _ = s.write_all(b"R\0\0\0\x08\0\0\0\x03").await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
        let _ = tx.send(String::from_utf8_lossy(&rest).into_owned());
    })
    .await;
    let gw = Gw::start(UpstreamConfig::tcp("127.0.0.1", port, "sod")).await;
    let (code, message) = gw.refused().await;
    assert_eq!(code, "08001");
    assert!(message.contains("cleartext"), "{message}");
    let sent = told.recv().await.expect("the server reports");
    assert!(
        !sent.contains("the-password"),
        "the password went out: {sent:?}"
    );
    gw.stop().await;

    // Allowed by configuration: the password is sent.
    let (port, mut told) = hostile(|mut s, tx| async move {
        let _ = read_request(&mut s).await;
        let _ = s.write_all(b"R\0\0\0\x08\0\0\0\x03").await;
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
    })
    .await;
    let mut upstream = UpstreamConfig::tcp("127.0.0.1", port, "sod");
    upstream.allow_cleartext_password = true;
    upstream.connect_timeout = Duration::from_secs(2);
    let gw = Gw::start(upstream).await;
    let _ = gw.refused().await;
    let sent = told.recv().await.expect("the server reports");
    assert!(sent.contains("the-password"), "{sent:?}");
    gw.stop().await;
}
