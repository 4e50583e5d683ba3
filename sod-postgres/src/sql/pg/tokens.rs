//! PostgreSQL's own lexer, through `pg_query::scan`: the tokens the normalized text, statement
//! shapes and the grammar check are made from.

use pg_query::protobuf::{self, Token};

/// One token of PostgreSQL's lexer, comments dropped.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tok {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: Option<Token>,
    pub(super) keyword: bool,
}

impl Tok {
    pub(super) fn is_constant(self) -> bool {
        matches!(
            self.kind,
            Some(
                Token::Iconst
                    | Token::Fconst
                    | Token::Sconst
                    | Token::Usconst
                    | Token::Bconst
                    | Token::Xconst
            )
        )
    }
}

/// `sql`'s tokens from PostgreSQL's lexer without comments, or `None` if the lexer fails or
/// reports a token that is not a slice of `sql`.
pub(super) fn lex(sql: &str) -> Option<Vec<Tok>> {
    // `scan`, not `scan_tokens`: the latter builds a slice from a null pointer when there are
    // no tokens.
    let scanned = pg_query::scan(sql).ok()?;
    let mut toks = Vec::with_capacity(scanned.tokens.len());
    for t in &scanned.tokens {
        let kind = Token::try_from(t.token).ok();
        if matches!(kind, Some(Token::SqlComment | Token::CComment)) {
            continue;
        }
        let (start, end) = (usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?);
        if start >= end || sql.get(start..end).is_none() {
            return None;
        }
        toks.push(Tok {
            start,
            end,
            kind,
            keyword: t.keyword_kind != protobuf::KeywordKind::NoKeyword as i32,
        });
    }
    Some(toks)
}
