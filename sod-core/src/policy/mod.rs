//! Policy: `(Principal, Operation) → Decision`.
//!
//! The built-in engine reads rules from TOML (see [`Policy::from_toml`] for the format).
//! Evaluation is **deny-overrides, then require-approval, then allow; no matching rule means
//! deny**. Every decision names the rule that made it, so audit records and error messages can
//! say why, and [`Policy::explain`] shows the whole trace.
//!
//! ```
//! use sod_core::policy::{Policy, Effect};
//! use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};
//!
//! let policy = Policy::from_toml("policy.toml", r#"
//!     [[rule]]
//!     id = "planners-read"
//!     effect = "allow"
//!     principal_kinds = ["planner"]
//!     kinds = ["connect", "read"]
//!
//!     [[rule]]
//!     id = "no-ddl"
//!     effect = "deny"
//!     kinds = ["schema"]
//!     reason = "schema changes go through migrations"
//! "#)?;
//!
//! let planner = Principal::new("agent-7", "sod", PrincipalKind::PLANNER);
//! let target = Target::new("pg/prod");
//! let read = Operation::builder(target.clone(), OperationKind::Read, "SELECT 1").build();
//! let drop = Operation::builder(target, OperationKind::Schema, "DROP TABLE t").build();
//!
//! assert!(matches!(policy.decide(&planner, &read).effect(), Effect::Allow));
//! let d = policy.decide(&planner, &drop);
//! assert!(matches!(d.effect(), Effect::Deny));
//! assert_eq!(d.rule_id(), "no-ddl");
//! # Ok::<(), sod_core::policy::PolicyError>(())
//! ```

mod config;
mod rule;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use config::{DEFAULT_APPROVAL_TTL, PolicyError};
pub use rule::Mismatch;
use rule::{MaskChoice, Rule, RuleEffect};

use crate::{Operation, OperationKind, Principal, Refusal, RefusalCode};

/// Anything that can decide on an operation: the built-in [`Policy`], or your own engine.
///
/// Engines decide on atomic operations; [`decide_all`](Decide::decide_all) (what the
/// [`PolicyLayer`](crate::layer::PolicyLayer) calls) judges each part of a batch and combines.
pub trait Decide: Send + Sync {
    /// Decides whether `principal` may carry out the atomic operation `op`.
    fn decide(&self, principal: &Principal, op: &Operation) -> Decision;

    /// Decides on an operation that may be a batch: every part is decided on its own, and the
    /// batch is denied if any part is denied, needs approval if any part does (the first such
    /// part's rule and spec, the highest quorum among them), and is allowed otherwise, with the
    /// union of the parts' masks.
    fn decide_all(&self, principal: &Principal, op: &Operation) -> Decision {
        if op.parts().is_empty() {
            return self.decide(principal, op);
        }
        Decision::combine(op.parts().iter().map(|p| self.decide(principal, p)))
    }
}

impl<T: Decide + ?Sized> Decide for Arc<T> {
    fn decide(&self, principal: &Principal, op: &Operation) -> Decision {
        (**self).decide(principal, op)
    }
}

/// What approval a rule requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// Approvers must be in at least one of these groups.
    pub approver_groups: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
    /// How long a pending request stays open.
    pub ttl: Duration,
}

/// The outcome of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Carry it out.
    Allow,
    /// Refuse it.
    Deny,
    /// Carry it out once someone else approves it.
    RequireApproval(Arc<ApprovalSpec>),
}

impl Effect {
    /// `allow`, `deny` or `require_approval`.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::RequireApproval(_) => "require_approval",
        }
    }
}

/// A policy decision: effect, the rule that made it and why, and the mask profiles to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    effect: Effect,
    rule_id: Arc<str>,
    reason: Arc<str>,
    masks: Option<Arc<[Arc<str>]>>,
}

impl Decision {
    /// An allow decision by `rule_id`.
    pub fn allow(rule_id: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        Self::with_effect(Effect::Allow, rule_id, reason)
    }

    /// A deny decision by `rule_id`.
    pub fn deny(rule_id: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        Self::with_effect(Effect::Deny, rule_id, reason)
    }

    /// A require-approval decision by `rule_id`.
    pub fn require_approval(
        rule_id: impl Into<Arc<str>>,
        reason: impl Into<Arc<str>>,
        spec: ApprovalSpec,
    ) -> Self {
        Self::with_effect(Effect::RequireApproval(Arc::new(spec)), rule_id, reason)
    }

