//! [`StreamScrubber`]: the value detectors over a chunked byte stream.

use std::sync::{Arc, OnceLock};

use regex::bytes::Regex as BytesRegex;

use super::{Detector, Masked, Masker, MaskerInner, Strategy};

/// The start of every PEM private key header the `private_key` detector matches.
const BEGIN: &[u8] = b"-----BEGIN ";

/// The detectors' PEM header and footer (see `detect.rs`), for finding them in a stream.
fn begin_re() -> &'static BytesRegex {
    static RE: OnceLock<BytesRegex> = OnceLock::new();
    // A constant pattern covered by tests.
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| {
        BytesRegex::new(r"\A-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----").expect("pattern")
    })
}

/// The start of a header, as a literal (searched fast).
fn begin_literal() -> &'static BytesRegex {
    static RE: OnceLock<BytesRegex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| BytesRegex::new("-----BEGIN ").expect("pattern"))
}

fn end_re() -> &'static BytesRegex {
    static RE: OnceLock<BytesRegex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| {
        BytesRegex::new(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----").expect("pattern")
    })
}

/// Whether a character other than ASCII is a word character or white space as the detectors'
/// regexes see them (`\w`, `\s`): such characters are never safe cuts.
fn word_or_space(c: char) -> bool {
    if c.is_alphanumeric() || c.is_whitespace() {
        return true;
    }
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    let re = RE.get_or_init(|| regex::Regex::new(r"\A[\w\s]").expect("pattern"));
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

// Byte classes.
/// Can be part of a value (letters, digits, `. _ % + @ ( ) / =`, bytes above ASCII).
const TOKEN: u8 = 0;
/// Never part of a value, not a word character: a safe cut follows it.
const BREAK: u8 = 1;
/// ASCII white space: a safe cut follows unless it may separate digit groups.
const SPACE: u8 = 2;
/// `-`: part of values, and the start of a PEM header.
const DASH: u8 = 3;
/// Above ASCII: decoded as UTF-8.
const HIGH: u8 = 4;

const CLASS: [u8; 256] = {
    let mut t = [TOKEN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            HIGH
        } else if matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ') {
            SPACE
        } else if c == b'-' {
            DASH
        } else if c.is_ascii_control()
            || matches!(
                c,
                b'!' | b'"'
                    | b'#'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b','
                    | b':'
                    | b';'
                    | b'<'
                    | b'>'
                    | b'?'
                    | b'['
                    | b'\\'
                    | b']'
                    | b'^'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
                    | b'~'
            )
        {
            BREAK
        } else {
            TOKEN
        };
        b += 1;
    }
    t
};

/// Whether `prev`, before the white space `space`, may end a group of a value that white
/// space separates: digit groups of a phone number (`\s`: any white space, after a digit or
/// `)`), of a card number (a space, after a digit) or of a national id (a space, after a digit
/// or its second capital letter).
fn may_end_group(space: u8, prev: u8) -> bool {
    prev.is_ascii_digit() || prev == b')' || (space == b' ' && prev.is_ascii_uppercase())
}

/// Whether `next`, after the white space `space`, may start the next group: a digit, a phone
/// number's `(`, or (after a space) a national id's final letter `A`–`D`.
fn may_start_group(space: u8, next: u8) -> bool {
    next.is_ascii_digit() || next == b'(' || (space == b' ' && matches!(next, b'A'..=b'D'))
}

/// What the held bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Text: cut at the last safe cut.
    Text,
    /// `-----BEGIN ` at `p`, its line not yet complete: maybe a private key header. Nothing
    /// after `p` is let out; `nl_from` is where to look for the line's end.
    Begin { p: usize, nl_from: usize },
    /// A private key from `p`; complete lines from `from` on have not been searched for its
    /// END line.
    Key { p: usize, from: usize },
    /// A private key longer than the cap, already masked: its rest is dropped up to its END
    /// line; `from` as in `Key`.
    Overflow { from: usize },
}

