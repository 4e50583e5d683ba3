//! Names as PostgreSQL resolves them: unquoted identifiers folded to lower case (ASCII only,
//! as PostgreSQL's `downcase_identifier` does in a multi-byte encoding), quoted ones kept.

use ::sqlparser::ast::{Expr, Ident, ObjectName, ObjectNamePart};

/// An identifier as PostgreSQL resolves its case.
pub(super) fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_none() {
        ident.value.to_ascii_lowercase()
    } else {
        ident.value.clone()
    }
}

/// The folded parts of a dotted name; `None` if a part is not an identifier (Snowflake's
/// `IDENTIFIER(…)`).
pub(super) fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(fold(i)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// `(schema, name)` of a relation name (`name`, `schema.name` or `catalog.schema.name`, the
/// catalog being the current database); `None` if it is not such a name.
pub(super) fn relation_name(name: &ObjectName) -> Option<(Option<String>, String)> {
    relation_from_parts(parts(name)?)
}

/// `(schema, name)` of a relation named by identifiers (`SELECT … INTO s.t`).
pub(super) fn relation_from_idents(idents: &[Ident]) -> Option<(Option<String>, String)> {
    relation_from_parts(idents.iter().map(fold).collect())
}

fn relation_from_parts(mut parts: Vec<String>) -> Option<(Option<String>, String)> {
    let name = parts.pop()?;
    match parts.len() {
        0 => Some((None, name)),
        1 | 2 => Some((parts.pop(), name)),
        _ => None,
    }
}

/// `(schema, name)` of a function or operator name: the schema is everything before the last
/// part, joined with dots (as the `pg_query` backend reports it).
pub(super) fn function_name(name: &ObjectName) -> Option<(Option<String>, String)> {
    let mut parts = parts(name)?;
    let name = parts.pop()?;
    let schema = (!parts.is_empty()).then(|| parts.join("."));
    Some((schema, name))
}

/// A setting's name as `SET`/`RESET` write it (`app.tenant_id`); `None` if not a plain name.
pub(super) fn setting_name(name: &ObjectName) -> Option<String> {
    let parts = parts(name)?;
    (!parts.is_empty()).then(|| parts.join("."))
}

/// The relation named by a `SELECT … INTO` target.
pub(super) fn into_target(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(i) => relation_from_idents(std::slice::from_ref(i)),
        Expr::CompoundIdentifier(idents) => relation_from_idents(idents),
        _ => None,
    }
}

/// A part of `OPERATOR(schema.op)` as sqlparser keeps it (the raw text): quoted parts lose
/// their quotes, unquoted ones are folded.
pub(super) fn operator_part(part: &str) -> String {
    match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => part.to_ascii_lowercase(),
    }
}

/// PostgreSQL's reserved and type/function-name keywords: none of them may start a relation
/// name unquoted, so sqlparser accepting one there (`SELECT FROM WHERE` reads `WHERE` as a
/// table) means the text is not PostgreSQL's. Sorted (a unit test checks).
static NOT_RELATION_NAMES: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// Whether an unquoted identifier cannot start a relation name in PostgreSQL.
pub(super) fn is_reserved_for_relations(ident: &Ident) -> bool {
    ident.quote_style.is_none()
        && NOT_RELATION_NAMES
            .binary_search(&ident.value.to_ascii_lowercase().as_str())
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_list_is_sorted() {
        for w in NOT_RELATION_NAMES.windows(2) {
            assert!(w[0] < w[1], "{:?} must come before {:?}", w[1], w[0]);
        }
    }

    #[test]
    fn folding() {
        assert_eq!(fold(&Ident::new("Users")), "users");
        assert_eq!(fold(&Ident::with_quote('"', "Users")), "Users");
        // Only ASCII letters fold, as in PostgreSQL with a multi-byte encoding.
        assert_eq!(fold(&Ident::new("ÉTÉ")), "ÉtÉ");
        assert_eq!(operator_part("Public"), "public");
        assert_eq!(operator_part("\"My\""), "My");
        assert!(is_reserved_for_relations(&Ident::new("WHERE")));
        assert!(!is_reserved_for_relations(&Ident::with_quote('"', "where")));
        assert!(!is_reserved_for_relations(&Ident::new("users")));
    }
}
