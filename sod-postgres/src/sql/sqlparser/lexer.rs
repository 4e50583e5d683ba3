//! The token stream, checked against PostgreSQL's own lexer before anything is parsed.
//!
//! sqlparser's tokenizer is not PostgreSQL's. Where the two would read the same text
//! differently, what sqlparser parses is not what the server runs, so the analysis would be
//! about another statement. This module finds those places and either rewrites the tokens to
//! PostgreSQL's reading (operators) or refuses the text (everything else):
//!
//! - **Operators.** PostgreSQL reads a run of operator characters as one operator, except that
//!   it stops before `--` and `/*` and drops trailing `+`/`-` from an operator made of SQL
//!   operator characters only (`<-` is `<` then `-`, but `|-` is one operator). sqlparser
//!   splits runs its own way; runs it splits differently are re-split PostgreSQL's way, and an
//!   operator sqlparser names otherwise than its text (`<|` is its `<<|`, `==` its `=`)
//!   becomes a custom operator of that text, as PostgreSQL reads it.
//! - **Symbols.** A punctuation or operator token must be its own text: sqlparser's tokenizer
//!   swallows the character after `&>`.
//! - **Whitespace.** PostgreSQL's whitespace is ASCII (` \t\n\r\f\v`); any other Unicode
//!   whitespace is part of an identifier to PostgreSQL (and, today, to sqlparser's dialect).
//! - **Characters sqlparser does not know** (`Token::Char`), `U&"…"` identifiers (sqlparser
//!   reads `U & "…"`), `U&'…' UESCAPE '…'`, and parameter markers other than `$` and digits
//!   (`$1FOR` is `$1 FOR` to PostgreSQL).
//! - **Depth.** sqlparser builds left-deep trees for chains of binary operators and set
//!   operations without counting them against its recursion limit; walking, printing and
//!   dropping such a tree recurses once per link. A conservative bound on the tree's depth is
//!   computed from the tokens, and text beyond it is refused.
//!
//! It also returns the source text of each statement PostgreSQL would see (non-empty runs of
//! tokens between semicolons), so that a statement sqlparser swallows (`COPY … FROM STDIN;`
//! takes the rest of the text as data) is caught, and a statement sqlparser prints unfaithfully
//! can be fingerprinted by its source.

use std::ops::Range;

use ::sqlparser::dialect::Dialect;
use ::sqlparser::keywords::Keyword;
use ::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace};

/// The most a statement may nest, by the conservative estimate of [`depth_bound`]. PostgreSQL's
/// own parse tree decoder refuses far less (about 45 levels); this only has to keep the
/// recursive walk, printing and freeing of the tree well within a 2 MiB thread stack.
pub(super) const MAX_NESTING: usize = 1000;

/// PostgreSQL's operator characters (`op_chars` in its lexer).
pub(super) const OP_CHARS: &str = "~!@#^&|`?+-*/%<>=";

/// Operator characters that let a multi-character operator end in `+` or `-`.
const NON_SQL_OP_CHARS: &str = "~!@#^&|`?%";

/// The tokens of a text PostgreSQL and sqlparser read alike.
#[derive(Debug)]
pub(super) struct Lexed {
    /// Every token, whitespace and comments included, operators split as PostgreSQL does.
    pub(super) tokens: Vec<TokenWithSpan>,
    /// The source text of each statement PostgreSQL sees (non-empty runs of tokens between
    /// semicolons), as byte ranges of the text.
    pub(super) statements: Vec<Range<usize>>,
}

