//! The durable stores: the file journal and PostgreSQL keep pending, approved, denied and
//! consumed requests across a restart (nothing lost, nothing revived); on PostgreSQL, fifty
//! executors on two replicas race for one approval and exactly one wins, and a decision on one
//! replica wakes a waiter on the other at once.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use sod_approval::{
    ApprovalId, ApprovalRequest, Broker, FileStore, PostgresStore, Requester, Status,
};
use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};
use sod_testkit::EphemeralPostgres;

/// The policy terms the tests' approvals are given on.
fn spec() -> sod_core::policy::ApprovalSpec {
    sod_core::policy::ApprovalSpec {
        approver_groups: vec!["dba".into()],
        quorum: 1,
        ttl: std::time::Duration::from_secs(600),
    }
}

fn op(n: u32) -> Operation {
    Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        format!("UPDATE orders SET amount = 1 WHERE id = {n}"),
    )
    .build()
}

fn planner() -> Requester {
    Requester::new("planner-1").on_behalf_of("alice")
}

fn dba(id: &str) -> Principal {
    Principal::new(id, "idp", PrincipalKind::Human).with_groups(["dba"])
}

fn request(n: u32) -> ApprovalRequest {
    ApprovalRequest::new(
        planner(),
        &op(n),
        vec!["dba".into()],
        1,
        Duration::from_secs(600),
    )
}

