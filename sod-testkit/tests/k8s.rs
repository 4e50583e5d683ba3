//! The test Kubernetes API server against its real peers: the installed `kubectl` (through its
//! version dispatcher, which must pick 1.32) with a kubeconfig from
//! `TestApiServer::kubeconfig_yaml`, and raw HTTP for what kubectl does not show (exact `Status`
//! bodies, list shapes, watches from a resourceVersion, refusals).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sod_testkit::k8s::{SeenRequest, TestApiServer};
use sod_testkit::poll_until;
use sod_testkit::ssh::{run, run_with_input};

/// The deadline of every kubectl command and every wait.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A server, a kubeconfig for it and a private HOME (kubectl caches discovery there).
struct Cluster {
    server: TestApiServer,
    dir: tempfile::TempDir,
    /// Serves the server's connections; dropped last, after the server.
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(TestApiServer::start())
            .expect("the test API server starts");
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig_yaml())
            .expect("kubeconfig written");
        Cluster {
            server,
            dir,
            runtime,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `kubectl args...` with nothing from the caller's environment but `PATH`.
    fn kubectl(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", self.kubeconfig());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.kubectl(args), TIMEOUT).expect("kubectl runs")
    }

    /// Runs kubectl, which must succeed with nothing on stderr; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let (stdout, stderr) = texts(&output);
        assert!(
            output.status.success() && stderr.is_empty(),
            "kubectl {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        stdout
    }

    /// The last request whose path (and query) starts with `prefix`.
    fn last_request(&self, method: &str, prefix: &str) -> SeenRequest {
        self.server
            .requests()
            .into_iter()
            .rfind(|r| r.method == method && r.path_and_query.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {method} {prefix}... request"))
    }

    /// A raw HTTP/1.1 request over plain TCP (the gateway's side), with the server's token
    /// unless `authorization` says otherwise; the answer's status, headers and body.
    fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let addr = self.server.addr();
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        if !headers.iter().any(|(name, _)| *name == "authorization") {
            builder = builder.header("authorization", format!("Bearer {}", self.server.token()));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        self.runtime.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects");
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
                .await
                .expect("answered in time")
                .expect("response");
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(TIMEOUT, body.collect())
                .await
                .expect("body in time")
                .expect("body")
                .to_bytes();
            let body = String::from_utf8(body.to_vec()).expect("UTF-8 body");
            (parts.status, parts.headers, body)
        })
    }

    /// A raw request whose answer is JSON.
    fn http_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let (status, response_headers, text) = self.http(method, path, headers, body);
        assert_eq!(
            response_headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
        (status, value)
    }
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Splits kubectl's table output into rows of cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn header(value: &SeenRequest, name: &str) -> String {
    value
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn pending_pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        "status": {"phase": "Pending"},
    })
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long-running kubectl (`--watch`, `port-forward`) whose stdout and stderr are collected as
/// they come, to be polled; killed when dropped.
struct Background {
    child: KillOnDrop,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    fn spawn(mut command: Command) -> Background {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = KillOnDrop(command.spawn().expect("kubectl starts"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.0.stdout.take().expect("stdout");
        let err = child.0.stderr.take().expect("stderr");
        // The readers end at the end of their pipe, when kubectl exits or is killed.
        collect(out, Arc::clone(&stdout));
        collect(err, Arc::clone(&stderr));
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// Everything kubectl printed on stdout so far.
    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything kubectl printed on stderr so far.
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Its exit status, if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.0.try_wait().expect("kubectl's status")
    }
}

/// Appends what `pipe` gives to `sink`, on a thread of its own, until the pipe ends.
fn collect(mut pipe: impl std::io::Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read @ 1..) = pipe.read(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..read]);
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&text);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// kubectl
// ---------------------------------------------------------------------------------------------

#[test]
fn kubectl_version_reports_server_1_32() {
    let cluster = Cluster::start();
    let version: Value =
        serde_json::from_str(&cluster.ok(&["version", "-o", "json"])).expect("JSON version");
    let server = &version["serverVersion"];
    assert_eq!(
        (&server["major"], &server["minor"], &server["gitVersion"]),
        (&json!("1"), &json!("32"), &json!("v1.32.4"))
    );
    assert_eq!(server["platform"], "linux/amd64");
    // The dispatcher asks first, with the kubeconfig's token, to pick the kubectl to run.
    let first = &cluster.server.requests()[0];
    assert_eq!(
        (first.method.as_str(), first.path_and_query.as_str()),
        ("GET", "/version?timeout=5s")
    );
    assert_eq!(
        header(first, "authorization"),
        format!("Bearer {}", cluster.server.token())
    );
}

