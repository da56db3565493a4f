//! `idemkv get` shows a response stored by the HTTP layer as a response:
//! status, the stored headers and the body in the human output, and an
//! `http` object (status, headers in order, body) with `"format": "http"`
//! in `--json`. The record is written through a real axum server with the
//! layer and a real HTTP client on 127.0.0.1.

use std::process::{Command, Stdio};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;
use idemkv::Store;
use idemkv::http::IdempotencyLayer;
use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn idemkv(dir: &std::path::Path, args: &[&str]) -> TestResult<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn an_http_body_is_shown_as_a_response() -> TestResult {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = Store::open(dir.path())?;
        let app = Router::new()
            .route(
                "/charges",
                post(|| async {
                    (
                        StatusCode::CREATED,
                        [(header::LOCATION, "/charges/ch_1"), (header::SET_COOKIE, "s=1")],
                        "charged ch_1",
                    )
                }),
            )
            .route_layer(IdempotencyLayer::new(store.clone(), "api"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/charges", listener.local_addr()?);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().no_proxy().build()?;
        let answer =
            client.post(&url).header("idempotency-key", "\"k-1\"").body("{}").send().await?;
        assert_eq!(answer.status(), 201);
        server.abort();
        let _ = server.await;
        store.close()?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    let listed = idemkv(dir.path(), &["--json", "list"])?;
    let listed: Value = serde_json::from_str(&listed)?;
    let key = listed["entries"][0]["key"].as_str().expect("one key listed").to_owned();
    // Scoped by method and route: the key as `list` prints it.
    assert_eq!(key, "api:POST%20%252Fcharges/k-1");

    let human = idemkv(dir.path(), &["get", &key])?;
    assert!(human.contains("format        http"), "{human}");
    assert!(human.contains("HTTP 201 Created"), "{human}");
    assert!(human.contains("location: /charges/ch_1"), "{human}");
    assert!(!human.contains("set-cookie"), "never stored: {human}");
    assert!(human.contains("charged ch_1"), "{human}");

    let json: Value = serde_json::from_str(&idemkv(dir.path(), &["--json", "get", &key])?)?;
    assert_eq!(json["format"], "http");
    assert_eq!(json["http"]["status"], 201);
    assert_eq!(json["http"]["body"], "charged ch_1");
    let headers = json["http"]["headers"].as_array().expect("headers");
    assert!(headers.iter().any(|h| h[0] == "location" && h[1] == "/charges/ch_1"), "{json}");
    Ok(())
}
