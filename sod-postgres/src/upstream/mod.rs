//! The gateway as a client of the real PostgreSQL server: connect (TCP or Unix socket), TLS with
//! certificate verification, authenticate (SCRAM-SHA-256, MD5, cleartext, trust) with the
//! executor's credentials, and read the session's start-up state.

mod scram;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use sod_core::Secret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UnixStream};

use crate::codec::{self, Auth, BackendFrame, BackendMessage, Limits, TransactionStatus};
use crate::credentials::{CredentialSource, UpstreamCredentials};
use crate::net::Stream;

/// Where the real server listens.
#[derive(Clone, Debug)]
pub enum UpstreamAddress {
    /// A TCP host name or address and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket: the directory holding `.s.PGSQL.<port>`, and the port.
    Unix {
        /// The socket directory.
        dir: PathBuf,
        /// The port (names the socket file).
        port: u16,
    },
}

/// TLS to the real server.
#[derive(Clone)]
pub enum UpstreamTls {
    /// Plain TCP (or a Unix socket).
    Disable,
    /// TLS, verifying the server's certificate against `config`'s roots and `server_name`
    /// (libpq's `sslmode=verify-full`). The connection fails if the server declines TLS.
    VerifyFull {
        /// Client configuration with the trusted roots.
        config: Arc<rustls::ClientConfig>,
        /// The name the certificate must carry.
        server_name: ServerName<'static>,
    },
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamTls::Disable => f.write_str("Disable"),
            UpstreamTls::VerifyFull { server_name, .. } => {
                write!(f, "VerifyFull({})", server_name.to_str())
            }
        }
    }
}

/// How to reach and log in to the real server.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Where it listens.
    pub address: UpstreamAddress,
    /// The database to open.
    pub database: String,
    /// TLS settings (TCP only).
    pub tls: UpstreamTls,
    /// Bound on connecting, TLS and authentication together.
    pub connect_timeout: Duration,
    /// Send the password when the server asks for it in cleartext over plain TCP (default
    /// `false`: refused — anyone on the path, or a server impersonating the real one, would
    /// read it). Over TLS and Unix sockets cleartext is always answered.
    pub allow_cleartext_password: bool,
}

impl UpstreamConfig {
    /// A plain-TCP upstream with a 10 s connect timeout.
    pub fn tcp(host: impl Into<String>, port: u16, database: impl Into<String>) -> Self {
        Self {
            address: UpstreamAddress::Tcp {
                host: host.into(),
                port,
            },
            database: database.into(),
            tls: UpstreamTls::Disable,
            connect_timeout: Duration::from_secs(10),
            allow_cleartext_password: false,
        }
    }

    /// A Unix-socket upstream with a 10 s connect timeout.
    pub fn unix(dir: impl Into<PathBuf>, port: u16, database: impl Into<String>) -> Self {
        Self {
            address: UpstreamAddress::Unix {
                dir: dir.into(),
                port,
            },
            database: database.into(),
            tls: UpstreamTls::Disable,
            connect_timeout: Duration::from_secs(10),
            allow_cleartext_password: false,
        }
    }

