//! The session's search path, as the server has it. Clients change it (`SET search_path`,
//! `set_config('search_path', …)`, `RESET`; `pg_dump` empties it first), and where an
//! unqualified name points follows it. Rather than re-implement PostgreSQL's rules — `SET
//! LOCAL`, `set_config(…, true)`, transactions and savepoints rolled back, implicit
//! transactions of a failed batch, `$user`, schemas that do not exist, functions that set it
//! — the gateway asks the server: after anything that may have changed the path, and before
//! the next statement is judged, it runs `current_schemas(true)` on the session's own
//! connection, between two exchanges of the client's (so the client never sees it), and
//! resolves names along the answer. Where it cannot ask — inside an extended-protocol pipeline
//! not yet synced, in a failed transaction — unqualified names are refused, as they were
//! before the gateway tracked the path.
//!
//! The server is asked at the first message of the client's next exchange (a pipelining
//! client's next `Parse` waits until every earlier answer is in), or failing that when the
//! next statement that needs the path is judged.
//!
//! What may change the path: a statement whose effect is
//! [`SetSearchPath`](SessionEffect::SetSearchPath) or [`Discard`](SessionEffect::Discard); a
//! transaction's end or a rollback to a savepoint once the session changed the path at all
//! (it may undo or keep a change); a call of `set_config` (whatever its arguments) or of a
//! function the analyzer does not know (its body may set the path), in any statement; and,
//! once a `PREPARE` or a cursor's `DECLARE` held such a call, every `EXECUTE`, `FETCH` and
//! `MOVE`. Not followed (as before the path was tracked): functions that views, defaults and
//! triggers call behind the statement.
//!
//! A path that puts a schema other than `pg_temp` ahead of `pg_catalog` would let a
//! same-named function, operator or type shadow a built-in one, and the analyzer's verdicts
//! assume built-in names mean the built-ins: while the server reports such a path, every
//! statement but one that changes the path again or ends a transaction is refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sod_core::{BoxError, Refusal, RefusalCode, Request};
use tokio::sync::oneshot;
use tower::Service;

use super::{Driver, NAME_RESOLUTION_RULE};
use crate::catalog::CatalogSnapshot;
use crate::codec::{BackendFrame, BackendMessage, TransactionStatus, frontend, tag};
use crate::router::{Descriptions, Expect, Outgoing, Process, Sink};
use crate::service::{PgRequest, PgResponse};
use crate::sql::functions::classify_function;
use crate::sql::{Analysis, SessionEffect};

/// What the gateway asks the server; every name qualified, so the path itself cannot change
/// what runs.
const PROBE_SQL: &str = "SELECT s::pg_catalog.text \
FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS p(s, n) ORDER BY n";

/// How long the server may take to answer the probe before the session is ended.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The session's search path as the gateway knows it.
#[derive(Debug, Default)]
pub(super) enum SearchPath {
    /// Never changed: the gateway's own, as the shared catalog snapshot has it.
    #[default]
    Default,
    /// As the server reported it after the last change (`current_schemas(true)`).
    Confirmed(Arc<Vec<String>>),
    /// Something that ran since the last report may have changed it.
    Unconfirmed,
}

/// The path, tracked: what it is, whether the client has changed it in this session, and the
/// snapshot last made for it.
#[derive(Default)]
pub(super) struct PathTracker {
    pub(super) path: SearchPath,
    /// The client changed the path at some point: a transaction's end may undo or keep it.
    touched: bool,
    /// The shared snapshot and the session's view of it along a confirmed path.
    view: Option<(Arc<CatalogSnapshot>, Arc<CatalogSnapshot>)>,
    /// A statement that may change the path was kept to run later (SQL `PREPARE`, a cursor's
    /// `DECLARE`): every `EXECUTE`, `FETCH` and `MOVE` may run it.
    deferred: bool,
}

impl PathTracker {
    /// Notes what a statement that was forwarded may have done to the path.
    pub(super) fn forwarded(&mut self, analysis: &Analysis) {
        for stmt in &analysis.statements {
            let changes = match &stmt.effect {
                SessionEffect::SetSearchPath | SessionEffect::Discard => true,
                SessionEffect::Transaction => self.touched,
                SessionEffect::Execute { .. } | SessionEffect::Cursor { .. } => self.deferred,
                _ => false,
            };
            // Whatever the statement's own effect: `set_config` (with any arguments) or a
            // function the analyzer does not know (its body may set the path) may change it,
            // now or — inside `PREPARE` or `DECLARE` — whenever it runs.
            let calls = stmt
                .functions
                .iter()
                .any(|f| unknown_function(f) || is_set_config(f));
            if calls
                && matches!(
                    stmt.effect,
                    SessionEffect::Prepare { .. } | SessionEffect::Cursor { .. }
                )
            {
                self.deferred = true;
            }
            if changes || calls {
                self.touched = true;
                self.path = SearchPath::Unconfirmed;
            }
        }
    }

