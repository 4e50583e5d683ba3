//! Paths as policy sees them: absolute, normalised, and honest about what is not known.

use std::fmt::Write as _;

/// Why an object is not known exactly: [`Resolved::unknown`].
pub(super) const DOTDOT: &str = "`..` may cross symlinks";
pub(super) const NOT_UTF8: &str = "the path is not UTF-8 (shown with \\x escapes)";
pub(super) const NO_CWD: &str = "the session's working directory is not known yet";

/// A path from a request, resolved against the session's working directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Resolved {
    /// For the operation's text: absolute, `.` and empty segments dropped, `..` kept as sent
    /// (the server resolves it, maybe through a symlink), quoted when it must be.
    pub(super) shown: String,
    /// For the operation's objects: `shown` with `..` taken lexically, unquoted.
    pub(super) object: String,
    /// `object` as bytes, for resolving a symlink's target against its directory.
    pub(super) raw: Vec<u8>,
    /// Why `object` may not be the file the server touches, if it may not.
    pub(super) unknown: Option<String>,
}

/// The path contains a NUL byte: OpenSSH's server drops the session on one, other servers
/// cut the path short there. Either way the path means something other than its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NulInPath;

/// Resolves `path` against `cwd` (absolute, as the server reported it), or against `~` with
/// the objects marked unknown while the working directory is not known.
pub(super) fn resolve(cwd: Option<&[u8]>, path: &[u8]) -> Result<Resolved, NulInPath> {
    if path.contains(&0) {
        return Err(NulInPath);
    }
    let mut reasons: Vec<&str> = Vec::new();
    let (prefix, base): (&[u8], &[u8]) = match (path.first(), cwd) {
        (Some(b'/'), _) => (b"", b""),
        (_, Some(cwd)) => (b"", cwd),
        (_, None) => {
            reasons.push(NO_CWD);
            (b"~", b"")
        }
    };
    let segments = base
        .split(|&b| b == b'/')
        .chain(path.split(|&b| b == b'/'))
        .filter(|s| !s.is_empty() && *s != b".");
    let mut shown: Vec<u8> = prefix.to_vec();
    let mut object: Vec<&[u8]> = Vec::new();
    let mut dotdot = false;
    for segment in segments {
        shown.push(b'/');
        shown.extend_from_slice(segment);
        if segment == b".." {
            dotdot = true;
            object.pop();
        } else {
            object.push(segment);
        }
    }
    if shown.is_empty() {
        shown.push(b'/');
    }
    let mut object_bytes: Vec<u8> = prefix.to_vec();
    for segment in &object {
        object_bytes.push(b'/');
        object_bytes.extend_from_slice(segment);
    }
    if object_bytes.is_empty() {
        object_bytes.push(b'/');
    }
    if dotdot {
        reasons.push(DOTDOT);
    }
    if std::str::from_utf8(&shown).is_err() {
        reasons.push(NOT_UTF8);
    }
    Ok(Resolved {
        shown: quote(&shown),
        object: escape_invalid(&object_bytes),
        raw: object_bytes,
        unknown: (!reasons.is_empty()).then(|| reasons.join("; ")),
    })
}

/// The directory holding `path` (an unquoted, absolute path as in [`Resolved::object`]).
pub(super) fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => path.get(..i).unwrap_or(b"/"),
    }
}

/// `bytes` for an operation's text: as they are when they are UTF-8 without spaces, quotes,
/// backslashes or control characters, else in double quotes with `\"`, `\\`, `\n`, `\t`,
/// `\r`, `\u{…}` for other control characters and `\xNN` for bytes that are not UTF-8.
///
/// Distinct byte strings give distinct texts, so an approval of one path never covers
/// another (invariant I3), and a name with a newline cannot forge a line of a log.
pub(super) fn quote(bytes: &[u8]) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '\\' | '\''))
    };
    if let Ok(s) = std::str::from_utf8(bytes)
        && plain(s)
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// `bytes` as a string, with each byte that is not UTF-8 as `\xNN` (an object of a path that
/// is not UTF-8, which is marked unknown anyway).
pub(super) fn escape_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cwd: Option<&str>, path: &[u8]) -> Resolved {
        resolve(cwd.map(str::as_bytes), path).expect("no NUL")
    }

    #[test]
    fn relative_paths_join_the_working_directory() {
        let p = r(Some("/home/demo"), b"notes.txt");
        assert_eq!(p.shown, "/home/demo/notes.txt");
        assert_eq!(p.object, "/home/demo/notes.txt");
        assert_eq!(p.unknown, None);
        assert_eq!(r(Some("/home/demo"), b"").object, "/home/demo");
        assert_eq!(r(Some("/home/demo"), b".").object, "/home/demo");
        assert_eq!(r(Some("/"), b"x").object, "/x");
        assert_eq!(r(Some("/home/demo"), b"/").object, "/");
    }

    #[test]
    fn dots_and_slashes_normalise_lexically() {
        let p = r(Some("/home/demo"), b"/srv//data/./x/");
        assert_eq!(
            (p.shown.as_str(), p.object.as_str()),
            ("/srv/data/x", "/srv/data/x")
        );
        assert_eq!(p.unknown, None);
    }

    #[test]
    fn dotdot_keeps_the_object_but_marks_it_unknown() {
        let p = r(Some("/home/demo"), b"../../etc/passwd");
        assert_eq!(p.shown, "/home/demo/../../etc/passwd");
        assert_eq!(p.object, "/etc/passwd");
        assert_eq!(p.unknown.as_deref(), Some(DOTDOT));
        assert_eq!(r(None, b"/../..").object, "/");
    }

    #[test]
    fn without_a_working_directory_relative_paths_are_under_home_and_unknown() {
        let p = r(None, b"x/y");
        assert_eq!(p.object, "~/x/y");
        assert_eq!(p.unknown.as_deref(), Some(NO_CWD));
        assert_eq!(r(None, b"/etc").unknown, None);
        assert_eq!(r(None, b"").object, "~");
    }

    #[test]
    fn paths_that_are_not_utf8_are_escaped_and_unknown() {
        let p = r(Some("/d"), b"caf\xe9");
        assert_eq!(p.shown, r#""/d/caf\xe9""#);
        assert_eq!(p.object, r"/d/caf\xe9");
        assert_eq!(p.unknown.as_deref(), Some(NOT_UTF8));
        assert_eq!(resolve(None, b"/a\0b"), Err(NulInPath));
    }

    #[test]
    fn quoting_is_injective_on_the_usual_suspects() {
        let inputs: [&[u8]; 9] = [
            b"a b", b"a\"b", b"a\\b", b"a\nb", b"a\\nb", b"a\xe9", b"a\\xe9", b"", b"a\x01",
        ];
        let quoted: Vec<String> = inputs.iter().map(|i| quote(i)).collect();
        for (i, a) in quoted.iter().enumerate() {
            for b in &quoted[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(quote(b"/home/demo/x.txt"), "/home/demo/x.txt");
        assert_eq!(quote(b"a\nb"), r#""a\nb""#);
        assert_eq!(quote(b"a\x01"), r#""a\u{1}""#);
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
        assert_eq!(parent(b"~/a"), b"~");
    }
}
