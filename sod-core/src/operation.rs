//! What is being asked: the protocol-neutral [`Operation`].
//!
//! A protocol driver turns each policy-relevant unit (a SQL batch, an SSH exec, a Kubernetes
//! request) into an `Operation`. Layers decide on operations and never parse protocol bytes.
//! An operation is built once and then immutable, so its [`Fingerprint`] can never go stale.
//!
//! ```
//! use sod_core::{Operation, OperationKind, Target};
//!
//! let target = Target::new("pg/prod");
//! let op = Operation::builder(target.clone(), OperationKind::Write, "DELETE FROM orders WHERE id = 1")
//!     .object("public.orders")
//!     .build();
//! let other = Operation::builder(target, OperationKind::Write, "DELETE FROM orders WHERE id = 2")
//!     .object("public.orders")
//!     .build();
//! assert_ne!(op.fingerprint(), other.fingerprint());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The name of a configured upstream system, such as `pg/prod` or `k8s/staging`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(Arc<str>);

impl Target {
    /// A target named `name`.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }

    /// The target's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({:?})", &*self.0)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Target::new(&*s))
    }
}

/// What an operation does, ordered from least to most risky.
///
/// When one operation combines several statements (a SQL batch), its kind is the riskiest of
/// them: `max()` over the kinds. [`Unknown`](Self::Unknown) is the riskiest of all: anything the
/// analyzer did not understand is refused unless a rule explicitly allows it (invariant I7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Opening a session.
    Connect,
    /// Reading data.
    Read,
    /// Opening a tunnel (SSH `direct-tcpip`, Kubernetes port-forward).
    Forward,
    /// Moving files (SFTP, COPY to or from the client).
    Transfer,
    /// Changing data.
    Write,
    /// Changing structure (DDL).
    Schema,
    /// Running commands (SSH exec/shell, Kubernetes exec/attach).
    Exec,
    /// Administering the system (roles, settings, server files, extensions).
    Admin,
    /// Not understood by the analyzer.
    Unknown,
}

impl OperationKind {
    /// Every kind, least risky first.
    pub const ALL: [OperationKind; 9] = [
        Self::Connect,
        Self::Read,
        Self::Forward,
        Self::Transfer,
        Self::Write,
        Self::Schema,
        Self::Exec,
        Self::Admin,
        Self::Unknown,
    ];

    /// The name used in configuration and records: `connect`, `read`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Read => "read",
            Self::Forward => "forward",
            Self::Transfer => "transfer",
            Self::Write => "write",
            Self::Schema => "schema",
            Self::Exec => "exec",
            Self::Admin => "admin",
            Self::Unknown => "unknown",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an operation kind name that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation kind `{0}` (expected connect, read, forward, transfer, write, schema, exec, admin or unknown)"
)]
pub struct UnknownKind(pub String);

impl FromStr for OperationKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A set of [`OperationKind`]s, stored as a bit set (no allocation, `Copy`).
///
/// ```
/// use sod_core::{KindSet, OperationKind::*};
///
/// let reads = KindSet::of(&[Connect, Read]);
/// assert!(reads.contains(Read));
/// assert!(!reads.contains(Write));
/// assert!(reads.is_subset(&KindSet::ALL));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u16);

impl KindSet {
    /// No kinds.
    pub const EMPTY: KindSet = KindSet(0);
    /// Every kind.
    pub const ALL: KindSet = KindSet((1 << OperationKind::ALL.len()) - 1);