/// The value detectors over a byte stream that arrives in arbitrary chunks
/// (SSH packets, pipes), so that a value split across chunks — `"alice@exa"` + `"mple.com"` —
/// is still found. Obtain one with [`Masker::stream`].
///
/// # The guarantee
///
/// For valid UTF-8 input within the caps below and a detector strategy other than `null`, the
/// concatenated output equals [`Masker::scrub`] of the whole input, **however the input is
/// cut into chunks**. For any input (any bytes, any strategy) the output does not depend on the
/// chunking: it equals [`Masker::scrub_bytes`] of the whole input. Only
/// [`flush`](Self::flush) gives that up, at the point where it is called.
///
/// # How
///
/// The scrubber holds back the end of what it was given until it reaches a *safe cut*: a place
/// no detector's match can span, so that scrubbing the text before it on its own gives what
/// scrubbing the whole would. The detectors' patterns (see `detect.rs`) allow exactly this:
///
/// - after a character no pattern can contain and which is not a word character (so `\b`
///   reads the same on both sides): ASCII punctuation other than `. _ % + - @ ( ) / =`, ASCII
///   control characters other than white space, and any other character that is neither a
///   word character nor white space (`，`, `。`, most symbols);
/// - after ASCII white space (a newline, a space), unless it could separate the groups of a
///   phone, card or national-id number: a digit or `)` before it and a digit or `(` after it
///   (for a space also a capital letter before it, or `A`–`D` after it). A phone number may
///   span a newline: the phone pattern's separators are `\s`. Only when the character before
///   may end such a group does the decision wait for the next byte.
/// - before and after bytes that are not UTF-8: each maximal UTF-8 run is scrubbed as a text of
///   its own, and other bytes pass unchanged. A chunk boundary inside a character is not such
///   a byte: the character is held until it is whole.
///
/// PEM private keys span lines. From a `-----BEGIN … PRIVATE KEY-----` line on, nothing is let
/// out until the key's `-----END … PRIVATE KEY-----` (the whole block is then scrubbed as one)
/// or the end of the stream (a truncated key is masked to the end, as [`Masker::scrub`] does).
///
/// # Caps
///
/// - A line with no safe cut for more than [`LINE_CAP`](Self::LINE_CAP) bytes (4 KiB)
///   is cut at its last ASCII white space at least [`KEEP`](Self::KEEP) bytes before
///   the end that lies inside no value found so far. That cut is still exact: the values that
///   can contain white space (phone, card and national-id numbers) are much shorter than
///   `KEEP`, so they were found whole. Where there is no such white space, the text is one run
///   of characters values can be made of, longer than any value a detector could check whole:
///   it is masked as if it were a value, up to its end (**fail closed**: a 4 KiB base64 line
///   without a newline is masked).
/// - A private key block longer than [`KEY_CAP`](Self::KEY_CAP) (64 KiB) without its
///   END line is masked as one value when the cap is reached, and the rest of it is dropped up
///   to and including its END line (with the `redact` strategy this is exactly the output of
///   [`Masker::scrub`]: one `****` for the whole block).
/// - An END line longer than 4 KiB, or a BEGIN line whose header is longer than 4 KiB, is not
///   recognized (a key stays open until a later END line or the end of the stream).
///
/// At most [`MAX_HELD`](Self::MAX_HELD) bytes are ever held; outside a private key,
/// at most `2 × LINE_CAP + 1`.
///
/// # The `null` strategy
///
/// [`Masker::scrub`] blanks the *whole text* when a value is found under `null`; a stream
/// cannot hold everything back, so it blanks each **line** that contains (part of) a value,
/// keeping the line's newline. Under `null` the scrubber only cuts after newlines.
///
/// # Cost
///
/// Each byte is classified once and scanned by the detectors once (a held tail is never
/// re-scanned: cuts are found by looking at new bytes only), so the cost is linear in the
/// input whatever the chunking, and input without any value costs one detector pass.
///
/// ```
/// use sod_core::masking::MaskProfiles;
///
/// let profiles = MaskProfiles::from_toml("m.toml", r#"
///     [[profile]]
///     name = "agent"
/// "#)?;
/// let masker = profiles.masker(&["agent".into()])?;
/// let mut s = masker.stream();
/// let mut out = Vec::new();
/// s.push(b"mail alice@exa", &mut out);
/// assert_eq!(out, b"mail "); // `alice@exa…` may still become an address
/// s.push(b"mple.com today\n", &mut out);
/// s.finish(&mut out);
/// assert_eq!(out, b"mail **** today\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamScrubber {
    /// `None`: nothing to detect, everything passes at once.
    inner: Option<Arc<MaskerInner>>,
    /// The private key detector is on.
    keys: bool,
    /// The detector strategy is `null` (blank lines).
    null: bool,
    /// Input not yet let out.
    held: Vec<u8>,
    /// The input byte before `held[0]` (0 at the start).
    prev: u8,
    /// `held[..scan]` has been classified.
    scan: usize,
    /// The last safe cut found in `held[..=scan]` (0: none).
    cut: usize,
    /// The end of a private key block in `held`: no cut before it.
    floor: usize,
    mode: Mode,
    /// The last value let out may go on (a [`flush`](Self::flush) or an over-long run cut
    /// it): the run of value characters at the start of `held` is masked with it.
    continuing: bool,
    /// `held[..cont]` has been found to be value characters (while `continuing`).
    cont: usize,
}

