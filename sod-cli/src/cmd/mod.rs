//! The command line: arguments, exit codes, output.

mod approvals;
mod audit;
#[cfg(feature = "demo")]
mod demo;
mod policy;
mod run;
mod token;

use std::fmt;

use clap::{Parser, Subcommand};
use sod_cli::ConfigError;
use sod_cli::config::LogFormat;

/// Segregation of duties for AI agents' connections: identity, policy, approval by someone
/// else, masking and a tamper-evident record for every command.
#[derive(Debug, Parser)]
#[command(
    name = "sod",
    version,
    after_help = "Exit codes: 0 success (policy check: allowed), 1 negative answer (verification \
failed, unknown id, refused by the API, policy denies), 2 usage or configuration error, 3 failure \
(I/O, network, server), 4 policy check: requires approval."
)]
pub(crate) struct Cli {
    /// Machine-readable output: JSON on stdout (errors stay on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateways a config file describes, until SIGINT or SIGTERM.
    Gateway(run::GatewayArgs),
    /// Start a PostgreSQL cluster, a gateway and three identities, and show the idea.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// List, show and decide approval requests through the approvals API.
    Approvals(approvals::ApprovalsArgs),
    /// Verify, replay and follow audit logs; make checkpoint keys.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Issue, attenuate and inspect capabilities; make capability keys.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Explain policy decisions without running anything.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    Ok = 0,
    No = 1,
    Usage = 2,
    Failed = 3,
    NeedsApproval = 4,
}

/// Why a command stopped: its exit code and what to tell the user.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: Code, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    /// The work could not be done.
    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        Self::new(Code::Failed, message)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::new(Code::Usage, e)
    }
}

pub(crate) type Outcome = Result<Code, Failure>;

/// Where results go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    /// Prints `value` as JSON when `--json`, else `human()`.
    pub(crate) fn show(self, value: &serde_json::Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let text = human();
            if text.ends_with('\n') {
                print!("{text}");
            } else {
                println!("{text}");
            }
        }
    }

    /// Progress for people, on stderr; silent with `--json`.
    pub(crate) fn progress(self, message: &str) {
        if !self.json {
            eprintln!("{message}");
        }
    }
}

pub(crate) async fn run(cli: Cli) -> Outcome {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Gateway(args) => run::gateway(args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args, out).await,
        Command::Approvals(args) => approvals::run(args, out).await,
        Command::Audit(c) => audit::run(c, out).await,
        Command::Token(c) => token::run(c, out),
        Command::Policy(c) => policy::run(c, out),
    }
}

/// Logs with tracing: `format`, at `level` unless `RUST_LOG` says otherwise.
pub(crate) fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

/// Who a principal is, beyond its id: shared by `token issue` and `policy check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Who {
    /// The principal's kind.
    #[arg(long, value_enum, default_value = "planner")]
    pub(crate) kind: sod_cli::config::Kind,
    /// Groups, for policy (comma-separated or repeated).
    #[arg(long)]
    pub(crate) groups: Vec<String>,
    /// The human the principal acts for.
    #[arg(long)]
    pub(crate) on_behalf_of: Option<String>,
}

/// A comma-separated list argument.
pub(crate) fn list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A file argument that must exist.
pub(crate) fn existing(path: &std::path::Path, what: &str) -> Result<(), Failure> {
    if path.exists() {
        Ok(())
    } else {
        Err(Failure::new(
            Code::Usage,
            format!("{what} {} does not exist", path.display()),
        ))
    }
}