/// Tokenizes `sql` with `dialect` and checks the tokens against PostgreSQL's lexer. `Err` is
/// the reason the text is not understood.
pub(super) fn lex(dialect: &dyn Dialect, sql: &str) -> Result<Lexed, String> {
    if sql.contains('\0') {
        return Err("the statement contains a NUL byte".to_owned());
    }
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    // Byte ranges of the tokens, in one pass (their locations only move forward).
    let mut cursor = Cursor::new(sql);
    let ranges: Vec<Range<usize>> = tokens
        .iter()
        .map(|t| cursor.offset(t.span.start)..cursor.offset(t.span.end))
        .collect();
    let text = |i: usize| sql.get(ranges[i].clone()).unwrap_or("");
    let mut statements: Vec<Range<usize>> = Vec::new();
    let mut in_statement = false;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::Whitespace(Whitespace::Space | Whitespace::Tab | Whitespace::Newline) => {
                if let Some(c) = text(i).chars().find(|c| !is_pg_whitespace(*c)) {
                    return Err(format!(
                        "character U+{:04X} is whitespace to sqlparser but part of a name to PostgreSQL",
                        u32::from(c)
                    ));
                }
                continue;
            }
            Token::Whitespace(_) | Token::EOF => continue,
            Token::SemiColon => {
                in_statement = false;
                continue;
            }
            Token::Char(c) => return Err(format!("unexpected character {c:?}")),
            // PostgreSQL's parameters are `$` and digits; sqlparser also takes letters after
            // them (`$1FOR` where PostgreSQL reads `$1 FOR`).
            Token::Placeholder(p)
                if !p
                    .strip_prefix('$')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                return Err(format!("parameter marker {p:?} is not PostgreSQL's"));
            }
            Token::Word(w)
                if w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case("u")
                    && adjacent(&tokens, i, |n| *n == Token::Ampersand)
                    && adjacent(
                        &tokens,
                        i + 1,
                        |n| matches!(n, Token::Word(w) if w.quote_style == Some('"')),
                    ) =>
            {
                return Err(
                    "Unicode escapes in identifiers (U&\"...\") are not supported".to_owned(),
                );
            }
            Token::UnicodeStringLiteral(_) if is_uescape(next_significant(&tokens, i + 1)) => {
                return Err("UESCAPE is not supported".to_owned());
            }
            token if is_symbol(token) => {
                // sqlparser's tokenizer swallows the character after `&>`: a symbol must be
                // its own text (operators whose text sqlparser names otherwise are renamed
                // below, as PostgreSQL names them).
                let (source, shown) = (text(i), token.to_string());
                let swallowed = source
                    .strip_prefix(shown.as_str())
                    .is_some_and(|rest| rest.chars().all(is_pg_whitespace));
                if !(swallowed || source.chars().all(|c| OP_CHARS.contains(c))) {
                    return Err(format!("sqlparser reads {source:?} as {shown:?}"));
                }
            }
            _ => {}
        }
        match statements.last_mut() {
            Some(range) if in_statement => range.end = ranges[i].end,
            _ => statements.push(ranges[i].clone()),
        }
        in_statement = true;
    }
    // Runs of adjacent operator tokens, split as PostgreSQL's lexer splits them.
    let is_operator = |i: usize| {
        !matches!(tokens[i].token, Token::Whitespace(_) | Token::EOF)
            && !text(i).is_empty()
            && text(i).chars().all(|c| OP_CHARS.contains(c))
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let mut end = i;
        while end < tokens.len()
            && is_operator(end)
            && (end == i || ranges[end - 1].end == ranges[end].start)
        {
            end += 1;
        }
        if end > i {
            let theirs: Vec<&str> = (i..end).map(text).collect();
            resplit(&tokens[i..end], &theirs, dialect, &mut out)?;
            i = end;
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    let depth = depth_bound(&out);
    if depth > MAX_NESTING {
        return Err("the statement is nested too deeply to analyze".to_owned());
    }
    Ok(Lexed {
        tokens: out,
        statements,
    })
}

/// Whether the token after `i` directly follows it (no whitespace) and satisfies `f`.
fn adjacent(tokens: &[TokenWithSpan], i: usize, f: impl Fn(&Token) -> bool) -> bool {
    match (tokens.get(i), tokens.get(i + 1)) {
        (Some(a), Some(b)) => a.span.end == b.span.start && f(&b.token),
        _ => false,
    }
}

/// Whether a token is punctuation or an operator (not a name, a literal, a parameter or
/// whitespace).
fn is_symbol(token: &Token) -> bool {
    !matches!(
        token,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Placeholder(_)
    )
}

fn is_pg_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn next_significant(tokens: &[TokenWithSpan], from: usize) -> Option<&Token> {
    tokens[from.min(tokens.len())..]
        .iter()
        .map(|t| &t.token)
        .find(|t| !matches!(t, Token::Whitespace(_)))
}

fn is_uescape(token: Option<&Token>) -> bool {
    matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("uescape"))
}

