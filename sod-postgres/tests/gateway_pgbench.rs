//! pgbench through the gateway: initialisation as the executor, the TPC-B-like script as the
//! executor, and select-only in all three query modes as a read-only planner.

mod support;

use support::{Harness, stderr, stdout};

fn pgbench(h: &Harness, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &h.port.to_string(),
            "-U",
            "agent",
            "-n",
        ])
        .args(args)
        .arg("sod")
        .env("PGPASSWORD", token)
        .env_remove("PGHOST")
        .output()
        .expect("pgbench runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_the_gateway() {
    let h = Harness::start().await;
    let executor = h.executor();
    let reader = h.reader();
    let h = std::sync::Arc::new(h);
    let hh = h.clone();
    tokio::task::spawn_blocking(move || {
        let h = hh;
        // -n is not valid for -i; build the init command by hand.
        let init = std::process::Command::new("pgbench")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &h.port.to_string(),
                "-U",
                "agent",
                "-i",
                "-s",
                "1",
                "sod",
            ])
            .env("PGPASSWORD", &executor)
            .output()
            .expect("pgbench -i");
        assert!(init.status.success(), "pgbench -i: {}", stderr(&init));
        assert_eq!(
            h.direct("SELECT count(*) FROM pgbench_accounts").trim(),
            "100000"
        );

        // The default (TPC-B-like) script writes: fine for the executor.
        let tpcb = pgbench(&h, &executor, &["-M", "prepared", "-c", "2", "-t", "25"]);
        assert!(tpcb.status.success(), "tpcb: {}", stderr(&tpcb));
        assert_eq!(
            h.direct("SELECT count(*) FROM pgbench_history").trim(),
            "50"
        );

        // Select-only as a read-only planner, in every query mode.
        for mode in ["simple", "extended", "prepared"] {
            let out = pgbench(&h, &reader, &["-S", "-M", mode, "-c", "2", "-t", "50"]);
            assert!(out.status.success(), "{mode}: {}", stderr(&out));
            let report = stdout(&out);
            assert!(
                report.contains("number of transactions actually processed: 100/100"),
                "{mode}: {report}"
            );
        }
        // The TPC-B script as the planner is refused at its first write.
        let refused = pgbench(&h, &reader, &["-M", "prepared", "-c", "1", "-t", "1"]);
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("sod: refused"),
            "{}",
            stderr(&refused)
        );
        assert_eq!(
            h.direct("SELECT count(*) FROM pgbench_history").trim(),
            "50"
        );
    })
    .await
    .expect("pgbench runs");
    if let Ok(h) = std::sync::Arc::try_unwrap(h) {
        h.stop().await;
    }
}
