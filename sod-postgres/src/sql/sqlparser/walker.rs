//! The walk of one statement's tree, with sqlparser's derived [`Visitor`]: every expression,
//! query, table factor, relation name and nested statement is visited, wherever it is. The
//! hooks judge what they find with the shared [`StatementBuilder`], exactly as the `pg_query`
//! backend's walker does.
//!
//! The visitor gives no context, so the walker keeps it itself, keyed by node addresses (the
//! tree does not move while it is walked): which statements are the bodies of CTEs, `EXPLAIN
//! ANALYZE`, `PREPARE` or `COPY`; which relation names are really function names; which queries
//! are CTEs, for the scope of CTE names.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use ::sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, DateTimeField, Expr, ExtractSyntax, FromTable,
    Function, FunctionArg, FunctionArgExpr, FunctionArguments, GrantObjects, LockType, ObjectName,
    OrderByExpr, OrderBySort, Query, Select, SetExpr, Statement, TableFactor, TableObject,
    TableSampleKind, TableSampleMethod, TableSampleModifier, TrimWhereField, UnaryOperator,
    UtilityOption, Value, Visitor,
};
use sod_core::OperationKind::{Admin, Read, Schema, Write};

use super::base::{self, Base, drops_relations};
use super::names::{
    fold, function_name, into_target, is_reserved_for_relations, operator_part, relation_name,
};
use crate::sql::builder::{StatementBuilder, Via, parse_qualified_name};
use crate::sql::settings;

/// How deep the walk may go. The lexer's nesting bound keeps real trees well below this; it
/// only guards the walk itself.
const MAX_DEPTH: usize = 4000;

/// CTE names declared by one query's `WITH`.
#[derive(Debug)]
struct Scope {
    query: *const Query,
    names: Vec<String>,
    /// The CTEs' queries, in order.
    ctes: Vec<*const Query>,
    recursive: bool,
    /// How many of `names` are visible at the current point.
    visible: usize,
}

/// Walks one top-level statement into a [`StatementBuilder`].
pub(super) struct Walker {
    pub(super) b: StatementBuilder,
    /// Builders of statements whose walk is suspended while the body of a plain `EXPLAIN`
    /// (planned, not run) is walked into its own builder; with the `EXPLAIN` they belong to.
    planned: Vec<(StatementBuilder, *const Statement)>,
    scopes: Vec<Scope>,
    /// Statements already classified as part of their parent (the top-level statement, and
    /// a data-modifying statement that is the body of a `WITH` query).
    merged: HashSet<*const Statement>,
    vias: HashMap<*const Statement, Via>,
    /// Relation names that are not relations (function names in `FROM`) or already handled.
    skip_relations: HashSet<*const ObjectName>,
    /// Expressions already handled (a `TABLESAMPLE` method parsed as a function call).
    skip_exprs: HashSet<*const Expr>,
    depth: usize,
    /// Why the text cannot be analyzed although sqlparser parsed it (syntax PostgreSQL does
    /// not have, a tree too deep to walk).
    pub(super) rejected: Option<String>,
    /// sqlparser prints the statement in a way that reads differently (`- -1` as `--1`, a
    /// comment): its normalized text must be the source text instead.
    pub(super) unfaithful_print: bool,
}

impl Walker {
    /// A walker for `top`, whose base kind is `base`.
    pub(super) fn new(top: &Statement, base: &Base) -> Self {
        let b = StatementBuilder::from_base(base);
        let mut merged = HashSet::new();
        merged.insert(std::ptr::from_ref(top));
        if let Some(body) = base::dml_body(top) {
            merged.insert(std::ptr::from_ref(body));
        }
        Self {
            b,
            planned: Vec::new(),
            scopes: Vec::new(),
            merged,
            vias: HashMap::new(),
            skip_relations: HashSet::new(),
            skip_exprs: HashSet::new(),
            depth: 0,
            rejected: None,
            unfaithful_print: false,
        }
    }

    /// The builder of the top-level statement once the walk is over (also after a walk that
    /// stopped early).
    pub(super) fn into_builder(mut self) -> StatementBuilder {
        while let Some((outer, _)) = self.planned.pop() {
            let planned = std::mem::replace(&mut self.b, outer);
            self.b.absorb_planned(planned);
        }
        self.b
    }

    /// Notes syntax sqlparser accepted that PostgreSQL's grammar does not have.
    fn reject(&mut self, what: impl std::fmt::Display) {
        self.fail(format!("{what} is not PostgreSQL syntax"));
    }

    /// Notes why the text cannot be analyzed (the first reason counts).
    fn fail(&mut self, why: String) {
        if self.rejected.is_none() {
            self.rejected = Some(why);
        }
    }

