//! Real OpenSSH peers for tests: an ephemeral `sshd` ([`Sshd`]), the OpenSSH clients `ssh`,
//! `scp`, `sftp` and `rsync -e ssh` with a deadline ([`Client`], [`run`]), and a terminal for
//! PTY sessions ([`Tmux`]). No mocks: these are the programs users run.
//!
//! ```
//! use std::time::Duration;
//! use sod_testkit::ssh::{self, Sshd};
//!
//! let sshd = Sshd::builder().working_dir("/tmp").start()?;
//! // Public-key login with the fixture's client key, host key checked strictly.
//! let out = ssh::run_ok(&mut sshd.client().ssh("echo hi; pwd"), Duration::from_secs(30))?;
//! assert_eq!(out, "hi\n/tmp\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What the fixture relies on (checked against OpenSSH 9.2p1, Debian bookworm)
//!
//! - **Working directory.** sshd always starts sessions in the user's home from passwd. With
//!   [`SshdBuilder::working_dir`] the fixture sets `ForceCommand` to a small `/bin/sh` wrapper
//!   that `cd`s there and runs what sshd would have run: `$SHELL -c "$SSH_ORIGINAL_COMMAND"`
//!   (with `SSH_ORIGINAL_COMMAND` unset again, so commands see the environment they would see
//!   without the wrapper), or `$SHELL -l` when the client asked for a shell. Without
//!   `working_dir` there is no `ForceCommand`.
//! - **ForceCommand and subsystems.** OpenSSH runs the forced command for subsystem requests
//!   too, with `SSH_ORIGINAL_COMMAND` set to the subsystem's command line from `sshd_config`
//!   (e.g. `/usr/lib/openssh/sftp-server`). The wrapper runs that line like any other, so the
//!   `sftp-server` binary starts in the working directory and relative SFTP paths (and `scp`'s,
//!   which uses SFTP by default since OpenSSH 9.0) resolve there. `internal-sftp` lives inside
//!   sshd: under a `ForceCommand` that is not `internal-sftp` itself, the wrapper would receive
//!   `SSH_ORIGINAL_COMMAND=internal-sftp …`, which no shell can run, and the client sees
//!   "Connection closed". So [`Sftp::Internal`] together with a working directory is refused
//!   when the fixture starts; without one, `internal-sftp` works.
//! - **Root and other users.** The sessions log in as the user running the tests (`id -un`).
//!   As root (CI), sshd needs its privilege separation directory `/run/sshd` (created here,
//!   mode 0755) and the `sshd` user (created by the openssh-server package), and with
//!   `UsePAM no` it refuses accounts whose `/etc/shadow` password starts with `!` (checked
//!   here, with a clear error). As another user, sshd does not chroot its pre-authentication
//!   child, needs neither, cannot read `/etc/shadow`, and can only log that same user in; its
//!   PTY sessions need `/dev/pts` mounted with `gid=5` (the `tty` group, as on ordinary
//!   hosts): where it is not (some containers), sshd cannot give the terminal to that group and
//!   ends the session (`chown(/dev/pts/N, uid, 5) failed` in [`Sshd::log`]).
//!   Either way sshd must be started by absolute path (it re-executes itself per connection).
//! - **Processes.** sshd forks a process per connection that calls `setsid()`, and so do the
//!   session processes under it: killing sshd (or its process group) leaves sessions running.
//!   A command without a terminal also outlives its session when the client goes away (no
//!   `SIGHUP`): it is reparented to init. Dropping [`Sshd`] therefore stops the listener, all
//!   its descendants, and every process whose environment holds the marker sshd sets in each
//!   session (`SetEnv`, [`Sshd::session_marker`]) with `SIGSTOP` (so none can fork unseen),
//!   then kills them all with `SIGKILL`. Only a process that both left the tree and cleared
//!   its environment escapes.
//! - **Passwords.** The clients read passwords through `SSH_ASKPASS` with
//!   `SSH_ASKPASS_REQUIRE=force` (OpenSSH 8.4+), from an environment variable of the client
//!   process, so no `sshpass` is needed, nothing prompts on a terminal, and the password is in no
//!   command line. OpenSSH cuts an answer at the first newline and after
//!   [`MAX_PASSWORD_BYTES`] bytes.
//! - **`sftp -b`** turns `BatchMode` on, which disables password authentication; OpenSSH keeps
//!   the first value of an option, so [`Client::sftp_batch`] puts `-o BatchMode=no` before `-b`.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::poll::POLL_INTERVAL;

/// The address [`Sshd`] listens on and [`Client`] connects to.
pub const HOST: &str = "127.0.0.1";
/// How long [`Sshd`] waits for sshd to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest password or keyboard-interactive answer the OpenSSH client sends: it reads
/// answers into a 1 024-byte buffer and silently drops the rest.
pub const MAX_PASSWORD_BYTES: usize = 1023;
/// The `ConnectTimeout` a [`Client`] uses unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variable the [`Client`]'s askpass script answers from.
pub const PASSWORD_ENV: &str = "SOD_TESTKIT_SSH_PASSWORD";

/// Where Debian and other distributions install the `sftp-server` binary.
const SFTP_SERVER_PATHS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
];
/// Where sshd lives when `sbin` is not on `PATH` (usual for users other than root).
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];
/// The environment variable that marks the processes of an [`Sshd`]'s sessions.
const MARKER_ENV: &str = "SOD_TESTKIT_SSHD";
/// sshd's privilege separation directory on Debian (`_PATH_PRIVSEP_CHROOT_DIR`).
const PRIVSEP_DIR: &str = "/run/sshd";
/// How many times to try another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How long stopping sshd and its sessions may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the helper commands of the fixture itself (ssh-keygen, tmux, kill) may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// How many log lines to put in error messages.
const LOG_TAIL_LINES: usize = 60;

/// The Debian package that provides each program the fixtures run.
const PACKAGES: &[(&str, &str)] = &[
    ("sshd", "openssh-server"),
    ("sftp-server", "openssh-sftp-server"),
    ("ssh", "openssh-client"),
    ("scp", "openssh-client"),
    ("sftp", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("rsync", "rsync"),
    ("tmux", "tmux"),
];

// ---------------------------------------------------------------------------------------------
// Finding the programs
// ---------------------------------------------------------------------------------------------

/// Checks that the named programs can be run (`sshd` and `sftp-server` are also looked for where
/// Debian installs them, off `PATH`), and names the Debian packages of those that cannot.
///
/// ```
/// sod_testkit::ssh::check_programs(&["ssh", "scp", "sftp", "rsync", "tmux"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `NotFound`, e.g. "missing programs: rsync, tmux; install them with `apt-get install -y
/// --no-install-recommends rsync tmux`".
pub fn check_programs(programs: &[&str]) -> io::Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| find_program(program).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(not_found(missing_message(&missing)))
    }
}

fn missing_message(missing: &[&str]) -> String {
    let mut packages: Vec<&str> = missing.iter().map(|p| package_of(p).unwrap_or(p)).collect();
    packages.sort_unstable();
    packages.dedup();
    format!(
        "missing programs: {}; install them with `apt-get install -y --no-install-recommends {}`",
        missing.join(", "),
        packages.join(" ")
    )
}

fn package_of(program: &str) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    PACKAGES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, package)| *package)
}

