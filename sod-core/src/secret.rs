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

impl Secret<String> {
    /// Reads a file that holds a secret (a key, a password), refusing it if group or others
    /// may read it: anyone who can read a capability key can forge capabilities, anyone who
    /// can read the executor's password is the executor. The error names the file and says how
    /// to fix its mode.
    ///
    /// ```no_run
    /// let key = sod_core::Secret::read_private_file("/etc/sod/capability.key".as_ref())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_private_file(path: &std::path::Path) -> std::io::Result<Self> {
        use std::io::{Error, ErrorKind, Read as _};
        let mut file = std::fs::File::open(path)
            .map_err(|e| Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // The mode of the file opened, not of whatever the path names a moment later.
            let mode = file.metadata()?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{} is readable by group or others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    ),
                ));
            }
        }
        let mut text = Secret::new(String::new());
        file.read_to_string(&mut text.value)
            .map_err(|e| Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
        Ok(text)
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
