//! Unit tests of the command analysis. The corpus of whole lines is in
//! `tests/command_corpus.rs`, properties in `tests/command_properties.rs`; the comparison with
//! real bash is in [`bash`].

mod bash;

use sod_core::OperationKind::{self, *};

use super::parse::{self, Part};
use super::words::{self, Arg};
use super::*;

fn cx() -> Context {
    Context::new("/home/u/work", "/home/u")
}

fn run(line: &str) -> Analysis {
    analyze(line, &cx(), &Programs::builtin())
}

fn kind(line: &str) -> OperationKind {
    run(line).kind()
}

/// The arguments of the first simple command of `line`, expanded.
fn args(line: &str) -> Vec<Arg> {
    let script = parse::script(line, 0).expect("parses");
    let Some(parse::Command::Simple(simple)) = script.items[0].first.commands.first() else {
        panic!("`{line}` is not a simple command");
    };
    simple
        .words
        .iter()
        .map(|w| words::expand(w, "/home/u"))
        .collect()
}

fn texts(line: &str) -> Vec<Option<String>> {
    args(line)
        .iter()
        .map(|a| a.text().map(str::to_owned))
        .collect()
}

#[test]
fn quote_removal() {
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        texts(r#"c'a't "d e" \f"#),
        [some("cat"), some("d e"), some("f")]
    );
    assert_eq!(texts(r"$'\x63\141t\n'"), [some("cat\n")]);
    assert_eq!(texts(r#""a\$b\"c\\d\e""#), [some(r#"a$b"c\d\e"#)]);
    assert_eq!(
        texts("~/x ~ a~"),
        [some("/home/u/x"), some("/home/u"), some("a~")]
    );
    assert_eq!(texts("'~/x' \\~/x"), [some("~/x"), some("~/x")]);
    assert_eq!(texts("a$ '*' \\*"), [some("a$"), some("*"), some("*")]);
}

#[test]
fn words_known_only_at_run_time() {
    for w in [
        "$x",
        "${x}",
        "\"$x\"",
        "$(id)",
        "`id`",
        "*",
        "a?",
        "[ab]",
        "x[1]",
        "{a,b}",
        "{1..3}",
        "~root",
        "~+",
        "a=~/x",
        "PATH=a:~/b",
        "$((1+2))",
        "$\"msg\"",
    ] {
        let got = args(&format!("cmd {w}"));
        assert!(
            matches!(got[1], Arg::Runtime { .. }),
            "`{w}` should not be literal: {got:?}"
        );
    }
    // Quoted pattern and brace characters are text.
    for w in ["'*'", "\"a?\"", "\\[ab]", "'{a,b}'", "{}", "{a}", "[", "a]"] {
        let got = args(&format!("cmd {w}"));
        assert!(
            matches!(got[1], Arg::Literal { .. }),
            "`{w}` should be literal: {got:?}"
        );
    }
}

#[test]
fn assignment_names_are_known_when_values_are_not() {
    let a = &args("export PATH=/x:$PATH")[1];
    assert_eq!(a.assigned_name(), Some("PATH"));
    assert!(a.text().is_none());
    assert!(Arg::literal("1x=y").assigned_name().is_none());
}

#[test]
fn refusals_name_the_construct() {
    for (line, piece) in [
        ("$'a\\'b'", "read differently"),
        ("echo $((x+1))", "arithmetic"),
        ("echo ${!x}", "another variable"),
        ("echo ${x@P}", "prompt"),
        ("eval \"$x\"", "`eval`"),
        ("$CMD", "`$CMD`"),
        ("select x in a; do :; done", "parser"),
        ("set -o posix", "posix"),
    ] {
        let a = run(line);
        assert_eq!(a.kind(), Unknown, "{line}");
        assert!(
            a.note().is_some_and(|n| n.contains(piece)),
            "{line}: {:?}",
            a.note()
        );
    }
}

#[test]
fn limits() {
    assert_eq!(kind(&"a".repeat(MAX_LINE + 1)), Unknown);
    assert_eq!(kind("cat a\0b"), Unknown);
    assert_eq!(
        kind(&format!("{}x{}", "(".repeat(500), ")".repeat(500))),
        Unknown
    );
    assert_eq!(kind(&"$(".repeat(40)), Unknown);
    // Scripts inside scripts: `eval`, `$(…)` and `sh -c` nest at most `MAX_SCRIPT_DEPTH` deep.
    assert_eq!(kind(&format!("{}ls", "eval ".repeat(20))), Unknown);
    assert_eq!(kind(&format!("{}ls", "eval ".repeat(5))), Read);
    let substitutions = |n: usize| format!("echo {}x{}", "$(echo ".repeat(n), ")".repeat(n));
    assert_eq!(kind(&substitutions(20)), Unknown);
    assert_eq!(kind(&substitutions(5)), Read);
    assert_eq!(kind("sh -c 'sh -c \"sh -c ls\"'"), Read);
    // Functions calling functions: bounded work.
    let mut line = String::from("f0() { ls; }; ");
    for i in 1..30 {
        line.push_str(&format!("f{i}() {{ f{j}; f{j}; }}; ", j = i - 1));
    }
    line.push_str("f29");
    assert_eq!(kind(&line), Unknown);
    // Loops in loops that change directory: each is judged twice, and the work is bounded.
    // (A doubling per level would be 2^60 passes; this returns at once, judged a read, or
    // refused when the step budget runs out.)
    let loops = format!(
        "{}cd x{}",
        "for a in b; do ".repeat(60),
        "; done".repeat(60)
    );
    let judged = kind(&loops);
    assert!(matches!(judged, Read | Unknown), "{judged:?}");
}

#[test]
fn here_documents() {
    let body = |line: &str| {
        let script = parse::script(line, 0).expect("parses");
        let Some(parse::Command::Simple(simple)) = script.items[0].first.commands.first() else {
            panic!("not simple");
        };
        matches!(
            &simple.redirects[0].target,
            parse::RedirectTarget::Data(w) if w.parts.iter().any(|p| matches!(p, Part::Dynamic { .. }))
        )
    };
    assert!(body("cat <<E\n$(id)\nE"));
    assert!(!body("cat <<'E'\n$(id)\nE"));
    assert!(!body("cat <<\"E\"\n$(id)\nE"));
    assert_eq!(kind("cat <<E\n$\\\n(rm x)\nE"), Write);
    assert_eq!(kind("cat <<'E'\nfoo\\\nE\nrm x\n"), Write);
}

#[test]
fn kinds_add_up() {
    assert_eq!(kind(""), Read);
    assert_eq!(kind("ls"), Read);
    assert_eq!(kind("ls > f"), Write);
    assert_eq!(kind("ls; python3 x.py"), Exec);
    assert_eq!(kind("ls && sudo ls"), Admin);
    assert_eq!(kind("ls | $x"), Unknown);
}

#[test]
fn operations_carry_the_analysis() {
    let a = run("cat ~/.ssh/id_*; cat /etc/hosts");
    let op = a.operation(Target::new("ssh/prod"), "cat ~/.ssh/id_*; cat /etc/hosts");
    assert_eq!(op.kind(), Read);
    assert_eq!(op.text(), "cat ~/.ssh/id_*; cat /etc/hosts");
    assert_eq!(op.objects(), ["/etc/hosts"]);
    assert!(op.unknown_objects().is_some());
    assert_eq!(op.note(), None);
    let op = run("$x").operation(Target::new("ssh/prod"), "$x");
    assert_eq!(op.kind(), Unknown);
    assert!(op.note().is_some());
}

#[test]
fn declared_programs() {
    let programs = Programs::builtin()
        .with("report", Effect::Read)
        .with("deploy", Effect::Admin);
    let a = analyze("report --out=x.txt in.csv", &cx(), &programs);
    assert_eq!(a.kind(), Read);
    assert_eq!(a.objects(), ["/home/u/work/x.txt", "/home/u/work/in.csv"]);
    assert_eq!(a.unknown_objects(), None);
    let a = analyze("deploy web", &cx(), &programs);
    assert_eq!(a.kind(), Admin);
    assert!(a.unknown_objects().is_some());
    let mut more = Programs::builtin();
    more.extend([("cat", Effect::Write)]);
    assert_eq!(analyze("cat f", &cx(), &more).kind(), Write);
    assert!(format!("{more:?}").contains("declared: 1"));
}

#[test]
fn effects_read_from_configuration() {
    #[derive(serde::Deserialize)]
    struct Config {
        programs: std::collections::BTreeMap<String, Effect>,
    }
    let config: Config =
        toml::from_str("[programs]\nreport = \"read\"\nreindex = \"write\"").expect("parses");
    let mut programs = Programs::builtin();
    programs.extend(config.programs);
    assert_eq!(analyze("reindex db", &cx(), &programs).kind(), Write);
}

#[test]
fn here_document_delimiters_are_plain_words() {
    // brush-parser loops for ever on these (an empty delimiter, or one holding a blank, pending
    // at the end of an unterminated expansion): refused before it sees them.
    for line in [
        "cat <<'' $(",
        "cat <<\"\" ${",
        "<<$( ) <$(",
        "cat <<$(( )) $[",
        "cat <<a$( ) $(x\n",
        "cat <<' EOF'\nx\n EOF",
        "cat << \n",
        // Quoting is not looked at (see `check_here_tags`): refused too.
        "grep '<<EOF' f",
        "cat <<<'<<'",
        "grep '<< ' f",
        // Runs of `<` group as `<<<` from the left: what is left over may be a here-document.
        "cat <<<<<'' $(",
        "cat \\<<<'' $(",
        "$(>|<<<<<<<<-$( &$(\"x<<<<<-<&]$((",
    ] {
        assert_eq!(kind(line), Unknown, "{line:?}");
    }
    // Plain words, quoted or not, with or without `-` and blanks; here-strings.
    for line in [
        "cat <<EOF\nhello\nEOF",
        "cat <<-'EOF'\n\thello\n\tEOF",
        "cat << \"END_1\"\nx\nEND_1",
        "cat <<\\EOF\nx\nEOF",
        "cat <<EOF|wc -l\nx\nEOF",
        "cat <<< hello",
        "cat <<< 'hello world'",
        "echo $((1<<2))",
    ] {
        assert_eq!(kind(line), Read, "{line:?}");
    }
}

#[test]
fn parentheses_nest_at_most_twelve_deep() {
    // brush-parser backtracks twice over each unclosed `(`: 40 would never return.
    assert_eq!(kind(&format!("cat f|{}x", "(".repeat(40))), Unknown);
    assert_eq!(
        kind(&format!("{}cat f{}", "(".repeat(13), ")".repeat(13))),
        Unknown
    );
    assert_eq!(
        kind(&format!("{}cat f{}", "(true; ".repeat(12), ")".repeat(12))),
        Read
    );
    assert_eq!(
        kind(&format!("cat $(echo {}f{})", "(".repeat(6), ")".repeat(6))),
        Unknown
    );
    // Parentheses inside words are not nesting ...
    assert_eq!(kind(&format!("echo '{}'", "(".repeat(40))), Read);
    // ... but brush parses a substitution inside a word (or a here-document) with the same
    // grammar, quotes and all: more than 16 `(` with a substitution are refused.
    let deep = format!("x|{}y", "(".repeat(30));
    assert_eq!(kind(&format!("echo \"$(echo {deep})\"")), Unknown);
    assert_eq!(kind(&format!("cat <<EOF\n$(echo\n{deep}\nEOF")), Unknown);
    assert_eq!(
        kind(&format!("echo \"$(echo '{}')\"", "(".repeat(15))),
        Read
    );
}

#[test]
fn word_shapes_brush_parses_in_exponential_time_are_refused() {
    // Array subscripts in `${…}`: exponential even when balanced.
    let nested = |n: usize| format!("echo {}x{}", "${t[".repeat(n), "]}".repeat(n));
    assert_eq!(kind(&nested(6)), Unknown);
    assert_eq!(kind("echo ${a[1]} ${b[2]} ${c[3]}"), Read);
    assert_eq!(kind("echo ${a[1]}${b[2]}${c[3]}${d[4]}"), Unknown);
    // Here-document bodies: nothing checks their expansions are closed before the parser.
    let body = |unit: &str, n: usize| format!("cat <<EOF\n{}\nEOF", unit.repeat(n));
    assert_eq!(kind(&body("$((", 10)), Unknown);
    assert_eq!(kind(&body("${t[a|(", 6)), Unknown);
    assert_eq!(kind(&body("${a:-", 9)), Unknown);
    assert_eq!(kind("cat <<EOF\n${HOME}/${APP}: $(date) `id`\nEOF"), Read);
    // A quoted delimiter: the body is text, whatever it holds.
    assert_eq!(
        kind(&format!("cat <<'EOF'\n{}\nEOF", "${t[".repeat(20))),
        Read
    );
}