    fn enter(&mut self) -> ControlFlow<()> {
        if self.depth >= MAX_DEPTH {
            self.fail("the statement is nested too deeply to analyze".to_owned());
            return ControlFlow::Break(());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // Relations.

    fn is_cte(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s.names[..s.visible].iter().any(|n| n == name))
    }

    /// A relation read (or otherwise named); an unqualified name of a CTE in scope is not one.
    fn relation(&mut self, name: &ObjectName) {
        self.skip_relations.insert(std::ptr::from_ref(name));
        if let Some(first) = name.0.first().and_then(|p| p.as_ident())
            && is_reserved_for_relations(first)
        {
            self.reject(format!("{first} as a relation name"));
        }
        match relation_name(name) {
            Some((None, n)) if self.is_cte(&n) => {}
            Some((schema, n)) => self.b.object(schema.as_deref(), &n),
            None => self.reject(format!("relation name {name}")),
        }
    }

    /// The relation a statement writes to (or creates): never a CTE reference. Writing to
    /// `pg_settings` changes settings through its rules, so it is administration.
    fn target(&mut self, name: &ObjectName) {
        self.skip_relations.insert(std::ptr::from_ref(name));
        match relation_name(name) {
            Some((schema, n)) => self.target_name(schema, &n),
            None => self.reject(format!("relation name {name}")),
        }
        if let Some(first) = name.0.first().and_then(|p| p.as_ident())
            && is_reserved_for_relations(first)
        {
            self.reject(format!("{first} as a relation name"));
        }
    }

    fn target_name(&mut self, schema: Option<String>, name: &str) {
        self.b.object(schema.as_deref(), name);
        if name == "pg_settings" && matches!(schema.as_deref(), None | Some("pg_catalog")) {
            self.b.escalate(
                Admin,
                "writing to pg_settings changes settings, including search_path",
            );
            self.b.sets_search_path();
        }
    }

    fn target_factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table { name, .. } => self.target(name),
            _ => self.reject("a data-modifying statement whose target is not a table"),
        }
    }

    // Calls.

    /// A function call found in an expression, a `FROM` clause or `CALL`.
    fn call(&mut self, name: &ObjectName, args: &[FunctionArg]) {
        let Some((schema, name)) = function_name(name) else {
            self.reject("function name");
            return;
        };
        if name == "set_config"
            && matches!(schema.as_deref(), None | Some("pg_catalog"))
            && let [setting, value, local] = args
            && let (Some(setting), Some(value)) = (plain_string(setting), plain_string(value))
            && matches!(
                local,
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))
                    if matches!(v.value, Value::Boolean(_))
            )
            && let Some(search_path) = settings::harmless_set_config(setting, value)
        {
            // `set_config('<a harmless setting>', '<value>', true|false)` with plain literals
            // (nothing to walk): a read; a search path is tracked.
            self.b.call_set_config(schema.as_deref(), search_path);
            return;
        }
        self.b.call_function(schema.as_deref(), &name);
        match name.as_str() {
            "set_config" => {
                // Setting names are case-insensitive; a computed name may be search_path.
                let search_path = match args.first().and_then(unnamed_string) {
                    Some(setting) => settings::classify_setting(&setting).search_path,
                    None => true,
                };
                if search_path {
                    self.b.sets_search_path();
                }
            }
            "nextval" | "setval" | "currval" => {
                if let Some((schema, seq)) = args
                    .first()
                    .and_then(unnamed_string)
                    .as_deref()
                    .and_then(parse_qualified_name)
                {
                    self.b.object(schema.as_deref(), &seq);
                }
            }
            _ => {}
        }
    }

    fn function(&mut self, f: &Function) {
        if f.uses_odbc_syntax || !matches!(f.parameters, FunctionArguments::None) {
            self.reject(format!("function call syntax of {}", f.name));
            return;
        }
        let args: &[FunctionArg] = match &f.args {
            FunctionArguments::List(list) => &list.args,
            FunctionArguments::None | FunctionArguments::Subquery(_) => &[],
        };
        if self.keyword_call(&f.name, Args::of(&f.args)) {
            return;
        }
        if let FunctionArguments::Subquery(_) = f.args {
            self.reject(format!("{}(SELECT …)", f.name));
            return;
        }
        self.call(&f.name, args);
    }

    /// Handles a call of one of PostgreSQL's keywords (see [`grammar_function`]); `false`
    /// when the name is an ordinary function's.
    fn keyword_call(&mut self, name: &ObjectName, args: Args<'_>) -> bool {
        match grammar_function(name, args) {
            None => false,
            Some(Special::NoCall) => true,
            Some(Special::Builtin(name)) => {
                self.builtin(&name);
                true
            }
            Some(Special::NotACall(word)) => {
                self.reject(format!("{word}(…) as a function call"));
                true
            }
        }
    }

    fn operator(&mut self, schema: Option<&str>, symbol: &str) {
        self.b.call_operator(schema, symbol);
    }

    fn binary_operator(&mut self, op: &BinaryOperator) {
        match binary_operator(op) {
            Ok(Some((schema, symbol))) => self.operator(schema.as_deref(), &symbol),
            Ok(None) => {}
            Err(()) => self.reject(format!("operator {op}")),
        }
    }

    // Statements.

    /// A statement found inside another: it runs as part of it (a CTE, `EXPLAIN ANALYZE`,
    /// `COPY (…)`, …) or is stored by it (`PREPARE`); either way the outer statement is at
    /// least as risky.
    fn nested_statement(&mut self, statement: &Statement) {
        if matches!(statement, Statement::Set(_)) {
            return;
        }
        let via = self
            .vias
            .get(&std::ptr::from_ref(statement))
            .copied()
            .unwrap_or(Via::Inside);
        let base = base::base(statement);
        if let Some(body) = base::dml_body(statement) {
            self.merged.insert(std::ptr::from_ref(body));
        }
        self.b.nested(base, via);
    }

    /// What a statement itself contributes beyond its base kind: targets, names that are
    /// relations without being visited as such, and the context its children are reached in.
    fn inspect_statement(&mut self, statement: &Statement) {
        let returning = match statement {
            Statement::Insert(i) => i.returning.as_deref(),
            Statement::Update(u) => u.returning.as_deref(),
            Statement::Delete(d) => d.returning.as_deref(),
            Statement::Merge(m) => match &m.output {
                Some(::sqlparser::ast::OutputClause::Returning { select_items, .. }) => {
                    Some(select_items.as_slice())
                }
                Some(::sqlparser::ast::OutputClause::Output { .. }) => {
                    self.reject("OUTPUT");
                    None
                }
                None => None,
            },
            _ => None,
        };
        if let Some(items) = returning {
            self.select_items(items);
        }
        let output = match statement {
            Statement::Insert(i) => i.output.is_some(),
            Statement::Update(u) => u.output.is_some(),
            Statement::Delete(d) => d.output.is_some(),
            _ => false,
        };
        if output {
            self.reject("OUTPUT");
        }
        match statement {
            Statement::Insert(i) => match &i.table {
                TableObject::TableName(name) => self.target(name),
                _ => self.reject("INSERT INTO a function or query"),
            },
            Statement::Update(u) => self.target_factor(&u.table.relation),
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                    &d.from;
                for t in tables {
                    self.target_factor(&t.relation);
                }
            }
            Statement::Merge(m) => self.target_factor(&m.table),
            Statement::Explain {
                analyze,
                options,
                statement: inner,
                ..
            } => {
                if *analyze || options.as_deref().is_some_and(explain_analyzes) {
                    self.vias
                        .insert(std::ptr::from_ref(&**inner), Via::ExplainAnalyze);
                } else {
                    // Planned, not run: only what planning may evaluate (function calls) counts.
                    let outer = std::mem::replace(&mut self.b, StatementBuilder::new(Read));
                    self.planned.push((outer, std::ptr::from_ref(statement)));
                }
            }
            Statement::Prepare {
                statement: inner, ..
            } => {
                self.vias.insert(std::ptr::from_ref(&**inner), Via::Prepare);
            }
            Statement::Execute {
                name: Some(name), ..
            } => match function_name(name) {
                Some((None, name)) => self.b.execute(&name),
                _ => self.reject(format!("EXECUTE {name}")),
            },
            Statement::Copy { source, values, .. } => {
                // Comments after `COPY … FROM STDIN;` are data to sqlparser, and printed so.
                if !values.is_empty() {
                    self.unfaithful_print = true;
                }
                match source {
                    ::sqlparser::ast::CopySource::Table { table_name, .. } => {
                        self.relation(table_name);
                    }
                    ::sqlparser::ast::CopySource::Query(q) => {
                        if let Some(body) = dml_in(q) {
                            self.vias.insert(std::ptr::from_ref(body), Via::Copy);
                        }
                    }
                }
            }
            Statement::Call(f) => {
                let args: &[FunctionArg] = match &f.args {
                    FunctionArguments::List(list) => &list.args,
                    _ => &[],
                };
                self.call(&f.name, args);
            }
            Statement::Drop {
                object_type, names, ..
            } if drops_relations(*object_type) => {
                for name in names {
                    self.relation(name);
                }
            }
            Statement::CreateSequence { name, .. } | Statement::AlterIndex { name, .. } => {
                self.relation(name);
            }
            Statement::CreateTrigger(t) => self.relation(&t.table_name),
            Statement::Vacuum(v) => {
                if let Some(name) = &v.table_name {
                    self.relation(name);
                }
            }
            Statement::CreateType {
                name,
                representation:
                    Some(::sqlparser::ast::UserDefinedTypeRepresentation::Composite { .. }),
            } => self.relation(name),
            // `ON t` names the policy's table among the policy's own name parts.
            Statement::DropPolicy(d) => {
                self.skip_relations
                    .insert(std::ptr::from_ref(&d.table_name));
            }
            Statement::CreateTable(c) => {
                // `PARTITION BY RANGE (a)`: the strategy is parsed as a call of `range`.
                if let Some(by) = &c.partition_by
                    && let Expr::Function(f) = &**by
                    && let [::sqlparser::ast::ObjectNamePart::Identifier(i)] = f.name.0.as_slice()
                    && i.quote_style.is_none()
                    && ["range", "list", "hash"]
                        .iter()
                        .any(|s| i.value.eq_ignore_ascii_case(s))
                {
                    self.skip_exprs.insert(std::ptr::from_ref(&**by));
                }
                for column in &c.columns {
                    for option in &column.options {
                        if let ::sqlparser::ast::ColumnOption::ForeignKey(fk) = &option.option {
                            self.relation(&fk.foreign_table);
                        }
                    }
                }
                for constraint in &c.constraints {
                    if let ::sqlparser::ast::TableConstraint::ForeignKey(fk) = constraint {
                        self.relation(&fk.foreign_table);
                    }
                }
            }
            Statement::Grant(::sqlparser::ast::Grant {
                objects: Some(objects),
                ..
            })
            | Statement::Revoke(::sqlparser::ast::Revoke {
                objects: Some(objects),
                ..
            }) => {
                if let GrantObjects::Tables(names) | GrantObjects::Sequences(names) = objects {
                    for name in names {
                        self.relation(name);
                    }
                }
            }
            _ => {}
        }
    }

    // Queries.

    fn query_scope(&mut self, q: &Query) {
        let ptr = std::ptr::from_ref(q);
        // Inside a CTE's query, only the CTEs before it are visible (all with RECURSIVE).
        if let Some(scope) = self.scopes.last_mut()
            && let Some(i) = scope.ctes.iter().position(|c| *c == ptr)
        {
            scope.visible = if scope.recursive {
                scope.names.len()
            } else {
                i
            };
        }
        let (names, ctes, recursive) = match &q.with {
            Some(with) => {
                for cte in &with.cte_tables {
                    if let Some(body) = dml_in(&cte.query) {
                        self.vias.insert(std::ptr::from_ref(body), Via::Cte);
                    }
                }
                (
                    with.cte_tables
                        .iter()
                        .map(|c| fold(&c.alias.name))
                        .collect(),
                    with.cte_tables
                        .iter()
                        .map(|c| std::ptr::from_ref(&*c.query))
                        .collect(),
                    with.recursive,
                )
            }
            None => (Vec::new(), Vec::new(), false),
        };
        let visible = names.len();
        self.scopes.push(Scope {
            query: ptr,
            names,
            ctes,
            recursive,
            visible,
        });
    }

    fn end_query_scope(&mut self, q: &Query) {
        let ptr = std::ptr::from_ref(q);
        if self.scopes.last().is_some_and(|s| s.query == ptr) {
            self.scopes.pop();
        }
        if let Some(scope) = self.scopes.last_mut()
            && scope.ctes.contains(&ptr)
        {
            scope.visible = scope.names.len();
        }
    }

    fn query(&mut self, q: &Query) {
        self.query_scope(q);
        for lock in &q.locks {
            let strength = match lock.lock_type {
                LockType::Update => "FOR UPDATE",
                LockType::Share => "FOR SHARE",
            };
            self.b
                .escalate(Write, format!("SELECT ... {strength} locks rows"));
        }
        if q.for_clause.is_some() {
            self.reject("FOR XML/JSON/BROWSE");
        }
        if q.settings.is_some() {
            self.reject("SETTINGS");
        }
        if q.format_clause.is_some() {
            self.reject("FORMAT");
        }
        if !q.pipe_operators.is_empty() {
            self.reject("pipe operators");
        }
        // `TABLE t` inside a query: its name is kept as plain strings, case unknown.
        let mut stack = vec![&*q.body];
        while let Some(body) = stack.pop() {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(left);
                    stack.push(right);
                }
                SetExpr::Table(_) => self.reject("TABLE inside a query"),
                _ => {}
            }
        }
    }

    fn select(&mut self, s: &Select) {
        if let Some(into) = &s.into {
            self.b.escalate(Schema, "SELECT ... INTO creates a table");
            self.b.ddl();
            match into.targets.as_slice() {
                [target] => match into_target(target) {
                    Some((schema, name)) => self.target_name(schema, &name),
                    None => self.reject(format!("SELECT ... INTO {target}")),
                },
                _ => self.reject("SELECT ... INTO several targets"),
            }
        }
        self.select_items(&s.projection);
        let foreign = [
            (!s.optimizer_hints.is_empty(), "optimizer hints"),
            (s.select_modifiers.is_some(), "SELECT modifiers"),
            (s.top.is_some(), "TOP"),
            (s.exclude.is_some(), "EXCLUDE"),
            (s.prewhere.is_some(), "PREWHERE"),
            (!s.connect_by.is_empty(), "CONNECT BY"),
            (!s.cluster_by.is_empty(), "CLUSTER BY"),
            (!s.distribute_by.is_empty(), "DISTRIBUTE BY"),
            (!s.sort_by.is_empty(), "SORT BY"),
            (!s.lateral_views.is_empty(), "LATERAL VIEW"),
            (s.qualify.is_some(), "QUALIFY"),
            (s.value_table_mode.is_some(), "SELECT AS VALUE/STRUCT"),
            (
                !matches!(s.flavor, ::sqlparser::ast::SelectFlavor::Standard),
                "FROM-first SELECT",
            ),
        ];
        if let Some((_, what)) = foreign.iter().find(|(present, _)| *present) {
            self.reject(*what);
        }
    }

    /// A select list or `RETURNING` list. PostgreSQL's aliases are names: `f('s') 'x'` is a
    /// typed constant to PostgreSQL (of type `f('s')`), a call with a string alias to
    /// sqlparser.
    fn select_items(&mut self, items: &[::sqlparser::ast::SelectItem]) {
        for item in items {
            match item {
                ::sqlparser::ast::SelectItem::ExprWithAlias { alias, .. }
                    if !matches!(alias.quote_style, None | Some('"')) =>
                {
                    self.reject(format!("{alias} as a column alias"));
                }
                ::sqlparser::ast::SelectItem::ExprWithAliases { .. } => {
                    self.reject("several aliases for one column");
                }
                _ => {}
            }
        }
    }

    fn table_factor(&mut self, factor: &TableFactor) {
        if let TableFactor::Table {
            alias: Some(alias), ..
        }
        | TableFactor::Derived {
            alias: Some(alias), ..
        }
        | TableFactor::Function {
            alias: Some(alias), ..
        } = factor
            && !matches!(alias.name.quote_style, None | Some('"'))
        {
            self.reject(format!("{} as a table alias", alias.name));
        }
        match factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                partitions,
                json_path,
                sample,
                index_hints,
                ..
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || !index_hints.is_empty()
                {
                    self.reject(format!("table options of {name}"));
                }
                match args {
                    Some(args) => {
                        self.skip_relations.insert(std::ptr::from_ref(name));
                        if args.settings.is_some() {
                            self.reject("SETTINGS");
                        }
                        if !self.keyword_call(name, Args::list(&args.args)) {
                            self.call(name, &args.args);
                        }
                    }
                    None => self.relation(name),
                }
                if let Some(sample) = sample {
                    self.tablesample(sample);
                }
            }
            TableFactor::Function { name, args, .. } => {
                if !self.keyword_call(name, Args::list(args)) {
                    self.call(name, args);
                }
            }
            TableFactor::UNNEST { with_offset, .. } => {
                if *with_offset {
                    self.reject("UNNEST ... WITH OFFSET");
                }
                self.b.call_function(None, "unnest");
            }
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::XmlTable { .. } => {}
            TableFactor::TableFunction { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. }
            | TableFactor::UnpivotExpr { .. }
            | TableFactor::MatchRecognize { .. }
            | TableFactor::SemanticView { .. } => {
                self.reject(format!("{} in FROM", base::variant_name(factor)));
            }
        }
    }

    fn tablesample(&mut self, sample: &TableSampleKind) {
        let (TableSampleKind::BeforeTableAlias(s) | TableSampleKind::AfterTableAlias(s)) = sample;
        if s.modifier != TableSampleModifier::TableSample
            || s.bucket.is_some()
            || s.offset.is_some()
            || s.quantity.as_ref().is_some_and(|q| q.unit.is_some())
        {
            self.reject("this TABLESAMPLE clause");
            return;
        }
        match (&s.name, &s.quantity) {
            (Some(method), _) => {
                let method = match method {
                    TableSampleMethod::System => "system",
                    TableSampleMethod::Bernoulli => "bernoulli",
                    TableSampleMethod::Row => "row",
                    TableSampleMethod::Block => "block",
                };
                self.b.tablesample(None, method);
            }
            // `TABLESAMPLE system_rows(10)`: the method is parsed as a function call.
            (None, Some(q)) => match &q.value {
                Expr::Function(f) if !q.parenthesized => {
                    self.skip_exprs.insert(std::ptr::from_ref(&q.value));
                    match function_name(&f.name) {
                        Some((schema, method)) => self.b.tablesample(schema.as_deref(), &method),
                        None => self.reject("TABLESAMPLE method"),
                    }
                }
                _ => self.reject("TABLESAMPLE without a method"),
            },
            (None, None) => self.reject("TABLESAMPLE without a method"),
        }
    }

    // Expressions.

    fn expr(&mut self, e: &Expr) {
        if self.skip_exprs.contains(&std::ptr::from_ref(e)) {
            return;
        }
        match e {
            // `SYSTEM_USER` (reserved in PostgreSQL) calls `pg_catalog.system_user`.
            Expr::Identifier(i)
                if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("system_user") =>
            {
                self.builtin("system_user");
            }
            // Inside a query, a column reference cannot start with a reserved word in
            // PostgreSQL: sqlparser reading `SELECT FOR UPDATE` as the column `FOR` (aliased
            // `UPDATE`) is not what PostgreSQL runs (an empty select list that locks rows),
            // nor `SELECT INTO t`. (Outside queries, option values such as `ON` are names.)
            Expr::Identifier(i) if !self.scopes.is_empty() => self.column_reference(i),
            Expr::CompoundIdentifier(parts) if !self.scopes.is_empty() => {
                if let Some(first) = parts.first() {
                    self.column_reference(first);
                }
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::CompoundFieldAccess { .. }
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::IsJson { .. }
            | Expr::Between { .. }
            | Expr::Collate { .. }
            | Expr::Nested(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::Case { .. }
            | Expr::Exists { .. }
            | Expr::Subquery(_)
            | Expr::GroupingSets(_)
            | Expr::Cube(_)
            | Expr::Rollup(_)
            | Expr::Tuple(_)
            | Expr::Named { .. }
            | Expr::Array(_)
            | Expr::Interval(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
            Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..) => self.operator(None, "="),
            Expr::IsNormalized { .. } => self.builtin("is_normalized"),
            Expr::InList { negated, .. } => {
                self.operator(None, if *negated { "<>" } else { "=" });
            }
            Expr::InSubquery { .. } => self.operator(None, "="),
            Expr::BinaryOp {
                op: BinaryOperator::Overlaps,
                ..
            } => self.builtin("overlaps"),
            Expr::BinaryOp { op, .. } => self.binary_operator(op),
            Expr::AnyOp { compare_op, .. } | Expr::AllOp { compare_op, .. } => {
                self.binary_operator(compare_op);
            }
            Expr::Like {
                negated,
                any,
                escape_char,
                ..
            } => {
                if *any {
                    self.reject("LIKE ANY");
                }
                self.operator(None, if *negated { "!~~" } else { "~~" });
                if escape_char.is_some() {
                    self.builtin("like_escape");
                }
            }
            Expr::ILike {
                negated,
                any,
                escape_char,
                ..
            } => {
                if *any {
                    self.reject("ILIKE ANY");
                }
                self.operator(None, if *negated { "!~~*" } else { "~~*" });
                if escape_char.is_some() {
                    self.builtin("like_escape");
                }
            }
            Expr::SimilarTo { negated, .. } => {
                self.operator(None, if *negated { "!~" } else { "~" });
                self.builtin("similar_to_escape");
            }
            Expr::UnaryOp { op, expr } => match unary_operator(op) {
                Ok(Some(symbol)) => {
                    // Printed without a space: `- -1` would print as `--1`.
                    if starts_with_operator_char(expr) {
                        self.unfaithful_print = true;
                    }
                    self.operator(None, symbol);
                }
                Ok(None) => {}
                Err(()) => self.reject(format!("operator {op}")),
            },
            Expr::Cast { kind, format, .. } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                    self.reject("TRY_CAST, SAFE_CAST or CAST … FORMAT");
                }
            }
            Expr::AtTimeZone { .. } => self.builtin("timezone"),
            Expr::Extract { syntax, .. } => {
                if *syntax != ExtractSyntax::From {
                    self.reject("EXTRACT without FROM");
                }
                self.builtin("extract");
            }
            Expr::Ceil { field, .. } | Expr::Floor { field, .. } => {
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)
                ) {
                    self.reject("CEIL/FLOOR with a unit");
                }
                let name = if matches!(e, Expr::Ceil { .. }) {
                    "ceil"
                } else {
                    "floor"
                };
                self.b.call_function(None, name);
            }
            Expr::Position { .. } => self.builtin("position"),
            Expr::Substring {
                special, shorthand, ..
            } => {
                if *shorthand {
                    self.b.call_function(None, "substr");
                } else if *special {
                    self.b.call_function(None, "substring");
                } else {
                    self.builtin("substring");
                }
            }
            Expr::Trim { trim_where, .. } => self.builtin(match trim_where {
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
                Some(TrimWhereField::Both) | None => "btrim",
            }),
            Expr::Overlay { .. } => self.builtin("overlay"),
            Expr::Function(f) => self.function(f),
            Expr::JsonAccess { .. }
            | Expr::InUnnest { .. }
            | Expr::RLike { .. }
            | Expr::Convert { .. }
            | Expr::Prefixed { .. }
            | Expr::Struct { .. }
            | Expr::Dictionary(_)
            | Expr::Map(_)
            | Expr::MatchAgainst { .. }
            | Expr::OuterJoin(_)
            | Expr::Prior(_)
            | Expr::Lambda(_)
            | Expr::MemberOf(_) => self.reject(format!("{} expression", base::variant_name(e))),
        }
    }

    fn column_reference(&mut self, ident: &::sqlparser::ast::Ident) {
        // Parsed as names although they are not: `DEFAULT` (in `VALUES (DEFAULT)`, `SET a =
        // DEFAULT`) and SQL value functions without parentheses (`CURRENT_ROLE`).
        const NOT_NAMES: &[&str] = &[
            "current_catalog",
            "current_date",
            "current_role",
            "current_schema",
            "current_time",
            "current_timestamp",
            "current_user",
            "default",
            "localtime",
            "localtimestamp",
            "session_user",
            "user",
        ];
        if is_reserved_for_relations(ident)
            && !NOT_NAMES
                .iter()
                .any(|n| ident.value.eq_ignore_ascii_case(n))
        {
            self.reject(format!("{ident} as a column name"));
        }
    }

    /// A built-in function PostgreSQL's grammar calls for SQL syntax (`EXTRACT(… FROM …)`
    /// calls `pg_catalog.extract`).
    fn builtin(&mut self, name: &str) {
        self.b.call_function(Some("pg_catalog"), name);
    }
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        self.enter()?;
        if !self.merged.contains(&std::ptr::from_ref(statement)) {
            self.nested_statement(statement);
        }
        self.inspect_statement(statement);
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if self
            .planned
            .last()
            .is_some_and(|(_, s)| *s == std::ptr::from_ref(statement))
            && let Some((outer, _)) = self.planned.pop()
        {
            let planned = std::mem::replace(&mut self.b, outer);
            self.b.absorb_planned(planned);
        }
        self.leave();
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.enter()?;
        self.query(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.end_query_scope(query);
        self.leave();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.select(select);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        self.enter()?;
        self.table_factor(factor);
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, _factor: &TableFactor) -> ControlFlow<()> {
        self.leave();
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.skip_relations.contains(&std::ptr::from_ref(relation)) {
            self.relation(relation);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.enter()?;
        self.expr(expr);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.leave();
        ControlFlow::Continue(())
    }

    fn pre_visit_order_by_expr(&mut self, order_by: &OrderByExpr) -> ControlFlow<()> {
        if let Some(OrderBySort::Using(op)) = &order_by.options.sort {
            match function_name(op) {
                Some((schema, symbol)) => self.operator(schema.as_deref(), &symbol),
                None => self.reject("ORDER BY ... USING operator"),
            }
        }
        if order_by.with_fill.is_some() {
            self.reject("WITH FILL");
        }
        ControlFlow::Continue(())
    }
}

