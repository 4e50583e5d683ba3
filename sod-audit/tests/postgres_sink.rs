//! The PostgreSQL sink against a real server: concurrent appends get every sequence number
//! exactly once, streams are separate and single-writer, a restart resumes the chain, and a
//! failed insert fails closed.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use sod_audit::{
    AuditError, AuditSink, CheckpointKey, Durability, Event, PostgresSink, PostgresSinkError,
    PostgresSinkOptions, verify,
};
use sod_testkit::EphemeralPostgres;

const TABLE: &str = "sod_audit_log";

async fn server() -> EphemeralPostgres {
    tokio::task::spawn_blocking(|| EphemeralPostgres::start().expect("postgres starts"))
        .await
        .unwrap()
}

async fn client(pg: &EphemeralPostgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.conninfo("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn event(i: usize) -> Event {
    Event::session_ended(format!("s-{}", i % 13), format!("reason {i}"))
}

async fn verified(pg: &EphemeralPostgres, stream: &str, key: &CheckpointKey) -> verify::Report {
    let lines = PostgresSink::lines(&client(pg).await, TABLE, stream)
        .await
        .unwrap();
    verify::lines(&lines, &verify::Options::new([key.public()]).stream(stream))
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_every_sequence_number_exactly_once() {
    let pg = server().await;
    let key = CheckpointKey::generate("k");
    let sink = Arc::new(
        PostgresSink::open(
            client(&pg).await,
            PostgresSinkOptions::new("gw-1", key.clone()).checkpoint_every(100),
        )
        .await
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for t in 0..64 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            let durability = [Durability::Buffered, Durability::Written, Durability::Fsync][t % 3];
            let mut seqs = Vec::new();
            for i in 0..20 {
                seqs.push(
                    sink.append(event(t * 100 + i), durability)
                        .await
                        .unwrap()
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    sink.checkpoint().await.unwrap().expect("a checkpoint");
    sink.close().await;
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 64 * 20, "no sequence number handed out twice");
    let report = verified(&pg, "gw-1", &key).await;
    assert_eq!(report.records - report.checkpoints, 64 * 20);
    assert!(report.checkpoints >= 12, "{report:?}");
    assert!(report.is_signed());
    let rows = pg
        .psql("SELECT count(*), min(seq), max(seq) FROM sod_audit_log")
        .unwrap();
    assert_eq!(
        rows.trim(),
        format!("{}|0|{}", report.records, report.records - 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_separate_single_writer_and_resume_after_restart() {
    let pg = server().await;
    let key = CheckpointKey::generate("k");
    let a = PostgresSink::open(
        client(&pg).await,
        PostgresSinkOptions::new("gw-1", key.clone()),
    )
    .await
    .unwrap();
    let second = PostgresSink::open(
        client(&pg).await,
        PostgresSinkOptions::new("gw-1", key.clone()),
    )
    .await;
    assert!(
        matches!(second, Err(PostgresSinkError::StreamInUse(ref s)) if s == "gw-1"),
        "a second writer on one stream is refused"
    );
    let b = PostgresSink::open(
        client(&pg).await,
        PostgresSinkOptions::new("gw-2", key.clone()),
    )
    .await
    .unwrap();
    for i in 0..10 {
        a.append(event(i), Durability::Fsync).await.unwrap();
        b.append(event(i), Durability::Written).await.unwrap();
    }
    a.close().await;
    // The stream is free again; the chain resumes after its last record.
    let a = PostgresSink::open(
        client(&pg).await,
        PostgresSinkOptions::new("gw-1", key.clone()),
    )
    .await
    .unwrap();
    let next = a.append(event(10), Durability::Fsync).await.unwrap();
    assert_eq!(next.seq, 10);
    a.checkpoint().await.unwrap();
    b.checkpoint().await.unwrap();
    a.close().await;
    b.close().await;
    let gw1 = verified(&pg, "gw-1", &key).await;
    assert_eq!(gw1.records - gw1.checkpoints, 11);
    let gw2 = verified(&pg, "gw-2", &key).await;
    assert_eq!(gw2.records - gw2.checkpoints, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_insert_refuses_every_later_append() {
    let pg = server().await;
    let key = CheckpointKey::generate("k");
    let sink = PostgresSink::open(client(&pg).await, PostgresSinkOptions::new("gw-1", key))
        .await
        .unwrap();
    let first = sink.append(event(0), Durability::Fsync).await.unwrap();
    // Someone else writes the next sequence number: the primary key refuses the sink's insert.
    pg.psql(&format!(
        "INSERT INTO sod_audit_log (stream, seq, line) VALUES ('gw-1', {}, 'forged')",
        first.seq + 1
    ))
    .unwrap();
    let err = sink
        .append(event(1), Durability::Written)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::Unavailable(why) if why.contains("duplicate key")),
        "{err}"
    );
    let later = sink
        .append(event(2), Durability::Buffered)
        .await
        .unwrap_err();
    assert!(matches!(later, AuditError::Unavailable(_)), "{later}");
    assert!(sink.checkpoint().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_are_plain_identifiers() {
    let pg = server().await;
    for bad in ["log; DROP TABLE x", "Log", "a.b.c", "", "1log", "\"log\""] {
        let opened = PostgresSink::open(
            client(&pg).await,
            PostgresSinkOptions::new("gw", CheckpointKey::generate("k")).table(bad),
        )
        .await;
        assert!(
            matches!(opened, Err(PostgresSinkError::BadTable(_))),
            "{bad:?}"
        );
    }
    let sink = PostgresSink::open(
        client(&pg).await,
        PostgresSinkOptions::new("gw", CheckpointKey::generate("k")).table("public.audit_2026"),
    )
    .await
    .unwrap();
    sink.append(event(0), Durability::Fsync).await.unwrap();
    sink.close().await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM public.audit_2026")
            .unwrap()
            .trim(),
        "1"
    );
}
