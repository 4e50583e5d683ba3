//! What changing a run-time setting (`SET`, `RESET`, `set_config`) does, independent of the
//! parser that found it.
//!
//! Only a short list of settings is harmless for an agent to change: timeouts, the
//! application name and how values are formatted. Everything else, including custom settings
//! such as `app.tenant_id` (row-level security policies often read those), is
//! [`Admin`](OperationKind::Admin). Three groups get their own reason:
//!
//! - `search_path` decides which objects unqualified names resolve to;
//! - `role` and `session_authorization` change who the session acts as;
//! - `client_encoding`, `standard_conforming_strings` and `backslash_quote` change how the
//!   server reads string literals, so the gateway's parser would no longer see what the
//!   server sees.
//!
//! Setting names are case-insensitive in PostgreSQL (`SET "Search_Path" = ...` works), so they
//! are compared case-insensitively here.

use sod_core::OperationKind;

/// The verdict on changing one setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingClass {
    /// What changing it amounts to: [`Read`](OperationKind::Read) when harmless, otherwise
    /// [`Admin`](OperationKind::Admin).
    pub kind: OperationKind,
    /// Why it is not harmless, in a few words; empty when harmless.
    pub why: &'static str,
    /// Whether the setting is `search_path` (the gateway tracks it).
    pub search_path: bool,
}

impl SettingClass {
    const HARMLESS: Self = Self {
        kind: OperationKind::Read,
        why: "",
        search_path: false,
    };

    const fn admin(why: &'static str) -> Self {
        Self {
            kind: OperationKind::Admin,
            why,
            search_path: false,
        }
    }
}

/// Settings an agent may change: they affect only timeouts, labels and value formatting of
/// its own session — and, as `pg_dump` sets them, `synchronize_seqscans` (where a scan
/// starts), `quote_all_identifiers` (how the server quotes names it prints),
/// `restrict_nonsystem_relation_kind` (forbids the session views or foreign tables) and
/// `row_security` (off makes a query that a row-level security policy applies to fail
/// instead of filtering; no value of it lets a role that does not bypass row security see
/// more rows). Lower case, sorted (a unit test checks).
pub static HARMLESS_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_min_messages",
    "datestyle",
    "default_transaction_deferrable",
    "default_transaction_isolation",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "intervalstyle",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lock_timeout",
    "quote_all_identifiers",
    "restrict_nonsystem_relation_kind",
    "row_security",
    "statement_timeout",
    "synchronize_seqscans",
    "timezone",
    "transaction_deferrable",
    "transaction_isolation",
    "transaction_timeout",
    "xmlbinary",
    "xmloption",
];

/// Classifies changing (or resetting) the setting `name`.
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::settings::classify_setting;
///
/// assert_eq!(classify_setting("statement_timeout").kind, OperationKind::Read);
/// assert_eq!(classify_setting("TimeZone").kind, OperationKind::Read);
/// assert!(classify_setting("Search_Path").search_path);
/// assert_eq!(classify_setting("search_path").kind, OperationKind::Admin);
/// assert_eq!(classify_setting("role").kind, OperationKind::Admin);
/// assert_eq!(classify_setting("app.tenant_id").kind, OperationKind::Admin);
/// ```
pub fn classify_setting(name: &str) -> SettingClass {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "search_path" => SettingClass {
            kind: OperationKind::Admin,
            why: "changes how unqualified names resolve",
            search_path: true,
        },
        "role" | "session_authorization" => {
            SettingClass::admin("changes the role the session acts as")
        }
        "client_encoding" | "standard_conforming_strings" | "backslash_quote" => {
            SettingClass::admin("changes how the server reads string literals")
        }
        "session_replication_role" => SettingClass::admin("disables triggers and rules"),
        s if HARMLESS_SETTINGS.binary_search(&s).is_ok() => SettingClass::HARMLESS,
        _ => SettingClass::admin("changes a setting that is not on the harmless list"),
    }
}

/// Why a `search_path` that puts a schema ahead of `pg_catalog` is administration.
pub const SEARCH_PATH_AHEAD_OF_PG_CATALOG: &str = "puts a schema ahead of pg_catalog, so built-in function, operator and type names could resolve to others";

