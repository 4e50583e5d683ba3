//! The approval model: [`ApprovalRequest`], its [`Status`] and the [`Vote`]s cast on it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sod_core::{Fingerprint, Glob, KindSet, Operation, OperationKind};

/// An approval request's id: `apr-` and 24 random hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(format!(
            "apr-{}",
            sod_core::hex::encode(&sod_core::hex::random::<12>())
        ))
    }

    /// An id as written (from an API path or an error message).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who asks: the principal the operation runs as, and the human it acts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The requesting principal's id.
    pub id: String,
    /// The human the requester acts for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

impl Requester {
    /// A requester acting for nobody else.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            on_behalf_of: None,
        }
    }

    /// The human the requester acts for.
    #[must_use]
    pub fn on_behalf_of(mut self, human: impl Into<String>) -> Self {
        self.on_behalf_of = Some(human.into());
        self
    }

    /// The requester of a session's principal.
    pub fn of(principal: &sod_core::Principal) -> Self {
        Self {
            id: principal.id.clone(),
            on_behalf_of: principal.on_behalf_of.clone(),
        }
    }

    /// Whether `other` is the same requester (ids compared case-insensitively, as identity
    /// providers differ in how they spell them).
    /// Whether `principal` is a party to this requester's requests: it is the requester or
    /// whom it acts for, or acts for either (ids compared ASCII case-insensitively). The one
    /// definition of "party" for self-approval, visibility and revocation.
    pub(crate) fn involves(&self, principal: &sod_core::Principal) -> bool {
        let parties = std::iter::once(self.id.as_str()).chain(self.on_behalf_of.as_deref());
        std::iter::once(principal.id.as_str())
            .chain(principal.on_behalf_of.as_deref())
            .any(|who| parties.clone().any(|p| p.eq_ignore_ascii_case(who)))
    }

    pub(crate) fn same_as(&self, other: &Requester) -> bool {
        self.id.eq_ignore_ascii_case(&other.id)
            && match (&self.on_behalf_of, &other.on_behalf_of) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

/// What is to be approved: the operation as the approver sees it, and the fingerprint the
/// approval is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationSummary {
    /// The target (`pg/prod`).
    pub target: String,
    /// The operation's kind.
    pub kind: OperationKind,
    /// The full normalized text.
    pub text: String,
    /// The objects it touches.
    pub objects: Vec<String>,
    /// The bound parameter values (extended-protocol `$1`, `$2`, …), as text (invalid UTF-8
    /// replaced, each cut at 1 KiB): the approver approves these values too. `None` is NULL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Option<String>>,
    /// The fingerprint: target, kind, text and bound parameter values (invariant I3).
    pub fingerprint: Fingerprint,
}

/// A parameter value as an approver reads it.
fn render_param(value: &[u8]) -> String {
    const MAX: usize = 1024;
    let text = String::from_utf8_lossy(&value[..value.len().min(MAX)]).into_owned();
    if value.len() > MAX {
        format!("{text}… ({} bytes)", value.len())
    } else {
        text
    }
}

impl OperationSummary {
    /// The summary of `op`.
    pub fn of(op: &Operation) -> Self {
        Self {
            target: op.target().to_string(),
            kind: op.kind(),
            text: op.text().to_owned(),
            objects: crate::request::shown_objects(op),
            params: op
                .params()
                .iter()
                .map(|p| p.as_deref().map(render_param))
                .collect(),
            fingerprint: op.fingerprint(),
        }
    }
}

/// An approver's vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver's principal id.
    pub approver: String,
    /// Yes or no.
    pub approve: bool,
    /// The approver's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for votes.
    Pending,
    /// The quorum approved; it can be used (`uses_left` more times).
    Approved,
    /// An approver denied it (final).
    Denied,
    /// Used up.
    Consumed,
    /// Not decided, or not used, in time.
    Expired,
    /// Withdrawn before it was used up (grants, plans, or any request not yet consumed).
    Revoked,
}

