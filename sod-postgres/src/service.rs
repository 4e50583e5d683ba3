//! The PostgreSQL request and response types of the service stack, and the innermost service
//! that forwards what every layer allowed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut as _, Bytes, BytesMut};
use sod_core::audit::{Completion, CompletionHook, CompletionStatus, Observe};
use sod_core::masking::{
    ColumnRef, Field, FieldAction, MaskPlan, Maskable, Masked, Masker, Provenance,
};
use sod_core::{BoxError, Refusal, RefusalCode, Request};

use crate::catalog::CatalogSnapshot;
use crate::codec::{self, BackendFrame, BackendMessage, tag};
use crate::link::{DescKey, Descriptions, Expect, Outgoing, Process, Sink, SlotId};
use crate::session::{GatewayShared, SessionShared};
use crate::sql::lineage::{Outputs, Reach};
use crate::sql::{Analysis, SessionEffect};

/// What the gateway will send upstream if every layer allows it. Opaque to layers: they decide
/// on the request's [`Operation`](sod_core::Operation), never on protocol bytes.
pub struct PgRequest {
    pub(crate) kind: RequestKind,
}

pub(crate) enum RequestKind {
    /// Open the upstream session.
    Connect,
    /// Messages to send, the response they expect, and what the results will look like.
    Forward {
        messages: Vec<(Bytes, Expect)>,
        shape: ResultShape,
    },
}

/// What the response processor needs to know about the result sets of a request.
#[derive(Default)]
pub(crate) struct ResultShape {
    /// For an `Execute`: where its row description was recorded.
    pub(crate) describes: Option<DescKey>,
    /// For an `Execute`: the `Bind`'s result formats.
    pub(crate) result_formats: Vec<i16>,
    /// The analysis of the SQL being run: each statement's lineage, in order (a simple-query
    /// batch has several). `None` for requests without SQL (function calls).
    pub(crate) analysis: Option<Arc<Analysis>>,
}

impl std::fmt::Debug for PgRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            RequestKind::Connect => f.write_str("PgRequest::Connect"),
            RequestKind::Forward { messages, .. } => {
                write!(f, "PgRequest::Forward({} messages)", messages.len())
            }
        }
    }
}

/// How an operation ended, for whoever observes responses (audit records).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows returned to the client.
    pub rows: u64,
    /// The last command tag (`SELECT 3`, `UPDATE 1`).
    pub command_tag: Option<String>,
    /// SQLSTATE of the error, if the server reported one.
    pub error_code: Option<String>,
    /// The server never executed it (it was skipping to `Sync` after an earlier error).
    pub skipped: bool,
    /// From forwarding to the end of the response.
    pub duration: std::time::Duration,
}

type Observer = Box<dyn FnOnce(&Outcome) + Send>;

/// The response to one operation: a stream of backend messages that the gateway delivers to
/// the client as they arrive, through whatever masking the policy decision asked for.
pub struct PgResponse {
    pub(crate) inner: ResponseInner,
}

pub(crate) enum ResponseInner {
    /// The upstream session is open.
    Connected,
    /// Messages of the slot `id` will flow through `processor`.
    Slot {
        id: SlotId,
        processor: Box<ResponseProcessor>,
    },
}

impl std::fmt::Debug for PgResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            ResponseInner::Connected => f.write_str("PgResponse::Connected"),
            ResponseInner::Slot { id, processor } => f
                .debug_struct("PgResponse")
                .field("slot", id)
                .field("masked", &processor.masker.is_some())
                .finish(),
        }
    }
}

impl PgResponse {
    /// Calls `f` with the outcome when the response is over (after the last message reached
    /// the client, or when the server skipped the operation).
    pub fn on_complete(mut self, f: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        if let ResponseInner::Slot { processor, .. } = &mut self.inner {
            processor.observers.push(Box::new(f));
        }
        self
    }
}

impl Observe for PgResponse {
    fn on_complete(self, hook: CompletionHook) -> Self {
        match &self.inner {
            ResponseInner::Connected => {
                hook(&Completion::default());
                self
            }
            ResponseInner::Slot { .. } => {
                PgResponse::on_complete(self, move |o: &Outcome| hook(&o.completion()))
            }
        }
    }
}

