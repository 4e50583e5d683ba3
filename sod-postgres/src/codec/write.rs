//! Writing messages: a frame with its length filled in afterwards, and checked fields.
//!
//! Every encoder either writes a whole message or, on error, leaves `out` as it found it.

use bytes::{BufMut, BytesMut};

use super::{ProtocolError, Values};

/// The error for an input the protocol cannot carry.
pub(crate) fn unencodable(field: &'static str, what: &'static str) -> ProtocolError {
    ProtocolError::Unencodable { field, what }
}

/// Writes a message of type `tag` whose body `body` writes, then fills in the length. On
/// error `out` is truncated back to where it was.
pub(crate) fn message(
    out: &mut BytesMut,
    tag: u8,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.put_u8(tag);
    framed(out, start, 1, body)
}

/// Writes an untagged (startup-phase) packet whose body `body` writes, then fills in the
/// length. On error `out` is truncated back to where it was.
pub(crate) fn untagged(
    out: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    framed(out, start, 0, body)
}

fn framed(
    out: &mut BytesMut,
    start: usize,
    header: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let len_at = start.saturating_add(header);
    out.put_i32(0);
    let result = body(out).and_then(|()| {
        let len = out.len().saturating_sub(len_at);
        let len = i32::try_from(len)
            .map_err(|_| unencodable("message", "the message is 2 GiB or longer"))?;
        if let Some(slot) = out.get_mut(len_at..len_at.saturating_add(4)) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Writes a message without a body.
pub(crate) fn empty(out: &mut BytesMut, tag: u8) {
    out.put_u8(tag);
    out.put_i32(4);
}

/// Writes `s` and a NUL; `s` must not contain a NUL.
pub(crate) fn cstr(out: &mut BytesMut, s: &str, field: &'static str) -> Result<(), ProtocolError> {
    cbytes(out, s.as_bytes(), field)
}

/// Writes `s` and a NUL; `s` must not contain a NUL.
pub(crate) fn cbytes(
    out: &mut BytesMut,
    s: &[u8],
    field: &'static str,
) -> Result<(), ProtocolError> {
    if s.contains(&0) {
        return Err(unencodable(field, "it contains a NUL byte"));
    }
    out.put_slice(s);
    out.put_u8(0);
    Ok(())
}

/// A list length as the protocol's Int16 count (read unsigned by PostgreSQL: 0..=65535).
pub(crate) fn count16(n: usize, field: &'static str) -> Result<u16, ProtocolError> {
    u16::try_from(n).map_err(|_| unencodable(field, "more than 65535 entries"))
}

/// Writes an Int16 count and the Int16 codes.
pub(crate) fn formats(
    out: &mut BytesMut,
    codes: &[i16],
    field: &'static str,
) -> Result<(), ProtocolError> {
    out.put_u16(count16(codes.len(), field)?);
    for &code in codes {
        out.put_i16(code);
    }
    Ok(())
}

/// Writes one value: an Int32 length (-1 for `None`) and the bytes.
pub(crate) fn value(
    out: &mut BytesMut,
    value: Option<&[u8]>,
    field: &'static str,
) -> Result<(), ProtocolError> {
    match value {
        None => out.put_i32(-1),
        Some(bytes) => {
            let len = i32::try_from(bytes.len())
                .map_err(|_| unencodable(field, "a value is 2 GiB or longer"))?;
            out.put_i32(len);
            out.put_slice(bytes);
        }
    }
    Ok(())
}

/// Writes an Int16 count and the values, from any iterator (the count is filled in after).
pub(crate) fn values<'v>(
    out: &mut BytesMut,
    values: impl IntoIterator<Item = Option<&'v [u8]>>,
    field: &'static str,
) -> Result<(), ProtocolError> {
    let count_at = out.len();
    out.put_u16(0);
    let mut count: u16 = 0;
    for v in values {
        count = count
            .checked_add(1)
            .ok_or_else(|| unencodable(field, "more than 65535 entries"))?;
        value(out, v, field)?;
    }
    if let Some(slot) = out.get_mut(count_at..count_at.saturating_add(2)) {
        slot.copy_from_slice(&count.to_be_bytes());
    }
    Ok(())
}

/// Writes the Int16 count and the encoded values of a parsed list, as they were.
pub(crate) fn parsed_values(
    out: &mut BytesMut,
    values: Values<'_>,
    field: &'static str,
) -> Result<(), ProtocolError> {
    out.put_u16(count16(values.len(), field)?);
    out.put_slice(values.as_bytes());
    Ok(())
}
