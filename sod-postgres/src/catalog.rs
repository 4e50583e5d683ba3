//! Resolving relation names the way PostgreSQL does, so policy sees `schema.table` for every
//! object however the SQL spells it.
//!
//! An unqualified name is looked up along the upstream session's effective search path
//! (`current_schemas(true)`: `pg_catalog` first unless placed elsewhere, then the user's
//! schemas that exist), using a snapshot of which relations live in those schemas. A name found
//! nowhere resolves to the first user schema on the path, where `CREATE` would put it.
//!
//! The snapshot is shared by all sessions of a gateway, refreshed after a TTL and whenever a
//! statement that changes the catalog passes through the gateway. It knows the relations of
//! every schema, so a session whose client changed its search path resolves names along that
//! path ([`CatalogSnapshot::with_path`], the path as the server reports it for the session).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sod_core::masking::{ColumnRef, Provenance};

use crate::codec::Limits;
use crate::codec::oid::FIRST_NORMAL_OBJECT_ID;
use crate::sql::ObjectName;
use crate::sql::lineage::Ref;
use crate::upstream::{Upstream, UpstreamError};

/// What the gateway knows of the upstream's catalog: which relations exist in which schemas
/// of the search path (to resolve names), and where result columns come from (to mask).
#[derive(Debug, Default)]
pub(crate) struct CatalogSnapshot {
    /// The effective search path, in order.
    path: Vec<String>,
    /// Relation name → schemas that hold a relation of that name (those on the gateway's own
    /// path first).
    relations: Arc<HashMap<String, Vec<String>>>,
    /// Result columns' provenance.
    pub(crate) columns: Arc<ColumnCatalog>,
}

/// Loads a snapshot over `up`: [`SNAPSHOT_SQL`], then the three queries of the column catalog.
pub(crate) async fn load(
    up: &mut Upstream,
    limits: &Limits,
) -> Result<CatalogSnapshot, UpstreamError> {
    let path = up.simple_query(SNAPSHOT_SQL, limits).await?;
    let mut snapshot = CatalogSnapshot::from_rows(path.into_iter().filter_map(|r| {
        let mut it = r.into_iter();
        Some((it.next()??, it.next().flatten()))
    }));
    let others = up.simple_query(RELATIONS_SQL, limits).await?;
    snapshot.add_relations(others.into_iter().filter_map(|r| {
        let mut it = r.into_iter();
        Some((it.next()??, it.next()??))
    }));
    // Without the column catalog names still resolve; masked results mask every column.
    let columns = async {
        let columns = up.simple_query(COLUMNS_SQL, limits).await?;
        let sources = up.simple_query(VIEW_SOURCES_SQL, limits).await?;
        let parents = up.simple_query(PARENTS_SQL, limits).await?;
        Ok::<_, UpstreamError>(ColumnCatalog::from_rows(columns, sources, parents))
    };
    match columns.await {
        Ok(columns) => snapshot.columns = Arc::new(columns),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the column catalog; masked results mask every column")
        }
    }
    Ok(snapshot)
}

/// The SQL that loads a snapshot: rows of (schema, relation) along the effective search path,
/// in path order; a schema without relations appears once with a NULL relation.
const SNAPSHOT_SQL: &str = "\
SELECT s.nsp::text, c.relname::text \
FROM unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS s(nsp, ord) \
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp \
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r','v','m','p','f','S') \
ORDER BY s.ord";

/// The SQL that lists the relations of the schemas that are not on the gateway's own path
/// (those on it come with [`SNAPSHOT_SQL`]): rows of (schema, relation).
const RELATIONS_SQL: &str = "\
SELECT n.nspname::text, c.relname::text \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r','v','m','p','f','S') \
AND NOT n.nspname = ANY (pg_catalog.current_schemas(true))";

/// Most relations kept in a snapshot; beyond it, lookups fall back to the creation schema.
const MAX_RELATIONS: usize = 500_000;

