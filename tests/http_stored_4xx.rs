//! Proves that client-error answers (and redirects) are results, not
//! failures: a handler's 400, 401, 403, 404, 409, 410, 422 or 303 is stored
//! and every duplicate gets that same status and body, marked
//! `Idempotent-Replayed: true`, without the handler running again.

mod http_support;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_xx_answers_are_stored_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    // The request body names the status the handler answers with.
    let app = Router::new()
        .route(
            "/transfers",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    let status = StatusCode::from_u16(body.parse().unwrap()).unwrap();
                    let location = format!("/transfers/{n}");
                    (
                        status,
                        [(header::LOCATION, location)],
                        format!("{{\"run\":{n},\"status\":{body}}}"),
                    )
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/transfers"));

    let statuses = [400u16, 401, 403, 404, 409, 410, 422, 303];
    let mut originals = Vec::new();
    for (i, status) in statuses.iter().enumerate() {
        let key = format!("\"k-{status}\"");
        let a = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(a.status.as_u16(), *status, "{}", a.text());
        assert!(!a.replayed());
        assert_eq!(a.text(), format!("{{\"run\":{i},\"status\":{status}}}"));
        originals.push(a);
    }
    assert_eq!(runs.count(), statuses.len());
    for (status, original) in statuses.iter().zip(&originals) {
        let key = format!("\"k-{status}\"");
        let dup = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(dup.status, original.status);
        assert!(dup.replayed(), "{status} must be replayed");
        assert_eq!(dup.body, original.body);
        assert_eq!(dup.all(&header::LOCATION), original.all(&header::LOCATION));
    }
    assert_eq!(runs.count(), statuses.len(), "no duplicate ran the handler");
}
