//! Stripe's `Stripe-Signature` scheme: HMAC-SHA256 over `{t}.{body}`.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::common::{self, Key, MAX_ENTRIES, TAG_LEN};
use super::{SignatureError, Verifier};

/// The header's name.
const HEADER: &str = "stripe-signature";

/// Verifies (and signs) Stripe webhook signatures.
///
/// A request carries `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
/// (and, in test mode, `v0=` entries, ignored): each `v1` is a lower-case
/// hex HMAC-SHA256 over `{t}.{body}`, keyed by the endpoint's signing secret
/// as given — its UTF-8 bytes, `whsec_` prefix included (Stripe's secrets are
/// not base64-decoded, unlike Standard Webhooks'). It is accepted when any
/// `v1` matches under any configured secret and `t` is within the tolerance
/// of now (300 s by default, Stripe's own) in either direction.
///
/// Configure several secrets with [`with_secret`](Self::with_secret) while
/// rolling an endpoint's secret: Stripe signs with each active one.
///
/// `Debug` shows the number of secrets and the tolerance, never a secret.
#[derive(Clone)]
pub struct Stripe {
    keys: Vec<Key>,
    tolerance: Duration,
}

impl Stripe {
    /// How far `t` may be from now, by default: 300 seconds.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier with one secret (`whsec_…`, used as is).
    ///
    /// Errors: [`SignatureError::InvalidSecret`] if it is empty. Pure CPU;
    /// never blocks.
    pub fn new(secret: &str) -> Result<Stripe, SignatureError> {
        Ok(Stripe {
            keys: vec![common::key(secret.as_bytes())?],
            tolerance: Self::DEFAULT_TOLERANCE,
        })
    }

    /// This verifier, also accepting signatures made with `secret` (for
    /// rotation). [`sign`](Self::sign) keeps using the first secret.
    ///
    /// Errors: as [`new`](Self::new). Never blocks.
    pub fn with_secret(mut self, secret: &str) -> Result<Stripe, SignatureError> {
        self.keys.push(common::key(secret.as_bytes())?);
        Ok(self)
    }

    /// This verifier with another tolerance: how far `t` may be from now,
    /// in whole seconds (a fraction is dropped), in the past or the future,
    /// bounds included. Never blocks.
    pub fn tolerance(mut self, tolerance: Duration) -> Stripe {
        self.tolerance = tolerance;
        self
    }

