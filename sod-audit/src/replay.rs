//! Reading the log for humans: load it ([`read_dir`]), select what matters ([`Filter`]), read
//! it as a timeline ([`timeline`]), watch a terminal session or one operation again
//! ([`export`], [`asciicast()`]), or get an operation's streams back byte for byte
//! ([`transcript`]).
//!
//! Replay only *reads*: it checks each line's own hash, so a damaged line is reported, but it
//! does not check the chain, the checkpoint signatures or the segment order. Run
//! [`verify::dir`](crate::verify::dir) on the same directory first when the log must be
//! trusted (tamper-evidence, invariant I5).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use sod_audit::replay::{self, Filter};
//! use sod_audit::{AuditSink, CheckpointKey, Durability, Event, MemorySink};
//!
//! let sink = MemorySink::new("gw-1", CheckpointKey::generate("k"));
//! sink.append(
//!     Event::SessionStarted {
//!         session: "s-1".into(),
//!         principal: "planner-1".into(),
//!         on_behalf_of: Some("alice@example.com".into()),
//!         capability: None,
//!         target: "pg/prod".into(),
//!         peer: Some("10.0.0.7:51234".into()),
//!     },
//!     Durability::Written,
//! )
//! .await
//! .unwrap();
//! sink.append(Event::session_ended("s-1", "client closed"), Durability::Written)
//!     .await
//!     .unwrap();
//!
//! let text = replay::timeline(&sink.records(), &Filter::new().principal("planner-1"));
//! assert!(text.starts_with("session s-1  principal planner-1  on behalf of alice@example.com"));
//! assert!(text.contains("Z  session ended: client closed"));
//! assert!(replay::timeline(&sink.records(), &Filter::new().principal("bob")).is_empty());
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

use crate::asciicast::{AsciicastHeader, AsciicastWriter};
use crate::record::{self, Record};
use crate::sink::file::{read_segment, segment_files};
use crate::{Event, Outcome, StreamSummary};

/// Which events to show. Every condition that is set must hold (they are combined with AND);
/// a filter with nothing set keeps every event.
///
/// How each condition applies to each event:
///
/// - **`principal`** (the principal id, exactly) and **`target`** (exactly):
///   - `operation_attempted` matches by its own `principal` / `target`;
///   - `operation_completed` matches as its `operation_attempted` does (same session and
///     operation number); when the log has no such attempt, as a session event;
///   - session events — `session_started`, `session_ended`, `terminal_output`,
///     `transcript_summary` — match when
///     the session's `session_started` or any of its `operation_attempted` events has that
///     principal / target;
///   - `approval_decided` matches `principal` by its approver, and never matches `target`.
/// - **`session`**: the event's session id equals it (`approval_decided` has none and never
///   matches).
/// - **`from_us`** / **`to_us`**: the record's own `ts_us` (microseconds since the Unix epoch)
///   lies in `from_us ..= to_us`, both ends included. Each record is judged by its own time,
///   so a completion after `to_us` is left out even when its attempt is shown.
/// - **`decision`** (an effect: `allow`, `deny`, `require_approval`, `refused`): keeps only
///   `operation_attempted` events whose decision has that effect, and the
///   `operation_completed` events of those operations (same session and operation number);
///   every other event is left out.
///
/// Checkpoint records are never shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Principal id.
    pub principal: Option<String>,
    /// Target (`pg/prod`).
    pub target: Option<String>,
    /// Session id.
    pub session: Option<String>,
    /// Earliest record time, microseconds since the Unix epoch, included.
    pub from_us: Option<u64>,
    /// Latest record time, microseconds since the Unix epoch, included.
    pub to_us: Option<u64>,
    /// Decision effect: `allow`, `deny`, `require_approval` or `refused`.
    pub decision: Option<String>,
}

impl Filter {
    /// A filter that keeps everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only events of this principal.
    #[must_use]
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Only events concerning this target.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Only events of this session.
    #[must_use]
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Only records appended at or after this time (microseconds since the Unix epoch).
    #[must_use]
    pub fn from_us(mut self, from_us: u64) -> Self {
        self.from_us = Some(from_us);
        self
    }

