//! HTTP: a tower layer that makes any handler idempotent, webhook signature
//! checks, and a `/metrics` service (the `http` feature).
//!
//! (Module documentation: see the end of this session's work.)

mod buffer;
mod envelope;
mod fingerprint;
mod key;
mod layer;
mod problem;
mod response;
mod service;
pub mod webhook;

use bytes::Bytes;
use http_body_util::BodyExt;

pub use fingerprint::{FingerprintFn, FingerprintSpec};
pub use key::{DEFAULT_MAX_KEY_LEN, KeyFn, KeySource, MAX_KEY_LEN};
pub use layer::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_REPLAY_HEADERS, IdempotencyLayer, IdentityFn, OnRecovered,
    ResponseAction, default_action,
};
pub use problem::PROBLEM_TYPE_BASE;
pub use service::{IDEMPOTENT_REPLAYED, Idempotent, IdempotentRequest};

/// Errors of the bodies this module produces and forwards.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of the services in this module: a buffered
/// (replayed or problem) body, or the inner handler's body, boxed.
pub type HttpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body of `bytes`.
pub(crate) fn full(bytes: Bytes) -> HttpBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
