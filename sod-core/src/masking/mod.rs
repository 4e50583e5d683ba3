//! The masking engine: which values are sensitive and what they become (invariant I6).
//!
//! Protocols describe their output fields with a [`Provenance`] (a direct column, a value
//! computed from some columns, a constant, or unknown). A [`Masker`], built from the mask
//! profiles a policy decision names, turns those descriptions into a [`MaskPlan`] once per
//! result set, then rewrites values row by row. The decisions live here; protocols only say what
//! their fields are and how to put a rewritten value back ([`Maskable`]).
//!
//! Fail-closed rules: a value of **unknown** provenance is masked; a value **derived** from a
//! sensitive column is redacted (or nulled, if a rule says so): a partial mask of a computed
//! value could show another part of the original (`reverse(email)`), and a hash of one would
//! let the caller hash a guess of their own (`SELECT email … UNION SELECT 'guess'`); other
//! computed values pass through the value detectors (and so do plain columns, if a profile sets
//! `scan_columns`).
//!
//! ```
//! use sod_core::masking::{MaskProfiles, Field, Provenance, ColumnRef, FieldAction};
//!
//! let profiles = MaskProfiles::from_toml("masks.toml", r#"
//!     [[profile]]
//!     name = "planner"
//!     [[profile.rule]]
//!     column = "*.customers.email"
//!     strategy = "partial"
//!     keep_last = 4
//! "#)?;
//! let masker = profiles.masker(&["planner".into()])?;
//! let plan = masker.plan(&[
//!     Field::new("email", Provenance::Column(ColumnRef::new("public", "customers", "email"))),
//!     Field::new("n", Provenance::Unknown),
//! ]);
//! let mut out = Vec::new();
//! masker.apply(plan.action(0), b"alice@example.com", &mut out);
//! assert_eq!(out, b"*****@******e.com");
//! assert!(matches!(plan.action(1), FieldAction::Mask(_))); // unknown provenance: masked
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod detect;
mod strategy;
mod stream;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::hmac;

pub use config::MaskConfigError;
pub use detect::{Detector, Detectors, UnknownDetector};
pub use strategy::{HASH_PREFIX, Masked, REDACTED, Strategy};
pub use stream::StreamScrubber;

use crate::{Glob, Refusal, RefusalCode, Secret};

/// A table column, as the protocol resolved it (schema-qualified).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnRef {
    /// Schema (namespace).
    pub schema: String,
    /// Table or view.
    pub table: String,
    /// Column.
    pub column: String,
}

impl ColumnRef {
    /// `schema.table.column`.
    pub fn new(
        schema: impl Into<String>,
        table: impl Into<String>,
        column: impl Into<String>,
    ) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            column: column.into(),
        }
    }

    /// `schema.table.column`, lowercased, as column selectors match it.
    fn qualified_lower(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column).to_lowercase()
    }
}

/// Where an output value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Straight from this column.
    Column(ColumnRef),
    /// Straight from one column known under several names: a partition's column is also its
    /// parent's (and the parent's is each partition's). Masked by the strictest rule that
    /// selects any of the names.
    Aliases(Vec<ColumnRef>),
    /// Computed from these columns (expand whole-row references to every column of the table),
    /// or not known to be any one of them (a view's column is traced only to everything the
    /// view reads). If a rule selects any of them, the value is redacted — or nulled, if the
    /// strictest such rule says `null`; otherwise the detectors scan it.
    Derived(Vec<ColumnRef>),
    /// A constant written in the request itself.
    Constant,
    /// Not known: masked (fail closed).
    Unknown,
}

/// One output field: its name and provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field name as the client sees it.
    pub name: String,
    /// Where its values come from.
    pub provenance: Provenance,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, provenance: Provenance) -> Self {
        Self {
            name: name.into(),
            provenance,
        }
    }
}

/// What to do with one field's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldAction {
    /// Pass through.
    Keep,
    /// Rewrite with this strategy.
    Mask(Strategy),
    /// Run the value detectors and rewrite what they find.
    Scan,
}

