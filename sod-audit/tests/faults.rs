//! Storage faults under the file sink (issue 21, invariant I4): a file system that fails writes
//! (`ENOSPC`, `EIO`, a write cut short), `fdatasync`, the creation of a new segment and the
//! directory sync, at chosen points. Each fault makes the appends waiting for it, and the
//! next ones, fail with "audit unavailable" (the gateways refuse); no acknowledged record is
//! lost, no partial record stays in the chain; once the fault clears, appends go on and the
//! chain verifies end to end, also after reopening the directory.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use sod_audit::testing::{EIO, ENOSPC, Faults, Op};
use sod_audit::{
    Appended, AuditError, AuditSink, CheckpointKey, Durability, Event, FileSink, FileSinkOptions,
    record, verify,
};

fn key() -> CheckpointKey {
    CheckpointKey::from_seed("faults", &[3; 32]).unwrap()
}

fn options(max_segment_bytes: u64) -> FileSinkOptions {
    FileSinkOptions::new("gw-faults", key())
        .max_segment_bytes(max_segment_bytes)
        .checkpoint_every(7)
}

fn event(i: u64) -> Event {
    Event::session_ended(
        format!("s-{i}"),
        format!("reason {i} {}", "x".repeat((i % 50) as usize)),
    )
}

/// Appends, failing the test instead of hanging if the append never resolves.
async fn append(sink: &FileSink, i: u64, durability: Durability) -> Result<Appended, AuditError> {
    tokio::time::timeout(Duration::from_secs(20), sink.append(event(i), durability))
        .await
        .expect("an append neither succeeded nor failed")
}

/// Appends once the log has recovered: after a failed recovery the sink waits a little before
/// it tries again, so this retries (refusals only) until `append` succeeds, up to a deadline.
async fn append_recovered(sink: &FileSink, i: u64, durability: Durability) -> Appended {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match append(sink, i, durability).await {
            Ok(a) => return a,
            Err(AuditError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("the log did not recover: {e}"),
        }
    }
}

fn assert_unavailable(result: Result<Appended, AuditError>, why: &str) {
    match result {
        Err(AuditError::Unavailable(msg)) => assert!(msg.contains(why), "{msg}"),
        other => panic!("expected `audit unavailable: {why}…`, got {other:?}"),
    }
}

/// Every record in `dir`, by sequence number: their hashes.
fn records(dir: &Path) -> BTreeMap<u64, sod_audit::Hash> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    let mut found = BTreeMap::new();
    for path in segments {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{}: a partial record at the end",
            path.display()
        );
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let rec = record::decode(line).unwrap();
            found.insert(rec.seq, rec.hash);
        }
    }
    found
}

/// The log in `dir` verifies, holds every acknowledged record as acknowledged, and reopens
/// without a torn tail; returns the verification report.
fn check(dir: &Path, acked: &[Appended]) -> verify::Report {
    let report = verify::dir(dir, &verify::Options::new([key().public()]))
        .unwrap_or_else(|e| panic!("the log does not verify: {e}"));
    let found = records(dir);
    assert_eq!(found.len() as u64, report.records);
    for a in acked {
        assert_eq!(
            found.get(&a.seq),
            Some(&a.hash),
            "acknowledged record {} is not in the log as acknowledged",
            a.seq
        );
    }
    let (sink, opened) = FileSink::open(dir, options(u64::MAX)).unwrap();
    assert_eq!(opened.torn, None, "a partial record was left behind");
    assert_eq!(opened.next_seq, report.records);
    drop(sink);
    report
}

/// How a scenario fails the disk.
struct Scenario {
    /// Arms the fault.
    arm: fn(&Faults),
    /// Segment size (small to make rotations).
    max_segment_bytes: u64,
    /// The durability of the appends that meet the fault.
    durability: Durability,
    /// What the refusal says.
    why: &'static str,
    /// Whether appends that failed may still have their record in the log (a failed sync:
    /// their record was written and is written again by the recovery, as an attempt without
    /// an outcome).
    refused_may_remain: bool,
}

