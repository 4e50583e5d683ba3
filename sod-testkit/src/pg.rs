//! An ephemeral PostgreSQL cluster made from the installed server binaries.
//!
//! [`EphemeralPostgres::start`] runs `initdb` in a fresh temporary directory, starts the server
//! with `pg_ctl` on `127.0.0.1:<free port>` (and a unix socket in the temporary directory), and
//! creates the role `executor` owning the database `sod`. Dropping the value stops the server
//! (`pg_ctl stop -m immediate`, falling back to `kill -9`) and removes the directory, also during
//! a panic unwind.
//!
//! The server binaries are taken from `$SOD_PG_BIN` if set, else from the highest
//! `/usr/lib/postgresql/*/bin` that contains `postgres`, else from `PATH`. When the tests run as
//! root, `initdb` and `pg_ctl` run as the `postgres` OS user through `runuser`, since PostgreSQL
//! refuses to run as root.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tls::TestCa;

/// The environment variable naming the directory of the PostgreSQL server binaries.
pub const PG_BIN_ENV: &str = "SOD_PG_BIN";
/// The database created for the tests, owned by [`EXECUTOR`].
pub const DATABASE: &str = "sod";
/// The superuser.
pub const SUPERUSER: &str = "postgres";
/// The role that always exists (SCRAM-SHA-256 password) and owns [`DATABASE`].
pub const EXECUTOR: &str = "executor";
/// The address the server listens on.
pub const HOST: &str = "127.0.0.1";

/// How many times to try another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How many log lines to put in error messages.
const LOG_TAIL_LINES: usize = 40;

/// How a role created by [`PgBuilder::user`] authenticates (its `pg_hba.conf` method).
#[derive(Clone, PartialEq, Eq)]
pub enum UserAuth {
    /// Password stored as SCRAM-SHA-256, `scram-sha-256` in `pg_hba.conf`.
    Scram(String),
    /// Password stored as MD5 (`SET password_encryption = 'md5'`), `md5` in `pg_hba.conf`.
    Md5(String),
    /// No password, `trust` in `pg_hba.conf`.
    Trust,
}

impl fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserAuth::Scram(_) => "Scram(..)",
            UserAuth::Md5(_) => "Md5(..)",
            UserAuth::Trust => "Trust",
        })
    }
}

impl UserAuth {
    fn password(&self) -> Option<&str> {
        match self {
            UserAuth::Scram(password) | UserAuth::Md5(password) => Some(password),
            UserAuth::Trust => None,
        }
    }

    fn hba_method(&self) -> &'static str {
        match self {
            UserAuth::Scram(_) => "scram-sha-256",
            UserAuth::Md5(_) => "md5",
            UserAuth::Trust => "trust",
        }
    }
}

/// Configures an [`EphemeralPostgres`]; see [`EphemeralPostgres::builder`].
#[derive(Debug, Default, Clone)]
pub struct PgBuilder {
    tls: bool,
    users: Vec<(String, UserAuth)>,
    settings: Vec<(String, String)>,
    /// The port to try first (tests of the retry path); normally a free one is picked.
    first_port: Option<u16>,
}

impl PgBuilder {
    /// Turns TLS on (`ssl = on`, certificate for `localhost` and 127.0.0.1 from a fresh
    /// [`TestCa`], see [`EphemeralPostgres::ca`]). Off by default.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Creates an extra LOGIN role `name` authenticating with `auth`. Its `pg_hba.conf` lines
    /// (`local` and `host 127.0.0.1/32`) come before the general ones. Adding the same name twice
    /// keeps the last.
    pub fn user(mut self, name: &str, auth: UserAuth) -> Self {
        self.users.retain(|(user, _)| user != name);
        self.users.push((name.to_owned(), auth));
        self
    }

    /// Adds `name = 'value'` to `postgresql.conf`, after (so overriding) the fixture's own
    /// settings. The value is quoted, which PostgreSQL accepts for every type.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Creates and starts the cluster. Errors carry the relevant command output and the tail of
    /// the server log.
    pub fn start(self) -> io::Result<EphemeralPostgres> {
        EphemeralPostgres::start_with(self)
    }
}

