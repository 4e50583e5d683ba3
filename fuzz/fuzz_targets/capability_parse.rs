//! Capability strings: parsing and verification never panic, whatever the input.
//!
//! The input is used twice:
//!
//! 1. As a capability string: `CapabilityToken::from_str` and `CapabilityAuthority::verify_str`
//!    with a fixed authority. A token that parses encodes back to the same string, and
//!    attenuating it never panics and round-trips too.
//! 2. As the JSON of a header and its caveats, one per line, signed here with the authority's
//!    key the way `token.rs` documents the chain. Fuzzed claims and caveats so get past the MAC
//!    check into verification and `Scope`. Such a token with key id `k` never fails as
//!    `BadSignature`, and — "every caveat only narrows" — if it verifies, the token without its
//!    last caveat verifies too, with a scope at least as wide.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sod_core::capability::{
    Capability, CapabilityAuthority, CapabilityError, CapabilityKey, CapabilityToken, Caveat,
    MAX_CAVEATS, MAX_TOKEN_LEN, PREFIX, Scope,
};
use sod_core::{Glob, KindSet, Operation, OperationKind, Secret, Target};

/// The root key's bytes, its id and the authority's name (the seeds are signed with them).
const ROOT_KEY: [u8; 32] = [7; 32];
const KEY_ID: &str = "k";
const AUTHORITY_NAME: &str = "sod";
/// The fixed "now" of every verification (the seeds are valid then).
const NOW: u64 = 1_800_000_000;

static AUTHORITY: LazyLock<CapabilityAuthority> = LazyLock::new(|| {
    let key = CapabilityKey::new(KEY_ID, &Secret::new(ROOT_KEY.to_vec()))
        .expect("a 32-byte key is accepted");
    CapabilityAuthority::new(AUTHORITY_NAME, key)
});

/// Operations every verified scope is checked against.
static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let prod = Target::new("pg/prod");
    let op = |target: &Target, kind, text: &str, objects: &[&str]| {
        Operation::builder(target.clone(), kind, text)
            .objects(objects.iter().copied())
            .build()
    };
    vec![
        Operation::connect(prod.clone()),
        Operation::connect(Target::new("k8s/staging")),
        op(&prod, OperationKind::Read, "SELECT 1", &[]),
        op(
            &prod,
            OperationKind::Read,
            "SELECT * FROM orders",
            &["public.orders"],
        ),
        op(
            &prod,
            OperationKind::Write,
            "DELETE FROM orders",
            &["public.orders"],
        ),
        op(
            &prod,
            OperationKind::Schema,
            "DROP TABLE secrets",
            &["public.secrets"],
        ),
        op(
            &Target::new("pg/prod-eu"),
            OperationKind::Admin,
            "ALTER SYSTEM SET x = 1",
            &[
                "pg_catalog.pg_settings",
                "a.ééé.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            ],
        ),
        Operation::not_understood(prod.clone(), "SELEC 1", "syntax error"),
        Operation::builder(
            prod.clone(),
            OperationKind::Read,
            "SELECT 1; UPDATE t SET x = 1",
        )
        .part(op(&prod, OperationKind::Read, "SELECT 1", &["public.a"]))
        .part(op(
            &prod,
            OperationKind::Write,
            "UPDATE t SET x = 1",
            &["public.t"],
        ))
        .build(),
    ]
});

/// Caveats every parsed token is attenuated with.
static CAVEATS: LazyLock<Vec<Caveat>> = LazyLock::new(|| {
    vec![
        Caveat::ExpiresAt(NOW + 60),
        Caveat::Kinds(KindSet::of(&[OperationKind::Read])),
        Caveat::Targets(vec![Glob::new("pg/*")]),
        Caveat::Objects(vec![Glob::new("public.*")]),
        Caveat::DenyObjects(vec![Glob::new("public.secrets")]),
        Caveat::RowLimit(10),
        Caveat::Plan("plan-1".into()),
    ]
});

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = check_string(&text);

    let parts: Vec<&str> = text.split('\n').collect();
    if parts.len() > MAX_CAVEATS + 1 {
        return;
    }
    let signed = sign(&parts);
    let verified = check_string(&signed);
    let Ok(token) = signed.parse::<CapabilityToken>() else {
        return;
    };
    if token.key_id() == KEY_ID {
        assert_ne!(
            verified.as_ref().err(),
            Some(&CapabilityError::BadSignature),
            "a chain signed with the authority's key verifies"
        );
    }
    if let Ok(cap) = &verified
        && parts.len() > 1
    {
        let shorter = sign(&parts[..parts.len() - 1]);
        let wider = AUTHORITY
            .verify_str(&shorter, now())
            .expect("dropping a caveat from a valid capability leaves it valid");
        assert_narrows(cap.scope(), wider.scope());
    }
});

