//! Unit tests of [`VerifyLayer`] with in-memory bodies (no server; the
//! integration test `tests/http_webhook_signatures.rs` runs a real one).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::clock::MockClock;
use crate::http::webhook::{GitHub, StandardWebhooks, Stripe};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_MS: u64 = 1_700_000_000_000;
const NOW: u64 = NOW_MS / 1000;

/// Runs a future that never waits on anything outside memory.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A request body that is bytes, or fails when read.
enum TestBody {
    Bytes(Option<Bytes>),
    Fails,
}

impl From<Bytes> for TestBody {
    fn from(bytes: Bytes) -> TestBody {
        TestBody::Bytes(Some(bytes))
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            TestBody::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Fails => Poll::Ready(Some(Err(std::io::Error::other("client went away")))),
        }
    }
}

/// An inner service that counts its calls and echoes the body it got.
#[derive(Clone)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<TestBody>> for Echo {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<TestBody>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let body = request.into_body().collect().await.expect("re-attached body").to_bytes();
            Ok(Response::new(Full::new(body)))
        })
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn code(&self) -> String {
        let doc: serde_json::Value = serde_json::from_slice(&self.body).expect("problem json");
        doc["code"].as_str().expect("code").to_string()
    }
}

fn send<V: Verifier>(
    layer: &VerifyLayer<V>,
    calls: &Arc<AtomicUsize>,
    request: Request<TestBody>,
) -> Answer {
    let mut service = layer.layer(Echo { calls: Arc::clone(calls) });
    let response = run(service.call(request)).expect("infallible");
    let (parts, body) = response.into_parts();
    let body = run(body.collect()).expect("body").to_bytes();
    Answer { status: parts.status, headers: parts.headers, body }
}

fn request(headers: &[(&str, &str)], body: &'static [u8]) -> Request<TestBody> {
    let mut request =
        Request::post("/hook").body(TestBody::from(Bytes::from_static(body))).expect("request");
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        request.headers_mut().insert(name, HeaderValue::from_str(value).expect("header value"));
    }
    request
}

fn standard_layer(clock: &MockClock) -> VerifyLayer<StandardWebhooks> {
    let verifier = StandardWebhooks::new(SECRET).expect("secret");
    VerifyLayer::new(verifier).clock(Arc::new(clock.clone())).max_body_bytes(64)
}

fn signed(body: &'static [u8]) -> Request<TestBody> {
    let sig = StandardWebhooks::new(SECRET).expect("secret").sign("msg_1", NOW, body);
    request(
        &[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &NOW.to_string()),
            ("webhook-signature", &sig),
        ],
        body,
    )
}

#[test]
fn a_valid_request_reaches_the_inner_service_with_its_body() {
    let clock = MockClock::new(NOW_MS);
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = send(&standard_layer(&clock), &calls, signed(b"{\"n\":1}"));
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"{\"n\":1}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn refusals_answer_problems_and_never_call_the_inner_service() {
    let clock = MockClock::new(NOW_MS);
    let layer = standard_layer(&clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let check = |request: Request<TestBody>, status: StatusCode, code: &str| {
        let answer = send(&layer, &calls, request);
        assert_eq!(answer.status, status, "{code}");
        assert_eq!(answer.code(), code);
        assert_eq!(answer.headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        answer
    };

    check(request(&[], b"{}"), StatusCode::BAD_REQUEST, "webhook_signature_missing");
    let ts = NOW.to_string();
    let bad_ts =
        [("webhook-id", "msg_1"), ("webhook-timestamp", "soon"), ("webhook-signature", "v1,x")];
    check(request(&bad_ts, b"{}"), StatusCode::BAD_REQUEST, "webhook_signature_malformed");
    let forged =
        [("webhook-id", "msg_1"), ("webhook-timestamp", &ts), ("webhook-signature", "v1,x")];
    let answer =
        check(request(&forged, b"{}"), StatusCode::UNAUTHORIZED, "webhook_signature_invalid");
    assert!(!String::from_utf8_lossy(&answer.body).contains("v1,x"));

    clock.advance(Duration::from_secs(301));
    check(signed(b"{}"), StatusCode::UNAUTHORIZED, "webhook_timestamp_outside_tolerance");
    clock.set(NOW_MS);

    // Over the limit by Content-Length, and by what arrives.
    let mut declared = signed(b"{}");
    declared.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(65));
    check(declared, StatusCode::PAYLOAD_TOO_LARGE, "webhook_body_too_large");
    check(signed(&[b'x'; 65]), StatusCode::PAYLOAD_TOO_LARGE, "webhook_body_too_large");
    let mut failing = signed(b"{}");
    *failing.body_mut() = TestBody::Fails;
    check(failing, StatusCode::BAD_REQUEST, "webhook_body_unreadable");

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // At the limit exactly: accepted.
    assert_eq!(send(&layer, &calls, signed(&[b'x'; 64])).status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn stripe_and_github_verifiers_work_behind_the_layer() {
    let clock = MockClock::new(NOW_MS);
    let calls = Arc::new(AtomicUsize::new(0));
    let stripe = Stripe::new("whsec_test").expect("secret");
    let value = stripe.sign(NOW, b"{}");
    let layer = VerifyLayer::new(stripe).clock(Arc::new(clock.clone()));
    assert_eq!(
        send(&layer, &calls, request(&[("stripe-signature", &value)], b"{}")).status,
        StatusCode::OK
    );
    let answer = send(&layer, &calls, request(&[("stripe-signature", &value)], b"{ }"));
    assert_eq!(answer.code(), "webhook_signature_invalid");

    // A verifier chosen at run time, boxed.
    let github = GitHub::new("It's a Secret to Everybody").expect("secret");
    let value = github.sign(b"Hello, World!");
    let boxed: Box<dyn Verifier> = Box::new(github);
    let layer = VerifyLayer::new(boxed);
    let headers = [("x-hub-signature-256", value.as_str())];
    assert_eq!(send(&layer, &calls, request(&headers, b"Hello, World!")).status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_custom_verifiers_configuration_error_is_a_500_without_details() {
    struct Broken;
    impl Verifier for Broken {
        fn verify(
            &self,
            _: &HeaderMap,
            _: &[u8],
            _: std::time::SystemTime,
        ) -> Result<(), SignatureError> {
            Err(SignatureError::secret("the vault said no: hunter2"))
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = send(&VerifyLayer::new(Broken), &calls, request(&[], b""));
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.code(), "webhook_verifier_failed");
    assert!(!String::from_utf8_lossy(&answer.body).contains("hunter2"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn inner_errors_pass_through_and_readiness_is_the_inner_services() {
    #[derive(Clone)]
    struct Fails;
    impl Service<Request<TestBody>> for Fails {
        type Response = Response<Full<Bytes>>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Self::Response, &'static str>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
            Poll::Ready(Err("not ready"))
        }
        fn call(&mut self, _: Request<TestBody>) -> Self::Future {
            std::future::ready(Err("inner failed"))
        }
    }
    let clock = MockClock::new(NOW_MS);
    let mut service = standard_layer(&clock).layer(Fails);
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(service.poll_ready(&mut cx), Poll::Ready(Err("not ready")));
    assert_eq!(run(service.call(signed(b"{}"))).err(), Some("inner failed"));
}

#[test]
fn debug_names_the_verifier_type_and_no_secret() {
    let layer = standard_layer(&MockClock::new(0));
    let text = format!("{:?}", layer.layer(()));
    assert!(text.contains("StandardWebhooks") && text.contains("max_body_bytes: 64"), "{text}");
    assert!(!text.contains("MfKQ"), "{text}");
}
