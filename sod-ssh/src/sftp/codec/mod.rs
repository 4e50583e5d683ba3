//! SFTP version 3 on the wire, both directions, byte-exact.
//!
//! The layouts are draft-ietf-secsh-filexfer-02 with OpenSSH's extensions (its `PROTOCOL`
//! file, section 4), checked against OpenSSH's `sftp-server.c` and `sftp-client.c`.
//!
//! - [`decode_frame`] splits one packet off a read buffer as a [`Frame`]: `uint32 length`
//!   (not counting itself), `byte type`, then `uint32 id` for every type but `INIT` and
//!   `VERSION`. The length is checked against [`Limits`] as soon as its four bytes are in,
//!   before the body is waited for. A frame keeps its bytes as [`Bytes`](bytes::Bytes):
//!   splitting it off copies nothing, and [`Frame::raw`] forwards exactly what was read.
//! - [`Frame::client_message`] / [`Frame::server_message`]: a typed view that borrows from
//!   the frame ([`ClientMessage`], [`ServerMessage`]). Strings are [`ByteStr`]s and handles
//!   [`Handle`]s — raw bytes, never decoded as UTF-8, because OpenSSH's handles are four binary
//!   bytes and file names need not be UTF-8. Lists ([`Pairs`], [`Names`], [`IdList`]) are
//!   validated once and iterate without allocating.
//! - `encode` on every message writes exactly the bytes it was decoded from, or nothing.
//!   [`status`] builds the `STATUS` packets a gateway answers with itself.
//!
//! # Bad input
//!
//! Everything here reads bytes from untrusted peers. No input makes it panic or allocate: a
//! decoded message is a set of slices of its frame, and every count (`NAME` entries,
//! extension pairs, extended attributes) is checked against the bytes that are actually there
//! before anything is walked. Parsing checks that nothing follows the last field, rejects
//! `ATTRS` flag bits it does not know (they would change the layout) and names the field and
//! the problem when it fails: `SFTP NAME count 4000000 exceeds what the packet holds (9 bytes
//! left)`. A [`FrameError`] leaves the stream out of sync (close the channel); a
//! [`DecodeError`] leaves the framing intact (answer the request, go on).
//!
//! ```
//! use bytes::BytesMut;
//! use sod_ssh::sftp::codec::{self, ByteStr, ClientMessage, Limits, Op, Request};
//!
//! let mut wire = BytesMut::new();
//! Request { id: 7, op: Op::Stat { path: ByteStr::from("notes.txt") } }.encode(&mut wire)?;
//! let frame = codec::decode_frame(&mut wire, &Limits::default())?.expect("a whole packet");
//! assert_eq!(frame.id(), Some(7));
//! let ClientMessage::Request(request) = frame.client_message()? else { panic!("a request") };
//! assert_eq!(request.op, Op::Stat { path: ByteStr::from("notes.txt") });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::BitOr;

mod attrs;
mod frame;
mod lists;
mod names;
mod read;
mod request;
mod response;
mod strings;
mod write;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use attrs::{Attrs, Owner, Times, attr_flags};
pub use frame::{Frame, decode_frame};
pub use lists::{IdList, IdListIter, Pairs, PairsIter};
pub use names::{NameEntry, Names, NamesIter};
pub use request::{ClientMessage, Extended, Init, Op, Request};
pub use response::{Reply, Response, ServerMessage, Status, StatusText, Version, status};
pub use strings::{ByteStr, Handle};

/// The protocol version this codec speaks.
pub const VERSION_3: u32 = 3;

/// OpenSSH's `SFTP_MAX_MSG_LENGTH`: the largest length field `sftp-server` and `sftp` accept
/// before they drop the connection.
pub const OPENSSH_MAX_PACKET: u32 = 256 * 1024;

/// OpenSSH's `SFTP_MAX_READ_LENGTH`: the most data `sftp-server` returns for one `READ`, so a
/// `DATA` packet always fits [`OPENSSH_MAX_PACKET`].
pub const OPENSSH_MAX_READ: u32 = OPENSSH_MAX_PACKET - 1024;

/// Size limits [`decode_frame`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest length field accepted (the packet without its four length bytes).
    /// Default [`OPENSSH_MAX_PACKET`] plus 1 KiB: OpenSSH never sends more than its own
    /// limit, and the margin leaves room for clients that count the header differently.
    pub max_packet: u32,
}

