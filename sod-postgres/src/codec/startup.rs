//! The startup phase: the untagged packets a connection opens with.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::read::{Reader, be_i32};
use super::write::{self, unencodable};
use super::{Limits, ProtocolError};

/// The request code of an `SSLRequest` (1234.5679).
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// The request code of a `GSSENCRequest` (1234.5680).
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// The request code of a `CancelRequest` (1234.5678).
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// The one byte a server answers an `SSLRequest` or `GSSENCRequest` with to go ahead: the
/// TLS (or GSSAPI) handshake follows. Not a message: no tag, no length.
pub const ENCRYPTION_ACCEPTED: u8 = b'S';
/// The one byte a server answers an `SSLRequest` or `GSSENCRequest` with to refuse: the client
/// may continue in the clear (or give up).
pub const ENCRYPTION_REFUSED: u8 = b'N';
/// Protocol version 3.0, as a `StartupMessage` carries it (major in the high 16 bits).
pub const PROTOCOL_3_0: u32 = 3 << 16;
/// Protocol version 3.2 (PostgreSQL 18: variable-length cancel keys).
pub const PROTOCOL_3_2: u32 = (3 << 16) | 2;

/// The length of a packet with a code and nothing else (`SSLRequest`, `GSSENCRequest`).
const CODE_ONLY_LEN: usize = 8;
/// The shortest and longest cancel keys (4 bytes up to protocol 3.0, up to 256 from 3.2).
pub(crate) const CANCEL_KEY_LEN: std::ops::RangeInclusive<usize> = 4..=256;
/// Length field, code and process id before a cancel key.
const CANCEL_FIXED_LEN: usize = 12;

/// The first packet of a connection (or the first after TLS or GSSAPI encryption was set
/// up), which has no tag byte.
///
/// `Debug` shows the length of a cancel key, not the key.
#[derive(Clone, PartialEq, Eq)]
pub enum Startup {
    /// `SSLRequest`: the client asks for TLS. Answer with the single byte `b'S'` and start
    /// the TLS handshake, or `b'N'` and expect a `Startup` in the clear.
    Ssl,
    /// `GSSENCRequest`: the client asks for GSSAPI encryption. Answer `b'N'` to refuse.
    GssEnc,
    /// `CancelRequest`: cancel the running query of the backend `pid` if `key` matches. The
    /// connection carries nothing else and is closed by the client.
    Cancel {
        /// The process id from `BackendKeyData`.
        pid: i32,
        /// The secret key from `BackendKeyData`: 4 bytes before protocol 3.2, up to 256 after.
        key: Bytes,
    },
    /// `StartupMessage`: protocol version and connection parameters (`user`, `database`,
    /// `options`, `application_name`, `_pq_.*` protocol options, …) in the order sent;
    /// duplicates are kept.
    Startup {
        /// The protocol version: major in the high 16 bits (always 3), minor in the low 16.
        version: u32,
        /// The parameters as sent, in order.
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// The value of the first parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// Writes the packet. Fails, writing nothing, on an empty parameter name, a NUL in a
    /// parameter, a cancel key not of 4 to 256 bytes, or a version that is not 3.x.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        match self {
            Self::Ssl => {
                ssl_request(out);
                Ok(())
            }
            Self::GssEnc => {
                gss_enc_request(out);
                Ok(())
            }
            Self::Cancel { pid, key } => cancel_request(out, *pid, key),
            Self::Startup { version, params } => write::untagged(out, |out| {
                if version >> 16 != 3 {
                    return Err(unencodable(
                        "protocol version",
                        "only protocol 3 is supported",
                    ));
                }
                out.put_u32(*version);
                write_params(out, params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }),
        }
    }
}

impl fmt::Debug for Startup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ssl => f.write_str("Ssl"),
            Self::GssEnc => f.write_str("GssEnc"),
            Self::Cancel { pid, key } => f
                .debug_struct("Cancel")
                .field("pid", pid)
                .field("key_len", &key.len())
                .finish_non_exhaustive(),
            Self::Startup { version, params } => f
                .debug_struct("Startup")
                .field(
                    "version",
                    &format_args!("{}.{}", version >> 16, version & 0xffff),
                )
                .field("params", params)
                .finish(),
        }
    }
}

/// Whether `buf` starts like a TLS handshake record (`0x16 0x03`) rather than a startup
/// packet: a client using PostgreSQL 17's `sslnegotiation=direct` starts TLS at once,
/// without an `SSLRequest`. With fewer than two bytes, looks at what is there.
/// [`decode_startup`] itself reports such a connection as [`ProtocolError::TooLarge`].
pub fn starts_with_tls_handshake(buf: &[u8]) -> bool {
    match buf {
        [] => false,
        [first] => *first == 0x16,
        [first, second, ..] => *first == 0x16 && *second == 0x03,
    }
}

