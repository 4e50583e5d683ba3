//! Value detectors: the second net that finds sensitive values by their shape, wherever they
//! turn up (computed columns, error messages, free text).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};

/// A kind of sensitive value recognized by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Phone numbers (E.164 and common national formats).
    Phone,
    /// Payment card numbers (13–19 digits passing the Luhn check).
    PaymentCard,
    /// National identifiers: US SSN (`123-45-6789`), UK National Insurance numbers.
    NationalId,
    /// JSON Web Tokens.
    Jwt,
    /// Cloud and SaaS access keys: AWS key ids, Google API keys, GitHub, Slack and Stripe tokens,
    /// Azure storage account keys.
    CloudKey,
    /// PEM private keys (also when truncated).
    PrivateKey,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 7] = [
        Detector::Email,
        Detector::Phone,
        Detector::PaymentCard,
        Detector::NationalId,
        Detector::Jwt,
        Detector::CloudKey,
        Detector::PrivateKey,
    ];

    /// The name used in configuration: `email`, `phone`, `payment_card`, `national_id`, `jwt`,
    /// `cloud_key`, `private_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::PaymentCard => "payment_card",
            Detector::NationalId => "national_id",
            Detector::Jwt => "jwt",
            Detector::CloudKey => "cloud_key",
            Detector::PrivateKey => "private_key",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Detector::Email => {
                r"(?i)[a-z0-9._%+\-]{1,64}@[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63})*\.[a-z]{2,63}"
            }
            Detector::Phone => concat!(
                r"\+[1-9][0-9]{6,14}\b",
                r"|(?:\+[0-9]{1,3}[\s.\-]?)?\(?\b[0-9]{2,4}\)?[\s.\-][0-9]{3,4}[\s.\-][0-9]{3,4}\b",
            ),
            Detector::PaymentCard => r"\b(?:[0-9][ \-]?){12,18}[0-9]\b",
            Detector::NationalId => concat!(
                r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
                r"|\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
            ),
            Detector::Jwt => r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            Detector::CloudKey => concat!(
                r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
                r"|\bAIza[0-9A-Za-z_\-]{35}",
                r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
                r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
                r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}",
                r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
                r"|AccountKey=[A-Za-z0-9+/=]{40,}",
            ),
            Detector::PrivateKey => {
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)"
            }
        }
    }

    /// Extra checks a regex cannot express.
    fn confirms(self, candidate: &str) -> bool {
        match self {
            Detector::PaymentCard => luhn(candidate),
            Detector::NationalId => plausible_ssn(candidate),
            _ => true,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown detector name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown detector `{0}` (expected email, phone, payment_card, national_id, jwt, cloud_key or private_key)"
)]
pub struct UnknownDetector(pub String);

impl FromStr for Detector {
    type Err = UnknownDetector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Detector::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDetector(s.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for Detector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Luhn checksum over the digits of `s` (13 to 19 digits).
pub(crate) fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// SSNs never start with 000, 666 or 9xx and have no all-zero group; other national-id
/// shapes pass.
fn plausible_ssn(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 || b[3] != b'-' || b[6] != b'-' {
        return true;
    }
    let area = &s[..3];
    !(area == "000" || area == "666" || b[0] == b'9' || &s[4..6] == "00" || &s[7..] == "0000")
}

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let patterns: Vec<&str> = Detector::ALL.iter().map(|d| d.pattern()).collect();
        // The patterns are constants covered by tests; failing to compile them is a bug.
        #[allow(clippy::expect_used)]
        Compiled {
            set: RegexSet::new(&patterns).expect("detector patterns compile"),
            each: patterns
                .iter()
                .map(|p| Regex::new(p).expect("detector pattern compiles"))
                .collect(),
        }
    })
}

/// A set of enabled detectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Detectors(u8);

impl Detectors {
    /// No detectors.
    pub const NONE: Detectors = Detectors(0);
    /// Every detector.
    pub const ALL: Detectors = Detectors((1 << Detector::ALL.len()) - 1);

