//! What the server sends: `VERSION`, then one response per request.

use bytes::{Bytes, BytesMut};

use super::read::Reader;
use super::write::packet;
use super::{
    Attrs, ByteStr, DecodeError, EncodeError, Handle, Names, PacketType, Pairs, StatusCode,
};

/// A packet from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// `VERSION`: the answer to `INIT`, without a request id.
    Version(Version<'a>),
    /// Any other packet.
    Response(Response<'a>),
}

impl ServerMessage<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Version(version) => version.encode(out),
            Self::Response(response) => response.encode(out),
        }
    }
}

/// `VERSION`: `uint32 version`, then extension pairs to the end of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version<'a> {
    /// The version the server will speak.
    pub version: u32,
    /// The extensions the server supports, each with its version as ASCII digits
    /// (`posix-rename@openssh.com` `1`).
    pub extensions: Pairs<'a>,
}

impl Version<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        packet(out, PacketType::VERSION, None, |w| {
            w.u32(self.version);
            self.extensions.encode_rest(w)
        })
    }
}

/// A response: the id of the request it answers, and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The id of the request answered.
    pub id: u32,
    /// The answer.
    pub reply: Reply<'a>,
}

impl Response<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        packet(
            out,
            self.reply.packet_type(),
            Some(self.id),
            |w| match self.reply {
                Reply::Status(status) => {
                    w.u32(status.code.0);
                    if let Some(text) = status.text {
                        w.string("message", text.message.as_bytes())?;
                        if let Some(language) = text.language {
                            w.string("language", language.as_bytes())?;
                        }
                    }
                    Ok(())
                }
                Reply::Handle(handle) => w.string("handle", handle.as_bytes()),
                Reply::Data(data) => w.string("data", data),
                Reply::Name(names) => names.encode(w),
                Reply::Attrs(attrs) => attrs.encode(w),
                Reply::ExtendedReply(data) => {
                    w.raw(data);
                    Ok(())
                }
            },
        )
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }
}

/// The answer in a [`Response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `STATUS`: success, end of file, or an error.
    Status(Status<'a>),
    /// `HANDLE`: `string handle`, the answer to `OPEN` and `OPENDIR`.
    Handle(Handle<'a>),
    /// `DATA`: `string data`, the answer to `READ`.
    Data(&'a [u8]),
    /// `NAME`: `uint32 count`, then `count` × (`string filename, string longname, ATTRS`).
    Name(Names<'a>),
    /// `ATTRS`: the answer to `STAT`, `LSTAT` and `FSTAT`.
    Attrs(Attrs<'a>),
    /// `EXTENDED_REPLY`: fields only the request's extension knows how to read.
    ExtendedReply(&'a [u8]),
}

impl Reply<'_> {
    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Status(_) => PacketType::STATUS,
            Self::Handle(_) => PacketType::HANDLE,
            Self::Data(_) => PacketType::DATA,
            Self::Name(_) => PacketType::NAME,
            Self::Attrs(_) => PacketType::ATTRS,
            Self::ExtendedReply(_) => PacketType::EXTENDED_REPLY,
        }
    }
}

/// `STATUS`: `uint32 code, string message, string language`.
///
/// Servers older than version 3 send the code alone, so the message and the language are
/// each optional on the wire (a language never without a message); they are kept as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    /// The code.
    pub code: StatusCode,
    /// The message and language tag, when sent.
    pub text: Option<StatusText<'a>>,
}

/// The human part of a [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusText<'a> {
    /// The message (OpenSSH: `No such file`, …).
    pub message: ByteStr<'a>,
    /// The language tag (OpenSSH: empty), when sent.
    pub language: Option<ByteStr<'a>>,
}

impl<'a> Status<'a> {
    /// The message, or an empty string when none was sent.
    pub fn message(&self) -> ByteStr<'a> {
        self.text.map(|t| t.message).unwrap_or_default()
    }
}

/// The most bytes of message [`status`] sends: a sentence for a person, never a payload.
const MAX_STATUS_MESSAGE: usize = 4096;

/// A `STATUS` packet answering request `id`, with `message` (cut to 4 KiB at a character
/// boundary) and an empty language tag, as OpenSSH's server writes them.
///
/// ```
/// use sod_ssh::sftp::codec::{StatusCode, status};
///
/// let packet = status(9, StatusCode::PERMISSION_DENIED, "sod: refused");
/// assert_eq!(&packet[..9], &[0, 0, 0, 29, 101, 0, 0, 0, 9]);
/// ```
pub fn status(id: u32, code: StatusCode, message: &str) -> Bytes {
    let mut end = message.len().min(MAX_STATUS_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let message = message.get(..end).unwrap_or_default();
    let response = Response {
        id,
        reply: Reply::Status(Status {
            code,
            text: Some(StatusText {
                message: ByteStr::from(message),
                language: Some(ByteStr::default()),
            }),
        }),
    };
    let mut out = BytesMut::with_capacity(message.len() + 21);
    // A message of at most 4 KiB always fits.
    let _ = response.encode(&mut out);
    out.freeze()
}

pub(super) fn decode_version(payload: &[u8]) -> Result<Version<'_>, DecodeError> {
    let mut r = Reader::new(PacketType::VERSION, payload);
    let version = r.u32("version")?;
    let extensions = Pairs::decode_rest(&mut r)?;
    r.finish()?;
    Ok(Version {
        version,
        extensions,
    })
}

pub(super) fn decode_reply(
    packet_type: PacketType,
    payload: &[u8],
) -> Result<Reply<'_>, DecodeError> {
    let mut r = Reader::new(packet_type, payload);
    let reply = match packet_type {
        PacketType::STATUS => {
            let code = StatusCode(r.u32("code")?);
            let text = match r.remaining() {
                0 => None,
                _ => {
                    let message = ByteStr::new(r.string("message")?);
                    let language = match r.remaining() {
                        0 => None,
                        _ => Some(ByteStr::new(r.string("language")?)),
                    };
                    Some(StatusText { message, language })
                }
            };
            Reply::Status(Status { code, text })
        }
        PacketType::HANDLE => Reply::Handle(Handle::new(r.string("handle")?)),
        PacketType::DATA => Reply::Data(r.string("data")?),
        PacketType::NAME => Reply::Name(Names::decode(&mut r)?),
        PacketType::ATTRS => Reply::Attrs(Attrs::decode(&mut r)?),
        PacketType::EXTENDED_REPLY => Reply::ExtendedReply(r.rest()),
        _ => {
            return Err(DecodeError::NotA {
                packet_type,
                expected: "response",
            });
        }
    };
    r.finish()?;
    Ok(reply)
}
