//! One client session: start-up and TLS, authentication through the service stack, then the
//! message loop that turns client messages into operations and forwards what is allowed.
//!
//! Simple-query batches and extended-protocol `Execute`s are operations; `Parse`, `Bind`,
//! `Describe`, `Close`, `Sync` and `Flush` are bookkeeping the driver handles itself (a
//! statement is analysed at `Parse`, its policy is enforced at `Execute`). Protocol-level
//! statement names are rewritten to names the gateway generates, so what the server prepared
//! under a name is always what the gateway analysed under it.
//!
//! A refusal is answered the way PostgreSQL answers an error: the gateway makes the server fail
//! too (an `Execute` of a portal that cannot exist), and substitutes its own `ErrorResponse` for
//! the server's. The transaction semantics are then exactly PostgreSQL's: an implicit
//! transaction is rolled back, an explicit block becomes failed until the client ends it, and
//! the rest of an extended-protocol pipeline is skipped up to `Sync`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sod_core::hex;
use sod_core::{
    BoxError, Credential, Operation, Peer, Refusal, RefusalCode, Request, Session, Target,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::{Layer, Service, ServiceExt as _};

use crate::catalog::{self, Catalog, CatalogSnapshot};
use crate::codec::{
    self, BackendFrame, ErrorBuilder, FrontendFrame, FrontendMessage, Limits, Severity, Startup,
    Target as DescribeTarget, frontend, tag,
};
use crate::credentials::CredentialSource;
use crate::error::{encoded, refusal_error, stack_error};
use crate::link::{DescKey, Expect, Link, Outgoing, Sink};
use crate::net::Stream;
use crate::service::{
    PgRequest, PgResponse, PgUpstream, Registered, RequestKind, ResponseInner, ResultShape,
};
use crate::sql::{Analysis, CachedAnalyzer, ObjectName, SessionEffect, operation};
use crate::upstream::{self, CancelTarget, Upstream, UpstreamConfig};

/// Whether clients may connect without TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plaintext {
    /// Never.
    Never,
    /// From loopback addresses and Unix sockets only (the default).
    LoopbackOnly,
    /// From anywhere (only behind another encrypted transport).
    Always,
}

/// Everything sessions of one gateway share.
pub(crate) struct GatewayShared {
    pub(crate) target: Target,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) credentials: Arc<dyn CredentialSource>,
    pub(crate) analyzer: Arc<CachedAnalyzer>,
    pub(crate) catalog: Catalog,
    pub(crate) cancels: CancelRegistry,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) plaintext: Plaintext,
    pub(crate) startup_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
}

/// Cancel keys: the client sees the gateway's, only the gateway knows the server's.
#[derive(Default)]
pub(crate) struct CancelRegistry {
    map: Mutex<HashMap<(i32, [u8; 4]), CancelTarget>>,
}

impl CancelRegistry {
    fn insert(&self, target: CancelTarget) -> (i32, [u8; 4]) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let raw: [u8; 8] = hex::random();
            let pid = i32::from_be_bytes([raw[0] & 0x7f, raw[1], raw[2], raw[3]]).max(1);
            let key = [raw[4], raw[5], raw[6], raw[7]];
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry((pid, key)) {
                e.insert(target);
                return (pid, key);
            }
        }
    }

    fn remove(&self, id: (i32, [u8; 4])) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn get(&self, pid: i32, key: &[u8]) -> Option<CancelTarget> {
        let key: [u8; 4] = key.try_into().ok()?;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, key))
            .cloned()
    }
}

/// Per-session state shared between the driver and the innermost service.
pub(crate) struct SessionShared {
    gateway: Arc<GatewayShared>,
    /// The client's harmless start-up parameters, passed upstream.
    forward_params: Vec<(String, String)>,
    link: OnceLock<Arc<Link>>,
    upstream: Mutex<Option<Upstream>>,
    snapshot: Mutex<Arc<CatalogSnapshot>>,
    registered: Registered,
}

/// Loads a catalog snapshot on a side connection.
async fn load_catalog(gw: &GatewayShared) -> Result<CatalogSnapshot, upstream::UpstreamError> {
    let mut side =
        upstream::connect(&gw.upstream, gw.credentials.as_ref(), &[], &gw.limits).await?;
    let snapshot = catalog::load(&mut side, &gw.limits).await;
    side.terminate().await;
    snapshot
}

impl SessionShared {
    /// Opens the upstream session (the innermost service's part of `Connect`).
    pub(crate) async fn open_upstream(&self, read_only: bool) -> Result<(), BoxError> {
        let gw = &self.gateway;
        let mut params = self.forward_params.clone();
        if read_only {
            params.push(("default_transaction_read_only".into(), "on".into()));
        }
        let mut up =
            upstream::connect(&gw.upstream, gw.credentials.as_ref(), &params, &gw.limits).await?;
        let snapshot = match gw
            .catalog
            .load_once(|| catalog::load(&mut up, &gw.limits))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the catalog; assuming pg_catalog, public and masking every column of masked results");
                Arc::new(CatalogSnapshot::default_path())
            }
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = Some(up);
        Ok(())
    }

    pub(crate) fn gateway(&self) -> Arc<GatewayShared> {
        self.gateway.clone()
    }

    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.link.get().cloned()
    }

    pub(crate) fn note_registered(&self, id: u64) {
        self.registered.set(id);
    }

    /// The catalog snapshot this session resolves names and masks with.
    pub(crate) fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the gateway asks the server to parse to make it fail in place of a refused statement;
/// the server's log shows it as a syntax error at "sod".
const REFUSAL_TEXT: &str = "sod refused this statement";

/// Prefix of statement and portal names the gateway creates upstream; SQL naming them is
/// refused, so no client can reach the gateway's own statements and portals (for example
/// `FETCH` from a portal bound to a statement that was never allowed to execute).
const RESERVED_PREFIX: &str = "sod:";

/// OIDs below this are PostgreSQL's own objects (`FirstNormalObjectId`).
const FIRST_NORMAL_OBJECT_ID: u32 = 16_384;

