//! `Status` objects: what the API server answers instead of an object when a request fails, with
//! the reasons and messages kubectl prints (`Error from server (NotFound): pods "x" not found`).

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::wire::{self, Body};

/// A failed request, answered as a `Status`.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(super) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `pods "x" not found`.
    pub(super) fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(details(group, resource, name))
    }

    /// A path nothing is served at.
    pub(super) fn no_route() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// `configmaps "x" already exists`.
    pub(super) fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(details(group, resource, name))
    }

    /// An update based on an older resourceVersion.
    pub(super) fn conflict(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .with_details(details(group, resource, name))
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 422, as the API server's validation answers (`ConfigMap "" is invalid: ...`).
    pub(super) fn invalid(kind: &str, name: &str, field: &str, problem: &str) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {field}: {problem}"),
        )
        .with_details(json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": problem, "field": field}],
        }))
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub(super) fn method_not_allowed(method: &str) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
        .with_details(json!({}))
    }

    pub(super) fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({content_type})"),
        )
    }

    /// 410, when a watch starts before the oldest change still remembered.
    pub(super) fn expired(message: String) -> Self {
        ApiError::new(StatusCode::GONE, "Expired", message)
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// The `Status` object.
    pub(super) fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// The `Status` as a response.
    pub(super) fn response(&self) -> Response<Body> {
        wire::json(self.code, &self.status())
    }
}

/// `pods`, `deployments.apps`: how the API server names a resource in messages.
pub(super) fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    if group.is_empty() {
        json!({"name": name, "kind": resource})
    } else {
        json!({"name": name, "group": group, "kind": resource})
    }
}
