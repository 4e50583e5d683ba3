//! `sod token keygen|issue|attenuate|revoke|inspect`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::json;
use sod_cli::config::Config;
use sod_core::capability::{CapabilitySpec, CapabilityToken, Caveat};
use sod_core::{Glob, KindSet, OperationKind};

use super::{Code, Failure, Out, Outcome, Who, list};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Write a new capability key (32 random bytes, hex, mode 0600).
    Keygen {
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a capability with the key of `[identity.capabilities]`.
    Issue {
        /// The config file.
        #[arg(long, short, default_value = "sod.toml")]
        config: PathBuf,
        /// The holder's principal id.
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        who: Who,
        /// Lifetime (`15m`, `8h`).
        #[arg(long, default_value = "15m", value_parser = duration)]
        ttl: Duration,
        /// Target globs it may reach.
        #[arg(long, required = true)]
        targets: Vec<String>,
        /// Operation kinds it may ask for: connect, read, forward, transfer, write, schema,
        /// exec, admin.
        #[arg(long, default_value = "connect,read")]
        kinds: Vec<String>,
        #[command(flatten)]
        narrow: Narrowing,
    },
    /// Narrow a capability (no key needed): every option adds a caveat.
    Attenuate {
        /// The capability (`-` reads it from stdin).
        token: String,
        /// Expire within this time.
        #[arg(long, value_parser = duration)]
        ttl: Option<Duration>,
        /// Also require one of these target globs.
        #[arg(long)]
        targets: Vec<String>,
        /// Only these operation kinds.
        #[arg(long)]
        kinds: Vec<String>,
        #[command(flatten)]
        narrow: Narrowing,
    },
    /// Revoke a capability (and every capability derived from it): add its id to the
    /// config's `revocation_file`. Running gateways refuse it within a few seconds and end its
    /// open sessions.
    Revoke {
        /// The config file.
        #[arg(long, short, default_value = "sod.toml")]
        config: PathBuf,
        /// The capability, or its id (hex, as `sod token inspect` shows it); `-` reads it from
        /// stdin.
        capability: String,
        /// Why (written as a comment next to the id).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show what a capability says; with --config, also verify it.
    Inspect {
        /// The capability (`-` reads it from stdin).
        token: String,
        /// Verify with the key of this config's `[identity.capabilities]` (exits 1 if invalid).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Restrictions shared by `issue` and `attenuate`.
#[derive(Debug, Args)]
pub(crate) struct Narrowing {
    /// Every object must match one of these globs (`public.orders`).
    #[arg(long)]
    objects: Vec<String>,
    /// Objects never to touch.
    #[arg(long)]
    deny_objects: Vec<String>,
    /// At most this many rows per result.
    #[arg(long)]
    row_limit: Option<u64>,
    /// Only the entries of this approved plan.
    #[arg(long)]
    plan: Option<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    sod_core::parse_duration(s)
}

fn kinds(values: &[String]) -> Result<KindSet, Failure> {
    let mut set = KindSet::default();
    for k in list(values) {
        let kind: OperationKind = k
            .parse()
            .map_err(|e| Failure::new(Code::Usage, format!("--kinds: {e}")))?;
        set.insert(kind);
    }
    Ok(set)
}

fn globs(values: &[String]) -> Vec<Glob> {
    list(values).iter().map(|g| Glob::new(g)).collect()
}

fn read_token(arg: &str) -> Result<CapabilityToken, Failure> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::failed(format!("cannot read stdin: {e}")))?
    } else {
        arg.to_owned()
    };
    text.trim()
        .parse()
        .map_err(|e| Failure::new(Code::Usage, format!("not a capability: {e}")))
}

