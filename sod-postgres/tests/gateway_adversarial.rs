//! The adversarial corpus (`tests/corpus/adversarial.toml`): a read-only planner tries to
//! write, change the schema, escalate, reach the server's files or other sessions, through the
//! simple protocol, the extended protocol (tokio-postgres) and hand-made message sequences
//! (the raw protocol, through `sod_postgres::codec`).
//!
//! One gateway serves the whole corpus. Before the first case the test records a fingerprint
//! of everything on the server a successful attack could change (table contents, catalog
//! objects and their owners, roles, settings, sequences, large objects, canary files, other
//! sessions and their locks) and starts three *victim* sessions: A (direct, executor) holds
//! advisory lock 4242 and listens on channel `sod_adv`; B (direct, executor) waits for that
//! lock; C is an executor session through the gateway. Then every case runs on a fresh
//! planner connection, and:
//!
//! - a case that expects `refused` must fail with SQLSTATE 42501 and a message starting with
//!   `sod:` (the gateway's refusal, not the server's error) — or, for a case marked
//!   `backstop = "read-only"`, with SQLSTATE 25006: the attack hides its write where the SQL
//!   analyzer cannot see it (a view, a row-level security policy, an operator, a cast, a
//!   domain), and the read-only upstream session the gateway opens for a read-only capability
//!   is what stops it;
//! - a case that expects `allowed` must succeed;
//! - afterwards the same connection must still answer `SELECT 1`, and still be the same
//!   session (user, role, `search_path`, string syntax, encoding);
//! - the fingerprint must not have changed, and no victim may have been disturbed
//!   (terminated, cancelled, notified, or had its lock taken).
//!
//! Every failure names its case and protocol; all are collected and reported together, each
//! with the corpus's `bug` note when the case documents a known gap. `SOD_ADV_VERBOSE=1`
//! prints the message-by-message transcript of every raw case, passing or not.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::StreamExt as _;
use serde::Deserialize;
use sod_postgres::codec::{self, BackendMessage, Limits, Target, frontend};
use support::Harness;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

const CORPUS: &str = include_str!("corpus/adversarial.toml");

/// How long one case (or one round of a raw script) may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock victim A holds and victim B waits for.
const VICTIM_LOCK: i64 = 4242;

/// Objects the corpus attacks, created by the superuser before the baseline is taken. The
/// functions write to `sod_adv_canary` (or advance `sod_adv_seq`), so any case that gets one
/// of them to run changes the fingerprint. The upstream role (`executor`) may run them all:
/// only the gateway stands between a planner and their effects.
const SETUP: &str = r#"
CREATE TABLE public.sod_adv_canary (what text NOT NULL);
GRANT SELECT, INSERT ON public.sod_adv_canary TO executor;
CREATE SEQUENCE public.sod_adv_seq;
SELECT nextval('public.sod_adv_seq');
GRANT ALL ON SEQUENCE public.sod_adv_seq TO executor;