#[test]
fn kubectl_get_pods_prints_the_server_table() {
    let cluster = Cluster::start();
    let table = rows(&cluster.ok(&["get", "pods"]));
    assert_eq!(table[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(table.len(), 3, "{table:?}");
    for (row, name) in table[1..].iter().zip(["web-1", "web-2"]) {
        assert_eq!(row[..4], [name, "1/1", "Running", "0"]);
        assert!(
            row[4].ends_with('s') || row[4].ends_with('m'),
            "age {:?}",
            row[4]
        );
    }
    let list = cluster.last_request("GET", "/api/v1/namespaces/default/pods");
    assert_eq!(
        list.path_and_query,
        "/api/v1/namespaces/default/pods?limit=500"
    );
    assert!(header(&list, "accept").starts_with("application/json;as=Table;v=v1;g=meta.k8s.io,"));
    // The dispatcher handed over to kubectl 1.32, the one that speaks WebSocket exec.
    let agent = header(&list, "user-agent");
    assert!(
        agent.starts_with("kubectl") && agent.contains("/v1.32."),
        "{agent}"
    );

    let wide = rows(&cluster.ok(&["get", "pod", "web-1", "-o", "wide"]));
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert_eq!(
        wide[1][5..],
        ["10.244.0.11", "demo-node", "<none>", "<none>"]
    );
}

#[test]
fn kubectl_get_pods_as_json_yaml_and_jsonpath() {
    let cluster = Cluster::start();
    let list: Value =
        serde_json::from_str(&cluster.ok(&["get", "pods", "-o", "json"])).expect("JSON list");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    let names: Vec<_> = items
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("web-1"), json!("web-2")]);
    assert!(
        items
            .iter()
            .all(|p| p["kind"] == "Pod" && p["status"]["phase"] == "Running")
    );

    let yaml = cluster.ok(&["get", "pod", "web-2", "-o", "yaml"]);
    let lines: Vec<&str> = yaml.lines().collect();
    for expected in [
        "apiVersion: v1",
        "kind: Pod",
        "  name: web-2",
        "  namespace: default",
        "  phase: Running",
        "  podIP: 10.244.0.12",
    ] {
        assert!(lines.contains(&expected), "{expected:?} not in\n{yaml}");
    }

    let names = cluster.ok(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(names, "web-1 web-2");
    let selected = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        "metadata.name=web-2",
        "-o",
        "name",
    ]);
    assert_eq!(selected, "pod/web-2\n");
}

