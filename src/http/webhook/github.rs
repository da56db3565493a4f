//! GitHub's `X-Hub-Signature-256`: HMAC-SHA256 of the body.

use std::fmt;
use std::time::SystemTime;

use http::HeaderMap;

use super::common::{self, Key};
use super::{SignatureError, Verifier};

/// The header's name.
const HEADER: &str = "x-hub-signature-256";

/// Verifies (and signs) GitHub webhook deliveries.
///
/// A delivery carries `X-Hub-Signature-256: sha256=<hex>`, the lower-case
/// hex HMAC-SHA256 of the body keyed by the webhook's secret (its UTF-8
/// bytes). GitHub signs no timestamp, so nothing bounds a replay of a
/// captured delivery: deduplicate on `X-GitHub-Delivery` (which is what
/// an idempotency store is for). The legacy SHA-1 `X-Hub-Signature` is
/// not read.
///
/// Several secrets may be configured with [`with_secret`](Self::with_secret)
/// while changing a webhook's secret: a delivery signed with either passes.
///
/// `Debug` shows the number of secrets, never a secret.
#[derive(Clone)]
pub struct GitHub {
    keys: Vec<Key>,
}

impl GitHub {
    /// A verifier with the webhook's secret.
    ///
    /// Errors: [`SignatureError::InvalidSecret`] if it is empty. Pure CPU;
    /// never blocks.
    pub fn new(secret: &str) -> Result<GitHub, SignatureError> {
        Ok(GitHub { keys: vec![common::key(secret.as_bytes())?] })
    }

    /// This verifier, also accepting deliveries signed with `secret` (for
    /// rotation). [`sign`](Self::sign) keeps using the first secret.
    ///
    /// Errors: as [`new`](Self::new). Never blocks.
    pub fn with_secret(mut self, secret: &str) -> Result<GitHub, SignatureError> {
        self.keys.push(common::key(secret.as_bytes())?);
        Ok(self)
    }

    /// The `X-Hub-Signature-256` value for `body`: `sha256=<hex>`, signed
    /// with the first secret. For tests and senders; pure CPU, never
    /// blocks, never fails.
    pub fn sign(&self, body: &[u8]) -> String {
        format!("sha256={}", common::hex(&common::tag(&self.keys[0], &[body])))
    }
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub").field("secrets", &self.keys.len()).finish()
    }
}

impl Verifier for GitHub {
    /// Checks `X-Hub-Signature-256` against `body`; `now` is not used.
    ///
    /// Errors: [`SignatureError::MissingHeader`];
    /// [`SignatureError::MalformedHeader`] if the value is not `sha256=`
    /// and 64 hex digits (or is repeated, or not visible ASCII);
    /// [`SignatureError::NoValidSignature`] if it does not match under any
    /// configured secret. Pure CPU; never blocks.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: SystemTime,
    ) -> Result<(), SignatureError> {
        let value = common::required(headers, HEADER)?;
        let tag = value.strip_prefix("sha256=").and_then(common::unhex_tag).ok_or_else(|| {
            SignatureError::malformed(HEADER, "it is not sha256= and 64 hex digits")
        })?;
        if common::any_matches(&self.keys, &[body], &[tag]) {
            Ok(())
        } else {
            Err(SignatureError::NoValidSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    // docs.github.com, "Validating webhook deliveries", section "Testing the
    // webhook payload validation" (github/docs content/webhooks/
    // using-webhooks/validating-webhook-deliveries.md).
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const EXPECTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(value).expect("header"));
        h
    }

    fn github(secret: &str) -> GitHub {
        GitHub::new(secret).expect("non-empty")
    }

    #[test]
    fn the_documented_example_signs_and_verifies() {
        let v = github(SECRET);
        assert_eq!(v.sign(BODY), EXPECTED);
        // No timestamp: any time will do.
        for now in [UNIX_EPOCH, SystemTime::now(), UNIX_EPOCH - std::time::Duration::from_secs(9)] {
            assert_eq!(v.verify(&headers(EXPECTED.as_bytes()), BODY, now), Ok(()));
        }
        // Upper-case hex is the same signature.
        let upper = format!("sha256={}", EXPECTED["sha256=".len()..].to_uppercase());
        assert_eq!(v.verify(&headers(upper.as_bytes()), BODY, UNIX_EPOCH), Ok(()));
    }

    #[test]
    fn rotation_tampering_and_wrong_secrets() {
        let both = github("new secret").with_secret(SECRET).expect("non-empty");
        let h = headers(EXPECTED.as_bytes());
        assert_eq!(both.verify(&h, BODY, UNIX_EPOCH), Ok(()));
        let no = Err(SignatureError::NoValidSignature);
        assert_eq!(github("new secret").verify(&h, BODY, UNIX_EPOCH), no);
        assert_eq!(github(SECRET).verify(&h, b"Hello, World?", UNIX_EPOCH), no);
        assert_eq!(github(SECRET).verify(&h, b"", UNIX_EPOCH), no);
    }

    #[test]
    fn missing_and_malformed_headers_are_typed() {
        let v = github(SECRET);
        assert_eq!(
            v.verify(&HeaderMap::new(), BODY, UNIX_EPOCH),
            Err(SignatureError::MissingHeader { name: HEADER })
        );
        let hex = &EXPECTED["sha256=".len()..];
        for value in [
            "".to_string(),
            hex.to_string(),
            format!("sha1={hex}"),
            format!("SHA256={hex}"),
            format!("sha256={}", &hex[..62]),
            format!("sha256={hex}00"),
            format!("sha256=zz{}", &hex[2..]),
            format!("sha256= {hex}"),
        ] {
            let got = v.verify(&headers(value.as_bytes()), BODY, UNIX_EPOCH);
            assert!(matches!(got, Err(SignatureError::MalformedHeader { .. })), "{value}: {got:?}");
        }
        let got = v.verify(&headers(b"sha256=\xff\xfe"), BODY, UNIX_EPOCH);
        assert!(matches!(got, Err(SignatureError::MalformedHeader { .. })), "{got:?}");
        assert!(matches!(GitHub::new(""), Err(SignatureError::InvalidSecret { .. })));
        assert!(!format!("{v:?}").contains("Secret"));
    }
}
