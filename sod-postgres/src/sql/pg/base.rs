//! The base of a statement: the kind its statement type gives it, before anything found
//! inside escalates it.

use pg_query::NodeRef;
use pg_query::protobuf::{self, node::Node as NodeEnum};
use sod_core::OperationKind::{Admin, Read, Schema, Unknown};

use super::node_name;

/// `AccessShareLock` in PostgreSQL's `lockdefs.h`, as `LockStmt.mode` holds it.
const ACCESS_SHARE_LOCK: i32 = 1;
use crate::sql::SessionEffect;
use crate::sql::builder::Base;
use crate::sql::settings;

/// A catalog change of kind schema, or admin when it concerns an admin object type.
pub(super) fn object_ddl(object: Option<protobuf::ObjectType>, verb: &str) -> Base {
    let tag = format!("{verb} {}", object_type_name(object));
    let kind = if object.is_some_and(is_admin_object) {
        Admin
    } else {
        Schema
    };
    Base::new(kind, tag).ddl()
}

pub(super) fn not_understood(node: NodeRef<'_>) -> Base {
    Base::unknown("UNKNOWN", format!("{} is not understood", node_name(node)))
}

/// The base classification of a statement node, `None` for nodes that are not statements.
pub(super) fn base(node: NodeRef<'_>) -> Option<Base> {
    use protobuf::ObjectType as O;
    let b = match node {
        // Queries.
        NodeRef::SelectStmt(s) if s.into_clause.is_some() => Base::read("SELECT INTO"),
        NodeRef::SelectStmt(_) => Base::read("SELECT"),
        NodeRef::InsertStmt(_) => Base::write("INSERT"),
        NodeRef::UpdateStmt(_) => Base::write("UPDATE"),
        NodeRef::DeleteStmt(_) => Base::write("DELETE"),
        NodeRef::MergeStmt(_) => Base::write("MERGE"),
        NodeRef::ReturnStmt(_) => Base::read("RETURN"),
        NodeRef::VariableShowStmt(_) => Base::read("SHOW"),
        NodeRef::ExplainStmt(_) => Base::read("EXPLAIN"),
        NodeRef::DeclareCursorStmt(d) => {
            Base::read("DECLARE CURSOR").effect(SessionEffect::Cursor {
                name: Some(d.portalname.clone()),
            })
        }
        NodeRef::FetchStmt(f) => {
            Base::read(if f.ismove { "MOVE" } else { "FETCH" }).effect(SessionEffect::Cursor {
                name: Some(f.portalname.clone()),
            })
        }
        NodeRef::ClosePortalStmt(c) if c.portalname.is_empty() => {
            Base::read("CLOSE CURSOR ALL").effect(SessionEffect::Cursor { name: None })
        }
        NodeRef::ClosePortalStmt(c) => Base::read("CLOSE CURSOR").effect(SessionEffect::Cursor {
            name: Some(c.portalname.clone()),
        }),
        NodeRef::ConstraintsSetStmt(_) => Base::read("SET CONSTRAINTS"),
        NodeRef::CopyStmt(c) => copy(c),
        NodeRef::CallStmt(_) => Base::write("CALL").reason("CALL runs a procedure"),
        NodeRef::TruncateStmt(_) => Base::write("TRUNCATE TABLE"),
        // ACCESS SHARE is the lock every SELECT takes (pg_dump takes it on what it dumps);
        // any stronger mode blocks others' writes.
        NodeRef::LockStmt(l) if l.mode == ACCESS_SHARE_LOCK => Base::read("LOCK TABLE"),
        NodeRef::LockStmt(_) => Base::write("LOCK TABLE"),
        NodeRef::NotifyStmt(_) => Base::write("NOTIFY"),
        NodeRef::RefreshMatViewStmt(_) => Base::write("REFRESH MATERIALIZED VIEW"),

        // Session state.
        NodeRef::VariableSetStmt(s) => set(s),
        NodeRef::TransactionStmt(t) => transaction(t),
        NodeRef::PrepareStmt(p) => Base::read("PREPARE").effect(SessionEffect::Prepare {
            name: p.name.clone(),
        }),
        // The walker records the name; the kind becomes unknown when the statement is done.
        NodeRef::ExecuteStmt(_) => Base::read("EXECUTE"),
        NodeRef::DeallocateStmt(d) => {
            let name = (!d.isall && !d.name.is_empty()).then(|| d.name.clone());
            let tag = if name.is_some() {
                "DEALLOCATE"
            } else {
                "DEALLOCATE ALL"
            };
            Base::read(tag).effect(SessionEffect::Deallocate { name })
        }
        NodeRef::DiscardStmt(d) => discard(d),
        NodeRef::ListenStmt(l) => Base::read("LISTEN").effect(SessionEffect::Listen {
            channel: l.conditionname.clone(),
        }),
        NodeRef::UnlistenStmt(_) => Base::read("UNLISTEN").effect(SessionEffect::Unlisten),

        // Schema changes.
        NodeRef::CreateStmt(_) => Base::schema("CREATE TABLE"),
        NodeRef::CreateForeignTableStmt(_) => Base::admin("CREATE FOREIGN TABLE")
            .ddl()
            .reason("a foreign table reads another server, a server file or a server program"),
        NodeRef::CreateTableAsStmt(c) => match protobuf::ObjectType::try_from(c.objtype) {
            Ok(O::ObjectMatview) => Base::schema("CREATE MATERIALIZED VIEW"),
            _ => Base::schema("CREATE TABLE AS"),
        },
        NodeRef::ViewStmt(_) => Base::schema("CREATE VIEW"),
        NodeRef::IndexStmt(_) => Base::schema("CREATE INDEX"),
        NodeRef::CreateSeqStmt(_) => Base::schema("CREATE SEQUENCE"),
        NodeRef::AlterSeqStmt(_) => Base::schema("ALTER SEQUENCE"),
        NodeRef::CreateSchemaStmt(_) => Base::schema("CREATE SCHEMA"),
        NodeRef::CreateDomainStmt(_) => Base::schema("CREATE DOMAIN"),
        NodeRef::AlterDomainStmt(_) => Base::schema("ALTER DOMAIN"),
        NodeRef::CompositeTypeStmt(_)
        | NodeRef::CreateEnumStmt(_)
        | NodeRef::CreateRangeStmt(_) => Base::schema("CREATE TYPE"),
        NodeRef::AlterEnumStmt(_) | NodeRef::AlterTypeStmt(_) => Base::schema("ALTER TYPE"),
        NodeRef::DefineStmt(d) => object_ddl(protobuf::ObjectType::try_from(d.kind).ok(), "CREATE"),
        NodeRef::CreateFunctionStmt(f) => Base::schema(if f.is_procedure {
            "CREATE PROCEDURE"
        } else {
            "CREATE FUNCTION"
        }),
        NodeRef::AlterFunctionStmt(f) => {
            object_ddl(protobuf::ObjectType::try_from(f.objtype).ok(), "ALTER")
        }
        NodeRef::CreateTrigStmt(_) => Base::schema("CREATE TRIGGER"),
        NodeRef::RuleStmt(_) => Base::schema("CREATE RULE"),
        NodeRef::CreateStatsStmt(_) => Base::schema("CREATE STATISTICS"),
        NodeRef::AlterStatsStmt(_) => Base::schema("ALTER STATISTICS"),
        NodeRef::CreateCastStmt(_) => Base::schema("CREATE CAST"),
        NodeRef::CreateTransformStmt(_) => Base::schema("CREATE TRANSFORM"),
        NodeRef::CreateConversionStmt(_) => Base::schema("CREATE CONVERSION"),
        NodeRef::CreateOpClassStmt(_) => Base::schema("CREATE OPERATOR CLASS"),
        NodeRef::CreateOpFamilyStmt(_) => Base::schema("CREATE OPERATOR FAMILY"),
        NodeRef::AlterOpFamilyStmt(_) => Base::schema("ALTER OPERATOR FAMILY"),
        NodeRef::AlterOperatorStmt(_) => Base::schema("ALTER OPERATOR"),
        NodeRef::AlterCollationStmt(_) => Base::schema("ALTER COLLATION"),
        NodeRef::AlterTsdictionaryStmt(_) => Base::schema("ALTER TEXT SEARCH DICTIONARY"),
        NodeRef::AlterTsconfigurationStmt(_) => Base::schema("ALTER TEXT SEARCH CONFIGURATION"),
        NodeRef::AlterObjectDependsStmt(a) => {
            object_ddl(protobuf::ObjectType::try_from(a.object_type).ok(), "ALTER")
        }
        NodeRef::AlterTableStmt(a) => alter_table(a),
        NodeRef::ReplicaIdentityStmt(_) => Base::schema("ALTER TABLE"),
        NodeRef::DropStmt(d) => {
            object_ddl(protobuf::ObjectType::try_from(d.remove_type).ok(), "DROP")
        }
        NodeRef::RenameStmt(r) => {
            let object = match protobuf::ObjectType::try_from(r.rename_type) {
                Ok(O::ObjectColumn | O::ObjectAttribute | O::ObjectTabconstraint) => {
                    protobuf::ObjectType::try_from(r.relation_type).ok()
                }
                other => other.ok(),
            };
            object_ddl(object, "ALTER")
        }
        NodeRef::AlterObjectSchemaStmt(a) => {
            object_ddl(protobuf::ObjectType::try_from(a.object_type).ok(), "ALTER")
        }
        NodeRef::CommentStmt(_) => Base::schema("COMMENT"),

        // Administration.
        NodeRef::AlterOwnerStmt(a) => {
            let object = protobuf::ObjectType::try_from(a.object_type).ok();
            Base::admin(format!("ALTER {}", object_type_name(object)))
                .ddl()
                .reason("changes an object's owner")
        }
        NodeRef::DoStmt(_) => Base::admin("DO").ddl().reason("DO runs procedural code"),
        NodeRef::LoadStmt(_) => {
            Base::admin("LOAD").reason("LOAD loads a shared library into the server")
        }
        NodeRef::AlterSystemStmt(_) => {
            Base::admin("ALTER SYSTEM").reason("ALTER SYSTEM changes the server's configuration")
        }
        NodeRef::GrantStmt(g) => Base::admin(if g.is_grant { "GRANT" } else { "REVOKE" }).ddl(),
        NodeRef::GrantRoleStmt(g) => Base::admin(if g.is_grant {
            "GRANT ROLE"
        } else {
            "REVOKE ROLE"
        })
        .ddl(),
        NodeRef::AlterDefaultPrivilegesStmt(_) => Base::admin("ALTER DEFAULT PRIVILEGES").ddl(),
        NodeRef::CreateRoleStmt(r) => {
            Base::admin(format!("CREATE {}", role_word(r.stmt_type))).ddl()
        }
        NodeRef::AlterRoleStmt(_) | NodeRef::AlterRoleSetStmt(_) => Base::admin("ALTER ROLE").ddl(),
        NodeRef::DropRoleStmt(_) => Base::admin("DROP ROLE").ddl(),
        NodeRef::ReassignOwnedStmt(_) => Base::admin("REASSIGN OWNED").ddl(),
        NodeRef::DropOwnedStmt(_) => Base::admin("DROP OWNED").ddl(),
        NodeRef::CreateExtensionStmt(_) => Base::admin("CREATE EXTENSION").ddl(),
        NodeRef::AlterExtensionStmt(_) | NodeRef::AlterExtensionContentsStmt(_) => {
            Base::admin("ALTER EXTENSION").ddl()
        }
        NodeRef::CreatedbStmt(_) => Base::admin("CREATE DATABASE").ddl(),
        NodeRef::AlterDatabaseStmt(_)
        | NodeRef::AlterDatabaseSetStmt(_)
        | NodeRef::AlterDatabaseRefreshCollStmt(_) => Base::admin("ALTER DATABASE").ddl(),
        NodeRef::DropdbStmt(_) => Base::admin("DROP DATABASE").ddl(),
        NodeRef::CreateTableSpaceStmt(_) => Base::admin("CREATE TABLESPACE").ddl(),
        NodeRef::DropTableSpaceStmt(_) => Base::admin("DROP TABLESPACE").ddl(),
        NodeRef::AlterTableSpaceOptionsStmt(_) => Base::admin("ALTER TABLESPACE").ddl(),
        NodeRef::AlterTableMoveAllStmt(_) => Base::admin("ALTER TABLE").ddl(),
        NodeRef::CreateFdwStmt(_) => Base::admin("CREATE FOREIGN DATA WRAPPER").ddl(),
        NodeRef::AlterFdwStmt(_) => Base::admin("ALTER FOREIGN DATA WRAPPER").ddl(),
        NodeRef::CreateForeignServerStmt(_) => Base::admin("CREATE SERVER").ddl(),
        NodeRef::AlterForeignServerStmt(_) => Base::admin("ALTER SERVER").ddl(),
        NodeRef::CreateUserMappingStmt(_) => Base::admin("CREATE USER MAPPING").ddl(),
        NodeRef::AlterUserMappingStmt(_) => Base::admin("ALTER USER MAPPING").ddl(),
        NodeRef::DropUserMappingStmt(_) => Base::admin("DROP USER MAPPING").ddl(),
        NodeRef::ImportForeignSchemaStmt(_) => Base::admin("IMPORT FOREIGN SCHEMA").ddl(),
        NodeRef::CreatePublicationStmt(_) => Base::admin("CREATE PUBLICATION").ddl(),
        NodeRef::AlterPublicationStmt(_) => Base::admin("ALTER PUBLICATION").ddl(),
        NodeRef::CreateSubscriptionStmt(_) => Base::admin("CREATE SUBSCRIPTION").ddl(),
        NodeRef::AlterSubscriptionStmt(_) => Base::admin("ALTER SUBSCRIPTION").ddl(),
        NodeRef::DropSubscriptionStmt(_) => Base::admin("DROP SUBSCRIPTION").ddl(),
        NodeRef::CreateEventTrigStmt(_) => Base::admin("CREATE EVENT TRIGGER").ddl(),
        NodeRef::AlterEventTrigStmt(_) => Base::admin("ALTER EVENT TRIGGER").ddl(),
        NodeRef::CreatePlangStmt(_) => Base::admin("CREATE LANGUAGE").ddl(),
        NodeRef::CreateAmStmt(_) => Base::admin("CREATE ACCESS METHOD").ddl(),
        NodeRef::CreatePolicyStmt(_) => Base::admin("CREATE POLICY").ddl(),
        NodeRef::AlterPolicyStmt(_) => Base::admin("ALTER POLICY").ddl(),
        NodeRef::SecLabelStmt(_) => Base::admin("SECURITY LABEL").ddl(),
        NodeRef::VacuumStmt(v) => Base::admin(if v.is_vacuumcmd { "VACUUM" } else { "ANALYZE" }),
        NodeRef::ClusterStmt(_) => Base::admin("CLUSTER"),
        NodeRef::ReindexStmt(_) => Base::admin("REINDEX"),
        NodeRef::CheckPointStmt(_) => Base::admin("CHECKPOINT"),

        // Statement nodes the raw parser does not produce at the top level.
        NodeRef::RawStmt(_) | NodeRef::SetOperationStmt(_) | NodeRef::PlassignStmt(_) => {
            not_understood(node)
        }
        _ => return None,
    };
    Some(b)
}