/// Whether `e` prints starting with an operator character (formatting stops at the first
/// character).
fn starts_with_operator_char(e: &Expr) -> bool {
    struct First(Option<char>);
    impl std::fmt::Write for First {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            match s.chars().next() {
                Some(c) => {
                    self.0 = Some(c);
                    Err(std::fmt::Error)
                }
                None => Ok(()),
            }
        }
    }
    let mut first = First(None);
    let _ = std::fmt::Write::write_fmt(&mut first, format_args!("{e}"));
    first.0.is_some_and(|c| super::lexer::OP_CHARS.contains(c))
}

/// The data-modifying statement a query consists of (`(DELETE … RETURNING *)` as a CTE or
/// `COPY (…) TO`).
fn dml_in(q: &Query) -> Option<&Statement> {
    match &*q.body {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => Some(s),
        _ => None,
    }
}

/// Whether `EXPLAIN (…)` runs its statement: an `ANALYZE` (or `ANALYSE`, which PostgreSQL's
/// grammar turns into `analyze`) option that is not explicitly false.
fn explain_analyzes(options: &[UtilityOption]) -> bool {
    options.iter().any(|o| {
        let name = &o.name.value;
        if !(name.eq_ignore_ascii_case("analyze") || name.eq_ignore_ascii_case("analyse")) {
            return false;
        }
        match &o.arg {
            None => true,
            Some(Expr::Value(v)) => match &v.value {
                Value::Boolean(b) => *b,
                Value::Number(n, _) => n.parse::<i64>() != Ok(0),
                Value::SingleQuotedString(s) => {
                    !(s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("off"))
                }
                _ => true,
            },
            Some(Expr::Identifier(i)) => {
                !(i.value.eq_ignore_ascii_case("false") || i.value.eq_ignore_ascii_case("off"))
            }
            // `-0` is the integer 0 to PostgreSQL.
            Some(Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr,
            }) => match &**expr {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse::<i64>() != Ok(0),
                    _ => true,
                },
                _ => true,
            },
            Some(_) => true,
        }
    })
}

