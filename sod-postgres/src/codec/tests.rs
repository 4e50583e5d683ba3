//! Unit tests: every message from hand-built bytes, truncation, limits and malformed bodies.

use bytes::{BufMut, BytesMut};

use super::*;

/// A tagged message built by hand, independent of the encoders.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(i32::try_from(body.len() + 4).expect("small")).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An untagged startup packet built by hand.
fn packet(body: &[u8]) -> Vec<u8> {
    let mut v = (i32::try_from(body.len() + 4).expect("small"))
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(body);
    v
}

/// Concatenates byte strings.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be16(n: i16) -> [u8; 2] {
    n.to_be_bytes()
}

fn be32(n: i32) -> [u8; 4] {
    n.to_be_bytes()
}

const L: Limits = Limits::DEFAULT;

/// Decodes `bytes` as exactly one frontend message, checking that every strict prefix asks
/// for more bytes without consuming any.
fn front(bytes: &[u8]) -> FrontendFrame {
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(bytes.get(..cut).expect("prefix"));
        assert_eq!(
            decode_frontend(&mut buf, &L).expect("a valid prefix"),
            None,
            "prefix of {cut} bytes"
        );
        assert_eq!(buf.len(), cut, "a prefix is not consumed");
    }
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frontend(&mut buf, &L)
        .expect("valid")
        .expect("complete");
    assert!(buf.is_empty());
    assert_eq!(frame.raw().as_ref(), bytes);
    assert_eq!(frame.len(), bytes.len());
    let mut out = BytesMut::new();
    frame.encode_into(&mut out);
    assert_eq!(out.as_ref(), bytes);
    frame
}

/// Like [`front`] for a backend message.
fn back(bytes: &[u8]) -> BackendFrame {
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(bytes.get(..cut).expect("prefix"));
        assert_eq!(
            decode_backend(&mut buf, &L).expect("a valid prefix"),
            None,
            "prefix of {cut} bytes"
        );
        assert_eq!(buf.len(), cut, "a prefix is not consumed");
    }
    let mut buf = BytesMut::from(bytes);
    let frame = decode_backend(&mut buf, &L)
        .expect("valid")
        .expect("complete");
    assert!(buf.is_empty());
    assert_eq!(frame.raw().as_ref(), bytes);
    assert_eq!(frame.len(), bytes.len());
    frame
}

/// Parses one frontend message and checks that re-encoding the parsed view gives its bytes.
fn parse_front(bytes: &[u8], check: impl FnOnce(FrontendMessage<'_>)) {
    let frame = front(bytes);
    let parsed = frame.parse().expect("parses");
    let mut out = BytesMut::new();
    parsed.encode(&mut out).expect("re-encodes");
    assert_eq!(out.as_ref(), bytes, "re-encoding the parsed message");
    assert_eq!(parsed.tag(), frame.tag());
    check(parsed);
}

/// Parses one backend message and checks that re-encoding the parsed view gives its bytes.
fn parse_back(bytes: &[u8], check: impl FnOnce(BackendMessage<'_>)) {
    let frame = back(bytes);
    let parsed = frame.parse().expect("parses");
    let mut out = BytesMut::new();
    parsed.encode(&mut out).expect("re-encodes");
    assert_eq!(out.as_ref(), bytes, "re-encoding the parsed message");
    assert_eq!(parsed.tag(), frame.tag());
    check(parsed);
}

fn front_err(bytes: &[u8]) -> ProtocolError {
    front(bytes).parse().expect_err("malformed")
}

fn back_err(bytes: &[u8]) -> ProtocolError {
    back(bytes).parse().expect_err("malformed")
}

fn is_malformed(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::Malformed { .. })
}

fn startup_of(bytes: &[u8]) -> Result<Option<Startup>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let before = buf.len();
    let r = decode_startup(&mut buf, &L);
    if let Ok(Some(_)) = r {
        assert_eq!(buf.len(), before - bytes_len_field(bytes));
    }
    r
}

fn bytes_len_field(bytes: &[u8]) -> usize {
    let len: [u8; 4] = bytes.get(..4).expect("len").try_into().expect("4");
    usize::try_from(i32::from_be_bytes(len)).expect("positive")
}

/// Decodes a whole startup packet, checking that every prefix asks for more.
fn startup_ok(bytes: &[u8]) -> Startup {
    for cut in 0..bytes.len() {
        assert_eq!(
            startup_of(bytes.get(..cut).expect("prefix")).expect("valid prefix"),
            None,
            "prefix of {cut} bytes"
        );
    }
    let s = startup_of(bytes).expect("valid").expect("complete");
    let mut out = BytesMut::new();
    s.encode(&mut out).expect("re-encodes");
    assert_eq!(out.as_ref(), bytes, "re-encoding the startup packet");
    s
}

// ---------------------------------------------------------------------------------------
// Startup phase

#[test]
fn startup_requests() {
    assert_eq!(startup_ok(&packet(&be32(80_877_103))), Startup::Ssl);
    assert_eq!(startup_ok(&packet(&be32(80_877_104))), Startup::GssEnc);
    let cancel = startup_ok(&packet(&cat(&[&be32(80_877_102), &be32(4242), b"abcd"])));
    assert_eq!(
        cancel,
        Startup::Cancel {
            pid: 4242,
            key: bytes::Bytes::from_static(b"abcd")
        }
    );
    assert!(
        !format!("{cancel:?}").contains("abcd"),
        "Debug hides the key"
    );
    let long_key = [7u8; 256];
    let Startup::Cancel { key, .. } =
        startup_ok(&packet(&cat(&[&be32(80_877_102), &be32(1), &long_key])))
    else {
        panic!("a cancel request");
    };
    assert_eq!(key.as_ref(), long_key.as_slice());
}

#[test]
fn startup_bad_request_lengths() {
    for body in [
        cat(&[&be32(80_877_103), b"x"]),
        cat(&[&be32(80_877_104), b"xyzw"]),
        cat(&[&be32(80_877_102), &be32(1), b"abc"]),
        cat(&[&be32(80_877_102), &be32(1), &[0u8; 257]]),
        cat(&[&be32(80_877_102)]),
    ] {
        let bytes = packet(&body);
        let err = startup_of(&bytes).expect_err("bad length");
        assert!(
            matches!(err, ProtocolError::BadLength { tag: 0, .. }),
            "{err:?}"
        );
        // Rejected from the first eight bytes, before the rest arrives.
        assert_eq!(startup_of(bytes.get(..8).expect("8")), Err(err));
    }
}

#[test]
fn startup_message() {
    let body = cat(&[
        &be32(196_608),
        b"user\0alice\0database\0db\0options\0-c x=1\0user\0bob\0empty\0\0\0",
    ]);
    let s = startup_ok(&packet(&body));
    assert_eq!(
        s,
        Startup::Startup {
            version: PROTOCOL_3_0,
            params: vec![
                ("user".into(), "alice".into()),
                ("database".into(), "db".into()),
                ("options".into(), "-c x=1".into()),
                ("user".into(), "bob".into()),
                ("empty".into(), String::new()),
            ],
        }
    );
    assert_eq!(s.param("user"), Some("alice"));
    assert_eq!(s.param("nope"), None);

    // No parameters at all, and any 3.x minor version.
    let s = startup_ok(&packet(&cat(&[&be32(196_610), b"\0"])));
    assert_eq!(
        s,
        Startup::Startup {
            version: PROTOCOL_3_2,
            params: vec![]
        }
    );
    assert_eq!(format!("{s:?}"), "Startup { version: 3.2, params: [] }");
}

