//! The kind of each statement type, before looking inside: the same table as the `pg_query`
//! backend's, keyed by sqlparser's statement variants. A variant that is not listed (sqlparser
//! also parses other dialects' statements) is unknown.

pub(super) use crate::sql::builder::variant_name;

use ::sqlparser::ast::{
    AlterCollationOperation, AlterFunctionKind, AlterFunctionOperation, AlterOperatorOperation,
    AlterSchemaOperation, AlterTableOperation, AlterTextSearchOperation, CloseCursor,
    ContextModifier, CopyTarget, DeclareType, DescribeAlias, DiscardObject, Expr, FromTable,
    ObjectType, Reset, Set, SetExpr, Statement, TransactionAccessMode, TransactionMode,
    UnaryOperator, Value,
};

use super::names::{fold, setting_name};
pub(super) use crate::sql::builder::Base;
use crate::sql::{SessionEffect, settings};
use sod_core::OperationKind;

fn not_understood(statement: &Statement) -> Base {
    Base::unknown(
        "UNKNOWN",
        format!("{} is not understood", variant_name(statement)),
    )
}

const OWNER: &str = "changes an object's owner";

/// Why asking for a read-write transaction is an admin act: the gateway runs sessions that may
/// only read with `default_transaction_read_only`, so the server itself refuses writes hidden
/// in views, policies, operators or casts.
const READ_WRITE_REASON: &str = "asks for a read-write transaction";

/// Whether transaction modes (`BEGIN …`, `SET TRANSACTION …`) include `READ WRITE`.
fn asks_read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

/// The statement a top-level `Statement::Query` stands for: a data-modifying statement with
/// a `WITH` clause is parsed as a query whose body is that statement.
pub(super) fn dml_body(statement: &Statement) -> Option<&Statement> {
    let Statement::Query(q) = statement else {
        return None;
    };
    match &*q.body {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => Some(s),
        _ => None,
    }
}