    /// Only records appended at or before this time (microseconds since the Unix epoch).
    #[must_use]
    pub fn to_us(mut self, to_us: u64) -> Self {
        self.to_us = Some(to_us);
        self
    }

    /// Only operations with this decision effect (`allow`, `deny`, `require_approval`,
    /// `refused`) and their completions.
    #[must_use]
    pub fn decision(mut self, effect: impl Into<String>) -> Self {
        self.decision = Some(effect.into());
        self
    }
}

/// Why a replay could not be produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The session has no terminal output in the records.
    #[error("session `{0}` has no terminal output in the log")]
    NoTerminalOutput(String),
    /// The operation has no transcript in the records.
    #[error("operation #{operation} of session `{session}` has no transcript in the log")]
    NoTranscript {
        /// The session.
        session: String,
        /// The operation.
        operation: u64,
    },
    /// A terminal event names a stream other than `o`, `e`, `i` or `r`.
    #[error(
        "record {seq}: terminal event of session `{session}` has unknown stream `{stream}` (expected `o`, `e`, `i` or `r`)"
    )]
    UnknownStream {
        /// The record's sequence number.
        seq: u64,
        /// The session.
        session: String,
        /// The stream it names.
        stream: String,
    },
    /// A terminal event's data cannot be read (bad base64, a resize that is not
    /// `COLSxROWS`).
    #[error("record {seq}: terminal event has unreadable data: {reason}")]
    BadData {
        /// The record's sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing the recording failed.
    #[error("cannot write the recording: {0}")]
    Write(String),
}

/// Reads every record of a [`FileSink`](crate::FileSink) directory: the `segment-*.jsonl`
/// files in segment order, each line decoded and checked against its own hash.
///
/// This does not verify the chain or the signatures: run [`verify::dir`](crate::verify::dir)
/// for tamper-evidence. A line that is not a valid record (including an empty line, or a last
/// line without its newline, as a crash or a write in progress leaves it) is an
/// [`InvalidData`](io::ErrorKind::InvalidData) error naming the segment, the line and its byte
/// offset. A missing directory is an empty log.
pub fn read_dir(dir: &Path) -> io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for (_, file) in segment_files(dir)? {
        let bytes = read_segment(&file).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", file.display()))
        })?;
        let bad = |line: usize, offset: usize, what: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: line {line} (byte {offset}): {what}", file.display()),
            )
        };
        let mut offset = 0usize;
        let mut line_no = 0usize;
        while let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) {
            line_no += 1;
            let Some(len) = rest.iter().position(|&b| b == b'\n') else {
                let what = format!(
                    "the last line is incomplete ({} bytes without a newline)",
                    rest.len()
                );
                return Err(bad(line_no, offset, &what));
            };
            let line = &rest[..len];
            if line.is_empty() {
                return Err(bad(line_no, offset, &"empty line"));
            }
            let rec = record::decode(line).map_err(|e| bad(line_no, offset, &e))?;
            records.push(rec);
            offset += len + 1;
        }
    }
    Ok(records)
}

/// What the log says about one session.
#[derive(Default)]
struct SessionInfo<'a> {
    principal: Option<&'a str>,
    on_behalf_of: Option<&'a str>,
    target: Option<&'a str>,
    peer: Option<&'a str>,
    started_us: Option<u64>,
    principals: HashSet<&'a str>,
    targets: HashSet<&'a str>,
}

/// Sessions and operations, indexed for filtering.
struct Index<'a> {
    sessions: HashMap<&'a str, SessionInfo<'a>>,
    /// (session, operation) → (principal, target, effect) of its attempt.
    attempts: HashMap<(&'a str, u64), (&'a str, &'a str, &'a str)>,
}

