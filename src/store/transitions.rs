//! The fenced transitions of a held key — used by [`Guard`] and, for a
//! detached [`Lease`], by the `Store` methods here — and the durability
//! waits (blocking or awaited) that acknowledge them.

use std::sync::Arc;
use std::time::Duration;

use super::guard::Guard;
use super::types::{Failure, Lease};
use super::{Store, lease_deadline};
use crate::clock::duration_ms;
use crate::core::backend::{Op, Ticket};
use crate::core::{BodyFormat, Record};
use crate::error::{Error, Result, StaleReason};

impl Store {
    /// Completes the claim of a detached `lease` (see [`Guard::complete`],
    /// which most callers use) with raw `response` bytes. A lease past its
    /// deadline still completes if nobody took the key over.
    ///
    /// # Blocking
    /// Takes the key's stripe lock (reading sled outside it on a cache
    /// miss), waits while the applier is 2^18 entries behind
    /// (backpressure), and in `Durable` mode waits for the journal fsync,
    /// shared with concurrent callers.
    ///
    /// # Errors
    /// A detached lease is never abandoned on error: its claim stays until
    /// its deadline unless finished.
    /// - [`Error::StaleLease`], nothing changed — do not report this
    ///   attempt's result: the key was re-acquired by a newer claim
    ///   ([`StaleReason::Superseded`]), already finished
    ///   ([`StaleReason::Finished`]), removed or expired
    ///   ([`StaleReason::Missing`]), or the lease is of another store or an
    ///   earlier open ([`StaleReason::OtherStore`]).
    /// - [`Error::ResponseTooLarge`] over `max_response_bytes`, nothing
    ///   changed.
    /// - [`Error::Closed`], nothing changed.
    /// - [`Error::Poisoned`]: refused — or the completion was journaled and
    ///   its fsync failed, so it may already be durable: reopen and `get`
    ///   the key before retrying.
    /// - [`Error::Storage`], [`Error::Corrupt`] or
    ///   [`Error::UnsupportedVersion`]: the key's stored record cannot be
    ///   read; nothing changed.
    pub fn complete(&self, lease: &Lease, response: &[u8]) -> Result<()> {
        let ticket = self.start_complete(lease, response, BodyFormat::Bytes)?;
        self.settle(ticket)
    }

    /// Ends the claim of a detached `lease` without a response (see
    /// [`Guard::fail`]). Fenced, blocking and failing like
    /// [`Store::complete`] (`ResponseTooLarge` only for a terminal payload).
    pub fn fail(&self, lease: &Lease, failure: Failure<'_>) -> Result<()> {
        let ticket = self.start_fail(lease, failure)?;
        self.settle(ticket)
    }

    /// Gives the key of a detached `lease` back stating that nothing happened
    /// (see [`Guard::release`]); the next claim acquires it with
    /// `recovered = false`. Fenced, blocking and failing like
    /// [`Store::complete`] (never `ResponseTooLarge`).
    pub fn release(&self, lease: &Lease) -> Result<()> {
        let (_, ticket) = self.start(lease, Op::Release)?;
        self.settle(ticket)
    }

    /// Moves the deadline of a detached `lease` to `now + by` (see
    /// [`Guard::extend`]). `by` is rounded up to whole milliseconds (the
    /// duration rule of [`Policy`](crate::Policy)); it may not be zero,
    /// longer than [`MAX_DURATION`](crate::MAX_DURATION), nor longer than the
    /// retention the key was claimed with ([`Error::InvalidConfig`],
    /// nothing changed; checked after `Closed`). Fenced, blocking and
    /// failing like [`Store::complete`] (never `ResponseTooLarge`). On
    /// success `lease` carries the new deadline; on an error it is left as
    /// it was, except after `Poisoned` from the durability wait, when it
    /// already carries the new deadline (which may not be durable).
    pub fn extend(&self, lease: &mut Lease, by: Duration) -> Result<()> {
        let ticket = self.start_extend(lease, by)?;
        self.settle(ticket)
    }

    /// Abandons the claim of a detached `lease`, as dropping its guard does:
    /// the key is claimable at once and the next claimer gets
    /// `recovered() == true`. A lease of another store is ignored.
    ///
    /// Never blocks on durability or backpressure: it takes the key's
    /// stripe lock for an in-memory journal append (reading the key's
    /// record from sled first on a cache miss). Never fails: a closed or
    /// poisoned store, a key taken over or a record that cannot be read
    /// leaves nothing to abandon — the claim is orphaned anyway when its
    /// lease ends or the store reopens.
    pub fn abandon(&self, lease: &Lease) {
        if lease.store != self.backend().store_id() {
            return;
        }
        self.backend().abandon(&lease.key, lease.store, lease.token);
        tracing::debug!(
            target: "idemkv",
            namespace = lease.key.namespace(),
            key = %lease.key,
            token = lease.token,
            attempt = lease.attempt,
            "claim abandoned without an outcome; the next claimer reconciles"
        );
    }

