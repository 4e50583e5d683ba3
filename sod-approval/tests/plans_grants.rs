//! Plans (operations approved ahead of time as a whole, each usable once) and grants
//! (just-in-time access to a class of operations, revocable), with the same SoD rules; a plan
//! through the full stack with a capability bound to it; plan entries raced on PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sod_approval::{
    ApprovalLayer, ApprovalRequest, Broker, BrokerError, GrantScope, MemoryStore, PostgresStore,
    Requester, Status,
};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, PolicyLayer, UnauditedLayer};
use sod_core::policy::Policy;
use sod_core::{
    BoxError, Credential, Glob, KindSet, Operation, OperationKind, Peer, Principal, PrincipalKind,
    Refusal, RefusalCode, Request, Session, Target,
};
use tower::{Service, ServiceExt as _};

/// The policy terms the tests' approvals are given on.
fn spec() -> sod_core::policy::ApprovalSpec {
    sod_core::policy::ApprovalSpec {
        approver_groups: vec!["dba".into()],
        quorum: 1,
        ttl: std::time::Duration::from_secs(600),
    }
}

fn write(text: &str, object: &str) -> Operation {
    Operation::builder(Target::new("pg/prod"), OperationKind::Write, text)
        .object(object)
        .build()
}

fn planner() -> Requester {
    Requester::new("planner-1").on_behalf_of("alice")
}

fn dba(id: &str) -> Principal {
    Principal::new(id, "idp", PrincipalKind::Human).with_groups(["dba"])
}

fn plan_ops() -> Vec<Operation> {
    vec![
        write(
            "UPDATE orders SET status = 'shipped' WHERE id = 1",
            "public.orders",
        ),
        write(
            "UPDATE orders SET status = 'shipped' WHERE id = 2",
            "public.orders",
        ),
        write("DELETE FROM carts WHERE id = 9", "public.carts"),
    ]
}

fn plan() -> ApprovalRequest {
    ApprovalRequest::plan(
        planner(),
        &plan_ops(),
        vec!["dba".into()],
        1,
        Duration::from_secs(600),
    )
    .unwrap()
}

