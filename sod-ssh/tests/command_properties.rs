//! Properties of the command analysis, on generated command lines:
//!
//! - it returns, without panicking, for any text (and says why when it does not understand),
//!   within a deadline even for text built from the pieces that have made shell parsers loop
//!   (here-documents, unterminated expansions, quotes);
//! - `> file` after a read makes it at least a write of that file;
//! - wrapping a command in `sh -c`, `bash -c`, `env`, `nice`, `timeout 5`, `nohup` or
//!   `command` never lowers its kind, drops an object, or makes unknown objects known;
//! - appending `; cmd` never lowers the kind nor drops an object;
//! - a file-name pattern in a path operand makes the objects unknown.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use sod_core::OperationKind;
use sod_ssh::command::{Analysis, Context, Programs, analyze};

fn cx() -> Context {
    Context::new("/srv/work", "/home/agent")
}

fn run(line: &str) -> Analysis {
    analyze(line, &cx(), &Programs::builtin())
}

/// The analysis of `line`, or `None` if it has not returned within the deadline (a parser
/// loop: the thread is left behind, and the test fails).
fn run_with_deadline(line: &str) -> Option<Analysis> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = line.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(run(&owned));
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

/// Text made of the pieces that make shell tokenizers loop or recurse: here-document
/// operators with odd delimiters, unterminated expansions, quotes, blanks, newlines.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(
        &[
            "<<", "<<-", "<<<", "''", "\"\"", "'", "\"", "$(", "$((", "${", "$[", "`", ")", "}",
            "]", " ", "\n", "EOF", "x", "\\", "$", "(", "{", ";", "|", "&", "<", ">", "#",
        ][..],
    );
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A file name: plain, in a directory, hidden, absolute, or from the home directory.
fn file() -> impl Strategy<Value = String> {
    let name = "[a-z][a-z0-9_]{0,5}(\\.[a-z]{1,3})?";
    prop_oneof![
        3 => name.prop_map(String::from),
        1 => (name, name).prop_map(|(d, f)| format!("{d}/{f}")),
        1 => name.prop_map(|f| format!(".{f}")),
        1 => name.prop_map(|f| format!("/etc/{f}")),
        1 => name.prop_map(|f| format!("~/{f}")),
    ]
}

/// Commands that only read (`{}` is a file).
const READS: &[&str] = &[
    "cat {}",
    "head -n 3 {}",
    "tail -c 10 {}",
    "grep -i x {}",
    "grep -e y -- {}",
    "sort -r {}",
    "uniq -c {}",
    "wc -l {}",
    "base64 {}",
    "od -c {}",
    "awk '{print $1}' {}",
    "sed -n 1p {}",
    "jq . {}",
    "cut -d: -f1 {}",
    "ls -l {}",
    "stat {}",
    "md5sum {}",
    "strings {}",
    "nl {}",
    "cat < {}",
    "diff {} {}",
    "test -f {}",
    "xxd {}",
    "tac {}",
    "rev {}",
];

/// Commands of every kind (`{}` is a file).
const ANY: &[&str] = &[
    "cat {}",
    "grep -r x {}",
    "sort -o {} {}",
    "rm {}",
    "rm -rf {}",
    "cp {} {}",
    "mv {} {}",
    "touch {}",
    "mkdir -p {}",
    "sed -i s/a/b/ {}",
    "sed -n p {}",
    "awk 1 {}",
    "tee {}",
    "chmod 600 {}",
    "tar cf {} {}",
    "tar xf {}",
    "find {} -name x",
    "find {} -delete",
    "python3 {}",
    "sudo cat {}",
    "du -s {}",
    "echo {}",
    "cd {}",
    "ls {}",
    "gzip {}",
    "dd if={} of={}",
    "ln -s {} {}",
    "head {} > {}",
    "cat {} >> {}",
    "xargs rm < {}",
    "systemctl status x",
    "systemctl restart x",
    "uniq {} {}",
    "truncate -s 0 {}",
    "cat $(cat {})",
    "diff <(cat {}) {}",
    "unknown-tool {}",
    "git log {}",
];

fn fill(template: &str, files: &[String]) -> String {
    let mut out = String::new();
    let mut files = files.iter().cycle();
    for (i, piece) in template.split("{}").enumerate() {
        if i > 0 {
            out.push_str(files.next().map_or("f", String::as_str));
        }
        out.push_str(piece);
    }
    out
}

fn command(templates: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(templates),
        prop::collection::vec(file(), 1..4),
    )
        .prop_map(|(t, files)| fill(t, &files))
}

