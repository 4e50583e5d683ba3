//! The PostgreSQL wire protocol, version 3, in both directions.
//!
//! The gateway is a server to its clients and a client of the real server, so this module
//! decodes and encodes both sides:
//!
//! - [`decode_startup`]: the untagged first packet of a connection (`StartupMessage`,
//!   `SSLRequest`, `GSSENCRequest`, `CancelRequest`) as a [`Startup`].
//! - [`decode_frontend`] / [`decode_backend`]: one tagged message off a read buffer as a
//!   [`FrontendFrame`] / [`BackendFrame`]. A frame keeps its bytes as [`Bytes`](bytes::Bytes):
//!   splitting it off the buffer copies nothing, forwarding it unchanged
//!   ([`raw`](BackendFrame::raw), [`encode_into`](BackendFrame::encode_into)) re-emits the exact
//!   bytes that were read, and [`tag`](BackendFrame::tag) classifies it without parsing.
//! - [`FrontendFrame::parse`] / [`BackendFrame::parse`]: a borrowed view of the body
//!   ([`FrontendMessage`], [`BackendMessage`]). Strings are `&str` into the frame, lists are
//!   lazy views ([`Formats`], [`Oids`], [`Values`], [`RowDescription`], [`ErrorFields`]) that
//!   were validated once and iterate without allocating.
//! - [`frontend`] / [`backend`]: encoders, one function per message, writing into a
//!   [`BytesMut`](bytes::BytesMut). [`ErrorBuilder`] builds `ErrorResponse` and
//!   `NoticeResponse`.
//!
//! The byte that answers an `SSLRequest` or a `GSSENCRequest` is not a message: the server
//! writes a single [`ENCRYPTION_ACCEPTED`] (go ahead with TLS / GSSAPI) or
//! [`ENCRYPTION_REFUSED`] (refused; continue in the clear) and the client reads a single byte.
//! Callers write and read that byte themselves.
//!
//! [`oid`] names the type OIDs the gateway must know by number.
//!
//! # Bad input
//!
//! Everything here is fed bytes from untrusted peers. No input makes it panic, loop without
//! consuming input, or allocate more than a small multiple of the bytes it was given:
//!
//! - A message's length field is checked against [`Limits`] as soon as its header (the tag
//!   byte and the length, or the length alone for a startup packet) is in the buffer, before
//!   its body is waited for. Unknown tags are refused on their first byte. Decoders never
//!   reserve buffer space on a peer's say-so; the caller's reads grow the buffer as bytes
//!   arrive.
//! - Parsing checks every count against the bytes that are actually there, every string for
//!   its NUL terminator and for UTF-8 (the gateway forces `client_encoding` to `UTF8`), every
//!   value length for being `-1` (NULL) or non-negative, and that nothing follows the last
//!   field. A message that parses re-encodes to exactly its own bytes.
//! - After a decode error the stream is out of sync: report the error (its `Display` is meant
//!   for an `ErrorResponse`, [`ProtocolError::sqlstate`] gives the SQLSTATE) and close the
//!   connection. A parse error leaves the framing intact.
//!
//! ```
//! use bytes::BytesMut;
//! use sod_postgres::codec::{self, BackendMessage, Limits, TransactionStatus, backend, tag};
//!
//! let mut wire = BytesMut::new();
//! backend::command_complete(&mut wire, "SELECT 1")?;
//! backend::ready_for_query(&mut wire, TransactionStatus::Idle);
//!
//! let limits = Limits::default();
//! let first = codec::decode_backend(&mut wire, &limits)?.expect("a whole message");
//! assert_eq!(first.parse()?, BackendMessage::CommandComplete { tag: "SELECT 1" });
//! let second = codec::decode_backend(&mut wire, &limits)?.expect("a whole message");
//! assert!(second.is(tag::READY_FOR_QUERY));
//! assert!(codec::decode_backend(&mut wire, &limits)?.is_none());
//! # Ok::<(), codec::ProtocolError>(())
//! ```

use std::fmt;

pub mod backend;
mod error_response;
pub mod frontend;
pub mod oid;
mod read;
mod startup;
mod write;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use backend::{
    Auth, BackendFrame, BackendMessage, CopyResponse, DataRow, DataRowWriter, FieldDescription,
    Fields, RowDescription, TransactionStatus, decode_backend,
};
pub use error_response::{ErrorBuilder, ErrorFields, ErrorFieldsIter, Severity, field};
pub use frontend::{
    Bind, FrontendFrame, FrontendMessage, FunctionCall, PasswordMessage, Target, decode_frontend,
};
pub use read::{Formats, FormatsIter, Oids, OidsIter, ValueSpans, Values, ValuesIter};
pub use startup::{
    CANCEL_REQUEST_CODE, ENCRYPTION_ACCEPTED, ENCRYPTION_REFUSED, GSSENC_REQUEST_CODE,
    PROTOCOL_3_0, PROTOCOL_3_2, SSL_REQUEST_CODE, Startup, decode_startup,
    starts_with_tls_handshake,
};

/// Size limits the decoders enforce, checked as soon as a message's length field is read.
///
/// A message's size is the value of its length field: the body plus the four bytes of the
/// length itself, not counting the tag byte. Besides these limits, [`decode_frontend`] holds
/// the messages PostgreSQL itself treats as small (`Describe`, `Close`, `Execute`, `Sync`,
/// `Flush`, `Terminate`, `CopyDone`, `CopyFail`) to 10 000 bytes and password and
/// authentication messages to 65 535 bytes, the limits of the PostgreSQL server; a lower
/// `max_message` wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest tagged message accepted, in bytes. Default 16 MiB.
    pub max_message: usize,
    /// The largest startup packet accepted, in bytes. Default 10 000, PostgreSQL's own.
    pub max_startup: usize,
}

