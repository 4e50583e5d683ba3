//! What the stack sees of SSH: [`SshRequest`], [`SshResponse`], and [`SshUpstream`], the
//! innermost service, which commits each request before anything reaches the target (sod-core's
//! [`Commit`] and [`GoAhead`], which every gateway that forwards after a go-ahead shares).

use sod_core::layer::{Commit, GoAhead};

/// What an operation asks of the SSH target. Layers never look inside: they decide on the
/// request's [`Operation`](sod_core::Operation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SshRequest {
    /// Opening the session (authentication).
    Connect,
    /// Running a command line (`exec`).
    Exec,
    /// An interactive shell, with or without a terminal.
    Shell,
    /// One SFTP request.
    Sftp,
    /// A tunnel (`direct-tcpip`) or another forward.
    Forward,
    /// A subsystem other than SFTP.
    Subsystem,
}

/// The go-ahead for one committed SSH operation (see [`GoAhead`]).
pub type SshResponse = GoAhead;

/// The innermost service of the SSH stack (see [`Commit`]).
pub type SshUpstream = Commit;