/// The text of an unnamed argument that is a string constant, possibly cast or parenthesized
/// (`'s'::regclass`).
/// A string literal argument as written, no cast (a cast to a domain could run a check's
/// function).
fn plain_string(arg: &FunctionArg) -> Option<&str> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn unnamed_string(arg: &FunctionArg) -> Option<String> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => string_constant(e),
        _ => None,
    }
}

fn string_constant(e: &Expr) -> Option<String> {
    let mut e = e;
    loop {
        match e {
            Expr::Cast { expr, .. } => e = expr,
            Expr::Nested(inner) => e = inner,
            Expr::Value(v) => return string_value(&v.value),
            Expr::TypedString(t) => return string_value(&t.value.value),
            _ => return None,
        }
    }
}

fn string_value(v: &Value) -> Option<String> {
    match v {
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s) => Some(s.clone()),
        Value::DollarQuotedString(d) => Some(d.value.clone()),
        _ => None,
    }
}

/// The arguments of a call, as far as PostgreSQL's keyword "functions" care.
#[derive(Clone, Copy)]
enum Args<'a> {
    /// No parentheses (`CURRENT_USER`).
    None,
    /// `(SELECT …)` as the only argument, without its own parentheses.
    Subquery,
    /// An argument list; `clauses` when it has clauses beyond plain arguments.
    List {
        args: &'a [FunctionArg],
        clauses: bool,
    },
}

