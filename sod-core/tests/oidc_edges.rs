//! OIDC verification at the edges (issue 21): a hostile or broken JWKS endpoint (too large,
//! stalled, trickling, redirecting), key material smuggled in the token header (`jwk`, `jku`,
//! `x5c`, `x5u`), time edges (`exp`, `nbf`, `iat` and the leeway) checked with an injected clock,
//! and a storm of unknown `kid`s. Every peer is real: the test kit's HTTPS JWKS server, or a TCP
//! listener on loopback that never answers.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sod_core::clock::Clock;
use sod_core::identity::{AuthError, JwksSource, OidcConfig, OidcVerifier, Verifier};
use sod_core::{Credential, Identity};
use sod_testkit::{JwksMode, JwksServer, KeyAlg, OidcIssuer, TestCa, TokenBuilder, b64url};

const ISS: &str = "https://idp.test/realms/ops";
const AUD: &str = "sod-gateway";
/// A fixed instant for the time-edge tests (2030-03-17), far from the real clock.
const T: u64 = 1_900_000_000;

async fn verify(v: &impl Verifier, token: &str) -> Result<Identity, AuthError> {
    v.verify(&Credential::new(token)).await
}

/// Fails if `msg` quotes any part of `token`.
fn assert_no_token(msg: &str, token: &str) {
    for part in token.split('.') {
        assert!(
            part.len() < 8 || !msg.contains(part),
            "the message quotes the token: {msg}"
        );
    }
}

fn https_config(server: &JwksServer) -> OidcConfig {
    OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url: server.url(),
            tls: Some(server.client_tls()),
        },
    )
}

