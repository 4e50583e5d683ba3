//! `sod demo`: the whole idea in a minute.
//!
//! Starts an ephemeral PostgreSQL cluster (or uses `--upstream`), creates the demo schema
//! ([`SCHEMA`]) if it is missing, writes a complete `sod.toml` with the demo policy
//! ([`POLICY`]) and mask profile ([`MASKS`]) into a fresh directory, starts the gateway and the
//! approvals API from that file exactly as `sod gateway` would, and issues capabilities for
//! three identities:
//!
//! | identity | kind | may |
//! |---|---|---|
//! | `planner` | planner | read with email, phone, SSN and card number masked; write `orders` after one approval; over SSH, read-only commands and SFTP reads (masked, never a key or `.env`), everything else after one approval; nothing else |
//! | `executor` | executor | read and write unmasked; no schema changes; over SSH, anything, unmasked |
//! | `approver` | human, group `approvers` (an OIDC token from the demo's own identity provider) | approve or deny; read masked |
//!
//! For SSH, the demo also starts an SSH target — an ephemeral OpenSSH `sshd` on a loopback
//! port, running commands as the user who runs the demo in a demo home directory it seeds
//! ([`SSH_HOME_FILES`]) — and an SSH gateway in front of it. The tokens are the SSH passwords.
//!
//! For Kubernetes, it starts sod-testkit's test API server (a test server, not a cluster:
//! namespace `default` with Secrets `db-credentials` and `api-token`, ConfigMap `app-config`,
//! pods `web-1` and `web-2`) and a Kubernetes gateway in front of it (HTTPS, with a CA of its
//! own), and writes `planner.kubeconfig`, `executor.kubeconfig` and `approver.kubeconfig`: the
//! tokens are the kubeconfigs' bearer tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sod_core::capability::{CapabilityAuthority, CapabilitySpec};
use sod_core::{AgentRole, BoxError, KindSet, OperationKind, PrincipalKind};
use sod_testkit::EphemeralPostgres;
use sod_testkit::k8s::TestApiServer;
use sod_testkit::oidc::OidcIssuer;
use sod_testkit::ssh::Sshd;

use crate::assemble;
use crate::config::Config;
use crate::keys;

