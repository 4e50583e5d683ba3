//! Refusals as an SSH client sees them: one line on the channel's stderr and an exit status,
//! the channel closed, the connection kept.
//!
//! The exit statuses are those of `sysexits.h`, so scripts can tell a verdict from an outage:
//!
//! | status | meaning |
//! |---|---|
//! | [`EXIT_REFUSED`] (77, `EX_NOPERM`) | refused: policy, capability scope, not understood, approval denied |
//! | [`EXIT_APPROVAL_PENDING`] (75, `EX_TEMPFAIL`) | waiting for approval: run the same command again once it is approved |
//! | [`EXIT_UNAVAILABLE`] (69, `EX_UNAVAILABLE`) | the target, the audit log or another dependency is unavailable: nothing ran |

use sod_core::{BoxError, Refusal, RefusalCode};

/// Exit status of a refused command (`EX_NOPERM`).
pub const EXIT_REFUSED: u32 = 77;
/// Exit status of a command that waits for approval (`EX_TEMPFAIL`): nothing ran; once someone
/// else approves it, running the same command again runs it, once.
pub const EXIT_APPROVAL_PENDING: u32 = 75;
/// Exit status when the target or the audit log cannot be reached (`EX_UNAVAILABLE`): nothing
/// ran.
pub const EXIT_UNAVAILABLE: u32 = 69;

/// What the client is told when an operation is not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The line for stderr, newline included: `sod: refused by rule `…`: …`.
    pub line: String,
    /// The exit status.
    pub status: u32,
}

impl Refused {
    /// The message and status for a stack error: a [`Refusal`], or another failure (which
    /// refuses too: fail closed).
    pub fn from_error(err: &BoxError) -> Self {
        match Refusal::find(&**err) {
            Some(r) => Self::from_refusal(r),
            None => Self {
                line: format!("sod: refused: {}\n", one_line(&err.to_string())),
                status: EXIT_UNAVAILABLE,
            },
        }
    }

    /// The message and status for `refusal`.
    pub fn from_refusal(refusal: &Refusal) -> Self {
        let status = match refusal.code() {
            RefusalCode::ApprovalRequired => EXIT_APPROVAL_PENDING,
            RefusalCode::AuditUnavailable | RefusalCode::Unavailable => EXIT_UNAVAILABLE,
            _ => EXIT_REFUSED,
        };
        let mut line = format!("sod: {}", one_line(&refusal.to_string()));
        if refusal.code() == RefusalCode::ApprovalRequired && refusal.approval_id().is_some() {
            line.push_str("; run the same command again once it is approved");
        }
        line.push('\n');
        Self { line, status }
    }

    /// An outage: nothing ran.
    pub fn unavailable(why: impl std::fmt::Display) -> Self {
        Self {
            line: format!("sod: unavailable: {}\n", one_line(&why.to_string())),
            status: EXIT_UNAVAILABLE,
        }
    }
}

/// `text` on one line, so one refusal is one line of stderr whatever the reason quotes.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_rule_on_one_line() {
        let r = Refusal::new(RefusalCode::PolicyDenied, "no\nwrites").with_rule("read-only");
        let shown = Refused::from_refusal(&r);
        assert_eq!(shown.line, "sod: refused by rule `read-only`: no writes\n");
        assert_eq!(shown.status, EXIT_REFUSED);
        let pending = Refusal::new(RefusalCode::ApprovalRequired, "waiting for approval a-1")
            .with_rule("writes-need-approval")
            .with_approval_id("a-1");
        let shown = Refused::from_refusal(&pending);
        assert_eq!(shown.status, EXIT_APPROVAL_PENDING);
        assert!(
            shown
                .line
                .contains("(approval a-1); run the same command again")
        );
        let err: BoxError = "boom".into();
        assert_eq!(Refused::from_error(&err).status, EXIT_UNAVAILABLE);
    }
}
