//! HTTP: a tower layer that makes any handler idempotent, webhook signature
//! checks, and a `/metrics` service (the `http` feature; add `axum` to key
//! requests by axum's matched route).
//!
//! [`IdempotencyLayer`] wraps any tower service — an axum 0.8 router, a
//! route, a handler — with the semantics of the IETF
//! [Idempotency-Key draft](https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/)
//! and of Stripe's API: the first request with a key runs the handler and
//! its response (status, allow-listed headers, body) is stored; every
//! duplicate gets it back byte for byte with `Idempotent-Replayed: true`.
//! The key is read from `Idempotency-Key`, Standard Webhooks' `webhook-id`,
//! or your function ([`KeySource`]), and stored scoped by namespace, caller
//! identity, method and route. [`webhook`] verifies Standard Webhooks,
//! Stripe and GitHub signatures before a request reaches the store;
//! [`MetricsService`] serves `/metrics`.
//!
//! ```no_run
//! use axum::{Extension, Router, routing::post};
//! use idemkv::http::{IdempotencyLayer, IdempotentRequest};
//!
//! async fn create_charge(Extension(req): Extension<IdempotentRequest>) -> String {
//!     // Runs once per key; `req.recovered()` says a crashed attempt may
//!     // have charged already: reconcile first.
//!     format!("charge {}", req.attempt())
//! }
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let store = idemkv::Store::open("./idemkv-data")?;
//! let app = Router::new()
//!     .route("/charges", post(create_charge))
//!     .route_layer(IdempotencyLayer::new(store, "charges"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Answers
//!
//! | Situation | Status | Body, headers |
//! |---|---|---|
//! | First request with the key | the handler's | stored if [`ResponseAction::Store`] |
//! | Duplicate after completion | the stored status | stored headers and body, `Idempotent-Replayed: true` |
//! | Duplicate while the first is in flight | 409 | `idempotency_request_in_progress`, `Retry-After` (or wait: [`IdempotencyLayer::wait_in_flight`]) |
//! | Same key, different request (fingerprint) | 422 | `idempotency_key_reused` |
//! | Key required but missing | 400 | `idempotency_key_missing` |
//! | Key malformed or too long | 400 | `idempotency_key_invalid` |
//! | Body over [`IdempotencyLayer::max_request_bytes`] | 413 | `idempotency_request_too_large`; nothing stored |
//! | Earlier attempt orphaned, [`OnRecovered::Reject`] | 409 | `idempotency_outcome_unknown`, stored until expiry |
//! | Store closed, poisoned, failing | 503 | `idempotency_unavailable`, `Retry-After: 1` (or fail open) |
//! | Stored response unreadable | 500 | `idempotency_record_unreadable` |
//! | Lease/retention setting refused by the store | 500 | `idempotency_misconfigured` |
//! | Method not made idempotent (default: not POST/PATCH) | the handler's | passed through |
//!
//! Error answers are RFC 9457 `application/problem+json` with
//! `Cache-Control: no-store` and a stable `code` member; their `type` is
//! [`PROBLEM_TYPE_BASE`] followed by the code. What the handler's status
//! does to the claim ([`default_action`]): 2xx, 3xx and 4xx are stored and
//! replayed; 5xx abandon the claim (the next attempt runs, flagged
//! recovered); 408 and 429 release it (the next attempt runs, not flagged).
//! A handler that panics, returns an error or is dropped (the client went
//! away) abandons the claim too. A response larger than
//! [`IdempotencyLayer::max_response_bytes`], or with trailers, reaches the
//! client as it streams but is not stored (the claim is abandoned, with a
//! WARN line).
//!
//! **Work that outlives the request.** When the client goes away, the server
//! drops the request's future, and with it the claim (abandoned at once,
//! like a panic). Work the handler handed to another task or thread
//! (`tokio::spawn`, `spawn_blocking`) keeps running, and a retry that
//! arrives meanwhile acquires the key with `recovered() == true` while that
//! work may not be visible yet. Keep the side effect inside the handler's
//! future, or make the reconciliation wait for the detached work (a lock on
//! the key in your own store, or fencing by [`IdempotentRequest::token`]).
//!
//! A stored 4xx is a *completion* in the store's terms (`Replay::is_completed`,
//! the `completions` counter): the request finished with an answer.
//! [`stored_response`] tells a 422 from a 200.
//!
//! # Durability
//!
//! The response is sent only after its record is as durable as the store's
//! [`Durability`](crate::Durability) promises: with `Durable`, a client that
//! saw a response never sees the handler run again for that key, even
//! after a kill -9.

mod buffer;
mod envelope;
mod fingerprint;
mod key;
mod layer;
mod metrics;
mod problem;
mod response;
mod service;
pub mod webhook;

use bytes::Bytes;
use http_body_util::BodyExt;

pub use envelope::stored_response;
pub use fingerprint::{FingerprintFn, FingerprintSpec};
pub use key::{DEFAULT_MAX_KEY_LEN, KeyFn, KeySource, MAX_KEY_LEN};
pub use layer::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_REPLAY_HEADERS, IdempotencyLayer, IdentityFn, OnRecovered,
    ResponseAction, default_action,
};
pub use metrics::{MetricsService, PROMETHEUS_CONTENT_TYPE};
pub use problem::PROBLEM_TYPE_BASE;
pub use service::{IDEMPOTENT_REPLAYED, Idempotent, IdempotentRequest};

/// Hooks for the fuzz targets (the `testing` feature).
#[cfg(feature = "testing")]
pub(crate) mod testing {
    pub(crate) fn reencode_envelope(bytes: &[u8]) -> crate::Result<Vec<u8>> {
        super::envelope::StoredResponse::decode(bytes)?.encode()
    }

    pub(crate) fn parse_key_headers(value: &[u8]) -> Vec<Result<Option<String>, String>> {
        let Ok(value) = http::HeaderValue::from_bytes(value) else { return Vec::new() };
        let sources = [
            ("idempotency-key", super::KeySource::idempotency_key()),
            ("idempotency-key", super::KeySource::idempotency_key_strict()),
            ("webhook-id", super::KeySource::webhook_id()),
        ];
        sources
            .into_iter()
            .map(|(name, source)| {
                let mut request = http::Request::new(());
                request.headers_mut().insert(name, value.clone());
                let (parts, ()) = request.into_parts();
                source.extract(&parts, &bytes::Bytes::new(), super::DEFAULT_MAX_KEY_LEN)
            })
            .collect()
    }
}

/// Errors of the bodies this module produces and forwards.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of the services in this module: a buffered
/// (replayed or problem) body, or the inner handler's body, boxed.
pub type HttpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A response with its body boxed as [`HttpBody`].
pub(crate) fn boxed<B>(response: http::Response<B>) -> http::Response<HttpBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|b| b.map_err(Into::into).boxed_unsync())
}

/// A complete body of `bytes`.
pub(crate) fn full(bytes: Bytes) -> HttpBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
