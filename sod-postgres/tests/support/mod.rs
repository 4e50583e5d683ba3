//! A gateway in front of an ephemeral PostgreSQL cluster, with planner and executor identities.

#![allow(dead_code, unreachable_pub)]

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use sod_audit::testing::GatedSink;
use sod_audit::{CheckpointKey, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifiers};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{KindSet, OperationKind, Secret, Target};
use sod_postgres::credentials::StaticCredentials;
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener};
use sod_testkit::{EphemeralPostgres, OidcIssuer};

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "sod-pg";

/// Planners read; executors do anything except what the analyzer does not understand.
pub const POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"
reason = "the gateway does not understand this statement"

[[rule]]
id = "planners-read"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]

[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "schema", "admin", "transfer"]
"#;

/// Planners read with the `planner` mask profile; executors read, write and change the schema
/// unmasked; what the analyzer does not understand is denied.
pub const MASKED_POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"

[[rule]]
id = "planners-read-masked"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "planner"

[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "schema"]
"#;

pub const SEED: &str = "
CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text);
INSERT INTO public.customers VALUES (1, 'Alice', 'alice@example.com'), (2, 'Bob', 'bob@example.org');
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, amount numeric);
INSERT INTO public.orders SELECT g, 1 + g % 2, g * 10 FROM generate_series(1, 20) g;
GRANT ALL ON ALL TABLES IN SCHEMA public TO executor;
";

pub struct Harness {
    pub pg: EphemeralPostgres,
    /// The CA of the gateway's client-side certificate, when `client_tls` is on.
    pub client_ca: Option<sod_testkit::TestCa>,
    pub ca_file: Option<tempfile::NamedTempFile>,
    pub authority: Arc<CapabilityAuthority>,
    pub idp: OidcIssuer,
    pub port: u16,
    /// The audit log every session records into (a memory log behind a gate).
    pub audit: Arc<GatedSink>,
    pub audit_key: CheckpointKey,
    pub recording: RecordingLayer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// How the upstream connection is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// TCP, SCRAM-SHA-256 as `executor`.
    Scram,
    /// TCP, TLS verify-full, SCRAM-SHA-256.
    Tls,
    /// TCP, MD5 as `md5user`.
    Md5,
    /// TCP, trust as `trustuser`.
    Trust,
    /// Unix socket, MD5 as `md5user`.
    Unix,
}

