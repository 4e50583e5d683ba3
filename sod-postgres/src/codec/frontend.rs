//! Client-to-server messages: decoding ([`decode_frontend`], [`FrontendFrame::parse`]) and
//! the encoders the gateway uses as a client of the real server (the functions of this
//! module, including the startup-phase [`startup`], [`ssl_request`] and [`cancel_request`]).
//!
//! Every encoder writes one whole message into `out` or, when it returns an error, nothing.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::read::{self, Formats, Oids, Reader, Values};
use super::write;
use super::{Limits, ProtocolError, tag};

pub use super::startup::{cancel_request, gss_enc_request, ssl_request, startup};

/// PostgreSQL's limit for messages that carry at most a name (`PQ_SMALL_MESSAGE_LIMIT`).
const SMALL_MESSAGE_LIMIT: usize = 10_000;
/// PostgreSQL's limit for password and authentication messages (`PG_MAX_AUTH_TOKEN_LENGTH`).
const AUTH_MESSAGE_LIMIT: usize = 65_535;

/// The largest length field accepted for a frontend message of type `tag`, or `None` when
/// clients do not send such messages.
fn max_len(tag: u8, limits: &Limits) -> Option<usize> {
    let class = match tag {
        tag::QUERY | tag::PARSE | tag::BIND | tag::FUNCTION_CALL | tag::COPY_DATA => usize::MAX,
        tag::DESCRIBE
        | tag::EXECUTE
        | tag::CLOSE
        | tag::SYNC
        | tag::FLUSH
        | tag::TERMINATE
        | tag::COPY_DONE
        | tag::COPY_FAIL => SMALL_MESSAGE_LIMIT,
        tag::PASSWORD => AUTH_MESSAGE_LIMIT,
        _ => return None,
    };
    Some(class.min(limits.max_message))
}

/// Decodes one message from a client: `Ok(None)` until all of it is in `buf`, then splits it
/// off `buf` without copying.
///
/// Unknown message types are refused on their first byte, impossible or oversized lengths
/// as soon as the five-byte header is in (see [`Limits`]). After an error the stream cannot be
/// resynchronized.
pub fn decode_frontend(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<FrontendFrame>, ProtocolError> {
    Ok(read::split_frame(buf, |tag| max_len(tag, limits))?
        .map(|(tag, raw)| FrontendFrame { tag, raw }))
}

/// One message from a client, kept as the bytes it arrived as. Cloning is cheap (a reference
/// count).
///
/// `Debug` shows the type and size, never the content (which may be a password).
#[derive(Clone, PartialEq, Eq)]
pub struct FrontendFrame {
    tag: u8,
    /// The whole message: tag, length, body.
    raw: Bytes,
}

impl FrontendFrame {
    /// A frame of type `tag` with `body` (copied). Fails on a type clients do not send or a
    /// body of 2 GiB or more. The body is not checked: [`parse`](Self::parse) does that.
    pub fn new(tag: u8, body: &[u8]) -> Result<Self, ProtocolError> {
        if max_len(tag, &Limits::DEFAULT).is_none() {
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

    /// The body as [`Bytes`], sharing the frame's memory.
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
    pub fn parse(&self) -> Result<FrontendMessage<'_>, ProtocolError> {
        FrontendMessage::parse(self.tag, self.body())
    }
}

impl fmt::Debug for FrontendFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontendFrame")
            .field("tag", &char::from(self.tag))
            .field("len", &self.body().len())
            .finish()
    }
}

/// What a `Describe` or `Close` is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A prepared statement (`b'S'`).
    Statement,
    /// A portal (`b'P'`).
    Portal,
}

impl Target {
    /// The byte that stands for the target on the wire.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }

    /// The target a byte stands for.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'S' => Some(Self::Statement),
            b'P' => Some(Self::Portal),
            _ => None,
        }
    }
}

