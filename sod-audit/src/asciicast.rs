//! [asciicast v2](https://docs.asciinema.org/manual/asciicast/v2/): the recording format of
//! interactive terminal sessions, shared by the protocol crates that record them (SSH shells,
//! Kubernetes `exec`) and by [`replay`](crate::replay).
//!
//! A recording is JSON Lines: a header object, then one array per event.
//!
//! ```text
//! {"version":2,"width":80,"height":24,"timestamp":1763780000,"title":"s-1","env":{"TERM":"xterm"}}
//! [0.248848,"o","$ "]
//! [1.001000,"i","ls\r"]
//! [1.250000,"r","100x30"]
//! ```
//!
//! - [`AsciicastWriter`] writes one from raw terminal bytes. Terminal bytes are not UTF-8 chunk
//!   by chunk: a character may be split across two reads. The writer keeps an incomplete
//!   trailing sequence (at most 3 bytes) per stream and prepends it to that stream's next
//!   chunk, so a split character is written whole; bytes that are not UTF-8 become U+FFFD.
//!   Over a whole stream, the data written is exactly [`String::from_utf8_lossy`] of all the
//!   bytes. Event times never decrease: a time earlier than the previous event's is clamped.
//! - [`Utf8Decoder`] is that buffering on its own, for code that records terminal chunks
//!   elsewhere (such as [`Event::TerminalOutput`](crate::Event::TerminalOutput) events).
//! - [`parse`] reads a recording back and checks it, naming the line and what is wrong.
//!
//! ```
//! use std::time::Duration;
//! use sod_audit::asciicast::{self, AsciicastHeader, AsciicastWriter, EventKind};
//!
//! let header = AsciicastHeader::new(80, 24)
//!     .timestamp(1_763_780_000)
//!     .title("ssh web-1")
//!     .env("TERM", "xterm-256color");
//! let mut w = AsciicastWriter::new(Vec::new(), header.clone())?;
//! // "€" is E2 82 AC; the read boundary falls inside it.
//! w.output(Duration::from_millis(10), b"price: \xE2\x82")?;
//! w.output(Duration::from_millis(20), b"\xAC 5\r\n")?;
//! w.input(Duration::from_millis(30), b"exit\r")?;
//! w.resize(Duration::from_millis(40), 100, 30)?;
//! let text = String::from_utf8(w.into_inner()?).unwrap();
//!
//! let (parsed, events) = asciicast::parse(&text)?;
//! assert_eq!(parsed, header);
//! assert_eq!(events[0].data, "price: ");
//! assert_eq!(events[1].data, "€ 5\r\n");
//! assert_eq!(events[2].kind, EventKind::Input);
//! assert_eq!((events[3].kind, events[3].data.as_str()), (EventKind::Resize, "100x30"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::Value;

/// The asciicast version this module writes and reads.
pub const VERSION: u64 = 2;

/// The header line of a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsciicastHeader {
    /// Terminal width, in columns.
    pub width: u16,
    /// Terminal height, in rows.
    pub height: u16,
    /// When the recording started, in seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// A title for the recording.
    pub title: Option<String>,
    /// Environment of the recorded shell (`TERM`, `SHELL`). Written only when not empty.
    pub env: BTreeMap<String, String>,
}

impl AsciicastHeader {
    /// A header for a `width` × `height` terminal, with no timestamp, title or environment.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            ..Self::default()
        }
    }

    /// Sets the start time, in seconds since the Unix epoch.
    #[must_use]
    pub fn timestamp(mut self, unix_secs: u64) -> Self {
        self.timestamp = Some(unix_secs);
        self
    }

    /// Sets the title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Adds an environment variable (`TERM`, `SHELL`).
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The header line, without its newline. Members are written in the order the
    /// specification lists them.
    fn to_line(&self) -> io::Result<String> {
        let mut line = format!(
            "{{\"version\":{VERSION},\"width\":{},\"height\":{}",
            self.width, self.height
        );
        if let Some(ts) = self.timestamp {
            line.push_str(&format!(",\"timestamp\":{ts}"));
        }
        if let Some(title) = &self.title {
            line.push_str(",\"title\":");
            line.push_str(&json(title)?);
        }
        if !self.env.is_empty() {
            line.push_str(",\"env\":");
            line.push_str(&json(&self.env)?);
        }
        line.push('}');
        Ok(line)
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `o`: data written to the terminal.
    Output,
    /// `i`: data typed at the terminal.
    Input,
    /// `r`: the terminal was resized; the data is `COLSxROWS`.
    Resize,
    /// `m`: a marker (a bookmark in the recording); the data is its label.
    Marker,
}

