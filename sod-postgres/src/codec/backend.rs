//! Server-to-client messages: decoding ([`decode_backend`], [`BackendFrame::parse`]) and the
//! encoders the gateway uses to answer clients itself (the functions of this module, and
//! [`ErrorBuilder`] for errors and notices).
//!
//! Every encoder writes one whole message into `out` or, when it returns an error, nothing.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::error_response::{ErrorBuilder, ErrorFields};
use super::read::{self, Formats, Oids, Reader, ValueSpans, Values, ValuesIter};
use super::startup::CANCEL_KEY_LEN;
use super::write::{self, unencodable};
use super::{Limits, ProtocolError, tag};

/// Whether servers send messages of type `tag`.
fn is_backend_tag(tag: u8) -> bool {
    matches!(
        tag,
        tag::AUTHENTICATION
            | tag::BACKEND_KEY_DATA
            | tag::PARAMETER_STATUS
            | tag::READY_FOR_QUERY
            | tag::ROW_DESCRIPTION
            | tag::DATA_ROW
            | tag::COMMAND_COMPLETE
            | tag::EMPTY_QUERY_RESPONSE
            | tag::ERROR_RESPONSE
            | tag::NOTICE_RESPONSE
            | tag::NOTIFICATION_RESPONSE
            | tag::PARSE_COMPLETE
            | tag::BIND_COMPLETE
            | tag::CLOSE_COMPLETE
            | tag::NO_DATA
            | tag::PORTAL_SUSPENDED
            | tag::PARAMETER_DESCRIPTION
            | tag::COPY_IN_RESPONSE
            | tag::COPY_OUT_RESPONSE
            | tag::COPY_BOTH_RESPONSE
            | tag::COPY_DATA
            | tag::COPY_DONE
            | tag::FUNCTION_CALL_RESPONSE
            | tag::NEGOTIATE_PROTOCOL_VERSION
    )
}

/// Decodes one message from a server: `Ok(None)` until all of it is in `buf`, then splits it
/// off `buf` without copying.
///
/// Unknown message types are refused on their first byte, impossible or oversized lengths
/// (above [`Limits::max_message`]) as soon as the five-byte header is in. After an error the
/// stream cannot be resynchronized.
pub fn decode_backend(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<BackendFrame>, ProtocolError> {
    let max = limits.max_message;
    let frame = read::split_frame(buf, |tag| is_backend_tag(tag).then_some(max))?;
    Ok(frame.map(|(tag, raw)| BackendFrame { tag, raw }))
}

/// One message from a server, kept as the bytes it arrived as. Cloning is cheap (a reference
/// count).
///
/// `Debug` shows the type and size, never the content (rows are not masked yet).
#[derive(Clone, PartialEq, Eq)]
pub struct BackendFrame {
    tag: u8,
    /// The whole message: tag, length, body.
    raw: Bytes,
}

impl BackendFrame {
    /// A frame of type `tag` with `body` (copied), for instance a rewritten `DataRow` body.
    /// Fails on a type servers do not send or a body of 2 GiB or more. The body is not
    /// checked: [`parse`](Self::parse) does that.
    pub fn new(tag: u8, body: &[u8]) -> Result<Self, ProtocolError> {
        if !is_backend_tag(tag) {
            return Err(ProtocolError::UnknownMessage(tag));
        }
        let mut out = BytesMut::with_capacity(body.len().saturating_add(read::HEADER_LEN));
        write::message(&mut out, tag, |out| {
            out.put_slice(body);
            Ok(())
        })?;
        Ok(Self {
            tag,
            raw: out.freeze(),
        })
    }

    /// The message type (see [`tag`]).
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The size of the whole message in bytes, tag and length included (what it occupies
    /// in a buffer).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the message is of type `tag`.
    pub fn is(&self, tag: u8) -> bool {
        self.tag == tag
    }

    /// The body: everything after the tag and length.
    pub fn body(&self) -> &[u8] {
        read::body_of(&self.raw)
    }

    /// The body as [`Bytes`], sharing the frame's memory (with [`Values::spans`], each value
    /// of a `DataRow` can be sliced out of it without copying).
    pub fn body_bytes(&self) -> Bytes {
        self.raw.slice(read::HEADER_LEN.min(self.raw.len())..)
    }

    /// The whole message as it arrived (tag, length, body), to forward without copying.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The whole message as it arrived.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// Appends the whole message, exactly as it arrived, to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        out.put_slice(&self.raw);
    }

    /// A borrowed, checked view of the message. Fails on any deviation from the message's
    /// layout, including bytes after its last field and strings that are not UTF-8.
    pub fn parse(&self) -> Result<BackendMessage<'_>, ProtocolError> {
        BackendMessage::parse(self.tag, self.body())
    }
}

