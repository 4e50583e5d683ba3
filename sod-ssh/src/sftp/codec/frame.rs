//! Splitting packets off a byte stream.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::request::decode_init;
use super::response::{decode_reply, decode_version};
use super::{
    ClientMessage, DecodeError, FrameError, Limits, Op, PacketType, Request, Response,
    ServerMessage,
};

/// The bytes before a packet's body: length, type, id.
const LENGTH_LEN: usize = 4;
const ID_END: usize = LENGTH_LEN + 1 + 4;

/// One whole SFTP packet, length field included, as it was read.
///
/// Its type and id are known without parsing ([`packet_type`](Self::packet_type),
/// [`id`](Self::id)), so a request that does not parse can still be answered by its id.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// At least the length and the type byte, plus the id for types that have one.
    raw: Bytes,
}

impl Frame {
    /// The type byte.
    pub fn packet_type(&self) -> PacketType {
        PacketType(self.raw.get(LENGTH_LEN).copied().unwrap_or_default())
    }

    /// The request id; `None` for `INIT` and `VERSION`, which have none.
    pub fn id(&self) -> Option<u32> {
        if !self.packet_type().has_id() {
            return None;
        }
        let id: [u8; 4] = self.raw.get(LENGTH_LEN + 1..ID_END)?.try_into().ok()?;
        Some(u32::from_be_bytes(id))
    }

    /// The whole packet, to forward unchanged.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The packet's size in bytes, length field included.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always false: a frame holds at least a length and a type byte.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The fields after the type byte and the id.
    pub fn payload(&self) -> &[u8] {
        let start = if self.packet_type().has_id() {
            ID_END
        } else {
            LENGTH_LEN + 1
        };
        self.raw.get(start..).unwrap_or_default()
    }

    /// The packet as a message from the client.
    pub fn client_message(&self) -> Result<ClientMessage<'_>, DecodeError> {
        let packet_type = self.packet_type();
        match self.id() {
            None if packet_type == PacketType::INIT => {
                decode_init(self.payload()).map(ClientMessage::Init)
            }
            Some(id) => Ok(ClientMessage::Request(Request {
                id,
                op: Op::decode(packet_type, self.payload())?,
            })),
            None => Err(DecodeError::NotA {
                packet_type,
                expected: "request",
            }),
        }
    }

    /// The packet as a message from the server.
    pub fn server_message(&self) -> Result<ServerMessage<'_>, DecodeError> {
        let packet_type = self.packet_type();
        match self.id() {
            None if packet_type == PacketType::VERSION => {
                decode_version(self.payload()).map(ServerMessage::Version)
            }
            Some(id) => Ok(ServerMessage::Response(Response {
                id,
                reply: decode_reply(packet_type, self.payload())?,
            })),
            None => Err(DecodeError::NotA {
                packet_type,
                expected: "response",
            }),
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Frame");
        d.field("type", &self.packet_type());
        if let Some(id) = self.id() {
            d.field("id", &id);
        }
        d.field("len", &self.raw.len()).finish()
    }
}

/// Splits one packet off the front of `buf`.
///
/// Returns `Ok(None)`, consuming nothing, until the whole packet is in; the length is checked
/// against `limits` as soon as its four bytes are, so an oversized packet is refused before
/// its body is waited for. Nothing is reserved on the peer's say-so.
pub fn decode_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, FrameError> {
    let Some(len) = buf.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
        return Ok(None);
    };
    if len > limits.max_packet {
        return Err(FrameError::TooLarge {
            len,
            max: limits.max_packet,
        });
    }
    if len == 0 {
        return Err(FrameError::TooShort {
            packet_type: None,
            len,
        });
    }
    // The type byte, if it is in, says whether an id must fit in the length.
    if let Some(&t) = buf.get(LENGTH_LEN) {
        let packet_type = PacketType(t);
        if packet_type.has_id() && len < 5 {
            return Err(FrameError::TooShort {
                packet_type: Some(packet_type),
                len,
            });
        }
    }
    let total = LENGTH_LEN.saturating_add(len as usize);
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame {
        raw: buf.split_to(total).freeze(),
    }))
}
