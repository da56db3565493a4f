//! `run_once`: claim, run the closure only if acquired, complete with its
//! value, replay that value to every duplicate.

use std::future::Future;
use std::time::Duration;

use super::Store;
use super::codec::Codec;
use super::guard::Guard;
use super::types::{Claim, ClaimOptions, Failure, Replay};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::key::Key;

/// What the closure of [`Store::run_once`] is told about its attempt. Its
/// accessors never block and never fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    key: Key,
    number: u32,
    token: u64,
    recovered: bool,
}

impl Attempt {
    fn of(guard: &Guard) -> Attempt {
        Attempt {
            key: guard.key().clone(),
            number: guard.attempt(),
            token: guard.token(),
            recovered: guard.recovered(),
        }
    }

    /// The key being processed.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// 1 for the first acquisition of the key, then 2, 3, …
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The fencing token of this attempt (pass it downstream).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// True when an earlier attempt was orphaned (abandoned, crashed, or its
    /// lease expired): its side effect may have happened — reconcile first
    /// (look the effect up downstream) instead of redoing it blindly.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
}

/// How the closure of [`Store::run_once`] failed. `?` on any `Result<_, E>`
/// makes a `Retryable` failure; say `Fail::Terminal(e)` to give up for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail<E> {
    /// Try again later: the key becomes claimable again (attempt count kept).
    Retryable(E),
    /// Give up: `E` is stored and replayed to every later call as
    /// [`RunOnce::Failed`].
    Terminal(E),
}

impl<E> From<E> for Fail<E> {
    fn from(e: E) -> Self {
        Fail::Retryable(e)
    }
}

/// The answer of [`Store::run_once`]. Its accessors never block and never
/// fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the value (or the reason there is none) is the answer to return"]
pub enum RunOnce<T, E> {
    /// The closure ran in this call; its value is stored and replayed to
    /// every duplicate.
    Ran(T),
    /// An earlier call completed the key: its value, decoded; the closure
    /// did not run.
    Replayed(T),
    /// The key failed terminally — in this call or an earlier one — with
    /// this error, which every later call gets too.
    Failed(E),
    /// The closure failed retryably in this call: the key is claimable
    /// again. Return an error the sender retries on.
    Retry(E),
    /// Another holder has the key; see
    /// [`Claim::InFlight`](crate::Claim::InFlight).
    InFlight {
        /// When the holder will probably have finished.
        retry_after: Duration,
        /// The holder's attempt number.
        attempt: u32,
    },
    /// The key was claimed with another request fingerprint.
    Mismatch {
        /// The fingerprint stored with the key.
        stored: Fingerprint,
    },
}

impl<T, E> RunOnce<T, E> {
    /// The value, whether it ran now or was replayed.
    pub fn value(&self) -> Option<&T> {
        match self {
            RunOnce::Ran(v) | RunOnce::Replayed(v) => Some(v),
            _ => None,
        }
    }

    /// The value, whether it ran now or was replayed.
    pub fn into_value(self) -> Option<T> {
        match self {
            RunOnce::Ran(v) | RunOnce::Replayed(v) => Some(v),
            _ => None,
        }
    }
}

impl Store {
    /// Runs `f` once per key: claims `key`; if acquired, calls `f` with the
    /// [`Attempt`] (reconcile first when `attempt.recovered()`), completes
    /// the key with its value and returns [`RunOnce::Ran`]; a duplicate gets
    /// [`RunOnce::Replayed`] with that value, decoded, and `f` does not run.
    ///
    /// ```
    /// use idemkv::{Fail, Key, RunOnce, Store};
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let key = Key::new("orders", "ord_1")?;
    /// let charge = |attempt: idemkv::Attempt| -> Result<String, Fail<String>> {
    ///     if attempt.recovered() {
    ///         // look the charge up downstream before charging again
    ///     }
    ///     Ok(format!("charged, token {}", attempt.token()))
    /// };
    /// let first = store.run_once(&key, None, charge)?;
    /// let again = store.run_once(&key, None, charge)?;
    /// assert!(matches!(first, RunOnce::Ran(_)));
    /// assert_eq!(again, RunOnce::Replayed(first.into_value().unwrap()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failures and panics of `f`
    /// `Err(Fail::Retryable(e))` (what `?` makes) fails the key retryably
    /// and returns [`RunOnce::Retry`]; `Err(Fail::Terminal(e))` stores `e`
    /// and returns [`RunOnce::Failed`], as every later call will. A panic in
    /// `f` abandons the claim (the next caller gets `recovered() == true`)
    /// and resumes unwinding.
    ///
    /// # Blocking
    /// As [`Store::claim`], then `f`'s own time, then as
    /// [`Guard::complete`] (or `fail_terminal`, `fail`): in `Durable` mode
    /// two journal fsyncs, shared with concurrent callers. In async code use
    /// [`Store::run_once_async`].
    ///
    /// # Errors
    /// `Err(Error)` is the store's, never `f`'s:
    /// - Before `f` runs, as [`Store::claim`]: `f` did not run.
    /// - After `f` ran, as [`Guard::complete`] returns them — the side
    ///   effect has happened but its value may not be stored.
    ///   [`Error::Codec`] (the value cannot be encoded) or
    ///   [`Error::ResponseTooLarge`] abandons the claim, so the next caller
    ///   acquires with `recovered() == true`; [`Error::StaleLease`] means
    ///   `f` outlived its lease and another claimer took the key over (its
    ///   outcome counts, not this one); [`Error::Poisoned`] from the
    ///   durability wait means the value may already be durable: reopen and
    ///   `get` the key before retrying.
    /// - [`Error::Codec`] also when a replayed body is not a valid `T`
    ///   (or `E`, for a terminal failure): nothing changed.
    ///
    /// [`Error::Codec`]: crate::Error::Codec
    /// [`Error::ResponseTooLarge`]: crate::Error::ResponseTooLarge
    /// [`Error::StaleLease`]: crate::Error::StaleLease
    /// [`Error::Poisoned`]: crate::Error::Poisoned
    pub fn run_once<T, E, F>(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        f: F,
    ) -> Result<RunOnce<T, E>>
    where
        T: Codec,
        E: Codec,
        F: FnOnce(Attempt) -> std::result::Result<T, Fail<E>>,
    {
        self.run_once_with(key, fingerprint, &ClaimOptions::default(), f)
    }