impl fmt::Debug for BackendFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendFrame")
            .field("tag", &char::from(self.tag))
            .field("len", &self.body().len())
            .finish()
    }
}

/// The transaction state a `ReadyForQuery` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `b'I'`: not in a transaction block.
    Idle,
    /// `b'T'`: in a transaction block.
    InBlock,
    /// `b'E'`: in a failed transaction block (statements are refused until it ends).
    Failed,
}

impl TransactionStatus {
    /// The byte that stands for the state on the wire.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InBlock => b'T',
            Self::Failed => b'E',
        }
    }

    /// The state a byte stands for.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InBlock),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An authentication request (`b'R'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth<'a> {
    /// `AuthenticationOk` (0).
    Ok,
    /// `AuthenticationKerberosV5` (2), no longer supported by servers.
    KerberosV5,
    /// `AuthenticationCleartextPassword` (3).
    CleartextPassword,
    /// `AuthenticationMD5Password` (5).
    Md5Password {
        /// The salt to hash with.
        salt: [u8; 4],
    },
    /// `AuthenticationGSS` (7).
    Gss,
    /// `AuthenticationGSSContinue` (8) with GSSAPI or SSPI data.
    GssContinue(&'a [u8]),
    /// `AuthenticationSSPI` (9).
    Sspi,
    /// `AuthenticationSASL` (10) with the mechanisms the server offers, in its order of
    /// preference.
    Sasl {
        /// The mechanism names (`SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`).
        mechanisms: Vec<&'a str>,
    },
    /// `AuthenticationSASLContinue` (11) with mechanism data.
    SaslContinue(&'a [u8]),
    /// `AuthenticationSASLFinal` (12) with the mechanism's outcome data.
    SaslFinal(&'a [u8]),
}

impl Auth<'_> {
    /// The request's code on the wire.
    pub fn code(&self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::KerberosV5 => 2,
            Self::CleartextPassword => 3,
            Self::Md5Password { .. } => 5,
            Self::Gss => 7,
            Self::GssContinue(_) => 8,
            Self::Sspi => 9,
            Self::Sasl { .. } => 10,
            Self::SaslContinue(_) => 11,
            Self::SaslFinal(_) => 12,
        }
    }
}

/// `CopyInResponse`, `CopyOutResponse` or `CopyBothResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyResponse<'a> {
    /// The overall format: 0 text, 1 binary.
    pub format: i8,
    /// One format code per column.
    pub column_formats: Formats<'a>,
}