impl std::fmt::Debug for StreamScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScrubber")
            .field("passthrough", &self.inner.is_none())
            .field("held", &self.held.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// A [`StreamScrubber`] applying this masker's value detectors to a byte stream (the
    /// output of a masked principal's command, an SFTP read). With no detectors it passes
    /// everything through at once.
    pub fn stream(&self) -> StreamScrubber {
        let inner = self
            .inner
            .as_ref()
            .filter(|i| !i.detectors.is_empty())
            .cloned();
        StreamScrubber {
            keys: inner
                .as_ref()
                .is_some_and(|i| i.detectors.contains(Detector::PrivateKey)),
            null: inner
                .as_ref()
                .is_some_and(|i| i.detector_strategy == Strategy::Null),
            inner,
            held: Vec::new(),
            prev: 0,
            scan: 0,
            cut: 0,
            floor: 0,
            mode: Mode::Text,
            continuing: false,
            cont: 0,
        }
    }

    /// [`scrub`](Self::scrub) for bytes that need not be UTF-8, as a [`StreamScrubber`] does
    /// it: each maximal UTF-8 run is scrubbed (bytes that are not UTF-8 pass unchanged), a
    /// private key block stays open across such bytes, and the scrubber's caps apply. Equal
    /// to `scrub` for UTF-8 text within the caps (and a strategy other than `null`).
    pub fn scrub_bytes(&self, input: &[u8]) -> Vec<u8> {
        let mut s = self.stream();
        let mut out = Vec::with_capacity(input.len());
        s.push(input, &mut out);
        s.finish(&mut out);
        out
    }
}

impl StreamScrubber {
    /// How long a line may grow without a safe cut before it is cut anyway (4 KiB).
    pub const LINE_CAP: usize = 4 * 1024;
    /// How far from the end of the held text a forced cut must be (longer than any value that
    /// can contain white space).
    pub const KEEP: usize = 256;
    /// How long a private key block may grow without its END line (64 KiB).
    pub const KEY_CAP: usize = 64 * 1024;
    /// The most the scrubber ever holds.
    pub const MAX_HELD: usize = Self::KEY_CAP + 2 * Self::LINE_CAP + 2;