/// An OS user to run the server as when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running, throw-away PostgreSQL cluster. See the module docs.
pub struct EphemeralPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    ca_file: Option<PathBuf>,
    port: u16,
    superuser_password: String,
    executor_password: String,
    users: Vec<(String, UserAuth)>,
    ca: Option<TestCa>,
    run_as: Option<RunAs>,
    running: bool,
    // Last, so that it is removed after everything else is dropped.
    dir: Option<TempDir>,
}

impl fmt::Debug for EphemeralPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralPostgres")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("bin_dir", &self.bin_dir)
            .field("tls", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

impl EphemeralPostgres {
    /// A builder for a cluster with non-default options.
    pub fn builder() -> PgBuilder {
        PgBuilder::default()
    }

    /// Starts a cluster with the defaults (no TLS, no extra users, no extra settings).
    pub fn start() -> io::Result<EphemeralPostgres> {
        PgBuilder::default().start()
    }

    fn start_with(builder: PgBuilder) -> io::Result<EphemeralPostgres> {
        for (name, _) in &builder.users {
            if name == SUPERUSER || name == EXECUTOR {
                return Err(invalid(format!("user {name:?} is created by the fixture")));
            }
        }
        let bin_dir = find_bin_dir()?;
        let run_as = if running_as_root() {
            Some(postgres_os_user()?)
        } else {
            None
        };
        let dir = make_temp_dir(run_as.is_some())?;
        let root = dir.path().to_path_buf();
        give(&root, run_as)?;
        let socket_dir = root.join("sock");
        std::fs::create_dir(&socket_dir)?;
        give(&socket_dir, run_as)?;

        let mut pg = EphemeralPostgres {
            bin_dir,
            data_dir: root.join("data"),
            socket_dir,
            log_file: root.join("server.log"),
            ca_file: None,
            port: 0,
            superuser_password: random_password(),
            executor_password: random_password(),
            users: builder.users.clone(),
            ca: None,
            run_as,
            running: false,
            dir: Some(dir),
        };
        pg.init(&builder)?;
        pg.start_server(builder.first_port)?;
        pg.create_roles()?;
        Ok(pg)
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// `initdb`, `pg_hba.conf`, `postgresql.conf` and the TLS files.
    fn init(&mut self, builder: &PgBuilder) -> io::Result<()> {
        let root = self.root().to_path_buf();
        let pwfile = root.join("pwfile");
        write_private(&pwfile, format!("{}\n", self.superuser_password).as_bytes())?;
        give(&pwfile, self.run_as)?;
        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = run(&mut initdb, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        result?;

        // pg_hba.conf: per-user lines first, then the general ones.
        let mut hba = String::from("# Written by sod-testkit.\n");
        for (user, auth) in &self.users {
            let user = hba_quote(user);
            let method = auth.hba_method();
            let _ = writeln!(hba, "local all {user} {method}");
            let _ = writeln!(hba, "host all {user} 127.0.0.1/32 {method}");
        }
        hba.push_str("local all postgres scram-sha-256\n");
        hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(self.data_dir.join("pg_hba.conf"), hba)?;

        // postgresql.conf includes sod_testkit.conf (rewritten for every port attempt), then the
        // builder's settings.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))?;
        let mut extra = String::from("\n# Added by sod-testkit.\ninclude 'sod_testkit.conf'\n");
        if builder.tls {
            let ca = TestCa::new("sod-testkit PostgreSQL CA");
            let leaf = ca.issue(&["localhost"], &[std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            let cert_file = root.join("server.crt");
            let key_file = root.join("server.key");
            let ca_file = root.join("ca.pem");
            std::fs::write(&cert_file, leaf.cert_pem())?;
            give(&cert_file, self.run_as)?;
            write_private(&key_file, leaf.key_pem().as_bytes())?;
            give(&key_file, self.run_as)?;
            ca.write_pem(&ca_file)?;
            let _ = writeln!(extra, "ssl = on");
            let _ = writeln!(extra, "ssl_cert_file = {}", conf_quote(&cert_file));
            let _ = writeln!(extra, "ssl_key_file = {}", conf_quote(&key_file));
            self.ca = Some(ca);
            self.ca_file = Some(ca_file);
        }
        for (name, value) in &builder.settings {
            let _ = writeln!(extra, "{name} = {}", conf_quote(value));
        }
        conf.write_all(extra.as_bytes())?;
        Ok(())
    }

    fn write_port_conf(&self) -> io::Result<()> {
        let conf = format!(
            "# Written by sod-testkit; the builder's settings come after this file.\n\
             listen_addresses = '{HOST}'\n\
             port = {port}\n\
             unix_socket_directories = {socket}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = '16MB'\n\
             max_connections = 100\n",
            port = self.port,
            socket = conf_quote(&self.socket_dir),
        );
        std::fs::write(self.data_dir.join("sod_testkit.conf"), conf)
    }

    /// `pg_ctl start`, trying another port if the chosen one was taken meanwhile.
    /// Kills the server as a crash would: `SIGKILL` to the postmaster (its backends exit when
    /// they notice), then waits until it is gone. For fault tests; [`restart`](Self::restart)
    /// brings it back.
    pub fn kill(&mut self) -> io::Result<()> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| io::Error::other("the server is not running (no postmaster.pid)"))?;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!("kill -9 {pid} failed: {status}")));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) {
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "postmaster {pid} outlived SIGKILL"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.running = false;
        Ok(())
    }

    /// Starts the server again on its port, after [`kill`](Self::kill) (crash recovery runs
    /// first: the server accepts connections once it has replayed its WAL). The backends the
    /// killed postmaster left may hold the port for a moment: the start is retried for a few
    /// seconds.
    pub fn restart(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A stale postmaster.pid names a dead process: pg_ctl checks and ignores it. The
            // port stays the same (clients and gateways know it).
            let output = self.pg_ctl_start()?;
            if output.status.success() {
                self.running = true;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure("pg_ctl start (restart)", &output));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl start`, waiting until the server accepts connections (or 60 s).
    fn pg_ctl_start(&self) -> io::Result<std::process::Output> {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file);
        pg_ctl.stdin(Stdio::null()).output()
    }

    fn start_server(&mut self, mut first_port: Option<u16>) -> io::Result<()> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = match first_port.take() {
                Some(port) => port,
                None => free_port()?,
            };
            self.write_port_conf()?;
            let log_before = std::fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let output = self.pg_ctl_start()?;
            if output.status.success() {
                self.running = true;
                return Ok(());
            }
            // pg_ctl may have left a server behind (e.g. it timed out): make sure it is gone.
            self.stop_server();
            let log = std::fs::read(&self.log_file).unwrap_or_default();
            let new_log = String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or(&[]));
            let error = self.failure("pg_ctl start", &output);
            let port_taken = ["could not bind", "Address already in use"]
                .iter()
                .any(|needle| new_log.contains(needle));
            if !port_taken {
                return Err(error);
            }
            last_error = Some(error);
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("pg_ctl start failed")))
    }

    fn create_roles(&self) -> io::Result<()> {
        let mut sql = String::new();
        let _ = writeln!(
            sql,
            "CREATE ROLE {EXECUTOR} LOGIN PASSWORD {};",
            sql_literal(&self.executor_password)
        );
        let _ = writeln!(sql, "CREATE DATABASE {DATABASE} OWNER {EXECUTOR};");
        for (user, auth) in &self.users {
            let ident = sql_ident(user);
            match auth {
                UserAuth::Scram(password) => {
                    let _ = writeln!(
                        sql,
                        "SET password_encryption = 'scram-sha-256';\n\
                         CREATE ROLE {ident} LOGIN PASSWORD {};",
                        sql_literal(password)
                    );
                }
                UserAuth::Md5(password) => {
                    let _ = writeln!(
                        sql,
                        "SET password_encryption = 'md5';\n\
                         CREATE ROLE {ident} LOGIN PASSWORD {};\n\
                         RESET password_encryption;",
                        sql_literal(password)
                    );
                }
                UserAuth::Trust => {
                    let _ = writeln!(sql, "CREATE ROLE {ident} LOGIN;");
                }
            }
        }
        self.run_psql(
            &[
                ("host", self.socket_dir.to_string_lossy().as_ref()),
                ("port", &self.port.to_string()),
                ("user", SUPERUSER),
                ("dbname", "postgres"),
                ("password", &self.superuser_password),
            ],
            &sql,
        )
        .map(drop)
        .map_err(|e| self.with_log_tail(e))
    }

    /// A command running a server binary, as the `postgres` OS user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        let mut command = if self.run_as.is_some() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The postgres OS user may not be able to enter our working directory.
        command.current_dir(self.root()).stdin(Stdio::null());
        command
    }

    fn psql_program(&self) -> PathBuf {
        let psql = self.bin_dir.join("psql");
        if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        }
    }

    /// Runs `psql -X -w -At -v ON_ERROR_STOP=1` with the given connection parameters (`password`
    /// goes in `PGPASSWORD`), feeding `sql` on stdin; returns stdout.
    fn run_psql(&self, params: &[(&str, &str)], sql: &str) -> io::Result<String> {
        // The password travels in PGPASSWORD rather than on the command line.
        let conninfo = params
            .iter()
            .filter(|(key, _)| *key != "password")
            .map(|(key, value)| format!("{key}={}", conninfo_quote(value)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new(self.psql_program());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(key);
            }
        }
        if let Some((_, password)) = params.iter().find(|(key, _)| *key == "password") {
            command.env("PGPASSWORD", password);
        }
        command
            .args(["-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d"])
            .arg(&conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run psql: {e}")))?;
        let mut stdin = child.stdin.take();
        let sql = sql.to_owned();
        // Feed stdin from another thread so that a large output cannot deadlock us.
        let writer = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(sql.as_bytes());
            }
        });
        let output = child.wait_with_output()?;
        let _ = writer.join();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "psql failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )))
        }
    }

    /// The address the server listens on: `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database created for the tests: `"sod"`.
    pub fn database(&self) -> &str {
        DATABASE
    }

    /// The password of the superuser `postgres`.
    pub fn superuser_password(&self) -> &str {
        &self.superuser_password
    }

    /// The password of `executor`.
    pub fn executor_password(&self) -> &str {
        &self.executor_password
    }

    /// The password of `user` (`postgres`, `executor` or a builder user); `None` for trust users
    /// and unknown users.
    pub fn password(&self, user: &str) -> Option<&str> {
        match user {
            SUPERUSER => Some(&self.superuser_password),
            EXECUTOR => Some(&self.executor_password),
            _ => self
                .users
                .iter()
                .find(|(name, _)| name == user)
                .and_then(|(_, auth)| auth.password()),
        }
    }

    /// `postgres://user:password@127.0.0.1:port/sod` (no password part when
    /// [`EphemeralPostgres::password`] is `None`). No TLS parameters.
    pub fn url(&self, user: &str) -> String {
        let user_part = match self.password(user) {
            Some(password) => format!("{}:{}", url_encode(user), url_encode(password)),
            None => url_encode(user),
        };
        format!("postgres://{user_part}@{HOST}:{}/{DATABASE}", self.port)
    }

    /// The libpq key=value connection string for `user` over TCP to the `sod` database; with
    /// `sslmode=verify-full sslrootcert=<CA file>` when TLS is on.
    pub fn conninfo(&self, user: &str) -> String {
        self.conninfo_params(user)
            .iter()
            .map(|(key, value)| format!("{key}={}", conninfo_quote(value)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn conninfo_params(&self, user: &str) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("host", HOST.to_owned()),
            ("port", self.port.to_string()),
            ("dbname", DATABASE.to_owned()),
            ("user", user.to_owned()),
        ];
        if let Some(password) = self.password(user) {
            params.push(("password", password.to_owned()));
        }
        if let Some(ca_file) = &self.ca_file {
            params.push(("sslmode", "verify-full".to_owned()));
            params.push(("sslrootcert", ca_file.to_string_lossy().into_owned()));
        }
        params
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The CA that issued the server certificate, when TLS is on.
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// The CA certificate file (PEM) in the temporary directory, when TLS is on.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_file).unwrap_or_default()).into_owned()
    }

    /// Runs `sql` with `psql -X -w -At -v ON_ERROR_STOP=1` (never prompting) as the superuser
    /// over the unix socket, in the `sod` database; returns stdout. The error carries psql's
    /// stderr.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        self.run_psql(
            &[
                ("host", self.socket_dir.to_string_lossy().as_ref()),
                ("port", &self.port.to_string()),
                ("user", SUPERUSER),
                ("dbname", DATABASE),
                ("password", &self.superuser_password),
            ],
            sql,
        )
    }

    /// Like [`EphemeralPostgres::psql`], but as `user` over TCP with
    /// [`EphemeralPostgres::conninfo`] (so with its password, and verified TLS when on).
    pub fn psql_as(&self, user: &str, sql: &str) -> io::Result<String> {
        let params = self.conninfo_params(user);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.run_psql(&params, sql)
    }

    /// Builds the error for a failed command: its output and the tail of the server log.
    fn failure(&self, what: &str, output: &Output) -> io::Error {
        let mut message = format!("{what} failed ({})", output.status);
        append_output(&mut message, output);
        self.with_log_tail(io::Error::other(message))
    }

    fn with_log_tail(&self, error: io::Error) -> io::Error {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        io::Error::new(
            error.kind(),
            format!(
                "{error}\n--- server log ({}), last lines ---\n{tail}",
                self.log_file.display()
            ),
        )
    }

    /// Stops the server if it may be running. Never panics.
    fn stop_server(&mut self) {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let stopped = pg_ctl.status().is_ok_and(|status| status.success());
        if !stopped {
            // Not running, or pg_ctl failed: kill whatever postmaster.pid names.
            if let Some(pid) = self.postmaster_pid() {
                let _ = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while process_alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        self.running = false;
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 1)
    }
}

impl Drop for EphemeralPostgres {
    fn drop(&mut self) {
        if self.running || self.postmaster_pid().is_some() {
            self.stop_server();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if dir.close().is_err() {
                // A straggling backend may still have been writing: retry for a while.
                let deadline = Instant::now() + Duration::from_secs(5);
                while path.exists() && Instant::now() < deadline {
                    let _ = std::fs::remove_dir_all(&path);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Whether a process `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Finds the directory of the PostgreSQL server binaries: `$SOD_PG_BIN`, else the highest
/// `/usr/lib/postgresql/<version>/bin` containing `postgres`, else the `PATH` entry containing
/// `postgres`.
pub fn find_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.join("postgres").is_file() {
            Ok(dir)
        } else {
            Err(not_found(format!(
                "${PG_BIN_ENV} is {} but it contains no `postgres` binary",
                dir.display()
            )))
        };
    }
    if let Some(dir) = highest_versioned_bin(Path::new("/usr/lib/postgresql")) {
        return Ok(dir);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("postgres").is_file() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    Err(not_found(format!(
        "no PostgreSQL server binaries found: ${PG_BIN_ENV} is not set, no \
         /usr/lib/postgresql/*/bin contains `postgres`, and no PATH entry ({}) contains \
         `postgres` and `initdb`; install the PostgreSQL server or set ${PG_BIN_ENV}",
        path.to_string_lossy()
    )))
}

/// The `<base>/<version>/bin` with the highest version (compared numerically, part by part)
/// that contains `postgres`.
fn highest_versioned_bin(base: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(base)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = version_key(name.to_str()?)?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; `None` if not a version.
fn version_key(name: &str) -> Option<Vec<u64>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether the effective uid is 0, from `/proc/self/status` (falling back to `id -u`).
fn running_as_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|line| line.starts_with("Uid:"))
    {
        // Uid: real effective saved filesystem
        return line.split_whitespace().nth(2) == Some("0");
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The uid and primary gid of the `postgres` OS user, from `/etc/passwd`.
fn postgres_os_user() -> io::Result<RunAs> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 4 && fields[0] == "postgres").then_some(())?;
            Some(RunAs {
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
        .ok_or_else(|| {
            not_found(
                "running as root, so the server must run as the `postgres` OS user, but \
                 /etc/passwd has no `postgres` entry"
                    .to_owned(),
            )
        })
}

/// A fresh temporary directory. As root, it must be reachable by the `postgres` user: use the
/// system temporary directory if every ancestor is searchable by others, else `/tmp`.
fn make_temp_dir(as_root: bool) -> io::Result<TempDir> {
    let base = std::env::temp_dir();
    let base = if as_root && !searchable_by_others(&base) {
        PathBuf::from("/tmp")
    } else {
        base
    };
    tempfile::Builder::new().prefix("sod-pg-").tempdir_in(base)
}

fn searchable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0))
}

/// Hands `path` to the server's OS user when running as root.
fn give(path: &Path, run_as: Option<RunAs>) -> io::Result<()> {
    match run_as {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)),
        None => Ok(()),
    }
}

/// Writes a file readable only by its owner (0600).
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// Binds 127.0.0.1:0 and releases the port.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Runs a command to completion; an error carries its output.
fn run(command: &mut Command, what: &str) -> io::Result<Output> {
    let output = command.output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run {what} ({:?}): {e}", command.get_program()),
        )
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        let mut message = format!("{what} failed ({})", output.status);
        append_output(&mut message, &output);
        Err(io::Error::other(message))
    }
}

fn append_output(message: &mut String, output: &Output) {
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end();
        if !text.is_empty() {
            let _ = write!(message, "\n--- {name} ---\n{text}");
        }
    }
}

/// 22 random characters of the URL-safe base64 alphabet (128 bits): safe in connection strings
/// and `postgresql.conf` without quoting.
fn random_password() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    // aws-lc's RNG does not fail in practice; a zero password would still work.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A single-quoted `postgresql.conf` value.
fn conf_quote(value: impl AsRef<OsStr>) -> String {
    let value = value.as_ref().to_string_lossy();
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A `pg_hba.conf` user name, double-quoted if needed (so `all` means the role named "all").
fn hba_quote(name: &str) -> String {
    const KEYWORDS: [&str; 5] = ["all", "sameuser", "samerole", "samegroup", "replication"];
    if !name.is_empty()
        && !KEYWORDS.contains(&name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(['+', '@'])
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A quoted SQL identifier.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal (standard_conforming_strings is on).
fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A libpq conninfo value, single-quoted when needed.
fn conninfo_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '\'' && c != '\\')
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn url_encode(value: &str) -> String {
    value.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
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
    fn versions_compare_numerically() {
        let base = tempfile::tempdir().expect("tempdir");
        for version in ["9.6", "10", "15", "banana"] {
            let bin = base.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            std::fs::write(bin.join("postgres"), "").expect("touch");
        }
        // "16" has no postgres binary, so it does not count.
        std::fs::create_dir_all(base.path().join("16/bin")).expect("mkdir");
        assert_eq!(
            highest_versioned_bin(base.path()),
            Some(base.path().join("15/bin"))
        );
        assert_eq!(highest_versioned_bin(&base.path().join("missing")), None);
    }

    #[test]
    fn a_taken_port_is_retried() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let builder = PgBuilder {
            first_port: Some(port),
            ..PgBuilder::default()
        };
        let pg = builder.start().expect("start on another port");
        assert_ne!(pg.port(), port);
        assert!(pg.log().contains("could not bind"), "{}", pg.log());
        assert_eq!(pg.psql("select 1").expect("psql").trim(), "1");
    }

    #[test]
    fn quoting() {
        assert_eq!(conninfo_quote("abc"), "abc");
        assert_eq!(conninfo_quote("a b'c\\"), "'a b\\'c\\\\'");
        assert_eq!(conninfo_quote(""), "''");
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(hba_quote("alice_1"), "alice_1");
        assert_eq!(hba_quote("all"), "\"all\"");
        assert_eq!(hba_quote("a b"), "\"a b\"");
        assert_eq!(url_encode("a:b@c/d"), "a%3Ab%40c%2Fd");
        assert_eq!(conf_quote("/tmp/it's"), "'/tmp/it''s'");
    }

    #[test]
    fn random_passwords_differ() {
        let a = random_password();
        assert_eq!(a.len(), 22);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, random_password());
    }
}
