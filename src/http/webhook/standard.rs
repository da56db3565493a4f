//! Standard Webhooks v1 (<https://www.standardwebhooks.com>), symmetric
//! signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use http::HeaderMap;

use super::common::{self, Key, MAX_ENTRIES, TAG_LEN};
use super::{SignatureError, Verifier};

/// Base64 as senders write it: padded or not, trailing bits ignored (the
/// reference libraries accept unpadded secrets).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The prefix of serialized symmetric secrets.
const SECRET_PREFIX: &str = "whsec_";

/// The header names: the standard's, then those of Svix, its reference
/// sender, used when none of the standard's is present.
const STANDARD_NAMES: Names =
    Names { id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature" };
const SVIX_NAMES: Names =
    Names { id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature" };

struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

/// Verifies (and signs) [Standard Webhooks] v1 symmetric signatures.
///
/// A request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
/// `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries
/// over `{id}.{timestamp}.{body}` (the body as raw bytes). It is accepted
/// when any `v1` entry matches under any configured secret (entries of
/// other versions, such as the asymmetric `v1a`, are ignored) and the
/// timestamp is within the tolerance of now (5 minutes by default) in
/// either direction. When none of the `webhook-*` headers is present the
/// `svix-id`, `svix-timestamp` and `svix-signature` headers of Svix, the
/// standard's reference sender, are read instead.
///
/// Rotation works both ways: configure the old and the new secret with
/// [`with_secret`](Self::with_secret), and a sender that signs with either
/// (or with both, one entry each) is accepted.
///
/// Also refused, as malformed: an id containing `.` (the standard forbids
/// it: the signed content could be split another way), more than 32
/// signature entries, repeated or non-ASCII headers.
///
/// `Debug` shows the number of secrets and the tolerance, never a secret.
///
/// [Standard Webhooks]: https://www.standardwebhooks.com
#[derive(Clone)]
pub struct StandardWebhooks {
    keys: Vec<Key>,
    tolerance: Duration,
}

impl StandardWebhooks {
    /// How far a timestamp may be from now, by default: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

    /// A verifier with one secret: `whsec_<base64>` as providers hand it
    /// out, or the base64 alone (padded or not).
    ///
    /// Errors: [`SignatureError::InvalidSecret`] if it is not base64 or
    /// decodes to nothing. Pure CPU; never blocks.
    pub fn new(secret: &str) -> Result<StandardWebhooks, SignatureError> {
        Ok(StandardWebhooks {
            keys: vec![decode_secret(secret)?],
            tolerance: Self::DEFAULT_TOLERANCE,
        })
    }

    /// This verifier, also accepting signatures made with `secret` (for
    /// rotation). [`sign`](Self::sign) keeps using the first secret.
    ///
    /// Errors: as [`new`](Self::new). Never blocks.
    pub fn with_secret(mut self, secret: &str) -> Result<StandardWebhooks, SignatureError> {
        self.keys.push(decode_secret(secret)?);
        Ok(self)
    }

    /// This verifier with another tolerance: how far the signed timestamp
    /// may be from now, in whole seconds (a fraction is dropped), in the
    /// past or the future, bounds included. Never blocks.
    pub fn tolerance(mut self, tolerance: Duration) -> StandardWebhooks {
        self.tolerance = tolerance;
        self
    }

    /// The `webhook-signature` value a sender attaches: `v1,<base64>`,
    /// signed with the first secret. For tests and senders; pure CPU,
    /// never blocks, never fails.
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
        let ts = timestamp_secs.to_string();
        let tag = common::tag(&self.keys[0], &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", STANDARD.encode(tag))
    }
}

/// The key of a `whsec_` secret.
fn decode_secret(secret: &str) -> Result<Key, SignatureError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let bytes = LENIENT.decode(b64).map_err(|_| {
        SignatureError::secret("it is not base64 (after the optional whsec_ prefix)")
    })?;
    common::key(&bytes)
}

impl fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("secrets", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier for StandardWebhooks {
    /// Checks the `webhook-*` (or `svix-*`) headers against `body`.
    ///
    /// Errors, in this order: [`SignatureError::MissingHeader`] or
    /// [`SignatureError::MalformedHeader`] (id, timestamp, signature),
    /// [`SignatureError::NoValidSignature`], then
    /// [`SignatureError::TimestampOutsideTolerance`] for a genuine but
    /// stale (or future) message. Pure CPU; never blocks.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let standard = [STANDARD_NAMES.id, STANDARD_NAMES.timestamp, STANDARD_NAMES.signature];
        let svix = [SVIX_NAMES.id, SVIX_NAMES.timestamp, SVIX_NAMES.signature];
        let names = if !standard.iter().any(|n| headers.contains_key(*n))
            && svix.iter().any(|n| headers.contains_key(*n))
        {
            &SVIX_NAMES
        } else {
            &STANDARD_NAMES
        };
        let id = common::required(headers, names.id)?;
        if id.contains('.') {
            return Err(SignatureError::malformed(names.id, "the id contains '.'"));
        }
        let ts_text = common::required(headers, names.timestamp)?;
        let timestamp = common::parse_timestamp(names.timestamp, ts_text)?;
        let list = common::required(headers, names.signature)?;
        let tags = parse_signatures(names.signature, list)?;

        let content: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
        if !common::any_matches(&self.keys, &content, &tags) {
            return Err(SignatureError::NoValidSignature);
        }
        common::check_tolerance(timestamp, now, self.tolerance)
    }
}

/// The `v1` tags of a signature list. Entries of other versions, and `v1`
/// entries that are not base64 of 32 bytes, are skipped (they cannot
/// match). Errors: more than [`MAX_ENTRIES`] entries.
fn parse_signatures(name: &'static str, list: &str) -> Result<Vec<[u8; TAG_LEN]>, SignatureError> {
    let mut tags = Vec::new();
    for (n, entry) in list.split_ascii_whitespace().enumerate() {
        if n == MAX_ENTRIES {
            return Err(SignatureError::malformed(name, "it lists more than 32 signatures"));
        }
        let Some(("v1", b64)) = entry.split_once(',') else { continue };
        // 32 bytes are 43 base64 digits, 44 with padding.
        if !(43..=44).contains(&b64.len()) {
            continue;
        }
        let mut tag = [0u8; TAG_LEN];
        if matches!(LENIENT.decode_slice(b64, &mut tag), Ok(TAG_LEN)) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    // The Standard Webhooks reference libraries' sign test
    // (standard-webhooks/standard-webhooks at b2fa7b8719fb: python
    // tests/test_webhooks.py test_sign_function, and the same vector in the
    // go, javascript, ruby and csharp tests).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).expect("header"));
        h.insert("webhook-timestamp", HeaderValue::from_str(ts).expect("header"));
        h.insert("webhook-signature", HeaderValue::from_str(sig).expect("header"));
        h
    }

    fn wh(secret: &str) -> StandardWebhooks {
        StandardWebhooks::new(secret).expect("valid secret")
    }

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        let v = wh(SECRET);
        assert_eq!(v.sign(ID, TS, BODY), EXPECTED);
        let h = headers(ID, &TS.to_string(), EXPECTED);
        assert_eq!(v.verify(&h, BODY, at(TS)), Ok(()));
        // The base64 without the prefix is the same secret.
        assert_eq!(wh("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").verify(&h, BODY, at(TS)), Ok(()));
    }

    #[test]
    fn the_rust_reference_vector_signs() {
        // standard-webhooks libraries/rust/src/lib.rs, test_sign.
        let v = wh("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            v.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn unpadded_secrets_decode_like_padded_ones() {
        // The python library's test_signature_verification_with_unpadded_secret.
        for (unpadded, padded) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr=="),
        ] {
            let sig = wh(padded).sign(ID, TS, BODY);
            let h = headers(ID, &TS.to_string(), &sig);
            assert_eq!(wh(unpadded).verify(&h, BODY, at(TS)), Ok(()));
            assert_eq!(wh(&format!("whsec_{unpadded}")).verify(&h, BODY, at(TS)), Ok(()));
        }
    }

    #[test]
    fn any_listed_signature_under_any_secret_is_enough() {
        let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let both = wh(SECRET).with_secret(old).expect("valid");
        let by_old = wh(old).sign(ID, TS, BODY);
        let ts = TS.to_string();
        for list in [
            EXPECTED.to_string(),
            by_old.clone(),
            format!("{by_old} {EXPECTED}"),
            format!(
                "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== {EXPECTED}"
            ),
            format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,x  {EXPECTED}"),
            format!("garbage v1, v1,!!! {by_old}"),
        ] {
            assert_eq!(both.verify(&headers(ID, &ts, &list), BODY, at(TS)), Ok(()), "{list}");
        }
        // A verifier with only the old secret refuses the new signature.
        let h = headers(ID, &ts, EXPECTED);
        assert_eq!(wh(old).verify(&h, BODY, at(TS)), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn tampering_or_a_wrong_secret_is_refused() {
        let v = wh(SECRET);
        let ts = TS.to_string();
        let no = Err(SignatureError::NoValidSignature);
        assert_eq!(v.verify(&headers(ID, &ts, EXPECTED), br#"{"test": 2432232315}"#, at(TS)), no);
        assert_eq!(v.verify(&headers("msg_other", &ts, EXPECTED), BODY, at(TS)), no);
        assert_eq!(v.verify(&headers(ID, "1614265331", EXPECTED), BODY, at(TS)), no);
        // The same instant written with a leading zero is another message.
        assert_eq!(v.verify(&headers(ID, "01614265330", EXPECTED), BODY, at(TS)), no);
        let wrong = wh("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        assert_eq!(wrong.verify(&headers(ID, &ts, EXPECTED), BODY, at(TS)), no);
        // Signatures that are not v1 base64 of 32 bytes never match.
        for list in
            ["v1,", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "v1,g0hM9SsE", "nonsense"]
        {
            assert_eq!(v.verify(&headers(ID, &ts, list), BODY, at(TS)), no, "{list}");
        }
        let truncated = &EXPECTED[..EXPECTED.len() - 4];
        assert_eq!(v.verify(&headers(ID, &ts, truncated), BODY, at(TS)), no);
    }

    #[test]
    fn tolerance_edges_in_both_directions() {
        let v = wh(SECRET);
        let h = headers(ID, &TS.to_string(), EXPECTED);
        let five_min = 300;
        assert_eq!(v.verify(&h, BODY, at(TS + five_min)), Ok(()));
        assert_eq!(v.verify(&h, BODY, at(TS - five_min)), Ok(()));
        assert_eq!(
            v.verify(&h, BODY, at(TS + five_min + 1)),
            Err(SignatureError::TimestampOutsideTolerance { age_secs: 301, tolerance_secs: 300 })
        );
        assert_eq!(
            v.verify(&h, BODY, at(TS - five_min - 1)),
            Err(SignatureError::TimestampOutsideTolerance { age_secs: -301, tolerance_secs: 300 })
        );
        let v = v.tolerance(Duration::from_secs(10));
        assert_eq!(v.verify(&h, BODY, at(TS + 10)), Ok(()));
        assert!(v.verify(&h, BODY, at(TS + 11)).is_err());
        // A forged stale message is reported as forged, not as stale.
        let forged =
            headers(ID, &TS.to_string(), "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=");
        assert_eq!(v.verify(&forged, BODY, at(TS + 3600)), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn svix_headers_are_read_when_the_standard_ones_are_absent() {
        let v = wh(SECRET);
        let mut h = HeaderMap::new();
        h.insert("svix-id", HeaderValue::from_static(ID));
        h.insert("svix-timestamp", HeaderValue::from_static("1614265330"));
        h.insert("svix-signature", HeaderValue::from_static(EXPECTED));
        assert_eq!(v.verify(&h, BODY, at(TS)), Ok(()));
        h.remove("svix-timestamp");
        assert_eq!(
            v.verify(&h, BODY, at(TS)),
            Err(SignatureError::MissingHeader { name: "svix-timestamp" })
        );
        // One standard header present: the standard names are used.
        h.insert("webhook-id", HeaderValue::from_static(ID));
        assert_eq!(
            v.verify(&h, BODY, at(TS)),
            Err(SignatureError::MissingHeader { name: "webhook-timestamp" })
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_typed() {
        let v = wh(SECRET);
        let ts = TS.to_string();
        let full = headers(ID, &ts, EXPECTED);
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut h = full.clone();
            h.remove(name);
            assert_eq!(v.verify(&h, BODY, at(TS)), Err(SignatureError::MissingHeader { name }));
        }
        let malformed = |h: &HeaderMap| {
            matches!(v.verify(h, BODY, at(TS)), Err(SignatureError::MalformedHeader { .. }))
        };
        assert!(malformed(&headers("msg.1", &ts, EXPECTED)));
        assert!(malformed(&headers(ID, "-1614265330", EXPECTED)));
        assert!(malformed(&headers(ID, "1614265330.5", EXPECTED)));
        assert!(malformed(&headers(ID, "99999999999999999999", EXPECTED)));
        assert!(malformed(&headers(ID, &ts, "")));
        let mut many = vec!["v1,AAAA"; 32];
        many.push(EXPECTED);
        assert!(malformed(&headers(ID, &ts, &many.join(" "))));
        many.remove(0);
        assert_eq!(v.verify(&headers(ID, &ts, &many.join(" ")), BODY, at(TS)), Ok(()));
        // A timestamp at u64::MAX parses, and is far in the future.
        let max = u64::MAX.to_string();
        let sig = v.sign(ID, u64::MAX, BODY);
        assert_eq!(
            v.verify(&headers(ID, &max, &sig), BODY, at(TS)),
            Err(SignatureError::TimestampOutsideTolerance {
                age_secs: i64::MIN,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn bodies_need_not_be_utf8() {
        let v = wh(SECRET);
        let body = [0xff, 0x00, 0xfe, b'.', 0x80];
        let sig = v.sign(ID, TS, &body);
        assert_eq!(v.verify(&headers(ID, &TS.to_string(), &sig), &body, at(TS)), Ok(()));
        assert_eq!(
            v.verify(&headers(ID, &TS.to_string(), &sig), &body[1..], at(TS)),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn unusable_secrets_are_refused_without_echoing_them() {
        for bad in ["", "whsec_", "whsec_not base64!", "whsec_%%%%", "=", "whsec_===="] {
            let got = StandardWebhooks::new(bad);
            assert!(matches!(got, Err(SignatureError::InvalidSecret { .. })), "{bad:?}: {got:?}");
            assert!(wh(SECRET).with_secret(bad).is_err());
        }
        let Err(e) = StandardWebhooks::new("whsec_c2VjcmV0c2VjcmV0!") else { panic!("not base64") };
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        let debug = format!("{:?}", wh(SECRET));
        assert!(!debug.contains("MfKQ"), "{debug}");
        assert!(debug.contains("secrets: 1"), "{debug}");
    }
}
