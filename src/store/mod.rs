//! The public front: the `Store` handle and its lifecycle, input and policy
//! checks, waiting, the public answers, latency metrics and the audit log,
//! over a backend (`crate::core::backend`; today the embedded engine). The
//! rules themselves live in [`crate::core`].
//!
//! # Which calls block
//! Every call takes one stripe lock for a few microseconds. In
//! `Durability::Durable`, a transition (claim that acquires, complete, fail,
//! extend, release, remove) also waits for its journal fsync — concurrent
//! callers share one fsync — and an answer based on a transition that is not
//! yet durable waits for it too, so no caller ever acts on state a crash could
//! undo. [`Store::wait`] blocks up to its timeout. From async code, run these
//! calls in `spawn_blocking` (or accept a sub-millisecond block in `Buffered`).

mod admin;
mod maintenance;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use admin::ExportedRecord;
pub use types::{Claim, ClaimOptions, Entry, EntryState, Failure, Lease, Outcome, Replay};

use crate::clock::duration_ms;
use crate::config::Config;
use crate::core::backend::{Backend, ClaimRequest, Claimed, Op};
use crate::core::{self, Record, RecoveryReport};
use crate::embedded::{Embedded, EmbeddedBackend};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::key::Key;
use crate::metrics::{Metrics, Stats};

