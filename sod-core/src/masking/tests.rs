use super::Strategy;
use super::*;
use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

const PROFILES: &str = r#"
[[profile]]
name = "planner"
detectors = ["email", "payment_card"]

[[profile.rule]]
column = "*.customers.email"
strategy = "partial"
keep_last = 4

[[profile.rule]]
name = "ssn"
strategy = "hash"

[[profile.rule]]
column = "public.customers.card_number"
strategy = "null"

[[profile]]
name = "strict"
detectors = []
unknown = "null"

[[profile.rule]]
column = "*.*.email"
strategy = "redact"
"#;

fn profiles() -> MaskProfiles {
    MaskProfiles::from_toml("masks.toml", PROFILES).expect("valid profiles")
}

fn col(t: &str, c: &str) -> Provenance {
    Provenance::Column(ColumnRef::new("public", t, c))
}

fn masker(names: &[&str]) -> Masker {
    let names: Vec<Arc<str>> = names.iter().map(|n| Arc::from(*n)).collect();
    profiles().masker(&names).expect("known profiles")
}

fn apply(m: &Masker, a: FieldAction, v: &str) -> Option<String> {
    let mut out = Vec::new();
    match m.apply(a, v.as_bytes(), &mut out) {
        Masked::Unchanged => Some(v.to_owned()),
        Masked::Replaced => Some(String::from_utf8(out).expect("utf8")),
        Masked::Null => None,
    }
}

#[test]
fn plan_follows_provenance() {
    let m = masker(&["planner"]);
    let plan = m.plan(&[
        Field::new("email", col("customers", "email")),
        Field::new("name", col("customers", "name")),
        Field::new("ssn", col("employees", "ssn")),
        Field::new("card", col("customers", "card_number")),
        Field::new(
            "lower",
            Provenance::Derived(vec![ColumnRef::new("public", "customers", "email")]),
        ),
        Field::new(
            "concat",
            Provenance::Derived(vec![ColumnRef::new("public", "customers", "name")]),
        ),
        Field::new("one", Provenance::Constant),
        Field::new("mystery", Provenance::Unknown),
        // A partition's column: the parent's rule applies as it is.
        Field::new(
            "email",
            Provenance::Aliases(vec![
                ColumnRef::new("public", "customers_2024", "email"),
                ColumnRef::new("public", "customers", "email"),
            ]),
        ),
        Field::new(
            "x",
            Provenance::Derived(vec![
                ColumnRef::new("public", "customers", "name"),
                ColumnRef::new("public", "customers", "card_number"),
            ]),
        ),
        Field::new(
            "h",
            Provenance::Derived(vec![ColumnRef::new("public", "employees", "ssn")]),
        ),
    ]);
    assert_eq!(
        plan.actions(),
        [
            FieldAction::Mask(Strategy::Partial { keep_last: 4 }),
            FieldAction::Keep,
            FieldAction::Mask(Strategy::Hash),
            FieldAction::Mask(Strategy::Null),
            // Computed from a partially masked column: a partial mask of `reverse(email)`
            // would show its first letters, so computed values are redacted.
            FieldAction::Mask(Strategy::Redact),
            FieldAction::Scan,
            FieldAction::Keep,
            FieldAction::Mask(Strategy::Redact),
            FieldAction::Mask(Strategy::Partial { keep_last: 4 }),
            // Null stays null.
            FieldAction::Mask(Strategy::Null),
            // A hash of a computed value would hash the caller's own guesses too.
            FieldAction::Mask(Strategy::Redact),
        ]
    );
    // Beyond the plan: masked.
    assert_eq!(plan.action(99), FieldAction::Mask(Strategy::Redact));
    assert_eq!(
        apply(&m, plan.action(0), "alice@example.com").as_deref(),
        Some("*****@******e.com")
    );
    assert_eq!(apply(&m, plan.action(3), "4111111111111111"), None);
    assert_eq!(
        apply(&m, plan.action(5), "Alice <alice@example.com>").as_deref(),
        Some("Alice <****>")
    );
    assert_eq!(apply(&m, plan.action(5), "Alice").as_deref(), Some("Alice"));
}

#[test]
fn selectors_ignore_case() {
    let m = masker(&["planner"]);
    let plan = m.plan(&[
        Field::new(
            "E",
            Provenance::Column(ColumnRef::new("Public", "Customers", "EMAIL")),
        ),
        Field::new("S", Provenance::Column(ColumnRef::new("x", "y", "SSN"))),
    ]);
    assert!(
        plan.actions()
            .iter()
            .all(|a| matches!(a, FieldAction::Mask(_))),
        "{plan:?}"
    );
}