impl CatalogSnapshot {
    /// Builds a snapshot from the rows of [`SNAPSHOT_SQL`]: `(schema, relation)` in path order.
    pub(crate) fn from_rows<I>(rows: I) -> Self
    where
        I: IntoIterator<Item = (String, Option<String>)>,
    {
        let mut snap = CatalogSnapshot::default();
        let mut relations = HashMap::new();
        let mut count = 0usize;
        for (schema, relation) in rows {
            if snap.path.last() != Some(&schema) && !snap.path.contains(&schema) {
                snap.path.push(schema.clone());
            }
            if let Some(rel) = relation {
                insert_relation(&mut relations, &mut count, schema, rel);
            }
        }
        snap.relations = Arc::new(relations);
        snap
    }

    /// Adds relations of schemas off the gateway's own path: `(schema, relation)` rows of
    /// [`RELATIONS_SQL`].
    fn add_relations(&mut self, rows: impl IntoIterator<Item = (String, String)>) {
        let mut relations = HashMap::clone(&self.relations);
        let mut count = relations.values().map(Vec::len).sum();
        for (schema, rel) in rows {
            insert_relation(&mut relations, &mut count, schema, rel);
        }
        self.relations = Arc::new(relations);
    }

    /// The gateway's own search path (`current_schemas(true)` of its connections).
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }

    /// This snapshot with the effective search path `path` (a session's, as the server
    /// reports it): the same relations and columns, names resolved along `path`.
    pub(crate) fn with_path(&self, path: Vec<String>) -> Self {
        CatalogSnapshot {
            path,
            relations: self.relations.clone(),
            columns: self.columns.clone(),
        }
    }

    /// A snapshot for tests and for upstreams whose catalog could not be read: `pg_catalog`
    /// then `public`, no relations and no columns known (every masked column is masked).
    pub(crate) fn default_path() -> Self {
        CatalogSnapshot {
            path: vec!["pg_catalog".into(), "public".into()],
            ..CatalogSnapshot::default()
        }
    }

    /// `schema.name` for `object`.
    pub(crate) fn resolve(&self, object: &ObjectName) -> String {
        let (schema, name) = self.qualify(object);
        format!("{schema}.{name}")
    }

    /// `(schema, name)` for `object`: its own schema, else the first schema of the path that
    /// holds it, else where `CREATE` would put it.
    pub(crate) fn qualify<'a>(&'a self, object: &'a ObjectName) -> (&'a str, &'a str) {
        if let Some(schema) = &object.schema {
            return (schema, &object.name);
        }
        if let Some(schemas) = self.relations.get(&object.name) {
            // The first schema *of the path* that holds it.
            if let Some(s) = self.path.iter().find(|p| schemas.contains(p)) {
                return (s, &object.name);
            }
        }
        let creation = self
            .path
            .iter()
            .find(|s| s.as_str() != "pg_catalog" && !s.starts_with("pg_temp"))
            .map_or("public", String::as_str);
        (creation, &object.name)
    }

    /// Every column `refs` may read, resolved through the search path and the column catalog
    /// (views to what they read, partitions to their family); `Err` says why it cannot be told
    /// (a relation or column the catalog does not know, a system relation that is not plain
    /// metadata).
    pub(crate) fn columns_reached(&self, refs: &[Ref]) -> Result<Vec<ColumnRef>, String> {
        let mut out = Vec::new();
        for r in refs {
            match r {
                Ref::Column {
                    relation,
                    column,
                    certain,
                } => {
                    let (schema, name, oid) = self.oid(relation)?;
                    match self.columns.attnum_of(oid, column) {
                        Some(att) => {
                            push_provenance(self.columns.provenance(oid, att), &mut out, || {
                                format!("{schema}.{name}.{column}")
                            })?
                        }
                        // `t.f` with no column `f` is the function call `f(t)`.
                        None if *certain => {
                            return Err(format!(
                                "{schema}.{name} has no column {column} (a function call in attribute notation?)"
                            ));
                        }
                        None => {}
                    }
                }
                Ref::Whole(relation) => {
                    let (schema, name, oid) = self.oid(relation)?;
                    for att in self.columns.attnums(oid) {
                        push_provenance(self.columns.provenance(oid, att), &mut out, || {
                            format!("{schema}.{name}")
                        })?;
                    }
                }
            }
        }
        // One order whatever the maps' iteration order, so a refusal names the same column
        // every time.
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// `relation` qualified, and its OID; `Err` when the catalog does not know it.
    fn oid<'a>(&'a self, relation: &'a ObjectName) -> Result<(&'a str, &'a str, u32), String> {
        let (schema, name) = self.qualify(relation);
        let oid = self
            .columns
            .oid_of(schema, name)
            .ok_or_else(|| format!("relation {schema}.{name} is not in the catalog"))?;
        Ok((schema, name, oid))
    }

    /// What `*` over `relation` shows, in order: each column but those in `except`, as a
    /// reference; `None` when the catalog does not know the relation.
    pub(crate) fn star(&self, relation: &ObjectName, except: &[String]) -> Option<Vec<Ref>> {
        let (_, _, oid) = self.oid(relation).ok()?;
        Some(
            self.columns
                .ordered(oid)
                .into_iter()
                .filter(|c| !except.iter().any(|e| e == c))
                .map(|column| Ref::Column {
                    relation: relation.clone(),
                    column,
                    certain: true,
                })
                .collect(),
        )
    }

    /// Whether any column of `relation` (a table a statement writes) is one `sensitive` says
    /// is masked: `Ok(Some(column))` names it; `Err` when the catalog does not know it.
    pub(crate) fn masked_column_of(
        &self,
        relation: &ObjectName,
        sensitive: impl Fn(&ColumnRef) -> bool,
    ) -> Result<Option<ColumnRef>, String> {
        let cols = self.columns_reached(&[Ref::Whole(relation.clone())])?;
        Ok(cols.into_iter().find(|c| sensitive(c)))
    }
}

