//! Unit benchmarks for the hot paths of sod-core, against the targets of the foundation issue:
//! policy decision over 100 rules ≤ 1 µs, capability verify ≤ 50 µs, JWT verify with a cached
//! JWKS ≤ 100 µs, masking ≥ 5 million values/s on one core.
//!
//! Run with `cargo bench -p sod-core --bench core` (or `cargo xtask bench core`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec, Caveat};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier, Verifier};
use sod_core::masking::{ColumnRef, Field, FieldAction, MaskProfiles, Provenance};
use sod_core::policy::Policy;
use sod_core::{
    Credential, Glob, KindSet, Operation, OperationKind, Principal, PrincipalKind, Target,
};

/// 100 rules of the shapes real policies have: per-team target scopes, object scopes, a few
/// regexes and approval rules. The benchmarked operations match late or not at all, so every
/// rule is evaluated.
fn hundred_rules() -> String {
    let mut src = String::from("default_mask = \"standard\"\n");
    for i in 0..100 {
        let body = match i % 5 {
            0 => format!(
                "effect = \"allow\"\nprincipal_kinds = \"planner\"\ntargets = \"pg/team-{i}-*\"\nkinds = [\"connect\", \"read\"]\n"
            ),
            1 => format!("effect = \"deny\"\nkinds = \"schema\"\ntargets = \"pg/team-{i}\"\n"),
            2 => format!(
                "effect = \"require_approval\"\nkinds = \"write\"\nobjects = [\"app{i}.orders\", \"app{i}.items\"]\napprovers = \"dba\"\n"
            ),
            3 => format!(
                "effect = \"allow\"\nprincipals = \"svc-{i}-*\"\ngroups = [\"g{i}\", \"ops\"]\nkinds = \"read\"\n"
            ),
            _ => format!(
                "effect = \"deny\"\ntext = \"(?i)\\\\bpg_sleep_{i}\\\\b\"\nkinds = [\"read\", \"write\"]\n"
            ),
        };
        src += &format!("[[rule]]\nid = \"r{i}\"\n{body}\n");
    }
    src
}

fn policy(c: &mut Criterion) {
    let policy = Policy::from_toml("bench.toml", &hundred_rules()).expect("policy");
    let planner =
        Principal::new("agent-7", "sod", PrincipalKind::PLANNER).with_groups(["planners", "ops"]);
    let read = Operation::builder(
        Target::new("pg/team-95-prod"),
        OperationKind::Read,
        "SELECT id, amount FROM app.orders WHERE id = 42",
    )
    .object("app.orders")
    .build();
    let write = Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        "UPDATE app.orders SET amount = 1 WHERE id = 42",
    )
    .object("app.orders")
    .build();
    let mut g = c.benchmark_group("policy");
    g.bench_function("decide/100 rules/allow by rule 95", |b| {
        b.iter(|| policy.decide(black_box(&planner), black_box(&read)))
    });
    g.bench_function("decide/100 rules/default deny", |b| {
        b.iter(|| policy.decide(black_box(&planner), black_box(&write)))
    });
    g.finish();
}

fn capability(c: &mut Criterion) {
    let authority = CapabilityAuthority::new("sod", CapabilityKey::generate("k1"));
    let token = authority
        .issue(
            CapabilitySpec::new("planner-1", Duration::from_secs(3600))
                .targets(["pg/*"])
                .kinds(KindSet::of(&[OperationKind::Read, OperationKind::Write]))
                .objects(["public.*"]),
        )
        .expect("issue")
        .attenuate(Caveat::Kinds(KindSet::of(&[OperationKind::Read])))
        .and_then(|t| t.attenuate(Caveat::Targets(vec![Glob::new("pg/prod")])))
        .and_then(|t| t.attenuate(Caveat::RowLimit(1000)))
        .expect("attenuate")
        .encode();
    let op = Operation::builder(Target::new("pg/prod"), OperationKind::Read, "SELECT 1")
        .object("public.orders")
        .build();
    let now = SystemTime::now();
    let mut g = c.benchmark_group("capability");
    g.bench_function("verify/3 caveats (parse + chain + window)", |b| {
        b.iter(|| authority.verify_str(black_box(&token), now).expect("valid"))
    });
    let cap = authority.verify_str(&token, now).expect("valid");
    g.bench_function("scope check", |b| {
        b.iter(|| cap.scope().check(black_box(&op)))
    });
    g.finish();
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let idp = sod_testkit::OidcIssuer::new("https://idp.bench", "sod");
    let verifier = OidcVerifier::new(OidcConfig::new(
        "https://idp.bench",
        "sod",
        JwksSource::Static(idp.jwks().to_string()),
    ))
    .expect("verifier");
    let mut g = c.benchmark_group("jwt");
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let token = Credential::new(
            idp.token()
                .kid(kid)
                .kind("planner")
                .groups(&["planners"])
                .expires_in(3600)
                .sign(),
        );
        rt.block_on(verifier.verify(&token)).expect("valid");
        g.bench_function(format!("verify/cached JWKS/{kid}"), |b| {
            b.iter(|| {
                rt.block_on(verifier.verify(black_box(&token)))
                    .expect("valid")
            })
        });
    }
    g.finish();
}

