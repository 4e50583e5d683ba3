//! A bounds-checked cursor over a packet's fields. Every failure names the packet and field.

use super::{DecodeError, PacketType, Problem};

/// Reads fields off the front of a packet body; never panics, never allocates.
#[derive(Clone, Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    packet_type: PacketType,
    extension: Option<&'static str>,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, the fields of a `packet_type` packet after its type and id.
    pub(super) fn new(packet_type: PacketType, buf: &'a [u8]) -> Self {
        Self {
            buf,
            packet_type,
            extension: None,
        }
    }

    /// Names the extension request being read, for error messages.
    pub(super) fn set_extension(&mut self, name: &'static str) {
        self.extension = Some(name);
    }

    /// A `Malformed` error for `field`.
    pub(super) fn error(&self, field: &'static str, problem: Problem) -> DecodeError {
        DecodeError::Malformed {
            packet_type: self.packet_type,
            extension: self.extension,
            field,
            problem,
        }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: u64, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let split = usize::try_from(n)
            .ok()
            .and_then(|n| self.buf.split_at_checked(n));
        let Some((head, tail)) = split else {
            return Err(self.error(
                field,
                Problem::Truncated {
                    needed: n,
                    left: self.buf.len(),
                },
            ));
        };
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N as u64, field)?;
        // `take` returned exactly N bytes; the fallback is never used.
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    /// A `uint32`.
    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    /// A `uint64`.
    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    /// A `string`: a `uint32` length and that many bytes.
    pub(super) fn string(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)?;
        self.take(u64::from(len), field)
    }

    /// A count of entries each at least `min_entry` bytes long, checked against what is
    /// left before anything is walked.
    pub(super) fn count(
        &mut self,
        field: &'static str,
        min_entry: u64,
    ) -> Result<u32, DecodeError> {
        let count = self.u32(field)?;
        let left = self.buf.len();
        if u64::from(count).saturating_mul(min_entry) > left as u64 {
            return Err(self.error(field, Problem::CountTooLarge { count, left }));
        }
        Ok(count)
    }

    /// The unread bytes, to pass to [`since`](Self::since) after reading a run of fields.
    pub(super) fn mark(&self) -> &'a [u8] {
        self.buf
    }

    /// The bytes read since `mark` was taken.
    pub(super) fn since(&self, mark: &'a [u8]) -> &'a [u8] {
        let read = mark.len().saturating_sub(self.buf.len());
        mark.get(..read).unwrap_or_default()
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Ends the packet: an error if bytes are left.
    pub(super) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing {
                packet_type: self.packet_type,
                extension: self.extension,
                extra: self.buf.len(),
            })
        }
    }
}

/// Splits one `string` off `buf` without error reporting, for walking lists that were
/// validated when they were decoded.
pub(super) fn next_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (string, rest) = rest.split_at_checked(len)?;
    *buf = rest;
    Some(string)
}
