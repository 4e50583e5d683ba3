//! What the stack sees of the Kubernetes API: [`K8sRequest`], and sod-core's
//! [`Commit`](sod_core::layer::Commit) as the innermost service, whose
//! [`GoAhead`](sod_core::layer::GoAhead) the gateway waits for before it forwards anything.

/// What an operation asks of the API server. Layers never look inside: they decide on the
/// request's [`Operation`](sod_core::Operation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum K8sRequest {
    /// Authenticating a bearer token (the first request with it on a connection).
    Connect,
    /// One API request.
    Api,
    /// A stream opened by an upgrade: exec, attach, port-forward.
    Stream,
}

/// The go-ahead for one committed Kubernetes operation.
pub type K8sResponse = sod_core::layer::GoAhead;
