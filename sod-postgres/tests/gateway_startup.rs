//! Start-up, authentication, TLS on both sides, upstream authentication methods, bad input,
//! limits and shutdown.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use sod_postgres::Plaintext;
use sod_postgres::codec::frontend;
use support::{
    Harness, Options, Upstream, error_codes, raw_session, raw_session_with, read_all, read_until,
    startup, stderr, stdout,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_with_a_reason() {
    let h = Harness::start().await;
    let connect = |pw: String| {
        let conninfo = h.conninfo();
        async move {
            tokio_postgres::connect(
                &format!("{conninfo} password='{pw}'"),
                tokio_postgres::NoTls,
            )
            .await
        }
    };
    let expired = h.idp.token().kind("executor").expires_in(-600).sign();
    for (pw, code, words) in [
        (
            "hunter2".to_owned(),
            "28P01",
            "neither a token nor a capability",
        ),
        (expired, "28P01", "token expired"),
        ("sodcap1.e30.AAAA".to_owned(), "28P01", "capability"),
        (
            h.idp.token().kind("executor").audience("other").sign(),
            "28P01",
            "audience",
        ),
    ] {
        let e = connect(pw).await.err().expect("refused");
        assert_eq!(sqlstate(&e), code, "{e}");
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(msg.starts_with("sod: authentication failed"), "{msg}");
        assert!(msg.contains(words), "{msg}");
    }
    // No upstream session was opened for any of them.
    assert_eq!(
        h.direct("SELECT count(*) FROM pg_stat_activity WHERE usename = 'executor'")
            .trim(),
        "0"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_cannot_change_server_settings() {
    let h = Harness::start().await;
    let token = h.executor();
    for (extra, code) in [
        ("options='-c search_path=evil'", "0A000"),
        ("options='-c role=postgres'", "0A000"),
        ("dbname=postgres", "3D000"),
    ] {
        let e = tokio_postgres::connect(
            &format!("{} password={token} {extra}", h.conninfo()),
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(sqlstate(&e), code, "{extra}: {e}");
    }
    for (param, value) in [
        ("replication", "database"),
        ("search_path", "evil"),
        ("session_authorization", "postgres"),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", h.port))
            .await
            .expect("connect");
        startup(&mut s, &[("user", "agent"), (param, value)]).await;
        let codes = error_codes(&read_all(&mut s).await);
        assert_eq!(codes, ["0A000"], "{param}");
    }
    // client_encoding is compared as PostgreSQL compares encoding names (punctuation and case
    // ignored): asyncpg sends `'utf-8'`, quotes included. Anything but UTF-8 is refused.
    for value in ["'utf-8'", "UTF8", "utf_8", "Unicode"] {
        let mut s = raw_session_with(&h, &token, &[("client_encoding", value)]).await;
        let mut out = BytesMut::new();
        frontend::query(&mut out, "SELECT 1").expect("query");
        s.write_all(&out).await.expect("write");
        let frames = read_until(&mut s, b'Z').await;
        assert!(error_codes(&frames).is_empty(), "{value}");
    }
    for value in ["SJIS", "'latin1'"] {
        let mut s = TcpStream::connect(("127.0.0.1", h.port))
            .await
            .expect("connect");
        startup(&mut s, &[("user", "agent"), ("client_encoding", value)]).await;
        assert_eq!(error_codes(&read_all(&mut s).await), ["22023"], "{value}");
    }
    // Harmless parameters pass through.
    let (c, conn) = tokio_postgres::connect(
        &format!(
            "{} password={token} application_name=sod-test",
            h.conninfo()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    let r = c
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("query");
    assert_eq!(r.get::<_, &str>(0), "sod-test");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_and_the_plaintext_rule() {
    let h = Harness::with(Options {
        client_tls: true,
        plaintext: Plaintext::Never,
        ..Default::default()
    })
    .await;
    let ca = h.ca_file.as_ref().expect("ca").path().display().to_string();
    let token = h.reader();
    let port = h.port;
    let (tls, plain) = tokio::task::spawn_blocking(move || {
        let run = |conninfo: String| {
            std::process::Command::new("psql")
                .args(["-X", "-At", "-d", &conninfo, "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
                .env("PGPASSWORD", &token)
                .output()
                .expect("psql")
        };
        (
            run(format!("host=localhost port={port} dbname=sod user=agent sslmode=verify-full sslrootcert={ca}")),
            run(format!("host=127.0.0.1 port={port} dbname=sod user=agent sslmode=disable")),
        )
    })
    .await
    .expect("join");
    assert!(tls.status.success(), "{}", stderr(&tls));
    // The gateway's upstream connection is plain here; the client's is TLS (checked by psql).
    assert_eq!(stdout(&tls), "f");
    assert!(!plain.status.success());
    assert!(
        stderr(&plain).contains("requires TLS"),
        "{}",
        stderr(&plain)
    );

    // Bytes sent after SSLRequest before the handshake are refused, not read as TLS data.
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    frontend::ssl_request(&mut out);
    frontend::startup(&mut out, &[("user", "agent")]).expect("startup");
    s.write_all(&out).await.expect("write");
    let codes = error_codes(&read_all(&mut s).await);
    assert_eq!(codes, ["08P01"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_md5_trust_and_unix_socket() {
    for (kind, user, ssl) in [
        (Upstream::Tls, "executor", "true"),
        (Upstream::Md5, "md5user", "false"),
        (Upstream::Trust, "trustuser", "false"),
        (Upstream::Unix, "md5user", "false"),
    ] {
        let h = Harness::with(Options {
            upstream: kind,
            ..Default::default()
        })
        .await;
        let c = h
            .client(&h.executor())
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        let r = c
            .query_one("SELECT current_user::text, coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '')", &[])
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        assert_eq!(r.get::<_, &str>(0), user, "{kind:?}");
        assert_eq!(r.get::<_, &str>(1), ssl, "{kind:?}");
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_input_is_refused_cleanly() {
    let h = Harness::start().await;
    // Garbage instead of a start-up packet.
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    s.write_all(&[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])
        .await
        .expect("write");
    assert_eq!(error_codes(&read_all(&mut s).await), ["0A000"]);
    // A start-up packet claiming to be huge.
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    s.write_all(&[0x7f, 0, 0, 0, 0, 3, 0, 0])
        .await
        .expect("write");
    assert_eq!(error_codes(&read_all(&mut s).await), ["08P01"]);
    // A truncated start-up packet, then the client leaves: nothing breaks.
    let mut s = TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    s.write_all(&[0, 0, 0, 40, 0, 3]).await.expect("write");
    drop(s);

    // After authentication: an oversized message is refused before its body is read, and
    // nothing is forwarded.
    let mut s = raw_session(&h, &h.executor()).await;
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&(64 * 1024 * 1024i32).to_be_bytes());
    msg.extend_from_slice(b"INSERT INTO orders VALUES (999, 1, 1)");
    s.write_all(&msg).await.expect("write");
    assert_eq!(error_codes(&read_all(&mut s).await), ["08P01"]);
    // An unknown message type.
    let mut s = raw_session(&h, &h.executor()).await;
    s.write_all(&[b'Y', 0, 0, 0, 4]).await.expect("write");
    assert_eq!(error_codes(&read_all(&mut s).await), ["08P01"]);
    // A Query whose text is not NUL-terminated.
    let mut s = raw_session(&h, &h.executor()).await;
    let mut q = vec![b'Q', 0, 0, 0, 13];
    q.extend_from_slice(b"SELECT 1;");
    s.write_all(&q).await.expect("write");
    assert_eq!(error_codes(&read_all(&mut s).await), ["08P01"]);
    assert_eq!(
        h.direct("SELECT count(*) FROM orders WHERE id = 999")
            .trim(),
        "0"
    );
    // The gateway still serves.
    let c = h.client(&h.reader()).await.expect("still serving");
    c.query_one("SELECT 1", &[]).await.expect("query");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit() {
    let h = Harness::with(Options {
        max_connections: 1,
        ..Default::default()
    })
    .await;
    let first = h.client(&h.reader()).await.expect("first");
    let e = h.client(&h.reader()).await.expect_err("second refused");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    drop(first);
    // The slot frees up once the first session ends.
    let token = h.reader();
    sod_testkit::poll_until_async(Duration::from_secs(10), "a free connection slot", || {
        let connecting = h.client(&token);
        async move { connecting.await.ok() }
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed() {
    let h = Harness::with(Options {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let c = h.client(&h.reader()).await.expect("connect");
    sod_testkit::poll_until_async(
        Duration::from_secs(10),
        "the idle session to be closed",
        || {
            let closed = c.is_closed();
            async move { closed.then_some(()) }
        },
    )
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_terminates_lingering_sessions() {
    let h = Harness::start().await;
    let c = h.client(&h.reader()).await.expect("connect");
    let port = h.port;
    h.stop().await;
    // The idle session was terminated after the grace period, and nobody is listening.
    assert!(c.query_one("SELECT 1", &[]).await.is_err());
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

/// Idle sockets take start-up slots, never sessions: a hundred of them from one address (here
/// 127.0.0.2) lock out no one else, and those beyond that address's share are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_cannot_lock_anyone_out() {
    let h = Harness::with(Options {
        max_connections: 10,
        ..Default::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        idle.push(
            socket
                .connect(format!("127.0.0.1:{}", h.port).parse().expect("addr"))
                .await
                .expect("connect"),
        );
    }
    // Beyond the address's share (32) each is told why and closed, without waiting for the
    // start-up timeout.
    let mut told = vec![false; idle.len()];
    sod_testkit::poll_until_async(Duration::from_secs(10), "68 refusals", || {
        for (s, told) in idle.iter().zip(told.iter_mut()).filter(|(_, t)| !**t) {
            let mut buf = [0u8; 256];
            if let Ok(n) = s.try_read(&mut buf)
                && n > 0
            {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    text.contains("53300") && text.contains("from this address"),
                    "{text}"
                );
                *told = true;
            }
        }
        let refused = told.iter().filter(|t| **t).count();
        async move { (refused >= 100 - 32).then_some(()) }
    })
    .await;
    // Clients from elsewhere connect and work while the idle sockets linger, up to the
    // session limit, which the idle sockets did not touch.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let c = h.client(&h.reader()).await.expect("a real client connects");
        c.simple_query("SELECT 1").await.expect("works");
        clients.push(c);
    }
    let e = h.client(&h.reader()).await.expect_err("the 11th session");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    h.stop().await;
}

/// No identity can take every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_identity_are_bounded() {
    let h = Harness::with(Options {
        max_sessions_per_principal: 2,
        ..Default::default()
    })
    .await;
    let token = h.reader();
    let _a = h.client(&token).await.expect("first");
    let _b = h.client(&token).await.expect("second");
    let e = h.client(&token).await.expect_err("third");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("too many sessions for planner-1")),
        "{e:?}"
    );
    // Another identity is not held back.
    let other = h
        .client(&h.executor())
        .await
        .expect("the executor connects");
    other.simple_query("SELECT 1").await.expect("works");
    h.stop().await;
}

/// A statement over the gateway's limit (1 MiB by default) is refused before the parser sees
/// it; the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_statements_are_refused_before_analysis() {
    let h = Harness::start().await;
    let c = h.client(&h.executor()).await.expect("connects");
    let huge = format!(
        "SELECT '{}'",
        "x".repeat(sod_postgres::DEFAULT_MAX_STATEMENT)
    );
    let e = c.simple_query(&huge).await.expect_err("refused");
    assert_eq!(sqlstate(&e), "54000", "{e}");
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("bytes")),
        "{e:?}"
    );
    let e = c
        .query(huge.as_str(), &[])
        .await
        .expect_err("refused at Parse too");
    assert_eq!(sqlstate(&e), "54000", "{e}");
    // A long statement under the limit is analysed (off the async workers) and runs.
    let long = format!("SELECT length('{}')", "y".repeat(200_000));
    let rows = c.simple_query(&long).await.expect("runs");
    assert!(rows.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("200000"))
    ));
    c.simple_query("SELECT 1")
        .await
        .expect("the session goes on");
    h.stop().await;
}
