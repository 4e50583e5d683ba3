//! `ErrorResponse` and `NoticeResponse`: the fields of a received one ([`ErrorFields`]) and
//! an owned builder for sending one ([`ErrorBuilder`]).

use std::fmt;
use std::iter::FusedIterator;

use bytes::{BufMut, BytesMut};

use super::read::Reader;
use super::write;
use super::{ProtocolError, tag};

/// Field types of `ErrorResponse` and `NoticeResponse`.
pub mod field {
    /// Severity, possibly localized (`ERROR`, `FATAL`, `PANIC`, `WARNING`, `NOTICE`, …).
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (PostgreSQL 9.6 and later).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Detail.
    pub const DETAIL: u8 = b'D';
    /// Hint.
    pub const HINT: u8 = b'H';
    /// Cursor position in the query string (1-based, in characters).
    pub const POSITION: u8 = b'P';
    /// Cursor position in an internally generated query.
    pub const INTERNAL_POSITION: u8 = b'p';
    /// Text of the internally generated query.
    pub const INTERNAL_QUERY: u8 = b'q';
    /// Context (call stack).
    pub const WHERE: u8 = b'W';
    /// Schema name.
    pub const SCHEMA: u8 = b's';
    /// Table name.
    pub const TABLE: u8 = b't';
    /// Column name.
    pub const COLUMN: u8 = b'c';
    /// Data type name.
    pub const DATA_TYPE: u8 = b'd';
    /// Constraint name.
    pub const CONSTRAINT: u8 = b'n';
    /// Source file.
    pub const FILE: u8 = b'F';
    /// Source line.
    pub const LINE: u8 = b'L';
    /// Source routine.
    pub const ROUTINE: u8 = b'R';
}

/// The fields of an `ErrorResponse` or `NoticeResponse`: pairs of a field type (see
/// [`field`]) and a UTF-8 value, in the order sent. Validated when parsed; iterating is
/// infallible and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// The encoded fields, including the final NUL.
    bytes: &'a [u8],
}

impl<'a> ErrorFields<'a> {
    /// Checks `r`'s remaining bytes as a field list.
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let start = r.pos();
        let rest = r.clone().rest();
        loop {
            let kind = r.u8("field type")?;
            if kind == 0 {
                break;
            }
            r.cstr("field value")?;
        }
        let len = r.pos().saturating_sub(start);
        Ok(Self {
            bytes: rest.get(..len).unwrap_or_default(),
        })
    }

    /// The fields in order.
    pub fn iter(&self) -> ErrorFieldsIter<'a> {
        ErrorFieldsIter {
            r: Reader::new(0, self.bytes),
        }
    }

    /// The value of the first field of type `kind`.
    pub fn get(&self, kind: u8) -> Option<&'a str> {
        self.iter().find(|&(k, _)| k == kind).map(|(_, v)| v)
    }

    /// The severity, preferring the non-localized `V` field over `S`.
    pub fn severity(&self) -> Option<&'a str> {
        self.get(field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(field::SEVERITY))
    }

    /// The severity as the server's language has it (`S`).
    pub fn severity_localized(&self) -> Option<&'a str> {
        self.get(field::SEVERITY)
    }

    /// The SQLSTATE (`C`).
    pub fn code(&self) -> Option<&'a str> {
        self.get(field::CODE)
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&'a str> {
        self.get(field::MESSAGE)
    }

    /// The detail (`D`).
    pub fn detail(&self) -> Option<&'a str> {
        self.get(field::DETAIL)
    }

    /// The hint (`H`).
    pub fn hint(&self) -> Option<&'a str> {
        self.get(field::HINT)
    }

    /// The fields as a vector.
    pub fn to_vec(&self) -> Vec<(u8, &'a str)> {
        self.iter().collect()
    }

    /// The encoded fields including the terminating NUL: the whole body of the message.
    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl fmt::Debug for ErrorFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (char::from(k), v)))
            .finish()
    }
}

impl<'a> IntoIterator for ErrorFields<'a> {
    type Item = (u8, &'a str);
    type IntoIter = ErrorFieldsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`ErrorFields`].
#[derive(Clone, Debug)]
pub struct ErrorFieldsIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for ErrorFieldsIter<'a> {
    type Item = (u8, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match self.r.u8("field type") {
            Ok(0) | Err(_) => {
                self.r.rest();
                None
            }
            Ok(kind) => match self.r.cstr("field value") {
                Ok(value) => Some((kind, value)),
                Err(_) => {
                    self.r.rest();
                    None
                }
            },
        }
    }
}

impl FusedIterator for ErrorFieldsIter<'_> {}

/// How serious an error or notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `ERROR`: the statement failed; the session continues.
    Error,
    /// `FATAL`: the session ends.
    Fatal,
    /// `PANIC`: every session ends.
    Panic,
    /// `WARNING` (notice).
    Warning,
    /// `NOTICE` (notice).
    Notice,
    /// `DEBUG` (notice).
    Debug,
    /// `INFO` (notice).
    Info,
    /// `LOG` (notice).
    Log,
}

impl Severity {
    /// The name PostgreSQL sends in the `V` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Panic => "PANIC",
            Self::Warning => "WARNING",
            Self::Notice => "NOTICE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Log => "LOG",
        }
    }

    /// The severity named by a `V` field (English, upper case).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ERROR" => Self::Error,
            "FATAL" => Self::Fatal,
            "PANIC" => Self::Panic,
            "WARNING" => Self::Warning,
            "NOTICE" => Self::Notice,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "LOG" => Self::Log,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `ErrorResponse` or `NoticeResponse` to send, owned.
