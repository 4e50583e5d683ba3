//! What a Kubernetes API request asks for, from its method, path and query, derived exactly as
//! the API server derives it (k8s.io/apiserver `RequestInfoFactory.NewRequestInfo`), so that
//! policy judges what the server will do.
//!
//! - `/api/{version}/…` (the core group) and `/apis/{group}/{version}/…` are resource requests;
//!   anything else (`/version`, `/healthz`, `/api`, `/apis/apps`, `/openapi/v3`) is a
//!   non-resource request whose verb is the method in lower case.
//! - The verb comes from the method (`POST` create, `GET`/`HEAD` get, `PUT` update, `PATCH`
//!   patch, `DELETE` delete), or from a legacy path prefix (`/api/v1/watch/…`,
//!   `/api/v1/proxy/…`).
//! - `namespaces/{ns}/{resource}/…` names the namespace; `namespaces/{ns}/status` and
//!   `namespaces/{ns}/finalize` are subresources of the namespace itself.
//! - `get` without a name is `list`, or `watch` when the first `watch` value is not `0`, `f` or
//!   `false` (in any case); `fieldSelector=metadata.name=X` names `X`; `delete` without a name
//!   is `deletecollection`. When the list options do not decode (a bad `limit`, a bad field
//!   selector), the server falls back to `watch` unless the first value is `false` or `0`, and
//!   takes no name from the selector: so does this.
//!
//! Where the server would be lenient and a proxy could be misled, this is strict: a path that
//! is not canonical (empty segments, `.` or `..`, any percent-encoding, a backslash, bytes that
//! are not printable ASCII) and methods other than the six above are refused
//! ([`RequestInfoError`]).

use std::fmt;

/// The verb of a resource request, as RBAC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `GET` or `HEAD` of one object.
    Get,
    /// `GET` of a collection.
    List,
    /// `GET` of a collection or object with `watch`, or under the legacy `/watch/` prefix.
    Watch,
    /// `POST`.
    Create,
    /// `PUT`.
    Update,
    /// `PATCH`.
    Patch,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection.
    DeleteCollection,
    /// Under the legacy `/proxy/` prefix.
    Proxy,
}

impl Verb {
    /// The name RBAC and audit logs use: `get`, `list`, `deletecollection`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Proxy => "proxy",
        }
    }

    /// Whether the verb only reads.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request for a resource (`/api/…` or `/apis/…` with a version and more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `api` (the core group) or `apis`.
    pub api_prefix: &'static str,
    /// The API group; empty for the core group.
    pub group: String,
    /// The API version (`v1`).
    pub version: String,
    /// The namespace; `None` for cluster-scoped requests.
    pub namespace: Option<String>,
    /// The resource (`pods`); empty for a request such as `/api/v1` plus a legacy prefix.
    pub resource: String,
    /// The object's name, from the path or from `fieldSelector=metadata.name=…`.
    pub name: Option<String>,
    /// The subresource (`exec`, `log`, `status`, `scale`).
    pub subresource: Option<String>,
    /// What is done.
    pub verb: Verb,
    /// The path segments from the resource on (`pods`, `web-1`, `proxy`, `some`, `path`).
    pub parts: Vec<String>,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestInfo {
    /// A resource request.
    Resource(ResourceRequest),
    /// Anything else: discovery, `/version`, `/healthz`, OpenAPI.
    NonResource {
        /// The path.
        path: String,
        /// The method in lower case (`get`, `head`, `post`, …).
        verb: &'static str,
    },
}

/// Why a request was not given a meaning.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestInfoError {
    /// The path is not in canonical form.
    #[error("the path `{path}` is not canonical: {why}")]
    NonCanonical {
        /// The path as sent (control characters escaped when shown).
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A method the API server does not serve.
    #[error("the method `{0}` is not one the Kubernetes API serves")]
    Method(String),
    /// A legacy `/watch/` or `/proxy/` prefix with nothing after it.
    #[error("`{0}` names no resource after its `watch` or `proxy` prefix")]
    NoResource(String),
}

