//! Kubernetes request info on arbitrary requests: never panics, and what it documents holds:
//!
//! - a resource request's parts start with its resource (then its name, then its subresource,
//!   except under `proxy`), and every part is a non-empty segment without `/`, `.` or `..`;
//! - a request without a name is never `get` or `delete`;
//! - its operation names one object, with a kind, and collections say their objects are not
//!   all known.
//!
//! The first byte picks the method, the rest is `PATH[?QUERY]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sod_core::Target;
use sod_k8s::operation::{RequestBody, operation};
use sod_k8s::request_info::{RequestInfo, Verb, parse};

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get",
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(url) = std::str::from_utf8(rest) else {
        return;
    };
    let method = METHODS[usize::from(m) % METHODS.len()];
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let Ok(info) = parse(method, path, query) else {
        return;
    };
    if let RequestInfo::Resource(r) = &info {
        assert!(
            r.parts
                .iter()
                .all(|p| !p.is_empty() && !p.contains('/') && p != "." && p != ".."),
            "{r:?}"
        );
        assert_eq!(
            r.parts.first().map(String::as_str).unwrap_or(""),
            r.resource,
            "{r:?}"
        );
        if r.name.is_none() {
            assert!(!matches!(r.verb, Verb::Get | Verb::Delete), "{r:?}");
        }
        if r.verb == Verb::Proxy {
            assert!(r.subresource.is_none(), "{r:?}");
        }
    }
    let op = operation(
        Target::new("k8s/fuzz"),
        method,
        url,
        &info,
        RequestBody::NONE,
    );
    if let RequestInfo::Resource(r) = &info {
        assert_eq!(op.objects().len() + op.collections().len(), 1, "{op:?}");
        assert!(r.name.is_some() || op.collections().len() == 1, "{op:?}");
        if r.namespace.is_none() && op.objects().is_empty() {
            assert_eq!(op.collections().len(), 1, "{op:?}");
        }
        assert!(op.unknown_objects().is_none(), "{op:?}");
    }
});