    /// The set of the given kinds.
    pub fn of(kinds: &[OperationKind]) -> Self {
        Self(kinds.iter().fold(0, |acc, k| acc | k.bit()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: OperationKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: OperationKind) {
        self.0 |= kind.bit();
    }

    /// Kinds in both sets.
    pub fn intersection(self, other: KindSet) -> KindSet {
        KindSet(self.0 & other.0)
    }

    /// Whether every kind of `self` is in `other`.
    pub fn is_subset(&self, other: &KindSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, least risky first.
    pub fn iter(self) -> impl Iterator<Item = OperationKind> {
        OperationKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl FromIterator<OperationKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = OperationKind>>(iter: I) -> Self {
        let mut set = KindSet::EMPTY;
        for k in iter {
            set.insert(k);
        }
        set
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        for (i, k) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(k.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for KindSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for KindSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<OperationKind>::deserialize(d)?.into_iter().collect())
    }
}

/// A stable SHA-256 hash of what an operation *is*: target, kind, normalized text and bound
/// parameter values. Approvals are bound to it (invariant I3) and audit records carry it.
///
/// Two operations share a fingerprint only if they would do the same thing: changing a constant
/// or a parameter changes the fingerprint; whitespace and comments do not, because protocols
/// normalize the text before building the operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The raw hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses the 64-character hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = crate::hex::decode(s)?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Fingerprint::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("fingerprint must be 64 hex characters"))
    }
}

/// Facts about an operation that policy can match on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OperationFlags {
    /// The operation reads or writes data that masking rules mark as sensitive.
    pub touches_sensitive: bool,
}

/// Secret values, kept only as keyed tags (see [`secret_tag`]): compared and fingerprinted,
/// never printed, and never held in the clear.
#[derive(Clone, Default, PartialEq, Eq)]
struct Hidden(Vec<[u8; 32]>);

/// HMAC-SHA-256 of a secret under a key that lives only in this process: the fingerprint is
/// recorded and shown to approvers, and a plain hash of a password could be guessed offline.
/// (So an approval of an operation with secrets only matches in the process that saw it:
/// fails closed.)
fn secret_tag(secret: &[u8]) -> [u8; 32] {
    static KEY: std::sync::LazyLock<aws_lc_rs::hmac::Key> = std::sync::LazyLock::new(|| {
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &crate::hex::random::<32>())
    });
    let mut tag = [0u8; 32];
    tag.copy_from_slice(aws_lc_rs::hmac::sign(&KEY, secret).as_ref());
    tag
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} hidden>", self.0.len())
    }
}

/// A protocol-neutral description of one policy-relevant unit of work.
///
/// Build one with [`Operation::builder`]. Fields are read-only so the fingerprint always matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    target: Target,
    kind: OperationKind,
    text: String,
    objects: Vec<String>,
    /// Why the objects are not all known (a glob, a path built at run time), if they are not.
    unknown_objects: Option<String>,
    /// Collections touched whole, by the prefix every member's name starts with.
    collections: Vec<String>,
    params: Vec<Option<Bytes>>,
    /// Values the fingerprint covers that the operation never shows (password literals).
    secrets: Hidden,
    flags: OperationFlags,
    note: Option<String>,
    parts: Vec<Operation>,
    fingerprint: Fingerprint,
}

impl Operation {
    /// Starts an operation on `target` of `kind` with the protocol-normalized `text`
    /// (normalized SQL, a command line, `VERB /path`).
    pub fn builder(
        target: Target,
        kind: OperationKind,
        text: impl Into<String>,
    ) -> OperationBuilder {
        OperationBuilder {
            op: Operation {
                target,
                kind,
                text: text.into(),
                objects: Vec::new(),
                unknown_objects: None,
                collections: Vec::new(),
                params: Vec::new(),
                secrets: Hidden::default(),
                flags: OperationFlags::default(),
                note: None,
                parts: Vec::new(),
                fingerprint: Fingerprint([0; 32]),
            },
        }
    }

    /// The session-opening operation for `target`.
    pub fn connect(target: Target) -> Self {
        Self::builder(target, OperationKind::Connect, "CONNECT").build()
    }

