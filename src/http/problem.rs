//! Error answers as RFC 9457 `application/problem+json`, never cached
//! (`Cache-Control: no-store`). Each has a stable `code` member that
//! clients can branch on; the `type` is that code under
//! [`PROBLEM_TYPE_BASE`].

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::HttpBody;

/// Where the problem `type` URIs point: the `http` module's documentation,
/// with the problem's code as the fragment.
pub const PROBLEM_TYPE_BASE: &str = "https://docs.rs/idemkv/latest/idemkv/http/index.html#";

/// One problem answer: status, stable code, title and detail.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) title: &'static str,
    pub(crate) detail: String,
    /// Sent as `Retry-After` (whole seconds, rounded up, at least 1).
    pub(crate) retry_after: Option<Duration>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem { status, code, title, detail: detail.into(), retry_after: None }
    }

    pub(crate) fn retry_after(mut self, after: Duration) -> Problem {
        self.retry_after = Some(after);
        self
    }

    /// The JSON document.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "type": format!("{PROBLEM_TYPE_BASE}{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(after) = self.retry_after {
            doc["retry_after_seconds"] = serde_json::json!(retry_after_secs(after));
        }
        // A `Value` of strings and numbers always serializes.
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// The headers every problem answer carries, in order.
    pub(crate) fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        let mut out = vec![
            (header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        if let Some(after) = self.retry_after {
            out.push((header::RETRY_AFTER, HeaderValue::from(retry_after_secs(after))));
        }
        out
    }

    /// The answer.
    pub(crate) fn into_response(self) -> Response<HttpBody> {
        let body = self.to_json();
        let mut response = Response::new(super::full(Bytes::from(body)));
        *response.status_mut() = self.status;
        for (name, value) in self.headers() {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// `Retry-After` in whole seconds: rounded up, at least 1 (HTTP has no
/// finer unit, and 0 would invite an immediate retry storm).
pub(crate) fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs().saturating_add(u64::from(after.subsec_nanos() > 0));
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        for (d, s) in [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1_001), 2),
            (Duration::from_secs(90), 90),
            (Duration::MAX, u64::MAX),
        ] {
            assert_eq!(retry_after_secs(d), s, "{d:?}");
        }
    }

    #[test]
    fn problem_is_json_with_code_and_no_store() {
        let p = Problem::new(StatusCode::CONFLICT, "idempotency_request_in_progress", "t", "d\"é")
            .retry_after(Duration::from_millis(1_500));
        let r = p.into_response();
        assert_eq!(r.status(), 409);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
