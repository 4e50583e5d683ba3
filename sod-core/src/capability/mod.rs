//! Capabilities: signed, scoped, expiring, attenuable permissions for planners.
//!
//! The gateway's [`CapabilityAuthority`] issues a [`CapabilityToken`] for a subject, scoped to
//! targets, operation kinds and objects, with an expiry. The holder can derive a narrower token
//! with [`CapabilityToken::attenuate`] without any key, and hand that to a sub-agent. The
//! authority verifies the whole chain and yields a [`Capability`] whose [`Scope`] is the
//! intersection of everything in it. The token's compact string travels as a PostgreSQL password
//! or an HTTP bearer token; in process, a planner holds a [`CapabilityHandle`] instead.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec, Caveat};
//! use sod_core::{KindSet, Operation, OperationKind::*, Target};
//!
//! let authority = CapabilityAuthority::new("sod", CapabilityKey::generate("2026-11"));
//! let token = authority.issue(
//!     CapabilitySpec::new("planner-1", Duration::from_secs(600))
//!         .targets(["pg/prod"])
//!         .kinds(KindSet::of(&[Read, Write]))
//!         .objects(["public.*"]),
//! )?;
//! // The planner hands a read-only copy to a sub-agent, without asking the gateway.
//! let narrowed = token.attenuate(Caveat::Kinds(KindSet::of(&[Read])))?;
//! let wire = narrowed.encode();
//!
//! let cap = authority.verify_str(&wire, SystemTime::now())?;
//! let read = Operation::builder(Target::new("pg/prod"), Read, "SELECT 1").object("public.orders").build();
//! let write = Operation::builder(Target::new("pg/prod"), Write, "DELETE FROM orders").object("public.orders").build();
//! assert!(cap.scope().check(&read).is_ok());
//! assert!(cap.scope().check(&write).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod handle;
mod revocation;
mod scope;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

pub use handle::{CapabilityHandle, Describe};
pub use revocation::{RevocationFile, RevocationFileError, Revocations, is_capability_id};
pub use scope::Scope;
pub use token::{CapabilityToken, MAX_CAVEATS, MAX_TOKEN_LEN, PREFIX};

use crate::{Glob, KindSet, Principal, PrincipalKind, Secret};

/// What the issuer wrote into a capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityClaims {
    /// Random identifier (hex), recorded in audit events and usable for revocation.
    pub id: String,
    /// The principal id of the holder.
    pub subject: String,
    /// The issuing authority's name; becomes the principal's issuer.
    pub issuer: String,
    /// The holder's kind (normally `planner`).
    pub kind: PrincipalKind,
    /// The holder's groups, for policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The human the holder acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Targets the capability may reach (at least one must match).
    pub targets: Vec<Glob>,
    /// Operation kinds allowed.
    pub kinds: KindSet,
    /// If set, every object an operation touches must match one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Glob>>,
    /// Objects that may never be touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_objects: Vec<Glob>,
    /// Most rows a result may return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u64>,
    /// Unix seconds before which the capability is not valid.
    pub not_before: u64,
    /// Unix seconds at which the capability expires.
    pub expires_at: u64,
    /// The approved plan the capability is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// One restriction appended to a capability. Every caveat only narrows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Caveat {
    /// Expire no later than this (unix seconds).
    ExpiresAt(u64),
    /// The target must also match one of these.
    Targets(Vec<Glob>),
    /// Only these kinds (intersected with what is already allowed).
    Kinds(KindSet),
    /// Every object must also match one of these.
    Objects(Vec<Glob>),
    /// These objects may not be touched.
    DenyObjects(Vec<Glob>),
    /// At most this many rows.
    RowLimit(u64),
    /// Only the approved entries of this plan.
    Plan(String),
}

impl Caveat {
    /// An expiry caveat `ttl` from `now`.
    pub fn expires_in(ttl: Duration, now: SystemTime) -> Caveat {
        Caveat::ExpiresAt(unix(now).saturating_add(ttl.as_secs()))
    }
}

/// What the gateway is asked to issue. The authority fills in id, issuer and validity.
#[derive(Clone, Debug)]
#[must_use]
pub struct CapabilitySpec {
    subject: String,
    kind: PrincipalKind,
    groups: Vec<String>,
    on_behalf_of: Option<String>,
    targets: Vec<Glob>,
    kinds: KindSet,
    objects: Option<Vec<Glob>>,
    deny_objects: Vec<Glob>,
    row_limit: Option<u64>,
    ttl: Duration,
    plan: Option<String>,
}

impl CapabilitySpec {
    /// A planner capability for `subject`, valid for `ttl`, that allows nothing yet: add targets
    /// and kinds.
    pub fn new(subject: impl Into<String>, ttl: Duration) -> Self {
        Self {
            subject: subject.into(),
            kind: PrincipalKind::PLANNER,
            groups: Vec::new(),
            on_behalf_of: None,
            targets: Vec::new(),
            kinds: KindSet::EMPTY,
            objects: None,
            deny_objects: Vec::new(),
            row_limit: None,
            ttl,
            plan: None,
        }
    }

