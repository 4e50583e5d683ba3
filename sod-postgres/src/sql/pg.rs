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
use pg_query::protobuf::{self, a_const, node::Node as NodeEnum};
use sod_core::OperationKind::{Admin, Read, Schema, Unknown, Write};

use super::builder::{Base, StatementBuilder, Via, parse_qualified_name};
use super::settings;
use super::{Analysis, Analyzer, SessionEffect, Statement};

mod children;
mod grammar;
mod lineage;
mod shape;

use super::cache::MAX_CACHED_TEXT;
use shape::{Shaped, Shapes, Template, Tok};

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
/// let a = PgQueryAnalyzer::new().analyze("SELECT 1; set search_path = evil, public");
/// assert_eq!(a.kind(), OperationKind::Admin);
/// assert_eq!(a.statements[1].effect, SessionEffect::SetSearchPath);
/// assert_eq!(a.normalized(), "SELECT 1; SET search_path = evil, public");
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
    let toks = shape::lex(sql);
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

/// The statement's tokens (from PostgreSQL's own lexer) joined by single spaces, except
/// around the dots of qualified names (`public.t`, `t.*`), between a function's name and its
/// `(`, after `(` and before `)`, `,` and `;`, where no space can change how the text lexes: comments and layout gone, constants and quoted identifiers exactly as written, keywords upper-cased,
/// unquoted identifiers lower-cased (as PostgreSQL folds them). A keyword is any word the
/// grammar knows as one, even where it serves as a name: a column called `name` or `value`
/// reads `NAME`/`VALUE`, so policy text patterns should match case-insensitively (`(?i)`). Two texts normalize alike only
/// if they are the same token sequence, so they mean the same thing.
///
/// This is deliberately not the parser's deparse: the deparser is the least hardened part of
/// libpg_query (it crashes on some valid statements, and prints some different statements
/// alike), while the lexer is the server's own.
/// What decides the space between two tokens in normalized text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spacing {
    /// An identifier: a part of a qualified name or a function's name.
    Ident,
    /// A keyword (which may also be part of a qualified name).
    Keyword,
    /// The dot between the parts of a qualified name.
    Dot,
    /// `*`, which may end a qualified name (`t.*`).
    Star,
    Open,
    /// `)`, `,` or `;`.
    Close,
    Other,
}

impl Spacing {
    fn of(kind: Option<protobuf::Token>, keyword: bool) -> Self {
        use protobuf::Token as T;
        match kind {
            _ if keyword => Self::Keyword,
            Some(T::Ident) => Self::Ident,
            Some(T::Ascii46) => Self::Dot,
            Some(T::Ascii42) => Self::Star,
            Some(T::Ascii40) => Self::Open,
            Some(T::Ascii41 | T::Ascii44 | T::Ascii59) => Self::Close,
            _ => Self::Other,
        }
    }

    /// Whether a space goes between `self` and `next`. Only pairs that cannot lex differently
    /// without it are joined: names and dots (a number and a dot keep their space: `1.5` is
    /// one token), and punctuation that never belongs to a longer token.
    fn space_before(self, next: Spacing) -> bool {
        !matches!(
            (self, next),
            (Self::Ident | Self::Keyword | Self::Close, Self::Dot)
                | (Self::Dot, Self::Ident | Self::Keyword | Self::Star)
                | (Self::Ident, Self::Open)
                | (Self::Open, _)
                | (_, Self::Close)
        )
    }
}

