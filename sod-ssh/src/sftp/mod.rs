//! The SFTP protocol (version 3, with OpenSSH's extensions), byte-exact, and what each SFTP
//! request does.
//!
//! `sftp`, and `scp` since OpenSSH 9, talk to the server's `sftp` subsystem; the gateway sits
//! in that byte stream. Three parts, each pure logic (the gateway does the IO):
//!
//! - [`codec`]: framing with a size limit, typed zero-copy views of every request and
//!   response, encoders that write back exactly the bytes decoded. Handles and file names
//!   stay bytes: OpenSSH's handles are binary and names need not be UTF-8, and a proxy that
//!   re-encoded them would change what the server does.
//! - [`Judge`]: per session, what each request does ([`Verdict`], [`Judgement`]: kind, text,
//!   absolute paths), with the state that takes: outstanding requests by id, the handle table
//!   filled from `HANDLE` answers, the working directory.
//! - [`MaskedFile`]: files a masked principal opens are read whole, masked once, and served
//!   from that copy.
//!
//! The gateway's loop, per `sftp` channel (the policy stack, approvals and IO left out):
//!
//! ```
//! use bytes::Bytes;
//! use sod_core::{Refusal, RefusalCode, Target};
//! use sod_ssh::sftp::codec::Frame;
//! use sod_ssh::sftp::{Judge, Relay, Verdict};
//!
//! enum Send {
//!     Server(Bytes),
//!     Client(Bytes),
//! }
//!
//! /// A packet from the client.
//! fn from_client(judge: &mut Judge, frame: &Frame, masked: bool) -> Option<Send> {
//!     match judge.request(frame) {
//!         Verdict::Forward => Some(Send::Server(frame.raw().clone())),
//!         Verdict::Decide(judgement) => {
//!             let op = judgement.operation(Target::new("ssh/app"));
//!             if op.kind() == sod_core::OperationKind::Read {
//!                 if masked && judgement.reads_file() {
//!                     // Masker::scrub in the gateway.
//!                     judge.serve_masked(judgement.id(), |b: &[u8]| b.to_vec()).ok()?;
//!                 }
//!                 Some(Send::Server(frame.raw().clone()))
//!             } else {
//!                 let no = Refusal::new(RefusalCode::PolicyDenied, "reads only").with_rule("r1");
//!                 Some(Send::Client(judge.refuse(judgement.id(), &no)))
//!             }
//!         }
//!         Verdict::Answer { reply, .. } => Some(Send::Client(reply)),
//!         Verdict::Abort(_) => None, // close the channel
//!     }
//! }
//!
//! /// A packet from the server.
//! fn from_server(judge: &mut Judge, frame: &Frame) -> Vec<Send> {
//!     match judge.response(frame) {
//!         Relay::Forward => vec![Send::Client(frame.raw().clone())],
//!         Relay::Withhold { to_server, to_client } => {
//!             let to_server = to_server.map(Send::Server);
//!             to_server.into_iter().chain(to_client.map(Send::Client)).collect()
//!         }
//!     }
//! }
//! ```

pub mod codec;
mod judge;
mod masked;

pub use judge::{
    HandleInfo, HandleKind, Judge, JudgeLimits, Judgement, Part, Relay, ServeMaskedError, Verdict,
};
pub use masked::MaskedFile;
