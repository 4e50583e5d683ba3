//! `PgQueryAnalyzer::analyze` on arbitrary text: never panics out of `analyze`, and what the
//! `sql` module documents about an `Analysis` holds:
//!
//! - a parse failure gives `error` and kind `Unknown`, as exactly one `UNKNOWN` statement whose
//!   normalized text is the trimmed source;
//! - a statement with the `SetSearchPath` effect is `Admin`, one with `Execute` is `Unknown`;
//! - a statement's objects and functions have no duplicates.
//!
//! `PgQueryAnalyzer` deliberately catches panics inside `pg_query` (its tree summary indexes and
//! unwraps) and reports them as not understood. libFuzzer's panic hook would abort on those
//! before the catch, so this target's hook lets panics raised in *dependencies* unwind to that
//! catch (with a note on stderr) and still aborts on any panic raised in sod's own code or in
//! the standard library, caught or not.

#![no_main]

use std::collections::HashSet;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use sod_core::OperationKind;
use sod_postgres::sql::{Analyzer, PgQueryAnalyzer, SessionEffect};

fuzz_target!(
    init: install_panic_hook(),
    |data: &[u8]| {
        let sql = String::from_utf8_lossy(data);
        let analysis = PgQueryAnalyzer::new().analyze(&sql);

        let _ = (
            analysis.kind(),
            analysis.objects(),
            analysis.normalized(),
            analysis.functions(),
            analysis.reasons(),
        );
        let _ = analysis.objects().iter().map(ToString::to_string).count();

        if let Some(error) = &analysis.error {
            assert_eq!(analysis.kind(), OperationKind::Unknown, "an error must be Unknown");
            let [statement] = analysis.statements.as_slice() else {
                panic!("an error gives exactly one statement: {analysis:?}");
            };
            assert_eq!(statement.kind, OperationKind::Unknown);
            assert_eq!(statement.tag, "UNKNOWN");
            assert_eq!(statement.normalized, sql.trim(), "keeps the source text");
            assert!(
                analysis.reasons().contains(&format!("not understood: {error}")),
                "the reasons say why it was not understood"
            );
        }
        for statement in &analysis.statements {
            match statement.effect {
                // A path that keeps pg_catalog first is a read the gateway tracks; others
                // are administration; never less than a read.
                SessionEffect::SetSearchPath => assert!(
                    statement.kind >= OperationKind::Read,
                    "changing search_path is at least a read: {sql:?}"
                ),
                SessionEffect::Execute { .. } => assert_eq!(
                    statement.kind,
                    OperationKind::Unknown,
                    "EXECUTE is unknown until the gateway substitutes its PREPARE: {sql:?}"
                ),
                _ => {}
            }
            let mut objects = HashSet::new();
            assert!(
                statement.objects.iter().all(|o| objects.insert(o)),
                "duplicate objects in {statement:?}"
            );
            let mut functions = HashSet::new();
            assert!(
                statement.functions.iter().all(|f| functions.insert(f)),
                "duplicate functions in {statement:?}"
            );
            assert!(statement.kind <= analysis.kind() || analysis.error.is_some());
        }
    }
);

/// Whether a panic was raised in a crate from a registry (`pg_query`, `prost`, …) rather than in
/// sod or the standard library.
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
                    eprintln!(
                        "note: panic in a dependency, left to PgQueryAnalyzer's \
                         catch_unwind: {info}"
                    );
                }
            } else {
                fuzzer_hook(info);
            }
        }));
    });
}