/// Appends until the fault hits; checks the refusals, the log while the fault lasts, the
/// recovery once it clears, and the log after reopening. Returns the faults injected.
async fn run(s: Scenario) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (sink, _) =
        FileSink::open(dir.path(), options(s.max_segment_bytes).faults(&faults)).unwrap();
    let mut acked = Vec::new();
    for i in 0..10 {
        let d = [Durability::Written, Durability::Fsync][i as usize % 2];
        acked.push(append(&sink, i, d).await.unwrap());
    }
    (s.arm)(&faults);
    // The fault hits an append (after a few, for faults that need a rotation first).
    let mut i = 10;
    let first = loop {
        match append(&sink, i, s.durability).await {
            Ok(a) => acked.push(a),
            Err(e) => break e,
        }
        i += 1;
        assert!(i < 500, "the fault never hit");
    };
    assert_unavailable(Err(first.clone()), s.why);
    assert!(
        first.to_string().starts_with("audit unavailable: "),
        "{first}"
    );
    assert!(faults.injected() >= 1);
    // While the fault lasts, the next appends fail too, at every durability that waits, and
    // so does a checkpoint.
    for d in [Durability::Written, Durability::Fsync] {
        assert_unavailable(append(&sink, 1000, d).await, s.why);
    }
    assert!(matches!(
        sink.checkpoint().await,
        Err(AuditError::Unavailable(_))
    ));
    // What is on disk now holds every acknowledged record.
    let on_disk = records(dir.path());
    for a in &acked {
        assert_eq!(on_disk.get(&a.seq), Some(&a.hash), "record {} lost", a.seq);
    }
    let refused = i - 10 + 1;
    // The fault clears: appends go on after the last acknowledged record.
    faults.clear();
    acked.push(append_recovered(&sink, 1999, Durability::Fsync).await);
    for j in 0..12 {
        let d = [Durability::Buffered, Durability::Written, Durability::Fsync][j % 3];
        let a = append(&sink, 2000 + j as u64, d).await.unwrap();
        if d != Durability::Buffered {
            acked.push(a);
        }
    }
    sink.checkpoint().await.unwrap();
    sink.close();
    let injected = faults.injected();
    let report = check(dir.path(), &acked);
    let appended = acked.len() as u64 + 4; // with the four `buffered` ones
    if s.refused_may_remain {
        assert!(report.records - report.checkpoints <= appended + refused);
    } else {
        assert_eq!(report.records - report.checkpoints, appended);
    }
    // Reopened without faults, the log goes on.
    let (sink, _) = FileSink::open(dir.path(), options(s.max_segment_bytes)).unwrap();
    acked.push(append(&sink, 3000, Durability::Fsync).await.unwrap());
    sink.close();
    check(dir.path(), &acked);
    injected
}

#[tokio::test]
async fn a_full_disk_refuses_and_recovers() {
    let injected = run(Scenario {
        arm: |f| f.fail(Op::Write, 0, ENOSPC),
        max_segment_bytes: u64::MAX,
        durability: Durability::Written,
        why: "writing the audit log failed: No space left on device",
        refused_may_remain: false,
    })
    .await;
    assert!(injected >= 3);
}

#[tokio::test]
async fn an_io_error_on_write_refuses_and_recovers() {
    run(Scenario {
        arm: |f| f.fail(Op::Write, 0, EIO),
        max_segment_bytes: u64::MAX,
        durability: Durability::Fsync,
        why: "writing the audit log failed: Input/output error",
        refused_may_remain: false,
    })
    .await;
}

#[tokio::test]
async fn a_record_written_in_half_never_enters_the_chain() {
    run(Scenario {
        arm: |f| f.fail_short(0, 40, ENOSPC),
        max_segment_bytes: u64::MAX,
        durability: Durability::Written,
        why: "No space left on device",
        refused_may_remain: false,
    })
    .await;
}

#[tokio::test]
async fn a_failed_fdatasync_refuses_and_the_recovery_writes_again() {
    run(Scenario {
        arm: |f| f.fail(Op::Sync, 0, EIO),
        max_segment_bytes: u64::MAX,
        durability: Durability::Fsync,
        why: "syncing the audit log failed: Input/output error",
        refused_may_remain: true,
    })
    .await;
}

#[tokio::test]
async fn a_segment_that_cannot_be_created_refuses_and_recovers() {
    run(Scenario {
        arm: |f| f.fail(Op::Create, 0, ENOSPC),
        max_segment_bytes: 600,
        durability: Durability::Written,
        why: "writing the audit log failed: No space left on device",
        refused_may_remain: false,
    })
    .await;
}

#[tokio::test]
async fn a_failed_directory_sync_refuses_and_recovers() {
    run(Scenario {
        arm: |f| f.fail(Op::SyncDir, 0, EIO),
        max_segment_bytes: 600,
        durability: Durability::Fsync,
        why: "syncing the audit log failed: Input/output error",
        refused_may_remain: true,
    })
    .await;
}

