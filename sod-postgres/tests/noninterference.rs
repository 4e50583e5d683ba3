//! Masking by noninterference: two PostgreSQL servers hold the same non-sensitive data and
//! different sensitive values, each behind its own gateway with the same policy and a mask
//! profile whose strategies do not depend on the value (`redact`, `null`). Statements drawn
//! from a grammar that places masked columns everywhere a statement can hold an expression —
//! select lists, functions, operators, casts, `CASE`, `WHERE`, joins, `GROUP BY` (positions and
//! grouping sets too), `HAVING`, windows, `ORDER BY`, `DISTINCT`, `LIMIT`, set operations,
//! set-returning functions, scalar, `IN` and `EXISTS` subqueries — run as the masked planner
//! through both. For every statement the gateways answer, what the client sees (rows, their
//! order, the command tag, SQLSTATE and message of an error, notices) must be identical; a
//! statement must be refused by both or by neither.
//!
//! The sensitive values differ; their NULLs and lengths do not. NULL is visible by design
//! (masking keeps NULL as NULL), and the planner's cost estimates read columns' average widths,
//! so different lengths may pick another plan — and with it the order in which a statement
//! without `ORDER BY` returns rows. That is the documented residual (README: what a masked
//! session may compute).
//!
//! The run is bounded by time: `SOD_NONINTERFERENCE_SECONDS` (default 40) and a seed,
//! `SOD_NONINTERFERENCE_SEED` (default: random, printed). `cargo xtask soak noninterference`
//! runs it longer. A violation is shrunk to a smaller statement that still shows it.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use support::{Harness, Options};
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

const MASKS: &str = r#"
[[profile]]
name = "planner"

[[profile.rule]]
column = "*.people.email"
strategy = "redact"

[[profile.rule]]
column = "*.people.ssn"
strategy = "redact"

[[profile.rule]]
column = "*.people.score"
strategy = "null"

[[profile.rule]]
column = "*.notes.body"
strategy = "redact"
"#;

const PEOPLE: usize = 24;
const NOTES: usize = 48;

/// The schema and data of one server: the same but for the sensitive values, which come from
/// `variant`.
fn schema(variant: u64) -> String {
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(variant));
    let letters = |rng: &mut TestRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + (rng.next_u32() % 26) as u8))
            .collect()
    };
    let digits = |rng: &mut TestRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8))
            .collect()
    };
    let mut sql = String::from(
        "CREATE TABLE public.people (id int PRIMARY KEY, name text NOT NULL, dept text, salary int, \
         email text, ssn text, score int);
         CREATE TABLE public.notes (id int PRIMARY KEY, person_id int, kind text, amount int, body text);\n",
    );
    let depts = ["eng", "ops", "sales", "legal"];
    for i in 1..=PEOPLE {
        // Lengths and NULLs depend on the row only; contents on the variant.
        let email = if i % 7 == 0 {
            "NULL".to_owned()
        } else {
            let user = letters(&mut rng, 3 + i % 5);
            format!("'{user}@{}.com'", letters(&mut rng, 4))
        };
        let ssn = if i % 5 == 0 {
            "NULL".to_owned()
        } else {
            format!(
                "'{}-{}-{}'",
                digits(&mut rng, 3),
                digits(&mut rng, 2),
                digits(&mut rng, 4)
            )
        };
        let score = if i % 6 == 0 {
            "NULL".to_owned()
        } else {
            // Same number of digits across variants.
            (10 + rng.next_u32() % 90).to_string()
        };
        sql.push_str(&format!(
            "INSERT INTO public.people VALUES ({i}, 'person{i}', '{}', {}, {email}, {ssn}, {score});\n",
            depts[i % depts.len()],
            1000 + (i * 37) % 500,
        ));
    }
    for i in 1..=NOTES {
        let body = if i % 4 == 0 {
            "NULL".to_owned()
        } else {
            format!("'{}'", letters(&mut rng, 6 + i % 4))
        };
        sql.push_str(&format!(
            "INSERT INTO public.notes VALUES ({i}, {}, '{}', {}, {body});\n",
            1 + i % PEOPLE,
            ["call", "mail", "visit"][i % 3],
            (i * 13) % 100,
        ));
    }
    sql.push_str(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO executor;
         ANALYZE public.people; ANALYZE public.notes;\n",
    );
    sql
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64)
                .to_le_bytes(),
        );
    }
    bytes
}