/// The per-field actions for one result set; computed once, applied to every row.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MaskPlan {
    actions: Vec<FieldAction>,
}

impl MaskPlan {
    /// The action for field `i`. Fields beyond the plan are masked (fail closed).
    pub fn action(&self, i: usize) -> FieldAction {
        self.actions
            .get(i)
            .copied()
            .unwrap_or(FieldAction::Mask(Strategy::Redact))
    }

    /// All actions, in field order.
    pub fn actions(&self) -> &[FieldAction] {
        &self.actions
    }

    /// Whether every field passes through untouched.
    pub fn is_noop(&self) -> bool {
        self.actions.iter().all(|a| *a == FieldAction::Keep)
    }
}

/// Which columns a rule selects.
#[derive(Clone, Debug)]
pub enum Selector {
    /// A `schema.table.column` glob, matched case-insensitively.
    Column(Glob),
    /// A column name in any table, matched case-insensitively.
    Name(String),
}

impl Selector {
    fn matches(&self, qualified_lower: &str, column: &str) -> bool {
        match self {
            Selector::Column(g) => g.matches(qualified_lower),
            Selector::Name(n) => n.eq_ignore_ascii_case(column),
        }
    }
}

/// One named set of masking rules.
#[derive(Clone, Debug)]
pub struct MaskProfile {
    name: Arc<str>,
    rules: Vec<(Selector, Strategy)>,
    detectors: Detectors,
    detector_strategy: Strategy,
    unknown: Strategy,
    scan_columns: bool,
}

impl MaskProfile {
    /// A profile with no rules, every detector on, detector hits and unknown values redacted.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            rules: Vec::new(),
            detectors: Detectors::ALL,
            detector_strategy: Strategy::Redact,
            unknown: Strategy::Redact,
            scan_columns: false,
        }
    }

    /// Also runs the detectors over direct columns no rule selects (by default they run over
    /// computed values only).
    pub fn scan_columns(mut self, yes: bool) -> Self {
        self.scan_columns = yes;
        self
    }

    /// Adds a rule (selectors are lowercased).
    pub fn rule(mut self, selector: Selector, strategy: Strategy) -> Self {
        let selector = match selector {
            Selector::Column(g) => Selector::Column(Glob::new(&g.as_str().to_lowercase())),
            n => n,
        };
        self.rules.push((selector, strategy));
        self
    }

    /// Sets the detectors and what their hits become.
    pub fn detectors(mut self, detectors: Detectors, strategy: Strategy) -> Self {
        self.detectors = detectors;
        self.detector_strategy = strategy;
        self
    }

    /// Sets what values of unknown provenance become.
    pub fn unknown(mut self, strategy: Strategy) -> Self {
        self.unknown = strategy;
        self
    }

    /// The profile name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

struct MaskerInner {
    profiles: Vec<MaskProfile>,
    key: Arc<hmac::Key>,
    detectors: Detectors,
    detector_strategy: Strategy,
    unknown: Strategy,
    scan_columns: bool,
}

/// The masking engine for one request: the union of the active profiles. Cheap to clone.
#[derive(Clone)]
pub struct Masker {
    inner: Option<Arc<MaskerInner>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|i| i.profiles.iter().map(|p| &*p.name))
            .collect();
        f.debug_struct("Masker").field("profiles", &names).finish()
    }
}

impl Masker {
    /// A masker that masks nothing.
    pub fn none() -> Self {
        Self { inner: None }
    }

    /// Whether this masker leaves everything as it is.
    pub fn is_noop(&self) -> bool {
        self.inner.is_none()
    }

    fn new(profiles: Vec<MaskProfile>, key: Arc<hmac::Key>) -> Self {
        if profiles.is_empty() {
            return Self::none();
        }
        let detectors = profiles
            .iter()
            .fold(Detectors::NONE, |d, p| d.union(p.detectors));
        let pick = |f: fn(&MaskProfile) -> Strategy| {
            profiles
                .iter()
                .map(f)
                .reduce(Strategy::stricter)
                .unwrap_or(Strategy::Redact)
        };
        let detector_strategy = pick(|p| p.detector_strategy);
        let unknown = pick(|p| p.unknown);
        let scan_columns = profiles.iter().any(|p| p.scan_columns);
        Self {
            inner: Some(Arc::new(MaskerInner {
                profiles,
                key,
                detectors,
                detector_strategy,
                unknown,
                scan_columns,
            })),
        }
    }