/// Records that `schema` holds a relation named `rel`, up to [`MAX_RELATIONS`].
fn insert_relation(
    relations: &mut HashMap<String, Vec<String>>,
    count: &mut usize,
    schema: String,
    rel: String,
) {
    *count += 1;
    if *count > MAX_RELATIONS {
        return;
    }
    let schemas = relations.entry(rel).or_default();
    if !schemas.contains(&schema) {
        schemas.push(schema);
    }
}

fn push_provenance(
    p: Provenance,
    out: &mut Vec<ColumnRef>,
    what: impl FnOnce() -> String,
) -> Result<(), String> {
    match p {
        Provenance::Column(c) => out.push(c),
        Provenance::Aliases(cs) | Provenance::Derived(cs) => out.extend(cs),
        Provenance::Constant => {}
        Provenance::Unknown => {
            return Err(format!(
                "{} is not a column masking can trace (a system relation, or a view over functions)",
                what()
            ));
        }
    }
    Ok(())
}

/// A snapshot younger than this is not reloaded because a result named an unknown table.
const MIN_AGE_TO_INVALIDATE: Duration = Duration::from_secs(1);

/// The gateway-wide snapshot holder.
#[derive(Debug)]
pub(crate) struct Catalog {
    current: RwLock<Option<(Arc<CatalogSnapshot>, Instant)>>,
    ttl: Duration,
    /// Held while a session reloads an expired snapshot, so the others wait for that load
    /// instead of starting their own.
    loading: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            current: RwLock::new(None),
            ttl,
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The current snapshot; if there is none fresh, `load`s and stores one — one load at a
    /// time for the whole gateway: sessions that wait meanwhile get the loaded snapshot.
    pub(crate) async fn load_once<F, Fut, E>(&self, load: F) -> Result<Arc<CatalogSnapshot>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<CatalogSnapshot, E>>,
    {
        let _loading = self.loading.lock().await;
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let snapshot = Arc::new(load().await?);
        self.store(snapshot.clone());
        Ok(snapshot)
    }

    /// The current snapshot, if it is fresh.
    pub(crate) fn fresh(&self) -> Option<Arc<CatalogSnapshot>> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(_, taken)| taken.elapsed() < self.ttl)
            .map(|(s, _)| s.clone())
    }

    /// Replaces the snapshot.
    pub(crate) fn store(&self, snapshot: Arc<CatalogSnapshot>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((snapshot, Instant::now()));
    }

    /// Forgets the snapshot (after DDL), so the next statement of any session reloads it.
    pub(crate) fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Forgets the snapshot if it is older than [`MIN_AGE_TO_INVALIDATE`]: a result naming a
    /// table the snapshot does not know (created elsewhere, or temporary) asks for a reload,
    /// but a temporary table must not make every statement reload the catalog.
    pub(crate) fn invalidate_unless_young(&self) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|(_, taken)| taken.elapsed() >= MIN_AGE_TO_INVALIDATE)
        {
            *current = None;
        }
    }
}