pub(crate) fn run(command: TokenCommand, out: Out) -> Outcome {
    match command {
        TokenCommand::Keygen { out: path } => {
            sod_cli::keys::generate(&path)
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
            out.show(&json!({ "key": path }), || {
                format!(
                    "wrote {} (keep it secret; name it in [identity.capabilities] key_file)",
                    path.display()
                )
            });
            Ok(Code::Ok)
        }
        TokenCommand::Issue {
            config,
            subject,
            who,
            ttl,
            targets,
            kinds: kind_args,
            narrow,
        } => {
            let config = Config::load(&config)?;
            let authority = sod_cli::assemble::authority(&config)?.ok_or_else(|| {
                Failure::new(
                    Code::Usage,
                    format!(
                        "{}: no [identity.capabilities] section, so no key to issue with",
                        config.source.file().display()
                    ),
                )
            })?;
            let mut spec = CapabilitySpec::new(subject, ttl)
                .kind(who.kind.into())
                .groups(list(&who.groups))
                .targets(list(&targets))
                .kinds(kinds(&kind_args)?);
            if let Some(h) = who.on_behalf_of {
                spec = spec.on_behalf_of(h);
            }
            if !narrow.objects.is_empty() {
                spec = spec.objects(list(&narrow.objects));
            }
            if !narrow.deny_objects.is_empty() {
                spec = spec.deny_objects(list(&narrow.deny_objects));
            }
            if let Some(rows) = narrow.row_limit {
                spec = spec.row_limit(rows);
            }
            if let Some(plan) = narrow.plan {
                spec = spec.plan(plan);
            }
            let token = authority
                .issue(spec)
                .map_err(|e| Failure::new(Code::Usage, e))?;
            let encoded = token.encode();
            out.show(
                &json!({"token": encoded, "claims": token.unverified_claims()}),
                || encoded.clone(),
            );
            Ok(Code::Ok)
        }
        TokenCommand::Attenuate {
            token,
            ttl,
            targets,
            kinds: kind_args,
            narrow,
        } => {
            let mut token = read_token(&token)?;
            let mut caveats = Vec::new();
            if let Some(ttl) = ttl {
                caveats.push(Caveat::expires_in(ttl, SystemTime::now()));
            }
            if !targets.is_empty() {
                caveats.push(Caveat::Targets(globs(&targets)));
            }
            if !kind_args.is_empty() {
                caveats.push(Caveat::Kinds(kinds(&kind_args)?));
            }
            if !narrow.objects.is_empty() {
                caveats.push(Caveat::Objects(globs(&narrow.objects)));
            }
            if !narrow.deny_objects.is_empty() {
                caveats.push(Caveat::DenyObjects(globs(&narrow.deny_objects)));
            }
            if let Some(rows) = narrow.row_limit {
                caveats.push(Caveat::RowLimit(rows));
            }
            if let Some(plan) = narrow.plan {
                caveats.push(Caveat::Plan(plan));
            }
            if caveats.is_empty() {
                return Err(Failure::new(
                    Code::Usage,
                    "nothing to narrow: give --ttl, --targets, --kinds, --objects, --deny-objects, --row-limit or --plan",
                ));
            }
            for caveat in caveats {
                token = token
                    .attenuate(caveat)
                    .map_err(|e| Failure::new(Code::Usage, e))?;
            }
            let encoded = token.encode();
            out.show(&json!({ "token": encoded }), || encoded.clone());
            Ok(Code::Ok)
        }
        TokenCommand::Revoke {
            config,
            capability,
            reason,
        } => revoke(&config, &capability, reason.as_deref(), out),
        TokenCommand::Inspect { token, config } => {
            let parsed = read_token(&token)?;
            let verified = match config {
                None => None,
                Some(path) => {
                    let config = Config::load(&path)?;
                    let authority = sod_cli::assemble::authority(&config)?.ok_or_else(|| {
                        Failure::new(Code::Usage, "the config has no [identity.capabilities]")
                    })?;
                    Some(
                        authority
                            .verify_str(&parsed.encode(), SystemTime::now())
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    )
                }
            };
            let caveats: Vec<&Caveat> = parsed.caveats().collect();
            out.show(
                &json!({
                    "key_id": parsed.key_id(),
                    "claims": parsed.unverified_claims(),
                    "caveats": caveats,
                    "verified": verified.as_ref().map(Result::is_ok),
                    "error": verified.as_ref().and_then(|v| v.as_ref().err()),
                }),
                || {
                    let c = parsed.unverified_claims();
                    let mut s = format!(
                        "id          {}\nsubject     {} ({:?}){}\nissuer      {} (key {})\ntargets     {}\nkinds       {}\nexpires_at  {} (unix)\n",
                        c.id,
                        c.subject,
                        c.kind,
                        c.on_behalf_of
                            .as_deref()
                            .map_or_else(String::new, |h| format!(", for {h}")),
                        c.issuer,
                        parsed.key_id(),
                        c.targets.iter().map(Glob::as_str).collect::<Vec<_>>().join(", "),
                        c.kinds,
                        c.expires_at,
                    );
                    if !c.groups.is_empty() {
                        s += &format!("groups      {}\n", c.groups.join(", "));
                    }
                    for caveat in &caveats {
                        s += &format!("caveat      {}\n", serde_json::to_string(caveat).unwrap_or_default());
                    }
                    s += match &verified {
                        None => "verified    not checked (give --config to verify)\n".to_owned(),
                        Some(Ok(())) => "verified    yes\n".to_owned(),
                        Some(Err(e)) => format!("verified    NO: {e}\n"),
                    }
                    .as_str();
                    s
                },
            );
            Ok(match verified {
                Some(Err(_)) => Code::No,
                _ => Code::Ok,
            })
        }
    }
}

/// `sod token revoke`: appends the capability's id to the config's revocation file.
fn revoke(config: &Path, capability: &str, reason: Option<&str>, out: Out) -> Outcome {
    let config = Config::load(config)?;
    let Some((file, _)) = sod_cli::assemble::revocations(&config)? else {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "{}: [identity.capabilities] names no revocation_file to add the capability to",
                config.source.file().display()
            ),
        ));
    };
    let text = if capability == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::failed(format!("cannot read stdin: {e}")))?
    } else {
        capability.to_owned()
    };
    let text = text.trim();
    // A capability names its id in its claims; anything else must be an id itself. (The
    // token's signature does not matter: revoking the id a forged token names is harmless.)
    let (id, subject) = if text.starts_with(sod_core::capability::PREFIX) {
        let token = read_token(text)?;
        let claims = token.unverified_claims();
        (claims.id.clone(), Some(claims.subject.clone()))
    } else if sod_core::capability::is_capability_id(text) {
        (text.to_ascii_lowercase(), None)
    } else {
        return Err(Failure::new(
            Code::Usage,
            "not a capability (sodcap1.…) nor a capability id (hex digits)",
        ));
    };
    let now_us = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut comment = format!("revoked {}", sod_audit::replay::rfc3339(now_us));
    if let Some(subject) = &subject {
        comment.push_str(&format!(" subject={subject}"));
    }
    if let Some(reason) = reason {
        comment.push_str(&format!(": {reason}"));
    }
    let added = file
        .append(&id, &comment)
        .map_err(|e| Failure::failed(format!("cannot revoke: {e}")))?;
    out.show(
        &json!({"id": id, "file": file.path(), "added": added}),
        || {
            if added {
                format!(
                    "revoked capability {id} (added to {}; running gateways refuse it within seconds)",
                    file.path().display()
                )
            } else {
                format!("capability {id} was already revoked in {}", file.path().display())
            }
        },
    );
    Ok(Code::Ok)
}
