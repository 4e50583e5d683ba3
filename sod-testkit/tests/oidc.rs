//! The OIDC fixture: tokens cross-checked with `jsonwebtoken`, and the JWKS served over HTTPS to
//! a real hyper + rustls client.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sod_testkit::{JwksServer, KeyAlg, OidcIssuer, hs256_token, unsigned_token};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "sod-gateway";

fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 0;
    validation
}

fn decoding_key(jwks: &Value, kid: &str) -> DecodingKey {
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("no JWK {kid}"));
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("jsonwebtoken parses the JWK");
    DecodingKey::from_jwk(&jwk).expect("usable JWK")
}

fn verify(
    jwks: &Value,
    kid: &str,
    alg: Algorithm,
    token: &str,
) -> jsonwebtoken::errors::Result<Value> {
    jsonwebtoken::decode::<Value>(token, &decoding_key(jwks, kid), &validation(alg))
        .map(|d| d.claims)
}

#[test]
fn tokens_of_every_algorithm_verify_with_jsonwebtoken() {
    let issuer = OidcIssuer::new(ISSUER, AUDIENCE);
    assert_eq!(issuer.issuer(), ISSUER);
    assert_eq!(issuer.audience(), AUDIENCE);
    let jwks = issuer.jwks();
    for (kid, alg) in [
        ("rsa-1", Algorithm::RS256),
        ("ec-1", Algorithm::ES256),
        ("ed-1", Algorithm::EdDSA),
    ] {
        let token = issuer
            .token()
            .kid(kid)
            .subject("planner-7")
            .groups(&["dba", "oncall"])
            .on_behalf_of("alice")
            .kind("planner")
            .claim("custom", json!({"n": 1}))
            .sign();
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, alg);
        assert_eq!(header.kid.as_deref(), Some(kid));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let claims = verify(&jwks, kid, alg, &token).unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(claims["sub"], "planner-7");
        assert_eq!(claims["groups"], json!(["dba", "oncall"]));
        assert_eq!(claims["on_behalf_of"], "alice");
        assert_eq!(claims["sod_kind"], "planner");
        assert_eq!(claims["custom"], json!({"n": 1}));
        let iat = claims["iat"].as_i64().expect("iat");
        assert_eq!(claims["exp"].as_i64(), Some(iat + 300));
        assert!(claims.get("nbf").is_none());

        // Tampering with the payload breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = sod_testkit::b64url(
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": iat + 300})
                .to_string()
                .as_bytes(),
        );
        parts[1] = &forged;
        assert!(verify(&jwks, kid, alg, &parts.join(".")).is_err());
    }
}

#[test]
fn defaults_and_claim_edits() {
    let issuer = OidcIssuer::new(ISSUER, AUDIENCE);
    let jwks = issuer.jwks();
    let claims = verify(&jwks, "rsa-1", Algorithm::RS256, &issuer.token().sign()).expect("valid");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);

    let expired = issuer.token().expires_in(-60).sign();
    let err = verify(&jwks, "rsa-1", Algorithm::RS256, &expired).expect_err("expired");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );

    let mut validation = validation(Algorithm::RS256);
    validation.validate_nbf = true;
    let early = issuer.token().not_before_in(120).sign();
    let err = jsonwebtoken::decode::<Value>(&early, &decoding_key(&jwks, "rsa-1"), &validation)
        .expect_err("not yet valid");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::ImmatureSignature
    );

    let wrong_aud = issuer.token().audience("someone-else").sign();
    assert!(verify(&jwks, "rsa-1", Algorithm::RS256, &wrong_aud).is_err());
    let wrong_iss = issuer.token().issuer("https://evil.example").sign();
    assert!(verify(&jwks, "rsa-1", Algorithm::RS256, &wrong_iss).is_err());
    let no_exp = issuer.token().remove_claim("exp").sign();
    assert!(verify(&jwks, "rsa-1", Algorithm::RS256, &no_exp).is_err());

    // A header lying about the algorithm: jsonwebtoken refuses the mismatch.
    let lying = issuer
        .token()
        .kid("ec-1")
        .header_claim("alg", json!("RS256"))
        .sign();
    assert!(verify(&jwks, "ec-1", Algorithm::ES256, &lying).is_err());
}

