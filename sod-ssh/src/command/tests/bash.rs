//! The analysis against real bash (`/bin/bash`).
//!
//! - Words: every word we call literal expands, in bash, to exactly that one argument. Words
//!   are generated from every kind of quoting, escapes, `$'…'`, tildes, patterns, braces and
//!   expansions, and printed by bash's `printf` one argument at a time.
//! - Commands: every program bash runs for a generated line is among the commands the analysis
//!   lists. The programs are stubs that log their name, on a `PATH` holding only them and a
//!   few real wrappers (`env`, `xargs`, `find`, `nice`, `timeout`, `bash`, `sh`), in an empty
//!   directory; nothing else can run.
//!
//! Skipped, with a message, where `/bin/bash` (or `timeout`, which bounds every run) is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;

use super::super::parse;
use super::super::words::{self, Arg};
use super::super::{Context, Programs, analyze};

const HOME: &str = "/home/u";

/// `PROPTEST_CASES`, or `default`: a longer hunt is one variable away.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bash() -> Option<&'static Path> {
    let bash = Path::new("/bin/bash");
    if bash.exists() && Path::new("/usr/bin/timeout").exists() {
        Some(bash)
    } else {
        eprintln!("skipped: /bin/bash or /usr/bin/timeout is not installed");
        None
    }
}

// === Words ===

/// A piece of a word, as source text.
fn fragment() -> impl Strategy<Value = String> {
    let plain = "[a-zA-Z0-9_./:=,+@%-]{1,4}";
    let quoted_char = prop_oneof![
        Just(" "),
        Just("\""),
        Just("$"),
        Just("\\"),
        Just("*"),
        Just(";"),
        Just("`"),
        Just("a"),
        Just("~"),
        Just("{"),
        Just("}"),
        Just(","),
        Just("\n"),
        Just("#"),
    ];
    let single = prop::collection::vec(quoted_char.clone(), 0..5)
        .prop_map(|cs| format!("'{}'", cs.concat().replace('\'', "")));
    let double_piece = prop_oneof![
        "[a-z ]{1,3}".prop_map(String::from),
        Just("\\$".to_owned()),
        Just("\\\"".to_owned()),
        Just("\\\\".to_owned()),
        Just("\\`".to_owned()),
        Just("\\x".to_owned()),
        Just("\\\n".to_owned()),
        Just("'".to_owned()),
        Just("*".to_owned()),
        Just("~".to_owned()),
        Just("$HOME".to_owned()),
        Just("${HOME}".to_owned()),
        Just("$(echo hi)".to_owned()),
        Just("$".to_owned()),
    ];
    let double =
        prop::collection::vec(double_piece, 0..4).prop_map(|ps| format!("\"{}\"", ps.concat()));
    let escaped = prop_oneof![
        Just(" "),
        Just("*"),
        Just("$"),
        Just("'"),
        Just("\""),
        Just("\\"),
        Just("\n"),
        Just("a"),
        Just("~"),
        Just("{"),
        Just("#"),
        Just(";"),
    ]
    .prop_map(|c| format!("\\{c}"));
    let ansi_piece = prop_oneof![
        "[a-z ]{1,3}".prop_map(String::from),
        Just("\\n".to_owned()),
        Just("\\t".to_owned()),
        Just("\\x41".to_owned()),
        Just("\\x4".to_owned()),
        Just("\\101".to_owned()),
        Just("\\7".to_owned()),
        Just("\\\\".to_owned()),
        Just("\\\"".to_owned()),
        Just("\\q".to_owned()),
        Just("\\e".to_owned()),
        Just("\\u0041".to_owned()),
        Just("\\cA".to_owned()),
        Just("\"".to_owned()),
        Just("$".to_owned()),
    ];
    let ansi = prop::collection::vec(ansi_piece, 0..4).prop_map(|ps| format!("$'{}'", ps.concat()));
    let dynamic = prop_oneof![
        Just("*"),
        Just("?"),
        Just("[ab]"),
        Just("{a,b}"),
        Just("{1..2}"),
        Just("$HOME"),
        Just("${HOME}"),
        Just("$(echo x)"),
        Just("`echo x`"),
        Just("$((1+2))"),
        Just("$1"),
        Just("$\"m\""),
        Just("$"),
        Just("a=~"),
        Just(":~"),
    ]
    .prop_map(String::from);
    prop_oneof![
        4 => plain.prop_map(String::from),
        2 => single,
        2 => double,
        2 => escaped,
        2 => ansi,
        1 => dynamic,
    ]
}

