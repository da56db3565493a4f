//! The public store: lock striping, the journal pipeline, waiting, and the
//! handle's lifecycle. The rules themselves live in [`crate::core`].
//!
//! # Which calls block
//! Every call takes one shard lock for a few microseconds. In
//! `Durability::Durable`, a transition (claim that acquires, complete, fail,
//! extend, release, remove) also waits for its journal fsync — concurrent
//! callers share one fsync — and an answer based on a transition that is not
//! yet durable waits for it too, so no caller ever acts on state a crash could
//! undo. [`Store::wait`] blocks up to its timeout. From async code, run these
//! calls in `spawn_blocking` (or accept a sub-millisecond block in `Buffered`).

mod admin;
mod background;
mod close;
mod filter;
mod hashed;
mod maintenance;
mod meta;
mod open;
mod shard;
mod shared;
mod sled_check;
mod sled_watch;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use crate::journal::RecoveryReport;
pub use admin::ExportedRecord;
pub use maintenance::VerifyReport;
pub use types::{Claim, ClaimOptions, Entry, EntryState, Failure, Lease, Outcome, Replay};

use crate::clock::{Now, duration_ms};
use crate::config::Config;
use crate::core::{self, ClaimDecision, ClaimParams, Record};
use crate::error::{Error, Result, StaleReason};
use crate::fingerprint::Fingerprint;
use crate::key::Key;
use crate::metrics::{Counter, ShardCounters, Stats};
use shared::Shared;

