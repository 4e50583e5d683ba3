//! # planner_executor: an agent runtime whose planner never holds a credential
//!
//! ```text
//! planner ─submit(sql)─► CapabilityHandle ─► executor ─PostgreSQL─► sod gateway ─► PostgreSQL
//! (the LLM's side)       identity only:      runtime code: one      identity, recording,
//!                        no connection,      connection per         policy, approval,
//!                        no credential       planner session        masking; holds the
//!                                                                    database credentials
//! approver (a human, OIDC) ◄── approval broker ◄── the gateway asks for approval ──┘
//! ```
//!
//! The runtime mints a capability for the planner and keeps it; the planner gets a
//! [`CapabilityHandle`] and can only `submit` SQL through it. The executor runs what is
//! submitted on its own connection, which presents the planner's capability to the sod gateway:
//! every statement is judged there as the planner's (the same rules whether the executor is in
//! this process or a `psql` elsewhere), and the database password lives only in the gateway.
//!
//! The story: a read comes back with personal data masked; `DROP TABLE` is refused by a named
//! rule; an `UPDATE` waits until a human approver — not the planner — approves it; the audit
//! log is verified at the end.
//!
//! ```text
//! cargo run -p sod-examples --example planner_executor
//! ```

#![allow(clippy::print_stdout, reason = "an example narrates what it does")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sod_approval::{ApprovalLayer, ApprovalRequest, Broker, MemoryStore};
use sod_audit::{
    AuditSink as _, CheckpointKey, FileSink, FileSinkOptions, RecordingLayer, replay, verify,
};
use sod_cli::assemble::AuditNotifier;
use sod_core::capability::{CapabilityAuthority, CapabilityHandle, CapabilityKey};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifier as _, Verifiers};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::{BoxError, Credential, OperationKind, Request, Target};
use sod_examples::{Database, db_error, demo_rules, planner_capability};
use sod_postgres::sql::{Analyzer as _, PgQueryAnalyzer, operation};
use sod_postgres::{Gateway, Listener};
use sod_testkit::{OidcIssuer, poll_until_async};
use tokio_postgres::SimpleQueryMessage;

/// The gateway's target name.
const TARGET: &str = "pg/shop";
/// The humans' identity provider.
const IDP: &str = "https://idp.example.invalid";
/// The order the planner wants refunded.
const ORDER: i32 = 7;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let story = run().await?;
    println!(
        "\nDone: {} masked rows read, DROP refused, UPDATE approved by {}, audit log verified \
         ({} records, signed through #{}).",
        story.masked_rows.len(),
        story.approved_by.join(", "),
        story.audit.records,
        story.audit.signed_through.unwrap_or_default(),
    );
    Ok(())
}

/// What a statement returned to the planner: text values, as the gateway let them through.
#[derive(Clone, Debug, Default)]
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    /// The last command tag (`SELECT 3`, `UPDATE 1`).
    tag: String,
}

impl Rows {
    fn from_messages(messages: Vec<SimpleQueryMessage>) -> Self {
        let mut out = Rows::default();
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    out.columns = cols.iter().map(|c| c.name().to_owned()).collect();
                }
                SimpleQueryMessage::Row(row) => {
                    out.rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => out.tag = format!("{n} rows"),
                _ => {}
            }
        }
        out
    }

    fn print(&self) {
        println!("    {}", self.columns.join(" | "));
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
            println!("    {}", cells.join(" | "));
        }
    }
}

/// What the planner can hold: submit SQL, get rows or a refusal. Nothing else.
type Planner = CapabilityHandle<String, Rows>;

/// The agent runtime: trusted code that knows where the gateway is, and hands planners
/// handles instead of connections.
struct Runtime {
    gateway: SocketAddr,
    database: String,
    verifier: Arc<Verifiers>,
    analyzer: Arc<PgQueryAnalyzer>,
}

