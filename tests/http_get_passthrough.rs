//! Proves that methods outside the layer's list (by default everything but
//! POST and PATCH) pass through untouched: a GET, PUT or DELETE runs the
//! handler every time, with or without an `Idempotency-Key`, even a
//! malformed one, never sees the layer's extension and is never replayed.

mod http_support;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use http_support::{Answer, Idem, NS, Runs, Server, client, open_store};
use idemkv::http::IdempotencyLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let r = runs.clone();
    let handler = move |method: Method, idem: Idem| {
        let runs = r.clone();
        async move {
            let n = runs.record(idem.as_deref(), method.as_str());
            (StatusCode::OK, format!("{method} {n}"))
        }
    };
    let app = Router::new()
        .route("/orders/{id}", get(handler.clone()).put(handler.clone()).delete(handler))
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/orders/1"));

    let mut n = 0;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for key in [Some("\"same\""), Some("\"same\""), None, Some("\"\"")] {
            let mut req = client.request(method.clone(), &url);
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            let a = Answer::read(req.send().await.unwrap()).await.unwrap();
            assert_eq!(a.status, StatusCode::OK, "{method} {key:?}: {}", a.text());
            assert!(!a.replayed());
            assert_eq!(a.text(), format!("{method} {n}"));
            n += 1;
        }
    }
    assert_eq!(runs.count(), 12, "every request ran the handler");
    assert!(runs.all().iter().all(|r| r.attempt.is_none()), "no idempotency extension");
}
