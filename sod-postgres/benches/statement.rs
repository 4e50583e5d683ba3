//! The per-statement cost of the gateway alone: frames in from a client, through every layer
//! (identity, the file audit log at the default durability, policy, approvals, masking), to a
//! *null upstream* — an in-process server that answers each message at once with a canned
//! one-row result — and frames back out. No database, so a regression shows as itself.
//!
//! One session, one statement at a time, for pgbench's select-only statement in each protocol
//! mode (simple query; unnamed Parse/Bind/Describe/Execute/Sync; Bind/Execute/Sync of a named
//! statement), as the unmasked executor and as the masked planner; also the audit log's bytes
//! per statement.
//!
//! Run with `cargo xtask bench statement` (or `cargo bench -p sod-postgres --bench statement`).

#![allow(missing_docs, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use sod_approval::{ApprovalLayer, Broker, MemoryStore};
use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind, Secret, Target};
use sod_postgres::codec::{
    self, FieldDescription, Limits, Startup, Target as Describe, TransactionStatus, backend,
    frontend, tag,
};
use sod_postgres::credentials::StaticCredentials;
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
const PARAM_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

const POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"

[[rule]]
id = "planner-reads-masked"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "bench"

[[rule]]
id = "executor-reads"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read"]
mask = "none"
"#;

const MASKS: &str = r#"
[[profile]]
name = "bench"
detectors = ["email", "phone", "payment_card", "national_id"]
unknown = "redact"

[[profile.rule]]
column = "public.customers.email"
strategy = "redact"
"#;

/// The OID the null upstream gives `pgbench_accounts`, and its catalog rows.
const ACCOUNTS_OID: &str = "16400";

fn message(out: &mut BytesMut, f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>) {
    f(out).expect("encodes");
}

/// Rows for the gateway's catalog queries: the search path holds `public` with
/// `pgbench_accounts` (columns `aid`, `bid`, `abalance`, `filler`), where results come from.
fn catalog_rows(sql: &str) -> Option<Vec<Vec<Option<&'static str>>>> {
    if sql.contains("current_schemas") {
        return Some(vec![
            vec![Some("pg_catalog"), None],
            vec![Some("public"), Some("pgbench_accounts")],
        ]);
    }
    if sql.contains("a.attnum::text, a.attname::text") {
        let column = |att, name| {
            vec![
                Some(ACCOUNTS_OID),
                Some("public"),
                Some("pgbench_accounts"),
                Some("r"),
                Some(att),
                Some(name),
            ]
        };
        return Some(vec![
            column("1", "aid"),
            column("2", "bid"),
            column("3", "abalance"),
            column("4", "filler"),
        ]);
    }
    if sql.contains("pg_catalog") {
        return Some(Vec::new());
    }
    None
}

fn text_fields(n: usize) -> Vec<FieldDescription<'static>> {
    const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
    (0..n)
        .map(|i| FieldDescription {
            name: NAMES[i % 6],
            table_oid: 0,
            column: 0,
            type_oid: 25,
            type_size: -1,
            type_modifier: -1,
            format: 0,
        })
        .collect()
}

fn abalance(format: i16) -> [FieldDescription<'static>; 1] {
    [FieldDescription {
        name: "abalance",
        table_oid: ACCOUNTS_OID.parse().unwrap_or(0),
        column: 3,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format,
    }]
}