/// The namespace subresources (`namespaces/{ns}/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Derives what the request asks for. `query` is the raw query string, without `?`.
///
/// # Errors
/// A non-canonical path, an unknown method, or a legacy prefix without a resource.
///
/// # Examples
/// ```
/// use sod_k8s::request_info::{parse, RequestInfo, Verb};
///
/// let info = parse("GET", "/api/v1/namespaces/default/secrets", Some("watch=1")).unwrap();
/// let RequestInfo::Resource(r) = info else { panic!() };
/// assert_eq!((r.verb, r.resource.as_str(), r.namespace.as_deref()), (Verb::Watch, "secrets", Some("default")));
///
/// let info = parse("POST", "/api/v1/namespaces/default/pods/web-1/exec", None).unwrap();
/// let RequestInfo::Resource(r) = info else { panic!() };
/// assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Create, Some("exec")));
///
/// assert!(parse("GET", "/api/v1/namespaces/default/../kube-system/secrets", None).is_err());
/// ```
pub fn parse(
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Result<RequestInfo, RequestInfoError> {
    let method_verb = match method {
        "GET" => "get",
        "HEAD" => "head",
        "POST" => "post",
        "PUT" => "put",
        "PATCH" => "patch",
        "DELETE" => "delete",
        other => return Err(RequestInfoError::Method(shown(other))),
    };
    let segments = canonical(path)?;
    if let Some(query) = query
        && !query_is_utf8(query)
    {
        // Go keeps such bytes, where this parser could only drop or replace them: `watch=%FF`
        // is a watch to the API server. Nothing legitimate sends them.
        return Err(RequestInfoError::NonCanonical {
            path: shown(&format!("{path}?{query}")),
            why: "its query holds percent-escapes that are not UTF-8",
        });
    }
    let non_resource = || RequestInfo::NonResource {
        path: path.to_owned(),
        verb: method_verb,
    };
    if segments.len() < 3 {
        return Ok(non_resource());
    }
    let (api_prefix, mut rest) = match segments[0] {
        "api" => ("api", &segments[1..]),
        "apis" => ("apis", &segments[1..]),
        _ => return Ok(non_resource()),
    };
    let mut group = String::new();
    if api_prefix == "apis" {
        // The prefix is consumed: "do we have four parts?"
        if rest.len() < 3 {
            return Ok(non_resource());
        }
        group = rest[0].to_owned();
        rest = &rest[1..];
    }
    let version = rest[0].to_owned();
    rest = &rest[1..];

    let mut verb = match method {
        "POST" => Verb::Create,
        "GET" | "HEAD" => Verb::Get,
        "PUT" => Verb::Update,
        "PATCH" => Verb::Patch,
        _ => Verb::Delete,
    };
    if let Some(&special) = rest.first().filter(|s| matches!(**s, "watch" | "proxy")) {
        if rest.len() < 2 {
            return Err(RequestInfoError::NoResource(shown(path)));
        }
        verb = if special == "watch" {
            Verb::Watch
        } else {
            Verb::Proxy
        };
        rest = &rest[1..];
    }

    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_owned());
        // `namespaces/{ns}/{resource}/…`, unless what follows is the namespace's own
        // subresource (`namespaces/{ns}/status`).
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let parts: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
    let resource = parts.first().cloned().unwrap_or_default();
    let mut name = parts.get(1).cloned();
    // `proxy` takes the rest of the path as the proxied path, never a subresource.
    let subresource = if verb == Verb::Proxy {
        None
    } else {
        parts.get(2).cloned()
    };

    if name.is_none() && verb == Verb::Get {
        let list = ListOptions::from_query(query.unwrap_or(""));
        verb = if list.watch { Verb::Watch } else { Verb::List };
        name = list.name;
    }
    if name.is_none() && verb == Verb::Delete {
        verb = Verb::DeleteCollection;
    }
    Ok(RequestInfo::Resource(ResourceRequest {
        api_prefix,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        verb,
        parts,
    }))
}

