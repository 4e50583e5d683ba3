//! The REST verbs on stored objects: get, list, watch, create, update, patch, delete,
//! deletecollection, plus the create-only reviews and the pod subresources.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Method, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::discovery::{self, ResourceDef};
use super::patch::{self, PatchType};
use super::proto;
use super::select::Filter;
use super::server::{ApiRequest, Shared};
use super::status::ApiError;
use super::store::StoreError;
use super::table::{self, Include};
use super::wire::{self, Body, Format};
use super::{exec, portforward, watch};

/// What a resource path names.
struct Target<'a> {
    def: &'static ResourceDef,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
    /// The legacy `/api/v1/watch/...` form.
    watch_path: bool,
}

impl Target<'_> {
    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.def.group, self.def.name, name)
    }

    fn store_error(&self, name: &str, error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound => self.not_found(name),
            StoreError::AlreadyExists => {
                ApiError::already_exists(self.def.group, self.def.name, name)
            }
            StoreError::Rejected(error) => error,
        }
    }
}

/// Reads `[watch/][namespaces/{ns}/]{resource}[/{name}[/{subresource}]]` the way the API
/// server's RequestInfo does: `namespaces/{ns}/status` is the namespace's subresource.
fn target<'a>(group: &str, version: &str, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, resource, ..] if !matches!(*resource, "status" | "finalize") => {
            (Some(*namespace), &rest[2..])
        }
        _ => (None, rest),
    };
    let [resource, tail @ ..] = rest else {
        return Err(ApiError::no_route());
    };
    let def = discovery::find(group, version, resource).ok_or_else(ApiError::no_route)?;
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some(*name), None),
        [name, sub] => (Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    let scoped_right = if def.namespaced {
        namespace.is_some() || name.is_none()
    } else {
        namespace.is_none()
    };
    if !scoped_right || subresource.is_some_and(|sub| !def.has_subresource(sub)) {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        def,
        namespace,
        name,
        subresource,
        watch_path,
    })
}

/// Serves `/api/v1/{rest}` or `/apis/{group}/{version}/{rest}`.
pub(super) fn serve(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    request: ApiRequest,
) -> Response<Body> {
    let result = target(group, version, rest).and_then(|target| dispatch(shared, &target, request));
    result.unwrap_or_else(|error| error.response())
}