/// One session of the null upstream.
async fn null_session(mut s: TcpStream) {
    let limits = Limits::DEFAULT;
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        match codec::decode_startup(&mut buf, &limits) {
            Ok(Some(Startup::Startup { .. })) => break,
            Ok(Some(Startup::Ssl | Startup::GssEnc)) => {
                if s.write_all(b"N").await.is_err() {
                    return;
                }
            }
            Ok(Some(Startup::Cancel { .. })) | Err(_) => return,
            Ok(None) => {
                if s.read_buf(&mut buf).await.map_or(true, |n| n == 0) {
                    return;
                }
            }
        }
    }
    let mut out = BytesMut::new();
    backend::authentication_ok(&mut out);
    for (k, v) in [
        ("server_version", "15.8"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
    ] {
        message(&mut out, |o| backend::parameter_status(o, k, v));
    }
    message(&mut out, |o| {
        backend::backend_key_data(o, 4242, &[1, 2, 3, 4])
    });
    backend::ready_for_query(&mut out, TransactionStatus::Idle);
    if s.write_all(&out).await.is_err() {
        return;
    }
    out.clear();
    let mut failed = false;
    loop {
        let frame = loop {
            match codec::decode_frontend(&mut buf, &limits) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            if !out.is_empty() {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if s.read_buf(&mut buf).await.map_or(true, |n| n == 0) {
                return;
            }
        };
        let t = frame.tag();
        if failed && t != tag::SYNC {
            continue;
        }
        let Ok(msg) = frame.parse() else { return };
        match msg {
            codec::FrontendMessage::Query { sql } => {
                match catalog_rows(sql) {
                    Some(rows) => {
                        let width = if sql.contains("a.attnum::text") { 6 } else { 2 };
                        message(&mut out, |o| {
                            backend::row_description(o, &text_fields(width))
                        });
                        for row in &rows {
                            let values: Vec<Option<&[u8]>> =
                                row.iter().map(|v| v.map(str::as_bytes)).collect();
                            message(&mut out, |o| backend::data_row(o, &values));
                        }
                        message(&mut out, |o| {
                            backend::command_complete(o, &format!("SELECT {}", rows.len()))
                        });
                    }
                    None => {
                        message(&mut out, |o| backend::row_description(o, &abalance(0)));
                        message(&mut out, |o| backend::data_row(o, &[Some(b"0")]));
                        message(&mut out, |o| backend::command_complete(o, "SELECT 1"));
                    }
                }
                backend::ready_for_query(&mut out, TransactionStatus::Idle);
            }
            codec::FrontendMessage::Parse { sql, .. } => {
                if sql.starts_with("sod refused") {
                    message(&mut out, |o| {
                        backend::error_response(o, &codec::ErrorBuilder::error("42601", "refused"));
                        Ok(())
                    });
                    failed = true;
                } else {
                    backend::parse_complete(&mut out);
                }
            }
            codec::FrontendMessage::Bind(_) => backend::bind_complete(&mut out),
            codec::FrontendMessage::Describe { target, .. } => {
                if target == Describe::Statement {
                    message(&mut out, |o| backend::parameter_description(o, &[23]));
                }
                message(&mut out, |o| backend::row_description(o, &abalance(0)));
            }
            codec::FrontendMessage::Execute { .. } => {
                message(&mut out, |o| backend::data_row(o, &[Some(b"0")]));
                message(&mut out, |o| backend::command_complete(o, "SELECT 1"));
            }
            codec::FrontendMessage::Close { .. } => backend::close_complete(&mut out),
            codec::FrontendMessage::Sync => {
                failed = false;
                backend::ready_for_query(&mut out, TransactionStatus::Idle);
            }
            codec::FrontendMessage::Terminate => return,
            _ => {}
        }
    }
}

async fn null_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(null_session(s));
        }
    });
    port
}