/// Frames for [`Link::local`] from an encoder.
fn frames_of(
    f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>,
) -> Vec<BackendFrame> {
    let mut buf = BytesMut::new();
    if f(&mut buf).is_err() {
        return Vec::new();
    }
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec::decode_backend(&mut buf, &Limits::DEFAULT) {
        frames.push(frame);
    }
    frames
}

/// Start-up parameters passed to the server. Anything else a client sends at start-up would be
/// a server setting chosen by the client (`options`, `search_path`, `role`, …), so it is refused.
const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "DateStyle",
    "datestyle",
    "TimeZone",
    "timezone",
    "IntervalStyle",
    "intervalstyle",
    "extra_float_digits",
];

/// A client-facing failure: FATAL error then close.
struct Fatal(Box<ErrorBuilder>);

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        Fatal(Box::new(ErrorBuilder::fatal(
            "08006",
            format!("sod: connection error: {e}"),
        )))
    }
}

impl From<codec::ProtocolError> for Fatal {
    fn from(e: codec::ProtocolError) -> Self {
        Fatal(Box::new(ErrorBuilder::fatal(
            e.sqlstate(),
            format!("sod: {e}"),
        )))
    }
}

fn fatal(code: &str, message: impl Into<String>) -> Fatal {
    Fatal(Box::new(ErrorBuilder::fatal(code, message.into())))
}

/// The client's transport before start-up completes.
pub(crate) enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

/// Serves one client connection to the end.
pub(crate) async fn serve<L>(
    gw: Arc<GatewayShared>,
    layer: L,
    accepted: Accepted,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    L: Layer<PgUpstream>,
    L::Service:
        Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<PgRequest>>>::Future: Send,
{
    let (stream, peer, loopback) = match accepted {
        Accepted::Tcp(s, addr) => {
            let _ = s.set_nodelay(true);
            (Stream::Tcp(s), Peer::Tcp(addr), addr.ip().is_loopback())
        }
        Accepted::Unix(s) => (Stream::Unix(s), Peer::Unix, true),
    };
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        limits: gw.limits,
    };
    let started = tokio::time::timeout(gw.startup_timeout, start(&gw, &mut conn, loopback)).await;
    let params = match started {
        Ok(Ok(Some(params))) => params,
        Ok(Ok(None)) => return,
        Ok(Err(Fatal(err))) => return conn.fail(*err).await,
        Err(_) => {
            return conn
                .fail(ErrorBuilder::fatal("08006", "sod: start-up timed out"))
                .await;
        }
    };
    let token = match tokio::time::timeout(gw.startup_timeout, authenticate(&mut conn)).await {
        Ok(Ok(t)) => t,
        Ok(Err(Fatal(err))) => return conn.fail(*err).await,
        Err(_) => {
            return conn
                .fail(ErrorBuilder::fatal(
                    "08006",
                    "sod: authentication timed out",
                ))
                .await;
        }
    };
    let client_user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.clone());
    let forward_params = params
        .iter()
        .filter(|(k, _)| FORWARDED_PARAMS.contains(&k.as_str()))
        .cloned()
        .collect();
    let session = Arc::new(Session::new(gw.target.clone(), peer, client_user));
    let shared = Arc::new(SessionShared {
        gateway: gw.clone(),
        forward_params,
        link: OnceLock::new(),
        upstream: Mutex::new(None),
        snapshot: Mutex::new(Arc::new(CatalogSnapshot::default_path())),
        registered: Registered::default(),
    });
    let mut service = layer.layer(PgUpstream {
        shared: shared.clone(),
    });
    let connect = Request::connect(
        session.clone(),
        Credential::new(token),
        PgRequest {
            kind: RequestKind::Connect,
        },
    );
    let outcome = match service.ready().await {
        Ok(svc) => svc.call(connect).await,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        let err = match e.downcast_ref::<upstream::UpstreamError>() {
            Some(up) => ErrorBuilder::fatal("08001", format!("sod: {up}")),
            None => stack_error(&e, Severity::Fatal),
        };
        return conn.fail(err).await;
    }
    let upstream = shared
        .upstream
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Some(upstream) = upstream else {
        return conn
            .fail(ErrorBuilder::fatal(
                "XX000",
                "sod: the stack accepted the connection but opened no upstream session",
            ))
            .await;
    };
    tracing::info!(session = %session.id(), principal = ?session.principal().map(|p| &p.id), "session started");
    run(gw, shared, session, service, conn, upstream, &mut shutdown).await;
}

/// A client connection and its read buffer.
struct Conn {
    stream: Stream,
    buf: BytesMut,
    limits: Limits,
}

impl Conn {
    async fn fail(mut self, err: ErrorBuilder) {
        let mut out = BytesMut::new();
        err.encode(&mut out);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }

    async fn read_startup(&mut self) -> Result<Startup, Fatal> {
        loop {
            if let Some(s) = codec::decode_startup(&mut self.buf, &self.limits)? {
                return Ok(s);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(fatal(
                    "08006",
                    "sod: the client closed the connection during start-up",
                ));
            }
        }
    }

