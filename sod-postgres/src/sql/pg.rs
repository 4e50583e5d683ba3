//! The default analyzer, on PostgreSQL's own parser (libpg_query, through `pg_query`).
//!
//! Each statement's raw parse tree is walked completely ([`children`] visits every node-valued
//! field of every node type): the statement type gives the base kind, and everything found
//! below escalates it. Nothing is skipped because it "cannot matter": a function call is
//! judged wherever it appears.

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use pg_query::NodeRef;
use pg_query::protobuf;
use sod_core::OperationKind::Unknown;

use super::builder::StatementBuilder;
use super::{Analysis, Analyzer, Statement};

mod base;
mod children;
mod grammar;
mod lineage;
mod render;
mod shape;
mod tokens;
mod walker;

use self::base::{base, not_understood};
use self::render::render;
use self::walker::Walker;

use super::cache::MAX_CACHED_TEXT;
use shape::{Shaped, Shapes, Template};
use tokens::Tok;

/// How deep the walk may go. The parser itself and the protobuf decoder (recursion limit 100)
/// bound real trees well below this; it only guards the walker's own recursion.
const MAX_DEPTH: usize = 1000;

/// The default [`Analyzer`], on PostgreSQL's parser. Cheap to clone (clones share the shape
/// cache).
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::{Analyzer, PgQueryAnalyzer, SessionEffect};
///
/// let a = PgQueryAnalyzer::new().analyze("SELECT 1; set search_path = evil, pg_catalog, public");
/// assert_eq!(a.kind(), OperationKind::Admin);
/// assert_eq!(a.statements[1].effect, SessionEffect::SetSearchPath);
/// assert_eq!(a.normalized(), "SELECT 1; SET search_path = evil, pg_catalog, public");
///
/// let bad = PgQueryAnalyzer::new().analyze("SELEC 1");
/// assert_eq!(bad.kind(), OperationKind::Unknown);
/// assert!(bad.error.is_some());
/// ```
///
/// # Shape cache
///
/// [`with_shape_cache`](Self::with_shape_cache) adds a bounded cache of analyses by statement
/// *shape*: the token sequence of PostgreSQL's lexer with constant values left out. A
/// `SELECT`, `INSERT`, `UPDATE` or `DELETE` whose analysis did not depend on any constant's
/// value (it does for `nextval('seq')` and `set_config('name', …)`, for example) then serves
/// every later text of the same shape for the price of the lexer alone: the same tokens make the
/// same parse tree, and the per-text parts (normalized text, password secrets) are rebuilt from
/// the new text's own tokens. The result is exactly what a full analysis of the text gives.
///
/// ```
/// use sod_postgres::sql::{Analyzer, PgQueryAnalyzer};
///
/// let shaped = PgQueryAnalyzer::with_shape_cache(1024);
/// let first = shaped.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
/// let second = shaped.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 2");
/// assert_eq!(shaped.shapes_cached(), 1); // one shape: the constant is left out
/// assert_ne!(second.normalized(), first.normalized());
/// assert_eq!(second, PgQueryAnalyzer::new().analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 2"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct PgQueryAnalyzer {
    shapes: Option<Arc<Shapes>>,
}

impl PgQueryAnalyzer {
    /// The analyzer, without a shape cache: every text is parsed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The analyzer with a cache of up to `capacity` statement shapes (zero: none).
    pub fn with_shape_cache(capacity: usize) -> Self {
        Self {
            shapes: NonZeroUsize::new(capacity).map(|c| Arc::new(Shapes::new(c))),
        }
    }

    /// How many shapes are cached now.
    pub fn shapes_cached(&self) -> usize {
        self.shapes.as_ref().map_or(0, |s| s.len())
    }
}

impl Analyzer for PgQueryAnalyzer {
    fn analyze(&self, sql: &str) -> Analysis {
        // pg_query's own tree summary (run inside `parse`) indexes and unwraps; a panic there
        // must deny the statement, not take the session down.
        catch_unwind(AssertUnwindSafe(|| analyze(sql, self.shapes.as_deref()))).unwrap_or_else(
            |_| {
                tracing::error!(
                    "the SQL analyzer panicked; the statement is treated as not understood"
                );
                Analysis::not_understood(sql, "internal error in the SQL analyzer")
            },
        )
    }
}

