//! The SFTP codec and judge against OpenSSH's own `sftp-server`, started as a child process
//! on pipes in a temporary directory (`-d`), driven with packets the codec encodes. Every
//! packet the server sends is decoded and must re-encode to its exact bytes; the judge sits
//! in between as the gateway would run it.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sod_core::{OperationKind, Refusal, RefusalCode};
use sod_ssh::sftp::codec::{
    Attrs, ByteStr, Extended, Frame, IdList, Init, Limits, Op, OpenFlags, Pairs, Reply, Request,
    ServerMessage, StatusCode, decode_frame, ext,
};
use sod_ssh::sftp::{HandleInfo, HandleKind, Judge, JudgeLimits, Judgement, Relay, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(10);

fn sftp_server() -> PathBuf {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/lib/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/libexec/openssh/sftp-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("OpenSSH's sftp-server (apt-get install openssh-sftp-server)")
}

/// What the gateway did with a client packet.
#[derive(Debug)]
enum Sent {
    Forwarded,
    Decided(Judgement),
    Answered,
}

/// The gateway's loop around one `sftp-server`, with every decision allowed.
struct Gateway {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    buf: BytesMut,
    judge: Judge,
    next_id: u32,
    /// Packets the client is owed and has not read yet.
    to_client: VecDeque<Bytes>,
    /// How many server packets were checked byte for byte.
    checked: usize,
}

impl Gateway {
    async fn start(dir: &Path, limits: JudgeLimits) -> Self {
        let mut child = Command::new(sftp_server())
            .arg("-d")
            .arg(dir)
            .args(["-e", "-l", "ERROR"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("sftp-server starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut gw = Self {
            _child: child,
            stdin,
            stdout,
            buf: BytesMut::new(),
            judge: Judge::new(limits),
            next_id: 0,
            to_client: VecDeque::new(),
            checked: 0,
        };
        let mut init = BytesMut::new();
        Init {
            version: 3,
            extensions: Pairs::EMPTY,
        }
        .encode(&mut init)
        .expect("encodes");
        assert!(matches!(gw.client(init.freeze()).await, Sent::Forwarded));
        gw
    }

    async fn send_server(&mut self, bytes: &[u8]) {
        self.stdin
            .write_all(bytes)
            .await
            .expect("write to sftp-server");
        self.stdin.flush().await.expect("flush");
    }

    /// The next packet from the server, decoded and checked to re-encode byte for byte.
    async fn server_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, &Limits::default()).expect("frames") {
                let message = frame.server_message().expect("OpenSSH's packets parse");
                let mut again = BytesMut::new();
                message.encode(&mut again).expect("encodes");
                assert_eq!(&again[..], &frame.raw()[..], "byte-exact: {frame:?}");
                self.checked += 1;
                return frame;
            }
            let n = tokio::time::timeout(WAIT, self.stdout.read_buf(&mut self.buf))
                .await
                .expect("sftp-server answers in time")
                .expect("read");
            assert!(n > 0, "sftp-server closed its output");
        }
    }

    /// A client packet through the judge; decisions are allowed.
    async fn client(&mut self, packet: Bytes) -> Sent {
        let mut buf = BytesMut::from(&packet[..]);
        let frame = decode_frame(&mut buf, &Limits::default())
            .expect("frames")
            .expect("whole");
        match self.judge.request(&frame) {
            Verdict::Forward => {
                self.send_server(frame.raw()).await;
                Sent::Forwarded
            }
            Verdict::Decide(j) => {
                self.send_server(frame.raw()).await;
                Sent::Decided(j)
            }
            Verdict::Answer { reply, .. } => {
                self.to_client.push_back(reply);
                Sent::Answered
            }
            Verdict::Abort(why) => panic!("abort: {why}"),
        }
    }

    /// Sends `op` as the next request; returns its id and what the gateway did.
    async fn send(&mut self, op: Op<'_>) -> (u32, Sent) {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = Request { id, op }.to_bytes().expect("encodes");
        (id, self.client(bytes).await)
    }

    /// The next packet the client receives, pumping server packets through the judge.
    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(bytes) = self.to_client.pop_front() {
                let mut buf = BytesMut::from(&bytes[..]);
                return decode_frame(&mut buf, &Limits::default())
                    .expect("frames")
                    .expect("whole");
            }
            let frame = self.server_frame().await;
            match self.judge.response(&frame) {
                Relay::Forward => return frame,
                Relay::Withhold {
                    to_server,
                    to_client,
                } => {
                    if let Some(bytes) = to_server {
                        self.send_server(&bytes).await;
                    }
                    self.to_client.extend(to_client);
                }
            }
        }
    }

    /// Sends `op`, expects a decision, and returns it with the answer.
    async fn decided(&mut self, op: Op<'_>) -> (Judgement, Frame) {
        let (id, sent) = self.send(op).await;
        let Sent::Decided(j) = sent else {
            panic!("expected a decision for {op:?}, got {sent:?}")
        };
        let answer = self.recv().await;
        assert_eq!(answer.id(), Some(id));
        (j, answer)
    }

    /// Sends `op`, expects it forwarded without a decision, and returns the answer.
    async fn forwarded(&mut self, op: Op<'_>) -> Frame {
        let (id, sent) = self.send(op).await;
        assert!(matches!(sent, Sent::Forwarded), "{op:?}: {sent:?}");
        let answer = self.recv().await;
        assert_eq!(answer.id(), Some(id));
        answer
    }

    /// Sends `op`, expects a decision, refuses it as the policy stack would, and returns the
    /// answer the client gets.
    async fn refused(&mut self, op: Op<'_>) -> Frame {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = Request { id, op }.to_bytes().expect("encodes");
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = decode_frame(&mut buf, &Limits::default())
            .expect("frames")
            .expect("whole");
        let Verdict::Decide(j) = self.judge.request(&frame) else {
            panic!("expected a decision for {op:?}")
        };
        let refusal = Refusal::new(RefusalCode::PolicyDenied, "removing files needs approval")
            .with_rule("no-removes");
        let answer = self.judge.refuse(j.id(), &refusal);
        self.to_client.push_back(answer);
        let answer = self.recv().await;
        assert_eq!(answer.id(), Some(id));
        answer
    }

    /// Sends `op`, expects the gateway to answer it, and returns the answer.
    async fn answered(&mut self, op: Op<'_>) -> Frame {
        let (id, sent) = self.send(op).await;
        assert!(matches!(sent, Sent::Answered), "{op:?}: {sent:?}");
        let answer = self.recv().await;
        assert_eq!(answer.id(), Some(id));
        answer
    }
}