    async fn read_frame(&mut self) -> Result<Option<FrontendFrame>, Fatal> {
        loop {
            if let Some(f) = codec::decode_frontend(&mut self.buf, &self.limits)? {
                return Ok(Some(f));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Negotiates TLS and reads the start-up packet. `None` when the connection was a cancel
/// request (already handled).
async fn start(
    gw: &GatewayShared,
    conn: &mut Conn,
    loopback: bool,
) -> Result<Option<Vec<(String, String)>>, Fatal> {
    let mut tls_done = false;
    loop {
        match conn.read_startup().await? {
            Startup::Ssl if tls_done => {
                return Err(fatal("08P01", "sod: SSLRequest after TLS was established"));
            }
            Startup::Ssl => {
                let Some(acceptor) = &gw.tls else {
                    conn.stream.write_all(b"N").await?;
                    continue;
                };
                // Bytes sent after SSLRequest but before the handshake would be read as if
                // they came over TLS: refuse them (CVE-2021-23214).
                if !conn.buf.is_empty() {
                    return Err(fatal(
                        "08P01",
                        "sod: received unencrypted data after SSLRequest",
                    ));
                }
                conn.stream.write_all(b"S").await?;
                let Stream::Tcp(tcp) =
                    std::mem::replace(&mut conn.stream, Stream::Unix(placeholder_unix()?))
                else {
                    return Err(fatal("08P01", "sod: TLS is only offered over TCP"));
                };
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| fatal("08P01", format!("sod: TLS handshake failed: {e}")))?;
                conn.stream = Stream::TlsServer(Box::new(tls));
                tls_done = true;
            }
            Startup::GssEnc => conn.stream.write_all(b"N").await?,
            Startup::Cancel { pid, key } => {
                if let Some(target) = gw.cancels.get(pid, &key) {
                    upstream::cancel(target, gw.limits).await;
                }
                return Ok(None);
            }
            Startup::Startup { version, params } => {
                if !tls_done
                    && (gw.plaintext == Plaintext::Never
                        || (gw.plaintext == Plaintext::LoopbackOnly && !loopback))
                {
                    return Err(fatal(
                        "28000",
                        "sod: this gateway requires TLS for connections from this address (sslmode=require)",
                    ));
                }
                return check_params(gw, conn, version, params).await.map(Some);
            }
        }
    }
}

/// A throw-away value to move the TCP stream out of `Conn` for the TLS handshake.
fn placeholder_unix() -> Result<tokio::net::UnixStream, Fatal> {
    let (a, _b) = tokio::net::UnixStream::pair()?;
    Ok(a)
}

async fn check_params(
    gw: &GatewayShared,
    conn: &mut Conn,
    version: u32,
    params: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, Fatal> {
    let mut unknown_protocol_options = Vec::new();
    let mut seen_user = false;
    for (k, v) in &params {
        match k.as_str() {
            "user" => seen_user = !v.is_empty(),
            "database" => {
                if !v.is_empty() && *v != gw.upstream.database {
                    return Err(fatal(
                        "3D000",
                        format!(
                            "sod: database \"{v}\" is not served by this gateway (it serves \"{}\")",
                            gw.upstream.database
                        ),
                    ));
                }
            }
            "client_encoding" => {
                if !v.eq_ignore_ascii_case("UTF8")
                    && !v.eq_ignore_ascii_case("UTF-8")
                    && !v.eq_ignore_ascii_case("auto")
                {
                    return Err(fatal(
                        "22023",
                        format!(
                            "sod: client_encoding \"{v}\" is not supported; the gateway speaks UTF8"
                        ),
                    ));
                }
            }
            "replication" => {
                return Err(fatal(
                    "0A000",
                    "sod: replication connections are not supported",
                ));
            }
            name if name.starts_with("_pq_.") => unknown_protocol_options.push(name.to_owned()),
            name if FORWARDED_PARAMS.contains(&name) => {}
            name => {
                return Err(fatal(
                    "0A000",
                    format!(
                        "sod: start-up parameter \"{name}\" is not accepted by the gateway (it would change server settings)"
                    ),
                ));
            }
        }
    }
    if !seen_user {
        return Err(fatal(
            "28000",
            "sod: no user name specified in the start-up packet",
        ));
    }
    let minor = version & 0xffff;
    if minor > 0 || !unknown_protocol_options.is_empty() {
        let mut out = BytesMut::new();
        let names: Vec<&str> = unknown_protocol_options
            .iter()
            .map(String::as_str)
            .collect();
        codec::backend::negotiate_protocol_version(&mut out, 0, &names)?;
        conn.stream.write_all(&out).await?;
    }
    Ok(params)
}

/// Asks for a cleartext password and returns it: an OIDC token or a capability.
async fn authenticate(conn: &mut Conn) -> Result<String, Fatal> {
    let mut out = BytesMut::new();
    codec::backend::authentication_cleartext_password(&mut out);
    conn.stream.write_all(&out).await?;
    let Some(frame) = conn.read_frame().await? else {
        return Err(fatal(
            "08006",
            "sod: the client closed the connection during authentication",
        ));
    };
    match frame.parse()? {
        FrontendMessage::Password(p) => {
            let token = p.password_str()?;
            if token.is_empty() {
                return Err(fatal(
                    "28000",
                    "sod: empty password: present an OIDC token or a sod capability as the password",
                ));
            }
            Ok(token.to_owned())
        }
        _ => Err(fatal("08P01", "sod: expected a password message")),
    }
}

/// A statement the client prepared with `Parse`.
#[derive(Clone)]
struct Prepared {
    upstream_name: String,
    analysis: Arc<Analysis>,
}

/// A portal the client bound with `Bind`.
#[derive(Clone)]
struct Portal {
    /// The name the server knows it by (generated, like statement names: a cursor the client
    /// declares in SQL can never be mistaken for a portal the gateway analysed).
    upstream_name: String,
    statement: Prepared,
    client_statement: String,
    params: Vec<Option<Bytes>>,
    result_formats: Vec<i16>,
    /// The `Bind` for the server. It is held until an `Execute` of the portal passes: the
    /// server plans a statement at `Bind` (evaluating immutable functions, domain checks), so
    /// binding is not harmless.
    bind: Bytes,
    /// Whether the server has the portal yet.
    bound: bool,
}

/// The driver's per-session bookkeeping.
/// A forwarded `DEALLOCATE name` (`Some`) or `DEALLOCATE ALL`/`DISCARD` (`None`), and whether
/// the server carried it out, once known.
struct PendingRemoval {
    name: Option<String>,
    succeeded: Arc<OnceLock<bool>>,
}

struct Driver<S> {
    gw: Arc<GatewayShared>,
    shared: Arc<SessionShared>,
    session: Arc<Session>,
    service: S,
    link: Arc<Link>,
    /// The write half of the upstream connection: the driver writes what the link queued.
    upstream: crate::net::WriteHalf,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// SQL-level `PREPARE name AS …`: name → what it does.
    sql_prepared: HashMap<String, Arc<Analysis>>,
    /// Forwarded `DEALLOCATE`/`DISCARD`s whose outcome is not known yet. A name leaves
    /// `sql_prepared` only once the server confirms: until then (or if it failed) the name
    /// is still judged as what it was, and preparing it again is refused, so the gateway
    /// never forgets a statement the server still has.
    pending_removals: Vec<PendingRemoval>,
    /// Statements whose row description the router has recorded.
    described: std::collections::HashSet<DescKey>,
    /// Prefix of every name the gateway sends upstream: random, so a client cannot aim at it.
    prefix: String,
    counter: u64,
    /// After a refusal in the extended protocol: drop client messages until `Sync`.
    skipping: bool,
    /// The client changed search_path: unqualified names can no longer be resolved.
    search_path_changed: bool,
    /// A statement that changes the catalog went through, at this idle epoch of the link: reload
    /// the snapshot (once its transaction has ended) before the next unqualified name is
    /// resolved.
    ddl_epoch: Option<u64>,
}

async fn run<S>(
    gw: Arc<GatewayShared>,
    shared: Arc<SessionShared>,
    session: Arc<Session>,
    service: S,
    conn: Conn,
    upstream: Upstream,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    let link = Arc::new(Link::new());
    let _ = shared.link.set(link.clone());
    let Conn {
        stream: client,
        buf: mut client_buf,
        limits,
    } = conn;
    let Upstream {
        stream: up_stream,
        read_buf: up_buf,
        parameters,
        key,
        status,
        ..
    } = upstream;

    // The client's greeting: AuthenticationOk, the server's parameters, the gateway's cancel
    // key, ReadyForQuery.
    let cancel_id = key.map(|(pid, key)| {
        gw.cancels.insert(CancelTarget {
            config: gw.upstream.clone(),
            pid,
            key,
        })
    });
    let mut hello = BytesMut::new();
    codec::backend::authentication_ok(&mut hello);
    for p in &parameters {
        p.encode_into(&mut hello);
    }
    if let Some((pid, key)) = cancel_id {
        let _ = codec::backend::backend_key_data(&mut hello, pid, &key);
    }
    codec::backend::ready_for_query(&mut hello, status);

    let (mut client_read, mut client_write) = client.split();
    let (mut up_read, up_write) = up_stream.split();
    if client_write.write_all(&hello).await.is_err() {
        return;
    }

    // The session is one task running two loops: the router (reads the server, routes each
    // message to its slot, writes the client) and the driver (reads the client, runs the
    // service stack, queues upstream). In one task they never wake each other across threads,
    // and a statement waiting in the stack (for an approval) does not hold back the responses
    // of those before it: every wake-up polls both.
    let router_link = link.clone();
    let router = async move {
        let mut rbuf = up_buf;
        let mut out = BytesMut::with_capacity(16 * 1024);
        let backend_limits = Limits {
            max_message: limits.max_message.max(256 * 1024 * 1024),
            ..limits
        };
        loop {
            let wake = router_link.router_wakeup();
            let mut frames = Vec::new();
            loop {
                match codec::decode_backend(&mut rbuf, &backend_limits) {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        router_link.close(format!("the server broke the protocol: {e}"));
                        break;
                    }
                }
            }
            router_link.route(frames, &mut out);
            if !out.is_empty() {
                if client_write.write_all(&out).await.is_err() {
                    router_link.close("the client went away");
                    break;
                }
                out.clear();
            }
            if router_link.closed().is_some() {
                if let Some(why) = router_link.broken() {
                    let mut err = BytesMut::new();
                    ErrorBuilder::fatal("08006", format!("sod: {why}")).encode(&mut err);
                    let _ = client_write.write_all(&err).await;
                }
                let _ = client_write.shutdown().await;
                break;
            }
            if router_link.saturated() {
                wake.await;
                continue;
            }
            tokio::select! {
                n = up_read.read_buf(&mut rbuf) => match n {
                    Ok(0) | Err(_) => router_link.upstream_closed(),
                    Ok(_) => {}
                },
                _ = wake => {}
            }
        }
    };

    let mut driver = Driver {
        gw: gw.clone(),
        shared,
        session,
        service,
        link: link.clone(),
        upstream: up_write,
        statements: HashMap::new(),
        portals: HashMap::new(),
        sql_prepared: HashMap::new(),
        pending_removals: Vec::new(),
        described: Default::default(),
        prefix: format!("{RESERVED_PREFIX}{}:", hex::encode(&hex::random::<8>())),
        counter: 0,
        skipping: false,
        search_path_changed: false,
        ddl_epoch: None,
    };
    let mut conn = ClientReader {
        read: &mut client_read,
        buf: &mut client_buf,
        limits,
    };
    let driving = async {
        loop {
            // Handle every complete message already received; only when none is left, write what
            // they queued upstream (one write for a whole pipeline) and wait for the client.
            let next = match conn.buffered() {
                Ok(Some(frame)) => Ok(Some(frame)),
                Ok(None) => match driver.flush().await {
                    Err(()) => break,
                    Ok(()) => tokio::select! {
                        r = conn.fill(gw.idle_timeout, &link) => r.map(|()| None),
                        _ = shutdown.changed() => Err(Some(fatal("57P01", "sod: terminating connection due to administrator command"))),
                    },
                },
                Err(f) => Err(f),
            };
            let result = match next {
                Ok(Some(frame)) => driver.handle(frame).await,
                Ok(None) => Ok(()),
                Err(f) => Err(f),
            };
            match result {
                Ok(()) => {}
                Err(None) => break,
                Err(Some(Fatal(err))) => {
                    link.local(frame_of(&err));
                    break;
                }
            }
            if let Some(why) = link.closed() {
                tracing::debug!(session = %driver.session.id(), %why, "link closed");
                break;
            }
        }
        let mut bye = BytesMut::new();
        frontend::terminate(&mut bye);
        link.ending();
        let _ = link.send_unanswered(&bye);
        let _ = driver.flush().await;
        let _ = driver.upstream.shutdown().await;
        driver.session.id()
    };
    tokio::pin!(router, driving);
    let mut routed = false;
    let session_id = loop {
        tokio::select! {
            () = &mut router, if !routed => routed = true,
            id = &mut driving => break id,
        }
    };
    // The server answers everything sent before Terminate, then closes: let the router deliver
    // those answers (a pipelining client may have sent Terminate right behind its queries).
    if !routed
        && tokio::time::timeout(Duration::from_secs(5), &mut router)
            .await
            .is_err()
    {
        link.finish();
        router.await;
    }
    if let Some(id) = cancel_id {
        gw.cancels.remove(id);
    }
    tracing::info!(session = %session_id, "session ended");
}

/// Polls `fut` once: its output if it is ready at once, `None` if it would wait (`fut` is then
/// dropped: pass `Pin<&mut F>` to keep polling the same future afterwards).
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// An error as a frame for [`Link::local`].
fn frame_of(err: &ErrorBuilder) -> Vec<BackendFrame> {
    frames_of(|o| {
        err.encode(o);
        Ok(())
    })
}

struct ClientReader<'a, R> {
    read: &'a mut R,
    buf: &'a mut BytesMut,
    limits: Limits,
}

impl<R: tokio::io::AsyncRead + Unpin> ClientReader<'_, R> {
    /// A complete message already in the buffer, if any.
    fn buffered(&mut self) -> Result<Option<FrontendFrame>, Option<Fatal>> {
        codec::decode_frontend(self.buf, &self.limits).map_err(|e| Some(Fatal::from(e)))
    }

    /// Reads more from the client. `Err(None)` when the client left. An idle client (nothing
    /// in flight, nothing received for the idle timeout) is disconnected.
    async fn fill(&mut self, idle: Option<Duration>, link: &Link) -> Result<(), Option<Fatal>> {
        loop {
            let read = self.read.read_buf(self.buf);
            let n = match idle {
                Some(limit) => match tokio::time::timeout(limit, read).await {
                    Ok(n) => n.map_err(|e| Some(Fatal::from(e)))?,
                    Err(_) if link.busy() => continue,
                    Err(_) => {
                        return Err(Some(fatal(
                            "57P05",
                            "sod: terminating connection due to idle-session timeout",
                        )));
                    }
                },
                None => read.await.map_err(|e| Some(Fatal::from(e)))?,
            };
            return if n == 0 { Err(None) } else { Ok(()) };
        }
    }
}

type Outcome = Result<(), Option<Fatal>>;

impl<S> Driver<S>
where
    S: Service<Request<PgRequest>, Response = PgResponse, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    /// Writes everything queued for upstream and lets the router deliver the gateway's own
    /// answers. `Err` when the connection broke.
    async fn flush(&mut self) -> Result<(), ()> {
        self.link.deliver_local();
        let Some(bytes) = self.link.take_outgoing() else {
            return Ok(());
        };
        if let Err(e) = self.upstream.write_all(&bytes).await {
            self.link
                .close(format!("writing to the server failed: {e}"));
            return Err(());
        }
        Ok(())
    }