// === The grammar ===

/// Integer-valued columns, masked (`score`) and not.
const INT_COLS: &[&str] = &["p.id", "p.salary", "p.score", "n.amount", "n.person_id"];
/// Text-valued columns, masked (`email`, `ssn`, `body`) and not.
const TEXT_COLS: &[&str] = &["p.name", "p.dept", "p.email", "p.ssn", "n.kind", "n.body"];

fn int_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(INT_COLS).prop_map(str::to_owned),
        1 => (0i32..40).prop_map(|n| n.to_string()),
    ]
}

fn text_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(TEXT_COLS).prop_map(str::to_owned),
        1 => prop::sample::select(&["'a'", "'eng'", "'x%'", "'%@%'", "''"][..]).prop_map(str::to_owned),
    ]
}

/// An expression's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Text,
}

/// An expression of either type, as an integer (a text one through `length`).
fn as_int(e: impl Strategy<Value = (Ty, String)>) -> impl Strategy<Value = String> {
    e.prop_map(|(ty, s)| match ty {
        Ty::Int => s,
        Ty::Text => format!("length({s})"),
    })
}

/// An expression of either type, as a text (an integer one through a cast).
fn as_text(e: impl Strategy<Value = (Ty, String)>) -> impl Strategy<Value = String> {
    e.prop_map(|(ty, s)| match ty {
        Ty::Text => s,
        Ty::Int => format!("({s})::text"),
    })
}

/// An integer, a text and a boolean expression, each of which may hold masked columns
/// anywhere.
fn exprs() -> (
    BoxedStrategy<String>,
    BoxedStrategy<String>,
    BoxedStrategy<String>,
) {
    let leaf = prop_oneof![
        int_leaf().prop_map(|s| (Ty::Int, s)),
        text_leaf().prop_map(|s| (Ty::Text, s)),
    ];
    let tree = leaf
        .prop_recursive(4, 24, 3, |inner| {
            let i = as_int(inner.clone()).boxed();
            let t = as_text(inner.clone()).boxed();
            let b = bools(i.clone(), t.clone());
            prop_oneof![
                inner.clone(),
                (
                    i.clone(),
                    prop::sample::select(&["+", "-", "*", "/", "%"][..]),
                    i.clone()
                )
                    .prop_map(|(a, op, b)| (Ty::Int, format!("({a} {op} {b})"))),
                t.clone().prop_map(|x| (Ty::Int, format!("ascii({x})"))),
                t.clone().prop_map(|x| (Ty::Int, format!("({x})::int"))),
                (b.clone(), i.clone(), i.clone()).prop_map(|(c, x, y)| (
                    Ty::Int,
                    format!("CASE WHEN {c} THEN {x} ELSE {y} END")
                )),
                (i.clone(), i.clone()).prop_map(|(x, y)| (Ty::Int, format!("coalesce({x}, {y})"))),
                b.clone().prop_map(|c| (
                    Ty::Int,
                    format!(
                        "(SELECT count(*) FROM notes n2 WHERE {})",
                        c.replace("n.", "n2.")
                    )
                )),
                t.clone().prop_map(|x| (Ty::Text, format!("lower({x})"))),
                (t.clone(), t.clone()).prop_map(|(x, y)| (Ty::Text, format!("({x} || {y})"))),
                (t.clone(), i.clone())
                    .prop_map(|(x, n)| (Ty::Text, format!("substr({x}, 1, {n})"))),
                t.clone().prop_map(|x| (Ty::Text, format!("md5({x})"))),
                (b, t.clone(), t).prop_map(|(c, x, y)| (
                    Ty::Text,
                    format!("CASE WHEN {c} THEN {x} ELSE {y} END")
                )),
            ]
        })
        .boxed();
    let int = as_int(tree.clone()).boxed();
    let text = as_text(tree).boxed();
    let b = bools(int.clone(), text.clone());
    (int, text, b)
}

