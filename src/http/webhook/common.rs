//! What the three schemes share: reading headers, timestamps and the
//! tolerance, HMAC-SHA256 keys and constant-time matching, hex.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::SignatureError;

/// An HMAC-SHA256 state keyed with one secret (cloned for each message,
/// so the key is hashed once).
pub(crate) type Key = Hmac<Sha256>;

/// The length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// The most entries a signature header may hold (signatures of any
/// version, plus Stripe's `t=`). Real senders list one per active secret;
/// the cap bounds the work an attacker can ask for with one request.
pub(crate) const MAX_ENTRIES: usize = 32;

/// The longest timestamp accepted, in digits (leading zeros included).
const MAX_TIMESTAMP_DIGITS: usize = 20;

/// A key for `secret`: [`SignatureError::InvalidSecret`] if it is empty.
pub(crate) fn key(secret: &[u8]) -> Result<Key, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::secret("it is empty"));
    }
    // HMAC takes keys of any length: this never fails.
    Key::new_from_slice(secret).map_err(|_| SignatureError::secret("unusable key length"))
}

/// The HMAC-SHA256 tag of the concatenated `parts` under `key`.
pub(crate) fn tag(key: &Key, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether any of `tags` is the tag of the concatenated `parts` under any
/// of `keys`. Each comparison is constant time (`Mac::verify_slice`); a tag
/// of the wrong length never matches.
pub(crate) fn any_matches<T: AsRef<[u8]>>(keys: &[Key], parts: &[&[u8]], tags: &[T]) -> bool {
    keys.iter().any(|key| {
        let mut mac = key.clone();
        for part in parts {
            mac.update(part);
        }
        tags.iter().any(|tag| mac.clone().verify_slice(tag.as_ref()).is_ok())
    })
}

/// The value of header `name` as text; `None` if it is absent.
///
/// Errors: [`SignatureError::MalformedHeader`] if it is sent more than
/// once, is empty (or blank), or is not visible ASCII.
pub(crate) fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(SignatureError::malformed(name, "it is sent more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| SignatureError::malformed(name, "it is not visible ASCII"))?
        .trim();
    if text.is_empty() {
        return Err(SignatureError::malformed(name, "it is empty"));
    }
    Ok(Some(text))
}

/// Like [`header`], with [`SignatureError::MissingHeader`] if absent.
pub(crate) fn required<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, SignatureError> {
    header(headers, name)?.ok_or(SignatureError::MissingHeader { name })
}

/// A Unix timestamp in seconds: ASCII digits only (no sign, no spaces, no
/// fraction), at most 20 of them, fitting a `u64`.
///
/// Errors: [`SignatureError::MalformedHeader`] naming `name`.
pub(crate) fn parse_timestamp(name: &'static str, text: &str) -> Result<u64, SignatureError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::malformed(
            name,
            "the timestamp is not a whole, non-negative number of seconds",
        ));
    }
    if text.len() > MAX_TIMESTAMP_DIGITS {
        return Err(SignatureError::malformed(name, "the timestamp has too many digits"));
    }
    text.parse::<u64>()
        .map_err(|_| SignatureError::malformed(name, "the timestamp is too large for 64 bits"))
}

/// Whole seconds since the Unix epoch, rounded down (negative before it).
fn unix_secs(now: SystemTime) -> i128 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(before) => {
            let d = before.duration();
            -(i128::from(d.as_secs()) + i128::from(d.subsec_nanos() > 0))
        }
    }
}

