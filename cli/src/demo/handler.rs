//! `idemkv demo-handler` (hidden): the webhook handler process of the demo.
//!
//! It embeds an idemkv [`Store`], reads deliveries on stdin, hands them to a
//! pool of workers and writes one answer per delivery on stdout. Each worker
//! claims the event's key; the one that acquires it runs the side effect (a
//! synced ledger line) and completes the key with the response; duplicates
//! get the stored response replayed. The provider may SIGKILL this process at
//! any moment and start it again on the same store and ledger.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use idemkv::{Claim, Config, Durability, Failure, Fingerprint, Guard, Key, Policy, Store};

use super::ledger::Ledger;
use super::protocol::{
    Answer, Delivery, Outcome, completed_response, source_name, terminal_payload,
};
use super::rng::{hash_bytes, roll};

/// The store's directory inside the demo directory.
pub const STORE_DIR: &str = "store";
/// The ledger file inside the demo directory.
pub const LEDGER_FILE: &str = "ledger.log";

/// Salts that keep the handler's independent coin flips independent.
const SALT_RETRY: u64 = 0x0052_4554_5259;
const SALT_TERMINAL: u64 = 0x5445_524d;
const SALT_WAIT: u64 = 0x5741_4954;
/// Attempts after which the side effect no longer fails retryably.
const MAX_FLAKY_ATTEMPT: u32 = 4;

/// Arguments of the hidden `demo-handler` subcommand (set by `demo`).
#[derive(clap::Args, Debug, Clone)]
pub struct HandlerArgs {
    /// Demo directory holding the store and the ledger.
    #[arg(long)]
    pub path: PathBuf,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of sources (namespaces).
    #[arg(long, default_value_t = 3)]
    pub sources: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Share of attempts whose side effect fails retryably.
    #[arg(long, default_value_t = 0.03)]
    pub retry_rate: f64,
    /// Share of events whose side effect fails terminally.
    #[arg(long, default_value_t = 0.01)]
    pub terminal_rate: f64,
    /// Share of in-flight duplicates that `wait` instead of answering at once.
    #[arg(long, default_value_t = 0.5)]
    pub wait_share: f64,
    /// How long such a duplicate waits, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub wait_timeout_ms: u64,
}

/// What every worker shares.
struct Ctx {
    store: Store,
    ledger: Ledger,
    args: HandlerArgs,
}

/// Runs the handler until stdin closes, then closes the store.
pub fn run(args: &HandlerArgs) -> Result<()> {
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
    let hello = format!(
        "H pid={} journal_entries_replayed={} journal_bytes_dropped={} ledger_lines={} ledger_torn_bytes={}\n",
        std::process::id(),
        rec.entries_replayed,
        rec.bytes_dropped,
        loaded.entries.len(),
        loaded.torn_bytes
    );
    let ctx = Ctx { store, ledger, args: args.clone() };

    let (answer_tx, answer_rx) = crossbeam_channel::unbounded::<Answer>();
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Delivery>(4096);
    let result = thread::scope(|s| -> Result<()> {
        let writer = s.spawn(move || write_answers(&hello, &answer_rx));
        for _ in 0..args.workers.max(1) {
            let (rx, tx, ctx) = (work_rx.clone(), answer_tx.clone(), &ctx);
            s.spawn(move || work(ctx, &rx, &tx));
        }
        drop(answer_tx);
        drop(work_rx);
        let read = read_deliveries(&work_tx);
        drop(work_tx);
        let written = writer.join().unwrap_or_else(|_| Ok(()));
        read.and(written)
    });
    let closed = ctx.store.close().context("closing the store");
    result.and(closed)
}

/// Reads delivery lines from stdin until it closes.
fn read_deliveries(work: &Sender<Delivery>) -> Result<()> {
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading deliveries from stdin")?;
        if line.is_empty() {
            continue;
        }
        if work.send(Delivery::parse(&line)?).is_err() {
            break;
        }
    }
    Ok(())
}

