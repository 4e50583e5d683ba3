//! One compiled rule and how it matches.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::ApprovalSpec;
use crate::{Glob, KindSet, Operation, Principal, PrincipalKind};

/// What a matching rule does.
#[derive(Clone, Debug)]
pub(crate) enum RuleEffect {
    Allow,
    Deny,
    RequireApproval(Arc<ApprovalSpec>),
}

impl RuleEffect {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            RuleEffect::Allow => "allow",
            RuleEffect::Deny => "deny",
            RuleEffect::RequireApproval(_) => "require_approval",
        }
    }

    /// Restrictive effects match on *any* object; permissive ones need *every* object.
    fn restrictive(&self) -> bool {
        !matches!(self, RuleEffect::Allow)
    }
}

/// The masks a rule asks for.
#[derive(Clone, Debug)]
pub(crate) enum MaskChoice {
    /// No `mask` key: the policy's default applies.
    Default,
    /// `mask = "none"`.
    Unmasked,
    /// `mask = "<profile>"`.
    Profile(Arc<[Arc<str>]>),
}

/// Principal kinds a rule names, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrincipalKinds(pub(crate) u8);

impl PrincipalKinds {
    pub(crate) const HUMAN: u8 = 1;
    pub(crate) const PLANNER: u8 = 2;
    pub(crate) const EXECUTOR: u8 = 4;

    fn bit(kind: PrincipalKind) -> u8 {
        match kind {
            PrincipalKind::Human => Self::HUMAN,
            PrincipalKind::Agent(crate::AgentRole::Planner) => Self::PLANNER,
            PrincipalKind::Agent(crate::AgentRole::Executor) => Self::EXECUTOR,
        }
    }

    fn contains(self, kind: PrincipalKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

/// Conditions; `None` means "any". Checked cheapest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    pub(crate) kinds: Option<KindSet>,
    pub(crate) principal_kinds: Option<PrincipalKinds>,
    pub(crate) touches_sensitive: Option<bool>,
    pub(crate) targets: Option<Box<[Glob]>>,
    pub(crate) principals: Option<Box<[Glob]>>,
    pub(crate) groups: Option<Box<[String]>>,
    pub(crate) objects: Option<Box<[Glob]>>,
    pub(crate) text: Option<Regex>,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) effect: RuleEffect,
    pub(crate) reason: Arc<str>,
    pub(crate) mask: MaskChoice,
    pub(crate) when: Matcher,
    /// 1-based line of the rule in its source, for explanations.
    pub(crate) line: usize,
    /// Index of `when.text` in the policy's combined regex set.
    pub(crate) text_slot: Option<usize>,
}

/// The first condition that did not hold, for [`explain`](super::Policy::explain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The operation kind is not among the rule's `kinds`.
    Kind,
    /// The principal's kind is not among `principal_kinds`.
    PrincipalKind,
    /// `touches_sensitive` differs.
    Sensitive,
    /// The target matches none of `targets`.
    Target,
    /// The principal id matches none of `principals`.
    Principal,
    /// The principal is in none of `groups`.
    Group,
    /// The objects do not satisfy `objects` (an allow rule needs every object to match, at
    /// least one object, and all of them known; deny and require_approval rules need one
    /// object to match, or objects not all known).
    Objects,
    /// The text does not match `text`.
    Text,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Kind => "operation kind not in `kinds`",
            Mismatch::PrincipalKind => "principal kind not in `principal_kinds`",
            Mismatch::Sensitive => "`touches_sensitive` differs",
            Mismatch::Target => "target not in `targets`",
            Mismatch::Principal => "principal not in `principals`",
            Mismatch::Group => "principal in none of `groups`",
            Mismatch::Objects => "objects do not satisfy `objects`",
            Mismatch::Text => "text does not match `text`",
        })
    }
}

impl Rule {
    /// Whether the rule applies to `principal` doing `op`, matching `text` with the rule's own
    /// regex.
    pub(crate) fn check(&self, principal: &Principal, op: &Operation) -> Result<(), Mismatch> {
        self.check_with(principal, op, &mut |rule: &Rule| {
            rule.when
                .text
                .as_ref()
                .is_none_or(|re| re.is_match(op.text()))
        })
    }

    /// Whether the rule applies, asking `text_ok` about the `text` condition (the policy answers
    /// it from one pass of its combined regex set). Never allocates.
    pub(crate) fn check_with(
        &self,
        principal: &Principal,
        op: &Operation,
        text_ok: &mut dyn FnMut(&Rule) -> bool,
    ) -> Result<(), Mismatch> {
        let w = &self.when;
        if w.kinds.is_some_and(|k| !k.contains(op.kind())) {
            return Err(Mismatch::Kind);
        }
        if w.principal_kinds
            .is_some_and(|k| !k.contains(principal.kind))
        {
            return Err(Mismatch::PrincipalKind);
        }
        if w.touches_sensitive
            .is_some_and(|s| s != op.flags().touches_sensitive)
        {
            return Err(Mismatch::Sensitive);
        }
        if let Some(t) = &w.targets
            && !Glob::any_matches(t, op.target().as_str())
        {
            return Err(Mismatch::Target);
        }
        if let Some(p) = &w.principals
            && !Glob::any_matches(p, &principal.id)
        {
            return Err(Mismatch::Principal);
        }
        if let Some(groups) = &w.groups
            && !groups.iter().any(|g| principal.in_group(g))
        {
            return Err(Mismatch::Group);
        }
        if let Some(globs) = &w.objects {
            let objects = op.objects();
            let collections = op.collections();
            let ok = if self.effect.restrictive() {
                // Objects not all known may include one the rule names: it applies; so does a
                // collection that may hold one.
                op.unknown_objects().is_some()
                    || objects.iter().any(|o| Glob::any_matches(globs, o))
                    || collections
                        .iter()
                        .any(|c| globs.iter().any(|g| g.matches_some_starting_with(c)))
            } else {
                // … and an allowing rule cannot be shown to cover them, unless one glob covers
                // every member of each collection.
                op.unknown_objects().is_none()
                    && !(objects.is_empty() && collections.is_empty())
                    && objects.iter().all(|o| Glob::any_matches(globs, o))
                    && collections
                        .iter()
                        .all(|c| globs.iter().any(|g| g.matches_all_starting_with(c)))
            };
            if !ok {
                return Err(Mismatch::Objects);
            }
        }
        if w.text.is_some() && !text_ok(self) {
            return Err(Mismatch::Text);
        }
        Ok(())
    }
}