/// The absolute path of `program`: `sftp-server` from the usual places, `sshd` from `PATH` or the
/// `sbin` directories, anything else from `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    if program == "sftp-server" {
        return SFTP_SERVER_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|path| is_executable(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = SBIN_DIRS.iter().map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_absolute() && is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The path of the `sftp-server` binary (openssh-sftp-server), from the usual places.
///
/// # Errors
/// `NotFound` naming the places looked at and the Debian package.
pub fn find_sftp_server() -> io::Result<PathBuf> {
    find_program("sftp-server").ok_or_else(|| {
        not_found(format!(
            "no sftp-server binary in {}; {}",
            SFTP_SERVER_PATHS.join(", "),
            missing_message(&["sftp-server"])
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Running commands with a deadline
// ---------------------------------------------------------------------------------------------

/// Runs `command` to completion with its stdout and stderr captured and stdin closed; kills it
/// (with its whole process group: it runs in a group of its own, so `rsync`'s `ssh` goes too)
/// if it has not finished within `timeout`. A non-zero exit status is not an error here: look at
/// `Output::status`, or use [`run_ok`].
///
/// ```no_run
/// use std::time::Duration;
/// let mut ssh = sod_testkit::ssh::Client::new(2222, "agent").password("token").ssh("id");
/// let output = sod_testkit::ssh::run(&mut ssh, Duration::from_secs(30))?;
/// assert!(!output.status.success()); // for example: refused by the gateway
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The program cannot be started (the message names its Debian package), or `TimedOut` with
/// what it printed until then.
pub fn run(command: &mut Command, timeout: Duration) -> io::Result<Output> {
    run_inner(command, None, timeout)
}

/// Like [`run`], feeding `input` on stdin (then closing it).
///
/// # Errors
/// As [`run`].
pub fn run_with_input(
    command: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> io::Result<Output> {
    run_inner(command, Some(input), timeout)
}

/// Like [`run`], but a non-zero exit status is an error too (with the command's stderr); returns
/// stdout as text.
///
/// # Errors
/// As [`run`], or the command failed.
pub fn run_ok(command: &mut Command, timeout: Duration) -> io::Result<String> {
    let output = run(command, timeout)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let mut message = format!("`{}` failed ({})", describe(command), output.status);
        append_output(&mut message, &output.stdout, &output.stderr);
        Err(io::Error::other(message))
    }
}

fn run_inner(command: &mut Command, input: Option<&[u8]>, timeout: Duration) -> io::Result<Output> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|e| spawn_error(command, &e))?;
    let group = child.id();
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // A thread, so that a command that does not read its input cannot block us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let (sender, receiver) = mpsc::channel();
    let mut readers = 0;
    if let Some(stdout) = child.stdout.take() {
        spawn_reader(stdout, 0, sender.clone());
        readers += 1;
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_reader(stderr, 1, sender.clone());
        readers += 1;
    }
    drop(sender);

    let deadline = Instant::now() + timeout;
    let status = poll(deadline, || child.try_wait().ok().flatten());
    let mut streams = [Vec::new(), Vec::new()];
    let mut collect = |until: Instant, streams: &mut [Vec<u8>; 2]| {
        while readers > 0 {
            let left = until.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok((index, bytes)) => {
                    streams[index] = bytes;
                    readers -= 1;
                }
                Err(_) => return false,
            }
        }
        true
    };
    match status {
        Some(status) => {
            // Something the command started may still hold its pipes: wait for them until the
            // deadline, then kill its group.
            if !collect(deadline.max(Instant::now() + POLL_INTERVAL), &mut streams) {
                kill_group(group);
                collect(Instant::now() + Duration::from_secs(2), &mut streams);
            }
            let [stdout, stderr] = streams;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        }
        None => {
            kill_group(group);
            let _ = child.kill();
            let _ = child.wait();
            collect(Instant::now() + Duration::from_secs(2), &mut streams);
            let mut message = format!(
                "`{}` did not finish within {timeout:?} and was killed",
                describe(command)
            );
            append_output(&mut message, &streams[0], &streams[1]);
            Err(io::Error::new(io::ErrorKind::TimedOut, message))
        }
    }
}

fn spawn_reader(
    mut stream: impl io::Read + Send + 'static,
    index: usize,
    sender: mpsc::Sender<(usize, Vec<u8>)>,
) {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let _ = sender.send((index, bytes));
    });
}

/// Calls `f` every ~10 ms until it returns `Some` or the deadline passes (once more then).
fn poll<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return f();
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// `SIGKILL` to every process in group `group`.
fn kill_group(group: u32) {
    signal("KILL", &[format!("-{group}")]);
}

/// Sends `signal` to the given pids (or `-pgid`s) with kill(1); errors (a process already
/// gone) are ignored.
fn signal(signal: &str, targets: &[String]) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn spawn_error(command: &Command, error: &io::Error) -> io::Error {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut message = format!("cannot run `{}`: {error}", describe(command));
    if error.kind() == io::ErrorKind::NotFound {
        let _ = write!(message, "; {}", missing_message(&[program.as_str()]));
    }
    io::Error::new(error.kind(), message)
}

/// The command line, for messages (environment variables, which may hold passwords, left out).
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(sh_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn append_output(message: &mut String, stdout: &[u8], stderr: &[u8]) {
    for (name, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end();
        if !text.is_empty() {
            let _ = write!(message, "\n--- {name} ---\n{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// Which SFTP server an [`Sshd`] runs for the `sftp` subsystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sftp {
    /// The `sftp-server` binary from openssh-sftp-server ([`find_sftp_server`]).
    #[default]
    Server,
    /// This `sftp-server` binary.
    ServerAt(PathBuf),
    /// `internal-sftp`, inside sshd. Cannot be combined with [`SshdBuilder::working_dir`] (see
    /// the module docs).
    Internal,
    /// No `sftp` subsystem: `sftp` and `scp` in its default (SFTP) mode fail, `scp -O` works.
    Disabled,
}

/// Configures an [`Sshd`]; see [`Sshd::builder`].
#[derive(Debug, Clone, Default)]
pub struct SshdBuilder {
    working_dir: Option<PathBuf>,
    sftp: Sftp,
    config: Vec<String>,
    log_level: Option<String>,
    /// The port to try first (tests of the retry path); normally a free one is picked.
    first_port: Option<u16>,
}

impl SshdBuilder {
    /// Starts every session (commands, shells, `scp -O`, the SFTP server) in `dir` instead of the
    /// user's home, through a `ForceCommand` wrapper (see the module docs). `dir` must exist;
    /// it is made absolute and canonical.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// The SFTP server ([`Sftp::Server`] by default).
    pub fn sftp(mut self, sftp: Sftp) -> Self {
        self.sftp = sftp;
        self
    }

    /// Adds a line to `sshd_config`, before the fixture's own lines. sshd keeps the first value
    /// it reads for most keywords, so this overrides the fixture (e.g. `"MaxSessions 2"`).
    /// No `Match` blocks: they would swallow the fixture's lines.
    pub fn config(mut self, line: &str) -> Self {
        self.config.push(line.to_owned());
        self
    }

    /// sshd's `LogLevel` (`VERBOSE` by default; `DEBUG3` shows every channel request).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = Some(level.to_owned());
        self
    }

    /// Creates the keys and the configuration, starts sshd and waits until it accepts
    /// connections.
    ///
    /// # Errors
    /// A program is missing (naming its Debian package), [`Sftp::Internal`] with a working
    /// directory, the account cannot log in, or sshd did not start (with its log).
    pub fn start(self) -> io::Result<Sshd> {
        Sshd::start_with(self)
    }
}

/// The account sessions log in as: the user running the tests.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    home: PathBuf,
}

/// A running, throw-away OpenSSH server on `127.0.0.1:<free port>` that lets the current user
/// log in with a key pair made for it. Dropping it kills sshd and every session under it, and
/// removes its directory. See the module docs.
///
/// ```
/// use std::time::Duration;
/// use sod_testkit::ssh::{self, Sshd};
///
/// let sshd = Sshd::start()?;
/// // What a gateway needs to reach it as its upstream:
/// let _ = (sshd.addr(), sshd.user(), sshd.client_private_key_openssh(), sshd.known_hosts_line());
/// let out = ssh::run_ok(&mut sshd.client().ssh("pwd"), Duration::from_secs(30))?;
/// assert_eq!(Some(out.trim()), sshd.home().to_str());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Sshd {
    child: Option<Child>,
    port: u16,
    account: Account,
    working_dir: PathBuf,
    host_public_key: String,
    client_public_key: String,
    client_private_key: String,
    client_key_path: PathBuf,
    authorized_keys: PathBuf,
    marker: String,
    config_file: PathBuf,
    log_file: PathBuf,
    // Last, so that it is removed after sshd has been stopped.
    dir: Option<TempDir>,
}

impl fmt::Debug for Sshd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sshd")
            .field("port", &self.port)
            .field("user", &self.account.name)
            .field("working_dir", &self.working_dir)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

impl Sshd {
    /// A builder for a server with non-default options.
    pub fn builder() -> SshdBuilder {
        SshdBuilder::default()
    }

    /// Starts a server with the defaults: sessions start in the home directory, the
    /// `sftp-server` binary serves SFTP.
    ///
    /// # Errors
    /// As [`SshdBuilder::start`].
    pub fn start() -> io::Result<Sshd> {
        SshdBuilder::default().start()
    }

    /// Checks that what the server needs is installed: `sshd` (openssh-server), `ssh-keygen`
    /// (openssh-client) and `sftp-server` (openssh-sftp-server).
    ///
    /// # Errors
    /// `NotFound` naming the missing programs and the `apt-get install` command.
    pub fn check_installed() -> io::Result<()> {
        check_programs(&["sshd", "ssh-keygen", "sftp-server"])
    }

    fn start_with(builder: SshdBuilder) -> io::Result<Sshd> {
        let mut needed = vec!["sshd", "ssh-keygen"];
        if builder.sftp == Sftp::Server {
            needed.push("sftp-server");
        }
        check_programs(&needed)?;
        let sshd_program =
            find_program("sshd").ok_or_else(|| not_found(missing_message(&["sshd"])))?;
        let keygen = find_program("ssh-keygen")
            .ok_or_else(|| not_found(missing_message(&["ssh-keygen"])))?;
        let sftp_line = match &builder.sftp {
            Sftp::Server => Some(conf_quote(&find_sftp_server()?)),
            Sftp::ServerAt(path) => Some(conf_quote(path)),
            Sftp::Internal if builder.working_dir.is_some() => {
                return Err(invalid(
                    "Sftp::Internal cannot be combined with a working directory: the working \
                     directory needs a ForceCommand wrapper, OpenSSH runs the forced command for \
                     subsystem requests too, and no wrapper can run internal-sftp (it lives \
                     inside sshd); use Sftp::Server"
                        .to_owned(),
                ));
            }
            Sftp::Internal => Some("internal-sftp".to_owned()),
            Sftp::Disabled => None,
        };
        let account = current_account()?;
        let root = account.uid == 0;
        if root {
            check_not_locked(&account.name)?;
            make_privsep_dir()?;
        }
        let working_dir = match &builder.working_dir {
            Some(dir) => std::fs::canonicalize(dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("working directory {}: {e}", dir.display()),
                )
            })?,
            None => account.home.clone(),
        };

        let dir = tempfile::Builder::new().prefix("sod-sshd-").tempdir()?;
        let path = dir.path().to_path_buf();
        let host_key = path.join("host_ed25519");
        let client_key_path = path.join("client_ed25519");
        keygen_ed25519(&keygen, &host_key, "sod-testkit sshd host key")?;
        keygen_ed25519(&keygen, &client_key_path, "sod-testkit client key")?;
        let host_public_key = public_key_of(&host_key)?;
        let client_public_key = public_key_of(&client_key_path)?;
        let client_private_key = std::fs::read_to_string(&client_key_path)?;
        let authorized_keys = path.join("authorized_keys");
        std::fs::write(&authorized_keys, format!("{client_public_key}\n"))?;

        let forced = match &builder.working_dir {
            Some(_) => {
                let wrapper = path.join("in-working-dir");
                std::fs::write(&wrapper, wrapper_script(&working_dir))?;
                std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
                Some(wrapper)
            }
            None => None,
        };

        let mut sshd = Sshd {
            child: None,
            port: 0,
            account,
            working_dir,
            host_public_key,
            client_public_key,
            client_private_key,
            client_key_path,
            authorized_keys,
            marker: format!(
                "{MARKER_ENV}={}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            config_file: path.join("sshd_config"),
            log_file: path.join("sshd.log"),
            dir: Some(dir),
        };
        let settings = Settings {
            builder: &builder,
            host_key: &host_key,
            pid_file: &path.join("sshd.pid"),
            sftp_line: sftp_line.as_deref(),
            forced: forced.as_deref(),
        };
        sshd.start_server(&sshd_program, &settings)?;
        Ok(sshd)
    }

    fn write_config(&self, settings: &Settings<'_>) -> io::Result<()> {
        let mut conf = String::from("# Written by sod-testkit.\n");
        for line in &settings.builder.config {
            let _ = writeln!(conf, "{line}");
        }
        let level = settings.builder.log_level.as_deref().unwrap_or("VERBOSE");
        let _ = write!(
            conf,
            "ListenAddress {HOST}\n\
             Port {port}\n\
             HostKey {host_key}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             PidFile {pid_file}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PermitUserRC no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             LogLevel {level}\n\
             AcceptEnv LANG LC_* TERM\n\
             PermitTTY yes\n\
             AllowTcpForwarding yes\n\
             X11Forwarding no\n\
             MaxSessions 64\n\
             MaxStartups 100:30:200\n\
             ClientAliveInterval 0\n\
             SetEnv {marker}\n",
            port = self.port,
            host_key = conf_quote(settings.host_key),
            authorized_keys = conf_quote(&self.authorized_keys),
            pid_file = conf_quote(settings.pid_file),
            marker = option_quote(Path::new(&self.marker)),
        );
        if let Some(sftp) = settings.sftp_line {
            let _ = writeln!(conf, "Subsystem sftp {sftp}");
        }
        if let Some(wrapper) = settings.forced {
            // The rest of the line is run by the user's shell.
            let _ = writeln!(conf, "ForceCommand {}", sh_quote(wrapper.as_os_str()));
        }
        std::fs::write(&self.config_file, conf)
    }

    /// Starts sshd, trying another port if the chosen one was taken meanwhile.
    fn start_server(&mut self, program: &Path, settings: &Settings<'_>) -> io::Result<()> {
        let mut first_port = settings.builder.first_port;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = match first_port.take() {
                Some(port) => port,
                None => free_port()?,
            };
            self.write_config(settings)?;
            let log_before = std::fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_file)?;
            let child = Command::new(program)
                .args(["-D", "-e", "-f"])
                .arg(&self.config_file)
                .current_dir(self.dir())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| spawn_error(&Command::new(program), &e))?;
            self.child = Some(child);
            match self.wait_until_listening() {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.stop();
                    let log = std::fs::read(&self.log_file).unwrap_or_default();
                    let new_log =
                        String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or(&[]));
                    if !new_log.contains("Address already in use") {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("sshd did not start")))
    }

    /// Waits until our sshd logs that it listens on our port and answers with an SSH banner.
    fn wait_until_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let listening = format!("Server listening on {HOST} port {}.", self.port);
        let (log_file, addr) = (self.log_file.clone(), self.addr());
        let mut exited = None;
        let child = &mut self.child;
        let ready = poll(deadline, || {
            if let Some(child) = child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return Some(false);
            }
            let log = std::fs::read(&log_file).unwrap_or_default();
            let listens = String::from_utf8_lossy(&log).contains(&listening);
            (listens && banner(addr).is_ok()).then_some(true)
        });
        match (ready, exited) {
            (Some(true), _) => Ok(()),
            (_, Some(status)) => Err(self.with_log(format!(
                "sshd exited ({status}) before accepting connections on port {}",
                self.port
            ))),
            _ => Err(self.with_log(format!(
                "sshd did not accept connections on port {} within {} s",
                self.port,
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Stops sshd and every process under it (see the module docs). Never panics.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let root = child.id();
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut frozen = BTreeSet::new();
        // Freeze the tree from the top, until no new process appears: a stopped process cannot
        // fork, and none of them is reparented away from us while we look. Session processes
        // already orphaned (their connection closed) are found by the marker in their
        // environment.
        loop {
            let new: Vec<u32> = tree(Some(root), &self.marker)
                .into_iter()
                .filter(|pid| !frozen.contains(pid))
                .collect();
            if new.is_empty() {
                break;
            }
            signal("STOP", &pids(&new));
            frozen.extend(new.iter().copied());
            let all_stopped = poll(deadline, || {
                new.iter()
                    .all(|pid| !matches!(process_state(*pid), Some('R' | 'S' | 'D')))
                    .then_some(())
            });
            if all_stopped.is_none() {
                break;
            }
        }
        let frozen: Vec<u32> = frozen.into_iter().collect();
        signal("KILL", &pids(&frozen));
        let _ = child.kill();
        let _ = child.wait();
        // Orphans are reaped by init (or stay zombies, which hold nothing).
        poll(deadline, || {
            frozen.iter().all(|pid| !process_alive(*pid)).then_some(())
        });
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The user sessions log in as: the one running the tests.
    pub fn user(&self) -> &str {
        &self.account.name
    }

    /// The user's home directory from passwd.
    pub fn home(&self) -> &Path {
        &self.account.home
    }

    /// The directory sessions start in: the canonical [`SshdBuilder::working_dir`], or
    /// [`Sshd::home`] when none was set.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// The host's public key, `ssh-ed25519 AAAA…` (no comment).
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// The line OpenSSH writes to `known_hosts` for this server:
    /// `[127.0.0.1]:<port> ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        known_hosts_line(HOST, self.port, &self.host_public_key)
    }

    /// The private key of the client key pair that may log in (OpenSSH format, mode 0600, no
    /// passphrase).
    pub fn client_key_path(&self) -> &Path {
        &self.client_key_path
    }

    /// The text of [`Sshd::client_key_path`]: `-----BEGIN OPENSSH PRIVATE KEY-----…`.
    pub fn client_private_key_openssh(&self) -> &str {
        &self.client_private_key
    }

    /// The client's public key, `ssh-ed25519 AAAA…` (no comment), as in `authorized_keys`.
    pub fn client_public_key(&self) -> &str {
        &self.client_public_key
    }

    /// Lets another key log in: appends `public_key` (an `authorized_keys` line) to the
    /// server's `authorized_keys`, which sshd reads at every login.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn authorize(&self, public_key: &str) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)?;
        writeln!(file, "{}", public_key.trim_end())
    }

    /// The sshd log so far (sshd's `-e` output, at [`SshdBuilder::log_level`]).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_file).unwrap_or_default()).into_owned()
    }

    /// The `sshd_config` in use.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The pid of the listening sshd (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The listening sshd and every live process under it (connections, sessions, the commands
    /// they run), parents before children, then the processes of sessions whose connection has
    /// closed but which still run (found by [`Sshd::session_marker`] in their environment).
    pub fn processes(&self) -> Vec<u32> {
        tree(self.pid(), &self.marker)
    }

    /// `SOD_TESTKIT_SSHD=<name of the fixture's directory>`: sshd sets it (`SetEnv`) in every
    /// session, so that the fixture finds and stops the processes a session leaves behind.
    /// Commands see it in their environment.
    pub fn session_marker(&self) -> &str {
        &self.marker
    }

    /// A [`Client`] for this server that logs in with [`Sshd::client_key_path`] and trusts
    /// exactly [`Sshd::known_hosts_line`].
    pub fn client(&self) -> Client {
        Client::new(self.port, self.user())
            .identity(&self.client_key_path)
            .known_hosts(&self.known_hosts_line())
    }

    fn with_log(&self, message: String) -> io::Error {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        io::Error::other(format!(
            "{message}; its log ({}):\n{tail}",
            self.log_file.display()
        ))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `sshd_config` is made of, besides the port.
struct Settings<'a> {
    builder: &'a SshdBuilder,
    host_key: &'a Path,
    pid_file: &'a Path,
    sftp_line: Option<&'a str>,
    forced: Option<&'a Path>,
}

/// The ForceCommand wrapper: start in `dir`, then do what sshd would have done.
fn wrapper_script(dir: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by sod-testkit: sshd's ForceCommand, so that sessions start in this directory\n\
         # (sshd itself always starts them in the user's home), running what sshd would have run.\n\
         cd {dir} || exit 1\n\
         if [ -n \"${{SSH_ORIGINAL_COMMAND+set}}\" ]; then\n\
         \tsod_command=$SSH_ORIGINAL_COMMAND\n\
         \tunset SSH_ORIGINAL_COMMAND\n\
         \texec \"$SHELL\" -c \"$sod_command\"\n\
         fi\n\
         exec \"$SHELL\" -l\n",
        dir = sh_quote(dir.as_os_str())
    )
}