-- A function the analyzer does not know, which secretly writes.
CREATE FUNCTION public.sod_adv_write() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_write: ' || current_query()); RETURN 1; END $$;
-- The same, callable in attribute notation: `c.sod_adv_purge` for `sod_adv_purge(c)`.
CREATE FUNCTION public.sod_adv_purge(c public.customers) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_purge ' || c.id); RETURN 1; END $$;
-- Declared IMMUTABLE (a lie): the planner evaluates it with constant arguments.
CREATE FUNCTION public.sod_adv_imm(i integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM nextval('public.sod_adv_seq'); RETURN i; END $$;
-- A domain whose CHECK writes; a cast whose function writes; an operator whose function writes.
CREATE FUNCTION public.sod_adv_check(v integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_check ' || v); RETURN true; END $$;
CREATE DOMAIN public.sod_adv_dom AS integer CHECK (public.sod_adv_check(VALUE));
CREATE TYPE public.sod_adv_t AS (v text);
CREATE FUNCTION public.sod_adv_cast(t text) RETURNS public.sod_adv_t LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_cast ' || t); RETURN ROW(t)::public.sod_adv_t; END $$;
CREATE CAST (text AS public.sod_adv_t) WITH FUNCTION public.sod_adv_cast(text);
CREATE FUNCTION public.sod_adv_concat(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_concat'); RETURN a || b; END $$;
CREATE OPERATOR public.+ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.sod_adv_concat);
-- A built-in name shadowed by a better-matching signature (CVE-2018-1058).
CREATE FUNCTION public.upper(v varchar) RETURNS text LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('public.upper'); RETURN pg_catalog.upper(v::text); END $$;
CREATE PROCEDURE public.sod_adv_proc() LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.sod_adv_canary VALUES ('sod_adv_proc'); END $$;
-- A view and a row-level security policy that call the writing function.
CREATE VIEW public.sod_adv_view AS SELECT public.sod_adv_write() AS w;
CREATE TABLE public.sod_adv_rls (id integer);
INSERT INTO public.sod_adv_rls VALUES (1);
ALTER TABLE public.sod_adv_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY sod_adv_rls_policy ON public.sod_adv_rls USING (public.sod_adv_write() > 0);
CREATE MATERIALIZED VIEW public.sod_adv_mv AS SELECT count(*) AS n FROM public.orders;
ALTER MATERIALIZED VIEW public.sod_adv_mv OWNER TO executor;
GRANT SELECT ON public.sod_adv_view, public.sod_adv_rls TO executor;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO executor;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA public TO executor;
-- A large object the executor owns.
SELECT lo_create(424242);
ALTER LARGE OBJECT 424242 OWNER TO executor;
"#;

/// Everything a successful attack could change, one line per fact. `{canary_files}` is
/// replaced by the files the corpus names.
const FINGERPRINT_SQL: &str = r#"
WITH usernsp AS (
    SELECT oid, nspname FROM pg_catalog.pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_toast%'
), userrel AS (
    SELECT c.*, n.nspname FROM pg_catalog.pg_class c JOIN usernsp n ON n.oid = c.relnamespace
)
SELECT line FROM (
    SELECT format('schema %s owner=%s acl=%s', nspname, pg_get_userbyid(nspowner), nspacl)
    FROM pg_namespace
  UNION ALL
    SELECT format('relation %s.%s kind=%s owner=%s acl=%s filenode=%s persistence=%s rls=%s,%s columns=%s definition=%s',
        r.nspname, r.relname, r.relkind, pg_get_userbyid(r.relowner), r.relacl, r.relfilenode,
        r.relpersistence, r.relrowsecurity, r.relforcerowsecurity,
        (SELECT md5(string_agg(format('%s:%s:%s:%s', a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, a.atthasdef), ',' ORDER BY a.attnum))
           FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped),
        CASE WHEN r.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(r.oid)) END)
    FROM userrel r
  UNION ALL
    SELECT format('data %s.%s %s', nspname, relname,
        CASE WHEN relispopulated
             THEN md5(query_to_xml(format('SELECT * FROM %I.%I t ORDER BY t::text', nspname, relname),
                                   true, false, '')::text)
             ELSE 'not populated' END)
    FROM userrel WHERE relkind IN ('r', 'p', 'm') AND relpersistence <> 't'
  UNION ALL
    SELECT format('sequence %s.%s last=%s', nspname, relname, pg_sequence_last_value(oid))
    FROM userrel WHERE relkind = 'S' AND relpersistence <> 't'
  UNION ALL
    SELECT format('function %s.%s(%s) owner=%s kind=%s volatile=%s secdef=%s acl=%s config=%s body=%s',
        n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_userbyid(p.proowner),
        p.prokind, p.provolatile, p.prosecdef, p.proacl, p.proconfig,
        md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')))
    FROM pg_proc p JOIN usernsp n ON n.oid = p.pronamespace
  UNION ALL
    SELECT format('type %s.%s kind=%s owner=%s acl=%s', n.nspname, t.typname, t.typtype,
        pg_get_userbyid(t.typowner), t.typacl)
    FROM pg_type t JOIN usernsp n ON n.oid = t.typnamespace
  UNION ALL
    SELECT format('operator %s.%s(%s,%s) function=%s owner=%s', n.nspname, o.oprname,
        o.oprleft::regtype, o.oprright::regtype, o.oprcode, pg_get_userbyid(o.oprowner))
    FROM pg_operator o JOIN usernsp n ON n.oid = o.oprnamespace
  UNION ALL
    SELECT format('cast %s as %s function=%s context=%s', castsource::regtype, casttarget::regtype,
        castfunc::regprocedure, castcontext)
    FROM pg_cast WHERE oid >= 16384
  UNION ALL
    SELECT format('constraint %s.%s on %s type=%s definition=%s', n.nspname, c.conname,
        c.conrelid::regclass, c.contype, md5(pg_get_constraintdef(c.oid)))
    FROM pg_constraint c JOIN usernsp n ON n.oid = c.connamespace
  UNION ALL
    SELECT format('trigger %s on %s enabled=%s function=%s', tgname, tgrelid::regclass, tgenabled,
        tgfoid::regprocedure)
    FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
    SELECT format('rule %s on %s', rulename, ev_class::regclass)
    FROM pg_rewrite WHERE ev_class >= 16384 AND rulename <> '_RETURN'
  UNION ALL
    SELECT format('policy %s on %s command=%s using=%s', polname, polrelid::regclass, polcmd,
        md5(coalesce(pg_get_expr(polqual, polrelid), '')))
    FROM pg_policy
  UNION ALL
    SELECT format('comment %s/%s/%s %s', classoid::regclass, objoid, objsubid, md5(description))
    FROM pg_description WHERE objoid >= 16384
  UNION ALL
    SELECT format('extension %s %s owner=%s', extname, extversion, pg_get_userbyid(extowner))
    FROM pg_extension
  UNION ALL
    SELECT format('language %s owner=%s trusted=%s acl=%s', lanname, pg_get_userbyid(lanowner),
        lanpltrusted, lanacl)
    FROM pg_language
  UNION ALL
    SELECT format('event-trigger %s', evtname) FROM pg_event_trigger
  UNION ALL
    SELECT format('publication %s', pubname) FROM pg_publication
  UNION ALL
    SELECT format('subscription %s', subname) FROM pg_subscription
  UNION ALL
    SELECT format('foreign-data-wrapper %s', fdwname) FROM pg_foreign_data_wrapper
  UNION ALL
    SELECT format('foreign-server %s', srvname) FROM pg_foreign_server
  UNION ALL
    SELECT format('default-acl %s %s %s', pg_get_userbyid(defaclrole), defaclobjtype, defaclacl)
    FROM pg_default_acl
  UNION ALL
    SELECT format('tablespace %s owner=%s', spcname, pg_get_userbyid(spcowner)) FROM pg_tablespace
  UNION ALL
    SELECT format('database %s owner=%s acl=%s connlimit=%s allowconn=%s', datname,
        pg_get_userbyid(datdba), datacl, datconnlimit, datallowconn)
    FROM pg_database
  UNION ALL
    SELECT format('role %s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s password=%s valid=%s',
        rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
        rolbypassrls, rolconnlimit, md5(coalesce(rolpassword, '')), rolvaliduntil)
    FROM pg_authid
  UNION ALL
    SELECT format('member %s of %s admin=%s', member::regrole, roleid::regrole, admin_option)
    FROM pg_auth_members
  UNION ALL
    SELECT format('db-role-setting database=%s role=%s %s', setdatabase, setrole, setconfig)
    FROM pg_db_role_setting
  UNION ALL
    SELECT format('setting %s=%s source=%s', name, setting, source)
    FROM pg_settings WHERE source <> 'default'
  UNION ALL
    SELECT format('file-setting %s:%s %s=%s applied=%s error=%s', sourcefile, sourceline, name,
        setting, applied, error)
    FROM pg_file_settings
  UNION ALL
    SELECT format('large-objects count=%s max=%s metadata=%s data=%s', count(*), max(oid),
        md5(coalesce(string_agg(format('%s:%s:%s', oid, pg_get_userbyid(lomowner), lomacl), ','
                                ORDER BY oid), '')),
        (SELECT md5(coalesce(string_agg(format('%s:%s:%s', loid, pageno, md5(data)), ','
                                        ORDER BY loid, pageno), ''))
           FROM pg_largeobject))
    FROM pg_largeobject_metadata
  UNION ALL
    SELECT format('prepared-transaction %s', gid) FROM pg_prepared_xacts
  UNION ALL
    SELECT format('replication-slot %s', slot_name) FROM pg_replication_slots
  UNION ALL
    SELECT format('backend pid=%s type=%s application=%s', pid, backend_type, application_name)
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid()
      AND (application_name LIKE 'sod-adv-victim%'
           OR backend_type IN ('checkpointer', 'background writer', 'walwriter',
                               'autovacuum launcher', 'logical replication launcher'))
  UNION ALL
    SELECT format('lock %s %s %s granted=%s pid=%s', l.locktype,
        coalesce(l.relation::regclass::text, format('%s:%s:%s', l.classid, l.objid, l.objsubid)),
        l.mode, l.granted, l.pid)
    FROM pg_locks l
    WHERE l.pid <> pg_backend_pid()
      AND (l.locktype = 'advisory'
           OR (l.locktype = 'relation' AND l.mode <> 'ShareUpdateExclusiveLock'
               AND l.relation IN (SELECT oid FROM userrel)))
  UNION ALL
    SELECT format('statistics %s.%s vacuums=%s analyzes=%s', schemaname, relname, vacuum_count,
        analyze_count)
    FROM pg_stat_user_tables WHERE schemaname NOT LIKE 'pg\_temp%'
  UNION ALL
    SELECT format('checkpoints requested=%s', checkpoints_req) FROM pg_stat_bgwriter
  UNION ALL
    SELECT format('file %s exists=%s', f, (pg_stat_file(f, true)).modification IS NOT NULL)
    FROM unnest(ARRAY[{canary_files}]::text[]) f
) lines(line)
ORDER BY line
"#;

/// What the planner's session looks like; it must not change, whatever a case tried.
const STATE_SQL: &str = "SELECT current_user::text, session_user::text, current_setting('role'), \
     current_setting('search_path'), current_setting('standard_conforming_strings'), \
     current_setting('client_encoding')";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

/// One attempt; see the header of `adversarial.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    sql: String,
    via: Via,
    why: String,
    expect: Expect,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    steps: Vec<String>,
    bug: Option<String>,
    /// `"read-only"`: the server's read-only transaction may be what refuses it.
    backstop: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Via {
    Simple,
    Extended,
    Both,
    Raw,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Refused,
    Allowed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
    Raw,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
            Protocol::Raw => "raw",
        }
    }
}

