//! The judge against scripted server answers: every request type, handles, pipelining,
//! refusals, masked reads.

use bytes::{Bytes, BytesMut};
use sod_core::{OperationKind, Refusal, RefusalCode, Target};

use super::*;
use crate::sftp::codec::{
    Attrs, ByteStr, Extended, Handle, IdList, Init, Limits, NameEntry, Names, OpenFlags, Pairs,
    Response, Status, StatusText, Version, decode_frame,
};

const CWD: &str = "/home/demo";

fn frame(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf, &Limits::default())
        .expect("frames")
        .expect("whole");
    assert!(buf.is_empty());
    frame
}

/// A judge and the scripted server around it.
struct Session {
    judge: Judge,
    next_id: u32,
}

/// What the client would see of a packet: its id and a short description.
fn seen(bytes: &Bytes) -> (Option<u32>, String) {
    let f = frame(bytes);
    let what = match f.server_message().expect("the judge writes valid packets") {
        ServerMessage::Version(v) => format!("VERSION {}", v.version),
        ServerMessage::Response(r) => match r.reply {
            Reply::Status(s) => format!(
                "{} {}",
                s.code,
                String::from_utf8_lossy(s.message().as_bytes())
            ),
            Reply::Data(d) => format!("DATA {}", String::from_utf8_lossy(d)),
            Reply::Handle(h) => format!("HANDLE {h:?}"),
            Reply::Attrs(a) => format!("ATTRS size={:?}", a.size),
            other => format!("{other:?}"),
        },
    };
    (f.id(), what)
}

/// A request the judge sent the server: its id and op.
fn own_request(bytes: &Bytes) -> (u32, String) {
    let f = frame(bytes);
    let ClientMessage::Request(r) = f.client_message().expect("a request") else {
        panic!("a request")
    };
    (r.id, format!("{:?}", r.op))
}

use crate::sftp::codec::ClientMessage;

impl Session {
    /// A session past `INIT`/`VERSION`, with the working directory learned as the judge does.
    fn new() -> Self {
        Self::with_limits(JudgeLimits::DEFAULT)
    }

    fn with_limits(limits: JudgeLimits) -> Self {
        let mut s = Self {
            judge: Judge::new(limits),
            next_id: 0,
        };
        let mut init = BytesMut::new();
        Init {
            version: 3,
            extensions: Pairs::EMPTY,
        }
        .encode(&mut init)
        .expect("encodes");
        assert!(matches!(s.judge.request(&frame(&init)), Verdict::Forward));
        let mut version = BytesMut::new();
        let exts = [(
            ByteStr::from("posix-rename@openssh.com"),
            ByteStr::from("1"),
        )];
        Version {
            version: 3,
            extensions: Pairs::new(&exts),
        }
        .encode(&mut version)
        .expect("encodes");
        let Relay::Withhold {
            to_server: Some(realpath),
            to_client: None,
        } = s.judge.response(&frame(&version))
        else {
            panic!("VERSION is held back while the judge asks for the working directory")
        };
        let (id, op) = own_request(&realpath);
        assert_eq!(id, u32::MAX);
        assert_eq!(op, r#"Realpath { path: "." }"#);
        assert_eq!(s.judge.cwd(), None);
        let relay = s.reply(id, Reply::Name(Names::new(&[name(CWD)])));
        let Relay::Withhold {
            to_server: None,
            to_client: Some(released),
        } = relay
        else {
            panic!("the working directory releases VERSION: {relay:?}")
        };
        assert_eq!(&released[..], &version[..], "VERSION unchanged");
        assert_eq!(s.judge.cwd(), Some(CWD.as_bytes()));
        s
    }

    fn send(&mut self, op: Op<'_>) -> (u32, Verdict) {
        let id = self.next_id;
        self.next_id += 1;
        (id, self.send_as(id, op))
    }

    fn send_as(&mut self, id: u32, op: Op<'_>) -> Verdict {
        let bytes = Request { id, op }.to_bytes().expect("encodes");
        self.judge.request(&frame(&bytes))
    }

    fn reply(&mut self, id: u32, reply: Reply<'_>) -> Relay {
        let bytes = Response { id, reply }.to_bytes().expect("encodes");
        self.judge.response(&frame(&bytes))
    }

    /// Sends `op`, expects a decision, and returns it.
    fn decide(&mut self, op: Op<'_>) -> Judgement {
        match self.send(op) {
            (_, Verdict::Decide(j)) => j,
            (_, other) => panic!("expected a decision, got {other:?}"),
        }
    }

    /// Sends `op` and expects the gateway to answer it itself.
    fn answered(&mut self, op: Op<'_>) -> (Option<u32>, String) {
        match self.send(op) {
            (_, Verdict::Answer { reply, .. }) => seen(&reply),
            (_, other) => panic!("expected an answer, got {other:?}"),
        }
    }

    /// Opens `path` with `flags`, allowed, and returns the handle the server gave.
    fn open(&mut self, path: &str, flags: OpenFlags, handle: &'static [u8]) -> Judgement {
        let (id, verdict) = self.send(Op::Open {
            filename: path.into(),
            flags,
            attrs: Attrs::EMPTY,
        });
        let Verdict::Decide(j) = verdict else {
            panic!("OPEN is decided")
        };
        assert_eq!(
            self.reply(id, Reply::Handle(Handle::new(handle))),
            Relay::Forward
        );
        j
    }
}

fn name(path: &'static str) -> NameEntry<'static> {
    NameEntry {
        filename: path.into(),
        longname: path.into(),
        attrs: Attrs::EMPTY,
    }
}

fn ok() -> Reply<'static> {
    Reply::Status(Status {
        code: StatusCode::OK,
        text: None,
    })
}

fn summary(j: &Judgement) -> (OperationKind, &str, Vec<&str>, Option<&str>) {
    (
        j.kind(),
        j.text(),
        j.objects().iter().map(String::as_str).collect(),
        j.unknown_objects(),
    )
}

const H1: &[u8] = b"\0\0\0\x01";
const H2: &[u8] = b"\0\0\0\x02";

/// A request and the kind, text and objects it must be judged to have.
type Case<'a> = (Op<'a>, (OperationKind, &'a str, Vec<&'a str>));

