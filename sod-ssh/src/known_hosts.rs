//! The target's host key, checked against a `known_hosts` file: a key that is not there, or
//! differs from the one there, is refused — never trusted on first use.
//!
//! The file is OpenSSH's format: host patterns (globs `*` and `?`, negations `!`, `[host]:port`
//! for ports other than 22, hashed `|1|salt|hash` names), a key type and the key; `@revoked`
//! lines refuse their key for every host. `@cert-authority` lines are read but not used: the
//! gateway asks targets for plain host keys only, so a line of that kind never admits a key.
//! (russh's own checker splits on single spaces and ignores both markers; this one does not.)

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use russh::keys::PublicKey;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};

/// The host keys a gateway accepts for its targets.
#[derive(Clone, Debug)]
pub struct KnownHosts {
    origin: String,
    entries: Vec<(usize, Entry)>,
}

/// A `known_hosts` file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a known_hosts entry.
    #[error("{origin}:{line}: not a known_hosts entry (host patterns, key type, base64 key)")]
    Line {
        /// The file (or other origin).
        origin: String,
        /// 1-based line.
        line: usize,
    },
}

/// Why a target's host key is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// No line names the host.
    #[error(
        "the host key of {host} ({fingerprint}) is unknown: add it to {origin} (the gateway never trusts a key on first use)"
    )]
    Unknown {
        /// The host as looked up (`host` or `[host]:port`).
        host: String,
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
        /// The known_hosts file.
        origin: String,
    },
    /// Lines name the host with other keys: the key changed, or someone is in the middle.
    #[error(
        "the host key of {host} ({fingerprint}) differs from the one in {origin} line {line}: refused (a changed key, or someone in the middle)"
    )]
    Changed {
        /// The host as looked up.
        host: String,
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
        /// The known_hosts file.
        origin: String,
        /// A line that names the host with another key.
        line: usize,
    },
    /// The key is revoked.
    #[error("the host key of {host} ({fingerprint}) is revoked in {origin} line {line}")]
    Revoked {
        /// The host as looked up.
        host: String,
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
        /// The known_hosts file.
        origin: String,
        /// The `@revoked` line.
        line: usize,
    },
}

impl KnownHosts {
    /// Reads a `known_hosts` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KnownHostsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KnownHostsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses `known_hosts` text; `origin` names it in errors.
    ///
    /// ```
    /// use sod_ssh::KnownHosts;
    ///
    /// let hosts = KnownHosts::parse(
    ///     "inline",
    ///     "[127.0.0.1]:2200 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMrys+l4OYvKIrArLjsnb67xLrmm1Lht8fWxWs8c0X78\n",
    /// )?;
    /// assert_eq!(hosts.len(), 1);
    /// # Ok::<(), sod_ssh::KnownHostsError>(())
    /// ```
    pub fn parse(origin: &str, text: &str) -> Result<Self, KnownHostsError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let entry = Entry::from_str(line).map_err(|_| KnownHostsError::Line {
                origin: origin.to_owned(),
                line: i + 1,
            })?;
            entries.push((i + 1, entry));
        }
        Ok(Self {
            origin: origin.to_owned(),
            entries,
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Accepts `key` for `host`:`port` only if a line names the host with this key and no
    /// `@revoked` line names the key.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), HostKeyError> {
        let name = if port == 22 {
            host.to_ascii_lowercase()
        } else {
            format!("[{}]:{port}", host.to_ascii_lowercase())
        };
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        let same = |e: &Entry| e.public_key().key_data() == key.key_data();
        if let Some((line, _)) = self
            .entries
            .iter()
            .find(|(_, e)| e.marker() == Some(&Marker::Revoked) && same(e))
        {
            return Err(HostKeyError::Revoked {
                host: name,
                fingerprint,
                origin: self.origin.clone(),
                line: *line,
            });
        }
        let mut other = None;
        for (line, e) in &self.entries {
            if e.marker().is_some() || !names(e.host_patterns(), &name) {
                continue;
            }
            if same(e) {
                return Ok(());
            }
            other.get_or_insert(*line);
        }
        Err(match other {
            Some(line) => HostKeyError::Changed {
                host: name,
                fingerprint,
                origin: self.origin.clone(),
                line,
            },
            None => HostKeyError::Unknown {
                host: name,
                fingerprint,
                origin: self.origin.clone(),
            },
        })
    }
}

