//! Key files: one line of hex, written with mode 0600.
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

/// Reads a hex key file into a secret.
pub fn read_secret(path: &Path) -> io::Result<Secret<Vec<u8>>> {
    let text = std::fs::read_to_string(path)?;
    let bytes = sod_core::hex::decode(text.trim()).ok_or_else(|| {
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
    write_new(path, &sod_core::hex::encode(&bytes))
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

fn write_new(path: &Path, text: &str) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
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
        std::fs::write(&audit, "abcd\n").expect("write");
        let err = checkpoint_key(&audit, "a1").expect_err("short seed");
        assert!(err.to_string().contains("32-byte"), "{err}");
        std::fs::write(&cap, "not hex\n").expect("write");
        assert!(capability_key(&cap, "k1").is_err());
    }
}
