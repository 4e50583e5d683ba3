//! Each request type, judged: what it does, or why the gateway answers it itself.

use std::fmt::Write as _;

use bytes::Bytes;
use sod_core::OperationKind::{Read, Write};

use super::path::{self, NulInPath, Resolved, quote};
use super::{Access, Awaits, HandleState, Judge, Judgement, OpenHandle, Outcome, Part};
use crate::sftp::codec::{
    Attrs, ByteStr, Extended, Handle, Op, OpenFlags, PacketType, Request, StatusCode, status,
};

/// Why `~` paths of `expand-path@openssh.com` are not known exactly.
const TILDE: &str = "`~` is expanded by the server";

/// A request the gateway answers itself: the answer, and the refusal for the log.
fn refused(id: u32, code: StatusCode, message: String) -> Outcome {
    Outcome::Answer(status(id, code, &message), Some(message))
}

/// A handle the judge did not see opened, or one that is not the client's yet.
fn unknown_handle(id: u32, packet_type: PacketType) -> Outcome {
    refused(
        id,
        StatusCode::FAILURE,
        format!("sod: {packet_type} on a handle this session did not open"),
    )
}

/// A decision on one part.
fn decide(id: u32, part: Part, awaits: Awaits) -> Outcome {
    Outcome::Decide(Judgement::new(id, part), awaits)
}

/// A read of the paths given.
fn read(text: String, paths: &[&Resolved]) -> Part {
    paths.iter().fold(Part::new(Read, text), |p, r| p.path(r))
}

/// A write of the paths given.
fn write(text: String, paths: &[&Resolved]) -> Part {
    paths.iter().fold(Part::new(Write, text), |p, r| p.path(r))
}

impl Judge {
    /// Judges `request` (whose id is free and within limits). Only `CLOSE` changes the
    /// judge's state here; everything else is learned from responses.
    pub(super) fn classify(&mut self, request: &Request<'_>) -> Outcome {
        let id = request.id;
        match self.classify_op(request) {
            Ok(outcome) => outcome,
            Err(NulInPath) => refused(
                id,
                StatusCode::BAD_MESSAGE,
                format!(
                    "sod: a path in {} contains a NUL byte",
                    request.op.packet_type()
                ),
            ),
        }
    }

    fn resolve(&self, path: ByteStr<'_>) -> Result<Resolved, NulInPath> {
        path::resolve(self.cwd.as_deref(), path.as_bytes())
    }

    /// An open handle the client may use (not one whose masked copy is still loading).
    fn lookup(&self, handle: Handle<'_>) -> Option<&OpenHandle> {
        self.handles
            .get(handle.as_bytes())
            .filter(|open| !matches!(open.state, HandleState::Loading(_)))
    }

