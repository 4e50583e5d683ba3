//! The `kube` client through the gateway, and requests a hostile client would send: path
//! tricks, impersonation, protobuf and gzip, Secrets through every read form.

mod support;

use http::{Request, StatusCode};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use support::*;

const PASSWORD_B64: &str = "czNjcjN0LXBhNTU=";

/// Sends a raw request through `client`; returns the status and the body.
async fn send(client: &kube::Client, request: Request<Vec<u8>>) -> (StatusCode, String) {
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("an answer");
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> http::request::Builder {
    Request::builder().method("GET").uri(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_client_works_unchanged_and_sees_masked_secrets() {
    let h = Harness::start().await;
    let planner = h.kube(&h.planner_token()).await;
    let pods: Api<Pod> = Api::namespaced(planner.clone(), "default");
    let names: Vec<String> = pods
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        names.contains(&"web-1".to_owned()) && names.contains(&"web-2".to_owned()),
        "{names:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(planner, "default");
    let secret = secrets.get("db-credentials").await.expect("get");
    let data = secret.data.expect("data");
    assert_eq!(data["password"].0, b"****");
    assert_eq!(data["username"].0, b"****");
    let refused = Api::<Pod>::namespaced(h.kube(&h.planner_token()).await, "kube-system")
        .list(&Default::default())
        .await
        .expect_err("refused");
    let kube::Error::Api(status) = refused else {
        panic!("not an API error: {refused}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("default-deny"),
        "{}",
        status.message
    );
    let executor = h.kube(&h.executor_token()).await;
    let secret = Api::<Secret>::namespaced(executor, "default")
        .get("db-credentials")
        .await
        .expect("get");
    assert_eq!(secret.data.expect("data")["password"].0, b"s3cr3t-pa55");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_canonical_paths_are_refused_before_anything_is_forwarded() {
    let h = Harness::start().await;
    let planner = h.kube(&h.planner_token()).await;
    let before = h.api.requests().len();
    for path in [
        "/api/v1/namespaces/default/../kube-system/secrets",
        "/api/v1/namespaces/default/./secrets",
        "/api/v1/namespaces/default//secrets",
        "/api/v1/namespaces/default/secrets/a%2Fb",
        "/api/v1/namespaces/kube-system%2Fsecrets",
    ] {
        let (status, body) = send(&planner, get(path).body(Vec::new()).expect("request")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains("k8s-request-info"), "{path}: {body}");
    }
    assert_eq!(
        h.api.requests().len(),
        before,
        "nothing reached the API server"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_headers_are_refused_and_credentials_never_pass() {
    let h = Harness::start().await;
    let executor = h.kube(&h.executor_token()).await;
    for (name, value) in [
        ("Impersonate-User", "system:admin"),
        ("Impersonate-Group", "system:masters"),
        ("Impersonate-Uid", "0"),
        ("Impersonate-Extra-scopes", "all"),
    ] {
        let request = get("/api/v1/namespaces/default/pods")
            .header(name, value)
            .body(Vec::new())
            .expect("request");
        let (status, body) = send(&executor, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
        assert!(body.contains("k8s-no-impersonation"), "{name}: {body}");
    }
    let (status, _) = send(
        &executor,
        get("/api/v1/namespaces/default/pods")
            .header("Cookie", "session=abc")
            .header("Proxy-Authorization", "Basic eDp5")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = h.api.requests().pop().expect("forwarded");
    for header in ["cookie", "proxy-authorization"] {
        assert!(!seen.headers.contains_key(header), "{header} passed");
    }
    assert!(
        seen.headers
            .keys()
            .all(|k| !k.as_str().starts_with("impersonate-")),
        "{:?}",
        seen.headers
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_gzip_and_tables_cannot_carry_secret_values_past_the_masker() {
    let h = Harness::start().await;
    let planner = h.kube(&h.planner_token()).await;
    let forms = [
        (
            "/api/v1/namespaces/default/secrets/db-credentials",
            "application/vnd.kubernetes.protobuf",
        ),
        (
            "/api/v1/namespaces/default/secrets",
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/cbor",
        ),
        (
            "/api/v1/namespaces/default/secrets?includeObject=Object",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ),
        (
            "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ddb-credentials",
            "application/json",
        ),
        (
            "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1",
            "application/json",
        ),
        ("/api/v1/namespaces/default/secrets/db-credentials", "*/*"),
        (
            "/api/v1/namespaces/default/secrets",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        ),
    ];
    for (path, accept) in forms {
        let request = get(path)
            .header("Accept", accept)
            .header("Accept-Encoding", "gzip")
            .body(Vec::new())
            .expect("request");
        let (status, body) = send(&planner, request).await;
        assert_eq!(status, StatusCode::OK, "{path} {accept}: {body}");
        assert!(body.contains("db-credentials"), "{path} {accept}: {body}");
        assert!(!body.contains(PASSWORD_B64), "{path} {accept}: {body}");
        let seen = h.api.requests().pop().expect("forwarded");
        let accept_seen = seen
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            !accept_seen.contains("protobuf") && !accept_seen.contains("cbor"),
            "{accept_seen}"
        );
        assert_eq!(
            seen.headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("identity")
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_applied_annotation_does_not_leak_what_apply_wrote() {
    let h = Harness::start().await;
    let executor = h.executor_token();
    let manifest = h.dir.path().join("s.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: default\nstringData:\n  key: applied-value-42\n",
    )
    .expect("manifest");
    ok(&h.kubectl(
        &executor,
        &[
            "apply",
            "--validate=false",
            "-f",
            &manifest.display().to_string(),
        ],
    ));
    let planner = h.planner_token();
    for args in [
        &["get", "secret", "applied", "-o", "json"][..],
        &["get", "secrets", "-o", "yaml"],
        &[
            "get",
            "secret",
            "applied",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    ] {
        let out = ok(&h.kubectl(&planner, args));
        assert!(!out.contains("applied-value-42"), "{args:?}: {out}");
        assert!(!out.contains("YXBwbGllZC12YWx1ZS00Mg"), "{args:?}: {out}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_outside_secrets_pass_the_profiles_and_the_detectors() {
    let h = Harness::start().await;
    h.api.put(
        "v1",
        "pods",
        serde_json::json!({
            "metadata": {"name": "job-1", "namespace": "default",
                "annotations": {"owner": "carol@example.com"}},
            "spec": {"containers": [{"name": "job", "image": "busybox",
                "env": [{"name": "NOTIFY", "value": "ops-team@example.org"},
                        {"name": "LEVEL", "value": "debug"}]}]},
        }),
    );
    let planner = h.kube(&h.planner_token()).await;
    for path in [
        "/api/v1/namespaces/default/pods/job-1",
        "/api/v1/namespaces/default/pods",
        "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
    ] {
        let (status, body) = send(&planner, get(path).body(Vec::new()).expect("request")).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            body.contains("job-1") && body.contains("\"debug\""),
            "{path}: {body}"
        );
        assert!(!body.contains("carol@example.com"), "{path}: {body}");
        assert!(!body.contains("ops-team@example.org"), "{path}: {body}");
    }
    // A profile rule selects a ConfigMap value by path; the object's bookkeeping stays intact.
    let (_, body) = send(
        &planner,
        get("/api/v1/namespaces/default/configmaps/app-config")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    let cm: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_ne!(cm["data"]["DATABASE_HOST"], "db.internal");
    assert_eq!(cm["data"]["LOG_LEVEL"], "info");
    let direct = h
        .api
        .object("configmaps", Some("default"), "app-config")
        .expect("seeded");
    assert_eq!(cm["metadata"], direct["metadata"]);
    // The executor sees all of it.
    let executor = h.kube(&h.executor_token()).await;
    let (_, body) = send(
        &executor,
        get("/api/v1/namespaces/default/pods/job-1")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    assert!(body.contains("ops-team@example.org"), "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_ends_after_the_idle_limit_masked_or_not() {
    let h = Harness::with(Options {
        watch_idle: Some(std::time::Duration::from_millis(500)),
        ..Options::default()
    })
    .await;
    for token in [h.executor_token(), h.planner_token()] {
        let client = h.kube(&token).await;
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            send(
                &client,
                get("/api/v1/namespaces/default/pods?watch=1")
                    .body(Vec::new())
                    .expect("request"),
            ),
        )
        .await
        .expect("the quiet watch ended");
        assert_eq!(answer.0, StatusCode::OK);
        assert!(answer.1.contains("web-1"), "{}", answer.1);
        assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_review_found_stays_closed() {
    let h = Harness::start().await;
    let planner = h.kube(&h.planner_token()).await;
    // A name without a namespace is every namespace's object of that name.
    let (status, body) = send(
        &planner,
        get("/api/v1/secrets?fieldSelector=metadata.name%3Ddb-credentials")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Escapes Go reads differently (`watch=%FF` is a watch to Go).
    let (status, body) = send(
        &planner,
        get("/api/v1/namespaces/default/configmaps?watch=%FF&timeoutSeconds=1")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("k8s-request-info"), "{body}");
    // A data key named `kind` does not make a ConfigMap something else to the profiles.
    h.api.put(
        "v1",
        "configmaps",
        serde_json::json!({"metadata": {"name": "spoof", "namespace": "default"},
            "data": {"kind": "Nothing", "DATABASE_HOST": "db.spoof.internal"}}),
    );
    for path in [
        "/api/v1/namespaces/default/configmaps/spoof",
        "/api/v1/namespaces/default/configmaps",
    ] {
        let (_, body) = send(&planner, get(path).body(Vec::new()).expect("request")).await;
        assert!(!body.contains("db.spoof.internal"), "{path}: {body}");
    }
    // A WebSocket upgrade for port-forward is not relayed as a terminal stream.
    let executor = h.kube(&h.executor_token()).await;
    let (status, body) = send(
        &executor,
        get("/api/v1/namespaces/default/pods/web-1/portforward?ports=5432")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
            .body(Vec::new())
            .expect("request"),
    )
    .await;
    assert_ne!(status, StatusCode::SWITCHING_PROTOCOLS, "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_configuration_and_patches_keep_masked_values_masked() {
    let h = Harness::start().await;
    // An applied ConfigMap keeps its data in the last-applied annotation.
    let executor = h.executor_token();
    let manifest = h.dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied-cm\n  namespace: default\ndata:\n  DATABASE_HOST: db.applied.internal\n",
    )
    .expect("manifest");
    ok(&h.kubectl(
        &executor,
        &[
            "apply",
            "--validate=false",
            "-f",
            &manifest.display().to_string(),
        ],
    ));
    let planner = h.planner_token();
    for args in [
        &["get", "configmap", "applied-cm", "-o", "json"][..],
        &["get", "configmaps", "-o", "yaml"],
        &[
            "get",
            "configmaps",
            "--sort-by=.metadata.name",
            "-o",
            "wide",
        ],
    ] {
        let out = ok(&h.kubectl(&planner, args));
        assert!(!out.contains("db.applied.internal"), "{args:?}: {out}");
    }
    // A masked principal may not copy a masked value somewhere it is not masked.
    let client = h.kube(&planner).await;
    let copy = || {
        Request::builder()
            .method("PATCH")
            .uri("/api/v1/namespaces/default/secrets/db-credentials?dryRun=All")
            .header("Content-Type", "application/json-patch+json")
            .body(
                br#"[{"op":"copy","from":"/data/password","path":"/metadata/annotations/x"}]"#
                    .to_vec(),
            )
            .expect("request")
    };
    let (status, _) = send(&client, copy()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "waits for approval first");
    h.approve_all().await;
    let (status, body) = send(&client, copy()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("k8s-masked-patch"), "{body}");
    assert!(!body.contains(PASSWORD_B64));
    // An executor's patch of a Secret reaches the API server; its value never the audit log.
    ok(&h.kubectl(
        &executor,
        &[
            "patch",
            "secret",
            "db-credentials",
            "-p",
            r#"{"stringData":{"extra":"patched-value-77"}}"#,
        ],
    ));
    let log = serde_json::to_string(&h.events()).expect("json");
    assert!(
        !log.contains("patched-value-77"),
        "the audit log holds a Secret value"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_cells_pass_the_detectors() {
    let h = Harness::start().await;
    // The STATUS column of `kubectl get pods` is computed from the pod's phase.
    h.api.put(
        "v1",
        "pods",
        serde_json::json!({"metadata": {"name": "odd-1", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "mail-bob@example.com"}}),
    );
    let out = ok(&h.kubectl(&h.planner_token(), &["get", "pods"]));
    assert!(out.contains("odd-1"), "{out}");
    assert!(!out.contains("bob@example.com"), "{out}");
    let out = ok(&h.kubectl(&h.executor_token(), &["get", "pods"]));
    assert!(out.contains("bob@example.com"), "{out}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_until_one_ends() {
    let h = Harness::with(Options {
        max_connections: Some(1),
        ..Options::default()
    })
    .await;
    let held = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    let client = h.kube(&h.executor_token()).await;
    let pods = || {
        get("/api/v1/namespaces/default/pods")
            .body(Vec::new())
            .expect("request")
    };
    assert!(
        client
            .send(pods().map(kube::client::Body::from))
            .await
            .is_err(),
        "a second connection is closed"
    );
    drop(held);
    sod_testkit::poll::poll_until_async(DEADLINE, "the connection slot to come back", || {
        let request = pods().map(kube::client::Body::from);
        let client = client.clone();
        async move {
            match client.send(request).await {
                Ok(r) if r.status() == StatusCode::OK => Some(()),
                _ => None,
            }
        }
    })
    .await;
    h.stop().await;
}
