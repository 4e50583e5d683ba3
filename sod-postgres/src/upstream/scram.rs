//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, client side, on aws-lc-rs.
//!
//! No channel binding (`n,,`): the gateway verifies the server's certificate itself when TLS is
//! on. The server's final message is checked, so a server that does not know the password's
//! verifier cannot pass itself off as the real one.

use std::num::NonZeroU32;

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sod_core::hex;

/// The SASL mechanism name.
pub(crate) const MECHANISM: &str = "SCRAM-SHA-256";

/// Iteration counts above this are refused: a hostile server must not make us spin.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Why the exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    #[error("malformed SCRAM server message: {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend ours")]
    Nonce,
    #[error("the server's iteration count {0} is out of range")]
    Iterations(u32),
    #[error("the server's signature is wrong: it does not know this password")]
    ServerSignature,
    #[error("the server reported a SCRAM error: {0}")]
    Server(String),
}

/// The client's side of one exchange.
pub(crate) struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    /// Set after the server's first message.
    expected_server_signature: Option<[u8; 32]>,
}

impl Drop for ScramClient {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl ScramClient {
    /// Starts an exchange for `password`; returns the client and the client-first message.
    pub(crate) fn start(password: &str) -> (Self, Vec<u8>) {
        let nonce_bytes: [u8; 18] = hex::random();
        Self::with_nonce(password, STANDARD.encode(nonce_bytes))
    }

    fn with_nonce(password: &str, client_nonce: String) -> (Self, Vec<u8>) {
        // PostgreSQL takes the user name from the startup message and ignores `n=`.
        let client_first_bare = format!("n=,r={client_nonce}");
        let first = format!("n,,{client_first_bare}").into_bytes();
        (
            Self {
                password: password.as_bytes().to_vec(),
                client_nonce,
                client_first_bare,
                expected_server_signature: None,
            },
            first,
        )
    }

    /// Handles server-first (`r=…,s=…,i=…`) and returns client-final.
    pub(crate) fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in text.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                Some(("e=", v)) => return Err(ScramError::Server(v.chars().take(200).collect())),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = STANDARD
            .decode(salt.ok_or(ScramError::Malformed("no salt"))?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or(ScramError::Malformed("no iteration count"))?
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count is not a number"))?;
        let rounds = NonZeroU32::new(iterations)
            .filter(|n| n.get() <= MAX_ITERATIONS)
            .ok_or(ScramError::Iterations(iterations))?;

        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            &self.password,
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());

        let client_final_without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, text, client_final_without_proof
        );
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        let mut expected = [0u8; 32];
        expected.copy_from_slice(server_signature.as_ref());
        self.expected_server_signature = Some(expected);
        zeroize::Zeroize::zeroize(&mut salted);
        Ok(format!("{client_final_without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final (`v=…`).
    pub(crate) fn server_final(&self, message: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(err) = text.strip_prefix("e=") {
            return Err(ScramError::Server(err.chars().take(200).collect()));
        }
        let v = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or(ScramError::Malformed("no server signature"))?;
        let got = STANDARD
            .decode(v)
            .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
        let expected = self
            .expected_server_signature
            .ok_or(ScramError::Malformed("server-final before server-first"))?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&got, &expected)
            .map_err(|_| ScramError::ServerSignature)
    }
}

/// PostgreSQL's MD5 password response: `"md5" + md5(md5(password + user) + salt)` in hex.
pub(crate) fn md5_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    use md5::{Digest, Md5};
    let inner = hex::encode(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = Md5::digest([inner.as_bytes(), &salt[..]].concat());
    format!("md5{}", hex::encode(&outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 test vector (user "user", password "pencil").
    #[test]
    fn rfc7677_vector() {
        let (mut c, first) = ScramClient::with_nonce("pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(first, b"n,,n=,r=rOprNGfwEbeRWgbNEkqO");
        // The RFC's client-first-bare includes n=user; ours has n= (PostgreSQL style), so
        // recompute with the RFC's bare message to compare the proof.
        c.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.server_first(server_first).expect("server-first");
        assert_eq!(
            String::from_utf8(fin).expect("utf8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("server signature");
        assert_eq!(c.server_final(b"v=AAAA"), Err(ScramError::ServerSignature));
    }

    #[test]
    fn hostile_servers_are_refused() {
        let (mut c, _) = ScramClient::with_nonce("pw", "abc".into());
        assert_eq!(
            c.server_first(b"r=xyz,s=AAAA,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            c.server_first(b"r=abc,s=AAAA,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            c.server_first(b"r=abcd,s=AAAA,i=4294967295"),
            Err(ScramError::Iterations(u32::MAX))
        );
        assert_eq!(
            c.server_first(b"r=abcd,s=AAAA,i=0"),
            Err(ScramError::Iterations(0))
        );
        assert!(c.server_first(b"r=abcd,s=!!,i=1").is_err());
        assert!(c.server_first(b"e=other-error").is_err());
        assert!(c.server_first(&[0xff, 0xfe]).is_err());
        assert!(c.server_final(b"v=AAAA").is_err(), "no server-first yet");
    }

    #[test]
    fn md5_matches_postgres() {
        // "md5" + md5(md5("secret" + "postgres") + salt), computed independently (Python hashlib).
        assert_eq!(
            md5_response("postgres", "secret", [1, 2, 3, 4]),
            "md5bb41a296aab6baccb36ff243a562abff"
        );
    }
}
