//! Round trips for every packet type, and arbitrary bytes.
//!
//! Messages borrow their bytes; the strategies leak small buffers to make `'static` ones,
//! which is fine for the few thousand cases a run makes.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn bytes() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        vec(any::<u8>(), 0..12),
        // Paths and names, UTF-8 or not.
        "[a-z/.~ ]{0,12}".prop_map(String::into_bytes),
    ]
    .prop_map(leak)
}

fn text() -> impl Strategy<Value = ByteStr<'static>> {
    bytes().prop_map(ByteStr::new)
}

fn handle() -> impl Strategy<Value = Handle<'static>> {
    bytes().prop_map(Handle::new)
}

fn pairs() -> impl Strategy<Value = Pairs<'static>> {
    vec((text(), text()), 0..4).prop_map(|list| Pairs::new(leak(list)))
}

fn attrs() -> impl Strategy<Value = Attrs<'static>> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::option::of(pairs()),
    )
        .prop_map(|(size, owner, permissions, times, extended)| Attrs {
            size,
            owner: owner.map(|(uid, gid)| Owner { uid, gid }),
            permissions,
            times: times.map(|(atime, mtime)| Times { atime, mtime }),
            extended,
        })
}

fn ids() -> impl Strategy<Value = IdList<'static>> {
    vec(any::<u32>(), 0..4).prop_map(|v| IdList::new(leak(v)))
}

fn extended() -> impl Strategy<Value = Extended<'static>> {
    let known: Vec<&[u8]> = vec![
        ext::POSIX_RENAME.as_bytes(),
        ext::HARDLINK.as_bytes(),
        ext::STATVFS.as_bytes(),
        ext::FSTATVFS.as_bytes(),
        ext::FSYNC.as_bytes(),
        ext::LSETSTAT.as_bytes(),
        ext::LIMITS.as_bytes(),
        ext::EXPAND_PATH.as_bytes(),
        ext::COPY_DATA.as_bytes(),
        ext::HOME_DIRECTORY.as_bytes(),
        ext::USERS_GROUPS_BY_ID.as_bytes(),
    ];
    prop_oneof![
        (text(), text())
            .prop_map(|(old_path, new_path)| Extended::PosixRename { old_path, new_path }),
        (text(), text()).prop_map(|(old_path, new_path)| Extended::Hardlink { old_path, new_path }),
        text().prop_map(|path| Extended::Statvfs { path }),
        handle().prop_map(|handle| Extended::Fstatvfs { handle }),
        handle().prop_map(|handle| Extended::Fsync { handle }),
        (text(), attrs()).prop_map(|(path, attrs)| Extended::Lsetstat { path, attrs }),
        Just(Extended::Limits),
        text().prop_map(|path| Extended::ExpandPath { path }),
        (handle(), any::<u64>(), any::<u64>(), handle(), any::<u64>()).prop_map(
            |(read_handle, read_offset, read_len, write_handle, write_offset)| Extended::CopyData {
                read_handle,
                read_offset,
                read_len,
                write_handle,
                write_offset
            }
        ),
        text().prop_map(|username| Extended::HomeDirectory { username }),
        (ids(), ids()).prop_map(|(uids, gids)| Extended::UsersGroupsById { uids, gids }),
        (text(), bytes())
            .prop_filter("an unknown name", move |(name, _)| {
                !known.contains(&name.as_bytes())
            })
            .prop_map(|(name, data)| Extended::Other { name, data }),
    ]
}