#[test]
fn union_of_profiles_takes_the_strictest() {
    let m = masker(&["planner", "strict"]);
    let plan = m.plan(&[
        Field::new("email", col("customers", "email")),
        Field::new("u", Provenance::Unknown),
    ]);
    assert_eq!(
        plan.actions(),
        [
            FieldAction::Mask(Strategy::Redact),
            FieldAction::Mask(Strategy::Null)
        ]
    );
    assert!(m.is_sensitive(&ColumnRef::new("s", "t", "email")));
    assert!(!m.is_sensitive(&ColumnRef::new("s", "t", "name")));
}

#[test]
fn no_profile_masks_nothing_and_unknown_profiles_are_refused() {
    let none = profiles().masker(&[]).expect("empty");
    assert!(none.is_noop());
    assert!(none.plan(&[Field::new("u", Provenance::Unknown)]).is_noop());
    let r = profiles()
        .masker(&[Arc::from("nope")])
        .expect_err("unknown");
    assert_eq!(r.code(), RefusalCode::Misconfigured);
    assert!(
        profiles()
            .masker(&[Arc::from("planner"), Arc::from("nope")])
            .is_err()
    );
}

#[test]
fn scrub_free_text() {
    let m = masker(&["planner"]);
    let msg = r#"invalid input syntax for type integer: "bob@example.org""#;
    assert_eq!(
        m.scrub(msg),
        r#"invalid input syntax for type integer: "****""#
    );
    assert!(matches!(m.scrub("nothing here"), Cow::Borrowed(_)));
}

#[test]
fn hash_key_makes_hashes_stable_across_instances() {
    let key = Secret::new(vec![9u8; 32]);
    let a = profiles().with_hash_key(&key);
    let b = profiles().with_hash_key(&key);
    let c = profiles();
    let ssn = [Field::new("ssn", col("e", "ssn"))];
    let h = |p: &MaskProfiles| {
        let m = p.masker(&[Arc::from("planner")]).expect("profile");
        apply(&m, m.plan(&ssn).action(0), "123-45-6789").expect("value")
    };
    assert_eq!(h(&a), h(&b));
    assert_ne!(h(&a), h(&c));
    assert!(h(&a).starts_with(HASH_PREFIX));
}

#[test]
fn non_utf8_values_in_scanned_fields_are_masked() {
    let m = masker(&["planner"]);
    let mut out = Vec::new();
    assert_eq!(
        m.apply(FieldAction::Scan, &[0xff, 0xfe, b'a'], &mut out),
        Masked::Replaced
    );
    assert_eq!(out, REDACTED.as_bytes());
}

#[test]
fn config_errors() {
    let cases = [
        ("[[profile]]\nname = \"none\"\n", "other than \"none\""),
        (
            "[[profile]]\nname = \"a\"\n[[profile]]\nname = \"a\"\n",
            "duplicate profile",
        ),
        (
            "[[profile]]\nname = \"a\"\n[[profile.rule]]\ncolumn = \"email\"\nstrategy = \"redact\"\n",
            "write `name = \"email\"`",
        ),
        (
            "[[profile]]\nname = \"a\"\n[[profile.rule]]\nname = \"x\"\nstrategy = \"partial\"\n",
            "needs `keep_last`",
        ),
        (
            "[[profile]]\nname = \"a\"\n[[profile.rule]]\nname = \"x\"\nstrategy = \"hash\"\nkeep_last = 2\n",
            "only applies",
        ),
        (
            "[[profile]]\nname = \"a\"\n[[profile.rule]]\nstrategy = \"hash\"\n",
            "exactly one of",
        ),
        (
            "[[profile]]\nname = \"a\"\ndetectors = [\"dna\"]\n",
            "unknown detector `dna`",
        ),
        (
            "[[profile]]\nname = \"a\"\n[[profile.rule]]\nname = \"x\"\nstrategy = \"shuffle\"\n",
            "unknown variant `shuffle`",
        ),
    ];
    for (src, msg) in cases {
        let e = MaskProfiles::from_toml("m.toml", src).err().expect("error");
        assert!(e.to_string().contains(msg), "{src:?}: {e}");
        assert!(e.to_string().starts_with("m.toml:"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
}

proptest! {
    /// Masked output never contains the original value (for values long enough that a
    /// coincidental substring is impossible), whatever the strategy.
    #[test]
    fn masked_values_do_not_reveal_the_original(v in "[a-z0-9]{12,40}", strategy in 0usize..3) {
        let m = masker(&["planner"]);
        let s = [Strategy::Redact, Strategy::Hash, Strategy::Partial { keep_last: 4 }][strategy];
        let out = apply(&m, FieldAction::Mask(s), &v).expect("not null");
        prop_assert!(!out.contains(&v));
        prop_assert!(!out.contains(&v[..8]));
    }

    /// Detectors and scrubbing never panic, and scrubbing is idempotent.
    #[test]
    fn scrub_never_panics_and_is_idempotent(v in "\\PC{0,120}") {
        let m = masker(&["planner"]);
        let once = m.scrub(&v).into_owned();
        prop_assert_eq!(m.scrub(&once).into_owned(), once.clone());
        let _ = Detectors::ALL.find(&v);
    }
}
