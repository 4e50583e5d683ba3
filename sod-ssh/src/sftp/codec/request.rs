//! What the client sends: `INIT`, then requests.

use bytes::{Bytes, BytesMut};

use super::read::Reader;
use super::write::{Writer, packet};
use super::{
    Attrs, ByteStr, DecodeError, EncodeError, Handle, IdList, OpenFlags, PacketType, Pairs, ext,
};

/// A packet from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    /// `INIT`: the first packet, without a request id.
    Init(Init<'a>),
    /// Any other packet.
    Request(Request<'a>),
}

impl ClientMessage<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Init(init) => init.encode(out),
            Self::Request(request) => request.encode(out),
        }
    }
}

/// `INIT`: `uint32 version`, then extension pairs to the end of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Init<'a> {
    /// The highest version the client speaks (OpenSSH: 3).
    pub version: u32,
    /// Extensions the client announces (OpenSSH: none).
    pub extensions: Pairs<'a>,
}

impl Init<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        packet(out, PacketType::INIT, None, |w| {
            w.u32(self.version);
            self.extensions.encode_rest(w)
        })
    }
}

/// A request: its id, which the response repeats, and what it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The request id.
    pub id: u32,
    /// What the request asks for.
    pub op: Op<'a>,
}

impl Request<'_> {
    /// Appends the packet to `out`, or nothing on error.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        packet(out, self.op.packet_type(), Some(self.id), |w| {
            self.op.encode_fields(w)
        })
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }
}

/// What a request asks for, field by field as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// `OPEN`: `string filename, uint32 pflags, ATTRS attrs`.
    Open {
        /// The file.
        filename: ByteStr<'a>,
        /// How to open it.
        flags: OpenFlags,
        /// Attributes for a file it creates (OpenSSH uses the permissions only).
        attrs: Attrs<'a>,
    },
    /// `CLOSE`: `string handle`.
    Close {
        /// The handle to close.
        handle: Handle<'a>,
    },
    /// `READ`: `string handle, uint64 offset, uint32 len`.
    Read {
        /// A file handle.
        handle: Handle<'a>,
        /// Where to start.
        offset: u64,
        /// How many bytes at most.
        len: u32,
    },
    /// `WRITE`: `string handle, uint64 offset, string data`.
    Write {
        /// A file handle.
        handle: Handle<'a>,
        /// Where to write.
        offset: u64,
        /// What to write.
        data: &'a [u8],
    },
    /// `LSTAT`: `string path` (does not follow a final symlink).
    Lstat {
        /// The path.
        path: ByteStr<'a>,
    },
    /// `FSTAT`: `string handle`.
    Fstat {
        /// An open handle.
        handle: Handle<'a>,
    },
    /// `SETSTAT`: `string path, ATTRS attrs`.
    Setstat {
        /// The path.
        path: ByteStr<'a>,
        /// What to change (`size` truncates).
        attrs: Attrs<'a>,
    },
    /// `FSETSTAT`: `string handle, ATTRS attrs`.
    Fsetstat {
        /// An open handle.
        handle: Handle<'a>,
        /// What to change.
        attrs: Attrs<'a>,
    },
    /// `OPENDIR`: `string path`.
    Opendir {
        /// The directory.
        path: ByteStr<'a>,
    },
    /// `READDIR`: `string handle`.
    Readdir {
        /// A directory handle.
        handle: Handle<'a>,
    },
    /// `REMOVE`: `string filename`.
    Remove {
        /// The file.
        filename: ByteStr<'a>,
    },
    /// `MKDIR`: `string path, ATTRS attrs`.
    Mkdir {
        /// The directory to make.
        path: ByteStr<'a>,
        /// Its attributes.
        attrs: Attrs<'a>,
    },
    /// `RMDIR`: `string path`.
    Rmdir {
        /// The directory to remove.
        path: ByteStr<'a>,
    },
    /// `REALPATH`: `string path` (OpenSSH takes an empty path as `.`).
    Realpath {
        /// The path to canonicalise.
        path: ByteStr<'a>,
    },
    /// `STAT`: `string path` (follows symlinks).
    Stat {
        /// The path.
        path: ByteStr<'a>,
    },
    /// `RENAME`: `string oldpath, string newpath`.
    Rename {
        /// The current name.
        old_path: ByteStr<'a>,
        /// The new name.
        new_path: ByteStr<'a>,
    },
    /// `READLINK`: `string path`.
    Readlink {
        /// The symlink.
        path: ByteStr<'a>,
    },
    /// `SYMLINK` as OpenSSH sends and reads it: `string targetpath, string linkpath` — the
    /// reverse of the draft's order (OpenSSH `PROTOCOL` 4.1).
    Symlink {
        /// What the link points to, stored as it is.
        target_path: ByteStr<'a>,
        /// The link to create.
        link_path: ByteStr<'a>,
    },
    /// `EXTENDED`: `string request-name`, then fields of the extension's own.
    Extended(Extended<'a>),
}

