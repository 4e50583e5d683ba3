//! OIDC verification against a real issuer fixture: keys generated and tokens signed by the test
//! kit (an independent implementation, aws-lc-rs directly), JWKS served over local HTTPS.
//! Every known way to get a forged or stale token accepted is tried here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::identity::{AuthError, JwksSource, OidcConfig, OidcVerifier, Verifier, Verifiers};
use sod_core::{AuthMethod, Credential, Identity, KindSet, OperationKind, PrincipalKind};
use sod_testkit::{JwksServer, KeyAlg, OidcIssuer, b64url, hs256_token, unsigned_token};

const ISS: &str = "https://idp.test/realms/ops";
const AUD: &str = "sod-gateway";

fn issuer() -> OidcIssuer {
    OidcIssuer::new(ISS, AUD)
}

fn config(iss: &OidcIssuer) -> OidcConfig {
    OidcConfig::new(ISS, AUD, JwksSource::Static(iss.jwks().to_string()))
}

fn verifier(iss: &OidcIssuer) -> OidcVerifier {
    OidcVerifier::new(config(iss)).expect("valid config")
}

async fn verify(v: &impl Verifier, token: &str) -> Result<Identity, AuthError> {
    v.verify(&Credential::new(token)).await
}

fn claims(iss: &OidcIssuer) -> serde_json::Value {
    iss.token().kind("executor").parts().1
}

