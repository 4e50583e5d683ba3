//! Property: masking keeps the protocol's framing. For any result set — any mix of column
//! provenances, formats and types, any rows — what the gateway writes to a masked client
//! decodes into exactly the frames that came in, each `DataRow` with as many values as it came
//! with; kept columns pass byte for byte, and redacted, hashed or nulled ones never pass.

use bytes::{BufMut as _, BytesMut};
use proptest::prelude::*;
use sod_core::masking::{Field, FieldAction, Strategy as Mask};
use sod_postgres::codec::{BackendMessage, Limits, decode_backend};
use sod_postgres::fuzzing::{FIELD_KINDS, field, masker};

fn data_row(out: &mut BytesMut, values: &[Option<Vec<u8>>]) {
    let start = out.len();
    out.put_u8(b'D');
    out.put_i32(0);
    out.put_i16(values.len() as i16);
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.extend_from_slice(v);
            }
        }
    }
    let len = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        4 => "[a-z0-9@. -]{0,30}".prop_map(|s| Some(s.into_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn masking_keeps_framing(
        columns in proptest::collection::vec(
            (0..FIELD_KINDS, 0i16..2, prop_oneof![Just(25u32), Just(23), Just(20), Just(16), Just(17)]),
            0..8,
        ),
        rows in proptest::collection::vec(proptest::collection::vec(value(), 0..10), 0..6),
    ) {
        let m = masker();
        prop_assert!(!m.is_noop());
        let fields: Vec<Field> = columns.iter().map(|(k, _, _)| field(*k)).collect();
        let formats: Vec<(i16, u32)> = columns.iter().map(|(_, f, t)| (*f, *t)).collect();
        let mut input = BytesMut::new();
        for r in &rows {
            data_row(&mut input, r);
        }
        // A frame that is not a row passes untouched.
        input.extend_from_slice(b"C\x00\x00\x00\x0dSELECT 1\x00");
        let out = sod_postgres::fuzzing::mask_frames(&m, &fields, &formats, &input);
        let plan = m.plan(&fields);
        let limits = Limits::default();
        let mut output = out.clone();
        for r in &rows {
            let frame = decode_backend(&mut output, &limits).expect("decodes").expect("a row");
            let Ok(BackendMessage::DataRow(row)) = frame.parse() else {
                panic!("not a DataRow");
            };
            let got: Vec<Option<&[u8]>> = row.values().collect();
            prop_assert_eq!(got.len(), r.len());
            for (i, (x, y)) in r.iter().zip(&got).enumerate() {
                match plan.action(i) {
                    FieldAction::Keep => prop_assert_eq!(x.as_deref(), *y),
                    FieldAction::Mask(Mask::Partial { .. }) | FieldAction::Scan => {}
                    FieldAction::Mask(_) => {
                        if let (Some(x), Some(y)) = (x, y) {
                            prop_assert!(x.len() < 5 || x.as_slice() != *y, "column {} passed", i);
                        }
                    }
                }
            }
        }
        let tail = decode_backend(&mut output, &limits).expect("decodes").expect("the tag");
        prop_assert_eq!(&tail.raw()[..], b"C\x00\x00\x00\x0dSELECT 1\x00");
        prop_assert!(output.is_empty());
    }
}
