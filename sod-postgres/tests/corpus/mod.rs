//! The shared SQL analyzer corpus (`analyzer.toml` next to this file) and its checker.
//!
//! Every backend is held to the same verdicts: a test for a backend includes this module
//! (`mod corpus;`) and calls [`check_corpus`] with the checks that backend supports; a
//! differential test can iterate [`cases`] itself.
//!
//! A case:
//!
//! ```toml
//! [[case]]
//! sql = "SELECT * FROM t"
//! kind = "read"                # required: the Analysis::kind()
//! objects = ["t"]              # optional: Analysis::objects() as "schema.name" or "name", any order
//! tag = "SELECT"               # optional: the first statement's tag
//! effect = "none"              # optional: the first statement's effect (see `effect_name`)
//! functions = ["now"]          # optional: Analysis::functions(), any order
//! error = false                # optional: whether the parser must fail
//! note = "why this case"       # optional, for readers
//! ```

#![allow(dead_code, unreachable_pub)] // Each backend's test uses the part it needs.

use serde::Deserialize;
use sod_core::OperationKind;
use sod_postgres::sql::{Analyzer, SessionEffect};

/// One corpus case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub sql: String,
    pub kind: OperationKind,
    pub objects: Option<Vec<String>>,
    pub tag: Option<String>,
    pub effect: Option<String>,
    pub functions: Option<Vec<String>>,
    pub error: Option<bool>,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

/// Which facts beyond the kind to check (a younger backend may check fewer).
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    pub objects: bool,
    pub tags: bool,
    pub effects: bool,
    pub functions: bool,
    pub errors: bool,
}

impl Checks {
    /// Everything the corpus states.
    pub const ALL: Checks = Checks {
        objects: true,
        tags: true,
        effects: true,
        functions: true,
        errors: true,
    };
    /// The operation kind only.
    pub const KIND_ONLY: Checks = Checks {
        objects: false,
        tags: false,
        effects: false,
        functions: false,
        errors: false,
    };
}

/// The corpus's cases, in file order.
pub fn cases() -> Vec<Case> {
    let corpus: Corpus =
        toml::from_str(include_str!("analyzer.toml")).expect("tests/corpus/analyzer.toml parses");
    corpus.case
}

/// The name a corpus file uses for an effect: `none`, `ddl`, `set_search_path`, `discard`,
/// `transaction`, `unlisten`, `prepare:NAME`, `execute:NAME`, `deallocate:NAME`,
/// `deallocate_all`, `listen:CHANNEL`, `cursor:NAME`, `cursor_all`.
pub fn effect_name(effect: &SessionEffect) -> String {
    match effect {
        SessionEffect::None => "none".into(),
        SessionEffect::Prepare { name } => format!("prepare:{name}"),
        SessionEffect::Execute { name } => format!("execute:{name}"),
        SessionEffect::Deallocate { name: Some(name) } => format!("deallocate:{name}"),
        SessionEffect::Deallocate { name: None } => "deallocate_all".into(),
        SessionEffect::Discard => "discard".into(),
        SessionEffect::SetSearchPath => "set_search_path".into(),
        SessionEffect::Ddl => "ddl".into(),
        SessionEffect::Transaction => "transaction".into(),
        SessionEffect::Listen { channel } => format!("listen:{channel}"),
        SessionEffect::Unlisten => "unlisten".into(),
        SessionEffect::Cursor { name: Some(name) } => format!("cursor:{name}"),
        SessionEffect::Cursor { name: None } => "cursor_all".into(),
    }
}

