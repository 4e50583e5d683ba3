//! A request's [`Operation`]: its kind, the object it names and the text policy, approvers and
//! the audit log see.
//!
//! | request | kind |
//! |---|---|
//! | `get`, `list`, `watch` (and `GET`/`HEAD` of a non-resource URL) | `read` (Secrets: sensitive) |
//! | `pods/exec`, `pods/attach`, whatever the verb (WebSocket `GET`, SPDY `POST`), and `pods/ephemeralcontainers` (a command of the writer's choosing, run in the pod) | `exec` |
//! | `pods/portforward`, the `proxy` verb and every `…/proxy` subresource | `forward` |
//! | writes to RBAC, admission webhooks and policies, API services, certificate signing requests, namespaces, nodes, service account tokens | `admin` |
//! | writes to CustomResourceDefinitions | `schema` |
//! | access and token reviews (`auth can-i`): they ask, they change nothing | `read` |
//! | other `create`, `update`, `patch`, `delete`, `deletecollection` | `write` |
//! | any other method on a non-resource URL | `unknown` |
//!
//! A non-resource request (discovery, `/version`, `/logs/…`) names `_nonresource/PATH`. The
//! object of a resource request is `NAMESPACE/GROUP/RESOURCE/NAME[/SUBRESOURCE]`, with `_cluster` for
//! cluster-scoped requests (a namespace name cannot hold `_`) and `core` for the core group, so
//! policy globs select what they mean: `default/core/secrets/*`, `*/rbac.authorization.k8s.io/*`.
//! A request without a name (`list`, `watch`, `create`, `deletecollection`) touches a
//! collection, `NAMESPACE/GROUP/RESOURCE/` (see
//! [`Operation::collections`](sod_core::Operation::collections)): a rule that denies or asks
//! approval for one of its objects applies to it, and a rule allows it only if it allows every
//! object in it (`default/*` allows listing pods in `default`; `default/core/pods/web-1` does
//! not). A request across all namespaces touches everything.

use sod_core::{Operation, OperationKind, Target};

use crate::request_info::{RequestInfo, ResourceRequest, Verb};

/// A request's body, as the operation shows and fingerprints it.
#[derive(Clone, Copy, Debug)]
pub struct RequestBody<'a> {
    bytes: &'a [u8],
    content_type: &'a str,
}

impl<'a> RequestBody<'a> {
    /// No body.
    pub const NONE: RequestBody<'static> = RequestBody {
        bytes: b"",
        content_type: "",
    };

    /// A body of `content_type`.
    pub fn new(bytes: &'a [u8], content_type: &'a str) -> Self {
        Self {
            bytes,
            content_type,
        }
    }

    /// The body as policy, approvers and the audit log see it: JSON with every Secret value
    /// masked (in a request about Secrets, every value but the object's name and type, so
    /// that patches and objects without a `kind` hide theirs too), or only its size and type.
    fn shown(&self, secrets: bool) -> String {
        let json = self.content_type.is_empty() || self.content_type.contains("json");
        match serde_json::from_slice::<serde_json::Value>(self.bytes) {
            Ok(mut value) if json => {
                if secrets {
                    hide_values(&mut value, "");
                } else {
                    crate::masking::mask_value(&mut value);
                }
                value.to_string()
            }
            _ => format!(
                "({} bytes of {}, not shown)",
                self.bytes.len(),
                if self.content_type.is_empty() {
                    "an unknown type"
                } else {
                    self.content_type
                }
            ),
        }
    }
}