    fn fresh_name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}{kind}{}", self.prefix, self.counter)
    }

    fn send(&self, messages: Vec<Outgoing<'_>>) -> Outcome {
        self.link.send(messages).map(drop).map_err(|_| None)
    }

    fn encode(
        f: impl FnOnce(&mut BytesMut) -> Result<(), codec::ProtocolError>,
    ) -> Result<Bytes, Option<Fatal>> {
        let mut out = BytesMut::new();
        f(&mut out).map_err(|e| Some(Fatal::from(e)))?;
        Ok(out.freeze())
    }

    async fn handle(&mut self, frame: FrontendFrame) -> Outcome {
        let t = frame.tag();
        if self.skipping && t != tag::SYNC && t != tag::TERMINATE {
            // After a refusal in the extended protocol, PostgreSQL ignores everything to Sync.
            return Ok(());
        }
        let msg = frame.parse().map_err(|e| Some(Fatal::from(e)))?;
        match msg {
            FrontendMessage::Query { sql } => self.query(sql, &frame).await,
            FrontendMessage::Parse {
                name,
                sql,
                param_types,
            } => {
                let types: Vec<u32> = param_types.iter().collect();
                self.parse(name, sql, &types)
            }
            FrontendMessage::Bind(b) => {
                let params: Vec<Option<Bytes>> = b
                    .params
                    .iter()
                    .map(|v| v.map(Bytes::copy_from_slice))
                    .collect();
                let formats: Vec<i16> = b.param_formats.iter().collect();
                let results: Vec<i16> = b.result_formats.iter().collect();
                self.bind(b.portal, b.statement, &formats, params, results)
            }
            FrontendMessage::Describe { target, name } => self.describe(target, name),
            FrontendMessage::Execute { portal, max_rows } => self.execute(portal, max_rows).await,
            FrontendMessage::Close { target, name } => self.close(target, name),
            FrontendMessage::Sync => {
                self.skipping = false;
                self.send(vec![Outgoing {
                    bytes: frame.raw(),
                    expect: Expect::Sync,
                    sink: Sink::Client,
                    record: None,
                }])
            }
            FrontendMessage::Flush => {
                self.link.request_flush();
                self.link.send_unanswered(frame.raw()).map_err(|_| None)
            }
            FrontendMessage::CopyData(_) => {
                self.link.send_unanswered(frame.raw()).map_err(|_| None)
            }
            FrontendMessage::CopyDone | FrontendMessage::CopyFail { .. } => {
                self.send(vec![Outgoing {
                    bytes: frame.raw(),
                    expect: Expect::CopyEnd,
                    sink: Sink::Client,
                    record: None,
                }])
            }
            FrontendMessage::FunctionCall(call) => {
                let op = Operation::not_understood(
                    self.gw.target.clone(),
                    format!("FUNCTION CALL {}", call.oid),
                    "fastpath function calls name functions by OID, which the gateway does not resolve",
                );
                self.operation(
                    op,
                    vec![(frame.raw().clone(), Expect::FunctionCall)],
                    ResultShape::default(),
                    true,
                    None,
                )
                .await
                .map(drop)
            }
            FrontendMessage::Terminate => Err(None),
            FrontendMessage::Password(_) => {
                Err(Some(fatal("08P01", "sod: unexpected password message")))
            }
        }
    }

    /// After DDL went through, reloads which relations exist before resolving unqualified names
    /// again: once every response is in and no transaction is open (so the DDL is committed),
    /// through a short-lived side connection. Inside the transaction that ran the DDL, names
    /// must be qualified.
    /// Brings the session's catalog snapshot up to date before a statement is judged: after
    /// DDL in this session, reloaded once the server has left the transaction that made it;
    /// otherwise the gateway's current snapshot, reloaded (once for all sessions) when it
    /// expired or was invalidated — masking must not go on with a view or table name that
    /// changed (invariant I6).
    async fn refresh_catalog(&mut self, analysis: &Analysis) -> Result<(), Refusal> {
        let refuse = |why: String| Refusal::new(RefusalCode::CapabilityScope, why);
        let snapshot = if let Some(ddl_epoch) = self.ddl_epoch {
            if analysis.objects().iter().all(|o| o.schema.is_some()) {
                return Ok(());
            }
            // Responses to extended-protocol messages wait in the server until Sync or Flush.
            let mut flush = BytesMut::new();
            frontend::flush(&mut flush);
            if self.link.send_unanswered(&flush).is_err() || self.flush().await.is_err() {
                return Err(refuse("the upstream connection is closed".into()));
            }
            let epoch = self
                .link
                .quiesce()
                .await
                .map_err(|e| refuse(e.to_string()))?;
            if epoch <= ddl_epoch {
                // The server has not been idle since the DDL: its transaction is still open,
                // and a side connection would not see the change.
                return Err(refuse(
                    "the catalog changed in this transaction: qualify table names with their schema until it ends".into(),
                ));
            }
            let snapshot = Arc::new(
                load_catalog(&self.gw)
                    .await
                    .map_err(|e| refuse(format!("cannot reload the catalog after DDL: {e}")))?,
            );
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
                .map_err(|e| refuse(format!("cannot reload the catalog: {e}")))?
        };
        let mut current = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&current, &snapshot) {
            *current = snapshot;
        }
        Ok(())
    }

    /// Object names as policy sees them.
    fn resolve(&self, analysis: &Analysis) -> Result<Vec<String>, Refusal> {
        self.resolve_objects(&analysis.objects())
    }

    fn resolve_objects(&self, objects: &[ObjectName]) -> Result<Vec<String>, Refusal> {
        self.resolve_with(objects, self.search_path_changed)
    }

    /// Resolves `objects`; unqualified names are refused once the search path may have changed
    /// (`path_changed`), since the gateway can no longer tell where they point.
    fn resolve_with(
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
                        RefusalCode::CapabilityScope,
                        format!(
                            "search_path was changed in this session, so `{}` cannot be resolved; qualify it with its schema",
                            o.name
                        ),
                    ));
                }
                Ok(snapshot.resolve(o))
            })
            .collect()
    }

    /// The operation for an analysis: kind (with SQL-level EXECUTE resolved), normalized text,
    /// resolved objects, bound parameters. A batch of several statements becomes an operation
    /// whose parts are the statements, so policy and capability judge each one.
    fn operation_for(
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
        let mut parts = Vec::with_capacity(analysis.statements.len());
        // A statement that changes the search path changes what later statements of the same
        // batch refer to.
        let mut path_changed = self.search_path_changed;
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
            path_changed |= stmt.effect == SessionEffect::SetSearchPath;
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
    fn removal_outcome(analysis: &Analysis) -> Option<Arc<OnceLock<bool>>> {
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
    fn settle_removals(&mut self) {
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
    fn after_forward(&mut self, analysis: &Analysis, removal: Option<Arc<OnceLock<bool>>>) {
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
                SessionEffect::SetSearchPath => self.search_path_changed = true,
                SessionEffect::Ddl => {
                    self.gw.catalog.invalidate();
                    self.ddl_epoch = Some(self.link.idle_epoch());
                }
                _ => {}
            }
        }
    }

    async fn query(&mut self, sql: &str, frame: &FrontendFrame) -> Outcome {
        let analysis = self.gw.analyzer.analyze(sql);
        self.settle_removals();
        // A second PREPARE of a name the gateway knows would fail in PostgreSQL and leave the
        // first in place; refuse it here so both sides agree on what the name means.
        for stmt in &analysis.statements {
            if let SessionEffect::Prepare { name } = &stmt.effect
                && self.sql_prepared.contains_key(name)
            {
                let err = ErrorBuilder::error(
                    "42P05",
                    format!("prepared statement \"{name}\" already exists"),
                );
                return self.inject(encoded(&err), true);
            }
        }
        let op = match self.refresh_catalog(&analysis).await {
            Ok(()) => self.operation_for(&analysis, &[]),
            Err(r) => Err(r),
        };
        let op = match op {
            Ok(op) => op,
            Err(r) => return self.inject(encoded(&refusal_error(&r, Severity::Error)), true),
        };
        let removal = Self::removal_outcome(&analysis);
        let forwarded = self
            .operation(
                op,
                vec![(frame.raw().clone(), Expect::Query)],
                ResultShape {
                    analysis: Some(analysis.clone()),
                    ..ResultShape::default()
                },
                true,
                removal.clone(),
            )
            .await?;
        if forwarded {
            self.after_forward(&analysis, removal);
        }
        Ok(())
    }

    fn parse(&mut self, name: &str, sql: &str, types: &[u32]) -> Outcome {
        if let Some(oid) = types.iter().find(|&&oid| oid >= FIRST_NORMAL_OBJECT_ID) {
            let refusal = Refusal::new(
                RefusalCode::PolicyDenied,
                format!(
                    "parameter type {oid} is not a built-in type; user-defined types (domains) run code when a value is bound"
                ),
            )
            .with_rule("sod-builtin-parameter-types");
            return self.inject(encoded(&refusal_error(&refusal, Severity::Error)), false);
        }
        if !name.is_empty() && self.statements.contains_key(name) {
            let err = ErrorBuilder::error(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            );
            return self.inject(encoded(&err), false);
        }
        let analysis = self.gw.analyzer.analyze(sql);
        let upstream_name = self.fresh_name("s");
        let mut messages = Vec::new();
        let close_old;
        if name.is_empty()
            && let Some(old) = self.statements.remove("")
        {
            close_old = Self::encode(|o| {
                frontend::close(o, DescribeTarget::Statement, &old.upstream_name)
            })?;
            messages.push(Outgoing {
                bytes: &close_old,
                expect: Expect::Close,
                sink: Sink::Swallow,
                record: None,
            });
        }
        let parse = Self::encode(|o| frontend::parse(o, &upstream_name, sql, types))?;
        messages.push(Outgoing {
            bytes: &parse,
            expect: Expect::Parse,
            sink: Sink::Client,
            record: None,
        });
        self.send(messages)?;
        self.described.remove(&DescKey::Statement(name.to_owned()));
        self.statements.insert(
            name.to_owned(),
            Prepared {
                upstream_name,
                analysis,
            },
        );
        Ok(())
    }

    fn bind(
        &mut self,
        portal: &str,
        statement: &str,
        formats: &[i16],
        params: Vec<Option<Bytes>>,
        results: Vec<i16>,
    ) -> Outcome {
        let Some(prepared) = self.statements.get(statement).cloned() else {
            let err = ErrorBuilder::error(
                "26000",
                format!("prepared statement \"{statement}\" does not exist"),
            );
            return self.inject(encoded(&err), false);
        };
        let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
        let upstream_name = self.fresh_name("p");
        if let Some(old) = self.portals.remove(portal)
            && old.bound
        {
            // Binding a name again replaces its portal.
            let close =
                Self::encode(|o| frontend::close(o, DescribeTarget::Portal, &old.upstream_name))?;
            self.send(vec![Outgoing {
                bytes: &close,
                expect: Expect::Close,
                sink: Sink::Swallow,
                record: None,
            }])?;
        }
        let bind = Self::encode(|o| {
            frontend::bind(
                o,
                &upstream_name,
                &prepared.upstream_name,
                formats,
                &values,
                &results,
            )
        })?;
        self.link.local_extended(frames_of(|o| {
            codec::backend::bind_complete(o);
            Ok(())
        }));
        self.described.remove(&DescKey::Portal(portal.to_owned()));
        self.portals.insert(
            portal.to_owned(),
            Portal {
                upstream_name,
                statement: prepared,
                client_statement: statement.to_owned(),
                params,
                result_formats: results,
                bind,
                bound: false,
            },
        );
        Ok(())
    }

    fn describe(&mut self, target: DescribeTarget, name: &str) -> Outcome {
        let (bytes, expect, key) = match target {
            DescribeTarget::Statement => {
                let Some(prepared) = self.statements.get(name) else {
                    let err = ErrorBuilder::error(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    );
                    return self.inject(encoded(&err), false);
                };
                let upstream_name = prepared.upstream_name.clone();
                (
                    Self::encode(|o| frontend::describe(o, target, &upstream_name))?,
                    Expect::DescribeStatement,
                    DescKey::Statement(name.to_owned()),
                )
            }
            DescribeTarget::Portal => {
                let Some(portal) = self.portals.get(name) else {
                    let err =
                        ErrorBuilder::error("34000", format!("portal \"{name}\" does not exist"));
                    return self.inject(encoded(&err), false);
                };
                let key = DescKey::Portal(name.to_owned());
                if !portal.bound {
                    // The server does not have the portal yet: describe its statement and give
                    // the answer the portal's result formats.
                    let bytes = Self::encode(|o| {
                        frontend::describe(
                            o,
                            DescribeTarget::Statement,
                            &portal.statement.upstream_name,
                        )
                    })?;
                    let formats = portal.result_formats.clone();
                    self.send(vec![Outgoing {
                        bytes: &bytes,
                        expect: Expect::DescribeStatement,
                        sink: Sink::PortalDescription(formats),
                        record: Some(key.clone()),
                    }])?;
                    self.described.insert(key);
                    return Ok(());
                }
                let upstream_name = portal.upstream_name.clone();
                (
                    Self::encode(|o| frontend::describe(o, target, &upstream_name))?,
                    Expect::DescribePortal,
                    key,
                )
            }
        };
        self.send(vec![Outgoing {
            bytes: &bytes,
            expect,
            sink: Sink::Client,
            record: Some(key.clone()),
        }])?;
        self.described.insert(key);
        Ok(())
    }

    fn close(&mut self, target: DescribeTarget, name: &str) -> Outcome {
        if target == DescribeTarget::Portal && !self.portals.get(name).is_some_and(|p| p.bound) {
            // Never sent to the server (or never existed, which PostgreSQL also answers with
            // CloseComplete).
            self.portals.remove(name);
            self.link.local_extended(frames_of(|o| {
                codec::backend::close_complete(o);
                Ok(())
            }));
            return Ok(());
        }
        let upstream_name = match target {
            DescribeTarget::Statement => match self.statements.remove(name) {
                Some(p) => p.upstream_name,
                // PostgreSQL answers CloseComplete for a name that does not exist; so does a
                // fresh name no one has prepared.
                None => self.fresh_name("none"),
            },
            DescribeTarget::Portal => match self.portals.remove(name) {
                Some(p) => p.upstream_name,
                None => self.fresh_name("none"),
            },
        };
        let bytes = Self::encode(|o| frontend::close(o, target, &upstream_name))?;
        self.send(vec![Outgoing {
            bytes: &bytes,
            expect: Expect::Close,
            sink: Sink::Client,
            record: None,
        }])
    }

    async fn execute(&mut self, portal_name: &str, max_rows: i32) -> Outcome {
        let Some(portal) = self.portals.get(portal_name).cloned() else {
            let err =
                ErrorBuilder::error("34000", format!("portal \"{portal_name}\" does not exist"));
            return self.inject(encoded(&err), false);
        };
        self.settle_removals();
        let op = match self.refresh_catalog(&portal.statement.analysis).await {
            Ok(()) => self.operation_for(&portal.statement.analysis, &portal.params),
            Err(r) => Err(r),
        };
        let op = match op {
            Ok(op) => op,
            Err(r) => return self.inject(encoded(&refusal_error(&r, Severity::Error)), false),
        };
        let mut messages = Vec::new();
        if !portal.bound {
            messages.push((portal.bind.clone(), Expect::Bind));
        }
        let portal_key = DescKey::Portal(portal_name.to_owned());
        let statement_key = DescKey::Statement(portal.client_statement.clone());
        let describes = if self.described.contains(&portal_key) {
            Some(portal_key)
        } else if self.described.contains(&statement_key) && portal.result_formats.len() <= 1 {
            Some(statement_key)
        } else {
            // Nobody described this portal: ask, so masking knows the columns.
            messages.push((
                Self::encode(|o| {
                    frontend::describe(o, DescribeTarget::Portal, &portal.upstream_name)
                })?,
                Expect::DescribePortal,
            ));
            self.described.insert(portal_key.clone());
            Some(portal_key)
        };
        messages.push((
            Self::encode(|o| frontend::execute(o, &portal.upstream_name, max_rows))?,
            Expect::Execute,
        ));
        let analysis = portal.statement.analysis.clone();
        let was_bound = portal.bound;
        let removal = Self::removal_outcome(&analysis);
        let forwarded = self
            .operation(
                op,
                messages,
                ResultShape {
                    describes,
                    result_formats: portal.result_formats.clone(),
                    analysis: Some(analysis.clone()),
                },
                false,
                removal.clone(),
            )
            .await?;
        if forwarded {
            if !was_bound && let Some(p) = self.portals.get_mut(portal_name) {
                p.bound = true;
            }
            self.after_forward(&analysis, removal);
        }
        Ok(())
    }

    /// Runs an operation through the stack. Allowed: the innermost service has queued the
    /// messages; install the response (`Ok(true)`: forwarded). Refused: make the server fail
    /// in its place (`Ok(false)`: the session's bookkeeping must not change).
    async fn operation(
        &mut self,
        op: Operation,
        messages: Vec<(Bytes, Expect)>,
        shape: ResultShape,
        simple: bool,
        removal: Option<Arc<OnceLock<bool>>>,
    ) -> Result<bool, Option<Fatal>> {
        let req = Request::new(
            self.session.clone(),
            op,
            PgRequest {
                kind: RequestKind::Forward { messages, shape },
            },
        );
        // A stack that decides at once (the usual case) adds its messages to what is queued, for
        // one write. One that waits (for an approval, a rate limit) must not hold back what
        // earlier messages queued: send that first.
        let result = match poll_once(self.service.ready()).await {
            Some(Ok(svc)) => Ok(svc.call(req)),
            Some(Err(e)) => Err(e),
            None => {
                self.flush().await.map_err(|()| None)?;
                self.service.ready().await.map(|svc| svc.call(req))
            }
        };
        let result = match result {
            Ok(call) => {
                let mut call = std::pin::pin!(call);
                match poll_once(call.as_mut()).await {
                    Some(r) => r,
                    None => {
                        self.flush().await.map_err(|()| None)?;
                        call.await
                    }
                }
            }
            Err(e) => Err(e),
        };
        let registered = self.shared.registered.take();
        match result {
            Ok(PgResponse {
                inner: ResponseInner::Slot { id, mut processor },
            }) => {
                if let Some(succeeded) = removal {
                    processor.observe(Box::new(move |o: &crate::service::Outcome| {
                        let _ = succeeded.set(o.error_code.is_none() && !o.skipped);
                    }));
                }
                if let Some(Sink::Process(mut p)) = self.link.install(id, Sink::Process(processor))
                {
                    p.finish(true);
                }
                Ok(true)
            }
            Ok(PgResponse {
                inner: ResponseInner::Connected,
            }) => Err(Some(fatal(
                "XX000",
                "sod: the stack answered an operation with a connection",
            ))),
            Err(e) if registered.is_some() => {
                // Queued by the innermost service, then failed further up the stack: it must
                // not reach the server (nothing queued has been written yet), and client and
                // server no longer agree on what happened, so end the session.
                self.link.discard_unwritten();
                Err(Some(Fatal(Box::new(stack_error(&e, Severity::Fatal)))))
            }
            Err(e) => self
                .inject(encoded(&stack_error(&e, Severity::Error)), simple)
                .map(|()| false),
        }
    }

    /// Answers a refused message the way PostgreSQL answers an error: the server is made to
    /// fail (`Execute` of a portal that cannot exist) and the client sees `error` in place of
    /// the server's error. For a simple query a `Sync` follows (its `ReadyForQuery` carries
    /// the right transaction status); in the extended protocol the client's own `Sync` will,
    /// and messages until then are dropped.
    fn inject(&mut self, error: Bytes, simple: bool) -> Outcome {
        // A Parse of text that is not SQL fails whatever the session holds (a cursor the client
        // declared under any name cannot turn it into rows). The gateway never uses the
        // server's unnamed statement, so replacing it harms nothing.
        let parse = Self::encode(|o| frontend::parse(o, "", REFUSAL_TEXT, &[]))?;
        let mut messages = vec![Outgoing {
            bytes: &parse,
            expect: Expect::Parse,
            sink: Sink::Substitute(error),
            record: None,
        }];
        let mut sync = BytesMut::new();
        if simple {
            frontend::sync(&mut sync);
            messages.push(Outgoing {
                bytes: &sync,
                expect: Expect::Sync,
                sink: Sink::Client,
                record: None,
            });
        } else {
            self.skipping = true;
        }
        self.send(messages)
    }
}

/// The settings a gateway's sessions share; see [`crate::GatewayBuilder`].
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) credentials: Arc<dyn CredentialSource>,
    pub(crate) analyzer: Arc<CachedAnalyzer>,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) plaintext: Plaintext,
    pub(crate) startup_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
}

impl From<Settings> for GatewayShared {
    fn from(s: Settings) -> Self {
        GatewayShared {
            target: s.target,
            upstream: s.upstream,
            credentials: s.credentials,
            analyzer: s.analyzer,
            catalog: Catalog::new(Duration::from_secs(60)),
            cancels: CancelRegistry::default(),
            limits: s.limits,
            tls: s.tls.map(tokio_rustls::TlsAcceptor::from),
            plaintext: s.plaintext,
            startup_timeout: s.startup_timeout,
            idle_timeout: s.idle_timeout,
        }
    }
}
