//! What calling a function (or an operator, or a `TABLESAMPLE` method) does, independent of
//! the parser that found the call.
//!
//! PostgreSQL resolves an unqualified function name through the `search_path`, with
//! `pg_catalog` searched first; a name qualified with `pg_catalog.` is the built-in. So:
//!
//! 1. A name on one of the *dangerous* lists ([`Admin`](OperationKind::Admin) or
//!    [`Write`](OperationKind::Write)) gets that verdict **whatever its schema**: extension
//!    functions such as `dblink` live in whichever schema the extension was installed into,
//!    and a user function that merely shares such a name is no reason to relax.
//! 2. An unqualified or `pg_catalog.`-qualified name on the *safe* list is a
//!    [`Read`](OperationKind::Read).
//! 3. Anything else is unknown and classified as a [`Write`](OperationKind::Write): a function
//!    the analyzer does not know may change data (invariant I7, fail closed).
//!
//! Names are compared exactly (case-sensitively), as PostgreSQL compares them: the parser has
//! already folded unquoted identifiers to lower case, and a quoted `"Upper"` is *not* the
//! built-in `upper`, so it is unknown.
//!
//! The safe list assumes that built-in names resolve to the built-ins. That holds as long as
//! nobody created same-named functions with better-matching argument types in a schema on the
//! `search_path` (CVE-2018-1058); the gateway treats any change of `search_path` as
//! [`Admin`](OperationKind::Admin).

use sod_core::OperationKind;

/// The verdict on calling one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionClass {
    /// What calling it amounts to.
    pub kind: OperationKind,
    /// Why, in a few words ("server file access"); empty for known read-only functions.
    pub why: &'static str,
    /// Whether the function is on one of the lists (`false`: unknown, treated as a write).
    pub known: bool,
}

impl FunctionClass {
    const READ: Self = Self {
        kind: OperationKind::Read,
        why: "",
        known: true,
    };
    const UNKNOWN: Self = Self {
        kind: OperationKind::Write,
        why: "unknown, treated as a write",
        known: false,
    };

    const fn admin(why: &'static str) -> Self {
        Self {
            kind: OperationKind::Admin,
            why,
            known: true,
        }
    }

    const fn write(why: &'static str) -> Self {
        Self {
            kind: OperationKind::Write,
            why,
            known: true,
        }
    }

    /// The sentence for a statement's reasons when calling `display_name` escalates it above a
    /// read, or `None` when it does not.
    ///
    /// ```
    /// use sod_postgres::sql::functions::classify_function;
    ///
    /// let c = classify_function(None, "pg_read_file");
    /// assert_eq!(c.reason("pg_read_file").as_deref(), Some("calls pg_read_file (server file access)"));
    /// let c = classify_function(Some("public"), "f");
    /// assert_eq!(c.reason("public.f").as_deref(), Some("calls unknown function public.f, treated as a write"));
    /// assert_eq!(classify_function(None, "upper").reason("upper"), None);
    /// ```
    pub fn reason(&self, display_name: &str) -> Option<String> {
        if self.kind <= OperationKind::Read {
            None
        } else if self.known {
            Some(format!("calls {display_name} ({})", self.why))
        } else {
            Some(format!(
                "calls unknown function {display_name}, treated as a write"
            ))
        }
    }
}

/// Classifies a call of `name` (as PostgreSQL resolved the identifier's case), qualified with
/// `schema` if the SQL qualified it.
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::functions::classify_function;
///
/// assert_eq!(classify_function(None, "count").kind, OperationKind::Read);
/// assert_eq!(classify_function(Some("pg_catalog"), "upper").kind, OperationKind::Read);
/// assert_eq!(classify_function(None, "nextval").kind, OperationKind::Write);
/// assert_eq!(classify_function(None, "pg_read_file").kind, OperationKind::Admin);
/// assert_eq!(classify_function(Some("public"), "dblink_exec").kind, OperationKind::Admin);
/// // Qualified with another schema, a safe name is unknown, and so is a quoted "Upper".
/// assert_eq!(classify_function(Some("public"), "upper").kind, OperationKind::Write);
/// assert_eq!(classify_function(None, "Upper").kind, OperationKind::Write);
/// ```
pub fn classify_function(schema: Option<&str>, name: &str) -> FunctionClass {
    if let Some(danger) = dangerous(name) {
        return danger;
    }
    let builtin_schema = matches!(schema, None | Some("pg_catalog"));
    if builtin_schema && is_safe(name)
        || schema == Some("information_schema")
            && INFORMATION_SCHEMA_HELPERS.binary_search(&name).is_ok()
    {
        FunctionClass::READ
    } else {
        FunctionClass::UNKNOWN
    }
}

