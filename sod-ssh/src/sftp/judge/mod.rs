//! What each SFTP request does, and the session state that takes: see [`Judge`].

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use sod_core::{Refusal, RefusalCode};

use super::codec::{
    ClientMessage, Frame, Handle, OPENSSH_MAX_READ, Op, Reply, Request, ServerMessage, StatusCode,
    VERSION_3, status,
};
use super::masked::{Load, MaskFn, MaskedFile, Step};
use path::Resolved;

mod classify;
mod judgement;
mod path;

#[cfg(test)]
mod tests;

pub use judgement::{Judgement, Part};

/// Bounds on what one session's [`Judge`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JudgeLimits {
    /// Requests waiting for their answer (forwarded, or waiting for a decision) beyond which
    /// more are answered `FAILURE`. Default 1024; OpenSSH's client keeps at most 64 in
    /// flight unless told otherwise (`sftp -R`).
    pub max_outstanding: usize,
    /// Open handles (and opens waiting for theirs) beyond which `OPEN` and `OPENDIR` are
    /// answered `FAILURE`. Default 1024.
    pub max_handles: usize,
    /// The largest file a masked principal may read. Default 16 MiB.
    pub max_masked_file: usize,
    /// All masked copies one session may hold at once. Default 64 MiB.
    pub max_masked_total: usize,
    /// How much each of the judge's own reads of a file to mask asks for. Default
    /// [`OPENSSH_MAX_READ`].
    pub masked_read_chunk: u32,
}

impl JudgeLimits {
    /// The defaults.
    pub const DEFAULT: JudgeLimits = JudgeLimits {
        max_outstanding: 1024,
        max_handles: 1024,
        max_masked_file: 16 * 1024 * 1024,
        max_masked_total: 64 * 1024 * 1024,
        masked_read_chunk: OPENSSH_MAX_READ,
    };
}

impl Default for JudgeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What to do with a packet from the client.
#[derive(Debug)]
#[must_use]
pub enum Verdict {
    /// Send it to the server unchanged: `INIT`, or a request on a handle that is part of the
    /// allowed open that made the handle.
    Forward,
    /// Ask the policy stack. Then forward the packet unchanged if it was allowed, or send the
    /// client [`Judge::refuse`]'s answer if not.
    Decide(Judgement),
    /// Send `reply` to the client and nothing to the server.
    Answer {
        /// The packet to send.
        reply: Bytes,
        /// Why the gateway refused the request itself, for the log; `None` when it served
        /// it (a read of a masked file).
        refusal: Option<String>,
    },
    /// The stream cannot go on (an `INIT` that does not parse, with no id to answer): close
    /// the channel.
    Abort(String),
}

/// What to do with a packet from the server.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Relay {
    /// Send it to the client unchanged.
    Forward,
    /// Send it nowhere; send `to_server` to the server, then `to_client` to the client.
    Withhold {
        /// The judge's own next request, if any.
        to_server: Option<Bytes>,
        /// A packet the client is owed now, if any (a held-back `VERSION` or `HANDLE`, or
        /// the failure of an open that could not be masked).
        to_client: Option<Bytes>,
    },
}

impl Relay {
    const NOTHING: Relay = Relay::Withhold {
        to_server: None,
        to_client: None,
    };
}

/// Why [`Judge::serve_masked`] could not arrange a masked read.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeMaskedError {
    /// The id is not that of an `OPEN` waiting for its decision.
    #[error("request {0} is not an OPEN waiting for its decision")]
    NotAnOpen(u32),
    /// The open writes too: a masked copy cannot be written through.
    #[error("a masked session may open files for reading only")]
    NotReadOnly,
}

/// A handle as the judge knows it ([`Judge::handle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleInfo<'a> {
    /// The path it was opened for, as in the operation's objects.
    pub path: &'a str,
    /// What it may be used for.
    pub kind: HandleKind,
}

/// What a handle was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleKind {
    /// A file; `read`/`write`: whether `READ`/`WRITE` are part of the open.
    File {
        /// `READ` is allowed.
        read: bool,
        /// `WRITE` is allowed.
        write: bool,
    },
    /// A directory from `OPENDIR`.
    Directory,
    /// A file served from a masked copy of `len` bytes.
    Masked {
        /// The masked length.
        len: u64,
    },
}