/// A clock the test moves by hand, starting at `T`.
struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(T))))
    }

    fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Clock::from_fn(move || *now.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets the time to `T + offset` seconds (negative: before `T`).
    fn set(&self, offset: i64) {
        let at = if offset >= 0 {
            UNIX_EPOCH + Duration::from_secs(T + offset.unsigned_abs())
        } else {
            UNIX_EPOCH + Duration::from_secs(T - offset.unsigned_abs())
        };
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

/// A token issued at `T + offset` seconds, valid for 300 s.
fn token_at(iss: &OidcIssuer, offset: i64) -> String {
    let iat = T
        .checked_add_signed(offset)
        .expect("a time after the epoch");
    iss.token()
        .kind("executor")
        .claim("iat", json!(iat))
        .claim("exp", json!(iat + 300))
        .sign()
}

// === JWKS endpoint edges ===

/// A JWKS document padded (with a field no verifier reads) to more than `len` bytes.
fn padded_jwks(iss: &OidcIssuer, len: usize) -> Value {
    let mut jwks = iss.jwks();
    jwks["padding"] = json!("A".repeat(len));
    jwks
}

#[tokio::test]
async fn a_jwks_over_the_size_limit_is_refused() {
    let iss = OidcIssuer::new(ISS, AUD);
    // Over the default limit of 1 MiB, with a Content-Length.
    let server = JwksServer::start(padded_jwks(&iss, 1024 * 1024))
        .await
        .expect("server");
    let v = OidcVerifier::new(https_config(&server)).expect("config");
    assert_eq!(
        v.config().max_jwks_len,
        1024 * 1024,
        "the documented default"
    );
    let token = iss.token().kind("executor").sign();
    let err = verify(&v, &token).await.expect_err("must be refused");
    assert!(
        matches!(&err, AuthError::KeysUnavailable(m) if m.contains("larger than the limit of 1048576 bytes")),
        "{err}"
    );
    assert_no_token(&err.to_string(), &token);
    assert_eq!(server.request_count(), 1);

    // The same document under a raised limit loads: the limit is what refused it.
    let mut cfg = https_config(&server);
    cfg.max_jwks_len = 2 * 1024 * 1024;
    let v = OidcVerifier::new(cfg).expect("config");
    verify(&v, &token).await.expect("within the raised limit");

    // A body without Content-Length (streamed) is cut at the limit, not read on.
    server.set_mode(JwksMode::Trickle(Duration::from_millis(1)));
    let mut cfg = https_config(&server);
    cfg.max_jwks_len = 16;
    let v = OidcVerifier::new(cfg).expect("config");
    let err = v.refresh_keys().await.expect_err("must be refused");
    assert!(
        matches!(&err, AuthError::KeysUnavailable(m) if m.contains("larger than the limit of 16 bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn a_jwks_file_is_read_up_to_the_limit_only() {
    let iss = OidcIssuer::new(ISS, AUD);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let doc = iss.jwks().to_string();
    let token = iss.token().kind("executor").sign();
    let with_limit = |limit: usize| {
        let mut cfg = OidcConfig::new(ISS, AUD, JwksSource::File(path.clone()));
        cfg.max_jwks_len = limit;
        OidcVerifier::new(cfg).expect("config")
    };
    // Exactly at the limit (padded with trailing whitespace, still valid JSON): accepted.
    let limit = doc.len() + 100;
    std::fs::write(&path, format!("{doc}{}", " ".repeat(100))).expect("write");
    verify(&with_limit(limit), &token)
        .await
        .expect("a document of exactly max_jwks_len bytes loads");
    // One byte more: refused, saying why.
    std::fs::write(&path, format!("{doc}{}", " ".repeat(101))).expect("write");
    let err = verify(&with_limit(limit), &token)
        .await
        .expect_err("must be refused");
    assert!(
        matches!(&err, AuthError::KeysUnavailable(m) if m.contains("larger than the limit")),
        "{err}"
    );
}

/// A TCP listener on loopback that accepts connections and never sends a byte.
async fn silent_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (format!("https://{addr}/jwks.json"), accepted)
}

/// Runs `n` verifications of `token` at once; returns their results and how long all took.
async fn concurrently(v: &OidcVerifier, token: &str, n: usize) -> (Vec<AuthError>, Duration) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let v = v.clone();
        let token = token.to_owned();
        tasks.spawn(async move { verify(&v, &token).await });
    }
    let mut errors = Vec::new();
    while let Some(result) = tasks.join_next().await {
        errors.push(result.expect("no panic").expect_err("must be refused"));
    }
    (errors, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_jwks_endpoint_fails_within_the_fetch_timeout_with_one_fetch() {
    let iss = OidcIssuer::new(ISS, AUD);
    let token = iss.token().kind("executor").sign();
    let timeout = Duration::from_millis(300);

    // 1. The TCP connection opens but the TLS handshake never gets an answer.
    let (url, accepted) = silent_listener().await;
    let ca = TestCa::new("unused");
    let mut cfg = OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url,
            tls: Some(ca.client_config()),
        },
    );
    cfg.fetch_timeout = timeout;
    let v = OidcVerifier::new(cfg).expect("config");
    let (errors, took) = concurrently(&v, &token, 50).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    for err in &errors {
        assert!(
            matches!(err, AuthError::KeysUnavailable(m) if m.contains("no complete answer within 300ms")),
            "{err}"
        );
        assert_no_token(&err.to_string(), &token);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "concurrent verifications share one fetch"
    );

    // 2. The request is read and never answered; 3. the answer trickles one byte at a time.
    for mode in [
        JwksMode::Stall,
        JwksMode::Trickle(Duration::from_millis(20)),
    ] {
        let server = JwksServer::start(iss.jwks()).await.expect("server");
        server.set_mode(mode.clone());
        let mut cfg = https_config(&server);
        cfg.fetch_timeout = timeout;
        let v = OidcVerifier::new(cfg).expect("config");
        let (errors, took) = concurrently(&v, &token, 50).await;
        assert!(took < Duration::from_secs(5), "{mode:?} took {took:?}");
        for err in &errors {
            assert!(
                matches!(err, AuthError::KeysUnavailable(m) if m.contains("fetch_timeout")),
                "{mode:?}: {err}"
            );
        }
        assert_eq!(server.request_count(), 1, "{mode:?}: one fetch");
        // Once the issuer answers again, the keys load.
        server.set_mode(JwksMode::Serve);
        v.refresh_keys().await.expect("the issuer is back");
        verify(&v, &token).await.expect("verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fetches_do_not_pile_up_when_the_timeout_exceeds_the_rate_limit() {
    // A fetch timeout longer than the minimum interval between fetches: the verifications
    // queued behind a fetch that timed out take its outcome (single flight), and the rate
    // limit counts from the end of that fetch, so the next verification does not start another
    // at once either.
    let iss = OidcIssuer::new(ISS, AUD);
    let token = iss.token().kind("executor").sign();
    let (url, accepted) = silent_listener().await;
    let ca = TestCa::new("unused");
    let mut cfg = OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url,
            tls: Some(ca.client_config()),
        },
    );
    cfg.fetch_timeout = Duration::from_millis(300);
    cfg.refresh_min_interval = Duration::from_millis(250);
    let v = OidcVerifier::new(cfg).expect("config");
    let (errors, took) = concurrently(&v, &token, 20).await;
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, AuthError::KeysUnavailable(m) if m.contains("fetch_timeout"))),
        "{errors:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one fetch, took {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let err = verify(&v, &token).await.expect_err("must be refused");
    assert!(matches!(err, AuthError::KeysUnavailable(_)), "{err}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "within the interval after the failed fetch ended"
    );
}

