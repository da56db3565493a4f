//! [`Guard`]: the move-only proof of holding a key, which never strands it.

use std::time::{Duration, SystemTime};

use super::Store;
use super::codec::Body;
use super::types::{Failure, Lease};
use crate::core::backend::{Op, Ticket};
use crate::error::{Error, Result};
use crate::key::Key;

/// You hold the key: run the side effect, then finish the guard with
/// [`complete`](Guard::complete), [`fail`](Guard::fail) or
/// [`release`](Guard::release) — each consumes it, so a claim is finished
/// once.
///
/// # Dropped unfinished: abandoned
/// Dropping the guard without finishing it — an early return, `?`, a panic
/// while it is held, a cancelled future — **abandons** the claim: the key is
/// claimable at once (its waiters wake), and the next claimer acquires it
/// with [`recovered()`](Guard::recovered) `== true`, because the side effect
/// may have happened and must be reconciled. Dropping never blocks: it takes
/// the key's stripe lock for an in-memory journal append (reading the key's
/// record from sled first on a cache miss) and waits neither for the fsync
/// nor for backpressure — unless the guard holds the last clone of its
/// [`Store`]: then dropping it also closes the store, with the bounded
/// waits of [`Store::close`]. If the abandon cannot be written (the store
/// is closed or poisoned, or the key was taken over), nothing is lost: the
/// claim is orphaned anyway when its lease ends or the store reopens.
///
/// # Handing it over
/// A guard is `Send`: move it to another thread or task. To keep a claim
/// without a guard (the claim then stays until its lease deadline if
/// nobody finishes it), detach it with [`into_lease`](Guard::into_lease) and
/// re-attach with [`Store::adopt`].
///
/// # Blocking
/// The accessors (`key`, `token`, `attempt`, `recovered`, `deadline`,
/// `lease`) and [`into_lease`](Guard::into_lease) never block and never
/// fail. The finishing calls and `extend` are transitions: each takes the
/// key's stripe lock (reading sled outside it on a cache miss), waits while
/// the applier is 2^18 entries behind (backpressure), and in `Durable` mode
/// waits for its journal fsync, shared with concurrent callers. Their
/// `_async` forms await the fsync instead and hold the thread only for the
/// rest.
///
/// # Errors of the finishing calls
/// `complete`, `fail`, `fail_terminal`, `release` and `extend` (and their
/// `_async` forms) are fenced:
/// - [`Error::StaleLease`] if the key was taken over, removed, expired or
///   finished meanwhile: nothing changed, and the key is no longer this
///   guard's (dropping it does nothing). Do not report this attempt's
///   result.
/// - An error before the transition is journaled — [`Error::Closed`] or
///   [`Error::Poisoned`], [`Error::ResponseTooLarge`] for a body over the
///   limit, [`Error::Codec`] for a body that cannot be encoded,
///   [`Error::Storage`], [`Error::Corrupt`] or [`Error::UnsupportedVersion`]
///   when the key's record cannot be read: nothing changed, and the guard
///   is dropped, which abandons the claim if the store can still write
///   (`extend` keeps the guard, still holding the key, and fails also with
///   [`Error::InvalidConfig`] for a bad duration).
/// - [`Error::Poisoned`] from the durability wait: the transition was
///   journaled and may already be durable; the claim is not abandoned.
///   Reopen and [`get`](Store::get) the key before retrying — a
///   completion found there must not run again.
#[must_use = "dropping a guard abandons the claim: complete, fail or release it"]
pub struct Guard {
    store: Store,
    /// `None` once finished or detached: nothing to abandon.
    lease: Option<Lease>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("lease", &self.lease).finish()
    }
}

impl Guard {
    pub(crate) fn new(store: Store, lease: Lease) -> Guard {
        Guard { store, lease: Some(lease) }
    }

    /// The lease, present until the guard is consumed.
    fn held(&self) -> &Lease {
        self.lease.as_ref().expect("a guard holds its lease until consumed")
    }

