//! The shape cache must never change an analysis: whatever texts of the same shape were seen
//! before, analysing a text with the cache gives exactly what a full parse gives.
//!
//! The attack is to prime the cache with a harmless text and then send one of the same shape
//! whose constants matter (`nextval('secret_seq')`, `set_config('search_path', …)`, a Unicode
//! identifier whose `UESCAPE` character changes the table it names).

mod corpus;

use sod_core::OperationKind;
use sod_postgres::sql::{Analyzer, PgQueryAnalyzer, SessionEffect};

fn full(sql: &str) -> sod_postgres::sql::Analysis {
    PgQueryAnalyzer::new().analyze(sql)
}

/// Every text of both corpora and the analyzer's token list.
fn corpus_texts() -> Vec<String> {
    let mut texts: Vec<String> = corpus::cases().into_iter().map(|c| c.sql).collect();
    let adversarial: toml::Value =
        toml::from_str(include_str!("corpus/adversarial.toml")).expect("adversarial corpus");
    for case in adversarial["case"].as_array().expect("cases") {
        if let Some(sql) = case.get("sql").and_then(|s| s.as_str()) {
            texts.push(sql.to_owned());
        }
    }
    texts.extend(corpus::SQL_TOKENS.iter().map(|t| format!("SELECT {t}")));
    texts
}

/// Texts of (often) the same shape as `sql`: digit runs and quoted strings replaced. They need
/// not be valid SQL; any text primes the cache.
fn variants(sql: &str) -> Vec<String> {
    let digits = |with: &str| {
        let mut out = String::new();
        let mut in_run = false;
        for c in sql.chars() {
            if c.is_ascii_digit() {
                if !in_run {
                    out.push_str(with);
                }
                in_run = true;
            } else {
                in_run = false;
                out.push(c);
            }
        }
        out
    };
    let strings = |with: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in sql.chars() {
            if c == '\'' {
                if !inside {
                    out.push('\'');
                    out.push_str(with);
                } else {
                    out.push('\'');
                }
                inside = !inside;
            } else if !inside {
                out.push(c);
            }
        }
        out
    };
    vec![
        digits("7"),
        digits("123456789012"),
        strings("x"),
        strings("search_path"),
        strings("pg_catalog.secret_seq"),
        strings("!"),
    ]
}

#[test]
fn a_primed_shape_cache_gives_what_a_full_parse_gives() {
    let shaped = PgQueryAnalyzer::with_shape_cache(100_000);
    let texts = corpus_texts();
    let mut compared = 0;
    for sql in &texts {
        for variant in variants(sql) {
            // Prime with the variant, then ask for the original — and the other way round.
            let _ = shaped.analyze(&variant);
            assert_eq!(shaped.analyze(sql), full(sql), "{sql:?} after {variant:?}");
            let _ = shaped.analyze(sql);
            assert_eq!(
                shaped.analyze(&variant),
                full(&variant),
                "{variant:?} after {sql:?}"
            );
            compared += 2;
        }
    }
    assert!(
        shaped.shapes_cached() > 100,
        "the corpus has many DML shapes"
    );
    assert!(compared > 3000);
}

#[test]
fn constants_that_name_things_are_not_shared() {
    let shaped = PgQueryAnalyzer::with_shape_cache(64);
    // Sequence names are objects: policy may treat them differently.
    let a = shaped.analyze("SELECT nextval('public.orders_id_seq')");
    let b = shaped.analyze("SELECT nextval('vault.secret_seq')");
    assert_eq!(a.objects()[0].to_string(), "public.orders_id_seq");
    assert_eq!(b.objects()[0].to_string(), "vault.secret_seq");
    // set_config's setting name decides whether search_path changes.
    let harmless = shaped.analyze("SELECT set_config('application_name', 'x', false)");
    let evil = shaped.analyze("SELECT set_config('search_path', 'evil', false)");
    assert_eq!(harmless.statements[0].effect, SessionEffect::None);
    assert_eq!(evil.statements[0].effect, SessionEffect::SetSearchPath);
    assert_eq!(shaped.shapes_cached(), 0, "neither is templated");
    // UESCAPE changes which table a Unicode identifier names.
    let one = shaped.analyze(r#"SELECT * FROM U&"d!0061ta" UESCAPE '#'"#);
    let two = shaped.analyze(r#"SELECT * FROM U&"d!0061ta" UESCAPE '!'"#);
    assert_eq!(one.objects()[0].to_string(), "d!0061ta");
    assert_eq!(two.objects()[0].to_string(), "data");
}

#[test]
fn constants_of_other_kinds_are_other_shapes() {
    let shaped = PgQueryAnalyzer::with_shape_cache(64);
    for sql in [
        "SELECT 1",
        "SELECT 1.5",
        "SELECT '1'",
        "SELECT x'1'",
        "SELECT b'1'",
    ] {
        assert_eq!(shaped.analyze(sql), full(sql));
    }
    assert_eq!(shaped.shapes_cached(), 5);
}

#[test]
fn only_dml_is_templated_and_texts_stay_per_text() {
    let shaped = PgQueryAnalyzer::with_shape_cache(64);
    shaped.analyze("SET statement_timeout = 5");
    shaped.analyze("SET statement_timeout = 6");
    shaped.analyze("COPY t TO '/tmp/a'");
    shaped.analyze("EXPLAIN (ANALYZE 0) DELETE FROM t");
    assert_eq!(shaped.shapes_cached(), 0);
    let first = shaped.analyze("/* hi */ UPDATE t SET a = 1 WHERE id = 10; SELECT 'x'");
    assert_eq!(shaped.shapes_cached(), 1);
    let second = shaped.analyze("update T set A = 2  where ID = 11 ; select 'y' -- bye");
    assert_eq!(shaped.shapes_cached(), 2, "spelling is part of the shape");
    let third = shaped.analyze("UPDATE t SET a = 2 WHERE id = 11; SELECT 'y'");
    assert_eq!(shaped.shapes_cached(), 2, "comments and layout are not");
    assert_eq!(first.kind(), OperationKind::Write);
    assert_eq!(
        third.normalized(),
        "UPDATE t SET a = 2 WHERE id = 11; SELECT 'y'"
    );
    assert_eq!(second.normalized(), third.normalized());
    assert_eq!(third, full("UPDATE t SET a = 2 WHERE id = 11; SELECT 'y'"));
}

#[test]
fn constants_the_grammar_refuses_are_not_served_from_a_template() {
    let shaped = PgQueryAnalyzer::with_shape_cache(64);
    for (good, bad) in [
        ("SELECT x::float(7) FROM t", "SELECT x::float(0) FROM t"),
        ("SELECT U&'\\0041' FROM t", "SELECT U&'\\7' FROM t"),
    ] {
        assert_eq!(shaped.analyze(good).kind(), OperationKind::Read);
        let refused = shaped.analyze(bad);
        assert_eq!(refused, full(bad));
        assert_eq!(refused.kind(), OperationKind::Unknown, "{bad}");
    }
}
