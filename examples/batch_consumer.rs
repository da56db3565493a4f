//! A queue consumer that deduplicates a poll of 100 messages at a time.
//!
//! Queues deliver at least once: a producer that retries publishes a message
//! twice, and a message that is not acknowledged comes back on a later poll.
//! For each poll the consumer
//!
//! 1. claims every message's id with one [`Store::claim_batch`] (in the
//!    default `Durable` mode, one journal fsync for the whole poll),
//! 2. applies the messages it acquired (the side effect: a transfer posted
//!    to an account),
//! 3. completes them with one [`Store::complete_batch`] (one more fsync) and
//!    acknowledges them,
//! 4. acknowledges replays without applying them: they were done before,
//! 5. leaves in-flight ones unacknowledged: the queue delivers them again on
//!    the next poll, when they replay. (With one consumer, a message is in
//!    flight when the producer's duplicate lands in the same poll.)
//!
//! Once, posting a transfer fails halfway through a poll and the batch is
//! abandoned with `?`: the guards it held are dropped, the messages come
//! back, and those the failed attempt had already posted are acquired with
//! `recovered() == true` and reconciled, not posted twice.
//!
//! `main` prints the throughput and asserts that every message was applied
//! exactly once.
//!
//! Run it with `cargo run --example batch_consumer` (add `--release` for
//! representative throughput). The store lives in a temporary directory,
//! removed at the end.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::error::Error;
use std::time::Instant;

use idemkv::{Claim, Fingerprint, Guard, Key, Store};

/// A message as the queue delivers it.
#[derive(Debug, Clone)]
struct Message {
    /// The queue's handle of this delivery, to acknowledge it.
    tag: u64,
    /// The producer's message id: the idempotency key.
    id: String,
    /// A transfer: `"<account> <amount>"`.
    payload: String,
}

/// A simulated at-least-once queue.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Message>,
    /// Delivered by the last poll, not yet acknowledged.
    unacked: BTreeMap<u64, Message>,
    next_tag: u64,
}

impl Queue {
    fn publish(&mut self, id: &str, payload: String) {
        self.next_tag += 1;
        self.ready.push_back(Message { tag: self.next_tag, id: id.to_owned(), payload });
    }

    /// Up to `max` messages. What the previous poll left unacknowledged is
    /// delivered again first.
    fn poll(&mut self, max: usize) -> Vec<Message> {
        for (_, message) in std::mem::take(&mut self.unacked).into_iter().rev() {
            self.ready.push_front(message);
        }
        let batch: Vec<Message> = self.ready.drain(..max.min(self.ready.len())).collect();
        self.unacked = batch.iter().map(|m| (m.tag, m.clone())).collect();
        batch
    }

    fn ack(&mut self, tag: u64) {
        self.unacked.remove(&tag);
    }
}

/// The downstream system: account balances, with a record of each posted
/// transfer so that an interrupted attempt can be reconciled.
#[derive(Default)]
struct Accounts {
    balances: HashMap<String, i64>,
    /// Posted transfers by message id, with the answer given.
    posted: HashMap<String, String>,
    /// Times a transfer was posted: the side effects that ran.
    postings: usize,
    /// A fault injected by this demo: posting this message fails, once.
    fail_once: Option<String>,
}

impl Accounts {
    /// Posts the transfer: the side effect that must happen once per message.
    fn post(&mut self, message: &Message) -> Result<String, Box<dyn Error>> {
        if self.fail_once.as_deref() == Some(message.id.as_str()) {
            self.fail_once = None;
            return Err(format!("posting {}: connection reset", message.id).into());
        }
        let (account, amount) = message.payload.split_once(' ').ok_or("malformed transfer")?;
        let amount: i64 = amount.parse()?;
        let balance = self.balances.entry(account.to_owned()).or_default();
        *balance += amount;
        let answer = format!("posted {amount} to {account}, balance {balance}");
        self.posted.insert(message.id.clone(), answer.clone());
        self.postings += 1;
        Ok(answer)
    }

    /// Reconciliation: the answer of a transfer an earlier attempt posted.
    fn find(&self, message_id: &str) -> Option<String> {
        self.posted.get(message_id).cloned()
    }
}

/// What happened to a poll's messages.
#[derive(Debug, Default)]
struct Tally {
    processed: usize,
    reconciled: usize,
    replayed: usize,
    in_flight: usize,
}

