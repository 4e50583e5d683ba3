//! A pure-Rust analyzer on [`sqlparser`](::sqlparser) with its PostgreSQL dialect, held to
//! the verdicts of the default [`PgQueryAnalyzer`](super::PgQueryAnalyzer) by a differential
//! test over the shared corpus (`tests/analyzer_differential.rs`).
//!
//! It applies the same classification (see the [module documentation](super)) with the same
//! shared knowledge ([`functions`](super::functions), [`settings`](super::settings) and the
//! statement builder), and fails closed in the same way. What differs is the parser, and
//! sqlparser is not PostgreSQL's parser: where the two might read a text differently, the
//! analysis would be about another statement than the one the server runs. So the analyzer
//! also refuses, as not understood, text that sqlparser reads otherwise than PostgreSQL or
//! that PostgreSQL's grammar does not have:
//!
//! - the tokens are checked against PostgreSQL's lexer first: runs of operator characters are
//!   re-split and renamed the way PostgreSQL reads them (sqlparser reads `a<-1` as `a <- 1`,
//!   `<|` as `<<|` and `==` as `=`); a symbol sqlparser's tokenizer read more text into than
//!   its own (`&>b`), non-ASCII whitespace, `U&"…"` identifiers, `UESCAPE`, parameters other
//!   than `$n` (`$1FOR`), characters sqlparser does not know and text nested too deeply are
//!   refused;
//! - sqlparser must find as many statements as PostgreSQL sees and consume the whole text
//!   (it takes what follows `COPY … FROM STDIN;` as data, and stops without complaint at an
//!   `END` after a statement);
//! - syntax sqlparser accepts from other dialects (`TOP`, `QUALIFY`, `LIKE ANY`, string
//!   aliases, `SET a = b = c`, …), and reserved words where PostgreSQL allows none (`SELECT
//!   FOR UPDATE` is not the column `FOR` aliased `UPDATE`; `SELECT FROM WHERE` has no table
//!   `WHERE`; `values(1)` is no call) make the text not understood;
//! - a statement type the analyzer does not map is [`Unknown`](OperationKind::Unknown).
//!
//! What sqlparser cannot parse is not understood ([`Analysis::not_understood`] with the
//! parser's message): `TABLE t`, `MOVE`, `REFRESH MATERIALIZED VIEW`, `DO`, `ALTER SYSTEM`,
//! `SET SCHEMA`, `GRANT role TO …`, `FOR NO KEY UPDATE`/`FOR KEY SHARE`, `ROWS FROM`,
//! `XMLELEMENT`, `CREATE PROCEDURE`/`RULE`/`STATISTICS`/`AGGREGATE`/`CAST`/`FOREIGN TABLE`,
//! `PREPARE TRANSACTION`, `CLUSTER`, `REINDEX`, `CHECKPOINT`, among others.
//!
//! The normalized text is sqlparser's printing of each statement: comments and layout gone,
//! constants kept, the case of identifiers as written (two spellings of one statement may
//! differ in their fingerprints, never the reverse). Where sqlparser's printing would read
//! differently (`- -1` prints as `--1`, a comment), it is the statement's source text.
//!
//! ```
//! use sod_core::OperationKind;
//! use sod_postgres::sql::{Analyzer, SqlParserAnalyzer};
//!
//! let a = SqlParserAnalyzer::new().analyze("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
//! assert_eq!(a.kind(), OperationKind::Write);
//! assert_eq!(a.objects()[0].to_string(), "t");
//! assert_eq!(a.reasons(), ["data-modifying CTE (DELETE)"]);
//!
//! let bad = SqlParserAnalyzer::new().analyze("SELEC 1");
//! assert_eq!(bad.kind(), OperationKind::Unknown);
//! assert!(bad.error.is_some());
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use ::sqlparser::ast::{Statement as Ast, Visit};
use ::sqlparser::dialect::PostgreSqlDialect;
use ::sqlparser::parser::Parser;
use ::sqlparser::tokenizer::Token;
#[cfg(doc)]
use sod_core::OperationKind;

use super::{Analysis, Analyzer, Statement};

mod base;
mod lexer;
mod names;
mod walker;

/// An [`Analyzer`] on sqlparser's PostgreSQL dialect, behind the `sqlparser` feature.
/// Stateless and cheap to copy.
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::{Analyzer, SessionEffect, SqlParserAnalyzer};
///
/// let a = SqlParserAnalyzer::new().analyze("SELECT 1; set search_path = evil, pg_catalog, public");
/// assert_eq!(a.kind(), OperationKind::Admin);
/// assert_eq!(a.statements[1].effect, SessionEffect::SetSearchPath);
/// assert_eq!(a.normalized(), "SELECT 1; SET search_path = evil, pg_catalog, public");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SqlParserAnalyzer;

impl SqlParserAnalyzer {
    /// The analyzer.
    pub fn new() -> Self {
        Self
    }
}

