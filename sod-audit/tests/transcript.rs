//! Transcripts through a real stack (identity, recording, policy) over a toy streaming
//! protocol: an operation's output, stderr, input and resizes become `terminal_output`
//! events (coalesced, binary as base64), a `transcript_summary` precedes the completion, and
//! replay gives back the exact bytes; the recording limit stores a prefix and hashes all; a
//! sink that falls behind makes `record` wait with bounded memory; a failing sink refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use proptest::prelude::*;
use sod_audit::asciicast::{self, EventKind};
use sod_audit::replay::{self, CastOptions, Filter};
use sod_audit::transcript::{IN_FLIGHT, MAX_EVENT_BYTES, QUEUE_BYTES};
use sod_audit::{
    Appended, AuditError, AuditSink, Checkpoint, CheckpointKey, Durability, Event, MemorySink,
    RecordingLayer, verify,
};
use sod_core::audit::{
    Completion, CompletionHook, CompletionStatus, Observe, Transcript, TranscriptChunk,
};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, PolicyLayer};
use sod_core::policy::Policy;
use sod_core::{
    BoxError, Credential, KindSet, Operation, OperationKind, Peer, RefusalCode, Request, Session,
    Target,
};
use tokio::sync::watch;
use tower::{Service, ServiceExt as _};

// ---------------------------------------------------------------------------------------------
// A sink whose acknowledgements can be held (records are chained at once, as the contract
// says), or which fails.

struct SlowSink {
    memory: MemorySink,
    open: watch::Sender<bool>,
    durabilities: std::sync::Mutex<Vec<(Durability, bool)>>,
    /// Acknowledgements waiting at the gate.
    waiting: AtomicUsize,
}

impl SlowSink {
    fn new() -> (Arc<Self>, CheckpointKey) {
        let key = CheckpointKey::generate("audit");
        let sink = Arc::new(Self {
            memory: MemorySink::new("gw-1", key.clone()),
            open: watch::channel(true).0,
            durabilities: std::sync::Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
        });
        (sink, key)
    }

    fn hold(&self) {
        self.open.send_replace(false);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    fn events(&self) -> Vec<Event> {
        self.memory.events()
    }

    /// Durabilities of terminal events.
    fn terminal_durabilities(&self) -> Vec<Durability> {
        self.durabilities
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, terminal)| *terminal)
            .map(|(d, _)| *d)
            .collect()
    }
}

impl AuditSink for SlowSink {
    fn append(
        &self,
        event: Event,
        durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>> {
        let terminal = matches!(event, Event::TerminalOutput { .. });
        self.durabilities
            .lock()
            .unwrap()
            .push((durability, terminal));
        let appended = self.memory.append(event, durability);
        let mut open = self.open.subscribe();
        Box::pin(async move {
            let appended = appended.await?;
            if !*open.borrow() {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                let _ = open.wait_for(|o| *o).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(appended)
        })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
        self.memory.checkpoint()
    }
}

// ---------------------------------------------------------------------------------------------
// A toy streaming protocol: the upstream commits, then hands the transcript to the response,
// through which the test plays the operation's streams.

struct Reply {
    transcript: Option<Arc<dyn Transcript>>,
    hook: Option<CompletionHook>,
}

impl Observe for Reply {
    fn on_complete(mut self, hook: CompletionHook) -> Self {
        self.hook = Some(hook);
        self
    }
}

impl Reply {
    fn transcript(&self) -> &Arc<dyn Transcript> {
        self.transcript
            .as_ref()
            .expect("a committed operation has a transcript")
    }

    fn finish(mut self) {
        if let Some(hook) = self.hook.take() {
            hook(&Completion {
                status: CompletionStatus::Ok,
                ..Completion::default()
            });
        }
    }
}

#[derive(Clone)]
struct Upstream;

impl Service<Request<()>> for Upstream {
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        Box::pin(async move {
            assert!(
                req.transcript().is_none(),
                "no transcript before the commit"
            );
            req.commit().await?;
            Ok(Reply {
                transcript: req.transcript(),
                hook: None,
            })
        })
    }
}

const POLICY: &str = r#"
[[rule]]
id = "ops"
effect = "allow"
kinds = ["connect", "exec"]
"#;

struct World {
    sink: Arc<SlowSink>,
    key: CheckpointKey,
    authority: Arc<CapabilityAuthority>,
    recording: RecordingLayer,
}

type Stack = tower::util::BoxService<Request<()>, Reply, BoxError>;

impl World {
    fn new(limit: Option<u64>) -> Self {
        let (sink, key) = SlowSink::new();
        Self {
            recording: RecordingLayer::new(sink.clone())
                .commit_timeout(Duration::from_secs(60))
                .transcript_limit(limit),
            sink,
            key,
            authority: Arc::new(CapabilityAuthority::new(
                "sod",
                CapabilityKey::generate("k1"),
            )),
        }
    }

