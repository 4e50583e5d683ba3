//! Text tools whose arguments are programs of their own: `grep` (patterns), `sed` and `awk`
//! (scripts that can write files and run commands), `jq` (filters).

use sod_core::OperationKind::{Exec, Read, Write};

use super::{Invocation, Known, Parsed, Syntax, read_operand};
use crate::command::paths;
use crate::command::words::Arg;

pub(super) const TABLE: &[Known] = &[
    Known {
        names: &[
            "grep", "egrep", "fgrep", "rgrep", "zgrep", "zegrep", "zfgrep",
        ],
        syntax: Syntax::Gnu(
            "E|extended-regexp F|fixed-strings G|basic-regexp P|perl-regexp e|regexp= f|file= i|ignore-case y |no-ignore-case w|word-regexp x|line-regexp z|null-data s|no-messages v|invert-match V|version |help m|max-count= b|byte-offset n|line-number |line-buffered H|with-filename h|no-filename |label= o|only-matching q|quiet |silent |binary-files= a|text I d|directories= D|devices= r|recursive R|dereference-recursive |include= |exclude= |exclude-from= |exclude-dir= L|files-without-match l|files-with-matches c|count T|initial-tab Z|null B|before-context= A|after-context= C|context= # |group-separator= |no-group-separator |color? |colour? U|binary u|unix-byte-offsets",
        ),
        worst: Read,
        run: grep,
    },
    Known {
        names: &["sed"],
        syntax: Syntax::Gnu(
            "n|quiet |silent |debug e|expression= f|file= |follow-symlinks i|in-place? l|line-length= |posix E|regexp-extended r s|separate |sandbox u|unbuffered z|null-data b|binary |help |version",
        ),
        worst: Exec,
        run: sed,
    },
    Known {
        names: &["awk", "gawk", "mawk", "nawk"],
        syntax: Syntax::Posix(
            "F|field-separator= f|file= v|assign= b|characters-as-bytes c|traditional C|copyright d|dump-variables? D|debug? e|source= E|exec= g|gen-pot h|help i|include= I|trace k|csv l|load= L|lint? M|bignum N|use-lc-numeric n|non-decimal-data o|pretty-print? O|optimize p|profile? P|posix r|re-interval s|no-optimize S|sandbox t|lint-old V|version W=",
        ),
        worst: Exec,
        run: awk,
    },
    Known {
        names: &["jq"],
        syntax: Syntax::Raw,
        worst: Read,
        run: jq,
    },
];

// === grep ===

fn grep(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let recursive = inv.name == "rgrep"
        || p.any(&["recursive", "dereference-recursive"])
        || p.values("directories")
            .any(|v| !v.is("read") && !v.is("skip"));
    let mut operands = p.operands();
    // Without `-e` or `-f` the first operand is the pattern.
    if !p.any(&["regexp", "file"]) && !operands.is_empty() {
        operands.remove(0);
    }
    for f in p.values("file").chain(p.values("exclude-from")) {
        read_operand(inv, f);
    }
    if recursive && operands.is_empty() {
        inv.tree(&Arg::literal("."), Read);
    }
    for f in operands {
        if recursive {
            inv.tree(f, Read);
        } else {
            read_operand(inv, f);
        }
    }
}

// === sed ===

/// What a sed script does beyond printing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SedScript {
    /// `e`, `s///e`: runs shell commands.
    pub(crate) exec: bool,
    /// `r`, `R`: files read.
    pub(crate) reads: Vec<String>,
    /// `w`, `W`, `s///w`: files written.
    pub(crate) writes: Vec<String>,
}

fn sed(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let mut operands = p.operands();
    let mut scripts: Vec<Arg> = p.values("expression").cloned().collect();
    if !p.has("expression") && !p.has("file") && !operands.is_empty() {
        scripts.push(operands.remove(0).clone());
    }
    for f in p.values("file") {
        read_operand(inv, f);
        if !p.has("sandbox") {
            inv.raise(Exec);
            inv.objects_unknown("`sed -f` runs a script sod cannot see");
        }
    }
    // `-e` scripts are joined by newlines; judge them joined so `a\` continues across them.
    let texts: Option<Vec<&str>> = scripts.iter().map(Arg::text).collect();
    match texts {
        None => {
            let why = scripts
                .iter()
                .find_map(Arg::why)
                .unwrap_or_default()
                .to_owned();
            inv.raise(Exec);
            inv.objects_unknown(format!("the sed script is known only when it runs: {why}"));
        }
        Some(texts) => match sed_script(&texts.join("\n")) {
            Err(why) => super::unclear(inv, Exec, &why),
            Ok(script) => {
                if script.exec {
                    inv.raise(Exec);
                    inv.objects_unknown("the sed script runs shell commands (`e`)");
                }
                for r in &script.reads {
                    inv.read(&Arg::literal(r.as_str()));
                }
                for w in &script.writes {
                    inv.write(&Arg::literal(w.as_str()));
                }
            }
        },
    }
    let in_place = p.has("in-place");
    for f in operands {
        if in_place {
            inv.write(f);
        } else {
            read_operand(inv, f);
        }
    }
}

