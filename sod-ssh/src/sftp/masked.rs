//! Masked reads: a file a masked principal opens is read whole by the gateway, masked once,
//! and served from that copy.

use std::fmt;

use bytes::Bytes;

use super::codec::{
    Attrs, Handle, OPENSSH_MAX_READ, Op, Reply, Request, Response, StatusCode, status,
};

/// The masking function: file bytes in, masked bytes out. The gateway passes one built on
/// `sod_core::masking::Masker::scrub` (over the bytes as lossy UTF-8, say).
pub(crate) type MaskFn = Box<dyn Fn(&[u8]) -> Vec<u8> + Send>;

/// A masked copy of a file, and the answers to reads of it.
///
/// Value detectors change lengths (a card number becomes `****1234`, a key becomes
/// `[REDACTED]`), and SFTP reads are offset-based and pipelined: masking each `DATA` packet
/// on its own would cut values at packet boundaries and shift every later offset. So the
/// [`Judge`](super::Judge) holds the server's `HANDLE` back, reads the file to its end with
/// reads of its own (up to a cap), masks the whole of it, and only then hands the client its
/// handle. From then on `READ` and `FSTAT` on that handle are answered from the masked copy;
/// `CLOSE` goes to the server, which closes its file, and drops the copy.
///
/// This is logic without IO: the gateway moves the bytes.
///
/// ```
/// use sod_ssh::sftp::MaskedFile;
/// use sod_ssh::sftp::codec::{self, Limits, Reply, ServerMessage};
///
/// let file = MaskedFile::new("card ****1234\n");
/// let mut answer = bytes::BytesMut::from(&file.read(4, 5, 100)[..]);
/// let frame = codec::decode_frame(&mut answer, &Limits::default())?.expect("a packet");
/// let ServerMessage::Response(r) = frame.server_message()? else { panic!() };
/// assert_eq!((r.id, r.reply), (4, Reply::Data(b"****1234\n")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MaskedFile {
    bytes: Bytes,
}

impl MaskedFile {
    /// The most data one answer carries: OpenSSH's server's own limit, so every `DATA` fits
    /// the client's packet limit. A client asking for more gets a short read and asks again.
    pub const MAX_DATA: u32 = OPENSSH_MAX_READ;

    /// A copy holding `masked`, the file's bytes after masking.
    pub fn new(masked: impl Into<Bytes>) -> Self {
        Self {
            bytes: masked.into(),
        }
    }

    /// The masked length: the size the client is told.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the masked copy is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The masked bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The answer to `READ` `id` of `len` bytes at `offset`: `DATA` with at most
    /// [`MAX_DATA`](Self::MAX_DATA) bytes, or `STATUS EOF` at or past the end — and for a
    /// read of zero bytes, as OpenSSH's server answers one (its client stops at the first
    /// empty `DATA`, so none is ever sent).
    pub fn read(&self, id: u32, offset: u64, len: u32) -> Bytes {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let len = len.min(Self::MAX_DATA) as usize;
        let end = start.saturating_add(len).min(self.bytes.len());
        if start >= end {
            return status(id, StatusCode::EOF, "End of file");
        }
        let data = self.bytes.slice(start..end);
        Response {
            id,
            reply: Reply::Data(&data),
        }
        .to_bytes()
        .unwrap_or_else(|_| status(id, StatusCode::FAILURE, "sod: read too large"))
    }

    /// The answer to `FSTAT` `id`: `ATTRS` with the masked size only (the server's other
    /// attributes describe the unmasked file).
    pub fn fstat(&self, id: u32) -> Bytes {
        Response {
            id,
            reply: Reply::Attrs(Attrs {
                size: Some(self.len()),
                ..Attrs::EMPTY
            }),
        }
        .to_bytes()
        .unwrap_or_else(|_| status(id, StatusCode::FAILURE, "sod: attributes too large"))
    }

    /// The answer to `request` when it is a `READ` or an `FSTAT` (of this file's handle: the
    /// caller matches handles), else `None`.
    pub fn answer(&self, request: &Request<'_>) -> Option<Bytes> {
        match request.op {
            Op::Read { offset, len, .. } => Some(self.read(request.id, offset, len)),
            Op::Fstat { .. } => Some(self.fstat(request.id)),
            _ => None,
        }
    }
}

impl fmt::Debug for MaskedFile {
    // Never the content: even masked, it is a file's data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskedFile({} bytes)", self.bytes.len())
    }
}