/// The base classification of a statement.
pub(super) fn base(statement: &Statement) -> Base {
    use Statement as S;
    if let Some(body) = dml_body(statement) {
        return base(body);
    }
    match statement {
        // Queries.
        S::Query(q) => match &*q.body {
            SetExpr::Select(s) if s.into.is_some() => Base::read("SELECT INTO"),
            _ => Base::read("SELECT"),
        },
        S::Insert(_) => Base::write("INSERT"),
        S::Update(_) => Base::write("UPDATE"),
        S::Delete(d) => match (&d.from, d.tables.is_empty()) {
            (FromTable::WithFromKeyword(_), true) => Base::write("DELETE"),
            _ => not_understood(statement),
        },
        S::Merge(_) => Base::write("MERGE"),
        S::Return(_) => Base::read("RETURN"),
        // Whatever sqlparser reads as some SHOW, PostgreSQL reads as `SHOW setting` (a read) or
        // rejects.
        S::ShowVariable { .. }
        | S::ShowVariables { .. }
        | S::ShowStatus { .. }
        | S::ShowFunctions { .. }
        | S::ShowCreate { .. }
        | S::ShowColumns { .. }
        | S::ShowCatalogs { .. }
        | S::ShowDatabases { .. }
        | S::ShowProcessList { .. }
        | S::ShowSchemas { .. }
        | S::ShowCharset(_)
        | S::ShowObjects(_)
        | S::ShowTables { .. }
        | S::ShowViews { .. }
        | S::ShowCollation { .. } => Base::read("SHOW"),
        S::Explain {
            describe_alias: DescribeAlias::Explain,
            ..
        } => Base::read("EXPLAIN"),
        S::Declare { stmts } => match stmts.as_slice() {
            [d] if d.declare_type == Some(DeclareType::Cursor)
                && d.for_query.is_some()
                && d.names.len() == 1 =>
            {
                Base::read("DECLARE CURSOR").effect(SessionEffect::Cursor {
                    name: d.names.first().map(fold),
                })
            }
            _ => not_understood(statement),
        },
        S::Fetch {
            name, into: None, ..
        } => Base::read("FETCH").effect(SessionEffect::Cursor {
            name: Some(fold(name)),
        }),
        S::Close {
            cursor: CloseCursor::All,
        } => Base::read("CLOSE CURSOR ALL").effect(SessionEffect::Cursor { name: None }),
        S::Close {
            cursor: CloseCursor::Specific { name },
        } => Base::read("CLOSE CURSOR").effect(SessionEffect::Cursor {
            name: Some(fold(name)),
        }),
        S::Copy { to, target, .. } => copy(*to, target),
        S::Call(_) => Base::write("CALL").reason("CALL runs a procedure"),
        S::Truncate(t) if t.on_cluster.is_none() && t.partitions.is_none() => {
            Base::write("TRUNCATE TABLE")
        }
        // ACCESS SHARE is the lock every SELECT takes; no mode means ACCESS EXCLUSIVE.
        S::Lock(l) if l.lock_mode == Some(::sqlparser::ast::LockTableMode::AccessShare) => {
            Base::read("LOCK TABLE")
        }
        S::Lock(_) => Base::write("LOCK TABLE"),
        S::NOTIFY { .. } => Base::write("NOTIFY"),

        // Session state.
        S::Set(s) => set(s),
        S::Reset(r) => reset(&r.reset),
        S::StartTransaction {
            begin,
            modes,
            statements,
            exception,
            modifier: None,
            has_end_keyword: false,
            ..
        } if statements.is_empty() && exception.is_none() => {
            let tag = if *begin { "BEGIN" } else { "START TRANSACTION" };
            if asks_read_write(modes) {
                Base::admin(tag)
                    .reason(READ_WRITE_REASON)
                    .effect(SessionEffect::Transaction)
            } else {
                Base::read(tag).effect(SessionEffect::Transaction)
            }
        }
        S::Commit { modifier: None, .. } => Base::read("COMMIT").effect(SessionEffect::Transaction),
        S::Rollback { .. } => Base::read("ROLLBACK").effect(SessionEffect::Transaction),
        S::Savepoint { .. } => Base::read("SAVEPOINT").effect(SessionEffect::Transaction),
        S::ReleaseSavepoint { .. } => Base::read("RELEASE").effect(SessionEffect::Transaction),
        S::Prepare { name, .. } => {
            Base::read("PREPARE").effect(SessionEffect::Prepare { name: fold(name) })
        }
        // The walker records the name; the kind becomes unknown when the statement is done.
        S::Execute {
            name: Some(_),
            immediate: false,
            into,
            using,
            output: false,
            default: false,
            ..
        } if into.is_empty() && using.is_empty() => Base::read("EXECUTE"),
        S::Deallocate { name, .. } => {
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                Base::read("DEALLOCATE ALL").effect(SessionEffect::Deallocate { name: None })
            } else {
                Base::read("DEALLOCATE").effect(SessionEffect::Deallocate {
                    name: Some(fold(name)),
                })
            }
        }
        S::Discard { object_type } => match object_type {
            DiscardObject::ALL => Base::read("DISCARD ALL").effect(SessionEffect::Discard),
            DiscardObject::PLANS => Base::read("DISCARD PLANS"),
            DiscardObject::SEQUENCES => Base::read("DISCARD SEQUENCES"),
            // Temporary tables never change how the gateway resolves names: no catalog effect.
            DiscardObject::TEMP => Base::read("DISCARD TEMP"),
        },
        S::LISTEN { channel } => Base::read("LISTEN").effect(SessionEffect::Listen {
            channel: fold(channel),
        }),
        S::UNLISTEN { .. } => Base::read("UNLISTEN").effect(SessionEffect::Unlisten),

        // Schema changes.
        S::CreateTable(c) if c.query.is_some() => Base::schema("CREATE TABLE AS"),
        S::CreateTable(_) => Base::schema("CREATE TABLE"),
        S::CreateView(v) if v.materialized => Base::schema("CREATE MATERIALIZED VIEW"),
        S::CreateView(_) => Base::schema("CREATE VIEW"),
        S::CreateIndex(_) => Base::schema("CREATE INDEX"),
        S::CreateSequence { .. } => Base::schema("CREATE SEQUENCE"),
        S::CreateSchema { .. } => Base::schema("CREATE SCHEMA"),
        S::CreateDomain(_) => Base::schema("CREATE DOMAIN"),
        S::CreateType { .. } => Base::schema("CREATE TYPE"),
        S::CreateFunction(_) => Base::schema("CREATE FUNCTION"),
        S::CreateTrigger(_) => Base::schema("CREATE TRIGGER"),
        S::CreateOperator(_) => Base::schema("CREATE OPERATOR"),
        S::CreateOperatorFamily(_) => Base::schema("CREATE OPERATOR FAMILY"),
        S::CreateOperatorClass(_) => Base::schema("CREATE OPERATOR CLASS"),
        S::CreateTextSearch(t) => Base::schema(format!("CREATE {}", t.object_type)),
        S::CreateCollation(_) => Base::schema("CREATE COLLATION"),
        S::AlterTable(a)
            if a.table_type.is_none() && a.location.is_none() && a.on_cluster.is_none() =>
        {
            alter_table(&a.operations)
        }
        S::AlterSchema(a) => {
            let b = Base::schema("ALTER SCHEMA");
            if a.operations
                .iter()
                .any(|o| matches!(o, AlterSchemaOperation::OwnerTo { .. }))
            {
                b.admin_because(OWNER)
            } else {
                b
            }
        }
        S::AlterIndex { .. } => Base::schema("ALTER INDEX"),
        S::AlterView { .. } => Base::schema("ALTER VIEW"),
        S::AlterFunction(f) => {
            let b = Base::schema(match f.kind {
                AlterFunctionKind::Aggregate => "ALTER AGGREGATE",
                AlterFunctionKind::Function => "ALTER FUNCTION",
            });
            if matches!(f.operation, AlterFunctionOperation::OwnerTo(_)) {
                b.admin_because(OWNER)
            } else {
                b
            }
        }
        S::AlterType(_) => Base::schema("ALTER TYPE"),
        S::AlterCollation(c) => owned(
            Base::schema("ALTER COLLATION"),
            matches!(c.operation, AlterCollationOperation::OwnerTo(_)),
        ),
        S::AlterOperator(o) => owned(
            Base::schema("ALTER OPERATOR"),
            matches!(o.operation, AlterOperatorOperation::OwnerTo(_)),
        ),
        S::AlterOperatorFamily(o) => owned(
            Base::schema("ALTER OPERATOR FAMILY"),
            matches!(
                o.operation,
                ::sqlparser::ast::AlterOperatorFamilyOperation::OwnerTo(_)
            ),
        ),
        S::AlterOperatorClass(o) => owned(
            Base::schema("ALTER OPERATOR CLASS"),
            matches!(
                o.operation,
                ::sqlparser::ast::AlterOperatorClassOperation::OwnerTo(_)
            ),
        ),
        S::AlterTextSearch(t) => owned(
            Base::schema(format!("ALTER {}", t.object_type)),
            matches!(t.operation, AlterTextSearchOperation::OwnerTo(_)),
        ),
        S::Drop { object_type, .. } => drop(statement, *object_type),
        S::DropFunction(_) => Base::schema("DROP FUNCTION"),
        S::DropProcedure { .. } => Base::schema("DROP PROCEDURE"),
        S::DropDomain(_) => Base::schema("DROP DOMAIN"),
        S::DropTrigger(_) => Base::schema("DROP TRIGGER"),
        S::DropOperator(_) => Base::schema("DROP OPERATOR"),
        S::DropOperatorFamily(_) => Base::schema("DROP OPERATOR FAMILY"),
        S::DropOperatorClass(_) => Base::schema("DROP OPERATOR CLASS"),
        S::Comment { .. } => Base::schema("COMMENT"),

        // Administration.
        S::Load { .. } => Base::admin("LOAD").reason("LOAD loads a shared library into the server"),
        S::Grant(_) => Base::admin_ddl("GRANT"),
        S::Revoke(_) => Base::admin_ddl("REVOKE"),
        S::CreateRole(_) => Base::admin_ddl("CREATE ROLE"),
        S::CreateUser(_) => Base::admin_ddl("CREATE USER"),
        S::AlterRole { .. } | S::AlterUser(_) => Base::admin_ddl("ALTER ROLE"),
        S::CreateExtension(_) => Base::admin_ddl("CREATE EXTENSION"),
        S::DropExtension(_) => Base::admin_ddl("DROP EXTENSION"),
        S::CreateDatabase { .. } => Base::admin_ddl("CREATE DATABASE"),
        S::CreateServer(_) => Base::admin_ddl("CREATE SERVER"),
        S::CreatePolicy(_) => Base::admin_ddl("CREATE POLICY"),
        S::AlterPolicy(_) => Base::admin_ddl("ALTER POLICY"),
        S::DropPolicy(_) => Base::admin_ddl("DROP POLICY"),
        S::Vacuum(v)
            if !(v.sort_only
                || v.delete_only
                || v.reindex
                || v.recluster
                || v.boost
                || v.threshold.is_some()) =>
        {
            Base::admin("VACUUM")
        }
        S::Analyze(_) => Base::admin("ANALYZE"),

        _ => not_understood(statement),
    }
}

