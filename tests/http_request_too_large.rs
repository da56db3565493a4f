//! Proves that a request body over `.max_request_bytes` is refused with 413
//! `idempotency_request_too_large` (problem+json) before the handler runs —
//! whether the size is declared by `Content-Length` or found while reading
//! a chunked body — and that nothing is stored: the same key with a small
//! body then runs the handler (not 422, not a replay).

mod http_support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use http_support::{HANG, Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;
use std::io::{Read, Write};

const LIMIT: usize = 1024;

/// Sends a chunked POST by hand (reqwest sends a length for every body it
/// can build without streams) and returns the status line's code.
async fn chunked_post(addr: std::net::SocketAddr, key: &str, body: &[u8]) -> u16 {
    let mut req = format!(
        "POST /uploads HTTP/1.1\r\nHost: {addr}\r\nIdempotency-Key: {key}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(300) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // A plain blocking socket (tokio's io-util is not enabled here).
    let line = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        s.write_all(&req).unwrap();
        // Read up to the end of the status line; the server may close early.
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    })
    .await
    .unwrap();
    let code = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("status line {line:?}"));
    code.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runs = Runs::default();
    let handler_runs = runs.clone();
    let app = Router::new()
        .route(
            "/uploads",
            post(move |idem: Idem, body: String| {
                let runs = handler_runs.clone();
                async move {
                    runs.record(idem.as_deref(), &body);
                    (StatusCode::CREATED, format!("{} bytes", body.len()))
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS).max_request_bytes(LIMIT));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/uploads"));

    // Declared length over the limit, by one byte and by far.
    for len in [LIMIT + 1, 64 * LIMIT] {
        let a = post_key(&client, &url, Some("\"up-1\""), &"x".repeat(len)).await;
        a.assert_problem(413, "idempotency_request_too_large");
    }
    // Found while reading a chunked body.
    assert_eq!(chunked_post(server.addr, "\"up-2\"", &[b'y'; 2 * LIMIT]).await, 413);
    assert_eq!(runs.count(), 0, "an oversized request never reaches the handler");

    // The same keys are still free: a body at the limit runs.
    for key in ["\"up-1\"", "\"up-2\""] {
        let a = post_key(&client, &url, Some(key), &"z".repeat(LIMIT)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        assert!(!a.replayed());
        assert_eq!(a.text(), format!("{LIMIT} bytes"));
    }
    assert_eq!(chunked_post(server.addr, "\"up-3\"", b"small").await, 201);
    let counts: Vec<_> = runs.all().iter().map(|r| (r.attempt, r.body.len())).collect();
    assert_eq!(counts, vec![(Some(1), LIMIT), (Some(1), LIMIT), (Some(1), 5)]);
}
