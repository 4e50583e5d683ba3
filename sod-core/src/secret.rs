//! [`Secret`]: a value that must never be printed, serialized or kept in memory longer than needed.
//!
//! Upstream credentials (database passwords, SSH keys, Kubernetes tokens) and key material live in a
//! `Secret`. The type deliberately implements none of `Debug`, `Display`, `Serialize` or `Clone`,
//! so a secret cannot reach a log line, an audit record or an error message by accident: the
//! compiler refuses. Reading it takes an explicit, greppable call to
//! [`expose_secret`](Secret::expose_secret). The value is zeroized when the `Secret` is dropped.
//!
//! ```
//! use sod_core::Secret;
//!
//! let password = Secret::new(String::from("hunter2"));
//! assert_eq!(password.expose_secret(), "hunter2");
//! ```
//!
//! None of these compile:
//!
//! ```compile_fail
//! let s = sod_core::Secret::new(String::from("x"));
//! println!("{:?}", s);
//! ```
//!
//! ```compile_fail
//! let s = sod_core::Secret::new(String::from("x"));
//! println!("{}", s);
//! ```
//!
//! ```compile_fail
//! let s = sod_core::Secret::new(String::from("x"));
//! let _ = serde_json::to_string(&s);
//! ```
//!
//! ```compile_fail
//! let s = sod_core::Secret::new(String::from("x"));
//! let _t = s.clone();
//! ```

use zeroize::Zeroize;

/// A secret value: no `Debug`, `Display`, `Serialize` or `Clone`; zeroized on drop.
///
/// Share a secret between tasks with `Arc<Secret<T>>`.
pub struct Secret<T: Zeroize> {
    value: T,
}

impl<T: Zeroize> Secret<T> {
    /// Wraps `value`. The caller should drop its own copies.
    pub fn new(value: T) -> Self {
        Self { value }
    }

    /// Reads the secret. Call this only at the point of use (the innermost connector), never to
    /// log, format or store the value elsewhere.
    pub fn expose_secret(&self) -> &T {
        &self.value
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<Vec<u8>> for Secret<Vec<u8>> {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_value_it_holds() {
        let s = Secret::new(vec![1u8, 2, 3]);
        assert_eq!(s.expose_secret(), &[1, 2, 3]);
        let s: Secret<String> = String::from("pw").into();
        assert_eq!(s.expose_secret(), "pw");
    }

    #[test]
    fn zeroizes_on_drop() {
        // Observe zeroization through the `Zeroize` impl of a type that records it.
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Probe(Arc<AtomicBool>);
        impl Zeroize for Probe {
            fn zeroize(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(AtomicBool::new(false));
        drop(Secret::new(Probe(flag.clone())));
        assert!(flag.load(Ordering::SeqCst));
    }
}
