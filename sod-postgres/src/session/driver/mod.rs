//! The driver: reads the client's messages and turns each policy-relevant unit into an
//! operation for the service stack. A simple-query batch is one operation; in the extended
//! protocol a statement is analysed at `Parse` and judged at `Execute`, and `Bind`,
//! `Describe`, `Close`, `Sync` and `Flush` are bookkeeping done here: statement and portal
//! tables under names the gateway generates, deferred `Bind`s, SQL-level `PREPARE`d
//! statements, the catalog snapshot names are resolved in. What passes is queued on the
//! [router](crate::router)'s link; what is refused is answered in PostgreSQL's own way
//! ([`Driver::inject`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use sod_core::hex;
use sod_core::{
    BoxError, Operation, OperationKind, Refusal, RefusalCode, Request, Session, SessionId,
};
use tokio::io::AsyncWriteExt as _;
use tower::{Service, ServiceExt as _};

mod operation;
mod search_path;

use super::{Fatal, Step, Stop, fatal};
use crate::codec::{
    self, BackendFrame, ErrorBuilder, FrontendFrame, FrontendMessage, Limits, Severity,
    Target as DescribeTarget, frontend, oid, tag,
};
use crate::error::{encoded, refusal_error, stack_error};
use crate::net::WriteHalf;
use crate::response::{Outcome, ResultShape};
use crate::router::{Access, DescKey, Expect, Link, Outgoing, Sink};
use crate::service::{PgRequest, PgResponse, RequestKind, ResponseInner};
use crate::shared::{GatewayShared, SessionShared};
use crate::sql::{Analysis, SessionEffect};

/// What the gateway asks the server to parse to make it fail in place of a refused statement;
/// the server's log shows it as a syntax error at "sod".
const REFUSAL_TEXT: &str = "sod refused this statement";

/// Prefix of statement and portal names the gateway creates upstream; SQL naming them is
/// refused, so no client can reach the gateway's own statements and portals (for example
/// `FETCH` from a portal bound to a statement that was never allowed to execute).
const RESERVED_PREFIX: &str = "sod:";

/// Statements up to this size are analysed in place; longer ones on the blocking pool.
const INLINE_ANALYSIS: usize = 16 * 1024;

/// The rule that refuses names the gateway cannot resolve to one relation.
const NAME_RESOLUTION_RULE: &str = "sod-name-resolution";

/// How long a session that ends waits for answers still on their way before it gives up on
/// handing its upstream connection back (and closes it instead).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Frames for [`Link::local`] from an encoder.
fn frames_of(
    f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>,
) -> Vec<BackendFrame> {
    let mut buf = BytesMut::new();
    if f(&mut buf).is_err() {
        return Vec::new();
    }
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec::decode_backend(&mut buf, &Limits::DEFAULT) {
        frames.push(frame);
    }
    frames
}

/// An error as a frame for [`Link::local`].
pub(super) fn frame_of(err: &ErrorBuilder) -> Vec<BackendFrame> {
    frames_of(|o| {
        err.encode(o);
        Ok(())
    })
}

/// The analysis of `sql`: from the cache, in place for short texts, on the blocking pool
/// for long ones (at most one per CPU at once, so a megabyte of SQL cannot stall other
/// sessions); `Err` with the error to answer for a text over the gateway's limit.
async fn analyze(gw: Arc<GatewayShared>, sql: &str) -> Result<Arc<Analysis>, ErrorBuilder> {
    if sql.len() > gw.max_statement {
        return Err(ErrorBuilder::error(
            "54000",
            format!(
                "sod: the statement is {} bytes; this gateway analyses statements of up to {} bytes",
                sql.len(),
                gw.max_statement
            ),
        ));
    }
    if sql.len() <= INLINE_ANALYSIS {
        return Ok(gw.analyzer.analyze(sql));
    }
    let permit = gw.analyses.clone().acquire_owned().await;
    let (analyzer, text) = (gw.analyzer.clone(), sql.to_owned());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        analyzer.analyze(&text)
    })
    .await
    .map_err(|_| ErrorBuilder::error("XX000", "sod: the SQL analyzer failed"))
}