#[tokio::test]
async fn accepts_each_pinned_algorithm_and_maps_claims() {
    let iss = issuer();
    let v = verifier(&iss);
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let token = iss
            .token()
            .kid(kid)
            .subject("bob")
            .kind("human")
            .groups(&["approvers", "dba"])
            .on_behalf_of("carol")
            .claim("jti", json!("tok-1"))
            .sign();
        let id = verify(&v, &token)
            .await
            .unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(id.principal.id, "bob");
        assert_eq!(id.principal.issuer, ISS);
        assert_eq!(id.principal.kind, PrincipalKind::Human);
        assert_eq!(id.principal.groups, ["approvers", "dba"]);
        assert_eq!(id.principal.on_behalf_of.as_deref(), Some("carol"));
        assert_eq!(id.method, AuthMethod::Oidc);
        assert_eq!(id.credential_id.as_deref(), Some("tok-1"));
        assert!(id.capability.is_none());
        assert!(id.expires_at.is_some());
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let iss = issuer();
    let token = unsigned_token(&json!({"alg": "none", "kid": "rsa-1"}), &claims(&iss));
    assert_eq!(
        verify(&verifier(&iss), &token)
            .await
            .expect_err("must be refused"),
        AuthError::UnsupportedAlgorithm("none".into())
    );
    // Spelling variants do not slip through either.
    for alg in ["None", "NONE", "nOnE", ""] {
        let token = unsigned_token(&json!({"alg": alg, "kid": "rsa-1"}), &claims(&iss));
        assert!(matches!(
            verify(&verifier(&iss), &token).await,
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // The classic key-confusion attack: HMAC the token with the RSA public key a verifier
    // would load for `rsa-1`.
    let iss = issuer();
    let public = iss.key("rsa-1").expect("key").jwk();
    for secret in [
        public.to_string().into_bytes(),
        public["n"].as_str().expect("n").as_bytes().to_vec(),
    ] {
        let token = hs256_token(
            &secret,
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &claims(&iss),
        );
        assert_eq!(
            verify(&verifier(&iss), &token)
                .await
                .expect_err("must be refused"),
            AuthError::UnsupportedAlgorithm("HS256".into())
        );
    }
}

#[tokio::test]
async fn the_key_decides_the_algorithm_not_the_token() {
    // Signed by the EC key, but the header claims the RSA key id: pinned RS256 ≠ ES256.
    let iss = issuer();
    let token = iss
        .token()
        .kid("ec-1")
        .kind("executor")
        .header_claim("kid", json!("rsa-1"))
        .sign();
    assert!(matches!(
        verify(&verifier(&iss), &token).await,
        Err(AuthError::AlgorithmMismatch { kid, .. }) if kid == "rsa-1"
    ));
}

#[tokio::test]
async fn expiry_and_not_before_with_small_leeway() {
    let iss = issuer();
    let v = verifier(&iss);
    let expired = iss.token().kind("executor").expires_in(-120).sign();
    assert_eq!(
        verify(&v, &expired).await.expect_err("must be refused"),
        AuthError::Expired
    );
    let just_expired = iss.token().kind("executor").expires_in(-5).sign();
    verify(&v, &just_expired)
        .await
        .expect("within the 30 s leeway");
    let future = iss.token().kind("executor").not_before_in(300).sign();
    assert_eq!(
        verify(&v, &future).await.expect_err("must be refused"),
        AuthError::NotYetValid
    );
    let no_exp = iss.token().kind("executor").remove_claim("exp").sign();
    assert_eq!(
        verify(&v, &no_exp).await.expect_err("must be refused"),
        AuthError::Claim("exp".into())
    );
}

#[tokio::test]
async fn issuer_and_audience_are_checked() {
    let iss = issuer();
    let v = verifier(&iss);
    let wrong_iss = iss
        .token()
        .kind("executor")
        .issuer("https://evil.test")
        .sign();
    assert_eq!(
        verify(&v, &wrong_iss).await.expect_err("must be refused"),
        AuthError::WrongIssuer
    );
    let array_iss = iss
        .token()
        .kind("executor")
        .claim("iss", json!([ISS]))
        .sign();
    assert_eq!(
        verify(&v, &array_iss).await.expect_err("must be refused"),
        AuthError::WrongIssuer
    );
    let no_iss = iss.token().kind("executor").remove_claim("iss").sign();
    assert!(verify(&v, &no_iss).await.is_err());
    let wrong_aud = iss
        .token()
        .kind("executor")
        .audience("another-service")
        .sign();
    assert_eq!(
        verify(&v, &wrong_aud).await.expect_err("must be refused"),
        AuthError::WrongAudience
    );
    let no_aud = iss.token().kind("executor").remove_claim("aud").sign();
    assert_eq!(
        verify(&v, &no_aud).await.expect_err("must be refused"),
        AuthError::Claim("aud".into())
    );
    let multi_aud = iss
        .token()
        .kind("executor")
        .claim("aud", json!(["x", AUD]))
        .sign();
    verify(&v, &multi_aud)
        .await
        .expect("one of several audiences is ours");
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let mut iss = issuer();
    let v = verifier(&iss);
    iss.add_key(KeyAlg::Rs256, "rsa-unpublished");
    let token = iss.token().kid("rsa-unpublished").kind("executor").sign();
    assert_eq!(
        verify(&v, &token).await.expect_err("must be refused"),
        AuthError::UnknownKey("rsa-unpublished".into())
    );
}

#[tokio::test]
async fn oct_keys_in_the_jwks_are_rejected() {
    let iss = issuer();
    let secret = b"a-shared-secret-that-must-not-work";
    let mut jwks = iss.jwks();
    jwks["keys"]
        .as_array_mut()
        .expect("keys")
        .push(json!({"kty": "oct", "kid": "hmac-1", "alg": "HS256", "k": b64url(secret)}));
    let v = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Static(jwks.to_string()),
    ))
    .expect("the other keys still load");
    let hs = hs256_token(
        secret,
        &json!({"alg": "HS256", "kid": "hmac-1"}),
        &claims(&iss),
    );
    assert_eq!(
        verify(&v, &hs).await.expect_err("must be refused"),
        AuthError::UnsupportedAlgorithm("HS256".into())
    );
    // Even under an accepted algorithm, the oct key is not usable.
    let rs = iss
        .token()
        .kid("rsa-1")
        .kind("executor")
        .header_claim("kid", json!("hmac-1"))
        .sign();
    assert!(matches!(
        verify(&v, &rs).await,
        Err(AuthError::KeyRejected { kid, why }) if kid == "hmac-1" && why.contains("oct")
    ));
    // A key whose declared algorithm contradicts its type is rejected too.
    let mut jwks = iss.jwks();
    jwks["keys"][0]["alg"] = json!("HS256");
    let v = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Static(jwks.to_string()),
    ))
    .expect("config");
    let token = iss.token().kind("executor").sign();
    assert!(matches!(
        verify(&v, &token).await,
        Err(AuthError::KeyRejected { .. })
    ));
}

