//! Crash safety of the file sink (invariant I4): a child process appends under load and is
//! killed with SIGKILL at random points; after reopening, every record whose append had
//! returned is present and the log verifies. The chain goes on across the crashes.
//!
//! The child writes through a slow disk (`testing::Faults::slow_writes`: every `write` takes
//! at most 256 bytes and a pause), so a kill often lands inside a group of records, as a real
//! crash during a long write does: the test asserts that some kills did tear a record, so the
//! recovery of torn tails is exercised, not only assumed.
//!
//! The child is this same test binary, run again with `SOD_AUDIT_CRASH_CHILD` set: it appends
//! from many tasks and prints `ack <seq>` after each append returns, until it is killed.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use sod_audit::testing::Faults;
use sod_audit::{AuditSink, CheckpointKey, Durability, Event, FileSink, FileSinkOptions, verify};

const CHILD: &str = "SOD_AUDIT_CRASH_CHILD";
const TEST: &str = "acknowledged_records_survive_sigkill";
/// Rounds: kills.
const ROUNDS: usize = 12;
/// The size of a large record's text.
const LARGE: usize = 8 * 1024;

/// A fixed key, so parent and child sign with the same one.
fn key() -> CheckpointKey {
    CheckpointKey::from_seed("crash", &[7; 32]).unwrap()
}

fn options() -> FileSinkOptions {
    FileSinkOptions::new("gw-crash", key())
        .max_segment_bytes(64 * 1024)
        .checkpoint_every(50)
}

/// The child: appends forever from 16 tasks, half `written`, half `fsync`; one record in
/// eight is larger (several KiB).
fn child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let slow = Faults::new();
        slow.slow_writes(256, std::time::Duration::from_micros(100));
        let (sink, _) = FileSink::open(dir, options().faults(&slow)).unwrap();
        let sink = std::sync::Arc::new(sink);
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                let durability = if t % 2 == 0 {
                    Durability::Written
                } else {
                    Durability::Fsync
                };
                for i in 0u64.. {
                    let len = if (i + t) % 8 == 0 {
                        LARGE
                    } else {
                        (i % 200) as usize
                    };
                    let event = Event::session_ended(
                        format!("s-{t}"),
                        format!("reason {i} {}", "x".repeat(len)),
                    );
                    let appended = sink.append(event, durability).await.unwrap();
                    // Printed only after `append` returned: the parent may rely on it.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {}", appended.seq).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let seed = std::env::var("SOD_AUDIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (set SOD_AUDIT_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut torn = 0;
    for round in 0..ROUNDS {
        let kill_after = 1 + rng.next() % 200;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut killed = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(seq) = line.strip_prefix("ack ") {
                acked.insert(seq.parse::<u64>().unwrap());
                seen += 1;
                if seen == kill_after {
                    child.kill().unwrap(); // SIGKILL
                    killed = true;
                    break;
                }
            }
        }
        // Acknowledgements printed before the kill are still in the pipe.
        for line in lines {
            if let Some(seq) = line.unwrap().strip_prefix("ack ") {
                acked.insert(seq.parse::<u64>().unwrap());
            }
        }
        let status = child.wait().unwrap();
        assert!(
            killed,
            "round {round}: the child ended on its own: {status}"
        );

        // Reopen: a torn tail is cut off, nothing acknowledged is lost, the log verifies.
        let (sink, report) = FileSink::open(dir.path(), options()).unwrap();
        torn += usize::from(report.torn.is_some());
        drop(sink);
        let verified = verify::dir(dir.path(), &verify::Options::new([key().public()]))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let present: BTreeSet<u64> = (0..verified.records).collect();
        let missing: Vec<_> = acked.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged records missing after SIGKILL: {missing:?}"
        );
        assert_eq!(verified.head.map(|(s, _)| s + 1), Some(verified.records));
    }
    println!(
        "{} acknowledged records survived {ROUNDS} kills ({torn} torn tails cut off)",
        acked.len()
    );
    assert!(
        torn > 0,
        "no kill in {ROUNDS} tore a record (seed {seed}): the torn-tail recovery went untested"
    );
}
