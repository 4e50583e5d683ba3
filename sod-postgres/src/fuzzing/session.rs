//! A whole gateway session for the `pg_session_driver` fuzz target: a scripted PostgreSQL
//! server on a Unix socket (a model of the server's protocol behaviour, small enough to be
//! fast), the gateway's start-up, driver and router on the client's end of a socket pair, and
//! a client that sends one input's messages and reads every answer.
//!
//! The scripted server tells an observer about everything it receives that only a committed
//! operation may send (a client's query, `Bind`, `Execute`, a function call), when it receives
//! it: the fuzz target checks the audit log held the operation's attempt record by then.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sod_core::{BoxError, Request, Target};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tower::{Layer, Service};

use crate::codec::{
    self, ErrorBuilder, FieldDescription, FrontendMessage, Limits, Startup, Target as Describe,
    TransactionStatus, backend, tag,
};
use crate::credentials::CredentialSource;
use crate::service::{PgRequest, PgResponse, PgUpstream};
use crate::session::{self, Accepted};
use crate::shared::{GatewayShared, Plaintext, Settings};
use crate::sql::{CachedAnalyzer, PgQueryAnalyzer};
use crate::upstream::UpstreamConfig;

/// The OID of the scripted server's one table, `public.accounts`.
pub const ACCOUNTS_OID: u32 = 16400;

/// The columns of `public.accounts`, by attribute number from 1: `id` (int4), `email` (text,
/// the column a masked session must not see), `balance` (int4).
pub const ACCOUNTS_COLUMNS: [&str; 3] = ["id", "email", "balance"];

/// The query a client ends its input with: the scripted server answers it (and only it) with
/// a `NoticeResponse` first, so the client knows its last message was answered. Qualified: a
/// session whose search path the gateway could not confirm refuses unqualified names.
pub const END_SQL: &str = "SELECT id FROM public.accounts WHERE id = 0";

/// What reached the scripted server that only a committed operation may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// A simple query that is not one of the gateway's own (catalog, search path, read-only
    /// switch).
    Query(String),
    /// An `Execute`.
    Execute,
    /// A `Bind` (sent with the `Execute` that committed it).
    Bind,
    /// A fastpath function call.
    FunctionCall,
}

/// Called by the scripted server with each [`Forwarded`] message, as it receives it.
pub type Observer = Arc<dyn Fn(&Forwarded) + Send + Sync>;

