//! An OIDC issuer fixture: signing keys, JWKS documents, tokens (well-formed and hostile) and an
//! HTTPS JWKS endpoint.
//!
//! Tokens are signed with aws-lc-rs directly (not with `jsonwebtoken`), so that the verifier under
//! test is checked against an independent implementation of JWS.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::tls::TestCa;

/// Encodes `bytes` as unpadded base64url (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `base64url(header) "." base64url(claims)`, the JWS signing input.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An unsecured JWS (`alg` as given in `header`, normally `"none"`): `header.claims.` with an
/// empty signature. The header is used exactly as given.
pub fn unsigned_token(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// A JWS signed with HMAC-SHA256 under `secret`, with `header` and `claims` exactly as given (for
/// algorithm-confusion tests, e.g. an RSA public key used as the HMAC secret).
pub fn hs256_token(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

/// A JWS signature algorithm supported by the fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    Rs256,
    /// ECDSA P-256 with SHA-256 (fixed-length `r || s` signature).
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlg {
    /// The JOSE name: `"RS256"`, `"ES256"` or `"EdDSA"`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }
}

enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its key id.
pub struct SigningKey {
    kid: String,
    alg: KeyAlg,
    material: KeyMaterial,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key for `alg` (RSA keys are 2048 bits).
    ///
    /// # Panics
    /// If key generation fails (never expected).
    pub fn generate(alg: KeyAlg, kid: &str) -> SigningKey {
        let material = match alg {
            KeyAlg::Rs256 => KeyMaterial::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA-2048 key"),
            ),
            KeyAlg::Es256 => KeyMaterial::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("generate P-256 key"),
            ),
            KeyAlg::EdDsa => {
                KeyMaterial::Ed(Ed25519KeyPair::generate().expect("generate Ed25519 key"))
            }
        };
        SigningKey {
            kid: kid.to_owned(),
            alg,
            material,
        }
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public key as a JWK (RFC 7517) with `kty`, `kid`, `alg`, `use: "sig"` and the public
    /// components (`n`/`e` for RSA, `crv`/`x`/`y` for P-256, `crv`/`x` for Ed25519).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.material {
            KeyMaterial::Rsa(key) => {
                let public = key.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                })
            }
            KeyMaterial::Ec(key) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = key.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64url(&point[1..33]),
                    "y": b64url(&point[33..65]),
                })
            }
            KeyMaterial::Ed(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64url(key.public_key().as_ref()),
            }),
        };
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(self.kid.clone()));
            map.insert("alg".into(), Value::String(self.alg.name().into()));
            map.insert("use".into(), Value::String("sig".into()));
        }
        jwk
    }

    /// Signs `signing_input` and returns the raw JWS signature bytes (PKCS#1 v1.5 for RS256,
    /// 64-byte `r || s` for ES256, 64 bytes for EdDSA).
    ///
    /// # Panics
    /// If signing fails (never expected).
    pub fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            KeyMaterial::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, signing_input, &mut signature)
                    .expect("RSA signing");
                signature
            }
            KeyMaterial::Ec(key) => key
                .sign(&rng, signing_input)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            KeyMaterial::Ed(key) => key.sign(signing_input).as_ref().to_vec(),
        }
    }
}

/// An OIDC issuer: an issuer URL, an audience and a set of signing keys.
///
/// Keys removed with [`OidcIssuer::remove_key`] leave the JWKS but can still sign, so tests can
/// make tokens under a key the verifier no longer trusts.
#[derive(Debug)]
pub struct OidcIssuer {
    issuer: String,
    audience: String,
    keys: Vec<SigningKey>,
    retired: Vec<SigningKey>,
}