impl<'a> Index<'a> {
    fn new(records: &'a [Record]) -> Self {
        let mut sessions: HashMap<&str, SessionInfo<'_>> = HashMap::new();
        let mut attempts = HashMap::new();
        for rec in records {
            match &rec.event {
                Event::SessionStarted {
                    session,
                    principal,
                    on_behalf_of,
                    target,
                    peer,
                    ..
                } => {
                    let info = sessions.entry(session).or_default();
                    info.principal = Some(principal);
                    info.on_behalf_of = on_behalf_of.as_deref();
                    info.target = Some(target);
                    info.peer = peer.as_deref();
                    info.started_us.get_or_insert(rec.ts_us);
                    info.principals.insert(principal);
                    info.targets.insert(target);
                }
                Event::OperationAttempted {
                    session,
                    operation,
                    principal,
                    on_behalf_of,
                    target,
                    decision,
                    ..
                } => {
                    let info = sessions.entry(session).or_default();
                    info.principal.get_or_insert(principal);
                    if info.on_behalf_of.is_none() {
                        info.on_behalf_of = on_behalf_of.as_deref();
                    }
                    info.target.get_or_insert(target);
                    info.principals.insert(principal);
                    info.targets.insert(target);
                    attempts.entry((session.as_str(), *operation)).or_insert((
                        principal.as_str(),
                        target.as_str(),
                        decision.effect.as_str(),
                    ));
                }
                _ => {}
            }
        }
        Self { sessions, attempts }
    }

    fn session_matches(&self, session: &str, filter: &Filter) -> bool {
        let info = self.sessions.get(session);
        let has = |set: Option<&HashSet<&str>>, want: &Option<String>| match want {
            None => true,
            Some(w) => set.is_some_and(|s| s.contains(w.as_str())),
        };
        has(info.map(|i| &i.principals), &filter.principal)
            && has(info.map(|i| &i.targets), &filter.target)
    }

    fn matches(&self, rec: &Record, filter: &Filter) -> bool {
        if filter.from_us.is_some_and(|t| rec.ts_us < t)
            || filter.to_us.is_some_and(|t| rec.ts_us > t)
        {
            return false;
        }
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        match &rec.event {
            Event::Checkpoint(_) => false,
            Event::ApprovalDecided { approver, .. } => {
                filter.session.is_none()
                    && filter.target.is_none()
                    && filter.decision.is_none()
                    && is(&filter.principal, approver)
            }
            Event::OperationAttempted {
                session,
                principal,
                target,
                decision,
                ..
            } => {
                is(&filter.session, session)
                    && is(&filter.principal, principal)
                    && is(&filter.target, target)
                    && is(&filter.decision, &decision.effect)
            }
            Event::OperationCompleted {
                session, operation, ..
            } => {
                if !is(&filter.session, session) {
                    return false;
                }
                match self.attempts.get(&(session.as_str(), *operation)) {
                    Some((principal, target, effect)) => {
                        is(&filter.principal, principal)
                            && is(&filter.target, target)
                            && is(&filter.decision, effect)
                    }
                    None => filter.decision.is_none() && self.session_matches(session, filter),
                }
            }
            Event::SessionStarted { session, .. }
            | Event::SessionEnded { session, .. }
            | Event::TerminalOutput { session, .. }
            | Event::TranscriptSummary { session, .. } => {
                filter.decision.is_none()
                    && is(&filter.session, session)
                    && self.session_matches(session, filter)
            }
        }
    }
}