/// A message from a server, borrowed from its [`BackendFrame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// An authentication request or its outcome.
    Authentication(Auth<'a>),
    /// `BackendKeyData`: what a `CancelRequest` for this session must carry.
    BackendKeyData {
        /// The backend's process id.
        pid: i32,
        /// The secret key: 4 bytes before protocol 3.2, up to 256 after.
        key: &'a [u8],
    },
    /// `ParameterStatus`: a run-time parameter's current value.
    ParameterStatus {
        /// The parameter.
        name: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// `ReadyForQuery`: the server waits for the next command.
    ReadyForQuery {
        /// The transaction state.
        status: TransactionStatus,
    },
    /// `RowDescription`: the columns of the rows that follow.
    RowDescription(RowDescription<'a>),
    /// `DataRow`: one row.
    DataRow(DataRow<'a>),
    /// `CommandComplete` with its command tag (`SELECT 3`, `INSERT 0 1`, …).
    CommandComplete {
        /// The command tag.
        tag: &'a str,
    },
    /// `EmptyQueryResponse`: the query string was empty.
    EmptyQueryResponse,
    /// `ErrorResponse`.
    ErrorResponse(ErrorFields<'a>),
    /// `NoticeResponse`.
    NoticeResponse(ErrorFields<'a>),
    /// `NotificationResponse` (`LISTEN`/`NOTIFY`).
    NotificationResponse {
        /// The notifying backend's process id.
        pid: i32,
        /// The channel.
        channel: &'a str,
        /// The payload.
        payload: &'a str,
    },
    /// `ParseComplete`.
    ParseComplete,
    /// `BindComplete`.
    BindComplete,
    /// `CloseComplete`.
    CloseComplete,
    /// `NoData`: the statement or portal returns no rows.
    NoData,
    /// `PortalSuspended`: `Execute`'s row limit was reached.
    PortalSuspended,
    /// `ParameterDescription`: the parameter types of a statement.
    ParameterDescription(Oids<'a>),
    /// `CopyInResponse`: send `COPY FROM STDIN` data.
    CopyInResponse(CopyResponse<'a>),
    /// `CopyOutResponse`: `COPY TO STDOUT` data follows.
    CopyOutResponse(CopyResponse<'a>),
    /// `CopyBothResponse` (streaming replication).
    CopyBothResponse(CopyResponse<'a>),
    /// `CopyData`.
    CopyData(&'a [u8]),
    /// `CopyDone`.
    CopyDone,
    /// `FunctionCallResponse`: the result (`None` for NULL).
    FunctionCallResponse(Option<&'a [u8]>),
    /// `NegotiateProtocolVersion`: the server supports an older minor version, or not all
    /// the `_pq_.` options asked for.
    NegotiateProtocolVersion {
        /// The newest minor protocol version the server supports.
        newest_minor: i32,
        /// The protocol options it did not recognize.
        unrecognized: Vec<&'a str>,
    },
}

impl<'a> BackendMessage<'a> {
    /// Parses the body of a message of type `tag`.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(tag, body);
        let msg = match tag {
            tag::AUTHENTICATION => Self::Authentication(parse_auth(&mut r)?),
            tag::BACKEND_KEY_DATA => {
                let pid = r.i32("process id")?;
                let key = r.rest();
                if !CANCEL_KEY_LEN.contains(&key.len()) {
                    return Err(r.error("cancel key", "the key must be 4 to 256 bytes"));
                }
                Self::BackendKeyData { pid, key }
            }
            tag::PARAMETER_STATUS => Self::ParameterStatus {
                name: r.cstr("parameter name")?,
                value: r.cstr("parameter value")?,
            },
            tag::READY_FOR_QUERY => {
                let b = r.u8("transaction status")?;
                let status = TransactionStatus::from_byte(b)
                    .ok_or_else(|| r.error("transaction status", "expected 'I', 'T' or 'E'"))?;
                Self::ReadyForQuery { status }
            }
            tag::ROW_DESCRIPTION => Self::RowDescription(RowDescription::read(&mut r)?),
            tag::DATA_ROW => Self::DataRow(DataRow {
                values: r.values("column values")?,
            }),
            tag::COMMAND_COMPLETE => Self::CommandComplete {
                tag: r.cstr("command tag")?,
            },
            tag::EMPTY_QUERY_RESPONSE => Self::EmptyQueryResponse,
            tag::ERROR_RESPONSE => Self::ErrorResponse(ErrorFields::read(&mut r)?),
            tag::NOTICE_RESPONSE => Self::NoticeResponse(ErrorFields::read(&mut r)?),
            tag::NOTIFICATION_RESPONSE => Self::NotificationResponse {
                pid: r.i32("process id")?,
                channel: r.cstr("channel")?,
                payload: r.cstr("payload")?,
            },
            tag::PARSE_COMPLETE => Self::ParseComplete,
            tag::BIND_COMPLETE => Self::BindComplete,
            tag::CLOSE_COMPLETE => Self::CloseComplete,
            tag::NO_DATA => Self::NoData,
            tag::PORTAL_SUSPENDED => Self::PortalSuspended,
            tag::PARAMETER_DESCRIPTION => Self::ParameterDescription(r.oids("parameter types")?),
            tag::COPY_IN_RESPONSE => Self::CopyInResponse(copy_response(&mut r)?),
            tag::COPY_OUT_RESPONSE => Self::CopyOutResponse(copy_response(&mut r)?),
            tag::COPY_BOTH_RESPONSE => Self::CopyBothResponse(copy_response(&mut r)?),
            tag::COPY_DATA => Self::CopyData(r.rest()),
            tag::COPY_DONE => Self::CopyDone,
            tag::FUNCTION_CALL_RESPONSE => Self::FunctionCallResponse(r.value("result")?),
            tag::NEGOTIATE_PROTOCOL_VERSION => {
                let newest_minor = r.i32("minor version")?;
                let count = r.i32("option count")?;
                let count = usize::try_from(count)
                    .map_err(|_| r.error("option count", "the count is negative"))?;
                // Each name takes at least its NUL: never reserve more than the body holds.
                let mut unrecognized = Vec::with_capacity(count.min(r.remaining()));
                for _ in 0..count {
                    unrecognized.push(r.cstr("option name")?);
                }
                Self::NegotiateProtocolVersion {
                    newest_minor,
                    unrecognized,
                }
            }
            other => return Err(ProtocolError::UnknownMessage(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Authentication(_) => tag::AUTHENTICATION,
            Self::BackendKeyData { .. } => tag::BACKEND_KEY_DATA,
            Self::ParameterStatus { .. } => tag::PARAMETER_STATUS,
            Self::ReadyForQuery { .. } => tag::READY_FOR_QUERY,
            Self::RowDescription(_) => tag::ROW_DESCRIPTION,
            Self::DataRow(_) => tag::DATA_ROW,
            Self::CommandComplete { .. } => tag::COMMAND_COMPLETE,
            Self::EmptyQueryResponse => tag::EMPTY_QUERY_RESPONSE,
            Self::ErrorResponse(_) => tag::ERROR_RESPONSE,
            Self::NoticeResponse(_) => tag::NOTICE_RESPONSE,
            Self::NotificationResponse { .. } => tag::NOTIFICATION_RESPONSE,
            Self::ParseComplete => tag::PARSE_COMPLETE,
            Self::BindComplete => tag::BIND_COMPLETE,
            Self::CloseComplete => tag::CLOSE_COMPLETE,
            Self::NoData => tag::NO_DATA,
            Self::PortalSuspended => tag::PORTAL_SUSPENDED,
            Self::ParameterDescription(_) => tag::PARAMETER_DESCRIPTION,
            Self::CopyInResponse(_) => tag::COPY_IN_RESPONSE,
            Self::CopyOutResponse(_) => tag::COPY_OUT_RESPONSE,
            Self::CopyBothResponse(_) => tag::COPY_BOTH_RESPONSE,
            Self::CopyData(_) => tag::COPY_DATA,
            Self::CopyDone => tag::COPY_DONE,
            Self::FunctionCallResponse(_) => tag::FUNCTION_CALL_RESPONSE,
            Self::NegotiateProtocolVersion { .. } => tag::NEGOTIATE_PROTOCOL_VERSION,
        }
    }

    /// Writes the message. For a message that came from [`BackendFrame::parse`] this gives
    /// back the frame's exact bytes. Fails, writing nothing, where the matching encoder would.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        match self {
            Self::Authentication(auth) => authentication(out, auth),
            Self::BackendKeyData { pid, key } => backend_key_data(out, *pid, key),
            Self::ParameterStatus { name, value } => parameter_status(out, name, value),
            Self::ReadyForQuery { status } => {
                ready_for_query(out, *status);
                Ok(())
            }
            Self::RowDescription(rd) => write::message(out, tag::ROW_DESCRIPTION, |out| {
                out.put_u16(write::count16(rd.len(), "fields")?);
                out.put_slice(rd.fields);
                Ok(())
            }),
            Self::DataRow(row) => write::message(out, tag::DATA_ROW, |out| {
                write::parsed_values(out, row.values, "column values")
            }),
            Self::CommandComplete { tag } => command_complete(out, tag),
            Self::ErrorResponse(fields) => raw_fields(out, tag::ERROR_RESPONSE, fields),
            Self::NoticeResponse(fields) => raw_fields(out, tag::NOTICE_RESPONSE, fields),
            Self::NotificationResponse {
                pid,
                channel,
                payload,
            } => notification_response(out, *pid, channel, payload),
            Self::EmptyQueryResponse
            | Self::ParseComplete
            | Self::BindComplete
            | Self::CloseComplete
            | Self::NoData
            | Self::PortalSuspended
            | Self::CopyDone => {
                write::empty(out, self.tag());
                Ok(())
            }
            Self::ParameterDescription(oids) => {
                write::message(out, tag::PARAMETER_DESCRIPTION, |out| {
                    out.put_u16(write::count16(oids.len(), "parameter types")?);
                    out.put_slice(oids.as_bytes());
                    Ok(())
                })
            }
            Self::CopyInResponse(c) | Self::CopyOutResponse(c) | Self::CopyBothResponse(c) => {
                write::message(out, self.tag(), |out| {
                    out.put_i8(c.format);
                    out.put_u16(write::count16(c.column_formats.len(), "column formats")?);
                    out.put_slice(c.column_formats.as_bytes());
                    Ok(())
                })
            }
            Self::CopyData(data) => copy_data(out, data),
            Self::FunctionCallResponse(value) => function_call_response(out, *value),
            Self::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            } => negotiate_protocol_version(out, *newest_minor, unrecognized),
        }
    }
}

fn parse_auth<'a>(r: &mut Reader<'a>) -> Result<Auth<'a>, ProtocolError> {
    Ok(match r.i32("authentication type")? {
        0 => Auth::Ok,
        2 => Auth::KerberosV5,
        3 => Auth::CleartextPassword,
        5 => {
            let salt = r.take(4, "salt")?;
            Auth::Md5Password {
                salt: salt
                    .try_into()
                    .map_err(|_| r.error("salt", "the message ends early"))?,
            }
        }
        7 => Auth::Gss,
        8 => Auth::GssContinue(r.rest()),
        9 => Auth::Sspi,
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let name = r.cstr("SASL mechanism")?;
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name);
            }
            Auth::Sasl { mechanisms }
        }
        11 => Auth::SaslContinue(r.rest()),
        12 => Auth::SaslFinal(r.rest()),
        other => return Err(ProtocolError::UnsupportedAuthentication(other)),
    })
}

fn copy_response<'a>(r: &mut Reader<'a>) -> Result<CopyResponse<'a>, ProtocolError> {
    let format = i8::from_be_bytes([r.u8("format")?]);
    Ok(CopyResponse {
        format,
        column_formats: r.formats("column formats")?,
    })
}

fn raw_fields(out: &mut BytesMut, tag: u8, fields: &ErrorFields<'_>) -> Result<(), ProtocolError> {
    write::message(out, tag, |out| {
        out.put_slice(fields.as_bytes());
        Ok(())
    })
}

/// The fixed part of a field description after its name.
const FIELD_FIXED_LEN: usize = 18;

/// A `RowDescription`: the field count and a lazy, re-iterable view of the fields. Validated
/// when parsed; iterating is infallible and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RowDescription<'a> {
    count: u16,
    /// The encoded field descriptions, without the count.
    fields: &'a [u8],
}

impl<'a> RowDescription<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let count = r.u16("field count")?;
        if usize::from(count).saturating_mul(FIELD_FIXED_LEN + 1) > r.remaining() {
            return Err(r.error(
                "field count",
                "more fields announced than the message holds",
            ));
        }
        let start = r.pos();
        let rest = r.clone().rest();
        for _ in 0..count {
            r.cstr("field name")?;
            r.take(FIELD_FIXED_LEN, "field description")?;
        }
        let len = r.pos().saturating_sub(start);
        Ok(Self {
            count,
            fields: rest.get(..len).unwrap_or_default(),
        })
    }

    /// How many fields (columns) there are.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The fields in column order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            r: Reader::new(tag::ROW_DESCRIPTION, self.fields),
            left: self.count,
        }
    }

    /// The `i`-th field. Walks the list.
    pub fn get(&self, i: usize) -> Option<FieldDescription<'a>> {
        self.fields().nth(i)
    }

    /// The fields as a vector.
    pub fn to_vec(&self) -> Vec<FieldDescription<'a>> {
        self.fields().collect()
    }
}

