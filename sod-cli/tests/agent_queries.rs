//! The other half of masking: a masked planner can still work. Every entry of
//! `agent_queries.sql` — psql's schema discovery, SQLAlchemy's reflection, information_schema
//! with filters, EXPLAIN, SHOW, analysis over plain columns — runs through `sod demo` as the
//! masked planner, by psql (simple protocol, text) and tokio-postgres (extended protocol,
//! binary), and must be answered: not refused, no server error. Nothing the planner sees may
//! hold a customer's e-mail, phone, SSN or card number, which the executor reads first (the
//! probe).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::Demo;

const QUERIES: &str = include_str!("agent_queries.sql");

/// `(name, sql)` for each entry; `$n` parameters bound as NULL.
fn entries() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in QUERIES.lines() {
        if let Some(name) = line.strip_prefix("-- ").filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            out.push((name.to_owned(), String::new()));
        } else if let Some((_, sql)) = out.last_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    for (_, sql) in &mut out {
        let mut bound = String::with_capacity(sql.len());
        let mut rest = sql.as_str();
        while let Some(at) = rest.find('$') {
            bound.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                bound.push('$');
            } else {
                bound.push_str("NULL");
            }
            rest = &rest[at + 1 + digits..];
        }
        bound.push_str(rest);
        *sql = bound.trim().to_owned();
    }
    out
}

#[test]
fn the_corpus_is_well_formed() {
    let e = entries();
    assert!(e.len() >= 80, "{}", e.len());
    let mut names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), e.len(), "duplicate names");
    let parameter = |sql: &str| {
        sql.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
    };
    assert!(e.iter().all(|(_, sql)| !sql.is_empty() && !parameter(sql)));
}

fn psql(port: u16, database: &str, token: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} dbname={database} user=agent"
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_planner_can_discover_the_schema_and_analyse() {
    let tokens_file = tempfile::NamedTempFile::new().unwrap();
    let demo = Demo::start(tokens_file.path(), &[]);
    let (port, database) = (demo.port, demo.database());
    let (planner, executor) = (demo.token("planner"), demo.token("executor"));

    // The probe: the executor sees the values the planner must not.
    let (ok, secrets) = psql(
        port,
        &database,
        &executor,
        "COPY (SELECT email, phone, ssn, card_number FROM customers) TO STDOUT",
    );
    assert!(ok, "{secrets}");
    let planted: Vec<String> = secrets
        .lines()
        .flat_map(|l| l.split('\t').map(str::to_owned))
        .filter(|v| v.len() >= 6 && v != "\\N")
        .collect();
    assert!(planted.len() > 100, "{planted:?}");

    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} dbname={database} user=agent password={planner}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    let mut problems = Vec::new();
    let entries = entries();
    for (name, sql) in &entries {
        let (ok, shown) = psql(port, &database, &planner, sql);
        if !ok {
            problems.push(format!("{name} [psql]: {shown}"));
        }
        if let Some(leak) = planted.iter().find(|p| shown.contains(p.as_str())) {
            problems.push(format!("{name} [psql] shows {leak:?}"));
        }
        // Meta-commands and several statements are psql's; the rest also goes through the
        // extended protocol.
        if sql.starts_with('\\') || sql.contains(';') {
            continue;
        }
        if let Err(e) = client.query(sql.as_str(), &[]).await {
            problems.push(format!("{name} [extended]: {e:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} agent queries failed:\n\n{}",
        problems.len(),
        entries.len(),
        problems.join("\n\n")
    );
}