fn op() -> impl Strategy<Value = Op<'static>> {
    prop_oneof![
        (text(), any::<u32>(), attrs()).prop_map(|(filename, flags, attrs)| Op::Open {
            filename,
            flags: OpenFlags(flags),
            attrs
        }),
        handle().prop_map(|handle| Op::Close { handle }),
        (handle(), any::<u64>(), any::<u32>()).prop_map(|(handle, offset, len)| Op::Read {
            handle,
            offset,
            len
        }),
        (handle(), any::<u64>(), bytes()).prop_map(|(handle, offset, data)| Op::Write {
            handle,
            offset,
            data
        }),
        text().prop_map(|path| Op::Lstat { path }),
        handle().prop_map(|handle| Op::Fstat { handle }),
        (text(), attrs()).prop_map(|(path, attrs)| Op::Setstat { path, attrs }),
        (handle(), attrs()).prop_map(|(handle, attrs)| Op::Fsetstat { handle, attrs }),
        text().prop_map(|path| Op::Opendir { path }),
        handle().prop_map(|handle| Op::Readdir { handle }),
        text().prop_map(|filename| Op::Remove { filename }),
        (text(), attrs()).prop_map(|(path, attrs)| Op::Mkdir { path, attrs }),
        text().prop_map(|path| Op::Rmdir { path }),
        text().prop_map(|path| Op::Realpath { path }),
        text().prop_map(|path| Op::Stat { path }),
        (text(), text()).prop_map(|(old_path, new_path)| Op::Rename { old_path, new_path }),
        text().prop_map(|path| Op::Readlink { path }),
        (text(), text()).prop_map(|(target_path, link_path)| Op::Symlink {
            target_path,
            link_path
        }),
        extended().prop_map(Op::Extended),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage<'static>> {
    prop_oneof![
        1 => (any::<u32>(), pairs()).prop_map(|(version, extensions)| ClientMessage::Init(Init {
            version,
            extensions
        })),
        20 => (any::<u32>(), op()).prop_map(|(id, op)| ClientMessage::Request(Request { id, op })),
    ]
}

fn names() -> impl Strategy<Value = Names<'static>> {
    vec((text(), text(), attrs()), 0..4).prop_map(|entries| {
        let entries = entries
            .into_iter()
            .map(|(filename, longname, attrs)| NameEntry {
                filename,
                longname,
                attrs,
            })
            .collect();
        Names::new(leak(entries))
    })
}

fn reply() -> impl Strategy<Value = Reply<'static>> {
    let status_text = proptest::option::of((text(), proptest::option::of(text())))
        .prop_map(|t| t.map(|(message, language)| StatusText { message, language }));
    prop_oneof![
        (any::<u32>(), status_text).prop_map(|(code, text)| Reply::Status(Status {
            code: StatusCode(code),
            text
        })),
        handle().prop_map(Reply::Handle),
        bytes().prop_map(Reply::Data),
        names().prop_map(Reply::Name),
        attrs().prop_map(Reply::Attrs),
        bytes().prop_map(Reply::ExtendedReply),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage<'static>> {
    prop_oneof![
        1 => (any::<u32>(), pairs()).prop_map(|(version, extensions)| ServerMessage::Version(Version {
            version,
            extensions
        })),
        10 => (any::<u32>(), reply()).prop_map(|(id, reply)| ServerMessage::Response(Response { id, reply })),
    ]
}

fn one_frame(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf, &Limits::default())
        .expect("an encoded packet frames")
        .expect("whole");
    assert!(buf.is_empty(), "exactly one packet");
    frame
}

/// Every list in a decoded message walks to exactly its count, within the frame.
fn check_lists(attrs: &Attrs<'_>) {
    if let Some(ext) = &attrs.extended {
        assert_eq!(ext.iter().count(), ext.len());
    }
}

fn check_client(message: &ClientMessage<'_>, frame: &Frame) {
    let mut out = BytesMut::new();
    message.encode(&mut out).expect("a decoded message encodes");
    assert_eq!(
        &out[..],
        &frame.raw()[..],
        "decoded then encoded is byte-identical"
    );
    match message {
        ClientMessage::Init(init) => {
            assert_eq!(init.extensions.iter().count(), init.extensions.len())
        }
        ClientMessage::Request(r) => match r.op {
            Op::Open { attrs, .. }
            | Op::Setstat { attrs, .. }
            | Op::Fsetstat { attrs, .. }
            | Op::Mkdir { attrs, .. }
            | Op::Extended(Extended::Lsetstat { attrs, .. }) => check_lists(&attrs),
            Op::Extended(Extended::UsersGroupsById { uids, gids }) => {
                assert_eq!(uids.iter().count(), uids.len());
                assert_eq!(gids.iter().count(), gids.len());
            }
            _ => {}
        },
    }
}

