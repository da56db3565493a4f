//! [`Idempotent`]: the service the layer builds, and its answer to each
//! request (the status mapping of the module documentation).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use tracing::{error, warn};

use super::buffer::{BufferError, collect_limited};
use super::envelope::{Envelope, StoredResponse, stored_response};
use super::key::{route_of, store_key};
use super::layer::{OnRecovered, ResponseAction, Settings};
use super::problem::Problem;
use super::response::{self, Read};
use super::{BoxError, HttpBody, boxed, full};
use crate::error::Error;
use crate::key::Key;
use crate::store::{Claim, ClaimOptions, Failure, Guard, Replay};

/// The header that marks a replayed response (Stripe's and Whop's name).
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The request extension a handler sees when it runs under the layer: the
/// stored key, the attempt and whether an earlier attempt was orphaned
/// (with axum: `Extension<IdempotentRequest>`). Its accessors never block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    key: Key,
    client_key: String,
    attempt: u32,
    recovered: bool,
    token: u64,
}

impl IdempotentRequest {
    /// The stored key (namespace, identity, method and route, client key).
    pub fn key(&self) -> &Key {
        &self.key
    }
    /// The key as the client sent it (the `Idempotency-Key` string, the
    /// `webhook-id`, or what the key function returned).
    pub fn client_key(&self) -> &str {
        &self.client_key
    }
    /// 1 for the first attempt at this key, then 2, 3, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// True when an earlier attempt was orphaned (crash, panic, cancelled
    /// request, 5xx): part of its side effect may have happened, so
    /// reconcile before redoing it.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
    /// The fencing token of this attempt (see [`Guard::token`]).
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// The idempotency middleware around `S` (built by
/// [`IdempotencyLayer`](super::IdempotencyLayer)). Its response body is
/// [`HttpBody`]; its error is the inner service's.
#[derive(Clone)]
pub struct Idempotent<S> {
    pub(crate) inner: S,
    pub(crate) settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for Idempotent<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent").field("namespace", &self.settings.namespace).finish()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Idempotent<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<HttpBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone that was not made ready stays; the ready one serves.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(handle(self.settings.clone(), inner, req))
    }
}

async fn pass<S, ReqBody, ResBody>(
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<HttpBody>, S::Error>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    inner.call(req).await.map(boxed)
}

async fn handle<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    inner: S,
    req: Request<ReqBody>,
) -> Result<Response<HttpBody>, S::Error>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let s = &*settings;
    if !s.methods.contains(req.method()) {
        return pass(inner, req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match collect_limited(&parts.headers, body, s.max_request_bytes).await {
        Ok(b) => b,
        Err(BufferError::TooLarge) => {
            return Ok(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "idempotency_request_too_large",
                "Request body too large",
                format!(
                    "the body exceeds {} bytes; nothing was recorded, the key may be retried \
                     with a smaller request",
                    s.max_request_bytes
                ),
            )
            .into_response());
        }
        Err(BufferError::Read(e)) => {
            return Ok(Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_request_invalid",
                "Request body unreadable",
                format!("the body could not be read: {e}"),
            )
            .into_response());
        }
    };
    let client_key = match s.key.extract(&parts, &bytes, s.max_key_len) {
        Ok(Some(k)) => k,
        Ok(None) if !s.require_key => {
            return pass(inner, Request::from_parts(parts, ReqBody::from(bytes))).await;
        }
        Ok(None) => {
            return Ok(Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_missing",
                "Idempotency key missing",
                format!("this operation requires an idempotency key ({:?})", s.key),
            )
            .into_response());
        }
        Err(reason) => return Ok(invalid_key(reason).into_response()),
    };
    let identity = s.identity.as_ref().and_then(|f| f(&parts));
    let route = route_of(&parts).to_owned();
    let key = match store_key(&s.namespace, identity.as_deref(), &parts.method, &route, &client_key)
    {
        Ok(k) => k,
        Err(e) => return Ok(invalid_key(e.to_string()).into_response()),
    };
    let fingerprint = s.fingerprint.of(&parts, &bytes);
    let mut options = ClaimOptions::new();
    if let Some(d) = s.lease {
        options = options.lease(d);
    }
    if let Some(d) = s.retention {
        options = options.retention(d);
    }
    if let Some(d) = s.wait_in_flight {
        options = options.wait(d);
    }
    let claim = match s.store.claim_with_async(&key, fingerprint, &options).await {
        Ok(c) => c,
        Err(e) if s.fail_open && unavailable(&e) => {
            warn!(target: "idemkv::http", key = %key, error = %e,
                "store unavailable: running the handler without idempotency (fail open)");
            return pass(inner, Request::from_parts(parts, ReqBody::from(bytes))).await;
        }
        Err(e) => return Ok(store_error(&key, &e).into_response()),
    };
    match claim {
        Claim::Replay(replay) => Ok(replayed(&key, &replay)),
        Claim::InFlight { retry_after, attempt } => Ok(Problem::new(
            StatusCode::CONFLICT,
            "idempotency_request_in_progress",
            "Request in progress",
            format!(
                "a request with this key is being processed (attempt {attempt}); retry after \
                 the Retry-After delay to get its response"
            ),
        )
        .retry_after(retry_after)
        .into_response()),
        Claim::Mismatch { .. } => Ok(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "Idempotency key reused",
            "this key was first used with a different request (method, target or body); use \
             a new key for a new request",
        )
        .into_response()),
        Claim::Acquired(guard) => run(s, inner, parts, bytes, guard, client_key).await,
    }
}