impl<'a> Args<'a> {
    fn of(args: &'a FunctionArguments) -> Self {
        match args {
            FunctionArguments::None => Self::None,
            FunctionArguments::Subquery(_) => Self::Subquery,
            FunctionArguments::List(list) => Self::List {
                args: &list.args,
                clauses: !list.clauses.is_empty(),
            },
        }
    }

    fn list(args: &'a [FunctionArg]) -> Self {
        Self::List {
            args,
            clauses: false,
        }
    }
}

/// How PostgreSQL's grammar reads a call of one of its keywords.
enum Special {
    /// Not a function call (`COALESCE`, `CURRENT_USER`, `JSON_OBJECT('a': 1)`, …).
    NoCall,
    /// A call of the built-in `pg_catalog.NAME`.
    Builtin(String),
    /// Not something PostgreSQL's grammar reads as a call: a reserved word or a column-name
    /// keyword without a rule of its own (`values(1)`, `int(1)`).
    NotACall(String),
}

/// Column-name keywords (which cannot name a function) that have no call syntax of their own
/// and that sqlparser may still read as a call. Sorted (a unit test checks).
pub(super) static NOT_CALLABLE: &[&str] = &[
    "between",
    "bigint",
    "bit",
    "boolean",
    "char",
    "character",
    "dec",
    "decimal",
    "exists",
    "extract",
    "float",
    "inout",
    "int",
    "integer",
    "interval",
    "json_table",
    "national",
    "nchar",
    "none",
    "numeric",
    "out",
    "position",
    "precision",
    "real",
    "setof",
    "smallint",
    "time",
    "timestamp",
    "trim",
    "values",
    "varchar",
    "xmlattributes",
    "xmlnamespaces",
    "xmltable",
];

