//! Masking through the gateway with a real server and tokio-postgres (part 2 of the gateway
//! starts here): a masked session never sees the server's error text, which PostgreSQL fills
//! with the very values masking hides.

mod support;

use std::time::Duration;

use support::{Harness, Options};

const MASKS: &str = r#"
[[profile]]
name = "planner"

[[profile.rule]]
column = "*.customers.email"
strategy = "redact"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_masked_statements_do_not_quote_values() {
    let h = Harness::with(Options {
        policy: support::MASKED_POLICY.to_owned(),
        masks: MASKS.to_owned(),
        ..Options::default()
    })
    .await;
    let leak = "SELECT email::int FROM customers ORDER BY id";
    // The executor (no mask) sees PostgreSQL's own message, value included: the probe works.
    let executor = h.client(&h.executor()).await.expect("executor connects");
    let err = executor.query(leak, &[]).await.expect_err("not an integer");
    let db = err.as_db_error().expect("a server error");
    assert!(db.message().contains("alice@example.com"), "{db:?}");

    // The planner's session is masked, and a masked column is opaque: the cast is refused
    // before anything runs, naming the column and where it stands.
    let planner = h.client(&h.reader()).await.expect("planner connects");
    let err = planner.query(leak, &[]).await.expect_err("refused");
    let db = err.as_db_error().expect("a refusal");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(
        db.message().contains("sod-masked-columns")
            && db.message().contains("public.customers.email")
            && db.message().contains("a cast to int4"),
        "{db:?}"
    );
    // A statement that fails on its own (no masked column in it): same SQLSTATE, none of the
    // server's words.
    let err = planner
        .query("SELECT 1 / (id - id) FROM customers", &[])
        .await
        .expect_err("fails");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "22012", "{db:?}");
    let all = format!("{db:?}");
    assert!(
        !all.contains("alice") && !all.contains("example.com"),
        "{all}"
    );
    assert!(db.message().contains("withheld"), "{db:?}");
    assert!(db.detail().is_none() && db.hint().is_none(), "{db:?}");
    // The session goes on, masked.
    let rows = planner
        .query("SELECT email FROM customers ORDER BY id", &[])
        .await
        .expect("reads");
    // tokio-postgres reads binary results; a masked binary value becomes NULL.
    let first: Option<String> = rows[0].get(0);
    assert!(
        first.as_deref().is_none_or(|v| !v.contains("alice")),
        "{first:?}"
    );
    h.stop().await;
}

const PROVENANCE_MASKS: &str = r#"
[[profile]]
name = "planner"

[[profile.rule]]
column = "*.customers.email"
strategy = "redact"

[[profile.rule]]
column = "*.people.email"
strategy = "redact"
"#;