#[test]
fn startup_malformed() {
    for body in [
        // No terminator at all.
        cat(&[&be32(196_608)]),
        // Missing the final terminator.
        cat(&[&be32(196_608), b"user\0alice\0"]),
        // Value without its NUL.
        cat(&[&be32(196_608), b"user\0alice"]),
        // Name without value.
        cat(&[&be32(196_608), b"user\0"]),
        // Bytes after the terminator.
        cat(&[&be32(196_608), b"user\0alice\0\0x"]),
        // Not UTF-8.
        cat(&[&be32(196_608), b"user\0al\xffice\0\0"]),
    ] {
        let err = startup_of(&packet(&body)).expect_err("malformed");
        assert!(is_malformed(&err), "{err:?}");
        assert!(
            err.to_string().starts_with("invalid startup packet: "),
            "{err}"
        );
    }
}

#[test]
fn startup_limits_and_versions() {
    // Length below 8, negative, or above the limit: refused from the first four bytes.
    for len in [0, 4, 7, -1, i32::MIN] {
        assert_eq!(
            startup_of(&be32(len)),
            Err(ProtocolError::BadLength {
                tag: 0,
                len: i64::from(len)
            })
        );
    }
    let err = startup_of(&be32(10_001)).expect_err("too large");
    assert_eq!(
        err,
        ProtocolError::TooLarge {
            tag: 0,
            len: 10_001,
            max: 10_000
        }
    );
    assert_eq!(
        err.to_string(),
        "startup packet is 10001 bytes, the limit is 10000"
    );
    // A TLS ClientHello sent without SSLRequest looks like a huge packet.
    let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    assert!(starts_with_tls_handshake(&hello));
    assert!(starts_with_tls_handshake(&[0x16]));
    assert!(!starts_with_tls_handshake(&[]));
    assert!(!starts_with_tls_handshake(&packet(&be32(80_877_103))));
    assert!(matches!(
        startup_of(&hello),
        Err(ProtocolError::TooLarge { .. })
    ));

    // Protocol 2.0, 4.0 and unknown request codes are refused once the code is in.
    for code in [0x0002_0000u32, 0x0004_0000, (1234 << 16) | 5681, 0] {
        let mut bytes = be32(1000).to_vec();
        bytes.extend_from_slice(&code.to_be_bytes());
        assert_eq!(
            startup_of(&bytes),
            Err(ProtocolError::UnsupportedProtocol(code))
        );
    }
    let err = ProtocolError::UnsupportedProtocol(0x0004_0001);
    assert_eq!(
        err.to_string(),
        "unsupported frontend protocol 4.1: only protocol 3 is supported"
    );
    assert_eq!(err.sqlstate(), "0A000");

    // A custom limit.
    let small = Limits {
        max_startup: 19,
        ..Limits::DEFAULT
    };
    let mut buf = BytesMut::from(&packet(&cat(&[&be32(196_608), b"user\0alice\0\0"]))[..]);
    assert!(matches!(
        decode_startup(&mut buf, &small),
        Err(ProtocolError::TooLarge {
            tag: 0,
            len: 20,
            max: 19
        })
    ));
}

#[test]
fn startup_encoders() {
    let mut out = BytesMut::new();
    frontend::startup(&mut out, &[("user", "alice"), ("database", "db")]).expect("encodes");
    assert_eq!(
        out.as_ref(),
        packet(&cat(&[&be32(196_608), b"user\0alice\0database\0db\0\0"]))
    );
    out.clear();
    frontend::ssl_request(&mut out);
    assert_eq!(out.as_ref(), packet(&be32(80_877_103)));
    out.clear();
    frontend::gss_enc_request(&mut out);
    assert_eq!(out.as_ref(), packet(&be32(80_877_104)));
    out.clear();
    frontend::cancel_request(&mut out, 9, b"wxyz").expect("encodes");
    assert_eq!(
        out.as_ref(),
        packet(&cat(&[&be32(80_877_102), &be32(9), b"wxyz"]))
    );

    // Failures write nothing.
    out.clear();
    out.put_slice(b"kept");
    assert!(frontend::startup(&mut out, &[("us\0er", "x")]).is_err());
    assert!(frontend::startup(&mut out, &[("user", "x\0")]).is_err());
    assert!(frontend::startup(&mut out, &[("", "x")]).is_err());
    assert!(frontend::cancel_request(&mut out, 1, b"abc").is_err());
    assert!(frontend::cancel_request(&mut out, 1, &[0; 257]).is_err());
    let bad_version = Startup::Startup {
        version: 0x0002_0000,
        params: vec![],
    };
    assert!(bad_version.encode(&mut out).is_err());
    assert_eq!(out.as_ref(), b"kept");
}

// ---------------------------------------------------------------------------------------
// Frontend messages

#[test]
fn query() {
    parse_front(&msg(b'Q', b"SELECT 1\0"), |m| {
        assert_eq!(m, FrontendMessage::Query { sql: "SELECT 1" });
    });
    parse_front(&msg(b'Q', "SELECT 'é'\0".as_bytes()), |m| {
        assert_eq!(m, FrontendMessage::Query { sql: "SELECT 'é'" });
    });
    let err = front_err(&msg(b'Q', b"SELECT 1"));
    assert_eq!(
        err.to_string(),
        "invalid message of type 'Q': query string: the string has no NUL terminator"
    );
    assert!(is_malformed(&front_err(&msg(b'Q', b"SELECT \xff\0"))));
    assert!(is_malformed(&front_err(&msg(b'Q', b"SELECT 1\0\0"))));
    assert!(is_malformed(&front_err(&msg(b'Q', b""))));
}

#[test]
fn parse_message() {
    let body = cat(&[b"s1\0SELECT $1, $2\0", &be16(2), &be32(23), &be32(0)]);
    parse_front(&msg(b'P', &body), |m| {
        let FrontendMessage::Parse {
            name,
            sql,
            param_types,
        } = m
        else {
            panic!("{m:?}");
        };
        assert_eq!((name, sql), ("s1", "SELECT $1, $2"));
        assert_eq!(param_types.to_vec(), [23, 0]);
        assert_eq!(param_types.len(), 2);
        assert_eq!(param_types.get(1), Some(0));
        assert_eq!(param_types.get(2), None);
    });
    // More types announced than present; a count read as negative; trailing bytes.
    assert!(is_malformed(&front_err(&msg(
        b'P',
        &cat(&[b"\0SELECT 1\0", &be16(2), &be32(23)])
    ))));
    assert!(is_malformed(&front_err(&msg(
        b'P',
        &cat(&[b"\0SELECT 1\0", &be16(-1)])
    ))));
    assert!(is_malformed(&front_err(&msg(
        b'P',
        &cat(&[b"\0SELECT 1\0", &be16(0), b"x"])
    ))));
    assert!(is_malformed(&front_err(&msg(b'P', b"\0SELECT 1\0"))));
}

