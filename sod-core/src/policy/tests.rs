use super::*;
use crate::{KindSet, OperationKind, PrincipalKind, Target};
use proptest::prelude::*;

fn planner() -> Principal {
    Principal::new("agent-7", "sod", PrincipalKind::PLANNER).with_groups(["planners"])
}

fn op(kind: OperationKind, objects: &[&str]) -> Operation {
    Operation::builder(Target::new("pg/prod"), kind, "SELECT * FROM t WHERE id = 1")
        .objects(objects.iter().copied())
        .build()
}

fn policy(src: &str) -> Policy {
    Policy::from_toml("test.toml", src).expect("valid policy")
}

fn err(src: &str) -> PolicyError {
    Policy::from_toml("test.toml", src).expect_err("invalid policy")
}

#[test]
fn no_rules_means_deny() {
    for kind in OperationKind::ALL {
        let d = Policy::deny_all().decide(&planner(), &op(kind, &[]));
        assert_eq!(*d.effect(), Effect::Deny);
        assert_eq!(d.rule_id(), DEFAULT_DENY);
    }
    let d = policy("").decide(&planner(), &op(OperationKind::Read, &[]));
    assert_eq!(d.rule_id(), DEFAULT_DENY);
}

#[test]
fn deny_overrides_approval_overrides_allow_whatever_the_order() {
    let rules = [
        r#"[[rule]]
id = "allow-all"
effect = "allow""#,
        r#"[[rule]]
id = "approve-writes"
effect = "require_approval"
kinds = "write"
approvers = "dba""#,
        r#"[[rule]]
id = "deny-orders"
effect = "deny"
objects = "public.orders"
reason = "orders are frozen""#,
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let src = order.map(|i| rules[i]).join("\n");
        let p = policy(&src);
        let d = p.decide(&planner(), &op(OperationKind::Write, &["public.orders"]));
        assert_eq!(d.rule_id(), "deny-orders", "{order:?}");
        assert_eq!(d.reason(), "orders are frozen");
        let d = p.decide(&planner(), &op(OperationKind::Write, &["public.items"]));
        assert_eq!(d.rule_id(), "approve-writes");
        let Effect::RequireApproval(spec) = d.effect() else {
            panic!("expected approval")
        };
        assert_eq!(spec.approver_groups, ["dba"]);
        assert_eq!(spec.quorum, 1);
        assert_eq!(spec.ttl, DEFAULT_APPROVAL_TTL);
        let d = p.decide(&planner(), &op(OperationKind::Read, &["public.items"]));
        assert_eq!((d.effect(), d.rule_id()), (&Effect::Allow, "allow-all"));
    }
}

#[test]
fn every_condition_is_checked() {
    let p = policy(
        r#"
[[rule]]
id = "narrow"
effect = "allow"
principals = ["agent-*"]
groups = ["planners", "ops"]
principal_kinds = ["planner"]
targets = ["pg/*"]
kinds = ["read"]
objects = ["public.*"]
text = "(?i)^select"
touches_sensitive = false
"#,
    );
    let ok = op(OperationKind::Read, &["public.t"]);
    assert_eq!(*p.decide(&planner(), &ok).effect(), Effect::Allow);
    let explain = |pr: &Principal, o: &Operation| p.explain(pr, o).steps[0].outcome;
    assert_eq!(
        explain(&planner(), &op(OperationKind::Write, &["public.t"])),
        Err(Mismatch::Kind)
    );
    let human = Principal::new("agent-7", "sod", PrincipalKind::Human).with_groups(["planners"]);
    assert_eq!(explain(&human, &ok), Err(Mismatch::PrincipalKind));
    let sensitive = Operation::builder(Target::new("pg/prod"), OperationKind::Read, "select 1")
        .object("public.t")
        .touches_sensitive(true)
        .build();
    assert_eq!(explain(&planner(), &sensitive), Err(Mismatch::Sensitive));
    let elsewhere = Operation::builder(Target::new("k8s/prod"), OperationKind::Read, "select 1")
        .object("public.t")
        .build();
    assert_eq!(explain(&planner(), &elsewhere), Err(Mismatch::Target));
    let bob = Principal::new("bob", "sod", PrincipalKind::PLANNER).with_groups(["planners"]);
    assert_eq!(explain(&bob, &ok), Err(Mismatch::Principal));
    let loner = Principal::new("agent-9", "sod", PrincipalKind::PLANNER);
    assert_eq!(explain(&loner, &ok), Err(Mismatch::Group));
    assert_eq!(
        explain(&planner(), &op(OperationKind::Read, &["private.t"])),
        Err(Mismatch::Objects)
    );
    let update = Operation::builder(Target::new("pg/prod"), OperationKind::Read, "update t")
        .object("public.t")
        .build();
    assert_eq!(explain(&planner(), &update), Err(Mismatch::Text));
}