/// The helper functions of `information_schema` that drivers call by their qualified name
/// (pgjdbc's `getPrimaryKeys` calls `information_schema._pg_expandarray`): SQL functions
/// `initdb` creates, owned by the bootstrap superuser in a schema nobody else may create in,
/// computed from their arguments and the catalog. Sorted (a unit test checks).
static INFORMATION_SCHEMA_HELPERS: &[&str] = &[
    "_pg_char_max_length",
    "_pg_char_octet_length",
    "_pg_datetime_precision",
    "_pg_expandarray",
    "_pg_index_position",
    "_pg_interval_type",
    "_pg_numeric_precision",
    "_pg_numeric_precision_radix",
    "_pg_numeric_scale",
    "_pg_truetypid",
    "_pg_truetypmod",
];

/// Classifies an operator such as `+` or `@>`, qualified with `schema` when written as
/// `OPERATOR(schema.op)`. Built-in operator symbols are reads; an operator qualified with a
/// schema other than `pg_catalog`, or a symbol no built-in uses, may be a user-defined operator
/// backed by any function, so it is unknown (a write).
///
/// ```
/// use sod_core::OperationKind;
/// use sod_postgres::sql::functions::classify_operator;
///
/// assert_eq!(classify_operator(None, "=").kind, OperationKind::Read);
/// assert_eq!(classify_operator(Some("pg_catalog"), "@>").kind, OperationKind::Read);
/// assert_eq!(classify_operator(Some("public"), "=").kind, OperationKind::Write);
/// assert_eq!(classify_operator(None, "===>").kind, OperationKind::Write);
/// ```
pub fn classify_operator(schema: Option<&str>, symbol: &str) -> FunctionClass {
    let builtin_schema = matches!(schema, None | Some("pg_catalog"));
    if builtin_schema && BUILTIN_OPERATORS.binary_search(&symbol).is_ok() {
        FunctionClass::READ
    } else {
        FunctionClass {
            kind: OperationKind::Write,
            why: "unknown operator, treated as a write",
            known: false,
        }
    }
}

/// Whether a call's result is computed from its arguments alone (and the catalog's
/// metadata), so that masking may follow its arguments: a built-in on the read-only list
/// other than those that show text other sessions, settings or statistics hold. Anything else
/// may read any table, so masking cannot place what it reads.
pub(crate) fn computes_from_arguments(schema: Option<&str>, name: &str) -> bool {
    classify_function(schema, name) == FunctionClass::READ
        && !shows_untraceable_text(name)
        && !matches!(
            name,
            "pg_stat_get_activity" | "pg_cursor" | "pg_prepared_statement" | "pg_mcv_list_items"
        )
}

/// Read-only built-ins that read no table data but return text masking cannot trace — a
/// setting's value (a custom setting may hold anything), a function's source: their results
/// are outputs of unknown provenance (masked), and using them elsewhere reveals nothing of a
/// table.
pub(crate) fn shows_untraceable_text(name: &str) -> bool {
    matches!(
        name,
        "current_setting"
            | "pg_show_all_settings"
            | "pg_settings_get_flags"
            | "pg_get_functiondef"
            | "pg_get_function_sqlbody"
    )
}

/// Whether a cast to this type (`names` as the parser gives them: `pg_catalog.int4`, `text`)
/// runs only built-in conversion code. A cast to any other type (a domain, a user type) may
/// run a user function, so masking cannot follow it.
pub(crate) fn is_builtin_type(schema: Option<&str>, name: &str) -> bool {
    matches!(schema, None | Some("pg_catalog")) && BUILTIN_TYPES.binary_search(&name).is_ok()
}

