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
/// - **Every key operation** (a claim, `get`, `remove`, `import`, a
///   transition of a held key, dropping a guard) takes the key's stripe
///   lock for a few microseconds. A cache miss of a stored key reads sled
///   outside the lock; a key never stored is answered by the stripe's key
///   filter without a read, once the filter's background build after open
///   has finished.
/// - **Durability**: in `Durability::Durable`, a transition (a claim that
///   acquires, `complete`, `fail`, `extend`, `release`, `remove`, `import`)
///   waits for its journal fsync — concurrent callers share one (group
///   commit), a batch shares one — and an answer based on a transition not
///   yet durable (a `Replay` of a completion still being fsynced, a `get`
///   of it) waits for that fsync too, so no caller ever acts on state a
///   crash could undo. In `Buffered` none of these wait.
/// - **Rarely, longer**: right after an open that followed a clean close, a
///   claim or `get` of a key found neither in memory nor in sled waits
///   until the background count of sled's records (a scan of them all) has
///   shown that sled lost none; every claim and write waits while the
///   applier is 2^18 journal entries behind (backpressure); once per 2^32
///   acquisitions a claim writes and fsyncs META (after a checkpoint in
///   progress, if any).
/// - **Waiting**: [`Store::wait`], and a claim with [`ClaimOptions::wait`],
///   blocks up to its timeout.
/// - **I/O calls**: `open` (journal replay), `flush` (a journal fsync, in
///   either mode), `checkpoint`, `sweep`, `verify`, `list` and `export`
///   (each first makes every earlier transition durable and waits until
///   sled holds it), and `close`, whose waits are bounded (see
///   [`Store::close`]). Dropping the last clone closes the store — also
///   when that clone is the one a [`Guard`] holds.
/// - **Never block**: [`Store::abandon`] and dropping a guard (beyond the
///   stripe lock and a sled read on a cache miss, and unless the guard holds
///   the last clone), [`Store::adopt`], `config`, `recovery_report`, and
///   `stats` (which takes each stripe lock in turn, without I/O).
///
/// From async code use the `_async` forms ([`Store::claim_async`],
/// [`Store::wait_async`], [`Guard::complete_async`],
/// [`Store::run_once_async`], [`Store::claim_batch_async`],
/// [`Store::flush_async`], …), which await the durability waits and the
/// wait for a holder instead of blocking a thread; they still hold the
/// thread for the stripe lock, a sled read on a cache miss and the rare
/// waits above. `get`, `remove`, `import`, `list`, `export`, the
/// maintenance calls and `close` have no async form: call them in
/// `spawn_blocking` (or accept a sub-millisecond block in `Buffered`).
///
/// # Errors
/// Expected outcomes — a duplicate, a key in flight, a fingerprint
/// mismatch — are [`Claim`] values, not errors. The errors any call may
/// return, besides its own (see each method):
/// - [`Error::Closed`] once [`Store::close`] has begun on any clone: the
///   call was refused and changed nothing.
/// - [`Error::Poisoned`] from every claim and every write, and from a read
///   whose answer would rest on a transition that can no longer become
///   durable, once the store is poisoned: a journal write or fsync, the
///   applier's write to sled, a checkpoint, a background sweep or a META
///   write failed, a background thread panicked, or a count of sled's
///   records found some lost. Retrying is futile: reopen the directory,
///   which recovers from the journal.
/// - [`Error::Storage`], [`Error::Corrupt`] or
///   [`Error::UnsupportedVersion`] when the key's stored record cannot be
///   read from sled or decoded: nothing was changed (`verify` lists the
///   damaged records, `remove` deletes one).
/// - [`Error::Internal`]: a bug in idemkv; please report it.
///
/// **An error from the durability wait is not a rollback.** A transition
/// that returns `Err(Poisoned)` may have been journaled before the fsync
/// failed, and may be durable: reopen and [`get`](Store::get) the key
/// before retrying (a completion found there is the answer; do not run the
/// side effect again).
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
    /// are orphaned at once.
    ///
    /// # Blocking
    /// Blocks for the whole open: taking the directory's LOCK (retried for
    /// up to 0.5 s, for a lock a forked child may still hold), opening sled
    /// (retried for up to 10 s while an earlier `Store` of this process lets
    /// go of sled's own lock, e.g. after a close that timed out), reading
    /// the journal — writing to sled the replayed entries beyond the newest
    /// 2^17, which stay in memory — and several fsyncs. The background count
    /// of sled's records starts when open returns (see "Which calls block"
    /// on [`Store`]).
    ///
    /// # Errors
    /// - [`Error::Locked`] if another process or `Store` has the directory
    ///   open.
    /// - [`Error::Io`] when a file cannot be created, read, written or
    ///   fsynced (permissions, a full disk); [`Error::Storage`] when sled
    ///   cannot open.
    /// - [`Error::Corrupt`] when a part of the store is damaged or missing
    ///   (its `key` is `META`, `sled` or `journal`; the reason says how to
    ///   recover) — the store refuses to open rather than forget completed
    ///   keys; [`Error::UnsupportedVersion`] for files of a newer idemkv.
    ///
    /// No store is opened then and the directory's LOCK is let go of; fix
    /// the cause and open again.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, Config::default())
    }

    /// Opens (or creates) a store in `path` with `config`.
    ///
    /// Checks every value of `config` first and refuses a bad one with
    /// [`Error::InvalidConfig`] naming it, before anything on disk is
    /// created or changed; otherwise blocks and fails as [`Store::open`].
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
    /// Changes nothing.
    ///
    /// # Blocking
    /// Takes the key's stripe lock, and reads sled outside it on a cache
    /// miss. In `Durable` mode, when the record (or its absence) rests on a
    /// transition not yet durable, waits for that journal fsync. Right after
    /// an open that followed a clean close, a key found neither in memory
    /// nor in sled waits for the background count of sled's records (see
    /// [`Store`]).
    ///
    /// # Errors
    /// [`Error::Closed`] after close; [`Error::Storage`], [`Error::Corrupt`]
    /// or [`Error::UnsupportedVersion`] when the stored record cannot be
    /// read or decoded. [`Error::Poisoned`] only when the answer would rest
    /// on a transition that can no longer become durable, or would be
    /// `None` while sled is known to have lost records or has not been
    /// counted since open (the key may be one sled lost); otherwise a
    /// poisoned store still answers `get` (to see what a failed transition
    /// left, reopen the directory first).
    pub fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let current = self.backend().get(key)?;
        let now = self.inner.config.clock.now_millis();
        Ok(core::live(current.as_deref(), now)
            .map(|r| Entry::from_record(key.clone(), r, now, self.backend().boot())))
    }

    /// Removes the key's record (manual eviction); the next claim starts
    /// afresh. Returns whether a live record was removed (a record that
    /// cannot be decoded counts as live, and is removed: that is how to
    /// delete a corrupt record). A holder of the removed claim gets
    /// [`StaleReason::Missing`](crate::StaleReason) when it finishes; the
    /// key's waiters wake and claim it afresh.
    ///
    /// # Blocking
    /// A transition: the key's stripe lock (reading sled outside it on a
    /// cache miss), backpressure while the applier is far behind, and in
    /// `Durable` mode the journal fsync of the delete (shared with
    /// concurrent callers) — also when there was nothing to remove but the
    /// key's last transition is not yet durable.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Poisoned`] — refused, or the delete was
    /// journaled and its fsync failed: it may be durable, so reopen and
    /// `get` the key; [`Error::Storage`] or [`Error::UnsupportedVersion`]
    /// when the stored record cannot be read (nothing changed).
    pub fn remove(&self, key: &Key) -> Result<bool> {
        self.backend().remove(key)
    }

    /// Counters (cumulative over the store's life, saved at checkpoints) and
    /// latencies (this process) by namespace. Render with
    /// [`Stats::to_prometheus`].
    ///
    /// Never fails, also after close or poisoning. No I/O: it takes each
    /// stripe's lock in turn, for a moment, to add up its counters.
    pub fn stats(&self) -> Stats {
        self.inner.metrics.snapshot(self.backend().counters())
    }

    /// What recovery found when this store was opened. Never blocks, never
    /// fails (also after close).
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.backend().recovery()
    }

    /// The configuration the store was opened with. Never blocks, never
    /// fails (also after close).
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
    /// # Blocking
    /// Blocks while the background threads stop (a sweep or a count of
    /// sled's records stops at its next page), the journal is written out
    /// and fsynced, the applier drains and the final checkpoint runs. Each
    /// of those waits, and sled's own close, gives up after 5 s without
    /// progress, so close returns within about 15 s of its last progress
    /// whatever sled does. Dropping the last clone of the store closes it
    /// the same way (and drops the result).
    ///
    /// # Errors
    /// - [`Error::CloseTimedOut`] names what was stuck (in practice sled
    ///   after the disk filled up). The directory LOCK is released in that
    ///   case too, unless the journal writer itself did not stop;
    ///   acknowledged transitions are in the journal either way, but restart
    ///   the process before reopening the directory.
    /// - [`Error::Poisoned`]: a poisoned store is not checkpointed (its
    ///   journal is the truth; the next open replays it) but is closed all
    ///   the same.
    /// - [`Error::Storage`] or [`Error::Io`]: the final checkpoint failed;
    ///   the store is closed, and the next open replays the journal.
    /// - [`Error::Closed`]: the store was already closed (by this handle's
    ///   clone or another); nothing happened.
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
    /// Fails with [`Error::InvalidConfig`] if a value is out of range
    /// (nothing on disk is touched then); otherwise blocks (journal replay)
    /// and fails as [`Store::open`].
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