/// An idempotency store. Cheap to clone (one `Arc`), `Send + Sync`; every
/// clone is the same store. The store closes when the last clone is dropped
/// (or at [`Store::close`]), after writing out and checkpointing everything.
/// After a close, every call on any clone returns [`Error::Closed`] except
/// the accessors `config`, `recovery_report` and `stats`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Journal writer and applier: stopped last, after they drained.
    pipeline: Mutex<Vec<JoinHandle<()>>>,
    /// Sweeper and checkpointer.
    maintenance: Mutex<Vec<JoinHandle<()>>>,
    /// The directory's LOCK, held until the store closes.
    lock: Mutex<Option<std::fs::File>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("config", &self.inner.shared.config).finish_non_exhaustive()
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
        open::open(path.as_ref(), config)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
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
    /// first. Woken by the holder's transition (a per-shard condition
    /// variable), not by polling.
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
        let s = self.shared();
        s.check_writable()?;
        let policy = s.config.policy(key.namespace());
        let lease = options.lease.unwrap_or(policy.lease_duration());
        let retention = options.retention.unwrap_or(policy.retention_duration());
        // The duration rule (crate::clock): checked, rounded up to whole ms.
        let (lease_ms, retention_ms) = policy.check("claim options", lease, retention)?;
        let raw = s.hashed(key);
        let idx = s.shard_of(&raw);
        let shard = &s.shards[idx];
        s.throttle()?;
        let mut st = shard.state.lock();
        if wait_until.is_some() {
            st.counters.add(key.namespace_bytes(), Counter::Waits);
        }
        loop {
            let now = Now::of(&*s.clock);
            let (current, seen) = st.lookup(&raw, &s.storage)?;
            if current.is_none() && !s.audit_done() {
                // Found nowhere, and sled's records are not counted yet
                // since open: it may be a key sled lost. Wait for the count.
                drop(st);
                s.wait_audit()?;
                s.check_writable()?; // the audit may have found sled damaged
                st = shard.state.lock();
                continue;
            }
            let params = ClaimParams { now, boot: s.boot, fingerprint, lease_ms, retention_ms };
            let mut token = None;
            let decision = core::claim(current.as_deref(), &params, &mut || {
                // Never wraps: past MAX_TOKEN this is an error, returned below
                // before anything is written.
                let t = s.issue_token();
                let shown = *t.as_ref().unwrap_or(&0);
                token = Some(t);
                shown
            });
            let (claim, wait_seq) = match decision {
                ClaimDecision::Acquire { record, recovered } => {
                    let token = token.ok_or_else(|| internal("acquired without a token"))??;
                    s.secure_token(token)?;
                    let lease = Lease {
                        store: s.store_id,
                        key: key.clone(),
                        token,
                        attempt: record.attempts,
                        deadline: lease_deadline(&record),
                        recovered,
                    };
                    let (seq, _) =
                        st.write(idx, &raw, current.as_deref(), Some(record), &s.journal)?;
                    (Claim::Acquired(lease), seq)
                }
                ClaimDecision::Replay => {
                    let r = current.as_deref().and_then(Replay::from_record);
                    (Claim::Replay(r.ok_or_else(|| internal("replay without outcome"))?), seen)
                }
                ClaimDecision::Mismatch { stored } => (Claim::Mismatch { stored }, seen),
                ClaimDecision::InFlight { retry_after_ms, attempt, .. } => {
                    if let Some(until) = wait_until {
                        // `None`: a timeout too long to represent, i.e. no limit.
                        let left = until
                            .map_or(Duration::MAX, |u| u.saturating_duration_since(Instant::now()));
                        if !left.is_zero() {
                            // Wake when the holder ends, or when its lease runs out.
                            let lease_left =
                                Duration::from_millis(retry_after_ms.saturating_add(1));
                            let _ = shard.ended.wait_for(&mut st, left.min(lease_left));
                            // Woken by close (or poisoning): stop waiting.
                            s.check_writable()?;
                            continue;
                        }
                    }
                    let retry_after = Duration::from_millis(retry_after_ms);
                    (Claim::InFlight { retry_after, attempt }, seen)
                }
            };
            count_claim(&mut st.counters, key.namespace_bytes(), &claim);
            drop(st);
            self.settle(wait_seq)?;
            audit(key, &claim, current.as_deref());
            if let Some(started) = started {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                s.metrics.latency(key.namespace()).claim_ns.record(ns);
            }
            return Ok(claim);
        }
    }

    /// In `Durable` mode, waits until entry `seq` is durable.
    fn settle(&self, seq: u64) -> Result<()> {
        let s = self.shared();
        if s.durable() && seq > 0 { s.journal.wait_durable(seq) } else { Ok(()) }
    }

    /// Runs one fenced transition of `lease`'s key; counts `counter` on success.
    fn transition(
        &self,
        lease: &Lease,
        counter: Counter,
        next: impl FnOnce(Option<&Record>, Now) -> Result<Record>,
    ) -> Result<Record> {
        let s = self.shared();
        s.check_writable()?;
        let raw = s.hashed(&lease.key);
        if lease.store != s.store_id {
            // Counted like every stale lease (`stale_leases`).
            let mut st = s.shards[s.shard_of(&raw)].state.lock();
            st.counters.add(lease.key.namespace_bytes(), Counter::StaleLeases);
            return Err(Error::StaleLease {
                key: lease.key.to_string(),
                token: lease.token,
                reason: StaleReason::OtherStore,
            });
        }
        let idx = s.shard_of(&raw);
        let shard = &s.shards[idx];
        s.throttle()?;
        let mut st = shard.state.lock();
        let now = Now::of(&*s.clock);
        let (current, _) = st.lookup(&raw, &s.storage)?;
        let record = match next(current.as_deref(), now) {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, Error::StaleLease { .. }) {
                    st.counters.add(lease.key.namespace_bytes(), Counter::StaleLeases);
                }
                return Err(e);
            }
        };
        let (seq, new) = st.write(idx, &raw, current.as_deref(), Some(record), &s.journal)?;
        st.counters.add(lease.key.namespace_bytes(), counter);
        drop(st);
        if counter != Counter::Extensions {
            shard.ended.notify_all(); // the claim ended: wake its waiters
        }
        self.settle(seq)?;
        new.map(|r| (*r).clone()).ok_or_else(|| internal("transition without record"))
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
        let r = self.transition(lease, Counter::Completions, |cur, now| {
            stale(lease, core::complete(cur, lease.token, now, response))
        })?;
        let took = finished_at(&r).saturating_sub(r.created_at);
        self.shared().metrics.latency(lease.key.namespace()).event_ms.record(took);
        Ok(())
    }

    /// Ends the claim without a response: `Retryable` makes the key claimable
    /// again (attempt count kept); `Terminal(payload)` stores the payload and
    /// replays it to every later claim. Fenced like [`Store::complete`].
    pub fn fail(&self, lease: &Lease, failure: Failure<'_>) -> Result<()> {
        match failure {
            Failure::Retryable => self
                .transition(lease, Counter::FailuresRetryable, |cur, now| {
                    stale(lease, core::fail_retryable(cur, lease.token, now))
                })
                .map(drop),
            Failure::Terminal(payload) => {
                self.check_size(payload)?;
                self.transition(lease, Counter::FailuresTerminal, |cur, now| {
                    stale(lease, core::fail_terminal(cur, lease.token, now, payload))
                })
                .map(drop)
            }
        }
    }

    /// Gives the key back without an outcome; the next claim acquires it
    /// (with `recovered = false`). Fenced like [`Store::complete`].
    pub fn release(&self, lease: &Lease) -> Result<()> {
        self.transition(lease, Counter::Releases, |cur, now| {
            stale(lease, core::release(cur, lease.token, now))
        })
        .map(drop)
    }

    /// Moves the lease deadline to `now + by`, for side effects that take
    /// longer than the lease. Fenced like [`Store::complete`].
    ///
    /// `by` is rounded up to whole milliseconds (the duration rule of
    /// [`Policy`](crate::Policy)). It may not be zero, longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION), nor longer than the retention
    /// the key was claimed with (`Error::InvalidConfig`, nothing changed).
    pub fn extend(&self, lease: &mut Lease, by: Duration) -> Result<()> {
        self.shared().check_open()?; // closed comes before bad input
        let by_ms = duration_ms(&"extend: the lease", by)?;
        let held = &*lease;
        let r = self.transition(held, Counter::Extensions, |cur, now| {
            // An expired record is absent here too: that is a stale lease below.
            if let Some(r) = core::live(cur, now.ms).filter(|r| by_ms > r.retention_ms) {
                return Err(Error::config(format!(
                    "extend: the lease ({by:?}) is longer than the key's retention ({:?})",
                    Duration::from_millis(r.retention_ms)
                )));
            }
            stale(held, core::extend(cur, held.token, now, by_ms))
        })?;
        lease.deadline = lease_deadline(&r);
        Ok(())
    }

    /// The key's record, or `None` if there is none or it has expired.
    pub fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let s = self.shared();
        s.check_open()?;
        let raw = s.hashed(key);
        let shard = &s.shards[s.shard_of(&raw)];
        let mut st = shard.state.lock();
        let mut now = s.clock.now_millis();
        let (mut current, mut seen) = st.lookup(&raw, &s.storage)?;
        if current.is_none() && !s.audit_done() {
            // As in `claim`: an absent key waits for sled's first count.
            drop(st);
            s.wait_audit()?;
            st = shard.state.lock();
            now = s.clock.now_millis();
            (current, seen) = st.lookup(&raw, &s.storage)?;
        }
        drop(st);
        if current.is_none() {
            // sled lost records, or could not be checked: "absent" may be
            // one of them.
            s.absent_unsure()?;
        }
        // Even an absent answer may rest on a pending delete: settle it.
        self.settle(seen)?;
        Ok(core::live(current.as_deref(), now)
            .map(|r| Entry::from_record(key.clone(), r, now, s.boot)))
    }

    /// Removes the key's record (manual eviction); the next claim starts
    /// afresh. Returns whether a live record was removed. A holder of the
    /// removed claim gets [`StaleReason::Missing`] when it finishes.
    pub fn remove(&self, key: &Key) -> Result<bool> {
        let s = self.shared();
        s.check_writable()?;
        let raw = s.hashed(key);
        let idx = s.shard_of(&raw);
        let shard = &s.shards[idx];
        s.throttle()?;
        let mut st = shard.state.lock();
        let (prev, was_live) = match st.lookup(&raw, &s.storage) {
            Ok((None, seen)) => {
                drop(st);
                self.settle(seen)?;
                return Ok(false);
            }
            Ok((Some(r), _)) => {
                let live = core::live(Some(&r), s.clock.now_millis()).is_some();
                (Some(r), live)
            }
            // A record that cannot be decoded can still be removed; its
            // expiry-index entry, if any, is dropped as stale by the sweeper.
            Err(Error::Corrupt { .. }) => (None, true),
            Err(e) => return Err(e),
        };
        let (seq, _) = st.write(idx, &raw, prev.as_deref(), None, &s.journal)?;
        if was_live {
            st.counters.add(key.namespace_bytes(), Counter::Removals);
        }
        drop(st);
        shard.ended.notify_all();
        self.settle(seq)?;
        Ok(was_live)
    }

    /// Counters (cumulative over the store's life, saved at checkpoints) and
    /// latencies (this process) by namespace. Render with
    /// [`Stats::to_prometheus`].
    pub fn stats(&self) -> Stats {
        let s = self.shared();
        s.metrics.snapshot(s.counter_totals())
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared().recovery
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.shared().config
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
        self.inner.shutdown()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Bounded like `Store::close`; an already closed store returns at once.
        let _ = self.shutdown();
    }
}