/// `[host]:port key` for non-default ports, `host key` for 22, as OpenSSH writes it.
fn known_hosts_line(host: &str, port: u16, key: &str) -> String {
    if port == 22 {
        format!("{host} {key}")
    } else {
        format!("[{host}]:{port} {key}")
    }
}

/// Reads the SSH identification line from `addr`.
fn banner(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 255 && !line.ends_with(b"\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    if line.starts_with("SSH-2.0-") {
        // Say who we are, so that sshd logs a clean disconnect rather than a protocol error.
        let _ = stream.write_all(b"SSH-2.0-sod-testkit-probe\r\n");
        Ok(line)
    } else {
        Err(io::Error::other(format!("not an SSH banner: {line:?}")))
    }
}

fn keygen_ed25519(keygen: &Path, path: &Path, comment: &str) -> io::Result<()> {
    let mut command = Command::new(keygen);
    command
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    run_ok(&mut command, HELPER_TIMEOUT)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// `type base64` from `<key>.pub`, without the comment.
fn public_key_of(private_key: &Path) -> io::Result<String> {
    let mut path = private_key.as_os_str().to_owned();
    path.push(".pub");
    let text = std::fs::read_to_string(&path)?;
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(key)) => Ok(format!("{kind} {key}")),
        _ => Err(io::Error::other(format!(
            "{} is not a public key: {text:?}",
            Path::new(&path).display()
        ))),
    }
}

