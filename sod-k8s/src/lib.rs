//! # sod-k8s
//!
//! sod for the Kubernetes API: what each request asks for, derived as the API server derives
//! it, and the sod [`Operation`](sod_core::Operation) policy judges it by.
//!
//! - [`request_info`]: method, path and query → resource, namespace, name, subresource and
//!   verb, exactly as k8s.io/apiserver's `RequestInfoFactory` does; non-canonical paths and
//!   unknown methods refused.
//! - [`operation`]: the operation's kind (`read`, `write`, `admin`, `schema`, `exec`,
//!   `forward`), its object (`NAMESPACE/GROUP/RESOURCE/NAME`) and whether it touches Secrets.
//! - [`masking`]: Secret values kept from masked principals in every form the API returns
//!   them (objects, lists, tables, metadata, the last-applied annotation, watch events).
//!
//! The gateway itself (a hyper server in front of the API server, Secret masking, exec over
//! WebSocket and SPDY) is being built on these; see the README's status table.

#![forbid(unsafe_code)]

mod gateway;
pub mod masking;
pub mod operation;
pub mod request_info;
mod service;
pub mod status;

pub use gateway::{Gateway, GatewayBuilder};
pub use service::{K8sRequest, K8sResponse};
