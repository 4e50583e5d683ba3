//! Records and their line format.
//!
//! A record is one JSON object on one line:
//!
//! ```text
//! {"v":1,"stream":"gw-1","seq":7,"ts_us":1763780000000000,"prev":"9f…","event":{…},"hash":"c4…"}
//! ```
//!
//! `hash` is SHA-256 over a domain tag and the *exact bytes* of the line without its `hash`
//! member (`…,"event":{…}}`), so verification never depends on re-serializing JSON the same
//! way. `prev` is the previous record's hash (all zeros for the first record of a stream), and
//! `seq` counts from 0 without gaps. Editing any byte, removing, inserting or reordering
//! records breaks the chain at the first affected record.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Event;

/// The record format version this crate writes and reads.
pub const VERSION: u32 = 1;

const DOMAIN: &[u8] = b"sod-audit-record-v1\n";
const HASH_PREFIX: &str = ",\"hash\":\"";

/// A SHA-256 hash, written as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of a stream's first record.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        sod_core::hex::encode(&self.0)
    }

    /// Parses exactly 64 lowercase hex digits (one spelling per hash, so a log has one form).
    pub fn from_hex(s: &str) -> Option<Hash> {
        sod_core::hex::decode_lower(s).map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// One record of the log, decoded and checked against its own hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// The chain this record belongs to (one per gateway).
    pub stream: String,
    /// Position in the stream, from 0.
    pub seq: u64,
    /// When it was appended, in microseconds since the Unix epoch.
    pub ts_us: u64,
    /// The previous record's hash.
    pub prev: Hash,
    /// What happened.
    pub event: Event,
    /// This record's hash.
    pub hash: Hash,
}

#[derive(Serialize)]
struct Unhashed<'a> {
    v: u32,
    stream: &'a str,
    seq: u64,
    ts_us: u64,
    prev: Hash,
    event: &'a Event,
}

/// Why a line is not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not UTF-8.
    #[error("the line is not UTF-8")]
    NotUtf8,
    /// The line does not end with a `hash` member.
    #[error("the line does not end with a \"hash\" member")]
    NoHash,
    /// The stored hash does not match the line's bytes.
    #[error("the record's hash does not match its contents (stored {stored}, computed {computed})")]
    HashMismatch {
        /// The hash in the line.
        stored: String,
        /// The hash of the line's bytes.
        computed: String,
    },
    /// The line is not a record of this format.
    #[error("the line is not a valid record: {0}")]
    Malformed(String),
    /// A format version this crate does not read.
    #[error("record format version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
}

/// SHA-256 over the domain tag and `parts` in order (the parts of one line's bytes).
fn digest(parts: &[&[u8]]) -> Hash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(DOMAIN);
    for part in parts {
        ctx.update(part);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// Encodes a record as its line (without the newline) and returns the line and its hash.
pub fn encode(stream: &str, seq: u64, ts_us: u64, prev: Hash, event: &Event) -> (String, Hash) {
    let unhashed = Unhashed {
        v: VERSION,
        stream,
        seq,
        ts_us,
        prev,
        event,
    };
    // Serializing plain data into a String cannot fail: every map key is a string.
    #[allow(clippy::expect_used)]
    let mut line = serde_json::to_string(&unhashed).expect("events serialize to JSON");
    let hash = digest(&[line.as_bytes()]);
    line.pop(); // the closing brace
    line.push_str(HASH_PREFIX);
    line.push_str(&hash.to_hex());
    line.push_str("\"}");
    (line, hash)
}

/// Checks a line against the hash at its end; returns the line as text and that hash.
fn check_hash(line: &[u8]) -> Result<(&str, Hash), LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    // `…,"hash":"<64 hex>"}`, split as bytes: the split point may fall inside a character of
    // a line that is not ours.
    let suffix_len = HASH_PREFIX.len() + 64 + 2;
    if line.len() < suffix_len + 2 {
        return Err(LineError::NoHash);
    }
    let (body, suffix) = line.split_at(line.len() - suffix_len);
    let stored = suffix
        .strip_prefix(HASH_PREFIX.as_bytes())
        .and_then(|s| s.strip_suffix(b"\"}"))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(Hash::from_hex)
        .ok_or(LineError::NoHash)?;
    // The hashed bytes are the line without its hash member: the body and its closing brace.
    let computed = digest(&[body, b"}"]);
    if computed != stored {
        return Err(LineError::HashMismatch {
            stored: stored.to_hex(),
            computed: computed.to_hex(),
        });
    }
    Ok((text, stored))
}