impl Runtime {
    /// Opens the executor's connection for the session `capability` grants, and gives the
    /// planner a handle on it. The capability stays here.
    async fn planner(&self, capability: &str) -> Result<Planner, BoxError> {
        // The executor's connection: to the gateway, never to the database. The capability
        // is the password; the user name is recorded but grants nothing.
        let (client, connection) = tokio_postgres::Config::new()
            .host(self.gateway.ip().to_string())
            .port(self.gateway.port())
            .dbname(&self.database)
            .user("agent")
            .password(capability)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        let client = Arc::new(client);
        let executor = tower::service_fn(move |req: Request<String>| {
            let client = client.clone();
            async move {
                if req.operation().kind() == OperationKind::Connect {
                    return Ok::<_, BoxError>(Rows::default());
                }
                // Decisions are the gateway's: its refusals come back as PostgreSQL errors
                // naming the rule, and reach the planner as they are.
                match client.simple_query(req.body()).await {
                    Ok(messages) => Ok(Rows::from_messages(messages)),
                    Err(e) => Err(db_error(&e).into()),
                }
            }
        });
        // In process, the handle only proves who the planner is; what its statements may do
        // is decided in the executor's data path, by the gateway's stack.
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(self.verifier.clone()))
            .service(executor);
        let analyzer = self.analyzer.clone();
        let describe = move |target: &Target, sql: &String| {
            operation::offline(target.clone(), &analyzer.analyze(sql))
        };
        let (handle, _) = CapabilityHandle::connect(
            stack,
            describe,
            Target::new(TARGET),
            capability,
            String::new(),
        )
        .await?;
        Ok(handle)
    }
}

/// What the run showed (the test checks it all; `main` prints a summary).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code, reason = "read by the test"))]
struct Story {
    /// `id, name, email, card_number` of three customers, as the planner saw them.
    masked_rows: Vec<Vec<Option<String>>>,
    /// The planner's error for `DROP TABLE`.
    drop_refused: String,
    /// The broker's answer when the planner tried to approve its own request.
    self_approval_refused: String,
    /// The planner's result for the approved `UPDATE`.
    update_tag: String,
    /// Who approved it.
    approved_by: Vec<String>,
    /// The order's status as the planner read it afterwards.
    status_after: String,
    /// Checked on the server directly: the order's status, and whether `orders` still exists.
    upstream: (String, bool),
    /// The audit log's verification.
    audit: verify::Report,
    /// The audit log as a timeline.
    timeline: String,
}