impl Case {
    fn protocols(&self) -> &'static [Protocol] {
        match self.via {
            Via::Simple => &[Protocol::Simple],
            Via::Extended => &[Protocol::Extended],
            Via::Both => &[Protocol::Simple, Protocol::Extended],
            Via::Raw => &[Protocol::Raw],
        }
    }
}

/// The corpus, checked for well-formedness.
fn corpus() -> Vec<Case> {
    let corpus: Corpus = toml::from_str(CORPUS).expect("tests/corpus/adversarial.toml parses");
    let mut names = BTreeSet::new();
    for c in &corpus.case {
        assert!(
            !c.name.is_empty()
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
            "case names are kebab-case: {:?}",
            c.name
        );
        assert!(names.insert(c.name.as_str()), "duplicate case {:?}", c.name);
        assert!(
            !c.why.trim().is_empty() && !c.why.contains('\n'),
            "case {}: `why` is one line",
            c.name
        );
        assert!(!c.sql.trim().is_empty(), "case {}: `sql` is empty", c.name);
        assert_eq!(
            c.via == Via::Raw,
            !c.steps.is_empty(),
            "case {}: `steps` go with via = \"raw\", and only there",
            c.name
        );
        assert!(
            c.params.is_empty() || c.via == Via::Extended,
            "case {}: `params` need via = \"extended\"",
            c.name
        );
        if c.via == Via::Raw {
            assert!(
                c.steps.iter().any(|s| s.starts_with('!')),
                "case {}: a raw script marks the step whose answer is checked with `!`",
                c.name
            );
        }
        assert!(
            c.bug.is_none() || c.expect == Expect::Refused,
            "case {}: only refused cases document bugs",
            c.name
        );
        assert!(
            c.backstop.is_none()
                || (c.backstop.as_deref() == Some("read-only") && c.expect == Expect::Refused),
            "case {}: the only backstop is \"read-only\", for refused cases",
            c.name
        );
    }
    corpus.case
}