/// The demo schema: `customers` (200 rows) and `orders` (600 rows).
pub const SCHEMA: &str = include_str!("../demo/schema.sql");
/// The demo policy.
pub const POLICY: &str = include_str!("../demo/policy.toml");
/// The demo mask profile.
pub const MASKS: &str = include_str!("../demo/masks.toml");
/// The target name of the demo gateway.
pub const TARGET: &str = "pg/demo";
/// The target name of the demo's SSH target.
pub const SSH_TARGET: &str = "ssh/demo";
/// The target name of the demo's Kubernetes API.
pub const K8S_TARGET: &str = "k8s/demo";
/// What the demo puts in the SSH target's home directory: a few plain files, one holding
/// e-mail addresses and a card number, a (fake) private key and an `.env`.
pub const SSH_HOME_FILES: &[(&str, &str)] = &[
    (
        "README.txt",
        "The demo's SSH target. Try ls, cat, grep, wc, find.\n",
    ),
    (
        "notes.txt",
        "deploy on friday\nrollback: git revert, then redeploy\nowner: platform team\n",
    ),
    (
        "customers.csv",
        "id,name,email,card\n1,Alice,alice@example.com,4539 1488 0343 6467\n2,Bob,bob@example.org,5555 5555 5555 4444\n3,Carol,carol@example.net,none\n",
    ),
    (
        "deploy.key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBkZW1vZGVtb2RlbW9kZW1vZGVtb2RlbW9kZW1vZGVtb2RlbW8AAAAAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ),
    (
        "app.env",
        "DATABASE_URL=postgres://app:s3cr3t@db.internal/app\n",
    ),
    (
        "logs/app.log",
        "12:00 started\n12:05 order 42 refunded\n12:09 stopped\n",
    ),
];
/// The demo identity provider's issuer (`iss`).
pub const IDP_ISSUER: &str = "https://idp.sod-demo.invalid";
/// The audience of the demo's OIDC tokens.
pub const IDP_AUDIENCE: &str = "sod";
/// How long the demo's tokens live.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// `sod demo`'s options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// An existing server (`postgres://user:password@host:port/database`) instead of an
    /// ephemeral cluster.
    pub upstream: Option<String>,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where to write the three tokens (JSON), besides the demo directory.
    pub tokens_out: Option<PathBuf>,
    /// The audit log directory (default: in the demo directory).
    pub audit_dir: Option<PathBuf>,
    /// Where the approvals API listens.
    pub approvals_listen: SocketAddr,
    /// How long a statement waits for approval.
    pub approval_wait: Duration,
    /// Where the SSH gateway listens.
    pub ssh_listen: SocketAddr,
    /// The SSH target's working directory (default: in the demo directory). Seeded with
    /// [`SSH_HOME_FILES`] that are missing.
    pub ssh_home: Option<PathBuf>,
    /// The known_hosts file the demo adds its SSH gateway's host key to, so that a plain
    /// `ssh -p PORT planner@127.0.0.1` trusts it (default `~/.ssh/known_hosts`); `None` to
    /// leave every known_hosts file alone.
    pub ssh_known_hosts: Option<PathBuf>,
    /// Where the Kubernetes gateway listens.
    pub k8s_listen: SocketAddr,
    /// Where to write `planner.kubeconfig`, `executor.kubeconfig` and `approver.kubeconfig`
    /// (default: the demo directory).
    pub kubeconfig_dir: Option<PathBuf>,
}

/// What [`prepare`] set up.
pub struct Demo {
    /// The SSH target (stopped on drop).
    _sshd: Sshd,
    /// The test API server (stopped on drop).
    _k8s: TestApiServer,
    /// The cluster, when the demo started one (stopped on drop).
    _cluster: Option<EphemeralPostgres>,
    /// The demo directory (removed on drop).
    dir: tempfile::TempDir,
    /// The config the demo runs.
    pub config: Config,
    /// The database clients name.
    pub database: String,
    /// planner, executor, approver.
    pub tokens: [(String, String); 3],
    /// Where the audit log is.
    pub audit_dir: PathBuf,
    /// The SSH target's working directory.
    pub ssh_home: PathBuf,
    /// The known_hosts file that trusts the SSH gateway (the demo's own, or the one it added
    /// the key to).
    pub ssh_known_hosts: PathBuf,
    /// What the demo did about known_hosts, for the walkthrough.
    pub known_hosts_note: String,
    /// Where the three kubeconfigs are.
    pub kubeconfig_dir: PathBuf,
}