/// The scripted server's socket: a Unix-socket listener in a directory of its own, bound once
/// per process and served by one runtime at a time ([`ScriptedServer::serve`]).
pub struct ScriptedServer {
    dir: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

/// The port in the scripted server's socket name (`.s.PGSQL.5432`).
const PORT: u16 = 5432;

impl ScriptedServer {
    /// Binds the socket in a fresh directory under the system's temporary directory.
    pub fn bind() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "sod-fuzz-{}-{}",
            std::process::id(),
            sod_core::hex::encode(&sod_core::hex::random::<4>())
        ));
        std::fs::create_dir_all(&dir)?;
        let path = crate::gateway::unix_socket_path(&dir, PORT);
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(Self { dir, listener })
    }

    /// How the gateway reaches the server.
    pub fn config(&self) -> UpstreamConfig {
        let mut config = UpstreamConfig::unix(&self.dir, PORT, "sod");
        config.connect_timeout = Duration::from_secs(10);
        config
    }

    /// Serves connections on the current runtime until the task is dropped; each session
    /// tells `observer` what it receives.
    pub async fn serve(&self, observer: Observer) -> std::io::Result<()> {
        let listener = tokio::net::UnixListener::from_std(self.listener.try_clone()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(scripted_session(stream, observer.clone()));
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one gateway session (start-up, `Connect`, driver and router) for the client at the
/// other end of `client`, every operation through `layer`'s stack, against `upstream`.
pub async fn serve_client<L>(
    layer: L,
    client: UnixStream,
    upstream: UpstreamConfig,
    credentials: impl CredentialSource,
) where
    L: Layer<PgUpstream>,
    L::Service:
        Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<PgRequest>>>::Future: Send,
{
    let shared = Arc::new(GatewayShared::from(Settings {
        target: Target::new("pg/fuzz"),
        upstream,
        credentials: Arc::new(credentials),
        analyzer: Arc::new(CachedAnalyzer::new(
            Box::new(PgQueryAnalyzer::with_shape_cache(64)) as Box<dyn crate::sql::Analyzer>,
            64,
        )),
        limits: Limits::default(),
        tls: None,
        plaintext: Plaintext::LoopbackOnly,
        startup_timeout: Duration::from_secs(10),
        idle_timeout: None,
        write_timeout: None,
        admission: Default::default(),
        max_statement: crate::gateway::DEFAULT_MAX_STATEMENT,
        // No pooling: the scripted server checks that `Terminate` closes the session.
        pool: crate::pool::PoolSettings::default(),
    }));
    let Ok(slot) = shared.admission.startup(sod_core::admission::PeerKey::Unix) else {
        return;
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    session::serve(shared, layer, Accepted::Unix(client), slot, stop).await;
}

/// What the client saw of its session.
#[derive(Debug, Default)]
pub struct Transcript {
    /// The tag of every message the gateway sent after authentication, in order.
    pub tags: Vec<u8>,
    /// The severity (`ERROR`, `FATAL`, …) of every `ErrorResponse`, in order.
    pub errors: Vec<String>,
    /// Whether the gateway closed the connection.
    pub closed: bool,
    /// Whether the client stopped waiting: nothing came for `quiet` while the session was
    /// still open (with paused time: the whole runtime had nothing left to do).
    pub quiet: bool,
    /// Whether authentication succeeded (`AuthenticationOk` came).
    pub authenticated: bool,
    /// Whether the gateway sent something that does not decode as a backend message.
    pub undecodable: bool,
}

impl Transcript {
    /// Whether a `NoticeResponse` arrived and a `ReadyForQuery` came after it: the answer to
    /// [`END_SQL`].
    pub fn answered_end(&self) -> bool {
        self.tags
            .iter()
            .rposition(|&t| t == tag::NOTICE_RESPONSE)
            .is_some_and(|i| self.tags[i..].contains(&tag::READY_FOR_QUERY))
    }

    /// How many `ReadyForQuery` messages arrived.
    pub fn ready_count(&self) -> usize {
        self.tags
            .iter()
            .filter(|&&t| t == tag::READY_FOR_QUERY)
            .count()
    }
}

/// Logs in as `user` with `password`, sends `messages` (frontend messages, encoded) and reads
/// every answer until the gateway closes the connection or nothing comes for `quiet`.
pub async fn client(
    mut stream: UnixStream,
    user: &str,
    password: &str,
    messages: &[u8],
    quiet: Duration,
) -> Transcript {
    let mut t = Transcript::default();
    let mut out = BytesMut::new();
    if codec::frontend::startup(&mut out, &[("user", user), ("database", "sod")]).is_err()
        || codec::frontend::password(&mut out, password.as_bytes()).is_err()
    {
        return t;
    }
    out.extend_from_slice(messages);
    // Write and read at once: a long input must not fill the socket while the gateway's
    // answers wait to be read.
    let (mut read, mut write) = stream.split();
    let writing = async {
        let _ = write.write_all(&out).await;
    };
    let reading = async {
        let limits = Limits::default();
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            match codec::decode_backend(&mut buf, &limits) {
                Ok(Some(frame)) => {
                    let tg = frame.tag();
                    if tg == tag::AUTHENTICATION {
                        if let Ok(codec::BackendMessage::Authentication(codec::Auth::Ok)) =
                            frame.parse()
                        {
                            t.authenticated = true;
                        }
                        continue;
                    }
                    if tg == tag::ERROR_RESPONSE {
                        let severity = match frame.parse() {
                            Ok(codec::BackendMessage::ErrorResponse(fields)) => fields
                                .iter()
                                .find(|(k, _)| *k == codec::field::SEVERITY)
                                .map(|(_, v)| v.to_owned())
                                .unwrap_or_default(),
                            _ => String::new(),
                        };
                        t.errors.push(severity);
                    }
                    if t.authenticated {
                        t.tags.push(tg);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => {
                    t.undecodable = true;
                    return;
                }
            }
            match tokio::time::timeout(quiet, read.read_buf(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => {
                    t.closed = true;
                    return;
                }
                Ok(Ok(_)) => {}
                Err(_) => {
                    t.quiet = true;
                    return;
                }
            }
        }
    };
    tokio::join!(writing, reading);
    t
}

/// The scripted server's answer to a statement.
enum Answer {
    /// Rows of these `accounts` columns (attribute numbers), or of one computed column.
    Rows(Vec<Option<i16>>),
    /// A command tag, no rows.
    Command(String),
    /// `COPY … FROM STDIN`.
    CopyIn,
    /// `COPY … TO STDOUT`.
    CopyOut,
    /// Transaction control: the new status and the tag.
    Transaction(TransactionStatus, &'static str),
    /// An empty query.
    Empty,
    /// A syntax error.
    Error,
}

/// What the scripted server makes of one statement (a crude reading of the small language the
/// fuzz target speaks).
fn answer(sql: &str) -> Answer {
    let s = sql.trim().trim_end_matches(';').trim();
    if s.is_empty() {
        return Answer::Empty;
    }
    let upper = s.to_ascii_uppercase();
    let first = upper.split_whitespace().next().unwrap_or_default();
    match first {
        "SELECT" => {
            let list = upper["SELECT".len()..]
                .split(" FROM ")
                .next()
                .unwrap_or_default()
                .to_owned();
            let from_accounts =
                upper.contains(" FROM ACCOUNTS") || upper.contains(" FROM PUBLIC.ACCOUNTS");
            let mut cols = Vec::new();
            for item in list.split(',') {
                let item = item.trim();
                if item == "*" && from_accounts {
                    cols.extend([Some(1), Some(2), Some(3)]);
                } else if let Some(i) = ACCOUNTS_COLUMNS
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(item))
                    .filter(|_| from_accounts)
                {
                    cols.push(Some(i as i16 + 1));
                } else if item.is_empty() || item.contains(' ') && !item.contains(" AS ") {
                    return Answer::Error;
                } else {
                    cols.push(None);
                }
            }
            Answer::Rows(cols)
        }
        "INSERT" => Answer::Command("INSERT 0 1".into()),
        "UPDATE" => Answer::Command("UPDATE 1".into()),
        "DELETE" => Answer::Command("DELETE 1".into()),
        "SET" => Answer::Command("SET".into()),
        "COPY" if upper.contains("FROM STDIN") => Answer::CopyIn,
        "COPY" if upper.contains("TO STDOUT") => Answer::CopyOut,
        "BEGIN" | "START" => Answer::Transaction(TransactionStatus::InBlock, "BEGIN"),
        "COMMIT" | "END" => Answer::Transaction(TransactionStatus::Idle, "COMMIT"),
        "ROLLBACK" | "ABORT" => Answer::Transaction(TransactionStatus::Idle, "ROLLBACK"),
        _ => Answer::Error,
    }
}

/// Rows for the gateway's catalog and search-path queries, `None` for any other query.
fn internal_rows(sql: &str) -> Option<(usize, Vec<Vec<Option<String>>>)> {
    let s = |v: &str| Some(v.to_owned());
    if sql.starts_with("SELECT s::pg_catalog.text") {
        return Some((1, vec![vec![s("pg_catalog")], vec![s("public")]]));
    }
    if sql.contains("current_schemas") && sql.contains("relname") && !sql.contains("NOT n.nspname")
    {
        return Some((
            2,
            vec![
                vec![s("pg_catalog"), None],
                vec![s("public"), s("accounts")],
            ],
        ));
    }
    if sql.contains("a.attnum::text, a.attname::text") {
        let rows = ACCOUNTS_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    Some(ACCOUNTS_OID.to_string()),
                    s("public"),
                    s("accounts"),
                    s("r"),
                    Some((i + 1).to_string()),
                    s(c),
                ]
            })
            .collect();
        return Some((6, rows));
    }
    if sql.contains("pg_catalog") {
        let width = if sql.contains("ev_class") { 4 } else { 2 };
        return Some((width, Vec::new()));
    }
    if sql.starts_with("SET default_transaction_read_only") {
        return Some((0, Vec::new()));
    }
    None
}

fn text_fields(n: usize) -> Vec<FieldDescription<'static>> {
    (0..n)
        .map(|_| FieldDescription {
            name: "c",
            table_oid: 0,
            column: 0,
            type_oid: 25,
            type_size: -1,
            type_modifier: -1,
            format: 0,
        })
        .collect()
}

fn fields(cols: &[Option<i16>]) -> Vec<FieldDescription<'static>> {
    cols.iter()
        .map(|c| match c {
            Some(att) => FieldDescription {
                name: ACCOUNTS_COLUMNS[(*att as usize).saturating_sub(1) % 3],
                table_oid: ACCOUNTS_OID,
                column: *att,
                type_oid: if *att == 2 { 25 } else { 23 },
                type_size: if *att == 2 { -1 } else { 4 },
                type_modifier: -1,
                format: 0,
            },
            None => FieldDescription {
                name: "?column?",
                table_oid: 0,
                column: 0,
                type_oid: 25,
                type_size: -1,
                type_modifier: -1,
                format: 0,
            },
        })
        .collect()
}