/// The user running the tests, from `getent passwd <uid>` (so NSS users work), else
/// `/etc/passwd`.
fn current_account() -> io::Result<Account> {
    let uid = effective_uid()?;
    let entry = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .or_else(|| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            passwd
                .lines()
                .find(|line| line.split(':').nth(2) == Some(&uid.to_string()))
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            not_found(format!(
                "uid {uid} has no passwd entry: sshd cannot log it in"
            ))
        })?;
    let fields: Vec<&str> = entry.trim_end().split(':').collect();
    match fields.as_slice() {
        [name, _, _, _, _, home, ..] => Ok(Account {
            name: (*name).to_owned(),
            uid,
            home: PathBuf::from(home),
        }),
        _ => Err(io::Error::other(format!(
            "cannot read the passwd entry of uid {uid}: {entry:?}"
        ))),
    }
}

fn effective_uid() -> io::Result<u32> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|line| line.starts_with("Uid:"))
        && let Some(uid) = line.split_whitespace().nth(2).and_then(|u| u.parse().ok())
    {
        // Uid: real effective saved filesystem
        return Ok(uid);
    }
    let out = Command::new("id").arg("-u").stdin(Stdio::null()).output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| io::Error::other("cannot tell the current uid"))
}

/// sshd with `UsePAM no` refuses accounts whose shadow password starts with `!`.
fn check_not_locked(user: &str) -> io::Result<()> {
    let Ok(shadow) = std::fs::read_to_string("/etc/shadow") else {
        return Ok(());
    };
    let locked = shadow.lines().any(|line| {
        let mut fields = line.split(':');
        fields.next() == Some(user) && fields.next().is_some_and(|pw| pw.starts_with('!'))
    });
    if locked {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the account {user} is locked (its /etc/shadow password starts with `!`), and \
                 sshd without PAM refuses locked accounts even for public keys; unlock it without \
                 giving it a password with `usermod -p '*' {user}`"
            ),
        ))
    } else {
        Ok(())
    }
}

