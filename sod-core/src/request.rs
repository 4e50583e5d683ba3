//! [`Request`]: what flows through the tower stack, and [`Request::commit`], the check every
//! protocol makes before it forwards a byte upstream.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::audit::{Attempt, Audit, AuditRecord, Transcript};
use crate::policy::{Decision, Effect};
use crate::{Fingerprint, Operation, OperationKind, Refusal, RefusalCode, Secret, Session};

/// A credential presented by a client: an OIDC JWT or a capability string.
///
/// It is a bearer secret, so it has no `Debug`, `Display` or `Clone`. Only the
/// [`IdentityLayer`](crate::layer::IdentityLayer) reads it, and it takes it out of the request,
/// so no inner layer can see it.
pub struct Credential(Secret<String>);

impl Credential {
    /// Wraps the presented token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token.into()))
    }

    /// The token, for a verifier.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Proof, attached by an approval layer, that an operation was approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalEvidence {
    /// The fingerprint that was approved. It must equal the operation's (invariant I3).
    pub fingerprint: Fingerprint,
    /// The approval request (or plan entry, or grant) ids.
    pub approval_ids: Vec<String>,
    /// Distinct approver principal ids.
    pub approvers: Vec<String>,
    /// The plan the approval belongs to, if it is a plan entry.
    pub plan: Option<String>,
}

/// One operation on its way through the stack: the session, the protocol-neutral operation, the
/// decisions taken so far, and the protocol body `B`.
///
/// Layers read the session and the operation and never parse the body.
pub struct Request<B> {
    session: Arc<Session>,
    operation: Operation,
    credential: Option<Credential>,
    decision: Option<Decision>,
    approval: Option<ApprovalEvidence>,
    audit: Audit,
    extensions: http::Extensions,
    body: B,
}

impl<B> Request<B> {
    /// A request for `operation` in `session`.
    pub fn new(session: Arc<Session>, operation: Operation, body: B) -> Self {
        Self {
            session,
            operation,
            credential: None,
            decision: None,
            approval: None,
            audit: Audit::Missing,
            extensions: http::Extensions::new(),
            body,
        }
    }