fn row(cols: &[Option<i16>], out: &mut BytesMut) {
    let values: Vec<Option<&[u8]>> = cols
        .iter()
        .map(|c| match c {
            Some(2) => Some(&b"alice@example.com"[..]),
            Some(_) => Some(&b"7"[..]),
            None => Some(&b"x"[..]),
        })
        .collect();
    let _ = backend::data_row(out, &values);
}

/// Count of `$n` parameters in `sql`: the highest `n`.
fn param_count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'$' {
            let digits: String = b[i + 1..]
                .iter()
                .take_while(|d| d.is_ascii_digit())
                .map(|&d| d as char)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n.min(100));
            }
        }
    }
    max
}

/// Copy-in under way: whether it came from a simple query.
struct CopyIn {
    simple: bool,
}

/// One scripted server session's state.
struct Scripted {
    statements: HashMap<String, String>,
    portals: HashMap<String, String>,
    /// An extended-protocol error: skip to `Sync`.
    failed: bool,
    status: TransactionStatus,
    copy_in: Option<CopyIn>,
    out: BytesMut,
}

impl Scripted {
    fn error(&mut self, code: &str, message: &str) {
        backend::error_response(&mut self.out, &ErrorBuilder::error(code, message));
        if self.status == TransactionStatus::InBlock {
            self.status = TransactionStatus::Failed;
        }
    }

