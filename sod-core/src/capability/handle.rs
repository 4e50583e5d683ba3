//! [`CapabilityHandle`]: what an in-process planner holds instead of a connection.

use std::fmt;
use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt as _};

use crate::{
    BoxError, Credential, Operation, Peer, Principal, Refusal, RefusalCode, Request, Session,
    Target,
};

/// Turns a protocol body into the [`Operation`] it performs.
///
/// This is the protocol's analyzer (SQL parser, command lexer), owned by the runtime, never by
/// the planner: the planner submits bodies, and trusted code says what they do.
pub trait Describe<B>: Send + Sync + 'static {
    /// Describes what `body` would do on `target`.
    fn describe(&self, target: &Target, body: &B) -> Operation;
}

impl<B, F> Describe<B> for F
where
    F: Fn(&Target, &B) -> Operation + Send + Sync + 'static,
{
    fn describe(&self, target: &Target, body: &B) -> Operation {
        self(target, body)
    }
}

/// A planner's handle on one target: it can submit requests through the full service stack
/// (identity, recording, policy, approval, masking) and nothing else.
///
/// It holds an authenticated [`Session`] and a type-erased service; it exposes no connection,
/// no credential and no way to reach the service's inner layers. Operations are described by
/// the runtime's [`Describe`] implementation, not by the planner. (An in-process handle is an
/// API boundary, not a sandbox: it keeps honest-but-confused planner code on the governed path;
/// code that can run arbitrary Rust in the process is outside any in-process guarantee.)
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use sod_core::capability::*;
/// # use sod_core::layer::{IdentityLayer, PolicyLayer, UnauditedLayer};
/// # use sod_core::policy::Policy;
/// # use sod_core::{BoxError, KindSet, Operation, OperationKind, Request, Target};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let authority = Arc::new(CapabilityAuthority::new("sod", CapabilityKey::generate("k1")));
/// let policy = Policy::from_toml("inline", r#"
///     [[rule]]
///     id = "planner-reads"
///     effect = "allow"
///     kinds = ["connect", "read"]
/// "#)?;
/// // The executor's side: a stack around the real upstream (here: echo the operation text).
/// let upstream = tower::service_fn(|req: Request<String>| async move {
///     req.commit().await?; // authorize, and write the audit record if the stack keeps one
///     Ok::<_, BoxError>(format!("ran: {}", req.operation().text()))
/// });
/// let stack = tower::ServiceBuilder::new()
///     .layer(UnauditedLayer::new()) // sod-audit's RecordingLayer in a real deployment
///     .layer(IdentityLayer::new(authority.clone()))
///     .layer(PolicyLayer::new(policy))
///     .service(upstream);
/// let describe = |t: &Target, body: &String| {
///     let kind = if body.starts_with("get") { OperationKind::Read } else { OperationKind::Write };
///     Operation::builder(t.clone(), kind, body.clone()).build()
/// };
/// let token = authority.issue(
///     CapabilitySpec::new("planner-1", Duration::from_secs(60))
///         .targets(["kv/*"])
///         .kinds(KindSet::of(&[OperationKind::Read])),
/// )?;
///
/// // The planner only ever sees `handle`.
/// let (handle, _) = CapabilityHandle::connect(
///     stack, describe, Target::new("kv/main"), &token.encode(), String::new(),
/// ).await?;
/// assert_eq!(handle.submit("get k".into()).await?, "ran: get k");
/// assert!(handle.submit("put k v".into()).await.is_err());
/// # Ok(())
/// # }
/// ```
pub struct CapabilityHandle<B, R> {
    session: Arc<Session>,
    describe: Arc<dyn Describe<B>>,
    service: BoxCloneSyncService<Request<B>, R, BoxError>,
}

impl<B, R> CapabilityHandle<B, R>
where
    B: Send + 'static,
    R: Send + 'static,
{
    /// Opens a session on `target` by running its `Connect` operation, presenting `capability`,
    /// through `service`. Returns the handle and the connect response.
    ///
    /// Fails if the stack refuses, and also if it accepted the connect without authenticating
    /// the session (a stack without an identity layer): a handle is never unauthenticated.
    pub async fn connect<S>(
        service: S,
        describe: impl Describe<B>,
        target: Target,
        capability: &str,
        connect_body: B,
    ) -> Result<(Self, R), BoxError>
    where
        S: Service<Request<B>, Response = R, Error = BoxError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        let session = Arc::new(Session::new(target, Peer::InProcess, None));
        let req = Request::connect(session.clone(), Credential::new(capability), connect_body);
        let resp = service.clone().oneshot(req).await?;
        if session.identity().is_none() {
            return Err(Refusal::new(
                RefusalCode::Misconfigured,
                "the stack accepted the connection without authenticating it (no IdentityLayer?)",
            )
            .into());
        }
        Ok((
            Self {
                session,
                describe: Arc::new(describe),
                service: BoxCloneSyncService::new(service),
            },
            resp,
        ))
    }

    /// Submits `body`; the runtime's [`Describe`] says what operation it is.
    pub async fn submit(&self, body: B) -> Result<R, BoxError> {
        let op = self.describe.describe(self.session.target(), &body);
        let req = Request::new(self.session.clone(), op, body);
        self.service.clone().oneshot(req).await
    }

    /// Who the handle acts as.
    pub fn principal(&self) -> Option<&Principal> {
        self.session.principal()
    }

    /// The target the handle reaches.
    pub fn target(&self) -> &Target {
        self.session.target()
    }

    /// The session id (for correlating with audit records).
    pub fn session_id(&self) -> crate::SessionId {
        self.session.id()
    }
}

impl<B, R> Clone for CapabilityHandle<B, R> {
    fn clone(&self) -> Self {
        Self {
            session: self.session.clone(),
            describe: self.describe.clone(),
            service: self.service.clone(),
        }
    }
}

impl<B, R> fmt::Debug for CapabilityHandle<B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapabilityHandle")
            .field("session", &self.session.id())
            .field("target", self.session.target())
            .field("principal", &self.session.principal().map(|p| &p.id))
            .finish_non_exhaustive()
    }
}
