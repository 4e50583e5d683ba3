//! A small protocol that proves the abstraction end to end: an in-memory table store with a
//! four-word query language, wrapped by the full sod-core stack (identity, policy, masking) and
//! reached both through a planner's `CapabilityHandle` and by an executor presenting an OIDC
//! token. Nothing here is sod-specific plumbing: the protocol only describes operations,
//! implements `Maskable`, and calls `Request::commit` before touching its data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use sod_core::capability::{
    CapabilityAuthority, CapabilityHandle, CapabilityKey, CapabilitySpec, Caveat,
};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifiers};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer, UnauditedLayer};
use sod_core::masking::{ColumnRef, Field, MaskProfiles, Maskable, Masked, Masker, Provenance};
use sod_core::policy::Policy;
use sod_core::{
    ApprovalEvidence, BoxError, Credential, KindSet, Operation, OperationKind, Peer, Refusal,
    RefusalCode, Request, Session, Target,
};
use tower::{Service, ServiceBuilder, ServiceExt as _};

// ---- the toy protocol --------------------------------------------------------------------

/// Protocol bodies: a connect, or a query such as `get customers`, `upper customers.email`,
/// `put orders 1 amount=5`, `drop customers`, `echo some text`.
#[derive(Clone, Debug)]
enum Toy {
    Connect,
    Query(String),
}

/// A result set with a free-text note (think: notices, error messages).
#[derive(Clone, Debug, Default, PartialEq)]
struct Rows {
    fields: Vec<Field>,
    rows: Vec<Vec<Option<String>>>,
    note: Option<String>,
}

impl Maskable for Rows {
    fn mask(mut self, masker: Masker) -> Self {
        let plan = masker.plan(&self.fields); // once per result set
        let mut buf = Vec::new();
        for row in &mut self.rows {
            for (i, cell) in row.iter_mut().enumerate() {
                let Some(v) = cell else { continue };
                match masker.apply(plan.action(i), v.as_bytes(), &mut buf) {
                    Masked::Unchanged => {}
                    Masked::Replaced => *v = String::from_utf8(buf.clone()).expect("utf8"),
                    Masked::Null => *cell = None,
                }
            }
        }
        if let Some(n) = &mut self.note {
            *n = masker.scrub(n).into_owned();
        }
        self
    }
}

/// The protocol's analyzer: the runtime's code, not the planner's.
fn describe(target: &Target, body: &Toy) -> Operation {
    let Toy::Query(q) = body else {
        return Operation::connect(target.clone());
    };
    let words: Vec<&str> = q.split_whitespace().collect();
    let table = |t: &str| format!("public.{}", t.split('.').next().unwrap_or(t));
    let build = |kind, objects: Vec<String>| {
        Operation::builder(target.clone(), kind, words.join(" "))
            .objects(objects)
            .build()
    };
    match words.as_slice() {
        ["get", t] => build(OperationKind::Read, vec![table(t)]),
        ["upper", tc] if tc.contains('.') => build(OperationKind::Read, vec![table(tc)]),
        ["echo", ..] => build(OperationKind::Read, vec![]),
        ["put", t, _id, kv] if kv.contains('=') => build(OperationKind::Write, vec![table(t)]),
        ["drop", t] => build(OperationKind::Schema, vec![table(t)]),
        _ => Operation::not_understood(target.clone(), q.clone(), format!("cannot parse `{q}`")),
    }
}