/// sshd as root chroots its pre-authentication child into `/run/sshd`, which must exist, be
/// owned by root and not writable by others.
fn make_privsep_dir() -> io::Result<()> {
    let dir = Path::new(PRIVSEP_DIR);
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("sshd's privilege separation directory {PRIVSEP_DIR}: {e}"),
        )
    };
    std::fs::create_dir_all(dir).map_err(context)?;
    let mode = std::fs::metadata(dir)
        .map_err(context)?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(context)?;
    }
    Ok(())
}

/// Binds 127.0.0.1:0 and releases the port.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// `(pid, parent pid, state)` of every process, from `/proc`.
fn process_table() -> Vec<(u32, u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (state, ppid) = parse_stat(&stat)?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// The state and parent pid from a `/proc/<pid>/stat` line; they follow the parenthesised
/// command name, which may itself contain `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(state, _)| state)
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z' && state != 'X')
}

/// `root` and its live descendants, parents before children.
fn descendants(root: u32) -> Vec<u32> {
    let table = process_table();
    let live = |state: char| state != 'Z' && state != 'X';
    if !table
        .iter()
        .any(|(pid, _, state)| *pid == root && live(*state))
    {
        return Vec::new();
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        next += 1;
        let children: Vec<u32> = table
            .iter()
            .filter(|(pid, ppid, state)| *ppid == parent && live(*state) && !found.contains(pid))
            .map(|(pid, _, _)| *pid)
            .collect();
        found.extend(children);
    }
    found
}

