//! Replay and asciicast: timelines and their filters, terminal export, the asciicast writer's
//! edge cases and its reader, reading a FileSink directory.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use sod_audit::asciicast::{self, AsciicastHeader, AsciicastWriter, EventKind, Utf8Decoder};
use sod_audit::record::{self, Hash, Record};
use sod_audit::replay::{self, Filter, ReplayError};
use sod_audit::{
    AuditSink, CheckpointKey, Decision, Durability, Event, FileSink, FileSinkOptions, MemorySink,
    Outcome,
};

// ---------------------------------------------------------------------------------------------
// Event builders

fn started(session: &str, principal: &str, obo: Option<&str>, target: &str, peer: &str) -> Event {
    Event::SessionStarted {
        session: session.into(),
        principal: principal.into(),
        on_behalf_of: obo.map(Into::into),
        capability: None,
        target: target.into(),
        peer: Some(peer.into()),
    }
}

struct Attempt<'a> {
    session: &'a str,
    operation: u64,
    principal: &'a str,
    target: &'a str,
    kind: &'a str,
    text: &'a str,
    effect: &'a str,
    rule: Option<&'a str>,
    code: Option<&'a str>,
    reason: &'a str,
    approvals: &'a [&'a str],
}

impl Attempt<'_> {
    fn event(&self) -> Event {
        Event::OperationAttempted {
            session: self.session.into(),
            operation: self.operation,
            principal: self.principal.into(),
            on_behalf_of: None,
            capability: None,
            target: self.target.into(),
            kind: self.kind.into(),
            text: self.text.into(),
            objects: vec![],
            fingerprint: format!("{:064x}", self.operation),
            decision: Decision {
                effect: self.effect.into(),
                code: self.code.map(Into::into),
                rule: self.rule.map(Into::into),
                reason: self.reason.into(),
            },
            approvals: self.approvals.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

fn completed(
    session: &str,
    operation: u64,
    outcome: Outcome,
    rows: Option<u64>,
    duration_us: u64,
    error_code: Option<&str>,
) -> Event {
    Event::OperationCompleted {
        session: session.into(),
        operation,
        outcome,
        rows,
        bytes: None,
        duration_us,
        error_code: error_code.map(Into::into),
    }
}

fn terminal(session: &str, time_us: u64, stream: &str, data: &str) -> Event {
    Event::TerminalOutput {
        session: session.into(),
        operation: None,
        time_us,
        stream: stream.into(),
        data: data.into(),
        base64: false,
    }
}

// ---------------------------------------------------------------------------------------------
// A log written through a MemorySink

struct Log {
    records: Vec<Record>,
    /// A time after the first session's operations and before the second session.
    mid_us: u64,
}

async fn memory_log() -> Log {
    let sink = MemorySink::new("gw-1", CheckpointKey::generate("k"));
    let add = |e: Event| {
        let sink = &sink;
        async move {
            sink.append(e, Durability::Written).await.unwrap();
        }
    };

    // Session 1: a planner acting for alice on PostgreSQL.
    add(started(
        "s-1",
        "planner-1",
        Some("alice@example.com"),
        "pg/prod",
        "10.0.0.7:51234",
    ))
    .await;
    let base = Attempt {
        session: "s-1",
        operation: 1,
        principal: "planner-1",
        target: "pg/prod",
        kind: "read",
        text: "SELECT id FROM orders",
        effect: "allow",
        rule: Some("planners-read"),
        code: None,
        reason: "planners may read",
        approvals: &[],
    };
    add(base.event()).await;
    add(completed("s-1", 1, Outcome::Ok, Some(3), 800, None)).await;
    add(Attempt {
        operation: 2,
        kind: "write",
        text: "DELETE FROM orders",
        effect: "deny",
        rule: Some("no-delete"),
        code: Some("policy_denied"),
        reason: "deleting orders is not allowed",
        ..base
    }
    .event())
    .await;
    add(completed(
        "s-1",
        2,
        Outcome::Refused,
        None,
        40,
        Some("policy_denied"),
    ))
    .await;
    add(Attempt {
        operation: 3,
        kind: "admin",
        text: "VACUUM orders",
        effect: "refused",
        rule: None,
        code: Some("capability_scope"),
        reason: "the capability does not cover admin",
        ..base
    }
    .event())
    .await;
    add(completed(
        "s-1",
        3,
        Outcome::Refused,
        None,
        30,
        Some("capability_scope"),
    ))
    .await;
    sink.checkpoint().await.unwrap();

    std::thread::sleep(Duration::from_millis(3));
    let mid_us = now_us();
    std::thread::sleep(Duration::from_millis(3));

    // Session 2: an ops bot with an approved shell on an SSH host.
    add(started(
        "s-2",
        "ops-bot",
        None,
        "ssh/web-1",
        "10.0.0.9:40022",
    ))
    .await;
    add(Attempt {
        session: "s-2",
        operation: 1,
        principal: "ops-bot",
        target: "ssh/web-1",
        kind: "exec",
        text: "shell",
        effect: "require_approval",
        rule: Some("prod-shell"),
        code: None,
        reason: "interactive shells need an approval",
        approvals: &["ap-1"],
    }
    .event())
    .await;
    add(Event::ApprovalDecided {
        approval: "ap-1".into(),
        approver: "bob@example.com".into(),
        approved: true,
        comment: Some("go ahead".into()),
    })
    .await;
    // The protocol reads the terminal in chunks; "€" (E2 82 AC) is split between two reads.
    // It records each chunk through a Utf8Decoder, so no event holds half a character.
    let mut out = Utf8Decoder::new();
    for (t, chunk) in [
        (10_000u64, &b"$ echo price\r\nprice: \xE2\x82"[..]),
        (12_000, b"\xAC 5\r\n$ "),
    ] {
        add(terminal("s-2", t, "o", &out.push(chunk))).await;
    }
    add(terminal("s-2", 900_000, "i", "exit\r")).await;
    add(terminal("s-2", 905_000, "o", "logout\r\n")).await;
    add(completed("s-2", 1, Outcome::Ok, None, 910_000, None)).await;
    add(Event::session_ended("s-2", "client closed")).await;
    add(Event::session_ended("s-1", "client closed")).await;

    Log {
        records: sink.records(),
        mid_us,
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "missing {n:?} in:\n{text}");
    }
}

fn lacks(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(!text.contains(n), "unexpected {n:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Timeline

#[tokio::test]
async fn timeline_groups_sessions_and_describes_every_event() {
    let log = memory_log().await;
    let text = replay::timeline(&log.records, &Filter::new());
    has(
        &text,
        &[
            "session s-1  principal planner-1  on behalf of alice@example.com  target pg/prod  peer 10.0.0.7:51234\n",
            "session s-2  principal ops-bot  target ssh/web-1  peer 10.0.0.9:40022\n",
            "Z  session started\n",
            "Z  #1 read  allow (rule planners-read)  SELECT id FROM orders\n",
            "Z    -> ok, 3 rows, 0.8 ms\n",
            "Z  #2 write  deny (rule no-delete, policy_denied: deleting orders is not allowed)  DELETE FROM orders\n",
            "Z    -> refused (policy_denied)\n",
            "Z  #3 admin  refused (capability_scope: the capability does not cover admin)  VACUUM orders\n",
            "Z    -> refused (capability_scope)\n",
            "Z  #1 exec  require_approval (rule prod-shell, approvals ap-1)  shell\n",
            "approvals\n",
            "Z  approval ap-1 approved by bob@example.com: go ahead\n",
            // Four terminal events in a row, one line (the "€" counts 3 bytes).
            "Z  terminal: 38 bytes of output, 5 bytes of input\n",
            // Not directly after its attempt: the completion names its operation.
            "Z    -> #1 ok, 910.0 ms\n",
            "Z  session ended: client closed\n",
        ],
    );
    lacks(&text, &["checkpoint", "Checkpoint", "\u{20ac}", "price"]);

    // Groups in order of first appearance, separated by an empty line; s-1's late end stays in
    // its group.
    let s1 = text.find("session s-1").unwrap();
    let s2 = text.find("session s-2").unwrap();
    let approvals = text.find("approvals\n").unwrap();
    assert!(s1 < s2 && s2 < approvals, "{text}");
    assert_eq!(text.matches("\n\n").count(), 2, "{text}");
    let s1_group = &text[..s2];
    assert_eq!(s1_group.matches("session ended").count(), 1, "{text}");

    // Every event line starts with an RFC 3339 UTC timestamp with microseconds.
    for line in text.lines().filter(|l| l.starts_with("20")) {
        let ts = &line[..27];
        let b = ts.as_bytes();
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19], b[26]),
            (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
            "{line}"
        );
        assert!(
            ts.bytes().filter(u8::is_ascii_digit).count() == 20,
            "{line}"
        );
        assert_eq!(&line[27..29], "  ", "{line}");
    }
    let event_lines = text.lines().filter(|l| l.starts_with("20")).count();
    // 17 non-checkpoint records, four terminal events folded into one line.
    assert_eq!(event_lines, 17 - 3, "{text}");
}

#[tokio::test]
async fn timeline_filters_by_principal_target_session_time_and_decision() {
    let log = memory_log().await;
    let t = |f: Filter| replay::timeline(&log.records, &f);

    let planner = t(Filter::new().principal("planner-1"));
    has(
        &planner,
        &[
            "session s-1",
            "#1 read",
            "#2 write",
            "#3 admin",
            "session ended",
        ],
    );
    lacks(
        &planner,
        &["session s-2", "ops-bot", "approval", "terminal"],
    );

    let bot = t(Filter::new().principal("ops-bot"));
    has(
        &bot,
        &[
            "session s-2",
            "#1 exec",
            "terminal: 38 bytes",
            "-> #1 ok",
            "session ended",
        ],
    );
    lacks(&bot, &["session s-1", "approval ap-1"]);

    // An approver is the principal of their approval decisions.
    let bob = t(Filter::new().principal("bob@example.com"));
    assert!(bob.starts_with("approvals\n"), "{bob}");
    assert_eq!(bob.lines().count(), 2, "{bob}");

    assert!(t(Filter::new().principal("nobody")).is_empty());

    let ssh = t(Filter::new().target("ssh/web-1"));
    has(&ssh, &["session s-2", "#1 exec"]);
    lacks(&ssh, &["session s-1", "approvals\n", "approved by"]);
    assert_eq!(t(Filter::new().target("pg/prod")), planner);
    assert_eq!(t(Filter::new().session("s-1")), planner);
    assert!(t(Filter::new().session("s-1").target("ssh/web-1")).is_empty());

    // Time range: each record by its own time, both ends included.
    let later = t(Filter::new().from_us(log.mid_us));
    has(
        &later,
        &["session s-2", "#1 exec", "approval ap-1", "session s-1"],
    );
    lacks(&later, &["#1 read", "#2 write", "#3 admin"]);
    // s-1 only ended in that range.
    let s1 = &later[later.find("session s-1").unwrap()..];
    assert_eq!(s1.lines().count(), 2, "{later}");
    has(s1, &["session ended"]);
    let earlier = t(Filter::new().to_us(log.mid_us));
    has(&earlier, &["#1 read", "#2 write", "#3 admin"]);
    lacks(&earlier, &["session s-2", "approval", "session ended"]);
    let first = log.records.iter().find(|r| r.seq == 0).unwrap().ts_us;
    let only_first = t(Filter::new().from_us(first).to_us(first));
    has(&only_first, &["session started"]);
    assert!(t(Filter::new().from_us(now_us() + 60_000_000)).is_empty());

    // Decisions: the attempts with that effect and their completions, nothing else.
    let deny = t(Filter::new().decision("deny"));
    assert_eq!(deny.lines().count(), 3, "{deny}");
    has(
        &deny,
        &[
            "session s-1  principal planner-1",
            "#2 write  deny",
            "-> refused (policy_denied)",
        ],
    );
    let refused = t(Filter::new().decision("refused"));
    assert_eq!(refused.lines().count(), 3, "{refused}");
    has(
        &refused,
        &["#3 admin  refused", "-> refused (capability_scope)"],
    );
    let allow = t(Filter::new().decision("allow"));
    has(&allow, &["#1 read  allow", "-> ok, 3 rows"]);
    lacks(
        &allow,
        &["session s-2", "#2", "#3", "started", "ended", "terminal"],
    );
    let approval = t(Filter::new().decision("require_approval"));
    has(
        &approval,
        &[
            "session s-2",
            "#1 exec",
            "#1 exec  require_approval (rule prod-shell, approvals ap-1)  shell\n",
            "Z    -> ok, 910.0 ms\n",
        ],
    );
    lacks(&approval, &["terminal", "approval ap-1", "session s-1"]);

    // Conditions combine.
    assert!(t(Filter::new().principal("ops-bot").decision("deny")).is_empty());
    let both = t(Filter::new().principal("planner-1").decision("allow"));
    assert_eq!(both, allow);
}

/// A log with chosen times, to pin the exact text.
fn fixed_log() -> Vec<Record> {
    let key = CheckpointKey::generate("k");
    let base = 1_795_341_845_000_000u64; // 2026-11-22T10:04:05Z
    let a = |operation, kind, text, effect, rule, code, reason| {
        Attempt {
            session: "s-1",
            operation,
            principal: "planner-1",
            target: "pg/prod",
            kind,
            text,
            effect,
            rule,
            code,
            reason,
            approvals: &[],
        }
        .event()
    };
    let events: Vec<(u64, Event)> = vec![
        (
            0,
            started(
                "s-1",
                "planner-1",
                Some("alice@example.com"),
                "pg/prod",
                "10.0.0.7:51234",
            ),
        ),
        (
            123_456,
            a(
                3,
                "write",
                "UPDATE orders SET status = $1",
                "allow",
                Some("executors-write"),
                None,
                "ok",
            ),
        ),
        (
            124_301,
            completed("s-1", 3, Outcome::Ok, Some(1), 800, None),
        ),
        (
            1_000_000,
            a(
                4,
                "schema",
                "DROP TABLE orders",
                "deny",
                Some("no-ddl"),
                Some("policy_denied"),
                "DDL needs a change ticket",
            ),
        ),
        (
            1_000_210,
            completed("s-1", 4, Outcome::Refused, None, 12, Some("policy_denied")),
        ),
        (
            2_000_000,
            a(5, "read", "SELECT 1", "allow", Some("r"), None, ""),
        ),
        (
            2_000_001,
            a(6, "read", "SELECT\n2", "allow", Some("r"), None, ""),
        ),
        (
            2_500_000,
            completed("s-1", 5, Outcome::Error, None, 25_000_000, Some("57014")),
        ),
        (
            2_600_000,
            completed("s-1", 6, Outcome::Interrupted, Some(0), 1_500, None),
        ),
        (3_000_000, Event::session_ended("s-1", "bye\x1b[2J")),
    ];
    let mut prev = Hash::GENESIS;
    let mut out = Vec::new();
    for (seq, (dt, event)) in events.into_iter().enumerate() {
        let (line, hash) = record::encode("gw", seq as u64, base + dt, prev, &event);
        out.push(record::decode(line.as_bytes()).unwrap());
        prev = hash;
    }
    let cp = key.sign("gw", out.len() as u64 - 1, prev);
    let (line, _) = record::encode(
        "gw",
        out.len() as u64,
        base + 4_000_000,
        prev,
        &Event::Checkpoint(cp),
    );
    out.push(record::decode(line.as_bytes()).unwrap());
    out
}

#[test]
fn timeline_text_is_exact() {
    let text = replay::timeline(&fixed_log(), &Filter::new());
    let expected = "\
session s-1  principal planner-1  on behalf of alice@example.com  target pg/prod  peer 10.0.0.7:51234
2026-11-22T10:04:05.000000Z  session started
2026-11-22T10:04:05.123456Z  #3 write  allow (rule executors-write)  UPDATE orders SET status = $1
2026-11-22T10:04:05.124301Z    -> ok, 1 row, 0.8 ms
2026-11-22T10:04:06.000000Z  #4 schema  deny (rule no-ddl, policy_denied: DDL needs a change ticket)  DROP TABLE orders
2026-11-22T10:04:06.000210Z    -> refused (policy_denied)
2026-11-22T10:04:07.000000Z  #5 read  allow (rule r)  SELECT 1
2026-11-22T10:04:07.000001Z  #6 read  allow (rule r)  SELECT\\n2
2026-11-22T10:04:07.500000Z    -> #5 error (57014), 25.0 s
2026-11-22T10:04:07.600000Z    -> #6 interrupted, 0 rows, 1.5 ms
2026-11-22T10:04:08.000000Z  session ended: bye\\u{1b}[2J
";
    assert_eq!(text, expected);
    // Nothing from the log reaches the reader's terminal as a control character.
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
}

// ---------------------------------------------------------------------------------------------
// Asciicast export

#[tokio::test]
async fn asciicast_export_parses_back_in_order_with_the_split_character_whole() {
    let log = memory_log().await;
    let cast = replay::asciicast(&log.records, "s-2", 120, 40).unwrap();
    let (header, events) = asciicast::parse(&cast).unwrap();

    let started = log
        .records
        .iter()
        .find(|r| matches!(&r.event, Event::SessionStarted { session, .. } if session == "s-2"))
        .unwrap();
    assert_eq!((header.width, header.height), (120, 40));
    assert_eq!(header.timestamp, Some(started.ts_us / 1_000_000));
    assert_eq!(
        header.title.as_deref(),
        Some("sod session s-2: ops-bot on ssh/web-1")
    );
    assert!(header.env.is_empty());

    let got: Vec<(f64, EventKind, &str)> = events
        .iter()
        .map(|e| (e.time, e.kind, e.data.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (0.01, EventKind::Output, "$ echo price\r\nprice: "),
            (0.012, EventKind::Output, "\u{20ac} 5\r\n$ "),
            (0.9, EventKind::Input, "exit\r"),
            (0.905, EventKind::Output, "logout\r\n"),
        ]
    );
    let output: String = events
        .iter()
        .filter(|e| e.kind == EventKind::Output)
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(output, "$ echo price\r\nprice: € 5\r\n$ logout\r\n");
    assert!(!cast.contains('\u{FFFD}'));
    asciinema_accepts(&cast);

    // Sessions without a terminal, and unknown sessions, are errors.
    assert_eq!(
        replay::asciicast(&log.records, "s-1", 80, 24),
        Err(ReplayError::NoTerminalOutput("s-1".into()))
    );
    let err = replay::asciicast(&log.records, "s-404", 80, 24).unwrap_err();
    assert_eq!(
        err.to_string(),
        "session `s-404` has no terminal output in the log"
    );
}

#[tokio::test]
async fn asciicast_export_refuses_unknown_streams_and_clamps_times() {
    let sink = MemorySink::new("gw-1", CheckpointKey::generate("k"));
    for e in [
        terminal("s-9", 5_000_000, "o", "late"),
        terminal("s-9", 1_000_000, "o", " early"),
    ] {
        sink.append(e, Durability::Written).await.unwrap();
    }
    let records = sink.records();
    let cast = replay::asciicast(&records, "s-9", 80, 24).unwrap();
    let (header, events) = asciicast::parse(&cast).unwrap();
    // No session_started: the start is the first terminal record's time less its offset.
    assert_eq!(
        header.timestamp,
        Some((records[0].ts_us - 5_000_000) / 1_000_000)
    );
    assert_eq!(header.title.as_deref(), Some("sod session s-9"));
    assert_eq!(
        events.iter().map(|e| e.time).collect::<Vec<_>>(),
        [5.0, 5.0]
    );

    sink.append(terminal("s-9", 6_000_000, "x", "?"), Durability::Written)
        .await
        .unwrap();
    let err = replay::asciicast(&sink.records(), "s-9", 80, 24).unwrap_err();
    assert!(
        matches!(&err, ReplayError::UnknownStream { seq: 2, stream, .. } if stream == "x"),
        "{err}"
    );
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
    let file = dir.path().join("session.cast");
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

// ---------------------------------------------------------------------------------------------
// The writer

fn written(f: impl FnOnce(&mut AsciicastWriter<Vec<u8>>)) -> String {
    let mut w = AsciicastWriter::new(Vec::new(), AsciicastHeader::new(80, 24)).unwrap();
    f(&mut w);
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn writer_clamps_times_that_go_backwards() {
    let text = written(|w| {
        w.output(ms(2000), b"a").unwrap();
        w.input(ms(1000), b"b").unwrap();
        w.resize(ms(1500), 100, 30).unwrap();
        w.output(ms(2500), b"c").unwrap();
        w.output(Duration::from_nanos(2_500_000_999), b"d").unwrap();
    });
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            r#"[2.000000,"o","a"]"#,
            r#"[2.000000,"i","b"]"#,
            r#"[2.000000,"r","100x30"]"#,
            r#"[2.500000,"o","c"]"#,
            r#"[2.500000,"o","d"]"#,
        ]
    );
    asciicast::parse(&text).unwrap();
}

#[test]
fn writer_replaces_invalid_bytes_and_flushes_incomplete_ones_at_the_end() {
    let text = written(|w| {
        w.output(ms(1), b"a\xFFb\xC0\xAF").unwrap();
        w.output(ms(2), b"").unwrap();
        // An incomplete character, then invalid continuation: both replaced.
        w.output(ms(3), b"\xE2\x82").unwrap();
        w.output(ms(4), b"x").unwrap();
        // Held back until the end of the recording.
        w.output(ms(5), b"\xF0\x9F\x98").unwrap();
    });
    let (_, events) = asciicast::parse(&text).unwrap();
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(
        data,
        ["a\u{FFFD}b\u{FFFD}\u{FFFD}", "\u{FFFD}x", "\u{FFFD}"]
    );
    // The flushed remainder is stamped with the last event's time.
    assert_eq!(events[2].time, 0.004);
    assert_eq!(
        data.concat(),
        String::from_utf8_lossy(b"a\xFFb\xC0\xAF\xE2\x82x\xF0\x9F\x98")
    );
}

#[test]
fn writer_keeps_streams_apart_and_escapes_json() {
    let text = written(|w| {
        w.output(ms(1), b"\xE2").unwrap();
        w.input(ms(2), b"q\"\\\x1b[A\n").unwrap();
        w.output(ms(3), b"\x82\xAC").unwrap();
        w.marker(ms(4), "chapter 1").unwrap();
    });
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        [
            r#"[0.002000,"i","q\"\\\u001b[A\n"]"#,
            r#"[0.003000,"o","€"]"#,
            r#"[0.004000,"m","chapter 1"]"#,
        ]
    );
}

#[test]
fn header_round_trips() {
    let full = AsciicastHeader::new(213, 57)
        .timestamp(1_795_341_845)
        .title("deploy \"v2\" — web-1")
        .env("TERM", "xterm-256color")
        .env("SHELL", "/bin/bash");
    let text = written(|_| {});
    assert_eq!(text, "{\"version\":2,\"width\":80,\"height\":24}\n");
    let (h, events) = asciicast::parse(&text).unwrap();
    assert_eq!(h, AsciicastHeader::new(80, 24));
    assert!(events.is_empty());

    let w = AsciicastWriter::new(Vec::new(), full.clone()).unwrap();
    let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
    assert!(
        text.starts_with(r#"{"version":2,"width":213,"height":57,"timestamp":1795341845,"title":"#)
    );
    assert_eq!(asciicast::parse(&text).unwrap().0, full);
}

// ---------------------------------------------------------------------------------------------
// The reader

#[test]
fn parse_accepts_recordings_from_other_writers() {
    // As asciinema 2 writes them: more header members, nulls in env, float times, CRLF,
    // a trailing blank line.
    let text = "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1504467315, \
                \"idle_time_limit\": 2.5, \"command\": \"/bin/bash\", \
                \"env\": {\"SHELL\": null, \"TERM\": \"xterm-256color\"}, \
                \"theme\": {\"fg\": \"#d0d0d0\"}}\r\n\
                [0.248848, \"o\", \"\\u001b[1;31mHello \\u001b[32mWorld!\\u001b[0m\\n\"]\r\n\
                [1, \"r\", \"90x30\"]\n\
                [1.5e0, \"m\", \"\"]\n\n";
    let (h, events) = asciicast::parse(text).unwrap();
    assert_eq!(h.timestamp, Some(1_504_467_315));
    assert_eq!(h.env.len(), 1);
    assert_eq!(h.env["TERM"], "xterm-256color");
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0].data,
        "\u{1b}[1;31mHello \u{1b}[32mWorld!\u{1b}[0m\n"
    );
    assert_eq!((events[1].time, events[1].kind), (1.0, EventKind::Resize));
    assert_eq!((events[2].time, events[2].kind), (1.5, EventKind::Marker));
}

