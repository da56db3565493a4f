//! Batches: many claims, or many completions, sharing one durability wait —
//! one group-commit fsync in `Durable` mode — for a queue consumer that
//! handles a poll of 100 messages at a time.

use super::Store;
use super::codec::Body;
use super::guard::Guard;
use super::types::{Claim, ClaimOptions};
use crate::core::backend::{Backend, Ticket};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::key::Key;

/// Holds the backend's fsync while the batch appends; ends on drop (before
/// any wait, and on unwinding).
struct Hold<'a>(&'a dyn Backend, u64);

impl<'a> Hold<'a> {
    fn start(b: &'a dyn Backend) -> Hold<'a> {
        let batch = b.begin_batch();
        Hold(b, batch)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.end_batch(self.1);
    }
}

impl Store {
    /// Claims every key of `items` (key, and a fingerprint or `None`), with one durability
    /// wait for the whole batch: in `Durable` mode the acquisitions share a
    /// single journal fsync. Answers are per item, in order, each exactly
    /// what [`Store::claim`] would have answered; a batch never waits for
    /// an in-flight key. The same key twice in a batch: the first claim
    /// acquires, the second finds it in flight.
    ///
    /// # Blocking
    /// Each item blocks as [`Store::claim`] does apart from the durability
    /// wait (its stripe lock, a sled read on a cache miss, and the rare
    /// waits: the count of sled's records after open, backpressure, a META
    /// fsync); then the batch waits once for the fsync in `Durable` mode.
    /// While it claims, the batch holds back the journal's fsync — for at
    /// most 50 ms — so that all its items share one; concurrent callers'
    /// transitions join that fsync. `items` is iterated inside that window:
    /// keep it a plain collection. See [`Store::claim_batch_async`].
    ///
    /// # Errors
    /// An item's `Err` is that item's, as [`Store::claim`] returns it
    /// (nothing acquired for it); the others go on. The outer `Err` —
    /// [`Error::Poisoned`], or [`Error::Closed`] — is the batch's durability
    /// wait failing: the acquired guards are then dropped, which abandons
    /// what can still be abandoned; acquisitions that did become durable are
    /// orphans after a reopen (the next claimer gets `recovered() == true`).
    pub fn claim_batch<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
    ) -> Result<Vec<Result<Claim>>> {
        self.claim_batch_with(items, &ClaimOptions::default())
    }

    /// [`Store::claim_batch`] with per-call lease and retention for every
    /// item. Fails with [`Error::InvalidConfig`] (nothing claimed) if the
    /// options ask to wait: batches never wait. A lease or retention that
    /// [`Store::claim_with`] refuses fails each item with
    /// `InvalidConfig` instead. Otherwise blocks and fails as
    /// `claim_batch`.
    pub fn claim_batch_with<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
        options: &ClaimOptions,
    ) -> Result<Vec<Result<Claim>>> {
        let (answers, ticket) = self.claim_all(items, options)?;
        self.settle(ticket)?;
        Ok(answers)
    }

    /// [`Store::claim_batch`] for async code: the fsync is awaited; each
    /// item still holds the thread as [`Store::claim_async`] describes.
    /// Errors as `claim_batch`. Cancel-safe: a dropped future drops the
    /// acquired guards (abandoned).
    pub async fn claim_batch_async<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
    ) -> Result<Vec<Result<Claim>>> {
        let (answers, ticket) = self.claim_all(items, &ClaimOptions::default())?;
        self.settle_async(ticket).await?;
        Ok(answers)
    }

    /// Completes every guard of `items` with its response, with one
    /// durability wait for the whole batch.
    ///
    /// # Blocking
    /// Each item blocks as [`Guard::complete`] does apart from the
    /// durability wait (its stripe lock, a sled read on a cache miss,
    /// backpressure); then the batch waits once for the fsync in `Durable`
    /// mode, holding back the journal's fsync while it appends (for at most
    /// 50 ms), as [`Store::claim_batch`] does. See
    /// [`Store::complete_batch_async`].
    ///
    /// # Errors
    /// Results are per item, in order, each as [`Guard::complete`] returns
    /// it before its durability wait (a failed item's guard is dropped,
    /// which abandons its claim unless it was stale). The outer `Err` —
    /// [`Error::Poisoned`], or [`Error::Closed`] — is the batch's
    /// durability wait failing: the completions were journaled and some or
    /// all may already be durable, and which ones succeeded is lost with
    /// the per-item results. Reopen and `get` every key of the batch before
    /// retrying any.
    pub fn complete_batch<B: Body>(
        &self,
        items: impl IntoIterator<Item = (Guard, B)>,
    ) -> Result<Vec<Result<()>>> {
        let (results, ticket) = self.complete_all(items);
        self.settle(ticket)?;
        Ok(results)
    }

    /// [`Store::complete_batch`] for async code: the fsync is awaited; each
    /// item still holds the thread as [`Guard::complete_async`] describes.
    /// Errors as `complete_batch`. Cancel-safe: dropped before it first
    /// runs, it drops the guards (abandoned); dropped later, every
    /// completion is journaled already (durable with the next fsync).
    pub async fn complete_batch_async<B: Body>(
        &self,
        items: impl IntoIterator<Item = (Guard, B)>,
    ) -> Result<Vec<Result<()>>> {
        let (results, ticket) = self.complete_all(items);
        self.settle_async(ticket).await?;
        Ok(results)
    }

    fn claim_all<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
        options: &ClaimOptions,
    ) -> Result<(Vec<Result<Claim>>, Ticket)> {
        if options.wait.is_some() {
            return Err(Error::config(
                "claim_batch: batches never wait; claim with a wait option one key at a time",
            ));
        }
        let _hold = Hold::start(self.backend());
        let mut newest = Ticket::NONE;
        let answers = items
            .into_iter()
            .map(|(key, fingerprint)| {
                let mut call = self.call(key, fingerprint.into(), options)?;
                match self.step(&mut call)? {
                    super::claim::Step::Answer(claimed, ticket) => {
                        newest = newest.max(ticket);
                        self.answer(&call, claimed)
                    }
                    super::claim::Step::Wait(..) => {
                        Err(super::internal("a batch claim registered a waiter"))
                    }
                }
            })
            .collect();
        Ok((answers, newest))
    }

    fn complete_all<B: Body>(
        &self,
        items: impl IntoIterator<Item = (Guard, B)>,
    ) -> (Vec<Result<()>>, Ticket) {
        let _hold = Hold::start(self.backend());
        let mut newest = Ticket::NONE;
        let results = items
            .into_iter()
            .map(|(guard, body)| {
                let ticket = guard.complete_deferred(body)?;
                newest = newest.max(ticket);
                Ok(())
            })
            .collect();
        (results, newest)
    }
}