impl Limits {
    /// The defaults: 16 MiB per message, 10 000 bytes per startup packet.
    pub const DEFAULT: Limits = Limits {
        max_message: 16 * 1024 * 1024,
        max_startup: 10_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What is wrong with a message, decoded or about to be encoded.
///
/// The `Display` text is written for the peer: a gateway can put it, unchanged, in the
/// `ErrorResponse` that precedes closing the connection (with [`ProtocolError::sqlstate`]).
/// It never contains the message's content.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length field exceeds the limit. `tag` is 0 for a startup packet; `len` is the
    /// length field's value.
    #[error("{} is {len} bytes, the limit is {max}", What(*.tag))]
    TooLarge {
        /// The message type (0 for a startup packet).
        tag: u8,
        /// The announced length.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The length field is impossible for the message (less than 4, or not the length a
    /// fixed-size message must have).
    #[error("{} has an invalid length of {len}", What(*.tag))]
    BadLength {
        /// The message type (0 for a startup packet).
        tag: u8,
        /// The announced length.
        len: i64,
    },
    /// A message type that does not exist in this direction of the protocol.
    #[error("unknown message type {}", TagName(*.0))]
    UnknownMessage(u8),
    /// A startup packet asking for a protocol other than 3.x (or an unknown request code).
    #[error("unsupported frontend protocol {}.{}: only protocol 3 is supported", .0 >> 16, .0 & 0xffff)]
    UnsupportedProtocol(u32),
    /// An authentication request of a type this codec does not know.
    #[error("unsupported authentication request type {0}")]
    UnsupportedAuthentication(i32),
    /// The body does not follow the message's layout.
    #[error("invalid {}: {field}: {what}", What(*.tag))]
    Malformed {
        /// The message type (0 for a startup packet).
        tag: u8,
        /// The field that is wrong.
        field: &'static str,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An encoder was given something the protocol cannot carry: a string with a NUL byte,
    /// more than 65 535 list entries, a body of 2 GiB or more, a key of the wrong size.
    #[error("cannot encode {field}: {what}")]
    Unencodable {
        /// The field that cannot be encoded.
        field: &'static str,
        /// Why.
        what: &'static str,
    },
}

impl ProtocolError {
    /// The SQLSTATE to report this error with: `0A000` (feature_not_supported) for an
    /// unsupported protocol version or authentication type, `08P01` (protocol_violation)
    /// otherwise.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Self::UnsupportedProtocol(_) | Self::UnsupportedAuthentication(_) => "0A000",
            _ => "08P01",
        }
    }
}

/// Formats a message type for error messages: `'Q'`, or `0x01` when not printable.
struct TagName(u8);

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// Names the subject of an error: "startup packet" for tag 0, else "message of type 'Q'".
struct What(u8);

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str("startup packet")
        } else {
            write!(f, "message of type {}", TagName(self.0))
        }
    }
}

/// Message types, for classifying a frame by [`FrontendFrame::tag`] or [`BackendFrame::tag`]
/// without parsing it.
///
/// The same byte means different messages in the two directions (`b'D'` is `Describe` from
/// a client and `DataRow` from a server), so match a constant against frames of its
/// direction only.
pub mod tag {
    /// Frontend `Query` (simple query protocol).
    pub const QUERY: u8 = b'Q';
    /// Frontend `Parse`.
    pub const PARSE: u8 = b'P';
    /// Frontend `Bind`.
    pub const BIND: u8 = b'B';
    /// Frontend `Describe`.
    pub const DESCRIBE: u8 = b'D';
    /// Frontend `Execute`.
    pub const EXECUTE: u8 = b'E';
    /// Frontend `Close`.
    pub const CLOSE: u8 = b'C';
    /// Frontend `Sync`.
    pub const SYNC: u8 = b'S';
    /// Frontend `Flush`.
    pub const FLUSH: u8 = b'H';
    /// Frontend `Terminate`.
    pub const TERMINATE: u8 = b'X';
    /// Frontend `FunctionCall`.
    pub const FUNCTION_CALL: u8 = b'F';
    /// Frontend `PasswordMessage`, `SASLInitialResponse`, `SASLResponse` and `GSSResponse`.
    pub const PASSWORD: u8 = b'p';
    /// Frontend `CopyFail`.
    pub const COPY_FAIL: u8 = b'f';
    /// `CopyData`, in both directions.
    pub const COPY_DATA: u8 = b'd';
    /// `CopyDone`, in both directions.
    pub const COPY_DONE: u8 = b'c';

    /// Backend `Authentication*` requests.
    pub const AUTHENTICATION: u8 = b'R';
    /// Backend `BackendKeyData`.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// Backend `ParameterStatus`.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// Backend `ReadyForQuery`.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// Backend `RowDescription`.
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// Backend `DataRow`.
    pub const DATA_ROW: u8 = b'D';
    /// Backend `CommandComplete`.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// Backend `EmptyQueryResponse`.
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    /// Backend `ErrorResponse`.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// Backend `NoticeResponse`.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// Backend `NotificationResponse`.
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// Backend `ParseComplete`.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// Backend `BindComplete`.
    pub const BIND_COMPLETE: u8 = b'2';
    /// Backend `CloseComplete`.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// Backend `NoData`.
    pub const NO_DATA: u8 = b'n';
    /// Backend `PortalSuspended`.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// Backend `ParameterDescription`.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// Backend `CopyInResponse`.
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// Backend `CopyOutResponse`.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// Backend `CopyBothResponse`.
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    /// Backend `FunctionCallResponse`.
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    /// Backend `NegotiateProtocolVersion`.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}
