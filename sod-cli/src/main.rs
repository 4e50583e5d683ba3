//! `sod`: run a segregation-of-duties gateway from a config file, try it with `sod demo`,
//! decide approvals, verify and replay the audit log, issue capabilities, explain policy.
//!
//! Exit codes (also in `sod --help`): 0 success (for `policy check`: allowed); 1 a negative
//! answer (verification failed, unknown approval id, API refusal, policy denies); 2 usage or
//! configuration error; 3 failure to do the work (I/O, network, server); 4 `policy check`:
//! requires approval.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line talks to its user

mod cmd;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cmd::{Cli, Code, Failure};

/// mimalloc, not the system allocator: a gateway allocates and frees small buffers for every
/// message, and glibc's malloc was a tenth of the gateway's CPU time per statement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sod: cannot start the runtime: {e}");
            return ExitCode::from(Code::Failed as u8);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Failure { code, message }) => {
            eprintln!("sod: {message}");
            ExitCode::from(code as u8)
        }
    }
}