impl Analyzer for SqlParserAnalyzer {
    fn analyze(&self, sql: &str) -> Analysis {
        // Nothing here is expected to panic (the lexer bounds the depth of what is parsed and
        // walked); a panic in sqlparser must still deny the statement, not take the session
        // down.
        catch_unwind(AssertUnwindSafe(|| analyze(sql))).unwrap_or_else(|_| {
            tracing::error!(
                "the sqlparser SQL analyzer panicked; the statement is treated as not understood"
            );
            Analysis::not_understood(sql, "internal error in the SQL analyzer")
        })
    }
}

fn analyze(sql: &str) -> Analysis {
    let dialect = PostgreSqlDialect {};
    let lexed = match lexer::lex(&dialect, sql) {
        Ok(lexed) => lexed,
        Err(e) => return Analysis::not_understood(sql, e),
    };
    let sources = lexed.statements;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(lexed.tokens);
    let parsed = match parser.parse_statements() {
        Ok(parsed) => parsed,
        Err(e) => return Analysis::not_understood(sql, e.to_string()),
    };
    // sqlparser stops, successfully, at an `END` after a statement (`SELECT 1 END FOR SHARE`
    // is `SELECT 1` to it, and `1 AS "end"` locking rows to PostgreSQL).
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        return Analysis::not_understood(
            sql,
            format!(
                "sqlparser stopped before the end of the text, at {} (line {}, column {})",
                rest.token, rest.span.start.line, rest.span.start.column
            ),
        );
    }
    if parsed.len() != sources.len() {
        return Analysis::not_understood(
            sql,
            format!(
                "sqlparser found {} statements where PostgreSQL sees {}",
                parsed.len(),
                sources.len()
            ),
        );
    }
    let mut statements = Vec::with_capacity(parsed.len());
    for (ast, source) in parsed.iter().zip(sources) {
        let source = sql.get(source).unwrap_or(sql).trim();
        match classify(ast, source) {
            Ok(statement) => statements.push(statement),
            Err(why) => return Analysis::not_understood(sql, why),
        }
    }
    Analysis {
        statements,
        error: None,
    }
}

/// Classifies one top-level statement, whose source text is `source`; `Err` when sqlparser
/// accepted something PostgreSQL's grammar does not have.
fn classify(ast: &Ast, source: &str) -> Result<Statement, String> {
    if let Some(call) = set_config_by_row(ast)
        && let Ok(parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &call)
        && let [equivalent] = parsed.as_slice()
    {
        // Judged as the call it amounts to (see `set_config_by_row`).
        let mut statement = classify(equivalent, source)?;
        statement.tag = "SELECT".to_owned();
        statement.normalized = ast.to_string();
        return Ok(statement);
    }
    let base = base::base(ast);
    let mut walker = walker::Walker::new(ast, &base);
    let _ = ast.visit(&mut walker);
    if let Some(why) = walker.rejected.take() {
        return Err(why);
    }
    let normalized = if walker.unfaithful_print {
        source.to_owned()
    } else {
        ast.to_string()
    };
    Ok(walker
        .into_builder()
        .finish(base.tag, normalized, base.effect))
}

/// `SELECT set_config(name, 'value', false|true) FROM pg_settings WHERE name = 'setting'`,
/// exactly (as `pg_dump` sets `restrict_nonsystem_relation_kind`): the call it amounts to,
/// `SELECT set_config('setting', 'value', …)`. The statement must print as exactly that shape,
/// so no other clause, column, relation or condition slips through; anything else is `None`.
fn set_config_by_row(ast: &Ast) -> Option<String> {
    use ::sqlparser::ast::{
        BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr,
        TableFactor, Value,
    };
    let Ast::Query(q) = ast else {
        return None;
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(Expr::Function(f))] = sel.projection.as_slice() else {
        return None;
    };
    let function = f.name.to_string();
    if !matches!(function.as_str(), "set_config" | "pg_catalog.set_config") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let literal = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(v.value.clone()),
        _ => None,
    };
    let [_, value, local] = list.args.as_slice() else {
        return None;
    };
    let (Some(Value::SingleQuotedString(value)), Some(Value::Boolean(local))) =
        (literal(value), literal(local))
    else {
        return None;
    };
    let [from] = sel.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name: table, .. } = &from.relation else {
        return None;
    };
    let table = table.to_string();
    if !matches!(table.as_str(), "pg_settings" | "pg_catalog.pg_settings") {
        return None;
    }
    let Some(Expr::BinaryOp {
        op: BinaryOperator::Eq,
        right,
        ..
    }) = &sel.selection
    else {
        return None;
    };
    let Expr::Value(v) = right.as_ref() else {
        return None;
    };
    let Value::SingleQuotedString(setting) = &v.value else {
        return None;
    };
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let shape = format!(
        "SELECT {function}(name, {}, {local}) FROM {table} WHERE name = {}",
        quote(&value),
        quote(setting)
    );
    (ast.to_string() == shape).then(|| {
        format!(
            "SELECT {function}({}, {}, {local})",
            quote(setting),
            quote(&value)
        )
    })
}