impl Outcome {
    /// The protocol-neutral completion, for audit records.
    pub fn completion(&self) -> Completion {
        let status = if self.skipped {
            CompletionStatus::Skipped
        } else if self.error_code.is_some() {
            CompletionStatus::Error
        } else {
            CompletionStatus::Ok
        };
        // The row count: rows returned, or rows affected as the command tag says.
        let affected = self
            .command_tag
            .as_deref()
            .and_then(|t| t.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        Completion {
            status,
            rows: Some(if self.rows > 0 {
                self.rows
            } else {
                affected.unwrap_or(0)
            }),
            bytes: None,
            error_code: self.error_code.clone(),
            duration: self.duration,
        }
    }
}

impl Maskable for PgResponse {
    fn mask(mut self, masker: Masker) -> Self {
        if let ResponseInner::Slot { processor, .. } = &mut self.inner {
            processor.masker = Some(masker).filter(|m| !m.is_noop());
        }
        self
    }
}

/// Delivers one operation's messages to the client: masks rows, counts them, reports the end.
pub(crate) struct ResponseProcessor {
    masker: Option<Masker>,
    shape: ResultShape,
    /// Which statement of the request the server is answering (counted by `CommandComplete`).
    statement: usize,
    /// The plan for the current result set and each column's format and type.
    plan: Option<(MaskPlan, Vec<(i16, u32)>)>,
    /// COPY out of masked data is refused: swallow the copy stream.
    refusing_copy: bool,
    outcome: Outcome,
    started: Instant,
    observers: Vec<Observer>,
    buf: Vec<u8>,
    /// Where result columns come from, when a result set is masked (taken when the request
    /// was forwarded), and the gateway, to mark the catalog stale.
    catalog: Arc<CatalogSnapshot>,
    gateway: Arc<GatewayShared>,
}

impl ResponseProcessor {
    fn new(shape: ResultShape, catalog: Arc<CatalogSnapshot>, gateway: Arc<GatewayShared>) -> Self {
        Self {
            catalog,
            gateway,
            masker: None,
            shape,
            statement: 0,
            plan: None,
            refusing_copy: false,
            outcome: Outcome::default(),
            started: Instant::now(),
            observers: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Calls `f` with the outcome when the response is over.
    pub(crate) fn observe(&mut self, f: Observer) {
        self.observers.push(f);
    }

    /// Plans masking for a row description, once per result set. A column the server
    /// attributes to a table (its OID and attribute number) is resolved through the column
    /// catalog ([`ColumnCatalog`](crate::catalog::ColumnCatalog): tables, inherited columns,
    /// views); a computed column (no table) through the statement's [`Lineage`]: derived from
    /// every column its expression may read, or unknown (masked) when the lineage cannot tell.
    /// What a data-modifying statement writes counts for every column of its `RETURNING`.
    fn plan_for(
        &self,
        masker: &Masker,
        desc: &BackendFrame,
    ) -> Option<(MaskPlan, Vec<(i16, u32)>)> {
        let Ok(BackendMessage::RowDescription(rd)) = desc.parse() else {
            return None;
        };
        let columns = &self.catalog.columns;
        let lineage = self
            .shape
            .analysis
            .as_ref()
            .and_then(|a| a.statements.get(self.statement))
            .and_then(|s| s.lineage.as_deref());
        let count = rd.fields().count();
        let resolve = |reach: &Reach| match self.catalog.columns_reached(reach) {
            Ok(cols) => Provenance::Derived(cols),
            Err(_) => Provenance::Unknown,
        };
        // Computed columns: one by one if the walk counted as many outputs as the server
        // sent, else every one reaches everything any output does (resolved once).
        let (each, all) = match lineage.and_then(|l| l.outputs.as_ref()) {
            Some(Outputs::Each(each)) if each.len() == count => (Some(each), None),
            Some(other) => (None, Some(resolve(&other.union()))),
            None => (None, Some(Provenance::Unknown)),
        };
        let written = lineage
            .map(|l| &l.written)
            .filter(|w| !w.refs.is_empty() || w.undecided.is_some())
            .map(|w| self.catalog.columns_reached(w));
        let mut fields = Vec::with_capacity(count);
        let mut formats = Vec::with_capacity(count);
        let mut unknown_table = false;
        for (i, f) in rd.fields().enumerate() {
            let mut provenance = if f.table_oid == 0 {
                match (each, &all) {
                    (Some(each), _) => resolve(&each[i]),
                    (None, Some(all)) => all.clone(),
                    (None, None) => Provenance::Unknown,
                }
            } else {
                unknown_table |= !columns.knows(f.table_oid);
                columns.provenance(f.table_oid, f.column)
            };
            if let Some(written) = &written {
                provenance = with_written(provenance, written);
            }
            fields.push(Field::new(f.name, provenance));
            let format = match self.shape.result_formats.as_slice() {
                [] => f.format,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(f.format),
            };
            formats.push((format, f.type_oid));
        }
        if unknown_table {
            // A table newer than the snapshot: masked now, known after the reload.
            self.gateway.catalog.invalidate_unless_young();
        }
        Some((masker.plan(&fields), formats))
    }

    fn mask_row(&mut self, masker: &Masker, frame: &BackendFrame, out: &mut BytesMut) {
        // No plan (no row description known): the empty plan masks every value.
        let empty = (MaskPlan::default(), Vec::new());
        let (plan, columns) = self.plan.as_ref().unwrap_or(&empty);
        mask_data_row(masker, plan, columns, frame, &mut self.buf, out);
    }
}

/// Writes one `DataRow` to `out` with `plan` applied; `columns` are each column's format and
/// type. A row whose result set masks nothing passes as it came; any other frame (not a
/// parseable `DataRow`) too. A masked row is re-encoded in place in `out`: length-prefixed
/// values, the message length and value count patched in at the end. `buf` is scratch space for
/// replacements, reused from row to row.
pub(crate) fn mask_data_row(
    masker: &Masker,
    plan: &MaskPlan,
    columns: &[(i16, u32)],
    frame: &BackendFrame,
    buf: &mut Vec<u8>,
    out: &mut BytesMut,
) {
    if plan.is_noop() && !plan.actions().is_empty() && value_count(frame) <= plan.actions().len() {
        // Nothing in this result set is masked: the row passes as it came (unless it has more
        // values than the description had columns: those are masked, fail closed).
        frame.encode_into(out);
        return;
    }
    let Ok(BackendMessage::DataRow(row)) = frame.parse() else {
        if frame.tag() == tag::DATA_ROW {
            // A row the codec cannot read cannot be masked: withheld, never passed (I6).
            codec::ErrorBuilder::error("XX000", "sod: a malformed row from the server is withheld")
                .encode(out);
        } else {
            frame.encode_into(out);
        }
        return;
    };
    let start = out.len();
    out.put_u8(tag::DATA_ROW);
    out.put_i32(0);
    out.put_i16(0);
    let mut count: i16 = 0;
    for (i, value) in row.values().enumerate() {
        count = count.saturating_add(1);
        let (format, type_oid) = columns.get(i).copied().unwrap_or((0, 0));
        let masked = match (value, plan.action(i)) {
            (None, _) => Masked::Null,
            (Some(_), FieldAction::Keep) => Masked::Unchanged,
            (Some(v), action) if format == 1 => scan_binary(masker, action, type_oid, v, buf),
            (Some(v), action) => masker.apply(action, v, buf),
        };
        match (masked, value) {
            (Masked::Unchanged, Some(v)) => {
                out.put_i32(v.len() as i32);
                out.extend_from_slice(v);
            }
            (Masked::Replaced, _) => {
                out.put_i32(buf.len() as i32);
                out.extend_from_slice(buf);
            }
            _ => out.put_i32(-1),
        }
    }
    let len = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    out[start + 5..start + 7].copy_from_slice(&count.to_be_bytes());
}

impl Process for ResponseProcessor {
    fn frame(&mut self, frame: BackendFrame, out: &mut BytesMut, descriptions: &Descriptions) {
        let t = frame.tag();
        match t {
            tag::DATA_ROW => self.outcome.rows += 1,
            tag::COMMAND_COMPLETE => {
                if let Ok(BackendMessage::CommandComplete { tag }) = frame.parse() {
                    self.outcome.command_tag = Some(tag.to_owned());
                }
                // The next result set, if any, is the next statement's.
                self.statement += 1;
                self.plan = None;
            }
            tag::ERROR_RESPONSE => {
                if let Ok(BackendMessage::ErrorResponse(f)) = frame.parse() {
                    self.outcome.error_code = f.code().map(str::to_owned);
                }
            }
            _ => {}
        }
        let Some(masker) = self.masker.clone() else {
            frame.encode_into(out);
            return;
        };
        if self.refusing_copy {
            if matches!(t, tag::COPY_DATA | tag::COPY_DONE | tag::COMMAND_COMPLETE) {
                return;
            }
            self.refusing_copy = t != tag::READY_FOR_QUERY && t != tag::ERROR_RESPONSE;
        }
        match t {
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE => scrub(&frame, out),
            tag::ROW_DESCRIPTION => {
                self.plan = self.plan_for(&masker, &frame);
                frame.encode_into(out);
            }
            tag::DATA_ROW => {
                if self.plan.is_none() {
                    let desc = self
                        .shape
                        .describes
                        .as_ref()
                        .and_then(|k| descriptions.get(k));
                    self.plan = desc.and_then(|d| self.plan_for(&masker, d));
                }
                self.mask_row(&masker, &frame, out);
            }
            tag::FUNCTION_CALL_RESPONSE => {
                // A fastpath call's result has no description and no lineage: unknown, so
                // masked — the value becomes NULL.
                out.put_u8(tag::FUNCTION_CALL_RESPONSE);
                out.put_i32(8);
                out.put_i32(-1);
            }
            tag::COPY_OUT_RESPONSE | tag::COPY_BOTH_RESPONSE => {
                // Masking COPY text is not implemented yet: refuse rather than leak.
                self.refusing_copy = true;
                let mut err = codec::ErrorBuilder::error(
                    "42501",
                    "sod: COPY of masked data is not supported; use SELECT",
                );
                err.detail = Some("the policy decision for this statement masks its output".into());
                err.encode(out);
            }
            _ => frame.encode_into(out),
        }
    }

    fn finish(&mut self, skipped: bool) {
        self.outcome.skipped = skipped;
        self.outcome.duration = self.started.elapsed();
        for f in self.observers.drain(..) {
            f(&self.outcome);
        }
    }
}

/// The value count of a `DataRow` frame, read from its header (`usize::MAX` if it has none).
fn value_count(frame: &BackendFrame) -> usize {
    match frame.raw().get(5..7) {
        Some(&[a, b]) => usize::try_from(i16::from_be_bytes([a, b])).unwrap_or(usize::MAX),
        _ => usize::MAX,
    }
}

/// Masks one binary-format value. A masked column's value becomes NULL (a masked text in its
/// place would not be a valid value of most types). A scanned value (computed from nothing
/// sensitive) is scanned where its type allows: text types are their UTF-8 bytes; integers are
/// rendered and scanned, NULL if a detector finds something (a card number in a `bigint`);
/// booleans, floats, dates, times and UUIDs cannot hold what detectors look for; any other type
/// cannot be read here, so it becomes NULL (fail closed).
fn scan_binary(
    masker: &Masker,
    action: FieldAction,
    type_oid: u32,
    value: &[u8],
    buf: &mut Vec<u8>,
) -> Masked {
    if action != FieldAction::Scan {
        return Masked::Null;
    }
    match type_oid {
        // text, varchar, bpchar, name, json, xml, unknown: binary is the text itself.
        25 | 1043 | 1042 | 19 | 114 | 142 | 705 => match masker.apply(action, value, buf) {
            // A detector strategy of `null` blanks the text; keep it a valid text.
            Masked::Null => {
                buf.clear();
                Masked::Replaced
            }
            other => other,
        },
        // int2, int4, int8, oid: big-endian integers.
        21 | 23 | 20 | 26 => {
            let text = match *value {
                [a, b] => i16::from_be_bytes([a, b]).to_string(),
                [a, b, c, d] if type_oid == 26 => u32::from_be_bytes([a, b, c, d]).to_string(),
                [a, b, c, d] => i32::from_be_bytes([a, b, c, d]).to_string(),
                [a, b, c, d, e, f, g, h] => {
                    i64::from_be_bytes([a, b, c, d, e, f, g, h]).to_string()
                }
                _ => return Masked::Null,
            };
            match masker.apply(action, text.as_bytes(), buf) {
                Masked::Unchanged => Masked::Unchanged,
                _ => Masked::Null,
            }
        }
        // bool, float4, float8, date, time, timestamp, timestamptz, interval, uuid.
        16 | 700 | 701 | 1082 | 1083 | 1114 | 1184 | 1186 | 2950 => Masked::Unchanged,
        _ => Masked::Null,
    }
}

/// A provenance with what a data-modifying statement wrote added (`Err`: unknown).
fn with_written(p: Provenance, written: &Result<Vec<ColumnRef>, String>) -> Provenance {
    let Ok(written) = written else {
        return Provenance::Unknown;
    };
    let mut cols = match p {
        Provenance::Unknown => return Provenance::Unknown,
        Provenance::Constant => Vec::new(),
        Provenance::Column(c) => vec![c],
        Provenance::Aliases(cs) | Provenance::Derived(cs) => cs,
    };
    cols.extend(written.iter().cloned());
    Provenance::Derived(cols)
}

/// Refuses, for a session whose results are masked, a request whose rows depend on a masked
/// column or on something masking cannot trace: `WHERE email LIKE 'a%'` shows nothing of
/// `email`, but which rows come back (or how many) answers the question, one guess at a time.
fn check_rows(
    masker: &Masker,
    catalog: &CatalogSnapshot,
    analysis: &Analysis,
) -> Result<(), Refusal> {
    let refuse = |reason: String| {
        Err(Refusal::new(RefusalCode::PolicyDenied, reason).with_rule("sod-masked-rows"))
    };
    for stmt in &analysis.statements {
        if matches!(stmt.effect, SessionEffect::Listen { .. }) {
            // Notification payloads are whatever another session (or this one) sends:
            // masking cannot trace them.
            return refuse(
                "this session's results are masked, and notification payloads cannot be masked: LISTEN is refused".into(),
            );
        }
        let Some(l) = stmt.lineage.as_deref() else {
            if stmt.objects.is_empty() && stmt.functions.is_empty() {
                continue; // BEGIN, SET, SHOW, …: no data of any table
            }
            return refuse(format!(
                "this session's results are masked, and masking cannot follow what {} reads",
                stmt.tag
            ));
        };
        match catalog.columns_reached(&l.written) {
            Err(why) => {
                return refuse(format!(
                    "this session's results are masked, and this statement stores values masking cannot trace: {why}"
                ));
            }
            Ok(cols) => {
                if let Some(c) = cols.iter().find(|c| masker.is_sensitive(c)) {
                    return refuse(format!(
                        "this session's results are masked, and this statement would store values of masked column {}.{}.{} where they could be read unmasked",
                        c.schema, c.table, c.column
                    ));
                }
            }
        }
        match catalog.columns_reached(&l.rows) {
            Err(why) => {
                return refuse(format!(
                    "this session's results are masked, and which rows this statement returns depends on something masking cannot trace: {why}"
                ));
            }
            Ok(cols) => {
                if let Some(c) = cols.iter().find(|c| masker.is_sensitive(c)) {
                    return refuse(format!(
                        "this session's results are masked, and which rows this statement returns depends on masked column {}.{}.{} (in WHERE, JOIN, GROUP BY, HAVING, ORDER BY, DISTINCT, LIMIT or a subquery): the rows would reveal its values",
                        c.schema, c.table, c.column
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The error or notice of a statement whose output is masked, without the server's words.
///
/// PostgreSQL quotes values in its messages (`invalid input syntax for type integer:
/// "alice@example.com"`, `Key (email)=(…) already exists`, a `RAISE NOTICE` of anything), so
/// every text field could carry the very data masking hides. Only the severity and SQLSTATE
/// pass; the message says why the rest is withheld. Fails closed: nothing of the server's
/// text reaches a masked session.
fn scrub(frame: &BackendFrame, out: &mut BytesMut) {
    let (notice, fields) = match frame.parse() {
        Ok(BackendMessage::ErrorResponse(f)) => (false, f),
        Ok(BackendMessage::NoticeResponse(f)) => (true, f),
        _ => {
            // Unparseable: replace it with a generic message of the same kind, so a notice in
            // the middle of a result set does not turn into an error.
            let withheld =
                codec::ErrorBuilder::error("XX000", "sod: the server's message is withheld");
            if frame.tag() == tag::NOTICE_RESPONSE {
                withheld.encode_notice(out);
            } else {
                withheld.encode(out);
            }
            return;
        }
    };
    let severity = fields
        .severity()
        .and_then(codec::Severity::from_name)
        .unwrap_or(codec::Severity::Error);
    let code = fields.code().unwrap_or("XX000");
    let what = if notice { "notice" } else { "error" };
    let err = codec::ErrorBuilder::new(
        severity,
        code,
        format!(
            "sod: the server's {what} text is withheld because this statement's output is masked (SQLSTATE {code})"
        ),
    );
    if notice {
        err.encode_notice(out);
    } else {
        err.encode(out);
    }
}

/// Kinds a capability may allow and still get a read-only upstream session.
static READ_ONLY_KINDS: std::sync::LazyLock<sod_core::KindSet> = std::sync::LazyLock::new(|| {
    sod_core::KindSet::of(&[
        sod_core::OperationKind::Connect,
        sod_core::OperationKind::Read,
    ])
});

/// The innermost service of a session's stack: [`Request::commit`]s the request (authorize,
/// then write its audit record) and forwards it.
#[derive(Clone)]
pub struct PgUpstream {
    pub(crate) shared: Arc<SessionShared>,
}

impl tower::Service<Request<PgRequest>> for PgUpstream {
    type Response = PgResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<PgResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<PgRequest>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            // One snapshot for the request: the rows check and the masking of its results see
            // the same catalog.
            let snapshot = shared.snapshot();
            if let (Some(masker), RequestKind::Forward { shape, .. }) =
                (req.extensions().get::<Masker>(), &req.body().kind)
                && let Some(analysis) = &shape.analysis
            {
                check_rows(masker, &snapshot, analysis)?;
            }
            // The commit point: the last check before anything reaches the server (fails
            // closed if a layer is missing), and the audit record, durable before a byte goes
            // upstream (invariant I4).
            req.commit().await?;
            // A session whose capability only reads gets a read-only upstream session: the
            // server itself then refuses writes hidden where the analyzer cannot see (views,
            // row-level security policies, operators, casts, domains).
            let read_only = req
                .session()
                .identity()
                .and_then(|i| i.capability.as_ref())
                .is_some_and(|c| c.scope().kinds().is_subset(&READ_ONLY_KINDS));
            match req.into_body().kind {
                RequestKind::Connect => {
                    shared.open_upstream(read_only).await?;
                    Ok(PgResponse {
                        inner: ResponseInner::Connected,
                    })
                }
                RequestKind::Forward { messages, shape } => {
                    let link = shared.link().ok_or_else(|| {
                        Refusal::new(RefusalCode::Misconfigured, "the session is not connected")
                    })?;
                    let last = messages.len().saturating_sub(1);
                    let outgoing = messages
                        .iter()
                        .enumerate()
                        .map(|(i, (bytes, expect))| Outgoing {
                            bytes,
                            expect: *expect,
                            // The operation's own response is the last message; anything before
                            // it (a deferred Bind, an injected Describe) is the gateway's
                            // business, but its errors are the client's.
                            sink: if i == last {
                                Sink::Pending
                            } else {
                                Sink::Quiet
                            },
                            record: if i == last {
                                None
                            } else {
                                shape.describes.clone()
                            },
                        })
                        .collect();
                    let ids = link.send(outgoing)?;
                    let id = ids.last().copied().ok_or("nothing to send")?;
                    shared.note_registered(id);
                    Ok(PgResponse {
                        inner: ResponseInner::Slot {
                            id,
                            processor: Box::new(ResponseProcessor::new(
                                shape,
                                snapshot,
                                shared.gateway(),
                            )),
                        },
                    })
                }
            }
        })
    }
}

/// Remembers the slot the innermost service registered during one call, so the driver can tell
/// "refused before forwarding" from "failed after forwarding".
#[derive(Default)]
pub(crate) struct Registered(Mutex<Option<SlotId>>);

impl Registered {
    pub(crate) fn set(&self, id: SlotId) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    pub(crate) fn take(&self) -> Option<SlotId> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
