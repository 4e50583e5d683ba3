//! What the server serves, and the discovery documents that say so: `/version`, `/api`,
//! `/apis`, `/apis/{group}` and the `APIResourceList` of each group version.
//!
//! Only the legacy (non-aggregated) discovery forms are served. kubectl and `kube` ask for the
//! aggregated `APIGroupDiscoveryList` first but list plain `application/json` after it, and fall
//! back to the per-group-version requests when they get it.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// One resource of the catalog.
#[derive(Debug)]
pub(super) struct ResourceDef {
    pub(super) group: &'static str,
    pub(super) version: &'static str,
    /// The plural name, as in paths: `pods`.
    pub(super) name: &'static str,
    pub(super) singular: &'static str,
    pub(super) kind: &'static str,
    pub(super) namespaced: bool,
    pub(super) verbs: &'static [&'static str],
    pub(super) short_names: &'static [&'static str],
    pub(super) categories: &'static [&'static str],
    /// `(name, kind, verbs)` of each subresource.
    pub(super) subresources: &'static [(&'static str, &'static str, &'static [&'static str])],
}

impl ResourceDef {
    /// `v1`, `apps/v1`.
    pub(super) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Create-only reviews (`selfsubjectaccessreviews`): answered, never stored.
    pub(super) fn is_review(&self) -> bool {
        self.verbs == CREATE_ONLY
    }

    pub(super) fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|(sub, _, _)| *sub == name)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
const STATUS: (&str, &str, &[&str]) = ("status", "", &["get", "patch", "update"]);

const fn core(
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        name,
        singular,
        kind,
        namespaced,
        verbs: ALL_VERBS,
        short_names,
        categories: &[],
        subresources: &[],
    }
}

const fn rbac(
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceDef {
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        name,
        singular,
        kind,
        namespaced,
        verbs: ALL_VERBS,
        short_names: &[],
        categories: &[],
        subresources: &[],
    }
}

const fn review(name: &'static str, singular: &'static str, kind: &'static str) -> ResourceDef {
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        name,
        singular,
        kind,
        namespaced: false,
        verbs: CREATE_ONLY,
        short_names: &[],
        categories: &[],
        subresources: &[],
    }
}

/// Every resource served. Resource names are unique across groups, so the store keys objects by
/// resource name alone.
pub(super) static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        categories: &["all"],
        subresources: &[
            ("attach", "PodAttachOptions", &["create", "get"]),
            ("exec", "PodExecOptions", &["create", "get"]),
            ("log", "Pod", &["get"]),
            ("portforward", "PodPortForwardOptions", &["create", "get"]),
            STATUS,
        ],
        ..core("pods", "pod", "Pod", true, &["po"])
    },
    core("secrets", "secret", "Secret", true, &[]),
    core("configmaps", "configmap", "ConfigMap", true, &["cm"]),
    ResourceDef {
        subresources: &[STATUS],
        ..core("namespaces", "namespace", "Namespace", false, &["ns"])
    },
    ResourceDef {
        categories: &["all"],
        subresources: &[STATUS],
        ..core("services", "service", "Service", true, &["svc"])
    },
    core(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
    ),
    core("events", "event", "Event", true, &["ev"]),
    ResourceDef {
        group: "apps",
        categories: &["all"],
        subresources: &[STATUS],
        ..core("deployments", "deployment", "Deployment", true, &["deploy"])
    },
    rbac("roles", "role", "Role", true),
    rbac("rolebindings", "rolebinding", "RoleBinding", true),
    rbac("clusterroles", "clusterrole", "ClusterRole", false),
    rbac(
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
    ),
    review(
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
    ),
    review(
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
    ),
];

/// The groups under `/apis`, in the order discovery lists them.
const GROUPS: &[&str] = &["apps", "rbac.authorization.k8s.io", "authorization.k8s.io"];

/// The resource `name` of `group/version`.
pub(super) fn find(group: &str, version: &str, name: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|def| def.group == group && def.version == version && def.name == name)
}

/// The resource named `name`, whatever its group.
pub(super) fn find_by_name(name: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|def| def.name == name)
}

/// `GET /version`: 1.32, so that the kubectl dispatcher runs kubectl 1.32, whose `exec` speaks
/// WebSockets (v5.channel.k8s.io) by default.
pub(super) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(super) fn api_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

fn api_group_value(group: &str) -> Value {
    let version = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({
        "name": group,
        "versions": [version],
        "preferredVersion": version,
    })
}

/// `GET /apis`.
pub(super) fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": GROUPS.iter().map(|group| api_group_value(group)).collect::<Vec<_>>(),
    })
}

/// `GET /apis/{group}`.
pub(super) fn api_group(group: &str) -> Option<Value> {
    GROUPS.contains(&group).then(|| {
        let mut value = api_group_value(group);
        value["kind"] = json!("APIGroup");
        value["apiVersion"] = json!("v1");
        value
    })
}

/// `GET /api/v1`, `GET /apis/{group}/{version}`.
pub(super) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<_> = RESOURCES
        .iter()
        .filter(|def| def.group == group && def.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for def in defs {
        let mut resource = json!({
            "name": def.name,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": def.verbs,
        });
        if !def.short_names.is_empty() {
            resource["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            resource["categories"] = json!(def.categories);
        }
        resources.push(resource);
        for (sub, kind, verbs) in def.subresources {
            resources.push(json!({
                "name": format!("{}/{sub}", def.name),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": if kind.is_empty() { def.kind } else { kind },
                "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_unique_and_scopes_right() {
        for def in RESOURCES {
            assert_eq!(
                RESOURCES.iter().filter(|d| d.name == def.name).count(),
                1,
                "{}",
                def.name
            );
        }
        let scope = |name| find_by_name(name).map(|def| def.namespaced);
        assert_eq!(scope("roles"), Some(true));
        assert_eq!(scope("clusterrolebindings"), Some(false));
        assert_eq!(scope("namespaces"), Some(false));
        assert_eq!(scope("deployments"), Some(true));
    }

    #[test]
    fn every_group_has_resources() {
        assert!(resource_list("", "v1").is_some());
        for group in GROUPS {
            assert!(resource_list(group, "v1").is_some(), "{group}");
        }
        assert!(resource_list("batch", "v1").is_none());
    }
}
