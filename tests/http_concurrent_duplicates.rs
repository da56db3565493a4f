//! Proves that 50 concurrent identical requests with one `Idempotency-Key`
//! run the handler exactly once, over real HTTP: with the default layer the
//! 49 duplicates that arrive while the handler is held get 409
//! `idempotency_request_in_progress` (problem+json, `Retry-After`) and the
//! one request that ran gets the handler's answer; with `.wait_in_flight`
//! all 49 duplicates wait inside the store and then get the same status,
//! headers and body as the original, marked `Idempotent-Replayed: true`.

mod http_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use http_support::{Answer, Gate, Idem, NS, Runs, Server, client, open_store, within};
use idemkv::Store;
use idemkv::http::IdempotencyLayer;
use tokio::sync::mpsc;

const N: usize = 50;

/// A handler held at `gate`, answering 201 with a body no other run could
/// produce (its run number and the request's body).
fn router(layer: IdempotencyLayer, runs: Runs, gate: Gate) -> Router {
    let serial = Arc::new(AtomicUsize::new(0));
    Router::new()
        .route(
            "/charges",
            post(move |idem: Idem, body: String| {
                let (runs, gate, serial) = (runs.clone(), gate.clone(), serial.clone());
                async move {
                    runs.record(idem.as_deref(), &body);
                    gate.pass().await;
                    let n = serial.fetch_add(1, Ordering::SeqCst);
                    let mut h = HeaderMap::new();
                    h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
                    h.insert(header::LOCATION, format!("/charges/ch_{n}").parse().unwrap());
                    h.insert(header::ETAG, format!("\"v{n}\"").parse().unwrap());
                    (StatusCode::CREATED, h, format!("{{\"charge\":{n},\"echo\":{body:?}}}"))
                }
            }),
        )
        .layer(layer)
}

/// Fires `N` identical requests at once; their answers arrive on the channel.
fn fire(url: String) -> mpsc::UnboundedReceiver<Answer> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = client();
    for _ in 0..N {
        let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
        tokio::spawn(async move {
            let response = client
                .post(&url)
                .header("idempotency-key", "\"dup-1\"")
                .body("{\"amount\":100}")
                .send()
                .await
                .expect("request");
            let _ = tx.send(Answer::read(response).await.expect("body"));
        });
    }
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Answer>) -> Answer {
    within("an answer", rx.recv()).await.expect("a request task died")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_duplicates_get_409_and_the_handler_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let (runs, gate) = (Runs::default(), Gate::default());
    let server =
        Server::start(router(IdempotencyLayer::new(store, NS), runs.clone(), gate.clone())).await;
    let url = server.url("/charges");
    let mut answers = fire(url.clone());

    // One request acquired the key and its handler is held: every other
    // request must be answered while it is held, and with 409.
    gate.entered().await;
    let mut conflicts = Vec::new();
    for _ in 0..N - 1 {
        conflicts.push(next(&mut answers).await);
    }
    assert_eq!(runs.count(), 1, "only one handler may run");
    assert!(!gate.has_unseen_entry(), "a second handler entered");
    for a in &conflicts {
        a.assert_problem(409, "idempotency_request_in_progress");
        a.retry_after();
        assert!(!a.replayed());
    }
    gate.open();
    let original = next(&mut answers).await;
    assert_eq!(original.status, StatusCode::CREATED, "{}", original.text());
    assert!(!original.replayed());
    assert_eq!(original.text(), "{\"charge\":0,\"echo\":\"{\\\"amount\\\":100}\"}");
    assert_eq!(runs.count(), 1);

    // The key is now completed: a late duplicate gets the stored answer.
    let late = http_support::post_key(&client(), &url, Some("\"dup-1\""), "{\"amount\":100}").await;
    assert_eq!(late.status, StatusCode::CREATED);
    assert!(late.replayed());
    assert_eq!(late.body, original.body);
    assert_eq!(late.all(&header::LOCATION), original.all(&header::LOCATION));
    assert_eq!(runs.count(), 1);
}

/// The store's count of `wait` calls in the layer's namespace.
fn waits(store: &Store) -> u64 {
    store.stats().namespaces.get(NS).map_or(0, |s| s.waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_in_flight_every_duplicate_gets_the_original_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let layer = IdempotencyLayer::new(store.clone(), NS).wait_in_flight(Duration::from_secs(3600));
    let (runs, gate) = (Runs::default(), Gate::default());
    let server = Server::start(router(layer, runs.clone(), gate.clone())).await;
    let mut answers = fire(server.url("/charges"));

    // The handler is held; wait until all N claims have looked at the key
    // (each counts one `wait` under the key's lock before it sleeps), so
    // the N - 1 duplicates are really waiting on the in-flight claim.
    gate.entered().await;
    within("all claims to reach the store", async {
        while waits(&store) < N as u64 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(waits(&store), N as u64);
    assert!(answers.is_empty(), "a duplicate was answered while the original was in flight");
    assert_eq!(runs.count(), 1);

    gate.open();
    let mut all = Vec::new();
    for _ in 0..N {
        all.push(next(&mut answers).await);
    }
    assert_eq!(runs.count(), 1, "only one handler may run");
    let (replays, originals): (Vec<&Answer>, Vec<&Answer>) = all.iter().partition(|a| a.replayed());
    assert_eq!(originals.len(), 1, "exactly one answer comes from the handler itself");
    assert_eq!(replays.len(), N - 1);
    let original = originals[0];
    assert_eq!(original.status, StatusCode::CREATED, "{}", original.text());
    for a in &replays {
        assert_eq!(a.status, original.status);
        assert_eq!(a.body, original.body);
        for h in [header::CONTENT_TYPE, header::LOCATION, header::ETAG] {
            assert_eq!(a.all(&h), original.all(&h), "{h}");
        }
    }
}