impl fmt::Display for KnownHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} entries)", self.origin, self.entries.len())
    }
}

/// Whether `patterns` name `host` (already in lookup form): some pattern matches and no
/// negated one does, as OpenSSH's `match_hostname` decides.
fn names(patterns: &HostPatterns, host: &str) -> bool {
    match patterns {
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for p in list {
                let (negated, p) = match p.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, p.as_str()),
                };
                if glob(&p.to_ascii_lowercase(), host) {
                    if negated {
                        return false;
                    }
                    matched = true;
                }
            }
            matched
        }
        HostPatterns::HashedName { salt, hash } => {
            let key =
                aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
            aws_lc_rs::hmac::verify(&key, host.as_bytes(), hash).is_ok()
        }
    }
}

/// OpenSSH's host pattern: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMrys+l4OYvKIrArLjsnb67xLrmm1Lht8fWxWs8c0X78";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4/Wmjpyj/iQXsVVGNmaQ0/AGeeZxtq9g4uftiR6UI/";

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).expect("a key")
    }

    #[test]
    fn a_host_is_accepted_only_with_its_own_key() {
        let hosts = KnownHosts::parse(
            "kh",
            &format!(
                "# comment\n[127.0.0.1]:2200 {KEY_A} web-1\nweb-?.example.com,!web-9.example.com {KEY_A}\n"
            ),
        )
        .expect("parses");
        assert_eq!(hosts.check("127.0.0.1", 2200, &key(KEY_A)), Ok(()));
        // Another port is another host.
        assert!(matches!(
            hosts.check("127.0.0.1", 2201, &key(KEY_A)),
            Err(HostKeyError::Unknown { .. })
        ));
        // Another key for a known host: changed.
        assert!(matches!(
            hosts.check("127.0.0.1", 2200, &key(KEY_B)),
            Err(HostKeyError::Changed { line: 2, .. })
        ));
        assert_eq!(hosts.check("WEB-1.example.com", 22, &key(KEY_A)), Ok(()));
        assert!(hosts.check("web-9.example.com", 22, &key(KEY_A)).is_err());
        assert!(hosts.check("web-10.example.com", 22, &key(KEY_A)).is_err());
    }

    #[test]
    fn revoked_and_ca_lines_never_admit_a_key() {
        let hosts = KnownHosts::parse(
            "kh",
            &format!("@revoked * {KEY_A}\nhost {KEY_A}\n@cert-authority * {KEY_B}\n"),
        )
        .expect("parses");
        assert!(matches!(
            hosts.check("host", 22, &key(KEY_A)),
            Err(HostKeyError::Revoked { line: 1, .. })
        ));
        assert!(matches!(
            hosts.check("other", 22, &key(KEY_B)),
            Err(HostKeyError::Unknown { .. })
        ));
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        // `ssh-keygen -H` of "[127.0.0.1]:2200" with a fixed salt.
        let salt = [7u8; 20];
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = aws_lc_rs::hmac::sign(&k, b"[127.0.0.1]:2200");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!(
            "|1|{}|{} {KEY_A}\n",
            b64.encode(salt),
            b64.encode(tag.as_ref())
        );
        let hosts = KnownHosts::parse("kh", &line).expect("parses");
        assert_eq!(hosts.check("127.0.0.1", 2200, &key(KEY_A)), Ok(()));
        assert!(hosts.check("127.0.0.2", 2200, &key(KEY_A)).is_err());
    }

    #[test]
    fn bad_lines_are_named() {
        let err = KnownHosts::parse("kh", "host ssh-ed25519 not-base64!\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "kh:1: not a known_hosts entry (host patterns, key type, base64 key)"
        );
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*.example.com", "x.y.example.com"));
        assert!(!glob("*.example.com", "example.com"));
    }
}
