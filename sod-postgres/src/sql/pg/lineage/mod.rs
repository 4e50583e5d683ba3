//! The [`Lineage`] of one statement, from its raw parse tree.
//!
//! A walk over the query with the scope PostgreSQL would build: `FROM` items by alias (tables
//! and views by name; subqueries, CTEs, functions and `VALUES` as derived items whose columns
//! carry their own lineage), levels for subqueries (a correlated reference reaches out), CTEs in
//! order (recursive ones to a fixed point). Each expression is walked with the [`Position`] it
//! stands in; a column reference records a [`Use`] there, unless it is an output passed through
//! unchanged or the argument of an [opaque aggregate](OPAQUE_AGGREGATES). Every approximation
//! errs towards recording more; what the walk cannot place makes the statement untraceable.

mod expr;
mod scope;
#[cfg(test)]
mod tests;

use std::rc::Rc;

use pg_query::NodeRef;
use pg_query::protobuf::{self, node::Node as NodeEnum};

use self::scope::{Col, Cte, Derived, Entry, Item, Level, Query, Source, Val, expand};
use crate::sql::ObjectName;
use crate::sql::lineage::{Clause, Lineage, Output, Position, Ref, Use, absorb};

/// How deep expressions and subqueries are followed before the walk gives up (untraceable).
const MAX_DEPTH: usize = 200;

/// How many rounds a recursive CTE is followed before it counts as untraceable.
const MAX_RECURSION_ROUNDS: usize = 8;

/// The lineage of a top-level statement (`None` for statements that return no rows of a query
/// and read no table data through one), and whether it depends on an integer constant
/// (`ORDER BY 2` names an output by position): such a lineage must not be shared by
/// statements of the same shape with other constants.
pub(super) fn of(node: NodeRef<'_>) -> (Option<Lineage>, bool) {
    let mut w = Walk::default();
    let outputs = w.top(node);
    let lineage = outputs.map(|outputs| {
        let mut uses = std::mem::take(&mut w.uses);
        uses.dedup();
        Lineage {
            outputs,
            uses,
            writes: std::mem::take(&mut w.writes),
            untraceable: w.untraceable.take(),
        }
    });
    (lineage, w.positional)
}