fn dispatch(
    shared: &Arc<Shared>,
    target: &Target<'_>,
    request: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let method = request.method.clone();
    if target.def.is_review() {
        return match (&method, target.name) {
            (&Method::POST, None) => review(target.def, &request),
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        };
    }
    let watching = target.watch_path || request.query.flag("watch");
    match (&method, target.name, target.subresource) {
        (_, Some(name), Some(sub @ ("exec" | "attach"))) => {
            let namespace = target.namespace.unwrap_or_default();
            Ok(exec::respond(shared, namespace, name, sub, request))
        }
        (_, Some(name), Some("portforward")) => {
            let namespace = target.namespace.unwrap_or_default();
            Ok(portforward::respond(shared, namespace, name, request))
        }
        (&Method::GET, Some(name), Some("log")) => log(shared, target, name),
        (&Method::GET, name, None | Some("status")) if watching => {
            let format = wire::negotiate(request.header(header::ACCEPT))?;
            let mut filter = Filter::new(target.namespace, &request.query)?;
            if let Some(name) = name {
                filter = filter.named(name);
            }
            Ok(watch::respond(
                shared,
                target.def,
                filter,
                format,
                &request.query,
            ))
        }
        (&Method::GET, None, None) => list(shared, target, &request),
        (&Method::GET, Some(name), None | Some("status")) => get(shared, target, name, &request),
        (&Method::POST, None, None) => create(shared, target, &request),
        (&Method::PUT, Some(name), _) => update(shared, target, name, &request),
        (&Method::PATCH, Some(name), _) => patch(shared, target, name, &request),
        (&Method::DELETE, Some(name), None) => delete(shared, target, name, &request),
        (&Method::DELETE, None, None) => delete_collection(shared, target, &request),
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

/// `dryRun=All` on a write: answer as if done, change nothing.
fn dry_run(request: &ApiRequest) -> Result<bool, ApiError> {
    let values = request.query.all("dryRun");
    match values.iter().find(|v| *v != "All") {
        Some(bad) => Err(ApiError::bad_request(format!(
            "Invalid value: {bad:?}: valid values are: All"
        ))),
        None => Ok(!values.is_empty()),
    }
}

fn respond(status: StatusCode, value: &Value) -> Result<Response<Body>, ApiError> {
    Ok(wire::json(status, value))
}

/// The object in the negotiated format.
fn object_answer(
    def: &ResourceDef,
    object: &Value,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let format = wire::negotiate(request.header(header::ACCEPT))?;
    let answer = match format {
        Format::Json => object.clone(),
        Format::Metadata => table::partial(object, "v1"),
        Format::Table(version) => {
            let resource_version = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            let include = Include::from_query(&request.query);
            let objects = std::slice::from_ref(object);
            table::table(def, objects, include, version, resource_version, true)
        }
    };
    Ok(wire::json_as(
        StatusCode::OK,
        &format.content_type(false),
        &answer,
    ))
}

fn get(
    shared: &Shared,
    target: &Target<'_>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let object = shared
        .store
        .get(target.def.name, target.namespace, name)
        .ok_or_else(|| target.not_found(name))?;
    object_answer(target.def, &object, request)
}

fn list(
    shared: &Shared,
    target: &Target<'_>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let format = wire::negotiate(request.header(header::ACCEPT))?;
    let filter = Filter::new(target.namespace, &request.query)?;
    let (mut objects, revision) = shared.store.list(target.def.name, target.namespace);
    objects.retain(|object| filter.matches(object));
    let revision = revision.to_string();
    let def = target.def;
    let answer = match format {
        Format::Json => {
            // Like the real server, list items carry no kind and apiVersion: only the list
            // says what they are.
            let items: Vec<Value> = objects
                .into_iter()
                .map(|mut item| {
                    if let Some(item) = item.as_object_mut() {
                        item.remove("kind");
                        item.remove("apiVersion");
                    }
                    item
                })
                .collect();
            json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": revision},
                "items": items,
            })
        }
        Format::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": revision},
            "items": objects.iter().map(|o| table::partial(o, "v1")).collect::<Vec<_>>(),
        }),
        Format::Table(version) => {
            let include = Include::from_query(&request.query);
            table::table(def, &objects, include, version, &revision, true)
        }
    };
    Ok(wire::json_as(
        StatusCode::OK,
        &format.content_type(true),
        &answer,
    ))
}

/// The request body as a JSON object (kubectl's typed clients send some as protobuf).
fn body_object(request: &ApiRequest) -> Result<Map<String, Value>, ApiError> {
    let content_type = request.header(header::CONTENT_TYPE).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let decoded = match media {
        "application/json" | "*/*" | "" => serde_json::from_slice(&request.body)
            .map_err(|error| format!("the body of the request could not be decoded: {error}")),
        proto::MEDIA_TYPE => proto::decode(&request.body),
        _ => return Err(ApiError::unsupported_media_type(content_type)),
    };
    match decoded {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(message) if media == proto::MEDIA_TYPE => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )),
        Err(message) => Err(ApiError::bad_request(message)),
    }
}

/// Brings the body's namespace in line with the path's: filled in when absent, refused when
/// different, removed for cluster-scoped resources.
fn place(target: &Target<'_>, object: &mut Value) -> Result<(), ApiError> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let metadata = &mut object["metadata"];
    match target.namespace {
        Some(namespace) => match metadata["namespace"].as_str() {
            None | Some("") => metadata["namespace"] = json!(namespace),
            Some(given) if given == namespace => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ));
            }
        },
        None => {
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.remove("namespace");
            }
        }
    }
    Ok(())
}