/// A word: an optional tilde prefix and one to four fragments.
fn word() -> impl Strategy<Value = String> {
    let tilde = prop_oneof![Just(""), Just("~"), Just("~/"), Just("~root"), Just("~+")];
    (tilde, prop::collection::vec(fragment(), 1..4)).prop_map(|(t, fs)| {
        let w = format!("{t}{}", fs.concat());
        // A word starting with `#` is a comment; one made only of backslash-newlines is no word.
        if w.starts_with('#') || w.replace("\\\n", "").is_empty() {
            format!("x{w}")
        } else {
            w
        }
    })
}

/// What bash makes of each word: the arguments `printf` receives for it.
fn bash_words(bash: &Path, dir: &Path, words: &[String]) -> Option<Vec<Vec<String>>> {
    let line: String = words
        .iter()
        .map(|w| format!("printf '%s\\0' {w}; printf '\\001\\002\\003\\0';\n"))
        .collect();
    let out = Command::new("/usr/bin/timeout")
        .args(["-s", "KILL", "10"])
        .arg(bash)
        .args(["--norc", "--noprofile", "-c", &line])
        .env_clear()
        .env("HOME", HOME)
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(dir)
        .output()
        .expect("bash runs");
    if !out.status.success() {
        return None;
    }
    let mut per_word = vec![Vec::new()];
    for field in out.stdout.split(|b| *b == 0) {
        if field == b"\x01\x02\x03" {
            per_word.push(Vec::new());
        } else if let Some(last) = per_word.last_mut() {
            last.push(String::from_utf8_lossy(field).into_owned());
        }
    }
    per_word.truncate(words.len());
    Some(per_word)
}

