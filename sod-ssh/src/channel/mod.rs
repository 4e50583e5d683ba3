//! One channel, in its own task: what the client asks for (`exec`, `shell`, the `sftp`
//! subsystem, a tunnel), the decision through the stack, then the target.
//!
//! A channel's life:
//!
//! ```text
//! setup (pty, env) ─► request (exec | shell | subsystem) ─► deciding ─► running ─► closed
//!                                                              │
//!                                                              └─► refused: stderr line, exit status, close
//! ```
//!
//! - `decide`: the operation through the stack, with the client's early input held (bounded).
//! - `pump`: an `exec` or `shell` between client and target, masked and recorded.
//! - `sftp`: the SFTP subsystem, request by request.
//! - `tunnel`: a `direct-tcpip` channel.

mod decide;
mod pump;
mod sftp;
mod tunnel;

use std::sync::Arc;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig};
use sod_core::{BoxError, Operation, OperationKind, Request, Session};
use tower::{Layer, Service};

use crate::command;
use crate::refusal::Refused;
use crate::service::{SshRequest, SshResponse, SshUpstream};
use crate::shared::Shared;
use crate::target::SshTarget;
use crate::upstream::UpstreamPool;

pub(crate) use tunnel::{Tunnel, forward};

/// What a channel's task needs from its connection.
pub(crate) struct ChannelContext<L> {
    pub(crate) shared: Arc<Shared<L>>,
    pub(crate) session: Arc<Session>,
    pub(crate) target: SshTarget,
    /// The connection to the target this client connection's channels share.
    pub(crate) upstream: UpstreamPool,
    /// For what only the connection can send (`exit-signal`).
    pub(crate) handle: Handle,
    /// Counts the connection's open channels while the task lives.
    pub(crate) _open: Arc<()>,
}

impl<L> ChannelContext<L>
where
    L: Layer<SshUpstream>,
    L::Service: Service<Request<SshRequest>, Response = SshResponse, Error = BoxError>,
{
    /// A request for `operation` in this channel's session.
    fn request(&self, operation: Operation, body: SshRequest) -> Request<SshRequest> {
        Request::new(self.session.clone(), operation, body)
    }
}

/// A terminal the client asked for.
#[derive(Clone, Debug)]
pub(crate) struct Terminal {
    pub(crate) term: String,
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    pub(crate) px_width: u32,
    pub(crate) px_height: u32,
    pub(crate) modes: Vec<(Pty, u32)>,
}

/// What the client sent before its channel ran: the terminal, allowed environment variables,
/// and input (held, bounded, until the decision).
#[derive(Default)]
pub(crate) struct Setup {
    pub(crate) terminal: Option<Terminal>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) input: Vec<Bytes>,
    pub(crate) input_len: usize,
    pub(crate) eof: bool,
    pub(crate) signals: Vec<Sig>,
}

impl Setup {
    /// Takes in a message that arrives before or while the operation is decided. `false`
    /// when the client closed the channel.
    fn absorb<L>(&mut self, shared: &Shared<L>, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                self.terminal = Some(Terminal {
                    term,
                    cols: col_width,
                    rows: row_height,
                    px_width: pix_width,
                    px_height: pix_height,
                    modes: terminal_modes,
                });
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } if shared.env_allowed(&variable_name) => {
                self.env.push((variable_name, variable_value));
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(t) = &mut self.terminal {
                    (t.cols, t.rows, t.px_width, t.px_height) =
                        (col_width, row_height, pix_width, pix_height);
                }
            }
            ChannelMsg::Data { data } => {
                self.input_len += data.len();
                self.input.push(data);
            }
            ChannelMsg::Eof => self.eof = true,
            ChannelMsg::Signal { signal } => self.signals.push(signal),
            ChannelMsg::Close => return false,
            _ => {}
        }
        true
    }
}