/// The SFTP state of one session: outstanding requests, handles, the working directory, masked
/// copies; and what each request does.
///
/// A [`Judge`] sits beside one `sftp` subsystem channel and sees every packet both ways:
///
/// - [`Judge::request`] takes each packet from the client and returns a [`Verdict`]: forward
///   it (it needs no decision of its own), [`Decide`](Verdict::Decide) it (a [`Judgement`]:
///   kind, text, paths; the gateway turns it into an [`Operation`](sod_core::Operation) with
///   [`Judgement::operation`] and runs the policy stack), or answer it without the server.
/// - [`Judge::response`] takes each packet from the server and returns a [`Relay`]: forward
///   it, or hold it back and send what the judge needs instead. From the responses it learns
///   the session's working directory (the server's answer to `REALPATH "."`, which the judge
///   asks for itself right after `VERSION`, before the client can send a request) and the
///   handles: each `HANDLE` is matched by request id to the `OPEN` or `OPENDIR` it answers,
///   so every later request on a handle is judged by the path it was opened for.
/// - After a `Decide`, the gateway forwards the packet if the stack allowed it (first calling
///   [`Judge::serve_masked`] when the decision names a mask profile and
///   [`Judgement::reads_file`]), or answers it with [`Judge::refuse`].
///
/// ```text
/// client ──frame──► request() ─► Forward ─────────────────────────────► server
///                              ─► Decide(j) ─► policy ─► allowed ──────► server
///                                                      └► refuse(id) ─► client
///                              ─► Answer(reply) ───────────────────────► client
/// client ◄──────── Forward ◄─ response() ◄──frame── server
///                  Withhold { to_server, to_client }  (the judge's own requests)
/// ```
///
/// # What needs a decision
///
/// Every request that names a path is decided: reads (`STAT`, `LSTAT`, `OPENDIR`,
/// `READLINK`, `REALPATH`, an `OPEN` for reading, `statvfs`, `expand-path`,
/// `home-directory`, `limits`, `users-groups-by-id`) and writes (an `OPEN` that writes,
/// creates, truncates or appends, `REMOVE`, `RENAME`, `MKDIR`, `RMDIR`, `SETSTAT`,
/// `SYMLINK`, `posix-rename`, `hardlink`, `lsetstat`). On a handle, `READ`, `WRITE`,
/// `READDIR`, `FSTAT`, `CLOSE`, `fsync` and `fstatvfs` are part of the allowed open that
/// made the handle and are forwarded without a new decision, but only within what that open
/// was for (a `WRITE` on a handle opened read-only is refused by the gateway, never left to
/// the server); `FSETSTAT` and `copy-data` change files and are decided on their own.
/// A handle the judge did not see opened is answered `FAILURE` (fail closed). Unknown
/// extensions are decided as kind `Unknown`, which policy never allows; packets that do not
/// parse and paths with a NUL byte are answered `BAD_MESSAGE` and never forwarded.
/// A `CLOSE` of a handle that a decided request (`FSETSTAT`, `copy-data`) still waits on is
/// answered `FAILURE`: the server could give the same handle bytes to the next file, and the
/// decision about one file would be carried out on another.
///
/// # Paths
///
/// Paths are resolved against the working directory and normalised (`.`, `//`). Until the
/// working directory is known, a relative path is `~/…` and marked not known exactly
/// ([`Judgement::unknown_objects`]). `..` stays in the text and is taken lexically in the
/// objects, which are marked not known exactly (it may cross a symlink); so is a path that is
/// not UTF-8, shown with `\xNN` escapes. A `SYMLINK`'s target is an object too, resolved
/// against the link's directory: a link is a new name for its target.
pub struct Judge {
    limits: JudgeLimits,
    phase: Phase,
    cwd: Option<Vec<u8>>,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Bytes, OpenHandle>,
    /// The next id for the judge's own requests, counting down from `u32::MAX` (OpenSSH's
    /// client counts up from 0, so the two never meet in practice).
    next_own: u32,
    /// Bytes held by masked copies and loads, against `max_masked_total`.
    masked_held: usize,
}

enum Phase {
    /// Before the client's `INIT`.
    Init,
    /// `INIT` forwarded; `VERSION` not seen.
    AwaitVersion,
    /// `VERSION` held back until the working directory is known.
    LearnCwd {
        version: Bytes,
    },
    Ready,
    /// Every request is answered `OP_UNSUPPORTED` with this message.
    Refusing(String),
}

/// A request waiting for its answer.
enum Pending {
    Client(Awaits),
    Own(Own),
}

