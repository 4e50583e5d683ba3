//! Secret values kept from masked principals, in every form the API returns them.
//!
//! A Secret's values are in its `data` (base64) and `stringData`, and, when it was made with
//! `kubectl apply`, in plain text in its `kubectl.kubernetes.io/last-applied-configuration`
//! annotation. They reach a client as one Secret (`get`), as the items of a `SecretList`
//! (`list`, whose items carry no `kind`), as the `object` of each watch event, as the
//! `object` of each row of a `Table` (`kubectl get` asks for tables; `--sort-by` and custom
//! columns ask for the objects inside them), as `PartialObjectMetadata` (annotations only),
//! and in the answers to writes and dry runs.
//!
//! [`mask_body`] walks the whole JSON document, whatever the request was: every object whose
//! `kind` is `Secret`, and every item of a `SecretList`, has each value of `data` and
//! `stringData` replaced (by [`MASKED_DATA`], valid base64, and [`MASKED`]); every
//! last-applied annotation is masked the same way inside (or replaced whole when it cannot be
//! read). A body that is not JSON is refused for a request about Secrets, and a request about
//! Secrets whose answer is not a kind listed here is refused too: what cannot be read cannot be
//! masked. [`WatchMasker`] does the same for a watch stream, event by event, with a bounded
//! line.

use serde_json::{Map, Value};
use sod_core::masking::{ColumnRef, FieldAction, Masked, Masker, REDACTED};

/// What a `stringData` value, and an unreadable annotation, become.
pub const MASKED: &str = "****";
/// What a `data` value becomes: `****`, base64-encoded, so clients that decode still can.
pub const MASKED_DATA: &str = "KioqKg==";
/// The annotation `kubectl apply` keeps the applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The kinds an answer to a request about Secrets may have.
const SECRET_ANSWER_KINDS: [&str; 7] = [
    "Secret",
    "SecretList",
    "Table",
    "PartialObjectMetadata",
    "PartialObjectMetadataList",
    "Status",
    "WatchEvent",
];

/// Why an answer was withheld.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the answer cannot be masked: {0}")]
pub struct MaskError(pub String);

/// Masks `body`, a JSON answer; `secrets` says whether the request was about Secrets.
///
/// # Errors
/// The body is not one JSON document, or (for Secrets) not a kind this module knows.
///
/// # Examples
/// ```
/// use sod_k8s::masking::{mask_body, MASKED_DATA};
///
/// let body = br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}"#;
/// let masked: serde_json::Value = serde_json::from_slice(&mask_body(body, true).unwrap()).unwrap();
/// assert_eq!(masked["data"]["password"], MASKED_DATA);
/// ```
pub fn mask_body(body: &[u8], secrets: bool) -> Result<Vec<u8>, MaskError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| MaskError(format!("not JSON ({e})")))?;
    check_kind(&value, secrets)?;
    mask_value(&mut value);
    serde_json::to_vec(&value).map_err(|e| MaskError(e.to_string()))
}

/// An answer about Secrets must be a kind this module knows how to mask.
fn check_kind(value: &Value, secrets: bool) -> Result<(), MaskError> {
    if !secrets {
        return Ok(());
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if SECRET_ANSWER_KINDS.contains(&kind) {
        return Ok(());
    }
    Err(MaskError(format!(
        "an answer about Secrets of kind `{kind}`, which sod does not know"
    )))
}

/// What an answer answers: what decides how a masked principal's copy is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answering<'a> {
    /// The request's resource (`configmaps`), or `nonresource`: the `RESOURCE` of the
    /// `k8s.RESOURCE.PATH` columns mask profiles select.
    pub resource: &'a str,
    /// The request was about Secrets.
    pub secrets: bool,
    /// The answer may be free text (`pods/log`): passed through the detectors.
    pub text: bool,
}

