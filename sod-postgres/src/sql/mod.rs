//! SQL analysis: what a SQL string *does*.
//!
//! The gateway decides per statement whether an agent may run it, so an [`Analyzer`] classifies
//! every statement by its **effect**, not by its first keyword, and fails closed: anything it
//! does not understand is [`OperationKind::Unknown`], which policy denies (invariant I7). The
//! analyzer assumes the SQL was written by an adversary trying to get a write, a schema change
//! or server access past a read-only rule.
//!
//! - [`PgQueryAnalyzer`]: the default backend, on PostgreSQL's own parser (`pg_query`).
//! - [`CachedAnalyzer`]: a bounded LRU cache in front of any analyzer, keyed by the exact text.
//! - [`functions`] and [`settings`]: the parser-independent verdicts on function calls and
//!   run-time settings, shared by every backend.
//!
//! ```
//! use sod_core::OperationKind;
//! use sod_postgres::sql::{Analyzer, PgQueryAnalyzer};
//!
//! let a = PgQueryAnalyzer::new().analyze("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
//! assert_eq!(a.kind(), OperationKind::Write);
//! assert_eq!(a.objects()[0].to_string(), "t");
//! assert_eq!(a.reasons(), ["data-modifying CTE (DELETE)"]);
//! ```
//!
//! # Classification
//!
//! A statement starts at the kind of its statement type and is then escalated by everything
//! found anywhere in its tree (subqueries, CTEs, `FROM` functions, expressions, `DEFAULT`s,
//! `CASE`, …). A string with several statements is as risky as its riskiest statement; an
//! empty string (no statements) is a read.
//!
//! | statement | kind |
//! |---|---|
//! | `SELECT`, `VALUES`, `TABLE`, `SHOW`, `FETCH`, `MOVE`, `CLOSE`, `DECLARE … CURSOR FOR q`, `DISCARD`, `LISTEN`, `UNLISTEN`, `DEALLOCATE`, `SET CONSTRAINTS`, `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` | read |
//! | `SET`/`RESET` of a [harmless setting](settings::HARMLESS_SETTINGS), `SET TRANSACTION …`, `SET SESSION CHARACTERISTICS AS TRANSACTION …` | read |
//! | `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, `LOCK`, `NOTIFY`, `REFRESH MATERIALIZED VIEW`, `CALL`, `COPY … FROM STDIN` | write |
//! | `CREATE`/`ALTER`/`DROP`/rename/`COMMENT ON` of tables, views, materialized views, indexes, sequences, types, domains, functions, procedures, aggregates, operators, triggers, rules, schemas, statistics, casts, collations, conversions, text search objects; `DROP FOREIGN TABLE`; `CREATE TABLE AS`, `SELECT … INTO` | schema |
//! | `DO`, `LOAD`, `ALTER SYSTEM`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`, `SET`/`RESET` of `search_path` or of any setting not on the harmless list, `RESET ALL`, `GRANT`, `REVOKE`, roles, users and groups, `ALTER DEFAULT PRIVILEGES`, `REASSIGN OWNED`, `DROP OWNED`, `… OWNER TO`, extensions, databases, tablespaces, foreign data wrappers, servers, user mappings, `IMPORT FOREIGN SCHEMA`, `CREATE`/`ALTER FOREIGN TABLE`, publications, subscriptions, event triggers, languages, access methods, policies and `ALTER TABLE … ROW LEVEL SECURITY`, `SECURITY LABEL`, `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `CHECKPOINT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED` | admin |
//! | `COPY … TO STDOUT` | read (`COPY (q) TO STDOUT`: the kind of `q`, at least read) |
//! | `COPY … PROGRAM`, `COPY` to or from a server file | admin |
//! | `EXPLAIN q` | read, escalated by the functions and operators `q` calls (planning may evaluate them) |
//! | `EXPLAIN ANALYZE q` | the kind of `q` (it runs) |
//! | `PREPARE p AS q` | the kind of `q` (effect [`SessionEffect::Prepare`]) |
//! | `EXECUTE p(…)` | unknown (effect [`SessionEffect::Execute`]: the gateway substitutes the kind of its recorded `PREPARE`) |
//! | any statement type the analyzer does not map, parse errors | unknown |
//!
//! | escalation found anywhere in a statement | kind |
//! |---|---|
//! | `SELECT … INTO t` | schema |
//! | `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE` | write |
//! | `INSERT`/`UPDATE`/`DELETE`/`MERGE` inside `WITH` | write |
//! | `INSERT`/`UPDATE`/`DELETE`/`MERGE` of `pg_settings` (its rules call `set_config`) | admin |
//! | a call of a function, operator or `TABLESAMPLE` method | its [verdict](functions::classify_function): read for known read-only built-ins, write for sequence, advisory lock, notification, transaction id, sleep and large object functions, admin for `set_config`, server files, `lo_import`/`lo_export`, other sessions, server control, replication, `dblink*`, SQL-executing functions (`query_to_xml`, `ts_stat`, …); anything else is unknown and a write |
//!
//! # Objects
//!
//! [`Statement::objects`] lists relations as written: tables and views read or written,
//! sequences named in `nextval('…')`-style calls, relations created, altered or dropped. A name
//! that refers to a CTE in scope is not an object; the target of `INSERT`/`UPDATE`/`DELETE`/
//! `MERGE`/`SELECT INTO` always is, even when a CTE has the same name.
//!
//! # Limits
//!
//! The analyzer sees the SQL text, not the database:
//!
//! - a view, rule, trigger or column default that calls a dangerous function is not visible in
//!   `SELECT * FROM v`;
//! - a built-in name shadowed by a same-named function in a schema on the `search_path`, a
//!   built-in operator symbol overloaded for user types, a user-defined cast, and a function
//!   called in attribute notation (`t.f` for `f(t)`) are not seen as unknown functions;
//! - the text is parsed with PostgreSQL 18's grammar, `standard_conforming_strings = on` and
//!   UTF-8: the gateway must keep the session that way (these settings are admin here, and
//!   startup parameters must not change them either).
//!
//! Policies should therefore also rely on the upstream role's own privileges. A statement
//! nested more than about 45 levels deep (a chain of 50 `+`) is not understood: the parse
//! tree's decoder refuses it.