impl fmt::Debug for RowDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fields()).finish()
    }
}

impl<'a> IntoIterator for RowDescription<'a> {
    type Item = FieldDescription<'a>;
    type IntoIter = Fields<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields()
    }
}

/// Iterator over the fields of a [`RowDescription`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    r: Reader<'a>,
    left: u16,
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<FieldDescription<'a>, ProtocolError> {
        Ok(FieldDescription {
            name: self.r.cstr("field name")?,
            table_oid: self.r.u32("table OID")?,
            column: self.r.i16("column number")?,
            type_oid: self.r.u32("type OID")?,
            type_size: self.r.i16("type size")?,
            type_modifier: self.r.i32("type modifier")?,
            format: self.r.i16("format")?,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = FieldDescription<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.read() {
            Ok(field) => Some(field),
            Err(_) => {
                // Not reachable for a validated description; end rather than fail.
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.left);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Fields<'_> {}
impl FusedIterator for Fields<'_> {}

/// One column of a [`RowDescription`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldDescription<'a> {
    /// The column's name (its alias).
    pub name: &'a str,
    /// The OID of the table the column comes from, or 0 when it is not a plain column.
    pub table_oid: u32,
    /// The column's attribute number in that table, or 0.
    pub column: i16,
    /// The OID of the column's type.
    pub type_oid: u32,
    /// The type's size (`pg_type.typlen`); negative for variable-width types.
    pub type_size: i16,
    /// The type modifier (`pg_attribute.atttypmod`).
    pub type_modifier: i32,
    /// The format code: 0 text, 1 binary (0 in a `Describe` of a statement: not yet known).
    pub format: i16,
}

/// A `DataRow`: the values of one row, in column order. Validated when parsed; iterating is
/// infallible and allocation-free.
///
/// To mask a row, walk [`spans`](Self::spans) (value ranges within
/// [`BackendFrame::body`]) beside the [`RowDescription`] and write a new row with
/// [`data_row_iter`], copying the values that stay and replacing the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRow<'a> {
    values: Values<'a>,
}

impl<'a> DataRow<'a> {
    /// How many columns there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values in column order; `None` is NULL.
    pub fn values(&self) -> ValuesIter<'a> {
        self.values.iter()
    }

    /// The `i`-th value: `None` past the end, `Some(None)` for NULL. Walks the row.
    pub fn get(&self, i: usize) -> Option<Option<&'a [u8]>> {
        self.values.get(i)
    }

    /// Where each value lies within the message body: `None` for NULL, else the range of the
    /// value's bytes (its Int32 length is the four bytes before).
    pub fn spans(&self) -> ValueSpans<'a> {
        self.values.spans()
    }

    /// The values as a [`Values`] list.
    pub fn as_values(&self) -> Values<'a> {
        self.values
    }

    /// The value ranges as a vector; see [`spans`](Self::spans).
    pub fn span_vec(&self) -> Vec<Option<Range<usize>>> {
        self.spans().collect()
    }
}