#[tokio::test]
async fn tampered_payload_and_signature_are_refused() {
    let iss = issuer();
    let v = verifier(&iss);
    let token = iss.token().kind("planner").subject("agent").sign();
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims(&iss);
    forged_claims["sod_kind"] = json!("human");
    forged_claims["sub"] = json!("root");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(forged_claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        verify(&v, &forged).await.expect_err("must be refused"),
        AuthError::BadSignature
    );
    let mut sig = parts[2].as_bytes().to_vec();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).expect("ascii")
    );
    assert_eq!(
        verify(&v, &bad_sig).await.expect_err("must be refused"),
        AuthError::BadSignature
    );
    let no_sig = format!("{}.{}.", parts[0], parts[1]);
    assert!(verify(&v, &no_sig).await.is_err());
}

#[tokio::test]
async fn header_oddities_are_refused() {
    let iss = issuer();
    let v = verifier(&iss);
    let crit = iss
        .token()
        .kind("executor")
        .header_claim("crit", json!(["exp"]))
        .sign();
    assert!(matches!(
        verify(&v, &crit).await,
        Err(AuthError::Malformed(_))
    ));
    let numeric_kid = iss
        .token()
        .kind("executor")
        .header_claim("kid", json!(7))
        .sign();
    assert!(matches!(
        verify(&v, &numeric_kid).await,
        Err(AuthError::Malformed(_))
    ));
    let huge = format!("eyJ{}", "A".repeat(20_000));
    assert!(matches!(
        verify(&v, &huge).await,
        Err(AuthError::Malformed(_))
    ));
    // Not a JWT at all: not recognized, so a chain may try another verifier.
    assert_eq!(
        verify(&v, "hunter2").await.expect_err("must be refused"),
        AuthError::NotRecognized
    );
}

#[tokio::test]
async fn tokens_without_kid_need_a_single_key() {
    let iss = issuer();
    let token = iss
        .token()
        .kind("executor")
        .header_claim("kid", serde_json::Value::Null)
        .sign();
    assert!(matches!(
        verify(&verifier(&iss), &token).await,
        Err(AuthError::Malformed(_))
    ));
    let mut only_rsa = iss.jwks();
    let keys = only_rsa["keys"].as_array_mut().expect("keys");
    keys.retain(|k| k["kid"] == "rsa-1");
    keys[0].as_object_mut().expect("object").remove("kid");
    let v = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Static(only_rsa.to_string()),
    ))
    .expect("config");
    verify(&v, &token)
        .await
        .expect("the single key verifies it");
}

#[tokio::test]
async fn principal_kind_must_be_stated_or_defaulted() {
    let iss = issuer();
    let token = iss.token().sign();
    assert_eq!(
        verify(&verifier(&iss), &token)
            .await
            .expect_err("must be refused"),
        AuthError::Claim("sod_kind".into())
    );
    let bad = iss.token().kind("root").sign();
    assert_eq!(
        verify(&verifier(&iss), &bad)
            .await
            .expect_err("must be refused"),
        AuthError::Claim("sod_kind".into())
    );
    let mut cfg = config(&iss);
    cfg.default_kind = Some(PrincipalKind::Human);
    let v = OidcVerifier::new(cfg).expect("config");
    assert_eq!(
        verify(&v, &token).await.expect("defaulted").principal.kind,
        PrincipalKind::Human
    );
}

