//! Just enough of the Kubernetes protobuf encoding to read the request bodies kubectl sends that
//! way: its typed clients (`kubectl auth can-i`, `kubectl create configmap|secret|namespace`)
//! post `application/vnd.kubernetes.protobuf`, while accepting JSON answers.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` (1: typeMeta {1: apiVersion, 2: kind},
//! 2: raw, the object's own message). The objects read are ConfigMap, Secret, Namespace,
//! SelfSubjectAccessReview and SelfSubjectRulesReview, with the ObjectMeta fields a client sets
//! (name, generateName, namespace, resourceVersion, labels, annotations, finalizers); unknown
//! fields are skipped. Other kinds are refused (415): send them as JSON. Field numbers are those
//! of `k8s.io/api/*/generated.proto` and `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The media type of protobuf bodies.
pub(super) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field's value on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// fixed32/fixed64: none of the fields read has these types.
    Fixed,
}

fn varint(data: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or("truncated varint")?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".to_owned())
}

fn take<'a>(data: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if data.len() < len {
        return Err("truncated field".to_owned());
    }
    let (head, rest) = data.split_at(len);
    *data = rest;
    Ok(head)
}

/// Every `(field number, value)` of a message, in order.
fn fields(mut data: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let key = varint(&mut data)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut data)?),
            1 => {
                take(&mut data, 8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut data)?).map_err(|e| e.to_string())?;
                Wire::Bytes(take(&mut data, len)?)
            }
            5 => {
                take(&mut data, 4)?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        fields.push((key >> 3, value));
    }
    Ok(fields)
}

fn bytes(wire: Wire<'_>) -> Result<&[u8], String> {
    match wire {
        Wire::Bytes(bytes) => Ok(bytes),
        _ => Err("expected a length-delimited field".to_owned()),
    }
}

fn string(wire: Wire<'_>) -> Result<String, String> {
    String::from_utf8(bytes(wire)?.to_vec()).map_err(|e| e.to_string())
}

fn boolean(wire: Wire<'_>) -> Result<bool, String> {
    match wire {
        Wire::Varint(value) => Ok(value != 0),
        _ => Err("expected a varint field".to_owned()),
    }
}

/// A map entry (1: key, 2: value); the value as text, or base64 for `bytes` values.
fn map_entry(wire: Wire<'_>, binary: bool) -> Result<(String, Value), String> {
    let (mut key, mut value) = (String::new(), Vec::new());
    for (number, field) in fields(bytes(wire)?)? {
        match number {
            1 => key = string(field)?,
            2 => value = bytes(field)?.to_vec(),
            _ => {}
        }
    }
    let value = if binary {
        json!(STANDARD.encode(value))
    } else {
        json!(String::from_utf8(value).map_err(|e| e.to_string())?)
    };
    Ok((key, value))
}

/// Inserts map entry `wire` into `object[key]`.
fn insert_entry(object: &mut Value, key: &str, wire: Wire<'_>, binary: bool) -> Result<(), String> {
    let (name, value) = map_entry(wire, binary)?;
    if !object[key].is_object() {
        object[key] = json!({});
    }
    object[key][name] = value;
    Ok(())
}

fn push_string(object: &mut Value, key: &str, wire: Wire<'_>) -> Result<(), String> {
    if !object[key].is_array() {
        object[key] = json!([]);
    }
    if let Some(items) = object[key].as_array_mut() {
        items.push(json!(string(wire)?));
    }
    Ok(())
}

/// Sets `object[key]` to a string field, unless it is empty: proto2 writes every optional
/// string, where JSON would omit an empty one.
fn set_string(object: &mut Value, key: &str, wire: Wire<'_>) -> Result<(), String> {
    let value = string(wire)?;
    if !value.is_empty() {
        object[key] = json!(value);
    }
    Ok(())
}

fn object_meta(data: &[u8]) -> Result<Value, String> {
    let mut meta = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => set_string(&mut meta, "name", wire)?,
            2 => set_string(&mut meta, "generateName", wire)?,
            3 => set_string(&mut meta, "namespace", wire)?,
            6 => set_string(&mut meta, "resourceVersion", wire)?,
            11 => insert_entry(&mut meta, "labels", wire, false)?,
            12 => insert_entry(&mut meta, "annotations", wire, false)?,
            14 => push_string(&mut meta, "finalizers", wire)?,
            _ => {}
        }
    }
    Ok(meta)
}

/// A message of string fields, by field number.
fn strings(data: &[u8], names: &[(u64, &str)]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        if let Some((_, name)) = names.iter().find(|(n, _)| *n == number) {
            set_string(&mut object, name, wire)?;
        }
    }
    Ok(object)
}

