//! The codec against a real PostgreSQL server (sod-testkit's ephemeral cluster).
//!
//! - `codec_as_client`: the codec alone talks to the server (trust and MD5 authentication,
//!   simple and extended protocol, errors, notices, COPY both ways, LISTEN/NOTIFY, fast-path
//!   function calls, portals), and every message the server sends must parse and re-encode
//!   to its exact bytes.
//! - `codec_in_the_middle`: tokio-postgres talks to the server through a relay that decodes,
//!   parses and re-encodes every message in both directions (SCRAM-SHA-256, prepared
//!   statements with binary values, transactions, portals, cancel requests) before
//!   forwarding the original bytes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sod_postgres::codec::{
    self, Auth, BackendFrame, BackendMessage, FrontendMessage, Limits, Startup, Target,
    TransactionStatus, frontend, tag,
};
use sod_testkit::pg::{EphemeralPostgres, UserAuth};
use sod_testkit::{poll_until, poll_until_async};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Checks that a received backend frame parses and re-encodes to its exact bytes.
fn check_backend(frame: &BackendFrame) -> Result<(), String> {
    let parsed = frame
        .parse()
        .map_err(|e| format!("{frame:?} does not parse: {e}"))?;
    let mut out = BytesMut::new();
    parsed
        .encode(&mut out)
        .map_err(|e| format!("{frame:?} does not re-encode: {e}"))?;
    if out.as_ref() != frame.raw().as_ref() {
        return Err(format!("{frame:?} re-encodes differently"));
    }
    Ok(())
}

/// A connection driven by the codec alone.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    seen: BTreeSet<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, params: &[(&str, &str)]) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            seen: BTreeSet::new(),
        };
        let mut out = BytesMut::new();
        frontend::startup(&mut out, params).expect("encodes");
        client.send(out).await;
        client
    }

    async fn send(&mut self, out: BytesMut) {
        self.stream.write_all(&out).await.expect("writes");
    }

    async fn recv(&mut self) -> BackendFrame {
        loop {
            if let Some(frame) = codec::decode_backend(&mut self.buf, &Limits::DEFAULT)
                .expect("the server sends valid frames")
            {
                check_backend(&frame).expect("parses and re-encodes");
                self.seen.insert(frame.tag());
                return frame;
            }
            let n = tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the server answers in time")
                .expect("reads");
            assert!(n > 0, "the server closed the connection");
        }
    }

    /// Every frame up to and including `ReadyForQuery`.
    async fn until_ready(&mut self) -> Vec<BackendFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame.is(tag::READY_FOR_QUERY);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    async fn simple(&mut self, sql: &str) -> Vec<BackendFrame> {
        let mut out = BytesMut::new();
        frontend::query(&mut out, sql).expect("encodes");
        self.send(out).await;
        self.until_ready().await
    }
}

fn tags(frames: &[BackendFrame]) -> Vec<u8> {
    frames.iter().map(BackendFrame::tag).collect()
}

fn parsed(frame: &BackendFrame) -> BackendMessage<'_> {
    frame.parse().expect("parses")
}