fn reply(frame: &Frame) -> Reply<'_> {
    match frame.server_message().expect("parses") {
        ServerMessage::Response(r) => r.reply,
        ServerMessage::Version(v) => panic!("a response, not {v:?}"),
    }
}

/// `STATUS` code and message.
fn status(frame: &Frame) -> (StatusCode, String) {
    match reply(frame) {
        Reply::Status(s) => (
            s.code,
            String::from_utf8_lossy(s.message().as_bytes()).into_owned(),
        ),
        other => panic!("a STATUS, not {other:?}"),
    }
}

fn handle(frame: &Frame) -> Vec<u8> {
    match reply(frame) {
        Reply::Handle(h) => h.as_bytes().to_vec(),
        other => panic!("a HANDLE, not {other:?}"),
    }
}

fn ok(frame: &Frame) {
    assert_eq!(status(frame), (StatusCode::OK, "Success".into()));
}

fn summary(j: &Judgement) -> (OperationKind, String, Vec<String>) {
    (j.kind(), j.text().to_owned(), j.objects().to_vec())
}

fn open(path: &[u8], flags: OpenFlags) -> Op<'_> {
    Op::Open {
        filename: ByteStr::new(path),
        flags,
        attrs: Attrs {
            permissions: Some(0o644),
            ..Attrs::EMPTY
        },
    }
}

const UPLOAD: OpenFlags = OpenFlags(OpenFlags::WRITE.0 | OpenFlags::CREAT.0 | OpenFlags::TRUNC.0);

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    /// The directory as the server reports it.
    cwd: String,
}

fn dir() -> Dir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().canonicalize().expect("canonical");
    let cwd = path.to_str().expect("a UTF-8 temp dir").to_owned();
    Dir {
        _tmp: tmp,
        path,
        cwd,
    }
}

async fn started(d: &Dir, limits: JudgeLimits) -> Gateway {
    let mut gw = Gateway::start(&d.path, limits).await;
    let version = gw.recv().await;
    let ServerMessage::Version(v) = version.server_message().expect("parses") else {
        panic!("VERSION first")
    };
    assert_eq!(v.version, 3);
    for name in [
        ext::POSIX_RENAME,
        ext::STATVFS,
        ext::FSTATVFS,
        ext::HARDLINK,
        ext::FSYNC,
        ext::LSETSTAT,
        ext::LIMITS,
        ext::EXPAND_PATH,
        ext::COPY_DATA,
    ] {
        assert!(
            v.extensions.get(name.as_bytes()).is_some(),
            "OpenSSH announces {name}: {:?}",
            v.extensions
        );
    }
    // The judge asked for `.` before the client got VERSION.
    assert_eq!(gw.judge.cwd(), Some(d.cwd.as_bytes()));
    gw
}

