//! What a statement is to the stack: its names resolved the way the server resolves them
//! (through the session's catalog snapshot, reloaded after DDL), SQL-level `EXECUTE`
//! substituted by what its `PREPARE` was, a batch's statements as parts, a statement newer than
//! the upstream's grammar refused as not understood — and the bookkeeping the server's answer
//! confirms (`PREPARE`, `DEALLOCATE`, `DISCARD`, DDL; the search path is
//! [`search_path`](super::search_path)'s).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use sod_core::{BoxError, Operation, Refusal, RefusalCode, Request};
use tower::Service;

use super::{Driver, NAME_RESOLUTION_RULE, PendingRemoval, RESERVED_PREFIX};
use crate::service::{PgRequest, PgResponse};
use crate::shared::load_catalog;
use crate::sql::{Analysis, ObjectName, SessionEffect, operation};

impl<S> Driver<S>
where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    /// Brings the session's catalog snapshot up to date before a statement is judged. After
    /// DDL in this session: reloaded through a short-lived side connection once every response
    /// is in and the server has left the transaction that made it (so the DDL is committed);
    /// inside that transaction, names must be qualified. Otherwise: the gateway's current
    /// snapshot, reloaded (once for all sessions) when it expired or was invalidated — masking
    /// must not go on with a view or table name that changed (invariant I6).
    pub(super) async fn refresh_catalog(&mut self, analysis: &Analysis) -> Result<(), Refusal> {
        let unavailable = |why: String| Refusal::new(RefusalCode::Unavailable, why);
        let snapshot = if let Some(ddl_epoch) = self.ddl_epoch {
            if analysis.objects().iter().all(|o| o.schema.is_some()) {
                return Ok(());
            }
            if self.flush_answers().await.is_err() {
                return Err(unavailable("the upstream connection is closed".into()));
            }
            let epoch = self
                .link
                .quiesce()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .ok_or_else(|| {
                    unavailable(
                        "a COPY is under way: end it before statements that name tables without their schema".into(),
                    )
                })?;
            if epoch <= ddl_epoch {
                // The server has not been idle since the DDL: its transaction is still open,
                // and a side connection would not see the change.
                return Err(Refusal::new(
                    RefusalCode::PolicyDenied,
                    "the catalog changed in this transaction: qualify table names with their schema until it ends",
                )
                .with_rule(NAME_RESOLUTION_RULE));
            }
            let snapshot =
                Arc::new(load_catalog(&self.gw).await.map_err(|e| {
                    unavailable(format!("cannot reload the catalog after DDL: {e}"))
                })?);
            self.gw.catalog.store(snapshot.clone());
            self.ddl_epoch = None;
            snapshot
        } else if let Some(fresh) = self.gw.catalog.fresh() {
            fresh
        } else {
            let gw = self.gw.clone();
            gw.catalog
                .load_once(|| load_catalog(&gw))
                .await
                .map_err(|e| unavailable(format!("cannot reload the catalog: {e}")))?
        };
        let snapshot = self.along_session_path(snapshot, analysis).await?;
        self.shared.set_snapshot(snapshot);
        Ok(())
    }

    /// Object names as policy sees them.
    pub(super) fn resolve(&self, analysis: &Analysis) -> Result<Vec<String>, Refusal> {
        self.resolve_objects(&analysis.objects())
    }

    pub(super) fn resolve_objects(&self, objects: &[ObjectName]) -> Result<Vec<String>, Refusal> {
        self.resolve_with(objects, false)
    }

    /// Resolves `objects` along the session's search path; unqualified names are refused when
    /// an earlier statement of the same batch may have changed the path (`path_changed`): the
    /// server has not reported it yet, so the gateway cannot tell where they point.
    pub(super) fn resolve_with(
        &self,
        objects: &[ObjectName],
        path_changed: bool,
    ) -> Result<Vec<String>, Refusal> {
        let snapshot = self.shared.snapshot();
        objects
            .iter()
            .map(|o: &ObjectName| {
                if o.schema.is_none() && path_changed {
                    return Err(Refusal::new(
                        RefusalCode::PolicyDenied,
                        format!(
                            "search_path is changed earlier in this batch, so `{}` cannot be resolved; qualify it with its schema, or send the statements separately",
                            o.name
                        ),
                    )
                    .with_rule(NAME_RESOLUTION_RULE));
                }
                Ok(snapshot.resolve(o))
            })
            .collect()
    }

    /// The operation for an analysis: kind (with SQL-level EXECUTE resolved), normalized text,
    /// resolved objects, bound parameters. A batch of several statements becomes an operation
    /// whose parts are the statements, so policy and capability judge each one.
    pub(super) fn operation_for(
        &self,
        analysis: &Analysis,
        params: &[Option<Bytes>],
    ) -> Result<Operation, Refusal> {
        let target = self.gw.target.clone();
        if let Some(err) = &analysis.error {
            return Ok(Operation::not_understood(
                target,
                analysis.normalized(),
                err.clone(),
            ));
        }
        for stmt in &analysis.statements {
            let name = match &stmt.effect {
                SessionEffect::Prepare { name } | SessionEffect::Execute { name } => Some(name),
                SessionEffect::Deallocate { name } | SessionEffect::Cursor { name } => {
                    name.as_ref()
                }
                _ => None,
            };
            if let Some(name) = name.filter(|n| n.starts_with(RESERVED_PREFIX)) {
                return Err(Refusal::new(
                    RefusalCode::PolicyDenied,
                    format!("`{name}`: statement and cursor names starting with `{RESERVED_PREFIX}` are the gateway's own"),
                )
                .with_rule("sod-reserved-names"));
            }
        }
        // The analyzer reads PostgreSQL 18's grammar: a statement that needs a newer server
        // than the upstream would mean something else there (or nothing).
        let upstream = self.shared.server_major().unwrap_or(u32::MAX);
        if let Some(need) = analysis
            .statements
            .iter()
            .filter_map(|s| s.needs.as_ref())
            .find(|n| n.major > upstream)
        {
            return Ok(Operation::not_understood(
                target,
                analysis.normalized(),
                format!(
                    "it uses {}, which needs PostgreSQL {}; the upstream is PostgreSQL {upstream}, which would read the statement differently",
                    need.what, need.major
                ),
            ));
        }
        let mut parts = Vec::with_capacity(analysis.statements.len());
        // A statement that changes the search path changes what later statements of the same
        // batch refer to.
        let mut path_changed = false;
        for stmt in &analysis.statements {
            let (kind, text, mut objects, note) = match &stmt.effect {
                SessionEffect::Execute { name } => match self.sql_prepared.get(name) {
                    Some(prepared) => (
                        prepared.kind(),
                        format!(
                            "{} /* {name}: {} */",
                            stmt.normalized,
                            prepared.normalized()
                        ),
                        self.resolve(prepared)?,
                        prepared.reasons(),
                    ),
                    None => {
                        return Ok(Operation::not_understood(
                            target,
                            analysis.normalized(),
                            format!("prepared statement \"{name}\" is not known to the gateway"),
                        ));
                    }
                },
                _ => (
                    stmt.kind,
                    stmt.normalized.clone(),
                    Vec::new(),
                    stmt.reasons.clone(),
                ),
            };
            objects.extend(self.resolve_with(&stmt.objects, path_changed)?);
            path_changed |= matches!(
                stmt.effect,
                SessionEffect::SetSearchPath | SessionEffect::Discard
            );
            parts.push(operation::statement(
                &target,
                kind,
                text,
                objects,
                note,
                &stmt.secrets,
            ));
        }
        Ok(operation::combine(
            target,
            analysis.normalized(),
            parts,
            params,
        ))
    }

    /// Where the outcome of an operation that may remove SQL prepared statements will be
    /// reported, if it may.
    pub(super) fn removal_outcome(analysis: &Analysis) -> Option<Arc<OnceLock<bool>>> {
        analysis
            .statements
            .iter()
            .any(|s| {
                matches!(
                    s.effect,
                    SessionEffect::Deallocate { .. } | SessionEffect::Discard
                )
            })
            .then(|| Arc::new(OnceLock::new()))
    }

    /// Applies the removals the server has confirmed; drops those it refused.
    pub(super) fn settle_removals(&mut self) {
        let mut confirmed = Vec::new();
        self.pending_removals.retain(|r| match r.succeeded.get() {
            Some(&succeeded) => {
                if succeeded {
                    confirmed.push(r.name.clone());
                }
                false
            }
            None => Arc::strong_count(&r.succeeded) > 1,
        });
        for name in confirmed {
            match name {
                Some(name) => {
                    self.sql_prepared.remove(&name);
                }
                None => self.sql_prepared.clear(),
            }
        }
    }

    /// Bookkeeping for statements that passed: prepared statements, search path, catalog.
    /// `removal` reports whether the server carried out the operation (see
    /// [`Self::removal_outcome`]).
    pub(super) fn after_forward(
        &mut self,
        analysis: &Analysis,
        removal: Option<Arc<OnceLock<bool>>>,
    ) {
        self.path.forwarded(analysis);
        for stmt in &analysis.statements {
            match &stmt.effect {
                SessionEffect::Prepare { name } => {
                    let single = Analysis {
                        statements: vec![stmt.clone()],
                        error: None,
                    };
                    self.sql_prepared
                        .entry(name.clone())
                        .or_insert_with(|| Arc::new(single));
                }
                SessionEffect::Deallocate { name } => {
                    if let Some(succeeded) = &removal {
                        self.pending_removals.push(PendingRemoval {
                            name: name.clone(),
                            succeeded: succeeded.clone(),
                        });
                    }
                }
                SessionEffect::Discard => {
                    if let Some(succeeded) = &removal {
                        self.pending_removals.push(PendingRemoval {
                            name: None,
                            succeeded: succeeded.clone(),
                        });
                    }
                }
                SessionEffect::Ddl => {
                    self.gw.catalog.invalidate();
                    self.ddl_epoch = Some(self.link.idle_epoch());
                }
                _ => {}
            }
        }
    }
}