/// The SQL that lists every column of every relation but indexes and TOAST tables: rows of
/// (relation OID, schema, relation, relkind, attnum, column).
const COLUMNS_SQL: &str = "\
SELECT c.oid::text, n.nspname::text, c.relname::text, c.relkind::text, a.attnum::text, a.attname::text \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
WHERE c.relkind NOT IN ('i','I','t')";

/// The SQL that lists what each view and materialized view depends on: rows of (view OID,
/// referenced object OID, referenced attnum or 0 for the whole relation, whether the object is
/// a relation). PostgreSQL does not record dependencies on its own (pinned) objects.
const VIEW_SOURCES_SQL: &str = "\
SELECT DISTINCT r.ev_class::text, d.refobjid::text, d.refobjsubid::text, \
(d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)::text \
FROM pg_catalog.pg_rewrite r \
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
WHERE NOT (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = r.ev_class)";

/// The SQL that lists inheritance and partitioning: rows of (child OID, parent OID).
const PARENTS_SQL: &str = "SELECT inhrelid::text, inhparent::text FROM pg_catalog.pg_inherits";

/// Most columns kept; beyond it, result columns of the relations left out are of unknown
/// provenance (masked).
const MAX_COLUMNS: usize = 2_000_000;

/// PostgreSQL's own relations in `pg_catalog` that hold only metadata — names, types, keys,
/// definitions, comments, sizes and counters — never table data or other sessions' text.
/// Their columns are plain columns (a rule may still select them), so schema discovery
/// (psql's `\d`, ORM reflection) works in masked sessions; every other system relation is
/// unknown (masked, and refused wherever a masked column would be). Left out on purpose:
/// `pg_statistic`, `pg_stats`, `pg_stats_ext*` and `pg_statistic_ext_data` (they hold
/// sampled values of every column), `pg_stat_activity`, `pg_stat_statements` (other sessions'
/// statements with their constants), `pg_prepared_statements`, `pg_cursors`,
/// `pg_largeobject*`, `pg_authid`, `pg_shadow`, `pg_user_mapping(s)`, `pg_subscription`
/// (credentials), `pg_file_settings`, `pg_hba_file_rules`, `pg_ident_file_mappings`.
/// Sorted (a unit test checks).
const METADATA_CATALOGS: &[&str] = &[
    "pg_aggregate",
    "pg_am",
    "pg_amop",
    "pg_amproc",
    "pg_attrdef",
    "pg_attribute",
    "pg_auth_members",
    "pg_available_extension_versions",
    "pg_available_extensions",
    "pg_cast",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_conversion",
    "pg_database",
    "pg_default_acl",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_event_trigger",
    "pg_extension",
    "pg_foreign_data_wrapper",
    "pg_foreign_table",
    "pg_index",
    "pg_indexes",
    "pg_inherits",
    "pg_init_privs",
    "pg_language",
    "pg_matviews",
    "pg_namespace",
    "pg_opclass",
    "pg_operator",
    "pg_opfamily",
    "pg_partitioned_table",
    "pg_policies",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_publication_tables",
    "pg_range",
    "pg_rewrite",
    "pg_roles",
    "pg_rules",
    "pg_sequence",
    "pg_sequences",
    "pg_settings",
    "pg_shdepend",
    "pg_shdescription",
    "pg_stat_all_indexes",
    "pg_stat_all_tables",
    "pg_stat_user_indexes",
    "pg_stat_user_tables",
    "pg_statio_all_tables",
    "pg_statio_user_tables",
    "pg_statistic_ext",
    "pg_tables",
    "pg_tablespace",
    "pg_timezone_abbrevs",
    "pg_timezone_names",
    "pg_transform",
    "pg_trigger",
    "pg_ts_config",
    "pg_ts_dict",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_type",
    "pg_user",
    "pg_views",
];

