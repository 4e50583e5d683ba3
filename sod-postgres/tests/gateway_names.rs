//! Object names as PostgreSQL resolves them: search path, schemas created on the fly, portals
//! the client declares in SQL.

mod support;

use sod_postgres::codec::frontend;
use support::{Harness, Options};
use tokio::io::AsyncWriteExt as _;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

const POLICY: &str = r#"
[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "schema", "admin"]

[[rule]]
id = "own-schema-is-read-only"
effect = "deny"
kinds = "write"
objects = "executor.*"
reason = "the executor's own schema is read-only"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_schema_on_the_search_path_is_seen() {
    let h = Harness::with(Options {
        policy: POLICY.to_owned(),
        ..Default::default()
    })
    .await;
    let c = h.client(&h.executor()).await.expect("connect");
    // Before: `orders` is public.orders, writable.
    c.execute("UPDATE orders SET amount = amount WHERE id = 1", &[])
        .await
        .expect("public.orders is writable");
    // Creating the "$user" schema puts it first on the search path: `orders` now means
    // executor.orders for this user, and the gateway must follow.
    h.direct("CREATE SCHEMA executor AUTHORIZATION executor");
    c.batch_execute("CREATE TABLE executor.orders (id int, amount numeric)")
        .await
        .expect("ddl");
    let e = c
        .execute("UPDATE orders SET amount = 0 WHERE id = 1", &[])
        .await
        .expect_err("now executor.orders");
    assert_eq!(sqlstate(&e), "42501");
    assert!(
        message(&e).contains("own-schema-is-read-only"),
        "{}",
        message(&e)
    );
    let e = c
        .batch_execute("DELETE FROM orders")
        .await
        .expect_err("simple protocol too");
    assert!(
        message(&e).contains("own-schema-is-read-only"),
        "{}",
        message(&e)
    );
    // Qualified names still work as written.
    c.execute("UPDATE public.orders SET amount = amount WHERE id = 1", &[])
        .await
        .expect("qualified");
    h.stop().await;
}

const PATH_POLICY: &str = r#"
[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "schema", "admin"]

[[rule]]
id = "other-is-read-only"
effect = "deny"
kinds = "write"
objects = "other.*"
reason = "schema other is read-only"
"#;

