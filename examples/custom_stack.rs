//! # custom_stack: sod's layers composed with your own tower layers
//!
//! Every sod decision is an ordinary `tower::Layer`, so a deployment builds its stack with
//! `tower::ServiceBuilder` and puts its own middleware where it belongs. This example wraps
//! the PostgreSQL gateway's sessions in:
//!
//! ```text
//! MetricsLayer       yours: operations by kind and outcome, decision time, rows, throttling
//!  RateLimitLayer    tower: at most 5 statements per second per session
//!   IdentityLayer    sod
//!    RecordingLayer  sod: refusals from the layers below are recorded too
//!     PolicyLayer    sod
//!      deadline      tower's TimeoutLayer, its error turned into a sod refusal that names a rule
//!       ApprovalLayer  sod: would wait 60 s for an approval; the deadline cuts it to 1 s
//!        MaskingLayer  sod
//!         the upstream PostgreSQL session
//! ```
//!
//! Where a layer goes matters. The gateway builds the stack once per session, so the rate
//! limit counts per session (share state across sessions in your own layer for a limit per
//! principal). sod's identity, recording and approval layers need a `Clone` inner service;
//! tower's `RateLimit` is not `Clone`, so it sits above them (or behind a `tower::buffer`).
//! The deadline sits below the recording layer, so a statement cut off by it is still in the
//! audit log.
//!
//! ```text
//! cargo run -p sod-examples --example custom_stack
//! ```

#![allow(clippy::print_stdout, reason = "an example narrates what it does")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sod_approval::{ApprovalLayer, Broker, MemoryStore};
use sod_audit::{AuditSink as _, CheckpointKey, FileSink, FileSinkOptions, RecordingLayer, replay};
use sod_core::audit::{Completion, CompletionStatus, Observe};
use sod_core::capability::{CapabilityAuthority, CapabilityKey};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::{BoxError, OperationKind, Refusal, RefusalCode, Request, Target};
use sod_examples::{Database, db_error, demo_rules, planner_capability};
use sod_postgres::{Gateway, Listener};
use tower::timeout::error::Elapsed;
use tower::{Layer, Service};

const TARGET: &str = "pg/shop";
/// Statements per [`RATE_PERIOD`] and session.
const RATE: u64 = 5;
const RATE_PERIOD: Duration = Duration::from_secs(1);
/// How long any statement may wait for the decisions below the deadline (here: approval).
const DEADLINE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let report = run().await?;
    let c = &report.counts;
    println!("\nThe audit log:\n{}", report.timeline);
    println!("Metrics (Prometheus text format):\n{}\n", report.metrics);
    println!(
        "Done: {} reads forwarded in {:.2?} ({} rows, held back {} times by the rate limit); \
         {} schema change refused ({}); {} write cut off by the deadline ({}).",
        c.reads_forwarded,
        report.burst.1,
        c.rows,
        c.throttled,
        c.schema_refused,
        report.drop_error,
        c.writes_deadlined,
        report.update_error,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A metrics layer: yours, protocol-neutral. It sees every request sod's layers see (refusals
// included) and, through `Observe`, how each forwarded operation ended.

/// Counters a scraper would read.
#[derive(Default)]
struct Metrics {
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// `(kind, outcome)` → operations; outcome is `forwarded` or the refusal code.
    decided: BTreeMap<(&'static str, String), u64>,
    decision_seconds: f64,
    /// `(kind, status)` → forwarded operations that ended.
    completed: BTreeMap<(&'static str, &'static str), u64>,
    rows: u64,
    /// Times a request had to wait for the stack to be ready (the rate limit), and how long.
    throttled: u64,
    throttled_seconds: f64,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn decided(&self, kind: OperationKind, took: Duration, outcome: String) {
        self.with(|c| {
            *c.decided.entry((kind.as_str(), outcome)).or_default() += 1;
            c.decision_seconds += took.as_secs_f64();
        });
    }

    fn completed(&self, kind: OperationKind, completion: &Completion) {
        let status = match completion.status {
            CompletionStatus::Ok => "ok",
            CompletionStatus::Error => "error",
            CompletionStatus::Skipped => "skipped",
            CompletionStatus::Interrupted => "interrupted",
        };
        self.with(|c| {
            *c.completed.entry((kind.as_str(), status)).or_default() += 1;
            c.rows += completion.rows.unwrap_or(0);
        });
    }

    fn throttled(&self, waited: Duration) {
        self.with(|c| {
            c.throttled += 1;
            c.throttled_seconds += waited.as_secs_f64();
        });
    }

    /// How many operations of `kind` ended with `outcome` at the decision.
    fn count(&self, kind: OperationKind, outcome: &str) -> u64 {
        self.with(|c| {
            c.decided
                .get(&(kind.as_str(), outcome.to_owned()))
                .copied()
                .unwrap_or(0)
        })
    }

    fn render(&self) -> String {
        self.with(|c| {
            let mut out = String::new();
            let _ = writeln!(out, "# TYPE sod_operations_total counter");
            for ((kind, outcome), n) in &c.decided {
                let _ = writeln!(
                    out,
                    "sod_operations_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            let _ = writeln!(out, "# TYPE sod_completed_total counter");
            for ((kind, status), n) in &c.completed {
                let _ = writeln!(
                    out,
                    "sod_completed_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
                );
            }
            let total: u64 = c.decided.values().sum();
            let _ = writeln!(out, "# TYPE sod_decision_seconds summary");
            let _ = writeln!(out, "sod_decision_seconds_sum {:.6}", c.decision_seconds);
            let _ = writeln!(out, "sod_decision_seconds_count {total}");
            let _ = writeln!(out, "# TYPE sod_rows_total counter");
            let _ = writeln!(out, "sod_rows_total {}", c.rows);
            let _ = writeln!(out, "# TYPE sod_throttled_total counter");
            let _ = writeln!(out, "sod_throttled_total {}", c.throttled);
            let _ = writeln!(out, "# TYPE sod_throttled_seconds_total counter");
            let _ = write!(
                out,
                "sod_throttled_seconds_total {:.6}",
                c.throttled_seconds
            );
            out
        })
    }
}

#[derive(Clone)]
struct MetricsLayer(Arc<Metrics>);

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
            waiting_since: None,
        }
    }
}

struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    waiting_since: Option<Instant>,
}

