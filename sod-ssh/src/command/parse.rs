//! The command line as the shell reads it: brush-parser's syntax tree, turned into a small model
//! of what runs (lists, pipelines, simple commands, compound commands) and of each word (its
//! quoted and unquoted text, and the expansions and substitutions inside it).
//!
//! Nothing here knows what a program does; [`judge`](super::judge) does. What the model cannot
//! say for sure is refused here with a sentence naming the construct: arithmetic that reads a
//! variable (its value is evaluated as an expression, and `a[$(cmd)]` in it runs `cmd`), `${!x}`,
//! `${x@P}`, `$'…\'…'` (which `sh` and `bash` split differently).

use std::rc::Rc;

use brush_parser::ast;
use brush_parser::word::{self as bw, ParameterExpr, ParameterTransformOp, WordPiece};
use brush_parser::{ParserOptions, Token};

/// How deep command substitutions, `sh -c` strings and `eval` may nest.
pub(crate) const MAX_SCRIPT_DEPTH: usize = 12;

/// How deep brackets and compound commands may nest in one line. brush-parser recurses on
/// nesting, and a stack overflow cannot be caught: refuse first.
const MAX_NESTING: usize = 100;

/// How deep `(` may nest among the tokens (subshells, arithmetic commands). brush-parser's
/// grammar backtracks over an unclosed `(` twice, so its time doubles with each: 24 took
/// 0.2 s in a release build, 40 for ever. Balanced or not, no real command nests this deep.
const MAX_PARENS: usize = 12;

/// How many `(` a word or here-document holding a command substitution may contain: brush's
/// word parser parses the substitution with the same grammar (see [`MAX_PARENS`]), and which
/// of them are quoted is not known before it does.
const MAX_SUBSTITUTION_PARENS: usize = 16;

/// How many array subscripts in `${…}` (`${a[i]}`) one word may hold: brush's word parser
/// takes exponential time on them, balanced or not (six nested never returned).
const MAX_SUBSCRIPTS: usize = 3;

/// How many expansions a here-document body with expansion may open (`${`, `$(`, `$[`, a
/// backtick; `$((` counts three). The tokenizer checks that every expansion in a word is
/// closed; nothing checks a here-document body before brush's word parser, which takes
/// exponential time on unclosed ones. Quote the delimiter (`<<'EOF'`) for a body that is text.
const MAX_HERE_DOCUMENT_EXPANSIONS: usize = 8;

/// Why part of a command line was not understood.
pub(crate) type NotUnderstood = String;

/// The options bash has when it runs `bash -c` over SSH: no `extglob` (so `!(x)` is a syntax
/// error, as in bash, rather than a pattern).
fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

// === The model ===

/// A list of commands: what `;`, `&`, `&&`, `||` and newlines join.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub(crate) items: Vec<Item>,
}

/// One element of a [`Script`].
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) first: Pipeline,
    /// The pipelines joined to the first by `&&` (`true`) or `||` (`false`).
    pub(crate) rest: Vec<(bool, Pipeline)>,
    /// Ended by `&`: runs in a subshell, in the background.
    pub(crate) background: bool,
}

/// Commands joined by `|`.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) commands: Vec<Command>,
}

/// One command.
#[derive(Debug)]
pub(crate) enum Command {
    /// Assignments, words and redirections.
    Simple(Simple),
    /// `( … )`: the list runs in a subshell.
    Subshell(Script, Vec<Redirect>),
    /// `{ …; }`, and the arithmetic command `(( n ))` (an empty group).
    Group(Script, Vec<Redirect>),
    /// `if c; then …; elif c; then …; else …; fi`.
    If {
        arms: Vec<(Script, Script)>,
        otherwise: Option<Script>,
        redirects: Vec<Redirect>,
    },
    /// `while c; do …; done`, `until …`, `for x in …; do …; done`.
    Loop {
        head: LoopHead,
        body: Script,
        redirects: Vec<Redirect>,
    },
    /// `case w in p) …;; esac`.
    Case {
        subject: Word,
        patterns: Vec<Word>,
        arms: Vec<Script>,
        redirects: Vec<Redirect>,
    },
    /// `name() …`: a function definition.
    Function { name: String, body: Rc<Command> },
    /// `[[ … ]]`.
    Test(Test, Vec<Redirect>),
}

/// What decides how often a loop body runs.
#[derive(Debug)]
pub(crate) enum LoopHead {
    /// `while` and `until`.
    Condition(Script),
    /// `for name in words` (all positional parameters without `in`).
    For { name: String, words: Vec<Word> },
    /// `for ((…; …; …))` with constant expressions.
    Arithmetic,
}

/// A simple command.
#[derive(Debug, Default)]
pub(crate) struct Simple {
    pub(crate) assignments: Vec<Assignment>,
    /// The command name and its arguments.
    pub(crate) words: Vec<Word>,
    pub(crate) redirects: Vec<Redirect>,
}

/// `name=value`, `name+=value`, `name=(…)`.
#[derive(Debug)]
pub(crate) struct Assignment {
    pub(crate) name: String,
    /// The values assigned (one for a scalar, the elements of an array).
    pub(crate) values: Vec<Word>,
}

/// A redirection.
#[derive(Debug)]
pub(crate) struct Redirect {
    pub(crate) op: RedirectOp,
    pub(crate) target: RedirectTarget,
}

