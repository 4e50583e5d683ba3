//! The PostgreSQL session driver as a whole — start-up, the driver's statement and portal
//! tables, the router, the identity/audit/policy/masking stack — against a scripted server,
//! for arbitrary sequences of client messages: pipelines, `Sync`/`Flush`/`Terminate`, COPY
//! in and out, `Close`/`Bind`/`Execute` of names that are not (or no longer) there, raw
//! frames. Each input runs as the unmasked executor or as the masked planner.
//!
//! Checks (invariants I4 and I8):
//! - nothing panics, and the gateway only ever sends well-formed backend messages;
//! - nothing that only a committed operation may send (a client's query, `Bind`, `Execute`, a
//!   function call) reaches the server before the operation's attempt record is in the audit
//!   log;
//! - the session is never wedged: every input that does not end with `Terminate` ends with
//!   `CopyFail`, `Sync`, `ROLLBACK` and a query the policy allows, which the gateway must
//!   answer (the scripted server marks its answer with a notice), unless it ended the session
//!   with a `FATAL` error; after `Terminate` the gateway closes the connection;
//! - once its client has gone, the session ends.
//!
//! Input bytes: the first selects the identity (bit 0: planner), then each message is an
//! opcode byte followed by its operand bytes (see `decode`); missing bytes read as zero.
//! Time is paused (tokio's test clock), so a wedge shows as the client's 60 s wait elapsing
//! at once rather than as a slow input.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sod_audit::{CheckpointKey, Event, MemorySink, RecordingLayer};
use sod_core::capability::{CapabilityAuthority, CapabilityKey, CapabilitySpec};
use sod_core::layer::{IdentityLayer, MaskingLayer, PolicyLayer};
use sod_core::masking::MaskProfiles;
use sod_core::policy::Policy;
use sod_core::{AgentRole, KindSet, OperationKind, PrincipalKind};
use sod_postgres::codec::{Target as Describe, frontend};
use sod_postgres::credentials::StaticCredentials;
use sod_postgres::fuzzing::session::{
    END_SQL, Forwarded, Observer, ScriptedServer, Transcript, client, serve_client,
};

const POLICY: &str = r#"
[[rule]]
id = "not-understood"
effect = "deny"
kinds = "unknown"

[[rule]]
id = "planner-reads-masked"
effect = "allow"
principal_kinds = "planner"
kinds = ["connect", "read"]
mask = "fuzz"

[[rule]]
id = "executor-all"
effect = "allow"
principal_kinds = "executor"
kinds = ["connect", "read", "write", "schema", "forward", "transfer", "exec", "admin"]
mask = "none"
"#;

const MASKS: &str = r#"
[[profile]]
name = "fuzz"
detectors = ["email"]
unknown = "redact"

[[profile.rule]]
column = "public.accounts.email"
strategy = "redact"
"#;

/// Statements the client sends, by index: reads (one of a masked column), writes, parameters,
/// transaction control, COPY both ways (one of masked data), several in one query, an empty
/// one, text that is not SQL, a search-path change.
const SQL: &[&str] = &[
    "SELECT id, balance FROM accounts",
    "SELECT email FROM accounts",
    "SELECT * FROM accounts",
    "SELECT id FROM accounts WHERE id = $1",
    "INSERT INTO accounts (id, email, balance) VALUES (1, 'a@example.com', 2)",
    "UPDATE accounts SET balance = balance + 1 WHERE id = $1",
    "DELETE FROM accounts WHERE id = 1",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "COPY accounts FROM STDIN",
    "COPY accounts TO STDOUT",
    "COPY (SELECT email FROM accounts) TO STDOUT",
    "SELECT 1; SELECT id FROM accounts",
    "",
    "SELEKT (((",
    "SET search_path = public",
    END_SQL,
];

/// Prepared-statement names: few, so references collide.
const STATEMENTS: &[&str] = &["", "s1", "s2"];
/// Portal names; `c1` is also a name SQL could declare a cursor under.
const PORTALS: &[&str] = &["", "p1", "c1"];

/// Most messages per input: each input stays a few milliseconds.
const MAX_MESSAGES: usize = 64;

/// What every input shares: the capability authority, the policy and masks, the scripted
/// server's socket.
struct Fixture {
    authority: Arc<CapabilityAuthority>,
    identity: IdentityLayer,
    policy: PolicyLayer<Policy>,
    masking: MaskingLayer,
    server: ScriptedServer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let authority = Arc::new(CapabilityAuthority::new(
            "sod",
            CapabilityKey::generate("fuzz"),
        ));
        Fixture {
            identity: IdentityLayer::new(authority.clone()),
            authority,
            policy: PolicyLayer::new(Policy::from_toml("fuzz", POLICY).expect("policy")),
            masking: MaskingLayer::new(MaskProfiles::from_toml("fuzz", MASKS).expect("masks")),
            server: ScriptedServer::bind().expect("scripted server socket"),
        }
    })
}