/// An idempotency store. Cheap to clone (one `Arc`), `Send + Sync`; every
/// clone is the same store. The store closes when the last clone is dropped
/// (or at [`Store::close`]), after writing out and checkpointing everything.
/// After a close, every call on any clone returns [`Error::Closed`] except
/// the accessors `config`, `recovery_report` and `stats`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The front: configuration, latency instruments, and the backend that keeps
/// the records (the embedded engine; no sled or journal type above it).
struct Inner {
    config: Config,
    metrics: Metrics,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) a store in `path` with the default [`Config`]:
    /// `Durable`, lease 30 s, retention 72 h.
    ///
    /// Replays the journal after the last checkpoint (a torn tail is cut
    /// off; see [`Store::recovery_report`]). Claims held by a previous process
    /// are orphaned at once. Fails with [`Error::Locked`] if another process
    /// or `Store` has the directory open.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, Config::default())
    }

    /// Opens (or creates) a store in `path` with `config`.
    pub fn open_with(path: impl AsRef<Path>, config: Config) -> Result<Store> {
        config.validate()?;
        let embedded = Embedded::open(path.as_ref(), &config)?;
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                metrics: Metrics::default(),
                backend: Box::new(EmbeddedBackend(embedded)),
            }),
        })
    }

    fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    /// Claims `key` for processing: see [`Claim`] for the four answers.
    ///
    /// # Concurrent calls on the same key
    /// Atomic: of any number of concurrent claimers of one key, exactly one
    /// gets `Acquired`; the others get `InFlight` (or `Replay` once it is
    /// finished). A fingerprint that differs from the stored one gets
    /// `Mismatch` and changes nothing; `None` skips the check.
    ///
    /// ```
    /// use idemkv::{Claim, Fingerprint, Key, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let key = Key::new("stripe", "evt_1")?;
    /// let Claim::Acquired(lease) = store.claim(&key, Fingerprint::of(b"body"))? else {
    ///     unreachable!("a new key is acquired");
    /// };
    /// store.complete(&lease, b"200 OK")?;
    /// match store.claim(&key, Fingerprint::of(b"body"))? {
    ///     Claim::Replay(done) => assert_eq!(done.response(), b"200 OK"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim(&self, key: &Key, fingerprint: impl Into<Option<Fingerprint>>) -> Result<Claim> {
        self.claim_inner(key, fingerprint.into(), &ClaimOptions::default(), None)
    }

    /// [`Store::claim`] with per-call lease and retention.
    pub fn claim_with(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
    ) -> Result<Claim> {
        self.claim_inner(key, fingerprint.into(), options, None)
    }

    /// Claims `key`, and while another holder has it in flight, waits for that
    /// holder to finish — up to `timeout`, measured on the monotonic clock and
    /// honoured to the nanosecond (zero: do not wait; a timeout too long to
    /// represent as an `Instant`, such as `Duration::MAX`: no limit). Returns `Replay` when the holder
    /// completes or fails terminally, `Acquired` when it releases, fails
    /// retryably or its lease runs out, and `InFlight` if the timeout passes
    /// first. Woken by the holder's transition (each key has its own
    /// waiters), not by polling.
    pub fn wait(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        timeout: Duration,
    ) -> Result<Claim> {
        self.claim_inner(key, fingerprint.into(), &ClaimOptions::default(), Some(deadline(timeout)))
    }

    /// [`Store::wait`] with per-call lease and retention, used if it acquires.
    pub fn wait_with(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
        timeout: Duration,
    ) -> Result<Claim> {
        self.claim_inner(key, fingerprint.into(), options, Some(deadline(timeout)))
    }

    fn claim_inner(
        &self,
        key: &Key,
        fingerprint: Option<Fingerprint>,
        options: &ClaimOptions,
        wait_until: Option<Option<Instant>>,
    ) -> Result<Claim> {
        let started = crate::metrics::sampled().then(Instant::now);
        let b = self.backend();
        b.check_writable()?;
        let policy = self.inner.config.policy(key.namespace());
        let (lease_ms, retention_ms) = if options.lease.is_none() && options.retention.is_none() {
            // The namespace's policy, checked when the store opened.
            policy.checked_ms()
        } else {
            let lease = options.lease.unwrap_or(policy.lease_duration());
            let retention = options.retention.unwrap_or(policy.retention_duration());
            // The duration rule (crate::clock): checked, rounded up to whole ms.
            policy.check("claim options", lease, retention)?
        };
        let mut req = ClaimRequest {
            key,
            fingerprint,
            lease_ms,
            retention_ms,
            wait: false,
            count_wait: wait_until.is_some(),
        };
        // `Some(None)`: a wait without limit (a timeout too long to represent).
        let until = wait_until.flatten();
        let claimed = loop {
            req.wait = match wait_until {
                None => false,
                Some(None) => true,
                Some(Some(u)) => Instant::now() < u,
            };
            let claimed = b.claim(&req)?;
            req.count_wait = false;
            let Claimed::InFlight { retry_after_ms, waiter: Some(waiter), .. } = claimed else {
                break claimed;
            };
            // Wake when the holder ends, when its lease runs out, or at the
            // caller's deadline, whichever comes first.
            let lease_end =
                Instant::now().checked_add(Duration::from_millis(retry_after_ms.saturating_add(1)));
            let wake_at = match (until, lease_end) {
                (Some(u), Some(l)) => Some(u.min(l)),
                (u, l) => u.or(l),
            };
            waiter.wait_until(wake_at);
            // Woken by close (or poisoning): stop waiting.
            b.check_writable()?;
        };
        let claim = match &claimed {
            Claimed::Acquired { record, recovered } => Claim::Acquired(Lease {
                store: b.store_id(),
                key: key.clone(),
                token: token_of(record),
                attempt: record.attempts,
                deadline: lease_deadline(record),
                recovered: *recovered,
            }),
            Claimed::Replay(record) => Claim::Replay(
                Replay::from_record(record).ok_or_else(|| internal("replay without outcome"))?,
            ),
            Claimed::Mismatch { fingerprint, .. } => Claim::Mismatch { stored: *fingerprint },
            Claimed::InFlight { retry_after_ms, attempt, .. } => Claim::InFlight {
                retry_after: Duration::from_millis(*retry_after_ms),
                attempt: *attempt,
            },
        };
        audit(key, &claim, claimed.record());
        if let Some(started) = started {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.inner.metrics.latency(key.namespace()).claim_ns.record(ns);
        }
        Ok(claim)
    }

    /// Runs one fenced transition of `lease`'s key.
    fn transition(&self, lease: &Lease, op: Op<'_>) -> Result<Arc<Record>> {
        self.backend().transition(&lease.key, lease.store, lease.token, op)
    }

    /// Completes the claim with `response`, which every later claim of the key
    /// gets back byte for byte until the record expires (retention counts
    /// from now).
    ///
    /// Fails with [`Error::StaleLease`] if the key was re-acquired by a newer
    /// claim, already finished, or removed — and then changes nothing. A lease
    /// past its deadline still completes if nobody took the key over.
    pub fn complete(&self, lease: &Lease, response: &[u8]) -> Result<()> {
        self.check_size(response)?;
        let r = self.transition(lease, Op::Complete(response))?;
        let took = finished_at(&r).saturating_sub(r.created_at);
        self.inner.metrics.latency(lease.key.namespace()).event_ms.record(took);
        Ok(())
    }

    /// Ends the claim without a response: `Retryable` makes the key claimable
    /// again (attempt count kept); `Terminal(payload)` stores the payload and
    /// replays it to every later claim. Fenced like [`Store::complete`].
    pub fn fail(&self, lease: &Lease, failure: Failure<'_>) -> Result<()> {
        match failure {
            Failure::Retryable => self.transition(lease, Op::FailRetryable).map(drop),
            Failure::Terminal(payload) => {
                self.check_size(payload)?;
                self.transition(lease, Op::FailTerminal(payload)).map(drop)
            }
        }
    }

    /// Gives the key back without an outcome; the next claim acquires it
    /// (with `recovered = false`). Fenced like [`Store::complete`].
    pub fn release(&self, lease: &Lease) -> Result<()> {
        self.transition(lease, Op::Release).map(drop)
    }

    /// Moves the lease deadline to `now + by`, for side effects that take
    /// longer than the lease. Fenced like [`Store::complete`].
    ///
    /// `by` is rounded up to whole milliseconds (the duration rule of
    /// [`Policy`](crate::Policy)). It may not be zero, longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION), nor longer than the retention
    /// the key was claimed with (`Error::InvalidConfig`, nothing changed).
    pub fn extend(&self, lease: &mut Lease, by: Duration) -> Result<()> {
        self.backend().check_open()?; // closed comes before bad input
        let by_ms = duration_ms(&"extend: the lease", by)?;
        let r = self.transition(lease, Op::Extend { by_ms })?;
        lease.deadline = lease_deadline(&r);
        Ok(())
    }

    /// The key's record, or `None` if there is none or it has expired.
    pub fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let current = self.backend().get(key)?;
        let now = self.inner.config.clock.now_millis();
        Ok(core::live(current.as_deref(), now)
            .map(|r| Entry::from_record(key.clone(), r, now, self.backend().boot())))
    }

    /// Removes the key's record (manual eviction); the next claim starts
    /// afresh. Returns whether a live record was removed. A holder of the
    /// removed claim gets [`StaleReason::Missing`](crate::StaleReason) when
    /// it finishes.
    pub fn remove(&self, key: &Key) -> Result<bool> {
        self.backend().remove(key)
    }

    /// Counters (cumulative over the store's life, saved at checkpoints) and
    /// latencies (this process) by namespace. Render with
    /// [`Stats::to_prometheus`].
    pub fn stats(&self) -> Stats {
        self.inner.metrics.snapshot(self.backend().counters())
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.backend().recovery()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Closes the store: wakes every waiter, stops the background threads,
    /// writes out and fsyncs the journal, applies it to sled, checkpoints,
    /// closes sled and releases the directory's LOCK — even while other
    /// clones of this handle live.
    ///
    /// # What clones can do afterwards
    /// Nothing but read the accessors: from the moment `close` begins, every
    /// call on every clone — `claim`, `wait` (including one already waiting,
    /// which wakes up), `complete`, `fail`, `release`, `extend`, `get`,
    /// `remove`, `sweep`, `flush`, `checkpoint`, `verify`, `list`, `export`,
    /// `import`, and `close` itself — returns [`Error::Closed`]. Only
    /// [`Store::config`], [`Store::recovery_report`] and [`Store::stats`]
    /// keep answering. A transition that was already past that check when
    /// close began is written out and made durable before close returns.
    ///
    /// # Blocking and errors
    /// Blocks while the journal is written out, the applier drains and the
    /// checkpoint runs. Each of those waits, and sled's own close, gives up
    /// after 5 s without progress; close then returns
    /// [`Error::CloseTimedOut`] naming what is stuck (in practice sled after
    /// the disk filled up), so close returns within about 15 s of its last
    /// progress whatever sled does. The directory LOCK is released in that case too, unless the
    /// journal writer itself did not stop; acknowledged transitions are in
    /// the journal either way, but restart the process before reopening the
    /// directory. A poisoned store is not checkpointed and its close returns
    /// [`Error::Poisoned`]; a failed checkpoint returns its error; closing
    /// an already closed store returns [`Error::Closed`].
    pub fn close(self) -> Result<()> {
        self.inner.backend.close()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Bounded like `Store::close`; an already closed store returns at once.
        let _ = self.backend.close();
    }
}

