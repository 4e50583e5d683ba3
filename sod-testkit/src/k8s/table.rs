//! Server-side printing: the `meta.k8s.io` `Table` that `kubectl get` asks for, with the columns
//! the real table convertors produce for the resources served (the others get the default
//! convertor's Name and Created At).

use serde_json::{Value, json};

use super::discovery::ResourceDef;
use super::time;
use super::wire::Query;

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Include {
    None,
    /// `PartialObjectMetadata`, the default.
    Metadata,
    /// The whole object (kubectl's `--sort-by` asks for it, to sort on any field).
    Object,
}

impl Include {
    pub(super) fn from_query(query: &Query) -> Include {
        match query.get("includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A column definition.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn column(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

const fn wide(column: Column) -> Column {
    Column {
        priority: 1,
        ..column
    }
}

const NAME: Column = Column {
    format: "name",
    ..column("Name", "string", "Name must be unique within a namespace.")
};
const AGE: Column = column(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
const CREATED_AT: Column = Column {
    format: "date-time",
    ..column(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
};

fn columns(resource: &str) -> Vec<Column> {
    match resource {
        "pods" => vec![
            NAME,
            column(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            wide(column("IP", "string", "IP address allocated to the pod.")),
            wide(column(
                "Node",
                "string",
                "NodeName indicates in which node this pod is scheduled.",
            )),
            wide(column(
                "Nominated Node",
                "string",
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            )),
            wide(column(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
            )),
        ],
        "secrets" => vec![
            NAME,
            column("Type", "string", "The type of secret"),
            column("Data", "string", "Data contains the secret data."),
            AGE,
        ],
        "configmaps" => vec![
            NAME,
            column("Data", "string", "Data contains the configuration data."),
            AGE,
        ],
        "namespaces" => vec![
            NAME,
            column("Status", "string", "The status of the namespace"),
            AGE,
        ],
        "services" => vec![
            NAME,
            column(
                "Type",
                "string",
                "type determines how the Service is exposed.",
            ),
            column(
                "Cluster-IP",
                "string",
                "clusterIP is the IP address of the service.",
            ),
            column(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            column(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            wide(column(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
            )),
        ],
        "serviceaccounts" => vec![NAME, AGE],
        "deployments" => vec![
            NAME,
            column("Ready", "string", "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            wide(column(
                "Containers",
                "string",
                "Names of each container in the template.",
            )),
            wide(column(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            )),
            wide(column("Selector", "string", "Label selector for pods.")),
        ],
        "events" => vec![
            column(
                "Last Seen",
                "string",
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            column("Type", "string", "Type of this event (Normal, Warning)."),
            column(
                "Reason",
                "string",
                "This should be a short, machine understandable string that gives the reason for this event being generated.",
            ),
            column("Object", "string", "The object that this event is about."),
            column(
                "Message",
                "string",
                "A human-readable description of the status of this operation.",
            ),
        ],
        "rolebindings" | "clusterrolebindings" => vec![
            NAME,
            column(
                "Role",
                "string",
                "RoleRef references the role being granted.",
            ),
            AGE,
        ],
        _ => vec![NAME, CREATED_AT],
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn or_none(value: Option<&str>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or("<none>")
        .to_owned()
}

fn count(value: &Value, pointer: &str) -> usize {
    match value.pointer(pointer) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    }
}

fn number(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn age(object: &Value, pointer: &str, now: i64) -> String {
    text(object, pointer)
        .and_then(time::parse_rfc3339)
        .map_or_else(|| "<unknown>".to_owned(), |t| time::human_duration(now - t))
}

/// The pod's Status column: the phase, unless a reason says more (as the real printer does,
/// in a simplified order: deletion, then container waiting/terminated reasons, then the pod's).
fn pod_status(pod: &Value) -> String {
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return "Terminating".to_owned();
    }
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    for status in statuses.into_iter().flatten() {
        for state in ["/state/waiting/reason", "/state/terminated/reason"] {
            if let Some(reason) = text(status, state).filter(|r| !r.is_empty()) {
                return reason.to_owned();
            }
        }
    }
    text(pod, "/status/reason")
        .or_else(|| text(pod, "/status/phase"))
        .unwrap_or_default()
        .to_owned()
}

fn cells(resource: &str, object: &Value, now: i64) -> Vec<Value> {
    let name = json!(text(object, "/metadata/name").unwrap_or_default());
    let created = || json!(age(object, "/metadata/creationTimestamp", now));
    match resource {
        "pods" => {
            let statuses = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let ready = statuses
                .into_iter()
                .flatten()
                .filter(|s| s["ready"] == true)
                .count();
            let restarts: i64 = statuses
                .into_iter()
                .flatten()
                .map(|s| s["restartCount"].as_i64().unwrap_or(0))
                .sum();
            let gates = count(object, "/spec/readinessGates");
            vec![
                name,
                json!(format!("{ready}/{}", count(object, "/spec/containers"))),
                json!(pod_status(object)),
                json!(restarts.to_string()),
                created(),
                json!(or_none(text(object, "/status/podIP"))),
                json!(or_none(text(object, "/spec/nodeName"))),
                json!(or_none(text(object, "/status/nominatedNodeName"))),
                json!(if gates == 0 {
                    "<none>".to_owned()
                } else {
                    format!("0/{gates}")
                }),
            ]
        }
        "secrets" => vec![
            name,
            json!(text(object, "/type").unwrap_or("Opaque")),
            json!(count(object, "/data")),
            created(),
        ],
        "configmaps" => vec![
            name,
            json!(count(object, "/data") + count(object, "/binaryData")),
            created(),
        ],
        "namespaces" => vec![
            name,
            json!(text(object, "/status/phase").unwrap_or_default()),
            created(),
        ],
        "services" => {
            let ports: Vec<String> = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["port"].as_i64().unwrap_or(0),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let selector: Vec<String> = object
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            vec![
                name,
                json!(text(object, "/spec/type").unwrap_or("ClusterIP")),
                json!(or_none(text(object, "/spec/clusterIP"))),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_owned()
                } else {
                    ports.join(",")
                }),
                created(),
                json!(or_none(Some(&selector.join(",")))),
            ]
        }
        "serviceaccounts" => vec![name, created()],
        "deployments" => {
            let containers = object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array);
            let field = |key: &str| -> String {
                containers
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c[key].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let selector: Vec<String> = object
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            let replicas = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!(
                    "{}/{replicas}",
                    number(object, "/status/readyReplicas")
                )),
                json!(number(object, "/status/updatedReplicas")),
                json!(number(object, "/status/availableReplicas")),
                created(),
                json!(field("name")),
                json!(field("image")),
                json!(or_none(Some(&selector.join(",")))),
            ]
        }
        "events" => {
            let involved = format!(
                "{}/{}",
                text(object, "/involvedObject/kind")
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                text(object, "/involvedObject/name").unwrap_or_default()
            );
            let seen = if text(object, "/lastTimestamp").is_some() {
                "/lastTimestamp"
            } else {
                "/metadata/creationTimestamp"
            };
            vec![
                json!(age(object, seen, now)),
                json!(text(object, "/type").unwrap_or_default()),
                json!(text(object, "/reason").unwrap_or_default()),
                json!(involved),
                json!(text(object, "/message").unwrap_or_default()),
            ]
        }
        "rolebindings" | "clusterrolebindings" => vec![
            name,
            json!(format!(
                "{}/{}",
                text(object, "/roleRef/kind").unwrap_or_default(),
                text(object, "/roleRef/name").unwrap_or_default()
            )),
            created(),
        ],
        _ => vec![
            name,
            json!(text(object, "/metadata/creationTimestamp").unwrap_or_default()),
        ],
    }
}

/// `object` reduced to `PartialObjectMetadata` of `meta.k8s.io/{version}`.
pub(super) fn partial(object: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": object["metadata"],
    })
}

/// A `Table` of `objects`. `resource_version` is the list's (or the object's); a watch leaves
/// the column definitions out of every event but the first, as the API server does.
pub(super) fn table(
    def: &ResourceDef,
    objects: &[Value],
    include: Include,
    version: &str,
    resource_version: &str,
    with_columns: bool,
) -> Value {
    let now = time::now();
    let column_definitions: Vec<Value> = if with_columns {
        columns(def.name)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.kind,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(def.name, object, now)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial(object, version),
                Include::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::super::discovery::{RESOURCES, find_by_name};
    use super::*;

    #[test]
    fn every_resource_has_as_many_cells_as_columns() {
        let object =
            json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        for def in RESOURCES {
            assert_eq!(
                columns(def.name).len(),
                cells(def.name, &object, 0).len(),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn pod_rows_read_like_kubectl() {
        let created = time::now() - 300;
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": time::rfc3339(created)},
            "spec": {"containers": [{"name": "web"}, {"name": "side"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 2},
                {"name": "side", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let def = find_by_name("pods").expect("pods");
        let table = table(def, &[pod], Include::Metadata, "v1", "7", true);
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "web-1",
                "1/2",
                "CrashLoopBackOff",
                "3",
                "5m",
                "10.0.0.1",
                "n1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
    }
}
