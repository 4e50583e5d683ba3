//! `sod approvals list|show|approve|deny|revoke`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::StatusCode;
use sod_approval::{Answer, ApprovalRequest, ApprovalsClient};
use sod_core::Secret;

use super::{Code, Failure, Out, Outcome};

#[derive(Debug, Args)]
pub(crate) struct ApprovalsArgs {
    /// The approvals API.
    #[arg(
        long,
        env = "SOD_APPROVALS_URL",
        default_value = "http://127.0.0.1:6544",
        global = true
    )]
    url: String,
    /// Your token (OIDC or capability): you are the one who votes.
    #[arg(long, env = "SOD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// PEM roots for an HTTPS API (default: the system's).
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Pending requests you may see, oldest first.
    List,
    /// One request: operation, rule, requester, votes, status. Exits 1 for an unknown id.
    Show {
        /// The approval id (`apr-…`).
        id: String,
    },
    /// Vote yes.
    Approve {
        /// The approval id.
        id: String,
        /// Why.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Vote no (final).
    Deny {
        /// The approval id.
        id: String,
        /// Why.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Withdraw a pending or approved request, plan or grant (its requester's side or an
    /// approver): from then on it covers nothing.
    Revoke {
        /// The approval id.
        id: String,
    },
}

pub(crate) async fn run(args: ApprovalsArgs, out: Out) -> Outcome {
    let token = args.token.ok_or_else(|| {
        Failure::new(
            Code::Usage,
            "give your token with --token or SOD_TOKEN (the approvals API needs to know who you are)",
        )
    })?;
    let tls = match &args.ca_file {
        Some(ca) => {
            Some(sod_cli::assemble::client_tls(ca).map_err(|e| Failure::new(Code::Usage, e))?)
        }
        None => None,
    };
    let client = ApprovalsClient::new(&args.url, Secret::new(token), tls)
        .map_err(|e| Failure::new(Code::Usage, e))?;
    let answer = match &args.action {
        Action::List => client.list().await,
        Action::Show { id } => client.show(id).await,
        Action::Approve { id, comment } => client.decide(id, true, comment.as_deref()).await,
        Action::Deny { id, comment } => client.decide(id, false, comment.as_deref()).await,
        Action::Revoke { id } => client.revoke(id).await,
    }
    .map_err(Failure::failed)?;
    if !answer.status.is_success() {
        return Err(refused(&answer));
    }
    match &args.action {
        Action::List => {
            let requests: Vec<ApprovalRequest> = serde_json::from_value(answer.body.clone())
                .map_err(|e| Failure::failed(format!("unexpected answer from the API: {e}")))?;
            out.show(&answer.body, || {
                if requests.is_empty() {
                    return "no pending approval requests you may see".to_owned();
                }
                requests.iter().map(summary).collect::<Vec<_>>().join("\n")
            });
        }
        Action::Show { .. }
        | Action::Approve { .. }
        | Action::Deny { .. }
        | Action::Revoke { .. } => {
            let request: ApprovalRequest = serde_json::from_value(answer.body.clone())
                .map_err(|e| Failure::failed(format!("unexpected answer from the API: {e}")))?;
            out.show(&answer.body, || detail(&request));
        }
    }
    Ok(Code::Ok)
}

/// An API refusal: unknown ids, SoD violations and double votes are negative answers (1);
/// authentication and server trouble are failures (3).
fn refused(answer: &Answer) -> Failure {
    let code = match answer.status {
        StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::CONFLICT => Code::No,
        StatusCode::BAD_REQUEST => Code::Usage,
        _ => Code::Failed,
    };
    Failure::new(code, format!("{} ({})", answer.error(), answer.status))
}

fn summary(r: &ApprovalRequest) -> String {
    format!(
        "{}  {:?}  {} asks to run on {}: {}  (rule {}, quorum {}, {} vote(s))",
        r.id,
        r.status,
        r.requester.id,
        r.operation.target,
        r.operation.text,
        r.rule.as_deref().unwrap_or("-"),
        r.quorum,
        r.votes.len()
    )
}

fn detail(r: &ApprovalRequest) -> String {
    let mut s = format!(
        "id           {}\nstatus       {:?}\nrequester    {}{}\ntarget       {}\nkind         {}\ntext         {}\n",
        r.id,
        r.status,
        r.requester.id,
        r.requester
            .on_behalf_of
            .as_deref()
            .map_or_else(String::new, |h| format!(" (for {h})")),
        r.operation.target,
        r.operation.kind,
        r.operation.text,
    );
    if !r.operation.objects.is_empty() {
        s += &format!("objects      {}\n", r.operation.objects.join(", "));
    }
    for (i, p) in r.operation.params.iter().enumerate() {
        s += &format!("${:<11} {}\n", i + 1, p.as_deref().unwrap_or("NULL"));
    }
    s += &format!(
        "rule         {}\napprovers    {} (quorum {})\n",
        r.rule.as_deref().unwrap_or("-"),
        r.approver_groups.join(", "),
        r.quorum
    );
    if let Some(j) = &r.justification {
        s += &format!("why          {j}\n");
    }
    for v in &r.votes {
        s += &format!(
            "vote         {} {}{}\n",
            v.approver,
            if v.approve { "approved" } else { "denied" },
            v.comment
                .as_deref()
                .filter(|c| !c.is_empty())
                .map_or_else(String::new, |c| format!(": {c}"))
        );
    }
    s
}
