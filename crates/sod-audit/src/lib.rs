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
//!   [`MemorySink`] for tests, [`FileSink`] for JSON Lines segments with rotation, group commit
//!   and torn-record recovery.
//! - [`verify`]: checks chain, signatures and segment order, and names the first bad record
//!   precisely.
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

mod checkpoint;
mod durability;
mod event;
mod layer;
pub mod record;
pub mod sink;
pub mod testing;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointKey, PublicKey};
pub use durability::{Durability, DurabilityPolicy};
pub use event::{Decision, Event, Outcome};
pub use layer::{Recording, RecordingLayer};
pub use record::{Hash, Record};
pub use sink::file::{FileSink, FileSinkOptions, OpenReport, TornTail};
pub use sink::memory::MemorySink;
pub use sink::{Appended, AuditError, AuditSink};