/// `Some` for a call PostgreSQL's grammar reads as SQL syntax rather than as a call of a
/// function of that name: only unquoted and unqualified names, which PostgreSQL reserves.
fn grammar_function(name: &ObjectName, args: Args<'_>) -> Option<Special> {
    let [::sqlparser::ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return None;
    };
    if ident.quote_style.is_some() {
        return None;
    }
    let name = ident.value.to_ascii_lowercase();
    let list = match args {
        Args::List { args, .. } => Some(args),
        _ => None,
    };
    let no_args = matches!(args, Args::None);
    let special = match name.as_str() {
        // SQL value functions.
        "current_catalog" | "current_date" | "current_role" | "current_schema" | "current_user"
        | "session_user" | "user"
            if no_args =>
        {
            Special::NoCall
        }
        "system_user" if no_args => Special::Builtin("system_user".to_owned()),
        "current_time" | "current_timestamp" | "localtime" | "localtimestamp"
            if no_args || list.is_some_and(|l| l.len() == 1) =>
        {
            Special::NoCall
        }
        // `ARRAY(SELECT …)` is a sublink, not a call.
        "array" if matches!(args, Args::Subquery) => Special::NoCall,
        // Expressions of their own in PostgreSQL's tree.
        "coalesce" | "nullif" | "greatest" | "least" | "grouping" | "merge_action" | "row"
        | "json" | "json_array" | "json_arrayagg" | "json_objectagg" | "json_query"
        | "json_value" | "json_exists" | "json_scalar" | "json_serialize" | "xmlconcat"
        | "xmlelement" | "xmlforest" | "xmlparse" | "xmlpi" | "xmlroot" | "xmlserialize" => {
            Special::NoCall
        }
        // `JSON_OBJECT(k: v)` is a constructor; `json_object(array)` the legacy function.
        "json_object" => {
            let constructor = match args {
                Args::List { args, clauses } => {
                    clauses
                        || args
                            .iter()
                            .any(|a| !matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(_))))
                }
                _ => false,
            };
            if constructor {
                Special::NoCall
            } else {
                Special::Builtin("json_object".to_owned())
            }
        }
        "xmlexists" => Special::Builtin("xmlexists".to_owned()),
        "normalize" => Special::Builtin("normalize".to_owned()),
        // `TREAT(x AS type)` calls the type's input function, `pg_catalog.type`.
        "treat" => match list {
            Some([FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Named { name, .. }))]) => {
                Special::Builtin(type_function_name(&fold(name)).to_owned())
            }
            _ => Special::NotACall(ident.value.clone()),
        },
        _ if NOT_CALLABLE.binary_search(&name.as_str()).is_ok()
            || (is_reserved_for_relations(ident) && !is_type_func_name_keyword(&name)) =>
        {
            Special::NotACall(ident.value.clone())
        }
        _ => return None,
    };
    Some(special)
}

