//! Expressions: each is walked with the clause it stands in; a column reference records a
//! use there.

use pg_query::NodeRef;
use pg_query::protobuf::{self, node::Node as NodeEnum};

use super::scope::{Source, Val};
use super::{MAX_DEPTH, Walk, fields, is_star_ref, sort_key, split};
use crate::sql::functions::{
    classify_operator, computes_from_arguments, is_builtin_type, shows_untraceable_text,
};
use crate::sql::lineage::{Clause, OPAQUE_AGGREGATES, Ref, absorb, add};
use crate::sql::pg::children;

impl Walk {
    pub(super) fn expr_of(&mut self, node: Option<&protobuf::Node>, clause: Clause) -> Vec<Ref> {
        self.expr(
            node.and_then(|n| n.node.as_ref()).map(NodeEnum::to_ref),
            clause,
            None,
        )
    }

    /// An expression standing in `clause`, inside the construct `within`: records a use for
    /// every reference in it and returns them all.
    pub(super) fn expr(
        &mut self,
        node: Option<NodeRef<'_>>,
        clause: Clause,
        within: Option<&str>,
    ) -> Vec<Ref> {
        let Some(node) = node else {
            return Vec::new();
        };
        if self.depth >= MAX_DEPTH {
            self.untraceable("expression nested too deeply to follow");
            return Vec::new();
        }
        self.depth += 1;
        let r = self.expr_inner(node, clause, within);
        self.depth -= 1;
        r
    }

    /// The children of `node`, each inside `within`.
    fn children(&mut self, node: NodeRef<'_>, clause: Clause, within: &str) -> Vec<Ref> {
        let mut refs = Vec::new();
        children::for_each_child(node, &mut |child| {
            absorb(&mut refs, self.expr(Some(child), clause, Some(within)));
        });
        refs
    }

