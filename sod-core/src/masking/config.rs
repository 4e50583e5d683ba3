//! The mask profile file format.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{Detector, Detectors, MaskProfile, MaskProfiles, Selector, Strategy};
use crate::Glob;

/// An error in a mask profile file, naming the file, line and profile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MaskConfigError {
    /// The file (or other origin).
    pub origin: String,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// The profile the error is in, if any.
    pub profile: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MaskConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(p) = &self.profile {
            write!(f, "profile `{p}`: ")?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    profile: Vec<Spanned<RawProfile>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawStrategy {
    Redact,
    Partial,
    Hash,
    Null,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    detectors: Option<Vec<Detector>>,
    detector_strategy: Option<RawStrategy>,
    detector_keep_last: Option<usize>,
    unknown: Option<RawStrategy>,
    unknown_keep_last: Option<usize>,
    #[serde(default)]
    scan_columns: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    column: Option<String>,
    name: Option<String>,
    strategy: RawStrategy,
    keep_last: Option<usize>,
}

fn strategy(raw: RawStrategy, keep_last: Option<usize>) -> Result<Strategy, String> {
    match (raw, keep_last) {
        (RawStrategy::Partial, Some(n)) => Ok(Strategy::Partial { keep_last: n }),
        (RawStrategy::Partial, None) => Err("strategy \"partial\" needs `keep_last`".into()),
        (_, Some(_)) => Err("`keep_last` only applies to strategy \"partial\"".into()),
        (RawStrategy::Redact, None) => Ok(Strategy::Redact),
        (RawStrategy::Hash, None) => Ok(Strategy::Hash),
        (RawStrategy::Null, None) => Ok(Strategy::Null),
    }
}

impl MaskProfiles {
    /// Parses mask profiles. `origin` names the source in error messages.
    ///
    /// The format, with every key:
    ///
    /// ```toml
    /// [[profile]]
    /// name = "planner"                  # referenced by policy rules' `mask`; not "none"
    /// detectors = ["email", "jwt"]      # default: all (email phone payment_card national_id
    ///                                   #   jwt cloud_key private_key); [] turns them off
    /// detector_strategy = "redact"      # what detector hits become (default redact)
    /// unknown = "redact"                # what values of unknown provenance become (default redact)
    /// scan_columns = false              # also scan plain columns no rule selects (default false)
    ///
    /// [[profile.rule]]
    /// column = "*.customers.email"      # schema.table.column glob (case-insensitive) …
    /// strategy = "partial"              # redact | partial | hash | null
    /// keep_last = 4                     # partial only
    ///
    /// [[profile.rule]]
    /// name = "ssn"                      # … or a column name in any table
    /// strategy = "hash"
    /// ```
    pub fn from_toml(origin: &str, text: &str) -> Result<MaskProfiles, MaskConfigError> {
        let err = |offset: Option<usize>, profile: Option<&str>, message: String| MaskConfigError {
            origin: origin.to_owned(),
            line: offset.map(|o| text[..o.min(text.len())].matches('\n').count() + 1),
            profile: profile.map(str::to_owned),
            message,
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| err(e.span().map(|s| s.start), None, e.message().to_owned()))?;
        let mut names = HashSet::new();
        let mut profiles = Vec::new();
        for sp in raw.profile {
            let at = sp.span().start;
            let p = sp.into_inner();
            let name = p.name.clone();
            let perr = |o: usize, m: String| err(Some(o), Some(&name), m);
            if name.is_empty() || name == "none" {
                return Err(perr(
                    at,
                    "a profile needs a name other than \"none\"".into(),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(perr(at, "duplicate profile name".into()));
            }
            let mut profile = MaskProfile::new(name.as_str()).scan_columns(p.scan_columns);
            let detectors = p.detectors.map_or(Detectors::ALL, |d| Detectors::of(&d));
            let det_strategy = strategy(
                p.detector_strategy.unwrap_or(RawStrategy::Redact),
                p.detector_keep_last,
            )
            .map_err(|m| perr(at, format!("detector_strategy: {m}")))?;
            profile = profile.detectors(detectors, det_strategy);
            let unknown = strategy(
                p.unknown.unwrap_or(RawStrategy::Redact),
                p.unknown_keep_last,
            )
            .map_err(|m| perr(at, format!("unknown: {m}")))?;
            profile = profile.unknown(unknown);
            for rs in p.rule {
                let rat = rs.span().start;
                let r = rs.into_inner();
                let selector = match (r.column, r.name) {
                    (Some(c), None) => {
                        if !c.contains('.') {
                            return Err(perr(
                                rat,
                                format!(
                                    "`column = \"{c}\"` is matched against schema.table.column; for a column name in any table write `name = \"{c}\"`"
                                ),
                            ));
                        }
                        Selector::Column(Glob::new(&c))
                    }
                    (None, Some(n)) if !n.is_empty() => Selector::Name(n),
                    _ => {
                        return Err(perr(
                            rat,
                            "a rule needs exactly one of `column` or `name`".into(),
                        ));
                    }
                };
                let s = strategy(r.strategy, r.keep_last).map_err(|m| perr(rat, m))?;
                profile = profile.rule(selector, s);
            }
            profiles.push(profile);
        }
        Ok(MaskProfiles::new(profiles))
    }
}