    async fn connect(&self) -> (Arc<Session>, Stack) {
        let stack = tower::ServiceBuilder::new()
            .layer(IdentityLayer::new(self.authority.clone()))
            .layer(self.recording.clone())
            .layer(PolicyLayer::new(
                Policy::from_toml("p.toml", POLICY).unwrap(),
            ))
            .service(Upstream);
        let mut stack: Stack = tower::util::BoxService::new(stack);
        let token = self
            .authority
            .issue(
                CapabilitySpec::new("planner-1", Duration::from_secs(600))
                    .targets(["ssh/*"])
                    .kinds(KindSet::of(&[OperationKind::Connect, OperationKind::Exec])),
            )
            .unwrap()
            .encode();
        let session = Arc::new(Session::new(
            Target::new("ssh/web-1"),
            Peer::InProcess,
            None,
        ));
        let req = Request::connect(session.clone(), Credential::new(token), ());
        stack
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .finish();
        (session, stack)
    }

    async fn exec(&self, stack: &mut Stack, session: &Arc<Session>, cmd: &str) -> Reply {
        let op = Operation::builder(Target::new("ssh/web-1"), OperationKind::Exec, cmd).build();
        stack
            .ready()
            .await
            .unwrap()
            .call(Request::new(session.clone(), op, ()))
            .await
            .unwrap()
    }

    fn records(&self) -> Vec<sod_audit::Record> {
        self.sink.memory.records()
    }