impl<'a> Op<'a> {
    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Open { .. } => PacketType::OPEN,
            Self::Close { .. } => PacketType::CLOSE,
            Self::Read { .. } => PacketType::READ,
            Self::Write { .. } => PacketType::WRITE,
            Self::Lstat { .. } => PacketType::LSTAT,
            Self::Fstat { .. } => PacketType::FSTAT,
            Self::Setstat { .. } => PacketType::SETSTAT,
            Self::Fsetstat { .. } => PacketType::FSETSTAT,
            Self::Opendir { .. } => PacketType::OPENDIR,
            Self::Readdir { .. } => PacketType::READDIR,
            Self::Remove { .. } => PacketType::REMOVE,
            Self::Mkdir { .. } => PacketType::MKDIR,
            Self::Rmdir { .. } => PacketType::RMDIR,
            Self::Realpath { .. } => PacketType::REALPATH,
            Self::Stat { .. } => PacketType::STAT,
            Self::Rename { .. } => PacketType::RENAME,
            Self::Readlink { .. } => PacketType::READLINK,
            Self::Symlink { .. } => PacketType::SYMLINK,
            Self::Extended(_) => PacketType::EXTENDED,
        }
    }

    pub(super) fn decode(packet_type: PacketType, payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(packet_type, payload);
        let path = |r: &mut Reader<'a>, field| r.string(field).map(ByteStr::new);
        let handle = |r: &mut Reader<'a>| r.string("handle").map(Handle::new);
        let op = match packet_type {
            PacketType::OPEN => Self::Open {
                filename: path(&mut r, "filename")?,
                flags: OpenFlags(r.u32("pflags")?),
                attrs: Attrs::decode(&mut r)?,
            },
            PacketType::CLOSE => Self::Close {
                handle: handle(&mut r)?,
            },
            PacketType::READ => Self::Read {
                handle: handle(&mut r)?,
                offset: r.u64("offset")?,
                len: r.u32("len")?,
            },
            PacketType::WRITE => Self::Write {
                handle: handle(&mut r)?,
                offset: r.u64("offset")?,
                data: r.string("data")?,
            },
            PacketType::LSTAT => Self::Lstat {
                path: path(&mut r, "path")?,
            },
            PacketType::FSTAT => Self::Fstat {
                handle: handle(&mut r)?,
            },
            PacketType::SETSTAT => Self::Setstat {
                path: path(&mut r, "path")?,
                attrs: Attrs::decode(&mut r)?,
            },
            PacketType::FSETSTAT => Self::Fsetstat {
                handle: handle(&mut r)?,
                attrs: Attrs::decode(&mut r)?,
            },
            PacketType::OPENDIR => Self::Opendir {
                path: path(&mut r, "path")?,
            },
            PacketType::READDIR => Self::Readdir {
                handle: handle(&mut r)?,
            },
            PacketType::REMOVE => Self::Remove {
                filename: path(&mut r, "filename")?,
            },
            PacketType::MKDIR => Self::Mkdir {
                path: path(&mut r, "path")?,
                attrs: Attrs::decode(&mut r)?,
            },
            PacketType::RMDIR => Self::Rmdir {
                path: path(&mut r, "path")?,
            },
            PacketType::REALPATH => Self::Realpath {
                path: path(&mut r, "path")?,
            },
            PacketType::STAT => Self::Stat {
                path: path(&mut r, "path")?,
            },
            PacketType::RENAME => Self::Rename {
                old_path: path(&mut r, "oldpath")?,
                new_path: path(&mut r, "newpath")?,
            },
            PacketType::READLINK => Self::Readlink {
                path: path(&mut r, "path")?,
            },
            PacketType::SYMLINK => Self::Symlink {
                target_path: path(&mut r, "targetpath")?,
                link_path: path(&mut r, "linkpath")?,
            },
            PacketType::EXTENDED => Self::Extended(Extended::decode(&mut r)?),
            _ => {
                return Err(DecodeError::NotA {
                    packet_type,
                    expected: "request",
                });
            }
        };
        r.finish()?;
        Ok(op)
    }

    fn encode_fields(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            Self::Open {
                filename,
                flags,
                attrs,
            } => {
                w.string("filename", filename.as_bytes())?;
                w.u32(flags.0);
                attrs.encode(w)
            }
            Self::Close { handle } | Self::Fstat { handle } | Self::Readdir { handle } => {
                w.string("handle", handle.as_bytes())
            }
            Self::Read {
                handle,
                offset,
                len,
            } => {
                w.string("handle", handle.as_bytes())?;
                w.u64(offset);
                w.u32(len);
                Ok(())
            }
            Self::Write {
                handle,
                offset,
                data,
            } => {
                w.string("handle", handle.as_bytes())?;
                w.u64(offset);
                w.string("data", data)
            }
            Self::Lstat { path }
            | Self::Opendir { path }
            | Self::Remove { filename: path }
            | Self::Rmdir { path }
            | Self::Realpath { path }
            | Self::Stat { path }
            | Self::Readlink { path } => w.string("path", path.as_bytes()),
            Self::Setstat { path, attrs } | Self::Mkdir { path, attrs } => {
                w.string("path", path.as_bytes())?;
                attrs.encode(w)
            }
            Self::Fsetstat { handle, attrs } => {
                w.string("handle", handle.as_bytes())?;
                attrs.encode(w)
            }
            Self::Rename { old_path, new_path } => {
                w.string("oldpath", old_path.as_bytes())?;
                w.string("newpath", new_path.as_bytes())
            }
            Self::Symlink {
                target_path,
                link_path,
            } => {
                w.string("targetpath", target_path.as_bytes())?;
                w.string("linkpath", link_path.as_bytes())
            }
            Self::Extended(ext) => ext.encode_fields(w),
        }
    }
}