/// The statement's text from the lexer's tokens: comments and layout gone, keywords upper
/// case, unquoted names lower case, constants kept — except string constants after the
/// keyword `PASSWORD`, which become `'***'` and are returned apart (see
/// [`Statement::secrets`](super::Statement::secrets)). Tokens that end beyond `end` are left
/// out. `None` when no token is left (the caller falls back to the source text).
fn render(sql: &str, toks: &[Tok], end: usize) -> Option<(String, Vec<String>)> {
    let mut secrets = Vec::new();
    let mut after_password = false;
    let mut out = String::with_capacity(
        toks.last().map_or(0, |t| t.end) - toks.first().map_or(0, |t| t.start),
    );
    let mut prev: Option<Spacing> = None;
    for t in toks.iter().filter(|t| t.end <= end) {
        // `lex` checked that every token is a slice of `sql`.
        let text = sql.get(t.start..t.end)?;
        let this = Spacing::of(t.kind, t.keyword);
        if let Some(prev) = prev
            && prev.space_before(this)
        {
            out.push(' ');
        }
        prev = Some(this);
        let password = std::mem::replace(
            &mut after_password,
            t.keyword && text.eq_ignore_ascii_case("password"),
        );
        if password
            && matches!(
                t.kind,
                Some(protobuf::Token::Sconst | protobuf::Token::Usconst)
            )
        {
            secrets.push(text.to_owned());
            out.push_str("'***'");
        } else if t.keyword {
            out.push_str(&text.to_ascii_uppercase());
        } else if t.kind == Some(protobuf::Token::Ident)
            && !text.starts_with('"')
            && !text.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("u&"))
        {
            out.push_str(&text.to_ascii_lowercase());
        } else {
            out.push_str(text);
        }
    }
    // A terminating semicolon is not part of the statement (one inside it, as in a
    // `BEGIN ATOMIC` body, is).
    if let Some(stripped) = out.strip_suffix(';') {
        out.truncate(stripped.len());
    }
    (!out.is_empty()).then_some((out, secrets))
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

/// A catalog change of kind schema, or admin when it concerns an admin object type.
fn object_ddl(object: Option<protobuf::ObjectType>, verb: &str) -> Base {
    let tag = format!("{verb} {}", object_type_name(object));
    let kind = if object.is_some_and(is_admin_object) {
        Admin
    } else {
        Schema
    };
    Base::new(kind, tag).ddl()
}

fn not_understood(node: NodeRef<'_>) -> Base {
    Base::unknown("UNKNOWN", format!("{} is not understood", node_name(node)))
}