#[test]
fn path_requests_are_reads_and_writes_of_absolute_paths() {
    use OperationKind::{Read, Write};
    let mut s = Session::new();
    let attrs = Attrs {
        permissions: Some(0o100600),
        size: Some(0),
        ..Attrs::EMPTY
    };
    let cases: Vec<Case<'_>> = vec![
        (
            Op::Stat {
                path: "notes.txt".into(),
            },
            (
                Read,
                "sftp stat /home/demo/notes.txt",
                vec!["/home/demo/notes.txt"],
            ),
        ),
        (
            Op::Lstat {
                path: "/etc".into(),
            },
            (Read, "sftp lstat /etc", vec!["/etc"]),
        ),
        (
            Op::Readlink { path: "l".into() },
            (Read, "sftp readlink /home/demo/l", vec!["/home/demo/l"]),
        ),
        (
            Op::Realpath {
                path: "/srv//x/.".into(),
            },
            (Read, "sftp realpath /srv/x", vec!["/srv/x"]),
        ),
        (
            Op::Realpath { path: "".into() },
            (Read, "sftp realpath /home/demo", vec!["/home/demo"]),
        ),
        (
            Op::Opendir { path: ".".into() },
            (Read, "sftp opendir /home/demo", vec!["/home/demo"]),
        ),
        (
            Op::Open {
                filename: "notes.txt".into(),
                flags: OpenFlags::READ,
                attrs: Attrs::EMPTY,
            },
            (
                Read,
                "sftp open-read /home/demo/notes.txt",
                vec!["/home/demo/notes.txt"],
            ),
        ),
        (
            Op::Open {
                filename: "up.bin".into(),
                flags: OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::TRUNC,
                attrs: Attrs {
                    permissions: Some(0o644),
                    ..Attrs::EMPTY
                },
            },
            (
                Write,
                "sftp open-write /home/demo/up.bin (create, truncate) mode=644",
                vec!["/home/demo/up.bin"],
            ),
        ),
        (
            Op::Open {
                filename: "log".into(),
                flags: OpenFlags::WRITE | OpenFlags::APPEND,
                attrs: Attrs::EMPTY,
            },
            (
                Write,
                "sftp open-write /home/demo/log (append)",
                vec!["/home/demo/log"],
            ),
        ),
        (
            Op::Remove {
                filename: "a".into(),
            },
            (Write, "sftp remove /home/demo/a", vec!["/home/demo/a"]),
        ),
        (
            Op::Mkdir {
                path: "d".into(),
                attrs: Attrs {
                    permissions: Some(0o755),
                    ..Attrs::EMPTY
                },
            },
            (
                Write,
                "sftp mkdir /home/demo/d mode=755",
                vec!["/home/demo/d"],
            ),
        ),
        (
            Op::Rmdir { path: "d".into() },
            (Write, "sftp rmdir /home/demo/d", vec!["/home/demo/d"]),
        ),
        (
            Op::Setstat {
                path: "a".into(),
                attrs,
            },
            (
                Write,
                "sftp setstat /home/demo/a size=0 mode=100600",
                vec!["/home/demo/a"],
            ),
        ),
        (
            Op::Rename {
                old_path: "/a".into(),
                new_path: "b".into(),
            },
            (
                Write,
                "sftp rename /a /home/demo/b",
                vec!["/a", "/home/demo/b"],
            ),
        ),
        (
            Op::Symlink {
                target_path: "../shared/key".into(),
                link_path: "/srv/app/link".into(),
            },
            (
                Write,
                "sftp symlink /srv/app/link -> ../shared/key",
                vec!["/srv/app/link", "/srv/shared/key"],
            ),
        ),
        (
            Op::Extended(Extended::PosixRename {
                old_path: "a".into(),
                new_path: "b".into(),
            }),
            (
                Write,
                "sftp posix-rename /home/demo/a /home/demo/b",
                vec!["/home/demo/a", "/home/demo/b"],
            ),
        ),
        (
            Op::Extended(Extended::Hardlink {
                old_path: "/etc/shadow".into(),
                new_path: "s".into(),
            }),
            (
                Write,
                "sftp hardlink /etc/shadow /home/demo/s",
                vec!["/etc/shadow", "/home/demo/s"],
            ),
        ),
        (
            Op::Extended(Extended::Statvfs { path: "/".into() }),
            (Read, "sftp statvfs /", vec!["/"]),
        ),
        (
            Op::Extended(Extended::Lsetstat {
                path: "l".into(),
                attrs: Attrs {
                    times: Some(crate::sftp::codec::Times { atime: 1, mtime: 2 }),
                    ..Attrs::EMPTY
                },
            }),
            (
                Write,
                "sftp lsetstat /home/demo/l atime=1 mtime=2",
                vec!["/home/demo/l"],
            ),
        ),
        (
            Op::Extended(Extended::Limits),
            (Read, "sftp limits", vec![]),
        ),
        (
            Op::Extended(Extended::ExpandPath {
                path: "x/../y".into(),
            }),
            (
                Read,
                "sftp expand-path /home/demo/x/../y",
                vec!["/home/demo/y"],
            ),
        ),
        (
            Op::Extended(Extended::HomeDirectory {
                username: "".into(),
            }),
            (Read, "sftp home-directory", vec![]),
        ),
        (
            Op::Extended(Extended::HomeDirectory {
                username: "bob".into(),
            }),
            (Read, "sftp home-directory bob", vec![]),
        ),
        (
            Op::Extended(Extended::UsersGroupsById {
                uids: IdList::new(&[0, 1000]),
                gids: IdList::new(&[]),
            }),
            (Read, "sftp users-groups-by-id uids=0,1000 gids=", vec![]),
        ),
    ];
    for (op, (kind, text, objects)) in cases {
        let j = s.decide(op);
        let got: Vec<&str> = j.objects().iter().map(String::as_str).collect();
        assert_eq!((j.kind(), j.text(), got), (kind, text, objects), "{op:?}");
        assert!(j.parts().is_empty(), "{op:?}");
        assert_eq!(j.note(), None);
    }
}

