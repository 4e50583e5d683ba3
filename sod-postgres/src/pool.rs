//! Upstream sessions kept for reuse (PgBouncer's session pooling, with one difference: a
//! connection only ever serves sessions of the principal whose session opened it).
//!
//! Opening an upstream session costs the server a fork and the gateway a login (SCRAM's key
//! derivation alone is thousands of hashes); a client that connects per transaction pays it
//! every time. A session that ends cleanly — the client said `Terminate` or went away while
//! the server was idle, outside any transaction, nothing in flight — hands its connection
//! back. The connection is reset with `DISCARD ALL` (prepared statements, portals, temporary
//! tables, `LISTEN`s, advisory locks, session settings: `RESET ALL` returns every setting to
//! its start-up value, `default_transaction_read_only = on` included, so a pooled session
//! starts read-only like a fresh one) and waits, idle, for the next session of the same
//! principal asking for the same start-up parameters.
//!
//! Fails closed: a reset that errors, times out, or leaves the server anywhere but idle
//! closes the connection; so does one that says anything while it waits (the server closing
//! it, say), checked again when it is taken. Idle connections are closed after the idle
//! timeout and when the gateway shuts down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::io::AsyncReadExt as _;

use sod_core::PrincipalKind;

use crate::codec::{Limits, TransactionStatus};
use crate::upstream::Upstream;

/// How long a reset (`DISCARD ALL`) may take before the connection is closed instead.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The statement that returns a session to its start-up state.
const RESET: &str = "DISCARD ALL";

/// How many idle connections the pool keeps, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    /// Idle connections kept per principal and start-up parameters (0: no pooling).
    pub(crate) max_idle: usize,
    /// An idle connection is closed after this long.
    pub(crate) idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_idle: 0,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Which sessions a pooled connection may serve: the same principal — the same identifier
/// from the same issuer, of the same kind — asking for the same start-up parameters (they
/// are the connection's session defaults).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) issuer: String,
    pub(crate) principal: String,
    pub(crate) kind: PrincipalKind,
    pub(crate) params: Vec<(String, String)>,
}

struct Idle {
    up: Upstream,
    since: Instant,
}

/// Idle upstream sessions, by [`PoolKey`].
pub(crate) struct Pool {
    settings: PoolSettings,
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
}

impl Pool {
    pub(crate) fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Whether sessions hand their connections back at all.
    pub(crate) fn enabled(&self) -> bool {
        self.settings.max_idle > 0
    }

    /// The idle timeout (how often the reaper looks).
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.settings.idle_timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently returned live connection for `key`, if any. Connections that are
    /// too old, or that received anything while idle (the server closed them, or sent an
    /// error), are dropped on the way.
    pub(crate) fn take(&self, key: &PoolKey) -> Option<Upstream> {
        let mut dead = Vec::new();
        let found = {
            let mut idle = self.lock();
            let list = idle.get_mut(key)?;
            let mut found = None;
            while let Some(mut entry) = list.pop() {
                if entry.since.elapsed() < self.settings.idle_timeout && quiet(&mut entry.up) {
                    found = Some(entry.up);
                    break;
                }
                dead.push(entry.up);
            }
            if list.is_empty() {
                idle.remove(key);
            }
            found
        };
        // Dropping closes the sockets; no goodbye to a server that may be gone.
        drop(dead);
        found
    }

    /// Resets `up` and keeps it for the next session under `key` (or closes it: the reset
    /// failed, or the pool for `key` is full).
    pub(crate) async fn give_back(&self, key: PoolKey, mut up: Upstream, limits: &Limits) {
        let reset = tokio::time::timeout(RESET_TIMEOUT, up.simple_query(RESET, limits)).await;
        match reset {
            Ok(Ok(_)) if up.status == TransactionStatus::Idle && up.read_buf.is_empty() => {}
            Ok(Ok(_)) => {
                tracing::debug!("upstream session not idle after reset; closing it");
                return up.terminate().await;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream session reset failed; closing it");
                return up.terminate().await;
            }
            Err(_) => {
                tracing::debug!("upstream session reset timed out; closing it");
                return;
            }
        }
        let overflow = {
            let mut idle = self.lock();
            let list = idle.entry(key).or_default();
            if list.len() < self.settings.max_idle {
                list.push(Idle {
                    up,
                    since: Instant::now(),
                });
                None
            } else {
                Some(up)
            }
        };
        if let Some(up) = overflow {
            up.terminate().await;
        }
    }

    /// Removes the connections idle for longer than the idle timeout (for the caller to
    /// close).
    pub(crate) fn expired(&self) -> Vec<Upstream> {
        let timeout = self.settings.idle_timeout;
        let mut out = Vec::new();
        self.lock().retain(|_, list| {
            let (old, young): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|e| e.since.elapsed() >= timeout);
            out.extend(old.into_iter().map(|e| e.up));
            *list = young;
            !list.is_empty()
        });
        out
    }

    /// Removes every idle connection (on shutdown, for the caller to close).
    pub(crate) fn drain(&self) -> Vec<Upstream> {
        self.lock()
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|e| e.up))
            .collect()
    }
}

/// Whether an idle connection has received nothing: one read attempt that would block. A
/// server that closed the connection (EOF), or said anything (an error before closing it,
/// say), makes it unusable.
fn quiet(up: &mut Upstream) -> bool {
    let mut probe = [0u8; 1];
    up.stream.read(&mut probe).now_or_never().is_none()
}