#[test]
fn parse_errors_name_the_line_and_the_problem() {
    const H: &str = "{\"version\":2,\"width\":80,\"height\":24}\n";
    let cases: &[(String, usize, &str)] = &[
        (String::new(), 1, "empty"),
        ("\n \n".into(), 1, "empty"),
        ("hello\n".into(), 1, "header is not JSON"),
        ("[2, 80, 24]\n".into(), 1, "must be a JSON object"),
        ("{\"width\":80,\"height\":24}".into(), 1, "no \"version\""),
        (
            "{\"version\":1,\"width\":80,\"height\":24}".into(),
            1,
            "unsupported asciicast version 1",
        ),
        (
            "{\"version\":\"2\",\"width\":80,\"height\":24}".into(),
            1,
            "unsupported",
        ),
        ("{\"version\":2,\"height\":24}".into(), 1, "no \"width\""),
        (
            "{\"version\":2,\"width\":70000,\"height\":24}".into(),
            1,
            "\"width\" must be an integer",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":-1}".into(),
            1,
            "\"height\" must be an integer",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1.5}".into(),
            1,
            "\"timestamp\"",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"title\":7}".into(),
            1,
            "\"title\" must be a string",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"env\":[]}".into(),
            1,
            "\"env\" must be an object",
        ),
        (
            "{\"version\":2,\"width\":80,\"height\":24,\"env\":{\"TERM\":1}}".into(),
            1,
            "\"TERM\" must be a string",
        ),
        (
            format!("{H}[0.1,\"o\",\"a\"]\n{{}}\n"),
            3,
            "must be a JSON array",
        ),
        (format!("{H}\n[0.1,\"o\"]\n"), 3, "3 elements"),
        (format!("{H}[0.1,\"o\",\"a\"\n"), 2, "event is not JSON"),
        (format!("{H}[-0.1,\"o\",\"a\"]\n"), 2, "non-negative number"),
        (
            format!("{H}[\"0.1\",\"o\",\"a\"]\n"),
            2,
            "non-negative number",
        ),
        (
            format!("{H}[2,\"o\",\"a\"]\n[1,\"o\",\"b\"]\n"),
            3,
            "before the previous event's time 2",
        ),
        (
            format!("{H}[1,\"x\",\"a\"]\n"),
            2,
            "unknown event code \"x\"",
        ),
        (format!("{H}[1,5,\"a\"]\n"), 2, "code must be a string"),
        (format!("{H}[1,\"o\",null]\n"), 2, "data must be a string"),
        (format!("{H}[1,\"r\",\"80by24\"]\n"), 2, "COLSxROWS"),
    ];
    for (text, line, what) in cases {
        let err = asciicast::parse(text).unwrap_err();
        assert_eq!(err.line, *line, "{text:?}: {err}");
        assert!(err.problem.contains(what), "{text:?}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("asciicast line {line}: ")),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Byte soup that is often, but not always, UTF-8.
fn terminal_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            "[a-z€😀é\u{800}]{0,6}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..6),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn writer_output_is_the_lossy_decoding_of_the_whole_stream(
        output in terminal_bytes(),
        input in terminal_bytes(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), 0u64..5_000_000), 0..12),
    ) {
        // Cut each stream at random points and interleave the chunks, at random times.
        let mut out_cuts: Vec<usize> = cuts.iter().filter(|c| c.1).map(|c| c.0.index(output.len() + 1)).collect();
        let mut in_cuts: Vec<usize> = cuts.iter().filter(|c| !c.1).map(|c| c.0.index(input.len() + 1)).collect();
        out_cuts.sort_unstable();
        in_cuts.sort_unstable();
        out_cuts.push(output.len());
        in_cuts.push(input.len());
        let mut w = AsciicastWriter::new(Vec::new(), AsciicastHeader::new(80, 24)).unwrap();
        let (mut o, mut i) = (0, 0);
        for (k, (oc, ic)) in out_cuts.iter().zip(in_cuts.iter().chain(std::iter::repeat(&input.len()))).enumerate() {
            let at = Duration::from_micros(cuts.get(k).map_or(0, |c| c.2));
            w.output(at, &output[o..*oc]).unwrap();
            o = *oc;
            w.input(at, &input[i..*ic]).unwrap();
            i = *ic;
        }
        w.input(Duration::ZERO, &input[i..]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();

        let (_, events) = asciicast::parse(&text).unwrap();
        let joined = |kind| events.iter().filter(|e| e.kind == kind).map(|e| e.data.as_str()).collect::<String>();
        prop_assert_eq!(joined(EventKind::Output), String::from_utf8_lossy(&output));
        prop_assert_eq!(joined(EventKind::Input), String::from_utf8_lossy(&input));
        prop_assert!(events.iter().all(|e| !e.data.is_empty()));
        prop_assert!(events.windows(2).all(|p| p[0].time <= p[1].time));
    }

    #[test]
    fn decoder_holds_back_at_most_three_bytes(chunks in prop::collection::vec(terminal_bytes(), 0..8)) {
        let mut d = Utf8Decoder::new();
        let mut text = String::new();
        for c in &chunks {
            text += &d.push(c);
            prop_assert!(d.pending().len() <= 3);
        }
        text += &d.finish();
        let all = chunks.concat();
        prop_assert_eq!(text, String::from_utf8_lossy(&all));
    }

    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = asciicast::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_misses(
        header in prop_oneof![
            Just("{\"version\":2,\"width\":80,\"height\":24}".to_owned()),
            "\\{\"version\":[0-9.e-]{1,4},\"width\":[0-9.e-]{1,8},\"height\":[0-9.e-]{1,8}(,\"env\":\\{\"T\":[a-z0-9\"\\[\\]{}]{0,4}\\})?\\}",
        ],
        events in prop::collection::vec("\\[[0-9.eE+-]{0,25},\"[oirmx]{0,2}\",\"[0-9x\\\\u]{0,12}\"\\]|[\\[\\]{}\",:0-9a-z. ]{0,20}", 0..6),
    ) {
        let text = format!("{header}\n{}", events.join("\n"));
        let _ = asciicast::parse(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a FileSink directory

async fn file_log(dir: &Path, key: &CheckpointKey, events: &[Event]) {
    let options = FileSinkOptions::new("gw", key.clone())
        .max_segment_bytes(1024)
        .checkpoint_every(5);
    let (sink, _) = FileSink::open(dir, options).unwrap();
    for e in events {
        sink.append(e.clone(), Durability::Written).await.unwrap();
    }
    sink.close();
}

fn some_events() -> Vec<Event> {
    let mut events = vec![started("s-1", "planner-1", None, "pg/prod", "10.0.0.7:1")];
    for i in 1..=12 {
        events.push(
            Attempt {
                session: "s-1",
                operation: i,
                principal: "planner-1",
                target: "pg/prod",
                kind: "read",
                text: "SELECT 1",
                effect: "allow",
                rule: Some("r"),
                code: None,
                reason: "",
                approvals: &[],
            }
            .event(),
        );
        events.push(completed("s-1", i, Outcome::Ok, Some(1), 10, None));
    }
    events.push(Event::session_ended("s-1", "done"));
    events
}

#[tokio::test]
async fn read_dir_returns_the_records_of_every_segment_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k");
    let events = some_events();
    file_log(dir.path(), &key, &events).await;
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .count();
    assert!(segments > 1, "rotation should have made several segments");

    let records = replay::read_dir(dir.path()).unwrap();
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u64 && r.stream == "gw")
    );
    let read: Vec<Event> = records
        .into_iter()
        .map(|r| r.event)
        .filter(|e| !matches!(e, Event::Checkpoint(_)))
        .collect();
    assert_eq!(read, events);

    let text = replay::timeline(&replay::read_dir(dir.path()).unwrap(), &Filter::new());
    has(
        &text,
        &["#12 read  allow (rule r)  SELECT 1", "session ended: done"],
    );

    // No directory: an empty log.
    assert!(
        replay::read_dir(&dir.path().join("missing"))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn read_dir_names_the_segment_line_and_offset_of_a_bad_line() {
    let key = CheckpointKey::generate("k");
    let events = some_events();

    // An edited record.
    let dir = tempfile::tempdir().unwrap();
    file_log(dir.path(), &key, &events[..3]).await;
    let seg = dir.path().join("segment-00000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap();
    let second = text.find('\n').unwrap() + 1;
    std::fs::write(&seg, text.replacen("SELECT 1", "SELECT 2", 1)).unwrap();
    let err = replay::read_dir(dir.path()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains("segment-00000001.jsonl: line 2 (byte "),
        "{msg}"
    );
    assert!(msg.contains(&format!("(byte {second})")), "{msg}");
    assert!(msg.contains("hash does not match"), "{msg}");

    // A last line cut short, and an empty line.
    for (tail, what) in [
        ("{\"v\":1", "the last line is incomplete (6 bytes"),
        ("\n", "empty line"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        file_log(dir.path(), &key, &events[..2]).await;
        let seg = dir.path().join("segment-00000001.jsonl");
        let mut text = std::fs::read_to_string(&seg).unwrap();
        let len = text.len();
        text.push_str(tail);
        std::fs::write(&seg, text).unwrap();
        let msg = replay::read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("line 3 (byte {len}): {what}")),
            "{msg}"
        );
    }
}
