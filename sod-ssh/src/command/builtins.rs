//! Shell builtins: the commands bash runs itself. Some change the shell (`cd`, `export`,
//! `set`), some run strings as code (`eval`, `trap`, `source`), some only report. A builtin
//! not listed here is not understood.

use sod_core::OperationKind::{Exec, Read};

use super::judge::{Judge, Lookup, Outcome, Shell};
use super::parse;
use super::paths::Dirs;
use super::programs::{HARMLESS_SET_LETTERS, HARMLESS_SET_OPTIONS};
use super::words::Arg;

/// Every bash 5.2 builtin.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// Builtins whose behaviour no environment variable changes.
const INERT: &[&str] = &[
    ":",
    "true",
    "false",
    "echo",
    "printf",
    "read",
    "test",
    "[",
    "pwd",
    "export",
    "declare",
    "typeset",
    "local",
    "readonly",
    "unset",
    "shift",
    "set",
    "return",
    "exit",
    "break",
    "continue",
    "wait",
    "times",
    "jobs",
    "umask",
    "ulimit",
    "getopts",
    "let",
    "alias",
    "unalias",
    "type",
    "help",
    "mapfile",
    "readarray",
];

/// Variables that change what the shell itself does when set, exported or not.
const SHELL_VARIABLES: &[&str] = &[
    "PATH",
    "HOME",
    "CDPATH",
    "ENV",
    "BASH_ENV",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "GLOBIGNORE",
    "POSIXLY_CORRECT",
    "BASH_COMPAT",
    "EXECIGNORE",
    "FIGNORE",
    "OLDPWD",
    "PWD",
    "BASH_XTRACEFD",
    "PROMPT_COMMAND",
    "BASH_LOADABLES_PATH",
    "BASH_ARGV0",
    "BASH_CMDS",
    "BASH_ALIASES",
    "FUNCNEST",
    "TMOUT",
    "HISTFILE",
    "INPUTRC",
];

/// Variables a program may be given without changing what it does.
const HARMLESS_EXPORTS: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "COLUMNS",
    "LINES",
    "IFS",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "FORCE_COLOR",
    "TIME_STYLE",
    "QUOTING_STYLE",
    "LS_COLORS",
    "GREP_COLORS",
];

/// `shopt` options that change nothing about what a script means.
const HARMLESS_SHOPTS: &[&str] = &[
    "nullglob",
    "failglob",
    "dotglob",
    "globstar",
    "nocaseglob",
    "nocasematch",
    "globasciiranges",
    "xpg_echo",
    "inherit_errexit",
    "checkwinsize",
    "huponexit",
    "histappend",
    "cmdhist",
    "lithist",
    "checkhash",
    "checkjobs",
];

/// Whether `name` is a bash builtin.
pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

/// Whether the builtin `name` does the same whatever the environment.
pub(crate) fn is_inert(name: &str) -> bool {
    INERT.contains(&name)
}

/// Whether `shopt -s name` changes nothing about what a script means.
pub(crate) fn harmless_shopt(name: &str) -> bool {
    HARMLESS_SHOPTS.contains(&name)
}

/// Why exporting `name` to programs may change what they do (`LD_PRELOAD`, `PATH`,
/// `BASH_ENV`, `PAGER`, `GIT_SSH_COMMAND`, …), or `None` for a variable known to be harmless.
pub(crate) fn exported(name: &str) -> Option<String> {
    let harmless = HARMLESS_EXPORTS.contains(&name) || name.starts_with("LC_");
    (!harmless).then(|| format!("`{name}` in the environment can change what programs do"))
}

/// An assignment to `name` in the shell (`export`ed if `export`): taints the shell's
/// environment if the variable can change what the shell or its programs do.
pub(crate) fn assign(sh: &mut Shell, name: &str, export: bool) {
    if SHELL_VARIABLES.contains(&name) {
        sh.taint(format!("`{name}` changes what the shell does"));
    }
    if (export || sh.allexport)
        && let Some(why) = exported(name)
    {
        sh.taint(why);
    }
}