pub(super) fn copy(c: &protobuf::CopyStmt) -> Base {
    if c.is_program {
        Base::admin("COPY").reason("COPY ... PROGRAM runs a command on the server")
    } else if !c.filename.is_empty() {
        Base::admin("COPY").reason("COPY reads or writes a file on the server")
    } else if c.is_from {
        Base::write("COPY")
    } else {
        Base::read("COPY")
    }
}

pub(super) fn set(s: &protobuf::VariableSetStmt) -> Base {
    use protobuf::VariableSetKind as K;
    let Ok(kind) = K::try_from(s.kind) else {
        return Base::new(Unknown, "SET").reason("unknown kind of SET");
    };
    let tag = if matches!(kind, K::VarReset | K::VarResetAll) {
        "RESET"
    } else {
        "SET"
    };
    match kind {
        K::Undefined => Base::new(Unknown, tag).reason("unknown kind of SET"),
        K::VarResetAll => Base::admin(tag)
            .effect(SessionEffect::SetSearchPath)
            .reason("RESET ALL resets every setting, including search_path"),
        K::VarSetMulti
            if [
                "transaction",
                "session characteristics",
                "transaction snapshot",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&s.name)) =>
        {
            if asks_read_write(&s.args) {
                Base::admin(tag).reason(READ_WRITE_REASON)
            } else {
                Base::read(tag)
            }
        }
        K::VarSetValue | K::VarSetDefault | K::VarSetCurrent | K::VarReset | K::VarSetMulti
            if settings::classify_setting(&s.name).search_path =>
        {
            // Each value of `SET search_path` is one schema name.
            let schemas = match kind {
                K::VarSetDefault | K::VarReset => Some(Vec::new()),
                K::VarSetValue => s
                    .args
                    .iter()
                    .map(|a| match a.node.as_ref() {
                        Some(protobuf::node::Node::AConst(c)) => match &c.val {
                            Some(protobuf::a_const::Val::Sval(v)) => Some(v.sval.clone()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            let class = settings::search_path_change(schemas.as_deref());
            let b = Base::new(class.kind, tag).effect(SessionEffect::SetSearchPath);
            if class.kind > Read {
                b.reason(format!("changes search_path ({})", class.why))
            } else {
                b
            }
        }
        K::VarSetValue | K::VarSetDefault | K::VarSetCurrent | K::VarReset | K::VarSetMulti => {
            let class = settings::classify_setting(&s.name);
            let mut b = Base::new(class.kind, tag);
            if let Some(reason) = settings::setting_reason(&s.name) {
                b = b.reason(reason);
            }
            if class.search_path {
                b = b.effect(SessionEffect::SetSearchPath);
            }
            b
        }
    }
}

/// Why asking for a read-write transaction is an admin act: the gateway runs sessions that may
/// only read with `default_transaction_read_only`, so the server itself refuses writes hidden
/// in views, policies, operators or casts.
pub(super) const READ_WRITE_REASON: &str = "asks for a read-write transaction";

/// Whether transaction options (`BEGIN …`, `SET TRANSACTION …`) include `READ WRITE`.
pub(super) fn asks_read_write(options: &[protobuf::Node]) -> bool {
    options.iter().any(|n| match &n.node {
        Some(protobuf::node::Node::DefElem(d)) if d.defname == "transaction_read_only" => {
            match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(protobuf::node::Node::AConst(c)) => match &c.val {
                    Some(protobuf::a_const::Val::Ival(i)) => i.ival == 0,
                    Some(protobuf::a_const::Val::Boolval(b)) => !b.boolval,
                    // Anything else: cannot tell, so treat it as a request for read-write.
                    _ => true,
                },
                _ => true,
            }
        }
        _ => false,
    })
}

pub(super) fn transaction(t: &protobuf::TransactionStmt) -> Base {
    use protobuf::TransactionStmtKind as K;
    if matches!(
        K::try_from(t.kind),
        Ok(K::TransStmtBegin | K::TransStmtStart)
    ) && asks_read_write(&t.options)
    {
        let tag = if matches!(K::try_from(t.kind), Ok(K::TransStmtBegin)) {
            "BEGIN"
        } else {
            "START TRANSACTION"
        };
        return Base::admin(tag)
            .reason(READ_WRITE_REASON)
            .effect(SessionEffect::Transaction);
    }
    let b = match K::try_from(t.kind) {
        Ok(K::TransStmtBegin) => Base::read("BEGIN"),
        Ok(K::TransStmtStart) => Base::read("START TRANSACTION"),
        Ok(K::TransStmtCommit) => Base::read("COMMIT"),
        Ok(K::TransStmtRollback | K::TransStmtRollbackTo) => Base::read("ROLLBACK"),
        Ok(K::TransStmtSavepoint) => Base::read("SAVEPOINT"),
        Ok(K::TransStmtRelease) => Base::read("RELEASE"),
        Ok(K::TransStmtPrepare) => {
            Base::admin("PREPARE TRANSACTION").reason("two-phase commit outlives the session")
        }
        Ok(K::TransStmtCommitPrepared) => Base::admin("COMMIT PREPARED")
            .reason("two-phase commit acts on another session's transaction"),
        Ok(K::TransStmtRollbackPrepared) => Base::admin("ROLLBACK PREPARED")
            .reason("two-phase commit acts on another session's transaction"),
        Ok(K::Undefined) | Err(_) => {
            return Base::new(Unknown, "UNKNOWN").reason("unknown kind of transaction statement");
        }
    };
    b.effect(SessionEffect::Transaction)
}

pub(super) fn discard(d: &protobuf::DiscardStmt) -> Base {
    use protobuf::DiscardMode as M;
    match M::try_from(d.target) {
        Ok(M::DiscardAll) => Base::read("DISCARD ALL").effect(SessionEffect::Discard),
        Ok(M::DiscardPlans) => Base::read("DISCARD PLANS"),
        Ok(M::DiscardSequences) => Base::read("DISCARD SEQUENCES"),
        // Temporary tables never change how the gateway resolves names: no catalog effect.
        Ok(M::DiscardTemp) => Base::read("DISCARD TEMP"),
        Ok(M::Undefined) | Err(_) => {
            Base::new(Unknown, "DISCARD").reason("unknown kind of DISCARD")
        }
    }
}

pub(super) fn alter_table(a: &protobuf::AlterTableStmt) -> Base {
    use protobuf::AlterTableType as T;
    let object = protobuf::ObjectType::try_from(a.objtype).ok();
    let mut b = object_ddl(object, "ALTER");
    if object == Some(protobuf::ObjectType::ObjectForeignTable) {
        b.kind = Admin;
        b.reason =
            Some("a foreign table reads another server, a server file or a server program".into());
    }
    for cmd in &a.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            continue;
        };
        let reason = match T::try_from(cmd.subtype) {
            Ok(T::AtChangeOwner) => "changes an object's owner",
            Ok(
                T::AtEnableRowSecurity
                | T::AtDisableRowSecurity
                | T::AtForceRowSecurity
                | T::AtNoForceRowSecurity,
            ) => "changes row-level security",
            _ => continue,
        };
        b.kind = Admin;
        b.reason = Some(reason.to_owned());
    }
    b
}

pub(super) fn role_word(stmt_type: i32) -> &'static str {
    use protobuf::RoleStmtType as R;
    match R::try_from(stmt_type) {
        Ok(R::RolestmtUser) => "USER",
        Ok(R::RolestmtGroup) => "GROUP",
        _ => "ROLE",
    }
}

