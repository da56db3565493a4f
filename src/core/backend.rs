//! The boundary between the public front (`store`) and a backend that keeps
//! the records and runs the rules of [`crate::core`] on them atomically per
//! key: the embedded engine today (`embedded`), a networked store later.
//!
//! The front validates input, checks policies, turns answers into the public
//! types, waits, times calls and logs the audit trail; the backend decides
//! and stores. Nothing here names sled, the journal or a stripe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use event_listener::{EventListener, Listener};

use super::{BodyFormat, Record, RecoveryReport, StaleReason, VerifyReport};
use crate::clock::Now;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::key::Key;
use crate::metrics::COUNTERS;

/// A claim as the front hands it to the backend (input already checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRequest<'a> {
    pub key: &'a Key,
    pub fingerprint: Option<Fingerprint>,
    /// The lease and the retention, whole milliseconds (the duration rule).
    pub lease_ms: u64,
    pub retention_ms: u64,
    /// A `wait` call: when the key is in flight, register a [`Waiter`] in
    /// the same atomic step that found it in flight.
    pub wait: bool,
    /// Count the call as a wait (its first round).
    pub count_wait: bool,
}

/// A backend's answer to a claim: small, every record shared, not copied.
pub(crate) enum Claimed {
    /// The key is the caller's; `record` (with its fencing token) is stored.
    Acquired { record: Arc<Record>, recovered: bool },
    /// The key is finished: replay this record.
    Replay(Arc<Record>),
    /// Another holder's lease is live. `waiter` (for a `wait`) is woken when
    /// the claim ends.
    InFlight { retry_after_ms: u64, attempt: u32, stored: Arc<Record>, waiter: Option<Waiter> },
    /// The stored fingerprint differs from the claim's.
    Mismatch { fingerprint: Fingerprint, stored: Arc<Record> },
}

impl Claimed {
    /// The record the answer rests on (before the claim, unless acquired).
    pub fn record(&self) -> &Record {
        match self {
            Claimed::Acquired { record, .. } | Claimed::Replay(record) => record,
            Claimed::InFlight { stored, .. } | Claimed::Mismatch { stored, .. } => stored,
        }
    }
}

/// Woken when the claim of a key ends (complete, fail, release, abandon,
/// remove, expiry) or the store closes: blocking, or awaited.
pub(crate) struct Waiter(EventListener);

impl Waiter {
    /// Wraps a registered listener.
    pub fn new(listener: EventListener) -> Waiter {
        Waiter(listener)
    }

    /// Blocks until woken or until `deadline` (`None`: no limit). Returns
    /// whether it was woken.
    pub fn wait_until(self, deadline: Option<Instant>) -> bool {
        match deadline {
            Some(d) => self.0.wait_deadline(d).is_some(),
            None => {
                self.0.wait();
                true
            }
        }
    }

