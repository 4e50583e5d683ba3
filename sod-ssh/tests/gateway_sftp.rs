//! The `sftp` subsystem and `scp` (which speaks SFTP since OpenSSH 9) through the gateway,
//! with OpenSSH's `sftp`, `scp` and `rsync` against its `sftp-server`: every request judged on
//! its own, masked reads served from a masked copy, refusals as SFTP errors.

mod support;

use sod_audit::Event;
use sod_testkit::ssh::ScpMode;
use support::{Harness, run, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_reads_are_judged_and_masked_writes_wait_for_approval() {
    let h = Harness::start().await;
    let planner = h.client("agent", &h.planner_token());
    let local = tempfile::tempdir().expect("local dir");
    let got = local.path().join("got.csv");
    // A read: listed, fetched, masked.
    let out = run(&mut planner.sftp_batch(&format!("ls\nget customers.csv {}\n", got.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("notes.txt"), "{}", stdout(&out));
    let fetched = std::fs::read_to_string(&got).expect("fetched");
    assert!(fetched.starts_with("id,email,card\n"), "{fetched}");
    assert!(!fetched.contains("alice@example.com"), "{fetched}");
    assert!(!fetched.contains("4539 1488 0343 6467"), "{fetched}");

    // Keys: refused by name, as over exec.
    let out = run(&mut planner.sftp_batch(&format!(
        "get deploy_key {}\n",
        local.path().join("k").display()
    )));
    assert!(!out.status.success());
    assert!(!local.path().join("k").exists());
    // (sftp shows its own "not found" for a refused STAT; the log names the rule.)
    let refused = h.events().into_iter().any(|e| {
        matches!(e, Event::OperationAttempted { text, decision, .. }
            if text.contains("deploy_key") && decision.rule.as_deref() == Some("no-secrets-for-planners"))
    });
    assert!(refused, "{:?}", h.events());

    // A write waits for approval: refused with the approval id, nothing written.
    std::fs::write(local.path().join("up.txt"), "hello").expect("local file");
    let out = run(&mut planner.sftp_batch(&format!(
        "put {} up.txt\n",
        local.path().join("up.txt").display()
    )));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("approval"), "{}", stderr(&out));
    assert!(!h.path("up.txt").exists());

    // scp in both modes: SFTP (the default) and the legacy protocol (`scp -f` over exec).
    for mode in [ScpMode::Sftp, ScpMode::Legacy] {
        let dest = local.path().join(format!("notes-{mode:?}.txt"));
        let out = run(&mut planner.scp(
            mode,
            [planner.remote("notes.txt"), dest.display().to_string()],
        ));
        assert!(out.status.success(), "{mode:?}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(&dest).expect("copied"),
            "deploy on friday\nrollback plan: none\n"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_transfer_both_ways_with_sftp_scp_and_rsync() {
    let h = Harness::start().await;
    let executor = h.client("agent", &h.executor_token());
    let local = tempfile::tempdir().expect("local dir");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(local.path().join("big.bin"), &big).expect("local file");
    let out = run(&mut executor.sftp_batch(&format!(
        "put {} big.bin\nget big.bin {}\nrename big.bin big2.bin\nmkdir d\nrmdir d\n",
        local.path().join("big.bin").display(),
        local.path().join("back.bin").display()
    )));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(h.path("big2.bin")).expect("uploaded"), big);
    assert_eq!(
        std::fs::read(local.path().join("back.bin")).expect("downloaded"),
        big
    );
    // Unmasked: the executor gets the file as it is.
    let out = run(&mut executor.scp(
        ScpMode::Sftp,
        [
            executor.remote("customers.csv"),
            local.path().join("c.csv").display().to_string(),
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(local.path().join("c.csv"))
            .expect("c")
            .contains("alice@example.com")
    );
    // rsync over exec (`rsync --server`), both ways.
    let out = run(&mut executor.rsync([
        "-a".to_owned(),
        format!("{}/", local.path().display()),
        executor.remote("synced/"),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(h.path("synced/big.bin")).expect("synced"),
        big
    );
    let back = tempfile::tempdir().expect("back");
    let out = run(&mut executor.rsync([
        "-a".to_owned(),
        executor.remote("logs/"),
        format!("{}/", back.path().display()),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(back.path().join("app.log")).expect("log"),
        "started\nstopped\n"
    );
    h.stop().await;
}
