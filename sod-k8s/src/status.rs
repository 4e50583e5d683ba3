//! Refusals as Kubernetes clients see them: a `Status` object with the HTTP code, which
//! `kubectl` prints as `Error from server (Forbidden): …` and `kube` returns as
//! `Error::Api`.
//!
//! | refusal | HTTP | `reason` |
//! |---|---|---|
//! | no or bad credential, expired identity | 401 | `Unauthorized` |
//! | policy, capability scope, approval pending or denied, impersonation | 403 | `Forbidden` |
//! | audit log or upstream unavailable | 503 | `ServiceUnavailable` |
//! | a request sod cannot read (non-canonical path, unknown method) | 400 | `BadRequest` |
//! | a body over the limit | 413 | `RequestEntityTooLarge` |
//!
//! The message starts with `sod:` and names the rule (`refused by rule `…``) and the reason;
//! a pending approval's message names the approval id and says to run the same request again
//! once it is approved.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;
use sod_core::{BoxError, Refusal, RefusalCode};

/// The rule named when a client sends `Impersonate-*` headers: the gateway acts with its own
/// credentials for the identity the token proves, never as someone the client names.
pub const RULE_IMPERSONATION: &str = "k8s-no-impersonation";
/// The rule named when a request cannot be given a meaning (a non-canonical path, a method
/// the API does not serve).
pub const RULE_REQUEST_INFO: &str = "k8s-request-info";
/// The rule named when a request body is over the limit or cannot be read.
pub const RULE_BODY: &str = "k8s-request-body";
/// The rule named when an answer for a masked principal cannot be masked (not JSON, an
/// unknown kind in an answer about Secrets, encoded, over the limit).
pub const RULE_UNMASKABLE: &str = "k8s-unmaskable-answer";

/// The rule named when a masked principal's JSON Patch reads existing values (`copy`, `move`,
/// `test`).
pub const RULE_MASKED_PATCH: &str = "k8s-masked-patch";

/// A `Status` failure with `code`, `reason` and `message`, and the rule in `details.causes`.
pub fn failure(code: StatusCode, reason: &str, message: &str, rule: Option<&str>) -> Bytes {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(rule) = rule {
        status["details"] = json!({"causes": [{"reason": "SodRule", "message": rule}]});
    }
    Bytes::from(status.to_string())
}

/// The HTTP answer for a failure `Status`.
pub fn response<B: From<Bytes>>(
    code: StatusCode,
    reason: &str,
    message: &str,
    rule: Option<&str>,
) -> Response<B> {
    let mut response = Response::new(B::from(failure(code, reason, message, rule)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The code and reason a refusal is answered with.
pub fn code_of(refusal: &Refusal) -> (StatusCode, &'static str) {
    match refusal.code() {
        RefusalCode::Unauthenticated
        | RefusalCode::IdentityExpired
        | RefusalCode::CapabilityRevoked => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        RefusalCode::AuditUnavailable | RefusalCode::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        }
        RefusalCode::Misconfigured => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        _ => (StatusCode::FORBIDDEN, "Forbidden"),
    }
}

/// The message a refusal is answered with.
pub fn message_of(refusal: &Refusal) -> String {
    let mut message = format!("sod: {refusal}");
    if refusal.code() == RefusalCode::ApprovalRequired && refusal.approval_id().is_some() {
        message.push_str("; run the same request again once it is approved");
    }
    message
}

/// The answer for a refusal.
pub fn refused<B: From<Bytes>>(refusal: &Refusal) -> Response<B> {
    let (code, reason) = code_of(refusal);
    response(code, reason, &message_of(refusal), refusal.rule())
}

/// The answer for a stack error: a [`Refusal`], or another failure, which refuses too (fail
/// closed) as an outage.
pub fn from_error<B: From<Bytes>>(err: &BoxError) -> Response<B> {
    match Refusal::find(&**err) {
        Some(r) => refused(r),
        None => response(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("sod: refused: {err}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_statuses_naming_rule_and_approval() {
        let r = Refusal::new(RefusalCode::ApprovalRequired, "writes need approval")
            .with_rule("planner-writes")
            .with_approval_id("ap-1");
        let response: Response<Bytes> = refused(&r);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let status: serde_json::Value =
            serde_json::from_slice(response.body()).expect("a JSON Status");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        let message = status["message"].as_str().expect("a message");
        assert!(message.starts_with("sod: "), "{message}");
        assert!(message.contains("planner-writes"), "{message}");
        assert!(message.contains("ap-1"), "{message}");
        assert!(message.contains("run the same request again"), "{message}");
        assert_eq!(status["details"]["causes"][0]["message"], "planner-writes");
        let r = Refusal::new(RefusalCode::Unauthenticated, "bad token");
        assert_eq!(code_of(&r).0, StatusCode::UNAUTHORIZED);
        let r = Refusal::new(RefusalCode::AuditUnavailable, "disk full");
        assert_eq!(code_of(&r).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