    /// The holder's kind (default planner).
    pub fn kind(mut self, kind: PrincipalKind) -> Self {
        self.kind = kind;
        self
    }

    /// The holder's groups.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The human the holder acts for.
    pub fn on_behalf_of(mut self, human: impl Into<String>) -> Self {
        self.on_behalf_of = Some(human.into());
        self
    }

    /// Target patterns.
    pub fn targets<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, targets: I) -> Self {
        self.targets = targets.into_iter().map(|t| Glob::new(t.as_ref())).collect();
        self
    }

    /// Allowed kinds.
    pub fn kinds(mut self, kinds: KindSet) -> Self {
        self.kinds = kinds;
        self
    }

    /// Object patterns every touched object must match.
    pub fn objects<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, objects: I) -> Self {
        self.objects = Some(objects.into_iter().map(|o| Glob::new(o.as_ref())).collect());
        self
    }

    /// Object patterns that may never be touched.
    pub fn deny_objects<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, objects: I) -> Self {
        self.deny_objects = objects.into_iter().map(|o| Glob::new(o.as_ref())).collect();
        self
    }

    /// Row limit.
    pub fn row_limit(mut self, rows: u64) -> Self {
        self.row_limit = Some(rows);
        self
    }

    /// Binds the capability to an approved plan.
    pub fn plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
        self
    }
}

/// Why a capability was not issued, attenuated or accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// Not a capability string, or a part does not decode.
    #[error("malformed capability: {0}")]
    Malformed(String),
    /// Longer than [`MAX_TOKEN_LEN`] or more than [`MAX_CAVEATS`] caveats.
    #[error("capability too long (at most {MAX_TOKEN_LEN} bytes and {MAX_CAVEATS} caveats)")]
    TooLong,
    /// Signed with a key this authority does not hold.
    #[error("capability signed with unknown key `{0}`")]
    UnknownKey(String),
    /// The chain does not verify: edited, truncated, reordered or spliced.
    #[error("capability signature is invalid (edited, truncated, reordered or spliced)")]
    BadSignature,
    /// Past its expiry.
    #[error("capability expired")]
    Expired,
    /// Before its start.
    #[error("capability not valid yet")]
    NotYetValid,
    /// An attenuation that could not be shown to narrow.
    #[error("caveat does not narrow the capability: {0}")]
    NotNarrower(String),
    /// The spec asks for something the authority will not issue.
    #[error("cannot issue capability: {0}")]
    InvalidSpec(String),
    /// The capability (or the one it was derived from) is on the revocation list.
    #[error("capability {0} has been revoked")]
    Revoked(String),
    /// The revocation list cannot be read, so no capability is accepted (fail closed).
    #[error("{0}")]
    RevocationsUnavailable(String),
}

/// A root key for capabilities: at least 32 random bytes, with an id for rotation.
pub struct CapabilityKey {
    kid: String,
    key: hmac::Key,
}

impl CapabilityKey {
    /// Least key length accepted.
    pub const MIN_LEN: usize = 32;