/// What the API server fills in or normalizes on every write of these kinds.
fn normalize(def: &ResourceDef, object: &mut Value) {
    if object["kind"].as_str().is_none_or(str::is_empty) {
        object["kind"] = json!(def.kind);
    }
    if object["apiVersion"].as_str().is_none_or(str::is_empty) {
        object["apiVersion"] = json!(def.api_version());
    }
    match def.name {
        "secrets" => {
            if object["type"].as_str().is_none_or(str::is_empty) {
                object["type"] = json!("Opaque");
            }
            // stringData is write-only: it is merged into data, base64-encoded.
            if let Some(Value::Object(plain)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                if !object["data"].is_object() {
                    object["data"] = json!({});
                }
                for (key, value) in plain {
                    let text = value.as_str().unwrap_or_default();
                    object["data"][key] = json!(STANDARD.encode(text));
                }
            }
        }
        "namespaces" => {
            let name = object["metadata"]["name"].clone();
            if !object["metadata"]["labels"].is_object() {
                object["metadata"]["labels"] = json!({});
            }
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if object["spec"].is_null() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            if object["status"].is_null() {
                object["status"] = json!({"phase": "Active"});
            }
        }
        _ => {}
    }
}

/// A name for `generateName`: the prefix and five characters the way the API server picks them.
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut random = [0u8; 5];
    let _ = aws_lc_rs::rand::fill(&mut random);
    let suffix: String = random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{prefix}{suffix}")
}

fn create(
    shared: &Shared,
    target: &Target<'_>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let def = target.def;
    let mut object = Value::Object(body_object(request)?);
    place(target, &mut object)?;
    if object["metadata"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        match object["metadata"]["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => {
                object["metadata"]["name"] = json!(generated_name(prefix));
            }
            _ => {
                return Err(ApiError::invalid(
                    def.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        }
    }
    normalize(def, &mut object);
    if def.name == "pods" && object["status"]["phase"].is_null() {
        // No scheduler or kubelet here: a new pod stays Pending, as it would on a cluster
        // without nodes.
        if !object["status"].is_object() {
            object["status"] = json!({});
        }
        object["status"]["phase"] = json!("Pending");
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let created = shared
        .store
        .create(def.name, object, dry_run(request)?)
        .map_err(|error| target.store_error(&name, error))?;
    respond(StatusCode::CREATED, &created)
}

/// Refuses a write based on an older version of the object than the stored one.
fn check_version(
    target: &Target<'_>,
    name: &str,
    given: &Value,
    current: &Value,
) -> Result<(), ApiError> {
    let given = given["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !given.is_empty() && given != current["metadata"]["resourceVersion"] {
        return Err(ApiError::conflict(target.def.group, target.def.name, name));
    }
    Ok(())
}

fn update(
    shared: &Shared,
    target: &Target<'_>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let mut object = Value::Object(body_object(request)?);
    place(target, &mut object)?;
    match object["metadata"]["name"].as_str() {
        None | Some("") => object["metadata"]["name"] = json!(name),
        Some(given) if given == name => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
    }
    let status_only = target.subresource == Some("status");
    let updated = shared
        .store
        .update(
            target.def.name,
            target.namespace,
            name,
            dry_run(request)?,
            |current| {
                check_version(target, name, &object, current)?;
                let mut next = if status_only {
                    let mut next = current.clone();
                    next["status"] = object["status"].clone();
                    next
                } else {
                    object.clone()
                };
                normalize(target.def, &mut next);
                Ok(next)
            },
        )
        .map_err(|error| target.store_error(name, error))?;
    respond(StatusCode::OK, &updated)
}

fn patch(
    shared: &Shared,
    target: &Target<'_>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let content_type = request.header(header::CONTENT_TYPE).unwrap_or_default();
    let Some(kind) = PatchType::from_content_type(content_type) else {
        return Err(if content_type.starts_with("application/apply-patch") {
            ApiError::unsupported_media_type(
                "server-side apply is not supported by the test server",
            )
        } else {
            ApiError::unsupported_media_type(content_type)
        });
    };
    let patch: Value = serde_json::from_slice(&request.body).map_err(|error| {
        ApiError::bad_request(format!("the patch could not be decoded: {error}"))
    })?;
    let patched = shared
        .store
        .update(
            target.def.name,
            target.namespace,
            name,
            dry_run(request)?,
            |current| {
                let mut next = patch::apply(kind, current, &patch).map_err(|message| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
                })?;
                check_version(target, name, &next, current)?;
                normalize(target.def, &mut next);
                Ok(next)
            },
        )
        .map_err(|error| target.store_error(name, error))?;
    respond(StatusCode::OK, &patched)
}

fn delete(
    shared: &Shared,
    target: &Target<'_>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let deleted = shared
        .store
        .delete(target.def.name, target.namespace, name, dry_run(request)?)
        .ok_or_else(|| target.not_found(name))?;
    respond(StatusCode::OK, &deleted)
}

fn delete_collection(
    shared: &Shared,
    target: &Target<'_>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::new(target.namespace, &request.query)?;
    let dry_run = dry_run(request)?;
    let (objects, _) = shared.store.list(target.def.name, target.namespace);
    let mut deleted = Vec::new();
    for object in objects.iter().filter(|object| filter.matches(object)) {
        let metadata = &object["metadata"];
        let name = metadata["name"].as_str().unwrap_or_default();
        let namespace = metadata["namespace"].as_str();
        if let Some(object) = shared
            .store
            .delete(target.def.name, namespace, name, dry_run)
        {
            deleted.push(object);
        }
    }
    let (_, revision) = shared.store.list(target.def.name, target.namespace);
    respond(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", target.def.kind),
            "apiVersion": target.def.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": deleted,
        }),
    )
}

