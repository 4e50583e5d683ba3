//! # sod-cli
//!
//! The `sod` command, and the pieces it is made of for those who want them in Rust:
//!
//! - [`config`]: `sod.toml`, with errors that name the file, line and key;
//! - [`assemble`]: from a config to running gateways (identity, recording, policy, approval
//!   and masking layers around each `[[postgres]]` upstream, plus the approvals API);
//! - `demo` (feature `demo`, on by default): `sod demo`'s database, schema, policy and
//!   identities. It starts its cluster and identity provider with `sod-testkit`; build with
//!   `--no-default-features` for a `sod` that links no test token issuer;
//! - [`keys`]: key files for capabilities and audit checkpoints.
//!
//! The approvals API client behind `sod approvals` is
//! [`sod_approval::ApprovalsClient`].
//!
//! The command line itself (`sod gateway`, `demo`, `approvals`, `audit`, `token`, `policy`)
//! is documented in the crate's README section of the repository's README.md and by
//! `sod --help`.

#![forbid(unsafe_code)]

pub mod assemble;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod keys;

pub use config::{Config, ConfigError};