    /// A key from secret bytes (at least [`MIN_LEN`](Self::MIN_LEN)).
    pub fn new(kid: impl Into<String>, secret: &Secret<Vec<u8>>) -> Result<Self, CapabilityError> {
        let bytes = secret.expose_secret();
        if bytes.len() < Self::MIN_LEN {
            return Err(CapabilityError::InvalidSpec(format!(
                "capability keys must be at least {} bytes",
                Self::MIN_LEN
            )));
        }
        Ok(Self {
            kid: kid.into(),
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// A fresh random key.
    pub fn generate(kid: impl Into<String>) -> Self {
        let bytes: [u8; 32] = crate::hex::random();
        Self {
            kid: kid.into(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        }
    }

    /// The key id written into tokens.
    pub fn id(&self) -> &str {
        &self.kid
    }
}

/// Issues and verifies capabilities: the gateway's authority over them.
///
/// Holds the current key (used to issue) and older keys (still accepted, for rotation).
pub struct CapabilityAuthority {
    name: String,
    current: String,
    keys: HashMap<String, CapabilityKey>,
    max_ttl: Duration,
    leeway: Duration,
    revocations: Option<Revocations>,
}

impl CapabilityAuthority {
    /// Default longest lifetime of an issued capability.
    pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);

    /// An authority called `name` (the issuer of the principals it produces) issuing with `key`.
    pub fn new(name: impl Into<String>, key: CapabilityKey) -> Self {
        let current = key.kid.clone();
        Self {
            name: name.into(),
            current: current.clone(),
            keys: HashMap::from([(current, key)]),
            max_ttl: Self::DEFAULT_MAX_TTL,
            leeway: Duration::from_secs(5),
            revocations: None,
        }
    }

    /// Refuses capabilities on `list`, and gives every capability it verifies a handle on it,
    /// so sessions see a later revocation (see [`Revocations`]).
    pub fn revocations(mut self, list: Revocations) -> Self {
        self.revocations = Some(list);
        self
    }

    /// The revocation list, if it has one.
    pub fn revocation_list(&self) -> Option<&Revocations> {
        self.revocations.as_ref()
    }

    /// Also accepts capabilities signed with `key` (a previous key, during rotation).
    pub fn accept(mut self, key: CapabilityKey) -> Self {
        self.keys.entry(key.kid.clone()).or_insert(key);
        self
    }

    /// Refuses to issue capabilities valid for longer than `ttl`.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Clock-skew allowance for `not_before` (expiry is never extended).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The authority's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Issues a capability for `spec`, valid from now.
    pub fn issue(&self, spec: CapabilitySpec) -> Result<CapabilityToken, CapabilityError> {
        self.issue_at(spec, SystemTime::now())
    }

    /// Issues a capability for `spec`, valid from `now`.
    pub fn issue_at(
        &self,
        spec: CapabilitySpec,
        now: SystemTime,
    ) -> Result<CapabilityToken, CapabilityError> {
        if spec.subject.is_empty() {
            return Err(CapabilityError::InvalidSpec("subject is empty".into()));
        }
        if spec.ttl.is_zero() || spec.ttl > self.max_ttl {
            return Err(CapabilityError::InvalidSpec(format!(
                "lifetime must be between 1s and {}s",
                self.max_ttl.as_secs()
            )));
        }
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| CapabilityError::UnknownKey(self.current.clone()))?;
        let now_s = unix(now);
        let header = token::Header {
            v: 1,
            kid: key.kid.clone(),
            c: CapabilityClaims {
                id: crate::hex::encode(&crate::hex::random::<16>()),
                subject: spec.subject,
                issuer: self.name.clone(),
                kind: spec.kind,
                groups: spec.groups,
                on_behalf_of: spec.on_behalf_of,
                targets: spec.targets,
                kinds: spec.kinds,
                objects: spec.objects,
                deny_objects: spec.deny_objects,
                row_limit: spec.row_limit,
                not_before: now_s,
                expires_at: now_s.saturating_add(spec.ttl.as_secs()),
                plan: spec.plan,
            },
        };
        CapabilityToken::sign_header(&key.key, header)
    }

    /// Parses and verifies a capability string at time `now`.
    pub fn verify_str(&self, token: &str, now: SystemTime) -> Result<Capability, CapabilityError> {
        self.verify(&token.parse()?, now)
    }

    /// Verifies the whole chain and the validity window at time `now`.
    pub fn verify(
        &self,
        token: &CapabilityToken,
        now: SystemTime,
    ) -> Result<Capability, CapabilityError> {
        let key = self
            .keys
            .get(token.key_id())
            .ok_or_else(|| CapabilityError::UnknownKey(token.key_id().to_owned()))?;
        if !token.chain_is_valid(&key.key) {
            return Err(CapabilityError::BadSignature);
        }
        let claims = token.unverified_claims();
        if claims.issuer != self.name {
            return Err(CapabilityError::Malformed(format!(
                "issued by `{}`, not by this authority",
                claims.issuer
            )));
        }
        let scope = Scope::from_chain(claims, token.caveats());
        let now_s = unix(now);
        if now_s >= unix(scope.expires_at()) {
            return Err(CapabilityError::Expired);
        }
        if now_s.saturating_add(self.leeway.as_secs()) < unix(scope.not_before()) {
            return Err(CapabilityError::NotYetValid);
        }
        if let Some(list) = &self.revocations {
            list.check(&claims.id)?;
        }
        Ok(Capability {
            claims: Arc::new(claims.clone()),
            scope: Arc::new(scope),
            revocations: self.revocations.clone(),
        })
    }
}

/// A verified capability: the issuer's claims and the effective [`Scope`].
#[derive(Clone, Debug)]
pub struct Capability {
    claims: Arc<CapabilityClaims>,
    scope: Arc<Scope>,
    /// The list of the authority that verified it, to see later revocations.
    revocations: Option<Revocations>,
}

impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        self.claims == other.claims && self.scope == other.scope
    }
}

impl Capability {
    /// `Ok` while the capability has not been revoked since it was verified (and its
    /// authority's revocation list can be read).
    pub fn check_revocation(&self) -> Result<(), CapabilityError> {
        match &self.revocations {
            Some(list) => list.check(&self.claims.id),
            None => Ok(()),
        }
    }

    /// Resolves when the capability is revoked; never, if its authority has no revocation
    /// list.
    pub async fn revoked(&self) {
        match &self.revocations {
            Some(list) => list.revoked(&self.claims.id).await,
            None => std::future::pending().await,
        }
    }

    /// The capability id.
    pub fn id(&self) -> &str {
        &self.claims.id
    }

    /// What the issuer wrote (before caveats).
    pub fn claims(&self) -> &CapabilityClaims {
        &self.claims
    }

    /// What the capability permits now (after caveats).
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The holder as a principal.
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.claims.subject.clone(),
            issuer: self.claims.issuer.clone(),
            groups: self.claims.groups.clone(),
            kind: self.claims.kind,
            on_behalf_of: self.claims.on_behalf_of.clone(),
        }
    }
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