/// The base classification of a statement node, `None` for nodes that are not statements.
fn base(node: NodeRef<'_>) -> Option<Base> {
    use protobuf::ObjectType as O;
    let b = match node {
        // Queries.
        NodeRef::SelectStmt(s) if s.into_clause.is_some() => Base::read("SELECT INTO"),
        NodeRef::SelectStmt(_) => Base::read("SELECT"),
        NodeRef::InsertStmt(_) => Base::write("INSERT"),
        NodeRef::UpdateStmt(_) => Base::write("UPDATE"),
        NodeRef::DeleteStmt(_) => Base::write("DELETE"),
        NodeRef::MergeStmt(_) => Base::write("MERGE"),
        NodeRef::ReturnStmt(_) => Base::read("RETURN"),
        NodeRef::VariableShowStmt(_) => Base::read("SHOW"),
        NodeRef::ExplainStmt(_) => Base::read("EXPLAIN"),
        NodeRef::DeclareCursorStmt(d) => {
            Base::read("DECLARE CURSOR").effect(SessionEffect::Cursor {
                name: Some(d.portalname.clone()),
            })
        }
        NodeRef::FetchStmt(f) => {
            Base::read(if f.ismove { "MOVE" } else { "FETCH" }).effect(SessionEffect::Cursor {
                name: Some(f.portalname.clone()),
            })
        }
        NodeRef::ClosePortalStmt(c) if c.portalname.is_empty() => {
            Base::read("CLOSE CURSOR ALL").effect(SessionEffect::Cursor { name: None })
        }
        NodeRef::ClosePortalStmt(c) => Base::read("CLOSE CURSOR").effect(SessionEffect::Cursor {
            name: Some(c.portalname.clone()),
        }),
        NodeRef::ConstraintsSetStmt(_) => Base::read("SET CONSTRAINTS"),
        NodeRef::CopyStmt(c) => copy(c),
        NodeRef::CallStmt(_) => Base::write("CALL").reason("CALL runs a procedure"),
        NodeRef::TruncateStmt(_) => Base::write("TRUNCATE TABLE"),
        NodeRef::LockStmt(_) => Base::write("LOCK TABLE"),
        NodeRef::NotifyStmt(_) => Base::write("NOTIFY"),
        NodeRef::RefreshMatViewStmt(_) => Base::write("REFRESH MATERIALIZED VIEW"),

        // Session state.
        NodeRef::VariableSetStmt(s) => set(s),
        NodeRef::TransactionStmt(t) => transaction(t),
        NodeRef::PrepareStmt(p) => Base::read("PREPARE").effect(SessionEffect::Prepare {
            name: p.name.clone(),
        }),
        // The walker records the name; the kind becomes unknown when the statement is done.
        NodeRef::ExecuteStmt(_) => Base::read("EXECUTE"),
        NodeRef::DeallocateStmt(d) => {
            let name = (!d.isall && !d.name.is_empty()).then(|| d.name.clone());
            let tag = if name.is_some() {
                "DEALLOCATE"
            } else {
                "DEALLOCATE ALL"
            };
            Base::read(tag).effect(SessionEffect::Deallocate { name })
        }
        NodeRef::DiscardStmt(d) => discard(d),
        NodeRef::ListenStmt(l) => Base::read("LISTEN").effect(SessionEffect::Listen {
            channel: l.conditionname.clone(),
        }),
        NodeRef::UnlistenStmt(_) => Base::read("UNLISTEN").effect(SessionEffect::Unlisten),

        // Schema changes.
        NodeRef::CreateStmt(_) => Base::schema("CREATE TABLE"),
        NodeRef::CreateForeignTableStmt(_) => Base::admin("CREATE FOREIGN TABLE")
            .ddl()
            .reason("a foreign table reads another server, a server file or a server program"),
        NodeRef::CreateTableAsStmt(c) => match protobuf::ObjectType::try_from(c.objtype) {
            Ok(O::ObjectMatview) => Base::schema("CREATE MATERIALIZED VIEW"),
            _ => Base::schema("CREATE TABLE AS"),
        },
        NodeRef::ViewStmt(_) => Base::schema("CREATE VIEW"),
        NodeRef::IndexStmt(_) => Base::schema("CREATE INDEX"),
        NodeRef::CreateSeqStmt(_) => Base::schema("CREATE SEQUENCE"),
        NodeRef::AlterSeqStmt(_) => Base::schema("ALTER SEQUENCE"),
        NodeRef::CreateSchemaStmt(_) => Base::schema("CREATE SCHEMA"),
        NodeRef::CreateDomainStmt(_) => Base::schema("CREATE DOMAIN"),
        NodeRef::AlterDomainStmt(_) => Base::schema("ALTER DOMAIN"),
        NodeRef::CompositeTypeStmt(_)
        | NodeRef::CreateEnumStmt(_)
        | NodeRef::CreateRangeStmt(_) => Base::schema("CREATE TYPE"),
        NodeRef::AlterEnumStmt(_) | NodeRef::AlterTypeStmt(_) => Base::schema("ALTER TYPE"),
        NodeRef::DefineStmt(d) => object_ddl(protobuf::ObjectType::try_from(d.kind).ok(), "CREATE"),
        NodeRef::CreateFunctionStmt(f) => Base::schema(if f.is_procedure {
            "CREATE PROCEDURE"
        } else {
            "CREATE FUNCTION"
        }),
        NodeRef::AlterFunctionStmt(f) => {
            object_ddl(protobuf::ObjectType::try_from(f.objtype).ok(), "ALTER")
        }
        NodeRef::CreateTrigStmt(_) => Base::schema("CREATE TRIGGER"),
        NodeRef::RuleStmt(_) => Base::schema("CREATE RULE"),
        NodeRef::CreateStatsStmt(_) => Base::schema("CREATE STATISTICS"),
        NodeRef::AlterStatsStmt(_) => Base::schema("ALTER STATISTICS"),
        NodeRef::CreateCastStmt(_) => Base::schema("CREATE CAST"),
        NodeRef::CreateTransformStmt(_) => Base::schema("CREATE TRANSFORM"),
        NodeRef::CreateConversionStmt(_) => Base::schema("CREATE CONVERSION"),
        NodeRef::CreateOpClassStmt(_) => Base::schema("CREATE OPERATOR CLASS"),
        NodeRef::CreateOpFamilyStmt(_) => Base::schema("CREATE OPERATOR FAMILY"),
        NodeRef::AlterOpFamilyStmt(_) => Base::schema("ALTER OPERATOR FAMILY"),
        NodeRef::AlterOperatorStmt(_) => Base::schema("ALTER OPERATOR"),
        NodeRef::AlterCollationStmt(_) => Base::schema("ALTER COLLATION"),
        NodeRef::AlterTsdictionaryStmt(_) => Base::schema("ALTER TEXT SEARCH DICTIONARY"),
        NodeRef::AlterTsconfigurationStmt(_) => Base::schema("ALTER TEXT SEARCH CONFIGURATION"),
        NodeRef::AlterObjectDependsStmt(a) => {
            object_ddl(protobuf::ObjectType::try_from(a.object_type).ok(), "ALTER")
        }
        NodeRef::AlterTableStmt(a) => alter_table(a),
        NodeRef::ReplicaIdentityStmt(_) => Base::schema("ALTER TABLE"),
        NodeRef::DropStmt(d) => {
            object_ddl(protobuf::ObjectType::try_from(d.remove_type).ok(), "DROP")
        }
        NodeRef::RenameStmt(r) => {
            let object = match protobuf::ObjectType::try_from(r.rename_type) {
                Ok(O::ObjectColumn | O::ObjectAttribute | O::ObjectTabconstraint) => {
                    protobuf::ObjectType::try_from(r.relation_type).ok()
                }
                other => other.ok(),
            };
            object_ddl(object, "ALTER")
        }
        NodeRef::AlterObjectSchemaStmt(a) => {
            object_ddl(protobuf::ObjectType::try_from(a.object_type).ok(), "ALTER")
        }
        NodeRef::CommentStmt(_) => Base::schema("COMMENT"),

        // Administration.
        NodeRef::AlterOwnerStmt(a) => {
            let object = protobuf::ObjectType::try_from(a.object_type).ok();
            Base::admin(format!("ALTER {}", object_type_name(object)))
                .ddl()
                .reason("changes an object's owner")
        }
        NodeRef::DoStmt(_) => Base::admin("DO").ddl().reason("DO runs procedural code"),
        NodeRef::LoadStmt(_) => {
            Base::admin("LOAD").reason("LOAD loads a shared library into the server")
        }
        NodeRef::AlterSystemStmt(_) => {
            Base::admin("ALTER SYSTEM").reason("ALTER SYSTEM changes the server's configuration")
        }
        NodeRef::GrantStmt(g) => Base::admin(if g.is_grant { "GRANT" } else { "REVOKE" }).ddl(),
        NodeRef::GrantRoleStmt(g) => Base::admin(if g.is_grant {
            "GRANT ROLE"
        } else {
            "REVOKE ROLE"
        })
        .ddl(),
        NodeRef::AlterDefaultPrivilegesStmt(_) => Base::admin("ALTER DEFAULT PRIVILEGES").ddl(),
        NodeRef::CreateRoleStmt(r) => {
            Base::admin(format!("CREATE {}", role_word(r.stmt_type))).ddl()
        }
        NodeRef::AlterRoleStmt(_) | NodeRef::AlterRoleSetStmt(_) => Base::admin("ALTER ROLE").ddl(),
        NodeRef::DropRoleStmt(_) => Base::admin("DROP ROLE").ddl(),
        NodeRef::ReassignOwnedStmt(_) => Base::admin("REASSIGN OWNED").ddl(),
        NodeRef::DropOwnedStmt(_) => Base::admin("DROP OWNED").ddl(),
        NodeRef::CreateExtensionStmt(_) => Base::admin("CREATE EXTENSION").ddl(),
        NodeRef::AlterExtensionStmt(_) | NodeRef::AlterExtensionContentsStmt(_) => {
            Base::admin("ALTER EXTENSION").ddl()
        }
        NodeRef::CreatedbStmt(_) => Base::admin("CREATE DATABASE").ddl(),
        NodeRef::AlterDatabaseStmt(_)
        | NodeRef::AlterDatabaseSetStmt(_)
        | NodeRef::AlterDatabaseRefreshCollStmt(_) => Base::admin("ALTER DATABASE").ddl(),
        NodeRef::DropdbStmt(_) => Base::admin("DROP DATABASE").ddl(),
        NodeRef::CreateTableSpaceStmt(_) => Base::admin("CREATE TABLESPACE").ddl(),
        NodeRef::DropTableSpaceStmt(_) => Base::admin("DROP TABLESPACE").ddl(),
        NodeRef::AlterTableSpaceOptionsStmt(_) => Base::admin("ALTER TABLESPACE").ddl(),
        NodeRef::AlterTableMoveAllStmt(_) => Base::admin("ALTER TABLE").ddl(),
        NodeRef::CreateFdwStmt(_) => Base::admin("CREATE FOREIGN DATA WRAPPER").ddl(),
        NodeRef::AlterFdwStmt(_) => Base::admin("ALTER FOREIGN DATA WRAPPER").ddl(),
        NodeRef::CreateForeignServerStmt(_) => Base::admin("CREATE SERVER").ddl(),
        NodeRef::AlterForeignServerStmt(_) => Base::admin("ALTER SERVER").ddl(),
        NodeRef::CreateUserMappingStmt(_) => Base::admin("CREATE USER MAPPING").ddl(),
        NodeRef::AlterUserMappingStmt(_) => Base::admin("ALTER USER MAPPING").ddl(),
        NodeRef::DropUserMappingStmt(_) => Base::admin("DROP USER MAPPING").ddl(),
        NodeRef::ImportForeignSchemaStmt(_) => Base::admin("IMPORT FOREIGN SCHEMA").ddl(),
        NodeRef::CreatePublicationStmt(_) => Base::admin("CREATE PUBLICATION").ddl(),
        NodeRef::AlterPublicationStmt(_) => Base::admin("ALTER PUBLICATION").ddl(),
        NodeRef::CreateSubscriptionStmt(_) => Base::admin("CREATE SUBSCRIPTION").ddl(),
        NodeRef::AlterSubscriptionStmt(_) => Base::admin("ALTER SUBSCRIPTION").ddl(),
        NodeRef::DropSubscriptionStmt(_) => Base::admin("DROP SUBSCRIPTION").ddl(),
        NodeRef::CreateEventTrigStmt(_) => Base::admin("CREATE EVENT TRIGGER").ddl(),
        NodeRef::AlterEventTrigStmt(_) => Base::admin("ALTER EVENT TRIGGER").ddl(),
        NodeRef::CreatePlangStmt(_) => Base::admin("CREATE LANGUAGE").ddl(),
        NodeRef::CreateAmStmt(_) => Base::admin("CREATE ACCESS METHOD").ddl(),
        NodeRef::CreatePolicyStmt(_) => Base::admin("CREATE POLICY").ddl(),
        NodeRef::AlterPolicyStmt(_) => Base::admin("ALTER POLICY").ddl(),
        NodeRef::SecLabelStmt(_) => Base::admin("SECURITY LABEL").ddl(),
        NodeRef::VacuumStmt(v) => Base::admin(if v.is_vacuumcmd { "VACUUM" } else { "ANALYZE" }),
        NodeRef::ClusterStmt(_) => Base::admin("CLUSTER"),
        NodeRef::ReindexStmt(_) => Base::admin("REINDEX"),
        NodeRef::CheckPointStmt(_) => Base::admin("CHECKPOINT"),

        // Statement nodes the raw parser does not produce at the top level.
        NodeRef::RawStmt(_) | NodeRef::SetOperationStmt(_) | NodeRef::PlassignStmt(_) => {
            not_understood(node)
        }
        _ => return None,
    };
    Some(b)
}