/// The verdict on setting `search_path` to `schemas` (each one schema name, as `SET` gives
/// them; `None` when the value is not known, such as a computed `set_config` argument).
///
/// Changing the search path is ordinary client behaviour (`pg_dump` starts by emptying it):
/// the gateway asks the server for the session's effective path afterwards and resolves names
/// along it. It stays [`Admin`](OperationKind::Admin) when the new path could make a built-in
/// name mean something else: a schema other than `pg_temp` listed before `pg_catalog`
/// (`pg_catalog` not listed is searched first; `pg_temp` is never searched for functions and
/// operators), or a value the analyzer cannot read.
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::settings::search_path_change;
///
/// let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
/// assert_eq!(search_path_change(Some(&s(&[]))).kind, OperationKind::Read);
/// assert_eq!(search_path_change(Some(&s(&["app", "public"]))).kind, OperationKind::Read);
/// assert_eq!(search_path_change(Some(&s(&["pg_catalog", "app"]))).kind, OperationKind::Read);
/// assert_eq!(search_path_change(Some(&s(&["app", "pg_catalog"]))).kind, OperationKind::Admin);
/// assert_eq!(search_path_change(None).kind, OperationKind::Admin);
/// ```
pub fn search_path_change(schemas: Option<&[String]>) -> SettingClass {
    let Some(schemas) = schemas else {
        return SettingClass {
            search_path: true,
            ..SettingClass::admin("the new search_path cannot be read")
        };
    };
    let ahead = schemas
        .iter()
        .take_while(|s| s.as_str() != "pg_catalog")
        .any(|s| s != "pg_temp");
    if ahead && schemas.iter().any(|s| s == "pg_catalog") {
        SettingClass {
            search_path: true,
            ..SettingClass::admin(SEARCH_PATH_AHEAD_OF_PG_CATALOG)
        }
    } else {
        SettingClass {
            search_path: true,
            ..SettingClass::HARMLESS
        }
    }
}

/// Whether `set_config(setting, value, …)` with these literal arguments is harmless: the
/// setting is on [`HARMLESS_SETTINGS`], or it is `search_path` and the path
/// ([`split_search_path`]) keeps `pg_catalog` first ([`search_path_change`]). `Some(true)`
/// when it changes the search path, `None` when it is not harmless.
///
/// ```
/// use sod_postgres::sql::settings::harmless_set_config;
///
/// assert_eq!(harmless_set_config("search_path", ""), Some(true));
/// assert_eq!(harmless_set_config("Statement_Timeout", "0"), Some(false));
/// assert_eq!(harmless_set_config("search_path", "evil, pg_catalog"), None);
/// assert_eq!(harmless_set_config("role", "postgres"), None);
/// ```
pub fn harmless_set_config(setting: &str, value: &str) -> Option<bool> {
    let class = classify_setting(setting);
    let class = if class.search_path {
        search_path_change(split_search_path(value).as_deref())
    } else {
        class
    };
    (class.kind <= OperationKind::Read).then_some(class.search_path)
}

/// Splits a `search_path` value the way PostgreSQL does (`SplitIdentifierString`):
/// comma-separated names, each either double-quoted (`""` inside for a quote, case kept) or
/// bare (trimmed, folded to lower case). `None` when PostgreSQL would reject the value.
///
/// ```
/// use sod_postgres::sql::settings::split_search_path;
///
/// assert_eq!(split_search_path("").unwrap(), Vec::<String>::new());
/// assert_eq!(split_search_path(r#""$user", Public"#).unwrap(), ["$user", "public"]);
/// assert_eq!(split_search_path(r#""a,""b", pg_catalog"#).unwrap(), [r#"a,"b"#, "pg_catalog"]);
/// assert_eq!(split_search_path("a,,b"), None);
/// ```
pub fn split_search_path(value: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = value.trim_start();
    if rest.is_empty() {
        return Some(out);
    }
    loop {
        let name;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut n = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') if quoted[i + 1..].starts_with('"') => {
                        n.push('"');
                        chars.next();
                    }
                    (i, '"') => break i + 1,
                    (_, c) => n.push(c),
                }
            };
            if n.is_empty() {
                return None;
            }
            name = n;
            rest = quoted[end..].trim_start();
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            name = rest[..end].to_lowercase();
            rest = rest[end..].trim_start();
        }
        out.push(name);
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => return Some(out),
            None => return None,
        }
    }
}

/// The sentence for a statement's reasons when changing setting `name` is not harmless.
///
/// ```
/// use sod_postgres::sql::settings::setting_reason;
///
/// assert_eq!(
///     setting_reason("search_path").as_deref(),
///     Some("changes search_path (changes how unqualified names resolve)")
/// );
/// assert_eq!(setting_reason("statement_timeout"), None);
/// ```
pub fn setting_reason(name: &str) -> Option<String> {
    let class = classify_setting(name);
    (class.kind > OperationKind::Read).then(|| format!("changes {name} ({})", class.why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmless_list_is_sorted_lowercase_and_unique() {
        for w in HARMLESS_SETTINGS.windows(2) {
            assert!(w[0] < w[1], "{:?} must come before {:?}", w[1], w[0]);
        }
        for s in HARMLESS_SETTINGS {
            assert_eq!(*s, s.to_ascii_lowercase());
            assert_eq!(classify_setting(s).kind, OperationKind::Read, "{s}");
        }
    }

    #[test]
    fn dangerous_settings() {
        for s in [
            "search_path",
            "SEARCH_PATH",
            "role",
            "session_authorization",
            "client_encoding",
            "standard_conforming_strings",
            "backslash_quote",
            "session_replication_role",
            "work_mem",
            "myapp.tenant",
            "",
        ] {
            assert_eq!(classify_setting(s).kind, OperationKind::Admin, "{s}");
        }
    }
}