/// A readable timeline of the records that match `filter`.
///
/// Events are grouped per session, sessions in the order they first appear among the matching
/// records; approval decisions (which belong to no session) form one group of their own. Each
/// group starts with a header line naming the session's principal, the human it acts for,
/// target and peer (from its `session_started`, or its first `operation_attempted`), then has
/// one line per event, with the record's time in RFC 3339 UTC:
///
/// ```text
/// session s-1  principal planner-1  on behalf of alice@example.com  target pg/prod  peer 10.0.0.7:51234
/// 2026-11-22T10:04:05.000000Z  session started
/// 2026-11-22T10:04:05.123456Z  #3 write  allow (rule executors-write)  UPDATE orders SET …
/// 2026-11-22T10:04:05.124301Z    -> ok, 1 row, 0.8 ms
/// 2026-11-22T10:04:06.000000Z  #4 schema  deny (rule no-ddl, policy_denied: DDL needs a change ticket)  DROP TABLE orders
/// 2026-11-22T10:04:06.000210Z    -> refused (policy_denied)
/// 2026-11-22T10:04:07.000000Z  #5 exec  allow (rule ops-exec)  tail -n 100 /var/log/app.log
/// 2026-11-22T10:04:07.010000Z  terminal #5: 1234 bytes of output, 5 bytes of input
/// 2026-11-22T10:04:07.020000Z    -> ok, 1234 bytes, 20.1 ms
/// 2026-11-22T10:04:09.000000Z  session ended: client closed
/// ```
///
/// A completion that does not directly follow its attempt names the operation
/// (`-> #3 ok, …`). Consecutive terminal events of one operation are summarized in one line
/// rather than printed (`terminal #5: …`; `terminal: …` for events of older logs, which name
/// no operation); when the operation's `transcript_summary` follows them, the line gives its
/// totals, and where the recording limit left bytes out, how many were stored
/// (`1073741824 bytes (67108864 stored) of input`). Groups are separated by an empty line.
/// Text from the log is shown with control
/// characters escaped (`\u{1b}`), so a recorded escape sequence cannot act on the reader's
/// terminal. Checkpoint records are omitted. No matching record gives an empty string.
pub fn timeline(records: &[Record], filter: &Filter) -> String {
    let index = Index::new(records);
    // Groups in order of first appearance; `None` is the approvals group.
    let mut order: Vec<Option<&str>> = Vec::new();
    let mut groups: HashMap<Option<&str>, Vec<&Record>> = HashMap::new();
    for rec in records.iter().filter(|r| index.matches(r, filter)) {
        let key = rec.event.session();
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(rec);
    }
    let mut out = String::new();
    for key in order {
        if !out.is_empty() {
            out.push('\n');
        }
        match key {
            Some(session) => session_header(&mut out, session, index.sessions.get(session)),
            None => out.push_str("approvals\n"),
        }
        let recs = groups.get(&key).map(Vec::as_slice).unwrap_or_default();
        write_events(&mut out, recs);
    }
    out
}

/// The records [`timeline`] shows for `filter`, in log order (for machine-readable output).
///
/// ```
/// use sod_audit::replay::{select, Filter};
/// assert!(select(&[], &Filter::new().principal("planner")).is_empty());
/// ```
pub fn select<'a>(records: &'a [Record], filter: &Filter) -> Vec<&'a Record> {
    let index = Index::new(records);
    records
        .iter()
        .filter(|r| index.matches(r, filter))
        .collect()
}

fn session_header(out: &mut String, session: &str, info: Option<&SessionInfo<'_>>) {
    out.push_str("session ");
    out.push_str(&clean(session));
    if let Some(info) = info {
        let parts = [
            ("principal", info.principal),
            ("on behalf of", info.on_behalf_of),
            ("target", info.target),
            ("peer", info.peer),
        ];
        for (label, value) in parts {
            if let Some(v) = value {
                let _ = write!(out, "  {label} {}", clean(v));
            }
        }
    }
    out.push('\n');
}

