//! The two kinds of SFTP `string` a request carries: text (paths, names) and handles.

use std::fmt;

/// An SFTP `string` holding text: a path, a file name, an extension name, a message.
///
/// Kept as the bytes that were sent. Version 3 says nothing of encodings; OpenSSH's server
/// passes file names to the kernel as they are, so they may be any bytes but NUL (which it
/// refuses). [`to_str`](Self::to_str) gives the UTF-8 text when it is UTF-8.
///
/// ```
/// use sod_ssh::sftp::codec::ByteStr;
///
/// let name = ByteStr::new(b"caf\xe9.txt");
/// assert_eq!(name.to_str(), None);
/// assert_eq!(format!("{name:?}"), r#""caf\xe9.txt""#);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteStr<'a>(&'a [u8]);

impl<'a> ByteStr<'a> {
    /// The string of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The bytes as sent.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The text, when the bytes are UTF-8.
    pub fn to_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// The length in bytes.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl<'a> From<&'a str> for ByteStr<'a> {
    fn from(s: &'a str) -> Self {
        Self(s.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for ByteStr<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for ByteStr<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        Self(bytes)
    }
}

/// An SFTP file or directory handle: opaque bytes the server chose (OpenSSH: a big-endian
/// `uint32` index). A type of its own so a handle is never taken for a path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Handle<'a>(&'a [u8]);

impl<'a> Handle<'a> {
    /// The handle of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The bytes as sent.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for Handle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handle(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl<'a> From<&'a [u8]> for Handle<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Handle<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        Self(bytes)
    }
}
