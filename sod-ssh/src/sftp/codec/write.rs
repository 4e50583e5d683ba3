//! Writing packets: whole packets or nothing.

use bytes::{BufMut, BytesMut};

use super::{EncodeError, PacketType};

/// Appends fields to a packet being written by [`packet`].
pub(super) struct Writer<'o> {
    out: &'o mut BytesMut,
}

impl Writer<'_> {
    /// A `uint32`.
    pub(super) fn u32(&mut self, v: u32) {
        self.out.put_u32(v);
    }

    /// A `uint64`.
    pub(super) fn u64(&mut self, v: u64) {
        self.out.put_u64(v);
    }

    /// A `string`: its length as a `uint32`, then its bytes.
    pub(super) fn string(&mut self, field: &'static str, v: &[u8]) -> Result<(), EncodeError> {
        self.u32(len32(field, v.len())?);
        self.out.put_slice(v);
        Ok(())
    }

    /// Bytes as they are (the tail of an `EXTENDED` request, an `EXTENDED_REPLY`).
    pub(super) fn raw(&mut self, v: &[u8]) {
        self.out.put_slice(v);
    }
}

/// A length or count as a `uint32`.
pub(super) fn len32(field: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { field, len })
}

/// Writes one packet to `out`: the length, the type, the id if there is one, then `fields`.
/// On error `out` is left as it was.
pub(super) fn packet(
    out: &mut BytesMut,
    packet_type: PacketType,
    id: Option<u32>,
    fields: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(packet_type.0);
    if let Some(id) = id {
        out.put_u32(id);
    }
    let written = fields(&mut Writer { out: &mut *out })
        .and_then(|()| len32("packet", out.len() - start - 4));
    match written {
        Ok(len) => {
            if let Some(slot) = out.get_mut(start..start + 4) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}