#[tokio::test]
async fn redirects_from_the_jwks_url_are_not_followed() {
    let iss = OidcIssuer::new(ISS, AUD);
    // Where the redirect leads: a JWKS with the attacker's keys, on the same CA and host.
    let attacker = OidcIssuer::new(ISS, AUD);
    let target = JwksServer::start(attacker.jwks()).await.expect("server");
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    for location in [target.url(), server.url().replace("https:", "http:")] {
        server.set_mode(JwksMode::Redirect(location.clone()));
        let v = OidcVerifier::new(https_config(&server)).expect("config");
        for token in [
            attacker.token().kind("executor").sign(),
            iss.token().kind("executor").sign(),
        ] {
            let err = verify(&v, &token).await.expect_err("must be refused");
            assert!(
                matches!(&err, AuthError::KeysUnavailable(m)
                    if m.contains("HTTP 302") && m.contains("redirects are not followed")),
                "{location}: {err}"
            );
        }
    }
    assert_eq!(target.request_count(), 0, "the redirect was not followed");
    assert!(server.request_count() >= 2);
    // The pinned URL itself still works once it answers.
    server.set_mode(JwksMode::Serve);
    let v = OidcVerifier::new(https_config(&server)).expect("config");
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("verified");
}

// === Key material in the token header ===

/// An ES256 JWS signed with a certificate's own key, carrying that certificate in `x5c`.
fn x5c_token(kid: Option<&str>, claims: &Value) -> String {
    let ca = TestCa::new("attacker CA");
    let leaf = ca.issue(&["idp.test"], &[]);
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        leaf.key_der().secret_der(),
    )
    .expect("the leaf key is P-256");
    let mut header = json!({
        "alg": "ES256",
        "typ": "JWT",
        "x5c": [STANDARD.encode(leaf.cert_der()), STANDARD.encode(ca.cert_der())],
    });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", b64url(sig.as_ref()))
}