type Table = (Vec<&'static str>, BTreeMap<String, Vec<String>>);

/// The upstream "database": it refuses anything `authorize` does not pass, and counts what it
/// actually carried out, so tests can prove that refusals forwarded nothing.
#[derive(Clone)]
struct Store {
    tables: Arc<Mutex<BTreeMap<String, Table>>>,
    executed: Arc<AtomicUsize>,
}

impl Store {
    fn seeded() -> Self {
        let mut tables = BTreeMap::new();
        let mut customers = BTreeMap::new();
        customers.insert(
            "1".into(),
            vec!["1".into(), "Alice".into(), "alice@example.com".into()],
        );
        customers.insert(
            "2".into(),
            vec!["2".into(), "Bob".into(), "bob@example.org".into()],
        );
        tables.insert(
            "customers".to_owned(),
            (vec!["id", "name", "email"], customers),
        );
        let mut orders = BTreeMap::new();
        orders.insert("1".into(), vec!["1".into(), "10".into()]);
        tables.insert("orders".to_owned(), (vec!["id", "amount"], orders));
        Self {
            tables: Arc::new(Mutex::new(tables)),
            executed: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn executed(&self) -> usize {
        self.executed.load(Ordering::SeqCst)
    }

    fn cell(&self, table: &str, id: &str, col: usize) -> String {
        self.tables.lock().expect("lock")[table].1[id][col].clone()
    }

    fn run(&self, q: &str) -> Result<Rows, BoxError> {
        let mut tables = self.tables.lock().expect("lock");
        let words: Vec<&str> = q.split_whitespace().collect();
        let col = |t: &str, c: &str| Provenance::Column(ColumnRef::new("public", t, c));
        Ok(match words.as_slice() {
            ["get", t] => {
                let (cols, rows) = tables.get(*t).ok_or("no such table")?;
                Rows {
                    fields: cols.iter().map(|c| Field::new(*c, col(t, c))).collect(),
                    rows: rows
                        .values()
                        .map(|r| r.iter().cloned().map(Some).collect())
                        .collect(),
                    note: None,
                }
            }
            ["upper", tc] => {
                let (t, c) = tc.split_once('.').ok_or("table.column")?;
                let (cols, rows) = tables.get(t).ok_or("no such table")?;
                let i = cols.iter().position(|x| x == &c).ok_or("no such column")?;
                Rows {
                    fields: vec![Field::new(
                        "upper",
                        Provenance::Derived(vec![ColumnRef::new("public", t, c)]),
                    )],
                    rows: rows
                        .values()
                        .map(|r| vec![Some(r[i].to_uppercase())])
                        .collect(),
                    note: None,
                }
            }
            ["echo", rest @ ..] => Rows {
                fields: vec![Field::new("echo", Provenance::Constant)],
                rows: vec![vec![Some(rest.join(" "))]],
                note: Some(format!("you said: {}", rest.join(" "))),
            },
            ["put", t, id, kv] => {
                let (k, v) = kv.split_once('=').ok_or("k=v")?;
                let (cols, rows) = tables.get_mut(*t).ok_or("no such table")?;
                let i = cols.iter().position(|x| x == &k).ok_or("no such column")?;
                rows.get_mut(*id).ok_or("no such row")?[i] = v.to_owned();
                Rows::default()
            }
            ["drop", t] => {
                tables.remove(*t);
                Rows::default()
            }
            _ => return Err("unparseable".into()),
        })
    }
}

impl Service<Request<Toy>> for Store {
    type Response = Rows;
    type Error = BoxError;
    type Future = futures_util::future::BoxFuture<'static, Result<Rows, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Toy>) -> Self::Future {
        let store = self.clone();
        Box::pin(async move {
            // The commit point: nothing is carried out unless every layer said yes and the
            // audit record (if the stack keeps one) is written.
            req.commit().await?;
            let result = match req.body() {
                Toy::Connect => Ok(Rows::default()),
                Toy::Query(q) => store.run(q),
            };
            if result.is_ok() {
                store.executed.fetch_add(1, Ordering::SeqCst);
            }
            result
        })
    }
}

// ---- the deployment ------------------------------------------------------------------------

const POLICY: &str = r#"
default_mask = "standard"

[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"
reason = "the gateway does not understand this request"

[[rule]]
id = "planners-read"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]

[[rule]]
id = "planners-no-ddl"
effect = "deny"
principal_kinds = "planner"
kinds = "schema"
reason = "schema changes are not for planners"

[[rule]]
id = "orders-need-approval"
effect = "require_approval"
principal_kinds = "planner"
kinds = "write"
objects = "public.orders"
approvers = "approvers"

[[rule]]
id = "executor"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write"]
mask = "none"
"#;

const MASKS: &str = r#"
[[profile]]
name = "standard"
detectors = ["email"]

[[profile.rule]]
column = "*.customers.email"
strategy = "partial"
keep_last = 3
"#;

const ISS: &str = "https://idp.test";
const AUD: &str = "sod";

struct World {
    store: Store,
    authority: Arc<CapabilityAuthority>,
    idp: sod_testkit::OidcIssuer,
    verifiers: Verifiers,
    policy: Arc<Policy>,
    masks: Arc<MaskProfiles>,
    target: Target,
}

impl World {
    fn new() -> Self {
        let authority = Arc::new(CapabilityAuthority::new(
            "sod",
            CapabilityKey::generate("k1"),
        ));
        let idp = sod_testkit::OidcIssuer::new(ISS, AUD);
        let oidc = OidcVerifier::new(OidcConfig::new(
            ISS,
            AUD,
            JwksSource::Static(idp.jwks().to_string()),
        ))
        .expect("oidc");
        Self {
            store: Store::seeded(),
            verifiers: Verifiers::new().with(oidc).with(authority.clone()),
            authority,
            idp,
            policy: Arc::new(Policy::from_toml("policy.toml", POLICY).expect("policy")),
            masks: Arc::new(MaskProfiles::from_toml("masks.toml", MASKS).expect("masks")),
            target: Target::new("toy/prod"),
        }
    }

    /// The full stack, in the order ARCHITECTURE.md gives (recording and approval live in other crates).
    fn stack(
        &self,
    ) -> impl Service<Request<Toy>, Response = Rows, Error = BoxError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static {
        ServiceBuilder::new()
            .layer(UnauditedLayer::new())
            .layer(IdentityLayer::new(self.verifiers.clone()))
            .layer(PolicyLayer::shared(self.policy.clone()))
            .layer(MaskingLayer::shared(self.masks.clone()))
            .service(self.store.clone())
    }

    fn capability(&self, kinds: &[OperationKind]) -> String {
        self.authority
            .issue(
                CapabilitySpec::new("planner-1", Duration::from_secs(600))
                    .targets(["toy/*"])
                    .kinds(KindSet::of(kinds))
                    .on_behalf_of("alice"),
            )
            .expect("issue")
            .encode()
    }

    async fn planner(&self, kinds: &[OperationKind]) -> CapabilityHandle<Toy, Rows> {
        let (handle, _) = CapabilityHandle::connect(
            self.stack(),
            describe,
            self.target.clone(),
            &self.capability(kinds),
            Toy::Connect,
        )
        .await
        .expect("planner connects");
        handle
    }
}

fn refusal(err: BoxError) -> Refusal {
    Refusal::find(&*err)
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {err}"))
}

fn q(s: &str) -> Toy {
    Toy::Query(s.into())
}

const ALL_PLANNER: &[OperationKind] = &[
    OperationKind::Read,
    OperationKind::Write,
    OperationKind::Schema,
];

// ---- the tests -----------------------------------------------------------------------------

#[tokio::test]
async fn planner_reads_are_masked() {
    let w = World::new();
    let planner = w.planner(ALL_PLANNER).await;
    assert_eq!(
        planner.principal().map(|p| p.id.as_str()),
        Some("planner-1")
    );
    let rows = planner
        .submit(q("get customers"))
        .await
        .expect("read allowed");
    assert_eq!(
        rows.rows[0],
        [
            Some("1".into()),
            Some("Alice".into()),
            Some("*****@*******.com".into())
        ]
    );
    assert!(
        rows.rows
            .iter()
            .all(|r| !r[2].as_deref().unwrap_or("").contains("example"))
    );
    // A value computed from a sensitive column is masked like the column.
    let upper = planner
        .submit(q("upper customers.email"))
        .await
        .expect("read");
    assert!(
        upper
            .rows
            .iter()
            .all(|r| r[0].as_deref().is_some_and(|v| !v.contains("EXAMPLE"))),
        "{upper:?}"
    );
    // Computed from a plain column: passes.
    let names = planner
        .submit(q("upper customers.name"))
        .await
        .expect("read");
    assert_eq!(names.rows[0][0].as_deref(), Some("ALICE"));
    // Free text is scrubbed by the detectors.
    let echo = planner
        .submit(q("echo write to carol@example.net"))
        .await
        .expect("read");
    assert_eq!(echo.note.as_deref(), Some("you said: write to ****"));
}

#[tokio::test]
async fn planner_schema_changes_are_denied_and_nothing_is_forwarded() {
    let w = World::new();
    let planner = w.planner(ALL_PLANNER).await;
    let before = w.store.executed();
    let r = refusal(
        planner
            .submit(q("drop customers"))
            .await
            .expect_err("denied"),
    );
    assert_eq!(r.code(), RefusalCode::PolicyDenied);
    assert_eq!(r.rule(), Some("planners-no-ddl"));
    assert_eq!(r.reason(), "schema changes are not for planners");
    assert_eq!(w.store.executed(), before);
    assert!(
        w.store
            .tables
            .lock()
            .expect("lock")
            .contains_key("customers")
    );
}

#[tokio::test]
async fn requests_not_understood_are_refused_with_the_parser_message() {
    let w = World::new();
    // A capability does not grant `unknown`, so the capability refuses it, naming the reason.
    let planner = w.planner(ALL_PLANNER).await;
    let r = refusal(
        planner
            .submit(q("selec * from customers"))
            .await
            .expect_err("denied"),
    );
    assert_eq!(r.rule(), Some("capability"));
    assert!(
        r.reason()
            .ends_with("cannot parse `selec * from customers`"),
        "{}",
        r.reason()
    );
    // The session stays usable.
    planner.submit(q("get orders")).await.expect("still usable");
    // Even a capability that grants `unknown` meets the policy's deny.
    let reckless = w
        .planner(&[OperationKind::Read, OperationKind::Unknown])
        .await;
    let r = refusal(
        reckless
            .submit(q("selec * from customers"))
            .await
            .expect_err("denied"),
    );
    assert_eq!(r.rule(), Some("not-understood"));
    assert_eq!(
        r.reason(),
        "the gateway does not understand this request: cannot parse `selec * from customers`"
    );
}

#[tokio::test]
async fn writes_needing_approval_run_only_with_matching_evidence() {
    let w = World::new();
    let planner = w.planner(ALL_PLANNER).await;
    // No approval layer in this stack: the upstream's authorize refuses (fail closed).
    let r = refusal(
        planner
            .submit(q("put orders 1 amount=99"))
            .await
            .expect_err("needs approval"),
    );
    assert_eq!(r.code(), RefusalCode::ApprovalRequired);
    assert_eq!(r.rule(), Some("orders-need-approval"));
    assert_eq!(w.store.cell("orders", "1", 1), "10");

    // A stand-in approval layer that attaches evidence for one approved fingerprint, the way
    // sod-approval will.
    let approved = describe(&w.target, &q("put orders 1 amount=99")).fingerprint();
    let approve = tower::layer::layer_fn(move |inner| Approver {
        inner,
        approved,
        approvers: vec!["bob".into()],
    });
    let stack = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .layer(PolicyLayer::shared(w.policy.clone()))
        .layer(approve)
        .layer(MaskingLayer::shared(w.masks.clone()))
        .service(w.store.clone());
    let (planner, _) = CapabilityHandle::connect(
        stack,
        describe,
        w.target.clone(),
        &w.capability(ALL_PLANNER),
        Toy::Connect,
    )
    .await
    .expect("connect");
    planner
        .submit(q("put orders 1 amount=99"))
        .await
        .expect("approved exactly this");
    assert_eq!(w.store.cell("orders", "1", 1), "99");
    // A changed constant is a different operation: the approval does not cover it (I3).
    let r = refusal(
        planner
            .submit(q("put orders 1 amount=100"))
            .await
            .expect_err("not approved"),
    );
    assert_eq!(r.code(), RefusalCode::ApprovalRequired);
    assert!(r.reason().contains("different operation"));
    assert_eq!(w.store.cell("orders", "1", 1), "99");
}

#[derive(Clone)]
struct Approver<S> {
    inner: S,
    approved: sod_core::Fingerprint,
    approvers: Vec<String>,
}

impl<S: Service<Request<Toy>>> Service<Request<Toy>> for Approver<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Toy>) -> S::Future {
        if matches!(
            req.decision().map(|d| d.effect()),
            Some(sod_core::policy::Effect::RequireApproval(_))
        ) {
            req.set_approval(ApprovalEvidence {
                fingerprint: self.approved,
                approval_ids: vec!["ap-1".into()],
                approvers: self.approvers.clone(),
                plan: None,
            });
        }
        self.inner.call(req)
    }
}

