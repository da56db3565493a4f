//! [`MetricsService`]: `GET /metrics` in the Prometheus text format.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};

use super::{HttpBody, full};
use crate::store::Store;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A tower service answering any request with the store's statistics in
/// the Prometheus text format ([`Stats::to_prometheus`](crate::Stats::to_prometheus)),
/// for a `/metrics` route: `.route("/metrics", get_service(MetricsService::new(store)))`.
///
/// Never fails (its error type is [`Infallible`]) and never blocks: a
/// snapshot of in-memory counters. A closed store still answers with its
/// last counters.
#[derive(Debug, Clone)]
pub struct MetricsService {
    store: Store,
}

impl MetricsService {
    /// Serves `store`'s metrics.
    pub fn new(store: Store) -> MetricsService {
        MetricsService { store }
    }

    /// The answer to a scrape.
    pub fn response(&self) -> Response<HttpBody> {
        let text = self.store.stats().to_prometheus();
        let mut response = Response::new(full(Bytes::from(text)));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE));
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<HttpBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<HttpBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(self.response()))
    }
}