/// Runs the handler under the claim and stores, retries or abandons.
async fn run<S, ReqBody, ResBody>(
    s: &Settings,
    mut inner: S,
    mut parts: Parts,
    bytes: Bytes,
    guard: Guard,
    client_key: String,
) -> Result<Response<HttpBody>, S::Error>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: From<Bytes>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let key = guard.key().clone();
    if guard.recovered() {
        warn!(target: "idemkv::http", key = %key, attempt = guard.attempt(),
            policy = ?s.on_recovered, "an earlier attempt at this key was orphaned");
        if s.on_recovered == OnRecovered::Reject {
            return Ok(reject_recovered(guard).await);
        }
    }
    parts.extensions.insert(IdempotentRequest {
        key: key.clone(),
        client_key,
        attempt: guard.attempt(),
        recovered: guard.recovered(),
        token: guard.token(),
    });
    // An error or a panic of the handler, or this future being dropped
    // (the client went away), drops the guard: the claim is abandoned.
    let response = inner.call(Request::from_parts(parts, ReqBody::from(bytes))).await?;
    let status = response.status();
    match (s.on_status)(status) {
        ResponseAction::Store => {}
        ResponseAction::Retry => {
            if let Err(e) = guard.fail_async(Failure::Retryable).await {
                error!(target: "idemkv::http", key = %key, error = %e,
                    "could not release the claim after a {status} answer");
            }
            return Ok(boxed(response));
        }
        ResponseAction::Abandon => {
            guard.abandon();
            return Ok(boxed(response));
        }
    }
    let (head, body) = response.into_parts();
    let limit = s.max_response_bytes.min(s.store.config().max_response_bytes);
    let body = match response::read(body, limit).await {
        Read::Whole(body) => body,
        Read::Streamed { body, why } => {
            warn!(target: "idemkv::http", key = %key, status = %status, reason = %why,
                "response not stored: the claim is abandoned and the next attempt runs again");
            guard.abandon();
            return Ok(Response::from_parts(head, body));
        }
    };
    let stored = StoredResponse::new(status, &head.headers, &s.replay_headers, body.clone());
    let bytes = match stored.encode() {
        Ok(b) if b.len() <= s.store.config().max_response_bytes => b,
        Ok(b) => {
            warn!(target: "idemkv::http", key = %key, bytes = b.len(),
                "response not stored: with its headers it exceeds the store's \
                 max_response_bytes; the claim is abandoned");
            guard.abandon();
            return Ok(Response::from_parts(head, full(body)));
        }
        Err(e) => {
            warn!(target: "idemkv::http", key = %key, error = %e,
                "response not stored; the claim is abandoned");
            guard.abandon();
            return Ok(Response::from_parts(head, full(body)));
        }
    };
    // The answer leaves only once its record is as durable as the store's
    // durability promises: a client that saw it never sees the handler
    // run again for this key.
    if let Err(e) = guard.complete_async(Envelope(bytes)).await {
        error!(target: "idemkv::http", key = %key, error = %e,
            "the handler ran but its response could not be stored");
        if unavailable(&e) {
            // Not "the request was not run": it was. The claim is an orphan
            // now, so a retry runs again with `recovered() == true`.
            return Ok(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency_unavailable",
                "Idempotency store unavailable",
                "the request ran but its response could not be stored; retry with the same key \
                 (the retry knows an earlier attempt may have taken effect)",
            )
            .retry_after(std::time::Duration::from_secs(1))
            .into_response());
        }
    }
    Ok(Response::from_parts(head, full(body)))
}