impl Limits {
    /// The defaults: 257 KiB per packet.
    pub const DEFAULT: Limits = Limits {
        max_packet: OPENSSH_MAX_PACKET + 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An SFTP packet type: the byte after the length. Any byte value can arrive; the constants
/// name the ones version 3 defines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketType(pub u8);

impl PacketType {
    /// `SSH_FXP_INIT`: the client's hello (no request id).
    pub const INIT: Self = Self(1);
    /// `SSH_FXP_VERSION`: the server's hello (no request id).
    pub const VERSION: Self = Self(2);
    /// `SSH_FXP_OPEN`.
    pub const OPEN: Self = Self(3);
    /// `SSH_FXP_CLOSE`.
    pub const CLOSE: Self = Self(4);
    /// `SSH_FXP_READ`.
    pub const READ: Self = Self(5);
    /// `SSH_FXP_WRITE`.
    pub const WRITE: Self = Self(6);
    /// `SSH_FXP_LSTAT`.
    pub const LSTAT: Self = Self(7);
    /// `SSH_FXP_FSTAT`.
    pub const FSTAT: Self = Self(8);
    /// `SSH_FXP_SETSTAT`.
    pub const SETSTAT: Self = Self(9);
    /// `SSH_FXP_FSETSTAT`.
    pub const FSETSTAT: Self = Self(10);
    /// `SSH_FXP_OPENDIR`.
    pub const OPENDIR: Self = Self(11);
    /// `SSH_FXP_READDIR`.
    pub const READDIR: Self = Self(12);
    /// `SSH_FXP_REMOVE`.
    pub const REMOVE: Self = Self(13);
    /// `SSH_FXP_MKDIR`.
    pub const MKDIR: Self = Self(14);
    /// `SSH_FXP_RMDIR`.
    pub const RMDIR: Self = Self(15);
    /// `SSH_FXP_REALPATH`.
    pub const REALPATH: Self = Self(16);
    /// `SSH_FXP_STAT`.
    pub const STAT: Self = Self(17);
    /// `SSH_FXP_RENAME`.
    pub const RENAME: Self = Self(18);
    /// `SSH_FXP_READLINK`.
    pub const READLINK: Self = Self(19);
    /// `SSH_FXP_SYMLINK`.
    pub const SYMLINK: Self = Self(20);
    /// `SSH_FXP_STATUS`.
    pub const STATUS: Self = Self(101);
    /// `SSH_FXP_HANDLE`.
    pub const HANDLE: Self = Self(102);
    /// `SSH_FXP_DATA`.
    pub const DATA: Self = Self(103);
    /// `SSH_FXP_NAME`.
    pub const NAME: Self = Self(104);
    /// `SSH_FXP_ATTRS`.
    pub const ATTRS: Self = Self(105);
    /// `SSH_FXP_EXTENDED`: a named extension request.
    pub const EXTENDED: Self = Self(200);
    /// `SSH_FXP_EXTENDED_REPLY`.
    pub const EXTENDED_REPLY: Self = Self(201);

    /// Whether a request id follows the type byte: every packet but `INIT` and `VERSION`
    /// (unknown types included: the draft gives every other packet an id).
    pub fn has_id(self) -> bool {
        self != Self::INIT && self != Self::VERSION
    }

    /// The name without its `SSH_FXP_` prefix, for a type version 3 defines.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "INIT",
            2 => "VERSION",
            3 => "OPEN",
            4 => "CLOSE",
            5 => "READ",
            6 => "WRITE",
            7 => "LSTAT",
            8 => "FSTAT",
            9 => "SETSTAT",
            10 => "FSETSTAT",
            11 => "OPENDIR",
            12 => "READDIR",
            13 => "REMOVE",
            14 => "MKDIR",
            15 => "RMDIR",
            16 => "REALPATH",
            17 => "STAT",
            18 => "RENAME",
            19 => "READLINK",
            20 => "SYMLINK",
            101 => "STATUS",
            102 => "HANDLE",
            103 => "DATA",
            104 => "NAME",
            105 => "ATTRS",
            200 => "EXTENDED",
            201 => "EXTENDED_REPLY",
            _ => return None,
        })
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

impl fmt::Debug for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketType({self})")
    }
}

/// A `STATUS` code. Servers may send codes version 3 does not define; they are kept as sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u32);

impl StatusCode {
    /// `SSH_FX_OK`.
    pub const OK: Self = Self(0);
    /// `SSH_FX_EOF`: end of file, or no more directory entries.
    pub const EOF: Self = Self(1);
    /// `SSH_FX_NO_SUCH_FILE`.
    pub const NO_SUCH_FILE: Self = Self(2);
    /// `SSH_FX_PERMISSION_DENIED`: what the gateway answers a refused request with.
    pub const PERMISSION_DENIED: Self = Self(3);
    /// `SSH_FX_FAILURE`.
    pub const FAILURE: Self = Self(4);
    /// `SSH_FX_BAD_MESSAGE`: a packet that does not follow its layout.
    pub const BAD_MESSAGE: Self = Self(5);
    /// `SSH_FX_NO_CONNECTION`.
    pub const NO_CONNECTION: Self = Self(6);
    /// `SSH_FX_CONNECTION_LOST`.
    pub const CONNECTION_LOST: Self = Self(7);
    /// `SSH_FX_OP_UNSUPPORTED`: a request type or extension the peer does not implement.
    pub const OP_UNSUPPORTED: Self = Self(8);