/// An `EXTENDED` request, by name.
///
/// A name this codec knows with fields that do not parse is a [`DecodeError`], never
/// [`Other`](Self::Other): whatever the server would do with it, the gateway does not guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extended<'a> {
    /// `posix-rename@openssh.com`: rename, replacing `new_path` if it exists.
    PosixRename {
        /// The current name.
        old_path: ByteStr<'a>,
        /// The new name.
        new_path: ByteStr<'a>,
    },
    /// `hardlink@openssh.com`: `link(old_path, new_path)`.
    Hardlink {
        /// The existing file.
        old_path: ByteStr<'a>,
        /// The new link.
        new_path: ByteStr<'a>,
    },
    /// `statvfs@openssh.com`.
    Statvfs {
        /// A path on the file system.
        path: ByteStr<'a>,
    },
    /// `fstatvfs@openssh.com`.
    Fstatvfs {
        /// An open handle.
        handle: Handle<'a>,
    },
    /// `fsync@openssh.com`.
    Fsync {
        /// An open file handle.
        handle: Handle<'a>,
    },
    /// `lsetstat@openssh.com`: `SETSTAT` that does not follow a final symlink.
    Lsetstat {
        /// The path.
        path: ByteStr<'a>,
        /// What to change.
        attrs: Attrs<'a>,
    },
    /// `limits@openssh.com`: no fields.
    Limits,
    /// `expand-path@openssh.com`: `REALPATH` with `~` and `~user` expanded by the server.
    ExpandPath {
        /// The path to expand.
        path: ByteStr<'a>,
    },
    /// `copy-data`: copy between two open handles on the server.
    CopyData {
        /// The handle read from.
        read_handle: Handle<'a>,
        /// Where reading starts.
        read_offset: u64,
        /// How much to copy; 0 means to the end of the file.
        read_len: u64,
        /// The handle written to.
        write_handle: Handle<'a>,
        /// Where writing starts.
        write_offset: u64,
    },
    /// `home-directory`: the home directory of `username` (empty: the session's user).
    HomeDirectory {
        /// The user.
        username: ByteStr<'a>,
    },
    /// `users-groups-by-id@openssh.com`: names for user and group ids.
    UsersGroupsById {
        /// User ids.
        uids: IdList<'a>,
        /// Group ids.
        gids: IdList<'a>,
    },
    /// Any other name; its fields are kept as bytes. (Encoding one with a name this codec
    /// knows writes a packet that decodes as that extension.)
    Other {
        /// The request name.
        name: ByteStr<'a>,
        /// Everything after the name.
        data: &'a [u8],
    },
}