/// Masks an answer for a masked principal: Secret values as [`mask_body`] does, then every
/// string the principal's masking profiles select or their detectors find ([`mask_fields`]).
///
/// What the answer is decides, whatever the request looked like: one JSON document; a stream
/// of JSON events, one per line (a watch); free text, only where the request is for text
/// (`pods/log`). Anything else is refused: what cannot be read cannot be masked.
///
/// # Errors
/// The answer is none of those, or (for Secrets) holds a kind this module does not know.
pub fn mask_answer(
    body: &[u8],
    about: Answering<'_>,
    masker: &Masker,
) -> Result<Vec<u8>, MaskError> {
    if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        check_kind(&value, about.secrets)?;
        mask_value(&mut value);
        mask_fields(&mut value, about.resource, masker);
        return serde_json::to_vec(&value).map_err(|e| MaskError(e.to_string()));
    }
    // A watch the request did not look like, or a list of events: event by event, by the
    // same masker a watch goes through (it refuses any line that is not a JSON event).
    if !body.iter().all(u8::is_ascii_whitespace) {
        let mut events =
            WatchMasker::new(about.secrets, usize::MAX).with_masker(masker.clone(), about.resource);
        if let Ok(mut out) = events.push(body)
            && let Ok(rest) = events.finish()
        {
            out.extend(rest);
            return Ok(out);
        }
    }
    if about.text && !about.secrets {
        return Ok(masker.scrub_bytes(body));
    }
    Err(MaskError(
        "an answer that is neither JSON nor a stream of JSON events".into(),
    ))
}

/// Masks every string value of `value`, an answer to a request for `resource`, that
/// `masker`'s profiles select, and runs their detectors over the others.
///
/// Each string is a column `k8s.RESOURCE.PATH` to the masking profiles: the request's
/// resource (`configmaps`, `pods`) and the path of keys from the object down to it, array
/// positions left out. So `column = "k8s.configmaps.data.*"` masks every value of every
/// ConfigMap, and `column = "k8s.pods.spec.containers.env.value"` the environment values of
/// pod specs. Objects are found where the API puts them — the answer itself, the `items` of a
/// list, the `object` of a watch event, the `object` of a `Table` row, the object inside the
/// last-applied annotation — never by a `kind` key elsewhere (a ConfigMap may hold a key
/// `kind`). A `Table`'s cells are values the server computed from the object: when a profile
/// may select anything of the resource, every cell but the name is redacted; otherwise the
/// detectors read them.
///
/// Strings no rule selects pass the profiles' value detectors (e-mail addresses, keys, card
/// numbers in an env value or an annotation), except `kind`, `apiVersion` and the `metadata`
/// clients need as it is (names, uids, resourceVersions, times; labels and annotations are
/// scanned).
///
/// ```
/// use sod_core::masking::{MaskProfile, MaskProfiles, Selector, Strategy};
/// use sod_core::Glob;
///
/// let profiles = MaskProfiles::new([MaskProfile::new("k8s")
///     .rule(Selector::Column(Glob::new("k8s.configmaps.data.*")), Strategy::Redact)]);
/// let masker = profiles.masker(&["k8s".into()]).unwrap();
/// let mut cm = serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1",
///     "metadata": {"name": "app"}, "data": {"DATABASE_HOST": "db.internal", "kind": "x"}});
/// sod_k8s::masking::mask_fields(&mut cm, "configmaps", &masker);
/// assert_ne!(cm["data"]["DATABASE_HOST"], "db.internal");
/// assert_ne!(cm["data"]["kind"], "x");
/// assert_eq!(cm["metadata"]["name"], "app");
/// ```
pub fn mask_fields(value: &mut Value, resource: &str, masker: &Masker) {
    if masker.is_noop() {
        return;
    }
    let cells = masker.may_select_under(&format!("k8s.{resource}."));
    document(value, resource, masker, cells);
}