#[tokio::test]
async fn key_material_in_the_token_header_is_ignored() {
    let iss = OidcIssuer::new(ISS, AUD);
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let mut attacker = OidcIssuer::new(ISS, AUD);
    attacker.add_key(KeyAlg::Rs256, "attacker-1");
    let attacker_server = JwksServer::start(attacker.jwks()).await.expect("server");
    let mut cfg = https_config(&server);
    cfg.refresh_min_interval = Duration::ZERO;
    let v = OidcVerifier::new(cfg).expect("config");

    // Every way a header can name a key: the key itself, a URL of a key set, a certificate URL.
    fn smuggle<'a>(
        b: TokenBuilder<'a>,
        attacker: &OidcIssuer,
        kid: &str,
        url: &str,
    ) -> TokenBuilder<'a> {
        let jwk = attacker.key(kid).map(|k| k.jwk()).unwrap_or(Value::Null);
        b.kind("human")
            .subject("root")
            .header_claim("jwk", jwk)
            .header_claim("jku", json!(url))
            .header_claim("x5u", json!(url))
    }
    let url = attacker_server.url();
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        // The attacker's key under a kid the issuer uses: the pinned key does not verify it.
        let token = smuggle(attacker.token().kid(kid), &attacker, kid, &url).sign();
        let err = verify(&v, &token).await.expect_err("must be refused");
        assert_eq!(err, AuthError::BadSignature, "{kid}");
        assert_no_token(&err.to_string(), &token);
        // The issuer's own token with the same header fields verifies: they are ignored, not
        // a reason to refuse.
        let token = smuggle(iss.token().kid(kid), &attacker, kid, &url).sign();
        verify(&v, &token)
            .await
            .unwrap_or_else(|e| panic!("{kid}: {e}"));
    }
    // Under a kid of its own: unknown, even though the header carries the key and its URL.
    let token = smuggle(
        attacker.token().kid("attacker-1"),
        &attacker,
        "attacker-1",
        &url,
    )
    .sign();
    assert_eq!(
        verify(&v, &token).await.expect_err("must be refused"),
        AuthError::UnknownKey("attacker-1".into())
    );
    // Without a kid, the header's `jwk` is not taken as the key.
    let token = smuggle(attacker.token(), &attacker, "rsa-1", &url)
        .header_claim("kid", Value::Null)
        .sign();
    assert!(matches!(
        verify(&v, &token).await,
        Err(AuthError::Malformed(_))
    ));
    // Malformed key headers are refused, not skipped over.
    for (field, value) in [("jwk", json!("garbage")), ("x5c", json!(7))] {
        let token = iss
            .token()
            .kind("executor")
            .header_claim(field, value)
            .sign();
        let err = verify(&v, &token).await.expect_err("must be refused");
        assert!(
            matches!(&err, AuthError::Malformed(m) if m.contains("wrong type")),
            "{field}: {err}"
        );
    }
    // A self-consistent x5c chain (signed by its leaf's key) is not a key source either.
    let claims = iss.token().kind("human").parts().1;
    assert_eq!(
        verify(&v, &x5c_token(Some("ec-1"), &claims))
            .await
            .expect_err("must be refused"),
        AuthError::BadSignature
    );
    assert_eq!(
        verify(&v, &x5c_token(Some("x5c-leaf"), &claims))
            .await
            .expect_err("must be refused"),
        AuthError::UnknownKey("x5c-leaf".into())
    );
    assert!(matches!(
        verify(&v, &x5c_token(None, &claims)).await,
        Err(AuthError::Malformed(_))
    ));
    assert_eq!(
        attacker_server.request_count(),
        0,
        "the URLs in the header were never fetched"
    );
    assert!(server.request_count() >= 1);
}

// === Time edges, with an injected clock ===

