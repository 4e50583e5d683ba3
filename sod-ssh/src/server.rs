//! One client connection, as russh sees it: authentication (the credential is the password,
//! or keyboard-interactive answers), and the channels the client opens.
//!
//! russh awaits every callback here inside the connection's session loop: while one runs, no
//! other channel moves and no keepalive is answered. So callbacks only answer at once — a
//! channel request is acknowledged, an `env` checked against the allow-list — and everything
//! that may wait (a decision, an approval, the target) happens in the channel's own task
//! (`channel`). The one exception is authentication, which runs the session's `Connect`
//! operation through the stack before it answers: nothing else can happen on the connection
//! before it is authenticated, and the handshake timeout bounds it.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::{Auth, Handle, Msg, Response, Session as SshSession};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use sod_core::admission::{SessionSlot, StartupSlot};
use sod_core::{BoxError, Credential, Peer, Request, Session};
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};
use zeroize::Zeroizing;

use crate::channel::{self, ChannelContext};
use crate::refusal::Refused;
use crate::service::{SshRequest, SshResponse, SshUpstream};
use crate::shared::Shared;
use crate::target;

/// Keyboard-interactive answers longer than this are cut by the OpenSSH client (at 1 023
/// bytes), so a longer credential comes in parts of exactly this many bytes; a shorter answer
/// is the last part.
pub const TOKEN_PART: usize = 1000;

/// The longest credential the gateway reads (in parts).
pub const MAX_TOKEN: usize = 16 * 1024;

/// What keyboard-interactive has collected so far.
enum Interactive {
    Idle,
    /// Parts of the credential so far.
    Collecting(Zeroizing<Vec<u8>>),
    /// Refused: one more round shows the reason, then the client is told no.
    Refused,
}

/// The methods a client may try.
fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::Password, MethodKind::KeyboardInteractive][..])
}

fn reject() -> Auth {
    // `Some(methods)`: with `None`, russh would stop offering the method just tried.
    Auth::Reject {
        proceed_with_methods: Some(methods()),
        partial_success: false,
    }
}

/// The connection's state, owned by russh's session loop.
pub(crate) struct Connection<L> {
    shared: Arc<Shared<L>>,
    peer: SocketAddr,
    startup: Option<StartupSlot>,
    slot: Option<SessionSlot>,
    session: Option<Arc<Session>>,
    /// The stack that ran the login's `Connect`, kept until the connection ends.
    stack: Option<Box<dyn Send>>,
    target: Option<crate::SshTarget>,
    /// The connection to the target, shared by this connection's channels.
    upstream: Option<crate::upstream::UpstreamPool>,
    handle: Option<Handle>,
    interactive: Interactive,
    /// Why the last attempt failed, for the keyboard-interactive round that shows it.
    refusal: Option<String>,
    channels: Arc<()>,
    /// Given the session when the client is authenticated (the handshake deadline stops
    /// there; a revoked capability ends the connection).
    authed: Option<oneshot::Sender<Arc<Session>>>,
}

impl<L> Connection<L> {
    pub(crate) fn new(
        shared: Arc<Shared<L>>,
        peer: SocketAddr,
        startup: StartupSlot,
        authed: oneshot::Sender<Arc<Session>>,
    ) -> Self {
        Self {
            shared,
            peer,
            startup: Some(startup),
            slot: None,
            session: None,
            stack: None,
            target: None,
            upstream: None,
            handle: None,
            interactive: Interactive::Idle,
            refusal: None,
            channels: Arc::new(()),
            authed: Some(authed),
        }
    }
}

