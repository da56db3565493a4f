//! The provider's reading of one HTTP answer: its [`Outcome`] from the
//! status, the `Idempotent-Replayed` header, the layer's problem code and
//! the endpoint's diagnostic headers.

use axum::http::{HeaderMap, StatusCode, header};
use idemkv::http::IDEMPOTENT_REPLAYED;
use serde::Deserialize;

use super::events::effect_token;
use super::protocol::{OUTCOME_HEADER, RECOVERED_HEADER};

/// What one delivery got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 200 from the endpoint: it ran the side effect and the layer stored the answer.
    Acquired,
    /// 200 from the endpoint on a recovered attempt whose side effect the
    /// ledger already held: answered without running it again.
    Reconciled,
    /// 503 from the endpoint: the downstream failed, nothing was done.
    Retry,
    /// 422 from the endpoint: rejected for good (stored, replayed from now on).
    Terminal,
    /// 200 replayed by the layer (`Idempotent-Replayed: true`).
    Replayed,
    /// 422 replayed by the layer.
    ReplayedFailure,
    /// 409 `idempotency_request_in_progress`: another delivery holds the key.
    InFlight,
    /// 422 `idempotency_key_reused`: the key was first used with another body.
    Mismatch,
    /// 400/401 from the signature check.
    Rejected,
    /// No HTTP answer: the connection failed (the server was killed).
    ConnectionError,
    /// Anything else (a 5xx of the layer, an unexpected status).
    Error,
}

/// One delivery's answer, as the provider saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The delivery answered.
    pub id: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The HTTP status; `None` after a connection error.
    pub status: Option<u16>,
    /// `Idempotent-Replayed: true` was set.
    pub replayed: bool,
    /// The endpoint ran as a `recovered()` attempt.
    pub recovered: bool,
    /// The ledger token a 200 names, else 0.
    pub effect_token: u64,
    /// The `code` of a problem+json answer (the layers' own answers).
    pub code: Option<String>,
    /// The body (or the connection error).
    pub body: String,
    /// Round trip, ns.
    pub rtt_ns: u64,
}

/// The layer's RFC 9457 problem documents: only their code matters here.
#[derive(Deserialize)]
struct Problem {
    code: String,
}

impl Answer {
    /// An answer to delivery `id` with everything else empty.
    pub fn new(id: u64, outcome: Outcome) -> Answer {
        Answer {
            id,
            outcome,
            status: None,
            replayed: false,
            recovered: false,
            effect_token: 0,
            code: None,
            body: String::new(),
            rtt_ns: 0,
        }
    }

    /// A delivery that got no HTTP answer.
    pub fn connection_error(id: u64, error: String, rtt_ns: u64) -> Answer {
        Answer { body: error, rtt_ns, ..Answer::new(id, Outcome::ConnectionError) }
    }

    /// Reads an HTTP answer.
    pub fn classify(
        id: u64,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        rtt_ns: u64,
    ) -> Answer {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let replayed = header(IDEMPOTENT_REPLAYED) == Some("true");
        let ran = header(OUTCOME_HEADER);
        let problem = header(header::CONTENT_TYPE.as_str())
            .filter(|t| t.starts_with("application/problem+json"))
            .and_then(|_| serde_json::from_slice::<Problem>(body).ok())
            .map(|p| p.code);
        let code = problem.clone();
        let code = code.as_deref();
        let outcome = match status.as_u16() {
            200 if replayed => Outcome::Replayed,
            200 if ran == Some("executed") => Outcome::Acquired,
            200 if ran == Some("reconciled") => Outcome::Reconciled,
            422 if code == Some("idempotency_key_reused") => Outcome::Mismatch,
            422 if replayed => Outcome::ReplayedFailure,
            422 if ran == Some("terminal") => Outcome::Terminal,
            409 if code == Some("idempotency_request_in_progress") => Outcome::InFlight,
            503 if ran == Some("retry") => Outcome::Retry,
            // Not the endpoint's, not the idempotency layer's: the signature check's.
            400 | 401 if ran.is_none() && !code.is_some_and(|c| c.starts_with("idempotency_")) => {
                Outcome::Rejected
            }
            _ => Outcome::Error,
        };
        let effect_token = match outcome {
            Outcome::Acquired | Outcome::Reconciled | Outcome::Replayed => {
                effect_token(body).unwrap_or(0)
            }
            _ => 0,
        };
        Answer {
            id,
            outcome,
            status: Some(status.as_u16()),
            replayed,
            recovered: header(RECOVERED_HEADER) == Some("true"),
            effect_token,
            code: problem,
            body: String::from_utf8_lossy(body).into_owned(),
            rtt_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.insert(axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Answer::classify(1, StatusCode::from_u16(status).unwrap(), &h, body.as_bytes(), 0)
    }

    #[test]
    fn statuses_and_headers_map_to_outcomes() {
        let done = super::super::events::completed_response("stripe", "evt_1", 9);
        let a = read(200, &[(OUTCOME_HEADER, "executed"), (RECOVERED_HEADER, "true")], &done);
        assert_eq!((a.outcome, a.recovered, a.effect_token), (Outcome::Acquired, true, 9));
        assert_eq!(read(200, &[(IDEMPOTENT_REPLAYED, "true")], &done).outcome, Outcome::Replayed);
        assert_eq!(read(422, &[(OUTCOME_HEADER, "terminal")], "{}").outcome, Outcome::Terminal);
        assert_eq!(
            read(422, &[(IDEMPOTENT_REPLAYED, "true")], "{}").outcome,
            Outcome::ReplayedFailure
        );
        let problem = |code: &str| format!(r#"{{"code":"{code}"}}"#);
        let pj = ("content-type", "application/problem+json");
        let in_progress = problem("idempotency_request_in_progress");
        assert_eq!(read(409, &[pj], &in_progress).outcome, Outcome::InFlight);
        let reused = problem("idempotency_key_reused");
        assert_eq!(read(422, &[pj], &reused).outcome, Outcome::Mismatch);
        assert_eq!(read(401, &[], "no matching signature").outcome, Outcome::Rejected);
        let invalid = read(401, &[pj], &problem("webhook_signature_invalid"));
        assert_eq!(invalid.outcome, Outcome::Rejected);
        assert_eq!(invalid.code.as_deref(), Some("webhook_signature_invalid"));
        assert_eq!(read(400, &[pj], &problem("idempotency_key_missing")).outcome, Outcome::Error);
        assert_eq!(read(503, &[(OUTCOME_HEADER, "retry")], "{}").outcome, Outcome::Retry);
        assert_eq!(read(503, &[pj], &problem("idempotency_unavailable")).outcome, Outcome::Error);
        assert_eq!(read(200, &[], &done).outcome, Outcome::Error);
    }
}