#[test]
fn paths_that_are_not_known_exactly_say_why() {
    let mut s = Session::new();
    let j = s.decide(Op::Stat {
        path: "../../etc/passwd".into(),
    });
    assert_eq!(
        summary(&j),
        (
            OperationKind::Read,
            "sftp stat /home/demo/../../etc/passwd",
            vec!["/etc/passwd"],
            Some("`..` may cross symlinks")
        )
    );
    let j = s.decide(Op::Remove {
        filename: ByteStr::new(b"caf\xe9 menu.txt"),
    });
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            r#"sftp remove "/home/demo/caf\xe9 menu.txt""#,
            vec![r"/home/demo/caf\xe9 menu.txt"],
            Some("the path is not UTF-8 (shown with \\x escapes)")
        )
    );
    let j = s.decide(Op::Extended(Extended::ExpandPath {
        path: "~bob/x".into(),
    }));
    assert_eq!(
        summary(&j),
        (
            OperationKind::Read,
            "sftp expand-path ~bob/x",
            vec!["~bob/x"],
            Some("`~` is expanded by the server")
        )
    );
    // A symlink's target is resolved against the link's directory, `..` and all.
    let j = s.decide(Op::Symlink {
        target_path: "../../etc".into(),
        link_path: "l".into(),
    });
    assert_eq!(j.objects(), ["/home/demo/l", "/etc"]);
    assert_eq!(j.unknown_objects(), Some("`..` may cross symlinks"));
    // Names that would forge a line of a log are quoted.
    let j = s.decide(Op::Stat {
        path: "a\nsftp remove /x".into(),
    });
    assert_eq!(j.text(), r#"sftp stat "/home/demo/a\nsftp remove /x""#);
}

#[test]
fn paths_with_nul_are_answered_bad_message_and_never_forwarded() {
    let mut s = Session::new();
    assert_eq!(
        s.answered(Op::Open {
            filename: ByteStr::new(b"/allowed\0/../secret"),
            flags: OpenFlags::READ,
            attrs: Attrs::EMPTY,
        }),
        (
            Some(0),
            "BAD_MESSAGE sod: a path in OPEN contains a NUL byte".into()
        )
    );
    assert_eq!(s.judge.outstanding(), 0);
    assert_eq!(
        s.answered(Op::Symlink {
            target_path: ByteStr::new(b"a\0"),
            link_path: "b".into(),
        })
        .1,
        "BAD_MESSAGE sod: a path in SYMLINK contains a NUL byte"
    );
}

#[test]
fn before_the_working_directory_is_known_relative_paths_are_unknown() {
    let mut judge = Judge::default();
    let mut init = BytesMut::new();
    Init {
        version: 3,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut init)
    .expect("encodes");
    assert!(matches!(judge.request(&frame(&init)), Verdict::Forward));
    // A client that does not wait for VERSION.
    let stat = Request {
        id: 1,
        op: Op::Stat { path: "x".into() },
    };
    let Verdict::Decide(j) = judge.request(&frame(&stat.to_bytes().expect("encodes"))) else {
        panic!("decided")
    };
    assert_eq!(j.objects(), ["~/x"]);
    assert_eq!(
        j.unknown_objects(),
        Some("the session's working directory is not known yet")
    );
}