fn copy(c: &protobuf::CopyStmt) -> Base {
    if c.is_program {
        Base::admin("COPY").reason("COPY ... PROGRAM runs a command on the server")
    } else if !c.filename.is_empty() {
        Base::admin("COPY").reason("COPY reads or writes a file on the server")
    } else if c.is_from {
        Base::write("COPY")
    } else {
        Base::read("COPY")
    }
}

fn set(s: &protobuf::VariableSetStmt) -> Base {
    use protobuf::VariableSetKind as K;
    let Ok(kind) = K::try_from(s.kind) else {
        return Base::new(Unknown, "SET").reason("unknown kind of SET");
    };
    let tag = if matches!(kind, K::VarReset | K::VarResetAll) {
        "RESET"
    } else {
        "SET"
    };
    match kind {
        K::Undefined => Base::new(Unknown, tag).reason("unknown kind of SET"),
        K::VarResetAll => Base::admin(tag)
            .effect(SessionEffect::SetSearchPath)
            .reason("RESET ALL resets every setting, including search_path"),
        K::VarSetMulti
            if [
                "transaction",
                "session characteristics",
                "transaction snapshot",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&s.name)) =>
        {
            if asks_read_write(&s.args) {
                Base::admin(tag).reason(READ_WRITE_REASON)
            } else {
                Base::read(tag)
            }
        }
        K::VarSetValue | K::VarSetDefault | K::VarSetCurrent | K::VarReset | K::VarSetMulti => {
            let class = settings::classify_setting(&s.name);
            let mut b = Base::new(class.kind, tag);
            if let Some(reason) = settings::setting_reason(&s.name) {
                b = b.reason(reason);
            }
            if class.search_path {
                b = b.effect(SessionEffect::SetSearchPath);
            }
            b
        }
    }
}

