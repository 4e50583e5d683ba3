//! `ATTRS`: a flags word, then the fields the flags announce, in a fixed order.

use super::read::Reader;
use super::write::Writer;
use super::{DecodeError, EncodeError, Pairs, Problem};

/// The `SSH_FILEXFER_ATTR_*` flag bits of version 3.
pub mod attr_flags {
    /// `uint64 size` follows.
    pub const SIZE: u32 = 0x0000_0001;
    /// `uint32 uid, uint32 gid` follow.
    pub const UIDGID: u32 = 0x0000_0002;
    /// `uint32 permissions` follows.
    pub const PERMISSIONS: u32 = 0x0000_0004;
    /// `uint32 atime, uint32 mtime` follow.
    pub const ACMODTIME: u32 = 0x0000_0008;
    /// `uint32 count`, then `count` × (`string type, string data`) follow.
    pub const EXTENDED: u32 = 0x8000_0000;
    /// Every bit version 3 defines.
    pub const KNOWN: u32 = SIZE | UIDGID | PERMISSIONS | ACMODTIME | EXTENDED;
}

/// File attributes. Each field is present exactly when its flag bit is set, so the flags
/// word is derived ([`flags`](Self::flags)) and a bit this version does not know cannot be
/// represented: decoding refuses it, because it would announce fields of unknown length.
///
/// ```
/// use sod_ssh::sftp::codec::{Attrs, attr_flags};
///
/// let mode = Attrs { permissions: Some(0o644), ..Attrs::EMPTY };
/// assert_eq!(mode.flags(), attr_flags::PERMISSIONS);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs<'a> {
    /// `SIZE`: the size in bytes.
    pub size: Option<u64>,
    /// `UIDGID`: the owner.
    pub owner: Option<Owner>,
    /// `PERMISSIONS`: the mode, file type bits included (`0o100644`).
    pub permissions: Option<u32>,
    /// `ACMODTIME`: access and modification times.
    pub times: Option<Times>,
    /// `EXTENDED`: vendor attributes, `(type, data)` pairs. `Some` with no pairs is a set
    /// flag with a count of zero.
    pub extended: Option<Pairs<'a>>,
}

/// The owner of a file ([`Attrs::owner`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

/// Access and modification times, seconds since the epoch ([`Attrs::times`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Times {
    /// Last access.
    pub atime: u32,
    /// Last modification.
    pub mtime: u32,
}

impl<'a> Attrs<'a> {
    /// No attributes (a flags word of zero).
    pub const EMPTY: Attrs<'static> = Attrs {
        size: None,
        owner: None,
        permissions: None,
        times: None,
        extended: None,
    };

    /// The flags word these attributes encode with.
    pub fn flags(&self) -> u32 {
        let bit = |present: bool, bit: u32| if present { bit } else { 0 };
        bit(self.size.is_some(), attr_flags::SIZE)
            | bit(self.owner.is_some(), attr_flags::UIDGID)
            | bit(self.permissions.is_some(), attr_flags::PERMISSIONS)
            | bit(self.times.is_some(), attr_flags::ACMODTIME)
            | bit(self.extended.is_some(), attr_flags::EXTENDED)
    }

    /// Whether no attribute is present.
    pub fn is_empty(&self) -> bool {
        self.flags() == 0
    }

    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let flags = r.u32("attrs flags")?;
        let unknown = flags & !attr_flags::KNOWN;
        if unknown != 0 {
            return Err(r.error("attrs flags", Problem::UnknownFlags(unknown)));
        }
        let has = |bit: u32| flags & bit != 0;
        let size = match has(attr_flags::SIZE) {
            true => Some(r.u64("attrs size")?),
            false => None,
        };
        let owner = match has(attr_flags::UIDGID) {
            true => Some(Owner {
                uid: r.u32("attrs uid")?,
                gid: r.u32("attrs gid")?,
            }),
            false => None,
        };
        let permissions = match has(attr_flags::PERMISSIONS) {
            true => Some(r.u32("attrs permissions")?),
            false => None,
        };
        let times = match has(attr_flags::ACMODTIME) {
            true => Some(Times {
                atime: r.u32("attrs atime")?,
                mtime: r.u32("attrs mtime")?,
            }),
            false => None,
        };
        let extended = match has(attr_flags::EXTENDED) {
            true => Some(Pairs::decode_counted(r, "attrs extended count")?),
            false => None,
        };
        Ok(Self {
            size,
            owner,
            permissions,
            times,
            extended,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.flags());
        if let Some(size) = self.size {
            w.u64(size);
        }
        if let Some(owner) = self.owner {
            w.u32(owner.uid);
            w.u32(owner.gid);
        }
        if let Some(permissions) = self.permissions {
            w.u32(permissions);
        }
        if let Some(times) = self.times {
            w.u32(times.atime);
            w.u32(times.mtime);
        }
        if let Some(extended) = &self.extended {
            extended.encode_counted(w, "attrs extended count")?;
        }
        Ok(())
    }
}
