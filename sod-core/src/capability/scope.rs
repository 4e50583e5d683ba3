//! [`Scope`]: what a verified capability permits, the intersection of its claims and caveats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CapabilityClaims, CapabilityError, Caveat};
use crate::{Glob, KindSet, Operation, OperationKind, Refusal, RefusalCode};

/// The effective scope of a capability: its claims narrowed by every caveat.
///
/// Pattern lists are kept as a conjunction (an operation must satisfy *every* list), so adding a
/// caveat can only ever remove permissions, whatever it says.
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    targets: Vec<Vec<Glob>>,
    kinds: KindSet,
    objects: Vec<Vec<Glob>>,
    deny_objects: Vec<Glob>,
    row_limit: Option<u64>,
    plans: Vec<String>,
    not_before: u64,
    expires_at: u64,
}

impl Scope {
    pub(super) fn from_chain<'a>(
        claims: &CapabilityClaims,
        caveats: impl Iterator<Item = &'a Caveat>,
    ) -> Scope {
        let mut scope = Scope {
            targets: vec![claims.targets.clone()],
            kinds: claims.kinds,
            objects: claims.objects.iter().cloned().collect(),
            deny_objects: claims.deny_objects.clone(),
            row_limit: claims.row_limit,
            plans: claims.plan.iter().cloned().collect(),
            not_before: claims.not_before,
            expires_at: claims.expires_at,
        };
        for caveat in caveats {
            match caveat {
                Caveat::ExpiresAt(t) => scope.expires_at = scope.expires_at.min(*t),
                Caveat::Targets(t) => scope.targets.push(t.clone()),
                Caveat::Kinds(k) => scope.kinds = scope.kinds.intersection(*k),
                Caveat::Objects(o) => scope.objects.push(o.clone()),
                Caveat::DenyObjects(o) => scope.deny_objects.extend(o.iter().cloned()),
                Caveat::RowLimit(n) => {
                    scope.row_limit = Some(scope.row_limit.map_or(*n, |cur| cur.min(*n)))
                }
                Caveat::Plan(p) => scope.plans.push(p.clone()),
            }
        }
        scope
    }

    /// Operation kinds the capability allows ([`Connect`](OperationKind::Connect) is implied
    /// for any allowed target).
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// The most rows a result may return, enforced by protocols that return rows.
    pub fn row_limit(&self) -> Option<u64> {
        self.row_limit
    }

    /// The plan the capability is bound to: only that plan's approved entries may run.
    /// `Err` when caveats bind it to two different plans (then nothing may run).
    pub fn plan(&self) -> Result<Option<&str>, &[String]> {
        match self.plans.split_first() {
            None => Ok(None),
            Some((first, rest)) if rest.iter().all(|p| p == first) => Ok(Some(first)),
            Some(_) => Err(&self.plans),
        }
    }

    /// When the capability stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        time(self.expires_at)
    }

    /// When the capability starts being valid.
    pub fn not_before(&self) -> SystemTime {
        time(self.not_before)
    }

    /// Checks `op` against the scope (every part of a batch). The refusal names what is outside
    /// and what is allowed.
    pub fn check(&self, op: &Operation) -> Result<(), Refusal> {
        op.atoms().try_for_each(|atom| self.check_atom(atom))
    }

    fn check_atom(&self, op: &Operation) -> Result<(), Refusal> {
        let refuse = |reason: String| {
            Err(Refusal::new(RefusalCode::CapabilityScope, reason).with_rule("capability"))
        };
        let target = op.target().as_str();
        for allowed in &self.targets {
            if !Glob::any_matches(allowed, target) {
                return refuse(format!(
                    "target `{target}` is outside the capability (allowed: {})",
                    list(allowed)
                ));
            }
        }
        if op.kind() != OperationKind::Connect && !self.kinds.contains(op.kind()) {
            let mut reason = format!("the capability allows {}, not {}", self.kinds, op.kind());
            // Say why the analyzer could not classify it (invariant I7).
            if let (OperationKind::Unknown, Some(note)) = (op.kind(), op.note()) {
                reason = format!("{reason}: {note}");
            }
            return refuse(reason);
        }
        if let Some(why) = op.unknown_objects()
            && (!self.deny_objects.is_empty() || !self.objects.is_empty())
        {
            return refuse(format!(
                "the capability limits objects, and what this touches is not known: {why}"
            ));
        }
        for collection in op.collections() {
            if let Some(g) = self
                .deny_objects
                .iter()
                .find(|g| g.matches_some_starting_with(collection))
            {
                return refuse(format!(
                    "`{collection}*` may hold objects the capability excludes (`{g}`)"
                ));
            }
            for allowed in &self.objects {
                if !allowed
                    .iter()
                    .any(|g| g.matches_all_starting_with(collection))
                {
                    return refuse(format!(
                        "`{collection}*` is not wholly inside the capability (allowed: {})",
                        list(allowed)
                    ));
                }
            }
        }
        for object in op.objects() {
            if let Some(g) = self.deny_objects.iter().find(|g| g.matches(object)) {
                return refuse(format!(
                    "object `{object}` is excluded by the capability (`{g}`)"
                ));
            }
            for allowed in &self.objects {
                if !Glob::any_matches(allowed, object) {
                    return refuse(format!(
                        "object `{object}` is outside the capability (allowed: {})",
                        list(allowed)
                    ));
                }
            }
        }
        if let Err(plans) = self.plan() {
            return refuse(format!(
                "the capability is bound to conflicting plans ({})",
                plans.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether `caveat` visibly narrows this scope (see [`CapabilityToken::attenuate`](super::CapabilityToken::attenuate)).
    pub(super) fn check_narrows(&self, caveat: &Caveat) -> Result<(), CapabilityError> {
        let wider = |why: String| Err(CapabilityError::NotNarrower(why));
        match caveat {
            Caveat::ExpiresAt(t) if *t > self.expires_at => wider(format!(
                "expiry {t} is later than the current expiry {}",
                self.expires_at
            )),
            Caveat::Kinds(k) if !k.is_subset(&self.kinds) => wider(format!(
                "kinds [{k}] are not within the current kinds [{}]",
                self.kinds
            )),
            Caveat::RowLimit(n) if self.row_limit.is_some_and(|cur| *n > cur) => {
                wider(format!("row limit {n} is above the current limit"))
            }
            Caveat::Targets(globs) => match globs
                .iter()
                .find(|g| !self.targets.iter().all(|l| within(g, l)))
            {
                Some(g) => wider(format!(
                    "target pattern `{g}` is not within the current targets"
                )),
                None => Ok(()),
            },
            Caveat::Objects(globs) => match globs
                .iter()
                .find(|g| !self.objects.iter().all(|l| within(g, l)))
            {
                Some(g) => wider(format!(
                    "object pattern `{g}` is not within the current objects"
                )),
                None => Ok(()),
            },
            Caveat::Plan(p) if self.plans.iter().any(|cur| cur != p) => wider(format!(
                "plan `{p}` differs from the plan the capability is bound to"
            )),
            _ => Ok(()),
        }
    }
}

/// Conservatively decides whether every string matching `g` matches some pattern in `list`.
/// `false` means "could not show it", not "definitely wider".
fn within(g: &Glob, list: &[Glob]) -> bool {
    let is_wild = |c: char| c == '*' || c == '?';
    let new = g.as_str();
    list.iter().any(|cur| {
        let cur_s = cur.as_str();
        if cur_s == "*" || cur_s == new {
            return true;
        }
        if !new.contains(is_wild) {
            return cur.matches(new);
        }
        // `prefix*` contains every pattern whose literal start extends `prefix`.
        cur_s
            .strip_suffix('*')
            .filter(|prefix| !prefix.contains(is_wild))
            .is_some_and(|prefix| new.starts_with(prefix))
    })
}

fn list(globs: &[Glob]) -> String {
    if globs.is_empty() {
        return "nothing".to_owned();
    }
    globs
        .iter()
        .map(Glob::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last second of the year 9999: times a caveat gives beyond it are taken as it, so that
/// no number a holder writes into a caveat can overflow the clock (`not_before: u64::MAX` is
/// "not yet", never a panic).
const LAST_SECOND: u64 = 253_402_300_799;

pub(super) fn time(unix_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds.min(LAST_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_is_conservative_and_sound() {
        let l = |p: &[&str]| p.iter().map(|s| Glob::new(s)).collect::<Vec<_>>();
        assert!(within(&Glob::new("pg/prod"), &l(&["pg/*"])));
        assert!(within(&Glob::new("pg/prod-*"), &l(&["pg/*"])));
        assert!(within(&Glob::new("anything*"), &l(&["*"])));
        assert!(!within(&Glob::new("pg*"), &l(&["pg/*"])));
        assert!(!within(&Glob::new("*"), &l(&["pg/*"])));
        assert!(!within(&Glob::new("k8s/x"), &l(&["pg/*"])));
        assert!(!within(&Glob::new("pg/?"), &l(&["pg/a"])));
    }
}
