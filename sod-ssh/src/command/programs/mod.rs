//! The program table: what each program does, by name.
//!
//! Built-in entries know a program's options (every one of them: an option we do not know could
//! write a file or run a program, so the program is then judged at its worst) and which operands
//! are files, patterns or commands. Entries added by configuration ([`Programs::with`]) say only
//! what the program does ([`Effect`]); their operands are taken as paths.
//!
//! A program not in the table runs code we cannot see into: [`Exec`](OperationKind::Exec), with
//! unknown objects.

mod archives;
mod files;
mod getopt;
mod system;
mod text;
mod wrappers;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sod_core::OperationKind;

use super::judge::Invocation;
use super::words::Arg;
pub(crate) use getopt::{Item, Options, Parsed, Style};
pub(crate) use wrappers::{HARMLESS_SET_LETTERS, HARMLESS_SET_OPTIONS};

/// What a program does, for programs added to the table by configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads the files named by its operands, and changes nothing.
    Read,
    /// Writes (creates, changes or removes) the files named by its operands.
    Write,
    /// Runs code: what it touches is not known.
    Exec,
    /// Administers the system: what it touches is not known.
    Admin,
}

impl Effect {
    fn kind(self) -> OperationKind {
        match self {
            Effect::Read => OperationKind::Read,
            Effect::Write => OperationKind::Write,
            Effect::Exec => OperationKind::Exec,
            Effect::Admin => OperationKind::Admin,
        }
    }
}

/// How a built-in entry reads its arguments.
#[derive(Clone, Copy)]
pub(crate) enum Syntax {
    /// GNU options (`getopt_long` with argument permutation), described as in [`Options`].
    Gnu(&'static str),
    /// Options only before the first operand (the rest is often a command).
    Posix(&'static str),
    /// The handler reads the arguments itself.
    Raw,
}

/// A built-in entry.
pub(crate) struct Known {
    /// The names it is run by.
    pub(crate) names: &'static [&'static str],
    pub(crate) syntax: Syntax,
    /// What it does at worst: the judgement when its options are not all known.
    pub(crate) worst: OperationKind,
    /// Records what one run does.
    pub(crate) run: fn(&mut Invocation<'_, '_>, &Parsed),
}

/// A table entry.
#[derive(Clone)]
enum Entry {
    Known(&'static Known, Arc<Options>),
    Declared(Effect),
}

/// The program table: built-in knowledge of common programs, extended by configuration.
///
/// ```
/// use sod_ssh::command::{Effect, Programs};
///
/// let programs = Programs::builtin().with("report-gen", Effect::Read);
/// assert!(programs.contains("cat") && programs.contains("report-gen"));
/// ```
#[derive(Clone)]
pub struct Programs {
    entries: HashMap<String, Entry>,
}

impl Programs {
    /// The built-in table.
    pub fn builtin() -> Self {
        let mut entries = HashMap::new();
        for table in [
            files::TABLE,
            archives::TABLE,
            text::TABLE,
            wrappers::TABLE,
            system::TABLE,
        ] {
            for known in table {
                let options = Arc::new(match known.syntax {
                    Syntax::Gnu(spec) | Syntax::Posix(spec) => Options::new(spec),
                    Syntax::Raw => Options::default(),
                });
                for name in known.names {
                    entries.insert(
                        (*name).to_owned(),
                        Entry::Known(known, Arc::clone(&options)),
                    );
                }
            }
        }
        Programs { entries }
    }

    /// Adds (or replaces) `name`, a program that does `effect` to the paths among its
    /// operands.
    pub fn with(mut self, name: &str, effect: Effect) -> Self {
        self.entries
            .insert(name.to_owned(), Entry::Declared(effect));
        self
    }