/// A message from a client, borrowed from its [`FrontendFrame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Query`: one or more SQL statements, simple protocol.
    Query {
        /// The SQL text.
        sql: &'a str,
    },
    /// `Parse`: prepare `sql` as statement `name` (empty for the unnamed statement).
    Parse {
        /// The statement name.
        name: &'a str,
        /// The SQL text.
        sql: &'a str,
        /// Parameter type OIDs the client fixes (0 leaves one to the server).
        param_types: Oids<'a>,
    },
    /// `Bind`: create a portal from a prepared statement and parameter values.
    Bind(Bind<'a>),
    /// `Describe` a statement or portal.
    Describe {
        /// Statement or portal.
        target: Target,
        /// Its name (empty for the unnamed one).
        name: &'a str,
    },
    /// `Execute` a portal.
    Execute {
        /// The portal name (empty for the unnamed one).
        portal: &'a str,
        /// The most rows to return; 0 for all.
        max_rows: i32,
    },
    /// `Close` a statement or portal.
    Close {
        /// Statement or portal.
        target: Target,
        /// Its name (empty for the unnamed one).
        name: &'a str,
    },
    /// `Sync`: end of an extended-protocol batch.
    Sync,
    /// `Flush`: send what is pending.
    Flush,
    /// `Terminate`: the client is leaving.
    Terminate,
    /// `CopyData` during `COPY FROM STDIN`.
    CopyData(&'a [u8]),
    /// `CopyDone`: end of `COPY FROM STDIN` data.
    CopyDone,
    /// `CopyFail`: the client aborts `COPY FROM STDIN`.
    CopyFail {
        /// Why.
        message: &'a str,
    },
    /// `FunctionCall` (the legacy fast-path interface).
    FunctionCall(FunctionCall<'a>),
    /// `PasswordMessage`, `SASLInitialResponse`, `SASLResponse` or `GSSResponse`, which share
    /// the tag `b'p'`: which one it is depends on the authentication request it answers.
    Password(PasswordMessage<'a>),
}

impl<'a> FrontendMessage<'a> {
    /// Parses the body of a message of type `tag`.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(tag, body);
        let msg = match tag {
            tag::QUERY => Self::Query {
                sql: r.cstr("query string")?,
            },
            tag::PARSE => Self::Parse {
                name: r.cstr("statement name")?,
                sql: r.cstr("query string")?,
                param_types: r.oids("parameter types")?,
            },
            tag::BIND => Self::Bind(Bind {
                portal: r.cstr("portal name")?,
                statement: r.cstr("statement name")?,
                param_formats: r.formats("parameter formats")?,
                params: r.values("parameter values")?,
                result_formats: r.formats("result formats")?,
            }),
            tag::DESCRIBE => Self::Describe {
                target: target(&mut r)?,
                name: r.cstr("name")?,
            },
            tag::EXECUTE => Self::Execute {
                portal: r.cstr("portal name")?,
                max_rows: r.i32("row limit")?,
            },
            tag::CLOSE => Self::Close {
                target: target(&mut r)?,
                name: r.cstr("name")?,
            },
            tag::SYNC => Self::Sync,
            tag::FLUSH => Self::Flush,
            tag::TERMINATE => Self::Terminate,
            tag::COPY_DATA => Self::CopyData(r.rest()),
            tag::COPY_DONE => Self::CopyDone,
            tag::COPY_FAIL => Self::CopyFail {
                message: r.cstr("error message")?,
            },
            tag::FUNCTION_CALL => Self::FunctionCall(FunctionCall {
                oid: r.u32("function OID")?,
                arg_formats: r.formats("argument formats")?,
                args: r.values("arguments")?,
                result_format: r.i16("result format")?,
            }),
            tag::PASSWORD => Self::Password(PasswordMessage { data: r.rest() }),
            other => return Err(ProtocolError::UnknownMessage(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Query { .. } => tag::QUERY,
            Self::Parse { .. } => tag::PARSE,
            Self::Bind(_) => tag::BIND,
            Self::Describe { .. } => tag::DESCRIBE,
            Self::Execute { .. } => tag::EXECUTE,
            Self::Close { .. } => tag::CLOSE,
            Self::Sync => tag::SYNC,
            Self::Flush => tag::FLUSH,
            Self::Terminate => tag::TERMINATE,
            Self::CopyData(_) => tag::COPY_DATA,
            Self::CopyDone => tag::COPY_DONE,
            Self::CopyFail { .. } => tag::COPY_FAIL,
            Self::FunctionCall(_) => tag::FUNCTION_CALL,
            Self::Password(_) => tag::PASSWORD,
        }
    }

    /// Writes the message. For a message that came from [`FrontendFrame::parse`] this gives
    /// back the frame's exact bytes. Fails, writing nothing, where the matching encoder would.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        match *self {
            Self::Query { sql } => query(out, sql),
            Self::Parse {
                name,
                sql,
                param_types,
            } => write::message(out, tag::PARSE, |out| {
                write::cstr(out, name, "statement name")?;
                write::cstr(out, sql, "query string")?;
                out.put_u16(write::count16(param_types.len(), "parameter types")?);
                out.put_slice(param_types.as_bytes());
                Ok(())
            }),
            Self::Bind(ref b) => write::message(out, tag::BIND, |out| {
                write::cstr(out, b.portal, "portal name")?;
                write::cstr(out, b.statement, "statement name")?;
                put_formats(out, b.param_formats, "parameter formats")?;
                write::parsed_values(out, b.params, "parameter values")?;
                put_formats(out, b.result_formats, "result formats")
            }),
            Self::Describe { target, name } => describe(out, target, name),
            Self::Execute { portal, max_rows } => execute(out, portal, max_rows),
            Self::Close { target, name } => close(out, target, name),
            Self::Sync => {
                sync(out);
                Ok(())
            }
            Self::Flush => {
                flush(out);
                Ok(())
            }
            Self::Terminate => {
                terminate(out);
                Ok(())
            }
            Self::CopyData(data) => copy_data(out, data),
            Self::CopyDone => {
                copy_done(out);
                Ok(())
            }
            Self::CopyFail { message } => copy_fail(out, message),
            Self::FunctionCall(ref call) => write::message(out, tag::FUNCTION_CALL, |out| {
                out.put_u32(call.oid);
                put_formats(out, call.arg_formats, "argument formats")?;
                write::parsed_values(out, call.args, "arguments")?;
                out.put_i16(call.result_format);
                Ok(())
            }),
            Self::Password(p) => write::message(out, tag::PASSWORD, |out| {
                out.put_slice(p.data);
                Ok(())
            }),
        }
    }
}

fn target(r: &mut Reader<'_>) -> Result<Target, ProtocolError> {
    let b = r.u8("target")?;
    Target::from_byte(b).ok_or_else(|| r.error("target", "expected 'S' or 'P'"))
}

fn put_formats(
    out: &mut BytesMut,
    formats: Formats<'_>,
    field: &'static str,
) -> Result<(), ProtocolError> {
    out.put_u16(write::count16(formats.len(), field)?);
    out.put_slice(formats.as_bytes());
    Ok(())
}

/// A `Bind` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind<'a> {
    /// The portal to create (empty for the unnamed portal).
    pub portal: &'a str,
    /// The prepared statement to bind (empty for the unnamed statement).
    pub statement: &'a str,
    /// Parameter format codes; see [`Formats::format_of`].
    pub param_formats: Formats<'a>,
    /// Parameter values (`None` is NULL).
    pub params: Values<'a>,
    /// Result column format codes; see [`Formats::format_of`].
    pub result_formats: Formats<'a>,
}

/// A `FunctionCall` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionCall<'a> {
    /// The function's OID.
    pub oid: u32,
    /// Argument format codes; see [`Formats::format_of`].
    pub arg_formats: Formats<'a>,
    /// Argument values (`None` is NULL).
    pub args: Values<'a>,
    /// The result's format code.
    pub result_format: i16,
}

