//! How a sensitive value is rewritten.

use std::fmt;

use aws_lc_rs::hmac;

/// What a masked value becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Replaced by [`REDACTED`].
    Redact,
    /// Every letter and digit but the last `keep_last` replaced by `*`; punctuation kept, so
    /// `4111 1111 1111 1234` becomes `**** **** **** 1234`.
    Partial {
        /// Letters and digits left visible at the end.
        keep_last: usize,
    },
    /// `h:` followed by 16 hex digits of a keyed HMAC-SHA256: deterministic, so equal values
    /// stay equal (joins and `GROUP BY` still work), but not reversible without the key.
    Hash,
    /// Replaced by NULL.
    Null,
}

/// The replacement text of [`Strategy::Redact`].
pub const REDACTED: &str = "****";

/// The prefix of [`Strategy::Hash`] output.
pub const HASH_PREFIX: &str = "h:";

/// A masked value: written to the output buffer, or NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masked {
    /// The value was left as it was; nothing was written.
    Unchanged,
    /// The replacement was written to the output buffer.
    Replaced,
    /// The value must become NULL.
    Null,
}

impl Strategy {
    /// How much of the original a strategy reveals; lower is stricter. When several rules
    /// match one value, the strictest wins.
    pub fn exposure(self) -> usize {
        match self {
            // NULL hides even whether there was a value.
            Strategy::Null => 0,
            Strategy::Redact => 1,
            Strategy::Hash => 2,
            Strategy::Partial { keep_last } => 3 + keep_last,
        }
    }

    /// The stricter of two strategies.
    pub fn stricter(self, other: Strategy) -> Strategy {
        if other.exposure() < self.exposure() {
            other
        } else {
            self
        }
    }

    /// Rewrites `value` into `out` (which is cleared first).
    pub(crate) fn apply(self, key: &hmac::Key, value: &[u8], out: &mut Vec<u8>) -> Masked {
        out.clear();
        match self {
            Strategy::Null => return Masked::Null,
            Strategy::Redact => out.extend_from_slice(REDACTED.as_bytes()),
            Strategy::Partial { keep_last } => partial(value, keep_last, out),
            Strategy::Hash => {
                let tag = hmac::sign(key, value);
                out.extend_from_slice(HASH_PREFIX.as_bytes());
                for b in &tag.as_ref()[..8] {
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
            }
        }
        Masked::Replaced
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn partial(value: &[u8], keep_last: usize, out: &mut Vec<u8>) {
    out.reserve(value.len());
    if value.is_ascii() {
        let total = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
        let mut hide = total.saturating_sub(keep_last);
        for &b in value {
            if b.is_ascii_alphanumeric() && hide > 0 {
                out.push(b'*');
                hide -= 1;
            } else {
                out.push(b);
            }
        }
        return;
    }
    // Not ASCII: work on characters; bytes that are not UTF-8 are hidden entirely.
    let Ok(text) = std::str::from_utf8(value) else {
        out.extend_from_slice(REDACTED.as_bytes());
        return;
    };
    let total = text.chars().filter(|c| c.is_alphanumeric()).count();
    let mut hide = total.saturating_sub(keep_last);
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if c.is_alphanumeric() && hide > 0 {
            out.push(b'*');
            hide -= 1;
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Redact => f.write_str("redact"),
            Strategy::Partial { keep_last } => write!(f, "partial(keep_last = {keep_last})"),
            Strategy::Hash => f.write_str("hash"),
            Strategy::Null => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: Strategy, v: &str) -> (Masked, String) {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let mut out = Vec::new();
        let m = s.apply(&key, v.as_bytes(), &mut out);
        (m, String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn strategies() {
        assert_eq!(run(Strategy::Redact, "secret").1, REDACTED);
        assert_eq!(run(Strategy::Null, "secret").0, Masked::Null);
        assert_eq!(
            run(Strategy::Partial { keep_last: 4 }, "4111 1111 1111 1234").1,
            "**** **** **** 1234"
        );
        assert_eq!(run(Strategy::Partial { keep_last: 0 }, "a-b").1, "*-*");
        assert_eq!(run(Strategy::Partial { keep_last: 9 }, "ab").1, "ab");
        assert_eq!(run(Strategy::Partial { keep_last: 2 }, "Łódź").1, "**dź");
        let (_, h1) = run(Strategy::Hash, "alice@example.com");
        let (_, h2) = run(Strategy::Hash, "alice@example.com");
        let (_, h3) = run(Strategy::Hash, "bob@example.com");
        assert_eq!(h1, h2);
        assert_ne!(h1, h3);
        assert!(h1.starts_with(HASH_PREFIX) && h1.len() == 18);
    }

    #[test]
    fn strictness() {
        let p4 = Strategy::Partial { keep_last: 4 };
        let p2 = Strategy::Partial { keep_last: 2 };
        assert_eq!(p4.stricter(p2), p2);
        assert_eq!(p2.stricter(Strategy::Hash), Strategy::Hash);
        assert_eq!(Strategy::Hash.stricter(Strategy::Redact), Strategy::Redact);
    }
}
