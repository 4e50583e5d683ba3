//! The gateway with tokio-postgres (simple and extended protocol, prepared statements, binary
//! results, COPY, cancel) and transaction semantics around refusals.

mod support;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _, TryStreamExt as _};
use support::Harness;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_extended_prepared_and_binary() {
    let h = Harness::start().await;
    let c = h.client(&h.reader()).await.expect("planner connects");
    // Simple protocol.
    let rows = c
        .simple_query("SELECT name FROM customers ORDER BY id")
        .await
        .expect("simple");
    let names: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Alice", "Bob"]);
    // Extended protocol with parameters and binary results (tokio-postgres asks for binary).
    let row = c
        .query_one("SELECT id, amount, name FROM orders JOIN customers ON customers.id = orders.customer_id WHERE orders.id = $1", &[&3i32])
        .await;
    // `id` is ambiguous in that query: the server's own error comes through unchanged.
    assert_eq!(sqlstate(&row.expect_err("ambiguous")), "42702");
    let row = c
        .query_one("SELECT o.id, o.amount::float8, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1", &[&3i32])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, f64>(1), 30.0);
    assert_eq!(row.get::<_, &str>(2), "Bob");
    // A prepared statement, executed many times with different parameters.
    let stmt = c
        .prepare("SELECT amount::int8 FROM orders WHERE id = $1")
        .await
        .expect("prepare");
    for id in 1..=10i32 {
        let r = c.query_one(&stmt, &[&id]).await.expect("execute");
        assert_eq!(r.get::<_, i64>(0), i64::from(id) * 10);
    }
    // Refused in the extended protocol: the session stays usable afterwards.
    let e = c
        .execute("DELETE FROM orders WHERE id = $1", &[&1i32])
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert!(message(&e).contains("capability"), "{}", message(&e));
    let r = c.query_one(&stmt, &[&2i32]).await.expect("still usable");
    assert_eq!(r.get::<_, i64>(0), 20);
    assert_eq!(h.direct("SELECT count(*) FROM orders").trim(), "20");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_writes_copies_and_uses_transactions() {
    let h = Harness::start().await;
    let c = h.client(&h.executor()).await.expect("executor connects");
    c.execute("INSERT INTO orders VALUES ($1, 1, 5)", &[&100i32])
        .await
        .expect("insert");
    assert_eq!(
        h.direct("SELECT amount FROM orders WHERE id = 100").trim(),
        "5"
    );

    // COPY FROM STDIN.
    let sink = c
        .copy_in("COPY orders (id, customer_id, amount) FROM STDIN")
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"200\t2\t1.5\n201\t1\t2.5\n"))
        .await
        .expect("data");
    let n = sink.as_mut().finish().await.expect("copy done");
    assert_eq!(n, 2);
    // COPY TO STDOUT.
    let out = c
        .copy_out("COPY (SELECT id FROM orders WHERE id >= 200 ORDER BY id) TO STDOUT")
        .await
        .expect("copy out");
    let chunks: Vec<bytes::Bytes> = Box::pin(out).try_collect().await.expect("copy data");
    assert_eq!(chunks.concat(), b"200\n201\n");

    // A transaction that commits.
    c.batch_execute("BEGIN; UPDATE orders SET amount = 1 WHERE id = 100; COMMIT")
        .await
        .expect("tx");
    assert_eq!(
        h.direct("SELECT amount FROM orders WHERE id = 100").trim(),
        "1"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_inside_a_transaction_fails_it_like_postgres() {
    let policy = format!(
        "{}\n[[rule]]\nid = \"no-customer-deletes\"\neffect = \"deny\"\nkinds = \"write\"\ntext = \"(?i)^delete from public\\\\.customers\"\nreason = \"customers are never deleted\"\n",
        support::POLICY
    );
    let h = Harness::with(support::Options {
        policy,
        ..Default::default()
    })
    .await;
    let c = h.client(&h.executor()).await.expect("executor connects");
    c.batch_execute("BEGIN").await.expect("begin");
    c.execute("INSERT INTO orders VALUES (300, 1, 1)", &[])
        .await
        .expect("insert");
    let e = c
        .batch_execute("DELETE FROM public.customers WHERE id = 2")
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&e), "42501");
    assert!(
        message(&e).contains("no-customer-deletes"),
        "{}",
        message(&e)
    );
    // Like any error, it aborted the transaction: PostgreSQL itself says so.
    let e = c.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(sqlstate(&e), "25P02", "{e}");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE id = 300")
            .trim(),
        "0"
    );
    assert_eq!(h.direct("SELECT count(*) FROM customers").trim(), "2");
    // Outside a transaction, a refusal in a simple-query batch forwards nothing of it.
    let e = c
        .batch_execute(
            "INSERT INTO orders VALUES (301, 1, 1); DELETE FROM public.customers WHERE id = 2",
        )
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE id = 301")
            .trim(),
        "0"
    );
    // And in the extended protocol, inside a transaction.
    c.batch_execute("BEGIN").await.expect("begin");
    c.execute("INSERT INTO orders VALUES ($1, 1, 1)", &[&302i32])
        .await
        .expect("insert");
    let e = c
        .execute("DELETE FROM public.customers WHERE id = $1", &[&2i32])
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&e), "42501");
    let e = c.query("SELECT 1", &[]).await.expect_err("aborted");
    assert_eq!(sqlstate(&e), "25P02");
    c.batch_execute("COMMIT")
        .await
        .expect("commit of a failed transaction rolls back");
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE id = 302")
            .trim(),
        "0"
    );
    // The session is fine afterwards.
    c.execute("INSERT INTO orders VALUES (303, 1, 1)", &[])
        .await
        .expect("insert");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_reach_the_right_backend_without_revealing_its_key() {
    let h = Harness::start().await;
    let c = h.client(&h.executor()).await.expect("connect");
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let token = c.cancel_token();
    let sleeper = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(30)").await });
    // Wait until the server is running the sleep, then cancel through the gateway.
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active' AND query LIKE '%pg_sleep%'"
    );
    sod_testkit::poll_until_async(Duration::from_secs(10), "the sleep to start", || {
        let out = h.direct(&running);
        async move { (out.trim() == "1").then_some(()) }
    })
    .await;
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("cancelled in time")
        .expect("join");
    assert_eq!(sqlstate(&result.expect_err("cancelled")), "57014");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_at_once() {
    let h = Harness::start().await;
    let token = h.reader();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = h.client(&token).await.expect("connect");
        tasks.push(tokio::spawn(async move {
            for j in 0..20 {
                let id = 1 + (i * 20 + j) % 20;
                let r = c
                    .query_one("SELECT amount::int8 FROM orders WHERE id = $1", &[&id])
                    .await
                    .expect("query");
                assert_eq!(r.get::<_, i64>(0), i64::from(id) * 10);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stream = futures_util::stream::iter(0..4).then(|_| h.client(&token));
    let clients: Vec<_> = stream.collect().await;
    assert!(clients.iter().all(Result::is_ok));
    h.stop().await;
}

/// The server-side backstop: what the gateway judged a read runs in a read-only transaction,
/// also in a session whose capability may write, so a write hidden where the analyzer cannot
/// see (here a view over a function that inserts) is refused by the server itself; what it
/// judged a write runs read-write, alone or in a transaction block, simple or extended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_read_only_and_writes_read_write() {
    let policy = format!(
        "{}\n[[rule]]\nid = \"planners-write\"\neffect = \"allow\"\nprincipal_kinds = \"planner\"\nkinds = [\"write\"]\n",
        support::POLICY
    );
    let h = Harness::with(support::Options {
        policy,
        ..Default::default()
    })
    .await;
    h.direct(
        "CREATE TABLE public.trail (n int);
         CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE sql VOLATILE
           AS 'INSERT INTO public.trail VALUES (1) RETURNING n';
         CREATE VIEW public.innocent AS SELECT public.sneaky() AS x;
         GRANT ALL ON ALL TABLES IN SCHEMA public TO executor;",
    );
    use sod_core::OperationKind::{Connect, Read, Write};
    let token = h.planner(&[Connect, Read, Write]);
    let c = h.client(&token).await.expect("planner connects");
    let hidden_write = |e: tokio_postgres::Error| {
        assert_eq!(sqlstate(&e), "25006", "{e:?}");
    };
    // Simple and extended protocol: the read's hidden write is refused by the server.
    hidden_write(
        c.simple_query("SELECT * FROM innocent")
            .await
            .expect_err("read-only"),
    );
    hidden_write(
        c.query("SELECT x FROM innocent", &[])
            .await
            .expect_err("read-only"),
    );
    // A write the gateway allowed runs read-write, then reads are read-only again.
    c.execute("INSERT INTO orders VALUES ($1, 1, 7)", &[&500i32])
        .await
        .expect("a write runs");
    hidden_write(
        c.simple_query("SELECT * FROM innocent")
            .await
            .expect_err("read-only again"),
    );
    c.simple_query("UPDATE orders SET amount = 8 WHERE id = 500")
        .await
        .expect("a simple-protocol write runs");
    // A transaction block may hold writes: it runs read-write, reads and all.
    c.batch_execute(
        "BEGIN; SELECT count(*) FROM orders; UPDATE orders SET amount = 9 WHERE id = 500; COMMIT",
    )
    .await
    .expect("a block with a write");
    assert_eq!(
        h.direct("SELECT amount FROM orders WHERE id = 500").trim(),
        "9"
    );
    assert_eq!(
        h.direct("SELECT count(*) FROM trail").trim(),
        "0",
        "no hidden write got through"
    );
    // The session's switches are the gateway's own: the client sees no stray answers.
    let rows = c.simple_query("SELECT 42").await.expect("reads");
    assert!(
        rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("42"))
        ),
        "{rows:?}"
    );
    h.stop().await;
}

/// A `CancelRequest` for `pid` with `key`, on a connection of its own.
async fn send_cancel(port: u16, pid: i32, key: Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut packet = Vec::new();
    let len = u32::try_from(12 + key.len()).expect("short key");
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&sod_postgres::codec::CANCEL_REQUEST_CODE.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&key);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(&packet).await.expect("write");
    // The gateway answers a cancel request with nothing, and closes — or, in a burst over the
    // start-up limit per address, refuses the connection (53300) before reading it.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the gateway closes a cancel connection");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.contains("C53300"),
        "a cancel request gets no answer: {text:?}"
    );
}