/// What a request covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Scope {
    /// Exactly the request's operation (its fingerprint).
    #[default]
    Operation,
    /// A plan: operations submitted ahead of execution and approved as a whole. Each entry
    /// then runs once, in any session of the requester, without waiting.
    Plan {
        /// The plan's operations, in order.
        entries: Vec<PlanEntry>,
    },
    /// Just-in-time access: any operation of these kinds, on these targets and objects, by the
    /// requester, until the request expires. Revocable.
    Grant(GrantScope),
}

/// One operation of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The operation.
    pub operation: OperationSummary,
    /// Whether it has run.
    pub used: bool,
}

/// The class of operations a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    /// Operation kinds.
    pub kinds: KindSet,
    /// Target globs (`pg/prod`, `pg/*`).
    pub targets: Vec<Glob>,
    /// Object globs; every object the operation touches must match one. Empty: operations
    /// that name no object only.
    #[serde(default)]
    pub objects: Vec<Glob>,
}

impl GrantScope {
    /// Whether `op` lies within the grant: its kind and the kind of every statement of a
    /// batch, its target, and every object it touches.
    pub fn covers(&self, op: &Operation) -> bool {
        self.kinds.contains(op.kind())
            && op.atoms().all(|a| self.kinds.contains(a.kind()))
            && self.targets.iter().any(|t| t.matches(op.target().as_str()))
            && op
                .objects()
                .iter()
                .all(|o| self.objects.iter().any(|g| g.matches(o)))
            // A collection is covered only by a glob that covers every member, and objects not
            // all known are never covered.
            && op
                .collections()
                .iter()
                .all(|c| self.objects.iter().any(|g| g.matches_all_starting_with(c)))
            && op.unknown_objects().is_none()
    }

    /// A one-line description, for approvers.
    pub fn describe(&self) -> String {
        let list = |globs: &[Glob]| {
            globs
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "grant: {} on {} (objects: {})",
            self.kinds,
            list(&self.targets),
            if self.objects.is_empty() {
                "none".to_owned()
            } else {
                list(&self.objects)
            }
        )
    }
}