    /// The detached lease; the guard no longer abandons on drop.
    fn take(&mut self) -> Lease {
        self.lease.take().expect("a guard holds its lease until consumed")
    }

    /// The key held.
    pub fn key(&self) -> &Key {
        self.held().key()
    }

    /// The fencing token: strictly greater than every token issued before,
    /// over the whole life of the store. Pass it to downstream systems that
    /// can reject writes carrying an older token.
    pub fn token(&self) -> u64 {
        self.held().token()
    }

    /// 1 for the first acquisition of the key, then 2, 3, …
    pub fn attempt(&self) -> u32 {
        self.held().attempt()
    }

    /// True when an earlier attempt was orphaned — abandoned, its lease
    /// expired, or its process crashed — so part of its side effect may have
    /// happened: reconcile before redoing it.
    pub fn recovered(&self) -> bool {
        self.held().recovered()
    }

    /// When the lease expires and another claimer may take the key over.
    pub fn deadline(&self) -> SystemTime {
        self.held().deadline()
    }

    /// The lease this guard holds.
    pub fn lease(&self) -> &Lease {
        self.held()
    }

    /// Detaches the lease: dropping it does nothing (the claim stays until
    /// its deadline unless finished with [`Store::complete`] & co.). Never
    /// blocks, never fails.
    pub fn into_lease(mut self) -> Lease {
        self.take()
    }

    /// Completes the claim with `response` — bytes, or `Json(value)` with
    /// the `serde` feature — which every later claim of the key gets back
    /// until the record expires (retention counts from now).
    ///
    /// Blocks for the journal fsync in `Durable` mode (shared with
    /// concurrent callers), besides the stripe lock and backpressure; see
    /// [`Guard::complete_async`]. Fails with `StaleLease`,
    /// `ResponseTooLarge`, `Codec`, `Closed`, `Poisoned`, or an error
    /// reading the key's record — see the type's documentation for what
    /// each leaves behind.
    pub fn complete(mut self, response: impl Body) -> Result<()> {
        let (body, format) = response.to_body()?;
        let ticket = self.finish(|s, l| s.start_complete(l, &body, format))?;
        self.store.settle(ticket)
    }

    /// Completes without waiting for durability: the ticket to settle (a
    /// batch settles the newest of its tickets once).
    pub(super) fn complete_deferred(mut self, response: impl Body) -> Result<Ticket> {
        let (body, format) = response.to_body()?;
        self.finish(|s, l| s.start_complete(l, &body, format))
    }

    /// [`Guard::complete`] for async code: awaits the fsync instead of
    /// blocking on it; the thread is held only for the stripe lock, a sled
    /// read on a cache miss and backpressure. Errors as `complete`.
    /// Cancel-safe: once the completion is journaled, dropping the future
    /// leaves it in place (durable with the next fsync); dropped before it
    /// ran, the guard abandons the claim.
    pub async fn complete_async(mut self, response: impl Body) -> Result<()> {
        let ticket = {
            let (body, format) = response.to_body()?;
            self.finish(|s, l| s.start_complete(l, &body, format))?
        };
        self.store.settle_async(ticket).await
    }

    /// Ends the claim without a response: `Retryable` makes the key claimable
    /// again (attempt count kept, `recovered` false for the next claimer);
    /// `Terminal(payload)` stores the payload and replays it to every later
    /// claim. Blocks and fails like [`Guard::complete`]
    /// (`ResponseTooLarge` only for a terminal payload, never `Codec`).
    pub fn fail(mut self, failure: Failure<'_>) -> Result<()> {
        let ticket = self.finish(|s, l| s.start_fail(l, failure))?;
        self.store.settle(ticket)
    }

    /// [`Guard::fail`] for async code: awaits the fsync, as
    /// [`Guard::complete_async`] does. Errors as `fail`.
    pub async fn fail_async(mut self, failure: Failure<'_>) -> Result<()> {
        let ticket = self.finish(|s, l| s.start_fail(l, failure))?;
        self.store.settle_async(ticket).await
    }