/// Every string of a write about Secrets becomes `****`, except what names the object and
/// what a JSON Patch operation says it does.
fn hide_values(value: &mut serde_json::Value, path: &str) {
    use serde_json::Value;
    const SHOWN: [&str; 7] = [
        "kind",
        "apiVersion",
        "type",
        "metadata.name",
        "metadata.namespace",
        "metadata.generateName",
        "metadata.resourceVersion",
    ];
    match value {
        Value::Object(map) => {
            let patch_op = map.contains_key("op");
            for (key, child) in map.iter_mut() {
                if patch_op && matches!(key.as_str(), "op" | "path" | "from") {
                    continue;
                }
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if SHOWN.contains(&at.as_str()) {
                    continue;
                }
                hide_values(child, &at);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| hide_values(i, path)),
        Value::String(s) => *s = crate::masking::MASKED.to_owned(),
        _ => {}
    }
}

/// The operation of a request with this `method`, `path_and_query` (its text as sent), `info`
/// and `body`.
///
/// Its text is `METHOD PATH?QUERY`, followed by a line with the body as [`RequestBody`] shows
/// it (Secret values masked); the fingerprint also covers the body's exact bytes, so an
/// approval covers exactly the body that was approved. `exec`, `attach` and `portforward` are
/// `CONNECT` whatever the method, so the WebSocket `GET` and the SPDY `POST` kubectl falls
/// back to are one operation, and one decision covers both.
pub fn operation(
    target: Target,
    method: &str,
    path_and_query: &str,
    info: &RequestInfo,
    body: RequestBody<'_>,
) -> Operation {
    let connect = matches!(info, RequestInfo::Resource(r)
        if r.group.is_empty() && r.resource == "pods"
            && matches!(r.subresource.as_deref(), Some("exec" | "attach" | "portforward")));
    let mut text = format!(
        "{} {path_and_query}",
        if connect { "CONNECT" } else { method }
    );
    if !body.bytes.is_empty() {
        let secrets = matches!(info, RequestInfo::Resource(r) if r.group.is_empty() && r.resource == "secrets");
        text.push('\n');
        text.push_str(&body.shown(secrets));
    }
    let builder = match info {
        RequestInfo::NonResource { verb, path } => {
            let kind = if matches!(*verb, "get" | "head") {
                OperationKind::Read
            } else {
                OperationKind::Unknown
            };
            // Named, so that a capability or a grant limited to objects covers it only if it
            // says so (`/logs/…`, `/debug/pprof/…` run with the gateway's credentials).
            let mut builder =
                Operation::builder(target, kind, text).object(format!("_nonresource{path}"));
            if kind == OperationKind::Unknown {
                builder = builder.note(format!(
                    "`{}` of a non-resource URL is not something sod knows",
                    verb.to_ascii_uppercase()
                ));
            }
            builder
        }
        RequestInfo::Resource(r) => {
            let builder = Operation::builder(target, kind(r), text)
                .touches_sensitive(r.group.is_empty() && r.resource == "secrets");
            match object(r) {
                Touches::Object(o) => builder.object(o),
                Touches::Collection(c) => builder.collection(c),
            }
        }
    };
    let builder = if body.bytes.is_empty() {
        builder
    } else {
        builder.secret(body.bytes)
    };
    builder.build()
}

/// The kind of a resource request (see the module's table).
pub fn kind(r: &ResourceRequest) -> OperationKind {
    let core = r.group.is_empty();
    let sub = r.subresource.as_deref();
    // An ephemeral container is a command of the writer's choosing run in the pod: exec.
    if core
        && r.resource == "pods"
        && matches!(sub, Some("exec" | "attach" | "ephemeralcontainers"))
    {
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

/// What a resource request touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touches {
    /// One object: `NAMESPACE/GROUP/RESOURCE/NAME[/SUBRESOURCE]`.
    Object(String),
    /// Every object whose name starts with this prefix (see
    /// [`Operation::collections`](sod_core::Operation::collections)).
    Collection(String),
}

/// Resources that live outside namespaces, as the API server serves them. A request without a
/// namespace for any other resource is a list across every namespace.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "namespaces"),
    ("", "nodes"),
    ("", "persistentvolumes"),
    ("", "componentstatuses"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "apiservices"),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "validatingadmissionpolicies",
    ),
    (
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
    ),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("storage.k8s.io", "storageclasses"),
    ("storage.k8s.io", "csidrivers"),
    ("storage.k8s.io", "csinodes"),
    ("storage.k8s.io", "volumeattachments"),
    ("scheduling.k8s.io", "priorityclasses"),
    ("node.k8s.io", "runtimeclasses"),
    ("networking.k8s.io", "ingressclasses"),
    ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    (
        "flowcontrol.apiserver.k8s.io",
        "prioritylevelconfigurations",
    ),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authentication.k8s.io", "tokenreviews"),
];

