//! The classifying walk: every node of a statement's tree, each function, operator, relation
//! and nested statement escalating the statement's kind.

use pg_query::NodeRef;
use pg_query::protobuf::{self, a_const, node::Node as NodeEnum};
use sod_core::OperationKind::{Admin, Read, Schema, Unknown, Write};

use super::base::base;
use super::{MAX_DEPTH, children};
use crate::sql::builder::{Base, StatementBuilder, Via, parse_qualified_name};
use crate::sql::settings;

/// Walks one statement's tree into a [`StatementBuilder`].
pub(super) struct Walker {
    pub(super) b: StatementBuilder,
    /// CTE names visible at the current point (unqualified relation names matching one of
    /// them are not relations).
    ctes: Vec<String>,
    via: Via,
    depth: usize,
    /// The analysis looked at a constant's value (a shape template would not hold).
    pub(super) read_constant: bool,
}

impl Walker {
    pub(super) fn new(b: StatementBuilder) -> Self {
        Self {
            b,
            ctes: Vec::new(),
            via: Via::Inside,
            depth: 0,
            read_constant: false,
        }
    }

    /// Visits a node below the top-level statement.
    fn visit(&mut self, node: NodeRef<'_>) {
        if self.depth >= MAX_DEPTH {
            self.b
                .escalate(Unknown, "statement nested too deeply to analyze");
            return;
        }
        self.depth += 1;
        let via = std::mem::replace(&mut self.via, Via::Inside);
        if let Some(base) = base(node) {
            self.nested_statement(base, via, node);
        }
        self.inspect(node);
        self.depth -= 1;
    }

    /// Visits `node`, reached as `via`.
    fn visit_via(&mut self, via: Via, node: Option<&protobuf::Node>) {
        if let Some(n) = node.and_then(|n| n.node.as_ref()) {
            self.via = via;
            self.visit(n.to_ref());
            self.via = Via::Inside;
        }
    }

    fn visit_children(&mut self, node: NodeRef<'_>) {
        children::for_each_child(node, &mut |child| self.visit(child));
    }

    /// A statement found inside another (see [`StatementBuilder::nested`]).
    fn nested_statement(&mut self, base: Base, via: Via, node: NodeRef<'_>) {
        // SET inside CREATE FUNCTION, ALTER ROLE … SET, ALTER SYSTEM: scoped to the container,
        // which is classified by its own type.
        if !matches!(node, NodeRef::VariableSetStmt(_)) {
            self.b.nested(base, via);
        }
    }

    /// What a node itself contributes, then its children.
    pub(super) fn inspect(&mut self, node: NodeRef<'_>) {
        match node {
            NodeRef::FuncCall(f) => {
                self.function_call(f);
                self.visit_children(node);
            }
            NodeRef::RangeVar(r) => self.relation(r),
            NodeRef::AExpr(e) => {
                use protobuf::AExprKind as K;
                let is_operator = !matches!(
                    K::try_from(e.kind),
                    Ok(K::AexprBetween
                        | K::AexprNotBetween
                        | K::AexprBetweenSym
                        | K::AexprNotBetweenSym)
                );
                if is_operator {
                    self.operator(&e.name);
                }
                self.visit_children(node);
            }
            NodeRef::SubLink(s) => {
                self.operator(&s.oper_name);
                self.visit_children(node);
            }
            NodeRef::SortBy(s) => {
                self.operator(&s.use_op);
                self.visit_children(node);
            }
            NodeRef::RangeTableSample(s) => {
                let (schema, method) = split_name(&s.method);
                self.b.tablesample(schema.as_deref(), &method);
                self.visit_children(node);
            }
            // `FOR UPDATE OF a` names range-table aliases, not relations.
            NodeRef::LockingClause(_) => {}
            NodeRef::SelectStmt(s) => {
                if let Some(into) = &s.into_clause {
                    self.b.escalate(Schema, "SELECT ... INTO creates a table");
                    self.b.ddl();
                    self.target(into.rel.as_ref());
                }
                for lock in &s.locking_clause {
                    if let Some(NodeEnum::LockingClause(l)) = &lock.node {
                        self.b.escalate(
                            Write,
                            format!("SELECT ... {} locks rows", lock_strength(l.strength)),
                        );
                    }
                }
                self.with_scope(s.with_clause.as_ref(), |w| w.visit_children(node));
            }
            // The target of a data-modifying statement is a relation even when a CTE has the
            // same name (`WITH t AS (…) DELETE FROM t` deletes from table t).
            NodeRef::InsertStmt(s) => {
                self.target(s.relation.as_ref());
                self.with_scope(s.with_clause.as_ref(), |w| w.visit_children(node))
            }
            NodeRef::UpdateStmt(s) => {
                self.target(s.relation.as_ref());
                self.with_scope(s.with_clause.as_ref(), |w| w.visit_children(node))
            }
            NodeRef::DeleteStmt(s) => {
                self.target(s.relation.as_ref());
                self.with_scope(s.with_clause.as_ref(), |w| w.visit_children(node))
            }
            NodeRef::MergeStmt(s) => {
                self.target(s.relation.as_ref());
                self.with_scope(s.with_clause.as_ref(), |w| w.visit_children(node))
            }
            // Visited by `with_scope` of the statement that owns it, CTE by CTE.
            NodeRef::WithClause(_) => {}
            NodeRef::CommonTableExpr(c) => {
                self.visit_via(Via::Cte, c.ctequery.as_deref());
                if let Some(s) = &c.search_clause {
                    self.visit(NodeRef::CtesearchClause(s));
                }
                if let Some(cycle) = &c.cycle_clause {
                    self.visit(NodeRef::CtecycleClause(cycle));
                }
            }
            NodeRef::ExplainStmt(e) => self.explain(e),
            NodeRef::PrepareStmt(p) => {
                for t in &p.argtypes {
                    self.visit_via(Via::Inside, Some(t));
                }
                self.visit_via(Via::Prepare, p.query.as_deref());
            }
            NodeRef::DeclareCursorStmt(d) => self.visit_via(Via::Cursor, d.query.as_deref()),
            NodeRef::CopyStmt(c) => {
                if let Some(r) = &c.relation {
                    self.relation(r);
                }
                self.visit_via(Via::Copy, c.query.as_deref());
                self.visit_via(Via::Inside, c.where_clause.as_deref());
                for n in c.attlist.iter().chain(&c.options) {
                    self.visit_via(Via::Inside, Some(n));
                }
            }
            NodeRef::CreateTableAsStmt(c) => {
                if let Some(into) = &c.into {
                    self.visit(NodeRef::IntoClause(into));
                }
                self.visit_via(Via::CreateAs, c.query.as_deref());
            }
            NodeRef::ExecuteStmt(e) => {
                self.b.execute(&e.name);
                self.visit_children(node);
            }
            NodeRef::DropStmt(d) => {
                self.dropped_relations(d);
                self.visit_children(node);
            }
            _ => self.visit_children(node),
        }
    }

