//! # sod-core
//!
//! The protocol-neutral heart of **sod**, segregation of duties for planner–executor agent
//! runtimes. A protocol driver (PostgreSQL, SSH, Kubernetes) turns each policy-relevant unit of
//! work into a [`Request`] carrying an [`Operation`] and sends it through a tower stack:
//!
//! ```text
//! IdentityLayer ─► RecordingLayer ─► PolicyLayer ─► ApprovalLayer ─► MaskingLayer ─► upstream
//!  (this crate)     (sod-audit)      (this crate)   (sod-approval)   (this crate)   (protocol)
//! ```
//!
//! - **Who** — [`identity`]: a [`Verifier`](identity::Verifier) turns a presented
//!   [`Credential`] (an OIDC JWT via [`OidcVerifier`](identity::OidcVerifier), or a sod
//!   capability) into an [`Identity`] for the [`Session`].
//! - **What they may hold** — [`capability`]: signed, scoped, expiring, attenuable capabilities;
//!   a planner holds a [`CapabilityHandle`](capability::CapabilityHandle), never a credential.
//! - **What they ask** — [`Operation`]: kind, normalized text, objects, flags and a
//!   [`Fingerprint`].
//! - **Whether it may run** — [`policy`]: TOML rules, deny-overrides, no match means deny.
//! - **What they may see** — [`masking`]: selectors, detectors and strategies.
//! - **The stack** — [`layer`]: [`IdentityLayer`](layer::IdentityLayer),
//!   [`PolicyLayer`](layer::PolicyLayer), [`MaskingLayer`](layer::MaskingLayer).
//! - **Saying no** — [`Refusal`]: a stable code, the rule and a reason, for every protocol's
//!   native error. The last check before anything is forwarded is [`Request::commit`]
//!   (authorize, then write the audit record).
//! - **Keeping secrets** — [`Secret`]: no `Debug`, no `Display`, no `Serialize`, zeroized;
//!   [`Secret::read_private_file`] refuses key files others can read.
//! - **Talking to the web** — [`https`]: the one HTTPS client and the one rule for plain HTTP
//!   (loopback only).

#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod capability;
pub mod clock;
mod duration;
mod glob;
pub mod hex;
pub mod https;
pub mod identity;
pub mod layer;
pub mod masking;
mod operation;
pub mod policy;
mod principal;
mod refusal;
mod request;
mod secret;
mod session;

pub use duration::parse_duration;
pub use glob::Glob;
pub use operation::{
    Fingerprint, KindSet, Operation, OperationBuilder, OperationFlags, OperationKind, Target,
    UnknownKind,
};
pub use principal::{AgentRole, Principal, PrincipalKind, UnknownPrincipalKind};
pub use refusal::{BoxError, Refusal, RefusalCode};
pub use request::{ApprovalEvidence, Authorized, Credential, Request};
pub use secret::Secret;
pub use session::{AuthMethod, Identity, Peer, Session, SessionId};
