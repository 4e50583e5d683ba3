//! What a word becomes when the command runs: one argument known now ([`Arg::Literal`]), or
//! text known only then ([`Arg::Runtime`]): a variable, a substitution, a file-name pattern,
//! a brace expansion.
//!
//! Quote removal is exactly the shell's (checked against bash by `tests/command_bash.rs`); a
//! word that expands to something not known before it runs is never given a literal value.

use super::parse::{Part, Word};

/// A word after expansion, as far as it is known before the command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// Exactly one argument with this text.
    Literal {
        text: String,
        /// The text starts with the home directory from a `~` (which matters when the home
        /// directory is not known and the text starts with `~` itself).
        home: bool,
    },
    /// Text known only when the command runs.
    Runtime {
        /// What makes it so, for notes: "`$f` is known only when it runs".
        why: String,
        /// Whether it may become zero or several arguments (unquoted expansions, patterns).
        split: bool,
        /// The literal text before the first expansion (`PATH=/x:` in `PATH=/x:$PATH`).
        lead: String,
    },
}

impl Arg {
    /// A literal argument.
    pub(crate) fn literal(text: impl Into<String>) -> Self {
        Arg::Literal {
            text: text.into(),
            home: false,
        }
    }

    /// An argument known only when it runs.
    pub(crate) fn runtime(why: impl Into<String>) -> Self {
        Arg::Runtime {
            why: why.into(),
            split: true,
            lead: String::new(),
        }
    }

    /// The text, if known.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Arg::Literal { text, .. } => Some(text),
            Arg::Runtime { .. } => None,
        }
    }

    /// Why the argument is not known, if it is not.
    pub(crate) fn why(&self) -> Option<&str> {
        match self {
            Arg::Literal { .. } => None,
            Arg::Runtime { why, .. } => Some(why),
        }
    }

    /// The variable an assignment-like argument assigns (`NAME=…`, `NAME+=…`), known even
    /// when the value is not: what `export`, `env` and `sudo` read.
    pub(crate) fn assigned_name(&self) -> Option<&str> {
        let text = match self {
            Arg::Literal { text, .. } => text,
            Arg::Runtime { lead, .. } => lead,
        };
        let (name, _) = text.split_once('=')?;
        let name = name.strip_suffix('+').unwrap_or(name);
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        valid.then_some(name)
    }

    /// Whether the argument is one word that does not start with `-` (known even when the
    /// rest of it is not: `"/var/log/$f"`), so not an option.
    pub(crate) fn surely_operand(&self) -> bool {
        match self {
            Arg::Literal { text, .. } => !text.starts_with('-') || text == "-",
            Arg::Runtime { split, lead, .. } => {
                !split && !lead.is_empty() && !lead.starts_with('-')
            }
        }
    }

    /// Whether the argument may become several words.
    pub(crate) fn may_split(&self) -> bool {
        matches!(self, Arg::Runtime { split: true, .. })
    }

    /// Whether the text is known and equals `s`.
    pub(crate) fn is(&self, s: &str) -> bool {
        self.text() == Some(s)
    }
}

/// Expands `word` as far as it is known now. `home` is the home directory (or `~` when it is
/// not known). The commands the word runs are judged by the caller ([`Word::scripts`]).
pub(crate) fn expand(word: &Word, home: &str) -> Arg {
    let mut text = String::new();
    let mut from_home = false;
    let mut runtime: Option<(String, bool)> = None;
    // The text before the first expansion.
    let mut lead: Option<String> = None;
    let mut shape = Shape::default();
    for part in &word.parts {
        match part {
            Part::Text { text: t, quoted } => {
                if !quoted {
                    shape.scan(t, &text);
                } else {
                    shape.quoted(t);
                }
                text.push_str(t);
            }
            Part::Home => {
                text.push_str(home);
                from_home = true;
            }
            Part::Tilde(t) => {
                lead.get_or_insert_with(|| text.clone());
                runtime.get_or_insert((
                    format!("`{t}` is a directory known only when it runs"),
                    false,
                ));
            }
            Part::Dynamic { source, quoted, .. } => {
                lead.get_or_insert_with(|| text.clone());
                let (_, split) = runtime
                    .get_or_insert((format!("`{source}` is known only when it runs"), !quoted));
                *split |= !quoted;
            }
            // The path of a pipe to or from the commands (`/dev/fd/N`), which are judged.
            Part::Process(_) => text.push_str("/dev/fd/63"),
        }
    }
    let source = &word.source;
    if let Some((why, split)) = runtime {
        let lead = lead.unwrap_or_default();
        return Arg::Runtime { why, split, lead };
    }
    if shape.glob {
        return Arg::runtime(format!(
            "`{source}` is a pattern (`*`, `?`, `[…]`) matched against file names when it runs"
        ));
    }
    if shape.brace {
        return Arg::runtime(format!(
            "`{source}` is a brace expansion into several words"
        ));
    }
    if shape.tilde {
        return Arg::Runtime {
            why: format!(
                "`{source}` has a `~` after `=` or `:`, which bash expands and sh does not"
            ),
            split: false,
            lead: text,
        };
    }
    Arg::Literal {
        text,
        home: from_home,
    }
}

/// What unquoted text makes of a word: a file-name pattern, a brace expansion, a tilde that
/// bash expands after `=` or `:`.
#[derive(Default)]
struct Shape {
    glob: bool,
    brace: bool,
    tilde: bool,
    /// An unquoted `[` was seen: any later `]` makes a bracket expression.
    bracket: bool,
    /// An unquoted `{` was seen, and then a `,` or `..`.
    brace_open: bool,
    brace_separator: bool,
}

impl Shape {
    /// Unquoted text `t`, following `before` in the word.
    fn scan(&mut self, t: &str, before: &str) {
        let mut prev = before.chars().last();
        for c in t.chars() {
            match c {
                '*' | '?' => self.glob = true,
                '[' => self.bracket = true,
                ']' if self.bracket => self.glob = true,
                '{' => self.brace_open = true,
                ',' if self.brace_open => self.brace_separator = true,
                '.' if self.brace_open && prev == Some('.') => self.brace_separator = true,
                '}' if self.brace_open && self.brace_separator => self.brace = true,
                '~' if matches!(prev, Some('=' | ':')) => self.tilde = true,
                _ => {}
            }
            prev = Some(c);
        }
    }

    /// Quoted text: no pattern or brace characters of its own, but it may close a bracket
    /// expression or separate a brace expansion opened outside the quotes (counted even where
    /// bash would not: an over-estimate only makes a word unknown).
    fn quoted(&mut self, t: &str) {
        if self.bracket && t.contains(']') {
            self.glob = true;
        }
        if self.brace_open && (t.contains(',') || t.contains("..")) {
            self.brace_separator = true;
        }
    }
}