    /// An operation the analyzer did not understand: kind [`Unknown`](OperationKind::Unknown),
    /// with the analyzer's message as the note, so the refusal can say why (invariant I7).
    pub fn not_understood(target: Target, text: impl Into<String>, why: impl Into<String>) -> Self {
        Self::builder(target, OperationKind::Unknown, text)
            .note(why)
            .build()
    }

    /// The system the operation is addressed to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What the operation does.
    pub fn kind(&self) -> OperationKind {
        self.kind
    }

    /// The normalized text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The objects touched: schema-qualified tables, Kubernetes resources, paths.
    pub fn objects(&self) -> &[String] {
        &self.objects
    }

    /// Why [`objects`](Self::objects) may not be everything the operation touches, if so: a
    /// path given as a glob or built at run time (`$(…)`, a variable), a recursive read, `..`.
    ///
    /// Rules fail closed on it: a policy rule that denies or requires approval for some
    /// objects applies to an operation whose objects are not all known, an allowing rule with
    /// an `objects` condition does not, and a capability that limits objects refuses it.
    pub fn unknown_objects(&self) -> Option<&str> {
        self.unknown_objects.as_deref()
    }

    /// Collections the operation touches whole (every object in them, known or not yet), each
    /// as the prefix all its members' names start with: a Kubernetes `list` of pods in
    /// `default` touches `default/core/pods/`.
    ///
    /// A policy rule that denies or requires approval for some objects applies when one of its
    /// globs could match a member; an allowing rule covers the collection only when one of its
    /// globs matches every member ([`Glob::matches_all_starting_with`](crate::Glob::matches_all_starting_with));
    /// a capability that limits objects must cover every member, and one that excludes some
    /// refuses a collection that could hold them.
    pub fn collections(&self) -> &[String] {
        &self.collections
    }

    /// Bound parameter values (`None` is SQL NULL), in order. Part of the fingerprint.
    pub fn params(&self) -> &[Option<Bytes>] {
        &self.params
    }

    /// Facts for policy.
    pub fn flags(&self) -> OperationFlags {
        self.flags
    }

    /// The analyzer's remark, such as the parser's message for an operation not understood.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The operations this one is made of, when it is a batch (the statements of a simple
    /// query, the commands of a pipeline); empty for an atomic operation.
    ///
    /// A batch is one operation for audit and approval (one record, one fingerprint over the
    /// whole text), but each part is judged on its own: policy and capability scope apply to
    /// every part, and the batch is refused if any part is.
    pub fn parts(&self) -> &[Operation] {
        &self.parts
    }

    /// The atomic operations to judge: the parts of a batch, or the operation itself.
    pub fn atoms(&self) -> impl Iterator<Item = &Operation> {
        let own = self.parts.is_empty().then_some(self);
        own.into_iter().chain(self.parts.iter())
    }

    /// The operation's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn compute_fingerprint(&self) -> Fingerprint {
        use aws_lc_rs::digest;
        let mut ctx = digest::Context::new(&digest::SHA256);
        // Length-prefix every variable-length field so no two operations share an encoding.
        let mut field = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        field(b"sod-operation-v1");
        field(self.target.as_str().as_bytes());
        field(self.kind.as_str().as_bytes());
        field(self.text.as_bytes());
        field(&(self.params.len() as u64).to_be_bytes());
        for p in &self.params {
            match p {
                None => field(b"\x00"),
                Some(v) => {
                    field(b"\x01");
                    field(v);
                }
            }
        }
        // Secrets and parts only when present, so other fingerprints keep their value.
        if !self.secrets.0.is_empty() {
            field(b"secrets");
            field(&(self.secrets.0.len() as u64).to_be_bytes());
            for tag in &self.secrets.0 {
                field(tag);
            }
        }
        if !self.parts.is_empty() {
            // A batch is what its statements are, secrets and parameters included.
            field(b"parts");
            field(&(self.parts.len() as u64).to_be_bytes());
            for part in &self.parts {
                field(&part.fingerprint.0);
            }
        }
        let digest = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

/// Builds an [`Operation`]; [`build`](Self::build) computes the fingerprint.
#[derive(Debug)]
#[must_use]
pub struct OperationBuilder {
    op: Operation,
}

impl OperationBuilder {
    /// Adds a touched object (deduplicated, order kept).
    pub fn object(mut self, object: impl Into<String>) -> Self {
        let object = object.into();
        if !self.op.objects.contains(&object) {
            self.op.objects.push(object);
        }
        self
    }

