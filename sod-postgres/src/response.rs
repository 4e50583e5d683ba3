//! The response processor: what becomes of the server's answer to one operation on its way to
//! the client. It counts rows and reports the [`Outcome`]; for a masked session it plans
//! masking per result set from the column provenance — the statement's lineage and the server's
//! `RowDescription`, which must agree in count and provenance or the result set is withheld —
//! masks every `DataRow`, and withholds the server's error and notice text. What masking could
//! not protect was refused before forwarding ([`opacity`](crate::opacity)).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sod_core::audit::{Completion, CompletionStatus};
use sod_core::masking::{ColumnRef, Field, FieldAction, MaskPlan, Masked, Masker, Provenance};

use crate::catalog::CatalogSnapshot;
use crate::codec::{self, BackendFrame, BackendMessage, oid, tag};
use crate::router::{DescKey, Descriptions, Process};
use crate::shared::GatewayShared;
use crate::sql::Analysis;
use crate::sql::lineage::{Output, Ref};

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
    /// The masking of the current result set.
    result_set: ResultSet,
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
            result_set: ResultSet::Unplanned,
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

    /// Plans masking for a row description, once per result set. Each field's provenance is
    /// the stricter of two accounts: the statement's lineage (resolved through the catalog, `*`
    /// expanded to the relation's columns) and the server's (a field's table OID and attribute
    /// number, resolved through the column catalog: tables, inherited columns, views). `Err`
    /// says why the result set must be withheld: a different number of columns than the
    /// statement has, or a field the server attributes to a column the lineage does not read —
    /// masks are never mapped by position onto columns the analysis did not place.
    fn plan_for(&self, masker: &Masker, desc: &BackendFrame) -> Result<Planned, String> {
        let Ok(BackendMessage::RowDescription(rd)) = desc.parse() else {
            return Err("the server's row description cannot be read".into());
        };
        let columns = &self.catalog.columns;
        let outputs = self
            .shape
            .analysis
            .as_ref()
            .and_then(|a| a.statements.get(self.statement))
            .and_then(|s| s.lineage.as_deref())
            .and_then(|l| l.outputs.as_deref());
        let expected = outputs.map(|o| self.expand(o)).transpose()?;
        let count = rd.fields().count();
        if let Some(expected) = &expected
            && expected.len() != count
        {
            return Err(format!(
                "the server sent {count} column(s) where the statement has {}",
                expected.len()
            ));
        }
        let mut fields = Vec::with_capacity(count);
        let mut formats = Vec::with_capacity(count);
        let mut unknown_table = false;
        for (i, f) in rd.fields().enumerate() {
            let ours = expected.as_ref().and_then(|e| e.get(i)).map(|o| {
                let (refs, computed) = match o {
                    Output::Value(r) => (r, false),
                    Output::Computed(r) => (r, true),
                    Output::Star { .. } | Output::Unknown => return Provenance::Unknown,
                };
                match (self.catalog.columns_reached(refs), computed) {
                    (Err(_), _) => Provenance::Unknown,
                    (Ok(cols), true) => Provenance::Derived(cols),
                    (Ok(cols), false) => value(cols),
                }
            });
            let theirs = (f.table_oid != 0).then(|| {
                unknown_table |= !columns.knows(f.table_oid);
                columns.provenance(f.table_oid, f.column)
            });
            if let (Some(ours), Some(theirs)) = (&ours, &theirs)
                && !agree(ours, theirs)
            {
                return Err(format!(
                    "the server attributes column {} (\"{}\") to a table column the statement's analysis does not place there",
                    i + 1,
                    f.name
                ));
            }
            let provenance = if is_tableoid(expected.as_ref().and_then(|e| e.get(i)), &f) {
                // A table's OID (pg_dump identifies catalog rows by it): no table data.
                Provenance::Derived(Vec::new())
            } else {
                match (ours, theirs) {
                    (Some(a), Some(b)) => stricter(a, b),
                    (Some(p), None) | (None, Some(p)) => p,
                    (None, None) => Provenance::Unknown,
                }
            };
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
        Ok((masker.plan(&fields), formats))
    }

    /// Whether a `COPY … TO STDOUT` may pass unmasked: its statement's lineage places every
    /// column the server copies (as many as the `CopyOutResponse` announces), and the mask
    /// plan keeps each as it is — a table column no rule masks, or a constant. A masked
    /// column, a computed one (which detectors would scan) or one of unknown provenance
    /// refuses it; `Err` says which. COPY has no row description, so the lineage is the only
    /// account.
    fn copy_allowed(&self, masker: &Masker, frame: &BackendFrame) -> Result<(), String> {
        let Ok(BackendMessage::CopyOutResponse(copy)) = frame.parse() else {
            return Err("only COPY TO STDOUT is supported".into());
        };
        let outputs = self
            .shape
            .analysis
            .as_ref()
            .and_then(|a| a.statements.get(self.statement))
            .and_then(|s| s.lineage.as_deref())
            .and_then(|l| l.outputs.as_deref())
            .ok_or("the gateway cannot tell where its columns come from")?;
        let expected = self.expand(outputs)?;
        let count = copy.column_formats.len();
        if expected.len() != count {
            return Err(format!(
                "the server copies {count} column(s) where the statement has {}",
                expected.len()
            ));
        }
        let fields: Vec<Field> = expected
            .iter()
            .map(|o| {
                let provenance = match o {
                    Output::Value(r) => self
                        .catalog
                        .columns_reached(r)
                        .map_or(Provenance::Unknown, value),
                    Output::Computed(r) => self
                        .catalog
                        .columns_reached(r)
                        .map_or(Provenance::Unknown, Provenance::Derived),
                    Output::Star { .. } | Output::Unknown => Provenance::Unknown,
                };
                Field::new("", provenance)
            })
            .collect();
        let plan = masker.plan(&fields);
        for (i, f) in fields.iter().enumerate() {
            match (plan.action(i), &f.provenance) {
                (FieldAction::Keep, _) => {}
                (FieldAction::Mask(_), Provenance::Column(c)) => {
                    return Err(format!(
                        "column {} ({}.{}.{}) is masked",
                        i + 1,
                        c.schema,
                        c.table,
                        c.column
                    ));
                }
                (FieldAction::Mask(_), Provenance::Unknown) => {
                    return Err(format!(
                        "the gateway cannot tell where column {} comes from",
                        i + 1
                    ));
                }
                (FieldAction::Mask(_), _) => {
                    return Err(format!("column {} is computed from masked columns", i + 1));
                }
                (FieldAction::Scan, _) => {
                    return Err(format!(
                        "column {} is computed, and computed values are scanned for sensitive data, which COPY's stream is not",
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// The lineage's outputs with every `*` expanded to its relation's columns.
    fn expand(&self, outputs: &[Output]) -> Result<Vec<Output>, String> {
        let mut out = Vec::with_capacity(outputs.len());
        for o in outputs {
            match o {
                Output::Star { relation, except } => {
                    let cols = self.catalog.star(relation, except).ok_or_else(|| {
                        format!("the columns of {relation} cannot be counted (not in the catalog)")
                    })?;
                    out.extend(cols.into_iter().map(|r| Output::Value(vec![r])));
                }
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }

    /// Drops the current result set, with an error in place of its row description. The
    /// catalog is reloaded soon after: a disagreement most often means a table changed behind
    /// the gateway's back (a column added), and the statement works again once it is known.
    fn withhold(&mut self, why: &str, out: &mut BytesMut) {
        self.gateway.catalog.invalidate_unless_young();
        self.result_set = ResultSet::Withheld;
        let mut err = codec::ErrorBuilder::error(
            crate::error::REFUSED,
            format!("sod: this result is withheld: {why}"),
        );
        err.detail = Some(format!(
            "refusal: policy_denied; rule: {}; masks are applied only to columns the gateway placed, never by position",
            crate::opacity::RULE
        ));
        err.encode(out);
    }

    fn mask_row(&mut self, masker: &Masker, frame: &BackendFrame, out: &mut BytesMut) {
        // No plan (no row description known): the empty plan masks every value.
        let empty = (MaskPlan::default(), Vec::new());
        let (plan, columns) = match &self.result_set {
            ResultSet::Planned(plan) => (&plan.0, &plan.1),
            _ => (&empty.0, &empty.1),
        };
        mask_data_row(masker, plan, columns, frame, &mut self.buf, out);
    }
}

/// A result set's mask plan and each column's format and type.
type Planned = (MaskPlan, Vec<(i16, u32)>);

/// Where the current result set of a masked response is.
enum ResultSet {
    /// No row description yet.
    Unplanned,
    Planned(Planned),
    /// The statement's analysis and the server disagree about its columns: its rows are
    /// dropped (the client got an error in place of the row description).
    Withheld,
}

/// The provenance of a value passed through unchanged from one of `cols`.
fn value(mut cols: Vec<ColumnRef>) -> Provenance {
    match cols.len() {
        0 => Provenance::Unknown,
        1 => cols.pop().map_or(Provenance::Unknown, Provenance::Column),
        _ => Provenance::Aliases(cols),
    }
}

/// `TableOidAttributeNumber` in PostgreSQL's `sysattr.h`.
const TABLEOID_ATTNUM: i16 = -6;

/// Whether a field is the system column `tableoid` of a table, by both accounts: the statement
/// (a plain reference to a column named `tableoid`, which no user column may be called) and
/// the server (the field is attribute `tableoid` of a table). Its value is that table's OID.
fn is_tableoid(ours: Option<&Output>, field: &codec::backend::FieldDescription<'_>) -> bool {
    field.table_oid != 0
        && field.column == TABLEOID_ATTNUM
        && matches!(ours, Some(Output::Value(refs)) if !refs.is_empty()
            && refs.iter().all(|r| matches!(r, Ref::Column { column, .. } if column == "tableoid")))
}

/// The columns a provenance names (`None` for unknown).
fn columns_of(p: &Provenance) -> Option<&[ColumnRef]> {
    match p {
        Provenance::Column(c) => Some(std::slice::from_ref(c)),
        Provenance::Aliases(cs) | Provenance::Derived(cs) => Some(cs),
        Provenance::Constant => Some(&[]),
        Provenance::Unknown => None,
    }
}

/// Whether the lineage's account of a field (`ours`) fits the server's attribution of it to a
/// table column (`theirs`): they share a column, or one of them cannot tell.
fn agree(ours: &Provenance, theirs: &Provenance) -> bool {
    match (columns_of(ours), columns_of(theirs)) {
        (Some(a), Some(b)) => a.iter().any(|c| b.contains(c)),
        _ => true,
    }
}

/// The stricter of two accounts of one field: unknown if either is; computed if either is; a
/// column known under every name either gives otherwise.
fn stricter(a: Provenance, b: Provenance) -> Provenance {
    let derived = matches!(a, Provenance::Derived(_)) || matches!(b, Provenance::Derived(_));
    let (Some(x), Some(y)) = (columns_of(&a), columns_of(&b)) else {
        return Provenance::Unknown;
    };
    let mut cols: Vec<ColumnRef> = x.to_vec();
    for c in y {
        if !cols.contains(c) {
            cols.push(c.clone());
        }
    }
    if derived {
        Provenance::Derived(cols)
    } else if cols.is_empty() {
        Provenance::Constant
    } else {
        value(cols)
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
            (Some(v), action) => mask_text(masker, action, type_oid, v, buf),
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

/// Masks a text-format value. A replacement is text (`****`, `…1234`, `h:…`), which only a
/// text type can hold: a masked `integer`, `date` or array that came back as `****` would make
/// the client's driver fail to read the whole row. Values of other types become NULL, as in
/// binary format — valid for every type, and revealing nothing.
fn mask_text(
    masker: &Masker,
    action: FieldAction,
    type_oid: u32,
    value: &[u8],
    buf: &mut Vec<u8>,
) -> Masked {
    match masker.apply(action, value, buf) {
        Masked::Replaced if !oid::TEXT_LIKE.contains(&type_oid) => Masked::Null,
        other => other,
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
        if matches!(self.result_set, ResultSet::Withheld) {
            match t {
                tag::DATA_ROW => return,
                // The end of the withheld result set: the client already has its error.
                tag::COMMAND_COMPLETE | tag::PORTAL_SUSPENDED | tag::EMPTY_QUERY_RESPONSE => {
                    self.result_set = ResultSet::Unplanned;
                    return;
                }
                _ => self.result_set = ResultSet::Unplanned,
            }
        }
        match t {
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE => scrub(&frame, out),
            tag::ROW_DESCRIPTION => match self.plan_for(&masker, &frame) {
                Ok(plan) => {
                    self.result_set = ResultSet::Planned(plan);
                    frame.encode_into(out);
                }
                Err(why) => self.withhold(&why, out),
            },
            tag::DATA_ROW => {
                if matches!(self.result_set, ResultSet::Unplanned) {
                    let desc = self
                        .shape
                        .describes
                        .as_ref()
                        .and_then(|k| descriptions.get(k));
                    if let Some(d) = desc {
                        match self.plan_for(&masker, d) {
                            Ok(plan) => self.result_set = ResultSet::Planned(plan),
                            Err(why) => return self.withhold(&why, out),
                        }
                    }
                }
                self.mask_row(&masker, &frame, out);
            }
            tag::COMMAND_COMPLETE | tag::PORTAL_SUSPENDED | tag::EMPTY_QUERY_RESPONSE => {
                self.result_set = ResultSet::Unplanned;
                frame.encode_into(out);
            }
            tag::FUNCTION_CALL_RESPONSE => {
                // A fastpath call's result has no description and no lineage: unknown, so
                // masked — the value becomes NULL (which cannot fail to encode).
                let _ = codec::backend::function_call_response(out, None);
            }
            tag::COPY_OUT_RESPONSE | tag::COPY_BOTH_RESPONSE => {
                match self.copy_allowed(&masker, &frame) {
                    Ok(()) => frame.encode_into(out),
                    Err(why) => {
                        // COPY's stream is not masked: it passes only when masking would
                        // change nothing in it.
                        self.refusing_copy = true;
                        let mut err = codec::ErrorBuilder::error(
                            "42501",
                            format!(
                                "sod: COPY TO STDOUT is refused in this masked session: {why}; SELECT returns it masked"
                            ),
                        );
                        err.detail = Some(format!(
                            "refusal: policy_denied; rule: {}; COPY passes in a masked session only when every column it copies is one no mask applies to",
                            crate::opacity::RULE
                        ));
                        err.encode(out);
                    }
                }
            }
            _ => frame.encode_into(out),
        }
    }

    fn finish(&mut self, skipped: bool) {
        self.result_set = ResultSet::Unplanned;
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

/// Masks one binary-format value. A masked column's value becomes its masked text when it is
/// a string (`text`, `varchar`, `char`, `name`: binary is the text), otherwise NULL (a masked
/// text in its place would not be a valid value of most types). A scanned value (computed from nothing
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
        // A string's binary form is its text: the masked text is a valid value (sqlx and
        // other binary-format clients read a masked e-mail as text, not as a NULL that a
        // non-null column cannot hold). Other types become NULL.
        return match type_oid {
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => {
                match masker.apply(action, value, buf) {
                    Masked::Unchanged => Masked::Null,
                    other => other,
                }
            }
            _ => Masked::Null,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn col(c: &str) -> ColumnRef {
        ColumnRef::new("public", "t", c)
    }

    #[test]
    fn the_two_accounts_must_share_a_column() {
        let email = Provenance::Column(col("email"));
        let view = Provenance::Derived(vec![col("email"), col("id")]);
        assert!(agree(&email, &view));
        assert!(!agree(&Provenance::Column(col("id")), &email));
        // A constant the server attributes to a table: the analysis placed it elsewhere.
        assert!(!agree(&Provenance::Derived(Vec::new()), &email));
        // Unknown on either side cannot be checked, and masks anyway.
        assert!(agree(&Provenance::Unknown, &email));
    }

    #[test]
    fn the_stricter_account_wins() {
        let email = Provenance::Column(col("email"));
        assert_eq!(stricter(email.clone(), email.clone()), email);
        assert_eq!(
            stricter(email.clone(), Provenance::Column(col("email2"))),
            Provenance::Aliases(vec![col("email"), col("email2")])
        );
        assert_eq!(
            stricter(email.clone(), Provenance::Derived(vec![col("id")])),
            Provenance::Derived(vec![col("email"), col("id")])
        );
        assert_eq!(stricter(email, Provenance::Unknown), Provenance::Unknown);
        assert_eq!(value(Vec::new()), Provenance::Unknown);
    }
}