impl EventKind {
    /// The event's code in the file (`o`, `i`, `r`, `m`).
    pub fn code(self) -> &'static str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
            EventKind::Marker => "m",
        }
    }

    /// The kind with this code.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "o" => EventKind::Output,
            "i" => EventKind::Input,
            "r" => EventKind::Resize,
            "m" => EventKind::Marker,
            _ => return None,
        })
    }
}

/// One event of a recording, as [`parse`] reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct AsciicastEvent {
    /// Seconds since the start of the recording.
    pub time: f64,
    /// What it is.
    pub kind: EventKind,
    /// Its data: terminal text for output and input, `COLSxROWS` for a resize.
    pub data: String,
}

/// Turns a stream of byte chunks into UTF-8 text, keeping a character that is split across
/// chunks whole.
///
/// [`push`](Self::push) returns the text that is complete so far and keeps an incomplete
/// trailing sequence (at most 3 bytes) for the next chunk; invalid bytes become U+FFFD.
/// [`finish`](Self::finish) returns what is left (an incomplete sequence at the very end is
/// one U+FFFD). Over a whole stream the concatenated text equals
/// [`String::from_utf8_lossy`] of the concatenated bytes, however the stream was cut.
///
/// ```
/// use sod_audit::asciicast::Utf8Decoder;
///
/// let mut d = Utf8Decoder::new();
/// assert_eq!(d.push(b"caf\xC3"), "caf");
/// assert_eq!(d.push(b"\xA9 \xFF!"), "é \u{FFFD}!");
/// assert_eq!(d.push(b"\xF0\x9F"), "");
/// assert_eq!(d.finish(), "\u{FFFD}");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes` after what is pending; returns the complete text.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(bytes);
            joined = buf;
            &joined
        };
        let mut out = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is UTF-8 by construction; the lossy conversion changes nothing.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(bad..).unwrap_or_default();
                        }
                        None => {
                            // A sequence that may still complete: at most 3 bytes.
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// The bytes held back: the start of a character that the next chunk may complete.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: what is pending, as text (empty, or U+FFFD for an incomplete
    /// character).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

/// Writes an asciicast v2 recording. See the [module docs](self).
///
/// Every method writes at most one line; nothing is buffered beyond an incomplete character
/// per stream. [`finish`](Self::finish) (or [`into_inner`](Self::into_inner)) writes what is
/// left of those and flushes.
pub struct AsciicastWriter<W: Write> {
    out: W,
    last: Duration,
    output: Utf8Decoder,
    input: Utf8Decoder,
}

impl<W: Write> AsciicastWriter<W> {
    /// Writes the header line to `out`.
    pub fn new(mut out: W, header: AsciicastHeader) -> io::Result<Self> {
        let mut line = header.to_line()?;
        line.push('\n');
        out.write_all(line.as_bytes())?;
        Ok(Self {
            out,
            last: Duration::ZERO,
            output: Utf8Decoder::new(),
            input: Utf8Decoder::new(),
        })
    }

    /// Records `bytes` written to the terminal, `elapsed` after the start.
    pub fn output(&mut self, elapsed: Duration, bytes: &[u8]) -> io::Result<()> {
        let text = self.output.push(bytes);
        self.event(elapsed, EventKind::Output, &text)
    }

    /// Records `bytes` typed at the terminal, `elapsed` after the start.
    pub fn input(&mut self, elapsed: Duration, bytes: &[u8]) -> io::Result<()> {
        let text = self.input.push(bytes);
        self.event(elapsed, EventKind::Input, &text)
    }

    /// Records that the terminal became `width` × `height`, `elapsed` after the start.
    pub fn resize(&mut self, elapsed: Duration, width: u16, height: u16) -> io::Result<()> {
        self.event(elapsed, EventKind::Resize, &format!("{width}x{height}"))
    }

    /// Records a marker labelled `label`, `elapsed` after the start.
    pub fn marker(&mut self, elapsed: Duration, label: &str) -> io::Result<()> {
        self.event(elapsed, EventKind::Marker, label)
    }

    /// Writes one event line. Output and input with no complete text write nothing.
    fn event(&mut self, elapsed: Duration, kind: EventKind, data: &str) -> io::Result<()> {
        if data.is_empty() && matches!(kind, EventKind::Output | EventKind::Input) {
            return Ok(());
        }
        // Microsecond precision, as written; never before the previous event.
        let micros = Duration::from_micros(elapsed.as_micros().try_into().unwrap_or(u64::MAX));
        self.last = self.last.max(micros);
        let line = format!(
            "[{}.{:06},\"{}\",{}]\n",
            self.last.as_secs(),
            self.last.subsec_micros(),
            kind.code(),
            json(data)?
        );
        self.out.write_all(line.as_bytes())
    }

    /// Writes what is left of incomplete characters (as U+FFFD, at the last event's time) and
    /// flushes. The writer may be used on afterwards.
    pub fn finish(&mut self) -> io::Result<()> {
        let at = self.last;
        let text = self.output.finish();
        self.event(at, EventKind::Output, &text)?;
        let text = self.input.finish();
        self.event(at, EventKind::Input, &text)?;
        self.out.flush()
    }

    /// [`finish`](Self::finish)es the recording and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.finish()?;
        Ok(self.out)
    }
}