#[tokio::test]
async fn executor_with_an_oidc_token_sees_real_values_and_writes() {
    let w = World::new();
    let session = Arc::new(Session::new(
        w.target.clone(),
        Peer::InProcess,
        Some("app".into()),
    ));
    let token = w.idp.token().subject("executor-1").kind("executor").sign();
    let mut stack = w.stack();
    stack
        .ready()
        .await
        .expect("ready")
        .call(Request::connect(
            session.clone(),
            Credential::new(token),
            Toy::Connect,
        ))
        .await
        .expect("connect");
    let run = |body: Toy| {
        let op = describe(&w.target, &body);
        w.stack().oneshot(Request::new(session.clone(), op, body))
    };
    let rows = run(q("get customers")).await.expect("read");
    assert_eq!(rows.rows[0][2].as_deref(), Some("alice@example.com"));
    run(q("put customers 2 name=Robert")).await.expect("write");
    assert_eq!(w.store.cell("customers", "2", 1), "Robert");
    let r = refusal(
        run(q("drop orders"))
            .await
            .expect_err("no rule allows executors to drop"),
    );
    assert_eq!(r.rule(), Some("default-deny"));
}

#[tokio::test]
async fn the_capability_bounds_what_policy_would_allow() {
    let w = World::new();
    // Policy lets planners read customers; this capability only covers the orders table.
    let token = w
        .authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(600))
                .targets(["toy/*"])
                .kinds(KindSet::of(&[OperationKind::Read]))
                .objects(["public.orders"]),
        )
        .expect("issue")
        .attenuate(Caveat::DenyObjects(vec![sod_core::Glob::new(
            "public.secrets",
        )]))
        .expect("narrow")
        .encode();
    let (planner, _) =
        CapabilityHandle::connect(w.stack(), describe, w.target.clone(), &token, Toy::Connect)
            .await
            .expect("connect");
    planner.submit(q("get orders")).await.expect("in scope");
    let before = w.store.executed();
    let r = refusal(
        planner
            .submit(q("get customers"))
            .await
            .expect_err("out of scope"),
    );
    assert_eq!(r.code(), RefusalCode::CapabilityScope);
    assert_eq!(w.store.executed(), before);
    // The wrong target: a handle for toy/prod cannot be pointed elsewhere, and a capability for
    // another target cannot connect here.
    let other = w
        .authority
        .issue(
            CapabilitySpec::new("p", Duration::from_secs(60))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Read])),
        )
        .expect("issue")
        .encode();
    let err =
        CapabilityHandle::connect(w.stack(), describe, w.target.clone(), &other, Toy::Connect)
            .await
            .expect_err("wrong target");
    assert_eq!(refusal(err).code(), RefusalCode::CapabilityScope);
}