/// Ok if `timestamp` lies within `tolerance` (whole seconds, the fraction
/// dropped) of `now`, bounds included, in either direction.
///
/// Errors: [`SignatureError::TimestampOutsideTolerance`].
pub(crate) fn check_tolerance(
    timestamp: u64,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let tolerance_secs = tolerance.as_secs();
    let age = unix_secs(now) - i128::from(timestamp);
    if age.unsigned_abs() <= u128::from(tolerance_secs) {
        return Ok(());
    }
    let age_secs = i64::try_from(age).unwrap_or(if age < 0 { i64::MIN } else { i64::MAX });
    Err(SignatureError::TimestampOutsideTolerance { age_secs, tolerance_secs })
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The tag written as 64 hex digits (either case); `None` otherwise.
pub(crate) fn unhex_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != TAG_LEN * 2 {
        return None;
    }
    let mut out = [0u8; TAG_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const T: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tolerance_bounds_are_inclusive_both_ways() {
        let tol = Duration::from_secs(300);
        assert_eq!(check_tolerance(T, at(T), tol), Ok(()));
        assert_eq!(check_tolerance(T, at(T + 300), tol), Ok(()));
        assert_eq!(check_tolerance(T + 300, at(T), tol), Ok(()));
        let late = check_tolerance(T, at(T + 301), tol);
        assert_eq!(
            late,
            Err(SignatureError::TimestampOutsideTolerance { age_secs: 301, tolerance_secs: 300 })
        );
        let early = check_tolerance(T + 301, at(T), tol);
        assert_eq!(
            early,
            Err(SignatureError::TimestampOutsideTolerance { age_secs: -301, tolerance_secs: 300 })
        );
        // Sub-second parts: now is rounded down, the tolerance too.
        let now = at(T + 300) + Duration::from_millis(999);
        assert_eq!(check_tolerance(T, now, tol + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn extreme_timestamps_and_clocks_saturate() {
        let tol = Duration::from_secs(300);
        assert_eq!(
            check_tolerance(u64::MAX, at(T), tol),
            Err(SignatureError::TimestampOutsideTolerance {
                age_secs: i64::MIN,
                tolerance_secs: 300
            })
        );
        assert!(check_tolerance(0, at(T), tol).is_err());
        assert_eq!(check_tolerance(u64::MAX, at(T), Duration::MAX), Ok(()));
        // A clock before the epoch.
        let before = UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(unix_secs(before), -2);
        assert_eq!(
            check_tolerance(0, before, Duration::from_secs(1)),
            Err(SignatureError::TimestampOutsideTolerance { age_secs: -2, tolerance_secs: 1 })
        );
    }

    #[test]
    fn timestamps_are_plain_digits_that_fit() {
        assert_eq!(parse_timestamp("t", "0"), Ok(0));
        assert_eq!(parse_timestamp("t", "0001614265330"), Ok(1_614_265_330));
        assert_eq!(parse_timestamp("t", &u64::MAX.to_string()), Ok(u64::MAX));
        for bad in ["", "-1", "+1", " 1", "1.5", "1e9", "abc", "１２", "18446744073709551616"] {
            assert!(
                matches!(parse_timestamp("t", bad), Err(SignatureError::MalformedHeader { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_timestamp("t", &"9".repeat(10_000)).is_err());
    }

    #[test]
    fn headers_absent_repeated_empty_or_not_ascii() {
        let mut h = HeaderMap::new();
        assert_eq!(header(&h, "webhook-id"), Ok(None));
        assert_eq!(
            required(&h, "webhook-id"),
            Err(SignatureError::MissingHeader { name: "webhook-id" })
        );
        h.insert("webhook-id", HeaderValue::from_static("  msg_1 "));
        assert_eq!(required(&h, "webhook-id"), Ok("msg_1"));
        h.append("webhook-id", HeaderValue::from_static("msg_2"));
        assert!(matches!(required(&h, "webhook-id"), Err(SignatureError::MalformedHeader { .. })));
        for bad in [&b""[..], b"   ", b"caf\xc3\xa9", b"\xff"] {
            let mut h = HeaderMap::new();
            h.insert("webhook-id", HeaderValue::from_bytes(bad).expect("valid header bytes"));
            assert!(
                matches!(required(&h, "webhook-id"), Err(SignatureError::MalformedHeader { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_wrong_lengths_and_digits() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 8 + 1).collect();
        let text = hex(&bytes);
        assert_eq!(unhex_tag(&text).map(|t| t.to_vec()), Some(bytes.clone()));
        assert_eq!(unhex_tag(&text.to_uppercase()).map(|t| t.to_vec()), Some(bytes));
        assert_eq!(unhex_tag(&text[..62]), None);
        assert_eq!(unhex_tag(&format!("{text}00")), None);
        assert_eq!(unhex_tag(&format!("zz{}", &text[2..])), None);
        assert_eq!(unhex_tag(""), None);
        assert_eq!(unhex_tag(&"é".repeat(32)), None);
    }

    #[test]
    fn empty_secrets_are_refused_and_tags_of_other_lengths_never_match() {
        assert!(matches!(key(b""), Err(SignatureError::InvalidSecret { .. })));
        let keys = [key(b"secret").expect("non-empty")];
        let good = tag(&keys[0], &[b"a", b"bc"]);
        assert!(any_matches(&keys, &[b"abc"], &[good]));
        assert!(!any_matches(&keys, &[b"abd"], &[good]));
        assert!(!any_matches(&keys, &[b"abc"], &[&good[..31]]));
        assert!(!any_matches::<&[u8]>(&keys, &[b"abc"], &[]));
    }
}