/// Why asking for a read-write transaction is an admin act: the gateway runs sessions that may
/// only read with `default_transaction_read_only`, so the server itself refuses writes hidden
/// in views, policies, operators or casts.
const READ_WRITE_REASON: &str = "asks for a read-write transaction";

/// Whether transaction options (`BEGIN …`, `SET TRANSACTION …`) include `READ WRITE`.
fn asks_read_write(options: &[protobuf::Node]) -> bool {
    options.iter().any(|n| match &n.node {
        Some(protobuf::node::Node::DefElem(d)) if d.defname == "transaction_read_only" => {
            match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(protobuf::node::Node::AConst(c)) => match &c.val {
                    Some(protobuf::a_const::Val::Ival(i)) => i.ival == 0,
                    Some(protobuf::a_const::Val::Boolval(b)) => !b.boolval,
                    // Anything else: cannot tell, so treat it as a request for read-write.
                    _ => true,
                },
                _ => true,
            }
        }
        _ => false,
    })
}

fn transaction(t: &protobuf::TransactionStmt) -> Base {
    use protobuf::TransactionStmtKind as K;
    if matches!(
        K::try_from(t.kind),
        Ok(K::TransStmtBegin | K::TransStmtStart)
    ) && asks_read_write(&t.options)
    {
        let tag = if matches!(K::try_from(t.kind), Ok(K::TransStmtBegin)) {
            "BEGIN"
        } else {
            "START TRANSACTION"
        };
        return Base::admin(tag)
            .reason(READ_WRITE_REASON)
            .effect(SessionEffect::Transaction);
    }
    let b = match K::try_from(t.kind) {
        Ok(K::TransStmtBegin) => Base::read("BEGIN"),
        Ok(K::TransStmtStart) => Base::read("START TRANSACTION"),
        Ok(K::TransStmtCommit) => Base::read("COMMIT"),
        Ok(K::TransStmtRollback | K::TransStmtRollbackTo) => Base::read("ROLLBACK"),
        Ok(K::TransStmtSavepoint) => Base::read("SAVEPOINT"),
        Ok(K::TransStmtRelease) => Base::read("RELEASE"),
        Ok(K::TransStmtPrepare) => {
            Base::admin("PREPARE TRANSACTION").reason("two-phase commit outlives the session")
        }
        Ok(K::TransStmtCommitPrepared) => Base::admin("COMMIT PREPARED")
            .reason("two-phase commit acts on another session's transaction"),
        Ok(K::TransStmtRollbackPrepared) => Base::admin("ROLLBACK PREPARED")
            .reason("two-phase commit acts on another session's transaction"),
        Ok(K::Undefined) | Err(_) => {
            return Base::new(Unknown, "UNKNOWN").reason("unknown kind of transaction statement");
        }
    };
    b.effect(SessionEffect::Transaction)
}