/// What we make of each word: `None` if the line is not understood.
fn our_words(words: &[String]) -> Option<Vec<Arg>> {
    let line: String = words
        .iter()
        .map(|w| format!("printf '%s\\0' {w}; printf '\\001\\002\\003\\0';\n"))
        .collect();
    let script = parse::script(&line, 0).ok()?;
    let mut out = Vec::new();
    for item in script.items.iter().step_by(2) {
        let Some(parse::Command::Simple(simple)) = item.first.commands.first() else {
            panic!("not a simple command in {line:?}");
        };
        assert_eq!(
            simple.words.len(),
            3,
            "brush and bash split {line:?} into words differently"
        );
        out.push(words::expand(&simple.words[2], HOME));
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn literal_words_are_what_bash_makes_of_them(words in prop::collection::vec(word(), 1..6)) {
        let Some(bash) = bash() else { return Ok(()) };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let Some(ours) = our_words(&words) else {
            // Not understood: refused, whatever bash would do.
            return Ok(());
        };
        let theirs = bash_words(bash, dir.path(), &words);
        let Some(theirs) = theirs else {
            // bash refuses the line; we may not call any of it literal... but a line bash
            // rejects never runs, so there is nothing to compare.
            return Ok(());
        };
        for ((w, ours), theirs) in words.iter().zip(&ours).zip(&theirs) {
            if let Arg::Literal { text, .. } = ours {
                prop_assert_eq!(
                    std::slice::from_ref(text), theirs.as_slice(),
                    "the word {:?}", w
                );
            }
        }
    }
}

#[test]
fn known_words_agree_with_bash() {
    let Some(bash) = bash() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    // (Backslash-newlines first: one after a `$'` is refused, see below.)
    let words: Vec<String> = [
        "x\\\ny",
        "\"x\\\ny\"",
        "'x\\\ny'",
        r"c'a't",
        r#""cat""#,
        r"\cat",
        r"$'\x63at'",
        r"$'\143at'",
        r"ca\t",
        r#""a\b""#,
        r#""a\\b""#,
        r#""a\$b""#,
        r"'a\b'",
        "~/x",
        "'~'/x",
        r"\~/x",
        "~'/x'",
        "a~",
        r"$'a\tb'",
        r"$'\u0041'",
        r"$'\cA'",
        r#"$'\"'"#,
        r"$'\q'",
        "a$",
        "$'x'y'z'",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let ours = our_words(&words).expect("understood");
    let theirs = bash_words(bash, dir.path(), &words).expect("bash runs them");
    for ((w, ours), theirs) in words.iter().zip(&ours).zip(&theirs) {
        let Arg::Literal { text, .. } = ours else {
            panic!("{w:?} should be literal: {ours:?}");
        };
        assert_eq!(
            std::slice::from_ref(text),
            theirs.as_slice(),
            "the word {w:?}"
        );
    }
}

/// brush reads a backslash-newline inside `$'…'` as a line continuation, bash keeps it: such
/// lines are refused, not given a literal bash would not make.
#[test]
fn backslash_newline_after_ansi_c_quotes_is_refused() {
    for line in [
        "cat $'/etc/shad\\\now'",
        "echo $'a' b\\\nc",
        "echo \"$'\\\n'\"",
    ] {
        assert!(parse::script(line, 0).is_err(), "{line:?}");
    }
    assert!(parse::script("echo a\\\nb $'c'", 0).is_ok());
}

// === Commands ===

/// A directory of stub programs that log their names, and links to a few real wrappers.
struct Stubs {
    dir: tempfile::TempDir,
    work: tempfile::TempDir,
    log: PathBuf,
}

const STUBS: &[&str] = &["p0", "p1", "p2", "p3", "p4", "p5"];

impl Stubs {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let work = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("log");
        for name in STUBS {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                "#!/bin/sh\nprintf '%s\\n' \"${0##*/}\" >> \"$LOG\"\n",
            )
            .expect("a stub");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("executable");
        }
        for (name, target) in [
            ("bash", "/bin/bash"),
            ("sh", "/bin/bash"),
            ("env", "/usr/bin/env"),
            ("xargs", "/usr/bin/xargs"),
            ("find", "/usr/bin/find"),
            ("nice", "/usr/bin/nice"),
            ("timeout", "/usr/bin/timeout"),
        ] {
            if Path::new(target).exists() {
                std::os::unix::fs::symlink(target, dir.path().join(name)).expect("a link");
            }
        }
        Stubs { dir, work, log }
    }

    /// The programs bash ran for `line`. `timeout` kills bash's whole process group after ten
    /// seconds, whatever the line does.
    fn ran(&self, bash: &Path, line: &str) -> Vec<String> {
        let _ = std::fs::remove_file(&self.log);
        let status = Command::new("/usr/bin/timeout")
            .args(["-s", "KILL", "10"])
            .arg(bash)
            .args(["--norc", "--noprofile", "-c", line])
            .env_clear()
            .env("HOME", HOME)
            .env("PATH", self.dir.path())
            .env("LOG", &self.log)
            .env("LC_ALL", "C")
            .current_dir(self.work.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        assert!(status.is_ok(), "bash runs");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn program() -> impl Strategy<Value = String> {
    let name = prop::sample::select(STUBS).prop_map(String::from);

    (name, 0..6u8).prop_map(|(n, how)| {
        let (head, tail) = n.split_at(1);
        match how {
            0 => n,
            1 => format!("{head}''{tail}"),
            2 => format!("\"{n}\""),
            3 => format!("\\{n}"),
            4 => format!("$'{head}\\x{:02x}'", tail.as_bytes()[0]),
            _ => format!("{head}\\{tail}"),
        }
    })
}

fn simple() -> impl Strategy<Value = String> {
    let arg = prop_oneof![
        4 => word(),
        1 => program().prop_map(|p| format!("\"$({p})\"")),
        1 => program().prop_map(|p| format!("`{p}`")),
        1 => program().prop_map(|p| format!("<({p})")),
    ];
    let redirect = prop_oneof![
        Just(String::new()),
        Just(" >/dev/null".to_owned()),
        Just(" 2>&1".to_owned()),
        Just(" <<< x".to_owned()),
        Just(" >out".to_owned()),
        program().prop_map(|p| format!(" <<E\n$({p})\nE\n")),
        program().prop_map(|p| format!(" <<'E'\n$({p})\nE\n")),
    ];
    (
        program(),
        prop::collection::vec(arg, 0..3),
        redirect,
        0..12u8,
    )
        .prop_map(|(p, args, redirect, wrap)| {
            let command = format!("{p} {}{redirect}", args.join(" "));
            let quoted = format!("'{}'", command.replace('\'', r"'\''"));
            match wrap {
                0 => format!("eval {quoted}"),
                1 => format!("bash -c {quoted}"),
                2 => format!("sh -c {quoted} _"),
                3 => format!("env {command}"),
                4 => format!("command {command}"),
                5 => format!("nice {command}"),
                6 => format!("timeout 5 {command}"),
                7 => format!("find . -exec {p} {{}} \\;"),
                8 => format!("xargs {p} </dev/null"),
                9 => format!("X=1 {command}"),
                _ => command,
            }
        })
}

fn script() -> impl Strategy<Value = String> {
    let leaf = simple();
    leaf.prop_recursive(3, 16, 3, |inner| {
        let list = prop::collection::vec(
            (
                inner.clone(),
                prop::sample::select(&[" ; ", " && ", " || ", " | ", "\n"][..]),
            ),
            1..4,
        )
        .prop_map(|items| {
            let mut s = String::new();
            for (i, (c, sep)) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                s.push_str(c);
            }
            s
        });
        prop_oneof![
            list.clone(),
            list.clone().prop_map(|l| format!("( {l} )")),
            list.clone().prop_map(|l| format!("{{ {l}; }}")),
            (inner.clone(), list.clone(), list.clone())
                .prop_map(|(c, a, b)| format!("if {c}; then {a}; else {b}; fi")),
            list.clone()
                .prop_map(|l| format!("for x in a b; do {l}; done")),
            (list.clone(), list.clone())
                .prop_map(|(a, b)| format!("case x in a) {a};; *) {b};; esac")),
            // Each function its own name: a body can never call itself (a definition in a
            // pipeline does not replace the function in the shell running it).
            ("f[a-z]{8}", list.clone()).prop_map(|(f, l)| format!("{f}() {{ {l}; }}; {f}")),
            ("g[a-z]{8}", list.clone()).prop_map(|(g, l)| format!("{g}() {{ {l}; }}")),
            list.clone()
                .prop_map(|l| format!("while false; do {l}; done")),
            list.prop_map(|l| format!("! {l}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    #[test]
    fn every_program_bash_runs_is_judged(line in script()) {
        let Some(bash) = bash() else { return Ok(()) };
        let stubs = Stubs::new();
        let cx = Context::new(stubs.work.path().to_string_lossy(), HOME);
        let analysis = analyze(&line, &cx, &Programs::builtin());
        if analysis.kind() == sod_core::OperationKind::Unknown {
            return Ok(());
        }
        for ran in stubs.ran(bash, &line) {
            prop_assert!(
                analysis.programs().contains(&ran),
                "bash ran `{}` for {:?}; the analysis saw {:?}",
                ran, line, analysis.programs()
            );
        }
    }
}
