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
//! - [`error`]: refusals as `ErrorResponse`s (SQLSTATE 42501, 28000, 28P01).

#![forbid(unsafe_code)]

mod catalog;
pub mod codec;
pub mod credentials;
pub mod error;
mod gateway;
mod link;
mod net;
mod service;
mod session;
pub mod sql;
pub mod upstream;

pub use gateway::{Gateway, GatewayBuilder, Listener, unix_socket_path};
pub use service::{Outcome, PgRequest, PgResponse, PgUpstream};
pub use session::Plaintext;

/// Entry points for the fuzz targets and property tests in this repository: not part of the
/// API, may change at any time.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;
    use sod_core::Glob;
    use sod_core::masking::{
        ColumnRef, Field, MaskProfile, MaskProfiles, Masker, Provenance, Selector, Strategy,
    };

    use crate::codec::{BackendFrame, Limits, decode_backend};

    /// A masker with one rule per strategy: columns `s.t.redact`, `s.t.partial` (keep 2),
    /// `s.t.hash` and `s.t.null`; `s.t.plain` is not sensitive.
    pub fn masker() -> Masker {
        let rule = |c: &str, s| (Selector::Column(Glob::new(&format!("s.t.{c}"))), s);
        let profile = [
            rule("redact", Strategy::Redact),
            rule("partial", Strategy::Partial { keep_last: 2 }),
            rule("hash", Strategy::Hash),
            rule("null", Strategy::Null),
        ]
        .into_iter()
        .fold(MaskProfile::new("f"), |p, (sel, s)| p.rule(sel, s));
        MaskProfiles::new([profile])
            .masker(&["f".into()])
            .unwrap_or_else(|_| Masker::none())
    }

    /// How many different fields [`field`] makes.
    pub const FIELD_KINDS: u8 = 9;

    /// One of [`FIELD_KINDS`] fields, for [`masker`]: plain and sensitive columns, computed
    /// values from a plain or a sensitive column, a constant, an unknown.
    pub fn field(selector: u8) -> Field {
        let col = |c: &str| ColumnRef::new("s", "t", c);
        let p = match selector % FIELD_KINDS {
            0 => Provenance::Column(col("plain")),
            1 => Provenance::Column(col("redact")),
            2 => Provenance::Column(col("partial")),
            3 => Provenance::Column(col("hash")),
            4 => Provenance::Column(col("null")),
            5 => Provenance::Derived(vec![col("plain")]),
            6 => Provenance::Derived(vec![col("partial")]),
            7 => Provenance::Constant,
            _ => Provenance::Unknown,
        };
        Field::new("f", p)
    }

    /// Masks every frame of `input` (backend messages) as a result set with `fields` would be,
    /// each column with the given `(format, type OID)`: what the gateway writes to a masked
    /// client. Stops at the first undecodable frame.
    pub fn mask_frames(
        masker: &Masker,
        fields: &[Field],
        columns: &[(i16, u32)],
        input: &[u8],
    ) -> BytesMut {
        let plan = masker.plan(fields);
        let limits = Limits::default();
        let mut buf = BytesMut::from(input);
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        while let Ok(Some(frame)) = decode_backend(&mut buf, &limits) {
            let frame: BackendFrame = frame;
            crate::service::mask_data_row(masker, &plan, columns, &frame, &mut scratch, &mut out);
        }
        out
    }
}
