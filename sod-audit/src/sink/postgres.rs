//! A sink writing to a PostgreSQL table, for deployments with several gateways: each gateway
//! keeps its own chain (its *stream*) in one shared table.
//!
//! The table (created if missing):
//!
//! ```sql
//! CREATE TABLE sod_audit_log (
//!     stream      text        NOT NULL,
//!     seq         bigint      NOT NULL,
//!     line        text        NOT NULL,   -- the record, byte for byte as in a file segment
//!     recorded_at timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (stream, seq)
//! );
//! ```
//!
//! Sequence numbers are assigned in the gateway, under the same lock that chains the record,
//! and one writer task inserts them in order: every group of appends waiting at that moment
//! goes in with one `INSERT … SELECT FROM unnest(…)` (group commit; the server's commit is the
//! durability point, so [`Written`](Durability::Written) and [`Fsync`](Durability::Fsync) both
//! wait for it). The primary key makes a duplicated sequence number impossible, and a
//! session-level advisory lock on the stream keeps a second sink from writing the same stream.
//! After a failed insert the sink refuses every append (the chain may have moved past records
//! that are not in the table); connect again to go on.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::{Ack, Appended, AuditError, AuditSink, Chain, Queue, queue_append, queue_checkpoint};
use crate::record::{self, Record};
use crate::{Checkpoint, CheckpointKey, Durability, Event};

/// How a [`PostgresSink`] is set up.
#[derive(Clone, Debug)]
pub struct PostgresSinkOptions {
    stream: String,
    key: CheckpointKey,
    table: String,
    checkpoint_every: u64,
}

impl PostgresSinkOptions {
    /// The default table name.
    pub const DEFAULT_TABLE: &'static str = "sod_audit_log";

    /// Options for the chain `stream` (one per gateway), checkpoints signed with `key`.
    pub fn new(stream: impl Into<String>, key: CheckpointKey) -> Self {
        Self {
            stream: stream.into(),
            key,
            table: Self::DEFAULT_TABLE.to_owned(),
            checkpoint_every: 1000,
        }
    }

    /// The table, optionally schema-qualified (`audit.log`); each part must be a plain
    /// lower-case SQL identifier.
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Writes a signed checkpoint after every `records` records (default 1000).
    #[must_use]
    pub fn checkpoint_every(mut self, records: u64) -> Self {
        self.checkpoint_every = records;
        self
    }
}

/// Why a [`PostgresSink`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PostgresSinkError {
    /// The table name is not a plain identifier.
    #[error(
        "`{0}` is not a valid table name (lower-case letters, digits and `_`, optionally schema-qualified)"
    )]
    BadTable(String),
    /// Another sink holds the stream.
    #[error("stream `{0}` is being written by another audit sink")]
    StreamInUse(String),
    /// The last stored record does not decode.
    #[error("the last record of stream `{stream}` (seq {seq}) is damaged: {why}; verify the log")]
    Damaged {
        /// The stream.
        stream: String,
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        why: String,
    },
    /// The server refused a setup statement.
    #[error("audit table setup failed: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

/// The server's message and SQLSTATE where there is one (tokio-postgres displays "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn valid_table(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut parts = name.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), None, None) => part(t),
        (Some(s), Some(t), None) => part(s) && part(t),
        _ => false,
    }
}

struct Job {
    records: Vec<(i64, String)>,
    ack: Option<oneshot::Sender<Result<(), AuditError>>>,
}

struct State {
    chain: Chain,
    poisoned: Option<String>,
    /// `None` once closed.
    tx: Option<mpsc::UnboundedSender<Job>>,
}