#[tokio::test]
async fn bad_credentials_are_refused_before_anything_runs() {
    let w = World::new();
    let before = w.store.executed();
    for bad in [
        "",
        "hunter2",
        "sodcap1.e30.AAAA",
        &w.idp.token().kind("executor").expires_in(-600).sign(),
    ] {
        let err =
            CapabilityHandle::connect(w.stack(), describe, w.target.clone(), bad, Toy::Connect)
                .await
                .expect_err("refused");
        let r = refusal(err);
        assert_eq!(r.code(), RefusalCode::Unauthenticated, "{bad:?}: {r}");
        assert!(r.to_string().starts_with("authentication failed: "));
    }
    assert_eq!(w.store.executed(), before);
}

#[tokio::test]
async fn a_session_authenticates_once() {
    let w = World::new();
    let session = Arc::new(Session::new(w.target.clone(), Peer::InProcess, None));
    let cap = w.capability(&[OperationKind::Read]);
    let connect = |token: String| {
        w.stack().oneshot(Request::connect(
            session.clone(),
            Credential::new(token),
            Toy::Connect,
        ))
    };
    connect(cap.clone()).await.expect("first connect");
    let exec = w.idp.token().kind("executor").sign();
    let r = refusal(connect(exec).await.expect_err("second connect"));
    assert_eq!(r.code(), RefusalCode::Unauthenticated);
    assert_eq!(
        session.principal().map(|p| p.id.as_str()),
        Some("planner-1"),
        "identity unchanged"
    );
}