/// Built-in type names, sorted (a unit test checks).
static BUILTIN_TYPES: &[&str] = &[
    "bit",
    "bool",
    "boolean",
    "box",
    "bpchar",
    "bytea",
    "char",
    "cidr",
    "circle",
    "date",
    "datemultirange",
    "daterange",
    "decimal",
    "float4",
    "float8",
    "inet",
    "int2",
    "int4",
    "int4multirange",
    "int4range",
    "int8",
    "int8multirange",
    "int8range",
    "integer",
    "interval",
    "json",
    "jsonb",
    "jsonpath",
    "line",
    "lseg",
    "macaddr",
    "macaddr8",
    "money",
    "name",
    "numeric",
    "nummultirange",
    "numrange",
    "oid",
    "path",
    "pg_lsn",
    "point",
    "polygon",
    "real",
    "record",
    "regclass",
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
    "regrole",
    "regtype",
    "smallint",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "timetz",
    "tsmultirange",
    "tsquery",
    "tsrange",
    "tstzmultirange",
    "tstzrange",
    "tsvector",
    "txid_snapshot",
    "unknown",
    "uuid",
    "varbit",
    "varchar",
    "xid",
    "xid8",
    "xml",
];

/// Classifies a `TABLESAMPLE` method: the built-in `system` and `bernoulli` are reads; any
/// other method is a function the analyzer does not know (a write).
pub fn classify_tablesample(schema: Option<&str>, method: &str) -> FunctionClass {
    let builtin_schema = matches!(schema, None | Some("pg_catalog"));
    if builtin_schema && matches!(method, "system" | "bernoulli") {
        FunctionClass::READ
    } else {
        FunctionClass::UNKNOWN
    }
}

/// Functions that are not reads, whatever schema they are called from.
fn dangerous(name: &str) -> Option<FunctionClass> {
    const FILES: &str = "server file access";
    const SQL: &str = "executes SQL text";
    const SIGNAL: &str = "acts on other sessions";
    const SERVER: &str = "server administration";
    const REPLICATION: &str = "replication control";
    const SETTINGS: &str = "changes a server setting";
    const LO: &str = "large objects bypass table privileges";
    let c = match name {
        // Settings, including role and search_path.
        "set_config" => FunctionClass::admin(SETTINGS),
        // Server files.
        "pg_read_file"
        | "pg_read_binary_file"
        | "pg_stat_file"
        | "pg_ls_dir"
        | "pg_logdir_ls"
        | "pg_current_logfile"
        | "pg_show_all_file_settings"
        | "pg_hba_file_rules"
        | "pg_ident_file_mappings"
        | "pg_config" => FunctionClass::admin(FILES),
        "lo_import" | "lo_export" => FunctionClass::admin(FILES),
        // Functions that run SQL given as text.
        "query_to_xml"
        | "query_to_xmlschema"
        | "query_to_xml_and_xmlschema"
        | "cursor_to_xml"
        | "cursor_to_xmlschema"
        | "table_to_xml"
        | "table_to_xmlschema"
        | "table_to_xml_and_xmlschema"
        | "schema_to_xml"
        | "schema_to_xmlschema"
        | "schema_to_xml_and_xmlschema"
        | "database_to_xml"
        | "database_to_xmlschema"
        | "database_to_xml_and_xmlschema"
        | "ts_stat"
        | "ts_rewrite" => FunctionClass::admin(SQL),
        // Other sessions.
        "pg_terminate_backend" | "pg_cancel_backend" | "pg_log_backend_memory_contexts" => {
            FunctionClass::admin(SIGNAL)
        }
        // The server itself.
        "pg_reload_conf"
        | "pg_rotate_logfile"
        | "pg_rotate_logfile_old"
        | "pg_switch_wal"
        | "pg_switch_xlog"
        | "pg_create_restore_point"
        | "pg_backup_start"
        | "pg_backup_stop"
        | "pg_start_backup"
        | "pg_stop_backup"
        | "pg_promote"
        | "pg_wal_replay_pause"
        | "pg_wal_replay_resume"
        | "pg_log_standby_snapshot"
        | "pg_import_system_collations"
        | "pg_nextoid"
        | "pg_stat_statements_reset" => FunctionClass::admin(SERVER),
        // Sequences, notifications, transaction ids, sleeping.
        "nextval" | "setval" => FunctionClass::write("changes a sequence"),
        "pg_notify" => FunctionClass::write("sends a notification"),
        "txid_current" | "pg_current_xact_id" => FunctionClass::write("assigns a transaction id"),
        "pg_sleep" | "pg_sleep_for" | "pg_sleep_until" => {
            FunctionClass::write("holds the connection")
        }
        // Large objects, other than import and export (above).
        "loread" | "lowrite" => FunctionClass::write(LO),
        _ if name.starts_with("lo_") => FunctionClass::write(LO),
        _ if name.starts_with("pg_file_") => FunctionClass::admin(FILES),
        _ if name.starts_with("pg_ls_") => FunctionClass::admin(FILES),
        _ if name.starts_with("dblink") => {
            FunctionClass::admin("connects to a database and runs SQL there")
        }
        _ if name.starts_with("pg_stat_reset") => FunctionClass::admin(SERVER),
        _ if name.starts_with("binary_upgrade_") => FunctionClass::admin(SERVER),
        _ if name.contains("replication_slot")
            || name.starts_with("pg_logical_")
            || name.starts_with("pg_replication_origin_") =>
        {
            FunctionClass::admin(REPLICATION)
        }
        _ if name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_") => {
            FunctionClass::write("takes or releases an advisory lock")
        }
        _ => return None,
    };
    Some(c)
}

