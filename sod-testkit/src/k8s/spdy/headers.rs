//! SPDY/3 header blocks: the name/value pairs of SYN_STREAM, SYN_REPLY and HEADERS, and their
//! zlib compression.
//!
//! Uncompressed, a block is a 32-bit count of pairs, then for each pair a 32-bit length and the
//! name (lowercase), a 32-bit length and the value (several values of one name joined by NUL).
//! Each direction of a connection compresses every block it sends with one zlib stream (with
//! its header), primed with [`HEADER_DICTIONARY`] and sync-flushed after each block, so that a
//! block decompresses on its own given the blocks before it.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::HEADER_DICTIONARY;
use super::frame::protocol_error;

/// The largest uncompressed header block accepted (a guard against decompression bombs; the
/// blocks Kubernetes clients send are a few dozen bytes).
const MAX_BLOCK: usize = 1 << 20;

/// A header block: `(name, value)` pairs in their order. Names are lowercase; a value holding
/// several values joins them with NUL, as on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(in crate::k8s) struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers (what a SYN_REPLY carries here).
    pub(in crate::k8s) fn new() -> Headers {
        Headers(Vec::new())
    }

    /// These headers and `name: value`.
    #[cfg(test)]
    pub(in crate::k8s) fn with(mut self, name: &str, value: &str) -> Headers {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The first value of `name`.
    pub(in crate::k8s) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| value.split('\0').next())
    }

    /// The block, uncompressed.
    pub(super) fn encode(&self) -> io::Result<Vec<u8>> {
        let mut block = Vec::new();
        block.extend_from_slice(&length(self.0.len())?.to_be_bytes());
        for (name, value) in &self.0 {
            for part in [name.as_bytes(), value.as_bytes()] {
                block.extend_from_slice(&length(part.len())?.to_be_bytes());
                block.extend_from_slice(part);
            }
        }
        Ok(block)
    }

    /// Parses an uncompressed block, which must be exactly one block. Names must be non-empty,
    /// lowercase and unique, as SPDY/3 requires.
    pub(super) fn decode(block: &[u8]) -> io::Result<Headers> {
        let mut rest = block;
        let count = take_u32(&mut rest)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            let value = take_string(&mut rest)?;
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(protocol_error(format!("invalid header name {name:?}")));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(protocol_error(format!("header {name:?} repeated")));
            }
            pairs.push((name, value));
        }
        if !rest.is_empty() {
            return Err(protocol_error("bytes after the header block"));
        }
        Ok(Headers(pairs))
    }
}

fn length(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| protocol_error("header block too large"))
}

fn take_u32(rest: &mut &[u8]) -> io::Result<u32> {
    let Some((word, tail)) = rest.split_first_chunk::<4>() else {
        return Err(protocol_error("truncated header block"));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*word))
}

fn take_string(rest: &mut &[u8]) -> io::Result<String> {
    let len = take_u32(rest)? as usize;
    if rest.len() < len {
        return Err(protocol_error("truncated header block"));
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| protocol_error("header not in UTF-8"))
}

/// The compression context of the header blocks one side sends.
pub(super) struct HeaderCompressor(Compress);

impl HeaderCompressor {
    pub(super) fn new() -> io::Result<HeaderCompressor> {
        let mut compress = Compress::new(Compression::default(), true);
        compress
            .set_dictionary(&HEADER_DICTIONARY)
            .map_err(io::Error::other)?;
        Ok(HeaderCompressor(compress))
    }

    /// `headers` compressed and sync-flushed: the bytes that follow the fixed fields of the frame.
    pub(super) fn compress(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let block = headers.encode()?;
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(256));
            }
            let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
            self.0
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            consumed += usize::try_from(self.0.total_in() - in_before).unwrap_or(usize::MAX);
            // The flush is complete once zlib stops short of filling the output.
            if consumed >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.0.total_in() == in_before && self.0.total_out() == out_before {
                return Err(io::Error::other("header compression made no progress"));
            }
        }
    }
}

/// The decompression context of the header blocks the other side sends.
pub(super) struct HeaderDecompressor(Decompress);

impl HeaderDecompressor {
    pub(super) fn new() -> HeaderDecompressor {
        HeaderDecompressor(Decompress::new(true))
    }