fn script() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            command(ANY),
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
    })
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn objects(a: &Analysis) -> BTreeSet<String> {
    a.objects().iter().cloned().collect()
}

/// `outer` says at least what `inner` says.
fn covers(outer: &Analysis, inner: &Analysis) -> Result<(), String> {
    if outer.kind() < inner.kind() {
        return Err(format!("kind {} < {}", outer.kind(), inner.kind()));
    }
    if outer.kind() == OperationKind::Unknown {
        return Ok(());
    }
    let missing: Vec<_> = objects(inner)
        .difference(&objects(outer))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(format!("objects dropped: {missing:?}"));
    }
    if inner.unknown_objects().is_some() && outer.unknown_objects().is_none() {
        return Err("unknown objects became known".to_owned());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn any_text_is_judged(line in prop_oneof![
        ".{0,200}",
        "[ -~\n]{0,200}",
        "([a-z$`'\"\\\\(){}<>|&;*?~= \n-]|\\$\\(|<<|\\$\\(\\(){0,120}",
    ]) {
        let a = run(&line);
        prop_assert_eq!(a.kind() == OperationKind::Unknown, a.note().is_some(), "{:?}", a);
        if a.kind() == OperationKind::Unknown {
            prop_assert!(a.unknown_objects().is_some());
        }
        let unique: BTreeSet<_> = a.objects().iter().collect();
        prop_assert_eq!(unique.len(), a.objects().len(), "duplicate objects");
        prop_assert!(a.objects().iter().all(|o| o.starts_with('/')), "{:?}", a.objects());
        prop_assert_eq!(&run(&line), &a, "the same line, the same analysis");
    }

    #[test]
    fn any_arrangement_of_tricky_pieces_returns(line in tricky()) {
        let Some(a) = run_with_deadline(&line) else {
            eprintln!("no answer within 10 s for {line:?}");
            std::process::abort();
        };
        prop_assert_eq!(a.kind() == OperationKind::Unknown, a.note().is_some(), "{:?}", a);
    }

    #[test]
    fn redirecting_output_is_a_write_of_the_file(read in command(READS), out in file()) {
        let before = run(&read);
        prop_assert_eq!(before.kind(), OperationKind::Read, "{} is a read: {:?}", read, before);
        let after = run(&format!("{read} > {out}"));
        prop_assert!(after.kind() >= OperationKind::Write, "{:?}", after);
        let target = match out.strip_prefix("~/") {
            Some(rest) => format!("/home/agent/{rest}"),
            None if out.starts_with('/') => out.clone(),
            None => format!("/srv/work/{out}"),
        };
        prop_assert!(after.objects().contains(&target), "{} not in {:?}", target, after.objects());
        covers(&after, &before).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn wrappers_never_hide_anything(line in script(), simple in command(ANY), how in 0..7u8) {
        let (inner, wrapped) = match how {
            0 => (line.clone(), format!("sh -c {}", single_quoted(&line))),
            1 => (line.clone(), format!("bash -c {}", single_quoted(&line))),
            2 => (simple.clone(), format!("env {simple}")),
            3 => (simple.clone(), format!("nice -n 5 {simple}")),
            4 => (simple.clone(), format!("timeout 5 {simple}")),
            5 => (simple.clone(), format!("nohup {simple}")),
            _ => (simple.clone(), format!("command {simple}")),
        };
        let (inner, wrapped) = (run(&inner), run(&wrapped));
        covers(&wrapped, &inner).map_err(|e| TestCaseError::fail(format!("{e}: {wrapped:?} vs {inner:?}")))?;
    }

    #[test]
    fn appending_never_lowers(first in script(), then in script()) {
        let a = run(&first);
        let both = run(&format!("{first}; {then}"));
        covers(&both, &a).map_err(|e| TestCaseError::fail(format!("{e}: {both:?} vs {a:?}")))?;
        prop_assert!(both.kind() >= run(&then).kind());
    }

    #[test]
    fn patterns_in_paths_make_objects_unknown(
        template in prop::sample::select(ANY),
        files in prop::collection::vec(file(), 1..3),
        glob in prop::sample::select(&["*", "?", "[ab]", "{a,b}"][..]),
        at in 0..8usize,
    ) {
        prop_assume!(template.contains("{}") && !template.starts_with("echo") && !template.starts_with("cd"));
        let mut files = files;
        let f = &mut files[0];
        let at = (0..=at.min(f.len())).rev().find(|i| f.is_char_boundary(*i)).unwrap_or(0);
        f.insert_str(at, glob);
        let a = run(&fill(template, &files));
        prop_assert!(a.unknown_objects().is_some(), "{:?}", a);
    }
}