/// An answer, or a part of one where the API puts whole objects.
fn document(value: &mut Value, resource: &str, masker: &Masker, cells: bool) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            for item in items {
                document(item, resource, masker, cells);
            }
        }
        return;
    };
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    // A watch event: `{"type": …, "object": {…}}`.
    if kind.is_empty() && map.contains_key("type") && map.contains_key("object") {
        if let Some(object) = map.get_mut("object") {
            document(object, resource, masker, cells);
        }
        return;
    }
    if kind == "Table" {
        if let Some(Value::Array(rows)) = map.get_mut("rows") {
            for row in rows {
                if let Some(object) = row.get_mut("object") {
                    document(object, resource, masker, cells);
                }
                if let Some(Value::Array(values)) = row.get_mut("cells") {
                    for cell in values.iter_mut().skip(1) {
                        if cells && !cell.is_number() && !cell.is_null() {
                            *cell = Value::String(REDACTED.to_owned());
                        } else if let Value::String(text) = cell {
                            // Computed by the server from the object: the detectors read it.
                            let mut out = Vec::new();
                            match masker.apply(FieldAction::Scan, text.as_bytes(), &mut out) {
                                Masked::Unchanged => {}
                                Masked::Replaced => {
                                    *text = String::from_utf8_lossy(&out).into_owned();
                                }
                                Masked::Null => *cell = Value::Null,
                            }
                        }
                    }
                }
            }
        }
        return;
    }
    if kind.ends_with("List") {
        if let Some(Value::Array(items)) = map.get_mut("items") {
            for item in items {
                document(item, resource, masker, cells);
            }
        }
        return;
    }
    walk(value, resource, masker, &mut String::new());
}

/// One object's strings, by path from its root.
fn walk(value: &mut Value, resource: &str, masker: &Masker, path: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if path.is_empty() && (key == "kind" || key == "apiVersion") {
                    continue;
                }
                if path == "metadata.annotations" && key == LAST_APPLIED {
                    applied(child, resource, masker);
                    continue;
                }
                let at = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(child, resource, masker, path);
                path.truncate(at);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, resource, masker, path);
            }
        }
        Value::String(text) => {
            let column = ColumnRef::new("k8s", resource, path.as_str());
            // A rule that selects the value masks it; otherwise the detectors read it, except
            // the object's identity and bookkeeping, which clients need as they are.
            let action = match masker.strategy_for(&column) {
                Some(strategy) => FieldAction::Mask(strategy),
                None if bookkeeping(path) => FieldAction::Keep,
                None => FieldAction::Scan,
            };
            let mut out = Vec::new();
            match masker.apply(action, text.as_bytes(), &mut out) {
                Masked::Unchanged => {}
                Masked::Replaced => *text = String::from_utf8_lossy(&out).into_owned(),
                Masked::Null => *value = Value::Null,
            }
        }
        _ => {}
    }
}

/// The last-applied annotation: the applied object, masked as an object of the same
/// resource; replaced whole when it cannot be read.
fn applied(annotation: &mut Value, resource: &str, masker: &Masker) {
    let masked = annotation
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|mut object| {
            walk(&mut object, resource, masker, &mut String::new());
            serde_json::to_string(&object).ok()
        });
    *annotation = Value::String(masked.unwrap_or_else(|| MASKED.to_owned()));
}

/// Whether `path` (from an object's root) is metadata clients need unchanged: names, ids,
/// versions, times, owners. Labels and annotations are not: they are free text.
fn bookkeeping(path: &str) -> bool {
    let Some(field) = path.strip_prefix("metadata.") else {
        return false;
    };
    !(field.starts_with("labels.") || field.starts_with("annotations."))
}

/// Masks every Secret value inside `value` (see the module docs).
pub fn mask_value(value: &mut Value) {
    match value {
        Value::Object(object) => mask_object(object),
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        _ => {}
    }
}