    /// Uses TLS with certificate verification.
    pub fn with_tls(
        mut self,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Self {
        self.tls = UpstreamTls::VerifyFull {
            config,
            server_name,
        };
        self
    }
}

/// Why the upstream connection could not be established. Never contains a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// TCP or Unix connect failed.
    #[error("cannot connect to the database server: {0}")]
    Connect(std::io::Error),
    /// Connecting, TLS and authentication took longer than the connect timeout.
    #[error("the database server did not complete the connection within {0:?}")]
    Timeout(Duration),
    /// TLS failed (refused by the server, or its certificate did not verify).
    #[error("TLS to the database server failed: {0}")]
    Tls(String),
    /// The server refused to authenticate the gateway.
    #[error("the database server refused the gateway's login: {0}")]
    Auth(String),
    /// The server answered with an error.
    #[error("the database server answered: {code}: {message}")]
    Server {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
    },
    /// The server broke the protocol.
    #[error("the database server broke the protocol: {0}")]
    Protocol(String),
    /// The credential source failed.
    #[error("cannot obtain the upstream credentials: {0}")]
    Credentials(String),
    /// I/O during the conversation.
    #[error("connection to the database server lost: {0}")]
    Io(#[from] std::io::Error),
}

impl From<codec::ProtocolError> for UpstreamError {
    fn from(e: codec::ProtocolError) -> Self {
        UpstreamError::Protocol(e.to_string())
    }
}

/// An authenticated upstream session, ready for queries.
pub(crate) struct Upstream {
    pub(crate) stream: Stream,
    /// Bytes read past `ReadyForQuery` (normally none).
    pub(crate) read_buf: BytesMut,
    /// `ParameterStatus` messages, to relay to the client.
    pub(crate) parameters: Vec<BackendFrame>,
    /// The server's cancel key (never shown to the client).
    pub(crate) key: Option<(i32, Bytes)>,
    pub(crate) status: TransactionStatus,
}

impl Upstream {
    /// The server's major version, from its `server_version` parameter (`15.18 (Debian …)`,
    /// `18beta1`); `None` if it did not report one the gateway can read.
    pub(crate) fn server_major(&self) -> Option<u32> {
        self.parameters.iter().find_map(|f| match f.parse() {
            Ok(codec::BackendMessage::ParameterStatus {
                name: "server_version",
                value,
            }) => major_version(value),
            _ => None,
        })
    }
}

/// The major version of a `server_version` string: `15.18 (Debian …)` is 15, `18beta1` is 18,
/// `9.6.24` is 9.
pub(crate) fn major_version(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Where a cancel request for this upstream session must go.
#[derive(Clone, Debug)]
pub(crate) struct CancelTarget {
    pub(crate) config: UpstreamConfig,
    pub(crate) pid: i32,
    pub(crate) key: Bytes,
}

async fn open(config: &UpstreamConfig) -> Result<Stream, UpstreamError> {
    match &config.address {
        UpstreamAddress::Tcp { host, port } => {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(UpstreamError::Connect)?;
            let _ = tcp.set_nodelay(true);
            match &config.tls {
                UpstreamTls::Disable => Ok(Stream::Tcp(tcp)),
                UpstreamTls::VerifyFull {
                    config: tls,
                    server_name,
                } => start_tls(tcp, tls.clone(), server_name.clone()).await,
            }
        }
        UpstreamAddress::Unix { dir, port } => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let unix = UnixStream::connect(&path)
                .await
                .map_err(UpstreamError::Connect)?;
            Ok(Stream::Unix(unix))
        }
    }
}

async fn start_tls(
    mut tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<Stream, UpstreamError> {
    let mut req = BytesMut::new();
    codec::frontend::ssl_request(&mut req);
    tcp.write_all(&req).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != codec::ENCRYPTION_ACCEPTED {
        return Err(UpstreamError::Tls(
            "the server does not accept TLS connections".into(),
        ));
    }
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok(Stream::TlsClient(Box::new(tls)))
}

/// Connects and logs in as the credential source's user, forwarding the client's harmless
/// start-up parameters (`extra`). Bounded by the connect timeout.
pub(crate) async fn connect(
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
    extra: &[(String, String)],
    limits: &Limits,
) -> Result<Upstream, UpstreamError> {
    let creds = credentials
        .credentials()
        .await
        .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
    tokio::time::timeout(config.connect_timeout, login(config, creds, extra, limits))
        .await
        .map_err(|_| UpstreamError::Timeout(config.connect_timeout))?
}

async fn login(
    config: &UpstreamConfig,
    creds: UpstreamCredentials,
    extra: &[(String, String)],
    limits: &Limits,
) -> Result<Upstream, UpstreamError> {
    let mut stream = open(config).await?;
    let mut params: Vec<(&str, &str)> = vec![
        ("user", creds.user.as_str()),
        ("database", config.database.as_str()),
        ("client_encoding", "UTF8"),
    ];
    params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut out = BytesMut::new();
    codec::frontend::startup(&mut out, &params)?;
    stream.write_all(&out).await?;

    let mut conn = Upstream {
        stream,
        read_buf: BytesMut::with_capacity(8 * 1024),
        parameters: Vec::new(),
        key: None,
        status: TransactionStatus::Idle,
    };
    let password = || -> Result<&Secret<String>, UpstreamError> {
        creds.password.as_deref().ok_or_else(|| {
            UpstreamError::Auth("the server asks for a password and none is configured".into())
        })
    };
    let mut scram: Option<scram::ScramClient> = None;
    loop {
        let frame = conn.read_frame(limits).await?;
        let mut out = BytesMut::new();
        match frame.parse()? {
            BackendMessage::Authentication(auth) => match auth {
                Auth::Ok => {
                    if scram.is_some() {
                        return Err(UpstreamError::Auth("SCRAM exchange ended early".into()));
                    }
                }
                Auth::CleartextPassword => {
                    if !conn.stream.is_tls()
                        && matches!(config.address, UpstreamAddress::Tcp { .. })
                    {
                        if !config.allow_cleartext_password {
                            return Err(UpstreamError::Auth(
                                "the server asks for the password in cleartext over plain TCP; refused (use TLS, or allow_cleartext_password)".into(),
                            ));
                        }
                        tracing::warn!(
                            "the database server asks for a cleartext password over plain TCP"
                        );
                    }
                    codec::frontend::password(&mut out, password()?.expose_secret().as_bytes())?;
                }
                Auth::Md5Password { salt } => {
                    let response =
                        scram::md5_response(&creds.user, password()?.expose_secret(), salt);
                    codec::frontend::password(&mut out, response.as_bytes())?;
                }
                Auth::Sasl { mechanisms } => {
                    if !mechanisms.contains(&scram::MECHANISM) {
                        return Err(UpstreamError::Auth(format!(
                            "the server offers only {}",
                            mechanisms.join(", ")
                        )));
                    }
                    let (client, first) = scram::ScramClient::start(password()?.expose_secret());
                    scram = Some(client);
                    codec::frontend::sasl_initial_response(
                        &mut out,
                        scram::MECHANISM,
                        Some(&first),
                    )?;
                }
                Auth::SaslContinue(data) => {
                    let client = scram.as_mut().ok_or_else(|| {
                        UpstreamError::Protocol("SASLContinue without SASL".into())
                    })?;
                    let reply = client
                        .server_first(data)
                        .map_err(|e| UpstreamError::Auth(e.to_string()))?;
                    codec::frontend::sasl_response(&mut out, &reply)?;
                }
                Auth::SaslFinal(data) => {
                    let client = scram
                        .take()
                        .ok_or_else(|| UpstreamError::Protocol("SASLFinal without SASL".into()))?;
                    client
                        .server_final(data)
                        .map_err(|e| UpstreamError::Auth(e.to_string()))?;
                }
                other => {
                    return Err(UpstreamError::Auth(format!(
                        "unsupported authentication method {other:?}"
                    )));
                }
            },
            BackendMessage::ErrorResponse(fields) => {
                return Err(UpstreamError::Server {
                    code: fields.code().unwrap_or("XX000").to_owned(),
                    message: fields.message().unwrap_or("").to_owned(),
                });
            }
            BackendMessage::ParameterStatus { .. } => conn.parameters.push(frame.clone()),
            BackendMessage::BackendKeyData { pid, key } => {
                conn.key = Some((pid, Bytes::copy_from_slice(key)));
            }
            BackendMessage::ReadyForQuery { status } => {
                conn.status = status;
                return Ok(conn);
            }
            BackendMessage::NoticeResponse(_) | BackendMessage::NegotiateProtocolVersion { .. } => {
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message during start-up: {other:?}"
                )));
            }
        }
        if !out.is_empty() {
            conn.stream.write_all(&out).await?;
        }
    }
}