impl Config {
    /// Opens (or creates) the store in `path` with this configuration.
    ///
    /// Blocks while it replays the journal. Fails with
    /// [`Error::InvalidConfig`] if a value is out of range (nothing on disk
    /// is touched then), and otherwise as [`Store::open_with`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, self)
    }
}

/// The audit trail: every duplicate attempt as a `tracing` event (target
/// `idemkv::audit`) with the key, the original processing time and the
/// attempt count. Costs one relaxed load when no subscriber listens.
fn audit(key: &Key, claim: &Claim, stored: &Record) {
    let first_claimed_at_ms = stored.created_at;
    match claim {
        Claim::Acquired(_) => {}
        Claim::Replay(r) => tracing::info!(
            target: "idemkv::audit",
            namespace = key.namespace(),
            key = %key,
            outcome = ?r.outcome(),
            first_claimed_at_ms,
            finished_at_ms = finished_at(stored),
            attempts = r.attempts(),
            "duplicate replayed"
        ),
        Claim::InFlight { retry_after, attempt } => tracing::info!(
            target: "idemkv::audit",
            namespace = key.namespace(),
            key = %key,
            first_claimed_at_ms,
            attempt,
            retry_after_ms = retry_after.as_millis() as u64,
            "duplicate while in flight"
        ),
        Claim::Mismatch { stored: fp } => tracing::warn!(
            target: "idemkv::audit",
            namespace = key.namespace(),
            key = %key,
            stored_fingerprint = %fp,
            first_claimed_at_ms,
            "key reused with a different payload"
        ),
    }
}

fn finished_at(r: &Record) -> u64 {
    match r.state {
        core::State::Completed { finished_at, .. } | core::State::Failed { finished_at, .. } => {
            finished_at
        }
        _ => 0,
    }
}

/// The instant `timeout` from now, or `None` when it cannot be represented.
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn token_of(r: &Record) -> u64 {
    match r.state {
        core::State::InProgress { token, .. } => token,
        _ => 0,
    }
}

fn lease_deadline(r: &Record) -> u64 {
    match r.state {
        core::State::InProgress { lease_deadline, .. } => lease_deadline,
        _ => 0,
    }
}

/// A broken internal invariant: a bug in idemkv, not damaged data.
fn internal(what: &str) -> Error {
    Error::Internal { what: format!("internal invariant broken: {what}") }
}

impl Store {
    fn check_size(&self, body: &[u8]) -> Result<()> {
        self.backend().check_open()?; // closed comes before bad input
        let limit = self.inner.config.max_response_bytes;
        if body.len() > limit {
            return Err(Error::ResponseTooLarge { len: body.len(), limit });
        }
        Ok(())
    }
}