#[test]
fn the_corpus_is_well_formed_and_large_enough() {
    let cases = corpus();
    let refused = cases.iter().filter(|c| c.expect == Expect::Refused).count();
    let allowed = cases.len() - refused;
    assert!(cases.len() >= 70, "{} cases", cases.len());
    assert!(refused >= 60, "{refused} refused cases");
    assert!(allowed >= 3, "{allowed} allowed controls");
    assert!(cases.iter().any(|c| c.via == Via::Raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_planner_cannot_change_anything() {
    let cases = corpus();
    let started = Instant::now();
    let h = Harness::start().await;
    let canaries = canary_files(&cases);
    for f in &canaries {
        // Left over from an earlier run that let an attack through.
        let _ = std::fs::remove_file(f);
    }
    direct(&h, SETUP);
    let fingerprint_sql = FINGERPRINT_SQL.replace(
        "{canary_files}",
        &canaries
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut victims = Victims::start(&h).await;
    let reader = h.reader();
    let state = {
        let c = h.client(&reader).await.expect("the planner connects");
        session_state(&c)
            .await
            .expect("the planner's session state")
    };

    // Per-run attribution uses a persistent superuser connection (fast); the verdict at the
    // end compares `h.direct` before and after.
    let (watch, _) = connect_watched(&h.pg.conninfo("postgres")).await;
    let before = lines(&direct(&h, &fingerprint_sql));
    let baseline = fingerprint(&watch, &fingerprint_sql).await;
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("data public.customers")),
        "the fingerprint reads the tables: {before:#?}"
    );

    let mut run = Run {
        h: &h,
        reader,
        state,
        vars: HashMap::from([("victim_pid".to_owned(), victims.a_pid.to_string())]),
        failures: Vec::new(),
        outcomes: Vec::new(),
        baseline,
        reported: BTreeSet::new(),
        fingerprint_sql: &fingerprint_sql,
        watch: &watch,
    };
    for case in &cases {
        for &protocol in case.protocols() {
            run.case(case, protocol, &mut victims).await;
        }
    }

    // The end: no case session left, then the whole upstream state as it was. (A session that
    // does not end is a finding, not a reason to skip the report.) Backends waiting in the
    // gateway's pool are not sessions: idle, their last statement the pool's reset. The cases
    // run with pooling on, so each case's session may inherit the backend of one before it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lingering =
        sod_testkit::poll_until_async(Duration::from_secs(20), "the case sessions to end", || {
            let out = direct(
                &h,
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND pid <> pg_backend_pid() AND usename <> 'postgres' \
                 AND coalesce(application_name, '') NOT LIKE 'sod-adv-victim%' \
                 AND NOT (state = 'idle' AND query = 'DISCARD ALL')",
            );
            let count = out.trim().to_owned();
            async move { (count == "0" || Instant::now() > deadline).then_some(count) }
        })
        .await;
    if lingering != "0" {
        run.failures.push(format!(
            "[end] {lingering} planner session(s) still open on the server 10s after the last case"
        ));
    }
    let after = lines(&direct(&h, &fingerprint_sql));
    let changed = diff(&before, &after);
    if !changed.is_empty() {
        run.failures.push(format!(
            "[end] the upstream state changed during the corpus:\n    {}",
            changed.join("\n    ")
        ));
    }
    run.failures.extend(victims.finish().await);
    let summary = run.summary(&cases, started.elapsed());
    let failures = std::mem::take(&mut run.failures);
    drop(run);
    drop(watch);
    h.stop().await;
    eprintln!("{summary}");
    assert!(
        failures.is_empty(),
        "{} failure(s) in the adversarial corpus:\n\n{}\n\n{summary}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What a case run produced, as seen by the client.
#[derive(Debug)]
enum Outcome {
    /// Success, with a short description of the answer.
    Ok(String),
    /// An error from the database side (the gateway or the server).
    Db {
        code: String,
        message: String,
    },
    /// A client-side failure (broken connection, protocol confusion).
    Other(String),
    TimedOut,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok(s) => write!(f, "succeeded ({s})"),
            Outcome::Db { code, message } => write!(f, "error {code}: {message}"),
            Outcome::Other(s) => write!(f, "client error: {s}"),
            Outcome::TimedOut => write!(f, "no answer within {CASE_TIMEOUT:?}"),
        }
    }
}

fn is_refusal(code: &str, message: &str) -> bool {
    code == "42501" && message.starts_with("sod:")
}

/// The gateway's refusal, or, where the case allows it, the read-only session's.
fn is_stopped(case: &Case, code: &str, message: &str) -> bool {
    is_refusal(code, message) || (case.backstop.as_deref() == Some("read-only") && code == "25006")
}

fn outcome_of(e: &tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => Outcome::Db {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        None => Outcome::Other(e.to_string()),
    }
}

/// The state of the whole run.
struct Run<'a> {
    h: &'a Harness,
    reader: String,
    /// The planner's session state on a fresh connection.
    state: String,
    vars: HashMap<String, String>,
    failures: Vec<String>,
    /// One line per run: case, protocol, pass/fail.
    outcomes: Vec<(String, &'static str, bool)>,
    baseline: BTreeSet<String>,
    /// Fingerprint differences already blamed on an earlier case.
    reported: BTreeSet<String>,
    fingerprint_sql: &'a str,
    watch: &'a Client,
}

impl Run<'_> {
    async fn case(&mut self, case: &Case, protocol: Protocol, victims: &mut Victims) {
        let label = format!("[{} / {}]", case.name, protocol.name());
        let mut problems = Vec::new();
        match protocol {
            Protocol::Simple | Protocol::Extended => match self.h.client(&self.reader).await {
                Ok(client) => {
                    let outcome = self.tokio_case(&client, case, protocol).await;
                    problems.extend(verdict(case, &outcome));
                    problems.extend(self.follow_up(&client).await);
                    problems.extend(self.upstream_changes().await);
                }
                Err(e) => problems.push(format!("the planner cannot connect: {e}")),
            },
            Protocol::Raw => match RawSession::connect(self.h.port, &self.reader).await {
                Ok(mut raw) => {
                    problems.extend(self.raw_case(&mut raw, case).await);
                    problems.extend(self.raw_follow_up(&mut raw).await);
                    problems.extend(self.upstream_changes().await);
                    raw.terminate().await;
                }
                Err(e) => problems.push(format!("the planner cannot connect: {e}")),
            },
        }
        problems.extend(victims.check().await);
        self.outcomes
            .push((case.name.clone(), protocol.name(), problems.is_empty()));
        if !problems.is_empty() {
            let mut text = format!("{label} {}\n    sql: {}", case.why, case.sql.trim());
            if let Some(bug) = &case.bug {
                text.push_str(&format!("\n    known gap: {bug}"));
            }
            for p in problems {
                text.push_str(&format!("\n    - {}", p.replace('\n', "\n      ")));
            }
            self.failures.push(text);
        }
    }

    fn substitute(&self, text: &str, case: &Case) -> String {
        let mut out = text.replace("{sql}", case.sql.trim());
        for (k, v) in &self.vars {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }

    async fn tokio_case(&self, client: &Client, case: &Case, protocol: Protocol) -> Outcome {
        let sql = self.substitute(&case.sql, case);
        let params: Vec<String> = case
            .params
            .iter()
            .map(|p| self.substitute(p, case))
            .collect();
        let attempt = async {
            match protocol {
                Protocol::Simple => client.simple_query(&sql).await.map(|messages| {
                    let rows = messages
                        .iter()
                        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                        .count();
                    let commands = messages
                        .iter()
                        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
                        .count();
                    format!("{commands} command(s), {rows} row(s)")
                }),
                _ => {
                    let rows = if params.is_empty() {
                        client.query(sql.as_str(), &[]).await
                    } else {
                        let types = vec![Type::TEXT; params.len()];
                        match client.prepare_typed(&sql, &types).await {
                            Ok(statement) => {
                                let values: Vec<&(dyn ToSql + Sync)> =
                                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                                client.query(&statement, &values).await
                            }
                            Err(e) => Err(e),
                        }
                    };
                    rows.map(|rows| format!("{} row(s)", rows.len()))
                }
            }
        };
        match tokio::time::timeout(CASE_TIMEOUT, attempt).await {
            Ok(Ok(summary)) => Outcome::Ok(summary),
            Ok(Err(e)) => outcome_of(&e),
            Err(_) => {
                let _ = client.cancel_token().cancel_query(NoTls).await;
                Outcome::TimedOut
            }
        }
    }

    /// The same connection still answers, and is still the same session.
    async fn follow_up(&self, client: &Client) -> Vec<String> {
        let mut problems = Vec::new();
        match tokio::time::timeout(CASE_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(Ok(messages)) => {
                let one = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                });
                if one.as_deref() != Some("1") {
                    problems.push(format!(
                        "the follow-up SELECT 1 answered {one:?} on the same connection"
                    ));
                }
            }
            Ok(Err(e)) => problems.push(format!(
                "the session is not usable afterwards: SELECT 1 failed with {}",
                outcome_of(&e)
            )),
            Err(_) => problems.push("the session hangs afterwards: SELECT 1 got no answer".into()),
        }
        if problems.is_empty() {
            match session_state(client).await {
                Ok(state) if state == self.state => {}
                Ok(state) => problems.push(format!(
                    "the session changed: {state:?}, a fresh session is {:?}",
                    self.state
                )),
                Err(e) => problems.push(format!("cannot read the session state: {e}")),
            }
        }
        problems
    }

    async fn raw_case(&self, raw: &mut RawSession, case: &Case) -> Vec<String> {
        let mut problems = Vec::new();
        let mut vars = self.vars.clone();
        let mut marked = false;
        let mut checked = 0;
        let mut transcript = Vec::new();
        for step in &case.steps {
            let mut text = step.replace("{sql}", case.sql.trim());
            for (k, v) in &vars {
                text = text.replace(&format!("{{{k}}}"), v);
            }
            let (mark, text) = match text.strip_prefix('!') {
                Some(rest) => (true, rest.to_owned()),
                None => (false, text),
            };
            marked |= mark;
            let (verb, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            let answer = match raw.step(self.h, verb, rest).await {
                Ok(answer) => answer,
                Err(e) => {
                    problems.push(format!(
                        "step `{text}`: {e}\n  transcript:\n    {}",
                        transcript.join("\n    ")
                    ));
                    return problems;
                }
            };
            let Some(messages) = answer else {
                continue;
            };
            transcript.push(format!("{text} -> {}", describe(&messages)));
            if verb == "capture" {
                let (name, _) = rest.split_once(' ').unwrap_or((rest, ""));
                match messages.iter().find_map(|m| match m {
                    Msg::Row(values) => values.first().cloned().flatten(),
                    _ => None,
                }) {
                    Some(value) => {
                        vars.insert(name.to_owned(), value);
                    }
                    None => {
                        problems.push(format!(
                            "step `{text}` captured nothing: {}",
                            describe(&messages)
                        ));
                        return problems;
                    }
                }
            }
            if std::mem::take(&mut marked) {
                checked += 1;
                let refusal = messages.iter().any(
                    |m| matches!(m, Msg::Error { code, message } if is_stopped(case, code, message)),
                );
                let error = messages.iter().any(|m| matches!(m, Msg::Error { .. }));
                match case.expect {
                    Expect::Refused if !refusal => problems.push(format!(
                        "expected the gateway's refusal (42501, \"sod: …\") in the answer to the \
                         marked step, got: {}\n  transcript:\n    {}",
                        describe(&messages),
                        transcript.join("\n    ")
                    )),
                    Expect::Allowed if error => problems.push(format!(
                        "expected success, got: {}\n  transcript:\n    {}",
                        describe(&messages),
                        transcript.join("\n    ")
                    )),
                    _ => {}
                }
            }
        }
        if std::env::var_os("SOD_ADV_VERBOSE").is_some() {
            eprintln!(
                "[{}] transcript:\n    {}",
                case.name,
                transcript.join("\n    ")
            );
        }
        if raw.has_pending() {
            problems.push("corpus error: the script ends without sync".into());
        }
        if checked == 0 {
            problems.push("corpus error: no marked step was answered".into());
        }
        problems
    }

    async fn raw_follow_up(&self, raw: &mut RawSession) -> Vec<String> {
        let one = match raw.step(self.h, "query", "SELECT 1").await {
            Ok(Some(messages)) => messages,
            Ok(None) => return vec!["internal: a query step gave no answer".into()],
            Err(e) => return vec![format!("the session is not usable afterwards: {e}")],
        };
        let got_one = one
            .iter()
            .any(|m| matches!(m, Msg::Row(v) if v.first() == Some(&Some("1".to_owned()))));
        let idle = matches!(one.last(), Some(Msg::Ready('I')));
        if !got_one || !idle {
            return vec![format!(
                "the follow-up SELECT 1 did not answer 1 in an idle session: {}",
                describe(&one)
            )];
        }
        match raw.step(self.h, "query", STATE_SQL).await {
            Ok(Some(messages)) => {
                let state = messages.iter().find_map(|m| match m {
                    Msg::Row(values) => Some(
                        values
                            .iter()
                            .map(|v| v.clone().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                });
                match state {
                    Some(s) if s == self.state => Vec::new(),
                    other => vec![format!(
                        "the session changed: {other:?}, a fresh session is {:?}",
                        self.state
                    )],
                }
            }
            Ok(None) => vec!["internal: a query step gave no answer".into()],
            Err(e) => vec![format!("cannot read the session state: {e}")],
        }
    }

    /// What changed upstream since the baseline that no earlier case was blamed for.
    async fn upstream_changes(&mut self) -> Vec<String> {
        let now = fingerprint(self.watch, self.fingerprint_sql).await;
        let new: Vec<String> = diff(&self.baseline, &now)
            .into_iter()
            .filter(|l| !self.reported.contains(l))
            .collect();
        if new.is_empty() {
            return Vec::new();
        }
        self.reported.extend(new.iter().cloned());
        vec![format!(
            "the upstream state changed:\n  {}",
            new.join("\n  ")
        )]
    }

    fn summary(&self, cases: &[Case], took: Duration) -> String {
        let refused = cases.iter().filter(|c| c.expect == Expect::Refused).count();
        let failed: BTreeSet<&str> = self
            .outcomes
            .iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(name, _, _)| name.as_str())
            .collect();
        let mut s = format!(
            "adversarial corpus: {} cases ({} refused, {} allowed controls), {} runs, {} failed \
             runs in {} cases, {:.1}s",
            cases.len(),
            refused,
            cases.len() - refused,
            self.outcomes.len(),
            self.outcomes.iter().filter(|(_, _, ok)| !ok).count(),
            failed.len(),
            took.as_secs_f64()
        );
        for (name, protocol, ok) in &self.outcomes {
            if !ok {
                s.push_str(&format!("\n  FAILED {name} / {protocol}"));
            }
        }
        s
    }
}

/// Whether a tokio-postgres run answered as the case expects.
fn verdict(case: &Case, outcome: &Outcome) -> Option<String> {
    match (case.expect, outcome) {
        (Expect::Refused, Outcome::Db { code, message }) if is_stopped(case, code, message) => None,
        (Expect::Allowed, Outcome::Ok(_)) => None,
        (Expect::Refused, other) => Some(format!(
            "expected the gateway's refusal (42501, \"sod: …\"), got: {other}"
        )),
        (Expect::Allowed, other) => Some(format!("expected success, got: {other}")),
    }
}

async fn session_state(client: &Client) -> Result<String, String> {
    let messages = tokio::time::timeout(CASE_TIMEOUT, client.simple_query(STATE_SQL))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| outcome_of(&e).to_string())?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .ok_or_else(|| "no row".to_owned())
}

/// Runs SQL as the superuser, straight to the server (blocking: psql).
fn direct(h: &Harness, sql: &str) -> String {
    tokio::task::block_in_place(|| h.direct(sql))
}

fn lines(out: &str) -> BTreeSet<String> {
    out.lines().map(str::to_owned).collect()
}

async fn fingerprint(watch: &Client, sql: &str) -> BTreeSet<String> {
    watch
        .simple_query(sql)
        .await
        .expect("the fingerprint query runs")
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn diff(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    before
        .difference(after)
        .map(|l| format!("- {l}"))
        .chain(after.difference(before).map(|l| format!("+ {l}")))
        .collect()
}

/// The `/tmp/sod-adv-…` files the corpus tries to create.
fn canary_files(cases: &[Case]) -> BTreeSet<String> {
    const PREFIX: &str = "/tmp/sod-adv-";
    let mut files = BTreeSet::new();
    for text in cases
        .iter()
        .flat_map(|c| std::iter::once(&c.sql).chain(&c.steps).chain(&c.params))
    {
        let mut rest = text.as_str();
        while let Some(i) = rest.find(PREFIX) {
            let tail = &rest[i..];
            let end = tail
                .char_indices()
                .skip(PREFIX.len())
                .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')))
                .map_or(tail.len(), |(j, _)| j);
            files.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    files
}

/// A direct connection whose notifications (and end) arrive on the returned channel.
async fn connect_watched(conninfo: &str) -> (Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .expect("connects");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(format!(
                        "notification on {:?} from pid {}: {:?}",
                        n.channel(),
                        n.process_id(),
                        n.payload()
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(format!("connection error: {e}"));
                    return;
                }
            }
        }
        let _ = tx.send("the connection ended".to_owned());
    });
    (client, rx)
}

/// Sessions a planner must not be able to disturb.
struct Victims {
    /// Direct, as executor: holds advisory lock 4242, listens on `sod_adv`.
    a: Client,
    a_events: mpsc::UnboundedReceiver<String>,
    a_pid: i32,
    /// Direct, as executor: waiting for advisory lock 4242 (a cancel or the end of A ends it).
    b: tokio::task::JoinHandle<Result<Client, tokio_postgres::Error>>,
    b_reported: bool,
    /// The executor through the gateway.
    c: Client,
    c_events: mpsc::UnboundedReceiver<String>,
}

impl Victims {
    async fn start(h: &Harness) -> Victims {
        let direct_info =
            |app: &str| format!("{} application_name={app}", h.pg.conninfo("executor"));
        let (a, a_events) = connect_watched(&direct_info("sod-adv-victim-a")).await;
        a.batch_execute(&format!(
            "LISTEN sod_adv; SELECT pg_advisory_lock({VICTIM_LOCK})"
        ))
        .await
        .expect("victim A takes the lock");
        let a_pid: i32 = a
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("victim A's pid")
            .get(0);
        let (b_client, _b_events) = connect_watched(&direct_info("sod-adv-victim-b")).await;
        let b = tokio::spawn(async move {
            b_client
                .batch_execute(&format!("SELECT pg_advisory_lock({VICTIM_LOCK})"))
                .await
                .map(|()| b_client)
        });
        sod_testkit::poll_until_async(
            Duration::from_secs(10),
            "victim B to wait for the lock",
            || {
                let out = direct(
                    h,
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                );
                async move { (out.trim() == "1").then_some(()) }
            },
        )
        .await;
        let (c, c_events) = connect_watched(&format!(
            "{} password={} application_name=sod-adv-victim-c",
            h.conninfo(),
            h.executor()
        ))
        .await;
        c.batch_execute("SELECT 1").await.expect("victim C works");
        Victims {
            a,
            a_events,
            a_pid,
            b,
            b_reported: false,
            c,
            c_events,
        }
    }

    /// Nobody disturbed the victims.
    async fn check(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, client) in [("A", &self.a), ("C", &self.c)] {
            match tokio::time::timeout(CASE_TIMEOUT, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => problems.push(format!("victim {name} is broken: {e}")),
                Err(_) => problems.push(format!("victim {name} does not answer")),
            }
        }
        while let Ok(event) = self.a_events.try_recv() {
            problems.push(format!("victim A (listening on sod_adv) got {event}"));
        }
        while let Ok(event) = self.c_events.try_recv() {
            problems.push(format!("victim C got {event}"));
        }
        if !self.b_reported && self.b.is_finished() {
            self.b_reported = true;
            problems.push(
                "victim B stopped waiting for advisory lock 4242: it was cancelled or \
                 terminated, or A lost the lock"
                    .into(),
            );
        }
        problems
    }

    /// Releases the lock and checks B gets it only now.
    async fn finish(self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self
            .a
            .batch_execute(&format!("SELECT pg_advisory_unlock({VICTIM_LOCK})"))
            .await
        {
            problems.push(format!("[end] victim A cannot release its lock: {e}"));
        }
        match tokio::time::timeout(Duration::from_secs(10), self.b).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => problems.push(format!("[end] victim B's lock wait failed: {e}")),
            Ok(Err(e)) => problems.push(format!("[end] victim B's task failed: {e}")),
            Err(_) => problems.push("[end] victim B never got the lock".into()),
        }
        problems
    }
}