/// Runs the builtin `name`.
pub(crate) fn run(judge: &mut Judge<'_>, sh: &mut Shell, name: &str, args: &[Arg]) -> Outcome {
    let unchanged = |sh: &Shell| (sh.cwd.clone(), sh.cwd.clone());
    judge.verdict.raise(Read);
    match name {
        "cd" | "pushd" => return cd(judge, sh, name, args),
        "popd" => {
            let before = sh.cwd.clone();
            return (
                Dirs::unknown("`popd` returns to a directory on the stack"),
                before,
            );
        }
        ":" | "true" | "false" | "echo" | "pwd" | "times" | "jobs" | "dirs" | "help" | "caller"
        | "logout" | "exit" | "return" | "break" | "continue" | "shift" | "umask" | "ulimit"
        | "disown" | "bg" | "fg" | "suspend" | "unalias" | "type" => {}
        "test" | "[" => judge.program_of_builtin(sh, name, args),
        "printf" => {
            if let Some(i) = args.iter().position(|a| a.is("-v")) {
                names(judge, sh, "printf -v", &args[i + 1..i + 2], false);
            }
        }
        "read" => {
            let operands = skip_options(args, "adinNptu");
            names(judge, sh, name, operands, false);
        }
        "getopts" => names(judge, sh, name, args.get(1..2).unwrap_or_default(), false),
        "wait" => {
            if let Some(i) = args.iter().position(|a| a.is("-p")) {
                names(
                    judge,
                    sh,
                    "wait -p",
                    &args[i + 1..(i + 2).min(args.len())],
                    false,
                );
            }
        }
        "mapfile" | "readarray" => {
            if args
                .iter()
                .any(|a| a.text().is_none_or(|t| t.starts_with("-C")))
            {
                judge
                    .verdict
                    .not_understood(format!("`{name} -C` runs a callback given as a string"));
            }
            let operands = skip_options(args, "dnOsuCc");
            names(judge, sh, name, operands, false);
        }
        "export" | "declare" | "typeset" | "local" | "readonly" => declare(judge, sh, name, args),
        "unset" => {
            let operands = skip_options(args, "");
            for a in operands {
                if a.text().is_none_or(|t| t.contains('[')) {
                    judge.verdict.not_understood(format!(
                        "`unset {}` evaluates an array index or names a variable at run time",
                        a.text().unwrap_or("…")
                    ));
                }
            }
        }
        "let" => {
            for a in args {
                let checked = match a.text() {
                    Some(t) => parse::arithmetic(t),
                    None => Err("`let` evaluates an expression built at run time".to_owned()),
                };
                if let Err(why) = checked {
                    judge.verdict.not_understood(why);
                }
            }
        }
        "eval" => {
            let words: Option<Vec<&str>> = args.iter().map(Arg::text).collect();
            match words {
                Some(words) => judge.script_text(sh, &words.join(" ")),
                None => judge
                    .verdict
                    .not_understood("`eval` runs a string built at run time"),
            }
        }
        "source" | "." => {
            judge.verdict.raise(Exec);
            let file = args
                .first()
                .cloned()
                .unwrap_or_else(|| Arg::runtime("no file"));
            let cwd = sh.cwd.clone();
            judge.path(&cwd, &file, Read);
            judge.verdict.objects_unknown(format!(
                "`{name}` runs the shell code in a file sod cannot see"
            ));
            sh.taint(format!("`{name}` runs code that can change the shell"));
            sh.cwd = Dirs::unknown(format!("`{name}` can change the working directory"));
        }
        "exec" => {
            let operands = skip_options(args, "a");
            return judge.run_words(sh, operands, Lookup::Program);
        }
        "command" => {
            let lookup_only = args
                .iter()
                .take_while(|a| a.text().is_some_and(|t| t.starts_with('-')))
                .any(|a| a.text().is_some_and(|t| t.contains(['v', 'V'])));
            if !lookup_only {
                let operands = skip_options(args, "");
                return judge.run_words(sh, operands, Lookup::NoFunctions);
            }
        }
        "builtin" => return judge.run_words(sh, args, Lookup::Builtin),
        "trap" => trap(judge, sh, args),
        "alias" => {
            if args
                .iter()
                .any(|a| a.text().is_none_or(|t| t.contains('=')))
            {
                judge
                    .verdict
                    .not_understood("`alias` changes what later command names mean");
            }
        }
        "enable" => {
            let lists = args.iter().all(|a| a.is("-a") || a.is("-p") || a.is("-s"));
            if args
                .iter()
                .any(|a| a.text().is_some_and(|t| t.starts_with("-f")))
            {
                judge.verdict.raise(Exec);
                judge
                    .verdict
                    .objects_unknown("`enable -f` loads a builtin from a shared object");
            } else if !lists {
                judge
                    .verdict
                    .not_understood("`enable` changes which builtins command names run");
            }
        }
        "shopt" => shopt(judge, args),
        "set" => set(judge, sh, args),
        "hash" => {
            if args
                .iter()
                .any(|a| a.text().is_none_or(|t| t.starts_with("-p")))
            {
                judge
                    .verdict
                    .not_understood("`hash -p` changes which program a name runs");
            }
        }
        "history" => {
            if !args.iter().all(|a| {
                a.text()
                    .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
            }) {
                judge
                    .verdict
                    .not_understood("`history` with options reads or writes history files");
            }
        }
        "kill" => judge.program_of_builtin(sh, name, args),
        "compgen" => {
            if args.iter().any(|a| {
                a.text()
                    .is_none_or(|t| t.starts_with("-C") || t.starts_with("-F"))
            }) {
                judge
                    .verdict
                    .not_understood("`compgen -C`/`-F` runs a command or function");
            }
        }
        // `fc` re-runs history; `bind`, `complete`, `compopt` configure interactive features.
        _ => judge
            .verdict
            .not_understood(format!("the builtin `{name}` is not one sod understands")),
    }
    unchanged(sh)
}