/// Reading a file whole before masking it: the gateway's own `READ`s, one at a time.
pub(crate) struct Load {
    open_id: u32,
    handle: Bytes,
    /// The server's `HANDLE` answer to the client's `OPEN`, held until the copy is ready.
    handle_reply: Bytes,
    shown: String,
    buf: Vec<u8>,
    mask: MaskFn,
    chunk: u32,
}

/// What a [`Load`] needs next.
pub(crate) enum Step {
    /// Another read ([`Load::read_request`]).
    More,
    /// The masked copy, and the `HANDLE` packet to send the client at last.
    Done(MaskedFile, Bytes),
    /// The open fails: answer the client's `OPEN` with this status, close the server's file.
    Failed(StatusCode, String),
}

impl Load {
    /// A load of the file `handle` names, opened by request `open_id` for `shown` (the path
    /// as the operation's text shows it).
    pub(crate) fn new(
        open_id: u32,
        handle: Bytes,
        handle_reply: Bytes,
        shown: String,
        mask: MaskFn,
        chunk: u32,
    ) -> Self {
        Self {
            open_id,
            handle,
            handle_reply,
            shown,
            buf: Vec::new(),
            mask,
            chunk: chunk.clamp(1, MaskedFile::MAX_DATA),
        }
    }

    /// The client's `OPEN` request id.
    pub(crate) fn open_id(&self) -> u32 {
        self.open_id
    }

    /// The server's handle.
    pub(crate) fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// Bytes read so far.
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }

    /// The next `READ`, as request `id`.
    pub(crate) fn read_request(&self, id: u32) -> Bytes {
        let request = Request {
            id,
            op: Op::Read {
                handle: Handle::new(&self.handle),
                offset: self.buf.len() as u64,
                len: self.chunk,
            },
        };
        // A handle comes out of a frame under the packet limit: this always encodes.
        request.to_bytes().unwrap_or_default()
    }

    /// Takes the server's answer to the last read (`None`: it did not parse). The buffer
    /// may hold at most `max_file` bytes, and `room` more than it holds now (what the
    /// session's other masked files leave).
    pub(crate) fn on_reply(
        &mut self,
        reply: Option<Reply<'_>>,
        max_file: usize,
        room: usize,
    ) -> Step {
        match reply {
            Some(Reply::Data(data)) => {
                if data.is_empty() || data.len() > self.chunk as usize {
                    return self.failed(format!(
                        "the server answered a read of {} asking for {} bytes with {}",
                        self.shown,
                        self.chunk,
                        data.len()
                    ));
                }
                let total = self.buf.len().saturating_add(data.len());
                if total > max_file {
                    return self.failed(format!(
                        "{} is larger than {}, the most a masked session may read",
                        self.shown,
                        size(max_file)
                    ));
                }
                if data.len() > room {
                    return self.failed(format!(
                        "this session holds too much masked data to open {} as well; \
                         close other files first",
                        self.shown
                    ));
                }
                self.buf.extend_from_slice(data);
                Step::More
            }
            Some(Reply::Status(s)) if s.code == StatusCode::EOF => {
                let masked = (self.mask)(&self.buf);
                self.buf = Vec::new();
                Step::Done(MaskedFile::new(masked), self.handle_reply.clone())
            }
            Some(Reply::Status(s)) => Step::Failed(
                s.code,
                format!(
                    "sod: reading {} to mask it failed: {}",
                    self.shown,
                    String::from_utf8_lossy(s.message().as_bytes())
                ),
            ),
            _ => self.failed(format!(
                "the server's answer to a read of {} is neither DATA nor STATUS",
                self.shown
            )),
        }
    }

    fn failed(&mut self, why: String) -> Step {
        self.buf = Vec::new();
        Step::Failed(StatusCode::FAILURE, format!("sod: {why}"))
    }
}