/// Handles one poll; on `Err` (here: a transfer that could not be posted)
/// nothing is acknowledged and the guards still held are dropped, which
/// abandons their claims: the queue delivers the messages again.
fn handle_poll(
    store: &Store,
    accounts: &mut Accounts,
    queue: &mut Queue,
    batch: &[Message],
    tally: &mut Tally,
) -> Result<(), Box<dyn Error>> {
    let keys = batch.iter().map(|m| Key::new("transfers", &m.id)).collect::<Result<Vec<_>, _>>()?;
    let claims = store.claim_batch(
        keys.iter().zip(batch).map(|(key, m)| (key, Some(Fingerprint::of(&m.payload)))),
    )?;

    let mut done: Vec<(Guard, String)> = Vec::new();
    let mut done_tags = Vec::new();
    for (message, claim) in batch.iter().zip(claims) {
        let claim = match claim {
            Ok(claim) => claim,
            // This message's claim failed (the store is closing, say):
            // left unacknowledged, it comes back.
            Err(e) => {
                eprintln!("{}: {e}", message.id);
                continue;
            }
        };
        match claim {
            Claim::Acquired(guard) => {
                // An earlier attempt was cut short after claiming: it may have
                // posted the transfer. Look before posting again.
                let earlier = if guard.recovered() { accounts.find(&message.id) } else { None };
                let answer = match earlier {
                    Some(answer) => {
                        tally.reconciled += 1;
                        answer
                    }
                    None => {
                        let answer = accounts.post(message)?;
                        tally.processed += 1;
                        answer
                    }
                };
                done.push((guard, answer));
                done_tags.push(message.tag);
            }
            // Processed before (a duplicate): acknowledge, do nothing.
            Claim::Replay(_) => {
                tally.replayed += 1;
                queue.ack(message.tag);
            }
            // Being processed — with one consumer, by this very poll (the same
            // id twice in it). Left unacknowledged: it comes back next poll.
            Claim::InFlight { .. } => tally.in_flight += 1,
            // The same id with another payload: a producer bug. A real
            // consumer would move it to a dead-letter queue.
            Claim::Mismatch { .. } => {
                eprintln!("{}: id reused for another payload, dropped", message.id);
                queue.ack(message.tag);
            }
        }
    }

    let completed = store.complete_batch(done)?;
    for (tag, result) in done_tags.into_iter().zip(completed) {
        match result {
            Ok(()) => queue.ack(tag),
            // Not acknowledged: the message comes back and is reconciled.
            Err(e) => eprintln!("completing message {tag}: {e}"),
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    const MESSAGES: usize = 10_000;
    const POLL: usize = 100;

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?; // Durable: one fsync per batch call
    let mut queue = Queue::default();
    let mut accounts = Accounts { fail_once: Some("msg_4250".into()), ..Accounts::default() };

    // The producer publishes each transfer at least once: one in ten twice
    // in a row (usually the same poll), one in ten again at the very end.
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut late_duplicates = Vec::new();
    for i in 0..MESSAGES {
        let (id, account, amount) =
            (format!("msg_{i}"), format!("acct_{}", i % 7), i as i64 % 50 - 20);
        let payload = format!("{account} {amount}");
        *expected.entry(account).or_default() += amount;
        queue.publish(&id, payload.clone());
        match i % 10 {
            3 => queue.publish(&id, payload),
            7 => late_duplicates.push((id, payload)),
            _ => {}
        }
    }
    for (id, payload) in late_duplicates {
        queue.publish(&id, payload);
    }

    let started = Instant::now();
    let (mut polls, mut deliveries, mut failed_polls) = (0, 0, 0);
    let mut tally = Tally::default();
    loop {
        let batch = queue.poll(POLL);
        if batch.is_empty() {
            break;
        }
        polls += 1;
        deliveries += batch.len();
        if let Err(e) = handle_poll(&store, &mut accounts, &mut queue, &batch, &mut tally) {
            eprintln!("poll {polls} failed ({e}); its messages will be delivered again");
            failed_polls += 1;
        }
    }
    let elapsed = started.elapsed();

    // The checks: every message applied exactly once, the balances right.
    assert_eq!(accounts.posted.len(), MESSAGES, "every message applied");
    assert_eq!(accounts.postings, MESSAGES, "no message applied twice");
    assert_eq!(accounts.balances, expected);
    assert_eq!(failed_polls, 1);
    assert!(tally.reconciled > 0, "the failed poll's postings were reconciled");

    println!(
        "{deliveries} deliveries of {MESSAGES} messages in {polls} polls of up to {POLL}: {:.0} ms, {:.0} messages/s",
        elapsed.as_secs_f64() * 1e3,
        deliveries as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  {} applied, {} reconciled after the failed poll, {} replays skipped, {} in flight left for the next poll",
        tally.processed, tally.reconciled, tally.replayed, tally.in_flight
    );
    println!("accounts: {} transfers posted, each exactly once", accounts.postings);
    store.close()?;
    Ok(())
}