    /// The given detectors.
    pub fn of(list: &[Detector]) -> Self {
        Self(list.iter().fold(0, |acc, d| acc | 1 << *d as u8))
    }

    /// Union.
    pub fn union(self, other: Detectors) -> Detectors {
        Detectors(self.0 | other.0)
    }

    /// Whether none is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `d` is enabled.
    pub fn contains(self, d: Detector) -> bool {
        self.0 & (1 << d as u8) != 0
    }

    /// Byte ranges of sensitive values in `text`, sorted and non-overlapping.
    pub fn find(self, text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        if self.is_empty() {
            return spans;
        }
        let c = compiled();
        for i in c.set.matches(text).iter() {
            let d = Detector::ALL[i];
            if !self.contains(d) {
                continue;
            }
            for m in c.each[i].find_iter(text) {
                if d.confirms(m.as_str()) {
                    spans.push((m.start(), m.end()));
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(d: Detector, text: &str) -> Vec<&str> {
        Detectors::of(&[d])
            .find(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn each_detector_finds_its_shape() {
        assert_eq!(
            found(Detector::Email, "mail Alice.B+x@Example.co.uk now"),
            ["Alice.B+x@Example.co.uk"]
        );
        assert_eq!(
            found(Detector::Phone, "call +14155552671."),
            ["+14155552671"]
        );
        assert_eq!(
            found(Detector::Phone, "call (415) 555-2671"),
            ["(415) 555-2671"]
        );
        assert_eq!(
            found(Detector::Phone, "tel +44 20 7946 0958"),
            ["+44 20 7946 0958"]
        );
        assert_eq!(
            found(Detector::PaymentCard, "card 4111 1111 1111 1111 ok"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found(Detector::PaymentCard, "4111-1111-1111-1111"),
            ["4111-1111-1111-1111"]
        );
        assert!(
            found(Detector::PaymentCard, "order 4111 1111 1111 1112").is_empty(),
            "fails Luhn"
        );
        assert_eq!(
            found(Detector::NationalId, "ssn 123-45-6789"),
            ["123-45-6789"]
        );
        assert!(found(Detector::NationalId, "ssn 000-12-3456").is_empty());
        assert_eq!(
            found(Detector::NationalId, "NI AB 12 34 56 C"),
            ["AB 12 34 56 C"]
        );
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        assert_eq!(found(Detector::Jwt, &format!("Bearer {jwt}")), [jwt]);
        assert_eq!(
            found(Detector::CloudKey, "key=AKIAIOSFODNN7EXAMPLE;"),
            ["AKIAIOSFODNN7EXAMPLE"]
        );
        assert_eq!(
            found(
                Detector::CloudKey,
                "ghp_0123456789abcdefghijABCDEFGHIJ012345"
            ),
            ["ghp_0123456789abcdefghijABCDEFGHIJ012345"]
        );
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----";
        assert_eq!(found(Detector::PrivateKey, &format!("x {pem} y")), [pem]);
        // A truncated key is still caught, to the end of the text.
        assert_eq!(
            found(Detector::PrivateKey, "-----BEGIN PRIVATE KEY-----\nMIIB"),
            ["-----BEGIN PRIVATE KEY-----\nMIIB"]
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let text = "order 42 shipped on 2024-01-15 for 19.99 EUR to Berlin";
        assert!(
            Detectors::ALL.find(text).is_empty(),
            "{:?}",
            Detectors::ALL.find(text)
        );
    }

    #[test]
    fn spans_are_merged() {
        let text = "a@b.cc 4111111111111111";
        let spans = Detectors::ALL.find(text);
        assert_eq!(spans.len(), 2);
        assert!(spans[0].1 <= spans[1].0);
    }

    #[test]
    fn luhn_checks() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5500 0000 0000 0004"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("123"));
    }
}