    /// Adds touched objects.
    pub fn objects<I, S>(mut self, objects: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for o in objects {
            self = self.object(o);
        }
        self
    }

    /// Says that the objects added are not everything the operation touches, and why (see
    /// [`Operation::unknown_objects`]). The first reason given is kept.
    pub fn objects_unknown(mut self, why: impl Into<String>) -> Self {
        if self.op.unknown_objects.is_none() {
            self.op.unknown_objects = Some(why.into());
        }
        self
    }

    /// Adds a collection touched whole (see [`Operation::collections`]).
    pub fn collection(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        if !self.op.collections.contains(&prefix) {
            self.op.collections.push(prefix);
        }
        self
    }

    /// Appends a bound parameter value (`None` for NULL).
    pub fn param(mut self, value: Option<Bytes>) -> Self {
        self.op.params.push(value);
        self
    }

    /// Adds a value the fingerprint must cover but nobody may see: not in the text, not among
    /// the parameters, never audited or shown to approvers (a password literal the protocol
    /// cut out of the text). An approval of one secret does not cover another. The fingerprint
    /// covers it through an HMAC with a key that lives only in this process, so it cannot be
    /// guessed from a recorded fingerprint.
    pub fn secret(mut self, value: impl AsRef<[u8]>) -> Self {
        self.op.secrets.0.push(secret_tag(value.as_ref()));
        self
    }

    /// Marks the operation as touching sensitive data.
    pub fn touches_sensitive(mut self, yes: bool) -> Self {
        self.op.flags.touches_sensitive = yes;
        self
    }

    /// Attaches the analyzer's remark.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.op.note = Some(note.into());
        self
    }

    /// Adds a part (see [`Operation::parts`]). Parts must be on the same target; the batch's
    /// kind is raised to the riskiest part's and its objects include every part's.
    pub fn part(mut self, part: Operation) -> Self {
        self.op.kind = self.op.kind.max(part.kind);
        self.op.flags.touches_sensitive |= part.flags.touches_sensitive;
        if self.op.unknown_objects.is_none() {
            self.op.unknown_objects.clone_from(&part.unknown_objects);
        }
        for o in &part.objects {
            if !self.op.objects.contains(o) {
                self.op.objects.push(o.clone());
            }
        }
        for c in &part.collections {
            if !self.op.collections.contains(c) {
                self.op.collections.push(c.clone());
            }
        }
        self.op.parts.push(part);
        self
    }