    fn with_effect(
        effect: Effect,
        rule_id: impl Into<Arc<str>>,
        reason: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            effect,
            rule_id: rule_id.into(),
            reason: reason.into(),
            masks: None,
        }
    }

    /// Applies the named mask profiles to the response.
    pub fn with_masks<I: IntoIterator<Item = S>, S: Into<Arc<str>>>(mut self, masks: I) -> Self {
        let masks: Arc<[Arc<str>]> = masks.into_iter().map(Into::into).collect();
        self.masks = (!masks.is_empty()).then_some(masks);
        self
    }

    /// The effect.
    pub fn effect(&self) -> &Effect {
        &self.effect
    }

    /// The rule that decided (`default-deny` when no rule matched).
    pub fn rule_id(&self) -> &str {
        &self.rule_id
    }

    /// Why, in a sentence.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Mask profiles to apply to the response; empty means unmasked.
    pub fn masks(&self) -> &[Arc<str>] {
        self.masks.as_deref().unwrap_or(&[])
    }

    /// Combines the decisions on the parts of a batch (see [`Decide::decide_all`]).
    pub fn combine(decisions: impl IntoIterator<Item = Decision>) -> Decision {
        let mut approval: Option<Decision> = None;
        let mut allow: Option<Decision> = None;
        let mut masks: Vec<Arc<str>> = Vec::new();
        for d in decisions {
            for m in d.masks() {
                if !masks.contains(m) {
                    masks.push(m.clone());
                }
            }
            match &d.effect {
                Effect::Deny => return d,
                Effect::RequireApproval(spec) => match &mut approval {
                    None => approval = Some(d.clone()),
                    Some(first) => {
                        if let Effect::RequireApproval(kept) = &first.effect
                            && spec.quorum > kept.quorum
                        {
                            let mut merged = (**kept).clone();
                            merged.quorum = spec.quorum;
                            first.effect = Effect::RequireApproval(Arc::new(merged));
                        }
                    }
                },
                Effect::Allow => {
                    allow.get_or_insert(d);
                }
            }
        }
        let Some(mut decision) = approval.or(allow) else {
            return Decision::deny(DEFAULT_DENY, "an empty batch is not an operation");
        };
        decision.masks = (!masks.is_empty()).then(|| masks.into());
        decision
    }

    /// The refusal a deny decision turns into. For an operation the analyzer did not
    /// understand, the analyzer's message is appended (invariant I7); for one whose objects are
    /// not all known, why.
    pub fn refusal(&self, op: &Operation) -> Refusal {
        let mut reason = match op.note() {
            Some(note) if op.kind() == OperationKind::Unknown => format!("{}: {note}", self.reason),
            _ => self.reason.to_string(),
        };
        if let Some(why) = op.unknown_objects() {
            reason = format!("{reason} (what it touches is not known: {why})");
        }
        Refusal::new(RefusalCode::PolicyDenied, reason).with_rule(self.rule_id.clone())
    }
}

/// The rule id of the decision taken when no rule matches.
pub const DEFAULT_DENY: &str = "default-deny";

/// The built-in rule engine.
#[derive(Clone, Debug)]
pub struct Policy {
    origin: Arc<str>,
    rules: Vec<Rule>,
    /// Every rule's `text` regex in one set, so a decision scans the text once, not once per
    /// rule.
    texts: Option<Arc<regex_automata::meta::Regex>>,
    /// For each operation kind, the indices (in order) of the rules that can match it.
    by_kind: [Box<[u32]>; OperationKind::ALL.len()],
    default_mask: Option<Arc<[Arc<str>]>>,
    default_deny_id: Arc<str>,
    default_deny_reason: Arc<str>,
}

/// Collects the masks of the matching rules of one effect without allocating in the common
/// case of a single profile.
#[derive(Default)]
struct MaskUnion<'a> {
    first: Option<&'a Arc<[Arc<str>]>>,
    more: Vec<Arc<str>>,
}

impl<'a> MaskUnion<'a> {
    fn add(&mut self, masks: Option<&'a Arc<[Arc<str>]>>) {
        let Some(m) = masks else { return };
        match self.first {
            None => self.first = Some(m),
            Some(f) if Arc::ptr_eq(f, m) || f == m => {}
            Some(_) => {
                for name in m.iter() {
                    if !self.first.is_some_and(|f| f.contains(name)) && !self.more.contains(name) {
                        self.more.push(name.clone());
                    }
                }
            }
        }
    }

    fn finish(self) -> Option<Arc<[Arc<str>]>> {
        let first = self.first?;
        if self.more.is_empty() {
            return Some(first.clone());
        }
        Some(first.iter().cloned().chain(self.more).collect())
    }
}

