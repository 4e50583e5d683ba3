//! Port forwarding over an upgraded SPDY connection, as a kubelet's `httpStreamHandler` serves
//! it (`k8s.io/kubelet/pkg/cri/streaming/portforward/httpstream.go`).
//!
//! For each connection it forwards, the client opens two streams whose headers give the
//! `streamtype` (kubectl opens `error`, waits for its SYN_REPLY, then opens `data`), the
//! container `port`, and a `requestid` pairing them (older clients send none: the pair is then
//! made from the stream ids, error `n` with data `n + 2`, as the kubelet does). A stream without
//! a valid port or stream type is reset (CANCEL) unanswered; the others get an empty SYN_REPLY.
//! Once both streams of a request are open (within 30 s, else the error stream says so), the
//! server connects to `127.0.0.1:PORT` (see [`crate::k8s::portforward`]) and copies both ways:
//! the data stream's bytes to the socket, the client's FIN shutting the socket's write side; the
//! socket's bytes back as data frames, ended by FIN when its peer shuts its side. When both
//! directions are done, or the client resets the data stream (kubectl does once the server's
//! side ended), the server ends the error stream with FIN: kubectl waits for that before it
//! closes its local connection. A connection that fails is reported on the error stream in the
//! kubelet's words (kubectl prints `an error occurred forwarding L -> N: <them>` and gives up),
//! then both streams end. Pairs are served concurrently until the client closes the connection
//! or sends GOAWAY; the server sends GOAWAY only when the client breaks the protocol. PINGs are
//! echoed.
//!
//! The client's data is buffered without bound while the socket is slower than the client:
//! there is no flow control, as in spdystream.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use super::frame::{
    FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, FrameReader, GOAWAY_PROTOCOL_ERROR, RST_CANCEL,
    RST_PROTOCOL_ERROR,
};
use super::headers::Headers;
use super::session::{CHUNK, Out, STREAM_CREATION_TIMEOUT, write_loop};
use crate::k8s::portforward::PortForward;

/// The two streams of a forwarded connection (`streamtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

/// A new stream's type and port, if it has valid ones (the kubelet's `httpStreamReceived`).
fn check(headers: &Headers) -> Option<(Kind, u16)> {
    // Digits only, as Go's ParseUint reads them (Rust's parse takes a leading `+`).
    let port = headers
        .get("port")
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?
        .parse::<u16>()
        .ok()
        .filter(|&port| port > 0)?;
    let kind = match headers.get("streamtype")? {
        "error" => Kind::Error,
        "data" => Kind::Data,
        _ => return None,
    };
    Some((kind, port))
}

/// The request a stream belongs to: its `requestid`, or for clients that send none, the
/// kubelet's guess from the stream id (an error stream and the data stream opened next).
fn request_id(headers: &Headers, kind: Kind, stream_id: u32) -> String {
    match headers.get("requestid") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => match kind {
            Kind::Error => stream_id.to_string(),
            Kind::Data => (i64::from(stream_id) - 2).to_string(),
        },
    }
}

/// A data stream, its bytes from the client and its reset.
struct DataStream {
    id: u32,
    port: u16,
    /// Closed at the client's FIN.
    inbound: mpsc::UnboundedReceiver<Bytes>,
    reset: oneshot::Receiver<()>,
}

/// The streams of one request, until both are open.
struct Pair {
    /// Tells this pair's timeout from that of an earlier pair of the same request id.
    generation: u64,
    /// The timeout, aborted once the pair is whole.
    timer: AbortHandle,
    error: Option<u32>,
    data: Option<DataStream>,
}

/// Where the session sends what the client sends on a data stream.
struct Route {
    inbound: Option<mpsc::UnboundedSender<Bytes>>,
    reset: Option<oneshot::Sender<()>>,
}

/// What became of a stream added to its pair.
enum Added {
    /// The pair waits for its other stream.
    Waiting,
    /// Both streams are open.
    Complete,
    /// The pair has a stream of this type already; its error stream, if any, says so.
    Duplicate(Option<u32>),
}

