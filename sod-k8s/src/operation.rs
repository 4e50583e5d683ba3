//! A request's [`Operation`]: its kind, the object it names and the text policy, approvers and
//! the audit log see.
//!
//! | request | kind |
//! |---|---|
//! | `get`, `list`, `watch` (and `GET`/`HEAD` of a non-resource URL) | `read` (Secrets: sensitive) |
//! | `pods/exec`, `pods/attach`, whatever the verb (WebSocket `GET`, SPDY `POST`) | `exec` |
//! | `pods/portforward`, the `proxy` verb and every `…/proxy` subresource | `forward` |
//! | writes to RBAC, admission webhooks and policies, API services, certificate signing requests, namespaces, nodes, service account tokens | `admin` |
//! | writes to CustomResourceDefinitions | `schema` |
//! | access and token reviews (`auth can-i`): they ask, they change nothing | `read` |
//! | other `create`, `update`, `patch`, `delete`, `deletecollection` | `write` |
//! | any other method on a non-resource URL | `unknown` |
//!
//! The object is `NAMESPACE/GROUP/RESOURCE/NAME[/SUBRESOURCE]`, with `_cluster` for
//! cluster-scoped requests (a namespace name cannot hold `_`) and `core` for the core group, so
//! policy globs select what they mean: `default/core/secrets/*`, `*/rbac.authorization.k8s.io/*`.
//! A request for a collection (`list`, `watch` without a name, `deletecollection`) names
//! `…/RESOURCE/*` and says its objects are not all known: it touches every object of the
//! collection, so a rule that denies or asks approval for one of them applies to it, and a rule
//! that allows only some objects does not.

use sod_core::{Operation, OperationKind, Target};

use crate::request_info::{RequestInfo, ResourceRequest, Verb};

/// The operation of a request with this `method`, `path_and_query` (its text) and `info`.
pub fn operation(
    target: Target,
    method: &str,
    path_and_query: &str,
    info: &RequestInfo,
) -> Operation {
    let text = format!("{method} {path_and_query}");
    match info {
        RequestInfo::NonResource { verb, .. } => {
            let kind = if matches!(*verb, "get" | "head") {
                OperationKind::Read
            } else {
                OperationKind::Unknown
            };
            let mut builder = Operation::builder(target, kind, text);
            if kind == OperationKind::Unknown {
                builder = builder.note(format!(
                    "`{}` of a non-resource URL is not something sod knows",
                    verb.to_ascii_uppercase()
                ));
            }
            builder.build()
        }
        RequestInfo::Resource(r) => {
            let mut builder = Operation::builder(target, kind(r), text)
                .object(object(r))
                .touches_sensitive(r.group.is_empty() && r.resource == "secrets");
            if r.name.is_none() {
                builder = builder.objects_unknown(format!(
                    "a {} touches every object of `{}`",
                    r.verb, r.resource
                ));
            }
            builder.build()
        }
    }
}

/// The kind of a resource request (see the module's table).
pub fn kind(r: &ResourceRequest) -> OperationKind {
    let core = r.group.is_empty();
    let sub = r.subresource.as_deref();
    if core && r.resource == "pods" && matches!(sub, Some("exec" | "attach")) {
        return OperationKind::Exec;
    }
    if r.verb == Verb::Proxy
        || sub == Some("proxy")
        || (core && r.resource == "pods" && sub == Some("portforward"))
    {
        return OperationKind::Forward;
    }
    if r.verb.is_read() {
        return OperationKind::Read;
    }
    match (r.group.as_str(), r.resource.as_str(), sub) {
        ("authorization.k8s.io", _, _) | ("authentication.k8s.io", "selfsubjectreviews", _)
            if r.verb == Verb::Create =>
        {
            OperationKind::Read
        }
        (
            "rbac.authorization.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiregistration.k8s.io"
            | "certificates.k8s.io"
            | "authentication.k8s.io",
            _,
            _,
        )
        | ("", "namespaces" | "nodes", _)
        | ("", "serviceaccounts", Some("token")) => OperationKind::Admin,
        ("apiextensions.k8s.io", _, _) => OperationKind::Schema,
        _ => OperationKind::Write,
    }
}