/// What the answer to a client request teaches.
enum Awaits {
    Open {
        path: Resolved,
        access: Access,
        mask: Option<MaskFn>,
    },
    Opendir {
        path: Resolved,
    },
    /// `REALPATH "."` (or `""`): its answer is the working directory.
    RealpathOfDot,
    /// A decided request on these handles (`FSETSTAT`, `copy-data`): until it is answered,
    /// the handles may not be closed, or a decision about one file could be carried out on
    /// the next file the server gives the same handle bytes.
    OnHandles([Option<Bytes>; 2]),
    Nothing,
}

impl Awaits {
    fn uses(&self, handle: &[u8]) -> bool {
        match self {
            Self::OnHandles(handles) => handles.iter().flatten().any(|h| h == handle),
            _ => false,
        }
    }
}

/// The judge's own requests.
enum Own {
    Realpath,
    /// A read of the file to mask behind this handle.
    LoadRead(Bytes),
    Close,
}

/// What an `OPEN` allows on its handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Access {
    read: bool,
    write: bool,
    /// The open reads and changes nothing: it may be served masked.
    read_only: bool,
}

struct OpenHandle {
    path: Resolved,
    state: HandleState,
}

enum HandleState {
    File(Access),
    Dir,
    Loading(Box<Load>),
    Masked(MaskedFile),
}

impl Default for Judge {
    fn default() -> Self {
        Self::new(JudgeLimits::DEFAULT)
    }
}

impl fmt::Debug for Judge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Judge")
            .field("cwd", &self.cwd.as_deref().map(super::codec::ByteStr::new))
            .field("outstanding", &self.pending.len())
            .field("handles", &self.handles.len())
            .field("masked_held", &self.masked_held)
            .finish_non_exhaustive()
    }
}

impl Judge {
    /// A judge for a new session.
    pub fn new(limits: JudgeLimits) -> Self {
        Self {
            limits,
            phase: Phase::Init,
            cwd: None,
            pending: HashMap::new(),
            handles: HashMap::new(),
            next_own: u32::MAX,
            masked_held: 0,
        }
    }

    /// Judges one packet from the client.
    pub fn request(&mut self, frame: &Frame) -> Verdict {
        let message = match frame.client_message() {
            Ok(message) => message,
            Err(e) => {
                return match frame.id() {
                    Some(id) => answer(id, e.status_code(), format!("sod: {e}")),
                    None => Verdict::Abort(e.to_string()),
                };
            }
        };
        let request = match message {
            ClientMessage::Init(_) => {
                if matches!(self.phase, Phase::Init) {
                    self.phase = Phase::AwaitVersion;
                }
                return Verdict::Forward;
            }
            ClientMessage::Request(request) => request,
        };
        let id = request.id;
        match &self.phase {
            Phase::Init => {
                return answer(
                    id,
                    StatusCode::BAD_MESSAGE,
                    "sod: request before INIT".into(),
                );
            }
            Phase::Refusing(why) => return answer(id, StatusCode::OP_UNSUPPORTED, why.clone()),
            _ => {}
        }
        if self.pending.contains_key(&id) {
            return answer(
                id,
                StatusCode::BAD_MESSAGE,
                format!("sod: request id {id} is already waiting for an answer"),
            );
        }
        if self.pending.len() >= self.limits.max_outstanding {
            return answer(
                id,
                StatusCode::FAILURE,
                format!(
                    "sod: more than {} requests are waiting for answers",
                    self.limits.max_outstanding
                ),
            );
        }
        match self.classify(&request) {
            Outcome::Forward(awaits) => {
                self.pending.insert(id, Pending::Client(awaits));
                Verdict::Forward
            }
            Outcome::Decide(judgement, awaits) => {
                self.pending.insert(id, Pending::Client(awaits));
                Verdict::Decide(judgement)
            }
            Outcome::Answer(reply, refusal) => Verdict::Answer { reply, refusal },
        }
    }

    /// Learns from one packet from the server and says where it goes.
    pub fn response(&mut self, frame: &Frame) -> Relay {
        let Some(id) = frame.id() else {
            return self.on_version(frame);
        };
        let reply = match frame.server_message() {
            Ok(ServerMessage::Response(response)) => Some(response.reply),
            _ => None,
        };
        match self.pending.remove(&id) {
            // Not ours to judge (a server answering what was never asked): the client's
            // problem, and nothing is learned from it.
            None => Relay::Forward,
            Some(Pending::Client(awaits)) => self.learn(id, awaits, reply, frame),
            Some(Pending::Own(own)) => self.on_own(own, reply),
        }
    }