    /// The name without its `SSH_FX_` prefix, for a code version 3 defines.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "OK",
            1 => "EOF",
            2 => "NO_SUCH_FILE",
            3 => "PERMISSION_DENIED",
            4 => "FAILURE",
            5 => "BAD_MESSAGE",
            6 => "NO_CONNECTION",
            7 => "CONNECTION_LOST",
            8 => "OP_UNSUPPORTED",
            _ => return None,
        })
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusCode({self})")
    }
}

/// The `pflags` of an `OPEN` (`SSH_FXF_*`), kept as sent.
///
/// Unknown bits do not change the packet's layout, so the codec keeps them; what they mean
/// is for the judge to refuse ([`unknown_bits`](Self::unknown_bits)).
///
/// ```
/// use sod_ssh::sftp::codec::OpenFlags;
///
/// let upload = OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::TRUNC;
/// assert!(upload.contains(OpenFlags::CREAT) && !upload.contains(OpenFlags::READ));
/// assert_eq!(OpenFlags(0x40).unknown_bits(), 0x40);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    /// `SSH_FXF_READ`.
    pub const READ: Self = Self(0x01);
    /// `SSH_FXF_WRITE`.
    pub const WRITE: Self = Self(0x02);
    /// `SSH_FXF_APPEND`.
    pub const APPEND: Self = Self(0x04);
    /// `SSH_FXF_CREAT`.
    pub const CREAT: Self = Self(0x08);
    /// `SSH_FXF_TRUNC`.
    pub const TRUNC: Self = Self(0x10);
    /// `SSH_FXF_EXCL`.
    pub const EXCL: Self = Self(0x20);
    /// Every flag version 3 defines.
    pub const KNOWN: Self = Self(0x3f);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The bits version 3 does not define.
    pub fn unknown_bits(self) -> u32 {
        self.0 & !Self::KNOWN.0
    }
}

impl BitOr for OpenFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for OpenFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(OpenFlags, &str); 6] = [
            (OpenFlags::READ, "READ"),
            (OpenFlags::WRITE, "WRITE"),
            (OpenFlags::APPEND, "APPEND"),
            (OpenFlags::CREAT, "CREAT"),
            (OpenFlags::TRUNC, "TRUNC"),
            (OpenFlags::EXCL, "EXCL"),
        ];
        f.write_str("OpenFlags(")?;
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                f.write_str(if first { "" } else { "|" })?;
                f.write_str(name)?;
                first = false;
            }
        }
        if self.unknown_bits() != 0 {
            write!(
                f,
                "{}{:#x}",
                if first { "" } else { "|" },
                self.unknown_bits()
            )?;
        }
        f.write_str(")")
    }
}

/// The names of the `EXTENDED` requests this codec knows (OpenSSH's `PROTOCOL`, section 4).
pub mod ext {
    /// `posix-rename@openssh.com`: `string oldpath, string newpath`.
    pub const POSIX_RENAME: &str = "posix-rename@openssh.com";
    /// `statvfs@openssh.com`: `string path`.
    pub const STATVFS: &str = "statvfs@openssh.com";
    /// `fstatvfs@openssh.com`: `string handle`.
    pub const FSTATVFS: &str = "fstatvfs@openssh.com";
    /// `hardlink@openssh.com`: `string oldpath, string newpath`.
    pub const HARDLINK: &str = "hardlink@openssh.com";
    /// `fsync@openssh.com`: `string handle`.
    pub const FSYNC: &str = "fsync@openssh.com";
    /// `lsetstat@openssh.com`: `string path, ATTRS attrs`.
    pub const LSETSTAT: &str = "lsetstat@openssh.com";
    /// `limits@openssh.com`: nothing.
    pub const LIMITS: &str = "limits@openssh.com";
    /// `expand-path@openssh.com`: `string path`.
    pub const EXPAND_PATH: &str = "expand-path@openssh.com";
    /// `copy-data`: `string read-from-handle, uint64 read-from-offset, uint64
    /// read-data-length, string write-to-handle, uint64 write-to-offset`.
    pub const COPY_DATA: &str = "copy-data";
    /// `home-directory`: `string username`.
    pub const HOME_DIRECTORY: &str = "home-directory";
    /// `users-groups-by-id@openssh.com`: `string uids, string gids` (each a run of `uint32`).
    pub const USERS_GROUPS_BY_ID: &str = "users-groups-by-id@openssh.com";
}