    fn expr_inner(&mut self, node: NodeRef<'_>, clause: Clause, within: Option<&str>) -> Vec<Ref> {
        match node {
            NodeRef::ColumnRef(c) => {
                let v = self.column(&fields(c));
                self.unknown_value |= v.unknown;
                self.record(&v.refs, clause, within);
                v.refs
            }
            NodeRef::AConst(_)
            | NodeRef::ParamRef(_)
            | NodeRef::SqlvalueFunction(_)
            | NodeRef::String(_)
            | NodeRef::Integer(_)
            | NodeRef::Float(_)
            | NodeRef::Boolean(_)
            | NodeRef::BitString(_)
            | NodeRef::AStar(_)
            | NodeRef::SetToDefault(_) => Vec::new(),
            NodeRef::FuncCall(f) => self.function_call(f, clause),
            NodeRef::AExpr(e) => {
                let (schema, symbol) = split(&e.name);
                // BETWEEN, LIKE and friends carry a keyword, not an operator.
                let keyword = symbol.chars().all(|c| c.is_ascii_alphabetic() || c == '_');
                if !e.name.is_empty()
                    && !keyword
                    && classify_operator(schema.as_deref(), &symbol).kind
                        > sod_core::OperationKind::Read
                {
                    self.untraceable(format!(
                        "uses operator {symbol}, which may run any function"
                    ));
                }
                let within = format!("operator {symbol}");
                let mut refs = Vec::new();
                for side in [e.lexpr.as_deref(), e.rexpr.as_deref()] {
                    let side = side.and_then(|n| n.node.as_ref()).map(NodeEnum::to_ref);
                    absorb(&mut refs, self.expr(side, clause, Some(&within)));
                }
                refs
            }
            NodeRef::TypeCast(t) => {
                let mut within = "a cast".to_owned();
                if let Some(tn) = &t.type_name {
                    let (schema, name) = split(&tn.names);
                    if !is_builtin_type(schema.as_deref(), &name) {
                        self.untraceable(format!("casts to {name}, which may run a user function"));
                    }
                    within = format!("a cast to {name}");
                }
                self.expr(
                    t.arg
                        .as_deref()
                        .and_then(|n| n.node.as_ref())
                        .map(NodeEnum::to_ref),
                    clause,
                    Some(&within),
                )
            }
            NodeRef::SubLink(s) => self.sublink(s, clause),
            NodeRef::SelectStmt(_) => {
                let q = self.statement(node);
                let refs = q.whole().refs;
                self.record(&refs, clause, Some("a subquery"));
                refs
            }
            NodeRef::AIndirection(i) => {
                if i.indirection
                    .iter()
                    .any(|n| matches!(n.node, Some(NodeEnum::AStar(_))))
                {
                    self.untraceable("star expansion of a row value, `(…).*`, is not followed");
                    return Vec::new();
                }
                self.children(node, clause, "a subscript or field selection")
            }
            NodeRef::CaseExpr(_) | NodeRef::CaseWhen(_) => self.children(node, clause, "CASE"),
            NodeRef::BoolExpr(_) => self.children(node, clause, "AND, OR or NOT"),
            NodeRef::NullTest(_) => self.children(node, clause, "IS NULL"),
            NodeRef::BooleanTest(_) => self.children(node, clause, "IS TRUE or IS FALSE"),
            NodeRef::CoalesceExpr(_) => self.children(node, clause, "COALESCE"),
            NodeRef::MinMaxExpr(_) => self.children(node, clause, "GREATEST or LEAST"),
            NodeRef::RowExpr(_) => self.children(node, clause, "ROW"),
            NodeRef::AArrayExpr(_) => self.children(node, clause, "ARRAY"),
            NodeRef::CollateClause(_) => self.children(node, clause, "COLLATE"),
            NodeRef::GroupingFunc(_) => self.children(node, clause, "GROUPING"),
            // Containers: their children stand where they do.
            NodeRef::List(_)
            | NodeRef::ResTarget(_)
            | NodeRef::MultiAssignRef(_)
            | NodeRef::NamedArgExpr(_)
            | NodeRef::SortBy(_)
            | NodeRef::AIndices(_) => {
                let mut refs = Vec::new();
                children::for_each_child(node, &mut |child| {
                    absorb(&mut refs, self.expr(Some(child), clause, within));
                });
                refs
            }
            NodeRef::WindowDef(w) => {
                self.window(w);
                Vec::new()
            }
            NodeRef::XmlExpr(_)
            | NodeRef::XmlSerialize(_)
            | NodeRef::JsonValueExpr(_)
            | NodeRef::JsonObjectConstructor(_)
            | NodeRef::JsonArrayConstructor(_)
            | NodeRef::JsonArrayQueryConstructor(_)
            | NodeRef::JsonKeyValue(_)
            | NodeRef::JsonOutput(_)
            | NodeRef::JsonReturning(_)
            | NodeRef::JsonFormat(_)
            | NodeRef::JsonIsPredicate(_)
            | NodeRef::JsonScalarExpr(_)
            | NodeRef::JsonSerializeExpr(_)
            | NodeRef::JsonParseExpr(_)
            | NodeRef::JsonArgument(_)
            | NodeRef::JsonFuncExpr(_)
            | NodeRef::JsonBehavior(_)
            | NodeRef::JsonObjectAgg(_)
            | NodeRef::JsonArrayAgg(_)
            | NodeRef::JsonAggConstructor(_)
            | NodeRef::JsonTablePathSpec(_) => {
                let within = crate::sql::pg::node_name(node);
                self.children(node, clause, &within)
            }
            // A type name inside an expression (XMLSERIALIZE, JSON RETURNING): built-in only.
            NodeRef::TypeName(tn) => {
                let (schema, name) = split(&tn.names);
                if !is_builtin_type(schema.as_deref(), &name) {
                    self.untraceable(format!("uses type {name}, which may run a user function"));
                }
                Vec::new()
            }
            other => {
                self.untraceable(format!(
                    "{} is not followed",
                    crate::sql::pg::node_name(other)
                ));
                Vec::new()
            }
        }
    }

    /// A function call. Its arguments stand inside it; an [opaque aggregate](OPAQUE_AGGREGATES)
    /// of plain column references reads nothing its result reveals.
    fn function_call(&mut self, f: &protobuf::FuncCall, clause: Clause) -> Vec<Ref> {
        let (schema, name) = split(&f.funcname);
        let builtin = matches!(schema.as_deref(), None | Some("pg_catalog"));
        if builtin && shows_untraceable_text(&name) {
            // Reads no table data; its value cannot be traced (masked as unknown).
            self.unknown_value = true;
        } else if builtin
            && name == "set_config"
            && f.args.len() == 3
            && f.args
                .iter()
                .all(|a| matches!(a.node, Some(NodeEnum::AConst(_))))
        {
            // `set_config('setting', 'value', false)` (pg_dump's first statement) returns the
            // setting's new value: its literal argument, read from no table.
        } else if !computes_from_arguments(schema.as_deref(), &name) {
            let shown = schema
                .as_deref()
                .map_or(name.clone(), |s| format!("{s}.{name}"));
            self.untraceable(format!(
                "calls {shown}, which may read what its arguments do not show"
            ));
        }
        if let Some(over) = &f.over {
            self.window(over);
        }
        let opaque = OPAQUE_AGGREGATES.contains(&name.as_str())
            && matches!(schema.as_deref(), None | Some("pg_catalog"))
            && !f.agg_distinct
            && f.agg_filter.is_none()
            && f.agg_order.is_empty()
            && !f.agg_within_group
            && f.args.iter().all(|a| match &a.node {
                Some(NodeEnum::ColumnRef(c)) => !is_star_ref(c) || c.fields.len() == 1,
                _ => false,
            });
        if opaque {
            // Resolved only so that a name found nowhere still counts as untraceable.
            for a in &f.args {
                if let Some(NodeEnum::ColumnRef(c)) = &a.node {
                    self.column(&fields(c));
                }
            }
            return Vec::new();
        }
        let within = format!("{name}()");
        let mut refs = Vec::new();
        for a in &f.args {
            let arg = a.node.as_ref().map(NodeEnum::to_ref);
            absorb(&mut refs, self.expr(arg, clause, Some(&within)));
        }
        let order = format!("the ORDER BY of {name}()");
        for a in &f.agg_order {
            let key = sort_key(a)
                .and_then(|k| k.node.as_ref())
                .map(NodeEnum::to_ref);
            absorb(&mut refs, self.expr(key, clause, Some(&order)));
        }
        if let Some(filter) = f.agg_filter.as_deref() {
            let filter_within = format!("the FILTER of {name}()");
            let node = filter.node.as_ref().map(NodeEnum::to_ref);
            absorb(&mut refs, self.expr(node, clause, Some(&filter_within)));
        }
        refs
    }

