//! Lowercase hex, and secure random bytes: the one implementation every sod crate uses for
//! identifiers, nonces and hashes.
//!
//! ```
//! use sod_core::hex;
//!
//! let id = hex::encode(&hex::random::<8>());
//! assert_eq!(id.len(), 16);
//! assert_eq!(hex::decode(&id).map(|b| b.len()), Some(8));
//! ```

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encodes `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn lower_nibble(c: u8) -> Option<u8> {
    if c.is_ascii_uppercase() {
        None
    } else {
        nibble(c)
    }
}

/// Decodes exactly `N` bytes written as `2 * N` lowercase hex digits (the one spelling sod
/// writes, so a hash has one form in a log), without allocating; `None` otherwise.
///
/// ```
/// assert_eq!(sod_core::hex::decode_lower::<2>("00ff"), Some([0x00, 0xff]));
/// assert_eq!(sod_core::hex::decode_lower::<2>("00FF"), None);
/// assert_eq!(sod_core::hex::decode_lower::<2>("00ff00"), None);
/// ```
pub fn decode_lower<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *byte = lower_nibble(pair[0])? << 4 | lower_nibble(pair[1])?;
    }
    Some(out)
}

/// Decodes hex (either case); `None` on odd length or a non-hex character.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// `N` bytes from the system's secure random generator.
///
/// # Panics
///
/// If the operating system cannot supply entropy: no key, nonce or identifier would be safe.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // aws-lc's generator only fails if the OS cannot supply entropy, in which case no
    // identifier or key we could produce would be safe: stopping is the only sound option.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        let hex = super::encode(&bytes);
        assert_eq!(hex, "00017f80ff");
        assert_eq!(super::decode(&hex).as_deref(), Some(&bytes[..]));
        assert_eq!(super::decode("0G"), None);
        assert_eq!(super::decode("0"), None);
        assert_ne!(super::random::<16>(), super::random::<16>());
    }
}