#[tokio::test]
async fn unauthenticated_sessions_get_nothing() {
    let w = World::new();
    let session = Arc::new(Session::new(w.target.clone(), Peer::InProcess, None));
    let body = q("get customers");
    let op = describe(&w.target, &body);
    let r = refusal(
        w.stack()
            .oneshot(Request::new(session, op, body))
            .await
            .expect_err("refused"),
    );
    assert_eq!(r.code(), RefusalCode::Unauthenticated);
}

#[tokio::test]
async fn stacks_missing_a_layer_fail_closed() {
    let w = World::new();
    // No policy layer: identity passes, but the upstream has no decision to act on.
    let no_policy = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .service(w.store.clone());
    let err = CapabilityHandle::connect(
        no_policy,
        describe,
        w.target.clone(),
        &w.capability(&[OperationKind::Read]),
        Toy::Connect,
    )
    .await
    .expect_err("no decision");
    assert_eq!(refusal(err).code(), RefusalCode::Misconfigured);
    // No identity layer: nothing authenticates the session.
    let no_identity = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(PolicyLayer::shared(w.policy.clone()))
        .service(w.store.clone());
    let err = CapabilityHandle::connect(
        no_identity,
        describe,
        w.target.clone(),
        &w.capability(&[OperationKind::Read]),
        Toy::Connect,
    )
    .await
    .expect_err("no identity");
    assert!(matches!(
        refusal(err).code(),
        RefusalCode::Unauthenticated | RefusalCode::Misconfigured
    ));
    // No recording layer and no explicit opt-out: the commit point refuses.
    let before = w.store.executed();
    let unrecorded = ServiceBuilder::new()
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .layer(PolicyLayer::shared(w.policy.clone()))
        .service(w.store.clone());
    let err = CapabilityHandle::connect(
        unrecorded,
        describe,
        w.target.clone(),
        &w.capability(&[OperationKind::Read]),
        Toy::Connect,
    )
    .await
    .expect_err("no audit record");
    let r = refusal(err);
    assert_eq!(r.code(), RefusalCode::Misconfigured);
    assert!(r.reason().contains("RecordingLayer"), "{r}");
    assert_eq!(w.store.executed(), before, "nothing was carried out");
    // Masking without a policy decision above it.
    let masking_only = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .layer(MaskingLayer::shared(w.masks.clone()))
        .service(w.store.clone());
    let err = CapabilityHandle::connect(
        masking_only,
        describe,
        w.target.clone(),
        &w.capability(&[OperationKind::Read]),
        Toy::Connect,
    )
    .await
    .expect_err("no decision for masking");
    assert_eq!(refusal(err).code(), RefusalCode::Misconfigured);
    // A decision naming a mask profile that does not exist.
    let typo = Policy::from_toml(
        "p.toml",
        "[[rule]]\nid = \"r\"\neffect = \"allow\"\nmask = \"standrad\"\n",
    )
    .expect("policy");
    let stack = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .layer(PolicyLayer::new(typo))
        .layer(MaskingLayer::shared(w.masks.clone()))
        .service(w.store.clone());
    let err = CapabilityHandle::connect(
        stack,
        describe,
        w.target.clone(),
        &w.capability(&[OperationKind::Read]),
        Toy::Connect,
    )
    .await
    .expect_err("unknown profile");
    let r = refusal(err);
    assert_eq!(r.code(), RefusalCode::Misconfigured);
    assert!(r.reason().contains("standrad"));
    assert_eq!(w.store.executed(), 0);
}

