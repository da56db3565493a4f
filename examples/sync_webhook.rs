//! A synchronous webhook handler, as a service would write it.
//!
//! A sender such as Stripe delivers each event *at least once*: it retries
//! when it gets no answer or a non-2xx one, sometimes while the first
//! delivery is still being handled. [`handle`] claims the event's id before
//! running the side effect (crediting an account in a ledger), so that:
//!
//! - the first delivery credits the account and stores its answer (200);
//! - every duplicate gets that stored answer back, byte for byte, with
//!   `Idempotent-Replayed: true`, and credits nothing;
//! - a duplicate arriving while the first is still in flight gets 409 with a
//!   `Retry-After` header, and gets the stored answer when it retries;
//! - the same event id with a different payload gets 422;
//! - when a handler dies between the side effect and `complete` (here a
//!   panic), the redelivery acquires the key with `recovered() == true`,
//!   finds the credit in the ledger (reconciles) and does not credit again.
//!
//! `main` plays the sender and checks, with the ledger, that every side
//! effect ran exactly once: running the example is itself a test.
//!
//! Run it with `cargo run --example sync_webhook`. The store lives in a
//! temporary directory, removed at the end.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use idemkv::{Claim, Fingerprint, Key, Store};
use serde::Deserialize;

/// One delivery of an event, as it arrives over HTTP.
#[derive(Debug, Clone)]
struct Delivery {
    /// The sender's event id: the idempotency key.
    event_id: String,
    /// The raw JSON body.
    body: Vec<u8>,
}

/// The event, parsed from a delivery's body.
#[derive(Debug, Deserialize)]
struct PaymentEvent {
    account: String,
    amount_cents: u64,
}

/// What the handler answers: an HTTP status, headers and a body.
#[derive(Debug)]
struct HttpLikeResponse {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl HttpLikeResponse {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpLikeResponse { status, headers: Vec::new(), body: body.into() }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Handles one delivery. Never fails: a store error is a 500, which the
/// sender retries.
fn handle(store: &Store, ledger: &Ledger, delivery: &Delivery) -> HttpLikeResponse {
    match try_handle(store, ledger, delivery) {
        Ok(response) => response,
        Err(e) => HttpLikeResponse::new(500, format!("internal error: {e}")),
    }
}

fn try_handle(
    store: &Store,
    ledger: &Ledger,
    delivery: &Delivery,
) -> Result<HttpLikeResponse, idemkv::Error> {
    // A body that is not an event is refused before anything is claimed.
    let event: PaymentEvent = match serde_json::from_slice(&delivery.body) {
        Ok(event) => event,
        Err(e) => return Ok(HttpLikeResponse::new(400, format!("invalid payload: {e}"))),
    };
    // The sender's event id, never anything derived from the time of arrival.
    let key = Key::new("payments", &delivery.event_id)?;
    match store.claim(&key, Fingerprint::of(&delivery.body))? {
        Claim::Acquired(guard) => {
            // An earlier attempt was cut short (a crash, a panic, an error
            // return) after claiming: it may have credited the account
            // already. Look before crediting again.
            let existing = if guard.recovered() { ledger.find(&delivery.event_id) } else { None };
            let credit = match existing {
                Some(credit) => credit,
                None => ledger.credit(&delivery.event_id, &event.account, event.amount_cents),
            };
            let body = format!(
                r#"{{"credit":"cr_{}","account":"{}","amount_cents":{}}}"#,
                credit.row, credit.account, credit.amount_cents
            );
            // Stores the answer for every duplicate. If this fails, the guard
            // is dropped: the next delivery acquires the key and reconciles.
            guard.complete(body.as_bytes())?;
            Ok(HttpLikeResponse::new(200, body))
        }
        // A duplicate: the stored answer, and no side effect. This handler
        // only ever completes, so the outcome is always `Completed`.
        Claim::Replay(done) => {
            Ok(HttpLikeResponse::new(200, done.response())
                .with_header("Idempotent-Replayed", "true"))
        }
        // Another delivery of this event is being handled right now.
        Claim::InFlight { retry_after, .. } => {
            // Retry-After is in whole seconds; round the estimate up.
            let seconds = retry_after.as_millis().div_ceil(1000).max(1);
            Ok(HttpLikeResponse::new(409, "this event is being processed")
                .with_header("Retry-After", seconds.to_string()))
        }
        // The same event id with another body: a sender bug, or tampering.
        Claim::Mismatch { .. } => {
            Ok(HttpLikeResponse::new(422, "event id reused with a different payload"))
        }
    }
}

/// A row of the ledger: one credit.
#[derive(Debug, Clone)]
struct Credit {
    row: usize,
    event_id: String,
    account: String,
    amount_cents: u64,
}

/// The downstream system the side effect writes to: an append-only ledger,
/// where a duplicated credit would be a second row.
#[derive(Default)]
struct Ledger {
    rows: Mutex<Vec<Credit>>,
    /// Faults injected by this demo, each for one event, taken on first use.
    faults: Mutex<HashMap<String, Fault>>,
}

/// A fault the demo injects into one call of [`Ledger::credit`].
enum Fault {
    /// The credit takes this long.
    Slow(Duration),
    /// The handler dies right after the credit is written, before it can
    /// complete the key (as if the process crashed there).
    PanicAfterWrite,
}

impl Ledger {
    fn rows(&self) -> MutexGuard<'_, Vec<Credit>> {
        self.rows.lock().expect("the ledger lock is never held across a panic")
    }