fn check_server(message: &ServerMessage<'_>, frame: &Frame) {
    let mut out = BytesMut::new();
    message.encode(&mut out).expect("a decoded message encodes");
    assert_eq!(
        &out[..],
        &frame.raw()[..],
        "decoded then encoded is byte-identical"
    );
    match message {
        ServerMessage::Version(v) => assert_eq!(v.extensions.iter().count(), v.extensions.len()),
        ServerMessage::Response(r) => match r.reply {
            Reply::Name(names) => {
                assert_eq!(names.iter().count(), names.len());
                names.iter().for_each(|n| check_lists(&n.attrs));
            }
            Reply::Attrs(attrs) => check_lists(&attrs),
            _ => {}
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(message in client_message()) {
        let mut wire = BytesMut::new();
        message.encode(&mut wire).expect("encodes");
        let frame = one_frame(&wire);
        let decoded = frame.client_message().expect("decodes");
        prop_assert_eq!(decoded, message);
        if let ClientMessage::Request(r) = message {
            prop_assert_eq!(frame.id(), Some(r.id));
            prop_assert_eq!(frame.packet_type(), r.op.packet_type());
        }
        check_client(&decoded, &frame);
        // Every cut of the packet waits for more and consumes nothing.
        for cut in [0, 1, 4, 5, wire.len() / 2, wire.len() - 1] {
            let mut part = BytesMut::from(&wire[..cut.min(wire.len() - 1)]);
            let before = part.len();
            prop_assert_eq!(decode_frame(&mut part, &Limits::default()), Ok(None));
            prop_assert_eq!(part.len(), before);
        }
    }

    #[test]
    fn server_messages_round_trip(message in server_message()) {
        let mut wire = BytesMut::new();
        message.encode(&mut wire).expect("encodes");
        let frame = one_frame(&wire);
        let decoded = frame.server_message().expect("decodes");
        prop_assert_eq!(decoded, message);
        check_server(&decoded, &frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        arbitrary(&data);
    }

    /// Arbitrary bodies behind a valid header and a type this codec knows: the parsers,
    /// not the framing, get the bytes.
    #[test]
    fn arbitrary_bodies_never_panic(
        packet_type in prop_oneof![1u8..=20, 101u8..=105, 200u8..=201, any::<u8>()],
        name in prop_oneof![
            Just(ext::COPY_DATA),
            Just(ext::USERS_GROUPS_BY_ID),
            Just(ext::LSETSTAT),
            Just(ext::POSIX_RENAME),
            Just("x"),
        ],
        body in vec(any::<u8>(), 0..96),
    ) {
        let mut fields = Vec::new();
        if packet_type == 200 {
            fields.extend_from_slice(&(name.len() as u32).to_be_bytes());
            fields.extend_from_slice(name.as_bytes());
        }
        fields.extend_from_slice(&body);
        let mut data = ((fields.len() + 5) as u32).to_be_bytes().to_vec();
        data.push(packet_type);
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(&fields);
        arbitrary(&data);
    }
}

/// Frames `data` in a loop and parses every frame both ways: no panic, progress every time,
/// and whatever parses re-encodes to its own bytes.
fn arbitrary(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let limits = Limits { max_packet: 4096 };
    while let Ok(Some(frame)) = decode_frame(&mut buf, &limits) {
        if let Ok(message) = frame.client_message() {
            check_client(&message, &frame);
        }
        if let Ok(message) = frame.server_message() {
            check_server(&message, &frame);
        }
        let _ = format!("{frame:?}");
    }
}
