//! # sod-audit
//!
//! The record auditors rely on (invariants I4 and I5 of the design): every session and
//! operation is appended to a hash-chained log, as durably as its kind requires, before the
//! operation is forwarded; signed checkpoints make edits, deletions, reordering and truncation
//! detectable.
//!
//! - [`Event`]: what happened (versioned, JSON). Events never carry secrets.
//! - [`Record`]: an event in the chain — sequence number, previous hash, SHA-256 over the exact
//!   bytes of its line; [`record`] holds the line codec.
//! - [`CheckpointKey`] / [`Checkpoint`]: ed25519 signatures over the chain head, written into
//!   the log every so often and exportable, so truncation is detectable against the last
//!   exported checkpoint.
//! - [`AuditSink`]: `append` returns once the record is as durable as asked ([`Durability`]).
//!   [`MemorySink`] for tests, [`FileSink`] for JSON Lines segments with rotation, group commit,
//!   torn-record recovery, refusal and recovery under storage faults (`testing::Faults`
//!   injects them) and a one-writer directory lock, [`PostgresSink`] for several gateways
//!   sharing one table (one chain per gateway stream).
//! - [`RecordingLayer`]: the tower layer that opens an audit record per operation; protocols
//!   commit it with [`Request::commit`](sod_core::Request::commit) before forwarding (I4), and
//!   `testing::GatedSink` (feature `testing`) lets their tests prove it. Once committed, the
//!   record keeps the operation's [`transcript`] (output, stderr, input, resizes), bounded
//!   and with a recording limit per stream.
//! - [`verify`]: checks chain, signatures and segment order, and names the first bad record
//!   precisely.
//! - [`replay`]: the log for humans — read a directory, filter, print a timeline, and export a
//!   terminal session or one operation as an [`asciicast`] v2 recording, or get an
//!   operation's streams back byte for byte.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use sod_audit::{AuditSink, CheckpointKey, Durability, Event, MemorySink, verify};
//!
//! let key = CheckpointKey::generate("audit-2026");
//! let sink = MemorySink::new("gw-1", key.clone());
//! sink.append(Event::session_ended("s-1", "client closed"), Durability::Written)
//!     .await
//!     .unwrap();
//! sink.checkpoint().await.unwrap();
//! let report = verify::lines(sink.lines(), &verify::Options::new([key.public()])).unwrap();
//! assert_eq!(report.records, 2);
//! # });
//! ```

#![forbid(unsafe_code)]

pub mod asciicast;
mod checkpoint;
mod durability;
mod event;
pub mod layer;
pub mod record;
pub mod replay;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transcript;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointKey, PublicKey};
pub use durability::{Durability, DurabilityPolicy};
pub use event::{Decision, Event, Outcome, StreamSummary};
pub use layer::{MAX_RECORDED_TEXT, Recording, RecordingLayer, recorded_text};
pub use record::{Hash, Record};
pub use sink::file::{FileSink, FileSinkOptions, OpenReport, TornTail};
pub use sink::memory::MemorySink;
pub use sink::postgres::{PostgresSink, PostgresSinkError, PostgresSinkOptions};
pub use sink::{Appended, AuditError, AuditSink};