async fn run() -> Result<Story, BoxError> {
    println!("Starting a throwaway PostgreSQL cluster with the demo schema…");
    let db = Database::start().await?;

    // Identities: capabilities for agents (minted by the runtime), OIDC for humans.
    let authority = CapabilityAuthority::new("sod-example", CapabilityKey::generate("caps-1"));
    let planner_capability = planner_capability(&authority, TARGET)?;
    let idp = OidcIssuer::new(IDP, "sod");
    let approver_token = idp
        .token()
        .kid("ed-1")
        .subject("maria")
        .kind("human")
        .groups(&["approvers"])
        .sign();
    let verifier = Arc::new(Verifiers::new().with(authority).with(OidcVerifier::new(
        OidcConfig::new(IDP, "sod", JwksSource::Static(idp.jwks().to_string())),
    )?));

    // The rules: `sod demo`'s policy and mask profile (sod-cli/demo/).
    let (policy, masks) = demo_rules()?;
    let audit_dir = tempfile::tempdir()?;
    let audit_key = CheckpointKey::generate("example-audit");
    let audit_public = audit_key.public();
    let (audit, _) = FileSink::open(
        audit_dir.path(),
        FileSinkOptions::new("example", audit_key).checkpoint_every(10),
    )?;
    let audit = Arc::new(audit);
    // Approval decisions go into the audit log too (as `sod gateway` records them).
    let broker = Broker::new(Arc::new(MemoryStore::new()))
        .notifier(Arc::new(AuditNotifier::new(audit.clone())));

    // The gateway: the full stack around the executor's connections.
    let stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(verifier.clone()))
        .layer(RecordingLayer::new(audit.clone()))
        .layer(PolicyLayer::new(policy))
        .layer(ApprovalLayer::new(broker.clone(), Duration::from_secs(30)))
        .layer(MaskingLayer::new(masks));
    let gateway = Gateway::builder(
        Target::new(TARGET),
        Listener::Tcp(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
        db.upstream(),
        db.credentials(),
        stack,
    )
    .shutdown_grace(Duration::from_secs(2))
    .build();
    let gateway_addr = gateway.local_addr().ok_or("the gateway listens on TCP")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    println!("sod gateway for {TARGET} on {gateway_addr}\n");

    let runtime = Runtime {
        gateway: gateway_addr,
        database: db.name().to_owned(),
        verifier: verifier.clone(),
        analyzer: Arc::new(PgQueryAnalyzer::new()),
    };
    let planner = runtime.planner(&planner_capability).await?;
    drop(planner_capability); // the runtime is done with it; the planner never had it
    let planner_principal = planner
        .principal()
        .cloned()
        .ok_or("an authenticated handle")?;
    println!(
        "The planner holds {planner:?}\n  as `{}` ({})",
        planner_principal.id, planner_principal.kind
    );

    // 1. A read: personal data comes back masked.
    let sql = "SELECT id, name, email, card_number FROM customers ORDER BY id LIMIT 3";
    println!("\nplanner> {sql}");
    let read = planner.submit(sql.into()).await?;
    read.print();

    // 2. A schema change: refused by a named rule, nothing forwarded.
    let sql = "DROP TABLE orders";
    println!("\nplanner> {sql}");
    let drop_refused = match planner.submit(sql.into()).await {
        Ok(_) => return Err("the DROP was not refused".into()),
        Err(e) => e.to_string(),
    };
    println!("    refused: {drop_refused}");

    // 3. A write: it waits until someone else approves it.
    let sql = format!("UPDATE orders SET status = 'refunded' WHERE id = {ORDER}");
    println!("\nplanner> {sql}");
    let approving = tokio::spawn(approve_next(
        broker.clone(),
        verifier.clone(),
        approver_token,
        planner_principal,
    ));
    let updated = planner.submit(sql).await?;
    let (self_approval_refused, approved) = approving.await??;
    println!("    {}", updated.tag);
    let sql = format!("SELECT status FROM orders WHERE id = {ORDER}");
    println!("\nplanner> {sql}");
    let after = planner.submit(sql).await?;
    after.print();
    let status_after = after
        .rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();

    // What really happened, asked of the server directly (bypassing sod).
    let direct = db.connect_directly().await?;
    let row = direct
        .query_one(
            "SELECT (SELECT status FROM orders WHERE id = $1), \
                    to_regclass('public.orders') IS NOT NULL",
            &[&ORDER],
        )
        .await?;
    let upstream: (String, bool) = (row.try_get(0)?, row.try_get(1)?);
    println!(
        "\nOn the server itself: order {ORDER} is `{}`; table orders {}",
        upstream.0,
        if upstream.1 {
            "still exists"
        } else {
            "is gone"
        }
    );

    // 4. The record. The broker tells its notifiers from a task of its own: wait (with a
    // deadline) until the decision is in the log, then stop the gateway, close the log and
    // verify it.
    let dir = audit_dir.path().to_owned();
    poll_until_async(
        Duration::from_secs(10),
        "the decision in the audit log",
        || {
            let decided = replay::read_dir(&dir).is_ok_and(|records| {
                records
                    .iter()
                    .any(|r| matches!(r.event, sod_audit::Event::ApprovalDecided { .. }))
            });
            std::future::ready(decided.then_some(()))
        },
    )
    .await;
    drop(planner); // closes the executor's connection, so the session ends
    let _ = stop.send(());
    serving.await??;
    audit.checkpoint().await?; // sign the tail, as `sod gateway` does at shutdown
    audit.close();
    let audit_report = verify::dir(audit_dir.path(), &verify::Options::new([audit_public]))?;
    let timeline = replay::timeline(
        &replay::read_dir(audit_dir.path())?,
        &replay::Filter::default(),
    );
    println!(
        "\nThe audit log ({} records, signed through #{}):\n{timeline}",
        audit_report.records,
        audit_report.signed_through.unwrap_or_default()
    );

    Ok(Story {
        masked_rows: read.rows,
        drop_refused,
        self_approval_refused,
        update_tag: updated.tag,
        approved_by: approved.approvers(),
        status_after,
        upstream,
        audit: audit_report,
        timeline,
    })
}

