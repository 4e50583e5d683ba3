//! Adversarial tests: every way a holder might widen, forge or reuse a capability.

use super::*;
use crate::{KindSet, Operation, OperationKind::*, Target};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

fn authority() -> CapabilityAuthority {
    CapabilityAuthority::new("sod", CapabilityKey::generate("k1"))
}

fn spec() -> CapabilitySpec {
    CapabilitySpec::new("planner-1", Duration::from_secs(600))
        .targets(["pg/prod"])
        .kinds(KindSet::of(&[Read, Write]))
        .objects(["public.*"])
        .groups(["planners"])
        .on_behalf_of("alice")
}

fn op(target: &str, kind: crate::OperationKind, objects: &[&str]) -> Operation {
    Operation::builder(Target::new(target), kind, "x")
        .objects(objects.iter().copied())
        .build()
}

/// What any holder can do: append a caveat with the tag they hold, skipping the narrowing check.
fn append_raw(token: &CapabilityToken, caveat_json: &str) -> CapabilityToken {
    let enc = URL_SAFE_NO_PAD.encode(caveat_json);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &token.tag);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"sod-caveat-v1\0");
    ctx.update(enc.as_bytes());
    let mut tag = [0u8; 32];
    tag.copy_from_slice(ctx.sign().as_ref());
    let mut wire = token.encode();
    let cut = wire.rfind('.').expect("tag separator");
    wire.truncate(cut);
    format!("{wire}.{enc}.{}", URL_SAFE_NO_PAD.encode(tag))
        .parse()
        .expect("parses")
}

