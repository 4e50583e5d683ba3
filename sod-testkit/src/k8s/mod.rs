//! A **test** Kubernetes API server, for sod's tests and `sod demo`: not an API server.
//!
//! [`TestApiServer`] answers the requests the real `kubectl` (1.32, as its `/version` says) and the
//! Rust `kube` client make, the way a real API server answers them — discovery, Tables, watches,
//! Status errors, exec over WebSocket and SPDY, port forwarding over SPDY — from an in-memory
//! store. It has no admission, no validation beyond names and namespaces, no defaulting beyond a
//! few fields, one bearer token and no authorization (every SelfSubjectAccessReview is allowed).
//! Exec runs the command as a real process on this machine; port forwarding connects a pod's
//! container port N to **port N of 127.0.0.1 on this machine** (any pod, any port: a test runs a
//! real server on a local port and forwards to it). It speaks HTTP/1.1, plain (TLS is the gateway's
//! job) and, on the same port, over TLS for kubectl used directly: client-go sends a kubeconfig's
//! token only to `https://` servers.
//!
//! Where it is faithful, so that a gateway in front of it meets what it will meet in production:
//!
//! - discovery: `/version`, `/api`, `/apis`, `/apis/{group}` and the `APIResourceList`s, in
//!   their legacy form (clients asking for aggregated discovery fall back to it);
//! - objects of the resources in `discovery::RESOURCES` (core pods, secrets, configmaps,
//!   namespaces, services, serviceaccounts, events; apps deployments; rbac roles and bindings):
//!   get, list, watch, create, update, patch, delete, deletecollection, `dryRun=All`, label
//!   and field selectors, optimistic concurrency on resourceVersion, `Status` errors;
//! - answers as objects, `Table`s (`kubectl get`) or `PartialObjectMetadata`, by `Accept`;
//! - list items without `kind`/`apiVersion`, as the real server sends them;
//! - watches replaying from a list's resourceVersion, one JSON event per line;
//! - `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) and over SPDY/3.1
//!   (`v5` to `v2.channel.k8s.io`: kubectl with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, older
//!   clients), with a kubelet's exit-code `Status`, protocol negotiation and refusals;
//! - `pods/portforward` over SPDY/3.1 (`portforward.k8s.io`), as a kubelet serves it to
//!   `kubectl port-forward`: a pair of streams (`error`, `data`) per forwarded connection, paired
//!   by `requestid` (or by stream id for older clients), many on one connection, bytes copied
//!   both ways with half-closes, a failed connection reported on the error stream in the
//!   kubelet's words;
//! - request bodies in JSON, and in protobuf for the kinds kubectl's typed clients send that
//!   way (`auth can-i`, `create secret|configmap|namespace`), answered in JSON.
//!
//! Where it is not (details in each module): `limit`/`continue` are ignored (lists come whole); a
//! strategic merge patch is applied as a JSON merge patch (lists replaced, not merged by key);
//! server-side apply, `attach`, exec over SPDY with `channel.k8s.io` (v1), port forwarding over
//! WebSocket (both kubectl's SPDY-in-WebSocket tunnel, which a 1.32 server accepts and this one
//! refuses with a 400 so that kubectl falls back to SPDY, and the kubelet's `v4.channel.k8s.io`
//! form), protobuf answers and YAML are refused; SPDY sessions have no flow control (as spdystream,
//! on both sides of real Kubernetes, has none) and send no pings of their own; port forwarding has
//! no pod network (see above), no idle timeout, and containerd's one-second wait after a
//! connection's first side ends is a proper half-close here; exec allocates no terminal (resize
//! messages are dropped); `/openapi/v2` and `/openapi/v3` are 404, so `kubectl apply` needs
//! `--validate=false`; DELETE answers the deleted object for every resource (the real server
//! answers a `Status` for most); namespaces need not exist and deleting one deletes nothing else;
//! no BOOKMARK events except the one ending `sendInitialEvents`; pod logs are empty.

// A request goes server (connection, TLS sniffing, token, recording, routing) → discovery or
// api (the verbs) → store (objects, revisions, change fan-out), and comes back as JSON, a table
// or a watch stream; exec upgrades to a WebSocket (exec) or SPDY (spdy) session of its own, and
// port forwarding (portforward) to a SPDY session.
mod api; // get, list, watch, create, update, patch, delete on a resource path
mod discovery; // the resource catalog and /version, /api, /apis documents
mod exec; // pods/exec: checks, the local process, the WebSocket session
mod patch; // merge, strategic (as merge) and JSON patches
mod portforward; // pods/portforward: checks, the WebSocket refusal, the SPDY upgrade
mod proto; // the protobuf request bodies kubectl's typed clients send
mod seed; // the demo objects
mod select; // label and field selectors
mod server; // connections, authentication, request log, routing
mod spdy; // pods/exec and pods/portforward over SPDY/3.1: frames, header compression, sessions
mod status; // Status errors
mod store; // objects, resourceVersions, change history and broadcast
mod table; // meta.k8s.io Tables and PartialObjectMetadata
mod time; // RFC 3339 timestamps and kubectl-style ages
mod watch; // watch streams
mod wire; // bodies, query strings, Accept negotiation

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::tls::TestCa;

use server::Shared;
use store::Store;

/// One request as the server received it, whatever it answered.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: `/api/v1/namespaces/default/pods?limit=500`.
    pub path_and_query: String,
    /// Every header, as received (including `Authorization`).
    pub headers: http::HeaderMap,
    /// The body (empty for GET and for exec upgrades).
    pub body: Bytes,
}