/// The SQL standard's schema of metadata views (`information_schema.tables`, `.columns`, …),
/// all plain metadata.
const METADATA_SCHEMA: &str = "information_schema";

/// How deep views over views are followed before giving up (unknown: masked).
const MAX_VIEW_DEPTH: usize = 32;

#[derive(Debug, Default)]
struct Relation {
    schema: String,
    name: String,
    /// `pg_class.relkind`: `v` and `m` are views.
    kind: String,
    columns: HashMap<i16, String>,
    parents: Vec<u32>,
    children: Vec<u32>,
    /// A view that depends on something other than relations (a user-defined function, type
    /// or operator): what it exposes cannot be told from what it reads.
    opaque: bool,
    /// For a view: what its definition reads, `(relation, attnum)`, attnum 0 for the whole
    /// relation (PostgreSQL records every relation a view reads that way, and a whole-row
    /// reference such as `row_to_json(c)` only that way).
    reads: Vec<(u32, i16)>,
}

/// Where result columns come from: `(table OID, attribute number)` from a `RowDescription`,
/// resolved to a schema-qualified column ([`Provenance`]).
///
/// - A table column is itself, and also the same-named column of every ancestor and
///   descendant (partitions, `INHERITS`): a rule on `customers.email` masks
///   `customers_2024.email`, and a rule on `customers_eu.email` masks `customers.email`, whose
///   rows include the partition's.
/// - A view column (also materialized) counts as derived from **everything the view reads**,
///   views over views followed: PostgreSQL records a view's dependencies per relation and per
///   referenced column but not which output column each feeds, and a whole-row reference shows
///   only as the whole relation. So every column of a view that reads a sensitive column is
///   masked (coarse, fail closed).
/// - A view that depends on anything but relations (a user-defined function, type or
///   operator) or on nothing recorded, and every relation of PostgreSQL's own (`pg_stats`
///   shows other tables' values, `pg_statistic` holds them) are unknown: masked.
/// - Anything not found (a relation created after the snapshot, a system column) is unknown:
///   masked.
#[derive(Debug, Default)]
pub(crate) struct ColumnCatalog {
    relations: HashMap<u32, Relation>,
    /// Schema → relation → OID (nested, so a lookup by `&str` allocates nothing).
    by_name: HashMap<String, HashMap<String, u32>>,
}

fn parse_oid(s: &Option<String>) -> Option<u32> {
    s.as_deref()?.parse().ok()
}

fn parse_att(s: &Option<String>) -> Option<i16> {
    s.as_deref()?.parse().ok()
}

impl ColumnCatalog {
    /// Builds the catalog from the rows of [`COLUMNS_SQL`], [`VIEW_SOURCES_SQL`] and
    /// [`PARENTS_SQL`]. Malformed rows are skipped (their columns stay unknown: masked).
    pub(crate) fn from_rows(
        columns: Vec<Vec<Option<String>>>,
        sources: Vec<Vec<Option<String>>>,
        parents: Vec<Vec<Option<String>>>,
    ) -> Self {
        let mut relations: HashMap<u32, Relation> = HashMap::new();
        for row in columns.iter().take(MAX_COLUMNS) {
            let [oid, schema, name, kind, att, column] = row.as_slice() else {
                continue;
            };
            let (Some(oid), Some(att), Some(schema), Some(name), Some(kind), Some(column)) =
                (parse_oid(oid), parse_att(att), schema, name, kind, column)
            else {
                continue;
            };
            let rel = relations.entry(oid).or_insert_with(|| Relation {
                schema: schema.clone(),
                name: name.clone(),
                kind: kind.clone(),
                ..Relation::default()
            });
            rel.columns.insert(att, column.clone());
        }
        for row in &sources {
            if let [view, source, att, relation] = row.as_slice()
                && let (Some(view), Some(source), Some(att)) =
                    (parse_oid(view), parse_oid(source), parse_att(att))
                && let Some(rel) = relations.get_mut(&view)
            {
                if relation.as_deref() == Some("true") {
                    rel.reads.push((source, att));
                } else {
                    rel.opaque = true;
                }
            }
        }
        for row in &parents {
            if let [child, parent] = row.as_slice()
                && let (Some(child), Some(parent)) = (parse_oid(child), parse_oid(parent))
            {
                if let Some(rel) = relations.get_mut(&child) {
                    rel.parents.push(parent);
                }
                if let Some(rel) = relations.get_mut(&parent) {
                    rel.children.push(child);
                }
            }
        }
        let mut by_name: HashMap<String, HashMap<String, u32>> = HashMap::new();
        for (oid, r) in &relations {
            by_name
                .entry(r.schema.clone())
                .or_default()
                .insert(r.name.clone(), *oid);
        }
        Self { relations, by_name }
    }

