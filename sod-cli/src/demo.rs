//! `sod demo`: the whole idea in a minute.
//!
//! Starts an ephemeral PostgreSQL cluster (or uses `--upstream`), creates the demo schema
//! ([`SCHEMA`]) if it is missing, writes a complete `sod.toml` with the demo policy
//! ([`POLICY`]) and mask profile ([`MASKS`]) into a fresh directory, starts the gateway and the
//! approvals API from that file exactly as `sod gateway` would, and issues capabilities for
//! three identities:
//!
//! | identity | kind | may |
//! |---|---|---|
//! | `planner` | planner | read with email, phone, SSN and card number masked; write `orders` after one approval; nothing else |
//! | `executor` | executor | read and write unmasked; no schema changes |
//! | `approver` | human, group `approvers` (an OIDC token from the demo's own identity provider) | approve or deny; read masked |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sod_core::capability::{CapabilityAuthority, CapabilitySpec};
use sod_core::{AgentRole, BoxError, KindSet, OperationKind, PrincipalKind};
use sod_testkit::EphemeralPostgres;
use sod_testkit::oidc::OidcIssuer;

use crate::assemble;
use crate::config::Config;
use crate::keys;

/// The demo schema: `customers` (200 rows) and `orders` (600 rows).
pub const SCHEMA: &str = include_str!("../demo/schema.sql");
/// The demo policy.
pub const POLICY: &str = include_str!("../demo/policy.toml");
/// The demo mask profile.
pub const MASKS: &str = include_str!("../demo/masks.toml");
/// The target name of the demo gateway.
pub const TARGET: &str = "pg/demo";
/// The demo identity provider's issuer (`iss`).
pub const IDP_ISSUER: &str = "https://idp.sod-demo.invalid";
/// The audience of the demo's OIDC tokens.
pub const IDP_AUDIENCE: &str = "sod";
/// How long the demo's tokens live.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// `sod demo`'s options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// An existing server (`postgres://user:password@host:port/database`) instead of an
    /// ephemeral cluster.
    pub upstream: Option<String>,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where to write the three tokens (JSON), besides the demo directory.
    pub tokens_out: Option<PathBuf>,
    /// The audit log directory (default: in the demo directory).
    pub audit_dir: Option<PathBuf>,
    /// Where the approvals API listens.
    pub approvals_listen: SocketAddr,
    /// How long a statement waits for approval.
    pub approval_wait: Duration,
}

/// What [`prepare`] set up.
pub struct Demo {
    /// The cluster, when the demo started one (stopped on drop).
    _cluster: Option<EphemeralPostgres>,
    /// The demo directory (removed on drop).
    dir: tempfile::TempDir,
    /// The config the demo runs.
    pub config: Config,
    /// The database clients name.
    pub database: String,
    /// planner, executor, approver.
    pub tokens: [(String, String); 3],
    /// Where the audit log is.
    pub audit_dir: PathBuf,
}