#[test]
fn requests_before_init_and_servers_of_other_versions_are_refused() {
    let mut judge = Judge::default();
    let stat = Request {
        id: 4,
        op: Op::Stat { path: "/".into() },
    }
    .to_bytes()
    .expect("encodes");
    let Verdict::Answer { reply, refusal } = judge.request(&frame(&stat)) else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply),
        (Some(4), "BAD_MESSAGE sod: request before INIT".into())
    );
    assert_eq!(refusal.as_deref(), Some("sod: request before INIT"));

    let mut init = BytesMut::new();
    Init {
        version: 6,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut init)
    .expect("encodes");
    assert!(matches!(judge.request(&frame(&init)), Verdict::Forward));
    let mut version = BytesMut::new();
    Version {
        version: 6,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut version)
    .expect("encodes");
    assert_eq!(judge.response(&frame(&version)), Relay::Forward);
    let Verdict::Answer { reply, .. } = judge.request(&frame(&stat)) else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply).1,
        "OP_UNSUPPORTED sod: the server speaks SFTP version 6; sod speaks version 3 only"
    );
    // An INIT that does not parse has no id to answer: the channel closes.
    let Verdict::Abort(why) = Judge::default().request(&frame(&[0, 0, 0, 3, 1, 0, 0])) else {
        panic!("abort")
    };
    assert_eq!(
        why,
        "SFTP INIT version needs 4 bytes, the packet has 2 left"
    );
}

#[test]
fn malformed_and_unknown_requests() {
    let mut s = Session::new();
    // Trailing bytes: OpenSSH would ignore them; the gateway does not forward them.
    let Verdict::Answer { reply, refusal } = s.judge.request(&frame(&[
        0, 0, 0, 12, 17, 0, 0, 0, 9, 0, 0, 0, 1, b'/', 0, 0,
    ])) else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply),
        (
            Some(9),
            "BAD_MESSAGE sod: SFTP STAT has 2 unexpected bytes after its last field".into()
        )
    );
    assert!(refusal.is_some());
    // OpenSSH's server does not answer a type it does not know; the gateway does.
    let Verdict::Answer { reply, .. } = s.judge.request(&frame(&[0, 0, 0, 5, 99, 0, 0, 0, 8]))
    else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply),
        (
            Some(8),
            "OP_UNSUPPORTED sod: unknown SFTP request type 99".into()
        )
    );
    // An unknown extension is Unknown: policy refuses it, and the record says why.
    let j = s.decide(Op::Extended(Extended::Other {
        name: "exec@evil.example".into(),
        data: b"rm -rf /",
    }));
    assert_eq!(j.kind(), OperationKind::Unknown);
    assert_eq!(j.text(), "sftp extended exec@evil.example");
    assert_eq!(
        j.note(),
        Some("sod does not know what the SFTP extension exec@evil.example does")
    );
    let op = j.operation(Target::new("ssh/app"));
    assert_eq!(op.kind(), OperationKind::Unknown);
    assert_eq!(op.note(), j.note());
    // Open flags version 3 does not define.
    let j = s.decide(Op::Open {
        filename: "/x".into(),
        flags: OpenFlags(0x41),
        attrs: Attrs::EMPTY,
    });
    assert_eq!(j.kind(), OperationKind::Unknown);
    assert_eq!(j.text(), "sftp open /x (flags 0x41)");
}

#[test]
fn handles_are_learned_from_the_answer_to_their_open() {
    let mut s = Session::new();
    let j = s.open("notes.txt", OpenFlags::READ, H1);
    assert!(j.reads_file());
    assert_eq!(
        s.judge.handle(H1),
        Some(HandleInfo {
            path: "/home/demo/notes.txt",
            kind: HandleKind::File {
                read: true,
                write: false
            }
        })
    );
    // Reads on the handle are part of the open.
    let read = Op::Read {
        handle: H1.into(),
        offset: 0,
        len: 32768,
    };
    let (id, v) = s.send(read);
    assert!(matches!(v, Verdict::Forward));
    assert_eq!(s.reply(id, Reply::Data(b"x")), Relay::Forward);
    assert!(matches!(
        s.send(Op::Fstat { handle: H1.into() }).1,
        Verdict::Forward
    ));
    assert!(matches!(
        s.send(Op::Extended(Extended::Fstatvfs { handle: H1.into() }))
            .1,
        Verdict::Forward
    ));
    // A write on a handle opened for reading is refused by the gateway.
    assert_eq!(
        s.answered(Op::Write {
            handle: H1.into(),
            offset: 0,
            data: b"x",
        })
        .1,
        "PERMISSION_DENIED sod: /home/demo/notes.txt was opened for reading only"
    );
    assert_eq!(
        s.answered(Op::Readdir { handle: H1.into() }).1,
        "FAILURE sod: READDIR on the file handle of /home/demo/notes.txt"
    );
    // FSETSTAT is a write of the handle's path, decided on its own.
    let (fsetstat, v) = s.send(Op::Fsetstat {
        handle: H1.into(),
        attrs: Attrs {
            permissions: Some(0o600),
            ..Attrs::EMPTY
        },
    });
    let Verdict::Decide(j) = v else {
        panic!("decided")
    };
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            "sftp fsetstat /home/demo/notes.txt mode=600",
            vec!["/home/demo/notes.txt"],
            None
        )
    );
    assert_eq!(s.reply(fsetstat, ok()), Relay::Forward);
    // CLOSE forgets the handle at once: later requests on it are refused.
    assert!(matches!(
        s.send(Op::Close { handle: H1.into() }).1,
        Verdict::Forward
    ));
    assert_eq!(s.judge.handle(H1), None);
    assert_eq!(
        s.answered(Op::Read {
            handle: H1.into(),
            offset: 0,
            len: 1
        })
        .1,
        "FAILURE sod: READ on a handle this session did not open"
    );
}

