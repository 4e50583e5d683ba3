//! Approvals through the PostgreSQL gateway, with a real server and tokio-postgres: a write
//! that needs approval gets PostgreSQL's native error naming the approval id, never reaches the
//! server, and runs once when the same statement is sent again after someone else approved it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use sod_approval::{ApprovalId, Broker, MemoryStore, Status};
use sod_core::{Principal, PrincipalKind};
use support::{Harness, Options};

const POLICY: &str = r#"
[[rule]]
id = "executors-read"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read"]

[[rule]]
id = "executor-writes-need-a-dba"
effect = "require_approval"
principal_kinds = "executor"
kinds = "write"
approvers = "dba"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_someone_elses_approval_and_then_runs_once() {
    let broker = Broker::new(Arc::new(MemoryStore::new()));
    let h = Harness::with(Options {
        policy: POLICY.to_owned(),
        approval: Some((broker.clone(), Duration::from_millis(200))),
        ..Options::default()
    })
    .await;
    let client = h.client(&h.executor()).await.expect("connect");
    let update = "UPDATE orders SET amount = 4242 WHERE id = 3";
    let err = client
        .execute(update, &[])
        .await
        .expect_err("needs approval");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(db.message().contains("waiting for approval apr-"), "{db:?}");
    let hint = db.hint().expect("the hint names the approval");
    let id = hint
        .split_whitespace()
        .find(|w| w.starts_with("apr-"))
        .map(|w| ApprovalId::new(w.trim_end_matches(';')))
        .expect("an approval id");
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE amount = 4242")
            .trim(),
        "0",
        "nothing ran"
    );
    // The approver sees exactly the statement; the executor cannot approve its own.
    let pending = broker.get(&id).await.expect("pending");
    assert_eq!(pending.operation.text, update);
    let me = Principal::new("executor-1", "idp", PrincipalKind::Human).with_groups(["dba"]);
    assert!(broker.decide(&id, &me, true, None).await.is_err());
    let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"]);
    broker
        .decide(&id, &bob, true, None)
        .await
        .expect("approved");
    // A changed constant is not covered.
    let other = client
        .execute("UPDATE orders SET amount = 4243 WHERE id = 3", &[])
        .await
        .expect_err("another approval");
    assert!(
        other
            .as_db_error()
            .and_then(|d| d.hint())
            .is_some_and(|h| !h.contains(id.as_str()))
    );
    // The same statement again runs at once, and only once.
    assert_eq!(client.execute(update, &[]).await.expect("runs"), 1);
    assert_eq!(
        broker.get(&id).await.expect("known").status(),
        Status::Consumed
    );
    assert!(
        client.execute(update, &[]).await.is_err(),
        "a second run needs a new approval"
    );
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE amount = 4242")
            .trim(),
        "1"
    );
    // The audit log names the approval on the committed attempt.
    let approved = h.audit.memory().events().into_iter().any(|e| {
        matches!(
            e,
            sod_audit::Event::OperationAttempted { ref approvals, ref decision, .. }
                if approvals == &[id.to_string()] && decision.effect == "require_approval"
        )
    });
    assert!(approved, "the attempt records its approval");
    h.stop().await;
}

/// An approval covers the statement, not its spelling: a variant in other whitespace, case
/// and comments runs on it (once), while anything that changes what runs — another
/// predicate, a second statement, a comment hiding nothing but followed by more SQL — needs
/// its own approval and never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_covers_spelling_variants_once_and_nothing_else() {
    let broker = Broker::new(Arc::new(MemoryStore::new()));
    let h = Harness::with(Options {
        policy: POLICY.to_owned(),
        approval: Some((broker.clone(), Duration::from_millis(200))),
        ..Options::default()
    })
    .await;
    let client = h.client(&h.executor()).await.expect("connect");
    client
        .simple_query("UPDATE orders SET amount = 5151 WHERE id = 5")
        .await
        .expect_err("needs approval");
    let pending = broker.pending().await.expect("pending");
    assert_eq!(pending.len(), 1);
    let id = pending[0].id.clone();
    let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"]);
    broker
        .decide(&id, &bob, true, None)
        .await
        .expect("approved");

    for different in [
        "UPDATE orders SET amount = 5151 WHERE id = 5 OR id = 6",
        "UPDATE orders SET amount = 5151 WHERE id = 5; UPDATE orders SET amount = 5151 WHERE id = 7",
        "UPDATE orders SET amount = 5151 /* WHERE id = 5 */ WHERE id = 8",
        "UPDATE orders SET amount = 5152 WHERE id = 5",
    ] {
        let e = client
            .simple_query(different)
            .await
            .expect_err("not covered");
        let hint = e.as_db_error().and_then(|d| d.hint()).unwrap_or_default();
        assert!(!hint.contains(id.as_str()), "{different}: {hint}");
    }
    assert_eq!(
        broker.get(&id).await.expect("known").status(),
        Status::Approved,
        "no variant that changes what runs used the approval"
    );
    let variant = "update   orders\n  set amount=5151 -- approved by bob\n where id = 5 /* once */";
    client
        .simple_query(variant)
        .await
        .expect("a spelling variant runs on the approval");
    assert_eq!(
        broker.get(&id).await.expect("known").status(),
        Status::Consumed
    );
    assert!(
        client
            .simple_query("UPDATE orders SET amount = 5151 WHERE id = 5")
            .await
            .is_err(),
        "used up"
    );
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE amount IN (5151, 5152)")
            .trim(),
        "1",
        "only the covered statement ran"
    );
    h.stop().await;
}