/// What is wrong with a recording, and on which line (from 1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("asciicast line {line}: {problem}")]
pub struct AsciicastError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

fn fail<T>(line: usize, problem: impl Into<String>) -> Result<T, AsciicastError> {
    Err(AsciicastError {
        line,
        problem: problem.into(),
    })
}

/// Reads and checks an asciicast v2 recording: the header, then every event.
///
/// Checked: the header is a JSON object with `"version": 2` and integer `width` and `height`
/// (0 to 65535); `timestamp`, if present, is a non-negative integer; `title` a string; `env` an
/// object of strings (`null` values are skipped); other header members are allowed and
/// ignored. Each event is a three-element array of a non-negative time in seconds, never less
/// than the previous event's, a code `o`, `i`, `r` or `m`, and a string, which for `r` is
/// `COLSxROWS`. Blank lines are skipped. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<(AsciicastHeader, Vec<AsciicastEvent>), AsciicastError> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((n, first)) = lines.next() else {
        return fail(1, "the recording is empty: a header line is required");
    };
    let header = parse_header(n, first)?;
    let mut events = Vec::new();
    let mut last = 0.0f64;
    for (n, line) in lines {
        let event = parse_event(n, line)?;
        if event.time < last {
            return fail(
                n,
                format!(
                    "time {} is before the previous event's time {last}",
                    event.time
                ),
            );
        }
        last = event.time;
        events.push(event);
    }
    Ok((header, events))
}

