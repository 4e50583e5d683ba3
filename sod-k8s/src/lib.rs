//! # sod-k8s
//!
//! sod for the Kubernetes API: a gateway in front of an API server that gates every request of
//! `kubectl` and the `kube` client, unchanged.
//!
//! A [`Gateway`] serves HTTPS (HTTP/2 and HTTP/1.1). Each request's bearer token — a sod
//! capability or an OIDC token — is the principal; the request becomes an
//! [`Operation`](sod_core::Operation) that runs through a tower stack of sod layers (identity,
//! recording, policy, approval, masking) before the gateway forwards it with the executor's
//! own credentials, through a `kube::Client`.
//!
//! - [`request_info`]: method, path and query → resource, namespace, name, subresource and
//!   verb, exactly as k8s.io/apiserver's `RequestInfoFactory` does; non-canonical paths and
//!   unknown methods refused.
//! - [`operation`]: the operation's kind (`read`, `write`, `admin`, `schema`, `exec`,
//!   `forward`), its object (`NAMESPACE/GROUP/RESOURCE/NAME`) or collection, whether it
//!   touches Secrets, and the body as approvers see it.
//! - [`masking`]: Secret values kept from masked principals in every form the API returns
//!   them (objects, lists, tables, metadata, the last-applied annotation, watch events), and
//!   other values by mask profile.
//! - [`status`]: refusals as Kubernetes `Status` objects, and the rules the gateway names.
//! - [`spdy`]: SPDY/3.1 frames and header blocks, for relaying and recording SPDY streams.
//! - [`Gateway`], [`GatewayBuilder`]: the server; [`K8sRequest`] and [`K8sResponse`] are what
//!   the stack sees.
//!
//! Inside, `gateway` holds one connection's requests (`connection`), the request the API
//! server gets and the answer the client gets (`forward`, `body`), and exec, attach and
//! port-forward streams over WebSocket and SPDY (`stream`).

#![forbid(unsafe_code)]

mod gateway;
pub mod masking;
pub mod operation;
pub mod request_info;
mod service;
pub mod spdy;
pub mod status;

pub use gateway::{Gateway, GatewayBuilder};
pub use service::{K8sRequest, K8sResponse};