#[test]
fn kubectl_get_secrets_sorted_and_a_value_by_jsonpath() {
    let cluster = Cluster::start();
    let table = rows(&cluster.ok(&["get", "secrets", "--sort-by=.metadata.name"]));
    assert_eq!(table[0], ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(table[1][..3], ["api-token", "Opaque", "1"]);
    assert_eq!(table[2][..3], ["db-credentials", "Opaque", "2"]);
    assert_eq!(table.len(), 3);
    // Sorting on any field needs the whole objects in the Table's rows.
    let list = cluster.last_request("GET", "/api/v1/namespaces/default/secrets");
    assert_eq!(
        list.path_and_query,
        "/api/v1/namespaces/default/secrets?includeObject=Object"
    );

    let password = cluster.ok(&[
        "get",
        "secret",
        "db-credentials",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(password, STANDARD.encode("s3cr3t-pa55"));
}

#[test]
fn kubectl_get_pods_watch_sees_a_new_pod() {
    let cluster = Cluster::start();
    let watching = Background::spawn(cluster.kubectl(&["get", "pods", "--watch"]));

    // Written once kubectl watches, the pod must come as a watch event, not in the list.
    poll_until(TIMEOUT, "kubectl to start watching", || {
        cluster
            .server
            .requests()
            .iter()
            .any(|r| r.path_and_query.contains("watch=true"))
            .then_some(())
    });
    cluster.server.put("v1", "pods", pending_pod("web-3"));
    let printed = poll_until(TIMEOUT, "web-3 in kubectl's output", || {
        let printed = watching.stdout();
        printed
            .lines()
            .any(|l| l.starts_with("web-3 "))
            .then_some(printed)
    });
    drop(watching);

    let table = rows(&printed);
    assert_eq!(table[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(table[1][..3], ["web-1", "1/1", "Running"]);
    assert_eq!(table[2][..3], ["web-2", "1/1", "Running"]);
    assert_eq!(table[3][..4], ["web-3", "0/1", "Pending", "0"]);
    assert_eq!(table.len(), 4, "{printed}");
    let watch = cluster.last_request("GET", "/api/v1/namespaces/default/pods?");
    assert!(
        watch.path_and_query.contains("resourceVersion="),
        "{}",
        watch.path_and_query
    );
}

#[test]
fn kubectl_apply_creates_then_configures() {
    let cluster = Cluster::start();
    let manifest = cluster.dir.path().join("config.yaml");
    let write = |level: &str| {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-config\ndata:\n  LOG_LEVEL: {level}\n"
        );
        std::fs::write(&manifest, yaml).expect("manifest written");
    };
    let path = manifest.to_str().expect("UTF-8 path");
    let apply = ["apply", "--validate=false", "-f", path];
    let level = || {
        cluster
            .server
            .object("configmaps", Some("default"), "demo-config")
            .map(|cm| cm["data"]["LOG_LEVEL"].clone())
    };

    write("info");
    assert_eq!(cluster.ok(&apply), "configmap/demo-config created\n");
    assert_eq!(level(), Some(json!("info")));
    let created = cluster.last_request("POST", "/api/v1/namespaces/default/configmaps");
    assert_eq!(
        created.path_and_query,
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-client-side-apply&fieldValidation=Ignore"
    );

    write("debug");
    assert_eq!(cluster.ok(&apply), "configmap/demo-config configured\n");
    assert_eq!(level(), Some(json!("debug")));
    let patch = cluster.last_request("PATCH", "/api/v1/namespaces/default/configmaps/demo-config");
    assert_eq!(
        header(&patch, "content-type"),
        "application/strategic-merge-patch+json"
    );

    assert_eq!(cluster.ok(&apply), "configmap/demo-config unchanged\n");
    let object = cluster
        .server
        .object("configmaps", Some("default"), "demo-config")
        .expect("stored");
    let applied =
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation");
    assert!(applied.contains(r#""LOG_LEVEL":"debug""#), "{applied}");
}

#[test]
fn kubectl_delete_configmap() {
    let cluster = Cluster::start();
    assert_eq!(
        cluster.ok(&["delete", "configmap", "app-config"]),
        "configmap \"app-config\" deleted\n"
    );
    assert_eq!(
        cluster
            .server
            .object("configmaps", Some("default"), "app-config"),
        None
    );
    let output = cluster.run(&["get", "configmap", "app-config"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output),
        (
            String::new(),
            "Error from server (NotFound): configmaps \"app-config\" not found\n".to_owned()
        )
    );
}

#[test]
fn kubectl_create_sends_protobuf_and_dry_run_changes_nothing() {
    let cluster = Cluster::start();
    assert_eq!(
        cluster.ok(&[
            "create",
            "secret",
            "generic",
            "extra",
            "--from-literal=key=value"
        ]),
        "secret/extra created\n"
    );
    let create = cluster.last_request("POST", "/api/v1/namespaces/default/secrets");
    assert_eq!(
        header(&create, "content-type"),
        "application/vnd.kubernetes.protobuf"
    );
    let secret = cluster
        .server
        .object("secrets", Some("default"), "extra")
        .expect("stored");
    assert_eq!(secret["data"], json!({"key": STANDARD.encode("value")}));
    assert_eq!(secret["type"], "Opaque");

    assert_eq!(
        cluster.ok(&[
            "create",
            "configmap",
            "draft",
            "--from-literal=a=b",
            "--dry-run=server"
        ]),
        "configmap/draft created (server dry run)\n"
    );
    let create = cluster.last_request("POST", "/api/v1/namespaces/default/configmaps");
    assert!(
        create.path_and_query.contains("dryRun=All"),
        "{}",
        create.path_and_query
    );
    assert_eq!(
        cluster
            .server
            .object("configmaps", Some("default"), "draft"),
        None
    );
}

#[test]
fn kubectl_exec_streams_stdout_stderr_and_the_exit_code() {
    let cluster = Cluster::start();
    let output = cluster.run(&[
        "exec",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        texts(&output),
        (
            "out\n".to_owned(),
            "err\ncommand terminated with exit code 3\n".to_owned()
        )
    );
    let exec = cluster.last_request("GET", "/api/v1/namespaces/default/pods/web-1/exec?");
    assert_eq!(
        exec.path_and_query,
        "/api/v1/namespaces/default/pods/web-1/exec?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&container=web&stderr=true&stdout=true"
    );
    assert_eq!(header(&exec, "upgrade"), "websocket");
    assert_eq!(header(&exec, "sec-websocket-protocol"), "v5.channel.k8s.io");

    let output = cluster.run(&["exec", "web-2", "--", "sh", "-c", "echo $HOSTNAME"]);
    assert_eq!(texts(&output), ("web-2\n".to_owned(), String::new()));
    assert!(output.status.success());
}

#[test]
fn kubectl_exec_feeds_stdin() {
    let cluster = Cluster::start();
    let input = b"hello\nworld\n";
    let output = run_with_input(
        &mut cluster.kubectl(&["exec", "-i", "web-1", "--", "cat"]),
        input,
        TIMEOUT,
    )
    .expect("kubectl runs");
    assert_eq!(texts(&output), ("hello\nworld\n".to_owned(), String::new()));
    assert!(output.status.success(), "{}", output.status);
}

#[test]
fn kubectl_exec_into_a_missing_pod_is_not_found() {
    let cluster = Cluster::start();
    let output = cluster.run(&["exec", "nope", "--", "true"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output),
        (
            String::new(),
            "Error from server (NotFound): pods \"nope\" not found\n".to_owned()
        )
    );
}

/// kubectl's SPDY fallback, as older kubectls and servers without WebSocket exec use it.
fn spdy(mut kubectl: Command) -> Command {
    kubectl.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    kubectl
}

#[test]
fn kubectl_exec_over_spdy_streams_stdout_stderr_and_the_exit_code() {
    let cluster = Cluster::start();
    let mut kubectl = spdy(cluster.kubectl(&[
        "exec",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    let output = run(&mut kubectl, TIMEOUT).expect("kubectl runs");
    assert_eq!(
        texts(&output),
        (
            "out\n".to_owned(),
            "err\ncommand terminated with exit code 3\n".to_owned()
        )
    );
    assert_eq!(output.status.code(), Some(3));
    let exec = cluster.last_request("POST", "/api/v1/namespaces/default/pods/web-1/exec?");
    assert_eq!(
        exec.path_and_query,
        "/api/v1/namespaces/default/pods/web-1/exec?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&container=web&stderr=true&stdout=true"
    );
    assert_eq!(header(&exec, "upgrade"), "SPDY/3.1");
    assert_eq!(header(&exec, "connection"), "Upgrade");
    let offered: Vec<_> = exec
        .headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        offered,
        [
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io"
        ]
    );

    let mut kubectl = spdy(cluster.kubectl(&["exec", "web-2", "--", "sh", "-c", "echo $HOSTNAME"]));
    let output = run(&mut kubectl, TIMEOUT).expect("kubectl runs");
    assert_eq!(texts(&output), ("web-2\n".to_owned(), String::new()));
    assert!(output.status.success(), "{}", output.status);
}

#[test]
fn kubectl_exec_over_spdy_feeds_stdin() {
    let cluster = Cluster::start();
    // More than one read's worth, so that stdin spans several data frames.
    let input: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let output = run_with_input(
        &mut spdy(cluster.kubectl(&["exec", "-i", "web-1", "--", "cat"])),
        &input,
        TIMEOUT,
    )
    .expect("kubectl runs");
    assert!(output.status.success(), "{}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(
        output.stdout == input,
        "{} bytes back of {}",
        output.stdout.len(),
        input.len()
    );
    let exec = cluster.last_request(
        "POST",
        "/api/v1/namespaces/default/pods/web-1/exec?command=cat&",
    );
    assert_eq!(header(&exec, "upgrade"), "SPDY/3.1");
}

#[test]
fn kubectl_exec_over_spdy_into_a_missing_pod_is_not_found() {
    let cluster = Cluster::start();
    let output = run(
        &mut spdy(cluster.kubectl(&["exec", "nope", "--", "true"])),
        TIMEOUT,
    )
    .expect("kubectl runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output),
        (
            String::new(),
            "Error from server (NotFound): pods \"nope\" not found\n".to_owned()
        )
    );
}

/// A TCP echo server on 127.0.0.1, the test server's stand-in for a pod's port (it forwards a
/// pod's port N to 127.0.0.1:N): each connection gets back what it sends, and its end once it
/// ends its side. Returns the port; the server lives as long as the cluster's runtime.
fn echo_server(cluster: &Cluster) -> u16 {
    let listener = cluster
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("echo server binds");
    let port = listener.local_addr().expect("echo server address").port();
    cluster.runtime.spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut from, mut to) = socket.into_split();
                let _ = tokio::io::copy(&mut from, &mut to).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut to).await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 nothing listens on (one just freed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("address").port()
}

/// Starts `kubectl port-forward TARGET :REMOTE` (kubectl picks the local port, so that no other
/// test can take it in between) and waits until it listens; returns it and the local port.
fn port_forward(cluster: &Cluster, target: &str, remote: u16) -> (Background, u16) {
    let remote_arg = format!(":{remote}");
    let mut forwarding = Background::spawn(cluster.kubectl(&["port-forward", target, &remote_arg]));
    let suffix = format!(" -> {remote}");
    let local = poll_until(TIMEOUT, "kubectl port-forward to listen", || {
        let listening = forwarding.stdout().lines().find_map(|line| {
            let address = line.strip_prefix("Forwarding from 127.0.0.1:")?;
            address.strip_suffix(suffix.as_str())?.parse::<u16>().ok()
        });
        if listening.is_none()
            && let Some(status) = forwarding.exited()
        {
            panic!(
                "kubectl port-forward exited ({status}):\n{}",
                forwarding.stderr()
            );
        }
        listening
    });
    (forwarding, local)
}

/// Sends `payload` on a new connection to 127.0.0.1:`port` (from a thread, then ends its side)
/// while reading everything that comes back until the other side ends; returns that.
fn exchange(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut connection =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects to kubectl");
    connection
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let mut writing = connection.try_clone().expect("clones the connection");
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || {
        std::io::Write::write_all(&mut writing, &payload).expect("sends");
        writing
            .shutdown(std::net::Shutdown::Write)
            .expect("ends its side");
    });
    let mut received = Vec::new();
    connection
        .read_to_end(&mut received)
        .expect("reads until the end, in time");
    writer.join().expect("writer thread");
    received
}

#[test]
fn kubectl_port_forward_forwards_connections_to_a_local_port() {
    let cluster = Cluster::start();
    let remote = echo_server(&cluster);
    let (forwarding, local) = port_forward(&cluster, "pod/web-1", remote);

    // One connection, then another: each gets its pair of streams on the same SPDY connection,
    // its echo, and its end once the echo server ended its side.
    assert_eq!(
        exchange(local, b"hello through the pod\n"),
        b"hello through the pod\n"
    );
    // Several frames' worth each way.
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    assert!(
        exchange(local, &big) == big,
        "the big payload came back whole"
    );
    let handled = poll_until(TIMEOUT, "kubectl to report both connections", || {
        let stdout = forwarding.stdout();
        (stdout.matches("Handling connection for").count() == 2).then_some(stdout)
    });
    // kubectl listens on [::1] too where the machine has IPv6.
    let ipv6 = format!("Forwarding from [::1]:{local} -> {remote}");
    let lines: Vec<&str> = handled.lines().filter(|l| *l != ipv6).collect();
    let listening = format!("Forwarding from 127.0.0.1:{local} -> {remote}");
    let handling = format!("Handling connection for {local}");
    assert_eq!(lines, [&listening, &handling, &handling], "{handled}");
    assert_eq!(forwarding.stderr(), "");
    drop(forwarding);

    // kubectl asked for its WebSocket tunnel first, was refused, and fell back to SPDY (on its
    // own: KUBECTL_PORT_FORWARD_WEBSOCKETS is not needed).
    let path = "/api/v1/namespaces/default/pods/web-1/portforward";
    let attempts: Vec<SeenRequest> = cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.starts_with(path))
        .collect();
    let methods: Vec<(&str, &str)> = attempts
        .iter()
        .map(|r| (r.method.as_str(), r.path_and_query.as_str()))
        .collect();
    assert_eq!(methods, [("GET", path), ("POST", path)]);
    assert_eq!(header(&attempts[0], "upgrade"), "websocket");
    assert_eq!(
        header(&attempts[0], "sec-websocket-protocol"),
        "SPDY/3.1+portforward.k8s.io"
    );
    assert_eq!(header(&attempts[1], "upgrade"), "SPDY/3.1");
    assert_eq!(header(&attempts[1], "connection"), "Upgrade");
    assert_eq!(
        header(&attempts[1], "x-stream-protocol-version"),
        "portforward.k8s.io"
    );
}

#[test]
fn kubectl_port_forward_to_a_closed_port_reports_the_kubelets_error() {
    let cluster = Cluster::start();
    let remote = closed_port();
    let (mut forwarding, local) = port_forward(&cluster, "pod/web-2", remote);
    // The local connection is accepted, then closed once the server reported the failure.
    assert_eq!(exchange(local, b"anyone?"), b"");
    // As against a real cluster, kubectl then gives up on the whole port forward.
    let status = poll_until(TIMEOUT, "kubectl to give up", || forwarding.exited());
    assert_eq!(status.code(), Some(1));
    let pod = cluster
        .server
        .object("pods", Some("default"), "web-2")
        .expect("web-2");
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let stderr = forwarding.stderr();
    let reported = format!(
        "\"Unhandled Error\" err=\"an error occurred forwarding {local} -> {remote}: \
         error forwarding port {remote} to pod web-2_default, uid {uid}: failed to connect to \
         localhost:{remote} (the test server's 127.0.0.1:{remote}): dial tcp \
         127.0.0.1:{remote}: connect: connection refused\"\n"
    );
    assert!(stderr.contains(&reported), "{stderr}");
    assert!(
        stderr.ends_with("error: lost connection to pod\n"),
        "{stderr}"
    );
}

#[test]
fn kubectl_port_forward_to_a_missing_or_pending_pod_fails() {
    let cluster = Cluster::start();
    let output = cluster.run(&["port-forward", "pod/nope", "8080"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output),
        (
            String::new(),
            "Error from server (NotFound): pods \"nope\" not found\n".to_owned()
        )
    );
    cluster.server.put("v1", "pods", pending_pod("web-3"));
    let output = cluster.run(&["port-forward", "pod/web-3", "8080"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output),
        (
            String::new(),
            "error: unable to forward port because pod is not running. Current status=Pending\n"
                .to_owned()
        )
    );
    // kubectl checks both from the pod it gets: it asked for no port forward.
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .all(|r| !r.path_and_query.contains("/portforward")),
    );
}

#[test]
fn port_forward_refusals() {
    let cluster = Cluster::start();
    let path = "/api/v1/namespaces/default/pods/web-1/portforward";
    let spdy = [
        ("upgrade", "SPDY/3.1"),
        ("connection", "Upgrade"),
        ("x-stream-protocol-version", "portforward.k8s.io"),
    ];
    // The API server's checks: the pod, the verb (a Status).
    let (status, body) = cluster.http_json(
        "POST",
        "/api/v1/namespaces/default/pods/nope/portforward",
        &spdy,
        "",
    );
    assert_eq!(
        (status, body["reason"].clone(), body["message"].clone()),
        (
            StatusCode::NOT_FOUND,
            json!("NotFound"),
            json!("pods \"nope\" not found")
        )
    );
    let (status, body) = cluster.http_json("PUT", path, &spdy, "");
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("MethodNotAllowed"))
    );
    let (status, body) = cluster.http_json("POST", path, &[], "");
    assert_eq!(
        (status, body["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("Upgrade request required"))
    );
    // kubectl's WebSocket tunnel: refused, so that kubectl falls back to SPDY.
    let websocket = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
    ];
    let (status, body) = cluster.http_json("GET", path, &websocket, "");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "the test server forwards ports only over SPDY/3.1 (portforward.k8s.io), not over \
         WebSocket; offered: [SPDY/3.1+portforward.k8s.io]"
    );
    // The kubelet's negotiation (plain text, as Go's http.Error writes it).
    let exec_protocol = [
        ("upgrade", "SPDY/3.1"),
        ("connection", "Upgrade"),
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
    ];
    let (status, headers, body) = cluster.http("POST", path, &exec_protocol, "");
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::FORBIDDEN,
            "unable to upgrade: unable to negotiate protocol: client supports \
             [v4.channel.k8s.io], server accepts [portforward.k8s.io]\n"
        )
    );
    assert_eq!(
        headers["x-accepted-stream-protocol-versions"],
        "portforward.k8s.io"
    );
    let (status, _, body) = cluster.http("POST", path, &spdy[..2], "");
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required\n"
        )
    );
}