/// A boolean expression over integer and text expressions.
fn bools(int: BoxedStrategy<String>, text: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        (
            int.clone(),
            prop::sample::select(&["<", "=", ">", "<>"][..]),
            int.clone()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (
            text.clone(),
            prop::sample::select(&["=", "<", "LIKE"][..]),
            text.clone()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        text.clone().prop_map(|t| format!("{t} IS NULL")),
        int.prop_map(|i| format!("{i} IN (SELECT amount FROM notes)")),
        text.prop_map(|t| format!(
            "EXISTS (SELECT 1 FROM notes n3 WHERE n3.kind = {})",
            t.replace("n.", "n3.")
        )),
    ]
    .boxed()
}

/// One select-list item.
fn item(int: BoxedStrategy<String>, text: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(INT_COLS).prop_map(str::to_owned),
        4 => prop::sample::select(TEXT_COLS).prop_map(str::to_owned),
        3 => int.clone(),
        3 => text.clone(),
        1 => prop::sample::select(TEXT_COLS).prop_map(|c| format!("count({c})")),
        1 => text.clone().prop_map(|t| format!("max({t})")),
        1 => int.clone().prop_map(|i| format!("sum({i})")),
        1 => text.clone().prop_map(|t| format!("string_agg({t}, ',' ORDER BY p.id)")),
        1 => text.clone().prop_map(|t| format!("row_number() OVER (ORDER BY {t}, p.id)")),
        1 => int.clone().prop_map(|i| format!("count(*) OVER (PARTITION BY {i})")),
        1 => int.clone().prop_map(|i| format!("generate_series(1, least({i}, 3))")),
        1 => text.clone().prop_map(|t| format!("(SELECT max(n4.kind) FROM notes n4 WHERE n4.kind > {})", t.replace("n.", "n4."))),
        1 => Just("p".to_owned()),
    ]
    .boxed()
}

/// A `SELECT` over `people p` (joined with `notes n`), with every clause a statement can have.
fn statement() -> impl Strategy<Value = String> {
    let (int, text, b) = exprs();
    let items = prop::collection::vec(item(int.clone(), text.clone()), 1..4);
    let from = prop::sample::select(
        &[
            "people p JOIN notes n ON n.person_id = p.id",
            "people p LEFT JOIN notes n ON n.person_id = p.id",
            "people p, notes n",
            "(SELECT * FROM people) p JOIN notes n ON n.person_id = p.id",
        ][..],
    );
    let filter = prop::option::of(b.clone());
    let group = prop::option::of(prop_oneof![
        int.clone().prop_map(|i| format!("GROUP BY {i}")),
        text.clone().prop_map(|t| format!("GROUP BY {t}")),
        Just("GROUP BY 1".to_owned()),
        Just("GROUP BY ROLLUP (1)".to_owned()),
        Just("GROUP BY GROUPING SETS ((1), ())".to_owned()),
    ]);
    let having = prop::option::of(b.clone());
    let order = prop::option::of(prop_oneof![
        Just("ORDER BY 1".to_owned()),
        int.clone().prop_map(|i| format!("ORDER BY {i}, 1")),
        text.clone().prop_map(|t| format!("ORDER BY {t} DESC, 1")),
    ]);
    let limit = prop::option::of(prop_oneof![
        (1u32..6).prop_map(|n| format!("LIMIT {n}")),
        int.clone()
            .prop_map(|i| format!("LIMIT least(abs({i}), 5)")),
    ]);
    let distinct = prop::bool::weighted(0.15);
    let set_op = prop::option::of((
        prop::sample::select(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"][..]),
        text.clone(),
    ));
    (items, from, filter, group, having, order, limit, distinct, set_op).prop_map(
        |(items, from, filter, group, having, order, limit, distinct, set_op)| {
            let mut sql = format!(
                "SELECT {}{} FROM {from}",
                if distinct { "DISTINCT " } else { "" },
                items.join(", ")
            );
            if let Some(f) = filter {
                sql.push_str(&format!(" WHERE {f}"));
            }
            if let Some(g) = &group {
                sql.push(' ');
                sql.push_str(g);
                if let Some(h) = having {
                    sql.push_str(&format!(" HAVING {h}"));
                }
            }
            if let Some((op, t)) = set_op {
                // One column each side: the first item against a text expression.
                let first = items.first().cloned().unwrap_or_else(|| "p.name".into());
                return format!(
                    "SELECT ({first})::text FROM {from} {op} SELECT ({t})::text FROM {from} ORDER BY 1 LIMIT 8"
                );
            }
            if let Some(o) = order {
                sql.push(' ');
                sql.push_str(&o);
            }
            if let Some(l) = limit {
                sql.push(' ');
                sql.push_str(&l);
            }
            sql
        },
    )
}

// === Running a statement ===

/// What the client sees of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Refused by the gateway (SQLSTATE 42501 and a `sod:` message).
    Refused(String),
    /// Answered: each row's values as text (or NULL), the command tag, notices.
    Rows {
        rows: Vec<Vec<Option<String>>>,
        tag: Option<u64>,
        notices: Vec<String>,
    },
    /// The server failed it: SQLSTATE, message (as the client sees them), notices.
    Error {
        code: String,
        message: String,
        notices: Vec<String>,
    },
}