/// fsyncgate: after the failed `fdatasync`, the records written since the last good one read
/// back as zeros (Linux dropped the dirty pages). Syncing again would report success; the
/// recovery writes them again from memory instead, and no acknowledged record is lost.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn records_a_failed_fsync_dropped_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    faults.lose_unsynced_on_failed_sync();
    let (sink, _) = FileSink::open(dir.path(), options(u64::MAX).faults(&faults)).unwrap();
    let mut acked = Vec::new();
    for i in 0..4 {
        acked.push(append(&sink, i, Durability::Fsync).await.unwrap());
    }
    // Acknowledged as written, not yet synced.
    for i in 4..10 {
        acked.push(append(&sink, i, Durability::Written).await.unwrap());
    }
    faults.fail(Op::Sync, 0, EIO);
    assert_unavailable(
        append(&sink, 10, Durability::Fsync).await,
        "syncing the audit log failed: Input/output error",
    );
    // The written records are gone from the file now.
    let bytes = std::fs::read(dir.path().join("segment-00000001.jsonl")).unwrap();
    let lost = bytes.iter().rev().take_while(|&&b| b == 0).count();
    assert!(lost > 6 * 100, "only {lost} bytes dropped");
    faults.clear();
    acked.push(append_recovered(&sink, 11, Durability::Fsync).await);
    sink.close();
    check(dir.path(), &acked);
}

/// A recovery that fails is not tried again by every append at once: a failing disk is not
/// made to rewrite the log for every refused statement.
#[tokio::test]
async fn a_failed_recovery_is_not_retried_by_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (sink, _) = FileSink::open(dir.path(), options(u64::MAX).faults(&faults)).unwrap();
    let mut acked = vec![append(&sink, 0, Durability::Written).await.unwrap()];
    faults.fail(Op::Sync, 0, EIO);
    let why = "syncing the audit log failed: Input/output error";
    assert_unavailable(append(&sink, 1, Durability::Fsync).await, why);
    // This one tries to recover, and fails.
    let err = append(&sink, 2, Durability::Written).await.unwrap_err();
    assert!(
        err.to_string().contains("recovering the log failed too"),
        "{err}"
    );
    let tried = faults.injected();
    // These fail at once, without touching the disk.
    for i in 3..6 {
        assert_unavailable(append(&sink, i, Durability::Written).await, why);
    }
    assert_eq!(faults.injected(), tried);
    faults.clear();
    acked.push(append_recovered(&sink, 10, Durability::Fsync).await);
    sink.close();
    check(dir.path(), &acked);
}

#[tokio::test]
async fn a_half_record_left_by_a_failed_cut_is_gone_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (sink, _) = FileSink::open(dir.path(), options(u64::MAX).faults(&faults)).unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(append(&sink, i, Durability::Fsync).await.unwrap());
    }
    // A write cut short, and the disk refuses to cut it back (and to recover, on close).
    faults.fail_short(0, 30, EIO);
    faults.fail(Op::Truncate, 0, EIO);
    let err = append(&sink, 5, Durability::Written).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cutting the partial write back also failed"),
        "{err}"
    );
    sink.close();
    let bytes = std::fs::read(dir.path().join("segment-00000001.jsonl")).unwrap();
    assert!(!bytes.ends_with(b"\n"), "the half record is on disk");
    // Reopening cuts it off: it was never acknowledged.
    let (sink, report) = FileSink::open(dir.path(), options(u64::MAX)).unwrap();
    let torn = report.torn.expect("the half record is cut off on open");
    assert_eq!(torn.bytes, 30);
    acked.push(append(&sink, 6, Durability::Fsync).await.unwrap());
    sink.close();
    check(dir.path(), &acked);
}

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Step {
    Append(Durability),
    Checkpoint,
    Fail(Op, u64, i32),
    Short(u64, usize),
    Clear,
}

fn step() -> impl Strategy<Value = Step> {
    let durability = prop_oneof![
        Just(Durability::Buffered),
        Just(Durability::Written),
        Just(Durability::Fsync),
    ];
    let op = prop_oneof![
        Just(Op::Write),
        Just(Op::Sync),
        Just(Op::Create),
        Just(Op::SyncDir),
        Just(Op::Truncate),
        Just(Op::Open),
        Just(Op::Remove),
    ];
    prop_oneof![
        8 => durability.prop_map(Step::Append),
        1 => Just(Step::Checkpoint),
        2 => (op, 0..4u64, prop_oneof![Just(ENOSPC), Just(EIO)]).prop_map(|(o, n, e)| Step::Fail(o, n, e)),
        1 => (0..4u64, 1..200usize).prop_map(|(n, b)| Step::Short(n, b)),
        2 => Just(Step::Clear),
    ]
}