#[test]
fn kubectl_auth_can_i() {
    let cluster = Cluster::start();
    assert_eq!(cluster.ok(&["auth", "can-i", "get", "pods"]), "yes\n");
    let review = cluster.last_request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    );
    assert_eq!(
        header(&review, "content-type"),
        "application/vnd.kubernetes.protobuf"
    );
}

#[test]
fn kubectl_with_another_token_is_unauthorized() {
    let cluster = Cluster::start();
    let kubeconfig = cluster
        .server
        .kubeconfig_yaml()
        .replace(cluster.server.token(), "not-the-token");
    std::fs::write(cluster.kubeconfig(), kubeconfig).expect("kubeconfig written");
    let output = cluster.run(&["get", "pods"]);
    assert_eq!(output.status.code(), Some(1));
    let (stdout, stderr) = texts(&output);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr.lines().last(),
        Some(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP, plain (as a gateway's upstream)
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_are_status_objects() {
    let cluster = Cluster::start();
    let (status, body) = cluster.http_json(
        "GET",
        "/api/v1/namespaces/default/pods",
        &[("authorization", "Bearer wrong")],
        "",
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let (status, body) = cluster.http_json("GET", "/api/v1/namespaces/default/pods/x", &[], "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"x\" not found", "reason": "NotFound",
               "details": {"name": "x", "kind": "pods"}, "code": 404})
    );
    let (status, body) = cluster.http_json(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/x",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "deployments.apps \"x\" not found");
    assert_eq!(
        body["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );
    let (status, body) = cluster.http_json("GET", "/api/v1/namespaces/default/widgets", &[], "");
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::NOT_FOUND, json!("NotFound"))
    );

    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app-config"}}"#;
    let (status, body) = cluster.http_json(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/json")],
        cm,
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("AlreadyExists"))
    );
    assert_eq!(body["message"], "configmaps \"app-config\" already exists");

    let stale = r#"{"metadata":{"name":"app-config","resourceVersion":"1"},"data":{}}"#;
    let (status, body) = cluster.http_json(
        "PUT",
        "/api/v1/namespaces/default/configmaps/app-config",
        &[("content-type", "application/json")],
        stale,
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("Conflict"))
    );

    // The requests were all recorded, with their headers, the refused one too.
    let requests = cluster.server.requests();
    assert_eq!(
        header(&requests[requests.len() - 6], "authorization"),
        "Bearer wrong"
    );
    assert_eq!(
        requests.last().map(|r| r.body.clone()),
        Some(Bytes::from(stale))
    );
}