/// A burst of 100 concurrent cancel requests with wrong keys (and for a wrong session)
/// cancels nothing — those over the start-up limit per address are refused before they are
/// read — at the connection limit; the right key still cancels, without a session slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_cancel_keys_in_a_burst_cancel_nothing_and_the_right_one_works_at_the_limit() {
    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt as _;
    let h = Harness::with(support::Options {
        max_connections: 1,
        ..Default::default()
    })
    .await;
    let (mut raw, pid, key) = support::raw_session_keyed(&h, &h.executor()).await;
    let mut out = BytesMut::new();
    sod_postgres::codec::frontend::query(&mut out, "SELECT pg_sleep(60)").expect("query");
    raw.write_all(&out).await.expect("write");
    let running = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(60)'";
    sod_testkit::poll_until_async(Duration::from_secs(10), "the sleep to start", || {
        let out = h.direct(running);
        async move { (out.trim() == "1").then_some(()) }
    })
    .await;

    let burst = (0..100u32).map(|i| {
        let mut wrong = key.clone();
        wrong[i as usize % key.len()] ^= 1 + (i % 255) as u8;
        let pid = if i % 10 == 0 {
            pid.wrapping_add(1)
        } else {
            pid
        };
        send_cancel(h.port, pid, wrong)
    });
    futures_util::future::join_all(burst).await;
    assert_eq!(
        h.direct(running).trim(),
        "1",
        "no wrong key cancelled the statement"
    );
    // Wrong lengths are refused too (a key of another size never matches).
    send_cancel(h.port, pid, [key.clone(), vec![0]].concat()).await;
    assert_eq!(h.direct(running).trim(), "1");

    send_cancel(h.port, pid, key).await;
    let frames = support::read_until(&mut raw, sod_postgres::codec::tag::READY_FOR_QUERY).await;
    assert_eq!(support::error_codes(&frames), ["57014"]);
    h.stop().await;
}