/// A running test API server; dropping it stops it (the listener, every connection, watch,
/// exec and port-forward session, the processes exec started and the connections port
/// forwarding made).
pub struct TestApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca: TestCa,
    task: AbortHandle,
}

impl fmt::Debug for TestApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A random token no other server shares.
fn random_token() -> String {
    let mut bytes = [0u8; 24];
    // Should the system RNG fail, the port still makes the token unique to this server.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sod-test-{hex}")
}

impl TestApiServer {
    /// Binds 127.0.0.1 on an ephemeral port (plain HTTP/1.1) with a random bearer token, and
    /// seeds the demo objects ([`TestApiServer::seed_demo`]). Must be called within a tokio
    /// runtime, which then serves the requests.
    ///
    /// # Errors
    /// The listener or the exec working directory cannot be created.
    pub async fn start() -> io::Result<TestApiServer> {
        let server = TestApiServer::start_empty((Ipv4Addr::LOCALHOST, 0).into()).await?;
        server.seed_demo();
        Ok(server)
    }

    /// Like [`TestApiServer::start`], on `addr`, with no objects at all.
    ///
    /// # Errors
    /// As [`TestApiServer::start`].
    pub async fn start_empty(addr: SocketAddr) -> io::Result<TestApiServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let ca = TestCa::new("sod-testkit Kubernetes API CA");
        let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if !addr.ip().is_unspecified() && !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
        let mut tls = ca.issue(&["localhost"], &ips).server_config_owned();
        // HTTP/1.1 only: Go clients would otherwise pick HTTP/2, which this server does not speak.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let workdir = tempfile::Builder::new().prefix("sod-k8s-exec-").tempdir()?;
        let shared = Arc::new(Shared {
            addr,
            token: random_token(),
            store: Store::new(),
            requests: Mutex::new(Vec::new()),
            sessions: Mutex::new(JoinSet::new()),
            workdir,
        });
        let task = tokio::spawn(server::accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            Arc::clone(&shared),
        ));
        Ok(TestApiServer {
            addr,
            shared,
            ca,
            task: task.abort_handle(),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: plain HTTP/1.1, for a gateway's upstream connection.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`: the same port, over TLS with a certificate of [`Self::ca`]
    /// (for `localhost` and 127.0.0.1). Each connection is plain or TLS by its first byte.
    pub fn https_url(&self) -> String {
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        format!("https://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The CA that issued the server's TLS certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The only bearer token accepted; any other request is answered 401 (a `Status` with
    /// reason `Unauthorized`).
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A kubeconfig for using this server directly (cluster, token user, context `sod-test`
    /// with namespace `default`, selected), to be written to a file for `KUBECONFIG`.
    ///
    /// Its server is [`Self::https_url`] with the CA inline, not [`Self::url`]: kubectl
    /// (client-go) uses a kubeconfig's credentials only with `https://` servers, and would
    /// send no token to `http://`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: sod-test
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: sod-test
  user:
    token: {token}
contexts:
- name: sod-test
  context:
    cluster: sod-test
    user: sod-test
    namespace: default
current-context: sod-test
preferences: {{}}
",
            url = self.https_url(),
            ca = STANDARD.encode(self.ca.cert_pem()),
            token = self.token()
        )
    }

    /// Adds the demo objects: namespaces `default` and `kube-system`; in `default` the Secrets
    /// `db-credentials` (`username`=`app`, `password`=`s3cr3t-pa55`) and `api-token`
    /// (`token`=`tok-4f9a1c`), the ConfigMap `app-config` (`LOG_LEVEL: info`,
    /// `DATABASE_HOST: db.internal`), and the running pods `web-1` and `web-2` (label
    /// `app=web`, one container `web` running `nginx:1.27`).
    pub fn seed_demo(&self) {
        for (api_version, resource, object) in seed::demo_objects() {
            self.put(api_version, resource, object);
        }
    }

    /// Inserts or replaces an object of `resource` (plural, `pods`), as a write would: it gets
    /// a new resourceVersion and watches see it. `kind` and `apiVersion` are filled in when
    /// absent; the namespace is `metadata.namespace` (`default` when absent for a namespaced
    /// resource); uid and creationTimestamp are kept when given (to make old objects), else
    /// taken from the object replaced, else new.
    ///
    /// # Panics
    /// If `object` has no `metadata.name`.
    pub fn put(&self, api_version: &str, resource: &str, mut object: Value) {
        let def = discovery::find_by_name(resource);
        if object["apiVersion"].as_str().is_none_or(str::is_empty) {
            object["apiVersion"] = json!(api_version);
        }
        if let Some(def) = def {
            if object["kind"].as_str().is_none_or(str::is_empty) {
                object["kind"] = json!(def.kind);
            }
            let metadata = &mut object["metadata"];
            if def.namespaced && metadata["namespace"].as_str().is_none_or(str::is_empty) {
                metadata["namespace"] = json!("default");
            }
        }
        if let Err(error) = self.shared.store.put(resource, object) {
            panic!("TestApiServer::put({resource}): {error}");
        }
    }

    /// The stored object, if any (`namespace` `None` for cluster-scoped resources).
    pub fn object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.shared.store.get(resource, namespace, name)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.requests().clone()
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection (and the
        // watches they stream); exec and port-forward sessions run apart and are aborted here,
        // killing their processes and closing their forwarded connections.
        self.task.abort();
        self.shared.sessions().abort_all();
    }
}
