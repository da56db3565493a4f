//! Proves that a 5xx answer is not stored: the client gets the handler's
//! 5xx as it is, the claim is abandoned, and the next request with the key
//! runs the handler again as attempt 2 with `recovered() == true` (part of
//! the side effect may have happened); its 2xx is then stored and replayed.

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_xx_abandons_and_the_retry_sees_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    // The first run of each key answers the status the body names; later
    // runs answer 201.
    let app = Router::new()
        .route(
            "/payouts",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let first = idem.as_ref().is_some_and(|i| i.attempt() == 1);
                    let n = runs.record(idem.as_deref(), &body);
                    if first {
                        let status = StatusCode::from_u16(body.parse().unwrap()).unwrap();
                        (status, format!("failed run {n}"))
                    } else {
                        (StatusCode::CREATED, format!("paid out in run {n}"))
                    }
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/payouts"));

    for status in [500u16, 502, 503, 504] {
        let key = format!("\"p-{status}\"");
        let before = runs.count();
        let failed = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(failed.status.as_u16(), status);
        assert!(!failed.replayed());
        assert_eq!(failed.text(), format!("failed run {before}"));

        let retried = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
        assert!(!retried.replayed(), "the 5xx was not stored");
        let run = runs.last();
        assert_eq!((run.attempt, run.recovered), (Some(2), true), "after {status}");

        let dup = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert!(dup.replayed());
        assert_eq!((dup.status, &dup.body), (retried.status, &retried.body));
        assert_eq!(runs.count(), before + 2);
    }
}