    /// Walks a statement's children with its CTE names in scope: every CTE for the main body;
    /// for a CTE's own query, the CTEs before it (and itself and all others with `RECURSIVE`).
    fn with_scope(&mut self, with: Option<&protobuf::WithClause>, body: impl FnOnce(&mut Self)) {
        let mark = self.ctes.len();
        if let Some(with) = with {
            let ctes: Vec<&protobuf::CommonTableExpr> = with
                .ctes
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::CommonTableExpr(c)) => Some(&**c),
                    _ => None,
                })
                .collect();
            if with.recursive {
                self.ctes.extend(ctes.iter().map(|c| c.ctename.clone()));
                for c in &ctes {
                    self.visit(NodeRef::CommonTableExpr(c));
                }
            } else {
                for c in &ctes {
                    self.visit(NodeRef::CommonTableExpr(c));
                    self.ctes.push(c.ctename.clone());
                }
            }
            // Anything in the WITH clause that is not a CTE (nothing today) is still walked.
            for n in &with.ctes {
                if !matches!(n.node, Some(NodeEnum::CommonTableExpr(_))) {
                    self.visit_via(Via::Inside, Some(n));
                }
            }
        }
        body(self);
        self.ctes.truncate(mark);
    }

    fn explain(&mut self, e: &protobuf::ExplainStmt) {
        if explain_analyzes(e) {
            self.visit_via(Via::ExplainAnalyze, e.query.as_deref());
            return;
        }
        // Planned, not run: only what planning may evaluate (function calls) counts.
        if let Some(query) = e.query.as_deref().and_then(|n| n.node.as_ref()) {
            let mut planned = Walker::new(StatementBuilder::new(Read));
            planned.ctes = self.ctes.clone();
            planned.depth = self.depth;
            planned.visit(query.to_ref());
            self.read_constant |= planned.read_constant;
            self.b.absorb_planned(planned.b);
        }
    }

    /// The relation a statement writes to (or creates): never a CTE reference. Writing to
    /// `pg_settings` changes settings through its rules, so it is administration.
    fn target(&mut self, r: Option<&protobuf::RangeVar>) {
        let Some(r) = r else {
            return;
        };
        self.b.object(Some(r.schemaname.as_str()), &r.relname);
        if r.relname == "pg_settings" && matches!(r.schemaname.as_str(), "" | "pg_catalog") {
            self.b.escalate(
                Admin,
                "writing to pg_settings changes settings, including search_path",
            );
            self.b.sets_search_path();
        }
    }

    fn relation(&mut self, r: &protobuf::RangeVar) {
        if r.schemaname.is_empty() && self.ctes.contains(&r.relname) {
            return;
        }
        self.b.object(Some(r.schemaname.as_str()), &r.relname);
    }

    fn function_call(&mut self, f: &protobuf::FuncCall) {
        let (schema, name) = split_name(&f.funcname);
        if name == "set_config"
            && matches!(schema.as_deref(), None | Some("pg_catalog"))
            && let [setting, value, local] = f.args.as_slice()
            && let (Some(setting), Some(value)) = (plain_string(setting), plain_string(value))
            && matches!(
                local.node.as_ref(),
                Some(NodeEnum::AConst(protobuf::AConst {
                    val: Some(a_const::Val::Boolval(_)),
                    ..
                }))
            )
            && let Some(search_path) = settings::harmless_set_config(setting, value)
        {
            // `set_config('<a harmless setting>', '<value>', true|false)` with plain literals
            // (nothing to walk), as pg_dump starts with `search_path`: a read; a search path
            // is tracked.
            self.b.call_set_config(schema.as_deref(), search_path);
            self.read_constant = true;
            return;
        }
        self.b.call_function(schema.as_deref(), &name);
        match name.as_str() {
            "set_config" | "nextval" | "setval" | "currval" => self.read_constant = true,
            _ => {}
        }
        match name.as_str() {
            "set_config" => {
                // Setting names are case-insensitive; a computed name may be search_path.
                let search_path = match f.args.first().and_then(string_constant) {
                    Some(setting) => settings::classify_setting(setting).search_path,
                    None => true,
                };
                if search_path {
                    self.b.sets_search_path();
                }
            }
            "nextval" | "setval" | "currval" => {
                if let Some((schema, seq)) = f
                    .args
                    .first()
                    .and_then(string_constant)
                    .and_then(parse_qualified_name)
                {
                    self.b.object(schema.as_deref(), &seq);
                }
            }
            _ => {}
        }
    }

    fn operator(&mut self, name: &[protobuf::Node]) {
        if name.is_empty() {
            return;
        }
        let (schema, symbol) = split_name(name);
        self.b.call_operator(schema.as_deref(), &symbol);
    }

    /// `DROP TABLE a, s.b` names its relations as lists of strings, not as relation nodes.
    fn dropped_relations(&mut self, d: &protobuf::DropStmt) {
        use protobuf::ObjectType as O;
        let relation_like = matches!(
            protobuf::ObjectType::try_from(d.remove_type),
            Ok(O::ObjectTable
                | O::ObjectView
                | O::ObjectMatview
                | O::ObjectIndex
                | O::ObjectSequence
                | O::ObjectForeignTable)
        );
        if !relation_like {
            return;
        }
        for object in &d.objects {
            if let Some(NodeEnum::List(list)) = &object.node {
                let (schema, name) = split_name(&list.items);
                self.b.object(schema.as_deref(), &name);
            }
        }
    }
}

