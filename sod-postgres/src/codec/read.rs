//! Reading bodies: a bounds-checked cursor and the lazy list views shared by both directions.

use std::ffi::CStr;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::ProtocolError;

/// The length of a tag byte plus a length field.
pub(crate) const HEADER_LEN: usize = 5;

/// Splits one tagged message off `buf`. `max_len` gives the largest length field accepted for
/// a tag, or `None` for an unknown tag. Returns the tag and the whole frame, header included.
pub(crate) fn split_frame(
    buf: &mut BytesMut,
    max_len: impl FnOnce(u8) -> Option<usize>,
) -> Result<Option<(u8, Bytes)>, ProtocolError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let Some(max) = max_len(tag) else {
        return Err(ProtocolError::UnknownMessage(tag));
    };
    let Some(len) = be_i32(buf.get(1..HEADER_LEN)) else {
        return Ok(None);
    };
    let len = match usize::try_from(len) {
        Ok(len) if len >= 4 => len,
        _ => {
            return Err(ProtocolError::BadLength {
                tag,
                len: i64::from(len),
            });
        }
    };
    if len > max {
        return Err(ProtocolError::TooLarge { tag, len, max });
    }
    // `len` fits an i32, so this cannot overflow; stay checked all the same.
    let Some(total) = len.checked_add(1) else {
        return Err(ProtocolError::TooLarge { tag, len, max });
    };
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((tag, buf.split_to(total).freeze())))
}

/// The body of a frame: everything after the tag and the length.
pub(crate) fn body_of(raw: &[u8]) -> &[u8] {
    raw.get(HEADER_LEN..).unwrap_or_default()
}

