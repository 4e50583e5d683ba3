//! Masking through the gateway with a real server and tokio-postgres (part 2 of the gateway
//! starts here): a masked session never sees the server's error text, which PostgreSQL fills
//! with the very values masking hides.

mod support;

use support::{Harness, Options};

const POLICY: &str = r#"
[[rule]]
id = "planners-read-masked"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "planner"

[[rule]]
id = "executors"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read"]
"#;

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
        policy: POLICY.to_owned(),
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

    // The planner's session is masked: same SQLSTATE, none of the server's words.
    let planner = h.client(&h.reader()).await.expect("planner connects");
    for (sql, code) in [
        (leak, "22P02"),
        ("SELECT 1 / (id - id) FROM customers", "22012"),
    ] {
        let err = planner.query(sql, &[]).await.expect_err("fails");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), code, "{db:?}");
        let all = format!("{db:?}");
        assert!(
            !all.contains("alice") && !all.contains("example.com"),
            "{all}"
        );
        assert!(db.message().contains("withheld"), "{db:?}");
        assert!(db.detail().is_none() && db.hint().is_none(), "{db:?}");
    }
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