fn discard(d: &protobuf::DiscardStmt) -> Base {
    use protobuf::DiscardMode as M;
    match M::try_from(d.target) {
        Ok(M::DiscardAll) => Base::read("DISCARD ALL").effect(SessionEffect::Discard),
        Ok(M::DiscardPlans) => Base::read("DISCARD PLANS"),
        Ok(M::DiscardSequences) => Base::read("DISCARD SEQUENCES"),
        // Temporary tables never change how the gateway resolves names: no catalog effect.
        Ok(M::DiscardTemp) => Base::read("DISCARD TEMP"),
        Ok(M::Undefined) | Err(_) => {
            Base::new(Unknown, "DISCARD").reason("unknown kind of DISCARD")
        }
    }
}

fn alter_table(a: &protobuf::AlterTableStmt) -> Base {
    use protobuf::AlterTableType as T;
    let object = protobuf::ObjectType::try_from(a.objtype).ok();
    let mut b = object_ddl(object, "ALTER");
    if object == Some(protobuf::ObjectType::ObjectForeignTable) {
        b.kind = Admin;
        b.reason =
            Some("a foreign table reads another server, a server file or a server program".into());
    }
    for cmd in &a.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            continue;
        };
        let reason = match T::try_from(cmd.subtype) {
            Ok(T::AtChangeOwner) => "changes an object's owner",
            Ok(
                T::AtEnableRowSecurity
                | T::AtDisableRowSecurity
                | T::AtForceRowSecurity
                | T::AtNoForceRowSecurity,
            ) => "changes row-level security",
            _ => continue,
        };
        b.kind = Admin;
        b.reason = Some(reason.to_owned());
    }
    b
}

