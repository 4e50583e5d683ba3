use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn masked(body: &Value, secrets: bool) -> Value {
    let bytes = serde_json::to_vec(body).expect("json");
    serde_json::from_slice(&mask_body(&bytes, secrets).expect("masked")).expect("json out")
}

fn secret(name: &str, password: &str) -> Value {
    let applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {"password": password},
    });
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {LAST_APPLIED: applied.to_string(), "team": "db"},
        },
        "type": "Opaque",
        "data": {"password": base64(password), "username": base64("admin")},
        "stringData": {"password": password},
    })
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Neither the value nor its base64 appears anywhere in `v`.
fn hides(v: &Value, secret: &str) -> bool {
    let text = v.to_string();
    !text.contains(secret) && !text.contains(&base64(secret))
}

#[test]
fn a_secret_is_masked_everywhere_it_holds_values() {
    let out = masked(&secret("db", "hunter2-hunter2"), true);
    assert_eq!(out["data"]["password"], MASKED_DATA);
    assert_eq!(out["data"]["username"], MASKED_DATA);
    assert_eq!(out["stringData"]["password"], MASKED);
    assert_eq!(out["metadata"]["name"], "db");
    assert_eq!(out["metadata"]["annotations"]["team"], "db");
    assert_eq!(out["type"], "Opaque");
    let applied: Value = serde_json::from_str(
        out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .expect("still a string"),
    )
    .expect("still JSON");
    assert_eq!(applied["stringData"]["password"], MASKED);
    assert!(hides(&out, "hunter2-hunter2"));
}

#[test]
fn lists_tables_metadata_events_and_mixed_lists() {
    let list = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {},
    "items": [
        {"metadata": {"name": "a"}, "data": {"k": base64("value-one-1")}},
        {"metadata": {"name": "b", "annotations": {LAST_APPLIED: secret("b", "value-two-2").to_string()}},
         "stringData": {"k": "value-two-2"}},
    ]});
    let out = masked(&list, true);
    assert!(
        hides(&out, "value-one-1") && hides(&out, "value-two-2"),
        "{out}"
    );
    assert_eq!(out["items"][0]["metadata"]["name"], "a");

    let table = json!({"apiVersion": "meta.k8s.io/v1", "kind": "Table",
    "columnDefinitions": [{"name": "Name", "type": "string"}],
    "rows": [
        {"cells": ["db"], "object": secret("db", "table-secret-3")},
        {"cells": ["x"], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "x", "annotations": {LAST_APPLIED: secret("x", "meta-secret-4").to_string()}}}},
    ]});
    let out = masked(&table, true);
    assert!(
        hides(&out, "table-secret-3") && hides(&out, "meta-secret-4"),
        "{out}"
    );
    assert_eq!(out["rows"][0]["cells"][0], "db");

    let metadata = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "items": [{"metadata": {"name": "y", "annotations": {LAST_APPLIED: secret("y", "meta-secret-5").to_string()}}}]});
    assert!(hides(&masked(&metadata, true), "meta-secret-5"));

    // `kubectl get secret,configmap`: a List of several kinds, asked for as not about Secrets.
    let mixed = json!({"kind": "List", "apiVersion": "v1", "items": [
        secret("s", "mixed-secret-6"),
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"k": "plain"}},
    ]});
    let out = masked(&mixed, false);
    assert!(hides(&out, "mixed-secret-6"), "{out}");
    assert_eq!(out["items"][1]["data"]["k"], "plain");

    // A Status carrying the object that failed (a conflict, a dry run).
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "details": {"causes": [], "object": secret("z", "status-secret-7")}});
    assert!(hides(&masked(&status, true), "status-secret-7"));
}

