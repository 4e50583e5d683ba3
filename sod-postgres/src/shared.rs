//! What the sessions of one gateway share ([`GatewayShared`]: settings, the analyzer, the
//! catalog, cancel keys) and what the driver of one session shares with the innermost service
//! of its stack ([`SessionShared`]: the upstream connection while it opens, the router link,
//! the catalog snapshot).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sod_core::hex;
use sod_core::{BoxError, Principal, Target};

use crate::catalog::{self, Catalog, CatalogSnapshot};
use crate::codec::Limits;
use crate::credentials::CredentialSource;
use crate::pool::{Pool, PoolKey, PoolSettings};
use crate::router::{Link, SlotId};
use crate::sql::CachedAnalyzer;
use crate::upstream::{self, CancelTarget, Upstream, UpstreamConfig};
use sod_core::admission::{Admission, Limits as AdmissionLimits, SessionSlot, TooManyConnections};

/// Whether clients may connect without TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plaintext {
    /// Never.
    Never,
    /// From loopback addresses and Unix sockets only (the default).
    LoopbackOnly,
    /// From anywhere (only behind another encrypted transport).
    Always,
}

/// The settings a gateway's sessions share; see [`crate::GatewayBuilder`].
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) credentials: Arc<dyn CredentialSource>,
    pub(crate) analyzer: Arc<CachedAnalyzer>,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) plaintext: Plaintext,
    pub(crate) startup_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) admission: AdmissionLimits,
    pub(crate) max_statement: usize,
    pub(crate) pool: PoolSettings,
}

impl From<Settings> for GatewayShared {
    fn from(s: Settings) -> Self {
        GatewayShared {
            target: s.target,
            upstream: s.upstream,
            credentials: s.credentials,
            analyzer: s.analyzer,
            catalog: Catalog::new(Duration::from_secs(60)),
            cancels: CancelRegistry::default(),
            limits: s.limits,
            tls: s.tls.map(tokio_rustls::TlsAcceptor::from),
            plaintext: s.plaintext,
            startup_timeout: s.startup_timeout,
            idle_timeout: s.idle_timeout,
            write_timeout: s.write_timeout,
            admission: Admission::new(s.admission),
            max_statement: s.max_statement,
            pool: Pool::new(s.pool),
            analyses: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        }
    }
}

/// Everything sessions of one gateway share.
pub(crate) struct GatewayShared {
    pub(crate) target: Target,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) credentials: Arc<dyn CredentialSource>,
    pub(crate) analyzer: Arc<CachedAnalyzer>,
    pub(crate) catalog: Catalog,
    pub(crate) cancels: CancelRegistry,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) plaintext: Plaintext,
    pub(crate) startup_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// A client that accepts no bytes for this long while the gateway has some for it is
    /// disconnected (and its upstream session freed).
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) admission: Admission,
    /// The longest statement text analysed; longer ones are refused.
    pub(crate) max_statement: usize,
    /// Long statements are analysed on the blocking pool, at most this many at once.
    pub(crate) analyses: Arc<tokio::sync::Semaphore>,
    /// Upstream sessions kept for reuse.
    pub(crate) pool: Pool,
}

/// Cancel keys: the client sees the gateway's, only the gateway knows the server's.
#[derive(Default)]
pub(crate) struct CancelRegistry {
    map: Mutex<HashMap<(i32, [u8; 4]), CancelTarget>>,
}

impl CancelRegistry {
    pub(crate) fn insert(&self, target: CancelTarget) -> (i32, [u8; 4]) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let raw: [u8; 8] = hex::random();
            let pid = i32::from_be_bytes([raw[0] & 0x7f, raw[1], raw[2], raw[3]]).max(1);
            let key = [raw[4], raw[5], raw[6], raw[7]];
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry((pid, key)) {
                e.insert(target);
                return (pid, key);
            }
        }
    }

    pub(crate) fn remove(&self, id: (i32, [u8; 4])) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub(crate) fn get(&self, pid: i32, key: &[u8]) -> Option<CancelTarget> {
        let key: [u8; 4] = key.try_into().ok()?;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, key))
            .cloned()
    }
}

/// Per-session state shared between the driver and the innermost service.
pub(crate) struct SessionShared {
    gateway: Arc<GatewayShared>,
    /// The client's harmless start-up parameters, passed upstream.
    forward_params: Vec<(String, String)>,
    link: OnceLock<Arc<Link>>,
    upstream: Mutex<Option<Upstream>>,
    snapshot: Mutex<Arc<CatalogSnapshot>>,
    registered: Registered,
    /// The upstream's major version (0 until connected, or if it reported none).
    server_major: AtomicU32,
    /// The session's place among the gateway's sessions, once admitted.
    slot: Mutex<Option<SessionSlot>>,
    /// The upstream session stays read-only.
    pinned_read_only: AtomicBool,
    /// Set once the upstream session is open: where it may go back to the pool.
    pool_key: Mutex<Option<PoolKey>>,
}

