//! The embedded backend behind the front's boundary (`core::backend`).

use std::collections::HashMap;
use std::sync::Arc;

use super::Embedded;
use crate::core::backend::{Backend, ClaimRequest, Claimed, Op, Ticket};
use crate::core::{Record, RecoveryReport, VerifyReport};
use crate::error::Result;
use crate::key::Key;
use crate::metrics::COUNTERS;

/// The handle the front holds: closing needs the backend's own `Arc`.
pub(crate) struct EmbeddedBackend(pub Arc<Embedded>);

impl Backend for EmbeddedBackend {
    fn check_open(&self) -> Result<()> {
        self.0.engine.check_open()
    }

    fn check_writable(&self) -> Result<()> {
        self.0.engine.check_writable()
    }

    fn store_id(&self) -> u64 {
        self.0.engine.store_id()
    }

    fn boot(&self) -> u64 {
        self.0.engine.boot()
    }

    fn claim(&self, req: &ClaimRequest<'_>) -> Result<(Claimed, Ticket)> {
        self.0.claim_key(req).map(|(c, seq)| (c, Ticket(seq)))
    }

    fn transition(
        &self,
        key: &Key,
        store_id: u64,
        token: u64,
        op: Op<'_>,
    ) -> Result<(Arc<Record>, Ticket)> {
        self.0.transition_key(key, store_id, token, op, true).map(|(r, seq)| (r, Ticket(seq)))
    }

    fn abandon(&self, key: &Key, store_id: u64, token: u64) {
        // No backpressure wait and no settle: the append is an in-memory
        // encode under the key's stripe lock.
        let _ = self.0.transition_key(key, store_id, token, Op::Abandon, false);
    }

    fn settle(&self, ticket: Ticket) -> Result<()> {
        self.0.engine.settle(ticket.0)
    }

    fn settled(&self, ticket: Ticket) -> Result<bool> {
        self.0.engine.settled(ticket.0)
    }

    fn listen_settled(&self) -> event_listener::EventListener {
        self.0.engine.listen_durable()
    }

    fn request_flush(&self) -> Result<Ticket> {
        self.0.engine.request_flush().map(Ticket)
    }

    fn durable_to(&self, ticket: Ticket) -> Result<bool> {
        self.0.engine.durable_to(ticket.0)
    }

    fn begin_batch(&self) -> u64 {
        self.0.engine.hold_start()
    }

    fn end_batch(&self, batch: u64) {
        self.0.engine.hold_end(batch);
    }

    fn get(&self, key: &Key) -> Result<Option<Arc<Record>>> {
        self.0.get_key(key)
    }

    fn remove(&self, key: &Key) -> Result<bool> {
        self.0.remove_key(key)
    }

    fn import(&self, key: &Key, record: Record) -> Result<()> {
        self.0.import_key(key, record)
    }

    fn catch_up(&self) -> Result<()> {
        self.0.engine.catch_up()
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Record)>> {
        self.0.engine.check_open()?;
        self.0.engine.scan(prefix, after, limit)
    }

    fn sweep(&self) -> Result<usize> {
        super::background::sweep(&self.0)
    }

    fn flush(&self) -> Result<()> {
        self.0.engine.check_writable()?;
        self.0.engine.flush()
    }

    fn checkpoint(&self) -> Result<()> {
        self.0.engine.check_writable()?;
        self.0.engine.catch_up()?;
        self.0.checkpoint_now().map(drop)
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.0.engine.verify()
    }

    fn counters(&self) -> HashMap<String, [u64; COUNTERS]> {
        self.0.counter_totals()
    }

    fn recovery(&self) -> &RecoveryReport {
        self.0.engine.recovery()
    }

    fn close(&self) -> Result<()> {
        self.0.shutdown()
    }

    #[cfg(any(test, feature = "testing"))]
    fn as_any(&self) -> &dyn std::any::Any {
        &*self.0
    }
}
