//! Proves that 429 and 408 release the claim for a plain retry: the client
//! gets the handler's answer, nothing is stored, and the next request with
//! the key runs the handler as attempt 2 with `recovered() == false` (the
//! handler said nothing happened); its 2xx is then stored and replayed.

mod http_support;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_and_timeout_release_without_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let app = Router::new()
        .route(
            "/sends",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let first = idem.as_ref().is_some_and(|i| i.attempt() == 1);
                    let n = runs.record(idem.as_deref(), &body);
                    if first {
                        let status = StatusCode::from_u16(body.parse().unwrap()).unwrap();
                        (
                            status,
                            [(header::RETRY_AFTER, "7".to_string())],
                            format!("later (run {n})"),
                        )
                    } else {
                        let location = format!("/sends/{n}");
                        (
                            StatusCode::ACCEPTED,
                            [(header::LOCATION, location)],
                            format!("sent in run {n}"),
                        )
                    }
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/sends"));

    for status in [429u16, 408] {
        let key = format!("\"s-{status}\"");
        let before = runs.count();
        let refused = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(refused.status.as_u16(), status);
        assert!(!refused.replayed());
        assert_eq!(refused.all(&header::RETRY_AFTER), vec![b"7".to_vec()], "the handler's own");

        let retried = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.text());
        assert!(!retried.replayed(), "the {status} was not stored");
        let run = runs.last();
        assert_eq!((run.attempt, run.recovered), (Some(2), false), "after {status}");

        let dup = post_key(&client, &url, Some(&key), &status.to_string()).await;
        assert!(dup.replayed());
        assert_eq!((dup.status, &dup.body), (retried.status, &retried.body));
        assert_eq!(runs.count(), before + 2);
    }
}
