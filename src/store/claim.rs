//! Claiming: `claim`, `wait` and their async forms, over one step that asks
//! the backend and says whether to answer or to wait for the holder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::Guard;
use super::types::{Claim, ClaimOptions, Lease, Replay};
use super::{Store, audit, internal, lease_deadline, token_of};
use crate::core::backend::{ClaimRequest, Claimed, Ticket, Waiter};
use crate::core::{self, Record};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::key::Key;

/// One claim call in progress: the checked request and its deadline.
pub(super) struct Call<'a> {
    pub req: ClaimRequest<'a>,
    /// `None`: do not wait; `Some(None)`: wait without limit.
    wait_until: Option<Option<Instant>>,
    started: Option<Instant>,
}

/// What one round of a call found.
pub(super) enum Step {
    /// The answer, to settle before acting on it.
    Answer(Claimed, Ticket),
    /// The key is in flight: wait on this until it ends, or `wake_at`.
    Wait(Waiter, Option<Instant>),
}

impl Store {
    /// Claims `key` for processing: see [`Claim`] for the four answers.
    ///
    /// # Concurrent calls on the same key
    /// Atomic: of any number of concurrent claimers of one key, exactly one
    /// gets `Acquired`; the others get `InFlight` (or `Replay` once it is
    /// finished). A fingerprint that differs from the stored one gets
    /// `Mismatch` and changes nothing; `None` skips the check.
    ///
    /// # Blocking
    /// Takes the key's stripe lock for a few microseconds, and reads sled
    /// outside it on a cache miss. In `Durable` mode an acquiring claim — or
    /// an answer resting on a transition not yet durable, such as the
    /// `Replay` of a completion still being fsynced — waits for the journal
    /// fsync (shared with concurrent callers). Rarely longer: right after an
    /// open that followed a clean close, a key found neither in memory nor
    /// in sled waits for the background count of sled's records; every
    /// claim waits while the applier is 2^18 entries behind (backpressure);
    /// once per 2^32 acquisitions, one writes and fsyncs META. Never waits
    /// for another holder (see [`Store::wait`]). From async code use
    /// [`Store::claim_async`].
    ///
    /// # Errors
    /// - [`Error::Closed`], [`Error::Poisoned`]: refused, nothing acquired.
    ///   Also `Poisoned` when the fsync of an acquiring claim fails: the
    ///   acquisition may be durable, but its guard is gone — after a reopen
    ///   the next claimer acquires the key with `recovered() == true`
    ///   (reconciling finds that nothing ran).
    /// - [`Error::Storage`], [`Error::Corrupt`] or
    ///   [`Error::UnsupportedVersion`]: the key's stored record cannot be
    ///   read or decoded; nothing changed.
    /// - [`Error::TokenSpaceExhausted`]: the store has issued
    ///   [`MAX_TOKEN`](crate::MAX_TOKEN); nothing changed.
    /// - [`Error::Io`]: writing META to raise the fencing-token ceiling
    ///   failed (once per 2^32 acquisitions); nothing acquired, and the store
    ///   is poisoned from then on.
    ///
    /// [`Error::Closed`]: crate::Error::Closed
    /// [`Error::Poisoned`]: crate::Error::Poisoned
    /// [`Error::Storage`]: crate::Error::Storage
    /// [`Error::Corrupt`]: crate::Error::Corrupt
    /// [`Error::UnsupportedVersion`]: crate::Error::UnsupportedVersion
    /// [`Error::TokenSpaceExhausted`]: crate::Error::TokenSpaceExhausted
    /// [`Error::Io`]: crate::Error::Io
    ///
    /// ```
    /// use idemkv::{Claim, Fingerprint, Key, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let key = Key::new("stripe", "evt_1")?;
    /// let Claim::Acquired(guard) = store.claim(&key, Fingerprint::of(b"body"))? else {
    ///     unreachable!("a new key is acquired");
    /// };
    /// guard.complete(b"200 OK")?;
    /// match store.claim(&key, Fingerprint::of(b"body"))? {
    ///     Claim::Replay(done) => assert_eq!(done.response(), b"200 OK"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim(&self, key: &Key, fingerprint: impl Into<Option<Fingerprint>>) -> Result<Claim> {
        self.claim_with(key, fingerprint, &ClaimOptions::default())
    }

    /// [`Store::claim`] with per-call lease, retention and wait (see
    /// [`ClaimOptions`]). Blocks and fails as `claim`; with
    /// [`ClaimOptions::wait`] it also waits like [`Store::wait`].
    ///
    /// Also fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig),
    /// nothing stored, when a lease or retention it sets breaks the duration
    /// rule of [`Policy`](crate::Policy), the lease is longer than the
    /// retention, or the retention is shorter than the namespace's declared
    /// retry horizon (checked after `Closed` and `Poisoned`).
    pub fn claim_with(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
    ) -> Result<Claim> {
        let mut call = self.call(key, fingerprint.into(), options)?;
        loop {
            match self.step(&mut call)? {
                Step::Answer(claimed, ticket) => {
                    let claim = self.answer(&call, claimed)?;
                    self.settle(ticket)?;
                    return Ok(claim);
                }
                Step::Wait(waiter, wake_at) => {
                    waiter.wait_until(wake_at);
                    // Woken by close: stop waiting. (Poisoning does not wake
                    // the key's waiters — they sleep in the stripes, above the
                    // engine that poisons — so a wait on a poisoned store ends
                    // at the holder's lease end or its timeout, with this error.)
                    self.backend().check_writable()?;
                }
            }
        }
    }

    /// Claims `key`, and while another holder has it in flight, waits for that
    /// holder to finish — up to `timeout`, measured on the monotonic clock and
    /// honoured to the nanosecond (zero: do not wait; a timeout too long to
    /// represent as an `Instant`, such as `Duration::MAX`: no limit). Returns
    /// `Replay` when the holder completes or fails terminally, `Acquired`
    /// when it releases, fails retryably, abandons or its lease runs out,
    /// and `InFlight` if the timeout passes first. Woken by the holder's
    /// transition (each key has its own waiters), not by polling.
    ///
    /// Blocks the thread up to `timeout` (besides what [`Store::claim`]
    /// blocks on, and the fsync of its final answer); from async code use
    /// [`Store::wait_async`]. Errors as `claim`. A wait in progress returns
    /// [`Error::Closed`](crate::Error::Closed) at once when the store
    /// closes; poisoning does not wake it — it returns
    /// [`Error::Poisoned`](crate::Error::Poisoned) when it next wakes (the
    /// holder's lease ends, or the timeout passes).
    pub fn wait(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        timeout: Duration,
    ) -> Result<Claim> {
        self.claim_with(key, fingerprint, &ClaimOptions::default().wait(timeout))
    }

    /// [`Store::wait`] with per-call lease and retention, used if it
    /// acquires. Blocks and fails as `wait`, and with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) as
    /// [`Store::claim_with`].
    pub fn wait_with(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
        timeout: Duration,
    ) -> Result<Claim> {
        self.claim_with(key, fingerprint, &options.wait(timeout))
    }

    /// [`Store::claim`] for async code, on any runtime: durability waits are
    /// awaited, not blocking. It may still hold the thread for a few
    /// microseconds (the stripe lock, a read of the key from sled on a cache
    /// miss) and, rarely, longer: right after open until sled's record count
    /// is checked, under backpressure (the applier 2^18 entries behind), and
    /// once per 2^32 claims for a META fsync. Errors as `claim`.
    ///
    /// Cancel-safe: dropping the future at any point strands nothing — a
    /// claim that had acquired is abandoned by its guard's drop.
    pub async fn claim_async(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
    ) -> Result<Claim> {
        self.claim_with_async(key, fingerprint, &ClaimOptions::default()).await
    }

    /// [`Store::claim_with`] for async code (see [`Store::claim_async`]);
    /// with [`ClaimOptions::wait`] it waits like [`Store::wait_async`].
    /// Errors as `claim_with`. Cancel-safe.
    pub async fn claim_with_async(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
    ) -> Result<Claim> {
        let mut call = self.call(key, fingerprint.into(), options)?;
        loop {
            match self.step(&mut call)? {
                Step::Answer(claimed, ticket) => {
                    // The guard exists before the await: a cancelled future
                    // drops it, which abandons the claim.
                    let claim = self.answer(&call, claimed)?;
                    self.settle_async(ticket).await?;
                    return Ok(claim);
                }
                Step::Wait(waiter, wake_at) => {
                    waiter.wait_until_async(wake_at).await;
                    self.backend().check_writable()?;
                }
            }
        }
    }

    /// [`Store::wait`] for async code: no thread is held while waiting (each
    /// waiter is a listener on its key, woken by the holder's transition;
    /// the timeout is a runtime-agnostic timer), only as
    /// [`Store::claim_async`] describes. Errors as `wait`. Cancel-safe.
    pub async fn wait_async(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        timeout: Duration,
    ) -> Result<Claim> {
        self.claim_with_async(key, fingerprint, &ClaimOptions::default().wait(timeout)).await
    }

    /// Checks a call's input against the namespace policy.
    #[inline]
    pub(super) fn call<'a>(
        &self,
        key: &'a Key,
        fingerprint: Option<Fingerprint>,
        options: &ClaimOptions,
    ) -> Result<Call<'a>> {
        let started = crate::metrics::sampled().then(Instant::now);
        self.backend().check_writable()?;
        let policy = self.inner.config.policy_of(key);
        let (lease_ms, retention_ms) = if options.lease.is_none() && options.retention.is_none() {
            // The namespace's policy, checked when the store opened.
            policy.checked_ms()
        } else {
            let lease = options.lease.unwrap_or(policy.lease_duration());
            let retention = options.retention.unwrap_or(policy.retention_duration());
            // The duration rule (crate::clock): checked, rounded up to whole ms.
            policy.check("claim options", lease, retention)?
        };
        // `Some(None)`: a wait without limit (a timeout too long to represent).
        let wait_until = options.wait.map(|t| Instant::now().checked_add(t));
        Ok(Call {
            req: ClaimRequest {
                key,
                fingerprint,
                lease_ms,
                retention_ms,
                wait: false,
                count_wait: wait_until.is_some(),
            },
            wait_until,
            started,
        })
    }

    /// One round: ask the backend; if the key is in flight and the call may
    /// still wait, say until when.
    #[inline]
    pub(super) fn step(&self, call: &mut Call<'_>) -> Result<Step> {
        call.req.wait = match call.wait_until {
            None => false,
            Some(None) => true,
            Some(Some(u)) => Instant::now() < u,
        };
        let (claimed, ticket) = self.backend().claim(&call.req)?;
        call.req.count_wait = false;
        let Claimed::InFlight { retry_after_ms, waiter: Some(waiter), .. } = claimed else {
            return Ok(Step::Answer(claimed, ticket));
        };
        // Wake when the holder ends, when its lease runs out, or at the
        // caller's deadline, whichever comes first.
        let lease_end =
            Instant::now().checked_add(Duration::from_millis(retry_after_ms.saturating_add(1)));
        let wake_at = match (call.wait_until.flatten(), lease_end) {
            (Some(u), Some(l)) => Some(u.min(l)),
            (u, l) => u.or(l),
        };
        Ok(Step::Wait(waiter, wake_at))
    }

    /// The public answer (a guard when acquired), audited and timed.
    #[inline]
    pub(super) fn answer(&self, call: &Call<'_>, claimed: Claimed) -> Result<Claim> {
        let key = call.req.key;
        let claim = match &claimed {
            Claimed::Acquired { record, recovered } => {
                Claim::Acquired(Guard::new(self.clone(), self.lease_of(key, record, *recovered)))
            }
            Claimed::Replay(record) => Claim::Replay(
                Replay::from_record(record).ok_or_else(|| internal("replay without outcome"))?,
            ),
            Claimed::Mismatch { fingerprint, .. } => Claim::Mismatch { stored: *fingerprint },
            Claimed::InFlight { retry_after_ms, attempt, stored, .. } => Claim::InFlight {
                retry_after: Duration::from_millis(self.retry_after_ms(
                    key,
                    stored,
                    *retry_after_ms,
                )),
                attempt: *attempt,
            },
        };
        audit(key, &claim, claimed.record());
        if let Some(started) = call.started {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.inner.metrics.latency(key.namespace()).claim_ns.record(ns);
        }
        Ok(claim)
    }

    fn lease_of(&self, key: &Key, record: &Arc<Record>, recovered: bool) -> Lease {
        let claimed_at = match record.state {
            core::State::InProgress { claimed_at, .. } => claimed_at,
            _ => 0,
        };
        Lease {
            store: self.backend().store_id(),
            key: key.clone(),
            token: token_of(record),
            attempt: record.attempts,
            deadline: lease_deadline(record),
            recovered,
            claimed_at,
        }
    }

    /// `Claim::InFlight::retry_after` (see there), from the time left on the
    /// holder's lease and the namespace's recent processing times.
    fn retry_after_ms(&self, key: &Key, stored: &Record, lease_left_ms: u64) -> u64 {
        let p90 = self.inner.metrics.latency(key.namespace()).processing.p90_ms();
        let elapsed = match stored.state {
            core::State::InProgress { claimed_at, .. } => {
                self.inner.config.clock.now_millis().saturating_sub(claimed_at)
            }
            _ => 0,
        };
        crate::metrics::retry_after_ms(p90, elapsed, lease_left_ms)
    }
}