    fn ready(&mut self) {
        backend::ready_for_query(&mut self.out, self.status);
    }

    /// Runs one statement; `simple`: from a simple query (send its `RowDescription`); `max_rows`
    /// as in `Execute`. `false` when it failed.
    fn run(&mut self, sql: &str, simple: bool, max_rows: i32) -> bool {
        let a = answer(sql);
        if self.status == TransactionStatus::Failed
            && !matches!(a, Answer::Transaction(_, "ROLLBACK" | "COMMIT"))
        {
            self.error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            );
            return false;
        }
        match a {
            Answer::Rows(cols) => {
                if simple {
                    let _ = backend::row_description(&mut self.out, &fields(&cols));
                }
                row(&cols, &mut self.out);
                if max_rows == 1 {
                    backend::portal_suspended(&mut self.out);
                } else {
                    let _ = backend::command_complete(&mut self.out, "SELECT 1");
                }
            }
            Answer::Command(tg) => {
                let _ = backend::command_complete(&mut self.out, &tg);
            }
            Answer::CopyIn => {
                let _ = backend::copy_in_response(&mut self.out, 0, &[0, 0, 0]);
                self.copy_in = Some(CopyIn { simple });
            }
            Answer::CopyOut => {
                let _ = backend::copy_out_response(&mut self.out, 0, &[0, 0, 0]);
                let _ = backend::copy_data(&mut self.out, b"1\talice@example.com\t7\n");
                backend::copy_done(&mut self.out);
                let _ = backend::command_complete(&mut self.out, "COPY 1");
            }
            Answer::Transaction(status, tg) => {
                let tg = if self.status == TransactionStatus::Failed {
                    "ROLLBACK"
                } else {
                    tg
                };
                self.status = status;
                let _ = backend::command_complete(&mut self.out, tg);
            }
            Answer::Empty => backend::empty_query_response(&mut self.out),
            Answer::Error => {
                self.error("42601", "syntax error");
                return false;
            }
        }
        true
    }

    /// A simple query.
    fn query(&mut self, sql: &str) {
        if let Some((width, rows)) = internal_rows(sql) {
            if width > 0 {
                let _ = backend::row_description(&mut self.out, &text_fields(width));
                for r in &rows {
                    let values: Vec<Option<&[u8]>> =
                        r.iter().map(|v| v.as_deref().map(str::as_bytes)).collect();
                    let _ = backend::data_row(&mut self.out, &values);
                }
                let _ = backend::command_complete(&mut self.out, &format!("SELECT {}", rows.len()));
            } else {
                let _ = backend::command_complete(&mut self.out, "SET");
            }
            self.ready();
            return;
        }
        if sql == END_SQL {
            backend::notice_response(&mut self.out, &ErrorBuilder::error("00000", "end"));
        }
        let statements: Vec<&str> = sql.split(';').filter(|s| !s.trim().is_empty()).collect();
        if statements.is_empty() {
            backend::empty_query_response(&mut self.out);
        }
        for s in statements {
            if !self.run(s, true, 0) || self.copy_in.is_some() {
                break;
            }
        }
        if self.copy_in.is_none() {
            self.ready();
        }
    }

    /// One frontend message; `false` to end the session.
    fn handle(&mut self, msg: FrontendMessage<'_>) -> bool {
        if let Some(copy) = &self.copy_in {
            let simple = copy.simple;
            match msg {
                FrontendMessage::CopyData(_) | FrontendMessage::Sync | FrontendMessage::Flush => {
                    return true;
                }
                FrontendMessage::CopyDone => {
                    self.copy_in = None;
                    let _ = backend::command_complete(&mut self.out, "COPY 1");
                }
                FrontendMessage::CopyFail { .. } => {
                    self.copy_in = None;
                    self.error("57014", "COPY from stdin failed");
                    self.failed = !simple;
                }
                // Like any other message, Terminate is a protocol violation during copy-in
                // (PostgreSQL answers it, then finds the connection closed).
                _ => {
                    self.copy_in = None;
                    backend::error_response(
                        &mut self.out,
                        &ErrorBuilder::error("08P01", "unexpected message type during COPY"),
                    );
                    self.failed = !simple;
                }
            }
            if simple {
                self.ready();
            }
            return true;
        }
        if self.failed && !matches!(msg, FrontendMessage::Sync | FrontendMessage::Terminate) {
            return true;
        }
        match msg {
            FrontendMessage::Query { sql } => self.query(sql),
            FrontendMessage::Parse { name, sql, .. } => {
                if !name.is_empty() && self.statements.contains_key(name) {
                    self.error("42P05", "prepared statement already exists");
                    self.failed = true;
                } else if matches!(answer(sql), Answer::Error) || sql.contains(';') {
                    self.error("42601", "syntax error");
                    self.failed = true;
                } else {
                    self.statements.insert(name.to_owned(), sql.to_owned());
                    backend::parse_complete(&mut self.out);
                }
            }
            FrontendMessage::Bind(b) => match self.statements.get(b.statement).cloned() {
                None => {
                    self.error("26000", "prepared statement does not exist");
                    self.failed = true;
                }
                Some(_) if !b.portal.is_empty() && self.portals.contains_key(b.portal) => {
                    self.error("42P03", "cursor already exists");
                    self.failed = true;
                }
                Some(sql) => {
                    self.portals.insert(b.portal.to_owned(), sql);
                    backend::bind_complete(&mut self.out);
                }
            },
            FrontendMessage::Describe { target, name } => {
                let sql = match target {
                    Describe::Statement => self.statements.get(name),
                    Describe::Portal => self.portals.get(name),
                }
                .cloned();
                match sql {
                    None => {
                        self.error("34000", "does not exist");
                        self.failed = true;
                    }
                    Some(sql) => {
                        if target == Describe::Statement {
                            let types = vec![23; param_count(&sql)];
                            let _ = backend::parameter_description(&mut self.out, &types);
                        }
                        match answer(&sql) {
                            Answer::Rows(cols) => {
                                let _ = backend::row_description(&mut self.out, &fields(&cols));
                            }
                            _ => backend::no_data(&mut self.out),
                        }
                    }
                }
            }
            FrontendMessage::Execute { portal, max_rows } => {
                match self.portals.get(portal).cloned() {
                    None => {
                        self.error("34000", "portal does not exist");
                        self.failed = true;
                    }
                    Some(sql) => {
                        if !self.run(&sql, false, max_rows) {
                            self.failed = true;
                        }
                    }
                }
            }
            FrontendMessage::Close { target, name } => {
                match target {
                    Describe::Statement => self.statements.remove(name),
                    Describe::Portal => self.portals.remove(name),
                };
                backend::close_complete(&mut self.out);
            }
            FrontendMessage::Sync => {
                self.failed = false;
                // The implicit transaction ends, and its portals with it.
                if self.status == TransactionStatus::Idle {
                    self.portals.clear();
                }
                self.ready();
            }
            FrontendMessage::FunctionCall(_) => {
                self.error("42883", "function does not exist");
                self.ready();
            }
            FrontendMessage::Terminate => return false,
            FrontendMessage::Flush
            | FrontendMessage::CopyData(_)
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail { .. } => {}
            FrontendMessage::Password(_) => {
                backend::error_response(
                    &mut self.out,
                    &ErrorBuilder::fatal("08P01", "unexpected password message"),
                );
                return false;
            }
        }
        true
    }
}

