//! The embedded backend behind the front's boundary (`core::backend`).

use std::collections::HashMap;
use std::sync::Arc;

use super::Embedded;
use crate::core::backend::{Backend, ClaimRequest, Claimed, Op};
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

    fn claim(&self, req: &ClaimRequest<'_>) -> Result<Claimed> {
        self.0.claim_key(req)
    }

    fn transition(&self, key: &Key, store_id: u64, token: u64, op: Op<'_>) -> Result<Arc<Record>> {
        self.0.transition_key(key, store_id, token, op)
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
