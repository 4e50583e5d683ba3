//! Upstream session pooling against a real PostgreSQL server: a session that ends cleanly
//! hands its backend to the next session of the same principal, reset so that nothing of the
//! first session survives into the second; another principal never gets it; a session that
//! ends inside a transaction, a backend the server closed while pooled, a pool of size zero
//! and an expired idle connection all mean a fresh backend, never an error.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use sod_testkit::poll::poll_until_async;
use support::{Harness, Options};

/// How long a released backend may take to reach the pool (a `DISCARD ALL` round trip).
const POOLED_WITHIN: Duration = Duration::from_secs(10);

/// The first column of the one row `sql` returns.
async fn one<T>(client: &tokio_postgres::Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    one(client, "SELECT pg_backend_pid()").await
}

/// Opens a session with `token`, reads its backend pid and leaves cleanly (`Terminate`).
async fn pid_of_one_session(h: &Harness, token: &str) -> i32 {
    let client = h.client(token).await.unwrap();
    let pid = backend_pid(&client).await;
    drop(client);
    pid
}

/// Backends of `pid` still connected to the server.
fn alive(h: &Harness, pid: i32) -> bool {
    h.direct(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    ))
    .trim()
        == "1"
}

/// Waits until a new session of `token` runs on backend `pid` (it was pooled); returns that
/// session's client. Sessions that get another backend end inside a transaction block, so
/// their backends are closed rather than pooled on top of the one awaited.
async fn reuses(h: &Harness, token: &str, pid: i32) -> tokio_postgres::Client {
    poll_until_async(POOLED_WITHIN, "a session on the pooled backend", || async {
        let client = h.client(token).await.unwrap();
        if backend_pid(&client).await == pid {
            return Some(client);
        }
        client.batch_execute("BEGIN").await.unwrap();
        None
    })
    .await
}