thread_local! {
    /// Reused across decisions on a thread, so matching the regex set does not allocate.
    static PATTERN_SET: std::cell::RefCell<regex_automata::PatternSet> =
        std::cell::RefCell::new(regex_automata::PatternSet::new(0));
}

/// Answers rules' `text` conditions from one lazy pass of the policy's regex set.
struct TextMatches<'a> {
    set: Option<&'a regex_automata::meta::Regex>,
    text: &'a str,
    state: Scan,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    NotYet,
    NoneMatch,
    Recorded,
}

impl<'a> TextMatches<'a> {
    fn new(set: Option<&'a regex_automata::meta::Regex>, text: &'a str) -> Self {
        Self {
            set,
            text,
            state: Scan::NotYet,
        }
    }

    fn matches(&mut self, rule: &Rule) -> bool {
        let (Some(set), Some(slot)) = (self.set, rule.text_slot) else {
            return rule
                .when
                .text
                .as_ref()
                .is_none_or(|re| re.is_match(self.text));
        };
        if self.state == Scan::NotYet {
            // Most texts match no rule's regex: one cheap any-match pass settles that.
            self.state = if set.is_match(regex_automata::Input::new(self.text)) {
                PATTERN_SET.with(|cell| {
                    let mut found = cell.borrow_mut();
                    if found.capacity() < set.pattern_len() {
                        *found = regex_automata::PatternSet::new(set.pattern_len());
                    } else {
                        found.clear();
                    }
                    set.which_overlapping_matches(
                        &regex_automata::Input::new(self.text),
                        &mut found,
                    );
                });
                Scan::Recorded
            } else {
                Scan::NoneMatch
            };
        }
        self.state == Scan::Recorded
            && PATTERN_SET.with(|cell| {
                cell.borrow()
                    .contains(regex_automata::PatternID::must(slot))
            })
    }
}

impl Policy {
    /// A policy with no rules: it denies everything.
    pub fn deny_all() -> Self {
        Self::from_rules("<empty>".into(), Vec::new(), None)
    }

    fn from_rules(
        origin: Arc<str>,
        mut rules: Vec<Rule>,
        default_mask: Option<Arc<[Arc<str>]>>,
    ) -> Self {
        let mut patterns = Vec::new();
        for rule in &mut rules {
            if let Some(re) = &rule.when.text {
                rule.text_slot = Some(patterns.len());
                patterns.push(re.as_str().to_owned());
            }
        }
        // Every pattern already compiled as a `Regex`; should the set fail anyway (size
        // limits), rules fall back to their own regex.
        let texts = (!patterns.is_empty())
            .then(|| {
                regex_automata::meta::Regex::builder()
                    .configure(
                        regex_automata::meta::Config::new()
                            .match_kind(regex_automata::MatchKind::All),
                    )
                    .build_many(&patterns)
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        if texts.is_none() {
            for rule in &mut rules {
                rule.text_slot = None;
            }
        }
        let by_kind = OperationKind::ALL.map(|kind| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.when.kinds.is_none_or(|k| k.contains(kind)))
                .map(|(i, _)| i as u32)
                .collect()
        });
        Self {
            origin,
            rules,
            texts,
            by_kind,
            default_mask,
            default_deny_id: Arc::from(DEFAULT_DENY),
            default_deny_reason: Arc::from("no rule allows this operation"),
        }
    }