fn owned(b: Base, owner: bool) -> Base {
    if owner { b.admin_because(OWNER) } else { b }
}

/// `COPY`. (sqlparser reads the text after `COPY … FROM STDIN;` as the data, where PostgreSQL
/// reads SQL: the analyzer refuses text in which sqlparser finds fewer statements than
/// PostgreSQL.)
fn copy(to: bool, target: &CopyTarget) -> Base {
    match (target, to) {
        (CopyTarget::Program { .. }, _) => {
            Base::admin("COPY").reason("COPY ... PROGRAM runs a command on the server")
        }
        (CopyTarget::File { .. }, _) => {
            Base::admin("COPY").reason("COPY reads or writes a file on the server")
        }
        // `STDIN` and `STDOUT` both mean the client, in either direction.
        (CopyTarget::Stdin | CopyTarget::Stdout, false) => Base::write("COPY"),
        (CopyTarget::Stdin | CopyTarget::Stdout, true) => Base::read("COPY"),
    }
}

fn set(s: &Set) -> Base {
    match s {
        Set::SingleAssignment {
            scope,
            hivevar: false,
            variable,
            values,
        } if !matches!(scope, Some(ContextModifier::Global)) => {
            // PostgreSQL takes constants and names only (`SET a = 1, b = 2` is not a list of
            // settings to PostgreSQL, but sqlparser reads `b = 2` as a value).
            if !values.iter().all(is_set_value) {
                return Base::unknown("SET", "SET with a value PostgreSQL does not take");
            }
            match setting_name(variable) {
                Some(name) if settings::classify_setting(&name).search_path => {
                    search_path("SET", search_path_values(values).as_deref())
                }
                Some(name) => setting("SET", &name),
                None => Base::unknown("SET", "unknown kind of SET"),
            }
        }
        Set::SetRole { .. } => setting("SET", "role"),
        Set::SetSessionAuthorization(_) => setting("SET", "session_authorization"),
        Set::SetTimeZone { .. } => setting("SET", "timezone"),
        Set::SetNames { .. } | Set::SetNamesDefault {} => setting("SET", "client_encoding"),
        Set::SetTransaction { modes, .. } if asks_read_write(modes) => {
            Base::admin("SET").reason(READ_WRITE_REASON)
        }
        Set::SetTransaction { .. } => Base::read("SET"),
        _ => Base::unknown("SET", "unknown kind of SET"),
    }
}

