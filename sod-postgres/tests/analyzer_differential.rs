//! The pure-Rust analyzer on sqlparser (`--features sqlparser`), held to the verdicts of the
//! default analyzer on PostgreSQL's own parser:
//!
//! - on the shared corpus (`tests/corpus/analyzer.toml`), wherever sqlparser parses the text, its
//!   kind is the corpus's; where it does not, the text is not understood (unknown);
//! - the differential: wherever both parse a corpus case or one of the extra cases below, both
//!   give the same kind (and the same functions and objects); the same for a call placed in
//!   every expression position, for every operator of up to three characters, and for texts
//!   glued together at random from pieces where the two lexers and grammars could differ;
//! - arbitrary text never panics it, and what it cannot parse is unknown;
//! - its normalized text re-reads to the same verdict.
//!
//! A summary (how many texts each parses, how many agree) is printed: `cargo test -p
//! sod-postgres --features sqlparser --test analyzer_differential -- --nocapture`.
#![cfg(feature = "sqlparser")]
// The summaries are printed on purpose (`cargo test -- --nocapture` shows them).
#![allow(clippy::print_stdout)]

mod corpus;
use corpus::{SPELLING_SAMPLES, respell};

use proptest::prelude::*;
use sod_core::OperationKind;
use sod_postgres::sql::{Analysis, Analyzer, PgQueryAnalyzer, SessionEffect, SqlParserAnalyzer};

fn sqlparser(sql: &str) -> Analysis {
    SqlParserAnalyzer::new().analyze(sql)
}

fn pg(sql: &str) -> Analysis {
    PgQueryAnalyzer::new().analyze(sql)
}

/// sqlparser where it parses the text, PostgreSQL's parser where it does not: this passes the
/// corpus exactly when sqlparser's verdicts are right wherever it parses.
struct SqlParserWherePossible;

impl Analyzer for SqlParserWherePossible {
    fn analyze(&self, sql: &str) -> Analysis {
        let a = sqlparser(sql);
        if a.error.is_some() { pg(sql) } else { a }
    }
}

/// (a) The corpus's kinds, wherever sqlparser parses the case; the rest is not understood.
#[test]
fn corpus_kinds_where_sqlparser_parses() {
    let cases = corpus::cases();
    let failures = corpus::check_corpus(&SqlParserWherePossible, corpus::Checks::KIND_ONLY);
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let mut unparsed = 0;
    for case in &cases {
        let a = sqlparser(&case.sql);
        if let Some(error) = &a.error {
            unparsed += 1;
            println!("not understood by sqlparser: {:?}: {error}", case.sql);
            assert_eq!(a.kind(), OperationKind::Unknown, "{:?}", case.sql);
            assert_eq!(a.statements.len(), 1, "{:?}", case.sql);
            assert!(
                a.reasons().contains(&format!("not understood: {error}")),
                "{:?}: {:?}",
                case.sql,
                a.reasons()
            );
        }
    }
    println!(
        "sqlparser parses {} of {} corpus cases; {unparsed} are not understood (unknown)",
        cases.len() - unparsed,
        cases.len()
    );
}

/// How close the other facts (objects, functions, tags, effects) are, where sqlparser parses.
/// Printed, not asserted: the corpus holds sqlparser to the kind only.
#[test]
fn corpus_other_facts_summary() {
    let alone = corpus::check_corpus(&SqlParserAnalyzer::new(), corpus::Checks::ALL);
    println!(
        "sqlparser alone fails {} corpus expectations (all checks), most on text it does not parse",
        alone.len()
    );
    let failures = corpus::check_corpus(&SqlParserWherePossible, corpus::Checks::ALL);
    println!(
        "facts beyond the kind that differ from the corpus where sqlparser parses: {}",
        failures.len()
    );
    for f in &failures {
        println!("  {f}");
    }
}

