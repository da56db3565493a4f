//! Proves that a response over `.max_response_bytes` reaches the client
//! whole but is not stored: the claim is abandoned, so the next request with
//! the key runs the handler again (attempt 2, `recovered() == true`) and is
//! not a replay; a response of exactly the limit is stored and replayed.

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

const LIMIT: usize = 1024;

/// `len` bytes that tell the run apart.
fn payload(run: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + run * 31) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_sent_whole_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    // The request body is the response length.
    let app = Router::new()
        .route(
            "/exports",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    (StatusCode::OK, payload(n, body.parse().unwrap()))
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS).max_response_bytes(LIMIT));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/exports"));

    let big = (4 * LIMIT).to_string();
    for attempt in 1..=3u32 {
        let a = post_key(&client, &url, Some("\"big\""), &big).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(!a.replayed(), "an unstored response is never replayed");
        assert_eq!(a.body, payload(attempt as usize - 1, 4 * LIMIT), "the client gets it whole");
        let run = runs.last();
        assert_eq!((run.attempt, run.recovered), (Some(attempt), attempt > 1));
    }

    let fits = post_key(&client, &url, Some("\"fits\""), &LIMIT.to_string()).await;
    assert_eq!((fits.status, fits.body.len()), (StatusCode::OK, LIMIT));
    let dup = post_key(&client, &url, Some("\"fits\""), &LIMIT.to_string()).await;
    assert!(dup.replayed());
    assert_eq!(dup.body, fits.body);
    assert_eq!(runs.count(), 4);
}