/// `selfsubjectaccessreviews` and `selfsubjectrulesreviews`: the test server allows everything.
fn review(def: &ResourceDef, request: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let mut review = Value::Object(body_object(request)?);
    review["kind"] = json!(def.kind);
    review["apiVersion"] = json!(def.api_version());
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["status"] = if def.name == "selfsubjectaccessreviews" {
        json!({"allowed": true, "reason": "the sod test API server allows everything"})
    } else {
        json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        })
    };
    respond(StatusCode::CREATED, &review)
}

/// `pods/{name}/log`: no container ever ran, so the log is empty.
fn log(shared: &Shared, target: &Target<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    shared
        .store
        .get(target.def.name, target.namespace, name)
        .ok_or_else(|| target.not_found(name))?;
    Ok(wire::text(StatusCode::OK, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `resource namespace name subresource`, `-` for what is absent; `None` if not served.
    fn parse(group: &str, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        target(group, "v1", &segments).ok().map(|t| {
            let parts = [t.namespace, t.name, t.subresource].map(|p| p.unwrap_or("-"));
            format!("{} {}", t.def.name, parts.join(" "))
        })
    }

    #[test]
    fn paths_read_like_request_info() {
        let cases = [
            ("", "namespaces/default/pods", "pods default - -"),
            ("", "pods", "pods - - -"),
            (
                "",
                "namespaces/default/pods/web-1/exec",
                "pods default web-1 exec",
            ),
            ("", "namespaces/default", "namespaces - default -"),
            (
                "",
                "namespaces/default/status",
                "namespaces - default status",
            ),
            ("", "watch/namespaces/default/pods", "pods default - -"),
            (
                "rbac.authorization.k8s.io",
                "clusterroles/admin",
                "clusterroles - admin -",
            ),
        ];
        for (group, path, expected) in cases {
            assert_eq!(parse(group, path).as_deref(), Some(expected), "{path}");
        }
        // Wrong scope, unknown resource or subresource, too deep.
        for (group, path) in [
            ("", "pods/web-1"),
            ("rbac.authorization.k8s.io", "namespaces/x/clusterroles"),
            ("", "namespaces/default/widgets"),
            ("", "namespaces/default/pods/web-1/proxy"),
            ("", "namespaces/default/pods/web-1/exec/more"),
        ] {
            assert_eq!(parse(group, path), None, "{path}");
        }
    }

    #[test]
    fn secrets_and_namespaces_are_normalized() {
        let def = discovery::find_by_name("secrets").expect("secrets");
        let mut secret = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        normalize(def, &mut secret);
        assert_eq!(
            secret,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "type": "Opaque", "data": {"k": "dg=="}})
        );
        let def = discovery::find_by_name("namespaces").expect("namespaces");
        let mut namespace = json!({"metadata": {"name": "team"}});
        normalize(def, &mut namespace);
        assert_eq!(
            namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        assert_eq!(namespace["status"]["phase"], "Active");
    }
}
