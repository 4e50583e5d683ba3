//! `sod policy check`: a decision explained, nothing run.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use sod_cli::config::Config;
use sod_core::policy::Effect;
use sod_core::{Principal, Target};
use sod_postgres::sql::operation as sql_operation;
use sod_postgres::sql::{Analyzer as _, PgQueryAnalyzer};

use super::{Code, Failure, Out, Outcome, Who, list};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Explain what the policy decides for a principal and a SQL string: every rule in order,
    /// matched or why not. Exits 0 allowed, 1 denied, 4 requires approval.
    Check {
        /// The config file (its `[policy]` is judged).
        #[arg(long, short, default_value = "sod.toml")]
        config: PathBuf,
        /// The principal id.
        #[arg(long)]
        principal: String,
        #[command(flatten)]
        who: Who,
        /// The target (default: the config's first `[[postgres]]` target).
        #[arg(long)]
        target: Option<String>,
        /// The SQL, analysed as the gateway would (without a server, unqualified names are
        /// taken to be in `public`, or `pg_catalog` for `pg_*`).
        #[arg(long)]
        sql: String,
    },
}

pub(crate) fn run(command: PolicyCommand, out: Out) -> Outcome {
    let PolicyCommand::Check {
        config,
        principal,
        who,
        target,
        sql,
    } = command;
    let config = Config::load(&config)?;
    let policy = sod_cli::assemble::policy(&config)?;
    let target = match target {
        Some(t) => t,
        None => config
            .file
            .postgres
            .first()
            .map(|p| p.target.get_ref().clone())
            .ok_or_else(|| {
                Failure::new(
                    Code::Usage,
                    "give --target (the config has no [[postgres]])",
                )
            })?,
    };
    let mut principal = Principal::new(principal, "sod-policy-check", who.kind.into())
        .with_groups(list(&who.groups));
    if let Some(h) = who.on_behalf_of {
        principal = principal.acting_for(h);
    }
    let op = sql_operation::offline(Target::new(target), &PgQueryAnalyzer::new().analyze(&sql));
    let explanation = policy.explain(&principal, &op);
    let d = &explanation.decision;
    let code = match d.effect() {
        Effect::Allow => Code::Ok,
        Effect::Deny => Code::No,
        _ => Code::NeedsApproval,
    };
    let masks: Vec<&str> = d.masks().iter().map(|m| &**m).collect();
    out.show(
        &json!({
            "effect": d.effect().name(),
            "rule": d.rule_id(),
            "reason": d.reason(),
            "masks": masks,
            "kind": op.kind().to_string(),
            "objects": op.objects(),
            "note": op.note(),
        }),
        || {
            let mut s = format!(
                "operation   {} on {} (objects: {})\n",
                op.kind(),
                op.target(),
                if op.objects().is_empty() {
                    "none".to_owned()
                } else {
                    op.objects().join(", ")
                }
            );
            if let Some(note) = op.note() {
                s += &format!("because     {note}\n");
            }
            s += &format!("rules\n{explanation}");
            if !s.ends_with('\n') {
                s.push('\n');
            }
            if !masks.is_empty() {
                s += &format!("masked with {}\n", masks.join(", "));
            }
            s
        },
    );
    Ok(code)
}
