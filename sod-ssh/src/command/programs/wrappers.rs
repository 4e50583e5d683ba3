//! Programs that run other commands, judged by what they run: shells (`sh -c`), `env`,
//! `nice`, `timeout`, `sudo`, `su`, `xargs`, `find -exec`, ….

use sod_core::OperationKind::{Admin, Exec, Read, Unknown, Write};

use super::{Invocation, Known, Parsed, Syntax, reads_list};
use crate::command::builtins;
use crate::command::paths::Dirs;
use crate::command::words::Arg;

pub(super) const TABLE: &[Known] = &[
    Known {
        names: &["sh", "bash", "dash", "rbash"],
        syntax: Syntax::Raw,
        worst: Unknown,
        run: shell,
    },
    Known {
        names: &["env"],
        syntax: Syntax::Posix(
            "i|ignore-environment 0|null u|unset= C|chdir= S|split-string= v|debug |block-signal? |default-signal? |ignore-signal? |list-signal-handling a|argv0= |help |version",
        ),
        worst: Unknown,
        run: env,
    },
    Known {
        names: &["nice"],
        syntax: Syntax::Posix("n|adjustment= # |help |version"),
        worst: Unknown,
        run: runs_operands,
    },
    Known {
        names: &["nohup"],
        syntax: Syntax::Posix("|help |version"),
        worst: Unknown,
        run: nohup,
    },
    Known {
        names: &["timeout"],
        syntax: Syntax::Posix(
            "f|foreground k|kill-after= p|preserve-status s|signal= v|verbose |help |version",
        ),
        worst: Unknown,
        run: timeout,
    },
    Known {
        names: &["stdbuf"],
        syntax: Syntax::Posix("i|input= o|output= e|error= |help |version"),
        worst: Unknown,
        run: runs_operands,
    },
    Known {
        names: &["time"],
        syntax: Syntax::Posix(
            "a|append f|format= o|output= p|portability q|quiet v|verbose |help V|version",
        ),
        worst: Unknown,
        run: time,
    },
    Known {
        names: &["setsid"],
        syntax: Syntax::Posix("c|ctty f|fork w|wait h|help V|version"),
        worst: Unknown,
        run: runs_operands,
    },
    Known {
        names: &["ionice"],
        syntax: Syntax::Posix("c|class= n|classdata= p|pid P|pgid u|uid t|ignore h|help V|version"),
        worst: Unknown,
        run: ionice,
    },
    Known {
        names: &["taskset"],
        syntax: Syntax::Posix("a|all-tasks p|pid c|cpu-list h|help V|version"),
        worst: Unknown,
        run: taskset,
    },
    Known {
        names: &["flock"],
        syntax: Syntax::Posix(
            "s|shared x|exclusive e u|unlock n|nonblock |nb w|timeout= |wait= E|conflict-exit-code= o|close F|no-fork |fcntl |verbose h|help V|version",
        ),
        worst: Unknown,
        run: flock,
    },
    Known {
        names: &["watch"],
        syntax: Syntax::Posix(
            "b|beep c|color C|no-color d|differences? e|errexit g|chgexit n|interval= p|precise t|no-title w|no-wrap x|exec q|equexit= r|no-rerun h|help v|version",
        ),
        worst: Unknown,
        run: watch,
    },
    Known {
        names: &["script"],
        syntax: Syntax::Gnu(
            "a|append c|command= E|echo= e|return f|flush |force B|log-io= I|log-in= O|log-out= T|log-timing= m|logging-format= o|output-limit= q|quiet t|timing? h|help V|version",
        ),
        worst: Unknown,
        run: script,
    },
    Known {
        names: &["sudo"],
        syntax: Syntax::Posix(
            "A|askpass b|background B|bell C|close-from= D|chdir= E|preserve-env? e|edit g|group= H|set-home h|host? i|login K|remove-timestamp k|reset-timestamp l|list n|non-interactive N|no-update P|preserve-groups p|prompt= R|chroot= r|role= S|stdin s|shell t|type= T|command-timeout= U|other-user= u|user= V|version v|validate |help",
        ),
        worst: Unknown,
        run: sudo,
    },
    Known {
        names: &["doas"],
        syntax: Syntax::Posix("C= L n s u="),
        worst: Unknown,
        run: doas,
    },
    Known {
        names: &["su", "runuser"],
        syntax: Syntax::Gnu(
            "c|command= |session-command= f|fast g|group= G|supp-group= l|login m p|preserve-environment s|shell= P|pty w|whitelist-environment= u|user= h|help V|version",
        ),
        worst: Unknown,
        run: su,
    },
    Known {
        names: &["pkexec"],
        syntax: Syntax::Posix("|user= |disable-internal-agent |keep-cwd |help |version"),
        worst: Unknown,
        run: pkexec,
    },
    Known {
        names: &["chroot"],
        syntax: Syntax::Posix("|groups= |userspec= |skip-chdir |help |version"),
        worst: Unknown,
        run: chroot,
    },
    Known {
        names: &["xargs"],
        syntax: Syntax::Posix(
            "0|null a|arg-file= d|delimiter= E= e|eof? I= i|replace? L= l? |max-lines= n|max-args= o|open-tty P|max-procs= p|interactive |process-slot-var= r|no-run-if-empty s|max-chars= |show-limits t|verbose x|exit |help |version",
        ),
        worst: Unknown,
        run: xargs,
    },
    Known {
        names: &["find"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: find,
    },
];

/// The shell options that change nothing about what a script means (`set -o` names).
pub(crate) const HARMLESS_SET_OPTIONS: &[&str] = &[
    "allexport",
    "braceexpand",
    "errexit",
    "errtrace",
    "functrace",
    "hashall",
    "histexpand",
    "history",
    "ignoreeof",
    "monitor",
    "noclobber",
    "noexec",
    "noglob",
    "nolog",
    "notify",
    "nounset",
    "physical",
    "pipefail",
    "privileged",
    "verbose",
    "xtrace",
];

/// The `set` letters that change nothing about what a script means (`a` is `allexport`).
pub(crate) const HARMLESS_SET_LETTERS: &str = "abefhmnptuvxBCEHPT";

/// `sh [options] [-c script [name [args…]] | file [args…]]`.
fn shell(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    let mut command = false;
    let mut stdin = false;
    let mut allexport = false;
    let mut i = 0;
    while i < args.len() {
        let Some(text) = args[i].text() else {
            let why = args[i].why().unwrap_or_default().to_owned();
            return super::unclear(inv, Unknown, &format!("{why}, and could be any option"));
        };
        if text == "--" || text == "-" {
            i += 1;
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            match long {
                "norc" | "noprofile" | "login" | "restricted" | "verbose" | "noediting"
                | "version" | "help" => {}
                _ => {
                    return super::unclear(
                        inv,
                        Unknown,
                        &format!("`{text}` is not an option sod knows"),
                    );
                }
            }
            i += 1;
            continue;
        }
        let Some(letters) = text.strip_prefix(['-', '+']).filter(|l| !l.is_empty()) else {
            break;
        };
        let on = text.starts_with('-');
        for c in letters.chars() {
            match c {
                'c' => command = true,
                's' => stdin = true,
                'i' | 'l' | 'r' => {}
                'a' => allexport = on,
                'o' | 'O' => {
                    i += 1;
                    let name = args.get(i).and_then(Arg::text).unwrap_or_default();
                    let harmless = if c == 'o' {
                        HARMLESS_SET_OPTIONS.contains(&name)
                    } else {
                        builtins::harmless_shopt(name)
                    };
                    if !harmless {
                        return super::unclear(
                            inv,
                            Unknown,
                            &format!("`-{c} {name}` changes how the shell reads its script"),
                        );
                    }
                    allexport |= name == "allexport" && on;
                }
                c if HARMLESS_SET_LETTERS.contains(c) => {}
                _ => {
                    return super::unclear(
                        inv,
                        Unknown,
                        &format!("`-{c}` is not a shell option sod knows"),
                    );
                }
            }
        }
        i += 1;
    }
    let operands = &args[i..];
    inv.raise(Read);
    if command {
        // `-c script [$0 [$1…]]`; without a script the shell fails.
        if let Some(script) = operands.first() {
            inv.run_script(script, allexport);
        }
    } else if stdin || operands.is_empty() {
        inv.raise(Exec);
        let name = inv.name;
        inv.objects_unknown(format!("`{name}` runs the commands on its standard input"));
    } else {
        inv.read(&operands[0]);
        inv.raise(Exec);
        let name = inv.name;
        inv.objects_unknown(format!("`{name}` runs a script file sod cannot see"));
    }
}

/// `nice cmd…`, `stdbuf … cmd…`, `setsid cmd…`: the operands are the command (without one,
/// they only report).
fn runs_operands(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let argv: Vec<Arg> = p.operands().into_iter().cloned().collect();
    inv.run(&argv, None);
}

fn env(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    if p.has("split-string") {
        return inv.not_understood("`env -S` splits a string into a command");
    }
    for dir in p.values("chdir") {
        inv.cwd = match dir.text() {
            Some(d) => inv
                .cwd
                .cd(d, matches!(dir, Arg::Literal { home: true, .. })),
            None => Dirs::unknown(dir.why().unwrap_or_default()),
        };
    }
    let mut operands: &[&Arg] = &p.operands();
    // `env -` is `env -i`.
    if operands.first().is_some_and(|a| a.is("-")) {
        operands = &operands[1..];
    }
    let mut changed = None;
    let mut rest = operands;
    while let Some((first, tail)) = rest.split_first() {
        let Some(name) = first.assigned_name() else {
            break;
        };
        if first.may_split() {
            let me = inv.name;
            return inv.not_understood(format!(
                "`{me}`: the assignment `{name}=…` may split into several words, one of them the command"
            ));
        }
        if let Some(why) = builtins::exported(name) {
            changed.get_or_insert(why);
        }
        rest = tail;
    }
    let argv: Vec<Arg> = rest.iter().map(|a| (*a).clone()).collect();
    inv.run(&argv, changed);
}

/// `nohup cmd`: also writes `nohup.out` (here, or in the home directory) when its output is
/// a terminal.
fn nohup(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    runs_operands(inv, p);
    if !p.operands().is_empty() {
        inv.write(&Arg::literal("nohup.out"));
        inv.write(&Arg::Literal {
            text: format!("{}/nohup.out", inv.home()),
            home: true,
        });
    }
}

/// `timeout DURATION cmd…`.
fn timeout(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let argv: Vec<Arg> = p.operands().into_iter().skip(1).cloned().collect();
    inv.run(&argv, None);
}

/// `/usr/bin/time [-o FILE] cmd…`.
fn time(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    runs_operands(inv, p);
    for f in p.values("output") {
        inv.write(f);
    }
}

/// `ionice -p PID` changes other processes; `ionice cmd` runs one.
fn ionice(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    if p.any(&["pid", "pgid", "uid"]) {
        inv.raise(Admin);
        return;
    }
    runs_operands(inv, p);
}

/// `taskset MASK cmd…`, `taskset -p MASK PID`.
fn taskset(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    if p.has("pid") {
        inv.raise(Admin);
        return;
    }
    inv.raise(Read);
    let argv: Vec<Arg> = p.operands().into_iter().skip(1).cloned().collect();
    inv.run(&argv, None);
}

/// `flock FILE cmd…`, `flock FILE -c 'script'`, `flock FD`: creates the lock file.
fn flock(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let operands = p.operands();
    let Some((lock, rest)) = operands.split_first() else {
        return;
    };
    if !lock
        .text()
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
    {
        inv.write(lock);
    }
    match rest {
        [flag, script, ..] if flag.is("-c") || flag.is("--command") => {
            inv.run_script(script, false)
        }
        _ => {
            let argv: Vec<Arg> = rest.iter().map(|a| (*a).clone()).collect();
            inv.run(&argv, None);
        }
    }
}

/// `watch cmd…`: the words are joined and run by `sh -c` (by `exec` with `-x`).
fn watch(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let operands: Vec<Arg> = p.operands().into_iter().cloned().collect();
    if p.has("exec") {
        return inv.run(&operands, None);
    }
    let joined: Option<Vec<&str>> = operands.iter().map(Arg::text).collect();
    match joined {
        Some(words) if !words.is_empty() => inv.run_script(&Arg::literal(words.join(" ")), false),
        Some(_) => {}
        None => inv.not_understood("`watch` runs a command built at run time"),
    }
}

/// `script [-c cmd] [file]`: records a session into `file` (`typescript` by default).
fn script(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let operands = p.operands();
    match operands.first() {
        Some(f) => inv.write(f),
        None => inv.write(&Arg::literal("typescript")),
    }
    for f in ["log-io", "log-in", "log-out", "log-timing"]
        .into_iter()
        .flat_map(|o| p.values(o))
    {
        inv.write(f);
    }
    let commands: Vec<Arg> = p.values("command").cloned().collect();
    if commands.is_empty() {
        inv.raise(Exec);
        inv.objects_unknown("`script` starts an interactive shell");
    }
    for c in &commands {
        inv.run_script(c, false);
    }
}

/// `sudo [options] [VAR=value…] cmd…`: administering, and what it runs.
fn sudo(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Admin);
    let operands = p.operands();
    if p.has("edit") {
        for f in operands {
            inv.write(f);
        }
        return;
    }
    for dir in p.values("chdir") {
        inv.cwd = match dir.text() {
            Some(d) => inv
                .cwd
                .cd(d, matches!(dir, Arg::Literal { home: true, .. })),
            None => Dirs::unknown(dir.why().unwrap_or_default()),
        };
    }
    if p.has("chroot") || p.has("login") {
        inv.cwd = Dirs::unknown("`sudo -i`/`-R` runs elsewhere");
        inv.objects_unknown("`sudo -i`/`-R` runs in another directory or root");
    }
    let mut changed = p
        .has("preserve-env")
        .then(|| "`sudo -E` keeps the caller's environment".to_owned());
    let mut rest: &[&Arg] = &operands;
    while let Some((first, tail)) = rest.split_first() {
        let Some(name) = first.assigned_name() else {
            break;
        };
        if first.may_split() {
            let me = inv.name;
            return inv.not_understood(format!(
                "`{me}`: the assignment `{name}=…` may split into several words, one of them the command"
            ));
        }
        if let Some(why) = builtins::exported(name) {
            changed.get_or_insert(why);
        }
        rest = tail;
    }
    let argv: Vec<Arg> = rest.iter().map(|a| (*a).clone()).collect();
    if p.any(&["shell", "login"]) {
        if argv.is_empty() {
            inv.raise(Exec);
            inv.objects_unknown("`sudo -s`/`-i` starts an interactive shell");
            return;
        }
        // The words go to the shell with their special characters escaped, except `$`.
        if argv
            .iter()
            .any(|a| a.text().is_none_or(|t| t.contains('$')))
        {
            return inv.not_understood("`sudo -s`/`-i` passes `$` to a shell");
        }
    }
    inv.run(&argv, changed);
}