#[tokio::test]
async fn an_identity_that_expires_mid_session_is_refused() {
    let w = World::new();
    let token = w
        .authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(600))
                .targets(["toy/*"])
                .kinds(KindSet::of(&[OperationKind::Read])),
        )
        .expect("issue")
        .attenuate(Caveat::expires_in(
            Duration::from_secs(1),
            SystemTime::now(),
        ))
        .expect("narrow")
        .encode();
    let (planner, _) =
        CapabilityHandle::connect(w.stack(), describe, w.target.clone(), &token, Toy::Connect)
            .await
            .expect("connect");
    let code =
        sod_testkit::poll_until_async(Duration::from_secs(10), "the capability to expire", || {
            let planner = planner.clone();
            async move {
                match planner.submit(q("get orders")).await {
                    Ok(_) => None,
                    Err(e) => Some(refusal(e).code()),
                }
            }
        })
        .await;
    assert_eq!(code, RefusalCode::IdentityExpired);
}

#[tokio::test]
async fn sod_layers_compose_with_ordinary_tower_middleware() {
    let w = World::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = {
        let seen = seen.clone();
        tower::layer::layer_fn(move |inner: Store| {
            let seen = seen.clone();
            tower::service_fn(move |req: Request<Toy>| {
                seen.fetch_add(1, Ordering::SeqCst);
                inner.clone().oneshot(req)
            })
        })
    };
    let stack = ServiceBuilder::new()
        .layer(UnauditedLayer::new())
        .layer(IdentityLayer::new(w.verifiers.clone()))
        .concurrency_limit(4)
        .layer(PolicyLayer::shared(w.policy.clone()))
        .timeout(Duration::from_secs(5))
        .layer(MaskingLayer::shared(w.masks.clone()))
        .layer(counter)
        .service(w.store.clone());
    let (planner, _) = CapabilityHandle::connect(
        stack,
        describe,
        w.target.clone(),
        &w.capability(ALL_PLANNER),
        Toy::Connect,
    )
    .await
    .expect("connect");
    let rows = planner.submit(q("get customers")).await.expect("read");
    assert_eq!(rows.rows[1][2].as_deref(), Some("***@*******.org"));
    assert!(planner.submit(q("drop orders")).await.is_err());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "connect and read reached the inner layer; the drop did not"
    );
}