#[tokio::test]
async fn files_through_openssh_sftp_server() {
    let d = dir();
    let cwd = &d.cwd;
    let mut gw = started(&d, JudgeLimits::DEFAULT).await;

    // The client's own REALPATH ".", as `sftp` sends first.
    let (j, name) = gw.decided(Op::Realpath { path: ".".into() }).await;
    assert_eq!(
        summary(&j),
        (
            OperationKind::Read,
            format!("sftp realpath {cwd}"),
            vec![cwd.clone()]
        )
    );
    let Reply::Name(names) = reply(&name) else {
        panic!("NAME")
    };
    assert_eq!(
        names.single().map(|n| n.filename.as_bytes()),
        Some(cwd.as_bytes())
    );

    // Upload: OPEN for writing, WRITE, CLOSE.
    let (id, sent) = gw.send(open(b"notes.txt", UPLOAD)).await;
    let Sent::Decided(j) = sent else {
        panic!("decided")
    };
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            format!("sftp open-write {cwd}/notes.txt (create, truncate) mode=644"),
            vec![format!("{cwd}/notes.txt")]
        )
    );
    let answer = gw.recv().await;
    assert_eq!(answer.id(), Some(id));
    let h = handle(&answer);
    assert_eq!(h.len(), 4, "OpenSSH's handles are a big-endian uint32");
    assert_eq!(
        gw.judge.handle(&h),
        Some(HandleInfo {
            path: &format!("{cwd}/notes.txt"),
            kind: HandleKind::File {
                read: false,
                write: true
            }
        })
    );
    ok(&gw
        .forwarded(Op::Write {
            handle: h.as_slice().into(),
            offset: 0,
            data: b"card 4111 1111 1111 1111\n",
        })
        .await);
    let refused = gw
        .answered(Op::Read {
            handle: h.as_slice().into(),
            offset: 0,
            len: 10,
        })
        .await;
    assert_eq!(
        status(&refused),
        (
            StatusCode::PERMISSION_DENIED,
            format!("sod: {cwd}/notes.txt was not opened for reading")
        )
    );
    ok(&gw
        .forwarded(Op::Extended(Extended::Fsync {
            handle: h.as_slice().into(),
        }))
        .await);
    let (j, answer) = gw
        .decided(Op::Fsetstat {
            handle: h.as_slice().into(),
            attrs: Attrs {
                permissions: Some(0o600),
                ..Attrs::EMPTY
            },
        })
        .await;
    assert_eq!(j.text(), format!("sftp fsetstat {cwd}/notes.txt mode=600"));
    ok(&answer);
    ok(&gw
        .forwarded(Op::Close {
            handle: h.as_slice().into(),
        })
        .await);
    assert_eq!(gw.judge.handle(&h), None);
    assert_eq!(
        std::fs::read(d.path.join("notes.txt")).expect("written"),
        b"card 4111 1111 1111 1111\n"
    );

    // Download: OPEN for reading, READ to EOF, FSTAT.
    let (j, answer) = gw.decided(open(b"notes.txt", OpenFlags::READ)).await;
    assert_eq!(summary(&j).1, format!("sftp open-read {cwd}/notes.txt"));
    assert!(j.reads_file());
    let h = handle(&answer);
    let data = gw
        .forwarded(Op::Read {
            handle: h.as_slice().into(),
            offset: 0,
            len: 32768,
        })
        .await;
    assert_eq!(reply(&data), Reply::Data(b"card 4111 1111 1111 1111\n"));
    let eof = gw
        .forwarded(Op::Read {
            handle: h.as_slice().into(),
            offset: 25,
            len: 32768,
        })
        .await;
    assert_eq!(status(&eof), (StatusCode::EOF, "End of file".into()));
    let fstat = gw
        .forwarded(Op::Fstat {
            handle: h.as_slice().into(),
        })
        .await;
    let Reply::Attrs(attrs) = reply(&fstat) else {
        panic!("ATTRS")
    };
    assert_eq!(attrs.size, Some(25));
    assert_eq!(attrs.permissions, Some(0o100600));
    let fstatvfs = gw
        .forwarded(Op::Extended(Extended::Fstatvfs {
            handle: h.as_slice().into(),
        }))
        .await;
    let Reply::ExtendedReply(vfs) = reply(&fstatvfs) else {
        panic!("EXTENDED_REPLY")
    };
    assert_eq!(vfs.len(), 11 * 8);
    ok(&gw
        .forwarded(Op::Close {
            handle: h.as_slice().into(),
        })
        .await);

    // Names that are not UTF-8 stay bytes, both ways.
    let latin1: &[u8] = b"caf\xe9 menu.txt";
    let (j, answer) = gw.decided(open(latin1, UPLOAD)).await;
    assert_eq!(
        j.text(),
        format!("sftp open-write \"{cwd}/caf\\xe9 menu.txt\" (create, truncate) mode=644")
    );
    assert_eq!(
        j.unknown_objects(),
        Some("the path is not UTF-8 (shown with \\x escapes)")
    );
    let h = handle(&answer);
    ok(&gw
        .forwarded(Op::Close {
            handle: h.as_slice().into(),
        })
        .await);
    assert!(d.path.join(std::ffi::OsStr::from_bytes(latin1)).exists());

    // A directory listing.
    let (j, answer) = gw.decided(Op::Opendir { path: ".".into() }).await;
    assert_eq!(summary(&j).1, format!("sftp opendir {cwd}"));
    let dh = handle(&answer);
    assert_eq!(
        gw.judge.handle(&dh).map(|h| h.kind),
        Some(HandleKind::Directory)
    );
    let mut listed: Vec<Vec<u8>> = Vec::new();
    loop {
        let answer = gw
            .forwarded(Op::Readdir {
                handle: dh.as_slice().into(),
            })
            .await;
        match reply(&answer) {
            Reply::Name(names) => {
                for entry in names {
                    assert!(!entry.longname.is_empty());
                    assert!(entry.attrs.size.is_some());
                    listed.push(entry.filename.as_bytes().to_vec());
                }
            }
            Reply::Status(s) => {
                assert_eq!(s.code, StatusCode::EOF);
                break;
            }
            other => panic!("NAME or EOF, not {other:?}"),
        }
    }
    listed.sort();
    assert_eq!(
        listed,
        [&b"."[..], b"..", latin1, b"notes.txt"].map(<[u8]>::to_vec)
    );
    ok(&gw
        .forwarded(Op::Close {
            handle: dh.as_slice().into(),
        })
        .await);

    // STAT, LSTAT, SETSTAT.
    let (j, answer) = gw
        .decided(Op::Stat {
            path: "notes.txt".into(),
        })
        .await;
    assert_eq!(
        summary(&j),
        (
            OperationKind::Read,
            format!("sftp stat {cwd}/notes.txt"),
            vec![format!("{cwd}/notes.txt")]
        )
    );
    let Reply::Attrs(a) = reply(&answer) else {
        panic!("ATTRS")
    };
    assert_eq!(a.size, Some(25));
    let (_, answer) = gw
        .decided(Op::Lstat {
            path: "missing".into(),
        })
        .await;
    assert_eq!(
        status(&answer),
        (StatusCode::NO_SUCH_FILE, "No such file".into())
    );
    let (j, answer) = gw
        .decided(Op::Setstat {
            path: "notes.txt".into(),
            attrs: Attrs {
                permissions: Some(0o640),
                ..Attrs::EMPTY
            },
        })
        .await;
    assert_eq!(j.kind(), OperationKind::Write);
    ok(&answer);

    // RENAME and posix-rename.
    let (j, answer) = gw
        .decided(Op::Rename {
            old_path: "notes.txt".into(),
            new_path: "renamed.txt".into(),
        })
        .await;
    assert_eq!(
        j.objects(),
        [format!("{cwd}/notes.txt"), format!("{cwd}/renamed.txt")]
    );
    ok(&answer);
    let (j, answer) = gw
        .decided(Op::Extended(Extended::PosixRename {
            old_path: "renamed.txt".into(),
            new_path: "notes.txt".into(),
        }))
        .await;
    assert_eq!(
        j.text(),
        format!("sftp posix-rename {cwd}/renamed.txt {cwd}/notes.txt")
    );
    ok(&answer);

    // SYMLINK in OpenSSH's order (target, then link), and READLINK.
    let (j, answer) = gw
        .decided(Op::Symlink {
            target_path: "notes.txt".into(),
            link_path: "link.txt".into(),
        })
        .await;
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            format!("sftp symlink {cwd}/link.txt -> notes.txt"),
            vec![format!("{cwd}/link.txt"), format!("{cwd}/notes.txt")]
        )
    );
    ok(&answer);
    assert_eq!(
        std::fs::read_link(d.path.join("link.txt")).expect("a symlink"),
        Path::new("notes.txt")
    );
    let (_, answer) = gw
        .decided(Op::Readlink {
            path: "link.txt".into(),
        })
        .await;
    let Reply::Name(names) = reply(&answer) else {
        panic!("NAME")
    };
    assert_eq!(
        names.single().map(|n| n.filename),
        Some(ByteStr::from("notes.txt"))
    );

    // hardlink, MKDIR, RMDIR, lsetstat.
    let (j, answer) = gw
        .decided(Op::Extended(Extended::Hardlink {
            old_path: "notes.txt".into(),
            new_path: "hard.txt".into(),
        }))
        .await;
    assert_eq!(j.kind(), OperationKind::Write);
    ok(&answer);
    let (j, answer) = gw
        .decided(Op::Mkdir {
            path: "sub".into(),
            attrs: Attrs {
                permissions: Some(0o755),
                ..Attrs::EMPTY
            },
        })
        .await;
    assert_eq!(j.text(), format!("sftp mkdir {cwd}/sub mode=755"));
    ok(&answer);
    let (j, answer) = gw
        .decided(Op::Extended(Extended::Lsetstat {
            path: "link.txt".into(),
            attrs: Attrs {
                times: Some(sod_ssh::sftp::codec::Times {
                    atime: 1_000_000,
                    mtime: 1_000_000,
                }),
                ..Attrs::EMPTY
            },
        }))
        .await;
    assert_eq!(
        j.text(),
        format!("sftp lsetstat {cwd}/link.txt atime=1000000 mtime=1000000")
    );
    ok(&answer);
    ok(&gw.decided(Op::Rmdir { path: "sub".into() }).await.1);

    // statvfs, limits, expand-path, home-directory, users-groups-by-id.
    let (j, answer) = gw
        .decided(Op::Extended(Extended::Statvfs { path: ".".into() }))
        .await;
    assert_eq!(j.text(), format!("sftp statvfs {cwd}"));
    let Reply::ExtendedReply(vfs) = reply(&answer) else {
        panic!("EXTENDED_REPLY")
    };
    assert_eq!(vfs.len(), 11 * 8, "eleven uint64");
    let (j, answer) = gw.decided(Op::Extended(Extended::Limits)).await;
    assert_eq!(
        summary(&j),
        (OperationKind::Read, "sftp limits".into(), vec![])
    );
    let Reply::ExtendedReply(limits) = reply(&answer) else {
        panic!("EXTENDED_REPLY")
    };
    assert_eq!(limits.len(), 4 * 8);
    let packet = u64::from_be_bytes(limits[..8].try_into().expect("8 bytes"));
    let read = u64::from_be_bytes(limits[8..16].try_into().expect("8 bytes"));
    assert_eq!(
        (packet, read),
        (256 * 1024, 255 * 1024),
        "OpenSSH's own limits"
    );
    let (j, answer) = gw
        .decided(Op::Extended(Extended::ExpandPath {
            path: "notes.txt".into(),
        }))
        .await;
    assert_eq!(j.objects(), [format!("{cwd}/notes.txt")]);
    let Reply::Name(names) = reply(&answer) else {
        panic!("NAME")
    };
    assert_eq!(
        names.single().map(|n| n.filename.as_bytes().to_vec()),
        Some(format!("{cwd}/notes.txt").into_bytes())
    );
    let (j, answer) = gw
        .decided(Op::Extended(Extended::ExpandPath { path: "~".into() }))
        .await;
    assert_eq!(j.unknown_objects(), Some("`~` is expanded by the server"));
    let Reply::Name(names) = reply(&answer) else {
        panic!("NAME")
    };
    assert!(
        names
            .single()
            .is_some_and(|n| n.filename.as_bytes().starts_with(b"/"))
    );
    // OpenSSH 9.2 answers these two itself or with OP_UNSUPPORTED; either parses.
    let (j, answer) = gw
        .decided(Op::Extended(Extended::HomeDirectory {
            username: "".into(),
        }))
        .await;
    assert_eq!(j.text(), "sftp home-directory");
    assert!(matches!(reply(&answer), Reply::Name(_) | Reply::Status(_)));
    let (j, answer) = gw
        .decided(Op::Extended(Extended::UsersGroupsById {
            uids: IdList::new(&[0]),
            gids: IdList::new(&[0]),
        }))
        .await;
    assert_eq!(j.text(), "sftp users-groups-by-id uids=0 gids=0");
    assert!(matches!(
        reply(&answer),
        Reply::ExtendedReply(_) | Reply::Status(_)
    ));

    // copy-data between two handles: a read of one, a write of the other.
    let src = handle(&gw.decided(open(b"notes.txt", OpenFlags::READ)).await.1);
    let dst = handle(&gw.decided(open(b"copy.txt", UPLOAD)).await.1);
    let (j, answer) = gw
        .decided(Op::Extended(Extended::CopyData {
            read_handle: src.as_slice().into(),
            read_offset: 5,
            read_len: 0,
            write_handle: dst.as_slice().into(),
            write_offset: 0,
        }))
        .await;
    assert_eq!(
        summary(&j),
        (
            OperationKind::Write,
            format!("sftp copy-data {cwd}/notes.txt -> {cwd}/copy.txt (from 5, to the end, to 0)"),
            vec![format!("{cwd}/notes.txt"), format!("{cwd}/copy.txt")]
        )
    );
    assert_eq!(j.parts().len(), 2);
    ok(&answer);
    ok(&gw
        .forwarded(Op::Close {
            handle: src.as_slice().into(),
        })
        .await);
    ok(&gw
        .forwarded(Op::Close {
            handle: dst.as_slice().into(),
        })
        .await);
    assert_eq!(
        std::fs::read(d.path.join("copy.txt")).expect("copied"),
        b"4111 1111 1111 1111\n"
    );

    // REMOVE.
    for name in ["copy.txt", "hard.txt", "link.txt"] {
        let (j, answer) = gw
            .decided(Op::Remove {
                filename: name.into(),
            })
            .await;
        assert_eq!(j.text(), format!("sftp remove {cwd}/{name}"));
        ok(&answer);
    }
    assert!(!d.path.join("copy.txt").exists());

    // A refused request never reaches the server.
    let denied = gw
        .refused(Op::Remove {
            filename: "notes.txt".into(),
        })
        .await;
    assert_eq!(
        status(&denied),
        (
            StatusCode::PERMISSION_DENIED,
            "sod: refused by rule `no-removes`: removing files needs approval".into()
        )
    );
    assert!(d.path.join("notes.txt").exists());
    let (_, answer) = gw
        .decided(Op::Stat {
            path: "notes.txt".into(),
        })
        .await;
    assert!(matches!(reply(&answer), Reply::Attrs(_)));
    assert_eq!(gw.judge.open_handles(), 0);
    assert_eq!(gw.judge.outstanding(), 0);
    assert!(gw.checked > 40, "{} server packets checked", gw.checked);
}

