//! [`Glob`]: the one pattern syntax used by policy, capabilities and masking.
//!
//! `*` matches any run of characters (including none, and including `.` and `/`), `?` matches
//! exactly one character, everything else matches itself, case-sensitively. There are no classes
//! and no escapes, so a pattern means what it looks like. Matching never allocates.
//!
//! ```
//! use sod_core::Glob;
//!
//! assert!(Glob::new("public.*").matches("public.orders"));
//! assert!(Glob::new("*.customers.email").matches("public.customers.email"));
//! assert!(Glob::new("pg/prod-?").matches("pg/prod-1"));
//! assert!(!Glob::new("pg/prod-?").matches("pg/prod-10"));
//! ```

use std::fmt;

/// A compiled glob pattern: `*` matches any run of characters, `?` exactly one, everything
/// else itself, case-sensitively.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
    shape: Shape,
}

/// Common shapes get a fast path; everything else runs the general matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Any,
    Exact,
    Prefix(usize),
    Suffix(usize),
    General,
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        let wild = |c: char| c == '*' || c == '?';
        let shape = if pattern == "*" {
            Shape::Any
        } else if !pattern.contains(wild) {
            Shape::Exact
        } else if let Some(prefix) = pattern.strip_suffix('*').filter(|p| !p.contains(wild)) {
            Shape::Prefix(prefix.len())
        } else if let Some(suffix) = pattern.strip_prefix('*').filter(|s| !s.contains(wild)) {
            Shape::Suffix(suffix.len())
        } else {
            Shape::General
        };
        Self {
            pattern: pattern.into(),
            shape,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        match self.shape {
            Shape::Any => true,
            Shape::Exact => &*self.pattern == text,
            Shape::Prefix(n) => text.starts_with(&self.pattern[..n]),
            Shape::Suffix(n) => text.ends_with(&self.pattern[self.pattern.len() - n..]),
            Shape::General => wildcard(self.pattern.as_bytes(), text.as_bytes()),
        }
    }

    /// Whether some string that starts with `prefix` matches: whether a pattern could select
    /// something in a collection whose members all start with `prefix`.
    ///
    /// ```
    /// use sod_core::Glob;
    ///
    /// assert!(Glob::new("default/core/secrets/db").matches_some_starting_with("default/core/secrets/"));
    /// assert!(!Glob::new("kube-system/*").matches_some_starting_with("default/core/secrets/"));
    /// ```
    pub fn matches_some_starting_with(&self, prefix: &str) -> bool {
        !self.states_after(prefix).is_empty()
    }

    /// Whether every string that starts with `prefix` matches: whether a pattern covers a whole
    /// collection whose members all start with `prefix`. Sound, and exact for patterns whose
    /// wildcards that cover the rest are `*`s (`default/*`, `*/core/pods/*`); a pattern such as
    /// `default/?*` that needs at least one more character is taken not to cover it.
    ///
    /// ```
    /// use sod_core::Glob;
    ///
    /// assert!(Glob::new("default/*").matches_all_starting_with("default/core/pods/"));
    /// assert!(!Glob::new("default/core/pods/web-*").matches_all_starting_with("default/core/pods/"));
    /// ```
    pub fn matches_all_starting_with(&self, prefix: &str) -> bool {
        let pattern: Vec<char> = self.pattern.chars().collect();
        self.states_after(prefix)
            .into_iter()
            .any(|i| i < pattern.len() && pattern[i..].iter().all(|&c| c == '*'))
    }

    /// The positions in the pattern a matcher can be at after reading `prefix` (an NFA over
    /// characters; every live position can still reach the end, since literals and `?` can be
    /// supplied and `*` can match nothing). Sorted, without duplicates.
    fn states_after(&self, prefix: &str) -> Vec<usize> {
        let pattern: Vec<char> = self.pattern.chars().collect();
        let closure = |mut states: Vec<usize>| {
            let mut i = 0;
            while i < states.len() {
                let s = states[i];
                if pattern.get(s) == Some(&'*') && !states.contains(&(s + 1)) {
                    states.push(s + 1);
                }
                i += 1;
            }
            states.sort_unstable();
            states
        };
        let mut states = closure(vec![0]);
        for c in prefix.chars() {
            let mut next = Vec::new();
            for &s in &states {
                let to = match pattern.get(s) {
                    Some('*') => s,
                    Some('?') => s + 1,
                    Some(&p) if p == c => s + 1,
                    _ => continue,
                };
                if !next.contains(&to) {
                    next.push(to);
                }
            }
            states = closure(next);
            if states.is_empty() {
                break;
            }
        }
        states
    }

    /// Whether any pattern in `globs` matches `text`.
    pub fn any_matches(globs: &[Glob], text: &str) -> bool {
        globs.iter().any(|g| g.matches(text))
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl serde::Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.pattern)
    }
}