/// Polls `fut` once: its output if it is ready at once, `None` if it would wait (`fut` is then
/// dropped: pass `Pin<&mut F>` to keep polling the same future afterwards).
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// A statement the client prepared with `Parse`.
#[derive(Clone)]
struct Prepared {
    upstream_name: String,
    analysis: Arc<Analysis>,
}

/// A portal the client bound with `Bind`.
#[derive(Clone)]
struct Portal {
    /// The name the server knows it by (generated, like statement names: a cursor the client
    /// declares in SQL can never be mistaken for a portal the gateway analysed).
    upstream_name: String,
    statement: Prepared,
    client_statement: String,
    params: Vec<Option<Bytes>>,
    result_formats: Vec<i16>,
    /// The `Bind` for the server. It is held until an `Execute` of the portal passes: the
    /// server plans a statement at `Bind` (evaluating immutable functions, domain checks), so
    /// binding is not harmless.
    bind: Bytes,
    /// Whether the server has the portal yet.
    bound: bool,
}

/// A forwarded `DEALLOCATE name` (`Some`) or `DEALLOCATE ALL`/`DISCARD` (`None`), and whether
/// the server carried it out, once known.
struct PendingRemoval {
    name: Option<String>,
    succeeded: Arc<OnceLock<bool>>,
}

/// The driver of one session: its service stack and its bookkeeping.
pub(super) struct Driver<S> {
    gw: Arc<GatewayShared>,
    shared: Arc<SessionShared>,
    session: Arc<Session>,
    service: S,
    link: Arc<Link>,
    /// The write half of the upstream connection: the driver writes what the link queued.
    upstream: WriteHalf,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// SQL-level `PREPARE name AS …`: name → what it does.
    sql_prepared: HashMap<String, Arc<Analysis>>,
    /// Forwarded `DEALLOCATE`/`DISCARD`s whose outcome is not known yet. A name leaves
    /// `sql_prepared` only once the server confirms: until then (or if it failed) the name
    /// is still judged as what it was, and preparing it again is refused, so the gateway
    /// never forgets a statement the server still has.
    pending_removals: Vec<PendingRemoval>,
    /// Statements whose row description the router has recorded.
    described: HashSet<DescKey>,
    /// Prefix of every name the gateway sends upstream: random, so a client cannot aim at it.
    prefix: String,
    counter: u64,
    /// After a refusal in the extended protocol: drop client messages until `Sync`.
    skipping: bool,
    /// The session's search path, as the server reports it after the client changed it.
    path: search_path::PathTracker,
    /// A statement that changes the catalog went through, at this idle epoch of the link: reload
    /// the snapshot (once its transaction has ended) before the next unqualified name is
    /// resolved.
    ddl_epoch: Option<u64>,
}

