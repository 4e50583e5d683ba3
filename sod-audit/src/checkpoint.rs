//! Signed checkpoints: an ed25519 signature over a stream's head (sequence number and hash).
//!
//! A sink writes one into the log every so often (a [`Checkpoint`](crate::Event::Checkpoint)
//! event, chained like any record) and can hand the latest to the caller for safekeeping
//! elsewhere. Records up to a verified checkpoint cannot be edited, dropped or reordered without
//! the signing key; a log that ends before a checkpoint exported earlier has been truncated.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::Hash;

const DOMAIN: &[u8] = b"sod-audit-checkpoint-v1\n";

/// The key that signs checkpoints. Cheap to clone; `Debug` shows only its id.
#[derive(Clone)]
pub struct CheckpointKey {
    id: String,
    pair: Arc<Ed25519KeyPair>,
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be loaded or a checkpoint did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The PKCS#8 document is not an ed25519 key.
    #[error("not an ed25519 PKCS#8 key")]
    BadKey,
    /// No trusted key has the checkpoint's key id.
    #[error("checkpoint signed with unknown key `{0}`")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("checkpoint signature does not verify with key `{0}`")]
    BadSignature(String),
}

impl CheckpointKey {
    /// A fresh random key named `id`.
    pub fn generate(id: impl Into<String>) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519 key generation");
        Self::from_pkcs8(id, doc.as_ref()).expect("a freshly generated key loads")
    }

    /// Loads a key from a PKCS#8 (v1 or v2) document.
    pub fn from_pkcs8(id: impl Into<String>, der: &[u8]) -> Result<Self, CheckpointError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| CheckpointError::BadKey)?;
        Ok(Self {
            id: id.into(),
            pair: Arc::new(pair),
        })
    }

    /// Loads a key from its 32-byte ed25519 seed (the private key itself: keep it secret).
    pub fn from_seed(id: impl Into<String>, seed: &[u8; 32]) -> Result<Self, CheckpointError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| CheckpointError::BadKey)?;
        Ok(Self {
            id: id.into(),
            pair: Arc::new(pair),
        })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public half, for verifiers.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id.clone(),
            key: B64.encode(self.pair.public_key().as_ref()),
        }
    }

    /// Signs the head of `stream`: record `seq` with hash `head`.
    pub fn sign(&self, stream: &str, seq: u64, head: Hash) -> Checkpoint {
        let sig = self.pair.sign(&message(stream, seq, head));
        Checkpoint {
            stream: stream.to_owned(),
            seq,
            head,
            key: self.id.clone(),
            sig: B64.encode(sig.as_ref()),
        }
    }
}

/// A checkpoint verification key: an id and a base64 ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Key id, as named in checkpoints.
    pub id: String,
    /// The 32-byte ed25519 public key, base64 (no padding).
    pub key: String,
}

/// A signed statement that record `seq` of `stream` has hash `head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The stream.
    pub stream: String,
    /// The last record covered.
    pub seq: u64,
    /// That record's hash.
    pub head: Hash,
    /// The signing key's id.
    pub key: String,
    /// ed25519 signature, base64 (no padding).
    pub sig: String,
}

impl Checkpoint {
    /// Checks the signature with the trusted key the checkpoint names.
    pub fn verify(&self, keys: &[PublicKey]) -> Result<(), CheckpointError> {
        let key = keys
            .iter()
            .find(|k| k.id == self.key)
            .ok_or_else(|| CheckpointError::UnknownKey(self.key.clone()))?;
        let bad = || CheckpointError::BadSignature(self.key.clone());
        let public = B64.decode(&key.key).map_err(|_| bad())?;
        let sig = B64.decode(&self.sig).map_err(|_| bad())?;
        signature::UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(&message(&self.stream, self.seq, self.head), &sig)
            .map_err(|_| bad())
    }
}

fn message(stream: &str, seq: u64, head: Hash) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 8 + stream.len() + 8 + 32);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&(stream.len() as u64).to_be_bytes());
    m.extend_from_slice(stream.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&head.0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_forgeries() {
        let key = CheckpointKey::generate("k1");
        let cp = key.sign("gw", 9, Hash([7; 32]));
        let keys = [key.public()];
        assert_eq!(cp.verify(&keys), Ok(()));
        let mut later = cp.clone();
        later.seq = 10;
        assert!(later.verify(&keys).is_err());
        let mut other_head = cp.clone();
        other_head.head = Hash([8; 32]);
        assert!(other_head.verify(&keys).is_err());
        let impostor = CheckpointKey::generate("k1").sign("gw", 9, Hash([7; 32]));
        assert!(impostor.verify(&keys).is_err());
        let mut unknown = cp.clone();
        unknown.key = "k2".into();
        assert_eq!(
            unknown.verify(&keys),
            Err(CheckpointError::UnknownKey("k2".into()))
        );
    }
}