fn text_rows(frames: &[BackendFrame]) -> Vec<Vec<Option<String>>> {
    frames
        .iter()
        .filter_map(|f| match parsed(f) {
            BackendMessage::DataRow(row) => Some(
                row.values()
                    .map(|v| v.map(|b| String::from_utf8(b.to_vec()).expect("UTF-8")))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn owned_values(row: &codec::DataRow<'_>) -> Vec<Option<Vec<u8>>> {
    row.values().map(|v| v.map(<[u8]>::to_vec)).collect()
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn codec_as_client() {
    let pg = EphemeralPostgres::builder()
        .user("codec_trust", UserAuth::Trust)
        .user("codec_md5", UserAuth::Md5("md5-secret".into()))
        .start()
        .expect("a PostgreSQL cluster");
    let addr: SocketAddr = format!("{}:{}", pg.host(), pg.port())
        .parse()
        .expect("an address");
    let db = pg.database().to_owned();
    runtime().block_on(async move {
        // MD5 authentication.
        let mut c = Client::connect(addr, &[("user", "codec_md5"), ("database", &db)]).await;
        let frame = c.recv().await;
        let BackendMessage::Authentication(Auth::Md5Password { salt }) = parsed(&frame) else {
            panic!("expected an MD5 request, got {:?}", parsed(&frame));
        };
        let inner = md5_hex(b"md5-secretcodec_md5");
        let response = format!("md5{}", md5_hex(&[inner.as_bytes(), &salt].concat()));
        let mut out = BytesMut::new();
        frontend::password(&mut out, response.as_bytes()).expect("encodes");
        c.send(out).await;
        let hello = c.until_ready().await;
        assert_eq!(
            parsed(hello.first().expect("a frame")),
            BackendMessage::Authentication(Auth::Ok)
        );
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        c.send(out).await;

        // Trust authentication and the start-up messages.
        let mut c = Client::connect(
            addr,
            &[
                ("user", "codec_trust"),
                ("database", &db),
                ("client_encoding", "UTF8"),
                ("application_name", "codec-test"),
            ],
        )
        .await;
        let hello = c.until_ready().await;
        assert_eq!(
            parsed(hello.first().expect("a frame")),
            BackendMessage::Authentication(Auth::Ok)
        );
        let mut pid = None;
        let mut encoding = None;
        for frame in &hello {
            match parsed(frame) {
                BackendMessage::BackendKeyData { pid: p, key } => {
                    assert_eq!(key.len(), 4);
                    pid = Some(p);
                }
                BackendMessage::ParameterStatus {
                    name: "client_encoding",
                    value,
                } => {
                    encoding = Some(value.to_owned());
                }
                _ => {}
            }
        }
        let pid = pid.expect("BackendKeyData");
        assert_eq!(encoding.as_deref(), Some("UTF8"));
        assert_eq!(
            parsed(hello.last().expect("a frame")),
            BackendMessage::ReadyForQuery {
                status: TransactionStatus::Idle
            }
        );

        // Simple query: descriptions, NULL, non-ASCII text.
        let frames = c
            .simple("SELECT 1 AS one, NULL::text AS n, 'é'::text AS e")
            .await;
        assert_eq!(tags(&frames), b"TDCZ");
        let BackendMessage::RowDescription(rd) = parsed(&frames[0]) else {
            panic!("a row description");
        };
        let names: Vec<&str> = rd.fields().map(|f| f.name).collect();
        assert_eq!(names, ["one", "n", "e"]);
        assert!(rd.fields().all(|f| f.table_oid == 0 && f.format == 0));
        assert_eq!(
            text_rows(&frames),
            [vec![Some("1".into()), None, Some("é".into())]]
        );
        assert_eq!(
            parsed(&frames[2]),
            BackendMessage::CommandComplete { tag: "SELECT 1" }
        );

        // A large value arrives in many reads.
        let frames = c.simple("SELECT repeat('x', 1000000)").await;
        let rows = text_rows(&frames);
        assert_eq!(rows[0][0].as_deref().map(str::len), Some(1_000_000));

        assert_eq!(
            tags(
                &c.simple("CREATE TEMP TABLE t (id int PRIMARY KEY, email text)")
                    .await
            ),
            b"CZ"
        );
        let table_oid: u32 = text_rows(&c.simple("SELECT 't'::regclass::oid").await)[0][0]
            .as_deref()
            .expect("an oid")
            .parse()
            .expect("a number");

        // Empty query, error, notice.
        assert_eq!(tags(&c.simple("").await), b"IZ");
        let frames = c.simple("SELECT * FROM nope").await;
        assert_eq!(tags(&frames), b"EZ");
        let BackendMessage::ErrorResponse(err) = parsed(&frames[0]) else {
            panic!("an error");
        };
        assert_eq!(err.code(), Some("42P01"));
        assert_eq!(err.severity(), Some("ERROR"));
        assert!(err.message().expect("a message").contains("nope"));
        assert_eq!(err.get(codec::field::POSITION), Some("15"));
        let frames = c
            .simple("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
            .await;
        assert_eq!(tags(&frames), b"NCZ");
        let BackendMessage::NoticeResponse(notice) = parsed(&frames[0]) else {
            panic!("a notice");
        };
        assert_eq!(notice.message(), Some("hello 42"));
        assert_eq!(notice.severity(), Some("NOTICE"));

        // Extended protocol: parse, describe, bind (binary and text parameters), execute.
        let mut out = BytesMut::new();
        frontend::parse(&mut out, "ins", "INSERT INTO t VALUES ($1, $2)", &[23, 0])
            .expect("encodes");
        frontend::describe(&mut out, Target::Statement, "ins").expect("encodes");
        frontend::sync(&mut out);
        c.send(out).await;
        let frames = c.until_ready().await;
        assert_eq!(tags(&frames), b"1tnZ");
        let BackendMessage::ParameterDescription(types) = parsed(&frames[1]) else {
            panic!("a parameter description");
        };
        assert_eq!(types.to_vec(), [23, 25]);

        let mut out = BytesMut::new();
        let one = 1i32.to_be_bytes();
        let two = 2i32.to_be_bytes();
        frontend::bind(
            &mut out,
            "",
            "ins",
            &[1, 0],
            &[Some(&one), Some(b"a@x")],
            &[],
        )
        .expect("encodes");
        frontend::execute(&mut out, "", 0).expect("encodes");
        frontend::bind(&mut out, "", "ins", &[1], &[Some(&two), None], &[]).expect("encodes");
        frontend::execute(&mut out, "", 0).expect("encodes");
        frontend::close(&mut out, Target::Statement, "ins").expect("encodes");
        frontend::sync(&mut out);
        c.send(out).await;
        let frames = c.until_ready().await;
        assert_eq!(tags(&frames), b"2C2C3Z");
        assert_eq!(
            parsed(&frames[1]),
            BackendMessage::CommandComplete { tag: "INSERT 0 1" }
        );

        // A named portal with binary results, suspended after one row.
        let mut out = BytesMut::new();
        frontend::parse(&mut out, "", "SELECT id, email FROM t ORDER BY id", &[]).expect("encodes");
        frontend::bind(&mut out, "p", "", &[], &[], &[1]).expect("encodes");
        frontend::describe(&mut out, Target::Portal, "p").expect("encodes");
        frontend::execute(&mut out, "p", 1).expect("encodes");
        frontend::execute(&mut out, "p", 0).expect("encodes");
        frontend::close(&mut out, Target::Portal, "p").expect("encodes");
        frontend::sync(&mut out);
        c.send(out).await;
        let frames = c.until_ready().await;
        assert_eq!(tags(&frames), b"12TDsDC3Z");
        let BackendMessage::RowDescription(rd) = parsed(&frames[2]) else {
            panic!("a row description");
        };
        let fields = rd.to_vec();
        assert_eq!(fields.len(), 2);
        assert!(
            fields
                .iter()
                .all(|f| f.table_oid == table_oid && f.format == 1)
        );
        assert_eq!(
            fields
                .iter()
                .map(|f| (f.column, f.type_oid))
                .collect::<Vec<_>>(),
            [(1, 23), (2, 25)]
        );
        let BackendMessage::DataRow(row) = parsed(&frames[3]) else {
            panic!("a row");
        };
        assert_eq!(
            owned_values(&row),
            [Some(one.to_vec()), Some(b"a@x".to_vec())]
        );
        let BackendMessage::DataRow(row) = parsed(&frames[5]) else {
            panic!("a row");
        };
        assert_eq!(owned_values(&row), [Some(two.to_vec()), None]);
        let body = frames[5].body_bytes();
        let spans = row.span_vec();
        assert_eq!(
            spans[0].clone().map(|s| body.slice(s)),
            Some(Bytes::copy_from_slice(&two))
        );
        assert_eq!(spans[1], None);

        // COPY out and in, and a failed COPY in.
        let frames = c.simple("COPY t TO STDOUT").await;
        assert_eq!(tags(&frames), b"HddcCZ");
        let BackendMessage::CopyOutResponse(copy) = parsed(&frames[0]) else {
            panic!("a copy-out response");
        };
        assert_eq!((copy.format, copy.column_formats.to_vec()), (0, vec![0, 0]));
        assert_eq!(parsed(&frames[1]), BackendMessage::CopyData(b"1\ta@x\n"));
        assert_eq!(parsed(&frames[2]), BackendMessage::CopyData(b"2\t\\N\n"));
        assert_eq!(
            parsed(&frames[4]),
            BackendMessage::CommandComplete { tag: "COPY 2" }
        );

        let mut out = BytesMut::new();
        frontend::query(&mut out, "COPY t FROM STDIN").expect("encodes");
        c.send(out).await;
        assert!(c.recv().await.is(tag::COPY_IN_RESPONSE));
        let mut out = BytesMut::new();
        frontend::copy_data(&mut out, b"3\tc@x\n").expect("encodes");
        frontend::copy_done(&mut out);
        c.send(out).await;
        let frames = c.until_ready().await;
        assert_eq!(
            parsed(&frames[0]),
            BackendMessage::CommandComplete { tag: "COPY 1" }
        );

        let mut out = BytesMut::new();
        frontend::query(&mut out, "COPY t FROM STDIN").expect("encodes");
        c.send(out).await;
        assert!(c.recv().await.is(tag::COPY_IN_RESPONSE));
        let mut out = BytesMut::new();
        frontend::copy_fail(&mut out, "changed my mind").expect("encodes");
        c.send(out).await;
        let frames = c.until_ready().await;
        let BackendMessage::ErrorResponse(err) = parsed(&frames[0]) else {
            panic!("an error");
        };
        assert!(
            err.message()
                .expect("a message")
                .contains("changed my mind")
        );

        // LISTEN / NOTIFY to ourselves.
        assert_eq!(tags(&c.simple("LISTEN chan").await), b"CZ");
        let frames = c.simple("NOTIFY chan, 'payload é'").await;
        let notification = frames
            .iter()
            .find(|f| f.is(tag::NOTIFICATION_RESPONSE))
            .expect("a notification");
        assert_eq!(
            parsed(notification),
            BackendMessage::NotificationResponse {
                pid,
                channel: "chan",
                payload: "payload é"
            }
        );

        // A fast-path function call: int4pl(2, 40).
        let oid: u32 = text_rows(&c.simple("SELECT 'int4pl'::regproc::oid").await)[0][0]
            .as_deref()
            .expect("an oid")
            .parse()
            .expect("a number");
        let mut out = BytesMut::new();
        frontend::function_call(
            &mut out,
            oid,
            &[1],
            &[Some(&2i32.to_be_bytes()), Some(&40i32.to_be_bytes())],
            1,
        )
        .expect("encodes");
        c.send(out).await;
        let frames = c.until_ready().await;
        assert_eq!(
            parsed(&frames[0]),
            BackendMessage::FunctionCallResponse(Some(&42i32.to_be_bytes()))
        );

        // Inside a transaction, then failed.
        let frames = c.simple("BEGIN").await;
        assert_eq!(
            parsed(frames.last().expect("a frame")),
            BackendMessage::ReadyForQuery {
                status: TransactionStatus::InBlock
            }
        );
        let frames = c.simple("SELECT 1/0").await;
        assert_eq!(
            parsed(frames.last().expect("a frame")),
            BackendMessage::ReadyForQuery {
                status: TransactionStatus::Failed
            }
        );
        c.simple("ROLLBACK").await;

        let expected: BTreeSet<u8> = b"RSKZTDCIEN12tn3sHGdcAV".iter().copied().collect();
        let missing: Vec<char> = expected
            .difference(&c.seen)
            .map(|&t| char::from(t))
            .collect();
        assert!(missing.is_empty(), "never saw {missing:?}");

        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        c.send(out).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, c.stream.read_to_end(&mut rest)).await;
        assert!(rest.is_empty());
    });
}

/// What the relay saw.
#[derive(Default)]
struct Seen {
    frontend: BTreeSet<u8>,
    backend: BTreeSet<u8>,
    auth: BTreeSet<i32>,
    startups: Vec<String>,
    failures: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn note(seen: &Shared, f: impl FnOnce(&mut Seen)) {
    f(&mut seen.lock().expect("not poisoned"));
}

/// Accepts clients forever, relaying each to `upstream` through the codec.
async fn relay(listener: TcpListener, upstream: SocketAddr, seen: Shared) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(relay_one(client, upstream, seen.clone()));
    }
}

async fn relay_one(mut client: TcpStream, upstream: SocketAddr, seen: Shared) {
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    let startup = loop {
        match codec::decode_startup(&mut buf, &limits) {
            Ok(Some(Startup::Ssl | Startup::GssEnc)) => {
                note(&seen, |s| s.startups.push("encryption request".into()));
                if client.write_all(b"N").await.is_err() {
                    return;
                }
            }
            Ok(Some(startup)) => break startup,
            Ok(None) => match client.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => return,
            },
            Err(e) => {
                note(&seen, |s| s.failures.push(format!("startup: {e}")));
                return;
            }
        }
    };
    note(&seen, |s| s.startups.push(format!("{startup:?}")));
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        note(&seen, |s| s.failures.push("cannot reach the server".into()));
        return;
    };
    let mut out = BytesMut::new();
    startup.encode(&mut out).expect("a decoded packet encodes");
    if server.write_all(&out).await.is_err() {
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = {
        let seen = seen.clone();
        pump(client_read, server_write, buf, seen.clone(), move |buf| {
            let Some(frame) = codec::decode_frontend(buf, &limits)? else {
                return Ok(None);
            };
            let message = frame.parse()?;
            let mut again = BytesMut::new();
            message.encode(&mut again)?;
            let same = again.as_ref() == frame.raw().as_ref();
            note(&seen, |s| {
                s.frontend.insert(frame.tag());
                if !same {
                    s.failures.push(format!("{frame:?} re-encodes differently"));
                }
                if let FrontendMessage::Password(p) = message
                    && let Ok((mechanism, _)) = p.sasl_initial_response()
                {
                    s.startups.push(format!("SASL {mechanism}"));
                }
            });
            Ok(Some(frame.into_raw()))
        })
    };
    let down = pump(
        server_read,
        client_write,
        BytesMut::new(),
        seen.clone(),
        move |buf| {
            let Some(frame) = codec::decode_backend(buf, &limits)? else {
                return Ok(None);
            };
            let checked = check_backend(&frame);
            note(&seen, |s| {
                s.backend.insert(frame.tag());
                if let Ok(BackendMessage::Authentication(a)) = frame.parse() {
                    s.auth.insert(a.code());
                }
                if let Err(e) = checked {
                    s.failures.push(e);
                }
            });
            Ok(Some(frame.into_raw()))
        },
    );
    tokio::join!(up, down);
}

/// Moves whole frames from `r` to `w`, batching what one read yields into one write. A
/// codec error is recorded in `seen` and ends the relay.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    mut buf: BytesMut,
    seen: Shared,
    mut next: impl FnMut(&mut BytesMut) -> Result<Option<Bytes>, codec::ProtocolError>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut out = BytesMut::new();
        loop {
            match next(&mut buf) {
                Ok(Some(raw)) => out.extend_from_slice(&raw),
                Ok(None) => break,
                Err(e) => {
                    // Recorded for the test to report; the connection is dropped.
                    note(&seen, |s| s.failures.push(format!("relay: {e}")));
                    return;
                }
            }
        }
        if !out.is_empty() && w.write_all(&out).await.is_err() {
            return;
        }
        match r.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => {
                let _ = w.shutdown().await;
                return;
            }
        }
    }
}