/// Serves port forwarding on `io`, the upgraded connection, until the client closes it, sends
/// GOAWAY or breaks the protocol; the forwarded connections end with it.
pub(super) async fn serve<IO>(io: IO, forward: PortForward)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel(64);
    let session = Session {
        forward: Arc::new(forward),
        out,
        last_id: 0,
        pairs: HashMap::new(),
        generation: 0,
        timers: JoinSet::new(),
        routes: HashMap::new(),
        forwards: JoinSet::new(),
    };
    // The writer ends once the session and its forwards (aborted with it) have dropped their
    // senders.
    tokio::join!(session.run(reader), write_loop(writer, out_rx));
}

/// A session's state, kept by the task reading the client's frames.
struct Session {
    forward: Arc<PortForward>,
    out: mpsc::Sender<Out>,
    /// The last stream the client opened (ids are odd and increasing).
    last_id: u32,
    /// Requests with one stream open, by request id.
    pairs: HashMap<String, Pair>,
    generation: u64,
    /// Each pair's stream creation timeout: its request id and generation.
    timers: JoinSet<(String, u64)>,
    /// The open data streams, by stream id.
    routes: HashMap<u32, Route>,
    /// The forwarded connections; each returns its data stream's id.
    forwards: JoinSet<u32>,
}