/// A backend message, reduced to what a verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Error { code: String, message: String },
    Row(Vec<Option<String>>),
    Complete(String),
    Ready(char),
    Other(&'static str),
}

fn describe(messages: &[Msg]) -> String {
    let parts: Vec<String> = messages
        .iter()
        .map(|m| match m {
            Msg::Error { code, message } => format!("Error {code} {message:?}"),
            Msg::Row(values) => format!("DataRow {values:?}"),
            Msg::Complete(tag) => format!("CommandComplete {tag:?}"),
            Msg::Ready(status) => format!("ReadyForQuery {status}"),
            Msg::Other(name) => (*name).to_owned(),
        })
        .collect();
    parts.join(", ")
}

/// A planner connection spoken to message by message.
struct RawSession {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl RawSession {
    /// Connects and authenticates; returns after the first ReadyForQuery.
    async fn connect(port: u16, token: &str) -> Result<RawSession, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = RawSession {
            stream,
            buf: BytesMut::new(),
            out: BytesMut::new(),
        };
        frontend::startup(&mut raw.out, &[("user", "agent"), ("database", "sod")])
            .map_err(|e| e.to_string())?;
        raw.flush().await?;
        let limits = Limits::default();
        loop {
            while let Some(frame) =
                codec::decode_backend(&mut raw.buf, &limits).map_err(|e| e.to_string())?
            {
                match frame.parse().map_err(|e| e.to_string())? {
                    BackendMessage::Authentication(codec::Auth::CleartextPassword) => {
                        frontend::password(&mut raw.out, token.as_bytes())
                            .map_err(|e| e.to_string())?;
                        raw.flush().await?;
                    }
                    BackendMessage::ReadyForQuery { .. } => return Ok(raw),
                    BackendMessage::ErrorResponse(e) => {
                        return Err(format!("refused at start-up: {:?}", e.message()));
                    }
                    _ => {}
                }
            }
            raw.read().await?;
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        let out = self.out.split();
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn read(&mut self) -> Result<(), String> {
        match tokio::time::timeout(CASE_TIMEOUT, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) => Err("the gateway closed the connection".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("read failed: {e}")),
            Err(_) => Err(format!("no answer within {CASE_TIMEOUT:?}")),
        }
    }