impl Demo {
    /// The demo directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

struct Upstream {
    host: String,
    port: u16,
    database: String,
    user: String,
    password: Option<String>,
}

/// Starts (or connects to) the database, seeds it and writes the demo directory. `progress`
/// hears what is happening.
pub async fn prepare(options: &DemoOptions, progress: &dyn Fn(&str)) -> Result<Demo, BoxError> {
    let (cluster, upstream) = match &options.upstream {
        None => {
            progress("starting an ephemeral PostgreSQL cluster (initdb, pg_ctl)…");
            let pg = tokio::task::spawn_blocking(EphemeralPostgres::start)
                .await?
                .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
            let upstream = Upstream {
                host: pg.host().to_owned(),
                port: pg.port(),
                database: pg.database().to_owned(),
                user: sod_testkit::pg::EXECUTOR.to_owned(),
                password: Some(pg.executor_password().to_owned()),
            };
            (Some(pg), upstream)
        }
        Some(url) => (None, parse_upstream(url)?),
    };
    progress(&format!(
        "creating the demo schema in {}:{}/{} if missing…",
        upstream.host, upstream.port, upstream.database
    ));
    seed(&upstream).await?;

    let dir = tempfile::Builder::new().prefix("sod-demo-").tempdir()?;
    let d = dir.path();
    let ssh_home = match &options.ssh_home {
        Some(home) => std::path::absolute(home)?,
        None => d.join("ssh-home"),
    };
    seed_ssh_home(&ssh_home)?;
    progress("starting the SSH target (an ephemeral sshd)…");
    let sshd = {
        let home = ssh_home.clone();
        tokio::task::spawn_blocking(move || Sshd::builder().working_dir(home).start())
            .await?
            .map_err(|e| format!("cannot start the SSH target: {e}"))?
    };
    keys::write_private(
        &d.join("ssh-target.key"),
        sshd.client_private_key_openssh(),
        false,
    )?;
    std::fs::write(
        d.join("ssh-target-known-hosts"),
        sshd.known_hosts_line() + "\n",
    )?;
    let host_key = demo_host_key(d)?;
    std::fs::write(
        d.join("ssh-gateway-known-hosts"),
        host_key.known_hosts_line(
            &options.ssh_listen.ip().to_string(),
            options.ssh_listen.port(),
        ) + "\n",
    )?;
    let (ssh_known_hosts, known_hosts_note) =
        trust_gateway(options, &host_key, &d.join("ssh-gateway-known-hosts"))?;
    progress("starting the test Kubernetes API server…");
    let k8s = TestApiServer::start()
        .await
        .map_err(|e| format!("cannot start the test API server: {e}"))?;
    keys::write_private(
        &d.join("k8s-upstream.kubeconfig"),
        &k8s.kubeconfig_yaml(),
        false,
    )?;
    let k8s_ca = write_k8s_tls(d, options.k8s_listen)?;
    std::fs::write(d.join("policy.toml"), POLICY)?;
    std::fs::write(d.join("masks.toml"), MASKS)?;
    keys::generate(&d.join("capability.key"))?;
    // The demo plays the humans' identity provider too: approvers sign in with OIDC (the
    // approvals API takes no capabilities), so it writes the issuer's keys as a JWKS file.
    let idp = OidcIssuer::new(IDP_ISSUER, IDP_AUDIENCE);
    std::fs::write(d.join("idp-jwks.json"), idp.jwks().to_string())?;
    keys::generate_checkpoint_key(&d.join("audit.key"), "demo-audit")?;
    let password_line = match &upstream.password {
        Some(password) => {
            keys::write_private(&d.join("upstream-password"), password, false)?;
            "password_file = \"upstream-password\"\n"
        }
        None => "",
    };
    let audit_dir = match &options.audit_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => d.join("audit"),
    };
    let toml = format!(
        r#"# Written by `sod demo`: the configuration this demo gateway runs.

[log]
format = "human"

[identity.capabilities]
issuer = "sod-demo"
key_file = "capability.key"
revocation_file = "revoked-capabilities"   # `sod token revoke --config sod.toml <capability>`

[[identity.oidc]]
issuer = "{IDP_ISSUER}"
audiences = ["{IDP_AUDIENCE}"]
jwks_file = "idp-jwks.json"

[policy]
file = "policy.toml"
masks = "masks.toml"

[audit]
dir = {audit}
stream = "demo"
key_file = "audit.key"
key_id = "demo-audit"
checkpoint_every = 20

[approvals]
wait = "{wait}s"

[approvals.http]
listen = "{approvals}"

[[ssh]]
listen = "{ssh_listen}"
host_key = "ssh-host.key"

[[ssh.target]]
name = "{SSH_TARGET}"
host = "127.0.0.1"
port = {ssh_port}
user = {ssh_user}
key_file = "ssh-target.key"
known_hosts = "ssh-target-known-hosts"
working_dir = {ssh_home}
home = {ssh_user_home}

[[kubernetes]]
target = "{K8S_TARGET}"
listen = "{k8s_listen}"
tls_cert = "k8s-gateway.crt"
tls_key = "k8s-gateway.key"
kubeconfig = "k8s-upstream.kubeconfig"

[[postgres]]
target = "{TARGET}"
listen = "{listen}"

[postgres.upstream]
host = {host}
port = {port}
database = {database}
user = {user}
{password_line}"#,
        audit = toml_string(&audit_dir.display().to_string()),
        wait = options.approval_wait.as_secs(),
        approvals = options.approvals_listen,
        listen = options.listen,
        host = toml_string(&upstream.host),
        port = upstream.port,
        database = toml_string(&upstream.database),
        user = toml_string(&upstream.user),
        ssh_listen = options.ssh_listen,
        ssh_port = sshd.port(),
        ssh_user = toml_string(sshd.user()),
        ssh_home = toml_string(&ssh_home.display().to_string()),
        ssh_user_home = toml_string(&sshd.home().display().to_string()),
        k8s_listen = options.k8s_listen,
    );
    std::fs::write(d.join("sod.toml"), toml)?;
    std::fs::write(
        d.join("revoked-capabilities"),
        "# Revoked capability ids, one per line: `sod token revoke --config sod.toml <capability>`\n",
    )?;
    let config = Config::load(d.join("sod.toml"))?;

