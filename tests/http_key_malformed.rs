//! Proves that a malformed `Idempotency-Key` is refused with 400
//! `idempotency_key_invalid` (problem+json, `no-store`) before the handler
//! runs and without recording anything, for the whole class of malformed
//! keys: an empty value or empty string, a list, repeated field lines, a
//! key over 255 bytes, non-ASCII bytes, separators or spaces in a bare key,
//! an unterminated string, other structured-field item types — and, with
//! the strict source, a bare key. A well-formed key of exactly 255 bytes
//! is accepted and runs.

mod http_support;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::post;
use http_support::{Answer, Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::{IdempotencyLayer, KeySource};

fn app(layer: IdempotencyLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new()
        .route(
            "/orders",
            post(move |idem: Idem, body: String| {
                let runs = runs.clone();
                async move {
                    runs.record(idem.as_deref(), &body);
                    StatusCode::CREATED
                }
            }),
        )
        .layer(layer)
}

/// Sends a POST with one `Idempotency-Key` field line per value.
async fn send(client: &reqwest::Client, url: &str, lines: &[&[u8]]) -> Answer {
    let mut req = client.post(url).body("{}");
    for v in lines {
        req = req.header("idempotency-key", HeaderValue::from_bytes(v).unwrap());
    }
    Answer::read(req.send().await.expect("request")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_400_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let lenient = Server::start(app(IdempotencyLayer::new(store.clone(), NS), &runs)).await;
    let strict_layer =
        IdempotencyLayer::new(store.clone(), NS).key(KeySource::idempotency_key_strict());
    let strict = Server::start(app(strict_layer, &runs)).await;
    let client = client();

    let long_string = format!("\"{}\"", "k".repeat(256));
    let long_bare = "k".repeat(256);
    let malformed: Vec<(&str, Vec<&[u8]>)> = vec![
        ("empty value", vec![b""]),
        ("blank value", vec![b"   "]),
        ("empty string", vec![b"\"\""]),
        ("list of strings", vec![b"\"a\", \"b\""]),
        ("repeated field lines", vec![b"\"a\"", b"\"a\""]),
        ("repeated bare lines", vec![b"a", b"b"]),
        ("string over 255 bytes", vec![long_string.as_bytes()]),
        ("bare key over 255 bytes", vec![long_bare.as_bytes()]),
        ("non-ASCII bare key", vec![b"caf\xe9"]),
        ("non-ASCII in a string", vec![b"\"caf\xe9\""]),
        ("comma in a bare key", vec![b"a,b"]),
        ("semicolon in a bare key", vec![b"a;b"]),
        ("space in a bare key", vec![b"a b"]),
        ("unterminated string", vec![b"\"abc"]),
        ("tab in a string", vec![b"\"a\tb\""]),
    ];
    for (what, lines) in &malformed {
        let a = send(&client, &lenient.url("/orders"), lines).await;
        let doc = a.assert_problem(400, "idempotency_key_invalid");
        assert!(!a.replayed(), "{what}: {doc}");
        let a = send(&client, &strict.url("/orders"), lines).await;
        a.assert_problem(400, "idempotency_key_invalid");
    }
    // The strict source takes only RFC 8941 strings.
    for bare in [&b"abc"[..], b"8e03978e-40d5", b"42", b"?1", b":YWI=:", b"tok/en"] {
        let a = send(&client, &strict.url("/orders"), &[bare]).await;
        a.assert_problem(400, "idempotency_key_invalid");
        // The lenient default takes what is a valid bare key.
        let a = send(&client, &lenient.url("/orders"), &[bare]).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{:?}: {}",
            String::from_utf8_lossy(bare),
            a.text()
        );
    }
    assert_eq!(runs.count(), 6, "only the lenient bare keys ran");

    // Nothing was recorded for the malformed keys: the longest valid key
    // (255 bytes) and a plain one run the handler now.
    let max = format!("\"{}\"", "k".repeat(255));
    let a = post_key(&client, &strict.url("/orders"), Some(&max), "{}").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let a = post_key(&client, &strict.url("/orders"), Some("\"a\""), "{}").await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(!a.replayed());
    assert_eq!(runs.count(), 8);
}
