//! One exec over an upgraded SPDY connection: the client's streams, the process, the end.
//!
//! Three parts run together: the reader (frames from the client: stream openings, stdin, pings,
//! resets), the run (waits for the streams, runs the process, sends its output and status), and
//! the writer, the only one to touch the outgoing header compression context, so frames are
//! compressed in the order they go out (the port-forwarding session uses it too).

use std::collections::HashSet;
use std::convert::Infallible;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, oneshot};

use super::frame::{
    FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, FrameReader, FrameWriter, GOAWAY_OK,
    GOAWAY_PROTOCOL_ERROR, RST_PROTOCOL_ERROR,
};
use super::headers::Headers;
use crate::k8s::exec::{Exec, exit_status, internal_error};

/// How long the client has to open the streams it asked for (a kubelet's
/// `DefaultStreamCreationTimeout`).
pub(super) const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client to close the connection after the server's GOAWAY.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The most output one data frame carries.
pub(super) const CHUNK: usize = 32 * 1024;

/// The channel protocols spoken over SPDY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::k8s) enum Protocol {
    /// `v5.channel.k8s.io`: over SPDY, the same as v4 (its close signal is WebSocket's).
    V5,
    /// `v4.channel.k8s.io`: the error stream carries a JSON `Status` with the exit code.
    V4,
    /// `v3.channel.k8s.io`: v2 and a resize stream.
    V3,
    /// `v2.channel.k8s.io`: the error stream carries a failure's message as text.
    V2,
}

impl Protocol {
    /// Every protocol, the preferred first (a kubelet's order).
    pub(super) const ALL: [Protocol; 4] = [Protocol::V5, Protocol::V4, Protocol::V3, Protocol::V2];

    pub(super) fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V3 => "v3.channel.k8s.io",
            Protocol::V2 => "v2.channel.k8s.io",
        }
    }

    fn status_is_json(self) -> bool {
        matches!(self, Protocol::V5 | Protocol::V4)
    }

    fn has_resize(self) -> bool {
        self != Protocol::V2
    }
}

/// The client's streams, by `streamtype`.
#[derive(Clone, Copy, Debug, Default)]
struct Streams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Streams {
    /// Records a stream; false for a type that is not one of exec's.
    fn add(&mut self, kind: Option<&str>, id: u32) -> bool {
        let slot = match kind {
            Some("error") => &mut self.error,
            Some("stdin") => &mut self.stdin,
            Some("stdout") => &mut self.stdout,
            Some("stderr") => &mut self.stderr,
            Some("resize") => &mut self.resize,
            _ => return false,
        };
        *slot = Some(id);
        true
    }
}

/// What goes to the writer.
pub(super) enum Out {
    Frame(Frame),
    /// The client reset this stream: send nothing more on it.
    Forget(u32),
    /// The session is over: GOAWAY with this status, naming the last stream accepted.
    GoAway(u32),
}

/// Serves the exec on `io`, the upgraded connection, until the command's status is sent and the
/// client closes the connection, the client goes away (which kills the command), or the client
/// breaks the protocol.
pub(super) async fn serve<IO>(io: IO, exec: Exec, protocol: Protocol)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (streams_tx, streams_rx) = oneshot::channel();
    let (stdin_tx, stdin_rx) = mpsc::channel(8);
    // The number of streams a kubelet waits for: error, and those of the query.
    let stderr = exec.stderr && !exec.tty;
    let expected = 1
        + usize::from(exec.stdin)
        + usize::from(exec.stdout)
        + usize::from(stderr)
        + usize::from(exec.tty && protocol.has_resize());
    let read = read_loop(reader, out_tx.clone(), expected, streams_tx, stdin_tx);
    let run = run(exec, protocol, streams_rx, stdin_rx, out_tx);
    let session = async move {
        tokio::pin!(read);
        tokio::select! {
            // The client left or broke the protocol: dropping `run` kills the command.
            () = &mut read => {}
            () = run => {
                // Everything is sent: let the client close (it answers our GOAWAY with its own
                // and hangs up), or give up after a while.
                let _ = tokio::time::timeout(CLOSE_GRACE, read).await;
            }
        }
    };
    // The writer ends when both others have dropped their senders.
    tokio::join!(session, write_loop(writer, out_rx));
}

