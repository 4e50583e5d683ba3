//! Statement shapes: the analysis of `… WHERE aid = 1` serves `… WHERE aid = 2`.
//!
//! Clients that do not use the extended protocol (psql, `pgbench -M simple`, many ORMs' "simple"
//! modes) send the same statement over and over with different constants, so a cache keyed by
//! the exact text misses every time and each statement pays PostgreSQL's parser plus the parse
//! tree's trip through protobuf. A *shape* is a text's token sequence from PostgreSQL's own
//! lexer with the values of constants left out. Two texts of the same shape feed the grammar the
//! same tokens, so they parse to the same tree except for constant values; wherever the
//! analysis did not look at a constant value, it holds for both.
//!
//! A [`Template`] is therefore kept only for analyses that provably did not depend on a constant
//! (see [`Template::of`]); serving one runs the raw parser (a constant's value can still make
//! the grammar refuse the text) and re-does everything that *is* per text — the normalized text
//! and the password secrets — from the new text's own tokens.
//!
//! Two lexer subtleties keep constants in the key: the string after `UESCAPE` (it changes how
//! the preceding Unicode identifier or string decodes), and constant kinds themselves (an
//! integer and a float are different tokens).

use std::ops::Range;

use pg_query::protobuf::Token;

use super::tokens::Tok;
use super::{Analysis, Statement, render};
use crate::sql::cache::SharedLru;

/// The shape of a text: every token's kind, and its text unless it is a constant.
/// Unambiguous: every part is length-prefixed or fixed-size.
pub(super) fn key(sql: &str, toks: &[Tok]) -> Box<[u8]> {
    let mut key = Vec::with_capacity(sql.len() + 4 * toks.len());
    let mut after_uescape = false;
    for t in toks {
        let kind = t.kind.map_or(-1, |k| k as i32);
        key.extend_from_slice(&kind.to_le_bytes());
        key.push(u8::from(t.keyword));
        let text = &sql.as_bytes()[t.start..t.end];
        if t.is_constant() && !after_uescape {
            key.push(0);
        } else {
            key.push(1);
            key.extend_from_slice(&(text.len() as u32).to_le_bytes());
            key.extend_from_slice(text);
        }
        after_uescape = t.kind == Some(Token::Uescape);
    }
    key.into_boxed_slice()
}

/// An analysis that holds for every text of its shape: each statement with its token range,
/// normalized text and secrets left to fill in.
#[derive(Debug)]
pub(super) struct Template {
    statements: Vec<(Statement, Range<usize>)>,
}

/// What [`Template::of`] needs to know about one analysed statement.
pub(super) struct Shaped {
    /// The statement as analysed.
    pub(super) statement: Statement,
    /// Its tokens, as indices into the text's [`Tok`]s, if its normalized text was rendered
    /// from exactly these tokens.
    pub(super) tokens: Option<Range<usize>>,
    /// Whether the statement type is one whose analysis reads constants only where the walker
    /// says so (`SELECT`, `INSERT`, `UPDATE`, `DELETE`), and the walker read none.
    pub(super) constant_free: bool,
}

impl Template {
    /// A template of a successful analysis, if every statement is constant-free and its
    /// normalized text came from its own token range.
    pub(super) fn of(statements: &[Shaped]) -> Option<Self> {
        if statements.is_empty() {
            return None;
        }
        let statements = statements
            .iter()
            .map(|s| {
                let range = s.tokens.clone().filter(|_| s.constant_free)?;
                let mut statement = s.statement.clone();
                statement.normalized = String::new();
                statement.secrets = Vec::new();
                Some((statement, range))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { statements })
    }

    /// The analysis of `sql`, whose tokens `toks` have this template's shape; `None` if the
    /// text does not parse into as many statements (the caller then analyses it in full).
    pub(super) fn instantiate(&self, sql: &str, toks: &[Tok]) -> Option<Analysis> {
        // The same tokens make the same tree only if the grammar accepts the text at all, and
        // a constant's value can make it refuse (an invalid escape in `U&'…'`, `float(0)`). The
        // raw parser alone is cheap; the parse tree's serialization and walk are what the
        // template saves.
        let parsed = pg_query::split_with_parser(sql).ok()?;
        if parsed.len() != self.statements.len() {
            return None;
        }
        let statements = self
            .statements
            .iter()
            .map(|(template, range)| {
                let (normalized, secrets) = render(sql, toks.get(range.clone())?, usize::MAX)?;
                Some(Statement {
                    normalized,
                    secrets,
                    ..template.clone()
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Analysis {
            statements,
            error: None,
        })
    }
}

/// Templates by shape.
pub(super) type Shapes = SharedLru<Box<[u8]>, Template>;