#[test]
fn unknown_handles_fail_closed() {
    let mut s = Session::new();
    let h: Handle<'_> = H2.into();
    for op in [
        Op::Read {
            handle: h,
            offset: 0,
            len: 1,
        },
        Op::Write {
            handle: h,
            offset: 0,
            data: b"",
        },
        Op::Fstat { handle: h },
        Op::Fsetstat {
            handle: h,
            attrs: Attrs::EMPTY,
        },
        Op::Readdir { handle: h },
        Op::Close { handle: h },
        Op::Extended(Extended::Fsync { handle: h }),
        Op::Extended(Extended::Fstatvfs { handle: h }),
        Op::Extended(Extended::CopyData {
            read_handle: h,
            read_offset: 0,
            read_len: 0,
            write_handle: h,
            write_offset: 0,
        }),
    ] {
        let (_, text) = s.answered(op);
        assert!(
            text.starts_with("FAILURE sod: ")
                && text.ends_with(" on a handle this session did not open"),
            "{text}"
        );
    }
    assert_eq!(s.judge.outstanding(), 0);
}

#[test]
fn write_handles_and_directory_handles() {
    let mut s = Session::new();
    let j = s.open("up.bin", OpenFlags::WRITE | OpenFlags::CREAT, H1);
    assert!(!j.reads_file());
    assert!(matches!(
        s.send(Op::Write {
            handle: H1.into(),
            offset: 0,
            data: b"abc",
        })
        .1,
        Verdict::Forward
    ));
    assert!(matches!(
        s.send(Op::Extended(Extended::Fsync { handle: H1.into() }))
            .1,
        Verdict::Forward
    ));
    assert_eq!(
        s.answered(Op::Read {
            handle: H1.into(),
            offset: 0,
            len: 3
        })
        .1,
        "PERMISSION_DENIED sod: /home/demo/up.bin was not opened for reading"
    );

    let (id, v) = s.send(Op::Opendir {
        path: "/srv".into(),
    });
    assert!(matches!(v, Verdict::Decide(_)));
    assert_eq!(s.reply(id, Reply::Handle(H2.into())), Relay::Forward);
    assert_eq!(
        s.judge.handle(H2).map(|h| h.kind),
        Some(HandleKind::Directory)
    );
    assert!(matches!(
        s.send(Op::Readdir { handle: H2.into() }).1,
        Verdict::Forward
    ));
    assert_eq!(
        s.answered(Op::Read {
            handle: H2.into(),
            offset: 0,
            len: 1
        })
        .1,
        "FAILURE sod: READ on the directory handle of /srv"
    );
}

#[test]
fn read_write_opens_are_a_read_and_a_write() {
    let mut s = Session::new();
    let j = s.decide(Op::Open {
        filename: "db".into(),
        flags: OpenFlags::READ | OpenFlags::WRITE,
        attrs: Attrs::EMPTY,
    });
    assert_eq!(j.kind(), OperationKind::Write);
    assert_eq!(j.text(), "sftp open-read-write /home/demo/db");
    let parts: Vec<_> = j.parts().iter().map(|p| (p.kind(), p.text())).collect();
    assert_eq!(
        parts,
        [
            (OperationKind::Read, "sftp open-read /home/demo/db"),
            (OperationKind::Write, "sftp open-write /home/demo/db")
        ]
    );
    assert!(!j.reads_file());
    let op = j.operation(Target::new("ssh/app"));
    assert_eq!(op.parts().len(), 2);
    assert_eq!(
        op.atoms().map(|a| a.kind()).collect::<Vec<_>>(),
        [OperationKind::Read, OperationKind::Write]
    );
    // Without WRITE, OpenSSH opens O_RDONLY: CREAT alone both creates and reads.
    let j = s.decide(Op::Open {
        filename: "new".into(),
        flags: OpenFlags::CREAT,
        attrs: Attrs::EMPTY,
    });
    assert_eq!(j.text(), "sftp open-read-write /home/demo/new (create)");
    assert_eq!(j.parts().len(), 2);
}

#[test]
fn copy_data_is_a_read_of_one_handle_and_a_write_of_the_other() {
    let mut s = Session::new();
    s.open("/src", OpenFlags::READ, H1);
    s.open(
        "/dst",
        OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::TRUNC,
        H2,
    );
    let j = s.decide(Op::Extended(Extended::CopyData {
        read_handle: H1.into(),
        read_offset: 0,
        read_len: 0,
        write_handle: H2.into(),
        write_offset: 5,
    }));
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            "sftp copy-data /src -> /dst (from 0, to the end, to 5)",
            vec!["/src", "/dst"],
            None
        )
    );
    let parts: Vec<_> = j
        .parts()
        .iter()
        .map(|p| (p.kind(), p.text(), p.objects().to_vec()))
        .collect();
    assert_eq!(
        parts,
        [
            (
                OperationKind::Read,
                "sftp read /src",
                vec!["/src".to_owned()]
            ),
            (
                OperationKind::Write,
                "sftp write /dst",
                vec!["/dst".to_owned()]
            )
        ]
    );
    // The wrong way round.
    assert_eq!(
        s.answered(Op::Extended(Extended::CopyData {
            read_handle: H2.into(),
            read_offset: 0,
            read_len: 0,
            write_handle: H1.into(),
            write_offset: 0,
        }))
        .1,
        "PERMISSION_DENIED sod: copy-data needs a file opened for reading (/dst) and one opened for writing (/src)"
    );
}

