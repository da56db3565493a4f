//! What the store's calls return: claims, leases, replays, entries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::codec::Codec;
use super::guard::Guard;
use crate::clock::{Millis, to_system_time};
use crate::core::{BodyFormat, IdleReason, Record, State};
use crate::fingerprint::Fingerprint;
use crate::key::Key;

/// The answer to a claim: exactly one of four outcomes. Its methods never
/// block and never fail.
#[derive(Debug)]
#[must_use = "a claim tells you whether to run the side effect"]
pub enum Claim {
    /// You hold the key: run the side effect, then finish the [`Guard`]
    /// (`complete`, `fail` or `release`). Dropping it unfinished abandons the
    /// claim: the next claimer acquires at once, with `recovered() == true`.
    Acquired(Guard),
    /// The key is finished: return the stored outcome, do not run the side effect.
    Replay(Replay),
    /// Another holder has the key. Retry after `retry_after`, or `wait`.
    InFlight {
        /// When the holder will probably have finished: the namespace's
        /// recent 90th-percentile processing time minus the time the holder
        /// has run so far (a quarter of that p90 once it has run longer),
        /// never beyond the holder's lease; the time left on the lease while
        /// this process has seen no completion in the namespace yet.
        /// At least 1 ms.
        retry_after: Duration,
        /// The holder's attempt number.
        attempt: u32,
    },
    /// The key was claimed with a different request fingerprint: the same
    /// idempotency key was reused for another payload. Nothing was changed.
    Mismatch {
        /// The fingerprint stored with the key.
        stored: Fingerprint,
    },
}

impl Claim {
    /// The guard, if this claim acquired the key.
    pub fn into_guard(self) -> Option<Guard> {
        match self {
            Claim::Acquired(guard) => Some(guard),
            _ => None,
        }
    }

    /// The lease, detached from its guard, if this claim acquired the key
    /// (see [`Guard::into_lease`]: dropping a detached lease does nothing).
    pub fn into_lease(self) -> Option<Lease> {
        self.into_guard().map(Guard::into_lease)
    }
}

/// Proof of holding a key, detached from its [`Guard`]: a fencing token, the
/// attempt number and the lease deadline. [`Store::complete`],
/// [`Store::fail`], [`Store::extend`], [`Store::release`] and
/// [`Store::abandon`] check the token, so a holder whose lease expired and was
/// taken over cannot overwrite the newer holder's result;
/// [`Store::adopt`] turns it back into a guard.
///
/// Dropping a lease changes nothing: the claim stays until its deadline. It
/// is `Clone` for handing over (a clone presented after the first one
/// finished is refused as stale). Its accessors never block and never fail.
///
/// A lease is valid only with the open store that issued it: it carries that
/// open's random identity. Presented to another data directory, to a copy of
/// this one (`cp -a`, a restored backup), or to this directory opened again
/// (after close or a restart), it is refused with
/// [`StaleReason::OtherStore`](crate::StaleReason::OtherStore) and changes
/// nothing. A claim whose process ended is an orphan: claim the key again.
///
/// [`Store::complete`]: crate::Store::complete
/// [`Store::fail`]: crate::Store::fail
/// [`Store::extend`]: crate::Store::extend
/// [`Store::release`]: crate::Store::release
/// [`Store::abandon`]: crate::Store::abandon
/// [`Store::adopt`]: crate::Store::adopt
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The issuing open store's random identity.
    pub(crate) store: u64,
    pub(crate) key: Key,
    pub(crate) token: u64,
    pub(crate) attempt: u32,
    pub(crate) deadline: Millis,
    pub(crate) recovered: bool,
    /// When this attempt was claimed (its processing time, for estimates).
    pub(crate) claimed_at: Millis,
}

impl Lease {
    /// The key held.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The fencing token: strictly greater than every token issued before,
    /// over the whole life of the store, across restarts. Pass it to
    /// downstream systems that can reject writes carrying an older token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// 1 for the first acquisition of the key, then 2, 3, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the lease expires and another claimer may take the key over.
    pub fn deadline(&self) -> SystemTime {
        to_system_time(self.deadline)
    }

    /// True when an earlier attempt was orphaned — abandoned by its holder
    /// (a dropped guard, a panic, a cancelled future), its lease expired or
    /// its process crashed — so part of its side effect may have happened:
    /// reconcile before redoing it.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
}

/// How a finished key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Completed; the body is the response.
    Completed,
    /// Failed terminally; the body is the error payload.
    Failed,
}

/// A finished key's stored outcome, replayed to every duplicate. Its
/// methods never block; only the decoding ones can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    outcome: Outcome,
    body: Arc<[u8]>,
    format: BodyFormat,
    first_claimed_at: Millis,
    finished_at: Millis,
    attempts: u32,
    token: u64,
}

impl Replay {
    pub(crate) fn from_record(r: &Record) -> Option<Replay> {
        let (outcome, token, finished_at, body, format) = match &r.state {
            State::Completed { token, finished_at, body, format } => {
                (Outcome::Completed, *token, *finished_at, body, *format)
            }
            State::Failed { token, finished_at, body, format } => {
                (Outcome::Failed, *token, *finished_at, body, *format)
            }
            _ => return None,
        };
        Some(Replay {
            outcome,
            body: body.clone(),
            format,
            first_claimed_at: r.created_at,
            finished_at,
            attempts: r.attempts,
            token,
        })
    }