#[test]
fn codec_in_the_middle() {
    let pg = EphemeralPostgres::start().expect("a PostgreSQL cluster");
    let upstream: SocketAddr = format!("{}:{}", pg.host(), pg.port())
        .parse()
        .expect("an address");
    let password = pg.executor_password().to_owned();
    let db = pg.database().to_owned();
    let seen: Shared = Arc::default();
    let rt = runtime();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("an address").port();
        tokio::spawn(relay(listener, upstream, seen.clone()));

        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(sod_testkit::pg::EXECUTOR)
            .password(password.as_str())
            .dbname(db.as_str())
            .application_name("codec-relay");
        let connect = || async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connects through the relay");
            tokio::spawn(connection);
            client
        };
        let mut client = connect().await;

        // Simple and extended queries with text and binary values.
        let rows = client
            .simple_query("SELECT 1 AS one, NULL AS n; SELECT 'é'")
            .await
            .expect("runs");
        let data: Vec<Option<String>> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect();
        assert_eq!(data, [Some("1".to_owned()), Some("é".to_owned())]);
        client
            .batch_execute(
                "CREATE TABLE people (id int PRIMARY KEY, email text, score float8, \
                 tags text[], seen timestamptz)",
            )
            .await
            .expect("creates");
        let insert = client
            .prepare("INSERT INTO people VALUES ($1, $2, $3, $4, now())")
            .await
            .expect("prepares");
        for i in 0..20i32 {
            let email = (i % 3 != 0).then(|| format!("user{i}@example.com"));
            let tags = vec![format!("t{i}"), "x".to_owned()];
            client
                .execute(&insert, &[&i, &email, &(f64::from(i) / 3.0), &tags])
                .await
                .expect("inserts");
        }
        let rows = client
            .query(
                "SELECT id, email, score, tags FROM people WHERE id >= $1 ORDER BY id",
                &[&15i32],
            )
            .await
            .expect("selects");
        assert_eq!(rows.len(), 5);
        let email: Option<String> = rows[0].get(1);
        assert_eq!(email, None); // 15 % 3 == 0
        let tags: Vec<String> = rows[1].get(3);
        assert_eq!(tags, ["t16", "x"]);

        // An error keeps the connection usable.
        let err = client
            .simple_query("SELECT * FROM nope")
            .await
            .expect_err("fails");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
        );

        // A transaction with a portal read in pieces.
        let tx = client.transaction().await.expect("begins");
        let stmt = tx
            .prepare("SELECT id FROM people ORDER BY id")
            .await
            .expect("prepares");
        let portal = tx.bind(&stmt, &[]).await.expect("binds");
        let mut total = 0;
        loop {
            let chunk = tx.query_portal(&portal, 7).await.expect("fetches");
            if chunk.is_empty() {
                break;
            }
            total += chunk.len();
        }
        assert_eq!(total, 20);
        tx.commit().await.expect("commits");

        // A cancel request, relayed like everything else.
        let other = connect().await;
        let token = client.cancel_token();
        let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
        let poller = &other;
        poll_until_async(DEADLINE, "the sleeping query to start", || async move {
            let rows = poller
                .query(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' \
                     AND state = 'active'",
                    &[],
                )
                .await
                .expect("polls");
            (rows[0].get::<_, i64>(0) > 0).then_some(())
        })
        .await;
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancels");
        let err = sleeper
            .await
            .expect("joins")
            .expect_err("the query was cancelled");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
        drop(other);
    });
    // Dropped clients send Terminate from their connection tasks; wait for the relay to see it.
    poll_until(DEADLINE, "the relay to see Terminate", || {
        let seen = seen.lock().expect("not poisoned");
        seen.frontend.contains(&tag::TERMINATE).then_some(())
    });
    drop(rt);

    let seen = seen.lock().expect("not poisoned");
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);
    for t in b"pQPBDESX" {
        assert!(
            seen.frontend.contains(t),
            "never saw frontend {:?}",
            char::from(*t)
        );
    }
    for t in b"RSKZTDCE12tns" {
        assert!(
            seen.backend.contains(t),
            "never saw backend {:?}",
            char::from(*t)
        );
    }
    // SCRAM: SASL, continue, final, ok.
    assert_eq!(seen.auth, [0, 10, 11, 12].into_iter().collect());
    assert!(
        seen.startups.iter().any(|s| s == "SASL SCRAM-SHA-256"),
        "{:?}",
        seen.startups
    );
    assert!(
        seen.startups.iter().any(|s| s.starts_with("Cancel")),
        "{:?}",
        seen.startups
    );
}