/// The path's segments, or why it is not canonical.
fn canonical(path: &str) -> Result<Vec<&str>, RequestInfoError> {
    let bad = |why| {
        Err(RequestInfoError::NonCanonical {
            path: shown(path),
            why,
        })
    };
    if !path.starts_with('/') {
        return bad("it does not start with `/`");
    }
    if let Some(c) = path.bytes().find(|b| !(0x21..0x7f).contains(b)) {
        return bad(if c == b' ' {
            "it holds a space"
        } else {
            "it holds a byte that is not printable ASCII"
        });
    }
    if path.contains('%') {
        return bad("it is percent-encoded (an encoded `/` or `.` would name something else)");
    }
    if path.contains('\\') {
        return bad("it holds a backslash");
    }
    // The server trims one leading and trailing `/`; anything else empty is not canonical.
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = inner.split('/').collect();
    for s in &segments {
        match *s {
            "" => return bad("it has an empty segment (`//`)"),
            "." | ".." => return bad("it has a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(segments)
}

/// What the server reads from a list request's query: whether it watches, and the name an
/// exact `metadata.name` field selector gives.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListOptions {
    watch: bool,
    name: Option<String>,
}

impl ListOptions {
    /// As `metainternalversionscheme.ParameterCodec.DecodeParameters` does, with the server's
    /// fallback when decoding fails.
    fn from_query(query: &str) -> Self {
        let params = query_pairs(query);
        let first = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let decoded = Self::decode(&params);
        match decoded {
            Some(options) => options,
            None => ListOptions {
                // The fallback compares the lower-cased first value with `false` and `0` only.
                watch: first("watch").is_some_and(|v| {
                    let v = v.to_ascii_lowercase();
                    v != "false" && v != "0"
                }),
                name: None,
            },
        }
    }

    /// `None` where the server's decoding fails.
    fn decode(params: &[(String, String)]) -> Option<Self> {
        let first = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        // Integers the codec parses (`strconv.ParseInt`): a bad one fails the whole decode.
        for key in ["limit", "timeoutSeconds"] {
            if let Some(v) = first(key) {
                parse_go_int64(v)?;
            }
        }
        // `Convert_Slice_string_To_bool`: `0`, `f`, `false` (any case) are false.
        let watch = first("watch").is_some_and(|v| {
            !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false"))
        });
        let name = match first("fieldSelector") {
            Some(selector) => {
                let terms = parse_field_selector(selector)?;
                terms
                    .into_iter()
                    .find(|(field, op, _)| field == "metadata.name" && *op == SelectorOp::Equals)
                    .map(|(_, _, value)| value)
                    .filter(|v| is_valid_path_segment_name(v))
            }
            None => None,
        };
        Some(ListOptions { watch, name })
    }
}

/// `strconv.ParseInt(v, 10, 64)`.
fn parse_go_int64(v: &str) -> Option<i64> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `path.IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn is_valid_path_segment_name(name: &str) -> bool {
    !matches!(name, "." | "..") && !name.contains(['/', '%'])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SelectorOp {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// `fields.ParseSelector`: terms joined by `,`, each `field=value`, `field==value` or
/// `field!=value`, where `\` escapes `\`, `,` and `=` in values. `None` where it fails.
fn parse_field_selector(selector: &str) -> Option<Vec<(String, SelectorOp, String)>> {
    let mut terms = Vec::new();
    if selector.is_empty() {
        return Some(terms);
    }
    for term in split_unescaped(selector, ',') {
        // The operator: the first unescaped `!=`, `==` or `=`.
        let (field, op, value) = split_operator(&term)?;
        let value = unescape_selector_value(value)?;
        terms.push((field.trim().to_owned(), op, value));
    }
    Some(terms)
}

/// Splits at each `sep` not preceded by an escaping `\`.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn split_operator(term: &str) -> Option<(&str, SelectorOp, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], SelectorOp::NotEquals, &term[i + 2..]));
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], SelectorOp::Equals, &term[i + 2..]));
            }
            b'=' => return Some((&term[..i], SelectorOp::Equals, &term[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` stand for themselves; any other escape fails,
/// and so does an unescaped `,` or `=`.
fn unescape_selector_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return None,
            },
            ',' | '=' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `url.ParseQuery` as `Request.URL.Query()` uses it: pairs split at `&`; a pair holding `;`
/// or a bad escape is dropped; `+` is a space.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape_query(k)?, unescape_query(v)?))
        })
        .collect()
}

/// Whether every key and value of `query` unescapes to UTF-8.
fn query_is_utf8(query: &str) -> bool {
    query
        .split(['&', ';', '='])
        .all(|part| unescape_bytes(part).is_none_or(|bytes| std::str::from_utf8(&bytes).is_ok()))
}

fn unescape_query(s: &str) -> Option<String> {
    // Go keeps invalid UTF-8 as bytes; such queries are refused before they get here.
    String::from_utf8(unescape_bytes(s)?).ok()
}

/// `url.QueryUnescape`, as bytes; `None` for a bad escape.
fn unescape_bytes(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `text` for an error message: at most 200 characters, control characters escaped.
fn shown(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests;
