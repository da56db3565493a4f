//! Webhook signature verification for receivers: [Standard Webhooks],
//! Stripe and GitHub, and a tower layer that refuses unsigned, forged or
//! stale deliveries before they reach a handler — or a store.
//!
//! Each scheme is a [`Verifier`]: a pure function of the request's headers,
//! its body bytes and the current time.
//!
//! | scheme | type | header(s) | signed content | timestamp |
//! | ------ | ---- | --------- | -------------- | --------- |
//! | Standard Webhooks v1 (and Svix) | [`StandardWebhooks`] | `webhook-id`, `webhook-timestamp`, `webhook-signature` (or `svix-*`) | `{id}.{timestamp}.{body}`, key = base64 of `whsec_…` | ±5 min |
//! | Stripe | [`Stripe`] | `Stripe-Signature: t=…,v1=…` | `{t}.{body}`, key = `whsec_…` as is | ±300 s |
//! | GitHub | [`GitHub`] | `X-Hub-Signature-256: sha256=…` | `{body}`, key = the secret | none |
//!
//! All use HMAC-SHA256 and compare in constant time. Each accepts several
//! secrets (`with_secret`) for rotation, and a delivery carrying several
//! signatures passes when any one matches under any secret. The time
//! tolerance is inclusive and applies both ways (a timestamp too far in the
//! future is refused too); it is checked after the signature, so a stale
//! forgery is reported as a forgery. Every bad input is a typed
//! [`SignatureError`], never a panic. Each scheme also signs (`sign`), for
//! tests and for senders.
//!
//! [`VerifyLayer`] puts a verifier in front of any tower service (axum 0.8
//! routers included): it buffers the body up to a limit, verifies, and
//! either calls the inner service with the same bytes or answers a
//! problem+json 400, 401 or 413 (see its table).
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use idemkv::http::webhook::{StandardWebhooks, VerifyLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The endpoint's secret, as the provider shows it: whsec_<base64>.
//! let verifier = StandardWebhooks::new(&std::env::var("WEBHOOK_SECRET")?)?;
//! let app = Router::new()
//!     // Only requests whose signature checks out get here.
//!     .route("/webhooks", post(|body: String| async move { format!("{} bytes", body.len()) }))
//!     .route_layer(VerifyLayer::new(verifier));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! With a verifier alone, without the layer:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use http::HeaderMap;
//! use idemkv::http::webhook::{SignatureError, Stripe, Verifier};
//!
//! let stripe = Stripe::new("whsec_test_secret")?;
//! let body = br#"{"id":"evt_1"}"#;
//! let mut headers = HeaderMap::new();
//! headers.insert("stripe-signature", stripe.sign(1_700_000_000, body).parse()?);
//!
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_060);
//! assert_eq!(stripe.verify(&headers, body, now), Ok(()));
//! assert_eq!(stripe.verify(&headers, b"{}", now), Err(SignatureError::NoValidSignature));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;

mod common;
mod error;
mod github;
mod layer;
mod standard;
mod stripe;

#[cfg(test)]
mod proptests;

pub use error::SignatureError;
pub use github::GitHub;
pub use layer::{DEFAULT_MAX_BODY_BYTES, VerifyLayer, VerifySignature};
pub use standard::StandardWebhooks;
pub use stripe::Stripe;

/// A webhook signature scheme: decides whether a request's headers and
/// body were signed by a holder of a configured secret, recently enough.
///
/// Implemented by [`StandardWebhooks`], [`Stripe`] and [`GitHub`]; implement
/// it for another scheme to use it with [`VerifyLayer`].
pub trait Verifier: Send + Sync + 'static {
    /// Ok if the request is authentic and, for schemes with a timestamp,
    /// signed within the tolerance of `now`.
    ///
    /// Errors: a [`SignatureError`] saying why not (see each scheme's
    /// implementation for which and in what order). Implementations must
    /// not panic on any input and must not block: verification is pure CPU
    /// (an HMAC per configured secret), so it may run on an async runtime's
    /// threads.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError>;
}

/// A boxed verifier, such as a `Box<dyn Verifier>` chosen from
/// configuration at run time, verifies as the one it holds.
impl<V: Verifier + ?Sized> Verifier for Box<V> {
    /// [`Verifier::verify`] of the boxed verifier: same errors, never blocks.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        (**self).verify(headers, body, now)
    }
}

/// A shared verifier verifies as the one it points to.
impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    /// [`Verifier::verify`] of the shared verifier: same errors, never blocks.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        (**self).verify(headers, body, now)
    }
}