/// The search path as the server has it, whatever changed it: `DELETE FROM orders` is
/// public.orders (allowed) or other.orders (refused by `other-is-read-only`) exactly when the
/// server would delete from that table. Changes rolled back, local to a transaction, undone
/// by a savepoint, or undone by a failed batch are followed; what the gateway cannot ask about
/// (a later statement of the same batch) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_path_is_followed_as_the_server_has_it() {
    let h = Harness::with(Options {
        policy: PATH_POLICY.to_owned(),
        ..Default::default()
    })
    .await;
    h.direct(
        "CREATE SCHEMA other; CREATE TABLE other.orders (id int); \
         GRANT USAGE ON SCHEMA other TO executor; GRANT ALL ON other.orders TO executor",
    );
    let c = h.client(&h.executor()).await.expect("connect");
    const DELETE: &str = "DELETE FROM orders WHERE id = -1";
    async fn target(c: &tokio_postgres::Client) -> &'static str {
        match c.execute(DELETE, &[]).await {
            Ok(_) => "public",
            Err(e) if message(&e).contains("other-is-read-only") => "other",
            Err(e) => panic!("{}", message(&e)),
        }
    }
    assert_eq!(target(&c).await, "public");

    // In one batch the SET changes what the DELETE refers to before the server can say.
    let e = c
        .batch_execute("SET search_path = other, public; DELETE FROM orders WHERE id = -1")
        .await
        .expect_err("refused");
    assert!(message(&e).contains("qualify"), "{}", message(&e));

    let steps: &[(&[&str], &str)] = &[
        (&["SET search_path = other, public"], "other"),
        (&["RESET search_path"], "public"),
        (
            &["SELECT set_config('search_path', 'other, public', false)"],
            "other",
        ),
        (&["SET search_path TO DEFAULT"], "public"),
        // Rolled back with its transaction.
        (
            &["BEGIN", "SET search_path = other, public", "ROLLBACK"],
            "public",
        ),
        // Local to its transaction.
        (
            &["BEGIN", "SET LOCAL search_path = other, public", "COMMIT"],
            "public",
        ),
        (
            &[
                "BEGIN",
                "SELECT set_config('search_path', 'other, public', true)",
                "COMMIT",
            ],
            "public",
        ),
        // Undone by a rollback to a savepoint.
        (
            &[
                "BEGIN",
                "SAVEPOINT a",
                "SET search_path = other, public",
                "ROLLBACK TO a",
                "COMMIT",
            ],
            "public",
        ),
        // Committed.
        (
            &["BEGIN", "SET search_path = other, public", "COMMIT"],
            "other",
        ),
        (&["RESET search_path"], "public"),
    ];
    for (statements, expected) in steps {
        for sql in *statements {
            c.batch_execute(sql).await.expect(sql);
        }
        assert_eq!(target(&c).await, *expected, "after {statements:?}");
    }
    // Inside the transaction, the local path holds.
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("SET LOCAL search_path = other, public")
        .await
        .expect("set local");
    assert_eq!(target(&c).await, "other");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(target(&c).await, "public");
    // pg_dump: the path emptied, then a transaction whose first statement must be SET
    // TRANSACTION (the gateway must not ask the server anything inside it before that).
    c.batch_execute("SELECT pg_catalog.set_config('search_path', '', false)")
        .await
        .expect("set_config");
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .expect("SET TRANSACTION comes first in its transaction");
    c.batch_execute("LOCK TABLE public.orders IN ACCESS SHARE MODE")
        .await
        .expect("lock");
    c.batch_execute("COMMIT").await.expect("commit");
    c.batch_execute("RESET search_path").await.expect("reset");
    assert_eq!(target(&c).await, "public");
    // A batch that fails after its SET is rolled back, SET included.
    c.batch_execute("SET search_path = other, public; SELECT 1/0")
        .await
        .expect_err("division by zero");
    assert_eq!(target(&c).await, "public");

    // A path that puts a schema ahead of pg_catalog could shadow built-ins: the next
    // statements are refused until it is set back.
    c.batch_execute("SET search_path = other, pg_catalog, public")
        .await
        .expect("an admin may set it");
    let e = c.execute("SELECT 1", &[]).await.expect_err("refused");
    assert!(
        message(&e).contains("ahead of pg_catalog"),
        "{}",
        message(&e)
    );
    c.batch_execute("RESET search_path").await.expect("reset");
    c.execute("SELECT 1", &[]).await.expect("back to normal");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_declared_in_sql_is_not_a_portal_the_gateway_analysed() {
    let h = Harness::start().await;
    let c = h.client(&h.reader()).await.expect("connect");
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM orders")
        .await
        .expect("declare");
    // FETCH in SQL is analysed like any statement.
    let rows = c.simple_query("FETCH 2 FROM c").await.expect("fetch");
    assert!(rows.len() >= 2);
    c.batch_execute("COMMIT").await.expect("commit");

    // A WITH HOLD cursor outlives its transaction. A protocol Execute naming it is not a portal
    // the gateway bound (and analysed), so it is refused, like a portal that does not exist.
    let mut s = support::raw_session(&h, &h.reader()).await;
    let mut out = bytes::BytesMut::new();
    frontend::query(
        &mut out,
        "DECLARE held CURSOR WITH HOLD FOR SELECT id FROM orders",
    )
    .expect("query");
    frontend::execute(&mut out, "held", 0).expect("execute");
    frontend::sync(&mut out);
    frontend::terminate(&mut out);
    s.write_all(&out).await.expect("write");
    let frames = support::read_all(&mut s).await;
    assert_eq!(support::error_codes(&frames), ["34000"]);
    assert!(
        !frames
            .iter()
            .any(|f| f.tag() == sod_postgres::codec::tag::DATA_ROW),
        "the cursor's rows were returned"
    );
    h.stop().await;
}

