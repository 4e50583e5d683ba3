//! [`Refusal`]: why an operation was not carried out, in a form every protocol can render.
//!
//! Every layer that stops an operation returns a `Refusal` (boxed, as tower's [`BoxError`]).
//! A protocol driver finds it with [`Refusal::find`] and maps it to its native error: a
//! PostgreSQL `ErrorResponse` (SQLSTATE from [`RefusalCode`]), an SSH channel failure with a
//! stderr message, a Kubernetes `Status`. Each refusal carries a stable code, the id of the rule
//! that decided, a human sentence and, where one applies, the approval id.
//!
//! ```
//! use sod_core::{BoxError, Refusal, RefusalCode};
//!
//! let err: BoxError = Refusal::new(RefusalCode::PolicyDenied, "schema changes are not allowed")
//!     .with_rule("no-ddl")
//!     .into();
//! let refusal = Refusal::find(&*err).expect("a refusal");
//! assert_eq!(refusal.code(), RefusalCode::PolicyDenied);
//! assert_eq!(err.to_string(), "refused by rule `no-ddl`: schema changes are not allowed");
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The error type of every sod service: tower's convention, so sod layers compose with any
/// other tower layer. Refusals inside it are found with [`Refusal::find`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Stable machine-readable reason for a refusal. New codes may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCode {
    /// No valid identity: missing, malformed, expired or untrusted credential.
    Unauthenticated,
    /// The session's credential expired after the session started.
    IdentityExpired,
    /// The session's capability was revoked after the session started (or the revocation
    /// list cannot be read).
    CapabilityRevoked,
    /// The operation is outside the caller's capability (target, kind, objects, plan).
    CapabilityScope,
    /// A policy rule (or the absence of an allowing rule) denied the operation.
    PolicyDenied,
    /// The operation needs approval that has not (yet) been given.
    ApprovalRequired,
    /// An approver denied the operation.
    ApprovalDenied,
    /// The audit record could not be written, so the operation was not forwarded.
    AuditUnavailable,
    /// The service stack is missing a layer the operation needs (fail closed).
    Misconfigured,
    /// Something the operation needs besides the audit log (the upstream connection, the
    /// catalog masking resolves names in) failed or cannot be reached, so nothing was forwarded.
    /// An outage, not a verdict on the caller: never a capability or policy violation.
    Unavailable,
}

impl RefusalCode {
    /// The code as written in records and messages: `policy_denied`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::IdentityExpired => "identity_expired",
            Self::CapabilityRevoked => "capability_revoked",
            Self::CapabilityScope => "capability_scope",
            Self::PolicyDenied => "policy_denied",
            Self::ApprovalRequired => "approval_required",
            Self::ApprovalDenied => "approval_denied",
            Self::AuditUnavailable => "audit_unavailable",
            Self::Misconfigured => "misconfigured",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether the refusal is about who the caller is (protocols map these to their
    /// authentication errors, such as SQLSTATE 28000) rather than about what they asked.
    pub fn is_authentication(self) -> bool {
        matches!(
            self,
            Self::Unauthenticated | Self::IdentityExpired | Self::CapabilityRevoked
        )
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operation was not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    code: RefusalCode,
    rule: Option<Arc<str>>,
    reason: Cow<'static, str>,
    approval_id: Option<String>,
}

impl Refusal {
    /// A refusal with `code` and a human-readable `reason`.
    pub fn new(code: RefusalCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            rule: None,
            reason: reason.into(),
            approval_id: None,
        }
    }

    /// Names the rule that decided.
    pub fn with_rule(mut self, rule: impl Into<Arc<str>>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Names the approval request the caller can follow up on.
    pub fn with_approval_id(mut self, id: impl Into<String>) -> Self {
        self.approval_id = Some(id.into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> RefusalCode {
        self.code
    }

    /// The rule that decided, if a rule did.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// The human sentence.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The approval request, if one applies.
    pub fn approval_id(&self) -> Option<&str> {
        self.approval_id.as_deref()
    }

    /// Finds a refusal in `err` or its chain of sources.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refusal> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(r) = e.downcast_ref::<Refusal>() {
                return Some(r);
            }
            cur = e.source();
        }
        None
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.rule) {
            (RefusalCode::Unauthenticated, _) => {
                write!(f, "authentication failed: {}", self.reason)?
            }
            (_, Some(rule)) => write!(f, "refused by rule `{rule}`: {}", self.reason)?,
            (_, None) => write!(f, "refused ({}): {}", self.code, self.reason)?,
        }
        if let Some(id) = &self.approval_id {
            write!(f, " (approval {id})")?;
        }
        Ok(())
    }
}

impl StdError for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Refusal);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn found_through_source_chain() {
        let r = Refusal::new(RefusalCode::ApprovalRequired, "needs one approval")
            .with_rule("orders")
            .with_approval_id("ap-1");
        let err: BoxError = Box::new(Wrapper(r.clone()));
        assert_eq!(Refusal::find(&*err), Some(&r));
        assert_eq!(
            r.to_string(),
            "refused by rule `orders`: needs one approval (approval ap-1)"
        );
        let plain: BoxError = "io".into();
        assert_eq!(Refusal::find(&*plain), None);
    }

    #[test]
    fn messages_per_code() {
        let a = Refusal::new(RefusalCode::Unauthenticated, "token expired");
        assert_eq!(a.to_string(), "authentication failed: token expired");
        assert!(a.code().is_authentication());
        let m = Refusal::new(RefusalCode::AuditUnavailable, "disk full");
        assert_eq!(m.to_string(), "refused (audit_unavailable): disk full");
    }
}