#[tokio::test]
async fn exp_nbf_and_iat_edges_follow_the_injected_clock() {
    let iss = OidcIssuer::new(ISS, AUD);
    let clock = ManualClock::new();
    let mut cfg = OidcConfig::new(ISS, AUD, JwksSource::Static(iss.jwks().to_string()));
    cfg.clock = clock.clock();
    assert_eq!(
        cfg.leeway,
        Duration::from_secs(30),
        "the documented default"
    );
    let v = OidcVerifier::new(cfg.clone()).expect("config");
    let at = |exp: u64, nbf: Option<u64>, iat: Option<u64>| {
        let mut b = iss.token().kind("executor").claim("exp", json!(exp));
        b = match iat {
            Some(iat) => b.claim("iat", json!(iat)),
            None => b.remove_claim("iat"),
        };
        if let Some(nbf) = nbf {
            b = b.claim("nbf", json!(nbf));
        }
        b.sign()
    };

    // `exp` = T: valid until just before T + leeway.
    let token = at(T, None, None);
    clock.set(29);
    verify(&v, &token).await.expect("exp + leeway not reached");
    clock.set(30);
    assert_eq!(
        verify(&v, &token).await.expect_err("at exp + leeway"),
        AuthError::Expired
    );
    // `nbf` = T: valid from T - leeway.
    let token = at(T + 3600, Some(T), None);
    clock.set(-30);
    verify(&v, &token).await.expect("nbf - leeway reached");
    clock.set(-31);
    assert_eq!(
        verify(&v, &token).await.expect_err("before nbf - leeway"),
        AuthError::NotYetValid
    );
    // `iat` = T: refused while later than now + leeway.
    let token = at(T + 3600, None, Some(T));
    clock.set(-30);
    verify(&v, &token).await.expect("iat within the leeway");
    clock.set(-31);
    let err = verify(&v, &token).await.expect_err("iat in the future");
    assert_eq!(err, AuthError::IssuedInFuture);
    assert!(err.to_string().contains("iat"), "{err}");
    assert_no_token(&err.to_string(), &token);
    // Far in the future: a forged or broken token, however long it is valid.
    clock.set(0);
    let far = at(T + 10 * 365 * 86_400, None, Some(T + 365 * 86_400));
    assert_eq!(
        verify(&v, &far).await.expect_err("iat a year ahead"),
        AuthError::IssuedInFuture
    );

    // Without leeway the edges are exact.
    let mut strict = cfg.clone();
    strict.leeway = Duration::ZERO;
    let strict = OidcVerifier::new(strict).expect("config");
    let token = at(T, Some(T - 10), Some(T - 10));
    clock.set(-1);
    verify(&strict, &token)
        .await
        .expect("one second before exp");
    clock.set(0);
    assert_eq!(
        verify(&strict, &token).await.expect_err("at exp"),
        AuthError::Expired
    );
    clock.set(-11);
    assert_eq!(
        verify(&strict, &token).await.expect_err("before nbf"),
        AuthError::NotYetValid
    );

    // A claim the JWT decoder itself types fails there, saying so.
    let token = iss
        .token()
        .kind("executor")
        .claim("exp", json!(T + 300))
        .claim("nbf", json!([T]))
        .sign();
    let err = verify(&v, &token).await.expect_err("must be refused");
    assert!(
        matches!(&err, AuthError::Malformed(m) if m.contains("wrong type")),
        "{err}"
    );
    // Times that are not whole seconds since the epoch are refused by name.
    clock.set(0);
    for (name, value) in [
        ("iat", json!("yesterday")),
        ("iat", json!(-5)),
        ("nbf", json!(1.5)),
        ("exp", json!(-1)),
        ("exp", json!(null)),
    ] {
        let token = iss
            .token()
            .kind("executor")
            .claim("exp", json!(T + 300))
            .claim(name, value.clone())
            .sign();
        assert_eq!(
            verify(&v, &token).await.expect_err("must be refused"),
            AuthError::Claim(name.into()),
            "{name} = {value}"
        );
    }
}

#[tokio::test]
async fn the_verifier_reads_the_injected_clock_not_the_system_clock() {
    let iss = OidcIssuer::new(ISS, AUD);
    // Issued now by the system clock, valid for 300 s.
    let token = iss.token().kind("executor").sign();
    let with_clock = |clock: Clock| {
        let mut cfg = OidcConfig::new(ISS, AUD, JwksSource::Static(iss.jwks().to_string()));
        cfg.clock = clock;
        OidcVerifier::new(cfg).expect("config")
    };
    verify(&with_clock(Clock::system()), &token)
        .await
        .expect("valid by the system clock");
    let year = Duration::from_secs(365 * 86_400);
    assert_eq!(
        verify(&with_clock(Clock::fixed(SystemTime::now() + year)), &token)
            .await
            .expect_err("a year later"),
        AuthError::Expired
    );
    assert_eq!(
        verify(&with_clock(Clock::fixed(SystemTime::now() - year)), &token)
            .await
            .expect_err("a year earlier"),
        AuthError::IssuedInFuture
    );
}