/// A capability for the planner (reads) or the executor (everything but unknown kinds),
/// issued per input: a fuzzing run may outlast any capability's lifetime.
fn token(fx: &Fixture, planner: bool) -> String {
    let (name, role, kinds) = if planner {
        (
            "planner",
            AgentRole::Planner,
            KindSet::of(&[OperationKind::Connect, OperationKind::Read]),
        )
    } else {
        let all: Vec<OperationKind> = OperationKind::ALL
            .into_iter()
            .filter(|k| *k != OperationKind::Unknown)
            .collect();
        ("executor", AgentRole::Executor, KindSet::of(&all))
    };
    fx.authority
        .issue(
            CapabilitySpec::new(name, Duration::from_secs(3600))
                .kind(PrincipalKind::Agent(role))
                .targets(["pg/*"])
                .kinds(kinds),
        )
        .expect("issue")
        .encode()
}

/// Reads operand bytes; zero once the input is used up.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.next() as usize % from.len()]
    }
    fn take(&mut self, max: u8) -> Vec<u8> {
        let n = self.next() % max;
        (0..n).map(|_| self.next()).collect()
    }
    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// The client's messages for an input (after start-up), and whether they end with
/// `Terminate`.
fn decode(data: &[u8]) -> (BytesMut, bool) {
    let mut b = Bytes(data.iter());
    let mut out = BytesMut::new();
    let mut count = 0;
    while !b.is_empty() && count < MAX_MESSAGES {
        count += 1;
        let o = &mut out;
        // Encoding only fails for NULs in names and text, which none of these have.
        let _ = match b.next() % 16 {
            0 => frontend::query(o, b.pick(SQL)),
            1 => {
                let name = b.pick(STATEMENTS);
                let sql = b.pick(SQL);
                let types: &[u32] = match b.next() % 3 {
                    0 => &[],
                    1 => &[23],
                    // Not a built-in type: refused at Parse.
                    _ => &[70000],
                };
                frontend::parse(o, name, sql, types)
            }
            2 => {
                let portal = b.pick(PORTALS);
                let statement = b.pick(STATEMENTS);
                let params: &[Option<&[u8]>] = match b.next() % 3 {
                    0 => &[],
                    1 => &[None],
                    _ => &[Some(b"1")],
                };
                let results: &[i16] = match b.next() % 3 {
                    0 => &[],
                    1 => &[0],
                    _ => &[1],
                };
                frontend::bind(o, portal, statement, &[], params, results)
            }
            3 => match b.next() % 2 {
                0 => frontend::describe(o, Describe::Statement, b.pick(STATEMENTS)),
                _ => frontend::describe(o, Describe::Portal, b.pick(PORTALS)),
            },
            4 => {
                let portal = b.pick(PORTALS);
                frontend::execute(o, portal, i32::from(b.next() % 3))
            }
            5 => match b.next() % 2 {
                0 => frontend::close(o, Describe::Statement, b.pick(STATEMENTS)),
                _ => frontend::close(o, Describe::Portal, b.pick(PORTALS)),
            },
            6 => {
                frontend::sync(o);
                Ok(())
            }
            7 => {
                frontend::flush(o);
                Ok(())
            }
            8 => {
                let n = usize::from(b.next() % 8);
                frontend::copy_data(o, &b"1\ta@example.com\t2\n"[..n.min(18)])
            }
            9 => {
                frontend::copy_done(o);
                Ok(())
            }
            10 => frontend::copy_fail(o, "client gave up"),
            11 => frontend::function_call(o, 1598, &[], &[], 0),
            12 => {
                frontend::terminate(o);
                return (out, true);
            }
            13 => {
                // A raw frame, well framed: any tag, any short body.
                let t = b.next();
                let body = b.take(32);
                o.extend_from_slice(&[t]);
                o.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
                o.extend_from_slice(&body);
                Ok(())
            }
            14 => {
                let text: String = String::from_utf8_lossy(&b.take(32)).replace('\0', " ");
                frontend::query(o, &text)
            }
            _ => {
                // A whole unnamed extended-protocol exchange.
                let sql = b.pick(SQL);
                frontend::parse(o, "", sql, &[])
                    .and_then(|()| frontend::bind(o, "", "", &[], &[Some(b"1")], &[]))
                    .and_then(|()| frontend::describe(o, Describe::Portal, ""))
                    .and_then(|()| frontend::execute(o, "", 0))
                    .map(|()| frontend::sync(o))
            }
        };
    }
    // End every copy-in, every failed pipeline, every transaction block, then ask something
    // the policy allows.
    let _ = frontend::copy_fail(&mut out, "end of input");
    frontend::sync(&mut out);
    let _ = frontend::query(&mut out, "ROLLBACK");
    let _ = frontend::query(&mut out, END_SQL);
    (out, false)
}