/// Appends records to a PostgreSQL table. See the [module docs](self).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sod_audit::{AuditSink, CheckpointKey, Durability, Event, PostgresSink, PostgresSinkOptions};
///
/// let (client, connection) =
///     tokio_postgres::connect("host=db.internal dbname=audit user=sod", tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
/// let key = CheckpointKey::generate("audit-2026");
/// let sink = PostgresSink::open(client, PostgresSinkOptions::new("gw-1", key)).await?;
/// sink.append(Event::session_ended("s-1", "bye"), Durability::Fsync).await?;
/// # Ok(()) }
/// ```
pub struct PostgresSink {
    state: Arc<Mutex<State>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PostgresSink {
    /// Creates the table if missing, locks the stream against other writers, resumes the chain
    /// after the stream's last record, and starts the writer task (on the current tokio
    /// runtime). The client's connection is the sink's from now on: it holds the stream lock.
    pub async fn open(
        client: tokio_postgres::Client,
        options: PostgresSinkOptions,
    ) -> Result<Self, PostgresSinkError> {
        let table = &options.table;
        if !valid_table(table) {
            return Err(PostgresSinkError::BadTable(table.clone()));
        }
        // The commit is the durability point: it must be synchronous whatever the server's
        // default.
        client
            .batch_execute(&format!(
                "SET synchronous_commit = on;
                 CREATE TABLE IF NOT EXISTS {table} (
                    stream text NOT NULL,
                    seq bigint NOT NULL CHECK (seq >= 0),
                    line text NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (stream, seq))"
            ))
            .await?;
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 7001))",
                &[&format!("sod-audit:{table}:{}", options.stream)],
            )
            .await?
            .get(0);
        if !locked {
            return Err(PostgresSinkError::StreamInUse(options.stream));
        }
        let mut chain = Chain::new(
            &options.stream,
            options.key.clone(),
            options.checkpoint_every,
        );
        let last = client
            .query_opt(
                &format!(
                    "SELECT seq, line FROM {table} WHERE stream = $1 ORDER BY seq DESC LIMIT 1"
                ),
                &[&options.stream],
            )
            .await?;
        if let Some(row) = last {
            let seq: i64 = row.get(0);
            let line: String = row.get(1);
            let damaged = |why: String| PostgresSinkError::Damaged {
                stream: options.stream.clone(),
                seq,
                why,
            };
            let rec: Record =
                record::decode(line.as_bytes()).map_err(|e| damaged(e.to_string()))?;
            if rec.seq != seq as u64 || rec.stream != options.stream {
                return Err(damaged(
                    "its stream or sequence number disagrees with its row".into(),
                ));
            }
            if rec.seq == u64::MAX || seq == i64::MAX {
                return Err(damaged("it has the largest sequence number".into()));
            }
            // Records since the last checkpoint are not counted here: checkpoint at the next
            // append rather than late.
            chain.resume(rec.seq, rec.hash, u64::MAX);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State {
            chain,
            poisoned: None,
            tx: Some(tx),
        }));
        let insert = format!(
            "INSERT INTO {table} (stream, seq, line) \
             SELECT $1, s, l FROM unnest($2::int8[], $3::text[]) AS r(s, l)"
        );
        let writer = tokio::spawn(write_loop(
            client,
            insert,
            options.stream,
            rx,
            state.clone(),
        ));
        Ok(Self {
            state,
            writer: Mutex::new(Some(writer)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what is queued, stops the writer task and waits for it (which releases the
    /// stream lock with the connection). Appends after this fail with [`AuditError::Closed`].
    pub async fn close(&self) {
        self.lock().tx = None;
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.await;
        }
    }

    /// The stored lines of `stream`, in sequence order, for [`verify::lines`](crate::verify::lines).
    pub async fn lines(
        client: &tokio_postgres::Client,
        table: &str,
        stream: &str,
    ) -> Result<Vec<String>, PostgresSinkError> {
        if !valid_table(table) {
            return Err(PostgresSinkError::BadTable(table.to_owned()));
        }
        let rows = client
            .query(
                &format!("SELECT line FROM {table} WHERE stream = $1 ORDER BY seq"),
                &[&stream],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl super::Lines for Vec<(i64, String)> {
    fn push_line(&mut self, seq: u64, mut line: String) {
        line.pop(); // the newline: rows hold the line alone
        // Sequence numbers above i64::MAX cannot be stored; the primary key then refuses the
        // duplicate and the sink fails closed.
        self.push((i64::try_from(seq).unwrap_or(i64::MAX), line));
    }
}

async fn write_loop(
    client: tokio_postgres::Client,
    insert: String,
    stream: String,
    mut rx: mpsc::UnboundedReceiver<Job>,
    state: Arc<Mutex<State>>,
) {
    let statement = match client.prepare(&insert).await {
        Ok(s) => s,
        Err(e) => {
            fail_all(
                &state,
                &mut rx,
                Vec::new(),
                format!("preparing the audit insert failed: {}", describe(&e)),
            );
            return;
        }
    };
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let (seqs, lines): (Vec<i64>, Vec<&str>) = jobs
            .iter()
            .flat_map(|j| j.records.iter().map(|(s, l)| (*s, l.as_str())))
            .unzip();
        match client.execute(&statement, &[&stream, &seqs, &lines]).await {
            Ok(_) => {
                for job in jobs {
                    if let Some(ack) = job.ack {
                        let _ = ack.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                fail_all(
                    &state,
                    &mut rx,
                    jobs,
                    format!("writing the audit log failed: {}", describe(&e)),
                );
                return;
            }
        }
    }
}

/// Poisons the sink and fails every waiting append.
fn fail_all(
    state: &Mutex<State>,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    jobs: Vec<Job>,
    why: String,
) {
    tracing::error!(error = %why, "audit log failed; refusing further records until reopened");
    let error = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        AuditError::Unavailable(st.poisoned.get_or_insert(why).clone())
    };
    rx.close();
    let mut rest = jobs;
    while let Ok(job) = rx.try_recv() {
        rest.push(job);
    }
    for job in rest {
        if let Some(ack) = job.ack {
            let _ = ack.send(Err(error.clone()));
        }
    }
}

impl Queue for PostgresSink {
    type Out = Vec<(i64, String)>;

    fn enqueue(
        &self,
        durability: Durability,
        make: impl FnOnce(&mut Chain, &mut Self::Out) -> Option<Appended>,
    ) -> Result<(Option<Appended>, Option<Ack>), AuditError> {
        let mut st = self.lock();
        if let Some(why) = &st.poisoned {
            return Err(AuditError::Unavailable(why.clone()));
        }
        let st = &mut *st;
        let tx = st.tx.as_ref().ok_or(AuditError::Closed)?;
        let mut records = Vec::new();
        let appended = make(&mut st.chain, &mut records);
        let (ack, rx) = if durability == Durability::Buffered {
            (None, None)
        } else {
            let (ack, rx) = oneshot::channel();
            (Some(ack), Some(rx))
        };
        // Sent under the chain's lock, so the writer sees records in sequence order.
        tx.send(Job { records, ack })
            .map_err(|_| AuditError::Closed)?;
        Ok((appended, rx))
    }
}

impl AuditSink for PostgresSink {
    fn append(
        &self,
        event: Event,
        durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>> {
        queue_append(self, event, durability)
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
        queue_checkpoint(self)
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        // The writer task finishes what is queued, then drops the connection.
        self.lock().tx = None;
    }
}