impl<'a> IntoIterator for DataRow<'a> {
    type Item = Option<&'a [u8]>;
    type IntoIter = ValuesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.values()
    }
}

/// Writes an authentication request.
pub fn authentication(out: &mut BytesMut, auth: &Auth<'_>) -> Result<(), ProtocolError> {
    write::message(out, tag::AUTHENTICATION, |out| {
        out.put_i32(auth.code());
        match auth {
            Auth::Ok | Auth::KerberosV5 | Auth::CleartextPassword | Auth::Gss | Auth::Sspi => {}
            Auth::Md5Password { salt } => out.put_slice(salt),
            Auth::GssContinue(data) | Auth::SaslContinue(data) | Auth::SaslFinal(data) => {
                out.put_slice(data)
            }
            Auth::Sasl { mechanisms } => {
                for m in mechanisms {
                    if m.is_empty() {
                        return Err(unencodable("SASL mechanism", "it is empty"));
                    }
                    write::cstr(out, m, "SASL mechanism")?;
                }
                out.put_u8(0);
            }
        }
        Ok(())
    })
}

/// Writes `AuthenticationOk`.
pub fn authentication_ok(out: &mut BytesMut) {
    out.put_u8(tag::AUTHENTICATION);
    out.put_i32(8);
    out.put_i32(0);
}