/// `root` and its live descendants (see [`descendants`]), then the other live processes whose
/// environment holds `marker` (`KEY=value`).
fn tree(root: Option<u32>, marker: &str) -> Vec<u32> {
    let mut found = root.map(descendants).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if found.contains(&pid) || !process_alive(pid) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|pair| pair == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

fn pids(pids: &[u32]) -> Vec<String> {
    pids.iter().map(u32::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------------------------

/// Which protocol `scp` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScpMode {
    /// SFTP, the default since OpenSSH 9.0: the `sftp` subsystem.
    Sftp,
    /// The legacy SCP protocol (`scp -O`): an `exec` of `scp -t` / `scp -f`.
    Legacy,
}

static BATCH_FILES: AtomicUsize = AtomicUsize::new(0);

/// Builds OpenSSH client commands (`ssh`, `scp`, `sftp`, `rsync -e ssh`) for
/// `user@127.0.0.1:<port>` that never read a configuration file, never prompt on a terminal and
/// trust exactly the host keys they are given.
///
/// Every command gets `-F /dev/null -o BatchMode=no -o StrictHostKeyChecking=yes -o
/// UserKnownHostsFile=<the client's file> -o GlobalKnownHostsFile=/dev/null -o
/// UpdateHostKeys=no -o ConnectTimeout=<s> -o LogLevel=ERROR -o Port=<port> -o
/// NumberOfPasswordPrompts=<1 with a password, else 0>`, then either password authentication
/// (`-o PreferredAuthentications=password,keyboard-interactive -o PubkeyAuthentication=no`;
/// the default) or, with [`Client::identity`], public-key authentication with that key only
/// (`-o PreferredAuthentications=publickey -o IdentitiesOnly=yes -o IdentityAgent=none -o
/// IdentityFile=<key>`). Passwords (and key passphrases) are answered by an askpass script
/// (`SSH_ASKPASS` with `SSH_ASKPASS_REQUIRE=force`, chosen over `sshpass`: no extra package,
/// no terminal, the password in no command line) from [`PASSWORD_ENV`] in the command's
/// environment, once: a wrong one fails instead of being asked again. Every prompt of a
/// keyboard-interactive round gets the same answer.
///
/// The client's files (known hosts, askpass script, batch files) live in a temporary directory
/// removed when the `Client` is dropped: keep it alive while its commands run.
///
/// ```no_run
/// use std::time::Duration;
/// use sod_testkit::ssh::{self, Client, ScpMode};
///
/// # let (port, token, known_hosts_line) = (2222, "sodcap1…", "[127.0.0.1]:2222 ssh-ed25519 AAAA…");
/// let client = Client::new(port, "agent").password(token).known_hosts(known_hosts_line);
/// let out = ssh::run_ok(&mut client.ssh("uname -a"), Duration::from_secs(30))?;
/// ssh::run_ok(
///     &mut client.scp(ScpMode::Sftp, ["report.txt".to_owned(), client.remote("/tmp/")]),
///     Duration::from_secs(30),
/// )?;
/// let shell = client.clone_with_args(["-o", "SendEnv=LANG"]).pty("", 100, 30)?;
/// shell.send_line("stty size")?;
/// shell.wait_for("30 100", Duration::from_secs(10))?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
/// When it cannot create or write its own temporary files (a full or read-only `/tmp`).
pub struct Client {
    port: u16,
    user: String,
    password: Option<String>,
    identity: Option<PathBuf>,
    known_hosts: Vec<String>,
    known_hosts_file: Option<PathBuf>,
    ssh_args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    connect_timeout: Duration,
    dir: Arc<TempDir>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("identity", &self.identity)
            .field("known_hosts", &self.known_hosts)
            .field("known_hosts_file", &self.known_hosts_file)
            .field("ssh_args", &self.ssh_args)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `user@127.0.0.1:port`, with password authentication and no password (so
    /// any prompt fails), and no trusted host keys yet.
    pub fn new(port: u16, user: &str) -> Client {
        let dir = tempfile::Builder::new()
            .prefix("sod-ssh-client-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the ssh client's temporary directory: {e}"));
        let askpass = dir.path().join("askpass");
        // The prompt is "$1"; every prompt gets the same answer.
        let script = format!(
            "#!/bin/sh\n# Written by sod-testkit.\n[ -n \"${{{PASSWORD_ENV}+set}}\" ] || exit 1\n\
             printf '%s\\n' \"${PASSWORD_ENV}\"\n"
        );
        write_file(&askpass, &script, 0o700);
        Client {
            port,
            user: user.to_owned(),
            password: None,
            identity: None,
            known_hosts: Vec::new(),
            known_hosts_file: None,
            ssh_args: Vec::new(),
            envs: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            dir: Arc::new(dir),
        }
    }

    /// The password (or keyboard-interactive answer, or with [`Client::identity`] the key's
    /// passphrase). OpenSSH sends at most [`MAX_PASSWORD_BYTES`] bytes of it, up to its first
    /// newline.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Logs in with this private key, and only with it (public-key authentication instead of
    /// passwords).
    pub fn identity(mut self, private_key: impl Into<PathBuf>) -> Self {
        self.identity = Some(private_key.into());
        self
    }

    /// Trusts a host key: `line` is a `known_hosts` line such as [`Sshd::known_hosts_line`].
    /// May be called several times.
    pub fn known_hosts(mut self, line: &str) -> Self {
        self.known_hosts.push(line.trim_end().to_owned());
        self
    }

    /// Uses this `known_hosts` file (as is, read-only) instead of the lines given with
    /// [`Client::known_hosts`].
    pub fn known_hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts_file = Some(path.into());
        self
    }

    /// Adds an argument for `ssh` itself (`"-tt"`, `"-o"`, `"SendEnv=LC_X"`, `"-N"`, …). These
    /// come before the client's options, and ssh keeps the first value of an option, so an
    /// `-o` given here overrides the client's (e.g. `"PreferredAuthentications=publickey"`).
    /// Not used by `scp`, `sftp` and `rsync`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.ssh_args.push(arg.as_ref().to_owned());
        self
    }

    /// A copy of this client with more `ssh` arguments (see [`Client::arg`]), sharing its files.
    pub fn clone_with_args(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Client {
        let mut ssh_args = self.ssh_args.clone();
        ssh_args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Client {
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            known_hosts_file: self.known_hosts_file.clone(),
            ssh_args,
            envs: self.envs.clone(),
            connect_timeout: self.connect_timeout,
            dir: Arc::clone(&self.dir),
        }
    }

    /// Sets an environment variable for the client programs (e.g. one sent with `SendEnv`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// `ConnectTimeout` (whole seconds, at least 1; [`DEFAULT_CONNECT_TIMEOUT`] by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `user@127.0.0.1`.
    pub fn destination(&self) -> String {
        format!("{}@{HOST}", self.user)
    }

    /// `user@127.0.0.1:path`, a remote path for `scp` and `rsync`.
    pub fn remote(&self, path: &str) -> String {
        format!("{}:{path}", self.destination())
    }

    /// The `known_hosts` file the commands use.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.known_hosts_file
            .clone()
            .unwrap_or_else(|| self.dir.path().join("known_hosts"))
    }

    /// The options every command gets (see the type's docs), for building other commands that
    /// take `ssh` options, such as `GIT_SSH_COMMAND`.
    pub fn options(&self) -> Vec<OsString> {
        let mut options: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        let mut option = |value: String| {
            options.push("-o".into());
            options.push(value.into());
        };
        option("BatchMode=no".to_owned());
        option("StrictHostKeyChecking=yes".to_owned());
        option(format!(
            "UserKnownHostsFile={}",
            option_quote(&self.known_hosts_path())
        ));
        option("GlobalKnownHostsFile=/dev/null".to_owned());
        option("UpdateHostKeys=no".to_owned());
        option(format!(
            "ConnectTimeout={}",
            self.connect_timeout.as_secs().max(1)
        ));
        option("LogLevel=ERROR".to_owned());
        option(format!("Port={}", self.port));
        let prompts = u8::from(self.password.is_some());
        option(format!("NumberOfPasswordPrompts={prompts}"));
        match &self.identity {
            Some(key) => {
                option("PreferredAuthentications=publickey".to_owned());
                option("PubkeyAuthentication=yes".to_owned());
                option("IdentitiesOnly=yes".to_owned());
                option("IdentityAgent=none".to_owned());
                option(format!("IdentityFile={}", option_quote(key)));
            }
            None => {
                option("PreferredAuthentications=password,keyboard-interactive".to_owned());
                option("PubkeyAuthentication=no".to_owned());
                option("PasswordAuthentication=yes".to_owned());
                option("KbdInteractiveAuthentication=yes".to_owned());
            }
        }
        options
    }

    /// A command for `program` with the client's environment (askpass, password, [`Client::env`]),
    /// after writing the known hosts file.
    fn command(&self, program: &str) -> Command {
        if self.known_hosts_file.is_none() {
            let mut text = self.known_hosts.join("\n");
            text.push('\n');
            write_file(&self.known_hosts_path(), &text, 0o600);
        }
        let mut command = Command::new(program);
        command
            .env("SSH_ASKPASS", self.dir.path().join("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env_remove("SSH_AUTH_SOCK");
        match &self.password {
            Some(password) => command.env(PASSWORD_ENV, password),
            None => command.env_remove(PASSWORD_ENV),
        };
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// `ssh <args> <options> user@127.0.0.1 [remote_command]`; an empty `remote_command` asks
    /// for a shell. Run it with [`run`] (add `.arg("-tt")` to the client, or use
    /// [`Client::pty`], for a terminal).
    pub fn ssh(&self, remote_command: &str) -> Command {
        self.ssh_with(&[], remote_command)
    }

    /// `ssh OPTIONS… DESTINATION` with `extra` options before the client's own and no remote
    /// command: for `-N -f` (a background master), `-O exit` and the like.
    pub fn ssh_command_with_options(&self, extra: &[&str]) -> Command {
        self.ssh_with(extra, "")
    }

    fn ssh_with(&self, extra: &[&str], remote_command: &str) -> Command {
        let mut command = self.command("ssh");
        // Ours first: ssh keeps the first value of an option, so `-o` given there wins.
        command
            .args(&self.ssh_args)
            .args(extra)
            .args(self.options())
            .arg(self.destination());
        if !remote_command.is_empty() {
            command.arg(remote_command);
        }
        command
    }

    /// `scp [-O] <options> <args>`: `args` are scp's sources and target (and flags such as
    /// `-r`); name remote ones with [`Client::remote`].
    pub fn scp(&self, mode: ScpMode, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
        let mut command = self.command("scp");
        if mode == ScpMode::Legacy {
            command.arg("-O");
        }
        command.args(self.options()).args(args);
        command
    }

    /// `sftp <options> -b <file> user@127.0.0.1` with `batch` (sftp commands, one a line) in
    /// the file. sftp stops at the first failing command unless it starts with `-`; its stdout
    /// echoes each command (`sftp> pwd`) before its output.
    pub fn sftp_batch(&self, batch: &str) -> Command {
        let number = BATCH_FILES.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.path().join(format!("sftp-batch-{number}"));
        write_file(&file, batch, 0o600);
        let mut command = self.command("sftp");
        // `-b` turns BatchMode on, which disables passwords; the first value wins.
        command
            .args(self.options())
            .arg("-b")
            .arg(&file)
            .arg(self.destination());
        command
    }

    /// `rsync -e <ssh with the options> <args>`: `args` are rsync's flags, sources and target;
    /// name remote ones with [`Client::remote`]. The remote side needs `rsync` too.
    pub fn rsync(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
        // rsync splits -e on spaces: a script holds the options, whatever their characters.
        let script = self.dir.path().join("ssh-for-rsync");
        let line = std::iter::once(OsString::from("ssh"))
            .chain(self.options())
            .map(|arg| sh_quote(&arg))
            .collect::<Vec<_>>()
            .join(" ");
        write_file(
            &script,
            &format!("#!/bin/sh\n# Written by sod-testkit.\nexec {line} \"$@\"\n"),
            0o700,
        );
        let mut command = self.command("rsync");
        command.arg("-e").arg(rsync_quote(&script)).args(args);
        command
    }

    /// Runs `ssh -tt … [remote_command]` (a shell when empty) in a detached tmux terminal of
    /// `cols` × `rows`; see [`Tmux`].
    ///
    /// # Errors
    /// As [`Tmux::start`].
    pub fn pty(&self, remote_command: &str, cols: u16, rows: u16) -> io::Result<Tmux> {
        let command = self.ssh_with(&["-tt"], remote_command);
        Tmux::start_keeping(&command, cols, rows, Some(Arc::clone(&self.dir)))
    }
}

/// Writes one of a client's own files; see [`Client`]'s panics.
fn write_file(path: &Path, contents: &str, mode: u32) {
    let result = std::fs::write(path, contents)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)));
    if let Err(e) = result {
        panic!("cannot write {}: {e}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// A terminal
// ---------------------------------------------------------------------------------------------

/// A command running in a detached tmux session of its own (own server socket, no status line,
/// `TERM=screen`), for tests of interactive programs: type with [`Tmux::send_keys`], read the
/// screen with [`Tmux::screen`], wait for text with [`Tmux::wait_for`], resize with
/// [`Tmux::resize`]. The pane stays after the command exits, so its last output and exit status
/// can still be read. Dropping it kills the tmux server and so the command.
///
/// ```
/// use std::time::Duration;
/// use sod_testkit::ssh::Sshd;
///
/// let sshd = Sshd::start()?;
/// let term = sshd.client().pty("", 100, 30)?; // ssh -tt, a login shell
/// term.send_line("stty size")?;
/// term.wait_for("30 100", Duration::from_secs(10))?;
/// term.resize(120, 40)?;
/// term.send_line("stty size; exit")?;
/// term.wait_for("40 120", Duration::from_secs(10))?;
/// assert_eq!(term.wait_exit(Duration::from_secs(10))?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Tmux {
    socket: PathBuf,
    /// Where the pane's shell writes the command's exit status (tmux's own
    /// `pane_dead_status` is sometimes never set).
    status: PathBuf,
    // Fields drop in order: the server goes (in Drop) before the files.
    _dir: TempDir,
    _keep: Option<Arc<TempDir>>,
}

impl fmt::Debug for Tmux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tmux")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// The name of the one tmux session (and target).
const TMUX_TARGET: &str = "sod";

impl Tmux {
    /// Starts `command` (its program, arguments, environment changes and directory) in a new
    /// `cols` × `rows` terminal.
    ///
    /// # Errors
    /// tmux is missing (naming the Debian package) or fails.
    pub fn start(command: &Command, cols: u16, rows: u16) -> io::Result<Tmux> {
        Tmux::start_keeping(command, cols, rows, None)
    }

    fn start_keeping(
        command: &Command,
        cols: u16,
        rows: u16,
        keep: Option<Arc<TempDir>>,
    ) -> io::Result<Tmux> {
        check_programs(&["tmux"])?;
        let dir = tempfile::Builder::new().prefix("sod-tmux-").tempdir()?;
        let socket = dir.path().join("tmux.sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g status off\nset -g history-limit 10000\n\
             set -g default-terminal screen\nset -g escape-time 0\n",
        )?;
        let status = dir.path().join("exit-status");
        let tmux = Tmux {
            socket,
            status,
            _dir: dir,
            _keep: keep,
        };
        let mut new_session = Command::new("tmux");
        new_session
            .arg("-S")
            .arg(&tmux.socket)
            .arg("-f")
            .arg(&conf)
            .args(["new-session", "-d", "-s", TMUX_TARGET, "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(format!(
                "{}; echo $? > {}",
                shell_line_with(command, false),
                sh_quote(tmux.status.as_os_str())
            ));
        run_ok(&mut new_session, HELPER_TIMEOUT)?;
        Ok(tmux)
    }

    fn tmux(&self, args: &[&str]) -> io::Result<String> {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket).args(args);
        run_ok(&mut command, HELPER_TIMEOUT)
    }

    /// Types `text` literally (no key names).
    ///
    /// # Errors
    /// tmux fails.
    pub fn send_keys(&self, text: &str) -> io::Result<()> {
        self.tmux(&["send-keys", "-t", TMUX_TARGET, "-l", "--", text])
            .map(drop)
    }

    /// Types `line`, then Enter.
    ///
    /// # Errors
    /// tmux fails.
    pub fn send_line(&self, line: &str) -> io::Result<()> {
        self.send_keys(line)?;
        self.send_key("Enter")
    }

    /// Presses one key by its tmux name: `Enter`, `C-c`, `C-d`, `Up`, `F1`, …
    ///
    /// # Errors
    /// tmux fails (e.g. an unknown key name).
    pub fn send_key(&self, key: &str) -> io::Result<()> {
        self.tmux(&["send-keys", "-t", TMUX_TARGET, key]).map(drop)
    }

    /// The visible screen, one line per row (trailing blanks trimmed by tmux).
    ///
    /// # Errors
    /// tmux fails.
    pub fn screen(&self) -> io::Result<String> {
        self.tmux(&["capture-pane", "-p", "-t", TMUX_TARGET])
    }

    /// The scrollback and the screen, wrapped lines joined.
    ///
    /// # Errors
    /// tmux fails.
    pub fn capture(&self) -> io::Result<String> {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", TMUX_TARGET])
    }

    /// Waits until [`Tmux::capture`] contains `text`; returns the capture.
    ///
    /// # Errors
    /// `TimedOut` with the screen, or tmux fails.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> io::Result<String> {
        self.wait_until(timeout, &format!("{text:?} on the screen"), |screen| {
            screen.contains(text)
        })
    }

    /// Waits until `ready` holds for [`Tmux::capture`]; returns the capture.
    ///
    /// # Errors
    /// `TimedOut` naming `what`, with the screen, or tmux fails.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&str) -> bool,
    ) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = Ok(String::new());
        let found = poll(deadline, || {
            last = self.capture();
            match &last {
                Ok(screen) if ready(screen) => Some(screen.clone()),
                _ => None,
            }
        });
        match found {
            Some(screen) => Ok(screen),
            None => {
                let screen = last?;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out after {timeout:?} waiting for {what}; the terminal:\n{screen}"
                    ),
                ))
            }
        }
    }

    /// Resizes the terminal; the program gets `SIGWINCH` (and `ssh` sends a window-change
    /// request).
    ///
    /// # Errors
    /// tmux fails.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        self.tmux(&["resize-window", "-t", TMUX_TARGET, "-x", &cols, "-y", &rows])
            .map(drop)
    }

    /// The command's exit status once it has exited (`None` while it runs), as the pane's
    /// shell wrote it.
    ///
    /// # Errors
    /// The status file cannot be read.
    pub fn exit_status(&self) -> io::Result<Option<i32>> {
        match std::fs::read_to_string(&self.status) {
            // (Empty for a moment while the shell writes it.)
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the command exits; returns its exit status (128 + N if killed by signal N,
    /// as the shell reports it).
    ///
    /// # Errors
    /// `TimedOut` with the screen, or tmux fails.
    pub fn wait_exit(&self, timeout: Duration) -> io::Result<i32> {
        let deadline = Instant::now() + timeout;
        match poll(deadline, || self.exit_status().ok().flatten()) {
            Some(status) => Ok(status),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the command in the terminal did not exit within {timeout:?}; the terminal:\n{}",
                    self.capture().unwrap_or_default()
                ),
            )),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `cd DIR && [exec] env -u K -- K=V … PROGRAM ARGS…`, shell-quoted, for tmux; without
/// `exec` the shell goes on after the program (to write its exit status).
fn shell_line_with(command: &Command, exec: bool) -> String {
    let mut line = String::new();
    if let Some(dir) = command.get_current_dir() {
        let _ = write!(line, "cd {} && ", sh_quote(dir.as_os_str()));
    }
    line.push_str(if exec { "exec env" } else { "env" });
    // env takes options (-u), then `--`, then assignments, then the program.
    for (key, value) in command.get_envs() {
        if value.is_none() {
            let _ = write!(line, " -u {}", sh_quote(key));
        }
    }
    line.push_str(" --");
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            let mut pair = key.to_owned();
            pair.push("=");
            pair.push(value);
            let _ = write!(line, " {}", sh_quote(&pair));
        }
    }
    let _ = write!(line, " {}", sh_quote(command.get_program()));
    for arg in command.get_args() {
        let _ = write!(line, " {}", sh_quote(arg));
    }
    line
}

