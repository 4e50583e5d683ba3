//! # sod-approval
//!
//! The decision point between planning and execution (invariants I2 and I3 of the design): a
//! risky operation waits until *someone else* says yes, and the yes covers exactly that
//! operation.
//!
//! - [`ApprovalRequest`]: who asks (and for whom), what (target, kind, text, objects, the
//!   operation's [`Fingerprint`](sod_core::Fingerprint), which covers bound parameter values),
//!   why, who may approve, how many must, until when. Its [`Scope`] is that one operation, a
//!   plan (operations approved as a whole, each usable once: [`ApprovalRequest::plan`]) or a
//!   grant (a class of operations until expiry, revocable: [`ApprovalRequest::grant`]).
//! - [`Broker`]: every separation-of-duties rule in one place — the approver is neither the
//!   requester nor the human the requester acts for, is a human in an approver group; a quorum
//!   counts distinct approvers; one deny is final; expired requests cannot be decided or used;
//!   an approval is bound to its fingerprint and consumed (once by default).
//! - [`Store`]: where requests live: [`MemoryStore`]; [`FileStore`], a journal with `fsync`
//!   for one gateway; [`PostgresStore`] for replicas (`LISTEN`/`NOTIFY` wakes waiters). Every
//!   change is a compare-and-swap on the request's version, so two executors racing for one
//!   approval get one success.
//! - [`ApprovalLayer`]: the tower layer. On a require-approval decision it uses a matching
//!   approved request, plan entry or grant, or submits a request and waits; on timeout the client's error names the
//!   approval id, so the same operation can run once it is approved.
//! - [`Notifier`]s ([`TracingNotifier`], the signed [`WebhookNotifier`]): told about every
//!   submit, decision and use, without ever blocking or failing the broker.
//! - [`ApprovalApi`]: the HTTP (JSON) API for approvers — list, show, approve, deny, revoke —
//!   behind bearer tokens checked by a [`Verifier`](sod_core::identity::Verifier), with an
//!   OpenAPI document ([`openapi`]); [`ApprovalsClient`] calls it over the same route table.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sod_approval::{ApprovalRequest, Broker, MemoryStore, Requester};
//! use sod_core::{Operation, OperationKind, Principal, PrincipalKind, Target};
//!
//! let broker = Broker::new(Arc::new(MemoryStore::new()));
//! let op = Operation::builder(Target::new("pg/prod"), OperationKind::Write, "DELETE FROM t WHERE id = 1").build();
//! let request = ApprovalRequest::new(
//!     Requester::new("planner-1").on_behalf_of("alice"),
//!     &op,
//!     vec!["dba".into()],
//!     1,
//!     Duration::from_secs(600),
//! );
//! let id = broker.submit(request).await.unwrap();
//! // The terms the policy rule asks for; an approval given on laxer terms does not count.
//! let spec = sod_core::policy::ApprovalSpec {
//!     approver_groups: vec!["dba".into()],
//!     quorum: 1,
//!     ttl: Duration::from_secs(600),
//! };
//!
//! let alice = Principal::new("alice", "idp", PrincipalKind::Human).with_groups(["dba"]);
//! assert!(broker.decide(&id, &alice, true, None).await.is_err()); // she asked for it
//!
//! let bob = Principal::new("bob", "idp", PrincipalKind::Human).with_groups(["dba"]);
//! broker.decide(&id, &bob, true, Some("ok".into())).await.unwrap();
//! let planner = Requester::new("planner-1").on_behalf_of("alice");
//! let evidence = broker.consume(&planner, &op, &spec, None).await.unwrap().expect("approved");
//! assert_eq!(evidence.approvers, ["bob"]);
//! // Consumed: it does not cover a second run.
//! assert!(broker.consume(&planner, &op, &spec, None).await.unwrap().is_none());
//! # });
//! ```

#![forbid(unsafe_code)]

mod broker;
mod client;
pub mod http;
mod layer;
pub mod notify;
mod request;
mod routes;
pub mod store;

pub use self::http::{ApprovalApi, ServeError, openapi};
pub use broker::{Broker, BrokerError};
pub use client::{Answer, ApprovalsClient};
pub use layer::{ApprovalLayer, Approving, Justification};
pub use notify::{Notification, Notifier, TracingNotifier, WebhookError, WebhookNotifier};
pub use request::{
    ApprovalId, ApprovalRequest, GrantScope, OperationSummary, PlanEntry, Requester, Scope, Status,
    Vote,
};
pub use store::{FileStore, MemoryStore, PostgresStore, Store, StoreError};