use std::collections::HashSet;
use std::fmt;

use sod_core::OperationKind;

mod builder;
mod cache;
pub mod functions;
pub mod lineage;
pub mod operation;
mod pg;
pub mod settings;
#[cfg(feature = "sqlparser")]
mod sqlparser;

#[cfg(feature = "sqlparser")]
pub use self::sqlparser::SqlParserAnalyzer;
pub use cache::CachedAnalyzer;
pub use pg::PgQueryAnalyzer;

/// Classifies SQL text. Implementations are cheap to share between sessions.
pub trait Analyzer: Send + Sync + 'static {
    /// Analyzes a simple-query string (zero or more statements) or one extended-protocol
    /// statement. Never fails: a parse failure yields an [`Analysis`] whose `error` is the
    /// parser's message and whose kind is [`OperationKind::Unknown`].
    fn analyze(&self, sql: &str) -> Analysis;
}

impl<A: Analyzer + ?Sized> Analyzer for std::sync::Arc<A> {
    fn analyze(&self, sql: &str) -> Analysis {
        (**self).analyze(sql)
    }
}

impl<A: Analyzer + ?Sized> Analyzer for Box<A> {
    fn analyze(&self, sql: &str) -> Analysis {
        (**self).analyze(sql)
    }
}

/// What a SQL string does, statement by statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// The statements, in order. Empty for an empty (or comment-only) string; on error, one
    /// statement of kind unknown carrying the source text (see
    /// [`not_understood`](Self::not_understood)).
    pub statements: Vec<Statement>,
    /// The parser's message when the text could not be parsed.
    pub error: Option<String>,
}