fn config_map(data: &[u8]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => object["metadata"] = object_meta(bytes(wire)?)?,
            2 => insert_entry(&mut object, "data", wire, false)?,
            3 => insert_entry(&mut object, "binaryData", wire, true)?,
            4 => object["immutable"] = json!(boolean(wire)?),
            _ => {}
        }
    }
    Ok(object)
}

fn secret(data: &[u8]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => object["metadata"] = object_meta(bytes(wire)?)?,
            2 => insert_entry(&mut object, "data", wire, true)?,
            3 => set_string(&mut object, "type", wire)?,
            4 => insert_entry(&mut object, "stringData", wire, false)?,
            5 => object["immutable"] = json!(boolean(wire)?),
            _ => {}
        }
    }
    Ok(object)
}

fn namespace(data: &[u8]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => object["metadata"] = object_meta(bytes(wire)?)?,
            2 => {
                let mut spec = json!({});
                for (number, wire) in fields(bytes(wire)?)? {
                    if number == 1 {
                        push_string(&mut spec, "finalizers", wire)?;
                    }
                }
                object["spec"] = spec;
            }
            _ => {}
        }
    }
    Ok(object)
}

fn access_review(data: &[u8]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => object["metadata"] = object_meta(bytes(wire)?)?,
            2 => {
                let mut spec = json!({});
                for (number, wire) in fields(bytes(wire)?)? {
                    match number {
                        1 => {
                            spec["resourceAttributes"] = strings(
                                bytes(wire)?,
                                &[
                                    (1, "namespace"),
                                    (2, "verb"),
                                    (3, "group"),
                                    (4, "version"),
                                    (5, "resource"),
                                    (6, "subresource"),
                                    (7, "name"),
                                ],
                            )?;
                        }
                        2 => {
                            spec["nonResourceAttributes"] =
                                strings(bytes(wire)?, &[(1, "path"), (2, "verb")])?;
                        }
                        _ => {}
                    }
                }
                object["spec"] = spec;
            }
            _ => {}
        }
    }
    Ok(object)
}

fn rules_review(data: &[u8]) -> Result<Value, String> {
    let mut object = json!({});
    for (number, wire) in fields(data)? {
        match number {
            1 => object["metadata"] = object_meta(bytes(wire)?)?,
            2 => object["spec"] = strings(bytes(wire)?, &[(1, "namespace")])?,
            _ => {}
        }
    }
    Ok(object)
}

/// The JSON form of a protobuf request body. `Err` says why it cannot be read.
pub(super) fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let (mut type_meta, mut raw) = (json!({}), &[][..]);
    for (number, wire) in fields(envelope)? {
        match number {
            1 => type_meta = strings(bytes(wire)?, &[(1, "apiVersion"), (2, "kind")])?,
            2 => raw = bytes(wire)?,
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or_default();
    let mut object = match kind {
        "ConfigMap" => config_map(raw)?,
        "Secret" => secret(raw)?,
        "Namespace" => namespace(raw)?,
        "SelfSubjectAccessReview" => access_review(raw)?,
        "SelfSubjectRulesReview" => rules_review(raw)?,
        other => {
            return Err(format!(
                "the test server reads protobuf bodies of ConfigMap, Secret, Namespace and \
                 self-subject reviews only, not {other:?}: send JSON"
            ));
        }
    };
    object["apiVersion"] = type_meta["apiVersion"].clone();
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn field(number: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2, u8::try_from(content.len()).expect("short")];
        out.extend_from_slice(content);
        out
    }

    fn entry(number: u8, key: &str, value: &[u8]) -> Vec<u8> {
        field(
            number,
            &[field(1, key.as_bytes()), field(2, value)].concat(),
        )
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn reads_a_secret() {
        let meta = [
            field(1, b"s1"),
            field(2, b""),
            field(3, b"default"),
            entry(11, "app", b"web"),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            entry(2, "password", b"\x00pw"),
            field(3, b"Opaque"),
            vec![5 << 3, 1],
        ]
        .concat();
        let secret = decode(&envelope("v1", "Secret", &raw)).expect("decodes");
        assert_eq!(
            secret,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": true,
                "metadata": {"name": "s1", "namespace": "default", "labels": {"app": "web"}},
                "data": {"password": "AHB3"},
            })
        );
    }

    #[test]
    fn reads_an_access_review_and_refuses_other_kinds() {
        let attributes = [field(2, b"get"), field(5, b"pods"), field(1, b"default")].concat();
        let raw = [field(1, &[]), field(2, &field(1, &attributes))].concat();
        let review = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &raw,
        ))
        .expect("decodes");
        assert_eq!(
            review["spec"],
            json!({"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}})
        );
        assert!(decode(&envelope("v1", "Pod", &[])).is_err());
        assert!(decode(b"{}").is_err());
        assert!(decode(&[MAGIC, &[0x0a, 0x05, 0x01]].concat()).is_err());
    }
}
