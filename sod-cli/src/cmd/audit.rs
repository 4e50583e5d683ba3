//! `sod audit verify|replay|tail|keygen`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use sod_audit::{Record, replay, verify};

use super::{Code, Failure, Out, Outcome, existing};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check hashes, chain, checkpoint signatures and segment order; exits 1 naming the first
    /// bad record.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// A trusted checkpoint key (`<key>.pub` from `sod audit keygen`); repeat for several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// The stream the log must be (another gateway's log would verify otherwise).
        #[arg(long)]
        stream: Option<String>,
        /// At most this many records between checkpoints (the sink's interval).
        #[arg(long)]
        max_unsigned: Option<u64>,
        /// A checkpoint kept outside the log (JSON): the log must contain what it signs.
        #[arg(long)]
        exported: Option<PathBuf>,
    },
    /// Print the log as a timeline, filtered; or, with --asciicast, write a terminal
    /// recording.
    Replay {
        /// The log directory.
        dir: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// Write the terminal of SESSION — or of its operation OPERATION (an exec, a shell) —
        /// as an asciicast v2 recording to stdout, for `asciinema play` (stderr shows as
        /// output, window changes as resizes).
        #[arg(
            long,
            value_name = "SESSION[:OPERATION]",
            conflicts_with_all = ["principal", "target", "session", "decision"]
        )]
        asciicast: Option<String>,
        /// The recording's terminal size when it has no resize of its own (default 80x24).
        #[arg(long, value_name = "COLSxROWS", requires = "asciicast")]
        size: Option<String>,
    },
    /// Print the last records, and with --follow the new ones as they arrive.
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// How many records to show first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Keep printing new records until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// Write a new checkpoint signing key (hex seed) and its public half (`<out>.pub`).
    Keygen {
        /// Where to write the key (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The key id written into checkpoints.
        #[arg(long, default_value = "audit-1")]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct FilterArgs {
    /// Only this principal's events.
    #[arg(long)]
    principal: Option<String>,
    /// Only this target's events.
    #[arg(long)]
    target: Option<String>,
    /// Only this session.
    #[arg(long)]
    session: Option<String>,
    /// Only operations decided so: allow, deny, require_approval or refused.
    #[arg(long)]
    decision: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> replay::Filter {
        replay::Filter {
            principal: self.principal.clone(),
            target: self.target.clone(),
            session: self.session.clone(),
            decision: self.decision.clone(),
            ..replay::Filter::default()
        }
    }
}

pub(crate) async fn run(command: AuditCommand, out: Out) -> Outcome {
    match command {
        AuditCommand::Verify {
            dir,
            keys,
            stream,
            max_unsigned,
            exported,
        } => verify_dir(&dir, &keys, stream, max_unsigned, exported.as_deref(), out),
        AuditCommand::Replay {
            dir,
            asciicast: Some(what),
            size,
            ..
        } => {
            let options = cast_options(&what, size.as_deref())?;
            let records = read(&dir)?;
            let cast = replay::export(&records, &options).map_err(|e| Failure::new(Code::No, e))?;
            print!("{cast}");
            Ok(Code::Ok)
        }
        AuditCommand::Replay { dir, filter, .. } => {
            let records = read(&dir)?;
            print_records(&records, &filter.filter(), out);
            Ok(Code::Ok)
        }
        AuditCommand::Tail { dir, lines, follow } => tail(&dir, lines, follow, out).await,
        AuditCommand::Keygen { out: path, id } => {
            let public = sod_cli::keys::generate_checkpoint_key(&path, &id)
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
            let pub_path = sod_cli::keys::public_path(&path);
            out.show(
                &json!({"key": path, "public": public, "public_file": pub_path}),
                || {
                    format!(
                        "wrote {} (keep it secret) and {} (give it to whoever verifies: `sod audit verify DIR --key {}`)",
                        path.display(),
                        pub_path.display(),
                        pub_path.display()
                    )
                },
            );
            Ok(Code::Ok)
        }
    }
}

