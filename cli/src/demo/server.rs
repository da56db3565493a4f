//! `idemkv demo-server` (hidden): the webhook receiver of the demo, an axum
//! 0.8 HTTP server on 127.0.0.1 embedding an idemkv store.
//!
//! One route per source, `POST /webhooks/{source}`, each wrapped — from the
//! outside in — in the signature check (`signing::verified`), then
//! `idemkv::http::IdempotencyLayer` keyed by `webhook-id` in the source's
//! namespace, then the endpoint (`endpoint::receive`). The store is
//! `Durable`: an answer leaves only once its record is on disk. The server
//! prints a JSON ready line with its port, serves until its stdin closes,
//! then drains, closes the store and prints a stopped line. The demo may
//! SIGKILL it at any moment and start another on the same directory.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::post;
use idemkv::http::{IdempotencyLayer, KeySource};
use idemkv::{Config, Durability, Policy, Store};
use tokio::io::AsyncReadExt;

use super::endpoint::{self, App};
use super::events::{route, source_name};
use super::ledger::Ledger;
use super::protocol::{Ready, ServerMsg};
use super::signing::{self, SECRET_ENV, Signer};

/// The store's directory inside the demo directory.
pub const STORE_DIR: &str = "store";
/// The ledger file inside the demo directory.
pub const LEDGER_FILE: &str = "ledger.log";

/// Arguments of the hidden `demo-server` subcommand (set by `demo`; the
/// signing secret comes in the environment variable `IDEMKV_DEMO_WEBHOOK_SECRET`).
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Demo directory holding the store and the ledger.
    #[arg(long)]
    pub path: PathBuf,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of sources (namespaces, one route each).
    #[arg(long, default_value_t = 3)]
    pub sources: usize,
    /// Async worker threads of the server.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Share of attempts whose side effect fails retryably (503).
    #[arg(long, default_value_t = 0.03)]
    pub retry_rate: f64,
    /// Share of events whose side effect fails terminally (422).
    #[arg(long, default_value_t = 0.01)]
    pub terminal_rate: f64,
}

/// Runs the server until stdin closes, then closes the store.
pub fn run(args: &ServerArgs) -> Result<()> {
    let secret = std::env::var(SECRET_ENV)
        .with_context(|| format!("the signing secret is read from {SECRET_ENV}"))?;
    let signer = Signer::new(&secret)?;
    let horizon = Duration::from_secs(72 * 3600);
    let mut config = Config::new().durability(Durability::Durable);
    for i in 0..args.sources {
        config = config.namespace(&source_name(i), Policy::default().retry_horizon(horizon));
    }
    let store_dir = args.path.join(STORE_DIR);
    let store = config
        .open(&store_dir)
        .with_context(|| format!("opening the store in {}", store_dir.display()))?;
    let (ledger, loaded) = Ledger::open(&args.path.join(LEDGER_FILE))?;
    let rec = store.recovery_report();
    let ready = Ready {
        pid: std::process::id(),
        port: 0,
        journal_entries_replayed: rec.entries_replayed,
        journal_bytes_dropped: rec.bytes_dropped,
        ledger_lines: loaded.entries.len() as u64,
        ledger_torn_bytes: loaded.torn_bytes,
    };
    let app = Arc::new(App {
        ledger,
        seed: args.seed,
        retry_rate: args.retry_rate,
        terminal_rate: args.terminal_rate,
        runs: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let served = runtime.block_on(serve(args, &store, &signer, app.clone(), ready));
    runtime.shutdown_timeout(Duration::from_secs(10));
    let closed = store.close().context("closing the store");
    served.and(closed)?;
    let stopped = ServerMsg::Stopped { handler_runs: app.runs.load(Ordering::Relaxed) };
    say(&stopped)
}

/// The router: one verified, idempotent route per source.
fn router(sources: usize, store: &Store, signer: &Signer, app: Arc<App>) -> Router {
    let mut router = Router::new();
    for i in 0..sources {
        let name = source_name(i);
        let idempotent = IdempotencyLayer::new(store.clone(), name.as_str())
            .key(KeySource::webhook_id())
            .on_status(endpoint::on_status);
        // `verified` adds its layer last, so it runs first.
        let handler = post(endpoint::receive).layer(idempotent);
        router = router.route(&route(&name), signing::verified(handler, signer));
    }
    router.with_state(app)
}

async fn serve(
    args: &ServerArgs,
    store: &Store,
    signer: &Signer,
    app: Arc<App>,
    mut ready: Ready,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a port on 127.0.0.1")?;
    ready.port = listener.local_addr()?.port();
    say(&ServerMsg::Ready(ready))?;
    axum::serve(listener, router(args.sources, store, signer, app))
        .with_graceful_shutdown(stdin_closed())
        .await
        .context("serving HTTP")
}

/// Resolves when the demo closes our stdin (or dies).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Writes one JSON line to stdout, flushed.
fn say(msg: &ServerMsg) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(msg.to_line().as_bytes()).and_then(|()| out.flush()).context("writing to stdout")
}