    /// Decompresses and parses one block: `compressed` is everything after the frame's fixed
    /// fields, and must decompress to exactly one block.
    pub(super) fn decompress(&mut self, compressed: &[u8]) -> io::Result<Headers> {
        let mut out = Vec::with_capacity(256.max(compressed.len() * 4));
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_BLOCK {
                    return Err(protocol_error("header block too large"));
                }
                out.reserve(out.len());
            }
            let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
            let result =
                self.0
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += usize::try_from(self.0.total_in() - in_before).unwrap_or(usize::MAX);
            match result {
                // The first block's zlib header names the dictionary: prime the context and go on.
                Err(error) if error.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&HEADER_DICTIONARY)
                        .map_err(|e| protocol_error(format!("header dictionary: {e}")))?;
                    continue;
                }
                Err(error) => {
                    return Err(protocol_error(format!("header decompression: {error}")));
                }
                Ok(Status::StreamEnd) => {
                    return Err(protocol_error("the header compression stream ended"));
                }
                Ok(Status::Ok | Status::BufError) => {}
            }
            if consumed >= compressed.len() && out.len() < out.capacity() {
                return Headers::decode(&out);
            }
            if self.0.total_in() == in_before && self.0.total_out() == out_before {
                return Err(protocol_error("truncated compressed header block"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn blocks_encode_as_counted_length_prefixed_pairs() {
        let headers = Headers::new()
            .with("streamtype", "stdout")
            .with("a", "1\x002");
        let block = headers.encode().expect("encodes");
        let mut expected = vec![0, 0, 0, 2, 0, 0, 0, 10];
        expected.extend_from_slice(b"streamtype");
        expected.extend_from_slice(&[0, 0, 0, 6]);
        expected.extend_from_slice(b"stdout");
        expected.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 3, b'1', 0, b'2']);
        assert_eq!(block, expected);
        assert_eq!(Headers::decode(&block).expect("decodes"), headers);
        assert_eq!(headers.get("a"), Some("1"));
        assert_eq!(headers.get("streamtype"), Some("stdout"));
        assert_eq!(headers.get("nope"), None);
        assert_eq!(
            Headers::new().encode().expect("encodes"),
            [0, 0, 0, 0],
            "an empty block is a zero count"
        );
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let valid = Headers::new().with("x", "y").encode().expect("encodes");
        assert!(Headers::decode(&valid[..valid.len() - 1]).is_err());
        let mut trailing = valid.clone();
        trailing.push(0);
        assert!(Headers::decode(&trailing).is_err());
        let upper = Headers::new().with("X", "y").encode().expect("encodes");
        assert!(Headers::decode(&upper).is_err());
        let twice = Headers::new()
            .with("x", "1")
            .with("x", "2")
            .encode()
            .expect("encodes");
        assert!(Headers::decode(&twice).is_err());
        assert!(
            Headers::decode(&[0, 0, 0, 5]).is_err(),
            "count beyond the data"
        );
    }

    #[test]
    fn the_first_compressed_block_names_the_spdy_dictionary() {
        let mut compressor = HeaderCompressor::new().expect("compressor");
        let first = compressor
            .compress(&Headers::new().with("streamtype", "error"))
            .expect("compresses");
        // zlib header: deflate with a 32 KiB window, FDICT set, header checksum valid.
        assert_eq!(first[0], 0x78);
        assert_ne!(first[1] & 0x20, 0, "FDICT");
        assert_eq!(u16::from_be_bytes([first[0], first[1]]) % 31, 0);
        assert_eq!(first[2..6], adler32(&HEADER_DICTIONARY).to_be_bytes());
        // Sync-flushed: the block ends with an empty stored block.
        assert_eq!(first[first.len() - 4..], [0, 0, 0xff, 0xff]);
        let second = compressor.compress(&Headers::new()).expect("compresses");
        assert_ne!(second[0], 0x78, "one zlib stream: no second header");
        assert_eq!(second[second.len() - 4..], [0, 0, 0xff, 0xff]);
    }

    #[test]
    fn blocks_round_trip_on_one_context_each_way() {
        let mut compressor = HeaderCompressor::new().expect("compressor");
        let mut decompressor = HeaderDecompressor::new();
        let long = "v".repeat(70_000);
        let blocks = [
            Headers::new().with("streamtype", "error"),
            Headers::new().with("streamtype", "stdin"),
            Headers::new(),
            Headers::new()
                .with("streamtype", "stdout")
                .with(":method", "POST")
                .with("accept", "a\0b"),
            Headers::new().with("big", &long),
            Headers::new().with("streamtype", "stderr"),
        ];
        let mut sizes = Vec::new();
        for headers in &blocks {
            let compressed = compressor.compress(headers).expect("compresses");
            sizes.push(compressed.len());
            assert_eq!(
                &decompressor.decompress(&compressed).expect("decompresses"),
                headers
            );
        }
        // The shared context pays off: a block repeating an earlier one's words is smaller.
        assert!(sizes[1] < sizes[0], "{sizes:?}");
        assert!(sizes[4] < 1000, "{sizes:?}");
    }

    #[test]
    fn a_block_out_of_its_context_does_not_decompress() {
        let mut compressor = HeaderCompressor::new().expect("compressor");
        let _first = compressor
            .compress(&Headers::new().with("streamtype", "error"))
            .expect("compresses");
        let second = compressor
            .compress(&Headers::new().with("streamtype", "stdout"))
            .expect("compresses");
        // A fresh decompressor expects a zlib header first.
        assert!(HeaderDecompressor::new().decompress(&second).is_err());
        assert!(HeaderDecompressor::new().decompress(b"garbage!").is_err());
        assert!(HeaderDecompressor::new().decompress(&[]).is_err());
    }
}
