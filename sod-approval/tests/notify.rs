//! Notifications against a real local HTTP receiver: webhooks are signed over the exact body,
//! retried on 5xx and not on 4xx, and a receiver that is down or hangs never blocks or fails the
//! broker.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sod_approval::{
    ApprovalRequest, Broker, MemoryStore, Notification, Notifier, Requester, TracingNotifier,
    WebhookError, WebhookNotifier,
};
use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Secret, Target};
use sod_testkit::poll_until_async;
use tokio::net::TcpListener;

const SECRET: &[u8] = b"webhook shared secret";
const DEADLINE: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A local HTTP receiver that records requests and answers the scripted statuses in order
/// (200 once the script is exhausted).
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (r, s) = (Arc::clone(&received), Arc::clone(&script));
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (received, script) = (Arc::clone(&r), Arc::clone(&s));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (received, script) = (Arc::clone(&received), Arc::clone(&script));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            received.lock().unwrap().push(Received {
                                headers: parts.headers,
                                body,
                            });
                            let status = script.lock().unwrap().pop_front().unwrap_or(200);
                            let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/sod", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (with a deadline) until at least `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        poll_until_async(DEADLINE, &format!("{n} webhook request(s)"), || {
            let got = self.received();
            async move { (got.len() >= n).then_some(got) }
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The policy terms the tests' approvals are given on.
fn spec() -> sod_core::policy::ApprovalSpec {
    sod_core::policy::ApprovalSpec {
        approver_groups: vec!["dba".into()],
        quorum: 1,
        ttl: std::time::Duration::from_secs(600),
    }
}

fn hook(url: &str) -> WebhookNotifier {
    WebhookNotifier::new(url, Secret::new(SECRET.to_vec()))
        .unwrap()
        .base_delay(Duration::from_millis(10))
        .attempt_timeout(Duration::from_secs(5))
}

fn request() -> ApprovalRequest {
    let op = Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        "DELETE FROM orders WHERE id = 7",
    )
    .build();
    ApprovalRequest::new(
        Requester::new("planner-1").on_behalf_of("alice"),
        &op,
        vec!["dba".into()],
        1,
        Duration::from_secs(600),
    )
    .rule("writes-need-a-dba")
}

fn bob() -> Principal {
    Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"])
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

/// Checks `X-Sod-Signature` against the exact body, as a receiver would.
fn assert_signed(r: &Received) {
    let signature = header(r, "x-sod-signature");
    let hex = signature.strip_prefix("sha256=").unwrap();
    let tag = sod_core::hex::decode(hex).unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    hmac::verify(&key, &r.body, &tag).expect("the signature verifies against the body");
    // And not against anything else.
    let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"another secret");
    assert!(hmac::verify(&wrong, &r.body, &tag).is_err());
    let mut tampered = r.body.to_vec();
    tampered.push(b' ');
    assert!(hmac::verify(&key, &tampered, &tag).is_err());
}

#[tokio::test]
async fn broker_posts_signed_events_for_submit_and_decide() {
    let receiver = Receiver::start(&[]).await;
    let broker = Broker::new(Arc::new(MemoryStore::new()))
        .notifier(Arc::new(TracingNotifier))
        .notifier(Arc::new(hook(&receiver.url())));

    let id = broker.submit(request()).await.unwrap();
    let got = receiver.wait_for(1).await;
    let requested = &got[0];
    assert_eq!(header(requested, "x-sod-event"), "requested");
    assert_eq!(header(requested, "content-type"), "application/json");
    assert_signed(requested);
    let body: Value = serde_json::from_slice(&requested.body).unwrap();
    assert_eq!(body["event"], "requested");
    assert_eq!(body["request"]["id"], id.as_str());
    assert_eq!(body["request"]["requester"]["id"], "planner-1");
    assert_eq!(
        body["request"]["operation"]["text"],
        "DELETE FROM orders WHERE id = 7"
    );

    broker
        .decide(&id, &bob(), true, Some("looks right".into()))
        .await
        .unwrap();
    let got = receiver.wait_for(2).await;
    let decided = &got[1];
    assert_eq!(header(decided, "x-sod-event"), "decided");
    assert_signed(decided);
    let body: Value = serde_json::from_slice(&decided.body).unwrap();
    assert_eq!(body["event"], "decided");
    assert_eq!(body["approver"], "bob");
    assert_eq!(body["approve"], true);
    assert_eq!(body["comment"], "looks right");
    assert_eq!(body["request"]["status"], "approved");
    assert_ne!(
        header(requested, "x-sod-delivery"),
        header(decided, "x-sod-delivery")
    );
}

