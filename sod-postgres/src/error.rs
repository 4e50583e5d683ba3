//! Refusals and failures as PostgreSQL `ErrorResponse`s.
//!
//! | refusal | SQLSTATE |
//! |---|---|
//! | authentication failed (bad, expired, untrusted token) | `28P01` invalid_password |
//! | no credential, identity expired | `28000` invalid_authorization_specification |
//! | policy, capability, approval, audit, misconfiguration | `42501` insufficient_privilege |
//! | something the operation needs is unavailable (upstream, catalog) | `58000` system_error |
//!
//! Messages start with `sod:` so a user can tell the gateway's refusals from the server's
//! errors; the rule id is in the message and in the `DETAIL` field, the approval id (when there
//! is one) in the message and in the `HINT`.

use bytes::{Bytes, BytesMut};
use sod_core::{BoxError, Refusal, RefusalCode};

use crate::codec::{ErrorBuilder, Severity};

/// SQLSTATE for refusals.
pub const REFUSED: &str = "42501";
/// SQLSTATE for a rejected credential.
pub const BAD_CREDENTIAL: &str = "28P01";
/// SQLSTATE for a missing or expired identity.
pub const NOT_AUTHORIZED: &str = "28000";
/// SQLSTATE for an outage of something the operation needs (not a verdict on the caller).
pub const UNAVAILABLE: &str = "58000";

/// The `ErrorResponse` for a refusal, at `severity` (`FATAL` during start-up, `ERROR` after).
pub fn refusal_error(refusal: &Refusal, severity: Severity) -> ErrorBuilder {
    let code = match refusal.code() {
        RefusalCode::Unauthenticated if refusal.reason() != "no credential was presented" => {
            BAD_CREDENTIAL
        }
        RefusalCode::Unauthenticated
        | RefusalCode::IdentityExpired
        | RefusalCode::CapabilityRevoked => NOT_AUTHORIZED,
        RefusalCode::Unavailable => UNAVAILABLE,
        _ => REFUSED,
    };
    let mut err = ErrorBuilder::new(severity, code, format!("sod: {refusal}"));
    let mut detail = format!("refusal: {}", refusal.code());
    if let Some(rule) = refusal.rule() {
        detail.push_str(&format!("; rule: {rule}"));
    }
    err.detail = Some(detail);
    if let Some(id) = refusal.approval_id() {
        err.hint = Some(format!(
            "approval request {id}; run the statement again once it is approved"
        ));
    }
    err
}

/// The `ErrorResponse` for any error from the service stack: a refusal if it is one, otherwise
/// a generic failure that does not leak internals.
pub(crate) fn stack_error(err: &BoxError, severity: Severity) -> ErrorBuilder {
    match Refusal::find(err.as_ref()) {
        Some(r) => refusal_error(r, severity),
        None => {
            tracing::warn!(error = %err, "request failed in the service stack");
            ErrorBuilder::new(severity, "58000", format!("sod: the request failed: {err}"))
        }
    }
}

/// Encodes an error as bytes.
pub(crate) fn encoded(err: &ErrorBuilder) -> Bytes {
    let mut out = BytesMut::new();
    err.encode(&mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_sqlstates_and_name_the_rule() {
        let r = Refusal::new(RefusalCode::PolicyDenied, "schema changes are not allowed")
            .with_rule("no-ddl");
        let e = refusal_error(&r, Severity::Error);
        assert_eq!(e.code, REFUSED);
        assert_eq!(
            e.message,
            "sod: refused by rule `no-ddl`: schema changes are not allowed"
        );
        assert_eq!(
            e.detail.as_deref(),
            Some("refusal: policy_denied; rule: no-ddl")
        );
        let a = Refusal::new(RefusalCode::ApprovalRequired, "needs approval")
            .with_rule("orders")
            .with_approval_id("ap-7");
        let e = refusal_error(&a, Severity::Error);
        assert!(e.message.contains("ap-7"));
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("ap-7")));
        let bad = Refusal::new(RefusalCode::Unauthenticated, "token expired");
        assert_eq!(refusal_error(&bad, Severity::Fatal).code, BAD_CREDENTIAL);
        let none = Refusal::new(RefusalCode::Unauthenticated, "no credential was presented");
        assert_eq!(refusal_error(&none, Severity::Fatal).code, NOT_AUTHORIZED);
        let down = Refusal::new(RefusalCode::Unavailable, "cannot reload the catalog");
        let e = refusal_error(&down, Severity::Error);
        assert_eq!(e.code, UNAVAILABLE);
        assert_eq!(e.detail.as_deref(), Some("refusal: unavailable"));
    }
}
