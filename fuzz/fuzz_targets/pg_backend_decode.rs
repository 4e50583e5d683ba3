//! `decode_backend` over arbitrary bytes, `parse` of every frame: never panics, always makes
//! progress, a frame is exactly the bytes it was split from, and a frame that parses encodes
//! back to exactly those bytes. The lazy views of `RowDescription`, `DataRow` and
//! `ErrorResponse`/`NoticeResponse` iterate consistently, and received error fields can be
//! copied into an `ErrorBuilder` and sent on as a well-formed message.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sod_postgres::codec::{
    Auth, BackendFrame, BackendMessage, DataRow, ErrorBuilder, ErrorFields, Limits, RowDescription,
    decode_backend, tag,
};

mod codec_checks;
use codec_checks::{check_formats, check_oids, check_values};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let frame = match decode_backend(&mut buf, &limits) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) must not consume input");
                break;
            }
            Err(e) => {
                let _ = (e.to_string(), e.sqlstate());
                break;
            }
        };
        let start = data.len() - before;
        let read = &data[start..data.len() - buf.len()];
        check_frame(&frame, read);
    }
});

fn check_frame(frame: &BackendFrame, read: &[u8]) {
    assert_eq!(
        &frame.raw()[..],
        read,
        "a frame is the bytes it was split from"
    );
    assert_eq!(frame.len(), read.len());
    assert_eq!(frame.raw().first(), Some(&frame.tag()));
    assert_eq!(&frame.body_bytes()[..], frame.body());
    let mut copy = BytesMut::new();
    frame.encode_into(&mut copy);
    assert_eq!(&copy[..], read);
    let rebuilt = BackendFrame::new(frame.tag(), frame.body()).expect("a decoded tag is valid");
    assert_eq!(&rebuilt, frame);
    let _ = format!("{frame:?}");

    let Ok(msg) = frame.parse() else {
        return;
    };
    assert_eq!(msg.tag(), frame.tag());
    let _ = format!("{msg:?}");
    let mut out = BytesMut::new();
    msg.encode(&mut out).expect("a parsed message encodes");
    assert_eq!(
        &out[..],
        read,
        "a parsed message re-encodes to its own bytes"
    );

    let body = frame.body();
    match msg {
        BackendMessage::Authentication(auth) => {
            if let Auth::Sasl { mechanisms } = &auth {
                assert!(mechanisms.iter().all(|m| !m.is_empty()));
            }
            let _ = auth.code();
        }
        BackendMessage::RowDescription(rd) => check_row_description(rd),
        BackendMessage::DataRow(row) => check_data_row(row, body),
        BackendMessage::ErrorResponse(fields) => check_error_fields(fields, tag::ERROR_RESPONSE),
        BackendMessage::NoticeResponse(fields) => check_error_fields(fields, tag::NOTICE_RESPONSE),
        BackendMessage::ParameterDescription(oids) => check_oids(oids),
        BackendMessage::CopyInResponse(c)
        | BackendMessage::CopyOutResponse(c)
        | BackendMessage::CopyBothResponse(c) => check_formats(c.column_formats),
        _ => {}
    }
}

fn check_row_description(rd: RowDescription<'_>) {
    let fields = rd.to_vec();
    assert_eq!(
        fields.len(),
        rd.len(),
        "a validated description yields every field"
    );
    assert_eq!(rd.fields().len(), rd.len());
    assert_eq!(rd.is_empty(), fields.is_empty());
    assert_eq!(rd.fields().count(), rd.len());
    for (i, f) in fields.iter().enumerate().take(64) {
        assert_eq!(rd.get(i).as_ref(), Some(f));
    }
    assert_eq!(rd.get(fields.len()), None);
    assert_eq!(rd.into_iter().count(), rd.len());
    let _ = format!("{rd:?}");
}

fn check_data_row(row: DataRow<'_>, body: &[u8]) {
    assert_eq!(
        row.values().count(),
        row.len(),
        "a validated row yields every value"
    );
    assert_eq!(row.spans().count(), row.len());
    assert_eq!(row.span_vec().len(), row.len());
    assert_eq!(row.is_empty(), row.len() == 0);
    for (value, span) in row.values().zip(row.spans()) {
        match (value, span) {
            (None, None) => {}
            (Some(v), Some(range)) => assert_eq!(body.get(range), Some(v)),
            _ => panic!("a value and its span disagree on NULL"),
        }
    }
    for i in 0..=row.len().min(64) {
        assert_eq!(row.get(i), row.values().nth(i));
    }
    assert_eq!(row.into_iter().count(), row.len());
    check_values(row.as_values(), body);
}

fn check_error_fields(fields: ErrorFields<'_>, tag: u8) {
    let all = fields.to_vec();
    assert_eq!(fields.iter().count(), all.len());
    assert!(all.iter().all(|&(kind, _)| kind != 0));
    let _ = (
        fields.severity(),
        fields.severity_localized(),
        fields.code(),
        fields.detail(),
        fields.hint(),
    );
    let _ = format!("{fields:?}");

    // Scrubbing copies the fields into a builder and sends that on: it must be well-formed.
    let builder = ErrorBuilder::from_fields(&fields);
    let mut out = BytesMut::new();
    if tag == tag::ERROR_RESPONSE {
        builder.encode(&mut out);
    } else {
        builder.encode_notice(&mut out);
    }
    let limits = Limits {
        max_message: usize::MAX,
        ..Limits::default()
    };
    let frame = decode_backend(&mut out, &limits)
        .expect("an ErrorBuilder's message decodes")
        .expect("an ErrorBuilder's message is whole");
    assert!(out.is_empty());
    assert_eq!(frame.tag(), tag);
    let resent = match frame.parse().expect("an ErrorBuilder's message parses") {
        BackendMessage::ErrorResponse(f) | BackendMessage::NoticeResponse(f) => f,
        other => panic!("an ErrorBuilder wrote {other:?}"),
    };
    assert_eq!(resent.message(), Some(fields.message().unwrap_or_default()));
    assert_eq!(resent.detail(), fields.detail());
    assert_eq!(resent.hint(), fields.hint());
}