/// Statements beyond the corpus that both analyzers should read alike: lexical corner cases
/// where sqlparser's tokenizer differs from PostgreSQL's, and everyday statements.
const EXTRA: &[&str] = &[
    "SELECT * FROM t WHERE a<-1",
    "SELECT * FROM t WHERE a=-1 AND b<>-2 AND c>=+3",
    "SELECT 1 |- 2",
    "SELECT 1 <| a FROM t",
    "SELECT 1 END FOR SHARE",
    "SELECT $1FOR UPDATE",
    "SELECT (VALUES (1), (2))",
    "SELECT TREAT(1 AS int), TREAT(1 AS int4)",
    "SELECT * FROM LOCAL, CURRENT_TIME(2)",
    "SELECT values(1)",
    "SELECT int(1)",
    "SELECT left('abc', 1), right('abc', 1)",
    "COPY t FROM STDIN;\n-- data\n",
    "SELECT 1 END, pg_read_file('x')",
    "SELECT 1 END; DROP TABLE t",
    "SELECT VALUES OR INTO PROGRAM",
    "SELECT FOR UPDATE",
    "SELECT INTO t FOR UPDATE",
    "SELECT 1 'x' FROM t",
    "SELECT nextval('s') 'x'",
    "SELECT a &> b, a&>-1, a &>b FROM t",
    "SELECT a == b FROM t",
    "SELECT 1 @- 2",
    "SELECT 1 !=- 2",
    "SELECT a-->1\n FROM t",
    "SELECT 1 +/* c */ 2",
    "SELECT 1 -/* c */ 2",
    "SELECT 1 <-- c\n; DELETE FROM t",
    "SELECT 1 --\r; DELETE FROM t",
    "SELECT 'a\\'; DELETE FROM t; --'",
    "SELECT E'a\\'; DELETE FROM t; --'",
    "SELECT E'\\\\'' ; DELETE FROM t --'",
    "SELECT $a$ $b$ ; DELETE FROM t $b$ $a$",
    "SELECT $a$x$a$; DELETE FROM t",
    "SELECT 1 /* /* */ ; DELETE FROM t; */",
    "SELECT U&\"\\0070g_read_file\"('/etc/passwd')",
    "SELECT U&'\\0027' UESCAPE '!'",
    "SELECT u & \"x\" FROM t",
    "SELECT\u{a0}1; DELETE FROM t",
    "DELETE\u{a0}FROM t",
    "COPY t FROM STDIN; DROP TABLE t",
    "COPY t FROM STDIN;\n1\t2\n\\.\n",
    "SELECT * FROM t WHERE a = ?",
    "SELECT a$b FROM t",
    "SELECT 0x1F, 1_000, 1e3",
    "SELECT 'a'\n'b'",
    "SELECT FROM WHERE",
    "SELECT * FROM select",
    "SELECT * FROM \"select\"",
    "SELECT * FROM a.select",
    "SELECT * FROM t LIMIT 1 FOR UPDATE",
    "SELECT * FROM t FOR UPDATE OF t SKIP LOCKED",
    "SELECT * FROM t FOR SHARE NOWAIT",
    "SELECT 1 WHERE 'a' LIKE 'b' ESCAPE '!'",
    "SELECT 1 WHERE 'a' SIMILAR TO 'b' ESCAPE '!'",
    "SELECT x AT TIME ZONE 'UTC', EXTRACT(epoch FROM x) FROM t",
    "SELECT (now(), now()) OVERLAPS (now(), now())",
    "SELECT ceil(1.5), floor(1.5), substring('abc', 2), substr('abc', 2)",
    "SELECT trim(leading 'a' FROM 'aab'), trim(trailing 'b' FROM 'abb'), trim('  x  ')",
    "SELECT x IS NORMALIZED FROM t",
    "SELECT current_time(2), current_timestamp(0), localtime, user, current_schema",
    "SELECT current_schema()",
    "SELECT \"coalesce\"(1)",
    "SELECT public.coalesce(1)",
    "SELECT json_object('{a,1}'), json_object('a' VALUE 1)",
    "SELECT * FROM generate_series(1, 3) WITH ORDINALITY AS g(n, i)",
    "SELECT * FROM unnest(ARRAY[1]) u, LATERAL (SELECT u) x",
    "SELECT * FROM t JOIN LATERAL f(t.a) ON true",
    "SELECT * FROM t TABLESAMPLE BERNOULLI (1)",
    "SELECT * FROM t TABLESAMPLE public.system_rows(1)",
    "SELECT arr[1], (rec).field, (f()).x FROM t",
    "SELECT * FROM t WHERE a = ANY(SELECT lo_import('x'))",
    "SELECT * FROM t WHERE EXISTS (SELECT pg_sleep(1))",
    "SELECT * FROM t ORDER BY a USING >",
    "SELECT * FROM t ORDER BY a USING OPERATOR(pg_catalog.<)",
    "SELECT 1 OPERATOR(\"Evil\".+) 2",
    "SELECT 1 OPERATOR(pg_catalog.===) 2",
    "SELECT a <=> b FROM t",
    "SELECT !! 5",
    "SELECT 5 !",
    "SELECT * FROM db.s.t",
    "SELECT * FROM a.b.c.d",
    "SELECT nextval('\"Seq\"'), setval('s.q', 1), currval(('x'))",
    "SELECT nextval(E's')",
    "SELECT set_config('search' || '_path', 'x', false)",
    "SELECT set_config(setting_name => 'work_mem', new_value => '1MB', is_local => false)",
    "SELECT pg_catalog.set_config('statement_timeout', '1s', false)",
    "SELECT * FROM (SELECT * FROM t) s FOR UPDATE",
    "SELECT * FROM t UNION ALL (SELECT * FROM u FOR UPDATE)",
    "SELECT * INTO UNLOGGED t2 FROM t",
    "SELECT * INTO TABLE t2 FROM t",
    "WITH RECURSIVE a AS (SELECT 1 UNION ALL SELECT * FROM a) SELECT * FROM a",
    "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b",
    "WITH a AS MATERIALIZED (SELECT 1) SELECT * FROM a",
    "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) INSERT INTO u SELECT * FROM a",
    "WITH a AS (SELECT 1) UPDATE t SET x = (SELECT * FROM a)",
    "WITH a AS (SELECT 1) MERGE INTO t USING a ON true WHEN MATCHED THEN DO NOTHING",
    "INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING RETURNING *",
    "INSERT INTO t SELECT * FROM pg_read_file('x')",
    "INSERT INTO pg_settings VALUES ('search_path', 'x')",
    "UPDATE t SET a = DEFAULT WHERE CURRENT OF c",
    "UPDATE t AS x SET (a, b) = (SELECT 1, 2) WHERE x.id = 1",
    "DELETE FROM ONLY t WHERE id IN (SELECT id FROM u) RETURNING id",
    "DELETE FROM pg_catalog.pg_settings",
    "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT DEFAULT VALUES",
    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t",
    "EXPLAIN (ANALYZE 0) DELETE FROM t",
    "EXPLAIN (ANALYZE 'off') DELETE FROM t",
    "EXPLAIN (ANALYZE on) DELETE FROM t",
    "EXPLAIN (ANALYSE) DELETE FROM t",
    "EXPLAIN (ANALYSE true) DELETE FROM t",
    "EXPLAIN (\"analyze\") DELETE FROM t",
    "EXPLAIN (ANALYZE 0.0) DELETE FROM t",
    "EXPLAIN (ANALYZE 00) DELETE FROM t",
    "EXPLAIN (ANALYZE '0') DELETE FROM t",
    "EXPLAIN (ANALYZE -0) DELETE FROM t",
    "EXPLAIN (ANALYZE -1) DELETE FROM t",
    "EXPLAIN (VERBOSE) SELECT pg_sleep(1)",
    "EXPLAIN ANALYZE VERBOSE SELECT set_config('search_path', 'x', false)",
    "EXPLAIN SELECT * FROM t; DELETE FROM t",
    "EXPLAIN INSERT INTO t SELECT * INTO u FROM v",
    "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1",
    "PREPARE p(int, text) AS UPDATE t SET a = $2 WHERE id = $1",
    "PREPARE p AS EXPLAIN ANALYZE DELETE FROM t",
    "PREPARE p AS SELECT pg_read_file($1)",
    "EXECUTE p(pg_read_file('x'))",
    "EXPLAIN EXECUTE p(1)",
    "CREATE TABLE t AS SELECT nextval('s')",
    "CREATE TABLE IF NOT EXISTS s.t (a int GENERATED ALWAYS AS (f(b)) STORED, b int CHECK (g(b)))",
    "CREATE TABLE t (a int REFERENCES s.u ON DELETE CASCADE, CONSTRAINT c FOREIGN KEY (a) REFERENCES v (id))",
    "CREATE TABLE t (a serial) PARTITION BY RANGE (a)",
    "CREATE UNLOGGED TABLE t (a int)",
    "CREATE VIEW v AS SELECT pg_read_file('x')",
    "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER RETURN pg_read_file('x')::int",
    "CREATE INDEX i ON t USING gin (to_tsvector('english', a))",
    "CREATE INDEX i ON t (f(a))",
    "CREATE SEQUENCE s START 1 INCREMENT 1",
    "CREATE TYPE t AS RANGE (subtype = int4)",
    "CREATE DOMAIN d AS int DEFAULT f()",
    "CREATE TRIGGER tr AFTER UPDATE ON t FOR EACH STATEMENT EXECUTE PROCEDURE f()",
    "CREATE SCHEMA IF NOT EXISTS s AUTHORIZATION bob",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public",
    "CREATE ROLE r WITH PASSWORD 'x' CREATEDB",
    "CREATE USER u WITH PASSWORD 'x'",
    "CREATE DATABASE d OWNER bob",
    "CREATE POLICY p ON t FOR SELECT TO PUBLIC USING (owner = current_user)",
    "ALTER TABLE t ADD CONSTRAINT c CHECK (f(a))",
    "ALTER TABLE t ALTER COLUMN a TYPE bigint USING a::bigint",
    "ALTER TABLE t FORCE ROW LEVEL SECURITY",
    "ALTER TABLE IF EXISTS ONLY t DROP COLUMN a CASCADE",
    "ALTER SCHEMA s OWNER TO bob",
    "ALTER SCHEMA s RENAME TO u",
    "ALTER FUNCTION f(int) OWNER TO bob",
    "ALTER FUNCTION f(int) RENAME TO g",
    "ALTER TYPE mood RENAME VALUE 'a' TO 'b'",
    "ALTER ROLE bob PASSWORD 'x'",
    "ALTER USER bob WITH SUPERUSER",
    "DROP MATERIALIZED VIEW IF EXISTS mv",
    "DROP INDEX i, j",
    "DROP DATABASE IF EXISTS d",
    "DROP EXTENSION IF EXISTS dblink CASCADE",
    "DROP PROCEDURE p(int)",
    "DROP DOMAIN d",
    "DROP TRIGGER tr ON t",
    "COMMENT ON FUNCTION f(int) IS 'x'",
    "GRANT ALL PRIVILEGES ON TABLE t, u TO bob WITH GRANT OPTION",
    "GRANT USAGE ON SCHEMA s TO bob",
    "GRANT EXECUTE ON FUNCTION f() TO PUBLIC",
    "REVOKE ALL ON SEQUENCE s FROM PUBLIC",
    "TRUNCATE ONLY t, s.u CONTINUE IDENTITY RESTRICT",
    "LOCK TABLE t, u IN SHARE MODE NOWAIT",
    "VACUUM ANALYZE t",
    "VACUUM VERBOSE",
    "ANALYZE",
    "ANALYZE VERBOSE t",
    "CALL p(nextval('s'))",
    "CALL pg_catalog.p()",
    "COPY t (a) FROM STDIN WITH (FORMAT binary)",
    "COPY t TO STDOUT WITH CSV HEADER",
    "COPY (SELECT pg_read_file('x')) TO STDOUT",
    "COPY t TO PROGRAM 'gzip > /tmp/x'",
    "COPY t FROM '/tmp/x' WITH (FORMAT csv)",
    "COPY t FROM STDOUT",
    "COPY t TO STDIN",
    "DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT nextval('s')",
    "DECLARE c CURSOR FOR SELECT * FROM t FOR SHARE",
    "FETCH NEXT FROM c",
    "FETCH FORWARD 5 IN c",
    "FETCH BACKWARD ALL FROM c",
    "CLOSE \"C\"",
    "LISTEN \"Chan\"; UNLISTEN chan",
    "NOTIFY c, 'x'",
    "DEALLOCATE \"ALL\"",
    "DEALLOCATE PREPARE ALL",
    "DISCARD TEMPORARY",
    "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "BEGIN WORK",
    "START TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE",
    "COMMIT WORK",
    "END TRANSACTION",
    "ROLLBACK AND NO CHAIN",
    "ROLLBACK TO s",
    "RELEASE s",
    "SAVEPOINT \"S\"",
    "SET SESSION statement_timeout = 0",
    "SET search_path = DEFAULT",
    "SET search_path TO \"$user\", public",
    "SET TIME ZONE LOCAL",
    "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE",
    "SET ROLE NONE",
    "SET SESSION ROLE bob",
    "SET SESSION AUTHORIZATION 'bob'",
    "SET LOCAL TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
    "SET xmloption = content",
    "SET myapp.tenant = '1'",
    "SET \"application_name\" = 'x'",
    "RESET TIME ZONE",
    "RESET work_mem",
    "RESET application_name",
    "SHOW work_mem",
    "SHOW \"TimeZone\"",
    "SHOW TIME ZONE",
    "LOAD '$libdir/plugins/x'",
    "VALUES (nextval('s'))",
    "SELECT * FROM (VALUES (1), (2)) v(a)",
    "SELECT 1 UNION SELECT 2 INTERSECT SELECT 3 EXCEPT ALL SELECT 4",
    "SELECT DISTINCT a FROM t GROUP BY ROLLUP (a) HAVING count(*) > 0 WINDOW w AS () ORDER BY 1 FETCH FIRST 1 ROWS ONLY",
    "SELECT a FROM t OFFSET 1 ROWS FETCH NEXT 2 ROWS WITH TIES",
    "SELECT CAST(a AS int), a::text, int '1', interval '1 day', date '2020-01-01' FROM t",
    "SELECT '{1,2}'::int[], ARRAY(SELECT 1), ARRAY[[1]]",
    "SELECT ROW(1, 2) = ROW(1, 2), (1, 2) < (3, 4)",
    "SELECT a COLLATE \"C\" FROM t",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t",
    "SELECT count(DISTINCT a), string_agg(a, ',' ORDER BY a) FROM t",
    "SELECT xmlexists('//a' PASSING '<a/>')",
    "SELECT jsonb_path_query(j, '$.a') FROM t",
    "SELECT '{}'::jsonb #> '{a}', '{}'::jsonb #>> '{a}', '{}'::jsonb - 'a', '{}'::jsonb ? 'a'",
    "SELECT to_char(now(), 'YYYY'), to_timestamp(1), age(now()), make_date(2020, 1, 1)",
    "SELECT pg_read_file",
    "SELECT * FROM pg_read_file",
    "SELECT dblink_connect('x')",
    "SELECT lo_open(1, 2)",
    "SELECT * FROM t WHERE f(a) IS NULL",
    "SELECT a FROM t WHERE a ILIKE ANY (ARRAY['x'])",
    "SELECT TOP 1 * FROM t",
    "SELECT * FROM t QUALIFY a = 1",
    "SHOW TABLES",
    "USE db",
    "DESCRIBE t",
    "KILL 1",
    "REPLACE INTO t VALUES (1)",
    "INSERT IGNORE INTO t VALUES (1)",
    "DELETE t FROM t",
    "UPDATE t SET a = 1 ORDER BY a LIMIT 1",
    "CREATE TEMPORARY FUNCTION f() AS 'x'",
    "SELECT * FROM t WHERE a = 1 -- c\n OR pg_sleep(1) IS NULL",
    "SELECT 1 AS \"x\"\"y\", t.* FROM ONLY t AS x(a, b)",
    "ALTER TABLE t ADD COLUMN b int DEFAULT pg_read_file('x')",
    "ALTER TABLE t ADD COLUMN b int DEFAULT nextval('s')",
    "CREATE TABLE t (a int) WITH (fillfactor = 70)",
    "SELECT EXISTS (SELECT 1 FROM t FOR UPDATE)",
    "SELECT * FROM t LIMIT ALL",
    "INSERT INTO t VALUES (1) ON CONFLICT ON CONSTRAINT c DO UPDATE SET a = f()",
    "SELECT * FROM t, LATERAL (WITH u AS (DELETE FROM x RETURNING 1) SELECT * FROM u) y",
    "SELECT sum(a) OVER (ORDER BY b ROWS BETWEEN f() PRECEDING AND CURRENT ROW) FROM t",
    "SELECT a FROM t ORDER BY a COLLATE \"C\" NULLS FIRST",
    "SELECT $_$x$_$, $q$'$q$",
    "SELECT 'a' OPERATOR(pg_catalog.||) 'b'",
    "SELECT int4(1), text 'x', '1'::regproc",
    "SELECT pg_catalog.pg_sleep(1)",
    "SELECT \"PG_SLEEP\"(1)",
    "SELECT a[1:2], a[:1] FROM t",
    "SELECT f(a => 1), g(b := 2)",
    "SELECT concat(VARIADIC ARRAY['a'])",
    "SELECT ROW(t.*) FROM t",
    "SELECT xmlagg(x ORDER BY y), count(*) OVER () FROM t",
    "SELECT * FROM t1 FULL OUTER JOIN t2 USING (a) CROSS JOIN t3",
    "SELECT * FROM t WHERE (a, b) IN ((1, 2)) AND a ~ 'x' AND b !~* 'y'",
    "SELECT * FROM t WHERE a = 1 UNION ALL SELECT * FROM pg_ls_dir('.')",
    "SELECT (SELECT pg_read_file('x'))::text",
    "SELECT * FROM t WHERE id = $1::int",
    "SELECT lower(x) COLLATE \"de_DE\" FROM t",
    "SHOW search_path; SET search_path = x",
    "COMMENT ON TABLE t IS $$x$$",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a) WHERE f(a)",
    "SELECT ARRAY[1] || 2, 'a' ^@ 'b', point(1, 2) <-> point(3, 4)",
    "SELECT DISTINCT ON (f(a)) a FROM t",
    "SELECT * FROM t WHERE a IS NOT NULL AND b ISNULL",
    "SELECT * FROM (SELECT * FROM t) AS s(a) JOIN LATERAL (SELECT s.a) u ON true",
    "SELECT * FROM xmltable('/a' PASSING '<a/>' COLUMNS b int PATH f())",
    "SELECT * FROM json_table('[]'::jsonb, '$' COLUMNS (a int PATH '$' DEFAULT f() ON EMPTY)) j",
    "SELECT current_setting('search_path'), pg_catalog.current_setting('x', true)",
    "SELECT has_table_privilege(current_user, 't', 'SELECT')",
    "SELECT * FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'",
    "SELECT * FROM dblink('dbname=x', 'SELECT 1') AS t(a int)",
    "SELECT query_to_xml('SELECT 1', true, true, '')",
    "TABLE t",
    "SELECT * FROM t WHERE a = 'x' COLLATE \"C\"",
];

