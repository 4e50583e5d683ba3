//! SPDY/3.1 frames on the wire (big-endian), and the per-direction codecs that carry the header
//! compression contexts.
//!
//! ```text
//! control: |1| version (15) = 3 | type (16) | flags (8) | length (24) | data
//! data:    |0| stream id (31)              | flags (8) | length (24) | data
//! ```

use std::io;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

/// The SPDY version of every control frame.
pub(super) const VERSION: u16 = 3;
/// Data frames and SYN_STREAM, SYN_REPLY, HEADERS: the sender's last frame on the stream.
pub(in crate::k8s) const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM: the receiver may not send on the stream.
pub(in crate::k8s) const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest frame payload (24-bit length).
pub(super) const MAX_LENGTH: usize = (1 << 24) - 1;
/// Stream ids are 31 bits.
const STREAM_ID_MASK: u32 = 0x7fff_ffff;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream violates the protocol.
pub(in crate::k8s) const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream is not wanted (what spdystream's `Stream.Reset` sends).
pub(in crate::k8s) const RST_CANCEL: u32 = 5;
/// GOAWAY status: a normal end of the session.
pub(in crate::k8s) const GOAWAY_OK: u32 = 0;
/// GOAWAY status: the peer violated the protocol.
pub(in crate::k8s) const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// An `InvalidData` error: the peer broke the protocol.
pub(super) fn protocol_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::k8s) struct Setting {
    /// `FLAG_SETTINGS_PERSIST_VALUE` (1), `FLAG_SETTINGS_PERSISTED` (2).
    pub(in crate::k8s) flags: u8,
    /// 24 bits: 4 is `SETTINGS_MAX_CONCURRENT_STREAMS`, 7 `SETTINGS_INITIAL_WINDOW_SIZE`, ...
    pub(in crate::k8s) id: u32,
    pub(in crate::k8s) value: u32,
}

/// A frame, header blocks decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::k8s) enum Frame {
    /// Opens a stream (here, always the client).
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 3 bits, 0 the highest.
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Ends a stream abnormally, both ways.
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        settings: Vec<Setting>,
    },
    /// The receiver of a ping the other side started (odd ids from the client) echoes it.
    Ping {
        id: u32,
    },
    /// No new streams: the session is ending.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Flow control: the receiver's window grew by `delta`.
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type SPDY/3.1 does not define (NOOP, CREDENTIAL, ...): to be
    /// ignored, as the specification says. Its payload is dropped (encoded empty).
    Unknown {
        kind: u16,
        flags: u8,
    },
}

/// Reads frames: one direction of a connection, with its header decompression context.
pub(in crate::k8s) struct FrameReader {
    headers: HeaderDecompressor,
}

impl FrameReader {
    pub(in crate::k8s) fn new() -> FrameReader {
        FrameReader {
            headers: HeaderDecompressor::new(),
        }
    }