    /// The whole `Stripe-Signature` value for `body` sent at
    /// `timestamp_secs`: `t=<timestamp>,v1=<hex>`, signed with the first
    /// secret. For tests and senders; pure CPU, never blocks, never fails.
    pub fn sign(&self, timestamp_secs: u64, body: &[u8]) -> String {
        let t = timestamp_secs.to_string();
        let tag = common::tag(&self.keys[0], &[t.as_bytes(), b".", body]);
        format!("t={t},v1={}", common::hex(&tag))
    }
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("secrets", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier for Stripe {
    /// Checks `Stripe-Signature` against `body`.
    ///
    /// Errors, in this order: [`SignatureError::MissingHeader`];
    /// [`SignatureError::MalformedHeader`] (not visible ASCII, repeated,
    /// no `t=` or more than one, a `t` that is not a whole number of
    /// seconds, more than 32 entries); [`SignatureError::NoValidSignature`]
    /// (also when there is no `v1` entry, or none of 64 hex digits); then
    /// [`SignatureError::TimestampOutsideTolerance`] for a genuine but stale
    /// (or future) event. Pure CPU; never blocks.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let value = common::required(headers, HEADER)?;
        let mut t: Option<&str> = None;
        let mut tags: Vec<[u8; TAG_LEN]> = Vec::new();
        for (n, item) in value.split(',').enumerate() {
            if n == MAX_ENTRIES {
                return Err(SignatureError::malformed(HEADER, "it has more than 32 entries"));
            }
            // Items without '=' and schemes other than t and v1 are skipped.
            let Some((name, text)) = item.trim().split_once('=') else { continue };
            match name {
                "t" if t.is_some() => {
                    return Err(SignatureError::malformed(HEADER, "it has more than one t="));
                }
                "t" => t = Some(text),
                "v1" => tags.extend(common::unhex_tag(text)),
                _ => {}
            }
        }
        let t = t.ok_or_else(|| SignatureError::malformed(HEADER, "it has no t= timestamp"))?;
        let timestamp = common::parse_timestamp(HEADER, t)?;
        if !common::any_matches(&self.keys, &[t.as_bytes(), b".", body], &tags) {
            return Err(SignatureError::NoValidSignature);
        }
        common::check_tolerance(timestamp, now, self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    // stripe/stripe-dotnet, src/StripeTests/Services/Events/EventUtilityTest.cs
    // (secret, timestamp and header) over the fixture
    // src/StripeTests/Resources/event_test_signature.json (LF line endings,
    // final newline included).
    const SECRET: &str = "webhook_secret";
    const T: u64 = 1_533_204_620;
    const HEADER_VALUE: &str = "t=1533204620,\
        v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,\
        v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
    const FIXTURE: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(value).expect("header"));
        h
    }

    fn stripe(secret: &str) -> Stripe {
        Stripe::new(secret).expect("non-empty")
    }

    #[test]
    fn the_stripe_dotnet_vector_verifies_and_signs() {
        let v = stripe(SECRET);
        let body = FIXTURE.as_bytes();
        // Their ConstructEvent test: now = t + 100, tolerance 300.
        assert_eq!(v.verify(&headers(HEADER_VALUE), body, at(T + 100)), Ok(()));
        let v1 = HEADER_VALUE.split(',').nth(1).expect("v1");
        assert_eq!(v.sign(T, body), format!("t={T},{v1}"));
        // Their RejectOutdatedTimestamp: now = t + 300 + 100.
        assert_eq!(
            v.verify(&headers(HEADER_VALUE), body, at(T + 400)),
            Err(SignatureError::TimestampOutsideTolerance { age_secs: 400, tolerance_secs: 300 })
        );
        // Their RejectIncorrectSignature: the body changed.
        let changed = format!("{FIXTURE}this_changes_the_json");
        assert_eq!(
            v.verify(&headers(HEADER_VALUE), changed.as_bytes(), at(T)),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn the_secret_is_used_as_given_not_base64_decoded() {
        let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = stripe(whsec).sign(T, b"{}");
        assert_eq!(stripe(whsec).verify(&headers(&sig), b"{}", at(T)), Ok(()));
        let decoded = stripe("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            decoded.verify(&headers(&sig), b"{}", at(T)),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn rotation_any_v1_under_any_secret() {
        let (old, new) = (stripe("whsec_old"), stripe("whsec_new"));
        let both = stripe("whsec_new").with_secret("whsec_old").expect("non-empty");
        let v1 = |s: &Stripe| s.sign(T, b"{}").split_once(",v1=").expect("v1").1.to_string();
        let forged = "00".repeat(32);
        for value in [
            format!("t={T},v1={}", v1(&old)),
            format!("t={T},v1={}", v1(&new)),
            format!("t={T},v1={forged},v1={},v0={forged}", v1(&old)),
            format!("v1={},t={T}", v1(&new)),
            format!("t={T}, v1=zz, v1={}, junk, v2={forged}", v1(&new).to_uppercase()),
        ] {
            assert_eq!(both.verify(&headers(&value), b"{}", at(T)), Ok(()), "{value}");
        }
        let only_new = format!("t={T},v1={}", v1(&new));
        assert_eq!(
            old.verify(&headers(&only_new), b"{}", at(T)),
            Err(SignatureError::NoValidSignature)
        );
        // v0 entries are not accepted in place of v1.
        let v0_only = format!("t={T},v0={}", v1(&new));
        assert_eq!(
            new.verify(&headers(&v0_only), b"{}", at(T)),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn tolerance_edges_and_tampered_timestamps() {
        let v = stripe(SECRET);
        let value = v.sign(T, b"{}");
        let h = headers(&value);
        assert_eq!(v.verify(&h, b"{}", at(T + 300)), Ok(()));
        assert_eq!(v.verify(&h, b"{}", at(T - 300)), Ok(()));
        assert!(v.verify(&h, b"{}", at(T + 301)).is_err());
        assert_eq!(
            v.verify(&h, b"{}", at(T - 301)),
            Err(SignatureError::TimestampOutsideTolerance { age_secs: -301, tolerance_secs: 300 })
        );
        let v = v.tolerance(Duration::from_secs(1));
        assert_eq!(v.verify(&h, b"{}", at(T + 1)), Ok(()));
        assert!(v.verify(&h, b"{}", at(T + 2)).is_err());
        // A changed t breaks the signature (reported as such, not as stale).
        let moved = value.replacen(&T.to_string(), &(T + 1000).to_string(), 1);
        assert_eq!(
            v.verify(&headers(&moved), b"{}", at(T + 1000)),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn malformed_headers_are_typed() {
        let v = stripe(SECRET);
        let tag = "ab".repeat(32);
        assert_eq!(
            v.verify(&HeaderMap::new(), b"", at(T)),
            Err(SignatureError::MissingHeader { name: HEADER })
        );
        for value in [
            String::new(),
            format!("v1={tag}"),
            format!("t=,v1={tag}"),
            format!("t=-5,v1={tag}"),
            format!("t=1.5,v1={tag}"),
            format!("t=99999999999999999999,v1={tag}"),
            format!("t=1,t=1,v1={tag}"),
            format!("t={T}{}", ",v1=00".repeat(32)),
            "t,v1=,v0=".to_string(),
            ",,".to_string(),
        ] {
            let got = v.verify(&headers(&value), b"{}", at(T));
            assert!(matches!(got, Err(SignatureError::MalformedHeader { .. })), "{value}: {got:?}");
        }
        for value in [format!("t={T}"), format!("t={T},v1="), format!("t={T},v1={}", &tag[..63])] {
            assert_eq!(
                v.verify(&headers(&value), b"{}", at(T)),
                Err(SignatureError::NoValidSignature)
            );
        }
        assert!(matches!(Stripe::new(""), Err(SignatureError::InvalidSecret { .. })));
        assert!(stripe(SECRET).with_secret("").is_err());
        assert!(!format!("{:?}", stripe(SECRET)).contains(SECRET));
    }
}
