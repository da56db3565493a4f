//! Reading the handler's response: buffered whole when it fits the limit
//! (to be stored), otherwise forwarded as it streams, with what was already
//! read in front.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::{BoxError, HttpBody};

/// A handler's response body after reading it.
pub(crate) enum Read {
    /// The whole body, within the limit and without trailers.
    Whole(Bytes),
    /// Not storable — over the limit, with trailers, or failed while being
    /// read — but still the client's answer: the body as the handler sent
    /// it. `why` says what made it unstorable.
    Streamed { body: HttpBody, why: String },
}

/// Reads `body` up to `limit` bytes. Waits for the body's frames.
pub(crate) async fn read<B>(body: B, limit: usize) -> Read
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut body = Box::pin(body);
    let mut seen: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut len = 0usize;
    loop {
        match body.frame().await {
            None => {
                let mut whole = BytesMut::with_capacity(len);
                for f in seen {
                    if let Ok(d) = f.into_data() {
                        whole.extend_from_slice(&d);
                    }
                }
                return Read::Whole(whole.freeze());
            }
            Some(Ok(frame)) => {
                let why = match frame.data_ref() {
                    Some(d) => {
                        len = len.saturating_add(d.len());
                        (len > limit).then(|| format!("the response body exceeds {limit} bytes"))
                    }
                    None => Some("the response has trailers, which are not stored".to_string()),
                };
                seen.push_back(frame);
                if let Some(why) = why {
                    let body = Prefixed { seen, rest: Some(body), error: None }.boxed_unsync();
                    return Read::Streamed { body, why };
                }
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                let why = format!("the response body failed while being read: {e}");
                let body = Prefixed::<B> { seen, rest: None, error: Some(e) }.boxed_unsync();
                return Read::Streamed { body, why };
            }
        }
    }
}

/// The frames already read, then the rest of the body (or its error).
struct Prefixed<B> {
    seen: VecDeque<Frame<Bytes>>,
    rest: Option<Pin<Box<B>>>,
    error: Option<BoxError>,
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.seen.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match &mut this.rest {
            Some(rest) => rest.as_mut().poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.seen.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let seen: u64 = self.seen.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
        let rest = self.rest.as_ref().map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        // Upper first: `set_lower` panics above the current upper bound
        // (the rest of a read `Full` body is exactly 0).
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(seen));
        }
        hint.set_lower(rest.lower().saturating_add(seen));
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// A body of given frames (data, trailers or an error).
    struct Frames(VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    fn data(d: &'static [u8]) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from_static(d)))
    }

    #[test]
    fn fits_or_streams_the_same_bytes() {
        for (len, limit) in [(0usize, 0usize), (10, 10), (11, 10), (100, 1)] {
            let data = Bytes::from(vec![b'x'; len]);
            match block_on(read(Full::new(data.clone()), limit)) {
                Read::Whole(b) => assert!(len <= limit && b == data),
                Read::Streamed { body, why } => {
                    assert!(len > limit && why.contains("exceeds"));
                    let got = block_on(body.collect()).unwrap().to_bytes();
                    assert_eq!(got, data);
                }
            }
        }
    }

    #[test]
    fn size_hint_of_a_streamed_body_counts_what_was_read() {
        // A known-size body over the limit: everything is read already and
        // the rest is exactly empty (this used to panic in `set_lower`).
        let Read::Streamed { body, .. } = block_on(read(Full::new(Bytes::from(vec![1u8; 40])), 10))
        else {
            panic!()
        };
        assert_eq!(body.size_hint().exact(), Some(40));
        let over = Frames([data(b"ab"), data(b"cd"), data(b"e")].into());
        let Read::Streamed { body, .. } = block_on(read(over, 3)) else { panic!() };
        assert_eq!((body.size_hint().lower(), body.size_hint().upper()), (4, None));
    }

    #[test]
    fn several_frames_trailers_and_errors() {
        let whole = Frames([data(b"ab"), data(b"cd")].into());
        assert!(matches!(block_on(read(whole, 4)), Read::Whole(b) if b == "abcd"));
        let over = Frames([data(b"ab"), data(b"cd"), data(b"e")].into());
        let Read::Streamed { body, .. } = block_on(read(over, 3)) else { panic!() };
        assert_eq!(block_on(body.collect()).unwrap().to_bytes(), "abcde");
        let trailers = Frames([data(b"ab"), Ok(Frame::trailers(http::HeaderMap::new()))].into());
        let Read::Streamed { body, why } = block_on(read(trailers, 100)) else { panic!() };
        assert!(why.contains("trailers"));
        assert!(block_on(body.collect()).unwrap().trailers().is_some());
        let failing = Frames([data(b"ab"), Err("boom".into())].into());
        let Read::Streamed { body, why } = block_on(read(failing, 100)) else { panic!() };
        assert!(why.contains("boom"));
        assert!(block_on(body.collect()).is_err());
    }
}
