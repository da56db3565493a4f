//! Proves `.on_recovered(OnRecovered::Reject)`: once an attempt at a key was
//! orphaned (its handler answered 5xx, or panicked), the next request does
//! not run the handler but gets 409 `idempotency_outcome_unknown`
//! (problem+json), and that answer is stored: every later request with the
//! key gets it again, byte for byte, marked `Idempotent-Replayed: true`.

mod http_support;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, ns_stats, open_store, post_key, until};
use idemkv::http::{IdempotencyLayer, OnRecovered};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_key_is_rejected_and_the_rejection_replayed() {
    http_support::quiet_deliberate_panics();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    // Body "500": answer 500; "panic": panic; else 201.
    let app = Router::new()
        .route(
            "/wires",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    runs.record(idem.as_deref(), &body);
                    match body.as_str() {
                        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "ledger down"),
                        "panic" => panic!("deliberate panic mid-wire"),
                        _ => (StatusCode::CREATED, "wired"),
                    }
                }
            }),
        )
        .layer(IdempotencyLayer::new(store.clone(), NS).on_recovered(OnRecovered::Reject));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/wires"));

    // Orphaned by a 5xx.
    let failed = post_key(&client, &url, Some("\"w-1\""), "500").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Orphaned by a panic.
    let cut = client.post(&url).header("idempotency-key", "\"w-2\"").body("panic").send().await;
    assert!(cut.is_err() || cut.unwrap().bytes().await.is_err());
    until("both abandons", || ns_stats(&store).abandons == 2).await;
    assert_eq!(runs.count(), 2);

    for (key, body) in [("\"w-1\"", "500"), ("\"w-2\"", "panic")] {
        let rejected = post_key(&client, &url, Some(key), body).await;
        rejected.assert_problem(409, "idempotency_outcome_unknown");
        assert!(!rejected.replayed());
        for _ in 0..2 {
            let again = post_key(&client, &url, Some(key), body).await;
            again.assert_problem(409, "idempotency_outcome_unknown");
            assert!(again.replayed(), "the rejection is stored");
            assert_eq!(again.body, rejected.body);
            assert_eq!(again.all(&header::CONTENT_TYPE), rejected.all(&header::CONTENT_TYPE));
        }
    }
    assert_eq!(runs.count(), 2, "an orphaned key never runs again");
    // A key that was never orphaned is unaffected.
    let ok = post_key(&client, &url, Some("\"w-3\""), "go").await;
    assert_eq!((ok.status, ok.text().as_str()), (StatusCode::CREATED, "wired"));
    assert!(!runs.last().recovered);
}