/// `n` bytes in MiB or KiB when it is a whole number of them.
fn size(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::sftp::codec::{Limits, ServerMessage, Status, decode_frame};

    fn reply(packet: &Bytes) -> (u32, String) {
        let mut buf = BytesMut::from(&packet[..]);
        let frame = decode_frame(&mut buf, &Limits::default())
            .expect("frames")
            .expect("whole");
        assert!(buf.is_empty());
        let ServerMessage::Response(r) = frame.server_message().expect("parses") else {
            panic!("a response")
        };
        let text = match r.reply {
            Reply::Data(d) => format!("DATA {}", String::from_utf8_lossy(d)),
            Reply::Status(s) => format!("STATUS {}", s.code),
            Reply::Attrs(a) => format!("ATTRS size={:?} flags={}", a.size, a.flags()),
            other => format!("{other:?}"),
        };
        (r.id, text)
    }

    #[test]
    fn reads_are_served_from_the_masked_copy() {
        let file = MaskedFile::new("0123456789");
        assert_eq!(reply(&file.read(1, 0, 4)), (1, "DATA 0123".into()));
        assert_eq!(reply(&file.read(2, 8, 4)), (2, "DATA 89".into()));
        assert_eq!(reply(&file.read(3, 10, 4)), (3, "STATUS EOF".into()));
        assert_eq!(
            reply(&file.read(4, u64::MAX, u32::MAX)),
            (4, "STATUS EOF".into())
        );
        assert_eq!(reply(&file.read(5, 0, 0)), (5, "STATUS EOF".into()));
        assert_eq!(
            reply(&file.fstat(6)),
            (6, "ATTRS size=Some(10) flags=1".into())
        );
        assert_eq!(format!("{file:?}"), "MaskedFile(10 bytes)");
    }

    #[test]
    fn a_read_is_at_most_what_openssh_would_send() {
        let file = MaskedFile::new(vec![b'x'; 600 * 1024]);
        let packet = file.read(1, 0, u32::MAX);
        assert_eq!(packet.len(), 13 + MaskedFile::MAX_DATA as usize);
        assert!(packet.len() <= 4 + Limits::default().max_packet as usize);
    }

    fn load(chunk: u32) -> Load {
        let upper: MaskFn = Box::new(|b: &[u8]| b.to_ascii_uppercase());
        Load::new(
            7,
            Bytes::from_static(b"\0\0\0\x01"),
            Bytes::from_static(b"handle reply"),
            "/f".into(),
            upper,
            chunk,
        )
    }

    #[test]
    fn a_load_reads_to_eof_then_masks_once() {
        let mut l = load(4);
        assert!(matches!(
            l.on_reply(Some(Reply::Data(b"abcd")), 100, 100),
            Step::More
        ));
        assert!(matches!(
            l.on_reply(Some(Reply::Data(b"ef")), 100, 100),
            Step::More
        ));
        assert_eq!(l.held(), 6);
        let eof = Reply::Status(Status {
            code: StatusCode::EOF,
            text: None,
        });
        let Step::Done(file, handle_reply) = l.on_reply(Some(eof), 100, 100) else {
            panic!("done")
        };
        assert_eq!(&file.bytes()[..], b"ABCDEF");
        assert_eq!(&handle_reply[..], b"handle reply");
    }

    #[test]
    fn a_load_fails_past_the_cap_and_on_nonsense() {
        let mut l = load(8);
        let Step::Failed(code, why) = l.on_reply(Some(Reply::Data(b"123456789")), 100, 100) else {
            panic!("too long for the request")
        };
        assert_eq!(code, StatusCode::FAILURE);
        assert!(why.contains("asking for 8 bytes with 9"), "{why}");
        let Step::Failed(_, why) = load(8).on_reply(Some(Reply::Data(b"")), 100, 100) else {
            panic!("empty DATA")
        };
        assert!(why.contains("with 0"), "{why}");
        let mut l = load(8);
        assert!(matches!(
            l.on_reply(Some(Reply::Data(b"12345678")), 10, 100),
            Step::More
        ));
        let Step::Failed(_, why) = l.on_reply(Some(Reply::Data(b"12345678")), 10, 100) else {
            panic!("past the cap")
        };
        assert_eq!(
            why,
            "sod: /f is larger than 10 bytes, the most a masked session may read"
        );
        let mut l = load(8);
        let Step::Failed(_, why) = l.on_reply(Some(Reply::Data(b"12")), 100, 1) else {
            panic!("past the session's budget")
        };
        assert!(why.contains("close other files"), "{why}");
        let denied = Reply::Status(Status {
            code: StatusCode::PERMISSION_DENIED,
            text: None,
        });
        let Step::Failed(code, _) = load(8).on_reply(Some(denied), 100, 100) else {
            panic!("the server's error")
        };
        assert_eq!(code, StatusCode::PERMISSION_DENIED);
        assert!(matches!(load(8).on_reply(None, 100, 100), Step::Failed(..)));
        assert_eq!(size(16 * 1024 * 1024), "16 MiB");
    }
}