/// What a redirection opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RedirectOp {
    /// `<`, `<&word`: reads.
    Read,
    /// `>`, `>>`, `>|`, `&>`, `>&word`, `<>`: writes.
    Write,
}

/// The target of a redirection.
#[derive(Debug)]
pub(crate) enum RedirectTarget {
    /// A file named by a word.
    File(Word),
    /// Another file descriptor, or `-` to close one: no file.
    Descriptor,
    /// `>(…)`, `<(…)`: a pipe to or from commands.
    Process(Script),
    /// Data given on standard input (here-documents and here-strings): only the expansions in
    /// it run.
    Data(Word),
}

/// A `[[ … ]]` expression, by what its operands are.
#[derive(Debug, Default)]
pub(crate) struct Test {
    /// Operands of file tests (`-f x`, `a -nt b`): paths whose metadata is read.
    pub(crate) files: Vec<Word>,
    /// Operands of arithmetic comparisons (`-eq`, `-lt`, …): evaluated as expressions.
    pub(crate) numbers: Vec<Word>,
    /// Operands that are variable names (`-v name`).
    pub(crate) names: Vec<Word>,
    /// Every other operand: strings and patterns.
    pub(crate) strings: Vec<Word>,
}

/// A word before expansion.
#[derive(Debug, Default)]
pub(crate) struct Word {
    /// The word as written.
    pub(crate) source: String,
    pub(crate) parts: Vec<Part>,
}

/// A piece of a [`Word`].
#[derive(Debug)]
pub(crate) enum Part {
    /// Text taken as it is. `quoted` when quotes or a backslash keep the shell from reading
    /// `* ? [ { ~` in it as patterns, braces or tildes.
    Text { text: String, quoted: bool },
    /// A leading `~` followed by `/` or nothing: the home directory.
    Home,
    /// Another tilde prefix (`~user`, `~+`, `~-`): a directory known only when it runs.
    Tilde(String),
    /// A parameter expansion, arithmetic expansion or command substitution: text known only
    /// when it runs. `scripts` are the commands it runs (`$(…)`, `${x:-$(…)}`).
    Dynamic {
        source: String,
        quoted: bool,
        scripts: Vec<Script>,
        /// The variable `${name:=value}` assigns.
        assigns: Option<String>,
    },
    /// `<(…)` or `>(…)` as an argument: the path of a pipe from or to `script`.
    Process(Script),
}

impl Word {
    /// The word's text if it is plain literal text (no expansion at all), for names.
    pub(crate) fn literal_text(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text { text, .. } => out.push_str(text),
                _ => return None,
            }
        }
        Some(out)
    }

    /// Every script this word runs when it is expanded.
    pub(crate) fn scripts(&self) -> impl Iterator<Item = &Script> {
        self.parts.iter().flat_map(|p| match p {
            Part::Dynamic { scripts, .. } => scripts.iter().collect::<Vec<_>>(),
            Part::Process(s) => vec![s],
            _ => Vec::new(),
        })
    }
}

// === Parsing ===

/// Parses a command line (or the string of `sh -c`, `eval`, `$(…)`) at nesting `depth`.
pub(crate) fn script(src: &str, depth: usize) -> Result<Script, NotUnderstood> {
    if depth > MAX_SCRIPT_DEPTH {
        return Err("commands are nested too deeply (`$(…)`, `sh -c`, `eval`)".to_owned());
    }
    check_nesting(src)?;
    check_here_tags(src)?;
    // brush's tokenizer takes a backslash-newline inside `$'…'` for a line continuation;
    // bash keeps both characters. Rather than track the quoting here, refuse any
    // backslash-newline after a `$'` (one inside `$'…'` must come after its opening).
    if src.find("$'").is_some_and(|at| src[at..].contains("\\\n")) {
        return Err(
            "a backslash-newline after `$'`, which shell parsers read differently".to_owned(),
        );
    }
    let tokens = brush_parser::uncached_tokenize_str(src, &options().tokenizer_options())
        .map_err(|e| format!("the shell parser rejected it: {e}"))?;
    check_parens(&tokens)?;
    let program = brush_parser::parse_tokens(&tokens, &options())
        .map_err(|e| format!("the shell parser rejected it: {e}"))?;
    let cx = Cx { depth };
    let mut out = Script::default();
    for list in &program.complete_commands {
        cx.list_into(list, &mut out)?;
    }
    Ok(out)
}

/// Refuses lines nested deeper than [`MAX_NESTING`], counting brackets and compound-command
/// keywords whether quoted or not (an over-estimate is harmless).
pub(crate) fn check_nesting(src: &str) -> Result<(), NotUnderstood> {
    let mut depth = 0usize;
    let mut max = 0usize;
    for token in src.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|')) {
        match token {
            "if" | "while" | "until" | "for" | "case" | "select" => depth += 1,
            "fi" | "done" | "esac" => depth = depth.saturating_sub(1),
            _ => {}
        }
        for c in token.chars() {
            match c {
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
            max = max.max(depth);
        }
        max = max.max(depth);
    }
    if max > MAX_NESTING {
        return Err(format!(
            "it nests more than {MAX_NESTING} levels of brackets or compound commands"
        ));
    }
    Ok(())
}

