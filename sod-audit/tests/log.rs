//! The log end to end: sinks, verification, tampering, torn records, rotation, group commit.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use sod_audit::verify::{self, Problem};
use sod_audit::{
    AuditSink, CheckpointKey, Decision, Durability, Event, FileSink, FileSinkOptions, MemorySink,
    Outcome,
};

fn attempted(i: u64) -> Event {
    Event::OperationAttempted {
        session: format!("s-{}", i % 7),
        operation: i,
        principal: "planner-1".into(),
        on_behalf_of: Some("alice@example.com".into()),
        capability: Some("cap-9".into()),
        target: "pg/prod".into(),
        kind: "write".into(),
        text: format!("DELETE FROM orders WHERE id = {i}"),
        objects: vec!["public.orders".into()],
        fingerprint: format!("{i:064x}"),
        decision: Decision {
            code: None,
            effect: "allow".into(),
            rule: Some("executors-write".into()),
            reason: "executors may write orders".into(),
        },
        approvals: vec![],
    }
}

fn completed(i: u64) -> Event {
    Event::OperationCompleted {
        session: format!("s-{}", i % 7),
        operation: i,
        outcome: Outcome::Ok,
        rows: Some(1),
        bytes: None,
        duration_us: 250,
        error_code: None,
    }
}

fn lines_of(dir: &Path) -> Vec<(std::path::PathBuf, Vec<String>)> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segs.sort();
    segs.into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text.lines().map(str::to_owned).collect();
            (p, lines)
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

async fn file_log(dir: &Path, key: &CheckpointKey, n: u64) -> Option<sod_audit::Checkpoint> {
    let (sink, _) = FileSink::open(
        dir,
        FileSinkOptions::new("gw-1", key.clone()).checkpoint_every(10),
    )
    .unwrap();
    for i in 0..n {
        sink.append(attempted(i), Durability::Written)
            .await
            .unwrap();
    }
    let cp = sink.checkpoint().await.unwrap();
    sink.close();
    cp
}

fn options(key: &CheckpointKey) -> verify::Options {
    verify::Options::new([key.public()])
}

#[tokio::test]
async fn memory_sink_chains_checkpoints_and_fails_when_told() {
    let key = CheckpointKey::generate("k1");
    let sink = MemorySink::with_checkpoint_every("gw-1", key.clone(), 4);
    for i in 0..10 {
        sink.append(attempted(i), Durability::Fsync).await.unwrap();
    }
    let report = verify::lines(sink.lines(), &options(&key)).unwrap();
    // 10 events and a checkpoint after every 4 of them.
    assert_eq!((report.records, report.checkpoints), (12, 2));
    assert_eq!(report.unsigned_tail, 2);
    assert_eq!(sink.events().len(), 10);

    sink.set_failing(true);
    let err = sink
        .append(completed(1), Durability::Written)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("audit unavailable"), "{err}");
    sink.set_failing(false);
    sink.append(completed(1), Durability::Written)
        .await
        .unwrap();
    verify::lines(sink.lines(), &options(&key)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_at_every_durability_all_land_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    let (sink, report) = FileSink::open(
        dir.path(),
        FileSinkOptions::new("gw-1", key.clone()).checkpoint_every(50),
    )
    .unwrap();
    assert_eq!((report.next_seq, report.torn), (0, None));
    let sink = Arc::new(sink);
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20u64 {
                let d = [Durability::Buffered, Durability::Written, Durability::Fsync]
                    [((t + i) % 3) as usize];
                let a = sink.append(attempted(t * 100 + i), d).await.unwrap();
                got.push(a);
            }
            got
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    sink.close();
    let report = verify::dir(dir.path(), &options(&key)).unwrap();
    assert_eq!(report.records - report.checkpoints, 64 * 20);
    // Every acknowledged record is in the log with the hash its append returned.
    let records: Vec<_> = lines_of(dir.path())
        .into_iter()
        .flat_map(|(_, l)| l)
        .map(|l| sod_audit::record::decode(l.as_bytes()).unwrap())
        .collect();
    for a in acked {
        assert_eq!(records[a.seq as usize].hash, a.hash);
    }
}

