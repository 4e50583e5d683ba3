//! Paths: where the shell is, and the absolute path a word names from there.
//!
//! Resolution is lexical: `.` and repeated slashes go, and `..` makes the path unknown (a
//! symbolic link on the way can lead anywhere). The one exception is `cd`, which in bash
//! resolves `..` lexically itself ([`Dirs::cd`]).

/// How many directories the shell may be in before we stop listing them.
const MAX_DIRS: usize = 8;

/// The directories the shell may be in: one or a few known ones, or not known.
///
/// `cd a; cat x` reads `a/x`, or `./x` if `cd a` failed: both are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dirs {
    /// One of these (never empty), absolute, or rooted at `~` when the home directory is not
    /// known.
    Known(Vec<String>),
    /// Not known, and why.
    Unknown(String),
}

impl Dirs {
    /// Exactly `dir`.
    pub(crate) fn one(dir: impl Into<String>) -> Self {
        Dirs::Known(vec![dir.into()])
    }

    /// Not known, because of `why`.
    pub(crate) fn unknown(why: impl Into<String>) -> Self {
        Dirs::Unknown(why.into())
    }

    /// Either of `self` and `other`.
    pub(crate) fn union(&self, other: &Dirs) -> Dirs {
        match (self, other) {
            (Dirs::Unknown(why), _) | (_, Dirs::Unknown(why)) => Dirs::Unknown(why.clone()),
            (Dirs::Known(a), Dirs::Known(b)) => {
                let mut all = a.clone();
                for d in b {
                    if !all.contains(d) {
                        all.push(d.clone());
                    }
                }
                if all.len() > MAX_DIRS {
                    Dirs::unknown("the working directory depends on which commands succeed")
                } else {
                    Dirs::Known(all)
                }
            }
        }
    }

    /// Where `cd target` goes from each of these directories. `target` is the literal argument,
    /// already tilde-expanded; bash's `cd` drops `..` lexically (unless `-P`).
    pub(crate) fn cd(&self, target: &str, home_rooted: bool) -> Dirs {
        let mut out = Vec::new();
        for base in self.bases_for(target, home_rooted) {
            let base = match base {
                Ok(b) => b,
                Err(why) => return Dirs::Unknown(why),
            };
            match logical(&join(&base, target, home_rooted)) {
                Some(dir) => {
                    if !out.contains(&dir) {
                        out.push(dir);
                    }
                }
                None => {
                    return Dirs::unknown(format!(
                        "`cd {target}` leaves the directories whose paths are known"
                    ));
                }
            }
        }
        Dirs::Known(out)
    }

    /// The bases a path resolves against: none needed for an absolute path.
    fn bases_for(&self, path: &str, home_rooted: bool) -> Vec<Result<String, String>> {
        if path.starts_with('/') || home_rooted {
            return vec![Ok(String::new())];
        }
        match self {
            Dirs::Known(dirs) => dirs.iter().cloned().map(Ok).collect(),
            Dirs::Unknown(why) => vec![Err(why.clone())],
        }
    }

    /// The paths `path` names from each of these directories, or why they are not known
    /// (the working directory is not known, or the path has `..`). Unknown paths still give
    /// what they can, joined but not normalized, for the record.
    pub(crate) fn resolve(&self, path: &str, home_rooted: bool) -> (Vec<String>, Option<String>) {
        let mut paths = Vec::new();
        let mut unknown = None;
        for base in self.bases_for(path, home_rooted) {
            match base {
                Err(why) => {
                    unknown.get_or_insert(format!("`{path}` is relative and {why}"));
                }
                Ok(base) => {
                    let joined = join(&base, path, home_rooted);
                    match normalize(&joined) {
                        Some(p) => paths.push(p),
                        None => {
                            unknown.get_or_insert(format!(
                                "`{path}` has `..`, which a symbolic link can send anywhere"
                            ));
                            paths.push(joined);
                        }
                    }
                }
            }
        }
        (paths, unknown)
    }
}

/// `path` from `base` (`base` is ignored for absolute and home-rooted paths).
fn join(base: &str, path: &str, home_rooted: bool) -> String {
    if path.starts_with('/') || home_rooted || base.is_empty() {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    }
}

/// The root and components of a joined path: `/` or `~` (the home directory, not known).
fn split(path: &str) -> (&'static str, impl Iterator<Item = &str>) {
    let (root, rest) = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => ("~", rest),
        _ => ("/", path),
    };
    (root, rest.split('/').filter(|c| !c.is_empty() && *c != "."))
}

fn assemble(root: &str, parts: &[&str]) -> String {
    match (root, parts.is_empty()) {
        ("/", true) => "/".to_owned(),
        ("/", false) => format!("/{}", parts.join("/")),
        (_, true) => "~".to_owned(),
        (_, false) => format!("~/{}", parts.join("/")),
    }
}

/// Drops `.` and repeated slashes; `None` if there is a `..`.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let (root, components) = split(path);
    let parts: Vec<&str> = components.collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(assemble(root, &parts))
}

/// Like [`normalize`], but `..` removes the component before it, as `cd` does; `None` if that
/// climbs above the home directory when its path is not known.
fn logical(path: &str) -> Option<String> {
    let (root, components) = split(path);
    let mut parts: Vec<&str> = Vec::new();
    for c in components {
        if c == ".." {
            if parts.pop().is_none() && root == "~" {
                return None;
            }
        } else {
            parts.push(c);
        }
    }
    Some(assemble(root, &parts))
}

/// Device files that are not data: writing `/dev/null` or reading `/dev/stdin` is not a file
/// operation.
pub(crate) fn is_stream(path: &str) -> bool {
    matches!(
        path,
        "/dev/null"
            | "/dev/zero"
            | "/dev/stdin"
            | "/dev/stdout"
            | "/dev/stderr"
            | "/dev/tty"
            | "/dev/random"
            | "/dev/urandom"
    ) || path
        .strip_prefix("/dev/fd/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_lexically() {
        let here = Dirs::one("/home/u");
        assert_eq!(
            here.resolve("a//./b/", false),
            (vec!["/home/u/a/b".into()], None)
        );
        assert_eq!(
            here.resolve("/etc/./shadow", false),
            (vec!["/etc/shadow".into()], None)
        );
        let (paths, why) = here.resolve("../x", false);
        assert_eq!(paths, ["/home/u/../x"]);
        assert!(why.is_some());
        let home = Dirs::one("~");
        assert_eq!(home.resolve("x", false), (vec!["~/x".into()], None));
        assert_eq!(home.resolve("~/x", true), (vec!["~/x".into()], None));
        // A directory literally named `~`.
        assert_eq!(home.resolve("~/x", false), (vec!["~/~/x".into()], None));
        assert_eq!(Dirs::one("/").resolve(".", false), (vec!["/".into()], None));
    }

    #[test]
    fn cd_is_logical() {
        let here = Dirs::one("/home/u");
        assert_eq!(here.cd("..", false), Dirs::one("/home"));
        assert_eq!(here.cd("/a/b/../c", false), Dirs::one("/a/c"));
        assert_eq!(here.cd("../../../..", false), Dirs::one("/"));
        assert!(matches!(Dirs::one("~").cd("..", false), Dirs::Unknown(_)));
        assert_eq!(Dirs::one("~").cd("a/../b", false), Dirs::one("~/b"));
    }

    #[test]
    fn unions_are_capped() {
        let mut d = Dirs::one("/0");
        for i in 1..=MAX_DIRS {
            d = d.union(&Dirs::one(format!("/{i}")));
        }
        assert!(matches!(d, Dirs::Unknown(_)));
    }
}