impl<L> Connection<L>
where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    /// Runs the session's `Connect` with `token` for a client that logs in as `user`.
    async fn login(&mut self, user: &str, token: &str) -> Auth {
        match self.try_login(user, token).await {
            Ok(()) => Auth::Accept,
            Err(why) => {
                tracing::info!(peer = %self.peer, user, reason = %why, "ssh login refused");
                self.refusal = Some(why);
                reject()
            }
        }
    }

    async fn try_login(&mut self, user: &str, token: &str) -> Result<(), String> {
        if self.session.is_some() {
            return Err("already authenticated".into());
        }
        let target = target::pick(&self.shared.targets, user)?.clone();
        let session = Arc::new(Session::new(
            target.name.clone(),
            Peer::Tcp(self.peer),
            Some(user.to_owned()),
        ));
        let connect =
            Request::connect(session.clone(), Credential::new(token), SshRequest::Connect);
        // The login's stack lives as long as the connection: dropping it writes the session's
        // `session_ended` record (with the reason the gateway gave, if it ended the session).
        let mut service = self.shared.layer.layer(sod_core::layer::Commit);
        let mut response = match service.ready().await {
            Ok(ready) => ready.call(connect).await,
            Err(e) => Err(e),
        }
        .map_err(|e| truncated_hint(token, Refused::from_error(&e).line))?;
        response.finish(&Default::default());
        let principal = session
            .principal()
            .map(|p| p.id.clone())
            .ok_or("sod: the stack has no identity layer")?;
        let slot = self
            .shared
            .admission
            .session(&principal)
            .map_err(|e| e.to_string())?;
        tracing::info!(peer = %self.peer, %principal, target = %target.name, session = %session.id(), "ssh session");
        self.slot = Some(slot);
        self.stack = Some(Box::new(service));
        self.startup = None;
        self.session = Some(session.clone());
        self.upstream = Some(crate::upstream::UpstreamPool::new(target.clone()));
        self.target = Some(target);
        if let Some(authed) = self.authed.take() {
            let _ = authed.send(session);
        }
        Ok(())
    }

    fn context(&self) -> Option<ChannelContext<L>> {
        Some(ChannelContext {
            shared: self.shared.clone(),
            session: self.session.clone()?,
            target: self.target.clone()?,
            upstream: self.upstream.clone()?,
            handle: self.handle.clone()?,
            _open: self.channels.clone(),
        })
    }

    /// Whether another channel may open.
    fn channel_room(&self) -> bool {
        // One reference is the connection's own.
        Arc::strong_count(&self.channels) <= self.shared.limits.channels
    }
}

/// A refusal of a credential OpenSSH cut at 1 023 bytes says so.
fn truncated_hint(token: &str, mut line: String) -> String {
    if token.len() == 1023 {
        if line.ends_with('\n') {
            line.pop();
        }
        line.push_str(&format!(
            " (the credential is 1023 bytes, where OpenSSH cuts passwords: send longer ones in parts of {TOKEN_PART} bytes with keyboard-interactive, see the sod-ssh docs)"
        ));
    }
    line.trim_end().to_owned()
}

