//! Verification: chain links, record hashes, checkpoint signatures and segment order, with the
//! first bad record named precisely.
//!
//! ```
//! use sod_audit::verify;
//! # let dir = tempfile::tempdir().unwrap();
//! # let key = sod_audit::CheckpointKey::generate("k");
//! let report = verify::dir(dir.path(), &verify::Options::new([key.public()]));
//! // An empty directory is an empty log.
//! assert_eq!(report.unwrap().records, 0);
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::record::{self, Hash, LineError};
use crate::sink::file::{read_segment, segment_files, segment_name};
use crate::{Checkpoint, PublicKey};

/// What to trust and what to compare against.
#[derive(Clone, Debug, Default)]
pub struct Options {
    keys: Vec<PublicKey>,
    exported: Option<Checkpoint>,
    stream: Option<String>,
    max_unsigned: Option<u64>,
}

impl Options {
    /// Checkpoints must verify with one of `keys`.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            exported: None,
            stream: None,
            max_unsigned: None,
        }
    }

    /// The log must be of this stream (otherwise a complete log of another gateway signed
    /// with the same key would verify).
    #[must_use]
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// At most `records` records may follow one another without a checkpoint (set it to the
    /// sink's checkpoint interval). Without it, a log rewritten from its first record with
    /// its checkpoints left out would verify: the chain alone needs no key.
    #[must_use]
    pub fn max_unsigned(mut self, records: u64) -> Self {
        self.max_unsigned = Some(records);
        self
    }

    /// A checkpoint kept outside the log: the log must contain the record it signs, so a log
    /// cut short before it is reported as truncated.
    #[must_use]
    pub fn exported(mut self, checkpoint: Checkpoint) -> Self {
        self.exported = Some(checkpoint);
        self
    }
}

/// What a successful verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records, checkpoints included.
    pub records: u64,
    /// Checkpoint records.
    pub checkpoints: u64,
    /// Segment files read (0 for [`lines`]).
    pub segments: usize,
    /// The stream's name.
    pub stream: Option<String>,
    /// The last record's sequence number and hash.
    pub head: Option<(u64, Hash)>,
    /// Sequence number of the last record covered by a signed checkpoint.
    pub signed_through: Option<u64>,
    /// Records after the last checkpoint: their removal from the end of the log is only
    /// detectable against an exported checkpoint.
    pub unsigned_tail: u64,
}

impl Report {
    /// Whether any signature covers the log: with none, the log proves only that it is
    /// internally consistent, not who wrote it.
    pub fn is_signed(&self) -> bool {
        self.signed_through.is_some()
    }
}

/// Where a problem is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The segment file, when verifying a directory.
    pub segment: Option<PathBuf>,
    /// Line number in the segment (or in the input), from 1.
    pub line: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// The sequence number the record should have.
    pub seq: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.segment {
            write!(f, "{}: ", s.display())?;
        }
        write!(f, "line {} (byte {})", self.line, self.offset)?;
        if let Some(seq) = self.seq {
            write!(f, ", record {seq}")?;
        }
        Ok(())
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line is not a valid record (bad JSON, hash mismatch, …).
    #[error("{0}")]
    Line(#[from] LineError),
    /// A record is missing, duplicated or out of order.
    #[error("expected record {expected}, found record {found}")]
    Sequence {
        /// The sequence number due.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The record does not link to the one before it.
    #[error("the record's previous hash {found} is not the previous record's hash {expected}")]
    Link {
        /// The previous record's hash.
        expected: Hash,
        /// The record's `prev`.
        found: Hash,
    },
    /// A record of another stream.
    #[error("record of stream `{found}` in the log of stream `{expected}`")]
    Stream {
        /// The log's stream.
        expected: String,
        /// The record's.
        found: String,
    },
    /// A checkpoint whose signature does not verify.
    #[error("{0}")]
    Signature(#[from] CheckpointError),
    /// A checkpoint that does not sign the record before it.
    #[error("the checkpoint signs record {seq} of `{stream}`, not the record before it")]
    CheckpointMisplaced {
        /// The record it signs.
        seq: u64,
        /// The stream it names.
        stream: String,
    },
    /// The last line has no newline: a write was cut short (a crash or a full disk).
    #[error("the last line is incomplete ({bytes} bytes without a newline)")]
    TornTail {
        /// Its length.
        bytes: usize,
    },
    /// An empty line.
    #[error("empty line")]
    EmptyLine,
    /// The exported checkpoint signs a record the log has differently.
    #[error("the exported checkpoint signs record {seq} with a different hash")]
    ExportedMismatch {
        /// The record.
        seq: u64,
    },
    /// The log ends before the record the exported checkpoint signs.
    #[error(
        "the log ends at record {last:?} but the exported checkpoint signs record {exported}: records were removed from its end"
    )]
    Truncated {
        /// The log's last record.
        last: Option<u64>,
        /// The exported checkpoint's.
        exported: u64,
    },
    /// Too many records without a checkpoint (see [`Options::max_unsigned`]).
    #[error(
        "{records} records follow one another without a checkpoint (at most {allowed} allowed)"
    )]
    Unsigned {
        /// The run's length so far.
        records: u64,
        /// The limit.
        allowed: u64,
    },
    /// Segment files are missing or misnamed.
    #[error("segment {expected} is missing (found {found})")]
    SegmentGap {
        /// The file name due.
        expected: String,
        /// The one found.
        found: String,
    },
    /// The log could not be read.
    #[error("cannot read: {0}")]
    Io(String),
}