fn analyze(sql: &str, shapes: Option<&Shapes>) -> Analysis {
    let toks = tokens::lex(sql);
    let mut analysis = analyze_lexed(sql, shapes, toks.as_deref());
    // Literal forms are per text (a shape leaves constants' values out).
    if let Some(need) = toks.as_deref().and_then(|t| grammar::of_tokens(sql, t)) {
        for s in &mut analysis.statements {
            if s.needs.as_ref().is_none_or(|n| n.major < need.major) {
                s.needs = Some(need.clone());
            }
        }
    }
    analysis
}

fn analyze_lexed(sql: &str, shapes: Option<&Shapes>, toks: Option<&[Tok]>) -> Analysis {
    let (Some(shapes), Some(toks)) = (shapes.filter(|_| sql.len() <= MAX_CACHED_TEXT), toks) else {
        return analyze_parsed(sql, toks).0;
    };
    let key = shape::key(sql, toks);
    if let Some(analysis) = shapes.get(&key).and_then(|t| t.instantiate(sql, toks)) {
        return analysis;
    }
    let (analysis, template) = analyze_parsed(sql, Some(toks));
    if let Some(template) = template {
        shapes.put(key, Arc::new(template));
    }
    analysis
}

/// A full analysis (parse and walk), and its template if it holds for every text of the shape.
fn analyze_parsed(sql: &str, toks: Option<&[Tok]>) -> (Analysis, Option<Template>) {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(parsed) => parsed,
        Err(e) => return (Analysis::not_understood(sql, parse_error(e)), None),
    };
    let shaped: Vec<Shaped> = parsed
        .protobuf
        .stmts
        .iter()
        .map(|raw| {
            let (start, end) = statement_span(sql, raw);
            let rendered = toks.and_then(|toks| {
                let first = toks.partition_point(|t| t.start < start);
                let last = first + toks[first..].partition_point(|t| t.start < end);
                let (normalized, secrets) = render(sql, &toks[first..last], end)?;
                let exact = toks[first..last].iter().all(|t| t.end <= end);
                Some((normalized, secrets, exact.then_some(first..last)))
            });
            let (normalized, secrets, tokens) =
                rendered.unwrap_or_else(|| (source_text(sql, raw), Vec::new(), None));
            let (mut statement, constant_free) =
                match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                    Some(node) => classify(node.to_ref(), normalized),
                    None => {
                        let mut b = StatementBuilder::new(Unknown);
                        b.explain("empty statement node");
                        (b.finish("UNKNOWN", normalized, None), false)
                    }
                };
            statement.secrets = secrets;
            Shaped {
                statement,
                tokens,
                constant_free,
            }
        })
        .collect();
    let template = Template::of(&shaped);
    let analysis = Analysis {
        statements: shaped.into_iter().map(|s| s.statement).collect(),
        error: None,
    };
    (analysis, template)
}

fn parse_error(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(message) => message,
        pg_query::Error::Conversion(_) => "the statement contains a NUL byte".to_owned(),
        // The decoder's message spells out the whole path down the tree; its point is depth.
        pg_query::Error::Decode(_) => "the statement is nested too deeply to analyze".to_owned(),
        other => other.to_string(),
    }
}

/// Byte range of a statement in the source text.
fn statement_span(sql: &str, raw: &protobuf::RawStmt) -> (usize, usize) {
    let start = usize::try_from(raw.stmt_location).unwrap_or(0);
    let len = usize::try_from(raw.stmt_len).unwrap_or(0);
    let end = if len == 0 {
        sql.len()
    } else {
        start.saturating_add(len).min(sql.len())
    };
    (start.min(sql.len()), end)
}

fn source_text(sql: &str, raw: &protobuf::RawStmt) -> String {
    let (start, end) = statement_span(sql, raw);
    sql.get(start..end).unwrap_or(sql).trim().to_owned()
}