/// Ids of: pending, approved, consumed, denied.
async fn before_restart(b: &Broker) -> [ApprovalId; 4] {
    let pending = b.submit(request(1)).await.unwrap();
    let approved = b.submit(request(2)).await.unwrap();
    b.decide(&approved, &dba("bob"), true, Some("ok".into()))
        .await
        .unwrap();
    let consumed = b.submit(request(3)).await.unwrap();
    b.decide(&consumed, &dba("bob"), true, None).await.unwrap();
    assert!(
        b.consume(&planner(), &op(3), &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    let denied = b.submit(request(4)).await.unwrap();
    b.decide(&denied, &dba("bob"), false, Some("no".into()))
        .await
        .unwrap();
    [pending, approved, consumed, denied]
}

async fn after_restart(b: &Broker, [pending, approved, consumed, denied]: &[ApprovalId; 4]) {
    assert_eq!(b.get(pending).await.unwrap().status(), Status::Pending);
    assert_eq!(
        b.pending()
            .await
            .unwrap()
            .iter()
            .map(|r| &r.id)
            .collect::<Vec<_>>(),
        [pending]
    );
    let a = b.get(approved).await.unwrap();
    assert_eq!(a.status(), Status::Approved);
    assert_eq!(a.votes[0].comment.as_deref(), Some("ok"));
    assert_eq!(b.get(consumed).await.unwrap().status(), Status::Consumed);
    assert_eq!(b.get(denied).await.unwrap().status(), Status::Denied);
    // Nothing revived: the consumed and the denied approvals cover nothing.
    assert!(
        b.consume(&planner(), &op(3), &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.consume(&planner(), &op(4), &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    // Nothing lost: the approved one is used once, the pending one can still be decided.
    assert!(
        b.consume(&planner(), &op(2), &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.consume(&planner(), &op(2), &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    b.decide(pending, &dba("erin"), true, None).await.unwrap();
    assert!(
        b.consume(&planner(), &op(1), &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("approvals.jsonl");
    let ids = {
        let store = FileStore::open(&path).unwrap();
        // One writer: a second open of the same journal is refused.
        let second = FileStore::open(&path).err().expect("locked");
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock);
        let b = Broker::new(Arc::new(store));
        before_restart(&b).await
    };
    // A crash in the middle of writing the next state.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"id\":\"apr-torn\",\"requ").unwrap();
    }
    let b = Broker::new(Arc::new(FileStore::open(&path).unwrap()));
    after_restart(&b, &ids).await;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the journal is the gateway's alone");
    }
    assert!(
        b.get(&ApprovalId::new("apr-torn")).await.is_err(),
        "a torn line is not a request"
    );
    // Damage (a complete line that is not a request) is an error, not silently dropped.
    drop(b);
    std::fs::write(&path, "not json\n").unwrap();
    let err = FileStore::open(&path).err().expect("damaged");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("line 1"), "{err}");
}

async fn pg() -> EphemeralPostgres {
    tokio::task::spawn_blocking(|| EphemeralPostgres::start().expect("postgres starts"))
        .await
        .unwrap()
}

async fn pg_store(pg: &EphemeralPostgres) -> PostgresStore {
    PostgresStore::connect(&pg.conninfo("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_survives_a_restart() {
    let pg = pg().await;
    let ids = {
        let b = Broker::new(Arc::new(pg_store(&pg).await));
        before_restart(&b).await
    };
    let b = Broker::new(Arc::new(pg_store(&pg).await));
    after_restart(&b, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_executors_on_two_replicas_get_exactly_one_approval() {
    let pg = pg().await;
    let one = Broker::new(Arc::new(pg_store(&pg).await));
    let two = Broker::new(Arc::new(pg_store(&pg).await));
    let id = one.submit(request(7)).await.unwrap();
    two.decide(&id, &dba("bob"), true, None).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let b = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                b.consume(&planner(), &op(7), &spec(), None)
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
    assert_eq!(one.get(&id).await.unwrap().status(), Status::Consumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_one_replica_wakes_a_waiter_on_the_other() {
    let pg = pg().await;
    // Polling is slower than the test's deadline: only the notification can wake the waiter.
    let one = Broker::new(Arc::new(pg_store(&pg).await)).poll_interval(Duration::from_secs(600));
    let two = Broker::new(Arc::new(pg_store(&pg).await));
    let id = one.submit(request(8)).await.unwrap();
    let mut notices = one.store().changes().expect("the PostgreSQL store listens");
    notices.borrow_and_update();
    let waiter = {
        let (one, id) = (one.clone(), id.clone());
        tokio::spawn(async move { one.wait(&id, Duration::from_secs(600)).await })
    };
    let seen = two.get(&id).await.unwrap();
    assert_eq!(seen.status(), Status::Pending);
    two.decide(&id, &dba("bob"), true, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), notices.changed())
        .await
        .expect("replica one hears replica two's change")
        .unwrap();
    let decided = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken by LISTEN/NOTIFY")
        .unwrap()
        .unwrap();
    assert_eq!(decided.status, Status::Approved);
    // Store errors are refusals, not panics: an id that does not exist.
    assert!(
        two.store()
            .get(&ApprovalId::new("apr-none"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A request needing two approvers: on two replicas, the same approver votes ten times at once
/// (it counts once: the others are refused as repeated votes), and the request is approved
/// only when a second, distinct approver votes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_votes_across_replicas_count_once_toward_a_quorum() {
    let pg = pg().await;
    let one = Broker::new(Arc::new(pg_store(&pg).await));
    let two = Broker::new(Arc::new(pg_store(&pg).await));
    let id = one
        .submit(ApprovalRequest::new(
            planner(),
            &op(9),
            vec!["dba".into()],
            2,
            Duration::from_secs(600),
        ))
        .await
        .unwrap();
    let votes: Vec<_> = (0..10)
        .map(|i| {
            let b = if i % 2 == 0 { one.clone() } else { two.clone() };
            let id = id.clone();
            tokio::spawn(async move { b.decide(&id, &dba("bob"), true, None).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for v in votes {
        accepted += usize::from(v.await.unwrap());
    }
    assert_eq!(accepted, 1, "bob's vote counts once");
    let now = two.get(&id).await.unwrap();
    assert_eq!(now.status(), Status::Pending);
    assert_eq!(now.approvers(), ["bob"]);
    let quorum = two.decide(&id, &dba("carol"), true, None).await.unwrap();
    assert_eq!(quorum.status(), Status::Approved);
}

/// An approval consumed on one replica while it is revoked on the other: exactly one of the
/// two wins, never both (a revoked approval runs nothing; a consumed one cannot be revoked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_racing_revoke_across_replicas_has_one_winner() {
    let pg = pg().await;
    let one = Broker::new(Arc::new(pg_store(&pg).await));
    let two = Broker::new(Arc::new(pg_store(&pg).await));
    let mut outcomes = [0usize; 2];
    for n in 0..20 {
        let id = one.submit(request(100 + n)).await.unwrap();
        one.decide(&id, &dba("bob"), true, None).await.unwrap();
        let consume = {
            let b = one.clone();
            tokio::spawn(async move {
                b.consume(&planner(), &op(100 + n), &spec(), None)
                    .await
                    .unwrap()
                    .is_some()
            })
        };
        let revoke = {
            let (b, id) = (two.clone(), id.clone());
            tokio::spawn(async move { b.revoke(&id, &dba("bob")).await.is_ok() })
        };
        let (consumed, revoked) = (consume.await.unwrap(), revoke.await.unwrap());
        assert!(
            consumed != revoked,
            "round {n}: consumed {consumed}, revoked {revoked}"
        );
        outcomes[usize::from(revoked)] += 1;
        let status = one.get(&id).await.unwrap().status();
        let want = if consumed {
            Status::Consumed
        } else {
            Status::Revoked
        };
        assert_eq!(status, want, "round {n}");
    }
    eprintln!("consume won {} rounds, revoke {}", outcomes[0], outcomes[1]);
}

/// Uses racing an approval's expiry, on two replicas: at most one use in all, none after the
/// expiry (unix seconds, as the store counts), and the request ends `consumed` or `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_racing_expiry_never_uses_an_expired_approval() {
    let pg = pg().await;
    let one = Broker::new(Arc::new(pg_store(&pg).await));
    let two = Broker::new(Arc::new(pg_store(&pg).await));
    let short = sod_core::policy::ApprovalSpec {
        ttl: Duration::from_secs(1),
        ..spec()
    };
    let mut used = 0;
    for n in 0..5 {
        let id = one
            .submit(ApprovalRequest::new(
                planner(),
                &op(200 + n),
                vec!["dba".into()],
                1,
                Duration::from_secs(1),
            ))
            .await
            .unwrap();
        one.decide(&id, &dba("bob"), true, None).await.unwrap();
        let expires_at = one.get(&id).await.unwrap().expires_at;
        // Consumers start at staggered points from 200 ms before the expiry to 200 ms after,
        // on both replicas.
        let expiry = std::time::UNIX_EPOCH + Duration::from_secs(expires_at);
        let until = expiry
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let tasks: Vec<_> = (0..20u64)
            .map(|i| {
                let b = if i % 2 == 0 { one.clone() } else { two.clone() };
                let short = short.clone();
                let start = (until + Duration::from_millis(i * 20))
                    .saturating_sub(Duration::from_millis(200));
                tokio::spawn(async move {
                    tokio::time::sleep(start).await;
                    let got = b.consume(&planner(), &op(200 + n), &short, None).await;
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    (got.unwrap().is_some(), at)
                })
            })
            .collect();
        let mut wins = Vec::new();
        for t in tasks {
            let (won, at) = t.await.unwrap();
            if won {
                wins.push(at);
            }
        }
        assert!(wins.len() <= 1, "round {n}: {wins:?}");
        for at in &wins {
            // The use was decided before it returned: it cannot have started after expiry.
            assert!(
                *at <= expires_at,
                "round {n}: used at {at}, expired at {expires_at}"
            );
        }
        used += wins.len();
        let status = one.get(&id).await.unwrap().status();
        assert!(
            matches!(status, Status::Consumed | Status::Expired),
            "round {n}: {status:?}"
        );
    }
    eprintln!("{used} of 5 approvals used before they expired");
}