    /// Takes one whole frame off the front of `buffer`; `None` until it holds one.
    ///
    /// # Errors
    /// The frame is malformed (`InvalidData`); the connection cannot go on.
    pub(in crate::k8s) fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Option<Frame>> {
        let Some(head) = buffer.first_chunk::<8>() else {
            return Ok(None);
        };
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if buffer.len() < 8 + length {
            buffer.reserve(8 + length - buffer.len());
            return Ok(None);
        }
        buffer.advance(8);
        let payload = buffer.split_to(length).freeze();
        if first & 0x8000_0000 == 0 {
            let stream_id = first & STREAM_ID_MASK;
            if stream_id == 0 {
                return Err(protocol_error("data frame on stream 0"));
            }
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload,
            }));
        }
        let version = (first >> 16) as u16 & 0x7fff;
        if version != VERSION {
            return Err(protocol_error(format!("SPDY version {version}")));
        }
        self.control(first as u16, flags, &payload).map(Some)
    }

    /// Reads from `reader` into `buffer` until a whole frame is there; `None` at the end of the
    /// connection between two frames.
    ///
    /// # Errors
    /// Reading failed, the connection ended inside a frame, or the frame is malformed.
    pub(in crate::k8s) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        buffer: &mut BytesMut,
    ) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.decode(buffer)? {
                return Ok(Some(frame));
            }
            if buffer.capacity() == buffer.len() {
                buffer.reserve(16 * 1024);
            }
            if reader.read_buf(buffer).await? == 0 {
                return if buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, p: &[u8]) -> io::Result<Frame> {
        let exact = |len: usize, name: &str| {
            if p.len() == len {
                Ok(())
            } else {
                Err(protocol_error(format!("{name} of {} bytes", p.len())))
            }
        };
        let at_least = |len: usize, name: &str| {
            if p.len() >= len {
                Ok(())
            } else {
                Err(protocol_error(format!("{name} of {} bytes", p.len())))
            }
        };
        let frame = match kind {
            SYN_STREAM => {
                at_least(10, "SYN_STREAM")?;
                Frame::SynStream {
                    stream_id: stream_id(p, 0)?,
                    associated_to: word(p, 4) & STREAM_ID_MASK,
                    priority: p[8] >> 5,
                    slot: p[9],
                    flags,
                    headers: self.headers.decompress(&p[10..])?,
                }
            }
            SYN_REPLY => {
                at_least(4, "SYN_REPLY")?;
                Frame::SynReply {
                    stream_id: stream_id(p, 0)?,
                    flags,
                    headers: self.headers.decompress(&p[4..])?,
                }
            }
            HEADERS => {
                at_least(4, "HEADERS")?;
                Frame::Headers {
                    stream_id: stream_id(p, 0)?,
                    flags,
                    headers: self.headers.decompress(&p[4..])?,
                }
            }
            RST_STREAM => {
                exact(8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: stream_id(p, 0)?,
                    status: word(p, 4),
                }
            }
            SETTINGS => {
                at_least(4, "SETTINGS")?;
                let count = word(p, 0) as usize;
                if count > (p.len() - 4) / 8 {
                    return Err(protocol_error("SETTINGS count beyond the frame"));
                }
                exact(4 + 8 * count, "SETTINGS")?;
                let settings = (0..count)
                    .map(|i| {
                        let at = 4 + 8 * i;
                        Setting {
                            flags: p[at],
                            id: word(p, at) & 0x00ff_ffff,
                            value: word(p, at + 4),
                        }
                    })
                    .collect();
                Frame::Settings { flags, settings }
            }
            PING => {
                exact(4, "PING")?;
                Frame::Ping { id: word(p, 0) }
            }
            GOAWAY => {
                exact(8, "GOAWAY")?;
                Frame::GoAway {
                    last_good_stream_id: word(p, 0) & STREAM_ID_MASK,
                    status: word(p, 4),
                }
            }
            WINDOW_UPDATE => {
                exact(8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: word(p, 0) & STREAM_ID_MASK,
                    delta: word(p, 4) & STREAM_ID_MASK,
                }
            }
            kind => Frame::Unknown { kind, flags },
        };
        Ok(frame)
    }
}

