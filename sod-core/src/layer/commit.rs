//! [`Commit`]: the innermost service of stacks whose gateway forwards only after the stack said
//! yes, and the [`GoAhead`] it answers with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::audit::{Completion, CompletionHook, Observe, Transcript};
use crate::masking::{Maskable, Masker};
use crate::{BoxError, Refusal, RefusalCode, Request};

/// The go-ahead for one committed operation: the gateway carries it out and reports through it
/// how it ended.
///
/// It carries what the stack decided for the operation's output — the [`Masker`] (from a
/// masking layer) and the operation's [`Transcript`] (from a recording layer) — and the hook a
/// recording layer attached to learn the outcome. Dropped without [`finish`](Self::finish),
/// the outcome is recorded as interrupted.
pub struct GoAhead {
    masker: Masker,
    transcript: Option<Arc<dyn Transcript>>,
    hook: Option<CompletionHook>,
}

impl std::fmt::Debug for GoAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoAhead")
            .field("masked", &!self.masker.is_noop())
            .field("recorded", &self.transcript.is_some())
            .finish()
    }
}

impl GoAhead {
    /// The masker the operation's output goes through (a no-op for unmasked principals).
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The operation's transcript, where a recording layer keeps one.
    pub fn transcript(&self) -> Option<&Arc<dyn Transcript>> {
        self.transcript.as_ref()
    }

    /// Reports how the operation ended (once; later calls do nothing).
    pub fn finish(&mut self, completion: &Completion) {
        if let Some(hook) = self.hook.take() {
            hook(completion);
        }
    }
}

impl Observe for GoAhead {
    fn on_complete(mut self, hook: CompletionHook) -> Self {
        // Layers compose: an earlier hook still hears of the outcome.
        self.hook = Some(match self.hook.take() {
            None => hook,
            Some(first) => Box::new(move |c: &Completion| {
                first(c);
                hook(c);
            }),
        });
        self
    }
}

impl Maskable for GoAhead {
    fn mask(mut self, masker: Masker) -> Self {
        self.masker = masker;
        self
    }
}

/// The innermost service of a stack whose gateway forwards only after the stack said yes (SSH,
/// Kubernetes): [`Request::commit`]s the request — the last check that every layer did its
/// part, then the durable audit record — and answers with the [`GoAhead`]. The gateway
/// forwards nothing before this service answered `Ok`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Commit;

impl<B: Send + Sync + 'static> tower::Service<Request<B>> for Commit {
    type Response = GoAhead;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<GoAhead, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(async move {
            // The go-ahead carries the masker on its way back up through a MaskingLayer: a
            // decision that masks, in a stack without one, would go ahead unmasked.
            if let Some(decision) = req.decision()
                && !decision.masks().is_empty()
                && req
                    .extensions()
                    .get::<super::masking::MaskingInStack>()
                    .is_none()
            {
                return Err(Refusal::new(
                    RefusalCode::Misconfigured,
                    format!(
                        "the decision masks with `{}`, and no MaskingLayer is in the stack to do it",
                        decision.masks().join(", ")
                    ),
                )
                .into());
            }
            req.commit().await?;
            Ok(GoAhead {
                masker: Masker::none(),
                transcript: req.transcript(),
                hook: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::layer::{MaskingLayer, PolicyLayer, UnauditedLayer};
    use crate::masking::{MaskProfile, MaskProfiles};
    use crate::policy::Policy;
    use crate::{
        Identity, Operation, OperationKind, Peer, Principal, PrincipalKind, Session, Target,
    };

    const POLICY: &str = r#"
[[rule]]
id = "masked-reads"
effect = "allow"
kinds = "read"
mask = "p"
"#;

    fn request() -> Request<()> {
        let session = Arc::new(Session::new(Target::new("k8s/t"), Peer::InProcess, None));
        session
            .authenticate(Identity::new(
                Principal::new("planner", "sod", PrincipalKind::PLANNER),
                crate::AuthMethod::Custom,
            ))
            .expect("authenticated");
        Request::new(
            session,
            Operation::builder(Target::new("k8s/t"), OperationKind::Read, "GET /x").build(),
            (),
        )
    }

    #[tokio::test]
    async fn a_masking_decision_without_a_masking_layer_does_not_go_ahead() {
        let policy = || Policy::from_toml("p.toml", POLICY).expect("policy");
        let without = ServiceBuilder::new()
            .layer(UnauditedLayer::new())
            .layer(PolicyLayer::new(policy()))
            .service(Commit);
        let refusal = without.oneshot(request()).await.expect_err("refused");
        let refusal = Refusal::find(&*refusal).expect("a refusal");
        assert_eq!(refusal.code(), RefusalCode::Misconfigured);
        assert!(refusal.reason().contains("no MaskingLayer"), "{refusal}");
        let with = ServiceBuilder::new()
            .layer(UnauditedLayer::new())
            .layer(PolicyLayer::new(policy()))
            .layer(MaskingLayer::new(MaskProfiles::new([MaskProfile::new(
                "p",
            )])))
            .service(Commit);
        let go = with.oneshot(request()).await.expect("goes ahead");
        assert!(!go.masker().is_noop());
    }
}
