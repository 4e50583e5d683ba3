//! The approval layer in a real sod-core stack (identity, policy, approval) over a small
//! in-memory protocol that commits before it runs anything: a write that needs approval waits,
//! times out with the approval id, runs once approved without a new wait, and never runs on
//! someone else's approval or on its own.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sod_approval::{ApprovalId, ApprovalLayer, Broker, MemoryStore, Status};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, PolicyLayer, UnauditedLayer};
use sod_core::policy::Policy;
use sod_core::{
    BoxError, Credential, KindSet, Operation, OperationKind, Peer, Principal, PrincipalKind,
    Refusal, RefusalCode, Request, Session, Target,
};
use tower::{Service, ServiceExt as _};

const POLICY: &str = r#"
[[rule]]
id = "connect-and-read"
effect = "allow"
kinds = ["connect", "read"]

[[rule]]
id = "writes-need-a-dba"
effect = "require_approval"
kinds = "write"
approvers = "dba"
quorum = 1
approval_ttl = "10m"
"#;

/// Runs what commits; records what ran.
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

struct World {
    broker: Broker,
    authority: Arc<CapabilityAuthority>,
    upstream: Upstream,
}

type Stack = Box<
    dyn tower::Service<
            Request<()>,
            Response = (),
            Error = BoxError,
            Future = BoxFuture<'static, Result<(), BoxError>>,
        > + Send,
>;

impl World {
    fn new() -> Self {
        Self {
            broker: Broker::new(Arc::new(MemoryStore::new()))
                .poll_interval(Duration::from_millis(50)),
            authority: Arc::new(CapabilityAuthority::new(
                "sod",
                CapabilityKey::generate("k"),
            )),
            upstream: Upstream::default(),
        }
    }

    /// A connected session of `planner-1` (acting for alice) whose writes wait up to `wait`.
    async fn session(&self, wait: Duration) -> (Arc<Session>, Stack) {
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(self.authority.clone()))
            .layer(UnauditedLayer::new())
            .layer(PolicyLayer::new(
                Policy::from_toml("p.toml", POLICY).unwrap(),
            ))
            .layer(ApprovalLayer::new(self.broker.clone(), wait))
            .service(self.upstream.clone());
        let mut stack: Stack = Box::new(stack);
        let token = self
            .authority
            .issue(
                CapabilitySpec::new("planner-1", Duration::from_secs(600))
                    .targets(["pg/*"])
                    .kinds(KindSet::of(&[
                        OperationKind::Connect,
                        OperationKind::Read,
                        OperationKind::Write,
                    ]))
                    .on_behalf_of("alice"),
            )
            .unwrap()
            .encode();
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
        (session, stack)
    }

    fn ran(&self) -> Vec<String> {
        self.upstream.ran.lock().unwrap().clone()
    }
}

fn write(text: &str) -> Operation {
    Operation::builder(Target::new("pg/prod"), OperationKind::Write, text)
        .object("public.orders")
        .build()
}

async fn run(stack: &mut Stack, session: &Arc<Session>, op: Operation) -> Result<(), BoxError> {
    stack
        .ready()
        .await?
        .call(Request::new(session.clone(), op, ()))
        .await
}

fn refusal(err: &BoxError) -> &Refusal {
    Refusal::find(&**err).expect("a refusal")
}

fn dba(id: &str) -> Principal {
    Principal::new(id, "https://idp", PrincipalKind::Human).with_groups(["dba"])
}

#[tokio::test]
async fn a_timed_out_write_names_its_approval_and_runs_once_approved() {
    let w = World::new();
    let (session, mut stack) = w.session(Duration::from_millis(100)).await;
    let update = "UPDATE orders SET amount = 9 WHERE id = 1";
    let err = run(&mut stack, &session, write(update)).await.unwrap_err();
    let r = refusal(&err);
    assert_eq!(r.code(), RefusalCode::ApprovalRequired);
    assert_eq!(r.rule(), Some("writes-need-a-dba"));
    let id = ApprovalId::new(r.approval_id().expect("the approval id"));
    assert!(r.reason().contains(id.as_str()), "{r}");
    assert!(w.ran().iter().all(|t| t != update), "ran without approval");

    // A retry before the decision waits on the same request: no second one.
    let err = run(&mut stack, &session, write(update)).await.unwrap_err();
    assert_eq!(refusal(&err).approval_id(), Some(id.as_str()));
    assert_eq!(w.broker.pending().await.unwrap().len(), 1);

    // What the approver sees: the full text and the rule that asked.
    let pending = w.broker.get(&id).await.unwrap();
    assert_eq!(pending.operation.text, update);
    assert_eq!(pending.rule.as_deref(), Some("writes-need-a-dba"));
    assert_eq!(pending.requester.on_behalf_of.as_deref(), Some("alice"));

    w.broker.decide(&id, &dba("bob"), true, None).await.unwrap();
    // Runs at once, on the approval; and only once.
    run(&mut stack, &session, write(update)).await.unwrap();
    assert_eq!(w.ran().iter().filter(|t| *t == update).count(), 1);
    assert_eq!(w.broker.get(&id).await.unwrap().status(), Status::Consumed);
    let err = run(&mut stack, &session, write(update)).await.unwrap_err();
    let again = refusal(&err).approval_id().unwrap().to_owned();
    assert_ne!(again, id.as_str(), "a second run needs its own approval");
}

