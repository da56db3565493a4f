//! The tower layer that checks signatures before the inner service runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{SignatureError, Verifier};
use crate::clock::{Clock, SystemClock, to_system_time};
use crate::http::buffer::{BufferError, collect_limited};
use crate::http::problem::Problem;
use crate::http::{BoxError, HttpBody};

/// The largest body [`VerifyLayer`] buffers by default: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A tower [`Layer`] that verifies each request's webhook signature with a
/// [`Verifier`] before the inner service sees it.
///
/// The service it makes, [`VerifySignature`], buffers the body (up to
/// [`max_body_bytes`](Self::max_body_bytes)), verifies headers and body
/// against the [`clock`](Self::clock)'s time, and only then calls the inner
/// service with the same bytes as its body. A request that fails never
/// reaches the inner service — so it never touches a store behind it — and
/// gets an RFC 9457 `application/problem+json` answer (`Cache-Control:
/// no-store`) whose `code` member says why:
///
/// | status | `code`                                | cause |
/// | ------ | ------------------------------------- | ----- |
/// | 400    | `webhook_signature_missing`           | [`SignatureError::MissingHeader`] |
/// | 400    | `webhook_signature_malformed`         | [`SignatureError::MalformedHeader`] |
/// | 401    | `webhook_signature_invalid`           | [`SignatureError::NoValidSignature`] |
/// | 401    | `webhook_timestamp_outside_tolerance` | [`SignatureError::TimestampOutsideTolerance`] |
/// | 413    | `webhook_body_too_large`              | the body is over the limit |
/// | 400    | `webhook_body_unreadable`             | the body failed while being read |
/// | 500    | `webhook_verifier_failed`             | any other error of a custom verifier |
///
/// Each refusal is logged at `warn` (target `idemkv::http`) with the
/// method, path and reason — never a secret, a signature or the body.
///
/// Works with axum 0.8's `Router::layer` and `route_layer` and with any
/// tower-based server. Verification is pure CPU (an HMAC per secret); the
/// service's future waits only for the body and the inner service.
pub struct VerifyLayer<V> {
    verifier: Arc<V>,
    clock: Arc<dyn Clock>,
    max_body_bytes: usize,
}

impl<V: Verifier> VerifyLayer<V> {
    /// A layer checking requests with `verifier`, against the system clock,
    /// with bodies up to 1 MiB. Never blocks.
    pub fn new(verifier: V) -> VerifyLayer<V> {
        VerifyLayer {
            verifier: Arc::new(verifier),
            clock: Arc::new(SystemClock),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// This layer reading the time from `clock` (a
    /// [`MockClock`](crate::MockClock) in tests). Never blocks.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> VerifyLayer<V> {
        self.clock = clock;
        self
    }

    /// This layer refusing bodies longer than `limit` bytes with 413: by
    /// their `Content-Length` before reading anything, or as soon as more
    /// arrives. Never blocks.
    pub fn max_body_bytes(mut self, limit: usize) -> VerifyLayer<V> {
        self.max_body_bytes = limit;
        self
    }
}

impl<V> Clone for VerifyLayer<V> {
    fn clone(&self) -> Self {
        VerifyLayer {
            verifier: Arc::clone(&self.verifier),
            clock: Arc::clone(&self.clock),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

impl<V> fmt::Debug for VerifyLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("verifier", &std::any::type_name::<V>())
            .field("clock", &self.clock)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl<S, V: Verifier> Layer<S> for VerifyLayer<V> {
    type Service = VerifySignature<S, V>;

    fn layer(&self, inner: S) -> VerifySignature<S, V> {
        VerifySignature { inner, layer: self.clone() }
    }
}

/// The service of a [`VerifyLayer`]: verifies, then calls `S`.
///
/// Its future is `Send` and boxed; it answers the refusals of the layer's
/// table itself and returns the inner service's errors unchanged.
pub struct VerifySignature<S, V> {
    inner: S,
    layer: VerifyLayer<V>,
}

impl<S: Clone, V> Clone for VerifySignature<S, V> {
    fn clone(&self) -> Self {
        VerifySignature { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, V> fmt::Debug for VerifySignature<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifySignature")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for VerifySignature<S, V>
where
    V: Verifier,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    // Buffered frames are held across the wait for the next one.
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<HttpBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is fresh; the one that was polled ready runs this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match collect_limited(&parts.headers, body, layer.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    let problem = body_problem(&error, layer.max_body_bytes);
                    let cause = match &error {
                        BufferError::Read(e) => e.to_string(),
                        BufferError::TooLarge => String::new(),
                    };
                    tracing::warn!(
                        target: "idemkv::http",
                        method = %parts.method,
                        path = parts.uri.path(),
                        code = problem.code,
                        cause,
                        "webhook refused: {}",
                        problem.detail,
                    );
                    return Ok(problem.into_response());
                }
            };
            let now = to_system_time(layer.clock.now_millis());
            if let Err(error) = layer.verifier.verify(&parts.headers, &bytes, now) {
                let problem = signature_problem(&error);
                tracing::warn!(
                    target: "idemkv::http",
                    method = %parts.method,
                    path = parts.uri.path(),
                    code = problem.code,
                    "webhook refused: {error}",
                );
                return Ok(problem.into_response());
            }
            let response = inner.call(Request::from_parts(parts, ReqBody::from(bytes))).await?;
            Ok(crate::http::boxed(response))
        })
    }
}

/// The answer to a body that could not be buffered.
fn body_problem(error: &BufferError, limit: usize) -> Problem {
    match error {
        BufferError::TooLarge => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "webhook_body_too_large",
            "Webhook body too large",
            format!("the body is longer than {limit} bytes"),
        ),
        BufferError::Read(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "webhook_body_unreadable",
            "Webhook body unreadable",
            "the request body failed while being read",
        ),
    }
}

/// The answer to a refused signature. The detail is the error's message,
/// which names headers and limits, never values.
pub(crate) fn signature_problem(error: &SignatureError) -> Problem {
    let (status, code, title) = match error {
        SignatureError::MissingHeader { .. } => (
            StatusCode::BAD_REQUEST,
            "webhook_signature_missing",
            "Webhook signature header missing",
        ),
        SignatureError::MalformedHeader { .. } => (
            StatusCode::BAD_REQUEST,
            "webhook_signature_malformed",
            "Webhook signature header malformed",
        ),
        SignatureError::NoValidSignature => {
            (StatusCode::UNAUTHORIZED, "webhook_signature_invalid", "Webhook signature invalid")
        }
        SignatureError::TimestampOutsideTolerance { .. } => (
            StatusCode::UNAUTHORIZED,
            "webhook_timestamp_outside_tolerance",
            "Webhook timestamp outside tolerance",
        ),
        // A verifier's own configuration error (a custom verifier's): not
        // the sender's fault, and none of its business.
        SignatureError::InvalidSecret { .. } => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "webhook_verifier_failed",
                "Webhook verifier failed",
                "the receiver could not check the signature",
            );
        }
    };
    Problem::new(status, code, title, error.to_string())
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
