//! An in-process store: for tests, and for a single gateway that may lose pending requests on
//! restart.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use sod_core::Fingerprint;

use super::{Store, StoreError};
use crate::{ApprovalId, ApprovalRequest, Status};

/// Keeps requests in memory. See the [module docs](self).
#[derive(Default)]
pub struct MemoryStore {
    requests: Mutex<BTreeMap<ApprovalId, ApprovalRequest>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ApprovalId, ApprovalRequest>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn select(&self, keep: impl Fn(&ApprovalRequest) -> bool) -> Vec<ApprovalRequest> {
        let mut found: Vec<ApprovalRequest> =
            self.lock().values().filter(|r| keep(r)).cloned().collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        found
    }
}

impl Store for MemoryStore {
    fn insert(&self, request: ApprovalRequest) -> BoxFuture<'_, Result<(), StoreError>> {
        let result = {
            let mut map = self.lock();
            if map.contains_key(&request.id) {
                Err(StoreError::Exists(request.id))
            } else {
                map.insert(request.id.clone(), request);
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn get(&self, id: &ApprovalId) -> BoxFuture<'_, Result<Option<ApprovalRequest>, StoreError>> {
        let found = self.lock().get(id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn swap(&self, new: ApprovalRequest) -> BoxFuture<'_, Result<bool, StoreError>> {
        let swapped = {
            let mut map = self.lock();
            match map.get_mut(&new.id) {
                Some(old) if old.version.checked_add(1) == Some(new.version) => {
                    *old = new;
                    true
                }
                _ => false,
            }
        };
        Box::pin(async move { Ok(swapped) })
    }

    fn by_fingerprint(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = self.select(|r| r.operation.fingerprint == fingerprint);
        Box::pin(async move { Ok(found) })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = self.select(|r| r.status == Status::Pending);
        Box::pin(async move { Ok(found) })
    }

    fn plans_and_grants(
        &self,
        requester: &str,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRequest>, StoreError>> {
        let found = self.select(|r| super::is_plan_or_grant_of(r, requester));
        Box::pin(async move { Ok(found) })
    }
}