fn mask_object(object: &mut Map<String, Value>) {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind == "Secret" {
        mask_secret(object);
    }
    if kind == "SecretList"
        && let Some(Value::Array(items)) = object.get_mut("items")
    {
        for item in items.iter_mut() {
            if let Value::Object(secret) = item {
                mask_secret(secret);
            }
        }
    }
    if let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
        && let Some(applied) = annotations.get_mut(LAST_APPLIED)
    {
        *applied = Value::String(mask_last_applied(applied.as_str().unwrap_or("")));
    }
    // Everything below: items, rows and their objects, watch events' objects, a Status's
    // details — any of them may hold a Secret.
    for child in object.values_mut() {
        mask_value(child);
    }
}

/// Replaces every value of `data` and `stringData`.
fn mask_secret(secret: &mut Map<String, Value>) {
    for (field, masked) in [("data", MASKED_DATA), ("stringData", MASKED)] {
        match secret.get_mut(field) {
            Some(Value::Object(values)) => {
                for v in values.values_mut() {
                    *v = Value::String(masked.to_owned());
                }
            }
            Some(Value::Null) | None => {}
            // Not a map of strings: nothing of it may pass.
            Some(other) => *other = Value::String(MASKED.to_owned()),
        }
    }
}

/// The annotation with any Secret inside masked; replaced whole if it is not JSON.
fn mask_last_applied(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(mut applied) => {
            mask_value(&mut applied);
            serde_json::to_string(&applied).unwrap_or_else(|_| MASKED.to_owned())
        }
        Err(_) => MASKED.to_owned(),
    }
}

/// Masks a watch stream (one JSON event per line) event by event, holding at most one line of
/// `max_line` bytes.
#[derive(Debug)]
pub struct WatchMasker {
    line: Vec<u8>,
    max_line: usize,
    secrets: bool,
    masker: Masker,
    resource: String,
}

impl WatchMasker {
    /// A masker for a watch about Secrets (`secrets`) or not, with lines of at most `max_line`
    /// bytes.
    pub fn new(secrets: bool, max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            max_line,
            secrets,
            masker: Masker::none(),
            resource: String::new(),
        }
    }

    /// Also masks what `masker`'s profiles select in each event, as answers to a request for
    /// `resource` ([`mask_fields`]).
    pub fn with_masker(mut self, masker: Masker, resource: &str) -> Self {
        self.masker = masker;
        self.resource = resource.to_owned();
        self
    }

    /// Takes the next bytes of the stream; returns the masked events they complete.
    ///
    /// # Errors
    /// A line longer than the limit, or an event that cannot be masked: the stream must end.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, MaskError> {
        let mut out = Vec::new();
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.take(&bytes[..end])?;
            let line = std::mem::take(&mut self.line);
            self.event(&line, &mut out)?;
            bytes = &bytes[end + 1..];
        }
        self.take(bytes)?;
        Ok(out)
    }

    /// The end of the stream: a last event without its newline.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn finish(&mut self) -> Result<Vec<u8>, MaskError> {
        let line = std::mem::take(&mut self.line);
        let mut out = Vec::new();
        if !line.iter().all(u8::is_ascii_whitespace) {
            self.event(&line, &mut out)?;
        }
        Ok(out)
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), MaskError> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(MaskError(format!(
                "a watch event longer than {} bytes",
                self.max_line
            )));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn event(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), MaskError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let mut event: Value = serde_json::from_slice(line)
            .map_err(|e| MaskError(format!("a watch event that is not JSON ({e})")))?;
        if self.secrets {
            let kind = event
                .get("object")
                .and_then(|o| o.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !SECRET_ANSWER_KINDS.contains(&kind) {
                return Err(MaskError(format!(
                    "a watch event about Secrets holding a `{kind}`, which sod does not know"
                )));
            }
        }
        mask_value(&mut event);
        mask_fields(&mut event, &self.resource, &self.masker);
        serde_json::to_writer(&mut *out, &event).map_err(|e| MaskError(e.to_string()))?;
        out.push(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests;