#[tokio::test]
async fn rotation_keeps_one_chain_and_reopening_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    let opts = FileSinkOptions::new("gw-1", key.clone()).max_segment_bytes(2048);
    let (sink, _) = FileSink::open(dir.path(), opts.clone()).unwrap();
    for i in 0..40 {
        sink.append(attempted(i), Durability::Written)
            .await
            .unwrap();
    }
    sink.close();
    let first = verify::dir(dir.path(), &options(&key)).unwrap();
    assert!(first.segments > 3, "{first:?}");

    let (sink, report) = FileSink::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(report.next_seq, first.records);
    for i in 40..50 {
        sink.append(completed(i), Durability::Fsync).await.unwrap();
    }
    sink.close();
    let second = verify::dir(dir.path(), &options(&key)).unwrap();
    assert_eq!(
        second.records - second.checkpoints,
        first.records - first.checkpoints + 10
    );

    // One writer at a time: a second sink on an open log is refused until the first closes.
    let (sink, _) = FileSink::open(dir.path(), opts.clone()).unwrap();
    let busy = FileSink::open(dir.path(), opts.clone())
        .err()
        .expect("locked");
    assert_eq!(busy.kind(), std::io::ErrorKind::WouldBlock, "{busy}");
    assert!(busy.to_string().contains("another audit writer"), "{busy}");
    drop(sink);
    drop(FileSink::open(dir.path(), opts.clone()).unwrap());

    // Another stream's sink refuses to append to this log.
    let other = FileSink::open(dir.path(), FileSinkOptions::new("gw-2", key.clone()));
    assert!(other.is_err());
}

#[tokio::test]
async fn every_kind_of_tampering_is_reported() {
    let key = CheckpointKey::generate("k1");
    let fresh = || async {
        let dir = tempfile::tempdir().unwrap();
        let cp = file_log(dir.path(), &key, 30).await.unwrap();
        let (path, lines) = lines_of(dir.path()).remove(0);
        (dir, path, lines, cp)
    };
    let check = |dir: &Path, cp: Option<sod_audit::Checkpoint>| {
        let mut o = options(&key);
        if let Some(cp) = cp {
            o = o.exported(cp);
        }
        verify::dir(dir, &o)
    };

    // Intact.
    let (dir, _, lines, cp) = fresh().await;
    let report = check(dir.path(), Some(cp)).unwrap();
    assert_eq!(report.records as usize, lines.len());

    // A flipped byte: record 5 is reported, at its line and offset.
    let (dir, path, mut lines, _) = fresh().await;
    let offset: usize = lines[..5].iter().map(|l| l.len() + 1).sum();
    lines[5] = lines[5].replace("DELETE", "DELETf");
    write_lines(&path, &lines);
    let err = check(dir.path(), None).unwrap_err();
    assert_eq!(
        (err.location.line, err.location.offset, err.location.seq),
        (6, offset as u64, Some(5))
    );
    assert!(matches!(err.problem, Problem::Line(_)), "{err}");

    // A deleted record.
    let (dir, path, mut lines, _) = fresh().await;
    lines.remove(7);
    write_lines(&path, &lines);
    let err = check(dir.path(), None).unwrap_err();
    assert_eq!(
        err.problem,
        Problem::Sequence {
            expected: 7,
            found: 8
        }
    );

    // Two records swapped.
    let (dir, path, mut lines, _) = fresh().await;
    lines.swap(3, 4);
    write_lines(&path, &lines);
    let err = check(dir.path(), None).unwrap_err();
    assert_eq!(err.location.seq, Some(3));

    // Truncated: without the exported checkpoint the shorter log is consistent (and says how
    // much of it no signature covers); with it, the truncation is reported.
    let (dir, path, mut lines, cp) = fresh().await;
    lines.truncate(20);
    write_lines(&path, &lines);
    let report = check(dir.path(), None).unwrap();
    // Records 0–9, the checkpoint at 10, then records 11–19 that no signature covers.
    assert_eq!((report.signed_through, report.unsigned_tail), (Some(9), 9));
    let err = check(dir.path(), Some(cp)).unwrap_err();
    assert!(matches!(err.problem, Problem::Truncated { .. }), "{err}");

    // An edit with every later hash recomputed (which needs no key): the next checkpoint no
    // longer signs the chain.
    let (dir, path, lines, _) = fresh().await;
    let mut forged = Vec::new();
    let mut prev = sod_audit::Hash::GENESIS;
    for (i, l) in lines.iter().enumerate() {
        let mut r = sod_audit::record::decode(l.as_bytes()).unwrap();
        if i == 2 {
            r.event = attempted(999);
        }
        let (line, hash) = sod_audit::record::encode(&r.stream, r.seq, r.ts_us, prev, &r.event);
        forged.push(line);
        prev = hash;
    }
    write_lines(&path, &forged);
    let err = check(dir.path(), None).unwrap_err();
    assert!(
        matches!(err.problem, Problem::CheckpointMisplaced { seq: 9, .. }),
        "{err}"
    );
    assert_eq!(err.location.seq, Some(10));

    // A checkpoint forged with another key under the same id.
    let (dir, path, mut lines, _) = fresh().await;
    let r = sod_audit::record::decode(lines[10].as_bytes()).unwrap();
    let Event::Checkpoint(cp) = &r.event else {
        panic!("record 10 is a checkpoint")
    };
    let fake = CheckpointKey::generate("k1").sign(&cp.stream, cp.seq, cp.head);
    let (line, _) =
        sod_audit::record::encode(&r.stream, r.seq, r.ts_us, r.prev, &Event::Checkpoint(fake));
    lines[10] = line;
    write_lines(&path, &lines);
    let err = check(dir.path(), None).unwrap_err();
    assert!(matches!(err.problem, Problem::Signature(_)), "{err}");

    // An exported checkpoint forged for a shorter log.
    let (dir, _, _, cp) = fresh().await;
    let mut fake = cp.clone();
    fake.seq -= 1;
    assert!(check(dir.path(), Some(fake)).is_err());
}

