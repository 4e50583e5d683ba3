//! [`Session`]: one client connection (or one in-process handle) and who it belongs to.

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::capability::{Capability, CapabilityError};
use crate::{Principal, Refusal, RefusalCode, Target};

/// A random 128-bit session identifier, shown as 32 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(crate::hex::random())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a session comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A Unix-socket client.
    Unix,
    /// A [`CapabilityHandle`](crate::capability::CapabilityHandle) in the same process.
    InProcess,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix socket"),
            Peer::InProcess => f.write_str("in-process"),
        }
    }
}

/// How a session proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// An OIDC ID or access token (JWT).
    Oidc,
    /// A sod capability.
    Capability,
    /// A verifier supplied by the embedding application.
    Custom,
}

/// The verified identity of a session, set once by the
/// [`IdentityLayer`](crate::layer::IdentityLayer) on the session's `Connect` operation.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Who the session belongs to.
    pub principal: Principal,
    /// The capability it presented, if it presented one; its scope bounds every operation.
    pub capability: Option<Capability>,
    /// When the presented credential stops being valid; operations after this are refused.
    pub expires_at: Option<SystemTime>,
    /// How the identity was proven.
    pub method: AuthMethod,
    /// An identifier of the credential for audit (capability id, token `jti`), never the
    /// credential itself.
    pub credential_id: Option<String>,
}

impl Identity {
    /// An identity for `principal`, proven by `method`, with no capability and no expiry.
    pub fn new(principal: Principal, method: AuthMethod) -> Self {
        Self {
            principal,
            capability: None,
            expires_at: None,
            method,
            credential_id: None,
        }
    }
}

/// One client session. Immutable except for its identity, which is set exactly once.
///
/// ```
/// use sod_core::{Session, Peer, Target};
///
/// let session = Session::new(Target::new("pg/prod"), Peer::InProcess, Some("app".into()));
/// assert!(session.identity().is_none()); // nobody has authenticated yet
/// ```
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    target: Target,
    peer: Peer,
    client_user: Option<String>,
    started_at: SystemTime,
    identity: OnceLock<Identity>,
    end_reason: OnceLock<String>,
}

impl Session {
    /// A new, unauthenticated session to `target` from `peer`. `client_user` is the user name
    /// the client *claimed* (a database user, an SSH login): it is recorded and grants nothing.
    pub fn new(target: Target, peer: Peer, client_user: Option<String>) -> Self {
        Self {
            id: SessionId::random(),
            target,
            peer,
            client_user,
            started_at: SystemTime::now(),
            identity: OnceLock::new(),
            end_reason: OnceLock::new(),
        }
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The upstream system this session reaches.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Where the client connected from.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The user name the client claimed; not an identity.
    pub fn client_user(&self) -> Option<&str> {
        self.client_user.as_deref()
    }

    /// When the session started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The verified identity, once authenticated.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.get()
    }

    /// The verified principal, once authenticated.
    pub fn principal(&self) -> Option<&Principal> {
        self.identity().map(|i| &i.principal)
    }

    /// The verified identity, or a refusal if there is none or it has expired at `now`.
    pub fn current_identity(&self, now: SystemTime) -> Result<&Identity, Refusal> {
        let identity = self.identity().ok_or_else(|| {
            Refusal::new(
                RefusalCode::Unauthenticated,
                "the session has not authenticated",
            )
        })?;
        if identity.expires_at.is_some_and(|exp| now >= exp) {
            return Err(Refusal::new(
                RefusalCode::IdentityExpired,
                "the session's credential has expired; reconnect with a fresh one",
            ));
        }
        match identity
            .capability
            .as_ref()
            .map(Capability::check_revocation)
        {
            Some(Err(e @ CapabilityError::RevocationsUnavailable(_))) => {
                return Err(Refusal::new(RefusalCode::Unavailable, e.to_string()));
            }
            Some(Err(e)) => {
                return Err(Refusal::new(RefusalCode::CapabilityRevoked, e.to_string()));
            }
            _ => {}
        }
        Ok(identity)
    }

    /// Resolves when the session's capability is revoked (see
    /// [`Revocations`](crate::capability::Revocations)); never for a session without one.
    /// Gateways end the session then, after [`end`](Self::end) with the reason.
    pub async fn revoked(&self) -> String {
        match self.identity().and_then(|i| i.capability.as_ref()) {
            Some(cap) => {
                cap.revoked().await;
                format!("capability {} revoked", cap.id())
            }
            None => std::future::pending().await,
        }
    }

    /// Records why the gateway ends the session (kept once; the audit log's `session_ended`
    /// event carries it).
    pub fn end(&self, reason: impl Into<String>) {
        let _ = self.end_reason.set(reason.into());
    }

    /// Why the gateway ended the session, if it said.
    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.get().map(String::as_str)
    }

    /// Sets the identity. Fails if the session already has one: an identity never changes.
    pub fn authenticate(&self, identity: Identity) -> Result<(), Refusal> {
        self.identity.set(identity).map_err(|_| {
            Refusal::new(
                RefusalCode::Unauthenticated,
                "the session is already authenticated",
            )
        })
    }
}