/// Reads a GNU sed script and lists what it does beyond printing. Anything not understood is
/// an error (the caller judges sed at its worst).
pub(crate) fn sed_script(script: &str) -> Result<SedScript, String> {
    let mut s = SedParser {
        chars: script.chars().collect(),
        at: 0,
        out: SedScript::default(),
    };
    s.script()?;
    Ok(s.out)
}

struct SedParser {
    chars: Vec<char>,
    at: usize,
    out: SedScript,
}

impl SedParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
    }

    fn rest_of_line(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.next() {
            if c == '\n' {
                break;
            }
            out.push(c);
        }
        out
    }

    fn script(&mut self) -> Result<(), String> {
        loop {
            while matches!(self.peek(), Some(' ' | '\t' | '\n' | ';')) {
                self.at += 1;
            }
            let Some(c) = self.peek() else {
                return Ok(());
            };
            if c == '#' {
                self.rest_of_line();
                continue;
            }
            if c == '}' {
                self.at += 1;
                self.end_of_command()?;
                continue;
            }
            self.address()?;
            self.skip_blanks();
            if self.peek() == Some(',') {
                self.at += 1;
                self.skip_blanks();
                self.second_address()?;
                self.skip_blanks();
            }
            while self.peek() == Some('!') {
                self.at += 1;
                self.skip_blanks();
            }
            let command = self.next().ok_or("a sed address without a command")?;
            self.command(command)?;
        }
    }

    fn command(&mut self, command: char) -> Result<(), String> {
        match command {
            '{' => Ok(()),
            '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x' | 'z' | 'F' => {
                self.end_of_command()
            }
            'l' | 'L' | 'q' | 'Q' => {
                self.skip_blanks();
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                self.end_of_command()
            }
            ':' | 'b' | 't' | 'T' | 'v' => {
                // A label (or version) runs to `;` or the end of the line.
                while let Some(c) = self.peek() {
                    if c == ';' || c == '\n' {
                        break;
                    }
                    self.at += 1;
                }
                Ok(())
            }
            'a' | 'i' | 'c' => {
                // Text to the end of the line; a backslash-newline continues it.
                while let Some(c) = self.next() {
                    match c {
                        '\\' => {
                            self.next();
                        }
                        '\n' => break,
                        _ => {}
                    }
                }
                Ok(())
            }
            'r' | 'R' => {
                self.skip_blanks();
                let file = self.rest_of_line();
                self.out.reads.push(file);
                Ok(())
            }
            'w' | 'W' => {
                self.skip_blanks();
                let file = self.rest_of_line();
                self.out.writes.push(file);
                Ok(())
            }
            'e' => {
                self.rest_of_line();
                self.out.exec = true;
                Ok(())
            }
            's' => self.substitute(),
            'y' => {
                let delimiter = self.delimiter()?;
                self.delimited(delimiter, false)?;
                self.delimited(delimiter, false)?;
                self.end_of_command()
            }
            other => Err(format!("`{other}` is not a sed command sod knows")),
        }
    }

    fn substitute(&mut self) -> Result<(), String> {
        let delimiter = self.delimiter()?;
        self.delimited(delimiter, true)?;
        self.delimited(delimiter, false)?;
        loop {
            match self.peek() {
                Some('g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9') => self.at += 1,
                Some('e') => {
                    self.at += 1;
                    self.out.exec = true;
                }
                Some('w') => {
                    self.at += 1;
                    self.skip_blanks();
                    let file = self.rest_of_line();
                    self.out.writes.push(file);
                    return Ok(());
                }
                _ => return self.end_of_command(),
            }
        }
    }

    fn delimiter(&mut self) -> Result<char, String> {
        match self.next() {
            Some('\n' | '\\') | None => Err("a sed command without a delimiter".to_owned()),
            Some(c) => Ok(c),
        }
    }

    /// Text up to an unescaped `delimiter`. In a regular expression, a bracket expression may
    /// contain the delimiter.
    fn delimited(&mut self, delimiter: char, regex: bool) -> Result<(), String> {
        loop {
            match self.next() {
                None => return Err("an unterminated sed expression".to_owned()),
                Some('\\') => {
                    self.next();
                }
                Some('[') if regex => self.bracket()?,
                Some('\n') if regex => return Err("a newline in a sed expression".to_owned()),
                Some(c) if c == delimiter => return Ok(()),
                Some(_) => {}
            }
        }
    }

    /// A bracket expression, after its `[`: `]` first is literal, `[:class:]` nests.
    fn bracket(&mut self) -> Result<(), String> {
        if self.peek() == Some('^') {
            self.at += 1;
        }
        if self.peek() == Some(']') {
            self.at += 1;
        }
        loop {
            match self.next() {
                None | Some('\n') => return Err("an unterminated bracket expression".to_owned()),
                Some('[') if matches!(self.peek(), Some(':' | '.' | '=')) => {
                    let kind = self.next();
                    loop {
                        match self.next() {
                            None => return Err("an unterminated character class".to_owned()),
                            Some(c) if Some(c) == kind && self.peek() == Some(']') => {
                                self.at += 1;
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                Some(']') => return Ok(()),
                Some(_) => {}
            }
        }
    }

    fn address(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                self.digits();
                if self.peek() == Some('~') {
                    self.at += 1;
                    self.digits();
                }
                Ok(())
            }
            Some('$') => {
                self.at += 1;
                Ok(())
            }
            Some('/') => {
                self.at += 1;
                self.delimited('/', true)?;
                self.regex_flags();
                Ok(())
            }
            Some('\\') => {
                self.at += 1;
                let delimiter = self.delimiter()?;
                self.delimited(delimiter, true)?;
                self.regex_flags();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn second_address(&mut self) -> Result<(), String> {
        match self.peek() {
            Some('+' | '~') => {
                self.at += 1;
                self.digits();
                Ok(())
            }
            _ => self.address(),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn regex_flags(&mut self) {
        while matches!(self.peek(), Some('I' | 'M')) {
            self.at += 1;
        }
    }

    fn end_of_command(&mut self) -> Result<(), String> {
        self.skip_blanks();
        match self.peek() {
            None | Some(';' | '\n' | '}' | '#') => Ok(()),
            Some(c) => Err(format!("`{c}` after a sed command")),
        }
    }
}

// === awk ===

/// What an awk program does beyond reading its input and printing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AwkProgram {
    /// `system()`, pipes (`|`, `|&`), `@load`, `@include`, `/inet/` files.
    pub(crate) exec: bool,
    /// Output redirected to files: `Some(path)` for a literal file name, `None` for a file
    /// named by an expression.
    pub(crate) writes: Vec<Option<String>>,
    /// `getline < file`, `ARGV`, `ARGC`: files read that the operands do not name.
    pub(crate) reads_others: bool,
}

fn awk(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let mut operands = p.operands();
    let mut programs: Vec<Arg> = p.values("source").cloned().collect();
    if !p.any(&["file", "source", "exec"]) && !operands.is_empty() {
        programs.push(operands.remove(0).clone());
    }
    for f in p.values("file").chain(p.values("exec")) {
        read_operand(inv, f);
        inv.raise(Exec);
        inv.objects_unknown("`awk -f` runs a program sod cannot see");
    }
    if p.any(&["include", "load", "W"]) {
        inv.raise(Exec);
        inv.objects_unknown("awk loads code sod cannot see");
    }
    if p.any(&["dump-variables", "pretty-print", "profile"]) {
        inv.raise(Write);
        inv.objects_unknown("awk writes a dump or profile file");
    }
    for program in &programs {
        let Some(text) = program.text() else {
            let why = program.why().unwrap_or_default().to_owned();
            inv.raise(Exec);
            inv.objects_unknown(format!("the awk program is known only when it runs: {why}"));
            continue;
        };
        let found = awk_program(text);
        if found.exec {
            inv.raise(Exec);
            inv.objects_unknown("the awk program runs commands");
        }
        if found.reads_others {
            inv.objects_unknown("the awk program reads files its operands do not name");
        }
        for w in found.writes {
            match w {
                Some(path) => inv.write(&Arg::literal(path)),
                None => {
                    inv.raise(Write);
                    inv.objects_unknown("the awk program writes to files named at run time");
                }
            }
        }
    }
    for f in operands {
        // `var=value` operands are assignments, not files.
        let assignment = f.text().is_some_and(|t| {
            t.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        });
        if !assignment {
            read_operand(inv, f);
        }
    }
}

/// Finds what an awk program does beyond reading and printing. It does not parse awk: it
/// skips strings, regular expressions and comments, and takes anything that may be a pipe,
/// a redirection, `system`, `getline` or `ARGV` as one (over-estimating is safe).
pub(crate) fn awk_program(text: &str) -> AwkProgram {
    let mut out = AwkProgram::default();
    let chars: Vec<char> = text.chars().collect();
    let mut braces = 0usize;
    let mut parens = 0usize;
    // The last significant character, to tell a regular expression from a division.
    let mut last: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                let (string, end) = awk_string(&chars, i);
                if string.starts_with("/inet") {
                    out.exec = true;
                }
                i = end;
                last = Some('"');
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if last.is_none_or(|l| "(,{};~!&|\n?:=".contains(l)) => {
                // A regular expression: skip to its closing slash.
                i += 1;
                while i < chars.len() && chars[i] != '/' && chars[i] != '\n' {
                    if chars[i] == '\\' {
                        i += 1;
                    } else if chars[i] == '[' {
                        while i < chars.len() && chars[i] != ']' && chars[i] != '\n' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
                last = Some('/');
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '(' => parens += 1,
            ')' => parens = parens.saturating_sub(1),
            '|' => {
                if chars.get(i + 1) == Some(&'|') {
                    i += 2;
                    last = Some('|');
                    continue;
                }
                out.exec = true;
            }
            '>' if braces > 0 && parens == 0 => {
                // `print > file`, `print >> file` (a comparison outside parentheses in an
                // action is taken as a redirection too).
                let mut j = i + 1;
                if chars.get(j) == Some(&'>') {
                    j += 1;
                }
                while chars.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
                    j += 1;
                }
                if chars.get(j) == Some(&'"') {
                    let (target, end) = awk_string(&chars, j);
                    let after = chars[end..].iter().find(|c| !c.is_whitespace());
                    if target.starts_with("/inet") {
                        out.exec = true;
                    } else if after.is_none_or(|c| matches!(c, ';' | '}' | '\n')) {
                        if !paths::is_stream(&target) {
                            out.writes.push(Some(target));
                        }
                    } else {
                        out.writes.push(None);
                    }
                    i = end;
                    last = Some('"');
                    continue;
                }
                out.writes.push(None);
                i = j;
                last = Some('>');
                continue;
            }
            '@' => out.exec = true,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "system" => out.exec = true,
                    "getline" | "ARGV" | "ARGC" => out.reads_others = true,
                    _ => {}
                }
                last = Some('a');
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() || c == '\n' {
            last = Some(c);
        }
        i += 1;
    }
    out
}

/// An awk string literal starting at `chars[at]` (a `"`): its text, and the index after it.
fn awk_string(chars: &[char], at: usize) -> (String, usize) {
    let mut text = String::new();
    let mut i = at + 1;
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' && i + 1 < chars.len() {
            i += 1;
        }
        text.push(chars[i]);
        i += 1;
    }
    (text, i + 1)
}

// === jq ===

/// `jq [options] FILTER [FILES…]`, with jq's own options (some take two values).
fn jq(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    const FLAGS: &[&str] = &[
        "n",
        "null-input",
        "r",
        "raw-output",
        "raw-output0",
        "j",
        "join-output",
        "a",
        "ascii-output",
        "c",
        "compact-output",
        "C",
        "color-output",
        "M",
        "monochrome-output",
        "S",
        "sort-keys",
        "s",
        "slurp",
        "R",
        "raw-input",
        "e",
        "exit-status",
        "tab",
        "unbuffered",
        "stream",
        "stream-errors",
        "seq",
        "h",
        "help",
        "V",
        "version",
        "build-configuration",
        "b",
        "binary",
    ];
    inv.raise(Read);
    let args = inv.args;
    let mut filter: Option<&Arg> = None;
    let mut from_file = false;
    let mut files = Vec::new();
    let mut positional_args = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let text = match a.text() {
            Some(t) if !positional_args && t.starts_with('-') && t.len() > 1 => t,
            _ => {
                if let (Some(why), false) = (a.why(), positional_args) {
                    // It could be an option (`--rawfile x FILE`).
                    inv.objects_unknown(format!("{why}, and could be any option"));
                }
                if filter.is_none() && !from_file {
                    filter = Some(a);
                } else if !positional_args {
                    files.push(a);
                }
                continue;
            }
        };
        if !text.starts_with("--") && text.len() > 2 {
            // A cluster of one-letter flags (`-rc`).
            if text[1..]
                .chars()
                .all(|c| FLAGS.contains(&c.to_string().as_str()))
            {
                continue;
            }
            return super::unclear(inv, Read, &format!("`{text}` is not an option sod knows"));
        }
        let name = text.trim_start_matches('-');
        let takes = match name {
            _ if FLAGS.contains(&name) => 0,
            "indent" | "L" => 1,
            "f" | "from-file" => {
                from_file = true;
                if let Some(f) = args.get(i) {
                    inv.read(f);
                }
                1
            }
            "arg" | "argjson" => 2,
            "slurpfile" | "rawfile" => {
                if let Some(f) = args.get(i + 1) {
                    inv.read(f);
                }
                2
            }
            "args" | "jsonargs" => {
                positional_args = true;
                0
            }
            _ => return super::unclear(inv, Read, &format!("`{text}` is not an option sod knows")),
        };
        i += takes;
    }
    match filter.map(|f| f.text()) {
        Some(Some(f)) if f.contains("import") || f.contains("include") => {
            inv.objects_unknown("the jq filter reads modules");
        }
        Some(None) => {
            // A filter built at run time can still only read jq's inputs.
        }
        _ => {}
    }
    if from_file {
        // With `-f`, the first positional argument is a file, not the filter.
        files.extend(filter);
    }
    for f in files {
        read_operand(inv, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sed_scripts() {
        let ok = |s: &str| sed_script(s).expect(s);
        assert_eq!(ok("s/a/b/g;p"), SedScript::default());
        assert!(ok("1e id").exec);
        assert!(ok("s/x/id/e").exec);
        assert!(ok("s/x/id/ge").exec);
        assert_eq!(ok("s/a/b/w /tmp/o ; p").writes, ["/tmp/o ; p"]);
        assert_eq!(ok("1r /etc/shadow").reads, ["/etc/shadow"]);
        assert_eq!(ok("$!N;s/\\n/ /;w out").writes, ["out"]);
        // The delimiter inside a bracket expression is text.
        assert_eq!(ok("s/[/]w/x/").writes, Vec::<String>::new());
        assert_eq!(ok("s&a&b&w amp").writes, ["amp"]);
        // `a` text continues over backslash-newlines; the next line is a command.
        assert_eq!(ok("a foo\\\nw x\nw y").writes, ["y"]);
        assert_eq!(ok("/x/I,+3{w r\n}").writes, ["r"]);
        assert_eq!(ok(":a;N;$!ba;s/\\n//g"), SedScript::default());
        assert_eq!(ok("y/a\\/b/c\\/d/;w q").writes, ["q"]);
        assert_eq!(ok("\\%x%p;W w").writes, ["w"]);
        assert!(sed_script("k").is_err());
        assert!(sed_script("s/a/b").is_err());
        assert!(sed_script("p x").is_err());
    }

    #[test]
    fn awk_programs() {
        assert_eq!(awk_program("{ print $1 }"), AwkProgram::default());
        assert_eq!(awk_program("$3 > 100 { print }"), AwkProgram::default());
        assert_eq!(
            awk_program("{ if ($3 > 100) print }"),
            AwkProgram::default()
        );
        assert_eq!(awk_program("a || b"), AwkProgram::default());
        assert_eq!(awk_program("/a|b/ { n++ }"), AwkProgram::default());
        assert_eq!(awk_program("{ print \"a|b>c\" }"), AwkProgram::default());
        assert!(awk_program("{ system(\"id\") }").exec);
        assert!(awk_program("{ print | \"sh\" }").exec);
        assert!(awk_program("BEGIN { \"id\" | getline x }").exec);
        assert!(awk_program("BEGIN { print > \"/inet/tcp/0/h/80\" }").exec);
        assert!(awk_program("@load \"x\"").exec);
        assert_eq!(
            awk_program("{ print > \"out\" }").writes,
            [Some("out".to_owned())]
        );
        assert_eq!(
            awk_program("{ print > \"/dev/stderr\" }").writes,
            Vec::<Option<String>>::new()
        );
        assert_eq!(awk_program("{ print >> $1 }").writes, [None]);
        assert_eq!(awk_program("{ print > \"a\" \"b\" }").writes, [None]);
        assert!(awk_program("BEGIN { ARGV[1] = \"/etc/shadow\"; ARGC = 2 }").reads_others);
        assert!(awk_program("BEGIN { getline l < \"/etc/shadow\" }").reads_others);
        // A division is not a regular expression hiding what follows.
        assert!(awk_program("{ x = a / 2; system(\"id\"); y = b / 3 }").exec);
    }
}
