//! [`OidcVerifier`]: OIDC JWTs checked against the issuer's JWKS.
//!
//! Keys come from a static JWKS, a file, or the issuer's HTTPS endpoint. Each key is pinned to
//! the one algorithm its type allows (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA); symmetric
//! (`oct`) keys are rejected, so a token can never be "signed" with a public key as an HMAC
//! secret. Unknown `kid`s trigger a refresh (rate-limited), so key rotation at the issuer is
//! picked up without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthError, BoxFuture, Verifier};
use crate::clock::Clock;
use crate::https::PlainHttp;
use crate::{AuthMethod, Credential, Identity, Principal, PrincipalKind};

/// Where the issuer's keys come from.
#[derive(Clone)]
pub enum JwksSource {
    /// A JWKS document given inline (`{"keys":[…]}`).
    Static(String),
    /// A JWKS document in a file, re-read on refresh.
    File(PathBuf),
    /// The issuer's JWKS endpoint. Only `https` URLs are accepted. Redirects are not followed:
    /// a `3xx` answer is a failed fetch (the URL configured is the one trusted, and a redirect
    /// could lead anywhere, plain `http` included). Configure the final URL.
    Https {
        /// The JWKS URL.
        url: String,
        /// TLS client configuration; `None` trusts the system's roots.
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Static(_) => f.write_str("Static(..)"),
            JwksSource::File(p) => write!(f, "File({})", p.display()),
            JwksSource::Https { url, .. } => write!(f, "Https({url})"),
        }
    }
}

/// Configuration of an [`OidcVerifier`].
///
/// Claim paths are either a top-level claim name (`"groups"`, also one containing dots such as
/// `"https://example.com/groups"`) or, starting with `/`, a JSON Pointer into the claims
/// (`"/realm_access/roles"`).
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values; the token must name at least one.
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s): a token is valid from
    /// `nbf - leeway` until just before `exp + leeway`, and refused if its `iat` is later than
    /// now + leeway (issuers do not mint tokens in the future).
    pub leeway: Duration,
    /// The claim holding the principal id (default `sub`).
    pub subject_claim: String,
    /// The claim holding groups: a list of strings or one string (default `groups`; absent
    /// claim means no groups).
    pub groups_claim: Option<String>,
    /// The claim naming the human the subject acts for (default `on_behalf_of`).
    pub on_behalf_of_claim: Option<String>,
    /// The claim holding the principal kind: `human`, `planner` or `executor` (default
    /// `sod_kind`).
    pub kind_claim: Option<String>,
    /// The kind of principals whose token has no kind claim. `None` (the default) rejects such
    /// tokens, so an agent can never pass as a human by omission.
    pub default_kind: Option<PrincipalKind>,
    /// Minimum time between key refreshes triggered by unknown `kid`s (default 30 s).
    pub refresh_min_interval: Duration,
    /// Keys older than this are refreshed before use (default 15 min).
    pub refresh_max_age: Duration,
    /// Timeout for one fetch of the keys over HTTPS, connection, TLS handshake, headers and
    /// body included (default 10 s). A verification waiting for keys waits at most about this
    /// long; a JWKS endpoint that stalls or trickles fails the fetch.
    pub fetch_timeout: Duration,
    /// Largest JWKS document accepted, from a file or over HTTPS (default 1 MiB). Reading stops
    /// there: a larger document is refused, never read whole.
    pub max_jwks_len: usize,
    /// Longest token accepted (default 16 KiB).
    pub max_token_len: usize,
    /// The clock for `exp`, `nbf` and `iat` and for the age of the cached keys (default: the
    /// system's clock). Tests give a [`Clock::from_fn`] they move by hand.
    pub clock: Clock,
}

impl OidcConfig {
    /// A configuration with the defaults above.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            jwks,
            leeway: Duration::from_secs(30),
            subject_claim: "sub".into(),
            groups_claim: Some("groups".into()),
            on_behalf_of_claim: Some("on_behalf_of".into()),
            kind_claim: Some("sod_kind".into()),
            default_kind: None,
            refresh_min_interval: Duration::from_secs(30),
            refresh_max_age: Duration::from_secs(15 * 60),
            fetch_timeout: Duration::from_secs(10),
            max_jwks_len: 1024 * 1024,
            max_token_len: 16 * 1024,
            clock: Clock::system(),
        }
    }
}

