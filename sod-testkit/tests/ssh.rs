//! The ephemeral OpenSSH server, exercised with the real OpenSSH clients (`ssh`, `scp` in both
//! modes, `sftp -b`, `rsync -e ssh`, `ssh -tt` in tmux).

use std::io::{self, BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sod_testkit::poll_until;
use sod_testkit::ssh::{self, Client, ScpMode, Sftp, Sshd};
use tempfile::TempDir;

/// The deadline of every client command: far above what they need, so only a hang trips it.
const TIMEOUT: Duration = Duration::from_secs(60);

fn ok(command: &mut Command) -> String {
    ssh::run_ok(command, TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must fail; returns its stderr.
fn fails(command: &mut Command) -> String {
    let output = ssh::run(command, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "succeeded: {}{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// A server whose sessions start in a fresh directory.
fn sshd_in_dir() -> (TempDir, Sshd) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sshd = Sshd::builder()
        .working_dir(dir.path())
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, sshd)
}

/// `len` bytes that are not all alike (a simple LCG).
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn everything_needed_is_installed() {
    Sshd::check_installed().expect("server side");
    ssh::check_programs(&["ssh", "scp", "sftp", "rsync", "tmux"]).expect("client side");
}

#[test]
fn commands_run_in_the_working_dir_through_the_users_shell() {
    let (_dir, sshd) = sshd_in_dir();
    let wd = sshd.working_dir().to_str().expect("utf-8").to_owned();
    assert_ne!(sshd.working_dir(), sshd.home());
    let out = ok(&mut sshd
        .client()
        .ssh("echo hi; pwd; echo ${SSH_ORIGINAL_COMMAND-unset}"));
    assert_eq!(out, format!("hi\n{wd}\nunset\n"));
    // Quoting and operators reach the shell as sent.
    let out = ok(&mut sshd
        .client()
        .ssh("printf '%s|' \"a b\" 'c'\"'\"'d' && echo"));
    assert_eq!(out, "a b|c'd|\n");
    assert!(sshd.log().contains("forced-command"), "{}", sshd.log());
}

#[test]
fn without_a_working_dir_commands_start_at_home_and_nothing_is_forced() {
    let sshd = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sshd.working_dir(), sshd.home());
    let out = ok(&mut sshd.client().ssh("pwd; id -un"));
    assert_eq!(out, format!("{}\n{}\n", sshd.home().display(), sshd.user()));
    let config = std::fs::read_to_string(sshd.config_file()).expect("config");
    assert!(!config.contains("ForceCommand"), "{config}");
    assert!(!sshd.log().contains("forced-command"), "{}", sshd.log());
}

#[test]
fn exit_status_and_stderr_pass_through() {
    let (_dir, sshd) = sshd_in_dir();
    let output = ssh::run(
        &mut sshd.client().ssh("echo out; echo err >&2; exit 3"),
        TIMEOUT,
    )
    .expect("ran");
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
}

#[test]
fn accepted_environment_variables_are_passed() {
    let (_dir, sshd) = sshd_in_dir();
    let client = sshd
        .client()
        .env("LC_SOD_TEST", "hello there")
        .env("SOD_NOT_ACCEPTED", "no")
        .arg("-o")
        .arg("SendEnv=LC_SOD_TEST SOD_NOT_ACCEPTED");
    let out = ok(&mut client.ssh("echo \"${LC_SOD_TEST-unset} ${SOD_NOT_ACCEPTED-unset}\""));
    assert_eq!(out, "hello there unset\n");
}

#[test]
fn the_known_hosts_line_is_what_openssh_writes_and_is_checked_strictly() {
    let sshd = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    let line = sshd.known_hosts_line();
    assert_eq!(
        line,
        format!("[127.0.0.1]:{} {}", sshd.port(), sshd.host_public_key())
    );
    assert!(
        sshd.host_public_key().starts_with("ssh-ed25519 AAAA")
            && sshd.host_public_key().split(' ').count() == 2,
        "{}",
        sshd.host_public_key()
    );

    // What ssh itself records on first contact.
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = dir.path().join("known_hosts");
    let mut first_contact = Command::new("ssh");
    first_contact
        .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", recorded.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "HashKnownHosts=no",
        ])
        .args([
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-i")
        .arg(sshd.client_key_path())
        .args(["-p", &sshd.port().to_string()])
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .arg("true");
    ok(&mut first_contact);
    assert_eq!(
        std::fs::read_to_string(&recorded).expect("recorded"),
        format!("{line}\n")
    );

    // The fixture's line is accepted under StrictHostKeyChecking=yes...
    assert_eq!(ok(&mut sshd.client().ssh("echo trusted")), "trusted\n");
    // ...another key for the same host is refused, and nothing is learnt...
    let other = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    let wrong = format!("[127.0.0.1]:{} {}", sshd.port(), other.host_public_key());
    let client = Client::new(sshd.port(), sshd.user())
        .identity(sshd.client_key_path())
        .known_hosts(&wrong);
    let stderr = fails(&mut client.ssh("echo trusted"));
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(client.known_hosts_path()).expect("known hosts"),
        format!("{wrong}\n")
    );
    // ...and so is an unknown host.
    let client = Client::new(sshd.port(), sshd.user()).identity(sshd.client_key_path());
    let stderr = fails(&mut client.ssh("echo trusted"));
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
}

#[test]
fn password_mode_offers_no_key() {
    let sshd = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    // The fixture's key is authorized, but a password client must not use it (nor an agent).
    let client = Client::new(sshd.port(), sshd.user())
        .password("not a key")
        .known_hosts(&sshd.known_hosts_line());
    let stderr = fails(&mut client.ssh("echo in"));
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

/// The askpass path (what a password client uses) answers through every tool: here it
/// answers a key's passphrase, since sshd without PAM offers no password authentication.
#[test]
fn askpass_answers_through_ssh_scp_sftp_and_rsync() {
    let (dir, sshd) = sshd_in_dir();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("locked_ed25519");
    let passphrase = "a passphrase with 'quotes' and $dollars";
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
        .arg(&key);
    ok(&mut keygen);
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
    sshd.authorize(&public).expect("authorize");

    let client = Client::new(sshd.port(), sshd.user())
        .identity(&key)
        .password(passphrase)
        .known_hosts(&sshd.known_hosts_line());
    assert_eq!(ok(&mut client.ssh("echo unlocked")), "unlocked\n");
    let local = keys.path().join("file");
    std::fs::write(&local, b"via scp").expect("write");
    ok(&mut client.scp(
        ScpMode::Sftp,
        [local.as_os_str(), client.remote("scp.txt").as_ref()],
    ));
    assert_eq!(read(&dir.path().join("scp.txt")), b"via scp");
    let out = ok(&mut client.sftp_batch("pwd\n"));
    assert!(
        out.contains(&sshd.working_dir().display().to_string()),
        "{out}"
    );
    ok(&mut client.rsync([local.as_os_str(), client.remote("rsync.txt").as_ref()]));
    assert_eq!(read(&dir.path().join("rsync.txt")), b"via scp");

    let wrong = Client::new(sshd.port(), sshd.user())
        .identity(&key)
        .password("wrong")
        .known_hosts(&sshd.known_hosts_line());
    let stderr = fails(&mut wrong.ssh("echo unlocked"));
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // Without a password nothing prompts: the locked key is skipped.
    let none = Client::new(sshd.port(), sshd.user())
        .identity(&key)
        .known_hosts(&sshd.known_hosts_line());
    fails(&mut none.ssh("echo unlocked"));
}

#[test]
fn scp_copies_both_ways_in_both_modes() {
    let (dir, sshd) = sshd_in_dir();
    let client = sshd.client();
    let local = tempfile::tempdir().expect("tempdir");
    for (mode, name) in [(ScpMode::Sftp, "sftp"), (ScpMode::Legacy, "legacy")] {
        let content = data(300_000, name.len() as u32);
        let source = local.path().join(format!("{name}.bin"));
        std::fs::write(&source, &content).expect("write");
        // Up, to a path relative to the working directory.
        let remote = format!("up-{name}.bin");
        ok(&mut client.scp(mode, [source.as_os_str(), client.remote(&remote).as_ref()]));
        assert_eq!(read(&dir.path().join(&remote)), content, "{mode:?} upload");
        // Down again.
        let back = local.path().join(format!("{name}.back"));
        ok(&mut client.scp(mode, [client.remote(&remote).as_ref(), back.as_os_str()]));
        assert_eq!(read(&back), content, "{mode:?} download");
        // A directory, recursively.
        let tree = local.path().join(format!("tree-{name}"));
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        std::fs::write(tree.join("sub/leaf"), name).expect("write");
        ok(&mut client.scp(
            mode,
            ["-r".as_ref(), tree.as_os_str(), client.remote("").as_ref()],
        ));
        assert_eq!(
            read(&dir.path().join(format!("tree-{name}/sub/leaf"))),
            name.as_bytes()
        );
    }
}

#[test]
fn scp_needs_the_sftp_subsystem_unless_legacy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sshd = Sshd::builder()
        .working_dir(dir.path())
        .sftp(Sftp::Disabled)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = sshd.client();
    let source = dir.path().join("source");
    std::fs::write(&source, b"x").expect("write");
    fails(&mut client.scp(
        ScpMode::Sftp,
        [source.as_os_str(), client.remote("a").as_ref()],
    ));
    assert!(!dir.path().join("a").exists());
    ok(&mut client.scp(
        ScpMode::Legacy,
        [source.as_os_str(), client.remote("b").as_ref()],
    ));
    assert_eq!(read(&dir.path().join("b")), b"x");
}

#[test]
fn sftp_batches_run_in_the_working_dir() {
    let (dir, sshd) = sshd_in_dir();
    let client = sshd.client();
    let local = tempfile::tempdir().expect("tempdir");
    let source = local.path().join("source.bin");
    let content = data(100_000, 7);
    std::fs::write(&source, &content).expect("write");
    let back = local.path().join("back.bin");
    let batch = format!(
        "pwd\nmkdir d\nput {} d/a.bin\nrename d/a.bin d/b.bin\nget d/b.bin {}\nput {} gone\n\
         rm gone\n-rm does-not-exist\nls d\n",
        source.display(),
        back.display(),
        source.display()
    );
    let out = ok(&mut client.sftp_batch(&batch));
    assert!(
        out.contains(&format!(
            "Remote working directory: {}",
            sshd.working_dir().display()
        )),
        "{out}"
    );
    assert_eq!(read(&dir.path().join("d/b.bin")), content);
    assert_eq!(read(&back), content);
    assert!(!dir.path().join("d/a.bin").exists() && !dir.path().join("gone").exists());
    // A failing command stops the batch with an error.
    let stderr = fails(&mut client.sftp_batch("rm does-not-exist\nmkdir never\n"));
    assert!(stderr.contains("does-not-exist"), "{stderr}");
    assert!(!dir.path().join("never").exists());
}

#[test]
fn internal_sftp_works_without_a_working_dir() {
    let sshd = Sshd::builder()
        .sftp(Sftp::Internal)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = ok(&mut sshd.client().sftp_batch("pwd\n"));
    assert!(
        out.contains(&format!(
            "Remote working directory: {}",
            sshd.home().display()
        )),
        "{out}"
    );
}

#[test]
fn rsync_over_ssh_both_ways() {
    let (dir, sshd) = sshd_in_dir();
    let client = sshd.client();
    let local = tempfile::tempdir().expect("tempdir");
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
    std::fs::write(tree.join("a/b/one"), data(50_000, 1)).expect("write");
    std::fs::write(tree.join("two"), b"two").expect("write");
    ok(&mut client.rsync([
        "-a".as_ref(),
        tree.as_os_str(),
        client.remote("up/").as_ref(),
    ]));
    assert_eq!(read(&dir.path().join("up/tree/a/b/one")), data(50_000, 1));
    assert_eq!(read(&dir.path().join("up/tree/two")), b"two");

    std::fs::write(dir.path().join("up/tree/three"), b"three").expect("write");
    let down = local.path().join("down");
    ok(&mut client.rsync([
        "-a".as_ref(),
        client.remote("up/tree/").as_ref(),
        down.as_os_str(),
    ]));
    assert_eq!(read(&down.join("a/b/one")), data(50_000, 1));
    assert_eq!(read(&down.join("three")), b"three");
}

#[test]
fn a_pty_session_in_tmux_sees_its_size_change() {
    let (_dir, sshd) = sshd_in_dir();
    let term = sshd
        .client()
        .pty("", 100, 30)
        .unwrap_or_else(|e| panic!("{e}"));
    let wait = |text: &str| {
        term.wait_for(text, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n--- sshd log ---\n{}", sshd.log()))
    };
    // Typed text is echoed as typed: only the shell's expansion proves it ran.
    term.send_line("echo ready-$((6 * 7)) \"cwd=$(pwd)\" tty=$(tty)")
        .expect("type");
    let screen = wait("ready-42");
    assert!(
        screen.contains(&format!("cwd={}", sshd.working_dir().display())),
        "{screen}"
    );
    assert!(screen.contains("tty=/dev/pts/"), "{screen}");
    term.send_line("stty size").expect("type");
    wait("30 100");
    term.resize(120, 40).expect("resize");
    term.send_line("stty size").expect("type");
    wait("40 120");
    term.send_line("exit 7").expect("type");
    assert_eq!(term.wait_exit(TIMEOUT).expect("exit"), 7);
}

#[test]
fn a_hanging_command_is_killed_at_the_deadline() {
    let sshd = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    let error = ssh::run(
        &mut sshd.client().ssh("echo started; sleep 600"),
        Duration::from_secs(3),
    )
    .expect_err("must time out");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    assert!(error.to_string().contains("started"), "{error}");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Starts `ssh … 'echo $$; exec sleep 600'` and returns the client and the remote pid.
fn remote_sleep(client: &Client) -> (std::process::Child, u32) {
    let mut child = client
        .ssh("echo $$; exec sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let pid = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid: {line:?}"));
    (child, pid)
}

#[test]
fn dropping_the_server_leaves_no_process_behind() {
    let sshd = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    let config_dir: PathBuf = sshd
        .config_file()
        .parent()
        .expect("config dir")
        .to_path_buf();
    let addr = sshd.addr();
    // The client's files (known hosts) must outlive its commands.
    let client = sshd.client();
    // A session whose client stays connected...
    let (mut connected, connected_sleep) = remote_sleep(&client);
    // ...and one whose client went away: without a terminal, its command runs on, orphaned.
    let (mut gone, orphan) = remote_sleep(&client);
    gone.kill().expect("kill ssh");
    gone.wait().expect("wait ssh");
    let parent = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    poll_until(TIMEOUT, "the session of the killed client to end", || {
        let ppid = parent(orphan)?;
        (!sshd.processes().contains(&ppid)).then_some(())
    });
    let processes = sshd.processes();
    assert!(processes.len() >= 4, "{processes:?}");
    assert!(processes.contains(&connected_sleep), "{processes:?}");
    assert!(processes.contains(&orphan), "{processes:?}");
    drop(sshd);

    poll_until(TIMEOUT, "the server's processes to go", || {
        (!processes.iter().any(|pid| alive(*pid))).then_some(())
    });
    // The connected client sees its connection close.
    poll_until(TIMEOUT, "the ssh client to exit", || {
        connected.try_wait().expect("try_wait")
    });
    assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
    assert!(!config_dir.exists(), "{} remains", config_dir.display());
}