#[test]
fn objects_allow_needs_all_deny_needs_any() {
    let p = policy(
        r#"
[[rule]]
id = "orders"
effect = "allow"
objects = "public.orders"
[[rule]]
id = "no-secrets"
effect = "deny"
objects = "public.secrets"
"#,
    );
    let d = |objs: &[&str]| {
        p.decide(&planner(), &op(OperationKind::Read, objs))
            .rule_id()
            .to_owned()
    };
    assert_eq!(d(&["public.orders"]), "orders");
    // One object outside the allow rule: not allowed.
    assert_eq!(d(&["public.orders", "public.items"]), DEFAULT_DENY);
    // One denied object among allowed ones: denied.
    assert_eq!(d(&["public.orders", "public.secrets"]), "no-secrets");
    // An allow rule scoped to objects does not match an operation touching none.
    assert_eq!(d(&[]), DEFAULT_DENY);
    // Objects not all known: the deny rule applies, the allow rule cannot.
    let unknown = |objs: &[&str]| {
        Operation::builder(Target::new("ssh/web"), OperationKind::Read, "cat *")
            .objects(objs.iter().copied())
            .objects_unknown("`*` is a glob")
            .build()
    };
    let denied = p.decide(&planner(), &unknown(&["public.orders"]));
    assert_eq!(denied.rule_id(), "no-secrets");
    assert!(
        denied
            .refusal(&unknown(&[]))
            .to_string()
            .contains("what it touches is not known: `*` is a glob")
    );
    let only_allow = policy(
        r#"
[[rule]]
id = "orders"
effect = "allow"
objects = "public.orders"
"#,
    );
    assert_eq!(
        only_allow
            .decide(&planner(), &unknown(&["public.orders"]))
            .rule_id(),
        DEFAULT_DENY
    );
    // A rule without an `objects` condition does not care.
    let any = policy(
        r#"
[[rule]]
id = "reads"
effect = "allow"
kinds = "read"
"#,
    );
    assert_eq!(any.decide(&planner(), &unknown(&[])).rule_id(), "reads");
}

#[test]
fn collections_allowed_only_when_covered_denied_when_they_may_hold_a_match() {
    let p = policy(
        r#"
[[rule]]
id = "default-reads"
effect = "allow"
objects = "default/*"
[[rule]]
id = "one-pod"
effect = "allow"
objects = "default/core/pods/web-1"
[[rule]]
id = "no-admin-secret"
effect = "deny"
objects = "default/core/secrets/admin"
[[rule]]
id = "no-cluster"
effect = "deny"
objects = "_cluster/*"
"#,
    );
    let list = |prefix: &str| {
        Operation::builder(Target::new("k8s/demo"), OperationKind::Read, "GET /x")
            .collection(prefix)
            .build()
    };
    let d = |op: &Operation| p.decide(&planner(), op).rule_id().to_owned();
    // Every pod in `default` is inside `default/*`; a deny rule for another namespace or for
    // cluster objects does not touch it.
    assert_eq!(d(&list("default/core/pods/")), "default-reads");
    // The list of secrets may hold `admin`: the deny rule applies.
    assert_eq!(d(&list("default/core/secrets/")), "no-admin-secret");
    // A rule for one pod does not cover the list of all pods.
    let narrow = policy(
        r#"
[[rule]]
id = "one-pod"
effect = "allow"
objects = "default/core/pods/web-1"
"#,
    );
    assert_eq!(
        narrow
            .decide(&planner(), &list("default/core/pods/"))
            .rule_id(),
        DEFAULT_DENY
    );
    // Cluster-wide lists are denied; another namespace is not allowed by `default/*`.
    assert_eq!(d(&list("_cluster/core/nodes/")), "no-cluster");
    assert_eq!(d(&list("kube-system/core/pods/")), DEFAULT_DENY);
    // A glob that could only match part of a namespace name does not cover it:
    // `default/*` says nothing of `default-2/…`.
    assert_eq!(d(&list("default-2/core/pods/")), DEFAULT_DENY);
}

