//! `idemkv demo`: a webhook provider played over real HTTP against a server
//! process embedding idemkv — signed deliveries, concurrent and late
//! duplicates, reordering, retryable and terminal failures, forged
//! signatures and a SIGKILL of the server in the middle; then a verdict
//! from the ledger of side effects and the store.
//!
//! The provider side (tokio, `reqwest`): `args`, `schedule` (what to send
//! when), `provider` (sending, checking answers, the crash), `client` (one
//! signed HTTP delivery), `answer` (reading an HTTP answer), `process` (the
//! child process), `tally` (what it counts). The server side (axum,
//! `idemkv::http::IdempotencyLayer`): `server`, `endpoint` and its side
//! effect, `ledger`. Both: `events`, `protocol` (the server's JSON lines),
//! `signing` (Standard Webhooks), `rng`. After the run: `crosscheck` (ledger
//! and store facts), `verdict` (PASS or FAIL), `report` and `render`.

mod answer;
mod args;
mod client;
mod crosscheck;
mod endpoint;
mod events;
mod ledger;
mod process;
mod protocol;
mod provider;
mod render;
mod report;
mod rng;
mod schedule;
pub mod server;
mod signing;
mod tally;
mod verdict;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub use args::DemoArgs;
use events::source_name;
use server::{LEDGER_FILE, STORE_DIR};

/// Marks a directory the demo created, so it only ever wipes its own.
const MARKER: &str = ".idemkv-demo";

/// Runs the demo; `Ok(false)` when the verdict is FAIL.
pub fn run(args: &DemoArgs) -> Result<bool> {
    args.validate()?;
    let started = Instant::now();
    prepare_dir(&args.path)?;
    let say = |s: String| {
        if args.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    let sources: Vec<String> = (0..args.sources).map(source_name).collect();
    say(format!(
        "idemkv demo: wiped and recreated {} (store {}/, ledger {})",
        args.path.display(),
        STORE_DIR,
        LEDGER_FILE
    ));
    say(format!(
        "  events:   {} from {} · dup-rate {} · seed {} · {}",
        args.events,
        sources.join(", "),
        args.dup_rate,
        args.seed,
        if args.no_crash {
            "no crash".to_string()
        } else {
            "SIGKILL of the server half-way".to_string()
        }
    ));
    say(format!(
        "  server:   `idemkv demo-server` child, axum on 127.0.0.1, {} threads; POST /webhooks/{{source}}",
        args.workers
    ));
    say("            signature check → IdempotencyLayer (webhook-id) → endpoint; Durable store, \
         ledger line synced before the 200"
        .to_string());
    say(format!(
        "  provider: reqwest, {} requests in flight, exponential backoff on 409/503/errors",
        args.concurrency
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the provider's runtime")?;
    let seen = runtime.block_on(provider::run(args, &sources, started))?;
    drop(runtime);
    let run_time = started.elapsed();
    let found = crosscheck::crosscheck(args, &sources, &seen.acked)?;
    let verdict = verdict::judge(&found, &seen.counters);
    let passed = verdict.passed();
    let report = report::build(args, &sources, seen, &found, verdict, run_time, started.elapsed());
    report.print(args.json)?;
    Ok(passed)
}

/// Wipes and recreates the demo directory — only if it is empty or was made
/// by an earlier demo.
fn prepare_dir(path: &Path) -> Result<()> {
    if path.exists() {
        let mut entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        let empty = entries.next().is_none();
        if !empty && !path.join(MARKER).exists() {
            bail!(
                "refusing to wipe {}: it is not empty and was not created by `idemkv demo` \
                 (no {MARKER} file); pass another --path",
                path.display()
            );
        }
        std::fs::remove_dir_all(path).with_context(|| format!("wiping {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::write(path.join(MARKER), "created by `idemkv demo`; wiped by the next run\n")
        .with_context(|| format!("writing {}", path.join(MARKER).display()))?;
    Ok(())
}