fn doas(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Admin);
    if p.has("s") {
        inv.raise(Exec);
        inv.objects_unknown("`doas -s` starts an interactive shell");
        return;
    }
    let argv: Vec<Arg> = p.operands().into_iter().cloned().collect();
    inv.run(&argv, None);
}

/// `su [-] [user] [-c script]`: the script runs in the user's shell (`-s` picks another).
fn su(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Admin);
    let other_shell = p.values("shell").any(|s| {
        s.text()
            .and_then(|t| t.rsplit('/').next())
            .is_none_or(|b| !matches!(b, "sh" | "bash" | "dash"))
    });
    let scripts: Vec<Arg> = p
        .values("command")
        .chain(p.values("session-command"))
        .cloned()
        .collect();
    if other_shell || scripts.is_empty() {
        inv.raise(Exec);
        inv.objects_unknown("`su` starts a shell sod cannot see into");
        return;
    }
    if p.has("login") || p.operands().first().is_some_and(|a| a.is("-")) {
        inv.cwd = Dirs::unknown("`su -` starts in the user's home directory");
    }
    for s in &scripts {
        inv.run_script(s, false);
    }
}

fn pkexec(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Admin);
    if !p.has("keep-cwd") {
        inv.cwd = Dirs::unknown("`pkexec` runs in another directory");
    }
    let argv: Vec<Arg> = p.operands().into_iter().cloned().collect();
    if argv.is_empty() {
        inv.raise(Exec);
        inv.objects_unknown("`pkexec` starts a shell");
    }
    inv.run(&argv, None);
}