    /// Finishes the operation and computes its fingerprint.
    pub fn build(mut self) -> Operation {
        self.op.fingerprint = self.op.compute_fingerprint();
        self.op
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(text: &str) -> OperationBuilder {
        Operation::builder(Target::new("pg/prod"), OperationKind::Write, text)
    }

    #[test]
    fn secrets_count_in_the_fingerprint_and_never_print() {
        let a = op("ALTER ROLE r PASSWORD '***'")
            .secret("hunter2-one")
            .build();
        let b = op("ALTER ROLE r PASSWORD '***'").secret("two").build();
        let none = op("ALTER ROLE r PASSWORD '***'").build();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), none.fingerprint());
        assert!(!format!("{a:?}").contains("hunter2"));
        // A batch is what its parts are: a part's secret changes the batch's fingerprint.
        let batch = |part: Operation| {
            op("ALTER ROLE r PASSWORD '***'; SELECT 1")
                .part(part)
                .build()
        };
        assert_ne!(
            batch(a.clone()).fingerprint(),
            batch(b.clone()).fingerprint()
        );
    }

    #[test]
    fn fingerprint_distinguishes_constants_params_targets_and_kinds() {
        let base = op("DELETE FROM t WHERE id = 1").build().fingerprint();
        assert_eq!(base, op("DELETE FROM t WHERE id = 1").build().fingerprint());
        assert_ne!(base, op("DELETE FROM t WHERE id = 2").build().fingerprint());
        let p1 = op("DELETE FROM t WHERE id = $1").param(Some(Bytes::from_static(b"1")));
        let p2 = op("DELETE FROM t WHERE id = $1").param(Some(Bytes::from_static(b"2")));
        let pn = op("DELETE FROM t WHERE id = $1").param(None);
        let pe = op("DELETE FROM t WHERE id = $1").param(Some(Bytes::new()));
        let fps = [p1, p2, pn, pe].map(|b| b.build().fingerprint());
        for i in 0..fps.len() {
            for j in i + 1..fps.len() {
                assert_ne!(fps[i], fps[j], "{i} vs {j}");
            }
        }
        let other_target = Operation::builder(
            Target::new("pg/dev"),
            OperationKind::Write,
            "DELETE FROM t WHERE id = 1",
        )
        .build();
        assert_ne!(base, other_target.fingerprint());
        let other_kind = Operation::builder(
            Target::new("pg/prod"),
            OperationKind::Read,
            "DELETE FROM t WHERE id = 1",
        )
        .build();
        assert_ne!(base, other_kind.fingerprint());
    }

    #[test]
    fn fingerprint_has_no_ambiguous_encodings() {
        // Moving bytes between text and a parameter must change the hash.
        let a = op("ab").param(Some(Bytes::from_static(b"c"))).build();
        let b = op("a").param(Some(Bytes::from_static(b"bc"))).build();
        assert_ne!(a.fingerprint(), b.fingerprint());
        // Objects and notes are derived from the text, not part of identity.
        let c = op("ab")
            .object("x")
            .note("n")
            .param(Some(Bytes::from_static(b"c")))
            .build();
        assert_eq!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn fingerprint_hex_round_trips() {
        let fp = op("x").build().fingerprint();
        assert_eq!(Fingerprint::from_hex(&fp.to_hex()), Some(fp));
        assert_eq!(Fingerprint::from_hex("abc"), None);
        let json = serde_json::to_string(&fp).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).expect("parse"),
            fp
        );
    }

    #[test]
    fn kinds_are_ordered_by_risk_and_parse() {
        assert!(OperationKind::Read < OperationKind::Write);
        assert!(OperationKind::Write < OperationKind::Schema);
        assert_eq!(
            OperationKind::ALL.iter().max(),
            Some(&OperationKind::Unknown)
        );
        for k in OperationKind::ALL {
            assert_eq!(k.as_str().parse::<OperationKind>(), Ok(k));
        }
        assert!("delete".parse::<OperationKind>().is_err());
    }

    #[test]
    fn kind_sets() {
        use OperationKind::*;
        let s = KindSet::of(&[Read, Write]);
        assert!(s.contains(Read) && s.contains(Write) && !s.contains(Admin));
        assert_eq!(
            s.intersection(KindSet::of(&[Write, Admin])),
            KindSet::of(&[Write])
        );
        assert!(KindSet::ALL.contains(Unknown));
        assert_eq!(KindSet::ALL.iter().count(), 9);
        assert_eq!(s.to_string(), "read, write");
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(json, r#"["read","write"]"#);
        assert_eq!(serde_json::from_str::<KindSet>(&json).expect("parse"), s);
    }

    #[test]
    fn objects_are_deduplicated_in_order() {
        let o = op("x").objects(["b", "a", "b"]).build();
        assert_eq!(o.objects(), ["b", "a"]);
    }
}