/// Writes the hello line, then every answer, flushing when idle.
fn write_answers(hello: &str, answers: &Receiver<Answer>) -> Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    out.write_all(hello.as_bytes())?;
    out.flush()?;
    while let Ok(a) = answers.recv() {
        out.write_all(a.to_line().as_bytes())?;
        while let Ok(a) = answers.try_recv() {
            out.write_all(a.to_line().as_bytes())?;
        }
        out.flush().context("writing answers to stdout")?;
    }
    Ok(())
}

fn work(ctx: &Ctx, deliveries: &Receiver<Delivery>, answers: &Sender<Answer>) {
    for d in deliveries {
        let answer = handle(ctx, &d).unwrap_or_else(|e| {
            let mut a = Answer::new(d.id, Outcome::Error);
            a.response = format!("{e:#}");
            a
        });
        if answers.send(answer).is_err() {
            return;
        }
    }
}

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos().try_into().unwrap_or(u64::MAX)
}

/// Handles one delivery the way a webhook endpoint embedding idemkv would.
fn handle(ctx: &Ctx, d: &Delivery) -> Result<Answer> {
    let key = Key::new(&d.source, &d.event_id)?;
    let fingerprint = Fingerprint::of(d.body.as_bytes());
    let mut answer = Answer::new(d.id, Outcome::Error);
    let t = Instant::now();
    let mut claim = ctx.store.claim(&key, fingerprint)?;
    answer.claim_ns = nanos(t);
    if matches!(claim, Claim::InFlight { .. })
        && roll(&[ctx.args.seed, SALT_WAIT, d.id], ctx.args.wait_share)
    {
        // Some duplicates block until the holder finishes instead of
        // answering "in flight" at once.
        answer.waited = true;
        let t = Instant::now();
        let timeout = Duration::from_millis(ctx.args.wait_timeout_ms);
        claim = ctx.store.wait(&key, fingerprint, timeout)?;
        answer.wait_ns = nanos(t);
    }
    match claim {
        Claim::Acquired(guard) => run_side_effect(ctx, d, guard, &mut answer)?,
        Claim::Replay(done) => {
            answer.outcome =
                if done.is_completed() { Outcome::Replayed } else { Outcome::ReplayedFailure };
            answer.response = String::from_utf8_lossy(done.response()).into_owned();
        }
        Claim::InFlight { .. } => answer.outcome = Outcome::InFlight,
        Claim::Mismatch { .. } => answer.outcome = Outcome::Mismatch,
    }
    Ok(answer)
}

/// The acquired path: reconcile an orphan, inject faults, or run the side
/// effect once and complete.
fn run_side_effect(ctx: &Ctx, d: &Delivery, lease: Guard, answer: &mut Answer) -> Result<()> {
    let (source, event) = (d.source.as_str(), d.event_id.as_str());
    answer.recovered = lease.recovered();
    if lease.recovered()
        && let Some(token) = ctx.ledger.lookup(source, event)
    {
        // A dead attempt ran the side effect but died before `complete`:
        // finish with its result instead of running it again.
        let response = completed_response(source, event, token);
        lease.complete(response.as_bytes())?;
        answer.outcome = Outcome::Reconciled;
        answer.effect_token = token;
        answer.response = response;
        return Ok(());
    }
    let key_hash = hash_bytes(lease.key().as_raw());
    let seed = ctx.args.seed;
    let attempt = u64::from(lease.attempt());
    if lease.attempt() <= MAX_FLAKY_ATTEMPT
        && roll(&[seed, SALT_RETRY, key_hash, attempt], ctx.args.retry_rate)
    {
        lease.fail(Failure::Retryable)?;
        answer.outcome = Outcome::Retry;
        answer.response = "503 downstream unavailable, retry later".to_string();
        return Ok(());
    }
    if roll(&[seed, SALT_TERMINAL, key_hash], ctx.args.terminal_rate) {
        let payload = terminal_payload(source, event);
        lease.fail(Failure::Terminal(payload.as_bytes()))?;
        answer.outcome = Outcome::Terminal;
        answer.response = payload;
        return Ok(());
    }
    // The side effect, durably, then the completion.
    let token = lease.token();
    ctx.ledger.record(source, event, token)?;
    let response = completed_response(source, event, token);
    lease.complete(response.as_bytes())?;
    answer.outcome = Outcome::Acquired;
    answer.effect_token = token;
    answer.response = response;
    Ok(())
}
