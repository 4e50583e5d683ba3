//! The demo objects of [`TestApiServer::seed_demo`](super::TestApiServer::seed_demo).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::store::uuid;
use super::time;

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(key, value)| ((*key).to_owned(), json!(STANDARD.encode(value))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "Opaque",
        "data": data,
    })
}

/// A running pod with one ready nginx container, complete enough for kubectl's columns and
/// for `k8s_openapi::api::core::v1::Pod`.
pub(super) fn pod(name: &str, ip: &str) -> Value {
    let now = time::now_rfc3339();
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now});
    let container_id: String = uuid().chars().filter(char::is_ascii_hexdigit).collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "dnsPolicy": "ClusterFirst",
            "nodeName": "demo-node",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.10",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "qosClass": "BestEffort",
            "startTime": now,
            "conditions": [
                condition("PodReadyToStartContainers"),
                condition("Initialized"),
                condition("Ready"),
                condition("ContainersReady"),
                condition("PodScheduled"),
            ],
            "containerStatuses": [{
                "name": "web",
                "image": "docker.io/library/nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:6784fb0834aa7dbbe12e3d7471e69c290df3e6ba810dc38b34ae33d3c1c05f7d",
                "containerID": format!("containerd://{container_id}"),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }],
        },
    })
}

/// `(apiVersion, resource, object)` of every demo object.
pub(super) fn demo_objects() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("v1", "namespaces", namespace("default")),
        ("v1", "namespaces", namespace("kube-system")),
        (
            "v1",
            "secrets",
            secret(
                "db-credentials",
                &[("username", "app"), ("password", "s3cr3t-pa55")],
            ),
        ),
        (
            "v1",
            "secrets",
            secret("api-token", &[("token", "tok-4f9a1c")]),
        ),
        (
            "v1",
            "configmaps",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "app-config", "namespace": "default"},
                "data": {"LOG_LEVEL": "info", "DATABASE_HOST": "db.internal"},
            }),
        ),
        ("v1", "pods", pod("web-1", "10.244.0.11")),
        ("v1", "pods", pod("web-2", "10.244.0.12")),
    ]
}