/// Rows as psql prints them unaligned: one line per row, `|` between values.
fn rows(h: &Harness, token: &str, sql: &str) -> Vec<String> {
    let out = h.psql(token, sql);
    assert!(out.status.success(), "{sql}: {}", support::stderr(&out));
    support::stdout(&out).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_are_masked_by_where_they_come_from() {
    let h = Harness::with(Options {
        policy: support::MASKED_POLICY.to_owned(),
        masks: PROVENANCE_MASKS.to_owned(),
        ..Options::default()
    })
    .await;
    h.direct(
        "CREATE VIEW public.contacts AS SELECT id, email AS address FROM public.customers;
         CREATE VIEW public.contacts_again AS SELECT * FROM public.contacts;
         CREATE VIEW public.whole_rows AS SELECT c.id, row_to_json(c)::text AS j FROM public.customers c;
         CREATE TABLE public.people (id int, email text) PARTITION BY RANGE (id);
         CREATE TABLE public.people_low PARTITION OF public.people FOR VALUES FROM (0) TO (100);
         INSERT INTO public.people VALUES (1, 'carol@example.net');
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO executor;
         ANALYZE public.customers;",
    );
    let planner = h.reader();
    // Plain columns: only the sensitive one is masked, whatever its alias.
    assert_eq!(
        rows(
            &h,
            &planner,
            "SELECT id, name, email AS e FROM customers ORDER BY id"
        ),
        ["1|Alice|****", "2|Bob|****"]
    );
    // A table's OID (`tableoid`, how pg_dump identifies catalog rows) is no table data; a
    // sensitive column renamed `tableoid` in a subquery stays masked.
    let oid = h.direct("SELECT 'public.customers'::regclass::oid");
    assert_eq!(
        rows(
            &h,
            &planner,
            "SELECT tableoid, id FROM customers WHERE id = 1"
        ),
        [format!("{}|1", oid.trim())]
    );
    assert_eq!(
        rows(
            &h,
            &planner,
            "SELECT tableoid FROM (SELECT email AS tableoid FROM customers WHERE id = 1) s"
        ),
        ["****"]
    );
    // Through a subquery and a CTE the server still attributes the column to the table.
    assert_eq!(
        rows(
            &h,
            &planner,
            "WITH c AS (SELECT * FROM customers) SELECT x.email FROM (SELECT email FROM c) x"
        ),
        ["****", "****"]
    );
    // Views, views over views, whole-row references inside a view.
    for sql in [
        "SELECT address FROM contacts",
        "SELECT address FROM contacts_again",
        "SELECT j FROM whole_rows",
    ] {
        assert_eq!(rows(&h, &planner, sql), ["****", "****"], "{sql}");
    }
    // A view's columns are traced only to everything the view reads, so ordering by any of
    // them could order by the sensitive one: refused.
    // The refusal names what the statement wrote and the masked column behind it.
    let out = h.psql(&planner, "SELECT address FROM contacts ORDER BY id");
    let err = support::stderr(&out);
    assert!(err.contains("sod-masked-columns"), "{err}");
    assert!(
        err.contains("contacts.id (masked column public.customers.email) is used in ORDER BY"),
        "{err}"
    );
    for (sql, says) in [
        (
            "SELECT id FROM customers c WHERE c::text LIKE '%alice%'",
            "a whole row of customers (with masked column public.customers.email) is used in WHERE",
        ),
        (
            "SELECT email, count(*) FROM customers GROUP BY email",
            "select the masked column without grouping by it",
        ),
    ] {
        let err = support::stderr(&h.psql(&planner, sql));
        assert!(err.contains(says), "{sql}: {err}");
    }
    // A partition is masked like its parent.
    for sql in ["SELECT email FROM people", "SELECT email FROM people_low"] {
        assert_eq!(rows(&h, &planner, sql), ["****"], "{sql}");
    }
    // Computed columns have no table: their lineage says what they read. Computing with a
    // masked column is refused; computing with plain ones passes, unmasked.
    assert_eq!(
        rows(
            &h,
            &planner,
            "SELECT upper(name), count(*) OVER (), count(email) OVER () FROM customers ORDER BY id"
        ),
        ["ALICE|2|2", "BOB|2|2"]
    );
    for computed in [
        "SELECT lower(email) FROM customers",
        "SELECT email || '' FROM customers",
    ] {
        let out = h.psql(&planner, computed);
        assert!(
            !out.status.success() && support::stderr(&out).contains("sod-masked-columns"),
            "{computed}: {}",
            support::stderr(&out)
        );
    }
    // PostgreSQL's own views show other tables' values (pg_stats: histogram bounds).
    let stats = "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' AND attname = 'email'";
    assert!(
        rows(&h, &h.executor(), stats)[0].contains("alice@example.com"),
        "the probe works"
    );
    // Every column of the view is masked: a `name` shows `****`, an `anyarray` cannot hold
    // `****` and is NULL.
    let all = rows(
        &h,
        &planner,
        "SELECT attname, histogram_bounds FROM pg_stats",
    );
    assert!(
        !all.is_empty() && all.iter().all(|v| v == "****|"),
        "{all:?}"
    );
    // Filtering on a column masking cannot trace is refused: the rows would tell.
    let out = h.psql(&planner, stats);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("masking cannot trace"),
        "{}",
        support::stderr(&out)
    );
    // The executor sees everything.
    assert_eq!(
        rows(&h, &h.executor(), "SELECT email FROM people_low"),
        ["carol@example.net"]
    );

    // Binary results (tokio-postgres): plain columns keep their values, masked strings are
    // their masked text (a string's binary form is its text).
    let client = h.client(&planner).await.expect("planner connects");
    let row = client
        .query_one("SELECT id, name, email FROM customers WHERE id = 1", &[])
        .await
        .expect("reads");
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, &str>(1), "Alice");
    assert_eq!(row.get::<_, Option<&str>>(2), Some("****"));

    // A table created behind the gateway's back is unknown to its catalog: masked, until the
    // catalog is reloaded (at most once a second for such results). A masked value of a type
    // that cannot hold `****` is NULL (psql shows nothing).
    h.direct(
        "CREATE TABLE public.later (id int, note text);
         INSERT INTO public.later VALUES (1, 'fine');
         GRANT SELECT ON public.later TO executor;",
    );
    assert_eq!(rows(&h, &planner, "SELECT id, note FROM later"), ["|****"]);
    sod_testkit::poll_until(
        Duration::from_secs(15),
        "the catalog to learn of `later`",
        || (rows(&h, &planner, "SELECT id, note FROM later") == ["1|fine"]).then_some(()),
    );

    // A long-lived masked session follows DDL made through the gateway: after a rename swap,
    // `customers` is another table (another OID) and is masked as `customers` at once.
    h.direct(
        "CREATE TABLE public.customers_new (id int, email text);
         INSERT INTO public.customers_new VALUES (9, 'dave@example.com');
         ALTER TABLE public.customers_new OWNER TO executor;
         GRANT ALL ON ALL TABLES IN SCHEMA public TO executor;",
    );
    let client = h.client(&planner).await.expect("planner connects");
    // Not sensitive under its name (once the catalog knows the table).
    sod_testkit::poll_until_async(Duration::from_secs(15), "customers_new to be known", || {
        let client = &client;
        async move {
            let v: Option<String> = client
                .query_one("SELECT email FROM customers_new", &[])
                .await
                .expect("reads")
                .get(0);
            (v.as_deref() == Some("dave@example.com")).then_some(())
        }
    })
    .await;
    let out = h.psql(
        &h.executor(),
        "ALTER TABLE customers RENAME TO customers_old; ALTER TABLE customers_new RENAME TO customers;",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let after: Option<String> = client
        .query_one("SELECT email FROM customers", &[])
        .await
        .expect("reads")
        .get(0);
    assert_eq!(
        after.as_deref(),
        Some("****"),
        "masked under its new name in the same session"
    );
    h.stop().await;
}