#[test]
fn what_cannot_be_read_is_not_passed_for_secrets() {
    assert!(mask_body(b"not json", true).is_err());
    assert!(mask_body(b"\x08\x01protobuf", true).is_err());
    // Not JSON is not passed, Secrets or not: free text passes only as an answer for text.
    assert!(mask_body(b"log line\n", false).is_err());
    let masker = sod_core::masking::MaskProfiles::new([sod_core::masking::MaskProfile::new("p")])
        .masker(&["p".into()])
        .expect("masker");
    let about = |resource, text| Answering {
        resource,
        secrets: false,
        text,
    };
    assert!(mask_answer(b"log line\n", about("configmaps", false), &masker).is_err());
    assert_eq!(
        mask_answer(b"log line\n", about("pods", true), &masker).expect("text"),
        b"log line\n"
    );
    // Events a request did not look like (`watch=%FF` read as a list): event by event.
    let events = b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"data\":{\"k\":\"c2VjcmV0LWV2ZW50\"}}}\n{\"type\":\"DELETED\",\"object\":{\"kind\":\"Secret\",\"data\":{\"k\":\"c2VjcmV0LWV2ZW50\"}}}\n";
    let out = mask_answer(events, about("configmaps", false), &masker).expect("events");
    assert!(!String::from_utf8_lossy(&out).contains("c2VjcmV0LWV2ZW50"));
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2);
    let config_map = json!({"kind": "ConfigMap", "data": {"k": "v"}}).to_string();
    assert!(mask_body(config_map.as_bytes(), true).is_err());
    // Odd shapes are masked whole.
    let odd =
        json!({"kind": "Secret", "data": "c2VjcmV0LXNoYXBlLTg=", "stringData": ["secret-shape-8"]});
    let out = masked(&odd, true);
    assert!(hides(&out, "secret-shape-8"), "{out}");
    // An annotation that is not JSON is replaced.
    let bad =
        json!({"kind": "Secret", "metadata": {"annotations": {LAST_APPLIED: "password: plain-9"}}});
    assert_eq!(
        masked(&bad, true)["metadata"]["annotations"][LAST_APPLIED],
        MASKED
    );
}

#[test]
fn watch_events_are_masked_one_by_one_across_chunks() {
    let event = |t: &str, pw: &str| json!({"type": t, "object": secret("db", pw)}).to_string();
    let stream = format!(
        "{}\n{}\n{}",
        event("ADDED", "watch-secret-10"),
        event("MODIFIED", "watch-secret-11"),
        event("DELETED", "watch-secret-12")
    );
    for chunk in [1, 7, 64, stream.len()] {
        let mut masker = WatchMasker::new(true, 1 << 16);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(chunk) {
            out.extend(masker.push(piece).expect("masks"));
        }
        out.extend(masker.finish().expect("ends"));
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 3, "{text}");
        for pw in ["watch-secret-10", "watch-secret-11", "watch-secret-12"] {
            assert!(!text.contains(pw) && !text.contains(&base64(pw)), "{text}");
        }
    }
    // A bookmark passes; a line past the limit ends the stream.
    let mut masker = WatchMasker::new(true, 64);
    let bookmark = b"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Secret\",\"metadata\":{}}}\n";
    assert!(!masker.push(bookmark).expect("passes").is_empty());
    assert!(masker.push(&[b'x'; 65]).is_err());
    // An event about Secrets holding something else ends it too.
    let mut masker = WatchMasker::new(true, 1 << 16);
    assert!(
        masker
            .push(b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\"}}\n")
            .is_err()
    );
    assert!(WatchMasker::new(true, 100).push(b"not json\n").is_err());
}

proptest! {
    /// Whatever a Secret holds, and however its values are spread over the forms above, none
    /// of them (nor their base64) is in the masked answer.
    #[test]
    fn no_value_of_a_secret_survives(
        values in prop::collection::vec("[A-Za-z0-9+/=_.-]{8,24}", 1..5),
        form in 0usize..5,
    ) {
        let mut s = secret("p", &values[0]);
        for (i, v) in values.iter().enumerate() {
            s["data"][format!("k{i}")] = Value::String(base64(v));
            s["stringData"][format!("k{i}")] = Value::String(v.clone());
        }
        let body = match form {
            0 => s,
            1 => json!({"kind": "SecretList", "items": [s]}),
            2 => json!({"kind": "Table", "rows": [{"cells": ["p"], "object": s}]}),
            3 => json!({"kind": "WatchEvent", "type": "ADDED", "object": s}),
            _ => json!({"kind": "PartialObjectMetadata", "metadata": {"annotations": {LAST_APPLIED: s.to_string()}}}),
        };
        let out = masked(&body, true);
        for v in &values {
            prop_assert!(hides(&out, v), "{} in {}", v, out);
        }
    }
}
