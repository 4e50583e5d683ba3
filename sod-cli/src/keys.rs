//! Key files: one line of hex, written with mode 0600; a key file group or others can read is
//! refused (anyone who reads a capability key can forge capabilities).
//!
//! - a capability key: at least 32 random bytes (`sod token keygen`);
//! - an audit checkpoint key: a 32-byte ed25519 seed (`sod audit keygen`), whose public half
//!   (`{"id": …, "key": …}`, what `sod audit verify --key` reads) is written next to it as
//!   `<file>.pub`.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use sod_audit::{CheckpointKey, PublicKey};
use sod_core::Secret;
use sod_core::capability::CapabilityKey;

/// Reads a hex key file into a secret. The file must not be readable by group or others
/// ([`Secret::read_private_file`]).
pub fn read_secret(path: &Path) -> io::Result<Secret<Vec<u8>>> {
    let text = Secret::read_private_file(path)?;
    let bytes = sod_core::hex::decode(text.expose_secret().trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not hold a hex key", path.display()),
        )
    })?;
    Ok(Secret::new(bytes))
}

/// Loads a capability key.
pub fn capability_key(path: &Path, id: &str) -> io::Result<CapabilityKey> {
    CapabilityKey::new(id, &read_secret(path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Loads an audit checkpoint key.
pub fn checkpoint_key(path: &Path, id: &str) -> io::Result<CheckpointKey> {
    let secret = read_secret(path)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} must hold a 32-byte ed25519 seed in hex", path.display()),
        )
    };
    let seed: &[u8; 32] = secret
        .expose_secret()
        .as_slice()
        .try_into()
        .map_err(|_| bad())?;
    CheckpointKey::from_seed(id, seed).map_err(|_| bad())
}

/// Writes 32 fresh random bytes as hex to `path` (mode 0600), refusing to overwrite.
pub fn generate(path: &Path) -> io::Result<()> {
    let bytes: [u8; 32] = sod_core::hex::random();
    write_private(path, &(sod_core::hex::encode(&bytes) + "\n"), false)
}

/// Generates an audit key at `path` and writes its public half to `<path>.pub`.
pub fn generate_checkpoint_key(path: &Path, id: &str) -> io::Result<PublicKey> {
    generate(path)?;
    let public = checkpoint_key(path, id)?.public();
    let json = serde_json::to_string(&public).map_err(io::Error::other)?;
    std::fs::write(public_path(path), json + "\n")?;
    Ok(public)
}

/// Where [`generate_checkpoint_key`] puts the public half.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Reads a public checkpoint key (`{"id": …, "key": …}`).
pub fn read_public(path: &Path) -> io::Result<PublicKey> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a public key ({{\"id\": …, \"key\": …}}): {e}",
                path.display()
            ),
        )
    })
}

/// Writes `text` to `path` with mode 0600, synced; an existing file is replaced
/// only if `replace`.
pub fn write_private(path: &Path, text: &str, replace: bool) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))?;
    // A replaced file keeps its mode: narrow it before the secret goes in.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cap = dir.path().join("cap.key");
        generate(&cap).expect("generate");
        assert!(
            generate(&cap).is_err(),
            "an existing key is never overwritten"
        );
        capability_key(&cap, "k1").expect("loads");
        let audit = dir.path().join("audit.key");
        let public = generate_checkpoint_key(&audit, "a1").expect("generate");
        assert_eq!(read_public(&public_path(&audit)).expect("pub"), public);
        assert_eq!(
            checkpoint_key(&audit, "a1").expect("loads").public(),
            public
        );
        write_private(&audit, "abcd\n", true).expect("write");
        let err = checkpoint_key(&audit, "a1").expect_err("short seed");
        assert!(err.to_string().contains("32-byte"), "{err}");
        write_private(&cap, "not hex\n", true).expect("write");
        assert!(capability_key(&cap, "k1").is_err());
    }

    #[test]
    fn readable_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let cap = dir.path().join("cap.key");
        generate(&cap).expect("generate");
        std::fs::set_permissions(&cap, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = capability_key(&cap, "k1").err().expect("world-readable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