    let authority = assemble::authority(&config)?.ok_or("the demo config has capabilities")?;
    let tokens = issue_tokens(&authority, &idp)?;
    let json = serde_json::to_string_pretty(&json!({
        "planner": tokens[0].1,
        "executor": tokens[1].1,
        "approver": tokens[2].1,
    }))? + "\n";
    keys::write_private(&d.join("tokens.json"), &json, false)?;
    if let Some(out) = &options.tokens_out {
        keys::write_private(out, &json, true)?;
    }
    let kubeconfig_dir = match &options.kubeconfig_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => d.to_owned(),
    };
    std::fs::create_dir_all(&kubeconfig_dir)?;
    for (name, token) in &tokens {
        keys::write_private(
            &kubeconfig_dir.join(format!("{name}.kubeconfig")),
            &kubeconfig(name, options.k8s_listen, &k8s_ca, token),
            true,
        )?;
    }
    Ok(Demo {
        _sshd: sshd,
        _k8s: k8s,
        kubeconfig_dir,
        _cluster: cluster,
        dir,
        config,
        database: upstream.database,
        tokens,
        audit_dir,
        ssh_home,
        ssh_known_hosts,
        known_hosts_note,
    })
}

/// Writes the Kubernetes gateway's certificate and key, issued by a CA of the demo's own for
/// `localhost` and the listening address; returns the CA certificate (PEM) for kubeconfigs.
fn write_k8s_tls(dir: &Path, listen: SocketAddr) -> Result<String, BoxError> {
    let ca = sod_testkit::TestCa::new("sod demo Kubernetes gateway CA");
    let mut ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    let leaf = ca.issue(&["localhost"], &ips);
    std::fs::write(dir.join("k8s-ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("k8s-gateway.crt"), leaf.cert_pem())?;
    keys::write_private(&dir.join("k8s-gateway.key"), leaf.key_pem(), false)?;
    Ok(ca.cert_pem().to_owned())
}

/// A kubeconfig for `user` with `token`, for the gateway at `listen` (a loopback address when
/// it listens on all).
pub fn kubeconfig(user: &str, listen: SocketAddr, ca_pem: &str, token: &str) -> String {
    use base64::Engine as _;
    let host = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    let server = SocketAddr::new(host, listen.port());
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        r#"# Written by `sod demo`: {user}'s access to the demo's Kubernetes gateway.
apiVersion: v1
kind: Config
clusters:
- name: sod-demo
  cluster:
    server: https://{server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}@sod-demo
  context:
    cluster: sod-demo
    user: {user}
    namespace: default
current-context: {user}@sod-demo
"#
    )
}

/// Writes the files of [`SSH_HOME_FILES`] that are missing in `home`.
fn seed_ssh_home(home: &Path) -> Result<(), BoxError> {
    for (name, text) in SSH_HOME_FILES {
        let path = home.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !path.exists() {
            std::fs::write(&path, text)?;
        }
    }
    Ok(())
}

/// The SSH gateway's host key: kept across demo runs (in the user's state directory), so a
/// known_hosts entry made by one run still holds for the next; written into the demo
/// directory for the config.
fn demo_host_key(dir: &Path) -> Result<sod_ssh::HostKey, BoxError> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("sod"));
    let kept = state.as_ref().map(|d| d.join("demo-ssh-host.key"));
    let key = match kept.as_ref().filter(|k| k.exists()) {
        Some(path) => sod_ssh::HostKey::from_file(path)?,
        None => {
            let key = sod_ssh::HostKey::generate()?;
            if let (Some(dir), Some(path)) = (&state, &kept)
                && std::fs::create_dir_all(dir).is_ok()
            {
                let _ = key.write(path);
            }
            key
        }
    };
    key.write(dir.join("ssh-host.key"))?;
    Ok(key)
}