impl Analysis {
    /// The analysis of `sql` when it could not be understood (`error` says why): one
    /// statement of kind [`Unknown`](OperationKind::Unknown), tag `UNKNOWN`, whose normalized
    /// text is the trimmed source text. Keeping the text keeps the operation's fingerprint
    /// distinct: an approval of one unparseable string must not cover another.
    pub fn not_understood(sql: &str, error: impl Into<String>) -> Self {
        let error = error.into();
        Self {
            statements: vec![Statement {
                kind: OperationKind::Unknown,
                tag: "UNKNOWN".to_owned(),
                normalized: sql.trim().to_owned(),
                objects: Vec::new(),
                functions: Vec::new(),
                reasons: vec![not_understood_reason(&error)],
                effect: SessionEffect::None,
                secrets: Vec::new(),
                lineage: None,
                needs: None,
            }],
            error: Some(error),
        }
    }

    /// The riskiest statement's kind; [`Unknown`](OperationKind::Unknown) on error;
    /// [`Read`](OperationKind::Read) for a string without statements.
    pub fn kind(&self) -> OperationKind {
        if self.error.is_some() {
            return OperationKind::Unknown;
        }
        self.statements
            .iter()
            .map(|s| s.kind)
            .max()
            .unwrap_or(OperationKind::Read)
    }

    /// Every statement's objects, without duplicates, in order of appearance.
    pub fn objects(&self) -> Vec<ObjectName> {
        let mut seen = HashSet::new();
        self.statements
            .iter()
            .flat_map(|s| &s.objects)
            .filter(|o| seen.insert(*o))
            .cloned()
            .collect()
    }

    /// The statements' normalized texts joined by `"; "`; on error, the trimmed source text.
    pub fn normalized(&self) -> String {
        let texts: Vec<&str> = self
            .statements
            .iter()
            .map(|s| s.normalized.as_str())
            .collect();
        texts.join("; ")
    }

    /// Every statement's called functions, without duplicates, in order of appearance.
    pub fn functions(&self) -> Vec<String> {
        dedup(self.statements.iter().flat_map(|s| &s.functions))
    }

    /// Why the string is riskier than its statements' types suggest: every statement's
    /// reasons, without duplicates, including `not understood: <parser message>` on error.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = dedup(self.statements.iter().flat_map(|s| &s.reasons));
        if let Some(e) = &self.error {
            let reason = not_understood_reason(e);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        reasons
    }
}

fn not_understood_reason(error: &str) -> String {
    format!("not understood: {error}")
}

fn dedup<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|s| seen.insert(s.as_str())).cloned().collect()
}

/// One statement of an [`Analysis`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// What the statement does, after every escalation.
    pub kind: OperationKind,
    /// The statement type, as PostgreSQL's command tag names it: `SELECT`, `INSERT`,
    /// `CREATE TABLE`, `COPY`, `SET`, `EXPLAIN`, ….
    pub tag: String,
    /// The statement re-printed by the parser: comments and layout gone, constants kept (an
    /// approval of `id = 1` must not cover `id = 2`). The trimmed source text if the parser
    /// cannot print the statement back.
    pub normalized: String,
    /// Relations touched (tables, views, sequences), as written, without duplicates. Not CTE
    /// names, not functions.
    pub objects: Vec<ObjectName>,
    /// Functions called, as the parser resolved their names' case (unquoted names are lower
    /// case), `schema.name` when qualified, without duplicates.
    pub functions: Vec<String>,
    /// Sentences explaining every escalation above the statement type's own kind, such as
    /// `calls pg_read_file (server file access)` or `data-modifying CTE (DELETE)`.
    pub reasons: Vec<String>,
    /// What the gateway must track about the session.
    pub effect: SessionEffect,
    /// Values the normalized text shows as `'***'` (password literals: `PASSWORD '…'`), so
    /// that the text — and every audit record and error message made from it — never carries
    /// them. The gateway adds them to the operation as secrets
    /// ([`OperationBuilder::secret`](sod_core::OperationBuilder::secret)), so its fingerprint
    /// still covers them.
    pub secrets: Vec<String>,
    /// Where its output columns come from and what decides its rows, for masking; `None`
    /// when the analyzer does not follow this statement type (its computed outputs are then
    /// masked as unknown) or cannot (the `sqlparser` backend).
    pub lineage: Option<std::sync::Arc<lineage::Lineage>>,
    /// The oldest PostgreSQL version whose grammar reads the statement as the analyzer did
    /// (PostgreSQL 18's), when that is newer than 15: the gateway refuses the statement on an
    /// older upstream, where it would mean something else or nothing.
    pub needs: Option<ServerNeed>,
}

