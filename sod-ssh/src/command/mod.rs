//! What an `exec` command line does.
//!
//! [`analyze`] reads a command line as the shell on the target will (bash's grammar, through
//! brush-parser), walks every command it runs — in lists, pipelines, subshells, `if`/`case`/
//! loop bodies, functions, `$(…)`, `<(…)`, here-documents, and inside wrappers such as `sh -c`,
//! `sudo`, `env`, `xargs` and `find -exec` — and says:
//!
//! - the riskiest [`OperationKind`] among them: a program reads, writes, runs code we cannot see
//!   into (`Exec`, also every program not in the [`Programs`] table), or administers the
//!   system; redirections and options that write (`> f`, `sort -o`, `sed -i`) make it a write;
//! - the paths it reads and writes, resolved against the working directory (and `cd` in the
//!   line), and whether that list is complete: a glob, a path built at run time, `..`, a
//!   recursive read or arguments read from input make it incomplete ([`Analysis::unknown_objects`]);
//! - anything it could not understand: then the kind is [`Unknown`](OperationKind::Unknown),
//!   which policy never allows, and [`Analysis::note`] says why.
//!
//! ```
//! use sod_core::OperationKind;
//! use sod_ssh::command::{Context, Programs, analyze};
//!
//! let cx = Context::new("/srv/app", "/home/agent");
//! let programs = Programs::builtin();
//!
//! let a = analyze("cd logs && grep -c ERROR app.log > ~/errors.txt", &cx, &programs);
//! assert_eq!(a.kind(), OperationKind::Write);
//! // (Redirections first: the shell opens them before the program runs.)
//! assert_eq!(a.objects(), ["/home/agent/errors.txt", "/srv/app/logs/app.log"]);
//! assert_eq!(a.unknown_objects(), None);
//!
//! let a = analyze("cat ~/.ssh/id_*", &cx, &programs);
//! assert_eq!(a.kind(), OperationKind::Read);
//! assert!(a.unknown_objects().is_some());
//!
//! let a = analyze("$CMD /etc/shadow", &cx, &programs);
//! assert_eq!(a.kind(), OperationKind::Unknown);
//! ```
//!
//! The line is read as bash reads it: the login shell on the target is taken to be bash (or a
//! POSIX shell, which reads the accepted lines the same way). The text forwarded must be
//! exactly the text analysed.

mod builtins;
mod judge;
mod parse;
mod paths;
mod programs;
mod words;

#[cfg(test)]
mod tests;

use sod_core::{Operation, OperationKind, Target};

pub use programs::{Effect, Programs};

/// The longest command line analysed; longer ones are not understood.
pub const MAX_LINE: usize = 64 * 1024;

/// The stack of the thread that parses and judges a line. brush-parser recurses on nesting
/// (which [`parse`] caps), and a stack overflow cannot be caught.
const STACK: usize = 64 * 1024 * 1024;

/// Where a command runs: relative paths are resolved against these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The working directory the command starts in: an absolute path, or `~` when it is the
    /// home directory whose path is not known (then `x` is `~/x`).
    pub working_dir: String,
    /// The home directory (`~` expands to it): an absolute path, or `~` when not known.
    pub home: String,
}

impl Context {
    /// A context starting in `working_dir`, with home directory `home`.
    pub fn new(working_dir: impl Into<String>, home: impl Into<String>) -> Self {
        Context {
            working_dir: working_dir.into(),
            home: home.into(),
        }
    }

    /// A command started in the home directory, whose path is not known (as `sshd` starts
    /// commands): paths come out as `~/x`.
    pub fn home_unknown() -> Self {
        Context::new("~", "~")
    }
}

/// What a command line does (see the [module documentation](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    kind: OperationKind,
    objects: Vec<String>,
    unknown_objects: Option<String>,
    programs: Vec<String>,
    note: Option<String>,
}

impl Analysis {
    /// A line that was not understood at all.
    fn not_understood(why: impl Into<String>) -> Self {
        let why = why.into();
        Analysis {
            kind: OperationKind::Unknown,
            objects: Vec::new(),
            unknown_objects: Some(format!("not understood: {why}")),
            programs: Vec::new(),
            note: Some(why),
        }
    }

    /// The riskiest thing the line does.
    pub fn kind(&self) -> OperationKind {
        self.kind
    }

    /// The paths it reads or writes, absolute (or `~/…` when the home directory is not known),
    /// in the order they appear.
    pub fn objects(&self) -> &[String] {
        &self.objects
    }

    /// Why [`objects`](Self::objects) may not be every path it touches, if so.
    pub fn unknown_objects(&self) -> Option<&str> {
        self.unknown_objects.as_deref()
    }

    /// The commands it runs (programs, builtins and functions), by the name they are run by,
    /// in order.
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// Why it was not understood, when [`kind`](Self::kind) is `Unknown`.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The operation for policy and audit: this analysis of `text` (the exact command line
    /// that will be forwarded) on `target`.
    pub fn operation(&self, target: Target, text: &str) -> Operation {
        let mut op =
            Operation::builder(target, self.kind, text).objects(self.objects.iter().cloned());
        if let Some(why) = &self.unknown_objects {
            op = op.objects_unknown(why.clone());
        }
        if let Some(note) = &self.note {
            op = op.note(note.clone());
        }
        op.build()
    }
}

/// Analyses the command line `line`, run in `cx`, with the program table `programs`.
///
/// Never panics and never blocks for long: lines longer than [`MAX_LINE`], with a NUL byte, or
/// nested too deeply are not understood, and so is a line on which the shell parser fails.
pub fn analyze(line: &str, cx: &Context, programs: &Programs) -> Analysis {
    if line.len() > MAX_LINE {
        return Analysis::not_understood(format!(
            "the command line is longer than {MAX_LINE} bytes"
        ));
    }
    if line.contains('\0') {
        return Analysis::not_understood("the command line contains a NUL byte");
    }
    if let Err(why) = parse::check_nesting(line) {
        return Analysis::not_understood(why);
    }
    // A thread of our own: a big stack for the parser's recursion, and a panic in the parser
    // becomes "not understood" instead of taking the gateway down.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("sod-ssh-command".to_owned())
            .stack_size(STACK)
            .spawn_scoped(scope, || judge::line(line, cx, programs));
        match worker {
            Err(e) => Analysis::not_understood(format!("the analysis could not start: {e}")),
            Ok(handle) => match handle.join() {
                Err(_) => Analysis::not_understood("the shell parser failed on this command line"),
                Ok(v) => Analysis {
                    kind: v.kind.unwrap_or(OperationKind::Read),
                    objects: v.objects,
                    unknown_objects: v.unknown_objects,
                    programs: v.programs,
                    note: v.note,
                },
            },
        }
    })
}
