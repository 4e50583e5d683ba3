//! Test fixtures for sod, shared by the tests of the other crates and by `sod demo` (see
//! ARCHITECTURE.md, Testing: real peers, not mocks). Never part of a production build.
//!
//! - [`tls`]: a throw-away certificate authority ([`TestCa`]) and rustls configurations built
//!   with the aws-lc-rs provider.
//! - [`pg`]: an ephemeral PostgreSQL cluster ([`EphemeralPostgres`]) made from the installed
//!   server binaries.
//! - [`oidc`]: an OIDC issuer ([`OidcIssuer`]) signing tokens with aws-lc-rs, and an HTTPS JWKS
//!   endpoint ([`JwksServer`]).
//! - [`poll`]: waiting for a condition with a deadline ([`poll_until`], [`poll_until_async`]).
//! - [`ssh`]: an ephemeral OpenSSH server ([`ssh::Sshd`]) and the real OpenSSH clients (`ssh`,
//!   `scp`, `sftp`, `rsync -e ssh`, `ssh -tt` in tmux) run with a deadline ([`ssh::Client`]).
//! - [`k8s`]: a test Kubernetes API server ([`k8s::TestApiServer`], not an API server) that
//!   answers the real `kubectl` and the `kube` client as a real one would: discovery, Tables,
//!   watches, `Status` errors, exec over WebSocket and SPDY/3.1 into real local processes, port
//!   forwarding over SPDY/3.1 to real local ports.
#![forbid(unsafe_code)]

pub mod k8s;
pub mod oidc;
pub mod pg;
pub mod poll;
pub mod ssh;
pub mod tls;

pub use oidc::{
    JwksMode, JwksServer, KeyAlg, OidcIssuer, SigningKey, TokenBuilder, b64url, hs256_token,
    unsigned_token,
};
pub use pg::{EphemeralPostgres, PgBuilder, UserAuth};
pub use poll::{poll_until, poll_until_async};
pub use tls::{Leaf, TestCa};