#[tokio::test]
async fn pipelined_requests_against_openssh() {
    let d = dir();
    std::fs::write(d.path.join("a"), b"aaa").expect("write");
    std::fs::write(d.path.join("b"), b"bbbb").expect("write");
    let mut gw = started(&d, JudgeLimits::DEFAULT).await;
    // Many requests before any answer, as `sftp` pipelines them.
    let mut ids = Vec::new();
    for name in [&b"a"[..], b"b"] {
        ids.push(gw.send(open(name, OpenFlags::READ)).await.0);
        ids.push(
            gw.send(Op::Stat {
                path: ByteStr::new(name),
            })
            .await
            .0,
        );
    }
    ids.push(gw.send(Op::Opendir { path: ".".into() }).await.0);
    assert_eq!(gw.judge.outstanding(), 5);
    let mut handles = Vec::new();
    for expected in &ids {
        let answer = gw.recv().await;
        assert_eq!(answer.id(), Some(*expected));
        if let Reply::Handle(h) = reply(&answer) {
            handles.push(h.as_bytes().to_vec());
        }
    }
    assert_eq!(gw.judge.outstanding(), 0);
    let cwd = &d.cwd;
    let paths: Vec<_> = handles
        .iter()
        .map(|h| gw.judge.handle(h).map(|i| (i.path.to_owned(), i.kind)))
        .collect();
    assert_eq!(
        paths,
        [
            Some((
                format!("{cwd}/a"),
                HandleKind::File {
                    read: true,
                    write: false
                }
            )),
            Some((
                format!("{cwd}/b"),
                HandleKind::File {
                    read: true,
                    write: false
                }
            )),
            Some((cwd.clone(), HandleKind::Directory)),
        ]
    );
    // Reads on both files, pipelined, answered by id.
    let r1 = gw
        .send(Op::Read {
            handle: handles[1].as_slice().into(),
            offset: 0,
            len: 100,
        })
        .await
        .0;
    let r0 = gw
        .send(Op::Read {
            handle: handles[0].as_slice().into(),
            offset: 0,
            len: 100,
        })
        .await
        .0;
    let first = gw.recv().await;
    let second = gw.recv().await;
    assert_eq!(
        (first.id(), reply(&first)),
        (Some(r1), Reply::Data(b"bbbb"))
    );
    assert_eq!(
        (second.id(), reply(&second)),
        (Some(r0), Reply::Data(b"aaa"))
    );
}

