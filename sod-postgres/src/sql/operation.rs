//! From analysed statements to the [`Operation`] that policy, capability and approval judge.
//!
//! The gateway builds its operations here, and so can tools that explain decisions without a
//! session (`sod policy check`): both then escalate, note and fingerprint a statement alike.
//!
//! ```
//! use sod_core::{OperationKind, Target};
//! use sod_postgres::sql::operation;
//!
//! let target = Target::new("pg/app");
//! let part = operation::statement(
//!     &target,
//!     OperationKind::Read,
//!     "SELECT * FROM pg_hba_file_rules".into(),
//!     vec!["pg_catalog.pg_hba_file_rules".into()],
//!     Vec::new(),
//!     &[],
//! );
//! let op = operation::combine(target, String::new(), vec![part], &[]);
//! assert_eq!(op.kind(), OperationKind::Admin); // it reads the server's configuration files
//! ```

use bytes::Bytes;
use sod_core::{Operation, OperationBuilder, OperationKind, Target};

use super::{Analysis, SessionEffect};

/// System views whose rows come from the server's files (configuration, authentication):
/// reading them is server file access, whatever the SQL looks like, so admin.
pub const SERVER_FILE_VIEWS: &[&str] = &[
    "pg_catalog.pg_config",
    "pg_catalog.pg_file_settings",
    "pg_catalog.pg_hba_file_rules",
    "pg_catalog.pg_ident_file_mappings",
];

/// One statement as an operation part: its `kind`, normalized `text`, resolved `objects`
/// (`schema.name`) and the analyzer's `reasons` (the note). Reading a
/// [server-file view](SERVER_FILE_VIEWS) makes it at least admin. Password literals the text
/// leaves out (`secrets`) still count for the fingerprint: an approval of one password does
/// not cover another.
pub fn statement(
    target: &Target,
    kind: OperationKind,
    text: String,
    objects: Vec<String>,
    mut reasons: Vec<String>,
    secrets: &[String],
) -> OperationBuilder {
    let mut kind = kind;
    if let Some(view) = objects
        .iter()
        .find(|o| SERVER_FILE_VIEWS.contains(&o.as_str()))
    {
        kind = kind.max(OperationKind::Admin);
        reasons.push(format!("{view} reads the server's configuration files"));
    }
    let mut b = Operation::builder(target.clone(), kind, text).objects(objects);
    for secret in secrets {
        b = b.secret(secret);
    }
    if !reasons.is_empty() {
        b = b.note(reasons.join("; "));
    }
    b
}

/// The operation for a whole query string: its only statement, or a batch (with the string's
/// normalized `text`) whose parts are the statements, so that policy judges each; the bound
/// `params` belong to it.
pub fn combine(
    target: Target,
    text: String,
    mut parts: Vec<OperationBuilder>,
    params: &[Option<Bytes>],
) -> Operation {
    if parts.len() == 1
        && let Some(only) = parts.pop()
    {
        return params.iter().fold(only, |b, p| b.param(p.clone())).build();
    }
    let mut batch = Operation::builder(target, OperationKind::Read, text);
    for p in params {
        batch = batch.param(p.clone());
    }
    for part in parts {
        batch = batch.part(part.build());
    }
    batch.build()
}

/// The operation the gateway would build for `analysis` (same escalations, notes and
/// fingerprint), for callers without a session: unqualified names resolve as a default
/// `search_path` would (`public`, or `pg_catalog` for `pg_*` names) rather than against a
/// server's catalog, and `EXECUTE` of a prepared statement, which only a session can resolve,
/// is not understood. `sod policy check` explains decisions with it; an in-process runtime
/// can describe the statements its planner submits with it.
///
/// ```
/// use sod_core::{OperationKind, Target};
/// use sod_postgres::sql::{Analyzer as _, PgQueryAnalyzer, operation};
///
/// let analysis = PgQueryAnalyzer::new().analyze("UPDATE orders SET status = 'paid'");
/// let op = operation::offline(Target::new("pg/app"), &analysis);
/// assert_eq!(op.kind(), OperationKind::Write);
/// assert_eq!(op.objects(), ["public.orders"]);
/// ```
pub fn offline(target: Target, analysis: &Analysis) -> Operation {
    if let Some(err) = &analysis.error {
        return Operation::not_understood(target, analysis.normalized(), err.clone());
    }
    let mut parts = Vec::with_capacity(analysis.statements.len());
    for stmt in &analysis.statements {
        if let SessionEffect::Execute { name } = &stmt.effect {
            return Operation::not_understood(
                target,
                analysis.normalized(),
                format!(
                    "EXECUTE {name}: a prepared statement lives in a session; check its PREPARE instead"
                ),
            );
        }
        let objects = stmt
            .objects
            .iter()
            .map(|o| match &o.schema {
                Some(schema) => format!("{schema}.{}", o.name),
                None if o.name.starts_with("pg_") => format!("pg_catalog.{}", o.name),
                None => format!("public.{}", o.name),
            })
            .collect();
        parts.push(statement(
            &target,
            stmt.kind,
            stmt.normalized.clone(),
            objects,
            stmt.reasons.clone(),
            &stmt.secrets,
        ));
    }
    combine(target, analysis.normalized(), parts, &[])
}
