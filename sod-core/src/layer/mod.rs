//! The generic tower layers: [`IdentityLayer`], [`PolicyLayer`], [`MaskingLayer`], and
//! [`UnauditedLayer`] for stacks that run without an audit record on purpose; and [`Commit`],
//! the innermost service of gateways that forward only after a [`GoAhead`] (SSH, Kubernetes).
//!
//! Each is an ordinary [`tower::Layer`] over [`Request<B>`](crate::Request) with
//! [`BoxError`] as its error type, so they compose with each other, with the
//! audit and approval layers of the other sod crates, and with any tower middleware (rate limits,
//! timeouts, metrics). The order (ARCHITECTURE.md says why):
//!
//! ```text
//! IdentityLayer ─► RecordingLayer ─► PolicyLayer ─► ApprovalLayer ─► MaskingLayer ─► upstream
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
//! use sod_core::capability::{CapabilityAuthority, CapabilityKey};
//! use sod_core::masking::MaskProfiles;
//! use sod_core::policy::Policy;
//!
//! let authority = CapabilityAuthority::new("sod", CapabilityKey::generate("k1"));
//! let stack = tower::ServiceBuilder::new()
//!     .layer(IdentityLayer::new(authority))
//!     .layer(PolicyLayer::new(Policy::deny_all()))
//!     .layer(MaskingLayer::new(MaskProfiles::new([])));
//! # let _ = stack;
//! ```

mod commit;
mod identity;
mod masking;
mod policy;
mod unaudited;

pub use commit::{Commit, GoAhead};
pub use identity::{Identify, IdentityLayer};
pub use masking::{Mask, MaskFuture, MaskingLayer};
pub use policy::{Decided, PolicyLayer};
pub use unaudited::{Unaudited, UnauditedLayer};

use crate::{BoxError, Refusal};

/// Takes the service that `poll_ready` drove to readiness and leaves a fresh clone in its
/// place, so a `'static` future can own it (tower's contract: call the service that was made
/// ready, not a clone of it). For layers whose future outlives `call`.
pub fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// A ready future holding a refusal, boxed as the stack's error type.
pub(crate) fn refused<T>(r: Refusal) -> futures_util::future::Ready<Result<T, BoxError>> {
    futures_util::future::ready(Err(Box::new(r)))
}