#[tokio::test]
async fn a_clean_session_hands_its_backend_to_the_next_session_of_the_same_principal() {
    let h = Harness::start().await;
    let executor = h.executor();
    let first = pid_of_one_session(&h, &executor).await;
    let again = reuses(&h, &executor, first).await;
    // The reused session works like a fresh one, and starts read-only like one.
    let n: i64 = one(&again, "SELECT count(*) FROM customers").await;
    assert!(n > 0);
    let ro: String = one(&again, "SHOW default_transaction_read_only").await;
    assert_eq!(ro, "on");
    // Writes still switch the session to read-write for themselves.
    again
        .execute("CREATE TEMP TABLE pool_probe (x int)", &[])
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn nothing_of_a_session_survives_into_the_next_on_its_backend() {
    let h = Harness::start().await;
    let executor = h.executor();
    let client = h.client(&executor).await.unwrap();
    let pid = backend_pid(&client).await;
    for statement in [
        "CREATE TEMP TABLE secret_scratch (v text)",
        "INSERT INTO pg_temp.secret_scratch VALUES ('from the first session')",
        "PREPARE leftover AS SELECT 1",
        "LISTEN pool_channel",
        "SET application_name TO 'left-behind'",
        "SET statement_timeout TO '1234s'",
        "SET search_path TO pg_catalog",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    let locked: bool = one(&client, "SELECT pg_try_advisory_lock(4242)").await;
    assert!(locked);
    drop(client);

    let next = reuses(&h, &executor, pid).await;
    // Settings are back to their start-up values; the first session wrote (so it ran
    // read-write), the next starts read-only.
    for (setting, expected) in [
        ("search_path", "\"$user\", public"),
        ("application_name", ""),
        ("statement_timeout", "0"),
        ("default_transaction_read_only", "on"),
    ] {
        let value: String = one(&next, &format!("SHOW {setting}")).await;
        assert_eq!(value, expected, "{setting} survived the reset");
    }
    for (what, count) in [
        (
            "the temporary table",
            "SELECT count(*) FROM pg_class WHERE relname = 'secret_scratch'",
        ),
        (
            "the prepared statement",
            "SELECT count(*) FROM pg_prepared_statements WHERE name = 'leftover'",
        ),
        ("the LISTEN", "SELECT count(*) FROM pg_listening_channels()"),
        (
            "the advisory lock",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        ),
    ] {
        let n: i64 = one(&next, count).await;
        assert_eq!(n, 0, "{what} survived the reset");
    }
    h.stop().await;
}

/// Once `owner`'s backend is pooled (its next session gets it), the sessions of `other`,
/// many times over, never run on it.
async fn never_shared(h: &Harness, owner: &str, other: &str, what: &str) {
    let first = pid_of_one_session(h, owner).await;
    drop(reuses(h, owner, first).await);
    for _ in 0..5 {
        assert_ne!(pid_of_one_session(h, other).await, first, "{what}");
    }
}

#[tokio::test]
async fn another_principal_never_gets_the_backend() {
    let h = Harness::start().await;
    let (executor, reader) = (h.executor(), h.reader());
    never_shared(
        &h,
        &executor,
        &reader,
        "a planner session ran on the executor's backend",
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn the_same_identifier_from_another_issuer_is_another_principal() {
    let h = Harness::start().await;
    // `planner-1` by capability (issuer `sod`) and `planner-1` by OIDC token: two principals.
    let by_capability = h.reader();
    let by_token = h
        .idp
        .token()
        .subject("planner-1")
        .kind("planner")
        .expires_in(600)
        .sign();
    never_shared(
        &h,
        &by_capability,
        &by_token,
        "an OIDC session ran on a capability session's backend",
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_session_that_ends_inside_a_transaction_closes_its_backend() {
    let h = Harness::start().await;
    let executor = h.executor();
    let client = h.client(&executor).await.unwrap();
    let pid = backend_pid(&client).await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("UPDATE customers SET name = name WHERE false")
        .await
        .unwrap();
    drop(client);
    poll_until_async(POOLED_WITHIN, "the backend to close", || async {
        (!alive(&h, pid)).then_some(())
    })
    .await;
    let next = pid_of_one_session(&h, &executor).await;
    assert_ne!(next, pid);
    h.stop().await;
}

#[tokio::test]
async fn a_pooled_backend_the_server_closed_is_not_handed_out() {
    let h = Harness::start().await;
    let executor = h.executor();
    let first = pid_of_one_session(&h, &executor).await;
    // Pooled: its next session gets it; then it goes back again.
    drop(reuses(&h, &executor, first).await);
    poll_until_async(POOLED_WITHIN, "the backend to be idle again", || async {
        let state = h.direct(&format!(
            "SELECT state FROM pg_stat_activity WHERE pid = {first}"
        ));
        (state.trim() == "idle").then_some(())
    })
    .await;
    // Give the reset its moment to finish: the backend is idle once DISCARD ALL answered,
    // and then in the pool. Terminating it there must not cost the next client anything.
    h.direct(&format!("SELECT pg_terminate_backend({first})"));
    poll_until_async(POOLED_WITHIN, "the backend to end", || async {
        (!alive(&h, first)).then_some(())
    })
    .await;
    for _ in 0..3 {
        let client = h.client(&executor).await.unwrap();
        let pid = backend_pid(&client).await;
        assert_ne!(pid, first);
        drop(client);
    }
    h.stop().await;
}

#[tokio::test]
async fn pool_size_zero_closes_every_backend() {
    let h = Harness::with(Options {
        pool_size: Some(0),
        ..Options::default()
    })
    .await;
    let executor = h.executor();
    let first = pid_of_one_session(&h, &executor).await;
    poll_until_async(POOLED_WITHIN, "the backend to close", || async {
        (!alive(&h, first)).then_some(())
    })
    .await;
    assert_ne!(pid_of_one_session(&h, &executor).await, first);
    h.stop().await;
}

#[tokio::test]
async fn an_idle_pooled_backend_is_closed_after_the_idle_timeout() {
    let h = Harness::with(Options {
        pool_idle_timeout: Some(Duration::from_millis(400)),
        ..Options::default()
    })
    .await;
    let executor = h.executor();
    let first = pid_of_one_session(&h, &executor).await;
    poll_until_async(POOLED_WITHIN, "the idle backend to be closed", || async {
        (!alive(&h, first)).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn shutdown_closes_pooled_backends() {
    let mut h = Harness::start().await;
    let executor = h.executor();
    let first = pid_of_one_session(&h, &executor).await;
    drop(reuses(&h, &executor, first).await);
    poll_until_async(POOLED_WITHIN, "the backend to be idle again", || async {
        let state = h.direct(&format!(
            "SELECT state FROM pg_stat_activity WHERE pid = {first}"
        ));
        (state.trim() == "idle").then_some(())
    })
    .await;
    h.stop_gateway().await;
    poll_until_async(POOLED_WITHIN, "the pooled backend to close", || async {
        (!alive(&h, first)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cancel_key_of_an_ended_session_cancels_nothing_on_its_pooled_backend() {
    let h = Harness::start().await;
    let executor = h.executor();
    let client = h.client(&executor).await.unwrap();
    let pid = backend_pid(&client).await;
    let stale = client.cancel_token();
    drop(client);
    let next = reuses(&h, &executor, pid).await;
    // The next session on that backend runs a statement; the ended session's key is sent
    // while it runs (once the server shows it running).
    let running = tokio::spawn(async move {
        next.batch_execute("SELECT pg_sleep(1.5)")
            .await
            .map(|()| next)
    });
    poll_until_async(POOLED_WITHIN, "the statement to run", || async {
        let state = h.direct(&format!(
            "SELECT state FROM pg_stat_activity WHERE pid = {pid}"
        ));
        (state.trim() == "active").then_some(())
    })
    .await;
    stale.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let finished = running.await.unwrap();
    assert!(
        finished.is_ok(),
        "a stale cancel key cancelled the next session's statement: {:?}",
        finished.err()
    );
    h.stop().await;
}
