//! `sod demo` as the tests run it: the binary on free ports, its first line and its tokens.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const SOD: &str = env!("CARGO_BIN_EXE_sod");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The demo process; SIGKILLed if the test ends before stopping it.
pub struct DemoProcess(pub Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `sod demo`: its process, where it listens, what it printed first (JSON) and the
/// tokens it wrote.
pub struct Demo {
    pub process: DemoProcess,
    pub port: u16,
    pub api_port: u16,
    pub ssh_port: u16,
    pub k8s_port: u16,
    /// Where the demo wrote the three kubeconfigs.
    pub kubeconfig_dir: std::path::PathBuf,
    /// The known_hosts file the demo added its SSH gateway's key to.
    pub known_hosts: std::path::PathBuf,
    pub up: Value,
    pub tokens: Value,
}

impl Demo {
    /// Starts `sod demo --json` on free ports, with the tokens written to `tokens_file`,
    /// `extra` arguments after, and waits for its first line.
    pub fn start(tokens_file: &Path, extra: &[&str]) -> Demo {
        // A port found free can be taken by another process before the demo binds it: the
        // demo then exits before its first line, and is started again on other ports.
        for _ in 0..3 {
            if let Some(demo) = Self::try_start(tokens_file, extra) {
                return demo;
            }
        }
        panic!("sod demo did not start in three attempts (see its errors above)");
    }

    /// [`start`](Self::start) once: `None` when the demo exits without printing its first line.
    fn try_start(tokens_file: &Path, extra: &[&str]) -> Option<Demo> {
        let (port, api_port, ssh_port) = (free_port(), free_port(), free_port());
        let k8s_port = free_port();
        let known_hosts = tokens_file.with_file_name("known_hosts");
        let kubeconfig_dir = tokens_file.with_file_name("kube");
        let mut child = Command::new(SOD)
            .args([
                "demo",
                "--json",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--approvals-listen",
                &format!("127.0.0.1:{api_port}"),
                "--ssh-listen",
                &format!("127.0.0.1:{ssh_port}"),
                "--k8s-listen",
                &format!("127.0.0.1:{k8s_port}"),
            ])
            .arg("--kubeconfig-dir")
            .arg(&kubeconfig_dir)
            .arg("--ssh-known-hosts")
            .arg(&known_hosts)
            .arg("--tokens-out")
            .arg(tokens_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = DemoProcess(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        if line.is_empty() {
            return None;
        }
        let up: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let tokens: Value = serde_json::from_slice(&std::fs::read(tokens_file).unwrap()).unwrap();
        Some(Demo {
            process,
            port,
            api_port,
            ssh_port,
            k8s_port,
            kubeconfig_dir,
            known_hosts,
            up,
            tokens,
        })
    }

    /// The database clients name.
    pub fn database(&self) -> String {
        self.up["database"].as_str().unwrap().to_owned()
    }

    /// The token of `who` (`planner`, `executor`, `approver`).
    pub fn token(&self, who: &str) -> String {
        self.tokens[who].as_str().unwrap().to_owned()
    }
}

pub fn sod(args: &[&str]) -> Output {
    Command::new(SOD).args(args).output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// psql on the demo's gateway with `token` as the password, stopping at the first error.
pub fn psql(port: u16, database: &str, token: &str, sql: &str) -> Command {
    let mut c = Command::new("psql");
    c.arg(format!(
        "host=127.0.0.1 port={port} dbname={database} user=demo-user"
    ))
    .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
    .env("PGPASSWORD", token)
    .env("PGCONNECT_TIMEOUT", "10");
    c
}
