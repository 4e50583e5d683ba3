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
/// its own session. Lower case, sorted (a unit test checks).
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
    "statement_timeout",
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
        "row_security" => SettingClass::admin("changes row-level security"),
        s if HARMLESS_SETTINGS.binary_search(&s).is_ok() => SettingClass::HARMLESS,
        _ => SettingClass::admin("changes a setting that is not on the harmless list"),
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
            "row_security",
            "work_mem",
            "myapp.tenant",
            "",
        ] {
            assert_eq!(classify_setting(s).kind, OperationKind::Admin, "{s}");
        }
    }
}
