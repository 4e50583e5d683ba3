//! Resolving relation names the way PostgreSQL does, so policy sees `schema.table` for every
//! object however the SQL spells it.
//!
//! An unqualified name is looked up along the upstream session's effective search path
//! (`current_schemas(true)`: `pg_catalog` first unless placed elsewhere, then the user's
//! schemas that exist), using a snapshot of which relations live in those schemas. A name found
//! nowhere resolves to the first user schema on the path, where `CREATE` would put it.
//!
//! The snapshot is shared by all sessions of a gateway, refreshed after a TTL and whenever a
//! statement that changes the catalog passes through the gateway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::sql::ObjectName;

/// Which relations exist in which schemas of the search path.
#[derive(Debug, Default)]
pub(crate) struct CatalogSnapshot {
    /// The effective search path, in order.
    path: Vec<String>,
    /// Relation name → schemas (of the path) that hold a relation of that name.
    relations: HashMap<String, Vec<String>>,
    taken_at: Option<Instant>,
}

/// The SQL that loads a snapshot: rows of (schema, relation) along the effective search path,
/// in path order; a schema without relations appears once with a NULL relation.
pub(crate) const SNAPSHOT_SQL: &str = "\
SELECT s.nsp::text, c.relname::text \
FROM unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS s(nsp, ord) \
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp \
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r','v','m','p','f','S') \
ORDER BY s.ord";

/// Most relations kept in a snapshot; beyond it, lookups fall back to the creation schema.
const MAX_RELATIONS: usize = 500_000;

impl CatalogSnapshot {
    /// Builds a snapshot from the rows of [`SNAPSHOT_SQL`]: `(schema, relation)` in path order.
    pub(crate) fn from_rows<I>(rows: I) -> Self
    where
        I: IntoIterator<Item = (String, Option<String>)>,
    {
        let mut snap = CatalogSnapshot {
            taken_at: Some(Instant::now()),
            ..CatalogSnapshot::default()
        };
        let mut count = 0usize;
        for (schema, relation) in rows {
            if snap.path.last() != Some(&schema) && !snap.path.contains(&schema) {
                snap.path.push(schema.clone());
            }
            if let Some(rel) = relation {
                count += 1;
                if count > MAX_RELATIONS {
                    continue;
                }
                let schemas = snap.relations.entry(rel).or_default();
                if !schemas.contains(&schema) {
                    schemas.push(schema);
                }
            }
        }
        snap
    }

    /// A snapshot for tests and for upstreams whose catalog could not be read: `pg_catalog`
    /// then `public`, no relations known.
    pub(crate) fn default_path() -> Self {
        CatalogSnapshot {
            path: vec!["pg_catalog".into(), "public".into()],
            relations: HashMap::new(),
            taken_at: Some(Instant::now()),
        }
    }

    /// `schema.name` for `object`.
    pub(crate) fn resolve(&self, object: &ObjectName) -> String {
        if let Some(schema) = &object.schema {
            return format!("{schema}.{}", object.name);
        }
        if let Some(schemas) = self.relations.get(&object.name) {
            // The first schema *of the path* that holds it.
            if let Some(s) = self.path.iter().find(|p| schemas.contains(p)) {
                return format!("{s}.{}", object.name);
            }
        }
        let creation = self
            .path
            .iter()
            .find(|s| s.as_str() != "pg_catalog" && !s.starts_with("pg_temp"))
            .map_or("public", String::as_str);
        format!("{creation}.{}", object.name)
    }
}

/// The gateway-wide snapshot holder.
#[derive(Debug)]
pub(crate) struct Catalog {
    current: RwLock<Option<Arc<CatalogSnapshot>>>,
    ttl: Duration,
}

impl Catalog {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            current: RwLock::new(None),
            ttl,
        }
    }

    /// The current snapshot, if it is fresh.
    pub(crate) fn fresh(&self) -> Option<Arc<CatalogSnapshot>> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|s| s.taken_at.is_some_and(|t| t.elapsed() < self.ttl))
            .cloned()
    }

    /// Replaces the snapshot.
    pub(crate) fn store(&self, snapshot: Arc<CatalogSnapshot>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }

    /// Forgets the snapshot (after DDL), so the next session start loads a new one.
    pub(crate) fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
