//! Entry points for the fuzz targets and property tests in this repository (the `fuzzing`
//! feature): not part of the API, may change at any time.
//!
//! [`session`] runs whole gateway sessions against a scripted server (the session-driver
//! target).

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
        crate::response::mask_data_row(masker, &plan, columns, &frame, &mut scratch, &mut out);
    }
    out
}

pub mod session;
