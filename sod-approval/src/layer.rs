//! [`ApprovalLayer`]: operations that need approval wait for it, and run only with evidence
//! bound to exactly them.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use sod_core::policy::{ApprovalSpec, Effect};
use sod_core::{BoxError, Refusal, RefusalCode, Request};
use tower::{Layer, Service};

use crate::request::unix_now;
use crate::{ApprovalId, ApprovalRequest, Broker, BrokerError, Requester, Status};

/// A justification for the operation, attached by the caller as a request extension
/// (`req.extensions_mut().insert(Justification(..))`); copied into the approval request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Justification(pub String);

/// Holds operations whose policy decision requires approval until someone else approves them.
///
/// On a require-approval decision: if the requester has an approved, unused approval of
/// exactly this operation (same fingerprint), it is consumed and the operation goes on with the
/// evidence attached (which [`Request::commit`](sod_core::Request::commit) checks). Otherwise a
/// request is submitted — or the requester's pending one for the same operation reused — and
/// the operation waits up to `wait`. Approved: it goes on. Denied: refused with
/// [`ApprovalDenied`](RefusalCode::ApprovalDenied). Still pending: refused with
/// [`ApprovalRequired`](RefusalCode::ApprovalRequired) naming the approval id, so the client
/// can retry once it is approved and run without a new wait. Other decisions pass through.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sod_approval::{ApprovalLayer, Broker, MemoryStore};
///
/// let broker = Broker::new(Arc::new(MemoryStore::new()));
/// let layer = ApprovalLayer::new(broker, Duration::from_secs(30));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct ApprovalLayer {
    broker: Broker,
    wait: Duration,
}

impl ApprovalLayer {
    /// Approvals through `broker`; an operation waits up to `wait` for its decision.
    pub fn new(broker: Broker, wait: Duration) -> Self {
        Self { broker, wait }
    }
}

impl<S> Layer<S> for ApprovalLayer {
    type Service = Approving<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Approving {
            inner,
            broker: self.broker.clone(),
            wait: self.wait,
        }
    }
}

/// The service produced by [`ApprovalLayer`].
#[derive(Clone)]
pub struct Approving<S> {
    inner: S,
    broker: Broker,
    wait: Duration,
}

fn refusal(code: RefusalCode, id: &ApprovalId, rule: &str, why: String) -> BoxError {
    Box::new(
        Refusal::new(code, why)
            .with_rule(rule.to_owned())
            .with_approval_id(id.to_string()),
    )
}

fn unavailable(e: &BrokerError, rule: &str) -> BoxError {
    if let BrokerError::TooManyPending { .. } = e {
        return Box::new(
            Refusal::new(
                RefusalCode::ApprovalRequired,
                format!("the operation requires approval, and {e}"),
            )
            .with_rule(rule.to_owned()),
        );
    }
    tracing::error!(error = %e, "approval broker failed; refusing");
    Box::new(
        Refusal::new(
            RefusalCode::ApprovalRequired,
            format!("the operation requires approval and the approval service failed: {e}"),
        )
        .with_rule(rule.to_owned()),
    )
}

impl<S, B> Service<Request<B>> for Approving<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let spec: Option<Arc<ApprovalSpec>> = match req.decision().map(|d| d.effect()) {
            Some(Effect::RequireApproval(spec)) => Some(spec.clone()),
            _ => None,
        };
        let Some(spec) = spec else {
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        let mut inner = sod_core::layer::take_ready(&mut self.inner);
        let (broker, wait) = (self.broker.clone(), self.wait);
        Box::pin(async move {
            let rule = req
                .decision()
                .map(|d| d.rule_id().to_owned())
                .unwrap_or_default();
            // Every store call and the wait itself, bounded: a hung approval store must refuse
            // the operation, not hang it (the operation itself is not bounded here).
            let justification = req
                .extensions()
                .get::<Justification>()
                .map(|Justification(why)| why.clone());
            let evidence = tokio::time::timeout(
                wait + STORE_MARGIN,
                approve(
                    &broker,
                    req.session(),
                    req.operation(),
                    justification,
                    &spec,
                    &rule,
                    wait,
                ),
            )
            .await
            .map_err(|_| {
                unavailable(
                    &BrokerError::Store(crate::store::StoreError::Unavailable(
                        "the approval store did not answer in time".into(),
                    )),
                    &rule,
                )
            })??;
            req.set_approval(evidence);
            inner.call(req).await.map_err(Into::into)
        })
    }
}

/// How much longer than its wait an approval may take (store calls before and after it).
const STORE_MARGIN: Duration = Duration::from_secs(10);