fn notification() -> Notification {
    Notification::Requested { request: request() }
}

#[tokio::test]
async fn server_errors_are_retried_until_accepted() {
    let receiver = Receiver::start(&[503, 503, 200]).await;
    hook(&receiver.url())
        .attempts(5)
        .deliver(&notification())
        .await
        .unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 3, "two 503s, then accepted");
    // The same delivery, byte for byte, each time.
    for r in &got {
        assert_signed(r);
        assert_eq!(r.body, got[0].body);
        assert_eq!(
            header(r, "x-sod-delivery"),
            header(&got[0], "x-sod-delivery")
        );
    }
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let receiver = Receiver::start(&[500, 502, 503, 504, 500]).await;
    let err = hook(&receiver.url())
        .attempts(3)
        .deliver(&notification())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WebhookError::Status {
            status: 503,
            attempts: 3
        }
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let receiver = Receiver::start(&[400, 200]).await;
    let err = hook(&receiver.url())
        .attempts(5)
        .deliver(&notification())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WebhookError::Status {
            status: 400,
            attempts: 1
        }
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn connection_failures_are_retried_and_reported() {
    // A port nobody listens on: bind one, then close it.
    let closed = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        l.local_addr().unwrap()
    };
    let err = hook(&format!("http://{closed}/"))
        .attempts(3)
        .deliver(&notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::Transport { attempts: 3, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_hanging_receiver_times_out_per_attempt() {
    // Accepts connections (the kernel completes the handshake) but never answers.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let err = hook(&format!("http://{}/", silent.local_addr().unwrap()))
        .attempts(2)
        .attempt_timeout(Duration::from_millis(100))
        .deliver(&notification())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::Transport { attempts: 2, message } if message.contains("timed out")),
        "{err:?}"
    );
}

/// A notifier that panics.
struct Panicking;

impl Notifier for Panicking {
    fn notify(&self, _: &Notification) -> BoxFuture<'_, ()> {
        Box::pin(async { panic!("notifier bug") })
    }
}

#[tokio::test]
async fn unreachable_or_broken_notifiers_do_not_block_or_fail_the_broker() {
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let closed = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        l.local_addr().unwrap()
    };
    let receiver = Receiver::start(&[]).await;
    let broker = Broker::new(Arc::new(MemoryStore::new()))
        // Hangs for a minute per attempt, five times.
        .notifier(Arc::new(
            hook(&format!("http://{}/", silent.local_addr().unwrap()))
                .attempts(5)
                .attempt_timeout(Duration::from_secs(60)),
        ))
        .notifier(Arc::new(hook(&format!("http://{closed}/")).attempts(5)))
        .notifier(Arc::new(Panicking))
        // A working one, to know the others had their turn.
        .notifier(Arc::new(hook(&receiver.url())));

    let prompt = Duration::from_secs(2);
    let id = tokio::time::timeout(prompt, broker.submit(request()))
        .await
        .expect("submit returns promptly")
        .unwrap();
    let decided = tokio::time::timeout(prompt, broker.decide(&id, &bob(), true, None))
        .await
        .expect("decide returns promptly")
        .unwrap();
    assert_eq!(decided.status, sod_approval::Status::Approved);
    let got = receiver.wait_for(2).await;
    let events: Vec<&str> = got.iter().map(|r| header(r, "x-sod-event")).collect();
    assert!(events.contains(&"requested") && events.contains(&"decided"));
}

#[tokio::test]
async fn using_an_approval_is_announced() {
    let receiver = Receiver::start(&[]).await;
    let broker =
        Broker::new(Arc::new(MemoryStore::new())).notifier(Arc::new(hook(&receiver.url())));
    let op = Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        "DELETE FROM orders WHERE id = 7",
    )
    .build();
    let id = broker.submit(request()).await.unwrap();
    broker.decide(&id, &bob(), true, None).await.unwrap();
    let planner = Requester::new("planner-1").on_behalf_of("alice");
    assert!(
        broker
            .consume(&planner, &op, &spec(), None)
            .await
            .unwrap()
            .is_some()
    );
    let got = receiver.wait_for(3).await;
    let used = got
        .iter()
        .find(|r| header(r, "x-sod-event") == "used")
        .expect("a used event");
    assert_signed(used);
    let body: Value = serde_json::from_slice(&used.body).unwrap();
    assert_eq!(body["request"]["status"], "consumed");
}