#[tokio::test]
async fn a_torn_last_record_is_reported_then_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    file_log(dir.path(), &key, 5).await;
    let (path, lines) = lines_of(dir.path()).remove(0);
    let good = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of writing the next record.
    let (next, _) =
        sod_audit::record::encode("gw-1", 6, 0, sod_audit::Hash::GENESIS, &completed(6));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &next.as_bytes()[..40]).unwrap();
    drop(f);

    let err = verify::dir(dir.path(), &options(&key)).unwrap_err();
    assert_eq!(err.problem, Problem::TornTail { bytes: 40 });
    assert_eq!(err.location.seq, Some(lines.len() as u64));

    let (sink, report) =
        FileSink::open(dir.path(), FileSinkOptions::new("gw-1", key.clone())).unwrap();
    let torn = report.torn.expect("torn tail reported");
    assert_eq!((torn.offset, torn.bytes), (good, 40));
    sink.append(completed(6), Durability::Fsync).await.unwrap();
    sink.close();
    let report = verify::dir(dir.path(), &options(&key)).unwrap();
    assert_eq!(report.records as usize, lines.len() + 1);
}

#[tokio::test]
async fn a_missing_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    let (sink, _) = FileSink::open(
        dir.path(),
        FileSinkOptions::new("gw-1", key.clone()).max_segment_bytes(1024),
    )
    .unwrap();
    for i in 0..20 {
        sink.append(attempted(i), Durability::Written)
            .await
            .unwrap();
    }
    sink.close();
    std::fs::remove_file(dir.path().join("segment-00000002.jsonl")).unwrap();
    let err = verify::dir(dir.path(), &options(&key)).unwrap_err();
    assert!(matches!(err.problem, Problem::SegmentGap { .. }), "{err}");
}

#[tokio::test]
async fn appends_after_close_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    let (sink, _) = FileSink::open(dir.path(), FileSinkOptions::new("gw-1", key)).unwrap();
    sink.close();
    let err = sink
        .append(completed(1), Durability::Written)
        .await
        .unwrap_err();
    assert_eq!(err, sod_audit::AuditError::Closed);
}