    /// The OID of relation `schema.name`.
    pub(crate) fn oid_of(&self, schema: &str, name: &str) -> Option<u32> {
        self.by_name.get(schema)?.get(name).copied()
    }

    /// The attribute number of `column` in relation `oid`.
    pub(crate) fn attnum_of(&self, oid: u32, column: &str) -> Option<i16> {
        let rel = self.relations.get(&oid)?;
        rel.columns
            .iter()
            .find(|(_, c)| c.as_str() == column)
            .map(|(att, _)| *att)
    }

    /// The column names of relation `oid` in attribute-number order (the order of `*`).
    pub(crate) fn ordered(&self, oid: u32) -> Vec<String> {
        let Some(rel) = self.relations.get(&oid) else {
            return Vec::new();
        };
        let mut cols: Vec<(&i16, &String)> = rel.columns.iter().collect();
        cols.sort_unstable_by_key(|(att, _)| **att);
        cols.into_iter().map(|(_, c)| c.clone()).collect()
    }

    /// Every attribute number of relation `oid`, in order.
    pub(crate) fn attnums(&self, oid: u32) -> Vec<i16> {
        let mut atts: Vec<i16> = self
            .relations
            .get(&oid)
            .map(|r| r.columns.keys().copied().collect())
            .unwrap_or_default();
        atts.sort_unstable();
        atts
    }

    /// The provenance of a result column `(table OID, attnum)` as a `RowDescription` gives it;
    /// table OID 0 (a computed column) is [`Provenance::Unknown`] here.
    pub(crate) fn provenance(&self, table: u32, attnum: i16) -> Provenance {
        let Some(rel) = self.relations.get(&table) else {
            return Provenance::Unknown;
        };
        let Some(column) = rel.columns.get(&attnum) else {
            return Provenance::Unknown;
        };
        let own = ColumnRef::new(&rel.schema, &rel.name, column);
        // PostgreSQL's own catalogs and views (`pg_statistic`, `pg_stats`, `pg_stat_activity`,
        // information_schema) hold or show values of every table and record no dependencies:
        // unknown — except the catalogs of plain metadata (names, types, definitions) that
        // tools such as psql's `\d` read.
        if table < FIRST_NORMAL_OBJECT_ID {
            let metadata = rel.schema == METADATA_SCHEMA
                || (rel.schema == "pg_catalog"
                    && METADATA_CATALOGS.binary_search(&rel.name.as_str()).is_ok());
            return if metadata {
                Provenance::Column(own)
            } else {
                Provenance::Unknown
            };
        }
        let mut derived = Vec::new();
        if matches!(rel.kind.as_str(), "v" | "m") {
            derived.push(own);
            let mut seen = HashSet::new();
            if !self.view_sources(table, 0, &mut seen, &mut derived) {
                return Provenance::Unknown;
            }
        } else {
            self.relatives(rel, column, &mut derived);
            if derived.is_empty() {
                return Provenance::Column(own);
            }
            derived.insert(0, own);
            return Provenance::Aliases(derived);
        }
        Provenance::Derived(derived)
    }