impl<S, B> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Observe + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Time spent not ready is time a layer below held the request back (the rate limit).
        match self.inner.poll_ready(cx) {
            Poll::Pending => {
                self.waiting_since.get_or_insert_with(Instant::now);
                Poll::Pending
            }
            ready => {
                if let Some(since) = self.waiting_since.take() {
                    self.metrics.throttled(since.elapsed());
                }
                ready
            }
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let kind = req.operation().kind();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let decided = self.inner.call(req);
        Box::pin(async move {
            let result = decided.await;
            let outcome = match &result {
                Ok(_) => "forwarded".to_owned(),
                Err(e) => Refusal::find(e.as_ref())
                    .map_or("error", |r| r.code().as_str())
                    .to_owned(),
            };
            metrics.decided(kind, started.elapsed(), outcome);
            let response = result?;
            Ok(response.on_complete(Box::new(move |c: &Completion| metrics.completed(kind, c))))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The deadline: tower's timeout error becomes a refusal, so the client gets SQLSTATE 42501
// naming a rule instead of a generic failure, and the audit record says why.

fn deadline_refusal(err: BoxError) -> BoxError {
    if err.is::<Elapsed>() {
        Refusal::new(
            RefusalCode::ApprovalRequired,
            format!(
                "no approval within the {} s this deployment lets a statement wait",
                DEADLINE.as_secs_f64()
            ),
        )
        .with_rule("approval-deadline")
        .into()
    } else {
        err
    }
}

// ---------------------------------------------------------------------------------------------

/// What the run showed.
struct Report {
    /// Reads in the burst, and how long the burst took.
    burst: (usize, Duration),
    drop_error: String,
    update_error: String,
    metrics: String,
    counts: Counts,
    timeline: String,
}

/// Selected counters, for the test.
struct Counts {
    reads_forwarded: u64,
    schema_refused: u64,
    writes_deadlined: u64,
    throttled: u64,
    rows: u64,
}

async fn run() -> Result<Report, BoxError> {
    println!("Starting a throwaway PostgreSQL cluster with the demo schema…");
    let db = Database::start().await?;

    let authority = CapabilityAuthority::new("sod-example", CapabilityKey::generate("caps-1"));
    let capability = planner_capability(&authority, TARGET)?;
    let (policy, masks) = demo_rules()?;
    let broker = Broker::new(Arc::new(MemoryStore::new()));
    let audit_dir = tempfile::tempdir()?;
    let (audit, _) = FileSink::open(
        audit_dir.path(),
        FileSinkOptions::new("example", CheckpointKey::generate("example-audit")),
    )?;
    let audit = Arc::new(audit);
    let metrics = Arc::new(Metrics::default());

    let stack = tower::ServiceBuilder::new()
        .layer(MetricsLayer(metrics.clone()))
        .rate_limit(RATE, RATE_PERIOD)
        .layer(IdentityLayer::new(authority))
        .layer(RecordingLayer::new(audit.clone()))
        .layer(PolicyLayer::new(policy))
        .map_err(deadline_refusal)
        .timeout(DEADLINE)
        .layer(ApprovalLayer::new(broker, Duration::from_secs(60)))
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
    let addr = gateway.local_addr().ok_or("the gateway listens on TCP")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    println!("sod gateway for {TARGET} on {addr}");

    let (client, connection) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .dbname(db.name())
        .user("planner")
        .password(&capability)
        .connect(tokio_postgres::NoTls)
        .await?;
    let connection = tokio::spawn(connection);

    // A burst of reads: the rate limit spreads it out, nothing is refused.
    let reads = 12;
    println!("\n{reads} reads in a burst (the limit: {RATE} per {RATE_PERIOD:?} per session)…");
    let started = Instant::now();
    for i in 0..reads {
        client
            .simple_query(&format!(
                "SELECT count(*) FROM orders WHERE customer_id = {}",
                i + 1
            ))
            .await?;
    }
    let burst = (reads, started.elapsed());
    println!("    done in {:.2?}", burst.1);

    println!("\nDROP TABLE orders");
    let drop_error = match client.simple_query("DROP TABLE orders").await {
        Ok(_) => return Err("the DROP was not refused".into()),
        Err(e) => db_error(&e),
    };
    println!("    {drop_error}");
    println!("\nUPDATE orders … (needs an approval nobody gives)");
    let update_error = match client
        .simple_query("UPDATE orders SET status = 'refunded' WHERE id = 7")
        .await
    {
        Ok(_) => return Err("the UPDATE ran without approval".into()),
        Err(e) => db_error(&e),
    };
    println!("    {update_error}");

    drop(client);
    connection.await??;
    let _ = stop.send(());
    serving.await??;
    audit.checkpoint().await?; // sign the tail, as `sod gateway` does at shutdown
    audit.close();
    let timeline = replay::timeline(
        &replay::read_dir(audit_dir.path())?,
        &replay::Filter::default(),
    );
    let counts = Counts {
        reads_forwarded: metrics.count(OperationKind::Read, "forwarded"),
        schema_refused: metrics.count(OperationKind::Schema, RefusalCode::PolicyDenied.as_str()),
        writes_deadlined: metrics
            .count(OperationKind::Write, RefusalCode::ApprovalRequired.as_str()),
        throttled: metrics.with(|c| c.throttled),
        rows: metrics.with(|c| c.rows),
    };
    Ok(Report {
        burst,
        drop_error,
        update_error,
        metrics: metrics.render(),
        counts,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stack_runs_against_a_real_postgres() {
        let report = run().await.expect("the example runs");
        let c = &report.counts;
        // Every read was forwarded and returned its one row; the limit held some back:
        // connect + 12 reads at 5 per period need at least two waits for a new period (as long
        // as five statements take less than a period, which a 1 s period leaves ample room for).
        assert_eq!(c.reads_forwarded, report.burst.0 as u64);
        assert_eq!(c.rows, report.burst.0 as u64);
        assert!(c.throttled >= 2, "{}", report.metrics);
        // The policy's refusal and the deadline's, each counted by its code and sent to the
        // client as a native error naming its rule.
        assert_eq!(c.schema_refused, 1, "{}", report.metrics);
        assert_eq!(c.writes_deadlined, 1, "{}", report.metrics);
        assert!(
            report.drop_error.contains("no-schema-changes") && report.drop_error.contains("42501"),
            "{}",
            report.drop_error
        );
        assert!(
            report.update_error.contains("approval-deadline")
                && report.update_error.contains("42501"),
            "{}",
            report.update_error
        );
        // The deadline sits below the recording layer: the cut-off statement is recorded.
        assert!(
            report.timeline.contains("approval-deadline"),
            "{}",
            report.timeline
        );
        assert!(
            report
                .metrics
                .contains("sod_operations_total{kind=\"read\",outcome=\"forwarded\"} 12")
        );
    }
}
