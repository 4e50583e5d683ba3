//! The compact string form of a capability and its HMAC caveat chain.
//!
//! ```text
//! sodcap1.<header>.<caveat 1>.….<caveat n>.<tag>
//! ```
//!
//! Every part is unpadded base64url. The header is JSON `{"v":1,"kid":…,"c":{claims}}`; each
//! caveat is one JSON object such as `{"kinds":["read"]}`. The tag is a macaroon-style chain:
//!
//! ```text
//! t0 = HMAC-SHA256(root key[kid], "sod-capability-v1" ‖ 0 ‖ header)
//! ti = HMAC-SHA256(t(i-1),         "sod-caveat-v1"     ‖ 0 ‖ caveat i)
//! tag = tn
//! ```
//!
//! where the MAC inputs are the *encoded* parts exactly as they appear in the token. A holder
//! knows `tn` and can therefore append a caveat (attenuate) without the root key; nobody can
//! remove, reorder or edit a caveat or the header, because that needs an earlier tag, which HMAC
//! does not reveal.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{CapabilityClaims, CapabilityError, Caveat};

/// The prefix every capability string starts with.
pub const PREFIX: &str = "sodcap1";
/// Longest capability string accepted (fits a PostgreSQL password and an HTTP header).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Most caveats a chain may carry.
pub const MAX_CAVEATS: usize = 32;

const HEADER_CONTEXT: &[u8] = b"sod-capability-v1\0";
const CAVEAT_CONTEXT: &[u8] = b"sod-caveat-v1\0";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) v: u8,
    pub(super) kid: String,
    pub(super) c: CapabilityClaims,
}

/// A capability in transit: parsed, **not verified**.
///
/// Anyone holding one can read its claims (they are not encrypted) and
/// [attenuate](Self::attenuate) it. Only the
/// [`CapabilityAuthority`](super::CapabilityAuthority) that issued it can verify it.
#[derive(Clone, PartialEq, Eq)]
pub struct CapabilityToken {
    pub(super) header_enc: String,
    pub(super) header: Header,
    pub(super) caveats: Vec<(String, Caveat)>,
    pub(super) tag: [u8; 32],
}

impl CapabilityToken {
    pub(super) fn sign_header(key: &hmac::Key, header: Header) -> Result<Self, CapabilityError> {
        let json =
            serde_json::to_vec(&header).map_err(|e| CapabilityError::Malformed(e.to_string()))?;
        let header_enc = URL_SAFE_NO_PAD.encode(json);
        let tag = mac(key, HEADER_CONTEXT, &header_enc);
        Ok(Self {
            header_enc,
            header,
            caveats: Vec::new(),
            tag,
        })
    }

    /// The claims the issuer wrote, **unverified**: fine for display (`sod token inspect`),
    /// never for a decision.
    pub fn unverified_claims(&self) -> &CapabilityClaims {
        &self.header.c
    }

    /// The caveats appended since issue, in order, **unverified**.
    pub fn caveats(&self) -> impl Iterator<Item = &Caveat> {
        self.caveats.iter().map(|(_, c)| c)
    }

    /// The id of the key that signed the header.
    pub fn key_id(&self) -> &str {
        &self.header.kid
    }