    fn verify(&self) {
        verify::lines(
            self.sink.memory.lines(),
            &verify::Options::new([self.key.public()]),
        )
        .unwrap();
    }
}

async fn record(t: &Arc<dyn Transcript>, chunk: TranscriptChunk<'_>) {
    t.record(chunk).await.unwrap();
}

/// Waits until operation `op`'s completion is in the log (the transcript's task writes it).
async fn completed(w: &World, op: u64) {
    let done =
        |e: &Event| matches!(e, Event::OperationCompleted { operation, .. } if *operation == op);
    assert!(
        eventually(|| w.sink.events().iter().any(done)).await,
        "operation {op} completed"
    );
}

/// Polls `f` until it holds, for up to ten seconds.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

fn terminal_events(events: &[Event]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TerminalOutput {
                stream,
                data,
                base64,
                ..
            } => Some((stream.clone(), data.clone(), *base64)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn streams_are_recorded_in_order_coalesced_and_replayed_byte_for_byte() {
    let w = World::new(None);
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "sh -c 'cat; ls /nope'").await;
    let t = reply.transcript().clone();
    record(
        &t,
        TranscriptChunk::Resize {
            cols: 100,
            rows: 30,
        },
    )
    .await;
    record(&t, TranscriptChunk::Input(b"hello ")).await;
    record(&t, TranscriptChunk::Input(b"world\n")).await;
    record(&t, TranscriptChunk::Output(b"hello world\n")).await;
    let binary: Vec<u8> = (0..=255u8).collect();
    record(&t, TranscriptChunk::Output(&binary)).await;
    record(&t, TranscriptChunk::Error(b"ls: /nope: No such file\n")).await;
    // A character split between two chunks.
    record(&t, TranscriptChunk::Error(b"\xe2\x82")).await;
    record(&t, TranscriptChunk::Error(b"\xac\n")).await;
    record(&t, TranscriptChunk::Output(b"")).await;
    reply.finish();
    completed(&w, 1).await;

    let sid = session.id().to_string();
    let events = w.sink.events();
    let terminal = terminal_events(&events);
    assert_eq!(terminal[0], ("r".into(), "100x30".into(), false));
    assert_eq!(
        terminal[1],
        ("i".into(), "hello world\n".into(), false),
        "coalesced"
    );
    assert_eq!(terminal[2].0, "o");
    assert!(
        terminal[2].2,
        "with binary bytes, the output is base64: {terminal:?}"
    );
    assert_eq!(terminal.len(), 4, "{terminal:?}");
    assert_eq!(
        terminal[3],
        ("e".into(), "ls: /nope: No such file\n€\n".into(), false),
        "coalesced, the split character whole"
    );
    let after: Vec<&str> = events
        .iter()
        .skip_while(|e| !matches!(e, Event::TranscriptSummary { .. }))
        .map(|e| match e {
            Event::TranscriptSummary { .. } => "summary",
            Event::OperationCompleted { .. } => "completed",
            _ => "other",
        })
        .collect();
    assert_eq!(after, ["summary", "completed"]);
    assert!(
        w.sink
            .terminal_durabilities()
            .iter()
            .all(|d| *d == Durability::Written),
        "transcripts never fsync per chunk"
    );

    let records = w.records();
    let got = replay::transcript(&records, &sid, 1).unwrap();
    let mut output = b"hello world\n".to_vec();
    output.extend_from_slice(&binary);
    assert_eq!(got.output, output);
    assert_eq!(got.input, b"hello world\n");
    assert_eq!(got.error, "ls: /nope: No such file\n€\n".as_bytes());
    assert_eq!(got.resizes.len(), 1);
    assert_eq!((got.resizes[0].1, got.resizes[0].2), (100, 30));
    got.check().unwrap();
    let summary = got.summary.as_ref().unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|s| s.stream.as_str())
            .collect::<Vec<_>>(),
        ["o", "e", "i", "r"]
    );
    w.verify();

    // The timeline folds the operation's terminal events into one line.
    let text = replay::timeline(&records, &Filter::new());
    assert!(
        text.contains(
            "terminal #1: 268 bytes of output, 28 bytes of error output, 12 bytes of input"
        ),
        "{text}"
    );

    // asciicast: the header size from the resize, stderr as output, parses back.
    let cast = replay::export(
        &records,
        &CastOptions::session(&sid).operation(1).size(10, 10),
    )
    .unwrap();
    let (header, cast_events) = asciicast::parse(&cast).unwrap();
    assert_eq!((header.width, header.height), (100, 30));
    assert_eq!(cast_events[0].kind, EventKind::Resize);
    assert_eq!(cast_events[1].kind, EventKind::Input);
    assert!(
        cast_events
            .iter()
            .any(|e| e.kind == EventKind::Output && e.data.contains('€'))
    );
    asciinema_accepts(&cast);
    // The whole session too.
    let whole = replay::export(&records, &CastOptions::session(&sid)).unwrap();
    assert_eq!(asciicast::parse(&whole).unwrap().1.len(), cast_events.len());
}

#[tokio::test]
async fn an_idle_event_is_written_without_waiting_for_the_next_chunk() {
    let w = World::new(None);
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "sh").await;
    let t = reply.transcript().clone();
    record(&t, TranscriptChunk::Output(b"$ ")).await;
    assert!(
        eventually(|| !terminal_events(&w.sink.events()).is_empty()).await,
        "the coalescing timer writes it"
    );
    // Later output is a later event, with a later time.
    record(&t, TranscriptChunk::Output(b"ls\r\n")).await;
    reply.finish();
    assert!(eventually(|| terminal_events(&w.sink.events()).len() == 2).await);
    let times: Vec<u64> = w
        .sink
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::TerminalOutput { time_us, .. } => Some(*time_us),
            _ => None,
        })
        .collect();
    assert!(times[1] >= times[0] + 20_000, "{times:?}");
}