#[tokio::test]
async fn claim_paths_are_configurable() {
    let iss = issuer();
    let mut cfg = config(&iss);
    cfg.subject_claim = "preferred_username".into();
    cfg.groups_claim = Some("/realm_access/roles".into());
    cfg.on_behalf_of_claim = Some("https://sod.dev/on_behalf_of".into());
    cfg.kind_claim = Some("/sod/kind".into());
    let v = OidcVerifier::new(cfg).expect("config");
    let token = iss
        .token()
        .claim("preferred_username", json!("agent-7"))
        .claim("realm_access", json!({"roles": ["planners"]}))
        .claim("https://sod.dev/on_behalf_of", json!("alice"))
        .claim("sod", json!({"kind": "planner"}))
        .sign();
    let p = verify(&v, &token).await.expect("verified").principal;
    assert_eq!(p.id, "agent-7");
    assert_eq!(p.groups, ["planners"]);
    assert_eq!(p.on_behalf_of.as_deref(), Some("alice"));
    assert_eq!(p.kind, PrincipalKind::PLANNER);
    let wrong_type = iss
        .token()
        .claim("preferred_username", json!("agent-7"))
        .claim("realm_access", json!({"roles": "planners"}))
        .claim("sod", json!({"kind": "planner"}))
        .claim("groups", json!(5))
        .sign();
    verify(&v, &wrong_type)
        .await
        .expect("a single group string is accepted");
    let bad_groups = iss
        .token()
        .claim("preferred_username", json!("agent-7"))
        .claim("realm_access", json!({"roles": [1, 2]}))
        .claim("sod", json!({"kind": "planner"}))
        .sign();
    assert_eq!(
        verify(&v, &bad_groups).await.expect_err("must be refused"),
        AuthError::Claim("/realm_access/roles".into())
    );
}

fn https_config(server: &JwksServer) -> OidcConfig {
    let mut cfg = OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url: server.url(),
            tls: Some(server.client_tls()),
        },
    );
    cfg.refresh_min_interval = Duration::ZERO;
    cfg
}

#[tokio::test]
async fn rotated_keys_are_picked_up_over_https() {
    let mut iss = issuer();
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let v = OidcVerifier::new(https_config(&server)).expect("config");
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("first key");
    assert_eq!(server.request_count(), 1);
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("cached");
    assert_eq!(server.request_count(), 1, "keys are cached");

    // The issuer rotates in a new key; a token under it triggers one refresh.
    iss.add_key(KeyAlg::Es256, "ec-2");
    server.set_jwks(iss.jwks());
    let id = verify(&v, &iss.token().kid("ec-2").kind("executor").sign())
        .await
        .expect("rotated key");
    assert_eq!(id.principal.id, "alice");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn retired_keys_stop_working_once_the_cache_ages_out() {
    let mut iss = issuer();
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let mut cfg = https_config(&server);
    cfg.refresh_max_age = Duration::ZERO;
    let v = OidcVerifier::new(cfg).expect("config");
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("valid");
    iss.remove_key("rsa-1");
    server.set_jwks(iss.jwks());
    assert_eq!(
        verify(&v, &iss.token().kind("executor").sign())
            .await
            .expect_err("must be refused"),
        AuthError::UnknownKey("rsa-1".into())
    );
}

#[tokio::test]
async fn refreshes_are_rate_limited() {
    let mut iss = issuer();
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let mut cfg = https_config(&server);
    cfg.refresh_min_interval = Duration::from_secs(3600);
    let v = OidcVerifier::new(cfg).expect("config");
    v.refresh_keys().await.expect("initial load");
    assert_eq!(server.request_count(), 1);
    iss.add_key(KeyAlg::Rs256, "rsa-attacker-spray");
    for _ in 0..20 {
        let token = iss
            .token()
            .kid("rsa-attacker-spray")
            .kind("executor")
            .sign();
        assert!(matches!(
            verify(&v, &token).await,
            Err(AuthError::UnknownKey(_))
        ));
    }
    assert_eq!(
        server.request_count(),
        1,
        "unknown kids must not hammer the issuer"
    );
}

#[tokio::test]
async fn an_issuer_outage_keeps_the_last_good_keys() {
    let iss = issuer();
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    let mut cfg = https_config(&server);
    cfg.refresh_max_age = Duration::ZERO;
    let v = OidcVerifier::new(cfg).expect("config");
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("valid");
    server.set_status(503);
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("stale keys still verify");
    assert!(server.request_count() >= 2, "a refresh was attempted");
}

#[tokio::test]
async fn unreachable_or_untrusted_jwks_fails_closed() {
    let iss = issuer();
    let server = JwksServer::start(iss.jwks()).await.expect("server");
    // A client that does not trust the server's CA: no keys, no tokens.
    let other_ca = sod_testkit::TestCa::new("someone else");
    let cfg = OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url: server.url(),
            tls: Some(other_ca.client_config()),
        },
    );
    let v = OidcVerifier::new(cfg).expect("config");
    assert!(matches!(
        v.refresh_keys().await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert!(
        verify(&v, &iss.token().kind("executor").sign())
            .await
            .is_err()
    );
    // Plain HTTP is refused outright.
    let http = OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Https {
            url: "http://127.0.0.1:1/jwks".into(),
            tls: None,
        },
    );
    assert!(matches!(
        OidcVerifier::new(http),
        Err(AuthError::KeysUnavailable(_))
    ));
}