/// Decodes the untagged packet that opens a connection: `Ok(None)` until all of it is in
/// `buf`, then splits it off `buf`.
///
/// The length and the request code are checked as soon as they are in the buffer: a length
/// below 8 or above [`Limits::max_startup`], a code that is neither a known request nor
/// protocol 3.x ([`ProtocolError::UnsupportedProtocol`]), or a length the request cannot have
/// fail before the rest is waited for.
pub fn decode_startup(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Startup>, ProtocolError> {
    let Some(len) = be_i32(buf.get(0..4)) else {
        return Ok(None);
    };
    let bad_length = ProtocolError::BadLength {
        tag: 0,
        len: i64::from(len),
    };
    let len = match usize::try_from(len) {
        Ok(len) if len >= CODE_ONLY_LEN => len,
        _ => return Err(bad_length),
    };
    if len > limits.max_startup {
        return Err(ProtocolError::TooLarge {
            tag: 0,
            len,
            max: limits.max_startup,
        });
    }
    let Some(code) = be_i32(buf.get(4..8)) else {
        return Ok(None);
    };
    let code = u32::from_be_bytes(code.to_be_bytes());
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if len != CODE_ONLY_LEN => return Err(bad_length),
        CANCEL_REQUEST_CODE => {
            let key_len = len.saturating_sub(CANCEL_FIXED_LEN);
            if len < CANCEL_FIXED_LEN || !CANCEL_KEY_LEN.contains(&key_len) {
                return Err(bad_length);
            }
        }
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {}
        version if version >> 16 == 3 => {}
        other => return Err(ProtocolError::UnsupportedProtocol(other)),
    }
    if buf.len() < len {
        return Ok(None);
    }
    let packet = buf.split_to(len).freeze();
    parse(code, &packet).map(Some)
}

/// Parses a whole packet whose code was already checked.
fn parse(code: u32, packet: &Bytes) -> Result<Startup, ProtocolError> {
    let body = packet.get(CODE_ONLY_LEN..).unwrap_or_default();
    let mut r = Reader::new(0, body);
    match code {
        SSL_REQUEST_CODE => Ok(Startup::Ssl),
        GSSENC_REQUEST_CODE => Ok(Startup::GssEnc),
        CANCEL_REQUEST_CODE => {
            let pid = r.i32("process id")?;
            let start = CODE_ONLY_LEN.saturating_add(r.pos());
            let key = packet.slice(start.min(packet.len())..);
            if !CANCEL_KEY_LEN.contains(&key.len()) {
                return Err(r.error("cancel key", "the key must be 4 to 256 bytes"));
            }
            Ok(Startup::Cancel { pid, key })
        }
        version => {
            let mut params = Vec::new();
            loop {
                let name = r.cstr("parameter name")?;
                if name.is_empty() {
                    break;
                }
                let value = r.cstr("parameter value")?;
                params.push((name.to_owned(), value.to_owned()));
            }
            r.finish()?;
            Ok(Startup::Startup { version, params })
        }
    }
}

fn write_params<'p>(
    out: &mut BytesMut,
    params: impl IntoIterator<Item = (&'p str, &'p str)>,
) -> Result<(), ProtocolError> {
    for (name, value) in params {
        if name.is_empty() {
            return Err(unencodable("parameter name", "it is empty"));
        }
        write::cstr(out, name, "parameter name")?;
        write::cstr(out, value, "parameter value")?;
    }
    out.put_u8(0);
    Ok(())
}

/// Writes a `StartupMessage` for protocol 3.0 with `params` (`user` is required by
/// servers; `database`, `client_encoding`, `application_name`, … are optional). Fails,
/// writing nothing, on an empty name or a NUL in a name or value.
pub fn startup(out: &mut BytesMut, params: &[(&str, &str)]) -> Result<(), ProtocolError> {
    write::untagged(out, |out| {
        out.put_u32(PROTOCOL_3_0);
        write_params(out, params.iter().copied())
    })
}

/// Writes an `SSLRequest`.
pub fn ssl_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_u32(SSL_REQUEST_CODE);
}

/// Writes a `GSSENCRequest`.
pub fn gss_enc_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_u32(GSSENC_REQUEST_CODE);
}

/// Writes a `CancelRequest` for backend `pid` with its secret `key` (4 bytes, or up to 256
/// with protocol 3.2). Fails, writing nothing, on another key length.
pub fn cancel_request(out: &mut BytesMut, pid: i32, key: &[u8]) -> Result<(), ProtocolError> {
    if !CANCEL_KEY_LEN.contains(&key.len()) {
        return Err(unencodable("cancel key", "the key must be 4 to 256 bytes"));
    }
    write::untagged(out, |out| {
        out.put_u32(CANCEL_REQUEST_CODE);
        out.put_i32(pid);
        out.put_slice(key);
        Ok(())
    })
}
