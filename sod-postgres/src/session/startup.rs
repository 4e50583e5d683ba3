//! Start-up: everything before the session's first operation. TLS on `SSLRequest` (or the
//! connection refused where plain TCP is not allowed), cancel requests, the start-up packet and
//! its parameters (only harmless ones are passed on), and the password, which is the client's
//! credential: an OIDC token or a sod capability. Each phase is bounded by the gateway's
//! start-up timeout.

use std::net::SocketAddr;

use bytes::BytesMut;
use sod_core::Peer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Fatal, fatal};
use crate::codec::{
    self, ENCRYPTION_ACCEPTED, ENCRYPTION_REFUSED, ErrorBuilder, FrontendFrame, FrontendMessage,
    Limits, Startup,
};
use crate::net::Stream;
use crate::shared::{GatewayShared, Plaintext};
use crate::upstream;

/// The client's transport before start-up completes.
pub(crate) enum Accepted {
    /// A TCP connection and the peer's address.
    Tcp(tokio::net::TcpStream, SocketAddr),
    /// A Unix-socket connection.
    Unix(tokio::net::UnixStream),
}

/// A client that completed start-up.
pub(super) struct Started {
    pub(super) conn: Conn,
    pub(super) peer: Peer,
    /// The start-up packet's parameters, checked.
    pub(super) params: Vec<(String, String)>,
    /// The password: an OIDC token or a capability.
    pub(super) token: String,
}

impl Started {
    /// The user name the client gave.
    pub(super) fn user(&self) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.clone())
    }

    /// The parameters passed to the server.
    pub(super) fn forwarded_params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|(k, _)| FORWARDED_PARAMS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// Runs start-up on a new connection. `None` when the connection is over: it was a cancel
/// request (carried out), or start-up failed and the client has been sent the FATAL error.
pub(super) async fn handshake(gw: &GatewayShared, accepted: Accepted) -> Option<Started> {
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
    let started = tokio::time::timeout(gw.startup_timeout, start(gw, &mut conn, loopback));
    let params = match started.await {
        Ok(Ok(Some(params))) => params,
        Ok(Ok(None)) => return None,
        Ok(Err(Fatal(err))) => {
            conn.fail(*err).await;
            return None;
        }
        Err(_) => {
            conn.fail(ErrorBuilder::fatal("08006", "sod: start-up timed out"))
                .await;
            return None;
        }
    };
    let token = match tokio::time::timeout(gw.startup_timeout, authenticate(&mut conn)).await {
        Ok(Ok(t)) => t,
        Ok(Err(Fatal(err))) => {
            conn.fail(*err).await;
            return None;
        }
        Err(_) => {
            conn.fail(ErrorBuilder::fatal(
                "08006",
                "sod: authentication timed out",
            ))
            .await;
            return None;
        }
    };
    Some(Started {
        conn,
        peer,
        params,
        token,
    })
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

/// Whether `name` is an encoding name PostgreSQL reads as UTF-8 (or libpq's `auto`). The
/// server compares encoding names after dropping every character that is not a letter or a
/// digit and folding case (`clean_encoding_name` in `encnames.c`), so `UTF8`, `utf-8`,
/// `'utf-8'` (as asyncpg sends it, quoted), `Utf_8` and `unicode` (an alias) all name UTF-8.
/// The gateway always asks the server for `UTF8` itself.
fn is_utf8_encoding_name(name: &str) -> bool {
    let cleaned: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(cleaned.as_str(), "utf8" | "unicode" | "auto")
}

/// A client connection and its read buffer.
pub(super) struct Conn {
    pub(super) stream: Stream,
    pub(super) buf: BytesMut,
    pub(super) limits: Limits,
}

impl Conn {
    /// Sends the client a FATAL error and closes the connection.
    pub(super) async fn fail(mut self, err: ErrorBuilder) {
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
                    conn.stream.write_all(&[ENCRYPTION_REFUSED]).await?;
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
                conn.stream.write_all(&[ENCRYPTION_ACCEPTED]).await?;
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
            Startup::GssEnc => conn.stream.write_all(&[ENCRYPTION_REFUSED]).await?,
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
                if !is_utf8_encoding_name(v) {
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

#[cfg(test)]
mod tests {
    use super::is_utf8_encoding_name;

    #[test]
    fn utf8_encoding_names_as_postgres_reads_them() {
        for name in [
            "UTF8",
            "utf8",
            "UTF-8",
            "'utf-8'",
            "\"UTF-8\"",
            "utf_8",
            "Unicode",
            "auto",
        ] {
            assert!(is_utf8_encoding_name(name), "{name}");
        }
        for name in ["SJIS", "LATIN1", "", "'", "utf16", "utf-8x", "sql_ascii"] {
            assert!(!is_utf8_encoding_name(name), "{name}");
        }
    }
}