    /// The answer to request `id`, refused by the policy stack: `PERMISSION_DENIED` (or
    /// `FAILURE` for an outage: the audit log, the upstream) with `sod: <refusal>`, such as
    /// ``sod: refused by rule `no-writes`: writes need approval``. The request is forgotten.
    pub fn refuse(&mut self, id: u32, refusal: &Refusal) -> Bytes {
        let code = match refusal.code() {
            RefusalCode::Unavailable
            | RefusalCode::AuditUnavailable
            | RefusalCode::Misconfigured => StatusCode::FAILURE,
            _ => StatusCode::PERMISSION_DENIED,
        };
        self.answer(id, code, &format!("sod: {refusal}"))
    }

    /// A `STATUS` answer to request `id` that the gateway sends instead of forwarding it;
    /// the request is forgotten.
    pub fn answer(&mut self, id: u32, code: StatusCode, message: &str) -> Bytes {
        if matches!(self.pending.get(&id), Some(Pending::Client(_))) {
            self.pending.remove(&id);
        }
        status(id, code, message)
    }

    /// Serves the `OPEN` `id` (just decided, not yet forwarded) from a masked copy: when the
    /// server answers with a handle, the judge holds it back, reads the whole file with reads
    /// of its own (at most [`JudgeLimits::max_masked_file`] bytes), passes it once through
    /// `mask`, and then hands the client the handle; `READ` and `FSTAT` on it are answered
    /// from the copy. A file too large fails the open with a message that says so.
    pub fn serve_masked(
        &mut self,
        id: u32,
        mask: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
    ) -> Result<(), ServeMaskedError> {
        match self.pending.get_mut(&id) {
            Some(Pending::Client(Awaits::Open {
                access, mask: slot, ..
            })) => {
                if !access.read_only {
                    return Err(ServeMaskedError::NotReadOnly);
                }
                *slot = Some(Box::new(mask));
                Ok(())
            }
            _ => Err(ServeMaskedError::NotAnOpen(id)),
        }
    }

    /// The session's working directory, once the server has said it.
    pub fn cwd(&self) -> Option<&[u8]> {
        self.cwd.as_deref()
    }

