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
struct Hold<'a>(&'a dyn Backend);

impl<'a> Hold<'a> {
    fn start(b: &'a dyn Backend) -> Hold<'a> {
        b.begin_batch();
        Hold(b)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.end_batch();
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
    /// # Errors and blocking
    /// An item's `Err` is that item's (as [`Store::claim`]); the others go
    /// on. The outer `Err` is the batch's durability wait failing (the store
    /// poisoned or closed meanwhile): the acquired guards are then dropped,
    /// which abandons what can still be abandoned. Blocks for the one fsync;
    /// see [`Store::claim_batch_async`].
    pub fn claim_batch<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
    ) -> Result<Vec<Result<Claim>>> {
        self.claim_batch_with(items, &ClaimOptions::default())
    }

    /// [`Store::claim_batch`] with per-call lease and retention for every
    /// item. Fails with [`Error::InvalidConfig`] (nothing claimed) if the
    /// options ask to wait: batches never wait.
    pub fn claim_batch_with<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
        options: &ClaimOptions,
    ) -> Result<Vec<Result<Claim>>> {
        let (answers, ticket) = self.claim_all(items, options)?;
        self.settle(ticket)?;
        Ok(answers)
    }

    /// [`Store::claim_batch`] for async code: the fsync is awaited.
    /// Cancel-safe: a dropped future drops the acquired guards (abandoned).
    pub async fn claim_batch_async<'k, F: Into<Option<Fingerprint>>>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, F)>,
    ) -> Result<Vec<Result<Claim>>> {
        let (answers, ticket) = self.claim_all(items, &ClaimOptions::default())?;
        self.settle_async(ticket).await?;
        Ok(answers)
    }

    /// Completes every guard of `items` with its response, with one
    /// durability wait for the whole batch. Results are per item, in order,
    /// each as [`Guard::complete`] (a failed item's guard is dropped, which
    /// abandons its claim unless it was stale). The outer `Err` is the
    /// batch's durability wait failing. Blocks for the one fsync; see
    /// [`Store::complete_batch_async`].
    pub fn complete_batch<B: Body>(
        &self,
        items: impl IntoIterator<Item = (Guard, B)>,
    ) -> Result<Vec<Result<()>>> {
        let (results, ticket) = self.complete_all(items);
        self.settle(ticket)?;
        Ok(results)
    }

    /// [`Store::complete_batch`] for async code: the fsync is awaited.
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
