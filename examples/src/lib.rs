//! # sod-examples
//!
//! Runnable programs that assemble sod's crates the way an agent runtime would:
//!
//! - `planner_executor`: an in-process runtime where the planner holds only a
//!   [`CapabilityHandle`](sod_core::capability::CapabilityHandle) and the executor's PostgreSQL
//!   connection runs through the full stack (identity, recording, policy, approval, masking);
//!   a masked read, a refused `DROP`, an `UPDATE` approved by a separate human, and the audit
//!   log verified at the end.
//! - `custom_stack`: sod's layers composed with ordinary tower layers around the PostgreSQL
//!   gateway: a metrics layer, a per-session rate limit and a deadline on approvals.
//!
//! ```text
//! cargo run -p sod-examples --example planner_executor
//! cargo run -p sod-examples --example custom_stack
//! ```
//!
//! Both run against a throwaway PostgreSQL cluster (the server binaries must be installed; as
//! root, the cluster runs as the `postgres` user) seeded with the demo schema of `sod demo`.
//! Each example is also a test: `cargo nextest run -p sod-examples`.
//!
//! This library holds only what both examples need and neither is about: the database, the
//! demo's rules, the planner's capability and how a refusal reads.

#![forbid(unsafe_code)]

use std::time::Duration;

use sod_core::capability::{CapabilityAuthority, CapabilitySpec};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, BoxError, KindSet, OperationKind, PrincipalKind, Secret};
use sod_postgres::credentials::StaticCredentials;
use sod_postgres::upstream::UpstreamConfig;
use sod_testkit::EphemeralPostgres;
use sod_testkit::pg::EXECUTOR;

/// A throwaway PostgreSQL cluster with `sod demo`'s schema (`customers`, 200 rows with
/// personal data; `orders`, 600 rows). Stopped and removed when dropped.
pub struct Database {
    pg: EphemeralPostgres,
}

impl Database {
    /// Starts the cluster (`initdb`, `pg_ctl`) and seeds the demo schema.
    pub async fn start() -> Result<Self, BoxError> {
        let pg = tokio::task::spawn_blocking(EphemeralPostgres::start)
            .await?
            .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
        let db = Self { pg };
        db.connect_directly()
            .await?
            .batch_execute(sod_cli::demo::SCHEMA)
            .await?;
        Ok(db)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.pg.database()
    }

    /// Where the gateway finds the server.
    pub fn upstream(&self) -> UpstreamConfig {
        UpstreamConfig::tcp(self.pg.host(), self.pg.port(), self.pg.database())
    }

    /// The executor's database credentials: given to the gateway, never to an agent.
    pub fn credentials(&self) -> StaticCredentials {
        StaticCredentials::new(
            EXECUTOR,
            Some(Secret::new(self.pg.executor_password().to_owned())),
        )
    }

    /// A connection straight to the server with the executor's credentials, bypassing sod:
    /// for seeding, and for tests that check what really happened upstream.
    pub async fn connect_directly(&self) -> Result<tokio_postgres::Client, BoxError> {
        let (client, connection) = tokio_postgres::Config::new()
            .host(self.pg.host())
            .port(self.pg.port())
            .dbname(self.pg.database())
            .user(EXECUTOR)
            .password(self.pg.executor_password())
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// `sod demo`'s policy and mask profile (`sod-cli/demo/`): the planner reads with
/// personal data masked, its writes to `orders` need one approval by an `approvers` member,
/// schema changes and anything not understood are refused.
pub fn demo_rules() -> Result<(Policy, MaskProfiles), BoxError> {
    Ok((
        Policy::from_toml("demo/policy.toml", sod_cli::demo::POLICY)?,
        MaskProfiles::from_toml("demo/masks.toml", sod_cli::demo::MASKS)?,
    ))
}

/// A ten-minute capability for the planner `planner-1` on `target`. Its kinds are broad on
/// purpose (schema changes included): the policy, not the capability, is what refuses a `DROP`
/// in the examples, and the refusal names the rule.
pub fn planner_capability(
    authority: &CapabilityAuthority,
    target: &str,
) -> Result<String, BoxError> {
    use OperationKind::{Connect, Read, Schema, Write};
    Ok(authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(600))
                .kind(PrincipalKind::Agent(AgentRole::Planner))
                .targets([target])
                .kinds(KindSet::of(&[Connect, Read, Write, Schema])),
        )?
        .encode())
}

/// A PostgreSQL error as a client sees it: the server's (or the gateway's) message and
/// SQLSTATE.
pub fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