/// Built-in functions without side effects beyond the calling session's result.
///
/// Exact names only: a prefix rule ("every `json_*` is safe") would also bless a user function
/// such as `public.json_purge()` called without its schema.
fn is_safe(name: &str) -> bool {
    SAFE_FUNCTIONS.binary_search(&name).is_ok()
}

/// Exact names of read-only built-ins, sorted (a unit test checks), searched by bisection.
static SAFE_FUNCTIONS: &[&str] = &[
    "abbrev",
    "abs",
    "acldefault",
    "acos",
    "acosd",
    "acosh",
    "age",
    "any_value",
    "area",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_fill",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_reverse",
    "array_sample",
    "array_shuffle",
    "array_sort",
    "array_to_json",
    "array_to_string",
    "array_to_tsvector",
    "array_upper",
    "ascii",
    "asin",
    "asind",
    "asinh",
    "atan",
    "atan2",
    "atan2d",
    "atand",
    "atanh",
    "avg",
    "bit",
    "bit_and",
    "bit_count",
    "bit_length",
    "bit_or",
    "bit_xor",
    "bool",
    "bool_and",
    "bool_or",
    "bound_box",
    "box",
    "bpchar",
    "broadcast",
    "btrim",
    "bytea",
    "cardinality",
    "casefold",
    "cbrt",
    "ceil",
    "ceiling",
    "center",
    "char",
    "char_length",
    "character_length",
    "chr",
    "cidr",
    "circle",
    "clock_timestamp",
    "col_description",
    "concat",
    "concat_ws",
    "convert",
    "convert_from",
    "convert_to",
    "corr",
    "cos",
    "cosd",
    "cosh",
    "cot",
    "cotd",
    "count",
    "covar_pop",
    "covar_samp",
    "crc32",
    "crc32c",
    "cume_dist",
    "current_catalog",
    "current_database",
    "current_query",
    "current_role",
    "current_schema",
    "current_schemas",
    "current_setting",
    "current_user",
    "currval",
    "date",
    "date_add",
    "date_bin",
    "date_part",
    "date_subtract",
    "date_trunc",
    "datemultirange",
    "daterange",
    "decode",
    "degrees",
    "dense_rank",
    "diagonal",
    "diameter",
    "div",
    "encode",
    "enum_first",
    "enum_last",
    "enum_range",
    "erf",
    "erfc",
    "every",
    "exp",
    "extract",
    "factorial",
    "family",
    "first_value",
    "float4",
    "float8",
    "floor",
    "format",
    "format_type",
    "gamma",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "get_bit",
    "get_byte",
    "get_current_ts_config",
    "greatest",
    "grouping",
    "has_any_column_privilege",
    "has_column_privilege",
    "has_database_privilege",
    "has_foreign_data_wrapper_privilege",
    "has_function_privilege",
    "has_language_privilege",
    "has_largeobject_privilege",
    "has_parameter_privilege",
    "has_schema_privilege",
    "has_sequence_privilege",
    "has_server_privilege",
    "has_table_privilege",
    "has_tablespace_privilege",
    "has_type_privilege",
    "height",
    "host",
    "hostmask",
    "icu_unicode_version",
    "inet",
    "inet_client_addr",
    "inet_client_port",
    "inet_merge",
    "inet_same_family",
    "inet_server_addr",
    "inet_server_port",
    "initcap",
    "int2",
    "int4",
    "int4multirange",
    "int4range",
    "int8",
    "int8multirange",
    "int8range",
    "interval",
    "is_normalized",
    "isclosed",
    "isempty",
    "isfinite",
    "isopen",
    "json_agg",
    "json_agg_strict",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_object_agg_strict",
    "json_object_agg_unique",
    "json_object_agg_unique_strict",
    "json_object_keys",
    "json_populate_record",
    "json_populate_recordset",
    "json_scalar",
    "json_strip_nulls",
    "json_to_record",
    "json_to_recordset",
    "json_to_tsvector",
    "json_typeof",
    "jsonb_agg",
    "jsonb_agg_strict",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_concat",
    "jsonb_contained",
    "jsonb_contains",
    "jsonb_delete",
    "jsonb_delete_path",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_exists",
    "jsonb_exists_all",
    "jsonb_exists_any",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_object_agg",
    "jsonb_object_agg_strict",
    "jsonb_object_agg_unique",
    "jsonb_object_agg_unique_strict",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_exists_tz",
    "jsonb_path_match",
    "jsonb_path_match_tz",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_array_tz",
    "jsonb_path_query_first",
    "jsonb_path_query_first_tz",
    "jsonb_path_query_tz",
    "jsonb_populate_record",
    "jsonb_populate_record_valid",
    "jsonb_populate_recordset",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_set_lax",
    "jsonb_strip_nulls",
    "jsonb_to_record",
    "jsonb_to_recordset",
    "jsonb_to_tsvector",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lag",
    "last_value",
    "lastval",
    "lcm",
    "lead",
    "least",
    "left",
    "length",
    "lgamma",
    "like_escape",
    "line",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "lower",
    "lower_inc",
    "lower_inf",
    "lpad",
    "lseg",
    "ltrim",
    "macaddr",
    "macaddr8",
    "macaddr8_set7bit",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "makeaclitem",
    "masklen",
    "max",
    "md5",
    "min",
    "min_scale",
    "mod",
    "mode",
    "money",
    "multirange",
    "mxid_age",
    "name",
    "netmask",
    "network",
    "normalize",
    "now",
    "npoints",
    "nth_value",
    "ntile",
    "num_nonnulls",
    "num_nulls",
    "numeric",
    "nummultirange",
    "numnode",
    "numrange",
    "obj_description",
    "octet_length",
    "oid",
    "overlaps",
    "overlay",
    "parse_ident",
    "path",
    "pclose",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "pg_available_extension_versions",
    "pg_available_extensions",
    "pg_available_wal_summaries",
    "pg_backend_pid",
    "pg_basetype",
    "pg_blocking_pids",
    "pg_char_to_encoding",
    "pg_client_encoding",
    "pg_collation_actual_version",
    "pg_collation_for",
    "pg_collation_is_visible",
    "pg_column_compression",
    "pg_column_is_updatable",
    "pg_column_size",
    "pg_column_toast_chunk_id",
    "pg_conf_load_time",
    "pg_control_checkpoint",
    "pg_control_init",
    "pg_control_recovery",
    "pg_control_system",
    "pg_conversion_is_visible",
    "pg_current_snapshot",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id_if_assigned",
    "pg_cursor",
    "pg_database_collation_actual_version",
    "pg_database_size",
    "pg_describe_object",
    "pg_encoding_max_length",
    "pg_encoding_to_char",
    "pg_event_trigger_ddl_commands",
    "pg_event_trigger_dropped_objects",
    "pg_event_trigger_table_rewrite_oid",
    "pg_event_trigger_table_rewrite_reason",
    "pg_export_snapshot",
    "pg_extension_update_paths",
    "pg_filenode_relation",
    "pg_function_is_visible",
    "pg_get_acl",
    "pg_get_catalog_foreign_keys",
    "pg_get_constraintdef",
    "pg_get_expr",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_function_result",
    "pg_get_function_sqlbody",
    "pg_get_functiondef",
    "pg_get_indexdef",
    "pg_get_keywords",
    "pg_get_object_address",
    "pg_get_partition_constraintdef",
    "pg_get_partkeydef",
    "pg_get_publication_tables",
    "pg_get_ruledef",
    "pg_get_serial_sequence",
    "pg_get_statisticsobjdef",
    "pg_get_statisticsobjdef_columns",
    "pg_get_statisticsobjdef_expressions",
    "pg_get_triggerdef",
    "pg_get_userbyid",
    "pg_get_viewdef",
    "pg_get_wal_replay_pause_state",
    "pg_get_wal_resource_managers",
    "pg_has_role",
    "pg_identify_object",
    "pg_identify_object_as_address",
    "pg_index_column_has_property",
    "pg_index_has_property",
    "pg_indexam_has_property",
    "pg_indexes_size",
    "pg_input_error_info",
    "pg_input_is_valid",
    "pg_is_in_recovery",
    "pg_is_other_temp_schema",
    "pg_is_wal_replay_paused",
    "pg_jit_available",
    "pg_last_committed_xact",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_listening_channels",
    "pg_lock_status",
    "pg_mcv_list_items",
    "pg_my_temp_schema",
    "pg_notification_queue_usage",
    "pg_numa_available",
    "pg_opclass_is_visible",
    "pg_operator_is_visible",
    "pg_opfamily_is_visible",
    "pg_options_to_table",
    "pg_partition_ancestors",
    "pg_partition_root",
    "pg_partition_tree",
    "pg_postmaster_start_time",
    "pg_prepared_statement",
    "pg_prepared_xact",
    "pg_relation_filenode",
    "pg_relation_filepath",
    "pg_relation_is_publishable",
    "pg_relation_is_updatable",
    "pg_relation_size",
    "pg_safe_snapshot_blocking_pids",
    "pg_sequence_last_value",
    "pg_sequence_parameters",
    "pg_settings_get_flags",
    "pg_show_all_settings",
    "pg_size_bytes",
    "pg_size_pretty",
    "pg_snapshot_xip",
    "pg_snapshot_xmax",
    "pg_snapshot_xmin",
    "pg_stat_get_activity",
    "pg_stat_get_backend_idset",
    "pg_stat_get_backend_pid",
    "pg_stat_get_dead_tuples",
    "pg_stat_get_last_analyze_time",
    "pg_stat_get_last_autoanalyze_time",
    "pg_stat_get_last_autovacuum_time",
    "pg_stat_get_last_vacuum_time",
    "pg_stat_get_live_tuples",
    "pg_stat_get_numscans",
    "pg_stat_get_tuples_deleted",
    "pg_stat_get_tuples_fetched",
    "pg_stat_get_tuples_inserted",
    "pg_stat_get_tuples_returned",
    "pg_stat_get_tuples_updated",
    "pg_stat_get_xact_numscans",
    "pg_stat_have_stats",
    "pg_statistics_obj_is_visible",
    "pg_table_is_visible",
    "pg_table_size",
    "pg_tablespace_databases",
    "pg_tablespace_location",
    "pg_tablespace_size",
    "pg_timezone_abbrevs",
    "pg_timezone_names",
    "pg_total_relation_size",
    "pg_trigger_depth",
    "pg_ts_config_is_visible",
    "pg_ts_dict_is_visible",
    "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible",
    "pg_type_is_visible",
    "pg_typeof",
    "pg_visible_in_snapshot",
    "pg_wal_lsn_diff",
    "pg_wal_summary_contents",
    "pg_walfile_name",
    "pg_walfile_name_offset",
    "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin",
    "pg_xact_status",
    "phraseto_tsquery",
    "pi",
    "plainto_tsquery",
    "point",
    "polygon",
    "popen",
    "position",
    "pow",
    "power",
    "querytree",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "radians",
    "radius",
    "random",
    "random_normal",
    "range_agg",
    "range_intersect_agg",
    "range_merge",
    "rank",
    "regclass",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    "scale",
    "session_user",
    "set_bit",
    "set_byte",
    "set_masklen",
    "setseed",
    "setweight",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "shobj_description",
    "sign",
    "similar_escape",
    "similar_to_escape",
    "sin",
    "sind",
    "sinh",
    "slope",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "string_to_table",
    "strip",
    "strpos",
    "substr",
    "substring",
    "sum",
    "system_user",
    "tan",
    "tand",
    "tanh",
    "text",
    "textlen",
    "time",
    "timeofday",
    "timestamp",
    "timestamptz",
    "timezone",
    "to_ascii",
    "to_bin",
    "to_char",
    "to_date",
    "to_hex",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_oct",
    "to_regclass",
    "to_regcollation",
    "to_regnamespace",
    "to_regoper",
    "to_regoperator",
    "to_regproc",
    "to_regprocedure",
    "to_regrole",
    "to_regtype",
    "to_regtypemod",
    "to_timestamp",
    "to_tsquery",
    "to_tsvector",
    "transaction_timestamp",
    "translate",
    "trim_array",
    "trim_scale",
    "trunc",
    "ts_debug",
    "ts_delete",
    "ts_filter",
    "ts_headline",
    "ts_lexize",
    "ts_parse",
    "ts_rank",
    "ts_rank_cd",
    "ts_token_type",
    "tsmultirange",
    "tsquery_phrase",
    "tsrange",
    "tstzmultirange",
    "tstzrange",
    "tsvector_to_array",
    "txid_current_if_assigned",
    "txid_current_snapshot",
    "txid_snapshot_xip",
    "txid_snapshot_xmax",
    "txid_snapshot_xmin",
    "txid_status",
    "txid_visible_in_snapshot",
    "unicode_assigned",
    "unicode_version",
    "unistr",
    "unnest",
    "upper",
    "upper_inc",
    "upper_inf",
    "uuid",
    "uuid_extract_timestamp",
    "uuid_extract_version",
    "uuidv4",
    "uuidv7",
    "var_pop",
    "var_samp",
    "varbit",
    "varchar",
    "variance",
    "version",
    "websearch_to_tsquery",
    "width",
    "width_bucket",
    "xml",
    "xml_is_well_formed",
    "xml_is_well_formed_content",
    "xml_is_well_formed_document",
    "xmlagg",
    "xmlcomment",
    "xmlconcat",
    "xmlexists",
    "xmltext",
    "xpath",
    "xpath_exists",
];