/// Writes `AuthenticationCleartextPassword`.
pub fn authentication_cleartext_password(out: &mut BytesMut) {
    out.put_u8(tag::AUTHENTICATION);
    out.put_i32(8);
    out.put_i32(3);
}

/// Writes `AuthenticationMD5Password` with `salt`.
pub fn authentication_md5_password(out: &mut BytesMut, salt: [u8; 4]) {
    out.put_u8(tag::AUTHENTICATION);
    out.put_i32(12);
    out.put_i32(5);
    out.put_slice(&salt);
}

/// Writes `BackendKeyData`. Fails, writing nothing, unless `key` has 4 to 256 bytes.
pub fn backend_key_data(out: &mut BytesMut, pid: i32, key: &[u8]) -> Result<(), ProtocolError> {
    if !CANCEL_KEY_LEN.contains(&key.len()) {
        return Err(unencodable("cancel key", "the key must be 4 to 256 bytes"));
    }
    write::message(out, tag::BACKEND_KEY_DATA, |out| {
        out.put_i32(pid);
        out.put_slice(key);
        Ok(())
    })
}

/// Writes `ParameterStatus`.
pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::PARAMETER_STATUS, |out| {
        write::cstr(out, name, "parameter name")?;
        write::cstr(out, value, "parameter value")
    })
}

/// Writes `ReadyForQuery`.
pub fn ready_for_query(out: &mut BytesMut, status: TransactionStatus) {
    out.put_u8(tag::READY_FOR_QUERY);
    out.put_i32(5);
    out.put_u8(status.as_byte());
}

