//! Identity: turning a presented credential into a verified [`Identity`].
//!
//! A [`Verifier`] checks one kind of credential. [`OidcVerifier`] checks OIDC JWTs against the
//! issuer's keys; [`CapabilityAuthority`] checks sod
//! capabilities. [`Verifiers`] tries several in order: the first that *recognizes* the
//! credential decides, and a recognized but invalid credential is never passed on to the next
//! verifier (fail closed).

mod oidc;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

pub use oidc::{JwksSource, OidcConfig, OidcVerifier};

use crate::capability::{CapabilityAuthority, CapabilityError, PREFIX};
use crate::{AuthMethod, Credential, Identity};

/// A boxed future, as returned by [`Verifier::verify`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a credential was not accepted. Messages never contain the credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// This verifier does not handle credentials of this form; [`Verifiers`] tries the next.
    #[error("credential format not recognized")]
    NotRecognized,
    /// The credential has the right form but does not decode.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's algorithm is not one sod accepts (RS256, ES256, EdDSA).
    #[error("token algorithm `{0}` is not accepted (RS256, ES256 and EdDSA are)")]
    UnsupportedAlgorithm(String),
    /// The algorithm is not the one pinned for the signing key.
    #[error("token algorithm {alg} is not allowed for key `{kid}` (pinned to {pinned})")]
    AlgorithmMismatch {
        /// The token's `alg`.
        alg: String,
        /// The key id.
        kid: String,
        /// The key's pinned algorithm.
        pinned: String,
    },
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` later than now (beyond the clock-skew leeway): issuers do not mint tokens in the
    /// future, so either a clock is wrong or the token is forged.
    #[error("token issued in the future (`iat` is later than now plus the clock-skew leeway)")]
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not trusted")]
    WrongIssuer,
    /// `aud` does not name this gateway.
    #[error("token audience does not include this gateway")]
    WrongAudience,
    /// No key with the token's `kid`, even after refreshing the key set.
    #[error("no key with id `{0}` in the issuer's key set")]
    UnknownKey(String),
    /// The key with the token's `kid` was rejected when the key set was loaded.
    #[error("key `{kid}` is not usable: {why}")]
    KeyRejected {
        /// The key id.
        kid: String,
        /// Why the key was rejected.
        why: String,
    },
    /// A required claim is missing or has the wrong type.
    #[error("claim `{0}` is missing or invalid")]
    Claim(String),
    /// The issuer's keys could not be loaded.
    #[error("issuer keys unavailable: {0}")]
    KeysUnavailable(String),
    /// A capability was presented and rejected.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
}

/// Checks a presented credential and says who presented it.
///
/// Implement this to plug in another identity provider; return
/// [`AuthError::NotRecognized`] for credentials of a form you do not handle.
pub trait Verifier: Send + Sync + 'static {
    /// Verifies `credential`.
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Identity, AuthError>>;
}

impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        (**self).verify(credential)
    }
}

impl Verifier for CapabilityAuthority {
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            let token = credential.expose_secret();
            if !token.starts_with(PREFIX) || !token[PREFIX.len()..].starts_with('.') {
                return Err(AuthError::NotRecognized);
            }
            let cap = self.verify_str(token, SystemTime::now())?;
            Ok(Identity {
                principal: cap.principal(),
                expires_at: Some(cap.scope().expires_at()),
                method: AuthMethod::Capability,
                credential_id: Some(cap.id().to_owned()),
                capability: Some(cap),
            })
        })
    }
}

/// Several verifiers, tried in order; the first that recognizes the credential decides.
///
/// ```
/// use std::sync::Arc;
/// use sod_core::capability::{CapabilityAuthority, CapabilityKey};
/// use sod_core::identity::Verifiers;
///
/// let authority = Arc::new(CapabilityAuthority::new("sod", CapabilityKey::generate("k1")));
/// let verifiers = Verifiers::new().with(authority);
/// # let _ = verifiers;
/// ```
#[derive(Clone, Default)]
pub struct Verifiers {
    chain: Vec<Arc<dyn Verifier>>,
}

impl Verifiers {
    /// An empty chain (it accepts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a verifier.
    pub fn with(mut self, verifier: impl Verifier) -> Self {
        self.chain.push(Arc::new(verifier));
        self
    }
}

impl Verifier for Verifiers {
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            for v in &self.chain {
                match v.verify(credential).await {
                    Err(AuthError::NotRecognized) => continue,
                    decided => return decided,
                }
            }
            Err(AuthError::Malformed(
                "the credential is neither a token nor a capability this gateway accepts".into(),
            ))
        })
    }
}
