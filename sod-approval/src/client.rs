//! [`ApprovalsClient`]: a client for the approvals HTTP API ([`ApprovalApi`](crate::ApprovalApi)),
//! built from the same route table as the server. `sod approvals …` is a thin layer over it;
//! embed it to approve from your own tools.
//!
//! ```no_run
//! use sod_approval::ApprovalsClient;
//! use sod_core::Secret;
//!
//! # async fn run() -> Result<(), sod_core::BoxError> {
//! let client = ApprovalsClient::new("https://approvals.example.com", Secret::new("eyJ…".into()), None)?;
//! let pending = client.list().await?;
//! if let Some(id) = pending.body[0]["id"].as_str() {
//!     let answer = client.decide(id, true, Some("refund agreed")).await?;
//!     assert!(answer.status.is_success(), "{}", answer.error());
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::Value;
use sod_core::https::{self, HttpsClient, PlainHttp};
use sod_core::{BoxError, Secret};

use crate::ApprovalId;
use crate::routes::Route;

/// The largest answer read (the API's answers are small; a list of many requests stays well
/// under this).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The approvals API at one base URL, called with one bearer token.
pub struct ApprovalsClient {
    base: String,
    token: Secret<String>,
    http: HttpsClient<Full<Bytes>>,
}

impl std::fmt::Debug for ApprovalsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalsClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An API answer: the status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (`{"error": …}` on failure).
    pub body: Value,
}

impl Answer {
    /// The API's error message, or the status.
    pub fn error(&self) -> String {
        self.body
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| self.status.to_string(), str::to_owned)
    }
}

impl ApprovalsClient {
    /// How long one API call may take.
    pub const TIMEOUT: Duration = Duration::from_secs(30);

    /// A client for `base` (`https://…`, or `http://` to a loopback IP address only: the token
    /// is a bearer credential). `tls` replaces the system's roots for HTTPS.
    pub fn new(
        base: &str,
        token: Secret<String>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Self, BoxError> {
        let base = base.trim_end_matches('/').to_owned();
        https::check_url(&base, PlainHttp::LoopbackOnly)?;
        let http = https::client(tls, PlainHttp::LoopbackOnly)?;
        Ok(Self { base, token, http })
    }

    /// `GET /v1/approvals`: the pending requests the caller may see.
    pub async fn list(&self) -> Result<Answer, BoxError> {
        self.call(Route::List, None).await
    }

    /// `GET /v1/approvals/{id}`.
    pub async fn show(&self, id: &str) -> Result<Answer, BoxError> {
        self.call(Route::Show(ApprovalId::new(id)), None).await
    }

    /// `POST /v1/approvals/{id}/approve` (`approve`) or `…/deny`.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<Answer, BoxError> {
        let body = serde_json::json!({ "comment": comment.unwrap_or("") });
        self.call(Route::Decide(ApprovalId::new(id), approve), Some(body))
            .await
    }

    /// `POST /v1/approvals/{id}/revoke`: withdraws a pending or approved request, plan or grant;
    /// from then on it covers nothing.
    pub async fn revoke(&self, id: &str) -> Result<Answer, BoxError> {
        self.call(
            Route::Revoke(ApprovalId::new(id)),
            Some(serde_json::json!({})),
        )
        .await
    }

    async fn call(&self, route: Route, body: Option<Value>) -> Result<Answer, BoxError> {
        let url = format!("{}{}", self.base, route.path());
        let mut request = Request::builder()
            .method(route.method())
            .uri(&url)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body))?;
        let response = tokio::time::timeout(Self::TIMEOUT, async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, BoxError>((status, bytes))
        })
        .await
        .map_err(|_| format!("{url}: no answer within {} s", Self::TIMEOUT.as_secs()))?
        .map_err(|e| format!("{url}: {e}"))?;
        let (status, bytes) = response;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                format!("{url}: answered {status} with a body that is not JSON: {e}")
            })?
        };
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_travel_in_the_clear_only_to_loopback() {
        // Roots of its own, so the test does not depend on the system's.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        .map(std::sync::Arc::new)
        .ok();
        let client = |url: &str| ApprovalsClient::new(url, Secret::new("t".into()), tls.clone());
        for ok in [
            "http://127.0.0.1:6544",
            "http://[::1]:8080",
            "https://approvals.example.com",
        ] {
            assert!(client(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:6544",
            "http://localhost:6544",
            "http://approvals.example.com",
            "ftp://127.0.0.1",
            "127.0.0.1:6544",
        ] {
            assert!(client(bad).is_err(), "{bad}");
        }
    }
}