/// A stand-in for the value detectors: digits become `#`.
fn mask_digits(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if b.is_ascii_digit() { b'#' } else { *b })
        .collect()
}

#[tokio::test]
async fn masked_reads_against_openssh() {
    let d = dir();
    let secret: Vec<u8> = (0..2000)
        .flat_map(|i| format!("row {i}: card 4111 1111 1111 {i:04}\n").into_bytes())
        .collect();
    std::fs::write(d.path.join("cards.txt"), &secret).expect("write");
    let mut gw = started(
        &d,
        JudgeLimits {
            // Several of the judge's own reads, and a short last one.
            masked_read_chunk: 7000,
            ..JudgeLimits::DEFAULT
        },
    )
    .await;
    let (id, sent) = gw.send(open(b"cards.txt", OpenFlags::READ)).await;
    let Sent::Decided(j) = sent else {
        panic!("decided")
    };
    assert!(j.reads_file());
    gw.judge
        .serve_masked(id, mask_digits)
        .expect("a read-only open");
    let answer = gw.recv().await;
    assert_eq!(answer.id(), Some(id));
    let h = handle(&answer);
    let masked = mask_digits(&secret);
    assert_eq!(
        gw.judge.handle(&h).map(|i| i.kind),
        Some(HandleKind::Masked {
            len: masked.len() as u64
        })
    );
    // Read it as OpenSSH's client does: pipelined 32 KiB requests until EOF.
    let mut got = Vec::new();
    let mut offset = 0u64;
    loop {
        let mut ids = Vec::new();
        for k in 0..4u64 {
            ids.push(
                gw.send(Op::Read {
                    handle: h.as_slice().into(),
                    offset: offset + k * 32768,
                    len: 32768,
                })
                .await,
            );
        }
        let mut eof = false;
        for (id, sent) in ids {
            assert!(
                matches!(sent, Sent::Answered),
                "served from the masked copy"
            );
            let answer = gw.recv().await;
            assert_eq!(answer.id(), Some(id));
            match reply(&answer) {
                Reply::Data(data) => got.extend_from_slice(data),
                Reply::Status(s) if s.code == StatusCode::EOF => eof = true,
                other => panic!("{other:?}"),
            }
        }
        offset += 4 * 32768;
        if eof {
            break;
        }
    }
    assert_eq!(got, masked);
    assert!(!got.windows(4).any(|w| w == b"4111"), "no digit left");
    let fstat = gw
        .answered(Op::Fstat {
            handle: h.as_slice().into(),
        })
        .await;
    let Reply::Attrs(a) = reply(&fstat) else {
        panic!("ATTRS")
    };
    assert_eq!(a.size, Some(masked.len() as u64));
    // CLOSE goes to the server: its answer is the server's.
    ok(&gw
        .forwarded(Op::Close {
            handle: h.as_slice().into(),
        })
        .await);
    assert_eq!(gw.judge.open_handles(), 0);
}