/// [`OnRecovered::Reject`]: store and send 409 `idempotency_outcome_unknown`.
async fn reject_recovered(guard: Guard) -> Response<HttpBody> {
    let key = guard.key().clone();
    let problem = Problem::new(
        StatusCode::CONFLICT,
        "idempotency_outcome_unknown",
        "Outcome unknown",
        "an earlier attempt with this key was interrupted and may have taken effect; it will \
         not run again — use a new key only after checking that it did not",
    );
    let stored = StoredResponse {
        status: problem.status,
        headers: problem.headers(),
        body: Bytes::from(problem.to_json()),
    };
    match stored.encode() {
        Ok(bytes) => {
            if let Err(e) = guard.fail_terminal_async(Envelope(bytes)).await {
                error!(target: "idemkv::http", key = %key, error = %e,
                    "could not store the outcome-unknown answer");
                if unavailable(&e) {
                    return store_error(&key, &e).into_response();
                }
            }
        }
        Err(e) => {
            error!(target: "idemkv::http", key = %key, error = %e, "encoding a problem");
        }
    }
    problem.into_response()
}

/// A stored response, sent again with `Idempotent-Replayed: true`.
fn replayed(key: &Key, replay: &Replay) -> Response<HttpBody> {
    match stored_response(replay) {
        Ok(stored) => {
            let mut response = stored.map(full);
            response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Err(e) => {
            error!(target: "idemkv::http", key = %key, error = %e,
                "a stored response cannot be replayed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "idempotency_record_unreadable",
                "Stored response unreadable",
                "this key's stored response cannot be replayed; the request was not run again",
            )
            .into_response()
        }
    }
}

fn invalid_key(reason: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "idempotency_key_invalid",
        "Idempotency key invalid",
        format!("the idempotency key is malformed: {reason}"),
    )
}

/// Errors that mean "the store cannot answer now" (503), as opposed to a
/// misconfiguration (500).
fn unavailable(e: &Error) -> bool {
    !matches!(e, Error::InvalidConfig { .. } | Error::InvalidKey { .. } | Error::Codec { .. })
}

fn store_error(key: &Key, e: &Error) -> Problem {
    if unavailable(e) {
        error!(target: "idemkv::http", key = %key, error = %e,
            "store unavailable: answering 503 (fail closed)");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "idempotency_unavailable",
            "Idempotency store unavailable",
            "the request was not run; retry later with the same key",
        )
        .retry_after(std::time::Duration::from_secs(1))
    } else {
        error!(target: "idemkv::http", key = %key, error = %e, "idempotency misconfigured");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "idempotency_misconfigured",
            "Idempotency misconfigured",
            "the server's idempotency settings are invalid; the request was not run",
        )
    }
}
