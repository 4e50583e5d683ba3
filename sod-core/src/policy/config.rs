//! The policy file format.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::rule::{MaskChoice, Matcher, PrincipalKinds, Rule, RuleEffect};
use super::{ApprovalSpec, Policy};
use crate::{Glob, KindSet, OperationKind};

/// An error in a policy file, naming the file, line, column and rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file (or other origin) the policy came from.
    pub origin: String,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub column: Option<usize>,
    /// The rule the error is in, if any.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// One value or a list of values. Hand-written rather than `#[serde(untagged)]` so the inner
/// error ("unknown variant `delet`, expected one of …") reaches the user.
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, IntoDeserializer, value::SeqAccessDeserializer};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default_mask: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawEffect {
    Allow,
    Deny,
    RequireApproval,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawPrincipalKind {
    Human,
    Planner,
    Executor,
    Agent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    effect: RawEffect,
    reason: Option<String>,
    mask: Option<Spanned<String>>,
    // conditions
    principals: Option<OneOrMany<String>>,
    groups: Option<OneOrMany<String>>,
    principal_kinds: Option<OneOrMany<RawPrincipalKind>>,
    targets: Option<OneOrMany<String>>,
    kinds: Option<OneOrMany<OperationKind>>,
    objects: Option<OneOrMany<String>>,
    text: Option<Spanned<String>>,
    touches_sensitive: Option<bool>,
    // require_approval
    approvers: Option<Spanned<OneOrMany<String>>>,
    quorum: Option<Spanned<u32>>,
    #[serde(default, deserialize_with = "opt_duration")]
    approval_ttl: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::duration::serde_duration::deserialize(d).map(Some)
}

/// Default lifetime of a pending approval request.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(15 * 60);

struct Source<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(
        &self,
        offset: Option<usize>,
        rule: Option<&str>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = match offset {
            Some(off) => {
                let before = &self.text[..off.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        PolicyError {
            origin: self.origin.to_owned(),
            line,
            column,
            rule: rule.map(str::to_owned),
            message: message.into(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
}

fn mask_choice(name: &str) -> MaskChoice {
    if name == "none" {
        MaskChoice::Unmasked
    } else {
        MaskChoice::Profile(Arc::from([Arc::<str>::from(name)]))
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

impl Policy {
    /// Reads a policy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: None,
            column: None,
            rule: None,
            message: format!("cannot read policy file: {e}"),
        })?;
        Self::from_toml(&origin, &text)
    }

    /// Parses a policy. `origin` names the source in error messages (usually the file name).
    ///
    /// The format, with every key:
    ///
    /// ```toml
    /// # Mask profile for rules that do not name one (optional).
    /// default_mask = "standard"
    ///
    /// [[rule]]
    /// id = "orders-writes"               # unique; letters, digits, - _ . : /
    /// effect = "require_approval"        # allow | deny | require_approval
    /// reason = "writes to orders need a second pair of eyes"
    /// mask = "standard"                  # a mask profile, or "none"; default: default_mask
    /// # Conditions: all that are present must hold; absent means "any".
    /// principals = ["agent-*"]           # principal id globs
    /// groups = ["planners"]              # the principal is in at least one
    /// principal_kinds = ["planner"]      # human | planner | executor | agent
    /// targets = ["pg/*"]                 # target globs
    /// kinds = ["write"]                  # connect read forward transfer write schema exec admin unknown
    /// objects = ["public.orders"]        # allow: every object matches; deny/approval: any object
    /// text = "(?i)\\bwhere\\b"           # regex on the normalized text
    /// touches_sensitive = false
    /// # require_approval only:
    /// approvers = ["dba"]                # approver groups (required)
    /// quorum = 1                         # distinct approvers (default 1)
    /// approval_ttl = "15m"               # how long a request stays pending (default 15m)
    /// ```
    ///
    /// Any key may also be written as a single string instead of a list.
    pub fn from_toml(origin: &str, text: &str) -> Result<Policy, PolicyError> {
        let src = Source { origin, text };
        let raw: RawPolicy = toml::from_str(text)
            .map_err(|e| src.error(e.span().map(|s| s.start), None, e.message().to_owned()))?;
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(raw.rule.len());
        for spanned in raw.rule {
            let start = spanned.span().start;
            let r = spanned.into_inner();
            let id = r.id.get_ref().clone();
            let at = |offset: usize, msg: String| src.error(Some(offset), Some(&id), msg);
            if !valid_id(&id) {
                return Err(at(
                    r.id.span().start,
                    "rule ids use letters, digits and - _ . : / (at most 128)".into(),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(at(r.id.span().start, "duplicate rule id".into()));
            }
            let effect = match r.effect {
                RawEffect::Allow | RawEffect::Deny => {
                    if let Some(a) = &r.approvers {
                        return Err(at(
                            a.span().start,
                            "`approvers` only applies to effect = \"require_approval\"".into(),
                        ));
                    }
                    if let Some(q) = &r.quorum {
                        return Err(at(
                            q.span().start,
                            "`quorum` only applies to effect = \"require_approval\"".into(),
                        ));
                    }
                    if r.approval_ttl.is_some() {
                        return Err(at(
                            start,
                            "`approval_ttl` only applies to effect = \"require_approval\"".into(),
                        ));
                    }
                    if r.effect == RawEffect::Allow {
                        RuleEffect::Allow
                    } else {
                        RuleEffect::Deny
                    }
                }
                RawEffect::RequireApproval => {
                    let Some(approvers) = r.approvers else {
                        return Err(at(
                            start,
                            "effect = \"require_approval\" needs `approvers` (approver groups)"
                                .into(),
                        ));
                    };
                    let approvers_at = approvers.span().start;
                    let approver_groups = approvers.into_inner().into_vec();
                    if approver_groups.is_empty() || approver_groups.iter().any(String::is_empty) {
                        return Err(at(
                            approvers_at,
                            "`approvers` must name at least one group".into(),
                        ));
                    }
                    let quorum = match r.quorum {
                        Some(q) if *q.get_ref() == 0 => {
                            return Err(at(q.span().start, "`quorum` must be at least 1".into()));
                        }
                        Some(q) => q.into_inner(),
                        None => 1,
                    };
                    let ttl = r.approval_ttl.unwrap_or(DEFAULT_APPROVAL_TTL);
                    if ttl.is_zero() {
                        return Err(at(start, "`approval_ttl` must be positive".into()));
                    }
                    RuleEffect::RequireApproval(Arc::new(ApprovalSpec {
                        approver_groups,
                        quorum,
                        ttl,
                    }))
                }
            };
            if r.effect == RawEffect::Deny
                && let Some(m) = &r.mask
            {
                return Err(at(
                    m.span().start,
                    "`mask` does not apply to deny rules".into(),
                ));
            }
            let text_re = match r.text {
                None => None,
                Some(t) => Some(
                    Regex::new(t.get_ref())
                        .map_err(|e| at(t.span().start, format!("invalid regex in `text`: {e}")))?,
                ),
            };
            let globs = |v: Option<OneOrMany<String>>| {
                v.map(|v| {
                    v.into_vec()
                        .iter()
                        .map(|s| Glob::new(s))
                        .collect::<Box<[_]>>()
                })
            };
            let principal_kinds = r.principal_kinds.map(|v| {
                PrincipalKinds(v.into_vec().into_iter().fold(0, |acc, k| {
                    acc | match k {
                        RawPrincipalKind::Human => PrincipalKinds::HUMAN,
                        RawPrincipalKind::Planner => PrincipalKinds::PLANNER,
                        RawPrincipalKind::Executor => PrincipalKinds::EXECUTOR,
                        RawPrincipalKind::Agent => {
                            PrincipalKinds::PLANNER | PrincipalKinds::EXECUTOR
                        }
                    }
                }))
            });
            let when = Matcher {
                kinds: r
                    .kinds
                    .map(|k| k.into_vec().into_iter().collect::<KindSet>()),
                principal_kinds,
                touches_sensitive: r.touches_sensitive,
                targets: globs(r.targets),
                principals: globs(r.principals),
                groups: r.groups.map(|g| g.into_vec().into_boxed_slice()),
                objects: globs(r.objects),
                text: text_re,
            };
            let reason = r.reason.unwrap_or_else(|| match &effect {
                RuleEffect::Allow => format!("allowed by rule `{id}`"),
                RuleEffect::Deny => format!("denied by rule `{id}`"),
                RuleEffect::RequireApproval(_) => format!("rule `{id}` requires approval"),
            });
            rules.push(Rule {
                id: Arc::from(id.as_str()),
                effect,
                reason: Arc::from(reason),
                mask: r
                    .mask
                    .map_or(MaskChoice::Default, |m| mask_choice(m.get_ref())),
                when,
                line: src.line_of(start),
                text_slot: None,
            });
        }
        let default_mask = match raw.default_mask {
            None => None,
            Some(m) if m.get_ref() == "none" => None,
            Some(m) if m.get_ref().is_empty() => {
                return Err(src.error(Some(m.span().start), None, "`default_mask` is empty"));
            }
            Some(m) => Some(Arc::from([Arc::<str>::from(m.get_ref().as_str())])),
        };
        Ok(Policy::from_rules(Arc::from(origin), rules, default_mask))
    }
}