/// Every text of the differential: the corpus's cases, then [`EXTRA`], each with a name.
fn differential_texts() -> Vec<(String, String)> {
    let mut texts: Vec<(String, String)> = corpus::cases()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("corpus case {}", i + 1), c.sql))
        .collect();
    texts.extend(
        EXTRA
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("extra case {}", i + 1), (*s).to_owned())),
    );
    texts
}

/// (b) The differential: wherever both parse, the same kind. (d) Prints how many texts each
/// parses and how many agree.
#[test]
fn both_analyzers_agree_where_both_parse() {
    let texts = differential_texts();
    let corpus_len = corpus::cases().len();
    let (mut both, mut agree, mut only_pg, mut only_sqlparser, mut neither) = (0, 0, 0, 0, 0);
    let (mut corpus_both, mut corpus_agree) = (0, 0);
    let mut mismatches = Vec::new();
    for (i, (name, sql)) in texts.iter().enumerate() {
        let (p, s) = (pg(sql), sqlparser(sql));
        // Wherever either fails, its verdict is unknown.
        for a in [&p, &s] {
            if a.error.is_some() {
                assert_eq!(a.kind(), OperationKind::Unknown, "{name} {sql:?}");
            }
        }
        match (p.error.is_none(), s.error.is_none()) {
            (true, true) => {
                both += 1;
                corpus_both += usize::from(i < corpus_len);
                if p.kind() == s.kind() {
                    agree += 1;
                    corpus_agree += usize::from(i < corpus_len);
                } else {
                    mismatches.push(format!(
                        "{name} {sql:?}:\n    pg_query:  {:?} {:?}\n    sqlparser: {:?} {:?}",
                        p.kind(),
                        p.reasons(),
                        s.kind(),
                        s.reasons()
                    ));
                }
            }
            (true, false) => only_pg += 1,
            (false, true) => only_sqlparser += 1,
            (false, false) => neither += 1,
        }
    }
    println!(
        "differential over {} texts ({corpus_len} corpus cases, {} extra): both parse {both}, \
         same kind {agree} (corpus: both parse {corpus_both}, same kind {corpus_agree}); only \
         pg_query parses {only_pg}, only sqlparser {only_sqlparser}, neither {neither}",
        texts.len(),
        EXTRA.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} kind mismatches where both parse:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        corpus_both > 300,
        "only {corpus_both} corpus cases parse with both"
    );
}

