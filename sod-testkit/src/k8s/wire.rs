//! HTTP plumbing: response bodies, query strings and the `Accept` negotiation that decides
//! between an object, a `Table` and `PartialObjectMetadata`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use super::status::ApiError;

/// Every answer's body: a whole document, or a watch stream.
pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body.
pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// An empty body.
pub(super) fn empty() -> Body {
    full(Bytes::new())
}

/// `value` as `application/json`.
pub(super) fn json(status: StatusCode, value: &Value) -> Response<Body> {
    json_as(status, "application/json", value)
}

/// `value` as JSON under a given media type (`application/json;as=Table;...`).
pub(super) fn json_as(status: StatusCode, content_type: &str, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// `text` as `text/plain; charset=utf-8` (health checks, logs).
pub(super) fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A decoded query string, parameters in order (`command` repeats for exec).
#[derive(Debug, Default)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=b&c=d` as Go's `url.ParseQuery` does (`+` is a space, `%XX` escapes).
    pub(super) fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub(super) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `key` as a boolean the way Go's `strconv.ParseBool` reads it (`1`, `t`, `true`, ...);
    /// absent or unreadable is false.
    pub(super) fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

/// Percent-decodes `text`, `+` being a space; invalid escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// What shape an answer about objects takes, from the request's `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// The objects themselves.
    Json,
    /// A `meta.k8s.io` `Table` of the given version (`v1` or `v1beta1`), as `kubectl get` asks.
    Table(&'static str),
    /// `PartialObjectMetadata` (or `...List`), metadata only, as `kube`'s metadata API asks.
    Metadata,
}

impl Format {
    /// The `Content-Type` of an answer in this format, about one object or a list.
    pub(super) fn content_type(self, list: bool) -> String {
        match (self, list) {
            (Format::Json, _) => "application/json".to_owned(),
            (Format::Table(version), _) => {
                format!("application/json;as=Table;v={version};g=meta.k8s.io")
            }
            (Format::Metadata, false) => {
                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io".to_owned()
            }
            (Format::Metadata, true) => {
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io".to_owned()
            }
        }
    }
}

/// Picks the first media range in `accept` this server can produce. No `Accept` means JSON.
/// Only JSON is served: kubectl and `kube` always list `application/json` as a fallback after
/// protobuf or aggregated discovery.
pub(super) fn negotiate(accept: Option<&str>) -> Result<Format, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_kind, mut group, mut version) = (None, None, None);
        for parameter in parts {
            match parameter.split_once('=') {
                Some(("as", value)) => as_kind = Some(value),
                Some(("g", value)) => group = Some(value),
                Some(("v", value)) => version = Some(value),
                _ => {}
            }
        }
        match (as_kind, group, version) {
            (None, _, _) => return Ok(Format::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Ok(Format::Table("v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => {
                return Ok(Format::Table("v1beta1"));
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1"),
            ) => return Ok(Format::Metadata),
            // Aggregated discovery, other versions: try the next range.
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_like_go() {
        let query = Query::parse(Some(
            "command=sh&command=-c&command=echo+out%3B%20exit%203&watch=1&bad=%zz&empty",
        ));
        assert_eq!(query.all("command"), ["sh", "-c", "echo out; exit 3"]);
        assert!(query.flag("watch"));
        assert!(!query.flag("stdin"));
        assert_eq!(query.get("bad"), Some("%zz"));
        assert_eq!(query.get("empty"), Some(""));
        assert_eq!(Query::parse(Some("a=%4")).get("a"), Some("%4"));
    }

    #[test]
    fn negotiates_what_kubectl_sends() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(table)).ok(), Some(Format::Table("v1")));
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(discovery)).ok(), Some(Format::Json));
        let protobuf = "application/vnd.kubernetes.protobuf, */*";
        assert_eq!(negotiate(Some(protobuf)).ok(), Some(Format::Json));
        let metadata = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(metadata)).ok(), Some(Format::Metadata));
        assert_eq!(negotiate(None).ok(), Some(Format::Json));
        assert!(negotiate(Some("application/yaml")).is_err());
    }
}