    /// Every column a view reads, through views over views; `false` if something it reads is
    /// not known (the column must be masked).
    fn view_sources(
        &self,
        view: u32,
        depth: usize,
        seen: &mut HashSet<u32>,
        out: &mut Vec<ColumnRef>,
    ) -> bool {
        if depth > MAX_VIEW_DEPTH {
            return false;
        }
        if !seen.insert(view) {
            return true;
        }
        let Some(rel) = self.relations.get(&view) else {
            return false;
        };
        // Reading nothing recorded (only PostgreSQL's own objects) or something besides
        // relations: what the view shows cannot be bounded.
        if rel.opaque || rel.reads.is_empty() {
            return false;
        }
        for &(source, _) in &rel.reads {
            if source < FIRST_NORMAL_OBJECT_ID {
                return false;
            }
            let Some(src) = self.relations.get(&source) else {
                // Not in the snapshot (newer, or beyond its size limit).
                return false;
            };
            if matches!(src.kind.as_str(), "v" | "m") {
                if seen.contains(&source) {
                    continue;
                }
                // The inner view's own columns count too (a rule may name them).
                out.extend(
                    src.columns
                        .values()
                        .map(|c| ColumnRef::new(&src.schema, &src.name, c)),
                );
                if !self.view_sources(source, depth + 1, seen, out) {
                    return false;
                }
                continue;
            }
            // Whole relations: attnum 0 is recorded for every relation read, and it is all a
            // whole-row reference leaves.
            if !seen.insert(source) {
                continue;
            }
            for column in src.columns.values() {
                out.push(ColumnRef::new(&src.schema, &src.name, column));
                self.relatives(src, column, out);
            }
        }
        true
    }

    /// The same-named column of every ancestor and every descendant of `rel`: reading a
    /// parent reads its partitions' rows (a rule on a partition's column must hold there),
    /// and a partition's rows are its parent's.
    fn relatives(&self, rel: &Relation, column: &str, out: &mut Vec<ColumnRef>) {
        let mut seen = HashSet::new();
        self.walk_family(rel, column, |r| &r.parents, &mut seen, out);
        let mut seen = HashSet::new();
        self.walk_family(rel, column, |r| &r.children, &mut seen, out);
    }

    fn walk_family(
        &self,
        rel: &Relation,
        column: &str,
        next: fn(&Relation) -> &Vec<u32>,
        seen: &mut HashSet<u32>,
        out: &mut Vec<ColumnRef>,
    ) {
        for &oid in next(rel) {
            if !seen.insert(oid) {
                continue;
            }
            if let Some(r) = self.relations.get(&oid) {
                out.push(ColumnRef::new(&r.schema, &r.name, column));
                self.walk_family(r, column, next, seen, out);
            }
        }
    }

