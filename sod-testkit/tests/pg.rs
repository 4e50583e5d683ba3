//! The ephemeral PostgreSQL cluster, exercised with the real `psql` client.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sod_testkit::{EphemeralPostgres, UserAuth, poll_until};

/// Runs the real `psql` from the cluster's binaries with `conninfo`, nothing from the environment.
fn psql(pg: &EphemeralPostgres, conninfo: &str, sql: &str) -> Output {
    let mut command = Command::new(pg.bin_dir().join("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command
        .args([
            "-X",
            "-w",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
            "-d",
            conninfo,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

#[test]
fn executor_connects_over_tcp_with_scram() {
    let pg = EphemeralPostgres::start().expect("start cluster");
    assert_eq!(pg.host(), "127.0.0.1");
    assert_eq!(pg.database(), "sod");
    assert!(pg.ca().is_none());
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );

    let out = psql(
        &pg,
        &pg.conninfo("executor"),
        "select current_user, current_database()",
    );
    assert_eq!(stdout(&out), "executor|sod");

    // The URL form works too.
    let out = psql(&pg, &pg.url("executor"), "select current_user");
    assert_eq!(stdout(&out), "executor");

    // The executor owns the database and its password is stored as SCRAM.
    let owner = pg
        .psql("select pg_get_userbyid(datdba) from pg_database where datname = 'sod'")
        .expect("psql");
    assert_eq!(owner.trim(), "executor");
    let stored = pg
        .psql("select left(rolpassword, 14) from pg_authid where rolname = 'executor'")
        .expect("psql");
    assert_eq!(stored.trim(), "SCRAM-SHA-256$");

    // The server really is listening on 127.0.0.1 only, and the method is scram-sha-256.
    let hba = pg
        .psql("select auth_method from pg_hba_file_rules where address = '127.0.0.1' and 'all' = any(user_name)")
        .expect("psql");
    assert_eq!(hba.trim(), "scram-sha-256");
    assert_eq!(
        pg.psql("show listen_addresses").expect("psql").trim(),
        "127.0.0.1"
    );
    assert_eq!(pg.psql("show fsync").expect("psql").trim(), "off");
    assert_eq!(
        pg.psql_as("executor", "select current_user")
            .expect("psql_as")
            .trim(),
        "executor"
    );
    assert!(
        pg.log()
            .contains("database system is ready to accept connections")
    );
}

#[test]
fn wrong_password_is_rejected() {
    let pg = EphemeralPostgres::start().expect("start cluster");
    let conninfo = format!(
        "host={} port={} dbname=sod user=executor password=wrong",
        pg.host(),
        pg.port()
    );
    let out = psql(&pg, &conninfo, "select 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );

    // No password at all is rejected too (scram, not trust).
    let conninfo = format!(
        "host={} port={} dbname=sod user=executor",
        pg.host(),
        pg.port()
    );
    let out = psql(&pg, &format!("{conninfo} password=''"), "select 1");
    assert!(!out.status.success());

    // psql() reports stderr on failure.
    let err = pg
        .psql("select * from no_such_table")
        .expect_err("must fail");
    assert!(err.to_string().contains("no_such_table"), "{err}");
}

#[test]
fn md5_scram_and_trust_users() {
    let pg = EphemeralPostgres::builder()
        .user("mallory", UserAuth::Md5("md5-secret".into()))
        .user("scrammy", UserAuth::Scram("it's a secret".into()))
        .user("trusty", UserAuth::Trust)
        .setting("max_connections", "42")
        .start()
        .expect("start cluster");

    assert_eq!(pg.password("mallory"), Some("md5-secret"));
    assert_eq!(pg.password("trusty"), None);
    assert_eq!(pg.password("nobody"), None);
    assert_eq!(pg.password("postgres"), Some(pg.superuser_password()));
    assert_eq!(pg.password("executor"), Some(pg.executor_password()));
    assert_eq!(
        pg.url("trusty"),
        format!("postgres://trusty@127.0.0.1:{}/sod", pg.port())
    );
    assert_eq!(
        pg.url("scrammy"),
        format!(
            "postgres://scrammy:it%27s%20a%20secret@127.0.0.1:{}/sod",
            pg.port()
        )
    );

    for user in ["mallory", "scrammy", "trusty"] {
        let out = psql(&pg, &pg.conninfo(user), "select current_user");
        assert_eq!(stdout(&out), user);
    }
    let out = psql(&pg, &pg.url("scrammy"), "select current_user");
    assert_eq!(stdout(&out), "scrammy");

    let stored = pg
        .psql(
            "select rolname || '=' || coalesce(left(rolpassword, 3), 'null') from pg_authid \
             where rolname in ('mallory', 'scrammy', 'trusty') order by rolname",
        )
        .expect("psql");
    assert_eq!(stored.trim(), "mallory=md5\nscrammy=SCR\ntrusty=null");

    // The md5 user authenticates with md5: a wrong password fails.
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=sod user=mallory password=nope",
        pg.port()
    );
    assert!(!psql(&pg, &conninfo, "select 1").status.success());

    assert_eq!(pg.psql("show max_connections").expect("psql").trim(), "42");
}

#[test]
fn tls_cluster_verifies_with_the_ca() {
    let pg = EphemeralPostgres::builder()
        .tls(true)
        .start()
        .expect("start cluster");
    let ca = pg.ca().expect("TLS on");
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let conninfo = pg.conninfo("executor");
    assert!(conninfo.contains("sslmode=verify-full"), "{conninfo}");
    let out = psql(
        &pg,
        &conninfo,
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert_eq!(stdout(&out), "t");

    // Verification really happens: another CA is rejected.
    let other = sod_testkit::TestCa::new("someone else");
    let dir = tempfile::tempdir().expect("tempdir");
    let other_file = dir.path().join("other.pem");
    other.write_pem(&other_file).expect("write pem");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=sod user=executor password={} sslmode=verify-full sslrootcert={}",
        pg.port(),
        pg.executor_password(),
        other_file.display()
    );
    let out = psql(&pg, &conninfo, "select 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate verify failed"), "{stderr}");

    // And the host name is checked: the certificate also names localhost.
    let conninfo = format!(
        "host=localhost port={} dbname=sod user=executor password={} sslmode=verify-full sslrootcert={}",
        pg.port(),
        pg.executor_password(),
        pg.ca_file().expect("ca file").display()
    );
    let out = psql(&pg, &conninfo, "select current_user");
    assert_eq!(stdout(&out), "executor");
}

#[test]
fn drop_stops_the_server_and_removes_the_directory() {
    let pg = EphemeralPostgres::start().expect("start cluster");
    let port = pg.port();
    let dir: PathBuf = pg.data_dir().parent().expect("temp dir").to_path_buf();
    assert!(accepts_connections(port));
    assert!(dir.exists());
    drop(pg);
    poll_until(Duration::from_secs(10), "the port to close", || {
        (!accepts_connections(port)).then_some(())
    });
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn a_cluster_in_a_panicking_thread_is_cleaned_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let pg = EphemeralPostgres::start().expect("start cluster");
        let dir = pg.data_dir().parent().expect("temp dir").to_path_buf();
        tx.send((pg.port(), dir)).expect("send");
        panic!("deliberate panic with a running cluster");
    })
    .join();
    assert!(result.is_err(), "the thread panicked");
    let (port, dir) = rx.recv().expect("cluster details");
    poll_until(Duration::from_secs(10), "the port to close", || {
        (!accepts_connections(port)).then_some(())
    });
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn fixture_users_cannot_be_redefined() {
    let err = EphemeralPostgres::builder()
        .user("executor", UserAuth::Trust)
        .start()
        .expect_err("must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn start_errors_carry_the_server_log() {
    // An invalid setting makes the server refuse to start; the error must say why.
    let err = EphemeralPostgres::builder()
        .setting("shared_buffers", "not-a-size")
        .start()
        .expect_err("must fail");
    let message = err.to_string();
    assert!(message.contains("pg_ctl start failed"), "{message}");
    assert!(message.contains("shared_buffers"), "{message}");
}

#[test]
fn fixtures_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EphemeralPostgres>();
    assert_send_sync::<sod_testkit::TestCa>();
    assert_send_sync::<sod_testkit::OidcIssuer>();
    assert_send_sync::<sod_testkit::JwksServer>();
}