/// The body of a `b'p'` message. The protocol does not say which message it is; the
/// authentication exchange in progress does, so pick the reading that matches it.
///
/// `Debug` shows only the length: the content is a credential.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordMessage<'a> {
    data: &'a [u8],
}

impl<'a> PasswordMessage<'a> {
    /// The raw body.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Read as a `PasswordMessage` (answering a cleartext or MD5 request): the password
    /// without its NUL. Fails unless the body is one NUL-terminated string.
    pub fn password(&self) -> Result<&'a [u8], ProtocolError> {
        let mut r = Reader::new(tag::PASSWORD, self.data);
        let password = r.cbytes("password")?;
        r.finish()?;
        Ok(password)
    }

    /// Like [`password`](Self::password), also requiring UTF-8 (tokens and capabilities
    /// are ASCII).
    pub fn password_str(&self) -> Result<&'a str, ProtocolError> {
        let mut r = Reader::new(tag::PASSWORD, self.data);
        let password = r.cstr("password")?;
        r.finish()?;
        Ok(password)
    }

    /// Read as a `SASLInitialResponse`: the chosen mechanism and the initial client response
    /// (`None` when the client sent length -1).
    pub fn sasl_initial_response(&self) -> Result<(&'a str, Option<&'a [u8]>), ProtocolError> {
        let mut r = Reader::new(tag::PASSWORD, self.data);
        let mechanism = r.cstr("SASL mechanism")?;
        let data = r.value("SASL initial response")?;
        r.finish()?;
        Ok((mechanism, data))
    }

    /// Read as a `SASLResponse`: the whole body is the mechanism's data.
    pub fn sasl_response(&self) -> &'a [u8] {
        self.data
    }

    /// Read as a `GSSResponse`: the whole body is the GSSAPI or SSPI token.
    pub fn gss_response(&self) -> &'a [u8] {
        self.data
    }
}

impl fmt::Debug for PasswordMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordMessage")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Writes a `PasswordMessage`: `password` followed by a NUL. Fails if it contains a NUL.
pub fn password(out: &mut BytesMut, password: &[u8]) -> Result<(), ProtocolError> {
    write::message(out, tag::PASSWORD, |out| {
        write::cbytes(out, password, "password")
    })
}

