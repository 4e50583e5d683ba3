//! Normalized statement text, from the lexer's tokens.

use pg_query::protobuf;

use super::tokens::Tok;

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
pub(super) fn render(sql: &str, toks: &[Tok], end: usize) -> Option<(String, Vec<String>)> {
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
