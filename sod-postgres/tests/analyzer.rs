//! The SQL analyzer on PostgreSQL's parser: the shared corpus (`tests/corpus/analyzer.toml`),
//! normalization, the cache, an independent cross-check of the tree walk, and properties that
//! must hold for any input.

mod corpus;
use corpus::{SPELLING_SAMPLES, respell};

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use sod_core::OperationKind;
use sod_postgres::sql::{
    Analysis, Analyzer, CachedAnalyzer, ObjectName, PgQueryAnalyzer, SessionEffect,
};

fn analyze(sql: &str) -> Analysis {
    PgQueryAnalyzer::new().analyze(sql)
}

#[test]
fn corpus_verdicts() {
    let cases = corpus::cases();
    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let failures = corpus::check_corpus(&PgQueryAnalyzer::new(), corpus::Checks::ALL);
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_verdicts_through_the_cache() {
    let cached = CachedAnalyzer::new(PgQueryAnalyzer::new(), 64);
    let failures = corpus::check_corpus(&cached, corpus::Checks::ALL);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalization_keeps_constants() {
    let one = analyze("DELETE FROM t WHERE id = 1");
    let two = analyze("DELETE FROM t WHERE id = 2");
    assert_eq!(one.normalized(), "DELETE FROM t WHERE id = 1");
    assert_ne!(one.normalized(), two.normalized());
    assert_ne!(
        analyze("SELECT 'a'").normalized(),
        analyze("SELECT 'b'").normalized()
    );
    assert_ne!(
        analyze("SELECT * FROM t WHERE a = $1").normalized(),
        analyze("SELECT * FROM t WHERE a = $2").normalized()
    );
}

#[test]
fn password_literals_leave_the_text_but_are_kept_apart() {
    for (sql, text, secret) in [
        (
            "ALTER ROLE app PASSWORD 'hunter2'",
            "ALTER ROLE app PASSWORD '***'",
            "'hunter2'",
        ),
        (
            "create user bob with encrypted password E'pa\\'ss'",
            "CREATE USER bob WITH ENCRYPTED PASSWORD '***'",
            "E'pa\\'ss'",
        ),
        (
            "CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (user 'u', password 'sëcret')",
            "CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (USER 'u', PASSWORD '***')",
            "'sëcret'",
        ),
    ] {
        let a = analyze(sql);
        assert_eq!(a.error, None, "{sql}");
        assert_eq!(a.normalized(), text, "{sql}");
        assert_eq!(a.statements[0].secrets, [secret], "{sql}");
    }
    // Other string constants stay, and `PASSWORD NULL` has nothing to hide.
    assert_eq!(
        analyze("ALTER ROLE app PASSWORD NULL").statements[0].secrets,
        Vec::<String>::new()
    );
    assert_eq!(
        analyze("SELECT 'password'").normalized(),
        "SELECT 'password'"
    );
}

#[test]
fn normalization_drops_comments_and_layout() {
    let plain = analyze("SELECT 1").normalized();
    assert_eq!(plain, "SELECT 1");
    for variant in [
        "SELECT  1 -- x",
        "select 1",
        "/* c */ SELECT\n\t1 ;",
        "SELECT /* a */ 1 /* b */",
    ] {
        assert_eq!(analyze(variant).normalized(), plain, "{variant:?}");
    }
    assert_eq!(
        analyze("select * from T where A = 'x' -- y").normalized(),
        "SELECT * FROM t WHERE a = 'x'"
    );
    // Quoted identifiers keep their case, so they stay distinct.
    assert_ne!(
        analyze(r#"SELECT * FROM "T""#).normalized(),
        analyze("SELECT * FROM T").normalized()
    );
}

#[test]
fn normalization_of_batches_and_failures() {
    let batch = analyze("select 1 ; /* x */ DELETE from t where id=3");
    assert_eq!(batch.normalized(), "SELECT 1; DELETE FROM t WHERE id = 3");
    assert_eq!(batch.statements[1].normalized, "DELETE FROM t WHERE id = 3");
    // A text the parser rejects keeps its own text, so two different failures never share a
    // fingerprint (an approval of one must not cover the other).
    let bad = analyze("  SELEC 1 ");
    assert_eq!(bad.normalized(), "SELEC 1");
    assert_ne!(bad.normalized(), analyze("SELEC 2").normalized());
    assert_eq!(bad.kind(), OperationKind::Unknown);
    assert_eq!(
        bad.reasons(),
        [r#"not understood: syntax error at or near "SELEC""#]
    );
    assert!(analyze("").statements.is_empty());
    assert_eq!(analyze("").normalized(), "");
}

/// The normalized text is what approvals are bound to, so printing it must not change what
/// the statement does: re-analyzing it yields the same verdict and prints the same text.
#[test]
fn normalization_is_faithful_and_idempotent() {
    for case in corpus::cases() {
        let a = analyze(&case.sql);
        if a.error.is_some() {
            continue;
        }
        let again = analyze(&a.normalized());
        assert_eq!(
            again.error,
            None,
            "{:?} printed as {:?}",
            case.sql,
            a.normalized()
        );
        assert_eq!(
            again.kind(),
            a.kind(),
            "{:?} printed as {:?}",
            case.sql,
            a.normalized()
        );
        assert_eq!(again.objects(), a.objects(), "{:?}", case.sql);
        assert_eq!(again.functions(), a.functions(), "{:?}", case.sql);
        assert_eq!(again.normalized(), a.normalized(), "{:?}", case.sql);
    }
}

#[test]
fn analysis_accessors() {
    let a = analyze(
        "SELECT nextval('s'), f() FROM a.t; DELETE FROM u WHERE x = pg_catalog.upper('v'); SELECT * FROM a.t",
    );
    assert_eq!(a.kind(), OperationKind::Write);
    // In order of appearance in the tree: the select list comes before FROM.
    assert_eq!(
        a.objects(),
        [
            ObjectName::new(None, "s"),
            ObjectName::new(Some("a"), "t"),
            ObjectName::new(None, "u"),
        ]
    );
    assert_eq!(a.functions(), ["nextval", "f", "pg_catalog.upper"]);
    assert_eq!(
        a.reasons(),
        [
            "calls nextval (changes a sequence)",
            "calls unknown function f, treated as a write"
        ]
    );
    assert_eq!(a.statements[1].reasons, Vec::<String>::new());
    assert_eq!(ObjectName::new(Some("a"), "t").to_string(), "a.t");
    assert_eq!(ObjectName::new(None, "T").to_string(), "T");
}

#[test]
fn session_effects() {
    let effect = |sql: &str| analyze(sql).statements[0].effect.clone();
    assert_eq!(
        effect("PREPARE p AS SELECT 1"),
        SessionEffect::Prepare { name: "p".into() }
    );
    assert_eq!(
        effect("EXECUTE p(1)"),
        SessionEffect::Execute { name: "p".into() }
    );
    assert_eq!(
        effect("DEALLOCATE p"),
        SessionEffect::Deallocate {
            name: Some("p".into())
        }
    );
    assert_eq!(
        effect("DEALLOCATE ALL"),
        SessionEffect::Deallocate { name: None }
    );
    assert_eq!(effect("DISCARD ALL"), SessionEffect::Discard);
    assert_eq!(effect("SET search_path = x"), SessionEffect::SetSearchPath);
    assert_eq!(effect("CREATE TABLE t (a int)"), SessionEffect::Ddl);
    assert_eq!(effect("BEGIN"), SessionEffect::Transaction);
    assert_eq!(
        effect("LISTEN c"),
        SessionEffect::Listen {
            channel: "c".into()
        }
    );
    assert_eq!(effect("UNLISTEN *"), SessionEffect::Unlisten);
    assert_eq!(effect("SELECT 1"), SessionEffect::None);
    // The prepared statement's own verdict is carried by the PREPARE.
    let p = analyze("PREPARE d AS DELETE FROM s.t WHERE id = $1");
    assert_eq!(p.kind(), OperationKind::Write);
    assert_eq!(p.objects(), [ObjectName::new(Some("s"), "t")]);
}

#[test]
fn cache_shares_and_evicts() {
    let cached = CachedAnalyzer::new(PgQueryAnalyzer::new(), 2);
    let a = cached.analyze("SELECT 1");
    assert!(Arc::ptr_eq(&a, &cached.analyze("SELECT 1")));
    cached.analyze("SELECT 2");
    cached.analyze("SELECT 3"); // evicts SELECT 1
    assert_eq!(cached.len(), 2);
    let again = cached.analyze("SELECT 1");
    assert!(!Arc::ptr_eq(&a, &again));
    assert_eq!(*a, *again);
    let default = CachedAnalyzer::default();
    assert_eq!(default.capacity(), 1024);
    assert_eq!(default.analyze("SELECT 1").kind(), OperationKind::Read);
    // Texts beyond the length limit are analyzed but not cached.
    let small = CachedAnalyzer::new(PgQueryAnalyzer::new(), 8).max_text_len(8);
    small.analyze("SELECT 123456789");
    assert!(small.is_empty());
}

/// An independent account of a tree: function names and relation names, found by serializing
/// the parse tree with serde (into a TOML value) instead of walking it with the analyzer's
/// generated visitor. A field the visitor missed shows up as a difference.
fn serde_oracle(sql: &str) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let value = toml::Value::try_from(&parsed.protobuf).ok()?;
    let mut functions = BTreeSet::new();
    let mut relations = BTreeSet::new();
    collect(&value, &mut functions, &mut relations);
    Some((functions, relations))
}

fn collect(
    value: &toml::Value,
    functions: &mut BTreeSet<String>,
    relations: &mut BTreeSet<String>,
) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table {
                match (key.as_str(), v) {
                    // A call is a `FuncCall` node, or `CallStmt`'s typed `funccall` field.
                    ("FuncCall" | "funccall", toml::Value::Table(call)) => {
                        if let Some(toml::Value::Array(parts)) = call.get("funcname") {
                            functions.insert(dotted(parts));
                        }
                    }
                    // A relation is anything shaped like a `RangeVar`, wrapped in a node or not.
                    ("relname", toml::Value::String(name)) => {
                        relations.insert(name.clone());
                    }
                    _ => {}
                }
                collect(v, functions, relations);
            }
        }
        toml::Value::Array(items) => {
            for v in items {
                collect(v, functions, relations);
            }
        }
        _ => {}
    }
}