/// Parses and verifies `s`; checks the round trips and attenuation; exercises the scope.
fn check_string(s: &str) -> Result<Capability, CapabilityError> {
    let parsed = s.parse::<CapabilityToken>();
    let verified = AUTHORITY.verify_str(s, now());
    let token = match parsed {
        Ok(token) => token,
        Err(e) => {
            let _ = e.to_string();
            assert!(
                verified.is_err(),
                "a string that does not parse cannot verify"
            );
            return verified;
        }
    };
    let wire = token.encode();
    assert_eq!(
        wire, s,
        "a parsed token encodes to the string it was read from"
    );
    assert_eq!(wire.parse::<CapabilityToken>().as_ref(), Ok(&token));
    assert_eq!(AUTHORITY.verify(&token, now()), verified);
    let _ = (
        format!("{token:?}"),
        token.unverified_claims(),
        token.key_id(),
    );
    let _ = token.caveats().count();

    for caveat in CAVEATS.iter() {
        let Ok(narrower) = token.attenuate(caveat.clone()) else {
            continue;
        };
        let wire = narrower.encode();
        assert!(wire.len() <= MAX_TOKEN_LEN);
        assert_eq!(wire.parse::<CapabilityToken>().as_ref(), Ok(&narrower));
        if let Ok(cap) = &verified {
            let narrowed = AUTHORITY
                .verify(&narrower, now())
                .expect("attenuating a valid capability keeps it valid");
            assert_narrows(narrowed.scope(), cap.scope());
        }
    }

    if let Ok(cap) = &verified {
        let _ = (cap.id(), cap.claims(), cap.principal());
        let scope = cap.scope();
        let _ = (scope.kinds().to_string(), scope.row_limit(), scope.plan());
        assert!(
            scope.expires_at() > now(),
            "a verified capability has not expired"
        );
        for op in OPERATIONS.iter() {
            if let Err(refusal) = scope.check(op) {
                let _ = refusal.to_string();
            }
        }
    }
    verified
}

/// `narrow` permits nothing that `wide` does not.
fn assert_narrows(narrow: &Scope, wide: &Scope) {
    assert!(narrow.kinds().is_subset(&wide.kinds()), "kinds widened");
    assert!(narrow.expires_at() <= wide.expires_at(), "expiry extended");
    assert_eq!(narrow.not_before(), wide.not_before());
    match (narrow.row_limit(), wide.row_limit()) {
        (_, None) => {}
        (Some(n), Some(w)) => assert!(n <= w, "row limit raised"),
        (None, Some(_)) => panic!("row limit dropped"),
    }
    // Binding to a plan narrows; so does binding to a second, conflicting one (`Err`).
    match (narrow.plan(), wide.plan()) {
        (_, Ok(None)) | (Err(_), _) => {}
        (Ok(Some(n)), Ok(Some(w))) => assert_eq!(n, w, "plan changed"),
        (n, w) => panic!("plan binding loosened: {n:?} from {w:?}"),
    }
    for op in OPERATIONS.iter() {
        if narrow.check(op).is_ok() {
            assert!(wide.check(op).is_ok(), "a caveat allowed {op:?}");
        }
    }
}

/// A capability string whose parts are `parts` (JSON header, then caveats) base64url-encoded,
/// with the HMAC chain computed from the authority's root key as `token.rs` documents it.
fn sign(parts: &[&str]) -> String {
    let root = hmac::Key::new(hmac::HMAC_SHA256, &ROOT_KEY);
    let mut out = String::from(PREFIX);
    let mut tag = [0u8; 32];
    for (i, part) in parts.iter().enumerate() {
        let enc = URL_SAFE_NO_PAD.encode(part.as_bytes());
        tag = if i == 0 {
            mac(&root, b"sod-capability-v1\0", &enc)
        } else {
            mac(
                &hmac::Key::new(hmac::HMAC_SHA256, &tag),
                b"sod-caveat-v1\0",
                &enc,
            )
        };
        out.push('.');
        out.push_str(&enc);
    }
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(tag));
    out
}

fn mac(key: &hmac::Key, context: &[u8], part: &str) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(context);
    ctx.update(part.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}