/// Makes `ssh -p PORT planner@HOST` trust the gateway: adds its host key to the known_hosts
/// file the options name (`~/.ssh/known_hosts` by default) unless it is there, replacing a
/// stale entry for the same address. Returns the file that trusts it and a sentence saying
/// what was done.
fn trust_gateway(
    options: &DemoOptions,
    key: &sod_ssh::HostKey,
    own: &Path,
) -> Result<(PathBuf, String), BoxError> {
    let Some(file) = options.ssh_known_hosts.clone() else {
        return Ok((
            own.to_owned(),
            format!(
                "the gateway's host key is in {} (pass it as UserKnownHostsFile)",
                own.display()
            ),
        ));
    };
    let (host, port) = (
        options.ssh_listen.ip().to_string(),
        options.ssh_listen.port(),
    );
    let line = key.known_hosts_line(&host, port);
    let name = line.split(' ').next().unwrap_or_default().to_owned();
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    if current.lines().any(|l| l.trim() == line) {
        return Ok((
            file.clone(),
            format!("{} already trusts the gateway", file.display()),
        ));
    }
    // Entries for the same address with another key (an older demo): replaced.
    let kept: Vec<&str> = current
        .lines()
        .filter(|l| l.split(' ').next() != Some(name.as_str()))
        .collect();
    let replaced = kept.len() != current.lines().count();
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&file, text)?;
    let what = if replaced {
        "replaced the entry for"
    } else {
        "added"
    };
    Ok((
        file.clone(),
        format!(
            "{what} the gateway's host key ({name}) in {}",
            file.display()
        ),
    ))
}

fn issue_tokens(
    authority: &CapabilityAuthority,
    idp: &OidcIssuer,
) -> Result<[(String, String); 3], BoxError> {
    use OperationKind::{Admin, Connect, Exec, Forward, Read, Schema, Transfer, Write};
    let issue = |name: &str, kind: PrincipalKind, groups: &[&str], kinds: &[OperationKind]| {
        authority
            .issue(
                CapabilitySpec::new(name, TOKEN_TTL)
                    .kind(kind)
                    .groups(groups.iter().copied())
                    .targets([TARGET, SSH_TARGET, K8S_TARGET])
                    .kinds(KindSet::of(kinds)),
            )
            .map(|t| (name.to_owned(), t.encode()))
    };
    Ok([
        // The capability lets the planner *ask* for schema changes, commands and tunnels, so
        // that the policy's rules are what refuse them (and the demo shows them by name).
        issue(
            "planner",
            PrincipalKind::Agent(AgentRole::Planner),
            &[],
            &[Connect, Read, Write, Schema, Exec, Transfer, Admin, Forward],
        )?,
        issue(
            "executor",
            PrincipalKind::Agent(AgentRole::Executor),
            &[],
            &[Connect, Read, Write, Exec, Transfer, Admin],
        )?,
        (
            "approver".to_owned(),
            idp.token()
                .kid("ed-1")
                .subject("approver")
                .kind("human")
                .groups(&["approvers"])
                .expires_in(TOKEN_TTL.as_secs().try_into().unwrap_or(i64::MAX))
                .sign(),
        ),
    ])
}