/// The first thing wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct VerifyError {
    /// Where.
    pub location: Box<Location>,
    /// What.
    pub problem: Problem,
}

/// Verifies a log line by line: feed it with [`line`](Verifier::line), then
/// [`finish`](Verifier::finish).
pub struct Verifier<'a> {
    options: &'a Options,
    report: Report,
    last: Option<(u64, Hash)>,
    location: Location,
}

impl<'a> Verifier<'a> {
    /// A verifier for a log that starts at record 0.
    pub fn new(options: &'a Options) -> Self {
        Self {
            options,
            report: Report::default(),
            last: None,
            location: Location::default(),
        }
    }

    fn fail(&self, problem: impl Into<Problem>) -> VerifyError {
        VerifyError {
            location: Box::new(self.location.clone()),
            problem: problem.into(),
        }
    }

    /// Checks one line (without its newline) found at `location`.
    pub fn line(&mut self, line: &[u8], location: Location) -> Result<(), VerifyError> {
        self.check(line.is_empty(), record::decode_link(line), location)
    }

    /// Checks many lines, decoding them on several threads (decoding and hashing are most of
    /// the work; the chain is then checked in order).
    fn lines(&mut self, lines: &[(&[u8], Location)]) -> Result<(), VerifyError> {
        for ((line, location), decoded) in lines.iter().zip(decode_parallel(lines)) {
            self.check(line.is_empty(), decoded, location.clone())?;
        }
        Ok(())
    }

    fn check(
        &mut self,
        empty: bool,
        decoded: Result<record::Link, record::LineError>,
        location: Location,
    ) -> Result<(), VerifyError> {
        let expected = self.last.map_or(0, |(seq, _)| seq + 1);
        self.location = Location {
            seq: Some(expected),
            ..location
        };
        if empty {
            return Err(self.fail(Problem::EmptyLine));
        }
        let rec = decoded.map_err(|e| self.fail(e))?;
        let stream = self.report.stream.get_or_insert_with(|| {
            self.options
                .stream
                .clone()
                .unwrap_or_else(|| rec.stream.clone())
        });
        if *stream != rec.stream {
            let problem = Problem::Stream {
                expected: stream.clone(),
                found: rec.stream,
            };
            return Err(self.fail(problem));
        }
        if rec.seq != expected {
            return Err(self.fail(Problem::Sequence {
                expected,
                found: rec.seq,
            }));
        }
        let prev = self.last.map_or(Hash::GENESIS, |(_, h)| h);
        if rec.prev != prev {
            return Err(self.fail(Problem::Link {
                expected: prev,
                found: rec.prev,
            }));
        }
        if let Some(cp) = &rec.checkpoint {
            if cp.stream != rec.stream || Some(cp.seq) != expected.checked_sub(1) || cp.head != prev
            {
                return Err(self.fail(Problem::CheckpointMisplaced {
                    seq: cp.seq,
                    stream: cp.stream.clone(),
                }));
            }
            cp.verify(&self.options.keys).map_err(|e| self.fail(e))?;
            self.report.checkpoints += 1;
            self.report.signed_through = Some(cp.seq);
            self.report.unsigned_tail = 0;
        } else {
            self.report.unsigned_tail += 1;
            if let Some(allowed) = self.options.max_unsigned
                && self.report.unsigned_tail > allowed
            {
                return Err(self.fail(Problem::Unsigned {
                    records: self.report.unsigned_tail,
                    allowed,
                }));
            }
        }
        if let Some(x) = &self.options.exported
            && x.seq == rec.seq
            && (x.head != rec.hash || x.stream != rec.stream)
        {
            return Err(self.fail(Problem::ExportedMismatch { seq: x.seq }));
        }
        self.last = Some((rec.seq, rec.hash));
        self.report.records += 1;
        Ok(())
    }

