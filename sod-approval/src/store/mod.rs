//! Where approval requests live.
//!
//! A store holds requests and changes them only by compare-and-swap on their
//! [`version`](crate::ApprovalRequest::version): the [`Broker`](crate::Broker) reads a request,
//! applies a rule-checked change and swaps it in; if another decision or another executor got
//! there first, the swap fails and the broker reads again. So "two executors racing for one
//! approval get exactly one success" holds for any store that implements `swap` atomically.

use futures_util::future::BoxFuture;

use crate::{ApprovalId, ApprovalRequest};
use sod_core::Fingerprint;

pub mod file;
pub mod memory;
pub mod postgres;

pub use file::FileStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;

/// A store failed; the broker refuses (fails closed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A request with this id already exists.
    #[error("approval request {0} already exists")]
    Exists(ApprovalId),
    /// The store could not be read or written.
    #[error("approval store unavailable: {0}")]
    Unavailable(String),
}

/// Approval request storage. See the [module docs](self).
pub trait Store: Send + Sync + 'static {
    /// Adds a new request.
    fn insert(&self, request: ApprovalRequest) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The request with `id`.
    fn get(&self, id: &ApprovalId) -> BoxFuture<'_, Result<Option<ApprovalRequest>, StoreError>>;

    /// Replaces the stored request with `new` if its version is still `new.version - 1`;
    /// whether it did.
    fn swap(&self, new: ApprovalRequest) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Requests for `fingerprint` (any status), oldest first.
    fn by_fingerprint(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>>;

    /// Requests still pending (expiry not applied), oldest first.
    fn pending(&self) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>>;

    /// Approved plans and grants of the requester with principal id `requester` (compared
    /// case-insensitively; expiry not applied), oldest first.
    fn plans_and_grants(
        &self,
        requester: &str,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>>;

    /// A receiver that changes whenever a request changes anywhere, for stores shared by
    /// several brokers (the PostgreSQL store's `LISTEN`). `None`: waiters poll.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Whether `r` is an approved plan or grant of `requester` (what
/// [`Store::plans_and_grants`] selects).
pub(crate) fn is_plan_or_grant_of(r: &ApprovalRequest, requester: &str) -> bool {
    r.status == crate::Status::Approved
        && !matches!(r.scope, crate::Scope::Operation)
        && r.requester.id.eq_ignore_ascii_case(requester)
}
