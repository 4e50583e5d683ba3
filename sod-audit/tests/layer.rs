//! The recording layer in a real sod-core stack (identity, recording, policy) over a small
//! in-memory protocol: every operation is recorded, refusals too; nothing runs before its
//! attempt is committed; a failing sink refuses operations and the session stays usable; a
//! protocol that forwards without committing is caught.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sod_audit::testing::GatedSink;
use sod_audit::{CheckpointKey, Durability, Event, Outcome, RecordingLayer, verify};
use sod_core::audit::{Completion, CompletionHook, CompletionStatus, Observe};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, PolicyLayer};
use sod_core::policy::Policy;
use sod_core::{
    BoxError, Credential, KindSet, Operation, OperationKind, Peer, Refusal, RefusalCode, Request,
    Session, Target,
};
use tower::{Service, ServiceExt as _};

/// The toy protocol's response: the rows, and the hook the recording layer attached.
struct Reply {
    rows: u64,
    hook: Option<CompletionHook>,
}

impl Observe for Reply {
    fn on_complete(mut self, hook: CompletionHook) -> Self {
        self.hook = Some(hook);
        self
    }
}

impl Reply {
    /// The client read the whole response.
    fn finish(mut self) {
        if let Some(hook) = self.hook.take() {
            hook(&Completion {
                status: CompletionStatus::Ok,
                rows: Some(self.rows),
                ..Completion::default()
            });
        }
    }
}

/// The upstream: commits, then checks that the attempt is already in the log, then "runs".
#[derive(Clone)]
struct Upstream {
    sink: Arc<GatedSink>,
    ran: Arc<Mutex<Vec<String>>>,
    /// A broken protocol that forgets the commit point.
    skip_commit: bool,
}

impl Service<Request<()>> for Upstream {
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if !this.skip_commit {
                req.commit().await?;
                // Write-ahead: the attempt is in the log before the operation runs.
                let last = this.sink.memory().events().pop().unwrap();
                let Event::OperationAttempted { text, .. } = last else {
                    panic!("the last record before running is not the attempt: {last:?}");
                };
                assert_eq!(text, req.operation().text());
            }
            this.ran
                .lock()
                .unwrap()
                .push(req.operation().text().to_owned());
            Ok(Reply {
                rows: 3,
                hook: None,
            })
        })
    }
}

const POLICY: &str = r#"
[[rule]]
id = "reads"
effect = "allow"
kinds = ["connect", "read"]

[[rule]]
id = "writes"
effect = "allow"
kinds = ["write"]

[[rule]]
id = "no-ddl"
effect = "deny"
kinds = ["schema"]
reason = "schema changes go through review"
"#;

struct World {
    sink: Arc<GatedSink>,
    key: CheckpointKey,
    authority: Arc<CapabilityAuthority>,
    recording: RecordingLayer,
    ran: Arc<Mutex<Vec<String>>>,
}

impl World {
    fn new() -> Self {
        let key = CheckpointKey::generate("audit");
        let sink = Arc::new(GatedSink::new("gw-1", key.clone()));
        Self {
            recording: RecordingLayer::new(sink.clone()),
            sink,
            key,
            authority: Arc::new(CapabilityAuthority::new(
                "sod",
                CapabilityKey::generate("k1"),
            )),
            ran: Arc::default(),
        }
    }

    fn stack(
        &self,
        skip_commit: bool,
    ) -> impl Service<Request<()>, Response = Reply, Error = BoxError, Future: Send> + Send + use<>
    {
        tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(self.authority.clone()))
            .layer(self.recording.clone())
            .layer(PolicyLayer::new(
                Policy::from_toml("p.toml", POLICY).unwrap(),
            ))
            .service(Upstream {
                sink: self.sink.clone(),
                ran: self.ran.clone(),
                skip_commit,
            })
    }

    fn token(&self) -> String {
        self.authority
            .issue(
                CapabilitySpec::new("planner-1", Duration::from_secs(600))
                    .targets(["toy/*"])
                    .kinds(KindSet::of(&[
                        OperationKind::Connect,
                        OperationKind::Read,
                        OperationKind::Write,
                        OperationKind::Schema,
                    ]))
                    .on_behalf_of("alice"),
            )
            .unwrap()
            .encode()
    }

    /// A connected session and its stack.
    async fn connect(
        &self,
        skip_commit: bool,
    ) -> (
        Arc<Session>,
        impl Service<Request<()>, Response = Reply, Error = BoxError, Future: Send> + Send + use<>,
    ) {
        let session = Arc::new(Session::new(Target::new("toy/prod"), Peer::InProcess, None));
        let mut stack = self.stack(skip_commit);
        let req = Request::connect(session.clone(), Credential::new(self.token()), ());
        let reply = stack.ready().await.unwrap().call(req).await.unwrap();
        reply.finish();
        (session, stack)
    }

    fn verify(&self) -> verify::Report {
        verify::lines(
            self.sink.memory().lines(),
            &verify::Options::new([self.key.public()]),
        )
        .unwrap()
    }
}

