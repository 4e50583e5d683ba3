//! A bounded cache of analyses, keyed by the exact statement text.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use super::{Analysis, Analyzer, PgQueryAnalyzer};

/// The longest text the analysis caches keep (by text, and by shape), in bytes.
pub(crate) const MAX_CACHED_TEXT: usize = 64 * 1024;

/// A bounded least-recently-used map shared between threads, of immutable values. Keys are
/// hashed with a randomly seeded SipHash: clients choose them, so they must not be able to
/// choose colliding ones.
pub(crate) struct SharedLru<K: Hash + Eq, V> {
    lru: Mutex<LruCache<K, Arc<V>, RandomState>>,
}

impl<K: Hash + Eq, V> fmt::Debug for SharedLru<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLru")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> SharedLru<K, V> {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            lru: Mutex::new(LruCache::with_hasher(capacity, RandomState::new())),
        }
    }

    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
    {
        lock(&self.lru).get(key).cloned()
    }

    pub(crate) fn put(&self, key: K, value: Arc<V>) {
        lock(&self.lru).put(key, value);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.lru).len()
    }

    pub(crate) fn clear(&self) {
        lock(&self.lru).clear();
    }
}

/// An [`Analyzer`] with a least-recently-used cache in front, keyed by the exact SQL text.
///
/// Agents and drivers send the same statement texts over and over (prepared statements,
/// polling queries), so the parse is paid once per distinct text. The cache holds at most
/// `capacity` analyses and only of texts up to [`max_text_len`](Self::max_text_len) bytes
/// (longer texts are analyzed every time), so its memory is bounded by about
/// `capacity × max_text_len` plus the analyses. Keys are hashed with a randomly seeded SipHash,
/// so clients cannot choose colliding texts.
///
/// ```
/// use std::sync::Arc;
/// use sod_postgres::sql::{CachedAnalyzer, PgQueryAnalyzer};
///
/// let cached = CachedAnalyzer::new(PgQueryAnalyzer::new(), 1024);
/// let a = cached.analyze("SELECT 1");
/// let b = cached.analyze("SELECT 1");
/// assert!(Arc::ptr_eq(&a, &b));
/// ```
///
/// The default type parameter lets a gateway choose the backend at run time:
/// `CachedAnalyzer` is `CachedAnalyzer<Box<dyn Analyzer>>`, and
/// [`CachedAnalyzer::default()`] puts a [`PgQueryAnalyzer`] behind
/// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries.
pub struct CachedAnalyzer<A = Box<dyn Analyzer>> {
    inner: A,
    /// `None` when the capacity is zero (caching disabled).
    cache: Option<SharedLru<Box<str>, Analysis>>,
    capacity: usize,
    max_text_len: usize,
}

impl<A: Analyzer> CachedAnalyzer<A> {
    /// The number of analyses kept by [`CachedAnalyzer::default`].
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// The longest text cached by default, in bytes.
    pub const DEFAULT_MAX_TEXT_LEN: usize = MAX_CACHED_TEXT;

    /// A cache of `capacity` analyses in front of `inner`; zero disables caching.
    pub fn new(inner: A, capacity: usize) -> Self {
        Self {
            inner,
            cache: NonZeroUsize::new(capacity).map(SharedLru::new),
            capacity,
            max_text_len: Self::DEFAULT_MAX_TEXT_LEN,
        }
    }

    /// Caches only texts of at most `bytes` bytes; longer ones are analyzed every time.
    #[must_use]
    pub fn max_text_len(mut self, bytes: usize) -> Self {
        self.max_text_len = bytes;
        self
    }

    /// The analysis of `sql`, from the cache when the same text was analyzed recently.
    /// The same text yields the same `Arc` while it stays cached.
    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        let Some(cache) = self
            .cache
            .as_ref()
            .filter(|_| sql.len() <= self.max_text_len)
        else {
            return Arc::new(self.inner.analyze(sql));
        };
        if let Some(hit) = cache.get(sql) {
            return hit;
        }
        // Analyze without holding the lock; a concurrent miss on the same text analyzes it
        // twice and the later result replaces the earlier.
        let analysis = Arc::new(self.inner.analyze(sql));
        cache.put(Box::from(sql), Arc::clone(&analysis));
        analysis
    }

    /// The analyzer behind the cache.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The most analyses the cache keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of analyses cached now.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, SharedLru::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached analysis.
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }
}

/// Locks the cache. A panic while the lock was held cannot leave the LRU half-updated in a
/// way that matters for correctness (entries are immutable analyses), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for CachedAnalyzer {
    /// A [`PgQueryAnalyzer`] with a shape cache behind
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries (and as many shapes).
    fn default() -> Self {
        Self::new(
            Box::new(PgQueryAnalyzer::with_shape_cache(Self::DEFAULT_CAPACITY)),
            Self::DEFAULT_CAPACITY,
        )
    }
}

impl<A: Analyzer> Analyzer for CachedAnalyzer<A> {
    /// Like the inherent [`CachedAnalyzer::analyze`], but returns an owned copy.
    fn analyze(&self, sql: &str) -> Analysis {
        Analysis::clone(&CachedAnalyzer::analyze(self, sql))
    }
}

impl<A: fmt::Debug> fmt::Debug for CachedAnalyzer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedAnalyzer")
            .field("inner", &self.inner)
            .field("capacity", &self.capacity)
            .field("max_text_len", &self.max_text_len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sod_core::OperationKind;

    use super::*;

    /// Counts how often it is asked.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Analyzer for Counting {
        fn analyze(&self, sql: &str) -> Analysis {
            self.0.fetch_add(1, Ordering::Relaxed);
            Analysis::not_understood(sql, "counted")
        }
    }

    fn calls(c: &CachedAnalyzer<Counting>) -> usize {
        c.inner().0.load(Ordering::Relaxed)
    }

    #[test]
    fn same_text_same_arc() {
        let c = CachedAnalyzer::new(Counting::default(), 16);
        let a = c.analyze("SELECT 1");
        let b = c.analyze("SELECT 1");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(calls(&c), 1);
        let other = c.analyze("SELECT  1");
        assert!(!Arc::ptr_eq(&a, &other), "keyed by the exact text");
        assert_eq!(calls(&c), 2);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn evicts_least_recently_used_beyond_capacity() {
        let c = CachedAnalyzer::new(Counting::default(), 2);
        let a = c.analyze("a");
        c.analyze("b");
        assert!(Arc::ptr_eq(&a, &c.analyze("a")), "a is now the most recent");
        c.analyze("c"); // evicts b
        assert_eq!(c.len(), 2);
        assert_eq!(calls(&c), 3);
        assert!(Arc::ptr_eq(&a, &c.analyze("a")));
        assert_eq!(calls(&c), 3);
        c.analyze("b");
        assert_eq!(calls(&c), 4, "b was evicted");
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn long_texts_and_zero_capacity_are_not_cached() {
        let c = CachedAnalyzer::new(Counting::default(), 16).max_text_len(4);
        let a = c.analyze("12345");
        let b = c.analyze("12345");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a, b);
        assert!(c.is_empty());
        c.analyze("1234");
        assert_eq!(c.len(), 1);

        let z = CachedAnalyzer::new(Counting::default(), 0);
        z.analyze("x");
        z.analyze("x");
        assert_eq!(calls(&z), 2);
        assert_eq!(z.capacity(), 0);
    }

    #[test]
    fn trait_object_use() {
        let c: Box<dyn Analyzer> = Box::new(CachedAnalyzer::new(Counting::default(), 16));
        assert_eq!(c.analyze("x").kind(), OperationKind::Unknown);
    }
}