/// The walkthrough printed once the demo is up.
pub fn walkthrough(demo: &Demo, running: &assemble::Running, sod: &str) -> String {
    let (_, gw) = running.postgres[0];
    let ssh = running.ssh[0];
    // Without an entry in the user's known_hosts, the commands name the demo's own file.
    let ssh_opts = if demo.ssh_known_hosts.starts_with(demo.dir()) {
        format!(" -o UserKnownHostsFile={}", demo.ssh_known_hosts.display())
    } else {
        String::new()
    };
    let approvals = running
        .approvals
        .map_or_else(String::new, |a| format!("http://{a}"));
    let token = |i: usize| demo.tokens[i].1.as_str();
    let conn = format!(
        "host={} port={} dbname={} user=planner",
        gw.ip(),
        gw.port(),
        demo.database
    );
    let d = demo.dir().display();
    let audit = demo.audit_dir.display();
    format!(
        r#"
sod demo is up.

  gateway     {gw}  (target {TARGET}, database {db})
  ssh         {ssh}  (target {SSH_TARGET}, home {ssh_home})
  kubernetes  https://{k8s}  (target {K8S_TARGET}, kubeconfigs in {kdir})
  approvals   {approvals}
  config      {d}/sod.toml  (policy.toml and masks.toml next to it)
  tokens      {d}/tokens.json
  audit log   {audit}

Three identities (two agent capabilities, one human's OIDC token), each usable as the psql password:

  export PLANNER='{planner}'
  export EXECUTOR='{executor}'
  export APPROVER='{approver}'

As the planner — personal data comes back masked:

  PGPASSWORD=$PLANNER psql "{conn}" -c "SELECT id, name, email, phone, ssn, card_number FROM customers ORDER BY id LIMIT 5"

Schema changes are refused, naming the rule:

  PGPASSWORD=$PLANNER psql "{conn}" -c "DROP TABLE orders"

A write to orders waits for someone else's approval ({wait} s, then the error names the approval id):

  PGPASSWORD=$PLANNER psql "{conn}" -c "UPDATE orders SET status = 'refunded' WHERE id = 42"

In another terminal, the approver decides:

  {sod} approvals list --url {approvals} --token "$APPROVER"
  {sod} approvals approve <id> --url {approvals} --token "$APPROVER" --comment "refund agreed"

The waiting statement then runs (or run it again: an approved statement runs at once).
The executor sees everything unmasked:

  PGPASSWORD=$EXECUTOR psql "host={host} port={port} dbname={db} user=executor" -c "SELECT email, ssn FROM customers LIMIT 3"

Over SSH, the tokens are the passwords ({known_hosts_note}). The planner runs
read-only commands, output masked:

  sshpass -p "$PLANNER" ssh{ssh_opts} -p {ssh_port} planner@{ssh_host} 'ls -l'
  sshpass -p "$PLANNER" ssh{ssh_opts} -p {ssh_port} planner@{ssh_host} 'cat customers.csv | head -3'

never reads a key or an .env, by any program or spelling (refused, naming the rule):

  sshpass -p "$PLANNER" ssh{ssh_opts} -p {ssh_port} planner@{ssh_host} 'tail -c 40 ./deploy.key'

and waits for the approver for anything that writes or runs code ({wait} s, then exit status 75
and the approval id; run it again once approved):

  sshpass -p "$PLANNER" ssh{ssh_opts} -p {ssh_port} planner@{ssh_host} 'echo checked >> notes.txt'

SFTP and scp work as usual (reads masked, writes after approval), and the executor sees it all:

  sshpass -p "$PLANNER" scp{scp_opts} -P {ssh_port} planner@{ssh_host}:customers.csv /tmp/customers.csv
  sshpass -p "$EXECUTOR" ssh{ssh_opts} -p {ssh_port} executor@{ssh_host} 'cat customers.csv'

Kubernetes: kubectl as it is, through the gateway at https://{k8s} (a test API server behind it),
with one kubeconfig per identity in {kdir}. The planner reads everything in `default`, Secret
values masked:

  export KUBECONFIG={kdir}/planner.kubeconfig
  kubectl get pods
  kubectl get secret db-credentials -o jsonpath='{{.data.password}}' | base64 -d; echo

other namespaces and RBAC are refused, naming the rule, and a change waits for the approver:

  kubectl get pods -n kube-system
  kubectl delete pod web-2

The executor sees Secrets as they are; its `kubectl exec` waits for approval:

  KUBECONFIG={kdir}/executor.kubeconfig kubectl get secret db-credentials -o jsonpath='{{.data.password}}' | base64 -d; echo

A capability stops working before it expires when it is revoked: open sessions end, new ones
are refused, within a second or two (the planner token stays revoked for the rest of the demo):

  {sod} token revoke --config {d}/sod.toml "$PLANNER"

Every attempt is in the hash-chained audit log:

  {sod} audit replay {audit}
  {sod} audit verify {audit} --key {d}/audit.key.pub

Ctrl-C stops the demo (the directory above is removed, unless you gave --audit-dir).
"#,
        db = demo.database,
        planner = token(0),
        executor = token(1),
        approver = token(2),
        wait = demo
            .config
            .file
            .approvals
            .wait
            .unwrap_or(assemble::DEFAULT_APPROVAL_WAIT)
            .as_secs(),
        host = gw.ip(),
        port = gw.port(),
        known_hosts_note = demo.known_hosts_note,
        ssh_home = demo.ssh_home.display(),
        ssh_opts = ssh_opts,
        scp_opts = ssh_opts,
        ssh_host = ssh.ip(),
        ssh_port = ssh.port(),
        k8s = running
            .kubernetes
            .first()
            .map_or_else(String::new, ToString::to_string),
        kdir = demo.kubeconfig_dir.display(),
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn parse_upstream(url: &str) -> Result<Upstream, BoxError> {
    let bad = |why: &str| format!("--upstream {url:?}: {why}");
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| bad(&format!("not a PostgreSQL URL: {e}")))?;
    let host = match config.get_hosts() {
        [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
        [] => "127.0.0.1".to_owned(),
        _ => return Err(bad("name one TCP host").into()),
    };
    let port = match config.get_ports() {
        [] => 5432,
        [port] => *port,
        _ => return Err(bad("name one port").into()),
    };
    let user = config
        .get_user()
        .ok_or_else(|| bad("name the user (postgres://user:password@host/db)"))?
        .to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    let password = config
        .get_password()
        .map(|p| String::from_utf8(p.to_vec()))
        .transpose()
        .map_err(|_| bad("the password is not UTF-8"))?;
    Ok(Upstream {
        host,
        port,
        database,
        user,
        password,
    })
}

async fn seed(upstream: &Upstream) -> Result<(), BoxError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&upstream.host)
        .port(upstream.port)
        .dbname(&upstream.database)
        .user(&upstream.user)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &upstream.password {
        config.password(p);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", upstream.host, upstream.port))?;
    let conn = tokio::spawn(connection);
    client
        .batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("cannot create the demo schema: {e}"))?;
    drop(client);
    let _ = conn.await;
    Ok(())
}