/// Checks every case with `analyzer`; returns one line per failed expectation.
pub fn check_corpus(analyzer: &dyn Analyzer, checks: Checks) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let a = analyzer.analyze(&case.sql);
        let mut fail = |what: String| {
            failures.push(format!(
                "case {} {:?}: {what}\n    analysis: kind {:?}, error {:?}, reasons {:?}",
                i + 1,
                case.sql,
                a.kind(),
                a.error,
                a.reasons()
            ));
        };
        if a.kind() != case.kind {
            fail(format!("kind {:?}, expected {:?}", a.kind(), case.kind));
        }
        if checks.errors {
            let expected = case.error.unwrap_or(false);
            if a.error.is_some() != expected {
                fail(format!(
                    "error {:?}, expected an error: {expected}",
                    a.error
                ));
            }
        }
        if checks.objects
            && let Some(expected) = &case.objects
        {
            let mut got: Vec<String> = a.objects().iter().map(ToString::to_string).collect();
            let mut want = expected.clone();
            got.sort();
            want.sort();
            if got != want {
                fail(format!("objects {got:?}, expected {want:?}"));
            }
        }
        if checks.functions
            && let Some(expected) = &case.functions
        {
            let mut got = a.functions();
            let mut want = expected.clone();
            got.sort();
            want.sort();
            if got != want {
                fail(format!("functions {got:?}, expected {want:?}"));
            }
        }
        if checks.tags
            && let Some(expected) = &case.tag
        {
            let got = a.statements.first().map(|s| s.tag.as_str());
            if got != Some(expected.as_str()) {
                fail(format!("tag {got:?}, expected {expected:?}"));
            }
        }
        if checks.effects
            && let Some(expected) = &case.effect
        {
            let got = a.statements.first().map(|s| effect_name(&s.effect));
            if got.as_deref() != Some(expected.as_str()) {
                fail(format!("effect {got:?}, expected {expected:?}"));
            }
        }
    }
    failures
}

/// SQL-ish tokens (including the ones where PostgreSQL's lexer and sqlparser's could differ)
/// that the analyzers' "never panics" proptests glue together.
pub const SQL_TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "t",
    "(",
    ")",
    ",",
    "'x'",
    "$$",
    "$1",
    "--",
    "/*",
    "*/",
    "\0",
    "WITH",
    "AS",
    "DELETE",
    "nextval",
    "'s'",
    ";",
    "INTO",
    "FOR UPDATE",
    "::",
    "E'\\''",
    "EXPLAIN",
    "ANALYZE",
    "\"Q\"",
    "U&\"\\0070\"",
    "COPY",
    "TO",
    "PROGRAM",
    "1",
    "<-",
    "|-",
    "+",
    "-",
    "@",
    "?",
    "\u{a0}",
    "\r",
    "\n",
    "STDIN",
    "UNION",
    "[",
    "]",
    "OPERATOR",
    "U&'x'",
    "UESCAPE",
    "CASE",
    "WHEN",
    "END",
    "->>",
    "#>",
    "!",
    "!!",
    "::int[]",
];

/// Glues `tokens` with spaces and nests the result `depth` times in `SELECT (…)`.
pub fn nested(tokens: &[&str], depth: usize) -> String {
    let mut sql = tokens.join(" ");
    for _ in 0..depth {
        sql = format!("SELECT ({sql})");
    }
    sql
}

/// Statements whose kind must not drop when their spelling changes.
pub const SPELLING_SAMPLES: &[&str] = &[
    "SELECT * FROM t WHERE id = 1",
    "DELETE FROM t WHERE id = 1",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "SELECT nextval('s')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT * INTO t FROM x",
    "SELECT * FROM t FOR UPDATE",
    "EXPLAIN ANALYZE DELETE FROM t",
    "SET ROLE postgres",
    "set search_path = evil, public",
    "COPY t TO PROGRAM 'sh'",
    "GRANT SELECT ON t TO bob",
    "CREATE TABLE t (a int DEFAULT f())",
    "SELECT lo_import('/etc/passwd')",
    "CALL p()",
    "VACUUM t",
    "SELECT 1; DROP TABLE t",
];

/// Re-spells `sql` outside string literals: flips the case of letters, widens spaces,
/// inserts comments between tokens.
pub fn respell(sql: &str, flips: &[bool], comments: &[u8]) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for (i, c) in sql.chars().enumerate() {
        if c == '\'' {
            quoted = !quoted;
        }
        let flip = flips.get(i % flips.len().max(1)).copied().unwrap_or(false);
        if !quoted && c == ' ' {
            match comments
                .get(i % comments.len().max(1))
                .copied()
                .unwrap_or(0)
                % 4
            {
                0 => out.push(' '),
                1 => out.push_str(" /* x */ "),
                2 => out.push_str(" --\n"),
                _ => out.push_str("\n\t  "),
            }
        } else if !quoted && flip && c.is_ascii_alphabetic() {
            out.push(if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
        } else {
            out.push(c);
        }
    }
    out
}