fn parse_header(n: usize, line: &str) -> Result<AsciicastHeader, AsciicastError> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return fail(n, format!("the header is not JSON: {e}")),
    };
    let Value::Object(map) = value else {
        return fail(n, "the header must be a JSON object");
    };
    match map.get("version") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return fail(
                n,
                format!("unsupported asciicast version {v} (this reader reads version {VERSION})"),
            );
        }
        None => return fail(n, "the header has no \"version\""),
    }
    let dimension = |name: &str| -> Result<u16, AsciicastError> {
        match map.get(name) {
            None => fail(n, format!("the header has no \"{name}\"")),
            Some(v) => match v.as_u64().and_then(|x| u16::try_from(x).ok()) {
                Some(x) => Ok(x),
                None => fail(
                    n,
                    format!("the header's \"{name}\" must be an integer from 0 to 65535, not {v}"),
                ),
            },
        }
    };
    let width = dimension("width")?;
    let height = dimension("height")?;
    let timestamp = match map.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(ts) => Some(ts),
            None => {
                return fail(
                    n,
                    format!("the header's \"timestamp\" must be a non-negative integer, not {v}"),
                );
            }
        },
    };
    let title = match map.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return fail(
                n,
                format!("the header's \"title\" must be a string, not {v}"),
            );
        }
    };
    let mut env = BTreeMap::new();
    match map.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(vars)) => {
            for (name, value) in vars {
                match value {
                    Value::String(s) => {
                        env.insert(name.clone(), s.clone());
                    }
                    Value::Null => {}
                    other => {
                        return fail(
                            n,
                            format!(
                                "the header's env variable \"{name}\" must be a string, not {other}"
                            ),
                        );
                    }
                }
            }
        }
        Some(v) => {
            return fail(
                n,
                format!("the header's \"env\" must be an object, not {v}"),
            );
        }
    }
    Ok(AsciicastHeader {
        width,
        height,
        timestamp,
        title,
        env,
    })
}

fn parse_event(n: usize, line: &str) -> Result<AsciicastEvent, AsciicastError> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return fail(n, format!("the event is not JSON: {e}")),
    };
    let Value::Array(items) = value else {
        return fail(n, "an event must be a JSON array [time, code, data]");
    };
    let [time, code, data] = items.as_slice() else {
        return fail(
            n,
            format!(
                "an event must have 3 elements [time, code, data], not {}",
                items.len()
            ),
        );
    };
    let time = match time.as_f64() {
        Some(t) if t.is_finite() && t >= 0.0 => t,
        _ => {
            return fail(
                n,
                format!("the event time must be a non-negative number of seconds, not {time}"),
            );
        }
    };
    let Some(code) = code.as_str() else {
        return fail(n, format!("the event code must be a string, not {code}"));
    };
    let Some(kind) = EventKind::from_code(code) else {
        return fail(
            n,
            format!("unknown event code {code:?} (expected \"o\", \"i\", \"r\" or \"m\")"),
        );
    };
    let Value::String(data) = data else {
        return fail(n, format!("the event data must be a string, not {data}"));
    };
    if kind == EventKind::Resize && parse_size(data).is_none() {
        return fail(
            n,
            format!("a resize event's data must be COLSxROWS, not {data:?}"),
        );
    }
    Ok(AsciicastEvent {
        time,
        kind,
        data: data.clone(),
    })
}

/// `COLSxROWS`, as in a resize event.
fn parse_size(data: &str) -> Option<(u16, u16)> {
    let (w, h) = data.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    Some((w.parse().ok()?, h.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_matches_lossy_at_every_split() {
        let bytes = "a€b😀c\u{e9}".as_bytes();
        let mut with_bad = bytes.to_vec();
        with_bad.extend_from_slice(b"\xE2\x82x\xFF\xF0\x9F\x98");
        for input in [bytes, &with_bad[..]] {
            let expected = String::from_utf8_lossy(input);
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let mut d = Utf8Decoder::new();
                    let mut got = d.push(&input[..i]);
                    assert!(d.pending().len() <= 3);
                    got += &d.push(&input[i..j]);
                    got += &d.push(&input[j..]);
                    got += &d.finish();
                    assert_eq!(got, expected, "split at {i}, {j}");
                }
            }
        }
    }

    #[test]
    fn header_line_order() {
        let h = AsciicastHeader::new(80, 24)
            .timestamp(5)
            .title("t\"x")
            .env("TERM", "xterm");
        assert_eq!(
            h.to_line().unwrap_or_default(),
            r#"{"version":2,"width":80,"height":24,"timestamp":5,"title":"t\"x","env":{"TERM":"xterm"}}"#
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("80x24"), Some((80, 24)));
        for bad in ["80x", "x24", "80*24", "-1x2", "+1x2", "70000x1", "1x2x3"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