impl<L> russh::server::Handler for Connection<L>
where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    type Error = russh::Error;

    async fn auth_none(&mut self, _: &str) -> Result<Auth, russh::Error> {
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        _: &str,
        _: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, russh::Error> {
        // Who a client is comes from a sod credential, never from a key it holds.
        Ok(reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, russh::Error> {
        Ok(self.login(user, password).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, russh::Error> {
        let state = std::mem::replace(&mut self.interactive, Interactive::Idle);
        let (mut parts, answer) = match (state, response) {
            (Interactive::Refused, _) => return Ok(reject()),
            (_, None) => {
                self.interactive = Interactive::Collecting(Zeroizing::new(Vec::new()));
                return Ok(prompt(1));
            }
            (Interactive::Collecting(parts), Some(mut r)) => (parts, r.next().unwrap_or_default()),
            (Interactive::Idle, Some(_)) => return Ok(reject()),
        };
        parts.extend_from_slice(&answer);
        if parts.len() > MAX_TOKEN {
            self.refusal = Some(format!(
                "sod: the credential is longer than {MAX_TOKEN} bytes"
            ));
            return Ok(self.show_refusal());
        }
        if answer.len() == TOKEN_PART {
            let next = parts.len() / TOKEN_PART + 1;
            self.interactive = Interactive::Collecting(parts);
            return Ok(prompt(next));
        }
        let Ok(token) = std::str::from_utf8(&parts) else {
            self.refusal = Some("sod: the credential is not UTF-8".into());
            return Ok(self.show_refusal());
        };
        match self.login(user, token).await {
            Auth::Accept => Ok(Auth::Accept),
            _ => Ok(self.show_refusal()),
        }
    }

    async fn auth_succeeded(&mut self, session: &mut SshSession) -> Result<(), russh::Error> {
        self.handle = Some(session.handle());
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _: &mut SshSession,
    ) -> Result<(), russh::Error> {
        if !self.channel_room() {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 4, // SSH_OPEN_RESOURCE_SHORTAGE
                    reason: format!(
                        "sod: at most {} channels per connection",
                        self.shared.limits.channels
                    ),
                })
                .await;
            return Ok(());
        }
        let Some(cx) = self.context() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(channel::run(cx, channel));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        origin: &str,
        origin_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _: &mut SshSession,
    ) -> Result<(), russh::Error> {
        let Some(cx) = self.context().filter(|_| self.channel_room()) else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        let tunnel = channel::Tunnel {
            host: host.to_owned(),
            port,
            origin: origin.to_owned(),
            origin_port,
        };
        // The decision (and any approval) happens in the tunnel's task; the open is answered
        // from there.
        tokio::spawn(channel::forward(cx, channel, reply, tunnel));
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        reply: russh::server::ChannelOpenHandle,
        _: &mut SshSession,
    ) -> Result<(), russh::Error> {
        reply.reject(not_supported("X11 channels")).await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        reply: russh::server::ChannelOpenHandle,
        _: &mut SshSession,
    ) -> Result<(), russh::Error> {
        reply
            .reject(not_supported("forwarded-tcpip channels"))
            .await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        reply: russh::server::ChannelOpenHandle,
        _: &mut SshSession,
    ) -> Result<(), russh::Error> {
        reply.reject(not_supported("Unix-socket forwarding")).await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        // A terminal by itself does nothing; what runs in it is decided at `exec` or `shell`.
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _: &str,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        // The channel's task reads the same request and keeps the allowed ones.
        if self.shared.env_allowed(name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _: &[u8],
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        // Acknowledged at once: the decision may take minutes (an approval), and a refusal is
        // told on the channel's stderr with an exit status, which is what scripts read.
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _: bool,
        _: &str,
        _: &str,
        _: u32,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _: ChannelId,
        _: &mut SshSession,
    ) -> Result<bool, russh::Error> {
        // The agent's own SSH agent never reaches a target: sod's point is that the agent
        // holds no keys a target could use.
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _: &mut SshSession,
    ) -> Result<bool, russh::Error> {
        tracing::info!(peer = %self.peer, address, port = *port, "remote forwarding refused: not supported");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        path: &str,
        _: &mut SshSession,
    ) -> Result<bool, russh::Error> {
        tracing::info!(peer = %self.peer, path, "remote socket forwarding refused: not supported");
        Ok(false)
    }
}

impl<L> Connection<L> {
    /// One more keyboard-interactive round whose title is the refusal (OpenSSH prints it),
    /// then the rejection.
    fn show_refusal(&mut self) -> Auth {
        self.interactive = Interactive::Refused;
        let why = self
            .refusal
            .clone()
            .unwrap_or_else(|| "sod: authentication failed".into());
        Auth::Partial {
            name: Cow::Owned(why),
            instructions: Cow::Borrowed(""),
            prompts: Cow::Owned(Vec::new()),
        }
    }
}

/// The keyboard-interactive prompt for part `n` of the credential. Every prompt says
/// "Password" (tools such as sshpass answer those) and the part number (an askpass script
/// can answer part `n` with bytes `1000·(n−1)` to `1000·n` of a long token).
fn prompt(n: usize) -> Auth {
    let text = if n == 1 {
        "Password: ".to_owned()
    } else {
        format!(
            "Password, part {n} (bytes {} to {} of the token): ",
            TOKEN_PART * (n - 1),
            TOKEN_PART * n - 1
        )
    };
    Auth::Partial {
        name: Cow::Borrowed(""),
        instructions: Cow::Borrowed(""),
        prompts: Cow::Owned(vec![(Cow::Owned(text), false)]),
    }
}

fn not_supported(what: &str) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: 1, // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
        reason: format!("sod: {what} are not supported: a target never reaches back to the client"),
    }
}