#[tokio::test]
async fn the_key_cache_ages_by_the_injected_clock() {
    let iss = OidcIssuer::new(ISS, AUD);
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let clock = ManualClock::new();
    let mut cfg = https_config(&server);
    cfg.clock = clock.clock();
    cfg.refresh_min_interval = Duration::ZERO;
    assert_eq!(cfg.refresh_max_age, Duration::from_secs(15 * 60));
    let v = OidcVerifier::new(cfg).expect("config");
    verify(&v, &token_at(&iss, 0)).await.expect("first load");
    assert_eq!(server.request_count(), 1);
    clock.set(14 * 60);
    verify(&v, &token_at(&iss, 14 * 60)).await.expect("cached");
    assert_eq!(server.request_count(), 1, "14 minutes old: still fresh");
    clock.set(15 * 60);
    verify(&v, &token_at(&iss, 15 * 60))
        .await
        .expect("refreshed");
    assert_eq!(server.request_count(), 2, "15 minutes old: refreshed");
    // A clock that jumps back before the load makes the keys stale, not fresh for ever.
    clock.set(-3600);
    verify(&v, &token_at(&iss, -3600))
        .await
        .expect("valid at T - 1 h");
    assert_eq!(server.request_count(), 3, "a clock jump back refreshes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keys_still_verify_while_the_jwks_endpoint_stalls() {
    let iss = OidcIssuer::new(ISS, AUD);
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let clock = ManualClock::new();
    let mut cfg = https_config(&server);
    cfg.clock = clock.clock();
    cfg.fetch_timeout = Duration::from_millis(300);
    // No rate limit: only single flight keeps the waiting verifications from each fetching.
    cfg.refresh_min_interval = Duration::ZERO;
    let v = OidcVerifier::new(cfg).expect("config");
    v.refresh_keys().await.expect("first load");
    // The keys age out while the issuer hangs: one refresh is tried, bounded by the timeout,
    // and every verification waiting on it goes on with the last good keys.
    clock.set(16 * 60);
    server.set_mode(JwksMode::Stall);
    let token = token_at(&iss, 16 * 60);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let v = v.clone();
        let token = token.clone();
        tasks.spawn(async move { verify(&v, &token).await });
    }
    while let Some(result) = tasks.join_next().await {
        result
            .expect("no panic")
            .expect("the last good keys verify");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(server.request_count(), 2, "one refresh for all");
}

// === A storm of unknown kids ===

/// 200 tokens signed by an attacker key, each under its own unknown kid, verified at once.
async fn unknown_kid_storm(v: &OidcVerifier) -> Duration {
    let mut attacker = OidcIssuer::new(ISS, AUD);
    attacker.add_key(KeyAlg::Es256, "storm");
    let tokens: Vec<(String, String)> = (0..200)
        .map(|i| {
            let kid = format!("storm-{i}-{:x}", i * 7919 + 13);
            let token = attacker
                .token()
                .kid("storm")
                .kind("executor")
                .header_claim("kid", json!(kid))
                .sign();
            (kid, token)
        })
        .collect();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (kid, token) in tokens {
        let v = v.clone();
        tasks.spawn(async move { (kid, verify(&v, &token).await) });
    }
    let mut refused = 0;
    while let Some(joined) = tasks.join_next().await {
        let (kid, result) = joined.expect("no panic");
        assert_eq!(
            result.expect_err("must be refused"),
            AuthError::UnknownKey(kid)
        );
        refused += 1;
    }
    assert_eq!(refused, 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_unknown_kids_fetches_the_keys_once() {
    let iss = OidcIssuer::new(ISS, AUD);
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    // Default rate limit (30 s) and a cold cache: the storm itself triggers the first load.
    let v = OidcVerifier::new(https_config(&server)).expect("config");
    let took = unknown_kid_storm(&v).await;
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        server.request_count(),
        1,
        "one load; the unknown kids are rate-limited"
    );
    // The issuer's own tokens still verify after the storm, without another fetch.
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("verified");
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn header_values_quoted_in_errors_are_bounded_and_printable() {
    let iss = OidcIssuer::new(ISS, AUD);
    let v = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Static(iss.jwks().to_string()),
    ))
    .expect("config");
    let long = format!("{}\n2030-01-01 INFO forged log line", "k".repeat(5000));
    let token = iss
        .token()
        .kind("executor")
        .header_claim("kid", json!(long))
        .sign();
    let AuthError::UnknownKey(kid) = verify(&v, &token).await.expect_err("must be refused") else {
        panic!("expected UnknownKey");
    };
    assert_eq!(kid, "k".repeat(64));
    let token = iss
        .token()
        .kind("executor")
        .header_claim("kid", json!("a\nb\r\u{1b}[31mc"))
        .sign();
    assert_eq!(
        verify(&v, &token).await.expect_err("must be refused"),
        AuthError::UnknownKey("a?b??[31mc".into())
    );
    let token = iss
        .token()
        .kind("executor")
        .header_claim("alg", json!("HS256\nforged"))
        .sign();
    assert_eq!(
        verify(&v, &token).await.expect_err("must be refused"),
        AuthError::UnsupportedAlgorithm("HS256?forged".into())
    );
}