/// Path changes hidden inside other statements: `set_config` among other expressions, in a
/// function the analyzer does not know, in a cursor's query (run by `FETCH`), in a prepared
/// statement (run by `EXECUTE`), and two exchanges pipelined before any answer. The gateway
/// must resolve `orders` to the table the server deletes from, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_search_path_changes_are_followed() {
    let h = Harness::with(Options {
        policy: PATH_POLICY.to_owned(),
        ..Default::default()
    })
    .await;
    h.direct(
        "CREATE SCHEMA other; CREATE TABLE other.orders (id int); \
         GRANT USAGE ON SCHEMA other TO executor; GRANT ALL ON other.orders TO executor; \
         CREATE FUNCTION public.go_other() RETURNS text LANGUAGE sql \
         AS $$ SELECT pg_catalog.set_config('search_path', 'other, public', false) $$; \
         GRANT EXECUTE ON FUNCTION public.go_other() TO executor",
    );
    let c = h.client(&h.executor()).await.expect("connect");
    const DELETE: &str = "DELETE FROM orders WHERE id = -1";
    async fn target(c: &tokio_postgres::Client) -> &'static str {
        match c.execute(DELETE, &[]).await {
            Ok(_) => "public",
            Err(e) if message(&e).contains("other-is-read-only") => "other",
            Err(e) => panic!("{}", message(&e)),
        }
    }
    let hidden: &[&[&str]] = &[
        &["SELECT 1, pg_catalog.upper('x'), set_config('search_path', 'other, public', false), 2"],
        &["SELECT public.go_other()"],
        &[
            "BEGIN",
            "DECLARE c CURSOR FOR SELECT set_config('search_path', 'other, public', false)",
            "FETCH 1 FROM c",
            "COMMIT",
        ],
        &[
            "PREPARE p AS SELECT set_config('search_path', 'other, public', false)",
            "EXECUTE p",
            "DEALLOCATE p",
        ],
    ];
    for statements in hidden {
        assert_eq!(target(&c).await, "public", "before {statements:?}");
        for sql in *statements {
            c.batch_execute(sql).await.expect(sql);
        }
        assert_eq!(target(&c).await, "other", "after {statements:?}");
        c.batch_execute("RESET search_path").await.expect("reset");
    }
    // Inside the transaction, before it ends: the FETCH itself ran the cursor's set_config.
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("DECLARE d CURSOR FOR SELECT set_config('search_path', 'other, public', true)")
        .await
        .expect("declare");
    assert_eq!(target(&c).await, "public", "declared, not fetched");
    c.batch_execute("FETCH 1 FROM d").await.expect("fetch");
    assert_eq!(target(&c).await, "other", "fetched");
    c.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(target(&c).await, "public", "local to the transaction");
    // Pipelined: both statements prepared (the DELETE while the path was the default; the
    // server analyses it again once the path changed), then both executions sent before the
    // first is answered, each with its Sync: the DELETE is judged along the path the SET left.
    let set = c
        .prepare("SET search_path = other, public")
        .await
        .expect("prepare");
    let delete = c.prepare(DELETE).await.expect("prepare");
    let (set, delete) = tokio::join!(c.execute(&set, &[]), c.execute(&delete, &[]));
    set.expect("set");
    let e = delete.expect_err("other.orders is read-only");
    assert!(
        message(&e).contains("other-is-read-only"),
        "{}",
        message(&e)
    );
    c.batch_execute("RESET search_path").await.expect("reset");
    assert_eq!(target(&c).await, "public");
    h.stop().await;
}