#[test]
fn pipelined_requests_are_matched_by_id() {
    let mut s = Session::new();
    let open = |path: &'static str| Op::Open {
        filename: path.into(),
        flags: OpenFlags::READ,
        attrs: Attrs::EMPTY,
    };
    let (a, _) = s.send(open("/a"));
    let (b, _) = s.send(Op::Stat { path: "/x".into() });
    let (c, _) = s.send(Op::Opendir { path: "/c".into() });
    assert_eq!(s.judge.outstanding(), 3);
    // Answered out of order.
    assert_eq!(s.reply(c, Reply::Handle(H1.into())), Relay::Forward);
    assert_eq!(s.reply(b, Reply::Attrs(Attrs::EMPTY)), Relay::Forward);
    assert_eq!(s.reply(a, Reply::Handle(H2.into())), Relay::Forward);
    assert_eq!(s.judge.handle(H1).map(|h| h.path), Some("/c"));
    assert_eq!(s.judge.handle(H2).map(|h| h.path), Some("/a"));
    assert_eq!(s.judge.outstanding(), 0);
    // An answer to a request never sent teaches nothing.
    assert_eq!(
        s.reply(77, Reply::Handle(b"\0\0\0\x09".into())),
        Relay::Forward
    );
    assert_eq!(s.judge.handle(b"\0\0\0\x09"), None);
    // A failed open leaves no handle.
    let (d, _) = s.send(open("/d"));
    assert_eq!(
        s.reply(
            d,
            Reply::Status(Status {
                code: StatusCode::NO_SUCH_FILE,
                text: Some(StatusText {
                    message: "No such file".into(),
                    language: Some("".into())
                })
            })
        ),
        Relay::Forward
    );
    assert_eq!(s.judge.open_handles(), 2);
}

#[test]
fn an_id_in_use_and_too_many_outstanding_requests_are_refused() {
    let mut s = Session::with_limits(JudgeLimits {
        max_outstanding: 3,
        ..JudgeLimits::DEFAULT
    });
    assert!(matches!(
        s.send_as(5, Op::Stat { path: "/a".into() }),
        Verdict::Decide(_)
    ));
    let Verdict::Answer { reply, .. } = s.send_as(5, Op::Stat { path: "/b".into() }) else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply),
        (
            Some(5),
            "BAD_MESSAGE sod: request id 5 is already waiting for an answer".into()
        )
    );
    assert!(matches!(
        s.send_as(6, Op::Stat { path: "/b".into() }),
        Verdict::Decide(_)
    ));
    assert!(matches!(
        s.send_as(7, Op::Stat { path: "/c".into() }),
        Verdict::Decide(_)
    ));
    let Verdict::Answer { reply, .. } = s.send_as(8, Op::Stat { path: "/d".into() }) else {
        panic!("answered")
    };
    assert_eq!(
        seen(&reply).1,
        "FAILURE sod: more than 3 requests are waiting for answers"
    );
    // An answer frees a slot.
    assert_eq!(s.reply(6, ok()), Relay::Forward);
    assert!(matches!(
        s.send_as(8, Op::Stat { path: "/d".into() }),
        Verdict::Decide(_)
    ));
}

#[test]
fn a_refused_open_is_forgotten_and_never_yields_a_handle() {
    let mut s = Session::new();
    let (id, v) = s.send(Op::Open {
        filename: "/secret".into(),
        flags: OpenFlags::READ,
        attrs: Attrs::EMPTY,
    });
    assert!(matches!(v, Verdict::Decide(_)));
    let refusal = Refusal::new(RefusalCode::PolicyDenied, "reads of /secret are denied")
        .with_rule("no-secrets");
    assert_eq!(
        seen(&s.judge.refuse(id, &refusal)),
        (
            Some(id),
            "PERMISSION_DENIED sod: refused by rule `no-secrets`: reads of /secret are denied"
                .into()
        )
    );
    assert_eq!(s.judge.outstanding(), 0);
    // The id is free again, and a HANDLE for it (which no server would send) teaches nothing.
    assert_eq!(s.reply(id, Reply::Handle(H1.into())), Relay::Forward);
    assert_eq!(s.judge.handle(H1), None);
    let outage = Refusal::new(
        RefusalCode::AuditUnavailable,
        "the audit log cannot be written",
    );
    assert!(
        seen(&s.judge.refuse(3, &outage))
            .1
            .starts_with("FAILURE sod: refused (audit_unavailable)")
    );
}

#[test]
fn the_handle_limit_counts_opens_in_flight() {
    let mut s = Session::with_limits(JudgeLimits {
        max_handles: 2,
        ..JudgeLimits::DEFAULT
    });
    s.open("/a", OpenFlags::READ, H1);
    let (_, v) = s.send(Op::Opendir { path: "/b".into() });
    assert!(matches!(v, Verdict::Decide(_)));
    assert_eq!(
        s.answered(Op::Open {
            filename: "/c".into(),
            flags: OpenFlags::READ,
            attrs: Attrs::EMPTY
        })
        .1,
        "FAILURE sod: this session has 2 handles open, the most it may"
    );
}

/// Replaces every digit with `#`: a stand-in for the value detectors.
fn digits(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if b.is_ascii_digit() { b'#' } else { *b })
        .collect()
}

