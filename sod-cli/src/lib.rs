//! # sod-cli
//!
//! The `sod` command, and the pieces it is made of for those who want them in Rust:
//!
//! - [`config`]: `sod.toml`, with errors that name the file, line and key;
//! - [`assemble`]: from a config to running gateways (identity, recording, policy, approval
//!   and masking layers around each `[[postgres]]` upstream, plus the approvals API);
//! - [`demo`]: `sod demo`'s database, schema, policy and identities;
//! - [`client`]: the approvals API client behind `sod approvals`;
//! - [`keys`]: key files for capabilities and audit checkpoints.
//!
//! The command line itself (`sod gateway`, `demo`, `approvals`, `audit`, `token`, `policy`)
//! is documented in the crate's README section of the repository's README.md and by
//! `sod --help`.

#![forbid(unsafe_code)]

pub mod assemble;
pub mod client;
pub mod config;
pub mod demo;
pub mod keys;

pub use config::{Config, ConfigError};
