//! Proves that a POST without an `Idempotency-Key` is refused with 400
//! `idempotency_key_missing` (problem+json, `no-store`) before the handler
//! runs, and that with `.require_key(false)` it passes through to the
//! handler without idempotency (every request runs, nothing is replayed).

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Idem, NS, Run, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

fn app(layer: IdempotencyLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new()
        .route(
            "/refunds",
            post(move |idem: Idem, body: String| {
                let runs = runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    (StatusCode::CREATED, format!("refund {n}"))
                }
            }),
        )
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_400_by_default_and_passes_when_not_required() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());

    let runs = Runs::default();
    let server = Server::start(app(IdempotencyLayer::new(store.clone(), NS), &runs)).await;
    let (client, url) = (client(), server.url("/refunds"));
    for _ in 0..2 {
        let a = post_key(&client, &url, None, "{}").await;
        a.assert_problem(400, "idempotency_key_missing");
        assert!(!a.replayed());
    }
    // Another header does not count as the key.
    let other = client.post(&url).header("x-idempotency-key", "k").body("{}").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    assert_eq!(runs.count(), 0, "the handler never runs without a key");

    let runs = Runs::default();
    let layer = IdempotencyLayer::new(store, NS).require_key(false);
    let server = Server::start(app(layer, &runs)).await;
    let url = server.url("/refunds");
    for i in 0..2 {
        let a = post_key(&client, &url, None, "{}").await;
        assert_eq!(a.status, StatusCode::CREATED);
        assert!(!a.replayed());
        assert_eq!(a.text(), format!("refund {i}"));
    }
    let unguarded = Run { attempt: None, recovered: false, body: "{}".into() };
    assert_eq!(runs.all(), vec![unguarded.clone(), unguarded]);
}
