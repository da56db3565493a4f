//! Proves that a key is scoped by method and route: the same
//! `Idempotency-Key` and body sent to POST /a, POST /b and PATCH /a runs
//! each handler once and each replays its own answer; with axum's matched
//! routes the scope is the route template, so the key on `/orders/1` and
//! `/orders/2` (one route, `/orders/{id}`) is one key used with two
//! targets: 422, never the other order's answer.

mod http_support;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::{Method, StatusCode};
use axum::routing::{patch, post};
use http_support::{Answer, Idem, NS, Runs, Server, client, open_store};
use idemkv::http::IdempotencyLayer;

async fn send(client: &reqwest::Client, method: Method, url: &str) -> Answer {
    let req = client.request(method, url).header("idempotency-key", "\"k-1\"").body("{}");
    Answer::read(req.send().await.unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_on_two_routes_or_methods_never_meets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let r = runs.clone();
    let handler = move |method: Method, uri: OriginalUri, idem: Idem| {
        let runs = r.clone();
        async move {
            let what = format!("{method} {}", uri.path());
            let n = runs.record(idem.as_deref(), &what);
            (StatusCode::CREATED, format!("run {n}: {what}"))
        }
    };
    let app = Router::new()
        .route("/a", post(handler.clone()).patch(handler.clone()))
        .route("/b", post(handler.clone()))
        .route("/orders/{id}", patch(handler))
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let client = client();

    let endpoints = [(Method::POST, "/a"), (Method::POST, "/b"), (Method::PATCH, "/a")];
    let mut firsts = Vec::new();
    for (i, (method, path)) in endpoints.iter().enumerate() {
        let a = send(&client, method.clone(), &server.url(path)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{method} {path}: {}", a.text());
        assert!(!a.replayed(), "{method} {path} got another endpoint's answer");
        assert_eq!(a.text(), format!("run {i}: {method} {path}"));
        firsts.push(a);
    }
    for ((method, path), first) in endpoints.iter().zip(&firsts) {
        let dup = send(&client, method.clone(), &server.url(path)).await;
        assert!(dup.replayed());
        assert_eq!(dup.body, first.body, "{method} {path}");
    }
    assert_eq!(runs.count(), 3);

    let first = send(&client, Method::PATCH, &server.url("/orders/1")).await;
    assert_eq!(first.text(), "run 3: PATCH /orders/1");
    assert!(send(&client, Method::PATCH, &server.url("/orders/1")).await.replayed());
    let other = send(&client, Method::PATCH, &server.url("/orders/2")).await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(runs.count(), 4);
}
