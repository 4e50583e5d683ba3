//! A PostgreSQL gateway you can point psql at.
//!
//! ```sh
//! export SOD_UPSTREAM=127.0.0.1:5432/app        # the real server: host:port/database
//! export SOD_UPSTREAM_USER=executor             # the executor's login …
//! export SOD_UPSTREAM_PASSWORD_FILE=/run/secrets/pg   # … and its password (read at each connect)
//! export SOD_POLICY=policy.toml                 # deny by default
//! export SOD_MASKS=masks.toml                   # optional
//! export SOD_LISTEN=127.0.0.1:6543              # optional (this is the default)
//! export SOD_AUDIT_DIR=./sod-audit              # optional (this is the default)
//! cargo run -p sod-postgres --example gateway
//! ```
//!
//! On start it prints a fresh read-only capability for `planner-1` (valid 15 minutes) and the
//! psql command line that presents it as the password. The capability key is generated at start,
//! so capabilities die with the process. Every operation is recorded in the hash-chained audit
//! log under `SOD_AUDIT_DIR` (checkpoints signed with a key generated at start; a real
//! deployment keeps that key). Stop with Ctrl-C: sessions get 10 s to finish.
//!
//! This is an example of wiring, not a deployment: `sod-cli` runs gateways from a config file.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line example talks to its user

use std::{env, sync::Arc, time::Duration};

use sod_audit::{CheckpointKey, FileSink, FileSinkOptions, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{BoxError, KindSet, OperationKind, Target};
use sod_postgres::credentials::FileCredentials;
use sod_postgres::upstream::UpstreamConfig;
use sod_postgres::{Gateway, Listener};

fn var(name: &str) -> Result<String, BoxError> {
    env::var(name).map_err(|_| format!("set {name} (see the example's header)").into())
}

/// `host:port/database`.
fn upstream(spec: &str) -> Result<UpstreamConfig, BoxError> {
    let bad = || format!("SOD_UPSTREAM must be host:port/database, got {spec:?}");
    let (addr, database) = spec.split_once('/').ok_or_else(bad)?;
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || database.is_empty() {
        return Err(bad().into());
    }
    Ok(UpstreamConfig::tcp(host, port, database))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let upstream = upstream(&var("SOD_UPSTREAM")?)?;
    let credentials = FileCredentials::new(
        var("SOD_UPSTREAM_USER")?,
        var("SOD_UPSTREAM_PASSWORD_FILE")?,
    );
    let policy = Policy::from_file(var("SOD_POLICY")?)?;
    let masks = match env::var("SOD_MASKS") {
        Ok(path) => MaskProfiles::from_toml(&path, &std::fs::read_to_string(&path)?)?,
        Err(_) => MaskProfiles::new([]),
    };
    let listen = env::var("SOD_LISTEN").unwrap_or_else(|_| "127.0.0.1:6543".into());

    let authority = Arc::new(CapabilityAuthority::new(
        "sod-example",
        CapabilityKey::generate("k1"),
    ));
    let audit_dir = env::var("SOD_AUDIT_DIR").unwrap_or_else(|_| "sod-audit".into());
    let (audit, opened) = FileSink::open(
        &audit_dir,
        FileSinkOptions::new("pg-example", CheckpointKey::generate("example")),
    )
    .map_err(|e| format!("cannot open the audit log in {audit_dir}: {e}"))?;
    if let Some(torn) = opened.torn {
        eprintln!(
            "audit log: cut off a torn last record in {}",
            torn.segment.display()
        );
    }
    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(authority.clone()))
        .layer(RecordingLayer::new(Arc::new(audit)))
        .layer(PolicyLayer::new(policy))
        .layer(MaskingLayer::new(masks));

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let target = Target::new("pg/example");
    let gateway = Gateway::builder(
        target,
        Listener::Tcp(listener),
        upstream,
        credentials,
        stack,
    )
    .build();

    let capability = authority.issue(
        CapabilitySpec::new("planner-1", Duration::from_secs(15 * 60))
            .targets(["pg/example"])
            .kinds(KindSet::of(&[OperationKind::Connect, OperationKind::Read])),
    )?;
    let database = var("SOD_UPSTREAM")?
        .split_once('/')
        .map(|(_, db)| db.to_owned())
        .unwrap_or_default();
    println!("sod gateway on {addr}; a read-only capability for planner-1 (15 min):\n");
    println!(
        "PGPASSWORD='{}' psql \"host={} port={} dbname={database} user=planner-1\"\n",
        capability.encode(),
        addr.ip(),
        addr.port()
    );
    gateway
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down: sessions have 10 s to finish");
        })
        .await?;
    Ok(())
}
