//! Lists inside packets: `(string, string)` pairs and runs of `uint32` ids.
//!
//! Each list is either a view of the wire bytes (validated when the packet was decoded, walked
//! again on every iteration, never copied) or a slice given by the caller to encode. The two
//! compare equal when they hold the same entries.

use std::fmt;
use std::iter::FusedIterator;

use super::read::{Reader, next_string};
use super::write::{Writer, len32};
use super::{ByteStr, DecodeError, EncodeError, Problem};

/// A list of `(string name, string data)` pairs: the extensions of `INIT` and `VERSION`
/// (which run to the end of the packet) and the extended attributes of [`Attrs`](super::Attrs)
/// (which a count precedes).
///
/// ```
/// use sod_ssh::sftp::codec::{ByteStr, Pairs};
///
/// let list = [(ByteStr::from("posix-rename@openssh.com"), ByteStr::from("1"))];
/// let pairs = Pairs::new(&list);
/// assert_eq!(pairs.get(b"posix-rename@openssh.com"), Some(ByteStr::from("1")));
/// assert_eq!(pairs.len(), 1);
/// ```
#[derive(Clone, Copy)]
pub struct Pairs<'a>(PairsRepr<'a>);

#[derive(Clone, Copy)]
enum PairsRepr<'a> {
    /// Validated wire bytes: `count` pairs, nothing else.
    Wire {
        raw: &'a [u8],
        count: usize,
    },
    List(&'a [(ByteStr<'a>, ByteStr<'a>)]),
}

impl<'a> Pairs<'a> {
    /// No pairs.
    pub const EMPTY: Pairs<'static> = Pairs(PairsRepr::List(&[]));

    /// The pairs of `list`, to encode.
    pub const fn new(list: &'a [(ByteStr<'a>, ByteStr<'a>)]) -> Self {
        Self(PairsRepr::List(list))
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        match self.0 {
            PairsRepr::Wire { count, .. } => count,
            PairsRepr::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pairs, in order.
    pub fn iter(&self) -> PairsIter<'a> {
        PairsIter(match self.0 {
            PairsRepr::Wire { raw, count } => IterRepr::Wire { raw, left: count },
            PairsRepr::List(list) => IterRepr::List(list.iter()),
        })
    }

    /// The data of the first pair named `name`.
    pub fn get(&self, name: &[u8]) -> Option<ByteStr<'a>> {
        self.iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, data)| data)
    }

    /// Pairs until the end of the packet (`INIT`, `VERSION`).
    pub(super) fn decode_rest(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let mark = r.mark();
        let mut count = 0;
        while r.remaining() > 0 {
            r.string("extension name")?;
            r.string("extension data")?;
            count += 1;
        }
        Ok(Self(PairsRepr::Wire {
            raw: r.since(mark),
            count,
        }))
    }

    /// A `uint32` count, then that many pairs (extended attributes).
    pub(super) fn decode_counted(
        r: &mut Reader<'a>,
        field: &'static str,
    ) -> Result<Self, DecodeError> {
        // A pair is at least two empty strings: eight bytes.
        let count = r.count(field, 8)?;
        let mark = r.mark();
        for _ in 0..count {
            r.string("extended attribute type")?;
            r.string("extended attribute data")?;
        }
        Ok(Self(PairsRepr::Wire {
            raw: r.since(mark),
            count: count as usize,
        }))
    }

    /// Writes the pairs without a count.
    pub(super) fn encode_rest(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self.0 {
            PairsRepr::Wire { raw, .. } => {
                w.raw(raw);
                Ok(())
            }
            PairsRepr::List(list) => {
                for (name, data) in list {
                    w.string("extension name", name.as_bytes())?;
                    w.string("extension data", data.as_bytes())?;
                }
                Ok(())
            }
        }
    }

    /// Writes a `uint32` count, then the pairs.
    pub(super) fn encode_counted(
        &self,
        w: &mut Writer<'_>,
        field: &'static str,
    ) -> Result<(), EncodeError> {
        w.u32(len32(field, self.len())?);
        self.encode_rest(w)
    }
}

impl PartialEq for Pairs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Pairs<'_> {}