fn verify_dir(
    dir: &Path,
    key_files: &[PathBuf],
    stream: Option<String>,
    max_unsigned: Option<u64>,
    exported: Option<&Path>,
    out: Out,
) -> Outcome {
    existing(dir, "the audit directory")?;
    let keys = key_files
        .iter()
        .map(|k| sod_cli::keys::read_public(k).map_err(|e| Failure::new(Code::Usage, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = verify::Options::new(keys);
    if let Some(s) = stream {
        options = options.stream(s);
    }
    if let Some(n) = max_unsigned {
        options = options.max_unsigned(n);
    }
    if let Some(path) = exported {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(Code::Usage, format!("cannot read {}: {e}", path.display()))
        })?;
        let checkpoint = serde_json::from_str(&text).map_err(|e| {
            Failure::new(
                Code::Usage,
                format!("{} is not a checkpoint: {e}", path.display()),
            )
        })?;
        options = options.exported(checkpoint);
    }
    out.progress(&format!("verifying {}…", dir.display()));
    match verify::dir(dir, &options) {
        Ok(report) => {
            out.show(
                &json!({
                    "ok": true,
                    "records": report.records,
                    "checkpoints": report.checkpoints,
                    "segments": report.segments,
                    "stream": report.stream,
                    "head_seq": report.head.map(|(seq, _)| seq),
                    "head": report.head.map(|(_, h)| h.to_hex()),
                    "signed_through": report.signed_through,
                    "unsigned_tail": report.unsigned_tail,
                }),
                || {
                    let mut s = format!(
                        "ok: {} records ({} checkpoints) in {} segment(s) of stream {}",
                        report.records,
                        report.checkpoints,
                        report.segments,
                        report.stream.as_deref().unwrap_or("-")
                    );
                    match report.signed_through {
                        Some(seq) => s += &format!(
                            "; signed through record {seq}, {} record(s) after the last checkpoint",
                            report.unsigned_tail
                        ),
                        None => s += "; no signed checkpoint yet: the log is consistent, but nothing proves who wrote it",
                    }
                    s
                },
            );
            Ok(Code::Ok)
        }
        Err(e) => {
            if out.json {
                println!("{}", json!({"ok": false, "error": e.to_string()}));
            }
            Err(Failure::new(Code::No, format!("verification failed: {e}")))
        }
    }
}

/// `SESSION[:OPERATION]` and `COLSxROWS`, as `--asciicast` and `--size` take them.
fn cast_options(what: &str, size: Option<&str>) -> Result<replay::CastOptions, Failure> {
    let usage = |m: String| Failure::new(Code::Usage, m);
    let mut options = match what.rsplit_once(':') {
        Some((session, op)) => {
            let op = op.parse::<u64>().map_err(|_| {
                usage(format!(
                    "--asciicast takes SESSION or SESSION:OPERATION (a number), not `{what}`"
                ))
            })?;
            replay::CastOptions::session(session).operation(op)
        }
        None => replay::CastOptions::session(what),
    };
    if options.session.is_empty() {
        return Err(usage("--asciicast needs a session id".into()));
    }
    if let Some(size) = size {
        let parsed = size
            .split_once('x')
            .and_then(|(c, r)| Some((c.parse::<u16>().ok()?, r.parse::<u16>().ok()?)))
            .filter(|(c, r)| *c > 0 && *r > 0);
        let (cols, rows) = parsed.ok_or_else(|| {
            usage(format!(
                "--size takes COLSxROWS (like 120x40), not `{size}`"
            ))
        })?;
        options = options.size(cols, rows);
    }
    Ok(options)
}

fn read(dir: &Path) -> Result<Vec<Record>, Failure> {
    existing(dir, "the audit directory")?;
    replay::read_dir(dir).map_err(Failure::failed)
}

fn print_records(records: &[Record], filter: &replay::Filter, out: Out) {
    if out.json {
        // JSON lines: the records themselves, selected as the timeline would select them.
        for r in replay::select(records, filter) {
            if let Ok(line) = serde_json::to_string(r) {
                println!("{line}");
            }
        }
    } else {
        print!("{}", replay::timeline(records, filter));
    }
}

async fn tail(dir: &Path, lines: usize, follow: bool, out: Out) -> Outcome {
    let filter = &replay::Filter::default();
    let records = read(dir)?;
    let start = records.len().saturating_sub(lines);
    print_records(&records[start..], filter, out);
    if !follow {
        return Ok(Code::Ok);
    }
    let mut seen = records.last().map(|r| r.seq);
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(Code::Ok),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // A record being written is not yet a whole line: try again on the next round.
        let Ok(records) = replay::read_dir(dir) else {
            continue;
        };
        let new: Vec<Record> = records
            .into_iter()
            .filter(|r| seen.is_none_or(|s| r.seq > s))
            .collect();
        if let Some(last) = new.last() {
            seen = Some(last.seq);
            print_records(&new, filter, out);
        }
    }
}