struct Session {
    client: tokio_postgres::Client,
    notices: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn session(h: &Harness, token: &str) -> Session {
    let (client, mut conn) = tokio_postgres::connect(
        &format!("{} password={token}", h.conninfo()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("planner connects");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notice(n)) => {
                    let _ = tx.send(format!("{} {}", n.code().code(), n.message()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .simple_query("SET statement_timeout = '3s'")
        .await
        .expect("a harmless setting");
    Session {
        client,
        notices: rx,
    }
}

/// A value as the server sent it (binary format, through the extended protocol).
struct Raw(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// Runs `sql` through the extended protocol (binary results).
async fn run_extended(s: &mut Session, sql: &str) -> Seen {
    let result = s.client.query(sql, &[]).await;
    let mut notices = Vec::new();
    while let Ok(n) = s.notices.try_recv() {
        notices.push(n);
    }
    match result {
        Ok(rows) => Seen::Rows {
            rows: rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            r.get::<_, Option<Raw>>(i)
                                .map(|v| sod_core::hex::encode(&v.0))
                        })
                        .collect()
                })
                .collect(),
            tag: Some(rows.len() as u64),
            notices,
        },
        Err(e) => seen_error(&e, notices),
    }
}

fn seen_error(e: &tokio_postgres::Error, notices: Vec<String>) -> Seen {
    match e.as_db_error() {
        Some(db) if db.code().code() == "42501" && db.message().starts_with("sod:") => {
            Seen::Refused(db.message().to_owned())
        }
        Some(db) => Seen::Error {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            notices,
        },
        None => Seen::Error {
            code: "connection".into(),
            message: e.to_string(),
            notices,
        },
    }
}

async fn run(s: &mut Session, sql: &str) -> Seen {
    let result = s.client.simple_query(sql).await;
    let mut notices = Vec::new();
    while let Ok(n) = s.notices.try_recv() {
        notices.push(n);
    }
    match result {
        Ok(messages) => {
            let mut rows = Vec::new();
            let mut tag = None;
            for m in messages {
                match m {
                    SimpleQueryMessage::Row(r) => {
                        rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    SimpleQueryMessage::CommandComplete(n) => tag = Some(n),
                    _ => {}
                }
            }
            Seen::Rows { rows, tag, notices }
        }
        Err(e) => seen_error(&e, notices),
    }
}

struct Servers {
    a: Harness,
    b: Harness,
    sa: Session,
    sb: Session,
}

impl Servers {
    /// What both sides showed, or what each showed if they differ. Every third statement
    /// (by its text) also runs through the extended protocol with binary results.
    async fn compare(&mut self, sql: &str) -> Result<Seen, (Seen, Seen)> {
        if sql.len().is_multiple_of(3) {
            let x = run_extended(&mut self.sa, sql).await;
            let y = run_extended(&mut self.sb, sql).await;
            if x != y {
                return Err((x, y));
            }
        }
        let x = run(&mut self.sa, sql).await;
        let y = run(&mut self.sb, sql).await;
        if matches!(&x, Seen::Error { code, .. } if code == "connection")
            || matches!(&y, Seen::Error { code, .. } if code == "connection")
        {
            // A session the gateway ended (it must say why): start over.
            self.reconnect().await;
        }
        if x == y { Ok(x) } else { Err((x, y)) }
    }

    async fn reconnect(&mut self) {
        self.sa = session(&self.a, &self.a.reader()).await;
        self.sb = session(&self.b, &self.b.reader()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_values_never_change_what_the_client_sees() {
    let options = || Options {
        policy: support::MASKED_POLICY.to_owned(),
        masks: MASKS.to_owned(),
        ..Options::default()
    };
    let a = Harness::with(options()).await;
    let b = Harness::with(options()).await;
    a.direct(&schema(1));
    b.direct(&schema(2));
    // The probe: the servers really differ, and the executor sees it.
    let probe = "SELECT string_agg(coalesce(email, '-'), ',' ORDER BY id) FROM people";
    assert_ne!(
        a.direct(probe),
        b.direct(probe),
        "the sensitive values differ"
    );
    let (sa, sb) = (
        session(&a, &a.reader()).await,
        session(&b, &b.reader()).await,
    );
    let mut servers = Servers { a, b, sa, sb };

    let seconds: u64 = std::env::var("SOD_NONINTERFERENCE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("SOD_NONINTERFERENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from(
                sod_core::hex::random::<4>()
                    .iter()
                    .fold(0u32, |a, b| a << 8 | u32::from(*b)),
            )
        });
    eprintln!(
        "noninterference: seed {seed}, {seconds} s (SOD_NONINTERFERENCE_SEED, SOD_NONINTERFERENCE_SECONDS)"
    );
    let mut runner = TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    let strategy = statement();
    let mut tally: BTreeMap<&str, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Fixed statements first: one per class of attack, so every run tries them.
    let fixed = [
        "SELECT p.id, generate_series(1, length(p.email)) FROM people p",
        "SELECT (p).* FROM (SELECT p FROM people p) s",
        "SELECT CASE WHEN p.ssn LIKE '1%' THEN 1 / 0 ELSE 1 END FROM people p",
        "SELECT p.id, row_number() OVER (ORDER BY p.email) FROM people p",
        "SELECT p.name, p.ssn FROM people p GROUP BY GROUPING SETS ((1), (2))",
        "SELECT p.id FROM people p ORDER BY p.score, p.id",
        "SELECT count(p.email), count(*), p.dept FROM people p GROUP BY p.dept ORDER BY 3",
        "SELECT p.id, p.email, p.ssn, p.score FROM people p ORDER BY p.id",
    ];
    let mut fixed = fixed.iter();
    loop {
        let (sql, tree) = match fixed.next() {
            Some(sql) => ((*sql).to_owned(), None),
            None if Instant::now() < deadline => {
                let tree = strategy.new_tree(&mut runner).expect("a statement");
                (tree.current(), Some(tree))
            }
            None => break,
        };
        *tally.entry("tried").or_default() += 1;
        let (x, y) = match servers.compare(&sql).await {
            Ok(seen) => {
                let kind = match seen {
                    Seen::Refused(_) => "refused",
                    Seen::Rows { .. } => "rows",
                    Seen::Error { .. } => "error",
                };
                *tally.entry(kind).or_default() += 1;
                continue;
            }
            Err(differ) => differ,
        };
        // Shrink to the smallest statement that still shows a difference.
        let mut smallest = (sql.clone(), x, y);
        if let Some(mut tree) = tree {
            while tree.simplify() {
                let candidate = tree.current();
                match servers.compare(&candidate).await {
                    Err((x, y)) => smallest = (candidate, x, y),
                    Ok(_) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        panic!(
            "masked values changed what the client sees (seed {seed}):\n  {}\nserver A: {:?}\nserver B: {:?}",
            smallest.0, smallest.1, smallest.2
        );
    }
    let tried = tally.get("tried").copied().unwrap_or(0);
    let answered =
        tally.get("rows").copied().unwrap_or(0) + tally.get("error").copied().unwrap_or(0);
    eprintln!(
        "noninterference: {tried} statements tried, {answered} answered ({} with rows, {} with a server error), {} refused; seed {seed}",
        tally.get("rows").copied().unwrap_or(0),
        tally.get("error").copied().unwrap_or(0),
        tally.get("refused").copied().unwrap_or(0),
    );
    assert!(tried >= 50, "too few statements in {seconds} s: {tried}");
    assert!(
        answered > 0,
        "no statement was answered: the test proves nothing"
    );
    servers.a.stop().await;
    servers.b.stop().await;
}