/// Classifies one top-level statement; says whether the classification holds whatever the
/// values of its constants (see [`shape`]).
fn classify(node: NodeRef<'_>, normalized: String) -> (Statement, bool) {
    if let NodeRef::SelectStmt(s) = node
        && let Some(call) = set_config_by_row(s)
        && let Ok(parsed) = pg_query::parse(&call, 0)
        && let [raw] = parsed.protobuf.stmts.as_slice()
        && let Some(equivalent) = raw.stmt.as_ref().and_then(|n| n.node.as_ref())
    {
        // Judged as the call it amounts to; never templated (its verdict reads constants).
        let (mut statement, _) = classify(equivalent.to_ref(), normalized);
        statement.tag = "SELECT".to_owned();
        return (statement, false);
    }
    let base = base(node).unwrap_or_else(|| not_understood(node));
    let mut walker = Walker::new(StatementBuilder::from_base(&base));
    walker.inspect(node);
    // The statement types whose analysis reads a constant's value only in the walker's
    // `function_call` (which records it). Others (`SET`, `COPY`, `EXPLAIN (ANALYZE 0)`, role
    // and file names, …) may read them anywhere, so they are never templated.
    let dml = matches!(
        node,
        NodeRef::SelectStmt(_)
            | NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
    );
    let (lineage, positional) = lineage::of(node);
    let constant_free = dml && !walker.read_constant && !positional;
    let mut statement = walker.b.finish(base.tag, normalized, base.effect);
    statement.lineage = lineage.map(Arc::new);
    statement.needs = grammar::of_tree(node);
    (statement, constant_free)
}

