//! The three patch types the API server takes from kubectl and `kube`.
//!
//! - `application/merge-patch+json`: RFC 7386.
//! - `application/strategic-merge-patch+json`: applied as a JSON merge patch after dropping the
//!   `$`-directives (`$setElementOrder/...`, `$retainKeys`, `$patch`, ...). Lists are therefore
//!   replaced whole instead of merged by key: enough for the maps (`data`, `labels`,
//!   `annotations`) that `kubectl apply` changes, not for merging one container into a pod.
//! - `application/json-patch+json`: RFC 6902 (`add`, `remove`, `replace`, `move`, `copy`,
//!   `test`).

use serde_json::{Map, Value};

/// The patch types understood, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PatchType {
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    /// From a `Content-Type` (parameters ignored).
    pub(super) fn from_content_type(content_type: &str) -> Option<PatchType> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }
}

/// Applies `patch` of type `kind` to a copy of `target`.
pub(super) fn apply(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, String> {
    let mut result = target.clone();
    match kind {
        PatchType::Merge => merge(&mut result, patch),
        PatchType::Strategic => merge(&mut result, &without_directives(patch)),
        PatchType::Json => json_patch(&mut result, patch)?,
    }
    Ok(result)
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// `patch` without the strategic-merge directives, which would otherwise be stored as keys.
fn without_directives(patch: &Value) -> Value {
    match patch {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key.clone(), without_directives(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

/// RFC 6902, all operations or none.
fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for operation in operations {
        let op = operation["op"].as_str().ok_or("operation without \"op\"")?;
        let path = operation["path"]
            .as_str()
            .ok_or_else(|| format!("{op}: missing \"path\""))?;
        let from = || {
            operation["from"]
                .as_str()
                .ok_or_else(|| format!("{op}: missing \"from\""))
        };
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| format!("{op}: missing \"value\""))
        };
        match op {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" => {
                let moved = remove(target, from()?)?;
                add(target, path, moved)?;
            }
            "copy" => {
                let copied = pointer(target, from()?)?.clone();
                add(target, path, copied)?;
            }
            "test" => {
                if *pointer(target, path)? != value()? {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// The tokens of an RFC 6901 pointer.
fn tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn pointer<'a>(target: &'a Value, path: &str) -> Result<&'a Value, String> {
    target
        .pointer(path)
        .ok_or_else(|| format!("no value at {path}"))
}

/// The container of the last token, and that token.
fn parent<'a>(target: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = tokens(path)?;
    let last = tokens
        .pop()
        .ok_or_else(|| "the whole document cannot be the target".to_owned())?;
    let mut parent_path = String::new();
    for token in &tokens {
        parent_path.push('/');
        parent_path.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    let parent = target
        .pointer_mut(&parent_path)
        .ok_or_else(|| format!("no value at {parent_path:?}"))?;
    Ok((parent, last))
}

fn index(token: &str, len: usize) -> Result<usize, String> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| format!("invalid array index {token:?}"))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = parent(target, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let at = if last == "-" {
                items.len()
            } else {
                index(&last, items.len() + 1)?
            };
            items.insert(at, value);
        }
        _ => return Err(format!("cannot add below a scalar at {path}")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent(target, path)?;
    match parent {
        Value::Object(map) => map
            .remove(&last)
            .ok_or_else(|| format!("no value at {path}")),
        Value::Array(items) => {
            let at = index(&last, items.len())?;
            Ok(items.remove(at))
        }
        _ => Err(format!("no value at {path}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        let patch = json!({"a": "z", "c": {"f": null}, "list": [3], "new": {"x": 1}});
        let result = apply(PatchType::Merge, &target, &patch).expect("applies");
        assert_eq!(
            result,
            json!({"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}})
        );
    }

    #[test]
    fn strategic_directives_are_dropped() {
        let target = json!({"data": {"a": "1"}, "spec": {"containers": [{"name": "web"}]}});
        let patch = json!({
            "data": {"b": "2"},
            "spec": {"$setElementOrder/containers": [{"name": "web"}],
                     "containers": [{"name": "web", "image": "x", "$patch": "merge"}]},
        });
        let result = apply(PatchType::Strategic, &target, &patch).expect("applies");
        assert_eq!(
            result,
            json!({"data": {"a": "1", "b": "2"},
                   "spec": {"containers": [{"name": "web", "image": "x"}]}})
        );
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let target = json!({"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2, 3]});
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "add", "path": "/items/-", "value": 4},
            {"op": "add", "path": "/items/0", "value": 0},
            {"op": "remove", "path": "/items/1"},
            {"op": "copy", "from": "/items/0", "path": "/first"},
            {"op": "move", "from": "/first", "path": "/metadata/first"},
        ]);
        let result = apply(PatchType::Json, &target, &patch).expect("applies");
        assert_eq!(
            result,
            json!({"metadata": {"labels": {"a/b": "2"}, "first": 0}, "items": [0, 2, 3, 4]})
        );
        let failing = json!([{"op": "test", "path": "/items/0", "value": 9}]);
        assert!(apply(PatchType::Json, &target, &failing).is_err());
        let missing = json!([{"op": "remove", "path": "/nope"}]);
        assert!(apply(PatchType::Json, &target, &missing).is_err());
    }
}