fn write_events(out: &mut String, recs: &[&Record]) {
    let mut i = 0;
    // The operation whose attempt is the line just written.
    let mut just_attempted: Option<u64> = None;
    while let Some(rec) = recs.get(i) {
        i += 1;
        let ts = rfc3339(rec.ts_us);
        let mut next_attempted = None;
        let line = match &rec.event {
            Event::SessionStarted { .. } => "session started".to_owned(),
            Event::SessionEnded { reason, .. } => format!("session ended: {}", clean(reason)),
            Event::OperationAttempted {
                operation,
                kind,
                text,
                decision,
                approvals,
                ..
            } => {
                next_attempted = Some(*operation);
                let mut why = Vec::new();
                if let Some(rule) = &decision.rule {
                    why.push(format!("rule {}", clean(rule)));
                }
                if !approvals.is_empty() {
                    why.push(format!("approvals {}", clean(&approvals.join(","))));
                }
                let mut line = format!("#{operation} {}  {}", clean(kind), clean(&decision.effect));
                let allowed = matches!(decision.effect.as_str(), "allow" | "require_approval");
                if !allowed {
                    let code = decision.code.as_deref().map(clean);
                    why.push(match code {
                        Some(code) => format!("{code}: {}", clean(&decision.reason)),
                        None => clean(&decision.reason),
                    });
                }
                if !why.is_empty() {
                    let _ = write!(line, " ({})", why.join(", "));
                }
                let _ = write!(line, "  {}", clean(text));
                line
            }
            Event::OperationCompleted {
                operation,
                outcome,
                rows,
                bytes,
                duration_us,
                error_code,
                ..
            } => {
                let mut line = String::from("  -> ");
                if just_attempted != Some(*operation) {
                    let _ = write!(line, "#{operation} ");
                }
                line.push_str(outcome_name(*outcome));
                if let Some(code) = error_code {
                    let _ = write!(line, " ({})", clean(code));
                }
                if let Some(rows) = rows {
                    let _ = write!(line, ", {rows} row{}", if *rows == 1 { "" } else { "s" });
                }
                if let Some(bytes) = bytes {
                    let _ = write!(line, ", {bytes} byte{}", if *bytes == 1 { "" } else { "s" });
                }
                if *outcome != Outcome::Refused {
                    let _ = write!(line, ", {}", duration(*duration_us));
                }
                line
            }
            Event::TerminalOutput { operation, .. } => {
                // This event and the terminal events of the same operation right after it,
                // and its summary if that follows, in one line.
                let op = *operation;
                let mut counts = [0u64; 4];
                let mut count = |e: &Event| match e {
                    Event::TerminalOutput {
                        operation,
                        stream,
                        data,
                        base64,
                        ..
                    } if *operation == op => {
                        let n = if *base64 {
                            decoded_len(data)
                        } else {
                            data.len() as u64
                        };
                        match stream.as_str() {
                            "i" => counts[2] += n,
                            "e" => counts[1] += n,
                            "r" => counts[3] += 1,
                            _ => counts[0] += n,
                        }
                        true
                    }
                    _ => false,
                };
                count(&rec.event);
                while recs.get(i).is_some_and(|r| count(&r.event)) {
                    i += 1;
                }
                let summary = match (op, recs.get(i).map(|r| &r.event)) {
                    (
                        Some(n),
                        Some(Event::TranscriptSummary {
                            operation, streams, ..
                        }),
                    ) if *operation == n => {
                        i += 1;
                        Some(streams)
                    }
                    _ => None,
                };
                match summary {
                    Some(streams) => summary_line(op, streams, counts[3]),
                    None => terminal_line(op, counts, None),
                }
            }
            Event::TranscriptSummary {
                operation, streams, ..
            } => summary_line(Some(*operation), streams, 0),
            Event::ApprovalDecided {
                approval,
                approver,
                approved,
                comment,
            } => {
                let mut line = format!(
                    "approval {} {} by {}",
                    clean(approval),
                    if *approved { "approved" } else { "denied" },
                    clean(approver)
                );
                if let Some(c) = comment {
                    let _ = write!(line, ": {}", clean(c));
                }
                line
            }
            Event::Checkpoint(_) => continue,
        };
        just_attempted = next_attempted;
        let _ = writeln!(out, "{ts}  {line}");
    }
}

/// `terminal #5: 1234 bytes of output, 5 bytes of input, 2 resizes`; `stored`, where some
/// bytes were left out, says how many of each stream were kept.
fn terminal_line(op: Option<u64>, counts: [u64; 4], stored: Option<[u64; 4]>) -> String {
    let [output, error, input, resizes] = counts;
    let with_stored = |n: u64, i: usize| match stored {
        Some(s) if s[i] < n => format!("{n} bytes ({} stored)", s[i]),
        _ => format!("{n} bytes"),
    };
    let mut parts = Vec::new();
    if output > 0 || error + input + resizes == 0 {
        parts.push(format!("{} of output", with_stored(output, 0)));
    }
    if error > 0 {
        parts.push(format!("{} of error output", with_stored(error, 1)));
    }
    if input > 0 {
        parts.push(format!("{} of input", with_stored(input, 2)));
    }
    if resizes > 0 {
        parts.push(format!(
            "{resizes} resize{}",
            if resizes == 1 { "" } else { "s" }
        ));
    }
    match op {
        Some(n) => format!("terminal #{n}: {}", parts.join(", ")),
        None => format!("terminal: {}", parts.join(", ")),
    }
}