fn masking(c: &mut Criterion) {
    let profiles = MaskProfiles::from_toml(
        "bench.toml",
        r#"
[[profile]]
name = "standard"
detectors = ["email", "payment_card"]
[[profile.rule]]
column = "*.customers.email"
strategy = "partial"
keep_last = 4
[[profile.rule]]
name = "ssn"
strategy = "hash"
[[profile.rule]]
name = "card_number"
strategy = "redact"
"#,
    )
    .expect("profiles");
    let masker = profiles.masker(&[Arc::from("standard")]).expect("masker");
    let fields = [
        Field::new(
            "email",
            Provenance::Column(ColumnRef::new("public", "customers", "email")),
        ),
        Field::new(
            "ssn",
            Provenance::Column(ColumnRef::new("public", "customers", "ssn")),
        ),
        Field::new(
            "card_number",
            Provenance::Column(ColumnRef::new("public", "customers", "card_number")),
        ),
        Field::new(
            "name",
            Provenance::Column(ColumnRef::new("public", "customers", "name")),
        ),
    ];
    let plan = masker.plan(&fields);
    let rows: Vec<[&[u8]; 4]> = (0..1000)
        .map(|_| {
            [
                &b"alice.smith@example.com"[..],
                b"123-45-6789",
                b"4111 1111 1111 1111",
                b"Alice Smith",
            ]
        })
        .collect();
    let mut g = c.benchmark_group("masking");
    g.throughput(Throughput::Elements((rows.len() * 4) as u64));
    g.bench_function("rows of 4 values (partial, hash, redact, keep)", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            for row in &rows {
                for (i, v) in row.iter().enumerate() {
                    black_box(masker.apply(plan.action(i), black_box(v), &mut out));
                }
            }
        })
    });
    for (name, action) in [
        ("partial", plan.action(0)),
        ("hash", plan.action(1)),
        ("redact", plan.action(2)),
        ("keep", plan.action(3)),
        ("scan (detectors)", FieldAction::Scan),
    ] {
        g.throughput(Throughput::Elements(rows.len() as u64));
        g.bench_function(format!("values/{name}"), |b| {
            let mut out = Vec::with_capacity(64);
            b.iter(|| {
                for row in &rows {
                    black_box(masker.apply(action, black_box(row[0]), &mut out));
                }
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("plan/4 fields", |b| {
        b.iter(|| masker.plan(black_box(&fields)))
    });
    g.finish();
}

/// The stream scrubber (SSH exec and shell output of masked principals): 4 MiB of log text in
/// the chunk sizes SSH packets come in.
fn stream_scrubber(c: &mut Criterion) {
    let masker = MaskProfiles::from_toml(
        "m.toml",
        "[[profile]]\nname = \"agent\"\ndetector_strategy = \"redact\"\n",
    )
    .expect("the profile parses")
    .masker(&["agent".into()])
    .expect("the profile exists");
    let line =
        "2026-05-01T10:04:05Z INFO request handled path=/api/v1/orders status=200 took 12ms\n";
    let input = line.repeat(4 * 1024 * 1024 / line.len());
    let mut g = c.benchmark_group("stream_scrubber");
    g.throughput(Throughput::Bytes(input.len() as u64));
    for chunk in [32 * 1024, 4096] {
        g.bench_function(format!("{chunk}-byte chunks"), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                let mut s = masker.stream();
                for piece in input.as_bytes().chunks(chunk) {
                    s.push(black_box(piece), &mut out);
                    out.clear();
                }
                s.finish(&mut out);
                out.clear();
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = policy, capability, jwt, masking, stream_scrubber
}
criterion_main!(benches);