    /// [`Store::run_once`] with per-call options; with
    /// [`ClaimOptions::wait`], a duplicate that finds the key in flight
    /// waits for the holder's value instead of answering `InFlight`
    /// (blocking like [`Store::wait`]). Blocks and fails as `run_once`, and
    /// with `InvalidConfig` as [`Store::claim_with`].
    pub fn run_once_with<T, E, F>(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
        f: F,
    ) -> Result<RunOnce<T, E>>
    where
        T: Codec,
        E: Codec,
        F: FnOnce(Attempt) -> std::result::Result<T, Fail<E>>,
    {
        match self.claim_with(key, fingerprint, options)? {
            Claim::Acquired(guard) => {
                let outcome = f(Attempt::of(&guard));
                let (finish, answer) = settle_outcome(outcome)?;
                match finish {
                    Finish::Complete(body) => guard.complete(&Encoded(body, T::FORMAT))?,
                    Finish::Terminal(body) => guard.fail_terminal(&Encoded(body, E::FORMAT))?,
                    Finish::Retryable => guard.fail(Failure::Retryable)?,
                }
                Ok(answer)
            }
            other => not_acquired(other),
        }
    }

    /// [`Store::run_once`] for async code: `f` returns a future. Durability
    /// waits are awaited; the thread is held only as
    /// [`Store::claim_async`] and [`Guard::complete_async`] describe. Errors
    /// as `run_once`. Cancel-safe: dropping the returned future while `f`
    /// runs abandons the claim, like a panic.
    pub async fn run_once_async<T, E, F, Fut>(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        f: F,
    ) -> Result<RunOnce<T, E>>
    where
        T: Codec,
        E: Codec,
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = std::result::Result<T, Fail<E>>>,
    {
        self.run_once_with_async(key, fingerprint, &ClaimOptions::default(), f).await
    }

    /// [`Store::run_once_with`] for async code (see
    /// [`Store::run_once_async`]); with [`ClaimOptions::wait`] it waits like
    /// [`Store::wait_async`]. Errors as `run_once_with`. Cancel-safe.
    pub async fn run_once_with_async<T, E, F, Fut>(
        &self,
        key: &Key,
        fingerprint: impl Into<Option<Fingerprint>>,
        options: &ClaimOptions,
        f: F,
    ) -> Result<RunOnce<T, E>>
    where
        T: Codec,
        E: Codec,
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = std::result::Result<T, Fail<E>>>,
    {
        match self.claim_with_async(key, fingerprint, options).await? {
            Claim::Acquired(guard) => {
                let outcome = f(Attempt::of(&guard)).await;
                let (finish, answer) = settle_outcome(outcome)?;
                match finish {
                    Finish::Complete(body) => {
                        guard.complete_async(&Encoded(body, T::FORMAT)).await?
                    }
                    Finish::Terminal(body) => {
                        guard.fail_terminal_async(&Encoded(body, E::FORMAT)).await?
                    }
                    Finish::Retryable => guard.fail_async(Failure::Retryable).await?,
                }
                Ok(answer)
            }
            other => not_acquired(other),
        }
    }
}

/// How to finish the guard after the closure.
enum Finish {
    Complete(Vec<u8>),
    Terminal(Vec<u8>),
    Retryable,
}

/// Encodes the closure's outcome before the guard is finished (an encoding
/// error drops the guard: abandoned).
fn settle_outcome<T: Codec, E: Codec>(
    outcome: std::result::Result<T, Fail<E>>,
) -> Result<(Finish, RunOnce<T, E>)> {
    Ok(match outcome {
        Ok(v) => (Finish::Complete(v.encode()?), RunOnce::Ran(v)),
        Err(Fail::Terminal(e)) => (Finish::Terminal(e.encode()?), RunOnce::Failed(e)),
        Err(Fail::Retryable(e)) => (Finish::Retryable, RunOnce::Retry(e)),
    })
}

fn not_acquired<T: Codec, E: Codec>(claim: Claim) -> Result<RunOnce<T, E>> {
    Ok(match claim {
        Claim::Acquired(_) => unreachable!("handled by the caller"),
        Claim::Replay(r) => replayed(&r)?,
        Claim::InFlight { retry_after, attempt } => RunOnce::InFlight { retry_after, attempt },
        Claim::Mismatch { stored } => RunOnce::Mismatch { stored },
    })
}

fn replayed<T: Codec, E: Codec>(r: &Replay) -> Result<RunOnce<T, E>> {
    Ok(if r.is_completed() { RunOnce::Replayed(r.decode()?) } else { RunOnce::Failed(r.decode()?) })
}

/// Bytes already encoded, with their format.
struct Encoded(Vec<u8>, crate::core::BodyFormat);

impl super::codec::Body for &Encoded {
    fn to_body(&self) -> Result<(std::borrow::Cow<'_, [u8]>, crate::core::BodyFormat)> {
        Ok((std::borrow::Cow::Borrowed(&self.0), self.1))
    }
}
