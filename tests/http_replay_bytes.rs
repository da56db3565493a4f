//! Proves that a duplicate gets the original response byte for byte over
//! real HTTP: the same status, the same body (binary, every byte value),
//! every allow-listed header with all its field lines in order
//! (Content-Type, Location, ETag, Link ×2, Cache-Control), plus
//! `Idempotent-Replayed: true` — and never the original's `Set-Cookie`,
//! `Date` or a header outside the allow-list; the handler runs once.

mod http_support;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::routing::post;
use http_support::{Idem, NS, Runs, Server, client, open_store, post_key};
use idemkv::http::IdempotencyLayer;

const FIXED_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn body_of(run: usize, request: &str) -> Vec<u8> {
    let mut b: Vec<u8> = (0..=255u8).collect();
    b.extend_from_slice(format!("run={run};request={request}").as_bytes());
    b.push(0);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_byte_identical_with_allow_listed_headers_only() {
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
                    let mut h = HeaderMap::new();
                    let mut add = |name: HeaderName, v: String| h.append(name, v.parse().unwrap());
                    add(header::CONTENT_TYPE, "application/vnd.order+octets; v=1".into());
                    add(header::LOCATION, format!("/orders/ord_{n}"));
                    add(header::ETAG, format!("W/\"e{n}\""));
                    add(header::LINK, "</orders>; rel=\"collection\"".into());
                    add(header::LINK, format!("</orders/ord_{n}/items>; rel=\"items\""));
                    add(header::CACHE_CONTROL, "private, max-age=0".into());
                    add(header::SET_COOKIE, format!("session=secret{n}; HttpOnly"));
                    add(header::DATE, FIXED_DATE.into());
                    add(HeaderName::from_static("x-request-id"), format!("req-{n}"));
                    (StatusCode::CREATED, h, body_of(n, &body))
                }
            }),
        )
        .layer(IdempotencyLayer::new(store, NS));
    let server = Server::start(app).await;
    let (client, url) = (client(), server.url("/orders"));

    let original = post_key(&client, &url, Some("\"order-1\""), "{\"sku\":\"a\"}").await;
    assert_eq!(original.status, StatusCode::CREATED);
    assert!(!original.replayed());
    assert_eq!(original.body, body_of(0, "{\"sku\":\"a\"}"));
    // The handler's own answer carries everything it set.
    assert_eq!(original.all(&header::SET_COOKIE).len(), 1);
    assert_eq!(original.all(&header::DATE), vec![FIXED_DATE.as_bytes().to_vec()]);
    assert_eq!(original.all(&HeaderName::from_static("x-request-id")).len(), 1);

    for _ in 0..3 {
        let dup = post_key(&client, &url, Some("\"order-1\""), "{\"sku\":\"a\"}").await;
        assert_eq!(dup.status, StatusCode::CREATED);
        assert!(dup.replayed());
        assert_eq!(dup.body, original.body, "the body is replayed byte for byte");
        for name in [
            header::CONTENT_TYPE,
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::CACHE_CONTROL,
            header::CONTENT_LENGTH,
        ] {
            assert_eq!(dup.all(&name), original.all(&name), "{name}");
        }
        assert_eq!(dup.all(&header::LINK).len(), 2, "both Link lines, in order");
        assert!(dup.all(&header::SET_COOKIE).is_empty(), "Set-Cookie is never replayed");
        assert!(dup.all(&HeaderName::from_static("x-request-id")).is_empty());
        // The server's own Date, never the stored one.
        let dates = dup.all(&header::DATE);
        assert_eq!(dates.len(), 1);
        assert_ne!(dates[0], FIXED_DATE.as_bytes());
    }
    assert_eq!(runs.count(), 1, "duplicates never run the handler");
    assert_eq!(runs.last().attempt, Some(1));
}