    /// Derives a narrower capability by appending `caveat`. Needs no key.
    ///
    /// Fails with [`CapabilityError::NotNarrower`] when the caveat cannot be shown to narrow the
    /// capability (a later expiry, a kind not granted, a target pattern outside the current
    /// ones). Verification intersects all caveats anyway, so a hand-made widening caveat gains
    /// nothing; this check only catches mistakes early with a clear message.
    ///
    /// ```
    /// # use sod_core::capability::*;
    /// # use sod_core::{KindSet, OperationKind::*, Secret};
    /// # use std::time::{Duration, SystemTime};
    /// # let authority = CapabilityAuthority::new("sod", CapabilityKey::generate("k1"));
    /// let token = authority.issue(
    ///     CapabilitySpec::new("planner-1", Duration::from_secs(3600))
    ///         .targets(["pg/*"])
    ///         .kinds(KindSet::of(&[Read, Write])),
    /// )?;
    /// let read_only = token.attenuate(Caveat::Kinds(KindSet::of(&[Read])))?;
    /// assert!(read_only.attenuate(Caveat::Kinds(KindSet::of(&[Write]))).is_err());
    /// # Ok::<(), CapabilityError>(())
    /// ```
    pub fn attenuate(&self, caveat: Caveat) -> Result<CapabilityToken, CapabilityError> {
        if self.caveats.len() >= MAX_CAVEATS {
            return Err(CapabilityError::TooLong);
        }
        let nominal = super::Scope::from_chain(&self.header.c, self.caveats());
        nominal.check_narrows(&caveat)?;
        let json =
            serde_json::to_vec(&caveat).map_err(|e| CapabilityError::Malformed(e.to_string()))?;
        let enc = URL_SAFE_NO_PAD.encode(json);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.tag);
        let tag = mac(&key, CAVEAT_CONTEXT, &enc);
        let mut next = self.clone();
        next.caveats.push((enc, caveat));
        next.tag = tag;
        if next.encode().len() > MAX_TOKEN_LEN {
            return Err(CapabilityError::TooLong);
        }
        Ok(next)
    }

    /// Recomputes the chain from the root key; true when the tag matches. Constant-time compare.
    pub(super) fn chain_is_valid(&self, root: &hmac::Key) -> bool {
        let mut tag = mac(root, HEADER_CONTEXT, &self.header_enc);
        for (enc, _) in &self.caveats {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &tag);
            tag = mac(&key, CAVEAT_CONTEXT, enc);
        }
        aws_lc_rs::constant_time::verify_slices_are_equal(&tag, &self.tag).is_ok()
    }
}

fn mac(key: &hmac::Key, context: &[u8], part: &str) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(context);
    ctx.update(part.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str, what: &str) -> Result<T, CapabilityError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| CapabilityError::Malformed(format!("{what} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| CapabilityError::Malformed(format!("{what}: {e}")))
}

impl FromStr for CapabilityToken {
    type Err = CapabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_TOKEN_LEN {
            return Err(CapabilityError::TooLong);
        }
        let mut parts = s.split('.');
        if parts.next() != Some(PREFIX) {
            return Err(CapabilityError::Malformed(format!(
                "a capability starts with `{PREFIX}.`"
            )));
        }
        let parts: Vec<&str> = parts.collect();
        let [header_enc, caveats @ .., tag_enc] = parts.as_slice() else {
            return Err(CapabilityError::Malformed("missing header or tag".into()));
        };
        if caveats.len() > MAX_CAVEATS {
            return Err(CapabilityError::TooLong);
        }
        let header: Header = decode_part(header_enc, "header")?;
        if header.v != 1 {
            return Err(CapabilityError::Malformed(format!(
                "unsupported capability version {}",
                header.v
            )));
        }
        let caveats = caveats
            .iter()
            .enumerate()
            .map(|(i, enc)| {
                Ok((
                    (*enc).to_owned(),
                    decode_part(enc, &format!("caveat {}", i + 1))?,
                ))
            })
            .collect::<Result<Vec<_>, CapabilityError>>()?;
        let tag: [u8; 32] = URL_SAFE_NO_PAD
            .decode(tag_enc)
            .ok()
            .and_then(|t| t.try_into().ok())
            .ok_or_else(|| {
                CapabilityError::Malformed("tag must be 32 bytes of base64url".into())
            })?;
        Ok(Self {
            header_enc: (*header_enc).to_owned(),
            header,
            caveats,
            tag,
        })
    }
}

impl CapabilityToken {
    /// The compact string form, usable as a password or a bearer token.
    ///
    /// This is a bearer credential: whoever holds it can use it. There is deliberately no
    /// `Display` impl, so it cannot end up in a log line by accident.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(
            PREFIX.len()
                + self.header_enc.len()
                + self.caveats.iter().map(|(e, _)| e.len() + 1).sum::<usize>()
                + 45,
        );
        out.push_str(PREFIX);
        out.push('.');
        out.push_str(&self.header_enc);
        for (enc, _) in &self.caveats {
            out.push('.');
            out.push_str(enc);
        }
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(self.tag));
        out
    }
}

/// Shows the capability id and caveat count, never the tag (the bearer secret).
impl fmt::Debug for CapabilityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapabilityToken")
            .field("id", &self.header.c.id)
            .field("subject", &self.header.c.subject)
            .field("caveats", &self.caveats.len())
            .finish_non_exhaustive()
    }
}