fn bind_body(values: &[&[u8]]) -> Vec<u8> {
    let mut body = b"portal\0stmt\0".to_vec();
    body.extend_from_slice(&be16(1));
    body.extend_from_slice(&be16(1));
    body.extend_from_slice(&be16(i16::try_from(values.len()).expect("few")));
    for v in values {
        body.extend_from_slice(v);
    }
    body.extend_from_slice(&be16(2));
    body.extend_from_slice(&be16(0));
    body.extend_from_slice(&be16(1));
    body
}

#[test]
fn bind() {
    let v1 = cat(&[&be32(3), b"abc"]);
    let v2 = be32(-1);
    let v3 = be32(0);
    let body = bind_body(&[&v1, &v2, &v3]);
    let bytes = msg(b'B', &body);
    parse_front(&bytes, |m| {
        let FrontendMessage::Bind(b) = m else {
            panic!("{m:?}");
        };
        assert_eq!((b.portal, b.statement), ("portal", "stmt"));
        assert_eq!(b.param_formats.to_vec(), [1]);
        assert_eq!(b.param_formats.format_of(2), Some(1));
        assert_eq!(b.params.len(), 3);
        assert_eq!(b.params.to_vec(), [Some(&b"abc"[..]), None, Some(&b""[..])]);
        assert_eq!(b.params.get(1), Some(None));
        assert_eq!(b.params.get(3), None);
        assert_eq!(b.result_formats.to_vec(), [0, 1]);
        assert_eq!(b.result_formats.format_of(1), Some(1));
        assert_eq!(b.result_formats.format_of(2), None);
        // Spans point into the body.
        let spans: Vec<_> = b.params.spans().collect();
        let first = spans.first().cloned().flatten().expect("a value");
        assert_eq!(body.get(first), Some(&b"abc"[..]));
        assert_eq!(spans.get(1), Some(&None));
        assert!(!format!("{m:?}").contains("abc"), "Debug hides values");
    });
    // Formats::format_of with no codes is text.
    assert_eq!(Formats::default().format_of(5), Some(0));

    // Negative length other than -1, a value running past the end, too many values.
    for bad in [
        bind_body(&[&be32(-2)]),
        bind_body(&[&cat(&[&be32(10), b"abc"])]),
        bind_body(&[&be32(i32::MIN)]),
    ] {
        let err = front_err(&msg(b'B', &bad));
        assert!(is_malformed(&err), "{err:?}");
    }
    let mut many = b"\0\0".to_vec();
    many.extend_from_slice(&be16(0));
    many.extend_from_slice(&be16(-1)); // 65535 values announced
    many.extend_from_slice(&be32(-1));
    many.extend_from_slice(&be16(0));
    let err = front_err(&msg(b'B', &many));
    assert_eq!(
        err,
        ProtocolError::Malformed {
            tag: b'B',
            field: "parameter values",
            what: "more values announced than the message holds"
        }
    );
}

#[test]
fn describe_execute_close() {
    parse_front(&msg(b'D', b"Sname\0"), |m| {
        assert_eq!(
            m,
            FrontendMessage::Describe {
                target: Target::Statement,
                name: "name"
            }
        );
    });
    parse_front(&msg(b'D', b"P\0"), |m| {
        assert_eq!(
            m,
            FrontendMessage::Describe {
                target: Target::Portal,
                name: ""
            }
        );
    });
    parse_front(&msg(b'C', b"Pp\0"), |m| {
        assert_eq!(
            m,
            FrontendMessage::Close {
                target: Target::Portal,
                name: "p"
            }
        );
    });
    parse_front(&msg(b'E', &cat(&[b"p\0", &be32(10)])), |m| {
        assert_eq!(
            m,
            FrontendMessage::Execute {
                portal: "p",
                max_rows: 10
            }
        );
    });
    assert!(is_malformed(&front_err(&msg(b'D', b"Xname\0"))));
    assert!(is_malformed(&front_err(&msg(b'C', b""))));
    assert!(is_malformed(&front_err(&msg(b'E', b"p\0\0\0"))));
}

#[test]
fn bodiless_messages() {
    parse_front(&msg(b'S', b""), |m| assert_eq!(m, FrontendMessage::Sync));
    parse_front(&msg(b'H', b""), |m| assert_eq!(m, FrontendMessage::Flush));
    parse_front(&msg(b'X', b""), |m| {
        assert_eq!(m, FrontendMessage::Terminate)
    });
    parse_front(&msg(b'c', b""), |m| {
        assert_eq!(m, FrontendMessage::CopyDone)
    });
    for tag in [b'S', b'H', b'X', b'c'] {
        assert!(is_malformed(&front_err(&msg(tag, b"x"))));
    }
}

#[test]
fn copy_messages() {
    parse_front(&msg(b'd', b"1\t2\n"), |m| {
        assert_eq!(m, FrontendMessage::CopyData(b"1\t2\n"));
    });
    parse_front(&msg(b'd', b""), |m| {
        assert_eq!(m, FrontendMessage::CopyData(b""))
    });
    parse_front(&msg(b'f', b"oops\0"), |m| {
        assert_eq!(m, FrontendMessage::CopyFail { message: "oops" });
    });
}

#[test]
fn function_call() {
    let body = cat(&[
        &be32(1598),
        &be16(0),
        &be16(2),
        &be32(1),
        b"x",
        &be32(-1),
        &be16(1),
    ]);
    parse_front(&msg(b'F', &body), |m| {
        let FrontendMessage::FunctionCall(call) = m else {
            panic!("{m:?}");
        };
        assert_eq!(call.oid, 1598);
        assert!(call.arg_formats.is_empty());
        assert_eq!(call.args.to_vec(), [Some(&b"x"[..]), None]);
        assert_eq!(call.result_format, 1);
    });
    assert!(is_malformed(&front_err(&msg(
        b'F',
        &cat(&[&be32(1598), &be16(0), &be16(0)])
    ))));
}