/// Counts what reached the server against the operations the audit log had committed then.
#[derive(Default)]
struct Ledger {
    /// Operations forwarded: client queries, `Execute`s, function calls.
    forwarded: usize,
    violations: Vec<String>,
}

/// Committed operations in the log: attempts that were allowed (not the session's Connect).
fn committed(sink: &MemorySink) -> usize {
    sink.events()
        .iter()
        .filter(|e| {
            matches!(e, Event::OperationAttempted { kind, decision, .. }
                if kind != "connect"
                    && matches!(decision.effect.as_str(), "allow" | "require_approval"))
        })
        .count()
}

fn run(data: &[u8]) -> (Transcript, bool, bool, Vec<String>) {
    let fx = fixture();
    let planner = data.first().is_some_and(|b| b & 1 == 1);
    let (messages, terminated) = decode(data.get(1..).unwrap_or_default());
    let sink = Arc::new(MemorySink::new("fuzz", CheckpointKey::generate("fuzz")));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let observer: Observer = {
        let sink = sink.clone();
        let ledger = ledger.clone();
        Arc::new(move |f: &Forwarded| {
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            // A Bind goes out with the Execute it belongs to, behind that Execute's commit.
            let needed = match f {
                Forwarded::Bind => l.forwarded + 1,
                _ => {
                    l.forwarded += 1;
                    l.forwarded
                }
            };
            let have = committed(&sink);
            if have < needed {
                l.violations.push(format!(
                    "{f:?} reached the server with {have} operation(s) committed, {needed} needed"
                ));
            }
        })
    };
    let stack = tower::ServiceBuilder::new()
        .layer(&fx.identity)
        .layer(RecordingLayer::new(sink.clone()))
        .layer(&fx.policy)
        .layer(&fx.masking);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let user = if planner { "planner" } else { "executor" };
    let token = token(fx, planner);
    let (transcript, ended) = rt.block_on(async {
        let (ours, theirs) = tokio::net::UnixStream::pair().expect("socket pair");
        let server = fx.server.serve(observer);
        let gateway = serve_client(
            stack,
            theirs,
            fx.server.config(),
            StaticCredentials::new("executor", None),
        );
        let client = client(ours, user, &token, &messages, Duration::from_secs(60));
        let session = async {
            tokio::pin!(gateway, client);
            let (t, ended) = tokio::select! {
                t = &mut client => (t, false),
                () = &mut gateway => (client.await, true),
            };
            // The client has gone (its end of the socket is closed): the session must end.
            let ended = ended
                || tokio::time::timeout(Duration::from_secs(600), gateway)
                    .await
                    .is_ok();
            (t, ended)
        };
        tokio::select! {
            r = server => panic!("the scripted server stopped: {r:?}"),
            t = session => t,
        }
    });
    drop(rt);
    // `SOD_FUZZ_DEBUG=1` shows what an input did (when reproducing one).
    if std::env::var_os("SOD_FUZZ_DEBUG").is_some() {
        let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!(
            "DEBUG forwarded={} committed={} tags={:?} errors={:?}",
            l.forwarded,
            committed(&sink),
            String::from_utf8_lossy(&transcript.tags),
            transcript.errors
        );
    }
    let violations =
        std::mem::take(&mut ledger.lock().unwrap_or_else(|p| p.into_inner()).violations);
    (transcript, ended, terminated, violations)
}

fuzz_target!(|data: &[u8]| {
    let (t, ended, terminated, violations) = run(data);
    assert!(
        ended,
        "the session did not end after its client left: {t:?}"
    );
    assert!(t.authenticated, "the client could not log in: {t:?}");
    assert!(
        violations.is_empty(),
        "forwarded before the audit record was committed: {violations:?}"
    );
    assert!(!t.undecodable, "the gateway sent an undecodable message");
    let fatal = t.errors.iter().any(|s| s == "FATAL");
    if terminated {
        assert!(t.closed, "the session did not end after Terminate: {t:?}");
    } else {
        assert!(
            t.answered_end() || (t.closed && fatal),
            "the session is wedged (its last query unanswered, the connection open) or ended without a FATAL error: {t:?}"
        );
    }
});
