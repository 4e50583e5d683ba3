//! Bounded buffers both ways: a client that stops reading a 2 GiB download stops the target
//! through the gateway, and the gateway's memory does not grow with what the target would
//! send; once the client reads again, every byte arrives.

mod support;

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Harness, Options};

/// The resident memory of this process (the gateway runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_reader_stops_the_target_not_the_gateways_memory() {
    let h = Harness::with(Options {
        // Recording is on, bounded: the memory log of the test would otherwise hold it all.
        transcript_limit: Some(1024 * 1024),
        ..Options::default()
    })
    .await;
    const TOTAL: u64 = 2 << 30;
    let client = h.client("agent", &h.executor_token());
    let mut cmd = client.ssh(&format!("head -c {TOTAL} /dev/zero"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let before = rss();
    let reader = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("ssh runs");
        let mut out = child.stdout.take().expect("stdout");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        // Read a little, then stop reading for a while: the transfer must stall, not pile up.
        while got < 64 << 20 {
            got += out.read(&mut buf).expect("read") as u64;
        }
        let stalled = Instant::now();
        let mut peak = 0u64;
        while stalled.elapsed() < Duration::from_secs(4) {
            peak = peak.max(rss());
            std::thread::sleep(Duration::from_millis(100));
        }
        loop {
            let n = out.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        let status = child.wait().expect("ssh ends");
        (got, peak, status)
    });
    let (got, peak, status) = reader.await.expect("join");
    assert!(status.success());
    assert_eq!(got, TOTAL, "every byte arrived");
    let grew = peak.saturating_sub(before);
    eprintln!(
        "memory growth while the client was stopped: {} MiB",
        grew >> 20
    );
    assert!(
        grew < 48 << 20,
        "the gateway's memory grew by {} MiB while the client was stopped",
        grew >> 20
    );
    h.stop().await;
}