/// Reads the client's frames until it closes the connection, sends GOAWAY or breaks the
/// protocol. Answers SYN_STREAMs and PINGs, hands the streams to the run once all are open,
/// and stdin data to the run as it comes.
async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    out: mpsc::Sender<Out>,
    expected: usize,
    streams_tx: oneshot::Sender<Streams>,
    stdin_tx: mpsc::Sender<Bytes>,
) {
    let mut frames = FrameReader::new();
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    let mut streams = Streams::default();
    let mut opened = 0;
    let mut last_id = 0;
    let mut streams_tx = Some(streams_tx);
    let mut stdin_tx = Some(stdin_tx);
    loop {
        let frame = match frames.read(&mut reader, &mut buffer).await {
            Ok(Some(frame)) => frame,
            // The client hung up (or the connection broke): nothing more to say.
            Ok(None) => return,
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                let _ = out.send(Out::GoAway(GOAWAY_PROTOCOL_ERROR)).await;
                return;
            }
            Err(_) => return,
        };
        let reply = match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                // Client streams are odd and increasing, as spdystream checks.
                if stream_id % 2 == 0 || stream_id <= last_id {
                    Some(Frame::RstStream {
                        stream_id,
                        status: RST_PROTOCOL_ERROR,
                    })
                } else {
                    last_id = stream_id;
                    if streams.add(headers.get("streamtype"), stream_id) {
                        opened += 1;
                    }
                    if Some(stream_id) == streams.stdin && flags & FLAG_FIN != 0 {
                        stdin_tx = None;
                    }
                    if flags & FLAG_UNIDIRECTIONAL == 0 {
                        // Like a kubelet, accept every stream; the unknown ones are not counted.
                        let _ = out
                            .send(Out::Frame(Frame::SynReply {
                                stream_id,
                                flags: 0,
                                headers: Headers::new(),
                            }))
                            .await;
                    } else {
                        // A stream only the client sends on: no reply, and nothing from here.
                        let _ = out.send(Out::Forget(stream_id)).await;
                    }
                    if opened == expected
                        && let Some(tx) = streams_tx.take()
                    {
                        let _ = tx.send(streams);
                    }
                    None
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } if Some(stream_id) == streams.stdin => {
                if !data.is_empty()
                    && let Some(tx) = &stdin_tx
                    && tx.send(data).await.is_err()
                {
                    stdin_tx = None;
                }
                if flags & FLAG_FIN != 0 {
                    // The run's receiver ends, and with it the command's stdin.
                    stdin_tx = None;
                }
                None
            }
            Frame::RstStream { stream_id, .. } => {
                if Some(stream_id) == streams.stdin {
                    stdin_tx = None;
                }
                let _ = out.send(Out::Forget(stream_id)).await;
                None
            }
            // The client's pings have odd ids; this server sends none of its own to be answered.
            Frame::Ping { id } => Some(Frame::Ping { id }),
            Frame::GoAway { .. } => return,
            // Resize messages (no terminal to resize), flow control (none here), more headers,
            // data on streams that take none, frames of unknown types: nothing to do.
            Frame::Data { .. }
            | Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => None,
        };
        if let Some(frame) = reply {
            let _ = out.send(Out::Frame(frame)).await;
        }
    }
}

