//! Proves that `.identity` scopes keys per caller: two callers (and an
//! anonymous one) who send the same `Idempotency-Key` — even with
//! different bodies — never meet: each runs the handler once, never gets a
//! 422 or the other's answer, and each caller's duplicate replays its own.

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{Answer, Idem, NS, Runs, Server, client, open_store};
use idemkv::http::IdempotencyLayer;

async fn send(client: &reqwest::Client, url: &str, user: Option<&str>, body: &str) -> Answer {
    let mut req =
        client.post(url).header("idempotency-key", "\"shared-key\"").body(body.to_owned());
    if let Some(u) = user {
        req = req.header("x-user", u);
    }
    Answer::read(req.send().await.unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identities_with_one_key_never_meet() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let app = Router::new()
        .route(
            "/orders",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    let n = runs.record(idem.as_deref(), &body);
                    (StatusCode::CREATED, format!("order {n}: {body}"))
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS).identity(|parts| {
            parts.headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned)
        }));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/orders"));

    let callers = [(Some("alice"), "alice's cart"), (Some("bob"), "bob's cart"), (None, "anon")];
    let mut firsts = Vec::new();
    for (i, (user, body)) in callers.iter().enumerate() {
        let a = send(&client, &url, *user, body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{user:?}: {}", a.text());
        assert!(!a.replayed(), "{user:?} got someone else's answer");
        assert_eq!(a.text(), format!("order {i}: {body}"));
        firsts.push(a);
    }
    for ((user, body), first) in callers.iter().zip(&firsts) {
        let dup = send(&client, &url, *user, body).await;
        assert!(dup.replayed());
        assert_eq!(dup.body, first.body, "{user:?} replays its own answer");
    }
    // Bob reusing his key with Alice's body is Bob's mismatch, not Alice's replay.
    let reuse = send(&client, &url, Some("bob"), "alice's cart").await;
    reuse.assert_problem(422, "idempotency_key_reused");
    assert_eq!(runs.count(), 3);
}
