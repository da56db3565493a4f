//! Why a webhook signature check failed.

use std::fmt;

/// Why a webhook's signature was not accepted, or why a verifier could not
/// be built.
///
/// The messages name headers and limits only: never a secret, a signature
/// or a header's value, so they are safe to log and to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    MissingHeader {
        /// The header's name, in lower case (`webhook-signature`, …).
        name: &'static str,
    },
    /// A header is present but cannot be read: empty, repeated, not
    /// visible ASCII, or not of the scheme's form (a timestamp that is not
    /// a whole number of seconds, a `Stripe-Signature` without `t=`, …).
    MalformedHeader {
        /// The header's name, in lower case.
        name: &'static str,
        /// What is wrong with it (never its value).
        reason: String,
    },
    /// The headers are well formed but no signature in them matches the
    /// body under any configured secret: a wrong secret, a tampered body,
    /// id or timestamp, or a forgery.
    NoValidSignature,
    /// The signature is valid but its timestamp is further from now than
    /// the tolerance: a replay, or clocks too far apart.
    TimestampOutsideTolerance {
        /// Now minus the signed timestamp, in seconds: negative when the
        /// timestamp is in the future. Saturates at the `i64` bounds.
        age_secs: i64,
        /// The tolerance, in whole seconds.
        tolerance_secs: u64,
    },
    /// A secret given to a verifier's constructor cannot be used: empty,
    /// or (Standard Webhooks) not base64.
    InvalidSecret {
        /// What is wrong with it (never the secret itself).
        reason: String,
    },
}

impl SignatureError {
    /// A malformed-header error.
    pub(crate) fn malformed(name: &'static str, reason: impl Into<String>) -> SignatureError {
        SignatureError::MalformedHeader { name, reason: reason.into() }
    }

    /// An invalid-secret error.
    pub(crate) fn secret(reason: impl Into<String>) -> SignatureError {
        SignatureError::InvalidSecret { reason: reason.into() }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::MissingHeader { name } => {
                write!(f, "the {name} header is missing")
            }
            SignatureError::MalformedHeader { name, reason } => {
                write!(f, "the {name} header is malformed: {reason}")
            }
            SignatureError::NoValidSignature => f.write_str(
                "no signature in the request matches its body under any configured secret",
            ),
            SignatureError::TimestampOutsideTolerance { age_secs, tolerance_secs } => {
                if *age_secs >= 0 {
                    write!(
                        f,
                        "the signed timestamp is {age_secs} s old, \
                         beyond the tolerance of {tolerance_secs} s"
                    )
                } else {
                    write!(
                        f,
                        "the signed timestamp is {} s in the future, \
                         beyond the tolerance of {tolerance_secs} s",
                        age_secs.unsigned_abs()
                    )
                }
            }
            SignatureError::InvalidSecret { reason } => {
                write!(f, "the webhook secret cannot be used: {reason}")
            }
        }
    }
}

impl std::error::Error for SignatureError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_header_and_the_direction_of_time() {
        let cases = [
            (
                SignatureError::MissingHeader { name: "webhook-id" },
                "the webhook-id header is missing",
            ),
            (
                SignatureError::malformed("stripe-signature", "no t= timestamp"),
                "the stripe-signature header is malformed: no t= timestamp",
            ),
            (
                SignatureError::TimestampOutsideTolerance { age_secs: 301, tolerance_secs: 300 },
                "the signed timestamp is 301 s old, beyond the tolerance of 300 s",
            ),
            (
                SignatureError::TimestampOutsideTolerance { age_secs: i64::MIN, tolerance_secs: 3 },
                "the signed timestamp is 9223372036854775808 s in the future, \
                 beyond the tolerance of 3 s",
            ),
            (SignatureError::secret("empty"), "the webhook secret cannot be used: empty"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(SignatureError::NoValidSignature);
        assert!(boxed.to_string().contains("no signature"));
    }
}
