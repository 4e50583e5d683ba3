//! Properties of request-info parsing on generated requests:
//!
//! - any method, path and query gives an answer or an error, never a panic;
//! - a path built from a prefix, group, version, namespace, resource, name and subresource is
//!   read back as exactly those parts, with the verb its method and query say;
//! - inserting an empty segment, `.` or `..`, or percent-encoding anywhere is refused.

use proptest::prelude::*;
use sod_k8s::request_info::{RequestInfo, RequestInfoError, Verb, parse};

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?".prop_filter(
        "not a word the parser treats specially",
        |s| {
            !matches!(
                s.as_str(),
                "watch" | "proxy" | "namespaces" | "status" | "finalize"
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn anything_gets_an_answer(method in "(GET|POST|PUT|PATCH|DELETE|HEAD|[A-Z]{0,8})", path in ".{0,120}", query in proptest::option::of(".{0,80}")) {
        let _ = parse(&method, &path, query.as_deref());
    }

    #[test]
    fn built_paths_read_back(
        group in proptest::option::of("[a-z]{1,8}(\\.[a-z]{1,8}){0,2}"),
        version in "v[1-9](beta[1-9])?",
        namespace in proptest::option::of(segment()),
        resource in segment(),
        name in proptest::option::of(segment()),
        subresource in proptest::option::of(segment()),
        method in prop::sample::select(&["GET", "POST", "PUT", "PATCH", "DELETE"][..]),
        watch in proptest::option::of(prop::sample::select(&["1", "true", "0", "false", "F"][..])),
    ) {
        let subresource = subresource.filter(|_| name.is_some());
        let mut path = match &group {
            Some(g) => format!("/apis/{g}/{version}"),
            None => format!("/api/{version}"),
        };
        if let Some(ns) = &namespace {
            path.push_str(&format!("/namespaces/{ns}"));
        }
        path.push('/');
        path.push_str(&resource);
        for part in [&name, &subresource].into_iter().flatten() {
            path.push('/');
            path.push_str(part);
        }
        let query = watch.map(|w| format!("watch={w}"));
        let info = parse(method, &path, query.as_deref()).expect("a canonical path");
        let RequestInfo::Resource(r) = info else { panic!("{path}: not a resource request") };
        prop_assert_eq!(r.group, group.clone().unwrap_or_default());
        prop_assert_eq!(&r.version, &version);
        prop_assert_eq!(&r.namespace, &namespace);
        prop_assert_eq!(&r.resource, &resource);
        prop_assert_eq!(&r.name, &name);
        prop_assert_eq!(&r.subresource, &subresource);
        let watching = watch.is_some_and(|w| !matches!(w, "0" | "false" | "F"));
        let verb = match (method, name.is_some()) {
            ("GET", true) => Verb::Get,
            ("GET", false) if watching => Verb::Watch,
            ("GET", false) => Verb::List,
            ("POST", _) => Verb::Create,
            ("PUT", _) => Verb::Update,
            ("PATCH", _) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            _ => Verb::DeleteCollection,
        };
        prop_assert_eq!(r.verb, verb);

        // Any damage to the path is refused.
        let slashes: Vec<usize> = path.match_indices('/').map(|(i, _)| i).skip(1).collect();
        for at in slashes {
            for insert in ["/", "/.", "/..", "%2F"] {
                let mut bad = path.clone();
                bad.insert_str(at, insert);
                prop_assert!(
                    matches!(parse(method, &bad, None), Err(RequestInfoError::NonCanonical { .. })),
                    "{} was not refused", bad
                );
            }
        }
    }
}
