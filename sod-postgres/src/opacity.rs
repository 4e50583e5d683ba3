//! In a masked session a masked column is opaque: it may be an output, returned masked, or the
//! argument of an aggregate whose result reveals nothing of its values
//! ([`OPAQUE_AGGREGATES`](crate::sql::lineage::OPAQUE_AGGREGATES)), and nothing else.
//!
//! [`check`] runs in the innermost service, for requests whose policy decision masks results,
//! before the request is committed and forwarded. It resolves every place the statement reads
//! table data ([`Use`](crate::sql::lineage::Use)) through the session's catalog snapshot and
//! refuses the request if one may be a masked column — naming the column and the place — or
//! cannot be traced at all. That one rule closes, by construction rather than one by one, the
//! ways a masked value could decide what the client observes: row counts (a filter, a join, a
//! set-returning function), errors (a failing cast or division), timing (an expensive branch),
//! ordering (`ORDER BY`, a window), equality (`DISTINCT`, `UNION`, `GROUP BY`), and values
//! stored where they could be read unmasked.
//!
//! Statements that change a table with a masked column are refused too: the server evaluates
//! that table's constraints, unique indexes and triggers on whole rows, so whether such a write
//! succeeds can depend on the masked values.

use sod_core::masking::Masker;
use sod_core::{Refusal, RefusalCode};

use crate::catalog::CatalogSnapshot;
use crate::sql::lineage::{Clause, Ref};
use crate::sql::{Analysis, SessionEffect};

/// The rule every refusal of this module names.
pub(crate) const RULE: &str = "sod-masked-columns";

/// Refuses `analysis` for a session whose results `masker` masks, unless every masked column
/// it reads is only an output or an opaque aggregate's argument (see the module docs).
pub(crate) fn check(
    masker: &Masker,
    catalog: &CatalogSnapshot,
    analysis: &Analysis,
) -> Result<(), Refusal> {
    let refuse = |reason: String| {
        Err(Refusal::new(
            RefusalCode::PolicyDenied,
            format!("this session's results are masked, and {reason}"),
        )
        .with_rule(RULE))
    };
    for stmt in &analysis.statements {
        if matches!(stmt.effect, SessionEffect::Listen { .. }) {
            // Notification payloads are whatever another session (or this one) sends: masking
            // cannot trace them.
            return refuse("notification payloads cannot be masked: LISTEN is refused".into());
        }
        let Some(lineage) = stmt.lineage.as_deref() else {
            if stmt.objects.is_empty() && stmt.functions.is_empty() {
                continue; // BEGIN, SET, SHOW, …: no data of any table
            }
            return refuse(format!("masking cannot follow what {} reads", stmt.tag));
        };
        if let Some(why) = &lineage.untraceable {
            return refuse(format!(
                "masking cannot place everything this statement reads: {why}"
            ));
        }
        for table in &lineage.writes {
            match catalog.masked_column_of(table, |c| masker.is_sensitive(c)) {
                Ok(None) => {}
                Ok(Some(c)) => {
                    return refuse(format!(
                        "{} changes {}.{}, which has masked column {}: the server checks its constraints, indexes and triggers on whole rows, so whether the change succeeds could reveal masked values",
                        stmt.tag, c.schema, c.table, c.column
                    ));
                }
                Err(why) => {
                    return refuse(format!(
                        "{} changes {table}, whose columns masking cannot check: {why}",
                        stmt.tag
                    ));
                }
            }
        }
        for u in &lineage.uses {
            match masked_use(masker, catalog, &u.refs) {
                Ok(None) => {}
                Ok(Some(what)) => {
                    return refuse(format!(
                        "{what} is used {}: a masked column may only be returned (masked) or counted; {}",
                        u.position,
                        hint(u.position.clause)
                    ));
                }
                Err(why) => {
                    return refuse(format!(
                        "{} is used {}, and masking cannot trace it: {why}",
                        shown(&u.refs),
                        u.position
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What of `refs` may be a masked column, as the person who wrote the statement would recognise
/// it: `masked column public.customers.ssn`, `v.x (masked column public.customers.ssn)` through
/// a view, `a whole row of customers (with masked column public.customers.ssn)`; or why the
/// references cannot be traced.
fn masked_use(
    masker: &Masker,
    catalog: &CatalogSnapshot,
    refs: &[Ref],
) -> Result<Option<String>, String> {
    for r in refs {
        let cols = catalog.columns_reached(std::slice::from_ref(r))?;
        let Some(c) = cols.iter().find(|c| masker.is_sensitive(c)) else {
            continue;
        };
        let masked = format!("masked column {}.{}.{}", c.schema, c.table, c.column);
        return Ok(Some(match r {
            Ref::Column {
                relation, column, ..
            } if *column == c.column && relation.name == c.table => masked,
            Ref::Column {
                relation, column, ..
            } => format!("{relation}.{column} ({masked})"),
            Ref::Whole(relation) => format!("a whole row of {relation} (with {masked})"),
        }));
    }
    Ok(None)
}

/// What to write instead, for a masked column found in `clause`.
fn hint(clause: Clause) -> &'static str {
    match clause {
        Clause::Output => "return the column itself and compute on the client",
        Clause::Where | Clause::Join | Clause::Having => {
            "filter and join on columns that are not masked (a key, an id)"
        }
        Clause::GroupBy | Clause::Distinct | Clause::SetOperation => {
            "group or deduplicate by columns that are not masked (the table's key), and select the masked column without grouping by it"
        }
        Clause::Window | Clause::OrderBy => "order and partition by columns that are not masked",
        Clause::Limit | Clause::FromFunction | Clause::Sample => {
            "use constants or columns that are not masked there"
        }
        Clause::Stored => "masked values cannot be copied into tables",
    }
}

/// References as a person reads them: `customers.email`, `customers.*`.
fn shown(refs: &[Ref]) -> String {
    let names: Vec<String> = refs
        .iter()
        .map(|r| match r {
            Ref::Column {
                relation, column, ..
            } => format!("{relation}.{column}"),
            Ref::Whole(relation) => format!("{relation}.*"),
        })
        .collect();
    names.join(" or ")
}