/// Whether `EXPLAIN` runs its statement: an `ANALYZE` option that is not explicitly false.
fn explain_analyzes(e: &protobuf::ExplainStmt) -> bool {
    e.options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze") => {
            match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(NodeEnum::String(s)) => {
                    !(s.sval.eq_ignore_ascii_case("false") || s.sval.eq_ignore_ascii_case("off"))
                }
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                Some(NodeEnum::AConst(c)) => !matches!(
                    &c.val,
                    Some(a_const::Val::Boolval(protobuf::Boolean { boolval: false }))
                        | Some(a_const::Val::Ival(protobuf::Integer { ival: 0 }))
                ),
                Some(_) => true,
            }
        }
        _ => false,
    })
}

/// `(schema, name)` of a dotted name given as a list of string nodes; the schema is everything
/// before the last part (`catalog.schema` for a three-part name). A part that is not a string
/// makes the name unrecognizable (`?`), and so unknown.
fn split_name(parts: &[protobuf::Node]) -> (Option<String>, String) {
    let mut strings: Vec<&str> = parts
        .iter()
        .map(|p| match &p.node {
            Some(NodeEnum::String(s)) => s.sval.as_str(),
            _ => "?",
        })
        .collect();
    let name = strings.pop().unwrap_or("?").to_owned();
    let schema = (!strings.is_empty()).then(|| strings.join("."));
    (schema, name)
}

/// The text of a string constant, possibly cast (`'s'::regclass`).
/// A string literal as written, no cast (a cast to a domain could run a check's function).
fn plain_string(node: &protobuf::Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::AConst(protobuf::AConst {
            val: Some(a_const::Val::Sval(s)),
            ..
        }) => Some(&s.sval),
        _ => None,
    }
}

fn string_constant(node: &protobuf::Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::AConst(c) => match &c.val {
            Some(a_const::Val::Sval(s)) => Some(&s.sval),
            _ => None,
        },
        NodeEnum::TypeCast(t) => string_constant(t.arg.as_deref()?),
        _ => None,
    }
}

fn lock_strength(strength: i32) -> &'static str {
    use protobuf::LockClauseStrength as S;
    match S::try_from(strength) {
        Ok(S::LcsForkeyshare) => "FOR KEY SHARE",
        Ok(S::LcsForshare) => "FOR SHARE",
        Ok(S::LcsFornokeyupdate) => "FOR NO KEY UPDATE",
        Ok(S::LcsForupdate) => "FOR UPDATE",
        _ => "FOR UPDATE/SHARE",
    }
}
