//! Known answers: packets written byte by byte as the draft and OpenSSH lay them out.

use bytes::BytesMut;

use super::*;

/// A `string`.
fn s(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn u32b(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn u64b(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// A whole packet: length, type, id (when given), fields.
fn packet(packet_type: u8, id: Option<u32>, fields: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![packet_type];
    if let Some(id) = id {
        body.extend(u32b(id));
    }
    for f in fields {
        body.extend_from_slice(f);
    }
    let mut out = u32b(body.len() as u32);
    out.extend(body);
    out
}

fn frame(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf, &Limits::default())
        .expect("frames")
        .expect("whole");
    assert!(buf.is_empty(), "one packet");
    frame
}

/// Decodes `bytes` as a request, checks that it re-encodes to `bytes`, and returns its op.
fn request(bytes: &[u8]) -> (u32, String) {
    let f = frame(bytes);
    let ClientMessage::Request(r) = f.client_message().expect("parses") else {
        panic!("a request")
    };
    let mut out = BytesMut::new();
    r.encode(&mut out).expect("encodes");
    assert_eq!(&out[..], bytes, "re-encodes to its own bytes");
    (r.id, format!("{:?}", r.op))
}

fn reply(bytes: &[u8]) -> String {
    let f = frame(bytes);
    let ServerMessage::Response(r) = f.server_message().expect("parses") else {
        panic!("a response")
    };
    let mut out = BytesMut::new();
    r.encode(&mut out).expect("encodes");
    assert_eq!(&out[..], bytes, "re-encodes to its own bytes");
    format!("{:?}", r.reply)
}

fn client_error(bytes: &[u8]) -> String {
    frame(bytes)
        .client_message()
        .expect_err("fails")
        .to_string()
}

fn server_error(bytes: &[u8]) -> String {
    frame(bytes)
        .server_message()
        .expect_err("fails")
        .to_string()
}

#[test]
fn init_and_version() {
    let init = packet(1, None, &[u32b(3)]);
    let f = frame(&init);
    assert_eq!((f.packet_type(), f.id()), (PacketType::INIT, None));
    assert_eq!(
        f.client_message().expect("parses"),
        ClientMessage::Init(Init {
            version: 3,
            extensions: Pairs::EMPTY
        })
    );
    let version = packet(
        2,
        None,
        &[
            u32b(3),
            s(b"posix-rename@openssh.com"),
            s(b"1"),
            s(b"statvfs@openssh.com"),
            s(b"2"),
        ],
    );
    let f = frame(&version);
    let ServerMessage::Version(v) = f.server_message().expect("parses") else {
        panic!("VERSION")
    };
    assert_eq!(v.version, 3);
    assert_eq!(v.extensions.len(), 2);
    assert_eq!(
        v.extensions.get(b"statvfs@openssh.com"),
        Some(ByteStr::from("2"))
    );
    let mut out = BytesMut::new();
    v.encode(&mut out).expect("encodes");
    assert_eq!(&out[..], &version[..]);
    assert_eq!(
        server_error(&packet(2, None, &[u32b(3), s(b"name-without-data")])),
        "SFTP VERSION extension data needs 4 bytes, the packet has 0 left"
    );
}

#[test]
fn every_request_layout() {
    let h = || s(b"\0\0\0\x01");
    let attrs_mode = [u32b(attr_flags::PERMISSIONS), u32b(0o644)].concat();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            packet(3, Some(1), &[s(b"a.txt"), u32b(0x1a), attrs_mode.clone()]),
            r#"Open { filename: "a.txt", flags: OpenFlags(WRITE|CREAT|TRUNC), attrs: Attrs { size: None, owner: None, permissions: Some(420), times: None, extended: None } }"#,
        ),
        (
            packet(4, Some(2), &[h()]),
            "Close { handle: Handle(00000001) }",
        ),
        (
            packet(5, Some(3), &[h(), u64b(1 << 40), u32b(32768)]),
            "Read { handle: Handle(00000001), offset: 1099511627776, len: 32768 }",
        ),
        (
            packet(6, Some(4), &[h(), u64b(7), s(b"\xff\0x")]),
            "Write { handle: Handle(00000001), offset: 7, data: [255, 0, 120] }",
        ),
        (packet(7, Some(5), &[s(b"/l")]), r#"Lstat { path: "/l" }"#),
        (
            packet(8, Some(6), &[h()]),
            "Fstat { handle: Handle(00000001) }",
        ),
        (
            packet(9, Some(7), &[s(b"/p"), u32b(attr_flags::SIZE), u64b(0)]),
            r#"Setstat { path: "/p", attrs: Attrs { size: Some(0), owner: None, permissions: None, times: None, extended: None } }"#,
        ),
        (
            packet(
                10,
                Some(8),
                &[h(), u32b(attr_flags::ACMODTIME), u32b(1), u32b(2)],
            ),
            "Fsetstat { handle: Handle(00000001), attrs: Attrs { size: None, owner: None, permissions: None, times: Some(Times { atime: 1, mtime: 2 }), extended: None } }",
        ),
        (
            packet(11, Some(9), &[s(b"/d")]),
            r#"Opendir { path: "/d" }"#,
        ),
        (
            packet(12, Some(10), &[h()]),
            "Readdir { handle: Handle(00000001) }",
        ),
        (
            packet(13, Some(11), &[s(b"/r")]),
            r#"Remove { filename: "/r" }"#,
        ),
        (
            packet(14, Some(12), &[s(b"/m"), u32b(0)]),
            r#"Mkdir { path: "/m", attrs: Attrs { size: None, owner: None, permissions: None, times: None, extended: None } }"#,
        ),
        (packet(15, Some(13), &[s(b"/m")]), r#"Rmdir { path: "/m" }"#),
        (
            packet(16, Some(14), &[s(b".")]),
            r#"Realpath { path: "." }"#,
        ),
        (
            packet(17, Some(15), &[s(b"caf\xe9")]),
            r#"Stat { path: "caf\xe9" }"#,
        ),
        (
            packet(18, Some(16), &[s(b"/a"), s(b"/b")]),
            r#"Rename { old_path: "/a", new_path: "/b" }"#,
        ),
        (
            packet(19, Some(17), &[s(b"/ln")]),
            r#"Readlink { path: "/ln" }"#,
        ),
        // OpenSSH's order: target first, then the link.
        (
            packet(20, Some(18), &[s(b"target"), s(b"/link")]),
            r#"Symlink { target_path: "target", link_path: "/link" }"#,
        ),
    ];
    for (i, (bytes, expected)) in cases.iter().enumerate() {
        let (id, op) = request(bytes);
        assert_eq!(id as usize, i + 1);
        assert_eq!(op, *expected);
    }
}

#[test]
fn every_extension_layout() {
    let h = || s(b"\0\0\0\x02");
    let ext = |name: &str, fields: &[Vec<u8>]| {
        let mut all = vec![s(name.as_bytes())];
        all.extend_from_slice(fields);
        packet(200, Some(40), &all)
    };
    let cases = [
        (
            ext(ext::POSIX_RENAME, &[s(b"/a"), s(b"/b")]),
            r#"Extended(PosixRename { old_path: "/a", new_path: "/b" })"#,
        ),
        (
            ext(ext::HARDLINK, &[s(b"/a"), s(b"/b")]),
            r#"Extended(Hardlink { old_path: "/a", new_path: "/b" })"#,
        ),
        (
            ext(ext::STATVFS, &[s(b"/")]),
            r#"Extended(Statvfs { path: "/" })"#,
        ),
        (
            ext(ext::FSTATVFS, &[h()]),
            "Extended(Fstatvfs { handle: Handle(00000002) })",
        ),
        (
            ext(ext::FSYNC, &[h()]),
            "Extended(Fsync { handle: Handle(00000002) })",
        ),
        (
            ext(
                ext::LSETSTAT,
                &[s(b"/l"), u32b(attr_flags::UIDGID), u32b(0), u32b(0)],
            ),
            r#"Extended(Lsetstat { path: "/l", attrs: Attrs { size: None, owner: Some(Owner { uid: 0, gid: 0 }), permissions: None, times: None, extended: None } })"#,
        ),
        (ext(ext::LIMITS, &[]), "Extended(Limits)"),
        (
            ext(ext::EXPAND_PATH, &[s(b"~/x")]),
            r#"Extended(ExpandPath { path: "~/x" })"#,
        ),
        (
            ext(
                ext::COPY_DATA,
                &[h(), u64b(1), u64b(0), s(b"\0\0\0\x03"), u64b(2)],
            ),
            "Extended(CopyData { read_handle: Handle(00000002), read_offset: 1, read_len: 0, write_handle: Handle(00000003), write_offset: 2 })",
        ),
        (
            ext(ext::HOME_DIRECTORY, &[s(b"")]),
            r#"Extended(HomeDirectory { username: "" })"#,
        ),
        (
            ext(
                ext::USERS_GROUPS_BY_ID,
                &[s(&[u32b(0), u32b(1000)].concat()), s(b"")],
            ),
            "Extended(UsersGroupsById { uids: [0, 1000], gids: [] })",
        ),
        (
            ext("nonsense@example.com", &[b"\x01\x02".to_vec()]),
            r#"Extended(Other { name: "nonsense@example.com", data: [1, 2] })"#,
        ),
    ];
    for (bytes, expected) in &cases {
        assert_eq!(request(bytes).1, *expected);
    }
    assert_eq!(
        client_error(&ext(ext::COPY_DATA, &[h(), u64b(1)])),
        "SFTP EXTENDED copy-data read-data-length needs 8 bytes, the packet has 0 left"
    );
    assert_eq!(
        client_error(&ext(ext::USERS_GROUPS_BY_ID, &[s(b"\0\0\0"), s(b"")])),
        "SFTP EXTENDED users-groups-by-id@openssh.com uids length 3 is not a multiple of 4"
    );
    assert_eq!(
        client_error(&ext(ext::LIMITS, &[b"x".to_vec()])),
        "SFTP EXTENDED limits@openssh.com has 1 unexpected bytes after its last field"
    );
}

#[test]
fn every_response_layout() {
    let cases = [
        (
            packet(101, Some(1), &[u32b(2), s(b"No such file"), s(b"")]),
            r#"Status(Status { code: StatusCode(NO_SUCH_FILE), text: Some(StatusText { message: "No such file", language: Some("") }) })"#,
        ),
        // Older servers: the code alone, or without the language tag.
        (
            packet(101, Some(1), &[u32b(1)]),
            "Status(Status { code: StatusCode(EOF), text: None })",
        ),
        (
            packet(101, Some(1), &[u32b(4), s(b"Failure")]),
            r#"Status(Status { code: StatusCode(FAILURE), text: Some(StatusText { message: "Failure", language: None }) })"#,
        ),
        (
            packet(101, Some(1), &[u32b(99), s(b""), s(b"en")]),
            r#"Status(Status { code: StatusCode(status 99), text: Some(StatusText { message: "", language: Some("en") }) })"#,
        ),
        (
            packet(102, Some(1), &[s(b"\0\0\0\0")]),
            "Handle(Handle(00000000))",
        ),
        (packet(103, Some(1), &[s(b"hi")]), "Data([104, 105])"),
        (
            packet(
                104,
                Some(1),
                &[
                    u32b(2),
                    s(b"caf\xe9"),
                    s(b"-rw-r--r-- caf\xe9"),
                    u32b(attr_flags::SIZE),
                    u64b(5),
                    s(b"b"),
                    s(b"b"),
                    u32b(attr_flags::EXTENDED),
                    u32b(1),
                    s(b"x@y"),
                    s(b"\0"),
                ],
            ),
            r#"Name([NameEntry { filename: "caf\xe9", longname: "-rw-r--r-- caf\xe9", attrs: Attrs { size: Some(5), owner: None, permissions: None, times: None, extended: None } }, NameEntry { filename: "b", longname: "b", attrs: Attrs { size: None, owner: None, permissions: None, times: None, extended: Some([("x@y", "\x00")]) } }])"#,
        ),
        (
            packet(
                105,
                Some(1),
                &[
                    u32b(attr_flags::KNOWN & !attr_flags::EXTENDED),
                    u64b(1),
                    u32b(2),
                    u32b(3),
                    u32b(4),
                    u32b(5),
                    u32b(6),
                ],
            ),
            "Attrs(Attrs { size: Some(1), owner: Some(Owner { uid: 2, gid: 3 }), permissions: Some(4), times: Some(Times { atime: 5, mtime: 6 }), extended: None })",
        ),
        (
            packet(201, Some(1), &[u64b(262144)]),
            "ExtendedReply([0, 0, 0, 0, 0, 4, 0, 0])",
        ),
    ];
    for (bytes, expected) in &cases {
        assert_eq!(reply(bytes), *expected);
    }
}

#[test]
fn errors_name_the_field_and_the_problem() {
    assert_eq!(
        server_error(&packet(104, Some(1), &[u32b(4_000_000), s(b"x")])),
        "SFTP NAME count 4000000 exceeds what the packet holds (5 bytes left)"
    );
    assert_eq!(
        client_error(&packet(9, Some(1), &[s(b"/p"), u32b(0x10)])),
        "SFTP SETSTAT attrs flags has unknown bits 0x00000010"
    );
    assert_eq!(
        client_error(&packet(
            9,
            Some(1),
            &[s(b"/p"), u32b(attr_flags::EXTENDED), u32b(u32::MAX)]
        )),
        "SFTP SETSTAT attrs extended count 4294967295 exceeds what the packet holds (0 bytes left)"
    );
    assert_eq!(
        client_error(&packet(16, Some(1), &[u32b(100), b"abc".to_vec()])),
        "SFTP REALPATH path needs 100 bytes, the packet has 3 left"
    );
    assert_eq!(
        client_error(&packet(17, Some(1), &[s(b"/"), b"\0".to_vec()])),
        "SFTP STAT has 1 unexpected bytes after its last field"
    );
    let unknown = frame(&packet(77, Some(5), &[]));
    assert_eq!(unknown.id(), Some(5), "an unknown type still has its id");
    let e = unknown.client_message().expect_err("unknown");
    assert_eq!(e.to_string(), "unknown SFTP request type 77");
    assert_eq!(e.status_code(), StatusCode::OP_UNSUPPORTED);
    assert_eq!(
        client_error(&packet(101, Some(1), &[u32b(0)])),
        "SFTP STATUS (101) is not a request"
    );
    assert_eq!(
        server_error(&packet(3, Some(1), &[])),
        "SFTP OPEN (3) is not a response"
    );
    assert_eq!(
        frame(&packet(2, None, &[u32b(3)]))
            .client_message()
            .expect_err("VERSION from a client")
            .to_string(),
        "SFTP VERSION (2) is not a request"
    );
}

#[test]
fn frames_wait_for_whole_packets_and_check_the_length_first() {
    let limits = Limits::default();
    let stat = packet(17, Some(9), &[s(b"/etc/hostname")]);
    for cut in 0..stat.len() {
        let mut buf = BytesMut::from(&stat[..cut]);
        assert_eq!(decode_frame(&mut buf, &limits), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut, "nothing consumed");
    }
    let mut two = BytesMut::from(&[stat.clone(), stat.clone()].concat()[..]);
    assert!(decode_frame(&mut two, &limits).expect("ok").is_some());
    assert_eq!(&two[..], &stat[..]);

    // Refused on the length alone, before the body arrives.
    let mut big = BytesMut::from(&u32b(limits.max_packet + 1)[..]);
    assert_eq!(
        decode_frame(&mut big, &limits),
        Err(FrameError::TooLarge {
            len: limits.max_packet + 1,
            max: limits.max_packet
        })
    );
    assert_eq!(
        FrameError::TooLarge {
            len: 300_000,
            max: 263_168
        }
        .to_string(),
        "SFTP packet of 300000 bytes exceeds the limit of 263168 bytes"
    );
    let mut empty = BytesMut::from(&u32b(0)[..]);
    assert_eq!(
        decode_frame(&mut empty, &limits)
            .expect_err("empty")
            .to_string(),
        "SFTP packet of 0 bytes is too short for a type byte"
    );
    let mut no_id = BytesMut::from(&[0, 0, 0, 3, 17, 0, 0][..]);
    assert_eq!(
        decode_frame(&mut no_id, &limits)
            .expect_err("short")
            .to_string(),
        "SFTP packet of 3 bytes is too short for the request id of a STAT packet"
    );
    // INIT and VERSION have no id: a type byte is enough to frame them.
    let mut bare = BytesMut::from(&[0, 0, 0, 1, 1][..]);
    let init = decode_frame(&mut bare, &limits)
        .expect("ok")
        .expect("whole");
    assert_eq!(
        init.client_message().expect_err("no version").to_string(),
        "SFTP INIT version needs 4 bytes, the packet has 0 left"
    );
    let exact = Limits { max_packet: 5 };
    let mut at_limit = BytesMut::from(&packet(4, Some(1), &[])[..]);
    assert!(decode_frame(&mut at_limit, &exact).expect("ok").is_some());
}

#[test]
fn status_packets_for_refusals() {
    let p = status(
        7,
        StatusCode::PERMISSION_DENIED,
        "sod: refused by rule `r`: no",
    );
    assert_eq!(
        reply(&p),
        r#"Status(Status { code: StatusCode(PERMISSION_DENIED), text: Some(StatusText { message: "sod: refused by rule `r`: no", language: Some("") }) })"#
    );
    let long = "é".repeat(5000);
    let p = status(1, StatusCode::FAILURE, &long);
    let f = frame(&p);
    let ServerMessage::Response(Response {
        reply: Reply::Status(s),
        ..
    }) = f.server_message().expect("parses")
    else {
        panic!("STATUS")
    };
    let message = s.message().to_str().expect("cut at a character boundary");
    assert_eq!(message.len(), 4096);
}

#[test]
fn names_and_flags_read_well() {
    assert_eq!(PacketType(200).to_string(), "EXTENDED");
    assert_eq!(PacketType(99).to_string(), "type 99");
    assert_eq!(StatusCode(3).to_string(), "PERMISSION_DENIED");
    assert_eq!(format!("{:?}", OpenFlags(0x41)), "OpenFlags(READ|0x40)");
    assert_eq!(format!("{:?}", OpenFlags(0)), "OpenFlags()");
    let f = frame(&packet(17, Some(3), &[s(b"/")]));
    assert_eq!(
        format!("{f:?}"),
        "Frame { type: PacketType(STAT), id: 3, len: 14 }"
    );
    assert_eq!(f.payload(), &s(b"/")[..]);
    assert_eq!(format!("{:?}", ByteStr::new(b"a\"\n")), r#""a\"\n""#);
}