impl<'de> serde::Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Glob::new(&s))
    }
}

/// Width of the UTF-8 sequence that starts with `lead`.
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        _ => 2,
    }
}

/// Linear-time wildcard matching with a single backtrack point (the last `*`).
///
/// Both inputs are valid UTF-8; positions in `text` only ever resume at character boundaries, so
/// `?` consumes exactly one character.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(&c) = pattern.get(p) {
            if c == b'*' {
                resume = Some((p + 1, t));
                p += 1;
                continue;
            }
            if c == b'?' {
                t += char_width(text[t]);
                p += 1;
                continue;
            }
            if c == text[t] {
                p += 1;
                t += 1;
                continue;
            }
        }
        match resume {
            Some((rp, rt)) => {
                let next = rt + char_width(text[rt]);
                resume = Some((rp, next));
                p = rp;
                t = next;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes() {
        for (pat, text, expect) in [
            ("*", "", true),
            ("*", "anything.at/all", true),
            ("", "", true),
            ("", "x", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("public.*", "public.orders", true),
            ("public.*", "public.", true),
            ("public.*", "publicx", false),
            ("*.email", "public.customers.email", true),
            ("*.email", "email", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("?", "é", true),
            ("??", "é", false),
            ("é?", "éa", true),
            ("*é", "aaé", true),
            ("*?", "", false),
            ("a**", "a", true),
            ("*a*a*a*", "aaa", true),
            ("*a*a*a*", "aa", false),
        ] {
            assert_eq!(Glob::new(pat).matches(text), expect, "{pat:?} vs {text:?}");
        }
    }

    /// A slow, obviously correct reference matcher over characters.
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(c), Some(d)) => c == d && reference(&p[1..], &t[1..]),
            (Some(_), None) => false,
        }
    }

    proptest! {
        /// The collection checks agree with matching members: what covers every member matches
        /// each one tried, and what matches a member can match some member.
        #[test]
        fn collection_checks_agree_with_matching(
            pattern in "[ab*?/]{0,8}",
            prefix in "[ab/]{0,5}",
            rests in proptest::collection::vec("[ab/]{0,5}", 1..8),
        ) {
            let g = Glob::new(&pattern);
            for rest in &rests {
                let member = format!("{prefix}{rest}");
                if g.matches_all_starting_with(&prefix) {
                    prop_assert!(g.matches(&member), "{pattern:?} covers {prefix:?} but not {member:?}");
                }
                if g.matches(&member) {
                    prop_assert!(g.matches_some_starting_with(&prefix), "{pattern:?} matches {member:?}");
                }
            }
            // Some member matches exactly when some completion of the prefix does: the pattern's
            // own literal remainder is one.
            if g.matches_some_starting_with(&prefix) {
                let completes = (0..=pattern.len()).any(|cut| {
                    let tail: String = pattern[cut..].chars().filter(|&c| c != '*').map(|c| if c == '?' { 'a' } else { c }).collect();
                    g.matches(&format!("{prefix}{tail}"))
                });
                prop_assert!(completes, "{pattern:?} said to match something after {prefix:?}");
            }
        }

        #[test]
        fn agrees_with_reference(p in "[ab*?é.]{0,8}", t in "[abé.]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(Glob::new(&p).matches(&t), reference(&pc, &tc));
        }
    }
}
