//! The adversarial corpus: command lines and what the analysis must say about each
//! (`tests/corpus/commands.toml`). Each class of evasion has cases: quoting of program names,
//! paths built at run time, globs, `..`, recursive reads, redirections, wrappers, options
//! that write, `cd`, functions, substitutions, here-documents, builtins that run strings.
//!
//! A case without `kind` fails and prints what the analysis says, ready to review and paste.

use std::collections::BTreeSet;

use serde::Deserialize;
use sod_core::OperationKind;
use sod_ssh::command::{Context, Programs, analyze};

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    line: String,
    /// Working directory and home, when not `/home/u/work` and `/home/u`.
    cwd: Option<String>,
    home: Option<String>,
    kind: Option<OperationKind>,
    /// The objects, in any order.
    #[serde(default)]
    objects: Vec<String>,
    /// Whether the objects are all known.
    complete: Option<bool>,
    /// Commands that must be among those run.
    #[serde(default)]
    programs: Vec<String>,
    /// A piece of the note (for `unknown`).
    note: Option<String>,
}

#[test]
fn corpus() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/commands.toml"
    ))
    .expect("the corpus is readable");
    let corpus: Corpus = toml::from_str(&text).expect("the corpus parses");
    let programs = Programs::builtin();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for case in &corpus.case {
        let key = (case.line.clone(), case.cwd.clone(), case.home.clone());
        assert!(seen.insert(key), "`{}` is in the corpus twice", case.line);
        let cx = Context::new(
            case.cwd.as_deref().unwrap_or("/home/u/work"),
            case.home.as_deref().unwrap_or("/home/u"),
        );
        let a = analyze(&case.line, &cx, &programs);
        let actual = format!(
            "[[case]]\nline = {:?}\nkind = \"{}\"\nobjects = {:?}\ncomplete = {}\n# programs = {:?}\n# note = {:?}\n# unknown = {:?}\n",
            case.line,
            a.kind(),
            a.objects(),
            a.unknown_objects().is_none(),
            a.programs(),
            a.note(),
            a.unknown_objects(),
        );
        let Some(kind) = case.kind else {
            failures.push(format!("no expectation:\n{actual}"));
            continue;
        };
        let mut wrong = Vec::new();
        if a.kind() != kind {
            wrong.push("kind");
        }
        let expected: BTreeSet<&str> = case.objects.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = a.objects().iter().map(String::as_str).collect();
        if expected != got {
            wrong.push("objects");
        }
        if let Some(complete) = case.complete
            && complete != a.unknown_objects().is_none()
        {
            wrong.push("complete");
        }
        if !case.programs.iter().all(|p| a.programs().contains(p)) {
            wrong.push("programs");
        }
        if let Some(note) = &case.note
            && !a.note().is_some_and(|n| n.contains(note.as_str()))
        {
            wrong.push("note");
        }
        if !wrong.is_empty() {
            failures.push(format!("wrong {wrong:?}:\n{actual}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        corpus.case.len(),
        failures.join("\n")
    );
    assert!(
        corpus.case.len() >= 150,
        "the corpus keeps at least 150 cases"
    );
}