/// Pushes the tokens of an operator run, split as PostgreSQL splits it, each token standing
/// for the operator its text names.
fn resplit(
    run: &[TokenWithSpan],
    theirs: &[&str],
    dialect: &dyn Dialect,
    out: &mut Vec<TokenWithSpan>,
) -> Result<(), String> {
    let text: String = theirs.concat();
    let ours = pg_split(&text).ok_or_else(|| {
        format!("operator {text:?} contains a comment start, which PostgreSQL reads as a comment")
    })?;
    if ours == theirs {
        for (t, piece) in run.iter().zip(theirs) {
            out.push(TokenWithSpan::new(named_by(&t.token, piece), t.span));
        }
        return Ok(());
    }
    // Each of PostgreSQL's operators, as sqlparser reads it alone when that is one token of
    // the same name, else (`===>`, `@-`) as a custom operator of that name.
    let first = run
        .first()
        .map(|t| t.span.start)
        .unwrap_or(Location::of(1, 1));
    let mut column = first.column;
    for piece in ours {
        let token = match Tokenizer::new(dialect, piece).tokenize() {
            Ok(mut tokens) if tokens.len() == 1 => match tokens.pop() {
                Some(token) => named_by(&token, piece),
                None => Token::CustomBinaryOperator(piece.to_owned()),
            },
            _ => Token::CustomBinaryOperator(piece.to_owned()),
        };
        let start = Location::of(first.line, column);
        column += u64::try_from(piece.len()).unwrap_or(u64::MAX / 2);
        out.push(TokenWithSpan::new(
            token,
            Span::new(start, Location::of(first.line, column)),
        ));
    }
    Ok(())
}

/// `token` if it is the operator its source text `piece` names; otherwise a custom operator of
/// that name, which is what PostgreSQL reads. sqlparser reads `<|` as its `<<|`, and `==` as
/// `=`; `tests/analyzer_differential.rs` checks every operator of up to three characters.
fn named_by(token: &Token, piece: &str) -> Token {
    let same = (token.to_string() == piece && *token != Token::DoubleEq)
        || (piece == "!=" && *token == Token::Neq);
    if same {
        token.clone()
    } else {
        Token::CustomBinaryOperator(piece.to_owned())
    }
}

/// Splits a run of operator characters into operators as PostgreSQL's lexer does; `None` if
/// the run contains `--` or `/*` (a comment to PostgreSQL).
fn pg_split(text: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut n = rest.len();
        for comment in ["/*", "--"] {
            if let Some(i) = rest.find(comment) {
                n = n.min(i);
            }
        }
        if n == 0 {
            return None;
        }
        let bytes = rest.as_bytes();
        if n > 1
            && matches!(bytes[n - 1], b'+' | b'-')
            && !rest[..n - 1].chars().any(|c| NON_SQL_OP_CHARS.contains(c))
        {
            while n > 1 && matches!(bytes[n - 1], b'+' | b'-') {
                n -= 1;
            }
        }
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    Some(out)
}

/// A conservative bound on how deep the statement trees built from `tokens` nest: for every
/// open bracket level, the tokens since the level's last comma (an operator chain grows one
/// level per token at most) plus the level's set operations (they chain across commas), plus
/// one per open bracket.
fn depth_bound(tokens: &[TokenWithSpan]) -> usize {
    struct Level {
        since_comma: usize,
        set_operations: usize,
    }
    let mut levels = vec![Level {
        since_comma: 0,
        set_operations: 0,
    }];
    let mut outer = 0; // the sum over all levels but the innermost
    let mut max = 0;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) | Token::EOF => continue,
            Token::LParen | Token::LBracket | Token::LBrace => {
                if let Some(l) = levels.last() {
                    outer += l.since_comma + l.set_operations + 1;
                }
                levels.push(Level {
                    since_comma: 0,
                    set_operations: 0,
                });
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1 {
                    levels.pop();
                    if let Some(l) = levels.last() {
                        outer = outer.saturating_sub(l.since_comma + l.set_operations + 1);
                    }
                }
            }
            Token::Comma => {
                if let Some(l) = levels.last_mut() {
                    l.since_comma = 0;
                }
            }
            Token::SemiColon => {
                levels.truncate(1);
                levels[0] = Level {
                    since_comma: 0,
                    set_operations: 0,
                };
                outer = 0;
            }
            Token::Word(w)
                if matches!(
                    w.keyword,
                    Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::MINUS
                ) =>
            {
                if let Some(l) = levels.last_mut() {
                    l.set_operations += 1;
                    l.since_comma += 1;
                }
            }
            _ => {
                if let Some(l) = levels.last_mut() {
                    l.since_comma += 1;
                }
            }
        }
        if let Some(l) = levels.last() {
            max = max.max(outer + l.since_comma + l.set_operations + levels.len());
        }
    }
    max
}

/// Maps token locations (line and column, counted in characters as sqlparser counts them) to
/// byte offsets, moving forward through the text.
struct Cursor<'a> {
    sql: &'a str,
    offset: usize,
    line: u64,
    column: u64,
}