/// Refuses token streams where `(` nests deeper than [`MAX_PARENS`] (see there).
fn check_parens(tokens: &[Token]) -> Result<(), NotUnderstood> {
    let mut depth = 0usize;
    for token in tokens {
        if let Token::Operator(op, _) = token {
            match op.as_str() {
                "(" => depth += 1,
                "((" => depth += 2,
                ")" => depth = depth.saturating_sub(1),
                "))" => depth = depth.saturating_sub(2),
                _ => {}
            }
            if depth > MAX_PARENS {
                return Err(format!("its parentheses nest more than {MAX_PARENS} deep"));
            }
        }
    }
    Ok(())
}

/// Refuses word text that holds a command or process substitution and more than
/// [`MAX_SUBSTITUTION_PARENS`] `(` in all.
fn check_substitution_parens(text: &str) -> Result<(), NotUnderstood> {
    let substitutes = ["$(", "`", "<(", ">("].iter().any(|s| text.contains(s));
    let parens = text.bytes().filter(|&b| b == b'(').count();
    if substitutes && parens > MAX_SUBSTITUTION_PARENS {
        let shown: String = text.chars().take(40).collect();
        return Err(format!(
            "`{shown}…` holds a command substitution and more than {MAX_SUBSTITUTION_PARENS} `(`"
        ));
    }
    Ok(())
}

/// Refuses word text with more than [`MAX_SUBSCRIPTS`] array subscripts in `${…}`.
fn check_subscripts(text: &str) -> Result<(), NotUnderstood> {
    let bytes = text.as_bytes();
    let mut subscripts = 0;
    for (at, _) in text.match_indices("${") {
        let mut i = at + 2;
        if matches!(bytes.get(i), Some(b'#' | b'!')) {
            i += 1;
        }
        let name = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        if i > name && bytes.get(i) == Some(&b'[') {
            subscripts += 1;
        }
    }
    if subscripts > MAX_SUBSCRIPTS {
        return Err(format!(
            "it holds more than {MAX_SUBSCRIPTS} array subscripts (`${{a[i]}}`) in one word"
        ));
    }
    Ok(())
}

/// Refuses here-document bodies that open more than [`MAX_HERE_DOCUMENT_EXPANSIONS`]
/// expansions, or more than [`MAX_SUBSCRIPTS`] subscripts.
fn check_here_document_expansions(body: &str) -> Result<(), NotUnderstood> {
    check_subscripts(body)?;
    let opened = body.matches("$((").count() * 2
        + body.matches("${").count()
        + body.matches("$(").count()
        + body.matches("$[").count()
        + body.matches('`').count();
    if opened > MAX_HERE_DOCUMENT_EXPANSIONS {
        return Err(format!(
            "the here-document opens more than {MAX_HERE_DOCUMENT_EXPANSIONS} expansions \
             (quote its delimiter, `<<'EOF'`, if it is text)"
        ));
    }
    Ok(())
}

/// Refuses here-document delimiters other than a plain word (`EOF`, `'EOF'`, `"EOF"`, `\EOF`),
/// after every run of `<` that may end in a here-document operator, quoted or not.
///
/// Why: brush-parser 0.4.0 loops for ever, allocating, when the text ends inside `$(`, `${` or
/// `$[` while a here-document with an empty delimiter (`<<''`) or one holding a blank
/// (`<<$( )`) is pending: `cat <<'' $(` took 500 MB a second. A plain word cannot be empty or
/// hold a blank. The scan ignores quoting on purpose (a here-document body may hold an
/// unmatched quote, which would hide a later `<<` from any quote-aware scan), so `<<` inside
/// quotes needs a plain word after it too: `grep '<<EOF' f` and `grep '<<' f` are refused.
/// A run of `<` is taken as here-strings (`<<<`) only when its length is a multiple of three
/// and no backslash precedes it, as the tokenizer groups operators greedily.
pub(crate) fn check_here_tags(src: &str) -> Result<(), NotUnderstood> {
    let bytes = src.as_bytes();
    let word = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'_' | b'.' | b'-' | b'+' | b'@' | b'%' | b'/' | b':' | b','
            )
    };
    let ends = |b: Option<&u8>| {
        b.is_none_or(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b')' | b'<' | b'>'
            )
        })
    };
    let mut at = 0;
    while let Some(found) = src[at..].find("<<") {
        let start = at + found;
        let mut i = start;
        while bytes.get(i) == Some(&b'<') {
            i += 1;
        }
        let run = i - start;
        let escaped = start > 0 && bytes[start - 1] == b'\\';
        if run % 3 == 0 && !escaped {
            // Here-strings only.
            at = i;
            continue;
        }
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        while matches!(bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let quote = match bytes.get(i) {
            Some(q @ (b'\'' | b'"')) => {
                i += 1;
                Some(*q)
            }
            Some(b'\\') => {
                i += 1;
                None
            }
            _ => None,
        };
        let tag_start = i;
        while bytes.get(i).copied().is_some_and(word) {
            i += 1;
        }
        let plain = i > tag_start
            && match quote {
                Some(q) => bytes.get(i) == Some(&q) && ends(bytes.get(i + 1)),
                None => ends(bytes.get(i)),
            };
        // `<<` at the very end is a syntax error the parser reports.
        if !plain && start + run < bytes.len() {
            let shown: String = src[start..].chars().take(24).collect();
            return Err(format!(
                "a here-document delimiter must be a plain word (`<<EOF`, `<<'EOF'`): `{shown}`"
            ));
        }
        at = i.max(start + run);
    }
    Ok(())
}