#[tokio::test]
async fn beyond_the_limit_chunks_are_counted_and_hashed_not_stored() {
    let w = World::new(Some(1000));
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "cat big").await;
    let t = reply.transcript().clone();
    let data: Vec<u8> = (0..10_240u32).map(|i| (i % 251) as u8).collect();
    for c in data.chunks(100) {
        record(&t, TranscriptChunk::Output(c)).await;
    }
    record(&t, TranscriptChunk::Input(b"q")).await;
    reply.finish();
    completed(&w, 1).await;
    let records = w.records();
    let got = replay::transcript(&records, &session.id().to_string(), 1).unwrap();
    let summary = got.summary.clone().unwrap();
    let o = summary.iter().find(|s| s.stream == "o").unwrap();
    assert_eq!(o.bytes, 10_240);
    assert_eq!(
        o.stored,
        1000 - 128,
        "one event: its bytes and its overhead fit the limit"
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data);
    assert_eq!(
        o.sha256,
        sod_core::hex::encode(digest.as_ref()),
        "all bytes are hashed"
    );
    assert_eq!(got.output, &data[..o.stored as usize], "a prefix is stored");
    got.check().unwrap();
    let i = summary.iter().find(|s| s.stream == "i").unwrap();
    assert_eq!((i.bytes, i.stored), (1, 1));
    assert!(records.iter().any(|r| matches!(
        &r.event,
        Event::TranscriptSummary {
            limit: Some(1000),
            ..
        }
    )));
    let text = replay::timeline(&records, &Filter::new());
    assert!(
        text.contains("terminal #1: 10240 bytes (872 stored) of output, 1 bytes of input"),
        "{text}"
    );
}

#[tokio::test]
async fn a_sink_that_falls_behind_makes_record_wait_with_bounded_memory() {
    let w = World::new(None);
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "cat /dev/zero").await;
    let t = reply.transcript().clone();
    w.sink.hold();
    let accepted = Arc::new(AtomicUsize::new(0));
    let total = 64 * 1024 * 1024;
    let chunk = vec![b'z'; 32 * 1024];
    let mut writer = {
        let (t, accepted, chunk) = (t.clone(), accepted.clone(), chunk.clone());
        tokio::spawn(async move {
            while accepted.load(Ordering::SeqCst) < total {
                t.record(TranscriptChunk::Output(&chunk)).await.unwrap();
                accepted.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        })
    };
    assert!(eventually(|| w.sink.waiting.load(Ordering::SeqCst) > 0).await);
    // The writer cannot finish while the sink holds: it waits in `record`.
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut writer).await;
    assert!(
        waited.is_err(),
        "64 MiB were accepted while the sink held every acknowledgement"
    );
    // Bounded: the queue, the event being coalesced, the appends in flight, one chunk.
    let held = accepted.load(Ordering::SeqCst);
    let bound = QUEUE_BYTES + (IN_FLIGHT + 2) * MAX_EVENT_BYTES + chunk.len();
    assert!(held <= bound, "accepted {held} bytes, bound {bound}");
    let events = terminal_events(&w.sink.events()).len();
    assert!(
        events <= IN_FLIGHT + 1,
        "{events} events appended while held"
    );
    w.sink.release();
    writer.await.unwrap();
    reply.finish();
    completed(&w, 1).await;
    let got = replay::transcript(&w.records(), &session.id().to_string(), 1).unwrap();
    assert_eq!(got.output.len(), total);
    got.check().unwrap();
}