impl Demo {
    /// The demo directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

struct Upstream {
    host: String,
    port: u16,
    database: String,
    user: String,
    password: Option<String>,
}

/// Starts (or connects to) the database, seeds it and writes the demo directory. `progress`
/// hears what is happening.
pub async fn prepare(options: &DemoOptions, progress: &dyn Fn(&str)) -> Result<Demo, BoxError> {
    let (cluster, upstream) = match &options.upstream {
        None => {
            progress("starting an ephemeral PostgreSQL cluster (initdb, pg_ctl)…");
            let pg = tokio::task::spawn_blocking(EphemeralPostgres::start)
                .await?
                .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
            let upstream = Upstream {
                host: pg.host().to_owned(),
                port: pg.port(),
                database: pg.database().to_owned(),
                user: sod_testkit::pg::EXECUTOR.to_owned(),
                password: Some(pg.executor_password().to_owned()),
            };
            (Some(pg), upstream)
        }
        Some(url) => (None, parse_upstream(url)?),
    };
    progress(&format!(
        "creating the demo schema in {}:{}/{} if missing…",
        upstream.host, upstream.port, upstream.database
    ));
    seed(&upstream).await?;

    let dir = tempfile::Builder::new().prefix("sod-demo-").tempdir()?;
    let d = dir.path();
    std::fs::write(d.join("policy.toml"), POLICY)?;
    std::fs::write(d.join("masks.toml"), MASKS)?;
    keys::generate(&d.join("capability.key"))?;
    // The demo plays the humans' identity provider too: approvers sign in with OIDC (the
    // approvals API takes no capabilities), so it writes the issuer's keys as a JWKS file.
    let idp = OidcIssuer::new(IDP_ISSUER, IDP_AUDIENCE);
    std::fs::write(d.join("idp-jwks.json"), idp.jwks().to_string())?;
    keys::generate_checkpoint_key(&d.join("audit.key"), "demo-audit")?;
    let password_line = match &upstream.password {
        Some(password) => {
            keys::write_private(&d.join("upstream-password"), password, false)?;
            "password_file = \"upstream-password\"\n"
        }
        None => "",
    };
    let audit_dir = match &options.audit_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => d.join("audit"),
    };
    let toml = format!(
        r#"# Written by `sod demo`: the configuration this demo gateway runs.

[log]
format = "human"

[identity.capabilities]
issuer = "sod-demo"
key_file = "capability.key"

[[identity.oidc]]
issuer = "{IDP_ISSUER}"
audiences = ["{IDP_AUDIENCE}"]
jwks_file = "idp-jwks.json"

[policy]
file = "policy.toml"
masks = "masks.toml"

[audit]
dir = {audit}
stream = "demo"
key_file = "audit.key"
key_id = "demo-audit"
checkpoint_every = 20

[approvals]
wait = "{wait}s"

[approvals.http]
listen = "{approvals}"

[[postgres]]
target = "{TARGET}"
listen = "{listen}"

[postgres.upstream]
host = {host}
port = {port}
database = {database}
user = {user}
{password_line}"#,
        audit = toml_string(&audit_dir.display().to_string()),
        wait = options.approval_wait.as_secs(),
        approvals = options.approvals_listen,
        listen = options.listen,
        host = toml_string(&upstream.host),
        port = upstream.port,
        database = toml_string(&upstream.database),
        user = toml_string(&upstream.user),
    );
    std::fs::write(d.join("sod.toml"), toml)?;
    let config = Config::load(d.join("sod.toml"))?;

    let authority = assemble::authority(&config)?.ok_or("the demo config has capabilities")?;
    let tokens = issue_tokens(&authority, &idp)?;
    let json = serde_json::to_string_pretty(&json!({
        "planner": tokens[0].1,
        "executor": tokens[1].1,
        "approver": tokens[2].1,
    }))? + "\n";
    keys::write_private(&d.join("tokens.json"), &json, false)?;
    if let Some(out) = &options.tokens_out {
        keys::write_private(out, &json, true)?;
    }
    Ok(Demo {
        _cluster: cluster,
        dir,
        config,
        database: upstream.database,
        tokens,
        audit_dir,
    })
}

fn issue_tokens(
    authority: &CapabilityAuthority,
    idp: &OidcIssuer,
) -> Result<[(String, String); 3], BoxError> {
    use OperationKind::{Connect, Read, Schema, Write};
    let issue = |name: &str, kind: PrincipalKind, groups: &[&str], kinds: &[OperationKind]| {
        authority
            .issue(
                CapabilitySpec::new(name, TOKEN_TTL)
                    .kind(kind)
                    .groups(groups.iter().copied())
                    .targets([TARGET])
                    .kinds(KindSet::of(kinds)),
            )
            .map(|t| (name.to_owned(), t.encode()))
    };
    Ok([
        // The capability lets the planner *ask* for schema changes, so that the policy's
        // rule is what refuses them (and the demo shows it by name).
        issue(
            "planner",
            PrincipalKind::Agent(AgentRole::Planner),
            &[],
            &[Connect, Read, Write, Schema],
        )?,
        issue(
            "executor",
            PrincipalKind::Agent(AgentRole::Executor),
            &[],
            &[Connect, Read, Write],
        )?,
        (
            "approver".to_owned(),
            idp.token()
                .kid("ed-1")
                .subject("approver")
                .kind("human")
                .groups(&["approvers"])
                .expires_in(TOKEN_TTL.as_secs().try_into().unwrap_or(i64::MAX))
                .sign(),
        ),
    ])
}