/// A request for approval of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Its id.
    pub id: ApprovalId,
    /// Who asks.
    pub requester: Requester,
    /// The session's capability id, if the requester presented one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// What is to be approved: the operation, or for a plan or a grant a summary of it (the
    /// approver reads `scope` for the details).
    pub operation: OperationSummary,
    /// What the approval covers: the operation, a plan's entries, or a grant's class.
    #[serde(default)]
    pub scope: Scope,
    /// Why the requester wants it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The policy rule that asked for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Approvers must be in one of these groups.
    pub approver_groups: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
    /// Created, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Pending requests expire then, and so do unused approvals.
    pub expires_at: u64,
    /// How many times an approval may be used (1 by default).
    pub uses_left: u32,
    /// The votes cast.
    pub votes: Vec<Vote>,
    /// Where it stands. Read it through [`status_at`](Self::status_at), which applies expiry.
    pub status: Status,
    /// Bumped by every change; stores swap only when it matches (compare-and-swap).
    pub version: u64,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ApprovalRequest {
    /// A pending request by `requester` for `operation`, approvable by `quorum` distinct
    /// members of `approver_groups`, open for `ttl`.
    pub fn new(
        requester: Requester,
        operation: &Operation,
        approver_groups: Vec<String>,
        quorum: u32,
        ttl: Duration,
    ) -> Self {
        let now = unix_now();
        Self {
            id: ApprovalId::random(),
            requester,
            capability: None,
            operation: OperationSummary::of(operation),
            scope: Scope::Operation,
            justification: None,
            rule: None,
            approver_groups,
            quorum: quorum.max(1),
            created_at: now,
            expires_at: now.saturating_add(ttl.as_secs().max(1)),
            uses_left: 1,
            votes: Vec::new(),
            status: Status::Pending,
            version: 0,
        }
    }

    /// A plan: `operations` (at least one) approved as a whole, each then usable once.
    /// The summary operation names them all; its fingerprint covers every entry's.
    pub fn plan(
        requester: Requester,
        operations: &[Operation],
        approver_groups: Vec<String>,
        quorum: u32,
        ttl: Duration,
    ) -> Option<Self> {
        let first = operations.first()?;
        let summary = Operation::builder(
            first.target().clone(),
            operations
                .iter()
                .map(Operation::kind)
                .max()
                .unwrap_or(OperationKind::Unknown),
            format!(
                "plan of {} operations: {}",
                operations.len(),
                operations
                    .iter()
                    .map(Operation::text)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
        .objects(operations.iter().flat_map(|o| o.objects().iter().cloned()));
        let summary = operations
            .iter()
            .flat_map(|o| o.collections())
            .fold(summary, |b, c| b.collection(c.clone()));
        let summary = operations
            .iter()
            .fold(summary, |b, o| b.param(Some(bytes_of(&o.fingerprint()))))
            .build();
        let mut request = Self::new(requester, &summary, approver_groups, quorum, ttl);
        request.scope = Scope::Plan {
            entries: operations
                .iter()
                .map(|o| PlanEntry {
                    operation: OperationSummary::of(o),
                    used: false,
                })
                .collect(),
        };
        Some(request)
    }

    /// A grant: any operation within `scope` by `requester`, from approval until `window`
    /// after submission.
    pub fn grant(
        requester: Requester,
        target: sod_core::Target,
        scope: GrantScope,
        approver_groups: Vec<String>,
        quorum: u32,
        window: Duration,
    ) -> Self {
        let kind = scope.kinds.iter().max().unwrap_or(OperationKind::Unknown);
        let summary = Operation::builder(target, kind, scope.describe()).build();
        let mut request = Self::new(requester, &summary, approver_groups, quorum, window);
        request.scope = Scope::Grant(scope);
        request
    }

    /// With the requester's justification.
    #[must_use]
    pub fn justification(mut self, why: impl Into<String>) -> Self {
        self.justification = Some(why.into());
        self
    }

    /// With the policy rule that asked for approval.
    #[must_use]
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// With the session's capability id.
    #[must_use]
    pub fn capability(mut self, id: impl Into<String>) -> Self {
        self.capability = Some(id.into());
        self
    }

    /// Whether this approval was given on terms at least as strict as `spec` asks: its approver
    /// groups are among the spec's, its quorum is at least the spec's, and it was open no longer
    /// than the spec allows. An approval given under other terms (submitted by other code, or
    /// before the policy was tightened) does not satisfy a decision that asks for `spec`.
    pub fn satisfies(&self, spec: &sod_core::policy::ApprovalSpec) -> bool {
        !self.approver_groups.is_empty()
            && self
                .approver_groups
                .iter()
                .all(|g| spec.approver_groups.contains(g))
            && self.quorum >= spec.quorum
            && self.expires_at.saturating_sub(self.created_at) <= spec.ttl.as_secs().max(1)
    }

    /// Usable `uses` times once approved (at least once).
    #[must_use]
    pub fn uses(mut self, uses: u32) -> Self {
        self.uses_left = uses.max(1);
        self
    }

    /// The status at `now` (seconds since the epoch): pending and approved requests past their
    /// expiry are expired.
    pub fn status_at(&self, now: u64) -> Status {
        match self.status {
            Status::Pending | Status::Approved if now >= self.expires_at => Status::Expired,
            s => s,
        }
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.status_at(unix_now())
    }

    /// Distinct approvers who voted yes.
    pub fn approvers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.votes.iter().filter(|v| v.approve) {
            if !out.iter().any(|a| a.eq_ignore_ascii_case(&v.approver)) {
                out.push(v.approver.clone());
            }
        }
        out
    }
}

fn bytes_of(f: &Fingerprint) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(f.as_bytes())
}

/// The objects an operation touches as approvers and the audit log show them: each object, then
/// each collection as its prefix followed by `*`.
pub(crate) fn shown_objects(op: &Operation) -> Vec<String> {
    op.objects()
        .iter()
        .cloned()
        .chain(op.collections().iter().map(|c| format!("{c}*")))
        .collect()
}