/// The timeline line of a `transcript_summary`: its totals, and what was stored where the
/// limit left bytes out; `resizes` counted from the events before it.
fn summary_line(op: Option<u64>, streams: &[StreamSummary], resizes: u64) -> String {
    let mut counts = [0, 0, 0, resizes];
    let mut stored = [0u64; 4];
    let mut resize_bytes = (0u64, 0u64);
    for s in streams {
        let i = match s.stream.as_str() {
            "o" => 0,
            "e" => 1,
            "i" => 2,
            _ => {
                resize_bytes = (s.bytes, s.stored);
                continue;
            }
        };
        counts[i] = s.bytes;
        stored[i] = s.stored;
    }
    let mut line = terminal_line(op, counts, Some(stored));
    if resize_bytes.0 > 0 && resizes == 0 {
        line.push_str(", resized");
    }
    if resize_bytes.1 < resize_bytes.0 {
        line.push_str(" (not all resizes stored)");
    }
    line
}

/// The length of what base64 `data` decodes to.
fn decoded_len(data: &str) -> u64 {
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count();
    ((data.len() / 4 * 3).saturating_sub(padding)) as u64
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
        Outcome::Refused => "refused",
        Outcome::Skipped => "skipped",
        Outcome::Interrupted => "interrupted",
    }
}

/// `0.8 ms`, `12.3 ms`, `4.2 s`.
fn duration(us: u64) -> String {
    if us < 10_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.1} s", us as f64 / 1_000_000.0)
    }
}

/// Log text made safe to print: control characters (newlines, escape sequences) escaped.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `ts_us` (microseconds since the Unix epoch) as RFC 3339 UTC with microseconds.
///
/// ```
/// assert_eq!(sod_audit::replay::rfc3339(86_400_000_001), "1970-01-02T00:00:00.000001Z");
/// ```
pub fn rfc3339(ts_us: u64) -> String {
    let secs = ts_us / 1_000_000;
    let micros = ts_us % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What to export as asciicast ([`export`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CastOptions {
    /// The session.
    pub session: String,
    /// Only this operation (an exec, a shell) of the session; all of them when `None`.
    pub operation: Option<u64>,
    /// The terminal size for the header when the recording has no resize event (80×24 when
    /// `None`).
    pub size: Option<(u16, u16)>,
}

impl CastOptions {
    /// The whole terminal of `session`.
    pub fn session(session: impl Into<String>) -> Self {
        Self {
            session: session.into(),
            ..Self::default()
        }
    }

    /// Only operation `operation`.
    #[must_use]
    pub fn operation(mut self, operation: u64) -> Self {
        self.operation = Some(operation);
        self
    }

    /// The header size when no resize says it.
    #[must_use]
    pub fn size(mut self, width: u16, height: u16) -> Self {
        self.size = Some((width, height));
        self
    }
}

/// A terminal event of the log, its data decoded.
struct Chunk<'a> {
    rec: &'a Record,
    operation: Option<u64>,
    time_us: u64,
    stream: &'a str,
    data: Vec<u8>,
}

/// The terminal events of `session` (of `operation`, if given), in log order, decoded.
fn chunks<'a>(
    records: &'a [Record],
    session: &str,
    operation: Option<u64>,
) -> Result<Vec<Chunk<'a>>, ReplayError> {
    let mut out = Vec::new();
    for rec in records {
        let Event::TerminalOutput {
            session: s,
            operation: op,
            time_us,
            stream,
            data,
            base64,
        } = &rec.event
        else {
            continue;
        };
        if s != session || (operation.is_some() && *op != operation) {
            continue;
        }
        if !matches!(stream.as_str(), "o" | "e" | "i" | "r") {
            return Err(ReplayError::UnknownStream {
                seq: rec.seq,
                session: session.to_owned(),
                stream: stream.clone(),
            });
        }
        let data = if *base64 {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| ReplayError::BadData {
                    seq: rec.seq,
                    reason: format!("bad base64: {e}"),
                })?
        } else {
            data.clone().into_bytes()
        };
        out.push(Chunk {
            rec,
            operation: *op,
            time_us: *time_us,
            stream,
            data,
        });
    }
    Ok(out)
}