#[tokio::test]
async fn a_failed_rotation_refuses_appends_until_it_can_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::generate("k1");
    let (sink, _) = FileSink::open(
        dir.path(),
        FileSinkOptions::new("gw-1", key.clone()).max_segment_bytes(1024),
    )
    .unwrap();
    // The next segment cannot be created: a directory is in its place.
    std::fs::create_dir(dir.path().join("segment-00000002.jsonl")).unwrap();
    let mut acked = 0;
    let mut failed = None;
    for i in 0..50 {
        match sink.append(attempted(i), Durability::Fsync).await {
            Ok(_) => acked += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let failed = failed.expect("rotation into a directory fails");
    assert!(
        failed
            .to_string()
            .starts_with("audit unavailable: writing the audit log failed"),
        "{failed}"
    );
    // While the fault stays, every append that waits for the log fails too.
    for d in [Durability::Written, Durability::Fsync] {
        let err = sink.append(completed(1), d).await.unwrap_err();
        assert!(err.to_string().starts_with("audit unavailable:"), "{err}");
    }
    // Once it clears, the log goes on after the last acknowledged record.
    std::fs::remove_dir(dir.path().join("segment-00000002.jsonl")).unwrap();
    for i in 0..5 {
        sink.append(completed(i), Durability::Fsync).await.unwrap();
        acked += 1;
    }
    sink.close();
    let report = verify::dir(dir.path(), &options(&key).stream("gw-1")).unwrap();
    assert_eq!(report.records - report.checkpoints, acked);
    assert!(dir.path().join("segment-00000002.jsonl").is_file());
}

#[tokio::test]
async fn a_rewritten_log_without_checkpoints_or_of_another_stream_is_refused() {
    let key = CheckpointKey::generate("k1");
    let sink = MemorySink::with_checkpoint_every("gw-1", key.clone(), 5);
    for i in 0..12 {
        sink.append(attempted(i), Durability::Written)
            .await
            .unwrap();
    }
    // Edit record 2, drop the checkpoints, renumber and rehash: no key needed.
    let mut forged = Vec::new();
    let mut prev = sod_audit::Hash::GENESIS;
    for r in sink.records() {
        if matches!(r.event, Event::Checkpoint(_)) {
            continue;
        }
        let event = if r.seq == 2 { attempted(999) } else { r.event };
        let (line, hash) =
            sod_audit::record::encode(&r.stream, forged.len() as u64, r.ts_us, prev, &event);
        forged.push(line);
        prev = hash;
    }
    let report = verify::lines(&forged, &options(&key)).unwrap();
    assert!(!report.is_signed());
    let err = verify::lines(&forged, &options(&key).max_unsigned(5)).unwrap_err();
    assert!(matches!(err.problem, Problem::Unsigned { .. }), "{err}");
    verify::lines(sink.lines(), &options(&key).max_unsigned(5)).unwrap();

    let err = verify::lines(sink.lines(), &options(&key).stream("gw-2")).unwrap_err();
    assert!(matches!(err.problem, Problem::Stream { .. }), "{err}");
}

fn memory_log(n: u64) -> (CheckpointKey, Vec<String>) {
    let key = CheckpointKey::generate("k1");
    let sink = MemorySink::with_checkpoint_every("gw-1", key.clone(), 5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..n {
            sink.append(attempted(i), Durability::Written)
                .await
                .unwrap();
        }
    });
    (key, sink.lines())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any single flipped bit anywhere in the log is reported.
    #[test]
    fn any_bit_flip_is_detected(n in 2u64..20, pick in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (key, lines) = memory_log(n);
        let mut text = lines.join("\n").into_bytes();
        let i = pick.index(text.len());
        text[i] ^= 1 << bit;
        let text = String::from_utf8_lossy(&text).into_owned();
        prop_assert!(verify::lines(text.split('\n'), &options(&key)).is_err());
    }

    /// Dropping any record but the last is reported.
    #[test]
    fn any_inner_deletion_is_detected(n in 3u64..20, pick in any::<prop::sample::Index>()) {
        let (key, mut lines) = memory_log(n);
        let last = lines.len() - 1;
        lines.remove(pick.index(last));
        prop_assert!(verify::lines(&lines, &options(&key)).is_err());
    }

    /// Decoding arbitrary text never panics, even when it ends like a record.
    #[test]
    fn decode_never_panics(text in "(?s).{0,120}", hashlike in "[0-9a-f\u{e9}]{0,70}") {
        let _ = sod_audit::record::decode(text.as_bytes());
        let _ = sod_audit::record::decode(format!("{text},\"hash\":\"{hashlike}\"}}").as_bytes());
    }

    /// Records survive encode → decode unchanged.
    #[test]
    fn records_round_trip(session in ".{0,40}", reason in ".{0,80}", seq in any::<u64>(), ts in any::<u64>()) {
        let ev = Event::session_ended(session, reason);
        let (line, hash) = sod_audit::record::encode("gw", seq, ts, sod_audit::Hash([3; 32]), &ev);
        prop_assert!(!line.contains('\n'));
        let r = sod_audit::record::decode(line.as_bytes()).unwrap();
        prop_assert_eq!((r.seq, r.ts_us, r.hash, r.event), (seq, ts, hash, ev));
    }
}

/// Records hold statements with their constants: the files are the owner's alone.
#[cfg(unix)]
#[tokio::test]
async fn segments_and_new_directories_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("audit");
    let opts = FileSinkOptions::new("gw-1", CheckpointKey::generate("k1")).max_segment_bytes(2048);
    let (sink, _) = FileSink::open(&dir, opts).unwrap();
    for i in 0..40 {
        sink.append(attempted(i), Durability::Written)
            .await
            .unwrap();
    }
    sink.close();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let segments: Vec<_> = lines_of(&dir).into_iter().map(|(p, _)| p).collect();
    assert!(segments.len() > 3, "rotated: {segments:?}");
    for s in segments.iter().chain([&dir.join(".lock")]) {
        assert_eq!(mode(s), 0o600, "{}", s.display());
    }
}
