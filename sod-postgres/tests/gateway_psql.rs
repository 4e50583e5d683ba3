//! The gateway with the real `psql` client and a real PostgreSQL server.

mod support;

use support::{Harness, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_reads_and_is_refused_writes() {
    let h = Harness::start().await;
    let token = h.reader();
    let t = token.clone();
    let conninfo = h.conninfo();
    let out = tokio::task::spawn_blocking({
        let h_psql = move |sql: &str| support::psql(&conninfo, &t, sql);
        move || {
            (
                h_psql("SELECT name FROM customers ORDER BY id"),
                h_psql("DROP TABLE customers"),
            )
        }
    })
    .await
    .expect("join");
    assert!(out.0.status.success(), "{}", stderr(&out.0));
    assert_eq!(stdout(&out.0), "Alice\nBob");
    assert!(!out.1.status.success());
    let err = stderr(&out.1);
    assert!(err.contains("sod: refused by rule `capability`"), "{err}");
    // The table is still there.
    assert_eq!(h.direct("SELECT count(*) FROM customers").trim(), "2");
    let _ = h.psql(&token, "SELECT 1");
    h.stop().await;
}
