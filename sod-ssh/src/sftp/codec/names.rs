//! The entries of a `NAME` response.

use std::fmt;
use std::iter::FusedIterator;

use super::read::Reader;
use super::write::{Writer, len32};
use super::{Attrs, ByteStr, DecodeError, EncodeError, PacketType};

/// One entry of a `NAME` response: a directory entry from `READDIR`, or the one answer of
/// `REALPATH`, `READLINK` and `expand-path@openssh.com`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameEntry<'a> {
    /// The name (`READDIR`: relative to the directory; `REALPATH`: absolute).
    pub filename: ByteStr<'a>,
    /// An `ls -l` style line, for display only.
    pub longname: ByteStr<'a>,
    /// The entry's attributes (empty for `REALPATH` and `READLINK`).
    pub attrs: Attrs<'a>,
}

/// The entries of a `NAME` response: a view of the packet's bytes (validated when decoded,
/// parsed again as it is iterated), or a slice of entries to encode.
///
/// ```
/// use sod_ssh::sftp::codec::{Attrs, ByteStr, NameEntry, Names};
///
/// let entries = [NameEntry {
///     filename: ByteStr::from("/home/demo"),
///     longname: ByteStr::from("/home/demo"),
///     attrs: Attrs::EMPTY,
/// }];
/// let names = Names::new(&entries);
/// assert_eq!(names.iter().next().map(|e| e.filename), Some(ByteStr::from("/home/demo")));
/// ```
#[derive(Clone, Copy)]
pub struct Names<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// Validated wire bytes: `count` entries, nothing else.
    Wire {
        raw: &'a [u8],
        count: u32,
    },
    List(&'a [NameEntry<'a>]),
}

impl<'a> Names<'a> {
    /// The entries of `list`, to encode.
    pub const fn new(list: &'a [NameEntry<'a>]) -> Self {
        Self(Repr::List(list))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        match self.0 {
            Repr::Wire { count, .. } => count as usize,
            Repr::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, in order.
    pub fn iter(&self) -> NamesIter<'a> {
        NamesIter(match self.0 {
            Repr::Wire { raw, count } => IterRepr::Wire {
                reader: Reader::new(PacketType::NAME, raw),
                left: count,
            },
            Repr::List(list) => IterRepr::List(list.iter()),
        })
    }

    /// The only entry, when there is exactly one (the answer to `REALPATH`).
    pub fn single(&self) -> Option<NameEntry<'a>> {
        let mut iter = self.iter();
        match (iter.next(), iter.next()) {
            (Some(entry), None) => Some(entry),
            _ => None,
        }
    }

    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        // An entry is at least two empty strings and a flags word: twelve bytes.
        let count = r.count("count", 12)?;
        let mark = r.mark();
        for _ in 0..count {
            decode_entry(r)?;
        }
        Ok(Self(Repr::Wire {
            raw: r.since(mark),
            count,
        }))
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self.0 {
            Repr::Wire { raw, count } => {
                w.u32(count);
                w.raw(raw);
            }
            Repr::List(list) => {
                w.u32(len32("NAME count", list.len())?);
                for entry in list {
                    w.string("filename", entry.filename.as_bytes())?;
                    w.string("longname", entry.longname.as_bytes())?;
                    entry.attrs.encode(w)?;
                }
            }
        }
        Ok(())
    }
}

fn decode_entry<'a>(r: &mut Reader<'a>) -> Result<NameEntry<'a>, DecodeError> {
    Ok(NameEntry {
        filename: ByteStr::new(r.string("filename")?),
        longname: ByteStr::new(r.string("longname")?),
        attrs: Attrs::decode(r)?,
    })
}

impl PartialEq for Names<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Names<'_> {}

impl fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Names<'a> {
    type Item = NameEntry<'a>;
    type IntoIter = NamesIter<'a>;

    fn into_iter(self) -> NamesIter<'a> {
        self.iter()
    }
}

/// The entries of [`Names`].
#[derive(Clone, Debug)]
pub struct NamesIter<'a>(IterRepr<'a>);

#[derive(Clone, Debug)]
enum IterRepr<'a> {
    Wire { reader: Reader<'a>, left: u32 },
    List(std::slice::Iter<'a, NameEntry<'a>>),
}

impl<'a> Iterator for NamesIter<'a> {
    type Item = NameEntry<'a>;

    fn next(&mut self) -> Option<NameEntry<'a>> {
        match &mut self.0 {
            IterRepr::Wire { reader, left } => {
                *left = left.checked_sub(1)?;
                // Validated when the packet was decoded: this does not fail.
                decode_entry(reader).ok()
            }
            IterRepr::List(list) => list.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Wire { left, .. } => *left as usize,
            IterRepr::List(list) => list.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for NamesIter<'_> {}
impl FusedIterator for NamesIter<'_> {}