    /// Fails the claim terminally with a typed payload (`Json(value)` with
    /// the `serde` feature, or any [`Body`]), replayed to every later claim.
    /// Blocks and fails like [`Guard::complete`].
    pub fn fail_terminal(mut self, payload: impl Body) -> Result<()> {
        let (body, format) = payload.to_body()?;
        let ticket = self.finish(|s, l| s.start_terminal(l, &body, format))?;
        self.store.settle(ticket)
    }

    /// [`Guard::fail_terminal`] for async code: awaits the fsync, as
    /// [`Guard::complete_async`] does. Errors as `fail_terminal`.
    pub async fn fail_terminal_async(mut self, payload: impl Body) -> Result<()> {
        let ticket = {
            let (body, format) = payload.to_body()?;
            self.finish(|s, l| s.start_terminal(l, &body, format))?
        };
        self.store.settle_async(ticket).await
    }

    /// Gives the key back stating that nothing happened: the next claim
    /// acquires it with `recovered() == false`. Only when the side effect
    /// surely did not run; otherwise drop the guard (abandon). Blocks and
    /// fails like [`Guard::complete`] (never `ResponseTooLarge` or `Codec`).
    pub fn release(mut self) -> Result<()> {
        let ticket = self.finish(|s, l| s.start(l, Op::Release).map(|(_, t)| t))?;
        self.store.settle(ticket)
    }

    /// [`Guard::release`] for async code: awaits the fsync, as
    /// [`Guard::complete_async`] does. Errors as `release`.
    pub async fn release_async(mut self) -> Result<()> {
        let ticket = self.finish(|s, l| s.start(l, Op::Release).map(|(_, t)| t))?;
        self.store.settle_async(ticket).await
    }

    /// Abandons the claim now, as dropping the guard does: the next claimer
    /// acquires at once with `recovered() == true`. Never fails, and never
    /// blocks beyond the stripe lock and a sled read on a cache miss —
    /// unless this guard holds the last clone of the store, whose drop
    /// closes it (see the type's documentation).
    pub fn abandon(self) {
        drop(self);
    }

    /// Moves the lease deadline to `now + by`, for side effects that take
    /// longer than the lease. `by` follows the duration rule of
    /// [`Policy`](crate::Policy) and may not exceed the key's retention
    /// (`Error::InvalidConfig`, nothing changed; the guard still holds).
    /// Blocks like [`Guard::complete`]. Fails before anything changed —
    /// the guard then keeps its deadline — or with `Poisoned` from the
    /// durability wait (the guard already shows the new deadline, which
    /// may not be durable); see the type's documentation.
    pub fn extend(&mut self, by: Duration) -> Result<()> {
        let ticket = self.store.start_extend(self.lease.as_mut().expect("held"), by)?;
        self.store.settle(ticket)
    }

    /// [`Guard::extend`] for async code: awaits the fsync, as
    /// [`Guard::complete_async`] does. Errors as `extend`.
    pub async fn extend_async(&mut self, by: Duration) -> Result<()> {
        let ticket = self.store.start_extend(self.lease.as_mut().expect("held"), by)?;
        self.store.settle_async(ticket).await
    }

    /// Runs a finishing transition: on success (or a stale lease: the key is
    /// no longer ours) the guard is disarmed; on another error it stays
    /// armed, so that its drop abandons the claim.
    fn finish(&mut self, start: impl FnOnce(&Store, &Lease) -> Result<Ticket>) -> Result<Ticket> {
        match start(&self.store, self.held()) {
            Ok(ticket) => {
                self.take();
                Ok(ticket)
            }
            Err(e) => {
                if matches!(e, Error::StaleLease { .. }) {
                    self.take();
                }
                Err(e)
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.store.abandon(&lease);
        }
    }
}