/// A key ready for verification, pinned to one algorithm.
struct PinnedKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// One loaded key set.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, PinnedKey>,
    /// Keys without a `kid`; usable only by tokens without a `kid`, and only if there is one.
    anonymous: Vec<PinnedKey>,
    /// Keys present in the document but refused, with the reason.
    rejected: HashMap<String, String>,
    /// When the set was loaded, by the configured clock; `None` before the first load.
    loaded_at: Option<SystemTime>,
}

impl KeySet {
    fn parse(doc: &[u8], now: SystemTime) -> Result<KeySet, String> {
        let set: Value =
            serde_json::from_slice(doc).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no `keys` array")?;
        let mut out = KeySet {
            loaded_at: Some(now),
            ..KeySet::default()
        };
        for raw in keys {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
            let pinned = serde_json::from_value::<Jwk>(raw.clone())
                .map_err(|e| format!("unsupported key: {e}"))
                .and_then(|jwk| pin(&jwk));
            match (kid, pinned) {
                (Some(kid), Ok(p)) => {
                    out.keys.insert(kid, p);
                }
                (None, Ok(p)) => out.anonymous.push(p),
                (Some(kid), Err(why)) => {
                    tracing::warn!(%kid, %why, "rejected key from JWKS");
                    out.rejected.insert(kid, why);
                }
                (None, Err(why)) => tracing::warn!(%why, "rejected key without kid from JWKS"),
            }
        }
        Ok(out)
    }
}