fn op(kind: OperationKind, text: &str) -> Operation {
    Operation::builder(Target::new("toy/prod"), kind, text)
        .object("public.orders")
        .build()
}

async fn run<S>(stack: &mut S, session: &Arc<Session>, op: Operation) -> Result<Reply, BoxError>
where
    S: Service<Request<()>, Response = Reply, Error = BoxError>,
{
    stack
        .ready()
        .await?
        .call(Request::new(session.clone(), op, ()))
        .await
}

fn refusal(err: &BoxError) -> &Refusal {
    Refusal::find(&**err).expect("a refusal")
}

#[tokio::test]
async fn every_operation_is_recorded_with_its_decision_and_outcome() {
    let w = World::new();
    let (session, mut stack) = w.connect(false).await;
    run(&mut stack, &session, op(OperationKind::Read, "get orders"))
        .await
        .unwrap()
        .finish();
    run(
        &mut stack,
        &session,
        op(OperationKind::Write, "put orders 1"),
    )
    .await
    .unwrap()
    .finish();
    let err = run(
        &mut stack,
        &session,
        op(OperationKind::Schema, "drop orders"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(refusal(&err).code(), RefusalCode::PolicyDenied);
    drop(stack);

    let events = w.sink.memory().events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::SessionStarted { .. } => "started",
            Event::SessionEnded { .. } => "ended",
            Event::OperationAttempted { .. } => "attempted",
            Event::OperationCompleted { .. } => "completed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "attempted",
            "started",
            "completed", // connect
            "attempted",
            "completed", // read
            "attempted",
            "completed", // write
            "attempted",
            "completed", // refused DDL
            "ended"
        ]
    );
    let sid = session.id().to_string();
    assert!(events.iter().all(|e| e.session() == Some(&sid)));
    match &events[0] {
        Event::OperationAttempted {
            principal,
            on_behalf_of,
            capability,
            kind,
            decision,
            ..
        } => {
            assert_eq!(principal, "planner-1");
            assert_eq!(on_behalf_of.as_deref(), Some("alice"));
            assert!(capability.is_some(), "the capability id is recorded");
            assert_eq!(kind, "connect");
            assert_eq!(decision.effect, "allow");
            assert_eq!(decision.rule.as_deref(), Some("reads"));
        }
        e => panic!("{e:?}"),
    }
    match (&events[5], &events[6]) {
        (
            Event::OperationAttempted {
                operation,
                text,
                objects,
                decision,
                ..
            },
            Event::OperationCompleted {
                operation: done,
                outcome,
                rows,
                ..
            },
        ) => {
            assert_eq!(text, "put orders 1");
            assert_eq!(objects, &["public.orders"]);
            assert_eq!(decision.rule.as_deref(), Some("writes"));
            assert_eq!(operation, done);
            assert_eq!(*outcome, Outcome::Ok);
            assert_eq!(*rows, Some(3));
        }
        e => panic!("{e:?}"),
    }
    match (&events[7], &events[8]) {
        (
            Event::OperationAttempted { text, decision, .. },
            Event::OperationCompleted {
                outcome,
                error_code,
                ..
            },
        ) => {
            assert_eq!(text, "drop orders");
            assert_eq!(decision.effect, "deny");
            assert_eq!(decision.rule.as_deref(), Some("no-ddl"));
            assert_eq!(decision.code.as_deref(), Some("policy_denied"));
            assert!(decision.reason.contains("review"), "{decision:?}");
            assert_eq!(*outcome, Outcome::Refused);
            assert_eq!(error_code.as_deref(), Some("policy_denied"));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        *w.ran.lock().unwrap(),
        ["CONNECT", "get orders", "put orders 1"],
        "the refused DDL never ran"
    );
    assert_eq!(w.recording.uncommitted(), 0);
    assert_eq!(w.verify().records, events.len() as u64);
}

#[tokio::test]
async fn attempts_are_committed_at_the_durability_their_kind_requires() {
    let w = World::new();
    let (session, mut stack) = w.connect(false).await;
    run(&mut stack, &session, op(OperationKind::Read, "get orders"))
        .await
        .unwrap()
        .finish();
    run(
        &mut stack,
        &session,
        op(OperationKind::Write, "put orders 1"),
    )
    .await
    .unwrap()
    .finish();
    let events = w.sink.memory().events();
    let durabilities = w.sink.durabilities();
    let attempts: Vec<(String, Durability)> = events
        .iter()
        .zip(&durabilities)
        .filter_map(|(e, d)| match e {
            Event::OperationAttempted { kind, .. } => Some((kind.clone(), *d)),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("connect".to_owned(), Durability::Written),
            ("read".to_owned(), Durability::Written),
            ("write".to_owned(), Durability::Fsync),
        ]
    );
}

#[tokio::test]
async fn nothing_runs_while_its_commit_is_held() {
    let w = World::new();
    let (session, stack) = w.connect(false).await;
    let stack = Arc::new(tokio::sync::Mutex::new(stack));
    w.sink.hold();
    let pending = {
        let (stack, session) = (stack.clone(), session.clone());
        tokio::spawn(async move {
            let mut stack = stack.lock().await;
            run(
                &mut *stack,
                &session,
                op(OperationKind::Write, "put orders 7"),
            )
            .await
            .map(Reply::finish)
        })
    };
    assert!(w.sink.wait_for_held(1, Duration::from_secs(10)).await);
    assert!(
        !w.ran.lock().unwrap().iter().any(|t| t == "put orders 7"),
        "ran before its attempt was durable"
    );
    w.sink.release();
    pending.await.unwrap().unwrap();
    assert!(w.ran.lock().unwrap().iter().any(|t| t == "put orders 7"));
}

#[tokio::test]
async fn a_failing_sink_refuses_operations_and_the_session_stays_usable() {
    let w = World::new();
    let (session, mut stack) = w.connect(false).await;
    let ran_before = w.ran.lock().unwrap().len();
    w.sink.fail(true);
    for kind in [OperationKind::Read, OperationKind::Write] {
        let err = run(&mut stack, &session, op(kind, "put orders 2"))
            .await
            .err()
            .expect("refused");
        let r = refusal(&err);
        assert_eq!(r.code(), RefusalCode::AuditUnavailable, "{r}");
        assert!(r.reason().contains("audit unavailable"), "{r}");
    }
    assert_eq!(w.ran.lock().unwrap().len(), ran_before, "nothing ran");
    // A commit held and then failed: refused as well, and it did not run.
    w.sink.hold();
    let pending = {
        let session = session.clone();
        let mut stack = w.stack(false);
        tokio::spawn(async move {
            run(
                &mut stack,
                &session,
                op(OperationKind::Write, "put orders 3"),
            )
            .await
            .map(Reply::finish)
        })
    };
    assert!(w.sink.wait_for_held(1, Duration::from_secs(10)).await);
    w.sink.fail(true);
    let err = pending.await.unwrap().expect_err("refused");
    assert_eq!(refusal(&err).code(), RefusalCode::AuditUnavailable);
    assert_eq!(w.ran.lock().unwrap().len(), ran_before);
    // The sink recovers: the same session goes on.
    w.sink.fail(false);
    run(&mut stack, &session, op(OperationKind::Read, "get orders"))
        .await
        .unwrap()
        .finish();
    assert_eq!(w.ran.lock().unwrap().len(), ran_before + 1);
}

#[tokio::test]
async fn a_protocol_that_forwards_without_committing_is_caught() {
    let w = World::new();
    // The broken protocol cannot even connect: its Connect response is withheld.
    let session = Arc::new(Session::new(Target::new("toy/prod"), Peer::InProcess, None));
    let mut stack = w.stack(true);
    let err = stack
        .ready()
        .await
        .unwrap()
        .call(Request::connect(
            session.clone(),
            Credential::new(w.token()),
            (),
        ))
        .await
        .err()
        .expect("withheld");
    assert_eq!(refusal(&err).code(), RefusalCode::Misconfigured);
    assert_eq!(w.recording.uncommitted(), 1);
    let events = w.sink.memory().events();
    assert!(
        matches!(&events[0], Event::OperationAttempted { decision, .. } if decision.reason.contains("without committing")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_response_dropped_before_its_end_is_recorded_as_interrupted() {
    let w = World::new();
    let (session, mut stack) = w.connect(false).await;
    let reply = run(&mut stack, &session, op(OperationKind::Read, "get orders"))
        .await
        .unwrap();
    drop(reply);
    let last = w.sink.memory().events().pop().unwrap();
    assert!(
        matches!(
            last,
            Event::OperationCompleted {
                outcome: Outcome::Interrupted,
                ..
            }
        ),
        "{last:?}"
    );
}

#[tokio::test]
async fn operations_are_numbered_per_session() {
    let w = World::new();
    for _ in 0..2 {
        let (session, mut stack) = w.connect(false).await;
        run(&mut stack, &session, op(OperationKind::Read, "get orders"))
            .await
            .unwrap()
            .finish();
    }
    let numbers: Vec<u64> = w
        .sink
        .memory()
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::OperationAttempted { operation, .. } => Some(*operation),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, [0, 1, 0, 1]);
}

#[tokio::test]
async fn a_sink_that_hangs_refuses_instead_of_hanging() {
    let mut w = World::new();
    w.recording = w
        .recording
        .clone()
        .commit_timeout(Duration::from_millis(200));
    let (session, mut stack) = w.connect(false).await;
    let ran_before = w.ran.lock().unwrap().len();
    w.sink.hold();
    let err = run(
        &mut stack,
        &session,
        op(OperationKind::Write, "put orders 9"),
    )
    .await
    .err()
    .expect("refused");
    let r = refusal(&err);
    assert_eq!(r.code(), RefusalCode::AuditUnavailable, "{r}");
    assert!(r.reason().contains("did not commit within"), "{r}");
    assert_eq!(w.ran.lock().unwrap().len(), ran_before, "nothing ran");
    w.sink.release();
}