    /// Ends the log: checks it against the exported checkpoint.
    pub fn finish(mut self) -> Result<Report, VerifyError> {
        if let Some(x) = &self.options.exported {
            self.location.seq = None;
            x.verify(&self.options.keys).map_err(|e| self.fail(e))?;
            let last = self.last.map(|(s, _)| s);
            if last.is_none_or(|l| l < x.seq) {
                return Err(self.fail(Problem::Truncated {
                    last,
                    exported: x.seq,
                }));
            }
        }
        self.report.head = self.last;
        Ok(self.report)
    }
}

/// Verifies a log given as lines (without newlines), such as
/// [`MemorySink::lines`](crate::MemorySink::lines).
pub fn lines<I, S>(lines: I, options: &Options) -> Result<Report, VerifyError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut v = Verifier::new(options);
    let mut offset = 0u64;
    let mut lines = lines.into_iter().enumerate().peekable();
    while lines.peek().is_some() {
        let batch: Vec<(usize, S)> = lines.by_ref().take(BATCH).collect();
        let items: Vec<(&[u8], Location)> = batch
            .iter()
            .map(|(i, line)| {
                let line = line.as_ref().as_bytes();
                let location = Location {
                    segment: None,
                    line: *i as u64 + 1,
                    offset,
                    seq: None,
                };
                offset += line.len() as u64 + 1;
                (line, location)
            })
            .collect();
        v.lines(&items)?;
    }
    v.finish()
}

/// Verifies the segment files of a [`FileSink`](crate::FileSink) directory, in order.
pub fn dir(path: &Path, options: &Options) -> Result<Report, VerifyError> {
    let io = |e: std::io::Error, segment: Option<PathBuf>| VerifyError {
        location: Box::new(Location {
            segment,
            ..Location::default()
        }),
        problem: Problem::Io(e.to_string()),
    };
    let segments = segment_files(path).map_err(|e| io(e, None))?;
    let mut v = Verifier::new(options);
    for (i, (number, file)) in segments.iter().enumerate() {
        let due = i as u64 + 1;
        if *number != due {
            return Err(VerifyError {
                location: Box::new(Location {
                    segment: Some(file.clone()),
                    ..Location::default()
                }),
                problem: Problem::SegmentGap {
                    expected: segment_name(due),
                    found: segment_name(*number),
                },
            });
        }
        let bytes = read_segment(file).map_err(|e| io(e, Some(file.clone())))?;
        let mut offset = 0usize;
        let mut items = Vec::new();
        while let Some(len) = bytes[offset..].iter().position(|&b| b == b'\n') {
            let location = Location {
                segment: Some(file.clone()),
                line: items.len() as u64 + 1,
                offset: offset as u64,
                seq: None,
            };
            items.push((&bytes[offset..offset + len], location));
            offset += len + 1;
        }
        for batch in items.chunks(BATCH) {
            v.lines(batch)?;
        }
        if offset < bytes.len() {
            return Err(VerifyError {
                location: Box::new(Location {
                    segment: Some(file.clone()),
                    line: items.len() as u64 + 1,
                    offset: offset as u64,
                    seq: Some(v.last.map_or(0, |(s, _)| s + 1)),
                }),
                problem: Problem::TornTail {
                    bytes: bytes.len() - offset,
                },
            });
        }
    }
    let mut report = v.finish()?;
    report.segments = segments.len();
    Ok(report)
}

/// Lines decoded per batch: bounds the memory of decoded records.
const BATCH: usize = 16 * 1024;

/// Decodes lines on up to `available_parallelism` threads, in order.
fn decode_parallel(lines: &[(&[u8], Location)]) -> Vec<Result<record::Link, record::LineError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || lines.len() < 256 {
        return lines.iter().map(|(l, _)| record::decode_link(l)).collect();
    }
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(l, _)| record::decode_link(l))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| {
                p.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
