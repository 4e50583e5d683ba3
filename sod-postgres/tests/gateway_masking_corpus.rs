//! The masking corpus (`tests/corpus/masking.toml`): a planner whose results are masked tries
//! to read sensitive columns around masking, through a gateway in front of a real PostgreSQL.
//!
//! Planted values: an SSN, a card number and a free-text secret in `patients` (the secret
//! matches no value detector, so only lineage can mask it), and the seed's customer emails.
//! Before the corpus, the executor (unmasked) reads them through the same gateway, which proves
//! that the search below finds them. For each case the test runs the SQL as the planner through
//! psql (simple protocol, text results, COPY) and through tokio-postgres (extended protocol,
//! binary results), checks the expected outcome, and searches everything the client received —
//! rows, command tags, errors, notices, COPY data — for each planted value and simple transforms
//! of it (lower, upper, reversed, letters and digits only, hex, base64, MD5, a Caesar shift).
//! `SOD_MASK_VERBOSE=1` prints each case's output.

mod support;

use serde::Deserialize;
use support::{Harness, Options};
use tokio_postgres::types::{FromSql, Type};

const CORPUS: &str = include_str!("corpus/masking.toml");

const MASKS: &str = r#"
[[profile]]
name = "planner"

[[profile.rule]]
column = "*.patients.ssn"
strategy = "redact"

[[profile.rule]]
column = "*.patients.card"
strategy = "partial"
keep_last = 4

[[profile.rule]]
column = "*.patients.secret"
strategy = "hash"

[[profile.rule]]
column = "*.customers.email"
strategy = "redact"
"#;

const SSN: &str = "731-59-2846";
const CARD: &str = "4539 1488 0343 6467";
const SECRET: &str = "XyzzyPlugh0Quux7";
const PLANTED: &[&str] = &[SSN, CARD, SECRET, "alice@example.com", "bob@example.org"];

const SCHEMA: &str = "
CREATE TABLE public.patients (id int PRIMARY KEY, name text, ssn text, card text, secret text);
INSERT INTO public.patients VALUES (1, 'Zelda Quist', '731-59-2846', '4539 1488 0343 6467', 'XyzzyPlugh0Quux7');
CREATE VIEW public.patient_view AS SELECT id, ssn AS s FROM public.patients;
CREATE VIEW public.patient_summary AS SELECT id, upper(name) AS n, length(secret) AS l FROM public.patients;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO executor;
ANALYZE public.patients;
ANALYZE public.customers;
";

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    why: String,
    sql: String,
    #[serde(default = "both")]
    via: String,
    expect: String,
    shows: Option<String>,
    then: Option<String>,
}

fn both() -> String {
    "both".to_owned()
}

fn corpus() -> Vec<Case> {
    let corpus: Corpus = toml::from_str(CORPUS).expect("tests/corpus/masking.toml parses");
    let mut names = std::collections::HashSet::new();
    for c in &corpus.case {
        assert!(names.insert(c.name.clone()), "duplicate case {}", c.name);
        assert!(!c.why.is_empty(), "{}: no why", c.name);
        assert!(
            c.then.is_none() || c.via == "simple",
            "{}: `then` needs via = \"simple\"",
            c.name
        );
        assert!(
            ["masked", "refused", "error"].contains(&c.expect.as_str()),
            "{}: expect {}",
            c.name,
            c.expect
        );
        assert!(
            ["simple", "extended", "both"].contains(&c.via.as_str()),
            "{}: via {}",
            c.name,
            c.via
        );
    }
    corpus.case
}

#[test]
fn the_corpus_is_well_formed_and_large_enough() {
    let cases = corpus();
    let attacks = cases
        .iter()
        .filter(|c| !c.name.starts_with("control"))
        .count();
    assert!(attacks >= 40, "only {attacks} attacks");
}