/// Symbols of built-in operators, sorted (a unit test checks).
static BUILTIN_OPERATORS: &[&str] = &[
    "!", "!!", "!=", "!~", "!~*", "!~~", "!~~*", "#", "##", "#-", "#<", "#<=", "#<>", "#=", "#>",
    "#>=", "#>>", "%", "&", "&&", "&<", "&<|", "&>", "*", "*<", "*<=", "*<>", "*=", "*>", "*>=",
    "+", "-", "->", "->>", "-|-", "/", "<", "<->", "<<", "<<=", "<<|", "<=", "<>", "<@", "<^", "=",
    ">", ">=", ">>", ">>=", ">^", "?", "?#", "?&", "?-", "?-|", "?|", "?||", "@", "@-@", "@>",
    "@?", "@@", "@@@", "^", "^@", "|", "|&>", "|/", "|>>", "||", "||/", "~", "~*", "~<=~", "~<~",
    "~=", "~>=~", "~>~", "~~", "~~*",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_and_unique() {
        for list in [
            SAFE_FUNCTIONS,
            BUILTIN_OPERATORS,
            BUILTIN_TYPES,
            INFORMATION_SCHEMA_HELPERS,
        ] {
            for w in list.windows(2) {
                assert!(w[0] < w[1], "{:?} must come before {:?}", w[1], w[0]);
            }
        }
    }

    #[test]
    fn no_safe_name_is_dangerous() {
        for name in SAFE_FUNCTIONS {
            assert_eq!(dangerous(name), None, "{name}");
        }
    }

    #[test]
    fn verdicts() {
        use OperationKind::*;
        let cases = [
            (None, "count", Read),
            (None, "jsonb_build_object", Read),
            (None, "pg_total_relation_size", Read),
            (None, "pg_table_is_visible", Read),
            (None, "has_table_privilege", Read),
            (None, "pg_get_viewdef", Read),
            (None, "txid_current", Write),
            (None, "pg_advisory_lock", Write),
            (None, "pg_try_advisory_xact_lock", Write),
            (None, "pg_advisory_unlock_all", Write),
            (None, "lo_create", Write),
            (None, "lo_get", Write),
            (None, "loread", Write),
            (None, "lo_import", Admin),
            (None, "lo_export", Admin),
            (None, "pg_ls_waldir", Admin),
            (None, "pg_file_write", Admin),
            (None, "pg_create_logical_replication_slot", Admin),
            (None, "pg_drop_replication_slot", Admin),
            (None, "pg_logical_emit_message", Admin),
            (None, "pg_replication_origin_create", Admin),
            (None, "pg_stat_reset_shared", Admin),
            (Some("public"), "dblink", Admin),
            (Some("ext"), "dblink_connect_u", Admin),
            (Some("pg_catalog"), "pg_read_binary_file", Admin),
            (Some("mySchema"), "f", Write),
            (Some("other"), "count", Write),
            (None, "COUNT", Write),
            (None, "no_such_function", Write),
        ];
        for (schema, name, kind) in cases {
            assert_eq!(
                classify_function(schema, name).kind,
                kind,
                "{schema:?}.{name}"
            );
        }
    }
}
