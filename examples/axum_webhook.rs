//! An axum service with idemkv's HTTP layer: an Idempotency-Key API
//! (`POST /charges`), a Standard Webhooks receiver (`POST /webhooks`) and
//! `GET /metrics`. `cargo run --release --example axum_webhook`, then:
//!
//! ```sh
//! curl -i -X POST localhost:3000/charges -H 'Idempotency-Key: "k1"' -d '{"amount":500}'
//! curl -i -X POST localhost:3000/charges -H 'Idempotency-Key: "k1"' -d '{"amount":500}'  # replayed
//! curl -s localhost:3000/metrics
//! ```
//!
//! Environment: `IDEMKV_ADDR` (default `127.0.0.1:3000`), `IDEMKV_PATH`
//! (default `./idemkv-data`), `IDEMKV_WEBHOOK_SECRET` (a `whsec_…` secret;
//! a fixed development secret when unset).

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get_service, post};
use axum::{Extension, Json, Router};
use idemkv::http::webhook::{StandardWebhooks, VerifyLayer};
use idemkv::http::{IdempotencyLayer, IdempotentRequest, KeySource, MetricsService};
use idemkv::{Config, Policy};
use serde_json::{Value, json};

const DEV_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let day = Duration::from_secs(24 * 3600);
    // Keep each answer at least as long as the sender retries (Stripe: 3 days).
    let store = Config::new()
        .namespace("charges", Policy::default().retention(day))
        .namespace("webhooks", Policy::default().retention(3 * day).retry_horizon(3 * day))
        .open(var("IDEMKV_PATH", "./idemkv-data"))?;
    let webhooks = StandardWebhooks::new(&var("IDEMKV_WEBHOOK_SECRET", DEV_SECRET))?;

    let app = Router::new()
        .route("/charges", post(create_charge))
        .route_layer(IdempotencyLayer::new(store.clone(), "charges"))
        .merge(
            Router::new()
                .route("/webhooks", post(receive_webhook))
                // Outermost first: a bad signature never reaches the store.
                .route_layer(
                    IdempotencyLayer::new(store.clone(), "webhooks").key(KeySource::webhook_id()),
                )
                .route_layer(VerifyLayer::new(webhooks)),
        )
        .route("/metrics", get_service(MetricsService::new(store.clone())));

    let listener = tokio::net::TcpListener::bind(var("IDEMKV_ADDR", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    store.close()?;
    Ok(())
}

/// Runs once per Idempotency-Key; duplicates get this answer replayed.
async fn create_charge(
    Extension(req): Extension<IdempotentRequest>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if req.recovered() {
        // An earlier attempt crashed mid-way: look the charge up before charging again.
    }
    let id = format!("ch_{}", req.token());
    (StatusCode::CREATED, Json(json!({ "id": id, "amount": body["amount"] })))
}

/// Runs once per `webhook-id`, after its signature was verified.
async fn receive_webhook(Json(event): Json<Value>) -> Json<Value> {
    Json(json!({ "received": event["type"] }))
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
