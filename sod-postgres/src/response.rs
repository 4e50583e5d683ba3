//! The response processor: what becomes of the server's answer to one operation on its way to
//! the client. It counts rows and reports the [`Outcome`]; for a masked session it plans
//! masking per result set from the column provenance (the server's `RowDescription` and the
//! statement's lineage), masks every `DataRow`, and withholds the server's error and notice
//! text. The rows check ([`check_rows`]) refuses, before forwarding, what masking could not
//! protect.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sod_core::audit::{Completion, CompletionStatus};
use sod_core::masking::{ColumnRef, Field, FieldAction, MaskPlan, Masked, Masker, Provenance};
use sod_core::{Refusal, RefusalCode};

use crate::catalog::CatalogSnapshot;
use crate::codec::{self, BackendFrame, BackendMessage, oid, tag};
use crate::router::{DescKey, Descriptions, Process};
use crate::shared::GatewayShared;
use crate::sql::lineage::{Outputs, Reach};
use crate::sql::{Analysis, SessionEffect};

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

/// Called with the outcome when a response is over.
pub(crate) type Observer = Box<dyn FnOnce(&Outcome) + Send>;

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
    /// A processor for results of `shape`, resolving columns through `catalog`.
    pub(crate) fn new(
        shape: ResultShape,
        catalog: Arc<CatalogSnapshot>,
        gateway: Arc<GatewayShared>,
    ) -> Self {
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

    /// Masks the results with `masker` (unless it masks nothing).
    pub(crate) fn mask_with(&mut self, masker: Masker) {
        self.masker = Some(masker).filter(|m| !m.is_noop());
    }

    /// Whether the results are masked.
    pub(crate) fn is_masked(&self) -> bool {
        self.masker.is_some()
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
/// parseable `DataRow`) too. A masked row is re-encoded value by value
/// ([`DataRowWriter`](codec::DataRowWriter)); `buf` is scratch space for replacements, reused
/// from row to row. A row that cannot be read or re-encoded is withheld with an error (I6).
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
            withhold_row(out);
        } else {
            frame.encode_into(out);
        }
        return;
    };
    let mut masked_row = codec::DataRowWriter::new(out);
    for (i, value) in row.values().enumerate() {
        let (format, type_oid) = columns.get(i).copied().unwrap_or((0, 0));
        let masked = match (value, plan.action(i)) {
            (None, _) => Masked::Null,
            (Some(_), FieldAction::Keep) => Masked::Unchanged,
            (Some(v), action) if format == 1 => scan_binary(masker, action, type_oid, v, buf),
            (Some(v), action) => masker.apply(action, v, buf),
        };
        let written = match (masked, value) {
            (Masked::Unchanged, Some(v)) => masked_row.value(Some(v)),
            (Masked::Replaced, _) => masked_row.value(Some(buf)),
            _ => masked_row.value(None),
        };
        if written.is_err() {
            break;
        }
    }
    if masked_row.finish().is_err() {
        withhold_row(out);
    }
}

/// The error in place of a row that cannot be masked: withheld, never passed (I6).
fn withhold_row(out: &mut BytesMut) {
    codec::ErrorBuilder::error("XX000", "sod: a malformed row from the server is withheld")
        .encode(out);
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
                // masked — the value becomes NULL (which cannot fail to encode).
                let _ = codec::backend::function_call_response(out, None);
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
        // Binary is the text itself.
        t if oid::TEXT_LIKE.contains(&t) => match masker.apply(action, value, buf) {
            // A detector strategy of `null` blanks the text; keep it a valid text.
            Masked::Null => {
                buf.clear();
                Masked::Replaced
            }
            other => other,
        },
        // Big-endian integers: rendered, then scanned.
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            let text = match *value {
                [a, b] => i16::from_be_bytes([a, b]).to_string(),
                [a, b, c, d] if type_oid == oid::OID => {
                    u32::from_be_bytes([a, b, c, d]).to_string()
                }
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
        t if oid::CANNOT_HOLD_TEXT.contains(&t) => Masked::Unchanged,
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
pub(crate) fn check_rows(
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