/// Checks what a parsed line says against what was hashed.
fn check_fields(v: u32, hash: Hash, stored: Hash) -> Result<(), LineError> {
    if v != VERSION {
        return Err(LineError::Version(v));
    }
    if hash != stored {
        // A second "hash" member earlier in the line would make the parsed value differ from
        // the suffix that was checked.
        return Err(LineError::Malformed("more than one \"hash\" member".into()));
    }
    Ok(())
}

/// Decodes one line (without its newline) and checks it against its own hash. Chain links
/// (`seq`, `prev`) are checked by [`verify`](crate::verify).
pub fn decode(line: &[u8]) -> Result<Record, LineError> {
    let (text, stored) = check_hash(line)?;
    let record: Record =
        serde_json::from_str(text).map_err(|e| LineError::Malformed(e.to_string()))?;
    check_fields(record.v, record.hash, stored)?;
    Ok(record)
}

/// What chain verification needs of a record: where it sits in the chain, and its checkpoint
/// if it is one. See [`decode_link`].
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The stream.
    pub stream: String,
    /// Position in the stream.
    pub seq: u64,
    /// The previous record's hash.
    pub prev: Hash,
    /// This record's hash.
    pub hash: Hash,
    /// The event's type (`operation_attempted`, …).
    pub kind: &'static str,
    /// The checkpoint, if the record is one.
    pub checkpoint: Option<crate::Checkpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFields<'a> {
    v: u32,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    seq: u64,
    #[allow(dead_code)]
    ts_us: u64,
    prev: Hash,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
    hash: Hash,
}

#[derive(Deserialize)]
struct EventTag<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// The event types of format version 1.
const KINDS: &[&str] = &[
    "session_started",
    "session_ended",
    "operation_attempted",
    "operation_completed",
    "approval_decided",
    "terminal_output",
    "transcript_summary",
    "checkpoint",
];

/// Decodes what chain verification needs of a line, checked against its own hash like
/// [`decode`]: the event must be a JSON object of a known type, but only checkpoints are
/// decoded in full. Several times faster than `decode`, for verifying long logs.
pub fn decode_link(line: &[u8]) -> Result<Link, LineError> {
    let (text, stored) = check_hash(line)?;
    let malformed = |e: serde_json::Error| LineError::Malformed(e.to_string());
    let fields: LinkFields<'_> = serde_json::from_str(text).map_err(malformed)?;
    check_fields(fields.v, fields.hash, stored)?;
    let tag: EventTag<'_> = serde_json::from_str(fields.event.get()).map_err(malformed)?;
    let kind = KINDS
        .iter()
        .find(|k| **k == tag.kind)
        .ok_or_else(|| LineError::Malformed(format!("unknown event type `{}`", tag.kind)))?;
    let checkpoint = if *kind == "checkpoint" {
        match serde_json::from_str(fields.event.get()).map_err(malformed)? {
            Event::Checkpoint(cp) => Some(cp),
            _ => None,
        }
    } else {
        None
    };
    Ok(Link {
        stream: fields.stream.into_owned(),
        seq: fields.seq,
        prev: fields.prev,
        hash: fields.hash,
        kind,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_edit_is_detected() {
        let ev = Event::session_ended("s-1", "bye \"quoted\" ünïcode\n");
        let (line, hash) = encode("gw", 3, 42, Hash::GENESIS, &ev);
        let r = decode(line.as_bytes()).expect("decodes");
        assert_eq!((r.seq, r.ts_us, r.hash, r.event), (3, 42, hash, ev));
        for i in 0..line.len() {
            let mut bytes = line.clone().into_bytes();
            bytes[i] ^= 0x01;
            assert!(decode(&bytes).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn a_split_inside_a_character_is_an_error_not_a_panic() {
        let line = format!("a\u{e9}{}\"}}", "x".repeat(72));
        assert_eq!(decode(line.as_bytes()), Err(LineError::NoHash));
    }

    #[test]
    fn hex_is_strict() {
        assert!(Hash::from_hex(&"A".repeat(64)).is_none());
        assert!(Hash::from_hex(&"a".repeat(63)).is_none());
        let h = Hash([0xab; 32]);
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
    }
}
