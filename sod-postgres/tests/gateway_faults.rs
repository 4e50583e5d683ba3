//! Upstream loss: the PostgreSQL backend, then the postmaster, killed mid-query,
//! mid-transaction and mid-COPY. Each gives the client a clean native error (an
//! `ErrorResponse`, then the end of the session — never a hang), an `interrupted` or `error`
//! outcome in the audit log for the statement that was cut, and frees the session's slot; once
//! the server is back, new sessions work.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::BytesMut;
use sod_audit::{Event, Outcome};
use sod_postgres::codec::{frontend, tag};
use sod_testkit::poll::poll_until_async;
use support::Harness;
use tokio::io::AsyncWriteExt as _;

/// How long a client may wait for the gateway to report a loss.
const REPORTED_WITHIN: Duration = Duration::from_secs(20);

/// The pid of the backend running a statement containing `marker`, once it runs.
async fn backend_running(h: &Harness, marker: &str) -> i32 {
    poll_until_async(REPORTED_WITHIN, "the statement to run upstream", || async {
        let pid = h.direct(&format!(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%{marker}%' AND pid <> pg_backend_pid() AND state = 'active'"
        ));
        pid.trim().parse::<i32>().ok()
    })
    .await
}

/// The outcomes recorded for operations whose text contains `marker`.
fn outcomes(h: &Harness, marker: &str) -> Vec<Outcome> {
    let events = h.audit.memory().events();
    let ops: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::OperationAttempted {
                session,
                operation,
                text,
                ..
            } if text.contains(marker) => Some((session.clone(), *operation)),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|e| match e {
            Event::OperationCompleted {
                session,
                operation,
                outcome,
                ..
            } if ops.contains(&(session.clone(), *operation)) => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// Waits for the outcome of the statement holding `marker`: a statement cut by the loss is
/// `interrupted`, or `error` when the server's own FATAL error answered it.
async fn assert_cut(h: &Harness, marker: &str) {
    let recorded = poll_until_async(REPORTED_WITHIN, "the cut statement's outcome", || async {
        let o = outcomes(h, marker);
        (!o.is_empty()).then_some(o)
    })
    .await;
    for o in recorded {
        eprintln!("{marker}: recorded outcome {o:?}");
        assert!(matches!(o, Outcome::Error | Outcome::Interrupted), "{o:?}");
    }
}

/// The SQLSTATE of a client error, or what it was if it was not the server's.
fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || format!("not a database error: {e}"),
        |d| d.code().code().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_query_or_mid_transaction_ends_the_session_cleanly() {
    // One session at a time: the killed session's slot must come back for the next.
    let h = Harness::with(support::Options {
        max_connections: 1,
        max_sessions_per_principal: 1,
        ..Default::default()
    })
    .await;
    let token = h.executor();

    // Mid-query: the server terminates the backend (an administrator's pg_terminate_backend).
    let c = h.client(&token).await.unwrap();
    let running = tokio::spawn(async move {
        let r = c.simple_query("SELECT pg_sleep(60), 'cut1'").await;
        (r, c)
    });
    let pid = backend_running(&h, "cut1").await;
    h.direct(&format!("SELECT pg_terminate_backend({pid})"));
    let (r, c) = tokio::time::timeout(REPORTED_WITHIN, running)
        .await
        .expect("the client hears of it")
        .unwrap();
    let e = r.expect_err("the statement was cut");
    assert_eq!(code(&e), "57P01", "{e:?}");
    assert!(
        c.simple_query("SELECT 1").await.is_err(),
        "the session is over"
    );
    drop(c);
    assert_cut(&h, "cut1").await;

    // Mid-transaction: the backend process dies (SIGKILL); the postmaster restarts every
    // backend. The client's next statement gets an error, not a hang.
    let c = poll_until_async(
        REPORTED_WITHIN,
        "a new session (the slot is free)",
        || async { h.client(&token).await.ok() },
    )
    .await;
    c.batch_execute("BEGIN; INSERT INTO orders VALUES (900, 1, 1); SELECT 'cut2'")
        .await
        .unwrap();
    let pid: i32 = h
        .direct("SELECT pid FROM pg_stat_activity WHERE query LIKE '%cut2%' AND pid <> pg_backend_pid()")
        .trim()
        .parse()
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let e = tokio::time::timeout(REPORTED_WITHIN, c.simple_query("SELECT 1"))
        .await
        .expect("no hang")
        .expect_err("the transaction's backend is gone");
    assert!(
        e.as_db_error().is_some() || e.is_closed(),
        "a native error or a closed connection: {e:?}"
    );
    eprintln!("the client got: {e}");
    drop(c);

    // The server recovers; a new session works, and the transaction was rolled back.
    let c = poll_until_async(
        Duration::from_secs(60),
        "a session after recovery",
        || async {
            let c = h.client(&token).await.ok()?;
            c.simple_query("SELECT 1").await.ok().map(|_| c)
        },
    )
    .await;
    let rows = c
        .simple_query("SELECT count(*) FROM orders WHERE id = 900")
        .await
        .unwrap();
    assert!(
        rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("0"))
        ),
        "{rows:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postmaster_killed_mid_copy_and_back_again() {
    let mut h = Harness::with(support::Options {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    h.direct("CREATE TABLE public.cut4 (n int); GRANT ALL ON public.cut4 TO executor;");
    let token = h.executor();

    // Mid-COPY FROM STDIN (raw protocol, to see exactly what the client gets): rows
    // streamed, then the whole server dies.
    let mut raw = support::raw_session(&h, &token).await;
    let mut out = BytesMut::new();
    frontend::query(&mut out, "COPY cut4 FROM STDIN").unwrap();
    raw.write_all(&out).await.unwrap();
    support::read_until(&mut raw, tag::COPY_IN_RESPONSE).await;
    out.clear();
    frontend::copy_data(&mut out, b"1\n2\n3\n").unwrap();
    raw.write_all(&out).await.unwrap();
    backend_running(&h, "cut4").await;
    tokio::task::block_in_place(|| h.pg.kill()).unwrap();
    // More rows and the end of the COPY: the gateway answers with an error, then closes.
    out.clear();
    frontend::copy_data(&mut out, b"4\n").unwrap();
    frontend::copy_done(&mut out);
    frontend::sync(&mut out);
    let _ = raw.write_all(&out).await;
    let frames = support::read_all(&mut raw).await;
    let codes = support::error_codes(&frames);
    eprintln!("the client got: {codes:?}");
    assert!(
        !codes.is_empty(),
        "an ErrorResponse before the close: {frames:?}"
    );
    assert_cut(&h, "cut4").await;

    // While the server is down, a new session is refused with a native error at once.
    let down = tokio::time::timeout(REPORTED_WITHIN, h.client(&token))
        .await
        .expect("no hang while the server is down");
    let Err(e) = down else {
        panic!("a session without a server");
    };
    assert!(e.as_db_error().is_some(), "{e:?}");

    // Back again: sessions work, and both slots are free.
    tokio::task::block_in_place(|| h.pg.restart()).unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let c = poll_until_async(
            Duration::from_secs(60),
            "a session after restart",
            || async {
                let c = h.client(&token).await.ok()?;
                c.simple_query("SELECT 1").await.ok().map(|_| c)
            },
        )
        .await;
        clients.push(c);
    }
    assert_eq!(
        h.direct("SELECT count(*) FROM cut4").trim(),
        "0",
        "the cut COPY left no rows"
    );
    drop(clients);
    h.stop().await;
}

/// Resident memory of this process (the gateway runs in it), in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A client that asks for a large result and stops reading: the gateway stops reading the
/// server (memory stays bounded), and after the client write timeout ends the session, frees
/// the upstream backend and records the statement as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_bounded_then_disconnected() {
    let h = Harness::with(support::Options {
        write_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let mut raw = support::raw_session(&h, &h.executor()).await;
    let before = rss();
    let mut out = BytesMut::new();
    // About 2 GB of rows.
    frontend::query(
        &mut out,
        "SELECT repeat('x', 1000), 'cut5' FROM generate_series(1, 2000000)",
    )
    .unwrap();
    raw.write_all(&out).await.unwrap();
    let mut peak = 0;
    poll_until_async(Duration::from_secs(60), "the stalled session to end upstream", || {
        peak = peak.max(rss().saturating_sub(before));
        async {
            let n = h.direct(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%cut5%' AND pid <> pg_backend_pid()",
            );
            (n.trim() == "0").then_some(())
        }
    })
    .await;
    eprintln!(
        "gateway memory growth with a stalled client: {} KiB",
        peak / 1024
    );
    assert!(peak < 64 << 20, "memory grew by {peak} bytes");
    // What the client reads now ends: the gateway closed the connection.
    let frames = tokio::time::timeout(REPORTED_WITHIN, support::read_all(&mut raw))
        .await
        .expect("the connection is closed");
    assert!(!frames.is_empty());
    poll_until_async(
        REPORTED_WITHIN,
        "the stalled statement's outcome",
        || async {
            let o = outcomes(&h, "cut5");
            (!o.is_empty()).then_some(o)
        },
    )
    .await
    .iter()
    .for_each(|o| assert_eq!(*o, Outcome::Interrupted));
    h.stop().await;
}