    /// The strictest strategy any active rule assigns to `col`, if any rule selects it.
    pub fn strategy_for(&self, col: &ColumnRef) -> Option<Strategy> {
        let inner = self.inner.as_ref()?;
        let q = col.qualified_lower();
        inner
            .profiles
            .iter()
            .flat_map(|p| p.rules.iter())
            .filter(|(sel, _)| sel.matches(&q, &col.column))
            .map(|(_, s)| *s)
            .reduce(Strategy::stricter)
    }

    /// The strictest strategy any active rule assigns to any of `cols`.
    fn strictest(&self, cols: &[ColumnRef]) -> Option<Strategy> {
        cols.iter()
            .filter_map(|c| self.strategy_for(c))
            .reduce(Strategy::stricter)
    }

    /// Whether some rule of the active profiles could select a column whose qualified name
    /// starts with `prefix` (`k8s.configmaps.`): a rule by column name could select any.
    pub fn may_select_under(&self, prefix: &str) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let prefix = prefix.to_lowercase();
        inner
            .profiles
            .iter()
            .flat_map(|p| p.rules.iter())
            .any(|(selector, _)| match selector {
                Selector::Column(glob) => glob.matches_some_starting_with(&prefix),
                Selector::Name(_) => true,
            })
    }

    /// Whether `col` is sensitive under the active profiles.
    pub fn is_sensitive(&self, col: &ColumnRef) -> bool {
        self.strategy_for(col).is_some()
    }

    /// Decides what to do with each field. Call once per result set.
    pub fn plan(&self, fields: &[Field]) -> MaskPlan {
        let Some(inner) = &self.inner else {
            return MaskPlan {
                actions: vec![FieldAction::Keep; fields.len()],
            };
        };
        let scan_or_keep = if inner.detectors.is_empty() {
            FieldAction::Keep
        } else {
            FieldAction::Scan
        };
        let plain_column = if inner.scan_columns {
            scan_or_keep
        } else {
            FieldAction::Keep
        };
        let actions = fields
            .iter()
            .map(|f| match &f.provenance {
                Provenance::Column(c) => {
                    self.strategy_for(c).map_or(plain_column, FieldAction::Mask)
                }
                Provenance::Aliases(cols) => {
                    self.strictest(cols).map_or(plain_column, FieldAction::Mask)
                }
                Provenance::Derived(cols) => self.strictest(cols).map_or(scan_or_keep, |s| {
                    FieldAction::Mask(s.stricter(Strategy::Redact))
                }),
                Provenance::Constant => FieldAction::Keep,
                Provenance::Unknown => FieldAction::Mask(inner.unknown),
            })
            .collect();
        MaskPlan { actions }
    }

    /// Applies `action` to one value, writing any replacement into `out`.
    ///
    /// Returns [`Masked::Unchanged`] when the value may pass as it is (nothing written).
    pub fn apply(&self, action: FieldAction, value: &[u8], out: &mut Vec<u8>) -> Masked {
        let Some(inner) = &self.inner else {
            return Masked::Unchanged;
        };
        match action {
            FieldAction::Keep => Masked::Unchanged,
            FieldAction::Mask(s) => s.apply(&inner.key, value, out),
            FieldAction::Scan => {
                let Ok(text) = std::str::from_utf8(value) else {
                    // Not text: detectors cannot read it, so it cannot be cleared. Fail closed.
                    return inner.detector_strategy.apply(&inner.key, value, out);
                };
                let spans = inner.detectors.find(text);
                if spans.is_empty() {
                    return Masked::Unchanged;
                }
                if inner.detector_strategy == Strategy::Null {
                    return Masked::Null;
                }
                out.clear();
                inner.replace_spans(text, &spans, out);
                Masked::Replaced
            }
        }
    }

    /// Rewrites every value the active detectors find in free text (error messages, notices,
    /// computed columns). A detector strategy of `null` blanks the whole text.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(inner) = &self.inner else {
            return Cow::Borrowed(text);
        };
        let spans = inner.detectors.find(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        if inner.detector_strategy == Strategy::Null {
            return Cow::Owned(String::new());
        }
        let mut out = Vec::with_capacity(text.len());
        inner.replace_spans(text, &spans, &mut out);
        // Replacements are ASCII or copied from valid UTF-8, so this never loses anything.
        Cow::Owned(String::from_utf8_lossy(&out).into_owned())
    }
}

