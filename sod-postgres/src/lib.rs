//! # sod-postgres
//!
//! sod for PostgreSQL: an agent's database connection, wrapped.
//!
//! A [`Gateway`] listens for PostgreSQL clients (psql, drivers, pgbench). Each client
//! authenticates with an OIDC token or a sod capability *as its password*; the gateway opens
//! its own connection to the real server with the executor's credentials (which never leave the
//! gateway), and every statement becomes an [`Operation`](sod_core::Operation) that runs through
//! a tower stack of sod layers (identity, recording, policy, approval, masking) before it is
//! forwarded.
//!
//! - [`codec`]: the PostgreSQL wire protocol (v3), zero-copy, size-limited, panic-free.
//! - [`sql`]: what a statement *does*, analysed by the PostgreSQL parser itself.
//! - [`upstream`] and [`credentials`]: the connection to the real server (TCP or Unix socket,
//!   TLS with verification, SCRAM-SHA-256, MD5, trust).
//! - [`Gateway`]: listener, sessions, graceful shutdown, connection limit; [`PgRequest`],
//!   [`PgResponse`] and [`PgUpstream`] are what the stack sees.
//! - [`error`]: refusals as `ErrorResponse`s (SQLSTATE 42501, 28000, 28P01, 58000).
//!
//! Inside, one session is one task (`session`): start-up, then two loops — the *driver*
//! (`session::driver`: client messages → operations through the stack) and the *router*
//! (`router`: server messages → the operation each answers → the client), with the
//! *response processor* (`response`: row counts, masking) between the router and the client.
//! `shared` holds what sessions share; `service` the stack's request and response types and
//! the innermost service.

#![forbid(unsafe_code)]

mod catalog;
pub mod codec;
pub mod credentials;
pub mod error;
mod gateway;
mod net;
mod opacity;
mod pool;
mod response;
mod router;
mod service;
mod session;
mod shared;
pub mod sql;
pub mod upstream;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use gateway::{DEFAULT_MAX_STATEMENT, Gateway, GatewayBuilder, Listener, unix_socket_path};
pub use service::{Outcome, PgRequest, PgResponse, PgUpstream};
pub use shared::Plaintext;