/// The parsing context: how deep we are in nested scripts.
#[derive(Clone, Copy)]
struct Cx {
    depth: usize,
}

impl Cx {
    fn list(self, list: &ast::CompoundList) -> Result<Script, NotUnderstood> {
        let mut out = Script::default();
        self.list_into(list, &mut out)?;
        Ok(out)
    }

    fn list_into(self, list: &ast::CompoundList, out: &mut Script) -> Result<(), NotUnderstood> {
        for ast::CompoundListItem(and_or, separator) in &list.0 {
            let first = self.pipeline(&and_or.first)?;
            let rest = and_or
                .additional
                .iter()
                .map(|next| match next {
                    ast::AndOr::And(p) => Ok((true, self.pipeline(p)?)),
                    ast::AndOr::Or(p) => Ok((false, self.pipeline(p)?)),
                })
                .collect::<Result<_, NotUnderstood>>()?;
            out.items.push(Item {
                first,
                rest,
                background: matches!(separator, ast::SeparatorOperator::Async),
            });
        }
        Ok(())
    }

    fn pipeline(self, pipeline: &ast::Pipeline) -> Result<Pipeline, NotUnderstood> {
        let commands = pipeline
            .seq
            .iter()
            .map(|c| self.command(c))
            .collect::<Result<_, _>>()?;
        Ok(Pipeline { commands })
    }

    fn command(self, command: &ast::Command) -> Result<Command, NotUnderstood> {
        match command {
            ast::Command::Simple(simple) => self.simple(simple).map(Command::Simple),
            ast::Command::Compound(compound, redirects) => {
                self.compound(compound, self.redirect_list(redirects.as_ref())?)
            }
            ast::Command::Function(def) => {
                let name = self
                    .word(&def.fname.value)?
                    .literal_text()
                    .ok_or_else(|| format!("the function name `{}` is not literal", def.fname))?;
                let ast::FunctionBody(body, redirects) = &def.body;
                let body = self.compound(body, self.redirect_list(redirects.as_ref())?)?;
                Ok(Command::Function {
                    name,
                    body: Rc::new(body),
                })
            }
            ast::Command::ExtendedTest(test, redirects) => {
                let mut out = Test::default();
                self.test(&test.expr, &mut out)?;
                Ok(Command::Test(out, self.redirect_list(redirects.as_ref())?))
            }
        }
    }

