//! What the store's calls return: claims, leases, replays, entries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::{Millis, to_system_time};
use crate::core::{IdleReason, Record, State};
use crate::fingerprint::Fingerprint;
use crate::key::Key;

/// The answer to a claim: exactly one of four outcomes.
#[derive(Debug, Clone)]
#[must_use = "a claim tells you whether to run the side effect"]
pub enum Claim {
    /// You hold the key: run the side effect, then `complete` or `fail` the lease.
    Acquired(Lease),
    /// The key is finished: return the stored outcome, do not run the side effect.
    Replay(Replay),
    /// Another holder's lease is live. Retry after `retry_after`, or `wait`.
    InFlight {
        /// Time left on the holder's lease.
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
    /// The lease, if this claim acquired the key.
    pub fn into_lease(self) -> Option<Lease> {
        match self {
            Claim::Acquired(lease) => Some(lease),
            _ => None,
        }
    }
}

/// Proof of holding a key: a fencing token, the attempt number and the
/// lease deadline. `complete`, `fail`, `extend` and `release` check the token,
/// so a holder whose lease expired and was taken over cannot overwrite the
/// newer holder's result.
///
/// Dropping a lease changes nothing: the claim stays until its deadline.
/// Call [`Store::release`](crate::Store::release) to give the key back early.
///
/// A lease is valid only with the open store that issued it: it carries that
/// open's random identity. Presented to another data directory, to a copy of
/// this one (`cp -a`, a restored backup), or to this directory opened again
/// (after close or a restart), it is refused with
/// [`StaleReason::OtherStore`](crate::StaleReason::OtherStore) and changes
/// nothing. A claim whose process ended is an orphan: claim the key again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The issuing open store's random identity.
    pub(crate) store: u64,
    pub(crate) key: Key,
    pub(crate) token: u64,
    pub(crate) attempt: u32,
    pub(crate) deadline: Millis,
    pub(crate) recovered: bool,
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

    /// True when an earlier attempt was orphaned — its lease expired or its
    /// process crashed — so part of its side effect may have happened:
    /// reconcile before redoing it.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
}

/// How a finished key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed; the body is the response.
    Completed,
    /// Failed terminally; the body is the error payload.
    Failed,
}

/// A finished key's stored outcome, replayed to every duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    outcome: Outcome,
    body: Arc<[u8]>,
    first_claimed_at: Millis,
    finished_at: Millis,
    attempts: u32,
    token: u64,
}

impl Replay {
    pub(crate) fn from_record(r: &Record) -> Option<Replay> {
        let (outcome, token, finished_at, body) = match &r.state {
            State::Completed { token, finished_at, body } => {
                (Outcome::Completed, *token, *finished_at, body)
            }
            State::Failed { token, finished_at, body } => {
                (Outcome::Failed, *token, *finished_at, body)
            }
            _ => return None,
        };
        Some(Replay {
            outcome,
            body: body.clone(),
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
    /// Give up: the payload is stored and replayed to every later claim.
    Terminal(&'a [u8]),
}

/// Per-call overrides of the namespace policy.
///
/// Checked at the claim by the duration rule of [`Policy`](crate::Policy):
/// zero or longer than [`MAX_DURATION`](crate::MAX_DURATION) is
/// `Error::InvalidConfig` (nothing stored); otherwise rounded up to whole
/// milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOptions {
    pub(crate) lease: Option<Duration>,
    pub(crate) retention: Option<Duration>,
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
}

/// The state of a key as seen by [`Store::get`](crate::Store::get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// Claimed and being worked on (or orphaned, see `orphaned`).
    InProgress {
        /// The holder's fencing token.
        token: u64,
        /// When it was claimed.
        claimed_at: SystemTime,
        /// When the lease runs out.
        lease_deadline: SystemTime,
        /// True when the lease has expired or the holder's process is gone:
        /// the next claim acquires it with `recovered = true`.
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

/// A key's stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
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