    fn has_pending(&self) -> bool {
        !self.out.is_empty()
    }

    async fn terminate(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.flush().await;
    }

    /// Sends everything queued and reads up to ReadyForQuery. A server that asks for COPY data
    /// is told the copy failed, so a wrongly allowed COPY cannot hang the test.
    async fn round(&mut self) -> Result<Vec<Msg>, String> {
        self.flush().await?;
        let limits = Limits::default();
        let mut messages = Vec::new();
        loop {
            while let Some(frame) = codec::decode_backend(&mut self.buf, &limits)
                .map_err(|e| format!("undecodable answer: {e}"))?
            {
                let parsed = frame
                    .parse()
                    .map_err(|e| format!("unparseable answer: {e}"))?;
                let msg = match parsed {
                    BackendMessage::ReadyForQuery { status } => {
                        messages.push(Msg::Ready(char::from(status.as_byte())));
                        return Ok(messages);
                    }
                    BackendMessage::ErrorResponse(e) => Msg::Error {
                        code: e.code().unwrap_or_default().to_owned(),
                        message: e.message().unwrap_or_default().to_owned(),
                    },
                    BackendMessage::DataRow(row) => Msg::Row(
                        row.values()
                            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    ),
                    BackendMessage::CommandComplete { tag } => Msg::Complete(tag.to_owned()),
                    BackendMessage::CopyInResponse(_) => {
                        frontend::copy_fail(&mut self.out, "sod-adv: no data for you")
                            .map_err(|e| e.to_string())?;
                        self.flush().await?;
                        Msg::Other("CopyInResponse")
                    }
                    other => Msg::Other(message_name(&other)),
                };
                messages.push(msg);
            }
            self.read()
                .await
                .map_err(|e| format!("{e} (after: {})", describe(&messages)))?;
        }
    }