/// One session of the scripted server: trust authentication, then [`Scripted`].
async fn scripted_session<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, observer: Observer) {
    let limits = Limits::DEFAULT;
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        match codec::decode_startup(&mut buf, &limits) {
            Ok(Some(Startup::Startup { .. })) => break,
            Ok(Some(Startup::Ssl | Startup::GssEnc)) => {
                if s.write_all(b"N").await.is_err() {
                    return;
                }
            }
            Ok(Some(Startup::Cancel { .. })) | Err(_) => return,
            Ok(None) => {
                if s.read_buf(&mut buf).await.map_or(true, |n| n == 0) {
                    return;
                }
            }
        }
    }
    let mut st = Scripted {
        statements: HashMap::new(),
        portals: HashMap::new(),
        failed: false,
        status: TransactionStatus::Idle,
        copy_in: None,
        out: BytesMut::new(),
    };
    backend::authentication_ok(&mut st.out);
    for (k, v) in [
        ("server_version", "16.4"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
    ] {
        let _ = backend::parameter_status(&mut st.out, k, v);
    }
    let _ = backend::backend_key_data(&mut st.out, 4242, &[1, 2, 3, 4]);
    st.ready();
    loop {
        if !st.out.is_empty() {
            if s.write_all(&st.out).await.is_err() {
                return;
            }
            st.out.clear();
        }
        let frame = loop {
            match codec::decode_frontend(&mut buf, &limits) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            if s.read_buf(&mut buf).await.map_or(true, |n| n == 0) {
                return;
            }
        };
        let Ok(msg) = frame.parse() else {
            let _ = s.shutdown().await;
            return;
        };
        // Observed as it arrives, whatever the session's state: what matters is that it
        // reached the server.
        let seen = match &msg {
            FrontendMessage::Query { sql } if internal_rows(sql).is_none() => {
                Some(Forwarded::Query((*sql).to_owned()))
            }
            FrontendMessage::Bind(_) => Some(Forwarded::Bind),
            FrontendMessage::Execute { .. } => Some(Forwarded::Execute),
            FrontendMessage::FunctionCall(_) => Some(Forwarded::FunctionCall),
            _ => None,
        };
        if let Some(seen) = seen {
            observer(&seen);
        }
        if !st.handle(msg) {
            let _ = s.write_all(&st.out).await;
            return;
        }
    }
}
