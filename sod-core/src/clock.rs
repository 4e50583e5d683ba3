//! [`Clock`]: where a component reads the wall-clock time, so tests (and embedders with their own
//! time source) can give it another one.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A source of the current wall-clock time. The default reads [`SystemTime::now`].
///
/// Cheap to clone. Used by [`OidcVerifier`](crate::identity::OidcVerifier) for `exp`, `nbf` and
/// `iat` and for the age of its cached keys.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use sod_core::clock::Clock;
///
/// // A clock a test moves by hand.
/// let now = Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
/// let clock = Clock::from_fn({
///     let now = now.clone();
///     move || *now.lock().unwrap()
/// });
/// *now.lock().unwrap() += Duration::from_secs(60);
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_800_000_060));
/// assert!(Clock::system().now() > UNIX_EPOCH);
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system's clock ([`SystemTime::now`]).
    pub fn system() -> Self {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock that calls `now` whenever the time is needed.
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// A clock stopped at `at`.
    pub fn fixed(at: SystemTime) -> Self {
        Clock(Arc::new(move || at))
    }

    /// The current time according to this clock.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock(..)")
    }
}