/// Pins a JWK to the single algorithm its type allows, or says why it cannot be used.
fn pin(jwk: &Jwk) -> Result<PinnedKey, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("key is for encryption (`use` = `enc`)".into());
    }
    let (alg, key_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (`oct`) keys are not accepted from a JWKS".into());
        }
        _ => return Err("only RSA, EC P-256 and Ed25519 keys are accepted".into()),
    };
    if let Some(declared) = jwk.common.key_algorithm
        && declared != key_alg
    {
        return Err(format!(
            "declared algorithm {declared:?} does not match the key type (expected {key_alg:?})"
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("invalid key material: {e}"))?;
    Ok(PinnedKey { alg, key })
}

type HttpsClient = crate::https::HttpsClient<Empty<bytes::Bytes>>;

struct Shared {
    config: OidcConfig,
    keys: RwLock<Arc<KeySet>>,
    /// Serializes refreshes (single flight) and remembers when the last attempt ended, for rate
    /// limiting (monotonic time, not the configured clock: the issuer is protected whatever the
    /// wall clock does).
    refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Load attempts finished, successful or not: a task that waited for the refresh lock while
    /// an attempt ran takes that attempt's outcome instead of starting another.
    attempts: AtomicU64,
    /// Why the last load failed (cleared by a successful one), for the error of a token that
    /// arrives while no keys have ever loaded.
    last_error: RwLock<Option<String>>,
    client: Option<HttpsClient>,
}

/// Verifies OIDC JWTs. Cheap to clone; clones share the key cache.
///
/// ```no_run
/// use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier};
///
/// let verifier = OidcVerifier::new(OidcConfig::new(
///     "https://idp.example.com/realms/ops",
///     "sod-gateway",
///     JwksSource::Https { url: "https://idp.example.com/realms/ops/certs".into(), tls: None },
/// ))?;
/// # Ok::<(), sod_core::identity::AuthError>(())
/// ```
#[derive(Clone)]
pub struct OidcVerifier {
    shared: Arc<Shared>,
}

impl OidcVerifier {
    /// Checks the configuration and prepares the key source. Static keys are parsed now; file
    /// and HTTPS keys are loaded on first use (or by [`refresh_keys`](Self::refresh_keys)).
    pub fn new(config: OidcConfig) -> Result<Self, AuthError> {
        let bad = |m: &str| Err(AuthError::KeysUnavailable(m.to_owned()));
        if config.issuer.is_empty() {
            return bad("the issuer is empty");
        }
        if config.audiences.is_empty() || config.audiences.iter().any(String::is_empty) {
            return bad("at least one non-empty audience is required");
        }
        let mut initial = KeySet::default();
        let mut client = None;
        match &config.jwks {
            JwksSource::Static(doc) => {
                initial = KeySet::parse(doc.as_bytes(), config.clock.now())
                    .map_err(AuthError::KeysUnavailable)?;
            }
            JwksSource::File(_) => {}
            JwksSource::Https { url, tls } => {
                // Keys decide who anyone is: fetched over TLS only, never plain http.
                crate::https::check_url(url, PlainHttp::Refused)
                    .map_err(|e| AuthError::KeysUnavailable(format!("JWKS URL: {e}")))?;
                client = Some(
                    crate::https::client(tls.clone(), PlainHttp::Refused)
                        .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?,
                );
            }
        }
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                keys: RwLock::new(Arc::new(initial)),
                refresh: tokio::sync::Mutex::new(None),
                last_error: RwLock::new(None),
                attempts: AtomicU64::new(0),
                client,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.shared.config
    }

    fn current(&self) -> Arc<KeySet> {
        match self.shared.keys.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the keys now (ignoring the refresh rate limit), for warming up at start.
    pub async fn refresh_keys(&self) -> Result<(), AuthError> {
        let mut last = self.shared.refresh.lock().await;
        self.load(&mut last).await
    }

    async fn load(&self, last_attempt: &mut Option<Instant>) -> Result<(), AuthError> {
        let loaded = match self.fetch().await {
            Ok(doc) => KeySet::parse(&doc, self.shared.config.clock.now()),
            Err(e) => Err(e),
        };
        // Counted from the end of the attempt: a fetch that took the whole timeout does not let
        // the next one start at once (no pile-up of slow fetches).
        *last_attempt = Some(Instant::now());
        let error = loaded.as_ref().err().cloned();
        match self.shared.last_error.write() {
            Ok(mut g) => *g = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
        let result = loaded.map(|set| match self.shared.keys.write() {
            Ok(mut g) => *g = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        });
        self.shared.attempts.fetch_add(1, Ordering::SeqCst);
        result.map_err(AuthError::KeysUnavailable)
    }

    fn last_error(&self) -> Option<String> {
        match self.shared.last_error.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Refreshes if the key set is missing or older than `max_age`, or if `force`; at most once
    /// per `refresh_min_interval`, and only one refresh at a time. Returns the current key set.
    async fn maybe_refresh(&self, force: bool) -> Arc<KeySet> {
        // Read before the key set: an attempt ending in between is then noticed below.
        let seen_attempts = self.shared.attempts.load(Ordering::SeqCst);
        let seen = self.current();
        if matches!(self.shared.config.jwks, JwksSource::Static(_)) {
            return seen;
        }
        let cfg = &self.shared.config;
        let now = cfg.clock.now();
        // A clock that went back before the load makes the keys stale, not fresh forever.
        let fresh = seen.loaded_at.is_some_and(|t| {
            now.duration_since(t)
                .is_ok_and(|age| age < cfg.refresh_max_age)
        });
        if fresh && !force {
            // The common path: no lock, no I/O.
            return seen;
        }
        let mut last = self.shared.refresh.lock().await;
        if self.shared.attempts.load(Ordering::SeqCst) != seen_attempts {
            // Another task tried while we waited for the lock (single flight): its keys, or
            // the previous ones if it failed.
            return self.current();
        }
        if last.is_none_or(|t| t.elapsed() >= cfg.refresh_min_interval)
            && let Err(e) = self.load(&mut last).await
        {
            tracing::warn!(error = %e, "refreshing OIDC keys failed; keeping the previous keys");
        }
        self.current()
    }

    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let max = self.shared.config.max_jwks_len;
        let too_large = |what: &dyn std::fmt::Display| {
            format!("{what}: the JWKS is larger than the limit of {max} bytes (max_jwks_len)")
        };
        match &self.shared.config.jwks {
            JwksSource::Static(doc) => Ok(doc.clone().into_bytes()),
            JwksSource::File(path) => {
                use tokio::io::AsyncReadExt as _;
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                // Never more than one byte past the limit, whatever the file's size.
                let mut bytes = Vec::new();
                file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if bytes.len() > max {
                    return Err(too_large(&path.display()));
                }
                Ok(bytes)
            }
            JwksSource::Https { url, .. } => {
                let client = self.shared.client.as_ref().ok_or("no HTTPS client")?;
                let uri: http::Uri = url.parse().map_err(|e| format!("invalid JWKS URL: {e}"))?;
                let req = http::Request::get(uri)
                    .header(http::header::ACCEPT, "application/json")
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let fetch = async {
                    let resp = client
                        .request(req)
                        .await
                        .map_err(|e| format!("fetching {url}: {e}"))?;
                    if resp.status().is_redirection() {
                        return Err(format!(
                            "fetching {url}: HTTP {} (redirects are not followed; configure the \
                             final JWKS URL)",
                            resp.status()
                        ));
                    }
                    if !resp.status().is_success() {
                        return Err(format!("fetching {url}: HTTP {}", resp.status()));
                    }
                    let declared = resp
                        .headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if declared.is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX)) {
                        return Err(too_large(url));
                    }
                    let body = Limited::new(resp.into_body(), max)
                        .collect()
                        .await
                        .map_err(|e| {
                            if e.is::<http_body_util::LengthLimitError>() {
                                too_large(url)
                            } else {
                                format!("reading {url}: {e}")
                            }
                        })?;
                    Ok(body.to_bytes().to_vec())
                };
                let timeout = self.shared.config.fetch_timeout;
                tokio::time::timeout(timeout, fetch).await.map_err(|_| {
                    format!("fetching {url}: no complete answer within {timeout:?} (fetch_timeout)")
                })?
            }
        }
    }

    async fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        let cfg = &self.shared.config;
        let header = parse_header(token, cfg.max_token_len)?;
        let mut keys = self.maybe_refresh(false).await;
        if keys.loaded_at.is_none() {
            // No key set has ever loaded: say why, rather than blame the token's `kid`.
            return Err(AuthError::KeysUnavailable(
                self.last_error()
                    .unwrap_or_else(|| "the issuer's keys have not been loaded yet".into()),
            ));
        }
        let mut refreshed = false;
        loop {
            let found = match &header.kid {
                Some(kid) => keys.keys.get(kid),
                None if keys.anonymous.len() == 1 && keys.keys.is_empty() => keys.anonymous.first(),
                None => None,
            };
            if let Some(k) = found {
                // Pinning: the key decides the algorithm, never the token.
                if header.alg != k.alg {
                    return Err(AuthError::AlgorithmMismatch {
                        alg: format!("{:?}", header.alg),
                        kid: header.kid.clone().unwrap_or_default(),
                        pinned: format!("{:?}", k.alg),
                    });
                }
                let claims = decode(token, k, cfg)?;
                check_times(&claims, cfg)?;
                return self.identity(&claims);
            }
            if let Some(why) = header.kid.as_ref().and_then(|kid| keys.rejected.get(kid)) {
                return Err(AuthError::KeyRejected {
                    kid: header.kid.clone().unwrap_or_default(),
                    why: why.clone(),
                });
            }
            // One forced refresh per token at most: the rate limit protects the issuer, this
            // protects the gateway from looping on a kid that never appears.
            let fresh = if refreshed {
                keys.clone()
            } else {
                self.maybe_refresh(true).await
            };
            refreshed = true;
            if Arc::ptr_eq(&fresh, &keys) {
                return Err(match &header.kid {
                    Some(kid) => AuthError::UnknownKey(quoted(kid, 64)),
                    None => AuthError::Malformed(
                        "the token has no `kid` and the issuer has several keys".into(),
                    ),
                });
            }
            keys = fresh;
        }
    }

    fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, AuthError> {
        let cfg = &self.shared.config;
        let root = Value::Object(claims.clone());
        // jsonwebtoken accepts an array `iss`; the specification does not. Be strict.
        if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        let string_claim = |path: &str| -> Result<Option<String>, AuthError> {
            match lookup(&root, path) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(AuthError::Claim(path.to_owned())),
            }
        };
        let id = string_claim(&cfg.subject_claim)?
            .ok_or_else(|| AuthError::Claim(cfg.subject_claim.clone()))?;
        let groups = match cfg
            .groups_claim
            .as_deref()
            .and_then(|p| lookup(&root, p).map(|v| (p, v)))
        {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::String(s))) => vec![s.clone()],
            Some((p, Value::Array(a))) => a
                .iter()
                .map(|g| {
                    g.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| AuthError::Claim(p.to_owned()))
                })
                .collect::<Result<_, _>>()?,
            Some((p, _)) => return Err(AuthError::Claim(p.to_owned())),
        };
        let on_behalf_of = match &cfg.on_behalf_of_claim {
            Some(p) => string_claim(p)?,
            None => None,
        };
        let kind = match cfg.kind_claim.as_deref().map(|p| (p, string_claim(p))) {
            Some((p, Ok(Some(k)))) => k.parse().map_err(|_| AuthError::Claim(p.to_owned()))?,
            Some((_, Err(e))) => return Err(e),
            Some((p, Ok(None))) => cfg
                .default_kind
                .ok_or_else(|| AuthError::Claim(p.to_owned()))?,
            None => cfg.default_kind.ok_or_else(|| {
                AuthError::Claim("kind (no kind claim or default_kind configured)".into())
            })?,
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            // Clamped to the year 9999: no `exp` an issuer writes overflows the clock.
            .map(|s| {
                std::time::UNIX_EPOCH + Duration::from_secs(s.min(253_402_300_799)) + cfg.leeway
            });
        let principal = Principal {
            id,
            issuer: cfg.issuer.clone(),
            groups,
            kind,
            on_behalf_of,
        };
        Ok(Identity {
            principal,
            capability: None,
            expires_at,
            method: AuthMethod::Oidc,
            credential_id: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// The header fields we act on, parsed with our own rules before any key is touched.
struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

fn parse_header(token: &str, max_len: usize) -> Result<Header, AuthError> {
    if token.len() > max_len {
        return Err(if token.starts_with("eyJ") {
            AuthError::Malformed(format!("token longer than {max_len} bytes"))
        } else {
            AuthError::NotRecognized
        });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::NotRecognized);
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(h) else {
        return Err(AuthError::NotRecognized);
    };
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(AuthError::NotRecognized);
    };
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(AuthError::Malformed("the token header has no `alg`".into()));
    };
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(AuthError::UnsupportedAlgorithm(quoted(other, 32)));
        }
    };
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "critical header extensions are not supported".into(),
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(AuthError::Malformed("`kid` must be a string".into())),
    };
    Ok(Header { alg, kid })
}