#[test]
fn masked_opens_are_read_whole_and_served_masked() {
    let mut s = Session::with_limits(JudgeLimits {
        masked_read_chunk: 8,
        ..JudgeLimits::DEFAULT
    });
    let (open_id, v) = s.send(Op::Open {
        filename: "card.txt".into(),
        flags: OpenFlags::READ,
        attrs: Attrs::EMPTY,
    });
    let Verdict::Decide(j) = v else {
        panic!("decided")
    };
    assert!(j.reads_file());
    s.judge
        .serve_masked(open_id, digits)
        .expect("a read-only open");
    // The server's HANDLE is held back; the judge reads the file itself.
    let handle_reply = Response {
        id: open_id,
        reply: Reply::Handle(H1.into()),
    }
    .to_bytes()
    .expect("encodes");
    let mut relay = s.judge.response(&frame(&handle_reply));
    let file = b"card 4111 1111 1111 1111\n";
    let mut offset = 0;
    loop {
        let Relay::Withhold {
            to_server: Some(read),
            to_client: None,
        } = relay
        else {
            panic!("another read: {relay:?}")
        };
        let (id, op) = own_request(&read);
        assert_eq!(
            op,
            format!("Read {{ handle: Handle(00000001), offset: {offset}, len: 8 }}")
        );
        assert_eq!(s.judge.handle(H1), None, "not the client's yet");
        let chunk = &file[offset..file.len().min(offset + 8)];
        relay = if chunk.is_empty() {
            s.reply(
                id,
                Reply::Status(Status {
                    code: StatusCode::EOF,
                    text: None,
                }),
            )
        } else {
            offset += chunk.len();
            s.reply(id, Reply::Data(chunk))
        };
        if let Relay::Withhold {
            to_client: Some(released),
            ..
        } = &relay
        {
            assert_eq!(released, &handle_reply, "the server's HANDLE, unchanged");
            break;
        }
    }
    assert_eq!(
        s.judge.handle(H1),
        Some(HandleInfo {
            path: "/home/demo/card.txt",
            kind: HandleKind::Masked { len: 25 }
        })
    );
    // Reads and FSTAT are answered from the masked copy, pipelined or not.
    let read = |offset, len| Op::Read {
        handle: H1.into(),
        offset,
        len,
    };
    assert_eq!(s.answered(read(0, 9)).1, "DATA card ####");
    assert_eq!(s.answered(read(9, 100)).1, "DATA  #### #### ####\n");
    assert_eq!(s.answered(read(25, 100)).1, "EOF End of file");
    assert_eq!(
        s.answered(Op::Fstat { handle: H1.into() }).1,
        "ATTRS size=Some(25)"
    );
    assert_eq!(
        s.answered(Op::Write {
            handle: H1.into(),
            offset: 0,
            data: b"x"
        })
        .1,
        "PERMISSION_DENIED sod: /home/demo/card.txt was opened for reading only"
    );
    // copy-data would copy the unmasked file on the server.
    s.open("/dst", OpenFlags::WRITE | OpenFlags::CREAT, H2);
    assert!(
        s.answered(Op::Extended(Extended::CopyData {
            read_handle: H1.into(),
            read_offset: 0,
            read_len: 0,
            write_handle: H2.into(),
            write_offset: 0,
        }))
        .1
        .contains("is read masked in this session")
    );
    assert_eq!(s.judge.masked_held, 25);
    // CLOSE goes to the server, which closes its file; the copy is dropped.
    let (close, v) = s.send(Op::Close { handle: H1.into() });
    assert!(matches!(v, Verdict::Forward));
    assert_eq!(s.reply(close, ok()), Relay::Forward);
    assert_eq!(s.judge.masked_held, 0);
    assert_eq!(s.judge.handle(H1), None);
}

#[test]
fn a_masked_open_of_a_file_too_large_fails_and_closes_it() {
    let mut s = Session::with_limits(JudgeLimits {
        max_masked_file: 10,
        masked_read_chunk: 8,
        ..JudgeLimits::DEFAULT
    });
    let (open_id, _) = s.send(Op::Open {
        filename: "big".into(),
        flags: OpenFlags::READ,
        attrs: Attrs::EMPTY,
    });
    s.judge.serve_masked(open_id, digits).expect("read-only");
    let Relay::Withhold {
        to_server: Some(read),
        ..
    } = s.reply(open_id, Reply::Handle(H1.into()))
    else {
        panic!("a read")
    };
    let (id, _) = own_request(&read);
    let Relay::Withhold {
        to_server: Some(read),
        ..
    } = s.reply(id, Reply::Data(b"12345678"))
    else {
        panic!("a read")
    };
    let (id, _) = own_request(&read);
    let Relay::Withhold {
        to_server: Some(close),
        to_client: Some(failure),
    } = s.reply(id, Reply::Data(b"12345678"))
    else {
        panic!("a failure")
    };
    assert_eq!(
        seen(&failure),
        (
            Some(open_id),
            "FAILURE sod: /home/demo/big is larger than 10 bytes, the most a masked session may read"
                .into()
        )
    );
    let (close_id, op) = own_request(&close);
    assert_eq!(op, "Close { handle: Handle(00000001) }");
    assert_eq!(s.judge.handle(H1), None);
    assert_eq!(
        s.reply(close_id, ok()),
        Relay::NOTHING,
        "the judge's own CLOSE"
    );
    assert_eq!((s.judge.outstanding(), s.judge.masked_held), (0, 0));
}