    /// Whether the path may have changed since the server last reported it.
    pub(super) fn unconfirmed(&self) -> bool {
        matches!(self.path, SearchPath::Unconfirmed)
    }

    /// The first schema the path puts ahead of `pg_catalog`, other than `pg_temp` ones.
    fn ahead_of_pg_catalog(path: &[String]) -> Option<&str> {
        path.iter()
            .take_while(|s| s.as_str() != "pg_catalog")
            .find(|s| !s.starts_with("pg_temp"))
            .map(String::as_str)
    }
}

/// Whether `display` (`name` or `schema.name`, as the analyzer lists calls) names a function
/// the analyzer does not know.
fn unknown_function(display: &str) -> bool {
    let (schema, name) = match display.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, display),
    };
    !classify_function(schema, name).known
}

/// Whether `display` is the built-in `set_config`, which may set the path whatever its
/// arguments look like.
fn is_set_config(display: &str) -> bool {
    matches!(display, "set_config" | "pg_catalog.set_config")
}

/// Whether a statement of `analysis` needs the path: anything but changing it, transaction
/// control, and `SET`, `RESET` and `SHOW` that name nothing (`SET TRANSACTION ISOLATION
/// LEVEL` must come before any query of its transaction: the gateway must not run one).
fn needs_path(analysis: &Analysis) -> bool {
    analysis.statements.iter().any(|s| {
        let changes_it = matches!(
            s.effect,
            SessionEffect::SetSearchPath | SessionEffect::Transaction | SessionEffect::Discard
        );
        let names_nothing = matches!(s.tag.as_str(), "SET" | "RESET" | "SHOW")
            && s.objects.is_empty()
            && s.functions.is_empty();
        !changes_it && !names_nothing
    })
}