// ---------------------------------------------------------------------------------------------
// Quoting
// ---------------------------------------------------------------------------------------------

/// A POSIX shell word: as is when safe, else single-quoted.
fn sh_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A path in `sshd_config` (split like a command line: double quotes keep spaces).
fn conf_quote(path: &Path) -> String {
    option_quote(path)
}

/// A path in an `ssh -o Key=value` option (split like `ssh_config`: double quotes keep spaces;
/// `UserKnownHostsFile` would otherwise take a path with spaces for several files).
fn option_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '\'' || c == '#')
    {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text.into_owned()
    }
}

/// A program path for `rsync -e`, which splits on spaces and honours quotes (not backslashes).
fn rsync_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    if !text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        text.into_owned()
    } else if !text.contains('\'') {
        format!("'{text}'")
    } else {
        format!("\"{text}\"")
    }
}

fn not_found(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, message)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_bracket_other_ports() {
        assert_eq!(
            known_hosts_line("127.0.0.1", 2222, "ssh-ed25519 AAAA"),
            "[127.0.0.1]:2222 ssh-ed25519 AAAA"
        );
        assert_eq!(
            known_hosts_line("127.0.0.1", 22, "ssh-ed25519 AAAA"),
            "127.0.0.1 ssh-ed25519 AAAA"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(OsStr::new("/usr/bin/ssh")), "/usr/bin/ssh");
        assert_eq!(sh_quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(sh_quote(OsStr::new("")), "''");
        assert_eq!(sh_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(option_quote(Path::new("/tmp/x")), "/tmp/x");
        assert_eq!(option_quote(Path::new("/tmp/a b")), "\"/tmp/a b\"");
        assert_eq!(option_quote(Path::new("/tmp/a\"b")), "\"/tmp/a\\\"b\"");
        assert_eq!(rsync_quote(Path::new("/tmp/x")), "/tmp/x");
        assert_eq!(rsync_quote(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(rsync_quote(Path::new("/tmp/it's x")), "\"/tmp/it's x\"");
    }

    #[test]
    fn shell_lines_run_the_command_as_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", "pwd; echo \"$SOD_A|${SOD_B-unset}|$1\"", "sh", "it's"])
            .env("SOD_A", "x y")
            .env_remove("SOD_B")
            .current_dir(dir.path());
        let line = shell_line_with(&command, true);
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c").arg(&line).env("SOD_B", "inherited");
        let out = run_ok(&mut sh, Duration::from_secs(30)).expect("run");
        assert_eq!(
            out,
            format!("{}\nx y|unset|it's\n", dir.path().display()),
            "{line}"
        );
    }

    #[test]
    fn stat_lines_with_parentheses_in_the_name() {
        assert_eq!(
            parse_stat("42 (sshd: a (b) c) S 7 42 42 0 -1"),
            Some(('S', 7))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn missing_programs_name_their_packages() {
        let message = missing_message(&["sshd", "scp", "ssh", "tmux", "frobnicate"]);
        assert!(
            message.ends_with(
                "`apt-get install -y --no-install-recommends frobnicate openssh-client \
                 openssh-server tmux`"
            ),
            "{message}"
        );
        assert_eq!(
            package_of("/usr/lib/openssh/sftp-server"),
            Some("openssh-sftp-server")
        );
        let error = check_programs(&["sod-testkit-no-such-program"]).expect_err("missing");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_wrapper_runs_commands_and_shells_like_sshd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("it's here");
        std::fs::create_dir(&work).expect("mkdir");
        let wrapper = dir.path().join("wrapper");
        std::fs::write(&wrapper, wrapper_script(&work)).expect("write");
        let run_wrapper = |original: Option<&str>, stdin: &[u8]| {
            let mut command = Command::new("/bin/sh");
            // HOME without a profile, so that the login shell prints nothing of its own.
            command
                .arg(&wrapper)
                .env("SHELL", "/bin/sh")
                .env("HOME", dir.path());
            match original {
                Some(original) => command.env("SSH_ORIGINAL_COMMAND", original),
                None => command.env_remove("SSH_ORIGINAL_COMMAND"),
            };
            let output = run_with_input(&mut command, stdin, Duration::from_secs(30)).expect("run");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        };
        let expected = format!("{}\nunset\n", work.display());
        // A command, through the shell, in the directory, without SSH_ORIGINAL_COMMAND.
        assert_eq!(
            run_wrapper(Some("pwd; echo ${SSH_ORIGINAL_COMMAND-unset}; exit 3"), b""),
            (Some(3), expected.clone())
        );
        // An empty command is still a command, not a shell.
        assert_eq!(run_wrapper(Some(""), b"echo no"), (Some(0), String::new()));
        // No command: a login shell reading stdin.
        assert_eq!(
            run_wrapper(None, b"pwd; echo ${SSH_ORIGINAL_COMMAND-unset}\n"),
            (Some(0), expected)
        );
        // A directory that is gone: nothing runs.
        std::fs::remove_dir(&work).expect("rmdir");
        assert_eq!(run_wrapper(Some("echo ran"), b""), (Some(1), String::new()));
    }

    #[test]
    fn a_taken_port_is_retried() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let builder = SshdBuilder {
            first_port: Some(port),
            ..SshdBuilder::default()
        };
        let sshd = builder.start().expect("start on another port");
        assert_ne!(sshd.port(), port);
        assert!(
            sshd.log().contains("Address already in use"),
            "{}",
            sshd.log()
        );
        assert!(banner(sshd.addr()).is_ok());
    }

    #[test]
    fn internal_sftp_with_a_working_dir_is_refused() {
        let error = Sshd::builder()
            .working_dir("/")
            .sftp(Sftp::Internal)
            .start()
            .expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("internal-sftp"), "{error}");
    }

    #[test]
    fn a_command_that_outlives_its_deadline_is_killed_with_its_group() {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "sleep 600 & echo $!; wait"]);
        let error = run(&mut command, Duration::from_millis(500)).expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let message = error.to_string();
        let pid: u32 = message
            .split("--- stdout ---\n")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {message}"));
        let gone = poll(Instant::now() + Duration::from_secs(5), || {
            (!process_alive(pid)).then_some(())
        });
        assert!(gone.is_some(), "the background sleep {pid} survived");
    }

    #[test]
    fn run_reports_what_failed() {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo out; echo err >&2; exit 4"]);
        let output = run(&mut command, Duration::from_secs(30)).expect("ran");
        assert_eq!(output.status.code(), Some(4));
        assert_eq!(output.stdout, b"out\n");
        let error = run_ok(&mut command, Duration::from_secs(30)).expect_err("failed");
        let message = error.to_string();
        assert!(
            message.contains("exit status: 4") && message.contains("err"),
            "{message}"
        );
        let error = run(&mut Command::new("rsync-not-here"), Duration::from_secs(5))
            .expect_err("not found");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let mut input = Command::new("cat");
        let output = run_with_input(&mut input, b"fed", Duration::from_secs(30)).expect("cat");
        assert_eq!(output.stdout, b"fed");
    }
}