/// A value PostgreSQL's `SET` takes: a constant, a name, or a signed number.
fn is_set_value(e: &Expr) -> bool {
    match e {
        Expr::Value(_) | Expr::Identifier(_) => true,
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => matches!(&**expr, Expr::Value(v) if matches!(v.value, Value::Number(..))),
        _ => false,
    }
}

fn reset(r: &Reset) -> Base {
    match r {
        Reset::ALL => Base::admin("RESET")
            .effect(SessionEffect::SetSearchPath)
            .reason("RESET ALL resets every setting, including search_path"),
        Reset::SessionAuthorization => setting("RESET", "session_authorization"),
        Reset::ConfigurationParameter(name) => match setting_name(name) {
            Some(name) if settings::classify_setting(&name).search_path => {
                search_path("RESET", Some(&[]))
            }
            Some(name) => setting("RESET", &name),
            None => Base::unknown("RESET", "unknown kind of RESET"),
        },
    }
}

/// The schemas of `SET search_path = …` (each value one schema name); empty for `DEFAULT`;
/// `None` for a value that is not a name or a string.
fn search_path_values(values: &[Expr]) -> Option<Vec<String>> {
    if let [Expr::Identifier(i)] = values
        && i.quote_style.is_none()
        && i.value.eq_ignore_ascii_case("default")
    {
        return Some(Vec::new());
    }
    values
        .iter()
        .map(|e| match e {
            Expr::Identifier(i) => Some(fold(i)),
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::DollarQuotedString(::sqlparser::ast::DollarQuotedString {
                    value: s,
                    ..
                }) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `SET`/`RESET` of `search_path` to `schemas`, judged by [`settings::search_path_change`].
fn search_path(tag: &str, schemas: Option<&[String]>) -> Base {
    let class = settings::search_path_change(schemas);
    let b = Base::new(class.kind, tag).effect(SessionEffect::SetSearchPath);
    if class.kind > OperationKind::Read {
        b.reason(format!("changes search_path ({})", class.why))
    } else {
        b
    }
}

/// `SET`/`RESET` of one setting, judged by [`settings::classify_setting`].
fn setting(tag: &str, name: &str) -> Base {
    let class = settings::classify_setting(name);
    let mut b = Base::new(class.kind, tag);
    if let Some(reason) = settings::setting_reason(name) {
        b = b.reason(reason);
    }
    if class.search_path {
        b = b.effect(SessionEffect::SetSearchPath);
    }
    b
}

fn alter_table(operations: &[AlterTableOperation]) -> Base {
    let mut b = Base::schema("ALTER TABLE");
    for op in operations {
        let reason = match op {
            AlterTableOperation::OwnerTo { .. } => OWNER,
            AlterTableOperation::EnableRowLevelSecurity
            | AlterTableOperation::DisableRowLevelSecurity
            | AlterTableOperation::ForceRowLevelSecurity
            | AlterTableOperation::NoForceRowLevelSecurity => "changes row-level security",
            _ => continue,
        };
        b = b.admin_because(reason);
    }
    b
}

fn drop(statement: &Statement, object_type: ObjectType) -> Base {
    let tag = |what: &str| format!("DROP {what}");
    match object_type {
        ObjectType::Table => Base::schema(tag("TABLE")),
        ObjectType::View => Base::schema(tag("VIEW")),
        ObjectType::MaterializedView => Base::schema(tag("MATERIALIZED VIEW")),
        ObjectType::Index => Base::schema(tag("INDEX")),
        ObjectType::Sequence => Base::schema(tag("SEQUENCE")),
        ObjectType::Type => Base::schema(tag("TYPE")),
        ObjectType::Schema => Base::schema(tag("SCHEMA")),
        ObjectType::Collation => Base::schema(tag("COLLATION")),
        ObjectType::Database => Base::admin_ddl(tag("DATABASE")),
        ObjectType::Role | ObjectType::User => Base::admin_ddl(tag("ROLE")),
        ObjectType::Stage | ObjectType::Stream | ObjectType::Warehouse => not_understood(statement),
    }
}

/// Whether `DROP` of this object type names relations.
pub(super) fn drops_relations(object_type: ObjectType) -> bool {
    matches!(
        object_type,
        ObjectType::Table
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::Index
            | ObjectType::Sequence
    )
}
