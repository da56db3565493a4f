//! Shared support of the HTTP layer's end-to-end tests (`tests/http_*.rs`):
//! a real axum server on 127.0.0.1 with the idempotency layer in front of a
//! handler that counts its own runs, a real `reqwest` client, a gate that
//! holds the handler until the test lets it go, and assertions on answers
//! (problem documents, replays, allow-listed headers).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, header};
use idemkv::http::{IDEMPOTENT_REPLAYED, IdempotentRequest};
use idemkv::{Config, Store};
use tokio::sync::{Semaphore, mpsc};

/// The namespace every test layer uses.
pub const NS: &str = "http";

/// The longest any single step of a test may take before the test gives up
/// (a guard against hangs, never a timing assertion).
pub const HANG: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test with `what` if it hangs past [`HANG`].
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(HANG, f).await {
        Ok(out) => out,
        Err(_) => panic!("hung for {HANG:?}: {what}"),
    }
}

/// A store in `dir` (`Durable`, the default configuration, no sweeper).
pub fn open_store(dir: &Path) -> Store {
    Config::new().sweep_interval(None).open(dir).expect("open the test store")
}

/// A running axum server; aborted when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `router` on a fresh port of 127.0.0.1.
    pub async fn start(router: Router) -> Server {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("axum::serve");
        });
        Server { addr, task }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A keep-alive client that never goes through a proxy and never follows
/// redirects (the tests look at every answer as the server sent it).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// What the client received: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// Reads a whole response.
    pub async fn read(response: reqwest::Response) -> reqwest::Result<Answer> {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer { status, headers, body })
    }

    /// Whether the layer marked it as a replay.
    pub fn replayed(&self) -> bool {
        match self.headers.get(IDEMPOTENT_REPLAYED) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) => panic!("Idempotent-Replayed: {v:?}"),
        }
    }

    /// Every value of header `name`, in order.
    pub fn all(&self, name: &HeaderName) -> Vec<Vec<u8>> {
        self.headers.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    /// The body as text (for messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem answer with `status` and `code`,
    /// never cached; returns the document.
    pub fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text());
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..]),
            "{}",
            self.text()
        );
        assert_eq!(
            self.headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        let doc: serde_json::Value = serde_json::from_slice(&self.body).expect("problem JSON");
        assert_eq!(doc["code"], code, "{doc}");
        assert_eq!(doc["status"], status, "{doc}");
        assert!(doc["type"].as_str().is_some_and(|t| t.ends_with(code)), "{doc}");
        doc
    }

    /// The `Retry-After` header in whole seconds (asserts it is there and
    /// at least 1).
    pub fn retry_after(&self) -> u64 {
        let v = self.headers.get(header::RETRY_AFTER).expect("a Retry-After header");
        let secs: u64 = v.to_str().expect("ASCII").parse().expect("delay-seconds");
        assert!(secs >= 1, "Retry-After {secs}");
        secs
    }
}

/// Sends `POST url` with `body` and, if given, `Idempotency-Key: key`
/// (as written: quote it for the sf-string form).
pub async fn post_key(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &str,
) -> Answer {
    let mut req = client.post(url).body(body.to_owned());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    Answer::read(within(url, req.send()).await.expect("request")).await.expect("response body")
}

/// One run of a handler, as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `None` when the handler ran without the layer's extension.
    pub attempt: Option<u32>,
    pub recovered: bool,
    pub body: String,
}

/// The handler's own record of its runs (shared with the test).
#[derive(Clone, Default)]
pub struct Runs(Arc<Mutex<Vec<Run>>>);

impl Runs {
    /// Records a run and returns how many runs there were before it.
    pub fn record(&self, idem: Option<&IdempotentRequest>, body: &str) -> usize {
        let mut runs = self.0.lock().unwrap();
        runs.push(Run {
            attempt: idem.map(|i| i.attempt()),
            recovered: idem.is_some_and(|i| i.recovered()),
            body: body.to_owned(),
        });
        runs.len() - 1
    }

    /// Every run so far.
    pub fn all(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }

    /// How many runs so far.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The last run.
    pub fn last(&self) -> Run {
        self.0.lock().unwrap().last().cloned().expect("the handler ran")
    }
}

/// The extension as an axum handler argument.
pub type Idem = Option<Extension<IdempotentRequest>>;

/// Holds handlers until the test opens it: each handler calls
/// [`Gate::pass`], which reports that it entered and then waits.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    entered_tx: mpsc::UnboundedSender<()>,
    entered_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        let (entered_tx, entered_rx) = mpsc::unbounded_channel();
        Gate {
            inner: Arc::new(GateInner {
                entered_tx,
                entered_rx: tokio::sync::Mutex::new(entered_rx),
                open: Semaphore::new(0),
            }),
        }
    }
}

impl Gate {
    /// In a handler: says "entered", then waits until the gate opens.
    pub async fn pass(&self) {
        let _ = self.inner.entered_tx.send(());
        // Closed means open for good.
        if let Ok(permit) = self.inner.open.acquire().await {
            permit.forget();
        }
    }

    /// In the test: waits until one more handler entered.
    pub async fn entered(&self) {
        let mut rx = self.inner.entered_rx.lock().await;
        within("a handler to enter", rx.recv()).await.expect("gate sender alive");
    }

    /// Whether a handler entered that [`Gate::entered`] has not seen.
    pub fn has_unseen_entry(&self) -> bool {
        let rx = self.inner.entered_rx.try_lock().expect("gate receiver free");
        !rx.is_empty()
    }

    /// Lets every handler through, now and later.
    pub fn open(&self) {
        self.inner.open.close();
    }
}

/// Silences the panics a test makes on purpose (their message contains
/// `deliberate`); every other panic is reported as usual.
pub fn quiet_deliberate_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains("deliberate") {
            default(info);
        }
    }));
}

/// The store's counters of the layer's namespace.
pub fn ns_stats(store: &Store) -> idemkv::NamespaceStats {
    store.stats().namespaces.get(NS).cloned().unwrap_or_default()
}

/// Yields until `cond` holds — for a state change the test cannot be told
/// of by a message (a counter of the store) — failing the test if it hangs.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
