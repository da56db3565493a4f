//! Reading a request body into memory, up to a limit.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::BoxError;

/// Why a body could not be buffered.
#[derive(Debug)]
pub(crate) enum BufferError {
    /// Longer than the limit (by `Content-Length`, or while reading).
    TooLarge,
    /// The body failed while being read (say, the client went away).
    Read(BoxError),
}

/// The whole body, or [`BufferError::TooLarge`] as soon as it is known to
/// exceed `limit` bytes — from `Content-Length` before reading anything, or
/// while reading. Waits for the body's frames; never panics.
pub(crate) async fn collect_limited<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, BufferError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BufferError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BufferError::TooLarge),
        Err(e) => Err(BufferError::Read(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures_executor_lite(f)
    }

    /// A minimal executor for ready-at-once futures (bodies in memory).
    fn futures_executor_lite<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn bodies_at_under_and_over_the_limit() {
        for (len, limit, fits) in [(0, 0, true), (5, 5, true), (6, 5, false), (0, 5, true)] {
            let body = Full::new(Bytes::from(vec![7u8; len]));
            let got = run(collect_limited(&HeaderMap::new(), body, limit));
            match got {
                Ok(b) => assert!(fits && b.len() == len, "{len} {limit}"),
                Err(BufferError::TooLarge) => assert!(!fits, "{len} {limit}"),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("99999999999"));
        let got = run(collect_limited(&h, Full::new(Bytes::new()), 10));
        assert!(matches!(got, Err(BufferError::TooLarge)));
    }
}