/// Writes an `ErrorResponse`; see [`ErrorBuilder`].
pub fn error_response(out: &mut BytesMut, error: &ErrorBuilder) {
    error.encode(out);
}

/// Writes a `NoticeResponse`; see [`ErrorBuilder`].
pub fn notice_response(out: &mut BytesMut, notice: &ErrorBuilder) {
    notice.encode_notice(out);
}

/// Writes `RowDescription`.
pub fn row_description(
    out: &mut BytesMut,
    fields: &[FieldDescription<'_>],
) -> Result<(), ProtocolError> {
    write::message(out, tag::ROW_DESCRIPTION, |out| {
        out.put_u16(write::count16(fields.len(), "fields")?);
        for f in fields {
            write::cstr(out, f.name, "field name")?;
            out.put_u32(f.table_oid);
            out.put_i16(f.column);
            out.put_u32(f.type_oid);
            out.put_i16(f.type_size);
            out.put_i32(f.type_modifier);
            out.put_i16(f.format);
        }
        Ok(())
    })
}

/// Writes `DataRow` with `values` (`None` is NULL).
pub fn data_row(out: &mut BytesMut, values: &[Option<&[u8]>]) -> Result<(), ProtocolError> {
    data_row_iter(out, values.iter().copied())
}

/// Writes `DataRow` with the values an iterator gives (`None` is NULL), so that a rewritten
/// row needs no intermediate vector.
pub fn data_row_iter<'v>(
    out: &mut BytesMut,
    values: impl IntoIterator<Item = Option<&'v [u8]>>,
) -> Result<(), ProtocolError> {
    write::message(out, tag::DATA_ROW, |out| {
        write::values(out, values, "column values")
    })
}

/// Writes a `DataRow` one value at a time, for rows rewritten as they pass (masking) without
/// an intermediate vector. Every length is checked: a value of 2 GiB or more, or more than
/// 65 535 values, is an error. The message is whole or absent: [`finish`](Self::finish)
/// fills in the length and count; after an error, or if the writer is dropped unfinished,
/// `out` is truncated back to where the row began.
///
/// ```
/// use bytes::BytesMut;
/// use sod_postgres::codec::{self, BackendMessage, Limits, backend::DataRowWriter};
///
/// let mut out = BytesMut::new();
/// let mut row = DataRowWriter::new(&mut out);
/// row.value(Some(b"42"))?;
/// row.value(None)?;
/// row.finish()?;
/// let frame = codec::decode_backend(&mut out, &Limits::default())?.expect("a whole row");
/// let BackendMessage::DataRow(row) = frame.parse()? else { panic!("not a row") };
/// assert_eq!(row.values().collect::<Vec<_>>(), [Some(&b"42"[..]), None]);
/// # Ok::<(), codec::ProtocolError>(())
/// ```
pub struct DataRowWriter<'a> {
    out: &'a mut BytesMut,
    start: usize,
    count: u16,
    failed: bool,
    finished: bool,
}

impl<'a> DataRowWriter<'a> {
    /// Starts a `DataRow` at the end of `out`.
    pub fn new(out: &'a mut BytesMut) -> Self {
        let start = out.len();
        out.put_u8(tag::DATA_ROW);
        out.put_i32(0);
        out.put_u16(0);
        Self {
            out,
            start,
            count: 0,
            failed: false,
            finished: false,
        }
    }

    /// Appends one value (`None` is NULL).
    pub fn value(&mut self, value: Option<&[u8]>) -> Result<(), ProtocolError> {
        let result = self
            .count
            .checked_add(1)
            .ok_or_else(|| unencodable("column values", "more than 65535 entries"))
            .and_then(|count| {
                write::value(self.out, value, "column value")?;
                self.count = count;
                Ok(())
            });
        self.failed |= result.is_err();
        result
    }