    /// Credits the account: the side effect that must happen once per event.
    fn credit(&self, event_id: &str, account: &str, amount_cents: u64) -> Credit {
        let fault = self.faults.lock().expect("fault lock").remove(event_id);
        if let Some(Fault::Slow(latency)) = fault {
            thread::sleep(latency);
        }
        let credit = {
            let mut rows = self.rows();
            let credit = Credit {
                row: rows.len() + 1,
                event_id: event_id.to_owned(),
                account: account.to_owned(),
                amount_cents,
            };
            rows.push(credit.clone());
            credit
        };
        if matches!(fault, Some(Fault::PanicAfterWrite)) {
            panic!("simulated crash after crediting {event_id}, before completing it");
        }
        credit
    }

    /// Reconciliation: the credit an earlier attempt made for this event.
    fn find(&self, event_id: &str) -> Option<Credit> {
        self.rows().iter().find(|c| c.event_id == event_id).cloned()
    }

    fn inject(&self, event_id: &str, fault: Fault) {
        self.faults.lock().expect("fault lock").insert(event_id.to_owned(), fault);
    }
}

fn payment(event_id: &str, account: &str, amount_cents: u64) -> Delivery {
    let body = format!(
        r#"{{"id":"{event_id}","type":"payment.succeeded","account":"{account}","amount_cents":{amount_cents}}}"#
    );
    Delivery { event_id: event_id.to_owned(), body: body.into_bytes() }
}

/// What the sender saw, for the summary and the checks.
#[derive(Default)]
struct Sender {
    deliveries: usize,
    by_outcome: HashMap<&'static str, usize>,
    /// The first 200 body per event; every later 200 must equal it.
    answers: HashMap<String, Vec<u8>>,
}

impl Sender {
    /// Delivers once and records what came back.
    fn deliver(&mut self, store: &Store, ledger: &Ledger, delivery: &Delivery) -> HttpLikeResponse {
        let response = handle(store, ledger, delivery);
        self.record(delivery, &response);
        response
    }

    fn record(&mut self, delivery: &Delivery, response: &HttpLikeResponse) {
        self.deliveries += 1;
        let outcome = match (response.status, response.header("Idempotent-Replayed")) {
            (200, Some(_)) => "200 replayed",
            (200, None) => "200 processed",
            (409, _) => "409 in flight",
            (422, _) => "422 mismatch",
            (400, _) => "400 invalid",
            _ => "other",
        };
        *self.by_outcome.entry(outcome).or_default() += 1;
        if response.status == 200 {
            let first =
                self.answers.entry(delivery.event_id.clone()).or_insert(response.body.clone());
            assert_eq!(
                *first, response.body,
                "{}: a duplicate got another answer",
                delivery.event_id
            );
        }
    }