/// What the client asked the channel to run.
enum Asked {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// Runs a session channel until it closes.
pub(crate) async fn run<L>(cx: ChannelContext<L>, channel: Channel<Msg>)
where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    let (mut rx, tx) = channel.split();
    let mut setup = Setup::default();
    let asked = loop {
        match rx.wait().await {
            Some(ChannelMsg::Exec { command, .. }) => break Asked::Exec(command),
            Some(ChannelMsg::RequestShell { .. }) => break Asked::Shell,
            Some(ChannelMsg::RequestSubsystem { name, .. }) => break Asked::Subsystem(name),
            Some(msg) => {
                if !setup.absorb(&cx.shared, msg) {
                    return;
                }
            }
            None => return,
        }
    };
    match asked {
        Asked::Exec(command) => {
            let op = exec_operation(&cx, &command).await;
            run_program(
                cx,
                rx,
                tx,
                setup,
                op,
                SshRequest::Exec,
                Program::Exec(command),
            )
            .await;
        }
        Asked::Shell => {
            let text = match &setup.terminal {
                Some(_) => "shell (terminal)",
                None => "shell",
            };
            let op = Operation::builder(cx.target.name.clone(), OperationKind::Exec, text)
                .objects_unknown("an interactive shell may touch anything")
                .build();
            run_program(cx, rx, tx, setup, op, SshRequest::Shell, Program::Shell).await;
        }
        Asked::Subsystem(name) if name == "sftp" => sftp::run(cx, rx, tx).await,
        Asked::Subsystem(name) => {
            let op = Operation::not_understood(
                cx.target.name.clone(),
                format!("subsystem {name}"),
                format!("sod-ssh knows the sftp subsystem only, not `{name}`"),
            );
            run_program(
                cx,
                rx,
                tx,
                setup,
                op,
                SshRequest::Subsystem,
                Program::Subsystem(name),
            )
            .await;
        }
    }
}

/// The operation of an `exec` request: its command line, analysed (on a blocking thread: a
/// long line takes a while to parse, and the parser runs on a thread of its own).
async fn exec_operation<L>(cx: &ChannelContext<L>, command: &[u8]) -> Operation {
    let target = cx.target.name.clone();
    let Ok(text) = String::from_utf8(command.to_vec()) else {
        return Operation::not_understood(
            target,
            String::from_utf8_lossy(command),
            "the command line is not UTF-8",
        );
    };
    let context = command::Context::new(cx.target.working_dir.clone(), cx.target.home.clone());
    let programs = cx.shared.programs.clone();
    let analysed = {
        let (target, text) = (target.clone(), text.clone());
        tokio::task::spawn_blocking(move || {
            command::analyze(&text, &context, &programs).operation(target, &text)
        })
    };
    analysed.await.unwrap_or_else(|e| {
        Operation::not_understood(target, text, format!("the analysis failed: {e}"))
    })
}

/// What runs on the target once allowed.
pub(crate) enum Program {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// Decides `op`, then runs `program` on the target and pumps both ways; a refusal is told on
/// the channel.
async fn run_program<L>(
    cx: ChannelContext<L>,
    mut rx: ChannelReadHalf,
    tx: ChannelWriteHalf<Msg>,
    mut setup: Setup,
    op: Operation,
    body: SshRequest,
    program: Program,
) where
    L: Layer<SshUpstream> + Send + Sync + 'static,
    L::Service:
        Service<Request<SshRequest>, Response = SshResponse, Error = BoxError> + Send + 'static,
    <L::Service as Service<Request<SshRequest>>>::Future: Send,
{
    // Connect to the target (the first time) while the stack decides: the login costs a round
    // trip or two, and nothing of the operation reaches the target before the decision.
    let pool = cx.upstream.clone();
    let connecting = tokio::spawn(async move { pool.get().await });
    let decided = decide::decide(&cx, op, body, &mut rx, &mut setup).await;
    let response = match decided {
        decide::Decided::Go(r) => r,
        decide::Decided::Refused(refused) => {
            connecting.abort();
            tell(&tx, &refused).await;
            return;
        }
        decide::Decided::Gone => {
            connecting.abort();
            return;
        }
    };
    pump::run(cx, rx, tx, setup, response, connecting, program).await;
}

/// Tells the client why nothing ran: the line on stderr, the exit status, end of channel.
pub(crate) async fn tell(tx: &ChannelWriteHalf<Msg>, refused: &Refused) {
    let _ = tx
        .extended_data_bytes(1, Bytes::copy_from_slice(refused.line.as_bytes()))
        .await;
    let _ = tx.exit_status(refused.status).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}
