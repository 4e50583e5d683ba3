//! The one HTTPS client every sod crate uses (JWKS fetches, webhooks, the approvals API client),
//! and the one rule for when plain HTTP is acceptable.
//!
//! The rule: a bearer token, a webhook signature or a key set crosses a network only over TLS.
//! Plain `http://` is accepted only where the caller allows it *and* the URL's host is a
//! loopback IP literal (`127.0.0.0/8`, `[::1]`), so the bytes never leave the machine. Not the
//! name `localhost`: where `/etc/hosts` lacks it, a resolver may append a search domain and
//! send the token to whatever `localhost.<domain>` is. The same rule for servers: a plain listener only on a loopback
//! address ([`plain_listener_allowed`]).
//!
//! TLS is rustls with the aws-lc-rs provider, trusting the caller's configuration or, if none is
//! given, the system's roots.
//!
//! ```
//! use sod_core::https::{self, PlainHttp};
//!
//! assert!(https::check_url("https://idp.example.com/jwks", PlainHttp::Refused).is_ok());
//! assert!(https::check_url("http://127.0.0.1:6544", PlainHttp::LoopbackOnly).is_ok());
//! // A token would cross the network in the clear:
//! assert!(https::check_url("http://approvals.example.com", PlainHttp::LoopbackOnly).is_err());
//! assert!(https::check_url("http://127.0.0.1:6544", PlainHttp::Refused).is_err());
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// The client [`client`] builds: HTTP/1.1 over rustls, with request bodies of type `B`.
pub type HttpsClient<B> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// Whether a client accepts plain `http://` URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainHttp {
    /// Only `https://`.
    Refused,
    /// `https://`, or `http://` to a loopback IP literal ([`is_loopback_host`]).
    LoopbackOnly,
}

/// A URL or TLS setting that does not follow the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpsError {
    /// Not a URL, or not an absolute one with a host.
    #[error("{url:?} is not a URL with a host: {why}")]
    NotAUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A scheme other than `https` (or `http` where allowed).
    #[error("{url:?}: the URL must use https")]
    NotHttps {
        /// The URL as given.
        url: String,
    },
    /// Plain `http://` to a host that is not loopback.
    #[error(
        "{url:?}: plain http only to a loopback address (anything sent would cross the network in the clear); use https"
    )]
    PlainOffLoopback {
        /// The URL as given.
        url: String,
    },
    /// The system's root certificates could not be loaded.
    #[error("cannot load the system's TLS roots: {0}")]
    Roots(String),
}

/// Whether `host` (as a URL writes it: IPv6 in brackets) is a loopback IP literal. A name is
/// never loopback, `localhost` included: what it resolves to is up to the resolver.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a server may listen without TLS on `addr`: only on a loopback address.
pub fn plain_listener_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Parses `url` and checks it against the rule: `https://`, or `http://` to a loopback host
/// where `plain` allows it.
pub fn check_url(url: &str, plain: PlainHttp) -> Result<http::Uri, HttpsError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| HttpsError::NotAUrl {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(HttpsError::NotAUrl {
            url: url.to_owned(),
            why: "it has no host".into(),
        });
    };
    match (uri.scheme_str(), plain) {
        (Some("https"), _) => Ok(uri),
        (Some("http"), PlainHttp::LoopbackOnly) if is_loopback_host(host) => Ok(uri),
        (Some("http"), PlainHttp::LoopbackOnly) => Err(HttpsError::PlainOffLoopback {
            url: url.to_owned(),
        }),
        _ => Err(HttpsError::NotHttps {
            url: url.to_owned(),
        }),
    }
}

/// An HTTP/1.1 client over rustls (aws-lc-rs) that trusts `tls` or, without it, the system's
/// roots. With [`PlainHttp::Refused`] it refuses to send anything over plain HTTP; with
/// [`PlainHttp::LoopbackOnly`] it can, and callers check each URL with [`check_url`] first.
pub fn client<B>(
    tls: Option<Arc<rustls::ClientConfig>>,
    plain: PlainHttp,
) -> Result<HttpsClient<B>, HttpsError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match tls {
        Some(config) => builder.with_tls_config((*config).clone()),
        None => match builder
            .with_provider_and_native_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        {
            Ok(b) => b,
            // A host without system roots can still talk plain HTTP to loopback.
            Err(e) if plain == PlainHttp::LoopbackOnly => {
                tracing::debug!(error = %e, "no system TLS roots: only loopback http will work");
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots()?)
            }
            Err(e) => return Err(HttpsError::Roots(e.to_string())),
        },
    };
    let connector = match plain {
        PlainHttp::Refused => builder.https_only().enable_http1().build(),
        PlainHttp::LoopbackOnly => builder.https_or_http().enable_http1().build(),
    };
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// A TLS configuration that trusts nothing (for a client that only ever talks plain HTTP).
fn no_roots() -> Result<rustls::ClientConfig, HttpsError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpsError::Roots(e.to_string()))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for host in ["127.0.0.1", "127.9.9.9", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "localhost",
            "10.0.0.5",
            "example.com",
            "localhost.example.com",
            "[::2]",
            "",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let ok = |u: &str| check_url(u, PlainHttp::LoopbackOnly).is_ok();
        assert!(ok("http://127.0.0.1:6544"));
        assert!(!ok("http://localhost:1/"));
        assert!(ok("http://[::1]:8080"));
        assert!(ok("https://approvals.example.com"));
        assert!(!ok("http://10.0.0.5:6544"));
        assert!(!ok("http://approvals.example.com"));
        assert!(!ok("ftp://127.0.0.1"));
        assert!(!ok("127.0.0.1:6544"));
        assert!(!ok("https://"));
        assert!(matches!(
            check_url("http://127.0.0.1", PlainHttp::Refused),
            Err(HttpsError::NotHttps { .. })
        ));
        assert!(plain_listener_allowed(
            &"127.0.0.1:1".parse().expect("addr")
        ));
        assert!(!plain_listener_allowed(&"0.0.0.0:1".parse().expect("addr")));
    }
}
