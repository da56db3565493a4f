//! The demo server's webhook endpoint, `POST /webhooks/{source}`, as an
//! application would write it behind `idemkv::http::IdempotencyLayer`: it
//! runs once per `webhook-id` (duplicates get the stored answer from the
//! layer and never get here), reconciles against the ledger when the layer
//! says an earlier attempt was orphaned, and otherwise runs the side effect
//! — a synced ledger line — before answering 200. Injected faults: a
//! retryable downstream failure (503, nothing done) and a terminal
//! rejection (422, stored and replayed by the layer).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use idemkv::http::{IdempotentRequest, ResponseAction, default_action};

use super::events::{Event, completed_response, retry_payload, terminal_payload};
use super::ledger::Ledger;
use super::protocol::{ATTEMPT_HEADER, OUTCOME_HEADER, RECOVERED_HEADER};
use super::rng::{hash_bytes, roll};

/// Salts that keep the endpoint's independent coin flips independent.
const SALT_RETRY: u64 = 0x0052_4554_5259;
const SALT_TERMINAL: u64 = 0x5445_524d;
/// Attempts after which the side effect no longer fails retryably.
const MAX_FLAKY_ATTEMPT: u32 = 4;

/// What every request shares.
pub struct App {
    /// The side effect.
    pub ledger: Ledger,
    /// Seed of the fault injection.
    pub seed: u64,
    /// Share of attempts whose side effect fails retryably.
    pub retry_rate: f64,
    /// Share of events whose side effect fails terminally.
    pub terminal_rate: f64,
    /// Requests that reached the endpoint.
    pub runs: AtomicU64,
}

/// The layer's status mapping for this endpoint: 503 — "the downstream
/// failed before anything was done" — releases the claim for a plain retry
/// (`Failure::Retryable`: the next attempt runs with `recovered() ==
/// false`); everything else as [`default_action`] (other 5xx abandon the
/// claim, so their next attempt is flagged recovered and reconciles).
pub fn on_status(status: StatusCode) -> ResponseAction {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        ResponseAction::Retry
    } else {
        default_action(status)
    }
}

/// Handles one verified delivery that acquired its key.
pub async fn receive(
    State(app): State<Arc<App>>,
    Extension(req): Extension<IdempotentRequest>,
    body: Bytes,
) -> Response {
    app.runs.fetch_add(1, Ordering::Relaxed);
    let event: Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            let msg = format!("the body is not a webhook event: {e}");
            return answer(&req, StatusCode::BAD_REQUEST, "invalid", msg);
        }
    };
    let source = req.key().namespace().to_string();
    let evt = event.id;
    if req.recovered()
        && let Some(token) = app.ledger.lookup(&source, &evt)
    {
        // A dead attempt ran the side effect but died before its answer was
        // stored: answer with its result instead of running it again.
        let body = completed_response(&source, &evt, token);
        return answer(&req, StatusCode::OK, "reconciled", body);
    }
    let key_hash = hash_bytes(req.key().as_raw());
    if req.attempt() <= MAX_FLAKY_ATTEMPT
        && roll(&[app.seed, SALT_RETRY, key_hash, u64::from(req.attempt())], app.retry_rate)
    {
        return answer(&req, StatusCode::SERVICE_UNAVAILABLE, "retry", retry_payload());
    }
    if roll(&[app.seed, SALT_TERMINAL, key_hash], app.terminal_rate) {
        let body = terminal_payload(&source, &evt);
        return answer(&req, StatusCode::UNPROCESSABLE_ENTITY, "terminal", body);
    }
    // The side effect, durably (a blocking fsync: off the async workers),
    // then the 200 the layer stores before sending it.
    let token = req.token();
    let (a, s, e) = (app.clone(), source.clone(), evt.clone());
    match tokio::task::spawn_blocking(move || a.ledger.record(&s, &e, token)).await {
        Ok(Ok(())) => {
            answer(&req, StatusCode::OK, "executed", completed_response(&source, &evt, token))
        }
        Ok(Err(e)) => answer(&req, StatusCode::INTERNAL_SERVER_ERROR, "error", format!("{e:#}")),
        Err(e) => answer(&req, StatusCode::INTERNAL_SERVER_ERROR, "error", e.to_string()),
    }
}

/// A JSON answer with the endpoint's diagnostic headers (which the layer
/// does not store: replays do not carry them).
fn answer(req: &IdempotentRequest, status: StatusCode, outcome: &str, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE.as_str(), "application/json".to_string()),
        (OUTCOME_HEADER, outcome.to_string()),
        (RECOVERED_HEADER, req.recovered().to_string()),
        (ATTEMPT_HEADER, req.attempt().to_string()),
    ];
    (status, headers, body).into_response()
}
