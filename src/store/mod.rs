//! The public front: the `Store` handle and its lifecycle, input and policy
//! checks, claiming and waiting (sync and async), the guard, batches,
//! `run_once`, typed bodies, the public answers, latency metrics and the
//! audit log, over a backend (`crate::core::backend`; today the embedded
//! engine). The rules themselves live in [`crate::core`].

mod admin;
mod batch;
mod claim;
mod codec;
mod guard;
mod maintenance;
mod run_once;
mod transitions;
mod types;

use std::path::Path;
use std::sync::Arc;

pub use admin::ExportedRecord;
#[cfg(feature = "serde")]
pub use codec::Json;
pub use codec::{Body, Codec};
pub use guard::Guard;
pub use run_once::{Attempt, Fail, RunOnce};
pub use types::{Claim, ClaimOptions, Entry, EntryState, Failure, Lease, Outcome, Replay};

use crate::config::Config;
use crate::core::backend::Backend;
use crate::core::{self, Record, RecoveryReport};
use crate::embedded::{Embedded, EmbeddedBackend};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::metrics::{Metrics, Stats};

/// An idempotency store. Cheap to clone (one `Arc`), `Send + Sync`; every
/// clone is the same store. The store closes when the last clone is dropped
/// (or at [`Store::close`]), after writing out and checkpointing everything;
/// a [`Guard`] holds a clone, so the last guard may be what closes it.
/// After a close, every call on any clone returns [`Error::Closed`] except
/// the accessors `config`, `recovery_report` and `stats`.
///
/// # Which calls block
/// Every call takes one stripe lock for a few microseconds. In
/// `Durability::Durable`, a transition (a claim that acquires, `complete`,
/// `fail`, `extend`, `release`, `remove`) also waits for its journal fsync —
/// concurrent callers share one fsync, a batch shares one — and an answer
/// based on a transition that is not yet durable waits for it too, so no
/// caller ever acts on state a crash could undo. [`Store::wait`] blocks up to
/// its timeout. From async code use the `_async` forms
/// ([`Store::claim_async`], [`Store::wait_async`], [`Guard::complete_async`],
/// [`Store::run_once_async`], [`Store::claim_batch_async`], …), which await
/// those waits instead of blocking a thread; `get`, `remove`, the
/// maintenance calls and `close` stay blocking (run them in
/// `spawn_blocking`, or accept a sub-millisecond block in `Buffered`).
/// Dropping a guard, and [`Store::abandon`], never block.
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

// A caller's panic never runs inside the store's critical sections (no user
// code does), so it cannot leave the store half-changed: a `Store` (and a
// `Guard`, whose drop abandons its claim) may cross `catch_unwind`.
impl std::panic::UnwindSafe for Store {}
impl std::panic::RefUnwindSafe for Store {}

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