#[test]
fn only_read_only_opens_can_be_served_masked() {
    let mut s = Session::new();
    let (id, _) = s.send(Op::Open {
        filename: "f".into(),
        flags: OpenFlags::READ | OpenFlags::WRITE,
        attrs: Attrs::EMPTY,
    });
    assert_eq!(
        s.judge.serve_masked(id, digits),
        Err(ServeMaskedError::NotReadOnly)
    );
    let (stat, _) = s.send(Op::Stat { path: "f".into() });
    assert_eq!(
        s.judge.serve_masked(stat, digits),
        Err(ServeMaskedError::NotAnOpen(stat))
    );
    assert_eq!(
        ServeMaskedError::NotReadOnly.to_string(),
        "a masked session may open files for reading only"
    );
}

#[test]
fn operations_carry_kind_text_objects_and_unknowns() {
    let mut s = Session::new();
    let j = s.decide(Op::Rename {
        old_path: "../a".into(),
        new_path: "/b".into(),
    });
    let op = j.operation(Target::new("ssh/app"));
    assert_eq!(op.kind(), OperationKind::Write);
    assert_eq!(op.text(), "sftp rename /home/demo/../a /b");
    assert_eq!(op.objects(), ["/home/a", "/b"]);
    assert_eq!(op.unknown_objects(), Some("`..` may cross symlinks"));
    assert!(op.parts().is_empty());
    let again = s.decide(Op::Rename {
        old_path: "../a".into(),
        new_path: "/b".into(),
    });
    assert_eq!(
        again.operation(Target::new("ssh/app")).fingerprint(),
        op.fingerprint(),
        "the same request is the same operation"
    );
    let other = s.decide(Op::Rename {
        old_path: "../a".into(),
        new_path: "/c".into(),
    });
    assert_ne!(
        other.operation(Target::new("ssh/app")).fingerprint(),
        op.fingerprint()
    );
    let debug = format!("{:?}", s.judge);
    assert!(
        debug.starts_with("Judge {") && debug.contains("/home/demo"),
        "{debug}"
    );
}

#[test]
fn the_working_directory_is_taken_once_and_only_if_absolute() {
    let mut judge = Judge::default();
    judge.learn_cwd(Some(b"relative"));
    assert_eq!(judge.cwd(), None);
    judge.learn_cwd(Some(b"/a\0b"));
    assert_eq!(judge.cwd(), None);
    judge.learn_cwd(Some(b"/srv"));
    judge.learn_cwd(Some(b"/other"));
    assert_eq!(judge.cwd(), Some(&b"/srv"[..]));
    // The client's own REALPATH "." teaches it too, when the judge's did not.
    let mut s = Session::new();
    s.judge.cwd = None;
    let (id, v) = s.send(Op::Realpath { path: ".".into() });
    assert!(matches!(v, Verdict::Decide(_)));
    assert_eq!(
        s.reply(id, Reply::Name(Names::new(&[name("/root")]))),
        Relay::Forward
    );
    assert_eq!(s.judge.cwd(), Some(&b"/root"[..]));
}

#[test]
fn a_server_that_answers_realpath_with_an_error_still_gets_its_version_through() {
    let mut judge = Judge::default();
    let mut init = BytesMut::new();
    Init {
        version: 3,
        extensions: Pairs::EMPTY,
    }
    .encode(&mut init)
    .expect("encodes");
    let _ = judge.request(&frame(&init));
    let version = frame(&[0, 0, 0, 5, 2, 0, 0, 0, 3]);
    let Relay::Withhold {
        to_server: Some(realpath),
        ..
    } = judge.response(&version)
    else {
        panic!("withheld")
    };
    let (id, _) = own_request(&realpath);
    let failure = Response {
        id,
        reply: Reply::Status(Status {
            code: StatusCode::PERMISSION_DENIED,
            text: None,
        }),
    }
    .to_bytes()
    .expect("encodes");
    assert_eq!(
        judge.response(&frame(&failure)),
        Relay::Withhold {
            to_server: None,
            to_client: Some(version.raw().clone())
        }
    );
    assert_eq!(judge.cwd(), None);
}

#[test]
fn a_handle_cannot_be_closed_under_a_decision_about_it() {
    // FSETSTAT waits for its decision; a CLOSE overtaking it would let the server give the
    // same handle bytes to another file, and the decision about this one be applied there.
    let mut s = Session::new();
    s.open("/a", OpenFlags::READ, H1);
    let (fsetstat, v) = s.send(Op::Fsetstat {
        handle: H1.into(),
        attrs: Attrs {
            size: Some(0),
            ..Attrs::EMPTY
        },
    });
    assert!(matches!(v, Verdict::Decide(_)));
    assert_eq!(
        s.answered(Op::Close { handle: H1.into() }).1,
        "FAILURE sod: a request on the handle of /a is still waiting for its answer"
    );
    assert!(s.judge.handle(H1).is_some());
    // Answered (or refused), the handle closes as usual.
    assert_eq!(s.reply(fsetstat, ok()), Relay::Forward);
    assert!(matches!(
        s.send(Op::Close { handle: H1.into() }).1,
        Verdict::Forward
    ));
    assert_eq!(s.judge.handle(H1), None);
}