impl OidcIssuer {
    /// An issuer with one key of each algorithm: kids `"rsa-1"` (RS256), `"ec-1"` (ES256) and
    /// `"ed-1"` (EdDSA).
    pub fn new(issuer: &str, audience: &str) -> Self {
        OidcIssuer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: vec![
                SigningKey::generate(KeyAlg::Rs256, "rsa-1"),
                SigningKey::generate(KeyAlg::Es256, "ec-1"),
                SigningKey::generate(KeyAlg::EdDsa, "ed-1"),
            ],
            retired: Vec::new(),
        }
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience (`aud`).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The JWKS document of the current keys: `{"keys": [...]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>() })
    }

    /// Generates a new key and publishes it (key rotation). A current key with the same kid is
    /// replaced (and retired).
    pub fn add_key(&mut self, alg: KeyAlg, kid: &str) {
        self.remove_key(kid);
        self.retired.retain(|key| key.kid != kid);
        self.keys.push(SigningKey::generate(alg, kid));
    }

    /// Stops publishing the key `kid`. It can still sign tokens (see the type docs).
    pub fn remove_key(&mut self, kid: &str) {
        if let Some(index) = self.keys.iter().position(|key| key.kid == kid) {
            let key = self.keys.remove(index);
            self.retired.retain(|old| old.kid != kid);
            self.retired.push(key);
        }
    }

    /// The key `kid`, current or retired (current first).
    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys
            .iter()
            .chain(self.retired.iter().rev())
            .find(|key| key.kid == kid)
    }

    /// A builder for a token with defaults: kid `"rsa-1"`, `iss`/`aud` from this issuer,
    /// `sub` `"alice"`, `iat` now, `exp` now + 300 s, no `nbf`.
    pub fn token(&self) -> TokenBuilder<'_> {
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::String(self.issuer.clone()));
        claims.insert("aud".into(), Value::String(self.audience.clone()));
        claims.insert("sub".into(), Value::String("alice".into()));
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + 300).into());
        TokenBuilder {
            issuer: self,
            kid: "rsa-1".into(),
            claims,
            header_overrides: Map::new(),
        }
    }

    /// A compact JWS of exactly `header` and `claims` (serialized as given), signed with the key
    /// `kid` (current or retired) whatever the header says.
    ///
    /// # Panics
    /// If there is no key `kid`.
    pub fn sign_raw(&self, kid: &str, header: &Value, claims: &Value) -> String {
        let key = self
            .key(kid)
            .unwrap_or_else(|| panic!("OidcIssuer has no key with kid {kid:?}"));
        let input = signing_input(header, claims);
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64url(&signature))
    }
}

/// Builds a signed token; see [`OidcIssuer::token`].
#[derive(Debug)]
pub struct TokenBuilder<'a> {
    issuer: &'a OidcIssuer,
    kid: String,
    claims: Map<String, Value>,
    header_overrides: Map<String, Value>,
}

impl TokenBuilder<'_> {
    /// Sets `sub`.
    pub fn subject(self, subject: &str) -> Self {
        self.claim("sub", Value::String(subject.into()))
    }

    /// Sets `groups` (an array of strings).
    pub fn groups(self, groups: &[&str]) -> Self {
        self.claim("groups", json!(groups))
    }

    /// Sets `on_behalf_of` (the human an agent acts for).
    pub fn on_behalf_of(self, human: &str) -> Self {
        self.claim("on_behalf_of", Value::String(human.into()))
    }

    /// Sets `sod_kind` (e.g. `"human"`, `"planner"`, `"executor"`).
    pub fn kind(self, kind: &str) -> Self {
        self.claim("sod_kind", Value::String(kind.into()))
    }

    /// Signs with the key `kid` (current or retired) and puts `kid` and that key's `alg` in the
    /// header (unless overridden with [`TokenBuilder::header_claim`]).
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// Sets `iss`.
    pub fn issuer(self, issuer: &str) -> Self {
        self.claim("iss", Value::String(issuer.into()))
    }

    /// Sets `aud` (a single string; use [`TokenBuilder::claim`] for an array).
    pub fn audience(self, audience: &str) -> Self {
        self.claim("aud", Value::String(audience.into()))
    }

    /// Sets `exp` to now + `seconds` (negative: already expired).
    pub fn expires_in(self, seconds: i64) -> Self {
        self.claim("exp", (now() + seconds).into())
    }

    /// Sets `nbf` to now + `seconds`.
    pub fn not_before_in(self, seconds: i64) -> Self {
        self.claim("nbf", (now() + seconds).into())
    }

    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Removes a claim (including the defaults `iss`, `aud`, `sub`, `iat`, `exp`).
    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Overrides a header field (`alg`, `kid`, `typ`, or any other); `Value::Null` removes it.
    /// The signature is still made with the key chosen by [`TokenBuilder::kid`].
    pub fn header_claim(mut self, name: &str, value: Value) -> Self {
        self.header_overrides.insert(name.to_owned(), value);
        self
    }

    /// The header and claims this builder would sign.
    ///
    /// # Panics
    /// If the chosen kid does not exist.
    pub fn parts(&self) -> (Value, Value) {
        let key = self
            .issuer
            .key(&self.kid)
            .unwrap_or_else(|| panic!("OidcIssuer has no key with kid {:?}", self.kid));
        let mut header = Map::new();
        header.insert("alg".into(), Value::String(key.alg().name().into()));
        header.insert("typ".into(), Value::String("JWT".into()));
        header.insert("kid".into(), Value::String(self.kid.clone()));
        for (name, value) in &self.header_overrides {
            if value.is_null() {
                header.remove(name);
            } else {
                header.insert(name.clone(), value.clone());
            }
        }
        (Value::Object(header), Value::Object(self.claims.clone()))
    }

    /// Signs and returns the compact JWS.
    ///
    /// # Panics
    /// If the chosen kid does not exist.
    pub fn sign(self) -> String {
        let (header, claims) = self.parts();
        self.issuer.sign_raw(&self.kid, &header, &claims)
    }
}

/// How a [`JwksServer`] answers requests for [`JWKS_PATH`] (for hostile-issuer tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// Serve the JWKS (or the status set with [`JwksServer::set_status`]). The default.
    Serve,
    /// Answer `302 Found` with this `Location`.
    Redirect(String),
    /// Read the request, then never answer (the connection stays open until the server stops).
    Stall,
    /// Answer `200` with a JSON content type, then send one space every interval, forever.
    Trickle(Duration),
}

/// What the JWKS server answers, shared with its connection tasks.
struct Shared {
    jwks: Mutex<Value>,
    status: AtomicU16,
    mode: Mutex<JwksMode>,
    requests: AtomicUsize,
}

type Body = BoxBody<Bytes, Infallible>;

impl Shared {
    /// Answers `request` as the current [`JwksMode`] says; `None` means never answer.
    fn answer(&self, request: &Request<Incoming>) -> Option<Response<Body>> {
        let mode = self
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let response = self.respond(request);
        if request.uri().path() != JWKS_PATH || response.status() != StatusCode::OK {
            return Some(response.map(BodyExt::boxed));
        }
        match mode {
            JwksMode::Serve => Some(response.map(BodyExt::boxed)),
            JwksMode::Redirect(location) => {
                let mut response = plain(StatusCode::FOUND, "moved\n");
                if let Ok(value) = header::HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                Some(response.map(BodyExt::boxed))
            }
            JwksMode::Stall => None,
            JwksMode::Trickle(every) => {
                let spaces = futures_util::stream::unfold((), move |()| async move {
                    tokio::time::sleep(every).await;
                    Some((
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b" "))),
                        (),
                    ))
                });
                let mut response = Response::new(BodyExt::boxed(StreamBody::new(spaces)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Some(response)
            }
        }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != JWKS_PATH {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let status = StatusCode::from_u16(self.status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status != StatusCode::OK {
            return plain(status, "simulated failure\n");
        }
        let body = self
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// The path the JWKS is served at.
pub const JWKS_PATH: &str = "/jwks.json";

/// An HTTPS server (HTTP/1.1, rustls) on `127.0.0.1:<ephemeral port>` serving a JWKS document at
/// [`JWKS_PATH`]; every other path answers 404. Its certificate (DNS `localhost`, IP 127.0.0.1)
/// comes from its own [`TestCa`]. Dropping the server stops it.
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca: TestCa,
    task: AbortHandle,
}

impl fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl JwksServer {
    /// Starts serving `jwks` (must be called within a tokio runtime).
    pub async fn start(jwks: Value) -> io::Result<JwksServer> {
        let ca = TestCa::new("sod-testkit JWKS CA");
        let leaf = ca.issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let mut config = leaf.server_config_owned();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            jwks: Mutex::new(jwks),
            status: AtomicU16::new(200),
            mode: Mutex::new(JwksMode::Serve),
            requests: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&shared)));
        Ok(JwksServer {
            addr,
            shared,
            ca,
            task: task.abort_handle(),
        })
    }

    /// The JWKS URL: `https://127.0.0.1:PORT/jwks.json`.
    pub fn url(&self) -> String {
        format!("https://{}{JWKS_PATH}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `jwks` from the next request on.
    pub fn set_jwks(&self, jwks: Value) {
        *self
            .shared
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = jwks;
    }

    /// Answers JWKS requests with `status` (200, the default, serves the JWKS; anything else
    /// serves a short text body), to simulate an outage.
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code (100–999).
    pub fn set_status(&self, status: u16) {
        assert!(
            StatusCode::from_u16(status).is_ok(),
            "invalid HTTP status {status}"
        );
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Answers JWKS requests as `mode` says from the next request on (see [`JwksMode`]).
    pub fn set_mode(&self, mode: JwksMode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// How many requests for [`JWKS_PATH`] have been received (whatever was answered; requests
    /// for other paths are not counted).
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The CA that issued the server certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// A rustls client configuration trusting only [`JwksServer::ca`].
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        self.ca.client_config()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // E.g. out of file descriptors: give other tasks a chance and retry.
                    tokio::task::yield_now().await;
                    continue;
                };
                connections.spawn(serve_connection(tcp, acceptor.clone(), Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |request: Request<Incoming>| {
        let response = shared.answer(&request);
        async move {
            match response {
                Some(response) => Ok::<_, Infallible>(response),
                None => std::future::pending().await,
            }
        }
    });
    // Connection errors (client went away, bad request) only end this connection.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64url_has_no_padding() {
        assert_eq!(b64url(b"\xff\xfe"), "__4");
        assert_eq!(b64url(b""), "");
    }

    #[test]
    fn unsigned_token_has_an_empty_signature() {
        let token = unsigned_token(&json!({"alg": "none"}), &json!({"sub": "x"}));
        assert!(token.ends_with('.'));
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn jwk_components_have_the_expected_sizes() {
        let issuer = OidcIssuer::new("https://issuer.test", "sod");
        let jwks = issuer.jwks();
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 3);
        let decode = |v: &Value| {
            URL_SAFE_NO_PAD
                .decode(v.as_str().expect("string"))
                .expect("base64url")
        };
        let rsa = &keys[0];
        assert_eq!(
            (rsa["kid"].as_str(), rsa["alg"].as_str()),
            (Some("rsa-1"), Some("RS256"))
        );
        assert_eq!(decode(&rsa["n"]).len(), 256);
        assert_eq!(decode(&rsa["e"]), vec![1, 0, 1]);
        let ec = &keys[1];
        assert_eq!(decode(&ec["x"]).len(), 32);
        assert_eq!(decode(&ec["y"]).len(), 32);
        let ed = &keys[2];
        assert_eq!(decode(&ed["x"]).len(), 32);
        assert!(keys.iter().all(|k| k["use"] == "sig"));
    }

    #[test]
    fn rotation_keeps_removed_keys_for_signing() {
        let mut issuer = OidcIssuer::new("https://issuer.test", "sod");
        issuer.add_key(KeyAlg::Es256, "ec-2");
        issuer.remove_key("rsa-1");
        let kids: Vec<_> = issuer.jwks()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(kids, ["ec-1", "ed-1", "ec-2"]);
        let token = issuer.token().sign();
        assert_eq!(token.split('.').count(), 3);
        assert!(issuer.key("rsa-1").is_some());
        assert!(issuer.key("nope").is_none());
    }

    #[test]
    fn header_overrides_apply() {
        let issuer = OidcIssuer::new("https://issuer.test", "sod");
        let (header, claims) = issuer
            .token()
            .kid("ec-1")
            .header_claim("typ", Value::Null)
            .header_claim("alg", json!("RS256"))
            .remove_claim("sub")
            .groups(&["dba"])
            .parts();
        assert_eq!(header, json!({"alg": "RS256", "kid": "ec-1"}));
        assert!(claims.get("sub").is_none());
        assert_eq!(claims["groups"], json!(["dba"]));
    }
}
