//! [`IdempotencyLayer`]: the configuration of the idempotency middleware,
//! and the tower `Layer` that wraps a service with it.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, Method, StatusCode, header};

use super::fingerprint::FingerprintSpec;
use super::key::{DEFAULT_MAX_KEY_LEN, KeySource, MAX_KEY_LEN};
use super::service::Idempotent;
use crate::store::Store;

/// The largest request or response body buffered by default: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// What the layer does with the handler's response, by status
/// ([`IdempotencyLayer::on_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseAction {
    /// Store it and replay it, byte for byte, to every duplicate until the
    /// key expires (`complete`).
    Store,
    /// Store nothing; the key is claimable again at once and the next
    /// attempt runs the handler with `recovered() == false`
    /// (`fail(Failure::Retryable)`): for answers that say "try again",
    /// such as 408 and 429.
    Retry,
    /// Store nothing; the key is claimable again at once and the next
    /// attempt runs the handler with `recovered() == true` — part of the
    /// side effect may have happened (`abandon`).
    Abandon,
}

/// The default mapping: 5xx abandon the claim (the next attempt is flagged
/// recovered), 408 and 429 release it for a retry, every other status is
/// stored and replayed — 2xx, 3xx and 4xx, as the IETF draft asks ("success
/// or an error").
pub fn default_action(status: StatusCode) -> ResponseAction {
    if status.is_server_error() {
        ResponseAction::Abandon
    } else if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        ResponseAction::Retry
    } else {
        ResponseAction::Store
    }
}

/// What to do when a request acquires a key whose earlier attempt was
/// orphaned — its process crashed, its handler panicked or was cancelled,
/// or it answered 5xx — so the side effect may have partly happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OnRecovered {
    /// Run the handler again; it sees `recovered() == true` in the
    /// [`IdempotentRequest`](super::IdempotentRequest) extension and
    /// reconciles (the default).
    #[default]
    Rerun,
    /// Never risk running twice: answer 409 `idempotency_outcome_unknown`
    /// and store that answer, so every later request with the key gets it
    /// until the key expires (or an operator removes it). Pair it with an
    /// [`on_status`](IdempotencyLayer::on_status) that maps 5xx to
    /// [`ResponseAction::Retry`], or a handler's own 5xx answer also makes
    /// the outcome "unknown".
    Reject,
}

/// The headers stored with a response and replayed by default. Never
/// `Set-Cookie` (a session belongs to one client) or `Date` (the replay
/// gets its own).
pub const DEFAULT_REPLAY_HEADERS: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LOCATION,
    header::LOCATION,
    header::ETAG,
    header::LAST_MODIFIED,
    header::LINK,
    header::CACHE_CONTROL,
];

/// Finds the caller's identity in a request (an API key's owner, an
/// account id): two callers' keys never meet.
pub type IdentityFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Makes the wrapped handler idempotent: a tower [`Layer`](tower_layer::Layer)
/// for axum 0.8 (`Router::layer`, `route_layer`, `MethodRouter::layer`) and
/// any tower-based server. The answers (status mapping, problem codes) are
/// in the [module documentation](super).
///
/// The builder methods only record values: they never block and never
/// fail. Lease and retention are checked by the store at each claim (an
/// invalid one is answered 500 `idempotency_misconfigured` and logged).
#[derive(Clone)]
pub struct IdempotencyLayer {
    pub(crate) settings: Arc<Settings>,
}

/// Everything the service needs, shared by its clones.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) store: Store,
    pub(crate) namespace: String,
    pub(crate) key: KeySource,
    pub(crate) require_key: bool,
    pub(crate) max_key_len: usize,
    pub(crate) identity: Option<Arc<IdentityFn>>,
    pub(crate) fingerprint: FingerprintSpec,
    pub(crate) methods: Vec<Method>,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) wait_in_flight: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) retention: Option<Duration>,
    pub(crate) on_status: fn(StatusCode) -> ResponseAction,
    pub(crate) on_recovered: OnRecovered,
    pub(crate) fail_open: bool,
    pub(crate) replay_headers: Vec<HeaderName>,
}