    fn compound(
        self,
        compound: &ast::CompoundCommand,
        redirects: Vec<Redirect>,
    ) -> Result<Command, NotUnderstood> {
        use ast::CompoundCommand as C;
        Ok(match compound {
            C::Arithmetic(a) => {
                arithmetic(&a.expr.value)?;
                Command::Group(Script::default(), redirects)
            }
            C::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    arithmetic(&e.value)?;
                }
                Command::Loop {
                    head: LoopHead::Arithmetic,
                    body: self.list(&f.body.list)?,
                    redirects,
                }
            }
            C::BraceGroup(g) => Command::Group(self.list(&g.list)?, redirects),
            C::Subshell(s) => Command::Subshell(self.list(&s.list)?, redirects),
            C::ForClause(f) => Command::Loop {
                head: LoopHead::For {
                    name: f.variable_name.clone(),
                    words: match &f.values {
                        Some(words) => words
                            .iter()
                            .map(|w| self.word(&w.value))
                            .collect::<Result<_, _>>()?,
                        // `for x; do`: the positional parameters.
                        None => vec![self.word("\"$@\"")?],
                    },
                },
                body: self.list(&f.body.list)?,
                redirects,
            },
            C::CaseClause(c) => {
                let mut patterns = Vec::new();
                let mut arms = Vec::new();
                for case in &c.cases {
                    for p in &case.patterns {
                        patterns.push(self.word(&p.value)?);
                    }
                    if let Some(cmd) = &case.cmd {
                        arms.push(self.list(cmd)?);
                    }
                }
                Command::Case {
                    subject: self.word(&c.value.value)?,
                    patterns,
                    arms,
                    redirects,
                }
            }
            C::IfClause(i) => {
                let mut arms = vec![(self.list(&i.condition)?, self.list(&i.then)?)];
                let mut otherwise = None;
                for e in i.elses.iter().flatten() {
                    match &e.condition {
                        Some(c) => arms.push((self.list(c)?, self.list(&e.body)?)),
                        None => otherwise = Some(self.list(&e.body)?),
                    }
                }
                Command::If {
                    arms,
                    otherwise,
                    redirects,
                }
            }
            C::WhileClause(w) | C::UntilClause(w) => Command::Loop {
                head: LoopHead::Condition(self.list(&w.0)?),
                body: self.list(&w.1.list)?,
                redirects,
            },
            // `coproc`: the command runs in the background, in a subshell.
            C::Coprocess(c) => {
                let inner = self.command(&c.body)?;
                Command::Subshell(
                    Script {
                        items: vec![Item {
                            first: Pipeline {
                                commands: vec![inner],
                            },
                            rest: Vec::new(),
                            background: true,
                        }],
                    },
                    redirects,
                )
            }
        })
    }

    fn simple(self, simple: &ast::SimpleCommand) -> Result<Simple, NotUnderstood> {
        let mut out = Simple::default();
        let prefix = simple.prefix.iter().flat_map(|p| p.0.iter());
        for item in prefix {
            match item {
                ast::CommandPrefixOrSuffixItem::AssignmentWord(a, _) => {
                    out.assignments.push(self.assignment(a)?);
                }
                other => self.suffix_item(other, &mut out)?,
            }
        }
        if let Some(name) = &simple.word_or_name {
            out.words.push(self.word(&name.value)?);
        }
        for item in simple.suffix.iter().flat_map(|s| s.0.iter()) {
            self.suffix_item(item, &mut out)?;
        }
        Ok(out)
    }

    fn suffix_item(
        self,
        item: &ast::CommandPrefixOrSuffixItem,
        out: &mut Simple,
    ) -> Result<(), NotUnderstood> {
        use ast::CommandPrefixOrSuffixItem as I;
        match item {
            I::IoRedirect(r) => out.redirects.push(self.redirect(r)?),
            // After the command name an assignment is an argument (`export A=b`), as written.
            I::Word(w) | I::AssignmentWord(_, w) => out.words.push(self.word(&w.value)?),
            I::ProcessSubstitution(_, sub) => out.words.push(Word {
                source: sub.to_string(),
                parts: vec![Part::Process(self.list(&sub.list)?)],
            }),
        }
        Ok(())
    }

    fn assignment(self, a: &ast::Assignment) -> Result<Assignment, NotUnderstood> {
        let name = match &a.name {
            ast::AssignmentName::VariableName(n) => n.clone(),
            ast::AssignmentName::ArrayElementName(n, index) => {
                arithmetic(index)?;
                n.clone()
            }
        };
        let values = match &a.value {
            ast::AssignmentValue::Scalar(w) => vec![self.word(&w.value)?],
            ast::AssignmentValue::Array(elements) => {
                let mut values = Vec::new();
                for (key, value) in elements {
                    if let Some(key) = key {
                        arithmetic(&key.value)?;
                    }
                    values.push(self.word(&value.value)?);
                }
                values
            }
        };
        Ok(Assignment { name, values })
    }

    fn redirect_list(
        self,
        list: Option<&ast::RedirectList>,
    ) -> Result<Vec<Redirect>, NotUnderstood> {
        list.iter()
            .flat_map(|l| l.0.iter())
            .map(|r| self.redirect(r))
            .collect()
    }

    fn redirect(self, redirect: &ast::IoRedirect) -> Result<Redirect, NotUnderstood> {
        use ast::IoFileRedirectKind as K;
        use ast::IoFileRedirectTarget as T;
        Ok(match redirect {
            ast::IoRedirect::File(_, kind, target) => {
                let op = match kind {
                    K::Read | K::DuplicateInput => RedirectOp::Read,
                    K::Write | K::Append | K::ReadAndWrite | K::Clobber | K::DuplicateOutput => {
                        RedirectOp::Write
                    }
                };
                let target = match target {
                    T::Filename(w) => RedirectTarget::File(self.word(&w.value)?),
                    T::Fd(_) => RedirectTarget::Descriptor,
                    T::ProcessSubstitution(_, sub) => {
                        RedirectTarget::Process(self.list(&sub.list)?)
                    }
                    // `>&2`, `<&0`, `>&-`, `2>&1-` duplicate or close descriptors; anything else
                    // after `>&` names a file (`>&file` is `&>file`).
                    T::Duplicate(w) => {
                        let word = self.word(&w.value)?;
                        match word.literal_text() {
                            Some(t) if is_descriptor(&t) => RedirectTarget::Descriptor,
                            _ => RedirectTarget::File(word),
                        }
                    }
                };
                Redirect { op, target }
            }
            ast::IoRedirect::OutputAndError(w, _) => Redirect {
                op: RedirectOp::Write,
                target: RedirectTarget::File(self.word(&w.value)?),
            },
            ast::IoRedirect::HereString(_, w) => Redirect {
                op: RedirectOp::Read,
                target: RedirectTarget::Data(self.word(&w.value)?),
            },
            ast::IoRedirect::HereDocument(_, doc) => {
                let word = if doc.requires_expansion {
                    let body = join_continuations(&doc.doc.value, true);
                    check_substitution_parens(&body)?;
                    check_here_document_expansions(&body)?;
                    let pieces = bw::parse_heredoc(&body, &options())
                        .map_err(|e| format!("the here-document was not understood: {e}"))?;
                    self.pieces(&body, &pieces, Quoting::HereDoc)?
                } else {
                    Word {
                        source: doc.doc.value.clone(),
                        parts: vec![Part::Text {
                            text: doc.doc.value.clone(),
                            quoted: true,
                        }],
                    }
                };
                Redirect {
                    op: RedirectOp::Read,
                    target: RedirectTarget::Data(word),
                }
            }
        })
    }

    fn test(self, expr: &ast::ExtendedTestExpr, out: &mut Test) -> Result<(), NotUnderstood> {
        use ast::BinaryPredicate as B;
        use ast::ExtendedTestExpr as E;
        use ast::UnaryPredicate as U;
        match expr {
            E::And(a, b) | E::Or(a, b) => {
                self.test(a, out)?;
                self.test(b, out)
            }
            E::Not(e) | E::Parenthesized(e) => self.test(e, out),
            E::UnaryTest(pred, w) => {
                let word = self.word(&w.value)?;
                match pred {
                    U::StringHasZeroLength | U::StringHasNonZeroLength | U::ShellOptionEnabled => {
                        out.strings.push(word);
                    }
                    U::ShellVariableIsSetAndAssigned | U::ShellVariableIsSetAndNameRef => {
                        out.names.push(word);
                    }
                    U::FdIsOpenTerminal => out.numbers.push(word),
                    _ => out.files.push(word),
                }
                Ok(())
            }
            E::BinaryTest(pred, l, r) => {
                let (l, r) = (self.word(&l.value)?, self.word(&r.value)?);
                let into = match pred {
                    B::FilesReferToSameDeviceAndInodeNumbers
                    | B::LeftFileIsNewerOrExistsWhenRightDoesNot
                    | B::LeftFileIsOlderOrDoesNotExistWhenRightDoes => &mut out.files,
                    B::ArithmeticEqualTo
                    | B::ArithmeticNotEqualTo
                    | B::ArithmeticLessThan
                    | B::ArithmeticLessThanOrEqualTo
                    | B::ArithmeticGreaterThan
                    | B::ArithmeticGreaterThanOrEqualTo => &mut out.numbers,
                    _ => &mut out.strings,
                };
                into.push(l);
                into.push(r);
                Ok(())
            }
        }
    }

    /// Parses one word as written.
    fn word(self, source: &str) -> Result<Word, NotUnderstood> {
        let joined = join_continuations(source, false);
        // What is left is inside single quotes, where it is text; should that reading be wrong,
        // the newline could split `$(`: refuse rather than guess.
        if joined.contains("\\\n") && (joined.contains('$') || joined.contains('`')) {
            return Err(format!(
                "the word `{source}` has a backslash-newline beside an expansion"
            ));
        }
        check_substitution_parens(&joined)?;
        check_subscripts(&joined)?;
        let pieces = bw::parse(&joined, &options())
            .map_err(|e| format!("the word `{source}` was not understood: {e}"))?;
        let mut word = self.pieces(&joined, &pieces, Quoting::None)?;
        word.source = source.to_owned();
        Ok(word)
    }

    /// Turns brush's word pieces into [`Part`]s. `source` is the text the pieces index into.
    fn pieces(
        self,
        source: &str,
        pieces: &[bw::WordPieceWithSource],
        quoting: Quoting,
    ) -> Result<Word, NotUnderstood> {
        let mut parts = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            self.piece(source, i == 0, piece, quoting, &mut parts)?;
        }
        Ok(Word {
            source: source.to_owned(),
            parts,
        })
    }

    fn piece(
        self,
        source: &str,
        first: bool,
        piece: &bw::WordPieceWithSource,
        quoting: Quoting,
        parts: &mut Vec<Part>,
    ) -> Result<(), NotUnderstood> {
        // brush gives every piece, nested ones too, as a range of the whole word.
        let raw = source
            .get(piece.start_index..piece.end_index)
            .unwrap_or_default();
        let quoted = quoting != Quoting::None;
        let dynamic = |scripts, assigns| Part::Dynamic {
            source: raw.to_owned(),
            quoted,
            scripts,
            assigns,
        };
        match &piece.piece {
            WordPiece::Text(text) => parts.push(Part::Text {
                text: text.clone(),
                quoted,
            }),
            WordPiece::SingleQuotedText(text) => parts.push(Part::Text {
                text: text.clone(),
                quoted: true,
            }),
            WordPiece::AnsiCQuotedText(text) => parts.push(Part::Text {
                text: ansi_c(text)?,
                quoted: true,
            }),
            WordPiece::DoubleQuotedSequence(inner) => {
                for p in inner {
                    self.piece(source, false, p, Quoting::Double, parts)?;
                }
            }
            WordPiece::GettextDoubleQuotedSequence(inner) => {
                // `$"…"` is translated through the locale's message catalog when it runs.
                let mut sub = Vec::new();
                for p in inner {
                    self.piece(source, false, p, Quoting::Double, &mut sub)?;
                }
                let scripts = sub
                    .into_iter()
                    .flat_map(|p| match p {
                        Part::Dynamic { scripts, .. } => scripts,
                        _ => Vec::new(),
                    })
                    .collect();
                parts.push(dynamic(scripts, None));
            }
            WordPiece::TildeExpansion(tilde) => {
                if !first {
                    return Err(format!("`{raw}` in the middle of a word"));
                }
                // brush ends a tilde prefix at `:`, `;` or `}` too, as in assignments; in a
                // word only `/` ends it (`~:x` names the user `:x`).
                let rest = source.get(piece.end_index..).unwrap_or_default();
                let home = matches!(tilde, bw::TildeExpr::Home)
                    && (rest.is_empty() || rest.starts_with('/'));
                parts.push(if home {
                    Part::Home
                } else {
                    Part::Tilde(format!(
                        "{raw}{}",
                        rest.split('/').next().unwrap_or_default()
                    ))
                });
            }
            WordPiece::ParameterExpansion(expr) => {
                let (scripts, assigns) = self.parameter(raw, expr)?;
                parts.push(dynamic(scripts, assigns));
            }
            WordPiece::CommandSubstitution(inner) => {
                parts.push(dynamic(vec![script(inner, self.depth + 1)?], None));
            }
            WordPiece::BackquotedCommandSubstitution(_) => {
                // brush removes only the backslash of `\``; the shell also removes those of
                // `\$` and `\\` (and of `\"` inside double quotes). Read the source ourselves.
                let inner = raw
                    .strip_prefix('`')
                    .and_then(|r| r.strip_suffix('`'))
                    .ok_or_else(|| format!("the backquoted command `{raw}` was not understood"))?;
                let inner = unescape_backquoted(inner, quoting == Quoting::Double);
                parts.push(dynamic(vec![script(&inner, self.depth + 1)?], None));
            }
            WordPiece::EscapeSequence(escaped) => {
                // Unquoted, a backslash quotes any character; in double quotes and here-documents
                // brush only reports the escapes that are escapes there. Backslash-newlines are
                // gone already (`join_continuations`).
                let text = escaped.strip_prefix('\\').unwrap_or(escaped).to_owned();
                parts.push(Part::Text { text, quoted: true });
            }
            WordPiece::ArithmeticExpression(expr) => {
                arithmetic(&expr.value)?;
                parts.push(dynamic(Vec::new(), None));
            }
        }
        Ok(())
    }

    /// Checks a parameter expansion and parses the words inside it; returns the scripts they
    /// run and the variable it assigns, if any.
    fn parameter(
        self,
        raw: &str,
        expr: &ParameterExpr,
    ) -> Result<(Vec<Script>, Option<String>), NotUnderstood> {
        use ParameterExpr as P;
        let mut words: Vec<&str> = Vec::new();
        let mut assigns = None;
        let (parameter, indirect) = match expr {
            P::Parameter {
                parameter,
                indirect,
            }
            | P::ParameterLength {
                parameter,
                indirect,
            }
            | P::Transform {
                parameter,
                indirect,
                ..
            } => (parameter, *indirect),
            P::UseDefaultValues {
                parameter,
                indirect,
                default_value: w,
                ..
            }
            | P::IndicateErrorIfNullOrUnset {
                parameter,
                indirect,
                error_message: w,
                ..
            }
            | P::UseAlternativeValue {
                parameter,
                indirect,
                alternative_value: w,
                ..
            }
            | P::RemoveSmallestSuffixPattern {
                parameter,
                indirect,
                pattern: w,
            }
            | P::RemoveLargestSuffixPattern {
                parameter,
                indirect,
                pattern: w,
            }
            | P::RemoveSmallestPrefixPattern {
                parameter,
                indirect,
                pattern: w,
            }
            | P::RemoveLargestPrefixPattern {
                parameter,
                indirect,
                pattern: w,
            }
            | P::UppercaseFirstChar {
                parameter,
                indirect,
                pattern: w,
            }
            | P::UppercasePattern {
                parameter,
                indirect,
                pattern: w,
            }
            | P::LowercaseFirstChar {
                parameter,
                indirect,
                pattern: w,
            }
            | P::LowercasePattern {
                parameter,
                indirect,
                pattern: w,
            } => {
                words.extend(w.as_deref());
                (parameter, *indirect)
            }
            P::AssignDefaultValues {
                parameter,
                indirect,
                default_value,
                ..
            } => {
                words.extend(default_value.as_deref());
                if let bw::Parameter::Named(name) = parameter {
                    assigns = Some(name.clone());
                }
                (parameter, *indirect)
            }
            P::Substring {
                parameter,
                indirect,
                offset,
                length,
            } => {
                arithmetic(&offset.value)?;
                if let Some(length) = length {
                    arithmetic(&length.value)?;
                }
                (parameter, *indirect)
            }
            P::ReplaceSubstring {
                parameter,
                indirect,
                pattern,
                replacement,
                ..
            } => {
                words.push(pattern);
                words.extend(replacement.as_deref());
                (parameter, *indirect)
            }
            P::VariableNames { .. } | P::MemberKeys { .. } => return Ok((Vec::new(), None)),
        };
        if indirect {
            return Err(format!(
                "`{raw}` reads the variable named by another variable's value"
            ));
        }
        if matches!(
            expr,
            P::Transform {
                op: ParameterTransformOp::PromptExpand,
                ..
            }
        ) {
            return Err(format!(
                "`{raw}` expands its value as a prompt, running what it contains"
            ));
        }
        if let bw::Parameter::NamedWithIndex { index, .. } = parameter {
            arithmetic(index)?;
        }
        let mut scripts = Vec::new();
        for w in words {
            // Quotes inside `${…}` mean different things inside and outside double quotes
            // (`"${x:-'$(cmd)'}"` runs `cmd`); do not guess which reading applies.
            if w.contains('\'') && (w.contains("$(") || w.contains('`')) {
                return Err(format!(
                    "`{raw}` quotes a command substitution inside `${{…}}`"
                ));
            }
            let word = self.word(w)?;
            for part in word.parts {
                match part {
                    Part::Dynamic { scripts: s, .. } => scripts.extend(s),
                    Part::Process(s) => scripts.push(s),
                    _ => {}
                }
            }
        }
        Ok((scripts, assigns))
    }
}