impl<'a> Extended<'a> {
    /// The request name.
    pub fn name(&self) -> ByteStr<'a> {
        ByteStr::from(match self {
            Self::PosixRename { .. } => ext::POSIX_RENAME,
            Self::Hardlink { .. } => ext::HARDLINK,
            Self::Statvfs { .. } => ext::STATVFS,
            Self::Fstatvfs { .. } => ext::FSTATVFS,
            Self::Fsync { .. } => ext::FSYNC,
            Self::Lsetstat { .. } => ext::LSETSTAT,
            Self::Limits => ext::LIMITS,
            Self::ExpandPath { .. } => ext::EXPAND_PATH,
            Self::CopyData { .. } => ext::COPY_DATA,
            Self::HomeDirectory { .. } => ext::HOME_DIRECTORY,
            Self::UsersGroupsById { .. } => ext::USERS_GROUPS_BY_ID,
            Self::Other { name, .. } => return *name,
        })
    }

    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let name = r.string("request name")?;
        let Some(known) = KNOWN.iter().copied().find(|k| k.as_bytes() == name) else {
            return Ok(Self::Other {
                name: ByteStr::new(name),
                data: r.rest(),
            });
        };
        r.set_extension(known);
        let path = |r: &mut Reader<'a>, field| r.string(field).map(ByteStr::new);
        let handle = |r: &mut Reader<'a>, field| r.string(field).map(Handle::new);
        Ok(match known {
            ext::POSIX_RENAME => Self::PosixRename {
                old_path: path(r, "oldpath")?,
                new_path: path(r, "newpath")?,
            },
            ext::HARDLINK => Self::Hardlink {
                old_path: path(r, "oldpath")?,
                new_path: path(r, "newpath")?,
            },
            ext::STATVFS => Self::Statvfs {
                path: path(r, "path")?,
            },
            ext::FSTATVFS => Self::Fstatvfs {
                handle: handle(r, "handle")?,
            },
            ext::FSYNC => Self::Fsync {
                handle: handle(r, "handle")?,
            },
            ext::LSETSTAT => Self::Lsetstat {
                path: path(r, "path")?,
                attrs: Attrs::decode(r)?,
            },
            ext::LIMITS => Self::Limits,
            ext::EXPAND_PATH => Self::ExpandPath {
                path: path(r, "path")?,
            },
            ext::COPY_DATA => Self::CopyData {
                read_handle: handle(r, "read-from-handle")?,
                read_offset: r.u64("read-from-offset")?,
                read_len: r.u64("read-data-length")?,
                write_handle: handle(r, "write-to-handle")?,
                write_offset: r.u64("write-to-offset")?,
            },
            ext::HOME_DIRECTORY => Self::HomeDirectory {
                username: path(r, "username")?,
            },
            _ => Self::UsersGroupsById {
                uids: IdList::decode(r, "uids")?,
                gids: IdList::decode(r, "gids")?,
            },
        })
    }

    fn encode_fields(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("request name", self.name().as_bytes())?;
        match *self {
            Self::PosixRename { old_path, new_path } | Self::Hardlink { old_path, new_path } => {
                w.string("oldpath", old_path.as_bytes())?;
                w.string("newpath", new_path.as_bytes())
            }
            Self::Statvfs { path } | Self::ExpandPath { path } => w.string("path", path.as_bytes()),
            Self::HomeDirectory { username } => w.string("username", username.as_bytes()),
            Self::Fstatvfs { handle } | Self::Fsync { handle } => {
                w.string("handle", handle.as_bytes())
            }
            Self::Lsetstat { path, attrs } => {
                w.string("path", path.as_bytes())?;
                attrs.encode(w)
            }
            Self::Limits => Ok(()),
            Self::CopyData {
                read_handle,
                read_offset,
                read_len,
                write_handle,
                write_offset,
            } => {
                w.string("read-from-handle", read_handle.as_bytes())?;
                w.u64(read_offset);
                w.u64(read_len);
                w.string("write-to-handle", write_handle.as_bytes())?;
                w.u64(write_offset);
                Ok(())
            }
            Self::UsersGroupsById { uids, gids } => {
                uids.encode(w, "uids")?;
                gids.encode(w, "gids")
            }
            Self::Other { data, .. } => {
                w.raw(data);
                Ok(())
            }
        }
    }
}

/// The extension names [`Extended`] has a variant for.
const KNOWN: [&str; 11] = [
    ext::POSIX_RENAME,
    ext::HARDLINK,
    ext::STATVFS,
    ext::FSTATVFS,
    ext::FSYNC,
    ext::LSETSTAT,
    ext::LIMITS,
    ext::EXPAND_PATH,
    ext::COPY_DATA,
    ext::HOME_DIRECTORY,
    ext::USERS_GROUPS_BY_ID,
];

pub(super) fn decode_init(payload: &[u8]) -> Result<Init<'_>, DecodeError> {
    let mut r = Reader::new(PacketType::INIT, payload);
    let version = r.u32("version")?;
    let extensions = Pairs::decode_rest(&mut r)?;
    r.finish()?;
    Ok(Init {
        version,
        extensions,
    })
}
