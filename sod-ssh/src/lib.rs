//! # sod-ssh
//!
//! sod for SSH: a bastion that gates every command an agent runs over SSH, for OpenSSH's
//! `ssh`, `scp`, `sftp` and `rsync` as they are.
//!
//! A [`Gateway`] listens for SSH clients. Each authenticates with an OIDC token or a sod
//! capability *as its password* (or in keyboard-interactive parts, for credentials longer
//! than OpenSSH's 1 023-byte limit); the gateway logs in to the [target](SshTarget) with a key
//! that never leaves it, after checking the target's host key against a [`KnownHosts`] file.
//! Every `exec`, `shell`, SFTP request and tunnel becomes an [`Operation`](sod_core::Operation)
//! that runs through a tower stack of sod layers (identity, recording, policy, approval,
//! masking) before anything reaches the target.
//!
//! - [`command`]: what an `exec` command line does, from a real shell parser: the programs it
//!   runs, whether it reads, writes or runs arbitrary code, and the paths it touches.
//! - [`sftp`]: the SFTP protocol (version 3, with OpenSSH's extensions), byte-exact, and what
//!   each SFTP request does.
//! - [`Gateway`], [`SshTarget`], [`KnownHosts`], [`HostKey`]: the bastion; [`SshRequest`],
//!   [`SshResponse`] and [`SshUpstream`] are what the stack sees; [`refusal`]: how a refusal
//!   reaches a client (a stderr line and an exit status).
//!
//! Inside, a connection is russh's session loop (`server`: authentication and channel
//! requests, answered at once), and each channel a task of its own (`channel`: the decision,
//! then the target, with `pump` carrying an exec or shell, `sftp` the SFTP subsystem and
//! `tunnel` a `direct-tcpip` channel). `upstream` is the gateway's connection to a target.

#![forbid(unsafe_code)]

mod channel;
pub mod command;
mod gateway;
mod known_hosts;
pub mod refusal;
mod server;
mod service;
pub mod sftp;
mod shared;
mod target;
mod upstream;

pub use gateway::{Gateway, GatewayBuilder, HostKey, HostKeyFileError};
pub use known_hosts::{HostKeyError, KnownHosts, KnownHostsError};
pub use server::{MAX_TOKEN, TOKEN_PART};
pub use service::{SshRequest, SshResponse, SshUpstream};
pub use shared::DEFAULT_ENV_ALLOW;
pub use target::{SshTarget, TargetKey, TargetKeyError};
pub use upstream::UpstreamError;