#[test]
fn lists_have_no_item_kinds_and_honour_selectors() {
    let cluster = Cluster::start();
    let (status, list) = cluster.http_json("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb&fieldSelector=metadata.name%21%3Dweb-1", &[], "");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&list["kind"], &list["apiVersion"]),
        (&json!("PodList"), &json!("v1"))
    );
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "web-2");
    assert!(items[0].get("kind").is_none() && items[0].get("apiVersion").is_none());
    let revision: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("list resourceVersion");
    assert!(revision >= 7);

    let (_, everywhere) = cluster.http_json("GET", "/api/v1/namespaces", &[], "");
    let names: Vec<_> = everywhere["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("default"), json!("kube-system")]);

    let (status, headers, text) = cluster.http(
        "GET",
        "/api/v1/namespaces/default/configmaps?includeObject=None",
        &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    let table: Value = serde_json::from_str(&text).expect("JSON table");
    assert_eq!(table["kind"], "Table");
    let cells = table["rows"][0]["cells"].as_array().expect("cells");
    assert_eq!(cells[..2], [json!("app-config"), json!(2)]);
    assert!(table["rows"][0].get("object").is_none());
}

#[test]
fn watches_replay_from_a_resource_version_and_end_at_their_timeout() {
    let cluster = Cluster::start();
    let (_, list) = cluster.http_json("GET", "/api/v1/namespaces/default/pods", &[], "");
    let revision = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("revision")
        .to_owned();
    // Written between the list and the watch: a real server replays it from its watch cache.
    cluster.server.put("v1", "pods", pending_pod("web-3"));
    cluster
        .server
        .put("v1", "configmaps", json!({"metadata": {"name": "other"}}));
    let (status, headers, text) = cluster.http(
        "GET",
        &format!(
            "/api/v1/namespaces/default/pods?watch=1&resourceVersion={revision}&timeoutSeconds=1"
        ),
        &[],
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["transfer-encoding"], "chunked");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event a line"))
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "web-3");

    // Without a resourceVersion: the current objects first.
    let (_, _, text) = cluster.http(
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1&labelSelector=app%3Dweb",
        &[],
        "",
    );
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event"))
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap_or_default(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(names, ["ADDED web-1", "ADDED web-2", "ADDED web-3"]);
}

#[test]
fn a_watch_misses_nothing_when_thousands_of_writes_come_at_once() {
    // More than the live fan-out holds, and more bytes than the sockets buffer while the client
    // reads nothing: the watcher falls behind and must catch up from the history.
    const WRITES: usize = 3000;
    let blob = "x".repeat(4096);
    let cluster = Cluster::start();
    let addr = cluster.server.addr();
    let request = Request::builder()
        .uri("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=burst%3Dyes")
        .header("host", addr.to_string())
        .header(
            "authorization",
            format!("Bearer {}", cluster.server.token()),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    // The watch is subscribed once its response has started.
    let mut body = cluster.runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body()
    });
    for i in 0..WRITES {
        let labels = json!({"burst": "yes"});
        let object = json!({"metadata": {"name": format!("burst-{i}"), "labels": labels},
                            "data": {"blob": blob}});
        cluster.server.put("v1", "configmaps", object);
    }
    let text = cluster.runtime.block_on(async {
        let mut text = String::new();
        while text.lines().count() < WRITES {
            let frame = tokio::time::timeout(TIMEOUT, body.frame())
                .await
                .expect("events in time")
                .expect("the watch goes on")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
            }
        }
        text
    });
    let events: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event"))
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap_or_default(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let expected: Vec<String> = (0..WRITES).map(|i| format!("ADDED burst-{i}")).collect();
    assert!(
        events == expected,
        "{} events, first differences: {:?}",
        events.len(),
        events
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect::<Vec<_>>()
    );
}