/// `SELECT set_config(name, 'value', false|true) FROM pg_settings WHERE name = 'setting'`,
/// exactly (as `pg_dump` sets `restrict_nonsystem_relation_kind` only where the server has
/// it): the call it amounts to, `SELECT set_config('setting', 'value', …)`, so the
/// setting is judged by its name. Any other shape — another column, relation, condition or
/// clause — is `None` and judged as written (a computed setting name: administration).
fn set_config_by_row(s: &protobuf::SelectStmt) -> Option<String> {
    use protobuf::node::Node as N;
    fn node(n: &protobuf::Node) -> Option<&N> {
        n.node.as_ref()
    }
    let column_name = |n: &protobuf::Node| match node(n) {
        Some(N::ColumnRef(c)) => {
            matches!(c.fields.as_slice(), [f] if matches!(node(f), Some(N::String(s)) if s.sval == "name"))
        }
        _ => false,
    };
    let text = |n: &protobuf::Node| match node(n) {
        Some(N::AConst(c)) => match &c.val {
            Some(protobuf::a_const::Val::Sval(v)) => Some(v.sval.clone()),
            _ => None,
        },
        _ => None,
    };
    let mut rest = s.clone();
    let target = std::mem::take(&mut rest.target_list);
    let from = std::mem::take(&mut rest.from_clause);
    let filter = rest.where_clause.take();
    let bare = protobuf::SelectStmt {
        op: protobuf::SetOperation::SetopNone.into(),
        limit_option: protobuf::LimitOption::Default.into(),
        ..Default::default()
    };
    if rest != bare {
        return None;
    }
    let [target] = target.as_slice() else {
        return None;
    };
    let Some(N::ResTarget(t)) = node(target) else {
        return None;
    };
    let Some(N::FuncCall(f)) = t.val.as_deref().and_then(node) else {
        return None;
    };
    let names: Vec<&str> = f
        .funcname
        .iter()
        .filter_map(|n| match node(n) {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    if !matches!(
        names.as_slice(),
        ["set_config"] | ["pg_catalog", "set_config"]
    ) || names.len() != f.funcname.len()
        || f.agg_filter.is_some()
        || f.over.is_some()
        || f.func_variadic
        || f.agg_star
        || f.agg_distinct
        || !f.agg_order.is_empty()
    {
        return None;
    }
    let [setting_arg, value_arg, local_arg] = f.args.as_slice() else {
        return None;
    };
    let local = match node(local_arg) {
        Some(N::AConst(c)) => match &c.val {
            Some(protobuf::a_const::Val::Boolval(b)) => b.boolval,
            _ => return None,
        },
        _ => return None,
    };
    let value = text(value_arg)?;
    if !column_name(setting_arg) {
        return None;
    }
    let [from] = from.as_slice() else {
        return None;
    };
    let Some(N::RangeVar(r)) = node(from) else {
        return None;
    };
    if r.relname != "pg_settings"
        || !matches!(r.schemaname.as_str(), "" | "pg_catalog")
        || !r.catalogname.is_empty()
        || r.alias.is_some()
    {
        return None;
    }
    let Some(N::AExpr(e)) = filter.as_deref().and_then(node) else {
        return None;
    };
    let is_eq = e.kind == i32::from(protobuf::AExprKind::AexprOp)
        && matches!(e.name.as_slice(), [op] if matches!(node(op), Some(N::String(s)) if s.sval == "="));
    if !is_eq || !e.lexpr.as_deref().is_some_and(column_name) {
        return None;
    }
    let setting = text(e.rexpr.as_deref()?)?;
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    Some(format!(
        "SELECT {}({}, {}, {local})",
        names.join("."),
        quote(&setting),
        quote(&value)
    ))
}

/// The node type's name (`CreateStmt`), for messages.
fn node_name(node: NodeRef<'_>) -> String {
    super::builder::variant_name(&node)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement node type has a base classification; only the three the raw parser
    /// never produces at the top level, and those whose kind field is undefined (as in a
    /// default-constructed node), are not understood.
    #[test]
    fn every_statement_type_is_mapped() {
        let statements = [
            NodeRef::AlterCollationStmt(&Default::default()),
            NodeRef::AlterDatabaseRefreshCollStmt(&Default::default()),
            NodeRef::AlterDatabaseSetStmt(&Default::default()),
            NodeRef::AlterDatabaseStmt(&Default::default()),
            NodeRef::AlterDefaultPrivilegesStmt(&Default::default()),
            NodeRef::AlterDomainStmt(&Default::default()),
            NodeRef::AlterEnumStmt(&Default::default()),
            NodeRef::AlterEventTrigStmt(&Default::default()),
            NodeRef::AlterExtensionContentsStmt(&Default::default()),
            NodeRef::AlterExtensionStmt(&Default::default()),
            NodeRef::AlterFdwStmt(&Default::default()),
            NodeRef::AlterForeignServerStmt(&Default::default()),
            NodeRef::AlterFunctionStmt(&Default::default()),
            NodeRef::AlterObjectDependsStmt(&Default::default()),
            NodeRef::AlterObjectSchemaStmt(&Default::default()),
            NodeRef::AlterOpFamilyStmt(&Default::default()),
            NodeRef::AlterOperatorStmt(&Default::default()),
            NodeRef::AlterOwnerStmt(&Default::default()),
            NodeRef::AlterPolicyStmt(&Default::default()),
            NodeRef::AlterPublicationStmt(&Default::default()),
            NodeRef::AlterRoleSetStmt(&Default::default()),
            NodeRef::AlterRoleStmt(&Default::default()),
            NodeRef::AlterSeqStmt(&Default::default()),
            NodeRef::AlterStatsStmt(&Default::default()),
            NodeRef::AlterSubscriptionStmt(&Default::default()),
            NodeRef::AlterSystemStmt(&Default::default()),
            NodeRef::AlterTableMoveAllStmt(&Default::default()),
            NodeRef::AlterTableSpaceOptionsStmt(&Default::default()),
            NodeRef::AlterTableStmt(&Default::default()),
            NodeRef::AlterTsconfigurationStmt(&Default::default()),
            NodeRef::AlterTsdictionaryStmt(&Default::default()),
            NodeRef::AlterTypeStmt(&Default::default()),
            NodeRef::AlterUserMappingStmt(&Default::default()),
            NodeRef::CallStmt(&Default::default()),
            NodeRef::CheckPointStmt(&Default::default()),
            NodeRef::ClosePortalStmt(&Default::default()),
            NodeRef::ClusterStmt(&Default::default()),
            NodeRef::CommentStmt(&Default::default()),
            NodeRef::CompositeTypeStmt(&Default::default()),
            NodeRef::ConstraintsSetStmt(&Default::default()),
            NodeRef::CopyStmt(&Default::default()),
            NodeRef::CreateAmStmt(&Default::default()),
            NodeRef::CreateCastStmt(&Default::default()),
            NodeRef::CreateConversionStmt(&Default::default()),
            NodeRef::CreateDomainStmt(&Default::default()),
            NodeRef::CreateEnumStmt(&Default::default()),
            NodeRef::CreateEventTrigStmt(&Default::default()),
            NodeRef::CreateExtensionStmt(&Default::default()),
            NodeRef::CreateFdwStmt(&Default::default()),
            NodeRef::CreateForeignServerStmt(&Default::default()),
            NodeRef::CreateForeignTableStmt(&Default::default()),
            NodeRef::CreateFunctionStmt(&Default::default()),
            NodeRef::CreateOpClassStmt(&Default::default()),
            NodeRef::CreateOpFamilyStmt(&Default::default()),
            NodeRef::CreatePlangStmt(&Default::default()),
            NodeRef::CreatePolicyStmt(&Default::default()),
            NodeRef::CreatePublicationStmt(&Default::default()),
            NodeRef::CreateRangeStmt(&Default::default()),
            NodeRef::CreateRoleStmt(&Default::default()),
            NodeRef::CreateSchemaStmt(&Default::default()),
            NodeRef::CreateSeqStmt(&Default::default()),
            NodeRef::CreateStatsStmt(&Default::default()),
            NodeRef::CreateStmt(&Default::default()),
            NodeRef::CreateSubscriptionStmt(&Default::default()),
            NodeRef::CreateTableAsStmt(&Default::default()),
            NodeRef::CreateTableSpaceStmt(&Default::default()),
            NodeRef::CreateTransformStmt(&Default::default()),
            NodeRef::CreateTrigStmt(&Default::default()),
            NodeRef::CreateUserMappingStmt(&Default::default()),
            NodeRef::CreatedbStmt(&Default::default()),
            NodeRef::DeallocateStmt(&Default::default()),
            NodeRef::DeclareCursorStmt(&Default::default()),
            NodeRef::DefineStmt(&Default::default()),
            NodeRef::DeleteStmt(&Default::default()),
            NodeRef::DiscardStmt(&Default::default()),
            NodeRef::DoStmt(&Default::default()),
            NodeRef::DropOwnedStmt(&Default::default()),
            NodeRef::DropRoleStmt(&Default::default()),
            NodeRef::DropStmt(&Default::default()),
            NodeRef::DropSubscriptionStmt(&Default::default()),
            NodeRef::DropTableSpaceStmt(&Default::default()),
            NodeRef::DropUserMappingStmt(&Default::default()),
            NodeRef::DropdbStmt(&Default::default()),
            NodeRef::ExecuteStmt(&Default::default()),
            NodeRef::ExplainStmt(&Default::default()),
            NodeRef::FetchStmt(&Default::default()),
            NodeRef::GrantRoleStmt(&Default::default()),
            NodeRef::GrantStmt(&Default::default()),
            NodeRef::ImportForeignSchemaStmt(&Default::default()),
            NodeRef::IndexStmt(&Default::default()),
            NodeRef::InsertStmt(&Default::default()),
            NodeRef::ListenStmt(&Default::default()),
            NodeRef::LoadStmt(&Default::default()),
            NodeRef::LockStmt(&Default::default()),
            NodeRef::MergeStmt(&Default::default()),
            NodeRef::NotifyStmt(&Default::default()),
            NodeRef::PlassignStmt(&Default::default()),
            NodeRef::PrepareStmt(&Default::default()),
            NodeRef::RawStmt(&Default::default()),
            NodeRef::ReassignOwnedStmt(&Default::default()),
            NodeRef::RefreshMatViewStmt(&Default::default()),
            NodeRef::ReindexStmt(&Default::default()),
            NodeRef::RenameStmt(&Default::default()),
            NodeRef::ReplicaIdentityStmt(&Default::default()),
            NodeRef::ReturnStmt(&Default::default()),
            NodeRef::RuleStmt(&Default::default()),
            NodeRef::SecLabelStmt(&Default::default()),
            NodeRef::SelectStmt(&Default::default()),
            NodeRef::SetOperationStmt(&Default::default()),
            NodeRef::TransactionStmt(&Default::default()),
            NodeRef::TruncateStmt(&Default::default()),
            NodeRef::UnlistenStmt(&Default::default()),
            NodeRef::UpdateStmt(&Default::default()),
            NodeRef::VacuumStmt(&Default::default()),
            NodeRef::VariableSetStmt(&Default::default()),
            NodeRef::VariableShowStmt(&Default::default()),
            NodeRef::ViewStmt(&Default::default()),
        ];
        for node in statements {
            let name = node_name(node);
            let base = base(node).unwrap_or_else(|| panic!("{name} has no base classification"));
            let expected_unknown = matches!(
                node,
                NodeRef::RawStmt(_)
                    | NodeRef::SetOperationStmt(_)
                    | NodeRef::PlassignStmt(_)
                    | NodeRef::DiscardStmt(_)
                    | NodeRef::TransactionStmt(_)
                    | NodeRef::VariableSetStmt(_)
            );
            assert_eq!(
                base.kind == Unknown,
                expected_unknown,
                "{name}: {:?}",
                base.kind
            );
        }
    }

    #[test]
    fn node_names() {
        assert_eq!(
            node_name(NodeRef::CheckPointStmt(&Default::default())),
            "CheckPointStmt"
        );
        assert_eq!(node_name(NodeRef::AStar(&Default::default())), "AStar");
    }
}