/// Waits for the streams, runs the command, sends its output, its status and GOAWAY.
async fn run(
    exec: Exec,
    protocol: Protocol,
    streams: oneshot::Receiver<Streams>,
    stdin: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Out>,
) {
    let Ok(Ok(streams)) = tokio::time::timeout(STREAM_CREATION_TIMEOUT, streams).await else {
        // Streams missing (as a kubelet does, say nothing) or the client gone.
        let _ = out.send(Out::GoAway(GOAWAY_OK)).await;
        return;
    };
    let status = match exec.spawn() {
        Ok(mut child) => {
            let pipe = child.stdin.take();
            let feeding = async {
                feed(stdin, pipe).await;
                // The end of stdin is not the end of the command.
                std::future::pending::<Infallible>().await
            };
            let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
            // With a terminal, stderr is merged into stdout (the client opens no stderr stream).
            let stderr_stream = if exec.tty {
                streams.stdout
            } else {
                streams.stderr
            };
            let producing = async {
                tokio::join!(
                    pump(stdout, streams.stdout, &out),
                    pump(stderr, stderr_stream, &out)
                );
                exit_status(&exec.command, child.wait().await)
            };
            tokio::select! {
                status = producing => status,
                never = feeding => match never {},
            }
        }
        Err(error) => internal_error(&format!(
            "error executing command in container: {:?}: {error}",
            exec.command[0]
        )),
    };
    // The output streams end first: kubectl reads the status only after they ended.
    for id in [
        streams.stdout,
        streams.stderr,
        streams.stdin,
        streams.resize,
    ] {
        send_data(&out, id, Bytes::new(), FLAG_FIN).await;
    }
    let message = if protocol.status_is_json() {
        status.to_string()
    } else {
        // v2 and v3: a failure's message as text, nothing on success.
        status["message"].as_str().unwrap_or_default().to_owned()
    };
    if !message.is_empty() {
        send_data(&out, streams.error, Bytes::from(message), 0).await;
    }
    send_data(&out, streams.error, Bytes::new(), FLAG_FIN).await;
    let _ = out.send(Out::GoAway(GOAWAY_OK)).await;
}

async fn send_data(out: &mpsc::Sender<Out>, stream: Option<u32>, data: Bytes, flags: u8) {
    if let Some(stream_id) = stream {
        let _ = out
            .send(Out::Frame(Frame::Data {
                stream_id,
                flags,
                data,
            }))
            .await;
    }
}

/// Feeds the client's stdin data to the command until the client ends it; dropping the pipe
/// then closes the command's stdin (`cat` sees the end of its input).
async fn feed(mut data: mpsc::Receiver<Bytes>, mut pipe: Option<ChildStdin>) {
    while let Some(chunk) = data.recv().await {
        if let Some(stdin) = pipe.as_mut()
            && stdin.write_all(&chunk).await.is_err()
        {
            // The command closed its stdin (or exited): drop further input.
            pipe = None;
        }
    }
}

/// Forwards one output pipe to the client on `stream` (or discards it without one).
async fn pump(pipe: Option<impl AsyncRead + Unpin>, stream: Option<u32>, out: &mpsc::Sender<Out>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if let Some(stream_id) = stream {
            let frame = Frame::Data {
                stream_id,
                flags: 0,
                data: Bytes::copy_from_slice(&buffer[..read]),
            };
            if out.send(Out::Frame(frame)).await.is_err() {
                return;
            }
        }
    }
}