/// Loads a catalog snapshot on a side connection.
pub(crate) async fn load_catalog(
    gw: &GatewayShared,
) -> Result<CatalogSnapshot, upstream::UpstreamError> {
    let mut side =
        upstream::connect(&gw.upstream, gw.credentials.as_ref(), &[], &gw.limits).await?;
    let snapshot = catalog::load(&mut side, &gw.limits).await;
    side.terminate().await;
    snapshot
}

impl SessionShared {
    /// The shared state of a new session of `gateway`, whose client asked for
    /// `forward_params` (harmless start-up parameters, passed upstream).
    pub(crate) fn new(gateway: Arc<GatewayShared>, forward_params: Vec<(String, String)>) -> Self {
        Self {
            gateway,
            forward_params,
            link: OnceLock::new(),
            upstream: Mutex::new(None),
            snapshot: Mutex::new(Arc::new(CatalogSnapshot::default_path())),
            registered: Registered::default(),
            server_major: AtomicU32::new(0),
            slot: Mutex::new(None),
            pinned_read_only: AtomicBool::new(true),
            pool_key: Mutex::new(None),
        }
    }

    /// The upstream connection `Connect` opened, taken by the driver to run the session.
    pub(crate) fn take_upstream(&self) -> Option<Upstream> {
        self.upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Gives the innermost service the session's router link.
    pub(crate) fn attach(&self, link: Arc<Link>) {
        let _ = self.link.set(link);
    }

    /// Admits the session for `principal` among the gateway's sessions (the innermost
    /// service's part of `Connect`, before the upstream session opens).
    pub(crate) fn admit(&self, principal: &str) -> Result<(), TooManyConnections> {
        let slot = self.gateway.admission.session(principal)?;
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
        Ok(())
    }

    /// Opens the upstream session (the innermost service's part of `Connect`). It starts
    /// with read-only transactions (the router's link switches to read-write for what the stack
    /// judged writes); `pinned`: it stays read-only (the capability only reads).
    ///
    /// A session of a known `principal` takes an idle connection from the pool when one waits
    /// for it (same principal, same start-up parameters); only those go back to it.
    pub(crate) async fn open_upstream(
        &self,
        pinned: bool,
        principal: Option<&Principal>,
    ) -> Result<(), BoxError> {
        let gw = &self.gateway;
        let mut params = self.forward_params.clone();
        params.push(("default_transaction_read_only".into(), "on".into()));
        self.pinned_read_only.store(pinned, Ordering::Relaxed);
        let key = principal
            .filter(|_| gw.pool.enabled())
            .map(|principal| PoolKey {
                issuer: principal.issuer.clone(),
                principal: principal.id.clone(),
                kind: principal.kind,
                params: params.clone(),
            });
        let pooled = key.as_ref().and_then(|k| gw.pool.take(k));
        let mut up = match pooled {
            Some(up) => up,
            None => {
                upstream::connect(&gw.upstream, gw.credentials.as_ref(), &params, &gw.limits)
                    .await?
            }
        };
        let snapshot = match gw
            .catalog
            .load_once(|| catalog::load(&mut up, &gw.limits))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the catalog; assuming pg_catalog, public and masking every column of masked results");
                Arc::new(CatalogSnapshot::default_path())
            }
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
        self.server_major
            .store(up.server_major().unwrap_or(0), Ordering::Relaxed);
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = Some(up);
        *self.pool_key.lock().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// Under which key the session's upstream connection may go back to the pool.
    pub(crate) fn pool_key(&self) -> Option<PoolKey> {
        self.pool_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn gateway(&self) -> Arc<GatewayShared> {
        self.gateway.clone()
    }

    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.link.get().cloned()
    }

    /// The innermost service queued an operation under slot `id` (see [`Self::take_registered`]).
    pub(crate) fn note_registered(&self, id: SlotId) {
        self.registered.set(id);
    }

    /// The slot the innermost service registered during the last call, if it did: lets the
    /// driver tell "refused before forwarding" from "failed after forwarding".
    pub(crate) fn take_registered(&self) -> Option<SlotId> {
        self.registered.take()
    }

    /// Whether the upstream session stays read-only (its capability only reads).
    pub(crate) fn pinned_read_only(&self) -> bool {
        self.pinned_read_only.load(Ordering::Relaxed)
    }

    /// The upstream's major version, once connected (`None` if it reported none).
    pub(crate) fn server_major(&self) -> Option<u32> {
        Some(self.server_major.load(Ordering::Relaxed)).filter(|&v| v > 0)
    }

    /// Makes `snapshot` the one this session resolves names and masks with.
    pub(crate) fn set_snapshot(&self, snapshot: Arc<CatalogSnapshot>) {
        let mut current = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&current, &snapshot) {
            *current = snapshot;
        }
    }

    /// The catalog snapshot this session resolves names and masks with.
    pub(crate) fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Remembers the slot the innermost service registered during one call.
#[derive(Default)]
struct Registered(Mutex<Option<SlotId>>);

impl Registered {
    fn set(&self, id: SlotId) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    fn take(&self) -> Option<SlotId> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
