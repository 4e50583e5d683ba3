//! Crash safety of the file store: a child process submits, approves and consumes requests in
//! a loop and is killed with SIGKILL at varying points; after reopening the journal, every
//! change whose call had returned is there (a submitted request exists, an approval is
//! approved or used, a use is used), nothing is revived, and the store goes on.
//!
//! The child is this same test binary, run again with `SOD_APPROVAL_CRASH_CHILD` set: it prints
//! `<step> <id>` after each call returns, until it is killed.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sod_approval::{ApprovalId, ApprovalRequest, Broker, FileStore, Requester, Status};
use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};

const CHILD: &str = "SOD_APPROVAL_CRASH_CHILD";
const TEST: &str = "acknowledged_decisions_survive_sigkill";
/// Kills.
const ROUNDS: usize = 8;

fn spec() -> sod_core::policy::ApprovalSpec {
    sod_core::policy::ApprovalSpec {
        approver_groups: vec!["dba".into()],
        quorum: 1,
        ttl: Duration::from_secs(600),
    }
}

fn op(n: u64) -> Operation {
    Operation::builder(
        Target::new("pg/prod"),
        OperationKind::Write,
        format!("UPDATE orders SET amount = 1 WHERE id = {n}"),
    )
    .build()
}

fn planner() -> Requester {
    Requester::new("planner-1")
}

/// The child: submit, approve, consume, over and over, saying so after each call returns.
fn child(journal: &Path, start: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let broker = Broker::new(Arc::new(FileStore::open(journal).unwrap()));
        let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"]);
        let mut out = std::io::stdout().lock();
        for n in start.. {
            let request = ApprovalRequest::new(
                planner(),
                &op(n),
                vec!["dba".into()],
                1,
                Duration::from_secs(600),
            );
            let id = broker.submit(request).await.unwrap();
            writeln!(out, "submitted {id}").unwrap();
            out.flush().unwrap();
            broker.decide(&id, &bob, true, None).await.unwrap();
            writeln!(out, "approved {id}").unwrap();
            out.flush().unwrap();
            if n % 2 == 0 {
                let used = broker
                    .consume(&planner(), &op(n), &spec(), None)
                    .await
                    .unwrap();
                assert!(used.is_some());
                writeln!(out, "consumed {id}").unwrap();
                out.flush().unwrap();
            }
        }
    });
}

#[test]
fn acknowledged_decisions_survive_sigkill() {
    if let Ok(args) = std::env::var(CHILD) {
        let (path, start) = args.split_once(':').unwrap();
        child(Path::new(path), start.parse().unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("approvals.jsonl");
    // What each id was last acknowledged as: 0 submitted, 1 approved, 2 consumed.
    let mut acked: BTreeMap<String, u8> = BTreeMap::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}:{}", journal.display(), round * 100_000))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a varying number of acknowledged steps.
        let steps = 20 + round * 37 % 90;
        let mut seen = 0;
        while seen < steps {
            let line = lines.next().expect("the child runs").unwrap();
            // The test harness prints its own lines too.
            let level = match line.split_once(' ') {
                Some(("submitted", _)) => 0,
                Some(("approved", _)) => 1,
                Some(("consumed", _)) => 2,
                _ => continue,
            };
            let id = line.split_once(' ').map(|(_, id)| id.to_owned()).unwrap();
            acked.insert(id, level);
            seen += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let broker = Broker::new(Arc::new(FileStore::open(&journal).unwrap()));
        rt.block_on(async {
            for (id, level) in &acked {
                let status = broker
                    .get(&ApprovalId::new(id.as_str()))
                    .await
                    .unwrap()
                    .status();
                let ok = match level {
                    0 => matches!(
                        status,
                        Status::Pending | Status::Approved | Status::Consumed
                    ),
                    1 => matches!(status, Status::Approved | Status::Consumed),
                    _ => status == Status::Consumed,
                };
                assert!(
                    ok,
                    "round {round}: {id} acknowledged as {level}, now {status:?}"
                );
            }
        });
    }
    println!(
        "{} requests acknowledged across {ROUNDS} kills, all intact",
        acked.len()
    );
}
