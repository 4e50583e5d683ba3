//! `sod gateway`.

use std::path::PathBuf;

use clap::Args;
use sod_cli::assemble;
use sod_cli::config::{Config, LogFormat};

use super::{Code, Failure, Outcome, init_logging, shutdown_signal};

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The config file.
    #[arg(long, short, default_value = "sod.toml")]
    config: PathBuf,
    /// Overrides `[log].format`.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

pub(crate) async fn gateway(args: GatewayArgs) -> Outcome {
    let config = Config::load(&args.config)?;
    let log = &config.file.log;
    init_logging(
        args.log_format.unwrap_or(log.format),
        log.level.as_deref().unwrap_or("info"),
    );
    let running = assemble::start(&config).await.map_err(start_failure)?;
    running
        .run_until(shutdown_signal())
        .await
        .map_err(Failure::failed)?;
    Ok(Code::Ok)
}

/// A config error found while starting is a usage error; anything else a failure.
pub(super) fn start_failure(e: sod_core::BoxError) -> Failure {
    match e.downcast::<sod_cli::ConfigError>() {
        Ok(config) => (*config).into(),
        Err(other) => Failure::failed(other),
    }
}