impl Upstream {
    /// Reads one backend message.
    pub(crate) async fn read_frame(
        &mut self,
        limits: &Limits,
    ) -> Result<BackendFrame, UpstreamError> {
        loop {
            if let Some(frame) = codec::decode_backend(&mut self.read_buf, limits)? {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Ends the session politely (bounded: a server that reads nothing does not hold the
    /// caller; the connection closes when dropped either way).
    pub(crate) async fn terminate(mut self) {
        let mut out = BytesMut::new();
        codec::frontend::terminate(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.stream.write_all(&out).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// Runs one simple query (only while no client is attached: before the session is handed
    /// to one, or when it goes back to the pool) and returns its rows as text. Parameters the
    /// server reports on the way (`ParameterStatus`) replace those kept for the next client.
    pub(crate) async fn simple_query(
        &mut self,
        sql: &str,
        limits: &Limits,
    ) -> Result<Vec<Vec<Option<String>>>, UpstreamError> {
        let mut out = BytesMut::new();
        codec::frontend::query(&mut out, sql)?;
        self.stream.write_all(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.read_frame(limits).await?;
            match frame.parse()? {
                BackendMessage::DataRow(row) => rows.push(
                    row.values()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                ),
                BackendMessage::ErrorResponse(fields) => {
                    error = Some(UpstreamError::Server {
                        code: fields.code().unwrap_or("XX000").to_owned(),
                        message: fields.message().unwrap_or("").to_owned(),
                    });
                }
                BackendMessage::ParameterStatus { name, .. } => {
                    self.parameters.retain(|p| {
                        !matches!(p.parse(), Ok(BackendMessage::ParameterStatus { name: n, .. }) if n == name)
                    });
                    self.parameters.push(frame.clone());
                }
                BackendMessage::ReadyForQuery { status } => {
                    self.status = status;
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }
}

/// Sends a cancel request for an upstream session (fire and forget; errors are logged).
pub(crate) async fn cancel(target: CancelTarget, limits: Limits) {
    let result = async {
        let mut stream = tokio::time::timeout(target.config.connect_timeout, open(&target.config))
            .await
            .map_err(|_| UpstreamError::Timeout(target.config.connect_timeout))??;
        let mut out = BytesMut::new();
        codec::frontend::cancel_request(&mut out, target.pid, &target.key)?;
        stream.write_all(&out).await?;
        let _ = stream.shutdown().await;
        let _ = limits;
        Ok::<_, UpstreamError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "forwarding a cancel request failed");
    }
}
