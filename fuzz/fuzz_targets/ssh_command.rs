//! `sod_ssh::command::analyze` on arbitrary text: never panics out of `analyze`, and what the
//! `command` module documents about an `Analysis` holds:
//!
//! - `Unknown` comes with a note saying why (and only `Unknown` has one), and with objects
//!   marked not all known;
//! - objects are absolute paths, without duplicates;
//! - the same line gives the same analysis;
//! - running the line through `sh -c '…'` says at least as much: no lower kind, no object
//!   dropped, no unknown objects made known (unless the line starts with `-` or `+`, which
//!   `sh` reads as its own options).
//!
//! `analyze` runs the shell parser on a thread of its own and turns a panic there into
//! "not understood". libFuzzer's panic hook would abort on those before the join, so this
//! target's hook lets panics raised in *dependencies* (brush-parser) unwind to that join (with a
//! note on stderr) and still aborts on any panic raised in sod's own code or in the standard
//! library.

#![no_main]

use std::collections::BTreeSet;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Once};

use libfuzzer_sys::fuzz_target;
use sod_core::OperationKind;
use sod_ssh::command::{Analysis, Context, Programs, analyze};

static PROGRAMS: LazyLock<Programs> = LazyLock::new(Programs::builtin);

fn run(line: &str) -> Analysis {
    analyze(line, &Context::new("/srv/work", "/home/agent"), &PROGRAMS)
}

fuzz_target!(
    init: install_panic_hook(),
    |data: &[u8]| {
        let Ok(line) = std::str::from_utf8(data) else {
            return;
        };
        let a = run(line);
        let unknown = a.kind() == OperationKind::Unknown;
        assert_eq!(unknown, a.note().is_some(), "a note exactly when not understood: {a:?}");
        if unknown {
            assert!(a.unknown_objects().is_some(), "{a:?}");
        }
        let objects: BTreeSet<&String> = a.objects().iter().collect();
        assert_eq!(objects.len(), a.objects().len(), "duplicate objects: {a:?}");
        assert!(a.objects().iter().all(|o| o.starts_with('/')), "relative objects: {a:?}");
        assert_eq!(run(line), a, "not deterministic");

        // A line starting with `-` or `+` would be read as `sh`'s own options, not run.
        if line.starts_with(['-', '+']) {
            return;
        }
        let wrapped = run(&format!("sh -c '{}'", line.replace('\'', r"'\''")));
        assert!(wrapped.kind() >= a.kind(), "`sh -c` lowered the kind: {wrapped:?} vs {a:?}");
        if wrapped.kind() != OperationKind::Unknown {
            assert!(
                a.objects().iter().all(|o| wrapped.objects().contains(o)),
                "`sh -c` dropped objects: {wrapped:?} vs {a:?}"
            );
            assert!(
                a.unknown_objects().is_none() || wrapped.unknown_objects().is_some(),
                "`sh -c` made unknown objects known: {wrapped:?} vs {a:?}"
            );
        }
    }
);

/// Whether a panic was raised in a crate from a registry (brush-parser) rather than in sod or
/// the standard library.
fn in_dependency(info: &PanicHookInfo<'_>) -> bool {
    info.location().is_some_and(|l| {
        let file = l.file().replace('\\', "/");
        file.contains("/registry/src/") || file.contains("/git/checkouts/")
    })
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    static NOTES: AtomicUsize = AtomicUsize::new(0);
    ONCE.call_once(|| {
        // libfuzzer-sys's hook: prints the panic and aborts, so the input is saved.
        let fuzzer_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if in_dependency(info) {
                if NOTES.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("note: panic in a dependency, left to analyze's thread join: {info}");
                }
            } else {
                fuzzer_hook(info);
            }
        }));
    });
}