/// `chroot NEWROOT [cmd…]`: paths inside are relative to the new root.
fn chroot(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Admin);
    let operands = p.operands();
    let Some((root, argv)) = operands.split_first() else {
        return;
    };
    inv.read(root);
    inv.objects_unknown("paths inside `chroot` are relative to another root");
    inv.cwd = Dirs::unknown("`chroot` changes the root directory");
    if argv.is_empty() {
        inv.raise(Exec);
        return;
    }
    let argv: Vec<Arg> = argv.iter().map(|a| (*a).clone()).collect();
    inv.run(&argv, None);
}

/// `xargs [options] [cmd [args…]]`: runs the command with arguments read from its input.
fn xargs(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    inv.objects_unknown("`xargs` takes arguments from its input");
    for f in p.values("arg-file") {
        inv.read(f);
    }
    let mut changed = None;
    for name in p.values("process-slot-var") {
        changed = match name.text() {
            Some(n) => builtins::exported(n),
            None => Some("`xargs` sets a variable named at run time".to_owned()),
        };
    }
    let replace: Option<String> = p
        .values("I")
        .chain(p.values("replace"))
        .last()
        .map(|r| r.text().unwrap_or("{}").to_owned())
        .or_else(|| p.has("replace").then(|| "{}".to_owned()));
    let mut argv: Vec<Arg> = p.operands().into_iter().cloned().collect();
    if argv.is_empty() {
        argv.push(Arg::literal("echo"));
    }
    let input = || Arg::runtime("arguments `xargs` reads from its input");
    match &replace {
        Some(r) => {
            for a in argv.iter_mut().skip(1) {
                if a.text().is_some_and(|t| t.contains(r.as_str())) {
                    *a = input();
                }
            }
        }
        None => argv.push(input()),
    }
    inv.run(&argv, changed);
}