/// A fastpath function call's result has no description and no lineage: a masked session gets
/// NULL, whatever the function returned (here a policy that lets the planner make such calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastpath_results_of_masked_sessions_are_null() {
    use bytes::BytesMut;
    use sod_core::OperationKind::{Connect, Read, Unknown};
    use sod_postgres::codec::{BackendMessage, frontend, tag};
    use tokio::io::AsyncWriteExt as _;

    let policy = support::MASKED_POLICY.replace(
        "kinds = [\"connect\", \"read\"]\nmask",
        "kinds = [\"connect\", \"read\", \"unknown\"]\nmask",
    );
    let policy = policy
        .replace("kinds = \"unknown\"", "kinds = \"admin\"")
        .replace(
            "kinds = [\"connect\", \"read\", \"write\", \"schema\"]",
            "kinds = [\"connect\", \"read\", \"unknown\"]",
        );
    let h = Harness::with(Options {
        policy,
        masks: MASKS.to_owned(),
        ..Options::default()
    })
    .await;
    let oid: u32 = h
        .direct("SELECT 'pg_catalog.reverse(text)'::regprocedure::oid")
        .trim()
        .parse()
        .expect("an oid");
    let call = |token: String| {
        let h = &h;
        async move {
            let mut s = support::raw_session(h, &token).await;
            let mut out = BytesMut::new();
            frontend::function_call(&mut out, oid, &[], &[Some(&b"secret-arg"[..])], 0)
                .expect("encode");
            s.write_all(&out).await.expect("write");
            let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
            frames
                .iter()
                .find_map(|f| match f.parse() {
                    Ok(BackendMessage::FunctionCallResponse(v)) => Some(v.map(<[u8]>::to_vec)),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    let errors: Vec<String> = frames
                        .iter()
                        .filter_map(|f| match f.parse() {
                            Ok(BackendMessage::ErrorResponse(e)) => {
                                Some(format!("{:?}", e.message()))
                            }
                            _ => None,
                        })
                        .collect();
                    panic!("no function result: {errors:?}")
                })
        }
    };
    // The probe: unmasked, the result is the function's.
    assert_eq!(
        call(h.executor()).await.as_deref(),
        Some(&b"gra-terces"[..])
    );
    assert_eq!(call(h.planner(&[Connect, Read, Unknown])).await, None);
    h.stop().await;
}

/// Outputs that disagree with the server's description are withheld, never masked by position:
/// a column added behind the gateway's back makes `SELECT *` one column longer than the
/// catalog snapshot says, until the snapshot is reloaded (which the disagreement itself asks
/// for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_the_analysis_cannot_place_are_withheld_until_the_catalog_knows() {
    let h = Harness::with(Options {
        policy: support::MASKED_POLICY.to_owned(),
        masks: MASKS.to_owned(),
        ..Options::default()
    })
    .await;
    let planner = h.reader();
    assert_eq!(
        rows(&h, &planner, "SELECT * FROM customers ORDER BY id"),
        ["1|Alice|****", "2|Bob|****"]
    );
    h.direct("ALTER TABLE public.customers ADD COLUMN note text DEFAULT 'hi'");
    let out = h.psql(&planner, "SELECT * FROM customers ORDER BY id");
    let err = support::stderr(&out);
    assert!(
        !out.status.success() && err.contains("withheld") && err.contains("4 column(s)"),
        "{err}{}",
        support::stdout(&out)
    );
    assert!(
        !support::stdout(&out).contains("alice"),
        "nothing of the rows"
    );
    sod_testkit::poll_until(
        Duration::from_secs(15),
        "the catalog to learn of the column",
        || {
            (rows_quiet(&h, &planner, "SELECT * FROM customers ORDER BY id")
                == ["1|Alice|****|hi", "2|Bob|****|hi"])
            .then_some(())
        },
    );
    h.stop().await;
}

/// Rows as psql prints them, or nothing when the statement fails.
fn rows_quiet(h: &Harness, token: &str, sql: &str) -> Vec<String> {
    let out = h.psql(token, sql);
    if !out.status.success() {
        return Vec::new();
    }
    support::stdout(&out).lines().map(str::to_owned).collect()
}
