//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`): the provider signs every delivery with
//! [`Signer::sign`], the server checks each request with [`verified`]
//! before the idempotency layer sees it — so a bad signature never reaches
//! the store.
//!
//! TODO(signatures): this is the one place where signing and verification
//! plug in. Until `idemkv::http::webhook` lands on main, [`Signer`] is a
//! STAND-IN with the same shape — NOT a real HMAC, do not copy it — and
//! [`verified`] a small axum middleware answering 400 (headers missing) or
//! 401 (bad signature, stale timestamp). Once it lands: `Signer` wraps
//! `idemkv::http::webhook::StandardWebhooks::new(secret)?` and its
//! `.sign(id, timestamp_secs, body)`, and `verified` becomes
//! `route.layer(VerifyLayer::new(webhooks))`; nothing else in the demo changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::rng::{hash, hash_bytes};

/// The demo's signing secret, shared by the provider and the server (sent to
/// the server in its environment, never on a command line).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another secret: what a forger without the real one signs with.
pub const WRONG_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The environment variable that hands [`SECRET`] to the server.
pub const SECRET_ENV: &str = "IDEMKV_DEMO_WEBHOOK_SECRET";
/// How far a `webhook-timestamp` may be from now (Standard Webhooks: 5 minutes).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The largest body the verifier reads.
const MAX_BODY: usize = 1 << 20;

/// Signs and verifies with one secret.
#[derive(Debug, Clone)]
pub struct Signer {
    key: u64,
}

impl Signer {
    /// A signer for a `whsec_…` secret.
    pub fn new(secret: &str) -> Result<Signer> {
        let Some(key) = secret.strip_prefix("whsec_").filter(|k| !k.is_empty()) else {
            bail!("a webhook secret starts with whsec_");
        };
        Ok(Signer { key: hash_bytes(key.as_bytes()) })
    }

    /// The `webhook-signature` value of a delivery.
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
        let mac = hash(&[self.key, hash_bytes(id.as_bytes()), timestamp_secs, hash_bytes(body)]);
        format!("v1,{mac:016x}")
    }

    /// Checks a request's signature headers against its body: 400 when a
    /// header is missing or malformed, 401 when the timestamp is outside
    /// [`TOLERANCE`] or no signature matches.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, &'static str)> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(id), Some(ts), Some(sigs)) =
            (get("webhook-id"), get("webhook-timestamp"), get("webhook-signature"))
        else {
            return Err((StatusCode::BAD_REQUEST, "missing webhook signature headers"));
        };
        let Ok(ts) = ts.parse::<u64>() else {
            return Err((StatusCode::BAD_REQUEST, "malformed webhook-timestamp"));
        };
        if now_secs().abs_diff(ts) > TOLERANCE.as_secs() {
            return Err((StatusCode::UNAUTHORIZED, "webhook-timestamp outside the tolerance"));
        }
        let want = self.sign(id, ts, body);
        if sigs.split(' ').any(|s| s == want) {
            Ok(())
        } else {
            Err((StatusCode::UNAUTHORIZED, "no matching webhook signature"))
        }
    }
}

/// Seconds since the Unix epoch (the `webhook-timestamp` unit).
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `route` with the signature check outermost: requests that fail it are
/// answered 400/401 here and never reach the layers inside.
pub fn verified<S>(route: MethodRouter<S>, signer: &Signer) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.layer(axum::middleware::from_fn_with_state(signer.clone(), check))
}

async fn check(State(signer): State<Signer>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::BAD_REQUEST, "unreadable or oversized body").into_response();
    };
    match signer.verify(&parts.headers, &bytes) {
        Ok(()) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(rejection) => rejection.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_secret_id_timestamp_and_body() {
        let s = Signer::new(SECRET).unwrap();
        let other = Signer::new(WRONG_SECRET).unwrap();
        let good = s.sign("evt_1", 100, b"{}");
        assert_ne!(good, other.sign("evt_1", 100, b"{}"));
        assert_ne!(good, s.sign("evt_2", 100, b"{}"));
        assert_ne!(good, s.sign("evt_1", 101, b"{}"));
        assert_ne!(good, s.sign("evt_1", 100, b"{ }"));
        assert!(Signer::new("secret").is_err());

        let now = now_secs();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "evt_1".parse().unwrap());
        h.insert("webhook-timestamp", now.to_string().parse().unwrap());
        assert_eq!(s.verify(&h, b"{}").unwrap_err().0, StatusCode::BAD_REQUEST);
        h.insert(
            "webhook-signature",
            format!("v1,x {}", s.sign("evt_1", now, b"{}")).parse().unwrap(),
        );
        assert!(s.verify(&h, b"{}").is_ok());
        assert_eq!(s.verify(&h, b"{ }").unwrap_err().0, StatusCode::UNAUTHORIZED);
        let stale = now - 600;
        h.insert("webhook-timestamp", stale.to_string().parse().unwrap());
        h.insert("webhook-signature", s.sign("evt_1", stale, b"{}").parse().unwrap());
        assert_eq!(s.verify(&h, b"{}").unwrap_err().0, StatusCode::UNAUTHORIZED);
    }
}