    fn classify_op(&mut self, request: &Request<'_>) -> Result<Outcome, NulInPath> {
        let id = request.id;
        let simple_read = |judge: &Self, verb: &str, path: ByteStr<'_>| {
            let p = judge.resolve(path)?;
            Ok(decide(
                id,
                read(format!("sftp {verb} {}", p.shown), &[&p]),
                Awaits::Nothing,
            ))
        };
        let simple_write =
            |judge: &Self, verb: &str, path: ByteStr<'_>, attrs: Option<&Attrs<'_>>| {
                let p = judge.resolve(path)?;
                let details = attrs.map(attrs_text).unwrap_or_default();
                let text = format!("sftp {verb} {}{details}", p.shown);
                Ok(decide(id, write(text, &[&p]), Awaits::Nothing))
            };
        let two_paths = |judge: &Self, verb: &str, old: ByteStr<'_>, new: ByteStr<'_>| {
            let (old, new) = (judge.resolve(old)?, judge.resolve(new)?);
            let text = format!("sftp {verb} {} {}", old.shown, new.shown);
            Ok(decide(id, write(text, &[&old, &new]), Awaits::Nothing))
        };
        Ok(match request.op {
            Op::Open {
                filename,
                flags,
                attrs,
            } => self.open(id, filename, flags, &attrs)?,
            Op::Opendir { path } => {
                if let Some(full) = self.handles_full(id) {
                    return Ok(full);
                }
                let p = self.resolve(path)?;
                let part = read(format!("sftp opendir {}", p.shown), &[&p]);
                decide(id, part, Awaits::Opendir { path: p })
            }
            Op::Lstat { path } => simple_read(self, "lstat", path)?,
            Op::Stat { path } => simple_read(self, "stat", path)?,
            Op::Readlink { path } => simple_read(self, "readlink", path)?,
            Op::Realpath { path } => {
                let p = self.resolve(path)?;
                let of_dot = matches!(path.as_bytes(), b"" | b".");
                let awaits = match of_dot {
                    true => Awaits::RealpathOfDot,
                    false => Awaits::Nothing,
                };
                decide(
                    id,
                    read(format!("sftp realpath {}", p.shown), &[&p]),
                    awaits,
                )
            }
            Op::Setstat { path, attrs } => simple_write(self, "setstat", path, Some(&attrs))?,
            Op::Remove { filename } => simple_write(self, "remove", filename, None)?,
            Op::Mkdir { path, attrs } => simple_write(self, "mkdir", path, Some(&attrs))?,
            Op::Rmdir { path } => simple_write(self, "rmdir", path, None)?,
            Op::Rename { old_path, new_path } => two_paths(self, "rename", old_path, new_path)?,
            Op::Symlink {
                target_path,
                link_path,
            } => {
                let link = self.resolve(link_path)?;
                // The target is stored as sent and resolved, when the link is followed,
                // against the link's directory. It is an object too: a link is a new name for
                // its target, so a rule about the target must see its creation.
                let target = path::resolve(Some(path::parent(&link.raw)), target_path.as_bytes())?;
                let text = format!(
                    "sftp symlink {} -> {}",
                    link.shown,
                    quote(target_path.as_bytes())
                );
                decide(id, write(text, &[&link, &target]), Awaits::Nothing)
            }
            Op::Extended(ext) => self.extended(id, ext)?,
            Op::Close { .. }
            | Op::Read { .. }
            | Op::Write { .. }
            | Op::Fstat { .. }
            | Op::Readdir { .. }
            | Op::Fsetstat { .. } => self.on_handle(id, request.op),
        })
    }

    /// A request on a handle: part of the open that made it, decided on its own (`FSETSTAT`),
    /// or answered by the gateway (a masked copy, a handle used for what it was not opened
    /// for, a handle it never saw).
    fn on_handle(&mut self, id: u32, op: Op<'_>) -> Outcome {
        match op {
            Op::Close { handle } => match self.lookup(handle) {
                Some(open) if self.decision_pending_on(handle) => refused(
                    id,
                    StatusCode::FAILURE,
                    format!(
                        "sod: a request on the handle of {} is still waiting for its answer",
                        open.path.shown
                    ),
                ),
                Some(_) => {
                    // Forgotten now: a request after the CLOSE cannot use the handle, and the
                    // server may hand the same bytes to the next open.
                    if let Some(OpenHandle {
                        state: HandleState::Masked(file),
                        ..
                    }) = self.handles.remove(handle.as_bytes())
                    {
                        self.masked_held = self.masked_held.saturating_sub(file.bytes().len());
                    }
                    Outcome::Forward(Awaits::Nothing)
                }
                None => unknown_handle(id, PacketType::CLOSE),
            },
            Op::Read {
                handle,
                offset,
                len,
            } => match self.lookup(handle).map(|o| (&o.state, &o.path)) {
                Some((HandleState::File(Access { read: true, .. }), _)) => {
                    Outcome::Forward(Awaits::Nothing)
                }
                Some((HandleState::Masked(file), _)) => {
                    Outcome::Answer(file.read(id, offset, len), None)
                }
                Some((HandleState::File(_), p)) => refused(
                    id,
                    StatusCode::PERMISSION_DENIED,
                    format!("sod: {} was not opened for reading", p.shown),
                ),
                Some((_, p)) => refused(
                    id,
                    StatusCode::FAILURE,
                    format!("sod: READ on the directory handle of {}", p.shown),
                ),
                None => unknown_handle(id, PacketType::READ),
            },
            Op::Write { handle, .. } => match self.lookup(handle).map(|o| (&o.state, &o.path)) {
                Some((HandleState::File(Access { write: true, .. }), _)) => {
                    Outcome::Forward(Awaits::Nothing)
                }
                // Never sent by a sane client; a server might not refuse it (one that opens
                // every file read-write), so the gateway does.
                Some((HandleState::File(_) | HandleState::Masked(_), p)) => refused(
                    id,
                    StatusCode::PERMISSION_DENIED,
                    format!("sod: {} was opened for reading only", p.shown),
                ),
                Some((_, p)) => refused(
                    id,
                    StatusCode::FAILURE,
                    format!("sod: WRITE on the directory handle of {}", p.shown),
                ),
                None => unknown_handle(id, PacketType::WRITE),
            },
            Op::Fstat { handle } => match self.lookup(handle).map(|o| &o.state) {
                Some(HandleState::Masked(file)) => Outcome::Answer(file.fstat(id), None),
                Some(_) => Outcome::Forward(Awaits::Nothing),
                None => unknown_handle(id, PacketType::FSTAT),
            },
            Op::Readdir { handle } => match self.lookup(handle).map(|o| (&o.state, &o.path)) {
                Some((HandleState::Dir, _)) => Outcome::Forward(Awaits::Nothing),
                Some((_, p)) => refused(
                    id,
                    StatusCode::FAILURE,
                    format!("sod: READDIR on the file handle of {}", p.shown),
                ),
                None => unknown_handle(id, PacketType::READDIR),
            },
            Op::Fsetstat { handle, attrs } => match self.lookup(handle) {
                Some(open) => {
                    let p = &open.path;
                    let text = format!("sftp fsetstat {}{}", p.shown, attrs_text(&attrs));
                    let on = Awaits::OnHandles([Some(owned(handle)), None]);
                    decide(id, write(text, &[p]), on)
                }
                None => unknown_handle(id, PacketType::FSETSTAT),
            },
            _ => unknown_handle(id, op.packet_type()),
        }
    }

    /// `OPEN`: a read, a write, or both, by its flags as OpenSSH's server maps them to
    /// `open(2)`: without `WRITE` the file is opened `O_RDONLY` (readable even when only
    /// `CREAT` or `APPEND` is asked for); `CREAT`, `TRUNC`, `EXCL` and `APPEND` change files.
    fn open(
        &self,
        id: u32,
        filename: ByteStr<'_>,
        flags: OpenFlags,
        attrs: &Attrs<'_>,
    ) -> Result<Outcome, NulInPath> {
        if let Some(full) = self.handles_full(id) {
            return Ok(full);
        }
        let p = self.resolve(filename)?;
        if flags.unknown_bits() != 0 {
            let text = format!("sftp open {} (flags {:#x})", p.shown, flags.0);
            let why = format!(
                "OPEN flags {:#x} are not SFTP version 3 flags",
                flags.unknown_bits()
            );
            return Ok(Outcome::Decide(
                Judgement::not_understood(id, text, why),
                Awaits::Nothing,
            ));
        }
        let reads = flags.contains(OpenFlags::READ) || !flags.contains(OpenFlags::WRITE);
        let changes = flags.intersects(
            OpenFlags::WRITE
                | OpenFlags::APPEND
                | OpenFlags::CREAT
                | OpenFlags::TRUNC
                | OpenFlags::EXCL,
        );
        let access = Access {
            read: reads,
            write: flags.intersects(OpenFlags::WRITE | OpenFlags::APPEND),
            read_only: !changes,
        };
        let mut details: Vec<&str> = Vec::new();
        for (flag, word) in [
            (OpenFlags::CREAT, "create"),
            (OpenFlags::TRUNC, "truncate"),
            (OpenFlags::APPEND, "append"),
            (OpenFlags::EXCL, "exclusive"),
        ] {
            if flags.contains(flag) {
                details.push(word);
            }
        }
        let mut tail = match details.is_empty() {
            true => String::new(),
            false => format!(" ({})", details.join(", ")),
        };
        tail.push_str(&attrs_text(attrs));
        let awaits = Awaits::Open {
            path: p.clone(),
            access,
            mask: None,
        };
        let judgement = if !changes {
            Judgement::new(id, read(format!("sftp open-read {}", p.shown), &[&p])).reading_file()
        } else if !reads {
            Judgement::new(
                id,
                write(format!("sftp open-write {}{tail}", p.shown), &[&p]),
            )
        } else {
            let text = format!("sftp open-read-write {}{tail}", p.shown);
            Judgement::new(id, write(text, &[&p]))
                .part(read(format!("sftp open-read {}", p.shown), &[&p]))
                .part(write(format!("sftp open-write {}{tail}", p.shown), &[&p]))
        };
        Ok(Outcome::Decide(judgement, awaits))
    }

    /// Whether a decided request on `handle` has not been answered yet.
    fn decision_pending_on(&self, handle: Handle<'_>) -> bool {
        self.pending.values().any(|p| match p {
            super::Pending::Client(awaits) => awaits.uses(handle.as_bytes()),
            super::Pending::Own(_) => false,
        })
    }

    /// `FAILURE` when another open could take the session past its handle limit.
    fn handles_full(&self, id: u32) -> Option<Outcome> {
        let opening = self
            .pending
            .values()
            .filter(|p| {
                matches!(
                    p,
                    super::Pending::Client(Awaits::Open { .. } | Awaits::Opendir { .. })
                )
            })
            .count();
        (self.handles.len() + opening >= self.limits.max_handles).then(|| {
            refused(
                id,
                StatusCode::FAILURE,
                format!(
                    "sod: this session has {} handles open, the most it may",
                    self.limits.max_handles
                ),
            )
        })
    }

    fn extended(&self, id: u32, ext: Extended<'_>) -> Result<Outcome, NulInPath> {
        let p = |path: ByteStr<'_>| self.resolve(path);
        Ok(match ext {
            Extended::PosixRename { old_path, new_path } => {
                let (old, new) = (p(old_path)?, p(new_path)?);
                let text = format!("sftp posix-rename {} {}", old.shown, new.shown);
                decide(id, write(text, &[&old, &new]), Awaits::Nothing)
            }
            Extended::Hardlink { old_path, new_path } => {
                let (old, new) = (p(old_path)?, p(new_path)?);
                let text = format!("sftp hardlink {} {}", old.shown, new.shown);
                decide(id, write(text, &[&old, &new]), Awaits::Nothing)
            }
            Extended::Statvfs { path } => {
                let path = p(path)?;
                decide(
                    id,
                    read(format!("sftp statvfs {}", path.shown), &[&path]),
                    Awaits::Nothing,
                )
            }
            Extended::Lsetstat { path, attrs } => {
                let path = p(path)?;
                let text = format!("sftp lsetstat {}{}", path.shown, attrs_text(&attrs));
                decide(id, write(text, &[&path]), Awaits::Nothing)
            }
            Extended::Limits => decide(id, read("sftp limits".into(), &[]), Awaits::Nothing),
            Extended::ExpandPath { path } => {
                let bytes = path.as_bytes();
                if bytes.first() == Some(&b'~') {
                    if bytes.contains(&0) {
                        return Err(NulInPath);
                    }
                    // `~` and `~user` are the server's to expand: the object is the path as
                    // sent, and not known exactly.
                    let part = Part::new(Read, format!("sftp expand-path {}", quote(bytes)))
                        .object(path::escape_invalid(bytes))
                        .unknown(TILDE);
                    decide(id, part, Awaits::Nothing)
                } else {
                    let path = p(path)?;
                    let text = format!("sftp expand-path {}", path.shown);
                    decide(id, read(text, &[&path]), Awaits::Nothing)
                }
            }
            Extended::HomeDirectory { username } => {
                let text = match username.is_empty() {
                    true => "sftp home-directory".to_owned(),
                    false => format!("sftp home-directory {}", quote(username.as_bytes())),
                };
                decide(id, read(text, &[]), Awaits::Nothing)
            }
            Extended::UsersGroupsById { uids, gids } => {
                let list = |ids: crate::sftp::codec::IdList<'_>| {
                    ids.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let text = format!(
                    "sftp users-groups-by-id uids={} gids={}",
                    list(uids),
                    list(gids)
                );
                decide(id, read(text, &[]), Awaits::Nothing)
            }
            Extended::Fstatvfs { handle } | Extended::Fsync { handle } => {
                // Part of the open that made the handle: fstatvfs reads file system figures,
                // fsync flushes what that open wrote.
                match self.lookup(handle) {
                    Some(_) => Outcome::Forward(Awaits::Nothing),
                    None => unknown_handle(id, PacketType::EXTENDED),
                }
            }
            Extended::CopyData {
                read_handle,
                read_offset,
                read_len,
                write_handle,
                write_offset,
            } => self.copy_data(
                id,
                read_handle,
                write_handle,
                [read_offset, read_len, write_offset],
            ),
            Extended::Other { name, .. } => {
                let name = quote(name.as_bytes());
                let text = format!("sftp extended {name}");
                let why = format!("sod does not know what the SFTP extension {name} does");
                Outcome::Decide(Judgement::not_understood(id, text, why), Awaits::Nothing)
            }
        })
    }

    /// `copy-data`: the one request that moves file data without it crossing the gateway,
    /// so it is decided on its own: a read of the source, a write of the destination.
    fn copy_data(
        &self,
        id: u32,
        from: Handle<'_>,
        to: Handle<'_>,
        [read_offset, read_len, write_offset]: [u64; 3],
    ) -> Outcome {
        let (Some(source), Some(dest)) = (self.lookup(from), self.lookup(to)) else {
            return unknown_handle(id, PacketType::EXTENDED);
        };
        match (&source.state, &dest.state) {
            (HandleState::Masked(_), _) => {
                return refused(
                    id,
                    StatusCode::PERMISSION_DENIED,
                    format!(
                        "sod: {} is read masked in this session; copy-data would copy it unmasked",
                        source.path.shown
                    ),
                );
            }
            (
                HandleState::File(Access { read: true, .. }),
                HandleState::File(Access { write: true, .. }),
            ) => {}
            _ => {
                return refused(
                    id,
                    StatusCode::PERMISSION_DENIED,
                    format!(
                        "sod: copy-data needs a file opened for reading ({}) and one opened for writing ({})",
                        source.path.shown, dest.path.shown
                    ),
                );
            }
        }
        let (s, d) = (&source.path, &dest.path);
        let length = match read_len {
            0 => "to the end".to_owned(),
            n => format!("{n} bytes"),
        };
        let text = format!(
            "sftp copy-data {} -> {} (from {read_offset}, {length}, to {write_offset})",
            s.shown, d.shown
        );
        let judgement = Judgement::new(id, write(text, &[s, d]))
            .part(read(format!("sftp read {}", s.shown), &[s]))
            .part(write(format!("sftp write {}", d.shown), &[d]));
        Outcome::Decide(
            judgement,
            Awaits::OnHandles([Some(owned(from)), Some(owned(to))]),
        )
    }
}

/// A handle as a table key.
fn owned(handle: Handle<'_>) -> Bytes {
    Bytes::copy_from_slice(handle.as_bytes())
}

/// Attributes for an operation's text: ` size=0 uid=1000 gid=1000 mode=100644 atime=…
/// mtime=…`, then each extended attribute as ` ext:<type>=<data>`.
fn attrs_text(attrs: &Attrs<'_>) -> String {
    let mut out = String::new();
    if let Some(size) = attrs.size {
        let _ = write!(out, " size={size}");
    }
    if let Some(owner) = attrs.owner {
        let _ = write!(out, " uid={} gid={}", owner.uid, owner.gid);
    }
    if let Some(mode) = attrs.permissions {
        let _ = write!(out, " mode={mode:o}");
    }
    if let Some(times) = attrs.times {
        let _ = write!(out, " atime={} mtime={}", times.atime, times.mtime);
    }
    for (name, data) in attrs.extended.iter().flat_map(|e| e.iter()) {
        let _ = write!(
            out,
            " ext:{}={}",
            quote(name.as_bytes()),
            quote(data.as_bytes())
        );
    }
    out
}