/// `find [-H|-L|-P] [paths…] [expression]`.
fn find(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    const FLAGS: &[&str] = &[
        "(",
        ")",
        "!",
        ",",
        "-a",
        "-and",
        "-o",
        "-or",
        "-not",
        "-depth",
        "-d",
        "-ignore_readdir_race",
        "-noignore_readdir_race",
        "-mount",
        "-xdev",
        "-noleaf",
        "-daystart",
        "-follow",
        "-help",
        "--help",
        "-version",
        "--version",
        "-warn",
        "-nowarn",
        "-print",
        "-print0",
        "-ls",
        "-prune",
        "-quit",
        "-true",
        "-false",
        "-empty",
        "-executable",
        "-readable",
        "-writable",
        "-nogroup",
        "-nouser",
        "-delete",
    ];
    const VALUES: &[&str] = &[
        "-maxdepth",
        "-mindepth",
        "-regextype",
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-iwholename",
        "-lname",
        "-ilname",
        "-regex",
        "-iregex",
        "-type",
        "-xtype",
        "-user",
        "-group",
        "-uid",
        "-gid",
        "-perm",
        "-size",
        "-atime",
        "-ctime",
        "-mtime",
        "-amin",
        "-cmin",
        "-mmin",
        "-inum",
        "-links",
        "-used",
        "-fstype",
        "-context",
        "-printf",
    ];
    let args = inv.args;
    let mut i = 0;
    // Options before the paths.
    while let Some(t) = args.get(i).and_then(Arg::text) {
        match t {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            _ if t.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let mut paths = Vec::new();
    while let Some(a) = args.get(i) {
        let Some(t) = a.text() else {
            if !a.surely_operand() {
                let why = a.why().unwrap_or_default().to_owned();
                return super::unclear(
                    inv,
                    Exec,
                    &format!("{why}, and could be part of the expression"),
                );
            }
            paths.push(a);
            i += 1;
            continue;
        };
        if (t.starts_with('-') && t.len() > 1) || t == "(" || t == "!" {
            break;
        }
        paths.push(a);
        i += 1;
    }
    let mut kind = Read;
    let mut runs: Vec<(Vec<Arg>, bool)> = Vec::new();
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(t) = a.text() else {
            let why = a.why().unwrap_or_default().to_owned();
            return super::unclear(
                inv,
                Exec,
                &format!("{why}, and could be any test or action"),
            );
        };
        let value = args.get(i);
        match t {
            "-delete" => kind = Write,
            _ if FLAGS.contains(&t) => {}
            _ if VALUES.contains(&t) => i += 1,
            "-newer" | "-anewer" | "-cnewer" | "-samefile" => {
                if let Some(v) = value {
                    inv.read(v);
                }
                i += 1;
            }
            _ if t.starts_with("-newer") && t.len() == 8 => {
                if !t.ends_with('t')
                    && let Some(v) = value
                {
                    inv.read(v);
                }
                i += 1;
            }
            "-fprint" | "-fprint0" | "-fls" | "-fprintf" => {
                if let Some(v) = value {
                    inv.write(v);
                }
                i += if t == "-fprintf" { 2 } else { 1 };
            }
            "-files0-from" => {
                if let Some(v) = value {
                    reads_list(inv, v);
                }
                i += 1;
            }
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let mut argv = Vec::new();
                let mut after_braces = false;
                while let Some(w) = args.get(i) {
                    i += 1;
                    if w.is(";") || (w.is("+") && after_braces && t.starts_with("-exec")) {
                        break;
                    }
                    after_braces = w.is("{}");
                    argv.push(match w.text() {
                        Some(text) if text.contains("{}") => Arg::runtime("a path `find` found"),
                        _ => w.clone(),
                    });
                }
                runs.push((argv, t.ends_with("dir")));
            }
            _ => {
                return super::unclear(
                    inv,
                    Exec,
                    &format!("`{t}` is not a find expression sod knows"),
                );
            }
        }
    }
    inv.raise(kind);
    if paths.is_empty() {
        inv.tree(&Arg::literal("."), kind);
    }
    for p in paths {
        inv.tree(p, kind);
    }
    for (argv, in_found_dir) in runs {
        let here = inv.cwd.clone();
        if in_found_dir {
            inv.cwd = Dirs::unknown("`find -execdir` runs in the directory of each file found");
        }
        inv.run(&argv, None);
        inv.cwd = here;
    }
}