fn string(node: &protobuf::Node) -> Option<&str> {
    match &node.node {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

fn relation_name(r: &protobuf::RangeVar) -> ObjectName {
    ObjectName::new(
        (!r.schemaname.is_empty()).then_some(r.schemaname.as_str()),
        &r.relname,
    )
}

fn split(parts: &[protobuf::Node]) -> (Option<String>, String) {
    let mut names: Vec<&str> = parts.iter().map(|p| string(p).unwrap_or("?")).collect();
    let name = names.pop().unwrap_or("?").to_owned();
    let schema = (!names.is_empty()).then(|| names.join("."));
    (schema, name)
}

/// The name PostgreSQL gives an output column that has no alias, where it is sure to be that
/// (`FigureColname`: a column's name, a function's name, a cast's inner name).
fn figure_name(node: Option<&protobuf::Node>) -> Option<String> {
    match node?.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c.fields.last().and_then(string).map(str::to_owned),
        NodeEnum::FuncCall(f) => f.funcname.last().and_then(string).map(str::to_owned),
        NodeEnum::TypeCast(t) => figure_name(t.arg.as_deref()),
        // Nodes `FigureColname` has no case for: PostgreSQL's placeholder name.
        NodeEnum::AExpr(e) if e.kind != protobuf::AExprKind::AexprNullif as i32 => {
            Some("?column?".to_owned())
        }
        NodeEnum::BoolExpr(_)
        | NodeEnum::AConst(_)
        | NodeEnum::ParamRef(_)
        | NodeEnum::NullTest(_)
        | NodeEnum::BooleanTest(_) => Some("?column?".to_owned()),
        _ => None,
    }
}

/// The fields of a column reference: names, and `None` for `*`.
fn fields(c: &protobuf::ColumnRef) -> Vec<Option<&str>> {
    c.fields
        .iter()
        .map(|f| match &f.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

fn is_star_ref(c: &protobuf::ColumnRef) -> bool {
    matches!(
        c.fields.last().and_then(|f| f.node.as_ref()),
        Some(NodeEnum::AStar(_))
    )
}

/// The node an `ORDER BY` entry sorts by.
fn sort_key(node: &protobuf::Node) -> Option<&protobuf::Node> {
    match &node.node {
        Some(NodeEnum::SortBy(s)) => s.node.as_deref(),
        _ => Some(node),
    }
}

/// An integer constant naming an output by position (`ORDER BY 2`), as a 0-based index.
fn position_of(node: &protobuf::Node) -> Option<Option<usize>> {
    match &node.node {
        Some(NodeEnum::AConst(c)) => Some(match &c.val {
            Some(protobuf::a_const::Val::Ival(n)) => usize::try_from(n.ival - 1).ok(),
            _ => None,
        }),
        _ => None,
    }
}

/// The entries of a `GROUP BY` list, grouping sets (`ROLLUP`, `CUBE`, `GROUPING SETS` and the
/// parenthesized lists inside them) flattened: each names an output or is an expression,
/// wherever it is nested. (An integer inside a grouping set counts as a position: if it is a
/// constant after all, the use only over-approximates.)
fn flatten_groups<'a>(nodes: &'a [protobuf::Node], out: &mut Vec<&'a protobuf::Node>) {
    fn inside<'a>(nodes: &'a [protobuf::Node], out: &mut Vec<&'a protobuf::Node>) {
        for n in nodes {
            match &n.node {
                Some(NodeEnum::GroupingSet(g)) => inside(&g.content, out),
                Some(NodeEnum::List(l)) => inside(&l.items, out),
                Some(NodeEnum::RowExpr(r)) => inside(&r.args, out),
                _ => out.push(n),
            }
        }
    }
    for n in nodes {
        match &n.node {
            Some(NodeEnum::GroupingSet(g)) => inside(&g.content, out),
            _ => out.push(n),
        }
    }
}

#[derive(Default)]
struct Walk {
    levels: Vec<Level>,
    /// CTEs in scope, innermost last.
    ctes: Vec<Cte>,
    depth: usize,
    uses: Vec<Use>,
    writes: Vec<ObjectName>,
    untraceable: Option<String>,
    /// The expression being walked holds a value masking cannot trace (see
    /// [`Output::Unknown`]); reset for each output.
    unknown_value: bool,
    /// Whether an output was named by position (`ORDER BY 2`).
    positional: bool,
}

impl Walk {
    /// Records why the statement cannot be placed (the first reason stands).
    fn untraceable(&mut self, why: impl Into<String>) {
        if self.untraceable.is_none() {
            self.untraceable = Some(why.into());
        }
    }

    fn record(&mut self, refs: &[Ref], clause: Clause, within: Option<&str>) {
        if refs.is_empty() {
            return;
        }
        self.uses.push(Use {
            refs: refs.to_vec(),
            position: Position {
                clause,
                within: within.map(str::to_owned),
            },
        });
    }

    /// The outputs of a top-level statement (`Some(None)`: it has a lineage but its result
    /// columns are not its query's); `None` when the statement type has no lineage.
    fn top(&mut self, node: NodeRef<'_>) -> Option<Option<Vec<Output>>> {
        let outputs = |q: Query| q.columns.iter().map(Col::output).collect::<Vec<_>>();
        Some(match node {
            // Statements whose outputs are stored rather than shown: every output is a use.
            NodeRef::SelectStmt(s) if s.into_clause.is_some() => {
                let q = self.statement(node);
                self.stores(&q);
                if let Some(into) = &s.into_clause
                    && let Some(rel) = &into.rel
                {
                    self.writes.push(relation_name(rel));
                }
                None
            }
            NodeRef::CreateTableAsStmt(c) => {
                let q = self.statement_of(c.query.as_deref());
                self.stores(&q);
                None
            }
            NodeRef::SelectStmt(_)
            | NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_) => Some(outputs(self.statement(node))),
            NodeRef::MergeStmt(m) => {
                if let Some(rel) = &m.relation {
                    self.writes.push(relation_name(rel));
                }
                self.untraceable("MERGE is not followed");
                None
            }
            // What a cursor or prepared statement shows later (FETCH, EXECUTE) has no lineage
            // of its own (masked as unknown); what it reads is judged now.
            NodeRef::DeclareCursorStmt(d) => {
                self.statement_of(d.query.as_deref());
                None
            }
            NodeRef::PrepareStmt(p) => {
                self.statement_of(p.query.as_deref());
                None
            }
            // `COPY … TO STDOUT` shows its query's outputs, or the relation's columns (all,
            // or those listed), in order; `COPY … FROM` shows nothing.
            NodeRef::CopyStmt(c) => match (c.query.as_deref(), &c.relation) {
                (Some(q), _) => {
                    let q = self.statement_of(Some(q));
                    (!c.is_from).then(|| outputs(q))
                }
                (None, Some(rel)) if !c.is_from => {
                    let relation = relation_name(rel);
                    if c.attlist.is_empty() {
                        Some(vec![Output::Star {
                            relation,
                            except: Vec::new(),
                        }])
                    } else {
                        Some(
                            c.attlist
                                .iter()
                                .map(|a| match string(a) {
                                    Some(column) => Output::Value(vec![Ref::Column {
                                        relation: relation.clone(),
                                        column: column.to_owned(),
                                        certain: true,
                                    }]),
                                    None => Output::Unknown,
                                })
                                .collect(),
                        )
                    }
                }
                _ => return None,
            },
            // A lock shows nothing and reads no row (pg_dump takes ACCESS SHARE on what it
            // dumps).
            NodeRef::LockStmt(_) => None,
            // A plan shows the statement's text and estimates, never its data: one column of
            // plan text (computed from nothing masked once the statement itself passes).
            NodeRef::ExplainStmt(e) => {
                self.statement_of(e.query.as_deref());
                Some(vec![Output::Computed(Vec::new())])
            }
            // A setting's value; `SHOW ALL` gives name, setting and description. A custom
            // setting (`app.key`) may hold anything: no lineage (masked as unknown).
            NodeRef::VariableShowStmt(v) if v.name.contains('.') => return None,
            NodeRef::VariableShowStmt(v) => {
                let columns = if v.name.eq_ignore_ascii_case("all") {
                    3
                } else {
                    1
                };
                Some(vec![Output::Computed(Vec::new()); columns])
            }
            _ => return None,
        })
    }

    /// Every column of `q` is stored where it can be read unmasked.
    fn stores(&mut self, q: &Query) {
        for c in &q.columns {
            self.record(&c.whole().refs, Clause::Stored, None);
        }
    }

    /// A query (or data-modifying statement) as a reader sees it.
    fn statement(&mut self, node: NodeRef<'_>) -> Query {
        if self.depth >= MAX_DEPTH {
            self.untraceable("query nested too deeply to follow");
            return Query::default();
        }
        self.depth += 1;
        let q = match node {
            NodeRef::SelectStmt(s) => self.with(s.with_clause.as_ref(), |w| w.select_body(s)),
            NodeRef::InsertStmt(s) => self.with(s.with_clause.as_ref(), |w| w.insert(s)),
            NodeRef::UpdateStmt(s) => self.with(s.with_clause.as_ref(), |w| w.update(s)),
            NodeRef::DeleteStmt(s) => self.with(s.with_clause.as_ref(), |w| w.delete(s)),
            other => {
                self.untraceable(format!(
                    "{} is not followed",
                    crate::sql::pg::node_name(other)
                ));
                Query::default()
            }
        };
        self.depth -= 1;
        q
    }

    fn statement_of(&mut self, node: Option<&protobuf::Node>) -> Query {
        match node.and_then(|n| n.node.as_ref()) {
            Some(n) => self.statement(n.to_ref()),
            None => {
                self.untraceable("missing query");
                Query::default()
            }
        }
    }

    /// Runs `body` with the CTEs of `with` in scope.
    fn with<T>(
        &mut self,
        with: Option<&protobuf::WithClause>,
        body: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let mark = self.ctes.len();
        if let Some(with) = with {
            let ctes = with.ctes.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::CommonTableExpr(c)) => Some(&**c),
                _ => None,
            });
            if with.recursive {
                let ctes: Vec<_> = ctes.collect();
                // A CTE of a recursive WITH may name any other, later ones too: followed
                // together until what they read stops growing.
                // The fixed point starts from "reads nothing yet": any column name is found,
                // empty.
                for c in &ctes {
                    self.ctes.push(Cte {
                        name: c.ctename.clone(),
                        item: Rc::new(Derived {
                            columns: vec![Col::One(None, Val::default())],
                        }),
                    });
                }
                self.recursive_ctes(mark, &ctes);
            } else {
                for c in ctes {
                    let q = self.statement_of(c.ctequery.as_deref());
                    self.ctes.push(Cte {
                        name: c.ctename.clone(),
                        item: q.as_item(&c.aliascolnames),
                    });
                }
            }
        }
        let out = body(self);
        self.ctes.truncate(mark);
        out
    }

    /// The CTEs of a `WITH RECURSIVE` (in scope from `mark` on), followed to a fixed point.
    fn recursive_ctes(&mut self, mark: usize, ctes: &[&protobuf::CommonTableExpr]) {
        let mut last: Option<Vec<Vec<Col>>> = None;
        for _ in 0..MAX_RECURSION_ROUNDS {
            let mut now = Vec::with_capacity(ctes.len());
            for (i, c) in ctes.iter().enumerate() {
                let q = self.statement_of(c.ctequery.as_deref());
                let item = q.as_item(&c.aliascolnames);
                now.push(item.columns.clone());
                self.ctes[mark + i].item = item;
            }
            if last.as_ref() == Some(&now) {
                return;
            }
            last = Some(now);
        }
        self.untraceable("a recursive CTE not followed to its end");
    }

    fn select_body(&mut self, s: &protobuf::SelectStmt) -> Query {
        use protobuf::SetOperation as Op;
        let op = Op::try_from(s.op).unwrap_or(Op::Undefined);
        if !matches!(op, Op::SetopNone | Op::Undefined) {
            return self.set_operation(s, op);
        }
        if !s.values_lists.is_empty() {
            let q = self.values(&s.values_lists);
            self.order_limit(s, &q, None);
            return q;
        }
        self.levels.push(Level::default());
        for item in &s.from_clause {
            let entry = self.scope_item(item);
            if let Some(level) = self.levels.last_mut() {
                level.entries.push(entry);
            }
        }
        let q = self.targets(&s.target_list);
        self.expr_of(s.where_clause.as_deref(), Clause::Where);
        self.expr_of(s.having_clause.as_deref(), Clause::Having);
        for n in &s.window_clause {
            if let Some(NodeEnum::WindowDef(w)) = &n.node {
                self.window(w);
            }
        }
        let mut groups = Vec::new();
        flatten_groups(&s.group_clause, &mut groups);
        for n in groups {
            self.by_output(n, &q, Clause::GroupBy);
        }
        for n in &s.distinct_clause {
            if n.node.is_none() {
                // Plain DISTINCT compares every output.
                for c in &q.columns {
                    self.record(&c.whole().refs, Clause::Distinct, None);
                }
            } else {
                self.by_output(n, &q, Clause::Distinct);
            }
        }
        self.order_limit(s, &q, Some(()));
        self.levels.pop();
        q
    }

    /// `ORDER BY`, `LIMIT` and `OFFSET` of a query whose outputs are `q`. `scope`: whether
    /// the sort keys may also be expressions over the `FROM` items (not after a set
    /// operation or `VALUES`, where they may only name outputs).
    fn order_limit(&mut self, s: &protobuf::SelectStmt, q: &Query, scope: Option<()>) {
        for n in &s.sort_clause {
            let Some(key) = sort_key(n) else { continue };
            if scope.is_some() {
                self.by_output(key, q, Clause::OrderBy);
            } else {
                self.names_output(key, q, Clause::OrderBy);
            }
        }
        self.expr_of(s.limit_offset.as_deref(), Clause::Limit);
        self.expr_of(s.limit_count.as_deref(), Clause::Limit);
    }

    /// An entry of `ORDER BY`, `GROUP BY` or `DISTINCT ON`: an output by position or name,
    /// or an expression over the `FROM` items (both, when a bare name may be either).
    fn by_output(&mut self, node: &protobuf::Node, q: &Query, clause: Clause) {
        if let Some(k) = position_of(node) {
            self.positional = true;
            self.output_at(k, q, clause);
            return;
        }
        if let Some(NodeEnum::ColumnRef(c)) = &node.node
            && let [Some(name)] = fields(c).as_slice()
        {
            let named = self.output_named(name, q, clause);
            // PostgreSQL tries the input columns too (first, for GROUP BY).
            if let Some(v) = self.lookup(&[Some(name)]) {
                self.record(&v.refs, clause, None);
            } else if !named {
                self.untraceable(format!("column {name} is not found in scope"));
            }
            return;
        }
        self.expr(node.node.as_ref().map(NodeEnum::to_ref), clause, None);
    }

    /// An entry that may only name an output (after a set operation or `VALUES`).
    fn names_output(&mut self, node: &protobuf::Node, q: &Query, clause: Clause) {
        if let Some(k) = position_of(node) {
            self.positional = true;
            self.output_at(k, q, clause);
            return;
        }
        if let Some(NodeEnum::ColumnRef(c)) = &node.node
            && let [Some(name)] = fields(c).as_slice()
            && self.output_named(name, q, clause)
        {
            return;
        }
        self.untraceable("a sort key that names no output");
    }

    /// Records the `k`-th output (0-based) as used; all of them if `k` is not a position the
    /// walk can count to.
    fn output_at(&mut self, k: Option<usize>, q: &Query, clause: Clause) {
        let counted = q.columns.iter().all(|c| matches!(c, Col::One(..)));
        match k.and_then(|k| q.columns.get(k)).filter(|_| counted) {
            Some(c) => self.record(&c.whole().refs, clause, None),
            None => self.record(&q.whole().refs, clause, None),
        }
    }

    /// Records the outputs that may be called `name` as used; `false` if none may.
    fn output_named(&mut self, name: &str, q: &Query, clause: Clause) -> bool {
        let mut found = false;
        // Of a `*`, only the relation's column of that name (if it has one).
        for v in q.columns.iter().filter_map(|c| c.lookup(name)) {
            found = true;
            self.record(&v.refs, clause, None);
        }
        found
    }

    /// `UNION`, `INTERSECT`, `EXCEPT`: each output is what both sides give in its position.
    fn set_operation(&mut self, s: &protobuf::SelectStmt, op: protobuf::SetOperation) -> Query {
        let (Some(l), Some(r)) = (s.larg.as_deref(), s.rarg.as_deref()) else {
            self.untraceable("set operation without both sides");
            return Query::default();
        };
        let l = self.statement(NodeRef::SelectStmt(l));
        let r = self.statement(NodeRef::SelectStmt(r));
        let counted = |q: &Query| q.columns.iter().all(|c| matches!(c, Col::One(..)));
        let q = if counted(&l) && counted(&r) && l.columns.len() == r.columns.len() {
            Query {
                columns: l
                    .columns
                    .iter()
                    .zip(&r.columns)
                    .map(|(a, b)| {
                        let mut v = a.whole();
                        v.absorb(b.whole());
                        // PostgreSQL names a set operation's columns after its left side.
                        let name = match a {
                            Col::One(n, _) => n.clone(),
                            Col::Star { .. } => None,
                        };
                        Col::One(name, v)
                    })
                    .collect(),
            }
        } else {
            self.untraceable("a set operation over `*` (name the columns)");
            Query::default()
        };
        // UNION (without ALL), INTERSECT and EXCEPT compare the outputs: which rows come back
        // says whether values are equal.
        if !(op == protobuf::SetOperation::SetopUnion && s.all) {
            for c in &q.columns {
                self.record(&c.whole().refs, Clause::SetOperation, None);
            }
        }
        self.order_limit(s, &q, None);
        q
    }

    /// `VALUES (…), (…)`: each column is what any row's value in it is.
    fn values(&mut self, lists: &[protobuf::Node]) -> Query {
        let mut cols: Vec<Val> = Vec::new();
        for list in lists {
            let Some(NodeEnum::List(l)) = &list.node else {
                self.untraceable("VALUES row is not a list");
                continue;
            };
            for (i, item) in l.items.iter().enumerate() {
                let v = self.output_value(Some(item));
                match cols.get_mut(i) {
                    Some(c) => c.absorb(v),
                    None => cols.push(v),
                }
            }
        }
        Query {
            columns: cols.into_iter().map(|v| Col::One(None, v)).collect(),
        }
    }

    /// A select list (or `RETURNING` list).
    fn targets(&mut self, list: &[protobuf::Node]) -> Query {
        let mut columns = Vec::new();
        for t in list {
            let Some(NodeEnum::ResTarget(rt)) = &t.node else {
                self.untraceable("select list entry is not a target");
                continue;
            };
            if let Some(NodeEnum::ColumnRef(c)) = rt.val.as_deref().and_then(|v| v.node.as_ref())
                && is_star_ref(c)
            {
                columns.extend(self.star(&fields(c)));
                continue;
            }
            let name = if rt.name.is_empty() {
                figure_name(rt.val.as_deref())
            } else {
                Some(rt.name.clone())
            };
            let v = self.output_value(rt.val.as_deref());
            columns.push(Col::One(name, v));
        }
        Query { columns }
    }

    /// What `*` or `alias.*` in a select list expands to.
    fn star(&mut self, f: &[Option<&str>]) -> Vec<Col> {
        match f {
            [None] => {
                let Some(level) = self.levels.last() else {
                    self.untraceable("`*` without a FROM clause");
                    return Vec::new();
                };
                let mut cols = Vec::new();
                let mut natural = false;
                for e in &level.entries {
                    expand(e, &level.items, &mut cols, &mut natural);
                }
                if natural {
                    self.untraceable("`*` over a NATURAL join (name the columns)");
                }
                cols
            }
            [Some(alias), None] => match self.find(alias) {
                Some(item) => item.star(),
                None => {
                    self.untraceable(format!("{alias} is not a FROM item in scope"));
                    Vec::new()
                }
            },
            [Some(schema), Some(table), None] => match self.find_relation(schema, table) {
                Some(rel) => vec![Col::Star {
                    relation: rel,
                    renamed: false,
                    except: Vec::new(),
                }],
                None => {
                    self.untraceable(format!("{schema}.{table} is not a FROM item in scope"));
                    Vec::new()
                }
            },
            _ => {
                self.untraceable("`*` not followed");
                Vec::new()
            }
        }
    }

    /// An output: a value passed through unchanged (a column, a whole row, a scalar
    /// subquery's one output, an opaque aggregate's count) or computed.
    fn output_value(&mut self, node: Option<&protobuf::Node>) -> Val {
        let Some(n) = node.and_then(|n| n.node.as_ref()) else {
            return Val::default();
        };
        match n {
            NodeEnum::ColumnRef(c) if !is_star_ref(c) => self.column(&fields(c)),
            NodeEnum::SubLink(s)
                if protobuf::SubLinkType::try_from(s.sub_link_type)
                    == Ok(protobuf::SubLinkType::ExprSublink) =>
            {
                let q = self.statement_of(s.subselect.as_deref());
                match q.columns.as_slice() {
                    [Col::One(_, v)] => v.clone(),
                    _ => {
                        self.untraceable("a scalar subquery whose output the walk cannot count");
                        Val::default()
                    }
                }
            }
            _ => {
                let outer = std::mem::take(&mut self.unknown_value);
                let refs = self.expr(Some(n.to_ref()), Clause::Output, None);
                let unknown = std::mem::replace(&mut self.unknown_value, outer);
                Val {
                    refs,
                    computed: true,
                    unknown,
                }
            }
        }
    }

    fn insert(&mut self, s: &protobuf::InsertStmt) -> Query {
        // The inserted values are stored: every column of the source is a use.
        if let Some(n) = s.select_stmt.as_deref() {
            let source = self.statement_of(Some(n));
            self.stores(&source);
        }
        self.levels.push(Level::default());
        if let Some(r) = &s.relation {
            self.target(r);
        }
        if let Some(oc) = &s.on_conflict_clause {
            if let Some(infer) = &oc.infer {
                // The conflict target compares the new row's values with stored ones.
                for e in &infer.index_elems {
                    match &e.node {
                        Some(NodeEnum::IndexElem(ie)) if !ie.name.is_empty() => {
                            let v = self.column(&[Some(ie.name.as_str())]);
                            self.record(&v.refs, Clause::Where, Some("ON CONFLICT"));
                        }
                        Some(NodeEnum::IndexElem(ie)) => {
                            self.expr_of(ie.expr.as_deref(), Clause::Where);
                        }
                        other => {
                            self.expr(other.as_ref().map(NodeEnum::to_ref), Clause::Where, None);
                        }
                    }
                }
                self.expr_of(infer.where_clause.as_deref(), Clause::Where);
            }
            for n in &oc.target_list {
                self.assignment(n);
            }
            self.expr_of(oc.where_clause.as_deref(), Clause::Where);
        }
        let q = self.returning(s.returning_clause.as_ref());
        self.levels.pop();
        q
    }

    fn update(&mut self, s: &protobuf::UpdateStmt) -> Query {
        self.change(
            s.relation.as_ref(),
            &s.from_clause,
            s.where_clause.as_deref(),
            s.returning_clause.as_ref(),
            |w| {
                for n in &s.target_list {
                    w.assignment(n);
                }
            },
        )
    }

    fn delete(&mut self, s: &protobuf::DeleteStmt) -> Query {
        self.change(
            s.relation.as_ref(),
            &s.using_clause,
            s.where_clause.as_deref(),
            s.returning_clause.as_ref(),
            |_| {},
        )
    }

    /// `UPDATE` or `DELETE`: the target and the `FROM`/`USING` items in scope, the filter, what
    /// `stores` stores, then `RETURNING`.
    fn change(
        &mut self,
        target: Option<&protobuf::RangeVar>,
        from: &[protobuf::Node],
        filter: Option<&protobuf::Node>,
        returning: Option<&protobuf::ReturningClause>,
        stores: impl FnOnce(&mut Self),
    ) -> Query {
        self.levels.push(Level::default());
        if let Some(r) = target {
            self.target(r);
        }
        for item in from {
            let entry = self.scope_item(item);
            if let Some(level) = self.levels.last_mut() {
                level.entries.push(entry);
            }
        }
        self.expr_of(filter, Clause::Where);
        stores(self);
        let q = self.returning(returning);
        self.levels.pop();
        q
    }

    /// `SET col = value` (or `ON CONFLICT … DO UPDATE SET`): the value is stored.
    fn assignment(&mut self, node: &protobuf::Node) {
        if let Some(NodeEnum::ResTarget(rt)) = &node.node {
            self.expr_of(rt.val.as_deref(), Clause::Stored);
        } else {
            self.expr(
                node.node.as_ref().map(NodeEnum::to_ref),
                Clause::Stored,
                None,
            );
        }
    }

    fn returning(&mut self, clause: Option<&protobuf::ReturningClause>) -> Query {
        match clause {
            Some(c) => {
                if !c.options.is_empty() {
                    // `RETURNING WITH (OLD AS …)` (PostgreSQL 18).
                    self.untraceable("RETURNING WITH (…) is not followed");
                }
                self.targets(&c.exprs)
            }
            None => Query::default(),
        }
    }

    /// The table a data-modifying statement changes (never a CTE): in scope under its alias,
    /// and recorded as written.
    fn target(&mut self, r: &protobuf::RangeVar) {
        let rel = relation_name(r);
        self.writes.push(rel.clone());
        let alias = r
            .alias
            .as_ref()
            .map_or(r.relname.as_str(), |a| &a.aliasname);
        let index = self.push_item(alias, Source::Relation(rel));
        if let Some(level) = self.levels.last_mut() {
            level.entries.push(Entry::Item(index));
        }
    }

    /// Adds a table or view (or CTE reference) to the current level.
    fn relation_item(&mut self, r: &protobuf::RangeVar) -> Entry {
        let alias = r.alias.as_ref();
        let name = alias.map_or(r.relname.as_str(), |a| a.aliasname.as_str());
        let colnames: &[protobuf::Node] = alias.map_or(&[], |a| &a.colnames);
        if r.schemaname.is_empty()
            && let Some(cte) = self.ctes.iter().rev().find(|c| c.name == r.relname)
        {
            let item = if colnames.is_empty() {
                cte.item.clone()
            } else {
                Query {
                    columns: cte.item.columns.clone(),
                }
                .as_item(colnames)
            };
            return Entry::Item(self.push_item(name, Source::Derived(item)));
        }
        let rel = relation_name(r);
        let source = if colnames.is_empty() {
            Source::Relation(rel)
        } else {
            // `FROM t AS x(a, b)` renames columns by position, which only the catalog knows:
            // any name may be any column.
            Source::Derived(Rc::new(Derived {
                columns: vec![Col::Star {
                    relation: rel,
                    renamed: true,
                    except: Vec::new(),
                }],
            }))
        };
        Entry::Item(self.push_item(name, source))
    }

    fn push_item(&mut self, alias: &str, source: Source) -> usize {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        let Some(level) = self.levels.last_mut() else {
            return 0;
        };
        level.items.push(Item {
            alias: alias.to_owned(),
            source,
        });
        level.items.len() - 1
    }

    /// Adds a `FROM` item to the current level, recording what its conditions and arguments
    /// use; returns how it is put together (for `*`).
    fn scope_item(&mut self, node: &protobuf::Node) -> Entry {
        let Some(n) = node.node.as_ref() else {
            self.untraceable("empty FROM item");
            return Entry::Join {
                left: Box::new(Entry::Item(usize::MAX)),
                right: Box::new(Entry::Item(usize::MAX)),
                using: Vec::new(),
                natural: true,
            };
        };
        match n {
            NodeEnum::RangeVar(r) => self.relation_item(r),
            NodeEnum::RangeSubselect(s) => {
                let q = self.statement_of(s.subquery.as_deref());
                let alias = s.alias.as_ref();
                let item = q.as_item(alias.map_or(&[], |a| &a.colnames));
                Entry::Item(self.push_item(
                    alias.map_or("", |a| a.aliasname.as_str()),
                    Source::Derived(item),
                ))
            }
            NodeEnum::RangeFunction(f) => self.function_item(f),
            NodeEnum::JoinExpr(j) => {
                let left = self.scope_item_of(j.larg.as_deref());
                let right = self.scope_item_of(j.rarg.as_deref());
                self.expr_of(j.quals.as_deref(), Clause::Join);
                let mut using = Vec::new();
                // USING (a) compares same-named columns of both sides.
                for u in &j.using_clause {
                    if let Some(col) = string(u) {
                        using.push(col.to_owned());
                        match self.lookup(&[Some(col)]) {
                            Some(v) => self.record(&v.refs, Clause::Join, Some("USING")),
                            None => self.untraceable(format!("USING column {col} not found")),
                        }
                    }
                }
                let entry = Entry::Join {
                    left: Box::new(left),
                    right: Box::new(right),
                    using,
                    natural: j.is_natural,
                };
                if j.is_natural {
                    // NATURAL compares every same-named column: which ones, only the
                    // catalog knows.
                    let mut cols = Vec::new();
                    let mut natural = false;
                    if let Some(level) = self.levels.last() {
                        expand(&entry, &level.items, &mut cols, &mut natural);
                    }
                    for c in cols {
                        self.record(&c.whole().refs, Clause::Join, Some("NATURAL"));
                    }
                }
                // `JOIN … USING (a) AS u`: `u` names the merged USING columns.
                if let Some(alias) = &j.join_using_alias {
                    let mut cols = Vec::new();
                    for u in &j.using_clause {
                        if let Some(col) = string(u) {
                            let v = self.lookup(&[Some(col)]).unwrap_or_default();
                            cols.push(Col::One(Some(col.to_owned()), v));
                        }
                    }
                    let item = Query { columns: cols }.as_item(&alias.colnames);
                    self.push_item(&alias.aliasname, Source::Derived(item));
                }
                // `(a JOIN b) AS j(c1, c2, …)`: the join's columns, renamed by position like a
                // subquery's; where positions cannot be told (a NATURAL join, a renamed `*`),
                // any name may be any of them.
                if let Some(alias) = &j.alias {
                    let mut cols = Vec::new();
                    let mut natural = false;
                    if let Some(level) = self.levels.last() {
                        expand(&entry, &level.items, &mut cols, &mut natural);
                    }
                    let item = if natural && !alias.colnames.is_empty() {
                        let mut whole = Val::default();
                        for c in &cols {
                            whole.absorb(c.whole());
                        }
                        Rc::new(Derived {
                            columns: vec![Col::One(None, whole)],
                        })
                    } else {
                        Query { columns: cols }.as_item(&alias.colnames)
                    };
                    self.push_item(&alias.aliasname, Source::Derived(item));
                }
                entry
            }
            NodeEnum::RangeTableSample(t) => {
                let entry = self.scope_item_of(t.relation.as_deref());
                for a in t.args.iter().chain(t.repeatable.as_deref()) {
                    self.expr(a.node.as_ref().map(NodeEnum::to_ref), Clause::Sample, None);
                }
                entry
            }
            other => {
                self.untraceable(format!(
                    "{} in FROM is not followed",
                    crate::sql::pg::node_name(other.to_ref())
                ));
                Entry::Item(usize::MAX)
            }
        }
    }

    /// A function in `FROM` (`generate_series(…)`, `unnest(…)`, `ROWS FROM (…)`): its columns
    /// are computed from its arguments, which are uses.
    fn function_item(&mut self, f: &protobuf::RangeFunction) -> Entry {
        let mut refs = Vec::new();
        let mut first_name = None;
        for item in &f.functions {
            // Each entry is a list: the call, then its column definitions.
            let call = match &item.node {
                Some(NodeEnum::List(l)) => l.items.first(),
                _ => Some(item),
            };
            if first_name.is_none() {
                first_name = figure_name(call);
            }
            let within = first_name.as_deref().map(|n| format!("{n}()"));
            absorb(
                &mut refs,
                self.expr(
                    call.and_then(|c| c.node.as_ref()).map(NodeEnum::to_ref),
                    Clause::FromFunction,
                    within.as_deref(),
                ),
            );
        }
        let alias = f
            .alias
            .as_ref()
            .map(|a| a.aliasname.clone())
            .or(first_name)
            .unwrap_or_default();
        let val = Val {
            refs,
            computed: true,
            unknown: false,
        };
        Entry::Item(self.push_item(
            &alias,
            Source::Derived(Rc::new(Derived {
                columns: vec![Col::One(None, val)],
            })),
        ))
    }

    fn scope_item_of(&mut self, node: Option<&protobuf::Node>) -> Entry {
        match node {
            Some(n) => self.scope_item(n),
            None => {
                self.untraceable("missing FROM item");
                Entry::Item(usize::MAX)
            }
        }
    }

    /// A window definition: its partitions and order decide which rows each window function
    /// sees and in which order the rows come back.
    fn window(&mut self, w: &protobuf::WindowDef) {
        for n in w
            .partition_clause
            .iter()
            .chain(&w.order_clause)
            .chain(w.start_offset.as_deref())
            .chain(w.end_offset.as_deref())
        {
            let key = sort_key(n)
                .and_then(|k| k.node.as_ref())
                .map(NodeEnum::to_ref);
            self.expr(key, Clause::Window, None);
        }
    }

    /// The innermost `FROM` item called `alias`.
    fn find(&self, alias: &str) -> Option<&Item> {
        self.levels
            .iter()
            .rev()
            .find_map(|level| level.items.iter().find(|i| i.alias == alias))
    }

    /// The relation `schema.table` in scope under its own name.
    fn find_relation(&self, schema: &str, table: &str) -> Option<ObjectName> {
        self.levels
            .iter()
            .rev()
            .flat_map(|l| &l.items)
            .find_map(|i| match &i.source {
                Source::Relation(rel)
                    if i.alias == table
                        && rel.schema.as_deref() == Some(schema)
                        && rel.name == table =>
                {
                    Some(rel.clone())
                }
                _ => None,
            })
    }
}