/// The big-endian word at `at` (the caller checked the length).
fn word(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn stream_id(p: &[u8], at: usize) -> io::Result<u32> {
    match word(p, at) & STREAM_ID_MASK {
        0 => Err(protocol_error("control frame for stream 0")),
        id => Ok(id),
    }
}

/// Writes frames: one direction of a connection, with its header compression context. Frames
/// must go on the wire in the order they are encoded.
pub(in crate::k8s) struct FrameWriter {
    headers: HeaderCompressor,
}

impl FrameWriter {
    /// # Errors
    /// The compressor cannot be primed with the dictionary.
    pub(in crate::k8s) fn new() -> io::Result<FrameWriter> {
        Ok(FrameWriter {
            headers: HeaderCompressor::new()?,
        })
    }

    /// Appends `frame` to `out`.
    ///
    /// # Errors
    /// A stream id of 0 or over 31 bits, a payload over 2^24 - 1 bytes, or compression failed.
    pub(in crate::k8s) fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> io::Result<()> {
        let mut p = Vec::new();
        let (kind, flags) = match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let id = check_stream_id(*stream_id)?;
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&flags_and_length(*flags, data.len())?.to_be_bytes());
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                p.extend_from_slice(&check_stream_id(*stream_id)?.to_be_bytes());
                p.extend_from_slice(&(associated_to & STREAM_ID_MASK).to_be_bytes());
                p.extend_from_slice(&[(priority & 0x07) << 5, *slot]);
                p.extend_from_slice(&self.headers.compress(headers)?);
                (SYN_STREAM, *flags)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                p.extend_from_slice(&check_stream_id(*stream_id)?.to_be_bytes());
                p.extend_from_slice(&self.headers.compress(headers)?);
                (SYN_REPLY, *flags)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                p.extend_from_slice(&check_stream_id(*stream_id)?.to_be_bytes());
                p.extend_from_slice(&self.headers.compress(headers)?);
                (HEADERS, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                p.extend_from_slice(&check_stream_id(*stream_id)?.to_be_bytes());
                p.extend_from_slice(&status.to_be_bytes());
                (RST_STREAM, 0)
            }
            Frame::Settings { flags, settings } => {
                let count = u32::try_from(settings.len())
                    .map_err(|_| protocol_error("too many settings"))?;
                p.extend_from_slice(&count.to_be_bytes());
                for setting in settings {
                    let flag_and_id = u32::from(setting.flags) << 24 | (setting.id & 0x00ff_ffff);
                    p.extend_from_slice(&flag_and_id.to_be_bytes());
                    p.extend_from_slice(&setting.value.to_be_bytes());
                }
                (SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                p.extend_from_slice(&id.to_be_bytes());
                (PING, 0)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                p.extend_from_slice(&(last_good_stream_id & STREAM_ID_MASK).to_be_bytes());
                p.extend_from_slice(&status.to_be_bytes());
                (GOAWAY, 0)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                p.extend_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
                p.extend_from_slice(&(delta & STREAM_ID_MASK).to_be_bytes());
                (WINDOW_UPDATE, 0)
            }
            Frame::Unknown { kind, flags } => (*kind, *flags),
        };
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&flags_and_length(flags, p.len())?.to_be_bytes());
        out.extend_from_slice(&p);
        Ok(())
    }
}

fn check_stream_id(id: u32) -> io::Result<u32> {
    if id == 0 || id > STREAM_ID_MASK {
        return Err(protocol_error(format!("stream id {id}")));
    }
    Ok(id)
}

