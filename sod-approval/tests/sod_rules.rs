//! Every separation-of-duties rule of the broker, attacked (invariants I2 and I3).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sod_approval::{
    ApprovalRequest, Broker, BrokerError, MemoryStore, Requester, Status, Store as _,
};
use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};

/// The policy terms the tests' approvals are given on.
fn spec() -> sod_core::policy::ApprovalSpec {
    sod_core::policy::ApprovalSpec {
        approver_groups: vec!["dba".into()],
        quorum: 1,
        ttl: std::time::Duration::from_secs(600),
    }
}

fn broker() -> Broker {
    Broker::new(Arc::new(MemoryStore::new()))
}

fn op(text: &str) -> Operation {
    Operation::builder(Target::new("pg/prod"), OperationKind::Write, text)
        .object("public.orders")
        .build()
}

fn planner() -> Requester {
    Requester::new("planner-1").on_behalf_of("alice")
}

fn human(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, "https://idp", PrincipalKind::Human).with_groups(groups.iter().copied())
}

fn request(op: &Operation, quorum: u32) -> ApprovalRequest {
    ApprovalRequest::new(
        planner(),
        op,
        vec!["dba".into()],
        quorum,
        Duration::from_secs(600),
    )
}

#[tokio::test]
async fn nobody_approves_their_own_request() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 1 WHERE id = 7");
    let id = b.submit(request(&update, 1)).await.unwrap();
    // The requester itself, in any spelling.
    for me in ["planner-1", "PLANNER-1"] {
        let p = Principal::new(me, "idp", PrincipalKind::Human).with_groups(["dba"]);
        assert!(matches!(
            b.decide(&id, &p, true, None).await,
            Err(BrokerError::SelfApproval(_))
        ));
    }
    // The human the requester acts for.
    assert!(matches!(
        b.decide(&id, &human("Alice", &["dba"]), true, None).await,
        Err(BrokerError::SelfApproval(_))
    ));
    // A capability derived from the requester's: its principal is the requester.
    let derived = Principal::new(
        "planner-1",
        "sod",
        PrincipalKind::Agent(sod_core::AgentRole::Planner),
    )
    .with_groups(["dba"])
    .acting_for("alice");
    assert!(matches!(
        b.decide(&id, &derived, true, None).await,
        Err(BrokerError::SelfApproval(_))
    ));
    // Someone acting for alice.
    let proxy = human("carol", &["dba"]).acting_for("alice");
    assert!(matches!(
        b.decide(&id, &proxy, true, None).await,
        Err(BrokerError::SelfApproval(_))
    ));
    // An agent in the group, acting for nobody involved.
    let agent = Principal::new(
        "executor-9",
        "sod",
        PrincipalKind::Agent(sod_core::AgentRole::Executor),
    )
    .with_groups(["dba"]);
    assert!(matches!(
        b.decide(&id, &agent, true, None).await,
        Err(BrokerError::NotHuman(_))
    ));
    // A human outside the approver groups.
    assert!(matches!(
        b.decide(&id, &human("dave", &["dev"]), true, None).await,
        Err(BrokerError::NotApprover { .. })
    ));
    // Nothing of that counted.
    let r = b.get(&id).await.unwrap();
    assert!(r.votes.is_empty());
    assert_eq!(r.status(), Status::Pending);
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_quorum_counts_distinct_approvers() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 1 WHERE id = 7");
    let id = b.submit(request(&update, 2)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    for again in ["bob", "BOB"] {
        assert!(matches!(
            b.decide(&id, &human(again, &["dba"]), true, None).await,
            Err(BrokerError::AlreadyVoted(_))
        ));
    }
    assert_eq!(b.get(&id).await.unwrap().status(), Status::Pending);
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    let r = b
        .decide(&id, &human("erin", &["ops", "dba"]), true, None)
        .await
        .unwrap();
    assert_eq!(r.status, Status::Approved);
    let evidence = b
        .consume(&planner(), &update, &spec(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(evidence.approvers, ["bob", "erin"]);
    assert_eq!(evidence.fingerprint, update.fingerprint());
    assert_eq!(evidence.approval_ids, [id.to_string()]);
}

#[tokio::test]
async fn one_deny_is_final() {
    let b = broker();
    let update = op("DELETE FROM orders WHERE id = 1");
    let id = b.submit(request(&update, 2)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let r = b
        .decide(
            &id,
            &human("erin", &["dba"]),
            false,
            Some("not today".into()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Denied);
    assert!(matches!(
        b.decide(&id, &human("frank", &["dba"]), true, None).await,
        Err(BrokerError::NotPending {
            status: Status::Denied,
            ..
        })
    ));
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_approval_covers_exactly_its_operation_once() {
    let b = broker();
    let approved = op("UPDATE orders SET amount = 1 WHERE id = 7");
    let id = b.submit(request(&approved, 1)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    // A changed constant, another target, another kind, other parameter values.
    let others = [
        op("UPDATE orders SET amount = 1 WHERE id = 8"),
        Operation::builder(
            Target::new("pg/staging"),
            OperationKind::Write,
            "UPDATE orders SET amount = 1 WHERE id = 7",
        )
        .object("public.orders")
        .build(),
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Admin,
            "UPDATE orders SET amount = 1 WHERE id = 7",
        )
        .object("public.orders")
        .build(),
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Write,
            "UPDATE orders SET amount = 1 WHERE id = 7",
        )
        .object("public.orders")
        .param(Some(Bytes::from_static(b"42")))
        .build(),
    ];
    for other in &others {
        assert!(
            b.consume(&planner(), other, &spec(), None)
                .await
                .unwrap()
                .is_none(),
            "{other:?}"
        );
    }
    // Another requester, or the same principal acting for someone else.
    for who in [
        Requester::new("planner-2").on_behalf_of("alice"),
        Requester::new("planner-1"),
        Requester::new("planner-1").on_behalf_of("mallory"),
    ] {
        assert!(
            b.consume(&who, &approved, &spec(), None)
                .await
                .unwrap()
                .is_none(),
            "{who:?}"
        );
    }
    assert!(
        b.consume(&planner(), &approved, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.consume(&planner(), &approved, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.get(&id).await.unwrap().status(), Status::Consumed);
}

#[tokio::test]
async fn parameter_values_are_part_of_what_is_approved() {
    let b = broker();
    let with = |v: &'static [u8]| {
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Write,
            "DELETE FROM orders WHERE id = $1",
        )
        .param(Some(Bytes::from_static(v)))
        .build()
    };
    let id = b.submit(request(&with(b"7"), 1)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(
        b.consume(&planner(), &with(b"8"), &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.consume(&planner(), &with(b"7"), &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn expired_requests_cannot_be_decided_or_used() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 2");
    let mut expired = request(&update, 1);
    expired.expires_at = expired.created_at.saturating_sub(1);
    let id = b.submit(expired).await.unwrap();
    assert!(matches!(
        b.decide(&id, &human("bob", &["dba"]), true, None).await,
        Err(BrokerError::NotPending {
            status: Status::Expired,
            ..
        })
    ));
    assert!(b.pending().await.unwrap().is_empty());

    // Approved, then expired before use.
    let store = Arc::new(MemoryStore::new());
    let b = Broker::new(store.clone());
    let id = b.submit(request(&update, 1)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let mut aged = store.get(&id).await.unwrap().unwrap();
    aged.expires_at = aged.created_at.saturating_sub(1);
    aged.version += 1;
    assert!(store.swap(aged).await.unwrap());
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unknown_ids_justification_and_multi_use() {
    let b = broker().require_justification(true);
    let update = op("UPDATE orders SET amount = 3");
    assert_eq!(
        b.submit(request(&update, 1)).await,
        Err(BrokerError::JustificationRequired)
    );
    assert_eq!(
        b.submit(request(&update, 1).justification("   ")).await,
        Err(BrokerError::JustificationRequired)
    );
    let id = b
        .submit(request(&update, 1).justification("fix order 3").uses(2))
        .await
        .unwrap();
    let unknown = sod_approval::ApprovalId::new("apr-nope");
    assert!(matches!(
        b.decide(&unknown, &human("bob", &["dba"]), true, None)
            .await,
        Err(BrokerError::UnknownId(_))
    ));
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_executors_get_exactly_one_approval() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 4");
    let id = b.submit(request(&update, 1)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (b, update) = (b.clone(), update.clone());
            tokio::spawn(async move {
                b.consume(&planner(), &update, &spec(), None)
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn waiting_ends_at_the_decision_or_the_deadline() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 5");
    let id = b.submit(request(&update, 1)).await.unwrap();
    let pending = b.wait(&id, Duration::from_millis(50)).await.unwrap();
    assert_eq!(pending.status(), Status::Pending);
    let waiter = {
        let (b, id) = (b.clone(), id.clone());
        tokio::spawn(async move { b.wait(&id, Duration::from_secs(30)).await })
    };
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let decided = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by the decision")
        .unwrap()
        .unwrap();
    assert_eq!(decided.status, Status::Approved);
}

#[tokio::test]
async fn an_approval_given_on_laxer_terms_than_the_policy_asks_does_not_count() {
    let b = broker();
    let update = op("UPDATE orders SET amount = 6");
    let oncall = Principal::new("olga", "idp", PrincipalKind::Human).with_groups(["oncall"]);
    // Other approver groups, a smaller quorum, a longer life than the rule allows.
    let lax = [
        ApprovalRequest::new(
            planner(),
            &update,
            vec!["oncall".into()],
            1,
            Duration::from_secs(600),
        ),
        ApprovalRequest::new(
            planner(),
            &update,
            vec!["dba".into(), "oncall".into()],
            1,
            Duration::from_secs(600),
        ),
        ApprovalRequest::new(
            planner(),
            &update,
            vec!["dba".into()],
            1,
            Duration::from_secs(86_400),
        ),
    ];
    for request in lax {
        let id = b.submit(request).await.unwrap();
        let approver = if b.get(&id).await.unwrap().approver_groups == ["dba"] {
            human("bob", &["dba"])
        } else {
            oncall.clone()
        };
        b.decide(&id, &approver, true, None).await.unwrap();
    }
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    let strict = sod_core::policy::ApprovalSpec {
        quorum: 2,
        ..spec()
    };
    let id = b.submit(request(&update, 1)).await.unwrap();
    b.decide(&id, &human("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(
        b.consume(&planner(), &update, &strict, None)
            .await
            .unwrap()
            .is_none(),
        "one approval does not satisfy a rule asking for two"
    );
    // A session bound to a plan does not burn single approvals.
    assert!(
        b.consume(&planner(), &update, &spec(), Some("plan-x"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
}

/// A planner whose writes keep being refused cannot bury the approvers: its requests waiting
/// at once are bounded; others' are not affected, and a decision makes room again.
#[tokio::test]
async fn open_requests_per_requester_are_bounded() {
    let broker = broker().max_pending_per_requester(3);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            broker
                .submit(request(
                    &op(&format!("DELETE FROM orders WHERE id = {i}")),
                    1,
                ))
                .await
                .unwrap(),
        );
    }
    let over = broker
        .submit(request(&op("DELETE FROM orders WHERE id = 99"), 1))
        .await;
    assert!(
        matches!(&over, Err(BrokerError::TooManyPending { requester, limit: 3 }) if requester == "planner-1"),
        "{over:?}"
    );
    // Another requester is not held back by planner-1's backlog.
    let other = ApprovalRequest::new(
        Requester::new("planner-2"),
        &op("DELETE FROM orders WHERE id = 99"),
        vec!["dba".into()],
        1,
        Duration::from_secs(600),
    );
    broker.submit(other).await.unwrap();
    // A decision frees a place.
    broker
        .decide(&ids[0], &human("bob", &["dba"]), false, None)
        .await
        .unwrap();
    broker
        .submit(request(&op("DELETE FROM orders WHERE id = 99"), 1))
        .await
        .unwrap();
    assert_eq!(Broker::DEFAULT_MAX_PENDING, 16);
}