#[tokio::test]
async fn a_masked_file_too_large_fails_the_open_and_is_closed_on_the_server() {
    let d = dir();
    std::fs::write(d.path.join("big.txt"), vec![b'7'; 5000]).expect("write");
    let mut gw = started(
        &d,
        JudgeLimits {
            max_masked_file: 4096,
            masked_read_chunk: 1024,
            ..JudgeLimits::DEFAULT
        },
    )
    .await;
    let (id, _) = gw.send(open(b"big.txt", OpenFlags::READ)).await;
    gw.judge.serve_masked(id, mask_digits).expect("read-only");
    let answer = gw.recv().await;
    assert_eq!(answer.id(), Some(id));
    assert_eq!(
        status(&answer),
        (
            StatusCode::FAILURE,
            format!(
                "sod: {}/big.txt is larger than 4 KiB, the most a masked session may read",
                d.cwd
            )
        )
    );
    // The judge closed the server's handle: the next open gets the same handle back.
    let (_, reopened) = gw.decided(open(b"big.txt", OpenFlags::READ)).await;
    assert_eq!(handle(&reopened), [0, 0, 0, 0]);
    assert_eq!(gw.judge.outstanding(), 0);
}

/// What OpenSSH's server does with packets the gateway refuses to forward: reasons, checked.
#[tokio::test]
async fn openssh_behaviours_the_gateway_guards_against() {
    let d = dir();
    let mut gw = started(&d, JudgeLimits::DEFAULT).await;
    let raw = |id: u32, op: Op<'_>| Request { id, op }.to_bytes().expect("encodes");

    // An unknown extension: OP_UNSUPPORTED (the judge makes it kind Unknown).
    let (_, sent) = gw
        .send(Op::Extended(Extended::Other {
            name: "nonsense@example.com".into(),
            data: b"",
        }))
        .await;
    let Sent::Decided(j) = sent else {
        panic!("decided")
    };
    assert_eq!(j.kind(), OperationKind::Unknown);
    assert_eq!(status(&gw.recv().await).0, StatusCode::OP_UNSUPPORTED);

    // Trailing bytes: the server skips them and runs the request.
    let mut stat = raw(900, Op::Stat { path: "/".into() }).to_vec();
    stat[3] += 3;
    stat.extend_from_slice(b"xyz");
    gw.send_server(&stat).await;
    let answer = gw.server_frame().await;
    assert_eq!(answer.id(), Some(900));
    assert!(matches!(reply(&answer), Reply::Attrs(_)));
    let judged = gw.client(Bytes::from(stat)).await;
    assert!(
        matches!(judged, Sent::Answered),
        "the gateway refuses: {judged:?}"
    );
    assert_eq!(status(&gw.recv().await).0, StatusCode::BAD_MESSAGE);

    // An unknown packet type: no answer at all; the next answer is the next request's.
    // Worse, `sftp-server` handles one packet per turn of its poll loop, so a packet that
    // writes nothing leaves any request read in the same chunk behind it waiting until the
    // client sends more: a stall. (Sent last in a write, as here, it stalls nothing.) So the
    // gateway answers unknown types itself.
    let mut stat_then_unknown = raw(900, Op::Stat { path: "/".into() }).to_vec();
    stat_then_unknown.extend_from_slice(&[0, 0, 0, 5, 99, 0, 0, 0, 0x63]);
    gw.send_server(&stat_then_unknown).await;
    assert_eq!(gw.server_frame().await.id(), Some(900));
    gw.send_server(&raw(901, Op::Stat { path: "/".into() }))
        .await;
    assert_eq!(
        gw.server_frame().await.id(),
        Some(901),
        "nothing for the unknown packet"
    );
    let judged = gw
        .client(Bytes::from_static(&[0, 0, 0, 5, 99, 0, 0, 3, 0x85]))
        .await;
    assert!(matches!(judged, Sent::Answered), "{judged:?}");
    assert_eq!(status(&gw.recv().await).0, StatusCode::OP_UNSUPPORTED);

    // A handle the server never gave: the server answers an error of its own (CLOSE:
    // NO_SUCH_FILE); the gateway never lets it get that far (FAILURE).
    gw.send_server(&raw(
        902,
        Op::Close {
            handle: b"\0\0\0\x63".into(),
        },
    ))
    .await;
    assert_eq!(status(&gw.server_frame().await).0, StatusCode::NO_SUCH_FILE);
    let judged = gw
        .client(raw(
            904,
            Op::Close {
                handle: b"\0\0\0\x63".into(),
            },
        ))
        .await;
    assert!(matches!(judged, Sent::Answered), "{judged:?}");
    assert_eq!(status(&gw.recv().await).0, StatusCode::FAILURE);

    // A NUL in a path: the server drops the session.
    gw.send_server(&raw(
        903,
        Op::Stat {
            path: ByteStr::new(b"/a\0b"),
        },
    ))
    .await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, gw.stdout.read_to_end(&mut rest))
        .await
        .expect("the server exits in time")
        .expect("read");
    assert_eq!(
        (read, gw.buf.len()),
        (0, 0),
        "no answer, the session is gone"
    );
}