/// Runs one random schedule; returns the faults injected.
fn random_schedule(steps: Vec<Step>, max_segment_bytes: u64, lose_unsynced: bool) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        if lose_unsynced && cfg!(target_os = "linux") {
            faults.lose_unsynced_on_failed_sync();
        }
        let (sink, _) =
            FileSink::open(dir.path(), options(max_segment_bytes).faults(&faults)).unwrap();
        let mut acked = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Append(d) => match append(&sink, i as u64, d).await {
                    Ok(a) if d != Durability::Buffered => acked.push(a),
                    Ok(_) => {}
                    Err(e) => assert!(matches!(e, AuditError::Unavailable(_)), "{e:?}"),
                },
                Step::Checkpoint => {
                    let _ = sink.checkpoint().await;
                }
                Step::Fail(op, after, errno) => faults.fail(op, after, errno),
                Step::Short(after, bytes) => faults.fail_short(after, bytes, ENOSPC),
                Step::Clear => faults.clear(),
            }
        }
        // The faults clear: the log goes on.
        faults.clear();
        acked.push(append_recovered(&sink, 9999, Durability::Fsync).await);
        sink.close();
        check(dir.path(), &acked);
        faults.injected()
    })
}

/// Random schedules of appends at mixed durabilities and faults (half of them on a disk that
/// loses unsynced writes when a sync fails): every acknowledged `written` or `fsync` record
/// is in the log as acknowledged, the log verifies, no partial record is
/// left, and once the faults clear the log goes on. Faults must actually have hit.
#[test]
fn acknowledged_records_survive_random_storage_faults() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let injected = std::sync::atomic::AtomicU64::new(0);
    let hit = std::sync::atomic::AtomicU64::new(0);
    let strategy = (
        prop::collection::vec(step(), 1..40),
        prop_oneof![Just(400u64), Just(2000), Just(u64::MAX)],
        any::<bool>(),
    );
    runner
        .run(&strategy, |(steps, max, lose)| {
            let n = random_schedule(steps, max, lose);
            injected.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            hit.fetch_add(u64::from(n > 0), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let (injected, hit) = (injected.into_inner(), hit.into_inner());
    println!("48 random schedules survived {injected} injected storage faults ({hit} met one)");
    assert!(hit >= 8, "faults hit only {hit} of 48 schedules");
}

/// Sessions append concurrently (group commit, buffered lines carried along) while the disk
/// fails in turn on each operation (losing unsynced writes when a sync fails) and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_through_faults() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    if cfg!(target_os = "linux") {
        faults.lose_unsynced_on_failed_sync();
    }
    let (sink, _) = FileSink::open(dir.path(), options(3000).faults(&faults)).unwrap();
    let sink = std::sync::Arc::new(sink);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (sink, stop) = (sink.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0u64;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = [Durability::Buffered, Durability::Written, Durability::Fsync]
                    [((t + i) % 3) as usize];
                match append(&sink, t * 1_000_000 + i, d).await {
                    Ok(a) if d != Durability::Buffered => acked.push(a),
                    Ok(_) => {}
                    Err(e) => {
                        assert!(matches!(e, AuditError::Unavailable(_)), "{e:?}");
                        refused += 1;
                        tokio::task::yield_now().await;
                    }
                }
                i += 1;
            }
            (acked, refused)
        }));
    }
    let schedule = [
        (Op::Write, ENOSPC),
        (Op::Sync, EIO),
        (Op::Write, EIO),
        (Op::Create, ENOSPC),
        (Op::SyncDir, EIO),
        (Op::Sync, ENOSPC),
    ];
    for (round, (op, errno)) in schedule.into_iter().cycle().take(12).enumerate() {
        let before = faults.injected();
        if round % 4 == 2 {
            faults.fail_short(3, 100, errno);
        } else {
            faults.fail(op, 3, errno);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while faults.injected() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {op:?} never failed"
            );
            tokio::task::yield_now().await;
        }
        faults.clear();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    acked.push(append_recovered(&sink, 0, Durability::Fsync).await);
    sink.close();
    assert!(refused > 0, "no append was refused");
    let injected = faults.injected();
    let report = check(dir.path(), &acked);
    println!(
        "{} acknowledged records survived {injected} faults ({refused} appends refused; {} records in the log)",
        acked.len(),
        report.records
    );
}