/// Object types whose creation, change or removal is administration rather than a schema
/// change: security, server and cluster-wide objects.
pub(super) fn is_admin_object(object: protobuf::ObjectType) -> bool {
    use protobuf::ObjectType as O;
    matches!(
        object,
        O::ObjectAccessMethod
            | O::ObjectDatabase
            | O::ObjectDefacl
            | O::ObjectEventTrigger
            | O::ObjectExtension
            | O::ObjectFdw
            | O::ObjectForeignServer
            | O::ObjectLanguage
            | O::ObjectLargeobject
            | O::ObjectParameterAcl
            | O::ObjectPolicy
            | O::ObjectPublication
            | O::ObjectPublicationNamespace
            | O::ObjectPublicationRel
            | O::ObjectRole
            | O::ObjectSubscription
            | O::ObjectTablespace
            | O::ObjectUserMapping
    )
}

pub(super) fn object_type_name(object: Option<protobuf::ObjectType>) -> &'static str {
    use protobuf::ObjectType as O;
    let Some(object) = object else {
        return "OBJECT";
    };
    match object {
        O::Undefined => "OBJECT",
        O::ObjectAccessMethod => "ACCESS METHOD",
        O::ObjectAggregate => "AGGREGATE",
        O::ObjectAmop => "OPERATOR FAMILY",
        O::ObjectAmproc => "OPERATOR FAMILY",
        O::ObjectAttribute => "TYPE",
        O::ObjectCast => "CAST",
        O::ObjectColumn => "TABLE",
        O::ObjectCollation => "COLLATION",
        O::ObjectConversion => "CONVERSION",
        O::ObjectDatabase => "DATABASE",
        O::ObjectDefault => "DEFAULT",
        O::ObjectDefacl => "DEFAULT PRIVILEGES",
        O::ObjectDomain => "DOMAIN",
        O::ObjectDomconstraint => "DOMAIN",
        O::ObjectEventTrigger => "EVENT TRIGGER",
        O::ObjectExtension => "EXTENSION",
        O::ObjectFdw => "FOREIGN DATA WRAPPER",
        O::ObjectForeignServer => "SERVER",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectFunction => "FUNCTION",
        O::ObjectIndex => "INDEX",
        O::ObjectLanguage => "LANGUAGE",
        O::ObjectLargeobject => "LARGE OBJECT",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectOpclass => "OPERATOR CLASS",
        O::ObjectOperator => "OPERATOR",
        O::ObjectOpfamily => "OPERATOR FAMILY",
        O::ObjectParameterAcl => "PARAMETER",
        O::ObjectPolicy => "POLICY",
        O::ObjectProcedure => "PROCEDURE",
        O::ObjectPublication => "PUBLICATION",
        O::ObjectPublicationNamespace => "PUBLICATION",
        O::ObjectPublicationRel => "PUBLICATION",
        O::ObjectRole => "ROLE",
        O::ObjectRoutine => "ROUTINE",
        O::ObjectRule => "RULE",
        O::ObjectSchema => "SCHEMA",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectSubscription => "SUBSCRIPTION",
        O::ObjectStatisticExt => "STATISTICS",
        O::ObjectTabconstraint => "TABLE",
        O::ObjectTable => "TABLE",
        O::ObjectTablespace => "TABLESPACE",
        O::ObjectTransform => "TRANSFORM",
        O::ObjectTrigger => "TRIGGER",
        O::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        O::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        O::ObjectTsparser => "TEXT SEARCH PARSER",
        O::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        O::ObjectType => "TYPE",
        O::ObjectUserMapping => "USER MAPPING",
        O::ObjectView => "VIEW",
    }
}
