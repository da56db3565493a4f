//! Proves what the layer does when the store cannot answer (closed with
//! `store.clone().close()`): by default it fails closed — 503
//! `idempotency_unavailable` with `Retry-After` (problem+json), the handler
//! does not run, not even for a key whose answer was stored — and with
//! `.fail_open(true)` it runs the handler without idempotency (every
//! request runs, no extension, no replay).

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
            "/charges",
            post(move |idem: Idem, body: String| {
                let runs = runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    (StatusCode::CREATED, format!("charge {n}"))
                }
            }),
        )
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_fails_closed_by_default_and_open_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let (closed_runs, open_runs) = (Runs::default(), Runs::default());
    let closed = Server::start(app(IdempotencyLayer::new(store.clone(), NS), &closed_runs)).await;
    let open_layer = IdempotencyLayer::new(store.clone(), NS).fail_open(true);
    let open = Server::start(app(open_layer, &open_runs)).await;
    let client = client();

    // While the store is open, both layers are idempotent.
    let stored = post_key(&client, &closed.url("/charges"), Some("\"c-1\""), "{}").await;
    assert_eq!(stored.status, StatusCode::CREATED);
    let a = post_key(&client, &open.url("/charges"), Some("\"o-1\""), "{}").await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(post_key(&client, &open.url("/charges"), Some("\"o-1\""), "{}").await.replayed());
    assert_eq!((closed_runs.count(), open_runs.count()), (1, 1));

    store.clone().close().expect("close the store");

    for key in ["\"c-1\"", "\"c-2\"", "\"c-2\""] {
        let a = post_key(&client, &closed.url("/charges"), Some(key), "{}").await;
        let doc = a.assert_problem(503, "idempotency_unavailable");
        assert!(!a.replayed(), "{doc}");
        a.retry_after();
    }
    assert_eq!(closed_runs.count(), 1, "fail closed: the handler does not run");

    for i in 0..2 {
        let a = post_key(&client, &open.url("/charges"), Some("\"o-2\""), "{}").await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        assert!(!a.replayed());
        assert_eq!(a.text(), format!("charge {}", i + 1));
    }
    // Even the stored key runs again: without the store there is no replay.
    let a = post_key(&client, &open.url("/charges"), Some("\"o-1\""), "{}").await;
    assert_eq!((a.status, a.replayed()), (StatusCode::CREATED, false));
    let unguarded = Run { attempt: None, recovered: false, body: "{}".into() };
    assert_eq!(open_runs.all()[1..], [unguarded.clone(), unguarded.clone(), unguarded]);
}