impl<S> Driver<S>
where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    /// The driver of a session that has just connected.
    pub(super) fn new(
        gw: Arc<GatewayShared>,
        shared: Arc<SessionShared>,
        session: Arc<Session>,
        service: S,
        link: Arc<Link>,
        upstream: WriteHalf,
    ) -> Self {
        Driver {
            gw,
            shared,
            session,
            service,
            link,
            upstream,
            statements: HashMap::new(),
            portals: HashMap::new(),
            sql_prepared: HashMap::new(),
            pending_removals: Vec::new(),
            described: HashSet::new(),
            prefix: format!("{RESERVED_PREFIX}{}:", hex::encode(&hex::random::<8>())),
            counter: 0,
            skipping: false,
            path: search_path::PathTracker::default(),
            ddl_epoch: None,
        }
    }

    /// The session's id.
    pub(super) fn session_id(&self) -> SessionId {
        self.session.id()
    }

    /// Ends the session. When `reusable` and the link is clean once the answers on their way
    /// have arrived (bounded by [`RELEASE_WAIT`]), the upstream connection stays open and its
    /// write half comes back, for the pool; otherwise [`terminate`](Self::terminate).
    pub(super) async fn end(self, reusable: bool) -> (SessionId, Option<WriteHalf>) {
        if reusable {
            let _ = tokio::time::timeout(RELEASE_WAIT, self.link.quiesce()).await;
            if self.link.release() {
                return (self.session.id(), Some(self.upstream));
            }
        }
        (self.terminate().await, None)
    }

    /// Ends the session upstream: `Terminate` after everything queued, then the write half
    /// closed. The router delivers what the server still answers.
    pub(super) async fn terminate(mut self) -> SessionId {
        let mut bye = BytesMut::new();
        frontend::terminate(&mut bye);
        self.link.ending();
        let _ = self.link.send_unanswered(&bye);
        let _ = self.flush().await;
        let _ = self.upstream.shutdown().await;
        self.session.id()
    }

    /// Writes everything queued for upstream and lets the router deliver the gateway's own
    /// answers. `Err` when the connection broke.
    pub(super) async fn flush(&mut self) -> Result<(), ()> {
        self.link.deliver_local();
        let Some(bytes) = self.link.take_outgoing() else {
            return Ok(());
        };
        if let Err(e) = self.upstream.write_all(&bytes).await {
            self.link
                .close(format!("writing to the server failed: {e}"));
            return Err(());
        }
        Ok(())
    }

    /// Before waiting for every answer ([`Link::quiesce`]): asks the server for what it owes
    /// now (a protocol `Flush`: answers to extended-protocol messages otherwise wait in the
    /// server for the client's `Sync`) and writes everything queued, a held tail included.
    /// `Err` when the connection broke.
    pub(super) async fn flush_answers(&mut self) -> Result<(), ()> {
        let mut flush = BytesMut::new();
        frontend::flush(&mut flush);
        if self.link.send_unanswered(&flush).is_err() {
            return Err(());
        }
        self.flush().await
    }

    fn fresh_name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}{kind}{}", self.prefix, self.counter)
    }

    fn send(&self, messages: Vec<Outgoing<'_>>) -> Step {
        self.link
            .send(messages)
            .map(drop)
            .map_err(|_| Stop::LinkDown)
    }

    fn encode(
        f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>,
    ) -> Result<Bytes, Stop> {
        let mut out = BytesMut::new();
        f(&mut out).map_err(Fatal::from)?;
        Ok(out.freeze())
    }

    /// Handles one client message.
    pub(super) async fn handle(&mut self, frame: FrontendFrame) -> Step {
        let t = frame.tag();
        if self.skipping && t != tag::SYNC && t != tag::TERMINATE {
            // After a refusal in the extended protocol, PostgreSQL ignores everything to Sync.
            return Ok(());
        }
        if matches!(
            t,
            tag::QUERY | tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE
        ) {
            self.confirm_path_between_exchanges().await;
        }
        let msg = frame.parse().map_err(Fatal::from)?;
        match msg {
            FrontendMessage::Query { sql } => self.query(sql, &frame).await,
            FrontendMessage::Parse {
                name,
                sql,
                param_types,
            } => {
                let types: Vec<u32> = param_types.iter().collect();
                self.parse(name, sql, &types).await
            }
            FrontendMessage::Bind(b) => {
                let params: Vec<Option<Bytes>> = b
                    .params
                    .iter()
                    .map(|v| v.map(Bytes::copy_from_slice))
                    .collect();
                let formats: Vec<i16> = b.param_formats.iter().collect();
                let results: Vec<i16> = b.result_formats.iter().collect();
                self.bind(b.portal, b.statement, &formats, params, results)
            }
            FrontendMessage::Describe { target, name } => self.describe(target, name),
            FrontendMessage::Execute { portal, max_rows } => self.execute(portal, max_rows).await,
            FrontendMessage::Close { target, name } => self.close(target, name),
            FrontendMessage::Sync => {
                self.skipping = false;
                self.send(vec![Outgoing {
                    bytes: frame.raw(),
                    expect: Expect::Sync,
                    sink: Sink::Client,
                    record: None,
                }])
            }
            FrontendMessage::Flush => {
                self.link.request_flush();
                self.link
                    .send_unanswered(frame.raw())
                    .map_err(|_| Stop::LinkDown)
            }
            FrontendMessage::CopyData(_) => self
                .link
                .send_unanswered(frame.raw())
                .map_err(|_| Stop::LinkDown),
            FrontendMessage::CopyDone | FrontendMessage::CopyFail { .. } => {
                self.send(vec![Outgoing {
                    bytes: frame.raw(),
                    expect: Expect::CopyEnd,
                    sink: Sink::Client,
                    record: None,
                }])
            }
            FrontendMessage::FunctionCall(call) => {
                let op = Operation::not_understood(
                    self.gw.target.clone(),
                    format!("FUNCTION CALL {}", call.oid),
                    "fastpath function calls name functions by OID, which the gateway does not resolve",
                );
                self.operation(
                    op,
                    vec![(frame.raw().clone(), Expect::FunctionCall)],
                    ResultShape::default(),
                    true,
                    None,
                )
                .await
                .map(drop)
            }
            FrontendMessage::Terminate => Err(Stop::ClientGone),
            FrontendMessage::Password(_) => {
                Err(fatal("08P01", "sod: unexpected password message").into())
            }
        }
    }

    async fn query(&mut self, sql: &str, frame: &FrontendFrame) -> Step {
        let analysis = match analyze(self.gw.clone(), sql).await {
            Ok(a) => a,
            Err(err) => return self.inject(encoded(&err), true),
        };
        self.settle_removals();
        // A second PREPARE of a name the gateway knows would fail in PostgreSQL and leave the
        // first in place; refuse it here so both sides agree on what the name means.
        for stmt in &analysis.statements {
            if let SessionEffect::Prepare { name } = &stmt.effect
                && self.sql_prepared.contains_key(name)
            {
                let err = ErrorBuilder::error(
                    "42P05",
                    format!("prepared statement \"{name}\" already exists"),
                );
                return self.inject(encoded(&err), true);
            }
        }
        let op = match self.refresh_catalog(&analysis).await {
            Ok(()) => self.operation_for(&analysis, &[]),
            Err(r) => Err(r),
        };
        let op = match op {
            Ok(op) => op,
            Err(r) => return self.inject(encoded(&refusal_error(&r, Severity::Error)), true),
        };
        let removal = Self::removal_outcome(&analysis);
        let forwarded = self
            .operation(
                op,
                vec![(frame.raw().clone(), Expect::Query)],
                ResultShape {
                    analysis: Some(analysis.clone()),
                    ..ResultShape::default()
                },
                true,
                removal.clone(),
            )
            .await?;
        if forwarded {
            self.after_forward(&analysis, removal);
        }
        Ok(())
    }

    async fn parse(&mut self, name: &str, sql: &str, types: &[u32]) -> Step {
        if let Some(oid) = types
            .iter()
            .find(|&&oid| oid >= oid::FIRST_NORMAL_OBJECT_ID)
        {
            let refusal = Refusal::new(
                RefusalCode::PolicyDenied,
                format!(
                    "parameter type {oid} is not a built-in type; user-defined types (domains) run code when a value is bound"
                ),
            )
            .with_rule("sod-builtin-parameter-types");
            return self.inject(encoded(&refusal_error(&refusal, Severity::Error)), false);
        }
        if !name.is_empty() && self.statements.contains_key(name) {
            let err = ErrorBuilder::error(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            );
            return self.inject(encoded(&err), false);
        }
        let analysis = match analyze(self.gw.clone(), sql).await {
            Ok(a) => a,
            Err(err) => return self.inject(encoded(&err), false),
        };
        self.confirm_path_for(&analysis).await;
        let upstream_name = self.fresh_name("s");
        let mut messages = Vec::new();
        let close_old;
        if name.is_empty()
            && let Some(old) = self.statements.remove("")
        {
            close_old = Self::encode(|o| {
                frontend::close(o, DescribeTarget::Statement, &old.upstream_name)
            })?;
            messages.push(Outgoing {
                bytes: &close_old,
                expect: Expect::Close,
                sink: Sink::Swallow,
                record: None,
            });
        }
        let parse = Self::encode(|o| frontend::parse(o, &upstream_name, sql, types))?;
        messages.push(Outgoing {
            bytes: &parse,
            expect: Expect::Parse,
            sink: Sink::Client,
            record: None,
        });
        self.send(messages)?;
        self.described.remove(&DescKey::Statement(name.to_owned()));
        self.statements.insert(
            name.to_owned(),
            Prepared {
                upstream_name,
                analysis,
            },
        );
        Ok(())
    }

    fn bind(
        &mut self,
        portal: &str,
        statement: &str,
        formats: &[i16],
        params: Vec<Option<Bytes>>,
        results: Vec<i16>,
    ) -> Step {
        let Some(prepared) = self.statements.get(statement).cloned() else {
            let err = ErrorBuilder::error(
                "26000",
                format!("prepared statement \"{statement}\" does not exist"),
            );
            return self.inject(encoded(&err), false);
        };
        let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
        let upstream_name = self.fresh_name("p");
        if let Some(old) = self.portals.remove(portal)
            && old.bound
        {
            // Binding a name again replaces its portal.
            let close =
                Self::encode(|o| frontend::close(o, DescribeTarget::Portal, &old.upstream_name))?;
            self.send(vec![Outgoing {
                bytes: &close,
                expect: Expect::Close,
                sink: Sink::Swallow,
                record: None,
            }])?;
        }
        let bind = Self::encode(|o| {
            frontend::bind(
                o,
                &upstream_name,
                &prepared.upstream_name,
                formats,
                &values,
                &results,
            )
        })?;
        self.link.local_extended(frames_of(|o| {
            codec::backend::bind_complete(o);
            Ok(())
        }));
        self.described.remove(&DescKey::Portal(portal.to_owned()));
        self.portals.insert(
            portal.to_owned(),
            Portal {
                upstream_name,
                statement: prepared,
                client_statement: statement.to_owned(),
                params,
                result_formats: results,
                bind,
                bound: false,
            },
        );
        Ok(())
    }

    fn describe(&mut self, target: DescribeTarget, name: &str) -> Step {
        let (bytes, expect, key) = match target {
            DescribeTarget::Statement => {
                let Some(prepared) = self.statements.get(name) else {
                    let err = ErrorBuilder::error(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    );
                    return self.inject(encoded(&err), false);
                };
                let upstream_name = prepared.upstream_name.clone();
                (
                    Self::encode(|o| frontend::describe(o, target, &upstream_name))?,
                    Expect::DescribeStatement,
                    DescKey::Statement(name.to_owned()),
                )
            }
            DescribeTarget::Portal => {
                let Some(portal) = self.portals.get(name) else {
                    if let Some(cursor) = Self::declared_cursor(name) {
                        // A cursor the client declared in SQL (psycopg's named cursors describe
                        // theirs): the server knows it by the client's name. A description is
                        // column names and types, no data.
                        let bytes = Self::encode(|o| frontend::describe(o, target, cursor))?;
                        return self.send(vec![Outgoing {
                            bytes: &bytes,
                            expect: Expect::DescribePortal,
                            sink: Sink::Client,
                            record: None,
                        }]);
                    }
                    let err =
                        ErrorBuilder::error("34000", format!("portal \"{name}\" does not exist"));
                    return self.inject(encoded(&err), false);
                };
                let key = DescKey::Portal(name.to_owned());
                if !portal.bound {
                    // The server does not have the portal yet: describe its statement and give
                    // the answer the portal's result formats.
                    let bytes = Self::encode(|o| {
                        frontend::describe(
                            o,
                            DescribeTarget::Statement,
                            &portal.statement.upstream_name,
                        )
                    })?;
                    let formats = portal.result_formats.clone();
                    self.send(vec![Outgoing {
                        bytes: &bytes,
                        expect: Expect::DescribeStatement,
                        sink: Sink::PortalDescription(formats),
                        record: Some(key.clone()),
                    }])?;
                    self.described.insert(key);
                    return Ok(());
                }
                let upstream_name = portal.upstream_name.clone();
                (
                    Self::encode(|o| frontend::describe(o, target, &upstream_name))?,
                    Expect::DescribePortal,
                    key,
                )
            }
        };
        self.send(vec![Outgoing {
            bytes: &bytes,
            expect,
            sink: Sink::Client,
            record: Some(key.clone()),
        }])?;
        self.described.insert(key);
        Ok(())
    }

    /// `name` as the server knows a cursor the client declared with SQL `DECLARE`, for a
    /// portal name that is not one of the client's protocol portals: any name but the
    /// gateway's own (which SQL cannot declare either). The unnamed portal is never a cursor.
    fn declared_cursor(name: &str) -> Option<&str> {
        (!name.is_empty() && !name.starts_with(RESERVED_PREFIX)).then_some(name)
    }

    fn close(&mut self, target: DescribeTarget, name: &str) -> Step {
        if target == DescribeTarget::Portal
            && !self.portals.contains_key(name)
            && let Some(cursor) = Self::declared_cursor(name)
        {
            // Closing a cursor declared in SQL (as `CLOSE name` would; PostgreSQL answers
            // CloseComplete for a name that does not exist).
            let bytes = Self::encode(|o| frontend::close(o, target, cursor))?;
            return self.send(vec![Outgoing {
                bytes: &bytes,
                expect: Expect::Close,
                sink: Sink::Client,
                record: None,
            }]);
        }
        if target == DescribeTarget::Portal && !self.portals.get(name).is_some_and(|p| p.bound) {
            // Never sent to the server (or never existed, which PostgreSQL also answers with
            // CloseComplete).
            self.portals.remove(name);
            self.link.local_extended(frames_of(|o| {
                codec::backend::close_complete(o);
                Ok(())
            }));
            return Ok(());
        }
        let upstream_name = match target {
            DescribeTarget::Statement => match self.statements.remove(name) {
                Some(p) => p.upstream_name,
                // PostgreSQL answers CloseComplete for a name that does not exist; so does a
                // fresh name no one has prepared.
                None => self.fresh_name("none"),
            },
            DescribeTarget::Portal => match self.portals.remove(name) {
                Some(p) => p.upstream_name,
                None => self.fresh_name("none"),
            },
        };
        let bytes = Self::encode(|o| frontend::close(o, target, &upstream_name))?;
        self.send(vec![Outgoing {
            bytes: &bytes,
            expect: Expect::Close,
            sink: Sink::Client,
            record: None,
        }])
    }

    async fn execute(&mut self, portal_name: &str, max_rows: i32) -> Step {
        let Some(portal) = self.portals.get(portal_name).cloned() else {
            let err =
                ErrorBuilder::error("34000", format!("portal \"{portal_name}\" does not exist"));
            return self.inject(encoded(&err), false);
        };
        self.settle_removals();
        let op = match self.refresh_catalog(&portal.statement.analysis).await {
            Ok(()) => self.operation_for(&portal.statement.analysis, &portal.params),
            Err(r) => Err(r),
        };
        let op = match op {
            Ok(op) => op,
            Err(r) => return self.inject(encoded(&refusal_error(&r, Severity::Error)), false),
        };
        let mut messages = Vec::new();
        if !portal.bound {
            messages.push((portal.bind.clone(), Expect::Bind));
        }
        let portal_key = DescKey::Portal(portal_name.to_owned());
        let statement_key = DescKey::Statement(portal.client_statement.clone());
        let describes = if self.described.contains(&portal_key) {
            Some(portal_key)
        } else if self.described.contains(&statement_key) && portal.result_formats.len() <= 1 {
            Some(statement_key)
        } else {
            // Nobody described this portal: ask, so masking knows the columns.
            messages.push((
                Self::encode(|o| {
                    frontend::describe(o, DescribeTarget::Portal, &portal.upstream_name)
                })?,
                Expect::DescribePortal,
            ));
            self.described.insert(portal_key.clone());
            Some(portal_key)
        };
        messages.push((
            Self::encode(|o| frontend::execute(o, &portal.upstream_name, max_rows))?,
            Expect::Execute,
        ));
        let analysis = portal.statement.analysis.clone();
        let was_bound = portal.bound;
        let removal = Self::removal_outcome(&analysis);
        let forwarded = self
            .operation(
                op,
                messages,
                ResultShape {
                    describes,
                    result_formats: portal.result_formats.clone(),
                    analysis: Some(analysis.clone()),
                },
                false,
                removal.clone(),
            )
            .await?;
        if forwarded {
            if !was_bound && let Some(p) = self.portals.get_mut(portal_name) {
                p.bound = true;
            }
            self.after_forward(&analysis, removal);
        }
        Ok(())
    }

    /// Runs an operation through the stack. Allowed: the innermost service has queued the
    /// messages; install the response (`Ok(true)`: forwarded). Refused: make the server fail
    /// in its place (`Ok(false)`: the session's bookkeeping must not change).
    async fn operation(
        &mut self,
        op: Operation,
        messages: Vec<(Bytes, Expect)>,
        shape: ResultShape,
        simple: bool,
        removal: Option<Arc<OnceLock<bool>>>,
    ) -> Result<bool, Stop> {
        // Reads run read-only upstream; writes, and transaction blocks (which may hold them:
        // PostgreSQL fixes a transaction's mode when it starts), read-write.
        let starts_block = shape.analysis.as_ref().is_some_and(|a| {
            a.statements.iter().any(|s| {
                s.effect == SessionEffect::Transaction
                    && matches!(s.tag.as_str(), "BEGIN" | "START TRANSACTION")
            })
        });
        let access = if op.kind() > OperationKind::Read || starts_block {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let req = Request::new(
            self.session.clone(),
            op,
            PgRequest {
                kind: RequestKind::Forward {
                    messages,
                    shape,
                    access,
                },
            },
        );
        // A stack that decides at once (the usual case) adds its messages to what is queued, for
        // one write. One that waits (for an approval, a rate limit) must not hold back what
        // earlier messages queued: send that first.
        let result = match poll_once(self.service.ready()).await {
            Some(Ok(svc)) => Ok(svc.call(req)),
            Some(Err(e)) => Err(e),
            None => {
                self.flush().await.map_err(|()| Stop::LinkDown)?;
                self.service.ready().await.map(|svc| svc.call(req))
            }
        };
        let result = match result {
            Ok(call) => {
                let mut call = std::pin::pin!(call);
                match poll_once(call.as_mut()).await {
                    Some(r) => r,
                    None => {
                        self.flush().await.map_err(|()| Stop::LinkDown)?;
                        call.await
                    }
                }
            }
            Err(e) => Err(e),
        };
        let registered = self.shared.take_registered();
        match result {
            Ok(PgResponse {
                inner: ResponseInner::Slot { id, mut processor },
            }) => {
                if let Some(succeeded) = removal {
                    processor.observe(Box::new(move |o: &Outcome| {
                        let _ = succeeded.set(o.error_code.is_none() && !o.skipped);
                    }));
                }
                if let Some(Sink::Process(mut p)) = self.link.install(id, Sink::Process(processor))
                {
                    p.finish(true);
                }
                Ok(true)
            }
            Ok(PgResponse {
                inner: ResponseInner::Connected,
            }) => Err(fatal(
                "XX000",
                "sod: the stack answered an operation with a connection",
            )
            .into()),
            Err(e) if registered.is_some() => {
                // Queued by the innermost service, then failed further up the stack: it must
                // not reach the server (nothing queued has been written yet), and client and
                // server no longer agree on what happened, so end the session.
                self.link.discard_unwritten();
                Err(Fatal(Box::new(stack_error(&e, Severity::Fatal))).into())
            }
            Err(e) => self
                .inject(encoded(&stack_error(&e, Severity::Error)), simple)
                .map(|()| false),
        }
    }

    /// Answers a refused message the way PostgreSQL answers an error: the server is made to
    /// fail (`Execute` of a portal that cannot exist) and the client sees `error` in place of
    /// the server's error. For a simple query a `Sync` follows (its `ReadyForQuery` carries
    /// the right transaction status); in the extended protocol the client's own `Sync` will,
    /// and messages until then are dropped.
    fn inject(&mut self, error: Bytes, simple: bool) -> Step {
        // A Parse of text that is not SQL fails whatever the session holds (a cursor the client
        // declared under any name cannot turn it into rows). The gateway never uses the
        // server's unnamed statement, so replacing it harms nothing.
        let parse = Self::encode(|o| frontend::parse(o, "", REFUSAL_TEXT, &[]))?;
        let mut messages = vec![Outgoing {
            bytes: &parse,
            expect: Expect::Parse,
            sink: Sink::Substitute(error),
            record: None,
        }];
        let mut sync = BytesMut::new();
        if simple {
            frontend::sync(&mut sync);
            messages.push(Outgoing {
                bytes: &sync,
                expect: Expect::Sync,
                sink: Sink::Client,
                record: None,
            });
        } else {
            self.skipping = true;
        }
        self.send(messages)
    }
}