/// Writes a `SASLInitialResponse` choosing `mechanism`, with the initial response `data`
/// (`None` sends length -1).
pub fn sasl_initial_response(
    out: &mut BytesMut,
    mechanism: &str,
    data: Option<&[u8]>,
) -> Result<(), ProtocolError> {
    write::message(out, tag::PASSWORD, |out| {
        write::cstr(out, mechanism, "SASL mechanism")?;
        write::value(out, data, "SASL initial response")
    })
}

/// Writes a `SASLResponse` (also the layout of a `GSSResponse`).
pub fn sasl_response(out: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    write::message(out, tag::PASSWORD, |out| {
        out.put_slice(data);
        Ok(())
    })
}

/// Writes a `Query`.
pub fn query(out: &mut BytesMut, sql: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::QUERY, |out| write::cstr(out, sql, "query string"))
}

/// Writes a `Parse` of `sql` as statement `name`, with the parameter type OIDs the client
/// fixes (0 leaves a type to the server).
pub fn parse(
    out: &mut BytesMut,
    name: &str,
    sql: &str,
    param_types: &[u32],
) -> Result<(), ProtocolError> {
    write::message(out, tag::PARSE, |out| {
        write::cstr(out, name, "statement name")?;
        write::cstr(out, sql, "query string")?;
        out.put_u16(write::count16(param_types.len(), "parameter types")?);
        for &oid in param_types {
            out.put_u32(oid);
        }
        Ok(())
    })
}

/// Writes a `Bind` of `statement` into `portal`.
pub fn bind(
    out: &mut BytesMut,
    portal: &str,
    statement: &str,
    param_formats: &[i16],
    params: &[Option<&[u8]>],
    result_formats: &[i16],
) -> Result<(), ProtocolError> {
    write::message(out, tag::BIND, |out| {
        write::cstr(out, portal, "portal name")?;
        write::cstr(out, statement, "statement name")?;
        write::formats(out, param_formats, "parameter formats")?;
        write::values(out, params.iter().copied(), "parameter values")?;
        write::formats(out, result_formats, "result formats")
    })
}

/// Writes a `Describe` of a statement or portal.
pub fn describe(out: &mut BytesMut, target: Target, name: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::DESCRIBE, |out| {
        out.put_u8(target.as_byte());
        write::cstr(out, name, "name")
    })
}

/// Writes an `Execute` of `portal`, returning at most `max_rows` rows (0 for all).
pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) -> Result<(), ProtocolError> {
    write::message(out, tag::EXECUTE, |out| {
        write::cstr(out, portal, "portal name")?;
        out.put_i32(max_rows);
        Ok(())
    })
}

/// Writes a `Close` of a statement or portal.
pub fn close(out: &mut BytesMut, target: Target, name: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::CLOSE, |out| {
        out.put_u8(target.as_byte());
        write::cstr(out, name, "name")
    })
}

/// Writes a `Sync`.
pub fn sync(out: &mut BytesMut) {
    write::empty(out, tag::SYNC);
}

/// Writes a `Flush`.
pub fn flush(out: &mut BytesMut) {
    write::empty(out, tag::FLUSH);
}

/// Writes a `Terminate`.
pub fn terminate(out: &mut BytesMut) {
    write::empty(out, tag::TERMINATE);
}

/// Writes a `CopyData` (the same bytes in both directions). Fails on 2 GiB or more.
pub fn copy_data(out: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    write::message(out, tag::COPY_DATA, |out| {
        out.put_slice(data);
        Ok(())
    })
}

/// Writes a `CopyDone` (the same bytes in both directions).
pub fn copy_done(out: &mut BytesMut) {
    write::empty(out, tag::COPY_DONE);
}

/// Writes a `CopyFail` with the reason the copy is aborted.
pub fn copy_fail(out: &mut BytesMut, message: &str) -> Result<(), ProtocolError> {
    write::message(out, tag::COPY_FAIL, |out| {
        write::cstr(out, message, "error message")
    })
}

/// Writes a `FunctionCall` of function `oid`.
pub fn function_call(
    out: &mut BytesMut,
    oid: u32,
    arg_formats: &[i16],
    args: &[Option<&[u8]>],
    result_format: i16,
) -> Result<(), ProtocolError> {
    write::message(out, tag::FUNCTION_CALL, |out| {
        out.put_u32(oid);
        write::formats(out, arg_formats, "argument formats")?;
        write::values(out, args.iter().copied(), "arguments")?;
        out.put_i16(result_format);
        Ok(())
    })
}