/// A big-endian i32 from exactly four bytes.
pub(crate) fn be_i32(bytes: Option<&[u8]>) -> Option<i32> {
    let bytes: [u8; 4] = bytes?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// A bounds-checked cursor over a message body. Every failure names the message and field.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, the body of a message of type `tag` (0 for a startup packet).
    pub(crate) fn new(tag: u8, buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, tag }
    }

    /// A `Malformed` error for this message.
    pub(crate) fn error(&self, field: &'static str, what: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            tag: self.tag,
            field,
            what,
        }
    }

    /// The offset of the next byte within the body.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub(crate) fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.error(field, "the message ends early"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(field, "the message ends early"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtocolError> {
        let bytes = self.take(N, field)?;
        bytes
            .try_into()
            .map_err(|_| self.error(field, "the message ends early"))
    }

    /// An Int8 read as a byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    /// An Int16.
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    /// An Int16 count, read unsigned as PostgreSQL does (0..=65535).
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// An Int32.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// An Int32 read unsigned (OIDs, request codes).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A NUL-terminated byte string, without its NUL.
    pub(crate) fn cbytes(&mut self, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let s = CStr::from_bytes_until_nul(rest)
            .map_err(|_| self.error(field, "the string has no NUL terminator"))?
            .to_bytes();
        self.pos = self.pos.saturating_add(s.len()).saturating_add(1);
        Ok(s)
    }

    /// A NUL-terminated UTF-8 string, without its NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let bytes = self.cbytes(field)?;
        std::str::from_utf8(bytes).map_err(|_| self.error(field, "the string is not valid UTF-8"))
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error("message end", "unexpected bytes after the last field"))
        }
    }

    /// An Int16 count followed by that many Int16 format codes.
    pub(crate) fn formats(&mut self, field: &'static str) -> Result<Formats<'a>, ProtocolError> {
        let count = usize::from(self.u16(field)?);
        let bytes = self.take(count.saturating_mul(2), field)?;
        Ok(Formats { bytes })
    }

    /// An Int16 count followed by that many Int32 OIDs.
    pub(crate) fn oids(&mut self, field: &'static str) -> Result<Oids<'a>, ProtocolError> {
        let count = usize::from(self.u16(field)?);
        let bytes = self.take(count.saturating_mul(4), field)?;
        Ok(Oids { bytes })
    }

    /// An Int16 count followed by that many values, each an Int32 length (-1 for NULL) and
    /// that many bytes. Checked here once, so that iterating later cannot fail.
    pub(crate) fn values(&mut self, field: &'static str) -> Result<Values<'a>, ProtocolError> {
        let count = self.u16(field)?;
        let start = self.pos;
        // Each value takes at least four bytes, so a count the body cannot hold fails
        // without walking it.
        if usize::from(count).saturating_mul(4) > self.remaining() {
            return Err(self.error(field, "more values announced than the message holds"));
        }
        for _ in 0..count {
            let len = self.i32(field)?;
            match usize::try_from(len) {
                Ok(len) => {
                    self.take(len, field)?;
                }
                Err(_) if len == -1 => {}
                Err(_) => return Err(self.error(field, "a value length is negative but not -1")),
            }
        }
        let bytes = self.buf.get(start..self.pos).unwrap_or_default();
        Ok(Values {
            bytes,
            count,
            offset: start,
        })
    }

    /// One value: an Int32 length (-1 for NULL) and that many bytes.
    pub(crate) fn value(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, ProtocolError> {
        let len = self.i32(field)?;
        match usize::try_from(len) {
            Ok(len) => Ok(Some(self.take(len, field)?)),
            Err(_) if len == -1 => Ok(None),
            Err(_) => Err(self.error(field, "the value length is negative but not -1")),
        }
    }
}

/// A list of Int16 format codes (0 text, 1 binary), read lazily from the message.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Formats<'a> {
    /// Two bytes per code; always an even length.
    bytes: &'a [u8],
}

impl<'a> Formats<'a> {
    /// How many codes there are.
    pub fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The `i`-th code.
    pub fn get(&self, i: usize) -> Option<i16> {
        let at = i.checked_mul(2)?;
        let bytes: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(i16::from_be_bytes(bytes))
    }

    /// The codes, in order.
    pub fn iter(&self) -> FormatsIter<'a> {
        FormatsIter {
            chunks: self.bytes.chunks_exact(2),
        }
    }

    /// The codes as a vector.
    pub fn to_vec(&self) -> Vec<i16> {
        self.iter().collect()
    }

    /// The format of parameter or column `i` under PostgreSQL's rule: no codes means all
    /// text (0), a single code applies to every entry, otherwise there is one code per entry
    /// (`None` past the end).
    pub fn format_of(&self, i: usize) -> Option<i16> {
        match self.len() {
            0 => Some(0),
            1 => self.get(0),
            _ => self.get(i),
        }
    }

    /// The encoded codes (two bytes each, big-endian), without the count.
    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl fmt::Debug for Formats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Formats<'a> {
    type Item = i16;
    type IntoIter = FormatsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Formats`].
#[derive(Clone, Debug)]
pub struct FormatsIter<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for FormatsIter<'_> {
    type Item = i16;

    fn next(&mut self) -> Option<i16> {
        let bytes: [u8; 2] = self.chunks.next()?.try_into().ok()?;
        Some(i16::from_be_bytes(bytes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for FormatsIter<'_> {}
impl FusedIterator for FormatsIter<'_> {}

/// A list of type OIDs (`Parse` parameter types, `ParameterDescription`), read lazily.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Oids<'a> {
    /// Four bytes per OID; always a multiple of four.
    bytes: &'a [u8],
}

impl<'a> Oids<'a> {
    /// How many OIDs there are.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The `i`-th OID (0 means "unspecified" in `Parse`).
    pub fn get(&self, i: usize) -> Option<u32> {
        let at = i.checked_mul(4)?;
        let bytes: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// The OIDs, in order.
    pub fn iter(&self) -> OidsIter<'a> {
        OidsIter {
            chunks: self.bytes.chunks_exact(4),
        }
    }

    /// The OIDs as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }

    /// The encoded OIDs (four bytes each, big-endian), without the count.
    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl fmt::Debug for Oids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Oids<'a> {
    type Item = u32;
    type IntoIter = OidsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Oids`].
#[derive(Clone, Debug)]
pub struct OidsIter<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for OidsIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self.chunks.next()?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for OidsIter<'_> {}
impl FusedIterator for OidsIter<'_> {}

/// A list of values (`Bind` parameters, `FunctionCall` arguments, `DataRow` columns), each
/// `None` for SQL NULL or the value's bytes in its format. Validated when the message was
/// parsed; iterating is infallible and allocation-free.
///
/// Two lists are equal when they hold the same values, wherever they lie in their messages.
/// `Debug` shows the number of values and bytes, never the values: they are user data, and
/// for rows not yet masked.
#[derive(Clone, Copy, Default)]
pub struct Values<'a> {
    /// The encoded values (length, bytes, …), without the count.
    bytes: &'a [u8],
    count: u16,
    /// Where `bytes` starts within the message body.
    offset: usize,
}