    /// What the judge knows of `handle`.
    pub fn handle(&self, handle: &[u8]) -> Option<HandleInfo<'_>> {
        let open = self.handles.get(handle)?;
        let kind = match &open.state {
            HandleState::File(access) => HandleKind::File {
                read: access.read,
                write: access.write,
            },
            HandleState::Dir => HandleKind::Directory,
            HandleState::Masked(file) => HandleKind::Masked { len: file.len() },
            HandleState::Loading(_) => return None,
        };
        Some(HandleInfo {
            path: &open.path.object,
            kind,
        })
    }

    /// How many requests wait for their answer (the judge's own included).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// How many handles are open.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    fn on_version(&mut self, frame: &Frame) -> Relay {
        if !matches!(self.phase, Phase::AwaitVersion) {
            return Relay::Forward;
        }
        let version = match frame.server_message() {
            Ok(ServerMessage::Version(v)) => v.version,
            Ok(ServerMessage::Response(_)) => return Relay::Forward,
            Err(e) => {
                self.phase = Phase::Refusing(format!("sod: the server's VERSION: {e}"));
                return Relay::Forward;
            }
        };
        if version != VERSION_3 {
            // Other versions lay out ATTRS and several requests differently: nothing this
            // judge would read of them could be trusted.
            self.phase = Phase::Refusing(format!(
                "sod: the server speaks SFTP version {version}; sod speaks version 3 only"
            ));
            return Relay::Forward;
        }
        // Ask for the working directory before the client can send a request: relative paths
        // (scp sends them; it never asks for `.`) are then judged as absolute ones.
        let id = self.own_id();
        self.pending.insert(id, Pending::Own(Own::Realpath));
        self.phase = Phase::LearnCwd {
            version: frame.raw().clone(),
        };
        let realpath = Request {
            id,
            op: Op::Realpath { path: ".".into() },
        };
        Relay::Withhold {
            to_server: realpath.to_bytes().ok(),
            to_client: None,
        }
    }

    fn learn(&mut self, id: u32, awaits: Awaits, reply: Option<Reply<'_>>, frame: &Frame) -> Relay {
        match (awaits, reply) {
            (Awaits::Open { path, access, mask }, Some(Reply::Handle(handle))) => {
                let key = Bytes::copy_from_slice(handle.as_bytes());
                let Some(mask) = mask else {
                    self.handles.insert(
                        key,
                        OpenHandle {
                            path,
                            state: HandleState::File(access),
                        },
                    );
                    return Relay::Forward;
                };
                let load = Load::new(
                    id,
                    key.clone(),
                    frame.raw().clone(),
                    path.shown.clone(),
                    mask,
                    self.limits.masked_read_chunk,
                );
                let own = self.own_id();
                self.pending
                    .insert(own, Pending::Own(Own::LoadRead(key.clone())));
                let read = load.read_request(own);
                self.handles.insert(
                    key,
                    OpenHandle {
                        path,
                        state: HandleState::Loading(Box::new(load)),
                    },
                );
                Relay::Withhold {
                    to_server: Some(read),
                    to_client: None,
                }
            }
            (Awaits::Opendir { path }, Some(Reply::Handle(handle))) => {
                self.handles.insert(
                    Bytes::copy_from_slice(handle.as_bytes()),
                    OpenHandle {
                        path,
                        state: HandleState::Dir,
                    },
                );
                Relay::Forward
            }
            (Awaits::RealpathOfDot, Some(Reply::Name(names))) => {
                self.learn_cwd(names.single().map(|n| n.filename.as_bytes()));
                Relay::Forward
            }
            _ => Relay::Forward,
        }
    }

    /// Takes the server's word for the working directory, once, if it is an absolute path.
    fn learn_cwd(&mut self, path: Option<&[u8]>) {
        if self.cwd.is_some() {
            return;
        }
        if let Some(path) = path
            && path.first() == Some(&b'/')
            && !path.contains(&0)
        {
            self.cwd = Some(path.to_vec());
        }
    }

    fn on_own(&mut self, own: Own, reply: Option<Reply<'_>>) -> Relay {
        match own {
            Own::Realpath => {
                if let Some(Reply::Name(names)) = reply {
                    self.learn_cwd(names.single().map(|n| n.filename.as_bytes()));
                }
                match std::mem::replace(&mut self.phase, Phase::Ready) {
                    Phase::LearnCwd { version } => Relay::Withhold {
                        to_server: None,
                        to_client: Some(version),
                    },
                    other => {
                        self.phase = other;
                        Relay::NOTHING
                    }
                }
            }
            Own::LoadRead(key) => self.on_load_reply(key, reply),
            Own::Close => Relay::NOTHING,
        }
    }

    /// The answer to one of the reads of the load behind handle `key`.
    fn on_load_reply(&mut self, key: Bytes, reply: Option<Reply<'_>>) -> Relay {
        let Some(mut open) = self.handles.remove(&key) else {
            return Relay::NOTHING;
        };
        let HandleState::Loading(load) = &mut open.state else {
            self.handles.insert(key, open);
            return Relay::NOTHING;
        };
        let before = load.held();
        let others = self.masked_held.saturating_sub(before);
        let room = self
            .limits
            .max_masked_total
            .saturating_sub(others)
            .saturating_sub(before);
        let step = load.on_reply(reply, self.limits.max_masked_file, room);
        let open_id = load.open_id();
        match step {
            Step::More => {
                self.masked_held = others + load.held();
                let own = self.own_id();
                self.pending
                    .insert(own, Pending::Own(Own::LoadRead(key.clone())));
                let read = load.read_request(own);
                self.handles.insert(key, open);
                Relay::Withhold {
                    to_server: Some(read),
                    to_client: None,
                }
            }
            Step::Done(file, handle_reply) => {
                self.masked_held = others + file.bytes().len();
                open.state = HandleState::Masked(file);
                self.handles.insert(key, open);
                Relay::Withhold {
                    to_server: None,
                    to_client: Some(handle_reply),
                }
            }
            Step::Failed(code, message) => {
                self.masked_held = others;
                let own = self.own_id();
                self.pending.insert(own, Pending::Own(Own::Close));
                let close = Request {
                    id: own,
                    op: Op::Close {
                        handle: Handle::new(load.handle()),
                    },
                };
                Relay::Withhold {
                    to_server: close.to_bytes().ok(),
                    to_client: Some(status(open_id, code, &message)),
                }
            }
        }
    }

    /// An id for the judge's own request that no outstanding request uses.
    fn own_id(&mut self) -> u32 {
        loop {
            let id = self.next_own;
            self.next_own = self.next_own.wrapping_sub(1);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }
}

/// How [`Judge::classify`] judged a request.
enum Outcome {
    Forward(Awaits),
    Decide(Judgement, Awaits),
    Answer(Bytes, Option<String>),
}

/// A request the gateway answers itself, refusing it.
fn answer(id: u32, code: StatusCode, message: String) -> Verdict {
    Verdict::Answer {
        reply: status(id, code, &message),
        refusal: Some(message),
    }
}