/// Why a frame could not be split off the stream. After one the stream is out of sync:
/// close the channel.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length field exceeds [`Limits::max_packet`].
    #[error("SFTP packet of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length field.
        len: u32,
        /// The limit that applied.
        max: u32,
    },
    /// The length field cannot hold the packet's type byte and, for types that have one,
    /// its request id.
    #[error("SFTP packet of {len} bytes is too short for {}", Needs(*.packet_type))]
    TooShort {
        /// The type byte, when the length admits one.
        packet_type: Option<PacketType>,
        /// The length field.
        len: u32,
    },
}

/// What a too-short packet lacks, for [`FrameError::TooShort`].
struct Needs(Option<PacketType>);

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("a type byte"),
            Some(t) => write!(f, "the request id of a {t} packet"),
        }
    }
}

/// Why a frame's body does not parse as the message its type names. The framing is intact:
/// a request can be answered by its id (`BAD_MESSAGE`, or `OP_UNSUPPORTED` for
/// [`NotA`](Self::NotA)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The type byte names no message of this direction: unknown, or a response sent as a
    /// request (or the other way round).
    NotA {
        /// The type byte.
        packet_type: PacketType,
        /// `"request"` or `"response"`.
        expected: &'static str,
    },
    /// A field does not follow the layout.
    Malformed {
        /// The packet's type.
        packet_type: PacketType,
        /// The extension request's name, for an `EXTENDED` request this codec knows.
        extension: Option<&'static str>,
        /// The field: `filename`, `count`, `attrs flags`, ….
        field: &'static str,
        /// What is wrong with it.
        problem: Problem,
    },
    /// Bytes follow the last field. (OpenSSH's `sftp-server` would skip them; a gateway must
    /// not let a packet mean one thing to it and another to the server.)
    Trailing {
        /// The packet's type.
        packet_type: PacketType,
        /// The extension request's name, for an `EXTENDED` request this codec knows.
        extension: Option<&'static str>,
        /// How many bytes follow.
        extra: usize,
    },
}

impl DecodeError {
    /// The status a server would answer a request that fails this way with: `OP_UNSUPPORTED`
    /// for a type it does not know, `BAD_MESSAGE` otherwise.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NotA { .. } => StatusCode::OP_UNSUPPORTED,
            _ => StatusCode::BAD_MESSAGE,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |f: &mut fmt::Formatter<'_>, t: PacketType, ext: Option<&str>| {
            write!(f, "SFTP {t}")?;
            match ext {
                Some(ext) => write!(f, " {ext}"),
                None => Ok(()),
            }
        };
        match self {
            Self::NotA {
                packet_type,
                expected,
            } => match packet_type.name() {
                Some(name) => write!(f, "SFTP {name} ({}) is not a {expected}", packet_type.0),
                None => write!(f, "unknown SFTP {expected} type {}", packet_type.0),
            },
            Self::Malformed {
                packet_type,
                extension,
                field,
                problem,
            } => {
                what(f, *packet_type, *extension)?;
                write!(f, " {field} {problem}")
            }
            Self::Trailing {
                packet_type,
                extension,
                extra,
            } => {
                what(f, *packet_type, *extension)?;
                write!(f, " has {extra} unexpected bytes after its last field")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// What is wrong with a field, for [`DecodeError::Malformed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The packet ends inside the field.
    Truncated {
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the packet.
        left: usize,
    },
    /// A count promises more entries than the rest of the packet could hold.
    CountTooLarge {
        /// The count as sent.
        count: u32,
        /// Bytes left in the packet.
        left: usize,
    },
    /// Flag bits this version does not define, which would change the layout.
    UnknownFlags(u32),
    /// A length that must be a multiple of `of`.
    NotMultiple {
        /// The length as sent.
        len: usize,
        /// What it must be a multiple of.
        of: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, left } => {
                write!(f, "needs {needed} bytes, the packet has {left} left")
            }
            Self::CountTooLarge { count, left } => write!(
                f,
                "{count} exceeds what the packet holds ({left} bytes left)"
            ),
            Self::UnknownFlags(bits) => write!(f, "has unknown bits {bits:#010x}"),
            Self::NotMultiple { len, of } => write!(f, "length {len} is not a multiple of {of}"),
        }
    }
}

/// Why a message cannot be encoded: a field longer than a `uint32` length can say. Nothing
/// was written.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string, list or the whole packet is longer than `u32::MAX` bytes or entries.
    #[error("cannot encode SFTP {field}: {len} does not fit a uint32")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length or count.
        len: usize,
    },
}
