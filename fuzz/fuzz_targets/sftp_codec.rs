//! The SFTP codec and judge over arbitrary bytes: `decode_frame` in a loop, both typed views
//! of every frame, and a judge fed the frames as a session would see them. Never panics,
//! always makes progress, whatever parses re-encodes to its own bytes, lists walk to exactly
//! their counts, and every packet the judge writes is one well-formed SFTP packet.
//!
//! The first byte steers: each of its bits, in turn, sends a frame to the judge as coming
//! from the client (0) or the server (1); a decision is allowed, refused or served masked by
//! the frame's length. The judge starts past `INIT`/`VERSION` with a working directory, so
//! the fuzzer reaches handles and masked reads quickly.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sod_core::{Refusal, RefusalCode};
use sod_ssh::sftp::codec::{
    Attrs, ClientMessage, Frame, Init, Limits, NameEntry, Names, Op, Pairs, Reply, Request,
    Response, ServerMessage, Version, decode_frame,
};
use sod_ssh::sftp::{Judge, JudgeLimits, Relay, Verdict};

fuzz_target!(|data: &[u8]| {
    let Some((&steer, data)) = data.split_first() else {
        return;
    };
    let limits = Limits { max_packet: 8192 };
    let mut judge = started();
    let mut buf = BytesMut::from(data);
    let mut turn = 0u32;
    loop {
        let before = buf.len();
        let frame = match decode_frame(&mut buf, &limits) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        };
        assert!(buf.len() < before, "progress");
        let start = data.len() - before;
        assert_eq!(&frame.raw()[..], &data[start..data.len() - buf.len()]);
        check_views(&frame);
        let from_server = steer >> (turn % 8) & 1 == 1;
        turn += 1;
        if from_server {
            match judge.response(&frame) {
                Relay::Forward => {}
                Relay::Withhold {
                    to_server,
                    to_client,
                } => {
                    to_server.iter().for_each(|p| one_packet(p, true));
                    to_client.iter().for_each(|p| one_packet(p, false));
                }
            }
        } else {
            match judge.request(&frame) {
                Verdict::Forward | Verdict::Abort(_) => {}
                Verdict::Answer { reply, .. } => one_packet(&reply, false),
                Verdict::Decide(j) => {
                    let _ = (
                        j.kind(),
                        j.text(),
                        j.objects(),
                        j.unknown_objects(),
                        j.note(),
                    );
                    let op = j.operation(sod_core::Target::new("ssh/fuzz"));
                    assert_eq!(op.kind(), j.kind());
                    match frame.len() % 3 {
                        0 => {}
                        1 => {
                            let refusal = Refusal::new(RefusalCode::PolicyDenied, "fuzz");
                            one_packet(&judge.refuse(j.id(), &refusal), false);
                        }
                        _ => {
                            let masked = judge.serve_masked(j.id(), |b: &[u8]| b.repeat(2));
                            assert_eq!(masked.is_ok(), j.reads_file());
                        }
                    }
                }
            }
        }
        // Each of the judge's own requests takes the place of one it answered, but for the
        // first REALPATH: the limit plus one.
        assert!(judge.outstanding() <= 8 + 1, "bounded");
        assert!(judge.open_handles() <= 4);
    }
});

/// A judge past `INIT` and `VERSION`, its working directory learned.
fn started() -> Judge {
    let mut judge = Judge::new(JudgeLimits {
        max_outstanding: 8,
        max_handles: 4,
        max_masked_file: 64,
        max_masked_total: 96,
        masked_read_chunk: 16,
    });
    let frame = |bytes: &[u8]| {
        let mut buf = BytesMut::from(bytes);
        decode_frame(&mut buf, &Limits::default())
            .expect("frames")
            .expect("whole")
    };
    let mut init = BytesMut::new();
    let _ = Init {
        version: 3,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut init);
    let _ = judge.request(&frame(&init));
    let mut version = BytesMut::new();
    let _ = Version {
        version: 3,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut version);
    if let Relay::Withhold {
        to_server: Some(realpath),
        ..
    } = judge.response(&frame(&version))
    {
        let id = frame(&realpath).id().expect("an id");
        let entries = [NameEntry {
            filename: "/home/fuzz".into(),
            longname: "/home/fuzz".into(),
            attrs: Attrs::EMPTY,
        }];
        let name = Response {
            id,
            reply: Reply::Name(Names::new(&entries)),
        }
        .to_bytes()
        .expect("encodes");
        let _ = judge.response(&frame(&name));
    }
    judge
}

/// Both views of a frame: whatever parses re-encodes to its bytes and walks its lists.
fn check_views(frame: &Frame) {
    let _ = format!("{frame:?}");
    if let Ok(message) = frame.client_message() {
        let mut out = BytesMut::new();
        message.encode(&mut out).expect("a parsed message encodes");
        assert_eq!(
            &out[..],
            &frame.raw()[..],
            "client message re-encodes exactly"
        );
        match message {
            ClientMessage::Init(init) => {
                assert_eq!(init.extensions.iter().count(), init.extensions.len())
            }
            ClientMessage::Request(Request { op, .. }) => {
                assert_eq!(op.packet_type(), frame.packet_type());
                if let Op::Open { attrs, .. }
                | Op::Setstat { attrs, .. }
                | Op::Fsetstat { attrs, .. }
                | Op::Mkdir { attrs, .. } = op
                {
                    check_attrs(&attrs);
                }
            }
        }
        let _ = format!("{message:?}");
    }
    if let Ok(message) = frame.server_message() {
        let mut out = BytesMut::new();
        message.encode(&mut out).expect("a parsed message encodes");
        assert_eq!(
            &out[..],
            &frame.raw()[..],
            "server message re-encodes exactly"
        );
        if let ServerMessage::Response(r) = message {
            match r.reply {
                Reply::Name(names) => {
                    assert_eq!(names.iter().count(), names.len());
                    names.iter().for_each(|n| check_attrs(&n.attrs));
                    let _ = names.single();
                }
                Reply::Attrs(attrs) => check_attrs(&attrs),
                _ => {}
            }
        }
        let _ = format!("{message:?}");
    }
}

fn check_attrs(attrs: &Attrs<'_>) {
    if let Some(ext) = attrs.extended {
        assert_eq!(ext.iter().count(), ext.len());
    }
}

/// A packet the judge wrote: exactly one frame that parses in its direction.
fn one_packet(packet: &Bytes, to_server: bool) {
    let mut buf = BytesMut::from(&packet[..]);
    let frame = decode_frame(&mut buf, &Limits::default())
        .expect("the judge writes valid frames")
        .expect("whole");
    assert!(buf.is_empty(), "exactly one packet");
    if to_server {
        assert!(matches!(
            frame.client_message(),
            Ok(ClientMessage::Request(_))
        ));
    } else {
        assert!(frame.server_message().is_ok(), "{frame:?}");
    }
}