/// In one extended-protocol pipeline (no `Sync` between), a statement after a path change
/// cannot be resolved: the server cannot be asked until the `Sync`. Refused, naming the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_name_after_a_path_change_in_one_pipeline_is_refused() {
    use sod_postgres::codec::tag;
    let h = Harness::with(Options {
        policy: PATH_POLICY.to_owned(),
        ..Default::default()
    })
    .await;
    let mut s = support::raw_session(&h, &h.executor()).await;
    let mut out = bytes::BytesMut::new();
    for sql in [
        "SET search_path = pg_catalog, public",
        "DELETE FROM orders WHERE id = -1",
    ] {
        frontend::parse(&mut out, "", sql, &[]).expect("parse");
        frontend::bind(&mut out, "", "", &[], &[], &[]).expect("bind");
        frontend::execute(&mut out, "", 0).expect("execute");
    }
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert_eq!(support::error_codes(&frames), ["42501"]);
    let text: String = frames
        .iter()
        .filter(|f| f.tag() == tag::ERROR_RESPONSE)
        .map(|f| String::from_utf8_lossy(f.body()).into_owned())
        .collect();
    assert!(text.contains("sod-name-resolution"), "{text}");
    // After the Sync the path is asked for, and the same DELETE passes.
    frontend::query(&mut out, "DELETE FROM orders WHERE id = -1").expect("query");
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert!(support::error_codes(&frames).is_empty());
    h.stop().await;
}

/// psycopg 3's named cursors: `DECLARE` in SQL, then a protocol `Describe` of the portal by the
/// cursor's name. The description (names and types, no rows) is the server's; the gateway's
/// own portals stay out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_declared_in_sql_can_be_described_and_closed_as_a_portal() {
    use sod_postgres::codec::{Target as DescribeTarget, tag};
    let h = Harness::start().await;
    let mut s = support::raw_session(&h, &h.reader()).await;
    let mut out = bytes::BytesMut::new();
    frontend::query(
        &mut out,
        "BEGIN; DECLARE \"cur1\" CURSOR FOR SELECT id, amount FROM orders",
    )
    .expect("query");
    s.write_all(&out.split()).await.expect("write");
    support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    frontend::describe(&mut out, DescribeTarget::Portal, "cur1").expect("describe");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert!(support::error_codes(&frames).is_empty());
    assert_eq!(frames[0].tag(), tag::ROW_DESCRIPTION);
    // The gateway's own names are not the client's to describe.
    frontend::describe(&mut out, DescribeTarget::Portal, "sod:x").expect("describe");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert_eq!(support::error_codes(&frames), ["34000"]);
    // Closed as a portal, the cursor is gone.
    frontend::query(&mut out, "ROLLBACK; BEGIN; DECLARE c2 CURSOR FOR SELECT 1").expect("q");
    s.write_all(&out.split()).await.expect("write");
    support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    frontend::close(&mut out, DescribeTarget::Portal, "c2").expect("close");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert!(support::error_codes(&frames).is_empty());
    frontend::query(&mut out, "FETCH 1 FROM c2").expect("fetch");
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    assert_eq!(support::error_codes(&frames), ["34000"]);
    h.stop().await;
}

/// The gateway answers a `Bind` itself (it binds upstream only once `Execute` is allowed) and
/// delivers that answer together with the next response from the server; with nothing else
/// outstanding, a client's `Flush` must still get it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_answers_arrive_on_flush() {
    use sod_postgres::codec::{Target as DescribeTarget, tag};
    let h = Harness::start().await;
    let mut s = support::raw_session(&h, &h.reader()).await;
    let mut out = bytes::BytesMut::new();
    frontend::parse(&mut out, "s", "SELECT $1::int AS n", &[]).expect("parse");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    support::read_until(&mut s, tag::READY_FOR_QUERY).await;

    // Bind alone: nothing goes upstream, the answer is the gateway's own.
    frontend::bind(&mut out, "", "s", &[0], &[Some(b"7")], &[0]).expect("bind");
    frontend::flush(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::BIND_COMPLETE).await;
    assert_eq!(frames.len(), 1);

    // Closing a portal the server never saw: answered by the gateway too.
    frontend::bind(&mut out, "p", "s", &[0], &[Some(b"8")], &[0]).expect("bind");
    frontend::close(&mut out, DescribeTarget::Portal, "p").expect("close");
    frontend::flush(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::CLOSE_COMPLETE).await;
    let tags: Vec<u8> = frames.iter().map(|f| f.tag()).collect();
    assert_eq!(tags, [tag::BIND_COMPLETE, tag::CLOSE_COMPLETE]);

    // The unnamed portal still runs, its answers in order behind the server's.
    frontend::describe(&mut out, DescribeTarget::Portal, "").expect("describe");
    frontend::execute(&mut out, "", 0).expect("execute");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    let tags: Vec<u8> = frames.iter().map(|f| f.tag()).collect();
    assert_eq!(
        tags,
        [
            tag::ROW_DESCRIPTION,
            tag::DATA_ROW,
            tag::COMMAND_COMPLETE,
            tag::READY_FOR_QUERY
        ]
    );

    // Flush asks for everything so far, even with a later message still unanswered: the
    // BindComplete must not wait for the slow query behind it.
    let mut s = support::raw_session(&h, &h.executor()).await;
    frontend::parse(&mut out, "s", "SELECT $1::int AS n", &[]).expect("parse");
    frontend::sync(&mut out);
    s.write_all(&out.split()).await.expect("write");
    support::read_until(&mut s, tag::READY_FOR_QUERY).await;
    frontend::bind(&mut out, "", "s", &[0], &[Some(b"9")], &[0]).expect("bind");
    frontend::flush(&mut out);
    frontend::query(&mut out, "SELECT pg_sleep(1)").expect("query");
    s.write_all(&out.split()).await.expect("write");
    let frames = support::read_until(&mut s, tag::BIND_COMPLETE).await;
    assert_eq!(frames.len(), 1);
    h.stop().await;
}