/// Replaces the part at `index` (0 = prefix) of the wire form.
fn with_part(token: &CapabilityToken, index: usize, part: &str) -> String {
    let wire = token.encode();
    let mut parts: Vec<&str> = wire.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

#[test]
fn issue_and_verify_round_trip() {
    let a = authority();
    let token = a.issue(spec()).expect("issue");
    let wire = token.encode();
    assert!(wire.starts_with("sodcap1."));
    let cap = a.verify_str(&wire, SystemTime::now()).expect("verify");
    let p = cap.principal();
    assert_eq!(p.id, "planner-1");
    assert_eq!(p.issuer, "sod");
    assert_eq!(p.kind, PrincipalKind::PLANNER);
    assert_eq!(p.groups, ["planners"]);
    assert_eq!(p.on_behalf_of.as_deref(), Some("alice"));
    assert_eq!(cap.id().len(), 32);
    assert!(
        cap.scope()
            .check(&op("pg/prod", Read, &["public.orders"]))
            .is_ok()
    );
    assert!(
        cap.scope()
            .check(&op("pg/prod", Write, &["public.orders"]))
            .is_ok()
    );
    assert!(cap.scope().check(&op("pg/prod", Connect, &[])).is_ok());
    // Parsing is lossless.
    assert_eq!(wire.parse::<CapabilityToken>().expect("parse"), token);
}

#[test]
fn scope_refuses_wrong_target_kind_and_objects() {
    let a = authority();
    let cap = a
        .verify(
            &a.issue(spec().deny_objects(["public.secrets"]))
                .expect("issue"),
            SystemTime::now(),
        )
        .expect("verify");
    let s = cap.scope();
    let refused = |o: Operation| {
        let r = s.check(&o).expect_err("refused");
        assert_eq!(r.code(), crate::RefusalCode::CapabilityScope);
        assert_eq!(r.rule(), Some("capability"));
        r.reason().to_owned()
    };
    assert!(refused(op("pg/dev", Read, &[])).contains("target `pg/dev`"));
    assert!(refused(op("pg/dev", Connect, &[])).contains("outside the capability"));
    assert!(refused(op("pg/prod", Schema, &[])).contains("not schema"));
    assert!(refused(op("pg/prod", Read, &["private.x"])).contains("object `private.x`"));
    assert!(refused(op("pg/prod", Read, &["public.ok", "public.secrets"])).contains("excluded"));
    // Objects not all known cannot be shown to stay clear of the excluded ones.
    let unknown = Operation::builder(Target::new("pg/prod"), Read, "SELECT f()")
        .objects_unknown("f may read any table")
        .build();
    assert!(refused(unknown).contains("not known: f may read any table"));
    // A collection must lie wholly inside `public.*` and may not hold `public.secrets`.
    let collection = |prefix: &str| {
        Operation::builder(Target::new("pg/prod"), Read, "x")
            .collection(prefix)
            .build()
    };
    assert!(refused(collection("public.")).contains("may hold objects the capability excludes"));
    assert!(refused(collection("")).contains("may hold objects"));
    assert!(refused(collection("private.")).contains("not wholly inside"));
    assert!(s.check(&collection("public.orders_")).is_ok());
}

#[test]
fn attenuation_narrows_without_the_key() {
    let a = authority();
    let token = a.issue(spec()).expect("issue");
    let narrowed = token
        .attenuate(Caveat::Kinds(KindSet::of(&[Read])))
        .and_then(|t| t.attenuate(Caveat::Objects(vec![crate::Glob::new("public.orders")])))
        .and_then(|t| t.attenuate(Caveat::RowLimit(100)))
        .expect("narrow");
    let cap = a.verify(&narrowed, SystemTime::now()).expect("verify");
    let s = cap.scope();
    assert!(s.check(&op("pg/prod", Read, &["public.orders"])).is_ok());
    assert!(s.check(&op("pg/prod", Write, &["public.orders"])).is_err());
    assert!(
        s.check(&op("pg/prod", Read, &["public.customers"]))
            .is_err()
    );
    assert_eq!(s.row_limit(), Some(100));
    assert_eq!(narrowed.caveats().count(), 3);
}

#[test]
fn attenuate_rejects_widening_caveats() {
    let token = authority()
        .issue(spec().row_limit(10))
        .expect("issue")
        .attenuate(Caveat::Kinds(KindSet::of(&[Read])))
        .expect("narrow");
    let far = token.unverified_claims().expires_at + 3600;
    for widening in [
        Caveat::Kinds(KindSet::of(&[Read, Write])),
        Caveat::ExpiresAt(far),
        Caveat::RowLimit(11),
        Caveat::Targets(vec![crate::Glob::new("*")]),
        Caveat::Targets(vec![crate::Glob::new("pg/dev")]),
        Caveat::Objects(vec![crate::Glob::new("*")]),
    ] {
        assert!(
            matches!(
                token.attenuate(widening.clone()),
                Err(CapabilityError::NotNarrower(_))
            ),
            "{widening:?}"
        );
    }
    // Narrowing ones pass.
    token
        .attenuate(Caveat::Targets(vec![crate::Glob::new("pg/prod")]))
        .expect("same target");
    token
        .attenuate(Caveat::Objects(vec![crate::Glob::new("public.orders*")]))
        .expect("within public.*");
}

#[test]
fn a_forged_widening_caveat_gains_nothing() {
    // The holder bypasses `attenuate` and appends widening caveats with a valid chain: the
    // result verifies (appending is what holders may do) but the scope stays the intersection.
    let a = authority();
    let token = a
        .issue(spec())
        .expect("issue")
        .attenuate(Caveat::Kinds(KindSet::of(&[Read])))
        .expect("narrow");
    let exp = token.unverified_claims().expires_at;
    let forged = append_raw(&token, r#"{"kinds":["read","write","admin"]}"#);
    let forged = append_raw(&forged, &format!(r#"{{"expires_at":{}}}"#, exp + 86_400));
    let forged = append_raw(&forged, r#"{"targets":["*"]}"#);
    let forged = append_raw(&forged, r#"{"objects":["*"]}"#);
    let cap = a.verify(&forged, SystemTime::now()).expect("a valid chain");
    let s = cap.scope();
    assert!(s.check(&op("pg/prod", Write, &["public.orders"])).is_err());
    assert!(s.check(&op("pg/prod", Admin, &[])).is_err());
    assert!(s.check(&op("pg/dev", Read, &[])).is_err());
    assert!(s.check(&op("pg/prod", Read, &["other.t"])).is_err());
    assert_eq!(crate::capability::unix(s.expires_at()), exp);
}

#[test]
fn unknown_caveat_types_are_rejected_not_ignored() {
    let a = authority();
    let token = a.issue(spec()).expect("issue");
    let enc = URL_SAFE_NO_PAD.encode(r#"{"only_on_tuesdays":true}"#);
    let wire = format!(
        "{}.{enc}.{}",
        {
            let w = token.encode();
            let cut = w.rfind('.').expect("dot");
            w[..cut].to_owned()
        },
        URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    assert!(matches!(
        a.verify_str(&wire, SystemTime::now()),
        Err(CapabilityError::Malformed(_))
    ));
}

#[test]
fn edits_truncation_reordering_and_splicing_are_detected() {
    let a = authority();
    let base = a.issue(spec()).expect("issue");
    let two = base
        .attenuate(Caveat::Kinds(KindSet::of(&[Read])))
        .and_then(|t| t.attenuate(Caveat::RowLimit(5)))
        .expect("narrow");
    let now = SystemTime::now();
    let bad = |wire: String| {
        assert_eq!(
            a.verify_str(&wire, now).expect_err("must fail"),
            CapabilityError::BadSignature,
            "{wire}"
        )
    };

    // Edited header: widen the kinds in the issuer's claims.
    let mut header = base.header.clone();
    header.c.kinds = KindSet::ALL;
    let enc = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
    bad(with_part(&base, 1, &enc));

    // Edited caveat: replace `kinds: [read]` by `kinds: [read, write]`.
    bad(with_part(
        &two,
        2,
        &URL_SAFE_NO_PAD.encode(r#"{"kinds":["read","write"]}"#),
    ));

    // Truncated: drop the last caveat, keep the final tag.
    let wire = two.encode();
    let parts: Vec<&str> = wire.split('.').collect();
    bad([parts[0], parts[1], parts[2], parts[4]].join("."));
    // Truncated: drop every caveat.
    bad([parts[0], parts[1], parts[4]].join("."));
    // Reordered caveats.
    bad([parts[0], parts[1], parts[3], parts[2], parts[4]].join("."));

    // Spliced: another capability's header with this chain's caveats and tag.
    let other = a.issue(spec().kinds(KindSet::ALL)).expect("issue");
    let other_wire = other.encode();
    let other_header = other_wire.split('.').nth(1).expect("header");
    bad([parts[0], other_header, parts[2], parts[3], parts[4]].join("."));
    // Spliced: this header with the other capability's tag.
    let other_tag = other_wire.rsplit('.').next().expect("tag");
    bad([parts[0], parts[1], other_tag].join("."));

    // Tampered tag.
    let mut tag = two.tag;
    tag[0] ^= 1;
    bad(with_part(&two, 4, &URL_SAFE_NO_PAD.encode(tag)));
}

#[test]
fn wrong_key_unknown_key_and_rotation() {
    let a = authority();
    let token = a.issue(spec()).expect("issue");
    // Same kid, different secret: an impostor authority.
    let impostor = CapabilityAuthority::new("sod", CapabilityKey::generate("k1"));
    assert_eq!(
        impostor.verify(&token, SystemTime::now()),
        Err(CapabilityError::BadSignature)
    );
    let other_kid = CapabilityAuthority::new("sod", CapabilityKey::generate("k2"));
    assert_eq!(
        other_kid.verify(&token, SystemTime::now()),
        Err(CapabilityError::UnknownKey("k1".into()))
    );
    // Another authority name with the same key material is refused too.
    let secret = Secret::new(vec![7u8; 32]);
    let a1 = CapabilityAuthority::new("sod-a", CapabilityKey::new("k", &secret).expect("key"));
    let a2 = CapabilityAuthority::new("sod-b", CapabilityKey::new("k", &secret).expect("key"));
    let t1 = a1.issue(spec()).expect("issue");
    assert!(matches!(
        a2.verify(&t1, SystemTime::now()),
        Err(CapabilityError::Malformed(_))
    ));
    // Rotation: a new authority accepts tokens of the previous key.
    let rotated = CapabilityAuthority::new("sod-a", CapabilityKey::generate("k-next"))
        .accept(CapabilityKey::new("k", &secret).expect("key"));
    rotated
        .verify(&t1, SystemTime::now())
        .expect("old key still accepted");
    assert_eq!(rotated.issue(spec()).expect("issue").key_id(), "k-next");
    // Short keys are refused.
    assert!(CapabilityKey::new("k", &Secret::new(vec![1u8; 16])).is_err());
}

#[test]
fn validity_window() {
    let a = authority();
    let now = SystemTime::now();
    let token = a.issue_at(spec(), now).expect("issue");
    assert!(a.verify(&token, now + Duration::from_secs(599)).is_ok());
    assert_eq!(
        a.verify(&token, now + Duration::from_secs(600)),
        Err(CapabilityError::Expired)
    );
    assert_eq!(
        a.verify(&token, now - Duration::from_secs(60)),
        Err(CapabilityError::NotYetValid)
    );
    // An expiry caveat in the past expires the capability.
    let short = token
        .attenuate(Caveat::expires_in(Duration::from_secs(1), now))
        .expect("narrow");
    assert_eq!(
        a.verify(&short, now + Duration::from_secs(2)),
        Err(CapabilityError::Expired)
    );
    // Lifetimes beyond the maximum are not issued.
    let strict = authority().max_ttl(Duration::from_secs(60));
    assert!(matches!(
        strict.issue(spec()),
        Err(CapabilityError::InvalidSpec(_))
    ));
    assert!(matches!(
        a.issue(CapabilitySpec::new("", Duration::from_secs(1))),
        Err(CapabilityError::InvalidSpec(_))
    ));
}

#[test]
fn conflicting_plans_allow_nothing() {
    let a = authority();
    let token = a.issue(spec().plan("plan-a")).expect("issue");
    assert!(matches!(
        token.attenuate(Caveat::Plan("plan-b".into())),
        Err(CapabilityError::NotNarrower(_))
    ));
    let forged = append_raw(&token, r#"{"plan":"plan-b"}"#);
    let cap = a.verify(&forged, SystemTime::now()).expect("valid chain");
    assert!(cap.scope().plan().is_err());
    assert!(
        cap.scope()
            .check(&op("pg/prod", Read, &["public.t"]))
            .is_err()
    );
}

#[test]
fn malformed_input_is_refused_cleanly() {
    let a = authority();
    let now = SystemTime::now();
    for wire in [
        "",
        "sodcap1",
        "sodcap1.",
        "sodcap1..",
        "sodcap2.e30.AAAA",
        "sodcap1.!!!.AAAA",
        "sodcap1.e30.AAAA",
        "Bearer sodcap1.e30.AAAA",
    ] {
        assert!(a.verify_str(wire, now).is_err(), "{wire:?}");
    }
    let long = format!("sodcap1.{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(a.verify_str(&long, now), Err(CapabilityError::TooLong));
    let token = a.issue(spec()).expect("issue");
    let mut t = token.clone();
    for _ in 0..MAX_CAVEATS {
        t = t.attenuate(Caveat::RowLimit(1)).expect("within limit");
    }
    assert_eq!(
        t.attenuate(Caveat::RowLimit(1)),
        Err(CapabilityError::TooLong)
    );
}

#[test]
fn debug_never_shows_the_tag() {
    let token = authority().issue(spec()).expect("issue");
    let debug = format!("{token:?}");
    let tag = token.encode().rsplit('.').next().expect("tag").to_owned();
    assert!(!debug.contains(&tag));
    assert!(debug.contains("planner-1"));
}

proptest! {
    #[test]
    fn parsing_arbitrary_strings_never_panics(s in "\\PC{0,200}") {
        let _ = s.parse::<CapabilityToken>();
        let _ = format!("sodcap1.{s}").parse::<CapabilityToken>();
    }

    #[test]
    fn parsing_arbitrary_parts_never_panics(parts in proptest::collection::vec("[A-Za-z0-9_-]{0,40}", 0..6)) {
        let wire = format!("sodcap1.{}", parts.join("."));
        let _ = authority().verify_str(&wire, SystemTime::now());
    }

    #[test]
    fn any_single_byte_flip_is_detected(pos in 0usize..400, bit in 0u8..8) {
        let a = authority();
        let wire = a.issue(spec()).expect("issue").attenuate(Caveat::RowLimit(3)).expect("narrow").encode();
        let mut bytes = wire.into_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(s) = String::from_utf8(bytes) {
            prop_assert!(a.verify_str(&s, SystemTime::now()).is_err());
        }
    }
}

#[test]
fn every_part_of_a_batch_must_be_in_scope() {
    let a = authority();
    let cap = a
        .verify(
            &a.issue(spec().kinds(KindSet::of(&[Admin]))).expect("issue"),
            SystemTime::now(),
        )
        .expect("verify");
    // The batch's kind is its riskiest part (admin, in scope), but a write part is not.
    let batch = Operation::builder(Target::new("pg/prod"), Read, "w; a")
        .part(op("pg/prod", Write, &["public.t"]))
        .part(op("pg/prod", Admin, &[]))
        .build();
    assert_eq!(batch.kind(), Admin);
    let r = cap.scope().check(&batch).expect_err("write part refused");
    assert!(r.reason().contains("not write"), "{}", r.reason());
}

#[test]
fn times_beyond_the_clock_are_clamped_never_a_panic() {
    // Found by the capability_parse fuzz target: a header (or caveat) time of u64::MAX
    // overflowed `UNIX_EPOCH + secs` in verification.
    let a = authority();
    let token = a.issue(spec()).expect("issue");
    let forged = append_raw(&token, &format!(r#"{{"expires_at":{}}}"#, u64::MAX));
    let cap = a.verify(&forged, SystemTime::now()).expect("still valid");
    // A later expiry cannot widen: the header's stays.
    assert!(cap.scope().expires_at() < SystemTime::now() + Duration::from_secs(601));
    assert!(
        super::scope::time(u64::MAX)
            > SystemTime::now() + Duration::from_secs(3_000 * 365 * 86_400)
    );
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_revoked_capability_and_everything_derived_from_it_stop_at_once() {
    let list = Revocations::new();
    let authority = authority().revocations(list.clone());
    let token = authority.issue(spec()).unwrap();
    let child = token
        .attenuate(Caveat::Kinds(KindSet::of(&[Read])))
        .unwrap();
    let cap = authority.verify(&token, SystemTime::now()).unwrap();
    let session = crate::Session::new(Target::new("pg/prod"), crate::Peer::InProcess, None);
    session
        .authenticate(crate::Identity {
            capability: Some(cap.clone()),
            ..crate::Identity::new(cap.principal(), crate::AuthMethod::Capability)
        })
        .unwrap();
    assert!(session.current_identity(SystemTime::now()).is_ok());

    let other = authority.issue(spec()).unwrap();
    list.replace([cap.id().to_owned()]);
    let revoked = CapabilityError::Revoked(cap.id().to_owned());
    assert_eq!(
        authority.verify(&token, SystemTime::now()),
        Err(revoked.clone())
    );
    assert_eq!(
        authority.verify(&child, SystemTime::now()),
        Err(revoked.clone())
    );
    assert!(authority.verify(&other, SystemTime::now()).is_ok());
    // The open session: its next operation is refused, and `revoked` resolves.
    assert_eq!(cap.check_revocation(), Err(revoked));
    let refusal = session.current_identity(SystemTime::now()).unwrap_err();
    assert_eq!(refusal.code(), crate::RefusalCode::CapabilityRevoked);
    let why = tokio::time::timeout(Duration::from_secs(10), session.revoked())
        .await
        .unwrap();
    assert_eq!(why, format!("capability {} revoked", cap.id()));

    // An unreadable list refuses every capability, as an outage.
    list.fail("the file is broken");
    assert_eq!(
        authority.verify(&other, SystemTime::now()),
        Err(CapabilityError::RevocationsUnavailable(
            "the file is broken".into()
        ))
    );
    let refusal = session.current_identity(SystemTime::now()).unwrap_err();
    assert_eq!(refusal.code(), crate::RefusalCode::Unavailable);
}
