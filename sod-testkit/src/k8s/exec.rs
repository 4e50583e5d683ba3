//! `pods/{name}/exec`, running the command as a real local process: the checks an API server
//! makes before it proxies to the kubelet, the process, and exec over WebSocket. Exec over
//! SPDY/3.1 (`Upgrade: SPDY/3.1`, kubectl's fallback and older clients' only way) is in
//! [`super::spdy`].
//!
//! The WebSocket channel protocols are `v5.channel.k8s.io` and `v4.channel.k8s.io` (the best
//! one the client offers). Each binary message starts with its channel: 0 stdin, 1 stdout,
//! 2 stderr, 3 the final `Status` (JSON), 4 terminal resize; v5 adds 255, `[255, channel]`
//! closing a channel (kubectl sends `[255, 0]` at the end of its stdin, which closes the
//! command's stdin). Without v5 a client cannot end stdin, as with a real server.
//!
//! There is no container: the command runs with its arguments (no shell unless it is one) in the
//! server's temporary directory, with the server's environment and `HOSTNAME` set to the pod's
//! name. `tty=true` allocates no terminal; stderr then goes to the stdout channel, as a terminal
//! would merge them. `attach` is refused with a 400 `Status` (`portforward` is in
//! [`super::portforward`]).

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::server::{ApiRequest, Shared};
use super::spdy;
use super::status::ApiError;
use super::wire::{self, Body};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// How long to wait for the client's answer to our close frame before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// One exec, as requested.
pub(super) struct Exec {
    pub(super) pod: String,
    /// Never empty.
    pub(super) command: Vec<String>,
    pub(super) stdin: bool,
    pub(super) stdout: bool,
    pub(super) stderr: bool,
    pub(super) tty: bool,
    /// Whether the WebSocket v5 protocol (with channel close) was negotiated.
    pub(super) v5: bool,
    pub(super) workdir: PathBuf,
}

/// Answers `pods/{name}/{exec,attach}`: the WebSocket or SPDY upgrade, then the session in the
/// background.
pub(super) fn respond(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    subresource: &str,
    request: ApiRequest,
) -> Response<Body> {
    accept(shared, namespace, name, subresource, request).unwrap_or_else(|error| error.response())
}

fn accept(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    subresource: &str,
    mut request: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    if subresource == "attach" {
        return Err(ApiError::bad_request(
            "attach is not supported by the test server",
        ));
    }
    match request.method {
        // kubectl upgrades to WebSocket with GET, to SPDY with POST; a real server takes both.
        Method::GET | Method::POST => {}
        ref other => return Err(ApiError::method_not_allowed(other.as_str())),
    }
    let pod = shared
        .store
        .get("pods", Some(namespace), name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    check_container(&pod, name, request.query.get("container"))?;
    let query = &request.query;
    let command = query.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let (stdin, stdout, stderr) = (
        query.flag("stdin"),
        query.flag("stdout"),
        query.flag("stderr"),
    );
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let exec = Exec {
        pod: name.to_owned(),
        command,
        stdin,
        stdout,
        stderr,
        tty: query.flag("tty"),
        v5: false,
        workdir: shared.workdir.path().to_path_buf(),
    };
    let upgrade = request.header(header::UPGRADE).unwrap_or_default();
    if upgrade.eq_ignore_ascii_case(spdy::UPGRADE) {
        return Ok(match spdy::accept(exec, &mut request) {
            Ok((response, session)) => {
                spawn_session(shared, session);
                response
            }
            Err(refusal) => refusal.response(),
        });
    }
    let key = request.header(header::SEC_WEBSOCKET_KEY).map(str::to_owned);
    let is_websocket = upgrade.eq_ignore_ascii_case("websocket");
    let (true, Some(key), Some(on_upgrade)) = (is_websocket, key, request.on_upgrade.take()) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let offered: Vec<&str> = request
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let protocol = [V5, V4]
        .into_iter()
        .find(|p| offered.contains(p))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the test server speaks only {V5} and {V4} over WebSocket; offered: [{}]",
                offered.join(", ")
            ))
        })?;
    let exec = Exec {
        v5: protocol == V5,
        ..exec
    };

    let mut response = Response::new(wire::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    spawn_session(shared, session(on_upgrade, exec));
    Ok(response)
}

/// Runs an exec or port-forward session apart from the request that started it, until it ends
/// or the server is dropped.
pub(super) fn spawn_session(shared: &Shared, session: impl Future<Output = ()> + Send + 'static) {
    let mut sessions = shared.sessions();
    // Reap finished sessions so the set does not grow with every exec.
    while sessions.try_join_next().is_some() {}
    sessions.spawn(session);
}

