//! The Kubernetes watch-stream masker on arbitrary bytes, in arbitrary chunks: never panics,
//! holds at most one line of its limit, and every line it lets out is one JSON event in which
//! no Secret keeps a value (every `data` value of a `Secret` is the masked marker).
//!
//! The first byte sets the chunk size (1 to 256), the second whether the watch is about
//! Secrets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sod_k8s::masking::{MASKED_DATA, WatchMasker};

const MAX_LINE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let [chunk, secrets, rest @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let mut masker = WatchMasker::new(secrets & 1 == 1, MAX_LINE);
    let mut out = Vec::new();
    for piece in rest.chunks(chunk) {
        match masker.push(piece) {
            Ok(bytes) => out.extend(bytes),
            Err(_) => return check(&out),
        }
    }
    if let Ok(bytes) = masker.finish() {
        out.extend(bytes);
    }
    check(&out);
});

fn check(out: &[u8]) {
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let event: Value = serde_json::from_slice(line).expect("every line out is JSON");
        walk(&event);
    }
}

/// No `Secret` anywhere holds a `data` value other than the marker.
fn walk(v: &Value) {
    match v {
        Value::Object(o) => {
            if o.get("kind").and_then(Value::as_str) == Some("Secret")
                && let Some(Value::Object(values)) = o.get("data")
            {
                assert!(values.values().all(|v| v == MASKED_DATA), "{o:?}");
            }
            o.values().for_each(walk);
        }
        Value::Array(items) => items.iter().for_each(walk),
        _ => {}
    }
}