impl<'a> Values<'a> {
    /// How many values there are.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values, in order: `None` is NULL.
    pub fn iter(&self) -> ValuesIter<'a> {
        ValuesIter {
            spans: self.spans(),
            bytes: self.bytes,
        }
    }

    /// The `i`-th value: `None` past the end, `Some(None)` for NULL. Walks the list.
    pub fn get(&self, i: usize) -> Option<Option<&'a [u8]>> {
        self.iter().nth(i)
    }

    /// The values as a vector.
    pub fn to_vec(&self) -> Vec<Option<&'a [u8]>> {
        self.iter().collect()
    }

    /// Where each value lies within the message body
    /// ([`BackendFrame::body`](super::BackendFrame::body) or
    /// [`FrontendFrame::body`](super::FrontendFrame::body)):
    /// `None` for NULL, else the range of the value's bytes (its Int32 length is the four bytes
    /// before). With [`Bytes::slice`] on the frame's body this gives each value without
    /// copying, and lets a rewriter copy untouched values through verbatim.
    pub fn spans(&self) -> ValueSpans<'a> {
        ValueSpans {
            bytes: self.bytes,
            pos: 0,
            offset: self.offset,
            left: self.count,
        }
    }

    /// The encoded values (Int32 length and bytes each), without the count: exactly the bytes
    /// `values` occupy in the body.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Where the encoded values start within the message body (just after the count).
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl PartialEq for Values<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.bytes == other.bytes
    }
}

impl Eq for Values<'_> {}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values")
            .field("len", &self.count)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl<'a> IntoIterator for Values<'a> {
    type Item = Option<&'a [u8]>;
    type IntoIter = ValuesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the ranges of [`Values`] within the body; see [`Values::spans`].
#[derive(Clone, Debug)]
pub struct ValueSpans<'a> {
    bytes: &'a [u8],
    /// Position within `bytes`.
    pos: usize,
    /// Where `bytes` starts within the body.
    offset: usize,
    left: u16,
}

impl ValueSpans<'_> {
    /// The next value as a range within `bytes` (not yet shifted by `offset`).
    fn next_local(&mut self) -> Option<Option<Range<usize>>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let len_end = self.pos.checked_add(4)?;
        let Some(len) = be_i32(self.bytes.get(self.pos..len_end)) else {
            // Not reachable for a validated list; end rather than fail.
            self.left = 0;
            return None;
        };
        self.pos = len_end;
        let Ok(len) = usize::try_from(len) else {
            return Some(None);
        };
        let end = match self.pos.checked_add(len) {
            Some(end) if end <= self.bytes.len() => end,
            _ => {
                self.left = 0;
                return None;
            }
        };
        let range = self.pos..end;
        self.pos = end;
        Some(Some(range))
    }
}

impl Iterator for ValueSpans<'_> {
    type Item = Option<Range<usize>>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset;
        Some(
            self.next_local()?
                .map(|r| r.start.saturating_add(offset)..r.end.saturating_add(offset)),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.left);
        (left, Some(left))
    }
}

impl FusedIterator for ValueSpans<'_> {}

/// Iterator over [`Values`].
#[derive(Clone, Debug)]
pub struct ValuesIter<'a> {
    spans: ValueSpans<'a>,
    bytes: &'a [u8],
}

impl<'a> Iterator for ValuesIter<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.spans.next_local()? {
            None => Some(None),
            Some(range) => Some(Some(self.bytes.get(range).unwrap_or_default())),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl FusedIterator for ValuesIter<'_> {}
