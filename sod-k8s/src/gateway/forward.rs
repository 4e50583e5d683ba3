//! The request the API server gets and the answer the client gets.
//!
//! Upstream, a request carries only what the API server needs to serve it: the method, the
//! path and query as the client sent them, the body, and an allow-list of headers. The
//! client's `Authorization` never passes (the `kube` client adds the gateway's own
//! credentials); `Accept` is narrowed to JSON (no protobuf, no CBOR: the gateway reads what it
//! masks) and `Accept-Encoding` is `identity`.

use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use sod_core::audit::{Completion, CompletionStatus};

use super::Shared;
use super::body::{Idle, Observed, ResponseBody, WatchMasked};
use crate::masking::{Answering, mask_answer};
use crate::service::K8sResponse;
use crate::status::{self, RULE_MASKED_PATCH, RULE_UNMASKABLE};

/// Request headers that pass to the API server (lowercase). Everything else stays behind:
/// credentials, impersonation, cookies, hop-by-hop headers, encodings.
const FORWARDED: &[&str] = &[
    "content-type",
    "user-agent",
    "kubectl-command",
    "kubectl-session",
    "audit-id",
    "x-request-id",
];

/// Answer headers that do not pass back as they are: hop-by-hop, and what the gateway
/// recomputes.
const NOT_RETURNED: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
];

/// What the answer needs to be masked right.
#[derive(Clone, Debug)]
pub(super) struct Answer {
    /// The request's resource (`nonresource` for discovery and the like).
    pub(super) resource: String,
    /// The request was about Secrets.
    pub(super) secrets: bool,
    /// The request is for a watch stream.
    pub(super) watch: bool,
    /// The request is for text (`pods/log`).
    pub(super) text: bool,
}

impl Answer {
    fn answering(&self) -> Answering<'_> {
        Answering {
            resource: &self.resource,
            secrets: self.secrets,
            text: self.text,
        }
    }
}

/// Forwards a committed request and answers the client.
pub(super) async fn forward<L>(
    shared: &Shared<L>,
    parts: Parts,
    path_and_query: &str,
    body: Bytes,
    mut go: K8sResponse,
    answer: Answer,
    started: Instant,
) -> http::Response<ResponseBody> {
    if !go.masker().is_noop()
        && let Some(op) = reading_patch(&parts, &body)
    {
        return failed(
            &mut go,
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "sod: refused by rule `{RULE_MASKED_PATCH}`: a JSON Patch `{op}` reads values a masked principal may not see; write the values themselves"
            ),
            started,
        );
    }
    let request = match upstream_request(&parts, path_and_query, body) {
        Ok(r) => r,
        Err(e) => return failed(&mut go, StatusCode::BAD_REQUEST, "BadRequest", &e, started),
    };
    let response = match shared.upstream.send(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the API server cannot be reached");
            return failed(
                &mut go,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &format!("sod: the API server cannot be reached: {e}"),
                started,
            );
        }
    };
    let (mut head, upstream_body) = response.into_parts();
    let headers = returned(&head.headers);
    let encoding = head.headers.get(header::CONTENT_ENCODING).cloned();
    let encoded = encoding
        .as_ref()
        .is_some_and(|v| v.as_bytes() != b"identity");
    head.headers = headers;
    let masker = go.masker().clone();
    if masker.is_noop() {
        if let Some(encoding) = encoding {
            // Passed as it came, encoding and all.
            head.headers.insert(header::CONTENT_ENCODING, encoding);
        }
        let body = Observed::new(upstream_body, go, head.status, started);
        if answer.watch {
            let body = Idle::new(body, shared.limits.watch_idle);
            return http::Response::from_parts(head, ResponseBody::new(body));
        }
        return http::Response::from_parts(head, ResponseBody::new(body));
    }
    if encoded {
        return failed(
            &mut go,
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "sod: refused by rule `{RULE_UNMASKABLE}`: the API server answered with an encoded body, which cannot be masked"
            ),
            started,
        );
    }
    if answer.watch && head.status.is_success() {
        let body = WatchMasked::new(
            upstream_body,
            go,
            answer.answering(),
            masker,
            shared.limits.watch_line,
            started,
        );
        let body = Idle::new(body, shared.limits.watch_idle);
        return http::Response::from_parts(head, ResponseBody::new(body));
    }
    // Read whole, masked, then passed.
    let limit = shared.limits.masked_answer;
    let whole = match http_body_util::Limited::new(upstream_body, limit)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return failed(
                &mut go,
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "sod: refused by rule `{RULE_UNMASKABLE}`: the answer could not be read whole to mask it (limit {limit} bytes): {e}"
                ),
                started,
            );
        }
    };
    let masked = match mask_answer(&whole, answer.answering(), &masker) {
        Ok(m) => m,
        Err(e) => {
            return failed(
                &mut go,
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("sod: refused by rule `{RULE_UNMASKABLE}`: {e}"),
                started,
            );
        }
    };
    go.finish(&Completion {
        status: outcome(head.status),
        bytes: Some(masked.len() as u64),
        error_code: error_code(head.status),
        duration: started.elapsed(),
        ..Completion::default()
    });
    http::Response::from_parts(head, ResponseBody::full(Bytes::from(masked)))
}