impl MaskerInner {
    /// Copies `text` into `out` with each span rewritten by the detector strategy.
    fn replace_spans(&self, text: &str, spans: &[(usize, usize)], out: &mut Vec<u8>) {
        let mut buf = Vec::new();
        let mut last = 0;
        for &(s, e) in spans {
            out.extend_from_slice(&text.as_bytes()[last..s]);
            self.detector_strategy
                .apply(&self.key, &text.as_bytes()[s..e], &mut buf);
            out.extend_from_slice(&buf);
            last = e;
        }
        out.extend_from_slice(&text.as_bytes()[last..]);
    }
}

/// A protocol response that can be masked: the protocol knows its fields and values, the
/// [`Masker`] knows what to do with them.
///
/// Implementations call [`Masker::plan`] when the field descriptions arrive (once per result
/// set, never per row) and [`Masker::apply`] for each value, and pass free text such as error
/// messages through [`Masker::scrub`].
pub trait Maskable {
    /// Returns the response with `masker` applied (for a stream, applied as items flow).
    fn mask(self, masker: Masker) -> Self;
}

/// The configured mask profiles and the key for [`Strategy::Hash`].
pub struct MaskProfiles {
    profiles: HashMap<Arc<str>, MaskProfile>,
    single: HashMap<Arc<str>, Masker>,
    key: Arc<hmac::Key>,
}

impl MaskProfiles {
    /// Profiles with a random hash key (hashes are stable within this process only; set a key
    /// with [`with_hash_key`](Self::with_hash_key) for stability across restarts and replicas).
    pub fn new(profiles: impl IntoIterator<Item = MaskProfile>) -> Self {
        let key: [u8; 32] = crate::hex::random();
        Self::build(profiles, Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }

    fn build(profiles: impl IntoIterator<Item = MaskProfile>, key: Arc<hmac::Key>) -> Self {
        let profiles: HashMap<Arc<str>, MaskProfile> =
            profiles.into_iter().map(|p| (p.name.clone(), p)).collect();
        let single = profiles
            .iter()
            .map(|(n, p)| (n.clone(), Masker::new(vec![p.clone()], key.clone())))
            .collect();
        Self {
            profiles,
            single,
            key,
        }
    }

    /// Uses `key` for hashing.
    pub fn with_hash_key(self, key: &Secret<Vec<u8>>) -> Self {
        let key = Arc::new(hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret()));
        let profiles: Vec<MaskProfile> = self.profiles.into_values().collect();
        Self::build(profiles, key)
    }

    /// Profile names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(|k| &**k)
    }

    /// Whether a profile exists.
    pub fn contains(&self, name: &str) -> bool {
        self.profiles.contains_key(name)
    }

    /// The masker for the union of the `names`d profiles. An unknown name is a refusal, not a
    /// silent pass (fail closed).
    pub fn masker(&self, names: &[Arc<str>]) -> Result<Masker, Refusal> {
        let unknown = |n: &str| {
            Refusal::new(
                RefusalCode::Misconfigured,
                format!("mask profile `{n}` is not defined"),
            )
        };
        match names {
            [] => Ok(Masker::none()),
            [one] => self.single.get(one).cloned().ok_or_else(|| unknown(one)),
            many => {
                let profiles = many
                    .iter()
                    .map(|n| self.profiles.get(n).cloned().ok_or_else(|| unknown(n)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Masker::new(profiles, self.key.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