/// The name of the function a type name's `TREAT` calls: PostgreSQL names SQL's type names
/// by their internal names (`int` is `int4`).
fn type_function_name(name: &str) -> &str {
    match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "float" => "float8",
        "boolean" => "bool",
        "dec" | "decimal" => "numeric",
        "char" | "character" | "nchar" => "bpchar",
        other => other,
    }
}

/// PostgreSQL's type/function-name keywords: reserved for relations and columns, but names
/// of functions (`left('x', 1)`).
fn is_type_func_name_keyword(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "binary"
            | "collation"
            | "concurrently"
            | "cross"
            | "current_schema"
            | "freeze"
            | "full"
            | "ilike"
            | "inner"
            | "is"
            | "isnull"
            | "join"
            | "left"
            | "like"
            | "natural"
            | "notnull"
            | "outer"
            | "overlaps"
            | "right"
            | "similar"
            | "tablesample"
            | "verbose"
    )
}

/// The PostgreSQL operator a binary operator is: `Ok(None)` for `AND`/`OR` (not operators in
/// PostgreSQL's tree), `Err` for operators PostgreSQL's grammar does not have.
fn binary_operator(op: &BinaryOperator) -> Result<Option<(Option<String>, String)>, ()> {
    use BinaryOperator as B;
    let symbol = match op {
        B::And | B::Or => return Ok(None),
        B::Plus => "+",
        B::Minus => "-",
        B::Multiply => "*",
        B::Divide => "/",
        B::Modulo => "%",
        B::StringConcat => "||",
        B::Gt => ">",
        B::Lt => "<",
        B::GtEq => ">=",
        B::LtEq => "<=",
        B::Eq => "=",
        B::NotEq => "<>",
        B::Spaceship => "<=>",
        B::BitwiseOr => "|",
        B::BitwiseAnd => "&",
        B::PGBitwiseXor => "#",
        B::PGBitwiseShiftLeft => "<<",
        B::PGBitwiseShiftRight => ">>",
        B::PGExp => "^",
        B::PGOverlap => "&&",
        B::PGRegexMatch => "~",
        B::PGRegexIMatch => "~*",
        B::PGRegexNotMatch => "!~",
        B::PGRegexNotIMatch => "!~*",
        B::PGLikeMatch => "~~",
        B::PGILikeMatch => "~~*",
        B::PGNotLikeMatch => "!~~",
        B::PGNotILikeMatch => "!~~*",
        B::PGStartsWith => "^@",
        B::Arrow => "->",
        B::LongArrow => "->>",
        B::HashArrow => "#>",
        B::HashLongArrow => "#>>",
        B::AtAt => "@@",
        B::AtArrow => "@>",
        B::ArrowAt => "<@",
        B::HashMinus => "#-",
        B::AtQuestion => "@?",
        B::Question => "?",
        B::QuestionAnd => "?&",
        B::QuestionPipe => "?|",
        B::DoubleHash => "##",
        B::LtDashGt => "<->",
        B::AndLt => "&<",
        B::AndGt => "&>",
        B::LtLtPipe => "<<|",
        B::PipeGtGt => "|>>",
        B::AndLtPipe => "&<|",
        B::PipeAndGt => "|&>",
        B::LtCaret => "<^",
        B::GtCaret => ">^",
        B::QuestionHash => "?#",
        B::QuestionDash => "?-",
        B::QuestionDashPipe => "?-|",
        B::QuestionDoublePipe => "?||",
        B::At => "@",
        B::TildeEq => "~=",
        B::Custom(s) => s.as_str(),
        B::PGCustomBinaryOperator(parts) => {
            let Some((symbol, schema)) = parts.split_last() else {
                return Err(());
            };
            let schema = (!schema.is_empty()).then(|| {
                schema
                    .iter()
                    .map(|p| operator_part(p))
                    .collect::<Vec<_>>()
                    .join(".")
            });
            return Ok(Some((schema, symbol.clone())));
        }
        // `(a, b) OVERLAPS (c, d)` is a call of `pg_catalog.overlaps`, handled by the walker
        // before it gets here.
        B::Overlaps
        | B::Xor
        | B::BitwiseXor
        | B::DuckIntegerDivide
        | B::MyIntegerDivide
        | B::Match
        | B::Regexp
        | B::Glob
        | B::Assignment => return Err(()),
    };
    Ok(Some((None, symbol.to_owned())))
}

/// The PostgreSQL prefix operator a unary operator is: `Ok(None)` for `NOT`, `Err` for
/// operators PostgreSQL's grammar does not have (postfix `!`).
fn unary_operator(op: &UnaryOperator) -> Result<Option<&'static str>, ()> {
    use UnaryOperator as U;
    Ok(Some(match op {
        U::Not => return Ok(None),
        U::Plus => "+",
        U::Minus => "-",
        U::BitwiseNot => "~",
        U::PGSquareRoot => "|/",
        U::PGCubeRoot => "||/",
        U::PGAbs => "@",
        U::AtDashAt => "@-@",
        U::DoubleAt => "@@",
        U::Hash => "#",
        U::QuestionDash => "?-",
        U::QuestionPipe => "?|",
        U::PGPrefixFactorial => "!!",
        U::BangNot => "!",
        U::PGPostfixFactorial => return Err(()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_callable_is_sorted() {
        for w in NOT_CALLABLE.windows(2) {
            assert!(w[0] < w[1], "{:?} must come before {:?}", w[1], w[0]);
        }
    }
}
