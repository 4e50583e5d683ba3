//! Reading the log for humans: load it ([`read_dir`]), select what matters ([`Filter`]), read
//! it as a timeline ([`timeline`]) or watch a terminal session again ([`asciicast()`]).
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

use crate::asciicast::{AsciicastHeader, AsciicastWriter};
use crate::record::{self, Record};
use crate::sink::file::{read_segment, segment_files};
use crate::{Event, Outcome};

/// Which events to show. Every condition that is set must hold (they are combined with AND);
/// a filter with nothing set keeps every event.
///
/// How each condition applies to each event:
///
/// - **`principal`** (the principal id, exactly) and **`target`** (exactly):
///   - `operation_attempted` matches by its own `principal` / `target`;
///   - `operation_completed` matches as its `operation_attempted` does (same session and
///     operation number); when the log has no such attempt, as a session event;
///   - session events — `session_started`, `session_ended`, `terminal_output` — match when
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
    /// A terminal event names a stream other than `o` or `i`.
    #[error(
        "record {seq}: terminal event of session `{session}` has unknown stream `{stream}` (expected `o` or `i`)"
    )]
    UnknownStream {
        /// The record's sequence number.
        seq: u64,
        /// The session.
        session: String,
        /// The stream it names.
        stream: String,
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
            | Event::TerminalOutput { session, .. } => {
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
/// 2026-11-22T10:04:07.000000Z  terminal: 1234 bytes of output, 5 bytes of input
/// 2026-11-22T10:04:09.000000Z  session ended: client closed
/// ```
///
/// A completion that does not directly follow its attempt names the operation
/// (`-> #3 ok, …`). Consecutive terminal events are summarized in one line rather than
/// printed. Groups are separated by an empty line. Text from the log is shown with control
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
            Event::TerminalOutput { .. } => {
                // This event and the terminal events right after it, in one line.
                let mut output = 0usize;
                let mut input = 0usize;
                let mut count = |e: &Event| match e {
                    Event::TerminalOutput { stream, data, .. } => {
                        if stream == "i" {
                            input += data.len();
                        } else {
                            output += data.len();
                        }
                        true
                    }
                    _ => false,
                };
                count(&rec.event);
                while recs.get(i).is_some_and(|r| count(&r.event)) {
                    i += 1;
                }
                let mut parts = Vec::new();
                if output > 0 || input == 0 {
                    parts.push(format!("{output} bytes of output"));
                }
                if input > 0 {
                    parts.push(format!("{input} bytes of input"));
                }
                format!("terminal: {}", parts.join(", "))
            }
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
fn rfc3339(ts_us: u64) -> String {
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

/// Exports the terminal of `session` as an asciicast v2 recording, for a `width` × `height`
/// terminal (the log does not record the size).
///
/// Every `terminal_output` event of the session becomes one event, in log order, at its
/// `time_us` (clamped so that times never decrease); stream `o` is output and `i` input. The
/// header's timestamp is the session's start (its `session_started` record, or the first
/// terminal record's time less its `time_us`) and its title names the session, principal and
/// target. Fails when the session has no terminal output, or a terminal event names another
/// stream.
pub fn asciicast(
    records: &[Record],
    session: &str,
    width: u16,
    height: u16,
) -> Result<String, ReplayError> {
    let terminal: Vec<(&Record, u64, &str, &str)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::TerminalOutput {
                session: s,
                time_us,
                stream,
                data,
            } if s == session => Some((r, *time_us, stream.as_str(), data.as_str())),
            _ => None,
        })
        .collect();
    let Some((first, first_time, ..)) = terminal.first() else {
        return Err(ReplayError::NoTerminalOutput(session.to_owned()));
    };
    let index = Index::new(records);
    let info = index.sessions.get(session);
    let start_us = info
        .and_then(|i| i.started_us)
        .unwrap_or_else(|| first.ts_us.saturating_sub(*first_time));
    let mut title = format!("sod session {session}");
    if let Some(info) = info {
        if let Some(p) = info.principal {
            let _ = write!(title, ": {p}");
        }
        if let Some(t) = info.target {
            let _ = write!(title, " on {t}");
        }
    }
    let header = AsciicastHeader::new(width, height)
        .timestamp(start_us / 1_000_000)
        .title(title);
    let write_err = |e: io::Error| ReplayError::Write(e.to_string());
    let mut w = AsciicastWriter::new(Vec::new(), header).map_err(write_err)?;
    for (rec, time_us, stream, data) in terminal {
        let at = Duration::from_micros(time_us);
        match stream {
            "o" => w.output(at, data.as_bytes()),
            "i" => w.input(at, data.as_bytes()),
            other => {
                return Err(ReplayError::UnknownStream {
                    seq: rec.seq,
                    session: session.to_owned(),
                    stream: other.to_owned(),
                });
            }
        }
        .map_err(write_err)?;
    }
    let bytes = w.into_inner().map_err(write_err)?;
    String::from_utf8(bytes).map_err(|e| ReplayError::Write(e.to_string()))
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