#[test]
fn masks_default_explicit_none_and_union() {
    let p = policy(
        r#"
default_mask = "standard"
[[rule]]
id = "a"
effect = "allow"
kinds = "read"
[[rule]]
id = "b"
effect = "allow"
kinds = "read"
objects = "public.customers"
mask = "pii"
[[rule]]
id = "exec-write"
effect = "allow"
kinds = "write"
principal_kinds = "executor"
mask = "none"
[[rule]]
id = "approve"
effect = "require_approval"
kinds = "write"
principal_kinds = "planner"
approvers = ["approvers"]
quorum = 2
approval_ttl = "1h"
mask = "pii"
"#,
    );
    let masks = |d: Decision| d.masks().iter().map(|m| m.to_string()).collect::<Vec<_>>();
    assert_eq!(
        masks(p.decide(&planner(), &op(OperationKind::Read, &["public.t"]))),
        ["standard"]
    );
    assert_eq!(
        masks(p.decide(&planner(), &op(OperationKind::Read, &["public.customers"]))),
        ["standard", "pii"]
    );
    let exec = Principal::new("exec", "sod", PrincipalKind::EXECUTOR);
    assert!(
        p.decide(&exec, &op(OperationKind::Write, &[]))
            .masks()
            .is_empty()
    );
    let d = p.decide(&planner(), &op(OperationKind::Write, &[]));
    assert_eq!(masks(d.clone()), ["pii"]);
    let Effect::RequireApproval(spec) = d.effect() else {
        panic!("approval")
    };
    assert_eq!((spec.quorum, spec.ttl.as_secs()), (2, 3600));
    assert_eq!(p.referenced_masks(), ["pii", "standard"]);
}

#[test]
fn unknown_operations_carry_the_analyzer_message() {
    let p = policy(
        r#"
[[rule]]
id = "no-unknown"
effect = "deny"
kinds = "unknown"
reason = "not understood"
"#,
    );
    let o = Operation::not_understood(
        Target::new("pg/prod"),
        "SELEC 1",
        "syntax error at or near \"SELEC\"",
    );
    let r = p.decide(&planner(), &o).refusal(&o);
    assert_eq!(r.rule(), Some("no-unknown"));
    assert_eq!(
        r.reason(),
        "not understood: syntax error at or near \"SELEC\""
    );
}

#[test]
fn explain_shows_every_rule() {
    let p = policy(
        r#"
[[rule]]
id = "reads"
effect = "allow"
kinds = "read"

[[rule]]
id = "no-schema"
effect = "deny"
kinds = "schema"
"#,
    );
    let e = p.explain(&planner(), &op(OperationKind::Schema, &[]));
    let text = e.to_string();
    assert!(
        text.contains("test.toml:2 allow `reads`: skipped (operation kind not in `kinds`)"),
        "{text}"
    );
    assert!(
        text.contains("test.toml:7 deny `no-schema`: matched"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "decision: deny by `no-schema`: denied by rule `no-schema` [deny overrides]"
        ),
        "{text}"
    );
    let e = p.explain(&planner(), &op(OperationKind::Write, &[]));
    assert!(e.to_string().ends_with("[no rule matched]"));
}