pub struct Options {
    pub policy: String,
    pub masks: String,
    pub max_connections: usize,
    /// Most sessions of one identity.
    pub max_sessions_per_principal: usize,
    /// Offer TLS to clients (certificate for localhost / 127.0.0.1 from `Harness::client_ca`).
    pub client_tls: bool,
    pub plaintext: sod_postgres::Plaintext,
    pub upstream: Upstream,
    pub idle_timeout: Option<Duration>,
    /// The gateway's client write timeout.
    pub write_timeout: Option<Duration>,
    /// An approval layer (broker, how long a statement waits) between policy and masking.
    pub approval: Option<(sod_approval::Broker, Duration)>,
    /// Idle upstream sessions kept per principal (`None`: the gateway's default).
    pub pool_size: Option<usize>,
    /// How long a pooled upstream session waits (`None`: the gateway's default).
    pub pool_idle_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.to_owned(),
            masks: String::new(),
            max_connections: 50,
            max_sessions_per_principal: 50,
            client_tls: false,
            plaintext: sod_postgres::Plaintext::LoopbackOnly,
            upstream: Upstream::Scram,
            idle_timeout: Some(Duration::from_secs(3600)),
            write_timeout: Some(Duration::from_secs(300)),
            approval: None,
            pool_size: None,
            pool_idle_timeout: None,
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Harness {
        let kind = opts.upstream;
        let pg = tokio::task::spawn_blocking(move || {
            let pg = EphemeralPostgres::builder()
                .tls(kind == Upstream::Tls)
                .user("md5user", sod_testkit::UserAuth::Md5("md5-secret".into()))
                .user("trustuser", sod_testkit::UserAuth::Trust)
                .start()
                .expect("postgres starts");
            pg.psql_as("executor", SEED).expect("seed");
            pg.psql("GRANT ALL ON ALL TABLES IN SCHEMA public TO md5user, trustuser")
                .expect("grants");
            pg
        })
        .await
        .expect("join");
        let (upstream, creds) = match kind {
            Upstream::Scram => (
                UpstreamConfig::tcp("127.0.0.1", pg.port(), "sod"),
                StaticCredentials::new(
                    "executor",
                    Some(Secret::new(pg.executor_password().to_owned())),
                ),
            ),
            Upstream::Tls => {
                let ca = pg.ca().expect("tls cluster has a CA");
                (
                    UpstreamConfig::tcp("localhost", pg.port(), "sod").with_tls(
                        ca.client_config(),
                        rustls::pki_types::ServerName::try_from("localhost").expect("name"),
                    ),
                    StaticCredentials::new(
                        "executor",
                        Some(Secret::new(pg.executor_password().to_owned())),
                    ),
                )
            }
            Upstream::Md5 => (
                UpstreamConfig::tcp("127.0.0.1", pg.port(), "sod"),
                StaticCredentials::new("md5user", Some(Secret::new("md5-secret".to_owned()))),
            ),
            Upstream::Trust => (
                UpstreamConfig::tcp("127.0.0.1", pg.port(), "sod"),
                StaticCredentials::new("trustuser", None),
            ),
            Upstream::Unix => (
                UpstreamConfig::unix(pg.socket_dir(), pg.port(), "sod"),
                StaticCredentials::new("md5user", Some(Secret::new("md5-secret".to_owned()))),
            ),
        };
        let authority = Arc::new(CapabilityAuthority::new(
            "sod",
            CapabilityKey::generate("k1"),
        ));
        let idp = OidcIssuer::new(ISS, AUD);
        let oidc = OidcVerifier::new(OidcConfig::new(
            ISS,
            AUD,
            JwksSource::Static(idp.jwks().to_string()),
        ))
        .expect("oidc");
        let audit_key = CheckpointKey::generate("audit");
        let audit = Arc::new(GatedSink::new("gw-test", audit_key.clone()));
        let recording = RecordingLayer::new(audit.clone());
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(
                Verifiers::new().with(oidc).with(authority.clone()),
            ))
            .layer(recording.clone())
            .layer(PolicyLayer::new(
                Policy::from_toml("policy.toml", &opts.policy).expect("policy"),
            ))
            .option_layer(
                opts.approval
                    .clone()
                    .map(|(broker, wait)| sod_approval::ApprovalLayer::new(broker, wait)),
            )
            .layer(MaskingLayer::new(
                MaskProfiles::from_toml("masks.toml", &opts.masks).expect("masks"),
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut builder = Gateway::builder(
            Target::new("pg/test"),
            Listener::Tcp(listener),
            upstream,
            creds,
            stack,
        )
        .max_connections(opts.max_connections)
        .max_sessions_per_principal(opts.max_sessions_per_principal)
        .plaintext(opts.plaintext)
        .idle_timeout(opts.idle_timeout)
        .client_write_timeout(opts.write_timeout)
        .shutdown_grace(Duration::from_secs(2));
        if let Some(n) = opts.pool_size {
            builder = builder.pool_size(n);
        }
        if let Some(t) = opts.pool_idle_timeout {
            builder = builder.pool_idle_timeout(t);
        }
        let mut client_ca = None;
        let mut ca_file = None;
        if opts.client_tls {
            let ca = sod_testkit::TestCa::new("sod gateway test CA");
            let leaf = ca.issue(
                &["localhost"],
                &[std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
            );
            builder = builder.tls(leaf.server_config());
            let file = tempfile::NamedTempFile::new().expect("temp file");
            ca.write_pem(file.path()).expect("write CA");
            client_ca = Some(ca);
            ca_file = Some(file);
        }
        let gateway = builder.build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        Harness {
            pg,
            client_ca,
            ca_file,
            authority,
            idp,
            port,
            audit,
            audit_key,
            recording,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A capability for a planner allowed `kinds` on every pg target.
    pub fn planner(&self, kinds: &[OperationKind]) -> String {
        self.authority
            .issue(
                CapabilitySpec::new("planner-1", Duration::from_secs(600))
                    .targets(["pg/*"])
                    .kinds(KindSet::of(kinds))
                    .on_behalf_of("alice"),
            )
            .expect("issue")
            .encode()
    }

    /// A read-only planner capability.
    pub fn reader(&self) -> String {
        self.planner(&[OperationKind::Read])
    }

    /// An OIDC token for the executor.
    pub fn executor(&self) -> String {
        self.idp
            .token()
            .subject("executor-1")
            .kind("executor")
            .expires_in(600)
            .sign()
    }

    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname=sod user=agent sslmode=disable",
            self.port
        )
    }

    /// Runs psql against the gateway with `token` as the password.
    pub fn psql(&self, token: &str, sql: &str) -> Output {
        psql(&self.conninfo(), token, sql)
    }

    /// A tokio-postgres client through the gateway.
    pub async fn client(
        &self,
        token: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(
            &format!("{} password={token}", self.conninfo()),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Runs SQL directly against the server (not through the gateway), as the superuser.
    pub fn direct(&self, sql: &str) -> String {
        self.pg.psql(sql).expect("direct query")
    }

    pub async fn stop(mut self) {
        self.stop_gateway().await;
    }

    /// Shuts the gateway down (and waits for it), keeping the server running.
    pub async fn stop_gateway(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Runs psql on `conninfo` with `token` as the password (usable where no `Harness` can be
/// borrowed, such as in `spawn_blocking`).
pub fn psql(conninfo: &str, token: &str, sql: &str) -> Output {
    std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", token)
        .env_remove("PGHOST")
        .output()
        .expect("psql runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

// ---- raw protocol --------------------------------------------------------------------

use bytes::BytesMut;
use sod_postgres::codec::{self, BackendMessage, Limits, frontend};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads backend messages until the server closes, returning them.
pub async fn read_all(stream: &mut TcpStream) -> Vec<codec::BackendFrame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let limits = Limits::default();
    loop {
        while let Ok(Some(f)) = codec::decode_backend(&mut buf, &limits) {
            frames.push(f);
        }
        match tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return frames,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the gateway neither answered nor closed"),
        }
    }
}

pub fn error_codes(frames: &[codec::BackendFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f.parse() {
            Ok(BackendMessage::ErrorResponse(e)) => e.code().map(str::to_owned),
            _ => None,
        })
        .collect()
}

pub async fn startup(stream: &mut TcpStream, params: &[(&str, &str)]) {
    let mut out = BytesMut::new();
    frontend::startup(&mut out, params).expect("startup");
    stream.write_all(&out).await.expect("write");
}

/// Connects and authenticates with the raw protocol; returns the stream after ReadyForQuery.
pub async fn raw_session(h: &Harness, token: &str) -> TcpStream {
    raw_session_with(h, token, &[]).await
}

/// [`raw_session`], and the cancel key the gateway gave (`BackendKeyData`).
pub async fn raw_session_keyed(h: &Harness, token: &str) -> (TcpStream, i32, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    startup(&mut s, &[("user", "agent"), ("database", "sod")]).await;
    let mut buf = BytesMut::new();
    let limits = Limits::default();
    let mut key = None;
    loop {
        s.read_buf(&mut buf).await.expect("read");
        while let Some(f) = codec::decode_backend(&mut buf, &limits).expect("decode") {
            match f.parse().expect("parse") {
                BackendMessage::Authentication(codec::Auth::CleartextPassword) => {
                    let mut out = BytesMut::new();
                    frontend::password(&mut out, token.as_bytes()).expect("password");
                    s.write_all(&out).await.expect("write");
                }
                BackendMessage::BackendKeyData { pid, key: k } => key = Some((pid, k.to_vec())),
                BackendMessage::ReadyForQuery { .. } => {
                    let (pid, key) = key.expect("BackendKeyData before ReadyForQuery");
                    return (s, pid, key);
                }
                BackendMessage::ErrorResponse(e) => panic!("refused: {:?}", e.message()),
                _ => {}
            }
        }
    }
}

/// [`raw_session`] with `extra` start-up parameters after `user` and `database`.
pub async fn raw_session_with(h: &Harness, token: &str, extra: &[(&str, &str)]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    let mut params = vec![("user", "agent"), ("database", "sod")];
    params.extend_from_slice(extra);
    startup(&mut s, &params).await;
    let mut buf = BytesMut::new();
    let limits = Limits::default();
    loop {
        s.read_buf(&mut buf).await.expect("read");
        while let Some(f) = codec::decode_backend(&mut buf, &limits).expect("decode") {
            match f.parse().expect("parse") {
                BackendMessage::Authentication(codec::Auth::CleartextPassword) => {
                    let mut out = BytesMut::new();
                    frontend::password(&mut out, token.as_bytes()).expect("password");
                    s.write_all(&out).await.expect("write");
                }
                BackendMessage::ReadyForQuery { .. } => return s,
                BackendMessage::ErrorResponse(e) => panic!("refused: {:?}", e.message()),
                _ => {}
            }
        }
    }
}

/// Reads backend messages until one with tag `until` arrives (within 10 s), returning all of
/// them. Panics if the gateway closes or stays silent.
pub async fn read_until(stream: &mut TcpStream, until: u8) -> Vec<codec::BackendFrame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let limits = Limits::default();
    loop {
        while let Some(f) = codec::decode_backend(&mut buf, &limits).expect("decode") {
            let done = f.tag() == until;
            frames.push(f);
            if done {
                assert!(buf.is_empty(), "more arrived than asked for");
                return frames;
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!("the gateway closed the connection"),
            Ok(Ok(_)) => {}
            Err(_) => panic!("no message with tag {:?} within 10 s", char::from(until)),
        }
    }
}
