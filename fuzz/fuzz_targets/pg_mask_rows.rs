//! DataRow masking over arbitrary row descriptions and row bytes: never panics, keeps framing
//! (as many frames out as in, each `DataRow` with as many values as it came with, an unreadable
//! one withheld as an `ErrorResponse`, other frames untouched), passes kept columns byte for byte, and never passes a masked column's value.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sod_core::masking::{Field, Strategy};
use sod_postgres::codec::{BackendMessage, Limits, decode_backend, tag};
use sod_postgres::fuzzing::{field, masker};

const TYPES: [u32; 8] = [25, 23, 20, 16, 3802, 1043, 701, 17];

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 12);
    if rest.len() < n * 3 {
        return;
    }
    let (desc, frames) = rest.split_at(n * 3);
    let fields: Vec<Field> = desc.chunks(3).map(|c| field(c[0])).collect();
    let columns: Vec<(i16, u32)> = desc
        .chunks(3)
        .map(|c| (i16::from(c[1] % 2), TYPES[usize::from(c[2] % 8)]))
        .collect();
    let m = masker();
    let out = sod_postgres::fuzzing::mask_frames(&m, &fields, &columns, frames);
    let plan = m.plan(&fields);

    // Framing: decode both sides in step.
    let limits = Limits::default();
    let mut input = BytesMut::from(frames);
    let mut output = out.clone();
    loop {
        let a = match decode_backend(&mut input, &limits) {
            Ok(Some(f)) => f,
            _ => break,
        };
        let b = decode_backend(&mut output, &limits)
            .expect("masked output decodes")
            .expect("a frame out for every frame in");
        if a.tag() == tag::DATA_ROW && a.parse().is_err() && a.raw() != b.raw() {
            // A DataRow the codec cannot read is withheld (when anything may be masked).
            assert_eq!(
                b.tag(),
                tag::ERROR_RESPONSE,
                "an unreadable row became {:?}",
                b.tag()
            );
            continue;
        }
        assert_eq!(a.tag(), b.tag());
        let (Ok(BackendMessage::DataRow(ra)), true) = (a.parse(), a.tag() == tag::DATA_ROW) else {
            // Not a DataRow, or an unreadable one where nothing is masked: passed as it came.
            assert_eq!(a.raw(), b.raw());
            continue;
        };
        let Ok(BackendMessage::DataRow(rb)) = b.parse() else {
            panic!("a DataRow came out unparseable");
        };
        let va: Vec<Option<&[u8]>> = ra.values().collect();
        let vb: Vec<Option<&[u8]>> = rb.values().collect();
        assert_eq!(va.len(), vb.len(), "value count changed");
        for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
            match plan.action(i) {
                sod_core::masking::FieldAction::Keep => assert_eq!(x, y, "kept column {i} changed"),
                sod_core::masking::FieldAction::Mask(Strategy::Partial { .. }) => {}
                sod_core::masking::FieldAction::Mask(_) => {
                    if let (Some(x), Some(y)) = (x, y) {
                        assert!(x.len() < 8 || x != y, "masked column {i} passed: {x:?}");
                    }
                }
                sod_core::masking::FieldAction::Scan => {}
            }
        }
    }
    assert!(output.is_empty(), "masked output has trailing bytes");
});