    /// Delivers until the answer is final, honouring `Retry-After`.
    fn deliver_until_final(
        &mut self,
        store: &Store,
        ledger: &Ledger,
        delivery: &Delivery,
    ) -> HttpLikeResponse {
        loop {
            let response = self.deliver(store, ledger, delivery);
            if response.status != 409 {
                return response;
            }
            let seconds = response.header("Retry-After").and_then(|s| s.parse().ok()).unwrap_or(1);
            thread::sleep(Duration::from_secs(seconds));
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?; // Durable: every transition fsynced
    let ledger = Ledger::default();
    let mut sender = Sender::default();

    // 1. Twenty events, each delivered one to three times: the retries come
    //    in later waves, as a sender's do.
    let events: Vec<Delivery> = (1..=20)
        .map(|i| payment(&format!("evt_{i}"), &format!("acct_{}", i % 4), i * 100))
        .collect();
    for wave in 0..3 {
        for (i, delivery) in events.iter().enumerate() {
            if i % 3 >= wave {
                sender.deliver(&store, &ledger, delivery);
            }
        }
    }

    // 2. A slow event, and its duplicate sent from another thread while the
    //    first delivery is still being handled: 409 with Retry-After, then
    //    the stored answer on the retry.
    let slow = payment("evt_slow", "acct_1", 4_200);
    ledger.inject("evt_slow", Fault::Slow(Duration::from_millis(400)));
    let (first, duplicate) = thread::scope(|s| {
        let first = s.spawn(|| handle(&store, &ledger, &slow));
        thread::sleep(Duration::from_millis(100)); // the sender timed out and retries
        let duplicate = sender.deliver_until_final(&store, &ledger, &slow);
        first.join().map(|first| (first, duplicate))
    })
    .map_err(|_| "the slow handler panicked")?;
    sender.record(&slow, &first);
    assert_eq!(duplicate.body, first.body, "the retried duplicate got the stored answer");

    // 3. A handler that panics after crediting, before completing: the sender
    //    gets no answer and redelivers; the redelivery reconciles.
    let crashy = payment("evt_crash", "acct_2", 990);
    ledger.inject("evt_crash", Fault::PanicAfterWrite);
    let default_hook = std::panic::take_hook(); // one line for this expected panic
    std::panic::set_hook(Box::new(|info| eprintln!("handler thread {info}")));
    let crashed = thread::scope(|s| s.spawn(|| handle(&store, &ledger, &crashy)).join());
    std::panic::set_hook(default_hook);
    assert!(crashed.is_err(), "the handler panicked: no answer reached the sender");
    sender.deliveries += 1;
    *sender.by_outcome.entry("no answer (panic)").or_default() += 1;
    let redelivered = sender.deliver(&store, &ledger, &crashy);
    assert_eq!(redelivered.status, 200);

    // 4. The same event id with another payload, and a body that is no event.
    let tampered = payment("evt_1", "acct_666", 1_000_000);
    assert_eq!(sender.deliver(&store, &ledger, &tampered).status, 422);
    let garbage = Delivery { event_id: "evt_bad".into(), body: b"{not json".to_vec() };
    assert_eq!(sender.deliver(&store, &ledger, &garbage).status, 400);

    // The check: every event credited exactly once.
    let rows = ledger.rows().clone();
    let mut credits_per_event: HashMap<&str, usize> = HashMap::new();
    for credit in &rows {
        *credits_per_event.entry(credit.event_id.as_str()).or_default() += 1;
    }
    let expected = events.len() + 2; // the twenty, evt_slow and evt_crash
    assert_eq!(credits_per_event.len(), expected, "every event credited");
    assert!(credits_per_event.values().all(|&n| n == 1), "a side effect ran twice: {rows:?}");

    let mut outcomes: Vec<_> = sender.by_outcome.iter().collect();
    outcomes.sort();
    println!("{} deliveries:", sender.deliveries);
    for (outcome, n) in outcomes {
        println!("  {n:>3}  {outcome}");
    }
    println!(
        "ledger: {} credits for {} events, each exactly once ({} ms)",
        rows.len(),
        credits_per_event.len(),
        started.elapsed().as_millis()
    );
    store.close()?;
    Ok(())
}