impl<'a> Cursor<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    /// The byte offset of `loc`; a location before the cursor (sqlparser gives none) maps
    /// to the cursor's position.
    fn offset(&mut self, loc: Location) -> usize {
        while (self.line, self.column) < (loc.line, loc.column) {
            let Some(c) = self.sql[self.offset..].chars().next() else {
                break;
            };
            self.offset += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::sqlparser::dialect::PostgreSqlDialect;

    #[test]
    fn operators_split_as_postgres_does() {
        assert_eq!(pg_split("<-"), Some(vec!["<", "-"]));
        assert_eq!(pg_split("+-"), Some(vec!["+", "-"]));
        assert_eq!(pg_split("|-"), Some(vec!["|-"]));
        assert_eq!(pg_split("@-"), Some(vec!["@-"]));
        assert_eq!(pg_split("=-+"), Some(vec!["=", "-", "+"]));
        assert_eq!(pg_split("!=-"), Some(vec!["!=-"]));
        assert_eq!(pg_split("->>"), Some(vec!["->>"]));
        assert_eq!(pg_split("<--"), None);
        assert_eq!(pg_split("+/*"), None);
    }

    fn tokens(sql: &str) -> Result<Vec<String>, String> {
        let lexed = lex(&PostgreSqlDialect {}, sql)?;
        Ok(lexed
            .tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|t| t.token.to_string())
            .collect())
    }

    #[test]
    fn runs_are_resplit() {
        assert_eq!(tokens("a<-1").expect("lexes"), ["a", "<", "-", "1"]);
        assert_eq!(tokens("a |- b").expect("lexes"), ["a", "|-", "b"]);
        assert_eq!(tokens("a != b").expect("lexes"), ["a", "<>", "b"]);
        // sqlparser's tokenizer reads `<|` as `<<|`, and swallows the character after `&>`.
        assert_eq!(tokens("a <| b").expect("lexes"), ["a", "<|", "b"]);
        assert_eq!(tokens("a &> b").expect("lexes"), ["a", "&>", "b"]);
        assert_eq!(tokens("a &>-1").expect("lexes"), ["a", "&>-", "1"]);
        assert!(tokens("a &>b").is_err());
        assert_eq!(tokens("a ===> b").expect("lexes"), ["a", "===>", "b"]);
        // sqlparser's tokenizer itself refuses `@-` followed by anything but `@`.
        assert!(tokens("a @-b").is_err());
        // sqlparser already stops an operator before a comment, as PostgreSQL does.
        assert_eq!(
            tokens("SELECT 1 <-- x\n").expect("lexes"),
            ["SELECT", "1", "<"]
        );
    }

    #[test]
    fn refusals() {
        // Non-ASCII characters are identifier characters to both lexers.
        assert_eq!(tokens("SELECT\u{a0}1").expect("lexes"), ["SELECT\u{a0}1"]);
        assert_eq!(tokens("SELECT a€b").expect("lexes"), ["SELECT", "a€b"]);
        assert!(tokens("SELECT 1\0").is_err());
        assert!(tokens("SELECT U&\"\\0070\" FROM t").is_err());
        assert!(tokens("SELECT U&'x' UESCAPE '!'").is_err());
        assert!(tokens("SELECT u & \"x\"").is_ok());
        assert!(tokens("SELECT $1FOR UPDATE").is_err());
        assert!(tokens("SELECT $12 FOR UPDATE").is_ok());
    }

    #[test]
    fn statement_count() {
        let texts = |sql: &'static str| {
            lex(&PostgreSqlDialect {}, sql).map(|l| {
                l.statements
                    .into_iter()
                    .map(|r| &sql[r])
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(texts(""), Ok(vec![]));
        assert_eq!(texts(" ;; "), Ok(vec![]));
        assert_eq!(
            texts("SELECT 1;; /* c */ SELECT  é -- x\n;"),
            Ok(vec!["SELECT 1", "SELECT  é"])
        );
        assert_eq!(
            texts("COPY t FROM STDIN; DELETE FROM x"),
            Ok(vec!["COPY t FROM STDIN", "DELETE FROM x"])
        );
    }

    #[test]
    fn depth() {
        let bound =
            |sql: &str| depth_bound(&lex(&PostgreSqlDialect {}, sql).expect("lexes").tokens);
        assert!(bound("SELECT 1") < 5);
        let chain = format!("SELECT {}", vec!["1"; 2000].join(" + "));
        assert!(lex(&PostgreSqlDialect {}, &chain).is_err());
        let values = format!("INSERT INTO t VALUES {}", vec!["(1, 'a')"; 5000].join(", "));
        assert!(bound(&values) < 10);
        let unions = format!("SELECT 1, 2{}", " UNION SELECT 1, 2".repeat(1000));
        assert!(lex(&PostgreSqlDialect {}, &unions).is_err());
    }
}