    /// Whether `name` is in the table.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Judges a run of `name` (which may not be in the table).
    pub(crate) fn judge(&self, name: &str, inv: &mut Invocation<'_, '_>) {
        match self.entries.get(name) {
            None => unknown_program(inv),
            Some(Entry::Declared(effect)) => {
                let kind = effect.kind();
                inv.raise(kind);
                if kind >= OperationKind::Exec {
                    let name = inv.name;
                    inv.objects_unknown(format!("`{name}` runs code sod cannot see into"));
                }
                let args = inv.args;
                inv.operands_as_paths(args, kind);
            }
            Some(Entry::Known(known, options)) => {
                let args = inv.args;
                let parsed = match known.syntax {
                    Syntax::Gnu(_) => options.parse(args, Style::Permute),
                    Syntax::Posix(_) => options.parse(args, Style::Posix),
                    Syntax::Raw => Ok(Parsed {
                        items: args.iter().cloned().map(Item::Operand).collect(),
                    }),
                };
                match parsed {
                    Ok(parsed) => (known.run)(inv, &parsed),
                    Err(why) => unclear(inv, known.worst, &why),
                }
            }
        }
    }
}

impl Default for Programs {
    fn default() -> Self {
        Self::builtin()
    }
}

impl<S: AsRef<str>> Extend<(S, Effect)> for Programs {
    fn extend<I: IntoIterator<Item = (S, Effect)>>(&mut self, entries: I) {
        for (name, effect) in entries {
            self.entries
                .insert(name.as_ref().to_owned(), Entry::Declared(effect));
        }
    }
}

impl fmt::Debug for Programs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let declared = self
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Declared(_)))
            .count();
        f.debug_struct("Programs")
            .field("entries", &self.entries.len())
            .field("declared", &declared)
            .finish()
    }
}

// === Shared handlers ===

/// A program sod does not know: it runs code we cannot see into.
fn unknown_program(inv: &mut Invocation<'_, '_>) {
    let name = inv.name;
    inv.raise(OperationKind::Exec);
    inv.objects_unknown(format!("`{name}` is not a program sod knows"));
    let args = inv.args;
    inv.operands_as_paths(args, OperationKind::Exec);
}

/// The options were not all understood: the program is judged at its worst, and its objects
/// are not known (what is known is still recorded).
pub(crate) fn unclear(inv: &mut Invocation<'_, '_>, worst: OperationKind, why: &str) {
    let name = inv.name;
    if worst == OperationKind::Unknown {
        inv.not_understood(format!("`{name}`: {why}"));
        return;
    }
    inv.raise(worst);
    inv.objects_unknown(format!("`{name}`: {why}"));
    let args = inv.args;
    inv.operands_as_paths(args, worst.min(OperationKind::Write));
}

/// Reads its operands (standard input without any).
pub(crate) fn reads(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(OperationKind::Read);
    for a in p.operands() {
        read_operand(inv, a);
    }
}

/// Reads its operands, or the working directory without any (`ls`).
pub(crate) fn reads_or_here(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(OperationKind::Read);
    let operands = p.operands();
    if operands.is_empty() {
        inv.read(&Arg::literal("."));
    }
    for a in operands {
        inv.read(a);
    }
}

/// Writes its operands.
pub(crate) fn writes(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(OperationKind::Write);
    for a in p.operands() {
        inv.write(a);
    }
}

/// Reports on the system; its operands are not files.
pub(crate) fn info(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    inv.raise(OperationKind::Read);
}

/// A read of an input operand: `-` is standard input.
pub(crate) fn read_operand(inv: &mut Invocation<'_, '_>, a: &Arg) {
    if !a.is("-") {
        inv.read(a);
    }
}

/// `--files0-from=F` and the like: reads `list`, then the files it names.
pub(crate) fn reads_list(inv: &mut Invocation<'_, '_>, list: &Arg) {
    read_operand(inv, list);
    let name = inv.name;
    let shown = list.text().unwrap_or("…").to_owned();
    inv.objects_unknown(format!("`{name}` reads the files named in `{shown}`"));
}

/// Whether a literal argument is an option cluster of single-dash letters containing `letter`
/// (`-avz` contains `z`): for programs that read their own options.
pub(crate) fn has_short(args: &[Arg], letter: char) -> bool {
    args.iter().any(|a| {
        a.text().is_some_and(|t| {
            t.len() > 1 && t.starts_with('-') && !t.starts_with("--") && t[1..].contains(letter)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_description_parses_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for table in [
            files::TABLE,
            archives::TABLE,
            text::TABLE,
            wrappers::TABLE,
            system::TABLE,
        ] {
            for known in table {
                if let Syntax::Gnu(spec) | Syntax::Posix(spec) = known.syntax {
                    let _ = Options::new(spec);
                }
                for name in known.names {
                    assert!(seen.insert(*name), "`{name}` is in the table twice");
                }
            }
        }
    }
}