/// `NAMESPACE/GROUP/RESOURCE/NAME[/SUBRESOURCE]` (see the module docs).
pub fn object(r: &ResourceRequest) -> String {
    let namespace = match (
        &r.namespace,
        r.group.is_empty() && r.resource == "namespaces",
    ) {
        // A namespace is itself cluster-scoped; its own subresources name it.
        (_, true) => "_cluster",
        (Some(ns), false) => ns.as_str(),
        (None, false) => "_cluster",
    };
    let group = if r.group.is_empty() { "core" } else { &r.group };
    let name = r.name.as_deref().unwrap_or("*");
    let mut object = format!("{namespace}/{group}/{}/{name}", r.resource);
    if let Some(sub) = &r.subresource {
        object.push('/');
        object.push_str(sub);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::parse;

    fn op(method: &str, url: &str) -> Operation {
        let (path, query) = url
            .split_once('?')
            .map_or((url, None), |(p, q)| (p, Some(q)));
        let info = parse(method, path, query).expect("parses");
        operation(Target::new("k8s/test"), method, url, &info)
    }

    #[test]
    fn kinds() {
        use OperationKind::*;
        for (method, url, kind) in [
            ("GET", "/api/v1/namespaces/default/pods", Read),
            ("GET", "/api/v1/namespaces/default/secrets/db?watch=1", Read),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web-1/exec?command=sh",
                Exec,
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/web-1/exec?command=sh",
                Exec,
            ),
            ("POST", "/api/v1/namespaces/default/pods/web-1/attach", Exec),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web-1/portforward",
                Forward,
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/web-1/portforward",
                Forward,
            ),
            (
                "GET",
                "/api/v1/namespaces/default/services/web/proxy/x",
                Forward,
            ),
            (
                "GET",
                "/api/v1/proxy/namespaces/default/pods/web-1",
                Forward,
            ),
            ("GET", "/api/v1/nodes/n1/proxy/metrics", Forward),
            ("POST", "/api/v1/namespaces/default/configmaps", Write),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                Write,
            ),
            ("DELETE", "/api/v1/namespaces/default/pods", Write),
            (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                Admin,
            ),
            (
                "PUT",
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/x",
                Admin,
            ),
            ("DELETE", "/api/v1/namespaces/default", Admin),
            ("PUT", "/api/v1/namespaces/default/finalize", Admin),
            ("PATCH", "/api/v1/nodes/n1", Admin),
            (
                "POST",
                "/api/v1/namespaces/default/serviceaccounts/sa/token",
                Admin,
            ),
            (
                "POST",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                Admin,
            ),
            (
                "POST",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                Schema,
            ),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Read,
            ),
            (
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                Read,
            ),
            ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", Admin),
            ("GET", "/version", Read),
            ("GET", "/apis", Read),
            ("POST", "/version", Unknown),
        ] {
            assert_eq!(op(method, url).kind(), kind, "{method} {url}");
        }
    }

    #[test]
    fn objects_name_namespace_group_resource_and_name() {
        let o = op("GET", "/api/v1/namespaces/default/secrets/db-credentials");
        assert_eq!(o.objects(), ["default/core/secrets/db-credentials"]);
        assert!(o.flags().touches_sensitive);
        assert!(o.unknown_objects().is_none());
        let o = op(
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        );
        assert_eq!(o.objects(), ["default/apps/deployments/web/scale"]);
        assert!(!o.flags().touches_sensitive);
        let o = op(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
        );
        assert_eq!(
            o.objects(),
            ["_cluster/rbac.authorization.k8s.io/clusterroles/admin"]
        );
        let o = op("PUT", "/api/v1/namespaces/default/status");
        assert_eq!(o.objects(), ["_cluster/core/namespaces/default/status"]);
        // A collection: every object of it, so not all known.
        let o = op("GET", "/api/v1/namespaces/default/secrets");
        assert_eq!(o.objects(), ["default/core/secrets/*"]);
        assert!(o.unknown_objects().is_some());
        // ... unless a field selector names one.
        let o = op(
            "GET",
            "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ddb",
        );
        assert_eq!(o.objects(), ["default/core/secrets/db"]);
        assert!(o.unknown_objects().is_none());
        assert_eq!(
            o.text(),
            "GET /api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ddb"
        );
    }
}