#[test]
fn patches_and_dry_runs() {
    let cluster = Cluster::start();
    let path = "/api/v1/namespaces/default/configmaps/app-config";
    let (status, patched) = cluster.http_json(
        "PATCH",
        path,
        &[("content-type", "application/merge-patch+json")],
        r#"{"data":{"LOG_LEVEL":"debug","DATABASE_HOST":null}}"#,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["data"], json!({"LOG_LEVEL": "debug"}));
    let (status, patched) = cluster.http_json(
        "PATCH",
        path,
        &[("content-type", "application/json-patch+json")],
        r#"[{"op":"add","path":"/data/NEW","value":"1"}]"#,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["data"], json!({"LOG_LEVEL": "debug", "NEW": "1"}));

    let before = cluster
        .server
        .object("configmaps", Some("default"), "app-config");
    let (status, answer) = cluster.http_json(
        "PATCH",
        &format!("{path}?dryRun=All"),
        &[("content-type", "application/strategic-merge-patch+json")],
        r#"{"data":{"LOG_LEVEL":"trace"}}"#,
    );
    assert_eq!(
        (status, answer["data"]["LOG_LEVEL"].clone()),
        (StatusCode::OK, json!("trace"))
    );
    let (status, deleted) = cluster.http_json("DELETE", &format!("{path}?dryRun=All"), &[], "");
    assert_eq!(
        (status, deleted["metadata"]["name"].clone()),
        (StatusCode::OK, json!("app-config"))
    );
    assert_eq!(
        cluster
            .server
            .object("configmaps", Some("default"), "app-config"),
        before
    );

    let (status, deleted) = cluster.http_json("DELETE", path, &[], "");
    assert_eq!(
        (status, deleted["kind"].clone()),
        (StatusCode::OK, json!("ConfigMap"))
    );
    let (status, missing) = cluster.http_json("DELETE", path, &[], "");
    assert_eq!(
        (status, missing["reason"].clone()),
        (StatusCode::NOT_FOUND, json!("NotFound"))
    );
}

#[test]
fn exec_refusals_are_status_objects() {
    let cluster = Cluster::start();
    let exec = "/api/v1/namespaces/default/pods/web-1/exec?command=true&stdout=true";
    // The API server checks the pod and the query (a Status); the kubelet negotiates the
    // protocol (plain text, as Go's http.Error writes it).
    let (status, body) = cluster.http_json(
        "POST",
        "/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=true",
        &[("upgrade", "SPDY/3.1"), ("connection", "Upgrade")],
        "",
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::NOT_FOUND, json!("NotFound"))
    );
    let spdy = [("upgrade", "SPDY/3.1"), ("connection", "Upgrade")];
    let (status, headers, body) = cluster.http("POST", exec, &spdy, "");
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required\n"
        )
    );
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let v1 = [
        ("upgrade", "SPDY/3.1"),
        ("connection", "Upgrade"),
        ("x-stream-protocol-version", "channel.k8s.io"),
    ];
    let (status, headers, body) = cluster.http("POST", exec, &v1, "");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        "unable to upgrade: unable to negotiate protocol: client supports [channel.k8s.io], \
         server accepts [v5.channel.k8s.io v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io]\n"
    );
    let accepted: Vec<_> = headers
        .get_all("x-accepted-stream-protocol-versions")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        accepted,
        [
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io"
        ]
    );
    let websocket = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        (
            "sec-websocket-protocol",
            "v3.channel.k8s.io, channel.k8s.io",
        ),
    ];
    let (status, body) = cluster.http_json("GET", exec, &websocket, "");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("v5.channel.k8s.io")),
        "{body}"
    );
    let (status, body) = cluster.http_json(
        "GET",
        "/api/v1/namespaces/default/pods/web-1/attach?stdout=true",
        &websocket,
        "",
    );
    assert_eq!(
        (status, body["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("attach is not supported by the test server")
        )
    );
}