/// `COLSxROWS`.
fn parse_size(chunk: &Chunk<'_>) -> Result<(u32, u32), ReplayError> {
    let bad = || ReplayError::BadData {
        seq: chunk.rec.seq,
        reason: format!(
            "a resize must be COLSxROWS, not `{}`",
            clean(&String::from_utf8_lossy(&chunk.data))
        ),
    };
    let text = std::str::from_utf8(&chunk.data).map_err(|_| bad())?;
    let (c, r) = text.split_once('x').ok_or_else(bad)?;
    Ok((c.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?))
}

fn clamp16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Exports the terminal of `session` as an asciicast v2 recording, for a `width` × `height`
/// terminal unless the recording has a resize: [`export`] with
/// [`CastOptions::size`].
pub fn asciicast(
    records: &[Record],
    session: &str,
    width: u16,
    height: u16,
) -> Result<String, ReplayError> {
    export(records, &CastOptions::session(session).size(width, height))
}

/// Exports a session's terminal (or one operation's) as an asciicast v2 recording.
///
/// Every `terminal_output` event of the session (of the operation) becomes one event, in log
/// order: `o` and `e` (stderr) as output, `i` as input, `r` as a resize. Data stored as base64
/// is decoded; the recording's text is UTF-8 as asciinema requires (bytes that are not become
/// U+FFFD, a character split between events is kept whole). Times:
///
/// - for a whole session, from the session's start (its `session_started` record, or the first
///   terminal record's time less its `time_us`): an operation's events are placed at its
///   commit (its `operation_attempted` record's time) plus their `time_us`; events of older
///   logs, which name no operation, at their `time_us`;
/// - for one operation, from its commit;
///
/// clamped so that they never decrease. The header's size is the first resize's, else
/// `options.size`, else 80×24; its timestamp is the start; its title names the session (and
/// operation), principal and target. Fails when there is no terminal output, a terminal
/// event names another stream, or its data cannot be decoded.
pub fn export(records: &[Record], options: &CastOptions) -> Result<String, ReplayError> {
    let session = options.session.as_str();
    let terminal = chunks(records, session, options.operation)?;
    let Some(first) = terminal.first() else {
        return Err(match options.operation {
            Some(operation) => ReplayError::NoTranscript {
                session: session.to_owned(),
                operation,
            },
            None => ReplayError::NoTerminalOutput(session.to_owned()),
        });
    };
    let index = Index::new(records);
    let info = index.sessions.get(session);
    // When each operation was committed: its attempt's record time.
    let mut committed: HashMap<u64, u64> = HashMap::new();
    for rec in records {
        if let Event::OperationAttempted {
            session: s,
            operation,
            ..
        } = &rec.event
            && s == session
        {
            committed.entry(*operation).or_insert(rec.ts_us);
        }
    }
    let op_start = |c: &Chunk<'_>| match c.operation {
        Some(op) => committed
            .get(&op)
            .copied()
            .unwrap_or_else(|| c.rec.ts_us.saturating_sub(c.time_us)),
        None => 0,
    };
    let start_us = match options.operation {
        Some(_) => op_start(first),
        None => info
            .and_then(|i| i.started_us)
            .unwrap_or_else(|| match first.operation {
                Some(_) => op_start(first),
                None => first.rec.ts_us.saturating_sub(first.time_us),
            }),
    };
    let mut title = format!("sod session {session}");
    if let Some(op) = options.operation {
        let _ = write!(title, " #{op}");
    }
    if let Some(info) = info {
        if let Some(p) = info.principal {
            let _ = write!(title, ": {p}");
        }
        if let Some(t) = info.target {
            let _ = write!(title, " on {t}");
        }
    }
    let first_resize = terminal.iter().find(|c| c.stream == "r");
    let (width, height) = match first_resize {
        Some(c) => {
            let (w, h) = parse_size(c)?;
            (clamp16(w), clamp16(h))
        }
        None => options.size.unwrap_or((80, 24)),
    };
    let header = AsciicastHeader::new(width, height)
        .timestamp(start_us / 1_000_000)
        .title(title);
    let write_err = |e: io::Error| ReplayError::Write(e.to_string());
    let mut w = AsciicastWriter::new(Vec::new(), header).map_err(write_err)?;
    for c in &terminal {
        let time_us = match (options.operation, c.operation) {
            (None, Some(_)) => (op_start(c) + c.time_us).saturating_sub(start_us),
            _ => c.time_us,
        };
        let at = Duration::from_micros(time_us);
        match c.stream {
            "i" => w.input(at, &c.data),
            "r" => {
                let (cols, rows) = parse_size(c)?;
                w.resize(at, clamp16(cols), clamp16(rows))
            }
            _ => w.output(at, &c.data),
        }
        .map_err(write_err)?;
    }
    let bytes = w.into_inner().map_err(write_err)?;
    String::from_utf8(bytes).map_err(|e| ReplayError::Write(e.to_string()))
}