/// Beyond the kind: wherever both parse, the same functions and the same objects. A function
/// one walk misses is a verdict it may get wrong elsewhere.
#[test]
fn functions_and_objects_agree_where_both_parse() {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let objects = |a: &Analysis| sorted(a.objects().iter().map(ToString::to_string).collect());
    let mut differ = Vec::new();
    for (name, sql) in differential_texts() {
        let (p, s) = (pg(&sql), sqlparser(&sql));
        if p.error.is_some() || s.error.is_some() {
            continue;
        }
        if sorted(p.functions()) != sorted(s.functions()) || objects(&p) != objects(&s) {
            differ.push(format!(
                "{name} {sql:?}:\n    functions {:?} / {:?}\n    objects {:?} / {:?}",
                p.functions(),
                s.functions(),
                objects(&p),
                objects(&s)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "functions or objects differ (pg_query / sqlparser) on {} texts:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Statements with a call in every position an expression can take; `{f}` stands for the
/// call.
const CALL_POSITIONS: &[&str] = &[
    "SELECT {f}",
    "SELECT a FROM t WHERE {f}",
    "SELECT a FROM t GROUP BY {f} HAVING {f}",
    "SELECT a FROM t ORDER BY {f}",
    "SELECT a FROM t LIMIT {f} OFFSET {f}",
    "SELECT a FROM t FETCH FIRST {f} ROWS ONLY",
    "SELECT * FROM t JOIN u ON {f}",
    "SELECT * FROM t, LATERAL (SELECT {f}) s",
    "SELECT * FROM generate_series(1, {f})",
    "SELECT * FROM unnest(ARRAY[{f}])",
    "SELECT * FROM t TABLESAMPLE system ({f}) REPEATABLE ({f})",
    "SELECT DISTINCT ON ({f}) a FROM t",
    "SELECT a FROM t GROUP BY GROUPING SETS (({f}), ())",
    "SELECT CASE {f} WHEN {f} THEN {f} ELSE {f} END",
    "SELECT count(*) FILTER (WHERE {f}) FROM t",
    "SELECT sum(a) OVER (PARTITION BY {f} ORDER BY {f}) FROM t",
    "SELECT sum(a) OVER w FROM t WINDOW w AS (ORDER BY {f})",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {f}) FROM t",
    "SELECT array_agg(a ORDER BY {f}) FROM t",
    "SELECT (ARRAY[1])[{f}]",
    "SELECT ({f})::text, CAST({f} AS int)",
    "SELECT ROW({f}), ({f}, 1)",
    "SELECT {f} IS NULL, {f} IS DISTINCT FROM 1, {f} IS TRUE",
    "SELECT 1 BETWEEN {f} AND 2",
    "SELECT 'a' LIKE 'b' ESCAPE {f}",
    "SELECT 'a' SIMILAR TO {f}",
    "SELECT 1 IN ({f}), 1 = ANY (ARRAY[{f}]), 1 = ALL (SELECT {f})",
    "SELECT EXISTS (SELECT {f})",
    "SELECT (SELECT {f})",
    "SELECT now() AT TIME ZONE {f}",
    "SELECT EXTRACT(year FROM {f})",
    "SELECT substring({f} FROM 1 FOR 2), position('a' IN {f}), trim({f}), overlay('a' PLACING {f} FROM 1)",
    "SELECT coalesce({f}, 1), nullif({f}, 1), greatest({f}, 1), least({f}, 1)",
    "SELECT json_object('a': {f}), json_build_object('a', {f})",
    "SELECT * FROM json_table({f}, '$' COLUMNS (a int PATH '$')) j",
    "SELECT * FROM xmltable('/a' PASSING {f} COLUMNS b int PATH 'b') x",
    "SELECT f(a => {f})",
    "SELECT a COLLATE \"C\" FROM t WHERE a = {f}",
    "SELECT {f} FROM t UNION SELECT {f}",
    "WITH c AS (SELECT {f}) SELECT * FROM c",
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE {f}) SELECT * FROM c",
    "VALUES ({f})",
    "INSERT INTO t VALUES ({f})",
    "INSERT INTO t SELECT {f}",
    "INSERT INTO t VALUES (1) ON CONFLICT (a) WHERE {f} DO UPDATE SET a = {f} WHERE {f}",
    "INSERT INTO t VALUES (1) RETURNING {f}",
    "UPDATE t SET a = {f} WHERE {f}",
    "UPDATE t SET a = 1 FROM u WHERE {f} RETURNING {f}",
    "DELETE FROM t USING u WHERE {f} RETURNING {f}",
    "MERGE INTO t USING u ON {f} WHEN MATCHED AND {f} THEN UPDATE SET a = {f} WHEN NOT MATCHED THEN INSERT VALUES ({f})",
    "CREATE TABLE t (a int DEFAULT {f}, b int CHECK ({f}), c int GENERATED ALWAYS AS ({f}) STORED)",
    "CREATE TABLE t AS SELECT {f}",
    "CREATE VIEW v AS SELECT {f}",
    "CREATE MATERIALIZED VIEW v AS SELECT {f}",
    "CREATE INDEX i ON t (({f})) WHERE {f}",
    "ALTER TABLE t ALTER COLUMN a SET DEFAULT {f}",
    "ALTER TABLE t ADD COLUMN b int DEFAULT {f}",
    "ALTER TABLE t ADD CONSTRAINT c CHECK ({f})",
    "ALTER TABLE t ALTER COLUMN a TYPE int USING {f}",
    "CREATE DOMAIN d AS int DEFAULT {f} CHECK ({f})",
    "CREATE FUNCTION g(a int DEFAULT {f}) RETURNS int LANGUAGE sql RETURN {f}",
    "CREATE POLICY p ON t USING ({f}) WITH CHECK ({f})",
    "CALL p({f})",
    "EXECUTE p({f})",
    "PREPARE p AS SELECT {f}",
    "EXPLAIN SELECT {f}",
    "EXPLAIN ANALYZE SELECT {f}",
    "COPY (SELECT {f}) TO STDOUT",
    "DECLARE c CURSOR FOR SELECT {f}",
    "SELECT * FROM t WHERE a = 1 FOR UPDATE OF t",
];

/// A call of `pg_read_file` (admin), `nextval` (write) or an unknown function, wherever it
/// is: both analyzers see it, so they agree wherever both parse.
#[test]
fn a_call_anywhere_counts() {
    let mut mismatches = Vec::new();
    let mut both = 0;
    for template in CALL_POSITIONS {
        for call in ["pg_read_file('x')", "nextval('s')", "public.f(1)"] {
            let sql = template.replace("{f}", call);
            let (p, s) = (pg(&sql), sqlparser(&sql));
            if p.error.is_some() || s.error.is_some() {
                continue;
            }
            both += 1;
            let sorted = |mut v: Vec<String>| {
                v.sort();
                v
            };
            if p.kind() != s.kind() || sorted(p.functions()) != sorted(s.functions()) {
                mismatches.push(format!(
                    "{sql:?}:\n    pg_query:  {:?} {:?}\n    sqlparser: {:?} {:?}",
                    p.kind(),
                    p.functions(),
                    s.kind(),
                    s.functions()
                ));
            }
        }
    }
    println!(
        "calls in {} positions: both parse {both} of {}",
        CALL_POSITIONS.len(),
        CALL_POSITIONS.len() * 3
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(both > 150, "only {both} texts parse with both");
}

/// Every operator of one to three operator characters, between, before and after operands
/// and in `ORDER BY … USING`: wherever both parse, the same kind for the same reasons. (The
/// lexers split runs of operator characters differently, and sqlparser names some operators
/// otherwise than PostgreSQL: `<|` is its `<<|`, `==` its `=`.)
#[test]
fn every_short_operator_agrees() {
    let chars: Vec<char> = "~!@#^&|`?+-*/%<>=".chars().collect();
    let mut operators: Vec<String> = Vec::new();
    let mut last = vec![String::new()];
    for _ in 0..3 {
        last = last
            .iter()
            .flat_map(|p| chars.iter().map(move |c| format!("{p}{c}")))
            .collect();
        operators.extend(last.iter().cloned());
    }
    let (mut both, mut mismatches) = (0, Vec::new());
    for op in &operators {
        for sql in [
            format!("SELECT a {op} b FROM t"),
            format!("SELECT a{op}-1 FROM t"),
            format!("SELECT {op} a FROM t"),
            format!("SELECT 1 FROM t ORDER BY a USING {op}"),
        ] {
            let s = sqlparser(&sql);
            if s.error.is_some() {
                continue;
            }
            let p = pg(&sql);
            if p.error.is_some() {
                continue;
            }
            both += 1;
            if p.kind() != s.kind() || p.reasons() != s.reasons() {
                mismatches.push(format!(
                    "{sql:?}: {:?} {:?} / {:?} {:?}",
                    p.kind(),
                    p.reasons(),
                    s.kind(),
                    s.reasons()
                ));
            }
        }
    }
    println!(
        "{} operators in 4 positions: both parse {both}",
        operators.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches (pg_query / sqlparser):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(both > 5000, "only {both} texts parse with both");
}

/// sqlparser must not accept what PostgreSQL rejects and then judge it other than unknown:
/// texts pg_query refuses are refused or, where sqlparser is laxer, harmless for PostgreSQL
/// (it will not run them). This lists them for review; nothing is asserted.
#[test]
fn texts_only_sqlparser_parses() {
    for sql in corpus::cases()
        .iter()
        .map(|c| c.sql.as_str())
        .chain(EXTRA.iter().copied())
    {
        let (p, s) = (pg(sql), sqlparser(sql));
        if p.error.is_some() && s.error.is_none() {
            println!(
                "only sqlparser parses {sql:?}: {:?} {:?}",
                s.kind(),
                s.reasons()
            );
        }
    }
}

/// The normalized text is what approvals are bound to: re-analyzing it gives the same verdict
/// and prints the same text, and constants are kept.
#[test]
fn normalization_is_faithful_and_idempotent() {
    for sql in corpus::cases()
        .iter()
        .map(|c| c.sql.as_str())
        .chain(EXTRA.iter().copied())
    {
        let a = sqlparser(sql);
        if a.error.is_some() {
            continue;
        }
        let again = sqlparser(&a.normalized());
        assert_eq!(again.error, None, "{sql:?} printed as {:?}", a.normalized());
        assert_eq!(
            again.kind(),
            a.kind(),
            "{sql:?} printed as {:?}",
            a.normalized()
        );
        assert_eq!(again.objects(), a.objects(), "{sql:?}");
        assert_eq!(again.functions(), a.functions(), "{sql:?}");
        assert_eq!(again.normalized(), a.normalized(), "{sql:?}");
    }
    assert_eq!(
        sqlparser("select 1 ; /* x */ DELETE from t where id=3").normalized(),
        "SELECT 1; DELETE FROM t WHERE id = 3"
    );
    assert_ne!(
        sqlparser("DELETE FROM t WHERE id = 1").normalized(),
        sqlparser("DELETE FROM t WHERE id = 2").normalized()
    );
    assert_ne!(
        sqlparser("SELECT * FROM t WHERE a = $1").normalized(),
        sqlparser("SELECT * FROM t WHERE a = $2").normalized()
    );
    let bad = sqlparser("  SELEC 1 ");
    assert_eq!(bad.normalized(), "SELEC 1");
    assert_eq!(bad.kind(), OperationKind::Unknown);
    assert!(sqlparser("").statements.is_empty());
    assert_eq!(sqlparser("").kind(), OperationKind::Read);
}

#[test]
fn session_effects() {
    let effect = |sql: &str| sqlparser(sql).statements[0].effect.clone();
    assert_eq!(
        effect("PREPARE p AS SELECT 1"),
        SessionEffect::Prepare { name: "p".into() }
    );
    assert_eq!(
        effect("EXECUTE p(1)"),
        SessionEffect::Execute { name: "p".into() }
    );
    assert_eq!(effect("EXECUTE p(nextval('s'))"), SessionEffect::None);
    assert_eq!(
        effect("DEALLOCATE p"),
        SessionEffect::Deallocate {
            name: Some("p".into())
        }
    );
    assert_eq!(
        effect("DEALLOCATE ALL"),
        SessionEffect::Deallocate { name: None }
    );
    assert_eq!(effect("DISCARD ALL"), SessionEffect::Discard);
    assert_eq!(effect("SET search_path = x"), SessionEffect::SetSearchPath);
    assert_eq!(effect("RESET ALL"), SessionEffect::SetSearchPath);
    assert_eq!(
        effect("SELECT set_config('search_path', 'x', false)"),
        SessionEffect::SetSearchPath
    );
    assert_eq!(effect("CREATE TABLE t (a int)"), SessionEffect::Ddl);
    assert_eq!(effect("BEGIN"), SessionEffect::Transaction);
    assert_eq!(
        effect("LISTEN Chan"),
        SessionEffect::Listen {
            channel: "chan".into()
        }
    );
    assert_eq!(effect("UNLISTEN *"), SessionEffect::Unlisten);
    assert_eq!(effect("SELECT 1"), SessionEffect::None);
}

/// Chains that sqlparser builds into deep trees without counting them against its recursion
/// limit are refused before they are parsed, not walked into a stack overflow.
#[test]
fn deep_nesting_is_refused_not_crashed() {
    for depth in [10, 100, 1000, 10_000] {
        let sql = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
        let a = sqlparser(&sql);
        assert!(
            matches!(a.kind(), OperationKind::Read | OperationKind::Unknown),
            "depth {depth}: {:?}",
            a.kind()
        );
        let sql = format!("SELECT {}", vec!["f(1)"; depth].join(" + "));
        assert!(
            sqlparser(&sql).kind() >= OperationKind::Write,
            "depth {depth}"
        );
        let sql = format!("SELECT {}", vec!["1"; depth].join(" + "));
        assert!(
            matches!(
                sqlparser(&sql).kind(),
                OperationKind::Read | OperationKind::Unknown
            ),
            "depth {depth}"
        );
        let sql = format!("SELECT 1, 2{}", " UNION SELECT 1, 2".repeat(depth));
        let _ = sqlparser(&sql);
        let sql = format!("SELECT 1{}", "::int".repeat(depth));
        let _ = sqlparser(&sql);
        let sql = format!(
            "SELECT * FROM t WHERE {}",
            vec!["a = 1"; depth].join(" AND ")
        );
        let _ = sqlparser(&sql);
    }
    // Just inside the nesting bound, on a 2 MiB stack (a tokio worker's): parsed, walked,
    // printed and freed without running out of stack, also in a debug build.
    let near_limit = vec![
        format!("SELECT {}", vec!["f(1)"; 495].join(" + ")),
        format!("SELECT {}", vec!["1"; 499].join(" - ")),
        format!("SELECT 1{}", "::int".repeat(495)),
        format!("SELECT 1{}", " UNION SELECT 1".repeat(240)),
        format!("SELECT * FROM t WHERE {}", vec!["a"; 450].join(" AND ")),
        format!(
            "SELECT {}{}{}",
            "(".repeat(40),
            vec!["1"; 400].join(" * "),
            ")".repeat(40)
        ),
        format!(
            "SELECT * FROM t WHERE a IN ({}SELECT 1{})",
            "SELECT * FROM (".repeat(20),
            ") s".repeat(20)
        ),
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for sql in &near_limit {
                let a = sqlparser(sql);
                assert_ne!(
                    a.kind(),
                    OperationKind::Unknown,
                    "{:?}: {:?}",
                    &sql[..60],
                    a.reasons()
                );
            }
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    // Wide but shallow statements are fine.
    let values = vec!["(1, 'a', now())"; 20_000].join(", ");
    let a = sqlparser(&format!("INSERT INTO t VALUES {values}"));
    assert_eq!(a.error, None);
    assert_eq!(a.kind(), OperationKind::Write);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

    /// (c) Arbitrary text, including NUL bytes, control characters and non-ASCII: never a
    /// panic, and a failure is always unknown.
    #[test]
    fn never_panics_on_arbitrary_text(sql in "(?s).{0,300}") {
        let a = sqlparser(&sql);
        if a.error.is_some() {
            prop_assert_eq!(a.kind(), OperationKind::Unknown);
        }
    }

    /// Text made from SQL-ish tokens (including the ones where the lexers differ), nested a
    /// bounded number of times.
    #[test]
    fn never_panics_on_sql_like_text(
        tokens in prop::collection::vec(prop::sample::select(corpus::SQL_TOKENS.to_vec()), 0..80),
        depth in 0usize..60,
    ) {
        let sql = corpus::nested(&tokens, depth);
        let a = sqlparser(&sql);
        if a.error.is_some() {
            prop_assert_eq!(a.kind(), OperationKind::Unknown);
        }
        // The same tokens without spaces exercise operator runs.
        let _ = sqlparser(&tokens.concat());
    }

    /// A lexical differential: texts glued from pieces where the two lexers could differ
    /// (quotes, comments, operator characters, line breaks) around statements of every kind.
    /// Wherever both parse, both give the same kind.
    #[test]
    fn glued_texts_agree_where_both_parse(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "SELECT 1", "SELECT a FROM t", "DELETE FROM t", "DROP TABLE t", "SET ROLE x",
            "pg_read_file('x')", "nextval('s')", "SELECT", "FROM t", "WHERE", "a", "1", "'", "''",
            "\"", "$$", "$a$", "$1", "--", "/*", "*/", "\n", "\r", ";", "E'", "\\", "U&", "-",
            "+", "<", ">", "=", "|", "@", "#", "~", "!", "?", "%", "^", "&", "*", "/", "(", ")",
            ",", ".", "::", " ", "  ", "\t", "x'", "b'", "é", "\u{a0}", "\u{2028}",
        ]), 1..24),
    ) {
        let sql = pieces.concat();
        let (p, s) = (pg(&sql), sqlparser(&sql));
        if p.error.is_none() && s.error.is_none() {
            prop_assert_eq!(p.kind(), s.kind(), "{:?}: {:?} / {:?}", sql, p.reasons(), s.reasons());
        }
        if s.error.is_some() {
            prop_assert_eq!(s.kind(), OperationKind::Unknown);
        }
    }

    /// The same with statement fragments: clauses glued in any order, where sqlparser and
    /// PostgreSQL's grammar may take a keyword for a name or a clause differently.
    #[test]
    fn glued_statements_agree_where_both_parse(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "SELECT ", "INSERT INTO t ", "UPDATE t SET a = ", "DELETE FROM t ", "WITH c AS (",
            ") ", "(", ")", ", ", "; ", "CREATE ", "TABLE ", "VIEW ", "DROP ", "ALTER ",
            "GRANT ", "SET ", "RESET ", "SHOW ", "EXPLAIN ", "ANALYZE ", "COPY ", "FROM ", "TO ",
            "STDIN ", "STDOUT ", "PROGRAM ", "'x' ", "PREPARE p AS ", "EXECUTE p ",
            "DECLARE c CURSOR FOR ", "LISTEN ", "NOTIFY ", "CALL ", "VACUUM ", "LOCK ",
            "TRUNCATE ", "BEGIN ", "COMMIT ", "END ", "STDIN", "STDOUT", "ALL ", "ROLE ", "SESSION ", "LOCAL ",
            "TRANSACTION ", "READ ", "WRITE ", "ONLY ", "search_path ", "= ", "DEFAULT ",
            "t ", "a ", "1 ", "* ", "WHERE ", "AND ", "OR ", "NOT ", "IN ", "AS ", "INTO ",
            "VALUES ", "RETURNING ", "FOR UPDATE ", "FOR SHARE ", "UNION ", "ORDER BY ",
            "LIMIT ", "JOIN ", "ON ", "USING ", "f() ", "pg_read_file('x') ", "nextval('s') ",
            "set_config('search_path', 'x', false) ", "OWNER TO bob ", "CASE ", "WHEN ",
            "THEN ", "ELSE ",
        ]), 1..10),
    ) {
        let sql = pieces.concat();
        let (p, s) = (pg(&sql), sqlparser(&sql));
        if p.error.is_none() && s.error.is_none() {
            prop_assert_eq!(p.kind(), s.kind(), "{:?}: {:?} / {:?}", sql, p.reasons(), s.reasons());
        }
    }

    /// Changing case, layout and comments never lowers the verdict.
    #[test]
    fn respelling_never_lowers_the_kind(
        index in 0..SPELLING_SAMPLES.len(),
        flips in prop::collection::vec(any::<bool>(), 1..16),
        comments in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let sql = SPELLING_SAMPLES[index];
        let respelled = respell(sql, &flips, &comments);
        let base = sqlparser(sql).kind();
        let other = sqlparser(&respelled).kind();
        prop_assert!(other >= base, "{:?} is {:?} but {:?} is {:?}", respelled, other, sql, base);
    }

    /// Wherever both parse a respelled sample, both give the same kind.
    #[test]
    fn respelled_samples_agree(
        index in 0..SPELLING_SAMPLES.len(),
        flips in prop::collection::vec(any::<bool>(), 1..16),
        comments in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let sql = respell(SPELLING_SAMPLES[index], &flips, &comments);
        let (p, s) = (pg(&sql), sqlparser(&sql));
        if p.error.is_none() && s.error.is_none() {
            prop_assert_eq!(p.kind(), s.kind(), "{:?}", sql);
        }
    }
}