/// A raw protocol client: one session, messages written and answers read to `ReadyForQuery`.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Client {
    async fn connect(port: u16, user: &str, password: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut c = Client {
            stream,
            buf: BytesMut::with_capacity(8192),
            out: BytesMut::new(),
        };
        message(&mut c.out, |o| {
            frontend::startup(o, &[("user", user), ("database", "sod")])
        });
        c.send().await;
        // Authentication request, then the password, then everything to ReadyForQuery.
        let first = c.frame().await;
        assert_eq!(first.tag(), b'R', "the gateway asks for a password");
        message(&mut c.out, |o| frontend::password(o, password.as_bytes()));
        c.send().await;
        c.until_ready().await;
        c
    }

    async fn send(&mut self) {
        self.stream.write_all(&self.out).await.expect("write");
        self.out.clear();
    }

    async fn frame(&mut self) -> codec::BackendFrame {
        loop {
            if let Some(f) =
                codec::decode_backend(&mut self.buf, &Limits::DEFAULT).expect("decodes")
            {
                return f;
            }
            let n = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "the gateway closed the session");
        }
    }

    /// Reads to `ReadyForQuery`; the number of data rows, panicking on an error.
    async fn until_ready(&mut self) -> usize {
        let mut rows = 0;
        loop {
            let f = self.frame().await;
            match f.tag() {
                b'Z' => return rows,
                b'D' => rows += 1,
                b'E' => panic!("the gateway answered an error: {:?}", f.parse()),
                _ => {}
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Simple,
    Extended,
    Prepared,
}

impl Client {
    async fn statement(&mut self, mode: Mode) {
        match mode {
            Mode::Simple => message(&mut self.out, |o| frontend::query(o, SELECT)),
            Mode::Extended => {
                message(&mut self.out, |o| {
                    frontend::parse(o, "", PARAM_SELECT, &[23])
                });
                message(&mut self.out, |o| {
                    frontend::bind(o, "", "", &[0], &[Some(b"48213")], &[0])
                });
                message(&mut self.out, |o| {
                    frontend::describe(o, Describe::Portal, "")
                });
                message(&mut self.out, |o| frontend::execute(o, "", 0));
                frontend::sync(&mut self.out);
            }
            Mode::Prepared => {
                message(&mut self.out, |o| {
                    frontend::bind(o, "", "s1", &[0], &[Some(b"48213")], &[0])
                });
                message(&mut self.out, |o| frontend::execute(o, "", 0));
                frontend::sync(&mut self.out);
            }
        }
        self.send().await;
        let rows = self.until_ready().await;
        debug_assert_eq!(rows, 1);
    }
}

struct Bench {
    rt: tokio::runtime::Runtime,
    port: u16,
    tokens: [(String, String); 2],
    audit: tempfile::TempDir,
}

fn setup() -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let audit = tempfile::tempdir().expect("audit dir");
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("bench"),
    ));
    let issue = |name: &str, role| {
        authority
            .issue(
                CapabilitySpec::new(name, Duration::from_secs(3600))
                    .kind(PrincipalKind::Agent(role))
                    .targets(["pg/*"])
                    .kinds(KindSet::of(&[OperationKind::Connect, OperationKind::Read])),
            )
            .expect("issue")
            .encode()
    };
    let tokens = [
        (
            "executor".to_owned(),
            issue("executor", AgentRole::Executor),
        ),
        ("planner".to_owned(), issue("planner", AgentRole::Planner)),
    ];
    let (sink, _) = FileSink::open(
        audit.path(),
        FileSinkOptions::new("bench", CheckpointKey::generate("bench-audit")),
    )
    .expect("audit log");
    let policy = Policy::from_toml("bench", POLICY).expect("policy");
    let masks = MaskProfiles::from_toml("masks", MASKS).expect("masks");
    let port = rt.block_on(async {
        let upstream = null_upstream().await;
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(authority.clone()))
            .layer(RecordingLayer::new(Arc::new(sink)))
            .layer(PolicyLayer::new(policy))
            .layer(ApprovalLayer::new(
                Broker::new(Arc::new(MemoryStore::new())),
                Duration::from_secs(5),
            ))
            .layer(MaskingLayer::new(masks));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let gw = Gateway::builder(
            Target::new("pg/bench"),
            Listener::Tcp(listener),
            UpstreamConfig::tcp("127.0.0.1", upstream, "sod"),
            StaticCredentials::new("executor", Some(Secret::new("unused".to_owned()))),
            stack,
        )
        .build();
        tokio::spawn(gw.serve(std::future::pending::<()>()));
        port
    });
    Bench {
        rt,
        port,
        tokens,
        audit,
    }
}

fn audit_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn statements(c: &mut Criterion) {
    let bench = setup();
    let mut group = c.benchmark_group("statement through the gateway (null upstream)");
    for (who, token) in &bench.tokens {
        for (name, mode) in [
            ("simple", Mode::Simple),
            ("extended", Mode::Extended),
            ("prepared", Mode::Prepared),
        ] {
            let mut client = bench.rt.block_on(Client::connect(bench.port, who, token));
            if matches!(mode, Mode::Prepared) {
                bench.rt.block_on(async {
                    message(&mut client.out, |o| {
                        frontend::parse(o, "s1", PARAM_SELECT, &[23])
                    });
                    frontend::sync(&mut client.out);
                    client.send().await;
                    client.until_ready().await;
                });
            }
            let before = audit_bytes(bench.audit.path());
            let mut count = 0u64;
            group.bench_function(format!("{name}, {who}"), |b| {
                b.iter_custom(|iters| {
                    bench.rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            client.statement(mode).await;
                        }
                        count += iters;
                        start.elapsed()
                    })
                })
            });
            let grown = audit_bytes(bench.audit.path()).saturating_sub(before);
            println!(
                "  audit log: {:.0} bytes per statement ({name}, {who})",
                grown as f64 / count.max(1) as f64
            );
        }
    }
    group.finish();
}

criterion_group!(benches, statements);
criterion_main!(benches);
