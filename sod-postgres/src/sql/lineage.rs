//! Lineage: which columns each output column of a statement is computed from, and which
//! columns decide what rows come back — as the SQL text says, before any name is resolved.
//!
//! PostgreSQL's `RowDescription` names the table and column of an output that *is* a column;
//! for everything else (`lower(email)`, `row_to_json(c)`, `count(*)`, a `UNION`, a column of a
//! subquery that computes it) it says nothing. A [`Lineage`] fills that gap: the analyzer walks
//! the statement's tree, following aliases, subqueries, CTEs, joins, set operations and
//! function arguments, and records for each output the columns and whole rows it may read.
//! The gateway resolves the names through its catalog when a result arrives and masks every
//! computed column that can reach a sensitive one.
//!
//! Everything here over-approximates (fail closed): an unqualified column name may come from
//! any relation in scope, so it counts for each that has such a column; a whole-row reference
//! counts as every column; an output that cannot be told apart from others counts as all of
//! them. What cannot be followed at all — a function the analyzer does not know (it may read
//! any table), a cast to a type that is not built in, a node type the walk does not model — is
//! *undecided*, and an undecided output is masked.
//!
//! The [rows](Lineage) part covers what masking values cannot: `WHERE email LIKE 'a%'` lets
//! the *number* of rows (or which ids come back) reveal `email`, one question at a time. A
//! session whose results are masked is refused a statement whose rows depend on a sensitive
//! (or undecided) column.

use super::ObjectName;

/// Where a statement's outputs come from, and what decides its rows. Built by the analyzer
/// ([`Statement::lineage`](super::Statement::lineage)); resolved by the gateway against its
/// catalog.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Lineage {
    /// The outputs; `None` when this statement's result columns are not its query's (an
    /// `EXPLAIN`, a `DECLARE`, a `PREPARE`: only the rows part applies).
    pub(crate) outputs: Option<Outputs>,
    /// What decides which rows come back (or how many are affected): `WHERE`, `JOIN … ON`,
    /// `GROUP BY`, `HAVING`, `ORDER BY`, `DISTINCT`, `LIMIT`, window clauses, and the same of
    /// every subquery in `FROM` and `WITH`.
    pub(crate) rows: Reach,
    /// What the values a data-modifying statement writes reach: its `RETURNING` shows them
    /// under the target's own column names, so they count for every output.
    pub(crate) written: Reach,
}

impl Lineage {
    /// How many output columns the lineage describes one by one, if it can count them (a
    /// `*` in the select list makes it describe all outputs together).
    ///
    /// ```
    /// use sod_postgres::sql::{Analyzer, PgQueryAnalyzer};
    ///
    /// let a = PgQueryAnalyzer::new().analyze("SELECT lower(email), count(*) FROM customers GROUP BY 1");
    /// let lineage = a.statements[0].lineage.as_ref().expect("a SELECT has a lineage");
    /// assert_eq!(lineage.output_count(), Some(2));
    /// ```
    pub fn output_count(&self) -> Option<usize> {
        match &self.outputs {
            Some(Outputs::Each(each)) => Some(each.len()),
            _ => None,
        }
    }
}

/// The outputs of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outputs {
    /// One reach per output column, in order.
    Each(Vec<Reach>),
    /// The outputs could not be counted (a `*`): every output may reach all of this.
    All(Reach),
}

impl Outputs {
    /// Everything any output reaches.
    pub(crate) fn union(&self) -> Reach {
        match self {
            Outputs::Each(each) => {
                let mut all = Reach::default();
                for r in each {
                    all.absorb(r.clone());
                }
                all
            }
            Outputs::All(all) => all.clone(),
        }
    }
}

/// What one value (or one statement's rows) may read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Reach {
    /// Columns and whole rows, without duplicates.
    pub(crate) refs: Vec<Ref>,
    /// Why it cannot be followed, if it cannot (then it may read anything).
    pub(crate) undecided: Option<String>,
}

impl Reach {
    /// A reach that cannot be followed.
    pub(crate) fn undecided(why: impl Into<String>) -> Self {
        Self {
            refs: Vec::new(),
            undecided: Some(why.into()),
        }
    }

    /// Adds one reference.
    pub(crate) fn add(&mut self, r: Ref) {
        if !self.refs.contains(&r) {
            self.refs.push(r);
        }
    }

    /// Adds everything `other` reaches.
    pub(crate) fn absorb(&mut self, other: Reach) {
        if self.undecided.is_none() {
            self.undecided = other.undecided;
        }
        for r in other.refs {
            self.add(r);
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
