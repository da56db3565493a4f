//! Proves that a handler that panics mid-request abandons its claim: axum
//! does not catch the panic, so the client sees the connection fail, and
//! nothing is stored; the next request with the key runs the handler again
//! as attempt 2 with `recovered() == true`, and its answer is then stored
//! and replayed.

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, ns_stats, open_store, post_key, until};
use idemkv::http::IdempotencyLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_abandons_and_the_retry_sees_recovered() {
    http_support::quiet_deliberate_panics();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let app = Router::new()
        .route(
            "/imports",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    if n == 0 {
                        panic!("deliberate panic in the handler's first run");
                    }
                    (StatusCode::CREATED, format!("imported in run {n}"))
                }
            }),
        )
        .layer(IdempotencyLayer::new(store.clone(), NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/imports"));

    let crashed = client.post(&url).header("idempotency-key", "\"imp-1\"").body("{}").send().await;
    let crashed = match crashed {
        Ok(r) => r.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(crashed.is_err(), "the panic must cut the connection: {crashed:?}");
    assert_eq!(runs.count(), 1);
    // The connection closes before the panicked task's guard is dropped:
    // wait for the store to count the abandon, not for time to pass.
    until("the abandon", || ns_stats(&store).abandons == 1).await;

    let retried = post_key(&client, &url, Some("\"imp-1\""), "{}").await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
    assert!(!retried.replayed());
    let run = runs.last();
    assert_eq!((run.attempt, run.recovered), (Some(2), true));

    let dup = post_key(&client, &url, Some("\"imp-1\""), "{}").await;
    assert!(dup.replayed());
    assert_eq!((dup.status, &dup.body), (retried.status, &retried.body));
    assert_eq!(runs.count(), 2);
}