impl fmt::Debug for Pairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Pairs<'a> {
    type Item = (ByteStr<'a>, ByteStr<'a>);
    type IntoIter = PairsIter<'a>;

    fn into_iter(self) -> PairsIter<'a> {
        self.iter()
    }
}

/// The pairs of a [`Pairs`].
#[derive(Clone, Debug)]
pub struct PairsIter<'a>(IterRepr<'a>);

#[derive(Clone, Debug)]
enum IterRepr<'a> {
    Wire { raw: &'a [u8], left: usize },
    List(std::slice::Iter<'a, (ByteStr<'a>, ByteStr<'a>)>),
}

impl<'a> Iterator for PairsIter<'a> {
    type Item = (ByteStr<'a>, ByteStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Wire { raw, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let name = next_string(raw)?;
                let data = next_string(raw)?;
                Some((ByteStr::new(name), ByteStr::new(data)))
            }
            IterRepr::List(list) => list.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Wire { left, .. } => *left,
            IterRepr::List(list) => list.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for PairsIter<'_> {}
impl FusedIterator for PairsIter<'_> {}

/// A `string` holding a run of `uint32` user or group ids (`users-groups-by-id@openssh.com`).
///
/// ```
/// use sod_ssh::sftp::codec::IdList;
///
/// assert_eq!(IdList::new(&[0, 1000]).iter().collect::<Vec<_>>(), [0, 1000]);
/// ```
#[derive(Clone, Copy)]
pub struct IdList<'a>(IdRepr<'a>);

#[derive(Clone, Copy)]
enum IdRepr<'a> {
    /// Validated: a multiple of four bytes.
    Wire(&'a [u8]),
    List(&'a [u32]),
}

impl<'a> IdList<'a> {
    /// The ids of `list`, to encode.
    pub const fn new(list: &'a [u32]) -> Self {
        Self(IdRepr::List(list))
    }

    /// How many ids there are.
    pub fn len(&self) -> usize {
        match self.0 {
            IdRepr::Wire(raw) => raw.len() / 4,
            IdRepr::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids, in order.
    pub fn iter(&self) -> IdListIter<'a> {
        IdListIter(match self.0 {
            IdRepr::Wire(raw) => IdIterRepr::Wire(raw.chunks_exact(4)),
            IdRepr::List(list) => IdIterRepr::List(list.iter()),
        })
    }

    pub(super) fn decode(r: &mut Reader<'a>, field: &'static str) -> Result<Self, DecodeError> {
        let raw = r.string(field)?;
        if !raw.len().is_multiple_of(4) {
            return Err(r.error(
                field,
                Problem::NotMultiple {
                    len: raw.len(),
                    of: 4,
                },
            ));
        }
        Ok(Self(IdRepr::Wire(raw)))
    }

    pub(super) fn encode(
        &self,
        w: &mut Writer<'_>,
        field: &'static str,
    ) -> Result<(), EncodeError> {
        match self.0 {
            IdRepr::Wire(raw) => w.string(field, raw),
            IdRepr::List(list) => {
                let bytes = list.len().saturating_mul(4);
                w.u32(len32(field, bytes)?);
                for id in list {
                    w.u32(*id);
                }
                Ok(())
            }
        }
    }
}

impl PartialEq for IdList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for IdList<'_> {}

impl fmt::Debug for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The ids of an [`IdList`].
#[derive(Clone, Debug)]
pub struct IdListIter<'a>(IdIterRepr<'a>);

#[derive(Clone, Debug)]
enum IdIterRepr<'a> {
    Wire(std::slice::ChunksExact<'a, u8>),
    List(std::slice::Iter<'a, u32>),
}

impl Iterator for IdListIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match &mut self.0 {
            IdIterRepr::Wire(chunks) => {
                let chunk: [u8; 4] = chunks.next()?.try_into().ok()?;
                Some(u32::from_be_bytes(chunk))
            }
            IdIterRepr::List(list) => list.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IdIterRepr::Wire(chunks) => chunks.len(),
            IdIterRepr::List(list) => list.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for IdListIter<'_> {}
impl FusedIterator for IdListIter<'_> {}