/// The evidence that lets `req` run: a plan entry, a grant, or an approved request (submitted
/// or reused here, then waited for up to `wait`); otherwise the refusal.
async fn approve(
    broker: &Broker,
    session: &sod_core::Session,
    op: &sod_core::Operation,
    justification: Option<String>,
    spec: &ApprovalSpec,
    rule: &str,
    wait: Duration,
) -> Result<sod_core::ApprovalEvidence, BoxError> {
    let identity = session.current_identity(SystemTime::now())?;
    let requester = Requester::of(&identity.principal);
    let capability = identity.credential_id.clone();
    // A capability bound to a plan runs that plan's entries and nothing else.
    let plan = match identity.capability.as_ref().map(|c| c.scope().plan()) {
        Some(Err(plans)) => {
            return Err(Box::new(
                Refusal::new(
                    RefusalCode::CapabilityScope,
                    format!(
                        "the capability is bound to conflicting plans: {}",
                        plans.join(", ")
                    ),
                )
                .with_rule("capability"),
            ) as BoxError);
        }
        Some(Ok(plan)) => plan.map(str::to_owned),
        None => None,
    };
    if let Some(evidence) = broker
        .consume(&requester, op, spec, plan.as_deref())
        .await
        .map_err(|e| unavailable(&e, rule))?
    {
        return Ok(evidence);
    }
    if let Some(plan) = plan {
        // A plan-bound capability runs its plan's entries and nothing else: asking an
        // approver for a one-off approval would only waste it.
        return Err(Box::new(
                Refusal::new(
                    RefusalCode::CapabilityScope,
                    format!("the capability is bound to plan {plan}, which has no unused entry for this operation"),
                )
                .with_rule(rule.to_owned()),
            ) as BoxError);
    }
    let id = match pending_for(broker, &requester, op, spec).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            let mut request = ApprovalRequest::new(
                requester.clone(),
                op,
                spec.approver_groups.clone(),
                spec.quorum,
                spec.ttl,
            )
            .rule(rule.to_owned());
            if let Some(c) = capability {
                request = request.capability(c);
            }
            if let Some(why) = justification {
                request = request.justification(why);
            }
            broker
                .submit(request)
                .await
                .map_err(|e| unavailable(&e, rule))?
        }
        Err(e) => return Err(unavailable(&e, rule)),
    };
    let decided = broker
        .wait(&id, wait)
        .await
        .map_err(|e| unavailable(&e, rule))?;
    match decided.status_at(unix_now()) {
        Status::Approved => {
            let evidence = broker
                .consume_one(id.clone(), &requester, spec)
                .await
                .map_err(|e| unavailable(&e, rule))?
                .ok_or_else(|| {
                    refusal(
                        RefusalCode::ApprovalRequired,
                        &id,
                        rule,
                        format!("approval {id} was used by another run of this operation"),
                    )
                })?;
            Ok(evidence)
        }
        Status::Denied => {
            let by = decided
                .votes
                .iter()
                .find(|v| !v.approve)
                .map(|v| match &v.comment {
                    Some(c) => format!("{} ({c})", v.approver),
                    None => v.approver.clone(),
                })
                .unwrap_or_default();
            Err(refusal(
                RefusalCode::ApprovalDenied,
                &id,
                rule,
                format!("approval {id} was denied by {by}"),
            ))
        }
        Status::Pending => Err(refusal(
            RefusalCode::ApprovalRequired,
            &id,
            rule,
            format!(
                "waiting for approval {id} ({} of {} approvals so far)",
                decided.approvers().len(),
                decided.quorum
            ),
        )),
        Status::Expired | Status::Consumed => Err(refusal(
            RefusalCode::ApprovalRequired,
            &id,
            rule,
            format!("approval request {id} expired before it was approved and used"),
        )),
        Status::Revoked => Err(refusal(
            RefusalCode::ApprovalDenied,
            &id,
            rule,
            format!("approval request {id} was revoked"),
        )),
    }
}

/// The requester's pending request for exactly this operation, if there is one: a retried
/// statement waits on the same request instead of asking again.
async fn pending_for(
    broker: &Broker,
    requester: &Requester,
    op: &sod_core::Operation,
    spec: &ApprovalSpec,
) -> Result<Option<ApprovalId>, BrokerError> {
    let now = unix_now();
    Ok(broker
        .store()
        .by_fingerprint(op.fingerprint())
        .await?
        .into_iter()
        .find(|r| {
            r.requester.same_as(requester)
                && r.scope == crate::Scope::Operation
                && r.satisfies(spec)
                && r.status_at(now) == Status::Pending
        })
        .map(|r| r.id))
}