fn with_password(bytes: &[u8], check: impl FnOnce(PasswordMessage<'_>)) {
    let frame = front(bytes);
    let Ok(FrontendMessage::Password(p)) = frame.parse() else {
        panic!("a password message");
    };
    check(p);
}

#[test]
fn password_messages() {
    parse_front(&msg(b'p', b"hunter2\0"), |m| {
        let FrontendMessage::Password(p) = m else {
            panic!("{m:?}");
        };
        assert_eq!(p.password_str(), Ok("hunter2"));
        assert_eq!(p.password(), Ok(&b"hunter2"[..]));
        assert_eq!(p.data(), b"hunter2\0");
        assert!(
            !format!("{m:?}").contains("hunter2"),
            "Debug hides passwords"
        );
    });
    let frame = front(&msg(b'p', b"hunter2\0"));
    assert!(!format!("{frame:?}").contains("hunter2"));

    with_password(&msg(b'p', b"pw\xff\0"), |p| {
        assert_eq!(p.password(), Ok(&b"pw\xff"[..]));
        assert!(is_malformed(&p.password_str().expect_err("not UTF-8")));
    });

    for bad in [&b"pw"[..], b"pw\0x", b""] {
        with_password(&msg(b'p', bad), |p| {
            assert!(p.password().is_err(), "{bad:?}")
        });
    }

    let initial = cat(&[b"SCRAM-SHA-256\0", &be32(5), b"n,,n="]);
    with_password(&msg(b'p', &initial), |p| {
        assert_eq!(
            p.sasl_initial_response(),
            Ok(("SCRAM-SHA-256", Some(&b"n,,n="[..])))
        );
        assert_eq!(p.sasl_response(), initial.as_slice());
        assert_eq!(p.gss_response(), initial.as_slice());
    });
    let no_data = cat(&[b"SCRAM-SHA-256\0", &be32(-1)]);
    with_password(&msg(b'p', &no_data), |p| {
        assert_eq!(p.sasl_initial_response(), Ok(("SCRAM-SHA-256", None)));
    });
    for bad in [
        cat(&[b"SCRAM-SHA-256\0", &be32(6), b"n,,n="]),
        cat(&[b"SCRAM-SHA-256\0", &be32(-2)]),
        cat(&[b"SCRAM-SHA-256\0", &be32(0), b"x"]),
        b"SCRAM-SHA-256".to_vec(),
    ] {
        with_password(&msg(b'p', &bad), |p| {
            assert!(p.sasl_initial_response().is_err(), "{bad:?}");
        });
    }
}

#[test]
fn frontend_framing_errors() {
    // Unknown types are refused on their first byte; so are backend-only types.
    for tag in [b'Z', b'T', b'R', 0, b'q', 0xff] {
        let mut buf = BytesMut::from(&[tag][..]);
        assert_eq!(
            decode_frontend(&mut buf, &L),
            Err(ProtocolError::UnknownMessage(tag))
        );
    }
    assert_eq!(
        ProtocolError::UnknownMessage(1).to_string(),
        "unknown message type 0x01"
    );
    assert_eq!(
        ProtocolError::UnknownMessage(b'z').to_string(),
        "unknown message type 'z'"
    );
    // Lengths below four.
    for len in [0, 3, -1, i32::MIN] {
        let mut buf = BytesMut::from(&cat(&[b"Q", &be32(len)])[..]);
        assert_eq!(
            decode_frontend(&mut buf, &L),
            Err(ProtocolError::BadLength {
                tag: b'Q',
                len: i64::from(len)
            })
        );
    }
    // Too large: refused from the header alone.
    let mut buf = BytesMut::from(&cat(&[b"Q", &be32(20_000_000)])[..]);
    let err = decode_frontend(&mut buf, &L).expect_err("too large");
    assert_eq!(
        err.to_string(),
        "message of type 'Q' is 20000000 bytes, the limit is 16777216"
    );
    assert_eq!(err.sqlstate(), "08P01");
    // Small message types have PostgreSQL's small limit; passwords the auth limit.
    for (tag, len, max) in [
        (b'S', 10_001, 10_000),
        (b'D', 10_001, 10_000),
        (b'E', 10_001, 10_000),
        (b'C', 10_001, 10_000),
        (b'f', 10_001, 10_000),
        (b'p', 65_536, 65_535),
    ] {
        let mut buf = BytesMut::from(&cat(&[&[tag], &be32(len)])[..]);
        assert_eq!(
            decode_frontend(&mut buf, &L),
            Err(ProtocolError::TooLarge {
                tag,
                len: usize::try_from(len).expect("positive"),
                max
            })
        );
    }
    // A lower configured limit wins; exactly the limit passes.
    let tiny = Limits {
        max_message: 13,
        ..Limits::DEFAULT
    };
    let mut buf = BytesMut::from(&msg(b'Q', b"SELECT 1\0")[..]);
    assert!(decode_frontend(&mut buf, &tiny).expect("fits").is_some());
    let mut buf = BytesMut::from(&msg(b'Q', b"SELECT 10\0")[..]);
    assert_eq!(
        decode_frontend(&mut buf, &tiny),
        Err(ProtocolError::TooLarge {
            tag: b'Q',
            len: 14,
            max: 13
        })
    );
    let mut buf = BytesMut::from(&msg(b'S', b"")[..]);
    assert_eq!(
        decode_frontend(
            &mut buf,
            &Limits {
                max_message: 3,
                ..Limits::DEFAULT
            }
        ),
        Err(ProtocolError::TooLarge {
            tag: b'S',
            len: 4,
            max: 3
        })
    );
}

#[test]
fn several_frontend_messages_in_one_buffer() {
    let mut wire = BytesMut::new();
    frontend::parse(&mut wire, "", "SELECT $1", &[25]).expect("encodes");
    frontend::bind(&mut wire, "", "", &[], &[Some(b"hi")], &[]).expect("encodes");
    frontend::describe(&mut wire, Target::Portal, "").expect("encodes");
    frontend::execute(&mut wire, "", 0).expect("encodes");
    frontend::sync(&mut wire);
    wire.put_slice(b"Q\0\0"); // the start of the next message
    let mut tags = Vec::new();
    while let Some(frame) = decode_frontend(&mut wire, &L).expect("valid") {
        frame.parse().expect("parses");
        tags.push(frame.tag());
    }
    assert_eq!(tags, b"PBDES");
    assert_eq!(wire.as_ref(), b"Q\0\0", "the partial message stays");
}

#[test]
fn frame_accessors() {
    let frame = front(&msg(b'Q', b"SELECT 1\0"));
    assert!(frame.is(tag::QUERY));
    assert!(!frame.is(tag::PARSE));
    assert_eq!(frame.body(), b"SELECT 1\0");
    assert_eq!(frame.body_bytes().as_ref(), b"SELECT 1\0");
    assert_eq!(format!("{frame:?}"), "FrontendFrame { tag: 'Q', len: 9 }");
    let built = FrontendFrame::new(b'Q', b"SELECT 1\0").expect("a frame");
    assert_eq!(built, frame);
    assert_eq!(built.clone().into_raw(), frame.raw().clone());
    assert_eq!(
        FrontendFrame::new(b'Z', b""),
        Err(ProtocolError::UnknownMessage(b'Z'))
    );

    let frame = back(&msg(b'Z', b"I"));
    assert!(frame.is(tag::READY_FOR_QUERY));
    assert_eq!(frame.body_bytes().as_ref(), b"I");
    assert_eq!(BackendFrame::new(b'Z', b"I").expect("a frame"), frame);
    assert_eq!(
        BackendFrame::new(b'Q', b""),
        Err(ProtocolError::UnknownMessage(b'Q'))
    );
    assert_eq!(format!("{frame:?}"), "BackendFrame { tag: 'Z', len: 1 }");
}

#[test]
fn frontend_encoders() {
    let mut out = BytesMut::new();
    frontend::query(&mut out, "SELECT 1").expect("encodes");
    assert_eq!(out.as_ref(), msg(b'Q', b"SELECT 1\0"));
    out.clear();
    frontend::password(&mut out, b"pw").expect("encodes");
    assert_eq!(out.as_ref(), msg(b'p', b"pw\0"));
    out.clear();
    frontend::sasl_initial_response(&mut out, "SCRAM-SHA-256", Some(b"n,,")).expect("encodes");
    assert_eq!(
        out.as_ref(),
        msg(b'p', &cat(&[b"SCRAM-SHA-256\0", &be32(3), b"n,,"]))
    );
    out.clear();
    frontend::sasl_response(&mut out, b"c=biws").expect("encodes");
    assert_eq!(out.as_ref(), msg(b'p', b"c=biws"));
    out.clear();
    frontend::close(&mut out, Target::Statement, "s").expect("encodes");
    assert_eq!(out.as_ref(), msg(b'C', b"Ss\0"));
    out.clear();
    frontend::flush(&mut out);
    frontend::terminate(&mut out);
    frontend::copy_done(&mut out);
    frontend::copy_data(&mut out, b"x").expect("encodes");
    frontend::copy_fail(&mut out, "no").expect("encodes");
    assert_eq!(
        out.as_ref(),
        cat(&[
            &msg(b'H', b""),
            &msg(b'X', b""),
            &msg(b'c', b""),
            &msg(b'd', b"x"),
            &msg(b'f', b"no\0")
        ])
    );
    out.clear();
    frontend::function_call(&mut out, 7, &[1], &[None], 0).expect("encodes");
    assert_eq!(
        out.as_ref(),
        msg(
            b'F',
            &cat(&[&be32(7), &be16(1), &be16(1), &be16(1), &be32(-1), &be16(0)])
        )
    );

    // Failures leave what was written before intact and add nothing.
    out.clear();
    frontend::sync(&mut out);
    let before = out.clone();
    assert!(frontend::query(&mut out, "SELECT '\0'").is_err());
    assert!(frontend::password(&mut out, b"a\0b").is_err());
    assert!(frontend::parse(&mut out, "s\0", "SELECT 1", &[]).is_err());
    assert!(frontend::parse(&mut out, "", "SELECT 1", &[0; 65_536]).is_err());
    assert!(frontend::bind(&mut out, "", "s\0", &[], &[], &[]).is_err());
    let too_many: Vec<Option<&[u8]>> = vec![None; 65_536];
    let err = frontend::bind(&mut out, "", "", &[], &too_many, &[]).expect_err("too many");
    assert_eq!(
        err.to_string(),
        "cannot encode parameter values: more than 65535 entries"
    );
    assert!(frontend::bind(&mut out, "", "", &[0; 65_536], &[], &[]).is_err());
    assert!(frontend::describe(&mut out, Target::Portal, "\0").is_err());
    assert!(frontend::execute(&mut out, "\0", 0).is_err());
    assert!(frontend::copy_fail(&mut out, "\0").is_err());
    assert!(frontend::sasl_initial_response(&mut out, "M\0", None).is_err());
    assert_eq!(out, before);
    // 65535 parameters is allowed, as in PostgreSQL.
    let max: Vec<Option<&[u8]>> = vec![None; 65_535];
    frontend::bind(&mut out, "", "", &[], &max, &[]).expect("65535 parameters");
    let frame = decode_frontend(&mut out.split_off(before.len()), &L)
        .expect("valid")
        .expect("complete");
    let Ok(FrontendMessage::Bind(b)) = frame.parse() else {
        panic!("a bind");
    };
    assert_eq!(b.params.len(), 65_535);
    assert!(b.params.iter().all(|v| v.is_none()));
}

// ---------------------------------------------------------------------------------------
// Backend messages

fn auth(body: &[u8]) -> Vec<u8> {
    msg(b'R', body)
}

#[test]
fn authentication() {
    let cases: Vec<(Vec<u8>, Auth<'_>)> = vec![
        (auth(&be32(0)), Auth::Ok),
        (auth(&be32(2)), Auth::KerberosV5),
        (auth(&be32(3)), Auth::CleartextPassword),
        (
            auth(&cat(&[&be32(5), b"salt"])),
            Auth::Md5Password { salt: *b"salt" },
        ),
        (auth(&be32(7)), Auth::Gss),
        (auth(&cat(&[&be32(8), b"tok"])), Auth::GssContinue(b"tok")),
        (auth(&be32(9)), Auth::Sspi),
        (
            auth(&cat(&[&be32(10), b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"])),
            Auth::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
            },
        ),
        (
            auth(&cat(&[&be32(11), b"r=abc"])),
            Auth::SaslContinue(b"r=abc"),
        ),
        (
            auth(&cat(&[&be32(12), b"v=xyz"])),
            Auth::SaslFinal(b"v=xyz"),
        ),
    ];
    for (bytes, expected) in cases {
        let code = expected.code();
        parse_back(&bytes, |m| {
            assert_eq!(m, BackendMessage::Authentication(expected.clone()));
        });
        let mut out = BytesMut::new();
        backend::authentication(&mut out, &expected).expect("encodes");
        assert_eq!(out.as_ref(), bytes, "auth code {code}");
    }
    let mut out = BytesMut::new();
    backend::authentication_ok(&mut out);
    backend::authentication_cleartext_password(&mut out);
    backend::authentication_md5_password(&mut out, *b"salt");
    assert_eq!(
        out.as_ref(),
        cat(&[
            &auth(&be32(0)),
            &auth(&be32(3)),
            &auth(&cat(&[&be32(5), b"salt"]))
        ])
    );

    assert_eq!(
        back_err(&auth(&be32(6))),
        ProtocolError::UnsupportedAuthentication(6)
    );
    assert_eq!(
        back_err(&auth(&be32(-1))),
        ProtocolError::UnsupportedAuthentication(-1)
    );
    for bad in [
        auth(b""),
        auth(&be32(0)[..3]),
        auth(&cat(&[&be32(0), b"x"])),
        auth(&cat(&[&be32(5), b"sal"])),
        auth(&cat(&[&be32(5), b"salts"])),
        auth(&cat(&[&be32(10), b"SCRAM-SHA-256\0"])),
        auth(&cat(&[&be32(10), b"SCRAM-SHA-256"])),
        auth(&cat(&[&be32(10), b"SCRAM\0\0x"])),
    ] {
        assert!(is_malformed(&back_err(&bad)), "{bad:?}");
    }
    let mut out = BytesMut::new();
    assert!(
        backend::authentication(
            &mut out,
            &Auth::Sasl {
                mechanisms: vec![""]
            }
        )
        .is_err()
    );
    assert!(out.is_empty());
}

#[test]
fn backend_key_data_and_parameters() {
    parse_back(&msg(b'K', &cat(&[&be32(77), b"abcd"])), |m| {
        assert_eq!(
            m,
            BackendMessage::BackendKeyData {
                pid: 77,
                key: b"abcd"
            }
        );
    });
    let long = [1u8; 256];
    parse_back(&msg(b'K', &cat(&[&be32(1), &long])), |m| {
        assert_eq!(m, BackendMessage::BackendKeyData { pid: 1, key: &long });
    });
    assert!(is_malformed(&back_err(&msg(
        b'K',
        &cat(&[&be32(1), b"abc"])
    ))));
    assert!(is_malformed(&back_err(&msg(
        b'K',
        &cat(&[&be32(1), &[0u8; 257]])
    ))));
    let mut out = BytesMut::new();
    assert!(backend::backend_key_data(&mut out, 1, b"abc").is_err());
    assert!(out.is_empty());

    parse_back(&msg(b'S', b"client_encoding\0UTF8\0"), |m| {
        assert_eq!(
            m,
            BackendMessage::ParameterStatus {
                name: "client_encoding",
                value: "UTF8"
            }
        );
    });
    assert!(is_malformed(&back_err(&msg(
        b'S',
        b"client_encoding\0UTF8"
    ))));
    assert!(is_malformed(&back_err(&msg(b'S', b"a\0b\0c"))));
}

#[test]
fn ready_for_query() {
    for (b, status) in [
        (b'I', TransactionStatus::Idle),
        (b'T', TransactionStatus::InBlock),
        (b'E', TransactionStatus::Failed),
    ] {
        parse_back(&msg(b'Z', &[b]), |m| {
            assert_eq!(m, BackendMessage::ReadyForQuery { status });
        });
        let mut out = BytesMut::new();
        backend::ready_for_query(&mut out, status);
        assert_eq!(out.as_ref(), msg(b'Z', &[b]));
    }
    assert!(is_malformed(&back_err(&msg(b'Z', b"X"))));
    assert!(is_malformed(&back_err(&msg(b'Z', b""))));
    assert!(is_malformed(&back_err(&msg(b'Z', b"II"))));
}

fn field_bytes(name: &str, table: i32, col: i16, ty: i32, size: i16, md: i32, fmt: i16) -> Vec<u8> {
    cat(&[
        name.as_bytes(),
        b"\0",
        &be32(table),
        &be16(col),
        &be32(ty),
        &be16(size),
        &be32(md),
        &be16(fmt),
    ])
}

#[test]
fn row_description() {
    let body = cat(&[
        &be16(2),
        &field_bytes("id", 16_384, 1, 23, 4, -1, 0),
        &field_bytes("email", 16_384, 2, 25, -1, -1, 1),
    ]);
    parse_back(&msg(b'T', &body), |m| {
        let BackendMessage::RowDescription(rd) = m else {
            panic!("{m:?}");
        };
        assert_eq!(rd.len(), 2);
        let expected = [
            FieldDescription {
                name: "id",
                table_oid: 16_384,
                column: 1,
                type_oid: 23,
                type_size: 4,
                type_modifier: -1,
                format: 0,
            },
            FieldDescription {
                name: "email",
                table_oid: 16_384,
                column: 2,
                type_oid: 25,
                type_size: -1,
                type_modifier: -1,
                format: 1,
            },
        ];
        // Re-iterable, as often as needed.
        for _ in 0..3 {
            assert_eq!(rd.fields().collect::<Vec<_>>(), expected);
        }
        assert_eq!(rd.fields().len(), 2);
        assert_eq!(rd.get(1), expected.get(1).copied());
        assert_eq!(rd.get(2), None);
        assert_eq!(rd.into_iter().count(), 2);
        let mut out = BytesMut::new();
        backend::row_description(&mut out, &expected).expect("encodes");
        assert_eq!(out.as_ref(), msg(b'T', &body));
    });
    parse_back(&msg(b'T', &be16(0)), |m| {
        let BackendMessage::RowDescription(rd) = m else {
            panic!("{m:?}");
        };
        assert!(rd.is_empty());
        assert_eq!(rd.fields().next(), None);
    });
    for bad in [
        cat(&[&be16(3), &field_bytes("id", 1, 1, 23, 4, -1, 0)]),
        cat(&[&be16(-1), &field_bytes("id", 1, 1, 23, 4, -1, 0)]),
        cat(&[&be16(1), b"id"]),
        cat(&[&be16(1), &field_bytes("id", 1, 1, 23, 4, -1, 0), b"x"]),
        cat(&[&be16(1), b"i\xffd\0", &[0u8; 18]]),
        cat(&[&be16(1), b"id\0", &[0u8; 17]]),
        Vec::new(),
    ] {
        assert!(is_malformed(&back_err(&msg(b'T', &bad))), "{bad:?}");
    }
}

#[test]
fn data_row() {
    let body = cat(&[
        &be16(4),
        &be32(2),
        b"42",
        &be32(-1),
        &be32(0),
        &be32(17),
        b"alice@example.com",
    ]);
    let frame = back(&msg(b'D', &body));
    let Ok(BackendMessage::DataRow(row)) = frame.parse() else {
        panic!("a data row");
    };
    assert_eq!(row.len(), 4);
    let expected: [Option<&[u8]>; 4] = [Some(b"42"), None, Some(b""), Some(b"alice@example.com")];
    assert_eq!(row.values().collect::<Vec<_>>(), expected);
    assert_eq!(row.get(3), Some(Some(&b"alice@example.com"[..])));
    assert_eq!(row.get(4), None);
    // Spans index the frame's body, so values can be sliced out of it without copying.
    let body_bytes = frame.body_bytes();
    let sliced: Vec<Option<&[u8]>> = row
        .spans()
        .map(|s| s.map(|r| body_bytes.get(r).expect("in range")))
        .collect();
    assert_eq!(sliced, expected);
    assert_eq!(row.span_vec().first(), Some(&Some(6..8)));
    assert_eq!(row.as_values().offset(), 2);
    assert!(!format!("{row:?}").contains("alice"), "Debug hides values");
    let zero_copy = body_bytes.slice(row.span_vec().get(3).cloned().flatten().expect("a value"));
    assert_eq!(zero_copy.as_ref(), b"alice@example.com");

    // Rewriting the row through the encoder.
    let mut out = BytesMut::new();
    backend::data_row_iter(
        &mut out,
        row.values()
            .enumerate()
            .map(|(i, v)| if i == 3 { Some(&b"***"[..]) } else { v }),
    )
    .expect("encodes");
    let masked = back(&out);
    let Ok(BackendMessage::DataRow(masked)) = masked.parse() else {
        panic!("a data row");
    };
    assert_eq!(masked.get(3), Some(Some(&b"***"[..])));
    out.clear();
    backend::data_row(&mut out, &expected).expect("encodes");
    assert_eq!(out.as_ref(), msg(b'D', &body));

    for bad in [
        cat(&[&be16(1), &be32(-2)]),
        cat(&[&be16(1), &be32(5), b"abc"]),
        cat(&[&be16(2), &be32(1), b"a"]),
        cat(&[&be16(-1), &be32(-1)]),
        cat(&[&be16(1), &be32(1), b"ab"]),
        cat(&[&be16(1), &be32(i32::MAX), b"ab"]),
        vec![0],
    ] {
        assert!(is_malformed(&back_err(&msg(b'D', &bad))), "{bad:?}");
    }
    let mut out = BytesMut::new();
    let too_many: Vec<Option<&[u8]>> = vec![None; 65_536];
    assert!(backend::data_row(&mut out, &too_many).is_err());
    assert!(out.is_empty());
}

#[test]
fn command_results() {
    parse_back(&msg(b'C', b"SELECT 3\0"), |m| {
        assert_eq!(m, BackendMessage::CommandComplete { tag: "SELECT 3" });
    });
    assert!(is_malformed(&back_err(&msg(b'C', b"SELECT 3"))));
    let simple: [(u8, BackendMessage<'_>); 7] = [
        (b'I', BackendMessage::EmptyQueryResponse),
        (b'1', BackendMessage::ParseComplete),
        (b'2', BackendMessage::BindComplete),
        (b'3', BackendMessage::CloseComplete),
        (b'n', BackendMessage::NoData),
        (b's', BackendMessage::PortalSuspended),
        (b'c', BackendMessage::CopyDone),
    ];
    for (tag, expected) in simple {
        parse_back(&msg(tag, b""), |m| assert_eq!(m, expected));
        assert!(is_malformed(&back_err(&msg(tag, b"x"))));
    }
    let mut out = BytesMut::new();
    backend::command_complete(&mut out, "INSERT 0 1").expect("encodes");
    backend::empty_query_response(&mut out);
    backend::parse_complete(&mut out);
    backend::bind_complete(&mut out);
    backend::close_complete(&mut out);
    backend::no_data(&mut out);
    backend::portal_suspended(&mut out);
    backend::copy_done(&mut out);
    assert_eq!(
        out.as_ref(),
        cat(&[
            &msg(b'C', b"INSERT 0 1\0"),
            &msg(b'I', b""),
            &msg(b'1', b""),
            &msg(b'2', b""),
            &msg(b'3', b""),
            &msg(b'n', b""),
            &msg(b's', b""),
            &msg(b'c', b""),
        ])
    );
}

#[test]
fn error_and_notice_responses() {
    let body =
        b"SERROR\0VERROR\0C42P01\0Mrelation \"t\" does not exist\0P15\0Fparse_relation.c\0\0";
    parse_back(&msg(b'E', body), |m| {
        let BackendMessage::ErrorResponse(f) = m else {
            panic!("{m:?}");
        };
        assert_eq!(f.severity(), Some("ERROR"));
        assert_eq!(f.severity_localized(), Some("ERROR"));
        assert_eq!(f.code(), Some("42P01"));
        assert_eq!(f.message(), Some("relation \"t\" does not exist"));
        assert_eq!(f.detail(), None);
        assert_eq!(f.hint(), None);
        assert_eq!(f.get(field::POSITION), Some("15"));
        assert_eq!(f.iter().count(), 6);
        assert_eq!(f.to_vec().first(), Some(&(b'S', "ERROR")));
        let owned = ErrorBuilder::from_fields(&f);
        assert_eq!(owned.severity, Severity::Error);
        assert_eq!(owned.code, "42P01");
        assert_eq!(owned.position, Some(15));
        assert_eq!(
            owned.other,
            vec![(field::FILE, "parse_relation.c".to_owned())]
        );
        let mut out = BytesMut::new();
        owned.encode(&mut out);
        assert_eq!(out.as_ref(), msg(b'E', body));
    });
    // A localized server without V.
    parse_back(&msg(b'N', b"SAVERTISSEMENT\0C01000\0Mattention\0\0"), |m| {
        let BackendMessage::NoticeResponse(f) = m else {
            panic!("{m:?}");
        };
        assert_eq!(f.severity(), Some("AVERTISSEMENT"));
        assert_eq!(ErrorBuilder::from_fields(&f).severity, Severity::Error);
    });
    parse_back(&msg(b'E', b"\0"), |m| {
        let BackendMessage::ErrorResponse(f) = m else {
            panic!("{m:?}");
        };
        assert_eq!(f.iter().next(), None);
        assert_eq!(f.code(), None);
    });
    for bad in [
        &b""[..],
        b"SERROR\0",
        b"SERROR",
        b"SERROR\0\0x",
        b"SER\xffROR\0\0",
        b"S",
    ] {
        assert!(is_malformed(&back_err(&msg(b'E', bad))), "{bad:?}");
        assert!(is_malformed(&back_err(&msg(b'N', bad))), "{bad:?}");
    }
}

#[test]
fn error_builder() {
    let b = ErrorBuilder::new(Severity::Fatal, "28000", "no")
        .detail("d")
        .hint("h")
        .position(3)
        .field(field::TABLE, "t");
    let mut out = BytesMut::new();
    b.encode(&mut out);
    assert_eq!(
        out.as_ref(),
        msg(b'E', b"SFATAL\0VFATAL\0C28000\0Mno\0Dd\0Hh\0P3\0tt\0\0")
    );
    out.clear();
    backend::notice_response(
        &mut out,
        &ErrorBuilder::new(Severity::Warning, "01000", "w"),
    );
    assert_eq!(
        out.as_ref(),
        msg(b'N', b"SWARNING\0VWARNING\0C01000\0Mw\0\0")
    );
    out.clear();
    backend::error_response(&mut out, &ErrorBuilder::error("42501", "denied"));
    assert_eq!(
        out.as_ref(),
        msg(b'E', b"SERROR\0VERROR\0C42501\0Mdenied\0\0")
    );

    // Never fails: NULs are replaced, bad codes become XX000, reserved kinds are skipped.
    let mut odd = ErrorBuilder::error("nope", "a\0b");
    odd.other = vec![
        (0, "x".into()),
        (field::CODE, "y".into()),
        (field::WHERE, "\0".into()),
    ];
    out.clear();
    odd.encode(&mut out);
    let frame = back(&out);
    let Ok(BackendMessage::ErrorResponse(f)) = frame.parse() else {
        panic!("an error response");
    };
    assert_eq!(f.code(), Some("XX000"));
    assert_eq!(f.message(), Some("a\u{fffd}b"));
    assert_eq!(f.get(field::WHERE), Some("\u{fffd}"));
    assert_eq!(f.iter().count(), 5);

    let protocol = ErrorBuilder::protocol(&ProtocolError::UnknownMessage(b'z'));
    assert_eq!(protocol.severity, Severity::Fatal);
    assert_eq!(protocol.code, "08P01");
    assert_eq!(protocol.message, "unknown message type 'z'");
    for s in [
        Severity::Error,
        Severity::Fatal,
        Severity::Panic,
        Severity::Warning,
        Severity::Notice,
        Severity::Debug,
        Severity::Info,
        Severity::Log,
    ] {
        assert_eq!(Severity::from_name(s.as_str()), Some(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(Severity::from_name("error"), None);
}

#[test]
fn notification_and_parameter_description() {
    parse_back(&msg(b'A', &cat(&[&be32(9), b"chan\0payload\0"])), |m| {
        assert_eq!(
            m,
            BackendMessage::NotificationResponse {
                pid: 9,
                channel: "chan",
                payload: "payload"
            }
        );
    });
    assert!(is_malformed(&back_err(&msg(
        b'A',
        &cat(&[&be32(9), b"chan\0"])
    ))));
    parse_back(&msg(b't', &cat(&[&be16(2), &be32(23), &be32(25)])), |m| {
        let BackendMessage::ParameterDescription(oids) = m else {
            panic!("{m:?}");
        };
        assert_eq!(oids.to_vec(), [23, 25]);
        assert_eq!(format!("{oids:?}"), "[23, 25]");
    });
    assert!(is_malformed(&back_err(&msg(
        b't',
        &cat(&[&be16(2), &be32(23)])
    ))));
    let mut out = BytesMut::new();
    backend::notification_response(&mut out, 9, "chan", "payload").expect("encodes");
    backend::parameter_description(&mut out, &[23, 25]).expect("encodes");
    assert_eq!(
        out.as_ref(),
        cat(&[
            &msg(b'A', &cat(&[&be32(9), b"chan\0payload\0"])),
            &msg(b't', &cat(&[&be16(2), &be32(23), &be32(25)]))
        ])
    );
}

#[test]
fn copy_responses() {
    for tag in [b'G', b'H', b'W'] {
        let body = cat(&[&[1], &be16(2), &be16(1), &be16(1)]);
        parse_back(&msg(tag, &body), |m| {
            let c = match m {
                BackendMessage::CopyInResponse(c)
                | BackendMessage::CopyOutResponse(c)
                | BackendMessage::CopyBothResponse(c) => c,
                other => panic!("{other:?}"),
            };
            assert_eq!(c.format, 1);
            assert_eq!(c.column_formats.to_vec(), [1, 1]);
        });
        assert!(is_malformed(&back_err(&msg(tag, &cat(&[&[0], &be16(1)])))));
        assert!(is_malformed(&back_err(&msg(tag, &[0]))));
    }
    let mut out = BytesMut::new();
    backend::copy_in_response(&mut out, 0, &[0]).expect("encodes");
    backend::copy_out_response(&mut out, 0, &[]).expect("encodes");
    backend::copy_both_response(&mut out, 1, &[1]).expect("encodes");
    backend::copy_data(&mut out, b"row\n").expect("encodes");
    assert_eq!(
        out.as_ref(),
        cat(&[
            &msg(b'G', &cat(&[&[0], &be16(1), &be16(0)])),
            &msg(b'H', &cat(&[&[0], &be16(0)])),
            &msg(b'W', &cat(&[&[1], &be16(1), &be16(1)])),
            &msg(b'd', b"row\n"),
        ])
    );
    parse_back(&msg(b'd', b"row\n"), |m| {
        assert_eq!(m, BackendMessage::CopyData(b"row\n"));
    });
}

#[test]
fn function_call_response_and_negotiation() {
    parse_back(&msg(b'V', &cat(&[&be32(2), b"ok"])), |m| {
        assert_eq!(m, BackendMessage::FunctionCallResponse(Some(b"ok")));
    });
    parse_back(&msg(b'V', &be32(-1)), |m| {
        assert_eq!(m, BackendMessage::FunctionCallResponse(None));
    });
    assert!(is_malformed(&back_err(&msg(b'V', &be32(-3)))));
    assert!(is_malformed(&back_err(&msg(
        b'V',
        &cat(&[&be32(3), b"ok"])
    ))));

    parse_back(
        &msg(b'v', &cat(&[&be32(0), &be32(2), b"_pq_.a\0_pq_.b\0"])),
        |m| {
            assert_eq!(
                m,
                BackendMessage::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec!["_pq_.a", "_pq_.b"]
                }
            );
        },
    );
    for bad in [
        cat(&[&be32(0), &be32(-1)]),
        cat(&[&be32(0), &be32(3), b"_pq_.a\0"]),
        cat(&[&be32(0), &be32(i32::MAX)]),
        cat(&[&be32(0), &be32(0), b"x"]),
    ] {
        assert!(is_malformed(&back_err(&msg(b'v', &bad))), "{bad:?}");
    }
    let mut out = BytesMut::new();
    backend::function_call_response(&mut out, None).expect("encodes");
    backend::negotiate_protocol_version(&mut out, 0, &["_pq_.x"]).expect("encodes");
    assert_eq!(
        out.as_ref(),
        cat(&[
            &msg(b'V', &be32(-1)),
            &msg(b'v', &cat(&[&be32(0), &be32(1), b"_pq_.x\0"]))
        ])
    );
}

#[test]
fn backend_framing_errors() {
    for tag in [b'Q', b'P', b'B', b'X', b'p', 0, b'!'] {
        let mut buf = BytesMut::from(&[tag, 0, 0][..]);
        assert_eq!(
            decode_backend(&mut buf, &L),
            Err(ProtocolError::UnknownMessage(tag))
        );
    }
    let mut buf = BytesMut::from(&cat(&[b"D", &be32(2)])[..]);
    assert_eq!(
        decode_backend(&mut buf, &L),
        Err(ProtocolError::BadLength { tag: b'D', len: 2 })
    );
    let limits = Limits {
        max_message: 100,
        ..Limits::DEFAULT
    };
    let mut buf = BytesMut::from(&cat(&[b"D", &be32(101)])[..]);
    assert_eq!(
        decode_backend(&mut buf, &limits),
        Err(ProtocolError::TooLarge {
            tag: b'D',
            len: 101,
            max: 100
        })
    );
    // The backend has no small-message classes: a large notice is fine within the limit.
    let big = msg(b'N', &cat(&[b"M", &[b'x'; 20_000], b"\0\0"]));
    let frame = back(&big);
    assert!(frame.parse().is_ok());
}

#[test]
fn encoders_reject_unencodable_strings() {
    let mut out = BytesMut::new();
    assert!(backend::parameter_status(&mut out, "a\0", "b").is_err());
    assert!(backend::command_complete(&mut out, "\0").is_err());
    assert!(backend::notification_response(&mut out, 1, "c", "\0").is_err());
    assert!(backend::negotiate_protocol_version(&mut out, 0, &["\0"]).is_err());
    let bad_field = FieldDescription {
        name: "a\0",
        table_oid: 0,
        column: 0,
        type_oid: 0,
        type_size: 0,
        type_modifier: 0,
        format: 0,
    };
    assert!(backend::row_description(&mut out, &[bad_field]).is_err());
    assert!(backend::parameter_description(&mut out, &[0; 65_536]).is_err());
    assert!(backend::copy_in_response(&mut out, 0, &[0; 65_536]).is_err());
    assert!(out.is_empty());
}

#[test]
fn limits_default() {
    assert_eq!(Limits::default(), Limits::DEFAULT);
    assert_eq!(Limits::default().max_message, 16 * 1024 * 1024);
    assert_eq!(Limits::default().max_startup, 10_000);
}
