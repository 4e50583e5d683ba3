//! A small client for the approvals HTTP API (`sod approvals …`).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sod_core::{BoxError, Secret};

/// How long one API call may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The approvals API at one base URL, called with one bearer token.
pub struct ApprovalsClient {
    base: String,
    token: Secret<String>,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
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
    /// A client for `base` (`http://127.0.0.1:6544` or `https://…`). `tls` replaces the
    /// system's roots for HTTPS.
    pub fn new(
        base: &str,
        token: Secret<String>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Self, BoxError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: http::Uri = base
            .parse()
            .map_err(|e| format!("the approvals URL {base:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("https") => {}
            // The token is a bearer credential: never send it in the clear over a network.
            Some("http") if uri.host().is_some_and(is_loopback) => {}
            Some("http") => {
                return Err(format!(
                    "{base}: plain http only to a loopback address (the token would cross the network in the clear); use https"
                )
                .into());
            }
            _ => {
                return Err(format!(
                    "the approvals URL must start with http:// or https://, got {base:?}"
                )
                .into());
            }
        }
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match tls {
            Some(config) => builder.with_tls_config((*config).clone()),
            None => builder
                .with_provider_and_native_roots(std::sync::Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { base, token, http })
    }

    /// `GET /v1/approvals`.
    pub async fn list(&self) -> Result<Answer, BoxError> {
        self.call(Method::GET, "/v1/approvals", None).await
    }

    /// `GET /v1/approvals/{id}`.
    pub async fn show(&self, id: &str) -> Result<Answer, BoxError> {
        self.call(Method::GET, &format!("/v1/approvals/{}", encode(id)), None)
            .await
    }

    /// `POST /v1/approvals/{id}/approve` or `…/deny`.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<Answer, BoxError> {
        let verb = if approve { "approve" } else { "deny" };
        let body = serde_json::json!({ "comment": comment.unwrap_or("") });
        self.call(
            Method::POST,
            &format!("/v1/approvals/{}/{verb}", encode(id)),
            Some(body),
        )
        .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, BoxError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method)
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
        let response = tokio::time::timeout(TIMEOUT, async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, bytes))
        })
        .await
        .map_err(|_| format!("{url}: no answer within {} s", TIMEOUT.as_secs()))?
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

/// `localhost`, or a loopback IP address (IPv6 in brackets, as URLs write it).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Percent-encodes what is not unreserved in a path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
            "http://localhost:1/",
            "http://[::1]:8080",
            "https://approvals.example.com",
        ] {
            assert!(client(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:6544",
            "http://approvals.example.com",
            "ftp://127.0.0.1",
            "127.0.0.1:6544",
        ] {
            assert!(client(bad).is_err(), "{bad}");
        }
        assert_eq!(encode("apr-1/../x y"), "apr-1%2F..%2Fx%20y");
    }
}