/// An operation's streams as the log has them ([`transcript`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// What the target wrote (stdout, terminal output): the stored bytes, exactly.
    pub output: Vec<u8>,
    /// What the target wrote to stderr.
    pub error: Vec<u8>,
    /// What the client sent (stdin, keystrokes).
    pub input: Vec<u8>,
    /// Terminal sizes, in order, with the time (microseconds since the commit) of each.
    pub resizes: Vec<(u64, u32, u32)>,
    /// The operation's `transcript_summary`, if the log has it.
    pub summary: Option<Vec<StreamSummary>>,
}

impl Recorded {
    /// Checks the stored bytes against the summary: each stream's stored length, and where a
    /// stream was stored whole, its SHA-256. `Err` names the first stream that differs, or
    /// says that there is no summary.
    pub fn check(&self) -> Result<(), String> {
        let Some(summary) = &self.summary else {
            return Err("the log has no transcript summary for the operation".into());
        };
        let resizes: Vec<u8> = self
            .resizes
            .iter()
            .flat_map(|(_, c, r)| format!("{c}x{r}").into_bytes())
            .collect();
        for (code, bytes) in [
            ("o", &self.output),
            ("e", &self.error),
            ("i", &self.input),
            ("r", &resizes),
        ] {
            let s = summary.iter().find(|s| s.stream == code);
            let (total, stored, sha) = match s {
                Some(s) => (s.bytes, s.stored, s.sha256.as_str()),
                None if bytes.is_empty() => continue,
                None => return Err(format!("stream `{code}` has events but no summary")),
            };
            if bytes.len() as u64 != stored {
                return Err(format!(
                    "stream `{code}`: {} bytes stored in events, the summary says {stored}",
                    bytes.len()
                ));
            }
            if stored == total {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
                if sod_core::hex::encode(digest.as_ref()) != sha {
                    return Err(format!(
                        "stream `{code}`: the stored bytes do not hash to the summary's SHA-256"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An operation's streams, byte for byte, from its `terminal_output` events (base64 decoded),
/// with its summary. Fails when the operation has neither events nor a summary, or an event
/// cannot be decoded.
pub fn transcript(
    records: &[Record],
    session: &str,
    operation: u64,
) -> Result<Recorded, ReplayError> {
    let mut out = Recorded::default();
    let chunks = chunks(records, session, Some(operation))?;
    for c in &chunks {
        match c.stream {
            "o" => out.output.extend_from_slice(&c.data),
            "e" => out.error.extend_from_slice(&c.data),
            "i" => out.input.extend_from_slice(&c.data),
            _ => {
                let (cols, rows) = parse_size(c)?;
                out.resizes.push((c.time_us, cols, rows));
            }
        }
    }
    out.summary = records.iter().find_map(|r| match &r.event {
        Event::TranscriptSummary {
            session: s,
            operation: op,
            streams,
            ..
        } if s == session && *op == operation => Some(streams.clone()),
        _ => None,
    });
    if chunks.is_empty() && out.summary.is_none() {
        return Err(ReplayError::NoTranscript {
            session: session.to_owned(),
            operation,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(1_795_341_845_123_456),
            "2026-11-22T10:04:05.123456Z"
        );
        assert_eq!(
            rfc3339(4_102_444_799_999_999),
            "2099-12-31T23:59:59.999999Z"
        );
        // No overflow at the far end.
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn civil_matches_a_day_by_day_count() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..200_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(clean("plain ü"), "plain ü");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(800), "0.8 ms");
        assert_eq!(duration(12_345), "12.3 ms");
        assert_eq!(duration(12_000_000), "12.0 s");
    }
}