#[tokio::test]
async fn an_approval_given_while_waiting_lets_the_write_through() {
    let w = World::new();
    let (session, mut stack) = w.session(Duration::from_secs(30)).await;
    let update = "UPDATE orders SET amount = 10 WHERE id = 2";
    let approver = {
        let broker = w.broker.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(r) = broker.pending().await.unwrap().pop() {
                    return broker.decide(&r.id, &dba("bob"), true, None).await;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no request appeared"
                );
                tokio::task::yield_now().await;
            }
        })
    };
    run(&mut stack, &session, write(update)).await.unwrap();
    approver.await.unwrap().unwrap();
    assert_eq!(w.ran().iter().filter(|t| *t == update).count(), 1);
}

#[tokio::test]
async fn a_denied_write_is_refused_with_the_reason() {
    let w = World::new();
    let (session, mut stack) = w.session(Duration::from_secs(30)).await;
    let delete = "DELETE FROM orders";
    let denier = {
        let broker = w.broker.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(r) = broker.pending().await.unwrap().pop() {
                    return broker
                        .decide(&r.id, &dba("bob"), false, Some("too broad".into()))
                        .await;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no request appeared"
                );
                tokio::task::yield_now().await;
            }
        })
    };
    let err = run(&mut stack, &session, write(delete)).await.unwrap_err();
    denier.await.unwrap().unwrap();
    let r = refusal(&err);
    assert_eq!(r.code(), RefusalCode::ApprovalDenied);
    assert!(r.reason().contains("bob (too broad)"), "{r}");
    assert!(r.approval_id().is_some());
    assert!(!w.ran().iter().any(|t| t == delete), "ran although denied");
}

#[tokio::test]
async fn an_approval_does_not_cover_a_changed_constant_or_another_requester() {
    let w = World::new();
    let (session, mut stack) = w.session(Duration::from_millis(50)).await;
    let approved = "UPDATE orders SET amount = 1 WHERE id = 3";
    let err = run(&mut stack, &session, write(approved))
        .await
        .unwrap_err();
    let id = ApprovalId::new(refusal(&err).approval_id().unwrap());
    w.broker.decide(&id, &dba("bob"), true, None).await.unwrap();
    // A changed constant asks anew.
    let err = run(
        &mut stack,
        &session,
        write("UPDATE orders SET amount = 1 WHERE id = 4"),
    )
    .await
    .unwrap_err();
    assert_ne!(refusal(&err).approval_id(), Some(id.as_str()));
    // The approved one still runs.
    run(&mut stack, &session, write(approved)).await.unwrap();
    // Reads are not held at all.
    let read = Operation::builder(Target::new("pg/prod"), OperationKind::Read, "SELECT 1").build();
    run(&mut stack, &session, read).await.unwrap();
    assert_eq!(w.ran().len(), 3, "{:?}", w.ran()); // connect, the approved update, the read
}

#[tokio::test]
async fn a_request_opened_on_laxer_terms_is_neither_reused_nor_used() {
    let w = World::new();
    let (session, mut stack) = w.session(Duration::from_millis(50)).await;
    let update = "UPDATE orders SET amount = 77 WHERE id = 5";
    // Opened under other rules: approvers from `dev`, open for a day.
    let lax = sod_approval::ApprovalRequest::new(
        sod_approval::Requester::new("planner-1").on_behalf_of("alice"),
        &write(update),
        vec!["dev".into()],
        1,
        Duration::from_secs(86_400),
    );
    let lax_id = w.broker.submit(lax).await.unwrap();
    // Still pending: the statement does not wait on it, it asks anew under today's rule.
    let err = run(&mut stack, &session, write(update)).await.unwrap_err();
    let r = refusal(&err);
    assert_eq!(r.code(), RefusalCode::ApprovalRequired);
    assert_ne!(
        r.approval_id(),
        Some(lax_id.as_str()),
        "a request of its own"
    );
    // Approved by `dev`: still not enough.
    let dev = Principal::new("dan", "https://idp", PrincipalKind::Human).with_groups(["dev"]);
    w.broker.decide(&lax_id, &dev, true, None).await.unwrap();
    let err = run(&mut stack, &session, write(update)).await.unwrap_err();
    assert_ne!(refusal(&err).approval_id(), Some(lax_id.as_str()));
    assert!(w.ran().iter().all(|t| t != update), "ran on a dev approval");
}
