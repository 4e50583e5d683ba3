//! `sod audit replay` over a log with an operation's transcript: the timeline folds its
//! terminal events into one line, `--asciicast SESSION[:OPERATION]` writes a recording that
//! parses back (and that asciinema accepts, when it is installed), and bad arguments are
//! usage errors.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sod_audit::asciicast::{self, EventKind};
use sod_audit::{
    AuditSink, CheckpointKey, Decision, Durability, Event, FileSink, FileSinkOptions, Outcome,
    StreamSummary,
};

const SOD: &str = env!("CARGO_BIN_EXE_sod");
const SESSION: &str = "5e55105e55105e55105e55105e551050";

fn sod(args: &[&str]) -> Output {
    Command::new(SOD).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sod-audit-replay-{name}-{}-{}",
        std::process::id(),
        sod_core::hex::encode(&sod_core::hex::random::<8>())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn terminal(op: u64, time_us: u64, stream: &str, data: &str, base64: bool) -> Event {
    Event::TerminalOutput {
        session: SESSION.into(),
        operation: Some(op),
        time_us,
        stream: stream.into(),
        data: data.into(),
        base64,
    }
}

/// A log of one session with a shell (#1) that has a transcript.
fn write_log(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (sink, _) = FileSink::open(
            dir,
            FileSinkOptions::new("gw-1", CheckpointKey::generate("k")),
        )
        .unwrap();
        let events = [
            Event::SessionStarted {
                session: SESSION.into(),
                principal: "ops-bot".into(),
                on_behalf_of: None,
                capability: None,
                target: "ssh/web-1".into(),
                peer: Some("127.0.0.1:50000".into()),
            },
            Event::OperationAttempted {
                session: SESSION.into(),
                operation: 1,
                principal: "ops-bot".into(),
                on_behalf_of: None,
                capability: None,
                target: "ssh/web-1".into(),
                kind: "exec".into(),
                text: "shell".into(),
                objects: Vec::new(),
                fingerprint: "00".repeat(32),
                decision: Decision {
                    effect: "allow".into(),
                    code: None,
                    rule: Some("ops".into()),
                    reason: "ok".into(),
                },
                approvals: Vec::new(),
            },
            terminal(1, 0, "r", "120x40", false),
            terminal(1, 10_000, "o", "$ ", false),
            terminal(1, 500_000, "i", "ls\r", false),
            terminal(1, 510_000, "o", "a.txt  b.txt\r\n$ ", false),
            // "nope\n" with a stray byte, as base64.
            terminal(1, 520_000, "e", "bm9wZf8K", true),
            terminal(1, 900_000, "r", "100x30", false),
            Event::TranscriptSummary {
                session: SESSION.into(),
                operation: 1,
                limit: Some(64 << 20),
                streams: vec![StreamSummary {
                    stream: "o".into(),
                    bytes: 18,
                    stored: 18,
                    sha256: "00".repeat(32),
                }],
            },
            Event::OperationCompleted {
                session: SESSION.into(),
                operation: 1,
                outcome: Outcome::Ok,
                rows: None,
                bytes: None,
                duration_us: 1_000_000,
                error_code: None,
            },
        ];
        for e in events {
            sink.append(e, Durability::Written).await.unwrap();
        }
        sink.close();
    });
}

#[test]
fn replay_shows_the_transcript_and_exports_asciicast() {
    let dir = temp_dir("cast");
    write_log(&dir);
    let d = dir.to_str().unwrap();

    let out = sod(&["audit", "replay", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let timeline = text(&out.stdout);
    assert!(
        timeline.contains("terminal #1: 18 bytes of output"),
        "{timeline}"
    );
    assert_eq!(timeline.matches("terminal").count(), 1, "{timeline}");

    let op = format!("{SESSION}:1");
    let out = sod(&["audit", "replay", d, "--asciicast", &op]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cast = text(&out.stdout);
    let (header, events) = asciicast::parse(&cast).unwrap();
    assert_eq!((header.width, header.height), (120, 40), "the first resize");
    assert_eq!(
        header.title.as_deref(),
        Some(format!("sod session {SESSION} #1: ops-bot on ssh/web-1").as_str())
    );
    let got: Vec<(EventKind, &str)> = events.iter().map(|e| (e.kind, e.data.as_str())).collect();
    assert_eq!(
        got,
        [
            (EventKind::Resize, "120x40"),
            (EventKind::Output, "$ "),
            (EventKind::Input, "ls\r"),
            (EventKind::Output, "a.txt  b.txt\r\n$ "),
            (EventKind::Output, "nope\u{fffd}\n"),
            (EventKind::Resize, "100x30"),
        ]
    );
    assert_eq!(events[2].time, 0.5);
    asciinema_accepts(&dir, &cast);

    // The whole session; --size only matters without a resize.
    let out = sod(&[
        "audit",
        "replay",
        d,
        "--asciicast",
        SESSION,
        "--size",
        "90x20",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (header, events) = asciicast::parse(&text(&out.stdout)).unwrap();
    assert_eq!((header.width, header.height), (120, 40));
    assert_eq!(events.len(), 6);

    // Errors: nothing recorded (1), bad arguments (2).
    let out = sod(&["audit", "replay", d, "--asciicast", &format!("{SESSION}:7")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no transcript"),
        "{}",
        text(&out.stderr)
    );
    for args in [
        vec!["--asciicast", "s:x"],
        vec!["--asciicast", SESSION, "--size", "wide"],
        vec!["--asciicast", SESSION, "--session", SESSION],
        vec!["--size", "80x24"],
    ] {
        let mut all = vec!["audit", "replay", d];
        all.extend(args.iter().copied());
        let out = sod(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// When asciinema is installed, it must accept the recording too.
fn asciinema_accepts(dir: &Path, cast: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("asciinema").is_file()));
    if !found {
        eprintln!("asciinema is not on PATH: skipping the external check");
        return;
    }
    let file = dir.join("op.cast");
    std::fs::write(&file, cast).unwrap();
    let out = Command::new("asciinema")
        .arg("cat")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asciinema cat failed: {}",
        text(&out.stderr)
    );
}
