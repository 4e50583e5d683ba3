//! Lineage: where each output of a statement comes from, and every other place the statement
//! reads table data — as the SQL text says, before any name is resolved.
//!
//! It serves one rule, checked for sessions whose results are masked: **a masked column is
//! opaque**. Its value may reach the client only as an output, unchanged (and then masked), or
//! as the argument of an aggregate whose result reveals nothing of the values
//! ([`OPAQUE_AGGREGATES`]). Anywhere else — in a function, operator, cast or `CASE`, in `WHERE`,
//! a join condition, `GROUP BY`, `HAVING`, a window, `ORDER BY`, `DISTINCT`, `LIMIT`, a set
//! operation that compares rows, a set-returning function, a subquery that feeds any of these,
//! or stored by a write — its value could decide something the client observes: how many rows
//! come back and in which order, whether the statement fails, how long it takes. Instead of
//! following values through each construct and refusing the oracles someone thought of, the
//! analyzer records *where* each reference stands (a *use*) and the gateway refuses every one
//! that may resolve to a masked column.
//!
//! Everything here over-approximates (fail closed): an unqualified column name may come from any
//! relation in scope, so it counts for each that has such a column; a whole-row reference counts
//! as every column. What cannot be placed at all — a function the analyzer does not know (it may
//! read any table), a cast to a type that is not built in, star expansion of a row value, a node
//! type the walk does not model — makes the statement [untraceable](Lineage::untraceable), and a
//! masked session refuses it.

use super::ObjectName;

/// Aggregates whose result reveals nothing of a masked argument's values: `count(col)` counts
/// the rows where `col` is not NULL, and a masked output already shows which values are NULL
/// (masking keeps NULL as NULL). `count(DISTINCT col)` compares values and is not allowed, nor
/// is any aggregate with `FILTER`, `ORDER BY` or `WITHIN GROUP` over a masked column.
pub const OPAQUE_AGGREGATES: &[&str] = &["count"];

/// Where a statement's outputs come from and where else it reads table data. Built by the
/// analyzer ([`Statement::lineage`](super::Statement::lineage)); resolved by the gateway against
/// its catalog.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Lineage {
    /// The outputs, in order; `None` when this statement's result columns are not its query's
    /// (an `EXPLAIN`, a `DECLARE`, a `PREPARE`: only the uses apply).
    pub(crate) outputs: Option<Vec<Output>>,
    /// Every reference to table data that is not an output passed through unchanged.
    pub(crate) uses: Vec<Use>,
    /// Relations the statement changes (`INSERT`, `UPDATE`, `DELETE`, `MERGE`): the server
    /// evaluates their constraints, indexes and triggers on whole rows, masked columns included.
    pub(crate) writes: Vec<ObjectName>,
    /// Why the statement cannot be placed, if it cannot.
    pub(crate) untraceable: Option<String>,
}

impl Lineage {
    /// How many output columns the lineage describes, if it can count them without the
    /// catalog (`*` over a table is counted by the catalog).
    ///
    /// ```
    /// use sod_postgres::sql::{Analyzer, PgQueryAnalyzer};
    ///
    /// let a = PgQueryAnalyzer::new().analyze("SELECT lower(name), count(*) FROM customers GROUP BY 1");
    /// let lineage = a.statements[0].lineage.as_ref().expect("a SELECT has a lineage");
    /// assert_eq!(lineage.output_count(), Some(2));
    /// ```
    pub fn output_count(&self) -> Option<usize> {
        let outputs = self.outputs.as_ref()?;
        outputs
            .iter()
            .all(|o| !matches!(o, Output::Star { .. }))
            .then_some(outputs.len())
    }

    /// Why the statement cannot be placed, if it cannot (see the [module docs](self)).
    pub fn untraceable(&self) -> Option<&str> {
        self.untraceable.as_deref()
    }
}

/// One output of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// A value passed through unchanged: a column, or a whole row (through subqueries, CTEs
    /// and scalar subqueries). Several references when the walk cannot tell which one it is.
    Value(Vec<Ref>),
    /// A value computed from these (each of them is also recorded as a [`Use`]).
    Computed(Vec<Ref>),
    /// A value masking cannot trace that reads no table data (a setting's value): masked as
    /// unknown.
    Unknown,
    /// Every column of a relation, in order, but those named in `except` (`*`, `t.*`,
    /// `TABLE t`; a `USING` join shows its columns once, first): the catalog counts them.
    Star {
        relation: ObjectName,
        except: Vec<String>,
    },
}

/// A reference to table data that stands somewhere other than a plain output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Use {
    /// What it may be (several when an unqualified name may come from several relations).
    pub(crate) refs: Vec<Ref>,
    /// Where it stands.
    pub(crate) position: Position,
}

/// Where a [`Use`] stands: the clause, and the innermost construct around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) clause: Clause,
    /// `lower()`, `operator ~~`, `CASE`, `a cast to int4`, `a subquery`, …; `None` when the
    /// reference is the clause's expression itself (`ORDER BY email`).
    pub(crate) within: Option<String>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.clause.describe())?;
        if let Some(within) = &self.within {
            write!(f, " (in {within})")?;
        }
        Ok(())
    }
}

/// The clauses a [`Use`] can stand in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clause {
    /// A computed output (select list, `RETURNING`, `VALUES`).
    Output,
    Where,
    Join,
    GroupBy,
    Having,
    Window,
    OrderBy,
    Distinct,
    Limit,
    /// `UNION`, `INTERSECT`, `EXCEPT` (not `UNION ALL`): the outputs are compared.
    SetOperation,
    /// A function in `FROM` (its arguments).
    FromFunction,
    /// `TABLESAMPLE` arguments.
    Sample,
    /// Values a data-modifying statement stores (`SET`, `INSERT … SELECT`, `ON CONFLICT`,
    /// `SELECT INTO`, `CREATE TABLE AS`).
    Stored,
}

impl Clause {
    fn describe(self) -> &'static str {
        match self {
            Clause::Output => "in a computed output",
            Clause::Where => "in WHERE",
            Clause::Join => "in a join condition",
            Clause::GroupBy => "in GROUP BY",
            Clause::Having => "in HAVING",
            Clause::Window => "in a window's PARTITION BY or ORDER BY",
            Clause::OrderBy => "in ORDER BY",
            Clause::Distinct => "in DISTINCT",
            Clause::Limit => "in LIMIT or OFFSET",
            Clause::SetOperation => "in a set operation that compares rows",
            Clause::FromFunction => "as the argument of a function in FROM",
            Clause::Sample => "in TABLESAMPLE",
            Clause::Stored => "in a value the statement stores",
        }
    }
}

/// A reference to table data, by name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ref {
    /// `column` of `relation`. Unless `certain`, the relation may have no such column (an
    /// unqualified name is tried against every relation in scope), and then it counts for
    /// nothing.
    Column {
        relation: ObjectName,
        column: String,
        certain: bool,
    },
    /// Every column of `relation` (a whole-row reference or `*`).
    Whole(ObjectName),
}

/// Adds `r` to `refs` unless it is there.
pub(crate) fn add(refs: &mut Vec<Ref>, r: Ref) {
    if !refs.contains(&r) {
        refs.push(r);
    }
}

/// Adds every reference of `more` to `refs`.
pub(crate) fn absorb(refs: &mut Vec<Ref>, more: impl IntoIterator<Item = Ref>) {
    for r in more {
        add(refs, r);
    }
}
