//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), from `idemkv::http::webhook`: the provider signs
//! every delivery with [`Signer::sign`], the server checks each request
//! with [`verified`] — `VerifyLayer` outermost, before the idempotency
//! layer — so a bad signature never reaches the store. The one place where
//! signing and verification plug in.

use std::time::Duration;

use anyhow::{Context, Result};
use axum::routing::MethodRouter;
use idemkv::http::webhook::{StandardWebhooks, VerifyLayer};

/// The demo's signing secret, shared by the provider and the server (sent to
/// the server in its environment, never on a command line).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another secret: what a forger without the real one signs with.
pub const WRONG_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The environment variable that hands [`SECRET`] to the server.
pub const SECRET_ENV: &str = "IDEMKV_DEMO_WEBHOOK_SECRET";
/// How far a `webhook-timestamp` may be from now (Standard Webhooks: 5 minutes).
pub const TOLERANCE: Duration = StandardWebhooks::DEFAULT_TOLERANCE;

/// Signs (the provider) and verifies (the server) with one secret.
#[derive(Debug, Clone)]
pub struct Signer {
    scheme: StandardWebhooks,
}

impl Signer {
    /// A signer for a `whsec_…` secret.
    pub fn new(secret: &str) -> Result<Signer> {
        let scheme = StandardWebhooks::new(secret).context("the webhook signing secret")?;
        Ok(Signer { scheme })
    }

    /// The `webhook-signature` value of a delivery.
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
        self.scheme.sign(id, timestamp_secs, body)
    }
}

/// Seconds since the Unix epoch (the `webhook-timestamp` unit).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `route` with the signature check outermost: requests that fail it are
/// answered 400/401 (problem+json, `webhook_*` codes) by `VerifyLayer` and
/// never reach the layers inside.
pub fn verified<S>(route: MethodRouter<S>, signer: &Signer) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.layer(VerifyLayer::new(signer.scheme.clone()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use axum::http::HeaderMap;
    use idemkv::http::webhook::{SignatureError, Verifier};

    use super::*;

    #[test]
    fn the_provider_signs_what_the_server_verifies() {
        let s = Signer::new(SECRET).unwrap();
        let forger = Signer::new(WRONG_SECRET).unwrap();
        let now = 1_700_000_000;
        let headers = |sig: String| {
            let mut h = HeaderMap::new();
            h.insert("webhook-id", "evt_1".parse().unwrap());
            h.insert("webhook-timestamp", now.to_string().parse().unwrap());
            h.insert("webhook-signature", sig.parse().unwrap());
            h
        };
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let good = headers(s.sign("evt_1", now, b"{}"));
        assert_eq!(s.scheme.verify(&good, b"{}", at(now)), Ok(()));
        assert_eq!(s.scheme.verify(&good, b"{ }", at(now)), Err(SignatureError::NoValidSignature));
        let forged = headers(forger.sign("evt_1", now, b"{}"));
        assert_eq!(s.scheme.verify(&forged, b"{}", at(now)), Err(SignatureError::NoValidSignature));
        let stale = s.scheme.verify(&good, b"{}", at(now + 2 * TOLERANCE.as_secs()));
        assert!(
            matches!(stale, Err(SignatureError::TimestampOutsideTolerance { .. })),
            "{stale:?}"
        );
        assert!(Signer::new("whsec_!!").is_err());
    }
}
