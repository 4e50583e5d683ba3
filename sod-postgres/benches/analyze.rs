//! SQL analysis cost: a cache hit, a miss through each analyzer, and the whole per-statement
//! judgement the gateway does for pgbench's select-only statement.
//!
//! Run with `cargo bench -p sod-postgres --bench analyze`.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use sod_postgres::sql::{Analyzer, CachedAnalyzer, PgQueryAnalyzer};

const SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
const UPDATE: &str = "UPDATE pgbench_accounts SET abalance = abalance + -4411 WHERE aid = 77412;";
const JOIN: &str = "WITH recent AS (SELECT customer_id, sum(amount) AS total FROM orders \
     WHERE created_at > now() - interval '7 days' GROUP BY customer_id) \
     SELECT c.id, c.name, r.total FROM customers c JOIN recent r ON r.customer_id = c.id \
     ORDER BY r.total DESC LIMIT 20";

fn analysis(c: &mut Criterion) {
    let pg = PgQueryAnalyzer::new();
    for (name, sql) in [("select", SELECT), ("update", UPDATE), ("cte join", JOIN)] {
        c.bench_function(&format!("pg_query analyze: {name}"), |b| {
            b.iter(|| pg.analyze(std::hint::black_box(sql)))
        });
    }
    #[cfg(feature = "sqlparser")]
    {
        let sp = sod_postgres::sql::SqlParserAnalyzer::new();
        for (name, sql) in [("select", SELECT), ("update", UPDATE), ("cte join", JOIN)] {
            c.bench_function(&format!("sqlparser analyze: {name}"), |b| {
                b.iter(|| sp.analyze(std::hint::black_box(sql)))
            });
        }
    }
    let cached = CachedAnalyzer::new(PgQueryAnalyzer::new(), 1024);
    cached.analyze(SELECT);
    c.bench_function("cached analyze: hit", |b| {
        b.iter(|| cached.analyze(std::hint::black_box(SELECT)))
    });
    // pgbench -S sends a different constant every time: every text is new.
    let mut aid = 0u32;
    c.bench_function("cached analyze: miss (new constant)", |b| {
        b.iter(|| {
            aid = aid.wrapping_add(7919);
            cached.analyze(&format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"
            ))
        })
    });
}

criterion_group!(benches, analysis);
criterion_main!(benches);