    /// A subquery in an expression: its outputs feed the construct around it (except for
    /// `EXISTS`, which looks only at whether there are rows).
    fn sublink(&mut self, s: &protobuf::SubLink, clause: Clause) -> Vec<Ref> {
        use protobuf::SubLinkType as T;
        let kind = T::try_from(s.sub_link_type).unwrap_or(T::Undefined);
        let within = match kind {
            T::ExistsSublink => "EXISTS (subquery)",
            T::AnySublink => "IN or ANY (subquery)",
            T::AllSublink => "ALL (subquery)",
            T::ArraySublink => "ARRAY (subquery)",
            _ => "a subquery",
        };
        let test = s
            .testexpr
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .map(NodeEnum::to_ref);
        let mut refs = self.expr(test, clause, Some(within));
        let q = self.statement_of(s.subselect.as_deref());
        if kind != T::ExistsSublink {
            let outputs = q.whole().refs;
            self.record(&outputs, clause, Some(within));
            absorb(&mut refs, outputs);
        }
        refs
    }

    /// A column reference: `name`, `alias.name`, `schema.table.name`, `*`, `alias.*`. A name
    /// found nowhere makes the statement untraceable (it reads *something*).
    pub(super) fn column(&mut self, f: &[Option<&str>]) -> Val {
        match self.lookup(f) {
            Some(v) => v,
            None => {
                let shown: Vec<&str> = f.iter().map(|p| p.unwrap_or("*")).collect();
                self.untraceable(format!("{} is not found in scope", shown.join(".")));
                Val::default()
            }
        }
    }

    /// What a column reference may be, without recording anything; `None` if nothing in
    /// scope may be it.
    pub(super) fn lookup(&self, f: &[Option<&str>]) -> Option<Val> {
        match f {
            [None] => {
                let mut v = Val::default();
                for item in self
                    .levels
                    .last()
                    .map(|l| l.items.as_slice())
                    .unwrap_or(&[])
                {
                    v.absorb(item.whole());
                }
                Some(v)
            }
            [Some(name)] => {
                // Any relation in scope, at any level, may have it; a derived item's columns
                // of that name (or of unknown name) do; an alias of that name is a whole row.
                let mut v = Val::default();
                let mut found = false;
                for item in self.levels.iter().rev().flat_map(|l| &l.items) {
                    match &item.source {
                        Source::Relation(rel) => {
                            found = true;
                            add(
                                &mut v.refs,
                                Ref::Column {
                                    relation: rel.clone(),
                                    column: (*name).to_owned(),
                                    certain: false,
                                },
                            );
                        }
                        Source::Derived(d) => {
                            if let Some(c) = d.lookup(name) {
                                found = true;
                                v.absorb(c);
                            }
                        }
                    }
                    if item.alias == *name {
                        found = true;
                        v.absorb(item.whole());
                    }
                }
                found.then_some(v)
            }
            [Some(alias), rest] => {
                let item = self.find(alias)?;
                match (rest, &item.source) {
                    (None, _) => Some(item.whole()),
                    (Some(col), Source::Relation(rel)) => Some(Val {
                        refs: vec![Ref::Column {
                            relation: rel.clone(),
                            column: (*col).to_owned(),
                            certain: true,
                        }],
                        computed: false,
                        unknown: false,
                    }),
                    (Some(col), Source::Derived(d)) => d.lookup(col),
                }
            }
            [Some(schema), Some(table), rest] => {
                let rel = self.find_relation(schema, table)?;
                Some(Val {
                    refs: vec![match rest {
                        None => Ref::Whole(rel),
                        Some(col) => Ref::Column {
                            relation: rel,
                            column: (*col).to_owned(),
                            certain: true,
                        },
                    }],
                    computed: false,
                    unknown: false,
                })
            }
            _ => None,
        }
    }
}
