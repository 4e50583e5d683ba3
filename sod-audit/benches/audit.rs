//! Audit log throughput, against the targets of the sod-audit issue on a 2-core machine: at
//! least 100 000 `written` appends/s and 20 000 `fsync` appends/s with 64 concurrent writers
//! (group commit), and verification of at least 500 000 records/s.
//!
//! Appends go to a `FileSink` in a temporary directory (`SOD_BENCH_AUDIT_DIR` to choose the
//! file system, since `fsync` cost is the disk's); every level is measured with 1 and with 64
//! writers. Run with `cargo bench -p sod-audit --bench audit` (or `cargo xtask bench audit`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sod_audit::{
    AuditSink, CheckpointKey, Decision, Durability, Event, FileSink, FileSinkOptions, MemorySink,
    verify,
};

/// A realistic attempt record (about 500 bytes as JSON).
fn attempt(i: u64) -> Event {
    Event::OperationAttempted {
        session: format!("5f0c1e9a7b3d4c21{:016x}", i % 64),
        operation: i,
        principal: "planner-7".into(),
        on_behalf_of: Some("alice@example.com".into()),
        capability: Some("cap-0b1c2d3e".into()),
        target: "pg/prod".into(),
        kind: "write".into(),
        text: "UPDATE orders SET status = $1 WHERE id = $2 AND customer_id = $3".into(),
        objects: vec!["public.orders".into()],
        fingerprint: "9c".repeat(32),
        decision: Decision {
            effect: "allow".into(),
            code: None,
            rule: Some("executors-write".into()),
            reason: "executors may write orders".into(),
        },
        approvals: vec![],
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("SOD_BENCH_AUDIT_DIR") {
        Some(base) => tempfile::tempdir_in(base).expect("temp dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// Runs `total` appends spread over `writers` tasks; returns the elapsed time.
async fn appends(
    sink: &Arc<FileSink>,
    writers: u64,
    total: u64,
    durability: Durability,
) -> Duration {
    let per = (total / writers).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let sink = sink.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    sink.append(attempt(w * per + i), durability)
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    start.elapsed()
}

fn append_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("append");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for durability in [Durability::Buffered, Durability::Written, Durability::Fsync] {
        for writers in [1u64, 64] {
            let dir = bench_dir();
            let (sink, _) = FileSink::open(
                dir.path(),
                FileSinkOptions::new("bench", CheckpointKey::generate("k")),
            )
            .expect("open");
            let sink = Arc::new(sink);
            // Elements per iteration: enough for group commit to matter with 64 writers.
            let batch = if writers == 1 && durability == Durability::Fsync {
                16
            } else {
                1024
            };
            group.throughput(Throughput::Elements(batch));
            group.bench_with_input(
                BenchmarkId::new(format!("{durability:?}").to_lowercase(), writers),
                &writers,
                |b, &writers| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                total += appends(&sink, writers, batch, durability).await;
                            }
                            // Buffered appends return before their write: wait for it, so the
                            // next measurement does not inherit this one's backlog.
                            sink.append(attempt(0), Durability::Written)
                                .await
                                .expect("drain");
                            total
                        })
                    })
                },
            );
            sink.close();
        }
    }
    group.finish();
}

fn verify_throughput(c: &mut Criterion) {
    let key = CheckpointKey::generate("k");
    let sink = MemorySink::new("bench", key.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let n = 100_000u64;
    rt.block_on(async {
        for i in 0..n {
            sink.append(attempt(i), Durability::Buffered)
                .await
                .expect("append");
        }
        sink.checkpoint().await.expect("checkpoint");
    });
    let lines = sink.lines();
    let options = verify::Options::new([key.public()]);
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("records", |b| {
        b.iter(|| verify::lines(&lines, &options).expect("verifies"))
    });
    group.finish();
}

criterion_group!(benches, append_throughput, verify_throughput);
criterion_main!(benches);