/// What the request touches (see the module docs): one object when it names one, else the
/// collection it works on — `NAMESPACE/GROUP/RESOURCE/` for a namespace or a known
/// cluster-scoped resource (`_cluster/…`); everything (the empty prefix) for a request across
/// all namespaces, or for a cluster-wide request for a resource sod does not know to be
/// cluster-scoped.
pub fn object(r: &ResourceRequest) -> Touches {
    let group = if r.group.is_empty() { "core" } else { &r.group };
    let cluster_scoped = CLUSTER_SCOPED.contains(&(r.group.as_str(), r.resource.as_str()));
    let namespace = match &r.namespace {
        // A namespace is itself cluster-scoped; its own subresources name it.
        _ if r.group.is_empty() && r.resource == "namespaces" => "_cluster",
        Some(ns) => ns.as_str(),
        None if cluster_scoped => "_cluster",
        // Anything else without a namespace is every namespace's: `GET /api/v1/secrets` with
        // `fieldSelector=metadata.name=admin` is every Secret called `admin`, in any namespace.
        None => return Touches::Collection(String::new()),
    };
    let Some(name) = r.name.as_deref() else {
        return Touches::Collection(format!("{namespace}/{group}/{}/", r.resource));
    };
    let mut object = format!("{namespace}/{group}/{}/{name}", r.resource);
    if let Some(sub) = &r.subresource {
        object.push('/');
        object.push_str(sub);
    }
    Touches::Object(object)
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
        operation(
            Target::new("k8s/test"),
            method,
            url,
            &info,
            RequestBody::NONE,
        )
    }

    #[test]
    fn bodies_are_shown_masked_and_fingerprinted_exactly() {
        let info = parse("POST", "/api/v1/namespaces/default/secrets", None).expect("parses");
        let write = |body: &[u8]| {
            operation(
                Target::new("k8s/test"),
                "POST",
                "/api/v1/namespaces/default/secrets",
                &info,
                RequestBody::new(body, "application/json"),
            )
        };
        let a = write(br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"stringData":{"pw":"hunter2"}}"#);
        let b = write(br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"stringData":{"pw":"other"}}"#);
        assert!(
            a.text()
                .starts_with("POST /api/v1/namespaces/default/secrets\n{"),
            "{}",
            a.text()
        );
        assert!(!a.text().contains("hunter2"), "{}", a.text());
        // Same shown text, different bodies: different operations.
        assert_eq!(a.text(), b.text());
        assert_ne!(a.fingerprint(), b.fingerprint());
        // A merge patch, a JSON Patch and an object without `kind` hide their values too.
        let patch = |ct: &str, body: &[u8]| {
            operation(
                Target::new("k8s/test"),
                "PATCH",
                "/api/v1/namespaces/default/secrets/x",
                &parse("PATCH", "/api/v1/namespaces/default/secrets/x", None).expect("parses"),
                RequestBody::new(body, ct),
            )
        };
        for (ct, body) in [
            ("application/merge-patch+json", &br#"{"data":{"pw":"aHVudGVyMg=="}}"#[..]),
            ("application/strategic-merge-patch+json", br#"{"stringData":{"pw":"hunter2"}}"#),
            ("application/json-patch+json", br#"[{"op":"replace","path":"/data/pw","value":"aHVudGVyMg=="}]"#),
            ("application/json", br#"{"metadata":{"name":"x","annotations":{"a":"hunter2"}},"data":{"pw":"aHVudGVyMg=="}}"#),
        ] {
            let text = patch(ct, body).text().to_owned();
            assert!(!text.contains("hunter2") && !text.contains("aHVudGVyMg=="), "{ct}: {text}");
        }
        assert!(
            patch(
                "application/json-patch+json",
                br#"[{"op":"replace","path":"/data/pw","value":"x"}]"#
            )
            .text()
            .contains(r#""path":"/data/pw""#)
        );
        let yaml = operation(
            Target::new("k8s/test"),
            "PATCH",
            "/api/v1/namespaces/default/secrets/x",
            &parse("PATCH", "/api/v1/namespaces/default/secrets/x", None).expect("parses"),
            RequestBody::new(
                b"stringData:\n  pw: hunter2\n",
                "application/apply-patch+yaml",
            ),
        );
        assert!(
            yaml.text()
                .ends_with("(26 bytes of application/apply-patch+yaml, not shown)"),
            "{}",
            yaml.text()
        );
    }

    #[test]
    fn exec_over_websocket_and_spdy_is_one_operation() {
        let url = "/api/v1/namespaces/default/pods/web-1/exec?command=id&stdout=true";
        let get = op("GET", url);
        let post = op("POST", url);
        assert_eq!(get.text(), format!("CONNECT {url}"));
        assert_eq!(get.fingerprint(), post.fingerprint());
        assert_eq!(get.kind(), OperationKind::Exec);
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
                "PATCH",
                "/api/v1/namespaces/default/pods/web-1/ephemeralcontainers",
                Exec,
            ),
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
        // A collection: every object of it.
        let o = op("GET", "/api/v1/namespaces/default/secrets");
        assert!(o.objects().is_empty());
        assert_eq!(o.collections(), ["default/core/secrets/"]);
        assert!(o.unknown_objects().is_none());
        let o = op("POST", "/api/v1/namespaces/default/configmaps");
        assert_eq!(o.collections(), ["default/core/configmaps/"]);
        let o = op("GET", "/api/v1/nodes");
        assert_eq!(o.collections(), ["_cluster/core/nodes/"]);
        // Across namespaces: everything, even when a field selector names the object.
        let o = op("GET", "/api/v1/pods?watch=1");
        assert_eq!(o.collections(), [""]);
        let o = op("GET", "/api/v1/secrets?fieldSelector=metadata.name%3Dadmin");
        assert_eq!(o.collections(), [""]);
        assert!(o.objects().is_empty());
        let o = op("GET", "/logs/kube-apiserver.log");
        assert_eq!(o.objects(), ["_nonresource/logs/kube-apiserver.log"]);
        let o = op("GET", "/apis/example.com/v1/widgets");
        assert_eq!(o.collections(), [""]);
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