#[tokio::test]
async fn keys_from_a_file() {
    let iss = issuer();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, iss.jwks().to_string()).expect("write");
    let v = OidcVerifier::new(OidcConfig::new(ISS, AUD, JwksSource::File(path))).expect("config");
    verify(&v, &iss.token().kind("executor").sign())
        .await
        .expect("verified from file");
    let missing = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::File(dir.path().join("nope")),
    ))
    .expect("config");
    assert!(
        verify(&missing, &iss.token().kind("executor").sign())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_chain_routes_by_format_and_never_falls_through_on_failure() {
    let iss = issuer();
    let authority = Arc::new(CapabilityAuthority::new(
        "sod",
        CapabilityKey::generate("k1"),
    ));
    let chain = Verifiers::new()
        .with(verifier(&iss))
        .with(authority.clone());
    let jwt = iss.token().kind("executor").sign();
    assert_eq!(
        verify(&chain, &jwt).await.expect("jwt").method,
        AuthMethod::Oidc
    );
    let cap = authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(60))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Read])),
        )
        .expect("issue")
        .encode();
    let id = verify(&chain, &cap).await.expect("capability");
    assert_eq!(id.method, AuthMethod::Capability);
    assert!(id.capability.is_some());
    // A damaged capability is refused as a capability, not retried as something else.
    let damaged = format!("{}x", &cap[..cap.len() - 1]);
    assert!(matches!(
        verify(&chain, &damaged).await,
        Err(AuthError::Capability(_))
    ));
    // An expired JWT is refused by the OIDC verifier, not passed to the next one.
    let expired = iss.token().kind("executor").expires_in(-600).sign();
    assert_eq!(
        verify(&chain, &expired).await.expect_err("must be refused"),
        AuthError::Expired
    );
    assert!(matches!(
        verify(&chain, "password123").await,
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        verify(&Verifiers::new(), &jwt).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn error_messages_never_contain_the_token() {
    let iss = issuer();
    let v = verifier(&iss);
    let token = iss.token().kind("executor").audience("nope").sign();
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    for t in [token, forged] {
        let msg = verify(&v, &t)
            .await
            .expect_err("must be refused")
            .to_string();
        for part in t.split('.') {
            assert!(part.is_empty() || !msg.contains(part), "{msg}");
        }
    }
}