/// The gateway forgets a SQL prepared statement only once the server has: a `DEALLOCATE` that
/// failed (here: in an aborted transaction) must not let the name be re-prepared in the
/// gateway's books while the server keeps running the old statement under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deallocate_does_not_make_the_gateway_forget_a_statement() {
    let policy = format!(
        "{POLICY}\n[[rule]]\nid = \"no-executing-42\"\neffect = \"deny\"\ntext = '(?is)^EXECUTE.*42'\nreason = \"test rule\"\n"
    );
    let h = Harness::with(Options {
        policy,
        ..Default::default()
    })
    .await;
    let c = h.client(&h.executor()).await.expect("connect");
    c.batch_execute("PREPARE x AS SELECT 1")
        .await
        .expect("prepare");
    let e = c
        .batch_execute("BEGIN; SELECT 1/0; DEALLOCATE x")
        .await
        .expect_err("division by zero");
    assert_eq!(sqlstate(&e), "22012");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    // The server still has x: preparing it again fails, in the gateway as in the server.
    let e = c
        .batch_execute("PREPARE x AS SELECT 42")
        .await
        .expect_err("x still exists");
    assert_eq!(sqlstate(&e), "42P05");
    // So EXECUTE x is judged as what x is (SELECT 1), not as SELECT 42.
    let rows = c.simple_query("EXECUTE x").await.expect("execute x");
    let values: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["1"]);

    // A DEALLOCATE that succeeds frees the name on both sides.
    c.batch_execute("DEALLOCATE x").await.expect("deallocate");
    c.batch_execute("PREPARE x AS SELECT 42")
        .await
        .expect("prepare again");
    let e = c.simple_query("EXECUTE x").await.expect_err("denied");
    assert_eq!(sqlstate(&e), "42501");
    assert!(message(&e).contains("no-executing-42"), "{}", message(&e));
    h.stop().await;
}

/// A refused statement changes nothing in the gateway's books: a refused `PREPARE` leaves the
/// name free, a refused `DEALLOCATE` keeps the statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_statements_change_no_bookkeeping() {
    let h = Harness::start().await;
    let c = h.client(&h.reader()).await.expect("connect");
    let e = c
        .batch_execute("PREPARE p AS DELETE FROM orders")
        .await
        .expect_err("a write");
    assert_eq!(sqlstate(&e), "42501");
    c.batch_execute("PREPARE p AS SELECT 7")
        .await
        .expect("the name is free");
    let rows = c.simple_query("EXECUTE p").await.expect("execute p");
    assert!(
        rows.iter().any(|m| matches!(m,
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("7"))),
        "{rows:?}"
    );
    h.stop().await;
}