/// The walkthrough printed once the demo is up.
pub fn walkthrough(demo: &Demo, running: &assemble::Running, sod: &str) -> String {
    let (_, gw) = running.postgres[0];
    let approvals = running
        .approvals
        .map_or_else(String::new, |a| format!("http://{a}"));
    let token = |i: usize| demo.tokens[i].1.as_str();
    let conn = format!(
        "host={} port={} dbname={} user=planner",
        gw.ip(),
        gw.port(),
        demo.database
    );
    let d = demo.dir().display();
    let audit = demo.audit_dir.display();
    format!(
        r#"
sod demo is up.

  gateway     {gw}  (target {TARGET}, database {db})
  approvals   {approvals}
  config      {d}/sod.toml  (policy.toml and masks.toml next to it)
  tokens      {d}/tokens.json
  audit log   {audit}

Three identities (two agent capabilities, one human's OIDC token), each usable as the psql password:

  export PLANNER='{planner}'
  export EXECUTOR='{executor}'
  export APPROVER='{approver}'

As the planner — personal data comes back masked:

  PGPASSWORD=$PLANNER psql "{conn}" -c "SELECT id, name, email, phone, ssn, card_number FROM customers ORDER BY id LIMIT 5"

Schema changes are refused, naming the rule:

  PGPASSWORD=$PLANNER psql "{conn}" -c "DROP TABLE orders"

A write to orders waits for someone else's approval ({wait} s, then the error names the approval id):

  PGPASSWORD=$PLANNER psql "{conn}" -c "UPDATE orders SET status = 'refunded' WHERE id = 42"

In another terminal, the approver decides:

  {sod} approvals list --url {approvals} --token "$APPROVER"
  {sod} approvals approve <id> --url {approvals} --token "$APPROVER" --comment "refund agreed"

The waiting statement then runs (or run it again: an approved statement runs at once).
The executor sees everything unmasked:

  PGPASSWORD=$EXECUTOR psql "host={host} port={port} dbname={db} user=executor" -c "SELECT email, ssn FROM customers LIMIT 3"

Every attempt is in the hash-chained audit log:

  {sod} audit replay {audit}
  {sod} audit verify {audit} --key {d}/audit.key.pub

Ctrl-C stops the demo (the directory above is removed, unless you gave --audit-dir).
"#,
        db = demo.database,
        planner = token(0),
        executor = token(1),
        approver = token(2),
        wait = demo
            .config
            .file
            .approvals
            .wait
            .unwrap_or(assemble::DEFAULT_APPROVAL_WAIT)
            .as_secs(),
        host = gw.ip(),
        port = gw.port(),
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn parse_upstream(url: &str) -> Result<Upstream, BoxError> {
    let bad = |why: &str| format!("--upstream {url:?}: {why}");
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| bad(&format!("not a PostgreSQL URL: {e}")))?;
    let host = match config.get_hosts() {
        [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
        [] => "127.0.0.1".to_owned(),
        _ => return Err(bad("name one TCP host").into()),
    };
    let port = match config.get_ports() {
        [] => 5432,
        [port] => *port,
        _ => return Err(bad("name one port").into()),
    };
    let user = config
        .get_user()
        .ok_or_else(|| bad("name the user (postgres://user:password@host/db)"))?
        .to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    let password = config
        .get_password()
        .map(|p| String::from_utf8(p.to_vec()))
        .transpose()
        .map_err(|_| bad("the password is not UTF-8"))?;
    Ok(Upstream {
        host,
        port,
        database,
        user,
        password,
    })
}

async fn seed(upstream: &Upstream) -> Result<(), BoxError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&upstream.host)
        .port(upstream.port)
        .dbname(&upstream.database)
        .user(&upstream.user)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &upstream.password {
        config.password(p);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", upstream.host, upstream.port))?;
    let conn = tokio::spawn(connection);
    client
        .batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("cannot create the demo schema: {e}"))?;
    drop(client);
    let _ = conn.await;
    Ok(())
}
