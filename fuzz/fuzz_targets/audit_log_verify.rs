//! The audit log reader: record decoding and chain verification never panic, and no edit of a
//! signed log verifies (invariant I5).
//!
//! The input is used twice:
//!
//! 1. As a log text, one record per line: every line is decoded (a record that decodes
//!    re-encodes to a record with the same fields) and the text is verified.
//! 2. As an edit of a valid, signed log ([`original`]): two bytes of offset, one byte of
//!    length to delete there, and the rest inserted in its place. The edited text is verified
//!    against the fixed key and the checkpoint exported at the original's end: it may verify
//!    only if the edit changed nothing. Every byte flip, deletion, duplication or splice of a
//!    signed log must be caught.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sod_audit::record::{self, Hash};
use sod_audit::{Checkpoint, CheckpointKey, Decision, Event, Outcome, verify};

static KEY: LazyLock<CheckpointKey> =
    LazyLock::new(|| CheckpointKey::from_seed("fuzz", &[9; 32]).expect("a 32-byte seed is a key"));

/// A small signed log built deterministically (fixed timestamps, deterministic ed25519), and the
/// checkpoint exported at its end.
static ORIGINAL: LazyLock<(String, Checkpoint)> = LazyLock::new(original);

fn original() -> (String, Checkpoint) {
    let events = [
        Event::OperationAttempted {
            session: "s-1".into(),
            operation: 0,
            principal: "planner-1".into(),
            on_behalf_of: Some("alice".into()),
            capability: Some("cap-1".into()),
            target: "pg/prod".into(),
            kind: "write".into(),
            text: "UPDATE orders SET status = $1 WHERE id = $2".into(),
            objects: vec!["public.orders".into()],
            fingerprint: "ab".repeat(32),
            decision: Decision {
                effect: "require_approval".into(),
                code: None,
                rule: Some("writes-need-approval".into()),
                reason: "writes to orders need one approval — ünïcode".into(),
            },
            approvals: vec!["apr-7".into()],
        },
        Event::OperationCompleted {
            session: "s-1".into(),
            operation: 0,
            outcome: Outcome::Ok,
            rows: Some(1),
            bytes: None,
            duration_us: 812,
            error_code: None,
        },
        Event::session_ended("s-1", "client closed"),
    ];
    let mut lines = Vec::new();
    let mut prev = Hash::GENESIS;
    for (seq, event) in events.iter().enumerate() {
        let (line, hash) =
            record::encode("gw-fuzz", seq as u64, 1_800_000_000_000_000, prev, event);
        lines.push(line);
        prev = hash;
    }
    let cp = KEY.sign("gw-fuzz", lines.len() as u64 - 1, prev);
    let (line, _) = record::encode(
        "gw-fuzz",
        lines.len() as u64,
        1_800_000_000_000_001,
        prev,
        &Event::Checkpoint(cp.clone()),
    );
    lines.push(line);
    let text = lines.join("\n");
    let options = verify::Options::new([KEY.public()])
        .stream("gw-fuzz")
        .exported(cp.clone());
    verify::lines(text.split('\n'), &options).expect("the original log verifies");
    (text, cp)
}

fuzz_target!(|data: &[u8]| {
    let (original, exported) = &*ORIGINAL;
    let options = verify::Options::new([KEY.public()])
        .stream("gw-fuzz")
        .exported(exported.clone());

    check_lines(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify::lines(text.split('\n'), &options);
    }

    let [a, b, del, inserted @ ..] = data else {
        return;
    };
    let at = usize::from(u16::from_le_bytes([*a, *b])) % (original.len() + 1);
    let end = (at + usize::from(*del)).min(original.len());
    let mut edited = original.as_bytes()[..at].to_vec();
    edited.extend_from_slice(inserted);
    edited.extend_from_slice(&original.as_bytes()[end..]);
    check_lines(&edited);
    let Ok(text) = std::str::from_utf8(&edited) else {
        return;
    };
    if let Ok(report) = verify::lines(text.split('\n'), &options) {
        assert_eq!(text, original, "an edited log verified: {report:?}");
    }
});

/// Decodes every line; a record that decodes round-trips through `encode`.
fn check_lines(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let Ok(rec) = record::decode(line) else {
            continue;
        };
        let (again, hash) = record::encode(&rec.stream, rec.seq, rec.ts_us, rec.prev, &rec.event);
        let back = record::decode(again.as_bytes()).expect("an encoded record decodes");
        assert_eq!(back.hash, hash);
        assert_eq!(
            (back.stream, back.seq, back.ts_us, back.prev, back.event),
            (rec.stream, rec.seq, rec.ts_us, rec.prev, rec.event)
        );
    }
}