    /// Whether `table` is known (a result column of an unknown table suggests the snapshot is
    /// older than the table).
    pub(crate) fn knows(&self, table: u32) -> bool {
        self.relations.contains_key(&table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_catalogs_are_sorted() {
        assert!(METADATA_CATALOGS.windows(2).all(|w| w[0] < w[1]));
        for data in [
            "pg_stats",
            "pg_statistic",
            "pg_stat_activity",
            "pg_authid",
            "pg_largeobject",
        ] {
            assert!(METADATA_CATALOGS.binary_search(&data).is_err(), "{data}");
        }
    }

    fn name(schema: Option<&str>, name: &str) -> ObjectName {
        ObjectName {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    #[test]
    fn resolves_like_postgres() {
        let rows = vec![
            ("pg_catalog".to_owned(), Some("pg_authid".to_owned())),
            ("pg_catalog".to_owned(), Some("pg_class".to_owned())),
            ("app".to_owned(), Some("orders".to_owned())),
            ("app".to_owned(), Some("pg_class".to_owned())),
            ("public".to_owned(), Some("orders".to_owned())),
            ("public".to_owned(), Some("customers".to_owned())),
            ("public".to_owned(), None),
        ];
        let s = CatalogSnapshot::from_rows(rows);
        assert_eq!(s.path, ["pg_catalog", "app", "public"]);
        assert_eq!(s.resolve(&name(None, "pg_authid")), "pg_catalog.pg_authid");
        // pg_catalog comes first, even for a name a user schema also has.
        assert_eq!(s.resolve(&name(None, "pg_class")), "pg_catalog.pg_class");
        // The first schema of the path wins.
        assert_eq!(s.resolve(&name(None, "orders")), "app.orders");
        assert_eq!(s.resolve(&name(None, "customers")), "public.customers");
        // Unknown names go where CREATE would put them.
        assert_eq!(s.resolve(&name(None, "new_table")), "app.new_table");
        assert_eq!(s.resolve(&name(Some("x"), "y")), "x.y");
        let d = CatalogSnapshot::default_path();
        assert_eq!(d.resolve(&name(None, "t")), "public.t");
    }

    fn row(cells: &[&str]) -> Vec<Option<String>> {
        cells.iter().map(|c| Some((*c).to_owned())).collect()
    }

    fn columns() -> ColumnCatalog {
        ColumnCatalog::from_rows(
            vec![
                row(&["20010", "public", "customers", "r", "1", "id"]),
                row(&["20010", "public", "customers", "r", "2", "email"]),
                row(&["20011", "public", "people", "p", "1", "email"]),
                row(&["20012", "public", "people_low", "r", "1", "email"]),
                row(&["20013", "app", "contacts", "v", "1", "address"]),
                row(&["20014", "app", "again", "v", "1", "address"]),
                row(&["20015", "app", "loop_a", "v", "1", "x"]),
                row(&["20016", "app", "loop_b", "v", "1", "x"]),
                row(&["20017", "app", "dangling", "v", "1", "x"]),
                row(&["20018", "app", "calls_function", "v", "1", "x"]),
                row(&["20019", "app", "reads_nothing", "v", "1", "x"]),
                row(&[
                    "12000",
                    "pg_catalog",
                    "pg_stats",
                    "v",
                    "1",
                    "most_common_vals",
                ]),
                vec![Some("bad".into()), None],
            ],
            vec![
                row(&["20013", "20010", "0", "true"]),
                row(&["20013", "20010", "2", "true"]),
                row(&["20014", "20013", "0", "true"]),
                row(&["20015", "20016", "0", "true"]),
                row(&["20016", "20015", "0", "true"]),
                row(&["20017", "20099", "0", "true"]),
                row(&["20018", "20010", "0", "true"]),
                row(&["20018", "30000", "0", "false"]),
            ],
            vec![row(&["20012", "20011"])],
        )
    }

    fn refs(p: &Provenance) -> Vec<String> {
        match p {
            Provenance::Column(c) => vec![format!("{}.{}.{}", c.schema, c.table, c.column)],
            Provenance::Aliases(cs) | Provenance::Derived(cs) => {
                let mut v: Vec<String> = cs
                    .iter()
                    .map(|c| format!("{}.{}.{}", c.schema, c.table, c.column))
                    .collect();
                v.sort();
                v
            }
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn provenance_of_tables_partitions_and_views() {
        let c = columns();
        assert_eq!(
            c.provenance(20010, 2),
            Provenance::Column(ColumnRef::new("public", "customers", "email"))
        );
        // A partition counts as its parent, and the parent as its partitions.
        for oid in [20011, 20012] {
            assert_eq!(
                refs(&c.provenance(oid, 1)),
                ["public.people.email", "public.people_low.email"]
            );
        }
        assert_eq!(
            refs(&c.provenance(20013, 1)),
            [
                "app.contacts.address",
                "public.customers.email",
                "public.customers.id"
            ]
        );
        assert_eq!(
            refs(&c.provenance(20014, 1)),
            [
                "app.again.address",
                "app.contacts.address",
                "public.customers.email",
                "public.customers.id"
            ]
        );
        // Cycles end.
        assert_eq!(
            refs(&c.provenance(20015, 1)),
            ["app.loop_a.x", "app.loop_b.x"]
        );
        // Unknown: a view reading something unknown, calling a user function, reading nothing
        // recorded; PostgreSQL's own views; unknown tables and columns; system columns.
        for (oid, att) in [
            (20017, 1),
            (20018, 1),
            (20019, 1),
            (12000, 1),
            (20099, 1),
            (20010, 7),
            (20010, -1),
        ] {
            assert_eq!(c.provenance(oid, att), Provenance::Unknown, "{oid}/{att}");
        }
        assert!(c.knows(20010) && !c.knows(20099));
    }
}