/// Where a word piece sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    Double,
    HereDoc,
}

/// Whether `>&word` / `<&word` names a file descriptor (or closes one) rather than a file.
fn is_descriptor(text: &str) -> bool {
    let digits = text.strip_suffix('-').unwrap_or(text);
    text == "-" || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses arithmetic that reads variables. The shell evaluates a variable's value as an
/// expression in turn, and `a[$(cmd)]` in that value runs `cmd`: arithmetic on anything but
/// constants is not understood.
pub(crate) fn arithmetic(expr: &str) -> Result<(), NotUnderstood> {
    let constant = expr.chars().all(|c| {
        c.is_ascii_digit()
            || c.is_whitespace()
            || matches!(
                c,
                '+' | '-'
                    | '*'
                    | '/'
                    | '%'
                    | '('
                    | ')'
                    | '<'
                    | '>'
                    | '='
                    | '!'
                    | '&'
                    | '|'
                    | '^'
                    | '~'
                    | '?'
                    | ':'
                    | ','
            )
    });
    if constant {
        Ok(())
    } else {
        Err(format!(
            "the arithmetic `{}` reads variables, whose values are evaluated as expressions that can run commands",
            expr.trim()
        ))
    }
}

/// Removes the backslashes the shell removes inside backquotes: before `$`, `` ` `` and `\`,
/// and before `"` when the backquotes are inside double quotes.
fn unescape_backquoted(inner: &str, in_double_quotes: bool) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '\\') => {}
                Some('"') if in_double_quotes => {}
                _ => {
                    out.push(c);
                    continue;
                }
            }
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Removes backslash-newlines where the shell does: everywhere but inside single quotes and
/// `$'…'` (in a here-document, quotes are plain characters). brush leaves them inside double
/// quotes, where `"$\<newline>(cmd)"` is a command substitution to bash.
fn join_continuations(source: &str, here_document: bool) -> String {
    if !source.contains("\\\n") {
        return source.to_owned();
    }
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        AnsiC,
    }
    let mut state = In::Plain;
    let mut out = String::with_capacity(source.len());
    // Whether the last character was an unquoted, unescaped `$` (so `'` opens `$'…'`).
    let mut dollar = false;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        let after_dollar = std::mem::take(&mut dollar);
        match (&state, c) {
            (In::Single, '\'') | (In::AnsiC, '\'') | (In::Double, '"') => state = In::Plain,
            (In::Single, _) => {}
            (In::AnsiC, '\\') => {
                out.push(c);
                out.extend(chars.next());
                continue;
            }
            (In::Plain | In::Double, '\\') => {
                match chars.next() {
                    Some('\n') => {}
                    Some(next) => {
                        out.push(c);
                        out.push(next);
                    }
                    None => out.push(c),
                }
                continue;
            }
            (In::Plain, '\'') if !here_document => {
                state = if after_dollar { In::AnsiC } else { In::Single };
            }
            (In::Plain, '"') if !here_document => state = In::Double,
            (In::Plain, '$') => dollar = true,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Decodes the inside of `$'…'` as bash does.
///
/// Refused: `\'` (`sh` has no `$'…'`: dash reads `$'a\'` as `$` and `'a\'`, and would run what
/// bash takes as quoted text); a NUL (bash cuts the word there); text that is not UTF-8; `\u`
/// beyond ASCII (what it becomes depends on the locale).
pub(crate) fn ansi_c(text: &str) -> Result<String, NotUnderstood> {
    let refuse = |what: &str| Err(format!("`$'{text}'` contains {what}"));
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut utf8 = [0u8; 4];
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            out.push(b'\\');
            break;
        };
        let byte: u32 = match e {
            'a' => 0x07,
            'b' => 0x08,
            'e' | 'E' => 0x1b,
            'f' => 0x0c,
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            'v' => 0x0b,
            '\\' | '"' | '?' => u32::from(e),
            '\'' => return refuse("`\\'`, which `sh` and `bash` read differently"),
            '0'..='7' => {
                let mut value = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                // bash keeps the low eight bits of `\NNN`.
                value & 0xff
            }
            'x' => match hex_digits(&mut chars, 2) {
                Some(value) => value,
                None => {
                    out.extend_from_slice(b"\\x");
                    continue;
                }
            },
            'u' | 'U' => match hex_digits(&mut chars, if e == 'u' { 4 } else { 8 }) {
                Some(value) if value < 0x80 => value,
                Some(_) => {
                    return refuse("a `\\u` escape beyond ASCII, which depends on the locale");
                }
                None => {
                    out.push(b'\\');
                    out.extend_from_slice(e.encode_utf8(&mut utf8).as_bytes());
                    continue;
                }
            },
            'c' => match chars.next() {
                // Control characters: `\cA` is 0x01; others bash reads specially.
                Some(c) if c.is_ascii_alphabetic() => u32::from(c.to_ascii_uppercase()) ^ 0x40,
                _ => return refuse("a control escape bash reads specially"),
            },
            other => {
                out.push(b'\\');
                out.extend_from_slice(other.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
        };
        match u8::try_from(byte) {
            Ok(0) | Err(_) => return refuse("a NUL, where bash cuts the word"),
            Ok(b) => out.push(b),
        }
    }
    String::from_utf8(out).or_else(|_| refuse("bytes that are not UTF-8 text"))
}

fn hex_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, max: usize) -> Option<u32> {
    let mut value = 0u32;
    let mut n = 0;
    while n < max {
        match chars.peek().and_then(|c| c.to_digit(16)) {
            Some(d) => {
                value = value * 16 + d;
                chars.next();
                n += 1;
            }
            None => break,
        }
    }
    (n > 0).then_some(value)
}