impl Session {
    async fn run<R: AsyncRead + Unpin>(mut self, mut reader: R) {
        let mut frames = FrameReader::new();
        let mut buffer = BytesMut::with_capacity(16 * 1024);
        loop {
            tokio::select! {
                read = frames.read(&mut reader, &mut buffer) => match read {
                    Ok(Some(frame)) => {
                        if !self.on_frame(frame).await {
                            return;
                        }
                    }
                    // The client hung up (or the connection broke): nothing more to say.
                    Ok(None) => return,
                    Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                        self.send(Out::GoAway(GOAWAY_PROTOCOL_ERROR)).await;
                        return;
                    }
                    Err(_) => return,
                },
                Some(Ok((request_id, generation))) = self.timers.join_next(),
                    if !self.timers.is_empty() => self.expire(&request_id, generation).await,
                Some(Ok(data_id)) = self.forwards.join_next(), if !self.forwards.is_empty() => {
                    self.routes.remove(&data_id);
                }
            }
        }
    }

    async fn send(&self, item: Out) {
        let _ = self.out.send(item).await;
    }

    /// Handles one frame from the client; false when the session is over.
    async fn on_frame(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => self.open(stream_id, flags, &headers).await,
            Frame::Data {
                stream_id,
                flags,
                data,
            } => self.data(stream_id, flags, data),
            Frame::RstStream { stream_id, .. } => {
                if let Some(mut route) = self.routes.remove(&stream_id)
                    && let Some(reset) = route.reset.take()
                {
                    let _ = reset.send(());
                }
                self.send(Out::Forget(stream_id)).await;
            }
            Frame::Ping { id } => self.send(Out::Frame(Frame::Ping { id })).await,
            Frame::GoAway { .. } => return false,
            // Flow control (none here), more headers, frames of unknown types: nothing to do.
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
        true
    }

    /// A new stream: checked, answered, added to its pair, and the pair forwarded once whole.
    async fn open(&mut self, stream_id: u32, flags: u8, headers: &Headers) {
        // Client streams are odd and increasing, as spdystream checks.
        if stream_id.is_multiple_of(2) || stream_id <= self.last_id {
            let reset = Frame::RstStream {
                stream_id,
                status: RST_PROTOCOL_ERROR,
            };
            self.send(Out::Frame(reset)).await;
            return;
        }
        self.last_id = stream_id;
        let Some((kind, port)) = check(headers) else {
            // The kubelet rejects the stream, and spdystream resets it unanswered.
            let reset = Frame::RstStream {
                stream_id,
                status: RST_CANCEL,
            };
            self.send(Out::Frame(reset)).await;
            return;
        };
        if flags & FLAG_UNIDIRECTIONAL == 0 {
            let reply = Frame::SynReply {
                stream_id,
                flags: 0,
                headers: Headers::new(),
            };
            self.send(Out::Frame(reply)).await;
        } else {
            // A stream only the client sends on: no reply, and nothing from here.
            self.send(Out::Forget(stream_id)).await;
        }
        let request_id = request_id(headers, kind, stream_id);
        match self.add(&request_id, kind, stream_id, port, flags & FLAG_FIN != 0) {
            Added::Waiting => {}
            Added::Complete => {
                if let Some(Pair {
                    error: Some(error_id),
                    data: Some(data),
                    timer,
                    ..
                }) = self.pairs.remove(&request_id)
                {
                    timer.abort();
                    let forward =
                        forward(Arc::clone(&self.forward), error_id, data, self.out.clone());
                    self.forwards.spawn(forward);
                }
            }
            Added::Duplicate(error_id) => {
                let kind = match kind {
                    Kind::Error => "error",
                    Kind::Data => "data",
                };
                let message = format!(
                    "error processing stream for request {request_id}: {kind} stream already assigned"
                );
                self.print(error_id, message).await;
            }
        }
    }

    /// Adds a stream to its request's pair (made, with its timeout, by the first stream).
    fn add(&mut self, request_id: &str, kind: Kind, stream_id: u32, port: u16, fin: bool) -> Added {
        let pair = match self.pairs.entry(request_id.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.generation += 1;
                let generation = self.generation;
                let id = request_id.to_owned();
                let timer = self.timers.spawn(async move {
                    tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                    (id, generation)
                });
                entry.insert(Pair {
                    generation,
                    timer,
                    error: None,
                    data: None,
                })
            }
        };
        match kind {
            Kind::Error if pair.error.is_some() => return Added::Duplicate(pair.error),
            Kind::Data if pair.data.is_some() => return Added::Duplicate(pair.error),
            Kind::Error => pair.error = Some(stream_id),
            Kind::Data => {
                let (inbound_tx, inbound) = mpsc::unbounded_channel();
                let (reset_tx, reset) = oneshot::channel();
                pair.data = Some(DataStream {
                    id: stream_id,
                    port,
                    inbound,
                    reset,
                });
                let route = Route {
                    // Opened with FIN: the client sends nothing.
                    inbound: (!fin).then_some(inbound_tx),
                    reset: Some(reset_tx),
                };
                self.routes.insert(stream_id, route);
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            Added::Complete
        } else {
            Added::Waiting
        }
    }

    /// The client's bytes on a data stream, to its connection; FIN ends them. Data on error
    /// streams (kubectl only ends its side of those) and on unknown streams is dropped.
    fn data(&mut self, stream_id: u32, flags: u8, data: Bytes) {
        let Some(route) = self.routes.get_mut(&stream_id) else {
            return;
        };
        if !data.is_empty()
            && let Some(inbound) = &route.inbound
            && inbound.send(data).is_err()
        {
            // The connection is gone: drop what follows.
            route.inbound = None;
        }
        if flags & FLAG_FIN != 0 {
            route.inbound = None;
        }
    }

    /// A pair's stream creation timeout: if the pair is still waiting, its error stream says so
    /// and the pair is dropped, as the kubelet's `monitorStreamPair` does.
    async fn expire(&mut self, request_id: &str, generation: u64) {
        if self
            .pairs
            .get(request_id)
            .is_none_or(|pair| pair.generation != generation)
        {
            return;
        }
        let Some(pair) = self.pairs.remove(request_id) else {
            return;
        };
        if let Some(data) = &pair.data {
            self.routes.remove(&data.id);
        }
        let message = format!("(request={request_id}) timed out waiting for streams");
        self.print(pair.error, message).await;
    }

    /// Writes a message on an error stream (the kubelet's `printError`), leaving it open.
    async fn print(&self, error_id: Option<u32>, message: String) {
        if let Some(stream_id) = error_id {
            let frame = Frame::Data {
                stream_id,
                flags: 0,
                data: Bytes::from(message),
            };
            self.send(Out::Frame(frame)).await;
        }
    }
}