#[test]
fn raw_unsigned_and_hmac_tokens() {
    let issuer = OidcIssuer::new(ISSUER, AUDIENCE);
    let claims =
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": sod_testkit::oidc::now() + 60});
    let header = json!({"alg": "ES256", "kid": "ec-1", "x-extra": true});
    let token = issuer.sign_raw("ec-1", &header, &claims);
    let decoded = verify(&issuer.jwks(), "ec-1", Algorithm::ES256, &token).expect("valid");
    assert_eq!(decoded["sub"], "bob");

    let none = unsigned_token(&json!({"alg": "none"}), &claims);
    assert!(none.ends_with('.'));
    assert!(verify(&issuer.jwks(), "rsa-1", Algorithm::RS256, &none).is_err());

    let secret = b"a shared secret of enough length!";
    let hs = hs256_token(secret, &json!({"alg": "HS256", "typ": "JWT"}), &claims);
    let decoded = jsonwebtoken::decode::<Value>(
        &hs,
        &DecodingKey::from_secret(secret),
        &validation(Algorithm::HS256),
    )
    .expect("HS256 verifies with jsonwebtoken");
    assert_eq!(decoded.claims["sub"], "bob");
    assert!(verify(&issuer.jwks(), "rsa-1", Algorithm::RS256, &hs).is_err());
}

#[test]
fn rotation() {
    let mut issuer = OidcIssuer::new(ISSUER, AUDIENCE);
    let before = issuer.jwks();
    issuer.add_key(KeyAlg::Rs256, "rsa-2");
    issuer.remove_key("rsa-1");
    let after = issuer.jwks();
    let kids: HashSet<&str> = after["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, HashSet::from(["rsa-2", "ec-1", "ed-1"]));

    let new = issuer.token().kid("rsa-2").sign();
    verify(&after, "rsa-2", Algorithm::RS256, &new).expect("new key verifies");
    // The retired key still signs, and its tokens verify only against the old JWKS.
    let old = issuer.token().sign();
    verify(&before, "rsa-1", Algorithm::RS256, &old).expect("old key verifies with old JWKS");
    assert!(verify(&after, "rsa-2", Algorithm::RS256, &old).is_err());
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn client(server: &JwksServer) -> HttpsClient {
    let tls = Arc::unwrap_or_clone(server.client_tls());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

async fn get(client: &HttpsClient, url: &str) -> (u16, String) {
    let response = client
        .get(url.parse().expect("uri"))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn jwks_server_serves_over_https() {
    let issuer = OidcIssuer::new(ISSUER, AUDIENCE);
    let server = JwksServer::start(issuer.jwks()).await.expect("start");
    let url = server.url();
    assert!(
        url.starts_with("https://127.0.0.1:") && url.ends_with("/jwks.json"),
        "{url}"
    );
    let client = client(&server);

    assert_eq!(server.request_count(), 0);
    let (status, body) = get(&client, &url).await;
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(served, issuer.jwks());
    assert_eq!(server.request_count(), 1);

    // A token verifies against the served JWK.
    let token = issuer.token().kid("ed-1").sign();
    verify(&served, "ed-1", Algorithm::EdDSA, &token).expect("verifies with the served JWK");

    server.set_jwks(json!({"keys": []}));
    let (status, body) = get(&client, &url).await;
    assert_eq!((status, body.as_str()), (200, r#"{"keys":[]}"#));
    assert_eq!(server.request_count(), 2);

    server.set_status(503);
    let (status, _) = get(&client, &url).await;
    assert_eq!(status, 503);
    assert_eq!(server.request_count(), 3);
    server.set_status(200);
    assert_eq!(get(&client, &url).await.0, 200);

    let other = url.replace("/jwks.json", "/.well-known/openid-configuration");
    assert_eq!(get(&client, &other).await.0, 404);
    assert_eq!(server.request_count(), 4, "other paths are not counted");
}

#[tokio::test]
async fn jwks_server_is_not_trusted_by_other_cas() {
    let server = JwksServer::start(json!({"keys": []})).await.expect("start");
    let other = sod_testkit::TestCa::new("not the server's CA");
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(other.client_config()))
        .https_only()
        .enable_http1()
        .build();
    let client: HttpsClient = Client::builder(TokioExecutor::new()).build(https);
    let result = client.get(server.url().parse().expect("uri")).await;
    assert!(result.is_err(), "the handshake must fail");
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = JwksServer::start(json!({"keys": []})).await.expect("start");
    let addr = server.addr();
    tokio::net::TcpStream::connect(addr)
        .await
        .expect("listening");
    drop(server);
    sod_testkit::poll_until_async(
        std::time::Duration::from_secs(5),
        "the listener to close",
        || async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}
