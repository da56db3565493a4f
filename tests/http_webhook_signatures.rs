//! Webhook signatures end to end: a real axum server on 127.0.0.1, a real
//! reqwest client, a handler behind `VerifyLayer` that counts its calls.
//! Every refused request (forged, tampered, stale, unsigned, oversized)
//! must get its problem answer without the handler running.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use idemkv::MockClock;
use idemkv::http::webhook::{GitHub, StandardWebhooks, Stripe, Verifier, VerifyLayer};

const T_MS: u64 = 1_700_000_000_000;
const T: u64 = T_MS / 1000;
const LIMIT: usize = 1024;

/// A running server whose `/hook` handler echoes the body and counts calls.
struct Server {
    url: String,
    calls: Arc<AtomicUsize>,
    client: reqwest::Client,
}

/// What came back.
struct Answer {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Answer {
    /// The problem document's `code` member.
    fn code(&self) -> String {
        assert_eq!(self.content_type, "application/problem+json", "status {}", self.status);
        let doc: serde_json::Value = serde_json::from_slice(&self.body).expect("problem json");
        assert_eq!(doc["status"], self.status);
        doc["code"].as_str().expect("code").to_string()
    }
}

impl Server {
    /// Serves `layer` in front of the handler, with `Router::layer`, or
    /// with `Router::route_layer` when `per_route`.
    async fn start<V: Verifier>(layer: VerifyLayer<V>, per_route: bool) -> Server {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let handler = post(move |body: Bytes| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            body
        });
        let router = Router::new().route("/hook", handler);
        let router = if per_route { router.route_layer(layer) } else { router.layer(layer) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        Server { url: format!("http://{addr}/hook"), calls, client: reqwest::Client::new() }
    }