/// The first JSON Patch operation of the request that reads an existing value (`copy`,
/// `move`, `test`): a masked principal could copy a masked value where it is not masked, or
/// test guesses against it.
fn reading_patch(parts: &Parts, body: &[u8]) -> Option<String> {
    let json_patch = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json-patch"));
    if !json_patch {
        return None;
    }
    let ops: Vec<serde_json::Value> = match serde_json::from_slice(body) {
        Ok(ops) => ops,
        // Unreadable: the API server refuses it; nothing is read.
        Err(_) => return None,
    };
    ops.iter()
        .filter_map(|op| op.get("op").and_then(|o| o.as_str()))
        .find(|op| matches!(*op, "copy" | "move" | "test"))
        .map(str::to_owned)
}

/// The request for the API server.
fn upstream_request(
    parts: &Parts,
    path_and_query: &str,
    body: Bytes,
) -> Result<http::Request<kube::client::Body>, String> {
    let mut request = http::Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query)
        .body(kube::client::Body::from(body))
        .map_err(|e| format!("sod: the request cannot be forwarded: {e}"))?;
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if FORWARDED.contains(&name.as_str()) {
            headers.append(name, value.clone());
        }
    }
    headers.insert(header::ACCEPT, json_only(&parts.headers));
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    Ok(request)
}

/// The client's `Accept` with every media type but JSON removed; `application/json` when
/// nothing is left. Tables (`application/json;as=Table;…`) stay: they are JSON.
pub(super) fn json_only(headers: &HeaderMap) -> HeaderValue {
    let kept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            let media = t.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/json")
        })
        .collect();
    if kept.is_empty() {
        return HeaderValue::from_static("application/json");
    }
    HeaderValue::from_str(&kept.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static("application/json"))
}

/// The answer's headers the client gets.
fn returned(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !NOT_RETURNED.contains(&name.as_str()) {
            out.append(name, value.clone());
        }
    }
    out
}

/// A failure after the go-ahead: recorded as the operation's outcome, answered as a Status.
fn failed(
    go: &mut K8sResponse,
    code: StatusCode,
    reason: &str,
    message: &str,
    started: Instant,
) -> http::Response<ResponseBody> {
    go.finish(&Completion {
        status: CompletionStatus::Error,
        error_code: Some(code.as_u16().to_string()),
        duration: started.elapsed(),
        ..Completion::default()
    });
    status::response(code, reason, message, None)
}

/// How an answer with `status` ended, for the audit log.
pub(super) fn outcome(status: StatusCode) -> CompletionStatus {
    if status.is_success() || status.is_informational() {
        CompletionStatus::Ok
    } else {
        CompletionStatus::Error
    }
}

/// The HTTP status of a failed answer, as the audit log's error code.
pub(super) fn error_code(status: StatusCode) -> Option<String> {
    (!status.is_success()).then(|| status.as_u16().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_keeps_json_and_tables_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io,application/cbor, application/json",
            ),
        );
        assert_eq!(
            json_only(&h),
            "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
        );
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        assert_eq!(json_only(&h), "application/json");
        assert_eq!(json_only(&HeaderMap::new()), "application/json");
    }
}