#[tokio::test]
async fn a_failing_sink_fails_the_transcript_and_record_refuses() {
    let w = World::new(None);
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "cat").await;
    let t = reply.transcript().clone();
    w.sink.memory.set_failing(true);
    let chunk = vec![b'x'; MAX_EVENT_BYTES];
    let mut refused = None;
    for _ in 0..1000 {
        if let Err(r) = t.record(TranscriptChunk::Output(&chunk)).await {
            refused = Some(r);
            break;
        }
        tokio::task::yield_now().await;
    }
    let r = refused.expect("record refuses once the sink fails");
    assert_eq!(r.code(), RefusalCode::AuditUnavailable);
    assert!(r.reason().contains("transcript"), "{r}");
    reply.finish();
    // After the operation ended, recording is refused too.
    w.sink.memory.set_failing(false);
    let err = t.record(TranscriptChunk::Input(b"x")).await.unwrap_err();
    assert_eq!(err.code(), RefusalCode::AuditUnavailable);
}

#[tokio::test]
async fn an_operation_without_transcript_writes_no_summary() {
    let w = World::new(None);
    let (session, mut stack) = w.connect().await;
    let reply = w.exec(&mut stack, &session, "true").await;
    reply.finish();
    let events = w.sink.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::TranscriptSummary { .. }))
    );
    assert!(matches!(
        events.last(),
        Some(Event::OperationCompleted { .. })
    ));
    let err = replay::transcript(&w.records(), &session.id().to_string(), 1).unwrap_err();
    assert!(err.to_string().contains("no transcript"), "{err}");
}

#[test]
fn terminal_events_of_older_logs_still_parse() {
    let old = r#"{"type":"terminal_output","session":"s-1","time_us":5,"stream":"o","data":"hi"}"#;
    let e: Event = serde_json::from_str(old).unwrap();
    assert_eq!(
        e,
        Event::TerminalOutput {
            session: "s-1".into(),
            operation: None,
            time_us: 5,
            stream: "o".into(),
            data: "hi".into(),
            base64: false,
        }
    );
    // And new events serialize as documented.
    let new = Event::TerminalOutput {
        session: "s-1".into(),
        operation: Some(3),
        time_us: 1200,
        stream: "o".into(),
        data: "AAE=".into(),
        base64: true,
    };
    assert_eq!(
        serde_json::to_string(&new).unwrap(),
        r#"{"type":"terminal_output","session":"s-1","operation":3,"time_us":1200,"stream":"o","data":"AAE=","base64":true}"#
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the chunking and interleaving, replay gives back each stream's bytes exactly.
    #[test]
    fn replayed_bytes_equal_recorded_bytes(
        chunks in prop::collection::vec(
            (0u8..3, prop::collection::vec(any::<u8>(), 0..3000)),
            0..40,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let w = World::new(None);
            let (session, mut stack) = w.connect().await;
            let reply = w.exec(&mut stack, &session, "sh").await;
            let t = reply.transcript().clone();
            let mut want = [Vec::new(), Vec::new(), Vec::new()];
            for (stream, data) in &chunks {
                want[*stream as usize].extend_from_slice(data);
                let chunk = match stream {
                    0 => TranscriptChunk::Output(data),
                    1 => TranscriptChunk::Error(data),
                    _ => TranscriptChunk::Input(data),
                };
                t.record(chunk).await.unwrap();
            }
            reply.finish();
            completed(&w, 1).await;
            let got = replay::transcript(&w.records(), &session.id().to_string(), 1);
            if chunks.iter().all(|(_, d)| d.is_empty()) {
                assert!(got.is_err());
                return;
            }
            let got = got.unwrap();
            assert_eq!(got.output, want[0]);
            assert_eq!(got.error, want[1]);
            assert_eq!(got.input, want[2]);
            got.check().unwrap();
        });
    }
}

/// When asciinema is installed, it must accept the recording too.
fn asciinema_accepts(cast: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("asciinema").is_file()));
    if !found {
        eprintln!("asciinema is not on PATH: skipping the external check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("op.cast");
    std::fs::write(&file, cast).unwrap();
    let out = std::process::Command::new("asciinema")
        .arg("cat")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asciinema cat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
