//! [`Broker`]: every separation-of-duties rule, enforced in one place.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use sod_core::policy::ApprovalSpec;
use sod_core::{ApprovalEvidence, Operation, Principal, PrincipalKind};
use tokio::sync::watch;

use crate::notify::{Notification, Notifier};
use crate::request::unix_now;
use crate::{ApprovalId, ApprovalRequest, Requester, Scope, Status, Store, StoreError, Vote};

/// Why the broker refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// No request has this id.
    #[error("no approval request {0}")]
    UnknownId(ApprovalId),
    /// The request can no longer be decided.
    #[error("approval request {id} is {status:?}, not pending")]
    NotPending {
        /// The request.
        id: ApprovalId,
        /// Where it stands.
        status: Status,
    },
    /// The approver is the requester, or the human the requester acts for (invariant I2).
    #[error("{0} may not approve: nobody approves their own request")]
    SelfApproval(String),
    /// The approver is not in any of the request's approver groups.
    #[error("{approver} is not in an approver group of this request ({groups})")]
    NotApprover {
        /// The would-be approver.
        approver: String,
        /// The groups that may approve.
        groups: String,
    },
    /// Only humans approve.
    #[error("{0} is not a human principal: agents cannot approve")]
    NotHuman(String),
    /// The approver already voted on this request (a quorum counts distinct approvers).
    #[error("{0} has already voted on this request")]
    AlreadyVoted(String),
    /// The broker requires a justification and the request has none.
    #[error("a justification is required")]
    JustificationRequired,
    /// The requester already has as many requests waiting as the broker allows: a planner
    /// whose writes keep being refused must not bury the approvers in requests.
    #[error(
        "{requester} already has {limit} approval requests waiting for a decision; wait for them to be decided or to expire"
    )]
    TooManyPending {
        /// The requester.
        requester: String,
        /// How many may wait at once.
        limit: usize,
    },
    /// The request kept changing under the broker; try again.
    #[error("approval request {0} is being changed concurrently; try again")]
    Conflict(ApprovalId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Submits, decides, consumes and waits for approval requests. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Broker {
    store: Arc<dyn Store>,
    require_justification: bool,
    /// How many of one requester's requests may wait for a decision at once.
    max_pending: usize,
    /// Bumped after every change this broker makes, to wake its waiters.
    changed: Arc<watch::Sender<u64>>,
    /// How often waiters re-read the store regardless (changes made by other replicas).
    poll: Duration,
    /// Told about every submit, decision and use; never waited for.
    notifiers: Vec<Arc<dyn Notifier>>,
}

/// Compare-and-swap attempts before giving up with [`BrokerError::Conflict`].
const SWAP_ATTEMPTS: usize = 64;

impl Broker {
    /// How many of one requester's requests may wait at once, by default.
    pub const DEFAULT_MAX_PENDING: usize = 16;

    /// A broker over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            require_justification: false,
            max_pending: Self::DEFAULT_MAX_PENDING,
            changed: Arc::new(watch::channel(0).0),
            poll: Duration::from_secs(1),
            notifiers: Vec::new(),
        }
    }

    /// Adds a notifier, told after every successful submit, decision and use (call it again
    /// for several). Notifications are spawned on the tokio runtime and never waited for: a
    /// slow, failing or panicking notifier cannot block or fail the broker.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sod_approval::{Broker, MemoryStore, TracingNotifier};
    ///
    /// let broker = Broker::new(Arc::new(MemoryStore::new())).notifier(Arc::new(TracingNotifier));
    /// # let _ = broker;
    /// ```
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }

    /// Hands `event` to every notifier, each on its own task, without waiting.
    fn announce(&self, event: impl FnOnce() -> Notification) {
        if self.notifiers.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: approval notifications are not sent");
            return;
        };
        let event = event();
        for notifier in &self.notifiers {
            let (notifier, event) = (Arc::clone(notifier), event.clone());
            runtime.spawn(async move {
                let delivered = std::panic::AssertUnwindSafe(notifier.notify(&event))
                    .catch_unwind()
                    .await;
                if delivered.is_err() {
                    tracing::error!(
                        approval = %event.request().id,
                        event = event.event(),
                        "an approval notifier panicked"
                    );
                }
            });
        }
    }

    /// How many of one requester's requests (counted by requester id) may wait for a decision
    /// at once (default [`DEFAULT_MAX_PENDING`](Self::DEFAULT_MAX_PENDING), at least 1); a
    /// submit beyond it fails with [`BrokerError::TooManyPending`]. A retried statement waits
    /// on its existing request and does not count twice. Replicas sharing a store may each
    /// admit one more under a race: the bound is approximate, never absent.
    #[must_use]
    pub fn max_pending_per_requester(mut self, limit: usize) -> Self {
        self.max_pending = limit.max(1);
        self
    }

    /// Refuses requests without a justification.
    #[must_use]
    pub fn require_justification(mut self, required: bool) -> Self {
        self.require_justification = required;
        self
    }

    /// How often waiters re-read the store for changes made elsewhere (default 1 s).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Submits a new pending request.
    pub async fn submit(&self, request: ApprovalRequest) -> Result<ApprovalId, BrokerError> {
        if self.require_justification
            && request
                .justification
                .as_deref()
                .is_none_or(|j| j.trim().is_empty())
        {
            return Err(BrokerError::JustificationRequired);
        }
        let waiting = self
            .pending()
            .await?
            .iter()
            .filter(|r| r.requester.id == request.requester.id)
            .count();
        if waiting >= self.max_pending {
            return Err(BrokerError::TooManyPending {
                requester: request.requester.id.clone(),
                limit: self.max_pending,
            });
        }
        let id = request.id.clone();
        // The broker owns the state and the clock: whatever the caller filled in, a new
        // request starts pending, unvoted and unused, and is open for the time it asked for
        // from now (a `created_at` in the future must not stretch it).
        let mut request = request;
        let now = unix_now();
        let open_for = request.expires_at.saturating_sub(request.created_at);
        request.created_at = now;
        request.expires_at = now.saturating_add(open_for);
        request.status = Status::Pending;
        request.votes.clear();
        request.version = 0;
        request.quorum = request.quorum.max(1);
        request.uses_left = request.uses_left.max(1);
        if let Scope::Plan { entries } = &mut request.scope {
            entries.iter_mut().for_each(|e| e.used = false);
        }
        let submitted = (!self.notifiers.is_empty()).then(|| request.clone());
        self.store.insert(request).await?;
        tracing::info!(approval = %id, "approval requested");
        self.notify();
        if let Some(request) = submitted {
            self.announce(|| Notification::Requested { request });
        }
        Ok(id)
    }

    /// The request with `id`.
    pub async fn get(&self, id: &ApprovalId) -> Result<ApprovalRequest, BrokerError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| BrokerError::UnknownId(id.clone()))
    }

    /// Requests waiting for a decision (expired ones left out), oldest first.
    pub async fn pending(&self) -> Result<Vec<ApprovalRequest>, BrokerError> {
        let now = unix_now();
        Ok(self
            .store
            .pending()
            .await?
            .into_iter()
            .filter(|r| r.status_at(now) == Status::Pending)
            .collect())
    }

    /// Records `approver`'s vote on request `id`: a deny is final; enough distinct approvals
    /// approve it. Returns the request as it now stands.
    ///
    /// Refused when the request is not pending (decided, consumed, expired), when the approver
    /// is the requester or the human the requester acts for (or acts for either), is not a
    /// human, is in none of the approver groups, or has voted already.
    pub async fn decide(
        &self,
        id: &ApprovalId,
        approver: &Principal,
        approve: bool,
        comment: Option<String>,
    ) -> Result<ApprovalRequest, BrokerError> {
        let next = self
            .update(id, |current| {
                let now = unix_now();
                let status = current.status_at(now);
                if status != Status::Pending {
                    return Err(BrokerError::NotPending {
                        id: id.clone(),
                        status,
                    });
                }
                check_approver(&current, approver)?;
                let mut next = current;
                next.votes.push(Vote {
                    approver: approver.id.clone(),
                    approve,
                    comment: comment.clone(),
                    at: now,
                });
                if !approve {
                    next.status = Status::Denied;
                } else if next.approvers().len() >= next.quorum as usize {
                    next.status = Status::Approved;
                }
                Ok(Some(next))
            })
            .await?
            .ok_or_else(|| BrokerError::UnknownId(id.clone()))?;
        tracing::info!(approval = %id, approver = %approver.id, approve, status = ?next.status, "approval decided");
        self.announce(|| Notification::Decided {
            request: next.clone(),
            approver: approver.id.clone(),
            approve,
            comment,
        });
        Ok(next)
    }

    /// Uses an approval of exactly `operation` (its fingerprint, which covers bound parameter
    /// values) by exactly `requester`, given on terms that satisfy `spec` (the policy's approver
    /// groups, quorum and time to live; see [`ApprovalRequest::satisfies`]), if one is approved,
    /// unexpired and not used up: a single approval, an entry of an approved plan, or a grant
    /// covering it; returns the evidence to attach to the request. When the session's
    /// capability is bound to `plan`, only that plan's entries count. Each use is counted atomically, so of several
    /// executors racing for one single-use approval exactly one gets it.
    pub async fn consume(
        &self,
        requester: &Requester,
        operation: &Operation,
        spec: &ApprovalSpec,
        plan: Option<&str>,
    ) -> Result<Option<ApprovalEvidence>, BrokerError> {
        let fingerprint = operation.fingerprint();
        if plan.is_none() {
            for candidate in self.store.by_fingerprint(fingerprint).await? {
                if !candidate.requester.same_as(requester)
                    || candidate.scope != Scope::Operation
                    || !candidate.satisfies(spec)
                {
                    continue;
                }
                if let Some(evidence) = self
                    .consume_one(candidate.id.clone(), requester, spec)
                    .await?
                {
                    return Ok(Some(evidence));
                }
            }
        }
        // Plans and grants the requester holds (only the bound plan, when there is one).
        let now = unix_now();
        for candidate in self.store.plans_and_grants(&requester.id).await? {
            if !candidate.requester.same_as(requester)
                || !candidate.satisfies(spec)
                || plan.is_some_and(|p| p != candidate.id.as_str())
            {
                continue;
            }
            match &candidate.scope {
                Scope::Plan { .. } => {
                    if let Some(evidence) = self
                        .use_plan_entry(candidate.id.clone(), requester, fingerprint)
                        .await?
                    {
                        return Ok(Some(evidence));
                    }
                }
                Scope::Grant(grant)
                    if candidate.status_at(now) == Status::Approved && grant.covers(operation) =>
                {
                    tracing::info!(approval = %candidate.id, "grant used");
                    return Ok(Some(ApprovalEvidence {
                        fingerprint,
                        approval_ids: vec![candidate.id.to_string()],
                        approvers: candidate.approvers(),
                        plan: None,
                    }));
                }
                Scope::Grant(_) | Scope::Operation => {}
            }
        }
        Ok(None)
    }

    /// Marks the first unused entry of plan `id` with `fingerprint` as used, if the plan is
    /// approved and unexpired; the evidence names the plan.
    async fn use_plan_entry(
        &self,
        id: ApprovalId,
        requester: &Requester,
        fingerprint: sod_core::Fingerprint,
    ) -> Result<Option<ApprovalEvidence>, BrokerError> {
        let Some(next) = self
            .update(&id, |current| {
                if !current.requester.same_as(requester)
                    || current.status_at(unix_now()) != Status::Approved
                {
                    return Ok(None);
                }
                let mut next = current;
                let Scope::Plan { entries } = &mut next.scope else {
                    return Ok(None);
                };
                let Some(entry) = entries
                    .iter_mut()
                    .find(|e| !e.used && e.operation.fingerprint == fingerprint)
                else {
                    return Ok(None);
                };
                entry.used = true;
                if entries.iter().all(|e| e.used) {
                    next.status = Status::Consumed;
                }
                Ok(Some(next))
            })
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(plan = %id, "plan entry used");
        self.announce(|| Notification::Used {
            request: next.clone(),
        });
        Ok(Some(ApprovalEvidence {
            fingerprint,
            approval_ids: vec![id.to_string()],
            approvers: next.approvers(),
            plan: Some(id.to_string()),
        }))
    }

    /// Withdraws request `id` (a grant, a plan, or any request not yet used up): from now on
    /// it covers nothing. The requester's side (the requester or the human it acts for) and
    /// the approver groups' humans may revoke.
    pub async fn revoke(
        &self,
        id: &ApprovalId,
        by: &Principal,
    ) -> Result<ApprovalRequest, BrokerError> {
        let next = self
            .update(id, |current| {
                let status = current.status_at(unix_now());
                if !matches!(status, Status::Pending | Status::Approved) {
                    return Err(BrokerError::NotPending {
                        id: id.clone(),
                        status,
                    });
                }
                let party = current.requester.involves(by);
                let approver = by.kind == PrincipalKind::Human
                    && current.approver_groups.iter().any(|g| by.in_group(g));
                if !party && !approver {
                    return Err(BrokerError::NotApprover {
                        approver: by.id.clone(),
                        groups: current.approver_groups.join(", "),
                    });
                }
                let mut next = current;
                next.status = Status::Revoked;
                Ok(Some(next))
            })
            .await?
            .ok_or_else(|| BrokerError::UnknownId(id.clone()))?;
        tracing::info!(approval = %id, by = %by.id, "approval revoked");
        Ok(next)
    }

    /// Uses request `id` for `requester`, if it is approved and unused.
    pub(crate) async fn consume_one(
        &self,
        id: ApprovalId,
        requester: &Requester,
        spec: &ApprovalSpec,
    ) -> Result<Option<ApprovalEvidence>, BrokerError> {
        let Some(next) = self
            .update(&id, |current| {
                if !current.requester.same_as(requester)
                    || current.scope != Scope::Operation
                    || !current.satisfies(spec)
                    || current.status_at(unix_now()) != Status::Approved
                    || current.uses_left == 0
                {
                    return Ok(None);
                }
                let mut next = current;
                next.uses_left -= 1;
                if next.uses_left == 0 {
                    next.status = Status::Consumed;
                }
                Ok(Some(next))
            })
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(approval = %id, uses_left = next.uses_left, "approval used");
        self.announce(|| Notification::Used {
            request: next.clone(),
        });
        Ok(Some(ApprovalEvidence {
            fingerprint: next.operation.fingerprint,
            approval_ids: vec![id.to_string()],
            approvers: next.approvers(),
            plan: None,
        }))
    }

    /// Read-modify-write of request `id`, by compare-and-swap on its version, retried when
    /// another writer (another broker, another replica) got there first. `change` sees the
    /// request as it stands and returns what it becomes (`Ok(None)`: leave it). Wakes this
    /// broker's waiters on success. `Ok(None)` also when there is no such request.
    async fn update(
        &self,
        id: &ApprovalId,
        mut change: impl FnMut(ApprovalRequest) -> Result<Option<ApprovalRequest>, BrokerError>,
    ) -> Result<Option<ApprovalRequest>, BrokerError> {
        for _ in 0..SWAP_ATTEMPTS {
            let Some(current) = self.store.get(id).await? else {
                return Ok(None);
            };
            let version = current.version;
            let Some(mut next) = change(current)? else {
                return Ok(None);
            };
            next.version = version + 1;
            if self.store.swap(next.clone()).await? {
                self.notify();
                return Ok(Some(next));
            }
        }
        Err(BrokerError::Conflict(id.clone()))
    }

    /// Waits until request `id` is no longer pending, or `timeout` passes; returns it as it
    /// then stands.
    pub async fn wait(
        &self,
        id: &ApprovalId,
        timeout: Duration,
    ) -> Result<ApprovalRequest, BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        let mut elsewhere = self.store.changes();
        loop {
            let current = self.get(id).await?;
            if current.status_at(unix_now()) != Status::Pending {
                return Ok(current);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(current);
            }
            let nap = (deadline - now).min(self.poll);
            // Woken by a change made through this broker, by the store's notice of a change
            // made elsewhere (another replica), or by the poll interval.
            let store_changed = async {
                match elsewhere.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let _ = tokio::time::timeout(nap, async {
                tokio::select! {
                    _ = changed.changed() => {}
                    () = store_changed => {}
                }
            })
            .await;
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The approver rules of invariant I2.
fn check_approver(request: &ApprovalRequest, approver: &Principal) -> Result<(), BrokerError> {
    // The approver is one of the parties, or acts for one of them.
    if request.requester.involves(approver) {
        return Err(BrokerError::SelfApproval(approver.id.clone()));
    }
    if approver.kind != PrincipalKind::Human || approver.on_behalf_of.is_some() {
        return Err(BrokerError::NotHuman(approver.id.clone()));
    }
    if !request.approver_groups.iter().any(|g| approver.in_group(g)) {
        return Err(BrokerError::NotApprover {
            approver: approver.id.clone(),
            groups: request.approver_groups.join(", "),
        });
    }
    if request
        .votes
        .iter()
        .any(|v| same(&v.approver, &approver.id))
    {
        return Err(BrokerError::AlreadyVoted(approver.id.clone()));
    }
    Ok(())
}
