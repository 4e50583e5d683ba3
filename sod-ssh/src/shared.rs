//! What a gateway's connections share: the stack, the targets, the bounds, and the tables
//! that judge commands.

use std::sync::Arc;
use std::time::Duration;

use sod_core::Glob;
use sod_core::admission::Admission;

use crate::command::Programs;
use crate::target::SshTarget;

/// Bounds on what one connection or channel may hold (see [`GatewayBuilder`](crate::GatewayBuilder)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Channels open at once on one connection.
    pub(crate) channels: usize,
    /// Bytes of stdin a channel holds while its command waits for a decision; beyond it, the
    /// gateway stops reading the client until the decision.
    pub(crate) pending_input: usize,
    /// The largest file a masked principal may read over SFTP (the gateway masks it whole).
    pub(crate) masked_file: u64,
    /// How long held output of a masked terminal waits for the rest of its line.
    pub(crate) masked_flush: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            channels: 16,
            pending_input: 1024 * 1024,
            masked_file: 16 * 1024 * 1024,
            masked_flush: Duration::from_millis(50),
        }
    }
}

/// Shared by every connection of a gateway.
pub(crate) struct Shared<L> {
    pub(crate) layer: L,
    pub(crate) targets: Vec<SshTarget>,
    pub(crate) admission: Admission,
    pub(crate) limits: Limits,
    pub(crate) env_allow: Vec<Glob>,
    pub(crate) programs: Arc<Programs>,
}

impl<L> Shared<L> {
    /// Whether an `env` request for `name` passes.
    pub(crate) fn env_allowed(&self, name: &str) -> bool {
        Glob::any_matches(&self.env_allow, name)
    }
}

/// The environment variables that pass by default: the locale and the terminal type.
pub const DEFAULT_ENV_ALLOW: &[&str] = &["LANG", "LC_*", "TERM"];