fn dotted(parts: &[toml::Value]) -> String {
    let names: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("node")?.get("String")?.get("sval")?.as_str())
        .collect();
    names.join(".")
}

#[test]
fn walk_finds_every_function_call() {
    let mut compared = 0;
    for case in corpus::cases() {
        let Some((functions, relations)) = serde_oracle(&case.sql) else {
            continue;
        };
        compared += 1;
        let a = analyze(&case.sql);
        let found: BTreeSet<String> = a.functions().into_iter().collect();
        assert_eq!(found, functions, "functions of {:?}", case.sql);
        // Every relation the analyzer reports is a relation node of the tree (the oracle also
        // sees CTE references and `FOR UPDATE OF` aliases, which the analyzer leaves out).
        for o in a.objects() {
            let seen = relations.contains(&o.name)
                || case.sql.contains("DROP")
                || case.sql.to_lowercase().contains("val(");
            assert!(seen, "object {o} of {:?} is not in the tree", case.sql);
        }
    }
    assert!(
        compared > 100,
        "only {compared} corpus cases could be serialized"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Arbitrary text, including NUL bytes and control characters: never a panic, and a
    /// failure is always unknown.
    #[test]
    fn never_panics_on_arbitrary_text(sql in "(?s).{0,200}") {
        let a = analyze(&sql);
        if a.error.is_some() {
            prop_assert_eq!(a.kind(), OperationKind::Unknown);
        }
    }

    /// Arbitrary bytes made from SQL-ish tokens, nested a bounded number of times.
    #[test]
    fn never_panics_on_sql_like_text(
        tokens in prop::collection::vec(prop::sample::select(corpus::SQL_TOKENS.to_vec()), 0..60),
        depth in 0usize..40,
    ) {
        let sql = corpus::nested(&tokens, depth);
        let _ = analyze(&sql);
    }

    /// Changing case, layout and comments never lowers the verdict.
    #[test]
    fn respelling_never_lowers_the_kind(
        index in 0..SPELLING_SAMPLES.len(),
        flips in prop::collection::vec(any::<bool>(), 1..16),
        comments in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let sql = SPELLING_SAMPLES[index];
        let respelled = respell(sql, &flips, &comments);
        let base = analyze(sql).kind();
        let other = analyze(&respelled).kind();
        prop_assert!(other >= base, "{:?} is {:?} but {:?} is {:?}", respelled, other, sql, base);
    }
}

#[test]
fn deep_nesting_is_refused_not_crashed() {
    for depth in [10, 100, 1000, 10_000] {
        let sql = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
        let a = analyze(&sql);
        assert!(
            a.kind() == OperationKind::Read || a.kind() == OperationKind::Unknown,
            "depth {depth}: {:?}",
            a.kind()
        );
        let sql = format!("SELECT {}", vec!["f(1)"; depth].join(" + "));
        let a = analyze(&sql);
        assert!(
            a.kind() >= OperationKind::Write,
            "depth {depth}: {:?}",
            a.kind()
        );
    }
}

/// Statements that crash (or fool) libpg_query's deparser: the analyzer must not deparse.
#[test]
fn statements_the_deparser_cannot_print() {
    // A segfault in the deparser (found by the differential test's random inputs).
    let a = analyze("ALTER TYPE mood ADD VALUE ''");
    assert_eq!(a.kind(), OperationKind::Schema);
    assert_eq!(a.normalized(), "ALTER TYPE mood ADD VALUE ''");
    // An assertion failure in the deparser.
    let a = analyze("SELECT * FROM coalesce(1, 2)");
    assert_eq!(a.kind(), OperationKind::Read);
    // The deparser prints `IS ''` as `IS NULL`: two statements, one text.
    assert_ne!(
        analyze("COMMENT ON TABLE t IS ''").normalized(),
        analyze("COMMENT ON TABLE t IS NULL").normalized()
    );
    // Keywords upper-case (even `name`, which is one), unquoted identifiers folded (even
    // those starting with `u`), quoted ones and constants as written.
    assert_eq!(
        analyze(
            "select  Name, \"Mixed\", Users, U&\"d\\0061t\"  from Public.T where x = 'A b' -- c\n"
        )
        .normalized(),
        "SELECT NAME, \"Mixed\", users, U&\"d\\0061t\" FROM public.t WHERE x = 'A b'"
    );
    // Spaces only where tokens need them: qualified names, calls and lists read naturally, a
    // number beside a dot keeps its space.
    assert_eq!(
        analyze("select count( * ) , t . * , (r).f from S . t where x in ( 1 , 2 ) ;").normalized(),
        "SELECT count(*), t.*, (r).f FROM s.t WHERE x IN (1, 2)"
    );
    assert_eq!(analyze("SELECT 1 .5").normalized(), "SELECT 1 .5");
}
