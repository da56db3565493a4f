//! Request fingerprints: a 128-bit digest of the request body, stored with
//! the claim so that a reused key with a different payload is caught.

use std::fmt;

use sha2::{Digest, Sha256};

/// A 128-bit request digest (the first 16 bytes of SHA-256). Nothing here
/// blocks or fails; [`Fingerprint::of`] costs one SHA-256 of the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint of a request body.
    pub fn of(bytes: impl AsRef<[u8]>) -> Fingerprint {
        let digest = Sha256::digest(bytes.as_ref());
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Fingerprint(out)
    }

    /// A fingerprint from 16 bytes computed elsewhere.
    pub fn from_bytes(bytes: [u8; 16]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The 16 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", crate::text::hex(&self.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::hex(&self.0))
    }
}