impl<S> Driver<S>
where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    /// The snapshot `analysis` is judged and masked with: `shared` along the session's search
    /// path, which is asked of the server first if it may have changed. Refused when the path
    /// cannot be known and the statement names a relation without its schema, or when the path
    /// puts a schema ahead of `pg_catalog`.
    pub(super) async fn along_session_path(
        &mut self,
        shared: Arc<CatalogSnapshot>,
        analysis: &Analysis,
    ) -> Result<Arc<CatalogSnapshot>, Refusal> {
        if matches!(self.path.path, SearchPath::Unconfirmed) && needs_path(analysis) {
            self.confirm_path(false).await?;
        }
        let refuse = |why: String| {
            Err(Refusal::new(RefusalCode::PolicyDenied, why).with_rule(NAME_RESOLUTION_RULE))
        };
        let path = match &self.path.path {
            SearchPath::Default => return Ok(shared),
            SearchPath::Confirmed(path) => path.clone(),
            SearchPath::Unconfirmed => {
                if let Some(o) = analysis.objects().iter().find(|o| o.schema.is_none()) {
                    return refuse(format!(
                        "search_path may have changed and the gateway cannot ask the server for it here (inside an unsynced pipeline or a failed transaction), so `{}` cannot be resolved; qualify it with its schema, or send Sync first",
                        o.name
                    ));
                }
                return Ok(shared);
            }
        };
        if needs_path(analysis)
            && let Some(schema) = PathTracker::ahead_of_pg_catalog(&path)
        {
            return refuse(format!(
                "search_path puts schema \"{schema}\" ahead of pg_catalog, so built-in function, operator and type names could resolve to others; set it back (RESET search_path) first"
            ));
        }
        if let Some((base, view)) = &self.path.view
            && Arc::ptr_eq(base, &shared)
            && view.path() == path.as_slice()
        {
            return Ok(view.clone());
        }
        let view = Arc::new(shared.with_path(path.to_vec()));
        self.path.view = Some((shared, view.clone()));
        Ok(view)
    }

    /// At the first message of a client's exchange (nothing of it sent upstream yet), outside
    /// a transaction block, asks the server for the path if it may have changed (inside one,
    /// a query of the gateway's would be the transaction's first, taking its snapshot and
    /// barring `SET TRANSACTION`, as `pg_dump` sends after `BEGIN`; the statement that needs
    /// the path asks then): later, once the exchange's `Parse` is
    /// upstream, the server is inside the exchange's implicit transaction and cannot be
    /// asked until the client's `Sync`. A failure leaves the path unconfirmed, and the
    /// statement that needs it asks again or is refused.
    pub(super) async fn confirm_path_between_exchanges(&mut self) {
        if self.path.unconfirmed() && !self.link.unsynced() {
            let _ = self.confirm_path(true).await;
        }
    }

    /// Before a `Parse` of a statement that needs the path goes upstream (after it, the
    /// server is inside the exchange's implicit transaction until the client's `Sync`), asks
    /// the server for the path if it may have changed — also inside a transaction block.
    pub(super) async fn confirm_path_for(&mut self, analysis: &Analysis) {
        if self.path.unconfirmed() && needs_path(analysis) {
            let _ = self.confirm_path(false).await;
        }
    }

    /// Asks the server for the session's effective search path, between two exchanges of
    /// the client's. Leaves the path unconfirmed when the session is not at such a point.
    async fn confirm_path(&mut self, only_idle: bool) -> Result<(), Refusal> {
        let unavailable = |why: String| Refusal::new(RefusalCode::Unavailable, why);
        if self.link.unsynced() {
            return Ok(());
        }
        // Outstanding `Close`s (which leave the exchange synced) are answered only at a
        // `Sync` or `Flush`, and may be held back unwritten: ask for their answers.
        if self.flush_answers().await.is_err() {
            return Err(unavailable("the upstream connection is closed".into()));
        }
        if self
            .link
            .quiesce()
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .is_none()
        {
            // A COPY is under way: the server answers no probe before it ends.
            return Ok(());
        }
        match self.link.at_boundary() {
            None => return Ok(()),
            Some(status) if only_idle && status != TransactionStatus::Idle => return Ok(()),
            Some(_) => {}
        }
        let mut query = BytesMut::new();
        frontend::query(&mut query, PROBE_SQL)
            .map_err(|e| unavailable(format!("cannot encode the search_path query: {e}")))?;
        let (tx, rx) = oneshot::channel();
        let probe = PathProbe {
            schemas: Vec::new(),
            failed: false,
            done: Some(tx),
        };
        self.link
            .send(vec![Outgoing {
                bytes: &query,
                expect: Expect::Query,
                sink: Sink::Process(Box::new(probe)),
                record: None,
            }])
            .map_err(|e| unavailable(e.to_string()))?;
        if self.flush().await.is_err() {
            return Err(unavailable("the upstream connection is closed".into()));
        }
        match tokio::time::timeout(PROBE_TIMEOUT, rx).await {
            Ok(Ok(Some(path))) => {
                self.path.path = SearchPath::Confirmed(Arc::new(path));
                Ok(())
            }
            // The server refused the query: the path stays unknown.
            Ok(Ok(None)) => Ok(()),
            Ok(Err(_)) => Err(unavailable("the upstream connection is closed".into())),
            Err(_) => {
                self.link
                    .close("the server did not report the session's search_path in time");
                Err(unavailable(
                    "the server did not report the session's search_path in time".into(),
                ))
            }
        }
    }
}

/// Collects the answer to [`PROBE_SQL`]; the client sees none of it (notifications and
/// parameter changes that arrive meanwhile are passed on).
struct PathProbe {
    schemas: Vec<String>,
    failed: bool,
    done: Option<oneshot::Sender<Option<Vec<String>>>>,
}

impl Process for PathProbe {
    fn frame(&mut self, frame: BackendFrame, out: &mut BytesMut, _: &Descriptions) {
        match frame.tag() {
            tag::DATA_ROW => match frame.parse() {
                Ok(BackendMessage::DataRow(row)) => {
                    match row
                        .values()
                        .next()
                        .flatten()
                        .and_then(|v| std::str::from_utf8(v).ok())
                    {
                        Some(schema) => self.schemas.push(schema.to_owned()),
                        None => self.failed = true,
                    }
                }
                _ => self.failed = true,
            },
            tag::ERROR_RESPONSE => self.failed = true,
            tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS => frame.encode_into(out),
            _ => {}
        }
    }

    fn finish(&mut self, skipped: bool) {
        let answer = (!skipped && !self.failed).then(|| std::mem::take(&mut self.schemas));
        if let Some(done) = self.done.take() {
            let _ = done.send(answer);
        }
    }
}