    /// Resolves when woken (`true`) or at `deadline` (`false`; `None`: no
    /// limit). Runtime-agnostic: the deadline is a `futures-timer` delay.
    /// Dropping the future unregisters the listener.
    pub async fn wait_until_async(self, deadline: Option<Instant>) -> bool {
        let mut woken = self.0;
        let Some(d) = deadline else {
            woken.await;
            return true;
        };
        let mut delay = futures_timer::Delay::new(d.saturating_duration_since(Instant::now()));
        std::future::poll_fn(|cx| {
            use std::future::Future;
            use std::pin::Pin;
            use std::task::Poll;
            if Pin::new(&mut woken).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            if Pin::new(&mut delay).poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    }
}

/// A point in a backend's durability order. An answer is *settled* once
/// what it rests on is durable (in `Durable` mode; at once in `Buffered`).
/// `Ticket::NONE`: nothing to wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(pub u64);

impl Ticket {
    /// Nothing to wait for.
    pub const NONE: Ticket = Ticket(0);
}

/// A fenced transition of a held key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    Complete(&'a [u8], BodyFormat),
    FailTerminal(&'a [u8], BodyFormat),
    FailRetryable,
    Release,
    /// The holder stopped without an outcome (a dropped guard): orphan the
    /// claim now, so the next claimer acquires it with `recovered = true`.
    Abandon,
    /// Move the lease deadline to now + `by_ms` (whole ms, already checked).
    Extend {
        by_ms: u64,
    },
}

impl Op<'_> {
    /// Whether the transition ends the claim (its waiters then wake).
    pub fn ends_claim(&self) -> bool {
        !matches!(self, Op::Extend { .. })
    }
}

/// Runs `op` by `token` on `current` at `now`: the new record, or the error
/// every backend returns — a stale lease, or an extension longer than the
/// key's retention (nothing changes either way).
pub(crate) fn run_op(
    key: &Key,
    token: u64,
    current: Option<&Record>,
    now: Now,
    op: Op<'_>,
) -> Result<Record> {
    let stale = |reason: StaleReason| Error::StaleLease { key: key.to_string(), token, reason };
    match op {
        Op::Complete(body, f) => super::complete(current, token, now, body, f).map_err(stale),
        Op::FailTerminal(body, f) => {
            super::fail_terminal(current, token, now, body, f).map_err(stale)
        }
        Op::FailRetryable => super::fail_retryable(current, token, now).map_err(stale),
        Op::Release => super::release(current, token, now).map_err(stale),
        Op::Abandon => super::abandon(current, token, now).map_err(stale),
        Op::Extend { by_ms } => {
            // An expired record is absent here too: that is a stale lease.
            if let Some(r) = super::live(current, now.ms).filter(|r| by_ms > r.retention_ms) {
                return Err(Error::config(format!(
                    "extend: the lease ({:?}) is longer than the key's retention ({:?})",
                    std::time::Duration::from_millis(by_ms),
                    std::time::Duration::from_millis(r.retention_ms)
                )));
            }
            super::extend(current, token, now, by_ms).map_err(stale)
        }
    }
}

/// What keeps the records. Every method may block (on I/O, a network round
/// trip or a durability wait) unless it says otherwise; each documents only
/// what differs from the front's documentation of the call it serves.
pub(crate) trait Backend: Send + Sync + 'static {
    /// `Err(Closed)` once the store is closed. Never blocks.
    fn check_open(&self) -> Result<()>;
    /// `Err(Closed)` or `Err(Poisoned)` when writes are refused. Never blocks.
    fn check_writable(&self) -> Result<()>;
    /// The identity carried by this store's leases. Never blocks.
    fn store_id(&self) -> u64;
    /// The boot epoch claims of this process carry. Never blocks.
    fn boot(&self) -> u64;
    /// Claims a key: decides on its record and, if acquiring, stores the new
    /// record with a fresh fencing token. Counts the call. The answer may
    /// rest on a write not yet durable: settle the ticket before acting on it.
    fn claim(&self, req: &ClaimRequest<'_>) -> Result<(Claimed, Ticket)>;
    /// Runs a fenced transition of the key held by `token` (a lease of the
    /// store `store_id`). Counts it (or the stale lease). Settle the ticket
    /// before acknowledging it.
    fn transition(
        &self,
        key: &Key,
        store_id: u64,
        token: u64,
        op: Op<'_>,
    ) -> Result<(Arc<Record>, Ticket)>;
    /// Abandons the claim of `token` ([`Op::Abandon`]) from a destructor:
    /// never waits for durability, backpressure or another holder, never
    /// panics; a failure (closed, poisoned, stale) is ignored, since every
    /// such claim is orphaned anyway once its lease ends or the store reopens.
    fn abandon(&self, key: &Key, store_id: u64, token: u64);
    /// Blocks until `ticket` is settled.
    fn settle(&self, ticket: Ticket) -> Result<()>;
    /// Whether `ticket` is settled; `Err` if it never will be. Never blocks.
    fn settled(&self, ticket: Ticket) -> Result<bool>;
    /// Notified when more tickets may be settled: register, re-check
    /// [`Backend::settled`], then await. Never blocks.
    fn listen_settled(&self) -> EventListener;
    /// Asks for every write so far to be made durable now, whatever the
    /// mode; the ticket of the newest write. Never blocks.
    fn request_flush(&self) -> Result<Ticket>;
    /// Whether every write up to `ticket` is durable, whatever the mode;
    /// `Err` if it never will be. Never blocks.
    fn durable_to(&self, ticket: Ticket) -> Result<bool>;
    /// Starts a batch: until [`Backend::end_batch`], the tickets of this
    /// batch's writes share one durability wait (one fsync). Returns the
    /// batch's handle for `end_batch`. Never blocks.
    fn begin_batch(&self) -> u64;
    /// Ends the batch `begin_batch` returned. Never blocks.
    fn end_batch(&self, batch: u64);
    /// The key's stored record, possibly expired.
    fn get(&self, key: &Key) -> Result<Option<Arc<Record>>>;
    /// Removes the key's record; whether a live record was removed.
    fn remove(&self, key: &Key) -> Result<bool>;
    /// Stores `record` under `key`, replacing what is there (refused while
    /// the key is claimed in this store).
    fn import(&self, key: &Key, record: Record) -> Result<()>;
    /// Makes every transition so far visible to `scan`.
    fn catch_up(&self) -> Result<()>;
    /// Up to `limit` stored records (possibly expired) in raw-key order,
    /// under `prefix`, after `after`.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Record)>>;
    /// Removes every expired record; how many.
    fn sweep(&self) -> Result<usize>;
    /// Makes every transition so far durable.
    fn flush(&self) -> Result<()>;
    /// Makes the stored state durable and compacts what made it so.
    fn checkpoint(&self) -> Result<()>;
    /// Checks every stored record.
    fn verify(&self) -> Result<VerifyReport>;
    /// Cumulative counters by namespace. Never blocks on I/O.
    fn counters(&self) -> HashMap<String, [u64; COUNTERS]>;
    /// What opening the store recovered.
    fn recovery(&self) -> &RecoveryReport;
    /// Closes the store (idempotent: `Err(Closed)` the second time).
    fn close(&self) -> Result<()>;
    #[cfg(any(test, feature = "testing"))]
    /// The backend itself, for test hooks that reach into it.
    fn as_any(&self) -> &dyn std::any::Any;
}
