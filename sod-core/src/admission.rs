//! Who gets a connection: bounds on clients that have not authenticated yet and on sessions.
//!
//! A socket that has not finished start-up costs a task and a file descriptor but proves
//! nothing, so it must never hold what authenticated clients need. A connection therefore
//! takes a *start-up slot* at accept — at most [`Limits::startup`] in all and
//! [`Limits::startup_per_peer`] from one address — held until the client has authenticated
//! (or the start-up timeout ends it), and only then a *session slot*: at most
//! [`Limits::sessions`] in all and [`Limits::sessions_per_principal`] for one identity. Idle
//! sockets from one address can then lock out only that address, and only for the start-up
//! timeout; no identity can take every session.
//!
//! Every refusal carries a sentence saying which bound it met; protocols render it natively
//! (PostgreSQL: SQLSTATE 53300, `too_many_connections`; SSH: a disconnect with the sentence).
//!
//! ```
//! use sod_core::admission::{Admission, Limits, PeerKey};
//!
//! let admission = Admission::new(Limits { startup_per_peer: 1, ..Limits::default() });
//! let peer = PeerKey::Ip("127.0.0.1".parse()?);
//! let slot = admission.startup(peer.clone()).expect("a start-up slot");
//! assert!(admission.startup(peer.clone()).is_err(), "one per address");
//! drop(slot); // authenticated: the start-up slot goes back, a session slot is taken
//! let session = admission.session("planner").expect("a session slot");
//! # drop(session);
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// A connection refused by a bound: its sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TooManyConnections(pub String);

/// The bounds (a gateway builder sets them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (authenticated connections) in all.
    pub sessions: usize,
    /// Sessions of one identity.
    pub sessions_per_principal: usize,
    /// Connections that have not authenticated yet, in all.
    pub startup: usize,
    /// Connections that have not authenticated yet, from one address.
    pub startup_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sessions: 100,
            sessions_per_principal: 50,
            startup: 128,
            startup_per_peer: 32,
        }
    }
}

/// Where a connection comes from, for the per-peer bound: an IP address, or the Unix socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A TCP client's address.
    Ip(IpAddr),
    /// A client on a Unix socket.
    Unix,
}

/// Counts by key, shared by the slots that hold them.
type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// Admission for one gateway.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    /// Connections in start-up (with their per-peer counts).
    startup: Counts<PeerKey>,
    startup_total: Arc<Mutex<usize>>,
    /// Sessions (with their per-principal counts).
    sessions: Counts<String>,
    sessions_total: Arc<Mutex<usize>>,
}

/// Held while a connection is in start-up.
#[derive(Debug)]
pub struct StartupSlot {
    peer: PeerKey,
    counts: Counts<PeerKey>,
    total: Arc<Mutex<usize>>,
}

/// Held for a session's life.
#[derive(Debug)]
pub struct SessionSlot {
    principal: String,
    counts: Counts<String>,
    total: Arc<Mutex<usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes one of `limit` places in `total` and one of `per_key` places for `key` in `counts`;
/// `Err(true)` if the total is full, `Err(false)` if the key's share is.
fn take<K: std::hash::Hash + Eq + Clone>(
    counts: &Counts<K>,
    total: &Mutex<usize>,
    key: &K,
    limit: usize,
    per_key: usize,
) -> Result<(), bool> {
    let mut total = lock(total);
    let mut counts = lock(counts);
    if *total >= limit {
        return Err(true);
    }
    let n = counts.entry(key.clone()).or_insert(0);
    if *n >= per_key {
        return Err(false);
    }
    *n += 1;
    *total += 1;
    Ok(())
}

fn give_back<K: std::hash::Hash + Eq>(counts: &Counts<K>, total: &Mutex<usize>, key: &K) {
    let mut total = lock(total);
    let mut counts = lock(counts);
    *total = total.saturating_sub(1);
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            startup: Arc::default(),
            startup_total: Arc::default(),
            sessions: Arc::default(),
            sessions_total: Arc::default(),
        }
    }

    /// A start-up slot for a connection from `peer`, or why there is none.
    pub fn startup(&self, peer: PeerKey) -> Result<StartupSlot, String> {
        let l = self.limits;
        match take(
            &self.startup,
            &self.startup_total,
            &peer,
            l.startup,
            l.startup_per_peer,
        ) {
            Ok(()) => Ok(StartupSlot {
                peer,
                counts: self.startup.clone(),
                total: self.startup_total.clone(),
            }),
            Err(true) => Err(format!(
                "sod: too many connections in start-up ({}); try again",
                l.startup
            )),
            Err(false) => Err(format!(
                "sod: too many connections in start-up from this address ({}); try again",
                l.startup_per_peer
            )),
        }
    }

    /// A session slot for `principal`, or why there is none.
    pub fn session(&self, principal: &str) -> Result<SessionSlot, TooManyConnections> {
        let l = self.limits;
        let key = principal.to_owned();
        match take(
            &self.sessions,
            &self.sessions_total,
            &key,
            l.sessions,
            l.sessions_per_principal,
        ) {
            Ok(()) => Ok(SessionSlot {
                principal: key,
                counts: self.sessions.clone(),
                total: self.sessions_total.clone(),
            }),
            Err(true) => Err(TooManyConnections(format!(
                "sod: too many connections to the gateway ({} sessions)",
                l.sessions
            ))),
            Err(false) => Err(TooManyConnections(format!(
                "sod: too many sessions for {principal} ({} at most)",
                l.sessions_per_principal
            ))),
        }
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        give_back(&self.counts, &self.total, &self.peer);
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        give_back(&self.counts, &self.total, &self.principal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            sessions: 3,
            sessions_per_principal: 2,
            startup: 3,
            startup_per_peer: 2,
        }
    }

    #[test]
    fn start_up_is_bounded_in_all_and_per_address() {
        let a = Admission::new(limits());
        let one = PeerKey::Ip("127.0.0.2".parse().expect("ip"));
        let two = PeerKey::Ip("127.0.0.1".parse().expect("ip"));
        let s1 = a.startup(one.clone()).expect("first");
        let _s2 = a.startup(one.clone()).expect("second");
        let third = a.startup(one.clone()).expect_err("per address");
        assert!(third.contains("from this address"), "{third}");
        // Another address is not held back by the first one's sockets.
        let _s3 = a.startup(two.clone()).expect("another address");
        assert!(a.startup(PeerKey::Unix).expect_err("total").contains("(3)"));
        drop(s1);
        let _again = a.startup(one).expect("a slot came back");
    }

    #[test]
    fn sessions_are_bounded_in_all_and_per_principal() {
        let a = Admission::new(limits());
        let p1 = a.session("planner").expect("first");
        let _p2 = a.session("planner").expect("second");
        assert!(
            a.session("planner")
                .expect_err("per principal")
                .0
                .contains("planner")
        );
        let _e = a.session("executor").expect("another identity");
        assert!(
            a.session("approver")
                .expect_err("total")
                .0
                .contains("3 sessions")
        );
        drop(p1);
        let _again = a.session("approver").expect("a slot came back");
    }
}