///
/// Encoding never fails: a NUL inside a value is replaced by U+FFFD, a code that is not five
/// ASCII letters or digits becomes `XX000` (internal_error), and in the impossible case of a
/// message of 2 GiB or more a fixed error saying so is sent instead. An error path that can
/// itself fail would leave a client without an answer.
///
/// ```
/// use bytes::BytesMut;
/// use sod_postgres::codec::{ErrorBuilder, Severity};
///
/// let mut out = BytesMut::new();
/// ErrorBuilder::new(Severity::Error, "42501", "permission denied by rule `no-ddl`")
///     .hint("ask for approval")
///     .encode(&mut out);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBuilder {
    /// Severity, sent both as `S` and `V`.
    pub severity: Severity,
    /// SQLSTATE, five ASCII letters or digits (`C`).
    pub code: String,
    /// Primary message (`M`).
    pub message: String,
    /// Detail (`D`).
    pub detail: Option<String>,
    /// Hint (`H`).
    pub hint: Option<String>,
    /// Cursor position in the query, 1-based, in characters (`P`).
    pub position: Option<u32>,
    /// Further fields (see [`field`]), sent after the others in this order. Entries whose
    /// type is one of the fields above, or 0, are skipped.
    pub other: Vec<(u8, String)>,
}

impl ErrorBuilder {
    /// An error or notice with a severity, SQLSTATE and message.
    pub fn new(severity: Severity, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            other: Vec::new(),
        }
    }

    /// An `ERROR` with a SQLSTATE and message.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A `FATAL` error (the connection is closed after it) with a SQLSTATE and message.
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, code, message)
    }

    /// The `FATAL` `08P01` (protocol_violation, or `0A000` feature_not_supported) error to
    /// send before closing a connection that sent something undecodable.
    pub fn protocol(err: &ProtocolError) -> Self {
        Self::fatal(err.sqlstate(), err.to_string())
    }

    /// Copies received fields, so that they can be changed (scrubbed) and sent on. The
    /// severity comes from `V`, else `S`, else is `ERROR`; `S`, `V`, `C`, `M`, `D`, `H` and a
    /// numeric `P` go to their own fields, everything else to [`other`](Self::other).
    pub fn from_fields(fields: &ErrorFields<'_>) -> Self {
        let mut b = Self::new(
            fields
                .severity()
                .and_then(Severity::from_name)
                .unwrap_or(Severity::Error),
            fields.code().unwrap_or_default(),
            fields.message().unwrap_or_default(),
        );
        for (kind, value) in fields.iter() {
            match kind {
                field::SEVERITY | field::SEVERITY_NONLOCALIZED | field::CODE | field::MESSAGE => {}
                field::DETAIL if b.detail.is_none() => b.detail = Some(value.to_owned()),
                field::HINT if b.hint.is_none() => b.hint = Some(value.to_owned()),
                field::POSITION if b.position.is_none() => match value.parse() {
                    Ok(pos) => b.position = Some(pos),
                    Err(_) => b.other.push((kind, value.to_owned())),
                },
                _ => b.other.push((kind, value.to_owned())),
            }
        }
        b
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the cursor position.
    pub fn position(mut self, position: u32) -> Self {
        self.position = Some(position);
        self
    }

    /// Adds another field (see [`field`]).
    pub fn field(mut self, kind: u8, value: impl Into<String>) -> Self {
        self.other.push((kind, value.into()));
        self
    }

    /// Writes an `ErrorResponse`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(out, tag::ERROR_RESPONSE);
    }

    /// Writes a `NoticeResponse` with the same fields.
    pub fn encode_notice(&self, out: &mut BytesMut) {
        self.encode_as(out, tag::NOTICE_RESPONSE);
    }

    fn encode_as(&self, out: &mut BytesMut, tag: u8) {
        let written = write::message(out, tag, |out| {
            let severity = self.severity.as_str();
            put_field(out, field::SEVERITY, severity);
            put_field(out, field::SEVERITY_NONLOCALIZED, severity);
            let code_ok =
                self.code.len() == 5 && self.code.bytes().all(|b| b.is_ascii_alphanumeric());
            put_field(out, field::CODE, if code_ok { &self.code } else { "XX000" });
            put_field(out, field::MESSAGE, &self.message);
            if let Some(detail) = &self.detail {
                put_field(out, field::DETAIL, detail);
            }
            if let Some(hint) = &self.hint {
                put_field(out, field::HINT, hint);
            }
            if let Some(position) = self.position {
                put_field(out, field::POSITION, &position.to_string());
            }
            for (kind, value) in &self.other {
                match *kind {
                    0
                    | field::SEVERITY
                    | field::SEVERITY_NONLOCALIZED
                    | field::CODE
                    | field::MESSAGE
                    | field::DETAIL
                    | field::HINT
                    | field::POSITION => {}
                    kind => put_field(out, kind, value),
                }
            }
            out.put_u8(0);
            Ok(())
        });
        if written.is_err() {
            // Only a message of 2 GiB or more gets here; `out` is as it was.
            Self::new(
                self.severity,
                "54000",
                "the error message is too long to send",
            )
            .encode_as(out, tag);
        }
    }
}

/// Writes one field; NUL bytes in `value` become U+FFFD.
fn put_field(out: &mut BytesMut, kind: u8, value: &str) {
    out.put_u8(kind);
    if value.as_bytes().contains(&0) {
        for (i, part) in value.split('\0').enumerate() {
            if i > 0 {
                out.put_slice("\u{fffd}".as_bytes());
            }
            out.put_slice(part.as_bytes());
        }
    } else {
        out.put_slice(value.as_bytes());
    }
    out.put_u8(0);
}
