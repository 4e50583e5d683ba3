//! [`Judgement`]: what one SFTP request does, in the words policy uses.

use sod_core::{Operation, OperationKind, Target};

use super::path::Resolved;

/// What one request does, for policy: a kind, a text, the paths it touches.
///
/// The text is `sftp <verb> <paths…> <details>`: `sftp open-read /home/demo/notes.txt`,
/// `sftp rename /a /b`, `sftp setstat /a mode=100600`. Paths are absolute, `.` and `//`
/// normalised, and quoted with escapes when they hold spaces, quotes, control characters or
/// bytes that are not UTF-8, so two requests that do different things never share a text
/// (their fingerprints differ, and an approval of one never covers the other).
///
/// A request that both reads and writes (an `OPEN` for reading and writing, `copy-data`) has
/// [`parts`](Self::parts): one read and one write, each judged on its own, so a rule that
/// denies reading a file also denies opening it read-write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    id: u32,
    head: Part,
    note: Option<String>,
    parts: Vec<Part>,
    reads_file: bool,
}

/// One atomic part of a [`Judgement`] that reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    kind: OperationKind,
    text: String,
    objects: Vec<String>,
    unknown_objects: Option<String>,
}

impl Part {
    pub(super) fn new(kind: OperationKind, text: String) -> Self {
        Self {
            kind,
            text,
            objects: Vec::new(),
            unknown_objects: None,
        }
    }

    /// Adds a path as an object, with its reason to be unknown if it has one.
    pub(super) fn path(mut self, path: &Resolved) -> Self {
        if !self.objects.contains(&path.object) {
            self.objects.push(path.object.clone());
        }
        if self.unknown_objects.is_none() {
            self.unknown_objects.clone_from(&path.unknown);
        }
        self
    }

    /// Adds an object that is not a resolved path.
    pub(super) fn object(mut self, object: String) -> Self {
        if !self.objects.contains(&object) {
            self.objects.push(object);
        }
        self
    }

    /// Marks the objects as not all known.
    pub(super) fn unknown(mut self, why: &str) -> Self {
        if self.unknown_objects.is_none() {
            self.unknown_objects = Some(why.to_owned());
        }
        self
    }

    /// What the part does.
    pub fn kind(&self) -> OperationKind {
        self.kind
    }

    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The absolute paths touched.
    pub fn objects(&self) -> &[String] {
        &self.objects
    }

    /// Why [`objects`](Self::objects) may not be exactly the files touched, if so.
    pub fn unknown_objects(&self) -> Option<&str> {
        self.unknown_objects.as_deref()
    }

    fn builder(&self, target: Target) -> sod_core::OperationBuilder {
        let mut op = Operation::builder(target, self.kind, &self.text).objects(&self.objects);
        if let Some(why) = &self.unknown_objects {
            op = op.objects_unknown(why);
        }
        op
    }
}

impl Judgement {
    pub(super) fn new(id: u32, head: Part) -> Self {
        Self {
            id,
            head,
            note: None,
            parts: Vec::new(),
            reads_file: false,
        }
    }

    /// A request sod does not understand: kind `Unknown`, which policy never allows
    /// (invariant I7), with `why` as the note the refusal can quote.
    pub(super) fn not_understood(id: u32, text: String, why: String) -> Self {
        let mut judgement = Self::new(id, Part::new(OperationKind::Unknown, text));
        judgement.note = Some(why);
        judgement
    }

    pub(super) fn part(mut self, part: Part) -> Self {
        for o in &part.objects {
            if !self.head.objects.contains(o) {
                self.head.objects.push(o.clone());
            }
        }
        if self.head.unknown_objects.is_none() {
            self.head.unknown_objects.clone_from(&part.unknown_objects);
        }
        self.head.kind = self.head.kind.max(part.kind);
        self.parts.push(part);
        self
    }

    pub(super) fn reading_file(mut self) -> Self {
        self.reads_file = true;
        self
    }

    /// The id of the request judged: pass it to [`Judge::refuse`](super::Judge::refuse) or
    /// [`Judge::serve_masked`](super::Judge::serve_masked).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What the request does: the riskiest of its parts.
    pub fn kind(&self) -> OperationKind {
        self.head.kind
    }

    /// The normalised text, such as `sftp open-read /home/demo/notes.txt`.
    pub fn text(&self) -> &str {
        &self.head.text
    }

    /// The absolute paths touched (the union of the parts').
    pub fn objects(&self) -> &[String] {
        &self.head.objects
    }

    /// Why [`objects`](Self::objects) may not be exactly the files touched, if so: `..`
    /// (which may cross a symlink), a path that is not UTF-8, a relative path before the
    /// working directory is known, `~` expanded by the server.
    pub fn unknown_objects(&self) -> Option<&str> {
        self.head.unknown_objects.as_deref()
    }

    /// Why the request is not understood, for kind `Unknown`.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The read and the write of a request that does both; empty otherwise.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the request opens a file for reading only: the open a masked principal is
    /// served from a masked copy ([`Judge::serve_masked`](super::Judge::serve_masked)).
    pub fn reads_file(&self) -> bool {
        self.reads_file
    }

    /// The [`Operation`] on `target` for the policy stack.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sod_core::{OperationKind, Target};
    /// use sod_ssh::sftp::codec::{self, ByteStr, Init, Limits, Op, Pairs, Request};
    /// use sod_ssh::sftp::{Judge, Verdict};
    ///
    /// let mut judge = Judge::default();
    /// let mut wire = BytesMut::new();
    /// Init { version: 3, extensions: Pairs::EMPTY }.encode(&mut wire)?;
    /// let op = Op::Remove { filename: ByteStr::from("/srv/app/cache.db") };
    /// Request { id: 1, op }.encode(&mut wire)?;
    /// let limits = Limits::default();
    /// let init = codec::decode_frame(&mut wire, &limits)?.expect("INIT");
    /// assert!(matches!(judge.request(&init), Verdict::Forward));
    /// let remove = codec::decode_frame(&mut wire, &limits)?.expect("REMOVE");
    /// let Verdict::Decide(judgement) = judge.request(&remove) else { panic!("a decision") };
    /// let op = judgement.operation(Target::new("ssh/app"));
    /// assert_eq!(op.kind(), OperationKind::Write);
    /// assert_eq!(op.text(), "sftp remove /srv/app/cache.db");
    /// assert_eq!(op.objects(), ["/srv/app/cache.db"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn operation(&self, target: Target) -> Operation {
        let mut op = self.head.builder(target.clone());
        if let Some(note) = &self.note {
            op = op.note(note);
        }
        for part in &self.parts {
            op = op.part(part.builder(target.clone()).build());
        }
        op.build()
    }
}