/// Encodes and writes what the others send, in order, until they are all gone or writing fails.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut out: mpsc::Receiver<Out>) {
    let Ok(mut frames) = FrameWriter::new() else {
        return;
    };
    let mut forgotten = HashSet::new();
    let mut last_replied = 0;
    let mut bytes = Vec::new();
    while let Some(item) = out.recv().await {
        let frame = match item {
            Out::Forget(stream_id) => {
                forgotten.insert(stream_id);
                continue;
            }
            Out::GoAway(status) => Frame::GoAway {
                last_good_stream_id: last_replied,
                status,
            },
            Out::Frame(Frame::Data { stream_id, .. }) if forgotten.contains(&stream_id) => {
                continue;
            }
            Out::Frame(frame) => {
                if let Frame::SynReply { stream_id, .. } = frame {
                    last_replied = last_replied.max(stream_id);
                }
                frame
            }
        };
        bytes.clear();
        if frames.encode(&frame, &mut bytes).is_err() || writer.write_all(&bytes).await.is_err() {
            return;
        }
        if out.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::io::DuplexStream;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// The client end of a session: its own compression contexts, as spdystream has.
    struct Client {
        io: DuplexStream,
        writer: FrameWriter,
        reader: FrameReader,
        buffer: BytesMut,
        next_id: u32,
        session: tokio::task::JoinHandle<()>,
    }

    fn exec(command: &[&str], stdin: bool, tty: bool) -> Exec {
        Exec {
            pod: "web-1".to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            stdin,
            stdout: true,
            stderr: !tty,
            tty,
            v5: false,
            workdir: std::env::temp_dir(),
        }
    }

    impl Client {
        fn start(exec: Exec, protocol: Protocol) -> Client {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let session = tokio::spawn(serve(server, exec, protocol));
            Client {
                io: client,
                writer: FrameWriter::new().expect("writer"),
                reader: FrameReader::new(),
                buffer: BytesMut::new(),
                next_id: 1,
                session,
            }
        }

        async fn send(&mut self, frame: Frame) {
            let mut bytes = Vec::new();
            self.writer.encode(&frame, &mut bytes).expect("encodes");
            self.io.write_all(&bytes).await.expect("sent");
        }

        async fn next(&mut self) -> Option<Frame> {
            tokio::time::timeout(DEADLINE, self.reader.read(&mut self.io, &mut self.buffer))
                .await
                .expect("a frame in time")
                .expect("a valid frame")
        }

        /// Opens a stream as client-go does and waits for its SYN_REPLY.
        async fn open(&mut self, streamtype: &str) -> u32 {
            let stream_id = self.next_id;
            self.next_id += 2;
            self.send(Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: Headers::new().with("streamtype", streamtype),
            })
            .await;
            assert_eq!(
                self.next().await,
                Some(Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Headers::new()
                })
            );
            stream_id
        }

        /// Every frame until the server's GOAWAY (which must come), then the end of the
        /// connection once the client hangs up.
        async fn rest(mut self) -> (Vec<Frame>, u32, u32) {
            let mut frames = Vec::new();
            loop {
                match self.next().await.expect("GOAWAY before the end") {
                    Frame::GoAway {
                        last_good_stream_id,
                        status,
                    } => return (frames, last_good_stream_id, status),
                    frame => frames.push(frame),
                }
            }
        }
    }

    /// The data and FIN of each stream, in order.
    fn by_stream(frames: &[Frame]) -> std::collections::BTreeMap<u32, (Vec<u8>, bool)> {
        let mut streams = std::collections::BTreeMap::<u32, (Vec<u8>, bool)>::new();
        for frame in frames {
            if let Frame::Data {
                stream_id,
                flags,
                data,
            } = frame
            {
                let entry = streams.entry(*stream_id).or_default();
                assert!(!entry.1, "data after FIN on {stream_id}");
                entry.0.extend_from_slice(data);
                entry.1 = flags & FLAG_FIN != 0;
            }
        }
        streams
    }

    #[tokio::test]
    async fn v4_streams_output_then_the_exit_status_and_echoes_pings() {
        let mut client = Client::start(
            exec(
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                false,
                false,
            ),
            Protocol::V4,
        );
        // Frames a client may send before anything else: ignored, or echoed.
        client
            .send(Frame::Settings {
                flags: 0,
                settings: Vec::new(),
            })
            .await;
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        let error = client.open("error").await;
        let stdout = client.open("stdout").await;
        client
            .send(Frame::WindowUpdate {
                stream_id: stdout,
                delta: 1 << 16,
            })
            .await;
        let stderr = client.open("stderr").await;
        let (frames, last_good, status) = client.rest().await;
        assert_eq!((last_good, status), (stderr, GOAWAY_OK));
        let streams = by_stream(&frames);
        assert_eq!(streams[&stdout], (b"out\n".to_vec(), true));
        assert_eq!(streams[&stderr], (b"err\n".to_vec(), true));
        let (status, fin) = &streams[&error];
        assert!(fin);
        let status: Value = serde_json::from_slice(status).expect("JSON status");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"][0],
            serde_json::json!({"reason": "ExitCode", "message": "3"})
        );
        // The output streams end before the status is written.
        let error_at = frames
            .iter()
            .position(|f| matches!(f, Frame::Data { stream_id, .. } if *stream_id == error))
            .expect("status frame");
        let stdout_fin_at = frames
            .iter()
            .position(|f| match f {
                Frame::Data {
                    stream_id, flags, ..
                } => *stream_id == stdout && flags & FLAG_FIN != 0,
                _ => false,
            })
            .expect("stdout FIN");
        assert!(stdout_fin_at < error_at);
    }

    #[tokio::test]
    async fn stdin_is_fed_and_its_fin_ends_it_and_v2_success_writes_no_status() {
        let mut client = Client::start(exec(&["cat"], true, false), Protocol::V2);
        let error = client.open("error").await;
        let stdin = client.open("stdin").await;
        let stdout = client.open("stdout").await;
        let stderr = client.open("stderr").await;
        for chunk in [&b"hello\n"[..], b"world\n"] {
            client
                .send(Frame::Data {
                    stream_id: stdin,
                    flags: 0,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await;
        }
        client
            .send(Frame::Data {
                stream_id: stdin,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await;
        let (frames, _, status) = client.rest().await;
        assert_eq!(status, GOAWAY_OK);
        let streams = by_stream(&frames);
        assert_eq!(streams[&stdout], (b"hello\nworld\n".to_vec(), true));
        assert_eq!(streams[&stderr], (Vec::new(), true));
        assert_eq!(streams[&error], (Vec::new(), true));
    }

    #[tokio::test]
    async fn v3_failures_are_text_and_a_terminal_merges_stderr() {
        let mut client = Client::start(
            exec(&["sh", "-c", "echo err >&2; exit 2"], false, true),
            Protocol::V3,
        );
        let error = client.open("error").await;
        let stdout = client.open("stdout").await;
        // With a terminal and v3, the command waits for the resize stream too.
        let resize = client.open("resize").await;
        client
            .send(Frame::Data {
                stream_id: resize,
                flags: 0,
                data: Bytes::from_static(br#"{"Width":80,"Height":24}"#),
            })
            .await;
        let (frames, last_good, _) = client.rest().await;
        assert_eq!(last_good, resize);
        let streams = by_stream(&frames);
        assert_eq!(streams[&stdout], (b"err\n".to_vec(), true));
        assert_eq!(
            String::from_utf8_lossy(&streams[&error].0),
            "command terminated with non-zero exit code: error executing command [sh -c echo err >&2; exit 2], exit code 2"
        );
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_reports_it_on_the_error_stream() {
        let mut client = Client::start(
            exec(&["/nonexistent/sod-test-command"], false, false),
            Protocol::V5,
        );
        let error = client.open("error").await;
        let _stdout = client.open("stdout").await;
        let _stderr = client.open("stderr").await;
        let (frames, _, _) = client.rest().await;
        let streams = by_stream(&frames);
        let status: Value = serde_json::from_slice(&streams[&error].0).expect("JSON status");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "InternalError");
    }

    #[tokio::test]
    async fn misnumbered_streams_are_reset_and_garbage_ends_the_session() {
        let mut client = Client::start(exec(&["true"], false, false), Protocol::V4);
        let _error = client.open("error").await;
        // An even (server-side) id, then one lower than the last: both refused.
        for stream_id in [4, 1] {
            client
                .send(Frame::SynStream {
                    stream_id,
                    associated_to: 0,
                    priority: 0,
                    slot: 0,
                    flags: FLAG_UNIDIRECTIONAL,
                    headers: Headers::new().with("streamtype", "stdout"),
                })
                .await;
            assert_eq!(
                client.next().await,
                Some(Frame::RstStream {
                    stream_id,
                    status: RST_PROTOCOL_ERROR
                })
            );
        }
        client
            .io
            .write_all(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
            .await
            .expect("sent");
        let (frames, last_good, status) = client.rest().await;
        assert_eq!(frames, []);
        assert_eq!((last_good, status), (1, GOAWAY_PROTOCOL_ERROR));
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_takes_the_command_with_it() {
        let mut client = Client::start(exec(&["sleep", "600"], true, false), Protocol::V4);
        for streamtype in ["error", "stdin", "stdout", "stderr"] {
            client.open(streamtype).await;
        }
        let Client { io, session, .. } = client;
        drop(io);
        // The session ends with the connection, and `sleep` with it (killed on drop).
        tokio::time::timeout(DEADLINE, session)
            .await
            .expect("the session ends in time")
            .expect("the session does not panic");
    }
}
