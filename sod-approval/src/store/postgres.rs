//! A store in PostgreSQL, for several gateway replicas sharing approvals.
//!
//! One row per request (created if missing):
//!
//! ```sql
//! CREATE TABLE sod_approvals (
//!     id          text   PRIMARY KEY,
//!     fingerprint text   NOT NULL,
//!     status      text   NOT NULL,
//!     version     bigint NOT NULL,
//!     created_at  bigint NOT NULL,
//!     body        text   NOT NULL   -- the request as JSON
//! );
//! ```
//!
//! A change is one `UPDATE … WHERE id = $1 AND version = $2`: the server applies it to exactly
//! one of several racing replicas, so a single-use approval is consumed exactly once. Every
//! change also sends `NOTIFY sod_approvals` in the same statement; the store listens on a
//! connection of its own, so waiters on every replica wake as soon as a decision lands.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sod_core::Fingerprint;
use tokio::sync::watch;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

use super::{Store, StoreError};
use crate::{ApprovalId, ApprovalRequest};

/// The notification channel.
const CHANNEL: &str = "sod_approvals";

/// Keeps requests in PostgreSQL. See the [module docs](self).
pub struct PostgresStore {
    client: tokio_postgres::Client,
    changes: watch::Receiver<u64>,
    /// The listening client: dropping it would end the `LISTEN`.
    _listen: tokio_postgres::Client,
    _listener: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self._listener.abort();
    }
}

fn unavailable(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    })
}

fn decode(body: &str) -> Result<ApprovalRequest, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Unavailable(format!("a stored approval request is damaged: {e}")))
}

fn encode(r: &ApprovalRequest) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// `operation`, `plan` or `grant`, for the `scope` column.
fn scope_name(r: &ApprovalRequest) -> &'static str {
    match r.scope {
        crate::Scope::Operation => "operation",
        crate::Scope::Plan { .. } => "plan",
        crate::Scope::Grant(_) => "grant",
    }
}

/// The status as serialized (`pending`, `approved`, …), for the indexed column.
fn status_name(r: &ApprovalRequest) -> Result<String, StoreError> {
    Ok(encode_status(r)?.trim_matches('"').to_owned())
}

fn encode_status(r: &ApprovalRequest) -> Result<String, StoreError> {
    serde_json::to_string(&r.status).map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl PostgresStore {
    /// Connects twice to `config` (a libpq-style connection string) with `tls`: one
    /// connection for statements, one that listens for changes. Creates the table if missing.
    pub async fn connect<T>(config: &str, tls: T) -> Result<Self, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let (client, connection) = tokio_postgres::connect(config, tls.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "approval store connection ended");
            }
        });
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS sod_approvals (
                    id text PRIMARY KEY,
                    fingerprint text NOT NULL,
                    status text NOT NULL,
                    version bigint NOT NULL,
                    created_at bigint NOT NULL,
                    requester text NOT NULL,
                    scope text NOT NULL,
                    body text NOT NULL);
                 CREATE INDEX IF NOT EXISTS sod_approvals_fingerprint ON sod_approvals (fingerprint);
                 CREATE INDEX IF NOT EXISTS sod_approvals_status ON sod_approvals (status);
                 CREATE INDEX IF NOT EXISTS sod_approvals_requester ON sod_approvals (lower(requester))",
            )
            .await
            .map_err(|e| unavailable(&e))?;

        let (listen, mut connection) = tokio_postgres::connect(config, tls)
            .await
            .map_err(|e| unavailable(&e))?;
        let (tx, changes) = watch::channel(0u64);
        // Drives the listening connection: query results for `listen`, and notifications.
        let listener = tokio::spawn(async move {
            loop {
                let message = futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "approval store listener failed");
                        break;
                    }
                    None => break,
                }
            }
        });
        listen
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Self {
            client,
            changes,
            _listen: listen,
            _listener: Arc::new(listener),
        })
    }

    async fn select(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let rows = self
            .client
            .query(sql, params)
            .await
            .map_err(|e| unavailable(&e))?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }
}

impl Store for PostgresStore {
    fn insert(&self, request: ApprovalRequest) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let body = encode(&request)?;
            let status = status_name(&request)?;
            let inserted = self
                .client
                .execute(
                    "WITH i AS (
                        INSERT INTO sod_approvals
                            (id, fingerprint, status, version, created_at, body, requester, scope)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                        ON CONFLICT (id) DO NOTHING RETURNING id)
                     SELECT pg_notify('sod_approvals', id) FROM i",
                    &[
                        &request.id.as_str(),
                        &request.operation.fingerprint.to_hex(),
                        &status,
                        &i64::try_from(request.version).unwrap_or(i64::MAX),
                        &i64::try_from(request.created_at).unwrap_or(i64::MAX),
                        &body,
                        &request.requester.id,
                        &scope_name(&request),
                    ],
                )
                .await
                .map_err(|e| unavailable(&e))?;
            if inserted == 0 {
                return Err(StoreError::Exists(request.id));
            }
            Ok(())
        })
    }

    fn get(&self, id: &ApprovalId) -> BoxFuture<'_, Result<Option<ApprovalRequest>, StoreError>> {
        let id = id.clone();
        Box::pin(async move {
            Ok(self
                .select(
                    "SELECT body FROM sod_approvals WHERE id = $1",
                    &[&id.as_str()],
                )
                .await?
                .pop())
        })
    }

    fn swap(&self, new: ApprovalRequest) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let Some(previous) = new.version.checked_sub(1) else {
                return Ok(false);
            };
            let body = encode(&new)?;
            let status = status_name(&new)?;
            // One statement: the compare, the swap and the notification.
            let swapped = self
                .client
                .execute(
                    "WITH u AS (
                        UPDATE sod_approvals SET status = $3, version = $4, body = $5
                        WHERE id = $1 AND version = $2 RETURNING id)
                     SELECT pg_notify('sod_approvals', id) FROM u",
                    &[
                        &new.id.as_str(),
                        &i64::try_from(previous).unwrap_or(i64::MAX),
                        &status,
                        &i64::try_from(new.version).unwrap_or(i64::MAX),
                        &body,
                    ],
                )
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(swapped == 1)
        })
    }

    fn by_fingerprint(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        Box::pin(async move {
            self.select(
                "SELECT body FROM sod_approvals WHERE fingerprint = $1 ORDER BY created_at, id",
                &[&fingerprint.to_hex()],
            )
            .await
        })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        Box::pin(async move {
            self.select(
                "SELECT body FROM sod_approvals WHERE status = 'pending' ORDER BY created_at, id",
                &[],
            )
            .await
        })
    }

    fn plans_and_grants(
        &self,
        requester: &str,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let requester = requester.to_owned();
        Box::pin(async move {
            self.select(
                "SELECT body FROM sod_approvals
                 WHERE lower(requester) = lower($1) AND status = 'approved' AND scope <> 'operation'
                 ORDER BY created_at, id",
                &[&requester],
            )
            .await
        })
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.clone())
    }
}