    /// A guard for a detached `lease` of this open store (see
    /// [`Guard::into_lease`]): from now on, dropping it abandons the claim.
    /// Fails with [`Error::StaleLease`] ([`StaleReason::OtherStore`]) for a
    /// lease of another store or an earlier open, [`Error::Closed`] after
    /// close. Whether the claim is still held is checked by the guard's
    /// transitions (fenced), not here. Never blocks.
    pub fn adopt(&self, lease: Lease) -> Result<Guard> {
        self.backend().check_open()?;
        if lease.store != self.backend().store_id() {
            return Err(Error::StaleLease {
                key: lease.key.to_string(),
                token: lease.token,
                reason: StaleReason::OtherStore,
            });
        }
        Ok(Guard::new(self.clone(), lease))
    }

    /// Runs one fenced transition of `lease`'s key; the ticket to settle.
    pub(super) fn start(&self, lease: &Lease, op: Op<'_>) -> Result<(Arc<Record>, Ticket)> {
        self.backend().transition(&lease.key, lease.store, lease.token, op)
    }

    pub(super) fn start_complete(
        &self,
        lease: &Lease,
        body: &[u8],
        format: BodyFormat,
    ) -> Result<Ticket> {
        self.check_size(body)?;
        let (r, ticket) = self.start(lease, Op::Complete(body, format))?;
        let finished = super::finished_at(&r);
        let latency = self.inner.metrics.latency(lease.key.namespace());
        latency.event_ms.record(finished.saturating_sub(r.created_at));
        latency.processing.record(finished.saturating_sub(lease.claimed_at));
        Ok(ticket)
    }

    pub(super) fn start_fail(&self, lease: &Lease, failure: Failure<'_>) -> Result<Ticket> {
        match failure {
            Failure::Retryable => self.start(lease, Op::FailRetryable).map(|(_, t)| t),
            Failure::Terminal(payload) => self.start_terminal(lease, payload, BodyFormat::Bytes),
        }
    }

    pub(super) fn start_terminal(
        &self,
        lease: &Lease,
        body: &[u8],
        format: BodyFormat,
    ) -> Result<Ticket> {
        self.check_size(body)?;
        self.start(lease, Op::FailTerminal(body, format)).map(|(_, t)| t)
    }

    pub(super) fn start_extend(&self, lease: &mut Lease, by: Duration) -> Result<Ticket> {
        self.backend().check_open()?; // closed comes before bad input
        let by_ms = duration_ms(&"extend: the lease", by)?;
        let (r, ticket) = self.start(lease, Op::Extend { by_ms })?;
        lease.deadline = lease_deadline(&r);
        Ok(ticket)
    }

    /// Blocks until `ticket` is settled (durable in `Durable` mode).
    pub(super) fn settle(&self, ticket: Ticket) -> Result<()> {
        self.backend().settle(ticket)
    }

    /// Resolves when `ticket` is settled, without blocking a thread: the
    /// listener is registered before the re-check, so no wake-up is lost.
    pub(super) async fn settle_async(&self, ticket: Ticket) -> Result<()> {
        self.durability_reached(|b| b.settled(ticket)).await
    }

    /// Resolves once `reached` says so, re-checked at every publication of
    /// durable entries (registered before the re-check: no wake-up lost).
    async fn durability_reached(
        &self,
        reached: impl Fn(&dyn crate::core::backend::Backend) -> Result<bool>,
    ) -> Result<()> {
        let b = self.backend();
        loop {
            if reached(b)? {
                return Ok(());
            }
            let published = b.listen_settled();
            if reached(b)? {
                return Ok(());
            }
            published.await;
        }
    }

    /// Makes every transition so far durable, awaiting the fsync instead of
    /// blocking on it (see [`Store::flush`]); the thread is held only for
    /// the journal's queue lock. Fails with [`Error::Closed`] or
    /// [`Error::Poisoned`] (then not every transition may be durable:
    /// reopen to recover what the journal holds). Cancel-safe: the fsync
    /// it asked for happens anyway.
    pub async fn flush_async(&self) -> Result<()> {
        let b = self.backend();
        b.check_writable()?;
        let ticket = b.request_flush()?;
        // Settled means durable in `Durable` mode only: wait for the seq
        // itself whatever the mode.
        self.durability_reached(|b| b.durable_to(ticket)).await
    }
}