    /// Runs one script step. Steps that end a round (`sync`, `query`, `capture`, `fastpath`)
    /// return its answer; the others only queue a message.
    async fn step(
        &mut self,
        h: &Harness,
        verb: &str,
        rest: &str,
    ) -> Result<Option<Vec<Msg>>, String> {
        let name = |n: &str| {
            if n == "-" {
                String::new()
            } else {
                n.to_owned()
            }
        };
        let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let bad = |e: codec::ProtocolError| e.to_string();
        match verb {
            "query" => frontend::query(&mut self.out, rest).map_err(bad)?,
            "capture" => frontend::query(&mut self.out, tail).map_err(bad)?,
            "parse" => frontend::parse(&mut self.out, &name(first), tail, &[]).map_err(bad)?,
            "parse_typed" => {
                let (types, sql) = tail.split_once(' ').unwrap_or((tail, ""));
                let oids: Vec<u32> = types
                    .split(',')
                    .map(|t| resolve_oid(h, &format!("'{t}'::regtype")))
                    .collect::<Result<_, _>>()?;
                frontend::parse(&mut self.out, &name(first), sql, &oids).map_err(bad)?;
            }
            "bind" => {
                let mut words = rest.split_whitespace();
                let portal = name(words.next().unwrap_or("-"));
                let statement = name(words.next().unwrap_or("-"));
                let values: Vec<&str> = words.collect();
                let params: Vec<Option<&[u8]>> =
                    values.iter().map(|v| Some(v.as_bytes())).collect();
                frontend::bind(&mut self.out, &portal, &statement, &[], &params, &[])
                    .map_err(bad)?;
            }
            "describe_statement" => {
                frontend::describe(&mut self.out, Target::Statement, &name(first)).map_err(bad)?
            }
            "describe_portal" => {
                frontend::describe(&mut self.out, Target::Portal, &name(first)).map_err(bad)?
            }
            "close_statement" => {
                frontend::close(&mut self.out, Target::Statement, &name(first)).map_err(bad)?
            }
            "close_portal" => {
                frontend::close(&mut self.out, Target::Portal, &name(first)).map_err(bad)?
            }
            "execute" => frontend::execute(&mut self.out, &name(first), 0).map_err(bad)?,
            "sync" => frontend::sync(&mut self.out),
            "flush" => frontend::flush(&mut self.out),
            "copy_data" => {
                let data = rest.replace("\\t", "\t").replace("\\n", "\n");
                frontend::copy_data(&mut self.out, data.as_bytes()).map_err(bad)?;
            }
            "copy_done" => frontend::copy_done(&mut self.out),
            "fastpath" => {
                let oid = resolve_oid(h, &format!("'{first}'::regprocedure"))?;
                let args: Vec<&str> = tail.split_whitespace().collect();
                let values: Vec<Option<&[u8]>> = args.iter().map(|a| Some(a.as_bytes())).collect();
                frontend::function_call(&mut self.out, oid, &[], &values, 0).map_err(bad)?;
            }
            other => return Err(format!("corpus error: unknown step `{other}`")),
        }
        if matches!(verb, "sync" | "query" | "capture" | "fastpath") {
            self.round().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

fn resolve_oid(h: &Harness, expr: &str) -> Result<u32, String> {
    let out = direct(h, &format!("SELECT ({expr})::oid"));
    out.trim()
        .parse()
        .map_err(|e| format!("cannot resolve {expr}: {e} ({out:?})"))
}

fn message_name(m: &BackendMessage<'_>) -> &'static str {
    match m {
        BackendMessage::ParseComplete => "ParseComplete",
        BackendMessage::BindComplete => "BindComplete",
        BackendMessage::CloseComplete => "CloseComplete",
        BackendMessage::NoData => "NoData",
        BackendMessage::PortalSuspended => "PortalSuspended",
        BackendMessage::RowDescription(_) => "RowDescription",
        BackendMessage::ParameterDescription(_) => "ParameterDescription",
        BackendMessage::EmptyQueryResponse => "EmptyQueryResponse",
        BackendMessage::NoticeResponse(_) => "NoticeResponse",
        BackendMessage::NotificationResponse { .. } => "NotificationResponse",
        BackendMessage::ParameterStatus { .. } => "ParameterStatus",
        BackendMessage::CopyOutResponse(_) => "CopyOutResponse",
        BackendMessage::CopyBothResponse(_) => "CopyBothResponse",
        BackendMessage::CopyData(_) => "CopyData",
        BackendMessage::CopyDone => "CopyDone",
        BackendMessage::FunctionCallResponse(_) => "FunctionCallResponse",
        _ => "other message",
    }
}
