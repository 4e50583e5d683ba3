//! `decode_frontend` over arbitrary bytes, `parse` of every frame: never panics, always makes
//! progress, a frame is exactly the bytes it was split from, and a frame that parses encodes
//! back to exactly those bytes. The lazy list views iterate consistently with their lengths.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sod_postgres::codec::{FrontendFrame, FrontendMessage, Limits, decode_frontend};

mod codec_checks;
use codec_checks::{check_formats, check_oids, check_values};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let frame = match decode_frontend(&mut buf, &limits) {
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

fn check_frame(frame: &FrontendFrame, read: &[u8]) {
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
    let rebuilt = FrontendFrame::new(frame.tag(), frame.body()).expect("a decoded tag is valid");
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
        FrontendMessage::Parse { param_types, .. } => check_oids(param_types),
        FrontendMessage::Bind(bind) => {
            check_formats(bind.param_formats);
            check_values(bind.params, body);
            check_formats(bind.result_formats);
        }
        FrontendMessage::FunctionCall(call) => {
            check_formats(call.arg_formats);
            check_values(call.args, body);
        }
        FrontendMessage::Password(p) => {
            assert_eq!(p.data(), body);
            let _ = p.password();
            let _ = p.password_str();
            let _ = p.sasl_initial_response();
            assert_eq!(p.sasl_response(), body);
            assert_eq!(p.gss_response(), body);
        }
        _ => {}
    }
}