/// A construct newer than PostgreSQL 15 in a statement ([`Statement::needs`]).
///
/// ```
/// use sod_postgres::sql::{Analyzer, PgQueryAnalyzer};
///
/// // PostgreSQL 15 reads `system_user` as a column name.
/// let a = PgQueryAnalyzer::new().analyze("SELECT system_user FROM t");
/// let need = a.statements[0].needs.as_ref().expect("a newer construct");
/// assert_eq!(need.major, 16);
/// assert!(need.what.contains("SYSTEM_USER"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerNeed {
    /// The PostgreSQL major version that has it.
    pub major: u32,
    /// What it is, for messages.
    pub what: String,
}

/// A relation name as PostgreSQL resolves its case: unquoted identifiers are folded to lower
/// case by the parser, quoted ones keep theirs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    /// The schema, if the SQL named one.
    pub schema: Option<String>,
    /// The relation's name.
    pub name: String,
}

impl ObjectName {
    /// A name, qualified with `schema` if given.
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectName {
    /// `schema.name`, or `name` when unqualified. Identifiers are not quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Session state a statement changes, which the gateway must track.
///
/// A statement has one effect. When several apply, the first of this order wins: `Execute`,
/// the statement type's own effect (`Prepare`, `Deallocate`, `Discard`, `Transaction`,
/// `Listen`, `Unlisten`, `SetSearchPath` of `SET`/`RESET`), `SetSearchPath` of a
/// `set_config` call, `Ddl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEffect {
    /// Nothing to track.
    None,
    /// SQL `PREPARE name AS statement`. The [`Statement`]'s kind, objects and functions are
    /// those of the prepared statement; the gateway records them under `name`.
    Prepare {
        /// The prepared statement's name.
        name: String,
    },
    /// SQL `EXECUTE name(…)`, also inside `EXPLAIN`. The [`Statement`]'s kind is
    /// [`Unknown`](OperationKind::Unknown): the gateway substitutes the kind recorded for
    /// `name`'s `PREPARE` (and refuses when it has none). Emitted only when everything else in
    /// the statement is a read (constant arguments, a plain `EXPLAIN`); `EXECUTE` with
    /// arguments that call riskier functions, or `CREATE TABLE … AS EXECUTE`, stays unknown
    /// with no effect, because the substitution would lose their risk.
    Execute {
        /// The prepared statement's name.
        name: String,
    },
    /// `DEALLOCATE name`, or `DEALLOCATE ALL` (`None`).
    Deallocate {
        /// The prepared statement's name; `None` for all.
        name: Option<String>,
    },
    /// `DISCARD ALL`: drops prepared statements, cursors, temporary tables and listeners and
    /// resets every setting, including the role and `search_path`. (`DISCARD PLANS` keeps
    /// prepared statements and has no effect to track; `DISCARD TEMP` is [`Ddl`](Self::Ddl).)
    Discard,
    /// Changes `search_path`: `SET`/`RESET search_path`, `SET SCHEMA`, `RESET ALL`,
    /// `set_config('search_path', …)` or `set_config` with a computed name. A
    /// [`Read`](OperationKind::Read) when the new path is known and keeps `pg_catalog` first
    /// ([`settings::search_path_change`]), otherwise [`Admin`](OperationKind::Admin). Name
    /// resolution changes: the gateway asks the server for the session's path afterwards.
    SetSearchPath,
    /// Changes the catalog (tables, types, functions, roles, privileges, extensions, …): the
    /// gateway invalidates its catalog cache.
    Ddl,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints, two-phase commit.
    Transaction,
    /// `LISTEN channel`.
    Listen {
        /// The channel.
        channel: String,
    },
    /// `UNLISTEN channel` or `UNLISTEN *`.
    Unlisten,
    /// `DECLARE`, `FETCH`, `MOVE` or `CLOSE` of a cursor (`None`: `CLOSE ALL`). Cursors share
    /// a namespace with the protocol-level portals the gateway creates, so the gateway checks
    /// the name.
    Cursor {
        /// The cursor's name; `None` for `CLOSE ALL`.
        name: Option<String>,
    },
}