    /// Where the policy was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Rule ids in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.id)
    }

    /// Every mask profile the policy names, so a configuration loader can check they exist.
    pub fn referenced_masks(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .rules
            .iter()
            .filter_map(|r| match &r.mask {
                MaskChoice::Profile(p) => Some(p.iter().map(|s| &**s)),
                _ => None,
            })
            .flatten()
            .chain(
                self.default_mask
                    .iter()
                    .flat_map(|m| m.iter().map(|s| &**s)),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn masks_of<'a>(&'a self, rule: &'a Rule) -> Option<&'a Arc<[Arc<str>]>> {
        match &rule.mask {
            MaskChoice::Default => self.default_mask.as_ref(),
            MaskChoice::Unmasked => None,
            MaskChoice::Profile(p) => Some(p),
        }
    }

    fn decide_inner(&self, principal: &Principal, op: &Operation) -> Decision {
        let mut approval: Option<&Rule> = None;
        let mut allow: Option<&Rule> = None;
        let mut approval_masks = MaskUnion::default();
        let mut allow_masks = MaskUnion::default();
        let mut texts = TextMatches::new(self.texts.as_deref(), op.text());
        for &i in self.by_kind[op.kind() as usize].iter() {
            let rule = &self.rules[i as usize];
            if rule
                .check_with(principal, op, &mut |r| texts.matches(r))
                .is_err()
            {
                continue;
            }
            match &rule.effect {
                RuleEffect::Deny => {
                    return Decision {
                        effect: Effect::Deny,
                        rule_id: rule.id.clone(),
                        reason: rule.reason.clone(),
                        masks: None,
                    };
                }
                RuleEffect::RequireApproval(_) => {
                    approval.get_or_insert(rule);
                    approval_masks.add(self.masks_of(rule));
                }
                RuleEffect::Allow => {
                    allow.get_or_insert(rule);
                    allow_masks.add(self.masks_of(rule));
                }
            }
        }
        let (rule, masks) = match (approval, allow) {
            (Some(rule), _) => (rule, approval_masks),
            (None, Some(rule)) => (rule, allow_masks),
            (None, None) => {
                return Decision {
                    effect: Effect::Deny,
                    rule_id: self.default_deny_id.clone(),
                    reason: self.default_deny_reason.clone(),
                    masks: None,
                };
            }
        };
        let effect = match &rule.effect {
            RuleEffect::RequireApproval(spec) => Effect::RequireApproval(spec.clone()),
            _ => Effect::Allow,
        };
        Decision {
            effect,
            rule_id: rule.id.clone(),
            reason: rule.reason.clone(),
            masks: masks.finish(),
        }
    }

    /// Decides, and explains how: every rule in order with whether it matched and, if not, the
    /// first condition that failed.
    ///
    /// For a batch, every part is explained (its steps carry the part's index).
    pub fn explain(&self, principal: &Principal, op: &Operation) -> Explanation {
        let batch = !op.parts().is_empty();
        let steps = op
            .atoms()
            .enumerate()
            .flat_map(|(i, atom)| {
                self.rules.iter().map(move |r| RuleStep {
                    part: batch.then_some(i),
                    rule_id: r.id.to_string(),
                    effect: r.effect.name(),
                    line: r.line,
                    outcome: r.check(principal, atom),
                })
            })
            .collect();
        Explanation {
            origin: self.origin.to_string(),
            decision: self.decide_all(principal, op),
            steps,
        }
    }
}

impl Decide for Policy {
    fn decide(&self, principal: &Principal, op: &Operation) -> Decision {
        self.decide_inner(principal, op)
    }
}

impl Policy {
    /// Decides whether `principal` may carry out `op`, judging every part of a batch (same as
    /// [`Decide::decide_all`]).
    pub fn decide(&self, principal: &Principal, op: &Operation) -> Decision {
        self.decide_all(principal, op)
    }
}

/// One rule's part in an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleStep {
    /// For a batch, which part this step is about.
    pub part: Option<usize>,
    /// The rule id.
    pub rule_id: String,
    /// `allow`, `deny` or `require_approval`.
    pub effect: &'static str,
    /// The rule's line in the policy file.
    pub line: usize,
    /// `Ok` if the rule matched, else the first condition that failed.
    pub outcome: Result<(), Mismatch>,
}

/// The full trace of a decision, for `sod policy check` and for debugging rules.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// Where the policy came from.
    pub origin: String,
    /// The decision.
    pub decision: Decision,
    /// Every rule, in evaluation order.
    pub steps: Vec<RuleStep>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut part = None;
        for s in &self.steps {
            if s.part != part {
                part = s.part;
                if let Some(i) = part {
                    writeln!(f, "part {}:", i + 1)?;
                }
            }
            match &s.outcome {
                Ok(()) => writeln!(
                    f,
                    "  {}:{} {} `{}`: matched",
                    self.origin, s.line, s.effect, s.rule_id
                )?,
                Err(m) => writeln!(
                    f,
                    "  {}:{} {} `{}`: skipped ({m})",
                    self.origin, s.line, s.effect, s.rule_id
                )?,
            }
        }
        let d = &self.decision;
        write!(
            f,
            "decision: {} by `{}`: {}",
            d.effect().name(),
            d.rule_id(),
            d.reason()
        )?;
        if !d.masks().is_empty() {
            let masks: Vec<&str> = d.masks().iter().map(|m| &**m).collect();
            write!(f, " (masks: {})", masks.join(", "))?;
        }
        match d.effect() {
            Effect::Deny if d.rule_id() == DEFAULT_DENY => write!(f, " [no rule matched]"),
            Effect::Deny => write!(f, " [deny overrides]"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