/// Forwards one connection: connects to the pod's port (on this machine) and copies both ways
/// until both directions are done or the client resets the data stream, then ends the error
/// stream and the data stream. Returns the data stream's id.
async fn forward(
    target: Arc<PortForward>,
    error_id: u32,
    data: DataStream,
    out: mpsc::Sender<Out>,
) -> u32 {
    let DataStream {
        id: data_id,
        port,
        inbound,
        mut reset,
    } = data;
    let frame = |stream_id, flags, data| {
        Out::Frame(Frame::Data {
            stream_id,
            flags,
            data,
        })
    };
    let mut data_ended = false;
    match TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
        Ok(socket) => {
            let (from_socket, to_socket) = socket.into_split();
            let copying = async {
                let ((), ended) = tokio::join!(
                    upstream(inbound, to_socket),
                    downstream(from_socket, data_id, out.clone())
                );
                ended
            };
            tokio::select! {
                ended = copying => data_ended = ended,
                // Reset: the client wants nothing more on the data stream (its sender dropped
                // without a word means the session is ending: keep copying until aborted).
                Ok(()) = &mut reset => {}
            }
        }
        Err(error) => {
            let cause = match error.kind() {
                io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
                _ => error.to_string(),
            };
            let message = format!(
                "error forwarding port {port} to pod {}_{}, uid {}: failed to connect to \
                 localhost:{port} (the test server's 127.0.0.1:{port}): dial tcp \
                 127.0.0.1:{port}: {cause}",
                target.pod, target.namespace, target.uid
            );
            let _ = out.send(frame(error_id, 0, Bytes::from(message))).await;
        }
    }
    // As the kubelet's deferred closes: the error stream, then the data stream.
    let _ = out.send(frame(error_id, FLAG_FIN, Bytes::new())).await;
    if !data_ended {
        let _ = out.send(frame(data_id, FLAG_FIN, Bytes::new())).await;
    }
    data_id
}

