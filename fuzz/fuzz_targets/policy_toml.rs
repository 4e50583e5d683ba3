//! Policy and mask-profile files: `Policy::from_toml` and `MaskProfiles::from_toml` never panic
//! on any text. A policy that loads decides and explains fixed operations without panicking,
//! and every decision that lets something through names one of the policy's rules. Mask
//! profiles that load plan and apply masks to fixed fields and values without panicking, and
//! a value of unknown provenance is always masked (invariant I6).

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use sod_core::masking::{ColumnRef, Field, FieldAction, MaskProfiles, Masker, Provenance};
use sod_core::policy::{Effect, Policy};
use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};

static PRINCIPALS: LazyLock<Vec<Principal>> = LazyLock::new(|| {
    vec![
        Principal::new("agent-7", "sod", PrincipalKind::PLANNER)
            .with_groups(["planners"])
            .acting_for("alice"),
        Principal::new("alice", "https://idp.example", PrincipalKind::Human)
            .with_groups(["dba", "oncall"]),
    ]
});

static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let prod = Target::new("pg/prod");
    let op = |kind, text: &str, objects: &[&str]| {
        Operation::builder(prod.clone(), kind, text)
            .objects(objects.iter().copied())
            .build()
    };
    vec![
        Operation::connect(prod.clone()),
        op(
            OperationKind::Read,
            "SELECT * FROM orders WHERE id = 1",
            &["public.orders"],
        ),
        Operation::builder(
            prod.clone(),
            OperationKind::Write,
            "UPDATE customers SET email = $1",
        )
        .object("public.customers")
        .touches_sensitive(true)
        .build(),
        op(
            OperationKind::Schema,
            "DROP TABLE orders",
            &["public.orders"],
        ),
        Operation::not_understood(prod.clone(), "SELEC 1", "syntax error at or near \"SELEC\""),
        Operation::builder(prod.clone(), OperationKind::Read, "SELECT 1; DELETE FROM t")
            .part(op(OperationKind::Read, "SELECT 1", &[]))
            .part(op(OperationKind::Write, "DELETE FROM t", &["public.t"]))
            .build(),
        Operation::builder(Target::new("ssh/bastion"), OperationKind::Exec, "uptime").build(),
    ]
});

static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
    let email = ColumnRef::new("public", "customers", "email");
    let id = ColumnRef::new("public", "orders", "id");
    vec![
        Field::new("email", Provenance::Column(email.clone())),
        Field::new("id", Provenance::Column(id.clone())),
        Field::new("both", Provenance::Derived(vec![email, id])),
        Field::new("one", Provenance::Constant),
        Field::new("x", Provenance::Unknown),
    ]
});

const VALUES: &[&[u8]] = &[
    b"",
    b"alice@example.com",
    b"4111 1111 1111 1111",
    b"+1 (555) 010-9999",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    b"AKIAIOSFODNN7EXAMPLE",
    b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
    "\u{e9}t\u{e9} \u{1f600}".as_bytes(),
    b"\xff\xfe\x00not utf-8",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match Policy::from_toml("fuzz.toml", &text) {
        Ok(policy) => check_policy(&policy),
        Err(e) => {
            let _ = e.to_string();
        }
    }

    match MaskProfiles::from_toml("fuzz.toml", &text) {
        Ok(profiles) => check_profiles(&profiles),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn check_policy(policy: &Policy) {
    let ids: Vec<&str> = policy.rule_ids().collect();
    let _ = (policy.origin(), policy.referenced_masks());
    for principal in PRINCIPALS.iter() {
        for op in OPERATIONS.iter() {
            let decision = policy.decide(principal, op);
            let _ = (
                decision.effect().name(),
                decision.reason(),
                decision.masks(),
            );
            if !matches!(decision.effect(), Effect::Deny) {
                assert!(
                    ids.contains(&decision.rule_id()),
                    "{} names no rule of the policy: {decision:?}",
                    decision.effect().name()
                );
            }
            let _ = decision.refusal(op).to_string();
        }
        let explanation = policy.explain(principal, &OPERATIONS[5]);
        let _ = explanation.to_string();
    }
}

fn check_profiles(profiles: &MaskProfiles) {
    let names: Vec<Arc<str>> = profiles.names().map(Arc::from).collect();
    for name in &names {
        assert!(profiles.contains(name));
        let masker = profiles
            .masker(std::slice::from_ref(name))
            .expect("a loaded profile has a masker");
        check_masker(&masker);
    }
    if names.len() > 1 {
        let masker = profiles
            .masker(&names)
            .expect("loaded profiles have a masker");
        check_masker(&masker);
    }
}

fn check_masker(masker: &Masker) {
    let plan = masker.plan(&FIELDS);
    assert_eq!(plan.actions().len(), FIELDS.len());
    for (i, field) in FIELDS.iter().enumerate() {
        if field.provenance == Provenance::Unknown {
            assert!(
                matches!(plan.action(i), FieldAction::Mask(_)),
                "unknown provenance must be masked"
            );
        }
        if let Provenance::Column(c) = &field.provenance {
            let _ = (masker.strategy_for(c), masker.is_sensitive(c));
        }
    }
    let mut out = Vec::new();
    for &value in VALUES {
        for action in plan.actions().iter().copied().chain([FieldAction::Scan]) {
            let _ = masker.apply(action, value, &mut out);
        }
        let _ = masker.scrub(&String::from_utf8_lossy(value));
    }
}
