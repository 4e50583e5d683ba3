//! The cases of k8s.io/apiserver's `requestinfo_test.go` (`TestGetAPIRequestInfo`,
//! `TestGetNonAPIRequestInfo`, `TestFieldSelectorParsing`), plus the strictness sod adds.

use super::*;

/// (method, url, verb, prefix, group, version, namespace, resource, subresource, name, parts)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const RESOURCE_CASES: &[Case] = &[
    // resource paths
    (
        "GET",
        "/api/v1/namespaces",
        "list",
        "api",
        "",
        "v1",
        "",
        "namespaces",
        "",
        "",
        &["namespaces"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other",
        "get",
        "api",
        "",
        "v1",
        "other",
        "namespaces",
        "",
        "other",
        &["namespaces", "other"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods",
        "list",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo"],
    ),
    (
        "HEAD",
        "/api/v1/namespaces/other/pods/foo",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo"],
    ),
    (
        "GET",
        "/api/v1/pods",
        "list",
        "api",
        "",
        "v1",
        "",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "HEAD",
        "/api/v1/pods",
        "list",
        "api",
        "",
        "v1",
        "",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // special verbs
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo",
        "proxy",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo"],
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
        "proxy",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo", "subpath", "not", "a", "subresource"],
    ),
    (
        "GET",
        "/api/v1/watch/pods",
        "watch",
        "api",
        "",
        "v1",
        "",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/pods?watch=true",
        "watch",
        "api",
        "",
        "v1",
        "",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/pods?watch=false",
        "list",
        "api",
        "",
        "v1",
        "",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/watch/namespaces/other/pods",
        "watch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?watch=1",
        "watch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?watch=0",
        "list",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // subresource identification
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/status",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "status",
        "foo",
        &["pods", "foo", "status"],
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/proxy/subpath",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "proxy",
        "foo",
        &["pods", "foo", "proxy", "subpath"],
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/finalize",
        "update",
        "api",
        "",
        "v1",
        "other",
        "namespaces",
        "finalize",
        "other",
        &["namespaces", "other", "finalize"],
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/status",
        "update",
        "api",
        "",
        "v1",
        "other",
        "namespaces",
        "status",
        "other",
        &["namespaces", "other", "status"],
    ),
    // verb identification
    (
        "PATCH",
        "/api/v1/namespaces/other/pods/foo",
        "patch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo"],
    ),
    (
        "DELETE",
        "/api/v1/namespaces/other/pods/foo",
        "delete",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
        &["pods", "foo"],
    ),
    (
        "POST",
        "/api/v1/namespaces/other/pods",
        "create",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // deletecollection verb identification
    (
        "DELETE",
        "/api/v1/nodes",
        "deletecollection",
        "api",
        "",
        "v1",
        "",
        "nodes",
        "",
        "",
        &["nodes"],
    ),
    (
        "DELETE",
        "/api/v1/namespaces",
        "deletecollection",
        "api",
        "",
        "v1",
        "",
        "namespaces",
        "",
        "",
        &["namespaces"],
    ),
    (
        "DELETE",
        "/api/v1/namespaces/other/pods",
        "deletecollection",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    (
        "DELETE",
        "/apis/extensions/v1/namespaces/other/pods",
        "deletecollection",
        "apis",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // api group identification
    (
        "POST",
        "/apis/extensions/v1/namespaces/other/pods",
        "create",
        "apis",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // api version identification
    (
        "POST",
        "/apis/extensions/v1beta3/namespaces/other/pods",
        "create",
        "apis",
        "extensions",
        "v1beta3",
        "other",
        "pods",
        "",
        "",
        &["pods"],
    ),
    // exec: a GET over WebSocket, a POST over SPDY, the same subresource
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-1/exec?command=sh&stdin=true",
        "get",
        "api",
        "",
        "v1",
        "default",
        "pods",
        "exec",
        "web-1",
        &["pods", "web-1", "exec"],
    ),
    (
        "POST",
        "/api/v1/namespaces/default/pods/web-1/exec?command=sh",
        "create",
        "api",
        "",
        "v1",
        "default",
        "pods",
        "exec",
        "web-1",
        &["pods", "web-1", "exec"],
    ),
    // a trailing slash is trimmed, as the server trims it
    (
        "GET",
        "/api/v1/namespaces/default/pods/",
        "list",
        "api",
        "",
        "v1",
        "default",
        "pods",
        "",
        "",
        &["pods"],
    ),
];

#[test]
fn resource_requests_as_the_api_server_reads_them() {
    for &(method, url, verb, prefix, group, version, ns, resource, sub, name, parts) in
        RESOURCE_CASES
    {
        let (path, query) = url
            .split_once('?')
            .map_or((url, None), |(p, q)| (p, Some(q)));
        let info = parse(method, path, query).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let RequestInfo::Resource(r) = info else {
            panic!("{method} {url}: not a resource request: {info:?}");
        };
        let got = (
            r.verb.as_str(),
            r.api_prefix,
            r.group.as_str(),
            r.version.as_str(),
            r.namespace.as_deref().unwrap_or(""),
            r.resource.as_str(),
            r.subresource.as_deref().unwrap_or(""),
            r.name.as_deref().unwrap_or(""),
        );
        assert_eq!(
            got,
            (verb, prefix, group, version, ns, resource, sub, name),
            "{method} {url}"
        );
        assert_eq!(r.parts, parts, "{method} {url}");
    }
}

#[test]
fn non_resource_requests_keep_the_method_as_verb() {
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/version"),
        ("GET", "/api"),
        ("GET", "/apis"),
        ("GET", "/apis/extensions"),
        ("GET", "/apis/extensions/v1beta3"),
        ("GET", "/metrics"),
        ("GET", "/openapi/v3/api/v1"),
        ("POST", "/api/v1"),
        ("HEAD", "/livez"),
    ] {
        let info = parse(method, path, None).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            info,
            RequestInfo::NonResource {
                path: path.to_owned(),
                verb: match method {
                    "GET" => "get",
                    "POST" => "post",
                    _ => "head",
                },
            },
            "{method} {path}"
        );
    }
}

#[test]
fn legacy_prefixes_need_a_resource() {
    for path in ["/api/v1/watch", "/api/v1/proxy", "/apis/apps/v1/watch"] {
        assert!(
            matches!(
                parse("GET", path, None),
                Err(RequestInfoError::NoResource(_))
            ),
            "{path}"
        );
    }
}

/// `TestFieldSelectorParsing`, and the fallback when the list options do not decode.
#[test]
fn field_selectors_name_objects_as_the_api_server_reads_them() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "", "list"),
        ("fieldSelector=metadata.name=name1", "name1", "list"),
        ("fieldSelector=metadata.name%3Dname1", "name1", "list"),
        ("fieldSelector=metadata.name==name1", "name1", "list"),
        ("fieldSelector=metadata.name!=name1", "", "list"),
        (
            "watch=true&fieldSelector=metadata.name=name1",
            "name1",
            "watch",
        ),
        ("fieldSelector=foo=bar", "", "list"),
        ("fieldSelector=foo=bar,metadata.name=n2", "n2", "list"),
        ("fieldSelector=metadata.name=name1,foo", "", "list"),
        (
            "fieldSelector=metadata.name=name1,foo&watch=true",
            "",
            "watch",
        ),
        (
            "fieldSelector=metadata.name=name1,foo&watch=false",
            "",
            "list",
        ),
        // A name that is not a path segment is no name.
        ("fieldSelector=metadata.name=..", "", "list"),
        ("fieldSelector=metadata.name=a%2Fb", "", "list"),
        // `watch`: the first value; `0`, `f`, `false` in any case are no.
        ("watch=F", "", "list"),
        ("watch=FALSE", "", "list"),
        ("watch=", "", "watch"),
        ("watch=yes", "", "watch"),
        ("watch=0&watch=1", "", "list"),
        ("watch", "", "watch"),
        // A bad integer fails the whole decode: the fallback compares with false/0 only.
        ("limit=abc&watch=f", "", "watch"),
        ("limit=abc&fieldSelector=metadata.name=n", "", "list"),
        // `+` is a space in a query, as in Go: ` 5` is no integer.
        ("limit=+5&fieldSelector=metadata.name=n", "", "list"),
        ("limit=%2B5&fieldSelector=metadata.name=n", "n", "list"),
        // Pairs with `;` or a bad escape are dropped, as Go drops them.
        ("watch=1;x", "", "list"),
        ("watch=%zz", "", "list"),
        ("wat%63h=1", "", "watch"),
    ];
    for &(query, name, verb) in cases {
        let info = parse("GET", "/apis/group/version/resource", Some(query)).expect("parses");
        let RequestInfo::Resource(r) = info else {
            panic!("{query}: not a resource request");
        };
        assert_eq!(
            (r.name.as_deref().unwrap_or(""), r.verb.as_str()),
            (name, verb),
            "?{query}"
        );
    }
}