fn decode(
    token: &str,
    key: &PinnedKey,
    cfg: &OidcConfig,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let mut v = Validation::new(key.alg);
    // Times are checked by `check_times`, against the configured clock.
    v.validate_nbf = false;
    v.validate_exp = false;
    v.validate_aud = true;
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&cfg.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
                AuthError::Claim(c.clone())
            }
            ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                AuthError::Malformed("the token does not decode as base64url JSON".into())
            }
            // The JSON itself parsed (the header above; the claims into a map), so a field the
            // decoder types has the wrong type: a header field such as `jwk` or `x5c`, or a
            // registered claim such as `nbf`.
            ErrorKind::Json(_) => AuthError::Malformed(
                "a header field or registered claim (such as `jwk`, `x5c`, `nbf` or `aud`) \
                 has the wrong type"
                    .into(),
            ),
            // Never echo decoder details: they may quote token contents.
            _ => AuthError::Malformed("the token was rejected by the JWT decoder".into()),
        })
}

/// A header value from the token, fit to quote in an error (and so in a log line): at most
/// `max` characters, control characters (a newline forging a log line) replaced by `?`.
fn quoted(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Checks `exp`, `nbf` and `iat` against the configured clock, with the leeway. `exp` is
/// required (its presence already checked by the decoder); all three, where present, must be
/// whole seconds since the epoch.
fn check_times(claims: &serde_json::Map<String, Value>, cfg: &OidcConfig) -> Result<(), AuthError> {
    let now = cfg
        .clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let leeway = cfg.leeway.as_secs();
    let seconds = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| AuthError::Claim(name.to_owned())),
    };
    let exp = seconds("exp")?.ok_or_else(|| AuthError::Claim("exp".into()))?;
    // RFC 7519 §4.1.4: valid only *before* `exp`.
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = seconds("nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid);
    }
    if let Some(iat) = seconds("iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(())
}

/// Finds a claim: a top-level name, or a JSON Pointer when `path` starts with `/`.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.starts_with('/') {
        root.pointer(path)
    } else {
        root.get(path)
    }
}

impl Verifier for OidcVerifier {
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(self.verify_token(credential.expose_secret()))
    }
}