    async fn send(&self, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut request = self.client.post(&self.url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("response");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        let body = response.bytes().await.expect("body");
        Answer { status, content_type, body }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Sends a request that must be refused with `status` and `code`,
    /// without the handler running.
    async fn refused(&self, headers: &[(&str, &str)], body: &[u8], status: u16, code: &str) {
        let before = self.calls();
        let answer = self.send(headers, body).await;
        assert_eq!(answer.status, status, "{code}: {:?}", answer.body);
        assert_eq!(answer.code(), code);
        assert_eq!(self.calls(), before, "the handler ran for a refused request ({code})");
    }

    /// Sends a request that must reach the handler with its body intact.
    async fn accepted(&self, headers: &[(&str, &str)], body: &[u8]) {
        let before = self.calls();
        let answer = self.send(headers, body).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(&answer.body[..], body, "the handler got another body");
        assert_eq!(self.calls(), before + 1);
    }
}

#[tokio::test]
async fn standard_webhooks_over_http() {
    let clock = MockClock::new(T_MS);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sender = StandardWebhooks::new(secret).expect("secret");
    let layer = VerifyLayer::new(StandardWebhooks::new(secret).expect("secret"))
        .clock(Arc::new(clock.clone()))
        .max_body_bytes(LIMIT);
    let server = Server::start(layer, false).await;
    let body = br#"{"type":"invoice.paid","id":"evt_1"}"#;
    let ts = T.to_string();
    let sig = sender.sign("msg_1", T, body);
    let good = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];

    server.accepted(&good, body).await;
    // Svix's header names.
    let svix =
        [("svix-id", "msg_1"), ("svix-timestamp", ts.as_str()), ("svix-signature", sig.as_str())];
    server.accepted(&svix, body).await;

    // Forged (another secret), tampered body, tampered id.
    let other = StandardWebhooks::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret");
    let forged_sig = other.sign("msg_1", T, body);
    let forged = [good[0], good[1], ("webhook-signature", forged_sig.as_str())];
    server.refused(&forged, body, 401, "webhook_signature_invalid").await;
    server
        .refused(
            &good,
            br#"{"type":"invoice.paid","id":"evt_2"}"#,
            401,
            "webhook_signature_invalid",
        )
        .await;
    let moved = [("webhook-id", "msg_2"), good[1], good[2]];
    server.refused(&moved, body, 401, "webhook_signature_invalid").await;

    // Stale: the clock moves past the 5 minute tolerance; at it, still fine.
    clock.advance(Duration::from_secs(300));
    server.accepted(&good, body).await;
    clock.advance(Duration::from_secs(1));
    server.refused(&good, body, 401, "webhook_timestamp_outside_tolerance").await;
    clock.set(T_MS);
    // From the future, beyond the tolerance.
    let future_ts = (T + 301).to_string();
    let future_sig = sender.sign("msg_1", T + 301, body);
    let future = [
        good[0],
        ("webhook-timestamp", future_ts.as_str()),
        ("webhook-signature", future_sig.as_str()),
    ];
    server.refused(&future, body, 401, "webhook_timestamp_outside_tolerance").await;

    // Unsigned, half-signed, malformed.
    server.refused(&[], body, 400, "webhook_signature_missing").await;
    server.refused(&good[..2], body, 400, "webhook_signature_missing").await;
    let bad_ts = [good[0], ("webhook-timestamp", "yesterday"), good[2]];
    server.refused(&bad_ts, body, 400, "webhook_signature_malformed").await;

    // Oversized, even when validly signed.
    let big = vec![b'x'; LIMIT + 1];
    let big_sig = sender.sign("msg_1", T, &big);
    let big_headers = [good[0], good[1], ("webhook-signature", big_sig.as_str())];
    server.refused(&big_headers, &big, 413, "webhook_body_too_large").await;

    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn stripe_over_http() {
    let clock = MockClock::new(T_MS);
    let sender = Stripe::new("whsec_new").expect("secret");
    // Mid-rotation: the old secret is still accepted.
    let verifier =
        Stripe::new("whsec_new").expect("secret").with_secret("whsec_old").expect("secret");
    let layer = VerifyLayer::new(verifier).clock(Arc::new(clock.clone())).max_body_bytes(LIMIT);
    let server = Server::start(layer, true).await;
    let body = br#"{"id":"evt_1","object":"event"}"#;
    let value = sender.sign(T, body);

    server.accepted(&[("stripe-signature", &value)], body).await;
    let by_old = Stripe::new("whsec_old").expect("secret").sign(T, body);
    server.accepted(&[("Stripe-Signature", &by_old)], body).await;

    let forged = Stripe::new("whsec_other").expect("secret").sign(T, body);
    server.refused(&[("stripe-signature", &forged)], body, 401, "webhook_signature_invalid").await;
    server.refused(&[("stripe-signature", &value)], b"{}", 401, "webhook_signature_invalid").await;

    clock.advance(Duration::from_secs(301));
    server
        .refused(&[("stripe-signature", &value)], body, 401, "webhook_timestamp_outside_tolerance")
        .await;
    clock.set(T_MS);

    server.refused(&[], body, 400, "webhook_signature_missing").await;
    server
        .refused(&[("stripe-signature", "v1=00")], body, 400, "webhook_signature_malformed")
        .await;

    let big = vec![b'x'; LIMIT + 1];
    let big_value = sender.sign(T, &big);
    server.refused(&[("stripe-signature", &big_value)], &big, 413, "webhook_body_too_large").await;

    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn github_over_http() {
    let sender = GitHub::new("It's a Secret to Everybody").expect("secret");
    let layer = VerifyLayer::new(GitHub::new("It's a Secret to Everybody").expect("secret"))
        .max_body_bytes(LIMIT);
    let server = Server::start(layer, false).await;
    let body = b"Hello, World!";
    let value = sender.sign(body);
    assert_eq!(value, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");

    server.accepted(&[("x-hub-signature-256", &value)], body).await;

    let forged = GitHub::new("a guess").expect("secret").sign(body);
    server
        .refused(&[("x-hub-signature-256", &forged)], body, 401, "webhook_signature_invalid")
        .await;
    server
        .refused(
            &[("x-hub-signature-256", &value)],
            b"Hello, World?",
            401,
            "webhook_signature_invalid",
        )
        .await;
    server.refused(&[], body, 400, "webhook_signature_missing").await;
    let sha1 = [("x-hub-signature", "sha1=0000000000000000000000000000000000000000")];
    server.refused(&sha1, body, 400, "webhook_signature_missing").await;
    server
        .refused(&[("x-hub-signature-256", "sha256=abc")], body, 400, "webhook_signature_malformed")
        .await;

    let big = vec![b'x'; LIMIT + 1];
    let big_value = sender.sign(&big);
    server
        .refused(&[("x-hub-signature-256", &big_value)], &big, 413, "webhook_body_too_large")
        .await;

    assert_eq!(server.calls(), 1);
}