#[tokio::test]
async fn a_plan_is_approved_as_a_whole_and_each_entry_runs_once() {
    let b = Broker::new(Arc::new(MemoryStore::new()));
    assert!(
        ApprovalRequest::plan(
            planner(),
            &[],
            vec!["dba".into()],
            1,
            Duration::from_secs(60)
        )
        .is_none(),
        "an empty plan is not a plan"
    );
    let id = b.submit(plan()).await.unwrap();
    let shown = b.get(&id).await.unwrap();
    assert!(
        shown
            .operation
            .text
            .starts_with("plan of 3 operations: UPDATE")
    );
    assert_eq!(shown.operation.objects, ["public.orders", "public.carts"]);
    // Nothing runs before approval; the same SoD rules hold for plans.
    assert!(
        b.consume(&planner(), &plan_ops()[0], &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        b.decide(
            &id,
            &Principal::new("alice", "idp", PrincipalKind::Human).with_groups(["dba"]),
            true,
            None
        )
        .await,
        Err(BrokerError::SelfApproval(_))
    ));
    b.decide(&id, &dba("bob"), true, None).await.unwrap();
    // Entries in any order, once each; nothing outside the plan.
    let outside = write(
        "UPDATE orders SET status = 'shipped' WHERE id = 3",
        "public.orders",
    );
    assert!(
        b.consume(&planner(), &outside, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    for op in [&plan_ops()[2], &plan_ops()[0]] {
        let evidence = b
            .consume(&planner(), op, &spec(), None)
            .await
            .unwrap()
            .expect("an entry");
        assert_eq!(evidence.plan.as_deref(), Some(id.as_str()));
        assert_eq!(evidence.fingerprint, op.fingerprint());
        assert_eq!(evidence.approvers, ["bob"]);
        assert!(
            b.consume(&planner(), op, &spec(), None)
                .await
                .unwrap()
                .is_none(),
            "used once"
        );
    }
    // Another requester cannot use the plan.
    let other = Requester::new("planner-2").on_behalf_of("alice");
    assert!(
        b.consume(&other, &plan_ops()[1], &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.get(&id).await.unwrap().status(), Status::Approved);
    assert!(
        b.consume(&planner(), &plan_ops()[1], &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(b.get(&id).await.unwrap().status(), Status::Consumed);
}

fn orders_grant(window: Duration) -> ApprovalRequest {
    ApprovalRequest::grant(
        planner(),
        Target::new("pg/prod"),
        GrantScope {
            kinds: KindSet::of(&[OperationKind::Read, OperationKind::Write]),
            targets: vec![Glob::new("pg/prod")],
            objects: vec![Glob::new("public.orders*")],
        },
        vec!["dba".into()],
        1,
        window,
    )
}

#[tokio::test]
async fn a_grant_covers_its_class_until_revoked() {
    let b = Broker::new(Arc::new(MemoryStore::new()));
    let id = b
        .submit(orders_grant(Duration::from_secs(600)))
        .await
        .unwrap();
    let update = write("UPDATE orders SET amount = 1", "public.orders");
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none(),
        "not yet approved"
    );
    b.decide(&id, &dba("bob"), true, None).await.unwrap();
    // Any number of matching operations.
    for n in 0..3 {
        let op = write(
            &format!("UPDATE orders SET amount = {n}"),
            "public.orders_archive",
        );
        let evidence = b
            .consume(&planner(), &op, &spec(), None)
            .await
            .unwrap()
            .expect("granted");
        assert_eq!(evidence.fingerprint, op.fingerprint());
        assert_eq!(evidence.approval_ids, [id.to_string()]);
    }
    // Outside the class: another object, a riskier kind, another target, another requester.
    let outside = [
        write("UPDATE customers SET email = ''", "public.customers"),
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Schema,
            "DROP TABLE orders",
        )
        .object("public.orders")
        .build(),
        Operation::builder(
            Target::new("pg/staging"),
            OperationKind::Write,
            "UPDATE orders SET amount = 1",
        )
        .object("public.orders")
        .build(),
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Write,
            "UPDATE orders SET amount = 1 FROM customers",
        )
        .objects(["public.orders", "public.customers"])
        .build(),
        // Objects not all known, or a collection not wholly inside `public.orders*`.
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Write,
            "UPDATE orders SET amount = f()",
        )
        .object("public.orders")
        .objects_unknown("f may write anywhere")
        .build(),
        Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Write,
            "DELETE public.*",
        )
        .collection("public.")
        .build(),
    ];
    // A collection inside the class is covered.
    let inside = Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        "DELETE archive",
    )
    .collection("public.orders_archive_")
    .build();
    assert!(
        b.consume(&planner(), &inside, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    for op in &outside {
        assert!(
            b.consume(&planner(), op, &spec(), None)
                .await
                .unwrap()
                .is_none(),
            "{op:?}"
        );
    }
    assert!(
        b.consume(&Requester::new("planner-2"), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    // Revocation: an outsider may not; the requester's human may; then it covers nothing.
    assert!(matches!(
        b.revoke(&id, &Principal::new("mallory", "idp", PrincipalKind::Human))
            .await,
        Err(BrokerError::NotApprover { .. })
    ));
    let revoked = b
        .revoke(&id, &Principal::new("alice", "idp", PrincipalKind::Human))
        .await
        .unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        b.revoke(&id, &dba("bob")).await,
        Err(BrokerError::NotPending {
            status: Status::Revoked,
            ..
        })
    ));

    // An expired grant covers nothing.
    let mut stale = orders_grant(Duration::from_secs(600));
    stale.expires_at = stale.created_at.saturating_sub(1);
    let stale_id = b.submit(stale).await.unwrap();
    assert!(b.decide(&stale_id, &dba("bob"), true, None).await.is_err());
    assert!(
        b.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}

// ---- a plan through the stack, with a capability bound to it -------------------------------

const POLICY: &str = r#"
[[rule]]
id = "connect"
effect = "allow"
kinds = ["connect", "read"]

[[rule]]
id = "writes-need-a-dba"
effect = "require_approval"
kinds = "write"
approvers = "dba"
"#;

#[derive(Clone, Default)]
struct Upstream {
    ran: Arc<Mutex<Vec<String>>>,
}

impl Service<Request<()>> for Upstream {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let ran = self.ran.clone();
        Box::pin(async move {
            req.commit().await?;
            ran.lock().unwrap().push(req.operation().text().to_owned());
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_plan_bound_capability_runs_its_entries_without_waiting_and_nothing_else() {
    let broker = Broker::new(Arc::new(MemoryStore::new()));
    let id = broker.submit(plan()).await.unwrap();
    broker.decide(&id, &dba("bob"), true, None).await.unwrap();
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("k"),
    ));
    let token = authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(600))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Connect, OperationKind::Write]))
                .on_behalf_of("alice")
                .plan(id.as_str()),
        )
        .unwrap()
        .encode();
    let upstream = Upstream::default();
    let mut stack = tower::ServiceBuilder::new()
        .layer(IdentityLayer::new(authority.clone()))
        .layer(UnauditedLayer::new())
        .layer(PolicyLayer::new(
            Policy::from_toml("p.toml", POLICY).unwrap(),
        ))
        .layer(ApprovalLayer::new(
            broker.clone(),
            Duration::from_millis(50),
        ))
        .service(upstream.clone());
    let session = Arc::new(Session::new(Target::new("pg/prod"), Peer::InProcess, None));
    stack
        .ready()
        .await
        .unwrap()
        .call(Request::connect(
            session.clone(),
            Credential::new(token),
            (),
        ))
        .await
        .unwrap();
    for op in plan_ops() {
        stack
            .ready()
            .await
            .unwrap()
            .call(Request::new(session.clone(), op, ()))
            .await
            .unwrap();
    }
    assert_eq!(upstream.ran.lock().unwrap().len(), 4); // connect + the three entries
    // An entry a second time, or anything outside the plan: refused, not run.
    for op in [
        plan_ops()[0].clone(),
        write(
            "UPDATE orders SET status = 'lost' WHERE id = 1",
            "public.orders",
        ),
    ] {
        let err = stack
            .ready()
            .await
            .unwrap()
            .call(Request::new(session.clone(), op, ()))
            .await
            .unwrap_err();
        let code = Refusal::find(&*err).unwrap().code();
        assert_eq!(code, RefusalCode::CapabilityScope, "{err}");
    }
    assert_eq!(upstream.ran.lock().unwrap().len(), 4);
    // Refused at once: no approver was asked for a one-off approval.
    assert!(broker.store().pending().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_entries_and_grants_on_postgres_replicas() {
    let pg = tokio::task::spawn_blocking(|| {
        sod_testkit::EphemeralPostgres::start().expect("postgres starts")
    })
    .await
    .unwrap();
    let store = || async {
        PostgresStore::connect(&pg.conninfo("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap()
    };
    let one = Broker::new(Arc::new(store().await));
    let two = Broker::new(Arc::new(store().await));
    let id = one.submit(plan()).await.unwrap();
    two.decide(&id, &dba("bob"), true, None).await.unwrap();
    // Twenty executors on two replicas race for the same entry: one wins.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let b = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                b.consume(&planner(), &plan_ops()[0], &spec(), None)
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
    // A grant approved on one replica is honoured on the other, until revoked there.
    let grant = one
        .submit(orders_grant(Duration::from_secs(600)))
        .await
        .unwrap();
    one.decide(&grant, &dba("erin"), true, None).await.unwrap();
    let update = write("UPDATE orders SET amount = 1", "public.orders");
    assert!(
        two.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    two.revoke(&grant, &dba("erin")).await.unwrap();
    assert!(
        one.consume(&planner(), &update, &spec(), None)
            .await
            .unwrap()
            .is_none()
    );
}
