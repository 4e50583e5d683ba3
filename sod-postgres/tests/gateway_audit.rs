//! The gateway's commit point with sod-audit's RecordingLayer, a real PostgreSQL server, psql
//! and tokio-postgres: every operation is recorded before it reaches the server, refusals are
//! recorded too, and a failing audit sink refuses operations while the connection stays usable.

mod support;

use std::time::Duration;

use sod_audit::{Event, Outcome, verify};
use sod_testkit::poll_until_async;
use support::{Harness, stderr};

fn attempts(h: &Harness) -> Vec<(String, String, String)> {
    h.audit
        .memory()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::OperationAttempted {
                kind,
                text,
                decision,
                ..
            } => Some((kind, text, decision.effect)),
            _ => None,
        })
        .collect()
}

fn count(h: &Harness, id: i32) -> String {
    h.direct(&format!("SELECT count(*) FROM orders WHERE id = {id}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_operations_are_recorded_and_the_log_verifies() {
    let h = Harness::start().await;
    let (exec, reader, conninfo) = (h.executor(), h.reader(), h.conninfo());
    let (wrote, refused) = tokio::task::spawn_blocking(move || {
        (
            support::psql(
                &conninfo,
                &exec,
                "INSERT INTO orders VALUES (100, 1, 5); SELECT count(*) FROM orders",
            ),
            support::psql(&conninfo, &reader, "DROP TABLE customers"),
        )
    })
    .await
    .expect("join");
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    assert!(!refused.status.success());

    // Both psql sessions ended: their stacks are dropped and `session_ended` follows.
    poll_until_async(Duration::from_secs(10), "both sessions ended", || async {
        let ended = h
            .audit
            .memory()
            .events()
            .iter()
            .filter(|e| matches!(e, Event::SessionEnded { .. }))
            .count();
        (ended == 2).then_some(())
    })
    .await;

    let events = h.audit.memory().events();
    let started: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::SessionStarted { principal, .. } => Some(principal.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["executor-1", "planner-1"]);
    let a = attempts(&h);
    assert!(
        a.iter()
            .any(|(k, t, e)| k == "write" && t.contains("INSERT") && e == "allow"),
        "{a:?}"
    );
    let drop = events
        .iter()
        .find_map(|e| match e {
            Event::OperationAttempted { text, decision, .. } if text.contains("DROP") => {
                Some(decision.clone())
            }
            _ => None,
        })
        .expect("the refused DROP is recorded");
    assert_eq!(drop.effect, "refused");
    assert_eq!(drop.rule.as_deref(), Some("capability"));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::OperationCompleted {
            outcome: Outcome::Refused,
            ..
        }
    )));
    // The insert's completion counts its row (the batch's last command returned one row).
    assert!(events.iter().any(|e| matches!(
        e,
        Event::OperationCompleted {
            outcome: Outcome::Ok,
            rows: Some(1),
            ..
        }
    )));
    let report = verify::lines(
        h.audit.memory().lines(),
        &verify::Options::new([h.audit_key.public()]),
    )
    .expect("the log verifies");
    assert_eq!(report.records, h.audit.memory().lines().len() as u64);
    assert_eq!(h.recording.uncommitted(), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_the_server_before_its_commit() {
    let h = Harness::start().await;
    let client = h.client(&h.executor()).await.expect("connect");

    // Held commit, then released: the statement runs only after the release.
    h.audit.hold();
    let (done, ()) = tokio::join!(
        client.execute("INSERT INTO orders VALUES (200, 1, 1)", &[]),
        async {
            assert!(h.audit.wait_for_held(1, Duration::from_secs(10)).await);
            let seen = tokio::task::block_in_place(|| count(&h, 200));
            assert_eq!(seen, "0", "ran before its commit was acknowledged");
            h.audit.release();
        }
    );
    assert_eq!(done.expect("runs after release"), 1);
    assert_eq!(count(&h, 200), "1");

    // Held commit, then failed: refused, and provably never sent. The next statement on the
    // same upstream connection would have run after it.
    h.audit.hold();
    let (refused, ()) = tokio::join!(
        client.execute("INSERT INTO orders VALUES (201, 1, 1)", &[]),
        async {
            assert!(h.audit.wait_for_held(1, Duration::from_secs(10)).await);
            let seen = tokio::task::block_in_place(|| count(&h, 201));
            assert_eq!(seen, "0", "sent before its commit");
            h.audit.fail(true);
        }
    );
    let err = refused.expect_err("refused");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501");
    assert!(db.message().contains("audit unavailable"), "{db:?}");
    h.audit.fail(false);
    let rows = client
        .query_one("SELECT count(*) FROM orders WHERE id = 201", &[])
        .await
        .expect("the connection stays usable");
    assert_eq!(rows.get::<_, i64>(0), 0);
    assert_eq!(h.recording.uncommitted(), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_refuses_every_protocol_path_and_the_session_goes_on() {
    let h = Harness::start().await;
    let client = h.client(&h.executor()).await.expect("connect");
    h.audit.fail(true);
    // Simple protocol, extended protocol with parameters, and a new connection.
    let simple = client
        .simple_query("INSERT INTO orders VALUES (300, 1, 1)")
        .await
        .expect_err("refused");
    let extended = client
        .execute(
            "INSERT INTO orders VALUES ($1, 1, 1)",
            &[&301_i32 as &(dyn tokio_postgres::types::ToSql + Sync)],
        )
        .await
        .expect_err("refused");
    for err in [&simple, &extended] {
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "42501", "{db:?}");
        assert!(db.message().contains("audit unavailable"), "{db:?}");
        assert!(
            db.detail().is_some_and(|d| d.contains("audit_unavailable")),
            "{db:?}"
        );
    }
    let fresh = h.client(&h.executor()).await;
    let err = fresh.expect_err("a new session is refused too");
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("42501"),
        "{err:?}"
    );
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE id >= 300")
            .trim(),
        "0"
    );
    // The sink recovers; the same session goes on.
    h.audit.fail(false);
    client
        .execute("INSERT INTO orders VALUES (302, 1, 1)", &[])
        .await
        .expect("runs");
    assert_eq!(count(&h, 302), "1");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_holds_passwords_or_presented_credentials() {
    let h = Harness::start().await;
    h.direct("ALTER ROLE executor CREATEROLE");
    let exec = h.executor();
    let client = h.client(&exec).await.expect("connect");
    client
        .batch_execute("CREATE ROLE audit_probe LOGIN PASSWORD 'hunter2-planted'")
        .await
        .expect("executors may administer");
    client
        .batch_execute("ALTER ROLE audit_probe PASSWORD 'other-planted'")
        .await
        .expect("runs");
    let reader = h.reader();
    let planner = h.client(&reader).await.expect("planner connects");
    let _ = planner
        .batch_execute("ALTER ROLE audit_probe PASSWORD 'refused-planted'")
        .await
        .expect_err("planners may not");
    drop((client, planner));
    let log = h.audit.memory().lines().join("\n");
    for secret in ["hunter2-planted", "other-planted", "refused-planted"] {
        assert!(!log.contains(secret), "{secret} is in the audit log");
    }
    assert!(
        log.contains("PASSWORD '***'"),
        "the statements are recorded"
    );
    assert!(
        !log.contains(&exec) && !log.contains(&reader),
        "a presented credential is in the log"
    );
    // The fingerprints of the two ALTERs with different passwords differ.
    let fingerprints: Vec<String> = h
        .audit
        .memory()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::OperationAttempted {
                text, fingerprint, ..
            } if text.starts_with("ALTER ROLE") => Some(fingerprint),
            _ => None,
        })
        .collect();
    assert_eq!(fingerprints.len(), 2, "{fingerprints:?}");
    assert_ne!(fingerprints[0], fingerprints[1]);
    h.stop().await;
}
