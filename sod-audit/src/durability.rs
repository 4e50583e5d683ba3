//! How durable a record must be before `append` returns.

use serde::{Deserialize, Serialize};
use sod_core::OperationKind;

/// How durable a record is when [`AuditSink::append`](crate::AuditSink::append) returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Queued in the gateway's memory: lost if the process dies, or the write fails, before
    /// the writer gets to it (its sequence number is then provisional).
    Buffered,
    /// Handed to the operating system: survives the gateway process being killed, not a power
    /// loss.
    Written,
    /// On disk (`fdatasync`): survives a power loss.
    Fsync,
}

/// The durability each operation kind requires before the operation is forwarded.
///
/// The default: [`Fsync`](Durability::Fsync) for writes, schema changes, admin, exec, transfers,
/// forwards and anything not understood; [`Written`](Durability::Written) for reads and
/// connects.
///
/// ```
/// use sod_audit::{Durability, DurabilityPolicy};
/// use sod_core::OperationKind;
///
/// let policy = DurabilityPolicy::default().with(OperationKind::Read, Durability::Buffered);
/// assert_eq!(policy.for_kind(OperationKind::Read), Durability::Buffered);
/// assert_eq!(policy.for_kind(OperationKind::Write), Durability::Fsync);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurabilityPolicy {
    overrides: Vec<(OperationKind, Durability)>,
}

impl DurabilityPolicy {
    /// Requires `durability` for `kind`.
    #[must_use]
    pub fn with(mut self, kind: OperationKind, durability: Durability) -> Self {
        self.overrides.retain(|(k, _)| *k != kind);
        self.overrides.push((kind, durability));
        self
    }

    /// The durability `kind` requires.
    pub fn for_kind(&self, kind: OperationKind) -> Durability {
        if let Some((_, d)) = self.overrides.iter().find(|(k, _)| *k == kind) {
            return *d;
        }
        match kind {
            OperationKind::Connect | OperationKind::Read => Durability::Written,
            _ => Durability::Fsync,
        }
    }
}