    /// The stored bytes: the response of a completed key, the error payload
    /// of a failed one. Byte-identical to what was stored.
    pub fn response(&self) -> &[u8] {
        &self.body
    }

    /// The stored bytes, shared (no copy).
    pub fn body(&self) -> Arc<[u8]> {
        self.body.clone()
    }

    /// How the body was stored: plain bytes, or JSON by the typed API.
    pub fn format(&self) -> BodyFormat {
        self.format
    }

    /// The body decoded as `C` (see [`Codec`]). Fails with
    /// [`Error::Codec`](crate::Error::Codec) if it is not a valid `C`.
    pub fn decode<C: Codec>(&self) -> crate::Result<C> {
        C::decode(&self.body)
    }

    /// The body decoded from JSON as `T` (the `serde` feature). Fails with
    /// [`Error::Codec`](crate::Error::Codec) if it is not a `T` in JSON.
    #[cfg(feature = "serde")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        super::codec::from_json(&self.body)
    }

    /// Completed or failed.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// True for `Outcome::Completed`.
    pub fn is_completed(&self) -> bool {
        self.outcome == Outcome::Completed
    }

    /// When the key was first claimed.
    pub fn first_claimed_at(&self) -> SystemTime {
        to_system_time(self.first_claimed_at)
    }

    /// When it was completed or failed.
    pub fn finished_at(&self) -> SystemTime {
        to_system_time(self.finished_at)
    }

    /// How many attempts it took.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The fencing token of the attempt that finished it.
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// How a claim ends without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// Try again later: the key becomes claimable, attempt count kept.
    Retryable,
    /// Give up: the payload is stored and replayed to every later claim
    /// (for a typed payload, see [`Guard::fail_terminal`]).
    Terminal(&'a [u8]),
}

/// Per-call overrides of the namespace policy.
///
/// The builders only record values (never block, never fail); the claim
/// checks them by the duration rule of [`Policy`](crate::Policy): zero or
/// longer than [`MAX_DURATION`](crate::MAX_DURATION) is
/// `Error::InvalidConfig` (nothing stored); otherwise rounded up to whole
/// milliseconds. [`Store::claim_batch_with`](crate::Store::claim_batch_with)
/// refuses a `wait`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOptions {
    pub(crate) lease: Option<Duration>,
    pub(crate) retention: Option<Duration>,
    pub(crate) wait: Option<Duration>,
}

impl ClaimOptions {
    /// The namespace's policy, unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// This claim's lease duration.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// How long this key is kept after it finishes (not shorter than the
    /// namespace's declared retry horizon).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// While another holder has the key in flight, wait up to `timeout` for
    /// it to finish (as [`Store::wait`](crate::Store::wait) does) instead of
    /// answering `InFlight` at once. Zero: do not wait; `Duration::MAX`: no
    /// limit.
    pub fn wait(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }
}

/// The state of a key as seen by [`Store::get`](crate::Store::get).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryState {
    /// Claimed and being worked on (or orphaned, see `orphaned`).
    InProgress {
        /// The holder's fencing token.
        token: u64,
        /// When it was claimed.
        claimed_at: SystemTime,
        /// When the lease runs out.
        lease_deadline: SystemTime,
        /// True when the lease has expired, the holder abandoned it or the
        /// holder's process is gone: the next claim acquires it with
        /// `recovered = true`.
        orphaned: bool,
    },
    /// Finished; the stored outcome.
    Finished(Replay),
    /// Claimable again after a release or a retryable failure.
    Claimable {
        /// Since when.
        since: SystemTime,
        /// True after `fail(Failure::Retryable)`, false after `release`.
        after_retryable_failure: bool,
    },
}

/// A key's stored record, as [`Store::get`](crate::Store::get) and
/// [`Store::list`](crate::Store::list) return it: plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The key.
    pub key: Key,
    /// Times acquired.
    pub attempts: u32,
    /// When first claimed.
    pub created_at: SystemTime,
    /// When the record disappears.
    pub expires_at: SystemTime,
    /// The stored request fingerprint.
    pub fingerprint: Option<Fingerprint>,
    /// The state.
    pub state: EntryState,
}

impl Entry {
    pub(crate) fn from_record(key: Key, r: &Record, now: Millis, boot: u64) -> Entry {
        let state = match &r.state {
            State::InProgress { token, boot: b, claimed_at, lease_deadline } => {
                EntryState::InProgress {
                    token: *token,
                    claimed_at: to_system_time(*claimed_at),
                    lease_deadline: to_system_time(*lease_deadline),
                    orphaned: *b != boot || *lease_deadline <= now,
                }
            }
            State::Completed { .. } | State::Failed { .. } => {
                EntryState::Finished(Replay::from_record(r).expect("finished record"))
            }
            State::Idle { since, reason, .. } => EntryState::Claimable {
                since: to_system_time(*since),
                after_retryable_failure: *reason == IdleReason::RetryableFailure,
            },
        };
        Entry {
            key,
            attempts: r.attempts,
            created_at: to_system_time(r.created_at),
            expires_at: to_system_time(r.expires_at),
            fingerprint: r.fingerprint,
            state,
        }
    }
}