    /// The session-opening request: a `Connect` operation for the session's target carrying the
    /// client's credential.
    pub fn connect(session: Arc<Session>, credential: Credential, body: B) -> Self {
        let op = Operation::connect(session.target().clone());
        let mut req = Self::new(session, op, body);
        req.credential = Some(credential);
        req
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The operation.
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// The protocol body.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The protocol body, mutably.
    pub fn body_mut(&mut self) -> &mut B {
        &mut self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> B {
        self.body
    }

    /// Takes the presented credential out (the identity layer does this on `Connect`).
    pub fn take_credential(&mut self) -> Option<Credential> {
        self.credential.take()
    }

    /// Whether a credential is still attached.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The policy decision, once a policy layer has taken one.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Records the policy decision.
    pub fn set_decision(&mut self, decision: Decision) {
        self.decision = Some(decision);
    }

    /// The approval evidence, once an approval layer has attached one.
    pub fn approval(&self) -> Option<&ApprovalEvidence> {
        self.approval.as_ref()
    }

    /// Attaches approval evidence.
    pub fn set_approval(&mut self, evidence: ApprovalEvidence) {
        self.approval = Some(evidence);
    }

    /// Attaches the operation's open audit record (a recording layer does this). Replaces a
    /// record attached earlier.
    pub fn attach_audit(&mut self, record: std::sync::Arc<dyn AuditRecord>) {
        self.audit = Audit::Open(record);
    }

    /// Lets the request be committed without an audit record, unless a recording layer has
    /// attached one (an opt-out never removes a record). See
    /// [`UnauditedLayer`](crate::layer::UnauditedLayer).
    pub(crate) fn opt_out_of_audit(&mut self) {
        if matches!(self.audit, Audit::Missing) {
            self.audit = Audit::OptedOut;
        }
    }

    /// Whether an audit record is attached.
    pub fn is_audited(&self) -> bool {
        matches!(self.audit, Audit::Open(_))
    }

    /// The transcript of this operation's streams (see [`Transcript`] for the protocol's side
    /// of the contract): available once [`commit`](Self::commit) succeeded, if the attached
    /// audit record keeps transcripts; `None` otherwise.
    pub fn transcript(&self) -> Option<Arc<dyn Transcript>> {
        match &self.audit {
            Audit::Open(record) => record.transcript(),
            Audit::Missing | Audit::OptedOut => None,
        }
    }

    /// Typed extensions for layers from other crates (an audit record handle, for example).
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Typed extensions, mutably.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    /// Checks, at the last moment before forwarding, that this request may be carried out:
    /// an unexpired identity, an operation on the session's own target and within its
    /// capability, and a policy decision that allows it, with approval evidence bound to this
    /// exact operation where the decision requires approval.
    ///
    /// Crate-private: protocols call [`commit`](Self::commit), which calls this and then
    /// commits the audit record, before sending anything upstream — so there is no way to pass
    /// the check without writing the record (invariant I4). It fails closed: a stack without an identity or policy layer gets a
    /// [`Misconfigured`](RefusalCode::Misconfigured) or
    /// [`Unauthenticated`](RefusalCode::Unauthenticated) refusal, never a pass.
    pub(crate) fn authorize(&self, now: SystemTime) -> Result<Authorized<'_>, Refusal> {
        let identity = self.session.current_identity(now)?;
        let op = &self.operation;
        if op.target() != self.session.target() {
            return Err(Refusal::new(
                RefusalCode::Misconfigured,
                format!(
                    "operation addresses `{}` but the session is for `{}`",
                    op.target(),
                    self.session.target()
                ),
            ));
        }
        if let Some(cap) = &identity.capability {
            cap.scope().check(op)?;
        }
        let decision = self.decision.as_ref().ok_or_else(|| {
            Refusal::new(
                RefusalCode::Misconfigured,
                "no policy decision was taken for this operation (is a PolicyLayer in the stack?)",
            )
        })?;
        match decision.effect() {
            Effect::Deny => return Err(decision.refusal(op)),
            Effect::Allow => {}
            Effect::RequireApproval(spec) => {
                let refuse = |why: &str| {
                    Err(Refusal::new(RefusalCode::ApprovalRequired, why.to_owned())
                        .with_rule(decision.rule_id().to_owned()))
                };
                let Some(evidence) = &self.approval else {
                    return refuse("the operation requires approval and none was given");
                };
                if evidence.fingerprint != op.fingerprint() {
                    return refuse("the approval was given for a different operation");
                }
                let mut approvers: Vec<&str> =
                    evidence.approvers.iter().map(String::as_str).collect();
                approvers.sort_unstable();
                approvers.dedup();
                if approvers.len() < spec.quorum as usize {
                    return refuse("the approval does not reach the required quorum");
                }
            }
        }
        let plan = identity.capability.as_ref().map(|c| c.scope().plan());
        if let Some(Ok(Some(plan))) = plan {
            let in_plan = self.approval.as_ref().is_some_and(|e| {
                e.plan.as_deref() == Some(plan) && e.fingerprint == op.fingerprint()
            });
            if op.kind() != OperationKind::Connect && !in_plan {
                return Err(Refusal::new(
                    RefusalCode::CapabilityScope,
                    format!(
                        "the capability is bound to plan `{plan}` and this operation is not an approved entry of it"
                    ),
                )
                .with_rule("capability"));
            }
        }
        Ok(Authorized {
            decision,
            approval: self.approval.as_ref(),
        })
    }
}

impl<B: Sync> Request<B> {
    /// The commit point, the one call a protocol's upstream service makes before it sends
    /// anything upstream: authorizes the request, then commits its audit
    /// record at the durability the operation's kind requires (invariant I4).
    ///
    /// Refuses when authorization fails, when the record cannot be written
    /// ([`AuditUnavailable`](RefusalCode::AuditUnavailable)), and when no recording layer
    /// attached a record and the stack did not opt out with
    /// [`UnauditedLayer`](crate::layer::UnauditedLayer)
    /// ([`Misconfigured`](RefusalCode::Misconfigured)).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use sod_core::{Operation, Peer, Request, RefusalCode, Session, Target};
    ///
    /// let session = Arc::new(Session::new(Target::new("pg/prod"), Peer::InProcess, None));
    /// let req = Request::new(session.clone(), Operation::connect(Target::new("pg/prod")), ());
    /// // No identity, no decision, no audit record: refused, never forwarded.
    /// let refusal = req.commit().await.unwrap_err();
    /// assert_eq!(refusal.code(), RefusalCode::Unauthenticated);
    /// # });
    /// ```
    pub async fn commit(&self) -> Result<Authorized<'_>, Refusal> {
        let authorized = self.authorize(SystemTime::now())?;
        match &self.audit {
            Audit::Missing => Err(Refusal::new(
                RefusalCode::Misconfigured,
                "no audit record was opened for this operation (is a RecordingLayer in the \
                 stack? UnauditedLayer runs a stack without one on purpose)",
            )),
            Audit::OptedOut => Ok(authorized),
            Audit::Open(record) => {
                record
                    .commit(Attempt {
                        session: &self.session,
                        operation: &self.operation,
                        decision: authorized.decision,
                        approval: authorized.approval,
                    })
                    .await?;
                Ok(authorized)
            }
        }
    }
}

/// Proof that a request's authorization passed ([`Request::commit`]); carries what the audit
/// record needs.
#[derive(Clone, Copy, Debug)]
pub struct Authorized<'a> {
    /// The decision that allowed the operation.
    pub decision: &'a Decision,
    /// The approval that covered it, if approval was required.
    pub approval: Option<&'a ApprovalEvidence>,
}

impl<B> fmt::Debug for Request<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("session", &self.session.id())
            .field("operation", &self.operation)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("decision", &self.decision)
            .field("approval", &self.approval)
            .finish_non_exhaustive()
    }
}