    /// Scrubs `chunk`, appending to `out` everything that can no longer be part of a
    /// sensitive value and holding back the rest.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.inner.is_none() {
            out.extend_from_slice(chunk);
            return;
        }
        // Fed in steps that stop where a cap is reached, so that what a cap decides does not
        // depend on how the input was cut.
        let mut rest = chunk;
        while !rest.is_empty() {
            let take = rest.len().min(self.room());
            self.held.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.settle(out, false);
        }
    }

    /// Lets out everything held now, scrubbed as if the stream ended here (a character split
    /// by the chunking stays held until it is whole; an open private key block is masked and
    /// the rest of it dropped up to its END line; a `-----BEGIN ` line not yet complete stays
    /// held).
    ///
    /// For an interactive terminal, whose output pauses mid-line (a prompt, an echoed
    /// keystroke), after an idle period the caller chooses. The trade-off: a value that
    /// spans the flush is not recognized as a whole — `4111 1111` flushed, then ` 1111 1111`,
    /// is two harmless-looking halves of a card number — although a value already found that
    /// reaches the flush point is masked to its end. Without flushing, held output waits for
    /// a safe cut (usually the end of the line).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.inner.is_none() {
            return;
        }
        self.settle(out, false);
        match self.mode {
            Mode::Text => {
                let v = self.held.len() - incomplete_tail(&self.held);
                if self.continuing {
                    // Still the rest of a value: masked, and it may go on.
                    self.mask_front(v, out);
                    self.cont = 0;
                } else if v > 0 && self.emit_flushed(v, out) {
                    self.continuing = true;
                    self.cont = 0;
                }
            }
            Mode::Begin { p, .. } => {
                if p > 0 {
                    self.emit(p, out);
                }
            }
            Mode::Key { p, .. } => {
                let all = self.held.len();
                self.overflow(p, all, out);
            }
            Mode::Overflow { .. } => {}
        }
    }

    /// Ends the stream: lets out what is held, scrubbed.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.inner.is_none() {
            return;
        }
        self.settle(out, true);
    }

    /// How many bytes are held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether this scrubber passes everything through (no detector is on).
    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none()
    }

    /// How many bytes may be added before a cap must be looked at.
    fn room(&self) -> usize {
        let (used, cap) = match self.mode {
            Mode::Text if self.continuing => (self.held.len(), Self::LINE_CAP),
            Mode::Text => (self.held.len() - self.floor, Self::LINE_CAP),
            Mode::Begin { p, .. } => (self.held.len() - p, Self::LINE_CAP),
            Mode::Key { p, .. } => (self.held.len() - p, Self::KEY_CAP),
            Mode::Overflow { .. } => (self.held.len(), Self::LINE_CAP),
        };
        (cap + 1).saturating_sub(used).max(1)
    }

    /// Lets out what can be let out; at the `end` of the stream, everything.
    fn settle(&mut self, out: &mut Vec<u8>, end: bool) {
        loop {
            if self.continuing && !self.continue_value(out, end) {
                return;
            }
            match self.mode {
                Mode::Text => {
                    self.advance(end);
                    if let Mode::Begin { .. } = self.mode {
                        self.emit_cut(out);
                        // Only after a private key block can that much precede the header
                        // without a safe cut: let it out, to keep the bound.
                        if let Mode::Begin { p, .. } = self.mode
                            && p > Self::LINE_CAP
                        {
                            self.emit(p, out);
                        }
                        continue;
                    }
                    if end {
                        let all = self.held.len();
                        if all > 0 {
                            self.emit(all, out);
                        }
                        return;
                    }
                    self.emit_cut(out);
                    if self.held.len() - self.floor > Self::LINE_CAP {
                        self.force(out);
                        continue;
                    }
                    return;
                }
                Mode::Begin { p, nl_from } => {
                    let stop = match memchr(b'\n', &self.held[nl_from..]) {
                        Some(i) => nl_from + i,
                        None if end || self.held.len() - p > Self::LINE_CAP => self.held.len(),
                        None => {
                            self.mode = Mode::Begin {
                                p,
                                nl_from: self.held.len(),
                            };
                            return;
                        }
                    };
                    match begin_re().find(&self.held[p..stop]) {
                        Some(m) => {
                            self.mode = Mode::Key {
                                p,
                                from: p + m.end(),
                            }
                        }
                        None => {
                            // Not a private key: go on classifying after its first dash.
                            self.mode = Mode::Text;
                            self.scan = p + 1;
                        }
                    }
                }
                Mode::Key { p, from } => {
                    let complete = self.complete_lines(from, end);
                    if let Some(m) = end_re().find(&self.held[from..complete]) {
                        self.close_key(p, from + m.end(), out);
                        continue;
                    }
                    if end {
                        self.emit_open_key(p, out);
                        return;
                    }
                    self.mode = Mode::Key { p, from: complete };
                    if self.held.len() - p > Self::KEY_CAP {
                        if let Some(m) = end_re().find(&self.held[complete..]) {
                            self.close_key(p, complete + m.end(), out);
                            continue;
                        }
                        // Mask through the last complete line (or all but the last bytes of
                        // one long line), keeping what may begin the END line.
                        let keep = if complete > p {
                            complete
                        } else {
                            (self.held.len() - 64).max(p + 1)
                        };
                        self.overflow(p, keep, out);
                        continue;
                    }
                    return;
                }
                Mode::Overflow { from } => {
                    let complete = self.complete_lines(from, end);
                    if let Some(m) = end_re().find(&self.held[from..complete]) {
                        let e = from + m.end();
                        self.prev = self.held[e - 1];
                        self.consume(e);
                        self.mode = Mode::Text;
                        continue;
                    }
                    if end {
                        self.held.clear();
                        return;
                    }
                    // Drop the complete lines; a line too long to be an END line goes too,
                    // but for its last bytes (which may begin one).
                    let mut drop = complete;
                    if self.held.len() - drop > Self::LINE_CAP {
                        drop = self.held.len() - 64;
                    }
                    if drop > 0 {
                        self.prev = self.held[drop - 1];
                        self.consume(drop);
                    }
                    self.mode = Mode::Overflow { from: 0 };
                    return;
                }
            }
        }
    }

    /// The end of the complete lines of `held[from..]` (all of it at the end of the stream).
    fn complete_lines(&self, from: usize, end: bool) -> usize {
        if end {
            return self.held.len();
        }
        match memrchr(b'\n', &self.held[from..]) {
            Some(i) => from + i + 1,
            None => from,
        }
    }

    /// Looks at `held[scan..]` for the last safe cut (recorded in `cut`), stopping at a
    /// `-----BEGIN ` (switching to [`Mode::Begin`]). Only the new bytes are looked at: the
    /// last safe cut is found scanning back from the end, usually within a few bytes.
    fn advance(&mut self, end: bool) {
        let n = self.held.len();
        let from = self.scan;
        if from >= n {
            return;
        }
        let mut limit = n;
        // Where to look again next time: a header that may be starting at the very end.
        let mut again = n;
        if self.keys {
            if let Some(m) = begin_literal().find(&self.held[from..]) {
                let p = from + m.start();
                limit = p;
                again = p;
                self.mode = Mode::Begin {
                    p,
                    nl_from: p + BEGIN.len(),
                };
            } else if !end {
                let tail = &self.held[n.saturating_sub(BEGIN.len() - 1).max(from)..];
                if let Some(i) = (0..tail.len()).find(|&i| BEGIN.starts_with(&tail[i..])) {
                    again = n - tail.len() + i;
                }
            }
        }
        // UTF-8: the end of the last sequence that is not (a safe cut), and an incomplete
        // character at the end (no cut inside it; looked at again with the next bytes).
        let mut valid_from = from;
        let mut valid_to = limit;
        let mut hard = 0;
        let mut at = from;
        while at < limit {
            match std::str::from_utf8(&self.held[at..limit]) {
                Ok(_) => break,
                Err(e) => {
                    let bad_at = at + e.valid_up_to();
                    match e.error_len() {
                        Some(k) => {
                            at = bad_at + k;
                            if !self.null {
                                hard = at;
                            }
                            valid_from = at;
                        }
                        None if end => {
                            if !self.null {
                                hard = limit;
                            }
                            valid_from = limit;
                            break;
                        }
                        None => {
                            valid_to = bad_at;
                            again = again.min(bad_at);
                            break;
                        }
                    }
                }
            }
        }
        // Under `null` only newlines are cuts, and bytes that are not UTF-8 are part of lines.
        let lo = if self.null { from } else { valid_from };
        let found = self.last_cut(lo, valid_to, end).max(hard);
        self.cut = self.cut.max(found);
        // A space at the very end waits for the next byte: look at it again.
        if again == n && !end && CLASS[self.held[n - 1] as usize] == SPACE {
            again = n - 1;
        }
        self.scan = again;
    }

    /// The last safe cut in `(lo, hi]` (`held[lo..hi]` is UTF-8, but under `null`), or 0.
    fn last_cut(&self, lo: usize, hi: usize, end: bool) -> usize {
        let held = &self.held;
        let mut c = hi;
        while c > lo {
            let b = held[c - 1];
            match CLASS[b as usize] {
                BREAK if !self.null => return c,
                SPACE => {
                    let prev = if c >= 2 { held[c - 2] } else { self.prev };
                    let separates = may_end_group(b, prev)
                        && match held.get(c) {
                            Some(&next) => may_start_group(b, next),
                            None => !end, // not known yet: not a cut for now
                        };
                    if !separates && (!self.null || b == b'\n') {
                        return c;
                    }
                    c -= 1;
                }
                HIGH => {
                    // The character that ends here.
                    let mut k = c - 1;
                    while k > lo && held[k] & 0xC0 == 0x80 && c - k < 4 {
                        k -= 1;
                    }
                    let ch = std::str::from_utf8(&held[k..c])
                        .ok()
                        .and_then(|t| t.chars().next());
                    if !self.null && ch.is_some_and(|ch| !word_or_space(ch)) {
                        return c;
                    }
                    c = k;
                }
                _ => c -= 1,
            }
        }
        0
    }

    /// Lets out `held[..cut]`, if there is a safe cut.
    fn emit_cut(&mut self, out: &mut Vec<u8>) {
        if self.cut > 0 {
            self.emit(self.cut, out);
        }
    }

    /// Scrubs `held[..c]` into `out` and drops it.
    fn emit(&mut self, c: usize, out: &mut Vec<u8>) {
        self.scrub_segment(0, c, out);
        self.prev = self.held[c - 1];
        self.consume(c);
    }

    /// Drops `held[..c]`, moving every index along.
    fn consume(&mut self, c: usize) {
        self.held.drain(..c);
        self.scan = self.scan.saturating_sub(c);
        self.cut = self.cut.saturating_sub(c);
        self.floor = self.floor.saturating_sub(c);
        self.cont = self.cont.saturating_sub(c);
        self.mode = match self.mode {
            Mode::Text => Mode::Text,
            Mode::Begin { p, nl_from } => Mode::Begin {
                p: p.saturating_sub(c),
                nl_from: nl_from.saturating_sub(c),
            },
            Mode::Key { p, from } => Mode::Key {
                p: p.saturating_sub(c),
                from: from.saturating_sub(c),
            },
            Mode::Overflow { from } => Mode::Overflow {
                from: from.saturating_sub(c),
            },
        };
    }

    /// A private key block `held[p..e]` is complete.
    fn close_key(&mut self, p: usize, e: usize, out: &mut Vec<u8>) {
        self.mode = Mode::Text;
        if std::str::from_utf8(&self.held[p..e]).is_ok() {
            // Scrubbed with what follows, as one text, at the next safe cut after it.
            self.scan = e;
            self.cut = 0;
            self.floor = e;
            return;
        }
        // Bytes that are not UTF-8 inside the block would end the detectors' text there:
        // mask the block as one value.
        if p > 0 {
            self.scrub_segment(0, p, out);
        }
        self.mask(p, e, out);
        self.prev = self.held[e - 1];
        self.consume(e);
        self.scan = 0;
        self.cut = 0;
    }

    /// The end of the stream inside a private key block from `p`.
    fn emit_open_key(&mut self, p: usize, out: &mut Vec<u8>) {
        if std::str::from_utf8(&self.held[p..]).is_ok() {
            // The private key pattern matches to the end of the text.
            let all = self.held.len();
            self.emit(all, out);
        } else {
            if p > 0 {
                self.scrub_segment(0, p, out);
            }
            let all = self.held.len();
            self.mask(p, all, out);
            self.held.clear();
        }
        self.mode = Mode::Text;
    }

    /// A private key block from `p` reached the cap (or a flush): masks `held[p..keep]` as
    /// one value, lets out what precedes it, and drops the rest of the key up to its END
    /// line (`held[keep..]` is kept to find it).
    fn overflow(&mut self, p: usize, keep: usize, out: &mut Vec<u8>) {
        if p > 0 {
            self.scrub_segment(0, p, out);
        }
        self.mask(p, keep, out);
        if keep > 0 {
            self.prev = self.held[keep - 1];
        }
        self.consume(keep);
        self.mode = Mode::Overflow { from: 0 };
        self.scan = 0;
        self.cut = 0;
        self.floor = 0;
    }

    /// A line has no safe cut for longer than the cap: cut it at white space outside every
    /// value found, or mask its run of value characters.
    fn force(&mut self, out: &mut Vec<u8>) {
        let v = self.held.len() - incomplete_tail(&self.held);
        let spans = self.spans(0, v);
        let limit = v.saturating_sub(Self::KEEP + 1);
        let mut k = spans.len();
        let mut w = limit;
        while w > self.floor {
            w -= 1;
            let b = self.held[w];
            if CLASS[b as usize] != SPACE {
                continue;
            }
            while k > 0 && spans[k - 1].0 > w {
                k -= 1;
            }
            let inside = k > 0 && spans[k - 1].1 > w;
            if !inside {
                self.emit(w + 1, out);
                return;
            }
        }
        // One run of characters values are made of, too long to check whole: mask it.
        let from = limit.max(self.floor);
        let stop = self.held[from..v]
            .iter()
            .position(|&b| CLASS[b as usize] == SPACE || CLASS[b as usize] == BREAK)
            .map(|i| from + i);
        match stop {
            Some(t) => self.mask_front(t, out),
            None => {
                self.mask_front(v, out);
                self.continuing = true;
                self.cont = 0;
            }
        }
    }

    /// Masks `held[..t]` as one value and drops it.
    fn mask_front(&mut self, t: usize, out: &mut Vec<u8>) {
        if t == 0 {
            return;
        }
        self.mask(0, t, out);
        self.prev = self.held[t - 1];
        self.consume(t);
        self.scan = 0;
        self.cut = 0;
        self.floor = 0;
    }

    /// While `continuing`: masks the run of value characters at the start of `held` (the rest
    /// of a value already partly let out). Whether it ended (`false`: wait for more input).
    fn continue_value(&mut self, out: &mut Vec<u8>, end: bool) -> bool {
        let n = self.held.len();
        let mut i = self.cont;
        let mut ended = false;
        while i < n {
            let b = self.held[i];
            match CLASS[b as usize] {
                TOKEN | DASH => i += 1,
                SPACE | BREAK => {
                    ended = true;
                    break;
                }
                _ => {
                    let window = &self.held[i..n.min(i + 4)];
                    match std::str::from_utf8(window) {
                        Ok(t) if !t.is_empty() => {
                            let c = t.chars().next().unwrap_or(' ');
                            if !word_or_space(c) || c.is_whitespace() {
                                ended = true;
                                break;
                            }
                            i += c.len_utf8();
                        }
                        Err(e) if e.valid_up_to() > 0 => {
                            let t = std::str::from_utf8(&window[..e.valid_up_to()]).unwrap_or("");
                            let c = t.chars().next().unwrap_or(' ');
                            if !word_or_space(c) || c.is_whitespace() {
                                ended = true;
                                break;
                            }
                            i += c.len_utf8();
                        }
                        Err(e) if e.error_len().is_none() && !end => break,
                        _ => {
                            ended = true;
                            break;
                        }
                    }
                }
            }
        }
        self.cont = i;
        if ended || end {
            self.continuing = false;
            self.mask_front(i, out);
            self.cont = 0;
            return true;
        }
        if n > Self::LINE_CAP {
            let v = i;
            self.mask_front(v, out);
            self.cont = 0;
        }
        false
    }

    /// Flushes `held[..v]` as if the text ended there; whether a value found reaches `v`.
    fn emit_flushed(&mut self, v: usize, out: &mut Vec<u8>) -> bool {
        let reaches = self.spans(0, v).last().is_some_and(|s| s.1 == v);
        self.emit(v, out);
        self.scan = 0;
        self.cut = 0;
        self.floor = 0;
        reaches
    }

    /// Masks `held[a..b]` as one value (the detector strategy).
    fn mask(&self, a: usize, b: usize, out: &mut Vec<u8>) {
        let Some(inner) = &self.inner else { return };
        if a >= b {
            return;
        }
        let mut buf = Vec::new();
        if inner
            .detector_strategy
            .apply(&inner.key, &self.held[a..b], &mut buf)
            == Masked::Replaced
        {
            out.extend_from_slice(&buf);
        }
    }

    /// The values the detectors find in `held[a..b]`, each UTF-8 run on its own, as sorted,
    /// non-overlapping ranges of `held`.
    fn spans(&self, a: usize, b: usize) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let Some(inner) = &self.inner else {
            return spans;
        };
        let mut at = a;
        for chunk in self.held[a..b].utf8_chunks() {
            let text = chunk.valid();
            if !text.is_empty() {
                spans.extend(
                    inner
                        .detectors
                        .find(text)
                        .into_iter()
                        .map(|(s, e)| (at + s, at + e)),
                );
            }
            at += text.len() + chunk.invalid().len();
        }
        spans
    }

    /// Scrubs `held[a..b]` into `out`: each UTF-8 run as a text of its own, other bytes as
    /// they are; under `null`, lines with a value are blanked.
    fn scrub_segment(&self, a: usize, b: usize, out: &mut Vec<u8>) {
        let Some(inner) = &self.inner else {
            out.extend_from_slice(&self.held[a..b]);
            return;
        };
        let bytes = &self.held[a..b];
        if self.null {
            let spans = self.spans(a, b);
            if spans.is_empty() {
                out.extend_from_slice(bytes);
                return;
            }
            let mut k = 0;
            let mut start = a;
            for line in bytes.split_inclusive(|&c| c == b'\n') {
                let stop = start + line.len();
                while k < spans.len() && spans[k].1 <= start {
                    k += 1;
                }
                let hit = k < spans.len() && spans[k].0 < stop;
                if !hit {
                    out.extend_from_slice(line);
                } else if line.ends_with(b"\n") {
                    out.push(b'\n');
                }
                start = stop;
            }
            return;
        }
        for chunk in bytes.utf8_chunks() {
            let text = chunk.valid();
            if !text.is_empty() {
                let spans = inner.detectors.find(text);
                if spans.is_empty() {
                    out.extend_from_slice(text.as_bytes());
                } else {
                    inner.replace_spans(text, &spans, out);
                }
            }
            out.extend_from_slice(chunk.invalid());
        }
    }
}

/// How many bytes at the end of `bytes` are the start of a character not yet complete.
fn incomplete_tail(bytes: &[u8]) -> usize {
    let from = bytes.len().saturating_sub(3);
    for i in (from..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        let have = bytes.len() - i;
        return if have < need
            && std::str::from_utf8(&bytes[i..])
                .err()
                .is_some_and(|e| e.error_len().is_none())
        {
            have
        } else {
            0
        };
    }
    0
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn memrchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().rposition(|&b| b == needle)
}