    /// Fills in the length and the value count. Fails (and leaves `out` as it was before the
    /// row) if a value failed or the row is 2 GiB or longer.
    pub fn finish(mut self) -> Result<(), ProtocolError> {
        if self.failed {
            return Err(unencodable("column values", "a value could not be written"));
        }
        let len = i32::try_from(self.out.len() - self.start - 1)
            .map_err(|_| unencodable("message", "the message is 2 GiB or longer"))?;
        let header = self.start + 1..self.start + 7;
        if let Some(slot) = self.out.get_mut(header) {
            slot[..4].copy_from_slice(&len.to_be_bytes());
            slot[4..].copy_from_slice(&self.count.to_be_bytes());
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for DataRowWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

/// Writes `CommandComplete` with a command tag (`SELECT 3`, `INSERT 0 1`, …).
pub fn command_complete(out: &mut BytesMut, tag: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::COMMAND_COMPLETE, |out| {
        write::cstr(out, tag, "command tag")
    })
}

/// Writes `EmptyQueryResponse`.
pub fn empty_query_response(out: &mut BytesMut) {
    write::empty(out, tag::EMPTY_QUERY_RESPONSE);
}

/// Writes `ParseComplete`.
pub fn parse_complete(out: &mut BytesMut) {
    write::empty(out, tag::PARSE_COMPLETE);
}

/// Writes `BindComplete`.
pub fn bind_complete(out: &mut BytesMut) {
    write::empty(out, tag::BIND_COMPLETE);
}

/// Writes `CloseComplete`.
pub fn close_complete(out: &mut BytesMut) {
    write::empty(out, tag::CLOSE_COMPLETE);
}

/// Writes `NoData`.
pub fn no_data(out: &mut BytesMut) {
    write::empty(out, tag::NO_DATA);
}

/// Writes `PortalSuspended`.
pub fn portal_suspended(out: &mut BytesMut) {
    write::empty(out, tag::PORTAL_SUSPENDED);
}

/// Writes `ParameterDescription`.
pub fn parameter_description(out: &mut BytesMut, types: &[u32]) -> Result<(), ProtocolError> {
    write::message(out, tag::PARAMETER_DESCRIPTION, |out| {
        out.put_u16(write::count16(types.len(), "parameter types")?);
        for &oid in types {
            out.put_u32(oid);
        }
        Ok(())
    })
}

/// Writes `NotificationResponse`.
pub fn notification_response(
    out: &mut BytesMut,
    pid: i32,
    channel: &str,
    payload: &str,
) -> Result<(), ProtocolError> {
    write::message(out, tag::NOTIFICATION_RESPONSE, |out| {
        out.put_i32(pid);
        write::cstr(out, channel, "channel")?;
        write::cstr(out, payload, "payload")
    })
}

fn write_copy_response(
    out: &mut BytesMut,
    tag: u8,
    format: i8,
    column_formats: &[i16],
) -> Result<(), ProtocolError> {
    write::message(out, tag, |out| {
        out.put_i8(format);
        write::formats(out, column_formats, "column formats")
    })
}

/// Writes `CopyInResponse` (`format`: 0 text, 1 binary; one format code per column).
pub fn copy_in_response(
    out: &mut BytesMut,
    format: i8,
    column_formats: &[i16],
) -> Result<(), ProtocolError> {
    write_copy_response(out, tag::COPY_IN_RESPONSE, format, column_formats)
}

/// Writes `CopyOutResponse` (`format`: 0 text, 1 binary; one format code per column).
pub fn copy_out_response(
    out: &mut BytesMut,
    format: i8,
    column_formats: &[i16],
) -> Result<(), ProtocolError> {
    write_copy_response(out, tag::COPY_OUT_RESPONSE, format, column_formats)
}

/// Writes `CopyBothResponse` (`format`: 0 text, 1 binary; one format code per column).
pub fn copy_both_response(
    out: &mut BytesMut,
    format: i8,
    column_formats: &[i16],
) -> Result<(), ProtocolError> {
    write_copy_response(out, tag::COPY_BOTH_RESPONSE, format, column_formats)
}

pub use super::frontend::{copy_data, copy_done};

/// Writes `FunctionCallResponse` (`None` is NULL).
pub fn function_call_response(
    out: &mut BytesMut,
    value: Option<&[u8]>,
) -> Result<(), ProtocolError> {
    write::message(out, tag::FUNCTION_CALL_RESPONSE, |out| {
        write::value(out, value, "result")
    })
}

/// Writes `NegotiateProtocolVersion`: the newest minor version supported and the `_pq_.`
/// options not recognized.
pub fn negotiate_protocol_version(
    out: &mut BytesMut,
    newest_minor: i32,
    unrecognized: &[&str],
) -> Result<(), ProtocolError> {
    write::message(out, tag::NEGOTIATE_PROTOCOL_VERSION, |out| {
        out.put_i32(newest_minor);
        let count = i32::try_from(unrecognized.len())
            .map_err(|_| unencodable("protocol options", "too many entries"))?;
        out.put_i32(count);
        for option in unrecognized {
            write::cstr(out, option, "protocol option")?;
        }
        Ok(())
    })
}