/// The operands after leading options; `with_values` are the letters that take a value.
fn skip_options<'a>(args: &'a [Arg], with_values: &str) -> &'a [Arg] {
    let mut i = 0;
    while let Some(t) = args.get(i).and_then(Arg::text) {
        if t == "--" {
            return &args[i + 1..];
        }
        if !t.starts_with('-') || t == "-" {
            break;
        }
        let last = t.chars().last().unwrap_or('-');
        i += if with_values.contains(last) && t.len() == 2 {
            2
        } else {
            1
        };
    }
    args.get(i..).unwrap_or_default()
}

/// Variable names a builtin assigns: an array index is arithmetic (can run commands), and a
/// name known only at run time could be any variable.
fn names(judge: &mut Judge<'_>, sh: &mut Shell, what: &str, names: &[Arg], export: bool) {
    for n in names {
        match n.text() {
            Some(t) if !t.contains('[') => assign(sh, t, export),
            _ => judge.verdict.not_understood(format!(
                "`{what}` assigns to `{}`, an array element or a name known only at run time",
                n.text().unwrap_or("…")
            )),
        }
    }
}

/// `export`, `declare`, `typeset`, `local`, `readonly`.
fn declare(judge: &mut Judge<'_>, sh: &mut Shell, name: &str, args: &[Arg]) {
    let mut export = name == "export";
    let mut operands = Vec::new();
    let mut options_done = false;
    for a in args {
        match a.text() {
            Some("--") if !options_done => options_done = true,
            Some(t)
                if !options_done && (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 =>
            {
                let on = t.starts_with('-');
                for c in t[1..].chars() {
                    match c {
                        'x' if on => export = true,
                        'n' if name != "export" => {
                            return judge.verdict.not_understood(format!(
                                "`{name} -n` makes a name refer to another variable"
                            ));
                        }
                        'i' => {
                            return judge.verdict.not_understood(format!(
                                "`{name} -i` evaluates every later assignment as arithmetic"
                            ));
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                options_done = true;
                operands.push(a);
            }
        }
    }
    for a in operands {
        let variable = match (a.assigned_name(), a.text()) {
            (Some(variable), _) => variable,
            (None, Some(text)) => text,
            (None, None) => {
                return judge
                    .verdict
                    .not_understood(format!("`{name}` assigns a variable named at run time"));
            }
        };
        names(judge, sh, name, &[Arg::literal(variable)], export);
    }
}

/// `cd`/`pushd`: where the shell goes, and where it stays if that fails.
fn cd(judge: &mut Judge<'_>, sh: &mut Shell, name: &str, args: &[Arg]) -> Outcome {
    let before = sh.cwd.clone();
    let mut physical = false;
    let mut operands = args;
    while let Some((first, rest)) = operands.split_first() {
        match first.text() {
            Some("--") => {
                operands = rest;
                break;
            }
            Some(t)
                if t.len() > 1
                    && t.starts_with('-')
                    && t[1..].chars().all(|c| "LPe@".contains(c)) =>
            {
                physical |= t.contains('P');
                operands = rest;
            }
            _ => break,
        }
    }
    let target = match operands.first() {
        None if name == "cd" => Arg::Literal {
            text: judge.cx.home.clone(),
            home: true,
        },
        None => {
            return (
                Dirs::unknown("`pushd` swaps the top of the directory stack"),
                before,
            );
        }
        Some(t) => t.clone(),
    };
    let after = match &target {
        Arg::Runtime { why, .. } => Dirs::unknown(format!(
            "`{name}` goes to a directory known only when it runs: {why}"
        )),
        Arg::Literal { text, .. }
            if text == "-"
                || (name == "pushd" && (text.starts_with('+') || text.starts_with('-'))) =>
        {
            Dirs::unknown(format!(
                "`{name} {text}` goes to a directory from the shell's memory"
            ))
        }
        Arg::Literal { text, .. } if physical && text.split('/').any(|c| c == "..") => {
            Dirs::unknown(format!("`{name} -P {text}` follows symbolic links"))
        }
        Arg::Literal { text, home } => before.cd(text, *home),
    };
    (after, before)
}

/// `trap [action] [signals…]`: the action runs later, wherever the shell is then.
fn trap(judge: &mut Judge<'_>, sh: &mut Shell, args: &[Arg]) {
    let args = match args.first() {
        Some(a) if a.is("--") => &args[1..],
        _ => args,
    };
    let lists = args
        .first()
        .is_none_or(|a| a.is("-l") || a.is("-p") || a.is("-P"));
    if lists || args.len() < 2 {
        return;
    }
    match args[0].text() {
        Some("-") | Some("") => {}
        Some(action) => {
            let mut later = sh.clone();
            later.cwd = Dirs::unknown("a trap runs wherever the shell is when it fires");
            judge.script_text(&mut later, action);
        }
        None => judge
            .verdict
            .not_understood("`trap` runs a string built at run time"),
    }
}

/// `shopt`: printing is harmless; setting is only for options that change no meaning.
fn shopt(judge: &mut Judge<'_>, args: &[Arg]) {
    let mut sets = false;
    let mut set_o = false;
    for a in args {
        match a.text() {
            Some("-s" | "-u") => sets = true,
            Some("-o") => set_o = true,
            Some("-p" | "-q") => {}
            Some(name) if !name.starts_with('-') => {
                let harmless = if set_o {
                    HARMLESS_SET_OPTIONS.contains(&name)
                } else {
                    harmless_shopt(name)
                };
                if sets && !harmless {
                    return judge.verdict.not_understood(format!(
                        "`shopt {name}` changes how the shell reads commands"
                    ));
                }
            }
            _ => {
                return judge
                    .verdict
                    .not_understood("`shopt` with options sod does not know");
            }
        }
    }
}

/// `set`: options that change no meaning, `-a` (tracked), and positional parameters.
fn set(judge: &mut Judge<'_>, sh: &mut Shell, args: &[Arg]) {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(t) = a.text() else {
            return judge
                .verdict
                .not_understood("`set` with an option known only at run time");
        };
        if t == "--" || t == "-" || !(t.starts_with('-') || t.starts_with('+')) {
            // The rest are positional parameters.
            return;
        }
        let on = t.starts_with('-');
        for c in t[1..].chars() {
            match c {
                'o' => {
                    let Some(name) = args.get(i).and_then(Arg::text) else {
                        // `set -o` alone prints.
                        continue;
                    };
                    i += 1;
                    if !HARMLESS_SET_OPTIONS.contains(&name) {
                        return judge.verdict.not_understood(format!(
                            "`set -o {name}` changes how the shell reads commands"
                        ));
                    }
                    if name == "allexport" {
                        sh.allexport = on;
                    }
                }
                'a' => sh.allexport = on,
                c if HARMLESS_SET_LETTERS.contains(c) => {}
                _ => {
                    return judge.verdict.not_understood(format!(
                        "`set -{c}` changes how the shell reads commands"
                    ));
                }
            }
        }
    }
}