/// Any value as its raw bytes (binary results).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Every planted value and its simple transforms, computed by the server itself.
fn needles(h: &Harness) -> Vec<String> {
    let mut out = Vec::new();
    for v in PLANTED {
        let q = format!(
            "SELECT concat_ws(E'\\n', v, lower(v), upper(v), reverse(v), \
             regexp_replace(v, '[^0-9A-Za-z]', '', 'g'), encode(convert_to(v, 'UTF8'), 'hex'), \
             encode(convert_to(v, 'UTF8'), 'base64'), md5(v), \
             translate(v, 'abcdefghijklmnopqrstuvwxyz', 'bcdefghijklmnopqrstuvwxyza')) \
             FROM (SELECT '{v}'::text AS v) s"
        );
        out.extend(
            h.direct(&q)
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 6)
                .map(str::to_owned),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// psql with the SQLSTATE in its error lines; each of `sql` is one query of the session.
fn psql(h: &Harness, token: &str, sql: &[&str]) -> (bool, String) {
    let conninfo = h.conninfo();
    let mut args = vec![
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        &conninfo,
    ];
    for q in sql {
        args.extend(["-c", q]);
    }
    let out = std::process::Command::new("psql")
        .args(&args)
        .env("PGPASSWORD", token)
        .env_remove("PGHOST")
        .output()
        .expect("psql runs");
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `sql` over the extended protocol; everything received, rendered, and whether it
/// succeeded.
async fn extended(client: &tokio_postgres::Client, sql: &str) -> (bool, String) {
    match client.query(sql, &[]).await {
        Ok(rows) => {
            let mut text = String::new();
            for row in rows {
                for i in 0..row.len() {
                    if let Ok(Some(Raw(bytes))) = row.try_get::<_, Option<Raw>>(i) {
                        text.push_str(&String::from_utf8_lossy(&bytes));
                    }
                    text.push('|');
                }
                text.push('\n');
            }
            (true, text)
        }
        Err(e) => (false, format!("{e:?}")),
    }
}

fn check(case: &Case, via: &str, ok: bool, text: &str, needles: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let what = format!("{} [{via}]", case.name);
    if std::env::var_os("SOD_MASK_VERBOSE").is_some() {
        eprintln!("--- {what}\n{text}");
    }
    for n in needles {
        if text.contains(n.as_str()) {
            problems.push(format!("{what}: LEAK of `{n}` in:\n{text}"));
        }
    }
    match case.expect.as_str() {
        "masked" if !ok => problems.push(format!("{what}: expected a masked result, got:\n{text}")),
        "refused" if ok || !text.contains("42501") || !text.contains("sod:") => problems.push(
            format!("{what}: expected the gateway's refusal, got:\n{text}"),
        ),
        "error" if ok || !text.contains("withheld") => problems.push(format!(
            "{what}: expected a withheld server error, got:\n{text}"
        )),
        _ => {}
    }
    if let Some(shows) = &case.shows
        && !text.contains(shows.as_str())
    {
        problems.push(format!("{what}: expected `{shows}` in:\n{text}"));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_cannot_be_talked_around() {
    let cases = corpus();
    let h = Harness::with(Options {
        policy: support::MASKED_POLICY.to_owned(),
        masks: MASKS.to_owned(),
        ..Options::default()
    })
    .await;
    h.direct(SCHEMA);
    let needles = needles(&h);

    // The probe: unmasked, the executor sees the planted values, and the search finds them.
    let (ok, text) = psql(
        &h,
        &h.executor(),
        &["SELECT ssn, card, secret, md5(secret) FROM patients; SELECT email FROM customers"],
    );
    assert!(ok, "{text}");
    for v in PLANTED {
        assert!(text.contains(v), "the executor must see {v}: {text}");
    }

    let planner = h.reader();
    let client = h.client(&planner).await.expect("planner connects");
    let mut problems = Vec::new();
    for case in &cases {
        if case.via != "extended" {
            let mut queries = vec![case.sql.as_str()];
            queries.extend(case.then.as_deref());
            let (ok, text) = psql(&h, &planner, &queries);
            problems.extend(check(case, "psql", ok, &text, &needles));
        }
        if case.via != "simple" {
            let (ok, text) = extended(&client, &case.sql).await;
            problems.extend(check(case, "extended", ok, &text, &needles));
        }
    }
    h.stop().await;
    assert!(
        problems.is_empty(),
        "{} problem(s) in the masking corpus:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