/// The approver's side: waits for the planner's request to appear, shows that the planner
/// cannot approve it, then approves it as the human `token` proves.
async fn approve_next(
    broker: Broker,
    verifier: Arc<Verifiers>,
    token: String,
    planner: sod_core::Principal,
) -> Result<(String, ApprovalRequest), BoxError> {
    let request = poll_until_async(Duration::from_secs(20), "the approval request", || async {
        broker.pending().await.ok()?.into_iter().next()
    })
    .await;
    println!(
        "    … waiting for approval {} (rule `{}`): {} asks to run `{}`",
        request.id,
        request.rule.as_deref().unwrap_or("?"),
        request.requester.id,
        request.operation.text
    );
    let self_approval = match broker.decide(&request.id, &planner, true, None).await {
        Ok(_) => return Err("the planner approved its own request".into()),
        Err(e) => e.to_string(),
    };
    println!("    the planner tries to approve it itself: {self_approval}");
    let approver = verifier.verify(&Credential::new(token)).await?.principal;
    let decided = broker
        .decide(&request.id, &approver, true, Some("refund approved".into()))
        .await?;
    println!(
        "    {} ({}) approves it: {:?}",
        approver.id, approver.kind, decided.status
    );
    Ok((self_approval, decided))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_story_runs_against_a_real_postgres() {
        let story = run().await.expect("the example runs");

        // The read: three rows, personal data masked, names intact.
        assert_eq!(story.masked_rows.len(), 3);
        for (i, row) in story.masked_rows.iter().enumerate() {
            let email = row[2].as_deref().expect("an email value");
            let card = row[3].as_deref().expect("a card value");
            assert_ne!(email, format!("customer{}@example.com", i + 1));
            assert!(email.starts_with('*') && email.ends_with(".com"), "{email}");
            assert!(card.starts_with('*') && !card.contains("4111"), "{card}");
            assert!(row[1].as_deref().is_some_and(|n| !n.contains('*')));
        }
        // The DROP: refused by the policy's rule, natively (42501).
        assert!(
            story.drop_refused.contains("no-schema-changes")
                && story.drop_refused.contains("42501"),
            "{}",
            story.drop_refused
        );
        // The UPDATE: the planner could not approve it; the human did; it ran once.
        assert!(
            story.self_approval_refused.contains("planner-1"),
            "{}",
            story.self_approval_refused
        );
        assert_eq!(story.approved_by, ["maria"]);
        assert_eq!(story.update_tag, "1 rows");
        assert_eq!(story.status_after, "refunded");
        assert_eq!(story.upstream, ("refunded".to_owned(), true));
        // The audit log verifies, is signed, and tells the story.
        assert!(story.audit.is_signed() && story.audit.unsigned_tail == 0);
        assert!(story.audit.records >= 6, "{:?}", story.audit);
        for expected in ["no-schema-changes", "planner-writes-orders", "maria"] {
            assert!(
                story.timeline.contains(expected),
                "{expected} missing from\n{}",
                story.timeline
            );
        }
    }
}
