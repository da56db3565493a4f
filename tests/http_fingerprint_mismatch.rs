//! Proves that a key reused with a different request is refused with 422
//! `idempotency_key_reused` (problem+json, `no-store`) without running the
//! handler and without disturbing the stored answer: by default the
//! fingerprint covers the method, the target with its query, and the body;
//! with `FingerprintSpec::json_fields` only the named fields count.

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::{FingerprintSpec, IdempotencyLayer};

fn app(layer: IdempotencyLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new()
        .route(
            "/payments",
            post(move |idem: Idem, body: String| {
                let runs = runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    (StatusCode::CREATED, format!("payment {n} for {body}"))
                }
            }),
        )
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_body_or_target_is_422() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let server = Server::start(app(IdempotencyLayer::new(store, NS), &runs)).await;
    let (client, url) = (client(), server.url("/payments"));

    let original = post_key(&client, &url, Some("\"pay-1\""), "{\"amount\":100}").await;
    assert_eq!(original.status, StatusCode::CREATED);
    for (target, body) in [
        (url.clone(), "{\"amount\":101}"),
        (url.clone(), "{\"amount\":100} "),
        (url.clone(), ""),
        (format!("{url}?currency=eur"), "{\"amount\":100}"),
    ] {
        let reused = post_key(&client, &target, Some("\"pay-1\""), body).await;
        let doc = reused.assert_problem(422, "idempotency_key_reused");
        assert!(!reused.replayed(), "{doc}");
    }
    assert_eq!(runs.count(), 1, "a reused key never runs the handler");
    // The stored answer is intact.
    let dup = post_key(&client, &url, Some("\"pay-1\""), "{\"amount\":100}").await;
    assert!(dup.replayed());
    assert_eq!((dup.status, &dup.body), (original.status, &original.body));
    assert_eq!(runs.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_fields_fingerprint_ignores_other_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let layer = IdempotencyLayer::new(store, NS)
        .fingerprint(FingerprintSpec::json_fields(["/amount", "/currency"]));
    let server = Server::start(app(layer, &runs)).await;
    let (client, url) = (client(), server.url("/payments"));

    let first = r#"{"amount":5,"currency":"eur","attempt":1}"#;
    let original = post_key(&client, &url, Some("\"evt-9\""), first).await;
    assert_eq!(original.status, StatusCode::CREATED);
    // Another delivery attempt, fields reordered: the same request.
    let retry = r#"{"attempt":2,"currency":"eur","amount":5}"#;
    let dup = post_key(&client, &url, Some("\"evt-9\""), retry).await;
    assert!(dup.replayed());
    assert_eq!(dup.body, original.body);
    // A changed amount is another request.
    let other =
        post_key(&client, &url, Some("\"evt-9\""), r#"{"amount":6,"currency":"eur"}"#).await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(runs.count(), 1);
}