/// The client's bytes to the socket; at their end (the client's FIN), or when the socket takes
/// no more, shuts the socket's write side: its peer reads the end of its input.
async fn upstream(
    mut inbound: mpsc::UnboundedReceiver<Bytes>,
    mut socket: impl AsyncWrite + Unpin,
) {
    while let Some(chunk) = inbound.recv().await {
        if socket.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

/// The socket's bytes to the client on the data stream, then FIN when the socket's peer shut
/// its side (or the socket failed); true once that FIN is sent.
async fn downstream(
    mut socket: impl AsyncRead + Unpin,
    stream_id: u32,
    out: mpsc::Sender<Out>,
) -> bool {
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let frame = Frame::Data {
            stream_id,
            flags: 0,
            data: Bytes::copy_from_slice(&buffer[..read]),
        };
        if out.send(Out::Frame(frame)).await.is_err() {
            return false;
        }
    }
    let fin = Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    out.send(Out::Frame(fin)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::DuplexStream;
    use tokio::net::TcpListener;

    use super::super::frame::{FrameWriter, GOAWAY_PROTOCOL_ERROR};
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// The client end of a session, with its own compression contexts, as spdystream has.
    struct Client {
        io: DuplexStream,
        writer: FrameWriter,
        reader: FrameReader,
        buffer: BytesMut,
        next_id: u32,
        session: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn start() -> Client {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let forward = PortForward {
                namespace: "default".to_owned(),
                pod: "web-1".to_owned(),
                uid: "0000-uid".to_owned(),
            };
            Client {
                io: client,
                writer: FrameWriter::new().expect("writer"),
                reader: FrameReader::new(),
                buffer: BytesMut::new(),
                next_id: 1,
                session: tokio::spawn(serve(server, forward)),
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

        /// Opens a stream with these headers (the next id); returns its id.
        async fn syn(&mut self, headers: &[(&str, &str)]) -> u32 {
            let stream_id = self.next_id;
            self.next_id += 2;
            let headers = headers
                .iter()
                .fold(Headers::new(), |h, (name, value)| h.with(name, value));
            self.send(Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers,
            })
            .await;
            stream_id
        }

        /// Opens a stream as kubectl does and waits for its SYN_REPLY.
        async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
            let stream_id = self.syn(headers).await;
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

        /// Opens a request's pair, as kubectl: the error stream (ended at once), then data.
        async fn pair(&mut self, port: u16, request_id: &str) -> (u32, u32) {
            let port = port.to_string();
            let mut headers = vec![("streamtype", "error"), ("port", port.as_str())];
            if !request_id.is_empty() {
                headers.push(("requestid", request_id));
            }
            let error = self.open(&headers).await;
            self.data(error, b"", FLAG_FIN).await;
            headers[0].1 = "data";
            let data = self.open(&headers).await;
            (error, data)
        }

        async fn data(&mut self, stream_id: u32, data: &[u8], flags: u8) {
            self.send(Frame::Data {
                stream_id,
                flags,
                data: Bytes::copy_from_slice(data),
            })
            .await;
        }

        /// Reads frames until both streams have ended (FIN); their bytes, and the frames that
        /// were neither's.
        async fn until_ended(&mut self, error: u32, data: u32) -> (Vec<u8>, Vec<u8>, Vec<Frame>) {
            let (mut error_bytes, mut data_bytes, mut others) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut error_fin, mut data_fin) = (false, false);
            while !(error_fin && data_fin) {
                match self
                    .next()
                    .await
                    .expect("the streams end before the connection")
                {
                    Frame::Data {
                        stream_id,
                        flags,
                        data: bytes,
                    } if stream_id == error || stream_id == data => {
                        let (sink, fin) = if stream_id == error {
                            (&mut error_bytes, &mut error_fin)
                        } else {
                            (&mut data_bytes, &mut data_fin)
                        };
                        assert!(!*fin, "data after FIN on {stream_id}");
                        sink.extend_from_slice(&bytes);
                        *fin = flags & FLAG_FIN != 0;
                    }
                    other => others.push(other),
                }
            }
            (error_bytes, data_bytes, others)
        }

        /// Hangs up; the session must end.
        async fn hang_up(self) {
            let Client { io, session, .. } = self;
            drop(io);
            tokio::time::timeout(DEADLINE, session)
                .await
                .expect("the session ends in time")
                .expect("the session does not panic");
        }
    }

    /// An echo server on 127.0.0.1 (ends its side after the client's end); its port.
    async fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut from, mut to) = socket.into_split();
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                    let _ = to.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn pairs_are_forwarded_both_ways_and_end_when_both_sides_have() {
        let port = echo_server().await;
        let mut client = Client::start();
        for request_id in ["0", "1"] {
            let (error, data) = client.pair(port, request_id).await;
            client.data(data, b"hello ", 0).await;
            client.data(data, b"pod", FLAG_FIN).await;
            let (error_bytes, echoed, others) = client.until_ended(error, data).await;
            assert_eq!((error_bytes, echoed), (Vec::new(), b"hello pod".to_vec()));
            assert_eq!(others, []);
        }
        // The client ending its side of the data stream is not the end of the socket's side.
        let (error, data) = client.pair(port, "2").await;
        client.data(data, b"", FLAG_FIN).await;
        let (_, echoed, _) = client.until_ended(error, data).await;
        assert_eq!(echoed, b"");
        client.hang_up().await;
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_on_the_error_stream() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
            listener.local_addr().expect("address").port()
        };
        let mut client = Client::start();
        let (error, data) = client.pair(port, "0").await;
        let (message, data_bytes, _) = client.until_ended(error, data).await;
        assert_eq!(data_bytes, b"");
        assert_eq!(
            String::from_utf8_lossy(&message),
            format!(
                "error forwarding port {port} to pod web-1_default, uid 0000-uid: failed to \
                 connect to localhost:{port} (the test server's 127.0.0.1:{port}): dial tcp \
                 127.0.0.1:{port}: connect: connection refused"
            )
        );
        client.hang_up().await;
    }

    #[tokio::test]
    async fn old_clients_pair_by_stream_ids_and_invalid_streams_are_reset() {
        let port = echo_server().await;
        let mut client = Client::start();
        let port_text = port.to_string();
        // Refused as the kubelet refuses them: reset (CANCEL), unanswered.
        for headers in [
            vec![("streamtype", "error")],
            vec![("streamtype", "error"), ("port", "0")],
            vec![("streamtype", "error"), ("port", "+80")],
            vec![("streamtype", "error"), ("port", "65536")],
            vec![("port", port_text.as_str())],
            vec![("streamtype", "stdin"), ("port", port_text.as_str())],
        ] {
            let stream_id = client.syn(&headers).await;
            assert_eq!(
                client.next().await,
                Some(Frame::RstStream {
                    stream_id,
                    status: RST_CANCEL
                }),
                "{headers:?}"
            );
        }
        // No request id: error stream n pairs with data stream n + 2.
        let (error, data) = client.pair(port, "").await;
        assert_eq!(data, error + 2);
        client.data(data, b"old", FLAG_FIN).await;
        let (_, echoed, _) = client.until_ended(error, data).await;
        assert_eq!(echoed, b"old");
        client.hang_up().await;
    }

    #[tokio::test]
    async fn a_reset_data_stream_ends_the_pair_and_its_connection() {
        // A server that keeps its side open: only the client's reset can end the pair.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        let mut client = Client::start();
        let (error, data) = client.pair(port, "0").await;
        let (mut accepted, _) = tokio::time::timeout(DEADLINE, listener.accept())
            .await
            .expect("connected in time")
            .expect("accepted");
        accepted.write_all(b"banner").await.expect("written");
        let Some(Frame::Data {
            stream_id,
            data: banner,
            ..
        }) = client.next().await
        else {
            panic!("no banner");
        };
        assert_eq!((stream_id, &banner[..]), (data, &b"banner"[..]));
        client
            .send(Frame::RstStream {
                stream_id: data,
                status: RST_CANCEL,
            })
            .await;
        // The error stream ends; nothing more comes on the reset data stream.
        assert_eq!(
            client.next().await,
            Some(Frame::Data {
                stream_id: error,
                flags: FLAG_FIN,
                data: Bytes::new()
            })
        );
        // And the socket is closed.
        let mut rest = Vec::new();
        tokio::time::timeout(DEADLINE, accepted.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(rest, b"");
        client.send(Frame::Ping { id: 7 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 7 }));
        client.hang_up().await;
    }

    #[tokio::test]
    async fn a_second_stream_of_a_type_is_reported_and_garbage_ends_the_session() {
        let mut client = Client::start();
        let error = client
            .open(&[("streamtype", "error"), ("port", "80"), ("requestid", "9")])
            .await;
        client
            .open(&[("streamtype", "error"), ("port", "80"), ("requestid", "9")])
            .await;
        assert_eq!(
            client.next().await,
            Some(Frame::Data {
                stream_id: error,
                flags: 0,
                data: Bytes::from_static(
                    b"error processing stream for request 9: error stream already assigned"
                )
            })
        );
        // A lower stream id than the last: refused.
        client.next_id = 1;
        let stream_id = client
            .syn(&[("streamtype", "data"), ("port", "80"), ("requestid", "9")])
            .await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream_id,
                status: RST_PROTOCOL_ERROR
            })
        );
        // A control frame of SPDY version 2.
        client
            .io
            .write_all(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
            .await
            .expect("sent");
        assert_eq!(
            client.next().await,
            Some(Frame::GoAway {
                last_good_stream_id: 3,
                status: GOAWAY_PROTOCOL_ERROR
            })
        );
        client.hang_up().await;
    }
}