#[test]
fn paths_that_are_not_canonical_are_refused() {
    for path in [
        "api/v1/pods",
        "/api/v1//pods",
        "//api/v1/pods",
        "/api/v1/namespaces/default/../kube-system/secrets",
        "/api/v1/namespaces/./default/secrets",
        "/api/v1/namespaces/default/secrets/..",
        "/api/v1/namespaces/default%2Fsecrets",
        "/api/v1/namespaces/default/secrets/%2e%2e",
        "/api/v1/namespaces/default\\secrets",
        "/api/v1/names paces",
        "/api/v1/namespaces/d\u{e9}fault",
        "/api/v1/pods\u{0}",
    ] {
        assert!(
            matches!(
                parse("GET", path, None),
                Err(RequestInfoError::NonCanonical { .. })
            ),
            "{path:?}"
        );
    }
}

#[test]
fn methods_the_api_server_does_not_serve_are_refused() {
    for method in ["OPTIONS", "TRACE", "CONNECT", "get", "PROPFIND", ""] {
        assert!(
            matches!(
                parse(method, "/api/v1/pods", None),
                Err(RequestInfoError::Method(_))
            ),
            "{method}"
        );
    }
}

#[test]
fn queries_that_are_not_utf8_are_refused() {
    // Go keeps `\xff` and sees a watch; a parser that drops the pair sees a list.
    for query in [
        "watch=%FF",
        "fieldSelector=metadata.name%3D%C3",
        "w%FFatch=1",
    ] {
        assert!(
            parse("GET", "/api/v1/namespaces/default/configmaps", Some(query)).is_err(),
            "{query}"
        );
    }
    assert!(
        parse(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            Some("watch=%C3%A9")
        )
        .is_ok()
    );
}