/// Counts a claim's outcome (under the shard lock).
fn count_claim(c: &mut ShardCounters, namespace: &[u8], claim: &Claim) {
    let counts = c.slot(namespace);
    let mut add = |c: Counter| counts[c as usize] += 1;
    add(Counter::Claims);
    match claim {
        Claim::Acquired(lease) => {
            add(Counter::Acquired);
            if lease.recovered {
                add(Counter::OrphansRecovered);
            }
            if lease.attempt > 1 {
                add(Counter::Retries);
            }
        }
        Claim::Replay(_) => add(Counter::Replayed),
        Claim::InFlight { .. } => add(Counter::InFlight),
        Claim::Mismatch { .. } => add(Counter::Mismatches),
    }
}

/// The audit trail: every duplicate attempt as a `tracing` event (target
/// `idemkv::audit`) with the key, the original processing time and the
/// attempt count. Costs one relaxed load when no subscriber listens.
fn audit(key: &Key, claim: &Claim, stored: Option<&Record>) {
    let first_claimed_at_ms = stored.map_or(0, |s| s.created_at);
    match claim {
        Claim::Acquired(_) => {}
        Claim::Replay(r) => tracing::info!(
            target: "idemkv::audit",
            namespace = key.namespace(),
            key = %key,
            outcome = ?r.outcome(),
            first_claimed_at_ms,
            finished_at_ms = stored.map_or(0, finished_at),
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

/// Maps a core verdict on `lease` to the public error.
fn stale(lease: &Lease, r: std::result::Result<Record, StaleReason>) -> Result<Record> {
    r.map_err(|reason| Error::StaleLease { key: lease.key.to_string(), token: lease.token, reason })
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
        self.shared().check_open()?; // closed comes before bad input
        let limit = self.shared().config.max_response_bytes;
        if body.len() > limit {
            return Err(Error::ResponseTooLarge { len: body.len(), limit });
        }
        Ok(())
    }
}