fn flags_and_length(flags: u8, len: usize) -> io::Result<u32> {
    if len > MAX_LENGTH {
        return Err(protocol_error(format!("frame payload of {len} bytes")));
    }
    Ok(u32::from(flags) << 24 | len as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(writer: &mut FrameWriter, frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        writer.encode(frame, &mut out).expect("encodes");
        out
    }

    fn decode_all(reader: &mut FrameReader, bytes: &[u8]) -> Vec<Frame> {
        let mut buffer = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = reader.decode(&mut buffer).expect("decodes") {
            frames.push(frame);
        }
        assert!(buffer.is_empty(), "{} bytes left", buffer.len());
        frames
    }

    #[test]
    fn fixed_frames_have_their_wire_form() {
        let mut writer = FrameWriter::new().expect("writer");
        assert_eq!(
            encode(&mut writer, &Frame::Ping { id: 1 }),
            [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(
            encode(
                &mut writer,
                &Frame::Data {
                    stream_id: 5,
                    flags: FLAG_FIN,
                    data: Bytes::from_static(b"hi"),
                }
            ),
            [0, 0, 0, 5, 0x01, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            encode(
                &mut writer,
                &Frame::RstStream {
                    stream_id: 3,
                    status: 5
                }
            ),
            [0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]
        );
        assert_eq!(
            encode(
                &mut writer,
                &Frame::GoAway {
                    last_good_stream_id: 7,
                    status: GOAWAY_OK
                }
            ),
            [0x80, 0x03, 0x00, 0x07, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0]
        );
        assert_eq!(
            encode(
                &mut writer,
                &Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 0x1_0000
                }
            ),
            [0x80, 0x03, 0x00, 0x09, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0]
        );
        assert_eq!(
            encode(
                &mut writer,
                &Frame::Settings {
                    flags: 0,
                    settings: vec![Setting {
                        flags: 1,
                        id: 7,
                        value: 65536
                    }],
                }
            ),
            [
                0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 7, 0, 1, 0, 0
            ]
        );
    }

    #[test]
    fn syn_stream_fields_sit_before_the_header_block() {
        let mut writer = FrameWriter::new().expect("writer");
        let bytes = encode(
            &mut writer,
            &Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                slot: 0,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                headers: Headers::new().with("streamtype", "stdin"),
            },
        );
        assert_eq!(bytes[..5], [0x80, 0x03, 0x00, 0x01, 0x03]);
        let length = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
        assert_eq!(length, bytes.len() - 8);
        assert_eq!(bytes[8..18], [0, 0, 0, 3, 0, 0, 0, 1, 0xe0, 0]);
        assert_eq!(bytes[18], 0x78, "then the zlib stream");
    }

    #[test]
    fn every_frame_round_trips_with_headers_on_one_context() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: Headers::new().with("streamtype", "error"),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::new(),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                slot: 9,
                flags: FLAG_FIN,
                headers: Headers::new().with("streamtype", "stdin"),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: Headers::new().with("x-more", "a\0b"),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"payload"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_PROTOCOL_ERROR,
            },
            Frame::Settings {
                flags: 1,
                settings: vec![
                    Setting {
                        flags: 0,
                        id: 4,
                        value: 100,
                    },
                    Setting {
                        flags: 2,
                        id: 7,
                        value: 1 << 20,
                    },
                ],
            },
            Frame::Ping { id: 3 },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1000,
            },
            Frame::Unknown { kind: 10, flags: 0 },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: GOAWAY_PROTOCOL_ERROR,
            },
        ];
        let mut writer = FrameWriter::new().expect("writer");
        let mut bytes = Vec::new();
        for frame in &frames {
            writer.encode(frame, &mut bytes).expect("encodes");
        }
        assert_eq!(decode_all(&mut FrameReader::new(), &bytes), frames);
    }

    #[test]
    fn frames_come_out_only_when_whole() {
        let mut writer = FrameWriter::new().expect("writer");
        let mut bytes = Vec::new();
        let frames = [
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: Headers::new().with("streamtype", "stdout"),
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"out\n"),
            },
        ];
        for frame in &frames {
            writer.encode(frame, &mut bytes).expect("encodes");
        }
        // Fed a byte at a time, each frame appears exactly when its last byte arrives.
        let mut reader = FrameReader::new();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for &byte in &bytes {
            buffer.extend_from_slice(&[byte]);
            if let Some(frame) = reader.decode(&mut buffer).expect("decodes") {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, frames);
        assert!(buffer.is_empty());
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let bad: [&[u8]; 7] = [
            // data on stream 0
            &[0, 0, 0, 0, 0, 0, 0, 1, b'x'],
            // SPDY/2
            &[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            // PING of 3 bytes
            &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 3, 0, 0, 1],
            // RST_STREAM for stream 0
            &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1],
            // SETTINGS claiming 2 entries, holding 1
            &[
                0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 1,
            ],
            // SYN_STREAM without room for its fixed fields
            &[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 4, 0, 0, 0, 1],
            // SYN_REPLY whose header block is not zlib
            &[0x80, 0x03, 0x00, 0x02, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4],
        ];
        for bytes in bad {
            let mut buffer = BytesMut::from(bytes);
            assert!(
                FrameReader::new().decode(&mut buffer).is_err(),
                "{bytes:02x?}"
            );
        }
        let mut writer = FrameWriter::new().expect("writer");
        let mut out = Vec::new();
        for frame in [
            Frame::Data {
                stream_id: 0,
                flags: 0,
                data: Bytes::new(),
            },
            Frame::Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from(vec![0; MAX_LENGTH + 1]),
            },
        ] {
            assert!(writer.encode(&frame, &mut out).is_err());
        }
    }

    #[tokio::test]
    async fn read_ends_cleanly_only_between_frames() {
        let mut writer = FrameWriter::new().expect("writer");
        let bytes = encode(&mut writer, &Frame::Ping { id: 1 });
        let mut reader = FrameReader::new();
        let mut buffer = BytesMut::new();
        let mut whole = &bytes[..];
        assert_eq!(
            reader.read(&mut whole, &mut buffer).await.expect("reads"),
            Some(Frame::Ping { id: 1 })
        );
        assert_eq!(
            reader.read(&mut whole, &mut buffer).await.expect("reads"),
            None
        );
        let mut cut = &bytes[..5];
        let error = reader
            .read(&mut cut, &mut BytesMut::new())
            .await
            .expect_err("truncated");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