impl IdempotencyLayer {
    /// Idempotency for the wrapped handlers, with keys stored in `store`
    /// under `namespace` (its [`Policy`](crate::Policy) sets the lease and
    /// retention). Defaults: the `Idempotency-Key` header, required; POST
    /// and PATCH only (other methods pass through); fingerprint of method,
    /// target and body; bodies up to 1 MiB; in-flight duplicates answered
    /// 409 at once; [`default_action`]; [`OnRecovered::Rerun`]; fail closed
    /// (503) when the store cannot answer.
    pub fn new(store: Store, namespace: impl Into<String>) -> IdempotencyLayer {
        IdempotencyLayer {
            settings: Arc::new(Settings {
                store,
                namespace: namespace.into(),
                key: KeySource::idempotency_key(),
                require_key: true,
                max_key_len: DEFAULT_MAX_KEY_LEN,
                identity: None,
                fingerprint: FingerprintSpec::default(),
                methods: vec![Method::POST, Method::PATCH],
                max_request_bytes: DEFAULT_MAX_BODY_BYTES,
                max_response_bytes: DEFAULT_MAX_BODY_BYTES,
                wait_in_flight: None,
                lease: None,
                retention: None,
                on_status: default_action,
                on_recovered: OnRecovered::Rerun,
                fail_open: false,
                replay_headers: DEFAULT_REPLAY_HEADERS.to_vec(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Where the key comes from (default [`KeySource::idempotency_key`]).
    pub fn key(self, source: KeySource) -> Self {
        self.with(|s| s.key = source)
    }

    /// Whether a request without a key is refused with 400
    /// `idempotency_key_missing` (true, the default) or passed through
    /// without idempotency (false).
    pub fn require_key(self, required: bool) -> Self {
        self.with(|s| s.require_key = required)
    }

    /// The longest key accepted, in bytes (default 255), clamped to
    /// 1..=[`MAX_KEY_LEN`]; a longer key is answered 400.
    pub fn max_key_len(self, bytes: usize) -> Self {
        self.with(|s| s.max_key_len = bytes.clamp(1, MAX_KEY_LEN))
    }

    /// The caller's identity, part of the stored key so that two callers
    /// who pick the same key never see each other's responses (the IETF
    /// draft's security advice). `None` from the function: no identity.
    pub fn identity<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.with(|s| s.identity = Some(Arc::new(f)))
    }

    /// What the fingerprint covers (default [`FingerprintSpec::request`]).
    pub fn fingerprint(self, spec: FingerprintSpec) -> Self {
        self.with(|s| s.fingerprint = spec)
    }

    /// The methods made idempotent (default POST and PATCH); requests with
    /// other methods pass through untouched.
    pub fn methods(self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.with(|s| s.methods = methods.into_iter().collect())
    }

    /// The largest request body read (default 1 MiB); a larger one is
    /// answered 413 `idempotency_request_too_large` and nothing is stored.
    pub fn max_request_bytes(self, bytes: usize) -> Self {
        self.with(|s| s.max_request_bytes = bytes)
    }

    /// The largest response body stored (default 1 MiB; the store's
    /// `Config::max_response_bytes` bounds the whole stored response too).
    /// A larger response is still sent to the client as it streams, but
    /// not stored: the claim is abandoned and a WARN line says why.
    pub fn max_response_bytes(self, bytes: usize) -> Self {
        self.with(|s| s.max_response_bytes = bytes)
    }

    /// Wait up to `timeout` for an in-flight duplicate's result and answer
    /// with it, instead of 409 at once (still 409 if it does not finish
    /// in time).
    pub fn wait_in_flight(self, timeout: Duration) -> Self {
        self.with(|s| s.wait_in_flight = Some(timeout))
    }

    /// The lease of each claim, overriding the namespace policy: longer
    /// than the slowest handler, or a duplicate may take over a live one.
    pub fn lease(self, lease: Duration) -> Self {
        self.with(|s| s.lease = Some(lease))
    }

    /// How long a stored response is replayed, overriding the namespace
    /// policy.
    pub fn retention(self, retention: Duration) -> Self {
        self.with(|s| s.retention = Some(retention))
    }

    /// Which responses are stored, retried or abandoned (default
    /// [`default_action`]).
    pub fn on_status(self, action: fn(StatusCode) -> ResponseAction) -> Self {
        self.with(|s| s.on_status = action)
    }

    /// What a recovered claim does (default [`OnRecovered::Rerun`]).
    pub fn on_recovered(self, policy: OnRecovered) -> Self {
        self.with(|s| s.on_recovered = policy)
    }

    /// When the store cannot answer (closed, poisoned, I/O error): run the
    /// handler without idempotency (`true`, fail open — duplicates may run
    /// twice) instead of 503 `idempotency_unavailable` (`false`, the
    /// default).
    pub fn fail_open(self, open: bool) -> Self {
        self.with(|s| s.fail_open = open)
    }

    /// The response headers stored and replayed (default
    /// [`DEFAULT_REPLAY_HEADERS`]); others are dropped from replays.
    pub fn replay_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.with(|s| s.replay_headers = names.into_iter().collect())
    }
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("IdempotencyLayer")
            .field("namespace", &s.namespace)
            .field("key", &s.key)
            .field("require_key", &s.require_key)
            .field("fingerprint", &s.fingerprint)
            .field("methods", &s.methods)
            .field("wait_in_flight", &s.wait_in_flight)
            .field("on_recovered", &s.on_recovered)
            .field("fail_open", &s.fail_open)
            .finish_non_exhaustive()
    }
}

impl<S> tower_layer::Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;

    fn layer(&self, inner: S) -> Idempotent<S> {
        Idempotent { inner, settings: self.settings.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_action_by_status_class() {
        for code in 100..=999u16 {
            let s = StatusCode::from_u16(code).unwrap();
            let want = match code {
                500..=599 => ResponseAction::Abandon,
                408 | 429 => ResponseAction::Retry,
                _ => ResponseAction::Store,
            };
            assert_eq!(default_action(s), want, "{code}");
        }
    }
}