#[test]
fn config_errors_name_file_line_and_rule() {
    let cases: &[(&str, usize, Option<&str>, &str)] = &[
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\nkindz = [\"read\"]\n",
            4,
            None,
            "unknown field `kindz`",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\nkinds = [\"delete\"]\n",
            4,
            None,
            "unknown variant `delete`",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"permit\"\n",
            3,
            None,
            "unknown variant `permit`",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\ntext = \"(\"\n",
            4,
            Some("a"),
            "invalid regex",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\n\n[[rule]]\nid = \"a\"\neffect = \"deny\"\n",
            6,
            Some("a"),
            "duplicate rule id",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\napprovers = [\"x\"]\n",
            4,
            Some("a"),
            "only applies",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"require_approval\"\n",
            1,
            Some("a"),
            "needs `approvers`",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"require_approval\"\napprovers = \"x\"\nquorum = 0\n",
            5,
            Some("a"),
            "at least 1",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"deny\"\nmask = \"m\"\n",
            4,
            Some("a"),
            "does not apply to deny",
        ),
        (
            "[[rule]]\nid = \"has space\"\neffect = \"deny\"\n",
            2,
            Some("has space"),
            "rule ids use",
        ),
        (
            "[[rule]]\neffect = \"deny\"\n",
            1,
            None,
            "missing field `id`",
        ),
        (
            "[[rule]]\nid = \"a\"\neffect = \"require_approval\"\napprovers = \"x\"\napproval_ttl = \"soon\"\n",
            5,
            None,
            "invalid duration",
        ),
        ("rules = 1\n", 1, None, "unknown field `rules`"),
        (
            "[[rule]]\nid = \"a\"\neffect = \"allow\"\nprincipal_kinds = [\"robot\"]\n",
            4,
            None,
            "unknown variant `robot`",
        ),
    ];
    for (src, line, rule, msg) in cases {
        let e = err(src);
        assert_eq!(e.origin, "test.toml");
        assert_eq!(e.line, Some(*line), "{src:?}: {e}");
        assert_eq!(e.rule.as_deref(), *rule, "{src:?}: {e}");
        assert!(e.message.contains(msg), "{src:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("test.toml:{line}:")),
            "{e}"
        );
    }
    let missing = Policy::from_file("/nonexistent/policy.toml").expect_err("missing file");
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/policy.toml: cannot read policy file")
    );
}

// ---- property tests ----------------------------------------------------------------------

const TARGETS: [&str; 3] = ["pg/prod", "pg/dev", "k8s/prod"];
const OBJECTS: [&str; 4] = [
    "public.orders",
    "public.customers",
    "audit.log",
    "public.items",
];
const PATTERNS: [&str; 5] = ["*", "pg/*", "public.*", "public.orders", "audit.*"];
const TEXTS: [&str; 5] = ["(?i)^select", "orders", r"\bid\b", "^$", "(?i)SLEEP"];
const OP_TEXTS: [&str; 4] = [
    "SELECT * FROM orders",
    "update items set id = 1",
    "select pg_sleep(1)",
    "",
];

#[derive(Clone, Debug)]
struct GenRule {
    effect: u8,
    kinds: Option<Vec<OperationKind>>,
    principal_kinds: Option<Vec<&'static str>>,
    targets: Option<Vec<&'static str>>,
    objects: Option<Vec<&'static str>>,
    text: Option<&'static str>,
}

impl GenRule {
    fn toml(&self, id: &str) -> String {
        let mut s = format!("[[rule]]\nid = \"{id}\"\n");
        s += match self.effect {
            0 => "effect = \"allow\"\n",
            1 => "effect = \"deny\"\n",
            _ => "effect = \"require_approval\"\napprovers = \"approvers\"\n",
        };
        let list = |v: &[&str]| {
            v.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(k) = &self.kinds {
            let names: Vec<&str> = k.iter().map(|k| k.as_str()).collect();
            s += &format!("kinds = [{}]\n", list(&names));
        }
        if let Some(p) = &self.principal_kinds {
            s += &format!("principal_kinds = [{}]\n", list(p));
        }
        if let Some(t) = &self.targets {
            s += &format!("targets = [{}]\n", list(t));
        }
        if let Some(o) = &self.objects {
            s += &format!("objects = [{}]\n", list(o));
        }
        if let Some(t) = self.text {
            s += &format!("text = '{t}'\n");
        }
        s
    }
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        0u8..3,
        proptest::option::of(proptest::sample::subsequence(
            OperationKind::ALL.to_vec(),
            1..4,
        )),
        proptest::option::of(proptest::sample::subsequence(
            vec!["human", "planner", "executor", "agent"],
            1..3,
        )),
        proptest::option::of(proptest::sample::subsequence(PATTERNS.to_vec(), 1..3)),
        proptest::option::of(proptest::sample::subsequence(PATTERNS.to_vec(), 1..3)),
        proptest::option::of(proptest::sample::select(TEXTS.to_vec())),
    )
        .prop_map(
            |(effect, kinds, principal_kinds, targets, objects, text)| GenRule {
                effect,
                kinds,
                principal_kinds,
                targets,
                objects,
                text,
            },
        )
}

fn gen_case() -> impl Strategy<Value = (Principal, Operation)> {
    (
        0usize..3,
        proptest::sample::select(OperationKind::ALL.to_vec()),
        proptest::sample::select(TARGETS.to_vec()),
        proptest::sample::subsequence(OBJECTS.to_vec(), 0..3),
        proptest::sample::select(OP_TEXTS.to_vec()),
    )
        .prop_map(|(pk, kind, target, objects, text)| {
            let kind_p = [
                PrincipalKind::Human,
                PrincipalKind::PLANNER,
                PrincipalKind::EXECUTOR,
            ][pk];
            (
                Principal::new("p", "sod", kind_p),
                Operation::builder(Target::new(target), kind, text)
                    .objects(objects)
                    .build(),
            )
        })
}

fn compile(rules: &[GenRule]) -> Policy {
    let src: String = rules
        .iter()
        .enumerate()
        .map(|(i, r)| r.toml(&format!("r{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    policy(&src)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The decision agrees with a literal reading of "deny overrides, then approval, then
    /// allow, no match is deny", using each rule's own match result.
    #[test]
    fn decision_follows_the_precedence(rules in proptest::collection::vec(gen_rule(), 0..8), (p, o) in gen_case()) {
        let pol = compile(&rules);
        let matched: Vec<usize> = pol.rules.iter().enumerate().filter(|(_, r)| r.check(&p, &o).is_ok()).map(|(i, _)| i).collect();
        let first = |e: u8| matched.iter().copied().find(|&i| rules[i].effect == e);
        let d = pol.decide(&p, &o);
        match (first(1), first(2), first(0)) {
            (Some(i), _, _) => { prop_assert_eq!(d.effect(), &Effect::Deny); prop_assert_eq!(d.rule_id(), format!("r{i}")); }
            (None, Some(i), _) => { prop_assert!(matches!(d.effect(), Effect::RequireApproval(_))); prop_assert_eq!(d.rule_id(), format!("r{i}")); }
            (None, None, Some(i)) => { prop_assert_eq!(d.effect(), &Effect::Allow); prop_assert_eq!(d.rule_id(), format!("r{i}")); }
            (None, None, None) => { prop_assert_eq!(d.effect(), &Effect::Deny); prop_assert_eq!(d.rule_id(), DEFAULT_DENY); }
        }
    }

    /// Adding an allow rule anywhere never turns a denial by a rule, or a requirement for
    /// approval, into an allow.
    #[test]
    fn adding_an_allow_rule_never_weakens(
        rules in proptest::collection::vec(gen_rule(), 0..8),
        extra in gen_rule(),
        at in 0usize..9,
        (p, o) in gen_case(),
    ) {
        let before = compile(&rules).decide(&p, &o);
        let mut more = rules.clone();
        let mut allow = extra;
        allow.effect = 0;
        more.insert(at.min(rules.len()), allow);
        let after = compile(&more).decide(&p, &o);
        match before.effect() {
            Effect::Deny if before.rule_id() != DEFAULT_DENY => prop_assert_eq!(after.effect(), &Effect::Deny),
            Effect::RequireApproval(_) => prop_assert!(matches!(after.effect(), Effect::RequireApproval(_))),
            _ => {}
        }
    }

    /// A deny rule that matches always wins, wherever it is inserted.
    #[test]
    fn a_matching_deny_rule_always_wins(
        rules in proptest::collection::vec(gen_rule(), 0..8),
        at in 0usize..9,
        (p, o) in gen_case(),
    ) {
        let mut more = rules.clone();
        let deny = GenRule { effect: 1, kinds: Some(vec![o.kind()]), principal_kinds: None, targets: None, objects: None, text: None };
        more.insert(at.min(rules.len()), deny);
        let d = compile(&more).decide(&p, &o);
        prop_assert_eq!(d.effect(), &Effect::Deny);
    }

    /// With no rules at all, everything is denied.
    #[test]
    fn empty_policy_denies_everything((p, o) in gen_case()) {
        let d = Policy::deny_all().decide(&p, &o);
        prop_assert_eq!(d.rule_id(), DEFAULT_DENY);
    }
}

#[test]
fn kind_sets_in_rules() {
    let p = policy("[[rule]]\nid = \"a\"\neffect = \"allow\"\nkinds = [\"read\", \"connect\"]\n");
    assert_eq!(
        p.rules[0].when.kinds,
        Some(KindSet::of(&[OperationKind::Read, OperationKind::Connect]))
    );
}

#[test]
fn batches_are_judged_part_by_part() {
    let p = policy(
        r#"
[[rule]]
id = "reads"
effect = "allow"
kinds = ["read", "write"]
mask = "standard"
[[rule]]
id = "no-deletes"
effect = "deny"
kinds = "write"
text = "(?i)^delete"
[[rule]]
id = "orders-approval"
effect = "require_approval"
kinds = "write"
objects = "public.orders"
approvers = "dba"
quorum = 2
"#,
    );
    let t = Target::new("pg/prod");
    let part = |kind, text: &str, objects: &[&str]| {
        Operation::builder(t.clone(), kind, text)
            .objects(objects.iter().copied())
            .build()
    };
    let batch = |parts: Vec<Operation>| {
        let text = parts
            .iter()
            .map(|p| p.text().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        parts
            .into_iter()
            .fold(
                Operation::builder(t.clone(), OperationKind::Read, text),
                |b, p| b.part(p),
            )
            .build()
    };
    // `^delete` does not match the joined text "BEGIN; DELETE …", but it matches the part.
    let b = batch(vec![
        part(OperationKind::Read, "BEGIN", &[]),
        part(OperationKind::Write, "DELETE FROM public.t", &["public.t"]),
    ]);
    assert_eq!(b.kind(), OperationKind::Write);
    assert_eq!(b.objects(), ["public.t"]);
    let d = p.decide(&planner(), &b);
    assert_eq!((d.effect(), d.rule_id()), (&Effect::Deny, "no-deletes"));
    // Any part needing approval makes the batch need it.
    let b = batch(vec![
        part(OperationKind::Read, "SELECT 1", &[]),
        part(
            OperationKind::Write,
            "UPDATE public.orders SET x = 1",
            &["public.orders"],
        ),
    ]);
    let d = p.decide(&planner(), &b);
    assert_eq!(d.rule_id(), "orders-approval");
    assert!(matches!(d.effect(), Effect::RequireApproval(s) if s.quorum == 2));
    // All parts allowed: allowed, masks combined.
    let b = batch(vec![
        part(OperationKind::Read, "SELECT 1", &[]),
        part(OperationKind::Read, "SELECT 2", &[]),
    ]);
    let d = p.decide(&planner(), &b);
    assert_eq!(*d.effect(), Effect::Allow);
    assert_eq!(d.masks().len(), 1);
    // A part no rule allows denies the batch.
    let b = batch(vec![
        part(OperationKind::Read, "SELECT 1", &[]),
        part(OperationKind::Admin, "VACUUM", &[]),
    ]);
    assert_eq!(p.decide(&planner(), &b).rule_id(), DEFAULT_DENY);
    let text = p.explain(&planner(), &b).to_string();
    assert!(text.contains("part 2:"), "{text}");
}

proptest! {
    /// A batch is denied exactly when one of its parts is denied on its own.
    #[test]
    fn a_batch_is_denied_iff_a_part_is(rules in proptest::collection::vec(gen_rule(), 0..6), cases in proptest::collection::vec(gen_case(), 1..4)) {
        let pol = compile(&rules);
        let principal = cases[0].0.clone();
        let parts: Vec<Operation> = cases.iter().map(|(_, o)| o.clone()).collect();
        let any_denied = parts.iter().any(|o| *pol.decide(&principal, o).effect() == Effect::Deny);
        let b = parts.iter().cloned().fold(
            Operation::builder(Target::new("pg/prod"), OperationKind::Read, "batch"),
            |b, p| b.part(p),
        ).build();
        let d = pol.decide(&principal, &b);
        prop_assert_eq!(*d.effect() == Effect::Deny, any_denied);
    }
}