/// The pod's container the exec is for: the one named, or the only one.
fn check_container(pod: &Value, name: &str, container: Option<&str>) -> Result<(), ApiError> {
    if let phase @ ("Succeeded" | "Failed") = pod["status"]["phase"].as_str().unwrap_or_default() {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let names: Vec<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod["spec"][list].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match container {
        Some(container) if names.contains(&container) => Ok(()),
        Some(container) => Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    Message::binary(message)
}

/// The `Status` a kubelet sends on the error channel when the command ends.
pub(super) fn exit_status(command: &[String], status: io::Result<ExitStatus>) -> Value {
    let code = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt as _;
            // Killed by a signal: report it as a shell (and containerd) would, 128 + signal.
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(error) => return internal_error(&format!("waiting for the command: {error}")),
    };
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The `Status` of a command that could not run.
pub(super) fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

impl Exec {
    /// Starts the command, its standard streams piped as requested (stderr too with a terminal
    /// and stdout, to be merged into stdout).
    pub(super) fn spawn(&self) -> io::Result<Child> {
        let piped = |wanted: bool| {
            if wanted {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        Command::new(&self.command[0])
            .args(&self.command[1..])
            .current_dir(&self.workdir)
            .env("HOSTNAME", &self.pod)
            .stdin(piped(self.stdin))
            .stdout(piped(self.stdout))
            .stderr(piped(self.stderr || (self.tty && self.stdout)))
            // An aborted session (client gone, server dropped) takes its process with it.
            .kill_on_drop(true)
            .spawn()
    }
}

async fn session(on_upgrade: OnUpgrade, exec: Exec) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, mut source) = ws.split();
    match exec.spawn() {
        Ok(child) => run(child, &exec, &mut sink, &mut source).await,
        Err(error) => {
            let message = format!(
                "error executing command in container: {:?}: {error}",
                exec.command[0]
            );
            let status = internal_error(&message).to_string();
            let _ = sink.send(channel_message(ERROR, status.as_bytes())).await;
        }
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if sink.send(Message::Close(Some(close))).await.is_ok() {
        // Read until the client answers the close frame, to end the connection cleanly.
        let drain = async { while let Some(Ok(_)) = source.next().await {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    }
}

/// Streams the child's output and then its exit status to the client while feeding it the
/// client's input; returns when the status was sent or the client left.
async fn run(
    mut child: Child,
    exec: &Exec,
    sink: &mut SplitSink<Ws, Message>,
    source: &mut SplitStream<Ws>,
) {
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let stdin = child.stdin.take();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let stderr_channel = if exec.tty { STDOUT } else { STDERR };
    let produce = async move {
        tokio::join!(
            pump(stdout, STDOUT, tx.clone()),
            pump(stderr, stderr_channel, tx.clone())
        );
        // The status goes last, after all output, as kubectl stops reading once it has it.
        let status = exit_status(&exec.command, child.wait().await).to_string();
        let _ = tx.send(channel_message(ERROR, status.as_bytes())).await;
        // The last sender gone ends `deliver`.
        drop(tx);
    };
    let deliver = async {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = async { tokio::join!(produce, deliver) } => {}
        () = feed(source, stdin, exec.v5) => {}
    }
}

/// Forwards one output pipe to the client on `channel`.
async fn pump(pipe: Option<impl AsyncRead + Unpin>, channel: u8, tx: mpsc::Sender<Message>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buffer = vec![0; 32 * 1024];
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if tx
            .send(channel_message(channel, &buffer[..read]))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Feeds the client's stdin messages to the child until the client goes away.
async fn feed(source: &mut SplitStream<Ws>, mut stdin: Option<ChildStdin>, v5: bool) {
    while let Some(Ok(message)) = source.next().await {
        let Message::Binary(data) = message else {
            continue;
        };
        match data.split_first() {
            Some((&STDIN, input)) => {
                if let Some(pipe) = stdin.as_mut()
                    && pipe.write_all(input).await.is_err()
                {
                    // The command closed its stdin (or exited): drop further input.
                    stdin = None;
                }
            }
            // Dropping the pipe closes the child's stdin: `cat` sees the end of its input.
            Some((&CLOSE, [STDIN])) if v5 => stdin = None,
            // Resize (4) and anything else: there is no terminal to resize.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_like_a_kubelet() {
        use std::os::unix::process::ExitStatusExt as _;
        let command = ["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(
            exit_status(&command, Ok(ExitStatus::from_raw(0))),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(&command, Ok(ExitStatus::from_raw(3 << 8)));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        let killed = exit_status(&command, Ok(ExitStatus::from_raw(9)));
        assert_eq!(killed["details"]["causes"][0]["message"], "137");
    }

    #[test]
    fn containers_are_checked() {
        let pod = json!({"spec": {"containers": [{"name": "web"}, {"name": "side"}]},
                         "status": {"phase": "Running"}});
        assert!(check_container(&pod, "p", Some("web")).is_ok());
        assert!(check_container(&pod, "p", Some("nope")).is_err());
        assert!(check_container(&pod, "p", None).is_err());
        let single = json!({"spec": {"containers": [{"name": "web"}]}});
        assert!(check_container(&single, "p", None).is_ok());
        let done =
            json!({"spec": {"containers": [{"name": "web"}]}, "status": {"phase": "Succeeded"}});
        assert!(check_container(&done, "p", None).is_err());
    }
}
