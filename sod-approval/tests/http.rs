//! The approvers' HTTP API, served for real on a loopback port (and once over TLS), called with
//! a hyper client and OIDC tokens from a test issuer: authentication, every separation-of-duties
//! refusal as an HTTP status, body limits, routing, the OpenAPI document and shutdown.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sod_approval::{ApprovalApi, ApprovalId, ApprovalRequest, Broker, MemoryStore, Requester};
use sod_approval::{ServeError, openapi};
use sod_core::identity::{JwksSource, OidcConfig, OidcVerifier};
use sod_core::{Operation, OperationKind, Target};
use sod_testkit::{OidcIssuer, TestCa};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const ISS: &str = "https://idp.test";
const AUD: &str = "sod-approvals";
const DEADLINE: Duration = Duration::from_secs(10);

/// The API on a loopback port, over a memory store, trusting `idp`.
struct Server {
    addr: SocketAddr,
    broker: Broker,
    idp: OidcIssuer,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    /// For the TLS server: the CA clients trust.
    ca: Option<TestCa>,
}

impl Server {
    async fn start() -> Server {
        Self::start_with(false).await
    }

    async fn start_with(tls: bool) -> Server {
        let idp = OidcIssuer::new(ISS, AUD);
        let verifier = OidcVerifier::new(OidcConfig::new(
            ISS,
            AUD,
            JwksSource::Static(idp.jwks().to_string()),
        ))
        .unwrap();
        let broker = Broker::new(Arc::new(MemoryStore::new()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, config) = if tls {
            let ca = TestCa::new("approval API test CA");
            let leaf = ca.issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            let config = leaf.server_config();
            (Some(ca), Some(config))
        } else {
            (None, None)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let api = ApprovalApi::new(broker.clone(), Arc::new(verifier));
        let task = tokio::spawn(api.serve(listener, config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            broker,
            idp,
            stop: Some(stop),
            task: Some(task),
            ca,
        }
    }

    /// A human's token with `groups`.
    fn human(&self, subject: &str, groups: &[&str]) -> String {
        self.idp
            .token()
            .subject(subject)
            .kind("human")
            .groups(groups)
            .sign()
    }

    fn dba(&self, subject: &str) -> String {
        self.human(subject, &["dba"])
    }

    /// A pending request by `planner-1` acting for `alice`, for `quorum` dba approvers.
    async fn submit(&self, quorum: u32) -> ApprovalId {
        self.broker.submit(request(quorum)).await.unwrap()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (StatusCode, HeaderMap, Value) {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        match &self.ca {
            None => send(tcp, method, path, token, body).await,
            Some(ca) => {
                let connector = tokio_rustls::TlsConnector::from(ca.client_config());
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await.unwrap();
                send(tls, method, path, token, body).await
            }
        }
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(
        &self,
        path: &str,
        token: &str,
        body: Option<&[u8]>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.call(Method::POST, path, Some(token), body).await
    }

    async fn vote(
        &self,
        id: &ApprovalId,
        verb: &str,
        token: &str,
        body: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self
            .post(&format!("/v1/approvals/{id}/{verb}"), token, body)
            .await;
        (status, value)
    }

    /// Asks the server to stop and waits (with a deadline) for it to return.
    async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task.take().unwrap())
            .await
            .expect("the server stops promptly")
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; the answer's status, headers and JSON body.
async fn send<S>(
    io: S,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (StatusCode, HeaderMap, Value)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .unwrap();
    let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .expect("the server answers")
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {bytes:?}"));
    (parts.status, parts.headers, value)
}

fn operation() -> Operation {
    Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        "DELETE FROM orders WHERE customer_id = 42",
    )
    .objects(["public.orders"])
    .build()
}

fn request(quorum: u32) -> ApprovalRequest {
    ApprovalRequest::new(
        Requester::new("planner-1").on_behalf_of("alice"),
        &operation(),
        vec!["dba".into()],
        quorum,
        Duration::from_secs(600),
    )
    .rule("writes-need-a-dba")
    .justification("clean up the test customer")
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error JSON: {body}"
    );
}

fn assert_unauthorized(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_error(status, body, StatusCode::UNAUTHORIZED);
    let challenge = headers
        .get(header::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_are_unauthorized() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let paths = [
        (Method::GET, "/v1/approvals".to_owned()),
        (Method::GET, format!("/v1/approvals/{id}")),
        (Method::POST, format!("/v1/approvals/{id}/approve")),
        (Method::POST, format!("/v1/approvals/{id}/deny")),
    ];
    let expired = server
        .idp
        .token()
        .subject("bob")
        .kind("human")
        .groups(&["dba"])
        .expires_in(-3600)
        .sign();
    // Signed by another issuer's keys (same issuer name and key ids).
    let forged = OidcIssuer::new(ISS, AUD)
        .token()
        .subject("bob")
        .kind("human")
        .groups(&["dba"])
        .sign();
    let wrong_audience = server
        .idp
        .token()
        .subject("bob")
        .kind("human")
        .groups(&["dba"])
        .audience("someone-else")
        .sign();
    for (method, path) in &paths {
        let (status, headers, body) = server.call(method.clone(), path, None, None).await;
        assert_unauthorized(status, &headers, &body);
        for token in ["not-a-token", &expired, &forged, &wrong_audience] {
            let (status, headers, body) =
                server.call(method.clone(), path, Some(token), None).await;
            assert_unauthorized(status, &headers, &body);
        }
    }
    // Not a bearer token at all.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("/v1/approvals")
                .header(header::HOST, "localhost")
                .header(header::AUTHORIZATION, "Basic Ym9iOmh1bnRlcjI=")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Nothing was decided by any of it.
    let stored = server.broker.get(&id).await.unwrap();
    assert!(stored.votes.is_empty());
}

#[tokio::test]
async fn list_and_show() {
    let server = Server::start().await;
    let first = server.submit(1).await;
    let second = server.submit(2).await;
    let bob = server.dba("bob");

    let (status, _, list) = server.get("/v1/approvals", &bob).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    // Oldest first; these two were made in the same second, so either order.
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = [first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let (status, headers, shown) = server.get(&format!("/v1/approvals/{first}"), &bob).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(shown["id"], first.as_str());
    assert_eq!(
        shown["operation"]["text"],
        "DELETE FROM orders WHERE customer_id = 42"
    );
    assert_eq!(shown["operation"]["target"], "pg/prod");
    assert_eq!(shown["operation"]["kind"], "write");
    assert_eq!(shown["operation"]["objects"], json!(["public.orders"]));
    assert_eq!(shown["rule"], "writes-need-a-dba");
    assert_eq!(shown["justification"], "clean up the test customer");
    assert_eq!(
        shown["requester"],
        json!({"id": "planner-1", "on_behalf_of": "alice"})
    );
    assert_eq!(shown["approver_groups"], json!(["dba"]));
    assert_eq!(shown["votes"], json!([]));
    assert_eq!(shown["status"], "pending");

    // The human the request was made for sees it too; an outsider does not.
    let alice = server.human("alice", &["dev"]);
    let (_, _, list) = server.get("/v1/approvals", &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let dave = server.human("dave", &["dev"]);
    let (status, _, list) = server.get("/v1/approvals", &dave).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    let (status, _, body) = server.get(&format!("/v1/approvals/{first}"), &dave).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let server = Server::start().await;
    let bob = server.dba("bob");
    for id in [
        "apr-000000000000000000000000",
        "x",
        "apr-%2e%2e",
        &"a".repeat(500),
    ] {
        let (status, _, body) = server.get(&format!("/v1/approvals/{id}"), &bob).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = server
            .vote(&ApprovalId::new(id), "approve", &bob, None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_dba_approves_once() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let bob = server.dba("bob");
    let (status, body) = server
        .vote(&id, "approve", &bob, Some(br#"{"comment": "ok, once"}"#))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["votes"][0]["approver"], "bob");
    assert_eq!(body["votes"][0]["comment"], "ok, once");
    let (_, _, shown) = server.get(&format!("/v1/approvals/{id}"), &bob).await;
    assert_eq!(shown["status"], "approved");
    // Decided: no longer listed, and no second vote.
    let (_, _, list) = server.get("/v1/approvals", &bob).await;
    assert_eq!(list, json!([]));
    let (status, body) = server.vote(&id, "approve", &bob, None).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_quorum_counts_distinct_approvers() {
    let server = Server::start().await;
    let id = server.submit(2).await;
    let bob = server.dba("bob");
    let (status, body) = server.vote(&id, "approve", &bob, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    // The same approver again (with a fresh token): refused.
    let bob_again = server.dba("BOB");
    let (status, body) = server.vote(&id, "approve", &bob_again, None).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, body) = server
        .vote(&id, "approve", &server.dba("carol"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
}

#[tokio::test]
async fn nobody_approves_their_own_request() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    // The human the requester acts for, the requester itself, and an agent acting for alice.
    let alice = server.dba("alice");
    let planner = server.dba("planner-1");
    let for_alice = server
        .idp
        .token()
        .subject("helper")
        .kind("human")
        .groups(&["dba"])
        .on_behalf_of("alice")
        .sign();
    for token in [&alice, &planner, &for_alice] {
        for verb in ["approve", "deny"] {
            let (status, body) = server.vote(&id, verb, token, None).await;
            assert_error(status, &body, StatusCode::FORBIDDEN);
        }
    }
    assert!(server.broker.get(&id).await.unwrap().votes.is_empty());
}

#[tokio::test]
async fn only_humans_in_an_approver_group_vote() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    // Outside every approver group (and not a party): the request does not exist for them,
    // so voting reveals nothing about it.
    let outsider = server.human("dave", &["dev"]);
    let (status, body) = server.vote(&id, "approve", &outsider, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // In the group but not human: forbidden.
    let agent = server
        .idp
        .token()
        .subject("planner-2")
        .kind("planner")
        .groups(&["dba"])
        .sign();
    let (status, body) = server.vote(&id, "approve", &agent, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(
        server.broker.get(&id).await.unwrap().status,
        sod_approval::Status::Pending
    );
}

#[tokio::test]
async fn a_deny_is_final() {
    let server = Server::start().await;
    let id = server.submit(2).await;
    let (status, body) = server
        .vote(
            &id,
            "deny",
            &server.dba("carol"),
            Some(br#"{"comment":"not on a Friday"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    assert_eq!(body["votes"][0]["approve"], false);
    let (status, body) = server.vote(&id, "approve", &server.dba("bob"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

#[tokio::test]
async fn expired_requests_show_as_expired_and_cannot_be_decided() {
    let server = Server::start().await;
    let mut stale = request(1);
    stale.created_at -= 3600;
    stale.expires_at = stale.created_at + 60;
    let id = stale.id.clone();
    server.broker.store().insert(stale).await.unwrap();
    let bob = server.dba("bob");
    let (status, _, shown) = server.get(&format!("/v1/approvals/{id}"), &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["status"], "expired");
    let (_, _, list) = server.get("/v1/approvals", &bob).await;
    assert_eq!(list, json!([]));
    let (status, body) = server.vote(&id, "approve", &bob, None).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let bob = server.dba("bob");
    let bodies: [&[u8]; 7] = [
        b"{not json",
        br#"{"comment": 5}"#,
        br#"{"comment": "ok", "approve": false}"#,
        br#"["ok"]"#,
        b"\"ok\"",
        b"null",
        b"\xff\xfe",
    ];
    for body in bodies {
        let (status, answer) = server.vote(&id, "approve", &bob, Some(body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    assert!(server.broker.get(&id).await.unwrap().votes.is_empty());
    // An empty object and whitespace are fine.
    let id2 = server.submit(1).await;
    let (status, body) = server.vote(&id, "approve", &bob, Some(b"{}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.vote(&id2, "deny", &bob, Some(b" \n")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let bob = server.dba("bob");
    let comment = "x".repeat(70 * 1024);
    let body = serde_json::to_vec(&json!({ "comment": comment })).unwrap();
    let (status, answer) = server.vote(&id, "approve", &bob, Some(&body)).await;
    assert_error(status, &answer, StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked, so the size is only known while reading.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/approvals/{id}/approve HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {bob}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8 * 1024];
    for _ in 0..9 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if tcp.write_all(&frame).await.is_err() {
            break; // The server may stop reading once it has seen enough.
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(server.broker.get(&id).await.unwrap().votes.is_empty());
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let bob = server.dba("bob");
    for path in [
        "/",
        "/v1",
        "/v1/approval",
        "/v2/approvals",
        "/v1/approvals/",
        "/v1/approvals/x/y/z",
    ] {
        let (status, _, body) = server.get(path, &bob).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
    let wrong = [
        (Method::POST, "/v1/approvals".to_owned(), "GET"),
        (Method::DELETE, format!("/v1/approvals/{id}"), "GET"),
        (Method::GET, format!("/v1/approvals/{id}/approve"), "POST"),
        (Method::PUT, format!("/v1/approvals/{id}/deny"), "POST"),
        (Method::POST, "/v1/openapi.json".to_owned(), "GET"),
    ];
    for (method, path, allow) in wrong {
        let (status, headers, body) = server.call(method, &path, Some(&bob), None).await;
        assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], allow);
    }
}

#[tokio::test]
async fn openapi_document_names_every_route() {
    let server = Server::start().await;
    // No token needed.
    let (status, _, doc) = server
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc, openapi());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let routes = [
        ("/v1/approvals", "get"),
        ("/v1/approvals/{id}", "get"),
        ("/v1/approvals/{id}/approve", "post"),
        ("/v1/approvals/{id}/deny", "post"),
        ("/v1/approvals/{id}/revoke", "post"),
        ("/v1/openapi.json", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), routes.len());
    for (path, method) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{path} {method}");
        assert!(op["responses"]["200"].is_object(), "{path} {method}");
        if path != "/v1/openapi.json" {
            assert!(op["responses"]["401"].is_object(), "{path} {method}");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
    assert_eq!(
        doc["paths"]["/v1/openapi.json"]["get"]["security"],
        json!([])
    );
    // Every schema reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
}

#[tokio::test]
async fn serves_over_tls() {
    let server = Server::start_with(true).await;
    let id = server.submit(1).await;
    let bob = server.dba("bob");
    let (status, _, list) = server.get("/v1/approvals", &bob).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    let (status, body) = server.vote(&id, "approve", &bob, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Plain HTTP to the TLS port gets nowhere.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /v1/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn plaintext_is_refused_off_loopback() {
    let idp = OidcIssuer::new(ISS, AUD);
    let verifier = OidcVerifier::new(OidcConfig::new(
        ISS,
        AUD,
        JwksSource::Static(idp.jwks().to_string()),
    ))
    .unwrap();
    let broker = Broker::new(Arc::new(MemoryStore::new()));
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await.unwrap();
    let result = tokio::time::timeout(
        DEADLINE,
        ApprovalApi::new(broker, Arc::new(verifier)).serve(listener, None, std::future::pending()),
    )
    .await
    .expect("refused at once");
    assert!(
        matches!(result, Err(ServeError::Plaintext(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn shuts_down_gracefully() {
    let server = Server::start().await;
    let bob = server.dba("bob");
    // An idle keep-alive connection does not hold the shutdown up.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("/v1/approvals")
                .header(header::HOST, "localhost")
                .header(header::AUTHORIZATION, format!("Bearer {bob}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let addr = server.addr;
    server.stop().await.unwrap();
    // The idle connection was closed and the port no longer accepts.
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn approvals_are_revoked_by_their_parties_and_approvers_only() {
    let server = Server::start().await;
    let id = server.submit(1).await;
    let (status, body) = server.vote(&id, "approve", &server.dba("bob"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Someone outside: forbidden (or not even shown the request).
    let outsider = server.human("mallory", &["dev"]);
    let (status, body) = server.vote(&id, "revoke", &outsider, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // An approver revokes: it covers nothing from now on; a second revoke conflicts.
    let (status, body) = server.vote(&id, "revoke", &server.dba("erin"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "revoked");
    let (status, body) = server.vote(&id, "revoke", &server.dba("erin"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}