fn role_word(stmt_type: i32) -> &'static str {
    use protobuf::RoleStmtType as R;
    match R::try_from(stmt_type) {
        Ok(R::RolestmtUser) => "USER",
        Ok(R::RolestmtGroup) => "GROUP",
        _ => "ROLE",
    }
}

/// Object types whose creation, change or removal is administration rather than a schema
/// change: security, server and cluster-wide objects.
fn is_admin_object(object: protobuf::ObjectType) -> bool {
    use protobuf::ObjectType as O;
    matches!(
        object,
        O::ObjectAccessMethod
            | O::ObjectDatabase
            | O::ObjectDefacl
            | O::ObjectEventTrigger
            | O::ObjectExtension
            | O::ObjectFdw
            | O::ObjectForeignServer
            | O::ObjectLanguage
            | O::ObjectLargeobject
            | O::ObjectParameterAcl
            | O::ObjectPolicy
            | O::ObjectPublication
            | O::ObjectPublicationNamespace
            | O::ObjectPublicationRel
            | O::ObjectRole
            | O::ObjectSubscription
            | O::ObjectTablespace
            | O::ObjectUserMapping
    )
}

fn object_type_name(object: Option<protobuf::ObjectType>) -> &'static str {
    use protobuf::ObjectType as O;
    let Some(object) = object else {
        return "OBJECT";
    };
    match object {
        O::Undefined => "OBJECT",
        O::ObjectAccessMethod => "ACCESS METHOD",
        O::ObjectAggregate => "AGGREGATE",
        O::ObjectAmop => "OPERATOR FAMILY",
        O::ObjectAmproc => "OPERATOR FAMILY",
        O::ObjectAttribute => "TYPE",
        O::ObjectCast => "CAST",
        O::ObjectColumn => "TABLE",
        O::ObjectCollation => "COLLATION",
        O::ObjectConversion => "CONVERSION",
        O::ObjectDatabase => "DATABASE",
        O::ObjectDefault => "DEFAULT",
        O::ObjectDefacl => "DEFAULT PRIVILEGES",
        O::ObjectDomain => "DOMAIN",
        O::ObjectDomconstraint => "DOMAIN",
        O::ObjectEventTrigger => "EVENT TRIGGER",
        O::ObjectExtension => "EXTENSION",
        O::ObjectFdw => "FOREIGN DATA WRAPPER",
        O::ObjectForeignServer => "SERVER",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectFunction => "FUNCTION",
        O::ObjectIndex => "INDEX",
        O::ObjectLanguage => "LANGUAGE",
        O::ObjectLargeobject => "LARGE OBJECT",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectOpclass => "OPERATOR CLASS",
        O::ObjectOperator => "OPERATOR",
        O::ObjectOpfamily => "OPERATOR FAMILY",
        O::ObjectParameterAcl => "PARAMETER",
        O::ObjectPolicy => "POLICY",
        O::ObjectProcedure => "PROCEDURE",
        O::ObjectPublication => "PUBLICATION",
        O::ObjectPublicationNamespace => "PUBLICATION",
        O::ObjectPublicationRel => "PUBLICATION",
        O::ObjectRole => "ROLE",
        O::ObjectRoutine => "ROUTINE",
        O::ObjectRule => "RULE",
        O::ObjectSchema => "SCHEMA",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectSubscription => "SUBSCRIPTION",
        O::ObjectStatisticExt => "STATISTICS",
        O::ObjectTabconstraint => "TABLE",
        O::ObjectTable => "TABLE",
        O::ObjectTablespace => "TABLESPACE",
        O::ObjectTransform => "TRANSFORM",
        O::ObjectTrigger => "TRIGGER",
        O::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        O::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        O::ObjectTsparser => "TEXT SEARCH PARSER",
        O::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        O::ObjectType => "TYPE",
        O::ObjectUserMapping => "USER MAPPING",
        O::ObjectView => "VIEW",
    }
}

/// The node type's name (`CreateStmt`), for messages.
fn node_name(node: NodeRef<'_>) -> String {
    super::builder::variant_name(&node)
}

/// Walks one statement's tree into a [`StatementBuilder`].
struct Walker {
    b: StatementBuilder,
    /// CTE names visible at the current point (unqualified relation names matching one of
    /// them are not relations).
    ctes: Vec<String>,
    via: Via,
    depth: usize,
    /// The analysis looked at a constant's value (a shape template would not hold).
    read_constant: bool,
}

impl Walker {
    fn new(b: StatementBuilder) -> Self {
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
    fn inspect(&mut self, node: NodeRef<'_>) {
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
