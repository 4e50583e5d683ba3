//! `sod demo` (the `demo` feature, on by default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use sod_cli::config::LogFormat;
use sod_cli::{assemble, demo};

use super::run::start_failure;
use super::{Code, Failure, Out, Outcome, init_logging, shutdown_signal};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Use this PostgreSQL server (`postgres://user:password@host:port/database`) instead of
    /// an ephemeral cluster; the demo schema is created there if missing.
    #[arg(long)]
    upstream: Option<String>,
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:6543")]
    listen: SocketAddr,
    /// Also write the tokens (JSON: planner, executor, approver) to this file.
    #[arg(long)]
    tokens_out: Option<PathBuf>,
    /// Keep the audit log in this directory (default: the demo's temporary directory).
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// Where the approvals API listens.
    #[arg(long, default_value = "127.0.0.1:6544")]
    approvals_listen: SocketAddr,
    /// Seconds a statement waits for approval before the client gets the error naming the
    /// approval id.
    #[arg(long, default_value_t = 30)]
    approval_wait: u64,
    /// Where the SSH gateway listens.
    #[arg(long, default_value = "127.0.0.1:2222")]
    ssh_listen: SocketAddr,
    /// The SSH target's working directory (default: in the demo's temporary directory);
    /// the demo seeds it with a few files it does not find there.
    #[arg(long)]
    ssh_home: Option<PathBuf>,
    /// The known_hosts file the demo adds the SSH gateway's host key to, so plain `ssh`
    /// trusts it (default `~/.ssh/known_hosts`).
    #[arg(long, conflicts_with = "no_ssh_known_hosts")]
    ssh_known_hosts: Option<PathBuf>,
    /// Leave every known_hosts file alone (the walkthrough then names the demo's own).
    #[arg(long)]
    no_ssh_known_hosts: bool,
    /// Where the Kubernetes gateway listens (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443")]
    k8s_listen: SocketAddr,
    /// Where to write planner.kubeconfig, executor.kubeconfig and approver.kubeconfig
    /// (default: the demo's temporary directory).
    #[arg(long)]
    kubeconfig_dir: Option<PathBuf>,
}

pub(crate) async fn run(args: DemoArgs, out: Out) -> Outcome {
    init_logging(LogFormat::Human, "warn");
    let wait = Duration::from_secs(args.approval_wait);
    let options = demo::DemoOptions {
        upstream: args.upstream,
        listen: args.listen,
        tokens_out: args.tokens_out,
        audit_dir: args.audit_dir,
        approvals_listen: args.approvals_listen,
        approval_wait: wait,
        ssh_listen: args.ssh_listen,
        ssh_home: args.ssh_home,
        ssh_known_hosts: if args.no_ssh_known_hosts {
            None
        } else {
            args.ssh_known_hosts.or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
            })
        },
        k8s_listen: args.k8s_listen,
        kubeconfig_dir: args.kubeconfig_dir,
    };
    let progress = |m: &str| out.progress(m);
    let demo = demo::prepare(&options, &progress)
        .await
        .map_err(Failure::failed)?;
    let running = assemble::start(&demo.config).await.map_err(start_failure)?;
    let sod = std::env::current_exe()
        .ok()
        .map_or_else(|| "sod".to_owned(), |p| p.display().to_string());
    let (_, gateway) = running.postgres[0];
    let ssh = running.ssh[0];
    out.show(
        &json!({
            "gateway": gateway.to_string(),
            "ssh": ssh.to_string(),
            "ssh_target": demo::SSH_TARGET,
            "ssh_home": demo.ssh_home,
            "ssh_known_hosts": demo.ssh_known_hosts,
            "kubernetes": running.kubernetes.first().map(|a| format!("https://{a}")),
            "k8s_target": demo::K8S_TARGET,
            "kubeconfigs": {
                "planner": demo.kubeconfig_dir.join("planner.kubeconfig"),
                "executor": demo.kubeconfig_dir.join("executor.kubeconfig"),
                "approver": demo.kubeconfig_dir.join("approver.kubeconfig"),
            },
            "approvals": running.approvals.map(|a| format!("http://{a}")),
            "database": demo.database,
            "target": demo::TARGET,
            "config": demo.dir().join("sod.toml"),
            "audit_dir": demo.audit_dir,
            "audit_key": demo.dir().join("audit.key.pub"),
            "tokens": {
                "planner": demo.tokens[0].1,
                "executor": demo.tokens[1].1,
                "approver": demo.tokens[2].1,
            },
        }),
        || demo::walkthrough(&demo, &running, &sod),
    );
    running
        .run_until(shutdown_signal())
        .await
        .map_err(Failure::failed)?;
    out.progress("sod demo stopped.");
    Ok(Code::Ok)
}
