//! Proves that `MetricsService` serves the store's Prometheus text on a
//! real HTTP route: after one first request and one duplicate through the
//! layer, `GET /metrics` answers 200 in the text format 0.0.4 with the
//! namespace's claim and replay counters, every sample line well formed.

mod http_support;

use axum::Router;
use axum::routing::{get_service, post};
use http_support::{NS, Server, client, open_store, post_key};
use idemkv::http::{IdempotencyLayer, MetricsService, PROMETHEUS_CONTENT_TYPE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_route_serves_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let app = Router::new()
        .route("/charges", post(|| async { "charged" }))
        .route_layer(IdempotencyLayer::new(store.clone(), NS))
        .route("/metrics", get_service(MetricsService::new(store.clone())));
    let server = Server::start(app).await;
    let client = client();
    let first = post_key(&client, &server.url("/charges"), Some("\"m1\""), "{}").await;
    let again = post_key(&client, &server.url("/charges"), Some("\"m1\""), "{}").await;
    assert_eq!((first.status.as_u16(), again.replayed()), (200, true));

    let response = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], PROMETHEUS_CONTENT_TYPE);
    let text = response.text().await.unwrap();
    let sample = |name: &str| -> f64 {
        let prefix = format!("{name}{{namespace=\"{NS}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(sample("idemkv_claims_total"), 2.0);
    assert_eq!(sample("idemkv_duplicates_replayed_total"), 1.0);
    assert_eq!(sample("idemkv_completions_total"), 1.0);
    // Every line is a comment or `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(series.starts_with("idemkv_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
